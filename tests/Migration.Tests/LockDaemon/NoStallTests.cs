using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// The one place ours differs from the C daemon on purpose: when a lease
/// owner's connection closes with leases held, the C daemon waits on its
/// only thread for the owner to die (SIGTERM, SIGKILL after 1.6 s), so no
/// other client is served meanwhile; ours serves them while it waits.
/// Observed by order, not by time: the moment another client's acquire of
/// the released lease succeeds, is the old owner (which ignores SIGTERM,
/// so only SIGKILL ends it) still alive?
/// </summary>
public class NoStallTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Other_clients_are_served_while_a_dropped_owner_is_being_killed(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var owner = await OwnerLifetimeTests.OwnerConnectionIgnoringTerm(env);
        RpcAssert.Ok(await owner.RegisterSelfAsync());
        using var admin = await env.ConnectAsync();
        var ls = await env.CreateLockspaceAsync(admin);
        RpcAssert.Ok(await owner.AcquireAsync(ls, "r", LockProtocol.AcquireAutoCreate));

        var (other, _) = await env.ConnectOwnerAsync(2, "other");
        using var __ = other;
        await owner.CloseConnectionAsync();

        // retry until the daemon has processed the close and released the lease
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var err = await other.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate);
            if (err is null)
                break;
            Assert.True(DateTime.UtcNow < deadline, $"lease never released: {err.Message}");
            await Task.Delay(20);
        }
        bool ownerAlive = owner.Process.IsRunning;

        if (kind.IsOurs())
            Assert.True(ownerAlive, "the acquire was only served after the owner had died: the daemon stalled");
        else
            Assert.False(ownerAlive, "the C daemon was expected to serve nothing until the owner died");

        // either way the owner is ended in the end
        Assert.Equal(128 + 9, await owner.Process.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }
}
