using System.Text;
using Libvirt.Tests.Admin;
using Libvirt.Tests.Fuzz;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>virtlogd's framing and descriptor passing, on the wire: what BadInputTests check for virtlockd.</summary>
public class RawFramingTests
{
    /// <summary>C, our default and ours with every twin managed: the framing is libvirt's RPC layer in each, and the
    /// storage and loop twins between them cover what a configuration changes under it.</summary>
    private static readonly DaemonKind[] FramingKinds = [DaemonKind.C, DaemonKind.Managed, DaemonKind.ManagedAll];

    public static TheoryData<DaemonKind> Kinds => new(FramingKinds);

    public static TheoryData<DaemonKind, uint> BadLengths()
    {
        var d = new TheoryData<DaemonKind, uint>();
        foreach (var k in FramingKinds)
            foreach (var len in new uint[] { 0, 2, 8, 27, 33554432 + 4 + 1, 40_000_000, uint.MaxValue })
                d.Add(k, len);
        return d;
    }

    /// <summary>A domain with an open log (libvirt's own client: an RPC connection and the log's pipe) that was
    /// there before the bad client came.</summary>
    private static async Task<(LogClientDriver Client, string Path, ulong Inode)> BystanderAsync(LogEnv env)
    {
        var c = await env.ClientAsync("bystander");
        var path = env.LogPath("bystander.log");
        var (_, inode, _) = await c.OpenAsync(path);
        await c.WriteAsync(10, 50);
        return (c, path, inode);
    }

    /// <summary>The daemon is alive, the bystander's connection and pipe still serve, and a fresh client is served.</summary>
    private static async Task AssertStillServingAsync(LogEnv env, (LogClientDriver Client, string Path, ulong Inode) by, string when)
    {
        env.AssertAlive(when);
        // the bad client is gone from the server: the bystander is its only client
        await new VirtAdmin(env.Daemon).WaitForClientsAsync("virtlogd", 1, TimeSpan.FromSeconds(15));
        await by.Client.WriteAsync(10, 50);
        Assert.True(await LogEnv.EventuallyAsync(() => new FileInfo(by.Path).Length >= 20 * 50, TimeSpan.FromSeconds(10)),
            $"{env.Kind}: the bystander's pipe stopped flowing {when}");
        var (inode, offset) = await by.Client.PosAsync(by.Path);
        Assert.Equal(by.Inode, inode);
        Assert.Equal(20 * 50, offset);
        Records.AssertEqual(Records.Stream(0, 20, 50), File.ReadAllBytes(by.Path), $"bystander.log {when}");
        using var next = await env.RawAsync();
        var r = await next.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcGetPosition,
            LogProtocol.PositionArgs(env.LogPath("none.log"), 0));
        LogErr.Assert(r.Error, LogErr.InternalError, LogErr.FromLogging, LogErr.NotOpen(env.LogPath("none.log")));
        await by.Client.QuitAsync();
    }

    /// <summary>A length word below the header's size or above VIR_NET_MESSAGE_MAX: the connection is closed
    /// without a reply, and the daemon serves the clients it had and the next one.</summary>
    [Theory]
    [MemberData(nameof(BadLengths))]
    public async Task A_bad_length_word_closes_the_connection_only(DaemonKind kind, uint length)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var by = await BystanderAsync(env);
        using (var raw = await env.RawAsync())
        {
            // a short length is refused once its (short) frame has arrived, a long one at once
            var w = new XdrWriter().UInt(length);
            if (length is > 4 and < 28) w.Raw(new byte[length - 4]);
            await raw.SendRawAsync(w.ToArray());
            var got = new List<byte>();
            Assert.True(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(10), got), $"{kind} virtlogd kept a connection whose frame length is {length}");
            Assert.Empty(got);
        }
        await AssertStillServingAsync(env, by, $"after a frame length of {length}");
    }

    /// <summary>A frame cut short (length word 100, ten bytes sent) and the connection closed: the daemon drops
    /// that client and serves the others.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task A_truncated_frame_then_close_drops_only_that_client(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var by = await BystanderAsync(env);
        using (var raw = await env.RawAsync())
        {
            var bytes = new XdrWriter().UInt(100).UInt(LogProtocol.Program).Raw(new byte[] { 0, 0 }).ToArray();
            Assert.Equal(10, bytes.Length);
            await raw.SendRawAsync(bytes);
        }
        await AssertStillServingAsync(env, by, "after a truncated frame");
    }

    /// <summary>
    /// OPEN's REPLY_WITH_FDS carries one descriptor: it is received (SCM_RIGHTS), it is the write end of a pipe,
    /// and what is written into it lands in the log file.
    /// </summary>
    [Theory]
    [MemberData(nameof(LogKinds.All), MemberType = typeof(LogKinds))]
    public async Task The_descriptor_of_an_open_reply_is_a_pipe_into_the_log(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var path = env.LogPath("fd.log");
        using var s = UnixStream.Connect(env.Daemon.SocketHostPath, TimeSpan.FromSeconds(10));
        var frame = FrameFuzzer.Frame(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen, 1,
            LogProtocol.OpenArgs("qemu", new byte[16], "dom", path, 0));
        Assert.True(s.Send(frame, TimeSpan.FromSeconds(10)));
        var o = new StringBuilder();
        Assert.True(new FrameReader(s).ReadUntil(o, m => m.Serial == 1, "open"), $"no reply to OPEN: {o}");
        Assert.StartsWith($"ReplyWithFds p={LogProtocol.Program:x} v=1 proc=1 s=1 st=Ok", o.ToString());
        Assert.True(s.ReceivedFds.Count == 1, $"{s.ReceivedFds.Count} descriptors came with the reply");
        var st = UnixStream.Fstat(s.ReceivedFds[0]);
        Assert.NotNull(st);
        Assert.True((st!.Value.Mode & 0xF000) == 0x1000, $"the descriptor is not a pipe (mode 0{Convert.ToString(st.Value.Mode, 8)})");

        var data = Encoding.ASCII.GetBytes("through the descriptor of the reply\n");
        Assert.Equal(data.Length, UnixStream.Write(s.ReceivedFds[0], data));
        Assert.True(await LogEnv.EventuallyAsync(() => File.Exists(path) && new FileInfo(path).Length >= data.Length, TimeSpan.FromSeconds(10)),
            $"{path} never got the bytes written into the received descriptor");
        Assert.Equal(data, File.ReadAllBytes(path));
    }
}

public class RecordsCheckTests
{
    [Fact]
    public void An_empty_log_is_not_a_matching_tail()
    {
        var expected = Records.Stream(0, 10, 32);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => Records.AssertTail(expected, [], "empty"));
        Records.AssertTail(expected, expected[^64..], "last two records");
        Records.AssertEqual([], [], "nothing written, nothing logged");
    }
}
