using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;

namespace Libvirt.Tests.LockClient;

/// <summary>
/// Our lockd lock-driver plugin (artifacts/lib/lock-driver/lockd.so, managed/LockDriver) against libvirt's
/// own: that libvirt's lock manager really loaded ours, that it exports what libvirt looks up, and that
/// every error reaches libvirt's last error exactly as the C plugin reports it (code, domain, level,
/// str1-3, int1-2 and message, through lockclient --full-errors) for the same bad input: the plugin's own
/// argument checks, its configuration file, the daemon's error replies, the protocol's limits and a
/// missing daemon. The behaviour of the lock operations themselves is <see cref="LockClientTests"/>,
/// which run every theory with both plugins.
/// </summary>
public class LockPluginTests
{
    public static TheoryData<LockPlugin> Plugins => new(LockPlugin.C, LockPlugin.Managed);

    /// <summary>The C daemon, and ours with every twin: the daemon's error replies must reach libvirt the
    /// same way through both plugins whichever daemon sent them.</summary>
    public static TheoryData<DaemonKind> ErrorKinds => new(DaemonKind.C, DaemonKind.ManagedAll);

    private const string Uuid = "5f1e2d3c4b5a69788796a5b4c3d2e1f0";

    private static string ConfigDir(string root, string conf)
    {
        var dir = Path.Combine(root, "lockd-cfg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "qemu-lockd.conf"), conf);
        return dir;
    }

    /// <summary>Runs <paramref name="script"/> through a lockclient of each plugin in turn (--full-errors) and
    /// returns both transcripts, each line "COMMAND => REPLY".</summary>
    private static async Task<(List<string> C, List<string> Ours)> RunBothAsync(Sandbox sb, string? configDir, IReadOnlyList<string> script)
    {
        async Task<List<string>> Run(LockPlugin plugin)
        {
            var c = await LockClientDriver.StartAsync(sb, "vm", 1, configDir, Uuid, plugin, ["--full-errors"]);
            var lines = new List<string>();
            foreach (var cmd in script)
            {
                var reply = await c.CommandAsync(cmd);
                // the fd number an acquire hands out is the process's business
                if (cmd.StartsWith("acquire") && reply.StartsWith("ok ")) reply = "ok FD";
                lines.Add($"{(cmd.Length > 200 ? cmd[..200] + "..." : cmd)} => {reply}");
            }
            await c.OkAsync("close");
            await c.QuitAsync();
            return lines;
        }
        return (await Run(LockPlugin.C), await Run(LockPlugin.Managed));
    }

    private static void AssertSameTranscript(List<string> c, List<string> ours)
    {
        Assert.Equal(c.Count, ours.Count);
        for (int i = 0; i < c.Count; i++)
            Assert.True(c[i] == ours[i], $"line {i} differs:\n  C plugin:   {c[i]}\n  our plugin: {ours[i]}");
    }

    [Theory]
    [MemberData(nameof(Plugins))]
    public async Task Lock_manager_loads_the_chosen_plugin(LockPlugin plugin)
    {
        await using var env = await DaemonEnv.StartAsync(DaemonKind.C);
        var c = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, plugin: plugin);
        // /proc/self/maps of the lockclient: the one lockd.so libvirt's virLockManagerPluginNew dlopened
        var mapped = (await c.OkAsync("plugin")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([LockPlugins.File(plugin)], mapped);
        if (plugin == LockPlugin.Managed)
            Assert.DoesNotContain(LockPlugins.CPlugin, mapped);
        await c.QuitAsync();
    }

    [Fact]
    public async Task Plugin_exports_the_driver_table_and_nothing_else()
    {
        var so = LockPlugins.File(LockPlugin.Managed);
        var psi = new ProcessStartInfo("nm", ["-D", "--defined-only", so]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        var symbols = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[^1]).ToArray();
        // a data symbol ("D"), unversioned, as in libvirt's own lockd.so
        Assert.Equal(["virLockDriverImpl"], symbols);
        Assert.Contains(" D virLockDriverImpl", output);
    }

    /// <summary>Every argument check of the plugin's entry points, and the daemon's replies to acquires and
    /// releases that cannot be done: the same error in every field.</summary>
    [Theory]
    [MemberData(nameof(ErrorKinds))]
    public async Task Errors_are_the_C_plugins(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var lsDir = Path.Combine(env.TempDir, "leases");
        var cfg = ConfigDir(env.TempDir, $"file_lockspace_dir = \"{lsDir}\"\n");
        var disk = Path.Combine(env.TempDir, "disk.img");
        File.WriteAllText(disk, "");
        var unknownLs = Path.Combine(env.TempDir, "nolockspace");
        var holderDisk = Path.Combine(env.TempDir, "held.img");
        File.WriteAllText(holderDisk, "");
        string owner = $"uuid={Uuid} name=vm id=1";
        string[] script =
        [
            // drvNew
            $"new flags=0x2 {owner}",
            $"new type=1 {owner}",
            $"new {owner} color=red",
            $"new uuid={Uuid} name=vm",
            $"new uuid={Uuid} id=1",
            "new name=vm id=1",
            "new uuid=01010101010101010101010101010101 name=vm id=1",
            $"new {owner} pid=4242 uri=qemu:///system flags=0x1",
            // drvAddResource
            $"resource 0 {disk} flags=0x4",
            $"resource 0 {disk} path=/x",
            $"resource 1 key1 offset=1 path={lsDir} lockspace=x",
            $"resource 1 key1 path={lsDir} lockspace=x shape=round",
            $"resource 1 key1 path={lsDir}",
            "resource 1 key1 lockspace=x",
            "resource 2 key1",
            $"resource 0 {disk} flags=0x1",
            // drvAcquire, drvRelease, drvInquire flags
            "acquire flags=0x4",
            "release flags=0x1",
            "inquire flags=0x1",
            "inquire",
            "acquire registeronly",
            "release",
            // the daemon's replies: no such lock space, no such lease file, a lease not held, a lease held by another
            $"new {owner}",
            $"lease {unknownLs} key1",
            "acquire",
            "release",
            $"new {owner}",
            $"lease {lsDir} missing",
            "acquire",
            $"new {owner}",
            $"disk {disk}",
            "release",
            "acquire",
            "release",
            $"new {owner}",
            $"disk {holderDisk}",
            "acquire",
            // a name longer than the protocol's strings (65536): the call cannot be encoded
            $"new {owner}",
            $"resource 1 {new string('n', 70000)} path={lsDir} lockspace=x",
            "acquire",
            // an owner name too long for REGISTER
            $"new uuid={Uuid} id=1 name={new string('v', 70000)}",
            "acquire registeronly",
        ];

        // another owner holds holderDisk's lease (sha256-named in lsDir) for the whole run
        var holder = await LockClientDriver.StartAsync(env.Sandbox, "holder", 2, cfg);
        await holder.OkAsync($"disk {holderDisk}");
        await holder.OkAsync("acquire");

        var (c, ours) = await RunBothAsync(env.Sandbox, cfg, script);
        AssertSameTranscript(c, ours);
        // and the transcript says what it should: a sample of the expectations
        Assert.Contains(c, l => l.StartsWith("acquire flags=0x4 => err code=8 domain=42 ") &&
                                l.EndsWith(Err.UnsupportedFlags(4, "virLockManagerLockDaemonAcquire")));
        Assert.Contains(c, l => l.EndsWith(": " + Err.NoLockspace(unknownLs)));
        Assert.Contains(c, l => l.EndsWith(": Unable to encode message payload") && l.Contains("code=39 domain=7 "));
        Assert.Equal(script.Length, c.Count);

        await holder.OkAsync("release");
        await holder.OkAsync("close");
        await holder.QuitAsync();
        Assert.True(env.Daemon.IsRunning);
    }

    /// <summary>qemu-lockd.conf and drvInit: what virLockManagerPluginNew fails with (the lockclient prints
    /// it and exits), the same for both plugins.</summary>
    [Fact]
    public async Task Init_errors_are_the_C_plugins()
    {
        await using var env = await DaemonEnv.StartAsync(DaemonKind.C);
        var root = env.TempDir;
        var notADir = Path.Combine(root, "plain-file");
        File.WriteAllText(notADir, "");
        var confIsADir = Path.Combine(root, "conf-is-a-dir");
        Directory.CreateDirectory(Path.Combine(confIsADir, "qemu-lockd.conf"));
        (string What, string ConfigDir, string[] Extra)[] cases =
        [
            ("syntax error", ConfigDir(root, "auto_disk_leases = \n"), []),
            ("bool as a string", ConfigDir(root, "auto_disk_leases = \"yes\"\n"), []),
            ("bool out of range", ConfigDir(root, "auto_disk_leases = 2\n"), []),
            ("string as a number", ConfigDir(root, "file_lockspace_dir = 3\n"), []),
            ("second bool wrong", ConfigDir(root, "require_lease_for_disks = [ 1 ]\n"), []),
            ("unterminated string", ConfigDir(root, "lvm_lockspace_dir = \"/x\n"), []),
            ("config dir is a file", notADir, []),
            ("config file is a directory", confIsADir, []),
            ("lock space the daemon cannot create", ConfigDir(root, $"file_lockspace_dir = \"{notADir}/sub\"\n"), []),
            ("plugin flags", ConfigDir(root, ""), ["--init-flags", "0x1"]),
        ];
        foreach (var (what, dir, extra) in cases)
        {
            var replies = new List<string>();
            foreach (var plugin in new[] { LockPlugin.C, LockPlugin.Managed })
            {
                var c = LockClientDriver.Start(env.Sandbox, "vm", 1, dir, Uuid, plugin, ["--full-errors", .. extra]);
                var rc = await c.Process.WaitForExitAsync(TimeSpan.FromSeconds(20));
                Assert.True(rc == 1, $"{what} ({plugin}): rc {rc}, stdout [{c.Process.Stdout}] stderr [{c.Process.Stderr}]");
                replies.Add(c.Process.Stdout.Split('\n')[0]);
            }
            Assert.StartsWith("err code=", replies[0]);
            Assert.True(replies[0] == replies[1], $"{what}:\n  C plugin:   {replies[0]}\n  our plugin: {replies[1]}");
        }
        Assert.True(env.Daemon.IsRunning);
    }

    /// <summary>No daemon listening: the connection errors of acquire, release and of drvInit's
    /// CREATE_LOCKSPACE, and the disk-lease requirement checked before any connection.</summary>
    [Fact]
    public async Task No_daemon_and_config_errors_are_the_C_plugins()
    {
        await using var sb = await Sandbox.CreateAsync();
        var disk = Path.Combine(sb.TempDir, "disk.img");
        File.WriteAllText(disk, "");
        string owner = $"uuid={Uuid} name=vm id=1";
        var (c, ours) = await RunBothAsync(sb, null, [$"disk {disk}", "acquire", "acquire registeronly", "release", "inquire"]);
        AssertSameTranscript(c, ours);
        Assert.Contains(c, l => l.EndsWith(": Failed to connect socket to '/run/libvirt/virtlockd-sock': No such file or directory"));

        // without automatic leases a read/write disk needs a lease: refused before connecting
        var noAuto = ConfigDir(sb.TempDir, "auto_disk_leases = 0\nrequire_lease_for_disks = 1\n");
        (c, ours) = await RunBothAsync(sb, noAuto, [$"disk {disk}", "acquire", $"new {owner}", $"disk {disk} shared", "acquire"]);
        AssertSameTranscript(c, ours);
        Assert.Contains(c, l => l.EndsWith(": unsupported configuration: Read/write, exclusive access, disks were present, but no leases specified"));

        // drvInit's CREATE_LOCKSPACE with no daemon
        var withLs = ConfigDir(sb.TempDir, $"file_lockspace_dir = \"{Path.Combine(sb.TempDir, "ls")}\"\n");
        var replies = new List<string>();
        foreach (var plugin in new[] { LockPlugin.C, LockPlugin.Managed })
        {
            var lc = LockClientDriver.Start(sb, "vm", 1, withLs, Uuid, plugin, ["--full-errors"]);
            Assert.Equal(1, await lc.Process.WaitForExitAsync(TimeSpan.FromSeconds(20)));
            replies.Add(lc.Process.Stdout.Split('\n')[0]);
        }
        Assert.Equal(replies[0], replies[1]);
        Assert.EndsWith("Failed to connect socket to '/run/libvirt/virtlockd-sock': No such file or directory", replies[0]);
    }

    /// <summary>Automatic disk leases for block devices: with lvm_lockspace_dir and scsi_lockspace_dir set, a
    /// /dev path is looked up with lvs (not an LV: no key, the file lease is used) and then scsi_id (missing
    /// on this machine: the error libvirt's virCommand reports), as by the C plugin.</summary>
    [Fact]
    public async Task Block_device_lease_lookups_are_the_C_plugins()
    {
        await using var env = await DaemonEnv.StartAsync(DaemonKind.C);
        var lsDir = Path.Combine(env.TempDir, "files");
        var lvmDir = Path.Combine(env.TempDir, "lvm");
        var scsiDir = Path.Combine(env.TempDir, "scsi");
        var lvmOnly = ConfigDir(env.TempDir, $"file_lockspace_dir = \"{lsDir}\"\nlvm_lockspace_dir = \"{lvmDir}\"\n");
        var (c, ours) = await RunBothAsync(env.Sandbox, lvmOnly, ["disk /dev/null", "acquire", "release"]);
        AssertSameTranscript(c, ours);
        Assert.Equal("acquire => ok FD", c[1]);

        var withScsi = ConfigDir(env.TempDir, $"file_lockspace_dir = \"{lsDir}\"\nscsi_lockspace_dir = \"{scsiDir}\"\n");
        (c, ours) = await RunBothAsync(env.Sandbox, withScsi, ["disk /dev/null", "acquire", "release"]);
        AssertSameTranscript(c, ours);
    }

    /// <summary>Unprivileged, the plugin starts the session virtlockd itself when its socket
    /// ($XDG_RUNTIME_DIR/libvirt/virtlockd-sock) is not there (virNetSocketNewConnectUNIX's spawn, through
    /// libvirt's virCommand), and then locks through it. Run as nobody with a runtime directory of its own, so
    /// no other daemon is met; the spawned daemon is killed at the end (its pid file).</summary>
    [Theory]
    [MemberData(nameof(Plugins))]
    public async Task Unprivileged_plugin_starts_the_session_daemon(LockPlugin plugin)
    {
        var dir = Directory.CreateTempSubdirectory("lockd-session-").FullName;
        const int nobody = 65534;
        var pidFile = Path.Combine(dir, "libvirt", "virtlockd.pid");
        try
        {
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var disk = Path.Combine(dir, "disk.img");
            File.WriteAllText(disk, "");
            foreach (var f in new[] { dir, disk })
                Assert.Equal(0, Chown(f, nobody, nobody));

            var args = new List<string> { "--reuid", $"{nobody}", "--regid", $"{nobody}", "--clear-groups", "env", "-i", "PATH=/usr/bin:/bin",
                $"HOME={dir}", $"XDG_RUNTIME_DIR={dir}", LockClientDriver.BinaryPath, "--full-errors", "--name", "session", "--id", "1" };
            args.AddRange(LockPlugins.Args(plugin));
            var psi = new ProcessStartInfo("setpriv", args) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            await p.StandardInput.WriteAsync($"plugin\ndisk {disk}\nacquire\nrelease\nclose\nquit\n");
            p.StandardInput.Close();
            var stdout = p.StandardOutput.ReadToEndAsync();
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
                await p.WaitForExitAsync(cts.Token);
            var lines = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(p.ExitCode == 0, $"rc {p.ExitCode}: [{string.Join("|", lines)}] stderr [{await p.StandardError.ReadToEndAsync()}]");
            Assert.Equal("ok " + LockPlugins.File(plugin), lines[1]);
            Assert.Equal("ok", lines[2]);
            Assert.Matches(@"^ok \d+$", lines[3]);
            Assert.Equal(new[] { "ok", "ok", "ok" }, lines[4..7]);
            // the session daemon it started, running as nobody
            Assert.True(File.Exists(pidFile), $"no session virtlockd pid file at {pidFile}");
            int pid = int.Parse(File.ReadAllText(pidFile).Trim());
            Assert.Contains("virtlockd", File.ReadAllText($"/proc/{pid}/cmdline"));
            Assert.Equal((uint)nobody, GetUid(pid));
        }
        finally
        {
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out int pid) && pid > 1)
                Native.Kill(pid, Native.SIGKILL);
            try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static uint GetUid(int pid)
        => uint.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "chown", SetLastError = true)]
    private static extern int Chown(string path, int uid, int gid);
}
