using System.Diagnostics;
using System.Net.Sockets;

namespace Libvirt.Tests.Infrastructure;

public enum DaemonKind
{
    /// <summary>The reference C daemon, /usr/sbin/virtlockd.</summary>
    C,
    /// <summary>Our managed drop-in, &lt;repo&gt;/artifacts/bin/virtlockd (or $VIRTLOCKD_MANAGED).</summary>
    Managed,
}

public static class DaemonPaths
{
    public const string CVirtlockd = "/usr/sbin/virtlockd";
    public const string ManagedEnvVar = "VIRTLOCKD_MANAGED";
    public const string RepoRootEnvVar = "MIGRATION_REPO_ROOT";

    public const string DefaultSocket = "/run/libvirt/virtlockd-sock";
    public const string DefaultAdminSocket = "/run/libvirt/virtlockd-admin-sock";
    public const string DefaultPidFile = "/run/virtlockd.pid";

    private static readonly Lazy<string> s_repoRoot = new(() =>
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Migration.sln")))
                return d.FullName;
        // fallback for out-of-tree builds of the test sources
        if (Environment.GetEnvironmentVariable(RepoRootEnvVar) is { Length: > 0 } r && File.Exists(Path.Combine(r, "Migration.sln")))
            return r;
        throw new InvalidOperationException($"Migration.sln not found above {AppContext.BaseDirectory} (set ${RepoRootEnvVar} for out-of-tree builds)");
    });

    public static string RepoRoot => s_repoRoot.Value;

    /// <summary>Path the binary for <paramref name="kind"/> would have (no existence check).</summary>
    public static string ExpectedBinary(DaemonKind kind) => kind switch
    {
        DaemonKind.C => CVirtlockd,
        DaemonKind.Managed => Environment.GetEnvironmentVariable(ManagedEnvVar) is { Length: > 0 } e
            ? e
            : Path.Combine(RepoRoot, "artifacts", "bin", "virtlockd"),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Binary for <paramref name="kind"/>; throws (failing the test, never skipping) if missing.</summary>
    public static string Binary(DaemonKind kind)
    {
        var p = ExpectedBinary(kind);
        if (!File.Exists(p))
            throw new FileNotFoundException(kind == DaemonKind.Managed
                ? $"Managed virtlockd binary not found at '{p}'. Build/publish it to <repo>/artifacts/bin/virtlockd or set ${ManagedEnvVar}."
                : $"C virtlockd not found at '{p}'.", p);
        return p;
    }
}

/// <summary>
/// A virtlockd (C or managed) running inside a <see cref="Sandbox"/>. Arguments are passed verbatim;
/// if <c>configText</c> is given it is written to the sandbox temp dir and passed as <c>-f &lt;file&gt;</c>
/// (before the other args).
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    public Sandbox Sandbox { get; }
    public DaemonKind Kind { get; }
    public string BinaryPath { get; }
    public SandboxProcess Process { get; }
    public string? ConfigPath { get; }
    public IReadOnlyList<string> Arguments { get; }

    public int Pid => Process.Pid;
    public bool IsRunning => Process.IsRunning;
    public string Stdout => Process.Stdout;
    public string Stderr => Process.Stderr;

    /// <summary>Lock protocol socket as seen by the test process.</summary>
    public string SocketHostPath => Sandbox.HostPath(DaemonPaths.DefaultSocket);
    public string AdminSocketHostPath => Sandbox.HostPath(DaemonPaths.DefaultAdminSocket);

    private DaemonProcess(Sandbox sb, DaemonKind kind, string bin, SandboxProcess p, string? cfg, IReadOnlyList<string> args)
    {
        Sandbox = sb; Kind = kind; BinaryPath = bin; Process = p; ConfigPath = cfg; Arguments = args;
    }

    public static DaemonProcess Start(Sandbox sandbox, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null)
    {
        var bin = DaemonPaths.Binary(kind);
        var all = new List<string>();
        string? cfg = null;
        if (configText != null)
        {
            cfg = sandbox.WriteTempFile($"virtlockd-{Guid.NewGuid():N}.conf", configText);
            all.Add("-f");
            all.Add(cfg);
        }
        if (args != null) all.AddRange(args);
        var p = sandbox.StartInside(bin, all, env, $"virtlockd[{kind}]");
        p.CloseStdin();
        return new DaemonProcess(sandbox, kind, bin, p, cfg, all);
    }

    /// <summary>Start and wait (bounded) until the default lock socket accepts connections.</summary>
    public static async Task<DaemonProcess> StartAndWaitAsync(Sandbox sandbox, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var d = Start(sandbox, kind, args, configText, env);
        await d.WaitForSocketAsync(DaemonPaths.DefaultSocket, timeout ?? TimeSpan.FromSeconds(15));
        return d;
    }

    /// <summary>
    /// Wait until <paramref name="insidePath"/> (a path inside the sandbox, e.g. /run/libvirt/virtlockd-sock)
    /// exists and accepts a connection. Throws TimeoutException (with daemon stderr) or if the daemon exits.
    /// </summary>
    public async Task WaitForSocketAsync(string insidePath, TimeSpan timeout)
    {
        var host = Sandbox.HostPath(insidePath);
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < timeout)
        {
            if (!IsRunning)
                throw new InvalidOperationException($"{Kind} daemon exited (code {Process.ExitCode}) before socket {insidePath} was ready. stderr=[{Stderr}] stdout=[{Stdout}]");
            if (File.Exists(host))
            {
                try
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(host), cts.Token);
                    return;
                }
                catch (Exception e) { last = e; }
            }
            await Task.Delay(25);
        }
        throw new TimeoutException($"{Kind} daemon socket {insidePath} not ready within {timeout} ({last?.Message}). stderr=[{Stderr}]");
    }

    public Task<LockProtocolClient> ConnectAsync(TimeSpan? timeout = null) => LockProtocolClient.ConnectAsync(SocketHostPath, timeout);
    public Task<RawRpcClient> ConnectRawAsync(TimeSpan? timeout = null) => RawRpcClient.ConnectAsync(SocketHostPath, timeout);

    /// <summary>Wait (bounded) for the daemon to exit on its own; returns its exit code. Throws TimeoutException.</summary>
    public Task<int> WaitForExitAsync(TimeSpan timeout) => Process.WaitForExitAsync(timeout);

    /// <summary>SIGTERM, bounded wait (default 5 s), then SIGKILL. Returns exit code (null if not reaped).</summary>
    public Task<int?> StopAsync(TimeSpan? grace = null) => Process.StopAsync(grace);

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(3));
        Process.Dispose();
    }
}
