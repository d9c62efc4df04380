using System.Runtime.InteropServices;

namespace Libvirt.Host;

/// <summary>The handful of libc calls the host needs that .NET does not
/// expose (libc is not libvirt: these are not generated).</summary>
internal static unsafe partial class Libc
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
}
