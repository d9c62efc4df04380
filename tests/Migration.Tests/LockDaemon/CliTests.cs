using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>Command line, idle timeout, pid file, config limits and default socket layout.</summary>
public class CliTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    private static string Usage(string argv0) => $"""

        Usage:
          {argv0} [options]

        Options:
          -h | --help            Display program help:
          -v | --verbose         Verbose messages.
          -d | --daemon          Run as a daemon & write PID file.
          -t | --timeout <secs>  Exit after timeout period.
          -f | --config <file>   Configuration file.
          -V | --version         Display version information.
          -p | --pid-file <file> Change name of PID file.

        libvirt lock management daemon:

          Default paths:

            Configuration file (unless overridden by -f):
              /etc/libvirt/virtlockd.conf

            Sockets:
              /run/libvirt/virtlockd-sock

            PID file (unless overridden by -p):
              /run/virtlockd.pid


        """;

    private static async Task<(ProcessResult Result, string Bin)> RunAsync(DaemonKind kind, params string[] args)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var r = await sb.RunInsideAsync(bin, args, TimeSpan.FromSeconds(15));
        return (r, bin);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Version_flag(DaemonKind kind)
    {
        foreach (var flag in new[] { "-V", "--version" })
        {
            var (r, bin) = await RunAsync(kind, flag);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal($"{bin} (libvirt) 9.0.0\n", r.Stdout);
            Assert.Equal("", r.Stderr);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Help_flag_prints_usage_to_stderr(DaemonKind kind)
    {
        foreach (var flag in new[] { "-h", "--help" })
        {
            var (r, bin) = await RunAsync(kind, flag);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.Stdout);
            Assert.Equal(Usage(bin), r.Stderr);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Unknown_flag_exits_1_with_usage(DaemonKind kind)
    {
        var (r, bin) = await RunAsync(kind, "--bogus");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal($"{bin}: unrecognized option '--bogus'\n" + Usage(bin), r.Stderr);

        (r, bin) = await RunAsync(kind, "-Z");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"{bin}: invalid option -- 'Z'\n" + Usage(bin), r.Stderr);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Invalid_timeout_exits_1(DaemonKind kind)
    {
        foreach (var value in new[] { "-1", "abc", "", "2147484" })
        {
            var (r, _) = await RunAsync(kind, "-t", value);
            Assert.Equal(1, r.ExitCode);
            // the function is main() in both; line numbers are the C source's own
            Assert.Matches(@"error : main:\d+ : Invalid value for timeout\n", r.Stderr);
        }
    }

    /// <summary>virStrToLong_i with an end pointer: trailing junk after the number is accepted ("1x" == 1).</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Timeout_with_trailing_junk_is_accepted(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, ["-t", "1x"]);
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Idle_timeout_exits_when_no_clients(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, ["-t", "2"]);
        var sw = Stopwatch.StartNew();
        var rc = await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0, rc);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        Assert.False(File.Exists(env.Sandbox.HostPath(DaemonPaths.DefaultPidFile)), "pid file removed on exit");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Idle_timeout_waits_while_a_client_is_connected(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, ["-t", "1"]);
        using (var c = await env.ConnectAsync())
        {
            RpcAssert.Ok(await c.CreateLockspaceAsync(Path.Combine(env.TempDir, "ls")));
            await Task.Delay(3000);
            Assert.True(env.Daemon.IsRunning, "daemon must not time out with a connected client");
        }
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Pid_file_option(DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        var pidFile = Path.Combine(sb.TempDir, "custom.pid");
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, kind, ["-p", pidFile]);
        Assert.Equal(d.Pid.ToString(), File.ReadAllText(pidFile));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "default pid file must not be written with -p");
        Assert.Equal(0, await d.StopAsync());
        Assert.False(File.Exists(pidFile), "pid file removed on clean shutdown");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Default_socket_and_pid_paths(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var sb = env.Sandbox;
        const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        foreach (var s in new[] { DaemonPaths.DefaultSocket, DaemonPaths.DefaultAdminSocket })
        {
            var host = sb.HostPath(s);
            Assert.True(File.Exists(host), $"{s} missing");
            Assert.True((File.GetAttributes(host) & FileAttributes.Directory) == 0);
            Assert.Equal(Rwx, File.GetUnixFileMode(host));
        }
        await env.Daemon.WaitForSocketAsync(DaemonPaths.DefaultAdminSocket, TimeSpan.FromSeconds(5));
        Assert.Equal(env.Daemon.Pid.ToString(), File.ReadAllText(sb.HostPath(DaemonPaths.DefaultPidFile)));
        Assert.Equal(0, await env.Daemon.StopAsync());
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "pid file removed on SIGTERM shutdown");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Max_clients_one_queues_second_client(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, config: "max_clients = 1\n");
        var ls = Path.Combine(env.TempDir, "ls");
        var first = await env.ConnectAsync();
        try
        {
            RpcAssert.Ok(await first.CreateLockspaceAsync(ls));
            using var second = await env.Daemon.ConnectRawAsync(); // kernel accepts into the backlog
            uint serial = await second.SendCallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcCreateLockspace,
                LockProtocol.CreateLockspaceArgs(ls));
            await Assert.ThrowsAsync<TimeoutException>(() => second.ReadMessageAsync(TimeSpan.FromSeconds(1)));
            first.Dispose();
            var reply = await second.ReadMessageAsync(TimeSpan.FromSeconds(10));
            Assert.NotNull(reply);
            Assert.Equal(serial, reply!.Header.Serial);
            Assert.Equal(RpcStatus.Ok, reply.Header.Status);
        }
        finally { first.Dispose(); }
    }
}
