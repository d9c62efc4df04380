using Libvirt.Util;
using Libvirt.Rpc;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Host;
using Libvirt.Interop;
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
    private const VirErrorDomain FromThis = VirErrorDomain.Rpc;
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

    private static VirError? CheckRestricted(virLockDaemonClient priv)
        => priv.Restricted
            ? VirError.Report(FromThis, VirErrorCode.OperationDenied, "lock manager connection has been restricted")
            : null;

    private static VirError? CheckRegistered(virLockDaemonClient priv)
        => priv.OwnerId != 0
            ? null
            : VirError.Report(FromThis, VirErrorCode.OperationInvalid, "lock owner details have not been registered");

    /// <summary>virCheckFlags, then the restricted and registered checks.</summary>
    private static VirError? Check(virLockDaemonClient priv, uint flags, uint supported, string fn)
        => VirError.CheckFlags(FromThis, flags, supported, fn) ?? CheckRestricted(priv) ?? CheckRegistered(priv);

    /// <summary>A wire string (NUL-terminated, maybe null) as a span.</summary>
    private static ReadOnlySpan<byte> Span(sbyte* s)
        => s == null ? default : MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)s);

    private static VirResult<IVirLockSpace> FindLockSpace(virLockDaemonClient priv, sbyte* path)
    {
        var space = priv.Daemon.FindLockSpace(Span(path));
        if (space is null)
            return VirError.Report(FromThis, VirErrorCode.InternalError, $"Lockspace for path {NativeUtf8.Read(path)} does not exist");
        return new VirResult<IVirLockSpace>(space);
    }

    /// <summary>Runs one procedure with the client's lock held. Its error
    /// value, or any exception (one escaping would kill the process), is
    /// handed to libvirt here, at the boundary, to go into the reply.</summary>
    private static int Run<TArgs>(virNetServerClient* client, virNetMessageError* rerr, TArgs* args, string fn,
        delegate*<virLockDaemonClient, TArgs*, string, VirResult> body) where TArgs : unmanaged
    {
        VirResult result;
        try
        {
            var priv = virLockDaemon.Client(client);
            lock (priv.Lock)
                result = body(priv, args, fn);
        }
        catch (Exception e)
        {
            return VirNetServerProgramError.Reply(rerr, virErrorDomain.VIR_FROM_RPC, fn, e);
        }
        return result.Ok ? 0 : VirNetServerProgramError.Reply(rerr, result.Error!, fn);
    }

    // ---- procedures ----

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Register(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolRegisterArgs*)args, "virLockSpaceProtocolDispatchRegister", &DoRegister);

    private static VirResult DoRegister(virLockDaemonClient priv, virLockSpaceProtocolRegisterArgs* args, string fn)
    {
        if ((VirError.CheckFlags(FromThis, args->flags, 0, fn) ?? CheckRestricted(priv)) is { } err)
            return err;
        if (args->owner.id == 0)
            return VirError.Report(FromThis, VirErrorCode.OperationInvalid, "lock owner details have not been registered");
        priv.OwnerName = NativeUtf8.Read(args->owner.name);
        new ReadOnlySpan<byte>(args->owner.uuid, 16).CopyTo(priv.OwnerUUID);
        priv.OwnerId = args->owner.id;
        priv.OwnerPid = (int)args->owner.pid;
        return VirResult.Success;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Restrict(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolRestrictArgs*)args, "virLockSpaceProtocolDispatchRestrict", &DoRestrict);

    private static VirResult DoRestrict(virLockDaemonClient priv, virLockSpaceProtocolRestrictArgs* args, string fn)
    {
        if (Check(priv, args->flags, 0, fn) is { } err)
            return err;
        priv.Restricted = true;
        return VirResult.Success;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int New(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolNewArgs*)args, "virLockSpaceProtocolDispatchNew", &DoNew);

    private static VirResult DoNew(virLockDaemonClient priv, virLockSpaceProtocolNewArgs* args, string fn)
    {
        if (Check(priv, args->flags, 0, fn) is { } err)
            return err;
        var path = Span(args->path);
        if (path.IsEmpty)
            return VirError.Report(FromThis, VirErrorCode.OperationInvalid, "the default lockspace already exists");
        if (priv.Daemon.FindLockSpace(path) is not null)
            return VirError.Report(FromThis, VirErrorCode.InternalError, $"Lockspace for path {NativeUtf8.Read(args->path)} already exists");
        // As in the C daemon, NEW replies success even if the directory
        // could not be set up; CREATE_LOCKSPACE is the checked variant.
        priv.Daemon.AddLockSpace(path);
        return VirResult.Success;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int CreateResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolCreateResourceArgs*)args, "virLockSpaceProtocolDispatchCreateResource", &DoCreateResource);

    private static VirResult DoCreateResource(virLockDaemonClient priv, virLockSpaceProtocolCreateResourceArgs* args, string fn)
    {
        if (Check(priv, args->flags, 0, fn) is { } err)
            return err;
        if (!FindLockSpace(priv, args->path).TryGet(out var space, out err))
            return err!;
        return space.CreateResource(Span(args->name));
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DeleteResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolDeleteResourceArgs*)args, "virLockSpaceProtocolDispatchDeleteResource", &DoDeleteResource);

    private static VirResult DoDeleteResource(virLockDaemonClient priv, virLockSpaceProtocolDeleteResourceArgs* args, string fn)
    {
        if (Check(priv, args->flags, 0, fn) is { } err)
            return err;
        if (!FindLockSpace(priv, args->path).TryGet(out var space, out err))
            return err!;
        return space.DeleteResource(Span(args->name));
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int AcquireResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolAcquireResourceArgs*)args, "virLockSpaceProtocolDispatchAcquireResource", &DoAcquireResource);

    private static VirResult DoAcquireResource(virLockDaemonClient priv, virLockSpaceProtocolAcquireResourceArgs* args, string fn)
    {
        const uint supported = VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED | VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE;
        if (Check(priv, args->flags, supported, fn) is { } err)
            return err;
        if (!FindLockSpace(priv, args->path).TryGet(out var space, out err))
            return err!;
        var flags = VirLockSpaceAcquireFlags.None;
        if ((args->flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED) != 0)
            flags |= VirLockSpaceAcquireFlags.Shared;
        if ((args->flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE) != 0)
            flags |= VirLockSpaceAcquireFlags.AutoCreate;
        return space.AcquireResource(Span(args->name), priv.OwnerPid, flags);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ReleaseResource(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolReleaseResourceArgs*)args, "virLockSpaceProtocolDispatchReleaseResource", &DoReleaseResource);

    private static VirResult DoReleaseResource(virLockDaemonClient priv, virLockSpaceProtocolReleaseResourceArgs* args, string fn)
    {
        if (Check(priv, args->flags, 0, fn) is { } err)
            return err;
        if (!FindLockSpace(priv, args->path).TryGet(out var space, out err))
            return err!;
        return space.ReleaseResource(Span(args->name), priv.OwnerPid);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int CreateLockSpace(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run(client, rerr, (virLockSpaceProtocolCreateLockSpaceArgs*)args, "virLockSpaceProtocolDispatchCreateLockSpace", &DoCreateLockSpace);

    private static VirResult DoCreateLockSpace(virLockDaemonClient priv, virLockSpaceProtocolCreateLockSpaceArgs* args, string fn)
    {
        if (CheckRestricted(priv) is { } err)
            return err;
        var path = Span(args->path);
        // idempotent: an existing lock space is success
        if (priv.Daemon.FindLockSpace(path) is not null)
            return VirResult.Success;
        return priv.Daemon.AddLockSpace(path).Error is { } e ? e : VirResult.Success;
    }
}
