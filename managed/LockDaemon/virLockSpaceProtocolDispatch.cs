using Libvirt.Util;
using Libvirt.Rpc;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Host;
using Libvirt.Interop;
using Libvirt.LockDaemon.LockSpace;
using static Libvirt.Interop.Methods;
using unsafe DispatchFunc = delegate* unmanaged[Cdecl]<Libvirt.Interop.virNetServer*, Libvirt.Interop.virNetServerClient*, Libvirt.Interop.virNetMessage*, Libvirt.Interop.virNetMessageError*, void*, void*, int>;

namespace Libvirt.LockDaemon;

/// <summary>
/// The lock program (0xEA7BEEF v1): the procedure table libvirt's
/// virNetServerProgram dispatches through, and one entry point per
/// procedure with the C daemon's checks and error replies. Dispatch is
/// synchronous on the event loop thread, so libvirt's per-thread last error
/// is the one the reply carries.
/// </summary>
public static unsafe class virLockSpaceProtocolDispatch
{
    private const virErrorDomain FromThis = virErrorDomain.VIR_FROM_RPC;
    /// <summary>The program, procedures 1..8 in protocol order.</summary>
    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram((uint)VIR_LOCK_SPACE_PROTOCOL_PROGRAM, (uint)VIR_LOCK_SPACE_PROTOCOL_PROGRAM_VERSION,
            &virtshimLockProcInfo,
            [
                (nint)(DispatchFunc)(&Register),
                (nint)(DispatchFunc)(&Restrict),
                (nint)(DispatchFunc)(&New),
                (nint)(DispatchFunc)(&CreateResource),
                (nint)(DispatchFunc)(&DeleteResource),
                (nint)(DispatchFunc)(&AcquireResource),
                (nint)(DispatchFunc)(&ReleaseResource),
                (nint)(DispatchFunc)(&CreateLockSpace),
            ]);

    // ---- shared checks, in the C daemon's order ----

    private static bool CheckRestricted(virLockDaemonClient priv, string fn)
    {
        if (!priv.Restricted)
            return true;
        LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_OPERATION_DENIED, fn,
            "lock manager connection has been restricted");
        return false;
    }

    private static bool CheckRegistered(virLockDaemonClient priv, string fn)
    {
        if (priv.OwnerId != 0)
            return true;
        LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_OPERATION_INVALID, fn,
            "lock owner details have not been registered");
        return false;
    }

    private static ILockSpace? FindLockSpace(sbyte* path, string fn)
    {
        var space = virLockDaemon.Instance.FindLockSpace(path);
        if (space is null)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                $"Lockspace for path {NativeUtf8.Read(path)} does not exist");
        }
        return space;
    }

    /// <summary>Runs one procedure: the client's lock held, any exception
    /// turned into an error reply (one escaping would kill the process).</summary>
    private static int Run<TArgs>(virNetServerClient* client, virNetMessageError* rerr, TArgs* args, string fn,
        delegate*<virLockDaemonClient, TArgs*, string, bool> body) where TArgs : unmanaged
    {
        bool ok;
        try
        {
            var priv = virLockDaemon.Client(client);
            lock (priv.Lock)
                ok = body(priv, args, fn);
        }
        catch (Exception e)
        {
            return VirNetServerProgramError.Reply(rerr, FromThis, fn, e);
        }
        return ok ? 0 : VirNetServerProgramError.Reply(rerr);
    }

    // ---- procedures ----

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Register(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolRegisterArgs*)args, "virLockSpaceProtocolDispatchRegister", &DoRegister);

    private static bool DoRegister(virLockDaemonClient priv, virLockSpaceProtocolRegisterArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn))
            return false;
        if (args->owner.id == 0)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_OPERATION_INVALID, fn,
                "lock owner details have not been registered");
            return false;
        }
        priv.OwnerName = NativeUtf8.Read(args->owner.name);
        new ReadOnlySpan<byte>(args->owner.uuid, 16).CopyTo(priv.OwnerUUID);
        priv.OwnerId = args->owner.id;
        priv.OwnerPid = (int)args->owner.pid;
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Restrict(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolRestrictArgs*)args, "virLockSpaceProtocolDispatchRestrict", &DoRestrict);

    private static bool DoRestrict(virLockDaemonClient priv, virLockSpaceProtocolRestrictArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        priv.Restricted = true;
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int New(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolNewArgs*)args, "virLockSpaceProtocolDispatchNew", &DoNew);

    private static bool DoNew(virLockDaemonClient priv, virLockSpaceProtocolNewArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        if (args->path == null || *args->path == 0)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_OPERATION_INVALID, fn,
                "the default lockspace already exists");
            return false;
        }
        if (virLockDaemon.Instance.FindLockSpace(args->path) is not null)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                $"Lockspace for path {NativeUtf8.Read(args->path)} already exists");
            return false;
        }
        virResetLastError();
        // As in the C daemon, NEW replies success even if the directory
        // could not be set up; CREATE_LOCKSPACE is the checked variant.
        virLockDaemon.Instance.AddLockSpace(args->path);
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int CreateResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolCreateResourceArgs*)args, "virLockSpaceProtocolDispatchCreateResource", &DoCreateResource);

    private static bool DoCreateResource(virLockDaemonClient priv, virLockSpaceProtocolCreateResourceArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        var space = FindLockSpace(args->path, fn);
        return space is not null && space.CreateResource(args->name) >= 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DeleteResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolDeleteResourceArgs*)args, "virLockSpaceProtocolDispatchDeleteResource", &DoDeleteResource);

    private static bool DoDeleteResource(virLockDaemonClient priv, virLockSpaceProtocolDeleteResourceArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        var space = FindLockSpace(args->path, fn);
        return space is not null && space.DeleteResource(args->name) >= 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int AcquireResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolAcquireResourceArgs*)args, "virLockSpaceProtocolDispatchAcquireResource", &DoAcquireResource);

    private static bool DoAcquireResource(virLockDaemonClient priv, virLockSpaceProtocolAcquireResourceArgs* args, string fn)
    {
        const uint supported = VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED | VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE;
        if (!LibvirtError.CheckFlags(FromThis, args->flags, supported, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        var space = FindLockSpace(args->path, fn);
        if (space is null)
            return false;
        var flags = LockSpaceAcquireFlags.None;
        if ((args->flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED) != 0)
            flags |= LockSpaceAcquireFlags.Shared;
        if ((args->flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE) != 0)
            flags |= LockSpaceAcquireFlags.AutoCreate;
        return space.AcquireResource(args->name, priv.OwnerPid, flags) >= 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ReleaseResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolReleaseResourceArgs*)args, "virLockSpaceProtocolDispatchReleaseResource", &DoReleaseResource);

    private static bool DoReleaseResource(virLockDaemonClient priv, virLockSpaceProtocolReleaseResourceArgs* args, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn) || !CheckRestricted(priv, fn) || !CheckRegistered(priv, fn))
            return false;
        var space = FindLockSpace(args->path, fn);
        return space is not null && space.ReleaseResource(args->name, priv.OwnerPid) >= 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int CreateLockSpace(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolCreateLockSpaceArgs*)args, "virLockSpaceProtocolDispatchCreateLockSpace", &DoCreateLockSpace);

    private static bool DoCreateLockSpace(virLockDaemonClient priv, virLockSpaceProtocolCreateLockSpaceArgs* args, string fn)
    {
        if (!CheckRestricted(priv, fn))
            return false;
        // idempotent: an existing lock space is success
        if (virLockDaemon.Instance.FindLockSpace(args->path) is not null)
            return true;
        return virLockDaemon.Instance.AddLockSpace(args->path) is not null;
    }
}
