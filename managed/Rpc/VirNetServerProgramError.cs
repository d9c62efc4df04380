using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>
/// The error reply of a procedure entry point, shared by the programs
/// (lock, log, admin): libvirt's per-thread last error saved into the
/// reply, as the C dispatchers' "virNetMessageSaveError(rerr); return -1".
/// An exception must never escape into libvirt (it would kill the
/// process): it is reported as an internal error of the procedure first.
/// </summary>
public static unsafe class VirNetServerProgramError
{
    /// <summary>Saves the thread's last error into the reply: -1.</summary>
    public static int Reply(virNetMessageError* rerr)
    {
        virNetMessageSaveError(rerr);
        return -1;
    }

    /// <summary>An error value from a procedure body, handed to libvirt and
    /// saved into the reply: -1.</summary>
    public static int Reply(virNetMessageError* rerr, VirError error, string fn)
    {
        VirErrorNative.Raise(error, fn);
        return Reply(rerr);
    }

    /// <summary>The exception as VIR_ERR_INTERNAL_ERROR of function
    /// <paramref name="fn"/> in <paramref name="domain"/>, saved into the reply: -1.</summary>
    public static int Reply(virNetMessageError* rerr, virErrorDomain domain, string fn, Exception e)
    {
        LibvirtError.Report(domain, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn, e.Message);
        return Reply(rerr);
    }
}
