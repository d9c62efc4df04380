using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host;

/// <summary>Start-up checks and one-time initialisation of libvirt.so.0.</summary>
public static unsafe class LibvirtRuntime
{
    /// <summary>libvirt 9.0.0, as virGetVersion encodes it.</summary>
    public const ulong RequiredVersion = 9_000_000;
    public const string RequiredVersionText = "9.0.0";

    /// <summary>
    /// Refuses any libvirt.so.0 but the one the bindings and the shim were
    /// generated from: its internals have no stable ABI, so another release
    /// would be memory corruption rather than an error. Returns null when
    /// fine, else the reason.
    /// </summary>
    public static string? CheckVersion()
    {
        nuint libVer = 0;
        try
        {
            if (virGetVersion(&libVer, null, null) < 0)
                return "cannot read the version of libvirt.so.0";
        }
        catch (DllNotFoundException e)
        {
            return $"cannot load libvirt.so.0 ({e.Message}); install libvirt0 {RequiredVersionText}";
        }
        if (libVer != RequiredVersion)
        {
            return $"libvirt.so.0 is version {Format(libVer)}, but this build requires exactly {RequiredVersionText} " +
                   "(it calls libvirt's private ABI, LIBVIRT_PRIVATE_9.0.0)";
        }
        if (virtshimHasPrivateAbi() == 0)
            return "libvirt.so.0 does not export LIBVIRT_PRIVATE_9.0.0";
        if (virtshimCompiledVersion() != RequiredVersion)
            return $"the native shim was compiled against libvirt {Format(virtshimCompiledVersion())}, not {RequiredVersionText}";
        return null;
    }

    private static string Format(ulong v) => $"{v / 1_000_000}.{v / 1000 % 1000}.{v % 1000}";

    /// <summary>What the C daemons do first: translations and the error layer.</summary>
    public static bool Initialize()
    {
        return virGettextInitialize() >= 0 && virErrorInitialize() >= 0;
    }
}
