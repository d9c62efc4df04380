using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;
using unsafe DispatchFunc = delegate* unmanaged[Cdecl]<Libvirt.Interop.virNetServer*, Libvirt.Interop.virNetServerClient*, Libvirt.Interop.virNetMessage*, Libvirt.Interop.virNetMessageError*, void*, void*, int>;

namespace Libvirt.Host.Admin;

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
        => ServerProgramTable.NewProgram((uint)VIR_ADMIN_PROTOCOL_PROGRAM, (uint)VIR_ADMIN_PROTOCOL_PROGRAM_VERSION,
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

    private static int Fail(virNetMessageError* rerr, string fn, Exception? e = null)
    {
        if (e is not null)
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn, e.Message);
        virNetMessageSaveError(rerr);
        return -1;
    }

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
    /// with the reply). String values are left out unless allowed.</summary>
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

    // ---- procedures ----

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectOpen(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectOpen";
        var args = (virAdminProtocolConnectOpenArgs*)a;
        try
        {
            var st = State(client, fn);
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, fn))
                return Fail(rerr, fn);
            st.Opened = true;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectClose(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectClose";
        try
        {
            var st = State(client, fn);
            if (st is null)
                return Fail(rerr, fn);
            st.Connection.CloseAfterReply();
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLibVersion(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectGetLibVersion";
        var ret = (virAdminProtocolConnectGetLibVersionRet*)r;
        try
        {
            if (State(client, fn) is null)
                return Fail(rerr, fn);
            ret->libVer = virtshimCompiledVersion(); // the daemon's libvirt, 9.0.0
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectListServers(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectListServers";
        var args = (virAdminProtocolConnectListServersArgs*)a;
        var ret = (virAdminProtocolConnectListServersRet*)r;
        IReadOnlyList<IAdminServer>? servers = null;
        try
        {
            var st = State(client, fn);
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectListServers"))
                return Fail(rerr, fn);
            servers = st.Daemon.ListServers();
            if (servers is null)
                return Fail(rerr, fn);
            int n = servers.Count;
            if (n > VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many servers '{n}' for limit '{VIR_ADMIN_PROTOCOL_SERVER_LIST_MAX}'");
                return Fail(rerr, fn);
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
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { DisposeAll(servers); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectLookupServer(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectLookupServer";
        var args = (virAdminProtocolConnectLookupServerArgs*)a;
        var ret = (virAdminProtocolConnectLookupServerRet*)r;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            // (the C daemons accept any flags here)
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->name))) is null)
                return Fail(rerr, fn);
            ret->srv.name = NativeUtf8.GStrdup(srv.Name);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerGetThreadpoolParameters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerGetThreadpoolParameters";
        var args = (virAdminProtocolServerGetThreadpoolParametersArgs*)a;
        var ret = (virAdminProtocolServerGetThreadpoolParametersRet*)r;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->srv.name))) is null)
                return Fail(rerr, fn);
            if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerGetThreadPoolParameters"))
                return Fail(rerr, fn);
            if (!srv.GetThreadPool(out var tp))
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "adminServerGetThreadPoolParameters",
                    "Unable to retrieve threadpool parameters");
                return Fail(rerr, fn);
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
            if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX, false, out var val, out var len))
                return Fail(rerr, fn);
            ret->@params.params_val = val;
            ret->@params.params_len = len;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerSetThreadpoolParameters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerSetThreadpoolParameters";
        var args = (virAdminProtocolServerSetThreadpoolParametersArgs*)a;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null)
                return Fail(rerr, fn);
            string name = Str(args->srv.name);
            if ((srv = st.Daemon.LookupServer(name)) is null)
            {
                NoServer(name, fn);
                return Fail(rerr, fn);
            }
            var ps = Deserialize(args->@params.params_val, args->@params.params_len,
                VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX);
            if (ps is null ||
                !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerSetThreadPoolParameters") ||
                !Validate(ps, (WorkersMin, AdminParamType.UInt), (WorkersMax, AdminParamType.UInt),
                    (WorkersPriority, AdminParamType.UInt)) ||
                !srv.SetThreadPool(UIntOr(ps, WorkersMin), UIntOr(ps, WorkersMax), UIntOr(ps, WorkersPriority)))
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerListClients(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerListClients";
        var args = (virAdminProtocolServerListClientsArgs*)a;
        var ret = (virAdminProtocolServerListClientsRet*)r;
        IAdminServer? srv = null;
        IReadOnlyList<IAdminClient>? clients = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->srv.name))) is null)
                return Fail(rerr, fn);
            if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerListClients") ||
                (clients = srv.ListClients()) is null)
                return Fail(rerr, fn);
            int n = clients.Count;
            if (n > VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Too many clients '{n}' for limit '{VIR_ADMIN_PROTOCOL_CLIENT_LIST_MAX}'");
                return Fail(rerr, fn);
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
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally
        {
            DisposeAll(clients);
            srv?.Dispose();
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerLookupClient(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerLookupClient";
        var args = (virAdminProtocolServerLookupClientArgs*)a;
        var ret = (virAdminProtocolServerLookupClientRet*)r;
        IAdminServer? srv = null;
        IAdminClient? clnt = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->srv.name))) is null)
                return Fail(rerr, fn);
            if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerLookupClient") ||
                (clnt = srv.LookupClient((ulong)args->id)) is null)
                return Fail(rerr, fn);
            FillClient(&ret->clnt, clnt, srv.Name);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally
        {
            clnt?.Dispose();
            srv?.Dispose();
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ClientGetInfo(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchClientGetInfo";
        var args = (virAdminProtocolClientGetInfoArgs*)a;
        var ret = (virAdminProtocolClientGetInfoRet*)r;
        IAdminServer? srv = null;
        IAdminClient? clnt = null;
        try
        {
            var st = State(client, fn);
            if (st is null)
                return Fail(rerr, fn);
            string name = Str(args->clnt.srv.name);
            if ((srv = st.Daemon.LookupServer(name)) is null)
            {
                NoServer(name, fn);
                return Fail(rerr, fn);
            }
            ulong id = (ulong)args->clnt.id;
            if ((clnt = srv.LookupClient(id)) is null)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_NO_CLIENT, fn, $"no client with matching id '{id}' found");
                return Fail(rerr, fn);
            }
            if (!LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminClientGetInfo"))
                return Fail(rerr, fn);
            var ps = clnt.GetInfo();
            if (ps is null ||
                !Serialize(ps, VIR_ADMIN_PROTOCOL_CLIENT_INFO_PARAMETERS_MAX, true, out var val, out var len))
                return Fail(rerr, fn);
            ret->@params.params_val = val;
            ret->@params.params_len = len;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally
        {
            clnt?.Dispose();
            srv?.Dispose();
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ClientClose(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchClientClose";
        var args = (virAdminProtocolClientCloseArgs*)a;
        IAdminServer? srv = null;
        IAdminClient? clnt = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->clnt.srv.name))) is null ||
                (clnt = srv.LookupClient((ulong)args->clnt.id)) is null ||
                !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminClientClose"))
                return Fail(rerr, fn);
            clnt.Close();
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally
        {
            clnt?.Dispose();
            srv?.Dispose();
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerGetClientLimits(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerGetClientLimits";
        var args = (virAdminProtocolServerGetClientLimitsArgs*)a;
        var ret = (virAdminProtocolServerGetClientLimitsRet*)r;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->srv.name))) is null ||
                !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerGetClientLimits"))
                return Fail(rerr, fn);
            var l = srv.GetClientLimits();
            var ps = new[]
            {
                AdminTypedParam.UInt(ClientsMax, (uint)l.MaxClients),
                AdminTypedParam.UInt(ClientsCurrent, (uint)l.CurrentClients),
                AdminTypedParam.UInt(ClientsUnauthMax, (uint)l.MaxUnauthClients),
                AdminTypedParam.UInt(ClientsUnauthCurrent, (uint)l.CurrentUnauthClients),
            };
            if (!Serialize(ps, VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX, false, out var val, out var len))
                return Fail(rerr, fn);
            ret->@params.params_val = val;
            ret->@params.params_len = len;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerSetClientLimits(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerSetClientLimits";
        var args = (virAdminProtocolServerSetClientLimitsArgs*)a;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null)
                return Fail(rerr, fn);
            string name = Str(args->srv.name);
            if ((srv = st.Daemon.LookupServer(name)) is null)
            {
                NoServer(name, fn);
                return Fail(rerr, fn);
            }
            var ps = Deserialize(args->@params.params_val, args->@params.params_len,
                VIR_ADMIN_PROTOCOL_SERVER_CLIENT_LIMITS_MAX);
            if (ps is null ||
                !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerSetClientLimits") ||
                !Validate(ps, (ClientsMax, AdminParamType.UInt), (ClientsUnauthMax, AdminParamType.UInt)) ||
                !srv.SetClientLimits(UIntOr(ps, ClientsMax), UIntOr(ps, ClientsUnauthMax)))
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLoggingOutputs(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectGetLoggingOutputs";
        var args = (virAdminProtocolConnectGetLoggingOutputsArgs*)a;
        var ret = (virAdminProtocolConnectGetLoggingOutputsRet*)r;
        try
        {
            var st = State(client, fn);
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectGetLoggingOutputs"))
                return Fail(rerr, fn);
            var outputs = st.Daemon.GetLogOutputs(out int n);
            if (outputs is null)
                return Fail(rerr, fn);
            ret->outputs = NativeUtf8.GStrdup(outputs);
            ret->noutputs = (uint)n;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectGetLoggingFilters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectGetLoggingFilters";
        var args = (virAdminProtocolConnectGetLoggingFiltersArgs*)a;
        var ret = (virAdminProtocolConnectGetLoggingFiltersRet*)r;
        try
        {
            var st = State(client, fn);
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectGetLoggingFilters"))
                return Fail(rerr, fn);
            var filters = st.Daemon.GetLogFilters(out int n);
            if (filters is null || n < 0)
                return Fail(rerr, fn);
            if (n > 0)
            {
                var box = (sbyte**)GLib.g_malloc0((nuint)sizeof(sbyte*));
                *box = NativeUtf8.GStrdup(filters);
                ret->filters = box;
            }
            ret->nfilters = (uint)n;
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetLoggingOutputs(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectSetLoggingOutputs";
        var args = (virAdminProtocolConnectSetLoggingOutputsArgs*)a;
        try
        {
            var st = State(client, fn);
            string? outputs = args->outputs != null ? NativeUtf8.Read(*args->outputs) : null;
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectSetLoggingOutputs") ||
                !st.Daemon.SetLogOutputs(outputs))
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetLoggingFilters(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectSetLoggingFilters";
        var args = (virAdminProtocolConnectSetLoggingFiltersArgs*)a;
        try
        {
            var st = State(client, fn);
            string? filters = args->filters != null ? NativeUtf8.Read(*args->filters) : null;
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectSetLoggingFilters") ||
                !st.Daemon.SetLogFilters(filters))
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ServerUpdateTlsFiles(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchServerUpdateTlsFiles";
        var args = (virAdminProtocolServerUpdateTlsFilesArgs*)a;
        IAdminServer? srv = null;
        try
        {
            var st = State(client, fn);
            if (st is null || (srv = st.Daemon.LookupServer(Str(args->srv.name))) is null ||
                !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminServerUpdateTlsFiles") ||
                !srv.UpdateTlsFiles())
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
        finally { srv?.Dispose(); }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int ConnectSetDaemonTimeout(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "adminDispatchConnectSetDaemonTimeout";
        var args = (virAdminProtocolConnectSetDaemonTimeoutArgs*)a;
        try
        {
            var st = State(client, fn);
            if (st is null || !LibvirtError.CheckFlags(FromThis, args->flags, 0, "adminConnectSetDaemonTimeout") ||
                !st.Daemon.SetAutoShutdown(args->timeout))
                return Fail(rerr, fn);
            return 0;
        }
        catch (Exception e) { return Fail(rerr, fn, e); }
    }
}
