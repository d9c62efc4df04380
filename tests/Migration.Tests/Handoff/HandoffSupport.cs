using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Libvirt.Tests.Admin;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockClient;
using Xunit;

namespace Libvirt.Tests.Handoff;

/// <summary>Directions of an exec-restart handoff: "C>ours" = started as the C daemon, SIGUSR1 execs ours.
/// "ours" is our default configuration (every subsystem native), "store" ours with the daemon's storage twin
/// (lock space or rotating file) managed, "loop" ours with the managed event loop, "twins" every subsystem managed,
/// "rpc" ours on the managed RPC core (rpc_impl = "managed", DaemonKind.ManagedRpc), "Cp" the C daemon with libvirt-managed.so preloaded (the preload is the environment the chain starts with, so
/// every step inherits it: ours runs preloaded too, and the last step is the preloaded C daemon again).</summary>
public static class HandoffDirections
{
    public static TheoryData<string> All => new()
    {
        "C>C", "C>ours", "ours>ours", "ours>C", "C>ours>C",
        "C>store>C", "ours>store>ours", "C>loop>C", "ours>twins>ours", "C>twins>C", "Cp>ours>Cp",
        // the managed RPC core saving and adopting libvirt's "daemon" object: from C, to C, to itself
        "C>rpc>C", "rpc>rpc", "ours>rpc>ours",
    };

    public static DaemonKind[] Parse(string direction) =>
        direction.Split('>').Select(s => s switch
        {
            "C" => DaemonKind.C,
            "ours" => DaemonKind.Managed,
            "store" => DaemonKind.ManagedStore,
            "loop" => DaemonKind.ManagedLoop,
            "twins" => DaemonKind.ManagedAll,
            "rpc" => DaemonKind.ManagedRpc,
            "Cp" => DaemonKind.CPreloaded,
            _ => throw new ArgumentException(direction),
        }).ToArray();
}

internal static class Posix
{
    public const int SIGUSR1 = 10;

    /// <summary>(SigBlk, SigIgn, SigCgt) of <paramref name="pid"/>, from /proc/PID/status.</summary>
    public static (ulong Blocked, ulong Ignored, ulong Caught) SignalState(int pid)
    {
        static ulong Field(string[] lines, string name) =>
            Convert.ToUInt64(lines.First(l => l.StartsWith(name + ":"))[(name.Length + 1)..].Trim(), 16);
        var lines = File.ReadAllLines($"/proc/{pid}/status");
        return (Field(lines, "SigBlk"), Field(lines, "SigIgn"), Field(lines, "SigCgt"));
    }

    /// <summary>The process has a handler for <paramref name="sig"/> (neither SIG_IGN nor the default) and
    /// does not block it.</summary>
    public static bool HandlesSignal(int pid, int sig)
    {
        ulong bit = 1UL << (sig - 1);
        try
        {
            var (blk, ign, cgt) = SignalState(pid);
            return (cgt & bit) != 0 && (ign & bit) == 0 && (blk & bit) == 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException) { return false; }
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "stat")]
    private static extern int stat(string path, byte[] buf);

    /// <summary>(st_dev, st_ino) of <paramref name="path"/> (follows links; x86_64 struct stat), or null.</summary>
    public static (ulong Dev, ulong Ino)? DevIno(string path)
    {
        var b = new byte[256];
        if (stat(path, b) != 0) return null;
        return (BitConverter.ToUInt64(b, 0), BitConverter.ToUInt64(b, 8));
    }
}

/// <summary>
/// A sandbox in which /usr/sbin/&lt;daemon&gt; is a bind mount of a COPY (in TempDir) of the binary of each step of
/// a handoff chain. The daemon is started as /usr/sbin/&lt;daemon&gt; (so its argv[0] is that path); each
/// <see cref="HandoffAsync"/> re-binds the next step's copy there and sends SIGUSR1. Every copy is a distinct
/// file, so the running binary is identified by (dev, inode) of /proc/&lt;pid&gt;/exe.
/// </summary>
public sealed class HandoffRig : IAsyncDisposable
{
    public Sandbox Sandbox { get; }
    public DaemonName Name { get; }
    public DaemonKind[] Chain { get; }
    public string[] Copies { get; }
    public SandboxProcess Daemon { get; private set; } = null!;
    public int Step { get; private set; }
    public string Target => "/usr/sbin/" + DaemonPaths.ExeName(Name);
    public string StateFileInside => $"/run/{DaemonPaths.ExeName(Name)}-restart-exec.json";
    public string StateFileHost => Sandbox.HostPath(StateFileInside);
    public string SocketHost => Sandbox.HostPath(DaemonPaths.Socket(Name));
    public int Pid => Daemon.Pid;
    public string TempDir => Sandbox.TempDir;
    /// <summary>The daemon's config file (-f); each step rewrites it with that step's *_impl keys before the
    /// exec that starts it (the C daemon ignores them), so one daemon changes configuration across handoffs.</summary>
    public string ConfigFile { get; }
    private readonly string _baseConfig;

    private HandoffRig(Sandbox sb, DaemonName name, DaemonKind[] chain, string[] copies, string baseConfig)
    {
        Sandbox = sb; Name = name; Chain = chain; Copies = copies;
        _baseConfig = baseConfig.Length == 0 || baseConfig.EndsWith('\n') ? baseConfig : baseConfig + "\n";
        ConfigFile = Path.Combine(sb.TempDir, $"{DaemonPaths.ExeName(name)}.conf");
        WriteConfig(0);
    }

    private void WriteConfig(int step) => File.WriteAllText(ConfigFile, _baseConfig + Chain[step].ImplConfig(Name));

    public static async Task<HandoffRig> StartAsync(DaemonName name, DaemonKind[] chain, string? config = null,
        IEnumerable<string>? extraArgs = null, string? sandboxSetup = null)
    {
        foreach (var k in chain) DaemonPaths.Binary(name, k); // missing build: clear failure
        // LD_PRELOAD is inherited across every exec: a chain is preloaded throughout or not at all
        bool preloaded = chain.Contains(DaemonKind.CPreloaded);
        if (preloaded && chain.Contains(DaemonKind.C))
            throw new ArgumentException("a handoff chain cannot mix C and CPreloaded: the environment crosses each exec");
        var sb = await Sandbox.CreateAsync(setup: sandboxSetup);
        try
        {
            var exe = DaemonPaths.ExeName(name);
            var copies = new string[chain.Length];
            for (int i = 0; i < chain.Length; i++)
            {
                copies[i] = Path.Combine(sb.TempDir, $"step{i}-{chain[i]}-{exe}");
                File.Copy(DaemonPaths.Executable(name, chain[i]), copies[i]);
                File.SetUnixFileMode(copies[i], (UnixFileMode)0b111_101_101);
            }
            var rig = new HandoffRig(sb, name, chain, copies, config ?? "");
            await rig.MountAsync(copies[0], unmountFirst: false);
            var args = new List<string> { "-f", rig.ConfigFile };
            if (extraArgs != null) args.AddRange(extraArgs);
            rig.Daemon = sb.StartInside(rig.Target, args, preloaded ? DaemonPaths.PreloadEnv() : null, $"{exe}[{string.Join(">", chain)}]");
            rig.Daemon.CloseStdin();
            await rig.WaitServingAsync(TimeSpan.FromSeconds(15));
            rig.AssertExe(0, "after start");
            return rig;
        }
        catch
        {
            await sb.DisposeAsync();
            throw;
        }
    }

    /// <summary>Bind-mount <paramref name="hostFile"/> (a TempDir path, same inside) over /usr/sbin/&lt;daemon&gt;.</summary>
    public Task MountAsync(string hostFile, bool unmountFirst = true) => BindAsync(Sandbox, hostFile, Target, unmountFirst);

    /// <summary>Bind-mount <paramref name="hostFile"/> (a TempDir path, same inside) over <paramref name="target"/>
    /// inside <paramref name="sb"/>, replacing an earlier bind there if <paramref name="unmountFirst"/>.</summary>
    public static async Task BindAsync(Sandbox sb, string hostFile, string target, bool unmountFirst)
    {
        var cmd = (unmountFirst ? $"umount -l {target} && " : "") + $"mount --bind {hostFile} {target}";
        var r = await sb.RunInsideAsync("sh", ["-c", cmd], TimeSpan.FromSeconds(10));
        Assert.True(r.ExitCode == 0, $"'{cmd}' failed: {r.Stdout}{r.Stderr}");
    }

    public (ulong, ulong)? ExeId() => Posix.DevIno($"/proc/{Pid}/exe");

    /// <summary>The pid, and its start time (field 22 of /proc/PID/stat): a process, not just a number.</summary>
    public readonly record struct ProcessId(int Pid, ulong StartTime);

    /// <summary>The daemon as it is now, to hold against <see cref="AssertSameProcess"/> after a handoff.</summary>
    public ProcessId CurrentProcess() => new(Pid, StartTime(Pid) ?? throw new InvalidOperationException($"no process {Pid}"));

    public static ulong? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return ulong.Parse(fields[19]); // field 22 counted from 1, the first two (pid, comm) cut off
        }
        catch (IOException) { return null; }
    }

    /// <summary>
    /// The process that was the daemon before the handoff still is: that pid is alive with the same start time
    /// (not a reused pid), runs the current step's binary, and is the pid in the daemon's pid file.
    /// </summary>
    public void AssertSameProcess(ProcessId before, string when)
    {
        Assert.True(Native.Exists(before.Pid), $"{when}: pid {before.Pid} is gone");
        Assert.True(StartTime(before.Pid) == before.StartTime,
            $"{when}: pid {before.Pid} is another process now (start time {StartTime(before.Pid)}, was {before.StartTime})");
        var exe = Posix.DevIno($"/proc/{before.Pid}/exe");
        Assert.True(exe == FileId(Copies[Step]), $"{when}: pid {before.Pid} does not run the step-{Step} binary {Copies[Step]}");
        var pidFile = Sandbox.HostPath(DaemonPaths.PidFile(Name));
        // a daemon taking the pid file over truncates it, then writes its pid: wait (bounded) for the write
        string inFile = "";
        for (var sw = Stopwatch.StartNew(); inFile.Length == 0 && sw.Elapsed < TimeSpan.FromSeconds(10); Thread.Sleep(10))
            inFile = File.Exists(pidFile) ? File.ReadAllText(pidFile).Trim() : "<no pid file>";
        Assert.True(inFile == before.Pid.ToString(), $"{when}: pid file {DaemonPaths.PidFile(Name)} says '{inFile}', the daemon was {before.Pid}");
    }
    public static (ulong, ulong)? FileId(string path) => Posix.DevIno(path);

    public void AssertExe(int step, string when)
    {
        var want = FileId(Copies[step]);
        Assert.NotNull(want);
        Assert.True(ExeId() == want, $"{when}: /proc/{Pid}/exe is not the step-{step} copy ({Chain[step]}) {Copies[step]}");
        if (Chain[step] == DaemonKind.CPreloaded)
            Assert.True(File.ReadAllText($"/proc/{Pid}/maps").Contains(DaemonPaths.ExportLibrary, StringComparison.Ordinal),
                $"{when}: the step-{step} C daemon does not map {DaemonPaths.ExportLibrary}");
    }

    /// <summary>Wait (bounded) until the protocol socket accepts a connection.</summary>
    public Task WaitServingAsync(TimeSpan timeout) => WaitSocketAsync(Daemon, SocketHost, timeout);

    /// <summary>Wait (bounded) until <paramref name="socketHost"/> accepts a connection; throws if <paramref name="daemon"/> exits.</summary>
    public static async Task WaitSocketAsync(SandboxProcess daemon, string socketHost, TimeSpan timeout)
    {
        var Daemon = daemon; var SocketHost = socketHost;
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < timeout)
        {
            if (!Daemon.IsRunning)
                throw new InvalidOperationException($"daemon exited ({Daemon.ExitCode}). stderr=[{Daemon.Stderr}]");
            if (File.Exists(SocketHost))
            {
                try
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(SocketHost), cts.Token);
                    return;
                }
                catch (Exception e) { last = e; }
            }
            await Task.Delay(20);
        }
        throw new TimeoutException($"socket not ready ({last?.Message}). stderr=[{Daemon.Stderr}]");
    }

    /// <summary>Re-bind the next step's binary and SIGUSR1 (no waiting).</summary>
    public async Task SwapAndSignalAsync(string? hostFile = null)
    {
        await MountAsync(hostFile ?? Copies[Step + 1]);
        if (Step + 1 < Chain.Length)
            WriteConfig(Step + 1);
        Assert.Equal(0, Native.Kill(Pid, Posix.SIGUSR1));
    }

    /// <summary>
    /// The next handoff: re-bind step+1's copy, SIGUSR1, then wait (bounded) until the daemon runs that copy,
    /// the state file is gone and a served RPC is possible (<paramref name="probe"/>, default: socket connect).
    /// Asserts same pid / alive. Returns the time from SIGUSR1 to "handed off".
    /// </summary>
    public async Task<TimeSpan> HandoffAsync(TimeSpan? timeout = null)
    {
        var want = FileId(Copies[Step + 1]);
        // a handoff starts when the daemon handles SIGUSR1: until its signal set-up, a new image ignores it
        // (ours after ours) or dies of it (the default action), so "its socket accepts" is not enough
        var sw0 = Stopwatch.StartNew();
        while (!Posix.HandlesSignal(Pid, Posix.SIGUSR1) && Daemon.IsRunning && sw0.Elapsed < TimeSpan.FromSeconds(30))
            await Task.Delay(10);
        await SwapAndSignalAsync();
        var sw = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(15);
        while (true)
        {
            Assert.True(Daemon.IsRunning, $"daemon (pid {Pid}) exited ({Daemon.ExitCode}) during handoff to step {Step + 1} " +
                $"({Chain[Step + 1]}). stderr=[{Tail(Daemon.Stderr)}]");
            if (ExeId() == want && !File.Exists(StateFileHost)) break;
            if (sw.Elapsed > limit)
                throw new TimeoutException($"handoff to step {Step + 1} not done within {limit}: exe match {ExeId() == want}, " +
                    $"state file present {File.Exists(StateFileHost)}. stderr=[{Tail(Daemon.Stderr)}]");
            await Task.Delay(10);
        }
        Step++;
        await WaitServingAsync(TimeSpan.FromSeconds(10));
        var t = sw.Elapsed;
        Assert.True(Daemon.IsRunning);
        AssertExe(Step, $"after handoff {Step}");
        Assert.False(File.Exists(StateFileHost), "state file still present after the handoff");
        return t;
    }

    public static string Tail(string s, int lines = 15) =>
        string.Join('\n', s.Split('\n').Where(l => !l.Contains(" info : ")).TakeLast(lines));

    /// <summary>virt-admin -c &lt;daemon&gt;:///system client-list &lt;daemon&gt;, run inside the sandbox.</summary>
    public async Task<List<ulong>> ClientListAsync()
    {
        var exe = DaemonPaths.ExeName(Name);
        var r = await Sandbox.RunInsideAsync(VirtAdmin.Binary, ["-c", $"{exe}:///system", "client-list", exe], TimeSpan.FromSeconds(20));
        Assert.True(r.ExitCode == 0, $"virt-admin client-list failed: {r.Stdout}{r.Stderr}");
        return VirtAdmin.ClientIds(r.Stdout);
    }

    public async ValueTask DisposeAsync()
    {
        try { await Daemon.StopAsync(TimeSpan.FromSeconds(3)); } catch { }
        await Sandbox.DisposeAsync();
    }
}

/// <summary>
/// A separate python3 process polling F_OFD_GETLK (write lock, whole file) on each watched file until a stop
/// file appears; it counts polls and every poll that found the file unlocked.
/// </summary>
public sealed class GapWatcher
{
    private const string Script = """
        import fcntl, os, struct, sys, time
        F_OFD_GETLK = 36
        stop = sys.argv[1]; files = sys.argv[2:]
        fds = [os.open(f, os.O_RDWR) for f in files]
        polls = 0; free = 0; first_free = ''
        deadline = time.time() + int(os.environ.get('GAPWATCH_SECONDS', '300'))
        started = False
        while time.time() < deadline:
            for f, fd in zip(files, fds):
                r = fcntl.fcntl(fd, F_OFD_GETLK, struct.pack('hhqqi4x', fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
                polls += 1
                if struct.unpack('hhqqi4x', r)[0] == fcntl.F_UNLCK:
                    free += 1
                    if not first_free: first_free = f
            if not started:
                print('started', flush=True); started = True
            if os.path.exists(stop): break
        print('polls %d free %d first_free %s timedout %d' % (polls, free, first_free or '-', 0 if os.path.exists(stop) else 1), flush=True)
        """;

    /// <summary>How long the watcher polls at most (its own bound, should the test never stop it).</summary>
    public const int WatchSeconds = 300;

    private readonly SandboxProcess _p;
    private readonly string _stop;

    private GapWatcher(SandboxProcess p, string stop) { _p = p; _stop = stop; }

    public static async Task<GapWatcher> StartAsync(Sandbox sb, IEnumerable<string> files)
    {
        var script = Path.Combine(sb.TempDir, "gapwatch.py");
        File.WriteAllText(script, Script);
        var stop = Path.Combine(sb.TempDir, "gapwatch.stop." + Guid.NewGuid().ToString("N")[..8]);
        var p = sb.StartOnHost("python3", [script, stop, .. files], description: "gap watcher");
        await p.WaitForStdoutLineAsync(l => l == "started", TimeSpan.FromSeconds(15));
        return new GapWatcher(p, stop);
    }

    /// <summary>Stop and return (polls, polls that saw a file free, first file seen free).</summary>
    public async Task<(long Polls, long Free, string FirstFree)> StopAsync()
    {
        File.WriteAllText(_stop, "");
        var line = await _p.WaitForStdoutLineAsync(l => l.StartsWith("polls "), TimeSpan.FromSeconds(15));
        var w = line.Split(' ');
        // past its deadline the watcher stops polling: a gap after that would go unseen
        Assert.True(w[7] == "0", $"the gap watcher reached its deadline (GAPWATCH_SECONDS, default {WatchSeconds}) before it was stopped: " +
            "what happened after that was not watched");
        return (long.Parse(w[1]), long.Parse(w[3]), w[5]);
    }

    /// <summary>One-shot: is <paramref name="file"/> locked by anyone (F_OFD_GETLK)?</summary>
    public static async Task<bool> IsLockedAsync(Sandbox sb, string file)
    {
        // an auto-created resource file is unlinked when its lease goes, possibly between the check and the open
        if (!File.Exists(file)) return false;
        var p = sb.StartOnHost("python3", ["-c",
            "import fcntl,os,struct,sys\n" +
            "try: fd=os.open(sys.argv[1],os.O_RDWR)\n" +
            "except FileNotFoundError: print('free'); sys.exit(0)\n" +
            "r=fcntl.fcntl(fd,36,struct.pack('hhqqi4x',fcntl.F_WRLCK,0,0,0,0))\n" +
            "print('free' if struct.unpack('hhqqi4x',r)[0]==fcntl.F_UNLCK else 'locked')", file], description: "lock probe");
        var line = await p.WaitForStdoutLineAsync(l => l is "free" or "locked", TimeSpan.FromSeconds(10));
        return line == "locked";
    }
}

public static class LeaseChecks
{
    /// <summary>Start a lockclient holding a disk lease on <paramref name="disk"/> (created if missing).</summary>
    public static async Task<LockClientDriver> HoldAsync(Sandbox sb, string disk, string name, int id)
    {
        if (!File.Exists(disk)) File.WriteAllText(disk, "");
        var lc = await LockClientDriver.StartAsync(sb, name, id);
        await lc.OkAsync($"disk {disk}");
        await lc.OkAsync("acquire");
        return lc;
    }

    /// <summary>A fresh lockclient per disk tries to acquire it: each must be refused as locked.</summary>
    public static async Task AssertAllBusyAsync(Sandbox sb, IEnumerable<string> disks, string when)
    {
        var tasks = disks.Select(async (disk, i) =>
        {
            var lc = await LockClientDriver.StartAsync(sb, $"rival{i}", 1000 + i);
            try
            {
                await lc.OkAsync($"disk {disk}");
                var r = await lc.CommandAsync("acquire");
                Assert.True(r.StartsWith("err ") && r.Contains("resource busy") && r.Contains($"'{disk}' is locked"),
                    $"{when}: a competing acquire of {disk} was not refused as locked: '{r}'");
                await lc.QuitAsync();
            }
            finally { lc.Process.Kill(); }
        });
        await Task.WhenAll(tasks);
    }
}
