// logbench: end-to-end log throughput / startup / memory comparison of the C
// /usr/sbin/virtlogd (libvirt 9.0.0) and our managed drop-in
// <repo>/artifacts/bin/virtlogd, both driven by libvirt's OWN log client
// (tests/LogClient: virLogManagerDomainOpenLogFile in libvirt.so.0, then
// plain write(2) of records into the returned pipe fd).
//
//   dotnet run --project bench/LogBench -c Release -- [--mb M] [--sizes 64,4096]
//       [--levels 1,4,16] [--configs rotate,norotate] [--repeat R] [--no-ceiling] [--log-dir DIR] [--out FILE]
//
// With norotate it also measures the ceiling: bench/LogCopier (logcopier.c,
// compiled here with cc) on virtlogd's socket, answering only the open and
// position calls and copying every pipe into its file with plain read()/write()
// on one epoll thread; the same logclient writes the same bytes into the same
// kind of pipe, so C and ours are reported as a share of a plain copy.
//
// Every daemon and client runs inside a private mount namespace with a tmpfs
// on /run (bench/Common: Sandbox), so the real /run and any system virtlogd
// are never touched; the domain logs go to a fresh directory under --log-dir
// (default: a new temp directory), deleted after each run. Every started
// process is SIGKILLed (its group) on exit, Ctrl-C or exception. Every wait is
// bounded.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Libvirt.Bench.Common;
using static Libvirt.Bench.Common.BenchHost;
using static Libvirt.Bench.Common.Stats;

namespace Libvirt.Bench.LogBench;

internal static class Program
{
    public static int Main(string[] args) =>
        BenchHost.Run("logbench", Options.Usage, args, Options.Parse, o => o.Help, o => new Bench(o).Run());
}

internal sealed record LogConfig(string Name, long MaxSize, int MaxBackups, string Description)
{
    public static readonly LogConfig Rotate = new("rotate", 2 * 1024 * 1024, 3, "default rotation: max_size = 2 MiB, max_backups = 3");
    public static readonly LogConfig NoRotate = new("norotate", 1L << 30, 3, "no rotation in practice: max_size = 1 GiB, max_backups = 3");
    public static LogConfig Parse(string s) => s switch
    {
        "rotate" => Rotate,
        "norotate" => NoRotate,
        _ => throw new ArgumentException($"unknown config '{s}' (rotate, norotate)"),
    };
    public string ConfText => $"max_size = {MaxSize}\nmax_backups = {MaxBackups}\n";
}

internal sealed class Options
{
    public double MbPerRun = 32;
    public int[] Sizes = [64, 4096];
    public int[] Levels = [1, 4, 16];
    public LogConfig[] Configs = [LogConfig.Rotate, LogConfig.NoRotate];
    public int Repeat = 5;
    public bool Ceiling = true;
    public string? LogDir;
    public string? Out;
    /// <summary>Lines added to ours' config file only (the *_impl keys), or null.</summary>
    public string? OursConfig;
    public bool Help;
    public string CommandLine = "";

    public const string Usage =
        "usage: dotnet run --project bench/LogBench -c Release -- [--mb M] [--sizes 64,4096] [--levels 1,4,16] [--configs rotate,norotate] [--repeat R] [--no-ceiling] [--ours-config TEXT] [--log-dir DIR] [--out FILE]\n" +
        "  --mb M            MB (10^6 bytes) written per run in total, split evenly over the K clients (default 32)\n" +
        "  --sizes S         comma-separated record sizes in bytes, each >= 12 (default 64,4096)\n" +
        "  --levels L        comma-separated numbers of domains writing at once, one logclient each (default 1,4,16)\n" +
        "  --configs C       rotate (max_size 2 MiB, max_backups 3: libvirt's default) and/or norotate (max_size 1 GiB) (default both)\n" +
        "  --repeat R        fresh-daemon repetitions per (config, size, level, daemon); the median is reported (default 5)\n" +
        "  --no-ceiling      do not measure the plain pipe-to-file copy (bench/LogCopier) beside the daemons in the norotate config\n" +
        "  --ours-config T   config lines for ours only, ';'-separated (e.g. the *_impl keys), after the config's own\n" +
        "  --log-dir DIR     parent of the per-run log directories (default: a new directory under $TMPDIR or /tmp)\n" +
        "  --out FILE        results file (default bench/results/log-<yyyy-MM-dd>.md)";

    public static Options Parse(string[] args)
    {
        var o = new Options { CommandLine = string.Join(' ', args) };
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--mb":
                    if (!double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out o.MbPerRun) || o.MbPerRun <= 0)
                        throw new ArgumentException("--mb needs a number > 0");
                    break;
                case "--sizes":
                    o.Sizes = List(a, Next());
                    if (o.Sizes.Any(s => s < 12)) throw new ArgumentException("--sizes: each record size must be >= 12");
                    break;
                case "--levels": o.Levels = List(a, Next()); break;
                case "--configs":
                    o.Configs = Next().Split(',', StringSplitOptions.RemoveEmptyEntries).Select(LogConfig.Parse).Distinct().ToArray();
                    if (o.Configs.Length == 0) throw new ArgumentException("--configs needs at least one config");
                    break;
                case "--repeat": o.Repeat = PositiveInt(a, Next()); break;
                case "--no-ceiling": o.Ceiling = false; break;
                case "--log-dir": o.LogDir = Next(); break;
                case "--ours-config": o.OursConfig = Next().Replace(";", "\n") + "\n"; break;
                case "--out": o.Out = Next(); break;
                case "-h": case "--help": o.Help = true; break;
                default: throw new ArgumentException($"unknown argument {a}");
            }
        }
        return o;
    }

    private static int[] List(string name, string v)
    {
        var l = v.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => PositiveInt(name, s)).ToArray();
        return l.Length > 0 ? l : throw new ArgumentException($"{name} needs at least one value");
    }

    private static int PositiveInt(string name, string v) =>
        int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new ArgumentException($"{name} needs a positive integer, got '{v}'");
}

internal sealed record RunResult(Kind Kind, LogConfig Config, int Size, int Clients, long RecordsPerClient,
    long Bytes, double WallSeconds, double WindowSeconds, double DaemonCpuSeconds, int Failures, string? FailureText,
    long KeptBytes, int Backups)
{
    /// <summary>Total bytes written by all clients / (start of the first client → exit of the last), MB/s (10^6).</summary>
    public double WallMbps => Bytes / 1e6 / WallSeconds;
    /// <summary>Total bytes / (earliest start → latest end of the clients' own timed open+write+position).</summary>
    public double WindowMbps => Bytes / 1e6 / WindowSeconds;
    /// <summary>Daemon CPU time (user+system) per MB written.</summary>
    public double CpuMsPerMb => DaemonCpuSeconds * 1000 / (Bytes / 1e6);
}

internal sealed class Bench(Options opt)
{
    private const string CDaemon = "/usr/sbin/virtlogd";
    private const string SocketInside = "/run/libvirt/virtlogd-sock";
    private string _repo = "", _ours = "", _logclient = "", _dir = "", _fsType = "?", _copierSource = "", _copier = "";
    private readonly List<string> _notes = new();
    private string _loadStart = "";
    private DaemonSpec _spec = null!;
    private int _runNo;

    // Kind.Stub is the ceiling here: bench/LogCopier, not bench/StubDaemon
    private static string Label(Kind k) => k == Kind.Stub ? "ceiling" : DaemonSpec.Label(k);

    /// <summary>The ceiling runs beside C and ours in the norotate config only: the copier never rotates.</summary>
    private bool CeilingIn(LogConfig cfg) => opt.Ceiling && cfg == LogConfig.NoRotate;

    private const string CopierFlags = "-O2 -Wall";

    private void Resolve()
    {
        _repo = FindRepo("LogBench");
        _ours = Path.Combine(_repo, "artifacts", "bin", "virtlogd");
        _logclient = Path.Combine(_repo, "tests", "LogClient", "bin", "Release", "net10.0", "logclient");
        Require([
            (_ours, $"our daemon {_ours} is missing: build it with `./build.sh publish` (NativeAOT) from {_repo}"),
            (_logclient, $"the log client {_logclient} is missing: build it with `dotnet build Migration.sln -c Release` from {_repo}"),
            (CDaemon, $"the C daemon {CDaemon} is missing: apt-get install libvirt-daemon-system (libvirt 9.0.0)"),
        ]);
        _copierSource = Path.Combine(_repo, "bench", "LogCopier", "logcopier.c");
        if (opt.Ceiling && opt.Configs.Contains(LogConfig.NoRotate))
            Require([
                (_copierSource, $"the copier's source {_copierSource} is missing"),
                ("/usr/bin/cc", "a C compiler (/usr/bin/cc) builds the ceiling's copier: apt-get install gcc, or pass --no-ceiling"),
            ]);
    }

    private void MakeSpec()
    {
        _spec = new DaemonSpec
        {
            Name = "virtlogd", CBinary = CDaemon, OursBinary = _ours, SocketInside = SocketInside,
            StubBinary = _copier,
            // DOMAIN_APPEND_LOG_FILE of one line to /run/logbench-probe.log, i.e. onto the sandbox's own
            // tmpfs (GET_LOG_FILE_POSITION would do, but the C daemon answers it with an error for any
            // file it does not hold open).
            ProbeName = "APPEND_LOG_FILE",
            ProbeFrame = _ => new Rpc.Call(0x87539319, 1, 4 /* DOMAIN_APPEND_LOG_FILE */)
                .String("qemu").Opaque(Guid.NewGuid().ToByteArray()).String("logbench-probe")
                .String("/run/logbench-probe.log").String("logbench probe\n").U32(0).Frame(),
        };
    }

    public int Run()
    {
        Resolve();
        if (opt.LogDir != null) Directory.CreateDirectory(opt.LogDir);
        _dir = opt.LogDir != null
            ? Directory.CreateTempSubdirectory(Path.Combine(Path.GetFullPath(opt.LogDir), "logbench-")).FullName
            : Directory.CreateTempSubdirectory("logbench-").FullName;
        Procs.AddDir(_dir);
        try { _fsType = Sh("stat", "-f", "-c", "%T", _dir).Trim(); } catch { }
        try
        {
            if (opt.Ceiling && opt.Configs.Contains(LogConfig.NoRotate))
                _copier = CompileCopier();
            MakeSpec();
            return RunAsync().GetAwaiter().GetResult();
        }
        finally { Procs.KillAll(); Procs.DeleteDirs(); }
    }

    /// <summary>cc the ceiling's copier into the scratch directory (it is a few hundred lines of C, so
    /// every run builds it rather than the solution carrying a native build step for it).</summary>
    private string CompileCopier()
    {
        var bin = Path.Combine(_dir, "logcopier");
        var psi = new ProcessStartInfo("/usr/bin/cc") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in CopierFlags.Split(' ').Concat(["-o", bin, _copierSource])) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(60_000) || p.ExitCode != 0)
            throw new BenchSetupException($"cc {CopierFlags} {_copierSource} failed: {Trim(err)}");
        return bin;
    }

    private static string Sh(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var s = p.StandardOutput.ReadToEnd();
        p.WaitForExit(5000);
        return s;
    }

    private long RecordsPerClient(int size, int k) => Math.Max(1, (long)(opt.MbPerRun * 1e6 / size / k));

    private async Task<int> RunAsync()
    {
        var started = DateTime.Now;
        _loadStart = Machine.LoadAvg();
        Log($"logbench: repo {_repo}; {opt.MbPerRun} MB per run, sizes {string.Join(",", opt.Sizes)}, levels {string.Join(",", opt.Levels)}, configs {string.Join(",", opt.Configs.Select(c => c.Name))}, repeat {opt.Repeat}; logs in {_dir} ({_fsType})");
        var runs = new List<RunResult>();
        var startups = new Dictionary<Kind, List<DaemonStart>> { [Kind.C] = new(), [Kind.Ours] = new(), [Kind.Stub] = new() };
        var rssAfter = new Dictionary<Kind, List<(double rss, double hwm)>> { [Kind.C] = new(), [Kind.Ours] = new(), [Kind.Stub] = new() };
        foreach (var cfg in opt.Configs)
        {
            File.WriteAllText(Path.Combine(_dir, $"virtlogd-{cfg.Name}.conf"), cfg.ConfText);
            File.WriteAllText(Path.Combine(_dir, $"virtlogd-{cfg.Name}-ours.conf"), cfg.ConfText + opt.OursConfig);
        }

        // Fresh-daemon runs, interleaved: for each repetition, config, size, level: C, ours, then (norotate) the ceiling.
        for (int r = 0; r < opt.Repeat; r++)
            foreach (var cfg in opt.Configs)
                foreach (int size in opt.Sizes)
                    foreach (int k in opt.Levels)
                        foreach (var kind in CeilingIn(cfg) ? [Kind.C, Kind.Ours, Kind.Stub] : new[] { Kind.C, Kind.Ours })
                        {
                            // (the copier is started with the socket path as its only argument)
                            string conf = $"virtlogd-{cfg.Name}{(kind == Kind.Ours ? "-ours" : "")}.conf";
                            var ds = await _spec.StartAsync(kind, ["-f", Path.Combine(_dir, conf)]);
                            try
                            {
                                startups[kind].Add(ds);
                                var res = await RunClientsAsync(ds, kind, cfg, size, k);
                                runs.Add(res);
                                rssAfter[kind].Add(Mem.ReadRss(ds.Daemon.Pid));
                                Log($"  rep {r + 1}/{opt.Repeat} {cfg.Name,-8} {size,4} B {Label(kind),-7} K={k,2}: {res.WallMbps,7:F1} MB/s wall, {res.WindowMbps,7:F1} MB/s client-window, daemon CPU {res.CpuMsPerMb,6:F2} ms/MB" +
                                    $" (exec->reply {ds.ExecToFirstReplyMs:F1} ms, idle RSS {ds.IdleRssMb:F1} MB, peak {rssAfter[kind][^1].hwm:F1} MB){(res.Failures > 0 ? $"  FAILURES {res.Failures}: {res.FailureText}" : "")}");
                            }
                            finally { await DaemonSpec.StopAsync(ds); }
                        }

        var md = Report(started, runs, startups, rssAfter);
        WriteResults(md, opt.Out ?? Path.Combine(_repo, "bench", "results", $"log-{started:yyyy-MM-dd}.md"));
        return runs.Sum(r => r.Failures) > 0 ? 1 : 0;
    }

    private static double CpuSeconds(int pid)
    {
        try
        {
            var s = File.ReadAllText($"/proc/{pid}/stat");
            var f = s[(s.LastIndexOf(')') + 2)..].Split(' ');
            // fields after "pid (comm) ": state=0 ... utime=11 stime=12 (0-based here)
            return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / 100.0; // USER_HZ
        }
        catch { return double.NaN; }
    }

    /// <summary>Start K logclient bench processes at once (own domain, own log path), wait for all (bounded), verify the files.</summary>
    private async Task<RunResult> RunClientsAsync(DaemonStart ds, Kind kind, LogConfig cfg, int size, int k)
    {
        long records = RecordsPerClient(size, k);
        long perClient = records * size;
        var runDir = Path.Combine(_dir, $"run-{++_runNo:D3}");
        Directory.CreateDirectory(runDir);
        string LogPath(int i) => Path.Combine(runDir, $"dom-{i:D2}.log");
        var clients = new Child[k];
        var exitTicks = new long[k];
        var timeout = TimeSpan.FromSeconds(120 + perClient * k / 1e6); // generous bound, >= 1 MB/s
        double cpu0 = CpuSeconds(ds.Daemon.Pid);
        long t0 = Stopwatch.GetTimestamp();
        try
        {
            for (int i = 0; i < k; i++)
                clients[i] = ds.Sandbox.StartInside($"logclient[{Label(kind)} {i}]", _logclient,
                    ["bench", "--name", $"logbench-{i:D2}", "--uuid", Guid.NewGuid().ToString("N"),
                     "--path", LogPath(i), "--records", records.ToString(CultureInfo.InvariantCulture),
                     "--size", size.ToString(CultureInfo.InvariantCulture), "--truncate"]);
            var waits = clients.Select(async (c, i) =>
            {
                bool ok = await c.WaitAsync(timeout);
                exitTicks[i] = Stopwatch.GetTimestamp();
                return ok;
            }).ToArray();
            var done = await Task.WhenAll(waits);
            long t1 = exitTicks.Max();
            double wall = (t1 - t0) / (double)Stopwatch.Frequency;
            double cpu = CpuSeconds(ds.Daemon.Pid) - cpu0;

            int failures = 0;
            string? failText = null;
            void Fail(string what) { failures++; failText ??= what; }
            double windowStart = double.MaxValue, windowEnd = 0;
            long kept = 0;
            int backups = 0;
            for (int i = 0; i < k; i++)
            {
                var c = clients[i];
                string? why = null;
                if (!done[i]) why = $"timed out after {timeout}";
                else if (c.ExitCode != 0) why = $"exit {c.ExitCode}";
                // "records N bytes B seconds S mbps M"
                var parts = c.Stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("records "))?.Split(' ');
                double secs = 0;
                if (why == null && (parts is not { Length: 8 } || parts[3] != perClient.ToString(CultureInfo.InvariantCulture)
                    || !double.TryParse(parts[5], NumberStyles.Float, CultureInfo.InvariantCulture, out secs)))
                    why = $"no 'records {records} bytes {perClient} seconds S mbps M' line";
                if (why != null)
                {
                    Fail($"{c.Name}: {why}; stdout=[{Trim(c.Stdout)}] stderr=[{Trim(c.Stderr)}]");
                    continue;
                }
                double end = (exitTicks[i] - t0) / (double)Stopwatch.Frequency;
                windowEnd = Math.Max(windowEnd, end);
                windowStart = Math.Min(windowStart, end - secs);
                var v = Verify(LogPath(i), cfg, size, perClient);
                kept += v.kept;
                backups += v.backups;
                if (v.error != null) Fail($"{c.Name}: on-disk check: {v.error}");
            }
            double window = windowEnd > 0 ? windowEnd - Math.Max(0, windowStart) : double.NaN;
            if (!ds.Daemon.IsRunning) Fail($"{ds.Daemon.Name} exited ({ds.Daemon.ExitCode}); stderr=[{Trim(ds.Daemon.Stderr)}]");
            if (failures > 0) _notes.Add($"{Label(kind)} {cfg.Name} {size} B K={k}: {failures} failure(s): {failText}");
            return new RunResult(kind, cfg, size, k, records, perClient * k, wall, window, cpu, failures, failText, kept, backups);
        }
        finally
        {
            foreach (var c in clients) c?.Dispose();
            try { Directory.Delete(runDir, true); } catch { }
        }
    }

    /// <summary>
    /// The bytes on disk for one domain: the live file plus backups path.0 (newest) … path.(max_backups-1)
    /// must be, oldest first, exactly the last `kept` bytes of the record stream the client wrote (record j
    /// of size S is "%010d " j, then 'a' + j % 26, then "\n"), the live file must end with the last record,
    /// no file may exceed max_size and there must be no extra backups. Without rotation (total ≤ max_size)
    /// this means: the file holds exactly the bytes written, and no backup exists.
    /// </summary>
    private static (long kept, int backups, string? error) Verify(string path, LogConfig cfg, int size, long written)
    {
        var files = new List<string>();
        for (int b = cfg.MaxBackups - 1; b >= 0; b--)
            if (File.Exists($"{path}.{b}")) files.Add($"{path}.{b}");
        int backups = files.Count;
        if (!File.Exists(path)) return (0, backups, "the log file does not exist");
        files.Add(path);
        var extra = Directory.GetFiles(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".*")
            .Where(f => !files.Contains(f)).ToArray();
        var lens = files.Select(f => new FileInfo(f).Length).ToArray();
        long kept = lens.Sum();
        if (extra.Length > 0) return (kept, backups, $"unexpected files {string.Join(", ", extra.Select(Path.GetFileName))}");
        if (lens.Any(l => l > cfg.MaxSize)) return (kept, backups, $"a file exceeds max_size {cfg.MaxSize}: sizes {string.Join(", ", lens)}");
        if (written <= cfg.MaxSize && (backups > 0 || kept != written))
            return (kept, backups, $"expected {written} bytes in the log file and no backups; found {lens[^1]} bytes and {backups} backup(s) ({kept} bytes in all)");
        if (kept > written) return (kept, backups, $"{kept} bytes on disk, more than the {written} written");
        if (written > (long)(cfg.MaxBackups + 1) * cfg.MaxSize && backups != cfg.MaxBackups)
            return (kept, backups, $"{written} bytes written with max_size {cfg.MaxSize} but only {backups} backup(s)");

        // content: the concatenation must equal stream[written - kept, written)
        long pos = written - kept;
        var buf = new byte[1 << 16];
        var rec = new byte[size];
        long recNo = -1;
        foreach (var f in files)
        {
            using var fs = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16);
            int n;
            while ((n = fs.Read(buf)) > 0)
                for (int j = 0; j < n; j++, pos++)
                {
                    long r = pos / size;
                    if (r != recNo) { Record(r, rec); recNo = r; }
                    if (buf[j] != rec[pos % size])
                        return (kept, backups, $"content differs at stream offset {pos} (file {Path.GetFileName(f)}): expected 0x{rec[pos % size]:x2}, found 0x{buf[j]:x2}");
                }
        }
        if (pos != written) return (kept, backups, $"content ends at stream offset {pos}, expected {written}");
        return (kept, backups, null);
    }

    /// <summary>tests/LogClient Record(): "%010d " k, then 'a' + k % 26, then "\n".</summary>
    private static void Record(long k, byte[] dst)
    {
        Encoding.ASCII.GetBytes((k % 10_000_000_000L).ToString("D10") + " ").CopyTo(dst, 0);
        dst.AsSpan(11, dst.Length - 12).Fill((byte)('a' + (int)(k % 26)));
        dst[^1] = (byte)'\n';
    }

    // ---------------------------------------------------------------- report

    /// <summary>The ceiling rows for one norotate table: the copier's MB/s and each daemon's share of it, per paired repetition.</summary>
    private void CeilingTable(StringBuilder sb, List<RunResult> runs, LogConfig cfg, int size)
    {
        sb.AppendLine($"### {cfg.Name}, {size}-byte records: against the ceiling (a plain pipe-to-file copy, bench/LogCopier)");
        sb.AppendLine();
        Md.TableHeader(sb, "K domains", "ceiling wall", "C / ceiling wall", "ours / ceiling wall", "ceiling client window", "C / ceiling window", "ours / ceiling window",
            "ours/C window", "ceiling CPU ms/MB", "C CPU ms/MB", "ours CPU ms/MB", "on disk/written ceiling", "failures ceiling");
        foreach (int k in opt.Levels)
        {
            List<RunResult> Of(Kind kind) => runs.Where(r => r.Kind == kind && r.Config == cfg && r.Size == size && r.Clients == k).ToList();
            var c = Of(Kind.C); var o = Of(Kind.Ours); var t = Of(Kind.Stub);
            // run i of each kind is repetition i (they run in that order), so zip pairs them
            static IEnumerable<double> Share(List<RunResult> d, List<RunResult> ceil, Func<RunResult, double> f) =>
                d.Zip(ceil, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : f(a) / f(b));
            IEnumerable<double> OursOverC = c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : b.WindowMbps / a.WindowMbps);
            // pooled over the R runs like the tables above; 0 ticks in all of them is shown as a bound, not as 0
            static string Cpu(List<RunResult> l)
            {
                double mb = l.Sum(r => r.Bytes) / 1e6, cpu = l.Sum(r => r.DaemonCpuSeconds);
                return cpu > 0 ? (cpu * 1000 / mb).ToString("F2") : $"< {10 / mb:F2} (0 ticks)";
            }
            Md.Row(sb, k,
                MedRange(t.Select(r => r.WallMbps), "F1"), MedRange(Share(c, t, r => r.WallMbps), "F2"), MedRange(Share(o, t, r => r.WallMbps), "F2"),
                MedRange(t.Select(r => r.WindowMbps), "F1"), MedRange(Share(c, t, r => r.WindowMbps), "F2"), MedRange(Share(o, t, r => r.WindowMbps), "F2"),
                MedRange(OursOverC, "F2"), Cpu(t), Cpu(c), Cpu(o),
                MedRange(t.Select(r => (double)r.KeptBytes / r.Bytes), "F2"), t.Sum(r => r.Failures));
        }
        sb.AppendLine();
    }

    private string Report(DateTime started, List<RunResult> runs, Dictionary<Kind, List<DaemonStart>> startups,
        Dictionary<Kind, List<(double rss, double hwm)>> rssAfter)
    {
        var sb = new StringBuilder();
        Machine.Preamble(sb, "virtlogd log throughput: C libvirt 9.0.0 vs ours", started, _loadStart, "LogBench", opt.CommandLine);
        sb.AppendLine($"- C daemon: `{CDaemon}`; ours: `artifacts/bin/virtlogd` (NativeAOT, `./build.sh publish`){(opt.OursConfig is null ? "" : $", its config adding `{opt.OursConfig.Trim().Replace("\n", "; ")}`")}; client: `tests/LogClient/bin/Release/net10.0/logclient` (`dotnet build Migration.sln -c Release`)");
        sb.AppendLine($"- Each client process (one per domain, own name, UUID and log file): `logclient bench --path <own file> --records N --size S --truncate` = virLogManagerDomainOpenLogFile through libvirt.so.0 (the daemon opens the file and hands back the write end of a pipe), N records of S bytes written into that pipe in ~64 KiB write(2) calls, then virLogManagerDomainGetLogFilePosition (the daemon drains the pipe first, so every byte is in the file), then close. N = {opt.MbPerRun} MB / (K · S) per client, so every run moves ~{opt.MbPerRun} MB in total.");
        sb.AppendLine($"- Log files: a fresh directory per run under `{_dir}` (filesystem `{_fsType}`; deleted after each run, so writes mostly stay in the page cache). Configs, passed with `-f`: {string.Join("; ", opt.Configs.Select(c => $"**{c.Name}** = {c.Description}"))}.");
        sb.AppendLine($"- Fresh runs: for each repetition (R = {opt.Repeat}), config, record size S ∈ {{{string.Join(", ", opt.Sizes)}}} and level K ∈ {{{string.Join(", ", opt.Levels)}}}, in the order C, ours: a fresh private mount namespace (`unshare -m`, tmpfs on /run), a fresh daemon (`nsenter -t <holder> -m -- <daemon> -f <config>`), then K clients started together.");
        sb.AppendLine("- **wall** = total bytes / (start of the first client → exit of the last), so it includes the clients' own process start-up (.NET, libvirt init, connect); **client window** = total bytes / (earliest start → latest end of the clients' own timed open + write + position, from the `seconds S` each client reports). MB = 10^6 bytes. **daemon CPU** = the daemon's user+system CPU time over the client phase (/proc/<pid>/stat, 10 ms ticks, so pooled: sum over the R runs / MB written in them; lower is better). Throughput values: median of R (min–max); the ratio is ours/C per paired repetition. **on disk/written** = bytes kept (live file + backups) / bytes written, median over runs (below 1 only where rotation dropped the oldest backup, as it should).");
        if (opt.Ceiling && opt.Configs.Contains(LogConfig.NoRotate))
            sb.AppendLine($"- **ceiling** (norotate only, run after C and ours at every repetition, size and level, in a fresh namespace the same way): `bench/LogCopier/logcopier.c` (built with `cc {CopierFlags}`) on virtlogd's socket instead of a daemon. The writers are the same `logclient bench` processes with the same arguments, so the same bytes go through libvirt's log client in the same ~64 KiB write(2) calls into a pipe made the same way (pipe2 in the server, write end passed back with SCM_RIGHTS); the copier answers only DOMAIN_OPEN_LOG_FILE (pipe2, open(O_CREAT|O_APPEND|O_WRONLY[|O_TRUNC]) of the file in this same run directory) and DOMAIN_GET_LOG_FILE_POSITION (drains that pipe first, like the daemons), and otherwise does a plain copy: one thread, one level-triggered epoll set over every pipe and connection (the daemons have one event loop thread), one read() of up to 64 KiB (a pipe's capacity) per ready pipe per round, write() until all of it is in the file; no rotation, no size accounting. Its files get the same on-disk check. **share of the ceiling** = daemon MB/s / ceiling MB/s per repetition (run i of the daemon against run i of the ceiling), median (min–max); its CPU is the copier's, measured the same way.");
        sb.AppendLine("- On-disk check after every run, per domain: the live file and its backups (`.0` newest … `.2`), oldest first, must be exactly the last bytes of the record stream the client wrote, ending with its last record; no file larger than max_size; with total ≤ max_size (always so for norotate) the file must hold exactly the bytes written and no backup may exist. Any mismatch is counted as a failure.");
        sb.AppendLine();

        foreach (var cfg in opt.Configs)
            foreach (int size in opt.Sizes)
            {
                sb.AppendLine($"## {cfg.Name} ({cfg.Description}), {size}-byte records, MB/s");
                sb.AppendLine();
                Md.TableHeader(sb, "K domains", "MB/client", "C wall", "ours wall", "ours/C wall", "C client window", "ours client window", "ours/C window",
                    "C daemon CPU ms/MB", "ours daemon CPU ms/MB", "ours/C CPU", "on disk/written C/ours", "failures C/ours");
                foreach (int k in opt.Levels)
                {
                    var c = runs.Where(r => r.Kind == Kind.C && r.Config == cfg && r.Size == size && r.Clients == k).ToList();
                    var o = runs.Where(r => r.Kind == Kind.Ours && r.Config == cfg && r.Size == size && r.Clients == k).ToList();
                    IEnumerable<double> Ratio(Func<RunResult, double> f) => c.Zip(o, (a, b) => a.Failures + b.Failures > 0 ? double.NaN : f(b) / f(a));
                    // CPU is read in 10 ms ticks, so it is pooled over the R runs: sum of CPU / sum of MB
                    static double Pooled(List<RunResult> l) => l.Sum(r => r.DaemonCpuSeconds) * 1000 / (l.Sum(r => r.Bytes) / 1e6);
                    string Kept(List<RunResult> l) => MedRange(l.Select(r => (double)r.KeptBytes / r.Bytes), "F2");
                    Md.Row(sb, k, (RecordsPerClient(size, k) * size / 1e6).ToString("F1"),
                        MedRange(c.Select(r => r.WallMbps), "F1"), MedRange(o.Select(r => r.WallMbps), "F1"), MedRange(Ratio(r => r.WallMbps), "F2"),
                        MedRange(c.Select(r => r.WindowMbps), "F1"), MedRange(o.Select(r => r.WindowMbps), "F1"), MedRange(Ratio(r => r.WindowMbps), "F2"),
                        Pooled(c).ToString("F2"), Pooled(o).ToString("F2"), (Pooled(o) / Pooled(c)).ToString("F2"),
                        $"{Kept(c)} / {Kept(o)}", $"{c.Sum(r => r.Failures)}/{o.Sum(r => r.Failures)}");
                }
                sb.AppendLine();
                if (CeilingIn(cfg)) CeilingTable(sb, runs, cfg, size);
            }

        sb.AppendLine("## Start-up and memory (every fresh C and ours daemon above)");
        sb.AppendLine();
        sb.AppendLine("| | C | ours | ours/C |");
        sb.AppendLine("|---|---:|---:|---:|");
        void Line(string what, IEnumerable<double> cs, IEnumerable<double> os, string fmt)
        {
            var ca = cs.ToArray(); var oa = os.ToArray();
            sb.AppendLine($"| {what} | {MedRange(ca, fmt)} | {MedRange(oa, fmt)} | {Median(oa) / Median(ca):F2} |");
        }
        Line($"exec → first APPEND_LOG_FILE reply, ms (n = {startups[Kind.C].Count}/{startups[Kind.Ours].Count})",
            startups[Kind.C].Select(s => s.ExecToFirstReplyMs), startups[Kind.Ours].Select(s => s.ExecToFirstReplyMs), "F1");
        Line("idle VmRSS after start, MB", startups[Kind.C].Select(s => s.IdleRssMb), startups[Kind.Ours].Select(s => s.IdleRssMb), "F1");
        Line("VmRSS after the run, MB", rssAfter[Kind.C].Select(s => s.rss), rssAfter[Kind.Ours].Select(s => s.rss), "F1");
        Line("VmHWM (peak RSS) after the run, MB", rssAfter[Kind.C].Select(s => s.hwm), rssAfter[Kind.Ours].Select(s => s.hwm), "F1");
        sb.AppendLine();
        sb.AppendLine("exec → first reply is measured from `Process.Start` of `setsid nsenter -t <holder> -m -- <daemon> -f <config>` (both exec in place) until a raw-socket connect + DOMAIN_APPEND_LOG_FILE (procedure 4 of program 0x87539319) of one line to `/run/logbench-probe.log` (the sandbox's tmpfs) gets an OK reply; the socket is polled every ~1 ms. Idle VmRSS is read from /proc/<pid>/status 200 ms after that reply.");
        sb.AppendLine();

        sb.AppendLine("## Notes");
        sb.AppendLine();
        if (_notes.Count == 0) sb.AppendLine("- No client failed, no on-disk check failed, no daemon exited during the runs.");
        foreach (var n in _notes) sb.AppendLine($"- {n}");
        if (Environment.ProcessorCount < opt.Levels.Max())
            sb.AppendLine($"- With {Environment.ProcessorCount} CPUs, K = {opt.Levels.Max()} oversubscribes the machine: the clients and the daemon share {Environment.ProcessorCount} CPUs, so these figures measure the whole system (client + libvirt client library + daemon + filesystem), not the daemon alone.");
        return sb.ToString();
    }
}
