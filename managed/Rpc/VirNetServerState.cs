using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// What virnetserver.c saves of a virNetServer across an exec-restart: the
/// twin of virNetServerNewPostExecRestart (<see cref="FromJson"/>) and
/// virNetServerPreExecRestart (<see cref="ToJson"/>).
/// </summary>
public sealed class VirNetServerState
{
    public required string Name { get; init; }
    public uint MinWorkers { get; init; }
    public uint MaxWorkers { get; init; }
    public uint PriorityWorkers { get; init; }
    public uint MaxClients { get; init; }
    public uint MaxAnonymousClients { get; init; }
    /// <summary>An int in virNetServer, saved and read as unsigned: the
    /// bits travel unchanged.</summary>
    public uint KeepaliveInterval { get; init; }
    public uint KeepaliveCount { get; init; }
    /// <summary>The id the next client gets.</summary>
    public ulong NextClientId { get; set; }
    public List<VirNetServerServiceState> Services { get; } = [];
    public List<VirNetServerClientState> Clients { get; } = [];

    /// <summary>virNetServerNextClientID: the next id, and one more after it.</summary>
    public ulong NextClientID() => NextClientId++;

    private static VirError Internal(string detail)
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    private const string UnauthAboveMax =
        "The overall maximum number of clients must not be less than the number of clients waiting for authentication";

    /// <summary>
    /// The checks, their order and messages are libvirt's. Defaults as
    /// there: max_anonymous_clients is max_clients; next_client_id is 1
    /// (libvirt warns about that one); min_workers above max_workers is
    /// lowered to it, as virThreadPoolNewFull does.
    /// </summary>
    public static VirResult<VirNetServerState> FromJson(JsonNode? obj, string name, VirNetServerClientPrivateCallbacks priv)
    {
        if (!VirJSON.TryGetNumberUint(obj, "min_workers", out uint minWorkers))
            return Internal("Missing min_workers data in JSON document");
        if (!VirJSON.TryGetNumberUint(obj, "max_workers", out uint maxWorkers))
            return Internal("Missing max_workers data in JSON document");
        if (!VirJSON.TryGetNumberUint(obj, "priority_workers", out uint priorityWorkers))
            return Internal("Missing priority_workers data in JSON document");
        if (!VirJSON.TryGetNumberUint(obj, "max_clients", out uint maxClients))
            return Internal("Missing max_clients data in JSON document");

        uint maxAnonymousClients = maxClients;
        if (VirJSON.HasKey(obj, "max_anonymous_clients"))
        {
            if (!VirJSON.TryGetNumberUint(obj, "max_anonymous_clients", out maxAnonymousClients))
                return Internal("Malformed max_anonymous_clients data in JSON document");
            if (maxClients < maxAnonymousClients)
                return Internal(UnauthAboveMax);
        }

        if (!VirJSON.TryGetNumberUint(obj, "keepaliveInterval", out uint keepaliveInterval))
            return Internal("Missing keepaliveInterval data in JSON document");
        if (!VirJSON.TryGetNumberUint(obj, "keepaliveCount", out uint keepaliveCount))
            return Internal("Missing keepaliveCount data in JSON document");
        if (!VirJSON.TryGetNumberUlong(obj, "next_client_id", out ulong nextClientId))
            nextClientId = 1;

        var srv = new VirNetServerState
        {
            Name = name,
            MinWorkers = Math.Min(minWorkers, maxWorkers),
            MaxWorkers = maxWorkers,
            PriorityWorkers = priorityWorkers,
            MaxClients = maxClients,
            MaxAnonymousClients = maxAnonymousClients,
            KeepaliveInterval = keepaliveInterval,
            KeepaliveCount = keepaliveCount,
            NextClientId = nextClientId,
        };

        var servicesNode = VirJSON.Get(obj, "services", out bool hasServices);
        if (!hasServices)
            return Internal("Missing services data in JSON document");
        if (servicesNode is not JsonArray services)
            return Internal("Malformed services array");
        foreach (var child in services)
        {
            if (!VirNetServerServiceState.FromJson(child).TryGet(out var svc, out var err))
                return err!;
            srv.Services.Add(svc);
        }

        var clientsNode = VirJSON.Get(obj, "clients", out bool hasClients);
        if (!hasClients)
            return Internal("Missing clients data in JSON document");
        if (clientsNode is not JsonArray clients)
            return Internal("Malformed clients array");
        foreach (var child in clients)
        {
            if (!VirNetServerClientState.FromJson(child, srv.NextClientID, priv).TryGet(out var client, out var err))
                return err!;
            srv.Clients.Add(client);
        }
        return srv;
    }

    public VirResult<JsonObject> ToJson()
    {
        var services = new JsonArray();
        foreach (var svc in Services)
            services.Add((JsonNode)svc.ToJson());
        var clients = new JsonArray();
        foreach (var client in Clients)
        {
            if (!client.ToJson().TryGet(out var c, out var err))
                return err!;
            clients.Add((JsonNode)c);
        }
        return new JsonObject
        {
            ["min_workers"] = MinWorkers,
            ["max_workers"] = MaxWorkers,
            ["priority_workers"] = PriorityWorkers,
            ["max_clients"] = MaxClients,
            ["max_anonymous_clients"] = MaxAnonymousClients,
            ["keepaliveInterval"] = KeepaliveInterval,
            ["keepaliveCount"] = KeepaliveCount,
            ["next_client_id"] = NextClientId,
            ["services"] = services,
            ["clients"] = clients,
        };
    }
}
