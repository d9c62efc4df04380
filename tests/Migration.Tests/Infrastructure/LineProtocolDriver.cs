namespace Libvirt.Tests.Infrastructure;

/// <summary>
/// A test helper program (tests/LockClient "lockclient", tests/LogClient "logclient") started INSIDE a
/// <see cref="Sandbox"/> and driven over a stdin line protocol: it prints "ready &lt;pid&gt;", then answers each
/// command line with one line ("ok ..." or "err MESSAGE"). Every wait is bounded.
/// </summary>
public abstract class LineProtocolDriver
{
    private int _consumed; // complete stdout lines already handed out ("ready" included)

    public SandboxProcess Process { get; }
    public int Pid { get; private set; }
    /// <summary>The helper's name in messages: "lockclient" / "logclient".</summary>
    protected string Tool { get; }

    protected LineProtocolDriver(SandboxProcess process, string tool)
    {
        Process = process;
        Tool = tool;
    }

    /// <summary>tests/&lt;project&gt;/bin/{Release,Debug}/net10.0/&lt;exe&gt;; throws (failing the test) if neither is built.</summary>
    protected static string FindBinary(string project, string exe)
    {
        foreach (var cfg in new[] { "Release", "Debug" })
        {
            var p = Path.Combine(DaemonPaths.RepoRoot, "tests", project, "bin", cfg, "net10.0", exe);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException(
            $"{exe} not found under tests/{project}/bin/{{Release,Debug}}/net10.0 (build it: dotnet build Migration.sln -c Release)");
    }

    /// <summary>Wait (bounded) for "ready &lt;pid&gt;" from a freshly started <paramref name="driver"/>.</summary>
    protected static async Task<T> WaitReadyAsync<T>(T driver) where T : LineProtocolDriver
    {
        var first = await driver.NextLineAsync(TimeSpan.FromSeconds(20));
        if (!first.StartsWith("ready "))
            throw new InvalidOperationException($"{driver.Tool} did not start: '{first}' stderr=[{driver.Process.Stderr}]");
        driver.Pid = int.Parse(first["ready ".Length..]);
        return driver;
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
                throw new InvalidOperationException($"{Tool} exited ({Process.ExitCode}) before replying. stdout=[{text}] stderr=[{Process.Stderr}]");
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{Tool}: no reply within {timeout}. stdout=[{text}] stderr=[{Process.Stderr}]");
            await Task.Delay(5);
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
            throw new Xunit.Sdk.XunitException($"{Tool} '{line}' failed: {r}");
        return r.Length > 2 ? r[3..] : "";
    }

    /// <summary>Send a command that must fail; returns the message after "err ".</summary>
    public async Task<string> ErrAsync(string line)
    {
        var r = await CommandAsync(line);
        if (!r.StartsWith("err "))
            throw new Xunit.Sdk.XunitException($"{Tool} '{line}' unexpectedly succeeded: {r}");
        return r[4..];
    }

    /// <summary>"quit", close stdin and wait (bounded) for the exit; nothing if it already exited.</summary>
    public async Task QuitAsync()
    {
        if (!Process.IsRunning) return;
        await OkAsync("quit");
        Process.CloseStdin();
        await Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
    }
}
