using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>A deliberately broken codec, to prove that the harness (and AFL through it) reports a
/// decode/encode disagreement: a (varopaque 64) whose encoder clears the high bit of every byte
/// (so a single bit flip in a seed's zero bytes makes a finding).</summary>
public static class BrokenType
{
    public const string Name = "BrokenVarOpaque";

    public static readonly XdrTypeInfo Info = new(Name, "harness", "(varopaque 64)", RoundTrip);

    public static XdrTypeInfo[] WithBroken() => [.. Standalone.WithTypes(XdrTypes.All), Info];

    /// <summary>A valid input that does not trigger the bug: eight zero bytes.</summary>
    public static byte[] Seed => [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0];

    private static XdrError RoundTrip(ReadOnlyMemory<byte> input, out int consumed, Span<byte> output, out int written, out XdrError encodeError)
    {
        written = 0;
        encodeError = XdrError.None;
        var r = new XdrReader(input);
        var d = r.ReadOpaque(64, out var v);
        consumed = r.Position;
        if (d != XdrError.None) return d;
        if (v.Span.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0)
        {
            var copy = v.ToArray();
            for (int i = 0; i < copy.Length; i++) copy[i] &= 0x7F;
            v = copy;
        }
        var w = new XdrWriter(output);
        encodeError = w.WriteOpaque(v, 64);
        written = w.Position;
        return XdrError.None;
    }
}
