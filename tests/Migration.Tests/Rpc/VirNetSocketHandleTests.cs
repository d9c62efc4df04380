using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Rpc;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// <see cref="VirNetSocketHandle.ListenUnix"/> against what libvirt 9.0.0's
/// virNetSocketNewListenUNIX does: the path (with its NUL) must fit the 108
/// bytes of sun_path, else "Path ... too long for unix socket" with
/// ENAMETOOLONG and nothing on disk; "@name" binds an abstract socket with
/// the whole sockaddr_un (the name NUL-padded); the file's permissions are
/// the mode, through umask(~mode) around bind. Clients connect with a plain
/// connect(2) here, no .NET Socket.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed unsafe class VirNetSocketHandleTests : IDisposable
{
    private const int ENAMETOOLONG = 36;
    private const int SunPathSize = 108;

    private readonly string _dir = Directory.CreateTempSubdirectory("vns-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A path under the test's directory exactly <paramref name="bytes"/> bytes long (without the NUL).</summary>
    private string PathOfLength(int bytes)
    {
        string prefix = _dir + "/s";
        Assert.True(prefix.Length < bytes, $"temp dir {_dir} too long for the test");
        string path = prefix + new string('x', bytes - prefix.Length);
        Assert.Equal(bytes, Encoding.UTF8.GetByteCount(path));
        return path;
    }

    [Fact]
    public void A_path_too_long_for_sun_path_is_refused_as_libvirt_refuses_it_and_leaves_no_file()
    {
        // 108 bytes: with its NUL one more than sun_path holds
        string path = PathOfLength(SunPathSize);
        var r = VirNetSocketHandle.ListenUnix(path, 0x180 /* 0600 */, 30);
        Assert.False(r.Ok);
        var e = r.Error!;
        Assert.Equal((int)VirErrorCode.SystemError, e.Code);
        Assert.Equal((int)VirErrorDomain.Rpc, e.Domain);
        Assert.Equal(ENAMETOOLONG, e.Int1);
        Assert.Equal($"Path {path} too long for unix socket: File name too long", e.Message);
        Assert.False(File.Exists(path) || Directory.Exists(path), "a file was left at the refused path");
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir));
    }

    [Fact]
    public void A_path_of_the_longest_length_that_fits_binds_and_serves()
    {
        // 107 bytes and the NUL: all of sun_path
        string path = PathOfLength(SunPathSize - 1);
        using var sock = VirNetSocketHandle.ListenUnix(path, 0x180, 30).Value;
        Assert.True(IsSocket(path), "no socket file at the 107-byte path");
        Assert.Equal(path, sock.LocalPath());
        AssertAccepts(sock, Address(Encoding.UTF8.GetBytes(path), abstractName: false));
    }

    [Fact]
    public void An_abstract_name_binds_the_NUL_padded_name_a_client_reaches_and_creates_no_file()
    {
        string name = "vns-test-" + Guid.NewGuid().ToString("N");
        string cwdFile = Path.Combine(Environment.CurrentDirectory, "@" + name);
        using var sock = VirNetSocketHandle.ListenUnix("@" + name, 0x180, 30).Value;
        Assert.Null(sock.LocalPath());
        Assert.False(File.Exists(cwdFile), "a file was created for the abstract name");

        // bound with sizeof(struct sockaddr_un): the kernel shows the name's NULs as '@'
        string padded = "@" + name + new string('@', SunPathSize - 1 - name.Length);
        string[] entries = File.ReadAllLines("/proc/net/unix").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 8 && f[7].StartsWith("@" + name)).Select(f => f[7]).ToArray();
        Assert.Equal([padded], entries);

        // a client connecting with the same padded address reaches it; the bare name does not
        AssertAccepts(sock, Address(Encoding.UTF8.GetBytes(name), abstractName: true));
        Assert.Equal(111 /* ECONNREFUSED */, ConnectErrno(Encoding.UTF8.GetBytes(name), padded: false));
    }

    [Theory]
    [InlineData(0x180u /* 0600 */)]
    [InlineData(0x1B6u /* 0666 */)]
    [InlineData(0x1A0u /* 0640 */)]
    public void The_socket_file_gets_the_mode_through_the_umask_and_the_umask_is_restored(uint mode)
    {
        string before = Umask();
        string path = Path.Combine(_dir, "sock");
        using var sock = VirNetSocketHandle.ListenUnix(path, mode, 30).Value;
        Assert.True(IsSocket(path));
        Assert.Equal(Convert.ToString(mode, 8), Convert.ToString((int)File.GetUnixFileMode(path), 8));
        Assert.Equal(before, Umask());
        Assert.Equal(path, sock.LocalPath());
    }

    [Fact]
    public void An_old_file_at_the_path_is_replaced()
    {
        string path = Path.Combine(_dir, "sock");
        File.WriteAllText(path, "stale");
        using var sock = VirNetSocketHandle.ListenUnix(path, 0x180, 30).Value;
        Assert.True(IsSocket(path));
        AssertAccepts(sock, Address(Encoding.UTF8.GetBytes(path), abstractName: false));
    }

    // ---- helpers ----

    [DllImport("libc", SetLastError = true)]
    private static extern int connect(int fd, Libc.sockaddr_un* addr, uint len);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern int lstat(string path, byte* buf);

    /// <summary>lstat(2) says S_IFSOCK (st_mode: offset 24 of glibc's x86_64 struct stat, 16 of aarch64's).</summary>
    private static bool IsSocket(string path)
    {
        byte* buf = stackalloc byte[256];
        if (lstat(path, buf) != 0)
            return false;
        int modeOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        return (*(uint*)(buf + modeOffset) & 0xF000) == 0xC000;
    }

    private static Libc.sockaddr_un Address(byte[] name, bool abstractName)
    {
        var addr = new Libc.sockaddr_un { sun_family = Libc.AF_UNIX };
        var dst = new Span<byte>(addr.sun_path, SunPathSize);
        name.CopyTo(abstractName ? dst[1..] : dst);
        return addr;
    }

    /// <summary>connect(2) to an abstract name: with the whole structure (padded) or the name's length only.</summary>
    private static int ConnectErrno(byte[] name, bool padded)
    {
        var addr = Address(name, abstractName: true);
        uint len = padded ? (uint)sizeof(Libc.sockaddr_un) : (uint)(sizeof(ushort) + 1 + name.Length);
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
        try
        {
            return connect(fd, &addr, len) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>A client connects with the whole sockaddr_un and the listener accepts it.</summary>
    private static void AssertAccepts(VirNetSocketHandle listener, Libc.sockaddr_un addr)
    {
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            Assert.True(connect(fd, &addr, (uint)sizeof(Libc.sockaddr_un)) == 0, $"connect: errno {Marshal.GetLastPInvokeError()}");
            // the listener is non-blocking and the connection is queued already: accept4 takes it at once
            int accepted = Libc.accept4(listener.Fd, null, null, Libc.SOCK_CLOEXEC);
            Assert.True(accepted >= 0, $"accept4: errno {Marshal.GetLastPInvokeError()}");
            close(accepted);
        }
        finally
        {
            close(fd);
        }
    }

    private static string Umask()
        => File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("Umask:"))["Umask:".Length..].Trim();
}
