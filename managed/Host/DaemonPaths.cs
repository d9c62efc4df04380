using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host;

/// <summary>Where a daemon keeps its config, pid file, sockets and run
/// directory, decided by libvirt's own helpers so that ours and the C
/// daemons agree in privileged and unprivileged mode.</summary>
public static unsafe class DaemonPaths
{
    public const string RunStateDir = "/run";
    public const string SysConfDir = "/etc";

    public static string DefaultConfigFile(string daemonName, bool privileged)
    {
        if (privileged)
            return $"{SysConfDir}/libvirt/{daemonName}.conf";
        string dir = NativeUtf8.ReadAndFree(virGetUserConfigDirectory())!;
        return $"{dir}/{daemonName}.conf";
    }

    /// <summary>Returns null and leaves libvirt's error set on failure.</summary>
    public static string? ConstructPidFile(string daemonName, bool privileged)
    {
        sbyte* path = null;
        using var run = new NativeUtf8(RunStateDir);
        using var name = new NativeUtf8(daemonName);
        if (virPidFileConstructPath((byte)(privileged ? 1 : 0), run, name, &path) < 0)
            return null;
        return NativeUtf8.ReadAndFree(path);
    }

    public static (string Socket, string Admin)? SocketPaths(string daemonName, bool privileged)
    {
        sbyte* sock = null, admin = null;
        using var name = new NativeUtf8(daemonName);
        if (virDaemonUnixSocketPaths(name, (byte)(privileged ? 1 : 0), null, &sock, null, &admin) < 0)
            return null;
        return (NativeUtf8.ReadAndFree(sock)!, NativeUtf8.ReadAndFree(admin)!);
    }

    public static string RunDirectory(bool privileged)
        => privileged ? $"{RunStateDir}/libvirt" : NativeUtf8.ReadAndFree(virGetUserRuntimeDirectory())!;

    /// <summary>The exec-restart state file ("&lt;name&gt;-restart-exec.json").</summary>
    public static string RestartStateFile(string daemonName, bool privileged)
        => privileged
            ? $"{RunStateDir}/{daemonName}-restart-exec.json"
            : $"{RunDirectory(false)}/{daemonName}-restart-exec.json";
}
