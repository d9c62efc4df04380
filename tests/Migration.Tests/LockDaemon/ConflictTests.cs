using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>Lease conflicts between two owners (distinct owner pids on distinct connections).</summary>
public class ConflictTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    /// <summary>Owners "a" (id 1) and "b" (id 2) on their own connections, and lockspace "ls" created over a's.</summary>
    private static async Task<(LockProtocolClient A, LockProtocolClient B, SandboxProcess OwnerB, string Ls)> TwoOwnersAsync(DaemonEnv env)
    {
        var (a, _) = await env.ConnectOwnerAsync(1, "a");
        var (b, ownerB) = await env.ConnectOwnerAsync(2, "b");
        var ls = await env.CreateLockspaceAsync(a);
        return (a, b, ownerB, ls);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Exclusive_vs_exclusive_conflicts(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, b, _, ls) = await TwoOwnersAsync(env);
        using var __ = a; using var ___ = b;
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Locked(await b.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate), "r");
        RpcAssert.Ok(await a.ReleaseResourceAsync(ls, "r"));
        RpcAssert.Ok(await b.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Locked(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate), "r");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Shared_vs_shared_is_allowed_and_last_release_frees(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, _) = await env.ConnectOwnerAsync(1, "a");
        var (b, _) = await env.ConnectOwnerAsync(2, "b");
        var (c, _) = await env.ConnectOwnerAsync(3, "c");
        using var __ = a; using var ___ = b; using var ____ = c;
        var ls = await env.CreateLockspaceAsync(a);
        const uint Shared = LockProtocol.AcquireShared | LockProtocol.AcquireAutoCreate;
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "s", Shared));
        RpcAssert.Ok(await b.AcquireResourceAsync(ls, "s", Shared));
        RpcAssert.Locked(await c.AcquireResourceAsync(ls, "s", LockProtocol.AcquireAutoCreate), "s");
        RpcAssert.Ok(await a.ReleaseResourceAsync(ls, "s"));
        RpcAssert.Locked(await c.AcquireResourceAsync(ls, "s", LockProtocol.AcquireAutoCreate), "s");
        RpcAssert.Ok(await b.ReleaseResourceAsync(ls, "s"));
        RpcAssert.Ok(await c.AcquireResourceAsync(ls, "s", LockProtocol.AcquireAutoCreate));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Shared_vs_exclusive_conflicts_both_ways(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, b, _, ls) = await TwoOwnersAsync(env);
        using var __ = a; using var ___ = b;
        const uint Shared = LockProtocol.AcquireShared | LockProtocol.AcquireAutoCreate;
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "x", LockProtocol.AcquireAutoCreate));
        RpcAssert.Locked(await b.AcquireResourceAsync(ls, "x", Shared), "x");
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "y", Shared));
        RpcAssert.Locked(await b.AcquireResourceAsync(ls, "y", LockProtocol.AcquireAutoCreate), "y");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Release_by_non_owner_is_refused_and_lease_kept(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, b, ownerB, ls) = await TwoOwnersAsync(env);
        using var __ = a; using var ___ = b;
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Error(await b.ReleaseResourceAsync(ls, "r"), Err.InternalError, Err.FromLockspace,
            $"internal error: owner {ownerB.Pid} does not hold the resource lock");
        RpcAssert.Locked(await b.AcquireResourceAsync(ls, "r"), "r");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Delete_of_held_resource_is_refused_for_anyone(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, b, _, ls) = await TwoOwnersAsync(env);
        using var __ = a; using var ___ = b;
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Locked(await b.DeleteResourceAsync(ls, "r"), "r");
        RpcAssert.Locked(await a.DeleteResourceAsync(ls, "r"), "r");
        Assert.True(File.Exists(Path.Combine(ls, "r")));
    }

    /// <summary>Leases are keyed by owner pid, not by connection: two connections registering the same pid share leases.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Same_owner_pid_on_two_connections_can_release_each_others_lease(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, owner) = await env.ConnectOwnerAsync(1, "a");
        using var __ = a;
        using var a2 = await env.ConnectAsync();
        RpcAssert.Ok(await a2.RegisterAsync((uint)owner.Pid, 1, "a"));
        var ls = await env.CreateLockspaceAsync(a);
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Locked(await a2.AcquireResourceAsync(ls, "r"), "r");
        RpcAssert.Ok(await a2.ReleaseResourceAsync(ls, "r"));
    }
}
