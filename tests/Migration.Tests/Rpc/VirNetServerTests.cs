using System.Buffers.Binary;
using Libvirt.Rpc;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;
using TXdrWriter = Libvirt.Tests.Infrastructure.XdrWriter;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The managed RPC server core (managed/Rpc: VirNetMessage, VirNetServerProgram,
/// VirNetServerClient, VirKeepAlive, VirNetServer, VirNetServerService) in
/// process: a real listening socket, the managed event loop, the lock
/// program over a fake body, raw clients. The expected bytes are libvirt's
/// framing as virnetserverprogram.c / virnetserver.c / virnetserverclient.c
/// produce it; <see cref="VirNetServerCComparisonTests"/> plays the same
/// frames against the C virtlockd.
/// </summary>
public sealed class VirNetServerTests
{
    [Fact]
    public void A_good_call_gets_the_reply_frame_libvirt_sends()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Call(1, 7, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 7), c.ReadFrame());
        c.Send(Frames.Call(3, 8, new TXdrWriter().String("/p").UInt(0).ToArray()));
        Assert.Equal(Frames.OkReply(3, 8), c.ReadFrame());
        Assert.Equal(2, h.OnLoop(() => h.Lock.Calls));
    }

    /// <summary>With the rpc sources let through, the lines of two clients
    /// carry two numbers where libvirt prints the client's address, each the
    /// same from the client's creation to its disposal, so one client's
    /// lines can be picked out as in C's log.</summary>
    [Fact]
    public void The_rpc_lines_name_each_client_by_one_number_of_its_own()
    {
        using var logging = new VirLogManaged(versionLine: "test");
        string log = Path.Combine(Path.GetTempPath(), $"rpc-lines-{Guid.NewGuid():N}.log");
        try
        {
            Assert.True(logging.SetFilters("1:rpc").Ok);
            Assert.True(logging.SetOutputs($"1:file:{log}").Ok);
            using (var h = new VirNetServerHarness(log: logging))
            {
                for (uint serial = 1; serial <= 2; serial++)
                {
                    using var c = h.Connect();
                    c.Send(Frames.Call(1, serial, Frames.Register()));
                    Assert.Equal(Frames.OkReply(1, serial), c.ReadFrame());
                    c.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
                    Assert.True(c.WaitClosed());
                    h.WaitFor(() => { h.Server.ProcessClients(); return h.Server.CurrentClients == 0; }, "the client dropped");
                }
            }
            string text = File.ReadAllText(log);
            var news = System.Text.RegularExpressions.Regex.Matches(text, @"RPC_SERVER_CLIENT_NEW: client=(0x[0-9a-f]+) sock=(0x[0-9a-f]+)");
            Assert.Equal(2, news.Count);
            Assert.NotEqual(news[0].Groups[1].Value, news[1].Groups[1].Value);
            for (int i = 0; i < 2; i++)
            {
                string client = news[i].Groups[1].Value, sock = news[i].Groups[2].Value;
                uint serial = (uint)i + 1;
                Assert.Contains($"virNetServerClientNew:436 : sock={sock} auth=0 tls=(nil)", text);
                Assert.Contains($"RPC_SERVER_CLIENT_MSG_RX: client={client} len=64 prog={Frames.LockProgram} vers=1 proc=1 type=0 status=0 serial={serial}", text);
                Assert.Contains($"RPC_SERVER_CLIENT_MSG_TX_QUEUE: client={client} len=28 prog={Frames.LockProgram} vers=1 proc=1 type=1 status=0 serial={serial}", text);
                Assert.Contains($"virNetServerClientCloseLocked:969 : client={client}", text);
                Assert.Contains($"RPC_SERVER_CLIENT_DISPOSE: client={client}", text);
                Assert.Contains($"RPC_SOCKET_DISPOSE: sock={sock}", text);
            }
        }
        finally
        {
            File.Delete(log);
        }
    }

    [Fact]
    public void An_error_value_becomes_the_error_reply_with_every_field()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Call(2, 9, new TXdrWriter().UInt(0).ToArray()));
        var e = FakeLockProgram.RestrictError;
        var expected = Frames.Build(Frames.LockProgram, 1, 2, RpcMessageType.Reply, 9, RpcStatus.Error,
            new RpcError(e.Code, e.Domain, e.Message, 2, null, e.Str1, e.Str2, null, -1, -1, null).Encode());
        Assert.Equal(expected, c.ReadFrame());
        Assert.Equal("Requested operation is not valid: restricted by the fake", RpcError.Decode(expected[28..]).Message);
    }

    [Fact]
    public void An_exception_of_a_body_is_an_internal_error_reply_and_the_client_is_still_served()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Call(6, 1, new TXdrWriter().String("/p").String("r").UInt(0).ToArray()));
        var msg = Decode(c.ReadFrame()!);
        Assert.Equal(RpcStatus.Error, msg.Header.Status);
        Assert.Equal((1, 7, "internal error: the fake throws"), (msg.Error!.Code, msg.Error.Domain, msg.Error.Message));
        c.Send(Frames.Call(1, 2, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 2), c.ReadFrame());
    }

    public static TheoryData<string, byte[], byte[]> RoutingErrors()
    {
        var d = new TheoryData<string, byte[], byte[]>();
        // virNetServerProgramUnknownError: the request's program and version in the reply
        d.Add("unknown program", Frames.Call(1, 3, prog: 0x12345678),
            Frames.RpcErrorReply(0x12345678, 1, 1, 3, "Cannot find program 305419896 version 1"));
        d.Add("wrong version", Frames.Call(1, 4, vers: 2),
            Frames.RpcErrorReply(Frames.LockProgram, 2, 1, 4, "Cannot find program 245874415 version 2"));
        // virNetServerProgramDispatchCall
        d.Add("unknown procedure", Frames.Call(99, 5),
            Frames.RpcErrorReply(Frames.LockProgram, 1, 99, 5, "unknown procedure: 99"));
        d.Add("procedure 0", Frames.Call(0, 6),
            Frames.RpcErrorReply(Frames.LockProgram, 1, 0, 6, "unknown procedure: 0"));
        d.Add("status not OK", Frames.Build(Frames.LockProgram, 1, 1, RpcMessageType.Call, 7, RpcStatus.Continue, Frames.Register()),
            Frames.RpcErrorReply(Frames.LockProgram, 1, 1, 7, "Unexpected message status 2"));
        d.Add("garbage arguments", Frames.Call(1, 8, new byte[] { 1, 2, 3 }),
            Frames.RpcErrorReply(Frames.LockProgram, 1, 1, 8, "Unable to decode message payload"));
        d.Add("string over its bound", Frames.Call(3, 9, new TXdrWriter().UInt(65537).ToArray()),
            Frames.RpcErrorReply(Frames.LockProgram, 1, 3, 9, "Unable to decode message payload"));
        return d;
    }

    [Theory]
    [MemberData(nameof(RoutingErrors))]
    public void A_call_that_cannot_be_served_gets_libvirts_error_reply_and_the_connection_stays(string what, byte[] frame, byte[] reply)
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(frame);
        Assert.Equal(reply, c.ReadFrame());
        c.Send(Frames.Call(1, 100, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 100), c.ReadFrame());
    }

    public static TheoryData<string, byte[]> Unanswered()
    {
        var d = new TheoryData<string, byte[]>();
        foreach (var t in new[] { RpcMessageType.Reply, RpcMessageType.Message, RpcMessageType.Stream, RpcMessageType.ReplyWithFds,
                     RpcMessageType.StreamHole, (RpcMessageType)77 })
        {
            d.Add($"lock program, type {t}", Frames.Build(Frames.LockProgram, 1, 1, t, 3, RpcStatus.Ok, Frames.Register()));
            d.Add($"unknown program, type {t}", Frames.Build(0x1234, 1, 1, t, 3, RpcStatus.Ok));
        }
        d.Add("keepalive program, version 2", Frames.Build(Frames.KeepAliveProgram, 2, 1, RpcMessageType.Message, 3, RpcStatus.Ok));
        return d;
    }

    /// <summary>Messages that are not calls get no reply (the dummy reply
    /// frees their slot): the next frame the client reads answers its next call.</summary>
    [Theory]
    [MemberData(nameof(Unanswered))]
    public void A_message_that_is_not_a_call_is_dropped_silently(string what, byte[] frame)
    {
        using var h = new VirNetServerHarness(maxRequests: 1);
        using var c = h.Connect();
        for (int i = 0; i < 3; i++)
            c.Send(frame);
        c.Send(Frames.Call(1, 50, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 50), c.ReadFrame());
    }

    [Fact]
    public void A_keepalive_call_to_an_unserved_program_gets_the_unknown_program_error()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Build(Frames.KeepAliveProgram, 1, 1, RpcMessageType.Call, 4, RpcStatus.Ok));
        Assert.Equal(Frames.RpcErrorReply(Frames.KeepAliveProgram, 1, 1, 4, "Cannot find program 1801807216 version 1"), c.ReadFrame());
    }

    public static TheoryData<string, byte[]> ClosingFrames()
    {
        var d = new TheoryData<string, byte[]>();
        d.Add("length 0", new TXdrWriter().UInt(0).ToArray());
        d.Add("length 3", new TXdrWriter().UInt(3).ToArray());
        d.Add("length 4 (no header)", new TXdrWriter().UInt(4).ToArray());
        d.Add("length 8 (half a header)", new TXdrWriter().UInt(8).UInt(Frames.LockProgram).ToArray());
        d.Add("length 27", new TXdrWriter().UInt(27).Raw(new byte[23]).ToArray());
        d.Add("one past the limit", new TXdrWriter().UInt(33554432 + 4 + 1).ToArray());
        d.Add("length 0xffffffff", new TXdrWriter().UInt(uint.MaxValue).ToArray());
        d.Add("CALL_WITH_FDS with 33 fds",
            Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 1, RpcStatus.Ok, Frames.CreateResource("/p"), nfds: 33));
        d.Add("CALL_WITH_FDS without its count", Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 1, RpcStatus.Ok));
        return d;
    }

    /// <summary>virNetMessageDecodeLength / DecodeHeader / DecodeNumFDs
    /// failures, and virNetServerClientRead's zero length: the client is
    /// closed with no reply, and the server goes on serving others.</summary>
    [Theory]
    [MemberData(nameof(ClosingFrames))]
    public void A_bad_frame_closes_the_connection_without_a_reply(string what, byte[] frame)
    {
        using var h = new VirNetServerHarness();
        using var other = h.Connect();
        other.Send(Frames.Call(1, 1, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 1), other.ReadFrame());
        using (var c = h.Connect())
        {
            c.Send(frame);
            var got = new List<byte>();
            Assert.True(c.WaitClosed(got), "the server must drop the connection");
            Assert.Empty(got);
        }
        h.WaitFor(() => h.Server.CurrentClients == 1, "the bad client forgotten");
        other.Send(Frames.Call(1, 2, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 2), other.ReadFrame());
    }

    [Fact]
    public void A_client_that_disconnects_mid_frame_is_closed_and_forgotten()
    {
        using var h = new VirNetServerHarness();
        using (var c = h.Connect())
        {
            var frame = Frames.Call(1, 1, Frames.Register());
            c.Send(frame.AsSpan(0, 10)); // the length word and part of the header
            h.WaitFor(() => h.Server.CurrentClients == 1, "the client accepted");
        }
        h.WaitFor(() => h.Server.CurrentClients == 0, "the client closed");
        using var next = h.Connect();
        next.Send(Frames.Call(1, 1, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 1), next.ReadFrame());
    }

    [Fact]
    public void A_frame_sent_byte_by_byte_is_served()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        foreach (byte b in Frames.Call(1, 11, Frames.Register()))
        {
            c.Send([b]);
            Thread.Sleep(1); // most bytes arrive on their own
        }
        Assert.Equal(Frames.OkReply(1, 11), c.ReadFrame());
    }

    [Fact]
    public unsafe void Descriptors_pass_both_ways_CALL_WITH_FDS_in_REPLY_WITH_FDS_out()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        int* p1 = stackalloc int[2], p2 = stackalloc int[2];
        Assert.Equal(0, Libc.pipe2(p1, Libc.O_CLOEXEC));
        Assert.Equal(0, Libc.pipe2(p2, Libc.O_CLOEXEC));
        try
        {
            c.Send(Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 21, RpcStatus.Ok, Frames.CreateResource("/abc"), nfds: 2));
            c.SendFd(p1[1]);
            c.SendFd(p2[1]);
            // REPLY_WITH_FDS: the header, the count, no result; then one descriptor per byte
            Assert.Equal(Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.ReplyWithFds, 21, RpcStatus.Ok, nfds: 2), c.ReadFrame());
            int back1 = c.RecvFd(), back2 = c.RecvFd();
            // the body wrote into what it received; the descriptors returned are the same pipes
            Assert.Equal("/abc", ReadPipe(p1[0], 4));
            Assert.Equal("/abc", ReadPipe(p2[0], 4));
            WriteFd(back1, "one");
            WriteFd(back2, "two");
            Assert.Equal("one", ReadPipe(p1[0], 3));
            Assert.Equal("two", ReadPipe(p2[0], 3));
            Libc.close(back1);
            Libc.close(back2);
            Assert.Equal(2, h.OnLoop(() => h.Lock.LastReceivedFds));
            // and the connection goes on with plain calls
            c.Send(Frames.Call(1, 22, Frames.Register()));
            Assert.Equal(Frames.OkReply(1, 22), c.ReadFrame());
        }
        finally
        {
            for (int i = 0; i < 2; i++) { Libc.close(p1[i]); Libc.close(p2[i]); }
        }
    }

    /// <summary>The frame first, its descriptors later: the client waits for
    /// them (virNetServerClientDispatchRead's "need to poll() until FDs
    /// arrive") and only then dispatches the call.</summary>
    [Fact]
    public unsafe void Descriptors_that_arrive_after_their_frame_are_waited_for()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        int* p = stackalloc int[2];
        Assert.Equal(0, Libc.pipe2(p, Libc.O_CLOEXEC));
        try
        {
            c.Send(Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 3, RpcStatus.Ok, Frames.CreateResource("/late"), nfds: 1));
            h.WaitFor(() => h.Server.CurrentClients == 1, "the client accepted");
            Thread.Sleep(100); // let the server read the frame and find no descriptor yet
            Assert.Equal(0, h.OnLoop(() => h.Lock.LastReceivedFds + h.Lock.Calls));
            c.SendFd(p[1]);
            Assert.Equal(Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.ReplyWithFds, 3, RpcStatus.Ok, nfds: 1), c.ReadFrame());
            Libc.close(c.RecvFd());
            Assert.Equal("/late", ReadPipe(p[0], 5));
        }
        finally
        {
            Libc.close(p[0]);
            Libc.close(p[1]);
        }
    }

    /// <summary>virNetServerProgramDispatchCall keeps a call's received
    /// descriptors in the message when its arguments do not decode, and
    /// virNetServerClientDispatchWrite sends a message's descriptors after
    /// its bytes: the error REPLY carries them back.</summary>
    [Fact]
    public unsafe void Descriptors_of_a_call_whose_arguments_do_not_decode_come_back_after_the_error_reply()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        int* p = stackalloc int[2];
        Assert.Equal(0, Libc.pipe2(p, Libc.O_CLOEXEC));
        try
        {
            c.Send(Frames.Build(Frames.LockProgram, 1, 4, RpcMessageType.CallWithFds, 5, RpcStatus.Ok, [9, 9], nfds: 1));
            c.SendFd(p[1]);
            Assert.Equal(Frames.RpcErrorReply(Frames.LockProgram, 1, 4, 5, "Unable to decode message payload"), c.ReadFrame());
            int back = c.RecvFd();
            WriteFd(back, "x");
            Libc.close(back);
            Assert.Equal("x", ReadPipe(p[0], 1));
        }
        finally
        {
            Libc.close(p[0]);
            Libc.close(p[1]);
        }
    }

    [Fact]
    public async Task Many_clients_at_once_each_get_their_own_replies_in_order()
    {
        using var h = new VirNetServerHarness(maxClients: 64);
        const int clients = 24, calls = 40;
        var tasks = Enumerable.Range(0, clients).Select(i => Task.Run(() =>
        {
            using var c = h.Connect();
            for (int k = 0; k < calls; k++)
            {
                uint serial = (uint)(i * 1000 + k);
                // two calls in flight, then both replies
                c.Send([.. Frames.Call(1, serial, Frames.Register($"c{i}")), .. Frames.Call(2, serial + 500, new TXdrWriter().UInt(0).ToArray())]);
                Assert.Equal(Frames.OkReply(1, serial), c.ReadFrame());
                var err = Decode(c.ReadFrame()!);
                Assert.Equal((serial + 500, RpcStatus.Error), (err.Header.Serial, err.Header.Status));
            }
        })).ToArray();
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(clients * calls, h.OnLoop(() => h.Lock.Calls));
        h.WaitFor(() => h.Server.CurrentClients == 0, "all clients closed");
    }

    [Fact]
    public void The_request_limit_throttles_reading_and_every_call_is_answered_in_order()
    {
        using var h = new VirNetServerHarness(maxRequests: 2);
        using var c = h.Connect();
        var burst = new List<byte>();
        for (uint s = 1; s <= 50; s++)
            burst.AddRange(Frames.Call(1, s, Frames.Register()));
        c.Send(burst.ToArray());
        for (uint s = 1; s <= 50; s++)
            Assert.Equal(Frames.OkReply(1, s), c.ReadFrame());
        Assert.True(h.OnLoop(() => h.Server.Clients.All(x => x.Requests <= x.MaxRequests)));
    }

    [Fact]
    public void A_keepalive_PING_is_answered_with_a_PONG_and_goes_no_further()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Build(Frames.KeepAliveProgram, 1, 1, RpcMessageType.Message, 77, RpcStatus.Ok));
        // virKeepAliveMessage: a fresh message, serial 0
        Assert.Equal(Frames.Build(Frames.KeepAliveProgram, 1, 2, RpcMessageType.Message, 0, RpcStatus.Ok), c.ReadFrame());
        // a PONG and an unknown keepalive procedure get nothing
        c.Send(Frames.Build(Frames.KeepAliveProgram, 1, 2, RpcMessageType.Message, 1, RpcStatus.Ok));
        c.Send(Frames.Build(Frames.KeepAliveProgram, 1, 9, RpcMessageType.Message, 1, RpcStatus.Ok));
        c.Send(Frames.Call(1, 3, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 3), c.ReadFrame());
        Assert.Equal(1, h.OnLoop(() => h.Lock.Calls));
    }

    [Fact]
    public void A_started_keepalive_pings_an_idle_client_and_closes_it_when_it_does_not_answer()
    {
        using var h = new VirNetServerHarness(keepaliveInterval: 1, keepaliveCount: 1);
        using var c = h.Connect();
        c.Send(Frames.Call(1, 1, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 1), c.ReadFrame());
        Assert.True(h.OnLoop(() => h.Server.Clients.Single().StartKeepAlive().Ok));
        Assert.Equal(Frames.Build(Frames.KeepAliveProgram, 1, 1, RpcMessageType.Message, 0, RpcStatus.Ok), c.ReadFrame());
        // no PONG: after count pings the connection is dead
        Assert.True(c.WaitClosed(), "the server must close a client that stopped answering");
        h.WaitFor(() => h.Server.CurrentClients == 0, "the dead client forgotten");
    }

    [Fact]
    public void At_max_clients_the_service_stops_accepting_and_resumes_when_a_client_goes()
    {
        using var h = new VirNetServerHarness(maxClients: 2);
        using var a = h.Connect();
        using var b = h.Connect();
        a.Send(Frames.Call(1, 1, Frames.Register()));
        b.Send(Frames.Call(1, 1, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 1), a.ReadFrame());
        Assert.Equal(Frames.OkReply(1, 1), b.ReadFrame());
        Assert.False(h.OnLoop(() => h.Service.Enabled));
        using var third = h.Connect(); // the kernel's backlog takes it
        third.Send(Frames.Call(1, 3, Frames.Register()));
        Assert.Equal(2, h.OnLoop(() => h.Server.CurrentClients));
        a.Dispose();
        Assert.Equal(Frames.OkReply(1, 3), third.ReadFrame());
        Assert.Equal(2, h.OnLoop(() => h.Server.CurrentClients));
        Assert.False(h.OnLoop(() => h.Service.Enabled));
    }

    [Fact]
    public void Unauthenticated_clients_count_against_max_anonymous_clients_and_get_authentication_required()
    {
        using var h = new VirNetServerHarness(maxClients: 10, maxAnonymous: 1, auth: VirNetServerServiceAuth.Sasl);
        using var a = h.Connect();
        a.Send(Frames.Call(1, 1, Frames.Register()));
        Assert.Equal(Frames.RpcErrorReply(Frames.LockProgram, 1, 1, 1, "authentication required"), a.ReadFrame());
        Assert.Equal((1, 1, false), h.OnLoop(() => (h.Server.CurrentClients, h.Server.CurrentUnauthClients, h.Service.Enabled)));
        // authenticated: no longer anonymous, so the service accepts again, and calls are served
        h.OnLoop(() => { h.Server.SetClientAuthenticated(h.Server.Clients.Single()); return 0; });
        Assert.Equal((0, true), h.OnLoop(() => (h.Server.CurrentUnauthClients, h.Service.Enabled)));
        a.Send(Frames.Call(1, 2, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 2), a.ReadFrame());
        Assert.False(h.OnLoop(() => h.Server.SetClientLimits(0, 1).Ok)); // max below max_anonymous is refused
    }

    [Fact]
    public void The_peer_credentials_are_the_connecting_process()
    {
        using var h = new VirNetServerHarness();
        using var c = h.Connect();
        c.Send(Frames.Call(1, 1, Frames.Register()));
        c.ReadFrame();
        var id = h.OnLoop(() => h.Server.Clients.Single().GetUNIXIdentity());
        Assert.True(id.Ok);
        Assert.Equal((Libc.geteuid(), Environment.ProcessId), (id.Value.Uid, id.Value.Pid));
    }

    /// <summary>The steady-state call path (read, route, decode, body,
    /// encode, queue, write) allocates nothing: the loop runs on this
    /// thread, and only its iterations are counted.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Serving_calls_allocates_nothing_in_the_steady_state(bool rpcLinesFilteredOut)
    {
        // with a logging target whose filters drop the rpc sources' lines
        // (another source at debug), the lines are asked for and not formatted
        using var logging = new VirLogManaged(versionLine: "test");
        Assert.True(logging.SetFilters("1:util 3:rpc").Ok);
        Assert.True(logging.SetOutputs("1:file:/dev/null").Ok);
        using var h = new VirNetServerHarness(loopThread: false, log: rpcLinesFilteredOut ? logging : null);
        using var c = h.Connect();
        var call = Frames.Call(1, 5, Frames.Register());
        var reply = new byte[28];
        long allocated = 0;
        var where = new List<string>();
        // no iteration waits longer than this, should a reply never come
        int watchdog = h.Loop.AddTimeout(2000, static _ => { }, null);
        Assert.True(watchdog > 0);
        var ok = Frames.OkReply(1, 5);
        void Serve(int i)
        {
            // accept (first time), read and dispatch, write: until the reply is out
            long used = ServeOnThisThread(h, c, call, reply, ok);
            if (used != 0)
            {
                allocated += used;
                where.Add($"iteration {i}: {used} bytes");
            }
        }
        for (int i = 0; i < 100; i++)
            Serve(i); // warm up
        // counted only in a run no collection interrupted (AllocationMeter)
        AllocationMeter.RunWithoutCollection(() =>
        {
            allocated = 0;
            where.Clear();
            for (int i = 100; i < 1100; i++)
                Serve(i);
        });
        Assert.True(allocated == 0, string.Join("; ", where));
    }

    /// <summary>A connection's whole life on the server (accept, the client
    /// and its keepalive made, a call served, end of file, close, the client
    /// forgotten) allocates nothing once warmed up: libvirt's lock client opens
    /// a connection per acquire and per release, so this is virtlockd's hot
    /// path. The loop runs on this thread; only its iterations are counted.</summary>
    [Fact]
    public void A_connection_allocates_nothing_in_the_steady_state()
    {
        using var h = new VirNetServerHarness(loopThread: false);
        var call = Frames.Call(1, 5, Frames.Register());
        var reply = new byte[28];
        var ok = Frames.OkReply(1, 5);
        long allocated = 0;
        var where = new List<string>();
        int watchdog = h.Loop.AddTimeout(2000, static _ => { }, null);
        Assert.True(watchdog > 0);
        void Connection(int i)
        {
            using (var c = h.Connect())
            {
                long used = ServeOnThisThread(h, c, call, reply, ok);
                Assert.Equal(1, h.Server.CurrentClients);
                allocated += used;
                if (used != 0)
                    where.Add($"connection {i}, until the reply: {used} bytes");
            }
            long before2 = GC.GetAllocatedBytesForCurrentThread();
            for (int k = 0; k < 50 && h.Server.CurrentClients > 0; k++)
                h.Loop.RunOnce().ThrowIfFailed();
            long used2 = GC.GetAllocatedBytesForCurrentThread() - before2;
            Assert.Equal(0, h.Server.CurrentClients);
            allocated += used2;
            if (used2 != 0)
                where.Add($"connection {i}, closing: {used2} bytes");
        }
        for (int i = 0; i < 100; i++)
            Connection(i); // warm up
        AllocationMeter.RunWithoutCollection(() =>
        {
            allocated = 0;
            where.Clear();
            for (int i = 100; i < 600; i++)
                Connection(i);
        });
        Assert.True(allocated == 0, string.Join("; ", where.Take(20)));
    }

    /// <summary>A client the server reuses for a new connection starts as a
    /// new one: its own id, no private data, no state of the last connection
    /// (a restricted or registered client of the fake program would show).</summary>
    [Fact]
    public void A_reused_client_starts_afresh()
    {
        using var h = new VirNetServerHarness();
        ulong firstId;
        using (var a = h.Connect())
        {
            a.Send(Frames.Call(1, 1, Frames.Register()));
            Assert.Equal(Frames.OkReply(1, 1), a.ReadFrame());
            firstId = h.OnLoop(() =>
            {
                var c = h.Server.Clients.Single();
                c.PrivateData = "first";
                return c.Id;
            });
        }
        h.WaitFor(() => h.Server.CurrentClients == 0, "the first client forgotten");
        using var b = h.Connect();
        b.Send(Frames.Call(1, 2, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 2), b.ReadFrame());
        var (id, priv, closed, requests) = h.OnLoop(() =>
        {
            var c = h.Server.Clients.Single();
            return (c.Id, c.PrivateData, c.IsClosed, c.Requests);
        });
        Assert.Equal(firstId + 1, id);
        Assert.Null(priv);
        Assert.False(closed);
        Assert.Equal(1, requests);
        // and it serves as any new client does
        b.Send(Frames.Call(1, 3, Frames.Register()));
        Assert.Equal(Frames.OkReply(1, 3), b.ReadFrame());
    }

    /// <summary>Sends <paramref name="call"/>, runs the loop on this thread
    /// until the reply can be read (bounded), checks it is <paramref name="expected"/>:
    /// what those iterations allocated on the thread.</summary>
    private static long ServeOnThisThread(VirNetServerHarness h, SyncRpcClient c, byte[] call, byte[] reply, byte[] expected)
    {
        c.Send(call);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int k = 0; k < 50 && c.Socket.Available < reply.Length; k++)
            h.Loop.RunOnce().ThrowIfFailed();
        long used = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(reply.Length, c.Socket.Receive(reply));
        Assert.Equal(expected, reply);
        return used;
    }

    private static RpcMessage Decode(byte[] frame)
    {
        var r = new Infrastructure.XdrReader(frame, 4);
        var header = RpcHeader.Read(r);
        return new RpcMessage(header, frame[28..]);
    }

    private static unsafe string ReadPipe(int fd, int n)
    {
        var buf = new byte[n];
        int got = 0;
        fixed (byte* p = buf)
            while (got < n)
            {
                nint r = Libc.read(fd, p + got, (nuint)(n - got));
                Assert.True(r > 0);
                got += (int)r;
            }
        return System.Text.Encoding.ASCII.GetString(buf);
    }

    private static unsafe void WriteFd(int fd, string s)
    {
        var b = System.Text.Encoding.ASCII.GetBytes(s);
        fixed (byte* p = b)
            Assert.Equal(b.Length, (int)Libc.write(fd, p, (nuint)b.Length));
    }
}
