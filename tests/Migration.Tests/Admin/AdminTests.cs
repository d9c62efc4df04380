using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Admin;

/// <summary>
/// The admin program through the real virt-admin: each scenario runs
/// against the C daemon and ours (virtlockd and virtlogd), with behaviour
/// checked on each and the normalised transcripts compared.
/// </summary>
public class AdminTests
{
    public static TheoryData<DaemonName> Daemons => AdminCases.Daemons;
    public static TheoryData<DaemonName, DaemonKind> DaemonsAndOurs => AdminCases.DaemonsAndOurs;

    private const uint UnknownProgram = 0x12345678;

    private static async Task<RawRpcClient> ConnectMainAsync(DaemonProcess d) => await d.ConnectRawAsync(TimeSpan.FromSeconds(10));

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Read_only_commands_answer_as_the_C_daemon(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            using var raw = await ConnectMainAsync(d);
            await va.WaitForClientsAsync(va.Server, 1, TimeSpan.FromSeconds(10));
            var idle = va.StartConnected();
            // the idle virt-admin and the polling one
            await va.WaitForClientsAsync("admin", 2, TimeSpan.FromSeconds(10));

            var v = await va.RunAsync("version");
            Assert.True(v.ExitCode == 0, $"{d.Kind}: {v.Stderr}");
            Assert.Contains("Running against daemon: 9.0.0", v.Stdout);
            var sl = await va.RunAsync("server-list");
            Assert.Equal(0, sl.ExitCode);
            Assert.Contains(va.Server, sl.Stdout);
            Assert.Contains("admin", sl.Stdout);
            await va.RunAsync("server-threadpool-info", "admin");
            await va.RunAsync("server-threadpool-info", va.Server);
            await va.RunAsync("server-threadpool-info", "nope");
            var ci = await va.RunAsync("server-clients-info", va.Server);
            Assert.Matches(@"nclients\s*:\s*1\n", ci.Stdout);
            await va.RunAsync("server-clients-info", "admin");
            await va.RunAsync("server-clients-info", "nope");
            var main = await va.RunAsync("client-list", va.Server);
            var mainIds = VirtAdmin.ClientIds(main.Stdout);
            Assert.Single(mainIds);
            var adm = await va.RunAsync("client-list", "admin");
            var admIds = VirtAdmin.ClientIds(adm.Stdout);
            Assert.Equal(2, admIds.Count);
            await va.RunAsync("client-list", "nope");
            await va.RunAsync("client-info", va.Server, mainIds[0].ToString());
            await va.RunAsync("client-info", "admin", admIds.Min().ToString());
            await va.RunAsync("client-info", va.Server, "999");
            await va.RunAsync("client-info", "nope", "1");
            idle.Kill();
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Threadpool_set_answers_as_the_C_daemon(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            await va.RunAsync("server-threadpool-set", va.Server, "--max-workers", "5");
            await va.RunAsync("server-threadpool-set", va.Server, "--min-workers", "0", "--max-workers", "0");
            await va.RunAsync("server-threadpool-set", va.Server, "--min-workers", "1");
            await va.RunAsync("server-threadpool-set", "admin", "--min-workers", "3", "--max-workers", "2");
            await va.RunAsync("server-threadpool-set", "nope", "--max-workers", "2");
            await va.RunAsync("server-threadpool-info", va.Server);
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Client_disconnect_drops_the_client(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            using var raw = await ConnectMainAsync(d);
            await va.WaitForClientsAsync(va.Server, 1, TimeSpan.FromSeconds(10));
            var ids = VirtAdmin.ClientIds((await va.RunAsync("client-list", va.Server)).Stdout);
            Assert.Single(ids);
            var r = await va.RunAsync("client-disconnect", va.Server, ids[0].ToString());
            Assert.True(r.ExitCode == 0, $"{d.Kind}: {r.Stderr}");
            Assert.True(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(10)), $"{d.Kind}: client not disconnected");
            await va.WaitForClientsAsync(va.Server, 0, TimeSpan.FromSeconds(10));
            Assert.Empty(VirtAdmin.ClientIds((await va.RunAsync("client-list", va.Server)).Stdout));
            await va.RunAsync("client-disconnect", va.Server, ids[0].ToString());
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Clients_set_lower_max_queues_the_next_client(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            var first = await ConnectMainAsync(d);
            try
            {
                await va.WaitForClientsAsync(va.Server, 1, TimeSpan.FromSeconds(10));
                await va.RunAsync("server-clients-set", va.Server, "--max-clients", "1");
                var r = await va.RunAsync("server-clients-set", va.Server, "--max-clients", "1", "--max-unauth-clients", "1");
                Assert.True(r.ExitCode == 0, $"{d.Kind}: {r.Stderr}");
                await va.RunAsync("server-clients-info", va.Server);
                await va.RunAsync("server-clients-set", "nope", "--max-clients", "3");

                // the first client is served...
                var ok = await first.CallAsync(UnknownProgram, 1, 1, Array.Empty<byte>(), TimeSpan.FromSeconds(10));
                Assert.True(ok.IsError);
                // ...the next waits, not accepted, while the server is full
                using var second = await ConnectMainAsync(d);
                await second.SendCallAsync(UnknownProgram, 1, 1, Array.Empty<byte>());
                await Assert.ThrowsAsync<TimeoutException>(() => second.ReadMessageAsync(TimeSpan.FromSeconds(2)));
                await va.RunAsync("server-clients-info", va.Server);
                first.Dispose();
                var late = await second.ReadMessageAsync(TimeSpan.FromSeconds(10));
                Assert.True(late is not null && late.IsError, $"{d.Kind}: queued client never served");
            }
            finally
            {
                first.Dispose();
            }
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Update_tls_answers_as_the_C_daemon(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            var r = await va.RunAsync("server-update-tls", "admin");
            Assert.NotEqual(0, r.ExitCode);
            await va.RunAsync("server-update-tls", va.Server);
            await va.RunAsync("server-update-tls", "nope");
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Log_filters_and_outputs_are_set_and_change_what_is_logged(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            await va.RunAsync("daemon-log-filters");
            await va.RunAsync("daemon-log-outputs");
            const string logInside = "/run/admin-test.log";
            var logHost = d.Sandbox.HostPath(logInside);
            Assert.False(File.Exists(logHost));

            Assert.Equal(0, (await va.RunAsync("daemon-log-outputs", $"1:file:{logInside}")).ExitCode);
            Assert.Equal(0, (await va.RunAsync("daemon-log-filters", "1:rpc 4:event")).ExitCode);
            await va.RunAsync("daemon-log-filters");
            await va.RunAsync("daemon-log-outputs");
            await va.RunAsync("server-list");
            Assert.True(File.Exists(logHost), $"{d.Kind}: new output not created");
            var logged = await File.ReadAllTextAsync(logHost);
            Assert.Contains("virNetServerClient", logged);

            // back to warnings only: rpc debug stops
            Assert.Equal(0, (await va.RunAsync("daemon-log-filters", "4:rpc")).ExitCode);
            long before = new FileInfo(logHost).Length;
            await va.RunAsync("server-list");
            var after = (await File.ReadAllTextAsync(logHost))[(int)before..];
            Assert.DoesNotContain("virNetServerClient", after);
            await va.RunAsync("daemon-log-filters");

            await va.RunAsync("daemon-log-outputs", "1:nope");
            await va.RunAsync("daemon-log-filters", "9:x");
            await va.RunAsync("daemon-log-filters", "");
            await va.RunAsync("daemon-log-filters");
        });
        Assert.Equal(c, m);
    }

    [Theory]
    [MemberData(nameof(DaemonsAndOurs))]
    public async Task Daemon_timeout_stops_an_idle_daemon(DaemonName name, DaemonKind ours)
    {
        var (c, m) = await AdminCases.BothAsync(name, ours, async (d, va) =>
        {
            var r = await va.RunAsync("daemon-timeout", "--timeout", "1");
            Assert.True(r.ExitCode == 0, $"{d.Kind}: {r.Stderr}");
            int rc = await d.WaitForExitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(0, rc);
        });
        Assert.Equal(c, m);
    }
}
