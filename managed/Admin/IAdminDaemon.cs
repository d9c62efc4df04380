using Libvirt.Util;

namespace Libvirt.Admin;

/// <summary>The type of a typed parameter, numbered as libvirt numbers
/// them on the wire (virTypedParameterType).</summary>
public enum AdminParamType
{
    Int = 1,
    UInt = 2,
    LLong = 3,
    ULLong = 4,
    Double = 5,
    Boolean = 6,
    String = 7,
}

/// <summary>One typed parameter as the admin program sends and receives
/// it. <see cref="Value"/> is an int, uint, long, ulong, double, bool or
/// string according to <see cref="Type"/>.</summary>
public sealed record AdminTypedParam(string Field, AdminParamType Type, object Value)
{
    public static AdminTypedParam UInt(string field, uint v) => new(field, AdminParamType.UInt, v);
    public static AdminTypedParam Int(string field, int v) => new(field, AdminParamType.Int, v);
    public static AdminTypedParam Bool(string field, bool v) => new(field, AdminParamType.Boolean, v);
    public static AdminTypedParam Str(string field, string v) => new(field, AdminParamType.String, v);
}

public readonly record struct AdminThreadPool(ulong MinWorkers, ulong MaxWorkers, ulong Workers,
    ulong FreeWorkers, ulong PriorityWorkers, ulong JobQueueDepth);

public readonly record struct AdminClientLimits(ulong MaxClients, ulong CurrentClients,
    ulong MaxUnauthClients, ulong CurrentUnauthClients);

/// <summary>
/// What the admin program needs of a daemon (virNetDaemon). Failures are
/// error values, as the C function that failed reported them; only an
/// implementation over libvirt's objects (<see cref="NativeAdminDaemon"/>)
/// reads libvirt's per-thread last error.
/// </summary>
public interface IAdminDaemon
{
    /// <summary>Every server of the daemon, each owned by the caller.</summary>
    VirResult<IReadOnlyList<IAdminServer>> ListServers();

    /// <summary>The server of that name (owned by the caller), or
    /// VIR_ERR_NO_SERVER when there is none.</summary>
    VirResult<IAdminServer> LookupServer(string name);

    /// <summary>Stop the daemon after <paramref name="timeout"/> idle
    /// seconds (0: never).</summary>
    VirResult SetAutoShutdown(uint timeout);

    /// <summary>The current log outputs/filters as libvirt prints them and
    /// their number.</summary>
    VirResult<string> GetLogOutputs(out int count);
    VirResult<string> GetLogFilters(out int count);
    VirResult SetLogOutputs(string? outputs);
    VirResult SetLogFilters(string? filters);
}

/// <summary>What the admin program needs of one RPC server (virNetServer).
/// Disposing drops the caller's reference.</summary>
public interface IAdminServer : IDisposable
{
    string Name { get; }
    VirResult<AdminThreadPool> GetThreadPool();
    /// <summary>-1 leaves a value as it is.</summary>
    VirResult SetThreadPool(long minWorkers, long maxWorkers, long priorityWorkers);
    VirResult<IReadOnlyList<IAdminClient>> ListClients();
    /// <summary>The client (owned by the caller), or VIR_ERR_NO_CLIENT.</summary>
    VirResult<IAdminClient> LookupClient(ulong id);
    AdminClientLimits GetClientLimits();
    /// <summary>-1 leaves a value as it is.</summary>
    VirResult SetClientLimits(long maxClients, long maxUnauthClients);
    VirResult UpdateTlsFiles();
}

/// <summary>What the admin program needs of one connected client
/// (virNetServerClient). Disposing drops the caller's reference.</summary>
public interface IAdminClient : IDisposable
{
    ulong Id { get; }
    /// <summary>Seconds since the epoch at which it connected.</summary>
    long Timestamp { get; }
    /// <summary>virClientTransport: 0 unix, 1 tcp, 2 tls.</summary>
    uint Transport { get; }
    /// <summary>readonly, identity and socket facts as typed parameters,
    /// in libvirt's order.</summary>
    VirResult<IReadOnlyList<AdminTypedParam>> GetInfo();
    /// <summary>Drops the connection now.</summary>
    void Close();
    /// <summary>Drops the connection once the reply in flight is sent.</summary>
    void CloseAfterReply();
}
