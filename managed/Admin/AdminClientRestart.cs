using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Interop;

namespace Libvirt.Admin;

/// <summary>Admin clients across an exec-restart: the C daemons save an
/// empty object for each and recreate them as new admin clients.</summary>
public static unsafe class AdminClientRestart
{
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static virJSONValue* PreExecRestart(virNetServerClient* client, void* data)
    {
        try
        {
            return VirJSONNative.ToNative(new JsonObject());
        }
        catch
        {
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    public static void* NewPostExecRestart(virNetServerClient* client, virJSONValue* obj, void* opaque)
    {
        // the same as a new admin connection
        var clientNew = (delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*>)&AdminClient.ClientNew;
        return clientNew(client, opaque);
    }
}
