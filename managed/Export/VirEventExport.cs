using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Util;
using static Libvirt.Interop.Methods;

namespace Libvirt.Export;

/// <summary>
/// libvirt's default event loop (virevent.c's virEventRegisterDefaultImpl
/// and virEventRunDefaultImpl, LIBVIRT_0.9.0) exported over
/// <see cref="VirEventManaged"/>. With the library preloaded, libvirt.so.0's
/// own calls reach these through its PLT (virNetDaemonNew registers,
/// virNetDaemonRun iterates), so every handle and timer the C daemon and
/// libvirt register lands on the managed epoll loop instead of glib's.
/// <para>The loop is found through <see cref="VirEventManagedRegistration.Current"/>:
/// libvirt's registration is process-global and these functions take no
/// argument, so that registration is the one piece of state they share.</para>
/// </summary>
internal static unsafe class VirEventExport
{
    // Serialises the first registration: two threads registering at once
    // must not both build a loop (the loser's would be refused by libvirt).
    private static readonly Lock s_registerLock = new();

    /// <summary>As libvirt's: virInitialize, reset the last error, register
    /// the loop once (later calls do nothing), 0; -1 if libvirt cannot be
    /// initialised. An event implementation someone registered before keeps
    /// running, as it would with libvirt's (then libvirt's own default
    /// registration is made, which libvirt ignores with its warning).</summary>
    [UnmanagedCallersOnly(EntryPoint = "virEventRegisterDefaultImpl", CallConvs = [typeof(CallConvCdecl)])]
    public static int RegisterDefaultImpl()
    {
        try
        {
            if (virInitialize() < 0)
                return -1;
            virResetLastError();
            lock (s_registerLock)
            {
                if (VirEventManagedRegistration.Current is not null)
                    return 0;
                var loop = new VirEventManaged();
                if (!VirEventManagedRegistration.Register(loop))
                {
                    loop.Dispose();
                    return virEventRegisterDefaultImpl(); // libvirt's (looked up in libvirt.so.0 itself)
                }
            }
            return 0;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, VirErrorDomain.Event, "virEventRegisterDefaultImpl");
            return -1;
        }
    }

    /// <summary>One iteration of the managed loop: 0, or -1 with the error
    /// raised. Without the managed loop registered, libvirt's own.</summary>
    [UnmanagedCallersOnly(EntryPoint = "virEventRunDefaultImpl", CallConvs = [typeof(CallConvCdecl)])]
    public static int RunDefaultImpl()
    {
        try
        {
            virResetLastError();
            if (VirEventManagedRegistration.Current is not { } loop)
                return virEventRunDefaultImpl();
            var r = loop.RunOnce();
            if (r.Error is { } error)
            {
                VirExport.Raise(error, "virEventRunDefaultImpl");
                return -1;
            }
            return 0;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, VirErrorDomain.Event, "virEventRunDefaultImpl");
            return -1;
        }
    }
}
