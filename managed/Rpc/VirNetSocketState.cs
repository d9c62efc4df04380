using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// What virnetsocket.c saves of a virNetSocket across an exec-restart: the
/// twin of virNetSocketNewPostExecRestart (<see cref="FromJson"/>) and
/// virNetSocketPreExecRestart (<see cref="ToJson"/>). The fds are plain
/// numbers here: nothing is opened, queried or made inheritable (the C
/// functions also getsockname the fd, set it close-on-exec and non-blocking
/// when restoring, and clear close-on-exec when saving); that belongs to
/// the managed socket that is made from this state.
/// </summary>
public sealed record VirNetSocketState(int Fd, int ErrFd, int Pid, bool IsClient, bool UnlinkUNIX)
{
    private static VirError Internal(string detail)
        => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    /// <summary>virNetSocketNewPostExecRestart's validation, in its order;
    /// a missing or malformed unlinkUNIX means "a listening socket".</summary>
    public static VirResult<VirNetSocketState> FromJson(JsonNode? obj)
    {
        if (!VirJSON.TryGetNumberInt(obj, "fd", out int fd))
            return Internal("Missing fd data in JSON document");
        if (!VirJSON.TryGetNumberInt(obj, "pid", out int pid))
            return Internal("Missing pid data in JSON document");
        if (!VirJSON.TryGetNumberInt(obj, "errfd", out int errfd))
            return Internal("Missing errfd data in JSON document");
        if (!VirJSON.TryGetBoolean(obj, "isClient", out bool isClient))
            return Internal("Missing isClient data in JSON document");
        if (!VirJSON.TryGetBoolean(obj, "unlinkUNIX", out bool unlinkUNIX))
            unlinkUNIX = !isClient;
        return new VirNetSocketState(fd, errfd, pid, isClient, unlinkUNIX);
    }

    /// <summary>virNetSocketPreExecRestart's keys, in its order. (Its
    /// refusal to save a socket with a TLS or SASL session has nothing to
    /// refuse here: this state has no sessions.)</summary>
    public JsonObject ToJson() => new()
    {
        ["fd"] = Fd,
        ["errfd"] = ErrFd,
        ["pid"] = Pid,
        ["isClient"] = IsClient,
        ["unlinkUNIX"] = UnlinkUNIX,
    };
}
