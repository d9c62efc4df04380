using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Host;
using Libvirt.Interop;

namespace Libvirt.LogDaemon;

/// <summary>Per-connection data of the log program: only who is connected.
/// Logs belong to the daemon, not to connections: a client going away
/// leaves its pipes open.</summary>
public sealed class virLogDaemonClient
{
    public int ClientPid;
    public required virLogDaemon Daemon;

    public static unsafe virLogDaemonClient Of(virNetServerClient* client)
        => (virLogDaemonClient)GCHandle.FromIntPtr((nint)Libvirt.Interop.Methods.virNetServerClientGetPrivateData(client)).Target!;

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static unsafe void* ClientNew(virNetServerClient* client, void* opaque)
    {
        try
        {
            var logd = DaemonMain.StateFromOpaque<virLogDaemon>(opaque);
            if (VirNetServerClientIdentity.NativePeer(client) is not { } peer)
                return null;
            if (!logd.ClientNew(peer).TryGet(out var priv, out var err))
            {
                VirErrorNative.Raise(err!, "virLogDaemonClientNew");
                return null;
            }
            // neither protocol has a closing handshake
            Libvirt.Interop.Methods.virNetServerClientSetQuietEOF(client);
            return (void*)GCHandle.ToIntPtr(GCHandle.Alloc(priv));
        }
        catch (Exception e)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_LOGGING, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "virLogDaemonClientNew", e.Message);
            return null;
        }
    }

    /// <summary>Log clients carry no state across exec-restart: an empty object.</summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static unsafe virJSONValue* ClientPreExecRestart(virNetServerClient* client, void* data)
    {
        try
        {
            return VirJSONNative.ToNative(new System.Text.Json.Nodes.JsonObject());
        }
        catch
        {
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static unsafe void* ClientNewPostExecRestart(virNetServerClient* client, virJSONValue* obj, void* opaque)
    {
        var clientNew = (delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*>)&ClientNew;
        return clientNew(client, opaque);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static unsafe void ClientFree(void* opaque)
    {
        if (opaque == null)
            return;
        var handle = GCHandle.FromIntPtr((nint)opaque);
        var priv = handle.Target as virLogDaemonClient;
        handle.Free();
        priv?.Daemon.ClientFree(priv);
    }
}
