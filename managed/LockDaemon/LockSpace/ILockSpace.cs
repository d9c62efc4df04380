namespace Libvirt.LockDaemon.LockSpace;

/// <summary>
/// The migratable lock space subsystem (libvirt's virLockSpace): named
/// resources under one directory (or, for the default lock space, absolute
/// paths), each held shared or exclusive by owner pids through fcntl locks.
/// Names are NUL-terminated UTF-8 as they arrive off the wire, so the
/// native implementation passes them through without copying.
/// On failure a method returns -1 with libvirt's last error set, as the C
/// functions do, so the RPC layer replies with the same error.
/// </summary>
public unsafe interface ILockSpace : IDisposable
{
    /// <summary>The directory, or null for the default lock space.</summary>
    string? Directory { get; }

    int CreateResource(sbyte* name);
    int DeleteResource(sbyte* name);
    int AcquireResource(sbyte* name, int ownerPid, LockSpaceAcquireFlags flags);
    int ReleaseResource(sbyte* name, int ownerPid);

    /// <summary>Releases all of an owner's leases; returns how many it held, or -1.</summary>
    int ReleaseResourcesForOwner(int ownerPid);

    /// <summary>
    /// The lock space in the exec-restart state format of virtlockd 9.0.0
    /// ("directory", "resources": name, path, fd, lockHeld, flags, owners),
    /// with every lock fd made inheritable so the locks survive exec.
    /// </summary>
    System.Text.Json.Nodes.JsonNode? PreExecRestart();
}

[Flags]
public enum LockSpaceAcquireFlags : uint
{
    None = 0,
    Shared = 1 << 0,
    AutoCreate = 1 << 1,
}

/// <summary>Creates lock spaces of one implementation.</summary>
public interface ILockSpaceFactory
{
    /// <summary>Null directory: the default lock space. Null result: libvirt's error is set.</summary>
    ILockSpace? Create(string? directory);

    /// <summary>A lock space restored from its PreExecRestart form, taking
    /// over the inherited lock fds.</summary>
    ILockSpace? NewPostExecRestart(System.Text.Json.Nodes.JsonNode state);
}
