using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>
/// The one place error values meet libvirt's per-thread last error: native
/// adapters take the error a libvirt call left (<see cref="TakeLast"/>), and
/// code that hands an error back to libvirt (an RPC reply, a C caller of a
/// bottom-up export) sets it (<see cref="Raise"/>), every field as it was.
/// </summary>
public static unsafe class VirErrorNative
{
    /// <summary>The last error of this thread as a value, and reset it.</summary>
    public static VirError TakeLast()
    {
        virError* e = virGetLastError();
        if (e == null || e->code == 0)
            return VirError.UnknownCause();
        // lossless: a message naming a path that is not UTF-8 keeps its bytes,
        // and Raise gives libvirt the same bytes back
        var err = new VirError(e->code, e->domain, NativeUtf8.ReadLossless(e->message) ?? "", (int)e->level,
            NativeUtf8.ReadLossless(e->str1), NativeUtf8.ReadLossless(e->str2), NativeUtf8.ReadLossless(e->str3),
            e->int1, e->int2) { Logged = true };
        virResetLastError();
        return err;
    }

    /// <summary>Makes <paramref name="error"/> libvirt's last error of this
    /// thread, reported from <paramref name="function"/>; logged as libvirt
    /// logs every error it raises, unless libvirt logged it already.</summary>
    public static void Raise(VirError error, string function)
    {
        using var fn = new NativeUtf8(error.Function ?? function);
        using var s1 = new NativeUtf8(error.Str1);
        using var s2 = new NativeUtf8(error.Str2);
        using var s3 = new NativeUtf8(error.Str3);
        using var msg = new NativeUtf8(error.Message);
        if (error.Logged)
            virtshimSetError(error.Domain, error.Code, error.Level, s1, s2, s3, error.Int1, error.Int2, msg);
        else
            virtshimRaiseError(error.Domain, error.Code, error.Level, fn, s1, s2, s3, error.Int1, error.Int2, msg);
    }
}
