using System.Text.Json.Nodes;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// What a daemon's own code needs of its virNetDaemon once the servers are
/// set up, whichever RPC layer runs them (rpc_impl): libvirt's, driven by
/// <see cref="VirNetDaemonNative"/>, or the managed core,
/// <see cref="VirNetDaemon"/>. The daemon's main runs it; the log handler
/// inhibits the idle timeout while pipes are open; the admin program reads
/// and changes the timeout and the logging.
/// </summary>
public interface IVirNetDaemon
{
    /// <summary>virNetDaemonIsPrivileged: the daemon runs as root.</summary>
    bool Privileged { get; }

    /// <summary>The daemon's logging (logging_impl); null: libvirt's.</summary>
    IVirLog? Logging { get; set; }

    /// <summary>The loop the daemon runs on: the managed one (event_loop_impl =
    /// "managed") or libvirt's default loop behind the same contract.</summary>
    IVirEventLoop EventLoop { get; }

    /// <summary>virNetDaemonAutoShutdown: quit after <paramref name="seconds"/>
    /// with no client and no inhibition (0: never).</summary>
    VirResult AutoShutdown(uint seconds);

    void AddShutdownInhibition();
    void RemoveShutdownInhibition();

    /// <summary>virNetDaemonQuit, from any thread.</summary>
    void Quit();

    /// <summary>virNetDaemonQuitExecRestart: leave the loop with every service
    /// open, then <see cref="ExecRestart"/>.</summary>
    void QuitExecRestart();

    /// <summary>Called on the loop thread when an exec-restart was asked
    /// for; it returns only if the restart failed, and the daemon serves on.</summary>
    Action? ExecRestart { get; set; }

    /// <summary>Starts accepting clients and runs the loop on the calling
    /// thread, as the C daemons run it on their main thread; returns when
    /// the daemon has quit.</summary>
    void Run();
}

/// <summary>
/// The client life cycle of a daemon's main server, in managed terms
/// (virNetServerClientPrivNew and its free function): the daemon gets the
/// peer's credentials and gives back the connection's private data, or an
/// error value that refuses the connection. The managed server calls these
/// directly; on libvirt's server the daemon's unmanaged callbacks adapt
/// libvirt's raw ones to them.
/// </summary>
public interface IVirNetServerClientHooks
{
    /// <summary>The private data of a new connection from <paramref name="peer"/>;
    /// an error refuses it (the error names the C function that reports it).</summary>
    VirResult<object> ClientNew(VirNetSocketUnixIdentity peer);

    /// <summary>The connection is gone; <paramref name="privateData"/> is what
    /// <see cref="ClientNew"/> made.</summary>
    void ClientFree(object privateData);

    /// <summary>The connection's privateData for an exec-restart state, as
    /// the C daemon saves it.</summary>
    VirResult<JsonNode?> ClientPreExecRestart(object privateData);

    /// <summary>The private data of a connection taken over from an
    /// exec-restart state, from what <paramref name="saved"/> holds.</summary>
    VirResult<object> ClientNewPostExecRestart(VirNetSocketUnixIdentity peer, JsonNode? saved);
}
