using System.Text;
using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.LockClient;

/// <summary>
/// tests/LockClient ("lockclient"): libvirt's own lock client (virLockManager* from libvirt.so.0 loading
/// lock-driver/lockd.so) driven over a stdin line protocol. It always runs INSIDE the daemon's sandbox
/// (it connects to /run/libvirt/virtlockd-sock) and registers its own pid as the lease owner, so the
/// process the daemon may SIGTERM is the lockclient, never the test runner.
/// </summary>
public sealed class LockClientDriver
{
    private int _consumed; // complete stdout lines already handed out ("ready" included)

    public SandboxProcess Process { get; }
    public int Pid { get; private set; }

    private LockClientDriver(SandboxProcess p) => Process = p;

    public static string BinaryPath
    {
        get
        {
            foreach (var cfg in new[] { "Release", "Debug" })
            {
                var p = Path.Combine(DaemonPaths.RepoRoot, "tests", "LockClient", "bin", cfg, "net10.0", "lockclient");
                if (File.Exists(p)) return p;
            }
            throw new FileNotFoundException(
                "lockclient not found under tests/LockClient/bin/{Release,Debug}/net10.0 (build it: dotnet build Migration.sln -c Release)");
        }
    }

    public static string RandomUuidHex() => Convert.ToHexString(Guid.NewGuid().ToByteArray());

    /// <summary>Start an interactive lockclient inside <paramref name="sb"/> and wait (bounded) for "ready &lt;pid&gt;".</summary>
    public static async Task<LockClientDriver> StartAsync(Sandbox sb, string name, int id, string? configDir = null, string? uuidHex = null)
    {
        var args = new List<string> { "--name", name, "--id", id.ToString(), "--uuid", uuidHex ?? RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        var p = sb.StartInside(BinaryPath, args, description: $"lockclient[{name}]");
        var d = new LockClientDriver(p);
        var first = await d.NextLineAsync(TimeSpan.FromSeconds(20));
        if (!first.StartsWith("ready "))
            throw new InvalidOperationException($"lockclient did not start: '{first}' stderr=[{p.Stderr}]");
        d.Pid = int.Parse(first["ready ".Length..]);
        return d;
    }

    /// <summary>Run lockclient's bench mode inside the sandbox to completion (bounded).</summary>
    public static Task<ProcessResult> BenchAsync(Sandbox sb, string disk, int cycles, string? configDir = null)
    {
        var args = new List<string> { "bench", "--disk", disk, "--cycles", cycles.ToString(), "--name", "bench", "--id", "7",
            "--uuid", RandomUuidHex() };
        if (configDir != null) { args.Add("--config-dir"); args.Add(configDir); }
        return sb.RunInsideAsync(BinaryPath, args, TimeSpan.FromSeconds(60));
    }

    private async Task<string> NextLineAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var text = Process.Stdout;
            var lines = text.Split('\n');
            // lines[^1] is the unterminated remainder
            if (lines.Length - 1 > _consumed)
                return lines[_consumed++];
            if (!Process.IsRunning)
            {
                await Process.TryWaitForExitAsync(TimeSpan.FromSeconds(2));
                lines = Process.Stdout.Split('\n');
                if (lines.Length - 1 > _consumed) return lines[_consumed++];
                throw new InvalidOperationException($"lockclient exited ({Process.ExitCode}) before replying. stdout=[{text}] stderr=[{Process.Stderr}]");
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"lockclient: no reply within {timeout}. stdout=[{text}] stderr=[{Process.Stderr}]");
            await Task.Delay(10);
        }
    }

    /// <summary>Send one command and return its reply line ("ok ..." / "err MESSAGE").</summary>
    public async Task<string> CommandAsync(string line, TimeSpan? timeout = null)
    {
        await Process.WriteLineAsync(line);
        return await NextLineAsync(timeout ?? TimeSpan.FromSeconds(20));
    }

    /// <summary>Send a command that must succeed; returns the text after "ok" (trimmed).</summary>
    public async Task<string> OkAsync(string line)
    {
        var r = await CommandAsync(line);
        if (r != "ok" && !r.StartsWith("ok "))
            throw new Xunit.Sdk.XunitException($"lockclient '{line}' failed: {r}");
        return r.Length > 2 ? r[3..] : "";
    }

    /// <summary>Send a command that must fail; returns the message after "err ".</summary>
    public async Task<string> ErrAsync(string line)
    {
        var r = await CommandAsync(line);
        if (!r.StartsWith("err "))
            throw new Xunit.Sdk.XunitException($"lockclient '{line}' unexpectedly succeeded: {r}");
        return r[4..];
    }

    /// <summary>release, close, quit (orderly: release before closing the acquire fd), bounded.</summary>
    public async Task QuitAsync()
    {
        if (!Process.IsRunning) return;
        await OkAsync("quit");
        Process.CloseStdin();
        await Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
    }
}
