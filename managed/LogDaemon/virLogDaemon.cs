using System.Text.Json.Nodes;
using Libvirt.Rpc;
using Libvirt.Util;

namespace Libvirt.LogDaemon;

/// <summary>
/// virtlogd's state (log_daemon.c's virLogDaemon): whether it runs
/// privileged and its log handler. The main server's client hooks are
/// here (libvirt's raw callbacks reach them through their opaque), and
/// procedures reach it through the client's private data.
/// </summary>
public sealed class virLogDaemon(bool privileged) : IVirNetServerClientHooks
{
    public bool Privileged { get; } = privileged;

    /// <summary>Made once the servers exist (it watches pipes on the loop).</summary>
    public virLogHandler Handler { get; set; } = null!;

    /// <summary>The log manager program's procedures, whichever RPC layer serves them.</summary>
    public virLogManagerProtocolDispatch Procedures { get; } = new();

    /// <summary>virLogDaemonClientNew: only root, or the daemon's own uid
    /// when unprivileged, may connect.</summary>
    public VirResult<object> ClientNew(VirNetSocketUnixIdentity peer)
    {
        if (VirNetServerClientIdentity.Refusal(peer, Privileged, VirErrorDomain.Logging, "virLogDaemonClientNew") is { } refused)
            return refused;
        return new virLogDaemonClient { ClientPid = peer.Pid, Daemon = this };
    }

    /// <summary>Logs belong to the daemon, not to connections: nothing to release.</summary>
    public void ClientFree(object privateData)
    {
    }

    /// <summary>Log clients carry no state across exec-restart: an empty object.</summary>
    public VirResult<JsonNode?> ClientPreExecRestart(object privateData) => new JsonObject();

    public VirResult<object> ClientNewPostExecRestart(VirNetSocketUnixIdentity peer, JsonNode? saved) => ClientNew(peer);
}
