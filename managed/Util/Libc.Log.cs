using System.Runtime.InteropServices;

namespace Libvirt.Util;

public static unsafe partial class Libc
{
    /// <summary>
    /// The libc calls the managed logging twin makes, the ones virlog.c makes
    /// for its file and stderr outputs and its default-output decision.
    /// Nested so other twins' partials declaring open/write cannot collide.
    /// </summary>
    internal static unsafe partial class Log
    {
        public const int O_WRONLY = 0x1;
        public const int O_CREAT = 0x40;
        public const int O_APPEND = 0x400;
        public const int O_CLOEXEC = 0x80000;
        public const int W_OK = 2;
        public const int EINTR = 4;
        public const int EAGAIN = 11;

        // open(2) is variadic; the mode is passed as the one int argument it reads.
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true)]
        public static partial int open(byte* path, int flags, uint mode);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        public static partial nint write(int fd, byte* buf, nuint count);

        [LibraryImport("libc", EntryPoint = "close")]
        public static partial int close(int fd);

        [LibraryImport("libc", EntryPoint = "gettid")]
        public static partial int gettid();

        [LibraryImport("libc", EntryPoint = "isatty")]
        public static partial int isatty(int fd);

        [LibraryImport("libc", EntryPoint = "access")]
        public static partial int access(byte* path, int mode);

        [LibraryImport("libc", EntryPoint = "umask")]
        public static partial uint umask(uint mask);

        /// <summary>One datagram to the UNIX socket at <paramref name="path"/>
        /// with no data and <paramref name="fd"/> as SCM_RIGHTS (journald's
        /// protocol for an entry too large for a datagram); false on error.</summary>
        public static bool SendFdTo(int sock, string path, int fd)
        {
            // struct sockaddr_un: sa_family_t (AF_UNIX = 1), then the path; the length counts no NUL
            Span<byte> addr = stackalloc byte[110];
            addr.Clear();
            addr[0] = 1;
            int n = System.Text.Encoding.UTF8.GetBytes(path, addr[2..^1]);
            byte* control = stackalloc byte[CmsgSpaceOneFd];
            PutOneFd(control, fd);
            fixed (byte* a = addr)
            {
                var msg = new msghdr { msg_name = a, msg_namelen = (uint)(2 + n), msg_control = control, msg_controllen = CmsgLenOneFd };
                while (true)
                {
                    if (sendmsg(sock, &msg, MSG_NOSIGNAL) >= 0)
                        return true;
                    if (Marshal.GetLastPInvokeError() != EINTR)
                        return false;
                }
            }
        }

        /// <summary>safewrite: all of it, retrying short writes and EINTR/EAGAIN;
        /// false on the first other error (the output drops the rest, as libvirt's does).</summary>
        public static bool WriteAll(int fd, ReadOnlySpan<byte> data)
        {
            fixed (byte* p = data)
            {
                int done = 0;
                while (done < data.Length)
                {
                    nint n = write(fd, p + done, (nuint)(data.Length - done));
                    if (n < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == EINTR || errno == EAGAIN)
                            continue;
                        return false;
                    }
                    if (n == 0)
                        return false;
                    done += (int)n;
                }
                return true;
            }
        }
    }
}
