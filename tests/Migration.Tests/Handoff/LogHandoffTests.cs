using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// virtlogd exec-restart handoff (SIGUSR1) across binaries while 16 domains keep writing through the pipes that
/// libvirt's own log client (virLogManagerDomainOpenLogFile) got from the daemon: every record lands exactly once
/// and in order, and no write ever fails (EPIPE).
/// </summary>
public sealed class LogHandoffTests(ITestOutputHelper output)
{
    private const int Domains = 16;
    private const int RecordSize = 100;
    private const int RecordsPerWrite = 50;
    private const string Config = "max_size = 1000000000\nmax_backups = 3\n";

    [Theory]
    [MemberData(nameof(HandoffDirections.All), MemberType = typeof(HandoffDirections))]
    public async Task EveryByteLandsOnceAndInOrderAcrossTheHandoff(string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlogd, chain, Config);
        var sb = rig.Sandbox;

        var paths = Enumerable.Range(0, Domains).Select(i => Path.Combine(rig.TempDir, $"dom{i}.log")).ToArray();
        var opened = new (int Fd, ulong Inode, long Offset)[Domains];
        var clients = await Task.WhenAll(paths.Select(async (p, i) =>
        {
            var c = await LogClientDriver.StartAsync(sb, $"dom{i}");
            opened[i] = await c.OpenAsync(p);
            return c;
        }));
        var records = new long[Domains];
        // before
        await Task.WhenAll(clients.Select(async (c, i) => { await c.WriteAsync(RecordsPerWrite, RecordSize); records[i] += RecordsPerWrite; }));

        // writers looping across the handoff(s): each sends `write` commands back to back (10 ms apart) until
        // told to stop, then two more
        using var stop = new CancellationTokenSource();
        var writesDuring = new long[Domains];
        var writers = clients.Select((c, i) => Task.Run(async () =>
        {
            int after = 0;
            while (after < 2)
            {
                if (stop.IsCancellationRequested) after++;
                await c.WriteAsync(RecordsPerWrite, RecordSize); // throws on "err ..." (EPIPE and the like)
                records[i] += RecordsPerWrite;
                Interlocked.Increment(ref writesDuring[i]);
                await Task.Delay(10);
            }
        })).ToArray();

        // every writer is under way before the first SIGUSR1
        await WaitForWritesAsync(new long[Domains], "before the handoff");
        var before = rig.CurrentProcess();
        for (int step = 1; step < chain.Length; step++)
        {
            var took = await rig.HandoffAsync();
            output.WriteLine($"{direction}: handoff {step} ({chain[step - 1]} -> {chain[step]}) done in {took.TotalMilliseconds:F0} ms");
            rig.AssertSameProcess(before, $"{direction} handoff {step}");
            // every writer gets writes through against the new binary
            await WaitForWritesAsync(Enumerable.Range(0, Domains).Select(i => Interlocked.Read(ref writesDuring[i])).ToArray(), $"after handoff {step}");
            Assert.True(writers.All(w => !w.IsFaulted), $"a writer failed during handoff {step}: " +
                string.Join("; ", writers.Where(w => w.IsFaulted).Select(w => w.Exception!.InnerException!.Message)));
        }
        stop.Cancel();
        var all = Task.WhenAll(writers);
        await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(all.IsCompleted, "writers did not finish within 30 s");
        await all; // rethrows a writer's failure ("err write: Broken pipe" etc.)
        output.WriteLine($"{direction}: write commands per domain during the loop: {string.Join(',', writesDuring)}");

        // every byte exactly once, in order
        for (int i = 0; i < Domains; i++)
        {
            long want = records[i] * RecordSize;
            var p = paths[i];
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(20) && (!File.Exists(p) || new FileInfo(p).Length < want))
                await Task.Delay(20);
        }
        // the RPC connections libvirt's client opened before the handoff(s) still serve after them: the
        // position of each file, on the same inode, at the end of what was written
        var positions = await Task.WhenAll(clients.Select((c, i) => c.PosAsync(paths[i])));
        for (int i = 0; i < Domains; i++)
        {
            Assert.Equal(opened[i].Inode, positions[i].Inode);
            Assert.Equal(records[i] * RecordSize, positions[i].Offset);
        }
        foreach (var c in clients) await c.CloseFdAsync();

        for (int i = 0; i < Domains; i++)
        {
            var p = paths[i];
            var got = File.ReadAllBytes(p);
            Records.AssertEqual(Records.Stream(0, records[i], RecordSize), got, $"{direction} dom{i}.log");
            Assert.False(File.Exists(p + ".0"), $"{p} rotated");
        }
        output.WriteLine($"{direction}: {records.Sum()} records ({records.Sum() * RecordSize} bytes) all landed in order");
        // and append and read through them
        for (int i = 0; i < Domains; i++)
        {
            var message = $"appended after {direction} by dom{i}";
            await clients[i].AppendAsync(paths[i], message);
            var back = await clients[i].ReadAsync(paths[i], positions[i].Inode, positions[i].Offset, 4096);
            Assert.Equal(message + "\n", System.Text.Encoding.ASCII.GetString(back));
        }
        Assert.True(rig.Daemon.IsRunning, $"virtlogd died: {HandoffRig.Tail(rig.Daemon.Stderr)}");
        foreach (var c in clients) await c.QuitAsync();

        // bounded: each writer has made two more write commands than in baseline (a failed writer ends the wait)
        async Task WaitForWritesAsync(long[] baseline, string when)
        {
            for (var sw = Stopwatch.StartNew(); ; await Task.Delay(10))
            {
                if (writers.Any(w => w.IsFaulted) || Enumerable.Range(0, Domains).All(i => Interlocked.Read(ref writesDuring[i]) >= baseline[i] + 2))
                    return;
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"not every writer wrote twice {when} within 30 s: " +
                    string.Join(',', Enumerable.Range(0, Domains).Select(i => Interlocked.Read(ref writesDuring[i]) - baseline[i])));
            }
        }
    }
}
