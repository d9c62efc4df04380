using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>Who may talk to a daemon's main server: root when privileged,
/// else only the daemon's own uid, checked on the peer credentials.</summary>
public static unsafe class VirNetServerClientIdentity
{
    /// <summary>Returns the client's pid, or -1 with libvirt's error set
    /// (the connection is then refused).</summary>
    public static int Check(virNetServerClient* client, bool privileged, virErrorDomain domain, string function)
    {
        uint uid, gid;
        int pid;
        ulong timestamp;
        if (virNetServerClientGetUNIXIdentity(client, &uid, &gid, &pid, &timestamp) < 0)
            return -1;
        uint want = privileged ? 0 : Libvirt.Util.Libc.geteuid();
        if (uid != want)
        {
            LibvirtError.Report(domain, virErrorNumber.VIR_ERR_OPERATION_DENIED, function,
                $"Disallowing client {(ulong)(uint)pid} with uid {(ulong)uid}");
            return -1;
        }
        // neither protocol has a closing handshake
        virNetServerClientSetQuietEOF(client);
        return pid;
    }

    /// <summary>The peer of libvirt's client, for the managed client hooks;
    /// null with libvirt's error set when it cannot be read.</summary>
    public static VirNetSocketUnixIdentity? NativePeer(virNetServerClient* client)
    {
        uint uid, gid;
        int pid;
        ulong timestamp;
        if (virNetServerClientGetUNIXIdentity(client, &uid, &gid, &pid, &timestamp) < 0)
            return null;
        return new VirNetSocketUnixIdentity(uid, gid, pid);
    }

    /// <summary>The same rule as a value: null when <paramref name="peer"/> may
    /// connect, else the refusal, reported from <paramref name="function"/>.</summary>
    public static VirError? Refusal(VirNetSocketUnixIdentity peer, bool privileged, VirErrorDomain domain, string function)
    {
        uint want = privileged ? 0 : Libvirt.Util.Libc.geteuid();
        return peer.Uid == want
            ? null
            : VirError.Report(domain, VirErrorCode.OperationDenied,
                $"Disallowing client {(ulong)(uint)peer.Pid} with uid {(ulong)peer.Uid}").At(function);
    }
}
