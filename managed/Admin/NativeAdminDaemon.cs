using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Admin;

/// <summary>The admin objects over libvirt's own virNetDaemon,
/// virNetServer and virNetServerClient: the one place the admin program's
/// errors come from libvirt's per-thread last error.</summary>
public sealed unsafe class NativeAdminDaemon(virNetDaemon* dmn) : IAdminDaemon
{
    /// <summary>The error the failed libvirt call left, as a value (and
    /// reset). With none set, what libvirt would put in the reply then
    /// (virNetMessageSaveError's fallback).</summary>
    internal static VirError LastError()
    {
        var e = virGetLastError();
        return e == null || e->code == 0 ? NoErrorSet : VirErrorNative.TakeLast();
    }

    /// <summary>What libvirt replies for a failure that set no error.</summary>
    internal static readonly VirError NoErrorSet = new((int)virErrorNumber.VIR_ERR_INTERNAL_ERROR, (int)virErrorDomain.VIR_FROM_RPC,
        "Library function returned error but did not set virError", Int1: 0, Int2: 0) { Logged = true };

    internal static VirResult Done(int rc) => rc >= 0 ? VirResult.Success : LastError();

    public VirResult<IReadOnlyList<IAdminServer>> ListServers()
    {
        virNetServer** srvs = null;
        nint n = virNetDaemonGetServers(dmn, &srvs);
        if (n < 0)
            return LastError();
        var list = new List<IAdminServer>((int)n);
        for (nint i = 0; i < n; i++)
            list.Add(new NativeAdminServer(srvs[i])); // takes over the reference
        GLib.g_free(srvs);
        return list;
    }

    public VirResult<IAdminServer> LookupServer(string name)
    {
        using var n = new NativeUtf8(name);
        var srv = virNetDaemonGetServer(dmn, n);
        return srv == null ? LastError() : new NativeAdminServer(srv);
    }

    /// <summary>Through the daemon's wrapper: with the managed event loop,
    /// the idle timeout is its run loop's.</summary>
    public VirResult SetAutoShutdown(uint timeout)
        => Done(VirNetDaemonNative.FromHandle(dmn) is { } daemon
            ? daemon.AutoShutdown(timeout)
            : virNetDaemonAutoShutdown(dmn, timeout));

    /// <summary>The daemon's logging implementation (logging_impl);
    /// libvirt's own when the daemon has none set.</summary>
    private IVirLog Logging => VirNetDaemonNative.FromHandle(dmn)?.Logging ?? new VirLogNative();

    public VirResult<string> GetLogOutputs(out int count) => AdminLogging.GetOutputs(Logging, out count);

    public VirResult<string> GetLogFilters(out int count) => AdminLogging.GetFilters(Logging, out count);

    public VirResult SetLogOutputs(string? outputs) => Logging.SetOutputs(outputs);

    public VirResult SetLogFilters(string? filters) => Logging.SetFilters(filters);
}

/// <summary>The admin logging procedures over a daemon's logging
/// implementation, whichever RPC layer serves them.</summary>
internal static class AdminLogging
{
    public static VirResult<string> GetOutputs(IVirLog log, out int count)
    {
        count = 0;
        // as admin_server.c: no outputs is virLogGetOutputs' NULL with no
        // error set, so the reply carries libvirt's fallback
        if (log.OutputCount == 0)
            return NativeAdminDaemon.NoErrorSet;
        if (!log.GetOutputs().TryGet(out var s, out var err))
            return err!;
        count = log.OutputCount;
        return s;
    }

    public static VirResult<string> GetFilters(IVirLog log, out int count)
    {
        count = log.FilterCount;
        return count <= 0 ? "" : log.GetFilters();
    }
}

/// <summary>Owns one reference to a virNetServer.</summary>
public sealed unsafe class NativeAdminServer(virNetServer* srv) : IAdminServer
{
    private virNetServer* _srv = srv;

    public string Name => NativeUtf8.Read(virNetServerGetName(_srv)) ?? "";

    public VirResult<AdminThreadPool> GetThreadPool()
    {
        nuint min, max, cur, free, prio, depth;
        if (virNetServerGetThreadPoolParameters(_srv, &min, &max, &cur, &free, &prio, &depth) < 0)
            return NativeAdminDaemon.LastError();
        return new AdminThreadPool(min, max, cur, free, prio, depth);
    }

    public VirResult SetThreadPool(long minWorkers, long maxWorkers, long priorityWorkers)
        => NativeAdminDaemon.Done(virNetServerSetThreadPoolParameters(_srv, minWorkers, maxWorkers, priorityWorkers));

    public VirResult<IReadOnlyList<IAdminClient>> ListClients()
    {
        virNetServerClient** clts = null;
        int n = virNetServerGetClients(_srv, &clts);
        if (n < 0)
            return NativeAdminDaemon.LastError();
        var list = new List<IAdminClient>(n);
        for (int i = 0; i < n; i++)
            list.Add(new NativeAdminClient(clts[i], owned: true));
        GLib.g_free(clts);
        return list;
    }

    public VirResult<IAdminClient> LookupClient(ulong id)
    {
        var c = virNetServerGetClient(_srv, id);
        return c == null ? NativeAdminDaemon.LastError() : new NativeAdminClient(c, owned: true);
    }

    public AdminClientLimits GetClientLimits() => new(
        virNetServerGetMaxClients(_srv), virNetServerGetCurrentClients(_srv),
        virNetServerGetMaxUnauthClients(_srv), virNetServerGetCurrentUnauthClients(_srv));

    public VirResult SetClientLimits(long maxClients, long maxUnauthClients)
        => NativeAdminDaemon.Done(virNetServerSetClientLimits(_srv, maxClients, maxUnauthClients));

    public VirResult UpdateTlsFiles() => NativeAdminDaemon.Done(virNetServerUpdateTlsFiles(_srv));

    public void Dispose()
    {
        if (_srv != null)
            virObjectUnref(_srv);
        _srv = null;
    }
}

/// <summary>A virNetServerClient; owns a reference unless it wraps the
/// calling connection itself.</summary>
public sealed unsafe class NativeAdminClient(virNetServerClient* client, bool owned) : IAdminClient
{
    private virNetServerClient* _client = client;

    public ulong Id => virNetServerClientGetID(_client);
    public long Timestamp => virNetServerClientGetTimestamp(_client);
    public uint Transport => (uint)virNetServerClientGetTransport(_client);

    public void Close() => virNetServerClientClose(_client);
    public void CloseAfterReply() => virNetServerClientDelayedClose(_client);

    public VirResult<IReadOnlyList<AdminTypedParam>> GetInfo()
    {
        byte ro;
        sbyte* sockAddr = null;
        virIdentity* ident = null;
        if (virNetServerClientGetInfo(_client, &ro, &sockAddr, &ident) < 0)
            return NativeAdminDaemon.LastError();
        try
        {
            var list = new List<AdminTypedParam> { AdminTypedParam.Bool("readonly", ro != 0) };
            sbyte* attr;
            int rc;
            if ((rc = virIdentityGetSASLUserName(ident, &attr)) < 0) return NativeAdminDaemon.LastError();
            if (rc == 1) list.Add(AdminTypedParam.Str("sasl_user_name", NativeUtf8.Read(attr)!));
            if (virNetServerClientIsLocal(_client) == 0)
            {
                list.Add(AdminTypedParam.Str("sock_addr", NativeUtf8.Read(sockAddr)!));
                if ((rc = virIdentityGetX509DName(ident, &attr)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Str("tls_x509_dname", NativeUtf8.Read(attr)!));
            }
            else
            {
                uint uid, gid;
                int pid;
                if ((rc = virIdentityGetUNIXUserID(ident, &uid)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_user_id", (int)uid));
                if ((rc = virIdentityGetUserName(ident, &attr)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Str("unix_user_name", NativeUtf8.Read(attr)!));
                if ((rc = virIdentityGetUNIXGroupID(ident, &gid)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_group_id", (int)gid));
                if ((rc = virIdentityGetGroupName(ident, &attr)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Str("unix_group_name", NativeUtf8.Read(attr)!));
                if ((rc = virIdentityGetProcessID(ident, &pid)) < 0) return NativeAdminDaemon.LastError();
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_process_id", pid));
            }
            if ((rc = virIdentityGetSELinuxContext(ident, &attr)) < 0) return NativeAdminDaemon.LastError();
            if (rc == 1) list.Add(AdminTypedParam.Str("selinux_context", NativeUtf8.Read(attr)!));
            return list;
        }
        finally
        {
            GLib.g_free(sockAddr);
            if (ident != null)
                virObjectUnref(ident);
        }
    }

    public void Dispose()
    {
        if (owned && _client != null)
            virObjectUnref(_client);
        _client = null;
    }
}
