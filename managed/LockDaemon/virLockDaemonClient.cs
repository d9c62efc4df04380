namespace Libvirt.LockDaemon;

/// <summary>Per-connection private data of the lock program, as the C
/// daemon keeps it: who is connected (clientPid, from SO_PEERCRED) and which
/// lease owner it registered (usually a QEMU process).</summary>
public sealed class virLockDaemonClient
{
    public readonly Lock Lock = new();
    public bool Restricted;
    public byte[] OwnerUUID = new byte[16];
    public string? OwnerName;
    public uint OwnerId;
    public int OwnerPid;
    public int ClientPid;
    /// <summary>The daemon this connection belongs to: procedures reach the
    /// lock spaces through it.</summary>
    public required virLockDaemon Daemon;
}
