using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>The handful of libc calls the migrated code needs that .NET does not
/// expose (libc is not libvirt: these are not generated).</summary>
public static unsafe partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    public static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    public static partial uint umask(uint mask);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int chdir(byte* path);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buf, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int execvp(sbyte* file, sbyte** argv);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int unsetenv(sbyte* name);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(SafeHandle fd, long length);

    /// <summary>virSetInherit: clears (or sets) FD_CLOEXEC; -1 with errno on failure.</summary>
    public static int SetInherit(int fd, bool inherit)
    {
        int flags = fcntl(fd, 1 /* F_GETFD */, 0);
        if (flags < 0)
            return -1;
        flags = inherit ? flags & ~FD_CLOEXEC : flags | FD_CLOEXEC;
        return fcntl(fd, 2 /* F_SETFD */, flags) < 0 ? -1 : 0;
    }

    /// <summary>virProcessKill: no signal to pid 0 or 1 (the process group, init); -1 with errno.</summary>
    public static int ProcessKill(int pid, int sig)
    {
        if (pid <= 1)
        {
            Marshal.SetLastPInvokeError(3 /* ESRCH */);
            return -1;
        }
        return kill(pid, sig);
    }

    /// <summary>glibc's struct sigaction on x86_64 and aarch64 (handler, 1024-bit mask, flags, restorer): 152
    /// bytes, kept whole so that a saved action is restored exactly.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 152)]
    public struct sigaction_t
    {
        public nint sa_handler;
    }

    public const nint SIG_IGN = 1;

    [LibraryImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    public static partial int sigaction(int signum, sigaction_t* act, sigaction_t* oldact);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [StructLayout(LayoutKind.Sequential)]
    public struct pollfd
    {
        public int fd;
        public short events;
        public short revents;
    }

    public const short POLLIN = 1;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(pollfd* fds, nuint nfds, int timeout);

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true)]
    private static partial int stat_(byte* path, byte* buf);

    public const uint S_IFIFO = 0x1000;

    /// <summary>stat(2) of <paramref name="path"/> (symbolic links followed, as open(2) does): type and
    /// permission bits, inode, size; null if it fails (the caller's open reports why). x86_64 layout.</summary>
    public static (uint Mode, ulong INode, long Size)? FileStat(string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        byte* buf = stackalloc byte[256];
        fixed (byte* p = bytes)
            if (stat_(p, buf) != 0)
                return null;
        return (*(uint*)(buf + 24), *(ulong*)(buf + 8), *(long*)(buf + 48));
    }

    public const int O_CLOEXEC = 0x80000;
    public const int O_NONBLOCK = 0x800;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int EBUSY = 16;
}

