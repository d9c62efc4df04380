using System.Runtime.InteropServices;
using System.Text;

namespace Libvirt.Tests.Fuzz;

/// <summary>
/// A non-blocking AF_UNIX stream socket driven by raw syscalls, so that a test can send and receive
/// SCM_RIGHTS descriptors (CALL_WITH_FDS / REPLY_WITH_FDS) and half-close its side, which
/// System.Net.Sockets does not expose. Every wait is a poll() with a bound.
/// </summary>
public sealed unsafe class UnixStream : IDisposable
{
    private const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000, SOCK_NONBLOCK = 0x800;
    private const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_NOSIGNAL = 0x4000, MSG_CMSG_CLOEXEC = 0x40000000;
    private const short POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 16;
    private const int EAGAIN = 11, EINTR = 4, EINPROGRESS = 115;
    private const int SHUT_WR = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd { public int Fd; public short Events; public short Revents; }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec { public void* Base; public nuint Len; }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name; public uint NameLen; public IoVec* Iov; public nuint IovLen;
        public void* Control; public nuint ControlLen; public int Flags;
    }

    [DllImport("libc", SetLastError = true)] private static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] private static extern int connect(int fd, byte* addr, uint len);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int shutdown(int fd, int how);
    [DllImport("libc", SetLastError = true)] private static extern nint sendmsg(int fd, MsgHdr* msg, int flags);
    [DllImport("libc", SetLastError = true)] private static extern nint recvmsg(int fd, MsgHdr* msg, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int poll(PollFd* fds, nuint n, int timeout);
    [DllImport("libc", SetLastError = true, EntryPoint = "open")] private static extern int open_(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fstat(int fd, byte* buf);

    private int _fd;

    /// <summary>Drop the byte each received descriptor rode on (default), as libvirt's receiving side does.</summary>
    public bool StripFdCarrier { get; set; } = true;
    private readonly List<int> _receivedFds = new();

    /// <summary>Descriptors received so far (SCM_RIGHTS), owned by this stream until <see cref="Dispose"/>.</summary>
    public IReadOnlyList<int> ReceivedFds => _receivedFds;

    private UnixStream(int fd) => _fd = fd;

    public static UnixStream Connect(string path, TimeSpan timeout)
    {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) throw new IOException($"socket: {Marshal.GetLastPInvokeErrorMessage()}");
        var s = new UnixStream(fd);
        try
        {
            var p = Encoding.UTF8.GetBytes(path);
            if (p.Length > 107) throw new ArgumentException($"socket path too long: {path}");
            var addr = new byte[110];
            addr[0] = AF_UNIX;
            p.CopyTo(addr, 2);
            fixed (byte* a = addr)
                if (connect(fd, a, (uint)(2 + p.Length + 1)) < 0)
                {
                    int e = Marshal.GetLastPInvokeError();
                    if (e != EINPROGRESS && e != EAGAIN)
                        throw new IOException($"connect {path}: {Marshal.GetPInvokeErrorMessage(e)}");
                    if (!s.Poll(POLLOUT, timeout))
                        throw new TimeoutException($"connect {path}: not connected within {timeout}");
                }
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    private bool Poll(short events, TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            var pfd = new PollFd { Fd = _fd, Events = events };
            long left = Math.Max(0, deadline - Environment.TickCount64);
            int r = poll(&pfd, 1, (int)Math.Min(left, int.MaxValue));
            if (r > 0) return true;
            if (r < 0 && Marshal.GetLastPInvokeError() != EINTR)
                throw new IOException($"poll: {Marshal.GetLastPInvokeErrorMessage()}");
            if (r == 0 && left == 0) return false;
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/> (the first byte carries <paramref name="fds"/> as SCM_RIGHTS, if any).
    /// Returns false if the peer closed (EPIPE/ECONNRESET); throws TimeoutException if it stopped reading.
    /// </summary>
    public bool Send(ReadOnlySpan<byte> data, TimeSpan timeout, int[]? fds = null)
    {
        int sent = 0;
        byte* control = stackalloc byte[16 + 4 * 8];
        if (fds is { Length: > 8 }) throw new ArgumentException("at most 8 descriptors");
        var deadline = DateTime.UtcNow + timeout;
        while (sent < data.Length)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !Poll(POLLOUT, left))
                throw new TimeoutException($"peer did not read {data.Length - sent} of {data.Length} bytes within {timeout}");
            nint n;
            fixed (byte* d = data)
            {
                var iov = new IoVec { Base = d + sent, Len = (nuint)(data.Length - sent) };
                var msg = new MsgHdr { Iov = &iov, IovLen = 1 };
                bool withFds = sent == 0 && fds is { Length: > 0 };
                int clen = withFds ? 16 + 4 * fds!.Length : 0;
                if (withFds)
                {
                    iov.Len = 1; // the descriptors ride on one byte, as gnulib's sendfd does
                    *(nuint*)control = (nuint)clen;
                    *(int*)(control + 8) = SOL_SOCKET;
                    *(int*)(control + 12) = SCM_RIGHTS;
                    for (int i = 0; i < fds!.Length; i++) *(int*)(control + 16 + 4 * i) = fds[i];
                    msg.Control = control;
                    msg.ControlLen = (nuint)((clen + 7) & ~7);
                }
                n = sendmsg(_fd, &msg, MSG_NOSIGNAL);
            }
            if (n < 0)
            {
                int e = Marshal.GetLastPInvokeError();
                if (e == EAGAIN || e == EINTR) continue;
                return false; // EPIPE, ECONNRESET: the peer is gone
            }
            sent += (int)n;
        }
        return true;
    }

    /// <summary>Sends <paramref name="count"/> single bytes, each carrying one descriptor (gnulib sendfd's framing).</summary>
    public bool SendFds(int[] fds, TimeSpan timeout)
    {
        foreach (var fd in fds)
            if (!Send(new byte[] { 0 }, timeout, [fd]))
                return false;
        return true;
    }

    /// <summary>
    /// Reads what is available (waiting up to <paramref name="timeout"/> for the first byte). Returns the bytes,
    /// an empty array on EOF, or null on timeout. Descriptors that arrive are kept in <see cref="ReceivedFds"/>.
    /// </summary>
    public byte[]? Receive(TimeSpan timeout, int max = 65536)
    {
        if (!Poll(POLLIN, timeout))
            return null;
        var buf = new byte[max];
        byte* control = stackalloc byte[16 + 4 * 64];
        nint n;
        fixed (byte* b = buf)
        {
            var iov = new IoVec { Base = b, Len = (nuint)max };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = control, ControlLen = 16 + 4 * 64 };
            n = recvmsg(_fd, &msg, MSG_CMSG_CLOEXEC);
            if (n < 0)
            {
                int e = Marshal.GetLastPInvokeError();
                if (e == EAGAIN || e == EINTR) return null; // spurious wake-up: nothing yet
                return []; // ECONNRESET: as EOF
            }
            // one SCM_RIGHTS header is all libvirt sends per recvmsg
            int got = 0;
            if (msg.ControlLen >= 16)
            {
                var len = (int)*(nuint*)control;
                if (*(int*)(control + 8) == SOL_SOCKET && *(int*)(control + 12) == SCM_RIGHTS)
                    for (int off = 16; off + 4 <= len; off += 4, got++)
                        _receivedFds.Add(*(int*)(control + off));
            }
            // gnulib's sendfd carries each descriptor on one byte of its own, which is not part of the RPC
            // stream; a read stops right after the byte that brought descriptors
            if (got > 0 && StripFdCarrier && n > 0 && --n == 0)
                return null; // nothing of the stream in this read
        }
        return buf[..(int)n];
    }

    /// <summary>Half-close: the peer reads EOF, we can still read what it sends.</summary>
    public void ShutdownWrite() => shutdown(_fd, SHUT_WR);

    /// <summary>(st_dev, st_ino, st_mode) of a descriptor (x86_64 struct stat).</summary>
    public static (ulong Dev, ulong Ino, uint Mode)? Fstat(int fd)
    {
        byte* b = stackalloc byte[256];
        if (fstat(fd, b) != 0) return null;
        return (*(ulong*)b, *(ulong*)(b + 8), *(uint*)(b + 24));
    }

    public static int OpenDevNull() => open_("/dev/null", 0x80000 /* O_RDONLY|O_CLOEXEC */);

    public static void CloseFd(int fd) => close(fd);

    /// <summary>write(2) on a raw descriptor (e.g. a received pipe end); returns bytes written or -errno.</summary>
    public static int Write(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* d = data)
        {
            nint n = write(fd, d, (nuint)data.Length);
            return n < 0 ? -Marshal.GetLastPInvokeError() : (int)n;
        }
    }

    [DllImport("libc", SetLastError = true)] private static extern nint write(int fd, byte* buf, nuint count);

    public void Dispose()
    {
        foreach (var fd in _receivedFds) close(fd);
        _receivedFds.Clear();
        if (_fd >= 0) close(_fd);
        _fd = -1;
    }
}
