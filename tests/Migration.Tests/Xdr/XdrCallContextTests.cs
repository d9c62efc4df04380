using System.Buffers.Binary;
using Libvirt.Util;
using Libvirt.Xdr;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace Libvirt.Tests.Xdr;

/// <summary>The per-call context of the generated program interfaces:
/// fds in and out, pooled scratch and reply memory, reuse without allocation.</summary>
public sealed class XdrCallContextTests
{
    private sealed class EchoLog : IVirLogManagerProtocolProgram<string>
    {
        public VirResult<virLogManagerProtocolDomainOpenLogFileRet> DomainOpenLogFile(string client, XdrCallContext call,
            in virLogManagerProtocolDomainOpenLogFileArgs args)
        {
            // the fds that came with the call are borrowed; one goes back out
            call.AddFd(File.OpenHandle("/dev/null"));
            return new virLogManagerProtocolDomainOpenLogFileRet { pos = new() { inode = (ulong)call.ReceivedFds.Length, offset = 1 } };
        }

        public VirResult<virLogManagerProtocolDomainGetLogFilePositionRet> DomainGetLogFilePosition(string client, XdrCallContext call,
            in virLogManagerProtocolDomainGetLogFilePositionArgs args)
            => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, client);

        public VirResult<virLogManagerProtocolDomainReadLogFileRet> DomainReadLogFile(string client, XdrCallContext call,
            in virLogManagerProtocolDomainReadLogFileArgs args)
        {
            var data = call.Rent((int)args.maxlen);
            data.Span.Fill((byte)'z');
            return new virLogManagerProtocolDomainReadLogFileRet { data = data };
        }

        public VirResult<virLogManagerProtocolDomainAppendLogFileRet> DomainAppendLogFile(string client, XdrCallContext call,
            in virLogManagerProtocolDomainAppendLogFileArgs args)
            => new virLogManagerProtocolDomainAppendLogFileRet { ret = args.message.Length };
    }

    private static byte[] Encode<T>(in T value) where T : struct, IXdrCodec<T>
    {
        var buf = new byte[value.EncodedSize()];
        XdrCodec.Encode(value, buf, out _);
        return buf;
    }

    [Fact]
    public void Outgoing_fds_are_owned_until_reset_and_received_ones_are_seen()
    {
        var call = new XdrCallContext();
        call.SetReceivedFds([5, 6]);
        var args = Encode(new virLogManagerProtocolDomainOpenLogFileArgs
        {
            driver = "qemu"u8.ToArray(), dom = new() { uuid = new byte[16], name = "vm"u8.ToArray() }, path = "/p"u8.ToArray(),
        });
        Assert.Equal(XdrDispatchStatus.Ok, VirLogManagerProtocolProgram.Dispatch(new EchoLog(), "c", call, 1, args, out _, out _));
        Assert.Equal(1, call.OutgoingFdCount);
        var fd = call.OutgoingFd(0);
        Assert.False(fd.IsClosed);
        XdrCodec.Decode(call.Reply.WrittenMemory, out virLogManagerProtocolDomainOpenLogFileRet ret, out _);
        Assert.Equal(2ul, ret.pos.inode);
        call.Reset();
        Assert.True(fd.IsClosed);
        Assert.Equal(0, call.OutgoingFdCount);
        Assert.Equal(0, call.ReceivedFds.Length);
        Assert.Equal(0, call.Reply.WrittenCount);
    }

    [Fact]
    public void Results_in_rented_memory_are_encoded_before_it_goes_back()
    {
        var call = new XdrCallContext();
        var args = Encode(new virLogManagerProtocolDomainReadLogFileArgs { path = "/p"u8.ToArray(), maxlen = 100_000 });
        Assert.Equal(XdrDispatchStatus.Ok, VirLogManagerProtocolProgram.Dispatch(new EchoLog(), "c", call, 3, args, out _, out _));
        var reply = call.Reply.WrittenSpan;
        Assert.Equal(100_000, BinaryPrimitives.ReadInt32BigEndian(reply));
        Assert.Equal(4 + 100_000, reply.Length);
        Assert.True(reply[4..].IndexOfAnyExcept((byte)'z') < 0);
        call.Reset();
    }

    [Fact]
    public void An_error_value_is_returned_and_nothing_is_encoded()
    {
        var call = new XdrCallContext();
        var args = Encode(new virLogManagerProtocolDomainGetLogFilePositionArgs { path = "/p"u8.ToArray() });
        Assert.Equal(XdrDispatchStatus.Failed, VirLogManagerProtocolProgram.Dispatch(new EchoLog(), "gone", call, 2, args, out var err, out _));
        Assert.Equal("internal error: gone", err!.Message);
        Assert.Equal(0, call.Reply.WrittenCount);
    }

    [Fact]
    public void A_reused_context_serves_calls_without_allocating()
    {
        var impl = new EchoLog();
        var call = new XdrCallContext();
        ReadOnlyMemory<byte> read = Encode(new virLogManagerProtocolDomainReadLogFileArgs { path = "/p"u8.ToArray(), maxlen = 4096 });
        ReadOnlyMemory<byte> append = Encode(new virLogManagerProtocolDomainAppendLogFileArgs { path = "/p"u8.ToArray(), message = "m\n"u8.ToArray() });
        for (int i = 0; i < 10; i++) Run();
        Assert.Equal(0, Infrastructure.AllocationMeter.BytesOnThisThread(() =>
        {
            for (int i = 0; i < 1000; i++) Run();
        }));

        void Run()
        {
            if (VirLogManagerProtocolProgram.Dispatch(impl, "c", call, 3, read, out _, out _) != XdrDispatchStatus.Ok) throw new Exception();
            call.Reset();
            if (VirLogManagerProtocolProgram.Dispatch(impl, "c", call, 4, append, out _, out _) != XdrDispatchStatus.Ok) throw new Exception();
            call.Reset();
        }
    }
}
