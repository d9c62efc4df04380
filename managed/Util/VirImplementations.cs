namespace Libvirt.Util;

/// <summary>
/// The implementations of each migratable subsystem by the name its
/// <c>*_impl</c> config key uses ("native": libvirt.so.0's; "managed": the
/// twin in this assembly). Daemons choose from here at start-up; the
/// contract suites run every implementation listed.
/// </summary>
public static class VirImplementations
{
    public const string Native = "native";
    public const string Managed = "managed";

    public static IReadOnlyList<string> Names { get; } = [Native, Managed];

    /// <summary>lock_space_impl; null for a name that is not an implementation.</summary>
    public static IVirLockSpaceFactory? LockSpace(string name) => name switch
    {
        Native => new VirLockSpaceNativeFactory(),
        Managed => new VirLockSpaceManagedFactory(),
        _ => null,
    };

    /// <summary>rotating_file_impl; null for a name that is not an implementation.</summary>
    public static IVirRotatingFileFactory? RotatingFile(string name) => name switch
    {
        Native => new VirRotatingFileNativeFactory(),
        Managed => new VirRotatingFileManagedFactory(),
        _ => null,
    };

    /// <summary>event_loop_impl; null for a name that is not an implementation.
    /// "native" is libvirt's default (glib) loop, registered with libvirt as a
    /// side effect; "managed" is a new, unregistered loop (libvirt uses it
    /// once given to <see cref="VirEventManagedRegistration.Register"/>).</summary>
    public static IVirEventLoop? EventLoop(string name) => name switch
    {
        Native => VirEventNative.Register(),
        Managed => new VirEventManaged(),
        _ => null,
    };

    /// <summary>logging_impl; null for a name that is not an implementation.
    /// "native" is libvirt.so.0's process-wide logging; "managed" a new,
    /// empty logging state of its own.</summary>
    public static IVirLog? Logging(string name) => name switch
    {
        Native => new VirLogNative(),
        Managed => new VirLogManaged(),
        _ => null,
    };
}
