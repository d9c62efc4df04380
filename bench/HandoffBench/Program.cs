// handoffbench: blackout of the exec-restart upgrade handoff (SIGUSR1) of virtlockd and virtlogd, for every
// direction between the C daemons of libvirt 9.0.0 (/usr/sbin/...) and our NativeAOT drop-ins
// (<repo>/artifacts/bin/...), with C>C as the reference measured in the same run.
//
//   dotnet run --project bench/HandoffBench -c Release -- [--runs R] [--clients K] [--daemons virtlockd,virtlogd] [--out FILE]
//
// One measurement: a fresh private mount namespace (bench/Common Sandbox), copies of the FIRST and SECOND binaries
// in a scratch dir, the FIRST bind-mounted over /usr/sbin/<daemon> and started as /usr/sbin/<daemon> (argv[0]);
// K kept client connections (virtlockd: each REGISTERed with the sandbox holder's pid, no lease; virtlogd: idle);
// then `umount -l` + bind-mount the SECOND, and:
//   t0 = kill(pid, SIGUSR1)
//   poll stat(/proc/<pid>/exe) until it is the SECOND copy (= execve done)          -> "signal -> exec"
//   connect a fresh socket, send one cheap call, wait for its reply                    -> "blackout" (t0 -> reply)
// The cheap call: virtlockd REGISTER (0xEA7BEEF proc 1, must be OK); virtlogd DOMAIN_GET_LOG_FILE_POSITION
// (0x87539319 proc 2) of a path that is not open (any REPLY counts as served: both daemons answer with an error).
// The probe connects only after the exec, so the old process never accepts it (an unregistered virtlockd
// client at SIGUSR1 makes C 9.0.0 fail its save and exit).
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Bench.Common;
using static Libvirt.Bench.Common.BenchHost;
using static Libvirt.Bench.Common.Stats;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Libvirt.Bench.HandoffBench;

internal static class Program
{
    public static int Main(string[] args) =>
        BenchHost.Run("handoffbench", Options.Usage, args, Options.Parse, o => o.Help, o => new Bench(o).Run());
}

internal sealed class Options
{
    public int Runs = 7;
    public int Clients = 16;
    public string[] Daemons = ["virtlockd", "virtlogd"];
    public string? Out;
    public bool Help;
    public string CommandLine = "";

    public const string Usage =
        "usage: dotnet run --project bench/HandoffBench -c Release -- [--runs R] [--clients K] [--daemons virtlockd,virtlogd] [--out FILE]\n" +
        "  --runs R      measurements per (daemon, direction), directions interleaved; median reported (default 7)\n" +
        "  --clients K   kept client connections carried through each handoff (default 16)\n" +
        "  --daemons L   comma-separated subset of virtlockd,virtlogd (default both)\n" +
        "  --out FILE    results file (default bench/results/handoff-<yyyy-MM-dd>.md)";

    public static Options Parse(string[] args)
    {
        var o = new Options { CommandLine = string.Join(' ', args) };
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--runs": o.Runs = Int(a, Next(), 1); break;
                case "--clients": o.Clients = Int(a, Next(), 0); break;
                case "--daemons":
                    o.Daemons = Next().Split(',', StringSplitOptions.RemoveEmptyEntries);
                    if (o.Daemons.Length == 0 || o.Daemons.Any(d => d is not ("virtlockd" or "virtlogd")))
                        throw new ArgumentException("--daemons takes virtlockd and/or virtlogd");
                    break;
                case "--out": o.Out = Next(); break;
                case "-h": case "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument {a}");
            }
        }
        return o;
    }

    private static int Int(string name, string v, int min) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= min
            ? n : throw new ArgumentException($"{name} needs an integer >= {min}, got '{v}'");
}

internal static class Posix
{
    public const int SIGUSR1 = 10;

    [DllImport("libc", SetLastError = true, EntryPoint = "stat")]
    private static extern int stat(string path, byte[] buf);

    /// <summary>(st_dev, st_ino) (x86_64 struct stat), or null.</summary>
    public static (ulong, ulong)? DevIno(string path)
    {
        var b = new byte[256];
        return stat(path, b) != 0 ? null : (BitConverter.ToUInt64(b, 0), BitConverter.ToUInt64(b, 8));
    }
}

internal sealed record Sample(double BlackoutMs, double ExecMs, string? Error);

internal sealed class Bench(Options o)
{
    private static readonly (string Label, Kind From, Kind To)[] Directions =
        [("C>C", Kind.C, Kind.C), ("C>ours", Kind.C, Kind.Ours), ("ours>ours", Kind.Ours, Kind.Ours), ("ours>C", Kind.Ours, Kind.C)];

    private string _repo = "";
    private readonly List<string> _notes = new();

    private string Bin(string daemon, Kind k) => k == Kind.C ? $"/usr/sbin/{daemon}" : Path.Combine(_repo, "artifacts", "bin", daemon);

    public int Run()
    {
        _repo = FindRepo("HandoffBench");
        Require(o.Daemons.SelectMany(d => new[]
        {
            (Bin(d, Kind.Ours), $"our {d} is missing: `./build.sh publish` (NativeAOT) from {_repo}"),
            (Bin(d, Kind.C), $"the C {d} is missing: apt-get install libvirt-daemon-system (libvirt 9.0.0)"),
        }));
        return RunAsync().GetAwaiter().GetResult();
    }

    private async Task<int> RunAsync()
    {
        var started = DateTime.Now;
        var load = Machine.LoadAvg();
        var results = new Dictionary<(string, string), List<Sample>>();
        int failures = 0;
        foreach (var daemon in o.Daemons)
            for (int r = 0; r < o.Runs; r++)
            {
                // interleave the directions, rotating the order each run
                for (int k = 0; k < Directions.Length; k++)
                {
                    var d = Directions[(k + r) % Directions.Length];
                    Sample s;
                    try { s = await MeasureAsync(daemon, d.From, d.To); }
                    catch (Exception e) when (e is not BenchSetupException) { s = new Sample(double.NaN, double.NaN, e.Message); }
                    if (s.Error != null) { failures++; _notes.Add($"{daemon} {d.Label} run {r + 1}: {Trim(s.Error)}"); }
                    if (!results.TryGetValue((daemon, d.Label), out var l)) results[(daemon, d.Label)] = l = new();
                    l.Add(s);
                    Log($"{daemon} {d.Label,-10} run {r + 1}: blackout {s.BlackoutMs:F1} ms, signal->exec {s.ExecMs:F1} ms{(s.Error != null ? " ERROR " + s.Error : "")}");
                }
            }
        WriteResults(Report(started, load, results), o.Out ?? Path.Combine(_repo, "bench", "results", $"handoff-{started:yyyy-MM-dd}.md"));
        return failures == 0 ? 0 : 1;
    }

    private async Task<Sample> MeasureAsync(string daemon, Kind from, Kind to)
    {
        using var sb = await Sandbox.CreateAsync();
        var dir = Directory.CreateTempSubdirectory("handoffbench-").FullName;
        Procs.AddDir(dir);
        var kept = new List<Socket>();
        try
        {
            string first = Path.Combine(dir, $"first-{daemon}"), second = Path.Combine(dir, $"second-{daemon}");
            File.Copy(Bin(daemon, from), first);
            File.Copy(Bin(daemon, to), second);
            File.SetUnixFileMode(first, (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(second, (UnixFileMode)0b111_101_101);
            var secondId = Posix.DevIno(second);
            string target = $"/usr/sbin/{daemon}";
            await InsideAsync(sb, $"mount --bind {first} {target}");
            var d = sb.StartInside($"{daemon}[{DaemonSpec.Label(from)}>{DaemonSpec.Label(to)}]", target, []);
            var sock = sb.HostPath($"/run/libvirt/{daemon}-sock");
            await WaitServedAsync(sb, d, daemon, sock, TimeSpan.FromSeconds(15));
            for (int i = 0; i < o.Clients; i++)
            {
                var s = Connect(sock);
                kept.Add(s);
                if (daemon == "virtlockd") Probe(s, daemon, sb, (uint)(i + 2));
            }
            await InsideAsync(sb, $"umount -l {target} && mount --bind {second} {target}");

            long t0 = Stopwatch.GetTimestamp();
            if (Native.Kill(d.Pid, Posix.SIGUSR1) != 0) return new Sample(double.NaN, double.NaN, "kill(SIGUSR1) failed");
            long limit = t0 + 10 * Stopwatch.Frequency;
            while (Posix.DevIno($"/proc/{d.Pid}/exe") != secondId)
            {
                if (Stopwatch.GetTimestamp() > limit || !d.IsRunning)
                    return new Sample(double.NaN, double.NaN, $"no exec of the second binary (running={d.IsRunning}). stderr=[{Tail(d.Stderr)}]");
                Thread.SpinWait(50);
            }
            long tExec = Stopwatch.GetTimestamp();
            string? err = null;
            while (true)
            {
                try
                {
                    using var s = Connect(sock);
                    Probe(s, daemon, sb, 1);
                    break;
                }
                catch (Exception e) when (e is SocketException or EndOfStreamException)
                {
                    if (Stopwatch.GetTimestamp() > limit || !d.IsRunning) { err = $"not served after the exec: {e.Message}. stderr=[{Tail(d.Stderr)}]"; break; }
                    Thread.Sleep(1);
                }
                catch (InvalidOperationException e) { err = e.Message; break; }
            }
            long t1 = Stopwatch.GetTimestamp();
            if (err == null && File.Exists(sb.HostPath($"/run/{daemon}-restart-exec.json")))
                err = "state file still present after the first served request";
            if (err == null && kept.Count > 0)
            {
                // a kept connection is still served by the new binary
                try { Probe(kept[0], daemon, sb, daemon == "virtlockd" ? null : 1u); }
                catch (Exception e) { err = $"kept connection not served after the handoff: {e.Message}"; }
            }
            await d.StopAsync(TimeSpan.FromSeconds(3));
            double ms(long a, long b) => (b - a) * 1000.0 / Stopwatch.Frequency;
            return new Sample(ms(t0, t1), ms(t0, tExec), err);
        }
        finally
        {
            foreach (var s in kept) s.Dispose();
        }
    }

    private static string Tail(string s) => string.Join(" | ", s.Split('\n').Where(l => l.Contains(" error ")).TakeLast(3));

    private static async Task InsideAsync(Sandbox sb, string cmd)
    {
        var c = sb.StartInside("sh -c " + cmd, "sh", ["-c", cmd]);
        if (!await c.WaitAsync(TimeSpan.FromSeconds(10)) || c.ExitCode != 0)
            throw new BenchSetupException($"'{cmd}' failed: {c.Stderr.Trim()}");
    }

    private static Socket Connect(string path)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10000, SendTimeout = 10000 };
        try { s.Connect(new UnixDomainSocketEndPoint(path)); return s; }
        catch { s.Dispose(); throw; }
    }

    private static async Task WaitServedAsync(Sandbox sb, Child d, string daemon, string sock, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (!d.IsRunning) throw new BenchSetupException($"{d.Name} exited ({d.ExitCode}) at start. stderr=[{d.Stderr.Trim()}]");
            try { using var s = Connect(sock); Probe(s, daemon, sb, 1); return; }
            catch (Exception) when (sw.Elapsed < timeout) { await Task.Delay(5); }
        }
    }

    /// <summary>
    /// One call on <paramref name="s"/>, wait for the reply. virtlockd: REGISTER (owner = the sandbox holder, id
    /// <paramref name="registerId"/>; null = a no-op call instead: REGISTER again is refused but answered);
    /// virtlogd: GET_LOG_FILE_POSITION of a path that is not open (an error REPLY is still "served").
    /// </summary>
    private static void Probe(Socket s, string daemon, Sandbox sb, uint? registerId)
    {
        byte[] frame = daemon == "virtlockd"
            ? new Rpc.Call(0xEA7BEEF, 1, 1).Opaque(Uuid(registerId ?? 999)).String("handoffbench").U32(registerId ?? 999).U32((uint)sb.HolderPid).U32(0).Frame()
            : new Rpc.Call(0x87539319, 1, 2).String("/run/handoffbench-none.log").U32(0).Frame();
        s.Send(frame);
        var reply = Rpc.ReadFrame(s);
        int type = BinaryPrimitives.ReadInt32BigEndian(reply.AsSpan(16));
        int status = BinaryPrimitives.ReadInt32BigEndian(reply.AsSpan(24));
        if (type != 1) throw new InvalidOperationException($"{daemon}: reply type {type}");
        if (daemon == "virtlockd" && registerId != null && status != 0)
            throw new InvalidOperationException($"virtlockd: REGISTER failed: {Rpc.ErrorMessage(reply)}");
    }

    private static byte[] Uuid(uint seed)
    {
        var u = new byte[16];
        BitConverter.GetBytes(seed).CopyTo(u, 0);
        u[15] = 0x42;
        return u;
    }

    private string Report(DateTime started, string load, Dictionary<(string, string), List<Sample>> results)
    {
        var sb = new StringBuilder();
        Machine.Preamble(sb, "Exec-restart handoff (SIGUSR1) blackout: C libvirt 9.0.0 vs ours", started, load, "HandoffBench", o.CommandLine);
        sb.AppendLine($"- C daemons: `/usr/sbin/virtlockd`, `/usr/sbin/virtlogd`; ours: `artifacts/bin/virtlockd`, `artifacts/bin/virtlogd` (NativeAOT, `./build.sh publish`).");
        sb.AppendLine($"- Each measurement: fresh private mount namespace; copies of the two binaries; the first bind-mounted over `/usr/sbin/<daemon>` and started as that path; {o.Clients} kept client connections (virtlockd: each REGISTERed, no lease; virtlogd: idle); `umount -l` + bind-mount the second; then `kill(pid, SIGUSR1)`.");
        sb.AppendLine("- **blackout** = SIGUSR1 → the reply to one cheap call on a fresh connection made as soon as `/proc/<pid>/exe` is the second binary (virtlockd: REGISTER; virtlogd: DOMAIN_GET_LOG_FILE_POSITION of a path not open, whose error reply counts as served). **signal → exec** = SIGUSR1 → `/proc/<pid>/exe` is the second binary (the old process saved its state and called execve). After the probe: the state file must be gone and a kept connection must still be answered.");
        sb.AppendLine($"- Runs: {o.Runs} per (daemon, direction), the four directions interleaved (order rotated each run). Values: median (min–max) in ms; **ratio** = median of the direction / median of C>C in this run (> 1 = longer blackout than the C reference).");
        sb.AppendLine();
        foreach (var daemon in o.Daemons)
        {
            sb.AppendLine($"## {daemon}");
            sb.AppendLine();
            Md.TableHeader(sb, "<direction", "blackout ms", "ratio to C>C", "signal → exec ms", "exec → served ms", "ok/runs");
            double refMed = Median(results[(daemon, "C>C")].Where(s => s.Error == null).Select(s => s.BlackoutMs));
            foreach (var (label, _, _) in Directions)
            {
                var ok = results[(daemon, label)].Where(s => s.Error == null).ToList();
                double med = Median(ok.Select(s => s.BlackoutMs));
                Md.Row(sb, label, MedRange(ok.Select(s => s.BlackoutMs), "F1"), (med / refMed).ToString("F2"),
                    MedRange(ok.Select(s => s.ExecMs), "F1"), MedRange(ok.Select(s => s.BlackoutMs - s.ExecMs), "F1"),
                    $"{ok.Count}/{results[(daemon, label)].Count}");
            }
            sb.AppendLine();
        }
        sb.AppendLine("## Notes");
        sb.AppendLine();
        if (_notes.Count == 0) sb.AppendLine("- Every handoff completed: same pid, second binary running, state file removed, probe and kept connection served.");
        foreach (var n in _notes) sb.AppendLine("- " + n);
        sb.AppendLine("- Validity: one run on one machine; compare the rows of this report with each other, not across reports. `signal → exec` includes the old process's state save; `exec → served` the new process's start-up and restore (for ours: NativeAOT start, JSON parse, re-creating servers/clients/lockspaces or log pipes).");
        return sb.ToString();
    }
}
