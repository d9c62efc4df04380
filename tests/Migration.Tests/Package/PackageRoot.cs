using System.Diagnostics;
using System.Security.Cryptography;
using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Package;

/// <summary>
/// An isolated Debian root for package tests: a <see cref="Sandbox"/> (private mount namespace) whose root is
/// switched (pivot_root) to an overlay of the host's / with a tmpfs upper layer, so dpkg, the maintainer scripts
/// and the daemons inside change only that tmpfs; the host's /usr, /etc and /var/lib/dpkg are never written.
/// Inside: fresh /run (tmpfs), a /dev of its own (tmpfs with the few character devices the daemons and dpkg use),
/// /proc with /proc/sys read-only, /sys read-only, and the sandbox's temp dir at the same path; so nothing inside
/// can write the host's device nodes or kernel settings either.
/// Debian's libvirt-daemon-system is installed into it from .debs that <c>./build.sh setup</c> downloads into
/// .build/pkgroot/debs (unless the host already has it, then it is there through the lower layer).
/// Everything goes when the sandbox's holder dies (Dispose).
/// </summary>
public sealed class PackageRoot : IAsyncDisposable
{
    public const string PackageName = "libvirt-daemons-managed";

    /// <summary>PATH for commands run inside (dpkg needs the sbin directories).</summary>
    public static readonly Dictionary<string, string?> Env = new()
    {
        ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ["DEBIAN_FRONTEND"] = "noninteractive",
        ["LC_ALL"] = "C.UTF-8",
    };

    private const string OverlayScript = """
        set -eu
        tmp=$1
        base=/run/.pkgroot
        mkdir -p "$base/upper" "$base/work" "$base/root"
        mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
        r=$base/root
        mount -t proc proc "$r/proc"
        mount --bind "$r/proc/sys" "$r/proc/sys" && mount -o remount,bind,ro "$r/proc/sys"
        mount --rbind /sys "$r/sys" && mount -o remount,bind,ro "$r/sys"
        mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
        for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
            mknod -m 666 "$r/dev/${n%%:*}" c "$(echo "$n" | cut -d: -f2)" "${n##*:}"
        done
        ln -s /proc/self/fd "$r/dev/fd"
        ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
        mkdir -p "$r/dev/shm" "$r/dev/pts"
        mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
        mount -t tmpfs -o mode=0755 tmpfs "$r/run"
        mkdir -p "$r/run/libvirt" "$r/run/lock" "$r$tmp"
        mount --bind "$tmp" "$r$tmp"
        mkdir -p "$r/.oldroot"
        cd "$r"
        pivot_root . .oldroot
        cd /
        umount -l /.oldroot
        rmdir /.oldroot
        echo pivoted
        """;

    public Sandbox Sandbox { get; }
    public string TempDir => Sandbox.TempDir;

    private PackageRoot(Sandbox sb) { Sandbox = sb; }

    public static async Task<PackageRoot> CreateAsync()
    {
        var sb = await Sandbox.CreateAsync();
        try
        {
            var r = await sb.RunInsideAsync("sh", ["-c", OverlayScript, "overlay", sb.TempDir], TimeSpan.FromSeconds(30));
            Assert.True(r.ExitCode == 0 && r.Stdout.Contains("pivoted"), $"overlay root setup failed ({r.ExitCode}): {r.Stdout}{r.Stderr}");
            var root = new PackageRoot(sb);
            // the namespace's root is now the overlay: its /run is the fresh tmpfs (no host pid files), and a
            // file written inside does not appear on the host
            var probe = "/etc/.package-root-probe-" + Guid.NewGuid().ToString("N")[..8];
            var w = await root.ShAsync($"touch {probe} && findmnt -n -o FSTYPE / && ls -A /run");
            Assert.True(w.ExitCode == 0, w.Stderr);
            var lines = w.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("overlay", lines[0]);
            var run = lines.Skip(1).ToArray();
            Assert.Contains("libvirt", run);
            foreach (var hostOnly in new[] { "virtlockd.pid", "virtlogd.pid", "systemd" })
                Assert.DoesNotContain(hostOnly, run);
            Assert.False(File.Exists(probe), $"{probe} written inside the package root appeared on the host");
            return root;
        }
        catch
        {
            await sb.DisposeAsync();
            throw;
        }
    }

    public string HostPath(string inside) => Sandbox.HostPath(inside);

    public Task<ProcessResult> ShAsync(string script, TimeSpan? timeout = null) =>
        Sandbox.RunInsideAsync("sh", ["-c", script], timeout ?? TimeSpan.FromSeconds(60), Env);

    /// <summary>Runs <paramref name="script"/> inside; asserts exit 0 and returns stdout+stderr.</summary>
    public async Task<string> ShOkAsync(string script, TimeSpan? timeout = null)
    {
        var r = await ShAsync(script, timeout);
        Assert.True(r.ExitCode == 0, $"'{script}' failed ({r.ExitCode}):\n{r.Stdout}{r.Stderr}");
        return r.Stdout + r.Stderr;
    }

    public static string RepoDebs => Path.Combine(DaemonPaths.RepoRoot, ".build", "pkgroot", "debs");

    /// <summary>
    /// Debian's libvirt-daemon-system inside: installed from .build/pkgroot/debs (./build.sh setup) unless the
    /// lower layer (the host) has it already. Service starts are refused by a policy-rc.d and there is no
    /// systemd in the root, so the packages' scripts start nothing.
    /// </summary>
    public async Task EnsureLibvirtDaemonSystemAsync()
    {
        await ShOkAsync("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d");
        var q = await ShAsync("dpkg-query -W -f='${Status}' libvirt-daemon-system 2>/dev/null");
        if (!q.Stdout.Contains("install ok installed"))
        {
            var debs = Directory.Exists(RepoDebs) ? Directory.GetFiles(RepoDebs, "*.deb") : [];
            Assert.True(debs.Any(d => Path.GetFileName(d).StartsWith("libvirt-daemon-system_")),
                $"libvirt-daemon-system is not installed here and {RepoDebs} has no libvirt-daemon-system_*.deb: run ./build.sh setup");
            // the repository is visible inside through the overlay's lower layer; copy so the install reads a stable file set
            var dir = Path.Combine(TempDir, "debs");
            Directory.CreateDirectory(dir);
            foreach (var d in debs) File.Copy(d, Path.Combine(dir, Path.GetFileName(d)));
            // a package this machine already has stays as it is (a .deb downloaded for an older host, e.g. before
            // its systemd was upgraded, would otherwise downgrade it inside and break its dependants)
            await ShOkAsync($"for d in {dir}/*.deb; do p=$(dpkg-deb -f \"$d\" Package); " +
                "if dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null | grep -q 'install ok installed'; then rm \"$d\"; fi; done; " +
                $"dpkg -i {dir}/*.deb", TimeSpan.FromMinutes(4));
        }
        foreach (var f in new[] { "/lib/systemd/system/virtlockd.service", "/lib/systemd/system/virtlogd.service",
                     "/etc/libvirt/virtlockd.conf", "/etc/libvirt/virtlogd.conf", "/usr/sbin/virtlockd", "/usr/sbin/virtlogd" })
            Assert.True(File.Exists(HostPath(f)), $"{f} missing in the package root after installing libvirt-daemon-system");
    }

    /// <summary>Builds the .deb from artifacts/bin with packaging/debian/build-deb.sh into the temp dir; returns its path.</summary>
    /// <param name="version">instead of packaging/debian/changelog's (a second package to upgrade to)</param>
    public async Task<string> BuildPackageAsync(string? binDir = null, string? version = null)
    {
        foreach (var n in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            DaemonPaths.Binary(n, DaemonKind.Managed); // a missing publish fails here, clearly
        binDir ??= Path.Combine(DaemonPaths.RepoRoot, "artifacts", "bin");
        var script = Path.Combine(DaemonPaths.RepoRoot, "packaging", "debian", "build-deb.sh");
        var outDir = Path.Combine(TempDir, version is null ? "deb" : $"deb-{version}");
        var p = Sandbox.StartOnHost(script, version is null ? [binDir, outDir] : [binDir, outDir, version], description: "build-deb");
        var r = await p.WaitForExitAsync(TimeSpan.FromMinutes(2));
        var debs = Directory.Exists(outDir) ? Directory.GetFiles(outDir, $"{PackageName}_*_amd64.deb") : [];
        Assert.True(r == 0 && debs.Length == 1, $"build-deb.sh failed ({r}), made [{string.Join(", ", debs)}]: {p.Stdout}{p.Stderr}");
        return debs[0];
    }

    /// <summary>SHA-256 of a file as the test process sees it (e.g. /proc/PID/exe or a HostPath).</summary>
    public static string Sha(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(f));
    }

    public static string? ExeSha(int pid)
    {
        try { return Sha($"/proc/{pid}/exe"); } catch (IOException) { return null; } catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Lines of `dpkg-divert --list` inside that mention the package.</summary>
    public async Task<string[]> DiversionsAsync()
    {
        var o = await ShOkAsync("dpkg-divert --list");
        return o.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.Contains(PackageName) || l.Contains("virtlockd") || l.Contains("virtlogd")).Order().ToArray();
    }

    public ValueTask DisposeAsync() => Sandbox.DisposeAsync();
}

/// <summary>
/// A daemon started inside a <see cref="PackageRoot"/> the way libvirt-daemon-system's units start it: the
/// service's ExecStart (with its EnvironmentFile's arguments), LimitNOFILE and OOMScoreAdjust, under
/// systemd-socket-activate listening on the ListenStream of the unit's two sockets, with LISTEN_FDNAMES set to
/// the socket units' names as systemd sets them (no FileDescriptorName= in Debian's units). The daemon starts on
/// the first connection and execs in place: the process started here IS the daemon.
/// </summary>
public sealed class UnitDaemon
{
    public DaemonName Name { get; }
    public SandboxProcess Process { get; }
    public int Pid => Process.Pid;
    public string Exe => DaemonPaths.ExeName(Name);
    public string ExecStart { get; }
    public string ExecReload { get; private init; } = "";
    public string LimitNoFile { get; }
    public string OomScoreAdjust { get; }
    /// <summary>Unit properties this machine did not allow, and what was used instead.</summary>
    public IReadOnlyList<string> Notes { get; private init; } = [];

    private UnitDaemon(DaemonName name, SandboxProcess p, string execStart, string nofile, string oom)
    {
        Name = name; Process = p; ExecStart = execStart; LimitNoFile = nofile; OomScoreAdjust = oom;
    }

    /// <summary>Key=value lines of a unit file inside the root (last one wins, as for these keys in systemd).</summary>
    public static Dictionary<string, string> ReadUnit(PackageRoot root, string unit)
    {
        var d = new Dictionary<string, string>();
        foreach (var raw in File.ReadAllLines(root.HostPath("/lib/systemd/system/" + unit)))
        {
            var l = raw.Trim();
            if (l.Length == 0 || l[0] is '#' or ';' or '[') continue;
            var eq = l.IndexOf('=');
            if (eq > 0) d[l[..eq]] = l[(eq + 1)..];
        }
        return d;
    }

    public static async Task<UnitDaemon> StartAsync(PackageRoot root, DaemonName name)
    {
        var exe = DaemonPaths.ExeName(name);
        var service = ReadUnit(root, $"{exe}.service");
        var sock = ReadUnit(root, $"{exe}.socket");
        var admin = ReadUnit(root, $"{exe}-admin.socket");
        Assert.Equal($"/bin/kill -USR1 $MAINPID", service["ExecReload"]); // the switch relies on it
        var execStart = service["ExecStart"];
        var nofile = service["LimitNOFILE"];
        var oom = service["OOMScoreAdjust"];
        // ExecStart's $VAR words come from EnvironmentFile=-/etc/default/<exe> (sourced the way systemd would
        // read a file of plain assignments); the empty default expands to no argument
        // LimitNOFILE above the hard limit and a negative OOMScoreAdjust need CAP_SYS_RESOURCE, which a container
        // may not give even to root: then the nearest this machine allows (and the test's output says so)
        var notes = new List<string>();
        if ((await root.ShAsync($"prlimit --nofile={nofile}:{nofile} -- true")).ExitCode != 0)
        {
            var hard = (await root.ShOkAsync("ulimit -Hn")).Trim();
            notes.Add($"LimitNOFILE={nofile} not allowed here (no CAP_SYS_RESOURCE), {hard} (the hard limit) instead");
            nofile = hard;
        }
        var choom = $"choom -n {oom} -- ";
        if ((await root.ShAsync($"choom -n {oom} -- true")).ExitCode != 0)
        {
            notes.Add($"OOMScoreAdjust={oom} not allowed here (no CAP_SYS_RESOURCE), left as inherited");
            choom = "";
            oom = (await root.ShOkAsync("cat /proc/self/oom_score_adj")).Trim();
        }
        var script =
            $"set -a; [ -r /etc/default/{exe} ] && . /etc/default/{exe}; set +a; " +
            $"exec {choom}prlimit --nofile={nofile}:{nofile} -- " +
            $"systemd-socket-activate -l {sock["ListenStream"]} -l {admin["ListenStream"]} " +
            $"--fdname={exe}.socket:{exe}-admin.socket {execStart}";
        var p = root.Sandbox.StartInside("sh", ["-c", script], PackageRoot.Env, description: $"{exe} (unit)");
        p.CloseStdin();
        var d = new UnitDaemon(name, p, execStart, nofile, oom) { Notes = notes, ExecReload = service["ExecReload"] };
        // the first connection activates it
        await HandoffRig.WaitSocketAsync(p, root.HostPath(sock["ListenStream"]), TimeSpan.FromSeconds(15));
        await d.WaitExeAsync(root.HostPath($"/usr/sbin/{exe}"), TimeSpan.FromSeconds(15), "socket activation");
        // the socket was bound by the activator, so a connect proves nothing about the daemon's start-up: wait
        // for its pid file (written once it holds its sockets and before it serves)
        var pidFile = root.HostPath($"/run/{exe}.pid");
        var sw = Stopwatch.StartNew();
        while (!(File.Exists(pidFile) && File.ReadAllText(pidFile).Trim() == p.Pid.ToString()))
        {
            Assert.True(p.IsRunning, $"{exe} exited during start-up: {HandoffRig.Tail(p.Stderr)}");
            if (sw.Elapsed > TimeSpan.FromSeconds(15)) throw new TimeoutException($"/run/{exe}.pid does not hold {p.Pid} 15 s after activation");
            await Task.Delay(20);
        }
        return d;
    }

    /// <summary>The stack start address of the process image (/proc/PID/stat field 28): a new one on every exec (ASLR).</summary>
    public string StartStack() => File.ReadAllText($"/proc/{Pid}/stat").Split(')')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[25];

    /// <summary>Waits (bounded) until /proc/PID/exe has the content of <paramref name="file"/>.</summary>
    public async Task WaitExeAsync(string file, TimeSpan timeout, string when)
    {
        var want = PackageRoot.Sha(file);
        var sw = Stopwatch.StartNew();
        while (PackageRoot.ExeSha(Pid) != want)
        {
            Assert.True(Process.IsRunning, $"{when}: {Exe} (pid {Pid}) exited ({Process.ExitCode}): {HandoffRig.Tail(Process.Stderr)}");
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"{when}: /proc/{Pid}/exe is not {file} after {timeout}: {HandoffRig.Tail(Process.Stderr)}");
            await Task.Delay(20);
        }
    }
}
