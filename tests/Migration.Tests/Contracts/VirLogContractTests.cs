using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text.RegularExpressions;
using Libvirt.Host;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>libvirt's logging state is one per process (in libvirt.so.0):
/// the tests that change it run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class VirLogStateCollection
{
    public const string Name = "libvirt's process-wide log state";
}

/// <summary>
/// The logging contract (libvirt's src/util/virlog.c), run against every
/// implementation with the same expectations: the parse cases of libvirt's
/// tests/virlogtest.c (our own table) and more: exact errors, canonical text
/// of filters and outputs, duplicate outputs, filter and output priorities,
/// and the file output's lines. The native implementation's state is saved
/// before each test and put back after, so nothing else in this process sees
/// what a test set.
/// </summary>
[SupportedOSPlatform("linux")]
[Collection(VirLogStateCollection.Name)]
public sealed partial class VirLogContractTests : IDisposable
{
    public static TheoryData<string> Implementations
    {
        get
        {
            var d = new TheoryData<string>();
            foreach (var name in VirImplementations.Names)
                d.Add(name);
            return d;
        }
    }

    private static readonly bool LibvirtReady = LibvirtRuntime.Initialize();

    private const int ErrInvalidArg = 8;       // VIR_ERR_INVALID_ARG
    private const int ErrSystem = 38;          // VIR_ERR_SYSTEM_ERROR

    private readonly TempDirectory _dir = new("virlog-");
    private readonly List<IVirLog> _logs = [];
    private readonly (VirLogPriority Priority, string Filters, string Outputs) _savedNative;

    public VirLogContractTests()
    {
        Assert.True(LibvirtReady, "libvirt initialisation failed");
        var native = new VirLogNative();
        _savedNative = (native.DefaultPriority, native.GetFilters(), native.GetOutputs().Value);
    }

    public void Dispose()
    {
        foreach (var l in _logs)
            l.Dispose();
        // back to what this process had: "P:*m* " filters are set again as "P:m"
        var native = new VirLogNative();
        native.Reset().ThrowIfFailed();
        native.SetDefaultPriority((int)_savedNative.Priority).ThrowIfFailed();
        native.SetFilters(string.Join(' ', _savedNative.Filters.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => StarredMatch().Replace(f, "$1$2")))).ThrowIfFailed();
        if (_savedNative.Outputs.Length > 0)
            native.SetOutputs(_savedNative.Outputs).ThrowIfFailed();
        _dir.Dispose();
    }

    [GeneratedRegex(@"^(\d+:)\*(.*)\*$")]
    private static partial Regex StarredMatch();

    /// <summary>A fresh state: no filters, no outputs, priority warning.</summary>
    private IVirLog Log(string impl)
    {
        var log = VirImplementations.Logging(impl) ?? throw new InvalidOperationException($"no logging implementation {impl}");
        _logs.Add(log);
        Assert.True(log.Reset().Ok);
        return log;
    }

    private static void Ok(VirResult r) => Assert.True(r.Ok, $"failed: {r.Error}");

    private static VirError InvalidArg(string detail)
        => new(ErrInvalidArg, 0, "invalid argument: " + detail, VirError.LevelError, "invalid argument: %s", detail);

    private static VirError SystemError(int errno, string detail, string strerror)
    {
        string message = $"{detail}: {strerror}";
        return new VirError(ErrSystem, 0, message, VirError.LevelError, "%s", message, null, errno, -1);
    }

    // A source name no other test used: libvirt caches a source's priority
    // in the shim's virLogSource for the process's life.
    private static VirLogSource Source(string name) => new($"test.{name}.{Guid.NewGuid():N}");

    [LibraryImport("libc")]
    private static partial int gettid();

    // ---------------------------------------------------------------- outputs

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParseOutputs_VirlogtestCases(string impl)
    {
        var log = Log(impl);
        Ok(log.SetOutputs("1:file:/dev/null"));
        Assert.Equal(1, log.OutputCount);
        Assert.Equal("1:file:/dev/null", log.GetOutputs().Value);

        Ok(log.SetOutputs("1:file:/dev/null  2:stderr"));
        Assert.Equal(2, log.OutputCount);
        Assert.Equal("1:file:/dev/null 2:stderr", log.GetOutputs().Value);

        Assert.Equal(InvalidArg("Invalid log priority 'foo' for log output 'foo:stderr'"), log.SetOutputs("foo:stderr").Error);
        Assert.Equal(InvalidArg("Invalid log destination 'bar' for log output '1:bar'"), log.SetOutputs("1:bar").Error);
        Assert.Equal(InvalidArg("Log output '1:stderr:foobar' does not meet the format requirements for destination type 'stderr'"),
            log.SetOutputs("1:stderr:foobar").Error);
        // a failed set leaves the outputs as they were
        Assert.Equal("1:file:/dev/null 2:stderr", log.GetOutputs().Value);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParseOutputs_Errors(string impl)
    {
        var log = Log(impl);
        Assert.Equal(InvalidArg("Malformed format for log output '1'"), log.SetOutputs("1").Error);
        Assert.Equal(InvalidArg("Malformed format for log output 'stderr'"), log.SetOutputs("3:stderr stderr").Error);
        Assert.Equal(InvalidArg("Invalid log priority '0' for log output '0:stderr'"), log.SetOutputs("0:stderr").Error);
        Assert.Equal(InvalidArg("Invalid log priority '5' for log output '5:stderr'"), log.SetOutputs("5:stderr").Error);
        Assert.Equal(InvalidArg("Invalid log priority '-1' for log output '-1:stderr'"), log.SetOutputs("-1:stderr").Error);
        Assert.Equal(InvalidArg("Invalid log priority '' for log output ':stderr'"), log.SetOutputs(":stderr").Error);
        Assert.Equal(InvalidArg("Invalid log priority '4294967297' for log output '4294967297:stderr'"),
            log.SetOutputs("4294967297:stderr").Error);
        Assert.Equal(InvalidArg("Invalid log destination 'STDERR' for log output '1:STDERR'"), log.SetOutputs("1:STDERR").Error);
        Assert.Equal(InvalidArg("Log output '1:file' does not meet the format requirements for destination type 'file'"),
            log.SetOutputs("1:file").Error);
        Assert.Equal(InvalidArg("Log output '1:file:/a:b' does not meet the format requirements for destination type 'file'"),
            log.SetOutputs("1:file:/a:b").Error);
        Assert.Equal(InvalidArg("Log output '1:syslog' does not meet the format requirements for destination type 'syslog'"),
            log.SetOutputs("1:syslog").Error);
        Assert.Equal(InvalidArg("Log output '2:journald:x' does not meet the format requirements for destination type 'journald'"),
            log.SetOutputs("2:journald:x").Error);
        string missing = _dir["no-such-dir/log"];
        Assert.Equal(SystemError(2, $"failed to open {missing}", "No such file or directory"),
            log.SetOutputs($"1:stderr 1:file:{missing}").Error);
        Assert.Equal(SystemError(21, $"failed to open {_dir.Path}", "Is a directory"), log.SetOutputs($"1:file:{_dir.Path}").Error);
        Assert.Equal(0, log.OutputCount);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParseOutputs_PriorityAsStrtoul(string impl)
    {
        var log = Log(impl);
        Ok(log.SetOutputs("+2:stderr"));
        Assert.Equal("2:stderr", log.GetOutputs().Value);
        Ok(log.SetOutputs("004:stderr"));
        Assert.Equal("4:stderr", log.GetOutputs().Value);
        Ok(log.SetOutputs("\t3:stderr"));
        Assert.Equal("3:stderr", log.GetOutputs().Value);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Outputs_CanonicalText(string impl)
    {
        var log = Log(impl);
        string a = _dir["a.log"];
        Ok(log.SetOutputs($"  3:stderr   2:journald 1:file:{a}  "));
        Assert.Equal(3, log.OutputCount);
        Assert.Equal($"3:stderr 2:journald 1:file:{a}", log.GetOutputs().Value);
        Assert.True(File.Exists(a)); // opened (created) when set
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Outputs_RepeatedDestinationKeepsTheLast(string impl)
    {
        var log = Log(impl);
        string a = _dir["a.log"], b = _dir["b.log"];
        Ok(log.SetOutputs($"1:stderr 2:journald 3:stderr 1:file:{a} 2:file:{b} 4:file:{a}"));
        Assert.Equal($"2:journald 3:stderr 2:file:{b} 4:file:{a}", log.GetOutputs().Value);
        Assert.Equal(4, log.OutputCount);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Outputs_FileNameCanonicalised(string impl)
    {
        var log = Log(impl);
        Directory.CreateDirectory(_dir["sub"]);
        Ok(log.SetOutputs($"1:file:{_dir.Path}//sub/./x/../log"));
        Assert.Equal($"1:file:{_dir["sub/log"]}", log.GetOutputs().Value);
        Assert.True(File.Exists(_dir["sub/log"]));

        string cwd = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(_dir["sub"]);
            Ok(log.SetOutputs("2:file:rel.log"));
            Assert.Equal($"2:file:{_dir["sub/rel.log"]}", log.GetOutputs().Value);
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
        }
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Outputs_EmptyMeansDefault_NothingBeforeOne(string impl)
    {
        var log = Log(impl);
        Ok(log.SetOutputs("2:stderr"));
        if (log.DefaultOutput is null) // the native state of a process that never decided one
        {
            Ok(log.SetOutputs(""));
            Ok(log.SetOutputs(null));
            Assert.Equal("2:stderr", log.GetOutputs().Value);
        }
        else
        {
            Ok(log.SetOutputs(""));
            Assert.Equal(log.DefaultOutput, log.GetOutputs().Value);
        }
    }

    [Fact]
    public void Outputs_EmptyWithoutDefault_LeavesOutputs_Managed()
    {
        // the managed state starts with no default output, as libvirt's does
        var log = Log(VirImplementations.Managed);
        Ok(log.SetOutputs("2:stderr"));
        Assert.Null(log.DefaultOutput);
        Ok(log.SetOutputs(""));
        Assert.Equal("2:stderr", log.GetOutputs().Value);
    }

    [Fact]
    public void Syslog_NativeAccepts_ManagedRefusesWithAnErrorValue()
    {
        var native = Log(VirImplementations.Native);
        Ok(native.SetOutputs("1:syslog:virlogtest"));
        Assert.Equal("1:syslog:virlogtest", native.GetOutputs().Value);
        Ok(native.Reset());

        var managed = Log(VirImplementations.Managed);
        Ok(managed.SetOutputs("3:stderr"));
        var error = managed.SetOutputs("2:stderr 1:syslog:virlogtest").Error;
        Assert.Equal(VirLogManaged.SyslogUnsupported("1:syslog:virlogtest"), error);
        Assert.Contains("not supported by the managed logging implementation", error!.Message);
        Assert.Equal("3:stderr", managed.GetOutputs().Value);
    }

    // ---------------------------------------------------------------- filters

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParseFilters_VirlogtestCases(string impl)
    {
        var log = Log(impl);
        Ok(log.SetFilters("1:foo"));
        Assert.Equal(1, log.FilterCount);
        Assert.Equal("1:*foo* ", log.GetFilters());

        Ok(log.SetFilters("1:foo 2:bar  3:foobar"));
        Assert.Equal(3, log.FilterCount);
        Assert.Equal("1:*foo* 2:*bar* 3:*foobar* ", log.GetFilters());

        Assert.Equal(InvalidArg("Invalid priority '5' for filter '5:foo'"), log.SetFilters("5:foo").Error);
        Assert.Equal(InvalidArg("Invalid match string ''"), log.SetFilters("1:").Error);
        Assert.Equal(InvalidArg("Invalid priority '' for filter ':foo'"), log.SetFilters(":foo").Error);
        Assert.Equal(InvalidArg("Invalid match string '+'"), log.SetFilters("1:+").Error);
        Assert.Equal("1:*foo* 2:*bar* 3:*foobar* ", log.GetFilters());
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParseFilters_MoreCases(string impl)
    {
        var log = Log(impl);
        // '+' (once: print a stack trace) is dropped; what follows a second ':' is ignored
        Ok(log.SetFilters("3:+rpc 1:util.log:extra 4:+"  + "+x"));
        Assert.Equal("3:*rpc* 1:*util.log* 4:*+x* ", log.GetFilters());
        Assert.Equal(InvalidArg("Malformed format for filter 'util'"), log.SetFilters("1:a util").Error);
        Assert.Equal(InvalidArg("Invalid priority '0' for filter '0:foo'"), log.SetFilters("0:foo").Error);
        Assert.Equal(InvalidArg("Invalid priority 'debug' for filter 'debug:foo'"), log.SetFilters("debug:foo").Error);
        Assert.Equal(3, log.FilterCount);

        Ok(log.SetFilters(""));
        Assert.Equal(0, log.FilterCount);
        Assert.Equal("", log.GetFilters());
        Ok(log.SetFilters("2:x"));
        Ok(log.SetFilters(null));
        Assert.Equal(0, log.FilterCount);
    }

    // ---------------------------------------------------------------- default priority

    [Theory]
    [MemberData(nameof(Implementations))]
    public void DefaultPriority(string impl)
    {
        var log = Log(impl);
        Assert.Equal(VirLogPriority.Warn, log.DefaultPriority);
        Ok(log.SetDefaultPriority(1));
        Assert.Equal(VirLogPriority.Debug, log.DefaultPriority);
        Assert.Equal(InvalidArg("Failed to set logging priority, argument '5' is invalid"), log.SetDefaultPriority(5).Error);
        Assert.Equal(InvalidArg("Failed to set logging priority, argument '0' is invalid"), log.SetDefaultPriority(0).Error);
        Assert.Equal(InvalidArg("Failed to set logging priority, argument '4294967295' is invalid"), log.SetDefaultPriority(-1).Error);
        Assert.Equal(VirLogPriority.Debug, log.DefaultPriority);
        Ok(log.Reset());
        Assert.Equal(VirLogPriority.Warn, log.DefaultPriority);
    }

    // ---------------------------------------------------------------- messages and the file output

    private static readonly Regex LineFormat = new(
        @"^(?<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3})\+0000: (?<tid>\d+): (?<level>debug|info|warning|error) : (?<rest>.*)$");

    /// <summary>The lines of a log file, each checked against libvirt's
    /// format (timestamp within a minute, this thread's id), without the
    /// "TIMESTAMP: TID: " part.</summary>
    private static List<string> Lines(string path) => LinesOf(File.ReadAllText(path));

    private static List<string> LinesOf(string text)
    {
        var result = new List<string>();
        Assert.EndsWith("\n", text);
        foreach (var line in text[..^1].Split('\n'))
        {
            var m = LineFormat.Match(line);
            Assert.True(m.Success, $"not libvirt's line format: \"{line}\"");
            var ts = DateTime.ParseExact(m.Groups["ts"].Value, "yyyy-MM-dd HH:mm:ss.fff", null,
                System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal);
            Assert.InRange((DateTime.UtcNow - ts).TotalSeconds, -1, 60);
            Assert.Equal(gettid().ToString(), m.Groups["tid"].Value);
            result.Add($"{m.Groups["level"].Value} : {m.Groups["rest"].Value}");
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void FileOutput_LineFormatAndPriorities(string impl)
    {
        var log = Log(impl);
        string all = _dir["all.log"], warn = _dir["warn.log"];
        Ok(log.SetDefaultPriority(3));
        // the filters are set after the priority: libvirt re-reads a source's priority only when they change
        Ok(log.SetFilters("1:.debugged 4:.quiet"));
        Ok(log.SetOutputs($"1:file:{all} 3:file:{warn}"));

        var plain = Source("plain");
        var debugged = Source("debugged");
        var quiet = Source("quiet");
        log.Message(plain, VirLogPriority.Info, "f.c", 10, "fnInfo", "plain info");       // below the default
        log.Message(plain, VirLogPriority.Warn, "f.c", 11, "fnWarn", "plain warning");
        log.Message(debugged, VirLogPriority.Debug, "f.c", 12, "fnDebug", "debugged debug");
        log.Message(quiet, VirLogPriority.Warn, "f.c", 13, "fnQ", "quiet warning");       // below its filter
        log.Message(quiet, VirLogPriority.Error, "f.c", 14, "fnQ", "quiet error");
        log.Message(plain, VirLogPriority.Error, null, 0, null, "no function");

        var lines = Lines(all);
        Assert.Equal(6, lines.Count);
        Assert.Matches(@"^info : libvirt version: 9\.0\.0(, package: \S+ \(\S+\))?$", lines[0]);
        Assert.Equal($"info : hostname: {File.ReadAllText("/proc/sys/kernel/hostname").TrimEnd('\n')}", lines[1]);
        Assert.Equal(["warning : fnWarn:11 : plain warning", "debug : fnDebug:12 : debugged debug",
            "error : fnQ:14 : quiet error", "error : no function"], lines.Skip(2));

        var wlines = Lines(warn);
        Assert.Equal(lines[0], wlines[0]);
        Assert.Equal(lines[1], wlines[1]);
        Assert.Equal(["warning : fnWarn:11 : plain warning", "error : fnQ:14 : quiet error", "error : no function"], wlines.Skip(2));

        if (impl == VirImplementations.Managed) // the native adapter cannot tell
            Assert.False(log.IsEnabled(quiet, VirLogPriority.Warn));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void FileOutput_AppendsAndReopensWithInitLines(string impl)
    {
        var log = Log(impl);
        string path = _dir["a.log"];
        File.WriteAllText(path, "");
        Ok(log.SetDefaultPriority(2));
        Ok(log.SetFilters(""));
        Ok(log.SetOutputs($"2:file:{path}"));
        var src = Source("append");
        log.Message(src, VirLogPriority.Info, "f.c", 1, "one", "first");
        log.Message(src, VirLogPriority.Info, "f.c", 2, "two", "second");
        // setting outputs again opens them again: the version and host lines come again, appended
        Ok(log.SetOutputs($"2:file:{path}"));
        log.Message(src, VirLogPriority.Warn, "f.c", 3, "three", "multi\nline");
        // a message's own newline is written as it is
        string text = File.ReadAllText(path);
        Assert.EndsWith(" : three:3 : multi\nline\n", text);
        var lines = LinesOf(text[..^"line\n".Length]);
        Assert.Equal(7, lines.Count);
        Assert.Equal(["info : one:1 : first", "info : two:2 : second"], lines[2..4]);
        Assert.Equal(lines[0], lines[4]);
        Assert.Equal(lines[1], lines[5]);
        Assert.Equal("warning : three:3 : multi", lines[6]);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void ParsingLogsItselfToTheCurrentOutputs(string impl)
    {
        var log = Log(impl);
        string a = _dir["a.log"], b = _dir["b.log"];
        Ok(log.SetDefaultPriority(1));
        Ok(log.SetFilters("1:util.log"));
        Ok(log.SetOutputs($"1:file:{a}"));
        Ok(log.SetOutputs($"1:file:{b}"));
        Ok(log.SetFilters("3:foo"));
        var lines = Lines(a);
        Assert.Equal([$"debug : virLogParseOutputs:1641 : outputs=1:file:{b}", $"debug : virLogParseOutput:1488 : output=1:file:{b}"],
            lines.Skip(2));
        Assert.Equal(["debug : virLogParseFilters:1694 : filters=3:foo", "debug : virLogParseFilter:1584 : filter=3:foo"],
            Lines(b).Skip(2));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void DefaultPriorityReachesACachedSourceOnlyWithNewFilters(string impl)
    {
        var log = Log(impl);
        string path = _dir["a.log"];
        Ok(log.SetOutputs($"1:file:{path}"));
        Ok(log.SetFilters(""));
        var src = Source("cached");
        log.Message(src, VirLogPriority.Info, "f.c", 1, "f", "dropped at warning");
        Ok(log.SetDefaultPriority(1));
        log.Message(src, VirLogPriority.Info, "f.c", 2, "f", "still dropped: the source kept warning");
        Ok(log.SetFilters(""));
        log.Message(src, VirLogPriority.Info, "f.c", 3, "f", "kept");
        // (the empty filter set is parsed at debug now, so parsing logs itself too)
        Assert.Equal(["debug : virLogParseFilters:1694 : filters=", "info : f:3 : kept"], Lines(path).Skip(2));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void FilterMatchesAsGlobInTheName_FirstWins(string impl)
    {
        var log = Log(impl);
        string path = _dir["a.log"];
        Ok(log.SetDefaultPriority(4));
        Ok(log.SetFilters("1:glob?x*.end 4:glob 2:glob"));
        Ok(log.SetOutputs($"1:file:{path}"));
        var a = new VirLogSource($"t.{Guid.NewGuid():N}.globAxyz.end.more");
        var b = new VirLogSource($"t.{Guid.NewGuid():N}.glob.end");
        log.Message(a, VirLogPriority.Debug, "f.c", 1, "f", "a debug");
        log.Message(b, VirLogPriority.Info, "f.c", 2, "f", "b info");
        log.Message(b, VirLogPriority.Error, "f.c", 3, "f", "b error");
        Assert.Equal(["debug : f:1 : a debug", "error : f:3 : b error"], Lines(path).Skip(2));
    }

    [Fact]
    public void VersionAndHostLines_SameAsLibvirts()
    {
        string n = _dir["native.log"], m = _dir["managed.log"];
        foreach (var (impl, path) in new[] { (VirImplementations.Native, n), (VirImplementations.Managed, m) })
        {
            var log = Log(impl);
            Ok(log.SetFilters(""));
            Ok(log.SetOutputs($"1:file:{path}"));
            log.Message(Source("version"), VirLogPriority.Error, "f.c", 1, "f", "x");
            Ok(log.Reset());
        }
        Assert.Equal(Lines(n), Lines(m));
        Assert.Equal("info : " + VirLogManaged.DefaultVersionLine(), Lines(n)[0]);
    }

    /// <summary>libvirt's own recogniser of its log lines (virLogProbablyLogMessage,
    /// which virlogtest.c checks with the two lines below) accepts every
    /// line either implementation writes.</summary>
    [Theory]
    [MemberData(nameof(Implementations))]
    public unsafe void LibvirtRecognisesTheLines(string impl)
    {
        static bool Probably(string line)
        {
            using var l = new Libvirt.Interop.NativeUtf8(line);
            return Libvirt.Interop.Methods.virLogProbablyLogMessage(l) != 0;
        }
        Assert.True(Probably("2013-10-11 15:43:43.866+0000: 28302: info : libvirt version: 1.1.3"));
        Assert.False(Probably("libvirt:  error : cannot execute binary /usr/libexec/libvirt_lxc: No such file or directory"));

        var log = Log(impl);
        string path = _dir["a.log"];
        Ok(log.SetFilters(""));
        Ok(log.SetOutputs($"1:file:{path}"));
        var src = Source("recognised");
        log.Message(src, VirLogPriority.Warn, "f.c", 7, "fn", "a warning");
        log.Message(src, VirLogPriority.Error, null, 0, null, "an error");
        var lines = File.ReadAllLines(path);
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => Assert.True(Probably(l), $"libvirt does not take \"{l}\" for its own"));
    }

    [Fact]
    public void BelowThreshold_NoAllocation_Managed()
    {
        var log = Log(VirImplementations.Managed);
        Ok(log.SetFilters("4:hot"));
        Ok(log.SetOutputs($"1:file:{_dir["a.log"]}"));
        var src = Source("hot");
        log.Message(src, VirLogPriority.Debug, "f.c", 1, "f", "warm-up");
        Assert.Equal(0, AllocationMeter.BytesOnThisThread(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                Assert.False(log.IsEnabled(src, VirLogPriority.Warn));
                log.Message(src, VirLogPriority.Warn, "f.c", 1, "f", "dropped");
            }
        }));
        Assert.True(log.IsEnabled(src, VirLogPriority.Error));
    }

    [Fact]
    public void Journald_NativeProtocolDatagrams_Managed()
    {
        // the managed twin's datagrams (the native one's go to the real journal only)
        string sock = _dir["journal.sock"];
        using var journal = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix,
            System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        journal.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
        journal.ReceiveTimeout = 5000;
        var log = new VirLogManaged(journalSocket: sock);
        _logs.Add(log);
        Ok(log.SetFilters(""));
        Ok(log.SetOutputs("3:journald"));
        Assert.Equal("3:journald", log.GetOutputs().Value);
        var src = Source("journal");
        log.Message(src, VirLogPriority.Warn, "src/x.c", 42, "fnJ", "hello journal");
        log.Message(src, VirLogPriority.Info, "src/x.c", 43, "fnI", "below the output");
        log.Message(src, VirLogPriority.Error, null, 44, null, "two\nlines");

        var buf = new byte[65536];
        string Next() => System.Text.Encoding.UTF8.GetString(buf, 0, journal.Receive(buf));
        string host = File.ReadAllText("/proc/sys/kernel/hostname").TrimEnd('\n');
        const string self = "SYSLOG_FACILITY=3\nLIBVIRT_SOURCE=util.log\nCODE_FILE=../src/util/virlog.c\n";
        Assert.Equal($"MESSAGE={VirLogManaged.DefaultVersionLine()}\nPRIORITY=6\n{self}CODE_LINE=557\nCODE_FUNC=virLogVMessage\n", Next());
        Assert.Equal($"MESSAGE=hostname: {host}\nPRIORITY=6\n{self}CODE_LINE=564\nCODE_FUNC=virLogVMessage\n", Next());
        Assert.Equal($"MESSAGE=hello journal\nPRIORITY=4\nSYSLOG_FACILITY=3\nLIBVIRT_SOURCE={src.Name}\nCODE_FILE=src/x.c\nCODE_LINE=42\nCODE_FUNC=fnJ\n", Next());
        // a value with a newline: the field name, a newline, its length as 64-bit little-endian, the bytes
        Assert.Equal($"MESSAGE\n\u0009\0\0\0\0\0\0\0two\nlines\nPRIORITY=3\nSYSLOG_FACILITY=3\nLIBVIRT_SOURCE={src.Name}\nCODE_LINE=44\n", Next());
        journal.ReceiveTimeout = 200;
        Assert.Throws<System.Net.Sockets.SocketException>(() => journal.Receive(buf));
    }

    [Fact]
    public unsafe void Journald_EntryTooLargeForADatagramGoesAsAnUnlinkedFile_Managed()
    {
        string sock = _dir["journal-big.sock"];
        using var journal = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix,
            System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        journal.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(sock));
        var log = new VirLogManaged(journalSocket: sock);
        _logs.Add(log);
        Ok(log.SetFilters(""));
        Ok(log.SetOutputs("3:journald"));
        // larger than any datagram the kernel takes on a UNIX socket (its send buffer)
        string big = new string('x', 4 << 20);
        var src = Source("journal");
        log.Message(src, VirLogPriority.Error, "src/big.c", 7, "fnBig", big);
        // first the version and host lines, as ordinary datagrams
        var small = new byte[65536];
        journal.ReceiveTimeout = 5000;
        Assert.StartsWith("MESSAGE=libvirt version", System.Text.Encoding.UTF8.GetString(small, 0, journal.Receive(small)));
        Assert.StartsWith("MESSAGE=hostname:", System.Text.Encoding.UTF8.GetString(small, 0, journal.Receive(small)));

        // a datagram with no data and one descriptor
        int fd;
        byte* control = stackalloc byte[Libc.CmsgSpaceOneFd];
        new Span<byte>(control, Libc.CmsgSpaceOneFd).Clear();
        byte data = 0;
        var iov = new Libc.iovec { iov_base = &data, iov_len = 1 };
        var msg = new Libc.msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = Libc.CmsgSpaceOneFd };
        Assert.True(journal.Poll(TimeSpan.FromSeconds(5), System.Net.Sockets.SelectMode.SelectRead), "no datagram for the large entry");
        nint n = Libc.recvmsg((int)journal.Handle, &msg, Libc.MSG_CMSG_CLOEXEC);
        Assert.Equal(0, n);
        var cmsg = (Libc.cmsghdr*)control;
        Assert.True(msg.msg_controllen >= (nuint)sizeof(Libc.cmsghdr) && cmsg->cmsg_type == Libc.SCM_RIGHTS, "the datagram carries no descriptor");
        fd = *(int*)(control + sizeof(Libc.cmsghdr));
        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        // the file is already unlinked, and holds the entry in the native protocol
        var target = new FileInfo($"/proc/self/fd/{fd}").LinkTarget!;
        Assert.Matches(@"^/dev/shm/journal\.\S+ \(deleted\)$", target);
        long length = RandomAccess.GetLength(handle);
        var content = new byte[length];
        Assert.Equal((int)length, RandomAccess.Read(handle, content, 0));
        Assert.Equal($"MESSAGE={big}\nPRIORITY=3\nSYSLOG_FACILITY=3\nLIBVIRT_SOURCE={src.Name}\nCODE_FILE=src/big.c\nCODE_LINE=7\nCODE_FUNC=fnBig\n",
            System.Text.Encoding.UTF8.GetString(content));
    }

    // ---------------------------------------------------------------- daemon set-up

    [Theory]
    [MemberData(nameof(Implementations))]
    public void SetupDaemon_ConfigThenVerbose(string impl)
    {
        foreach (var v in new[] { "LIBVIRT_DEBUG", "LIBVIRT_LOG_FILTERS", "LIBVIRT_LOG_OUTPUTS" })
            Assert.True(string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v)), $"{v} is set in the test environment");
        var log = Log(impl);
        string path = _dir["d.log"];
        Ok(log.SetupDaemon("virtlogtest", 4, "1:util 3:+rpc", $"3:file:{path}", privileged: true, verbose: true, godaemon: false));
        Assert.Equal(VirLogPriority.Info, log.DefaultPriority); // --verbose
        Assert.Equal("1:*util* 3:*rpc* ", log.GetFilters());
        Assert.Equal($"3:file:{path}", log.GetOutputs().Value);
        // not a daemon: stderr, or journald when it is there and stdin is no
        // terminal; at the priority --verbose left
        Assert.Matches("^(2:stderr|2:journald)$", log.DefaultOutput);

        Assert.Equal(InvalidArg("Failed to set logging priority, argument '7' is invalid"),
            log.SetupDaemon("virtlogtest", 7, null, null, privileged: true, verbose: false, godaemon: false).Error);
        Assert.Equal(InvalidArg("Invalid priority 'x' for filter 'x:y'"),
            log.SetupDaemon("virtlogtest", 0, "x:y", null, privileged: true, verbose: false, godaemon: false).Error);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void SetupDaemon_NoOutputs_TheDefault(string impl)
    {
        var log = Log(impl);
        Ok(log.SetupDaemon("virtlogtest", 2, null, null, privileged: true, verbose: false, godaemon: false));
        Assert.Equal(VirLogPriority.Info, log.DefaultPriority);
        Assert.Equal(log.DefaultOutput, log.GetOutputs().Value);
        Assert.Matches("^(2:stderr|2:journald)$", log.DefaultOutput);
        Assert.Equal(1, log.OutputCount);
    }
}
