using Libvirt.Interop;
using Libvirt.Util;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>
/// virNetDaemonRun for a process whose libvirt event loop is the managed
/// one (<see cref="VirEventManagedRegistration"/>): virNetDaemonRun iterates
/// glib's default context, which then holds nothing, so it would block for
/// ever. This loop does what it does, iterating the managed loop instead:
/// <list type="bullet">
/// <item>systemd's startup notification when it starts;</item>
/// <item>the idle timeout: a timer armed while no server has clients (re-armed
/// to the full period each time clients go away), which quits the daemon
/// when it fires with no shutdown inhibition, as virNetDaemonAutoShutdown's;</item>
/// <item>after every iteration, virNetServerProcessClients for each server;</item>
/// <item>quit: the servers closed (virNetServerClose), then a 30 s finish timer
/// cut to 0 once the shutdown wait is done, and the loop runs until it
/// fires; a shutdown that is not graceful ends the process, as in C;</item>
/// <item>quit for exec-restart: the loop is left with every service open.</item>
/// </list>
/// The virNetDaemon keeps the quit flag, inhibition count and timeout in
/// private fields this loop cannot read, so it keeps its own: every quit,
/// inhibition and timeout change must come through here (the
/// <see cref="VirNetDaemonNative"/> wrapper does that, and forwards them to
/// libvirt's object too). One iteration allocates nothing.
/// <para>The shutdown wait: C drains each server's worker pool
/// (virNetServerShutdownWait, not exported) and runs the daemon's shutdown
/// callbacks on a "daemon-shutdown" thread. These daemons' servers have no
/// workers and neither daemon sets shutdown callbacks, so the wait has
/// nothing to do; it keeps its thread and its place in the sequence.</para>
/// </summary>
public sealed unsafe class VirNetDaemonRunLoop
{
    private readonly virNetDaemon* _dmn;
    private readonly VirEventManaged _loop;
    private readonly Lock _lock = new();

    // virNetDaemon's own fields of the same names
    private bool _quit;
    private bool _execRestart;
    private bool _finished;
    private bool _graceful;
    private bool _running;
    private int _finishTimer = -1;
    private readonly VirNetDaemonAutoShutdown _autoShutdown;

    private readonly VirEventTimeoutCallback _onAutoShutdownTimer;
    private readonly VirEventTimeoutCallback _onFinishTimer;

    public VirNetDaemonRunLoop(virNetDaemon* dmn, VirEventManaged loop)
    {
        _dmn = dmn;
        _loop = loop;
        _onAutoShutdownTimer = OnAutoShutdownTimer;
        _autoShutdown = new VirNetDaemonAutoShutdown(_loop, _onAutoShutdownTimer);
        _onFinishTimer = OnFinishTimer;
    }

    /// <summary>What virNetDaemonQuit sets.</summary>
    public bool QuitRequested
    {
        get
        {
            lock (_lock)
                return _quit;
        }
    }

    /// <summary>What the daemon's inhibitions add up to.</summary>
    public long ShutdownInhibitions
    {
        get
        {
            lock (_lock)
                return _autoShutdown.Inhibitions;
        }
    }

    /// <summary>virNetDaemonQuit; wakes the loop, so it may come from any thread.</summary>
    public void Quit()
    {
        lock (_lock)
            _quit = true;
        _loop.Interrupt();
    }

    /// <summary>virNetDaemonQuitExecRestart.</summary>
    public void QuitExecRestart()
    {
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

    /// <summary>virNetDaemonAutoShutdown: 0 turns the idle timeout off.
    /// -1, with libvirt's error set, if the timer cannot be added.</summary>
    public int AutoShutdown(uint timeout)
    {
        lock (_lock)
        {
            Debug("virNetDaemonAutoShutdown", $"Registering shutdown timeout {timeout}");
            if (!_autoShutdown.Set(timeout))
            {
                LibvirtError.Report(virErrorDomain.VIR_FROM_RPC, virErrorNumber.VIR_ERR_INTERNAL_ERROR,
                    nameof(AutoShutdown), "Failed to register shutdown timeout");
                return -1;
            }
            if (_running)
                ShutdownTimerUpdate();
        }
        _loop.Interrupt();
        return 0;
    }

    /// <summary>virNetDaemonShutdownTimerUpdate. Under the lock.</summary>
    private void ShutdownTimerUpdate()
    {
        _autoShutdown.Update(virNetDaemonHasClients(_dmn) != 0);
    }

    private void OnAutoShutdownTimer(int timer)
    {
        lock (_lock)
        {
            if (_autoShutdown.Inhibitions != 0)
                return;
            Debug("virNetDaemonAutoShutdownTimer", "Automatic shutdown triggered");
            _quit = true;
        }
        // libvirt's object says the same, as its own timer would have made it
        virNetDaemonQuit(_dmn);
    }

    private void OnFinishTimer(int timer)
    {
        lock (_lock)
            _finished = true;
    }

    /// <summary>
    /// Runs until quit, as virNetDaemonRun. Returns after an exec-restart
    /// request with everything still open, or after the servers were closed
    /// and the finish timer fired; a shutdown that was not graceful ends the
    /// process with EXIT_FAILURE, as C does.
    /// </summary>
    public void Run()
    {
        virNetServer** servers = null;
        nint nservers = virNetDaemonGetServers(_dmn, &servers);
        if (nservers < 0)
            return; // libvirt's error is set and logged
        Thread? shutdownThread = null;
        try
        {
            lock (_lock)
            {
                _quit = false;
                _execRestart = false;
                _finishTimer = -1;
                _finished = false;
                _graceful = false;
                _running = true;
            }

            // accepting connections now: systemd may start what depends on us
            virSystemdNotifyStartup();
            LogAt(1, VirNetLog.DaemonFile, 833, "virNetDaemonRun", $"dmn=0x{(ulong)_dmn:x} quit=0");

            while (true)
            {
                lock (_lock)
                {
                    if (_finished)
                        break;
                    ShutdownTimerUpdate();
                }

                virResetLastError(); // as virEventRunDefaultImpl does
                if (!_loop.RunOnce().Ok)
                {
                    Debug("virNetDaemonRun", "Loop iteration error, exiting");
                    break;
                }

                for (nint i = 0; i < nservers; i++)
                    virNetServerProcessClients(servers[i]);

                lock (_lock)
                {
                    // don't shut down services when performing an exec-restart
                    if (_quit && _execRestart)
                        return;

                    if (_quit && _finishTimer == -1)
                    {
                        for (nint i = 0; i < nservers; i++)
                            virNetServerClose(servers[i]);

                        _finishTimer = _loop.AddTimeout(30 * 1000, _onFinishTimer, null);
                        if (_finishTimer < 0)
                        {
                            Warn("virNetDaemonRun", "Failed to register finish timer.");
                            break;
                        }

                        shutdownThread = new Thread(ShutdownWait) { Name = "daemon-shutdown", IsBackground = true };
                        shutdownThread.Start();
                    }
                }
            }

            bool graceful;
            lock (_lock)
                graceful = _graceful;
            if (graceful)
            {
                shutdownThread?.Join();
            }
            else
            {
                Warn("virNetDaemonRun", "Make forcefull daemon shutdown");
                Environment.Exit(1);
            }
        }
        finally
        {
            lock (_lock)
            {
                if (_finishTimer > 0)
                    _loop.RemoveTimeout(_finishTimer);
                _finishTimer = -1;
            }
            virObjectListFreeCount(servers, (nuint)nservers);
        }
    }

    /// <summary>daemonShutdownWait: nothing to drain (see the class), then
    /// the finish timer cut to 0 so the next iteration ends the loop.</summary>
    private void ShutdownWait()
    {
        lock (_lock)
        {
            _graceful = true;
            _loop.UpdateTimeout(_finishTimer, 0);
        }
    }

    private const string LogSource = "rpc.netdaemon";

    private static void Debug(string function, string message) => Log(1, function, message);

    private static void Warn(string function, string message) => Log(3, function, message);

    /// <summary>As <see cref="Log"/>, with the C source's file and line (the ones its line carries).</summary>
    private static void LogAt(int priority, string file, int line, string function, string message)
    {
        using var cat = new NativeUtf8(LogSource);
        using var f = new NativeUtf8(file);
        using var fn = new NativeUtf8(function);
        using var msg = new NativeUtf8(message);
        virtshimLogMessageAt(cat, priority, f, line, fn, msg);
    }

    /// <summary>Through libvirt's log, under the source name and function
    /// the C messages carry, so log_filters treat them alike.</summary>
    private static void Log(int priority, string function, string message)
        => LogAt(priority, "managed", 0, function, message);
}
