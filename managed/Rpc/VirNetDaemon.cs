using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Util;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>
/// The managed twin of libvirt's virnetdaemon.c (rpc_impl = "managed"): the
/// daemon's managed servers (<see cref="VirNetServer"/>) and their UNIX
/// services, signals, the idle timeout with its inhibitions, and the run
/// loop on the managed event loop, all on one loop thread.
/// <para>Signals: a C handler of the shim (virtshimSignalToPipe), put in
/// place by one sigaction as libvirt's virNetDaemonAddSignalHandler does,
/// writes the signal number into a self-pipe that the loop watches, so the
/// daemon's handlers run on the loop thread between dispatches, as
/// libvirt's virNetDaemonSignalEvent runs them. Not .NET's
/// PosixSignalRegistration: it leaves a signal that is SIG_IGN when it
/// registers ignored, which is how an exec-restart hands SIGUSR1 over, and
/// making it default first leaves an instant in which a SIGUSR1 kills the
/// new image.</para>
/// <para>Exec-restart: <see cref="PreExecRestart"/> describes the servers,
/// services and clients in libvirt's "daemon" format (through the model in
/// VirNetDaemonState.cs) with their descriptors left open across exec, and
/// <see cref="AdoptState"/> takes such a description (libvirt's or ours)
/// over, descriptors included.</para>
/// </summary>
public sealed unsafe class VirNetDaemon : IVirNetDaemon, IDisposable
{
    private readonly VirEventManaged _loop;
    private readonly IVirErrorReporter _errors;
    private readonly List<VirNetServer> _servers = new();
    // listening sockets this daemon opened or was given, with the path to unlink when it made the file
    private readonly List<(VirNetServerService Service, VirNetSocketHandle Socket, string? UnlinkPath)> _listeners = new();
    private readonly Lock _lock = new();

    // signals: handlers by number, the self-pipe and its watch
    private readonly Dictionary<int, Action> _signalHandlers = new();
    private readonly List<int> _caughtSignals = new();
    private int _sigRead = -1, _sigWrite = -1, _sigWatch = -1;
    private readonly VirEventHandleCallback _onSignalPipe;

    // virNetDaemon's own fields of the same names
    private bool _quit;
    private bool _execRestart;
    private bool _running;
    private readonly VirNetDaemonAutoShutdown _autoShutdown;
    private readonly VirEventTimeoutCallback _onAutoShutdownTimer;

    public VirNetDaemon(VirEventManaged loop, bool privileged, IVirErrorReporter errors)
    {
        _loop = loop;
        _errors = errors;
        Privileged = privileged;
        _onSignalPipe = OnSignalPipe;
        _onAutoShutdownTimer = OnAutoShutdownTimer;
        _autoShutdown = new VirNetDaemonAutoShutdown(_loop, _onAutoShutdownTimer);
    }

    public bool Privileged { get; }

    public IVirLog? Logging
    {
        get => _rpcLog.Target;
        set => _rpcLog.Target = value;
    }

    // the rpc lines of every server, client and message of this daemon
    private readonly VirNetLog _rpcLog = new();
    /// <summary>The daemon's %p in the rpc lines.</summary>
    private readonly ulong _logId = VirNetLog.NewId();

    public IVirEventLoop EventLoop => _loop;

    public IVirEventLoop Loop => _loop;

    public Action? ExecRestart { get; set; }

    /// <summary>Set by <see cref="QuitExecRestart"/>.</summary>
    public volatile bool ExecRestartRequested;

    /// <summary>The servers in the order they were added.</summary>
    public IReadOnlyList<VirNetServer> Servers => _servers;

    public VirNetServer? GetServer(string name) => _servers.Find(s => s.Name == name);

    /// <summary>A server with the C daemons' settings (virNetServerNew as
    /// they call it): max_clients for both limits, keepalive disabled, no
    /// worker pool, client ids from 1.</summary>
    public VirNetServer AddServer(string name, uint maxClients)
    {
        var srv = new VirNetServer(name, _loop, maxClients, maxClients, -1, 0) { Log = _rpcLog };
        _servers.Add(srv);
        return srv;
    }

    /// <summary>
    /// virNetServerAddServiceUNIX: with socket activation, the descriptors
    /// named <paramref name="actName"/> (none: no service, as libvirt);
    /// otherwise a new socket at <paramref name="path"/> (any old file
    /// unlinked first, the file created with <paramref name="mode"/>).
    /// Each client may have <paramref name="maxRequests"/> calls in flight.
    /// </summary>
    public VirResult AddServiceUnix(VirNetServer srv, VirSystemdActivation? act, string actName, string path, uint mode,
        int maxRequests = 1)
    {
        if (act is not null)
        {
            foreach (int fd in act.Claim(actName))
            {
                // libvirt listens again with its default backlog
                if (!VirNetSocketHandle.AdoptListener(fd, 30).TryGet(out var s, out var err))
                    return err!;
                var added = AddListener(srv, s, null, maxRequests);
                if (!added.Ok)
                    return added;
            }
            return VirResult.Success;
        }

        if (_rpcLog.On(VirNetLog.NetServerService, VirLogPriority.Debug))
            _rpcLog.Debug(VirNetLog.NetServerService, VirNetLog.ServiceFile, 238, "virNetServerServiceNewUNIX",
                $"Creating new UNIX server path='{path}' mask={Convert.ToString(mode, 8)} gid=0");
        if (!VirNetSocketHandle.ListenUnix(path, mode, 30).TryGet(out var sock, out var error))
            return error!;
        return AddListener(srv, sock, path.StartsWith('@') ? null : path, maxRequests);
    }

    private VirResult AddListener(VirNetServer srv, VirNetSocketHandle sock, string? unlinkPath, int maxRequests)
    {
        _rpcLog.SocketNew(VirNetLog.NewId(), sock.Fd, accepted: false);
        VirNetServerService svc;
        try
        {
            svc = new VirNetServerService(sock, _loop, VirNetServerServiceAuth.None, readOnly: false, maxRequests);
        }
        catch (VirErrorException e)
        {
            sock.Dispose();
            return e.Error;
        }
        _listeners.Add((svc, sock, unlinkPath));
        srv.AddService(svc);
        return VirResult.Success;
    }

    // ---- exec-restart ----

    /// <summary>
    /// virNetDaemonPreExecRestart: the "daemon" object, each client's
    /// privateData from <paramref name="privateData"/>, and every listening
    /// and client descriptor made inheritable for the exec that follows.
    /// Runs on the loop thread with the loop stopped.
    /// </summary>
    public VirResult<JsonObject> PreExecRestart(Func<VirNetServer, object, VirResult<JsonNode?>> privateData)
    {
        var state = new VirNetDaemonState();
        var fds = new List<int>();
        foreach (var srv in _servers)
        {
            var ss = new VirNetServerState
            {
                Name = srv.Name,
                MinWorkers = (uint)srv.MinWorkers,
                MaxWorkers = (uint)srv.MaxWorkers,
                PriorityWorkers = (uint)srv.PriorityWorkers,
                MaxClients = (uint)srv.MaxClients,
                MaxAnonymousClients = (uint)srv.MaxAnonymousClients,
                KeepaliveInterval = (uint)srv.KeepaliveInterval, // libvirt saves its int -1 as this unsigned number too
                KeepaliveCount = srv.KeepaliveCount,
                NextClientId = srv.NextClientId,
            };
            foreach (var svc in srv.Services)
            {
                var l = _listeners.Find(x => ReferenceEquals(x.Service, svc));
                ss.Services.Add(new VirNetServerServiceState
                {
                    Auth = (int)svc.Auth,
                    Readonly = svc.ReadOnly,
                    NRequestsClientMax = (uint)svc.MaxRequests,
                    Socks = [new VirNetSocketState(svc.Fd, -1, 0, false, l.UnlinkPath is not null)],
                });
                fds.Add(svc.Fd);
            }
            foreach (var client in srv.Clients)
            {
                if (client.IsClosed || client.PrivateData is null)
                    continue;
                int fd = client.Fd;
                var cs = new VirNetServerClientState
                {
                    Id = client.Id,
                    Auth = (int)client.Auth,
                    AuthPending = client.IsAuthPending,
                    Readonly = client.ReadOnly,
                    NRequestsMax = (uint)client.MaxRequests,
                    ConnTime = client.Timestamp,
                    Sock = new VirNetSocketState(fd, -1, 0, true, false),
                };
                var server = srv;
                cs.SetPrivateData(client.PrivateData, (_, data) => privateData(server, data));
                ss.Clients.Add(cs);
                fds.Add(fd);
            }
            if (state.AddServer(ss).Error is { } dup)
                return dup;
        }
        if (!state.ToJson().TryGet(out var json, out var err))
            return err!;
        foreach (int fd in fds)
        {
            if (Libc.SetInherit(fd, true) < 0)
                return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), $"Unable to keep descriptor {fd} open across exec");
        }
        return json;
    }

    /// <summary>
    /// The servers of an exec-restart state (virNetDaemonNewPostExecRestart
    /// and virNetServerNewPostExecRestart's part): each server with its
    /// limits, next client id and pool numbers, its listening descriptors
    /// as services, and its clients on their descriptors, each given its
    /// private data by <paramref name="clientInit"/> (server, the new client,
    /// the saved privateData). Descriptors are close-on-exec again once
    /// adopted. The first failure stops it (the caller then starts cold).
    /// </summary>
    public VirResult AdoptState(VirNetDaemonState state, Func<VirNetServer, VirNetServerClient, JsonNode?, VirResult> clientInit)
    {
        foreach (var (name, ss) in state.Servers)
        {
            var srv = new VirNetServer(name, _loop, ss.MaxClients, ss.MaxAnonymousClients, (int)ss.KeepaliveInterval,
                ss.KeepaliveCount, ss.NextClientId) { Log = _rpcLog };
            srv.RestoreThreadPoolParameters(ss.MinWorkers, ss.MaxWorkers, ss.PriorityWorkers);
            _servers.Add(srv);
            foreach (var svc in ss.Services)
            {
                foreach (var so in svc.Socks)
                {
                    Libc.SetInherit(so.Fd, false);
                    if (!VirNetSocketHandle.AdoptListener(so.Fd, 0).TryGet(out var s, out var adoptErr))
                        return adoptErr!;
                    string? path = so.UnlinkUNIX ? s.LocalPath() : null;
                    var added = AddListener(srv, s, string.IsNullOrEmpty(path) ? null : path, (int)svc.NRequestsClientMax);
                    if (!added.Ok)
                        return added;
                }
            }
            foreach (var cs in ss.Clients)
            {
                Libc.SetInherit(cs.Sock.Fd, false);
                if (VirNetSocketHandle.SetNonBlocking(cs.Sock.Fd, "Unable to adopt client socket") is { } clientErr)
                    return clientErr;
                var client = new VirNetServerClient(cs.Id, cs.Sock.Fd, (VirNetServerServiceAuth)cs.Auth, cs.Readonly, (int)cs.NRequestsMax,
                    srv.Messages, _loop, cs.ConnTime);
                var saved = (cs.PrivateData as SavedPrivateData)?.Node;
                var init = clientInit(srv, client, saved);
                if (!init.Ok)
                {
                    client.Close();
                    return init;
                }
                if (srv.AddClient(client) < 0)
                {
                    client.Close();
                    return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, $"Unable to restore client {cs.Id}");
                }
            }
        }
        return VirResult.Success;
    }

    /// <summary>The callbacks the state model calls for each saved client:
    /// the saved privateData is kept as it is, for <see cref="AdoptState"/>'s
    /// caller to turn into the daemon's client data once the client exists.</summary>
    public static VirNetServerClientPrivateCallbacks KeepSavedPrivateData { get; } = new(
        (_, node) => new SavedPrivateData(node?.DeepClone()),
        (_, data) => ((SavedPrivateData)data).Node?.DeepClone());

    private sealed record SavedPrivateData(JsonNode? Node);

    // ---- signals ----

    /// <summary>virNetDaemonAddSignalHandler: <paramref name="handler"/> runs
    /// on the loop thread each time <paramref name="signum"/> arrives.</summary>
    public VirResult AddSignalHandler(int signum, Action handler)
    {
        if (_sigWrite < 0)
        {
            int* fds = stackalloc int[2];
            if (Libc.pipe2(fds, Libc.O_CLOEXEC | Libc.O_NONBLOCK) < 0)
                return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Unable to create signal pipe");
            _sigRead = fds[0];
            _sigWrite = fds[1];
            _sigWatch = _loop.AddHandle(_sigRead, VirEventHandleType.Readable, _onSignalPipe, null);
            if (_sigWatch < 0)
                return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "Unable to watch signal pipe");
        }
        lock (_lock)
            _signalHandlers[signum] = handler;
        if (!_caughtSignals.Contains(signum))
        {
            // one sigaction from whatever it was (SIG_IGN after an exec-restart) to caught
            if (virtshimSignalToPipe(signum, _sigWrite) < 0)
                return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastSystemError(), $"Unable to handle signal {signum}");
            _caughtSignals.Add(signum);
        }
        return VirResult.Success;
    }

    private void OnSignalPipe(int watch, int fd, VirEventHandleType events)
    {
        byte* buf = stackalloc byte[16];
        while (true)
        {
            nint n = Libc.read(_sigRead, buf, 16);
            if (n <= 0)
                return;
            for (int i = 0; i < n; i++)
            {
                Action? h;
                lock (_lock)
                    _signalHandlers.TryGetValue(buf[i], out h);
                h?.Invoke();
            }
        }
    }

    // ---- quit, idle timeout ----

    public void Quit()
    {
        Debug(899, "virNetDaemonQuit", $"Quit requested {VirNetLog.Ptr(_logId)}");
        lock (_lock)
            _quit = true;
        _loop.Interrupt();
    }

    public void QuitExecRestart()
    {
        ExecRestartRequested = true;
        Debug(909, "virNetDaemonQuitExecRestart", $"Exec-restart requested {VirNetLog.Ptr(_logId)}");
        lock (_lock)
        {
            _quit = true;
            _execRestart = true;
        }
        _loop.Interrupt();
    }

    public void AddShutdownInhibition()
    {
        lock (_lock)
            _autoShutdown.Inhibitions++;
    }

    public void RemoveShutdownInhibition()
    {
        lock (_lock)
            _autoShutdown.Inhibitions--;
    }

    /// <summary>virNetDaemonHasClients: any server has one.</summary>
    public bool HasClients
    {
        get
        {
            foreach (var s in _servers)
                if (s.HasClients)
                    return true;
            return false;
        }
    }

    public VirResult AutoShutdown(uint seconds)
    {
        lock (_lock)
        {
            Debug(476, "virNetDaemonAutoShutdown", $"Registering shutdown timeout {seconds}");
            if (!_autoShutdown.Set(seconds))
                return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "Failed to register shutdown timeout");
            if (_running)
                ShutdownTimerUpdate();
        }
        _loop.Interrupt();
        return VirResult.Success;
    }

    /// <summary>virNetDaemonShutdownTimerUpdate; under the lock, on the loop thread
    /// or before it runs (the server lists are the loop's).</summary>
    private void ShutdownTimerUpdate()
    {
        _autoShutdown.Update(HasClients);
    }

    private void OnAutoShutdownTimer(int timer)
    {
        lock (_lock)
        {
            if (_autoShutdown.Inhibitions != 0)
                return;
            Debug(417, "virNetDaemonAutoShutdownTimer", "Automatic shutdown triggered");
            _quit = true;
        }
    }

    // ---- run ----

    /// <summary>virNetDaemonUpdateServices(true), then the loop on the calling
    /// thread (the C daemons run it on their main thread) until the daemon
    /// quits; an exec-restart that fails goes back to serving.</summary>
    public void Run()
    {
        foreach (var s in _servers)
            s.UpdateServices(true);
        while (true)
        {
            RunUntilQuit();
            if (!ExecRestartRequested || ExecRestart is null)
                break;
            ExecRestart(); // returns only if the exec failed
            ExecRestartRequested = false;
        }
    }

    /// <summary>
    /// virNetDaemonRun: readiness to systemd, then iterations of the loop,
    /// each followed by closing the clients that want it, until quit. For an
    /// exec-restart it returns with everything open; otherwise every server
    /// is closed (services, then clients, whose free hooks run) and one more
    /// iteration runs what that released. The servers have no worker pool, so
    /// there is nothing to wait for (libvirt's 30 s finish timer).
    /// </summary>
    private void RunUntilQuit()
    {
        lock (_lock)
        {
            _quit = false;
            _execRestart = false;
            _running = true;
        }

        // accepting connections now: systemd may start what depends on us
        VirSystemd.NotifyStartup(Logging);
        Debug(833, "virNetDaemonRun", $"dmn={VirNetLog.Ptr(_logId)} quit=0");

        while (true)
        {
            lock (_lock)
                ShutdownTimerUpdate();

            _errors.ResetLast(); // as virEventRunDefaultImpl does
            if (!_loop.RunOnce().Ok)
            {
                Debug(840, "virNetDaemonRun", "Loop iteration error, exiting");
                break;
            }

            foreach (var s in _servers)
                s.ProcessClients();

            lock (_lock)
            {
                // don't shut down services when performing an exec-restart
                if (_quit && _execRestart)
                    return;
                if (_quit)
                    break;
            }
        }

        lock (_lock)
            _running = false;
        foreach (var s in _servers)
            s.Dispose();
        // one more iteration runs the free callbacks of what the close removed; woken first, it does not block
        _loop.Interrupt();
        _loop.RunOnce();
    }

    public void Dispose()
    {
        // before the pipe closes: its number could be another file's by then
        foreach (int signum in _caughtSignals)
            virtshimSignalToPipeRemove(signum);
        _caughtSignals.Clear();
        if (_sigWatch >= 0)
        {
            _loop.RemoveHandle(_sigWatch);
            _sigWatch = -1;
        }
        foreach (var s in _servers)
            s.Dispose();
        foreach (var (_, sock, unlink) in _listeners)
        {
            sock.Dispose();
            if (unlink is not null)
            {
                try { File.Delete(unlink); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        _listeners.Clear();
        if (_sigRead >= 0) Libc.close(_sigRead);
        if (_sigWrite >= 0) Libc.close(_sigWrite);
        _sigRead = _sigWrite = -1;
        _autoShutdown.RemoveTimer();
    }

    /// <summary>A debug line of virnetdaemon.c's (source rpc.netdaemon, its
    /// function and line) through the daemon's logging.</summary>
    private void Debug(int line, string function, string message)
    {
        if (_rpcLog.On(VirNetLog.NetDaemon, VirLogPriority.Debug))
            _rpcLog.Debug(VirNetLog.NetDaemon, VirNetLog.DaemonFile, line, function, message);
    }
}
