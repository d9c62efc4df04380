using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.LockClient;

/// <summary>Which lockd lock-driver plugin libvirt's lock manager loads in a lockclient.</summary>
public enum LockPlugin
{
    /// <summary>libvirt's own, /usr/lib/x86_64-linux-gnu/libvirt/lock-driver/lockd.so (its default directory).</summary>
    C,
    /// <summary>Ours, &lt;repo&gt;/artifacts/lib/lock-driver/lockd.so (or $LOCKD_PLUGIN_MANAGED), loaded through
    /// LIBVIRT_LOCK_MANAGER_PLUGIN_DIR as a packager would.</summary>
    Managed,
}

public static class LockPlugins
{
    public const string CPlugin = "/usr/lib/x86_64-linux-gnu/libvirt/lock-driver/lockd.so";
    public const string ManagedEnvVar = "LOCKD_PLUGIN_MANAGED";

    /// <summary>The lockd.so file of <paramref name="plugin"/>; throws (failing the test, never skipping) if missing.</summary>
    public static string File(LockPlugin plugin)
    {
        var p = plugin == LockPlugin.C
            ? CPlugin
            : Environment.GetEnvironmentVariable(ManagedEnvVar) is { Length: > 0 } e
                ? e
                : Path.Combine(DaemonPaths.RepoRoot, "artifacts", "lib", "lock-driver", "lockd.so");
        if (!System.IO.File.Exists(p))
            throw new FileNotFoundException(plugin == LockPlugin.C
                ? $"libvirt's lockd plugin not found at '{p}' (libvirt-daemon-driver-qemu? libvirt-daemon)"
                : $"Managed lockd plugin not found at '{p}': run ./build.sh publish (or set ${ManagedEnvVar}).", p);
        return p;
    }

    /// <summary>lockclient's arguments that load <paramref name="plugin"/>: none for libvirt's own (its default
    /// directory), --plugin-dir (LIBVIRT_LOCK_MANAGER_PLUGIN_DIR) for ours.</summary>
    public static IEnumerable<string> Args(LockPlugin plugin)
        => plugin == LockPlugin.C ? [] : ["--plugin-dir", Path.GetDirectoryName(File(plugin))!];
}

/// <summary>
/// tests/LockClient ("lockclient"): libvirt's own lock client (virLockManager* from libvirt.so.0 loading
/// a lockd.so, libvirt's or ours, <see cref="LockPlugin"/>) driven over a stdin line protocol. It always runs
/// INSIDE the daemon's sandbox (it connects to /run/libvirt/virtlockd-sock) and registers its own pid as the
/// lease owner, so the process the daemon may SIGTERM is the lockclient, never the test runner.
/// </summary>
public sealed class LockClientDriver : LineProtocolDriver
{
    private LockClientDriver(SandboxProcess p) : base(p, "lockclient") { }

    public static string BinaryPath => FindBinary("LockClient", "lockclient");

    public static string RandomUuidHex() => Convert.ToHexString(Guid.NewGuid().ToByteArray());

    /// <summary>Start an interactive lockclient inside <paramref name="sb"/> and wait (bounded) for "ready &lt;pid&gt;".</summary>
    public static Task<LockClientDriver> StartAsync(Sandbox sb, string name, int id, string? configDir = null, string? uuidHex = null,
        LockPlugin plugin = LockPlugin.C, IEnumerable<string>? extraArgs = null)
        => WaitReadyAsync(Start(sb, name, id, configDir, uuidHex, plugin, extraArgs));

    /// <summary>Start a lockclient without waiting for it (for starts that are meant to fail).</summary>
    public static LockClientDriver Start(Sandbox sb, string name, int id, string? configDir = null, string? uuidHex = null,
        LockPlugin plugin = LockPlugin.C, IEnumerable<string>? extraArgs = null)
    {
        var args = new List<string> { "--name", name, "--id", id.ToString(), "--uuid", uuidHex ?? RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        args.AddRange(LockPlugins.Args(plugin));
        if (extraArgs != null) args.AddRange(extraArgs);
        return new LockClientDriver(sb.StartInside(BinaryPath, args, description: $"lockclient[{name},{plugin}]"));
    }

    /// <summary>Run lockclient's bench mode inside the sandbox to completion (bounded).</summary>
    public static Task<ProcessResult> BenchAsync(Sandbox sb, string disk, int cycles, string? configDir = null, LockPlugin plugin = LockPlugin.C)
    {
        var args = new List<string> { "bench", "--disk", disk, "--cycles", cycles.ToString(), "--name", "bench", "--id", "7",
            "--uuid", RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        args.AddRange(LockPlugins.Args(plugin));
        return sb.RunInsideAsync(BinaryPath, args, TimeSpan.FromSeconds(60));
    }
}
