using System.Buffers.Binary;
using Libvirt.Tests.Xdr;
using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>
/// The harness's own reading of an input by a type's wire shape (XdrTypeInfo.Schema), independent
/// of the generated codecs: whether rpcgen's filters accept it (the same error, at the same place,
/// as the documented XdrReader rules), how many bytes they consume, and the canonical encoding of
/// what they decode. Canonical means what an encoder writes: zero padding, a bool or an optional's
/// flag as 0 or 1, a string cut at its first NUL (xdr_string hands C a NUL-terminated string).
/// Every other byte of an accepted input is kept, so for an input that is already canonical the
/// canonical encoding is the consumed input itself.
/// </summary>
internal static class Canonical
{
    public readonly record struct Result(XdrError Error, int Consumed, byte[] Bytes);

    internal static Result Read(Shape shape, ReadOnlySpan<byte> input)
    {
        var c = new Reader(input);
        var e = c.Read(shape);
        return new Result(e, c.Pos, e == XdrError.None ? c.Out.ToArray() : []);
    }

    private ref struct Reader(ReadOnlySpan<byte> input)
    {
        private readonly ReadOnlySpan<byte> _in = input;
        public int Pos;
        public readonly List<byte> Out = new();

        private readonly int Remaining => _in.Length - Pos;

        private XdrError Word(out uint v)
        {
            v = 0;
            if (Remaining < 4) return XdrError.Truncated;
            v = BinaryPrimitives.ReadUInt32BigEndian(_in.Slice(Pos, 4));
            Pos += 4;
            return XdrError.None;
        }

        private readonly void Put(uint v)
        {
            Out.Add((byte)(v >> 24)); Out.Add((byte)(v >> 16)); Out.Add((byte)(v >> 8)); Out.Add((byte)v);
        }

        private XdrError Bytes(long n, bool cutAtNul, bool counted)
        {
            long padded = (n + 3) & ~3L;
            if (Remaining < padded) return XdrError.Truncated;
            var data = _in.Slice(Pos, (int)n);
            Pos += (int)padded;
            if (cutAtNul)
            {
                int nul = data.IndexOf((byte)0);
                if (nul >= 0) data = data[..nul];
            }
            if (counted) Put((uint)data.Length);
            foreach (var b in data) Out.Add(b);
            for (int i = data.Length; i % 4 != 0; i++) Out.Add(0);
            return XdrError.None;
        }

        public XdrError Read(Shape s)
        {
            XdrError e;
            switch (s)
            {
                case Word w:
                {
                    if ((e = Word(out uint v)) != XdrError.None) return e;
                    Put(w.Kind == "bool" ? (v != 0 ? 1u : 0u) : v);
                    return XdrError.None;
                }
                case DWord:
                {
                    if (Remaining < 8) return XdrError.Truncated;
                    Word(out uint hi); Word(out uint lo);
                    Put(hi); Put(lo);
                    return XdrError.None;
                }
                case VoidShape:
                    return XdrError.None;
                case EnumShape:
                {
                    // xdr_enum: any int decodes, and encodes back as itself
                    if ((e = Word(out uint v)) != XdrError.None) return e;
                    Put(v);
                    return XdrError.None;
                }
                case Bytes b when !b.Variable:
                    return Bytes(b.Max, cutAtNul: false, counted: false);
                case Bytes b:
                {
                    if ((e = Word(out uint n)) != XdrError.None) return e;
                    if (n > b.Max) return XdrError.TooLong;
                    return Bytes(n, cutAtNul: b.NoNul, counted: true);
                }
                case ArrayShape a:
                {
                    long n = a.Bound;
                    if (a.Variable)
                    {
                        if ((e = Word(out uint count)) != XdrError.None) return e;
                        if (count > a.Bound) return XdrError.TooLong;
                        // XdrReader.ReadCount: every element takes at least 4 bytes
                        if (count > 0 && count > (uint)(Remaining / 4)) return XdrError.Truncated;
                        Put(count);
                        n = count;
                    }
                    for (long i = 0; i < n; i++)
                        if ((e = Read(a.Element)) != XdrError.None) return e;
                    return XdrError.None;
                }
                case OptionalShape o:
                {
                    if ((e = Word(out uint flag)) != XdrError.None) return e;
                    Put(flag != 0 ? 1u : 0u);
                    return flag != 0 ? Read(o.Element) : XdrError.None;
                }
                case StructShape st:
                    foreach (var f in st.Fields)
                        if ((e = Read(f)) != XdrError.None) return e;
                    return XdrError.None;
                case UnionShape u:
                {
                    if ((e = Word(out uint d)) != XdrError.None) return e;
                    bool isBool = u.Discriminant is Word { Kind: "bool" };
                    if (isBool) d = d != 0 ? 1u : 0u;
                    Put(d);
                    foreach (var (cases, arm) in u.Arms)
                        foreach (var c in cases)
                            if (c == (int)d || c == d)
                                return Read(arm);
                    return u.Default is null ? XdrError.BadDiscriminant : Read(u.Default);
                }
                default:
                    throw new InvalidOperationException($"unknown shape {s}");
            }
        }
    }
}
