using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>
/// Makes a logging implementation other than libvirt's the one libvirt.so.0's
/// own messages reach (RPC layer, raised errors, the shim's): libvirt gets a
/// single output of priority debug that hands every message to the wrapped
/// implementation, and the wrapped one's default priority and filters are
/// copied into libvirt so that libvirt drops what the wrapped one would drop
/// before formatting it. Outputs stay the wrapped one's alone. There is one
/// libvirt per process: make at most one relay.
/// </summary>
public sealed unsafe class VirLogLibvirtRelay : IVirLog
{
    // virlog.c's own source: its parse messages and each output's version and
    // host lines, which the wrapped implementation writes itself
    private const string LibvirtLogSource = "util.log";

    private readonly IVirLog _inner;
    private GCHandle _self;

    private VirLogLibvirtRelay(IVirLog inner)
    {
        _inner = inner;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>Defines the relay as libvirt's only output and copies the
    /// wrapped implementation's priority and filters into libvirt.</summary>
    public static VirResult<IVirLog> Install(IVirLog inner)
    {
        var relay = new VirLogLibvirtRelay(inner);
        var output = virLogOutputNew(&Relay, null, (void*)GCHandle.ToIntPtr(relay._self), virLogPriority.VIR_LOG_DEBUG,
            virLogDestination.VIR_LOG_TO_STDERR /* no name needed; never shown */, null);
        if (output == null)
            return VirErrorNative.TakeLast();
        // virLogDefineOutputs takes the list and frees it with g_free: allocated with glib
        var list = (virLogOutput**)GLib.g_malloc0((nuint)sizeof(virLogOutput*));
        list[0] = output;
        if (virLogDefineOutputs(list, 1) < 0)
        {
            virLogOutputListFree(list, 1);
            return VirErrorNative.TakeLast();
        }
        relay.Sync();
        return relay;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Relay(virLogSource* source, virLogPriority priority, sbyte* filename, int linenr, sbyte* funcname,
        sbyte* timestamp, virLogMetadata* metadata, sbyte* rawstr, sbyte* str, void* data)
    {
        try
        {
            var self = (VirLogLibvirtRelay)GCHandle.FromIntPtr((nint)data).Target!;
            string name = NativeUtf8.Read(source->name) ?? "";
            if (name == LibvirtLogSource)
                return;
            var src = VirLogSources.Get(name);
            self._inner.Message(src, (VirLogPriority)priority, NativeUtf8.Read(filename), linenr,
                NativeUtf8.Read(funcname), NativeUtf8.Read(rawstr) ?? "");
        }
        catch
        {
            // a log message must never unwind into libvirt
        }
    }

    /// <summary>libvirt's default priority and filters as the wrapped
    /// implementation's (its "P:*m* " text is libvirt's syntax: "*m*" is the
    /// same glob in libvirt once it adds its own stars).</summary>
    private void Sync()
    {
        virLogSetDefaultPriority((virLogPriority)(uint)_inner.DefaultPriority);
        using var f = new NativeUtf8(_inner.GetFilters());
        if (virLogSetFilters(f) < 0)
            VirErrorNative.TakeLast(); // cannot happen: the wrapped one accepted the text
    }

    private VirResult Synced(VirResult r)
    {
        Sync();
        return r;
    }

    public string Name => _inner.Name;
    public VirLogPriority DefaultPriority => _inner.DefaultPriority;
    public int FilterCount => _inner.FilterCount;
    public int OutputCount => _inner.OutputCount;
    public string? DefaultOutput => _inner.DefaultOutput;

    public VirResult Reset() => Synced(_inner.Reset());
    public VirResult SetDefaultPriority(int priority) => Synced(_inner.SetDefaultPriority(priority));
    public VirResult SetFilters(string? filters) => Synced(_inner.SetFilters(filters));
    public VirResult SetOutputs(string? outputs) => _inner.SetOutputs(outputs);
    public string GetFilters() => _inner.GetFilters();
    public VirResult<string> GetOutputs() => _inner.GetOutputs();
    public VirResult SetDefaultOutput(string binary, bool godaemon, bool privileged) => _inner.SetDefaultOutput(binary, godaemon, privileged);

    public VirResult SetupDaemon(string name, uint logLevel, string? filters, string? outputs, bool privileged, bool verbose, bool godaemon)
        => Synced(_inner.SetupDaemon(name, logLevel, filters, outputs, privileged, verbose, godaemon));

    public bool IsEnabled(VirLogSource source, VirLogPriority priority) => _inner.IsEnabled(source, priority);

    public void Message(VirLogSource source, VirLogPriority priority, string? file, int line, string? function, string message)
        => _inner.Message(source, priority, file, line, function, message);

    // libvirt keeps calling the relay for the process's life: the handle stays
    public void Dispose() => _inner.Dispose();
}
