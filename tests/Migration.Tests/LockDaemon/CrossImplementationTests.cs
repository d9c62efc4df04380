using Libvirt.Tests.Contracts;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// The C virtlockd and ours with the managed lock space
/// (<c>lock_space_impl = "managed"</c>), each in its own sandbox, on one lock
/// space directory and one disk file under /tmp: a lease either takes is
/// refused by the other, because both take the same fcntl locks.
/// </summary>
public class CrossImplementationTests
{
    /// <summary>The daemon that takes the lease first: C, or ours with the managed lock space.</summary>
    public static TheoryData<DaemonKind> Holders => new() { DaemonKind.C, DaemonKind.ManagedStore };

    private static DaemonKind Other(DaemonKind kind) => kind == DaemonKind.C ? DaemonKind.ManagedStore : DaemonKind.C;

    private static Task<DaemonEnv> StartAsync(DaemonKind kind) => DaemonEnv.StartAsync(kind);

    /// <summary>The POSIX locks <paramref name="pid"/> holds on <paramref name="path"/>.</summary>
    private static List<string> LocksOf(int pid, string path)
        => ProcLocks.On(ProcLocks.Identify(path)).Where(l => l.Pid == pid).Select(l => $"{l.Kind} {l.Access}").ToList();

    [Theory]
    [MemberData(nameof(Holders))]
    public async Task A_lease_in_a_lock_space_directory_is_refused_by_the_other_daemon(DaemonKind holderKind)
    {
        using var shared = new TempDirectory("vlt-cross-");
        string dir = shared["lockspace"], file = Path.Combine(dir, "disk");
        await using var holder = await StartAsync(holderKind);
        await using var other = await StartAsync(Other(holderKind));
        var (h, _) = await holder.ConnectOwnerAsync(1, "holder");
        var (o, _) = await other.ConnectOwnerAsync(2, "other");
        using var __ = h;
        using var ___ = o;
        RpcAssert.Ok(await h.CreateLockspaceAsync(dir), "CREATE_LOCKSPACE (holder)");
        RpcAssert.Ok(await o.CreateLockspaceAsync(dir), "CREATE_LOCKSPACE (other)");

        RpcAssert.Ok(await h.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate));
        Assert.Equal(["POSIX WRITE"], LocksOf(holder.Daemon.Pid, file));
        RpcAssert.Locked(await o.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate), "disk");
        RpcAssert.Locked(await o.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate | LockProtocol.AcquireShared), "disk");
        RpcAssert.Locked(await o.AcquireResourceAsync(dir, "disk"), "disk");

        // released (and, auto-created, unlinked) by the holder: now the other's
        RpcAssert.Ok(await h.ReleaseResourceAsync(dir, "disk"));
        RpcAssert.Ok(await o.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate));
        Assert.Equal(["POSIX WRITE"], LocksOf(other.Daemon.Pid, file));
        Assert.Empty(LocksOf(holder.Daemon.Pid, file));
        RpcAssert.Locked(await h.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate), "disk");

        // a daemon that dies drops its locks with it
        await other.Daemon.StopAsync();
        RpcAssert.Ok(await h.AcquireResourceAsync(dir, "disk", LockProtocol.AcquireAutoCreate));
    }

    [Theory]
    [MemberData(nameof(Holders))]
    public async Task A_lease_on_a_disk_file_is_refused_by_the_other_daemon(DaemonKind holderKind)
    {
        // the default lock space (path ""): resources are the disk paths themselves
        using var shared = new TempDirectory("vlt-cross-");
        string disk = shared["disk.img"], shareable = shared["shareable.img"];
        File.WriteAllText(disk, "");
        File.WriteAllText(shareable, "");
        await using var holder = await StartAsync(holderKind);
        await using var other = await StartAsync(Other(holderKind));
        var (h, _) = await holder.ConnectOwnerAsync(1, "holder");
        var (o, _) = await other.ConnectOwnerAsync(2, "other");
        using var __ = h;
        using var ___ = o;

        RpcAssert.Ok(await h.AcquireResourceAsync("", disk));
        RpcAssert.Locked(await o.AcquireResourceAsync("", disk), disk);
        RpcAssert.Locked(await o.AcquireResourceAsync("", disk, LockProtocol.AcquireShared), disk);

        // shared leases coexist across the two daemons, an exclusive one does not
        RpcAssert.Ok(await h.AcquireResourceAsync("", shareable, LockProtocol.AcquireShared));
        RpcAssert.Ok(await o.AcquireResourceAsync("", shareable, LockProtocol.AcquireShared));
        Assert.Equal(["POSIX READ"], LocksOf(holder.Daemon.Pid, shareable));
        Assert.Equal(["POSIX READ"], LocksOf(other.Daemon.Pid, shareable));
        RpcAssert.Ok(await o.ReleaseResourceAsync("", shareable));
        var (o2, _) = await other.ConnectOwnerAsync(3, "other-2");
        using var ____ = o2;
        RpcAssert.Locked(await o2.AcquireResourceAsync("", shareable), shareable);

        RpcAssert.Ok(await h.ReleaseResourceAsync("", disk));
        RpcAssert.Ok(await o.AcquireResourceAsync("", disk));
        RpcAssert.Locked(await h.AcquireResourceAsync("", disk), disk);
        Assert.True(File.Exists(disk)); // not auto-created: never unlinked
    }
}
