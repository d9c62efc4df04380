using System.Diagnostics;
using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockClient;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Package;

/// <summary>
/// The .deb (packaging/debian, built from artifacts/bin) installed with dpkg into an isolated root
/// (<see cref="PackageRoot"/>) that has Debian's libvirt-daemon-system, while the C virtlockd and virtlogd run there
/// as their units start them (socket-activated) with 16 lease holders (libvirt's own lock client) and 16 domains
/// writing logs (libvirt's own log client): install switches the same pids to our binaries live, an upgrade to a newer
/// version of ours switches them to the new binary, `dpkg -r` switches them back to the C ones, `dpkg --purge` leaves
/// nothing of the package, and no lease or log byte is lost on the way.
/// </summary>
public sealed class PackageSwitchTests(ITestOutputHelper output)
{
    private const int Holders = 16;
    private const int Domains = 16;
    private const int RecordSize = 100;
    private const int RecordsPerWrite = 20;

    private static readonly string[] Diversions =
    [
        "diversion of /usr/sbin/virtlockd to /usr/sbin/virtlockd.distrib by libvirt-daemons-managed",
        "diversion of /usr/sbin/virtlogd to /usr/sbin/virtlogd.distrib by libvirt-daemons-managed",
        "diversion of /usr/share/man/man8/virtlockd.8.gz to /usr/share/man/man8/virtlockd.distrib.8.gz by libvirt-daemons-managed",
        "diversion of /usr/share/man/man8/virtlogd.8.gz to /usr/share/man/man8/virtlogd.distrib.8.gz by libvirt-daemons-managed",
    ];

    [Fact]
    public async Task InstallUpgradeRemoveAndPurgeSwitchRunningDaemonsLiveWithNothingLost()
    {
        var hostBefore = HostState();
        await using var root = await PackageRoot.CreateAsync();
        var sb = root.Sandbox;
        await root.EnsureLibvirtDaemonSystemAsync();
        var deb = await root.BuildPackageAsync();
        // the rotation limits of the test root's virtlogd.conf, raised so that every byte stays in the live file
        // and "nothing lost" is one comparison per domain (rotation itself is tested elsewhere)
        await root.ShOkAsync("printf 'max_size = 1000000000\\n' >> /etc/libvirt/virtlogd.conf");

        var cSha = new Dictionary<DaemonName, string>();
        foreach (var n in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            cSha[n] = PackageRoot.Sha(root.HostPath("/usr/sbin/" + DaemonPaths.ExeName(n)));

        var lockd = await UnitDaemon.StartAsync(root, DaemonName.Virtlockd);
        var logd = await UnitDaemon.StartAsync(root, DaemonName.Virtlogd);
        var daemons = new[] { lockd, logd };
        foreach (var d in daemons)
        {
            foreach (var note in d.Notes) output.WriteLine($"{d.Exe}: {note}");
            Assert.Equal(cSha[d.Name], PackageRoot.ExeSha(d.Pid));
            Assert.Equal(d.Pid.ToString(), File.ReadAllText(root.HostPath($"/run/{d.Exe}.pid")).Trim());
            Assert.Contains($"Max open files            {d.LimitNoFile}", File.ReadAllText($"/proc/{d.Pid}/limits"));
            Assert.Equal(d.OomScoreAdjust, File.ReadAllText($"/proc/{d.Pid}/oom_score_adj").Trim());
        }

        // 16 lease holders
        var disks = Enumerable.Range(0, Holders).Select(i => Path.Combine(root.TempDir, $"disk{i}")).ToArray();
        var holders = await Task.WhenAll(disks.Select((d, i) => LeaseChecks.HoldAsync(sb, d, $"dom{i}", i + 1)));
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "before install");

        // 16 log writers, writing until told to stop
        var paths = Enumerable.Range(0, Domains).Select(i => Path.Combine(root.TempDir, $"dom{i}.log")).ToArray();
        var clients = await Task.WhenAll(paths.Select(async (p, i) =>
        {
            var c = await LogClientDriver.StartAsync(sb, $"dom{i}");
            await c.OpenAsync(p);
            return c;
        }));
        var records = new long[Domains];
        using var stop = new CancellationTokenSource();
        var writers = clients.Select((c, i) => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await c.WriteAsync(RecordsPerWrite, RecordSize); // throws on "err ..." (EPIPE and the like)
                records[i] += RecordsPerWrite;
                await Task.Delay(20);
            }
        })).ToArray();
        await WaitAsync(() => records.All(r => r > 0), "every writer wrote before install", writers);

        // install
        var installed = await root.ShAsync($"dpkg -i {deb}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -i {Path.GetFileName(deb)} [rc={installed.ExitCode}]\n{installed.Stdout}{installed.Stderr}");
        Assert.True(installed.ExitCode == 0, $"dpkg -i failed: {installed.Stdout}{installed.Stderr}");
        var oursSha = new Dictionary<DaemonName, string>();
        foreach (var d in daemons)
        {
            AssertSwitched(d, installed, "install", "\\S*");
            oursSha[d.Name] = PackageRoot.Sha(root.HostPath("/usr/sbin/" + d.Exe));
            Assert.NotEqual(cSha[d.Name], oursSha[d.Name]);
            Assert.Equal(cSha[d.Name], PackageRoot.Sha(root.HostPath($"/usr/sbin/{d.Exe}.distrib")));
            Assert.Equal(oursSha[d.Name], PackageRoot.ExeSha(d.Pid)); // same pid, our binary
        }
        Assert.Equal(Diversions.Order().ToArray(), await root.DiversionsAsync());
        Assert.Contains($"diversion by {PackageRoot.PackageName} from: /usr/sbin/virtlockd",
            await root.ShOkAsync("dpkg -S /usr/sbin/virtlockd"));
        await AssertServingAsync(root, "after install");
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after install");
        var atInstall = records.ToArray();
        await WaitAsync(() => records.Select((r, i) => r > atInstall[i]).All(x => x), "every writer wrote after install", writers);

        // upgrade to a newer version of ours: the new files replace ours under the same diversions, and the
        // running daemons exec the new binary (a new inode at the same path), ours to ours
        var version = await root.ShOkAsync($"dpkg-query -W -f '${{Version}}' {PackageRoot.PackageName}");
        var newer = await root.BuildPackageAsync(version: version.Trim() + "+upgrade1");
        var upgraded = await root.ShAsync($"dpkg -i {newer}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -i {Path.GetFileName(newer)} [rc={upgraded.ExitCode}]\n{upgraded.Stdout}{upgraded.Stderr}");
        Assert.True(upgraded.ExitCode == 0, $"the upgrade failed: {upgraded.Stdout}{upgraded.Stderr}");
        Assert.Equal(version.Trim() + "+upgrade1", (await root.ShOkAsync($"dpkg-query -W -f '${{Version}}' {PackageRoot.PackageName}")).Trim());
        foreach (var d in daemons)
        {
            AssertSwitched(d, upgraded, "upgrade");
            Assert.Equal(oursSha[d.Name], PackageRoot.ExeSha(d.Pid));
            Assert.Equal(cSha[d.Name], PackageRoot.Sha(root.HostPath($"/usr/sbin/{d.Exe}.distrib")));
        }
        Assert.Equal(Diversions.Order().ToArray(), await root.DiversionsAsync());
        await AssertServingAsync(root, "after upgrade");
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after upgrade");
        var atUpgrade = records.ToArray();
        await WaitAsync(() => records.Select((r, i) => r > atUpgrade[i]).All(x => x), "every writer wrote after the upgrade", writers);

        // remove
        var removed = await root.ShAsync($"dpkg -r {PackageRoot.PackageName}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -r {PackageRoot.PackageName} [rc={removed.ExitCode}]\n{removed.Stdout}{removed.Stderr}");
        Assert.True(removed.ExitCode == 0, $"dpkg -r failed: {removed.Stdout}{removed.Stderr}");
        foreach (var d in daemons)
        {
            AssertSwitched(d, removed, "removal");
            Assert.Equal(cSha[d.Name], PackageRoot.Sha(root.HostPath("/usr/sbin/" + d.Exe)));
            Assert.False(File.Exists(root.HostPath($"/usr/sbin/{d.Exe}.distrib")), $"/usr/sbin/{d.Exe}.distrib left after removal");
            Assert.Equal(cSha[d.Name], PackageRoot.ExeSha(d.Pid)); // same pid, the C binary again
        }
        Assert.Empty(await root.DiversionsAsync());
        await AssertServingAsync(root, "after removal");
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after removal");
        var atRemove = records.ToArray();
        await WaitAsync(() => records.Select((r, i) => r > atRemove[i]).All(x => x), "every writer wrote after removal", writers);

        // purge after removal: nothing left of the package, the C daemons untouched
        var purged = await root.ShAsync($"dpkg --purge {PackageRoot.PackageName}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg --purge {PackageRoot.PackageName} [rc={purged.ExitCode}]\n{purged.Stdout}{purged.Stderr}");
        Assert.True(purged.ExitCode == 0, $"dpkg --purge failed: {purged.Stdout}{purged.Stderr}");
        Assert.DoesNotContain($"Package: {PackageRoot.PackageName}\n", File.ReadAllText(root.HostPath("/var/lib/dpkg/status")));
        Assert.Empty(await root.DiversionsAsync());
        Assert.False(Directory.Exists(root.HostPath("/usr/share/doc/" + PackageRoot.PackageName)), "the package's documentation left after purge");
        foreach (var d in daemons)
        {
            Assert.True(d.Process.IsRunning, $"{d.Exe} exited during the purge: {HandoffRig.Tail(d.Process.Stderr)}");
            Assert.Equal(cSha[d.Name], PackageRoot.ExeSha(d.Pid));
        }
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after purge");

        stop.Cancel();
        var all = Task.WhenAll(writers);
        await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(all.IsCompleted, "writers did not finish within 30 s");
        await all; // rethrows a writer's failure (a pipe the daemon dropped: EPIPE)
        foreach (var h in holders)
            Assert.True(h.Process.IsRunning, $"lease holder {h.Pid} is gone (the daemon kills the owner of a dropped connection)");
        foreach (var c in clients) await c.CloseFdAsync();
        for (int i = 0; i < Domains; i++)
        {
            long want = records[i] * RecordSize;
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(20) && (!File.Exists(paths[i]) || new FileInfo(paths[i]).Length < want))
                await Task.Delay(20);
            Records.AssertEqual(Records.Stream(0, records[i], RecordSize), File.ReadAllBytes(paths[i]), $"dom{i}.log");
        }
        output.WriteLine($"{records.Sum()} records ({records.Sum() * RecordSize} bytes) from {Domains} domains all landed in order; " +
            $"{Holders} leases held throughout");
        foreach (var c in clients) await c.QuitAsync();
        foreach (var h in holders) await h.QuitAsync();

        Assert.Equal(hostBefore, HostState());
    }

    /// <summary>A daemon started as the unit starts it serves the admin socket: virt-admin lists its servers.</summary>
    /// <summary>The package script switched <paramref name="d"/> live; if the daemon is gone,
    /// its own last words come first (the script can only say that it exited).</summary>
    private static void AssertSwitched(UnitDaemon d, ProcessResult script, string step, string oldSuffix = ".*")
    {
        Assert.True(d.Process.IsRunning,
            $"{d.Exe} exited during the {step}: {HandoffRig.Tail(d.Process.Stderr)}\nthe script said: {script.Stdout}{script.Stderr}");
        Assert.Matches($"(?m)^{d.Exe}: pid {d.Pid} switched live from /usr/sbin/{d.Exe}{oldSuffix} to /usr/sbin/{d.Exe}$", script.Stdout);
    }

    private static async Task AssertServingAsync(PackageRoot root, string when)
    {
        foreach (var exe in new[] { "virtlockd", "virtlogd" })
        {
            var r = await root.Sandbox.RunInsideAsync("/usr/bin/virt-admin", ["-c", $"{exe}:///system", "server-list"],
                TimeSpan.FromSeconds(20));
            Assert.True(r.ExitCode == 0 && r.Stdout.Contains(exe) && r.Stdout.Contains("admin"),
                $"{when}: virt-admin server-list of {exe}: {r.Stdout}{r.Stderr}");
        }
    }

    internal static async Task WaitAsync(Func<bool> cond, string what, Task[] writers)
    {
        var sw = Stopwatch.StartNew();
        while (!cond())
        {
            var failed = writers.FirstOrDefault(w => w.IsFaulted);
            if (failed != null) await failed; // rethrows
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"not within 30 s: {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>What the test must never change on the host: its C binaries, their diversions, our package's state.</summary>
    internal static string HostState()
    {
        var bins = new[] { "/usr/sbin/virtlockd", "/usr/sbin/virtlogd", "/usr/sbin/virtlockd.distrib", "/usr/sbin/virtlogd.distrib" }
            .Select(p => File.Exists(p) ? $"{p} {PackageRoot.Sha(p)}" : $"{p} absent");
        var diversions = File.Exists("/var/lib/dpkg/diversions")
            ? File.ReadAllLines("/var/lib/dpkg/diversions").Where(l => l.Contains("virtlo") || l.Contains(PackageRoot.PackageName))
            : [];
        var installed = File.ReadAllText("/var/lib/dpkg/status").Contains($"Package: {PackageRoot.PackageName}\n");
        return string.Join("\n", bins.Concat(diversions).Append($"{PackageRoot.PackageName} in host dpkg status: {installed}"));
    }
}
