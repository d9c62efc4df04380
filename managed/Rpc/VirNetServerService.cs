using System.Runtime.InteropServices;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// A listening UNIX socket of a managed server (libvirt's
/// virnetserverservice.c): watched on the event loop, one connection
/// accepted per readable event (non-blocking, close-on-exec) and handed to
/// the server. The server toggles it off while it is full. When accept
/// fails for want of descriptors (EMFILE, ENFILE) the service stops
/// listening for 5 seconds, as libvirt's does. The caller keeps owning the
/// listening socket; the service holds a reference on it while it lives.
/// </summary>
public sealed class VirNetServerService : IDisposable
{
    private const int RetryAfterMs = 5 * 1000;
    private const int EMFILE = 24, ENFILE = 23;

    private readonly SafeHandle _listener;
    private readonly int _fd;
    private readonly IVirEventLoop _loop;
    private readonly VirEventHandleCallback _onAccept;
    private bool _addedRef;
    private int _watch = -1;
    private int _timer = -1;
    private bool _enabled;
    private Func<VirNetServerService, int, int>? _dispatch;

    public VirNetServerServiceAuth Auth { get; }
    public bool ReadOnly { get; }
    /// <summary>nrequests_client_max of the clients it accepts.</summary>
    public int MaxRequests { get; }

    /// <summary>The retry timer after EMFILE is pending: the server then leaves the service alone.</summary>
    public bool TimerActive { get; private set; }

    /// <summary>The last accept error (libvirt logs it).</summary>
    public VirError? LastError { get; private set; }

    public VirNetServerService(SafeHandle listener, IVirEventLoop loop, VirNetServerServiceAuth auth = VirNetServerServiceAuth.None,
        bool readOnly = false, int maxRequests = 5)
    {
        ArgumentNullException.ThrowIfNull(listener);
        _listener = listener;
        _listener.DangerousAddRef(ref _addedRef);
        _fd = (int)_listener.DangerousGetHandle();
        _loop = loop;
        Auth = auth;
        ReadOnly = readOnly;
        MaxRequests = maxRequests;
        _onAccept = Accept;
        _watch = loop.AddHandle(_fd, VirEventHandleType.Readable, _onAccept, null);
        if (_watch < 0)
        {
            Dispose();
            throw new VirErrorException(VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError,
                "Unable to register listening socket"));
        }
        _enabled = true;
        _timer = loop.AddTimeout(-1, _ => Resume(), null);
    }

    public bool Enabled => _enabled;

    /// <summary>The listening socket's descriptor (saved across an exec-restart).</summary>
    public int Fd => _fd;

    /// <summary>virNetServerServiceSetDispatcher: where accepted sockets go
    /// (the server, which owns the descriptor from then: 0, or -1 when it
    /// refused the client).</summary>
    internal void SetDispatcher(Func<VirNetServerService, int, int> dispatch) => _dispatch = dispatch;

    /// <summary>virNetServerServiceToggle: accept new connections or not.</summary>
    public void Toggle(bool enabled)
    {
        _enabled = enabled;
        if (_watch >= 0)
            _loop.UpdateHandle(_watch, enabled ? VirEventHandleType.Readable : VirEventHandleType.None);
    }

    private void Resume()
    {
        _loop.UpdateTimeout(_timer, -1);
        TimerActive = false;
        Toggle(true);
    }

    /// <summary>virNetServerServiceAccept.</summary>
    private unsafe void Accept(int watch, int fd, VirEventHandleType events)
    {
        int client;
        while (true)
        {
            client = Libc.accept4(_fd, null, null, Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC);
            if (client >= 0) break;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EINTR) continue;
            if (errno == Libc.EAGAIN)
                return; // the connection already went away
            LastError = VirError.System(VirErrorDomain.Rpc, errno, "Unable to accept client");
            if (errno is EMFILE or ENFILE)
            {
                Toggle(false);
                TimerActive = true;
                _loop.UpdateTimeout(_timer, RetryAfterMs);
            }
            return;
        }
        if (_dispatch is null)
        {
            Libc.close(client);
            return;
        }
        _dispatch(this, client);
    }

    public void Dispose()
    {
        if (_watch >= 0)
        {
            _loop.RemoveHandle(_watch);
            _watch = -1;
        }
        if (_timer >= 0)
        {
            _loop.RemoveTimeout(_timer);
            _timer = -1;
        }
        if (_addedRef)
        {
            _listener.DangerousRelease();
            _addedRef = false;
        }
    }
}
