using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Libvirt.Interop;
using Xunit;

namespace Libvirt.Tests.Interop;

/// <summary>C strings (paths) through .NET strings without losing a byte.</summary>
public sealed class LosslessUtf8Tests
{
    [Fact]
    public void Any_bytes_come_back_as_they_were()
    {
        // random bytes, mostly high ones, so most inputs are not UTF-8
        var prop = Prop.ForAll(Arb.From(Gen.Choose(0, int.MaxValue)), (int seed) =>
        {
            var rnd = new Random(seed);
            var bytes = new byte[rnd.Next(0, 40)];
            rnd.NextBytes(bytes);
            string s = LosslessUtf8.Decode(bytes);
            Assert.Equal(Convert.ToHexString(bytes), Convert.ToHexString(LosslessUtf8.Encode(s)));
            Assert.Equal(bytes.Length, LosslessUtf8.GetByteCount(s));
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(2000), prop);
    }

    [Theory]
    [InlineData("/var/lib/libvirt/lockd/files")]
    [InlineData("d\u00e9j\u00e0/\u65e5\u672c/\U0001F600")]
    [InlineData("")]
    public void Valid_UTF8_is_plain_UTF8(string text)
    {
        var utf8 = Encoding.UTF8.GetBytes(text);
        Assert.Equal(text, LosslessUtf8.Decode(utf8));
        Assert.Equal(utf8, LosslessUtf8.Encode(text));
        Assert.Equal([.. utf8, 0], LosslessUtf8.EncodeNulTerminated(text));
    }

    [Fact]
    public void A_byte_that_is_not_UTF8_is_one_escape_and_the_rest_decodes()
    {
        // 0xff, a truncated sequence (e2 82), an encoded surrogate (ed b2 80), then valid UTF-8
        byte[] bytes = [0x61, 0xff, 0xe2, 0x82, 0x2f, 0xed, 0xb2, 0x80, 0xc3, 0xa9];
        Assert.Equal("a\uDCFF\uDCE2\uDC82/\uDCED\uDCB2\uDC80\u00e9", LosslessUtf8.Decode(bytes));
        Assert.Equal(bytes, LosslessUtf8.Encode(LosslessUtf8.Decode(bytes)));
    }

    [Fact]
    public void Other_lone_surrogates_encode_as_UTF8_does()
    {
        // not an escape (below U+DC80) and a lone high surrogate: U+FFFD, as Encoding.UTF8 gives
        const string s = "x\uDC10y\uD800";
        Assert.Equal(Encoding.UTF8.GetBytes(s), LosslessUtf8.Encode(s));
    }
}
