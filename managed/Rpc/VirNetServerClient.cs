using System.Runtime.InteropServices;
using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.Rpc;

/// <summary>The peer of a UNIX socket (SO_PEERCRED).</summary>
public readonly record struct VirNetSocketUnixIdentity(uint Uid, uint Gid, int Pid);

/// <summary>How a service authenticates its clients
/// (VIR_NET_SERVER_SERVICE_AUTH_*): none and polkit leave a new client
/// authenticated; the others leave it pending, counted against
/// max_anonymous_clients until the server marks it authenticated.</summary>
public enum VirNetServerServiceAuth
{
    None = 0,
    Sasl = 2,
    Polkit = 3,
}

/// <summary>
/// One connection of a managed server: the twin of libvirt's
/// virnetserverclient.c for plain UNIX sockets (no TLS, SASL, streams or
/// filters: the lock, log and admin programs use none). Its socket is
/// non-blocking and watched on the event loop; <see cref="DispatchEvent"/>
/// is virNetServerClientDispatchEvent: the write queue drained until it
/// would block, a frame read exactly as far as it goes (the length word,
/// then the rest, never past it, so the descriptors sent after a
/// CALL_WITH_FDS frame are received with their own bytes), its header
/// decoded, its descriptors received, keepalive messages answered, and the
/// message handed to the server's dispatcher. At most
/// <see cref="MaxRequests"/> messages are in flight (read and not yet
/// answered): at the limit the client stops reading until a reply has been
/// written. A read or protocol error sets <see cref="WantClose"/>, and the
/// server closes the client (libvirt's virNetServerProcessClients). All of it
/// runs on the event loop thread.
/// <para>virtlockd's lock client opens one connection per acquire and per
/// release, so a connection's life is the daemon's hot path: the server
/// reuses a closed client for the next connection (<see cref="Open"/>), with
/// its delegates and keepalive, and the client owns its descriptor as a
/// plain int closed by <see cref="Close"/> (a SafeHandle cannot be reopened,
/// and one per connection is an allocation with a finalizer).</para>
/// </summary>
public sealed unsafe class VirNetServerClient : IDisposable
{
    private readonly IVirEventLoop _loop;
    private readonly VirNetMessagePool _pool;
    private readonly VirEventHandleCallback _onEvent;
    private readonly Func<VirNetMessage, int> _sendMessage;
    private readonly Action _keepAliveDead;
    private int _fd = -1;
    private int _watch = -1;

    private VirNetMessage? _rx;
    private VirNetMessageQueue _tx;
    private int _nrequests;

    private bool _wantClose;
    private bool _delayedClose;
    private bool _authPending;
    private VirKeepAlive? _keepalive;
    /// <summary>The keepalive of an earlier connection, for the next one.</summary>
    private VirKeepAlive? _spareKeepAlive;
    private Action<VirNetServerClient, VirNetMessage>? _dispatcher;

    private readonly VirNetLog _log;
    private static readonly VirLogSource Src = VirNetLog.NetServerClient;
    private const string File = VirNetLog.ClientFile;
    // libvirt's EOF line prints the address of libc's socket() (its
    // variable is named socket, not sock): one value for the whole process
    private static readonly ulong s_socketFunctionId = VirNetLog.NewId();

    /// <summary>The client's %p in the rpc lines (<see cref="VirNetLog"/>).</summary>
    public ulong LogId { get; private set; }

    /// <summary>Its socket's %p in the rpc lines (virNetSocket's, kept after close for the dispose line).</summary>
    public ulong SocketLogId { get; private set; }

    public ulong Id { get; private set; }
    public VirNetServerServiceAuth Auth { get; private set; }
    public bool ReadOnly { get; private set; }
    /// <summary>nrequests_max: messages read and not yet answered, at most.</summary>
    public int MaxRequests { get; private set; }
    /// <summary>Messages read and not yet answered (the one being read counts).</summary>
    public int Requests => _nrequests;
    /// <summary>When the connection was accepted (seconds since the epoch, conn_time).</summary>
    public long Timestamp { get; private set; }

    /// <summary>A call of this client got as far as its arguments decoding,
    /// where libvirt's dispatch first asks for the client's identity
    /// (virNetServerClientGetIdentity makes it then, once): before that,
    /// libvirt has none to give the admin program's client-info.</summary>
    public bool HasIdentity { get; internal set; }

    /// <summary>The daemon's state of this client (client private data).</summary>
    public object? PrivateData { get; set; }

    /// <summary>Run when the client is closed (privateDataCloseFunc).</summary>
    public Action<VirNetServerClient>? CloseHook { get; set; }

    /// <summary>Run after every event of the client (the server closes
    /// clients that want it: what libvirt's run loop does each iteration).</summary>
    internal Action<VirNetServerClient>? AfterEvent;

    /// <summary>The last error met on the connection (libvirt logs it).</summary>
    public VirError? LastError { get; private set; }

    /// <param name="fd">the connected socket, non-blocking; the client owns it from here and closes it</param>
    /// <param name="timestamp">when it connected; null: now (a client restored across an exec-restart keeps its own)</param>
    /// <param name="socketLogId">the socket's %p in the rpc lines; 0: a new one</param>
    public VirNetServerClient(ulong id, int fd, VirNetServerServiceAuth auth, bool readOnly, int maxRequests,
        VirNetMessagePool pool, IVirEventLoop loop, long? timestamp = null, ulong socketLogId = 0)
    {
        _pool = pool;
        _loop = loop;
        _onEvent = DispatchEvent;
        _sendMessage = SendMessage;
        _keepAliveDead = () =>
        {
            ImmediateClose();
            AfterEvent?.Invoke(this);
        };
        _log = pool.Log;
        Open(id, fd, auth, readOnly, maxRequests, timestamp, socketLogId);
    }

    /// <summary>virNetServerClientNewInternal's part: the state of a new
    /// connection on <paramref name="fd"/>, in a new client or in a closed one
    /// the server reuses (<see cref="CanReuse"/>).</summary>
    internal void Open(ulong id, int fd, VirNetServerServiceAuth auth, bool readOnly, int maxRequests,
        long? timestamp = null, ulong socketLogId = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        if (_fd >= 0)
            throw new InvalidOperationException("the client is still open");
        Id = id;
        _fd = fd;
        _watch = -1;
        Auth = auth;
        _authPending = auth is not (VirNetServerServiceAuth.None or VirNetServerServiceAuth.Polkit);
        ReadOnly = readOnly;
        MaxRequests = Math.Max(1, maxRequests);
        Timestamp = timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        LogId = VirNetLog.NewId();
        SocketLogId = socketLogId != 0 ? socketLogId : VirNetLog.NewId();
        _wantClose = _delayedClose = _inEvent = false;
        HasIdentity = false;
        PrivateData = null;
        CloseHook = null;
        AfterEvent = null;
        LastError = null;
        _dispatcher = null;
        // one message ready for the first frame
        _rx = _pool.Rent(tracked: true);
        _rx.PrepareRead();
        _nrequests = 1;
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 409, "virNetServerClientNewInternal",
                $"RPC_SERVER_CLIENT_NEW: client={VirNetLog.Ptr(LogId)} sock={VirNetLog.Ptr(SocketLogId)}");
    }

    public bool IsAuthenticated => Auth is VirNetServerServiceAuth.None or VirNetServerServiceAuth.Polkit;
    public bool IsAuthPending => _authPending;
    public bool IsClosed => _fd < 0;
    public bool WantClose => _wantClose;

    /// <summary>The pool its messages come from (and the rpc lines' <see cref="VirNetMessagePool.Log"/>).</summary>
    internal VirNetMessagePool Pool => _pool;

    /// <summary>The socket's descriptor, -1 once closed.</summary>
    public int Fd => _fd;

    /// <summary>Closed, and made by this loop and pool: the server may open it again for a new connection.</summary>
    internal bool CanReuse(IVirEventLoop loop, VirNetMessagePool pool)
        => _fd < 0 && ReferenceEquals(loop, _loop) && ReferenceEquals(pool, _pool);

    /// <summary>virNetServerClientSetAuthLocked(NONE): the client is authenticated.</summary>
    internal void SetAuthenticated() => Auth = VirNetServerServiceAuth.None;
    internal void SetAuthPending(bool pending) => _authPending = pending;

    /// <summary>virNetServerClientSetDispatcher: where complete messages go (set once).</summary>
    public void SetDispatcher(Action<VirNetServerClient, VirNetMessage> dispatcher)
    {
        if (_dispatcher is not null) throw new InvalidOperationException("the dispatcher is already set");
        _dispatcher = dispatcher;
    }

    /// <summary>virNetServerClientInit: the socket watched for the first frame.</summary>
    public VirResult Init()
    {
        var mode = HandleMode();
        if (_fd < 0)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "client is closed");
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 203, "virNetServerClientRegisterEvent", $"Registering client event callback {(int)mode}");
        _watch = _loop.AddHandle(_fd, mode, _onEvent, null);
        if (_watch < 0)
        {
            _wantClose = true;
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "Unable to register client socket");
        }
        return VirResult.Success;
    }

    /// <summary>virNetSocketGetUNIXIdentity: the peer's uid, gid and pid.</summary>
    public VirResult<VirNetSocketUnixIdentity> GetUNIXIdentity()
    {
        if (_fd < 0)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "client is closed");
        Libc.ucred cred;
        uint len = (uint)sizeof(Libc.ucred);
        if (Libc.getsockopt(_fd, Libc.SOL_SOCKET, Libc.SO_PEERCRED, &cred, &len) < 0)
            return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Failed to get client socket identity");
        return new VirNetSocketUnixIdentity(cred.uid, cred.gid, cred.pid);
    }

    /// <summary>virNetSocketGetSELinuxContext: the peer's security label;
    /// none (null) where no security module labels sockets (ENOPROTOOPT, or
    /// ENOSYS), any other failure an error.</summary>
    public VirResult<string?> GetSELinuxContext() => GetSELinuxContext(null);

    /// <param name="get">the getsockopt under it (a seam for tests); libc's when null</param>
    public VirResult<string?> GetSELinuxContext(Libc.SockOptGetter? get)
    {
        if (_fd < 0)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "client is closed");
        return SELinuxContextOf(_fd, get);
    }

    /// <summary>libvirt's rules on getpeercon's result, for the socket <paramref name="fd"/>.</summary>
    public static VirResult<string?> SELinuxContextOf(int fd, Libc.SockOptGetter? get = null)
    {
        if (Libc.GetPeerSecurityContext(fd, out var context, out int errno, get) == 0)
            return context;
        if (errno is Libc.ENOSYS or Libc.ENOPROTOOPT)
            return (string?)null;
        return VirError.System(VirErrorDomain.Rpc, errno, "Unable to query peer security context");
    }

    // ---- keepalive ----

    /// <summary>virNetServerClientInitKeepAlive: PINGs are answered from now
    /// on; the client itself pings only once <see cref="StartKeepAlive"/> is called.</summary>
    internal void InitKeepAlive(int interval, uint count)
    {
        if (_spareKeepAlive is { } ka)
        {
            _spareKeepAlive = null;
            ka.Renew(interval, count, LogId);
            _keepalive = ka;
        }
        else
        {
            _keepalive = new VirKeepAlive(interval, count, _loop, _pool, _sendMessage, _keepAliveDead, LogId);
        }
    }

    /// <summary>virNetServerClientStartKeepAlive: the server pings an idle
    /// client every interval and closes it after count unanswered pings.</summary>
    public VirResult StartKeepAlive()
    {
        if (_keepalive is null)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "connection not open");
        return _keepalive.Start(0, 0);
    }

    // ---- events ----

    /// <summary>virNetServerClientCalculateHandleMode (no TLS: its handshake state is -1).</summary>
    private VirEventHandleType HandleMode() => HandleMode(log: true);

    private VirEventHandleType HandleMode(bool log)
    {
        log = log && _log.On(Src, VirLogPriority.Debug);
        if (log)
            _log.Debug(Src, File, 152, "virNetServerClientCalculateHandleMode",
                $"tls=(nil) hs=-1, rx={VirNetLog.Ptr(_rx?.LogId ?? 0)} tx={VirNetLog.Ptr(_tx.Head?.LogId ?? 0)}");
        if (_fd < 0 || _wantClose) return VirEventHandleType.None;
        var mode = VirEventHandleType.None;
        // a message to fill, and not closing once the replies are out
        if (_rx is not null && !_delayedClose) mode |= VirEventHandleType.Readable;
        if (!_tx.IsEmpty) mode |= VirEventHandleType.Writable;
        if (log)
            _log.Debug(Src, File, 187, "virNetServerClientCalculateHandleMode", $"mode=0{Convert.ToString((int)mode, 8)}");
        return mode;
    }

    /// <summary>Inside <see cref="DispatchEvent"/>: the watch is brought up
    /// to date once, at its end, not at each step.</summary>
    private bool _inEvent;

    /// <summary>virNetServerClientUpdateEvent: the mode is worked out (and
    /// logged) where libvirt's is; the watch follows at once, or at the end
    /// of the event being dispatched.</summary>
    private void UpdateEvent()
    {
        if (_fd < 0 || _watch < 0) return;
        var mode = HandleMode();
        if (!_inEvent)
            _loop.UpdateHandle(_watch, mode);
    }

    /// <summary>virNetServerClientDispatchEvent. A reply the dispatch queued
    /// is written before the event ends (libvirt waits for the next loop
    /// iteration to find the socket writable): with one request in flight,
    /// reading stops while a call is served and resumes once its reply is
    /// out, and measured on a 1-request lock client that cost three epoll
    /// changes and one extra loop iteration per call. What does not go out
    /// at once waits for the socket to be writable, as before.</summary>
    private void DispatchEvent(int watch, int fd, VirEventHandleType events)
    {
        if (_fd < 0 || watch != _watch) return;
        _inEvent = true;
        try
        {
            VirNetMessage? msg = null;
            bool read = false;
            if ((events & VirEventHandleType.Writable) != 0)
                DispatchWrite();
            if ((events & VirEventHandleType.Readable) != 0 && _rx is not null && !_wantClose && _fd >= 0)
            {
                msg = DispatchRead();
                read = true;
            }
            // a disconnect comes as HANGUP with READABLE
            if ((events & (VirEventHandleType.Error | VirEventHandleType.Hangup)) != 0)
                _wantClose = true;
            if (msg is not null)
                DispatchMessage(msg);
            // the reply (or a keepalive PONG) what was read made
            if (read && !_tx.IsEmpty && !_wantClose && _fd >= 0)
                DispatchWrite();
        }
        finally
        {
            _inEvent = false;
        }
        if (_fd >= 0 && _watch >= 0)
            _loop.UpdateHandle(_watch, HandleMode(log: false));
        AfterEvent?.Invoke(this);
    }

    private void DispatchMessage(VirNetMessage msg)
    {
        if (_dispatcher is null)
        {
            _pool.Return(msg);
            _wantClose = true;
            return;
        }
        _dispatcher(this, msg);
    }

    /// <summary>virNetServerClientRead: -1 on error or end of file, 0 when it would block, else the bytes read.</summary>
    private int Read()
    {
        var rx = _rx!;
        if (rx.BufferLength <= rx.BufferOffset)
        {
            // a length word of exactly 4: a frame with nothing after it
            Fail(VirError.Report(VirErrorDomain.Rpc, VirErrorCode.Rpc,
                $"unexpected zero/negative length request {(long)rx.BufferLength - rx.BufferOffset}"));
            return -1;
        }
        var span = rx.ReadSpan;
        nint n;
        fixed (byte* p = span)
        {
            while (true)
            {
                n = Libc.recv(_fd, p, (nuint)span.Length, 0);
                if (n >= 0) break;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.EAGAIN) return 0;
                Fail(VirError.System(VirErrorDomain.Rpc, errno, "Cannot recv data"));
                return -1;
            }
        }
        if (n == 0)
        {
            // the peer closed (libvirt's daemons set quiet EOF: no error
            // logged, a debug line instead; the C admin server's clients are
            // not quiet and get an error in its place, not reproduced here)
            if (_log.On(VirNetLog.NetSocket, VirLogPriority.Debug))
                _log.Debug(VirNetLog.NetSocket, VirNetLog.SocketFile, 1783, "virNetSocketReadWire",
                    $"socket='{VirNetLog.Ptr(s_socketFunctionId)}' EOF while reading: errout='<null>'");
            _wantClose = true;
            return -1;
        }
        rx.BufferOffset += (int)n;
        return (int)n;
    }

    /// <summary>virNetServerClientDispatchRead: a complete message, or null
    /// (more to read, or an error: then <see cref="WantClose"/> is set).</summary>
    private VirNetMessage? DispatchRead()
    {
        while (true)
        {
            var rx = _rx!;
            if (rx.FdCount == 0 && Read() < 0)
            {
                _wantClose = true;
                return null;
            }
            if (rx.BufferOffset < rx.BufferLength)
                return null; // not all here yet

            if (rx.BufferLength == VirNetMessage.LengthWordSize)
            {
                if (rx.DecodeLength() is { } e)
                {
                    Fail(e);
                    return null;
                }
                _pool.LogLength(rx);
                UpdateEvent();
                continue; // the rest is likely there already
            }

            if (rx.DecodeHeader() is { } he)
                return Drop(rx, he);

            if (rx.Header.type == virNetMessageType.VIR_NET_CALL_WITH_FDS)
            {
                if (rx.DecodeNumFds() is { } fe)
                    return Drop(rx, fe);
                _pool.LogFdCount(rx, received: true);
                while (rx.DoneFds < rx.FdCount)
                {
                    int rv = Libc.RecvFd(_fd, out int fd, out int errno);
                    if (rv < 0)
                        return Drop(rx, VirError.System(VirErrorDomain.Rpc, errno, "Failed to recv file descriptor"));
                    if (rv == 0)
                        break; // would block
                    if (_log.On(VirNetLog.NetSocket, VirLogPriority.Info))
                        _log.Info(VirNetLog.NetSocket, VirNetLog.SocketFile, 2033, "virNetSocketRecvFD",
                            $"RPC_SOCKET_RECV_FD: sock={VirNetLog.Ptr(SocketLogId)} fd={fd}");
                    rx.SetReceivedFd(fd);
                }
                if (rx.DoneFds < rx.FdCount)
                {
                    // decoding moved the offset: back to "frame complete" for the next event
                    rx.BufferOffset = rx.BufferLength;
                    return null;
                }
            }

            // finished reading: the message leaves the receive slot
            var msg = rx;
            _rx = null;
            if (_log.On(Src, VirLogPriority.Info))
                _log.Info(Src, File, 1224, "virNetServerClientDispatchRead",
                    $"RPC_SERVER_CLIENT_MSG_RX: client={VirNetLog.Ptr(LogId)} len={msg.BufferLength} prog={msg.Header.prog} vers={msg.Header.vers} proc={(uint)msg.Header.proc} type={(uint)msg.Header.type} status={(uint)msg.Header.status} serial={msg.Header.serial}");

            if (_keepalive is not null && _keepalive.CheckMessage(msg, out var response))
            {
                _pool.Return(msg);
                msg = null;
                _nrequests--;
                if (response is not null && SendMessage(response) < 0)
                    _pool.Return(response);
            }

            if (_nrequests < MaxRequests)
            {
                _rx = _pool.Rent(tracked: true);
                _rx.PrepareRead();
                _nrequests++;
            }
            UpdateEvent();
            return msg;
        }
    }

    private VirNetMessage? Drop(VirNetMessage rx, VirError error)
    {
        _rx = null;
        _pool.Return(rx);
        Fail(error);
        return null;
    }

    private void Fail(VirError error)
    {
        LastError = error;
        _wantClose = true;
    }

    /// <summary>virNetServerClientWrite: -1 on error, 0 when it would block, else the bytes written.</summary>
    private int Write()
    {
        var tx = _tx.Head!;
        var span = tx.WriteSpan;
        nint n;
        fixed (byte* p = span)
        {
            while (true)
            {
                n = Libc.send(_fd, p, (nuint)span.Length, Libc.MSG_NOSIGNAL);
                if (n >= 0) break;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.EAGAIN) return 0;
                Fail(VirError.System(VirErrorDomain.Rpc, errno, "Cannot write data"));
                return -1;
            }
        }
        tx.BufferOffset += (int)n;
        return (int)n;
    }

    /// <summary>virNetServerClientDispatchWrite: the queue written until it
    /// would block; each message's descriptors after its bytes; a reply to
    /// a tracked message frees its request slot (and the receive slot is
    /// refilled if reading had stopped at the limit).</summary>
    private void DispatchWrite()
    {
        while (_tx.Head is { } tx)
        {
            if (tx.BufferOffset < tx.BufferLength)
            {
                int ret = Write();
                if (ret < 0)
                {
                    _wantClose = true;
                    return;
                }
                if (ret == 0)
                    return;
            }
            if (tx.BufferOffset != tx.BufferLength)
                continue;

            var fds = tx.Fds;
            while (tx.DoneFds < fds.Length)
            {
                if (_log.On(VirNetLog.NetSocket, VirLogPriority.Info))
                    _log.Info(VirNetLog.NetSocket, VirNetLog.SocketFile, 1990, "virNetSocketSendFD",
                        $"RPC_SOCKET_SEND_FD: sock={VirNetLog.Ptr(SocketLogId)} fd={fds[tx.DoneFds]}");
                int rv = Libc.SendFd(_fd, fds[tx.DoneFds]);
                if (rv < 0)
                {
                    Fail(VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(),
                        $"Failed to send file descriptor {fds[tx.DoneFds]}"));
                    return;
                }
                if (rv == 0)
                    return; // would block
                tx.DoneFds++;
            }

            var msg = _tx.Serve()!;
            if (msg.Tracked)
            {
                _nrequests--;
                if (_rx is null && _nrequests < MaxRequests)
                {
                    _pool.LogClear(msg);
                    msg.PrepareRead();
                    _rx = msg;
                    _nrequests++;
                    msg = null;
                }
            }
            if (msg is not null)
                _pool.Return(msg);
            UpdateEvent();
            if (_delayedClose)
                _wantClose = true;
        }
    }

    /// <summary>virNetServerClientSendMessage: queues <paramref name="msg"/>
    /// (the client owns it from here); -1 if the client is closing, and the
    /// caller keeps it.</summary>
    public int SendMessage(VirNetMessage msg)
    {
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 1452, "virNetServerClientSendMessageLocked",
                $"msg={VirNetLog.Ptr(msg.LogId)} proc={msg.Header.proc} len={msg.BufferLength} offset={msg.BufferOffset}");
        msg.DoneFds = 0;
        if (_fd < 0 || _wantClose)
            return -1;
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 1458, "virNetServerClientSendMessageLocked",
                $"RPC_SERVER_CLIENT_MSG_TX_QUEUE: client={VirNetLog.Ptr(LogId)} len={msg.BufferLength} prog={msg.Header.prog} vers={msg.Header.vers} proc={(uint)msg.Header.proc} type={(uint)msg.Header.type} status={(uint)msg.Header.status} serial={msg.Header.serial}");
        _tx.Push(msg);
        UpdateEvent();
        return 0;
    }

    // ---- close ----

    /// <summary>virNetServerClientDelayedClose: closes once the queued replies are written.</summary>
    public void DelayedClose() => _delayedClose = true;

    /// <summary>virNetServerClientImmediateClose: closes at the next chance, replies dropped.</summary>
    public void ImmediateClose() => _wantClose = true;

    /// <summary>virNetServerClientClose: keepalive stopped, the close hook
    /// run, the socket unwatched and closed, queued messages dropped.</summary>
    public void Close()
    {
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 969, "virNetServerClientCloseLocked", $"client={VirNetLog.Ptr(LogId)}");
        if (_fd < 0) return;
        if (_keepalive is { } ka)
        {
            ka.Stop();
            _keepalive = null;
            ka.Release();
            _spareKeepAlive = ka;
        }
        CloseHook?.Invoke(this);
        // a closed client may wait for reuse: it keeps no daemon state alive
        CloseHook = null;
        PrivateData = null;
        if (_watch >= 0)
        {
            _loop.RemoveHandle(_watch);
            _watch = -1;
        }
        _wantClose = true;
        if (_rx is not null)
        {
            _pool.Return(_rx);
            _rx = null;
        }
        while (_tx.Serve() is { } m)
            _pool.Return(m);
        Libc.close(_fd);
        _fd = -1;
    }

    /// <summary>The lines libvirt logs when the client's last reference goes
    /// (virNetServerClientDispose, then its socket's virNetSocketDispose):
    /// the server calls it once it has forgotten the client.</summary>
    internal void LogDisposed()
    {
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 934, "virNetServerClientDispose", $"RPC_SERVER_CLIENT_DISPOSE: client={VirNetLog.Ptr(LogId)}");
        if (_log.On(VirNetLog.NetSocket, VirLogPriority.Info))
            _log.Info(VirNetLog.NetSocket, VirNetLog.SocketFile, 1296, "virNetSocketDispose",
                $"RPC_SOCKET_DISPOSE: sock={VirNetLog.Ptr(SocketLogId)}");
    }

    public void Dispose() => Close();
}
