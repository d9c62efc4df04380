using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// The daemon's part of a client across an exec-restart, its privateData:
/// virNetServerClientPrivNewPostExecRestart restores it from the saved JSON,
/// virNetServerClientPrivPreExecRestart saves it. The daemons (virtlockd,
/// virtlogd, the admin server) each supply their own.
/// </summary>
public sealed record VirNetServerClientPrivateCallbacks(
    Func<VirNetServerClientState, JsonNode?, VirResult<object>> NewPostExecRestart,
    Func<VirNetServerClientState, object, VirResult<JsonNode?>> PreExecRestart);

/// <summary>
/// What virnetserverclient.c saves of a connected client across an
/// exec-restart: the twin of virNetServerClientNewPostExecRestart
/// (<see cref="FromJson"/>) and virNetServerClientPreExecRestart
/// (<see cref="ToJson"/>).
/// </summary>
public sealed class VirNetServerClientState
{
    public ulong Id { get; init; }
    /// <summary>VIR_NET_SERVER_SERVICE_AUTH_* of the service it came in by.</summary>
    public int Auth { get; init; }
    public bool AuthPending { get; init; }
    public bool Readonly { get; init; }
    public uint NRequestsMax { get; init; }
    /// <summary>Seconds since the epoch; 0 (unknown) is not saved.</summary>
    public long ConnTime { get; init; }
    public required VirNetSocketState Sock { get; init; }
    /// <summary>What <see cref="VirNetServerClientPrivateCallbacks.NewPostExecRestart"/> made.</summary>
    public object? PrivateData { get; private set; }
    private Func<VirNetServerClientState, object, VirResult<JsonNode?>>? _privateDataPreExecRestart;

    private static VirError Internal(string detail)
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    /// <summary>Only VIR_NET_SERVER_SERVICE_AUTH_NONE lets a client in
    /// without authenticating (virNetServerClientAuthMethodImpliesAuthenticated).</summary>
    private static bool AuthImpliesAuthenticated(int auth) => auth == 0;

    /// <summary>
    /// The checks, their order and messages are libvirt's (including its
    /// "nrequests_client_max" in the message about nrequests_max). A client
    /// saved without an id takes the server's next one
    /// (<paramref name="nextClientId"/>, virNetServerNextClientID); without
    /// auth_pending it is pending unless its auth is none; without
    /// conn_time its connection time is 0.
    /// </summary>
    public static VirResult<VirNetServerClientState> FromJson(JsonNode? obj, Func<ulong> nextClientId,
        VirNetServerClientPrivateCallbacks priv)
    {
        if (!VirJSON.TryGetNumberInt(obj, "auth", out int auth))
            return Internal("Missing auth field in JSON state document");

        bool authPending;
        if (!VirJSON.HasKey(obj, "auth_pending"))
        {
            authPending = !AuthImpliesAuthenticated(auth);
        }
        else
        {
            if (!VirJSON.TryGetBoolean(obj, "auth_pending", out authPending))
                return Internal("Malformed auth_pending field in JSON state document");
            if (authPending && AuthImpliesAuthenticated(auth))
                return Internal("Invalid auth_pending and auth combination in JSON state document");
        }

        if (!VirJSON.TryGetBoolean(obj, "readonly", out bool ro))
            return Internal("Missing readonly field in JSON state document");
        if (!VirJSON.TryGetNumberUint(obj, "nrequests_max", out uint nrequestsMax))
            return Internal("Missing nrequests_client_max field in JSON state document");

        var sockNode = VirJSON.Get(obj, "sock", out bool hasSock);
        if (!hasSock)
            return Internal("Missing sock field in JSON state document");

        ulong id;
        if (!VirJSON.HasKey(obj, "id"))
            id = nextClientId();
        else if (!VirJSON.TryGetNumberUlong(obj, "id", out id))
            return Internal("Malformed id field in JSON state document");

        long connTime = 0;
        if (VirJSON.HasKey(obj, "conn_time") && !VirJSON.TryGetNumberLong(obj, "conn_time", out connTime))
            return Internal("Malformed conn_time field in JSON state document");

        if (!VirNetSocketState.FromJson(sockNode).TryGet(out var sock, out var err))
            return err!;

        var client = new VirNetServerClientState
        {
            Id = id,
            Auth = auth,
            AuthPending = authPending,
            Readonly = ro,
            NRequestsMax = nrequestsMax,
            ConnTime = connTime,
            Sock = sock,
        };

        var privNode = VirJSON.Get(obj, "privateData", out bool hasPriv);
        if (!hasPriv)
            return Internal("Missing privateData field in JSON state document");
        if (!priv.NewPostExecRestart(client, privNode).TryGet(out var data, out err))
            return err!;
        client.PrivateData = data;
        client._privateDataPreExecRestart = priv.PreExecRestart;
        return client;
    }

    /// <summary>A client made in this process (not restored): its
    /// privateData and how to save it.</summary>
    public void SetPrivateData(object data, Func<VirNetServerClientState, object, VirResult<JsonNode?>> preExecRestart)
    {
        PrivateData = data;
        _privateDataPreExecRestart = preExecRestart;
    }

    public VirResult<JsonObject> ToJson()
    {
        var obj = new JsonObject
        {
            ["id"] = Id,
            ["auth"] = Auth,
            ["auth_pending"] = AuthPending,
            ["readonly"] = Readonly,
            ["nrequests_max"] = NRequestsMax,
        };
        if (ConnTime != 0)
            obj["conn_time"] = ConnTime;
        obj["sock"] = Sock.ToJson();
        if (PrivateData is null || _privateDataPreExecRestart is null)
            return Internal("client has no private data to save");
        if (!_privateDataPreExecRestart(this, PrivateData).TryGet(out var priv, out var err))
            return err!;
        obj["privateData"] = priv;
        return obj;
    }
}
