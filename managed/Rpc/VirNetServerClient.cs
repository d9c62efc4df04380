using System.Net.Sockets;
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
/// </summary>
public sealed unsafe class VirNetServerClient : IDisposable
{
    private readonly IVirEventLoop _loop;
    private readonly VirNetMessagePool _pool;
    private readonly VirEventHandleCallback _onEvent;
    private SafeSocketHandle? _sock;
    private int _fd = -1;
    private int _watch = -1;

    private VirNetMessage? _rx;
    private VirNetMessageQueue _tx;
    private int _nrequests;

    private bool _wantClose;
    private bool _delayedClose;
    private bool _authPending;
    private VirKeepAlive? _keepalive;
    private Action<VirNetServerClient, VirNetMessage>? _dispatcher;

    public ulong Id { get; }
    public VirNetServerServiceAuth Auth { get; private set; }
    public bool ReadOnly { get; }
    /// <summary>nrequests_max: messages read and not yet answered, at most.</summary>
    public int MaxRequests { get; }
    /// <summary>Messages read and not yet answered (the one being read counts).</summary>
    public int Requests => _nrequests;
    /// <summary>When the connection was accepted (seconds since the epoch, conn_time).</summary>
    public long Timestamp { get; }

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

    /// <param name="timestamp">when it connected; null: now (a client restored across an exec-restart keeps its own)</param>
    public VirNetServerClient(ulong id, SafeSocketHandle socket, VirNetServerServiceAuth auth, bool readOnly, int maxRequests,
        VirNetMessagePool pool, IVirEventLoop loop, long? timestamp = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Id = id;
        _sock = socket;
        _fd = (int)socket.DangerousGetHandle();
        Auth = auth;
        _authPending = auth is not (VirNetServerServiceAuth.None or VirNetServerServiceAuth.Polkit);
        ReadOnly = readOnly;
        MaxRequests = Math.Max(1, maxRequests);
        _pool = pool;
        _loop = loop;
        _onEvent = DispatchEvent;
        Timestamp = timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        // one message ready for the first frame
        _rx = pool.Rent(tracked: true);
        _rx.PrepareRead();
        _nrequests = 1;
    }

    public bool IsAuthenticated => Auth is VirNetServerServiceAuth.None or VirNetServerServiceAuth.Polkit;
    public bool IsAuthPending => _authPending;
    public bool IsClosed => _sock is null;
    public bool WantClose => _wantClose;

    /// <summary>The socket, null once closed.</summary>
    public SafeSocketHandle? Socket => _sock;

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
        if (_sock is null)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "client is closed");
        _watch = _loop.AddHandle(_fd, HandleMode(), _onEvent, null);
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
        var sock = _sock;
        if (sock is null)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "client is closed");
        Libc.ucred cred;
        uint len = (uint)sizeof(Libc.ucred);
        bool added = false;
        try
        {
            sock.DangerousAddRef(ref added);
            if (Libc.getsockopt((int)sock.DangerousGetHandle(), Libc.SOL_SOCKET, Libc.SO_PEERCRED, &cred, &len) < 0)
                return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Failed to get client socket identity");
        }
        finally
        {
            if (added) sock.DangerousRelease();
        }
        return new VirNetSocketUnixIdentity(cred.uid, cred.gid, cred.pid);
    }

    // ---- keepalive ----

    /// <summary>virNetServerClientInitKeepAlive: PINGs are answered from now
    /// on; the client itself pings only once <see cref="StartKeepAlive"/> is called.</summary>
    internal void InitKeepAlive(int interval, uint count)
        => _keepalive = new VirKeepAlive(interval, count, _loop, _pool, SendMessage, () =>
        {
            ImmediateClose();
            AfterEvent?.Invoke(this);
        });

    /// <summary>virNetServerClientStartKeepAlive: the server pings an idle
    /// client every interval and closes it after count unanswered pings.</summary>
    public VirResult StartKeepAlive()
    {
        if (_keepalive is null)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "connection not open");
        return _keepalive.Start(0, 0);
    }

    // ---- events ----

    private VirEventHandleType HandleMode()
    {
        if (_sock is null || _wantClose) return VirEventHandleType.None;
        var mode = VirEventHandleType.None;
        // a message to fill, and not closing once the replies are out
        if (_rx is not null && !_delayedClose) mode |= VirEventHandleType.Readable;
        if (!_tx.IsEmpty) mode |= VirEventHandleType.Writable;
        return mode;
    }

    /// <summary>Inside <see cref="DispatchEvent"/>: the watch is brought up
    /// to date once, at its end, not at each step.</summary>
    private bool _inEvent;

    private void UpdateEvent()
    {
        if (_sock is null || _watch < 0 || _inEvent) return;
        _loop.UpdateHandle(_watch, HandleMode());
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
        if (_sock is null || watch != _watch) return;
        _inEvent = true;
        try
        {
            VirNetMessage? msg = null;
            bool read = false;
            if ((events & VirEventHandleType.Writable) != 0)
                DispatchWrite();
            if ((events & VirEventHandleType.Readable) != 0 && _rx is not null && !_wantClose && _sock is not null)
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
            if (read && !_tx.IsEmpty && !_wantClose && _sock is not null)
                DispatchWrite();
        }
        finally
        {
            _inEvent = false;
        }
        UpdateEvent();
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
            // the peer closed (libvirt's daemons set quiet EOF: no error logged)
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
                UpdateEvent();
                continue; // the rest is likely there already
            }

            if (rx.DecodeHeader() is { } he)
                return Drop(rx, he);

            if (rx.Header.type == virNetMessageType.VIR_NET_CALL_WITH_FDS)
            {
                if (rx.DecodeNumFds() is { } fe)
                    return Drop(rx, fe);
                while (rx.DoneFds < rx.FdCount)
                {
                    int rv = Libc.RecvFd(_fd, out int fd, out int errno);
                    if (rv < 0)
                        return Drop(rx, VirError.System(VirErrorDomain.Rpc, errno, "Failed to recv file descriptor"));
                    if (rv == 0)
                        break; // would block
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
        msg.DoneFds = 0;
        if (_sock is null || _wantClose)
            return -1;
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
        if (_sock is null) return;
        _keepalive?.Stop();
        _keepalive = null;
        CloseHook?.Invoke(this);
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
        // closed here rather than by the handle's release, which first sets
        // SO_LINGER to 0 (an abortive close, meaningless on a UNIX socket):
        // one system call less per connection. Nothing else holds the handle:
        // it is used on the loop thread only.
        _sock.SetHandleAsInvalid();
        Libc.close(_fd);
        _sock.Dispose();
        _sock = null;
        _fd = -1;
    }

    public void Dispose() => Close();
}
