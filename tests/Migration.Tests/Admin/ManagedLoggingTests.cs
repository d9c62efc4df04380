using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Admin;

/// <summary>
/// logging_impl = "managed": the daemon's log_level/log_filters/log_outputs
/// and virt-admin's daemon-log-filters/-outputs go through the managed twin
/// of virlog.c. The same config file runs the C daemon (which ignores the
/// key) and ours; virt-admin's transcripts and the log files are compared.
/// </summary>
public sealed class ManagedLoggingTests
{
    public static TheoryData<DaemonName> Daemons => AdminCases.Daemons;

    private const string ManagedLogging = "logging_impl = \"managed\"\n";

    private static readonly Regex LibvirtLine = new(
        @"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\+0000: \d+: (debug|info|warning|error) : (.*)$");

    /// <summary>Runs <paramref name="scenario"/> against the C daemon and ours
    /// (managed logging), each in its own sandbox with the same config.</summary>
    private static async Task<(string C, string Managed)> BothAsync(DaemonName name, string config,
        Func<DaemonProcess, VirtAdmin, Task> scenario)
    {
        async Task<string> One(DaemonKind kind)
        {
            await using var sb = await Sandbox.CreateAsync();
            await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind,
                configText: kind == DaemonKind.C ? config : config + ManagedLogging);
            await d.WaitForSocketAsync(DaemonPaths.AdminSocket(name), TimeSpan.FromSeconds(15));
            var va = new VirtAdmin(d);
            try
            {
                await scenario(d, va);
            }
            finally
            {
                // for a failing comparison: ADMIN_TRANSCRIPTS=dir keeps both
                var dir = Environment.GetEnvironmentVariable("ADMIN_TRANSCRIPTS");
                if (!string.IsNullOrEmpty(dir))
                    await File.WriteAllTextAsync(Path.Combine(dir, $"{DaemonPaths.ExeName(name)}-{kind}-logging.txt"), va.Transcript);
            }
            return VirtAdmin.Normalise(va.Transcript);
        }
        var c = One(DaemonKind.C);
        var m = One(DaemonKind.Managed);
        return (await c, await m);
    }

    /// <summary>The lines of a log file in libvirt's format, each without its
    /// timestamp and thread id.</summary>
    private static List<string> Lines(string path)
    {
        var lines = new List<string>();
        foreach (var line in File.ReadAllLines(path))
        {
            var m = LibvirtLine.Match(line);
            Assert.True(m.Success, $"{path}: not libvirt's line format: \"{line}\"");
            lines.Add($"{m.Groups[1].Value} : {m.Groups[2].Value}");
        }
        return lines;
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task Log_filters_and_outputs_get_and_set_as_the_C_daemon(DaemonName name)
    {
        const string config = "log_level = 3\nlog_filters = \"3:+rpc 1:util.x  4:event\"\nlog_outputs = \"3:file:/run/first.log 4:stderr 4:file:/run/first.log\"\n";
        var (c, m) = await BothAsync(name, config, async (d, va) =>
        {
            await va.RunAsync("daemon-log-filters");
            await va.RunAsync("daemon-log-outputs");
            const string logInside = "/run/admin-test.log";
            var logHost = d.Sandbox.HostPath(logInside);

            Assert.Equal(0, (await va.RunAsync("daemon-log-outputs", $"1:file:/run/./x/../admin-test.log  2:stderr 3:stderr")).ExitCode);
            Assert.Equal(0, (await va.RunAsync("daemon-log-filters", "1:rpc 4:event +2:util")).ExitCode);
            await va.RunAsync("daemon-log-filters");
            await va.RunAsync("daemon-log-outputs");
            await va.RunAsync("server-list");
            Assert.True(File.Exists(logHost), $"{d.Kind}: new output not created");
            // libvirt's own RPC debug messages reach the output (through the relay, for ours)
            Assert.Contains("virNetServerClient", await File.ReadAllTextAsync(logHost));

            Assert.Equal(0, (await va.RunAsync("daemon-log-filters", "4:rpc")).ExitCode);
            long before = new FileInfo(logHost).Length;
            await va.RunAsync("server-list");
            Assert.DoesNotContain("virNetServerClient", (await File.ReadAllTextAsync(logHost))[(int)before..]);

            foreach (var bad in new[] { "1:nope", "0:stderr", "1:stderr:x", "1:file", "x", "1:file:/run/no/such/dir/log" })
                await va.RunAsync("daemon-log-outputs", bad);
            foreach (var bad in new[] { "9:x", "1:", "1:+", ":x", "x" })
                await va.RunAsync("daemon-log-filters", bad);
            await va.RunAsync("daemon-log-filters");
            await va.RunAsync("daemon-log-outputs");
            await va.RunAsync("daemon-log-filters", "");
            await va.RunAsync("daemon-log-filters");
            // none: the default output decided at start-up
            Assert.Equal(0, (await va.RunAsync("daemon-log-outputs", "")).ExitCode);
            await va.RunAsync("daemon-log-outputs");
        });
        Assert.Equal(c, m);
        // what both said, in virt-admin's words
        Assert.Contains("3:*rpc* 1:*util.x* 4:*event*", m);
        Assert.Contains("4:stderr 4:file:/run/first.log", m); // a repeated output moves to the end
        Assert.Contains("1:file:/run/admin-test.log 3:stderr", m);
        Assert.Contains("Invalid log destination 'nope' for log output '1:nope'", m);
        Assert.Contains("Invalid match string '+'", m);
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task A_file_output_from_the_config_gets_libvirts_lines(DaemonName name)
    {
        const string config = "log_level = 2\nlog_outputs = \"2:file:/run/daemon.log\"\n";
        var files = new Dictionary<DaemonKind, List<string>>();
        await BothAsync(name, config, async (d, va) =>
        {
            Assert.Equal(0, (await va.RunAsync("daemon-log-outputs")).ExitCode);
            var log = d.Sandbox.HostPath("/run/daemon.log");
            var lines = Lines(log);
            lock (files)
                files[d.Kind] = lines;
        });
        var c = files[DaemonKind.C];
        var ours = files[DaemonKind.Managed];
        // the version and host lines open both files, word for word
        Assert.Matches(@"^info : libvirt version: 9\.0\.0, package: ", c[0]);
        Assert.StartsWith("info : hostname: ", c[1]);
        Assert.Equal(c[..2], ours[..2]);
        // libvirt's own version and host lines (the relay drops them) are not written twice
        Assert.Single(ours, l => l.Contains("libvirt version: "));
        Assert.Single(ours, l => l.Contains("hostname: "));
        // ours says which implementations it runs, through the managed twin's output
        Assert.Contains(ours, l => l.StartsWith("info : main:0 : Implementations: ", StringComparison.Ordinal) &&
            l.Contains("logging_impl=managed"));
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task An_unknown_logging_impl_is_a_config_error(DaemonName name)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = DaemonProcess.Start(sb, name, DaemonKind.Managed, configText: "logging_impl = \"syslog\"\n");
        int rc = await d.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, rc);
        Assert.Contains("Can't load config file: ", d.Stderr);
        Assert.Contains("invalid value \"syslog\" for 'logging_impl' parameter: expected \"native\" or \"managed\"", d.Stderr);
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task A_bad_log_output_in_the_config_stops_both_daemons_alike(DaemonName name)
    {
        const string config = "log_outputs = \"1:nope\"\n";
        var stderr = new Dictionary<DaemonKind, string>();
        foreach (var kind in new[] { DaemonKind.C, DaemonKind.Managed })
        {
            await using var sb = await Sandbox.CreateAsync();
            await using var d = DaemonProcess.Start(sb, name, kind,
                configText: kind == DaemonKind.C ? config : config + ManagedLogging);
            int rc = await d.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.Equal(1, rc);
            stderr[kind] = d.Stderr;
        }
        Assert.Contains("Invalid log destination 'nope' for log output '1:nope'", stderr[DaemonKind.C]);
        Assert.Equal(stderr[DaemonKind.C], stderr[DaemonKind.Managed]);
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task A_syslog_output_is_refused_by_the_managed_twin(DaemonName name)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = DaemonProcess.Start(sb, name, DaemonKind.Managed,
            configText: "log_outputs = \"3:syslog:test\"\n" + ManagedLogging);
        int rc = await d.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, rc);
        Assert.Contains("argument unsupported: log output '3:syslog:test': syslog outputs are not supported by the managed logging implementation", d.Stderr);
    }
}
