using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;

namespace Libvirt.Host;

/// <summary>
/// Client data of the "admin" server of both daemons. The admin program itself (virt-admin's
/// procedures) is a later step; until then the server exists with its
/// socket, limits and client accounting, and calls get "unknown program".
/// </summary>
public static unsafe class AdminClient
{
    private static byte s_marker;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static void* ClientNew(virNetServerClient* client, void* opaque)
    {
        // non-null: accepted. The admin program will hang real state here.
        fixed (byte* p = &s_marker)
            return p;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static void ClientFree(void* opaque)
    {
    }
}
