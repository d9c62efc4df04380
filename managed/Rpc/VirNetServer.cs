using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.Rpc;

/// <summary>
/// A managed server (libvirt's virnetserver.c): its listening services,
/// its clients and its programs, on one event loop thread (no worker pool:
/// every message is dispatched on the loop, as the daemons run with no
/// workers for these programs). Client accounting is libvirt's: at
/// max_clients, or at max_anonymous_clients clients still authenticating,
/// the services stop accepting, and accept again once a client goes.
/// A message goes to the program whose number and version it names; a CALL
/// for none gets libvirt's "Cannot find program" error reply, anything
/// else for none is dropped. A client that wants closing is closed, and
/// forgotten, after the event that made it so.
/// </summary>
public sealed class VirNetServer : IDisposable
{
    private readonly IVirEventLoop _loop;
    private readonly List<VirNetServerService> _services = new();
    private readonly List<VirNetServerProgram> _programs = new();
    private readonly List<VirNetServerClient> _clients = new();
    /// <summary>Closed clients kept for the next connections (see
    /// <see cref="VirNetServerClient"/>): a connection's life allocates nothing.</summary>
    private readonly Stack<VirNetServerClient> _spare = new();
    private const int MaxSpare = 64;
    private readonly Action<VirNetServerClient, VirNetMessage> _onMessage;
    private readonly Action<VirNetServerClient> _afterClientEvent;
    private readonly Func<VirNetServerService, int, int> _onNewClient;
    private ulong _nextClientId;
    private int _nclientsUnauth;
    private bool _processing;

    public string Name { get; }
    public VirNetMessagePool Messages { get; } = new();
    public long MaxClients { get; private set; }
    public long MaxAnonymousClients { get; private set; }
    public int KeepaliveInterval { get; }
    public uint KeepaliveCount { get; }

    /// <summary>Run for each new client before it is served (clientPrivNew:
    /// the daemon sets its private data, checks the peer). A non-success
    /// result refuses the client.</summary>
    public Func<VirNetServerClient, VirResult>? ClientInit { get; set; }

    /// <summary>Where the rpc lines of the server, its clients, messages and
    /// keepalives go (<see cref="VirNetLog"/>; shared with its message pool).</summary>
    public VirNetLog Log
    {
        get => Messages.Log;
        init => Messages.Log = value;
    }

    /// <summary>The server's %p in the rpc lines.</summary>
    public ulong LogId { get; } = VirNetLog.NewId();

    private static readonly VirLogSource Src = VirNetLog.NetServer;
    private const string File = VirNetLog.ServerFile;

    public VirNetServer(string name, IVirEventLoop loop, long maxClients, long maxAnonymousClients,
        int keepaliveInterval, uint keepaliveCount, ulong nextClientId = 1)
    {
        Name = name;
        _loop = loop;
        MaxClients = maxClients;
        MaxAnonymousClients = maxAnonymousClients;
        KeepaliveInterval = keepaliveInterval;
        KeepaliveCount = keepaliveCount;
        _nextClientId = nextClientId;
        _onMessage = DispatchNewMessage;
        _afterClientEvent = c =>
        {
            if (c.WantClose || c.IsClosed)
                ProcessClients();
        };
        _onNewClient = DispatchNewClient;
    }

    public IReadOnlyList<VirNetServerClient> Clients => _clients;
    public IReadOnlyList<VirNetServerService> Services => _services;
    /// <summary>The id the next client gets (next_client_id).</summary>
    public ulong NextClientId => _nextClientId;
    public int CurrentClients => _clients.Count;
    public int CurrentUnauthClients => _nclientsUnauth;

    /// <summary>virNetServerAddService.</summary>
    public void AddService(VirNetServerService service)
    {
        _services.Add(service);
        service.SetDispatcher(_onNewClient);
        // libvirt's does not check here; ours does (a service added to a full
        // server starts suspended), without the lines libvirt would not log
        CheckLimits(quiet: true);
    }

    /// <summary>virNetServerAddProgram.</summary>
    public void AddProgram(VirNetServerProgram program)
    {
        // the line libvirt writes when the daemon makes the program, just before adding it
        if (Log.On(VirNetLog.NetServerProgram, VirLogPriority.Debug))
            Log.Debug(VirNetLog.NetServerProgram, VirNetLog.ProgramFile, 79, "virNetServerProgramNew", $"prog={VirNetLog.Ptr(VirNetLog.NewId())}");
        _programs.Add(program);
    }

    /// <summary>virNetServerUpdateServices.</summary>
    public void UpdateServices(bool enabled)
    {
        foreach (var s in _services)
            s.Toggle(enabled);
    }

    /// <summary>virNetServerDispatchNewClient: a client for the accepted socket.</summary>
    /// <summary>virNetServerDispatchNewClient: a client for the accepted socket <paramref name="fd"/> (the client owns it).</summary>
    private int DispatchNewClient(VirNetServerService service, int fd)
    {
        var log = Log;
        ulong sockId = VirNetLog.NewId();
        log.SocketNew(sockId, fd, accepted: true);
        if (log.On(VirNetLog.NetServerClient, VirLogPriority.Debug))
            log.Debug(VirNetLog.NetServerClient, VirNetLog.ClientFile, 436, "virNetServerClientNew",
                $"sock={VirNetLog.Ptr(sockId)} auth={(int)service.Auth} tls=(nil)");
        VirNetServerClient client;
        if (_spare.TryPop(out var spare))
        {
            client = spare;
            client.Open(_nextClientId++, fd, service.Auth, service.ReadOnly, service.MaxRequests, socketLogId: sockId);
        }
        else
        {
            client = new VirNetServerClient(_nextClientId++, fd, service.Auth, service.ReadOnly, service.MaxRequests,
                Messages, _loop, socketLogId: sockId);
        }
        if ((ClientInit is { } init && !init(client).Ok) || AddClient(client) < 0)
        {
            client.Close();
            Forget(client);
            return -1;
        }
        return 0;
    }

    /// <summary>The client's last reference gone, as libvirt logs it; kept for a later connection.</summary>
    private void Forget(VirNetServerClient client)
    {
        client.LogDisposed();
        if (_spare.Count < MaxSpare && client.CanReuse(_loop, Messages))
            _spare.Push(client);
    }

    /// <summary>virNetServerAddClient.</summary>
    public int AddClient(VirNetServerClient client)
    {
        if (!client.Init().Ok)
            return -1;
        _clients.Add(client);
        if (client.IsAuthPending)
            _nclientsUnauth++;
        CheckLimits();
        client.SetDispatcher(_onMessage);
        client.AfterEvent = _afterClientEvent;
        client.InitKeepAlive(KeepaliveInterval, KeepaliveCount);
        return 0;
    }

    /// <summary>virNetServerDispatchNewMessage and virNetServerProcessMsg,
    /// with no worker pool.</summary>
    private void DispatchNewMessage(VirNetServerClient client, VirNetMessage msg)
    {
        if (Log.On(Src, VirLogPriority.Debug))
            Log.Debug(Src, File, 203, "virNetServerDispatchNewMessage",
                $"server={VirNetLog.Ptr(LogId)} client={VirNetLog.Ptr(client.LogId)} message={VirNetLog.Ptr(msg.LogId)}");
        VirNetServerProgram? prog = null;
        foreach (var p in _programs)
        {
            if (p.Matches(msg.Header))
            {
                prog = p;
                break;
            }
        }
        if (ProcessMsg(client, prog, msg) < 0)
        {
            Messages.Return(msg);
            client.Close();
        }
    }

    private int ProcessMsg(VirNetServerClient client, VirNetServerProgram? prog, VirNetMessage msg)
    {
        if (prog is null)
        {
            // only calls expect an answer; anything else is dropped, its slot freed
            if (msg.Header.type is virNetMessageType.VIR_NET_CALL or virNetMessageType.VIR_NET_CALL_WITH_FDS)
                return VirNetServerProgram.UnknownError(client, msg) < 0 ? -1 : 0;
            if (Log.On(Src, VirLogPriority.Info))
                Log.Info(Src, File, 123, "virNetServerProcessMsg",
                    $"Dropping client message, unknown program {(int)msg.Header.prog} version {(int)msg.Header.vers} type {(int)msg.Header.type} proc {msg.Header.proc}");
            return VirNetServerProgram.DummyReply(client, msg);
        }
        return prog.Dispatch(client, msg);
    }

    /// <summary>virNetServerCheckLimits: stop accepting when full, accept again when not.</summary>
    private void CheckLimits(bool quiet = false)
    {
        var log = quiet ? null : Log;
        foreach (var s in _services)
        {
            if (s.TimerActive)
            {
                if (log is not null && log.On(Src, VirLogPriority.Debug))
                    log.Debug(Src, File, 264, "virNetServerCheckLimits", "Skipping client-related limits evaluation");
                return;
            }
        }
        long n = _clients.Count;
        if (log is not null && log.On(Src, VirLogPriority.Debug))
            log.Debug(Src, File, 269, "virNetServerCheckLimits",
                $"Checking client-related limits to re-enable or temporarily suspend services: nclients={n} nclients_max={(ulong)MaxClients} nclients_unauth={_nclientsUnauth} nclients_unauth_max={(ulong)MaxAnonymousClients}");
        if (n >= MaxClients || (MaxAnonymousClients > 0 && _nclientsUnauth >= MaxAnonymousClients))
        {
            if (log is not null && log.On(Src, VirLogPriority.Info))
                log.Info(Src, File, 286, "virNetServerCheckLimits", "Temporarily suspending services");
            UpdateServices(false);
        }
        else
        {
            if (log is not null && log.On(Src, VirLogPriority.Info))
                log.Info(Src, File, 292, "virNetServerCheckLimits", "Re-enabling services");
            UpdateServices(true);
        }
    }

    /// <summary>virNetServerSetClientAuthenticated.</summary>
    public void SetClientAuthenticated(VirNetServerClient client)
    {
        client.SetAuthenticated();
        AuthCompleted(client);
        CheckLimits();
    }

    private void AuthCompleted(VirNetServerClient client)
    {
        if (client.IsAuthPending)
        {
            client.SetAuthPending(false);
            _nclientsUnauth--;
        }
    }

    /// <summary>virNetServerSetClientLimits: a negative value leaves a limit as it is.</summary>
    public VirResult SetClientLimits(long maxClients, long maxClientsUnauth)
    {
        long max = maxClients >= 0 ? maxClients : MaxClients;
        long maxUnauth = maxClientsUnauth >= 0 ? maxClientsUnauth : MaxAnonymousClients;
        if (max < maxUnauth)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InvalidArg,
                "The overall maximum number of clients waiting for authentication must not be less than the overall maximum number of clients");
        if (maxClients >= 0) MaxClients = maxClients;
        if (maxClientsUnauth >= 0) MaxAnonymousClients = maxClientsUnauth;
        CheckLimits();
        return VirResult.Success;
    }

    /// <summary>virNetServerProcessClients: clients that want closing are
    /// closed and dropped, and the limits checked again.</summary>
    public void ProcessClients()
    {
        if (_processing) return; // a close hook that closes another client
        _processing = true;
        try
        {
            for (int i = 0; i < _clients.Count;)
            {
                var client = _clients[i];
                // as libvirt's, a client closed already is "closed" again (its line logged), then dropped
                if (client.WantClose)
                    client.Close();
                if (client.IsClosed)
                {
                    _clients.RemoveAt(i);
                    AuthCompleted(client);
                    CheckLimits();
                    Forget(client);
                    i = 0;
                    continue;
                }
                i++;
            }
        }
        finally
        {
            _processing = false;
        }
    }

    /// <summary>The worker pool's parameters (virThreadPool's minWorkers,
    /// maxWorkers, maxPrioWorkers). This server has no pool, as the daemons'
    /// C servers have no workers: the numbers are kept for the admin
    /// program, with virThreadPoolSetParameters' rules, and start no thread.</summary>
    public long MinWorkers { get; private set; }
    public long MaxWorkers { get; private set; }
    public long PriorityWorkers { get; private set; }

    /// <summary>virNetServerSetThreadPoolParameters: a negative value leaves a parameter as it is.</summary>
    public VirResult SetThreadPoolParameters(long minWorkers, long maxWorkers, long priorityWorkers)
    {
        ulong max = (ulong)(maxWorkers >= 0 ? maxWorkers : MaxWorkers);
        ulong min = (ulong)(minWorkers >= 0 ? minWorkers : MinWorkers);
        if (min > max)
            return VirError.Report(VirErrorDomain.None, VirErrorCode.InvalidArg, "minWorkers cannot be larger than maxWorkers");
        if ((maxWorkers == 0 && MaxWorkers > 0) || (maxWorkers > 0 && MaxWorkers == 0))
            return VirError.Report(VirErrorDomain.None, VirErrorCode.InvalidArg,
                "maxWorkers must not be switched from zero to non-zero and vice versa");
        if (minWorkers >= 0) MinWorkers = minWorkers;
        if (maxWorkers >= 0) MaxWorkers = maxWorkers;
        if (priorityWorkers >= 0) PriorityWorkers = priorityWorkers;
        return VirResult.Success;
    }

    /// <summary>The numbers as an exec-restart state saved them (no rule applies: they were set under it).</summary>
    public void RestoreThreadPoolParameters(long minWorkers, long maxWorkers, long priorityWorkers)
    {
        MinWorkers = minWorkers;
        MaxWorkers = maxWorkers;
        PriorityWorkers = priorityWorkers;
    }

    /// <summary>virNetServerHasClients.</summary>
    public bool HasClients => _clients.Count > 0;

    /// <summary>virNetServerClose: the services stop, every client is closed.</summary>
    public void Dispose()
    {
        foreach (var s in _services)
            s.Dispose();
        _services.Clear();
        foreach (var c in _clients)
        {
            c.Close();
            c.LogDisposed();
        }
        _clients.Clear();
        _nclientsUnauth = 0;
    }
}
