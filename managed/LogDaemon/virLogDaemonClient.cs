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
            int pid = VirNetServerClientIdentity.Check(client, logd.Privileged, virErrorDomain.VIR_FROM_LOGGING, "virLogDaemonClientNew");
            if (pid < 0)
                return null;
            return (void*)GCHandle.ToIntPtr(GCHandle.Alloc(new virLogDaemonClient { ClientPid = pid, Daemon = logd }));
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
        if (opaque != null)
            GCHandle.FromIntPtr((nint)opaque).Free();
    }
}
