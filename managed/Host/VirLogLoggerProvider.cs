using Libvirt.Interop;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host;

/// <summary>
/// Sends ILogger output through libvirt's own log layer, so the daemon's
/// log_level, log_filters and log_outputs (and virt-admin's changes to
/// them) govern managed and native messages alike, with the same format.
/// Categories map to libvirt source names for filters ("locking.lock_daemon").
/// </summary>
public sealed class VirLogLoggerProvider : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new VirLogLogger(categoryName);

    public void Dispose() { }

    private sealed class VirLogLogger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        // libvirt applies its own priority filters per source.
        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public unsafe void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
            Func<TState, Exception?, string> formatter)
        {
            string text = formatter(state, exception);
            if (exception is not null)
                text += ": " + exception;
            int priority = logLevel switch
            {
                LogLevel.Trace or LogLevel.Debug => 1,   // VIR_LOG_DEBUG
                LogLevel.Information => 2,               // VIR_LOG_INFO
                LogLevel.Warning => 3,                   // VIR_LOG_WARN
                _ => 4,                                  // VIR_LOG_ERROR
            };
            using var cat = new NativeUtf8(category);
            using var fn = new NativeUtf8(eventId.Name ?? "");
            using var msg = new NativeUtf8(text);
            virtshimLogMessage(cat, priority, fn, msg);
        }
    }
}
