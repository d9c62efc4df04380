using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Libvirt.Tests.LogDaemon;
using Xunit;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// What crosses a virtlockd handoff besides held files: a named lock space (the state's "lockspaces" array),
/// a RESTRICTed connection, and who owns which lease: after the handoff the holder can release its lease
/// (and a rival then gets it), and a holder whose connection closes is ended and its leases freed.
/// </summary>
public sealed class LeaseOwnershipHandoffTests
{
    private static void Ok(RpcError? e, string what) => Assert.True(e is null, $"{what} failed: {e}");

    [Theory]
    [MemberData(nameof(HandoffDirections.All), MemberType = typeof(HandoffDirections))]
    public async Task Named_lock_spaces_restrictions_and_ownership_cross_the_handoff(string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, chain);
        var sb = rig.Sandbox;
        var space = Path.Combine(rig.TempDir, "space");

        // A: a lease in a named lock space; B: a lease, then RESTRICT; C: a lease it will lose by closing
        var a = await OwnerConnection.StartAsync(sb, rig.SocketHost);
        Ok(await a.RegisterSelfAsync(1, "a"), "A REGISTER");
        Ok(await a.CallAsync(LockProtocol.ProcCreateLockspace, LockProtocol.CreateLockspaceArgs(space)), "A CREATE_LOCKSPACE");
        Ok(await a.AcquireAsync(space, "resA", LockProtocol.AcquireAutoCreate), "A ACQUIRE");
        var b = await OwnerConnection.StartAsync(sb, rig.SocketHost);
        Ok(await b.RegisterSelfAsync(2, "b"), "B REGISTER");
        Ok(await b.AcquireAsync("", Path.Combine(rig.TempDir, "diskB"), LockProtocol.AcquireAutoCreate), "B ACQUIRE");
        Ok(await b.CallAsync(LockProtocol.ProcRestrict, LockProtocol.FlagsArgs(0)), "B RESTRICT");
        var c = await OwnerConnection.StartAsync(sb, rig.SocketHost);
        Ok(await c.RegisterSelfAsync(3, "c"), "C REGISTER");
        Ok(await c.AcquireAsync(space, "resC", LockProtocol.AcquireAutoCreate), "C ACQUIRE");

        for (int step = 1; step < chain.Length; step++)
        {
            await rig.HandoffAsync();
            var when = $"{direction}, after handoff {step}";
            // the named lock space came across: a rival that never created it finds resA there, locked
            var rival = await OwnerConnection.StartAsync(sb, rig.SocketHost);
            Ok(await rival.RegisterSelfAsync((uint)(10 + step), "rival"), $"{when}: rival REGISTER");
            var busy = await rival.AcquireAsync(space, "resA");
            Assert.True(busy?.Message == Err.Locked("resA"), $"{when}: rival ACQUIRE of resA: {busy?.ToString() ?? "granted"}");
            Assert.True(await GapWatcher.IsLockedAsync(sb, Path.Combine(space, "resA")), $"{when}: {space}/resA not locked");
            // the restriction came across
            var refused = await b.AcquireAsync("", Path.Combine(rig.TempDir, $"diskB{step}"), LockProtocol.AcquireAutoCreate);
            Assert.True(refused?.Message == Err.Restricted, $"{when}: the restricted connection acquired: {refused?.ToString() ?? "granted"}");
            Assert.True(await GapWatcher.IsLockedAsync(sb, Path.Combine(rig.TempDir, "diskB")), $"{when}: B's lease is gone");
            await rival.CloseConnectionAsync();
        }

        // ownership came across: A releases its lease on its kept connection, and a rival gets it
        Ok(await a.CallAsync(LockProtocol.ProcReleaseResource, LockProtocol.ResourceArgs(space, "resA", 0)), "A RELEASE after the handoffs");
        var taker = await OwnerConnection.StartAsync(sb, rig.SocketHost);
        Ok(await taker.RegisterSelfAsync(99, "taker"), "taker REGISTER");
        // (an auto-created resource file goes with its last lease: the taker creates it again)
        Ok(await taker.AcquireAsync(space, "resA", LockProtocol.AcquireAutoCreate), "taker ACQUIRE of the released resA");

        // C closes its connection while holding resC: the daemon ends C (the lease holder) and frees resC
        Assert.True(await GapWatcher.IsLockedAsync(sb, Path.Combine(space, "resC")), "resC not locked before C closes");
        await c.CloseConnectionAsync();
        Assert.True(await c.Process.TryWaitForExitAsync(TimeSpan.FromSeconds(20)),
            $"{direction}: the holder whose connection closed with a lease was not ended");
        Assert.True(await LogEnv.EventuallyAsync(async () => !await GapWatcher.IsLockedAsync(sb, Path.Combine(space, "resC")), TimeSpan.FromSeconds(10)),
            $"{direction}: resC still locked after its holder's connection closed");
        Assert.True(rig.Daemon.IsRunning, $"{direction}: the daemon exited: {HandoffRig.Tail(rig.Daemon.Stderr)}");
    }
}
