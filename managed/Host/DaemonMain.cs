using Libvirt.Admin;
using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Host.Configuration;
using Libvirt.Host.ExecRestart;
using Libvirt.Interop;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host;

/// <summary>
/// The main() virtlockd and virtlogd share: command line, config, logging,
/// pid file, run directory, -d, the "&lt;name&gt;" and "admin" servers with
/// their UNIX sockets (or systemd's), signals, the idle timeout, and the
/// event loop, with the C daemons' order, messages and exit codes. A daemon
/// supplies its name, config keys, client data and RPC program.
/// </summary>
public abstract unsafe class DaemonMain
{
    /// <summary>"virtlockd" or "virtlogd": servers, sockets, files and units are named after it.</summary>
    protected abstract string Name { get; }

    /// <summary>The line the usage text ends with, e.g. "libvirt lock management daemon".</summary>
    protected abstract string Description { get; }

    /// <summary>The libvirt source name of the daemon's own log messages.</summary>
    protected abstract string LogCategory { get; }

    protected abstract DaemonConfig NewConfig();

    /// <summary>The daemon's state object (lock spaces, log handler...),
    /// made once the configuration is read and before any server exists: the
    /// main server's client callbacks reach it through their opaque
    /// (<see cref="StateOpaque"/>), as the C daemons reach theirs.</summary>
    protected abstract object NewState(DaemonConfig config, bool privileged);

    /// <summary>Client data callbacks of the main server; their opaque is
    /// <see cref="StateOpaque"/>.</summary>
    protected abstract delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew { get; }
    protected abstract delegate* unmanaged[Cdecl]<void*, void> ClientFree { get; }
    protected abstract delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> ClientPreExecRestart { get; }
    protected abstract delegate* unmanaged[Cdecl]<virNetServerClient*, virJSONValue*, void*, void*> ClientNewPostExecRestart { get; }

    /// <summary>Restores the daemon's state from an exec-restart document
    /// instead of <see cref="CreateState"/>. False: the state is unusable
    /// (logged), and the daemon starts cold.</summary>
    protected abstract bool RestoreState(IVirNetDaemon daemon, JsonObject state, DaemonConfig config, bool privileged);

    /// <summary>The C daemon's error for the first key of an exec-restart document that it checks and finds
    /// missing or malformed, in its order (virtlockd checks its lock spaces before the daemon); null when every
    /// key is there. Checked before anything is restored, so the log says what C's would.</summary>
    protected abstract VirError? MissingRestartData(JsonObject state);

    /// <summary>Adds the daemon's own keys to the exec-restart document.</summary>
    protected abstract VirResult SaveState(JsonObject state);

    /// <summary>Fills the daemon's state on a cold start, once the servers exist.</summary>
    protected abstract VirResult CreateState(IVirNetDaemon daemon, DaemonConfig config, bool privileged);

    /// <summary>The daemon's RPC program for its main server (libvirt's server).</summary>
    protected abstract virNetServerProgram* NewProgram();

    /// <summary>The same program for the managed server core (rpc_impl = "managed").</summary>
    protected abstract VirNetServerProgram NewManagedProgram();

    /// <summary>The main server's client life cycle, in managed terms; the
    /// unmanaged <see cref="ClientNew"/>/<see cref="ClientFree"/> adapt
    /// libvirt's callbacks to the same object.</summary>
    protected abstract IVirNetServerClientHooks ClientHooks { get; }

    protected abstract void DisposeState();

    protected ILogger Log { get; private set; } = null!;

    /// <summary>The daemon's ILogger output, into <see cref="_logging"/> once chosen.</summary>
    private readonly VirLogLoggerProvider _loggers = new();

    /// <summary>logging_impl: where log_level/log_filters/log_outputs and
    /// the admin logging procedures go.</summary>
    private IVirLog? _logging;

    /// <summary>Some subsystem is native (<see cref="DaemonConfig.UsesLibvirt"/>).</summary>
    private bool _libvirt;

    /// <summary>Where errors nobody returns go: libvirt's last error, or
    /// with no libvirt in the process, the managed log.</summary>
    private IVirErrorReporter _errors = null!;
    private static readonly EventId InMain = new(0, "main");

    private GCHandle _state;
    private GCHandle _self;

    /// <summary>The opaque of the main server's client callbacks: a handle
    /// to the object <see cref="NewState"/> made.</summary>
    protected void* StateOpaque => (void*)GCHandle.ToIntPtr(_state);

    /// <summary>The state object behind a client callback's opaque.</summary>
    public static T StateFromOpaque<T>(void* opaque) where T : class => (T)GCHandle.FromIntPtr((nint)opaque).Target!;

    public int Run()
    {
        _self = GCHandle.Alloc(this);
        try
        {
            return RunMain();
        }
        finally
        {
            if (_state.IsAllocated)
                _state.Free();
            _self.Free();
        }
    }

    private int RunMain()
    {
        string[] argv = DaemonProcess.CommandLine();
        string argv0 = argv.Length > 0 ? argv[0] : Name;
        bool privileged = DaemonProcess.Privileged;

        // libvirt.so.0 is loaded only if the config leaves a subsystem native;
        // until the config is read, messages go to the managed twin's
        // defaults (stderr, warnings and up), as libvirt's would
        var preConfigLog = new VirLogManaged();
        _loggers.Target = preConfigLog;
        Log = _loggers.CreateLogger(LogCategory);

        var cl = DaemonCommandLine.Parse(argv0, argv.Skip(1).ToArray());
        if (cl.ShowVersion)
        {
            Console.Out.Write($"{argv0} (libvirt) {LibvirtRuntime.RequiredVersionText}\n");
            return 0;
        }
        if (cl.ShowHelp)
        {
            Usage(argv0, privileged);
            return 0;
        }
        if (cl.InvalidTimeout)
        {
            Log.LogError(InMain, "Invalid value for timeout");
            return 1;
        }
        if (cl.Error is not null)
        {
            Console.Error.Write(cl.Error);
            Usage(argv0, privileged);
            return 1;
        }

        int statusFd = DaemonProcess.TakeStatusFd();
        bool godaemon = cl.Daemon || statusFd >= 0;

        bool implicitConf = cl.ConfigFile is null;
        string configFile = cl.ConfigFile ?? DaemonPaths.DefaultConfigFile(Name, privileged);
        var config = NewConfig();
        try
        {
            config.Load(configFile, implicitConf);
        }
        catch (VirConfException e)
        {
            Log.LogError(InMain, "Can't load config file: {Error}: {Path}", e.Message, configFile);
            return 1;
        }

        _libvirt = config.UsesLibvirt;
        if (_libvirt)
        {
            // what the C daemons do first: the right libvirt.so.0, translations, the error layer
            string? abiError = LibvirtRuntime.CheckVersion();
            if (abiError is not null)
            {
                Console.Error.Write($"{argv0}: {abiError}\n");
                return 1;
            }
            if (!LibvirtRuntime.Initialize())
            {
                Console.Error.Write($"{argv0}: initialization failed\n");
                return 1;
            }
            _loggers.Target = new VirLogNative();
        }

        _state = GCHandle.Alloc(NewState(config, privileged));

        // logging_impl: libvirt's virDaemonSetupLogging, or the same steps on the managed twin
        // the config accepted only a known name; the managed twin is the one that logged until now
        _logging = config.LoggingImpl == VirImplementations.Managed ? preConfigLog : VirImplementations.Logging(config.LoggingImpl)!;
        _errors = _libvirt ? new VirErrorReporterNative() : new VirErrorReporterManaged(_logging, Console.Error);
        if (_logging is VirLogManaged && _libvirt)
        {
            // libvirt.so.0's own messages (RPC layer, errors it raises) into the twin's outputs too
            var relay = VirLogLibvirtRelay.Install(_logging);
            if (!relay.Ok)
            {
                _errors.Dispatch(relay.Error! with { Logged = true }, "virDaemonSetupLogging");
                return 1;
            }
            _logging = relay.Value;
        }
        var logged = _logging.SetupDaemon(Name, config.LogLevel, config.LogFilters, config.LogOutputs,
            privileged, cl.Verbose, godaemon);
        if (!logged.Ok)
        {
            // printed once, by the error dispatch, as the C daemon's is
            _errors.Dispatch(logged.Error! with { Logged = true }, "virDaemonSetupLogging");
            return 1;
        }
        _loggers.Target = _logging;

        // which twin serves each subsystem: the one line that tells a log reader (and the tests)
        Log.LogInformation(InMain, "Implementations: {Impls}",
            string.Join(", ", config.Implementations.Select(i => $"{i.Key}={i.Value}")));

        if (!RegisterEventLoop(config.EventLoopImpl))
            return (int)VIR_DAEMON_ERR_INIT;

        string? pidFile = cl.PidFile;
        if (pidFile is null)
        {
            if (!DaemonPaths.ConstructPidFile(Name, privileged).TryGet(out pidFile, out var err))
            {
                _errors.Raise(err!, "virPidFileConstructPath");
                Log.LogError(InMain, "Can't determine pid file path.");
                return 1;
            }
        }
        var sockets = DaemonPaths.SocketPaths(Name, privileged);
        if (sockets is null)
        {
            Log.LogError(InMain, "Can't determine socket paths");
            return 1;
        }
        string stateFile = DaemonPaths.RestartStateFile(Name, privileged);

        string runDir = DaemonPaths.RunDirectory(privileged);
        uint oldUmask = DaemonProcess.SetUmask(privileged ? 0x12u /* 022 */ : 0x3Fu /* 077 */);
        try
        {
            Directory.CreateDirectory(runDir);
        }
        catch (Exception e)
        {
            DaemonProcess.SetUmask(oldUmask);
            Log.LogError(InMain, "unable to create rundir {Dir}: {Error}", runDir, e.Message);
            return (int)VIR_DAEMON_ERR_RUNDIR;
        }
        DaemonProcess.SetUmask(oldUmask);

        var restartState = RestartState.Load(stateFile, Log);
        if (restartState is not null)
        {
            // a re-exec of a running daemon (SIGUSR1): it stays in the
            // foreground, keeps its pid, and takes over the saved state
            int rc = ServeWithPidFile(cl, config, privileged, pidFile, sockets.Value, stateFile, restartState, ref statusFd);
            if (rc != RestoreFailed)
                return rc;
            // the cause was logged where it was found (libvirt logs its own errors)
            Log.LogError(InMain, "Unable to restore the exec-restart state; starting cold");
        }

        if (cl.Daemon && statusFd < 0)
        {
            DaemonProcess.ChdirRoot();
            return DaemonProcess.SpawnIntoBackground(argv0, argv);
        }
        if (statusFd >= 0)
            DaemonProcess.ChdirRoot();

        int ret = ServeWithPidFile(cl, config, privileged, pidFile, sockets.Value, stateFile, null, ref statusFd);
        DaemonProcess.WriteStatus(ref statusFd, ret);
        return ret;
    }

    private const int RestoreFailed = -1000;

    /// <summary>event_loop_impl: the managed loop, or null for libvirt's default.</summary>
    private IVirEventLoop? _eventLoop;

    /// <summary>
    /// event_loop_impl = "managed": the managed loop becomes libvirt's before
    /// anything registers an fd or timer with it (virNetDaemonNew registers
    /// libvirt's default loop, and the first registration stays for the
    /// process). "native" changes nothing: virNetDaemonNew registers the
    /// default loop as in the C daemons.
    /// </summary>
    private bool RegisterEventLoop(string impl)
    {
        if (impl != VirImplementations.Managed)
            return true;
        try
        {
            var loop = new VirEventManaged();
            if (!_libvirt)
            {
                // nothing of libvirt's will register on it: the managed core uses it directly
                _eventLoop = loop;
                return true;
            }
            if (!VirEventManagedRegistration.Register(loop))
            {
                loop.Dispose();
                Log.LogError(InMain, "Unable to make the managed event loop libvirt's: another one was registered first");
                return false;
            }
            _eventLoop = loop;
            return true;
        }
        catch (VirErrorException e)
        {
            Log.LogError(InMain, "Unable to create the managed event loop: {Error}", e.Message);
            return false;
        }
    }

    private int ServeWithPidFile(DaemonCommandLine cl, DaemonConfig config, bool privileged, string pidFile,
        (string Socket, string Admin) sockets, string stateFile, JsonObject? restartState, ref int statusFd)
    {
        IVirPidFile pidFiles = _libvirt ? new VirPidFileNative() : new VirPidFileManaged();
        if (!pidFiles.AcquirePath(pidFile, false, Environment.ProcessId).TryGet(out var pidFd, out var err))
        {
            _errors.Raise(err!, "virPidFileAcquirePath");
            return (int)VIR_DAEMON_ERR_PIDFILE;
        }
        try
        {
            return Serve(cl, config, privileged, sockets, stateFile, restartState, ref statusFd);
        }
        finally
        {
            VirPidFile.ReleasePath(pidFile, pidFd);
        }
    }

    /// <summary>Servers named in an exec-restart state: ours, or "admin";
    /// the opaque is this DaemonMain.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static virNetServer* NewServerPostExecRestart(virNetDaemon* dmn, sbyte* name, virJSONValue* obj, void* opaque)
    {
        try
        {
            var self = (DaemonMain)GCHandle.FromIntPtr((nint)opaque).Target!;
            string n = NativeUtf8.Read(name)!;
            if (n == self.Name)
                return virNetServerNewPostExecRestart(obj, name, self.ClientNew, self.ClientNewPostExecRestart,
                    self.ClientPreExecRestart, self.ClientFree, self.StateOpaque);
            if (n == "admin")
                return virNetServerNewPostExecRestart(obj, name, &AdminClient.ClientNew, &AdminClientRestart.NewPostExecRestart,
                    &AdminClientRestart.PreExecRestart, &AdminClient.ClientFree, dmn);
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INTERNAL_ERROR,
                "NewServerPostExecRestart", $"Unexpected server name '{n}' during restart");
            return null;
        }
        catch (Exception e)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INTERNAL_ERROR,
                "NewServerPostExecRestart", e.Message);
            return null;
        }
    }

    private VirNetDaemonNative? RestoreDaemon(JsonObject state)
    {
        if (MissingRestartData(state) is { } missing)
        {
            Log.LogError(InMain, "{Message}", missing.Message);
            return null;
        }
        // older C daemons wrote a single "server" instead of "daemon"
        var node = (state["daemon"] ?? state["server"])!;
        var json = VirJSONNative.ToNative(node);
        if (json == null)
            return null;
        try
        {
            return VirNetDaemonNative.NewPostExecRestart(json, [Name], &NewServerPostExecRestart,
                (void*)GCHandle.ToIntPtr(_self), _eventLoop);
        }
        finally
        {
            virJSONValueFree(json);
        }
    }

    private int Serve(DaemonCommandLine cl, DaemonConfig config, bool privileged,
        (string Socket, string Admin) sockets, string stateFile, JsonObject? restartState, ref int statusFd)
    {
        if (config.RpcImpl == VirImplementations.Managed)
            return ServeManaged(cl, config, privileged, sockets, stateFile, restartState, ref statusFd);

        bool restored = restartState is not null;
        using var daemon = restored ? RestoreDaemon(restartState!) : VirNetDaemonNative.Create(_eventLoop);
        if (daemon is null)
            return restored ? RestoreFailed : (int)VIR_DAEMON_ERR_INIT;
        daemon.Logging = _logging;

        virNetServer* mainSrv, adminSrv;
        if (restored)
        {
            using var n = new NativeUtf8(Name);
            using var a = new NativeUtf8("admin");
            mainSrv = virNetDaemonGetServer(daemon.Handle, n);
            // a C daemon older than the admin interface saved no admin server
            adminSrv = virNetDaemonHasServer(daemon.Handle, a) != 0 ? virNetDaemonGetServer(daemon.Handle, a) : null;
            if (mainSrv == null || !RestoreState(daemon, restartState!, config, privileged))
                return RestoreFailed;
        }
        else
        {
            mainSrv = daemon.AddServer(Name, config.MaxClients, ClientNew, ClientPreExecRestart, ClientFree, StateOpaque);
            if (mainSrv == null)
                return (int)VIR_DAEMON_ERR_INIT;
            adminSrv = daemon.AddServer("admin", config.AdminMaxClients, &AdminClient.ClientNew, &AdminClientRestart.PreExecRestart,
                &AdminClient.ClientFree, daemon.Handle);
            if (adminSrv == null)
                return (int)VIR_DAEMON_ERR_INIT;
            var created = CreateState(daemon, config, privileged);
            if (!created.Ok)
            {
                if (!created.Error!.Logged) // libvirt logs the errors it raises; ours are logged here
                    Log.LogError(InMain, "{Error}", created.Error.Message);
                return (int)VIR_DAEMON_ERR_INIT;
            }
        }
        try
        {
            // Handlers before the sockets listen (C does it after): a client, or systemd, that sees the
            // socket accept may signal at once, and a SIGTERM in between would take the default action
            // (no clean shutdown, pid file left). A signal caught here is served once the loop runs.
            if (daemon.AddSignalHandler(2 /* SIGINT */, &OnShutdownSignal) < 0 ||
                daemon.AddSignalHandler(3 /* SIGQUIT */, &OnShutdownSignal) < 0 ||
                daemon.AddSignalHandler(15 /* SIGTERM */, &OnShutdownSignal) < 0 ||
                daemon.AddSignalHandler(10 /* SIGUSR1 */, &OnExecRestartSignal) < 0)
                return (int)VIR_DAEMON_ERR_SIGNAL;
            daemon.ExecRestart = () => ExecRestartNow(daemon, stateFile);

            if (!restored && AddSockets(daemon, mainSrv, adminSrv, sockets) is int failed)
                return failed;

            if (cl.Timeout > 0 && daemon.AutoShutdown((uint)cl.Timeout) < 0)
                return (int)VIR_DAEMON_ERR_INIT;

            return ServePrograms(daemon, mainSrv, adminSrv, ref statusFd);
        }
        finally
        {
            DisposeState();
        }
    }

    /// <summary>The UNIX sockets, or systemd's for them; null when fine.</summary>
    private int? AddSockets(VirNetDaemonNative daemon, virNetServer* mainSrv, virNetServer* adminSrv, (string Socket, string Admin) sockets)
    {
        virSystemdActivation* act = null;
        if (virSystemdGetActivation(&act) < 0)
            return (int)VIR_DAEMON_ERR_NETWORK;
        try
        {
            if (VirNetDaemonNative.AddServiceUnix(mainSrv, act, $"{Name}.socket", sockets.Socket, 0x1C0 /* 0700 */) < 0 ||
                VirNetDaemonNative.AddServiceUnix(adminSrv, act, $"{Name}-admin.socket", sockets.Admin, 0x1C0 /* 0700 */) < 0)
                return (int)VIR_DAEMON_ERR_NETWORK;
            if (act != null && virSystemdActivationComplete(act) < 0)
                return (int)VIR_DAEMON_ERR_NETWORK;
            return null;
        }
        finally
        {
            if (act != null)
                virSystemdActivationFree(act);
        }
    }

    private int ServePrograms(VirNetDaemonNative daemon, virNetServer* mainSrv, virNetServer* adminSrv, ref int statusFd)
    {
        var program = NewProgram();
        if (program == null)
            return (int)VIR_DAEMON_ERR_INIT;
        try
        {
            if (virNetServerAddProgram(mainSrv, program) < 0)
                return (int)VIR_DAEMON_ERR_INIT;
            if (adminSrv != null)
            {
                var adminProgram = Admin.AdminProgramNative.NewProgram();
                if (adminProgram == null)
                    return (int)VIR_DAEMON_ERR_INIT;
                int added = virNetServerAddProgram(adminSrv, adminProgram);
                virObjectUnref(adminProgram); // the server keeps its own reference
                if (added < 0)
                    return (int)VIR_DAEMON_ERR_INIT;
            }

            // logging is set up: errors reach the log, not stderr twice
            virSetErrorFunc(null, &IgnoreError);

            DaemonProcess.WriteStatus(ref statusFd, 0);

            daemon.Run();
            return 0;
        }
        finally
        {
            virObjectUnref(program);
        }
    }

    /// <summary>
    /// rpc_impl = "managed": the same servers, services, signals, idle
    /// timeout, programs and readiness as <see cref="Serve"/>, on the managed
    /// RPC core (<see cref="VirNetDaemon"/>) and the managed loop, with no
    /// virNetDaemon or virNetServer of libvirt's; after an exec-restart, the
    /// saved servers, services and clients (libvirt's format, from either
    /// implementation) and the daemon's own state are taken over instead.
    /// </summary>
    private int ServeManaged(DaemonCommandLine cl, DaemonConfig config, bool privileged,
        (string Socket, string Admin) sockets, string stateFile, JsonObject? restartState, ref int statusFd)
    {
        // the config refused rpc_impl = "managed" without event_loop_impl = "managed"
        var loop = (VirEventManaged)_eventLoop!;
        using var daemon = new VirNetDaemon(loop, privileged, _errors);
        daemon.Logging = _logging;
        var hooks = ClientHooks;
        // one delegate for every client: a connection is the lock daemon's hot path
        Action<VirNetServerClient> closeHook = c => hooks.ClientFree(c.PrivateData!);
        VirResult InitMain(VirNetServerClient client, object priv)
        {
            client.PrivateData = priv;
            client.CloseHook = closeHook;
            return VirResult.Success;
        }
        VirResult InitAdmin(VirNetServerClient client)
        {
            if (!ManagedAdminDaemon.ClientNew(daemon, client).TryGet(out var state, out var err))
                return err!;
            client.PrivateData = state;
            return VirResult.Success;
        }
        bool restored = restartState is not null;
        if (restored && !RestoreManaged(daemon, restartState!, config, privileged, hooks, InitMain, InitAdmin))
            return RestoreFailed;
        if (!restored)
        {
            daemon.AddServer(Name, config.MaxClients);
            daemon.AddServer("admin", config.AdminMaxClients);
        }
        var mainSrv = daemon.GetServer(Name)!;
        var adminSrv = daemon.GetServer("admin");
        mainSrv.ClientInit = client =>
        {
            if (!client.GetUNIXIdentity().TryGet(out var peer, out var err) || !hooks.ClientNew(peer).TryGet(out var priv, out err))
                return RefuseClient(err!);
            return InitMain(client, priv);
        };
        if (adminSrv is not null)
            adminSrv.ClientInit = client => InitAdmin(client) is { Ok: false, Error: { } err } ? RefuseClient(err) : VirResult.Success;
        try
        {
            if (!restored)
            {
                var created = CreateState(daemon, config, privileged);
                if (!created.Ok)
                {
                    if (!created.Error!.Logged)
                        Log.LogError(InMain, "{Error}", created.Error.Message);
                    return (int)VIR_DAEMON_ERR_INIT;
                }
            }

            // handlers before the sockets listen, as on the native path
            if (!daemon.AddSignalHandler(2 /* SIGINT */, daemon.Quit).Ok ||
                !daemon.AddSignalHandler(3 /* SIGQUIT */, daemon.Quit).Ok ||
                !daemon.AddSignalHandler(15 /* SIGTERM */, daemon.Quit).Ok ||
                !daemon.AddSignalHandler(10 /* SIGUSR1 */, daemon.QuitExecRestart).Ok)
                return (int)VIR_DAEMON_ERR_SIGNAL;
            daemon.ExecRestart = () => ExecRestartManaged(daemon, stateFile, hooks);

            if (!restored && AddManagedSockets(daemon, mainSrv, adminSrv!, sockets) is int failed)
                return failed;

            if (cl.Timeout > 0 && !daemon.AutoShutdown((uint)cl.Timeout).Ok)
                return (int)VIR_DAEMON_ERR_INIT;

            mainSrv.AddProgram(NewManagedProgram());
            adminSrv?.AddProgram(VirNetServerProgram.Admin(new AdminProgram(), c => (AdminClientState)c.PrivateData!));

            // logging is set up: errors reach the log, not stderr twice
            if (_libvirt)
                virSetErrorFunc(null, &IgnoreError);

            DaemonProcess.WriteStatus(ref statusFd, 0);
            daemon.Run();
            return 0;
        }
        finally
        {
            DisposeState();
        }
    }

    /// <summary>
    /// The managed twin of <see cref="RestoreDaemon"/> and the restore in
    /// <see cref="Serve"/>: the document checked as the C daemon checks it,
    /// the servers read through the state model and adopted with their
    /// descriptors, then the daemon's own state. False: logged, and the
    /// daemon starts cold.
    /// </summary>
    private bool RestoreManaged(VirNetDaemon daemon, JsonObject state, DaemonConfig config, bool privileged,
        IVirNetServerClientHooks hooks, Func<VirNetServerClient, object, VirResult> initMain, Func<VirNetServerClient, VirResult> initAdmin)
    {
        if (MissingRestartData(state) is { } missing)
        {
            Log.LogError(InMain, "{Message}", missing.Message);
            return false;
        }
        // older C daemons wrote a single "server" instead of "daemon"
        var node = state["daemon"] ?? state["server"];
        var model = VirNetDaemonState.FromJson(node, [Name],
            (name, obj) => name == Name || name == "admin"
                ? VirNetServerState.FromJson(obj, name, VirNetDaemon.KeepSavedPrivateData)
                : VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, $"Unexpected server name '{name}' during restart"));
        if (!model.TryGet(out var dmnState, out var err) || dmnState.Servers.GetValueOrDefault(Name) is null)
        {
            Log.LogError(InMain, "Unable to restore the servers: {Error}", err?.Message ?? $"no server named '{Name}'");
            return false;
        }
        var adopted = daemon.AdoptState(dmnState, (srv, client, saved) =>
        {
            if (srv.Name == "admin")
                return initAdmin(client);
            if (!client.GetUNIXIdentity().TryGet(out var peer, out var e) || !hooks.ClientNewPostExecRestart(peer, saved).TryGet(out var priv, out e))
                return e!;
            return initMain(client, priv);
        });
        if (!adopted.Ok)
        {
            Log.LogError(InMain, "Unable to restore the servers: {Error}", adopted.Error!.Message);
            return false;
        }
        return RestoreState(daemon, state, config, privileged);
    }

    /// <summary>
    /// SIGUSR1 with the managed core, on the loop thread once the loop has
    /// stopped: as <see cref="ExecRestartNow"/>, with the "daemon" object
    /// the managed core describes itself in libvirt's format.
    /// </summary>
    private void ExecRestartManaged(VirNetDaemon daemon, string stateFile, IVirNetServerClientHooks hooks)
        // admin clients are saved as empty objects, as the C daemons save them
        => ExecRestartWith(stateFile, () => daemon.PreExecRestart((srv, data) => srv.Name == "admin" ? new JsonObject() : hooks.ClientPreExecRestart(data))
            .TryGet(out var dmn, out var err) ? (dmn, null) : (null, err!.Message));

    /// <summary>A refused connection: logged as libvirt logs the error its
    /// client callback raised, and closed by the server.</summary>
    private VirResult RefuseClient(VirError error)
    {
        _errors.Raise(error, "virNetServerClientNew");
        _errors.ResetLast();
        return error;
    }

    /// <summary>The managed twin of <see cref="AddSockets"/>: the UNIX sockets, or systemd's for them.</summary>
    private int? AddManagedSockets(VirNetDaemon daemon, VirNetServer mainSrv, VirNetServer adminSrv, (string Socket, string Admin) sockets)
    {
        using var act = VirSystemdActivation.Get(_errors);
        var added = daemon.AddServiceUnix(mainSrv, act, $"{Name}.socket", sockets.Socket, 0x1C0 /* 0700 */);
        if (added.Ok)
            added = daemon.AddServiceUnix(adminSrv, act, $"{Name}-admin.socket", sockets.Admin, 0x1C0 /* 0700 */);
        if (added.Ok && act is not null)
            added = act.Complete();
        if (added.Ok)
            return null;
        _errors.Raise(added.Error!, "virNetServerAddServiceUNIX");
        return (int)VIR_DAEMON_ERR_NETWORK;
    }

    /// <summary>
    /// SIGUSR1, on the loop thread once the loop has stopped: the state
    /// document (libvirt's own description of the servers, services and
    /// clients, then the daemon's keys and the magic), then exec of argv[0].
    /// Any failure is logged and the daemon goes on serving as it was.
    /// </summary>
    private void ExecRestartNow(VirNetDaemonNative daemon, string stateFile)
        => ExecRestartWith(stateFile, () => VirJSONNative.FromNative(virNetDaemonPreExecRestart(daemon.Handle)) is { } dmn
            ? (dmn, null) : (null, LibvirtError.LastMessage));

    /// <summary>The exec-restart both RPC layers share once the "daemon"
    /// object is made (<paramref name="saveDaemon"/>: the object, or why
    /// not): the daemon's own keys and the magic, the state file, the exec.
    /// Any failure is logged and the daemon goes on serving as it was.</summary>
    private void ExecRestartWith(string stateFile, Func<(JsonNode? Daemon, string? Error)> saveDaemon)
    {
        var ev = new EventId(0, "virNetDaemonExecRestart");
        // from here to the new image's signal set-up, a SIGUSR1 joins this restart instead of killing us
        using var signals = new RestartState.RestartSignalGuard();
        // and if it fails, what the saves made inheritable is close-on-exec again
        using var inherited = new RestartState.InheritedFdGuard(Log);
        try
        {
            var state = new JsonObject();
            var (dmnState, error) = saveDaemon();
            if (dmnState is null)
            {
                Log.LogError(ev, "Unable to save the daemon state: {Error}; not restarting", error);
                return;
            }
            state["daemon"] = dmnState;
            var saved = SaveState(state);
            if (!saved.Ok)
            {
                Log.LogError(ev, "Unable to save the {Name} state: {Error}; not restarting", Name, saved.Error!.Message);
                return;
            }
            state["magic"] = RestartState.Magic;
            if (!RestartState.Save(stateFile, state, Log))
                return;
            RestartState.Exec(DaemonProcess.CommandLine(), Log);
            // still here: the exec failed; the state file must not outlive us
            RestartState.TryDelete(stateFile, Log);
        }
        catch (Exception e)
        {
            Log.LogError(ev, "exec-restart failed: {Error}; carrying on", e.Message);
            RestartState.TryDelete(stateFile, Log);
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnShutdownSignal(virNetDaemon* dmn, void* info, void* opaque)
    {
        VirNetDaemonNative.FromOpaque(opaque).Quit();
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnExecRestartSignal(virNetDaemon* dmn, void* info, void* opaque)
    {
        VirNetDaemonNative.FromOpaque(opaque).QuitExecRestart();
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void IgnoreError(void* userData, virError* err)
    {
    }

    private void Usage(string argv0, bool privileged)
    {
        var w = Console.Error;
        w.Write($"\nUsage:\n  {argv0} [options]\n\nOptions:\n" +
                "  -h | --help            Display program help:\n" +
                "  -v | --verbose         Verbose messages.\n" +
                "  -d | --daemon          Run as a daemon & write PID file.\n" +
                "  -t | --timeout <secs>  Exit after timeout period.\n" +
                "  -f | --config <file>   Configuration file.\n" +
                "  -V | --version         Display version information.\n" +
                "  -p | --pid-file <file> Change name of PID file.\n" +
                $"\n{Description}:\n");
        if (privileged)
        {
            w.Write("\n  Default paths:\n\n" +
                    "    Configuration file (unless overridden by -f):\n" +
                    $"      {DaemonPaths.SysConfDir}/libvirt/{Name}.conf\n\n" +
                    "    Sockets:\n" +
                    $"      {DaemonPaths.RunStateDir}/libvirt/{Name}-sock\n\n" +
                    "    PID file (unless overridden by -p):\n" +
                    $"      {DaemonPaths.RunStateDir}/{Name}.pid\n\n");
        }
        else
        {
            w.Write("\n  Default paths:\n\n" +
                    "    Configuration file (unless overridden by -f):\n" +
                    $"      $XDG_CONFIG_HOME/libvirt/{Name}.conf\n\n" +
                    "    Sockets:\n" +
                    $"      $XDG_RUNTIME_DIR/libvirt/{Name}-sock\n\n" +
                    "    PID file:\n" +
                    $"      $XDG_RUNTIME_DIR/libvirt/{Name}.pid\n\n");
        }
    }
}
