using System.Buffers.Binary;
using System.Text;

namespace Libvirt.Tests.Infrastructure;

/// <summary>XDR (RFC 4506) encoder: big-endian, 4-byte aligned.</summary>
public sealed class XdrWriter
{
    private readonly MemoryStream _ms = new();

    public int Length => (int)_ms.Length;
    public byte[] ToArray() => _ms.ToArray();

    public XdrWriter UInt(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        _ms.Write(b);
        return this;
    }

    public XdrWriter Int(int v) => UInt(unchecked((uint)v));
    public XdrWriter Bool(bool v) => UInt(v ? 1u : 0u);

    public XdrWriter Hyper(long v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(b, v);
        _ms.Write(b);
        return this;
    }

    public XdrWriter UHyper(ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, v);
        _ms.Write(b);
        return this;
    }

    /// <summary>Fixed-length opaque (no length prefix), padded to 4.</summary>
    public XdrWriter OpaqueFixed(ReadOnlySpan<byte> data)
    {
        _ms.Write(data);
        Pad(data.Length);
        return this;
    }

    /// <summary>Variable-length opaque: uint length, bytes, padding.</summary>
    public XdrWriter OpaqueVar(ReadOnlySpan<byte> data)
    {
        UInt((uint)data.Length);
        return OpaqueFixed(data);
    }

    public XdrWriter String(string s) => OpaqueVar(Encoding.UTF8.GetBytes(s));

    /// <summary>Optional string (XDR pointer): bool present + value.</summary>
    public XdrWriter OptionalString(string? s)
    {
        if (s is null) return Bool(false);
        Bool(true);
        return String(s);
    }

    /// <summary>Generic optional (XDR pointer) field.</summary>
    public XdrWriter Optional<T>(T? value, Action<XdrWriter, T> write) where T : class
    {
        if (value is null) return Bool(false);
        Bool(true);
        write(this, value);
        return this;
    }

    public XdrWriter Raw(ReadOnlySpan<byte> data)
    {
        _ms.Write(data);
        return this;
    }

    private void Pad(int len)
    {
        int pad = (4 - (len & 3)) & 3;
        for (int i = 0; i < pad; i++) _ms.WriteByte(0);
    }
}

public sealed class XdrFormatException(string message) : Exception(message);

/// <summary>XDR decoder over a byte array. Throws <see cref="XdrFormatException"/> on truncation.</summary>
public sealed class XdrReader(byte[] data, int offset = 0)
{
    private int _pos = offset;

    public int Position => _pos;
    public int Remaining => data.Length - _pos;
    public bool AtEnd => _pos >= data.Length;

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || _pos + n > data.Length)
            throw new XdrFormatException($"XDR underflow: need {n} bytes at {_pos}, have {data.Length - _pos}");
        var s = new ReadOnlySpan<byte>(data, _pos, n);
        _pos += n;
        return s;
    }

    public uint UInt() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));
    public int Int() => BinaryPrimitives.ReadInt32BigEndian(Take(4));
    public long Hyper() => BinaryPrimitives.ReadInt64BigEndian(Take(8));
    public ulong UHyper() => BinaryPrimitives.ReadUInt64BigEndian(Take(8));

    public bool Bool()
    {
        uint v = UInt();
        if (v > 1) throw new XdrFormatException($"invalid XDR bool {v}");
        return v == 1;
    }

    public byte[] OpaqueFixed(int len)
    {
        var r = Take(len).ToArray();
        Take((4 - (len & 3)) & 3);
        return r;
    }

    public byte[] OpaqueVar(uint max = uint.MaxValue)
    {
        uint len = UInt();
        if (len > max || len > Remaining) throw new XdrFormatException($"opaque length {len} too large");
        return OpaqueFixed((int)len);
    }

    public string String(uint max = uint.MaxValue) => Encoding.UTF8.GetString(OpaqueVar(max));

    public string? OptionalString() => Bool() ? String() : null;

    public T? Optional<T>(Func<XdrReader, T> read) where T : class => Bool() ? read(this) : null;
}
