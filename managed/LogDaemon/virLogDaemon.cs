namespace Libvirt.LogDaemon;

/// <summary>
/// virtlogd's state (log_daemon.c's virLogDaemon): whether it runs
/// privileged and its log handler. libvirt's client callbacks reach it
/// through their opaque, and procedures through the client's private data.
/// </summary>
public sealed class virLogDaemon(bool privileged)
{
    public bool Privileged { get; } = privileged;

    /// <summary>Made once the servers exist (it watches pipes on the loop).</summary>
    public virLogHandler Handler { get; set; } = null!;

    /// <summary>The log manager program's procedures, whichever RPC layer serves them.</summary>
    public virLogManagerProtocolDispatch Procedures { get; } = new();
}
