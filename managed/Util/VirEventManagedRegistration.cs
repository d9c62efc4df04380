using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>
/// Makes a <see cref="VirEventManaged"/> libvirt's event loop through the
/// public virEventRegisterImpl, so every virEventAddHandle/AddTimeout/...
/// libvirt.so.0 makes (servers, clients, keepalive, the daemon's signal
/// pipe, virtlogd's pipes) lands on it. The C callback, opaque and free
/// function are kept in the entry and called as they are.
/// <para>It must run before anything registers an fd or timer with libvirt,
/// and before virNetDaemonNew (which registers the default glib loop: a
/// second registration is ignored by libvirt with a warning, so whichever
/// comes first stays for the life of the process).</para>
/// </summary>
public static unsafe class VirEventManagedRegistration
{
    // The one static: libvirt's registration is process-global and its six
    // functions take no context argument, so the [UnmanagedCallersOnly]
    // entry points can only find the loop through a static. It is set once
    // and never cleared (libvirt offers no unregistration).
    private static VirEventManaged? s_loop;

    /// <summary>The loop libvirt uses, if <see cref="Register"/> succeeded.</summary>
    public static VirEventManaged? Current => Volatile.Read(ref s_loop);

    /// <summary>
    /// Registers <paramref name="loop"/> with libvirt. False if another loop
    /// was registered first (libvirt's default, or another managed one); the
    /// check is a probe timer added through the public API, which lands on
    /// whichever loop libvirt kept.
    /// </summary>
    public static bool Register(VirEventManaged loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        if (Interlocked.CompareExchange(ref s_loop, loop, null) is { } existing)
            return ReferenceEquals(existing, loop);

        virEventRegisterImpl(&AddHandle, &UpdateHandle, &RemoveHandle, &AddTimeout, &UpdateTimeout, &RemoveTimeout);

        int before = loop.TimersAdded;
        int probe = virEventAddTimeout(-1, &ProbeTimer, null, null);
        bool ours = probe > 0 && loop.TimersAdded != before;
        if (probe > 0)
            virEventRemoveTimeout(probe);
        if (!ours)
        {
            // libvirt kept another loop; nothing reaches this one
            Volatile.Write(ref s_loop, null);
            return false;
        }
        MuteDefaultRegistration();
        return true;
    }

    /// <summary>
    /// libvirt's own code calls virEventRegisterDefaultImpl (virNetDaemonNew
    /// does), whose first call asks to register glib's loop, and libvirt,
    /// finding ours, logs "Ignoring attempt to replace registered event
    /// loop": a warning, so every start would print it (with the version
    /// banner). That first call is made here with util.event's warnings
    /// filtered out for its duration; later calls do nothing and say
    /// nothing. A filter, not the default priority: libvirt caches each
    /// source's priority until the filters change.
    /// </summary>
    private static void MuteDefaultRegistration()
    {
        if (virInitialize() < 0)
        {
            virResetLastError();
            return; // virNetDaemonNew will fail the same way, and say why
        }
        string filters = UnwrapFilters(NativeUtf8.ReadAndFree(virLogGetFilters()));
        using (var muted = new NativeUtf8($"4:util.event {filters}"))
        {
            if (virLogSetFilters(muted) < 0)
            {
                virResetLastError();
                return; // unmuted, then: one warning
            }
        }
        try
        {
            virEventRegisterDefaultImpl();
        }
        finally
        {
            using var restored = new NativeUtf8(filters);
            virLogSetFilters(restored);
        }
    }

    /// <summary>virLogGetFilters's "1:*util* 3:*rpc* " as the "1:util 3:rpc"
    /// they were set from (libvirt stores each match wrapped in '*').</summary>
    private static string UnwrapFilters(string? filters)
    {
        if (string.IsNullOrWhiteSpace(filters))
            return "";
        var parts = filters.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            int colon = parts[i].IndexOf(':');
            string match = parts[i][(colon + 1)..];
            if (match.Length >= 2 && match[0] == '*' && match[^1] == '*')
                parts[i] = parts[i][..(colon + 1)] + match[1..^1];
        }
        return string.Join(' ', parts);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void ProbeTimer(int timer, void* opaque)
    {
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int AddHandle(int fd, int events, delegate* unmanaged[Cdecl]<int, int, int, void*, void> cb,
        void* opaque, delegate* unmanaged[Cdecl]<void*, void> ff)
    {
        try
        {
            return s_loop?.AddHandleNative(fd, events, cb, opaque, ff) ?? -1;
        }
        catch
        {
            return -1;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void UpdateHandle(int watch, int events)
    {
        try
        {
            s_loop?.UpdateHandle(watch, (VirEventHandleType)events);
        }
        catch
        {
            // nothing may unwind into C
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int RemoveHandle(int watch)
    {
        try
        {
            return s_loop?.RemoveHandle(watch) ?? -1;
        }
        catch
        {
            return -1;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int AddTimeout(int frequency, delegate* unmanaged[Cdecl]<int, void*, void> cb,
        void* opaque, delegate* unmanaged[Cdecl]<void*, void> ff)
    {
        try
        {
            return s_loop?.AddTimeoutNative(frequency, cb, opaque, ff) ?? -1;
        }
        catch
        {
            return -1;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void UpdateTimeout(int timer, int frequency)
    {
        try
        {
            s_loop?.UpdateTimeout(timer, frequency);
        }
        catch
        {
            // nothing may unwind into C
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static int RemoveTimeout(int timer)
    {
        try
        {
            return s_loop?.RemoveTimeout(timer) ?? -1;
        }
        catch
        {
            return -1;
        }
    }
}
