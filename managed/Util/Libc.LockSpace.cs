using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>The libc calls the managed lock space needs: paths are passed as
/// the NUL-terminated bytes the C code would see, and locks are fcntl
/// F_SETLK record locks (process-associated, as virFileLock takes them).
/// Linux x86_64/aarch64 layouts.</summary>
public static unsafe partial class Libc
{
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;

    public const int F_GETFD = 1;
    public const int F_SETFD = 2;
    public const int F_SETLK = 6;
    public const int FD_CLOEXEC = 1;

    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short SEEK_SET = 0;

    public const int F_OK = 0;

    public const int ENOENT = 2;
    public const int EBADF = 9;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int EINVAL = 22;

    /// <summary>struct flock: short, short, off_t, off_t, pid_t (32 bytes with padding).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct flock
    {
        public short l_type;
        public short l_whence;
        public long l_start;
        public long l_len;
        public int l_pid;
    }

    [LibraryImport("libc", SetLastError = true)]
    public static partial int open(byte* path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int unlink(byte* path);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int access(byte* path, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int mkdir(byte* path, uint mode);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(SafeHandle fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(SafeHandle fd, int cmd, flock* arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, flock* arg);

    // statx rather than stat/fstat: one struct layout on every architecture.
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static partial int statx(int dirfd, byte* path, int flags, uint mask, byte* buf);

    private const int AT_FDCWD = -100;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1, STATX_MODE = 0x2, STATX_INO = 0x100;
    private const int StatxSize = 256;

    public const uint S_IFMT = 0xF000;
    public const uint S_IFDIR = 0x4000;

    /// <summary>The parts of struct statx the lock space (and its tests) look at.</summary>
    public readonly record struct FileId(ulong Inode, uint Mode, uint DevMajor, uint DevMinor)
    {
        public bool IsDirectory => (Mode & S_IFMT) == S_IFDIR;
    }

    private static FileId ReadStatx(byte* b) => new(
        Inode: *(ulong*)(b + 32),
        Mode: *(ushort*)(b + 28),
        DevMajor: *(uint*)(b + 136),
        DevMinor: *(uint*)(b + 140));

    /// <summary>stat(2) of a NUL-terminated path (following symlinks); errno on failure.</summary>
    public static bool TryStat(byte* path, out FileId id, out int errno)
    {
        byte* buf = stackalloc byte[StatxSize];
        if (statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_MODE | STATX_INO, buf) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            id = default;
            return false;
        }
        errno = 0;
        id = ReadStatx(buf);
        return true;
    }

    /// <summary>stat(2) of a path given as a string (UTF-8).</summary>
    public static bool TryStat(string path, out FileId id, out int errno)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(path);
        Span<byte> bytes = n < 1024 ? stackalloc byte[n + 1] : new byte[n + 1];
        System.Text.Encoding.UTF8.GetBytes(path, bytes);
        bytes[n] = 0;
        fixed (byte* p = bytes)
            return TryStat(p, out id, out errno);
    }

    /// <summary>fstat(2); errno on failure.</summary>
    public static bool TryFStat(SafeHandle fd, out FileId id, out int errno)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return TryFStat((int)fd.DangerousGetHandle(), out id, out errno);
        }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }

    /// <summary>fstat(2) of a plain fd; errno on failure.</summary>
    public static bool TryFStat(int fd, out FileId id, out int errno)
    {
        byte* buf = stackalloc byte[StatxSize];
        byte empty = 0;
        if (statx(fd, &empty, AT_EMPTY_PATH, STATX_TYPE | STATX_MODE | STATX_INO, buf) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            id = default;
            return false;
        }
        errno = 0;
        id = ReadStatx(buf);
        return true;
    }
}
