using System.Text.RegularExpressions;
using Libvirt.Tests.Admin;
using Libvirt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// What admin-interface changes survive an exec-restart handoff. libvirt 9.0.0 writes each server's worker pool
/// (min, max, priority workers) and client limits (max clients, max unauthenticated clients) into the state file
/// (virNetServerPreExecRestart) and builds the servers from it after the exec; the log filters and outputs are not
/// in it: the new image sets up logging from its config again. Both daemons, the same expectations for C and ours.
/// </summary>
public sealed class AdminHandoffTests(ITestOutputHelper output)
{
    /// <summary>C>C records the reference; ours>ours, and C>twins>ours, which crosses from C to ours (every twin
    /// managed) and on to our default: the values ride the state file, not a configuration's code. rpc>rpc and
    /// C>rpc>ours: the managed RPC core's own servers save and adopt them (and its admin program serves).</summary>
    public static TheoryData<DaemonName, string> Cases()
    {
        var d = new TheoryData<DaemonName, string>();
        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            foreach (var dir in new[] { "C>C", "ours>ours", "C>twins>ours", "rpc>rpc", "C>rpc>ours" })
                d.Add(name, dir);
        return d;
    }

    private static async Task<string> AdminAsync(HandoffRig rig, params string[] args)
    {
        var exe = DaemonPaths.ExeName(rig.Name);
        var r = await rig.Sandbox.RunInsideAsync(VirtAdmin.Binary, ["-c", $"{exe}:///system", .. args], TimeSpan.FromSeconds(20));
        Assert.True(r.ExitCode == 0, $"virt-admin {string.Join(' ', args)} failed ({r.ExitCode}): {r.Stdout}{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>"key : value" lines of a virt-admin info table.</summary>
    private static Dictionary<string, string> Fields(string table) =>
        Regex.Matches(table, @"^(\w+)\s*:\s*(\S+)\s*$", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

    /// <summary>The values the state file carries: the main server's pool and limits and the admin server's limits.</summary>
    private static async Task<string> KeptAsync(HandoffRig rig)
    {
        var server = DaemonPaths.ExeName(rig.Name);
        var pool = Fields(await AdminAsync(rig, "server-threadpool-info", server));
        var main = Fields(await AdminAsync(rig, "server-clients-info", server));
        var admin = Fields(await AdminAsync(rig, "server-clients-info", "admin"));
        return $"minWorkers={pool.GetValueOrDefault("minWorkers")} maxWorkers={pool.GetValueOrDefault("maxWorkers")} " +
               $"prioWorkers={pool.GetValueOrDefault("prioWorkers")} " +
               $"nclients_max={main.GetValueOrDefault("nclients_max")} nclients_unauth_max={main.GetValueOrDefault("nclients_unauth_max")} " +
               $"admin.nclients_max={admin.GetValueOrDefault("nclients_max")} admin.nclients_unauth_max={admin.GetValueOrDefault("nclients_unauth_max")}";
    }

    private static async Task<string> LoggingAsync(HandoffRig rig) =>
        $"filters=[{(await AdminAsync(rig, "daemon-log-filters")).Trim()}] outputs=[{(await AdminAsync(rig, "daemon-log-outputs")).Trim()}]";

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Pool_and_client_limits_survive_the_handoff_log_settings_do_not(DaemonName name, string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        await using var rig = await HandoffRig.StartAsync(name, chain);
        var server = DaemonPaths.ExeName(name);

        var startupKept = await KeptAsync(rig);
        var startupLogging = await LoggingAsync(rig);

        // values that are neither a default nor each other's; both daemons' servers have no worker pool
        // (min = max = 0: jobs run in the event loop) and a pool cannot be switched on, but priority workers can
        await AdminAsync(rig, "server-threadpool-set", server, "--priority-workers", "3");
        await AdminAsync(rig, "server-clients-set", server, "--max-clients", "42", "--max-unauth-clients", "9");
        await AdminAsync(rig, "server-clients-set", "admin", "--max-clients", "13", "--max-unauth-clients", "4");
        var log = "/run/admin-handoff.log";
        await AdminAsync(rig, "daemon-log-outputs", $"1:file:{log}");
        await AdminAsync(rig, "daemon-log-filters", "1:rpc 3:event");

        const string Set = "minWorkers=0 maxWorkers=0 prioWorkers=3 nclients_max=42 nclients_unauth_max=9 " +
                           "admin.nclients_max=13 admin.nclients_unauth_max=4";
        Assert.NotEqual(Set, startupKept);
        Assert.Equal(Set, await KeptAsync(rig));
        var changedLogging = await LoggingAsync(rig);
        Assert.Contains("1:*rpc* 3:*event*", changedLogging); // libvirt shows each filter as a glob
        Assert.Contains($"1:file:{log}", changedLogging);

        var before = rig.CurrentProcess();
        for (int step = 1; step < chain.Length; step++)
        {
            await rig.HandoffAsync();
            rig.AssertSameProcess(before, $"{direction} handoff {step}");
            var kept = await KeptAsync(rig);
            var logging = await LoggingAsync(rig);
            output.WriteLine($"{name} {direction} after handoff {step}: {kept}; {logging} (startup: {startupLogging})");
            Assert.True(kept == Set, $"{direction} handoff {step}: pool and limits are [{kept}], were set to [{Set}] (startup [{startupKept}])");
            Assert.True(logging == startupLogging,
                $"{direction} handoff {step}: logging is {logging}; the new image must set it up from its config again: {startupLogging}");
        }
    }
}
