using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// What happens to leases when connections close. In virtlockd the "lock holder" is a connection whose
/// peer pid (SO_PEERCRED) equals the registered owner pid; only for those are leases released on close,
/// and the holder is then killed (SIGTERM, then SIGKILL after ~1.6 s) if it had leases.
/// </summary>
public class OwnerLifetimeTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Leases_dropped_and_owner_killed_when_owner_connection_closes(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var owner = await StartOwnerAsync(env);
        var (admin, ls) = await RegisterAndAcquireAsync(owner, env);
        using var __ = admin;
        RpcAssert.Ok(await owner.AcquireAsync("", Path.Combine(env.TempDir, "deflt"), LockProtocol.AcquireAutoCreate));

        var (other, _) = await env.ConnectOwnerAsync(2, "other");
        using var ___ = other;
        RpcAssert.Locked(await other.AcquireResourceAsync(ls, "r"), "r");

        await owner.CloseConnectionAsync();
        var rc = await owner.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(128 + 15, rc); // perl dies of the daemon's SIGTERM

        // autocreated resource files are unlinked when the lease is dropped
        Assert.False(File.Exists(Path.Combine(ls, "r")));
        Assert.False(File.Exists(Path.Combine(env.TempDir, "deflt")));
        RpcAssert.Ok(await other.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        RpcAssert.Ok(await other.AcquireResourceAsync("", Path.Combine(env.TempDir, "deflt"), LockProtocol.AcquireAutoCreate));
        Assert.True(env.Daemon.IsRunning);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Owner_that_ignores_sigterm_gets_sigkill(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        // same relay, but SIGTERM ignored (inherited SIG_IGN survives exec)
        var owner = await OwnerConnectionIgnoringTerm(env);
        var (admin, ls) = await RegisterAndAcquireAsync(owner, env);
        using var __ = admin;
        await owner.CloseConnectionAsync();
        var rc = await owner.Process.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(128 + 9, rc);
        var (other, _) = await env.ConnectOwnerAsync(2, "other");
        using var ___ = other;
        RpcAssert.Ok(await other.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
    }

    internal static async Task<OwnerConnection> OwnerConnectionIgnoringTerm(DaemonEnv env)
    {
        // preload a tiny module (via PERL5OPT) that ignores SIGTERM
        var script = Path.Combine(env.TempDir, "IgnoreTerm.pm");
        File.WriteAllText(script, "package IgnoreTerm; $SIG{TERM} = 'IGNORE'; 1;\n");
        return await StartOwnerAsync(env, new Dictionary<string, string?> { ["PERL5OPT"] = $"-I{env.TempDir} -MIgnoreTerm" });
    }

    /// <summary>The perl owner relay (<see cref="OwnerConnection"/>) connected to the daemon's lock socket.</summary>
    private static Task<OwnerConnection> StartOwnerAsync(DaemonEnv env, IDictionary<string, string?>? vars = null) =>
        OwnerConnection.StartAsync(env.Sandbox, env.Daemon.SocketHostPath, env: vars);

    /// <summary>
    /// <paramref name="owner"/> registers itself and acquires "r" (autocreate) in lockspace "ls", created over a
    /// separate connection that the caller keeps open (and disposes).
    /// </summary>
    private static async Task<(LockProtocolClient Admin, string Ls)> RegisterAndAcquireAsync(OwnerConnection owner, DaemonEnv env)
    {
        RpcAssert.Ok(await owner.RegisterSelfAsync());
        var admin = await env.ConnectAsync();
        var ls = await env.CreateLockspaceAsync(admin);
        RpcAssert.Ok(await owner.AcquireAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        return (admin, ls);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Owner_without_leases_is_not_killed_on_close(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var owner = await StartOwnerAsync(env);
        RpcAssert.Ok(await owner.RegisterSelfAsync());
        await owner.CloseConnectionAsync();
        await owner.Process.WaitForStdoutLineAsync(l => l == "closed", TimeSpan.FromSeconds(5));
        Assert.False(await owner.Process.TryWaitForExitAsync(TimeSpan.FromSeconds(2)), "owner without leases must not be killed");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Leases_released_when_owner_process_dies(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var owner = await StartOwnerAsync(env);
        var (admin, ls) = await RegisterAndAcquireAsync(owner, env);
        using var __ = admin;
        owner.Process.Kill();
        var (other, _) = await env.ConnectOwnerAsync(2, "other");
        using var ___ = other;
        await Poll.UntilAsync(async () => await other.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate) is null, TimeSpan.FromSeconds(10), "lease released after owner died");
    }

    /// <summary>
    /// A connection whose peer pid differs from the registered owner pid is not the lock holder:
    /// closing it neither releases the leases nor signals the registered owner.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Closing_a_proxy_connection_keeps_leases_and_owner_alive(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (a, ownerA) = await env.ConnectOwnerAsync(1, "a");
        var ls = await env.CreateLockspaceAsync(a);
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "r", LockProtocol.AcquireAutoCreate));
        a.Dispose();
        Assert.False(await ownerA.TryWaitForExitAsync(TimeSpan.FromSeconds(1.5)), "registered owner must not be signalled");
        var (b, _) = await env.ConnectOwnerAsync(2, "b");
        using var __ = b;
        RpcAssert.Locked(await b.AcquireResourceAsync(ls, "r"), "r");
    }
}

public static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> cond, TimeSpan timeout, string what)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            if (await cond()) return;
            if (sw.Elapsed > timeout) Assert.Fail($"timed out after {timeout} waiting for: {what}");
            await Task.Delay(50);
        }
    }
}
