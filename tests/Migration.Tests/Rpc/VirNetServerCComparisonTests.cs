using System.Net.Sockets;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Libvirt.Util;
using Xunit;
using TXdrWriter = Libvirt.Tests.Infrastructure.XdrWriter;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The same frames played against libvirt's C virtlockd (its own
/// virNetServer, in a sandbox) and against the managed server core in this
/// process: what comes back must be the same bytes (reply frames, the
/// descriptors returned, and whether the connection is closed). Only
/// framing and routing cases, where the fake procedure bodies of the
/// in-process server do not matter: each case ends with a probe call of an
/// unknown procedure, whose error reply both give whatever the bodies do.
/// </summary>
public sealed class VirNetServerCComparisonTests
{
    private const uint ProbeSerial = 999;

    private sealed record Case(string Name, byte[][] Frames, int FdsToSend = 0, int FdsBack = 0);

    private static IEnumerable<Case> Cases()
    {
        var register = Frames.Register();
        yield return new("REGISTER", [Frames.Call(1, 7, register)]);
        yield return new("unknown program", [Frames.Call(1, 3, prog: 0x12345678)]);
        yield return new("wrong version", [Frames.Call(1, 4, vers: 2)]);
        yield return new("unknown procedure", [Frames.Call(99, 5)]);
        yield return new("procedure 0", [Frames.Call(0, 6)]);
        yield return new("negative procedure", [Frames.Call(-1, 6)]);
        yield return new("status CONTINUE", [Frames.Build(Frames.LockProgram, 1, 1, RpcMessageType.Call, 7, RpcStatus.Continue, register)]);
        yield return new("status ERROR", [Frames.Build(Frames.LockProgram, 1, 1, RpcMessageType.Call, 7, RpcStatus.Error, register)]);
        yield return new("garbage arguments", [Frames.Call(1, 8, new byte[] { 1, 2, 3 })]);
        yield return new("string over its bound", [Frames.Call(3, 9, new TXdrWriter().UInt(65537).ToArray())]);
        yield return new("no arguments", [Frames.Call(1, 10)]);
        foreach (var t in new[] { RpcMessageType.Reply, RpcMessageType.Message, RpcMessageType.Stream, RpcMessageType.ReplyWithFds,
                     RpcMessageType.StreamHole, (RpcMessageType)77 })
        {
            yield return new($"lock program, type {t}", [Frames.Build(Frames.LockProgram, 1, 1, t, 3, RpcStatus.Ok, register)]);
            yield return new($"unknown program, type {t}", [Frames.Build(0x1234, 1, 1, t, 3, RpcStatus.Ok)]);
        }
        yield return new("keepalive PING", [Frames.Build(Frames.KeepAliveProgram, 1, 1, RpcMessageType.Message, 77, RpcStatus.Ok)]);
        yield return new("keepalive PONG", [Frames.Build(Frames.KeepAliveProgram, 1, 2, RpcMessageType.Message, 77, RpcStatus.Ok)]);
        yield return new("keepalive unknown procedure", [Frames.Build(Frames.KeepAliveProgram, 1, 5, RpcMessageType.Message, 77, RpcStatus.Ok)]);
        yield return new("keepalive as a CALL", [Frames.Build(Frames.KeepAliveProgram, 1, 1, RpcMessageType.Call, 4, RpcStatus.Ok)]);
        yield return new("CALL_WITH_FDS, arguments that do not decode", [Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 5,
            RpcStatus.Ok, [9, 9], nfds: 1)], FdsToSend: 1, FdsBack: 1);
        yield return new("CALL_WITH_FDS, unknown procedure", [Frames.Build(Frames.LockProgram, 1, 98, RpcMessageType.CallWithFds, 5,
            RpcStatus.Ok, nfds: 1)], FdsToSend: 1, FdsBack: 1);
        yield return new("CALL_WITH_FDS, unknown program", [Frames.Build(0x4321, 1, 1, RpcMessageType.CallWithFds, 5,
            RpcStatus.Ok, nfds: 2)], FdsToSend: 2, FdsBack: 2);
        yield return new("CALL_WITH_FDS with zero fds, unknown procedure", [Frames.Build(Frames.LockProgram, 1, 97, RpcMessageType.CallWithFds, 5,
            RpcStatus.Ok, nfds: 0)]);
        // closing
        yield return new("length 0", [new TXdrWriter().UInt(0).ToArray()]);
        yield return new("length 3", [new TXdrWriter().UInt(3).ToArray()]);
        yield return new("length 4", [new TXdrWriter().UInt(4).ToArray()]);
        yield return new("length 8", [new TXdrWriter().UInt(8).UInt(Frames.LockProgram).ToArray()]);
        yield return new("length 27", [new TXdrWriter().UInt(27).Raw(new byte[23]).ToArray()]);
        yield return new("one past the limit", [new TXdrWriter().UInt(33554432 + 4 + 1).ToArray()]);
        yield return new("length 0xffffffff", [new TXdrWriter().UInt(uint.MaxValue).ToArray()]);
        yield return new("CALL_WITH_FDS with 33 fds", [Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 1, RpcStatus.Ok,
            Frames.CreateResource("/p"), nfds: 33)]);
        yield return new("CALL_WITH_FDS without its count", [Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 1, RpcStatus.Ok)]);
        yield return new("CALL_WITH_FDS, a plain byte where the fd should be", [Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 1,
            RpcStatus.Ok, nfds: 1), [0]]);
    }

    /// <summary>What a server does with a case: the frames it sends (and
    /// how many descriptors follow each), then "closed" or the probe's reply.</summary>
    private static unsafe string Play(string socketPath, Case c)
    {
        var log = new List<string>();
        using var client = new SyncRpcClient(socketPath);
        int* pipe = stackalloc int[2];
        Assert.Equal(0, Libc.pipe2(pipe, Libc.O_CLOEXEC));
        try
        {
            try
            {
                foreach (var f in c.Frames)
                    client.Send(f);
                for (int i = 0; i < c.FdsToSend; i++)
                    client.SendFd(pipe[1]);
                client.Send(Frames.Call(99, ProbeSerial));
            }
            catch (SocketException)
            {
                // the server may have closed already: whether a send still
                // fits in the socket buffer is timing, not behaviour
            }
            while (true)
            {
                byte[]? frame;
                try
                {
                    frame = client.ReadFrame();
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
                {
                    frame = null;
                }
                if (frame is null)
                {
                    log.Add("closed");
                    break;
                }
                log.Add(Convert.ToHexString(frame));
                if (c.FdsBack > 0 && frame.Length > 28 && log.Count == 1)
                {
                    for (int i = 0; i < c.FdsBack; i++)
                    {
                        int fd = client.RecvFd();
                        log.Add("fd");
                        Libc.close(fd);
                    }
                }
                if (System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(frame.AsSpan(20)) == ProbeSerial)
                    break;
            }
        }
        finally
        {
            Libc.close(pipe[0]);
            Libc.close(pipe[1]);
        }
        return string.Join("\n", log);
    }

    [Fact]
    public async Task The_managed_core_answers_every_framing_case_as_the_C_virtlockd_does()
    {
        await using var env = await DaemonEnv.StartAsync(DaemonKind.C);
        using var ours = new VirNetServerHarness();
        var differences = new List<string>();
        int n = 0;
        foreach (var c in Cases())
        {
            string theirs = Play(env.Daemon.SocketHostPath, c);
            string mine = Play(ours.SocketPath, c);
            n++;
            if (theirs != mine)
                differences.Add($"{c.Name}:\n  C:    {theirs.Replace("\n", " | ")}\n  ours: {mine.Replace("\n", " | ")}");
        }
        Assert.True(env.Daemon.IsRunning, "the C daemon died");
        Assert.True(differences.Count == 0, $"{differences.Count} of {n} cases differ:\n" + string.Join("\n", differences));
    }
}
