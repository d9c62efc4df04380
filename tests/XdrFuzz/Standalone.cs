using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>
/// The generated codec classes of typedefs and enums (<c>virNetMessageString.Decode</c>,
/// <c>virNetMessageTypeXdr.Decode</c>, ...): public API that no struct decoder calls and that
/// XdrTypes.All's round trips do not use (they carry their own copy), so the target reaches them
/// through these entries, named "codec:" and the type, with the type's schema. Their EncodedSize
/// must be the encoding's length. XdrFuzzTests checks that every such class is listed.
/// </summary>
public static class Standalone
{
    public delegate XdrError Dec<T>(ref XdrReader r, out T v);
    public delegate XdrError Enc<T>(ref XdrWriter w, in T v);
    public delegate long Size<T>(in T v);

    public const string Prefix = "codec:";

    public static XdrTypeInfo[] All =>
    [
        S<ReadOnlyMemory<byte>>("virAdminProtocolNonNullString", virAdminProtocolNonNullString.Decode, virAdminProtocolNonNullString.Encode, virAdminProtocolNonNullString.EncodedSize),
        S<ReadOnlyMemory<byte>?>("virAdminProtocolString", virAdminProtocolString.Decode, virAdminProtocolString.Encode, virAdminProtocolString.EncodedSize),
        S<virAdminProtocolProcedure>("virAdminProtocolProcedure", virAdminProtocolProcedureXdr.Decode, virAdminProtocolProcedureXdr.Encode, virAdminProtocolProcedureXdr.EncodedSize),
        S<ReadOnlyMemory<byte>>("virLockSpaceProtocolUUID", virLockSpaceProtocolUUID.Decode, virLockSpaceProtocolUUID.Encode, virLockSpaceProtocolUUID.EncodedSize),
        S<ReadOnlyMemory<byte>>("virLockSpaceProtocolNonNullString", virLockSpaceProtocolNonNullString.Decode, virLockSpaceProtocolNonNullString.Encode, virLockSpaceProtocolNonNullString.EncodedSize),
        S<virLockSpaceProtocolProcedure>("virLockSpaceProtocolProcedure", virLockSpaceProtocolProcedureXdr.Decode, virLockSpaceProtocolProcedureXdr.Encode, virLockSpaceProtocolProcedureXdr.EncodedSize),
        S<ReadOnlyMemory<byte>>("virLogManagerProtocolUUID", virLogManagerProtocolUUID.Decode, virLogManagerProtocolUUID.Encode, virLogManagerProtocolUUID.EncodedSize),
        S<ReadOnlyMemory<byte>>("virLogManagerProtocolNonNullString", virLogManagerProtocolNonNullString.Decode, virLogManagerProtocolNonNullString.Encode, virLogManagerProtocolNonNullString.EncodedSize),
        S<virLogManagerProtocolProcedure>("virLogManagerProtocolProcedure", virLogManagerProtocolProcedureXdr.Decode, virLogManagerProtocolProcedureXdr.Encode, virLogManagerProtocolProcedureXdr.EncodedSize),
        S<keepalive_procedure>("keepalive_procedure", keepalive_procedureXdr.Decode, keepalive_procedureXdr.Encode, keepalive_procedureXdr.EncodedSize),
        S<virNetMessageType>("virNetMessageType", virNetMessageTypeXdr.Decode, virNetMessageTypeXdr.Encode, virNetMessageTypeXdr.EncodedSize),
        S<virNetMessageStatus>("virNetMessageStatus", virNetMessageStatusXdr.Decode, virNetMessageStatusXdr.Encode, virNetMessageStatusXdr.EncodedSize),
        S<ReadOnlyMemory<byte>>("virNetMessageUUID", virNetMessageUUID.Decode, virNetMessageUUID.Encode, virNetMessageUUID.EncodedSize),
        S<ReadOnlyMemory<byte>>("virNetMessageNonnullString", virNetMessageNonnullString.Decode, virNetMessageNonnullString.Encode, virNetMessageNonnullString.EncodedSize),
        S<ReadOnlyMemory<byte>?>("virNetMessageString", virNetMessageString.Decode, virNetMessageString.Encode, virNetMessageString.EncodedSize),
        S<virNetMessageNonnullDomain?>("virNetMessageDomain", virNetMessageDomain.Decode, virNetMessageDomain.Encode, virNetMessageDomain.EncodedSize),
        S<virNetMessageNonnullNetwork?>("virNetMessageNetwork", virNetMessageNetwork.Decode, virNetMessageNetwork.Encode, virNetMessageNetwork.EncodedSize),
    ];

    /// <summary>XdrTypes.All, then the codec classes.</summary>
    public static XdrTypeInfo[] WithTypes(IEnumerable<XdrTypeInfo> types) => [.. types, .. All];

    private static XdrTypeInfo S<T>(string type, Dec<T> decode, Enc<T> encode, Size<T> size)
    {
        var info = XdrTypes.All.Single(t => t.Name == type);
        return new XdrTypeInfo(Prefix + type, info.File, info.Schema,
            (ReadOnlyMemory<byte> input, out int consumed, Span<byte> output, out int written, out XdrError encodeError) =>
            {
                written = 0;
                encodeError = XdrError.None;
                var r = new XdrReader(input);
                var d = decode(ref r, out T v);
                consumed = r.Position;
                if (d != XdrError.None) return d;
                var w = new XdrWriter(output);
                encodeError = encode(ref w, in v);
                written = w.Position;
                if (encodeError == XdrError.None && size(in v) != written)
                    throw new XdrFindingException($"{Prefix}{type}: EncodedSize {size(in v)}, encoded {written} bytes");
                return XdrError.None;
            });
    }
}
