using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Libvirt.Interop;

namespace Libvirt.Util;

/// <summary>
/// The managed twin of libvirt's virLockSpace (src/util/virlockspace.c,
/// libvirt 9.0.0): same files, same fcntl locks (process-associated F_SETLK
/// on byte 0, length 1), same errors and the same exec-restart document, so
/// it interoperates with a C virtlockd on one directory and with the native
/// implementation across an exec restart.
/// </summary>
public sealed class VirLockSpaceManaged : IVirLockSpace
{
    private const VirErrorDomain Domain = VirErrorDomain.LockSpace;

    private readonly Lock _lock = new();
    private readonly string? _directory;
    // The directory's bytes, no NUL (LosslessUtf8: a directory that is not
    // UTF-8 keeps its bytes): resource paths are "<dir>/<name>" in bytes, as
    // the C code builds them, so names that are not valid UTF-8 still name
    // the file the C daemon would use.
    private readonly byte[]? _dirBytes;
    // Keyed by the resource itself (its name bytes), looked up by span: no
    // key is allocated per acquire. Enumeration order (the exec-restart
    // document's) is the dictionary's insertion and slot-reuse order, as it
    // was with byte[] keys.
    private readonly Dictionary<Resource, Resource> _resources = new(ResourceNameComparer.Instance);
    private readonly Dictionary<Resource, Resource>.AlternateLookup<ReadOnlySpan<byte>> _byName;
    // Freed resources, buffers kept, for the next acquires: virtlockd frees
    // and makes one per lease, and steady leasing then allocates nothing.
    // Bounded, so a burst of releases does not stay around.
    private const int MaxFree = 32;
    private readonly Resource[] _free = new Resource[MaxFree];
    private int _freeCount;
    // "<dir>/<name>" for create and delete (under _lock)
    private byte[] _scratchPath = [0];
    private bool _disposed;

    private VirLockSpaceManaged(string? directory)
    {
        _directory = directory;
        _dirBytes = directory is null ? null : LosslessUtf8.Encode(directory);
        _byName = _resources.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    public string? Directory => _directory;

    // ---- virLockSpaceNew / virLockSpaceNewPostExecRestart ----

    public static unsafe VirResult<IVirLockSpace> New(string? directory)
    {
        directory = CString(directory);
        var ls = new VirLockSpaceManaged(directory);
        if (ls._dirBytes is { } dir)
        {
            fixed (byte* p = NulTerminated(dir))
            {
                if (Libc.access(p, Libc.F_OK) == 0)
                {
                    if (!(Libc.TryStat(p, out var id, out _) && id.IsDirectory))
                        return VirError.Report(Domain, VirErrorCode.InternalError,
                            $"Lockspace location {directory} exists, but is not a directory");
                }
                else
                {
                    int errno = MkdirWithParents(dir, 0x1C0 /* 0700 */);
                    if (errno != 0)
                        return VirError.System(Domain, errno, $"Unable to create lockspace {directory}");
                }
            }
        }
        return ls;
    }

    /// <summary>
    /// Takes over the resources of an exec-restart document: the fds are
    /// adopted as they are (never unlocked, never reopened) and made
    /// close-on-exec again. Validation, its order and its error texts are
    /// virLockSpaceNewPostExecRestart's; as there, a failure frees what was
    /// taken over so far (closing those fds, and unlinking held auto-created
    /// files).
    /// </summary>
    public static VirResult<IVirLockSpace> NewPostExecRestart(JsonObject state)
    {
        string? dir = null;
        if (state.TryGetPropertyValue("directory", out var dirNode))
            dir = CString(VirJSON.GetString(dirNode));
        var ls = new VirLockSpaceManaged(dir);

        VirError? err = ls.LoadResources(state);
        if (err is not null)
        {
            ls.Dispose();
            return err;
        }
        return ls;
    }

    private VirError? LoadResources(JsonObject state)
    {
        if (!state.TryGetPropertyValue("resources", out var resources))
            return Internal("Missing resources value in JSON document");
        if (resources is not JsonArray array)
            return Internal("Malformed resources array");

        foreach (var child in array)
        {
            var obj = child as JsonObject;
            var res = new Resource();
            VirError? err = LoadResource(obj, res);
            if (err is null && !_resources.TryAdd(res, res))
                err = VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError,
                    $"Duplicate hash table key '{Decode(res.NameSpan)}'");
            if (err is not null)
            {
                res.Free();
                return err;
            }
        }
        return null;
    }

    /// <summary>One resource, field by field in the C order: what is set
    /// when a later field fails decides what freeing it does.</summary>
    private static VirError? LoadResource(JsonObject? obj, Resource res)
    {
        if (CString(VirJSON.GetString(VirJSON.Get(obj, "name"))) is not { } name)
            return Internal("Missing resource name in JSON document");
        res.Name = Encoding.UTF8.GetBytes(name);
        res.NameLength = res.Name.Length;

        if (CString(VirJSON.GetString(VirJSON.Get(obj, "path"))) is not { } path)
            return Internal("Missing resource path in JSON document");
        res.Path = NulTerminated(Encoding.UTF8.GetBytes(path));
        res.PathLength = res.Path.Length - 1;

        if (!VirJSON.TryGetNumberInt(obj, "fd", out int fd))
            return Internal("Missing resource fd in JSON document");
        res.Fd = fd;
        if (!SetInherit(res.Fd, false, out int errno))
            return VirError.System(Domain, errno, "Cannot enable close-on-exec flag");

        if (!VirJSON.TryGetBoolean(obj, "lockHeld", out bool held))
            return Internal("Missing resource lockHeld in JSON document");
        res.LockHeld = held;

        if (!VirJSON.TryGetNumberUint(obj, "flags", out uint flags))
            return Internal("Missing resource flags in JSON document");
        res.Flags = flags;

        if (!(obj?.TryGetPropertyValue("owners", out var ownersNode) ?? false))
            return Internal("Missing resource owners in JSON document");
        if (ownersNode is not JsonArray owners)
            return Internal("Malformed owners array");
        res.Owners = new int[Math.Max(owners.Count, 1)];
        foreach (var o in owners)
        {
            if (!VirJSON.TryGetNumberUlong(o, out ulong owner))
                return Internal("Malformed owner value in JSON document");
            res.Owners[res.OwnerCount++] = (int)owner; // pid_t, truncated as the C cast does
        }
        return null;
    }

    // ---- the operations ----

    public VirResult CreateResource(ReadOnlySpan<byte> name)
    {
        name = CString(name);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_byName.ContainsKey(name))
                return Locked(name);

            int length = BuildPath(ref _scratchPath, name);
            var path = _scratchPath.AsSpan(0, length);
            // virFileTouch, which reports from virfile.c (no error domain).
            int fd = OpenPath(_scratchPath, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180 /* 0600 */);
            if (fd < 0)
                return VirError.System(VirErrorDomain.None, Marshal.GetLastPInvokeError(),
                    $"cannot create file '{Decode(path)}'");
            if (Libc.close(fd) < 0)
                return VirError.System(VirErrorDomain.None, Marshal.GetLastPInvokeError(),
                    $"cannot save file '{Decode(path)}'");
            return VirResult.Success;
        }
    }

    public unsafe VirResult DeleteResource(ReadOnlySpan<byte> name)
    {
        name = CString(name);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_byName.ContainsKey(name))
                return Locked(name);

            int length = BuildPath(ref _scratchPath, name);
            fixed (byte* p = _scratchPath)
            {
                if (Libc.unlink(p) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != Libc.ENOENT)
                        return VirError.System(Domain, errno, $"Unable to delete lockspace resource {Decode(_scratchPath.AsSpan(0, length))}");
                }
            }
            return VirResult.Success;
        }
    }

    public VirResult AcquireResource(ReadOnlySpan<byte> name, int ownerPid, VirLockSpaceAcquireFlags flags)
    {
        name = CString(name);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            const VirLockSpaceAcquireFlags Supported = VirLockSpaceAcquireFlags.Shared | VirLockSpaceAcquireFlags.AutoCreate;
            if ((flags & ~Supported) != 0)
                return UnsupportedFlags((uint)(flags & ~Supported), "virLockSpaceAcquireResource");

            if (_byName.TryGetValue(name, out var res))
            {
                // Another shared lease on a resource already held shared:
                // one more owner, the one fcntl lock stays.
                if ((res.Flags & (uint)VirLockSpaceAcquireFlags.Shared) != 0 &&
                    (flags & VirLockSpaceAcquireFlags.Shared) != 0)
                {
                    res.AddOwner(ownerPid);
                    return VirResult.Success;
                }
                return Locked(name);
            }

            var err = NewResource(name, ownerPid, flags, out res);
            if (err is not null)
                return err;
            _resources.Add(res!, res!);
            return VirResult.Success;
        }
    }

    public VirResult ReleaseResource(ReadOnlySpan<byte> name, int ownerPid)
    {
        name = CString(name);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_byName.TryGetValue(name, out var res))
                return VirError.Report(Domain, VirErrorCode.ResourceBusy, $"Lockspace resource '{Decode(name)}' is not locked");

            if (!res.RemoveOwner(ownerPid))
                return Internal($"owner {ownerPid} does not hold the resource lock");

            if (res.OwnerCount == 0)
            {
                _resources.Remove(res);
                Recycle(res);
            }
            return VirResult.Success;
        }
    }

    public VirResult<int> ReleaseResourcesForOwner(int ownerPid)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int count = 0;
            // Removing while enumerating is allowed for Dictionary.
            foreach (var (key, res) in _resources)
            {
                if (!res.RemoveOwner(ownerPid))
                    continue;
                count++;
                if (res.OwnerCount == 0)
                {
                    _resources.Remove(key);
                    Recycle(res);
                }
            }
            return count;
        }
    }

    /// <summary>virLockSpacePreExecRestart: the lock space keeps its fds
    /// (an exec that fails leaves it usable), they just stop being
    /// close-on-exec.</summary>
    public VirResult<JsonObject> PreExecRestart()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var obj = new JsonObject();
            if (_directory is not null)
                obj["directory"] = _directory;

            var resources = new JsonArray();
            bool representable = _dirBytes is null || System.Text.Unicode.Utf8.IsValid(_dirBytes);
            foreach (var res in _resources.Values)
            {
                representable &= System.Text.Unicode.Utf8.IsValid(res.NameSpan) && System.Text.Unicode.Utf8.IsValid(res.PathSpan);
                var child = new JsonObject
                {
                    ["name"] = Decode(res.NameSpan),
                    ["path"] = Decode(res.PathSpan),
                    ["fd"] = res.Fd,
                    ["lockHeld"] = res.LockHeld,
                    ["flags"] = res.Flags,
                };
                if (!SetInherit(res.Fd, true, out int errno))
                    return VirError.System(Domain, errno, "Cannot disable close-on-exec flag");

                var owners = new JsonArray();
                for (int i = 0; i < res.OwnerCount; i++)
                    owners.Add((JsonNode)(ulong)(long)res.Owners[i]); // pid_t widened as unsigned long long; JsonNode: the AOT-safe Add
                child["owners"] = owners;
                resources.Add((JsonNode)child);
            }
            // libvirt builds the document, then fails to serialise it (yajl
            // validates UTF-8), so virtlockd does not exec; a lossy document
            // would restore the resource under another name and path.
            if (!representable)
                return VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, "failed to convert virJSONValue to yajl data");
            obj["resources"] = resources;
            return obj;
        }
    }

    /// <summary>virLockSpaceFree: every resource freed, which closes its fd
    /// (dropping the lock) and unlinks auto-created files still held.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (var res in _resources.Values)
                res.Free();
            _resources.Clear();
            Array.Clear(_free);
            _freeCount = 0;
        }
    }

    // ---- the free list ----

    private Resource Rent() => _freeCount > 0 ? _free[--_freeCount]! : new Resource();

    /// <summary>Frees the resource (virLockSpaceResourceFree) and keeps the
    /// object, with its buffers, for a later acquire if there is room.</summary>
    private void Recycle(Resource res)
    {
        res.Free();
        if (_freeCount < MaxFree)
        {
            res.Reset();
            _free[_freeCount++] = res;
        }
    }

    // ---- virLockSpaceResourceNew ----

    private unsafe VirError? NewResource(ReadOnlySpan<byte> name, int owner, VirLockSpaceAcquireFlags flags, out Resource? res)
    {
        res = null;
        bool shared = (flags & VirLockSpaceAcquireFlags.Shared) != 0;
        var fresh = Rent();
        fresh.SetName(name);
        fresh.PathLength = BuildPath(ref fresh.Path, name);
        byte[] path = fresh.Path;
        int fd;

        if ((flags & VirLockSpaceAcquireFlags.AutoCreate) != 0)
        {
            while (true)
            {
                fd = OpenPath(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180 /* 0600 */);
                if (fd < 0)
                    return Unused(fresh, VirError.System(Domain, Marshal.GetLastPInvokeError(), $"Unable to open/create resource {Decode(fresh.PathSpan)}"));

                if (!Libc.TryFStat(fd, out var opened, out int errno))
                {
                    Libc.close(fd);
                    return Unused(fresh, VirError.System(Domain, errno, $"Unable to check status of pid file '{Decode(fresh.PathSpan)}'"));
                }

                if (LockFile(fd, shared) is { } lockErr)
                {
                    Libc.close(fd);
                    return Unused(fresh, LockFailure(lockErr, name, fresh.PathSpan));
                }

                // The file locked must still be the one at the path: a
                // holder that auto-created it may have unlinked it on release
                // in between (and someone else created a new one).
                bool same;
                fixed (byte* p = path)
                    same = Libc.TryStat(p, out var current, out _) && current.Inode == opened.Inode;
                if (same)
                    break;
                Libc.close(fd);
            }
        }
        else
        {
            fd = OpenPath(path, Libc.O_RDWR | Libc.O_CLOEXEC, 0);
            if (fd < 0)
                return Unused(fresh, VirError.System(Domain, Marshal.GetLastPInvokeError(), $"Unable to open resource {Decode(fresh.PathSpan)}"));

            if (LockFile(fd, shared) is { } lockErr)
            {
                Libc.close(fd);
                return Unused(fresh, LockFailure(lockErr, name, fresh.PathSpan));
            }
        }

        fresh.Fd = fd;
        fresh.LockHeld = true;
        fresh.Flags = (uint)flags;
        fresh.AddOwner(owner);
        res = fresh;
        return null;
    }

    /// <summary>A rented resource that holds nothing yet goes back to the
    /// free list; the error is passed through.</summary>
    private VirError Unused(Resource res, VirError err)
    {
        Recycle(res);
        return err;
    }

    /// <summary>virFileLock(fd, shared, 0, 1, false): a non-blocking
    /// process-associated record lock on the first byte; errno or null.</summary>
    private static unsafe int? LockFile(int fd, bool shared)
    {
        var fl = new Libc.flock
        {
            l_type = shared ? Libc.F_RDLCK : Libc.F_WRLCK,
            l_whence = Libc.SEEK_SET,
            l_start = 0,
            l_len = 1,
        };
        return Libc.fcntl(fd, Libc.F_SETLK, &fl) < 0 ? Marshal.GetLastPInvokeError() : null;
    }

    private static VirError LockFailure(int errno, ReadOnlySpan<byte> name, ReadOnlySpan<byte> path)
        => errno is Libc.EACCES or Libc.EAGAIN
            ? Locked(name)
            : VirError.System(Domain, errno, $"Unable to acquire lock on '{Decode(path)}'");

    private static bool SetInherit(int fd, bool inherit, out int errno)
    {
        errno = 0;
        int flags = Libc.fcntl(fd, Libc.F_GETFD, 0);
        if (flags < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return false;
        }
        flags = inherit ? flags & ~Libc.FD_CLOEXEC : flags | Libc.FD_CLOEXEC;
        if (Libc.fcntl(fd, Libc.F_SETFD, flags) < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return false;
        }
        return true;
    }

    // ---- the resource ----

    /// <summary>One held resource. Pooled by its lock space (see Recycle):
    /// the buffers stay with the object and grow only when too small.</summary>
    private sealed class Resource
    {
        public byte[] Name = [];
        public int NameLength;
        public byte[] Path = [0]; // PathLength bytes, then a NUL
        public int PathLength;
        // A plain fd, not a SafeHandle: a SafeHandle cannot be reopened, so
        // a pooled resource would need a new one (and its finalizer) per
        // acquire. Closing is explicit: Free, on release, and the lock
        // space's Dispose for what is still held. -1 for none.
        public int Fd = -1;
        public bool LockHeld;
        public uint Flags;
        public int[] Owners = [];
        public int OwnerCount;

        public ReadOnlySpan<byte> NameSpan => Name.AsSpan(0, NameLength);
        public ReadOnlySpan<byte> PathSpan => Path.AsSpan(0, PathLength);

        public void SetName(ReadOnlySpan<byte> name)
        {
            if (Name.Length < name.Length)
                Name = new byte[name.Length];
            name.CopyTo(Name);
            NameLength = name.Length;
        }

        public void AddOwner(int pid)
        {
            if (OwnerCount == Owners.Length)
                Array.Resize(ref Owners, Math.Max(1, Owners.Length * 2));
            Owners[OwnerCount++] = pid;
        }

        /// <summary>Removes the first occurrence, keeping the order (a pid
        /// may hold a shared resource more than once).</summary>
        public bool RemoveOwner(int pid)
        {
            int i = Array.IndexOf(Owners, pid, 0, OwnerCount);
            if (i < 0)
                return false;
            Array.Copy(Owners, i + 1, Owners, i, OwnerCount - i - 1);
            OwnerCount--;
            return true;
        }

        /// <summary>virLockSpaceResourceFree. An auto-created file is
        /// unlinked only once nobody else can hold it: a shared holder first
        /// upgrades to an exclusive lock, and keeps the file if another
        /// process still holds it shared.</summary>
        public unsafe void Free()
        {
            if (LockHeld && (Flags & (uint)VirLockSpaceAcquireFlags.AutoCreate) != 0)
            {
                bool mayDelete = (Flags & (uint)VirLockSpaceAcquireFlags.Shared) == 0 ||
                                 (Fd != -1 && LockFile(Fd, shared: false) is null);
                if (mayDelete)
                {
                    fixed (byte* p = Path)
                        Libc.unlink(p); // C only warns when this fails
                }
            }
            // closing drops every lock this process holds on the file (POSIX
            // record locks), so it happens only here
            if (Fd >= 0)
                Libc.close(Fd);
            Fd = -1;
        }

        /// <summary>Back to an empty resource, buffers kept, for reuse.</summary>
        public void Reset()
        {
            NameLength = 0;
            PathLength = 0;
            Fd = -1;
            LockHeld = false;
            Flags = 0;
            OwnerCount = 0;
        }
    }

    /// <summary>Resource keys compared by name bytes; looked up by span so
    /// acquire and release allocate no key.</summary>
    private sealed class ResourceNameComparer : IEqualityComparer<Resource>, IAlternateEqualityComparer<ReadOnlySpan<byte>, Resource>
    {
        public static readonly ResourceNameComparer Instance = new();

        public bool Equals(Resource? x, Resource? y) => x!.NameSpan.SequenceEqual(y!.NameSpan);
        public int GetHashCode(Resource obj) => GetHashCode(obj.NameSpan);

        public bool Equals(ReadOnlySpan<byte> alternate, Resource other) => alternate.SequenceEqual(other.NameSpan);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var h = new HashCode();
            h.AddBytes(alternate);
            return h.ToHashCode();
        }

        // entries are only ever added as resources, never by name
        public Resource Create(ReadOnlySpan<byte> alternate) => throw new NotSupportedException();
    }

    // ---- helpers ----

    /// <summary>The path of a resource, "&lt;dir&gt;/&lt;name&gt;" (or the
    /// name in the default lock space), written into <paramref name="buffer"/>
    /// (grown when too small) with a NUL after it; returns its length.</summary>
    private int BuildPath(ref byte[] buffer, ReadOnlySpan<byte> name)
    {
        int length = _dirBytes is null ? name.Length : _dirBytes.Length + 1 + name.Length;
        if (buffer.Length < length + 1)
            buffer = new byte[length + 1];
        var path = buffer.AsSpan();
        if (_dirBytes is not null)
        {
            _dirBytes.CopyTo(path);
            path[_dirBytes.Length] = (byte)'/';
            path = path[(_dirBytes.Length + 1)..];
        }
        name.CopyTo(path);
        buffer[length] = 0;
        return length;
    }

    private static unsafe int OpenPath(byte[] path, int flags, uint mode)
    {
        fixed (byte* p = path)
            return Libc.open(p, flags, mode);
    }

    /// <summary>g_mkdir_with_parents as glib 2.74 has it: the whole path
    /// first (an existing non-directory there, a dangling symlink included,
    /// is ENOTDIR), else each component in turn, created with
    /// <paramref name="mode"/> where access() says it is missing; an empty
    /// path is EINVAL. Returns 0 or the errno.</summary>
    private static unsafe int MkdirWithParents(byte[] path, uint mode)
    {
        if (path.Length == 0)
            return Libc.EINVAL;
        byte[] fn = NulTerminated(path);
        fixed (byte* f = fn)
        {
            if (Libc.mkdir(f, mode) == 0)
                return 0;
            if (Marshal.GetLastPInvokeError() == Libc.EEXIST)
                return Libc.TryStat(f, out var whole, out _) && whole.IsDirectory ? 0 : Libc.ENOTDIR;

            int p = 0;
            while (f[p] == '/')
                p++;
            while (true)
            {
                while (f[p] != 0 && f[p] != '/')
                    p++;
                bool last = f[p] == 0;
                f[p] = 0;

                if (Libc.access(f, Libc.F_OK) != 0)
                {
                    if (Libc.mkdir(f, mode) < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        // glib goes on past a component it could not make
                        // for want of its parent; the next one fails then.
                        if (errno != Libc.EEXIST && (errno != Libc.ENOENT || last))
                            return errno;
                    }
                }
                else if (!(Libc.TryStat(f, out var id, out _) && id.IsDirectory))
                {
                    return Libc.ENOTDIR;
                }

                if (last)
                    return 0;
                f[p++] = (byte)'/';
                while (f[p] == '/')
                    p++;
            }
        }
    }

    private static byte[] NulTerminated(ReadOnlySpan<byte> s)
    {
        var b = new byte[s.Length + 1];
        s.CopyTo(b);
        return b;
    }

    /// <summary>What a C string of these bytes is: up to the first NUL.</summary>
    private static ReadOnlySpan<byte> CString(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return nul < 0 ? s : s[..nul];
    }

    private static string? CString(string? s)
    {
        int nul = s?.IndexOf('\0') ?? -1;
        return nul < 0 ? s : s![..nul];
    }

    // messages keep the bytes too: raised into libvirt they read as C's
    private static string Decode(ReadOnlySpan<byte> s) => LosslessUtf8.Decode(s);

    private static VirError Locked(ReadOnlySpan<byte> name)
        => VirError.Report(Domain, VirErrorCode.ResourceBusy, $"Lockspace resource '{Decode(name)}' is locked");

    private static VirError Internal(string detail) => VirError.Report(Domain, VirErrorCode.InternalError, detail);

    /// <summary>virCheckFlags reports through virReportInvalidArg: the
    /// message has no "invalid argument" prefix, str1 is the function and
    /// str2 the argument's name, int1/int2 0.</summary>
    private static VirError UnsupportedFlags(uint unsupported, string function)
        => new((int)VirErrorCode.InvalidArg, (int)Domain, $"unsupported flags (0x{unsupported:x}) in function {function}",
            Str1: function, Str2: "flags", Int1: 0, Int2: 0);
}

public sealed class VirLockSpaceManagedFactory : IVirLockSpaceFactory
{
    public string Name => "managed";
    public VirResult<IVirLockSpace> New(string? directory) => VirLockSpaceManaged.New(directory);
    public VirResult<IVirLockSpace> NewPostExecRestart(JsonObject state) => VirLockSpaceManaged.NewPostExecRestart(state);
}
