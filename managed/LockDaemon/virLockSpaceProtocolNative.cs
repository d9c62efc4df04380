using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Xdr;
using virNetMessageError = Libvirt.Interop.virNetMessageError;

namespace Libvirt.LockDaemon;

/// <summary>
/// The lock program on libvirt's virNetServer: every procedure of the
/// table is this one entry point, which hands the call to
/// <see cref="VirNetServerProgramNative"/> to decode, run the procedure of
/// the daemon's <see cref="virLockSpaceProtocolDispatch"/> (found through
/// the client's private data) and encode with the generated codecs.
/// Dispatch is synchronous on the thread libvirt calls it on, so its
/// per-thread last error is the one the reply carries.
/// </summary>
public unsafe struct virLockSpaceProtocolNative : IVirNetServerProgramBinding
{
    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram(VirLockSpaceProtocolProgram.Program, VirLockSpaceProtocolProgram.Version,
            VirLockSpaceProtocolProgram.Procedures, &Call);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int Call(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => VirNetServerProgramNative.Serve<virLockSpaceProtocolNative>(client, msg, rerr, ret);

    public static XdrDispatchStatus Dispatch(virNetServerClient* client, XdrCallContext call, int procedure,
        ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError)
    {
        var priv = virLockDaemon.Client(client);
        return VirLockSpaceProtocolProgram.Dispatch(priv.Daemon.Procedures, priv, call, procedure, args, out error, out xdrError);
    }

    public static string Function(int procedure) => procedure switch
    {
        1 => "virLockSpaceProtocolDispatchRegister",
        2 => "virLockSpaceProtocolDispatchRestrict",
        3 => "virLockSpaceProtocolDispatchNew",
        4 => "virLockSpaceProtocolDispatchCreateResource",
        5 => "virLockSpaceProtocolDispatchDeleteResource",
        6 => "virLockSpaceProtocolDispatchAcquireResource",
        7 => "virLockSpaceProtocolDispatchReleaseResource",
        8 => "virLockSpaceProtocolDispatchCreateLockSpace",
        _ => "virNetServerProgramDispatchCall",
    };

    public static virErrorDomain ExceptionDomain => virErrorDomain.VIR_FROM_RPC;
}
