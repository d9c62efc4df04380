using System.Text;
using Libvirt.Tests.Fuzz;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>virtlogd's framing and descriptor passing, on the wire: what BadInputTests check for virtlockd.</summary>
public class RawFramingTests
{
    public static TheoryData<DaemonKind, uint> BadLengths()
    {
        var d = new TheoryData<DaemonKind, uint>();
        foreach (var k in new[] { DaemonKind.C, DaemonKind.Managed })
            foreach (var len in new uint[] { 0, 2, 8, 27, 33554432 + 4 + 1, 40_000_000, uint.MaxValue })
                d.Add(k, len);
        return d;
    }

    /// <summary>A length word below the header's size or above VIR_NET_MESSAGE_MAX: the connection is closed
    /// without a reply, and the daemon serves the next one.</summary>
    [Theory]
    [MemberData(nameof(BadLengths))]
    public async Task A_bad_length_word_closes_the_connection_only(DaemonKind kind, uint length)
    {
        await using var env = await LogEnv.StartAsync(kind);
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
        env.AssertAlive("after a bad length word");
        using var next = await env.RawAsync();
        var r = await next.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcGetPosition,
            LogProtocol.PositionArgs(env.LogPath("none.log"), 0));
        LogErr.Assert(r.Error, LogErr.InternalError, LogErr.FromLogging, LogErr.NotOpen(env.LogPath("none.log")));
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
