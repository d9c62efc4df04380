using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Admin;
using Libvirt.Interop;

namespace Libvirt.Admin;

/// <summary>
/// Client data of the "admin" server of both daemons (libvirt's callbacks,
/// so errors go to libvirt's last error here): each accepted
/// connection (only from the daemon's own uid, as the C daemons allow) gets
/// an <see cref="AdminClientState"/> that the admin program's procedures
/// reach through libvirt's client private data.
/// </summary>
public static unsafe class AdminClient
{
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static void* ClientNew(virNetServerClient* client, void* opaque)
    {
        try
        {
            uint uid, gid;
            int pid;
            ulong timestamp;
            if (Methods.virNetServerClientGetUNIXIdentity(client, &uid, &gid, &pid, &timestamp) < 0)
                return null;
            if (Libc.geteuid() != uid)
            {
                VirErrorNative.Raise(VirError.Report(VirErrorDomain.Admin, VirErrorCode.OperationDenied,
                    $"Disallowing client {pid} with uid {uid}"), "remoteAdmClientNew");
                return null;
            }
            var state = new AdminClientState(new NativeAdminDaemon((virNetDaemon*)opaque),
                new NativeAdminClient(client, owned: false));
            return (void*)GCHandle.ToIntPtr(GCHandle.Alloc(state));
        }
        catch (Exception e)
        {
            VirErrorNative.Raise(VirError.Report(VirErrorDomain.Admin, VirErrorCode.InternalError, e.Message),
                "remoteAdmClientNew");
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static void ClientFree(void* opaque)
    {
        if (opaque == null)
            return;
        var h = GCHandle.FromIntPtr((nint)opaque);
        (h.Target as AdminClientState)?.Connection.Dispose();
        h.Free();
    }

    /// <summary>The state of the admin connection <paramref name="client"/>.</summary>
    public static AdminClientState? State(virNetServerClient* client)
    {
        void* p = Methods.virNetServerClientGetPrivateData(client);
        return p == null ? null : GCHandle.FromIntPtr((nint)p).Target as AdminClientState;
    }
}

/// <summary>One admin connection: the daemon it administers and the
/// connection itself (not owned: it lives as long as its private data).</summary>
public sealed class AdminClientState(IAdminDaemon daemon, IAdminClient connection)
{
    public IAdminDaemon Daemon { get; } = daemon;
    public IAdminClient Connection { get; } = connection;
    /// <summary>The admin program's procedures, whichever RPC layer serves them.</summary>
    public AdminProgram Procedures { get; } = new();
    /// <summary>Set by CONNECT_OPEN; virt-admin always opens first.</summary>
    public bool Opened { get; set; }
}
