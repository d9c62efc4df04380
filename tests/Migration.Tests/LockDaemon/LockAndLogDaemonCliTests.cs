using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// Command-line behaviour virtlockd and virtlogd share (same daemon shell in libvirt): -V, -h, unknown options,
/// bad -t, the idle timeout and -p. Daemon-specific cases stay in <see cref="CliTests"/> and LogDaemon.LogCliTests.
/// </summary>
public class LockAndLogDaemonCliTests
{
    public static TheoryData<DaemonName, DaemonKind> NamesAndKinds()
    {
        var d = new TheoryData<DaemonName, DaemonKind>();
        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            foreach (var kind in DaemonKinds.Array)
                d.Add(name, kind);
        return d;
    }

    private static async Task<(ProcessResult Result, string Bin)> RunAsync(DaemonName name, DaemonKind kind, params string[] args)
    {
        var bin = DaemonPaths.Binary(name, kind);
        await using var sb = await Sandbox.CreateAsync();
        var r = await sb.RunInsideAsync(bin, args, TimeSpan.FromSeconds(15));
        return (r, DaemonPaths.Argv0(name, kind));
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Version_flag(DaemonName name, DaemonKind kind)
    {
        foreach (var flag in new[] { "-V", "--version" })
        {
            var (r, bin) = await RunAsync(name, kind, flag);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal($"{bin} (libvirt) 9.0.0\n", r.Stdout);
            Assert.Equal("", r.Stderr);
        }
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Help_flag_prints_usage_to_stderr(DaemonName name, DaemonKind kind)
    {
        foreach (var flag in new[] { "-h", "--help" })
        {
            var (r, bin) = await RunAsync(name, kind, flag);
            Assert.Equal(0, r.ExitCode);
            Assert.Equal("", r.Stdout);
            Assert.Equal(DaemonUsage.Text(bin, name), r.Stderr);
        }
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Unknown_flag_exits_1_with_usage(DaemonName name, DaemonKind kind)
    {
        var (r, bin) = await RunAsync(name, kind, "--bogus");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal($"{bin}: unrecognized option '--bogus'\n" + DaemonUsage.Text(bin, name), r.Stderr);

        (r, bin) = await RunAsync(name, kind, "-Z");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"{bin}: invalid option -- 'Z'\n" + DaemonUsage.Text(bin, name), r.Stderr);
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Invalid_timeout_exits_1(DaemonName name, DaemonKind kind)
    {
        foreach (var value in new[] { "-1", "abc", "", "2147484" })
        {
            var (r, _) = await RunAsync(name, kind, "-t", value);
            Assert.True(r.ExitCode == 1, $"-t '{value}': exit {r.ExitCode}, stderr=[{r.Stderr}]");
            // the function is main() in both; line numbers are the C source's own
            Assert.Matches(@"error : main:\d+ : Invalid value for timeout\n", r.Stderr);
        }
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Idle_timeout_exits_when_no_clients(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, ["-t", "2"]);
        var started = d.Process.Process.StartTime; // read while it runs: gone with the process
        Assert.Equal(0, await d.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        // not before its timeout: 2 s idle, counted at the earliest from the process's start (the readiness
        // probe's connection only delays it); the upper bound is the wait above
        var lived = d.Process.Process.ExitTime - started;
        Assert.True(lived >= TimeSpan.FromSeconds(1.9), $"exited after {lived.TotalSeconds:F2} s with -t 2");
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.PidFile(name))), "pid file removed on exit");
    }

    [Theory]
    [MemberData(nameof(NamesAndKinds))]
    public async Task Pid_file_option(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        var pidFile = Path.Combine(sb.TempDir, "custom.pid");
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, ["-p", pidFile]);
        Assert.Equal(d.Pid.ToString(), File.ReadAllText(pidFile));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.PidFile(name))), "default pid file must not be written with -p");
        Assert.Equal(0, await d.StopAsync());
        Assert.False(File.Exists(pidFile), "pid file removed on clean shutdown");
    }
}
