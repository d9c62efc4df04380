using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;

namespace Libvirt.Tests.Admin;

/// <summary>A lease holder disconnected by virt-admin is handled as on any
/// disconnect: its leases are released and it is ended (SIGTERM).</summary>
public class AdminDisconnectLeaseTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Disconnecting_a_lease_holder_releases_its_leases_and_ends_it(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        await env.Daemon.WaitForSocketAsync(DaemonPaths.AdminSocket(DaemonName.Virtlockd), TimeSpan.FromSeconds(15));
        var va = new VirtAdmin(env.Daemon);

        using var admin = await env.ConnectAsync();
        var ls = await env.CreateLockspaceAsync(admin);
        var before = VirtAdmin.ClientIds((await va.RunAsync(false, "client-list", va.Server)).Stdout);

        var owner = await OwnerConnection.StartAsync(env.Sandbox, env.Daemon.SocketHostPath);
        RpcAssert.Ok(await owner.RegisterSelfAsync());
        RpcAssert.Ok(await owner.AcquireAsync(ls, "r", LockProtocol.AcquireAutoCreate));

        var after = VirtAdmin.ClientIds((await va.RunAsync(false, "client-list", va.Server)).Stdout);
        var ownerId = Assert.Single(after.Except(before));
        var r = await va.RunAsync(false, "client-disconnect", va.Server, ownerId.ToString());
        Assert.True(r.ExitCode == 0, r.Stderr);

        Assert.Equal(128 + 15, await owner.Process.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        var (other, _) = await env.ConnectOwnerAsync(2, "other");
        using var __ = other;
        RpcAssert.Ok(await other.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
    }
}
