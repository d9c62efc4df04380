// lockbench: end-to-end throughput / startup / memory comparison of the C
// /usr/sbin/virtlockd (libvirt 9.0.0) and our managed drop-in
// <repo>/artifacts/bin/virtlockd, both driven by libvirt's OWN lock client
// (tests/LockClient: virLockManager* in libvirt.so.0 -> lockd.so).
//
//   dotnet run --project bench/LockBench -c Release -- [--cycles N] [--repeat R]
//       [--sustained SECONDS] [--sustained-cycles N] [--levels 1,4,16] [--no-ceiling] [--plugins] [--out FILE]
//
// At each level it also measures the ceiling: bench/StubDaemon on the same
// socket, answering every call OK at once, i.e. what libvirt's lock client
// itself can do on this machine; C and ours are reported as a share of it.
//
// Every daemon and client runs inside a private mount namespace with a tmpfs
// on /run (a `sleep` holder created by `unshare -m`, entered with `nsenter`),
// so the real /run and any system virtlockd are never touched. Every started
// process is in its own session (setsid) and is SIGKILLed (its group) on exit,
// Ctrl-C or exception. Every wait is bounded.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Libvirt.Bench.Common;
using static Libvirt.Bench.Common.BenchHost;
using static Libvirt.Bench.Common.Stats;

namespace Libvirt.Bench.LockBench;

internal static class Program
{
    public static int Main(string[] args) =>
        BenchHost.Run("lockbench", Options.Usage, args, Options.Parse, o => o.Help, o => new Bench(o).Run());
}

internal sealed class Options
{
    public int Cycles = 2000;
    public int Repeat = 3;
    public double Sustained = 20;
    public int[] Levels = [1, 4, 16];
    public int SustainedClients = 16;
    public int SustainedCycles = 300;
    public string? Out;
    public bool Ceiling = true;
    public bool Plugins;
    /// <summary>Config-file text for our daemon (';' between lines), e.g. its *_impl keys; null: no -f.</summary>
    public string? OursConfig;
    public bool Help;
    public string CommandLine = "";

    public const string Usage =
        "usage: dotnet run --project bench/LockBench -c Release -- [--cycles N] [--repeat R] [--sustained SECONDS] [--sustained-cycles N] [--levels 1,4,16] [--ours-config TEXT] [--out FILE]\n" +
        "  --cycles N          acquire+release cycles per lockclient process (default 2000)\n" +
        "  --repeat R          fresh-daemon repetitions per (daemon, level); the median is reported (default 3)\n" +
        "  --sustained S       seconds of repeated 16-client rounds per daemon on ONE kept daemon (default 20; 0 = off)\n" +
"  --sustained-cycles N  cycles per lockclient in each sustained round (default 300: short rounds show the trend)\n" +
        "  --levels L          comma-separated client concurrency levels (default 1,4,16)\n" +
        "  --no-ceiling        do not measure the stub daemon (bench/StubDaemon) that answers every call OK at once\n" +
        "  --plugins           also compare the lock-driver plugins: the C daemon driven through libvirt's lockd.so and through\n" +
        "                      ours (artifacts/lib/lock-driver/lockd.so), paired per repetition and level, ratio ours/C\n" +
        "  --ours-config TEXT  config file for our daemon (given with -f), ';' between lines, e.g.\n" +
        "                      'event_loop_impl = \"managed\";rpc_impl = \"managed\"' (default: none, every key at its default)\n" +
        "  --out FILE          results file (default bench/results/lock-<yyyy-MM-dd>.md)";

    public static Options Parse(string[] args)
    {
        var o = new Options { CommandLine = string.Join(' ', args) };
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--cycles": o.Cycles = PositiveInt(a, Next()); break;
                case "--sustained-cycles": o.SustainedCycles = PositiveInt(a, Next()); break;
                case "--repeat": o.Repeat = PositiveInt(a, Next()); break;
                case "--sustained":
                    if (!double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out o.Sustained) || o.Sustained < 0)
                        throw new ArgumentException("--sustained needs a number of seconds >= 0");
                    break;
                case "--levels":
                    o.Levels = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => PositiveInt(a, s)).ToArray();
                    if (o.Levels.Length == 0) throw new ArgumentException("--levels needs at least one level");
                    break;
                case "--out": o.Out = Next(); break;
                case "--no-ceiling": o.Ceiling = false; break;
                case "--ours-config": o.OursConfig = Next().Replace(";", "\n") + "\n"; break;
                case "--plugins": o.Plugins = true; break;
                case "-h": case "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument {a}");
            }
        }
        return o;
    }

    private static int PositiveInt(string name, string v) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new ArgumentException($"{name} needs a positive integer, got '{v}'");
}

internal sealed record RunResult(Kind Kind, int Clients, int CyclesPerClient, double WallSeconds,
    double WindowSeconds, double[] ClientSeconds, int Failures, string? FailureText, bool DaemonAlive)
{
    public long TotalCycles => (long)Clients * CyclesPerClient;
    /// <summary>Total cycles / wall time from starting the first client to the exit of the last (includes client startup).</summary>
    public double WallRate => TotalCycles / WallSeconds;
    /// <summary>Total cycles / union of the clients' own measured loops (earliest loop start to latest loop end).</summary>
    public double WindowRate => TotalCycles / WindowSeconds;
}

internal sealed class Bench(Options opt)
{
    private const string CDaemon = "/usr/sbin/virtlockd";
    private const string SocketInside = "/run/libvirt/virtlockd-sock";
    private string _repo = "", _ours = "", _lockclient = "", _stub = "", _diskDir = "", _oursPlugin = "";
    private readonly List<string> _notes = new();
    private string _loadStart = "";
    private DaemonSpec _spec = null!;

    private void Resolve()
    {
        _repo = FindRepo("LockBench");
        _ours = Path.Combine(_repo, "artifacts", "bin", "virtlockd");
        _lockclient = Path.Combine(_repo, "tests", "LockClient", "bin", "Release", "net10.0", "lockclient");
        _stub = Path.Combine(_repo, "bench", "StubDaemon", "bin", "Release", "net10.0", "stubdaemon");
        if (opt.Ceiling)
            Require([(_stub, $"the stub daemon {_stub} is missing: build it with `dotnet build Migration.sln -c Release` from {_repo}")]);
        _oursPlugin = Path.Combine(_repo, "artifacts", "lib", "lock-driver", "lockd.so");
        if (opt.Plugins)
            Require([(_oursPlugin, $"our lockd plugin {_oursPlugin} is missing: build it with `./build.sh publish` from {_repo}")]);
        Require([
            (_ours, $"our daemon {_ours} is missing: build it with `./build.sh publish` (NativeAOT) from {_repo}"),
            (_lockclient, $"the lock client {_lockclient} is missing: build it with `dotnet build Migration.sln -c Release` from {_repo}"),
            (CDaemon, $"the C daemon {CDaemon} is missing: apt-get install libvirt-daemon-system (libvirt 9.0.0)"),
        ]);
        _spec = new DaemonSpec
        {
            Name = "virtlockd", CBinary = CDaemon, OursBinary = _ours, StubBinary = _stub, SocketInside = SocketInside,
            // The lease owner registered is the sandbox holder (`sleep`); nothing is acquired, so
            // closing this connection never makes the daemon kill it.
            ProbeName = "REGISTER", ProbeFrame = sb => RegisterFrame((uint)sb.HolderPid),
        };
    }


    public int Run()
    {
        Resolve();
        _diskDir = Directory.CreateTempSubdirectory("lockbench-").FullName;
        Procs.AddDir(_diskDir);
        try { return RunAsync().GetAwaiter().GetResult(); }
        finally { Procs.KillAll(); Procs.DeleteDirs(); }
    }

    private string Disk(int i)
    {
        var p = Path.Combine(_diskDir, $"disk-{i:D2}.img");
        if (!File.Exists(p)) File.WriteAllBytes(p, []);
        return p;
    }

    private async Task<int> RunAsync()
    {
        var started = DateTime.Now;
        _loadStart = Machine.LoadAvg();
        Log($"lockbench: repo {_repo}; cycles/client {opt.Cycles}, repeat {opt.Repeat}, levels {string.Join(",", opt.Levels)}, sustained {opt.Sustained}s x {opt.SustainedCycles} cycles/client/round");
        var kinds = new[] { Kind.C, Kind.Ours };
        var fresh = opt.Ceiling ? [Kind.C, Kind.Ours, Kind.Stub] : kinds;
        var runs = new List<RunResult>();
        var startups = new Dictionary<Kind, List<DaemonStart>> { [Kind.C] = new(), [Kind.Ours] = new(), [Kind.Stub] = new() };
        var rssAfter = new Dictionary<Kind, List<(double rss, double hwm)>> { [Kind.C] = new(), [Kind.Ours] = new(), [Kind.Stub] = new() };

        // Fresh-daemon runs, interleaved: for each repetition, C1, ours1, stub1, C4, ours4, stub4, ...
        for (int r = 0; r < opt.Repeat; r++)
            foreach (int k in opt.Levels)
                foreach (var kind in fresh)
                {
                    var ds = await StartDaemonAsync(kind);
                    try
                    {
                        startups[kind].Add(ds);
                        var res = await RunClientsAsync(ds, kind, k);
                        runs.Add(res);
                        rssAfter[kind].Add(ReadRss(ds.Daemon.Pid));
                        Log($"  rep {r + 1}/{opt.Repeat} {Label(kind),-4} K={k,2}: {res.WallRate,8:F0} cycles/s wall, {res.WindowRate,8:F0} cycles/s client-window" +
                            $" (exec->reply {ds.ExecToFirstReplyMs:F1} ms, idle RSS {ds.IdleRssMb:F1} MB){(res.Failures > 0 ? $"  FAILURES {res.Failures}: {res.FailureText}" : "")}");
                    }
                    finally { await StopDaemonAsync(ds); }
                }

        // Plugins: the C daemon, driven through libvirt's lockd.so and through ours, paired per repetition and level.
        var pluginRuns = new List<(bool Ours, RunResult Run)>();
        if (opt.Plugins)
        {
            Log("plugins: the C daemon through libvirt's lockd.so, then through ours, per repetition and level");
            for (int r = 0; r < opt.Repeat; r++)
                foreach (int k in opt.Levels)
                    foreach (bool oursPlugin in new[] { false, true })
                    {
                        var ds = await StartDaemonAsync(Kind.C);
                        try
                        {
                            string[] extra = oursPlugin ? ["--plugin-dir", Path.GetDirectoryName(_oursPlugin)!] : [];
                            var res = await RunClientsAsync(ds, Kind.C, k, extraArgs: extra, label: oursPlugin ? "ours lockd.so" : "C lockd.so");
                            pluginRuns.Add((oursPlugin, res));
                            Log($"  rep {r + 1}/{opt.Repeat} {(oursPlugin ? "ours" : "C"),-4} plugin K={k,2}: {res.WallRate,8:F0} cycles/s wall, {res.WindowRate,8:F0} cycles/s client-window{(res.Failures > 0 ? $"  FAILURES {res.Failures}: {res.FailureText}" : "")}");
                        }
                        finally { await StopDaemonAsync(ds); }
                    }
        }

        // Sustained: one kept daemon per kind, alternating rounds of SustainedClients clients.
        var sustained = new Dictionary<Kind, List<RunResult>> { [Kind.C] = new(), [Kind.Ours] = new() };
        var sustainedRss = new Dictionary<Kind, (double start, (double rss, double hwm) end)>();
        if (opt.Sustained > 0)
        {
            Log($"sustained: {opt.SustainedClients}-client rounds of {opt.SustainedCycles} cycles/client on one kept daemon each, {opt.Sustained}s per daemon, rounds alternating C/ours");
            var dsC = await StartDaemonAsync(Kind.C);
            DaemonStart? dsO = null;
            try
            {
                dsO = await StartDaemonAsync(Kind.Ours);
                var spent = new Dictionary<Kind, double> { [Kind.C] = 0, [Kind.Ours] = 0 };
                int round = 0;
                while (kinds.Any(k => spent[k] < opt.Sustained) && round < 10_000)
                {
                    round++;
                    foreach (var kind in kinds)
                    {
                        if (spent[kind] >= opt.Sustained) continue;
                        var ds = kind == Kind.C ? dsC : dsO;
                        if (!ds.Daemon.IsRunning) { spent[kind] = double.MaxValue; _notes.Add($"sustained: {Label(kind)} daemon exited ({ds.Daemon.ExitCode}) before round {round}"); continue; }
                        var res = await RunClientsAsync(ds, kind, opt.SustainedClients, opt.SustainedCycles);
                        sustained[kind].Add(res);
                        spent[kind] += res.WallSeconds;
                        Log($"  round {round,2} {Label(kind),-4}: {res.WallRate,8:F0} cycles/s wall, {res.WindowRate,8:F0} cycles/s client-window, daemon RSS {ReadRss(ds.Daemon.Pid).rss:F1} MB{(res.Failures > 0 ? $"  FAILURES {res.Failures}: {res.FailureText}" : "")}");
                    }
                }
                sustainedRss[Kind.C] = (dsC.IdleRssMb, ReadRss(dsC.Daemon.Pid));
                sustainedRss[Kind.Ours] = (dsO.IdleRssMb, ReadRss(dsO.Daemon.Pid));
            }
            finally
            {
                await StopDaemonAsync(dsC);
                if (dsO != null) await StopDaemonAsync(dsO);
            }
        }

        var md = Report(started, runs, startups, rssAfter, sustained, sustainedRss, pluginRuns);
        WriteResults(md, opt.Out ?? Path.Combine(_repo, "bench", "results", $"lock-{started:yyyy-MM-dd}.md"));
        int failures = runs.Sum(r => r.Failures) + sustained.Values.SelectMany(x => x).Sum(r => r.Failures) + pluginRuns.Sum(p => p.Run.Failures);
        return failures > 0 ? 1 : 0;
    }

    private static string Label(Kind k) => DaemonSpec.Label(k);

    private string? _oursConfigFile;

    /// <summary>Ours gets <c>-f</c> with <see cref="Options.OursConfig"/> when one was given (the file is in
    /// /tmp, which the sandboxes share with the host).</summary>
    private Task<DaemonStart> StartDaemonAsync(Kind kind)
    {
        if (kind != Kind.Ours || opt.OursConfig is null)
            return _spec.StartAsync(kind);
        if (_oursConfigFile is null)
        {
            _oursConfigFile = Path.Combine(Path.GetTempPath(), $"lockbench-ours-{Environment.ProcessId}.conf");
            File.WriteAllText(_oursConfigFile, opt.OursConfig);
        }
        return _spec.StartAsync(kind, ["-f", _oursConfigFile]);
    }

    private static Task StopDaemonAsync(DaemonStart ds) => DaemonSpec.StopAsync(ds);

    private static (double rss, double hwm) ReadRss(int pid) => Mem.ReadRss(pid);

    private static byte[] RegisterFrame(uint pid) =>
        // virNetMessageHeader + virLockSpaceProtocolRegisterArgs {owner {uuid[16], name, id, pid}, flags}
        new Rpc.Call(0xEA7BEEF, 1, 1 /* REGISTER */)
            .Opaque(Guid.NewGuid().ToByteArray()).String("lockbench-probe").U32(1).U32(pid).U32(0)
            .Frame();

    /// <summary>Start K lockclient bench processes at once (distinct disks), wait for all (bounded).</summary>
    private async Task<RunResult> RunClientsAsync(DaemonStart ds, Kind kind, int k, int? cyclesPerClient = null,
        string[]? extraArgs = null, string? label = null)
    {
        label ??= Label(kind);
        int cycles = cyclesPerClient ?? opt.Cycles;
        var clients = new Child[k];
        var exitTicks = new long[k];
        var timeout = TimeSpan.FromSeconds(120 + (double)cycles * k / 200); // generous bound, ≥ 200 cycles/s
        for (int i = 0; i < k; i++) Disk(i);
        long t0 = Stopwatch.GetTimestamp();
        try
        {
            for (int i = 0; i < k; i++)
                clients[i] = ds.Sandbox.StartInside($"lockclient[{label} {i}]", _lockclient,
                    ["bench", "--disk", Disk(i), "--cycles", cycles.ToString(CultureInfo.InvariantCulture), .. extraArgs ?? []]);
            var waits = clients.Select(async (c, i) =>
            {
                bool ok = await c.WaitAsync(timeout);
                exitTicks[i] = Stopwatch.GetTimestamp();
                return ok;
            }).ToArray();
            var done = await Task.WhenAll(waits);
            long t1 = exitTicks.Max();
            double wall = (t1 - t0) / (double)Stopwatch.Frequency;

            int failures = 0;
            string? failText = null;
            var secs = new double[k];
            double windowStart = double.MaxValue, windowEnd = 0;
            for (int i = 0; i < k; i++)
            {
                var c = clients[i];
                string? why = null;
                if (!done[i]) why = $"timed out after {timeout}";
                else if (c.ExitCode != 0) why = $"exit {c.ExitCode}{(c.ExitCode > 128 ? $" (signal {c.ExitCode - 128}: killed by the daemon?)" : "")}";
                var line = c.Stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("cycles "));
                var parts = line?.Split(' ');
                if (why == null && (parts is not { Length: 4 } || !double.TryParse(parts[3], NumberStyles.Float, CultureInfo.InvariantCulture, out secs[i])))
                    why = "no 'cycles N seconds S' line";
                if (why != null)
                {
                    failures++;
                    failText ??= $"{c.Name}: {why}; stdout=[{c.Stdout.Trim()}] stderr=[{Trim(c.Stderr)}]";
                    continue;
                }
                double end = (exitTicks[i] - t0) / (double)Stopwatch.Frequency;
                windowEnd = Math.Max(windowEnd, end);
                windowStart = Math.Min(windowStart, end - secs[i]);
            }
            double window = failures == k ? double.NaN : windowEnd - Math.Max(0, windowStart);
            bool alive = ds.Daemon.IsRunning;
            if (!alive)
            {
                failures++;
                failText ??= $"{ds.Daemon.Name} exited ({ds.Daemon.ExitCode}); stderr=[{Trim(ds.Daemon.Stderr)}]";
            }
            if (failures > 0) _notes.Add($"{label} K={k}: {failures} failure(s): {failText}");
            return new RunResult(kind, k, cycles, wall, window, secs, failures, failText, alive);
        }
        finally
        {
            foreach (var c in clients) c?.Dispose();
        }
    }


    private string Report(DateTime started, List<RunResult> runs, Dictionary<Kind, List<DaemonStart>> startups,
        Dictionary<Kind, List<(double rss, double hwm)>> rssAfter, Dictionary<Kind, List<RunResult>> sustained,
        Dictionary<Kind, (double start, (double rss, double hwm) end)> sustainedRss, List<(bool Ours, RunResult Run)> pluginRuns)
    {
        var sb = new StringBuilder();
        Machine.Preamble(sb, "virtlockd lock throughput: C libvirt 9.0.0 vs ours", started, _loadStart, "LockBench", opt.CommandLine);
        sb.AppendLine($"- C daemon: `{CDaemon}`; ours: `artifacts/bin/virtlockd` (NativeAOT, `./build.sh publish`); client: `tests/LockClient/bin/Release/net10.0/lockclient` (`dotnet build Migration.sln -c Release`)");
        sb.AppendLine($"- Each client process: `lockclient bench --disk <own file> --cycles {opt.Cycles}` = {opt.Cycles} × (virLockManagerAcquire + virLockManagerRelease) through libvirt.so.0 → lockd.so, default lockd config (auto disk leases, fcntl on the disk file itself; lockd.so opens a new daemon connection for each acquire and each release); each client registers its own pid as lease owner and releases before closing its fd.");
        sb.AppendLine($"- Fresh runs: for each repetition (R = {opt.Repeat}) and level K ∈ {{{string.Join(", ", opt.Levels)}}}, in the order C, ours: a fresh private mount namespace (`unshare -m`, tmpfs on /run), a fresh daemon with no arguments (`nsenter -t <holder> -m -- <daemon>`), then K clients started together, each on its own disk file.");
        sb.AppendLine("- **wall** = K·N / (start of the first client → exit of the last), so it includes the clients' own process start-up (.NET, libvirt init); **client window** = K·N / (earliest start → latest end of the clients' own timed loops, from the `seconds S` each client reports). Both are cycles (acquire+release) per second over all clients. Values: median of R (min–max); the ratio is ours/C per paired repetition.");
        sb.AppendLine();

        sb.AppendLine("## Fresh daemon, cycles/s");
        sb.AppendLine();
        sb.AppendLine("| K clients | C wall | ours wall | ours/C wall | C client window | ours client window | ours/C window | failures C/ours |");
        sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int k in opt.Levels)
        {
            var c = runs.Where(r => r.Kind == Kind.C && r.Clients == k).ToList();
            var o = runs.Where(r => r.Kind == Kind.Ours && r.Clients == k).ToList();
            var ratioW = c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : b.WallRate / a.WallRate);
            var ratioC = c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : b.WindowRate / a.WindowRate);
            sb.AppendLine($"| {k} | {MedRange(c.Select(r => r.WallRate), "F0")} | {MedRange(o.Select(r => r.WallRate), "F0")} | {MedRange(ratioW, "F2")} " +
                          $"| {MedRange(c.Select(r => r.WindowRate), "F0")} | {MedRange(o.Select(r => r.WindowRate), "F0")} | {MedRange(ratioC, "F2")} " +
                          $"| {c.Sum(r => r.Failures)}/{o.Sum(r => r.Failures)} |");
        }
        sb.AppendLine();

        if (opt.Ceiling)
        {
            sb.AppendLine("## Against the ceiling (client window, cycles/s)");
            sb.AppendLine();
            sb.AppendLine("The ceiling is bench/StubDaemon on the same socket: it answers every call with an empty OK reply at once, so it is what libvirt's lock client itself reaches on this machine. Shares are per paired repetition.");
            sb.AppendLine();
            sb.AppendLine("| K clients | ceiling | C / ceiling | ours / ceiling | failures stub |");
            sb.AppendLine("|---:|---:|---:|---:|---:|");
            foreach (int k in opt.Levels)
            {
                var c = runs.Where(r => r.Kind == Kind.C && r.Clients == k).ToList();
                var o = runs.Where(r => r.Kind == Kind.Ours && r.Clients == k).ToList();
                var st = runs.Where(r => r.Kind == Kind.Stub && r.Clients == k).ToList();
                static IEnumerable<double> Share(List<RunResult> x, List<RunResult> ceil) =>
                    x.Zip(ceil, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : a.WindowRate / b.WindowRate);
                sb.AppendLine($"| {k} | {MedRange(st.Select(r => r.WindowRate), "F0")} | {MedRange(Share(c, st), "F2")} | {MedRange(Share(o, st), "F2")} | {st.Sum(r => r.Failures)} |");
            }
            sb.AppendLine();
        }

        sb.AppendLine("## Start-up and memory (every fresh daemon above)");
        sb.AppendLine();
        sb.AppendLine("| | C | ours | ours/C |");
        sb.AppendLine("|---|---:|---:|---:|");
        double mc = Median(startups[Kind.C].Select(s => s.ExecToFirstReplyMs)), mo = Median(startups[Kind.Ours].Select(s => s.ExecToFirstReplyMs));
        sb.AppendLine($"| exec → first REGISTER reply, ms (n = {startups[Kind.C].Count}/{startups[Kind.Ours].Count}) | {MedRange(startups[Kind.C].Select(s => s.ExecToFirstReplyMs), "F1")} | {MedRange(startups[Kind.Ours].Select(s => s.ExecToFirstReplyMs), "F1")} | {mo / mc:F2} |");
        double rc = Median(startups[Kind.C].Select(s => s.IdleRssMb)), ro = Median(startups[Kind.Ours].Select(s => s.IdleRssMb));
        sb.AppendLine($"| idle VmRSS after start, MB | {MedRange(startups[Kind.C].Select(s => s.IdleRssMb), "F1")} | {MedRange(startups[Kind.Ours].Select(s => s.IdleRssMb), "F1")} | {ro / rc:F2} |");
        double ac = Median(rssAfter[Kind.C].Select(s => s.rss)), ao = Median(rssAfter[Kind.Ours].Select(s => s.rss));
        sb.AppendLine($"| VmRSS after the run, MB | {MedRange(rssAfter[Kind.C].Select(s => s.rss), "F1")} | {MedRange(rssAfter[Kind.Ours].Select(s => s.rss), "F1")} | {ao / ac:F2} |");
        double hc = Median(rssAfter[Kind.C].Select(s => s.hwm)), ho = Median(rssAfter[Kind.Ours].Select(s => s.hwm));
        sb.AppendLine($"| VmHWM (peak RSS) after the run, MB | {MedRange(rssAfter[Kind.C].Select(s => s.hwm), "F1")} | {MedRange(rssAfter[Kind.Ours].Select(s => s.hwm), "F1")} | {ho / hc:F2} |");
        sb.AppendLine();
        sb.AppendLine("exec → first reply is measured from `Process.Start` of `setsid nsenter -t <holder> -m -- <daemon>` (both exec in place) until a raw-socket connect + REGISTER (procedure 1 of program 0xEA7BEEF) gets an OK reply; the socket is polled every ~1 ms. Idle VmRSS is read from /proc/<pid>/status 200 ms after that reply.");
        sb.AppendLine();

        if (opt.Sustained > 0)
        {
            sb.AppendLine($"## Sustained: one kept daemon, repeated {opt.SustainedClients}-client rounds ({opt.SustainedCycles} cycles/client), ~{opt.Sustained:F0} s per daemon");
            sb.AppendLine();
            sb.AppendLine("Rounds alternate C, ours, C, ours, … (both daemons stay up in their own namespaces).");
            sb.AppendLine();
            sb.AppendLine("| round | C wall | C client window | ours wall | ours client window |");
            sb.AppendLine("|---:|---:|---:|---:|---:|");
            int n = Math.Max(sustained[Kind.C].Count, sustained[Kind.Ours].Count);
            string Cell(List<RunResult> l, int i, bool wall) => i < l.Count
                ? (l[i].Failures > 0 ? "FAIL " : "") + (wall ? l[i].WallRate : l[i].WindowRate).ToString("F0") : "";
            for (int i = 0; i < n; i++)
                sb.AppendLine($"| {i + 1} | {Cell(sustained[Kind.C], i, true)} | {Cell(sustained[Kind.C], i, false)} | {Cell(sustained[Kind.Ours], i, true)} | {Cell(sustained[Kind.Ours], i, false)} |");
            sb.AppendLine();
            foreach (var kind in new[] { Kind.C, Kind.Ours })
            {
                var l = sustained[kind];
                if (l.Count == 0) continue;
                var first = l[0].WindowRate; var last = l[^1].WindowRate;
                string rss = sustainedRss.TryGetValue(kind, out var v) ? $"; VmRSS {v.start:F1} MB at start → {v.end.rss:F1} MB at end (peak {v.end.hwm:F1} MB)" : "";
                sb.AppendLine($"- {Label(kind)}: {l.Count} rounds, {l.Sum(r => r.WallSeconds):F1} s; client-window median {Median(l.Select(r => r.WindowRate)):F0} cycles/s, first {first:F0} → last {last:F0} ({(last / first - 1) * 100:+0;-0}%); failures {l.Sum(r => r.Failures)}{rss}");
            }
            sb.AppendLine();
        }

        if (pluginRuns.Count > 0)
        {
            sb.AppendLine("## Lock-driver plugin: libvirt's lockd.so vs ours (C daemon), cycles/s");
            sb.AppendLine();
            sb.AppendLine($"The same fresh-daemon runs against the C daemon, each client's libvirt lock manager loading libvirt's `lockd.so` or ours (`artifacts/lib/lock-driver/lockd.so`, through `LIBVIRT_LOCK_MANAGER_PLUGIN_DIR`), C plugin first in each pair; R = {opt.Repeat}.");
            sb.AppendLine();
            sb.AppendLine("| K clients | C plugin wall | our plugin wall | ours/C wall | C plugin client window | our plugin client window | ours/C window | failures C/ours |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (int k in opt.Levels)
            {
                var c = pluginRuns.Where(p => !p.Ours && p.Run.Clients == k).Select(p => p.Run).ToList();
                var o = pluginRuns.Where(p => p.Ours && p.Run.Clients == k).Select(p => p.Run).ToList();
                var ratioW = c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : b.WallRate / a.WallRate);
                var ratioC = c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : b.WindowRate / a.WindowRate);
                sb.AppendLine($"| {k} | {MedRange(c.Select(r => r.WallRate), "F0")} | {MedRange(o.Select(r => r.WallRate), "F0")} | {MedRange(ratioW, "F2")} " +
                              $"| {MedRange(c.Select(r => r.WindowRate), "F0")} | {MedRange(o.Select(r => r.WindowRate), "F0")} | {MedRange(ratioC, "F2")} " +
                              $"| {c.Sum(r => r.Failures)}/{o.Sum(r => r.Failures)} |");
            }
            sb.AppendLine();
        }

        sb.AppendLine("## Notes");
        sb.AppendLine();
        if (_notes.Count == 0) sb.AppendLine("- No client failed, no client was killed, no daemon exited during the runs.");
        foreach (var n in _notes) sb.AppendLine($"- {n}");
        if (Environment.ProcessorCount < 16)
            sb.AppendLine($"- With {Environment.ProcessorCount} CPUs, K = {opt.Levels.Max()} oversubscribes the machine: the clients and the daemon share {Environment.ProcessorCount} CPUs, so these figures measure the whole system (client + libvirt client library + daemon), not the daemon alone.");
        return sb.ToString();
    }
}