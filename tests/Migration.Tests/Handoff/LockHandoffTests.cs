using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockClient;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// virtlockd exec-restart handoff (SIGUSR1) across binaries, with 16 lockclient lease owners (libvirt's own lock
/// client, one connection each) and 3 relay owners (one raw connection each), a gap watcher polling every lock
/// file through the whole handoff, and virt-admin's client list before and after.
/// </summary>
public sealed class LockHandoffTests(ITestOutputHelper output)
{
    private const int LockClients = 16;
    private const int Relays = 3;

    [Theory]
    [MemberData(nameof(HandoffDirections.All), MemberType = typeof(HandoffDirections))]
    public async Task LeasesClientsAndLocksSurviveTheHandoff(string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, chain);
        var sb = rig.Sandbox;

        var disks = Enumerable.Range(0, LockClients).Select(i => Path.Combine(rig.TempDir, $"disk{i}")).ToArray();
        var holders = await Task.WhenAll(disks.Select((d, i) => LeaseChecks.HoldAsync(sb, d, $"dom{i}", i + 1)));

        var relays = new List<OwnerConnection>();
        var relayFiles = new List<string>();
        for (int j = 0; j < Relays; j++)
        {
            var r = await OwnerConnection.StartAsync(sb, rig.SocketHost);
            RpcAssertOk(await r.RegisterSelfAsync((uint)(100 + j), $"relay{j}"), $"relay {j} REGISTER");
            var f = Path.Combine(rig.TempDir, $"relay{j}");
            RpcAssertOk(await r.AcquireAsync("", f, LockProtocol.AcquireAutoCreate), $"relay {j} ACQUIRE");
            relays.Add(r);
            relayFiles.Add(f);
        }
        var allFiles = disks.Concat(relayFiles).ToArray();

        var before = await rig.ClientListAsync();
        Assert.Equal(LockClients + Relays, before.Count);

        var watcher = await GapWatcher.StartAsync(sb, allFiles);
        var daemonBefore = rig.CurrentProcess();
        for (int step = 1; step < chain.Length; step++)
        {
            var took = await rig.HandoffAsync();
            output.WriteLine($"{direction}: handoff {step} ({chain[step - 1]} -> {chain[step]}) done in {took.TotalMilliseconds:F0} ms");
            rig.AssertSameProcess(daemonBefore, $"{direction} handoff {step}");

            var after = await rig.ClientListAsync();
            Assert.True(before.Count == after.Count,
                $"handoff {step}: client-list had {before.Count} clients before, {after.Count} after");
            Assert.Equal(before, after); // libvirt's serialiser keeps client ids too
            output.WriteLine($"  client ids before [{string.Join(',', before)}] after [{string.Join(',', after)}]");

            await LeaseChecks.AssertAllBusyAsync(sb, allFiles, $"after handoff {step} ({direction})");
            for (int j = 0; j < relays.Count; j++)
                RpcAssertOk(await relays[j].AcquireAsync("", Path.Combine(rig.TempDir, $"relay{j}-extra{step}"), LockProtocol.AcquireAutoCreate),
                    $"relay {j} ACQUIRE on its kept connection after handoff {step}");
            foreach (var h in holders)
                Assert.True(h.Process.IsRunning, $"lockclient {h.Pid} is gone after handoff {step}");
            foreach (var r in relays)
                Assert.True(r.Process.IsRunning, $"relay {r.Pid} is gone after handoff {step}");
        }

        var (polls, free, firstFree) = await watcher.StopAsync();
        output.WriteLine($"{direction}: gap watcher: {polls} F_OFD_GETLK polls over {allFiles.Length} files, {free} saw a file free");
        Assert.True(polls > allFiles.Length, $"gap watcher made only {polls} polls");
        Assert.True(free == 0, $"gap watcher saw a lock free {free} times (first: {firstFree}) during {direction}");

        Assert.True(rig.Daemon.IsRunning);
    }

    internal static void RpcAssertOk(RpcError? e, string what) =>
        Assert.True(e is null, $"{what} failed: {e}");
}
