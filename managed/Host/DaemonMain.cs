using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Host.Configuration;
using Libvirt.Interop;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
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

    /// <summary>Client data callbacks of the main server; their opaque is
    /// non-null in privileged mode, as in the C daemons.</summary>
    protected abstract delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew { get; }
    protected abstract delegate* unmanaged[Cdecl]<void*, void> ClientFree { get; }

    /// <summary>Creates the daemon's state once the servers exist. Returns
    /// false with libvirt's error set.</summary>
    protected abstract bool CreateState(NativeDaemon daemon, DaemonConfig config, bool privileged);

    /// <summary>The daemon's RPC program for its main server.</summary>
    protected abstract virNetServerProgram* NewProgram();

    /// <summary>Adds the daemon's state to the host's services.</summary>
    protected abstract void AddServices(IServiceCollection services);

    protected abstract void DisposeState();

    protected static ILogger Log { get; private set; } = null!;
    private static readonly EventId InMain = new(0, "main");

    public int Run()
    {
        string[] argv = DaemonProcess.CommandLine();
        string argv0 = argv.Length > 0 ? argv[0] : Name;
        bool privileged = DaemonProcess.Privileged;

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

        var loggers = new VirLogLoggerProvider();
        Log = loggers.CreateLogger(LogCategory);

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

        using (var filters = new NativeUtf8(config.LogFilters))
        using (var outputs = new NativeUtf8(config.LogOutputs))
        using (var name = new NativeUtf8(Name))
        {
            if (virDaemonSetupLogging(name, config.LogLevel, filters, outputs,
                    (byte)(privileged ? 1 : 0), (byte)(cl.Verbose ? 1 : 0), (byte)(godaemon ? 1 : 0)) < 0)
            {
                virDispatchError(null);
                return 1;
            }
        }

        string? pidFile = cl.PidFile ?? DaemonPaths.ConstructPidFile(Name, privileged);
        if (pidFile is null)
        {
            Log.LogError(InMain, "Can't determine pid file path.");
            return 1;
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

        if (File.Exists(stateFile))
        {
            // The exec-restart handoff (SIGUSR1) is not restored yet: start
            // cold, as the C daemons do with a state file that is not theirs.
            Log.LogWarning(InMain, "Ignoring restart state file {File}: exec-restart state is not restored yet; starting cold", stateFile);
            try { File.Delete(stateFile); } catch (IOException) { }
        }

        if (cl.Daemon && statusFd < 0)
        {
            DaemonProcess.ChdirRoot();
            return DaemonProcess.SpawnIntoBackground(argv0, argv);
        }
        if (statusFd >= 0)
            DaemonProcess.ChdirRoot();

        int ret = ServeWithPidFile(cl, config, privileged, pidFile, sockets.Value, ref statusFd);
        DaemonProcess.WriteStatus(ref statusFd, ret);
        return ret;
    }

    private int ServeWithPidFile(DaemonCommandLine cl, DaemonConfig config, bool privileged, string pidFile,
        (string Socket, string Admin) sockets, ref int statusFd)
    {
        int pidFd;
        using (var p = new NativeUtf8(pidFile))
            pidFd = virPidFileAcquirePath(p, 0, Environment.ProcessId);
        if (pidFd < 0)
            return (int)VIR_DAEMON_ERR_PIDFILE;
        try
        {
            return Serve(cl, config, privileged, sockets, ref statusFd);
        }
        finally
        {
            using var p = new NativeUtf8(pidFile);
            virPidFileReleasePath(p, pidFd);
        }
    }

    private int Serve(DaemonCommandLine cl, DaemonConfig config, bool privileged,
        (string Socket, string Admin) sockets, ref int statusFd)
    {
        using var daemon = NativeDaemon.Create();
        if (daemon is null)
            return (int)VIR_DAEMON_ERR_INIT;

        var mainSrv = daemon.AddServer(Name, config.MaxClients, ClientNew, ClientFree, privileged ? (void*)1 : null);
        if (mainSrv == null)
            return (int)VIR_DAEMON_ERR_INIT;
        var adminSrv = daemon.AddServer("admin", config.AdminMaxClients, &AdminClient.ClientNew, &AdminClient.ClientFree, daemon.Handle);
        if (adminSrv == null)
            return (int)VIR_DAEMON_ERR_INIT;

        if (!CreateState(daemon, config, privileged))
            return (int)VIR_DAEMON_ERR_INIT;
        try
        {
            virSystemdActivation* act = null;
            if (virSystemdGetActivation(&act) < 0)
                return (int)VIR_DAEMON_ERR_NETWORK;
            try
            {
                if (NativeDaemon.AddServiceUnix(mainSrv, act, $"{Name}.socket", sockets.Socket, 0x1C0 /* 0700 */) < 0 ||
                    NativeDaemon.AddServiceUnix(adminSrv, act, $"{Name}-admin.socket", sockets.Admin, 0x1C0 /* 0700 */) < 0)
                    return (int)VIR_DAEMON_ERR_NETWORK;
                if (act != null && virSystemdActivationComplete(act) < 0)
                    return (int)VIR_DAEMON_ERR_NETWORK;
            }
            finally
            {
                if (act != null)
                    virSystemdActivationFree(act);
            }

            if (cl.Timeout > 0 && daemon.AutoShutdown((uint)cl.Timeout) < 0)
                return (int)VIR_DAEMON_ERR_INIT;

            if (daemon.AddSignalHandler(2 /* SIGINT */, &OnShutdownSignal, null) < 0 ||
                daemon.AddSignalHandler(3 /* SIGQUIT */, &OnShutdownSignal, null) < 0 ||
                daemon.AddSignalHandler(15 /* SIGTERM */, &OnShutdownSignal, null) < 0 ||
                daemon.AddSignalHandler(10 /* SIGUSR1 */, &OnExecRestartSignal, null) < 0)
                return (int)VIR_DAEMON_ERR_SIGNAL;

            var program = NewProgram();
            if (program == null)
                return (int)VIR_DAEMON_ERR_INIT;
            try
            {
                if (virNetServerAddProgram(mainSrv, program) < 0)
                    return (int)VIR_DAEMON_ERR_INIT;

                // logging is set up: errors reach the log, not stderr twice
                virSetErrorFunc(null, &IgnoreError);

                DaemonProcess.WriteStatus(ref statusFd, 0);

                var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(
                    new HostApplicationBuilderSettings { DisableDefaults = true });
                builder.Logging.ClearProviders().AddProvider(new VirLogLoggerProvider()).SetMinimumLevel(LogLevel.Trace);
                builder.Services.AddSingleton<IHostLifetime, NativeDaemonLifetime>();
                builder.Services.AddSingleton(daemon);
                AddServices(builder.Services);
                builder.Services.AddHostedService<NativeDaemonService>();
                using var host = builder.Build();
                host.Run();
                return 0;
            }
            finally
            {
                virObjectUnref(program);
            }
        }
        finally
        {
            DisposeState();
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnShutdownSignal(virNetDaemon* dmn, void* info, void* opaque)
    {
        virNetDaemonQuit(dmn);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnExecRestartSignal(virNetDaemon* dmn, void* info, void* opaque)
    {
        try
        {
            // Saving state and re-executing is a later step of the
            // migration; until then SIGUSR1 must not end the daemon (its
            // default action would, dropping every lease and log pipe).
            Log.LogWarning(new EventId(0, "virNetDaemonSignalEvent"),
                "exec-restart on SIGUSR1 is not supported yet; carrying on with current state");
        }
        catch
        {
            // nothing may escape into libvirt
        }
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
