using System.Buffers.Binary;
using Libvirt.Rpc;
using Libvirt.Util;
using Libvirt.Xdr;
using Xunit;

namespace Libvirt.Tests.Rpc;

/// <summary>The framing of <see cref="VirNetMessage"/> against
/// virnetmessage.c's limits and messages (virNetMessageDecodeLength,
/// DecodeHeader, DecodeNumFDs, EncodePayload).</summary>
public sealed class VirNetMessageTests
{
    private static VirNetMessage WithLength(uint length)
    {
        var m = new VirNetMessagePool().Rent(tracked: true);
        m.PrepareRead();
        var word = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, length);
        Assert.Equal(4, m.Receive(word));
        return m;
    }

    [Theory]
    [InlineData(4u, 4)]
    [InlineData(28u, 28)]
    [InlineData(4u + 33554432u, 4 + 33554432)] // VIR_NET_MESSAGE_MAX after the length word: accepted
    public void A_length_within_the_limits_extends_the_frame(uint length, int frame)
    {
        var m = WithLength(length);
        Assert.Null(m.DecodeLength());
        Assert.Equal(frame, m.BufferLength);
        Assert.Equal(4, m.BufferOffset);
    }

    [Theory]
    [InlineData(0u, "packet 0 bytes received from server too small, want 4")]
    [InlineData(3u, "packet 3 bytes received from server too small, want 4")]
    [InlineData(4u + 33554432u + 1u, "packet 33554433 bytes received from server too large, want 33554432")]
    [InlineData(uint.MaxValue, "packet -5 bytes received from server too large, want 33554432")]
    public void A_length_outside_the_limits_is_libvirts_error(uint length, string message)
    {
        var e = WithLength(length).DecodeLength();
        Assert.NotNull(e);
        Assert.Equal(((int)VirErrorCode.Rpc, (int)VirErrorDomain.Rpc, message), (e!.Code, e.Domain, e.Message));
    }

    [Fact]
    public void Header_and_payload_round_trip_through_the_generated_codec()
    {
        var pool = new VirNetMessagePool();
        var m = pool.Rent(tracked: false);
        m.Header = new virNetMessageHeader
        {
            prog = 0xEA7BEEF, vers = 1, proc = 3, type = virNetMessageType.VIR_NET_CALL, serial = 9,
            status = virNetMessageStatus.VIR_NET_OK,
        };
        Assert.Null(m.EncodeHeader());
        Assert.Null(m.EncodePayload([1, 2, 3, 4]));
        var frame = m.Frame.ToArray();
        Assert.Equal(32, frame.Length);
        Assert.Equal(32u, BinaryPrimitives.ReadUInt32BigEndian(frame));
        Assert.Equal(0, m.BufferOffset);

        // read back as the client's receive path does
        var r = pool.Rent(tracked: true);
        r.PrepareRead();
        Assert.Equal(4, r.Receive(frame));
        Assert.Null(r.DecodeLength());
        Assert.Equal(28, r.Receive(frame.AsSpan(4)));
        Assert.Null(r.DecodeHeader());
        Assert.Equal(m.Header, r.Header);
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, r.Payload.ToArray());
    }

    [Fact]
    public void A_reply_longer_than_the_limit_does_not_encode()
    {
        var m = new VirNetMessage();
        m.Header.type = virNetMessageType.VIR_NET_REPLY;
        Assert.Null(m.EncodeHeader());
        var e = m.EncodePayload(new byte[33554432 - 24 + 1]);
        Assert.Equal("Unable to encode message payload", e?.Message);
        Assert.Null(m.EncodeHeader());
        Assert.Null(m.EncodePayload(new byte[33554432 - 24])); // exactly 4 + VIR_NET_MESSAGE_MAX
        Assert.Equal(4 + 33554432, m.BufferLength);
        m.Clear();
    }
}
