using Libvirt.Util;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Libvirt.Interop;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.Host.ExecRestart;

/// <summary>
/// The exec-restart state file of virtlockd and virtlogd
/// (&lt;name&gt;-restart-exec.json): one JSON object whose "magic" is the pid
/// of the process that wrote it, since exec keeps the pid. The document is
/// composed here in managed JSON; only the parts that describe native
/// objects (the virNetDaemon, native lock spaces) come from libvirt's own
/// serialisers, so a managed RPC server or lock space can later produce and
/// consume the same format without libvirt.
/// </summary>
public static unsafe class RestartState
{
    // libvirt prints the function a message comes from
    private static readonly EventId InPostExecRestart = new(0, "virDaemonPostExecRestart");
    private static readonly EventId InPreExecRestart = new(0, "virDaemonPreExecRestart");

    public static string Magic => Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Reads and removes the state file. Null means a cold start: no file,
    /// or a file that cannot be used (unreadable, truncated, not JSON,
    /// another process's magic), which is logged and never fatal.
    /// </summary>
    public static JsonObject? Load(string path, ILogger log)
    {
        if (!File.Exists(path))
            return null;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e)
        {
            log.LogError(InPostExecRestart, "Unable to read restart state file {Path}: {Error}; starting cold", path, e.Message);
            TryDelete(path, log);
            return null;
        }
        // one use only, whatever it holds, as the C daemons do
        TryDelete(path, log);
        JsonObject? state;
        try
        {
            state = JsonNode.Parse(text) as JsonObject;
        }
        catch (JsonException e)
        {
            log.LogError(InPostExecRestart, "Restart state file {Path} is not valid JSON ({Error}); starting cold", path, e.Message);
            return null;
        }
        if (state is null)
        {
            log.LogError(InPostExecRestart, "Restart state file {Path} does not hold a JSON object; starting cold", path);
            return null;
        }
        string? magic = (state["magic"] as JsonValue)?.TryGetValue(out string? m) == true ? m : null;
        if (magic is null)
        {
            log.LogError(InPostExecRestart, "Restart state file {Path} has no magic; starting cold", path);
            return null;
        }
        if (magic != Magic)
        {
            log.LogWarning(InPostExecRestart, "Found restart exec file with old magic {Got} vs wanted {Want}", magic, Magic);
            return null;
        }
        return state;
    }

    /// <summary>Writes the state (mode 0700, as the C daemons do).</summary>
    public static bool Save(string path, JsonObject state, ILogger log)
    {
        try
        {
            var options = new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            };
            using var f = new FileStream(path, options);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            state.WriteTo(w);
            w.Flush();
            f.Flush(); // /run is tmpfs; the C daemons do not fsync it either
            return true;
        }
        catch (Exception e)
        {
            log.LogError(InPreExecRestart, "Unable to save state file {Path}: {Error}", path, e.Message);
            TryDelete(path, log);
            return false;
        }
    }

    public static void TryDelete(string path, ILogger log)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e)
        {
            log.LogWarning(InPreExecRestart, "Unable to remove {Path}: {Error}", path, e.Message);
        }
    }

    /// <summary>
    /// SIGUSR1 ignored from the moment a restart begins until the new image
    /// installs its own handler. A disposition of SIG_IGN survives execve
    /// (a handler does not: it is reset to the default, which terminates the
    /// process), and the sigaction of the new image's signal set-up replaces
    /// it, ours or the C daemon's alike; the signal mask is left alone, so no
    /// image is left with a signal blocked that it never unblocks. A SIGUSR1
    /// that arrives in between is merged into the restart under way. Dispose
    /// puts the previous action back (the restart failed and we serve on).
    /// </summary>
    public sealed unsafe class RestartSignalGuard : IDisposable
    {
        private const int SIGUSR1 = 10;
        private Libc.sigaction_t _old;
        private readonly bool _saved;

        public RestartSignalGuard()
        {
            Libc.sigaction_t ign = default;
            ign.sa_handler = Libc.SIG_IGN;
            fixed (Libc.sigaction_t* old = &_old)
                _saved = Libc.sigaction(SIGUSR1, &ign, old) == 0;
        }

        public void Dispose()
        {
            if (!_saved)
                return;
            fixed (Libc.sigaction_t* old = &_old)
                Libc.sigaction(SIGUSR1, old, null);
        }
    }

    /// <summary>
    /// The descriptors an exec-restart makes inheritable, close-on-exec
    /// again when it fails and the daemon serves on. Each PreExecRestart
    /// clears FD_CLOEXEC on what it describes (libvirt's virNetDaemon and
    /// lock spaces, the managed core's sockets and clients, virtlogd's
    /// pipes) and only the new image sets it again; a failed exec or save
    /// would otherwise leave them to every later child and exec. Whatever
    /// lacked FD_CLOEXEC when the restart began (stdio) is left alone.
    /// Dispose does it: construct it before the first save, dispose it once
    /// the exec has failed.
    /// </summary>
    public sealed class InheritedFdGuard : IDisposable
    {
        private const string FdDir = "/proc/self/fd";
        private readonly HashSet<int>? _before;
        private readonly ILogger _log;

        public InheritedFdGuard(ILogger log)
        {
            _log = log;
            _before = Inheritable();
        }

        public void Dispose()
        {
            if (_before is null || Inheritable() is not { } now)
                return;
            foreach (int fd in now)
            {
                if (_before.Contains(fd))
                    continue;
                int flags = Libc.fcntl(fd, Libc.F_GETFD, 0);
                if (flags < 0 || Libc.fcntl(fd, Libc.F_SETFD, flags | Libc.FD_CLOEXEC) < 0)
                    _log.LogWarning(InPreExecRestart, "Unable to make descriptor {Fd} close-on-exec again: {Error}",
                        fd, Marshal.GetLastPInvokeErrorMessage());
            }
        }

        /// <summary>The open descriptors without FD_CLOEXEC, or null when
        /// they cannot be listed (then nothing is changed).</summary>
        private HashSet<int>? Inheritable()
        {
            var fds = new HashSet<int>();
            try
            {
                foreach (var entry in Directory.EnumerateFileSystemEntries(FdDir))
                {
                    if (!int.TryParse(Path.GetFileName(entry), out int fd))
                        continue;
                    int flags = Libc.fcntl(fd, Libc.F_GETFD, 0);
                    // closed since it was listed (the listing's own descriptor, for one): nothing to do
                    if (flags >= 0 && (flags & Libc.FD_CLOEXEC) == 0)
                        fds.Add(fd);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _log.LogWarning(InPreExecRestart, "Unable to list {Dir}: {Error}", FdDir, e.Message);
                return null;
            }
            return fds;
        }
    }

    /// <summary>
    /// Replaces this process with argv[0] (searched in PATH, as execvp does),
    /// keeping the fds that were made inheritable. Returns only on failure.
    /// </summary>
    public static void Exec(string[] argv, ILogger log)
    {
        using var args = new NativeArgv(argv);
        Libc.execvp(args.Pointer[0], args.Pointer);
        log.LogError(InPreExecRestart, "Unable to restart self: {Error}", Marshal.GetLastPInvokeErrorMessage());
    }
}
