using System.Runtime.InteropServices;

namespace Libvirt.LockDriver;

/// <summary>The libc calls of the lock daemon's client side that
/// Libvirt.Util's <c>Libc</c> does not declare (what virnetsocket.c makes
/// for a UNIX client socket, and the plugin's own getenv(3) and lock wait).
/// Every call sets errno for <see cref="Marshal.GetLastPInvokeError"/>.</summary>
internal static unsafe partial class LibcClient
{
    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const int R_OK = 4;
    public const int F_SETLKW = 7;

    public const int EIO = 5;
    public const int ENOMEM = 12;
    public const int EFAULT = 14;
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
    public static partial int dup(int fd);

    [LibraryImport("libc")]
    public static partial byte* getenv(byte* name);

    [LibraryImport("libc", SetLastError = true, EntryPoint = "fcntl")]
    public static partial int fcntl_lock(int fd, int cmd, flock_t* lk);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int usleep(uint usec);

    public static int Errno => Marshal.GetLastPInvokeError();
}
