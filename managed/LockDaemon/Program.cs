using Libvirt.Host;
using Libvirt.Host.Configuration;
using Libvirt.Interop;
using Libvirt.LockDaemon;
using Libvirt.LockDaemon.LockSpace;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

return LockDaemonMain.Run();

namespace Libvirt.LockDaemon
{
    /// <summary>virtlockd's main(): the C daemon's start-up sequence, exit
    /// codes and messages, over libvirt's native RPC layer.</summary>
    public static unsafe class LockDaemonMain
    {
        private const string Name = "virtlockd";
        private static ILogger s_log = null!;
        // libvirt prints the function a message comes from; these are main()'s
        private static readonly EventId InMain = new(0, "main");

        public static int Run()
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

            using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(new VirLogLoggerProvider()).SetMinimumLevel(LogLevel.Trace));
            s_log = loggerFactory.CreateLogger("locking.lock_daemon");

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
                s_log.LogError(InMain, "Invalid value for timeout");
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
            LockDaemonConfig config;
            try
            {
                config = LockDaemonConfig.Load(configFile, implicitConf);
            }
            catch (VirConfException e)
            {
                s_log.LogError(InMain, "Can't load config file: {Error}: {Path}", e.Message, configFile);
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
                s_log.LogError(InMain, "Can't determine pid file path.");
                return 1;
            }
            var sockets = DaemonPaths.SocketPaths(Name, privileged);
            if (sockets is null)
            {
                s_log.LogError(InMain, "Can't determine socket paths");
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
                s_log.LogError(InMain, "unable to create rundir {Dir}: {Error}", runDir, e.Message);
                return (int)VIR_DAEMON_ERR_RUNDIR;
            }
            DaemonProcess.SetUmask(oldUmask);

            if (File.Exists(stateFile))
            {
                // The exec-restart handoff (SIGUSR1) is not restored by this
                // step yet: start cold, as the C daemon does with a stale file.
                s_log.LogWarning(InMain, "Ignoring restart state file {File}: exec-restart state is not restored yet; starting cold", stateFile);
                try { File.Delete(stateFile); } catch (IOException) { }
            }

            if (cl.Daemon && statusFd < 0)
            {
                DaemonProcess.ChdirRoot();
                return DaemonProcess.SpawnIntoBackground(argv0, argv);
            }
            if (statusFd >= 0)
                DaemonProcess.ChdirRoot();

            int ret = Serve(cl, config, privileged, pidFile, sockets.Value, ref statusFd);
            DaemonProcess.WriteStatus(ref statusFd, ret);
            return ret;
        }

        private static int Serve(DaemonCommandLine cl, LockDaemonConfig config, bool privileged, string pidFile,
            (string Socket, string Admin) sockets, ref int statusFd)
        {
            int pidFd;
            using (var p = new NativeUtf8(pidFile))
                pidFd = virPidFileAcquirePath(p, 0, Environment.ProcessId);
            if (pidFd < 0)
                return (int)VIR_DAEMON_ERR_PIDFILE;
            try
            {
                return ServeWithPidFile(cl, config, privileged, sockets, ref statusFd);
            }
            finally
            {
                using var p = new NativeUtf8(pidFile);
                virPidFileReleasePath(p, pidFd);
            }
        }

        private static int ServeWithPidFile(DaemonCommandLine cl, LockDaemonConfig config, bool privileged,
            (string Socket, string Admin) sockets, ref int statusFd)
        {
            using var daemon = NativeDaemon.Create();
            if (daemon is null)
                return (int)VIR_DAEMON_ERR_INIT;

            using var lockd = virLockDaemon.New(new NativeLockSpaceFactory(), privileged, s_log);
            if (lockd is null)
                return (int)VIR_DAEMON_ERR_INIT;

            var lockSrv = daemon.AddServer(Name, config.MaxClients,
                &virLockDaemon.ClientNew, &virLockDaemon.ClientFree, privileged ? (void*)1 : null);
            if (lockSrv == null)
                return (int)VIR_DAEMON_ERR_INIT;
            var adminSrv = daemon.AddServer("admin", config.AdminMaxClients,
                &AdminClient.ClientNew, &AdminClient.ClientFree, daemon.Handle);
            if (adminSrv == null)
                return (int)VIR_DAEMON_ERR_INIT;

            virSystemdActivation* act = null;
            if (virSystemdGetActivation(&act) < 0)
                return (int)VIR_DAEMON_ERR_NETWORK;
            try
            {
                if (NativeDaemon.AddServiceUnix(lockSrv, act, "virtlockd.socket", sockets.Socket, 0x1C0 /* 0700 */) < 0 ||
                    NativeDaemon.AddServiceUnix(adminSrv, act, "virtlockd-admin.socket", sockets.Admin, 0x1C0 /* 0700 */) < 0)
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

            var program = virLockSpaceProtocolDispatch.NewProgram();
            if (program == null)
                return (int)VIR_DAEMON_ERR_INIT;
            try
            {
                if (virNetServerAddProgram(lockSrv, program) < 0)
                    return (int)VIR_DAEMON_ERR_INIT;

                // logging is set up: errors reach the log, not stderr twice
                virSetErrorFunc(null, &IgnoreError);

                DaemonProcess.WriteStatus(ref statusFd, 0);

                var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
                builder.Logging.ClearProviders().AddProvider(new VirLogLoggerProvider()).SetMinimumLevel(LogLevel.Trace);
                builder.Services.AddSingleton<IHostLifetime, NativeDaemonLifetime>();
                builder.Services.AddSingleton(daemon);
                builder.Services.AddSingleton(lockd);
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

        [System.Runtime.InteropServices.UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
        private static void OnShutdownSignal(virNetDaemon* dmn, void* info, void* opaque)
        {
            virNetDaemonQuit(dmn);
        }

        [System.Runtime.InteropServices.UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
        private static void OnExecRestartSignal(virNetDaemon* dmn, void* info, void* opaque)
        {
            try
            {
                // Saving state and re-executing is the next step of the
                // migration; until then SIGUSR1 must not end the daemon
                // (its default action would, dropping every lease).
                s_log.LogWarning(InMain, "exec-restart on SIGUSR1 is not supported yet; carrying on with current state");
            }
            catch
            {
                // nothing may escape into libvirt
            }
        }

        [System.Runtime.InteropServices.UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
        private static void IgnoreError(void* userData, virError* err)
        {
        }

        private static void Usage(string argv0, bool privileged)
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
                    "\nlibvirt lock management daemon:\n");
            if (privileged)
            {
                w.Write("\n  Default paths:\n\n" +
                        "    Configuration file (unless overridden by -f):\n" +
                        $"      {DaemonPaths.SysConfDir}/libvirt/virtlockd.conf\n\n" +
                        "    Sockets:\n" +
                        $"      {DaemonPaths.RunStateDir}/libvirt/virtlockd-sock\n\n" +
                        "    PID file (unless overridden by -p):\n" +
                        $"      {DaemonPaths.RunStateDir}/virtlockd.pid\n\n");
            }
            else
            {
                w.Write("\n  Default paths:\n\n" +
                        "    Configuration file (unless overridden by -f):\n" +
                        "      $XDG_CONFIG_HOME/libvirt/virtlockd.conf\n\n" +
                        "    Sockets:\n" +
                        "      $XDG_RUNTIME_DIR/libvirt/virtlockd-sock\n\n" +
                        "    PID file:\n" +
                        "      $XDG_RUNTIME_DIR/libvirt/virtlockd.pid\n\n");
            }
        }
    }
}
