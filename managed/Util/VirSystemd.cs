using System.Net.Sockets;
using System.Text;

namespace Libvirt.Util;

/// <summary>The readiness half of libvirt's virsystemd.c (the activation
/// half is Rpc/VirSystemdActivation.cs).</summary>
public static class VirSystemd
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
        if (Encoding.UTF8.GetByteCount(path) > 108)
        {
            Say(VirLogPriority.Warn, Fn, $"Systemd notify socket path '{path}' too long");
            return;
        }
        try
        {
            using var sock = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            // .NET takes a leading NUL as the abstract namespace, as systemd's '@'
            try
            {
                var ep = new UnixDomainSocketEndPoint(path.StartsWith('@') ? "\0" + path[1..] : path);
                sock.SendTo("READY=1"u8, SocketFlags.None, ep);
            }
            catch (Exception e) when (e is SocketException or ArgumentException)
            {
                Say(VirLogPriority.Warn, Fn, "Failed to notify systemd");
            }
        }
        catch (SocketException)
        {
            Say(VirLogPriority.Warn, Fn, "Unable to create socket FD");
        }
    }
}
