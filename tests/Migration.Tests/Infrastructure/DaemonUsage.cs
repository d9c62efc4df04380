namespace Libvirt.Tests.Infrastructure;

/// <summary>The usage text virtlockd / virtlogd print for -h (and after an unknown option), as in libvirt 9.0.0.</summary>
public static class DaemonUsage
{
    /// <summary>
    /// Usage of <paramref name="name"/> invoked as <paramref name="argv0"/>. Privileged: the fixed /etc and /run paths;
    /// unprivileged: the $XDG_* paths and no "-p" hint on the pid file.
    /// </summary>
    public static string Text(string argv0, DaemonName name, bool privileged = true)
    {
        var exe = DaemonPaths.ExeName(name);
        var kind = name == DaemonName.Virtlogd ? "log" : "lock";
        var (config, socket, pidHeading, pidFile) = privileged
            ? ($"/etc/libvirt/{exe}.conf", $"/run/libvirt/{exe}-sock", "PID file (unless overridden by -p):", $"/run/{exe}.pid")
            : ($"$XDG_CONFIG_HOME/libvirt/{exe}.conf", $"$XDG_RUNTIME_DIR/libvirt/{exe}-sock", "PID file:", $"$XDG_RUNTIME_DIR/libvirt/{exe}.pid");
        return $"""

            Usage:
              {argv0} [options]

            Options:
              -h | --help            Display program help:
              -v | --verbose         Verbose messages.
              -d | --daemon          Run as a daemon & write PID file.
              -t | --timeout <secs>  Exit after timeout period.
              -f | --config <file>   Configuration file.
              -V | --version         Display version information.
              -p | --pid-file <file> Change name of PID file.

            libvirt {kind} management daemon:

              Default paths:

                Configuration file (unless overridden by -f):
                  {config}

                Sockets:
                  {socket}

                {pidHeading}
                  {pidFile}


            """;
    }
}
