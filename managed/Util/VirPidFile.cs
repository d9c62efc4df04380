using System.Runtime.InteropServices;
using Libvirt.Interop;
using Microsoft.Win32.SafeHandles;

namespace Libvirt.Util;

/// <summary>
/// A daemon's pid file (libvirt's src/util/virpidfile.c): created 0644,
/// locked (a write lock on its first byte, held for the process's life),
/// then holding the pid in decimal with no newline. A second daemon on the
/// same file fails to lock it. "" means no pid file.
/// </summary>
public interface IVirPidFile
{
    /// <summary>"native" or "managed".</summary>
    string Name { get; }

    /// <summary>virPidFileAcquirePath: the locked file (null for ""), or
    /// libvirt's error ("Failed to acquire pid file '...': ...").</summary>
    VirResult<SafeFileHandle?> AcquirePath(string path, bool waitForLock, int pid);
}

public static class VirPidFile
{
    /// <summary>virPidFileReleasePath: unlinked before it is closed, so that
    /// no other daemon locks a file about to disappear; -errno or 0.</summary>
    public static unsafe int ReleasePath(string path, SafeFileHandle? fd)
    {
        int rc = 0;
        fixed (byte* p = LosslessUtf8.EncodeNulTerminated(path))
        {
            if (Libc.unlink(p) < 0 && Marshal.GetLastPInvokeError() is var errno && errno != Libc.ENOENT)
                rc = -errno;
        }
        fd?.Dispose();
        return rc;
    }
}

/// <summary>libvirt.so.0's virPidFileAcquirePath.</summary>
public sealed class VirPidFileNative : IVirPidFile
{
    public string Name => VirImplementations.Native;

    public unsafe VirResult<SafeFileHandle?> AcquirePath(string path, bool waitForLock, int pid)
    {
        fixed (byte* p = LosslessUtf8.EncodeNulTerminated(path))
        {
            int fd = Libvirt.Interop.Methods.virPidFileAcquirePath((sbyte*)p, (byte)(waitForLock ? 1 : 0), pid);
            if (fd < 0)
                return VirErrorNative.TakeLast();
            return path.Length == 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
        }
    }
}

/// <summary>The managed twin: the same calls in the same order, the same errors.</summary>
public sealed class VirPidFileManaged : IVirPidFile
{
    public string Name => VirImplementations.Managed;

    public unsafe VirResult<SafeFileHandle?> AcquirePath(string path, bool waitForLock, int pid)
    {
        if (path.Length == 0)
            return (SafeFileHandle?)null;
        byte[] bytes = LosslessUtf8.EncodeNulTerminated(path);
        SafeFileHandle fd;
        fixed (byte* p = bytes)
        {
            while (true)
            {
                // O_CLOEXEC where libvirt sets it just after: no exec can come between here
                int raw = Libc.open(p, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_CLOEXEC, 0x1A4 /* 0644 */);
                if (raw < 0)
                    return Fail(Marshal.GetLastPInvokeError(), "Failed to open pid file '{0}'", path);
                fd = new SafeFileHandle(raw, ownsHandle: true);
                if (!Libc.TryFStat(fd, out var b, out int errno))
                {
                    fd.Dispose();
                    return Fail(errno, "Unable to check status of pid file '{0}'", path);
                }
                var fl = new Libc.flock { l_type = Libc.F_WRLCK, l_whence = Libc.SEEK_SET, l_start = 0, l_len = 1 };
                if (Libc.fcntl(fd, waitForLock ? 7 /* F_SETLKW */ : Libc.F_SETLK, &fl) < 0)
                {
                    errno = Marshal.GetLastPInvokeError();
                    fd.Dispose();
                    return Fail(errno, "Failed to acquire pid file '{0}'", path);
                }
                // the file locked must still be the one at the path: another daemon may have released (unlinked) it
                if (Libc.TryStat(p, out var a, out _) && a.Inode == b.Inode)
                    break;
                fd.Dispose();
            }
        }
        if (Libc.ftruncate(fd, 0) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            fd.Dispose();
            return Fail(errno, "Failed to truncate pid file '{0}'", path);
        }
        byte[] text = System.Text.Encoding.ASCII.GetBytes(pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        fixed (byte* t = text)
        {
            // libvirt reports this failure but returns the (closed) descriptor and the
            // daemon runs on without a pid in its file; here it is the error it reported
            if (!Libc.Log.WriteAll((int)fd.DangerousGetHandle(), new ReadOnlySpan<byte>(t, text.Length)))
            {
                int errno = Marshal.GetLastPInvokeError();
                fd.Dispose();
                return Fail(errno, "Failed to write to pid file '{0}'", path);
            }
        }
        return fd;
    }

    // virpidfile.c reports from no particular domain
    private static VirError Fail(int errno, string format, string path)
        => VirError.System(VirErrorDomain.None, errno, string.Format(System.Globalization.CultureInfo.InvariantCulture, format, path));
}
