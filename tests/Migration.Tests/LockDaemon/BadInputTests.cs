using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>
/// Malformed traffic. Each test first makes owner A hold an exclusive lease, then sends the bad input,
/// then checks the daemon still serves a fresh client and that A's lease is still held.
/// </summary>
public class BadInputTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    private sealed class Held : IAsyncDisposable
    {
        public required DaemonEnv Env;
        public required LockProtocolClient Holder;
        public required string Lockspace;
        public async ValueTask DisposeAsync() { Holder.Dispose(); await Env.DisposeAsync(); }
    }

    private static async Task<Held> SetupAsync(DaemonKind kind)
    {
        var env = await DaemonEnv.StartAsync(kind);
        var (a, _) = await env.ConnectOwnerAsync(1, "holder");
        var ls = await env.CreateLockspaceAsync(a);
        RpcAssert.Ok(await a.AcquireResourceAsync(ls, "held", LockProtocol.AcquireAutoCreate));
        return new Held { Env = env, Holder = a, Lockspace = ls };
    }

    private static async Task AssertStillHealthyAsync(Held h)
    {
        Assert.True(h.Env.Daemon.IsRunning, $"daemon died. stderr=[{h.Env.Daemon.Stderr}]");
        var (b, _) = await h.Env.ConnectOwnerAsync(2, "fresh");
        using var __ = b;
        RpcAssert.Ok(await b.CreateLockspaceAsync(h.Lockspace));
        RpcAssert.Locked(await b.AcquireResourceAsync(h.Lockspace, "held"), "held");
        // the original holder's connection is also still served
        RpcAssert.Ok(await h.Holder.AcquireResourceAsync(h.Lockspace, "held2", LockProtocol.AcquireAutoCreate));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Truncated_frame_then_close(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            var bytes = new XdrWriter().UInt(100).UInt(LockProtocol.Program).Raw(new byte[] { 0, 0 }).ToArray();
            Assert.Equal(10, bytes.Length);
            await raw.SendRawAsync(bytes);
        }
        await AssertStillHealthyAsync(h);
    }

    public static TheoryData<DaemonKind, uint> OversizedLengths()
    {
        var d = new TheoryData<DaemonKind, uint>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, 33554432 + 4 + 1);  // one past VIR_NET_MESSAGE_MAX (length word counts itself)
            d.Add(k, 40_000_000);
            d.Add(k, uint.MaxValue);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(OversizedLengths))]
    public async Task Oversized_length_closes_connection(DaemonKind kind, uint length)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            await raw.SendRawAsync(new XdrWriter().UInt(length).ToArray());
            var got = new List<byte>();
            Assert.True(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(5), got), "daemon must drop the connection");
            Assert.Empty(got); // no error reply
        }
        await AssertStillHealthyAsync(h);
    }

    /// <summary>Length exactly 4 + VIR_NET_MESSAGE_MAX is acceptable: the daemon waits for the body.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Maximum_length_is_accepted(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            await raw.SendRawAsync(new XdrWriter().UInt(33554432 + 4).ToArray());
            Assert.False(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(1)), "max-size length must not be rejected");
        }
        await AssertStillHealthyAsync(h);
    }

    public static TheoryData<DaemonKind, uint> ShortLengths()
    {
        var d = new TheoryData<DaemonKind, uint>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, 0);
            d.Add(k, 2);   // below the length word itself
            d.Add(k, 8);   // below 4 + header (28)
            d.Add(k, 27);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(ShortLengths))]
    public async Task Length_below_header_size_closes_connection(DaemonKind kind, uint length)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            var w = new XdrWriter().UInt(length);
            if (length > 4) w.Raw(new byte[length - 4]);
            await raw.SendRawAsync(w.ToArray());
            var got = new List<byte>();
            Assert.True(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(5), got), "daemon must drop the connection");
            Assert.Empty(got);
        }
        await AssertStillHealthyAsync(h);
    }

    public static TheoryData<DaemonKind, uint, uint, int, string> UnknownTargets()
    {
        var d = new TheoryData<DaemonKind, uint, uint, int, string>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, 0x1234, 1, 1, "Cannot find program 4660 version 1");
            d.Add(k, LockProtocol.Program, 2, 1, "Cannot find program 245874415 version 2");
            d.Add(k, LockProtocol.Program, 1, 99, "unknown procedure: 99");
            d.Add(k, LockProtocol.Program, 1, 0, "unknown procedure: 0");
            d.Add(k, LockProtocol.Program, 1, -1, "unknown procedure: -1");
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(UnknownTargets))]
    public async Task Unknown_program_version_or_procedure_gets_error_reply(DaemonKind kind, uint prog, uint vers, int proc, string message)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            var reply = await raw.CallAsync(prog, vers, proc, Array.Empty<byte>());
            // the reply echoes the request's program/version/procedure
            Assert.Equal(new RpcHeader(prog, vers, proc, RpcMessageType.Reply, reply.Header.Serial, RpcStatus.Error), reply.Header);
            var err = reply.Error!;
            RpcAssert.Error(err, Err.Rpc, Err.FromRpc, message);
            Assert.Equal("%s", err.Str1);
            Assert.Equal(message, err.Str2);
            // connection remains usable
            var lp = new LockProtocolClient(raw);
            RpcAssert.Ok(await lp.CreateLockspaceAsync(h.Lockspace));
        }
        await AssertStillHealthyAsync(h);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Garbage_register_payload_gets_decode_error(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        var owner = h.Env.Sandbox.StartOwnerChild();
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            var garbage = new byte[] { 0xde, 0xad, 0xbe };
            var reply = await raw.CallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcRegister, garbage);
            RpcAssert.Error(reply.Error, Err.Rpc, Err.FromRpc, "Unable to decode message payload");
            // string length larger than the payload
            var huge = new XdrWriter().OpaqueFixed(new byte[16]).UInt(1_000_000).ToArray();
            reply = await raw.CallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcRegister, huge);
            RpcAssert.Error(reply.Error, Err.Rpc, Err.FromRpc, "Unable to decode message payload");
            // the same connection can still register properly
            var lp = new LockProtocolClient(raw);
            RpcAssert.Ok(await lp.RegisterAsync((uint)owner.Pid, 3));
        }
        await AssertStillHealthyAsync(h);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Random_bytes_close_connection(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            var rnd = new byte[4096];
            new Random(1).NextBytes(rnd); // first word = 0x46D0C97E: far above the size limit
            await raw.SendRawAsync(rnd);
            Assert.True(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(5)), "daemon must drop the connection");
        }
        await AssertStillHealthyAsync(h);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Unexpected_message_type_is_ignored(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        using (var raw = await h.Env.Daemon.ConnectRawAsync())
        {
            await raw.SendRawAsync(RawRpcClient.BuildFrame(
                new RpcHeader(LockProtocol.Program, 1, LockProtocol.ProcRestrict, RpcMessageType.Message, 77, RpcStatus.Ok),
                LockProtocol.FlagsArgs(0)));
            var got = new List<byte>();
            Assert.False(await raw.WaitForPeerCloseAsync(TimeSpan.FromSeconds(1), got), "connection must stay open");
            Assert.Empty(got); // no reply at all
            var lp = new LockProtocolClient(raw);
            RpcAssert.Ok(await lp.CreateLockspaceAsync(h.Lockspace));
        }
        await AssertStillHealthyAsync(h);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Silent_client_does_not_block_others(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        using var silent = await h.Env.Daemon.ConnectRawAsync();
        using var half = await h.Env.Daemon.ConnectRawAsync();
        await half.SendRawAsync(new XdrWriter().UInt(100).UInt(1).ToArray()); // half a frame, then nothing
        await AssertStillHealthyAsync(h);
        Assert.False(await silent.WaitForPeerCloseAsync(TimeSpan.FromMilliseconds(200)));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Client_dying_mid_request(DaemonKind kind)
    {
        await using var h = await SetupAsync(kind);
        var relay = await OwnerConnection.StartAsync(h.Env.Sandbox, h.Env.Daemon.SocketHostPath);
        var frame = RawRpcClient.BuildFrame(new RpcHeader(LockProtocol.Program, 1, LockProtocol.ProcRegister, RpcMessageType.Call, 1, RpcStatus.Ok),
            LockProtocol.RegisterArgs(new byte[16], "dying", 1, (uint)relay.Pid));
        await relay.SendPartialAsync(frame[..(frame.Length / 2)]);
        relay.Process.Kill();
        Assert.False(relay.Process.IsRunning);
        await AssertStillHealthyAsync(h);
    }
}
