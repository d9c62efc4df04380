using System.Text;
using System.Text.Unicode;

namespace Libvirt.Interop;

/// <summary>
/// C strings as .NET strings without losing a byte. A C path is bytes, not
/// necessarily UTF-8; decoding maps each byte that is not part of valid
/// UTF-8 (always 0x80..0xff) to the lone low surrogate U+DC80..U+DCFF, which
/// valid UTF-8 never decodes to (Python's surrogateescape), and encoding maps
/// those back, so Encode(Decode(b)) is b for every byte string. Valid UTF-8
/// decodes and encodes as with Encoding.UTF8; a string with no such
/// surrogates encodes as with Encoding.UTF8 too.
/// </summary>
public static class LosslessUtf8
{
    private const char EscapeBase = '\uDC00';

    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes))
            return Encoding.UTF8.GetString(bytes);
        var sb = new StringBuilder(bytes.Length);
        Span<char> chars = stackalloc char[2];
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out var rune, out int consumed) == System.Buffers.OperationStatus.Done)
            {
                sb.Append(chars[..rune.EncodeToUtf16(chars)]);
                bytes = bytes[consumed..];
            }
            else
            {
                // one byte at a time: the bytes after it may start valid UTF-8 again
                sb.Append((char)(EscapeBase + bytes[0]));
                bytes = bytes[1..];
            }
        }
        return sb.ToString();
    }

    private static bool IsEscape(char c) => c >= '\uDC80' && c <= '\uDCFF';

    public static int GetByteCount(ReadOnlySpan<char> s)
    {
        if (!HasSurrogates(s))
            return Encoding.UTF8.GetByteCount(s);
        int n = 0;
        while (!s.IsEmpty)
        {
            var status = Rune.DecodeFromUtf16(s, out var rune, out int consumed);
            if (status == System.Buffers.OperationStatus.Done)
                n += rune.Utf8SequenceLength;
            else
                n += IsEscape(s[0]) ? 1 : Rune.ReplacementChar.Utf8SequenceLength;
            s = s[(status == System.Buffers.OperationStatus.Done ? consumed : 1)..];
        }
        return n;
    }

    /// <summary>Writes the bytes of <paramref name="s"/> (no NUL) into
    /// <paramref name="dest"/>, which holds at least <see cref="GetByteCount"/>;
    /// returns how many were written.</summary>
    public static int Encode(ReadOnlySpan<char> s, Span<byte> dest)
    {
        if (!HasSurrogates(s))
            return Encoding.UTF8.GetBytes(s, dest);
        int n = 0;
        while (!s.IsEmpty)
        {
            var status = Rune.DecodeFromUtf16(s, out var rune, out int consumed);
            if (status == System.Buffers.OperationStatus.Done)
                n += rune.EncodeToUtf8(dest[n..]);
            else if (IsEscape(s[0]))
                dest[n++] = (byte)(s[0] - EscapeBase);
            else
                n += Rune.ReplacementChar.EncodeToUtf8(dest[n..]); // as Encoding.UTF8 does
            s = s[(status == System.Buffers.OperationStatus.Done ? consumed : 1)..];
        }
        return n;
    }

    public static byte[] Encode(string s)
    {
        var b = new byte[GetByteCount(s)];
        Encode(s, b);
        return b;
    }

    /// <summary>The bytes and a terminating NUL, for a libc call.</summary>
    public static byte[] EncodeNulTerminated(string s)
    {
        var b = new byte[GetByteCount(s) + 1];
        Encode(s, b);
        return b;
    }

    private static bool HasSurrogates(ReadOnlySpan<char> s) => s.IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;
}
