using System.Text;

namespace Libvirt.LockDaemon;

/// <summary>Per-connection private data of the lock program, as the C
/// daemon keeps it: who is connected (clientPid, from SO_PEERCRED) and which
/// lease owner it registered (usually a QEMU process). The daemon reuses the
/// data of closed connections (<see cref="virLockDaemon.ClientNew"/>): the
/// lock client opens a connection per acquire and per release.</summary>
public sealed class virLockDaemonClient
{
    public readonly Lock Lock = new();
    public bool Restricted;
    public readonly byte[] OwnerUUID = new byte[16];
    public uint OwnerId;
    public int OwnerPid;
    public int ClientPid;
    /// <summary>The daemon this connection belongs to: procedures reach the
    /// lock spaces through it.</summary>
    public readonly virLockDaemon Daemon;

    // the registered name as the call carried it (-1: none, the C daemon's
    // NULL); made a string only when asked for, at an exec-restart's save
    private byte[] _ownerName = [];
    private int _ownerNameLength = -1;
    private string? _ownerNameString;

    public virLockDaemonClient(virLockDaemon daemon) => Daemon = daemon;

    /// <summary>The owner's name, null before REGISTER.</summary>
    public string? OwnerName
    {
        get => _ownerNameLength < 0 ? null
            : _ownerNameString ??= Encoding.UTF8.GetString(_ownerName, 0, _ownerNameLength);
        set
        {
            if (value is null)
            {
                _ownerNameLength = -1;
                _ownerNameString = null;
                return;
            }
            SetOwnerName(Encoding.UTF8.GetBytes(value));
            _ownerNameString = value;
        }
    }

    /// <summary>REGISTER's name, copied into the client's own buffer.</summary>
    public void SetOwnerName(ReadOnlySpan<byte> name)
    {
        if (_ownerName.Length < name.Length)
            _ownerName = new byte[Math.Max(name.Length, 64)];
        name.CopyTo(_ownerName);
        _ownerNameLength = name.Length;
        _ownerNameString = null;
    }

    /// <summary>The state of a new connection from <paramref name="clientPid"/>.</summary>
    internal void Reset(int clientPid)
    {
        Restricted = false;
        Array.Clear(OwnerUUID);
        OwnerId = 0;
        OwnerPid = 0;
        ClientPid = clientPid;
        _ownerNameLength = -1;
        _ownerNameString = null;
    }
}
