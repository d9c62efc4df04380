using System.Text;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Xdr.AdminProtocolConstants;

namespace Libvirt.Admin;

/// <summary>
/// The admin program's procedures (0x06900690 v1, admin_server_dispatch.c
/// and admin_server.c), the protocol virt-admin speaks on the "admin"
/// server of both daemons: the bodies of
/// <see cref="IVirAdminProtocolProgram{TClient}"/> over
/// <see cref="IAdminDaemon"/>/<see cref="IAdminServer"/>/<see cref="IAdminClient"/>,
/// written once for any RPC layer, with the C daemons' checks, order of
/// checks, errors and replies. Every error is a value: the program's own
/// as the C daemons report them, the server objects' as they return them
/// (<see cref="NativeAdminDaemon"/> is the one place libvirt's last error
/// is read). libvirt's virNetServer serves them through
/// <see cref="AdminProgramNative"/>.
/// </summary>
public sealed class AdminProgram : IVirAdminProtocolProgram<AdminClientState>
{
    private const VirErrorDomain FromThis = VirErrorDomain.Admin;

    // typed parameter names (libvirt-admin.h)
    private const string WorkersMin = "minWorkers", WorkersMax = "maxWorkers", WorkersPriority = "prioWorkers",
        WorkersFree = "freeWorkers", WorkersCurrent = "nWorkers", JobQueueDepth = "jobQueueDepth";
    private const string ClientsMax = "nclients_max", ClientsCurrent = "nclients",
        ClientsUnauthMax = "nclients_unauth_max", ClientsUnauthCurrent = "nclients_unauth";

    private static string Str(ReadOnlyMemory<byte> s) => Encoding.UTF8.GetString(s.Span);

    private static ReadOnlyMemory<byte> Bytes(string? s) => s is null ? default : Encoding.UTF8.GetBytes(s);

    private static VirError NoServer(string name, string fn)
        => VirError.Report(FromThis, VirErrorCode.NoServer, $"no server with matching name '{name}' found").At(fn);

    private static VirError? CheckFlags(uint flags, string fn) => VirError.CheckFlags(FromThis, flags, 0, fn);

    private static void DisposeAll<T>(IReadOnlyList<T>? list) where T : IDisposable
    {
        if (list is null) return;
        foreach (var x in list) x.Dispose();
    }

    /// <summary>The server named <paramref name="name"/>, to be disposed
    /// by the caller, or the lookup's error. As in the C daemons, some
    /// procedures replace the lookup's error with their own
    /// (<paramref name="reportMissing"/>).</summary>
    private static IAdminServer? Server(AdminClientState st, ReadOnlyMemory<byte> name, bool reportMissing, string fn,
        out VirError? error)
    {
        string srvName = Str(name);
        if (st.Daemon.LookupServer(srvName).TryGet(out var srv, out error))
            return srv;
        if (reportMissing)
            error = NoServer(srvName, fn);
        return null;
    }

    // ---- typed parameters on the wire ----

    /// <summary>Typed parameters for a reply: at most
    /// <paramref name="limit"/>, string values left out unless allowed.</summary>
    private static VirResult<XdrArray<virAdminProtocolTypedParam>> Serialize(IReadOnlyList<AdminTypedParam> ps, int limit, bool stringOk)
    {
        if (ps.Count > limit)
            return VirError.Report(VirErrorDomain.None, VirErrorCode.Rpc,
                $"too many parameters '{ps.Count}' for limit '{limit}'").At("virTypedParamsSerialize");
        var arr = new List<virAdminProtocolTypedParam>(ps.Count);
        foreach (var p in ps)
        {
            if (p.Type == AdminParamType.String && !stringOk)
                continue;
            var v = new virAdminProtocolTypedParamValue { type = (int)p.Type };
            switch (p.Type)
            {
                case AdminParamType.Int: v.i = (int)p.Value; break;
                case AdminParamType.UInt: v.ui = (uint)p.Value; break;
                case AdminParamType.LLong: v.l = (long)p.Value; break;
                case AdminParamType.ULLong: v.ul = (ulong)p.Value; break;
                case AdminParamType.Double: v.d = (double)p.Value; break;
                case AdminParamType.Boolean: v.b = (bool)p.Value ? 1 : 0; break;
                case AdminParamType.String: v.s = Bytes((string)p.Value); break;
            }
            arr.Add(new virAdminProtocolTypedParam { field = Bytes(p.Field), value = v });
        }
        return new XdrArray<virAdminProtocolTypedParam>(arr.ToArray());
    }

    private const int FieldLength = 80; // VIR_TYPED_PARAM_FIELD_LENGTH

    private static VirResult<List<AdminTypedParam>> Deserialize(XdrArray<virAdminProtocolTypedParam> val, int limit)
    {
        const string fn = "virTypedParamsDeserialize";
        if (limit != 0 && val.Count > limit)
            return VirError.Report(VirErrorDomain.None, VirErrorCode.Rpc,
                $"too many parameters '{val.Count}' for limit '{limit}'").At(fn);
        var list = new List<AdminTypedParam>(val.Count);
        foreach (var r in val)
        {
            string field = Str(r.field);
            // as the C copy into the fixed-size field checks: the bytes, up to the NUL
            if (r.field.Length >= FieldLength)
                return VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError,
                    $"parameter {field} too big for destination").At(fn);
            var u = r.value;
            object v;
            switch ((AdminParamType)u.type)
            {
                case AdminParamType.Int: v = u.i; break;
                case AdminParamType.UInt: v = u.ui; break;
                case AdminParamType.LLong: v = u.l; break;
                case AdminParamType.ULLong: v = u.ul; break;
                case AdminParamType.Double: v = u.d; break;
                case AdminParamType.Boolean: v = u.b != 0; break;
                case AdminParamType.String: v = Str(u.s); break;
                default:
                    return VirError.Report(VirErrorDomain.None, VirErrorCode.Rpc, $"unknown parameter type: {u.type}").At(fn);
            }
            list.Add(new AdminTypedParam(field, (AdminParamType)u.type, v));
        }
        return list;
    }

    private static readonly string[] TypeNames = ["unknown", "int", "uint", "llong", "ullong", "double", "boolean", "string"];

    /// <summary>As libvirt validates typed parameters: each known at most
    /// once and of its type; the first problem in name order is reported.</summary>
    private static VirError? Validate(List<AdminTypedParam> ps, params (string Field, AdminParamType Type)[] keys)
    {
        const string fn = "virTypedParamsValidate";
        var sorted = ps.OrderBy(p => p.Field, StringComparer.Ordinal).ToArray();
        var ks = keys.OrderBy(k => k.Field, StringComparer.Ordinal).ToArray();
        string? last = null;
        int i = 0, j = 0;
        while (i < sorted.Length && j < ks.Length)
        {
            if (sorted[i].Field != ks[j].Field)
            {
                j++;
                continue;
            }
            if (last == sorted[i].Field)
                return VirError.Report(VirErrorDomain.None, VirErrorCode.InvalidArg,
                    $"parameter '{sorted[i].Field}' occurs multiple times").At(fn);
            if (sorted[i].Type != ks[j].Type)
            {
                int t = (int)sorted[i].Type;
                string bad = t > 0 && t < TypeNames.Length ? TypeNames[t] : TypeNames[0];
                return VirError.Report(VirErrorDomain.None, VirErrorCode.InvalidArg,
                    $"invalid type '{bad}' for parameter '{sorted[i].Field}', expected '{TypeNames[(int)ks[j].Type]}'").At(fn);
            }
            last = sorted[i].Field;
            i++;
        }
        if (j == ks.Length && i != sorted.Length)
            return VirError.Report(VirErrorDomain.None, VirErrorCode.ArgumentUnsupported,
                $"parameter '{sorted[i].Field}' not supported").At(fn);
        return null;
    }

    private static long UIntOr(List<AdminTypedParam> ps, string field)
    {
        // the first occurrence, as virTypedParamsGet finds it
        foreach (var p in ps)
            if (p.Field == field)
                return (uint)p.Value;
        return -1;
    }

    private static virAdminProtocolClient Client(IAdminClient c, string serverName) => new()
    {
        id = c.Id,
        timestamp = c.Timestamp,
        transport = c.Transport,
        srv = new() { name = Bytes(serverName) },
    };

    /// <summary>The logging outputs or filters, after the flags check.</summary>
    private static VirResult<string> GetLogging(AdminClientState st, uint flags, string api, bool filters, out int n)
    {
        n = 0;
        if (CheckFlags(flags, api) is { } bad)
            return bad;
        return filters ? st.Daemon.GetLogFilters(out n) : st.Daemon.GetLogOutputs(out n);
    }

    /// <summary>Sets the logging outputs or filters (none: the default),
    /// after the flags check.</summary>
    private static VirResult SetLogging(AdminClientState st, uint flags, ReadOnlyMemory<byte>? value, string api, bool filters)
    {
        string? s = value is { } v ? Str(v) : null;
        if (CheckFlags(flags, api) is { } bad)
            return bad;
        return filters ? st.Daemon.SetLogFilters(s) : st.Daemon.SetLogOutputs(s);
    }

    // ---- procedures ----

    public VirResult ConnectOpen(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectOpenArgs args)
    {
        if (CheckFlags(args.flags, "adminDispatchConnectOpen") is { } bad)
            return bad;
        st.Opened = true;
        return VirResult.Success;
    }

    public VirResult ConnectClose(AdminClientState st, XdrCallContext call)
    {
        st.Connection.CloseAfterReply();
        return VirResult.Success;
    }

    public VirResult<virAdminProtocolConnectGetLibVersionRet> ConnectGetLibVersion(AdminClientState st, XdrCallContext call)
        => new virAdminProtocolConnectGetLibVersionRet { libVer = Methods.virtshimCompiledVersion() }; // the daemon's libvirt, 9.0.0

    public VirResult<virAdminProtocolConnectListServersRet> ConnectListServers(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectListServersArgs args)
    {
        const string fn = "adminDispatchConnectListServers";
        if (CheckFlags(args.flags, "adminConnectListServers") is { } bad)
            return bad;
        if (!st.Daemon.ListServers().TryGet(out var servers, out var err))
            return err!;
        try
        {
            int n = servers.Count;
            if (n > VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX)
                return VirError.Report(FromThis, VirErrorCode.InternalError,
                    $"Too many servers '{n}' for limit '{VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX}'").At(fn);
            var ret = new virAdminProtocolConnectListServersRet { ret = (uint)n };
            if (args.need_results != 0 && n > 0)
            {
                var arr = new virAdminProtocolServer[n];
                for (int i = 0; i < n; i++)
                    arr[i].name = Bytes(servers[i].Name);
                ret.servers = arr;
            }
            return ret;
        }
        finally { DisposeAll(servers); }
    }

    public VirResult<virAdminProtocolConnectLookupServerRet> ConnectLookupServer(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectLookupServerArgs args)
    {
        // (the C daemons accept any flags here)
        using var srv = Server(st, args.name, false, "adminDispatchConnectLookupServer", out var err);
        if (srv is null)
            return err!;
        return new virAdminProtocolConnectLookupServerRet { srv = new() { name = Bytes(srv.Name) } };
    }

    public VirResult<virAdminProtocolServerGetThreadpoolParametersRet> ServerGetThreadpoolParameters(AdminClientState st,
        XdrCallContext call, in virAdminProtocolServerGetThreadpoolParametersArgs args)
    {
        const string fn = "adminServerGetThreadPoolParameters";
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerGetThreadpoolParameters", out var err);
        if (srv is null)
            return err!;
        if (CheckFlags(args.flags, fn) is { } bad)
            return bad;
        // the C daemon replaces the server's error with its own
        if (!srv.GetThreadPool().TryGet(out var tp, out _))
            return VirError.Report(FromThis, VirErrorCode.InternalError, "Unable to retrieve threadpool parameters").At(fn);
        var ps = new[]
        {
            AdminTypedParam.UInt(WorkersMin, (uint)tp.MinWorkers),
            AdminTypedParam.UInt(WorkersMax, (uint)tp.MaxWorkers),
            AdminTypedParam.UInt(WorkersCurrent, (uint)tp.Workers),
            AdminTypedParam.UInt(WorkersFree, (uint)tp.FreeWorkers),
            AdminTypedParam.UInt(WorkersPriority, (uint)tp.PriorityWorkers),
            AdminTypedParam.UInt(JobQueueDepth, (uint)tp.JobQueueDepth),
        };
        if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX, false).TryGet(out var arr, out err))
            return err!;
        return new virAdminProtocolServerGetThreadpoolParametersRet { @params = arr };
    }

    public VirResult ServerSetThreadpoolParameters(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerSetThreadpoolParametersArgs args)
    {
        using var srv = Server(st, args.srv.name, true, "adminDispatchServerSetThreadpoolParameters", out var err);
        if (srv is null)
            return err!;
        if (!Deserialize(args.@params, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX).TryGet(out var ps, out err))
            return err!;
        if ((CheckFlags(args.flags, "adminServerSetThreadPoolParameters") ??
             Validate(ps, (WorkersMin, AdminParamType.UInt), (WorkersMax, AdminParamType.UInt),
                 (WorkersPriority, AdminParamType.UInt))) is { } bad)
            return bad;
        return srv.SetThreadPool(UIntOr(ps, WorkersMin), UIntOr(ps, WorkersMax), UIntOr(ps, WorkersPriority));
    }

    public VirResult<virAdminProtocolServerListClientsRet> ServerListClients(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerListClientsArgs args)
    {
        const string fn = "adminDispatchServerListClients";
        using var srv = Server(st, args.srv.name, false, fn, out var err);
        if (srv is null)
            return err!;
        if (CheckFlags(args.flags, "adminServerListClients") is { } bad)
            return bad;
        if (!srv.ListClients().TryGet(out var clients, out err))
            return err!;
        try
        {
            int n = clients.Count;
            if (n > VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX)
                return VirError.Report(FromThis, VirErrorCode.InternalError,
                    $"Too many clients '{n}' for limit '{VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX}'").At(fn);
            var ret = new virAdminProtocolServerListClientsRet { ret = (uint)n };
            if (args.need_results != 0 && n > 0)
            {
                var arr = new virAdminProtocolClient[n];
                string srvName = srv.Name;
                for (int i = 0; i < n; i++)
                    arr[i] = Client(clients[i], srvName);
                ret.clients = arr;
            }
            return ret;
        }
        finally { DisposeAll(clients); }
    }

    public VirResult<virAdminProtocolServerLookupClientRet> ServerLookupClient(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerLookupClientArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerLookupClient", out var err);
        if (srv is null)
            return err!;
        if (CheckFlags(args.flags, "adminServerLookupClient") is { } bad)
            return bad;
        if (!srv.LookupClient(args.id).TryGet(out var clnt, out err))
            return err!;
        using (clnt)
            return new virAdminProtocolServerLookupClientRet { clnt = Client(clnt, srv.Name) };
    }

    public VirResult<virAdminProtocolClientGetInfoRet> ClientGetInfo(AdminClientState st, XdrCallContext call,
        in virAdminProtocolClientGetInfoArgs args)
    {
        const string fn = "adminDispatchClientGetInfo";
        using var srv = Server(st, args.clnt.srv.name, true, fn, out var err);
        if (srv is null)
            return err!;
        ulong id = args.clnt.id;
        // the C daemon replaces the lookup's error with its own
        if (!srv.LookupClient(id).TryGet(out var clnt, out _))
            return VirError.Report(FromThis, VirErrorCode.NoClient, $"no client with matching id '{id}' found").At(fn);
        using (clnt)
        {
            if (CheckFlags(args.flags, "adminClientGetInfo") is { } bad)
                return bad;
            if (!clnt.GetInfo().TryGet(out var ps, out err) ||
                !Serialize(ps, VIR_ADMIN_PROTOCOL_CLIENT_INFO_PARAMETERS_MAX, true).TryGet(out var arr, out err))
                return err!;
            return new virAdminProtocolClientGetInfoRet { @params = arr };
        }
    }

    public VirResult ClientClose(AdminClientState st, XdrCallContext call, in virAdminProtocolClientCloseArgs args)
    {
        using var srv = Server(st, args.clnt.srv.name, false, "adminDispatchClientClose", out var err);
        if (srv is null)
            return err!;
        if (!srv.LookupClient(args.clnt.id).TryGet(out var clnt, out err))
            return err!;
        using (clnt)
        {
            if (CheckFlags(args.flags, "adminClientClose") is { } bad)
                return bad;
            clnt.Close();
            return VirResult.Success;
        }
    }

    public VirResult<virAdminProtocolServerGetClientLimitsRet> ServerGetClientLimits(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerGetClientLimitsArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerGetClientLimits", out var err);
        if (srv is null)
            return err!;
        if (CheckFlags(args.flags, "adminServerGetClientLimits") is { } bad)
            return bad;
        var l = srv.GetClientLimits();
        var ps = new[]
        {
            AdminTypedParam.UInt(ClientsMax, (uint)l.MaxClients),
            AdminTypedParam.UInt(ClientsCurrent, (uint)l.CurrentClients),
            AdminTypedParam.UInt(ClientsUnauthMax, (uint)l.MaxUnauthClients),
            AdminTypedParam.UInt(ClientsUnauthCurrent, (uint)l.CurrentUnauthClients),
        };
        if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX, false).TryGet(out var arr, out err))
            return err!;
        return new virAdminProtocolServerGetClientLimitsRet { @params = arr };
    }

    public VirResult ServerSetClientLimits(AdminClientState st, XdrCallContext call, in virAdminProtocolServerSetClientLimitsArgs args)
    {
        using var srv = Server(st, args.srv.name, true, "adminDispatchServerSetClientLimits", out var err);
        if (srv is null)
            return err!;
        if (!Deserialize(args.@params, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX).TryGet(out var ps, out err))
            return err!;
        if ((CheckFlags(args.flags, "adminServerSetClientLimits") ??
             Validate(ps, (ClientsMax, AdminParamType.UInt), (ClientsUnauthMax, AdminParamType.UInt))) is { } bad)
            return bad;
        return srv.SetClientLimits(UIntOr(ps, ClientsMax), UIntOr(ps, ClientsUnauthMax));
    }

    public VirResult<virAdminProtocolConnectGetLoggingOutputsRet> ConnectGetLoggingOutputs(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectGetLoggingOutputsArgs args)
    {
        if (!GetLogging(st, args.flags, "adminConnectGetLoggingOutputs", filters: false, out int n).TryGet(out var outputs, out var err))
            return err!;
        return new virAdminProtocolConnectGetLoggingOutputsRet { outputs = Bytes(outputs), noutputs = (uint)n };
    }

    public VirResult<virAdminProtocolConnectGetLoggingFiltersRet> ConnectGetLoggingFilters(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectGetLoggingFiltersArgs args)
    {
        if (!GetLogging(st, args.flags, "adminConnectGetLoggingFilters", filters: true, out int n).TryGet(out var filters, out var err))
            return err!;
        var ret = new virAdminProtocolConnectGetLoggingFiltersRet { nfilters = (uint)n };
        if (n > 0)
            ret.filters = Bytes(filters);
        return ret;
    }

    public VirResult ConnectSetLoggingOutputs(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectSetLoggingOutputsArgs args)
        => SetLogging(st, args.flags, args.outputs, "adminConnectSetLoggingOutputs", filters: false);

    public VirResult ConnectSetLoggingFilters(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectSetLoggingFiltersArgs args)
        => SetLogging(st, args.flags, args.filters, "adminConnectSetLoggingFilters", filters: true);

    public VirResult ServerUpdateTlsFiles(AdminClientState st, XdrCallContext call, in virAdminProtocolServerUpdateTlsFilesArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerUpdateTlsFiles", out var err);
        if (srv is null)
            return err!;
        if (CheckFlags(args.flags, "adminServerUpdateTlsFiles") is { } bad)
            return bad;
        return srv.UpdateTlsFiles();
    }

    public VirResult ConnectSetDaemonTimeout(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectSetDaemonTimeoutArgs args)
    {
        if (CheckFlags(args.flags, "adminConnectSetDaemonTimeout") is { } bad)
            return bad;
        return st.Daemon.SetAutoShutdown(args.timeout);
    }
}
