using Libvirt.Interop;

namespace Libvirt.Util;

/// <summary>The readiness half of libvirt's virsystemd.c (the activation
/// half is Rpc/VirSystemdActivation.cs).</summary>
public static unsafe class VirSystemd
{
    /// <summary>
    /// virSystemdNotifyStartup: "READY=1" in one datagram to $NOTIFY_SOCKET
    /// (a path, or "@name" in the abstract namespace); nothing without it.
    /// Failures are warnings from source "util.systemd" in
    /// <paramref name="log"/>, and the daemon carries on, as libvirt's does.
    /// </summary>
    public static void NotifyStartup(IVirLog? log)
    {
        var source = VirLogSources.Get("util.systemd");
        void Say(VirLogPriority p, string fn, string msg) => log?.Message(source, p, "managed", 0, fn, msg);
        const string Fn = "virSystemdNotifyStartup";

        string? path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (path is null)
        {
            Say(VirLogPriority.Debug, Fn, "Skipping systemd notify, not requested");
            return;
        }
        // sun_path is 108 bytes and need not end in a NUL
        byte[] name = LosslessUtf8.Encode(path);
        if (name.Length > Libc.sockaddr_un.PathSize)
        {
            Say(VirLogPriority.Warn, Fn, $"Systemd notify socket path '{path}' too long");
            return;
        }
        // plain system calls: a .NET Socket would start System.Net.Sockets' epoll thread for one datagram
        var un = new Libc.sockaddr_un { sun_family = Libc.AF_UNIX };
        name.CopyTo(new Span<byte>(un.sun_path, Libc.sockaddr_un.PathSize));
        if (un.sun_path[0] == (byte)'@')
            un.sun_path[0] = 0; // systemd's '@': the abstract namespace
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            Say(VirLogPriority.Warn, Fn, "Unable to create socket FD");
            return;
        }
        ReadOnlySpan<byte> msg = "READY=1"u8;
        fixed (byte* m = msg)
        {
            var iov = new Libc.iovec { iov_base = m, iov_len = (nuint)msg.Length };
            var mh = new Libc.msghdr
            {
                msg_name = &un,
                msg_namelen = (uint)(sizeof(ushort) + name.Length),
                msg_iov = &iov,
                msg_iovlen = 1,
            };
            if (Libc.sendmsg(fd, &mh, Libc.MSG_NOSIGNAL) < 0)
                Say(VirLogPriority.Warn, Fn, "Failed to notify systemd");
        }
        Libc.close(fd);
    }
}
