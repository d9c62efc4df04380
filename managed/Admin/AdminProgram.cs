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
/// checks, errors and replies. The server objects are libvirt's, so errors
/// are reported as libvirt reports them and returned as values
/// (<see cref="Failed"/>). libvirt's virNetServer serves them through
/// <see cref="AdminProgramNative"/>.
/// </summary>
public sealed class AdminProgram : IVirAdminProtocolProgram<AdminClientState>
{
    private const virErrorDomain FromThis = virErrorDomain.VIR_FROM_ADMIN;

    // typed parameter names (libvirt-admin.h)
    private const string WorkersMin = "minWorkers", WorkersMax = "maxWorkers", WorkersPriority = "prioWorkers",
        WorkersFree = "freeWorkers", WorkersCurrent = "nWorkers", JobQueueDepth = "jobQueueDepth";
    private const string ClientsMax = "nclients_max", ClientsCurrent = "nclients",
        ClientsUnauthMax = "nclients_unauth_max", ClientsUnauthCurrent = "nclients_unauth";

    /// <summary>The error the failing step left in libvirt's per-thread
    /// last error, as a value (and reset). With none set, what libvirt puts
    /// in a reply then (virNetMessageSaveError's fallback).</summary>
    internal static unsafe VirError Failed()
    {
        var e = Methods.virGetLastError();
        if (e == null || e->code == 0)
            return new VirError((int)virErrorNumber.VIR_ERR_INTERNAL_ERROR, (int)virErrorDomain.VIR_FROM_RPC,
                "Library function returned error but did not set virError", Int1: 0, Int2: 0) { Logged = true };
        return VirErrorNative.TakeLast();
    }

    private static string Str(ReadOnlyMemory<byte> s) => Encoding.UTF8.GetString(s.Span);

    private static ReadOnlyMemory<byte> Bytes(string? s) => s is null ? default : Encoding.UTF8.GetBytes(s);

    private static void NoServer(string name, string fn)
        => LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_NO_SERVER, fn, $"no server with matching name '{name}' found");

    private static void DisposeAll<T>(IReadOnlyList<T>? list) where T : IDisposable
    {
        if (list is null) return;
        foreach (var x in list) x.Dispose();
    }

    /// <summary>The server named <paramref name="name"/>, to be disposed
    /// by the caller; null when there is none, the error reported. As in the
    /// C daemons, some procedures replace the lookup's error with their own
    /// (<paramref name="reportMissing"/>).</summary>
    private static IAdminServer? Server(AdminClientState st, ReadOnlyMemory<byte> name, bool reportMissing, string fn)
    {
        string srvName = Str(name);
        var srv = st.Daemon.LookupServer(srvName);
        if (srv is null && reportMissing)
            NoServer(srvName, fn);
        return srv;
    }

    private static VirResult Done(bool ok) => ok ? VirResult.Success : Failed();

    // ---- typed parameters on the wire ----

    /// <summary>Typed parameters for a reply: at most
    /// <paramref name="limit"/>, string values left out unless allowed.</summary>
    private static VirResult<XdrArray<virAdminProtocolTypedParam>> Serialize(IReadOnlyList<AdminTypedParam> ps, int limit, bool stringOk)
    {
        if (ps.Count > limit)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsSerialize",
                $"too many parameters '{ps.Count}' for limit '{limit}'");
            return Failed();
        }
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

    private static List<AdminTypedParam>? Deserialize(XdrArray<virAdminProtocolTypedParam> val, int limit)
    {
        if (limit != 0 && val.Count > limit)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsDeserialize",
                $"too many parameters '{val.Count}' for limit '{limit}'");
            return null;
        }
        var list = new List<AdminTypedParam>(val.Count);
        foreach (var r in val)
        {
            string field = Str(r.field);
            // as the C copy into the fixed-size field checks: the bytes, up to the NUL
            if (r.field.Length >= FieldLength)
            {
                LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "virTypedParamsDeserialize",
                    $"parameter {field} too big for destination");
                return null;
            }
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
                    LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsDeserialize",
                        $"unknown parameter type: {u.type}");
                    return null;
            }
            list.Add(new AdminTypedParam(field, (AdminParamType)u.type, v));
        }
        return list;
    }

    private static readonly string[] TypeNames = ["unknown", "int", "uint", "llong", "ullong", "double", "boolean", "string"];

    /// <summary>As libvirt validates typed parameters: each known at most
    /// once and of its type; the first problem in name order is reported.</summary>
    private static bool Validate(List<AdminTypedParam> ps, params (string Field, AdminParamType Type)[] keys)
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
            {
                LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INVALID_ARG, fn,
                    $"parameter '{sorted[i].Field}' occurs multiple times");
                return false;
            }
            if (sorted[i].Type != ks[j].Type)
            {
                int t = (int)sorted[i].Type;
                string bad = t > 0 && t < TypeNames.Length ? TypeNames[t] : TypeNames[0];
                LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INVALID_ARG, fn,
                    $"invalid type '{bad}' for parameter '{sorted[i].Field}', expected '{TypeNames[(int)ks[j].Type]}'");
                return false;
            }
            last = sorted[i].Field;
            i++;
        }
        if (j == ks.Length && i != sorted.Length)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_ARGUMENT_UNSUPPORTED, fn,
                $"parameter '{sorted[i].Field}' not supported");
            return false;
        }
        return true;
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
    private static bool GetLogging(AdminClientState st, uint flags, string api, bool filters, out string? value, out int n)
    {
        n = 0;
        value = null;
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, api))
            return false;
        value = filters ? st.Daemon.GetLogFilters(out n) : st.Daemon.GetLogOutputs(out n);
        return value is not null;
    }

    /// <summary>Sets the logging outputs or filters (none: the default),
    /// after the flags check.</summary>
    private static VirResult SetLogging(AdminClientState st, uint flags, ReadOnlyMemory<byte>? value, string api, bool filters)
    {
        string? s = value is { } v ? Str(v) : null;
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, api))
            return Failed();
        return Done(filters ? st.Daemon.SetLogFilters(s) : st.Daemon.SetLogOutputs(s));
    }

    // ---- procedures ----

    public VirResult ConnectOpen(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectOpenArgs args)
    {
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminDispatchConnectOpen"))
            return Failed();
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
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminConnectListServers"))
            return Failed();
        var servers = st.Daemon.ListServers();
        if (servers is null)
            return Failed();
        try
        {
            int n = servers.Count;
            if (n > VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many servers '{n}' for limit '{VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX}'");
                return Failed();
            }
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
        using var srv = Server(st, args.name, false, "adminDispatchConnectLookupServer");
        if (srv is null)
            return Failed();
        return new virAdminProtocolConnectLookupServerRet { srv = new() { name = Bytes(srv.Name) } };
    }

    public VirResult<virAdminProtocolServerGetThreadpoolParametersRet> ServerGetThreadpoolParameters(AdminClientState st,
        XdrCallContext call, in virAdminProtocolServerGetThreadpoolParametersArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerGetThreadpoolParameters");
        if (srv is null)
            return Failed();
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerGetThreadPoolParameters"))
            return Failed();
        if (!srv.GetThreadPool(out var tp))
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "adminServerGetThreadPoolParameters",
                "Unable to retrieve threadpool parameters");
            return Failed();
        }
        var ps = new[]
        {
            AdminTypedParam.UInt(WorkersMin, (uint)tp.MinWorkers),
            AdminTypedParam.UInt(WorkersMax, (uint)tp.MaxWorkers),
            AdminTypedParam.UInt(WorkersCurrent, (uint)tp.Workers),
            AdminTypedParam.UInt(WorkersFree, (uint)tp.FreeWorkers),
            AdminTypedParam.UInt(WorkersPriority, (uint)tp.PriorityWorkers),
            AdminTypedParam.UInt(JobQueueDepth, (uint)tp.JobQueueDepth),
        };
        if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX, false).TryGet(out var arr, out var err))
            return err!;
        return new virAdminProtocolServerGetThreadpoolParametersRet { @params = arr };
    }

    public VirResult ServerSetThreadpoolParameters(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerSetThreadpoolParametersArgs args)
    {
        using var srv = Server(st, args.srv.name, true, "adminDispatchServerSetThreadpoolParameters");
        if (srv is null)
            return Failed();
        var ps = Deserialize(args.@params, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX);
        bool ok = ps is not null &&
            LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerSetThreadPoolParameters") &&
            Validate(ps, (WorkersMin, AdminParamType.UInt), (WorkersMax, AdminParamType.UInt),
                (WorkersPriority, AdminParamType.UInt)) &&
            srv.SetThreadPool(UIntOr(ps, WorkersMin), UIntOr(ps, WorkersMax), UIntOr(ps, WorkersPriority));
        return ok ? VirResult.Success : Failed();
    }

    public VirResult<virAdminProtocolServerListClientsRet> ServerListClients(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerListClientsArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerListClients");
        if (srv is null)
            return Failed();
        const string fn = "adminDispatchServerListClients";
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerListClients"))
            return Failed();
        var clients = srv.ListClients();
        if (clients is null)
            return Failed();
        try
        {
            int n = clients.Count;
            if (n > VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many clients '{n}' for limit '{VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX}'");
                return Failed();
            }
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
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerLookupClient");
        if (srv is null)
            return Failed();
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerLookupClient"))
            return Failed();
        using var clnt = srv.LookupClient(args.id);
        if (clnt is null)
            return Failed();
        return new virAdminProtocolServerLookupClientRet { clnt = Client(clnt, srv.Name) };
    }

    public VirResult<virAdminProtocolClientGetInfoRet> ClientGetInfo(AdminClientState st, XdrCallContext call,
        in virAdminProtocolClientGetInfoArgs args)
    {
        using var srv = Server(st, args.clnt.srv.name, true, "adminDispatchClientGetInfo");
        if (srv is null)
            return Failed();
        ulong id = args.clnt.id;
        using var clnt = srv.LookupClient(id);
        if (clnt is null)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_NO_CLIENT, "adminDispatchClientGetInfo",
                $"no client with matching id '{id}' found");
            return Failed();
        }
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminClientGetInfo"))
            return Failed();
        var ps = clnt.GetInfo();
        if (ps is null)
            return Failed();
        if (!Serialize(ps, VIR_ADMIN_PROTOCOL_CLIENT_INFO_PARAMETERS_MAX, true).TryGet(out var arr, out var err))
            return err!;
        return new virAdminProtocolClientGetInfoRet { @params = arr };
    }

    public VirResult ClientClose(AdminClientState st, XdrCallContext call, in virAdminProtocolClientCloseArgs args)
    {
        using var srv = Server(st, args.clnt.srv.name, false, "adminDispatchClientClose");
        if (srv is null)
            return Failed();
        using var clnt = srv.LookupClient(args.clnt.id);
        if (clnt is null || !LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminClientClose"))
            return Failed();
        clnt.Close();
        return VirResult.Success;
    }

    public VirResult<virAdminProtocolServerGetClientLimitsRet> ServerGetClientLimits(AdminClientState st, XdrCallContext call,
        in virAdminProtocolServerGetClientLimitsArgs args)
    {
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerGetClientLimits");
        if (srv is null)
            return Failed();
        if (!LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerGetClientLimits"))
            return Failed();
        var l = srv.GetClientLimits();
        var ps = new[]
        {
            AdminTypedParam.UInt(ClientsMax, (uint)l.MaxClients),
            AdminTypedParam.UInt(ClientsCurrent, (uint)l.CurrentClients),
            AdminTypedParam.UInt(ClientsUnauthMax, (uint)l.MaxUnauthClients),
            AdminTypedParam.UInt(ClientsUnauthCurrent, (uint)l.CurrentUnauthClients),
        };
        if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX, false).TryGet(out var arr, out var err))
            return err!;
        return new virAdminProtocolServerGetClientLimitsRet { @params = arr };
    }

    public VirResult ServerSetClientLimits(AdminClientState st, XdrCallContext call, in virAdminProtocolServerSetClientLimitsArgs args)
    {
        using var srv = Server(st, args.srv.name, true, "adminDispatchServerSetClientLimits");
        if (srv is null)
            return Failed();
        var ps = Deserialize(args.@params, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX);
        bool ok = ps is not null &&
            LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerSetClientLimits") &&
            Validate(ps, (ClientsMax, AdminParamType.UInt), (ClientsUnauthMax, AdminParamType.UInt)) &&
            srv.SetClientLimits(UIntOr(ps, ClientsMax), UIntOr(ps, ClientsUnauthMax));
        return ok ? VirResult.Success : Failed();
    }

    public VirResult<virAdminProtocolConnectGetLoggingOutputsRet> ConnectGetLoggingOutputs(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectGetLoggingOutputsArgs args)
    {
        if (!GetLogging(st, args.flags, "adminConnectGetLoggingOutputs", filters: false, out var outputs, out int n))
            return Failed();
        return new virAdminProtocolConnectGetLoggingOutputsRet { outputs = Bytes(outputs), noutputs = (uint)n };
    }

    public VirResult<virAdminProtocolConnectGetLoggingFiltersRet> ConnectGetLoggingFilters(AdminClientState st, XdrCallContext call,
        in virAdminProtocolConnectGetLoggingFiltersArgs args)
    {
        if (!GetLogging(st, args.flags, "adminConnectGetLoggingFilters", filters: true, out var filters, out int n) || n < 0)
            return Failed();
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
        using var srv = Server(st, args.srv.name, false, "adminDispatchServerUpdateTlsFiles");
        if (srv is null)
            return Failed();
        return Done(LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminServerUpdateTlsFiles") && srv.UpdateTlsFiles());
    }

    public VirResult ConnectSetDaemonTimeout(AdminClientState st, XdrCallContext call, in virAdminProtocolConnectSetDaemonTimeoutArgs args)
        => Done(LibvirtError.CheckFlags(FromThis, args.flags, 0, "adminConnectSetDaemonTimeout") &&
            st.Daemon.SetAutoShutdown(args.timeout));
}
