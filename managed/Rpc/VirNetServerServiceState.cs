using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// What virnetserverservice.c saves of a virNetServerService (a listening
/// service) across an exec-restart: the twin of
/// virNetServerServiceNewPostExecRestart (<see cref="FromJson"/>) and
/// virNetServerServicePreExecRestart (<see cref="ToJson"/>).
/// </summary>
public sealed class VirNetServerServiceState
{
    /// <summary>VIR_NET_SERVER_SERVICE_AUTH_* (0 none, 1 SASL, 2 polkit).</summary>
    public int Auth { get; init; }
    public bool Readonly { get; init; }
    public uint NRequestsClientMax { get; init; }
    public IReadOnlyList<VirNetSocketState> Socks { get; init; } = [];

    private static VirError Internal(string detail)
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    public static VirResult<VirNetServerServiceState> FromJson(JsonNode? obj)
    {
        if (!VirJSON.TryGetNumberInt(obj, "auth", out int auth))
            return Internal("Missing auth field in JSON state document");
        if (!VirJSON.TryGetBoolean(obj, "readonly", out bool ro))
            return Internal("Missing readonly field in JSON state document");
        if (!VirJSON.TryGetNumberUint(obj, "nrequests_client_max", out uint max))
            return Internal("Missing nrequests_client_max field in JSON state document");

        var socksNode = VirJSON.Get(obj, "socks", out bool present);
        if (!present)
            return Internal("Missing socks field in JSON state document");
        if (socksNode is not JsonArray socks)
            return Internal("Malformed socks array");

        var list = new List<VirNetSocketState>(socks.Count);
        foreach (var child in socks)
        {
            if (!VirNetSocketState.FromJson(child).TryGet(out var sock, out var err))
                return err!;
            list.Add(sock);
        }
        return new VirNetServerServiceState { Auth = auth, Readonly = ro, NRequestsClientMax = max, Socks = list };
    }

    public JsonObject ToJson()
    {
        var socks = new JsonArray();
        foreach (var s in Socks)
            socks.Add((JsonNode)s.ToJson());
        return new JsonObject
        {
            ["auth"] = Auth,
            ["readonly"] = Readonly,
            ["nrequests_client_max"] = NRequestsClientMax,
            ["socks"] = socks,
        };
    }
}
