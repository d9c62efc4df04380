using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// The debug and info lines libvirt 9.0.0's RPC layer logs under its rpc.*
/// sources (VIR_DEBUG, and PROBE, which logs "NAME: text" at info), as the
/// managed twins emit them: the same source, function, priority, text and
/// libvirt's line number, through the daemon's logging (<see cref="Target"/>,
/// set when the daemon has one). Call sites ask <see cref="On"/> before
/// formatting, so a filtered-out line costs no allocation.
/// Where libvirt prints an object's address (%p), these print an opaque
/// number from <see cref="NewId"/>, unique in the process, in the same 0x-hex
/// form (<see cref="Ptr"/>): the lines about one client, socket, message or
/// keepalive can be followed as in C's log, but the number is no address.
/// </summary>
public sealed class VirNetLog
{
    public static readonly VirLogSource NetServer = VirLogSources.Get("rpc.netserver");
    public static readonly VirLogSource NetServerClient = VirLogSources.Get("rpc.netserverclient");
    public static readonly VirLogSource NetServerProgram = VirLogSources.Get("rpc.netserverprogram");
    public static readonly VirLogSource NetMessage = VirLogSources.Get("rpc.netmessage");
    public static readonly VirLogSource NetSocket = VirLogSources.Get("rpc.netsocket");
    public static readonly VirLogSource KeepAlive = VirLogSources.Get("rpc.keepalive");
    public static readonly VirLogSource NetDaemon = VirLogSources.Get("rpc.netdaemon");
    public static readonly VirLogSource NetServerService = VirLogSources.Get("rpc.netserverservice");

    // ids step by 16 from a base that looks like nothing in particular
    private static long s_nextId = 0x5a0000;

    /// <summary>Where the lines go; null: nowhere.</summary>
    public IVirLog? Target { get; set; }

    /// <summary>A line of <paramref name="priority"/> from <paramref name="source"/> would be written.</summary>
    public bool On(VirLogSource source, VirLogPriority priority) => Target is { } t && t.IsEnabled(source, priority);

    public void Debug(VirLogSource source, string file, int line, string function, string message)
        => Target?.Message(source, VirLogPriority.Debug, file, line, function, message);

    public void Info(VirLogSource source, string file, int line, string function, string message)
        => Target?.Message(source, VirLogPriority.Info, file, line, function, message);

    /// <summary>virNetSocketNew's two lines for socket <paramref name="sockId"/> on
    /// <paramref name="fd"/>: libvirt prints its address structs (on its stack)
    /// and a UNIX socket's addresses as "127.0.0.1;0"; a listener has no remote one.</summary>
    public void SocketNew(ulong sockId, int fd, bool accepted)
    {
        if (On(NetSocket, VirLogPriority.Debug))
            Debug(NetSocket, SocketFile, 239, "virNetSocketNew",
                $"localAddr={Ptr(NewId())} remoteAddr={(accepted ? Ptr(NewId()) : "(nil)")} fd={fd} errfd=-1 pid=0");
        if (On(NetSocket, VirLogPriority.Info))
            Info(NetSocket, SocketFile, 294, "virNetSocketNew",
                $"RPC_SOCKET_NEW: sock={Ptr(sockId)} fd={fd} errfd=-1 pid=0 localAddr=127.0.0.1;0, remoteAddr={(accepted ? "127.0.0.1;0" : "<null>")}");
    }

    /// <summary>A new opaque object identifier for the lines' %p.</summary>
    public static ulong NewId() => (ulong)Interlocked.Add(ref s_nextId, 0x10);

    /// <summary>%p of <paramref name="id"/>: "0x..." or glibc's "(nil)" for none (0).</summary>
    public static string Ptr(ulong id) => id == 0 ? "(nil)" : "0x" + id.ToString("x");

    // libvirt's file names, for outputs that record them (journald's CODE_FILE)
    internal const string ClientFile = "../src/rpc/virnetserverclient.c";
    internal const string ServerFile = "../src/rpc/virnetserver.c";
    internal const string ProgramFile = "../src/rpc/virnetserverprogram.c";
    internal const string MessageFile = "../src/rpc/virnetmessage.c";
    internal const string SocketFile = "../src/rpc/virnetsocket.c";
    internal const string KeepAliveFile = "../src/rpc/virkeepalive.c";
    internal const string DaemonFile = "../src/rpc/virnetdaemon.c";
    internal const string ServiceFile = "../src/rpc/virnetserverservice.c";
}
