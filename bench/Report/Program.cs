// One readable report from one run: each C daemon against each of our configurations (selected by the
// *_impl keys in the daemon's config file), for throughput, daemon CPU per operation, RSS over time and the
// exec-restart (SIGUSR1) handoff blackout. Markdown + PNG plots (ScottPlot) + the raw figures as CSV.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Buffers.Binary;
using System.Text;
using Libvirt.Bench.Common;
using ScottPlot;
using static Libvirt.Bench.Common.BenchHost;

namespace Libvirt.Bench.Report;

public sealed record Options
{
    public List<(string Label, string Config)> Configs { get; } = [];
    public int Repeat { get; set; } = 5;
    public int Clients { get; set; } = 4;
    public int LockCycles { get; set; } = 1500;
    public int LogMb { get; set; } = 32;
    public int HandoffRuns { get; set; } = 7;
    public int RssIntervalMs { get; set; } = 50;
    public string? Out { get; set; }
    public bool Help { get; set; }
}

public static class Program
{
    private const string Usage =
        "benchreport: C daemons against each of our configurations, one Markdown report with plots and CSV\n" +
        "  --configs LABEL=CONF  one of our configurations: CONF is config-file text, ';' between lines\n" +
        "                        (e.g. 'managed=lock_space_impl = \"managed\";event_loop_impl = \"managed\"');\n" +
        "                        repeat the option for more; default: one, 'ours=' (no *_impl keys: today's defaults);\n" +
        "                        CONF '@preload': the C daemon with artifacts/lib/libvirt-managed.so preloaded\n" +
        "  --repeat R            runs per daemon, variant and measurement (default 5)\n" +
        "  --clients K           client processes at once (default 4)\n" +
        "  --lock-cycles N       acquire+release cycles per lock client (default 1500)\n" +
        "  --log-mb M            MB moved per log run over all clients (default 32)\n" +
        "  --handoff-runs H      SIGUSR1 handoffs per daemon and variant (default 7)\n" +
        "  --rss-interval-ms T   RSS sampling period during the runs (default 50)\n" +
        "  --out DIR             output directory (default bench/results/report-<date>)";

    public static int Main(string[] args) => Run("benchreport", Usage, args, Parse, o => o.Help, o => new Runner(o).Run());

    private static Options Parse(string[] a)
    {
        var o = new Options();
        for (int i = 0; i < a.Length; i++)
        {
            string Next() => i + 1 < a.Length ? a[++i] : throw new ArgumentException($"{a[i]} needs a value");
            int Int() => int.TryParse(Next(), out var v) && v > 0 ? v : throw new ArgumentException($"{a[i - 1]}: a positive integer");
            switch (a[i])
            {
                case "--configs":
                    var c = Next();
                    var eq = c.IndexOf('=');
                    if (eq <= 0) throw new ArgumentException($"--configs '{c}': LABEL=CONF");
                    o.Configs.Add((c[..eq], c[(eq + 1)..].Replace(";", "\n")));
                    break;
                case "--repeat": o.Repeat = Int(); break;
                case "--clients": o.Clients = Int(); break;
                case "--lock-cycles": o.LockCycles = Int(); break;
                case "--log-mb": o.LogMb = Int(); break;
                case "--handoff-runs": o.HandoffRuns = Int(); break;
                case "--rss-interval-ms": o.RssIntervalMs = Int(); break;
                case "--out": o.Out = Next(); break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown option {a[i]}");
            }
        }
        if (o.Configs.Count == 0) o.Configs.Add(("ours", ""));
        if (o.Configs.Any(c => c.Label == "C")) throw new ArgumentException("'C' is the C daemon's label");
        return o;
    }
}

/// <summary>One figure of one run.</summary>
public sealed record Sample(string Metric, string Daemon, string Variant, int Run, double Value, string Unit, string Note = "");

public sealed class Runner(Options opt)
{
    private static readonly long ClkTck = 100; // sysconf(_SC_CLK_TCK) on Linux x86_64
    private string _repo = "", _lockclient = "", _logclient = "", _dir = "";
    private readonly List<Sample> _samples = [];
    private readonly List<(string Daemon, string Variant, int Run, double TMs, double RssMb)> _rss = [];
    private readonly List<string> _notes = [];

    private IEnumerable<string> Variants => new[] { "C" }.Concat(opt.Configs.Select(c => c.Label));

    public int Run()
    {
        _repo = FindRepo("Report");
        _lockclient = Path.Combine(_repo, "tests", "LockClient", "bin", "Release", "net10.0", "lockclient");
        _logclient = Path.Combine(_repo, "tests", "LogClient", "bin", "Release", "net10.0", "logclient");
        Require([
            ("/usr/sbin/virtlockd", "the C daemons: apt-get install libvirt-daemon (9.0.0)"),
            (Path.Combine(_repo, "artifacts", "bin", "virtlockd"), "our daemons: ./build.sh publish"),
            (Path.Combine(_repo, "artifacts", "bin", "virtlogd"), "our daemons: ./build.sh publish"),
            (_lockclient, "the lock client: dotnet build Migration.sln -c Release"),
            (_logclient, "the log client: dotnet build Migration.sln -c Release"),
        ]);
        var started = DateTime.UtcNow;
        var load0 = Machine.LoadAvg();
        _dir = Path.GetFullPath(opt.Out ?? Path.Combine(_repo, "bench", "results", $"report-{started:yyyy-MM-dd}"));
        Directory.CreateDirectory(_dir);
        _work = Directory.CreateTempSubdirectory("benchreport-").FullName;
        Procs.AddDir(_work);

        for (int r = 0; r < opt.Repeat; r++)
        {
            // alternate, order rotated per run so that no variant always runs first after a cold start
            var order = Variants.ToList();
            order = order.Skip(r % order.Count).Concat(order.Take(r % order.Count)).ToList();
            foreach (var v in order)
            {
                Log($"run {r + 1}/{opt.Repeat}: {v}");
                LoadRunAsync("virtlockd", v, r).GetAwaiter().GetResult();
                LoadRunAsync("virtlogd", v, r).GetAwaiter().GetResult();
            }
        }
        for (int h = 0; h < opt.HandoffRuns; h++)
            foreach (var v in Variants)
                foreach (var d in new[] { "virtlockd", "virtlogd" })
                    HandoffAsync(d, v, h).GetAwaiter().GetResult();

        WriteCsv();
        var md = Markdown(started, load0);
        Plots.Write(_dir, _samples, _rss, Variants.ToList());
        WriteResults(md, Path.Combine(_dir, "report.md"));
        return _notes.Any(n => n.StartsWith("FAIL")) ? 1 : 0;
    }

    private string _work = "";

    /// <summary>The configuration text that means "the C daemon with
    /// artifacts/lib/libvirt-managed.so preloaded" rather than a config file of ours.</summary>
    public const string Preload = "@preload";

    private bool IsPreload(string variant) => variant != "C" && opt.Configs.First(c => c.Label == variant).Config == Preload;

    private string PreloadLibrary => Path.Combine(_repo, "artifacts", "lib", "libvirt-managed.so");

    private string Binary(string daemon, string variant) =>
        variant == "C" || IsPreload(variant) ? $"/usr/sbin/{daemon}" : Path.Combine(_repo, "artifacts", "bin", daemon);

    private string[] Args(string daemon, string variant)
    {
        var conf = Path.Combine(_work, $"{daemon}-{variant}.conf");
        var text = variant == "C" || IsPreload(variant) ? "" : opt.Configs.First(c => c.Label == variant).Config;
        if (daemon == "virtlogd") text = "max_size = 1000000000\n" + text; // no rotation: the copy path, not the rename path
        // (libvirt's parser refuses a file that is one empty line)
        File.WriteAllText(conf, text.Length == 0 ? "" : text.TrimEnd('\n') + "\n");
        return ["-f", conf];
    }

    private DaemonSpec Spec(string daemon, string variant) => daemon == "virtlockd"
        ? new DaemonSpec
        {
            Name = daemon, CBinary = Binary(daemon, "C"), OursBinary = Binary(daemon, variant),
            OursPreload = IsPreload(variant) ? PreloadLibrary : null,
            SocketInside = "/run/libvirt/virtlockd-sock", ProbeName = "REGISTER",
            ProbeFrame = sb => RegisterFrame((uint)sb.HolderPid),
        }
        : new DaemonSpec
        {
            Name = daemon, CBinary = Binary(daemon, "C"), OursBinary = Binary(daemon, variant),
            OursPreload = IsPreload(variant) ? PreloadLibrary : null,
            SocketInside = "/run/libvirt/virtlogd-sock", ProbeName = "APPEND_LOG_FILE",
            ProbeFrame = _ => AppendFrame(),
        };

    private static byte[] RegisterFrame(uint pid) =>
        new Rpc.Call(0xEA7BEEF, 1, 1 /* REGISTER */)
            .Opaque(Guid.NewGuid().ToByteArray()).String("benchreport-probe").U32(1).U32(pid).U32(0).Frame();

    private static byte[] AppendFrame() =>
        new Rpc.Call(0x87539319, 1, 4 /* DOMAIN_APPEND_LOG_FILE */)
            .String("qemu").Opaque(Guid.NewGuid().ToByteArray()).String("benchreport-probe")
            .String("/run/benchreport-probe.log").String("probe\n").U32(0).Frame();

    private static long CpuTicks(int pid)
    {
        var f = File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture); // utime + stime
    }

    /// <summary>One load run: a fresh daemon, K clients at once, throughput, daemon CPU per operation, RSS sampled throughout.</summary>
    private async Task LoadRunAsync(string daemon, string variant, int run)
    {
        var spec = Spec(daemon, variant);
        var kind = variant == "C" ? Kind.C : Kind.Ours;
        var ds = await spec.StartAsync(kind, Args(daemon, variant));
        using var stopSampling = new CancellationTokenSource();
        var sampler = SampleRssAsync(ds.Daemon.Pid, daemon, variant, run, stopSampling.Token);
        try
        {
            var k = opt.Clients;
            var logDir = Path.Combine(_work, $"{daemon}-{variant}-{run}");
            Directory.CreateDirectory(logDir);
            long ops;
            string unit, opName;
            double perOpScale;
            var clients = new Child[k];
            long records = 0; const int size = 4096;
            if (daemon == "virtlockd")
            {
                ops = (long)k * opt.LockCycles; unit = "cycles/s"; opName = "cycle"; perOpScale = 1;
            }
            else
            {
                records = (long)opt.LogMb * 1_000_000 / size / k;
                ops = records * k * size; unit = "MB/s"; opName = "MB"; perOpScale = 1e6;
            }
            long cpu0 = CpuTicks(ds.Daemon.Pid);
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < k; i++)
            {
                var file = Path.Combine(logDir, $"f{i}");
                clients[i] = daemon == "virtlockd"
                    ? ds.Sandbox.StartInside($"lockclient {i}", _lockclient, ["bench", "--disk", CreateEmpty(file), "--cycles", opt.LockCycles.ToString()])
                    : ds.Sandbox.StartInside($"logclient {i}", _logclient, ["bench", "--name", $"benchreport-{i:D2}", "--uuid", Guid.NewGuid().ToString("N"),
                        "--path", file + ".log", "--records", records.ToString(), "--size", size.ToString(), "--truncate"]);
            }
            var oks = await Task.WhenAll(clients.Select(c => c.WaitAsync(TimeSpan.FromSeconds(300))));
            double wall = (Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency;
            long ticks = CpuTicks(ds.Daemon.Pid) - cpu0;
            var bad = clients.Where((c, i) => !oks[i] || c.ExitCode != 0).ToList();
            if (bad.Count > 0 || !ds.Daemon.IsRunning)
            {
                _notes.Add($"FAIL {daemon} {variant} run {run}: {bad.Count} client(s) failed" +
                    (bad.Count > 0 ? $" ({Trim(bad[0].Stderr)})" : "") + (ds.Daemon.IsRunning ? "" : $"; the daemon died: {Trim(ds.Daemon.Stderr)}"));
                return;
            }
            double rate = ops / perOpScale / wall;
            _samples.Add(new Sample("throughput", daemon, variant, run, rate, unit));
            // CPU per operation: the counter moves in 1/CLK_TCK s; zero ticks means "below resolution", not 0
            double resolutionUs = 1e6 / ClkTck / (ops / perOpScale);
            if (ticks == 0)
                _samples.Add(new Sample("cpu_per_op", daemon, variant, run, double.NaN, $"us/{opName}",
                    $"below the counter's resolution (< {resolutionUs:F1} us/{opName}: 0 ticks of {1000 / ClkTck} ms)"));
            else
                _samples.Add(new Sample("cpu_per_op", daemon, variant, run, ticks * 1e6 / ClkTck / (ops / perOpScale), $"us/{opName}",
                    $"{ticks} ticks; resolution {resolutionUs:F1} us/{opName}"));
            var (rss, hwm) = Mem.ReadRss(ds.Daemon.Pid);
            _samples.Add(new Sample("rss_after", daemon, variant, run, rss, "MB"));
            _samples.Add(new Sample("rss_peak", daemon, variant, run, hwm, "MB"));
            _samples.Add(new Sample("rss_idle", daemon, variant, run, ds.IdleRssMb, "MB"));
            Directory.Delete(logDir, true);
        }
        finally
        {
            stopSampling.Cancel();
            await sampler;
            await DaemonSpec.StopAsync(ds);
        }
    }

    private static string CreateEmpty(string f) { File.WriteAllText(f, ""); return f; }

    private async Task SampleRssAsync(int pid, string daemon, string variant, int run, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        while (!ct.IsCancellationRequested)
        {
            var (rss, _) = Mem.ReadRss(pid);
            if (!double.IsNaN(rss)) lock (_rss) _rss.Add((daemon, variant, run, sw.Elapsed.TotalMilliseconds, rss));
            try { await Task.Delay(opt.RssIntervalMs, ct); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>
    /// Handoff blackout of a variant onto itself (C>C, ours>ours): the daemon started from its own path (argv[0]),
    /// K idle connections kept, SIGUSR1, then: its stack start moves (it exec'd; /proc/PID/stat field 28 is new for
    /// every image under ASLR), then the first probe on a fresh connection is answered. Blackout = SIGUSR1 to that reply.
    /// </summary>
    private async Task HandoffAsync(string daemon, string variant, int run)
    {
        var spec = Spec(daemon, variant);
        var ds = await spec.StartAsync(variant == "C" ? Kind.C : Kind.Ours, Args(daemon, variant));
        var kept = new List<Socket>();
        try
        {
            var path = ds.Sandbox.HostPath(spec.SocketInside);
            for (int i = 0; i < opt.Clients; i++)
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                s.Connect(new UnixDomainSocketEndPoint(path));
                if (daemon == "virtlockd") { s.Send(RegisterFrame((uint)ds.Sandbox.HolderPid)); Rpc.ReadFrame(s); }
                kept.Add(s);
            }
            var stack0 = StartStack(ds.Daemon.Pid);
            long t0 = Stopwatch.GetTimestamp();
            Native.Kill(ds.Daemon.Pid, 10 /* SIGUSR1 */);
            var deadline = t0 + 15 * Stopwatch.Frequency;
            while (StartStack(ds.Daemon.Pid) == stack0)
            {
                if (Stopwatch.GetTimestamp() > deadline || !ds.Daemon.IsRunning)
                {
                    _notes.Add($"FAIL handoff {daemon} {variant} run {run}: no exec within 15 s (running: {ds.Daemon.IsRunning}) {Trim(ds.Daemon.Stderr)}");
                    return;
                }
                Thread.SpinWait(200);
            }
            long tExec = Stopwatch.GetTimestamp();
            while (true)
            {
                if (Stopwatch.GetTimestamp() > deadline || !ds.Daemon.IsRunning)
                {
                    _notes.Add($"FAIL handoff {daemon} {variant} run {run}: not served within 15 s {Trim(ds.Daemon.Stderr)}");
                    return;
                }
                try
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    s.Connect(new UnixDomainSocketEndPoint(path));
                    s.ReceiveTimeout = 5000;
                    s.Send(daemon == "virtlockd" ? RegisterFrame((uint)ds.Sandbox.HolderPid) : AppendFrame());
                    var reply = Rpc.ReadFrame(s);
                    if (BinaryPrimitives.ReadInt32BigEndian(reply.AsSpan(24)) == 0) break;
                }
                catch (SocketException) { }
                Thread.Sleep(1);
            }
            long t1 = Stopwatch.GetTimestamp();
            _samples.Add(new Sample("handoff_blackout", daemon, variant, run, (t1 - t0) * 1000.0 / Stopwatch.Frequency, "ms",
                $"signal>exec {(tExec - t0) * 1000.0 / Stopwatch.Frequency:F2} ms"));
        }
        finally
        {
            foreach (var s in kept) s.Dispose();
            await DaemonSpec.StopAsync(ds);
        }
    }

    private static string StartStack(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[25]; }
        catch (IOException) { return ""; }
    }

    private void WriteCsv()
    {
        var sb = new StringBuilder("metric,daemon,variant,run,value,unit,note\n");
        foreach (var s in _samples)
            sb.AppendLine(string.Join(',', s.Metric, s.Daemon, s.Variant, s.Run,
                double.IsNaN(s.Value) ? "" : s.Value.ToString("R", CultureInfo.InvariantCulture), s.Unit, Csv(s.Note)));
        File.WriteAllText(Path.Combine(_dir, "figures.csv"), sb.ToString());
        var r = new StringBuilder("daemon,variant,run,t_ms,rss_mb\n");
        foreach (var x in _rss)
            r.AppendLine(FormattableString.Invariant($"{x.Daemon},{x.Variant},{x.Run},{x.TMs:F1},{x.RssMb:F3}"));
        File.WriteAllText(Path.Combine(_dir, "rss.csv"), r.ToString());
    }

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    private static readonly (string Metric, string Title, bool HigherIsBetter)[] Metrics =
    [
        ("throughput", "throughput", true),
        ("cpu_per_op", "daemon CPU per operation", false),
        ("rss_peak", "peak RSS under load (VmHWM)", false),
        ("handoff_blackout", "SIGUSR1 handoff blackout", false),
    ];

    /// <summary>ours/C per paired run (run i of the variant against run i of C), as median (min–max).</summary>
    private (double Med, double Min, double Max, int N, int Below)? Ratio(string metric, string daemon, string variant)
    {
        var c = _samples.Where(s => s.Metric == metric && s.Daemon == daemon && s.Variant == "C").ToDictionary(s => s.Run, s => s.Value);
        var o = _samples.Where(s => s.Metric == metric && s.Daemon == daemon && s.Variant == variant).ToDictionary(s => s.Run, s => s.Value);
        var pairs = o.Keys.Where(c.ContainsKey).ToList();
        int below = pairs.Count(k => double.IsNaN(c[k]) || double.IsNaN(o[k]));
        var ratios = pairs.Where(k => !double.IsNaN(c[k]) && !double.IsNaN(o[k]) && c[k] > 0).Select(k => o[k] / c[k]).Order().ToList();
        if (ratios.Count == 0) return pairs.Count > 0 ? (double.NaN, double.NaN, double.NaN, 0, below) : null;
        return (Stats.Median(ratios), ratios[0], ratios[^1], ratios.Count, below);
    }

    private string Markdown(DateTime started, string load0)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# C daemons against ours: {started:yyyy-MM-dd}");
        sb.AppendLine();
        sb.AppendLine("## Summary");
        sb.AppendLine();
        sb.AppendLine("One line per metric, daemon and configuration: **ours / C**, the median over paired runs (run *i* of ours against run *i* of C in this same report), with the range (min–max) over those pairs. " +
            "For throughput > 1 means ours is faster; for CPU, memory and blackout > 1 means ours uses more / takes longer.");
        sb.AppendLine();
        foreach (var (metric, title, higher) in Metrics)
            foreach (var d in new[] { "virtlockd", "virtlogd" })
                foreach (var (label, _) in opt.Configs)
                {
                    var r = Ratio(metric, d, label);
                    var unit = _samples.FirstOrDefault(s => s.Metric == metric && s.Daemon == d)?.Unit ?? "";
                    if (r is null) { sb.AppendLine($"- {title}, {d}, {label}: no figures (see Notes)"); continue; }
                    var (med, min, max, n, below) = r.Value;
                    var cMed = MedianOf(metric, d, "C");
                    var oMed = MedianOf(metric, d, label);
                    var text = n == 0
                        ? "below the counter's resolution in every run: no ratio"
                        : $"**{med:F2}×** ({min:F2}–{max:F2}, {n} pairs{(below > 0 ? $", {below} below resolution left out" : "")})";
                    sb.AppendLine($"- {title}, {d}, {label}: {text}; C {Fmt(cMed)} vs {Fmt(oMed)} {unit} (medians)");
                }
        sb.AppendLine();
        sb.AppendLine("![throughput](throughput.png)");
        sb.AppendLine("![cpu](cpu_per_op.png)");
        sb.AppendLine("![rss](rss.png)");
        sb.AppendLine("![blackout](handoff_blackout.png)");
        sb.AppendLine();
        sb.AppendLine("## How it was measured");
        sb.AppendLine();
        sb.AppendLine($"- Variants: **C** = `/usr/sbin/<daemon>`; " + string.Join("; ", opt.Configs.Select(c =>
            c.Config == Preload
                ? $"**{c.Label}** = `/usr/sbin/<daemon>` with `LD_PRELOAD=artifacts/lib/libvirt-managed.so` (the C daemon on our exported lock space, rotating file and event loop)"
                : $"**{c.Label}** = `artifacts/bin/<daemon>` with config `{(c.Config.Length == 0 ? "(no *_impl keys: the defaults)" : c.Config.Replace("\n", "; "))}`")) +
            ". A daemon ignores the keys it does not read (virtlockd: rotating_file_impl; virtlogd: lock_space_impl), and each daemon logs the implementation every subsystem runs. " +
            "virtlogd runs with `max_size = 1000000000` for every variant (no rotation).");
        sb.AppendLine($"- Load runs: {opt.Repeat} per daemon and variant, order rotated per run; each a fresh private mount namespace and a fresh daemon, then {opt.Clients} client processes at once through libvirt's own client library: " +
            $"virtlockd: `lockclient bench` × {opt.LockCycles} acquire+release cycles each; virtlogd: `logclient bench`, {opt.LogMb} MB in total as 4096-byte records.");
        sb.AppendLine("- **throughput** = work / wall time from the first client's start to the last client's exit (client start-up included).");
        sb.AppendLine($"- **daemon CPU per operation** = the daemon's utime+stime over the client phase (`/proc/PID/stat`, counted in {1000 / ClkTck} ms ticks) / operations (a cycle; a MB). A run whose daemon used 0 ticks is reported as below the counter's resolution, not as 0.");
        sb.AppendLine($"- **RSS**: `VmRSS` sampled every {opt.RssIntervalMs} ms from the daemon's first reply to the end of the load run (plot: run 1 of each variant); **peak** = `VmHWM` after the run.");
        sb.AppendLine($"- **handoff blackout**: {opt.HandoffRuns} runs per daemon and variant onto itself (C>C, ours>ours), {opt.Clients} kept connections (virtlockd: registered); SIGUSR1 → the first reply on a new connection, which is opened only once the pid has a new process image (its stack start moved).");
        sb.AppendLine($"- Machine: {Machine.Describe()}; load average {load0} at start, {Machine.LoadAvg()} at the end. Other work on the machine is not controlled: compare the columns of this report, not figures across reports.");
        sb.AppendLine();
        sb.AppendLine("## All figures (median, min–max over runs)");
        sb.AppendLine();
        sb.AppendLine("| metric | daemon | variant | median | min–max | unit | runs |");
        sb.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var g in _samples.GroupBy(s => (s.Metric, s.Daemon, s.Variant)))
        {
            var vals = g.Where(s => !double.IsNaN(s.Value)).Select(s => s.Value).Order().ToList();
            var below = g.Count(s => double.IsNaN(s.Value));
            sb.AppendLine($"| {g.Key.Metric} | {g.Key.Daemon} | {g.Key.Variant} | {(vals.Count > 0 ? Fmt(Stats.Median(vals)) : "below resolution")} | " +
                $"{(vals.Count > 0 ? $"{Fmt(vals[0])}–{Fmt(vals[^1])}" : "")} | {g.First().Unit} | {vals.Count}{(below > 0 ? $" (+{below} below resolution)" : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine("Raw figures: [figures.csv](figures.csv) (one line per run and metric), [rss.csv](rss.csv) (every RSS sample).");
        sb.AppendLine();
        sb.AppendLine("## Notes");
        sb.AppendLine();
        if (_notes.Count == 0) sb.AppendLine("- Every run completed.");
        foreach (var n in _notes) sb.AppendLine($"- {n}");
        return sb.ToString();
    }

    private double MedianOf(string metric, string daemon, string variant)
    {
        var v = _samples.Where(s => s.Metric == metric && s.Daemon == daemon && s.Variant == variant && !double.IsNaN(s.Value)).Select(s => s.Value).ToList();
        return v.Count == 0 ? double.NaN : Stats.Median(v);
    }

    private static string Fmt(double v) => double.IsNaN(v) ? "below resolution" : v >= 100 ? v.ToString("F0") : v >= 10 ? v.ToString("F1") : v.ToString("F2");
}

public static class Plots
{
    public static void Write(string dir, List<Sample> samples, List<(string Daemon, string Variant, int Run, double TMs, double RssMb)> rss, List<string> variants)
    {
        Bars(Path.Combine(dir, "throughput.png"), samples, "throughput", variants, "throughput (virtlockd: cycles/s, virtlogd: MB/s)");
        Bars(Path.Combine(dir, "cpu_per_op.png"), samples, "cpu_per_op", variants, "daemon CPU per operation (virtlockd: us/cycle, virtlogd: us/MB)");
        Bars(Path.Combine(dir, "handoff_blackout.png"), samples, "handoff_blackout", variants, "SIGUSR1 handoff blackout (ms)");
        RssPlot(Path.Combine(dir, "rss.png"), rss, variants);
    }

    private static readonly ScottPlot.Color[] Palette =
        [ScottPlot.Colors.SteelBlue, ScottPlot.Colors.DarkOrange, ScottPlot.Colors.SeaGreen, ScottPlot.Colors.Crimson, ScottPlot.Colors.Purple];

    /// <summary>One panel per daemon side by side: a bar per variant at its median, every run as a dot.</summary>
    private static void Bars(string file, List<Sample> samples, string metric, List<string> variants, string title)
    {
        var daemons = new[] { "virtlockd", "virtlogd" };
        var plots = daemons.Select(d =>
        {
            var plt = new ScottPlot.Plot();
            var ticks = new List<(double, string)>();
            for (int i = 0; i < variants.Count; i++)
            {
                var vals = samples.Where(s => s.Metric == metric && s.Daemon == d && s.Variant == variants[i] && !double.IsNaN(s.Value))
                    .Select(s => s.Value).Order().ToList();
                ticks.Add((i, variants[i]));
                if (vals.Count == 0) continue;
                var bar = plt.Add.Bar(new ScottPlot.Bar { Position = i, Value = Stats.Median(vals), FillColor = Palette[i % Palette.Length].WithAlpha(0.6) });
                var dots = plt.Add.Markers(vals.Select(_ => (double)i).ToArray(), vals.ToArray());
                dots.Color = ScottPlot.Colors.Black;
                dots.MarkerSize = 5;
            }
            plt.Axes.Bottom.SetTicks(ticks.Select(t => t.Item1).ToArray(), ticks.Select(t => t.Item2).ToArray());
            plt.Axes.Margins(bottom: 0);
            plt.Title(d);
            return plt;
        }).ToList();
        Combine(file, plots, title);
    }

    private static void RssPlot(string file, List<(string Daemon, string Variant, int Run, double TMs, double RssMb)> rss, List<string> variants)
    {
        var plots = new[] { "virtlockd", "virtlogd" }.Select(d =>
        {
            var plt = new ScottPlot.Plot();
            for (int i = 0; i < variants.Count; i++)
            {
                var pts = rss.Where(x => x.Daemon == d && x.Variant == variants[i] && x.Run == 0).OrderBy(x => x.TMs).ToList();
                if (pts.Count == 0) continue;
                var sc = plt.Add.Scatter(pts.Select(p => p.TMs / 1000).ToArray(), pts.Select(p => p.RssMb).ToArray());
                sc.LegendText = variants[i];
                sc.Color = Palette[i % Palette.Length];
                sc.MarkerSize = 0;
            }
            plt.Title($"{d}: VmRSS during load run 1");
            plt.XLabel("s since the daemon's first reply");
            plt.YLabel("MB");
            plt.ShowLegend();
            return plt;
        }).ToList();
        Combine(file, plots, "RSS over time");
    }

    /// <summary>Render each panel to PNG (600x400) and save them side by side with ScottPlot's own image type.</summary>
    private static void Combine(string file, List<ScottPlot.Plot> plots, string title)
    {
        // ScottPlot 5 renders one plot per image; panels are saved next to each other by naming them -1, -2 and
        // a combined one is made through the multiplot layout
        var mp = new ScottPlot.Multiplot();
        mp.RemovePlot(mp.GetPlot(0));
        foreach (var p in plots) mp.AddPlot(p);
        mp.Layout = new ScottPlot.MultiplotLayouts.Columns();
        mp.SavePng(file, 600 * plots.Count, 400);
    }
}
