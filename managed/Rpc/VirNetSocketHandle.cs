using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// A socket descriptor of the managed RPC core, the descriptor part of
/// libvirt's virNetSocket: listening sockets made as
/// virNetSocketNewListenUNIX makes them, and adopted ones (systemd's, an
/// exec-restart's). Released with a plain close(2). A connected client's
/// socket is its <see cref="VirNetServerClient"/>'s own descriptor (the
/// client is reused from one connection to the next). It is not .NET's SafeSocketHandle: the
/// first of those starts System.Net.Sockets' own epoll thread, which a
/// daemon serving from its own loop never uses (one thread and a start-up
/// cost for nothing), and its release first sets SO_LINGER.
/// </summary>
public sealed class VirNetSocketHandle : SafeHandle
{
    public VirNetSocketHandle(int fd, bool ownsHandle = true) : base(-1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => handle < 0;

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;

    /// <summary>
    /// virNetSocketNewListenUNIX then virNetSocketListen: a stream socket
    /// bound at <paramref name="path"/> (an old file unlinked first; "@name"
    /// is abstract, as libvirt reads it) with the file's permissions from
    /// <paramref name="mode"/> through the umask, close-on-exec,
    /// non-blocking, listening with <paramref name="backlog"/>; libvirt's
    /// errors.
    /// </summary>
    public static unsafe VirResult<VirNetSocketHandle> ListenUnix(string path, uint mode, int backlog)
    {
        byte[] bytes = LosslessUtf8.EncodeNulTerminated(path);
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0);
        if (fd < 0)
            return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Failed to create socket");
        var sock = new VirNetSocketHandle(fd);
        bool abstractName = path.StartsWith('@');
        VirError? Fail(VirError e)
        {
            if (!abstractName)
                Unlink(bytes);
            sock.Dispose();
            return e;
        }
        // bytes holds the terminating NUL: as virStrcpyStatic, the path with it must fit
        if (bytes.Length > Libc.sockaddr_un.PathSize)
            return Fail(VirError.System(VirErrorDomain.Rpc, 36 /* ENAMETOOLONG */, $"Path {path} too long for unix socket"))!;
        var addr = new Libc.sockaddr_un { sun_family = Libc.AF_UNIX };
        new ReadOnlySpan<byte>(bytes).CopyTo(new Span<byte>(addr.sun_path, Libc.sockaddr_un.PathSize));
        if (abstractName)
            addr.sun_path[0] = 0;
        else
            Unlink(bytes);
        uint old = Libc.umask(~mode & 0x1FF);
        // the whole structure, as libvirt passes it (an abstract name is then NUL-padded)
        int rc = Libc.bind(fd, &addr, (uint)sizeof(Libc.sockaddr_un));
        int errno = Marshal.GetLastPInvokeError();
        Libc.umask(old);
        if (rc < 0)
            return Fail(VirError.System(VirErrorDomain.Rpc, errno, $"Failed to bind socket to '{path}'"))!;
        if (Libc.listen(fd, backlog > 0 ? backlog : 30) < 0)
            return Fail(VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), "Unable to listen on socket"))!;
        return sock;
    }

    /// <summary>A listening socket systemd passed (or an exec-restart kept):
    /// non-blocking, and listening again with <paramref name="backlog"/>
    /// when asked, as libvirt does with the ones systemd gives it.</summary>
    public static VirResult<VirNetSocketHandle> AdoptListener(int fd, int backlog)
    {
        var adopted = Adopt(fd, "Unable to adopt listening socket");
        if (!adopted.TryGet(out var sock, out var err))
            return err!;
        if (backlog > 0 && Libc.listen(fd, backlog) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            sock.Dispose();
            return VirError.System(VirErrorDomain.Rpc, errno, "Unable to listen on socket");
        }
        return sock;
    }

    /// <summary>An inherited descriptor taken over, made non-blocking as
    /// libvirt's virNetSocket makes every socket it wraps.</summary>
    public static VirResult<VirNetSocketHandle> Adopt(int fd, string what)
    {
        if (SetNonBlocking(fd, what) is { } err)
            return err;
        return new VirNetSocketHandle(fd);
    }

    /// <summary>An inherited descriptor made non-blocking; the error names
    /// <paramref name="what"/> and the descriptor.</summary>
    public static VirError? SetNonBlocking(int fd, string what)
    {
        int flags = Libc.fcntl(fd, 3 /* F_GETFL */, 0);
        if (flags < 0 || Libc.fcntl(fd, 4 /* F_SETFL */, flags | Libc.O_NONBLOCK) < 0)
            return VirError.System(VirErrorDomain.Rpc, Marshal.GetLastPInvokeError(), $"{what} {fd}");
        return null;
    }

    /// <summary>The file the socket is bound at (getsockname); null for an
    /// abstract or unnamed socket, or when it cannot be read.</summary>
    public unsafe string? LocalPath()
    {
        var addr = default(Libc.sockaddr_un);
        uint len = (uint)sizeof(Libc.sockaddr_un);
        if (Libc.getsockname(Fd, &addr, &len) < 0 || addr.sun_family != Libc.AF_UNIX)
            return null;
        int n = (int)Math.Min(len, (uint)sizeof(Libc.sockaddr_un)) - sizeof(ushort);
        if (n <= 0 || addr.sun_path[0] == 0)
            return null;
        var name = new ReadOnlySpan<byte>(addr.sun_path, n);
        int nul = name.IndexOf((byte)0);
        return LosslessUtf8.Decode(nul >= 0 ? name[..nul] : name);
    }

    private static unsafe void Unlink(byte[] nulTerminated)
    {
        fixed (byte* p = nulTerminated)
            Libc.unlink(p);
    }
}
