using System.Runtime.InteropServices;

namespace Libvirt.LockDriver;

/// <summary>The libc calls of the lock daemon's client side (what
/// virnetsocket.c makes for a UNIX client socket, and the plugin's own
/// access(2) and geteuid(2)). Every call sets errno for
/// <see cref="Marshal.GetLastPInvokeError"/>.</summary>
internal static unsafe partial class Libc
{
    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int R_OK = 4;
    public const int O_RDWR = 2;
    public const int O_CREAT = 0x40;
    public const int O_CLOEXEC = 0x80000;
    public const int F_SETLKW = 7;
    public const short F_WRLCK = 1;

    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENOENT = 2;
    public const int ENOMEM = 12;
    public const int EFAULT = 14;
    public const int EEXIST = 17;
    public const int EAGAIN = 11;
    public const int ECONNREFUSED = 111;

    /// <summary>struct sockaddr_un: the family, then 108 bytes of path.</summary>
    public const int SunPathLength = 108;

    [StructLayout(LayoutKind.Sequential)]
    public struct sockaddr_un
    {
        public ushort sun_family;
        public fixed byte sun_path[SunPathLength];
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct flock_t
    {
        public short l_type;
        public short l_whence;
        public long l_start;
        public long l_len;
        public int l_pid;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int connect(int fd, sockaddr_un* addr, uint len);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint send(int fd, byte* buf, nuint len, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int dup(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int access(byte* path, int mode);

    [LibraryImport("libc")]
    public static partial uint geteuid();

    [LibraryImport("libc")]
    public static partial byte* getenv(byte* name);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int open(byte* path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int unlink(byte* path);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int mkdir(byte* path, uint mode);

    [LibraryImport("libc", SetLastError = true, EntryPoint = "fcntl")]
    public static partial int fcntl_lock(int fd, int cmd, flock_t* lk);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int usleep(uint usec);

    public static int Errno => Marshal.GetLastPInvokeError();
}
