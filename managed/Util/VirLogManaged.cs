using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Interop;

namespace Libvirt.Util;

/// <summary>
/// The managed twin of libvirt 9.0.0's src/util/virlog.c: the same filter
/// and output syntax, errors, canonical text, per-source filtering and line
/// format, with its state in this object rather than in libvirt.so.0.
/// Outputs: stderr, file and journald as libvirt writes them; syslog is
/// refused with an error value (see <see cref="SyslogUnsupported"/>).
/// </summary>
public sealed class VirLogManaged : IVirLog
{
    private const VirErrorDomain FromThis = VirErrorDomain.None; // virlog.c's VIR_FROM_NONE
    private const string JournalSocket = "/run/systemd/journal/socket";

    // where virlog.c's own messages come from, as libvirt 9.0.0 numbers them
    // (CODE_FILE/CODE_LINE reach journald only; files print FUNC:LINE)
    private static readonly VirLogSource Self = new("util.log");
    private const string SelfFile = "../src/util/virlog.c";

    // Every filter set of every instance gets a new generation, so a source
    // cached by one instance is never taken as current by another.
    private static long s_generation;

    private readonly Lock _lock = new();
    // read on the first output's first message: the default reads dpkg's status file (a megabyte),
    // which a daemon that never logs need not pay for at start-up
    private string? _versionLine;
    private readonly UnixDomainSocketEndPoint _journal;
    private VirLogPriority _defaultPriority = VirLogPriority.Warn;
    private Filter[] _filters = [];
    private long _generation = Interlocked.Increment(ref s_generation);
    private Output[] _outputs = [];
    private string? _defaultOutput;
    private bool _stderrInitPending = true;

    /// <param name="versionLine">The first line each output gets
    /// ("libvirt version: 9.0.0, package: ..."); by default libvirt.so.0's
    /// version with the installed libvirt0 package, as libvirt's build
    /// writes it.</param>
    /// <param name="journalSocket">Where journald outputs send their
    /// datagrams: the journal's socket, unless a test listens elsewhere.</param>
    public VirLogManaged(string? versionLine = null, string journalSocket = JournalSocket)
    {
        _versionLine = versionLine;
        _journal = new UnixDomainSocketEndPoint(journalSocket);
    }

    public string Name => VirImplementations.Managed;

    private sealed record Filter(string Match, VirLogPriority Priority);

    private enum Destination { Stderr = 0, Syslog = 1, File = 2, Journald = 3 }

    private static readonly string[] DestinationNames = ["stderr", "syslog", "file", "journald"];

    // ---------------------------------------------------------------- state

    public VirResult Reset()
    {
        lock (_lock)
        {
            SetFiltersLocked([]);
            CloseAll(_outputs);
            _outputs = [];
            _defaultPriority = VirLogPriority.Warn;
        }
        return VirResult.Success;
    }

    public VirLogPriority DefaultPriority => _defaultPriority;

    // Like libvirt, a new default reaches sources only when the filters
    // change next (their cached priority is keyed by the filter set).
    public VirResult SetDefaultPriority(int priority)
    {
        if (priority < 1 || priority > 4)
            return VirError.Report(FromThis, VirErrorCode.InvalidArg,
                $"Failed to set logging priority, argument '{(uint)priority}' is invalid");
        _defaultPriority = (VirLogPriority)priority;
        return VirResult.Success;
    }

    public string GetFilters()
    {
        lock (_lock)
        {
            var sb = new StringBuilder();
            foreach (var f in _filters)
                sb.Append((int)f.Priority).Append(':').Append(f.Match).Append(' ');
            return sb.ToString();
        }
    }

    public VirResult<string> GetOutputs()
    {
        lock (_lock)
            return string.Join(' ', _outputs.Select(o => o.Canonical));
    }

    public int FilterCount => _filters.Length;
    public int OutputCount => _outputs.Length;
    public string? DefaultOutput => _defaultOutput;

    public VirResult SetFilters(string? filters)
    {
        Filter[] list = [];
        if (filters is not null)
        {
            var parsed = ParseFilters(filters);
            if (!parsed.TryGet(out list, out var error))
                return error!;
        }
        lock (_lock)
            SetFiltersLocked(list);
        return VirResult.Success;
    }

    public VirResult SetOutputs(string? outputs)
    {
        string? text = string.IsNullOrEmpty(outputs) ? _defaultOutput : outputs;
        if (text is null)
            return VirResult.Success; // no default yet: libvirt leaves the outputs alone
        var parsed = ParseOutputs(text);
        if (!parsed.TryGet(out var list, out var error))
            return error!;
        Output[] old;
        lock (_lock)
        {
            old = _outputs;
            _outputs = list;
        }
        CloseAll(old);
        return VirResult.Success;
    }

    private void SetFiltersLocked(Filter[] list)
    {
        _filters = list;
        Volatile.Write(ref _generation, Interlocked.Increment(ref s_generation));
    }

    private static void CloseAll(Output[] outputs)
    {
        foreach (var o in outputs)
            o.Dispose();
    }

    // ---------------------------------------------------------------- parsing

    private VirResult<Filter[]> ParseFilters(string src)
    {
        Message(Self, VirLogPriority.Debug, SelfFile, 1694, "virLogParseFilters", $"filters={src}");
        var list = new List<Filter>();
        foreach (var token in src.Split(' '))
        {
            if (token.Length == 0)
                continue;
            Message(Self, VirLogPriority.Debug, SelfFile, 1584, "virLogParseFilter", $"filter={token}");
            var tokens = token.Split(':');
            if (tokens.Length < 2)
                return InvalidArg($"Malformed format for filter '{token}'");
            if (!ParsePriority(tokens[0], out var prio))
                return InvalidArg($"Invalid priority '{tokens[0]}' for filter '{token}'");
            // a leading '+' asked for stack traces once; libvirt ignores it now
            string match = tokens[1].StartsWith('+') ? tokens[1][1..] : tokens[1];
            if (match.Length == 0)
                return InvalidArg($"Invalid match string '{tokens[1]}'");
            // "util" matches as "*util*" (and is shown so)
            list.Add(new Filter("*" + match + "*", prio));
        }
        return list.ToArray();
    }

    private VirResult<Output[]> ParseOutputs(string src)
    {
        Message(Self, VirLogPriority.Debug, SelfFile, 1641, "virLogParseOutputs", $"outputs={src}");
        var list = new List<Output>();
        foreach (var token in src.Split(' '))
        {
            if (token.Length == 0)
                continue;
            var parsed = ParseOutput(token);
            if (!parsed.TryGet(out var output, out var error))
            {
                CloseAll([.. list]);
                return error!;
            }
            // a repeated destination (and name) keeps its last definition, at the end
            int at = list.FindIndex(o => o.Dest == output.Dest && o.Name == output.Name);
            list.Add(output);
            if (at >= 0)
            {
                list[at].Dispose();
                list.RemoveAt(at);
            }
        }
        return list.ToArray();
    }

    private VirResult<Output> ParseOutput(string src)
    {
        Message(Self, VirLogPriority.Debug, SelfFile, 1488, "virLogParseOutput", $"output={src}");
        var tokens = src.Split(':');
        if (tokens.Length < 2)
            return InvalidArg($"Malformed format for log output '{src}'");
        if (!ParsePriority(tokens[0], out var prio))
            return InvalidArg($"Invalid log priority '{tokens[0]}' for log output '{src}'");
        int dest = Array.IndexOf(DestinationNames, tokens[1]);
        if (dest < 0)
            return InvalidArg($"Invalid log destination '{tokens[1]}' for log output '{src}'");
        var d = (Destination)dest;
        bool withName = d is Destination.File or Destination.Syslog;
        if (tokens.Length != (withName ? 3 : 2))
            return InvalidArg($"Log output '{src}' does not meet the format requirements for destination type '{tokens[1]}'");
        switch (d)
        {
            case Destination.Stderr:
                return new FdOutput(prio, Destination.Stderr, null, 2, owned: false);
            case Destination.File:
                {
                    string path = CanonicalizeFilename(tokens[2]);
                    int fd = OpenLogFile(path, out int errno);
                    if (fd < 0)
                        return VirError.System(FromThis, errno, $"failed to open {path}");
                    return new FdOutput(prio, Destination.File, path, fd, owned: true);
                }
            case Destination.Journald:
                return new JournaldOutput(prio, _journal);
            default:
                return SyslogUnsupported(src);
        }
    }

    /// <summary>The error for a syslog output: the managed twin does not
    /// write to syslog (use "native" logging, or journald/file outputs).</summary>
    public static VirError SyslogUnsupported(string output)
        => VirError.Report(FromThis, VirErrorCode.ArgumentUnsupported,
            $"log output '{output}': syslog outputs are not supported by the managed logging implementation (logging_impl = \"managed\")");

    private static VirError InvalidArg(string detail) => VirError.Report(FromThis, VirErrorCode.InvalidArg, detail);

    /// <summary>virStrToLong_uip then 1..4: strtoul's syntax (leading
    /// blanks, a '+'), all of the token, no '-', within unsigned int.</summary>
    private static bool ParsePriority(string s, out VirLogPriority prio)
    {
        prio = 0;
        int i = 0;
        while (i < s.Length && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
            i++;
        if (i < s.Length && (s[i] == '+' || s[i] == '-'))
        {
            if (s[i] == '-')
                return false;
            i++;
        }
        int start = i;
        ulong v = 0;
        for (; i < s.Length && s[i] >= '0' && s[i] <= '9'; i++)
        {
            v = v * 10 + (ulong)(s[i] - '0');
            if (v > uint.MaxValue)
                return false;
        }
        if (i == start || i != s.Length || v < 1 || v > 4)
            return false;
        prio = (VirLogPriority)v;
        return true;
    }

    /// <summary>g_canonicalize_filename(path, NULL): absolute against the
    /// working directory, "." and ".." and repeated slashes resolved
    /// lexically (no symbolic links); exactly two leading slashes are kept.</summary>
    internal static string CanonicalizeFilename(string path)
    {
        string abs = path.StartsWith('/') ? path : Path.Join(Directory.GetCurrentDirectory(), path);
        int lead = 0;
        while (lead < abs.Length && abs[lead] == '/')
            lead++;
        var parts = new List<string>();
        foreach (var p in abs[lead..].Split('/'))
        {
            if (p.Length == 0 || p == ".")
                continue;
            if (p == "..")
            {
                if (parts.Count > 0)
                    parts.RemoveAt(parts.Count - 1);
                continue;
            }
            parts.Add(p);
        }
        return (lead == 2 ? "//" : "/") + string.Join('/', parts);
    }

    private static unsafe int OpenLogFile(string path, out int errno)
    {
        errno = 0;
        using var p = new NativeUtf8(path);
        int fd = Libc.Log.open((byte*)p.Pointer, Libc.Log.O_CREAT | Libc.Log.O_APPEND | Libc.Log.O_WRONLY, 0x180 /* 0600 */);
        if (fd < 0)
            errno = Marshal.GetLastPInvokeError();
        return fd;
    }

    // ---------------------------------------------------------------- default output and daemon set-up

    public unsafe VirResult SetDefaultOutput(string binary, bool godaemon, bool privileged)
    {
        bool haveJournald;
        using (var js = new NativeUtf8(JournalSocket))
            haveJournald = Libc.Log.access((byte*)js.Pointer, Libc.Log.W_OK) >= 0;
        int prio = (int)_defaultPriority;
        // journald rate-limits; debug goes there as info, as in libvirt
        string Journald() => $"{(prio == 1 ? 2 : prio)}:journald";

        if (godaemon)
        {
            if (haveJournald)
                _defaultOutput = Journald();
            else if (privileged)
                _defaultOutput = $"{prio}:file:/var/log/libvirt/{binary}.log";
            else
            {
                string? cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
                if (string.IsNullOrEmpty(cache))
                    cache = Path.Join(Environment.GetEnvironmentVariable("HOME") ?? "/", ".cache");
                string logdir = Path.Join(cache, "libvirt");
                uint old = Libc.Log.umask(0x3f /* 077 */);
                try
                {
                    Directory.CreateDirectory(logdir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return VirError.System(FromThis, e.HResult & 0xffff, "Could not create log directory");
                }
                finally
                {
                    Libc.Log.umask(old);
                }
                _defaultOutput = $"{prio}:file:{logdir}/{binary}.log";
            }
        }
        else
        {
            _defaultOutput = Libc.Log.isatty(0) == 0 && haveJournald ? Journald() : $"{prio}:stderr";
        }
        return VirResult.Success;
    }

    public VirResult SetupDaemon(string name, uint logLevel, string? filters, string? outputs,
        bool privileged, bool verbose, bool godaemon)
    {
        VirResult r;
        if (!(r = Reset()).Ok)
            return r;
        // config, then environment, then the command line, each overriding the last
        if (logLevel != 0 && !(r = SetDefaultPriority((int)logLevel)).Ok)
            return r;
        if (!(r = SetFilters(filters)).Ok || !(r = SetOutputs(outputs)).Ok)
            return r;
        if (!(r = SetFromEnvironment()).Ok)
            return r;
        if (verbose && _defaultPriority > VirLogPriority.Info && !(r = SetDefaultPriority((int)VirLogPriority.Info)).Ok)
            return r;
        if (!(r = SetDefaultOutput(name, godaemon, privileged)).Ok)
            return r;
        if (OutputCount == 0 && !(r = SetOutputs(_defaultOutput)).Ok)
            return r;
        return VirResult.Success;
    }

    /// <summary>virLogSetFromEnv: LIBVIRT_DEBUG, LIBVIRT_LOG_FILTERS, LIBVIRT_LOG_OUTPUTS.</summary>
    private VirResult SetFromEnvironment()
    {
        VirResult r;
        string? debug = Environment.GetEnvironmentVariable("LIBVIRT_DEBUG");
        if (!string.IsNullOrEmpty(debug))
        {
            int prio = debug switch
            {
                "1" or "debug" => 1,
                "2" or "info" => 2,
                "3" or "warning" => 3,
                "4" or "error" => 4,
                _ => -1,
            };
            if (prio < 0)
                return InvalidArg($"Failed to set logging priority, argument '{debug}' is invalid");
            if (!(r = SetDefaultPriority(prio)).Ok)
                return r;
        }
        string? f = Environment.GetEnvironmentVariable("LIBVIRT_LOG_FILTERS");
        if (!string.IsNullOrEmpty(f) && !(r = SetFilters(f)).Ok)
            return r;
        string? o = Environment.GetEnvironmentVariable("LIBVIRT_LOG_OUTPUTS");
        if (!string.IsNullOrEmpty(o) && !(r = SetOutputs(o)).Ok)
            return r;
        return VirResult.Success;
    }

    // ---------------------------------------------------------------- messages

    public bool IsEnabled(VirLogSource source, VirLogPriority priority)
    {
        long cached = Volatile.Read(ref source.Cached);
        if ((cached >> 8) != Volatile.Read(ref _generation))
            cached = UpdateSource(source);
        return (long)priority >= (cached & 0xff);
    }

    private long UpdateSource(VirLogSource source)
    {
        lock (_lock)
        {
            var prio = _defaultPriority;
            foreach (var f in _filters)
            {
                if (GlobMatch(f.Match, source.Name))
                {
                    prio = f.Priority;
                    break;
                }
            }
            long cached = (_generation << 8) | (long)prio;
            Volatile.Write(ref source.Cached, cached);
            return cached;
        }
    }

    public void Message(VirLogSource source, VirLogPriority priority, string? file, int line, string? function, string message)
    {
        if (!IsEnabled(source, priority))
            return;
        string formatted = FormatLine(priority, function, line, message);
        string timestamp = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture) + "+0000";
        var msg = new LogMessage(source, priority, file, line, function, timestamp, message, formatted);
        lock (_lock)
        {
            foreach (var o in _outputs)
            {
                if (priority < o.Priority)
                    continue;
                if (o.InitPending)
                {
                    o.InitPending = false;
                    WriteInit(o, timestamp);
                }
                o.Write(msg);
            }
            if (_outputs.Length == 0)
            {
                // no outputs: stderr, with its own one-time version and host lines
                using var stderr = new FdOutput(VirLogPriority.Debug, Destination.Stderr, null, 2, owned: false);
                if (_stderrInitPending)
                {
                    _stderrInitPending = false;
                    WriteInit(stderr, timestamp);
                }
                stderr.Write(msg);
            }
        }
    }

    private void WriteInit(Output o, string timestamp)
    {
        string version = _versionLine ??= DefaultVersionLine();
        o.Write(new LogMessage(Self, VirLogPriority.Info, SelfFile, 557, "virLogVMessage", timestamp,
            version, FormatLine(VirLogPriority.Info, null, 0, version)));
        string host = "hostname: " + HostName();
        o.Write(new LogMessage(Self, VirLogPriority.Info, SelfFile, 564, "virLogVMessage", timestamp,
            host, FormatLine(VirLogPriority.Info, null, 0, host)));
    }

    /// <summary>virLogFormatString: "TID: level : FUNC:LINE : message\n",
    /// without "FUNC:LINE : " when there is no function.</summary>
    private static string FormatLine(VirLogPriority priority, string? function, int line, string message)
    {
        int tid = Libc.Log.gettid();
        string level = PriorityString(priority);
        return function is null
            ? $"{tid}: {level} : {message}\n"
            : $"{tid}: {level} : {function}:{line} : {message}\n";
    }

    private static string PriorityString(VirLogPriority p) => p switch
    {
        VirLogPriority.Debug => "debug",
        VirLogPriority.Info => "info",
        VirLogPriority.Warn => "warning",
        VirLogPriority.Error => "error",
        _ => "unknown",
    };

    /// <summary>g_pattern_match_simple: '*' any run, '?' any one character.</summary>
    internal static bool GlobMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]) && pattern[p] != '*')
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
                return false;
        }
        while (p < pattern.Length && pattern[p] == '*')
            p++;
        return p == pattern.Length;
    }

    private static string HostName()
    {
        // g_get_host_name: gethostname(2), i.e. the kernel's nodename
        try { return File.ReadAllText("/proc/sys/kernel/hostname").TrimEnd('\n'); }
        catch (IOException) { return "localhost"; }
    }

    /// <summary>"libvirt version: V, package: P (Vendor)" as Debian builds
    /// libvirt (meson's packager options): the version is 9.0.0, the one
    /// libvirt.so.0 the daemons accept (without asking libvirt, which a daemon
    /// with every subsystem managed does not load), and the installed libvirt0
    /// package; the version alone without one.</summary>
    public static string DefaultVersionLine()
    {
        const string version = "9.0.0";
        string? package = null, vendor = null;
        try
        {
            bool inLibvirt0 = false;
            foreach (var l in File.ReadLines("/var/lib/dpkg/status"))
            {
                if (l.StartsWith("Package: ", StringComparison.Ordinal))
                    inLibvirt0 = l == "Package: libvirt0";
                else if (inLibvirt0 && l.StartsWith("Version: ", StringComparison.Ordinal))
                {
                    package = l["Version: ".Length..];
                    break;
                }
            }
            foreach (var l in File.ReadLines("/etc/dpkg/origins/default"))
                if (l.StartsWith("Vendor: ", StringComparison.Ordinal))
                    vendor = l["Vendor: ".Length..];
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return package is null ? $"libvirt version: {version}"
            : vendor is null ? $"libvirt version: {version}, package: {package}"
            : $"libvirt version: {version}, package: {package} ({vendor})";
    }

    public void Dispose()
    {
        lock (_lock)
        {
            CloseAll(_outputs);
            _outputs = [];
        }
    }

    // ---------------------------------------------------------------- outputs

    private readonly record struct LogMessage(VirLogSource Source, VirLogPriority Priority, string? File, int Line,
        string? Function, string Timestamp, string Raw, string Formatted);

    private abstract class Output(VirLogPriority priority, Destination dest, string? name) : IDisposable
    {
        public VirLogPriority Priority { get; } = priority;
        public Destination Dest { get; } = dest;
        public string? Name { get; } = name;
        public bool InitPending = true;

        public string Canonical => Name is null
            ? $"{(int)Priority}:{DestinationNames[(int)Dest]}"
            : $"{(int)Priority}:{DestinationNames[(int)Dest]}:{Name}";

        public abstract void Write(in LogMessage m);
        public abstract void Dispose();
    }

    /// <summary>virLogOutputToFd: "TIMESTAMP: " and the formatted line.</summary>
    private sealed class FdOutput(VirLogPriority priority, Destination dest, string? name, int fd, bool owned)
        : Output(priority, dest, name)
    {
        private int _fd = fd;

        public override void Write(in LogMessage m)
        {
            if (_fd < 0)
                return;
            string line = m.Timestamp + ": " + m.Formatted;
            Libc.Log.WriteAll(_fd, Encoding.UTF8.GetBytes(line));
        }

        public override void Dispose()
        {
            if (owned && _fd >= 0)
                Libc.Log.close(_fd);
            _fd = -1;
        }
    }

    /// <summary>virLogOutputToJournald: one datagram in the journal's native
    /// protocol (MESSAGE, PRIORITY, SYSLOG_FACILITY, LIBVIRT_SOURCE,
    /// CODE_FILE, CODE_LINE, CODE_FUNC). A message too big for a datagram
    /// goes, as libvirt sends it, in an unlinked /dev/shm file whose
    /// descriptor is the only content of the datagram.</summary>
    private sealed class JournaldOutput : Output
    {
        private readonly Socket _socket;
        private readonly UnixDomainSocketEndPoint _journal;

        public JournaldOutput(VirLogPriority priority, UnixDomainSocketEndPoint journal) : base(priority, Destination.Journald, null)
        {
            _journal = journal;
            _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified); // CLOEXEC as .NET opens it
        }

        public override void Write(in LogMessage m)
        {
            var buf = new List<byte>(256);
            AddString(buf, "MESSAGE", m.Raw);
            AddString(buf, "PRIORITY", SyslogPriority(m.Priority).ToString(CultureInfo.InvariantCulture));
            AddString(buf, "SYSLOG_FACILITY", "3");
            AddString(buf, "LIBVIRT_SOURCE", m.Source.Name);
            if (m.File is not null)
                AddString(buf, "CODE_FILE", m.File);
            AddString(buf, "CODE_LINE", m.Line.ToString(CultureInfo.InvariantCulture));
            if (m.Function is not null)
                AddString(buf, "CODE_FUNC", m.Function);
            var bytes = buf.ToArray();
            try
            {
                _socket.SendTo(bytes, SocketFlags.None, _journal);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.MessageSize or SocketError.NoBufferSpaceAvailable)
            {
                SendInMemoryFile(bytes);
            }
            catch (SocketException) { } // no journal: dropped, as libvirt drops a failed send
        }

        /// <summary>journald's way for a large entry: the same bytes in a
        /// file on a tmpfs, unlinked at once, its descriptor sent alone.
        /// Any failure drops the message, as libvirt's does.</summary>
        private void SendInMemoryFile(byte[] entry)
        {
            string path = $"/dev/shm/journal.{Random.Shared.Next():x8}";
            try
            {
                using var file = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew,
                    Access = FileAccess.ReadWrite,
                    Share = FileShare.None,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                });
                File.Delete(path);
                file.Write(entry);
                file.Flush();
                bool refAdded = false;
                _socket.SafeHandle.DangerousAddRef(ref refAdded);
                try
                {
                    Libc.Log.SendFdTo((int)_socket.SafeHandle.DangerousGetHandle(), _journal.ToString()!,
                        (int)file.SafeFileHandle.DangerousGetHandle());
                }
                finally
                {
                    if (refAdded)
                        _socket.SafeHandle.DangerousRelease();
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }

        private static int SyslogPriority(VirLogPriority p) => p switch
        {
            VirLogPriority.Debug => 7,
            VirLogPriority.Info => 6,
            VirLogPriority.Warn => 4,
            _ => 3,
        };

        private static void AddString(List<byte> buf, string field, string value)
        {
            buf.AddRange(Encoding.ASCII.GetBytes(field));
            byte[] v = Encoding.UTF8.GetBytes(value);
            if (value.Contains('\n'))
            {
                // a value with a newline goes as its 64-bit little-endian length and the bytes
                buf.Add((byte)'\n');
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)v.Length);
                buf.AddRange(len.ToArray());
            }
            else
                buf.Add((byte)'=');
            buf.AddRange(v);
            buf.Add((byte)'\n');
        }

        public override void Dispose() => _socket.Dispose();
    }
}
