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
public sealed unsafe class VirNetDaemonNative : IDisposable
{
    public virNetDaemon* Handle { get; private set; }
    private Thread? _loopThread;
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private GCHandle _self;

    private VirNetDaemonNative(virNetDaemon* handle)
    {
        Handle = handle;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>What libvirt hands back to callbacks registered with this
    /// daemon (signal handlers): <see cref="FromOpaque"/> finds the daemon.</summary>
    public void* Opaque => (void*)GCHandle.ToIntPtr(_self);

    public static VirNetDaemonNative FromOpaque(void* opaque) => (VirNetDaemonNative)GCHandle.FromIntPtr((nint)opaque).Target!;

    public static VirNetDaemonNative? Create()
    {
        var dmn = virNetDaemonNew();
        return dmn == null ? null : new VirNetDaemonNative(dmn);
    }

    /// <summary>The daemon an exec-restart state describes ("daemon" key),
    /// its servers made by <paramref name="newServer"/> for each name;
    /// libvirt takes over the inherited listening and client sockets.</summary>
    public static VirNetDaemonNative? NewPostExecRestart(virJSONValue* state, string[] serverNames,
        delegate* unmanaged[Cdecl]<virNetDaemon*, sbyte*, virJSONValue*, void*, virNetServer*> newServer, void* opaque)
    {
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
            return dmn == null ? null : new VirNetDaemonNative(dmn);
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

    public int AutoShutdown(uint seconds) => virNetDaemonAutoShutdown(Handle, seconds);

    /// <summary>The handler gets this daemon's <see cref="Opaque"/>.</summary>
    public int AddSignalHandler(int signum, delegate* unmanaged[Cdecl]<virNetDaemon*, void*, void*, void> handler)
        => virNetDaemonAddSignalHandler(Handle, signum,
            (delegate* unmanaged[Cdecl]<virNetDaemon*, siginfo_t*, void*, void>)handler, Opaque);

    public void Quit() => virNetDaemonQuit(Handle);

    /// <summary>SIGUSR1: leave the loop keeping every service open, then
    /// <see cref="ExecRestart"/>.</summary>
    public void QuitExecRestart()
    {
        ExecRestartRequested = true;
        virNetDaemonQuitExecRestart(Handle);
    }

    /// <summary>Starts accepting clients and runs the event loop on its own
    /// thread; the task completes when virNetDaemonRun returns.</summary>
    public Task RunAsync()
    {
        virNetDaemonUpdateServices(Handle, 1);
        _loopThread = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    virNetDaemonRun(Handle);
                    if (!ExecRestartRequested || ExecRestart is null)
                        break;
                    ExecRestart(); // returns only if the exec failed
                    ExecRestartRequested = false;
                }
                _finished.TrySetResult();
            }
            catch (Exception e)
            {
                _finished.TrySetException(e);
            }
        })
        {
            Name = "virNetDaemonRun",
            IsBackground = true,
        };
        _loopThread.Start();
        return _finished.Task;
    }

    public void Dispose()
    {
        if (Handle != null)
        {
            virObjectUnref(Handle);
            Handle = null;
        }
        if (_self.IsAllocated)
            _self.Free();
    }
}
