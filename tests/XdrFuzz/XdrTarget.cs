using System.Buffers;
using System.Buffers.Binary;
using Libvirt.Tests.Xdr;
using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>A decode/encode disagreement: what AFL reports as a crash, like an exception the decoders
/// let out. The message says which type and what differed.</summary>
public sealed class XdrFindingException(string message) : Exception(message);

/// <summary>One program of the generated code, as a frame names it: its number and version, its
/// procedures' argument and result types (null: void) and the generated Dispatch.</summary>
public sealed record FuzzProgram(string Name, uint Program, uint Version,
    IReadOnlyDictionary<int, (XdrTypeInfo? Args, XdrTypeInfo? Ret)> Procedures,
    Func<int, ReadOnlyMemory<byte>, XdrDispatchStatus> Dispatch);

/// <summary>
/// The fuzz target. The first byte picks what the rest is: below 128, a value of the type
/// <c>Types[b % Types.Length]</c> (every struct, union, enum and typedef of XdrTypes.All, then the generated
/// codec classes of typedefs and enums, <see cref="Standalone"/>); from 128 on,
/// an RPC message without its length word: a virNetMessageHeader, then the payload its program,
/// procedure, type and status name (a CALL's arguments, also through the program's generated
/// Dispatch; a REPLY's result or a virNetMessageError; a STREAM_HOLE's virNetStreamHole).
/// Each value that decodes is encoded again and must give exactly the canonical form of the bytes
/// the decoder consumed (<see cref="Canonical"/>; for canonical input, the consumed input itself);
/// the encoding must decode again to itself; decoders and the schema must agree on accept or reject,
/// the error and the bytes consumed. Anything else throws <see cref="XdrFindingException"/>.
/// </summary>
public sealed class XdrTarget
{
    public const int FrameSelector = 128;

    public IReadOnlyList<XdrTypeInfo> Types { get; }
    public IReadOnlyList<FuzzProgram> Programs { get; }
    private readonly Dictionary<string, Shape> _shapes = new();
    private readonly XdrTypeInfo _header, _error, _hole;
    private readonly CheckingPrograms _impl;

    public XdrTarget(IReadOnlyList<XdrTypeInfo> types)
    {
        Types = types;
        foreach (var t in types)
            _shapes[t.Name] = Shape.Parse(t.Schema);
        _header = Type("virNetMessageHeader");
        _error = Type("virNetMessageError");
        _hole = Type("virNetStreamHole");
        var impl = _impl = new CheckingPrograms(this);
        Programs =
        [
            Program("lock", VirLockSpaceProtocolProgram.Program, VirLockSpaceProtocolProgram.Version,
                VirLockSpaceProtocolProgram.Procedures, VirLockSpaceProtocolProgram.Name, "VIR_LOCK_SPACE_PROTOCOL_PROC_", "virLockSpaceProtocol",
                (p, a) => VirLockSpaceProtocolProgram.Dispatch(impl, 0, NewCall(), p, a, out _, out _)),
            Program("log", VirLogManagerProtocolProgram.Program, VirLogManagerProtocolProgram.Version,
                VirLogManagerProtocolProgram.Procedures, VirLogManagerProtocolProgram.Name, "VIR_LOG_MANAGER_PROTOCOL_PROC_", "virLogManagerProtocol",
                (p, a) => VirLogManagerProtocolProgram.Dispatch(impl, 0, NewCall(), p, a, out _, out _)),
            Program("admin", VirAdminProtocolProgram.Program, VirAdminProtocolProgram.Version,
                VirAdminProtocolProgram.Procedures, VirAdminProtocolProgram.Name, "VIR_ADMIN_PROTOCOL_PROC_", "virAdminProtocol",
                (p, a) => VirAdminProtocolProgram.Dispatch(impl, 0, NewCall(), p, a, out _, out _)),
            Program("keepalive", VirKeepAliveProgram.Program, VirKeepAliveProgram.Version,
                VirKeepAliveProgram.Procedures, VirKeepAliveProgram.Name, "KEEPALIVE_PROC_", "keepalive",
                (p, a) => VirKeepAliveProgram.Dispatch(impl, 0, NewCall(), p, a, out _, out _)),
        ];
    }

    // One context per call: each dispatch starts with no fds and an empty reply.
    private XdrCallContext NewCall() { _call.Reset(); return _call; }
    private readonly XdrCallContext _call = new();

    public XdrTarget() : this(Standalone.WithTypes(XdrTypes.All)) { }

    /// <summary>When set, every input is a value of this one type (no selector byte, no frames).</summary>
    public XdrTypeInfo? Only { get; init; }

    public XdrTypeInfo Type(string name) => Types.First(t => t.Name == name);
    internal Shape ShapeOf(XdrTypeInfo t) => _shapes.TryGetValue(t.Name, out var s) ? s : Shape.Parse(t.Schema);

    /// <summary>A program's procedures and their types, by libvirt's naming rule for .x files
    /// (PREFIX_PROC_CONNECT_OPEN: struct prefixConnectOpenArgs / prefixConnectOpenRet; none: void).
    /// XdrTargetTests checks the rule against what each generated Dispatch decodes.</summary>
    private FuzzProgram Program(string name, uint program, uint version, ReadOnlySpan<int> procedures, Func<int, string?> procName,
        string enumPrefix, string typePrefix, Func<int, ReadOnlyMemory<byte>, XdrDispatchStatus> dispatch)
    {
        var procs = new Dictionary<int, (XdrTypeInfo?, XdrTypeInfo?)>();
        foreach (var p in procedures)
        {
            var n = procName(p) ?? throw new InvalidOperationException($"{name}: procedure {p} has no name");
            if (!n.StartsWith(enumPrefix, StringComparison.Ordinal))
                throw new InvalidOperationException($"{name}: procedure {n} does not start with {enumPrefix}");
            var camel = string.Concat(n[enumPrefix.Length..].Split('_').Select(w => w[..1] + w[1..].ToLowerInvariant()));
            procs[p] = (Find(typePrefix + camel + "Args"), Find(typePrefix + camel + "Ret"));
        }
        return new FuzzProgram(name, program, version, procs, dispatch);

        // case-insensitive: PROC_CREATE_LOCKSPACE takes virLockSpaceProtocolCreateLockSpaceArgs
        XdrTypeInfo? Find(string type) => Types.FirstOrDefault(t => string.Equals(t.Name, type, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>The AFL entry point: one input, a finding thrown.</summary>
    public void Run(ReadOnlySpan<byte> data)
    {
        if (Only is not null)
        {
            CheckValue(Only, data.ToArray());
            return;
        }
        if (data.Length == 0) return;
        var rest = data[1..].ToArray();
        if (data[0] < FrameSelector)
            CheckValue(Types[data[0] % Types.Count], rest);
        else
            CheckFrame(rest);
    }

    /// <summary>Decodes one value of <paramref name="type"/> from the start of <paramref name="input"/>
    /// through its generated round trip and checks it against the schema; returns the decoder's verdict.</summary>
    public XdrError CheckValue(XdrTypeInfo type, ReadOnlyMemory<byte> input) => CheckValue(type, input, out _);

    public XdrError CheckValue(XdrTypeInfo type, ReadOnlyMemory<byte> input, out byte[] canonical)
    {
        var expected = Canonical.Read(ShapeOf(type), input.Span);
        canonical = expected.Bytes;
        // canonical is never longer than the input; room for more so that an encoder writing too much is seen
        var output = new byte[input.Length + 64];
        var d = type.RoundTrip(input, out int consumed, output, out int written, out XdrError encodeError);
        if (d != expected.Error)
            throw Finding(type, input, $"decoder says {d}, the schema says {expected.Error}");
        if (consumed != expected.Consumed)
            throw Finding(type, input, $"decoder consumed {consumed} bytes, the schema {expected.Consumed} (decode result {d})");
        if (d != XdrError.None)
            return d;
        if (encodeError != XdrError.None)
            throw Finding(type, input, $"decoded, but the decoded value does not encode: {encodeError} after {written} bytes");
        if (Typed.TryGetValue(type.Name, out var typed))
            typed(this, type, input);
        if (!output.AsSpan(0, written).SequenceEqual(expected.Bytes))
            throw Finding(type, input, $"re-encoding differs from the canonical form of the {consumed} consumed bytes: " +
                Diff(expected.Bytes, output.AsSpan(0, written)));
        // the encoding is a fixed point: it decodes, consuming all of it, and encodes to itself
        var again = new byte[written + 64];
        var d2 = type.RoundTrip(output.AsMemory(0, written), out int consumed2, again, out int written2, out XdrError e2);
        if (d2 != XdrError.None || e2 != XdrError.None || consumed2 != written || !again.AsSpan(0, written2).SequenceEqual(output.AsSpan(0, written)))
            throw Finding(type, input, $"the re-encoding does not round-trip: decode {d2}, consumed {consumed2} of {written}, encode {e2}, " +
                Diff(output.AsSpan(0, written), again.AsSpan(0, written2)));
        return d;
    }

    /// <summary>Every generated struct and union (IXdrCodec) by name: decoded through XdrCodec.Decode&lt;T&gt;,
    /// then <see cref="CheckTyped"/> (EncodedSize, encoding through IBufferWriter).</summary>
    private static readonly Dictionary<string, Action<XdrTarget, XdrTypeInfo, ReadOnlyMemory<byte>>> Typed =
        typeof(XdrTypes).Assembly.GetExportedTypes()
            .Where(t => t.IsValueType && t.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IXdrCodec<>)))
            .ToDictionary(t => t.Name, t => typeof(XdrTarget).GetMethod(nameof(DecodeTyped), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .MakeGenericMethod(t).CreateDelegate<Action<XdrTarget, XdrTypeInfo, ReadOnlyMemory<byte>>>());

    public static IReadOnlyCollection<string> TypedNames => Typed.Keys;

    private static void DecodeTyped<T>(XdrTarget target, XdrTypeInfo type, ReadOnlyMemory<byte> input) where T : struct, IXdrCodec<T>
    {
        var e = XdrCodec.Decode(input, out T value, out int consumed);
        if (e != XdrError.None)
            throw Finding(type, input, $"XdrCodec.Decode<{typeof(T).Name}> says {e}, its round trip decoded it");
        target.CheckTyped(in value, type, input);
    }

    /// <summary>A typed value a generated Dispatch decoded from <paramref name="input"/>: its EncodedSize and
    /// its encoding through IBufferWriter must be the canonical form of what the type's schema consumes.</summary>
    internal void CheckTyped<T>(in T value, XdrTypeInfo type, ReadOnlyMemory<byte> input) where T : struct, IXdrCodec<T>
    {
        var expected = Canonical.Read(ShapeOf(type), input.Span);
        if (expected.Error != XdrError.None)
            throw Finding(type, input, $"Dispatch decoded arguments the schema rejects ({expected.Error})");
        long size = value.EncodedSize();
        if (size != expected.Bytes.Length)
            throw Finding(type, input, $"EncodedSize() is {size}, the canonical encoding {expected.Bytes.Length} bytes");
        var w = new ArrayBufferWriter<byte>();
        var e = XdrCodec.Encode(value, w);
        if (e != XdrError.None || !w.WrittenSpan.SequenceEqual(expected.Bytes))
            throw Finding(type, input, $"Dispatch's arguments encode ({e}) differently from the canonical form: " + Diff(expected.Bytes, w.WrittenSpan));
    }

    private void CheckFrame(ReadOnlyMemory<byte> frame)
    {
        if (CheckValue(_header, frame) != XdrError.None)
            return;
        XdrCodec.Decode(frame, out virNetMessageHeader h, out int hl);
        var payload = frame[hl..];
        var program = Programs.FirstOrDefault(p => p.Program == h.prog && p.Version == h.vers);
        switch (h.type)
        {
            case virNetMessageType.VIR_NET_CALL or virNetMessageType.VIR_NET_CALL_WITH_FDS or virNetMessageType.VIR_NET_MESSAGE
                when program is not null && h.status == virNetMessageStatus.VIR_NET_OK:
            {
                _impl.Payload = payload;
                _impl.Decoded = null;
                if (!program.Procedures.TryGetValue(h.proc, out var types))
                {
                    var s = program.Dispatch(h.proc, payload);
                    if (s != XdrDispatchStatus.UnknownProcedure)
                        throw new XdrFindingException($"{program.Name} Dispatch of procedure {h.proc}, not in its table: {s}");
                    return;
                }
                var verdict = types.Args is null ? XdrError.None : CheckValue(types.Args, payload);
                var status = program.Dispatch(h.proc, payload);
                // the generated Dispatch decodes the arguments as the type's round trip does (CheckingPrograms
                // has checked what it decoded); it must reject exactly what the round trip rejects
                var want = verdict == XdrError.None ? XdrDispatchStatus.Ok : XdrDispatchStatus.BadArgs;
                if (status != want && !(want == XdrDispatchStatus.Ok && status == XdrDispatchStatus.BadRet))
                    throw new XdrFindingException($"{program.Name} Dispatch of procedure {h.proc}: {status}, the arguments' decoder said {verdict}");
                if (status != XdrDispatchStatus.BadArgs && _impl.Decoded != (types.Args?.Name ?? ""))
                    throw new XdrFindingException($"{program.Name} Dispatch of procedure {h.proc} decoded '{_impl.Decoded}', its table says '{types.Args?.Name}'");
                return;
            }
            case virNetMessageType.VIR_NET_REPLY or virNetMessageType.VIR_NET_REPLY_WITH_FDS
                when h.status == virNetMessageStatus.VIR_NET_OK && program is not null:
                if (program.Procedures.TryGetValue(h.proc, out var t) && t.Ret is not null)
                    CheckValue(t.Ret, payload);
                return;
            case virNetMessageType.VIR_NET_STREAM_HOLE:
                CheckValue(_hole, payload);
                return;
            default:
                if (h.status == virNetMessageStatus.VIR_NET_ERROR)
                    CheckValue(_error, payload);
                return;
        }
    }

    private static XdrFindingException Finding(XdrTypeInfo type, ReadOnlyMemory<byte> input, string what)
        => new($"{type.Name} ({type.File}): {what}; input ({input.Length} bytes): {Hex(input.Span, 256)}");

    public static string Hex(ReadOnlySpan<byte> b, int max)
        => Convert.ToHexString(b[..Math.Min(b.Length, max)]) + (b.Length > max ? "..." : "");

    private static string Diff(ReadOnlySpan<byte> want, ReadOnlySpan<byte> got)
    {
        int i = 0;
        while (i < want.Length && i < got.Length && want[i] == got[i]) i++;
        return $"canonical {want.Length} bytes, got {got.Length}, first difference at byte {i}: " +
               $"canonical {Hex(want[Math.Min(i, want.Length)..], 32)} got {Hex(got[Math.Min(i, got.Length)..], 32)}";
    }
}
