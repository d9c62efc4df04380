using Libvirt.Rpc;
using Libvirt.Util;

namespace Libvirt.Admin;

/// <summary>
/// The admin objects over the managed RPC core (rpc_impl = "managed"):
/// <see cref="VirNetDaemon"/>, <see cref="VirNetServer"/> and
/// <see cref="VirNetServerClient"/>, with the errors libvirt's
/// virnetdaemon.c, virnetserver.c and virthreadpool.c report for the same
/// requests. Everything runs on the loop thread (the admin program is
/// dispatched there), so the server and client lists need no lock.
/// </summary>
public sealed class ManagedAdminDaemon(VirNetDaemon dmn) : IAdminDaemon
{
    /// <summary>virNetDaemonGetServers: every server. libvirt's come out of a
    /// hash table, in no fixed order; these in the order they were added.</summary>
    public VirResult<IReadOnlyList<IAdminServer>> ListServers()
    {
        var list = new List<IAdminServer>();
        foreach (var s in dmn.Servers)
            list.Add(new ManagedAdminServer(s));
        return list;
    }

    public VirResult<IAdminServer> LookupServer(string name)
        => dmn.GetServer(name) is { } s
            ? new ManagedAdminServer(s)
            : VirError.Report(VirErrorDomain.Rpc, VirErrorCode.NoServer, $"No server named '{name}'").At("virNetDaemonGetServer");

    public VirResult SetAutoShutdown(uint timeout) => dmn.AutoShutdown(timeout);

    private IVirLog Logging => dmn.Logging ?? new VirLogNative();

    public VirResult<string> GetLogOutputs(out int count) => AdminLogging.GetOutputs(Logging, out count);

    public VirResult<string> GetLogFilters(out int count) => AdminLogging.GetFilters(Logging, out count);

    public VirResult SetLogOutputs(string? outputs) => Logging.SetOutputs(outputs);

    public VirResult SetLogFilters(string? filters) => Logging.SetFilters(filters);

    /// <summary>An admin connection's state on the managed "admin" server:
    /// only the daemon's own uid may connect, as remoteAdmClientNew allows.</summary>
    public static VirResult<object> ClientNew(VirNetDaemon dmn, VirNetServerClient client)
    {
        if (!client.GetUNIXIdentity().TryGet(out var peer, out var err))
            return err!;
        if (peer.Uid != Libc.geteuid())
            return VirError.Report(VirErrorDomain.Admin, VirErrorCode.OperationDenied,
                $"Disallowing client {peer.Pid} with uid {peer.Uid}").At("remoteAdmClientNew");
        return new AdminClientState(new ManagedAdminDaemon(dmn), new ManagedAdminClient(client));
    }
}

/// <summary>One managed server. The managed core has no worker pool
/// (every call is dispatched on the loop thread, as these daemons' C servers
/// run with none): the pool's parameters are kept with virThreadPool's rules,
/// all zero unless changed, and no thread is ever started.</summary>
public sealed class ManagedAdminServer(VirNetServer srv) : IAdminServer
{
    public string Name => srv.Name;

    public VirResult<AdminThreadPool> GetThreadPool()
        => new AdminThreadPool((ulong)srv.MinWorkers, (ulong)srv.MaxWorkers, 0, 0, (ulong)srv.PriorityWorkers, 0);

    public VirResult SetThreadPool(long minWorkers, long maxWorkers, long priorityWorkers)
        => srv.SetThreadPoolParameters(minWorkers, maxWorkers, priorityWorkers);

    public VirResult<IReadOnlyList<IAdminClient>> ListClients()
    {
        var list = new List<IAdminClient>();
        foreach (var c in srv.Clients)
            if (!c.IsClosed)
                list.Add(new ManagedAdminClient(c));
        return list;
    }

    public VirResult<IAdminClient> LookupClient(ulong id)
    {
        foreach (var c in srv.Clients)
            if (c.Id == id && !c.IsClosed)
                return new ManagedAdminClient(c);
        return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.NoClient, $"No client with matching ID '{id}'").At("virNetServerGetClient");
    }

    public AdminClientLimits GetClientLimits()
        => new((ulong)srv.MaxClients, (ulong)srv.CurrentClients, (ulong)srv.MaxAnonymousClients, (ulong)srv.CurrentUnauthClients);

    public VirResult SetClientLimits(long maxClients, long maxUnauthClients) => srv.SetClientLimits(maxClients, maxUnauthClients);

    /// <summary>No TLS in the managed core, as in these daemons' C servers.</summary>
    public VirResult UpdateTlsFiles()
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "no tls service found, unable to update tls files")
            .At("virNetServerUpdateTlsFiles");

    public void Dispose()
    {
    }
}

/// <summary>One managed client.</summary>
public sealed class ManagedAdminClient(VirNetServerClient client) : IAdminClient
{
    public ulong Id => client.Id;
    public long Timestamp => client.Timestamp;
    public uint Transport => 0; // VIR_CLIENT_TRANS_UNIX: the managed core serves UNIX sockets only

    public void Close() => client.Close();
    public void CloseAfterReply() => client.DelayedClose();

    /// <summary>virNetServerClientGetInfo with the identity
    /// virNetServerClientCreateIdentity makes of a UNIX peer: readonly, then
    /// uid, user name, gid, group name and pid; none for a client that has
    /// not made a call yet, as libvirt makes it at the first call; last the
    /// peer's security label when it has one (selinux_context; never where no
    /// security module labels sockets). libvirt reads the identity once, at
    /// the first call (where a failure fails that call); this reads it when
    /// asked, so such a failure is this answer's error instead.</summary>
    public VirResult<IReadOnlyList<AdminTypedParam>> GetInfo()
    {
        if (!client.HasIdentity)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "No identity information available for client")
                .At("virNetServerClientGetInfo");
        if (!client.GetUNIXIdentity().TryGet(out var peer, out var err))
            return err!;
        string? user = Libc.UserName(peer.Uid, out int errno);
        if (user is null)
            return errno != 0
                ? VirError.System(VirErrorDomain.None, errno, $"Failed to find user record for uid '{peer.Uid}'")
                : VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, $"Failed to find user record for uid '{peer.Uid}'");
        string? group = Libc.GroupName(peer.Gid, out errno);
        if (group is null)
            return errno != 0
                ? VirError.System(VirErrorDomain.None, errno, $"Failed to find group record for gid '{peer.Gid}'")
                : VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, $"Failed to find group record for gid '{peer.Gid}'");
        var list = new List<AdminTypedParam>
        {
            AdminTypedParam.Bool("readonly", client.ReadOnly),
            AdminTypedParam.Int("unix_user_id", (int)peer.Uid),
            AdminTypedParam.Str("unix_user_name", user),
            AdminTypedParam.Int("unix_group_id", (int)peer.Gid),
            AdminTypedParam.Str("unix_group_name", group),
            AdminTypedParam.Int("unix_process_id", peer.Pid),
        };
        if (!client.GetSELinuxContext().TryGet(out var label, out err))
            return err!;
        if (label is not null)
            list.Add(AdminTypedParam.Str("selinux_context", label));
        return list;
    }

    public void Dispose()
    {
    }
}
