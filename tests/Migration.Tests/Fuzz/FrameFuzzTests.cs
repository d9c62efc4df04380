using System.Text;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Fuzz;

/// <summary>
/// Knobs for a fuzz run, from the environment (<c>./build.sh fuzz --seed=S --cases=N --daemon=virtlogd</c> sets
/// them): FUZZ_SEED, FUZZ_CASES (per daemon), FUZZ_FIRST (index of the first case), FUZZ_DAEMON
/// (virtlockd, virtlogd or both), FUZZ_BATCH (cases between health checks), FUZZ_REPORT (directory for the
/// report of every difference).
/// </summary>
public sealed record FuzzOptions(int Seed, int Cases, int First, string Daemon, int Batch, string? ReportDir)
{
    /// <summary>FUZZ_TRACE=1: the report lists every case's outcome, not only the differences.</summary>
    public bool Trace { get; init; } = Environment.GetEnvironmentVariable("FUZZ_TRACE") == "1";

    /// <summary>What the normal test run does: a fixed seed, so a failure replays exactly; 750 cases for each
    /// daemon and configuration of ours, each played on the C daemon and ours.</summary>
    public const int DefaultSeed = 20261201;
    public const int DefaultCases = 750;

    public static FuzzOptions FromEnvironment()
    {
        static string? E(string n) => Environment.GetEnvironmentVariable(n) is { Length: > 0 } v ? v : null;
        return new FuzzOptions(
            int.Parse(E("FUZZ_SEED") ?? DefaultSeed.ToString()),
            int.Parse(E("FUZZ_CASES") ?? DefaultCases.ToString()),
            int.Parse(E("FUZZ_FIRST") ?? "0"),
            E("FUZZ_DAEMON") ?? "both",
            int.Parse(E("FUZZ_BATCH") ?? "100"),
            E("FUZZ_REPORT"));
    }

    public bool Includes(DaemonName n) => Daemon == "both" || Daemon == DaemonPaths.ExeName(n);
}

public sealed record FuzzDifference(FuzzCase Case, string C, string Ours, string? Listed);

public sealed class FuzzReport
{
    public int Cases;
    public readonly List<FuzzDifference> Differences = new();
    public readonly List<string> OursFailures = new();
    public readonly List<string> CCrashes = new();
    /// <summary>Every case's outcome, with FUZZ_TRACE=1.</summary>
    public readonly StringBuilder Trace = new();
    /// <summary>How the cases ended on the C daemon: answered up to the sentinel, closed, stalled; error or OK replies.</summary>
    public readonly Dictionary<string, int> Endings = new();

    public void Count(string outcome)
    {
        void Add(string k) => Endings[k] = Endings.GetValueOrDefault(k) + 1;
        Add(outcome.Contains($"p={FuzzTarget.SentinelProgram:x}") ? "sentinel answered" : outcome.Contains("stall") ? "stalled" : "closed");
        if (outcome.Contains("st=Ok")) Add("with an OK reply");
        if (outcome.Split("st=Error").Length - 1 > (outcome.Contains($"p={FuzzTarget.SentinelProgram:x}") ? 1 : 0)) Add("with an error reply");
    }

    public IEnumerable<FuzzDifference> Unlisted => Differences.Where(d => d.Listed is null);

    public string Binaries = "";

    public string Summary(DaemonName n, FuzzOptions o)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Binaries);
        sb.AppendLine($"{DaemonPaths.ExeName(n)}: seed {o.Seed}, cases {o.First}..{o.First + Cases - 1}: " +
            $"{Differences.Count} differences ({Unlisted.Count()} unlisted), {OursFailures.Count} failures of ours, {CCrashes.Count} C crashes");
        sb.AppendLine("  C outcomes: " + string.Join(", ", Endings.OrderBy(e => e.Key).Select(e => $"{e.Key} {e.Value}")));
        foreach (var g in Differences.GroupBy(d => d.Listed ?? "UNLISTED"))
            sb.AppendLine($"  {g.Key}: {g.Count()} (e.g. {string.Join(", ", g.Take(5).Select(d => "#" + d.Case.Index))})");
        foreach (var f in OursFailures) sb.AppendLine("  OURS: " + f);
        foreach (var f in CCrashes) sb.AppendLine("  C: " + f);
        return sb.ToString();
    }

    public string Details()
    {
        var sb = new StringBuilder();
        foreach (var d in Differences)
            sb.AppendLine($"{d.Case.Description}\n  listed: {d.Listed ?? "NO"}\n  C:    {d.C}\n  ours: {d.Ours}\n  bytes: {Convert.ToHexString(d.Case.Bytes[..Math.Min(d.Case.Bytes.Length, 256)])}");
        return sb.ToString();
    }
}

/// <summary>
/// The differences between the C daemons and ours that the fuzzer may find and that are deliberate: each names
/// the entry of README's "Behaviour that differs from the C daemons, on purpose" it belongs to.
/// </summary>
public static class KnownDifferences
{
    public sealed record Entry(string Readme, Func<FuzzCase, string, string, bool> Matches);

    public static readonly Entry[] All = [];

    public static string? Classify(FuzzCase c, string cOut, string ours) =>
        All.FirstOrDefault(e => e.Matches(c, cOut, ours))?.Readme;
}

/// <summary>
/// A seeded, structure-aware frame fuzzer (<see cref="FrameFuzzer"/>) over every program of both daemons, run
/// against the C daemon and ours case by case, with a health check of both after each batch. It fails on
/// a failure of ours (exit, failed health check, a case that stalls ours only) and on any difference in what
/// the two answered (error or OK, reply or close, error code and message) that is not a deliberate one
/// (<see cref="KnownDifferences"/>).
/// </summary>
public sealed class FrameFuzzTests(ITestOutputHelper output)
{
    /// <summary>Each daemon against each of our configurations (the cases are the same for every configuration).</summary>
    public static TheoryData<DaemonName, DaemonKind> Daemons()
    {
        var d = new TheoryData<DaemonName, DaemonKind>();
        foreach (var n in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            foreach (var k in DaemonKinds.Ours)
                d.Add(n, k);
        return d;
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task Fuzzed_frames_get_the_answers_the_C_daemon_gives(DaemonName name, DaemonKind ours)
    {
        var opt = FuzzOptions.FromEnvironment();
        if (!opt.Includes(name))
        {
            output.WriteLine($"FUZZ_DAEMON={opt.Daemon}: {DaemonPaths.ExeName(name)} not fuzzed in this run");
            return;
        }
        var report = await RunAsync(name, ours, opt, output);
        output.WriteLine(report.Summary(name, opt));
        var dir = opt.ReportDir ?? Path.Combine(DaemonPaths.RepoRoot, ".build", "fuzz");
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, $"{DaemonPaths.ExeName(name)}-{ours}-seed{opt.Seed}-from{opt.First}.txt");
        await File.WriteAllTextAsync(file, report.Summary(name, opt) + "\n" + report.Details() + report.Trace);
        output.WriteLine($"report: {file}");

        Assert.True(report.Cases == opt.Cases, $"ran {report.Cases} of {opt.Cases} cases");
        Assert.True(report.OursFailures.Count == 0, "ours failed:\n" + string.Join('\n', report.OursFailures));
        var unlisted = report.Unlisted.ToList();
        Assert.True(unlisted.Count == 0, $"{unlisted.Count} unlisted differences between C and ours; first:\n" +
            string.Join('\n', unlisted.Take(5).Select(d => $"{d.Case.Description}\n  C:    {d.C}\n  ours: {d.Ours}")));
    }

    /// <param name="oursStarted">Called once ours is up (a test of the fuzzer itself breaks it there).</param>
    public static async Task<FuzzReport> RunAsync(DaemonName name, DaemonKind ours, FuzzOptions opt, ITestOutputHelper? log,
        Action<FuzzTarget>? oursStarted = null)
    {
        var report = new FuzzReport();
        await using var c = await FuzzTarget.StartAsync(name, DaemonKind.C);
        await using var m = await FuzzTarget.StartAsync(name, ours);
        oursStarted?.Invoke(m);
        var gen = new FrameFuzzer(opt.Seed, name);
        report.Binaries = $"C: {c.Daemon.BinaryPath}, ours: {m.Daemon.BinaryPath}";

        static string Play(FuzzTarget t, FuzzCase fc)
        {
            try { return t.Run(fc); }
            catch (Exception e) { return $"[{e.GetType().Name}: {e.Message}]"; }
        }

        var probe = new FuzzCase(-1, FuzzProgram.Keepalive, false, [], [], 0, false, "probe");
        for (int i = opt.First; i < opt.First + opt.Cases; i++)
        {
            var fc = gen.Generate(i);
            var tc = OnThread(() => Play(c, fc));
            var tm = OnThread(() => Play(m, fc));
            var (co, mo) = (await tc, await tm);
            report.Cases++;
            report.Count(co);
            if (opt.Trace) report.Trace.AppendLine($"{fc.Description}\n  C:    {co}\n  ours: {mo}");

            // a probe after each case pins a crash on the case that caused it
            var pc = OnThread(() => Play(c, probe));
            var pm = OnThread(() => Play(m, probe));
            bool cUp = (await pc).Contains($"p={FuzzTarget.SentinelProgram:x}") && c.Alive;
            bool mUp = (await pm).Contains($"p={FuzzTarget.SentinelProgram:x}") && m.Alive;
            if (!cUp) co += " [C DAEMON DOWN AFTER THIS CASE]";
            if (!mUp) mo += " [OUR DAEMON DOWN AFTER THIS CASE]";

            if (co != mo)
                report.Differences.Add(new FuzzDifference(fc, co, mo, KnownDifferences.Classify(fc, co, mo)));
            if (!mUp)
            {
                report.OursFailures.Add(m.Alive
                    ? $"{fc.Description}: stalled (running, but the probe after this case got no answer: {await pm})"
                    : $"{fc.Description}: down (exit {m.Daemon.Process.ExitCode}); stderr tail: {HandoffTail(m.Daemon.Stderr)}");
                await m.RestartAsync();
            }
            if (!cUp)
            {
                report.CCrashes.Add($"{fc.Description}: C down (exit {c.Daemon.Process.ExitCode})");
                await c.RestartAsync();
            }

            if ((i - opt.First + 1) % opt.Batch == 0 || i == opt.First + opt.Cases - 1)
            {
                int batch = (i - opt.First) / opt.Batch;
                var hc = OnThread(() => c.HealthCheck(batch));
                var hm = OnThread(() => m.HealthCheck(batch));
                if (await hm is string bad)
                    report.OursFailures.Add($"health check after case {i}: {bad}");
                if (await hc is string cbad)
                    report.CCrashes.Add($"C health check after case {i}: {cbad}");
                log?.WriteLine($"{DaemonPaths.ExeName(name)} cases {opt.First}..{i}: {report.Differences.Count} differences, " +
                    $"{report.OursFailures.Count} failures of ours, {report.CCrashes.Count} C crashes");
            }
        }
        return report;
    }

    /// <summary>The cases block in poll(): a thread of their own each, not the thread pool's.</summary>
    private static Task<T> OnThread<T>(Func<T> f) => Task.Factory.StartNew(f, CancellationToken.None,
        TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static string HandoffTail(string s) => string.Join('\n', s.Split('\n').TakeLast(10));
}

/// <summary>The fuzzer's own failure paths: a daemon of ours that stops answering must be reported, and the run
/// must go on (bounded) with a fresh daemon.</summary>
public sealed class FrameFuzzDetectionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_daemon_of_ours_that_stops_answering_is_reported_and_replaced()
    {
        var opt = new FuzzOptions(FuzzOptions.DefaultSeed, Cases: 2, First: 0, "virtlockd", Batch: 2, ReportDir: null);
        int stopped = 0;
        var report = await FrameFuzzTests.RunAsync(DaemonName.Virtlockd, DaemonKind.Managed, opt, output, m =>
        {
            stopped = m.Daemon.Pid;
            m.Daemon.Process.Signal(19); // SIGSTOP: alive, listening (the backlog accepts), never answering
        });
        output.WriteLine(string.Join('\n', report.OursFailures));
        Assert.Equal(2, report.Cases);
        Assert.NotEqual(0, stopped);
        Assert.Contains(report.OursFailures, f => f.Contains("stalled") && f.Contains("stall"));
        // the first case pinned it; the replacement answered the second case and the health check
        Assert.Single(report.OursFailures);
        Assert.Empty(report.CCrashes);
    }
}

public sealed class FrameFuzzerTests
{
    /// <summary>A case is a function of (seed, daemon, index) only: a reported case replays as it ran.</summary>
    [Fact]
    public void Cases_are_reproducible_and_every_index_generates()
    {
        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
        {
            var a = new FrameFuzzer(7, name);
            var b = new FrameFuzzer(7, name);
            var other = new FrameFuzzer(8, name);
            int same = 0;
            for (int i = 0; i < 5000; i++)
            {
                var x = a.Generate(i);
                b.Generate(4999 - i); // an instance's history must not matter
                var y = b.Generate(i);
                Assert.Equal(x.Description, y.Description);
                Assert.Equal(x.Bytes, y.Bytes);
                if (other.Generate(i).Bytes.AsSpan().SequenceEqual(x.Bytes)) same++;
            }
            Assert.True(same < 500, $"seed 8 repeats seed 7 in {same} of 5000 cases");
        }
    }

    [Fact]
    public void Own_pid_never_appears_in_a_frame()
    {
        var me = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(me, (uint)Environment.ProcessId);
        var f = new XdrWriter().UInt(1).Raw(me).Raw(me.AsSpan(0, 2)).ToArray();
        f = [.. f, .. me];
        var scrubbed = FrameFuzzer.ScrubOwnPid(f);
        for (int i = 0; i + 4 <= scrubbed.Length; i++)
            Assert.False(scrubbed.AsSpan(i, 4).SequenceEqual(me), $"own pid at offset {i}");
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("0000001c", 24)]                 // a header-only frame: 24 more bytes
    [InlineData("00000000", 0)]                   // refused length: the daemon closes
    [InlineData("0000", 2)]                       // half a length word: completed with zeros, which is a refused length
    [InlineData("000000200000000000000000000000000000000000000000000000000000000000000000", 0)] // one whole frame (32 bytes)
    public void Filler_completes_the_frame_the_daemon_waits_for(string hex, int filler) =>
        Assert.Equal(filler, FuzzTarget.Filler(Convert.FromHexString(hex)));
}
