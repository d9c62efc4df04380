using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>epoll and eventfd, for the managed event loop (<see cref="VirEventManaged"/>).</summary>
public static unsafe partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_ctl(int epfd, int op, int fd, byte* ev);

    /// <summary><paramref name="events"/>: an array of <paramref name="maxevents"/>
    /// entries of <see cref="EpollEventSize"/> bytes each.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int epoll_wait(int epfd, byte* events, int maxevents, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    // struct epoll_event is { uint32_t events; epoll_data_t data; }, and
    // packed on x86-64 only (12 bytes, data at 4); 16 bytes with data at 8
    // on the other 64-bit ABIs. Read and written through these helpers so
    // one buffer layout serves both.
    private static readonly bool EpollPacked = RuntimeInformation.ProcessArchitecture == Architecture.X64;
    public static int EpollEventSize => EpollPacked ? 12 : 16;
    private static int EpollDataOffset => EpollPacked ? 4 : 8;

    public static uint EpollEvents(byte* ev) => *(uint*)ev;
    public static ulong EpollData(byte* ev) => System.Runtime.CompilerServices.Unsafe.ReadUnaligned<ulong>(ev + EpollDataOffset);

    public static void EpollSet(byte* ev, uint events, ulong data)
    {
        *(uint*)ev = events;
        System.Runtime.CompilerServices.Unsafe.WriteUnaligned(ev + EpollDataOffset, data);
    }

    public const int EPOLL_CLOEXEC = O_CLOEXEC;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;

    public const int EFD_CLOEXEC = O_CLOEXEC;
    public const int EFD_NONBLOCK = O_NONBLOCK;

    // ENOENT, EBADF, EEXIST: Libc.LockSpace.cs
    public const int EPERM = 1;
}
