using System.Runtime.InteropServices;

namespace Libvirt.Interop;

/// <summary>The glib entry points the project needs that libvirt does not
/// wrap: the allocator, to own memory libvirt allocates or frees, and the
/// default main context's wakeup, which libvirt's default event loop
/// iterates (glib is not libvirt; its ABI is stable).</summary>
public static unsafe partial class GLib
{
    [LibraryImport("libglib-2.0.so.0")]
    public static partial void g_free(void* mem);

    [LibraryImport("libglib-2.0.so.0")]
    public static partial void* g_malloc0(nuint size);

    /// <summary>The global default GMainContext (not a new reference).</summary>
    [LibraryImport("libglib-2.0.so.0")]
    public static partial void* g_main_context_default();

    /// <summary>Makes a g_main_context_iteration blocked on another thread
    /// return, or the next one return without blocking.</summary>
    [LibraryImport("libglib-2.0.so.0")]
    public static partial void g_main_context_wakeup(void* context);
}
