using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.LockClient;

/// <summary>
/// tests/LockClient ("lockclient"): libvirt's own lock client (virLockManager* from libvirt.so.0 loading
/// lock-driver/lockd.so) driven over a stdin line protocol. It always runs INSIDE the daemon's sandbox
/// (it connects to /run/libvirt/virtlockd-sock) and registers its own pid as the lease owner, so the
/// process the daemon may SIGTERM is the lockclient, never the test runner.
/// </summary>
public sealed class LockClientDriver : LineProtocolDriver
{
    private LockClientDriver(SandboxProcess p) : base(p, "lockclient") { }

    public static string BinaryPath => FindBinary("LockClient", "lockclient");

    public static string RandomUuidHex() => Convert.ToHexString(Guid.NewGuid().ToByteArray());

    /// <summary>Start an interactive lockclient inside <paramref name="sb"/> and wait (bounded) for "ready &lt;pid&gt;".</summary>
    public static Task<LockClientDriver> StartAsync(Sandbox sb, string name, int id, string? configDir = null, string? uuidHex = null)
    {
        var args = new List<string> { "--name", name, "--id", id.ToString(), "--uuid", uuidHex ?? RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        return WaitReadyAsync(new LockClientDriver(sb.StartInside(BinaryPath, args, description: $"lockclient[{name}]")));
    }

    /// <summary>Run lockclient's bench mode inside the sandbox to completion (bounded).</summary>
    public static Task<ProcessResult> BenchAsync(Sandbox sb, string disk, int cycles, string? configDir = null)
    {
        var args = new List<string> { "bench", "--disk", disk, "--cycles", cycles.ToString(), "--name", "bench", "--id", "7",
            "--uuid", RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        return sb.RunInsideAsync(BinaryPath, args, TimeSpan.FromSeconds(60));
    }
}
