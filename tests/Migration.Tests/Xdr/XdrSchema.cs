using System.Buffers.Binary;
using System.Globalization;

namespace Libvirt.Tests.Xdr;

/// <summary>
/// The wire shape of a generated type (XdrTypeInfo.Schema, an s-expression the generator
/// writes), and random valid encodings of it: the test's own reading of the shape,
/// independent of the generated codecs and of rpcgen.
/// </summary>
internal abstract record Shape
{
    public static Shape Parse(string text)
    {
        int pos = 0;
        var s = Read(text, ref pos);
        return s;
    }

    private static object Token(string t, ref int p)
    {
        while (p < t.Length && t[p] == ' ') p++;
        if (t[p] == '(')
        {
            p++;
            var list = new List<object>();
            while (true)
            {
                while (t[p] == ' ') p++;
                if (t[p] == ')') { p++; return list; }
                list.Add(Token(t, ref p));
            }
        }
        int s = p;
        while (p < t.Length && t[p] != ' ' && t[p] != ')' && t[p] != '(') p++;
        return t[s..p];
    }

    private static Shape Read(string t, ref int p) => From(Token(t, ref p));

    private static long N(object o) => long.Parse((string)o, CultureInfo.InvariantCulture);

    private static Shape From(object o)
    {
        if (o is string a)
            return a switch
            {
                "int" or "uint" or "bool" or "float" => new Word(a),
                "hyper" or "uhyper" or "double" => new DWord(a),
                "void" => new VoidShape(),
                _ => throw new FormatException(a),
            };
        var l = (List<object>)o;
        switch ((string)l[0])
        {
            case "enum": return new EnumShape(l.Skip(2).Select(N).ToArray());
            case "string": return new Bytes(N(l[1]), Variable: true, NoNul: true);
            case "opaque": return new Bytes(N(l[1]), Variable: false, NoNul: false);
            case "varopaque": return new Bytes(N(l[1]), Variable: true, NoNul: false);
            case "array": return new ArrayShape(N(l[1]), Variable: false, From(l[2]));
            case "vararray": return new ArrayShape(N(l[1]), Variable: true, From(l[2]));
            case "optional": return new OptionalShape(From(l[1]));
            case "struct": return new StructShape((string)l[1], l.Skip(2).Select(From).ToArray());
            case "union":
            {
                var arms = new List<(long[] Cases, Shape Arm)>();
                Shape? deflt = null;
                foreach (var x in l.Skip(3).Cast<List<object>>())
                    if ((string)x[0] == "case")
                        arms.Add((((List<object>)x[1]).Select(N).ToArray(), From(x[2])));
                    else
                        deflt = From(x[1]);
                return new UnionShape((string)l[1], From(l[2]), arms, deflt);
            }
            default: throw new FormatException((string)l[0]);
        }
    }
}

internal sealed record Word(string Kind) : Shape;
internal sealed record DWord(string Kind) : Shape;
internal sealed record VoidShape : Shape;
internal sealed record EnumShape(long[] Values) : Shape;
internal sealed record Bytes(long Max, bool Variable, bool NoNul) : Shape;
internal sealed record ArrayShape(long Bound, bool Variable, Shape Element) : Shape;
internal sealed record OptionalShape(Shape Element) : Shape;
internal sealed record StructShape(string Name, Shape[] Fields) : Shape;
internal sealed record UnionShape(string Name, Shape Discriminant, List<(long[] Cases, Shape Arm)> Arms, Shape? Default) : Shape;

/// <summary>Where a random encoding has words a mutation should aim at.</summary>
internal enum SlotKind { Length, Count, Optional, Discriminant }

internal readonly record struct Slot(int Offset, SlotKind Kind, long Max);

/// <summary>A random valid (canonical) encoding of a shape, and its interesting words.</summary>
internal sealed class ValidEncoder(Random rng)
{
    private readonly List<byte> _out = new();
    public readonly List<Slot> Slots = new();

    public byte[] Encode(Shape s)
    {
        _out.Clear();
        Slots.Clear();
        Emit(s, 0);
        return _out.ToArray();
    }

    private void PutU32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        _out.AddRange(b.ToArray());
    }

    private uint RandomWord() => rng.Next(4) switch
    {
        0 => (uint)rng.Next(0, 4),
        1 => uint.MaxValue - (uint)rng.Next(0, 4),
        _ => (uint)rng.NextInt64(0, 1L << 32),
    };

    private int Length(long max, int depth)
    {
        int cap = depth > 2 ? 2 : rng.Next(10) == 0 ? 300 : 24;
        if (max <= cap) return rng.Next(5) == 0 ? (int)max : rng.Next(0, (int)max + 1);
        return rng.Next(0, cap + 1);
    }

    private void Emit(Shape s, int depth)
    {
        switch (s)
        {
            case Word w:
                PutU32(w.Kind == "bool" ? (uint)rng.Next(2) : RandomWord());
                break;
            case DWord:
                PutU32(RandomWord());
                PutU32(RandomWord());
                break;
            case VoidShape:
                break;
            case EnumShape e:
                PutU32(rng.Next(8) == 0 ? RandomWord() : (uint)e.Values[rng.Next(e.Values.Length)]);
                break;
            case Bytes b:
            {
                int n = b.Variable ? Length(b.Max, depth) : (int)b.Max;
                if (b.Variable)
                {
                    Slots.Add(new Slot(_out.Count, SlotKind.Length, b.Max));
                    PutU32((uint)n);
                }
                for (int i = 0; i < n; i++)
                    _out.Add(b.NoNul ? (byte)rng.Next(1, 256) : (byte)rng.Next(256));
                for (int i = n; i % 4 != 0; i++)
                    _out.Add(0);
                break;
            }
            case ArrayShape a:
            {
                int n = a.Variable ? Math.Min(Length(a.Bound, depth), depth > 1 ? 1 : 4) : (int)a.Bound;
                if (a.Variable)
                {
                    Slots.Add(new Slot(_out.Count, SlotKind.Count, a.Bound));
                    PutU32((uint)n);
                }
                for (int i = 0; i < n; i++)
                    Emit(a.Element, depth + 1);
                break;
            }
            case OptionalShape o:
            {
                bool present = rng.Next(2) == 0;
                Slots.Add(new Slot(_out.Count, SlotKind.Optional, 1));
                PutU32(present ? 1u : 0u);
                if (present) Emit(o.Element, depth + 1);
                break;
            }
            case StructShape st:
                foreach (var f in st.Fields)
                    Emit(f, depth + 1);
                break;
            case UnionShape u:
            {
                var all = u.Arms.SelectMany(a => a.Cases).ToHashSet();
                Slots.Add(new Slot(_out.Count, SlotKind.Discriminant, 0));
                if (u.Default is not null && rng.Next(4) == 0)
                {
                    uint d;
                    do d = RandomWord(); while (all.Contains((int)d) || all.Contains(d));
                    PutU32(d);
                    Emit(u.Default, depth + 1);
                }
                else
                {
                    var arm = u.Arms[rng.Next(u.Arms.Count)];
                    PutU32((uint)arm.Cases[rng.Next(arm.Cases.Length)]);
                    Emit(arm.Arm, depth + 1);
                }
                break;
            }
            default: throw new InvalidOperationException(s.ToString());
        }
    }
}
