using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The managed RPC core writes the rpc.* debug and info lines libvirt's RPC
/// layer writes (VirNetLog): virtlockd, the C one and ours under ManagedRpc,
/// each with log_filters = "1:rpc" and a file output, start, serve the same
/// lock session and stop on SIGTERM, and the rpc lines of each part must be the same once what
/// differs between two runs of one daemon is taken out (timestamps, thread
/// ids, the %p numbers, descriptor numbers). Both write them from the
/// daemon's main thread, which runs the loop. Our configurations whose RPC
/// layer is libvirt's (rpc_impl = "native") write the same lines (libvirt's
/// C code writes them), from the main thread too.
/// </summary>
public sealed partial class RpcLogLinesTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);
    private const uint KeepAliveProgram = 0x6b656570;

    /// <summary>Functions whose lines the C daemon writes in the session and
    /// ours deliberately does not, dropped from both sides. Empty: on this
    /// session (virtlockd's plain UNIX client, no workers) C takes none of
    /// the paths ours leaves out (the worker pool's virNetServerHandleJob and
    /// job lines, TLS, SASL, streams). A path C takes and ours does not goes
    /// here, named.</summary>
    private static readonly string[] NotOurs =
    [
    ];

    [Fact]
    public async Task A_lock_session_writes_the_rpc_lines_of_the_C_daemon()
    {
        var (cStart, c, cStop, cThreads) = await SessionLines(DaemonKind.C);
        var (ourStart, ours, ourStop, ourThreads) = await SessionLines(DaemonKind.ManagedRpc);
        // start-up: the two listening sockets, the two programs, the loop
        Assert.Contains(cStart, l => l.Contains("virNetServerServiceNewUNIX:"));
        Assert.True(cStart.SequenceEqual(ourStart), "start-up: " + Diff(cStart, ourStart));
        // SIGTERM
        Assert.Contains(cStop, l => l.Contains("Quit requested"));
        Assert.True(cStop.SequenceEqual(ourStop), "shutdown: " + Diff(cStop, ourStop));
        // the C daemon serves on its main thread (no workers); ours too, not on a thread of its own
        Assert.Equal(["main"], cThreads);
        Assert.Equal(["main"], ourThreads);
        // the session reached the lines this test is about, on the C side at least
        Assert.Contains(c, l => l.Contains("RPC_SERVER_CLIENT_MSG_RX: "));
        Assert.Contains(c, l => l.Contains("RPC_SERVER_CLIENT_DISPOSE: "));
        Assert.True(c.SequenceEqual(ours), Diff(c, ours));
    }

    /// <summary>Our configurations whose RPC layer is libvirt's (rpc_impl = "native"): its virNetDaemon and
    /// virNetServer serve, driven from our Main, and libvirt's C code writes the rpc lines.</summary>
    public static TheoryData<DaemonKind> NativeRpc =>
        new() { DaemonKind.Managed, DaemonKind.ManagedLoop, DaemonKind.ManagedStore, DaemonKind.ManagedAll };

    /// <summary>With libvirt's own RPC layer, ours runs the daemon's loop on the main thread too, as C does:
    /// every rpc line libvirt writes, from the listening sockets to the quit, carries the daemon's pid as its
    /// thread id, and the session's lines (written from the loop's dispatch of the client's events) are C's.</summary>
    [Theory]
    [MemberData(nameof(NativeRpc))]
    public async Task With_libvirts_rpc_layer_ours_serves_on_its_main_thread(DaemonKind kind)
    {
        var (cStart, c, cStop, _) = await SessionLines(DaemonKind.C);
        var (start, lines, stop, threads) = await SessionLines(kind);
        // libvirt's lines, all of them: the services created, the loop entered, the session dispatched, the quit
        Assert.Contains(start, l => l.Contains("virNetServerServiceNewUNIX:"));
        Assert.Contains(start, l => l.Contains(" : virNetDaemonRun:833 : "));
        Assert.Contains(lines, l => l.Contains("RPC_SERVER_CLIENT_MSG_RX: "));
        Assert.Contains(lines, l => l.Contains("RPC_SERVER_CLIENT_DISPOSE: "));
        Assert.Contains(stop, l => l.Contains("Quit requested"));
        Assert.Equal(["main"], threads);
        // and they are the C daemon's
        Assert.True(cStart.SequenceEqual(start), "start-up: " + Diff(cStart, start));
        Assert.True(c.SequenceEqual(lines), Diff(c, lines));
        Assert.True(cStop.SequenceEqual(stop), "shutdown: " + Diff(cStop, stop));
    }

    /// <summary>Each side's lines, the first difference marked.</summary>
    private static string Diff(IReadOnlyList<string> c, IReadOnlyList<string> ours)
    {
        int i = 0;
        while (i < c.Count && i < ours.Count && c[i] == ours[i])
            i++;
        return $"first difference at line {i}\n--- C ({c.Count} lines)\n{string.Join("\n", c.Skip(Math.Max(0, i - 3)).Take(12))}\n" +
               $"--- ours ({ours.Count} lines)\n{string.Join("\n", ours.Skip(Math.Max(0, i - 3)).Take(12))}";
    }

    /// <summary>The normalised rpc lines <paramref name="kind"/> writes from
    /// the connection of a client to its disposal: register, a lock space,
    /// acquire and release, a keepalive ping, a message for no program, an
    /// unknown procedure, a call whose arguments do not decode, close.</summary>
    private static async Task<(List<string> Startup, List<string> Lines, List<string> Shutdown, string[] Threads)> SessionLines(DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        string log = Path.Combine(sb.TempDir, "rpc.log");
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, DaemonName.Virtlockd, kind,
            configText: $"log_filters = \"1:rpc\"\nlog_outputs = \"1:file:{log}\"\n");
        // the readiness probe's connection (one) is the daemon's first client:
        // the session starts once it is disposed of
        await WaitForLog(log, 0, t => Count(t, "RPC_SERVER_CLIENT_NEW: ") >= 1 &&
                                      Count(t, "RPC_SERVER_CLIENT_NEW: ") == Count(t, "RPC_SOCKET_DISPOSE: "),
            $"{kind}: the readiness probe's client disposed of");
        long start = new FileInfo(log).Length;
        // start-up: up to the loop's first line (the probe is accepted by the loop, so after it)
        var startup = Normalise(Tail(log, 0));
        startup = startup.Take(startup.FindIndex(l => l.Contains(" : virNetDaemonRun:")) + 1).ToList();

        string ls = Path.Combine(sb.TempDir, "space");
        Directory.CreateDirectory(ls);
        using (var c = await d.ConnectAsync(Bound))
        {
            c.Raw.ReadTimeout = Bound;
            await c.RegisterAsync((uint)Environment.ProcessId).OkAsync();
            await c.CreateLockspaceAsync(ls).OkAsync();
            await c.AcquireResourceAsync(ls, "disk", LockProtocol.AcquireAutoCreate).OkAsync();
            await c.ReleaseResourceAsync(ls, "disk").OkAsync();
            // a keepalive PING: answered with a PONG
            await c.Raw.SendRawAsync(RawRpcClient.BuildFrame(
                new RpcHeader(KeepAliveProgram, 1, 1, RpcMessageType.Message, 0, RpcStatus.Ok), default));
            var pong = await c.Raw.ReadMessageAsync(Bound);
            Assert.Equal((KeepAliveProgram, 2), (pong!.Header.Program, pong.Header.Procedure));
            // a message (not a call) for a program the server does not have: dropped, unanswered
            await c.Raw.SendRawAsync(RawRpcClient.BuildFrame(
                new RpcHeader(0x1234, 1, 1, RpcMessageType.Message, 0, RpcStatus.Ok), default));
            var unknown = await c.Raw.CallAsync(LockProtocol.Program, LockProtocol.Version, 99, Array.Empty<byte>(), Bound);
            Assert.True(unknown.IsError);
            var undecodable = await c.Raw.CallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcAcquireResource,
                new byte[] { 0, 0, 0 }, Bound);
            Assert.True(undecodable.IsError);
        }

        // the client is gone once its socket's disposal is logged
        string session = await WaitForLog(log, start, t => t.Contains("RPC_SOCKET_DISPOSE: "), $"{kind}: the session's socket disposed of");
        long end = new FileInfo(log).Length;
        Assert.True(await d.StopAsync() == 0, $"{kind} did not exit 0 on SIGTERM");
        // which threads wrote the rpc lines, from start-up to exit: "main" for the daemon's own pid
        string[] threads = Threads(Tail(log, 0), d.Pid);
        return (startup, Normalise(session), Normalise(Tail(log, end)), threads);
    }

    /// <summary>The threads that wrote <paramref name="text"/>'s lines: "main" for <paramref name="pid"/>.</summary>
    private static string[] Threads(string text, int pid)
        => text.Split('\n').Select(l => LineRx().Match(l)).Where(m => m.Success)
            .Select(m => m.Groups["tid"].Value == pid.ToString() ? "main" : "thread " + m.Groups["tid"].Value).Distinct().ToArray();

    private static int Count(string text, string what) => Regex.Count(text, Regex.Escape(what));

    /// <summary>The log from <paramref name="from"/> once <paramref name="done"/> holds of it (bounded).</summary>
    private static async Task<string> WaitForLog(string path, long from, Func<string, bool> done, string what)
    {
        var until = DateTime.UtcNow + Bound;
        while (true)
        {
            string text = Tail(path, from);
            if (done(text))
                return text;
            Assert.True(DateTime.UtcNow < until, $"not seen within {Bound}: {what}\n{text}");
            await Task.Delay(50);
        }
    }

    private static string Tail(string path, long from)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        f.Position = from;
        return new StreamReader(f).ReadToEnd();
    }

    // "2026-12-02 16:00:24.308+0000: 10901: debug : virNetServerClientNew:436 : sock=0x55c277164490 auth=0 tls=(nil)"
    [GeneratedRegex(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+0000: (?<tid>\d+): (?<prio>\w+) : (?<func>\w+):(?<line>\d+) : (?<msg>.*)$")]
    private static partial Regex LineRx();

    [GeneratedRegex(@"0x[0-9a-f]+")]
    private static partial Regex PointerRx();

    [GeneratedRegex(@"\bfd=\d+")]
    private static partial Regex FdRx();

    /// <summary>debug and info lines (the rpc sources' own: errors and
    /// warnings are the error-reporting's lines, not these), with the %p
    /// numbers and descriptor numbers made alike; the line number is kept.</summary>
    internal static List<string> Normalise(string text)
    {
        var lines = new List<string>();
        foreach (var raw in text.Split('\n'))
        {
            var m = LineRx().Match(raw);
            if (!m.Success)
                continue;
            string prio = m.Groups["prio"].Value;
            string func = m.Groups["func"].Value;
            if (prio is not ("debug" or "info") || NotOurs.Contains(func))
                continue;
            string msg = FdRx().Replace(PointerRx().Replace(m.Groups["msg"].Value, "0xPTR"), "fd=N");
            lines.Add($"{prio} : {func}:{m.Groups["line"].Value} : {msg}");
        }
        return lines;
    }
}
