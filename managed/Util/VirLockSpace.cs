using System.Text.Json.Nodes;

namespace Libvirt.Util;

/// <summary>
/// The lock space contract (libvirt's src/util/virlockspace.c): named
/// resources under one directory, or absolute paths for the default lock
/// space (no directory), each held shared or exclusively by owner pids
/// through fcntl byte-range locks on the resource file. Names are UTF-8
/// without a terminating NUL, as they come off the wire; errors are values,
/// with the same code, domain and message as the C functions report.
/// </summary>
public interface IVirLockSpace : IDisposable
{
    /// <summary>The directory, or null for the default lock space.</summary>
    string? Directory { get; }

    VirResult CreateResource(ReadOnlySpan<byte> name);
    VirResult DeleteResource(ReadOnlySpan<byte> name);
    VirResult AcquireResource(ReadOnlySpan<byte> name, int ownerPid, VirLockSpaceAcquireFlags flags);
    VirResult ReleaseResource(ReadOnlySpan<byte> name, int ownerPid);

    /// <summary>Releases every lease of <paramref name="ownerPid"/>; the value
    /// is how many resources it held.</summary>
    VirResult<int> ReleaseResourcesForOwner(int ownerPid);

    /// <summary>
    /// The lock space in virtlockd 9.0.0's exec-restart format ("directory",
    /// "resources": [{"name", "path", "fd", "lockHeld", "flags", "owners"}]),
    /// with every lock fd made inheritable so the locks survive exec.
    /// </summary>
    VirResult<JsonObject> PreExecRestart();
}

/// <summary>virLockSpaceAcquireResource's flags, as libvirt numbers them.</summary>
[Flags]
public enum VirLockSpaceAcquireFlags : uint
{
    None = 0,
    Shared = 1 << 0,
    AutoCreate = 1 << 1,
}

/// <summary>Makes lock spaces of one implementation.</summary>
public interface IVirLockSpaceFactory
{
    /// <summary>"native" or "managed", as the lock_space_impl key names it.</summary>
    string Name { get; }

    /// <summary>virLockSpaceNew: a null directory is the default lock space.</summary>
    VirResult<IVirLockSpace> New(string? directory);

    /// <summary>virLockSpaceNewPostExecRestart: a lock space from its
    /// <see cref="IVirLockSpace.PreExecRestart"/> form (either
    /// implementation's), taking over the inherited lock fds without ever
    /// unlocking them.</summary>
    VirResult<IVirLockSpace> NewPostExecRestart(JsonObject state);
}
