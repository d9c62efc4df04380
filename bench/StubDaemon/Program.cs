// stubdaemon SOCKET: listens on SOCKET (a UNIX stream socket, mode 0600) and
// answers every CALL with an empty OK REPLY at once, and every keepalive PING
// with a PONG; nothing else is done. With libvirt's lock client on the other
// end (every lock procedure returns void), this is the most a daemon could
// give that client: the ceiling the lock benchmarks compare C and ours with.
using System.Buffers.Binary;
using System.Net.Sockets;
using Libvirt.Xdr;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: stubdaemon SOCKET");
    return 2;
}
const int HeaderSize = 28;
var path = args[0];
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
File.Delete(path);
using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
listener.Bind(new UnixDomainSocketEndPoint(path));
File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
listener.Listen(128);
Console.CancelKeyPress += (_, _) => Environment.Exit(0);
AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);

// One thread, as the C daemons dispatch: wait for any readable socket, accept
// or answer every whole frame that is there, and go round again.
var conns = new List<Socket>();
var ready = new List<Socket>();
var buf = new byte[64 * 1024];
var reply = new byte[HeaderSize];
while (true)
{
    ready.Clear();
    ready.Add(listener);
    ready.AddRange(conns);
    Socket.Select(ready, null, null, -1);
    foreach (var s in ready)
    {
        if (s == listener)
        {
            conns.Add(listener.Accept());
            continue;
        }
        if (!Answer(s, ref buf, reply))
        {
            conns.Remove(s);
            s.Dispose();
        }
    }
}

// Reads one frame (the rest of it may still be on its way: frames here are
// small and written at once) and answers it; false when the peer is gone or
// sent a length libvirt would refuse (it closes the connection then).
static bool Answer(Socket s, ref byte[] buf, byte[] reply)
{
    const int Max = 32 * 1024 * 1024 + HeaderSize; // virNetMessage's limit
    try
    {
        if (!ReadExactly(s, buf.AsSpan(0, 4)))
            return false;
        int len = (int)BinaryPrimitives.ReadUInt32BigEndian(buf);
        if (len < HeaderSize || len > Max)
            return false;
        if (len > buf.Length)
            Array.Resize(ref buf, len);
        if (!ReadExactly(s, buf.AsSpan(4, len - 4)))
            return false;
        if (XdrCodec.Decode<virNetMessageHeader>(buf.AsMemory(4, HeaderSize - 4), out var h, out _) != XdrError.None)
            return false;
        if (h.type == virNetMessageType.VIR_NET_CALL || h.type == virNetMessageType.VIR_NET_CALL_WITH_FDS)
        {
            h.type = virNetMessageType.VIR_NET_REPLY;
            h.status = virNetMessageStatus.VIR_NET_OK;
        }
        else if (h.type == virNetMessageType.VIR_NET_MESSAGE &&
                 h.prog == VirKeepAliveProtocolConstants.KEEPALIVE_PROGRAM && h.proc == (int)keepalive_procedure.KEEPALIVE_PROC_PING)
            h.proc = (int)keepalive_procedure.KEEPALIVE_PROC_PONG;
        else
            return true;
        BinaryPrimitives.WriteUInt32BigEndian(reply, HeaderSize);
        XdrCodec.Encode(h, reply.AsSpan(4), out _);
        s.Send(reply);
        return true;
    }
    catch (SocketException) { return false; }
}

static bool ReadExactly(Socket s, Span<byte> into)
{
    while (into.Length > 0)
    {
        int n = s.Receive(into);
        if (n == 0)
            return false;
        into = into[n..];
    }
    return true;
}
