using System.Runtime.InteropServices;

namespace Libvirt.Util;

public static unsafe partial class Libc
{
    /// <summary>
    /// The libc calls the managed rotating file makes, the same ones
    /// virrotatingfile.c makes (open with O_APPEND, lseek, fstat, rename,
    /// unlink, write, read), so errno and on-disk effects are the kernel's own.
    /// Nested so that other twins' Libc partials declaring open/unlink or the
    /// O_/E constants cannot collide with these. Linux x86_64/aarch64 values.
    /// </summary>
    internal static unsafe partial class RotatingFile
    {
        public const int O_RDONLY = 0x0;
        public const int O_WRONLY = 0x1;
        public const int O_CREAT = 0x40;
        public const int O_APPEND = 0x400;

        public const int SEEK_SET = 0;
        public const int SEEK_END = 2;

        public const int ENOENT = 2;
        public const int EINTR = 4;
        public const int EBADF = 9;

        // open(2) is variadic; the mode is passed as the one int argument it reads.
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true)]
        public static partial int open(byte* path, int flags, uint mode);

        [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
        public static partial long lseek(SafeHandle fd, long offset, int whence);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        public static partial nint write(SafeHandle fd, byte* buf, nuint count);

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        public static partial nint read(SafeHandle fd, byte* buf, nuint count);

        [LibraryImport("libc", EntryPoint = "rename", SetLastError = true)]
        public static partial int rename(byte* from, byte* to);

        [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true)]
        public static partial int unlink(byte* path);

        [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
        private static partial int fstat(SafeHandle fd, byte* buf);

        // struct stat is 144 bytes on x86_64 and 128 on aarch64; st_ino sits at
        // offset 8 on both.
        private const int StatBufferSize = 256;
        private const int StInoOffset = 8;

        /// <summary>fstat(2) for the inode only; errno on failure.</summary>
        public static bool TryFStatINode(SafeHandle fd, out ulong inode, out int errno)
        {
            byte* buf = stackalloc byte[StatBufferSize];
            if (fstat(fd, buf) != 0)
            {
                errno = Marshal.GetLastPInvokeError();
                inode = 0;
                return false;
            }
            errno = 0;
            inode = *(ulong*)(buf + StInoOffset);
            return true;
        }
    }
}
