using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>
/// libvirt's default event loop (vireventglib.c: glib's default main
/// context) behind the contract, through the public virEvent* API. Every
/// instance is the same process-wide loop: libvirt has one, and Dispose
/// leaves it (and whatever is registered on it) as it is.
/// <para>The managed callbacks travel as a GCHandle in libvirt's opaque,
/// freed by libvirt's free callback (which glib runs on the loop thread in
/// the iteration after the removal). An exception thrown by a callback
/// cannot unwind through C: it is kept and rethrown by the
/// <see cref="RunOnce"/> that dispatched it, as the managed loop's would be.</para>
/// <para>Interrupt: libvirt has no public wakeup for its default loop, but
/// that loop is glib's default GMainContext, iterated by
/// g_main_context_iteration(NULL, TRUE); g_main_context_wakeup on that
/// context makes a blocked iteration return, or the next one not block.
/// (Adding and removing a 0 ms timer would also do, but leaves a free
/// callback behind and costs two allocations per interrupt.)</para>
/// </summary>
public sealed unsafe class VirEventNative : IVirEventLoop
{
    public string Name => VirImplementations.Native;

    private sealed class HandleState(VirEventHandleCallback callback, Action? free)
    {
        public readonly VirEventHandleCallback Callback = callback;
        public readonly Action? Free = free;
    }

    private sealed class TimerState(VirEventTimeoutCallback callback, Action? free)
    {
        public readonly VirEventTimeoutCallback Callback = callback;
        public readonly Action? Free = free;
    }

    /// <summary>The first exception a callback threw in the iteration
    /// running on this thread.</summary>
    [ThreadStatic]
    private static ExceptionDispatchInfo? t_thrown;

    private VirEventNative()
    {
    }

    /// <summary>Registers libvirt's default loop (a no-op once done). Throws
    /// <see cref="InvalidOperationException"/> if libvirt's loop is the
    /// managed one: the default loop would never see what is added here.</summary>
    public static VirEventNative Register()
    {
        if (VirEventManagedRegistration.Current is not null)
            throw new InvalidOperationException("libvirt's event loop is the managed one in this process");
        if (virEventRegisterDefaultImpl() < 0)
            throw new VirErrorException(VirErrorNative.TakeLast());
        return new VirEventNative();
    }

    /// <summary>libvirt's default loop once code of libvirt's registered it
    /// (virNetDaemonNew does): registering again would only log it again.</summary>
    public static VirEventNative AlreadyRegistered() => new();

    public int AddHandle(int fd, VirEventHandleType events, VirEventHandleCallback callback, Action? free)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var gch = GCHandle.Alloc(new HandleState(callback, free));
        int watch = virEventAddHandle(fd, (int)events, &OnHandle, (void*)GCHandle.ToIntPtr(gch), &OnHandleFree);
        if (watch < 0)
        {
            // libvirt does not call the free callback of what it refused
            gch.Free();
            virResetLastError();
        }
        return watch;
    }

    public void UpdateHandle(int watch, VirEventHandleType events) => virEventUpdateHandle(watch, (int)events);

    public int RemoveHandle(int watch) => virEventRemoveHandle(watch);

    public int AddTimeout(int frequencyMs, VirEventTimeoutCallback callback, Action? free)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var gch = GCHandle.Alloc(new TimerState(callback, free));
        int timer = virEventAddTimeout(frequencyMs, &OnTimer, (void*)GCHandle.ToIntPtr(gch), &OnTimerFree);
        if (timer < 0)
        {
            gch.Free();
            virResetLastError();
        }
        return timer;
    }

    public void UpdateTimeout(int timer, int frequencyMs) => virEventUpdateTimeout(timer, frequencyMs);

    public int RemoveTimeout(int timer) => virEventRemoveTimeout(timer);

    public VirResult RunOnce()
    {
        t_thrown = null;
        int rc = virEventRunDefaultImpl();
        var thrown = t_thrown;
        if (thrown is not null)
        {
            t_thrown = null;
            thrown.Throw();
        }
        return rc < 0 ? VirErrorNative.TakeLast() : VirResult.Success;
    }

    public void Interrupt() => GLib.g_main_context_wakeup(GLib.g_main_context_default());

    /// <summary>Nothing to release: the loop is libvirt's, for the process.</summary>
    public void Dispose()
    {
    }

    private static void Keep(Exception e) => t_thrown ??= ExceptionDispatchInfo.Capture(e);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnHandle(int watch, int fd, int events, void* opaque)
    {
        try
        {
            var state = (HandleState)GCHandle.FromIntPtr((nint)opaque).Target!;
            state.Callback(watch, fd, (VirEventHandleType)events);
        }
        catch (Exception e)
        {
            Keep(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnHandleFree(void* opaque)
    {
        var gch = GCHandle.FromIntPtr((nint)opaque);
        var state = (HandleState)gch.Target!;
        gch.Free();
        try
        {
            state.Free?.Invoke();
        }
        catch (Exception e)
        {
            Keep(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnTimer(int timer, void* opaque)
    {
        try
        {
            var state = (TimerState)GCHandle.FromIntPtr((nint)opaque).Target!;
            state.Callback(timer);
        }
        catch (Exception e)
        {
            Keep(e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnTimerFree(void* opaque)
    {
        var gch = GCHandle.FromIntPtr((nint)opaque);
        var state = (TimerState)gch.Target!;
        gch.Free();
        try
        {
            state.Free?.Invoke();
        }
        catch (Exception e)
        {
            Keep(e);
        }
    }
}
