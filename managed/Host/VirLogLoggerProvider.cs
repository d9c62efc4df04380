using System.Collections.Concurrent;
using Libvirt.Util;
using Microsoft.Extensions.Logging;

namespace Libvirt.Host;

/// <summary>
/// Sends ILogger output through the daemon's logging implementation
/// (logging_impl: libvirt's virLog or the managed twin), so the daemon's
/// log_level, log_filters and log_outputs (and virt-admin's changes to
/// them) govern managed messages with libvirt's format. Categories are
/// libvirt source names for filters ("locking.lock_daemon").
/// </summary>
public sealed class VirLogLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentDictionary<string, VirLogLogger> _loggers = new();

    /// <summary>Where messages go: libvirt's logging until the daemon has
    /// read its config and chosen (<see cref="DaemonConfig.LoggingImpl"/>).</summary>
    public IVirLog Target { get; set; } = new VirLogNative();

    public ILogger CreateLogger(string categoryName)
        => _loggers.GetOrAdd(categoryName, static (name, self) => new VirLogLogger(self, VirLogSources.Get(name)), this);

    public void Dispose() { }

    private sealed class VirLogLogger(VirLogLoggerProvider provider, VirLogSource source) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        // the filters of the implementation decide, per source, without allocating
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && provider.Target.IsEnabled(source, Priority(logLevel));

        private static VirLogPriority Priority(LogLevel logLevel) => logLevel switch
        {
            LogLevel.Trace or LogLevel.Debug => VirLogPriority.Debug,
            LogLevel.Information => VirLogPriority.Info,
            LogLevel.Warning => VirLogPriority.Warn,
            _ => VirLogPriority.Error,
        };

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            var target = provider.Target;
            var priority = Priority(logLevel);
            if (logLevel == LogLevel.None || !target.IsEnabled(source, priority))
                return;
            string text = formatter(state, exception);
            if (exception is not null)
                text += ": " + exception;
            // ILogger has no line: "FUNC:0" with the event's name as the function
            target.Message(source, priority, "managed", 0, eventId.Name ?? "", text);
        }
    }
}
