using System.Buffers;
using System.Text;
using Libvirt.Interop;
using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Interop.Methods;
// the generated XDR's wire types, not libvirt's C structs of the same names
using virNetMessageError = Libvirt.Xdr.virNetMessageError;
using virNetMessageHeader = Libvirt.Xdr.virNetMessageHeader;
using virNetMessageStatus = Libvirt.Xdr.virNetMessageStatus;
using virNetMessageType = Libvirt.Xdr.virNetMessageType;

namespace Libvirt.LockDriver;

/// <summary>
/// The client side of the lock protocol (program 0xEA7BEEF) as
/// lock_driver_lockd.c drives it through libvirt's virNetClient: one UNIX
/// stream connection to virtlockd, synchronous calls with serials counted
/// from 0 on that connection, each CALL framed and encoded, and its REPLY
/// decoded, by the generated XDR (interop/Libvirt.Xdr: the message header,
/// the lock program's argument types, virNetMessageError); nothing of the
/// wire format is written here. Failures are the error values virnetsocket.c,
/// virnetmessage.c, virnetclient.c and virnetclientprogram.c report for the
/// same event (domain VIR_FROM_RPC), and a daemon's error reply is raised
/// with every field it carried, as virNetClientProgramDispatchError does.
///
/// No keepalive: the C plugin never starts virNetClient's keepalive
/// (virNetClientKeepAliveStart), and virtlockd's server has it disabled
/// (keepaliveInterval -1), so neither side ever sends a PING; each
/// connection lives for one driver call. Not thread-safe: one connection per
/// call, as in C.
/// </summary>
internal sealed unsafe class LockSpaceProtocolClient : IDisposable
{
    private const VirErrorDomain Domain = VirErrorDomain.Rpc;
    private const uint Program = LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_PROGRAM;
    private const uint Version = LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_PROGRAM_VERSION;
    /// <summary>The length word and the header (VIR_NET_MESSAGE_LEN_MAX + VIR_NET_MESSAGE_HEADER_MAX).</summary>
    private const int FrameOverhead = VirNetProtocolConstants.VIR_NET_MESSAGE_LEN_MAX + VirNetProtocolConstants.VIR_NET_MESSAGE_HEADER_MAX;

    private int _fd;
    private readonly byte[] _lenWord = new byte[VirNetProtocolConstants.VIR_NET_MESSAGE_LEN_MAX];

    private LockSpaceProtocolClient(int fd) => _fd = fd;

    /// <summary>The privileged daemon's socket, or the session daemon's under
    /// the user runtime directory (virLockManagerLockDaemonPath).</summary>
    public static string SocketPath(bool privileged)
    {
        if (privileged)
            return "/run/libvirt/virtlockd-sock";
        return UserRuntimeDirectory() + "/virtlockd-sock";
    }

    private static string UserRuntimeDirectory() => NativeUtf8.ReadAndFree(virGetUserRuntimeDirectory()) ?? "";

    /// <summary>
    /// virLockManagerLockDaemonConnectionNew: a connection to virtlockd;
    /// unprivileged, the session daemon is started when its socket is not
    /// there yet (virNetClientNewUNIX with the path virFileFindResourceFull
    /// gives: $VIRTLOCKD_PATH/virtlockd, else /usr/sbin/virtlockd).
    /// </summary>
    public static VirResult<LockSpaceProtocolClient> Connect(bool privileged)
    {
        string path = SocketPath(privileged);
        string? daemonPath = null;
        if (!privileged)
            daemonPath = BuildFilename(GetEnv("VIRTLOCKD_PATH") ?? "/usr/sbin", "virtlockd");
        return ConnectUnix(path, daemonPath);
    }

    /// <summary>virNetSocketNewConnectUNIX: connect, starting
    /// <paramref name="spawnDaemonPath"/> (under a lock file, at most once)
    /// while the socket is missing or refuses, 500 tries 10 ms apart.</summary>
    public static VirResult<LockSpaceProtocolClient> ConnectUnix(string path, string? spawnDaemonPath)
    {
        string? lockPath = null;
        int lockFd = -1;
        int fd = -1;
        try
        {
            if (spawnDaemonPath is not null)
            {
                string binName = Path.GetFileName(spawnDaemonPath.TrimEnd('/'));
                string runDir = UserRuntimeDirectory();
                if (MkdirWithParents(runDir, 0x1c0 /* 0700 */) is int mkErr and not 0)
                    return VirError.System(Domain, mkErr, $"Cannot create user runtime directory '{runDir}'");
                lockPath = $"{runDir}/{binName}.lock";
                using (var lp = new NativeUtf8(lockPath))
                    lockFd = Libc.open((byte*)lp.Pointer, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180 /* 0600 */);
                if (lockFd < 0)
                {
                    return VirError.System(Domain, LibcClient.Errno, $"Unable to create lock '{lockPath}'");
                }
                var lk = new LibcClient.flock_t { l_type = Libc.F_WRLCK, l_whence = 0, l_start = 0, l_len = 1 };
                if (LibcClient.fcntl_lock(lockFd, LibcClient.F_SETLKW, &lk) < 0)
                    return VirError.System(Domain, LibcClient.Errno, $"Unable to lock '{lockPath}'");
            }

            // as virnetsocket.c: no SOCK_CLOEXEC here; the fd the acquire
            // hands out is a dup() of it, which never has FD_CLOEXEC
            fd = LibcClient.socket(LibcClient.AF_UNIX, LibcClient.SOCK_STREAM, 0);
            if (fd < 0)
                return VirError.System(Domain, LibcClient.Errno, "Failed to create socket");

            var addr = new LibcClient.sockaddr_un { sun_family = LibcClient.AF_UNIX };
            byte[] pathBytes = LosslessUtf8.Encode(path);
            if (pathBytes.Length >= LibcClient.SunPathLength)
                return VirError.System(Domain, LibcClient.ENOMEM, $"Path {path} too long for unix socket");
            pathBytes.CopyTo(new Span<byte>(addr.sun_path, LibcClient.SunPathLength));
            if (addr.sun_path[0] == (byte)'@')
                addr.sun_path[0] = 0;

            bool launched = false;
            for (int retries = 500; retries > 0;)
            {
                // virSocketAddr's length: the whole sockaddr_un
                if (LibcClient.connect(fd, &addr, (uint)sizeof(LibcClient.sockaddr_un)) == 0)
                    break;
                int errno = LibcClient.Errno;
                retries--;
                if (spawnDaemonPath is null || retries == 0 || (errno != Libc.ENOENT && errno != LibcClient.ECONNREFUSED))
                    return VirError.System(Domain, errno, $"Failed to connect socket to '{path}'");
                if (!launched)
                {
                    if (SpawnDaemon(spawnDaemonPath) is { } spawnError)
                        return spawnError;
                    launched = true;
                }
                LibcClient.usleep(10000);
            }

            var client = new LockSpaceProtocolClient(fd);
            fd = -1;
            return client;
        }
        finally
        {
            if (lockFd >= 0)
            {
                if (lockPath is not null)
                    using (var lp = new NativeUtf8(lockPath))
                        Libc.unlink((byte*)lp.Pointer);
                Libc.close(lockFd);
            }
            if (fd >= 0)
                Libc.close(fd);
        }
    }

    /// <summary>
    /// virNetSocketForkDaemon: the session virtlockd, started through
    /// libvirt's own virCommand (the environment it passes on, capabilities
    /// cleared, daemonized), so it is started exactly as by the C plugin.
    /// </summary>
    private static VirError? SpawnDaemon(string binary)
    {
        using var bin = new NativeUtf8(binary);
        using var timeout = new NativeUtf8("--timeout=120");
        var cmd = virCommandNew(bin);
        try
        {
            virCommandAddArg(cmd, timeout);
            virCommandAddEnvPassCommon(cmd);
            foreach (var name in (ReadOnlySpan<string>)["XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"])
            {
                using var n = new NativeUtf8(name);
                virCommandAddEnvPass(cmd, n);
            }
            virCommandClearCaps(cmd);
            virCommandDaemonize(cmd);
            if (virCommandRun(cmd, null) < 0)
                return VirErrorNative.TakeLast();
            return null;
        }
        finally
        {
            virCommandFree(cmd);
        }
    }

    /// <summary>virNetClientDupFD(client, false): a dup() of the socket
    /// (without FD_CLOEXEC), which keeps the connection, and with it the
    /// leases it registered, alive after this client is closed.</summary>
    public VirResult<int> DupFD()
    {
        int fd = LibcClient.dup(_fd);
        if (fd < 0)
            return VirError.System(Domain, LibcClient.Errno, "Unable to copy socket file handle");
        return fd;
    }

    /// <summary>virNetClientProgramCall of a lock procedure with a void
    /// result: null on success, else the error the C client reports.
    /// <paramref name="serial"/> is the caller's counter, incremented as
    /// lock_driver_lockd.c's <c>counter++</c>.</summary>
    public VirError? Call<TArgs>(virLockSpaceProtocolProcedure proc, ref uint serial, in TArgs args)
        where TArgs : struct, IXdrCodec<TArgs>
    {
        uint thisSerial = serial++;
        var header = new virNetMessageHeader
        {
            prog = Program,
            vers = Version,
            proc = (int)proc,
            type = virNetMessageType.VIR_NET_CALL,
            serial = thisSerial,
            status = virNetMessageStatus.VIR_NET_OK,
        };
        if (Send(header, args) is { } sendError)
            return sendError;
        return ReceiveReply(header);
    }

    private VirError? Send<TArgs>(in virNetMessageHeader header, in TArgs args) where TArgs : struct, IXdrCodec<TArgs>
    {
        long payload = args.EncodedSize();
        // virNetMessageEncodePayload grows its buffer up to
        // VIR_NET_MESSAGE_MAX and gives up with this error, whatever made
        // the filter fail (a string over its bound, or a message too large)
        if (payload > VirNetProtocolConstants.VIR_NET_MESSAGE_MAX - FrameOverhead)
            return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to encode message payload");
        int length = FrameOverhead + (int)payload;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var w = new XdrWriter(buffer.AsSpan(0, length));
            if (w.WriteUInt((uint)length) != XdrError.None)
                return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to encode message length");
            if (header.Encode(ref w) != XdrError.None)
                return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to encode message header");
            if (args.Encode(ref w) != XdrError.None)
                return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to encode message payload");
            return WriteAll(buffer.AsSpan(0, w.Position));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads messages until the reply to <paramref name="call"/>
    /// (virNetClientIOEventLoop, virNetClientCallDispatch, then
    /// virNetClientProgramCall's checks of the reply).</summary>
    private VirError? ReceiveReply(in virNetMessageHeader call)
    {
        while (true)
        {
            if (ReadAll(_lenWord) is { } readError)
                return readError;
            var lr = new XdrReader(_lenWord);
            if (lr.ReadUInt(out uint len) != XdrError.None)
                return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to decode message length");
            if (len < VirNetProtocolConstants.VIR_NET_MESSAGE_LEN_MAX)
                return VirError.Report(Domain, VirErrorCode.Rpc,
                    $"packet {(int)len} bytes received from server too small, want {VirNetProtocolConstants.VIR_NET_MESSAGE_LEN_MAX}");
            if (len > VirNetProtocolConstants.VIR_NET_MESSAGE_MAX)
                return VirError.Report(Domain, VirErrorCode.Rpc,
                    $"packet {(int)len} bytes received from server too large, want {VirNetProtocolConstants.VIR_NET_MESSAGE_MAX}");

            int bodyLength = (int)len - VirNetProtocolConstants.VIR_NET_MESSAGE_LEN_MAX;
            byte[] body = ArrayPool<byte>.Shared.Rent(bodyLength);
            try
            {
                if (ReadAll(body.AsSpan(0, bodyLength)) is { } bodyError)
                    return bodyError;

                var r = new XdrReader(body.AsMemory(0, bodyLength));
                if (virNetMessageHeader.Decode(ref r, out var reply) != XdrError.None)
                    return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to decode message header");

                switch (reply.type)
                {
                    case virNetMessageType.VIR_NET_REPLY:
                    case virNetMessageType.VIR_NET_REPLY_WITH_FDS:
                        if (reply.prog != call.prog || reply.vers != call.vers || reply.serial != call.serial)
                            return VirError.Report(Domain, VirErrorCode.Rpc,
                                $"no call waiting for reply with prog {(int)reply.prog} vers {(int)reply.vers} serial {(int)reply.serial}");
                        return CheckReply(call, reply, body.AsMemory(r.Position, bodyLength - r.Position));
                    case virNetMessageType.VIR_NET_MESSAGE:
                    case virNetMessageType.VIR_NET_STREAM:
                    case virNetMessageType.VIR_NET_STREAM_HOLE:
                        // no event or stream in the lock program: nothing waits for these
                        continue;
                    default:
                        return VirError.Report(Domain, VirErrorCode.Rpc,
                            $"got unexpected RPC call prog {(int)reply.prog} vers {(int)reply.vers} proc {reply.proc} type {(int)reply.type}");
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(body);
            }
        }
    }

    private static VirError? CheckReply(in virNetMessageHeader call, in virNetMessageHeader reply, ReadOnlyMemory<byte> payload)
    {
        if (reply.proc != call.proc)
            return VirError.Report(Domain, VirErrorCode.InternalError, $"Unexpected message proc {reply.proc} != {call.proc}");
        switch (reply.status)
        {
            case virNetMessageStatus.VIR_NET_OK:
                return null; // every lock procedure's result is void
            case virNetMessageStatus.VIR_NET_ERROR:
                return RemoteError(payload);
            default:
                return VirError.Report(Domain, VirErrorCode.Rpc, $"Unexpected message status {(int)reply.status}");
        }
    }

    /// <summary>virNetClientProgramDispatchError: the daemon's error, every
    /// field as it came (and the same code fix-ups for old servers).</summary>
    private static VirError RemoteError(ReadOnlyMemory<byte> payload)
    {
        var r = new XdrReader(payload);
        if (virNetMessageError.Decode(ref r, out var err) != XdrError.None)
            return VirError.Report(Domain, VirErrorCode.Rpc, "Unable to decode message payload");

        int code = err.code;
        switch ((virErrorNumber)code)
        {
            case virErrorNumber.VIR_ERR_INVALID_NWFILTER:
            case virErrorNumber.VIR_ERR_NO_NWFILTER:
            case virErrorNumber.VIR_ERR_BUILD_FIREWALL:
                if (err.domain != (int)virErrorDomain.VIR_FROM_NWFILTER)
                    code += 4;
                break;
            case virErrorNumber.VIR_WAR_NO_SECRET:
                if (err.domain == (int)virErrorDomain.VIR_FROM_QEMU)
                    code = (int)virErrorNumber.VIR_ERR_OPERATION_TIMEOUT;
                break;
            case virErrorNumber.VIR_ERR_INVALID_SECRET:
                if (err.domain == (int)virErrorDomain.VIR_FROM_XEN)
                    code = (int)virErrorNumber.VIR_ERR_MIGRATE_PERSIST_FAILED;
                break;
        }

        // the daemon's message names the lease's path: its bytes go back into libvirt as they came
        static string? Str(ReadOnlyMemory<byte>? s) => s is { } v ? LosslessUtf8.Decode(v.Span) : null;
        string? message = Str(err.message);
        if ((err.domain == (int)virErrorDomain.VIR_FROM_REMOTE || err.domain == (int)virErrorDomain.VIR_FROM_RPC) &&
            code == (int)virErrorNumber.VIR_ERR_RPC && err.level == (int)virErrorLevel.VIR_ERR_ERROR &&
            message is not null && message.StartsWith("unknown procedure", StringComparison.Ordinal))
            code = (int)virErrorNumber.VIR_ERR_NO_SUPPORT;
        return new VirError(code, err.domain, message ?? "Unknown error", err.level,
            Str(err.str1), Str(err.str2), Str(err.str3), err.int1, err.int2);
    }

    private VirError? WriteAll(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                // send(MSG_NOSIGNAL), not write(): a daemon gone away is
                // EPIPE for us, never SIGPIPE for the process that loaded us
                nint n = Libc.send(_fd, p + done, (nuint)(data.Length - done), Libc.MSG_NOSIGNAL);
                if (n < 0)
                {
                    int errno = LibcClient.Errno;
                    if (errno == Libc.EINTR)
                        continue;
                    return VirError.System(Domain, errno, "Cannot write data");
                }
                if (n == 0)
                    return VirError.System(Domain, LibcClient.EIO, "End of file while writing data");
                done += (int)n;
            }
        }
        return null;
    }

    private VirError? ReadAll(Span<byte> data)
    {
        fixed (byte* p = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = Libc.read(_fd, p + done, (nuint)(data.Length - done));
                if (n < 0)
                {
                    int errno = LibcClient.Errno;
                    if (errno == Libc.EINTR)
                        continue;
                    return VirError.System(Domain, errno, "Cannot recv data");
                }
                if (n == 0)
                    return VirError.System(Domain, LibcClient.EIO, "End of file while reading data");
                done += (int)n;
            }
        }
        return null;
    }

    /// <summary>virNetClientClose and the last unref: the socket is closed
    /// (a dup() handed out keeps the connection open).</summary>
    public void Dispose()
    {
        if (_fd >= 0)
        {
            Libc.close(_fd);
            _fd = -1;
        }
    }

    private static string? GetEnv(string name)
    {
        // libc's environment, not .NET's copy of it taken at start-up: the
        // process may have set the variable since
        using var n = new NativeUtf8(name);
        byte* v = LibcClient.getenv((byte*)n.Pointer);
        return v == null ? null : LosslessUtf8.Decode(System.Runtime.InteropServices.MemoryMarshal.CreateReadOnlySpanFromNullTerminated(v));
    }

    /// <summary>g_build_filename(dir, name): one separator between them.</summary>
    private static string BuildFilename(string dir, string name)
        => dir.Length == 0 ? name : dir.TrimEnd('/') + "/" + name;

    /// <summary>g_mkdir_with_parents: 0 or the errno.</summary>
    private static int MkdirWithParents(string dir, uint mode)
    {
        if (dir.Length == 0)
            return Libc.ENOENT;
        int i = 0;
        while (i < dir.Length)
        {
            int next = dir.IndexOf('/', i + 1);
            string prefix = next < 0 ? dir : dir[..next];
            i = next < 0 ? dir.Length : next;
            if (prefix.Length == 0 || prefix == "/")
                continue;
            using var p = new NativeUtf8(prefix);
            if (Libc.mkdir((byte*)p.Pointer, mode) < 0)
            {
                int errno = LibcClient.Errno;
                if (errno != Libc.EEXIST)
                    return errno;
            }
        }
        return 0;
    }
}
