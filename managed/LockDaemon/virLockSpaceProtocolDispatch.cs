using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Xdr.LockProtocolConstants;

namespace Libvirt.LockDaemon;

/// <summary>
/// The lock program's procedures (0xEA7BEEF v1, lock_daemon_dispatch.c):
/// the bodies of <see cref="IVirLockSpaceProtocolProgram{TClient}"/>,
/// written once for any RPC layer, with the C daemon's checks, in its
/// order, and its errors as values. Each runs with the client's lock held.
/// libvirt's virNetServer serves them through
/// <see cref="virLockSpaceProtocolNative"/>. Argument strings are slices of
/// the call's message: nothing here keeps one past the call.
/// </summary>
public sealed class virLockSpaceProtocolDispatch : IVirLockSpaceProtocolProgram<virLockDaemonClient>
{
    private const VirErrorDomain FromThis = VirErrorDomain.Rpc;

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

    private static VirResult<IVirLockSpace> FindLockSpace(virLockDaemonClient priv, ReadOnlyMemory<byte> path)
    {
        var space = priv.Daemon.FindLockSpace(path.Span);
        if (space is null)
            return VirError.Report(FromThis, VirErrorCode.InternalError, $"Lockspace for path {Libvirt.Interop.LosslessUtf8.Decode(path.Span)} does not exist");
        return new VirResult<IVirLockSpace>(space);
    }

    // ---- procedures ----

    public VirResult Register(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolRegisterArgs args)
    {
        lock (priv.Lock)
        {
            if ((VirError.CheckFlags(FromThis, args.flags, 0, "virLockSpaceProtocolDispatchRegister") ?? CheckRestricted(priv)) is { } err)
                return err;
            if (args.owner.id == 0)
                return VirError.Report(FromThis, VirErrorCode.OperationInvalid, "lock owner details have not been registered");
            priv.SetOwnerName(args.owner.name.Span);
            args.owner.uuid.Span.CopyTo(priv.OwnerUUID);
            priv.OwnerId = args.owner.id;
            priv.OwnerPid = (int)args.owner.pid;
            return VirResult.Success;
        }
    }

    public VirResult Restrict(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolRestrictArgs args)
    {
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, 0, "virLockSpaceProtocolDispatchRestrict") is { } err)
                return err;
            priv.Restricted = true;
            return VirResult.Success;
        }
    }

    public VirResult New(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolNewArgs args)
    {
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, 0, "virLockSpaceProtocolDispatchNew") is { } err)
                return err;
            var path = args.path.Span;
            if (path.IsEmpty)
                return VirError.Report(FromThis, VirErrorCode.OperationInvalid, "the default lockspace already exists");
            if (priv.Daemon.FindLockSpace(path) is not null)
                return VirError.Report(FromThis, VirErrorCode.InternalError, $"Lockspace for path {Libvirt.Interop.LosslessUtf8.Decode(path)} already exists");
            // As in the C daemon, NEW replies success even if the directory
            // could not be set up; CREATE_LOCKSPACE is the checked variant.
            priv.Daemon.AddLockSpace(path);
            return VirResult.Success;
        }
    }

    public VirResult CreateResource(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolCreateResourceArgs args)
    {
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, 0, "virLockSpaceProtocolDispatchCreateResource") is { } err)
                return err;
            if (!FindLockSpace(priv, args.path).TryGet(out var space, out err))
                return err!;
            return space.CreateResource(args.name.Span);
        }
    }

    public VirResult DeleteResource(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolDeleteResourceArgs args)
    {
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, 0, "virLockSpaceProtocolDispatchDeleteResource") is { } err)
                return err;
            if (!FindLockSpace(priv, args.path).TryGet(out var space, out err))
                return err!;
            return space.DeleteResource(args.name.Span);
        }
    }

    public VirResult AcquireResource(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolAcquireResourceArgs args)
    {
        const uint supported = VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED | VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE;
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, supported, "virLockSpaceProtocolDispatchAcquireResource") is { } err)
                return err;
            if (!FindLockSpace(priv, args.path).TryGet(out var space, out err))
                return err!;
            var flags = VirLockSpaceAcquireFlags.None;
            if ((args.flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED) != 0)
                flags |= VirLockSpaceAcquireFlags.Shared;
            if ((args.flags & VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE) != 0)
                flags |= VirLockSpaceAcquireFlags.AutoCreate;
            return space.AcquireResource(args.name.Span, priv.OwnerPid, flags);
        }
    }

    public VirResult ReleaseResource(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolReleaseResourceArgs args)
    {
        lock (priv.Lock)
        {
            if (Check(priv, args.flags, 0, "virLockSpaceProtocolDispatchReleaseResource") is { } err)
                return err;
            if (!FindLockSpace(priv, args.path).TryGet(out var space, out err))
                return err!;
            return space.ReleaseResource(args.name.Span, priv.OwnerPid);
        }
    }

    public VirResult CreateLockSpace(virLockDaemonClient priv, XdrCallContext call, in virLockSpaceProtocolCreateLockSpaceArgs args)
    {
        lock (priv.Lock)
        {
            if (CheckRestricted(priv) is { } err)
                return err;
            var path = args.path.Span;
            // idempotent: an existing lock space is success
            if (priv.Daemon.FindLockSpace(path) is not null)
                return VirResult.Success;
            return priv.Daemon.AddLockSpace(path).Error is { } e ? e : VirResult.Success;
        }
    }
}
