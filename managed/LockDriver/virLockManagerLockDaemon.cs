using System.Security.Cryptography;
using System.Text;
using Libvirt.Interop;
using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Interop.Methods;

namespace Libvirt.LockDriver;

/// <summary>qemu-lockd.conf as lock_driver_lockd.c reads it
/// (virLockManagerLockDaemonDriver).</summary>
internal sealed class LockDaemonDriverConfig
{
    public bool AutoDiskLease = true;
    public bool RequireLeaseForDisks = true;
    public string? FileLockSpaceDir;
    public string? LvmLockSpaceDir;
    public string? ScsiLockSpaceDir;
}

/// <summary>One resource of a lock manager (virLockManagerLockDaemonResource):
/// the daemon's lock space path and resource name as the bytes that go on
/// the wire, and the protocol's acquire flags.</summary>
internal readonly record struct LockDaemonResource(byte[] LockSpace, byte[] Name, uint Flags);

/// <summary>A lock manager's private data (virLockManagerLockDaemonPrivate):
/// the owner the daemon registers and the resources added so far.</summary>
internal sealed class LockDaemonPrivate
{
    public byte[] Uuid = new byte[16];
    public byte[]? Name;
    public int Id;
    public int Pid;
    public readonly List<LockDaemonResource> Resources = [];
    public bool HasRWDisks;
}

/// <summary>
/// The managed twin of libvirt 9.0.0's src/locking/lock_driver_lockd.c: the
/// bodies of the lockd plugin's driver table, as values (every failure is
/// the <see cref="VirError"/> the C function reports for the same input;
/// <see cref="LockDriverExport"/> raises it into libvirt's last error).
///
/// The driver's configuration is process-wide, as the C plugin's static
/// <c>driver</c>: libvirt's lock manager API gives the driver no opaque of
/// its own (drvInit has no out parameter, and a lock manager carries only the
/// table), so this is the one static state. It is written by Init and Deinit
/// only and read by the rest, as in C.
/// </summary>
internal static class virLockManagerLockDaemon
{
    private const VirErrorDomain Domain = VirErrorDomain.Locking;

    // lock_driver.h and lock_protocol.x
    private const uint NewStarted = (uint)virLockManagerNewFlags.VIR_LOCK_MANAGER_NEW_STARTED;
    private const uint ResourceReadonly = (uint)virLockManagerResourceFlags.VIR_LOCK_MANAGER_RESOURCE_READONLY;
    private const uint ResourceShared = (uint)virLockManagerResourceFlags.VIR_LOCK_MANAGER_RESOURCE_SHARED;
    private const uint AcquireRegisterOnly = (uint)virLockManagerAcquireFlags.VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY;
    private const uint AcquireRestrict = (uint)virLockManagerAcquireFlags.VIR_LOCK_MANAGER_ACQUIRE_RESTRICT;
    private const uint ProtocolShared = LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_SHARED;
    private const uint ProtocolAutoCreate = LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE;
    /// <summary>LVS in Debian's build of libvirt 9.0.0 (meson found lvm2's lvs).</summary>
    private const string Lvs = "/sbin/lvs";

    private static readonly Lock s_lock = new();
    private static LockDaemonDriverConfig? s_driver;

    /// <summary>The configuration after a successful Init (null before, and after Deinit).</summary>
    public static LockDaemonDriverConfig? Driver => s_driver;

    private static VirError? CheckFlags(uint flags, uint supported, string function)
        => VirError.CheckFlags(Domain, flags, supported, function);

    private static VirError Internal(string detail) => VirError.Report(Domain, VirErrorCode.InternalError, detail);

    // ------------------------------------------------------------------
    // drvInit, drvDeinit
    // ------------------------------------------------------------------

    /// <summary>virLockManagerLockDaemonInit: reads the config file and,
    /// with auto_disk_leases, has the daemon create each configured lock
    /// space directory (CREATE_LOCKSPACE). A second Init is a no-op.</summary>
    public static VirResult Init(uint version, string? configFile, uint flags)
    {
        if (CheckFlags(flags, 0, "virLockManagerLockDaemonInit") is { } flagError)
            return flagError;
        lock (s_lock)
        {
            if (s_driver is not null)
                return VirResult.Success;

            var driver = new LockDaemonDriverConfig();
            if (LoadConfig(driver, configFile) is { } configError)
                return configError;

            if (driver.AutoDiskLease)
            {
                foreach (var dir in (ReadOnlySpan<string?>)[driver.FileLockSpaceDir, driver.LvmLockSpaceDir, driver.ScsiLockSpaceDir])
                {
                    if (dir is not null && SetupLockspace(dir) is { } setupError)
                        return setupError;
                }
            }
            s_driver = driver;
            return VirResult.Success;
        }
    }

    public static VirResult Deinit()
    {
        lock (s_lock)
            s_driver = null;
        return VirResult.Success;
    }

    /// <summary>virLockManagerLockDaemonLoadConfig: the same keys, in the
    /// same order, with virconf.c's errors (a missing file is no error).</summary>
    private static unsafe VirError? LoadConfig(LockDaemonDriverConfig driver, string? configFile)
    {
        int rc, errno;
        using (var p = new NativeUtf8(configFile))
        {
            rc = Libc.access((byte*)p.Pointer, LibcClient.R_OK);
            errno = rc < 0 ? LibcClient.Errno : 0;
        }
        if (rc < 0)
        {
            if (errno != Libc.ENOENT)
                return VirError.System(Domain, errno, $"Unable to access config file {configFile ?? "(null)"}");
            return null;
        }

        try
        {
            var conf = VirConf.ReadFile(configFile!);
            conf.GetBool("auto_disk_leases", ref driver.AutoDiskLease);
            conf.GetString("file_lockspace_dir", ref driver.FileLockSpaceDir);
            conf.GetString("lvm_lockspace_dir", ref driver.LvmLockSpaceDir);
            conf.GetString("scsi_lockspace_dir", ref driver.ScsiLockSpaceDir);
            driver.RequireLeaseForDisks = !driver.AutoDiskLease;
            conf.GetBool("require_lease_for_disks", ref driver.RequireLeaseForDisks);
            return null;
        }
        catch (VirConfException e)
        {
            return ConfError(e);
        }
    }

    /// <summary>A virConf failure as the error libvirt's virConf functions
    /// raise (virReportSystemError for the file, virReportError otherwise).</summary>
    private static VirError ConfError(VirConfException e)
        => e.Code == VirConfException.VIR_ERR_SYSTEM_ERROR
            ? new VirError(e.Code, e.Domain, e.Detail, Str1: "%s", Str2: e.Detail, Int1: e.Errno)
            : VirError.Report((VirErrorDomain)e.Domain, (VirErrorCode)e.Code, e.Detail);

    /// <summary>virLockManagerLockDaemonSetupLockspace: CREATE_LOCKSPACE on a
    /// connection of its own, without REGISTER.</summary>
    private static VirError? SetupLockspace(string path)
    {
        var connected = LockSpaceProtocolClient.Connect(Privileged);
        if (!connected.TryGet(out var client, out var error))
            return error;
        using (client)
        {
            uint counter = 0;
            var args = new virLockSpaceProtocolCreateLockSpaceArgs { path = LosslessUtf8.Encode(path) };
            return client.Call(virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_LOCKSPACE, ref counter, args);
        }
    }

    private static bool Privileged => Libc.geteuid() == 0;

    // ------------------------------------------------------------------
    // drvNew
    // ------------------------------------------------------------------

    /// <summary>virLockManagerLockDaemonNew: the owner of a domain object
    /// from its parameters (uuid, name, id, pid; uri ignored).</summary>
    public static unsafe VirResult<LockDaemonPrivate> New(uint type, nuint nparams, virLockManagerParam* parms, uint flags)
    {
        if (CheckFlags(flags, NewStarted, "virLockManagerLockDaemonNew") is { } flagError)
            return flagError;

        var priv = new LockDaemonPrivate();
        switch (type)
        {
            case (uint)virLockManagerObjectType.VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN:
                for (nuint i = 0; i < nparams; i++)
                {
                    var key = CString(parms[i].key);
                    if (key.SequenceEqual("uuid"u8))
                        new ReadOnlySpan<byte>(parms[i].value.uuid, 16).CopyTo(priv.Uuid);
                    else if (key.SequenceEqual("name"u8))
                        priv.Name = parms[i].value.str == null ? null : CString(parms[i].value.str).ToArray();
                    else if (key.SequenceEqual("id"u8))
                        priv.Id = parms[i].value.iv;
                    else if (key.SequenceEqual("pid"u8))
                        priv.Pid = parms[i].value.iv;
                    else if (key.SequenceEqual("uri"u8))
                    {
                        // ignored
                    }
                    else
                        return Internal($"Unexpected parameter {Text(key)} for object");
                }
                if (priv.Id == 0)
                    return Internal("Missing ID parameter for domain object");
                if (priv.Name is null)
                    return Internal("Missing name parameter for domain object");
                if (!UuidIsValid(priv.Uuid))
                    return Internal("Missing UUID parameter for domain object");
                break;
            default:
                return Internal($"Unknown lock manager object type {(int)type}");
        }
        return priv;
    }

    /// <summary>virUUIDIsValid: not all 16 bytes the same.</summary>
    private static bool UuidIsValid(ReadOnlySpan<byte> uuid)
    {
        int same = 1;
        for (int i = 1; i < uuid.Length; i++)
            if (uuid[i] == uuid[0])
                same++;
        return same != uuid.Length;
    }

    // ------------------------------------------------------------------
    // drvAddResource
    // ------------------------------------------------------------------

    /// <summary>virLockManagerLockDaemonAddResource: a disk (direct lease,
    /// or an automatic one in the LVM, SCSI or file lock space) or an
    /// explicit lease (lock space "path/lockspace").</summary>
    public static unsafe VirResult AddResource(LockDaemonPrivate priv, uint type, byte* name, nuint nparams,
        virLockManagerParam* parms, uint flags)
    {
        if (CheckFlags(flags, ResourceReadonly | ResourceShared, "virLockManagerLockDaemonAddResource") is { } flagError)
            return flagError;
        if ((flags & ResourceReadonly) != 0)
            return VirResult.Success;

        var driver = s_driver ?? throw new InvalidOperationException("the lockd driver is not initialised");
        byte[]? newName = null;
        byte[]? newLockspace = null;
        bool autoCreate = false;
        var nameBytes = CString((sbyte*)name);

        switch (type)
        {
            case (uint)virLockManagerResourceType.VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK:
            {
                if (parms != null || nparams != 0)
                    return Internal("Unexpected parameters for disk resource");
                if (!driver.AutoDiskLease)
                {
                    if ((flags & (ResourceShared | ResourceReadonly)) == 0)
                        priv.HasRWDisks = true;
                    return VirResult.Success;
                }

                bool isDev = nameBytes.StartsWith("/dev"u8);
                if (isDev && driver.LvmLockSpaceDir is not null)
                {
                    var lvm = GetLVMKey(nameBytes);
                    if (!lvm.TryGet(out var key, out var lvmError))
                        return lvmError!;
                    if (key is not null)
                    {
                        newName = key;
                        newLockspace = LosslessUtf8.Encode(driver.LvmLockSpaceDir);
                        autoCreate = true;
                        break;
                    }
                    virResetLastError();
                }

                if (isDev && driver.ScsiLockSpaceDir is not null)
                {
                    var scsi = GetSCSIKey(name);
                    if (!scsi.TryGet(out var key, out var scsiError))
                        return scsiError!;
                    if (key is not null)
                    {
                        newName = key;
                        newLockspace = LosslessUtf8.Encode(driver.ScsiLockSpaceDir);
                        autoCreate = true;
                        break;
                    }
                    virResetLastError();
                }

                if (driver.FileLockSpaceDir is not null)
                {
                    newLockspace = LosslessUtf8.Encode(driver.FileLockSpaceDir);
                    // virCryptoHashString(VIR_CRYPTO_HASH_SHA256): lower-case hex
                    newName = Encoding.ASCII.GetBytes(Convert.ToHexStringLower(SHA256.HashData(nameBytes)));
                    autoCreate = true;
                }
                else
                {
                    newLockspace = [];
                    newName = nameBytes.ToArray();
                }
                break;
            }
            case (uint)virLockManagerResourceType.VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE:
            {
                byte* path = null;
                byte* lockspace = null;
                for (nuint i = 0; i < nparams; i++)
                {
                    var key = CString(parms[i].key);
                    if (key.SequenceEqual("offset"u8))
                    {
                        if (parms[i].value.ul != 0)
                            return Internal("Offset must be zero for this lock manager");
                    }
                    else if (key.SequenceEqual("lockspace"u8))
                        lockspace = (byte*)parms[i].value.str;
                    else if (key.SequenceEqual("path"u8))
                        path = (byte*)parms[i].value.str;
                    else
                        return Internal($"Unexpected parameter {Text(key)} for lease resource");
                }
                if (path == null || lockspace == null)
                    return Internal("Missing path or lockspace for lease resource");
                // g_strdup_printf("%s/%s", path, lockspace)
                newLockspace = [.. CString((sbyte*)path), (byte)'/', .. CString((sbyte*)lockspace)];
                newName = nameBytes.ToArray();
                break;
            }
            default:
                return Internal($"Unknown lock manager object type {(int)type}");
        }

        uint resourceFlags = 0;
        if ((flags & ResourceShared) != 0)
            resourceFlags |= ProtocolShared;
        if (autoCreate)
            resourceFlags |= ProtocolAutoCreate;
        priv.Resources.Add(new LockDaemonResource(newLockspace, newName, resourceFlags));
        return VirResult.Success;
    }

    /// <summary>virLockManagerGetLVMKey (Debian's build has LVS): the LV's
    /// UUID from lvs, through libvirt's own virCommand; null when lvs gives
    /// none (its exit status other than 0 is no error).</summary>
    private static unsafe VirResult<byte[]?> GetLVMKey(ReadOnlySpan<byte> path)
    {
        using var lvs = new NativeUtf8(Lvs);
        var cmd = virCommandNew(lvs);
        sbyte* output = null;
        try
        {
            foreach (var arg in (ReadOnlySpan<string>)["--noheadings", "--unbuffered", "--nosuffix", "--options", "uuid"])
            {
                using var a = new NativeUtf8(arg);
                virCommandAddArg(cmd, a);
            }
            fixed (byte* p = NulTerminated(path))
                virCommandAddArg(cmd, (sbyte*)p);
            virCommandSetOutputBuffer(cmd, &output);
            int status;
            if (virCommandRun(cmd, &status) < 0)
            {
                var error = VirErrorNative.TakeLast();
                return error;
            }
            if (output == null)
                return (byte[]?)null;
            byte[] key = CString(output).ToArray();
            if (status == 0)
            {
                int start = 0;
                while (start < key.Length && IsAsciiSpace(key[start]))
                    start++;
                key = key[start..];
                int nl = Array.IndexOf(key, (byte)'\n');
                if (nl >= 0)
                    key = key[..nl];
            }
            return key.Length == 0 ? (byte[]?)null : key;
        }
        finally
        {
            virCommandFree(cmd);
            if (output != null)
                GLib.g_free(output);
        }
    }

    private static bool IsAsciiSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\v' or (byte)'\f' or (byte)'\r';

    /// <summary>virStorageFileGetSCSIKey (libvirt's own: it runs
    /// /lib/udev/scsi_id through virCommand); null when it gives none.</summary>
    private static unsafe VirResult<byte[]?> GetSCSIKey(byte* path)
    {
        sbyte* key = null;
        if (virStorageFileGetSCSIKey((sbyte*)path, &key, 0) < 0)
            return VirErrorNative.TakeLast();
        if (key == null)
            return (byte[]?)null;
        byte[] k = CString(key).ToArray();
        GLib.g_free(key);
        return k;
    }

    // ------------------------------------------------------------------
    // drvAcquire, drvRelease, drvInquire
    // ------------------------------------------------------------------

    /// <summary>virLockManagerLockDaemonConnect: a new connection, and the
    /// owner registered on it (REGISTER).</summary>
    private static VirResult<LockSpaceProtocolClient> Connect(LockDaemonPrivate priv, ref uint counter)
    {
        var connected = LockSpaceProtocolClient.Connect(Privileged);
        if (!connected.TryGet(out var client, out var error))
            return error!;
        var args = new virLockSpaceProtocolRegisterArgs
        {
            flags = 0,
            owner = new virLockSpaceProtocolOwner
            {
                uuid = priv.Uuid,
                name = priv.Name,
                id = (uint)priv.Id,
                pid = (uint)priv.Pid,
            },
        };
        if (client.Call(virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_REGISTER, ref counter, args) is { } registerError)
        {
            client.Dispose();
            return registerError;
        }
        return client;
    }

    /// <summary>virLockManagerLockDaemonAcquire: REGISTER, then (unless
    /// register-only) ACQUIRE_RESOURCE for each resource, then RESTRICT if
    /// asked; the caller keeps the connection open through <paramref name="fd"/>.</summary>
    public static unsafe VirResult Acquire(LockDaemonPrivate priv, uint flags, int* fd)
    {
        if (CheckFlags(flags, AcquireRegisterOnly | AcquireRestrict, "virLockManagerLockDaemonAcquire") is { } flagError)
            return flagError;

        var driver = s_driver ?? throw new InvalidOperationException("the lockd driver is not initialised");
        if (priv.Resources.Count == 0 && priv.HasRWDisks && driver.RequireLeaseForDisks)
            return VirError.Report(Domain, VirErrorCode.ConfigUnsupported,
                "Read/write, exclusive access, disks were present, but no leases specified");

        VirError? error = AcquireOn(priv, flags, fd);
        if (error is not null && fd != null)
        {
            // VIR_FORCE_CLOSE(*fd), whatever the caller had put there
            if (*fd >= 0)
                Libc.close(*fd);
            *fd = -1;
        }
        return error is null ? VirResult.Success : error;
    }

    private static unsafe VirError? AcquireOn(LockDaemonPrivate priv, uint flags, int* fd)
    {
        uint counter = 0;
        var connected = Connect(priv, ref counter);
        if (!connected.TryGet(out var client, out var error))
            return error;
        using (client)
        {
            if (fd != null)
            {
                var dup = client.DupFD();
                if (!dup.TryGet(out int copy, out var dupError))
                {
                    *fd = -1; // (*fd = virNetClientDupFD(...)) < 0
                    return dupError;
                }
                *fd = copy;
            }

            if ((flags & AcquireRegisterOnly) == 0)
            {
                foreach (var r in priv.Resources)
                {
                    var args = new virLockSpaceProtocolAcquireResourceArgs { path = r.LockSpace, name = r.Name, flags = r.Flags };
                    if (client.Call(virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_ACQUIRE_RESOURCE, ref counter, args) is { } callError)
                        return callError;
                }
            }

            if ((flags & AcquireRestrict) != 0)
            {
                var args = new virLockSpaceProtocolRestrictArgs { flags = 0 };
                if (client.Call(virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_RESTRICT, ref counter, args) is { } restrictError)
                    return restrictError;
            }
            return null;
        }
    }

    /// <summary>virLockManagerLockDaemonRelease: REGISTER on a new
    /// connection, then RELEASE_RESOURCE for each resource (flags without
    /// SHARED and AUTOCREATE). No state.</summary>
    public static unsafe VirResult Release(LockDaemonPrivate priv, sbyte** state, uint flags)
    {
        if (CheckFlags(flags, 0, "virLockManagerLockDaemonRelease") is { } flagError)
            return flagError;
        if (state != null)
            *state = null;

        uint counter = 0;
        var connected = Connect(priv, ref counter);
        if (!connected.TryGet(out var client, out var error))
            return error!;
        using (client)
        {
            foreach (var r in priv.Resources)
            {
                var args = new virLockSpaceProtocolReleaseResourceArgs
                {
                    path = r.LockSpace,
                    name = r.Name,
                    flags = r.Flags & ~(ProtocolShared | ProtocolAutoCreate),
                };
                if (client.Call(virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_RELEASE_RESOURCE, ref counter, args) is { } callError)
                    return callError;
            }
        }
        return VirResult.Success;
    }

    /// <summary>virLockManagerLockDaemonInquire: no state to report.</summary>
    public static unsafe VirResult Inquire(sbyte** state, uint flags)
    {
        if (CheckFlags(flags, 0, "virLockManagerLockDaemonInquire") is { } flagError)
            return flagError;
        if (state != null)
            *state = null;
        return VirResult.Success;
    }

    // ------------------------------------------------------------------

    private static unsafe ReadOnlySpan<byte> CString(sbyte* s)
        => s == null ? default : System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)s);

    private static string Text(ReadOnlySpan<byte> s) => LosslessUtf8.Decode(s);

    private static byte[] NulTerminated(ReadOnlySpan<byte> s) => [.. s, 0];
}
