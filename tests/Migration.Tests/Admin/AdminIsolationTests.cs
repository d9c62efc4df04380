using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Admin;

/// <summary>
/// The admin server and the daemon's main server do not hold each other up:
/// virt-admin still works when the main server is at max_clients, and a
/// misbehaving admin client harms neither server. Same expectations for the
/// C daemons and ours.
/// </summary>
public class AdminIsolationTests
{
    public static TheoryData<DaemonName, DaemonKind> DaemonsAndKinds => AdminCases.DaemonsAndKinds;

    private const uint AdminProgram = 0x06900690;

    private static uint MainProgram(DaemonName name) => name == DaemonName.Virtlockd ? 0xEA7BEEFu : 0x87539319u;

    /// <summary>Any call the main program answers: an unknown procedure
    /// gets an error reply, which proves the server read and dispatched it.</summary>
    private static async Task AssertMainServesAsync(DaemonProcess d)
    {
        using var c = await RawRpcClient.ConnectAsync(d.SocketHostPath);
        var reply = await c.CallAsync(MainProgram(d.Name), 1, 99, Array.Empty<byte>(), TimeSpan.FromSeconds(10));
        Assert.True(reply.IsError);
        Assert.Equal("unknown procedure: 99", reply.Error!.Message);
    }

    private static async Task AssertAdminServesAsync(VirtAdmin va)
    {
        var r = await va.RunAsync(false, "server-list");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains(va.Server, r.Stdout);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndKinds))]
    public async Task Admin_serves_while_the_main_server_is_full(DaemonName name, DaemonKind kind)
    {
        var sb = await Sandbox.CreateAsync();
        await using var _ = sb;
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, configText: "max_clients = 1\n");
        await d.WaitForSocketAsync(DaemonPaths.AdminSocket(name), TimeSpan.FromSeconds(15));

        using var first = await RawRpcClient.ConnectAsync(d.SocketHostPath);
        // the first client is accepted and served ...
        var reply = await first.CallAsync(MainProgram(name), 1, 99, Array.Empty<byte>(), TimeSpan.FromSeconds(10));
        Assert.True(reply.IsError);
        // ... and a second one waits: the main server is full
        using var second = await RawRpcClient.ConnectAsync(d.SocketHostPath);
        await second.SendCallAsync(MainProgram(name), 1, 99, Array.Empty<byte>());
        await Assert.ThrowsAsync<TimeoutException>(() => second.ReadMessageAsync(TimeSpan.FromSeconds(1)));

        var va = new VirtAdmin(d);
        await AssertAdminServesAsync(va);
        var info = await va.RunAsync(false, "server-clients-info", va.Server);
        Assert.True(info.ExitCode == 0, info.Stderr);
        Assert.Matches(@"nclients_max\s*:\s*1\b", info.Stdout);
        Assert.Matches(@"nclients\s*:\s*1\b", info.Stdout);
    }

    public static TheoryData<DaemonName, DaemonKind, string> BadAdminInput
    {
        get
        {
            var data = new TheoryData<DaemonName, DaemonKind, string>();
            foreach (var (n, k) in AdminCases.DaemonsAndKinds.Select(r => ((DaemonName)r[0], (DaemonKind)r[1])))
                foreach (var bad in new[] { "truncated", "garbage", "unknown-procedure", "oversized", "silent" })
                    data.Add(n, k, bad);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(BadAdminInput))]
    public async Task A_misbehaving_admin_client_harms_neither_server(DaemonName name, DaemonKind kind, string bad)
    {
        var (sb, d) = await AdminCases.StartAsync(name, kind);
        await using var _ = sb;
        await using var __ = d;
        using var admin = await RawRpcClient.ConnectAsync(d.AdminSocketHostPath);
        switch (bad)
        {
            case "truncated":
                // a length word promising 100 bytes, then 10 of them, then nothing
                await admin.SendRawAsync(new byte[] { 0, 0, 0, 100, 0x06, 0x90, 0x06, 0x90, 0, 0, 0, 1, 0, 0 });
                break;
            case "garbage":
                var rnd = new Random(4242);
                var junk = new byte[4096];
                rnd.NextBytes(junk);
                junk[0] = 0; junk[1] = 0; junk[2] = 0x10; junk[3] = 0; // a plausible length
                await admin.SendRawAsync(junk);
                break;
            case "unknown-procedure":
                var reply = await admin.CallAsync(AdminProgram, 1, 999, Array.Empty<byte>(), TimeSpan.FromSeconds(10));
                Assert.True(reply.IsError);
                Assert.Equal("unknown procedure: 999", reply.Error!.Message);
                break;
            case "oversized":
                await admin.SendRawAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF });
                Assert.True(await admin.WaitForPeerCloseAsync(TimeSpan.FromSeconds(10)), "an oversized frame must close the connection");
                break;
            case "silent":
                break; // connected, says nothing
        }

        await AssertMainServesAsync(d);
        await AssertAdminServesAsync(new VirtAdmin(d));
        Assert.True(d.IsRunning);
    }
}
