using System.Diagnostics;
using System.Net.Sockets;

namespace Libvirt.Tests.Infrastructure;

public enum DaemonKind
{
    /// <summary>The reference C daemon, /usr/sbin/&lt;name&gt;.</summary>
    C,
    /// <summary>Our drop-in, &lt;repo&gt;/artifacts/bin/&lt;name&gt; (or $VIRTLOCKD_MANAGED / $VIRTLOGD_MANAGED),
    /// every subsystem native (the default configuration).</summary>
    Managed,
    /// <summary>Ours with event_loop_impl = "managed" alone.</summary>
    ManagedLoop,
    /// <summary>Ours with the daemon's storage twin alone: lock_space_impl (virtlockd) or rotating_file_impl (virtlogd) = "managed".</summary>
    ManagedStore,
    /// <summary>Ours with every subsystem managed but the RPC layer (libvirt's virNetServer serves).</summary>
    ManagedAll,
    /// <summary>Ours served by the managed RPC core (rpc_impl = "managed", which needs event_loop_impl = "managed"),
    /// with the storage twin and managed logging too: every subsystem managed, no virNetDaemon or virNetServer of
    /// libvirt's in the process.</summary>
    ManagedRpc,
    /// <summary>The C daemon, /usr/sbin/&lt;name&gt;, with &lt;repo&gt;/artifacts/lib/libvirt-managed.so preloaded
    /// (bottom-up): its lock space, rotating file and event loop are the managed twins. Expected to behave as
    /// <see cref="C"/> in every respect.</summary>
    CPreloaded,
}

/// <summary>Our configurations, as the <c>*_impl</c> keys of the daemon's config file select them.</summary>
public static class DaemonKindExtensions
{
    /// <summary>Our daemon (a C daemon with the managed twins preloaded is still the C daemon).</summary>
    public static bool IsOurs(this DaemonKind kind) => kind is not (DaemonKind.C or DaemonKind.CPreloaded);

    /// <summary>The config-file lines that select <paramref name="kind"/>'s implementations ("" for C and the default).</summary>
    public static string ImplConfig(this DaemonKind kind, DaemonName name)
    {
        string store = name == DaemonName.Virtlogd ? "rotating_file_impl" : "lock_space_impl";
        return kind switch
        {
            DaemonKind.ManagedLoop => "event_loop_impl = \"managed\"\n",
            DaemonKind.ManagedStore => $"{store} = \"managed\"\n",
            DaemonKind.ManagedAll => $"event_loop_impl = \"managed\"\nlogging_impl = \"managed\"\n{store} = \"managed\"\n",
            DaemonKind.ManagedRpc => $"event_loop_impl = \"managed\"\nlogging_impl = \"managed\"\nrpc_impl = \"managed\"\n{store} = \"managed\"\n",
            _ => "",
        };
    }
}

/// <summary>Which daemon a <see cref="DaemonProcess"/> runs. Existing APIs without a name mean <see cref="Virtlockd"/>.</summary>
public enum DaemonName
{
    Virtlockd,
    Virtlogd,
}

public static class DaemonPaths
{
    public const string CVirtlockd = "/usr/sbin/virtlockd";
    public const string CVirtlogd = "/usr/sbin/virtlogd";
    public const string ManagedEnvVar = "VIRTLOCKD_MANAGED";
    public const string ManagedVirtlogdEnvVar = "VIRTLOGD_MANAGED";
    public const string RepoRootEnvVar = "MIGRATION_REPO_ROOT";

    public const string DefaultSocket = "/run/libvirt/virtlockd-sock";
    public const string DefaultAdminSocket = "/run/libvirt/virtlockd-admin-sock";
    public const string DefaultPidFile = "/run/virtlockd.pid";

    public const string VirtlogdSocket = "/run/libvirt/virtlogd-sock";
    public const string VirtlogdAdminSocket = "/run/libvirt/virtlogd-admin-sock";
    public const string VirtlogdPidFile = "/run/virtlogd.pid";

    /// <summary>Executable name: "virtlockd" / "virtlogd".</summary>
    public static string ExeName(DaemonName name) => name switch
    {
        DaemonName.Virtlockd => "virtlockd",
        DaemonName.Virtlogd => "virtlogd",
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    public static string Socket(DaemonName name) => name == DaemonName.Virtlogd ? VirtlogdSocket : DefaultSocket;
    public static string AdminSocket(DaemonName name) => name == DaemonName.Virtlogd ? VirtlogdAdminSocket : DefaultAdminSocket;
    public static string PidFile(DaemonName name) => name == DaemonName.Virtlogd ? VirtlogdPidFile : DefaultPidFile;
    public static string ManagedEnv(DaemonName name) => name == DaemonName.Virtlogd ? ManagedVirtlogdEnvVar : ManagedEnvVar;

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

    public const string ExportLibraryEnvVar = "LIBVIRT_MANAGED_SO";

    /// <summary>The bottom-up library, &lt;repo&gt;/artifacts/lib/libvirt-managed.so (or $LIBVIRT_MANAGED_SO).</summary>
    public static string ExportLibrary =>
        Environment.GetEnvironmentVariable(ExportLibraryEnvVar) is { Length: > 0 } e
            ? e
            : Path.Combine(RepoRoot, "artifacts", "lib", "libvirt-managed.so");

    /// <summary>The environment that preloads <see cref="ExportLibrary"/> (what a packager's systemd drop-in sets).</summary>
    public static Dictionary<string, string?> PreloadEnv() => new() { ["LD_PRELOAD"] = ExportLibrary };

    /// <summary>
    /// The C daemon's binary for <paramref name="kind"/>: /usr/sbin/&lt;name&gt; for both C kinds, where
    /// <see cref="Binary(DaemonName, DaemonKind)"/> gives <see cref="DaemonKind.CPreloaded"/>'s wrapper.
    /// </summary>
    public static string Executable(DaemonName name, DaemonKind kind)
        => kind == DaemonKind.CPreloaded ? "/usr/sbin/" + ExeName(name) : Binary(name, kind);

    /// <summary>The argv[0] the daemon started from <see cref="Binary(DaemonName, DaemonKind)"/> sees (and prints
    /// in usage and version texts): that path, but /usr/sbin/&lt;name&gt; for <see cref="DaemonKind.CPreloaded"/>,
    /// whose wrapper execs the C daemon by that name.</summary>
    public static string Argv0(DaemonName name, DaemonKind kind) => Executable(name, kind);

    /// <summary>
    /// <see cref="DaemonKind.CPreloaded"/>'s "binary": a script that exports LD_PRELOAD and execs the C daemon
    /// as /usr/sbin/&lt;name&gt;, so every way a test starts a daemon of a kind (directly, -d, under setpriv,
    /// socket activation) starts it preloaded, and the daemon's own exec-restart (argv[0], environment
    /// inherited) stays preloaded. Written once per test run under .build/preload/.
    /// </summary>
    private static string PreloadWrapper(DaemonName name)
    {
        var dir = Path.Combine(RepoRoot, ".build", "preload");
        var path = Path.Combine(dir, ExeName(name));
        var text = "#!/bin/sh\n# DaemonKind.CPreloaded (tests): the C daemon with the managed twins preloaded\n" +
                   $"LD_PRELOAD='{ExportLibrary}'\nexport LD_PRELOAD\nexec /usr/sbin/{ExeName(name)} \"$@\"\n";
        if (File.Exists(path) && File.ReadAllText(path) == text)
            return path;
        Directory.CreateDirectory(dir);
        var tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}";
        File.WriteAllText(tmp, text);
        File.SetUnixFileMode(tmp, (UnixFileMode)0b111_101_101);
        File.Move(tmp, path, overwrite: true); // atomic: parallel tests never see half a script
        return path;
    }

    /// <summary>Path the virtlockd binary for <paramref name="kind"/> would have (no existence check).</summary>
    public static string ExpectedBinary(DaemonKind kind) => ExpectedBinary(DaemonName.Virtlockd, kind);

    /// <summary>Path the <paramref name="name"/> binary for <paramref name="kind"/> would have (no existence check).</summary>
    public static string ExpectedBinary(DaemonName name, DaemonKind kind) => kind switch
    {
        DaemonKind.C => "/usr/sbin/" + ExeName(name),
        DaemonKind.CPreloaded => Path.Combine(RepoRoot, ".build", "preload", ExeName(name)),
        _ => Environment.GetEnvironmentVariable(ManagedEnv(name)) is { Length: > 0 } e
            ? e
            : Path.Combine(RepoRoot, "artifacts", "bin", ExeName(name)),
    };

    /// <summary>virtlockd binary for <paramref name="kind"/>; throws (failing the test, never skipping) if missing.</summary>
    public static string Binary(DaemonKind kind) => Binary(DaemonName.Virtlockd, kind);

    /// <summary>Binary for <paramref name="name"/>/<paramref name="kind"/>; throws (failing the test, never skipping) if missing.</summary>
    public static string Binary(DaemonName name, DaemonKind kind)
    {
        if (kind == DaemonKind.CPreloaded)
        {
            if (!File.Exists(ExportLibrary))
                throw new FileNotFoundException($"{ExportLibrary} not found: run ./build.sh publish (or set ${ExportLibraryEnvVar}).", ExportLibrary);
            Binary(name, DaemonKind.C);
            return PreloadWrapper(name);
        }
        var p = ExpectedBinary(name, kind);
        var exe = ExeName(name);
        if (!File.Exists(p))
            throw new FileNotFoundException(kind.IsOurs()
                ? $"Managed {exe} binary not found at '{p}'. Build/publish it to <repo>/artifacts/bin/{exe} or set ${ManagedEnv(name)}."
                : $"C {exe} not found at '{p}'.", p);
        return p;
    }
}

/// <summary>
/// A virtlockd or virtlogd (C or managed) running inside a <see cref="Sandbox"/>. Arguments are passed verbatim;
/// if <c>configText</c> is given it is written to the sandbox temp dir and passed as <c>-f &lt;file&gt;</c>
/// (before the other args).
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    public Sandbox Sandbox { get; }
    public DaemonKind Kind { get; }
    public DaemonName Name { get; }
    public string BinaryPath { get; }
    public SandboxProcess Process { get; }
    public string? ConfigPath { get; }
    public IReadOnlyList<string> Arguments { get; }

    public int Pid => Process.Pid;
    public bool IsRunning => Process.IsRunning;
    public string Stdout => Process.Stdout;
    public string Stderr => Process.Stderr;

    /// <summary>Protocol socket (lock or log, per <see cref="Name"/>) as seen by the test process.</summary>
    public string SocketHostPath => Sandbox.HostPath(DaemonPaths.Socket(Name));
    public string AdminSocketHostPath => Sandbox.HostPath(DaemonPaths.AdminSocket(Name));
    /// <summary>Default pid file path inside the sandbox for this daemon.</summary>
    public string DefaultPidFile => DaemonPaths.PidFile(Name);

    private DaemonProcess(Sandbox sb, DaemonName name, DaemonKind kind, string bin, SandboxProcess p, string? cfg, IReadOnlyList<string> args)
    {
        Sandbox = sb; Name = name; Kind = kind; BinaryPath = bin; Process = p; ConfigPath = cfg; Arguments = args;
    }

    /// <summary>Start virtlockd.</summary>
    public static DaemonProcess Start(Sandbox sandbox, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null)
        => Start(sandbox, DaemonName.Virtlockd, kind, args, configText, env);

    /// <summary>Start <paramref name="name"/> (virtlockd or virtlogd).</summary>
    public static DaemonProcess Start(Sandbox sandbox, DaemonName name, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null)
    {
        var bin = DaemonPaths.Binary(name, kind);
        var exe = DaemonPaths.ExeName(name);
        var all = new List<string>();
        string? cfg = null;
        var rest = args?.ToList() ?? [];
        // our configurations: their *_impl keys join whatever config the test gives
        string impl = kind.ImplConfig(name);
        if (impl.Length > 0 && configText == null)
        {
            int f = rest.FindIndex(a => a is "-f" or "--config");
            if (f >= 0 && f + 1 < rest.Count && File.Exists(rest[f + 1]))
            {
                configText = File.ReadAllText(rest[f + 1]);
                rest.RemoveRange(f, 2);
            }
            else if (f < 0)
                configText = "";
        }
        if (configText != null)
        {
            cfg = sandbox.WriteTempFile($"{exe}-{Guid.NewGuid():N}.conf", configText + (configText.EndsWith('\n') || configText.Length == 0 ? "" : "\n") + impl);
            all.Add("-f");
            all.Add(cfg);
        }
        all.AddRange(rest);
        var p = sandbox.StartInside(bin, all, env, $"{exe}[{kind}]");
        p.CloseStdin();
        return new DaemonProcess(sandbox, name, kind, bin, p, cfg, all);
    }

    /// <summary>Start virtlockd and wait (bounded) until the default lock socket accepts connections.</summary>
    public static Task<DaemonProcess> StartAndWaitAsync(Sandbox sandbox, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
        => StartAndWaitAsync(sandbox, DaemonName.Virtlockd, kind, args, configText, env, timeout);

    /// <summary>Start <paramref name="name"/> and wait (bounded) until its default protocol socket accepts connections.</summary>
    public static async Task<DaemonProcess> StartAndWaitAsync(Sandbox sandbox, DaemonName name, DaemonKind kind, IEnumerable<string>? args = null,
        string? configText = null, IDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var d = Start(sandbox, name, kind, args, configText, env);
        try
        {
            await d.WaitForSocketAsync(DaemonPaths.Socket(name), timeout ?? TimeSpan.FromSeconds(15));
            // every theory run as CPreloaded really ran the C daemon on the twins, not the C daemon alone
            if (kind == DaemonKind.CPreloaded && !d.MapsExportLibrary())
                throw new InvalidOperationException($"{kind} daemon (pid {d.Pid}) does not map {DaemonPaths.ExportLibrary}");
            // and every one run as ManagedRpc had no libvirt in the process (checked again when it stops)
            if (kind == DaemonKind.ManagedRpc && d.MappedLibvirtLibraries() is { Count: > 0 } libs)
                throw new InvalidOperationException($"{kind} daemon (pid {d.Pid}) maps {string.Join(", ", libs)}");
        }
        catch
        {
            await d.DisposeAsync();
            throw;
        }
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

    /// <summary>The process has the bottom-up library mapped (it was preloaded).</summary>
    public bool MapsExportLibrary()
    {
        try
        {
            return File.ReadAllText($"/proc/{Pid}/maps").Contains(DaemonPaths.ExportLibrary, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>What a daemon with every subsystem managed never loads: libvirt0's library and the two
    /// libvirt.so.0 brings with it that the C shim used to link.</summary>
    public static readonly string[] LibvirtLibraries = ["/libvirt.so.0", "/libglib-2.0.so.0", "/libtirpc.so.3"];

    /// <summary>Which of <see cref="LibvirtLibraries"/> <paramref name="pid"/> maps (none when it is gone).</summary>
    public static List<string> MappedLibvirtLibraries(int pid)
    {
        string maps;
        try { maps = File.ReadAllText($"/proc/{pid}/maps"); }
        catch (IOException) { return []; }
        return maps.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
            .Where(path => LibvirtLibraries.Any(lib => path.Contains(lib, StringComparison.Ordinal))).Distinct().ToList();
    }

    public List<string> MappedLibvirtLibraries() => MappedLibvirtLibraries(Pid);

    /// <summary>Still our binary with the fully managed configuration (a handoff chain may have exec'd
    /// something else, or rewritten the config file for the next step).</summary>
    private bool RunsFullyManaged()
    {
        try
        {
            return Kind == DaemonKind.ManagedRpc && IsRunning && ConfigPath is not null &&
                   new FileInfo($"/proc/{Pid}/exe").LinkTarget == (new FileInfo(BinaryPath).ResolveLinkTarget(true)?.FullName ?? Path.GetFullPath(BinaryPath)) &&
                   File.ReadAllText(ConfigPath).Contains(Kind.ImplConfig(Name), StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>Lock protocol client (virtlockd only).</summary>
    public Task<LockProtocolClient> ConnectAsync(TimeSpan? timeout = null) => LockProtocolClient.ConnectAsync(SocketHostPath, timeout);
    public Task<RawRpcClient> ConnectRawAsync(TimeSpan? timeout = null) => RawRpcClient.ConnectAsync(SocketHostPath, timeout);

    /// <summary>Wait (bounded) for the daemon to exit on its own; returns its exit code. Throws TimeoutException.</summary>
    public Task<int> WaitForExitAsync(TimeSpan timeout) => Process.WaitForExitAsync(timeout);

    /// <summary>SIGTERM, bounded wait (default 5 s), then SIGKILL. Returns exit code (null if not reaped).</summary>
    public Task<int?> StopAsync(TimeSpan? grace = null) => Process.StopAsync(grace);

    public async ValueTask DisposeAsync()
    {
        // after whatever the test made it do, a fully managed daemon still has no libvirt in it
        var libs = RunsFullyManaged() ? MappedLibvirtLibraries() : [];
        await StopAsync(TimeSpan.FromSeconds(3));
        Process.Dispose();
        if (libs.Count > 0)
            throw new InvalidOperationException($"{Kind} daemon (pid {Pid}) mapped {string.Join(", ", libs)} by the end of the test");
    }
}
