using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>UNIX socket calls for the managed RPC layer (managed/Rpc): accept,
/// byte I/O without SIGPIPE, one descriptor per message with SCM_RIGHTS (as
/// libvirt's virSocketSendFD/virSocketRecvFD: one data byte carries each fd),
/// and the peer's credentials. Layouts are glibc's LP64 ones (x86_64, aarch64).</summary>
public static unsafe partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    public static partial int accept4(int fd, void* addr, void* addrlen, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint send(int fd, byte* buf, nuint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recv(int fd, byte* buf, nuint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint sendmsg(int fd, msghdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recvmsg(int fd, msghdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int name, void* value, uint* len);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int bind(int fd, sockaddr_un* addr, uint len);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int listen(int fd, int backlog);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getsockname(int fd, sockaddr_un* addr, uint* len);

    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const int SOCK_DGRAM = 2;

    /// <summary>struct sockaddr_un: the family, then 108 bytes of path.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct sockaddr_un
    {
        public const int PathSize = 108;
        public ushort sun_family;
        public fixed byte sun_path[PathSize];
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct iovec
    {
        public void* iov_base;
        public nuint iov_len;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct msghdr
    {
        public void* msg_name;
        public uint msg_namelen;
        public iovec* msg_iov;
        public nuint msg_iovlen;
        public void* msg_control;
        public nuint msg_controllen;
        public int msg_flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct cmsghdr
    {
        public nuint cmsg_len;
        public int cmsg_level;
        public int cmsg_type;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct ucred
    {
        public int pid;
        public uint uid;
        public uint gid;
    }

    public const int SO_PEERSEC = 31;
    public const int ERANGE = 34;
    public const int ENOSYS = 38;
    public const int ENOPROTOOPT = 92;

    /// <summary>A getsockopt: the return value, and errno when it is negative.</summary>
    public delegate int SockOptGetter(int fd, int level, int name, void* value, uint* len, out int errno);

    private static readonly SockOptGetter s_getsockopt = (int fd, int level, int name, void* value, uint* len, out int errno) =>
    {
        int rc = getsockopt(fd, level, name, value, len);
        errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        return rc;
    };

    /// <summary>The peer's security label, as libselinux's getpeercon asks
    /// for it (untranslated: no mcstrans): SO_PEERSEC into a buffer of 256
    /// bytes, asked again once with the length the kernel wants when it
    /// says ERANGE. 0 and the label, or -1 and errno (ENOPROTOOPT when no
    /// security module labels sockets). <paramref name="get"/>: the
    /// getsockopt to use, libc's when null (a seam for tests).</summary>
    public static int GetPeerSecurityContext(int fd, out string? context, out int errno, SockOptGetter? get = null)
    {
        get ??= s_getsockopt;
        context = null;
        uint len = 256;
        var buf = new byte[len];
        int rc;
        fixed (byte* p = buf)
            rc = get(fd, SOL_SOCKET, SO_PEERSEC, p, &len, out errno);
        if (rc < 0 && errno == ERANGE)
        {
            buf = new byte[len];
            fixed (byte* p = buf)
                rc = get(fd, SOL_SOCKET, SO_PEERSEC, p, &len, out errno);
        }
        if (rc < 0)
            return -1;
        var label = buf.AsSpan(0, (int)Math.Min(len, (uint)buf.Length));
        int nul = label.IndexOf((byte)0);
        context = System.Text.Encoding.UTF8.GetString(nul >= 0 ? label[..nul] : label);
        errno = 0;
        return 0;
    }

    /// <summary>CMSG_LEN(sizeof(int)) and CMSG_SPACE(sizeof(int)) on LP64.</summary>
    public const int CmsgLenOneFd = 16 + 4;
    public const int CmsgSpaceOneFd = 16 + 8;

    public const int SOL_SOCKET = 1;
    public const int SO_PEERCRED = 17;
    public const int SCM_RIGHTS = 1;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;
    public const int SOCK_NONBLOCK = O_NONBLOCK;
    public const int SOCK_CLOEXEC = O_CLOEXEC;
    public const int F_DUPFD_CLOEXEC = 1030;
    public const int ENOTCONN = 107;
    public const int EWOULDBLOCK = EAGAIN;

    /// <summary>Sends one descriptor with one zero byte, as virSocketSendFD:
    /// 1 sent, 0 would block, -1 with errno.</summary>
    public static int SendFd(int sock, int fd)
    {
        byte data = 0;
        var iov = new iovec { iov_base = &data, iov_len = 1 };
        byte* control = stackalloc byte[CmsgSpaceOneFd];
        PutOneFd(control, fd);
        var msg = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = CmsgLenOneFd };
        while (true)
        {
            nint n = sendmsg(sock, &msg, MSG_NOSIGNAL);
            if (n == 1) return 1;
            int errno = Marshal.GetLastPInvokeError();
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return 0;
            return -1;
        }
    }

    /// <summary>Fills a control buffer of <see cref="CmsgSpaceOneFd"/> bytes
    /// with one SCM_RIGHTS message carrying <paramref name="fd"/>.</summary>
    internal static void PutOneFd(byte* control, int fd)
    {
        new Span<byte>(control, CmsgSpaceOneFd).Clear();
        var cmsg = (cmsghdr*)control;
        cmsg->cmsg_len = CmsgLenOneFd;
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        *(int*)(control + sizeof(cmsghdr)) = fd;
    }

    /// <summary>Receives one descriptor (close-on-exec) with its byte, as
    /// virSocketRecvFD: 1 and the fd, 0 would block, -1 with the errno (a
    /// message without exactly one fd: EACCES, end of file: ENOTCONN, as there).</summary>
    public static int RecvFd(int sock, out int fd, out int errno)
    {
        fd = -1;
        errno = 0;
        byte data = 0;
        var iov = new iovec { iov_base = &data, iov_len = 1 };
        byte* control = stackalloc byte[CmsgSpaceOneFd];
        new Span<byte>(control, CmsgSpaceOneFd).Clear();
        var msg = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = CmsgSpaceOneFd };
        nint n;
        while (true)
        {
            n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
            if (n >= 0) break;
            errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        var cmsg = msg.msg_controllen >= (nuint)sizeof(cmsghdr) ? (cmsghdr*)control : null;
        if (n == 0 || cmsg == null || cmsg->cmsg_len != CmsgLenOneFd ||
            cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        {
            errno = n != 0 ? EACCES : ENOTCONN;
            return -1;
        }
        fd = *(int*)(control + sizeof(cmsghdr));
        return 1;
    }
}
