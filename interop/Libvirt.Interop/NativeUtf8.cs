using System.Runtime.InteropServices;

namespace Libvirt.Interop;

/// <summary>A NUL-terminated UTF-8 copy of a string in native memory, for
/// the duration of one call into libvirt. Encoded with <see cref="LosslessUtf8"/>:
/// a string decoded from C bytes that were not UTF-8 goes back as those bytes.</summary>
public readonly unsafe struct NativeUtf8 : IDisposable
{
    public readonly sbyte* Pointer;

    public NativeUtf8(string? value)
    {
        if (value is null)
        {
            Pointer = null;
            return;
        }
        int n = LosslessUtf8.GetByteCount(value);
        var p = (byte*)Marshal.AllocCoTaskMem(n + 1);
        LosslessUtf8.Encode(value, new Span<byte>(p, n));
        p[n] = 0;
        Pointer = (sbyte*)p;
    }

    public static implicit operator sbyte*(NativeUtf8 s) => s.Pointer;

    public void Dispose()
    {
        if (Pointer != null)
            Marshal.FreeCoTaskMem((nint)Pointer);
    }

    /// <summary>Reads a C string libvirt owns (null stays null); bytes that
    /// are not UTF-8 become U+FFFD.</summary>
    public static string? Read(sbyte* p) => p == null ? null : Marshal.PtrToStringUTF8((nint)p);

    /// <summary>Reads a C string (a path) keeping every byte (<see cref="LosslessUtf8"/>).</summary>
    public static string? ReadLossless(sbyte* p)
        => p == null ? null : LosslessUtf8.Decode(MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)p));

    /// <summary>Reads a C string and frees it with glib's allocator, for the
    /// char ** outputs libvirt hands over.</summary>
    public static string? ReadAndFree(sbyte* p)
    {
        string? s = Read(p);
        if (p != null)
            GLib.g_free(p);
        return s;
    }

    /// <summary>A copy in glib's allocator, for strings libvirt will own
    /// and g_free.</summary>
    public static sbyte* GStrdup(string? value)
    {
        if (value is null)
            return null;
        int n = LosslessUtf8.GetByteCount(value);
        var p = (byte*)GLib.g_malloc0((nuint)n + 1);
        LosslessUtf8.Encode(value, new Span<byte>(p, n));
        return (sbyte*)p;
    }
}
