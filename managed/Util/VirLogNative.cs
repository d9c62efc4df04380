using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>
/// libvirt's own logging (virLog* in libvirt.so.0) behind the contract. Its
/// state is process-global: every instance is a view of the same filters,
/// outputs and priority, and disposing one changes nothing.
/// </summary>
public sealed unsafe class VirLogNative : IVirLog
{
    public string Name => VirImplementations.Native;

    public VirResult Reset() => virLogReset() < 0 ? VirErrorNative.TakeLast() : VirResult.Success;

    public VirLogPriority DefaultPriority => (VirLogPriority)virLogGetDefaultPriority();

    public VirResult SetDefaultPriority(int priority)
        => virLogSetDefaultPriority((virLogPriority)(uint)priority) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;

    public VirResult SetFilters(string? filters)
    {
        using var f = new NativeUtf8(filters);
        return virLogSetFilters(f) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;
    }

    public VirResult SetOutputs(string? outputs)
    {
        using var o = new NativeUtf8(outputs);
        return virLogSetOutputs(o) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;
    }

    // virLogGetFilters returns NULL (an empty virBuffer) when there is none.
    public string GetFilters() => NativeUtf8.ReadAndFree(virLogGetFilters()) ?? "";

    public VirResult<string> GetOutputs()
    {
        var s = virLogGetOutputs();
        if (s != null)
            return NativeUtf8.ReadAndFree(s)!;
        // an empty buffer is NULL too; only an enum range error sets an error
        return virLogGetNbOutputs() == 0 ? "" : VirErrorNative.TakeLast();
    }

    public int FilterCount => virLogGetNbFilters();
    public int OutputCount => virLogGetNbOutputs();

    public string? DefaultOutput => NativeUtf8.Read(virLogGetDefaultOutput()); // libvirt's own string, not freed

    public VirResult SetDefaultOutput(string binary, bool godaemon, bool privileged)
    {
        using var b = new NativeUtf8(binary);
        return virLogSetDefaultOutput(b, (byte)(godaemon ? 1 : 0), (byte)(privileged ? 1 : 0)) < 0
            ? VirErrorNative.TakeLast() : VirResult.Success;
    }

    public VirResult SetupDaemon(string name, uint logLevel, string? filters, string? outputs,
        bool privileged, bool verbose, bool godaemon)
    {
        using var f = new NativeUtf8(filters);
        using var o = new NativeUtf8(outputs);
        using var n = new NativeUtf8(name);
        return virDaemonSetupLogging(n, logLevel, f, o, (byte)(privileged ? 1 : 0), (byte)(verbose ? 1 : 0),
            (byte)(godaemon ? 1 : 0)) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;
    }

    // libvirt keeps the source's filtered priority in its own virLogSource
    // (the shim's); it decides inside virLogMessage.
    public bool IsEnabled(VirLogSource source, VirLogPriority priority) => true;

    public void Message(VirLogSource source, VirLogPriority priority, string? file, int line, string? function, string message)
    {
        using var cat = new NativeUtf8(source.Name);
        using var fl = new NativeUtf8(file);
        using var fn = new NativeUtf8(function);
        using var msg = new NativeUtf8(message);
        virtshimLogMessageAt(cat, (int)priority, fl, line, fn, msg);
    }

    public void Dispose() { }
}
