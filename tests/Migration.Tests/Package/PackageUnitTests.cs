using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Package;

/// <summary>
/// The package under Debian's own units (libvirt-daemon-system's virtlockd/virtlogd .service and .socket files,
/// read from the isolated root and applied by <see cref="UnitDaemon"/>: systemd-socket-activate with the units'
/// socket names), and the maintainer scripts' answers when there is nothing to switch or a switch must not happen.
/// </summary>
public sealed class PackageUnitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task OurDaemonsStartUnderTheUnitsSocketActivatedServeAdminAndReloadInPlace()
    {
        var hostBefore = PackageSwitchTests.HostState();
        await using var root = await PackageRoot.CreateAsync();
        await root.EnsureLibvirtDaemonSystemAsync();
        var deb = await root.BuildPackageAsync();

        // nothing running: nothing to do, and it says so
        var installed = await root.ShAsync($"dpkg -i {deb}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -i [rc={installed.ExitCode}]\n{installed.Stdout}{installed.Stderr}");
        Assert.True(installed.ExitCode == 0, installed.Stdout + installed.Stderr);
        Assert.Contains("virtlockd: not running, nothing to switch", installed.Stdout);
        Assert.Contains("virtlogd: not running, nothing to switch", installed.Stdout);

        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
        {
            var exe = DaemonPaths.ExeName(name);
            var ours = PackageRoot.Sha(root.HostPath("/usr/sbin/" + exe));
            var d = await UnitDaemon.StartAsync(root, name); // waits for the exec of /usr/sbin/<exe> on first connection
            foreach (var note in d.Notes) output.WriteLine($"{exe}: {note}");
            Assert.Equal(ours, PackageRoot.ExeSha(d.Pid));
            Assert.Equal(d.Pid.ToString(), File.ReadAllText(root.HostPath($"/run/{exe}.pid")).Trim());
            Assert.Contains($"Max open files            {d.LimitNoFile}", File.ReadAllText($"/proc/{d.Pid}/limits"));
            Assert.Equal(d.OomScoreAdjust, File.ReadAllText($"/proc/{d.Pid}/oom_score_adj").Trim());
            // both sockets came from the "unit" (the daemon found them by their LISTEN_FDNAMES names): the admin
            // server answers on the admin socket
            var servers = await AdminAsync(root, exe, "server-list");
            Assert.Contains(exe, servers);
            Assert.Contains("admin", servers);

            var before = await AdminAsync(root, exe, "client-list", exe);
            var image = d.StartStack();
            // ExecReload, with $MAINPID as systemd substitutes it
            var reload = d.ExecReload.Replace("$MAINPID", d.Pid.ToString());
            await root.ShOkAsync(reload);
            await WaitReloadedAsync(root, exe, d, image);
            Assert.True(d.Process.IsRunning, $"{exe} exited on reload: {HandoffRig.Tail(d.Process.Stderr)}");
            Assert.Equal(ours, PackageRoot.ExeSha(d.Pid));
            Assert.Contains(exe, await AdminAsync(root, exe, "server-list"));
            output.WriteLine($"{exe}: pid {d.Pid} socket-activated under the unit, reloaded ('{reload}') in place; " +
                $"client-list before reload:\n{before}");
        }
        Assert.Equal(hostBefore, PackageSwitchTests.HostState());
    }

    [Fact]
    public async Task ABinaryThatCannotStartIsNotExecutedAndTheRunningDaemonServesOn()
    {
        await using var root = await PackageRoot.CreateAsync();
        await root.EnsureLibvirtDaemonSystemAsync();
        // a package whose virtlockd cannot start (exits 1 whatever its arguments); virtlogd is ours
        var bin = Path.Combine(root.TempDir, "badbin");
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "virtlockd"), "#!/bin/sh\necho 'this virtlockd cannot start' >&2\nexit 1\n");
        File.SetUnixFileMode(Path.Combine(bin, "virtlockd"), (UnixFileMode)0b111_101_101);
        File.Copy(DaemonPaths.Binary(DaemonName.Virtlogd, DaemonKind.Managed), Path.Combine(bin, "virtlogd"));
        var deb = await root.BuildPackageAsync(bin);

        var cLockd = PackageRoot.Sha(root.HostPath("/usr/sbin/virtlockd"));
        var lockd = await UnitDaemon.StartAsync(root, DaemonName.Virtlockd);
        var logd = await UnitDaemon.StartAsync(root, DaemonName.Virtlogd);
        var disk = Path.Combine(root.TempDir, "disk0");
        var holder = await LeaseChecks.HoldAsync(root.Sandbox, disk, "dom0", 1);

        var installed = await root.ShAsync($"dpkg -i {deb}", TimeSpan.FromMinutes(3));
        output.WriteLine($"$ dpkg -i [rc={installed.ExitCode}]\n{installed.Stdout}{installed.Stderr}");
        Assert.True(installed.ExitCode == 0, installed.Stdout + installed.Stderr);
        Assert.Matches($"virtlockd: '/usr/sbin/virtlockd --version' failed \\(this virtlockd cannot start\\); pid {lockd.Pid} " +
            "was not signalled and keeps serving with /usr/sbin/virtlockd.distrib", installed.Stderr);
        Assert.Contains("not every running daemon was switched", installed.Stderr);
        Assert.Matches($"(?m)^virtlogd: pid {logd.Pid} switched live from \\S+ to /usr/sbin/virtlogd$", installed.Stdout);

        Assert.True(lockd.Process.IsRunning);
        Assert.Equal(cLockd, PackageRoot.ExeSha(lockd.Pid)); // still the C daemon
        await LeaseChecks.AssertAllBusyAsync(root.Sandbox, [disk], "after the refused switch");
        Assert.True(holder.Process.IsRunning);
        Assert.Contains("virtlockd", await AdminAsync(root, "virtlockd", "server-list"));
    }

    private static async Task<string> AdminAsync(PackageRoot root, string exe, params string[] args)
    {
        var r = await root.Sandbox.RunInsideAsync("/usr/bin/virt-admin", ["-c", $"{exe}:///system", .. args], TimeSpan.FromSeconds(20));
        Assert.True(r.ExitCode == 0, $"virt-admin {string.Join(' ', args)} ({exe}) failed: {r.Stdout}{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>
    /// After SIGUSR1 (bounded): the same pid has a new process image (its stack start moved: it exec'd), the
    /// state file the old image wrote is gone (the new one read it), the admin socket answers.
    /// </summary>
    private static async Task WaitReloadedAsync(PackageRoot root, string exe, UnitDaemon d, string imageBefore)
    {
        var state = root.HostPath($"/run/{exe}-restart-exec.json");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        // the re-exec'd daemon re-acquires its pid file and removes the state file; the admin socket then answers
        while (d.StartStack() == imageBefore || File.Exists(state))
        {
            Assert.True(d.Process.IsRunning, $"{exe} exited on reload: {HandoffRig.Tail(d.Process.Stderr)}");
            if (sw.Elapsed > TimeSpan.FromSeconds(15)) throw new TimeoutException($"{exe}: {state} still there 15 s after the reload");
            await Task.Delay(20);
        }
        await HandoffRig.WaitSocketAsync(d.Process, root.HostPath($"/run/libvirt/{exe}-admin-sock"), TimeSpan.FromSeconds(15));
    }
}
