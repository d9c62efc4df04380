using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;

namespace Libvirt.Tests.LockClient;

/// <summary>
/// libvirt's own lock client (libvirt.so.0's virLockManager* API loading a lockd.so lock-driver plugin,
/// via the tests/LockClient driver) against both daemons, with libvirt's plugin and with ours
/// (<see cref="LockPlugin"/>). Every lock operation here goes through lockd.so: REGISTER on a fresh
/// connection, ACQUIRE_RESOURCE per resource, optional RESTRICT, and a new connection for RELEASE.
/// </summary>
public class LockClientTests
{
    /// <summary>libvirt's plugin against the C daemon and each of our configurations; ours against the C
    /// daemon, our default configuration and every twin (the daemon kinds' differences are the daemon's, which
    /// the first set covers; the second shows the plugin speaks to both daemons).</summary>
    public static TheoryData<LockPlugin, DaemonKind> Kinds
    {
        get
        {
            var d = new TheoryData<LockPlugin, DaemonKind>();
            foreach (var k in DaemonKinds.Array)
                d.Add(LockPlugin.C, k);
            foreach (var k in ManagedPluginKinds)
                d.Add(LockPlugin.Managed, k);
            return d;
        }
    }

    public static readonly DaemonKind[] ManagedPluginKinds = [DaemonKind.C, DaemonKind.Managed, DaemonKind.ManagedAll];

    private static string Disk(DaemonEnv env, string name = "disk.img")
    {
        var p = Path.Combine(env.TempDir, name);
        if (!File.Exists(p)) File.WriteAllText(p, "");
        return p;
    }

    /// <summary>A config dir holding qemu-lockd.conf (what virLockManagerPluginNew("lockd","qemu",dir) reads).</summary>
    private static string ConfigDir(DaemonEnv env, string conf)
    {
        var dir = Path.Combine(env.TempDir, "lockd-cfg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "qemu-lockd.conf"), conf);
        return dir;
    }

    private static string Sha256Hex(string s) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(s))).ToLowerInvariant();

    /// <summary>Start lockclient <paramref name="name"/> and add <paramref name="disk"/> ("disk PATH [shared|readonly]").</summary>
    private static async Task<LockClientDriver> StartWithDiskAsync(DaemonEnv env, LockPlugin plugin, string name, int id, string disk, string? mode = null)
    {
        var c = await LockClientDriver.StartAsync(env.Sandbox, name, id, plugin: plugin);
        await c.OkAsync(mode is null ? $"disk {disk}" : $"disk {disk} {mode}");
        return c;
    }

    /// <summary>"a" (id 1) acquires <paramref name="disk"/>; "b" (id 2) then fails to with the exact "is locked" error.</summary>
    private static async Task<(LockClientDriver Holder, LockClientDriver Blocked)> HolderAndBlockedAsync(DaemonEnv env, LockPlugin plugin, string disk)
    {
        var a = await StartWithDiskAsync(env, plugin, "a", 1, disk);
        await a.OkAsync("acquire");
        var b = await StartWithDiskAsync(env, plugin, "b", 2, disk);
        await AssertLockedAsync(b, disk);
        return (a, b);
    }

    /// <summary>"acquire" fails with "resource busy: Lockspace resource '<paramref name="resource"/>' is locked".</summary>
    private static async Task AssertLockedAsync(LockClientDriver c, string resource) =>
        Assert.Equal(Err.Locked(resource), await c.ErrAsync("acquire"));

    private static async Task AcquireReleaseAsync(LockClientDriver c)
    {
        await c.OkAsync("acquire");
        await c.OkAsync("release");
    }

    /// <summary>"close" then quit, for each client in turn.</summary>
    private static async Task CloseAndQuitAsync(params LockClientDriver[] clients)
    {
        foreach (var x in clients) { await x.OkAsync("close"); await x.QuitAsync(); }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Register_only_acquire_takes_no_lock(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var a = await StartWithDiskAsync(env, plugin, "a", 1, disk);
        var fd = await a.OkAsync("acquire registeronly");
        Assert.Matches(@"^\d+$", fd);

        var b = await StartWithDiskAsync(env, plugin, "b", 2, disk);
        await AcquireReleaseAsync(b);
        await CloseAndQuitAsync(b);

        // nothing was acquired: releasing reports the resource as not locked
        Assert.Equal(Err.NotLocked(disk), await a.ErrAsync("release"));
        await CloseAndQuitAsync(a);
        Assert.True(env.Daemon.IsRunning);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Exclusive_disk_conflicts_with_exact_error(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var (a, b) = await HolderAndBlockedAsync(env, plugin, disk);
        // the failed acquire closed its connection: the daemon must not have killed b
        Assert.True(b.Process.IsRunning);
        await AssertLockedAsync(b, disk);

        await a.OkAsync("release");
        await CloseAndQuitAsync(a);
        await b.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Shared_disks_coexist_and_exclude_exclusive(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, plugin: plugin);
        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, plugin: plugin);
        var c = await LockClientDriver.StartAsync(env.Sandbox, "c", 3, plugin: plugin);
        await a.OkAsync($"disk {disk} shared");
        await b.OkAsync($"disk {disk} shared");
        await c.OkAsync($"disk {disk}");
        await a.OkAsync("acquire");
        await b.OkAsync("acquire");
        await AssertLockedAsync(c, disk);

        await a.OkAsync("release");
        await AssertLockedAsync(c, disk); // b still shares it
        await b.OkAsync("release");
        await c.OkAsync("acquire");

        // and exclusive excludes shared
        var d = await StartWithDiskAsync(env, plugin, "d", 4, disk, "shared");
        await AssertLockedAsync(d, disk);
        await c.OkAsync("release");
        await AcquireReleaseAsync(d);

        await CloseAndQuitAsync(a, b, c, d);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Readonly_disks_take_no_lock(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var a = await StartWithDiskAsync(env, plugin, "a", 1, disk, "readonly");
        await a.OkAsync("acquire");
        var b = await StartWithDiskAsync(env, plugin, "b", 2, disk);
        await b.OkAsync("acquire");
        // a's readonly disk still takes nothing while b holds it exclusively
        await a.OkAsync("acquire");
        await b.OkAsync("release");
        await a.OkAsync("release");
        await CloseAndQuitAsync(a, b);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task File_lockspace_dir_auto_creates_sha256_named_lease(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var lsDir = Path.Combine(env.TempDir, "files-lockspace");
        var cfg = ConfigDir(env, $"file_lockspace_dir = \"{lsDir}\"\n");
        Assert.False(Directory.Exists(lsDir));

        // plugin init sends CREATE_LOCKSPACE for file_lockspace_dir: the daemon creates the directory
        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, cfg, plugin: plugin);
        Assert.True(Directory.Exists(lsDir), "daemon must create the file lockspace dir (CREATE_LOCKSPACE)");

        await a.OkAsync($"disk {disk}");
        await a.OkAsync("acquire");
        var lease = Path.Combine(lsDir, Sha256Hex(disk));
        Assert.True(File.Exists(lease), $"lease file {lease} missing; dir has [{string.Join(",", Directory.GetFiles(lsDir))}]");
        Assert.Single(Directory.GetFiles(lsDir));

        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, cfg, plugin: plugin);
        await b.OkAsync($"disk {disk}");
        Assert.Equal(Err.Locked(Sha256Hex(disk)), await b.ErrAsync("acquire"));

        await a.OkAsync("release");
        Assert.False(File.Exists(lease), "auto-created lease file is deleted on release");
        await b.OkAsync("acquire");
        Assert.True(File.Exists(lease));
        await b.OkAsync("release");
        await CloseAndQuitAsync(a, b);
    }

    /// <summary>Each plugin against the C daemon (the plugin under test alone), and ours against our daemon with every twin.</summary>
    public static TheoryData<LockPlugin, DaemonKind> NonUtf8Kinds => new()
    {
        { LockPlugin.C, DaemonKind.C }, { LockPlugin.Managed, DaemonKind.C }, { LockPlugin.Managed, DaemonKind.ManagedAll },
    };

    [DllImport("libc", SetLastError = true, EntryPoint = "open")]
    private static extern int OpenBytes(byte[] path, int flags, int mode);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int CloseFd(int fd);

    [DllImport("libc", EntryPoint = "access")]
    private static extern int AccessBytes(byte[] path, int mode);

    /// <summary>Whether a path exists, named by its bytes (which .NET's File APIs cannot all express).</summary>
    private static bool ExistsBytes(byte[] path) => AccessBytes([.. path, 0], 0) == 0;

    /// <summary>On Linux a path is bytes: a file_lockspace_dir in qemu-lockd.conf and a disk path that are not
    /// UTF-8 (0xff, 0xfe) reach the daemon as they are, with libvirt's plugin and with ours alike: the lock space
    /// directory is created under its own name, and the lease is the SHA-256 of the disk path's bytes in it.</summary>
    [Theory]
    [MemberData(nameof(NonUtf8Kinds))]
    public async Task Non_UTF8_lockspace_dir_and_disk_path_are_bytes(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        byte[] tmp = Encoding.UTF8.GetBytes(env.TempDir);
        byte[] lsDir = [.. tmp, .. "/files"u8, 0xff];
        byte[] disk = [.. tmp, .. "/disk"u8, 0xfe, .. ".img"u8];
        int fd = OpenBytes([.. disk, 0], 0x41 /* O_WRONLY|O_CREAT */, 0x1a4);
        Assert.True(fd >= 0, $"cannot create the disk: errno {Marshal.GetLastPInvokeError()}");
        CloseFd(fd);
        var cfg = Path.Combine(env.TempDir, "lockd-cfg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(cfg);
        File.WriteAllBytes(Path.Combine(cfg, "qemu-lockd.conf"), [.. "file_lockspace_dir = \""u8, .. lsDir, .. "\"\n"u8]);

        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, cfg, plugin: plugin);
        Assert.True(ExistsBytes(lsDir), "the daemon must create the lock space under its own bytes (CREATE_LOCKSPACE)");
        await a.OkAsync($"disk hex:{Convert.ToHexString(disk)}");
        await a.OkAsync("acquire");
        string sha = Convert.ToHexStringLower(SHA256.HashData(disk));
        byte[] lease = [.. lsDir, (byte)'/', .. Encoding.ASCII.GetBytes(sha)];
        Assert.True(ExistsBytes(lease), $"lease file {sha} missing in the lock space");

        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, cfg, plugin: plugin);
        await b.OkAsync($"disk hex:{Convert.ToHexString(disk)}");
        Assert.Equal(Err.Locked(sha), await b.ErrAsync("acquire"));
        await a.OkAsync("release");
        Assert.False(ExistsBytes(lease), "auto-created lease file is deleted on release");
        await CloseAndQuitAsync(a, b);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Lease_resources(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var lsDir = Path.Combine(env.TempDir, "leases");
        var cfg = ConfigDir(env, $"file_lockspace_dir = \"{lsDir}\"\n"); // registers lsDir as a lockspace
        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, cfg, plugin: plugin);
        File.WriteAllText(Path.Combine(lsDir, "key1"), "");

        // lease in a lockspace the daemon does not know
        var unknown = Path.Combine(env.TempDir, "nolockspace");
        var u = await LockClientDriver.StartAsync(env.Sandbox, "u", 9, cfg, plugin: plugin);
        await u.OkAsync($"lease {unknown} key1");
        Assert.Equal(Err.NoLockspace(unknown), await u.ErrAsync("acquire"));
        await u.QuitAsync();

        // lease without AUTOCREATE on a key whose file does not exist
        var m = await LockClientDriver.StartAsync(env.Sandbox, "m", 8, cfg, plugin: plugin);
        await m.OkAsync($"lease {lsDir} missing");
        var missingErr = await m.ErrAsync("acquire");
        Assert.Equal($"Unable to open resource {Path.Combine(lsDir, "missing")}: No such file or directory", missingErr);
        await m.QuitAsync();

        await a.OkAsync($"lease {lsDir} key1");
        await a.OkAsync("acquire");
        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, cfg, plugin: plugin);
        await b.OkAsync($"lease {lsDir} key1");
        Assert.Equal(Err.Locked("key1"), await b.ErrAsync("acquire"));
        await a.OkAsync("release");
        Assert.True(File.Exists(Path.Combine(lsDir, "key1")), "a pre-existing (not auto-created) lease file is kept");
        await AcquireReleaseAsync(b);
        await CloseAndQuitAsync(a, b);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Release_then_another_client_acquires(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, plugin: plugin);
        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, plugin: plugin);
        await a.OkAsync($"disk {disk}");
        await b.OkAsync($"disk {disk}");
        await a.OkAsync("acquire");
        await AssertLockedAsync(b, disk);
        await a.OkAsync("release");
        await b.OkAsync("acquire");
        await AssertLockedAsync(a, disk);
        await b.OkAsync("release");
        await AcquireReleaseAsync(a);
        await CloseAndQuitAsync(a, b);
        Assert.True(env.Daemon.IsRunning);
    }

    /// <summary>
    /// ACQUIRE with VIR_LOCK_MANAGER_ACQUIRE_RESTRICT: lockd.so sends RESTRICT after the acquires on the
    /// connection whose dup'ed fd it returns. The restricted connection itself cannot be driven from
    /// lockclient; what is observable is that the acquire succeeds, the lease is held, and a later
    /// release (on a new connection) works.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Restricted_acquire_holds_the_lease(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var a = await StartWithDiskAsync(env, plugin, "a", 1, disk);
        Assert.Matches(@"^\d+$", await a.OkAsync("acquire restrict"));
        var b = await StartWithDiskAsync(env, plugin, "b", 2, disk);
        await AssertLockedAsync(b, disk);
        // restrict + registeronly is also accepted
        Assert.Matches(@"^\d+$", await b.OkAsync("acquire registeronly restrict"));
        await a.OkAsync("release");
        await b.OkAsync("acquire restrict");
        await b.OkAsync("release");
        await CloseAndQuitAsync(a, b);
        Assert.True(env.Daemon.IsRunning);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Holder_connection_closed_releases_and_sigterms_the_client(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var (a, b) = await HolderAndBlockedAsync(env, plugin, disk);

        // closing the fd of the connection that holds the lease: the daemon drops a's leases and kills a
        await a.Process.WriteLineAsync("close");
        var rc = await a.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(128 + Native.SIGTERM, rc);

        await AcquireReleaseAsync(b);
        await CloseAndQuitAsync(b);
        Assert.True(env.Daemon.IsRunning);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Killed_holder_releases_its_leases(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var (a, b) = await HolderAndBlockedAsync(env, plugin, disk);

        a.Process.Kill();
        Assert.False(a.Process.IsRunning);
        // bounded retry: the daemon sees the EOF asynchronously
        string last = "";
        for (var sw = System.Diagnostics.Stopwatch.StartNew(); sw.Elapsed < TimeSpan.FromSeconds(10);)
        {
            last = await b.CommandAsync("acquire");
            if (last.StartsWith("ok")) break;
            Assert.Equal("err " + Err.Locked(disk), last);
            await Task.Delay(100);
        }
        Assert.StartsWith("ok", last);
        await b.OkAsync("release");
        await CloseAndQuitAsync(b);
        Assert.True(env.Daemon.IsRunning);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Fifty_acquire_release_cycles(LockPlugin plugin, DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var disk = Disk(env);
        var r = await LockClientDriver.BenchAsync(env.Sandbox, disk, 50, plugin: plugin);
        Assert.True(r.ExitCode == 0, $"bench rc={r.ExitCode} stdout=[{r.Stdout}] stderr=[{r.Stderr}]");
        Assert.Matches(@"^cycles 50 seconds \d+\.\d+\n$", r.Stdout);

        // and the same through the interactive protocol, with a second client checking in between
        var a = await LockClientDriver.StartAsync(env.Sandbox, "a", 1, plugin: plugin);
        var b = await LockClientDriver.StartAsync(env.Sandbox, "b", 2, plugin: plugin);
        await a.OkAsync($"disk {disk}");
        await b.OkAsync($"disk {disk}");
        for (int i = 0; i < 50; i++)
        {
            await a.OkAsync("acquire");
            if (i % 10 == 0) await AssertLockedAsync(b, disk);
            await a.OkAsync("release");
        }
        await AcquireReleaseAsync(b);
        await CloseAndQuitAsync(a, b);
        Assert.True(env.Daemon.IsRunning);
    }
}
