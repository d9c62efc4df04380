using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.Host;

/// <summary>Where a daemon keeps its config, pid file, sockets and run
/// directory: the rules of libvirt's own helpers (virGetUserConfigDirectory,
/// virGetUserRuntimeDirectory, virPidFileConstructPath,
/// virDaemonUnixSocketPaths, over glib's XDG directories), so that ours and
/// the C daemons agree in privileged and unprivileged mode, without
/// libvirt.so.0 in the process.</summary>
public static unsafe class DaemonPaths
{
    public const string RunStateDir = "/run";
    public const string SysConfDir = "/etc";

    public static string DefaultConfigFile(string daemonName, bool privileged)
        => privileged
            ? $"{SysConfDir}/libvirt/{daemonName}.conf"
            : $"{UserConfigDirectory()}/{daemonName}.conf";

    /// <summary>virPidFileConstructPath; unprivileged, the runtime directory is created (0700) first.</summary>
    public static VirResult<string> ConstructPidFile(string daemonName, bool privileged)
    {
        if (privileged)
            return $"{RunStateDir}/{daemonName}.pid";
        string rundir = UserRuntimeDirectory();
        if (MkdirWithParents(rundir, 0x1C0 /* 0700 */) is int errno and not 0)
            return VirError.System(VirErrorDomain.None, errno, $"Cannot create user runtime directory '{rundir}'");
        return $"{rundir}/{daemonName}.pid";
    }

    /// <summary>virDaemonUnixSocketPaths with no socket directory configured;
    /// null when the unprivileged runtime directory cannot be made (libvirt
    /// reports nothing then either).</summary>
    public static (string Socket, string Admin)? SocketPaths(string daemonName, bool privileged)
    {
        if (privileged)
            return ($"{RunStateDir}/libvirt/{daemonName}-sock", $"{RunStateDir}/libvirt/{daemonName}-admin-sock");
        string rundir = UserRuntimeDirectory();
        uint old = Libc.umask(0x3F /* 077 */);
        int errno = MkdirWithParents(rundir, 0x1FF /* 0777 */);
        Libc.umask(old);
        if (errno != 0)
            return null;
        return ($"{rundir}/{daemonName}-sock", $"{rundir}/{daemonName}-admin-sock");
    }

    public static string RunDirectory(bool privileged)
        => privileged ? $"{RunStateDir}/libvirt" : UserRuntimeDirectory();

    /// <summary>The exec-restart state file ("&lt;name&gt;-restart-exec.json").</summary>
    public static string RestartStateFile(string daemonName, bool privileged)
        => privileged
            ? $"{RunStateDir}/{daemonName}-restart-exec.json"
            : $"{RunDirectory(false)}/{daemonName}-restart-exec.json";

    /// <summary>virGetUserConfigDirectory: g_get_user_config_dir()/libvirt.</summary>
    public static string UserConfigDirectory() => BuildFilename(XdgDirectory("XDG_CONFIG_HOME", ".config"), "libvirt");

    /// <summary>virGetUserRuntimeDirectory: $XDG_RUNTIME_DIR/libvirt, or
    /// glib's fallback, the user cache directory (virGetUserCacheDirectory).</summary>
    public static string UserRuntimeDirectory()
        => BuildFilename(Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } run
            ? run : XdgDirectory("XDG_CACHE_HOME", ".cache"), "libvirt");

    // glib: the variable when set and not empty, else the home directory's subdirectory
    private static string XdgDirectory(string variable, string homeSubdir)
        => Environment.GetEnvironmentVariable(variable) is { Length: > 0 } dir ? dir : BuildFilename(HomeDirectory(), homeSubdir);

    // g_get_home_dir: $HOME when set and not empty, else the password database's entry
    private static string HomeDirectory()
        => Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home
            ? home
            : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify) is { Length: > 0 } pw
                ? pw : "/";

    // g_build_filename of two elements: one separator where they meet
    private static string BuildFilename(string dir, string name)
    {
        string head = dir.TrimEnd('/');
        return head.Length == 0 && dir.Length > 0 ? "/" + name : $"{head}/{name}";
    }

    /// <summary>g_mkdir_with_parents: each missing component made with
    /// <paramref name="mode"/> (under the umask); 0 or the errno.</summary>
    private static int MkdirWithParents(string path, uint mode)
    {
        int i = 0;
        while (true)
        {
            int next = path.IndexOf('/', i + 1);
            string prefix = next < 0 ? path : path[..next];
            if (prefix.Length > 0 && prefix.Trim('/').Length > 0)
            {
                byte[] p = LosslessUtf8.EncodeNulTerminated(prefix);
                fixed (byte* pp = p)
                {
                    if (!Libc.TryStat(pp, out var id, out _))
                    {
                        if (Libc.mkdir(pp, mode) < 0 && Marshal.GetLastPInvokeError() is var e && e != Libc.EEXIST)
                            return e;
                    }
                    else if (!id.IsDirectory)
                        return Libc.ENOTDIR;
                }
            }
            if (next < 0)
                return 0;
            i = next;
        }
    }
}
