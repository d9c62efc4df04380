using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.Export;

/// <summary>
/// What every export shares: the opaque pointers C holds (a GCHandle to the
/// exported object, so the object's state travels with the pointer and
/// nothing is kept in statics), C strings in and out, and the one place an
/// error value becomes libvirt's last error.
/// </summary>
internal static unsafe class VirExport
{
    public static void* NewOpaque(object target) => (void*)GCHandle.ToIntPtr(GCHandle.Alloc(target));

    /// <summary>The object behind an opaque pointer; null for NULL (C would
    /// crash; the export reports an error instead).</summary>
    public static T? Target<T>(void* opaque) where T : class
        => opaque == null ? null : GCHandle.FromIntPtr((nint)opaque).Target as T;

    /// <summary>Frees the handle and disposes what it held; NULL is a no-op,
    /// as for every virXxxFree.</summary>
    public static void FreeOpaque(void* opaque)
    {
        if (opaque == null)
            return;
        var handle = GCHandle.FromIntPtr((nint)opaque);
        var target = handle.Target as IDisposable;
        handle.Free();
        target?.Dispose();
    }

    /// <summary>The bytes of a C string, without the NUL (empty for NULL).</summary>
    public static ReadOnlySpan<byte> Bytes(byte* s)
        => s == null ? default : MemoryMarshal.CreateReadOnlySpanFromNullTerminated(s);

    /// <summary>A C string (a path) as a string that keeps every byte, UTF-8
    /// or not (<see cref="LosslessUtf8"/>): the twins give the same bytes back
    /// to libc and to C.</summary>
    public static string? String(byte* s) => s == null ? null : LosslessUtf8.Decode(Bytes(s));

    /// <summary>A NUL-terminated copy the exported object owns and frees
    /// (what libvirt g_strdup()s and hands out as const char *).</summary>
    public static byte* StrDup(ReadOnlySpan<byte> s, bool isNull = false)
    {
        if (isNull)
            return null;
        var p = (byte*)NativeMemory.Alloc((nuint)s.Length + 1);
        s.CopyTo(new Span<byte>(p, s.Length));
        p[s.Length] = 0;
        return p;
    }

    public static void Free(byte* p) => NativeMemory.Free(p);

    /// <summary>Makes <paramref name="error"/> libvirt's last error, as the C
    /// function would have reported it.</summary>
    public static void Raise(VirError error, string function) => VirErrorNative.Raise(error, function);

    /// <summary>Nothing may unwind into C: an exception becomes an internal
    /// error of the subsystem's domain.</summary>
    public static void Raise(Exception e, VirErrorDomain domain, string function)
    {
        try
        {
            Raise(e is VirErrorException v ? v.Error : VirError.Report(domain, VirErrorCode.InternalError, e.Message), function);
        }
        catch
        {
            // libvirt unreachable: the return value still says it failed
        }
    }

    public static VirError NullObject(VirErrorDomain domain, string function)
        => VirError.Report(domain, VirErrorCode.InternalError, $"{function}: NULL object");
}
