using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Tests.Contracts;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Libvirt.Xdr;
using Microsoft.Win32.SafeHandles;
using Xunit;
using static Libvirt.Interop.Methods;
using virNetMessageError = Libvirt.Interop.virNetMessageError;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The entry point every procedure table entry is
/// (<see cref="VirNetServerProgramNative.Serve{TBinding}"/>), called as
/// libvirt's dispatcher calls it: on a message whose buffer holds the
/// undecoded arguments after the header, with the reply struct the shim's
/// pass-through filter writes. The daemon suites cover it end to end; here
/// its contract in isolation: arguments in, reply bytes and fds out, error
/// values into libvirt's error reply, nothing allocated on the way.
/// </summary>
public sealed unsafe class VirNetServerProgramNativeTests : IClassFixture<LibvirtFixture>, IDisposable
{
    /// <summary>The program the fake binding serves (a test has no daemon to
    /// hang it on).</summary>
    private static readonly FakeLogProgram s_impl = new();

    private readonly virNetMessage* _msg;
    private readonly virtshimXdrReply* _reply;
    private readonly virNetMessageError* _rerr;

    public VirNetServerProgramNativeTests(LibvirtFixture libvirt)
    {
        _ = libvirt;
        _msg = (virNetMessage*)NativeMemory.AllocZeroed((nuint)sizeof(virNetMessage));
        _reply = (virtshimXdrReply*)NativeMemory.AllocZeroed((nuint)sizeof(virtshimXdrReply));
        _rerr = (virNetMessageError*)NativeMemory.AllocZeroed((nuint)sizeof(virNetMessageError));
    }

    public void Dispose()
    {
        NativeMemory.Free(_msg->buffer);
        NativeMemory.Free(_msg);
        NativeMemory.Free(_reply);
        NativeMemory.Free(_rerr);
    }

    private sealed class FakeLogProgram : IVirLogManagerProtocolProgram<int>
    {
        public SafeFileHandle? NextFd;

        public VirResult<virLogManagerProtocolDomainOpenLogFileRet> DomainOpenLogFile(int client, XdrCallContext call,
            in virLogManagerProtocolDomainOpenLogFileArgs args)
        {
            call.AddFd(NextFd!);
            NextFd = null;
            return new virLogManagerProtocolDomainOpenLogFileRet { pos = new() { inode = 7, offset = 9 } };
        }

        public VirResult<virLogManagerProtocolDomainGetLogFilePositionRet> DomainGetLogFilePosition(int client, XdrCallContext call,
            in virLogManagerProtocolDomainGetLogFilePositionArgs args)
            => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "no such log");

        public VirResult<virLogManagerProtocolDomainReadLogFileRet> DomainReadLogFile(int client, XdrCallContext call,
            in virLogManagerProtocolDomainReadLogFileArgs args)
        {
            // echo the path, maxlen times over, through pooled memory
            var data = call.Rent(args.path.Length * (int)args.maxlen);
            for (int i = 0; i < (int)args.maxlen; i++)
                args.path.Span.CopyTo(data.Span[(i * args.path.Length)..]);
            return new virLogManagerProtocolDomainReadLogFileRet { data = data };
        }

        public VirResult<virLogManagerProtocolDomainAppendLogFileRet> DomainAppendLogFile(int client, XdrCallContext call,
            in virLogManagerProtocolDomainAppendLogFileArgs args)
            => new virLogManagerProtocolDomainAppendLogFileRet { ret = args.message.Length };
    }

    private struct Binding : IVirNetServerProgramBinding
    {
        public static XdrDispatchStatus Dispatch(virNetServerClient* client, XdrCallContext call, int procedure,
            ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError)
            => VirLogManagerProtocolProgram.Dispatch(s_impl, 0, call, procedure, args, out error, out xdrError);

        public static string Function(int procedure) => "testDispatch";

        public static virErrorDomain ExceptionDomain => virErrorDomain.VIR_FROM_RPC;
    }

    /// <summary>A message as libvirt has it when it calls the procedure:
    /// a 28-byte header already read, the arguments after it.</summary>
    private void Message<T>(int procedure, in T args) where T : struct, IXdrCodec<T>
        => RawMessage(procedure, Encode(args));

    private void RawMessage(int procedure, byte[] payload)
    {
        NativeMemory.Free(_msg->buffer);
        const int header = 28;
        int length = header + payload.Length;
        var buf = (byte*)NativeMemory.AllocZeroed((nuint)length);
        payload.CopyTo(new Span<byte>(buf + header, payload.Length));
        _msg->buffer = (sbyte*)buf;
        _msg->bufferLength = (nuint)length;
        _msg->bufferOffset = header;
        _msg->header.proc = procedure;
        *_reply = default;
        *_rerr = default;
    }

    private static byte[] Encode<T>(in T value) where T : struct, IXdrCodec<T>
    {
        var buf = new byte[value.EncodedSize()];
        Assert.Equal(XdrError.None, XdrCodec.Encode(value, buf, out _));
        return buf;
    }

    private int Serve() => VirNetServerProgramNative.Serve<Binding>(null, _msg, _rerr, _reply);

    private ReadOnlySpan<byte> ReplyBytes => new(_reply->data, (int)_reply->len);

    private static virLogManagerProtocolDomainReadLogFileArgs Read(string path, int times)
        => new() { path = System.Text.Encoding.UTF8.GetBytes(path), maxlen = (ulong)times };

    [Fact]
    public void Arguments_are_decoded_from_the_message_and_the_reply_is_the_generated_encoding()
    {
        Message(3, Read("abc", 2));
        Assert.Equal(0, Serve());
        // a small reply stays in the struct libvirt allocated
        Assert.True(_reply->data == _reply->inline_data);
        var expected = Encode(new virLogManagerProtocolDomainReadLogFileRet { data = "abcabc"u8.ToArray() });
        Assert.Equal(expected, ReplyBytes.ToArray());
        Assert.Equal(0, _rerr->code);
    }

    [Fact]
    public void A_large_reply_goes_to_glib_memory_the_filter_frees()
    {
        Message(3, Read("0123456789abcdef", 100));
        Assert.Equal(0, Serve());
        Assert.False(_reply->data == _reply->inline_data);
        Assert.Equal(4 + 1600, (int)_reply->len);
        Assert.Equal(1600, BinaryPrimitives.ReadInt32BigEndian(ReplyBytes));
        GLib.g_free(_reply->data); // what virtshimXdrReplyBytes does at XDR_FREE
    }

    [Fact]
    public void A_reply_with_fds_hands_libvirt_a_duplicate_and_closes_its_own()
    {
        int* fds = stackalloc int[2];
        Assert.Equal(0, Libc.pipe2(fds, 0));
        int r = fds[0], w = fds[1];
        using var readEnd = new SafeFileHandle(r, ownsHandle: true);
        var writeEnd = new SafeFileHandle(w, ownsHandle: true);
        s_impl.NextFd = writeEnd;
        Message(1, new virLogManagerProtocolDomainOpenLogFileArgs
        {
            driver = "qemu"u8.ToArray(), dom = new() { uuid = new byte[16], name = "vm"u8.ToArray() }, path = "/p"u8.ToArray(),
        });
        Assert.Equal(1, Serve()); // REPLY_WITH_FDS
        Assert.True(writeEnd.IsClosed);
        Assert.Equal(1, (int)_msg->nfds);
        int dup = _msg->fds[0];
        Assert.True(dup >= 0);
        // the duplicate is the pipe's write end: a byte through it arrives
        byte x = (byte)'x';
        Assert.Equal(1, (int)Libc.write(dup, &x, 1));
        Libc.close(dup);
        byte got;
        Assert.Equal(1, (int)Libc.read(r, &got, 1));
        Assert.Equal(x, got);
        GLib.g_free(_msg->fds);
        _msg->fds = null;
        _msg->nfds = 0;
        Assert.Equal(Encode(new virLogManagerProtocolDomainOpenLogFileRet { pos = new() { inode = 7, offset = 9 } }), ReplyBytes.ToArray());
    }

    [Fact]
    public void An_error_value_becomes_libvirts_error_reply()
    {
        Message(2, new virLogManagerProtocolDomainGetLogFilePositionArgs { path = "/p"u8.ToArray() });
        Assert.Equal(-1, Serve());
        Assert.Equal((int)virErrorNumber.VIR_ERR_INTERNAL_ERROR, _rerr->code);
        Assert.Equal((int)virErrorDomain.VIR_FROM_RPC, _rerr->domain);
        Assert.Equal("internal error: no such log", NativeUtf8.Read(*_rerr->message));
    }

    [Fact]
    public void Arguments_that_do_not_decode_are_refused_as_rpcgen_refusal_is()
    {
        RawMessage(3, [0, 0, 0, 9, (byte)'a']); // a string longer than the message
        Assert.Equal(-1, Serve());
        Assert.Equal((int)virErrorNumber.VIR_ERR_RPC, _rerr->code);
        Assert.Equal((int)virErrorDomain.VIR_FROM_RPC, _rerr->domain);
        // libvirt's own reporter formats it, as for an rpcgen filter's refusal
        Assert.Equal("Unable to decode message payload", NativeUtf8.Read(*_rerr->message));
    }

    [Fact]
    public void Serving_a_call_allocates_nothing()
    {
        Message(4, new virLogManagerProtocolDomainAppendLogFileArgs
        {
            driver = "qemu"u8.ToArray(), dom = new() { uuid = new byte[16], name = "vm"u8.ToArray() },
            path = "/var/log/libvirt/qemu/vm.log"u8.ToArray(), message = "hello\n"u8.ToArray(),
        });
        for (int i = 0; i < 10; i++)
            Assert.Equal(0, Serve());
        Assert.Equal(0, AllocationMeter.BytesOnThisThread(() =>
        {
            for (int i = 0; i < 1000; i++)
                Serve();
        }));
        Assert.Equal(6, BinaryPrimitives.ReadInt32BigEndian(ReplyBytes));
    }
}
