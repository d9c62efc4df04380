using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Xdr;
using virNetMessageError = Libvirt.Interop.virNetMessageError;

namespace Libvirt.LogDaemon;

/// <summary>
/// The log manager program on libvirt's virNetServer: every procedure of
/// the table is this one entry point, which hands the call to
/// <see cref="VirNetServerProgramNative"/> to decode, run the procedure of
/// the daemon's <see cref="virLogManagerProtocolDispatch"/> (found through
/// the client's private data) and encode with the generated codecs; the
/// descriptors a procedure adds to its call go into the reply
/// (REPLY_WITH_FDS).
/// </summary>
public unsafe struct virLogManagerProtocolNative : IVirNetServerProgramBinding
{
    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram(VirLogManagerProtocolProgram.Program, VirLogManagerProtocolProgram.Version,
            VirLogManagerProtocolProgram.Procedures, &Call);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Call(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => VirNetServerProgramNative.Serve<virLogManagerProtocolNative>(client, msg, rerr, ret);

    public static XdrDispatchStatus Dispatch(virNetServerClient* client, XdrCallContext call, int procedure,
        ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError)
    {
        var priv = virLogDaemonClient.Of(client);
        return VirLogManagerProtocolProgram.Dispatch(priv.Daemon.Procedures, priv, call, procedure, args, out error, out xdrError);
    }

    public static string Function(int procedure) => procedure switch
    {
        1 => "virLogManagerProtocolDispatchDomainOpenLogFile",
        2 => "virLogManagerProtocolDispatchDomainGetLogFilePosition",
        3 => "virLogManagerProtocolDispatchDomainReadLogFile",
        4 => "virLogManagerProtocolDispatchDomainAppendLogFile",
        _ => "virNetServerProgramDispatchCall",
    };

    public static virErrorDomain ExceptionDomain => virErrorDomain.VIR_FROM_RPC;
}
