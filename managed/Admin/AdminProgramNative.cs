using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Xdr;
using virNetMessageError = Libvirt.Interop.virNetMessageError;

namespace Libvirt.Admin;

/// <summary>
/// The admin program on libvirt's virNetServer (the "admin" server of both
/// daemons): every procedure of the table is this one entry point, which
/// hands the call to <see cref="VirNetServerProgramNative"/> to decode, run
/// the procedure of the connection's <see cref="AdminProgram"/> (found
/// through the client's private data) and encode with the generated codecs.
/// </summary>
public unsafe struct AdminProgramNative : IVirNetServerProgramBinding
{
    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram(VirAdminProtocolProgram.Program, VirAdminProtocolProgram.Version,
            VirAdminProtocolProgram.Procedures, &Call);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Call(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => VirNetServerProgramNative.Serve<AdminProgramNative>(client, msg, rerr, ret);

    public static XdrDispatchStatus Dispatch(virNetServerClient* client, XdrCallContext call, int procedure,
        ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError)
    {
        var st = AdminClient.State(client);
        if (st is null)
        {
            xdrError = XdrError.None;
            error = VirError.Report(VirErrorDomain.Admin, VirErrorCode.InternalError, "admin connection has no state");
            return XdrDispatchStatus.Failed;
        }
        return VirAdminProtocolProgram.Dispatch(st.Procedures, st, call, procedure, args, out error, out xdrError);
    }

    /// <summary>As the C daemons' dispatchers are named (only errors ask).</summary>
    public static string Function(int procedure)
        => VirAdminProtocolProgram.MethodName(procedure) is { } m ? "adminDispatch" + m : "virNetServerProgramDispatchCall";

    public static virErrorDomain ExceptionDomain => virErrorDomain.VIR_FROM_ADMIN;
}
