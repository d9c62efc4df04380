using System.Buffers.Binary;
using System.Net.Sockets;

namespace Libvirt.Tests.Infrastructure;

public enum RpcMessageType : int
{
    Call = 0, Reply = 1, Message = 2, Stream = 3, CallWithFds = 4, ReplyWithFds = 5, StreamHole = 6,
}

public enum RpcStatus : int { Ok = 0, Error = 1, Continue = 2 }

/// <summary>virNetMessageHeader (6 x 4 bytes).</summary>
public readonly record struct RpcHeader(uint Program, uint Version, int Procedure, RpcMessageType Type, uint Serial, RpcStatus Status)
{
    public const int Size = 24;

    public void Write(XdrWriter w) =>
        w.UInt(Program).UInt(Version).Int(Procedure).Int((int)Type).UInt(Serial).Int((int)Status);

    public static RpcHeader Read(XdrReader r) =>
        new(r.UInt(), r.UInt(), r.Int(), (RpcMessageType)r.Int(), r.UInt(), (RpcStatus)r.Int());
}

public sealed record RpcDomainRef(string Name, byte[] Uuid, int Id);
public sealed record RpcNetworkRef(string Name, byte[] Uuid);

/// <summary>Decoded virNetMessageError.</summary>
public sealed record RpcError(
    int Code, int Domain, string? Message, int Level, RpcDomainRef? Dom,
    string? Str1, string? Str2, string? Str3, int Int1, int Int2, RpcNetworkRef? Net)
{
    public static RpcError Decode(byte[] payload)
    {
        var r = new XdrReader(payload);
        int code = r.Int();
        int domain = r.Int();
        string? message = r.OptionalString();
        int level = r.Int();
        var dom = r.Optional(x => new RpcDomainRef(x.String(), x.OpaqueFixed(16), x.Int()));
        string? s1 = r.OptionalString(), s2 = r.OptionalString(), s3 = r.OptionalString();
        int i1 = r.Int(), i2 = r.Int();
        var net = r.Optional(x => new RpcNetworkRef(x.String(), x.OpaqueFixed(16)));
        return new RpcError(code, domain, message, level, dom, s1, s2, s3, i1, i2, net);
    }

    public byte[] Encode()
    {
        var w = new XdrWriter();
        w.Int(Code).Int(Domain).OptionalString(Message).Int(Level)
         .Optional(Dom, (x, d) => x.String(d.Name).OpaqueFixed(d.Uuid).Int(d.Id))
         .OptionalString(Str1).OptionalString(Str2).OptionalString(Str3).Int(Int1).Int(Int2)
         .Optional(Net, (x, n) => x.String(n.Name).OpaqueFixed(n.Uuid));
        return w.ToArray();
    }

    public override string ToString() => $"code={Code} domain={Domain} level={Level} message={Message ?? "<null>"}";
}

public sealed class RpcErrorException(RpcError error) : Exception($"RPC error: {error}")
{
    public RpcError Error { get; } = error;
}

public sealed record RpcMessage(RpcHeader Header, byte[] Payload)
{
    public bool IsError => Header.Status == RpcStatus.Error;
    public RpcError? Error => IsError ? RpcError.Decode(Payload) : null;
}

/// <summary>
/// Raw libvirt RPC client over a Unix stream socket. Framing: 4-byte big-endian total length
/// (including the length word itself), 24-byte header, XDR payload. Every read has a timeout.
/// </summary>
public sealed class RawRpcClient : IDisposable
{
    public const int MessageMax = 33554432; // VIR_NET_MESSAGE_MAX (excludes the 4-byte length word)
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private uint _serial;

    public TimeSpan ReadTimeout { get; set; } = DefaultTimeout;
    public Socket Socket => _socket;

    private RawRpcClient(Socket s) => _socket = s;

    /// <summary>Connect to a Unix socket path as seen from the test process (e.g. Sandbox.HostPath(...)).</summary>
    public static async Task<RawRpcClient> ConnectAsync(string socketPath, TimeSpan? timeout = null)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cts.Token);
            return new RawRpcClient(s);
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    public uint NextSerial() => Interlocked.Increment(ref _serial);

    public static byte[] BuildFrame(RpcHeader header, ReadOnlySpan<byte> payload)
    {
        var w = new XdrWriter();
        w.UInt((uint)(4 + RpcHeader.Size + payload.Length));
        header.Write(w);
        w.Raw(payload);
        return w.ToArray();
    }

    public async Task SendRawAsync(ReadOnlyMemory<byte> data, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? ReadTimeout);
        int sent = 0;
        while (sent < data.Length)
            sent += await _socket.SendAsync(data[sent..], SocketFlags.None, cts.Token);
    }

    /// <summary>Send a CALL and return its serial without waiting for the reply.</summary>
    public async Task<uint> SendCallAsync(uint program, uint version, int procedure, ReadOnlyMemory<byte> payload, uint? serial = null)
    {
        uint s = serial ?? NextSerial();
        await SendRawAsync(BuildFrame(new RpcHeader(program, version, procedure, RpcMessageType.Call, s, RpcStatus.Ok), payload.Span));
        return s;
    }

    /// <summary>Send a CALL and wait (bounded) for the REPLY with the same serial.</summary>
    public async Task<RpcMessage> CallAsync(uint program, uint version, int procedure, ReadOnlyMemory<byte> payload, TimeSpan? timeout = null)
    {
        uint s = await SendCallAsync(program, version, procedure, payload);
        var deadline = DateTime.UtcNow + (timeout ?? ReadTimeout);
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) throw new TimeoutException($"no reply for serial {s}");
            var msg = await ReadMessageAsync(left) ?? throw new EndOfStreamException("connection closed by peer before reply");
            if (msg.Header.Serial == s && msg.Header.Type is RpcMessageType.Reply or RpcMessageType.ReplyWithFds)
                return msg;
        }
    }

    /// <summary>Read one complete message. Returns null on clean EOF at a frame boundary; throws TimeoutException.</summary>
    public async Task<RpcMessage?> ReadMessageAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? ReadTimeout);
        try
        {
            var lenBuf = new byte[4];
            int n = await ReadExactlyOrEofAsync(lenBuf, cts.Token);
            if (n == 0) return null;
            if (n < 4) throw new EndOfStreamException("EOF inside length word");
            uint len = BinaryPrimitives.ReadUInt32BigEndian(lenBuf);
            if (len < 4 + RpcHeader.Size || len > MessageMax + 4)
                throw new InvalidDataException($"bad frame length {len}");
            var body = new byte[len - 4];
            if (await ReadExactlyOrEofAsync(body, cts.Token) != body.Length)
                throw new EndOfStreamException("EOF inside frame");
            var r = new XdrReader(body);
            var h = RpcHeader.Read(r);
            return new RpcMessage(h, body[RpcHeader.Size..]);
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            throw new TimeoutException("timed out waiting for RPC message");
        }
    }

    /// <summary>
    /// Waits (bounded) to see whether the peer closes the connection. Returns true on EOF/reset,
    /// false on timeout. Any bytes received are returned via <paramref name="received"/>.
    /// </summary>
    public async Task<bool> WaitForPeerCloseAsync(TimeSpan timeout, List<byte>? received = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buf = new byte[4096];
        try
        {
            while (true)
            {
                int n = await _socket.ReceiveAsync(buf, SocketFlags.None, cts.Token);
                if (n == 0) return true;
                received?.AddRange(buf.AsSpan(0, n).ToArray());
            }
        }
        catch (OperationCanceledException) { return false; }
        catch (SocketException) { return true; }
    }

    private async Task<int> ReadExactlyOrEofAsync(byte[] buf, CancellationToken ct)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = await _socket.ReceiveAsync(buf.AsMemory(got), SocketFlags.None, ct);
            if (n == 0) break;
            got += n;
        }
        return got;
    }

    public void Dispose()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch { }
        _socket.Dispose();
    }
}
