using Libvirt.Rpc;
using Microsoft.Extensions.Hosting;

namespace Libvirt.Host;

/// <summary>
/// The host's lifetime when libvirt's virNetDaemon owns the process signals
/// (SIGINT, SIGQUIT, SIGTERM, SIGUSR1), as it does in the C daemons. .NET's
/// console lifetime would register its own handlers for the same signals
/// and the last sigaction wins, so it is replaced by this one, which only
/// follows the native event loop: when virNetDaemonRun returns, the host stops.
/// </summary>
public sealed class NativeDaemonLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Runs the daemon's loop (libvirt's or the managed core's) for the host's lifetime.</summary>
public sealed class NativeDaemonService(IVirNetDaemon daemon, IHostApplicationLifetime lifetime) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await daemon.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        // A stop requested from managed code (not a signal): wake the loop.
        daemon.Quit();
        return base.StopAsync(cancellationToken);
    }
}
