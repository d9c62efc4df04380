using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Xdr.VirNetProtocolConstants;

namespace Libvirt.Rpc;

/// <summary>
/// One RPC message being read or written (libvirt's virnetmessage.c): the
/// frame in a pooled buffer (4-byte length word counting itself, the
/// <see cref="virNetMessageHeader"/> through the generated codec, for
/// *_WITH_FDS the fd count, then the payload), its decoded header, and the
/// descriptors that travel with it. <see cref="BufferLength"/> and
/// <see cref="BufferOffset"/> mean what they mean in the C struct, so the
/// read and write state machines in <see cref="VirNetServerClient"/> follow
/// virNetServerClientDispatchRead/Write step for step. Messages come from a
/// <see cref="VirNetMessagePool"/> and go back to it, buffer and all: the
/// steady state allocates nothing.
/// </summary>
public sealed class VirNetMessage
{
    /// <summary>The length word (VIR_NET_MESSAGE_LEN_MAX) and the header
    /// (6 XDR words) before any payload.</summary>
    public const int LengthWordSize = VIR_NET_MESSAGE_LEN_MAX;
    public const int HeaderSize = 24;

    /// <summary>Buffers up to this size stay with a message when it is
    /// cleared; bigger ones go back to the shared pool (as the C code frees
    /// a message's buffer with it).</summary>
    private const int KeepAtMost = VIR_NET_MESSAGE_INITIAL + VIR_NET_MESSAGE_LEN_MAX;

    public virNetMessageHeader Header;
    private byte[] _buffer = [];

    /// <summary>Bytes of the frame in the buffer (being read: how many are
    /// wanted so far; being written: the whole frame).</summary>
    public int BufferLength { get; internal set; }
    /// <summary>Bytes read or written so far, or where decoding stands.</summary>
    public int BufferOffset { get; internal set; }

    private readonly int[] _fds = new int[VIR_NET_MESSAGE_NUM_FDS_MAX];
    /// <summary>Descriptors of the message (received, or to send); -1 for
    /// one not received yet. The message owns them: <see cref="Clear"/> closes them.</summary>
    public int FdCount { get; private set; }
    /// <summary>How many of the descriptors have been received or sent.</summary>
    public int DoneFds { get; internal set; }

    /// <summary>The message counts against its client's request limit
    /// (nrequests): it was read from the client, and its reply frees the slot.</summary>
    public bool Tracked { get; internal set; }

    /// <summary>The queue link (virNetMessage's next).</summary>
    internal VirNetMessage? Next;

    /// <summary>What the rpc lines print for this message's %p (<see cref="VirNetLog"/>).</summary>
    internal readonly ulong LogId = VirNetLog.NewId();

    public ReadOnlySpan<int> Fds => _fds.AsSpan(0, FdCount);

    /// <summary>The frame as far as it is filled.</summary>
    public ReadOnlySpan<byte> Frame => _buffer.AsSpan(0, BufferLength);

    /// <summary>The payload after the header (and fd count): what a call's
    /// arguments are decoded from. Valid until the message is reused.</summary>
    public ReadOnlyMemory<byte> Payload => _buffer.AsMemory(BufferOffset, BufferLength - BufferOffset);

    /// <summary>Where the next bytes read go.</summary>
    internal Span<byte> ReadSpan => _buffer.AsSpan(BufferOffset, BufferLength - BufferOffset);

    /// <summary>Bytes received some other way than a socket read (the
    /// frame's next bytes, as far as it wants them): how many were taken.</summary>
    public int Receive(ReadOnlySpan<byte> bytes)
    {
        int n = Math.Min(bytes.Length, BufferLength - BufferOffset);
        bytes[..n].CopyTo(ReadSpan);
        BufferOffset += n;
        return n;
    }

    /// <summary>What is left to write.</summary>
    internal ReadOnlySpan<byte> WriteSpan => _buffer.AsSpan(BufferOffset, BufferLength - BufferOffset);

    private void EnsureCapacity(int length)
    {
        if (_buffer.Length >= length) return;
        var bigger = ArrayPool<byte>.Shared.Rent(length);
        _buffer.AsSpan(0, Math.Min(BufferLength, _buffer.Length)).CopyTo(bigger);
        if (_buffer.Length > 0) ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    /// <summary>virNetMessageClear: closes the descriptors, forgets header and
    /// contents (a dummy reply is a cleared message: nothing goes on the wire).</summary>
    public void Clear()
    {
        CloseFds();
        Header = default;
        BufferLength = 0;
        BufferOffset = 0;
        Next = null;
        if (_buffer.Length > KeepAtMost)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    /// <summary>Closes and forgets the descriptors (what the C dispatcher
    /// does with a call's once its body has run).</summary>
    public void CloseFds()
    {
        for (int i = 0; i < FdCount; i++)
            if (_fds[i] >= 0)
                Libc.close(_fds[i]);
        FdCount = 0;
        DoneFds = 0;
    }

    /// <summary>Ready to receive a new frame: its length word first.</summary>
    public void PrepareRead()
    {
        Clear();
        EnsureCapacity(LengthWordSize);
        BufferLength = LengthWordSize;
    }

    /// <summary>virNetMessageDecodeLength: the length word read, the buffer
    /// extended for the rest of the frame. A length below the word itself or
    /// more than VIR_NET_MESSAGE_MAX beyond it is an error (the client is
    /// then closed, no reply).</summary>
    public VirError? DecodeLength()
    {
        if (BufferLength < LengthWordSize)
            return Rpc("Unable to decode message length");
        uint len = BinaryPrimitives.ReadUInt32BigEndian(_buffer);
        BufferOffset = LengthWordSize;
        if (len < VIR_NET_MESSAGE_LEN_MAX)
            return Rpc($"packet {(int)len} bytes received from server too small, want {VIR_NET_MESSAGE_LEN_MAX}");
        len -= VIR_NET_MESSAGE_LEN_MAX;
        if (len > VIR_NET_MESSAGE_MAX)
            return Rpc($"packet {(int)len} bytes received from server too large, want {VIR_NET_MESSAGE_MAX}");
        EnsureCapacity(BufferLength + (int)len);
        BufferLength += (int)len;
        return null;
    }

    /// <summary>virNetMessageDecodeHeader: the header after the length word.</summary>
    public VirError? DecodeHeader()
    {
        if (BufferLength < LengthWordSize)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "Unable to decode header until len is received");
        BufferOffset = LengthWordSize;
        var r = new XdrReader(_buffer.AsMemory(LengthWordSize, BufferLength - LengthWordSize));
        if (virNetMessageHeader.Decode(ref r, out Header) != XdrError.None)
            return Rpc("Unable to decode message header");
        BufferOffset += r.Position;
        return null;
    }

    /// <summary>virNetMessageDecodeNumFDs: the fd count of a CALL_WITH_FDS
    /// (at most VIR_NET_MESSAGE_NUM_FDS_MAX), slots set to -1 until the
    /// descriptors arrive.</summary>
    public VirError? DecodeNumFds()
    {
        if (BufferLength - BufferOffset < 4)
            return Rpc("Unable to decode number of FDs");
        uint n = BinaryPrimitives.ReadUInt32BigEndian(_buffer.AsSpan(BufferOffset));
        BufferOffset += 4;
        if (n > VIR_NET_MESSAGE_NUM_FDS_MAX)
            return Rpc($"Received too many FDs {(int)n}, expected {VIR_NET_MESSAGE_NUM_FDS_MAX} maximum");
        if (FdCount == 0)
        {
            FdCount = (int)n;
            _fds.AsSpan(0, FdCount).Fill(-1);
        }
        return null;
    }

    /// <summary>A descriptor received for slot <see cref="DoneFds"/>.</summary>
    internal void SetReceivedFd(int fd) => _fds[DoneFds++] = fd;

    /// <summary>virNetMessageAddFD: a duplicate (close-on-exec) of
    /// <paramref name="fd"/> to send with the message, which owns it.</summary>
    public VirError? AddFd(SafeHandle fd)
    {
        if (FdCount == VIR_NET_MESSAGE_NUM_FDS_MAX)
            return Rpc($"Too many FDs to send {FdCount + 1}, expected {VIR_NET_MESSAGE_NUM_FDS_MAX} maximum");
        int dup = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
        if (dup < 0)
            return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Unable to duplicate FD");
        _fds[FdCount++] = dup;
        return null;
    }

    /// <summary>virNetMessageEncodeHeader: a placeholder length word and
    /// the header; the payload follows.</summary>
    public VirError? EncodeHeader()
    {
        EnsureCapacity(LengthWordSize + HeaderSize);
        BufferLength = _buffer.Length;
        var w = new XdrWriter(_buffer.AsSpan(LengthWordSize));
        if (Header.Encode(ref w) != XdrError.None)
            return Rpc("Unable to encode message header");
        BufferOffset = LengthWordSize + w.Position;
        BinaryPrimitives.WriteUInt32BigEndian(_buffer, (uint)BufferOffset);
        return null;
    }

    /// <summary>virNetMessageEncodeNumFDs: the count of the descriptors the message carries.</summary>
    public VirError? EncodeNumFds()
    {
        if (FdCount > VIR_NET_MESSAGE_NUM_FDS_MAX)
            return Rpc($"Too many FDs to send {FdCount}, expected {VIR_NET_MESSAGE_NUM_FDS_MAX} maximum");
        EnsureCapacity(BufferOffset + 4);
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(BufferOffset), (uint)FdCount);
        BufferOffset += 4;
        return null;
    }

    /// <summary>virNetMessageEncodePayload with bytes a generated encoder
    /// wrote: appended, the length word set, the frame ready to write
    /// (offset 0). libvirt grows its buffer by doubling from
    /// VIR_NET_MESSAGE_INITIAL up to VIR_NET_MESSAGE_MAX after the length
    /// word, so a frame of more than 4 + VIR_NET_MESSAGE_MAX bytes does not encode.</summary>
    public VirError? EncodePayload(ReadOnlySpan<byte> payload)
    {
        if ((long)BufferOffset + payload.Length > LengthWordSize + (long)VIR_NET_MESSAGE_MAX)
            return Rpc("Unable to encode message payload");
        EnsureCapacity(BufferOffset + payload.Length);
        payload.CopyTo(_buffer.AsSpan(BufferOffset));
        BufferOffset += payload.Length;
        return Finish();
    }

    /// <summary>virNetMessageEncodePayload of a generated type (the error struct of an error reply).</summary>
    public VirError? EncodePayload<T>(in T value) where T : struct, IXdrCodec<T>
    {
        long size = value.EncodedSize();
        if (BufferOffset + size > LengthWordSize + (long)VIR_NET_MESSAGE_MAX)
            return Rpc("Unable to encode message payload");
        EnsureCapacity(BufferOffset + (int)size);
        var w = new XdrWriter(_buffer.AsSpan(BufferOffset, (int)size));
        if (value.Encode(ref w) != XdrError.None)
            return Rpc("Unable to encode message payload");
        BufferOffset += w.Position;
        return Finish();
    }

    /// <summary>virNetMessageEncodePayloadRaw with no data (keepalive messages).</summary>
    public VirError? EncodePayloadEmpty() => Finish();

    private VirError? Finish()
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer, (uint)BufferOffset);
        BufferLength = BufferOffset;
        BufferOffset = 0;
        return null;
    }

    private static VirError Rpc(string detail) => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.Rpc, detail);
}

/// <summary>
/// The messages of one server (virNetMessageNew/virNetMessageFree without
/// the malloc): a free list, so reading a call and writing its reply reuse
/// the same objects and buffers. Used from the event loop thread only.
/// </summary>
public sealed class VirNetMessagePool
{
    private VirNetMessage? _free;
    private int _count;

    /// <summary>Free messages kept at most; more are left to the GC.</summary>
    public int KeepAtMost { get; init; } = 256;

    /// <summary>Where the rpc lines of this pool's server go.</summary>
    public VirNetLog Log { get; set; } = new();

    /// <summary>virNetMessageNew(tracked): a cleared message.</summary>
    public VirNetMessage Rent(bool tracked)
    {
        var m = _free;
        if (m is not null)
        {
            _free = m.Next;
            m.Next = null;
            _count--;
        }
        else
            m = new VirNetMessage();
        m.Tracked = tracked;
        if (Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 44, "virNetMessageNew",
                $"msg={VirNetLog.Ptr(m.LogId)} tracked={(tracked ? 1 : 0)}");
        return m;
    }

    /// <summary>virNetMessageDecodeLength's line, once the length word is read.</summary>
    internal void LogLength(VirNetMessage m)
    {
        if (Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 164, "virNetMessageDecodeLength",
                $"Got length, now need {m.BufferLength} total ({m.BufferLength - VirNetMessage.LengthWordSize} more)");
    }

    /// <summary>virNetMessageDecodeNumFDs' (received) or virNetMessageEncodeNumFDs' line.</summary>
    internal void LogFdCount(VirNetMessage m, bool received)
    {
        if (!Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            return;
        if (received)
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 341, "virNetMessageDecodeNumFDs", $"Got {m.FdCount} FDs from peer");
        else
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 301, "virNetMessageEncodeNumFDs", $"Send {m.FdCount} FDs to peer");
    }

    /// <summary>virNetMessageEncodePayload's (virNetMessageEncodePayloadRaw's
    /// when <paramref name="raw"/>) lines for a frame just encoded. libvirt's
    /// buffer starts at VIR_NET_MESSAGE_INITIAL after the length word and
    /// doubles until the payload fits, a line each time; ours is sized once,
    /// so the doublings are worked out from the frame's length.</summary>
    internal void LogEncoded(VirNetMessage m, bool raw = false)
    {
        if (!Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            return;
        long total = m.BufferLength;
        long length = VIR_NET_MESSAGE_INITIAL + VirNetMessage.LengthWordSize;
        while (total > length)
        {
            // the raw encoder grows the buffer once, to the length needed
            length = raw ? total : (length - VirNetMessage.LengthWordSize) * 2 + VirNetMessage.LengthWordSize;
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, raw ? 473 : 383,
                raw ? "virNetMessageEncodePayloadRaw" : "virNetMessageEncodePayload", $"Increased message buffer length = {length}");
        }
        Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, raw ? 481 : 391,
            raw ? "virNetMessageEncodePayloadRaw" : "virNetMessageEncodePayload", $"Encode length as {total}");
    }

    /// <summary>virNetMessageClear's line, where libvirt clears a message it
    /// keeps (a dummy reply, a reply turned into the next receive slot).</summary>
    internal void LogClear(VirNetMessage m)
    {
        if (Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 80, "virNetMessageClear",
                $"msg={VirNetLog.Ptr(m.LogId)} nfds={m.FdCount}");
    }

    /// <summary>virNetMessageFree: its descriptors closed, back to the list.</summary>
    public void Return(VirNetMessage m)
    {
        if (Log.On(VirNetLog.NetMessage, VirLogPriority.Debug))
            Log.Debug(VirNetLog.NetMessage, VirNetLog.MessageFile, 93, "virNetMessageFree",
                $"msg={VirNetLog.Ptr(m.LogId)} nfds={m.FdCount} cb=(nil)");
        m.Clear();
        if (_count >= KeepAtMost) return;
        m.Next = _free;
        _free = m;
        _count++;
    }
}

/// <summary>A FIFO of messages linked through the messages themselves
/// (virNetMessageQueuePush/Serve): no allocation per message.</summary>
internal struct VirNetMessageQueue
{
    private VirNetMessage? _head;
    private VirNetMessage? _tail;

    public readonly VirNetMessage? Head => _head;
    public readonly bool IsEmpty => _head is null;

    public void Push(VirNetMessage m)
    {
        m.Next = null;
        if (_tail is null) _head = m;
        else _tail.Next = m;
        _tail = m;
    }

    public VirNetMessage? Serve()
    {
        var m = _head;
        if (m is null) return null;
        _head = m.Next;
        if (_head is null) _tail = null;
        m.Next = null;
        return m;
    }
}
