using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>User and group names (virGetUserName, virGetGroupName), for the
/// identity an admin client's info reports.</summary>
public static unsafe partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int getpwuid_r(uint uid, byte* pwd, byte* buf, nuint buflen, byte** result);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getgrgid_r(uint gid, byte* grp, byte* buf, nuint buflen, byte** result);

    /// <summary>The user name of <paramref name="uid"/>, or null (no record) with the errno, 0 when none is found.</summary>
    public static string? UserName(uint uid, out int errno) => Lookup(uid, user: true, out errno);

    /// <summary>The group name of <paramref name="gid"/>, or null.</summary>
    public static string? GroupName(uint gid, out int errno) => Lookup(gid, user: false, out errno);

    private static string? Lookup(uint id, bool user, out int errno)
    {
        // struct passwd / struct group: the name is the first member; 64 bytes cover both
        byte* rec = stackalloc byte[64];
        for (nuint size = 1024; size <= 1 << 20; size *= 2)
        {
            var buf = new byte[size];
            byte* result = null;
            int rc;
            fixed (byte* b = buf)
            {
                rc = user ? getpwuid_r(id, rec, b, size, &result) : getgrgid_r(id, rec, b, size, &result);
                if (rc == 0)
                {
                    errno = 0;
                    return result == null ? null : Marshal.PtrToStringUTF8(*(nint*)result);
                }
            }
            if (rc != 34 /* ERANGE */)
            {
                errno = rc;
                return null;
            }
        }
        errno = 34;
        return null;
    }
}
