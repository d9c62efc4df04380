using System.Runtime.InteropServices;
using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>
/// libvirt's virNetDaemon, driven from managed code: its servers, their
/// UNIX services, signals, the idle timeout, and the event loop, which runs
/// on one dedicated thread (dispatch happens there too, as in the C daemons,
/// which run with no worker threads).
/// </summary>
public sealed unsafe class VirNetDaemonNative : IVirNetDaemon, IDisposable
{
    public virNetDaemon* Handle { get; private set; }

    private GCHandle _self;

    /// <summary>The event loop libvirt's code in this process uses: the
    /// managed one (then <see cref="RunLoop"/> runs the daemon), or libvirt's
    /// default glib loop (<see cref="VirEventNative"/>), which
    /// virNetDaemonRun iterates.</summary>
    public IVirEventLoop EventLoop { get; }

    /// <summary>virNetDaemonRun's managed stand-in, when the loop is the
    /// managed one; it keeps the quit flag, inhibitions and idle timeout.</summary>
    public VirNetDaemonRunLoop? RunLoop { get; }

    /// <summary>The daemon's logging (logging_impl), which the admin
    /// program's logging procedures read and change; null: libvirt's.</summary>
    public IVirLog? Logging { get; set; }

    /// <summary>The daemon of this process (there is one), for code that
    /// only has libvirt's pointer (the admin server's client opaque).</summary>
    private static VirNetDaemonNative? s_current;

    private VirNetDaemonNative(virNetDaemon* handle, IVirEventLoop? eventLoop)
    {
        Handle = handle;
        _self = GCHandle.Alloc(this);
        // virNetDaemonNew registered libvirt's default loop if no managed one was: that is the one to use
        EventLoop = eventLoop ?? VirEventNative.AlreadyRegistered();
        if (eventLoop is VirEventManaged managed)
            RunLoop = new VirNetDaemonRunLoop(handle, managed);
        s_current = this;
    }

    /// <summary>The wrapper of <paramref name="dmn"/>, if it is this process's daemon.</summary>
    public static VirNetDaemonNative? FromHandle(virNetDaemon* dmn)
        => s_current is { } d && d.Handle == dmn ? d : null;

    /// <summary>
    /// The loop to drive: the one given, else libvirt's registered managed
    /// loop if there is one. A managed loop must be the one registered with
    /// libvirt: libvirt's servers put their fds on whichever that is. It
    /// must be registered before the daemon is created (virNetDaemonNew
    /// registers the default loop, and the first registration stays).
    /// </summary>
    private static IVirEventLoop? ChooseLoop(IVirEventLoop? eventLoop)
    {
        eventLoop ??= VirEventManagedRegistration.Current;
        if (eventLoop is VirEventManaged m && !ReferenceEquals(VirEventManagedRegistration.Current, m))
            throw new InvalidOperationException("the managed event loop is not libvirt's: register it (VirEventManagedRegistration.Register) before creating the daemon");
        return eventLoop;
    }

    /// <summary>What libvirt hands back to callbacks registered with this
    /// daemon (signal handlers): <see cref="FromOpaque"/> finds the daemon.</summary>
    public void* Opaque => (void*)GCHandle.ToIntPtr(_self);

    public static VirNetDaemonNative FromOpaque(void* opaque) => (VirNetDaemonNative)GCHandle.FromIntPtr((nint)opaque).Target!;

    public static VirNetDaemonNative? Create(IVirEventLoop? eventLoop = null)
    {
        eventLoop = ChooseLoop(eventLoop);
        var dmn = virNetDaemonNew();
        return dmn == null ? null : new VirNetDaemonNative(dmn, eventLoop);
    }

    /// <summary>The daemon an exec-restart state describes ("daemon" key),
    /// its servers made by <paramref name="newServer"/> for each name;
    /// libvirt takes over the inherited listening and client sockets.</summary>
    public static VirNetDaemonNative? NewPostExecRestart(virJSONValue* state, string[] serverNames,
        delegate* unmanaged[Cdecl]<virNetDaemon*, sbyte*, virJSONValue*, void*, virNetServer*> newServer, void* opaque,
        IVirEventLoop? eventLoop = null)
    {
        eventLoop = ChooseLoop(eventLoop);
        var names = new NativeUtf8[serverNames.Length];
        var array = stackalloc sbyte*[serverNames.Length];
        try
        {
            for (int i = 0; i < names.Length; i++)
            {
                names[i] = new NativeUtf8(serverNames[i]);
                array[i] = names[i].Pointer;
            }
            var dmn = virNetDaemonNewPostExecRestart(state, (nuint)names.Length, array, newServer, opaque);
            return dmn == null ? null : new VirNetDaemonNative(dmn, eventLoop);
        }
        finally
        {
            foreach (var n in names)
                n.Dispose();
        }
    }

    /// <summary>Set by SIGUSR1: save state and exec once the loop stops.</summary>
    public volatile bool ExecRestartRequested;

    /// <summary>Called on the loop thread when an exec-restart was asked for;
    /// it returns only if the restart failed, and the daemon serves on.</summary>
    public Action? ExecRestart { get; set; }

    /// <summary>A server with the C daemons' settings: no worker threads,
    /// no keepalive, max_clients for both limits.</summary>
    public virNetServer* AddServer(string name, uint maxClients,
        delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> clientNew,
        delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> clientPreExecRestart,
        delegate* unmanaged[Cdecl]<void*, void> clientFree,
        void* opaque)
    {
        using var n = new NativeUtf8(name);
        var srv = virNetServerNew(n, 1, 0, 0, 0, maxClients, maxClients, -1, 0,
            clientNew, clientPreExecRestart, clientFree, opaque);
        if (srv == null)
            return null;
        if (virNetDaemonAddServer(Handle, srv) < 0)
        {
            virObjectUnref(srv);
            return null;
        }
        // the daemon keeps its own reference; callers look servers up by name
        virObjectUnref(srv);
        return srv;
    }

    public static int AddServiceUnix(virNetServer* srv, virSystemdActivation* act, string actName, string path, uint mode)
    {
        using var a = new NativeUtf8(actName);
        using var p = new NativeUtf8(path);
        return virNetServerAddServiceUNIX(srv, act, a, p, mode, 0, 0, null, 0, 0, 1);
    }

    public bool Privileged => virNetDaemonIsPrivileged(Handle) != 0;

    VirResult IVirNetDaemon.AutoShutdown(uint seconds)
        => AutoShutdown(seconds) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;

    /// <summary>virNetDaemonAutoShutdown; with the managed loop, its timer is
    /// the run loop's (libvirt's would only be armed by virNetDaemonRun).</summary>
    public int AutoShutdown(uint seconds)
        => RunLoop is { } run ? run.AutoShutdown(seconds) : virNetDaemonAutoShutdown(Handle, seconds);

    /// <summary>virNetDaemonAddShutdownInhibition (libvirt's also takes
    /// logind's shutdown delay lock for the first one).</summary>
    public void AddShutdownInhibition()
    {
        RunLoop?.AddShutdownInhibition();
        virNetDaemonAddShutdownInhibition(Handle);
    }

    public void RemoveShutdownInhibition()
    {
        RunLoop?.RemoveShutdownInhibition();
        virNetDaemonRemoveShutdownInhibition(Handle);
    }

    /// <summary>The handler gets this daemon's <see cref="Opaque"/>.</summary>
    public int AddSignalHandler(int signum, delegate* unmanaged[Cdecl]<virNetDaemon*, void*, void*, void> handler)
        => virNetDaemonAddSignalHandler(Handle, signum,
            (delegate* unmanaged[Cdecl]<virNetDaemon*, siginfo_t*, void*, void>)handler, Opaque);

    /// <summary>virNetDaemonQuit; the managed loop is also woken, so a quit
    /// from any thread takes effect at once.</summary>
    public void Quit()
    {
        virNetDaemonQuit(Handle);
        RunLoop?.Quit();
    }

    /// <summary>SIGUSR1: leave the loop keeping every service open, then
    /// <see cref="ExecRestart"/>.</summary>
    public void QuitExecRestart()
    {
        ExecRestartRequested = true;
        virNetDaemonQuitExecRestart(Handle);
        RunLoop?.QuitExecRestart();
    }

    /// <summary>Starts accepting clients and runs the event loop on the
    /// calling thread until virNetDaemonRun (or, with the managed loop,
    /// <see cref="VirNetDaemonRunLoop.Run"/>) returns for good; an
    /// exec-restart that fails goes back to serving.</summary>
    public void Run()
    {
        virNetDaemonUpdateServices(Handle, 1);
        var runLoop = RunLoop;
        while (true)
        {
            if (runLoop is not null)
                runLoop.Run();
            else
                virNetDaemonRun(Handle);
            if (!ExecRestartRequested || ExecRestart is null)
                break;
            ExecRestart(); // returns only if the exec failed
            ExecRestartRequested = false;
        }
    }

    public void Dispose()
    {
        if (s_current == this)
            s_current = null;
        if (Handle != null)
        {
            virObjectUnref(Handle);
            Handle = null;
        }
        if (_self.IsAllocated)
            _self.Free();
    }
}
