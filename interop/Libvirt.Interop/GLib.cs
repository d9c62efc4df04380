using System.Runtime.InteropServices;

namespace Libvirt.Interop;

/// <summary>The two glib allocator entry points needed to own memory that
/// libvirt allocates or frees (glib is not libvirt; its ABI is stable).</summary>
public static unsafe partial class GLib
{
    [LibraryImport("libglib-2.0.so.0")]
    public static partial void g_free(void* mem);

    [LibraryImport("libglib-2.0.so.0")]
    public static partial void* g_malloc0(nuint size);
}
