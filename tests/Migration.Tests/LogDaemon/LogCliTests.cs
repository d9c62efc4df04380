using Libvirt.Tests.LockDaemon;
using System.Diagnostics;
using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>
/// virtlogd command line, config errors, default paths and the idle timeout. What virtlogd shares with virtlockd
/// (-V, -h, bad options, -t, -p) is in LockDaemon.LockAndLogDaemonCliTests.
/// </summary>
public class LogCliTests
{
    public static TheoryData<DaemonKind> Kinds => LogKinds.All;

    public static TheoryData<DaemonKind, string, string> BadConfigs()
    {
        var d = new TheoryData<DaemonKind, string, string>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, "max_size = \"x\"\n", "internal error: {0}: expected an unsigned integer for 'max_size' parameter: {0}");
            d.Add(k, "max_backups = -1\n", "internal error: {0}: expected an unsigned integer for 'max_backups' parameter: {0}");
            d.Add(k, "max_clients = \"many\"\n", "internal error: {0}: expected an unsigned integer for 'max_clients' parameter: {0}");
            d.Add(k, "log_outputs = 3\n", "internal error: {0}: expected a string for 'log_outputs' parameter: {0}");
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public async Task Bad_config_values_exit_1(DaemonKind kind, string config, string messageFormat)
    {
        var bin = DaemonPaths.Binary(DaemonName.Virtlogd, kind);
        await using var sb = await Sandbox.CreateAsync();
        var cfg = sb.WriteTempFile("bad.conf", config);
        var r = await sb.RunInsideAsync(bin, ["-f", cfg], TimeSpan.FromSeconds(15));
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}, stderr=[{r.Stderr}]");
        Assert.Equal("", r.Stdout);
        var msg = string.Format(messageFormat, cfg);
        Assert.Matches(@"error : main:\d+ : " + Regex.Escape("Can't load config file: " + msg) + "\n", r.Stderr);
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.VirtlogdSocket)), "no socket on a config error");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Missing_config_file_exits_1(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(DaemonName.Virtlogd, kind);
        await using var sb = await Sandbox.CreateAsync();
        var cfg = Path.Combine(sb.TempDir, "absent.conf");
        var r = await sb.RunInsideAsync(bin, ["-f", cfg], TimeSpan.FromSeconds(15));
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"error : main:\d+ : " +
            Regex.Escape($"Can't load config file: Failed to open file '{cfg}': No such file or directory: {cfg}") + "\n", r.Stderr);
    }

    /// <summary>max_backups above 32 is accepted at startup; every open then fails.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Max_backups_over_32_fails_at_open(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: "max_backups = 33\n");
        var path = env.LogPath("x.log");
        var c = await env.ClientAsync();
        Assert.Equal("unsupported configuration: Max backup 33 must be less than or equal to 32", await c.ErrAsync($"open {path}"));
        Assert.Equal("unsupported configuration: Max backup 33 must be less than or equal to 32", await c.ErrAsync($"append {path} hi"));
        Assert.False(File.Exists(path));
        await c.QuitAsync();
        env.AssertAlive("after refused opens");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Default_socket_and_pid_paths(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var sb = env.Sandbox;
        const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        foreach (var s in new[] { DaemonPaths.VirtlogdSocket, DaemonPaths.VirtlogdAdminSocket })
        {
            var host = sb.HostPath(s);
            Assert.True(File.Exists(host), $"{s} missing");
            Assert.Equal(Rwx, File.GetUnixFileMode(host));
        }
        await env.Daemon.WaitForSocketAsync(DaemonPaths.VirtlogdAdminSocket, TimeSpan.FromSeconds(5));
        Assert.Equal(env.Daemon.Pid.ToString(), File.ReadAllText(sb.HostPath(DaemonPaths.VirtlogdPidFile)));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "virtlogd must not write virtlockd's pid file");
        Assert.Equal(0, await env.Daemon.StopAsync());
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.VirtlogdPidFile)), "pid file removed on SIGTERM shutdown");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Second_daemon_on_same_pid_file_exits(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var second = DaemonProcess.Start(env.Sandbox, DaemonName.Virtlogd, kind);
        var rc = await second.WaitForExitAsync(TimeSpan.FromSeconds(10));
        Assert.True(rc != 0, $"second daemon exit {rc}");
        env.AssertAlive("after a second instance was started");
        Assert.Equal(env.Daemon.Pid.ToString(), File.ReadAllText(env.Sandbox.HostPath(DaemonPaths.VirtlogdPidFile)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Idle_timeout_waits_while_a_client_is_connected(DaemonKind kind)
    {
        // -t 3, not 1: the client is a process of its own, and under load it connected after a 1 s timeout had
        // ended the daemon (C's and ours alike)
        await using var env = await LogEnv.StartAsync(kind, ["-t", "3"]);
        var c = await env.ClientAsync();
        await c.AppendAsync(env.LogPath("t.log"), "hello");
        await Task.Delay(5000); // deliberate: more than one idle period passes; nothing to await for an exit that must not happen
        env.AssertAlive("with a connected client and -t 3");
        await c.QuitAsync();
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    /// <summary>
    /// In 9.0.0 an open log pipe inhibits the idle shutdown only for unprivileged daemons (virLogDaemonInhibitor);
    /// running as root, the daemon exits on timeout even though a domain still holds the pipe's write end.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Idle_timeout_privileged_ignores_open_log_pipes(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, ["-t", "2"]);
        var path = env.LogPath("pipe-only.log");
        var c = await env.ClientAsync();
        await c.OpenAsync(path);
        await c.WriteAsync(50, 40);
        await c.PosAsync(path);
        await c.OkAsync("disconnect"); // close the RPC connection, keep the pipe's write end
        var sw = Stopwatch.StartNew();
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        Assert.Equal(Records.Stream(0, 50, 40), File.ReadAllBytes(path));
        // the read end is gone with the daemon: the writer gets EPIPE
        var err = await c.ErrAsync("write 1 40");
        Assert.StartsWith("write: errno 32 ", err);
    }
}
