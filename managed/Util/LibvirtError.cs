using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>Raising and reading libvirt's per-thread last error from
/// managed code. libvirt's reporters are variadic, so raising goes through
/// the shim; the error then travels exactly as a C caller's would (into an
/// RPC reply by virNetMessageSaveError, or to the log).</summary>
public static unsafe class LibvirtError
{
    public static void Report(virErrorDomain domain, virErrorNumber code, string function, string? detail)
    {
        using var fn = new NativeUtf8(function);
        using var msg = new NativeUtf8(detail);
        virtshimReportError((int)domain, (int)code, fn, msg);
    }

    /// <summary>As virCheckFlags does: "unsupported flags (0x..) in function X".</summary>
    public static bool CheckFlags(virErrorDomain domain, uint flags, uint supported, string function)
    {
        uint unsupported = flags & ~supported;
        if (unsupported == 0)
            return true;
        using var fn = new NativeUtf8(function);
        using var arg = new NativeUtf8("flags");
        using var msg = new NativeUtf8($"unsupported flags (0x{unsupported:x}) in function {function}");
        virtshimReportInvalidArg((int)domain, fn, arg, msg);
        return false;
    }

    public static void ReportSystem(virErrorDomain domain, int errno, string function, string message)
    {
        using var fn = new NativeUtf8(function);
        using var msg = new NativeUtf8(message);
        virtshimReportSystemError((int)domain, errno, fn, msg);
    }

    public static string LastMessage => NativeUtf8.Read(virGetLastErrorMessage()) ?? "unknown error";
}
