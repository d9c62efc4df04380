using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// virtlockd-only command line cases: trailing junk in -t, the idle timeout with a client, default socket layout and
/// config limits. What virtlockd shares with virtlogd (-V, -h, bad options, -t, -p) is in <see cref="LockAndLogDaemonCliTests"/>.
/// </summary>
public class CliTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    /// <summary>virStrToLong_i with an end pointer: trailing junk after the number is accepted ("1x" == 1).</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Timeout_with_trailing_junk_is_accepted(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, ["-t", "1x"]);
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Idle_timeout_waits_while_a_client_is_connected(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, ["-t", "1"]);
        using (var c = await env.ConnectAsync())
        {
            RpcAssert.Ok(await c.CreateLockspaceAsync(Path.Combine(env.TempDir, "ls")));
            await Task.Delay(3000); // deliberate: three idle periods pass; an exit that must not happen has no event
            Assert.True(env.Daemon.IsRunning, "daemon must not time out with a connected client");
        }
        Assert.Equal(0, await env.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(15)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Default_socket_and_pid_paths(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var sb = env.Sandbox;
        const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        foreach (var s in new[] { DaemonPaths.DefaultSocket, DaemonPaths.DefaultAdminSocket })
        {
            var host = sb.HostPath(s);
            Assert.True(File.Exists(host), $"{s} missing");
            Assert.True((File.GetAttributes(host) & FileAttributes.Directory) == 0);
            Assert.Equal(Rwx, File.GetUnixFileMode(host));
        }
        await env.Daemon.WaitForSocketAsync(DaemonPaths.DefaultAdminSocket, TimeSpan.FromSeconds(5));
        Assert.Equal(env.Daemon.Pid.ToString(), File.ReadAllText(sb.HostPath(DaemonPaths.DefaultPidFile)));
        Assert.Equal(0, await env.Daemon.StopAsync());
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "pid file removed on SIGTERM shutdown");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Max_clients_one_queues_second_client(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind, config: "max_clients = 1\n");
        var ls = Path.Combine(env.TempDir, "ls");
        var first = await env.ConnectAsync();
        try
        {
            RpcAssert.Ok(await first.CreateLockspaceAsync(ls));
            using var second = await env.Daemon.ConnectRawAsync(); // kernel accepts into the backlog
            uint serial = await second.SendCallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcCreateLockspace,
                LockProtocol.CreateLockspaceArgs(ls));
            await Assert.ThrowsAsync<TimeoutException>(() => second.ReadMessageAsync(TimeSpan.FromSeconds(1)));
            first.Dispose();
            var reply = await second.ReadMessageAsync(TimeSpan.FromSeconds(10));
            Assert.NotNull(reply);
            Assert.Equal(serial, reply!.Header.Serial);
            Assert.Equal(RpcStatus.Ok, reply.Header.Status);
        }
        finally { first.Dispose(); }
    }
}
