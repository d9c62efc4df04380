using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockClient;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// SIGUSR1 storms: 20 signals at 0, 5, 20 and 50 ms spacing to our daemon (our default, where libvirt's
/// virNetDaemon catches signals, and ours on the managed RPC core, which catches them itself) while it holds
/// leases (virtlockd) or domains write through it (virtlogd), and one that lasts through several restarts. Each signal either causes one more exec-restart or is merged into the
/// one under way; none may kill the daemon, and no lease, connection or byte may be lost. Then a rollback to
/// the C daemon, which must serve and re-exec on SIGUSR1 as usual.
/// </summary>
public sealed class SignalStormTests(ITestOutputHelper output)
{
    private const int Signals = 20;
    private const int LockClients = 16;
    private const int Relays = 3;
    private const int Domains = 16;
    private const int RecordSize = 100;
    private const int RecordsPerWrite = 20;
    private const string LogConfig = "max_size = 1000000000\nmax_backups = 3\n";

    /// <summary>Our configurations × spacings (ms).</summary>
    public static TheoryData<DaemonKind, int> Spacings()
    {
        var d = new TheoryData<DaemonKind, int>();
        foreach (var kind in new[] { DaemonKind.Managed, DaemonKind.ManagedRpc })
            foreach (var ms in new[] { 0, 5, 20, 50 })
                d.Add(kind, ms);
        return d;
    }

    private const ulong Usr1Bit = 1UL << (Posix.SIGUSR1 - 1);

    private static bool HandlesUsr1(int pid) => Posix.HandlesSignal(pid, Posix.SIGUSR1);

    /// <summary>The C daemon that ours handed over to ends up with SIGUSR1 neither blocked nor ignored but
    /// handled, once its signal set-up has run (bounded wait for that event).</summary>
    private static async Task AssertCHandlesUsr1Async(HandoffRig rig)
    {
        await LogEnv.EventuallyAsync(() => HandlesUsr1(rig.Pid) || !rig.Daemon.IsRunning, TimeSpan.FromSeconds(30));
        var (blk, ign, cgt) = Posix.SignalState(rig.Pid);
        Assert.True((blk & Usr1Bit) == 0 && (ign & Usr1Bit) == 0 && (cgt & Usr1Bit) != 0,
            $"the C daemon after ours: SIGUSR1 blocked {(blk & Usr1Bit) != 0}, ignored {(ign & Usr1Bit) != 0}, caught {(cgt & Usr1Bit) != 0}");
    }

    /// <summary><paramref name="count"/> SIGUSR1 from a thread of their own, <paramref name="spacingMs"/> apart.</summary>
    private static Task<int> StormAsync(int pid, int count, int spacingMs) => Task.Factory.StartNew(() =>
    {
        int delivered = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            if (Native.Kill(pid, Posix.SIGUSR1) == 0) delivered++;
            var next = TimeSpan.FromMilliseconds(spacingMs * (i + 1));
            while (sw.Elapsed < next)
                if (next - sw.Elapsed > TimeSpan.FromMilliseconds(2)) Thread.Sleep(1); else Thread.SpinWait(100);
        }
        return delivered;
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// After a storm, the restarts it caused end: the state file is gone, the daemon has its SIGUSR1 handler
    /// (so the next signal is a restart, not a death), then answers a call, and still looks the same after
    /// that call (an image that took a signal just before the first look has exec'd by the time the call is
    /// answered, since the old loop no longer serves). Bounded.
    /// </summary>
    private static async Task WaitSettledAsync(HandoffRig rig, string when)
    {
        bool Quiet() => !File.Exists(rig.StateFileHost) && HandlesUsr1(rig.Pid);
        async Task<bool> QuietAndServingAsync()
        {
            if (!Quiet())
                return false;
            RpcMessage answer;
            try
            {
                using var raw = await RawRpcClient.ConnectAsync(rig.SocketHost);
                answer = await raw.CallAsync(0x5E771E11, 1, 1, Array.Empty<byte>(), TimeSpan.FromSeconds(5));
            }
            catch (TimeoutException)
            {
                // a call read by an image that then exec'd is not answered (the C daemon's way too):
                // a restart was under way, so not settled yet; the 60 s bound still holds
                return false;
            }
            Assert.True(answer.IsError, "the daemon serves an unknown program");
            return Quiet();
        }
        var sw = Stopwatch.StartNew();
        while (true)
        {
            Assert.True(rig.Daemon.IsRunning, $"{when}: the daemon died (exit {rig.Daemon.ExitCode}). stderr=[{HandoffRig.Tail(rig.Daemon.Stderr)}]");
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"{when}: not settled within 60 s: state file present " +
                $"{File.Exists(rig.StateFileHost)}, signals {Posix.SignalState(rig.Pid)}. stderr=[{HandoffRig.Tail(rig.Daemon.Stderr)}]");
            // Twice, apart: a storm signal the image caught before its loop ran is served in the same
            // iteration as the first call, and the restart it starts may not show yet when that call returns
            // (the ignore and the state file come a moment later); it shows, or is over, by the second look.
            if (await QuietAndServingAsync())
            {
                await Task.Delay(250);
                if (await QuietAndServingAsync())
                    return;
            }
            await Task.Delay(10);
        }
    }

    [Theory]
    [MemberData(nameof(Spacings))]
    public async Task Virtlockd_keeps_every_lease_and_client_through_a_SIGUSR1_storm(DaemonKind kind, int spacingMs)
    {
        // ours, then ours again (the explicit handoff after the storm), then the C daemon (rollback), then C again
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, [kind, kind, DaemonKind.C, DaemonKind.C]);
        var sb = rig.Sandbox;
        var disks = Enumerable.Range(0, LockClients).Select(i => Path.Combine(rig.TempDir, $"disk{i}")).ToArray();
        var holders = await Task.WhenAll(disks.Select((d, i) => LeaseChecks.HoldAsync(sb, d, $"dom{i}", i + 1)));
        var relays = new List<OwnerConnection>();
        var relayFiles = new List<string>();
        for (int j = 0; j < Relays; j++)
        {
            var r = await OwnerConnection.StartAsync(sb, rig.SocketHost);
            LockHandoffTests.RpcAssertOk(await r.RegisterSelfAsync((uint)(100 + j), $"relay{j}"), $"relay {j} REGISTER");
            var f = Path.Combine(rig.TempDir, $"relay{j}");
            LockHandoffTests.RpcAssertOk(await r.AcquireAsync("", f, LockProtocol.AcquireAutoCreate), $"relay {j} ACQUIRE");
            relays.Add(r);
            relayFiles.Add(f);
        }
        var files = disks.Concat(relayFiles).ToArray();
        var clientsBefore = await rig.ClientListAsync();
        var before = rig.CurrentProcess();
        var watcher = await GapWatcher.StartAsync(sb, files);

        int delivered = await StormAsync(rig.Pid, Signals, spacingMs);
        Assert.True(delivered == Signals && rig.Daemon.IsRunning, $"the daemon died in a storm of SIGUSR1 {spacingMs} ms apart after " +
            $"{delivered} signals (exit {rig.Daemon.ExitCode}). stderr=[{HandoffRig.Tail(rig.Daemon.Stderr)}]");
        await WaitSettledAsync(rig, $"{spacingMs} ms storm");
        rig.AssertSameProcess(before, $"after {Signals} SIGUSR1 {spacingMs} ms apart");

        async Task AssertEverythingHeldAsync(string when)
        {
            Assert.Equal(clientsBefore, await rig.ClientListAsync());
            await LeaseChecks.AssertAllBusyAsync(sb, files, when);
            for (int j = 0; j < relays.Count; j++)
                LockHandoffTests.RpcAssertOk(await relays[j].AcquireAsync("", Path.Combine(rig.TempDir, $"relay{j}-{rig.Step}"), LockProtocol.AcquireAutoCreate),
                    $"{when}: relay {j} ACQUIRE on its kept connection");
            foreach (var h in holders) Assert.True(h.Process.IsRunning, $"{when}: lockclient {h.Pid} is gone");
            foreach (var r in relays) Assert.True(r.Process.IsRunning, $"{when}: relay {r.Pid} is gone");
        }
        await AssertEverythingHeldAsync($"after the {spacingMs} ms storm");

        // and the next SIGUSR1 is an ordinary handoff: to ours, then back to the C daemon, which re-execs too
        for (int step = 1; step < rig.Chain.Length; step++)
        {
            await rig.HandoffAsync(TimeSpan.FromSeconds(30));
            rig.AssertSameProcess(before, $"handoff {step} after the storm");
            await AssertEverythingHeldAsync($"handoff {step} ({rig.Chain[step]}) after the storm");
            if (rig.Chain[step] == DaemonKind.C)
                await AssertCHandlesUsr1Async(rig);
        }
        var (polls, free, firstFree) = await watcher.StopAsync();
        Assert.True(polls > files.Length, $"gap watcher made only {polls} polls");
        Assert.True(free == 0, $"a lease was free {free} times (first: {firstFree}) during the {spacingMs} ms storm or after");
    }

    public static TheoryData<DaemonKind> Kinds => new() { DaemonKind.Managed, DaemonKind.ManagedRpc };

    /// <summary>How many restarts a sustained storm runs through.</summary>
    private const int SustainedRestarts = 8;

    /// <summary>
    /// SIGUSR1 back to back, from one thread, until the daemon has gone through <see cref="SustainedRestarts"/>
    /// restarts: each seen as SIGUSR1 ignored (a restart under way, up to the new image's signal set-up), then
    /// handled again. So signals keep arriving while every new image sets its handler up, including the
    /// instant it does. Returns (signals sent, restarts seen); stops early when the daemon is gone or after
    /// <paramref name="bound"/>.
    /// </summary>
    private static Task<(long Sent, int Restarts)> SustainedStormAsync(int pid, TimeSpan bound) => Task.Factory.StartNew(() =>
    {
        long sent = 0;
        int restarts = 0;
        bool restarting = false;
        var sw = Stopwatch.StartNew();
        while (restarts < SustainedRestarts && sw.Elapsed < bound)
        {
            for (int i = 0; i < 8; i++)
                if (Native.Kill(pid, Posix.SIGUSR1) == 0) sent++;
            (ulong blk, ulong ign, ulong cgt) state;
            try { state = Posix.SignalState(pid); }
            catch (Exception e) when (e is IOException or InvalidOperationException) { break; } // the daemon is gone
            if ((state.ign & Usr1Bit) != 0)
                restarting = true;
            else if (restarting && (state.cgt & Usr1Bit) != 0 && (state.blk & Usr1Bit) == 0)
            {
                restarting = false;
                restarts++;
            }
        }
        return (sent, restarts);
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// A storm that does not stop while the daemon restarts again and again: a SIGUSR1 that reaches a new image
    /// before its handler is set up must join the restart under way or cause one more, never kill it (C's
    /// sigaction replaces SIG_IGN in one step; ours must leave no instant in between either). Then the leases,
    /// clients and an ordinary handoff to the C daemon are checked as after the spaced storms.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Virtlockd_survives_a_storm_that_lasts_through_several_restarts(DaemonKind kind)
    {
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, [kind, DaemonKind.C]);
        var sb = rig.Sandbox;
        var disks = Enumerable.Range(0, 4).Select(i => Path.Combine(rig.TempDir, $"disk{i}")).ToArray();
        var holders = await Task.WhenAll(disks.Select((d, i) => LeaseChecks.HoldAsync(sb, d, $"dom{i}", i + 1)));
        var clientsBefore = await rig.ClientListAsync();
        var before = rig.CurrentProcess();

        var (sent, restarts) = await SustainedStormAsync(rig.Pid, TimeSpan.FromSeconds(120));
        output.WriteLine($"{kind}: {sent} signals through {restarts} restarts");
        Assert.True(rig.Daemon.IsRunning, $"the daemon died in a sustained SIGUSR1 storm after {sent} signals and {restarts} restarts " +
            $"(exit {rig.Daemon.ExitCode}). stderr=[{HandoffRig.Tail(rig.Daemon.Stderr)}]");
        Assert.True(restarts == SustainedRestarts, $"only {restarts} restarts seen in the storm's bound ({sent} signals)");
        await WaitSettledAsync(rig, "sustained storm");
        rig.AssertSameProcess(before, $"after {sent} SIGUSR1 through {restarts} restarts");
        Assert.Equal(clientsBefore, await rig.ClientListAsync());
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after the sustained storm");
        foreach (var h in holders) Assert.True(h.Process.IsRunning, $"lockclient {h.Pid} is gone after the sustained storm");

        await rig.HandoffAsync(TimeSpan.FromSeconds(30));
        rig.AssertSameProcess(before, "handoff to C after the sustained storm");
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "the C daemon after the sustained storm");
        await AssertCHandlesUsr1Async(rig);
    }

    [Theory]
    [MemberData(nameof(Spacings))]
    public async Task Virtlogd_loses_no_byte_through_a_SIGUSR1_storm(DaemonKind kind, int spacingMs)
    {
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlogd, [kind, kind, DaemonKind.C, DaemonKind.C], LogConfig);
        var sb = rig.Sandbox;
        var paths = Enumerable.Range(0, Domains).Select(i => Path.Combine(rig.TempDir, $"dom{i}.log")).ToArray();
        var clients = await Task.WhenAll(paths.Select(async (p, i) =>
        {
            var c = await LogClientDriver.StartAsync(sb, $"dom{i}");
            await c.OpenAsync(p);
            return c;
        }));
        var records = new long[Domains];
        var writesDuring = new long[Domains];
        using var stop = new CancellationTokenSource();
        var writers = clients.Select((c, i) => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await c.WriteAsync(RecordsPerWrite, RecordSize); // throws on "err ..." (EPIPE and the like)
                records[i] += RecordsPerWrite;
                writesDuring[i]++;
            }
        })).ToArray();
        // the writers are under way before the first signal
        Assert.True(await LogEnv.EventuallyAsync(() => writesDuring.All(n => n > 0) || writers.Any(w => w.IsCompleted), TimeSpan.FromSeconds(30)),
            "the writers did not start");
        var before = rig.CurrentProcess();
        var during = writesDuring.ToArray();

        int delivered = await StormAsync(rig.Pid, Signals, spacingMs);
        Assert.True(delivered == Signals && rig.Daemon.IsRunning, $"the daemon died in a storm of SIGUSR1 {spacingMs} ms apart after " +
            $"{delivered} signals (exit {rig.Daemon.ExitCode}). stderr=[{HandoffRig.Tail(rig.Daemon.Stderr)}]");
        await WaitSettledAsync(rig, $"{spacingMs} ms storm");
        rig.AssertSameProcess(before, $"after {Signals} SIGUSR1 {spacingMs} ms apart");
        for (int step = 1; step < rig.Chain.Length; step++)
        {
            await rig.HandoffAsync(TimeSpan.FromSeconds(30));
            rig.AssertSameProcess(before, $"handoff {step} after the storm");
            if (rig.Chain[step] == DaemonKind.C)
                await AssertCHandlesUsr1Async(rig);
        }
        // every writer wrote during all this and is still served by the C daemon at the end
        var mark = writesDuring.ToArray();
        Assert.True(await LogEnv.EventuallyAsync(() => writesDuring.Select((n, i) => n > mark[i]).All(x => x) || writers.Any(w => w.IsCompleted),
            TimeSpan.FromSeconds(30)), "not every writer wrote after the last handoff");
        stop.Cancel();
        var all = Task.WhenAll(writers);
        await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60)));
        Assert.True(all.IsCompleted, "writers did not finish within 60 s");
        await all; // a writer's failure (EPIPE: a domain's pipe broke) fails the test here
        Assert.True(writesDuring.Select((n, i) => n > during[i]).All(x => x), "a writer made no progress across the storm");
        output.WriteLine($"{spacingMs} ms: writes per domain {string.Join(',', writesDuring)}");

        foreach (var c in clients) await c.CloseFdAsync();
        for (int i = 0; i < Domains; i++)
        {
            long want = records[i] * RecordSize;
            var p = paths[i];
            Assert.True(await LogEnv.EventuallyAsync(() => File.Exists(p) && new FileInfo(p).Length >= want, TimeSpan.FromSeconds(30)),
                $"{p}: {(File.Exists(p) ? new FileInfo(p).Length : -1)} of {want} bytes");
            Records.AssertEqual(Records.Stream(0, records[i], RecordSize), File.ReadAllBytes(p), $"{spacingMs} ms storm dom{i}.log");
        }
        Assert.True(rig.Daemon.IsRunning, $"virtlogd died: {HandoffRig.Tail(rig.Daemon.Stderr)}");
        foreach (var c in clients) await c.QuitAsync();
    }
}
