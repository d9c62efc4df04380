using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;
using unsafe DispatchFunc = delegate* unmanaged[Cdecl]<Libvirt.Interop.virNetServer*, Libvirt.Interop.virNetServerClient*, Libvirt.Interop.virNetMessage*, Libvirt.Interop.virNetMessageError*, void*, void*, int>;

namespace Libvirt.Admin;

/// <summary>
/// The admin program (0x06900690 v1) virt-admin speaks, served on the
/// "admin" server of both daemons: procedure entry points over
/// <see cref="IAdminDaemon"/>/<see cref="IAdminServer"/>/<see cref="IAdminClient"/>,
/// with the C daemons' checks, order of checks, errors and replies. Each
/// failure leaves libvirt's per-thread error set and saves it into the
/// reply on the thread that dispatches.
/// </summary>
public static unsafe class AdminProgram
{
    private const virErrorDomain FromThis = virErrorDomain.VIR_FROM_ADMIN;

    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram((uint)VIR_ADMIN_PROTOCOL_PROGRAM, (uint)VIR_ADMIN_PROTOCOL_PROGRAM_VERSION,
            &virtshimAdminProcInfo,
            [
                (nint)(DispatchFunc)(&ConnectOpen),
                (nint)(DispatchFunc)(&ConnectClose),
                (nint)(DispatchFunc)(&ConnectGetLibVersion),
                (nint)(DispatchFunc)(&ConnectListServers),
                (nint)(DispatchFunc)(&ConnectLookupServer),
                (nint)(DispatchFunc)(&ServerGetThreadpoolParameters),
                (nint)(DispatchFunc)(&ServerSetThreadpoolParameters),
                (nint)(DispatchFunc)(&ServerListClients),
                (nint)(DispatchFunc)(&ServerLookupClient),
                (nint)(DispatchFunc)(&ClientGetInfo),
                (nint)(DispatchFunc)(&ClientClose),
                (nint)(DispatchFunc)(&ServerGetClientLimits),
                (nint)(DispatchFunc)(&ServerSetClientLimits),
                (nint)(DispatchFunc)(&ConnectGetLoggingOutputs),
                (nint)(DispatchFunc)(&ConnectGetLoggingFilters),
                (nint)(DispatchFunc)(&ConnectSetLoggingOutputs),
                (nint)(DispatchFunc)(&ConnectSetLoggingFilters),
                (nint)(DispatchFunc)(&ServerUpdateTlsFiles),
                (nint)(DispatchFunc)(&ConnectSetDaemonTimeout),
            ]);

    // typed parameter names (libvirt-admin.h)
    private const string WorkersMin = "minWorkers", WorkersMax = "maxWorkers", WorkersPriority = "prioWorkers",
        WorkersFree = "freeWorkers", WorkersCurrent = "nWorkers", JobQueueDepth = "jobQueueDepth";
    private const string ClientsMax = "nclients_max", ClientsCurrent = "nclients",
        ClientsUnauthMax = "nclients_unauth_max", ClientsUnauthCurrent = "nclients_unauth";

    private static AdminClientState? State(virNetServerClient* client, string fn)
    {
        var s = AdminClient.State(client);
        if (s is null)
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn, "admin connection has no state");
        return s;
    }

    private static string Str(sbyte* p) => NativeUtf8.Read(p) ?? "";

    private static IAdminServer? NoServer(string name, string fn)
    {
        LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_NO_SERVER, fn, $"no server with matching name '{name}' found");
        return null;
    }

    private static void DisposeAll<T>(IReadOnlyList<T>? list) where T : IDisposable
    {
        if (list is null) return;
        foreach (var x in list) x.Dispose();
    }

    // ---- typed parameters on the wire ----

    /// <summary>Fills an rpcgen array of typed parameters (freed by libvirt
    /// with the reply). String values are left out unless allowed. On
    /// failure both outputs are null/0, as libvirt's zeroed ret already is.</summary>
    private static bool Serialize(IReadOnlyList<AdminTypedParam> ps, int limit, bool stringOk,
        out virAdminProtocolTypedParam* val, out uint len)
    {
        val = null;
        len = 0;
        if (ps.Count > limit)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsSerialize",
                $"too many parameters '{ps.Count}' for limit '{limit}'");
            return false;
        }
        var arr = (virAdminProtocolTypedParam*)GLib.g_malloc0((nuint)(Math.Max(ps.Count, 1) * sizeof(virAdminProtocolTypedParam)));
        uint n = 0;
        foreach (var p in ps)
        {
            if (p.Type == AdminParamType.String && !stringOk)
                continue;
            var d = &arr[n++];
            d->field = NativeUtf8.GStrdup(p.Field);
            d->value.type = (int)p.Type;
            ref var u = ref d->value.virAdminProtocolTypedParamValue_u;
            switch (p.Type)
            {
                case AdminParamType.Int: u.i = (int)p.Value; break;
                case AdminParamType.UInt: u.ui = (uint)p.Value; break;
                case AdminParamType.LLong: u.l = (nint)(long)p.Value; break;
                case AdminParamType.ULLong: u.ul = (nuint)(ulong)p.Value; break;
                case AdminParamType.Double: u.d = (double)p.Value; break;
                case AdminParamType.Boolean: u.b = (bool)p.Value ? 1 : 0; break;
                case AdminParamType.String: u.s = NativeUtf8.GStrdup((string)p.Value); break;
            }
        }
        if (n == 0)
        {
            GLib.g_free(arr);
            arr = null;
        }
        val = arr;
        len = n;
        return true;
    }

    private const int FieldLength = 80; // VIR_TYPED_PARAM_FIELD_LENGTH

    private static List<AdminTypedParam>? Deserialize(virAdminProtocolTypedParam* val, uint len, int limit)
    {
        if (limit != 0 && len > limit)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsDeserialize",
                $"too many parameters '{len}' for limit '{limit}'");
            return null;
        }
        var list = new List<AdminTypedParam>((int)len);
        for (uint i = 0; i < len; i++)
        {
            var r = &val[i];
            string field = Str(r->field);
            if (System.Text.Encoding.UTF8.GetByteCount(field) >= FieldLength)
            {
                LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "virTypedParamsDeserialize",
                    $"parameter {field} too big for destination");
                return null;
            }
            var u = r->value.virAdminProtocolTypedParamValue_u;
            object v;
            switch ((AdminParamType)r->value.type)
            {
                case AdminParamType.Int: v = u.i; break;
                case AdminParamType.UInt: v = u.ui; break;
                case AdminParamType.LLong: v = (long)u.l; break;
                case AdminParamType.ULLong: v = (ulong)u.ul; break;
                case AdminParamType.Double: v = u.d; break;
                case AdminParamType.Boolean: v = u.b != 0; break;
                case AdminParamType.String: v = Str(u.s); break;
                default:
                    LibvirtError.Report(virErrorDomain.VIR_FROM_NONE, virErrorNumber.VIR_ERR_RPC, "virTypedParamsDeserialize",
                        $"unknown parameter type: {r->value.type}");
                    return null;
            }
            list.Add(new AdminTypedParam(field, (AdminParamType)r->value.type, v));
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

    private static void FillClient(virAdminProtocolClient* dst, IAdminClient c, string serverName)
    {
        dst->id = (nuint)c.Id;
        dst->timestamp = (nint)c.Timestamp;
        dst->transport = c.Transport;
        dst->srv.name = NativeUtf8.GStrdup(serverName);
    }

    // ---- running a procedure ----

    /// <summary>The args or ret of a procedure that has none.</summary>
    private struct NoData;

    /// <summary>Runs one procedure on the connection's admin state (its
    /// absence an error); false from the body, or any exception (one
    /// escaping would kill the process), becomes the error reply.</summary>
    private static int Run<TArgs, TRet>(virNetServerClient* client, virNetMessageError* rerr, void* a, void* r, string fn,
        delegate*<AdminClientState, TArgs*, TRet*, string, bool> body) where TArgs : unmanaged where TRet : unmanaged
    {
        try
        {
            var st = State(client, fn);
            if (st is null || !body(st, (TArgs*)a, (TRet*)r, fn))
                return VirNetServerProgramError.Reply(rerr);
            return 0;
        }
        catch (Exception e) { return VirNetServerProgramError.Reply(rerr, FromThis, fn, e); }
    }

    /// <summary>As <see cref="Run"/>, on the server named
    /// <paramref name="name"/> (released after). As in the C daemons, some
    /// procedures replace the lookup's error with their own
    /// (<paramref name="reportMissing"/>).</summary>
    private static int RunOnServer<TArgs, TRet>(virNetServerClient* client, virNetMessageError* rerr, void* a, void* r,
        string fn, sbyte* name, bool reportMissing, delegate*<IAdminServer, TArgs*, TRet*, string, bool> body)
        where TArgs : unmanaged where TRet : unmanaged
    {
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null)
                return VirNetServerProgramError.Reply(rerr);
            string srvName = Str(name);
            if ((srv = st.Daemon.LookupServer(srvName)) is null)
            {
                if (reportMissing)
                    NoServer(srvName, fn);
                return VirNetServerProgramError.Reply(rerr);
            }
            return body(srv, (TArgs*)a, (TRet*)r, fn) ? 0 : VirNetServerProgramError.Reply(rerr);
        }
        catch (Exception e) { return VirNetServerProgramError.Reply(rerr, FromThis, fn, e); }
        finally { srv?.Dispose(); }
    }

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

    /// <summary>Sets the logging outputs or filters (a NULL string: the
    /// default), after the flags check.</summary>
    private static bool SetLogging(AdminClientState st, uint flags, sbyte** value, string api, bool filters)
    {
        string? s = value != null ? NativeUtf8.Read(*value) : null;
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, api))
            return false;
        return filters ? st.Daemon.SetLogFilters(s) : st.Daemon.SetLogOutputs(s);
    }

    // ---- procedures ----

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectOpen(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectOpenArgs, NoData>(client, rerr, a, r, "adminDispatchConnectOpen", &DoConnectOpen);

    private static bool DoConnectOpen(AdminClientState st, virAdminProtocolConnectOpenArgs* args, NoData* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, fn))
            return false;
        st.Opened = true;
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectClose(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<NoData, NoData>(client, rerr, a, r, "adminDispatchConnectClose", &DoConnectClose);

    private static bool DoConnectClose(AdminClientState st, NoData* args, NoData* ret, string fn)
    {
        st.Connection.CloseAfterReply();
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLibVersion(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<NoData, virAdminProtocolConnectGetLibVersionRet>(client, rerr, a, r, "adminDispatchConnectGetLibVersion",
            &DoConnectGetLibVersion);

    private static bool DoConnectGetLibVersion(AdminClientState st, NoData* args, virAdminProtocolConnectGetLibVersionRet* ret, string fn)
    {
        ret->libVer = virtshimCompiledVersion(); // the daemon's libvirt, 9.0.0
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectListServers(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectListServersArgs, virAdminProtocolConnectListServersRet>(client, rerr, a, r,
            "adminDispatchConnectListServers", &DoConnectListServers);

    private static bool DoConnectListServers(AdminClientState st, virAdminProtocolConnectListServersArgs* args,
        virAdminProtocolConnectListServersRet* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectListServers"))
            return false;
        var servers = st.Daemon.ListServers();
        if (servers is null)
            return false;
        try
        {
            int n = servers.Count;
            if (n > VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many servers '{n}' for limit '{VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX}'");
                return false;
            }
            if (args->need_results != 0 && n > 0)
            {
                var arr = (virAdminProtocolServer*)GLib.g_malloc0((nuint)(n * sizeof(virAdminProtocolServer)));
                for (int i = 0; i < n; i++)
                    arr[i].name = NativeUtf8.GStrdup(servers[i].Name);
                ret->servers.servers_val = arr;
                ret->servers.servers_len = (uint)n;
            }
            ret->ret = (uint)n;
            return true;
        }
        finally { DisposeAll(servers); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectLookupServer(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        // (the C daemons accept any flags here)
        => RunOnServer<virAdminProtocolConnectLookupServerArgs, virAdminProtocolConnectLookupServerRet>(client, rerr, a, r,
            "adminDispatchConnectLookupServer", ((virAdminProtocolConnectLookupServerArgs*)a)->name, false, &DoConnectLookupServer);

    private static bool DoConnectLookupServer(IAdminServer srv, virAdminProtocolConnectLookupServerArgs* args,
        virAdminProtocolConnectLookupServerRet* ret, string fn)
    {
        ret->srv.name = NativeUtf8.GStrdup(srv.Name);
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerGetThreadpoolParameters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerGetThreadpoolParametersArgs, virAdminProtocolServerGetThreadpoolParametersRet>(
            client, rerr, a, r, "adminDispatchServerGetThreadpoolParameters",
            ((virAdminProtocolServerGetThreadpoolParametersArgs*)a)->srv.name, false, &DoServerGetThreadpoolParameters);

    private static bool DoServerGetThreadpoolParameters(IAdminServer srv, virAdminProtocolServerGetThreadpoolParametersArgs* args,
        virAdminProtocolServerGetThreadpoolParametersRet* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerGetThreadPoolParameters"))
            return false;
        if (!srv.GetThreadPool(out var tp))
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "adminServerGetThreadPoolParameters",
                "Unable to retrieve threadpool parameters");
            return false;
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
        return Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX,
            false, out ret->@params.params_val, out ret->@params.params_len);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerSetThreadpoolParameters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerSetThreadpoolParametersArgs, NoData>(
            client, rerr, a, r, "adminDispatchServerSetThreadpoolParameters",
            ((virAdminProtocolServerSetThreadpoolParametersArgs*)a)->srv.name, true, &DoServerSetThreadpoolParameters);

    private static bool DoServerSetThreadpoolParameters(IAdminServer srv, virAdminProtocolServerSetThreadpoolParametersArgs* args,
        NoData* ret, string fn)
    {
        var ps = Deserialize(args->@params.params_val, args->@params.params_len,
            VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX);
        return ps is not null &&
            LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerSetThreadPoolParameters") &&
            Validate(ps, (WorkersMin, AdminParamType.UInt), (WorkersMax, AdminParamType.UInt),
                (WorkersPriority, AdminParamType.UInt)) &&
            srv.SetThreadPool(UIntOr(ps, WorkersMin), UIntOr(ps, WorkersMax), UIntOr(ps, WorkersPriority));
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerListClients(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerListClientsArgs, virAdminProtocolServerListClientsRet>(
            client, rerr, a, r, "adminDispatchServerListClients",
            ((virAdminProtocolServerListClientsArgs*)a)->srv.name, false, &DoServerListClients);

    private static bool DoServerListClients(IAdminServer srv, virAdminProtocolServerListClientsArgs* args,
        virAdminProtocolServerListClientsRet* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerListClients"))
            return false;
        var clients = srv.ListClients();
        if (clients is null)
            return false;
        try
        {
            int n = clients.Count;
            if (n > VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many clients '{n}' for limit '{VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX}'");
                return false;
            }
            if (args->need_results != 0 && n > 0)
            {
                var arr = (virAdminProtocolClient*)GLib.g_malloc0((nuint)(n * sizeof(virAdminProtocolClient)));
                string srvName = srv.Name;
                for (int i = 0; i < n; i++)
                    FillClient(&arr[i], clients[i], srvName);
                ret->clients.clients_val = arr;
                ret->clients.clients_len = (uint)n;
            }
            ret->ret = (uint)n;
            return true;
        }
        finally { DisposeAll(clients); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerLookupClient(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerLookupClientArgs, virAdminProtocolServerLookupClientRet>(
            client, rerr, a, r, "adminDispatchServerLookupClient",
            ((virAdminProtocolServerLookupClientArgs*)a)->srv.name, false, &DoServerLookupClient);

    private static bool DoServerLookupClient(IAdminServer srv, virAdminProtocolServerLookupClientArgs* args,
        virAdminProtocolServerLookupClientRet* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerLookupClient"))
            return false;
        using var clnt = srv.LookupClient((ulong)args->id);
        if (clnt is null)
            return false;
        FillClient(&ret->clnt, clnt, srv.Name);
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ClientGetInfo(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolClientGetInfoArgs, virAdminProtocolClientGetInfoRet>(
            client, rerr, a, r, "adminDispatchClientGetInfo",
            ((virAdminProtocolClientGetInfoArgs*)a)->clnt.srv.name, true, &DoClientGetInfo);

    private static bool DoClientGetInfo(IAdminServer srv, virAdminProtocolClientGetInfoArgs* args,
        virAdminProtocolClientGetInfoRet* ret, string fn)
    {
        ulong id = (ulong)args->clnt.id;
        using var clnt = srv.LookupClient(id);
        if (clnt is null)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_NO_CLIENT, fn, $"no client with matching id '{id}' found");
            return false;
        }
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminClientGetInfo"))
            return false;
        var ps = clnt.GetInfo();
        return ps is not null &&
            Serialize(ps, VIR_ADMIN_PROTOCOL_CLIENT_INFO_PARAMETERS_MAX,
                true, out ret->@params.params_val, out ret->@params.params_len);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ClientClose(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolClientCloseArgs, NoData>(
            client, rerr, a, r, "adminDispatchClientClose",
            ((virAdminProtocolClientCloseArgs*)a)->clnt.srv.name, false, &DoClientClose);

    private static bool DoClientClose(IAdminServer srv, virAdminProtocolClientCloseArgs* args, NoData* ret, string fn)
    {
        using var clnt = srv.LookupClient((ulong)args->clnt.id);
        if (clnt is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminClientClose"))
            return false;
        clnt.Close();
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerGetClientLimits(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerGetClientLimitsArgs, virAdminProtocolServerGetClientLimitsRet>(
            client, rerr, a, r, "adminDispatchServerGetClientLimits",
            ((virAdminProtocolServerGetClientLimitsArgs*)a)->srv.name, false, &DoServerGetClientLimits);

    private static bool DoServerGetClientLimits(IAdminServer srv, virAdminProtocolServerGetClientLimitsArgs* args,
        virAdminProtocolServerGetClientLimitsRet* ret, string fn)
    {
        if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerGetClientLimits"))
            return false;
        var l = srv.GetClientLimits();
        var ps = new[]
        {
            AdminTypedParam.UInt(ClientsMax, (uint)l.MaxClients),
            AdminTypedParam.UInt(ClientsCurrent, (uint)l.CurrentClients),
            AdminTypedParam.UInt(ClientsUnauthMax, (uint)l.MaxUnauthClients),
            AdminTypedParam.UInt(ClientsUnauthCurrent, (uint)l.CurrentUnauthClients),
        };
        return Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX,
            false, out ret->@params.params_val, out ret->@params.params_len);
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerSetClientLimits(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerSetClientLimitsArgs, NoData>(
            client, rerr, a, r, "adminDispatchServerSetClientLimits",
            ((virAdminProtocolServerSetClientLimitsArgs*)a)->srv.name, true, &DoServerSetClientLimits);

    private static bool DoServerSetClientLimits(IAdminServer srv, virAdminProtocolServerSetClientLimitsArgs* args,
        NoData* ret, string fn)
    {
        var ps = Deserialize(args->@params.params_val, args->@params.params_len,
            VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX);
        return ps is not null &&
            LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerSetClientLimits") &&
            Validate(ps, (ClientsMax, AdminParamType.UInt), (ClientsUnauthMax, AdminParamType.UInt)) &&
            srv.SetClientLimits(UIntOr(ps, ClientsMax), UIntOr(ps, ClientsUnauthMax));
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLoggingOutputs(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectGetLoggingOutputsArgs, virAdminProtocolConnectGetLoggingOutputsRet>(client, rerr, a, r,
            "adminDispatchConnectGetLoggingOutputs", &DoConnectGetLoggingOutputs);

    private static bool DoConnectGetLoggingOutputs(AdminClientState st, virAdminProtocolConnectGetLoggingOutputsArgs* args,
        virAdminProtocolConnectGetLoggingOutputsRet* ret, string fn)
    {
        if (!GetLogging(st, args->flags, "adminConnectGetLoggingOutputs", filters: false, out var outputs, out int n))
            return false;
        ret->outputs = NativeUtf8.GStrdup(outputs);
        ret->noutputs = (uint)n;
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLoggingFilters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectGetLoggingFiltersArgs, virAdminProtocolConnectGetLoggingFiltersRet>(client, rerr, a, r,
            "adminDispatchConnectGetLoggingFilters", &DoConnectGetLoggingFilters);

    private static bool DoConnectGetLoggingFilters(AdminClientState st, virAdminProtocolConnectGetLoggingFiltersArgs* args,
        virAdminProtocolConnectGetLoggingFiltersRet* ret, string fn)
    {
        if (!GetLogging(st, args->flags, "adminConnectGetLoggingFilters", filters: true, out var filters, out int n) || n < 0)
            return false;
        if (n > 0)
        {
            var box = (sbyte**)GLib.g_malloc0((nuint)sizeof(sbyte*));
            *box = NativeUtf8.GStrdup(filters);
            ret->filters = box;
        }
        ret->nfilters = (uint)n;
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetLoggingOutputs(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectSetLoggingOutputsArgs, NoData>(client, rerr, a, r,
            "adminDispatchConnectSetLoggingOutputs", &DoConnectSetLoggingOutputs);

    private static bool DoConnectSetLoggingOutputs(AdminClientState st, virAdminProtocolConnectSetLoggingOutputsArgs* args,
        NoData* ret, string fn)
        => SetLogging(st, args->flags, args->outputs, "adminConnectSetLoggingOutputs", filters: false);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetLoggingFilters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectSetLoggingFiltersArgs, NoData>(client, rerr, a, r,
            "adminDispatchConnectSetLoggingFilters", &DoConnectSetLoggingFilters);

    private static bool DoConnectSetLoggingFilters(AdminClientState st, virAdminProtocolConnectSetLoggingFiltersArgs* args,
        NoData* ret, string fn)
        => SetLogging(st, args->flags, args->filters, "adminConnectSetLoggingFilters", filters: true);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerUpdateTlsFiles(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => RunOnServer<virAdminProtocolServerUpdateTlsFilesArgs, NoData>(
            client, rerr, a, r, "adminDispatchServerUpdateTlsFiles",
            ((virAdminProtocolServerUpdateTlsFilesArgs*)a)->srv.name, false, &DoServerUpdateTlsFiles);

    private static bool DoServerUpdateTlsFiles(IAdminServer srv, virAdminProtocolServerUpdateTlsFilesArgs* args,
        NoData* ret, string fn)
        => LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerUpdateTlsFiles") && srv.UpdateTlsFiles();

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetDaemonTimeout(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
        => Run<virAdminProtocolConnectSetDaemonTimeoutArgs, NoData>(client, rerr, a, r,
            "adminDispatchConnectSetDaemonTimeout", &DoConnectSetDaemonTimeout);

    private static bool DoConnectSetDaemonTimeout(AdminClientState st, virAdminProtocolConnectSetDaemonTimeoutArgs* args,
        NoData* ret, string fn)
        => LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectSetDaemonTimeout") &&
            st.Daemon.SetAutoShutdown(args->timeout);
}
