using System.Diagnostics;
using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// Our daemons with event_loop_impl = "managed": libvirt's servers, clients
/// and signal pipe live on the managed epoll loop, and the managed run loop
/// (not virNetDaemonRun) serves, times out idle, hands over on SIGUSR1 and
/// shuts down on SIGTERM. That the managed loop is what runs is read from
/// the kernel: the daemon's epoll set holds every socket it has (glib's loop
/// polls with poll(2) and has no epoll set at all).
/// </summary>
public sealed class ManagedEventLoopTests
{
    public static TheoryData<DaemonName> Names => new() { DaemonName.Virtlockd, DaemonName.Virtlogd };

    /// <summary>Each daemon on the managed loop with libvirt's servers (ManagedLoop) and with the managed
    /// RPC core (ManagedRpc, rpc_impl = "managed"), whose own sockets are on the same loop.</summary>
    public static TheoryData<DaemonName, DaemonKind> NamesAndLoopKinds => new()
    {
        { DaemonName.Virtlockd, DaemonKind.ManagedLoop }, { DaemonName.Virtlogd, DaemonKind.ManagedLoop },
        { DaemonName.Virtlockd, DaemonKind.ManagedRpc }, { DaemonName.Virtlogd, DaemonKind.ManagedRpc },
    };

    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    /// <summary>The fds of <paramref name="pid"/> that its epoll sets watch.</summary>
    private static HashSet<int> EpollWatched(int pid)
    {
        var watched = new HashSet<int>();
        foreach (var link in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            string? target = TryReadLink(link);
            if (target != "anon_inode:[eventpoll]")
                continue;
            string info;
            try
            {
                info = File.ReadAllText($"/proc/{pid}/fdinfo/{Path.GetFileName(link)}");
            }
            catch (IOException)
            {
                continue;
            }
            foreach (var line in info.Split('\n'))
            {
                // "tfd:        7 events:       19 data: ..."
                if (line.StartsWith("tfd:", StringComparison.Ordinal))
                    watched.Add(int.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]));
            }
        }
        return watched;
    }

    private static List<int> Sockets(int pid)
        => Directory.GetFiles($"/proc/{pid}/fd")
            .Where(l => TryReadLink(l)?.StartsWith("socket:", StringComparison.Ordinal) == true)
            .Select(l => int.Parse(Path.GetFileName(l)))
            .ToList();

    private static string? TryReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null; // closed meanwhile
        }
    }

    /// <summary>Waits (bounded) until the daemon holds at least <paramref name="count"/> sockets.</summary>
    private static async Task<List<int>> WaitSocketsAsync(int pid, int count)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var s = Sockets(pid);
            if (s.Count >= count)
                return s;
            Assert.True(sw.Elapsed < Bound, $"the daemon holds {s.Count} sockets, not {count}");
            await Task.Delay(20);
        }
    }

    /// <summary>No warning (libvirt's "Ignoring attempt to replace registered
    /// event loop" above all) and no error: as quiet as the C daemon.</summary>
    /// <summary>Waits (bounded) until the daemon holds at least
    /// <paramref name="count"/> sockets, every one of them in its epoll set
    /// (a socket being accepted or closed is briefly in one and not the other).</summary>
    private static async Task AssertAllSocketsOnEpollAsync(int pid, int count)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var sockets = Sockets(pid);
            var watched = EpollWatched(pid);
            if (sockets.Count >= count && sockets.All(watched.Contains))
                return;
            Assert.True(sw.Elapsed < Bound,
                $"sockets [{string.Join(',', sockets)}], epoll set [{string.Join(',', watched)}]: not every socket is on the loop");
            await Task.Delay(50);
        }
    }

    private static void AssertCleanStderr(string stderr)
    {
        foreach (var bad in new[] { "Ignoring attempt to replace registered event loop", " warning : ", " error : " })
            Assert.False(stderr.Contains(bad, StringComparison.Ordinal), $"stderr has \"{bad}\": {stderr}");
    }

    [Theory]
    [MemberData(nameof(NamesAndLoopKinds))]
    public async Task Every_socket_of_the_daemon_is_on_the_managed_epoll_loop(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind);
        using var client = await d.ConnectRawAsync();

        await AssertAllSocketsOnEpollAsync(d.Pid, 3); // main, admin, our client
        AssertCleanStderr(d.Stderr);
    }

    /// <summary>The same probe tells glib's loop apart: it holds no epoll set
    /// with the daemon's sockets (so the test above can fail).</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public async Task With_libvirts_loop_no_epoll_set_holds_the_sockets(DaemonName name)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, DaemonKind.Managed);
        using var client = await d.ConnectRawAsync();

        var sockets = await WaitSocketsAsync(d.Pid, 3);
        var watched = EpollWatched(d.Pid);
        Assert.DoesNotContain(sockets, watched.Contains);
    }

    [Theory]
    [MemberData(nameof(NamesAndLoopKinds))]
    public async Task The_idle_timeout_counts_from_the_last_client_leaving(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, ["-t", "2"]);
        using (var client = await d.ConnectRawAsync())
        {
            await WaitSocketsAsync(d.Pid, 3);
            await Task.Delay(3500); // deliberate: past the -t 2 period with a client; an exit that must not happen has no event
            Assert.True(d.IsRunning, "timed out with a client connected");
        }
        var left = Stopwatch.StartNew();
        Assert.Equal(0, await d.WaitForExitAsync(Bound));
        Assert.True(left.Elapsed >= TimeSpan.FromSeconds(1.5), $"exited {left.Elapsed.TotalSeconds:F1} s after the last client left, with -t 2");
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.PidFile(name))), "pid file left behind");
        AssertCleanStderr(d.Stderr);
    }

    [Theory]
    [MemberData(nameof(NamesAndLoopKinds))]
    public async Task SIGTERM_closes_clients_and_exits_cleanly(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind);
        using var client = await d.ConnectRawAsync();
        await WaitSocketsAsync(d.Pid, 3);

        d.Process.Signal(Native.SIGTERM);
        Assert.True(await client.WaitForPeerCloseAsync(Bound), "the client was not disconnected");
        Assert.Equal(0, await d.WaitForExitAsync(Bound));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.PidFile(name))), "pid file left behind");
        AssertCleanStderr(d.Stderr);
    }

    /// <summary>SIGUSR1: the run loop is left with everything open, the new
    /// image registers its managed loop before taking the sockets over, and
    /// a kept connection goes on being served from the new image's epoll set.</summary>
    [Theory]
    [InlineData(DaemonKind.ManagedLoop)]
    [InlineData(DaemonKind.ManagedRpc)]
    public async Task SIGUSR1_hands_the_clients_over_to_the_next_managed_loop(DaemonKind kind)
    {
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, [kind, kind]);
        using var client = await LockProtocolClient.ConnectAsync(rig.SocketHost);
        Assert.Null(await client.CreateLockspaceAsync(Path.Combine(rig.TempDir, "before")));
        int pid = rig.Pid;

        await rig.HandoffAsync();

        Assert.Equal(pid, rig.Pid);
        Assert.Null(await client.CreateLockspaceAsync(Path.Combine(rig.TempDir, "after")));
        await AssertAllSocketsOnEpollAsync(rig.Pid, 3);

        rig.Daemon.Signal(Native.SIGTERM);
        Assert.Equal(0, await rig.Daemon.WaitForExitAsync(Bound));
        AssertCleanStderr(rig.Daemon.Stderr);
    }
}
