using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Package;

/// <summary>
/// The package under a real systemd: Debian's systemd as PID 1 of a container (<see cref="SystemdContainer"/>) over
/// a root with libvirt-daemon-system, so the units are applied by systemd itself, not re-enacted. The C daemons
/// are socket-activated by systemd with 16 lease holders and 16 log writers; `dpkg -i` switches systemd's MainPID
/// of each service to our binary live (the maintainer script takes the pid from systemd), `systemctl reload`
/// re-execs ours in place, a stopped service is socket-activated again as ours, and `dpkg -r` switches back to
/// the C binaries; no lease or log byte is lost, and every limit systemd set for the C daemon holds for ours.
/// </summary>
public sealed class SystemdBootTests(ITestOutputHelper output)
{
    private const int Holders = 16;
    private const int Domains = 16;
    private const int RecordSize = 100;
    private const int RecordsPerWrite = 20;

    private static readonly string[] Exes = ["virtlockd", "virtlogd"];

    [Fact]
    public async Task UnderSystemdAsPid1TheUnitsRunOursAndThePackageSwitchesLiveBothWays()
    {
        var hostBefore = PackageSwitchTests.HostState();
        await using var root = await PackageRoot.CreateAsync();
        await root.EnsureLibvirtDaemonSystemAsync();
        var deb = await root.BuildPackageAsync();
        // every byte stays in the live log file, so "nothing lost" is one comparison per domain
        await using var box = await SystemdContainer.BootAsync(root,
            $"printf 'max_size = 1000000000\\n' >> {SystemdContainer.BootRoot}/etc/libvirt/virtlogd.conf");
        var sb = box.Inside;
        output.WriteLine($"systemd is PID 1 of the container (pid {box.Pid1} here)");

        var cSha = Exes.ToDictionary(e => e, e => PackageRoot.Sha(box.HostPath("/usr/sbin/" + e)));
        var pid = new Dictionary<string, string>();
        var limits = new Dictionary<string, (string NoFile, string Oom)>();
        foreach (var exe in Exes)
        {
            Assert.Equal("active", await box.ShowAsync($"{exe}.socket", "ActiveState"));
            Assert.Equal("inactive", await box.ShowAsync($"{exe}.service", "ActiveState"));
            await AssertServingAsync(box, exe, "first connection"); // systemd starts the service on it
            pid[exe] = await box.ShowAsync($"{exe}.service", "MainPID");
            Assert.Equal(cSha[exe], await ExeShaAsync(box, pid[exe]));
            limits[exe] = await LimitsAsync(box, pid[exe]);
            var unit = UnitDaemon.ReadUnit(root, $"{exe}.service");
            output.WriteLine($"{exe}: C daemon pid {pid[exe]} (in the container), started by systemd; the unit says " +
                $"LimitNOFILE={unit["LimitNOFILE"]} OOMScoreAdjust={unit["OOMScoreAdjust"]}, systemd applied " +
                $"'{limits[exe].NoFile}', oom_score_adj {limits[exe].Oom}");
        }

        var disks = Enumerable.Range(0, Holders).Select(i => Path.Combine(root.TempDir, $"disk{i}")).ToArray();
        var holders = await Task.WhenAll(disks.Select((d, i) => LeaseChecks.HoldAsync(sb, d, $"dom{i}", i + 1)));
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "before install");
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
                await c.WriteAsync(RecordsPerWrite, RecordSize);
                records[i] += RecordsPerWrite;
                await Task.Delay(20);
            }
        })).ToArray();
        async Task EveryWriterWroteAsync(string when)
        {
            var at = records.ToArray();
            await PackageSwitchTests.WaitAsync(() => records.Select((r, i) => r > at[i]).All(x => x), $"every writer wrote {when}", writers);
        }
        await EveryWriterWroteAsync("before install");

        // install: the postinst finds each daemon as systemd's MainPID and switches it
        var installed = await box.RunAsync($"dpkg -i {deb}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -i {Path.GetFileName(deb)} [rc={installed.ExitCode}]\n{installed.Stdout}{installed.Stderr}");
        Assert.True(installed.ExitCode == 0, $"dpkg -i failed: {installed.Stdout}{installed.Stderr}");
        var oursSha = Exes.ToDictionary(e => e, e => PackageRoot.Sha(box.HostPath("/usr/sbin/" + e)));
        foreach (var exe in Exes)
        {
            Assert.Matches($"(?m)^{exe}: pid {pid[exe]} switched live from /usr/sbin/{exe}\\S* to /usr/sbin/{exe}$", installed.Stdout);
            Assert.NotEqual(cSha[exe], oursSha[exe]);
            await AssertUnitRunsAsync(box, exe, pid[exe], oursSha[exe], limits[exe], "after install");
        }
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after install");
        await EveryWriterWroteAsync("after install");

        // systemctl reload: the unit's ExecReload (SIGUSR1 to $MAINPID) re-execs ours in place
        foreach (var exe in Exes)
        {
            var image = await StartStackAsync(box, pid[exe]);
            await box.OkAsync($"systemctl reload {exe}.service");
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (await StartStackAsync(box, pid[exe]) == image)
            {
                if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"{exe}: no exec within 30 s of systemctl reload");
                await Task.Delay(50);
            }
            await AssertUnitRunsAsync(box, exe, pid[exe], oursSha[exe], limits[exe], "after systemctl reload");
        }
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after reload");
        await EveryWriterWroteAsync("after reload");

        // removal: back to the C binaries, same pids
        var removed = await box.RunAsync($"dpkg -r {PackageRoot.PackageName}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -r {PackageRoot.PackageName} [rc={removed.ExitCode}]\n{removed.Stdout}{removed.Stderr}");
        Assert.True(removed.ExitCode == 0, $"dpkg -r failed: {removed.Stdout}{removed.Stderr}");
        foreach (var exe in Exes)
        {
            Assert.Matches($"(?m)^{exe}: pid {pid[exe]} switched live from /usr/sbin/{exe}.* to /usr/sbin/{exe}$", removed.Stdout);
            Assert.Equal(cSha[exe], PackageRoot.Sha(box.HostPath("/usr/sbin/" + exe)));
            await AssertUnitRunsAsync(box, exe, pid[exe], cSha[exe], limits[exe], "after removal");
        }
        await LeaseChecks.AssertAllBusyAsync(sb, disks, "after removal");
        await EveryWriterWroteAsync("after removal");

        stop.Cancel();
        var all = Task.WhenAll(writers);
        await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.True(all.IsCompleted, "writers did not finish within 30 s");
        await all;
        foreach (var h in holders)
            Assert.True(h.Process.IsRunning, $"lease holder {h.Pid} is gone (the daemon kills the owner of a dropped connection)");
        foreach (var c in clients) await c.CloseFdAsync();
        for (int i = 0; i < Domains; i++)
        {
            long want = records[i] * RecordSize;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(20) && (!File.Exists(paths[i]) || new FileInfo(paths[i]).Length < want))
                await Task.Delay(20);
            Records.AssertEqual(Records.Stream(0, records[i], RecordSize), File.ReadAllBytes(paths[i]), $"dom{i}.log");
        }
        output.WriteLine($"{records.Sum()} records from {Domains} domains landed in order; {Holders} leases held throughout");
        foreach (var c in clients) await c.QuitAsync();
        foreach (var h in holders) await h.QuitAsync();

        // a fresh start of ours by socket activation: install again with virtlogd stopped, then connect
        await box.OkAsync("systemctl stop virtlogd.service");
        var again = await box.RunAsync($"dpkg -i {deb}", TimeSpan.FromMinutes(3));
        Assert.True(again.ExitCode == 0, $"dpkg -i (again) failed: {again.Stdout}{again.Stderr}");
        Assert.Contains("virtlogd: not running, nothing to switch", again.Stdout);
        Assert.Equal("inactive", await box.ShowAsync("virtlogd.service", "ActiveState"));
        await AssertServingAsync(box, "virtlogd", "first connection after install");
        var fresh = await box.ShowAsync("virtlogd.service", "MainPID");
        Assert.NotEqual(pid["virtlogd"], fresh);
        await AssertUnitRunsAsync(box, "virtlogd", fresh, oursSha["virtlogd"], limits["virtlogd"], "socket-activated as ours");
        output.WriteLine($"virtlogd: socket-activated by systemd as ours (pid {fresh})");

        Assert.Equal(hostBefore, PackageSwitchTests.HostState());
    }

    /// <summary>The service is active with <paramref name="pid"/> as MainPID, runs the binary with
    /// <paramref name="sha"/>, has the C daemon's limits, and answers virt-admin on its admin socket.</summary>
    private static async Task AssertUnitRunsAsync(SystemdContainer box, string exe, string pid, string sha,
        (string NoFile, string Oom) limits, string when)
    {
        Assert.Equal("active", await box.ShowAsync($"{exe}.service", "ActiveState"));
        Assert.Equal(pid, await box.ShowAsync($"{exe}.service", "MainPID"));
        Assert.True(sha == await ExeShaAsync(box, pid), $"{when}: {exe} pid {pid} does not run the expected binary");
        Assert.Equal(limits, await LimitsAsync(box, pid));
        await AssertServingAsync(box, exe, when);
    }

    private static async Task AssertServingAsync(SystemdContainer box, string exe, string when)
    {
        var r = await box.RunAsync($"virt-admin -c {exe}:///system server-list", TimeSpan.FromSeconds(30));
        Assert.True(r.ExitCode == 0 && r.Stdout.Contains(exe) && r.Stdout.Contains("admin"),
            $"{when}: virt-admin server-list of {exe}: {r.Stdout}{r.Stderr}\n{box.BootLog}");
    }

    private static async Task<string> ExeShaAsync(SystemdContainer box, string pid)
        => (await box.OkAsync($"sha256sum /proc/{pid}/exe")).Split(' ')[0].ToUpperInvariant();

    private static async Task<(string, string)> LimitsAsync(SystemdContainer box, string pid)
    {
        var o = await box.OkAsync($"grep '^Max open files' /proc/{pid}/limits; cat /proc/{pid}/oom_score_adj");
        var lines = o.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return (string.Join(' ', lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)), lines[1].Trim());
    }

    private static async Task<string> StartStackAsync(SystemdContainer box, string pid)
        => (await box.OkAsync($"cat /proc/{pid}/stat")).Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[25];
}
