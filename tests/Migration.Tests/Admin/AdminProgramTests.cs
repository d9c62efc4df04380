using System.Text;
using Libvirt.Admin;
using Libvirt.Tests.Contracts;
using Libvirt.Util;
using Libvirt.Xdr;
using Xunit;
using static Libvirt.Interop.Methods;

namespace Libvirt.Tests.Admin;

/// <summary>
/// The admin program's bodies in process, over managed fakes of the daemon,
/// server and client objects: every failure is an error value, the C
/// daemons' checks in the C daemons' order, and libvirt's per-thread last
/// error is never touched (only <see cref="NativeAdminDaemon"/> reads it).
/// The daemon suites (AdminTests) compare the same errors with the C
/// daemons through virt-admin.
/// </summary>
public sealed unsafe class AdminProgramTests(LibvirtFixture libvirt) : IClassFixture<LibvirtFixture>
{
    private readonly LibvirtFixture _libvirt = libvirt;

    private static readonly VirError ServerFails = new(9, 7, "operation failed: the server's own error");

    private sealed class FakeClient(ulong id) : IAdminClient
    {
        public ulong Id => id;
        public long Timestamp => 1700000000;
        public uint Transport => 2;
        public bool Closed;
        public VirResult<IReadOnlyList<AdminTypedParam>> GetInfo() => new List<AdminTypedParam> { AdminTypedParam.Bool("readonly", false) };
        public void Close() => Closed = true;
        public void CloseAfterReply() { }
        public void Dispose() { }
    }

    private sealed class FakeServer(string name) : IAdminServer
    {
        public readonly Dictionary<ulong, FakeClient> Clients = new() { [1] = new FakeClient(1) };
        public (long Max, long Unauth)? LimitsSet;
        public bool PoolFails;
        public string Name => name;
        public VirResult<AdminThreadPool> GetThreadPool() => PoolFails ? ServerFails : new AdminThreadPool(0, 20, 0, 0, 0, 0);
        public VirResult SetThreadPool(long minWorkers, long maxWorkers, long priorityWorkers) => ServerFails;
        public VirResult<IReadOnlyList<IAdminClient>> ListClients() => Clients.Values.ToList<IAdminClient>();
        public VirResult<IAdminClient> LookupClient(ulong id)
            => Clients.TryGetValue(id, out var c) ? c
                : VirError.Report(VirErrorDomain.Rpc, VirErrorCode.NoClient, $"No client with matching ID '{id}'");
        public AdminClientLimits GetClientLimits() => new(5000, 1, 1000, 0);
        public VirResult SetClientLimits(long maxClients, long maxUnauthClients)
        {
            LimitsSet = (maxClients, maxUnauthClients);
            return VirResult.Success;
        }
        public VirResult UpdateTlsFiles() => VirResult.Success;
        public void Dispose() { }
    }

    private sealed class FakeDaemon : IAdminDaemon
    {
        public readonly FakeServer Server = new("virtlockd");
        public VirResult<IReadOnlyList<IAdminServer>> ListServers() => new List<IAdminServer> { Server };
        public VirResult<IAdminServer> LookupServer(string name)
            => name == Server.Name ? Server
                : VirError.Report(VirErrorDomain.Rpc, VirErrorCode.NoServer, $"lookup's own message for '{name}'");
        public VirResult SetAutoShutdown(uint timeout) => VirResult.Success;
        public VirResult<string> GetLogOutputs(out int count) { count = 1; return "3:stderr"; }
        public VirResult<string> GetLogFilters(out int count) { count = 0; return ""; }
        public VirResult SetLogOutputs(string? outputs) => ServerFails;
        public VirResult SetLogFilters(string? filters) => VirResult.Success;
    }

    private readonly FakeDaemon _daemon = new();
    private readonly XdrCallContext _call = new();

    private AdminClientState State() => new(_daemon, new FakeClient(99));

    private static ReadOnlyMemory<byte> U(string s) => Encoding.UTF8.GetBytes(s);

    private static virAdminProtocolTypedParam UIntParam(string field, uint v)
        => new() { field = U(field), value = new() { type = (int)AdminParamType.UInt, ui = v } };

    private static VirError Error(VirResult r) => Assert.IsType<VirError>(r.Error);
    private static VirError Error<T>(VirResult<T> r) => Assert.IsType<VirError>(r.Error);

    private void AssertLibvirtUntouched()
    {
        _ = _libvirt;
        Assert.True(virGetLastError() == null, "the admin program set libvirt's last error");
    }

    [Fact]
    public void Unsupported_flags_are_an_error_value_named_for_the_C_function()
    {
        virResetLastError();
        var st = State();
        var e = Error(st.Procedures.ServerGetClientLimits(st, _call,
            new virAdminProtocolServerGetClientLimitsArgs { srv = new() { name = U("virtlockd") }, flags = 6 }));
        Assert.Equal(new VirError((int)VirErrorCode.InvalidArg, (int)VirErrorDomain.Admin,
            "unsupported flags (0x6) in function adminServerGetClientLimits",
            Str1: "adminServerGetClientLimits", Str2: "flags", Int1: 0, Int2: 0), e);
        AssertLibvirtUntouched();
    }

    [Fact]
    public void A_missing_server_is_the_lookups_error_or_the_procedures_own()
    {
        virResetLastError();
        var st = State();
        // lookups that pass the server object's error through
        var e = Error(st.Procedures.ServerGetClientLimits(st, _call,
            new virAdminProtocolServerGetClientLimitsArgs { srv = new() { name = U("nope") } }));
        Assert.Equal("Server not found: lookup's own message for 'nope'", e.Message);
        // those that replace it, as the C dispatchers do
        e = Error(st.Procedures.ServerSetClientLimits(st, _call,
            new virAdminProtocolServerSetClientLimitsArgs { srv = new() { name = U("nope") } }));
        Assert.Equal((int)VirErrorCode.NoServer, e.Code);
        Assert.Equal((int)VirErrorDomain.Admin, e.Domain);
        Assert.Equal("Server not found: no server with matching name 'nope' found", e.Message);
        Assert.Equal("adminDispatchServerSetClientLimits", e.Function);
        AssertLibvirtUntouched();
    }

    [Fact]
    public void Typed_parameters_are_checked_in_the_C_order_before_anything_is_set()
    {
        virResetLastError();
        var st = State();
        var args = new virAdminProtocolServerSetClientLimitsArgs
        {
            srv = new() { name = U("virtlockd") },
            @params = new[] { UIntParam("nclients_max", 10), UIntParam("nclients_max", 11) },
            flags = 1,
        };
        // flags before the parameters, as virCheckFlags comes first
        Assert.Equal("unsupported flags (0x1) in function adminServerSetClientLimits",
            Error(st.Procedures.ServerSetClientLimits(st, _call, args)).Message);
        args.flags = 0;
        var e = Error(st.Procedures.ServerSetClientLimits(st, _call, args));
        Assert.Equal("invalid argument: parameter 'nclients_max' occurs multiple times", e.Message);
        Assert.Equal((int)VirErrorDomain.None, e.Domain);
        Assert.Equal("virTypedParamsValidate", e.Function);
        args.@params = new[] { UIntParam("nclients_max", 10), UIntParam("bogus", 1) };
        Assert.Equal("argument unsupported: parameter 'bogus' not supported",
            Error(st.Procedures.ServerSetClientLimits(st, _call, args)).Message);
        args.@params = new[]
        {
            UIntParam("nclients_max", 10),
            new virAdminProtocolTypedParam { field = U("nclients_unauth_max"), value = new() { type = (int)AdminParamType.Int, i = 3 } },
        };
        Assert.Equal("invalid argument: invalid type 'int' for parameter 'nclients_unauth_max', expected 'uint'",
            Error(st.Procedures.ServerSetClientLimits(st, _call, args)).Message);
        Assert.Null(_daemon.Server.LimitsSet);

        args.@params = new[] { UIntParam("nclients_max", 10) };
        Assert.True(st.Procedures.ServerSetClientLimits(st, _call, args).Ok);
        Assert.Equal((10L, -1L), _daemon.Server.LimitsSet);
        AssertLibvirtUntouched();
    }

    [Fact]
    public void Server_object_errors_pass_through_or_are_replaced_as_in_C()
    {
        virResetLastError();
        var st = State();
        // SetThreadPool's own error reaches the reply as it was returned
        Assert.Equal(ServerFails, Error(st.Procedures.ServerSetThreadpoolParameters(st, _call,
            new virAdminProtocolServerSetThreadpoolParametersArgs { srv = new() { name = U("virtlockd") } })));
        Assert.Equal(ServerFails, Error(st.Procedures.ConnectSetLoggingOutputs(st, _call,
            new virAdminProtocolConnectSetLoggingOutputsArgs { outputs = U("1:stderr") })));
        // GetThreadPool's is replaced by the C daemon's message
        _daemon.Server.PoolFails = true;
        var e = Error(st.Procedures.ServerGetThreadpoolParameters(st, _call,
            new virAdminProtocolServerGetThreadpoolParametersArgs { srv = new() { name = U("virtlockd") } }));
        Assert.Equal("internal error: Unable to retrieve threadpool parameters", e.Message);
        // and a missing client's, by "no client with matching id"
        e = Error(st.Procedures.ClientGetInfo(st, _call,
            new virAdminProtocolClientGetInfoArgs { clnt = new() { id = 42, srv = new() { name = U("virtlockd") } } }));
        Assert.Equal("Client not found: no client with matching id '42' found", e.Message);
        // ClientClose keeps the lookup's
        e = Error(st.Procedures.ClientClose(st, _call,
            new virAdminProtocolClientCloseArgs { clnt = new() { id = 42, srv = new() { name = U("virtlockd") } } }));
        Assert.Equal("Client not found: No client with matching ID '42'", e.Message);
        Assert.True(st.Procedures.ClientClose(st, _call,
            new virAdminProtocolClientCloseArgs { clnt = new() { id = 1, srv = new() { name = U("virtlockd") } } }).Ok);
        Assert.True(_daemon.Server.Clients[1].Closed);
        AssertLibvirtUntouched();
    }

    [Fact]
    public void Successful_replies_carry_the_values()
    {
        var st = State();
        var limits = st.Procedures.ServerGetClientLimits(st, _call,
            new virAdminProtocolServerGetClientLimitsArgs { srv = new() { name = U("virtlockd") } }).Value;
        var ps = new List<virAdminProtocolTypedParam>();
        foreach (var p in limits.@params)
            ps.Add(p);
        Assert.Equal(["nclients_max", "nclients", "nclients_unauth_max", "nclients_unauth"],
            ps.Select(p => Encoding.UTF8.GetString(p.field.Span)));
        Assert.Equal(5000u, ps[0].value.ui);
        var outputs = st.Procedures.ConnectGetLoggingOutputs(st, _call, new virAdminProtocolConnectGetLoggingOutputsArgs()).Value;
        Assert.Equal("3:stderr", Encoding.UTF8.GetString(outputs.outputs.Span));
        Assert.Equal(1u, outputs.noutputs);
        var filters = st.Procedures.ConnectGetLoggingFilters(st, _call, new virAdminProtocolConnectGetLoggingFiltersArgs()).Value;
        Assert.Equal(0u, filters.nfilters);
        var servers = st.Procedures.ConnectListServers(st, _call,
            new virAdminProtocolConnectListServersArgs { need_results = 1 }).Value;
        Assert.Equal(1u, servers.ret);
    }
}
