using Libvirt.Util;
using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host;

/// <summary>
/// Process-level facts and chores of a daemon: argv[0], privilege, umask,
/// and going into the background for -d.
/// </summary>
public static unsafe class DaemonProcess
{
    /// <summary>Set in the daemon re-spawned by -d: the fd of the status pipe
    /// to the process the user started, which waits for it.</summary>
    public const string StatusFdVariable = "LIBVIRT_MIGRATION_DAEMON_STATUS_FD";

    private static readonly string[] DaemonErrors =
    {
        "Initialization successful",
        "Unable to obtain pidfile",
        "Unable to create rundir",
        "Unable to initialize libvirt",
        "Unable to setup signal handlers",
        "Unable to drop privileges",
        "Unable to initialize network sockets",
        "Unable to load configuration file",
        "Unable to look for hook scripts",
        "Unable to re-execute daemon",
        "Unable to initialize audit system",
        "Unable to initialize driver",
    };

    public static bool Privileged => Libc.geteuid() == 0;

    public static uint EffectiveUid => Libc.geteuid();

    public static uint SetUmask(uint mask) => Libc.umask(mask);

    /// <summary>The argv as the process was started (/proc/self/cmdline):
    /// messages print argv[0] as given, and a re-exec must repeat it.</summary>
    public static string[] CommandLine()
    {
        try
        {
            byte[] raw = File.ReadAllBytes("/proc/self/cmdline");
            var parts = Encoding.UTF8.GetString(raw).Split('\0');
            int n = parts.Length;
            if (n > 0 && parts[n - 1].Length == 0)
                n--;
            return parts[..n];
        }
        catch (IOException)
        {
            return Environment.GetCommandLineArgs();
        }
    }

    /// <summary>
    /// -d: a .NET process cannot fork once the runtime runs, so the daemon
    /// is a fresh exec of this executable in a new session (double fork in
    /// the shim), and this process waits for its status byte as the C
    /// daemons' parent does, then exits with the same messages.
    /// </summary>
    public static int SpawnIntoBackground(string argv0, string[] argv)
    {
        // exec the real path, not /proc/self/exe: the kernel names the
        // process (comm, what ps and pgrep show) after the file exec'd
        using var exe = new NativeUtf8(Environment.ProcessPath ?? "/proc/self/exe");
        using var env = new NativeUtf8(StatusFdVariable);
        using var args = new NativeArgv(argv);
        int status = virtshimSpawnDaemon(exe, args.Pointer, env);
        if (status < 0)
        {
            Console.Error.Write($"{argv0}: error: unable to determine if daemon is running: {Marshal.GetLastPInvokeErrorMessage()}\n");
            return 1;
        }
        if (status != 0)
        {
            string what = status < DaemonErrors.Length ? DaemonErrors[status] : "unknown error";
            Console.Error.Write($"{argv0}: error: {what}. Check /var/log/messages or run without --daemon for more info.\n");
            return 1;
        }
        return 0;
    }

    /// <summary>In the re-spawned daemon: the status fd, taken out of the
    /// environment so that children and a later re-exec do not inherit it.</summary>
    public static int TakeStatusFd()
    {
        string? v = Environment.GetEnvironmentVariable(StatusFdVariable);
        if (v is null)
            return -1;
        Environment.SetEnvironmentVariable(StatusFdVariable, null);
        // .NET's environment is a copy: execvp (the exec-restart) passes libc's, where the variable would stay and
        // make the next image write its status into whatever descriptor has that number then (a client's socket)
        using (var name = new NativeUtf8(StatusFdVariable))
            Libc.unsetenv(name.Pointer);
        return int.TryParse(v, out int fd) ? fd : -1;
    }

    public static void WriteStatus(ref int fd, int status)
    {
        if (fd < 0)
            return;
        byte b = (byte)status;
        while (Libc.write(fd, &b, 1) < 0 && Marshal.GetLastPInvokeError() == 4 /* EINTR */)
        {
        }
        Libc.close(fd);
        fd = -1;
    }

    public static void ChdirRoot()
    {
        byte* root = stackalloc byte[] { (byte)'/', 0 };
        Libc.chdir(root);
    }
}
