// Shared by bench/LockBench and bench/LogBench (compiled into each; see
// bench/Common/Common.props): started-process registry, setsid children,
// private mount-namespace sandboxes.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Libvirt.Bench.Common;

public sealed class BenchSetupException(string message) : Exception(message);

public static class Native
{
    public const int SIGTERM = 15, SIGKILL = 9;

    [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
    public static extern int Kill(int pid, int sig);

    [DllImport("libc", EntryPoint = "geteuid")]
    public static extern uint GetEuid();
}

/// <summary>Registry of every process group this harness started, for kill-on-exit.</summary>
public static class Procs
{
    private static readonly HashSet<int> s_groups = new();

    private static bool s_stopping;

    /// <summary>Track a started group; if the harness is already shutting down, kill it at once.</summary>
    public static void Add(int pgid)
    {
        lock (s_groups)
        {
            if (!s_stopping) { s_groups.Add(pgid); return; }
        }
        Native.Kill(-pgid, Native.SIGKILL);
        throw new OperationCanceledException("the bench is shutting down");
    }
    public static void Remove(int pgid) { lock (s_groups) s_groups.Remove(pgid); }

    private static readonly List<string> s_dirs = new();
    public static void AddDir(string d) { lock (s_dirs) s_dirs.Add(d); }
    public static void DeleteDirs()
    {
        string[] all;
        lock (s_dirs) { all = s_dirs.ToArray(); s_dirs.Clear(); }
        foreach (var d in all) try { Directory.Delete(d, true); } catch { }
    }

    public static void KillAll()
    {
        int[] all;
        lock (s_groups) { s_stopping = true; all = s_groups.ToArray(); s_groups.Clear(); }
        foreach (int g in all) Native.Kill(-g, Native.SIGKILL);
    }
}

/// <summary>
/// A child started as `setsid PROGRAM ARGS` (setsid execs in place because the
/// child of Process.Start is not a group leader, so Pid == pgid == the program's pid).
/// </summary>
public sealed class Child : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new(), _err = new();
    private readonly TaskCompletionSource _outDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _errDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public int Pid { get; }
    public string Name { get; }
    public long StartTicks { get; }

    public Child(string name, string file, IEnumerable<string> args)
    {
        Name = name;
        var psi = new ProcessStartInfo("setsid")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(file);
        foreach (var a in args) psi.ArgumentList.Add(a);
        StartTicks = Stopwatch.GetTimestamp();
        _p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {name}");
        Pid = _p.Id;
        Procs.Add(Pid);
        _p.OutputDataReceived += (_, e) => { if (e.Data is null) _outDone.TrySetResult(); else lock (_out) _out.AppendLine(e.Data); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data is null) _errDone.TrySetResult(); else lock (_err) _err.AppendLine(e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
        try { _p.StandardInput.Close(); } catch { }
    }

    public string Stdout { get { lock (_out) return _out.ToString(); } }
    public string Stderr { get { lock (_err) return _err.ToString(); } }

    public bool IsRunning { get { try { return !_p.HasExited; } catch { return false; } } }
    public int ExitCode => _p.ExitCode;

    /// <summary>Bounded wait for exit (and output drain). Returns false on timeout.</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { return false; }
        await Task.WhenAny(Task.WhenAll(_outDone.Task, _errDone.Task), Task.Delay(2000));
        return true;
    }

    public async Task WaitForLineAsync(string line, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (!Stdout.Split('\n').Any(l => l.Trim() == line))
        {
            if (!IsRunning) throw new BenchSetupException($"{Name} exited ({ExitCode}) before printing '{line}'. stderr=[{Stderr.Trim()}]");
            if (sw.Elapsed > timeout) throw new TimeoutException($"{Name}: '{line}' not seen within {timeout}. stderr=[{Stderr.Trim()}]");
            await Task.Delay(5);
        }
    }

    /// <summary>SIGTERM, bounded wait, then SIGKILL the group.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (IsRunning)
        {
            Native.Kill(Pid, Native.SIGTERM);
            await WaitAsync(grace);
        }
        Kill();
    }

    public void Kill()
    {
        Native.Kill(-Pid, Native.SIGKILL);
        try { _p.WaitForExit(5000); } catch { }
        Procs.Remove(Pid);
    }

    public void Dispose()
    {
        Kill();
        _p.Dispose();
    }
}

/// <summary>A private mount namespace with tmpfs on /run, held by a `sleep`.</summary>
public sealed class Sandbox : IDisposable
{
    private readonly Child _holder;
    private readonly List<Child> _children = new();
    public int HolderPid => _holder.Pid;
    public string HostPath(string inside) => $"/proc/{HolderPid}/root{inside}";

    private Sandbox(Child holder) => _holder = holder;

    public static async Task<Sandbox> CreateAsync()
    {
        var holder = new Child("sandbox holder", "unshare", ["-m", "--propagation", "private", "--", "sh", "-c",
            "mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt && echo ready && exec sleep 3600"]);
        var sb = new Sandbox(holder);
        try
        {
            await holder.WaitForLineAsync("ready", TimeSpan.FromSeconds(10));
            var sw = Stopwatch.StartNew();
            while (!Directory.Exists(sb.HostPath("/run/libvirt")))
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(5)) throw new TimeoutException("sandbox /run/libvirt not visible");
                await Task.Delay(5);
            }
            return sb;
        }
        catch { sb.Dispose(); throw; }
    }

    public Child StartInside(string name, string file, IEnumerable<string> args)
    {
        var c = new Child(name, "nsenter", new[] { "-t", HolderPid.ToString(), "-m", "--", file }.Concat(args));
        lock (_children) _children.Add(c);
        return c;
    }

    public void Dispose()
    {
        Child[] all;
        lock (_children) { all = _children.ToArray(); _children.Clear(); }
        foreach (var c in all) c.Dispose();
        _holder.Dispose();
    }
}
