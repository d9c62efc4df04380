using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;

namespace Libvirt.Tests.Host;

/// <summary>
/// The *_impl keys of the daemon's config file choose each subsystem's
/// implementation at start-up: ours says which it took, refuses a value that
/// is not an implementation as a config error, and the C daemon ignores the
/// keys, so one file serves both during a live switch.
/// </summary>
public sealed class ImplementationSelectionTests
{
    private static string StoreKey(DaemonName name) => name == DaemonName.Virtlogd ? "rotating_file_impl" : "lock_space_impl";

    public static TheoryData<DaemonName, DaemonKind> DaemonsAndOurs => DaemonKinds.DaemonsAndOurs;

    public static TheoryData<DaemonName, string> BadValues => new()
    {
        { DaemonName.Virtlockd, "event_loop_impl = \"glib\"" },
        { DaemonName.Virtlockd, "lock_space_impl = \"Managed\"" },
        { DaemonName.Virtlockd, "lock_space_impl = 1" },
        { DaemonName.Virtlogd, "event_loop_impl = \"\"" },
        { DaemonName.Virtlogd, "rotating_file_impl = \"c\"" },
        { DaemonName.Virtlockd, "rpc_impl = \"libvirt\"" },
        // the managed RPC core runs only on the managed loop: without it, rpc_impl = "managed" is refused
        { DaemonName.Virtlockd, "rpc_impl = \"managed\"" },
        { DaemonName.Virtlogd, "rpc_impl = \"managed\"\nevent_loop_impl = \"native\"" },
    };

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Ours_logs_the_implementations_it_chose(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        var log = Path.Combine(sb.TempDir, "daemon.log");
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, configText: $"log_level = 2\nlog_outputs = \"2:file:{log}\"\n");
        var line = File.ReadLines(log).FirstOrDefault(l => l.Contains("Implementations: "));
        Assert.True(line is not null, $"no 'Implementations:' line in the log:\n{File.ReadAllText(log)}");
        string impl = kind.ImplConfig(name);
        string loop = impl.Contains("event_loop_impl") ? "managed" : "native";
        string store = impl.Contains(StoreKey(name)) ? "managed" : "native";
        Assert.Contains($"event_loop_impl={loop}", line);
        Assert.Contains($"{StoreKey(name)}={store}", line);
        Assert.Contains($"rpc_impl={(impl.Contains("rpc_impl") ? "managed" : "native")}", line);
    }

    [Theory]
    [MemberData(nameof(BadValues))]
    public async Task A_value_that_is_not_an_implementation_is_a_config_error(DaemonName name, string setting)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = DaemonProcess.Start(sb, name, DaemonKind.Managed, configText: setting + "\n");
        int rc = await d.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, rc);
        string key = setting[..setting.IndexOf(' ')];
        Assert.Contains("Can't load config file: ", d.Stderr);
        Assert.Contains($"'{key}'", d.Stderr);
        Assert.False(File.Exists(d.SocketHostPath), "a daemon with a bad config created its socket");
    }

    [Theory]
    [InlineData(DaemonName.Virtlockd)]
    [InlineData(DaemonName.Virtlogd)]
    public async Task The_C_daemon_ignores_the_keys(DaemonName name)
    {
        await using var sb = await Sandbox.CreateAsync();
        string cfg = $"event_loop_impl = \"managed\"\n{StoreKey(name)} = \"managed\"\n";
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, DaemonKind.C, configText: cfg);
        Assert.True(d.IsRunning);
    }
}
