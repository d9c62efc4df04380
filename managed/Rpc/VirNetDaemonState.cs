using System.Text;
using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// What virnetdaemon.c saves of a virNetDaemon across an exec-restart (the
/// "daemon" object of the state file): its servers by name. The twin of
/// virNetDaemonNewPostExecRestart (<see cref="FromJson"/>) and
/// virNetDaemonPreExecRestart (<see cref="ToJson"/>); a model only, which
/// opens nothing.
/// </summary>
public sealed class VirNetDaemonState
{
    private readonly Dictionary<string, VirNetServerState> _servers = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, VirNetServerState> Servers => _servers;

    public bool HasServer(string name) => _servers.ContainsKey(name);

    /// <summary>virHashAddEntry's refusal of a name already there.</summary>
    public VirResult AddServer(VirNetServerState srv)
    {
        if (!_servers.TryAdd(srv.Name, srv))
            return VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, $"Duplicate hash table key '{srv.Name}'");
        return VirResult.Success;
    }

    private static VirError Internal(string detail)
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    /// <summary>
    /// The three formats libvirt reads. "servers" an object: one server per
    /// key, made under that name (the admin server is "admin", as any other).
    /// "servers" an array (the format before server names were saved): the
    /// i-th is made under <paramref name="defaultServerNames"/>[i], and there
    /// must not be more than names. No "servers" (the single-server format):
    /// the whole document is the server, made under the first name.
    /// <paramref name="newServer"/> is virNetDaemonNewServerPostExecRestart:
    /// the daemon's choice of callbacks for each server it knows.
    /// <para>Two departures, where libvirt reports nothing: a "servers" that
    /// is neither an object nor an array fails with "Malformed servers data
    /// in JSON document" (libvirt fails with no error set), and a failing
    /// <paramref name="newServer"/> in the single-server format fails with
    /// its error (libvirt carries on without that server).</para>
    /// </summary>
    public static VirResult<VirNetDaemonState> FromJson(JsonNode? state, IReadOnlyList<string> defaultServerNames,
        Func<string, JsonNode?, VirResult<VirNetServerState>> newServer)
    {
        var dmn = new VirNetDaemonState();
        var servers = VirJSON.Get(state, "servers", out bool newVersion);

        if (!newVersion)
        {
            if (defaultServerNames.Count < 1)
                return Internal("No default server names provided");
            return dmn.Add(newServer(defaultServerNames[0], state));
        }

        if (servers is JsonArray array)
        {
            if (array.Count > defaultServerNames.Count)
                return Internal($"Server count {array.Count} greater than default name count {defaultServerNames.Count}");
            for (int i = 0; i < array.Count; i++)
            {
                if (dmn.Add(newServer(defaultServerNames[i], array[i])).Error is { } err)
                    return err;
            }
            return dmn;
        }

        if (servers is JsonObject obj)
        {
            foreach (var (name, value) in obj)
            {
                if (dmn.Add(newServer(name, value)).Error is { } err)
                    return err;
            }
            return dmn;
        }

        return Internal("Malformed servers data in JSON document");
    }

    private VirResult<VirNetDaemonState> Add(VirResult<VirNetServerState> srv)
    {
        if (!srv.TryGet(out var s, out var err))
            return err!;
        if (AddServer(s).Error is { } dup)
            return dup;
        return this;
    }

    /// <summary>Always the object format, servers in strcmp order of their
    /// names (virHashGetItems sorted), whatever order they were added in.</summary>
    public VirResult<JsonObject> ToJson()
    {
        var names = _servers.Keys.ToList();
        names.Sort(CompareAsStrcmp);
        var servers = new JsonObject();
        foreach (var name in names)
        {
            if (!_servers[name].ToJson().TryGet(out var srv, out var err))
                return err!;
            servers[name] = srv;
        }
        return new JsonObject { ["servers"] = servers };
    }

    /// <summary>strcmp on the UTF-8 bytes (UTF-16 ordinal order differs
    /// above the BMP).</summary>
    private static int CompareAsStrcmp(string a, string b)
        => Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b));
}
