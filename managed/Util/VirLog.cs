namespace Libvirt.Util;

/// <summary>virLogPriority: a message is emitted when its priority is at
/// least its source's (filter or default) and the output's.</summary>
public enum VirLogPriority
{
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// <summary>
/// Where a message comes from (libvirt's virLogSource: "locking.lock_daemon",
/// "util.log", ...). Keep one per name: the implementation caches the
/// priority the filters give it here, so a message below the threshold is
/// dropped without allocating.
/// </summary>
public sealed class VirLogSource(string name)
{
    public string Name { get; } = name;

    // (generation << 8) | priority, written as one value so a reader never
    // sees the priority of one filter set with the generation of another.
    internal long Cached;
}

/// <summary>
/// The logging contract (libvirt's src/util/virlog.c): the default
/// priority, filters ("3:util 1:+rpc"), outputs ("1:file:/path 3:stderr
/// 2:journald 1:syslog:tag"), their canonical text (what virt-admin's
/// daemon-log-filters/-outputs print), and message emission. Strings use
/// libvirt 9.0.0's syntax; errors are values with libvirt's code, domain and
/// message.
/// </summary>
public interface IVirLog : IDisposable
{
    /// <summary>"native" or "managed", as the logging_impl key names it.</summary>
    string Name { get; }

    /// <summary>virLogReset: no filters, no outputs, the default priority (warning).</summary>
    VirResult Reset();

    VirLogPriority DefaultPriority { get; }

    /// <summary>virLogSetDefaultPriority: 1..4, anything else is an error.</summary>
    VirResult SetDefaultPriority(int priority);

    /// <summary>virLogSetFilters: replaces every filter; null or "" leaves none.</summary>
    VirResult SetFilters(string? filters);

    /// <summary>virLogSetOutputs: replaces every output; null or "" means the
    /// default output (<see cref="DefaultOutput"/>), or nothing while there is none.</summary>
    VirResult SetOutputs(string? outputs);

    /// <summary>virLogGetFilters: "P:*match* " for each filter (the stored,
    /// starred match, each followed by a space); "" when there are none.</summary>
    string GetFilters();

    /// <summary>virLogGetOutputs: "P:dest[:name]" joined by spaces.</summary>
    VirResult<string> GetOutputs();

    int FilterCount { get; }
    int OutputCount { get; }

    /// <summary>virLogGetDefaultOutput: what an empty output set means, once
    /// <see cref="SetDefaultOutput"/> decided it.</summary>
    string? DefaultOutput { get; }

    /// <summary>virLogSetDefaultOutput: journald, a file under the log or
    /// cache directory, or stderr, from how the daemon runs.</summary>
    VirResult SetDefaultOutput(string binary, bool godaemon, bool privileged);

    /// <summary>virDaemonSetupLogging: the config's log_level, log_filters
    /// and log_outputs, then LIBVIRT_DEBUG / LIBVIRT_LOG_FILTERS /
    /// LIBVIRT_LOG_OUTPUTS, then --verbose, then the default output if none.</summary>
    VirResult SetupDaemon(string name, uint logLevel, string? filters, string? outputs,
        bool privileged, bool verbose, bool godaemon);

    /// <summary>False when a message of <paramref name="priority"/> from
    /// <paramref name="source"/> would be dropped by the filters or default
    /// priority (without allocating). True may still be dropped by every
    /// output's own priority (and the native adapter, which cannot ask
    /// libvirt, always says true).</summary>
    bool IsEnabled(VirLogSource source, VirLogPriority priority);

    /// <summary>virLogMessage: to every output whose priority it reaches
    /// (stderr when there is none), after the filter check. A null
    /// <paramref name="function"/> leaves "FUNC:LINE : " out of the line.</summary>
    void Message(VirLogSource source, VirLogPriority priority, string? file, int line, string? function, string message);
}
