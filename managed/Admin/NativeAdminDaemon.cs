using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Admin;

/// <summary>The admin objects over libvirt's own virNetDaemon,
/// virNetServer and virNetServerClient.</summary>
public sealed unsafe class NativeAdminDaemon(virNetDaemon* dmn) : IAdminDaemon
{
    public IReadOnlyList<IAdminServer>? ListServers()
    {
        virNetServer** srvs = null;
        nint n = virNetDaemonGetServers(dmn, &srvs);
        if (n < 0)
            return null;
        var list = new List<IAdminServer>((int)n);
        for (nint i = 0; i < n; i++)
            list.Add(new NativeAdminServer(srvs[i])); // takes over the reference
        GLib.g_free(srvs);
        return list;
    }

    public IAdminServer? LookupServer(string name)
    {
        using var n = new NativeUtf8(name);
        var srv = virNetDaemonGetServer(dmn, n);
        return srv == null ? null : new NativeAdminServer(srv);
    }

    /// <summary>Through the daemon's wrapper: with the managed event loop,
    /// the idle timeout is its run loop's.</summary>
    public bool SetAutoShutdown(uint timeout)
        => (VirNetDaemonNative.FromHandle(dmn) is { } daemon
            ? daemon.AutoShutdown(timeout)
            : virNetDaemonAutoShutdown(dmn, timeout)) >= 0;

    /// <summary>The daemon's logging implementation (logging_impl);
    /// libvirt's own when the daemon has none set.</summary>
    private IVirLog Logging => VirNetDaemonNative.FromHandle(dmn)?.Logging ?? new VirLogNative();

    // The admin program takes failures from libvirt's last error: error
    // values of the logging contract are raised there (the native adapter's
    // were taken from it, so they are put back as they were, not logged twice).
    private static bool Raised(VirResult r, string function)
    {
        if (!r.Ok)
            VirErrorNative.Raise(r.Error!, function);
        return r.Ok;
    }

    public string? GetLogOutputs(out int count)
    {
        var log = Logging;
        count = 0;
        // as admin_server.c: no outputs is a failure without an error (virLogGetOutputs' NULL)
        if (log.OutputCount == 0)
            return null;
        var s = log.GetOutputs();
        if (!s.Ok)
        {
            VirErrorNative.Raise(s.Error!, "virLogGetOutputs");
            return null;
        }
        count = log.OutputCount;
        return s.Value;
    }

    public string? GetLogFilters(out int count)
    {
        var log = Logging;
        count = log.FilterCount;
        return count <= 0 ? "" : log.GetFilters();
    }

    public bool SetLogOutputs(string? outputs) => Raised(Logging.SetOutputs(outputs), "virLogSetOutputs");

    public bool SetLogFilters(string? filters) => Raised(Logging.SetFilters(filters), "virLogSetFilters");
}

/// <summary>Owns one reference to a virNetServer.</summary>
public sealed unsafe class NativeAdminServer(virNetServer* srv) : IAdminServer
{
    private virNetServer* _srv = srv;

    public string Name => NativeUtf8.Read(virNetServerGetName(_srv)) ?? "";

    public bool GetThreadPool(out AdminThreadPool pool)
    {
        nuint min, max, cur, free, prio, depth;
        if (virNetServerGetThreadPoolParameters(_srv, &min, &max, &cur, &free, &prio, &depth) < 0)
        {
            pool = default;
            return false;
        }
        pool = new AdminThreadPool(min, max, cur, free, prio, depth);
        return true;
    }

    public bool SetThreadPool(long minWorkers, long maxWorkers, long priorityWorkers)
        => virNetServerSetThreadPoolParameters(_srv, minWorkers, maxWorkers, priorityWorkers) >= 0;

    public IReadOnlyList<IAdminClient>? ListClients()
    {
        virNetServerClient** clts = null;
        int n = virNetServerGetClients(_srv, &clts);
        if (n < 0)
            return null;
        var list = new List<IAdminClient>(n);
        for (int i = 0; i < n; i++)
            list.Add(new NativeAdminClient(clts[i], owned: true));
        GLib.g_free(clts);
        return list;
    }

    public IAdminClient? LookupClient(ulong id)
    {
        var c = virNetServerGetClient(_srv, id);
        return c == null ? null : new NativeAdminClient(c, owned: true);
    }

    public AdminClientLimits GetClientLimits() => new(
        virNetServerGetMaxClients(_srv), virNetServerGetCurrentClients(_srv),
        virNetServerGetMaxUnauthClients(_srv), virNetServerGetCurrentUnauthClients(_srv));

    public bool SetClientLimits(long maxClients, long maxUnauthClients)
        => virNetServerSetClientLimits(_srv, maxClients, maxUnauthClients) >= 0;

    public bool UpdateTlsFiles() => virNetServerUpdateTlsFiles(_srv) >= 0;

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

    public IReadOnlyList<AdminTypedParam>? GetInfo()
    {
        byte ro;
        sbyte* sockAddr = null;
        virIdentity* ident = null;
        if (virNetServerClientGetInfo(_client, &ro, &sockAddr, &ident) < 0)
            return null;
        try
        {
            var list = new List<AdminTypedParam> { AdminTypedParam.Bool("readonly", ro != 0) };
            sbyte* attr;
            int rc;
            if ((rc = virIdentityGetSASLUserName(ident, &attr)) < 0) return null;
            if (rc == 1) list.Add(AdminTypedParam.Str("sasl_user_name", NativeUtf8.Read(attr)!));
            if (virNetServerClientIsLocal(_client) == 0)
            {
                list.Add(AdminTypedParam.Str("sock_addr", NativeUtf8.Read(sockAddr)!));
                if ((rc = virIdentityGetX509DName(ident, &attr)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Str("tls_x509_dname", NativeUtf8.Read(attr)!));
            }
            else
            {
                uint uid, gid;
                int pid;
                if ((rc = virIdentityGetUNIXUserID(ident, &uid)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_user_id", (int)uid));
                if ((rc = virIdentityGetUserName(ident, &attr)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Str("unix_user_name", NativeUtf8.Read(attr)!));
                if ((rc = virIdentityGetUNIXGroupID(ident, &gid)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_group_id", (int)gid));
                if ((rc = virIdentityGetGroupName(ident, &attr)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Str("unix_group_name", NativeUtf8.Read(attr)!));
                if ((rc = virIdentityGetProcessID(ident, &pid)) < 0) return null;
                if (rc == 1) list.Add(AdminTypedParam.Int("unix_process_id", pid));
            }
            if ((rc = virIdentityGetSELinuxContext(ident, &attr)) < 0) return null;
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
