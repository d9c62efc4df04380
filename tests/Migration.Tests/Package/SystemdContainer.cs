using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Package;

/// <summary>
/// Debian's systemd booted as PID 1 of a container (systemd-nspawn -b) whose root is an overlay of a
/// <see cref="PackageRoot"/>'s root: the units libvirt-daemon-system installed there are started by systemd
/// itself (socket activation, ExecReload, LimitNOFILE, OOMScoreAdjust as systemd applies them), and the package's
/// maintainer scripts see a running systemd. The container's writes go to a tmpfs inside the package root's own
/// namespace; the package root's temp dir is bound at the same path. <see cref="Inside"/> runs programs in all of
/// the container's namespaces (pid included, so lease owners' pids are the container's).
/// </summary>
public sealed class SystemdContainer : IAsyncDisposable
{
    public const string BootRoot = "/run/.boot/root";

    private readonly PackageRoot _root;
    private readonly SandboxProcess _nspawn;

    /// <summary>The container's PID 1 (systemd), as the test process sees it.</summary>
    public int Pid1 { get; }
    public Sandbox Inside { get; }

    private SystemdContainer(PackageRoot root, SandboxProcess nspawn, int pid1, Sandbox inside)
    {
        _root = root; _nspawn = nspawn; Pid1 = pid1; Inside = inside;
    }

    /// <summary>Boots the container up to basic.target (sockets, no getty or host services) and waits until systemd
    /// says the boot is over. Before the boot, <paramref name="prepare"/> runs in the package root with the
    /// container's root at <see cref="BootRoot"/>.</summary>
    public static async Task<SystemdContainer> BootAsync(PackageRoot root, string prepare = "")
    {
        var nspawnPath = await root.ShAsync("command -v systemd-nspawn");
        Assert.True(nspawnPath.ExitCode == 0, "systemd-nspawn is missing: ./build.sh setup installs systemd-container");
        // policy-rc.d (which keeps dpkg in the package root from starting services) must not reach the
        // container: there, the packages' scripts talk to the real systemd
        await root.ShOkAsync($"""
            set -e
            b=/run/.boot
            mkdir -p $b/upper $b/work {BootRoot}
            mount -t overlay overlay -o lowerdir=/,upperdir=$b/upper,workdir=$b/work {BootRoot}
            rm -f {BootRoot}/usr/sbin/policy-rc.d
            {prepare}
            """);
        var nspawn = root.Sandbox.StartInside("systemd-nspawn",
            // nspawn mounts a tmpfs on the container's /tmp: the test's temp dir and the repository (the lock and
            // log clients' binaries; a CI clone may live under /tmp) are bound in at their own paths
            ["-q", "-D", BootRoot, "--register=no", "--keep-unit", "--console=read-only", $"--bind={root.TempDir}",
             $"--bind-ro={DaemonPaths.RepoRoot}",
             "-b", "systemd.unit=basic.target"], PackageRoot.Env, "systemd-nspawn");
        nspawn.CloseStdin();
        try
        {
            int pid1 = await FindPid1Async(nspawn, TimeSpan.FromSeconds(30));
            var inside = await Sandbox.EnterAsync(pid1, root.TempDir);
            var c = new SystemdContainer(root, nspawn, pid1, inside);
            // systemctl needs the manager's socket, which exists a moment after PID 1 starts
            var sw = Stopwatch.StartNew();
            while (!File.Exists(c.HostPath("/run/systemd/private")))
            {
                Assert.True(nspawn.IsRunning, $"systemd-nspawn exited ({nspawn.ExitCode}): {Tail(nspawn.Stdout)}{nspawn.Stderr}");
                if (sw.Elapsed > TimeSpan.FromSeconds(60))
                    throw new TimeoutException($"no /run/systemd/private in the container after 60 s: {Tail(nspawn.Stdout)}");
                await Task.Delay(50);
            }
            var r = await c.RunAsync("timeout 90 systemctl is-system-running --wait; systemctl --failed --no-legend --plain",
                TimeSpan.FromSeconds(100));
            var state = r.Stdout.Split('\n')[0].Trim();
            Assert.True(state is "running" or "degraded",
                $"systemd in the container did not finish booting ({state}): {r.Stdout}{r.Stderr}\n{Tail(nspawn.Stdout)}");
            return c;
        }
        catch
        {
            foreach (var pid in Descendants(nspawn.Pid).ToArray())
                Native.Kill(pid, Native.SIGKILL);
            nspawn.Kill();
            throw;
        }
    }

    /// <summary>The descendant of nspawn that is PID 1 of a pid namespace below ours.</summary>
    private static async Task<int> FindPid1Async(SandboxProcess nspawn, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            foreach (var pid in Descendants(nspawn.Pid))
            {
                string status;
                try { status = File.ReadAllText($"/proc/{pid}/status"); } catch (IOException) { continue; }
                var nspid = status.Split('\n').FirstOrDefault(l => l.StartsWith("NSpid:"))?
                    .Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                if (nspid is { Length: >= 3 } && nspid[^1] == "1")
                    return pid;
            }
            Assert.True(nspawn.IsRunning, $"systemd-nspawn exited ({nspawn.ExitCode}): {nspawn.Stdout}{nspawn.Stderr}");
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"no PID 1 under systemd-nspawn after {timeout}: {nspawn.Stdout}{nspawn.Stderr}");
            await Task.Delay(50);
        }
    }

    private static IEnumerable<int> Descendants(int pid)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int p)) continue;
            string stat;
            try { stat = File.ReadAllText($"{dir}/stat"); } catch (IOException) { continue; }
            var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
            if (!children.TryGetValue(ppid, out var l)) children[ppid] = l = new();
            l.Add(p);
        }
        var todo = new Stack<int>([pid]);
        while (todo.Count > 0)
            if (children.TryGetValue(todo.Pop(), out var kids))
                foreach (var k in kids) { yield return k; todo.Push(k); }
    }

    /// <summary>A shell command inside the container (bounded).</summary>
    public Task<ProcessResult> RunAsync(string script, TimeSpan? timeout = null)
        => Inside.RunInsideAsync("sh", ["-c", script], timeout ?? TimeSpan.FromSeconds(60), PackageRoot.Env);

    public async Task<string> OkAsync(string script, TimeSpan? timeout = null)
    {
        var r = await RunAsync(script, timeout);
        Assert.True(r.ExitCode == 0, $"in the container, '{script}' failed ({r.ExitCode}):\n{r.Stdout}{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>A unit property as `systemctl show` gives it.</summary>
    public async Task<string> ShowAsync(string unit, string property)
        => (await OkAsync($"systemctl show -p {property} --value {unit}")).Trim();

    /// <summary>A path inside the container, as the test process reads it.</summary>
    public string HostPath(string inside) => Inside.HostPath(inside);

    public string BootLog => Tail(_nspawn.Stdout);

    private static string Tail(string s) => s.Length > 3000 ? s[^3000..] : s;

    public async ValueTask DisposeAsync()
    {
        // a clean power-off first (systemd stops the units), then whatever is left goes with the sandboxes
        if (_nspawn.IsRunning)
        {
            try { await RunAsync("systemctl poweroff", TimeSpan.FromSeconds(10)); } catch (Exception) { }
            if (!await _nspawn.TryWaitForExitAsync(TimeSpan.FromSeconds(30)))
                _nspawn.Kill();
        }
        // killing a pid namespace's init kills everything in it: nothing of the container outlives the test,
        // whatever became of nspawn
        if (Native.Exists(Pid1))
            Native.Kill(Pid1, Native.SIGKILL);
        await Inside.DisposeAsync();
    }
}
