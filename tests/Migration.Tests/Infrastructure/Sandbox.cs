using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Libvirt.Tests.Infrastructure;

public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr);

internal static class Native
{
    public const int SIGTERM = 15;
    public const int SIGKILL = 9;

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    public static extern int Kill(int pid, int sig);

    /// <summary>True if a process with this pid exists (kill(pid, 0)); false if ESRCH.</summary>
    public static bool Exists(int pid) => Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() != 3;
}

/// <summary>
/// A process started by a <see cref="Sandbox"/> in its own session / process group (via setsid,
/// which execs in place, so Pid == pgid == the target program's pid). Stdout/stderr are captured
/// asynchronously. Every wait is bounded.
/// </summary>
public sealed class SandboxProcess : IDisposable
{
    private readonly Process _p;
    private readonly MemoryStream _out = new(), _err = new();
    private readonly Task _outPump, _errPump;

    public int Pid { get; }
    public Process Process => _p;
    public string Description { get; }

    internal SandboxProcess(ProcessStartInfo psi, string description)
    {
        Description = description;
        _p = Process.Start(psi) ?? throw new InvalidOperationException($"failed to start {description}");
        Pid = _p.Id;
        _outPump = Pump(_p.StandardOutput.BaseStream, _out);
        _errPump = Pump(_p.StandardError.BaseStream, _err);
    }

    private static Task Pump(Stream s, MemoryStream into) => Task.Run(async () =>
    {
        var buf = new byte[8192];
        try
        {
            int n;
            while ((n = await s.ReadAsync(buf)) > 0)
                lock (into) into.Write(buf, 0, n);
        }
        catch { /* process gone */ }
    });

    public string Stdout { get { lock (_out) return Encoding.UTF8.GetString(_out.ToArray()); } }
    public string Stderr { get { lock (_err) return Encoding.UTF8.GetString(_err.ToArray()); } }

    public bool IsRunning
    {
        get
        {
            try { return !_p.HasExited; } catch { return false; }
        }
    }

    public int? ExitCode => IsRunning ? null : _p.ExitCode;

    /// <summary>Write a line to stdin (process must have been started with stdin redirected).</summary>
    public async Task WriteLineAsync(string line)
    {
        await _p.StandardInput.WriteAsync(line + "\n");
        await _p.StandardInput.FlushAsync();
    }

    public void CloseStdin()
    {
        try { _p.StandardInput.Close(); } catch { }
    }

    /// <summary>Waits (bounded) for a stdout line matching <paramref name="predicate"/>; returns that line.</summary>
    public async Task<string> WaitForStdoutLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            foreach (var line in Stdout.Split('\n'))
                if (predicate(line)) return line;
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"{Description}: expected stdout line not seen within {timeout}. stdout=[{Stdout}] stderr=[{Stderr}]");
            if (!IsRunning)
            {
                await DrainAsync(TimeSpan.FromSeconds(1));
                foreach (var line in Stdout.Split('\n'))
                    if (predicate(line)) return line;
                throw new InvalidOperationException($"{Description}: exited ({ExitCode}) before expected stdout line. stdout=[{Stdout}] stderr=[{Stderr}]");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Waits (bounded) for exit; returns the exit code (128+signal if killed). Throws TimeoutException.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{Description} (pid {Pid}) did not exit within {timeout}. stderr=[{Stderr}]");
        }
        await DrainAsync(TimeSpan.FromSeconds(2));
        return _p.ExitCode;
    }

    /// <summary>Waits (bounded) for exit; returns false on timeout instead of throwing.</summary>
    public async Task<bool> TryWaitForExitAsync(TimeSpan timeout)
    {
        try { await WaitForExitAsync(timeout); return true; }
        catch (TimeoutException) { return false; }
    }

    private async Task DrainAsync(TimeSpan timeout)
    {
        await Task.WhenAny(Task.WhenAll(_outPump, _errPump), Task.Delay(timeout));
    }

    /// <summary>Send a signal to the process only.</summary>
    public void Signal(int sig)
    {
        if (IsRunning) Native.Kill(Pid, sig);
    }

    /// <summary>Send a signal to the whole process group (pgid == Pid).</summary>
    public void SignalGroup(int sig)
    {
        Native.Kill(-Pid, sig);
    }

    /// <summary>SIGTERM, bounded wait, then SIGKILL the group. Returns the exit code, or null if it could not be reaped.</summary>
    public async Task<int?> StopAsync(TimeSpan? grace = null)
    {
        if (IsRunning)
        {
            Signal(Native.SIGTERM);
            if (await TryWaitForExitAsync(grace ?? TimeSpan.FromSeconds(5)))
            {
                SignalGroup(Native.SIGKILL); // leftovers in the group, if any
                return _p.ExitCode;
            }
        }
        SignalGroup(Native.SIGKILL);
        return await TryWaitForExitAsync(TimeSpan.FromSeconds(5)) ? _p.ExitCode : null;
    }

    /// <summary>SIGKILL the group and wait (bounded).</summary>
    public void Kill()
    {
        SignalGroup(Native.SIGKILL);
        try { _p.WaitForExit(5000); } catch { }
    }

    public void Dispose()
    {
        Kill();
        _p.Dispose();
    }
}

/// <summary>
/// An isolated mount namespace with a private tmpfs on /run (and /run/libvirt created), held open
/// by a "holder" process. Commands run inside via nsenter; the test process reaches files inside via
/// /proc/&lt;holder&gt;/root/&lt;path&gt; (see <see cref="HostPath"/>). A per-sandbox temp dir under /tmp
/// is visible from both sides. Dispose kills every process group it started (bounded waits).
/// </summary>
public sealed class Sandbox : IAsyncDisposable, IDisposable
{
    private readonly List<SandboxProcess> _processes = new();
    private readonly SandboxProcess _holder;
    private bool _disposed;
    /// <summary>nsenter's namespace options for <see cref="StartInside"/>: the mount namespace, or every
    /// namespace of a container (<see cref="EnterAsync"/>).</summary>
    private readonly string[] _namespaces = ["-m"];
    private readonly bool _ownsTempDir = true;

    public int HolderPid => _holder.Pid;

    /// <summary>The process whose namespaces are "inside": the holder, or a container's PID 1.</summary>
    private int TargetPid => _target ?? _holder.Pid;
    private readonly int? _target;

    /// <summary>Root of the sandbox's filesystem as seen from the test process: /proc/&lt;holder&gt;/root.</summary>
    public string Root => $"/proc/{TargetPid}/root";

    /// <summary>Per-sandbox temp directory (same path inside and outside the sandbox).</summary>
    public string TempDir { get; }

    private Sandbox(SandboxProcess holder, string tempDir)
    {
        _holder = holder;
        TempDir = tempDir;
    }

    private Sandbox(SandboxProcess holder, string tempDir, string[] namespaces, bool ownsTempDir, int target)
        : this(holder, tempDir)
    {
        _namespaces = namespaces;
        _ownsTempDir = ownsTempDir;
        _target = target;
    }

    /// <summary>
    /// A sandbox that is a running container: programs started inside enter every namespace of process
    /// <paramref name="pid"/> (its PID 1), so a lease holder's pid is one the container's daemons can see.
    /// <paramref name="tempDir"/> is a directory at the same path inside and outside (bound into the container);
    /// it is not deleted on Dispose (its owner does that).
    /// </summary>
    public static async Task<Sandbox> EnterAsync(int pid, string tempDir, TimeSpan? timeout = null)
    {
        string[] ns = ["-m", "-u", "-i", "-p"];
        var psi = MakePsi("nsenter", ["-t", pid.ToString(), .. ns, "--", "sh", "-c", "echo ready && exec sleep 3600"], null, false);
        // the holder only proves the namespaces can be entered (nsenter's own pid stays outside the pid
        // namespace): programs enter those of the container's PID 1 itself
        var holder = new SandboxProcess(psi, $"holder in the namespaces of pid {pid}");
        var sb = new Sandbox(holder, tempDir, ns, ownsTempDir: false, target: pid);
        try
        {
            await holder.WaitForStdoutLineAsync(l => l.Trim() == "ready", timeout ?? TimeSpan.FromSeconds(10));
            return sb;
        }
        catch
        {
            sb.Dispose();
            throw;
        }
    }

    /// <param name="setup">shell commands run inside the new namespace once /run is mounted, before "ready"</param>
    /// <summary>
    /// A /dev of the sandbox's own (tmpfs with the usual character devices):
    /// a daemon told to write a log to /dev/null may rotate or truncate it,
    /// which unlinks the node, and that must never be the host's /dev/null.
    /// </summary>
    private const string PrivateDev =
        "mount -t tmpfs -o mode=755,nosuid tmpfs /dev && " +
        "for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do " +
        "mknod -m 666 \"/dev/${n%%:*}\" c \"$(echo $n | cut -d: -f2)\" \"${n##*:}\"; done && " +
        "ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/0 /dev/stdin && ln -s /proc/self/fd/1 /dev/stdout && " +
        "ln -s /proc/self/fd/2 /dev/stderr && mkdir -p /dev/shm /dev/pts";

    public static async Task<Sandbox> CreateAsync(TimeSpan? timeout = null, string? setup = null)
    {
        var tmp = Directory.CreateTempSubdirectory("vlt-sandbox-").FullName;
        if (!tmp.StartsWith("/tmp/"))
        {
            Directory.Delete(tmp, true);
            tmp = Path.Combine("/tmp", "vlt-sandbox-" + Guid.NewGuid().ToString("N")[..12]);
            Directory.CreateDirectory(tmp);
        }
        var psi = MakePsi("unshare", ["-m", "--propagation", "private", "--", "sh", "-c",
            "mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt && " + PrivateDev + " && " +
            (setup is null ? "" : $"{{ {setup}; }} && ") + "echo ready && exec sleep 3600"], null, false);
        var holder = new SandboxProcess(psi, "sandbox holder");
        var sb = new Sandbox(holder, tmp);
        try
        {
            await holder.WaitForStdoutLineAsync(l => l.Trim() == "ready", timeout ?? TimeSpan.FromSeconds(10));
            // the holder exec'd `sleep`; its root must now show the private /run/libvirt
            var sw = Stopwatch.StartNew();
            while (!Directory.Exists(sb.HostPath("/run/libvirt")))
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(5)) throw new TimeoutException("sandbox /run/libvirt not visible");
                await Task.Delay(10);
            }
            return sb;
        }
        catch
        {
            sb.Dispose();
            throw;
        }
    }

    /// <summary>Map an absolute path inside the sandbox to a path usable by the test process.</summary>
    public string HostPath(string insidePath)
    {
        if (!insidePath.StartsWith('/')) throw new ArgumentException("absolute path required", nameof(insidePath));
        return Root + insidePath;
    }

    /// <summary>Create a file in <see cref="TempDir"/> and return its absolute path.</summary>
    public string WriteTempFile(string name, string contents)
    {
        var p = Path.Combine(TempDir, name);
        File.WriteAllText(p, contents);
        return p;
    }

    private static ProcessStartInfo MakePsi(string file, IEnumerable<string> args, IDictionary<string, string?>? env, bool redirectStdin)
    {
        var psi = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // never inherit the runner's stdin
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null)
            foreach (var (k, v) in env)
            {
                if (v is null) psi.Environment.Remove(k);
                else psi.Environment[k] = v;
            }
        return psi;
    }

    private SandboxProcess Track(SandboxProcess p)
    {
        lock (_processes)
        {
            if (_disposed) { p.Dispose(); throw new ObjectDisposedException(nameof(Sandbox)); }
            _processes.Add(p);
        }
        return p;
    }

    /// <summary>Start a program inside the sandbox's mount namespace (nsenter -t holder -m), in its own process group.</summary>
    public SandboxProcess StartInside(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, string? description = null)
    {
        var all = new List<string> { "-t", TargetPid.ToString() };
        all.AddRange(_namespaces);
        all.Add("--");
        all.Add(file);
        all.AddRange(args);
        var psi = MakePsi("nsenter", all, env, true);
        return Track(new SandboxProcess(psi, description ?? file));
    }

    /// <summary>Start a program in the test's own namespace (e.g. a throwaway lease owner), tracked and killed on Dispose.</summary>
    public SandboxProcess StartOnHost(string file, IEnumerable<string> args, IDictionary<string, string?>? env = null, string? description = null)
    {
        var psi = MakePsi(file, args, env, true);
        return Track(new SandboxProcess(psi, description ?? file));
    }

    /// <summary>Spawn a throwaway `sleep 600` child whose pid can be registered as a lease owner.</summary>
    public SandboxProcess StartOwnerChild() => StartOnHost("sleep", ["600"], description: "owner child (sleep 600)");

    /// <summary>Run a program inside the sandbox to completion (bounded).</summary>
    public async Task<ProcessResult> RunInsideAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, IDictionary<string, string?>? env = null)
    {
        var p = StartInside(file, args, env);
        p.CloseStdin();
        int rc;
        try { rc = await p.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(30)); }
        catch (TimeoutException) { p.Kill(); throw; }
        return new ProcessResult(rc, p.Stdout, p.Stderr);
    }

    public void Dispose()
    {
        List<SandboxProcess> procs;
        lock (_processes)
        {
            if (_disposed) return;
            _disposed = true;
            procs = new List<SandboxProcess>(_processes);
        }
        foreach (var p in procs) p.SignalGroup(Native.SIGKILL);
        foreach (var p in procs) p.Dispose();
        _holder.Dispose();
        if (_ownsTempDir)
            try { Directory.Delete(TempDir, true); } catch { }
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
