using System.Runtime;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using Libvirt.Host;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>
/// The rotating file contract (libvirt's src/util/virrotatingfile.c), run
/// against every implementation with the same expectations: libvirt's own
/// cases (tests/virrotatingfiletest.c) and the boundaries, backups, read-back,
/// errors, modes and descriptors around them. Each test has its own directory
/// under /tmp; expected files and contents are spelled out per test.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class VirRotatingFileContractTests : IDisposable
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

    // The native adapter reports through libvirt's error layer.
    private static readonly bool LibvirtReady = LibvirtRuntime.Initialize();

    private const uint Mode0700 = 0x1c0;
    private const int ErrSystem = 38;          // VIR_ERR_SYSTEM_ERROR
    private const int ErrConfigUnsupported = 67; // VIR_ERR_CONFIG_UNSUPPORTED

    private readonly string _dir;
    private readonly string _log;

    public VirRotatingFileContractTests()
    {
        Assert.True(LibvirtReady, "libvirt initialisation failed");
        _dir = Path.Combine("/tmp", "virrotatingfile-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        _log = Path.Combine(_dir, "log");
    }

    public void Dispose()
    {
        if (!Directory.Exists(_dir))
            return;
        File.SetUnixFileMode(_dir, (UnixFileMode)0x1ed); // tests may leave it read-only
        Directory.Delete(_dir, recursive: true);
    }

    // ---------------------------------------------------------------- helpers

    private static IVirRotatingFileFactory Factory(string impl)
        => VirImplementations.RotatingFile(impl) ?? throw new InvalidOperationException($"no rotating file implementation {impl}");

    private static IVirRotatingFileWriter Writer(string impl, string path, long maxLength, ulong maxBackups, bool truncate = false, uint mode = Mode0700)
    {
        var r = Factory(impl).NewWriter(path, maxLength, maxBackups, truncate, mode);
        Assert.True(r.Ok, $"NewWriter failed: {r.Error}");
        return r.Value;
    }

    private static IVirRotatingFileReader Reader(string impl, string path, ulong maxBackups)
    {
        var r = Factory(impl).NewReader(path, maxBackups);
        Assert.True(r.Ok, $"NewReader failed: {r.Error}");
        return r.Value;
    }

    private static void Append(IVirRotatingFileWriter w, byte[] data)
    {
        var r = w.Append(data);
        Assert.True(r.Ok, $"Append failed: {r.Error}");
        Assert.Equal(data.Length, r.Value);
    }

    private static byte[] Fill(char c, int n)
    {
        var b = new byte[n];
        Array.Fill(b, (byte)c);
        return b;
    }

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static byte[] Cat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private string P(string name) => Path.Combine(_dir, name);

    private void Put(string name, byte[] content) => File.WriteAllBytes(P(name), content);

    /// <summary>The directory holds exactly these entries; null content
    /// stands for a directory.</summary>
    private void AssertFiles(params (string Name, byte[]? Content)[] expected)
    {
        var actual = Directory.EnumerateFileSystemEntries(_dir).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected.Select(e => e.Name).Order(StringComparer.Ordinal).ToArray(), actual);
        foreach (var (name, content) in expected)
        {
            if (content is null)
                Assert.True(Directory.Exists(P(name)), $"{name} should be a directory");
            else
                Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(P(name))),
                    $"{name}: expected {Show(content)}, found {Show(File.ReadAllBytes(P(name)))}");
        }
    }

    private static string Show(byte[] b) => b.Length <= 200
        ? $"{b.Length} bytes \"{Encoding.ASCII.GetString(b).Replace("\n", "\\n")}\""
        : $"{b.Length} bytes starting \"{Encoding.ASCII.GetString(b, 0, 60).Replace("\n", "\\n")}\"";

    private static void AssertSystemError(VirError? error, int errno, string detail, string strerror)
    {
        string message = $"{detail}: {strerror}";
        Assert.Equal(new VirError(ErrSystem, 0, message, VirError.LevelError, "%s", message, null, errno, -1), error);
    }

    private static void AssertTooManyBackups(VirError? error, string count)
    {
        string detail = $"Max backup {count} must be less than or equal to 32";
        Assert.Equal(new VirError(ErrConfigUnsupported, 0, "unsupported configuration: " + detail, VirError.LevelError,
            "unsupported configuration: %s", detail, null, -1, -1), error);
    }

    /// <summary>Consume until it returns 0 (bounded), in buffers of <paramref name="size"/>.</summary>
    private static byte[] ReadAll(IVirRotatingFileReader r, int size = 4096)
    {
        var all = new List<byte>();
        var buf = new byte[size];
        for (int i = 0; i < 100_000; i++)
        {
            var got = r.Consume(buf);
            Assert.True(got.Ok, $"Consume failed: {got.Error}");
            if (got.Value == 0)
                return all.ToArray();
            all.AddRange(buf.AsSpan(0, (int)got.Value).ToArray());
        }
        throw new InvalidOperationException("Consume never reached the end");
    }

    [DllImport("libc", SetLastError = true, EntryPoint = "stat")]
    private static extern unsafe int stat_(string path, byte* buf);

    [DllImport("libc", SetLastError = true, EntryPoint = "setfsuid")]
    private static extern uint setfsuid(uint fsuid);

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint geteuid();

    [DllImport("libc", SetLastError = true, EntryPoint = "mkfifo")]
    private static extern int mkfifo(string path, uint mode);

    [DllImport("libc", SetLastError = true, EntryPoint = "open")]
    private static extern int open_(string path, int flags);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int close_(int fd);

    /// <summary>st_ino (offset 8 in struct stat on x86_64 and aarch64).</summary>
    private static unsafe ulong INodeOf(string path)
    {
        byte* buf = stackalloc byte[256];
        Assert.True(stat_(path, buf) == 0, $"stat {path}: errno {Marshal.GetLastPInvokeError()}");
        return *(ulong*)(buf + 8);
    }

    private static UnixFileMode Umask()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("Umask:"))
                return (UnixFileMode)Convert.ToInt32(line["Umask:".Length..].Trim(), 8);
        throw new InvalidOperationException("no Umask in /proc/self/status");
    }

    private const uint Nobody = 65534;

    /// <summary>
    /// Runs <paramref name="action"/> without root's power over file
    /// permissions: as root, by switching this thread's filesystem uid to
    /// nobody (which drops CAP_DAC_OVERRIDE for this thread only, so tests
    /// running alongside are unaffected). Both implementations make their
    /// system calls on the calling thread.
    /// </summary>
    private static T AsNobody<T>(Func<T> action)
    {
        if (geteuid() != 0)
            return action();
        uint previous = setfsuid(Nobody);
        try
        {
            Assert.Equal(Nobody, setfsuid(uint.MaxValue)); // an invalid id only reports the current one
            return action();
        }
        finally
        {
            setfsuid(previous);
        }
    }

    private const int O_LARGEFILE = 0x8000;
    private const int O_WRONLY = 0x1;
    private const int O_APPEND = 0x400;
    private const int O_CLOEXEC = 0x80000;

    /// <summary>This process's descriptors on files in the test directory:
    /// target path and open flags (fdinfo, less O_LARGEFILE which the
    /// kernel adds on 64-bit).</summary>
    private List<(string Target, int Flags)> OpenDescriptors()
    {
        var found = new List<(string, int)>();
        foreach (var fd in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            string? target;
            string flags;
            try
            {
                target = new FileInfo(fd).LinkTarget;
                flags = File.ReadLines($"/proc/self/fdinfo/{Path.GetFileName(fd)}").First(l => l.StartsWith("flags:"));
            }
            catch (IOException)
            {
                continue; // closed meanwhile by another thread
            }
            if (target is not null && target.StartsWith(_dir + "/", StringComparison.Ordinal))
                found.Add((target, Convert.ToInt32(flags["flags:".Length..].Trim(), 8) & ~O_LARGEFILE));
        }
        return found.OrderBy(f => f.Item1, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Runs <paramref name="body"/> (given a fresh directory) with garbage
    /// collection held off, so that a descriptor left for a finalizer to
    /// close is still open when looked for: C closes its descriptors at once.
    /// Tried again should a collection happen anyway (other tests allocating
    /// alongside); a collection can only hide a leak, never make one up.
    /// </summary>
    private async Task WithCollectionsHeldOff(Func<string, Task> body)
    {
        for (int attempt = 1; ; attempt++)
        {
            string dir = Path.Combine(_dir, $"attempt{attempt}");
            Directory.CreateDirectory(dir);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            bool started;
            try
            {
                started = GC.TryStartNoGCRegion(64L << 20);
            }
            catch (InvalidOperationException)
            {
                started = false; // someone else's region
            }
            bool held = false;
            try
            {
                await body(dir);
                held = started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;
            }
            finally
            {
                if (started && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
                {
                    try { GC.EndNoGCRegion(); } catch (InvalidOperationException) { }
                }
            }
            if (held)
                return;
            Assert.True(attempt < 5, "collections kept interrupting the check");
        }
    }

    /// <summary>A call that must not hang the suite should an implementation loop.</summary>
    private static Task<T> Bounded<T>(Func<T> call) => Task.Run(call).WaitAsync(TimeSpan.FromSeconds(30));

    // ------------------------------------------- libvirt's virrotatingfiletest.c

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_new_creates_an_empty_file_then_appends(string impl)
    {
        using var w = Writer(impl, _log, 1024, 2);
        Assert.Equal(impl, Factory(impl).Name);
        AssertFiles(("log", []));
        Append(w, Fill('a', 512));
        AssertFiles(("log", Fill('a', 512)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_appends_to_an_existing_file_up_to_exactly_the_maximum(string impl)
    {
        Put("log", Fill('p', 512));
        using var w = Writer(impl, _log, 1024, 2);
        AssertFiles(("log", Fill('p', 512)));
        Append(w, Fill('a', 512));
        AssertFiles(("log", Cat(Fill('p', 512), Fill('a', 512))));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_truncate_starts_an_empty_file(string impl)
    {
        Put("log", Fill('p', 512));
        using var w = Writer(impl, _log, 1024, 2, truncate: true);
        AssertFiles(("log", []));
        Append(w, Fill('a', 512));
        AssertFiles(("log", Fill('a', 512)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_rollover_without_backups_keeps_only_the_last_part(string impl)
    {
        var data = Enumerable.Range(0, 512).Select(i => (byte)('A' + i % 26)).ToArray();
        using var w = Writer(impl, _log, 200, 0);
        Append(w, data);
        AssertFiles(("log", data[400..]));
        Assert.Equal(112, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_rollover_one(string impl)
    {
        using var w = Writer(impl, _log, 1024, 2);
        Append(w, Fill('a', 512));
        Append(w, Fill('b', 512));
        Append(w, Fill('c', 512));
        AssertFiles(("log", Fill('c', 512)), ("log.0", Cat(Fill('a', 512), Fill('b', 512))));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_rollover_while_appending_to_an_existing_file(string impl)
    {
        Put("log", Fill('p', 768));
        using var w = Writer(impl, _log, 1024, 2);
        Append(w, Fill('a', 512));
        AssertFiles(("log", Fill('a', 256)), ("log.0", Cat(Fill('p', 768), Fill('a', 256))));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_rollover_many_drops_the_oldest(string impl)
    {
        using var w = Writer(impl, _log, 1024, 2);
        foreach (char c in "abcdefg")
            Append(w, Fill(c, 512));
        AssertFiles(("log", Fill('g', 512)),
            ("log.0", Cat(Fill('e', 512), Fill('f', 512))),
            ("log.1", Cat(Fill('c', 512), Fill('d', 512))));
    }

    // Two lines of 44 and 59 bytes, the sizes libvirt's line break cases use.
    private static readonly byte[] Line1 = Ascii("domain started, vcpus online, memory ready.\n");
    private static readonly byte[] Line2 = Ascii("guest kernel reports clocksource switched to tsc, all fine\n");

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_rollover_breaks_at_a_newline(string impl)
    {
        Put("log", Fill('p', 100));
        using var w = Writer(impl, _log, 160, 2);
        Append(w, Cat(Line1, Line2));
        AssertFiles(("log", Line2), ("log.0", Cat(Fill('p', 100), Line1)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Write_to_a_file_already_larger_than_the_maximum_rolls_it_over_untouched(string impl)
    {
        Put("log", Fill('p', 200));
        using var w = Writer(impl, _log, 160, 2);
        Assert.Equal(200, w.Offset);
        Append(w, Cat(Line1, Line2));
        AssertFiles(("log", Cat(Line1, Line2)), ("log.0", Fill('p', 200)));
    }

    private void PutBackups()
    {
        Put("log", Fill('n', 256));   // newest
        Put("log.0", Fill('m', 256));
        Put("log.1", Fill('o', 256)); // oldest
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Read_one(string impl)
    {
        Put("log", Fill('n', 256));
        using var r = Reader(impl, _log, 2);
        var buf = new byte[512];
        Assert.Equal(256, r.Consume(buf).Value);
        Assert.Equal(Fill('n', 256), buf[..256]);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Read_all_oldest_first(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        var buf = new byte[768];
        Assert.Equal(768, r.Consume(buf).Value);
        Assert.Equal(Cat(Fill('o', 256), Fill('m', 256), Fill('n', 256)), buf);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Read_partial(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        var buf = new byte[600];
        Assert.Equal(600, r.Consume(buf).Value);
        Assert.Equal(Cat(Fill('o', 256), Fill('m', 256), Fill('n', 88)), buf);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Read_from_a_seek(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.True(r.Seek(INodeOf(P("log.0")), 100).Ok);
        var buf = new byte[600];
        Assert.Equal(412, r.Consume(buf).Value);
        Assert.Equal(Cat(Fill('m', 156), Fill('n', 256)), buf[..412]);
    }

    // ------------------------------------------------------- size boundaries

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Exactly_the_maximum_stays_in_one_file_until_the_next_byte(string impl)
    {
        var full = Cat(Fill('a', 49), Ascii("\n"), Fill('a', 50)); // a newline does not matter when it fits
        using var w = Writer(impl, _log, 100, 2);
        Append(w, full);
        AssertFiles(("log", full));
        Assert.Equal(100, w.Offset);

        Assert.Equal(0, w.Append([]).Value); // nothing to write: no rotation either
        AssertFiles(("log", full));

        Append(w, Ascii("z"));
        AssertFiles(("log", Ascii("z")), ("log.0", full));
        Assert.Equal(1, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void One_byte_over_splits_at_the_maximum(string impl)
    {
        var data = Cat(Fill('a', 100), Ascii("b"));
        using var w = Writer(impl, _log, 100, 2);
        Append(w, data);
        AssertFiles(("log", Ascii("b")), ("log.0", Fill('a', 100)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_line_longer_than_the_maximum_is_split_across_files(string impl)
    {
        var data = Cat(Fill('a', 100), Fill('b', 100), Fill('c', 50));
        using (var w = Writer(impl, _log, 100, 3))
            Append(w, data);
        AssertFiles(("log", Fill('c', 50)), ("log.0", Fill('b', 100)), ("log.1", Fill('a', 100)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_long_write_with_one_backup_keeps_the_last_two_files(string impl)
    {
        var data = Cat(Fill('a', 100), Fill('b', 100), Fill('c', 50));
        using (var w = Writer(impl, _log, 100, 1))
            Append(w, data);
        AssertFiles(("log", Fill('c', 50)), ("log.0", Fill('b', 100)));
    }

    /// <summary>One 150-byte write into an empty file of maximum 100: which
    /// newlines end a file (those among the last 80 bytes that fit), and where
    /// the files are cut, oldest first.</summary>
    public static TheoryData<string, int[], int[]> NewlineCases()
    {
        var cases = new (int[] Newlines, int[] Cuts)[]
        {
            ([], [100]),
            ([20], [21, 121]),      // 80 bytes before the limit: inside the window
            ([19], [100]),          // 81 bytes before: outside, the line is split
            ([99], [100]),          // the last byte that fits
            ([100], [100]),         // the first byte that does not fit
            ([30, 60, 90], [91]),   // the last one wins
            ([20, 110], [21, 111]), // the rule applies again to the rest
            ([0], [100]),
        };
        var d = new TheoryData<string, int[], int[]>();
        foreach (var impl in VirImplementations.Names)
            foreach (var (newlines, cuts) in cases)
                d.Add(impl, newlines, cuts);
        return d;
    }

    [Theory]
    [MemberData(nameof(NewlineCases))]
    public void Rollover_breaks_after_the_last_newline_in_the_last_80_bytes(string impl, int[] newlines, int[] cuts)
    {
        var data = Enumerable.Range(0, 150).Select(i => (byte)('A' + i % 26)).ToArray();
        foreach (int n in newlines)
            data[n] = (byte)'\n';
        using (var w = Writer(impl, _log, 100, 3))
            Append(w, data);

        var bounds = cuts.Prepend(0).Append(150).ToArray();
        var expected = new List<(string, byte[]?)>();
        for (int i = 0; i < bounds.Length - 1; i++)
        {
            int age = bounds.Length - 2 - i; // 0: the current file
            expected.Add((age == 0 ? "log" : $"log.{age - 1}", data[bounds[i]..bounds[i + 1]]));
        }
        AssertFiles(expected.ToArray());
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void With_little_room_left_the_newline_search_covers_only_what_fits(string impl)
    {
        Put("log", Fill('p', 95));
        using var w = Writer(impl, _log, 100, 2);
        Append(w, Ascii("a\nbcdefgh"));
        AssertFiles(("log", Ascii("bcdefgh")), ("log.0", Cat(Fill('p', 95), Ascii("a\n"))));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Newline_break_without_backups(string impl)
    {
        using var w = Writer(impl, _log, 160, 0);
        Append(w, Cat(Line1, Line1, Line1, Line2));
        AssertFiles(("log", Line2));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Maximum_zero_never_rotates(string impl)
    {
        using var w = Writer(impl, _log, 0, 2);
        for (int i = 0; i < 3; i++)
            Append(w, Fill('a', 4096));
        AssertFiles(("log", Fill('a', 3 * 4096)));
        Assert.Equal(3 * 4096, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_negative_maximum_is_taken_as_huge_and_never_rotates(string impl)
    {
        using var w = Writer(impl, _log, -1, 2);
        Append(w, Fill('a', 5000));
        AssertFiles(("log", Fill('a', 5000)));
    }

    // ---------------------------------------------------------------- backups

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Backups_shift_and_the_oldest_is_dropped(string impl)
    {
        using var w = Writer(impl, _log, 10, 3);
        foreach (char c in "abcdef")
            Append(w, Fill(c, 10));
        AssertFiles(("log", Fill('f', 10)), ("log.0", Fill('e', 10)), ("log.1", Fill('d', 10)), ("log.2", Fill('c', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_missing_backup_leaves_a_gap_that_moves_along(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.1", Fill('C', 10));
        using var w = Writer(impl, _log, 10, 3);
        Append(w, Fill('x', 5));
        AssertFiles(("log", Fill('x', 5)), ("log.0", Fill('A', 10)), ("log.2", Fill('C', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_missing_middle_backup_keeps_the_last_one_in_place(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.1", Fill('C', 10));
        using var w = Writer(impl, _log, 10, 2);
        Append(w, Fill('x', 5));
        AssertFiles(("log", Fill('x', 5)), ("log.0", Fill('A', 10)), ("log.1", Fill('C', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Files_beyond_the_backup_count_are_left_alone(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.0", Fill('B', 10));
        Put("log.1", Fill('C', 10));
        Put("log.5", Fill('F', 10));
        Put("other", Fill('O', 10));
        using (var w = Writer(impl, _log, 10, 1))
            Append(w, Fill('x', 5));
        AssertFiles(("log", Fill('x', 5)), ("log.0", Fill('A', 10)), ("log.1", Fill('C', 10)),
            ("log.5", Fill('F', 10)), ("other", Fill('O', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Truncate_deletes_the_file_and_its_backups_only(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.0", Fill('B', 10));
        Put("log.1", Fill('C', 10));
        Put("log.2", Fill('D', 10));
        using var w = Writer(impl, _log, 10, 2, truncate: true);
        AssertFiles(("log", []), ("log.2", Fill('D', 10)));
        Assert.Equal(0, w.Offset);
        Assert.Equal(INodeOf(_log), w.INode);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Truncate_without_backups_keeps_old_backups(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.0", Fill('B', 10));
        using var w = Writer(impl, _log, 10, 0, truncate: true);
        AssertFiles(("log", []), ("log.0", Fill('B', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Thirty_two_backups_is_the_limit(string impl)
    {
        using (var w = Writer(impl, _log, 1, 32))
        {
            for (int i = 0; i < 40; i++)
                Append(w, [(byte)(i + 'A')]);
        }
        var expected = new List<(string, byte[]?)> { ("log", [39 + 'A']) };
        for (int k = 0; k < 32; k++)
            expected.Add(($"log.{k}", [(byte)(38 - k + 'A')]));
        AssertFiles(expected.ToArray());

        using var r = Reader(impl, _log, 32);
        Assert.Equal(Enumerable.Range(7, 33).Select(i => (byte)(i + 'A')).ToArray(), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void More_than_32_backups_is_refused(string impl)
    {
        AssertTooManyBackups(Factory(impl).NewWriter(_log, 100, 33, false, Mode0700).Error, "33");
        AssertTooManyBackups(Factory(impl).NewWriter(_log, 100, ulong.MaxValue, true, Mode0700).Error, "18446744073709551615");
        AssertTooManyBackups(Factory(impl).NewReader(_log, 33).Error, "33");
        AssertTooManyBackups(Factory(impl).NewReader(_log, ulong.MaxValue).Error, "18446744073709551615");
        // max_backups is a size_t: a value past 2^32 is refused, never truncated
        AssertTooManyBackups(Factory(impl).NewWriter(_log, 100, 1UL << 32, false, Mode0700).Error, "4294967296");
        AssertFiles();
    }

    // -------------------------------------------------------- inode and offset

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Inode_and_offset_follow_the_current_file(string impl)
    {
        Put("log", Fill('p', 30));
        using var w = Writer(impl, _log, 100, 2);
        Assert.Equal(_log, w.Path);
        ulong first = INodeOf(_log);
        Assert.Equal(first, w.INode);
        Assert.Equal(30, w.Offset);

        Append(w, Fill('a', 40));
        Append(w, Fill('b', 30));
        Assert.Equal(first, w.INode);
        Assert.Equal(100, w.Offset); // full, but the rotation waits for the next byte

        Append(w, Fill('c', 7));
        Assert.Equal(first, INodeOf(P("log.0")));
        Assert.Equal(INodeOf(_log), w.INode);
        Assert.NotEqual(first, w.INode);
        Assert.Equal(7, w.Offset);
        Assert.Equal(_log, w.Path);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Inode_after_a_rotation_without_backups_is_the_new_files(string impl)
    {
        using var w = Writer(impl, _log, 10, 0);
        Append(w, Fill('a', 15));
        Assert.Equal(INodeOf(_log), w.INode);
        Assert.Equal(5, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Writes_go_to_the_end_of_the_file_whatever_others_did(string impl)
    {
        using var w = Writer(impl, _log, 100, 2);
        Append(w, Ascii("one "));
        File.AppendAllText(_log, "OTHER ");
        Append(w, Ascii("two "));
        AssertFiles(("log", Ascii("one OTHER two ")));
        Assert.Equal(8, w.Offset); // its own bytes only

        File.WriteAllBytes(_log, []); // truncated behind its back: no hole, O_APPEND
        Append(w, Ascii("three"));
        AssertFiles(("log", Ascii("three")));
        Assert.Equal(13, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Rotation_is_decided_by_its_own_offset(string impl)
    {
        using var w = Writer(impl, _log, 20, 2);
        Append(w, Fill('a', 10));
        File.AppendAllText(_log, "0123456789");
        Append(w, Fill('b', 15)); // 10 + 15 > 20 by its count, though the file holds 20 already
        AssertFiles(("log", Fill('b', 5)), ("log.0", Cat(Fill('a', 10), Ascii("0123456789"), Fill('b', 10))));
        Assert.Equal(5, w.Offset);
    }

    // ---------------------------------------------------------------- reading

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Reading_back_from_any_recorded_position_returns_everything_written_after_it(string impl)
    {
        const int Backups = 3;
        var written = new List<byte>();
        var marks = new List<(ulong INode, long Offset, int Written, int Generation)>();
        int generation = 0;
        using (var w = Writer(impl, _log, 128, Backups))
        {
            ulong inode = w.INode;
            for (int i = 0; i < 60; i++)
            {
                marks.Add((w.INode, w.Offset, written.Count, generation));
                string line = $"line {i:D4} {new string('x', i * 7 % 37)}\n";
                if (i % 5 == 4)
                    line += $"more {i:D4}\n";
                var bytes = Ascii(line); // each write is at most 128 bytes: one rotation at most
                Append(w, bytes);
                written.AddRange(bytes);
                if (w.INode != inode)
                {
                    generation++;
                    inode = w.INode;
                }
            }
            marks.Add((w.INode, w.Offset, written.Count, generation));
        }
        Assert.True(generation > Backups + 2, $"only {generation} rotations");

        // The files on disk, oldest first.
        var names = Enumerable.Range(0, Backups).Reverse().Select(k => $"log.{k}").Append("log").ToArray();
        var files = names.Select(n => File.Exists(P(n))
            ? (Exists: true, INode: INodeOf(P(n)), Data: File.ReadAllBytes(P(n)))
            : (Exists: false, INode: 0UL, Data: Array.Empty<byte>())).ToArray();
        Assert.Equal(written.Skip(written.Count - files.Sum(f => f.Data.Length)), files.SelectMany(f => f.Data));

        foreach (var (inode, offset, count, gen) in marks)
        {
            using var r = Reader(impl, _log, Backups);
            Assert.True(r.Seek(inode, offset).Ok);
            var got = ReadAll(r, 37);

            // The file with that inode from the offset on, then the newer
            // ones; an inode no longer there (rotated out) means the oldest.
            int at = Array.FindIndex(files, f => f.Exists && f.INode == inode);
            if (at < 0)
                at = 0;
            var first = files[at].Data;
            var expected = first[Math.Min((int)offset, first.Length)..].Concat(files.Skip(at + 1).SelectMany(f => f.Data)).ToArray();
            Assert.Equal(expected, got);
            if (gen >= generation - Backups) // still on disk: exactly what was written since
                Assert.Equal(written.Skip(count).ToArray(), got);
        }
    }

    /// <summary>An inode number none of the files in the directory has.</summary>
    private ulong UnknownINode()
    {
        var used = Directory.EnumerateFiles(_dir).Select(INodeOf).ToHashSet();
        ulong n = 12345;
        while (used.Contains(n))
            n++;
        return n;
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void An_unknown_inode_reads_the_oldest_file_from_the_same_offset(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.True(r.Seek(UnknownINode(), 200).Ok);
        Assert.Equal(Cat(Fill('o', 56), Fill('m', 256), Fill('n', 256)), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void An_unknown_inode_with_the_oldest_backup_missing_is_a_bad_descriptor(string impl)
    {
        Put("log", Fill('n', 10));
        Put("log.0", Fill('m', 10));
        using var r = Reader(impl, _log, 2);
        Assert.Equal(4, r.Consume(new byte[4]).Value);  // log.0 left at 4
        Assert.True(r.Seek(INodeOf(_log), 0).Ok);       // now reading log
        ulong unknown = UnknownINode();
        AssertSystemError(r.Seek(unknown, 3).Error, 9, $"Unable to seek to inode {unknown} offset 3", "Bad file descriptor");
        // Moved to the (missing) oldest all the same: reading goes on from
        // there, with log.0 where it was left.
        Assert.Equal(Cat(Fill('m', 6), Fill('n', 10)), ReadAll(r));
        // Missing files have no inode: 0 matches none of them.
        AssertSystemError(r.Seek(0, 0).Error, 9, "Unable to seek to inode 0 offset 0", "Bad file descriptor");
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public async Task A_path_ends_at_its_first_NUL_as_a_C_string_does(string impl)
    {
        using (var w = Writer(impl, _log + "\0.x", 10, 1))
        {
            Assert.Equal(_log + "\0.x", w.Path);
            // Taking the backups' names whole would rename log onto itself, forever.
            var appended = await Bounded(() => w.Append(Fill('a', 15)));
            Assert.Equal(15, appended.Value);
        }
        AssertFiles(("log", Fill('a', 5)), ("log.0", Fill('a', 10)));
        using var r = Reader(impl, _log + "\0.x", 1);
        Assert.Equal(Fill('a', 15), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_negative_offset_is_an_error_and_keeps_the_position(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        var buf = new byte[300];
        Assert.Equal(300, r.Consume(buf).Value);
        ulong inode = INodeOf(_log);
        AssertSystemError(r.Seek(inode, -1).Error, 22, $"Unable to seek to inode {inode} offset 18446744073709551615", "Invalid argument");
        Assert.Equal(Cat(Fill('m', 212), Fill('n', 256)), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Seeking_past_the_end_of_a_file_goes_on_with_the_next(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.True(r.Seek(INodeOf(P("log.1")), 10_000).Ok);
        Assert.Equal(Cat(Fill('m', 256), Fill('n', 256)), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Seeking_to_the_newest_reads_only_it(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.True(r.Seek(INodeOf(_log), 250).Ok);
        Assert.Equal(Fill('n', 6), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Seeking_back_leaves_the_newer_files_where_they_were_read_to(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.Equal(768, ReadAll(r).Length);
        Assert.True(r.Seek(INodeOf(P("log.1")), 250).Ok);
        Assert.Equal(Fill('o', 6), ReadAll(r)); // log.0 and log stay at their end
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Small_buffers_cross_file_boundaries_then_the_end_stays_the_end(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        var buf = new byte[100];
        var all = new List<byte>();
        for (int i = 0; i < 8; i++)
        {
            var n = r.Consume(buf).Value;
            Assert.Equal(Math.Min(100, 768 - 100 * i), n);
            all.AddRange(buf[..(int)n]);
        }
        Assert.Equal(Cat(Fill('o', 256), Fill('m', 256), Fill('n', 256)), all.ToArray());
        Assert.Equal(0, r.Consume(buf).Value);
        Assert.Equal(0, r.Consume(buf).Value);

        // Once past the newest file the reader is done, even if it grows.
        File.AppendAllText(_log, "late");
        Assert.Equal(0, r.Consume(buf).Value);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void An_empty_buffer_reads_nothing_and_does_not_advance(string impl)
    {
        PutBackups();
        using var r = Reader(impl, _log, 2);
        Assert.Equal(0, r.Consume([]).Value);
        Assert.Equal(768, ReadAll(r).Length);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Missing_files_are_skipped_and_nothing_at_all_reads_as_the_end(string impl)
    {
        using (var r = Reader(impl, _log, 2))
            Assert.Equal(Array.Empty<byte>(), ReadAll(r));

        Put("log.1", Fill('o', 5));
        Put("log", Fill('n', 5));
        using (var r = Reader(impl, _log, 2))
            Assert.Equal(Cat(Fill('o', 5), Fill('n', 5)), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void The_reader_sees_only_as_many_backups_as_it_is_given(string impl)
    {
        PutBackups();
        using (var r = Reader(impl, _log, 0))
            Assert.Equal(Fill('n', 256), ReadAll(r));
        using (var r = Reader(impl, _log, 1))
            Assert.Equal(Cat(Fill('m', 256), Fill('n', 256)), ReadAll(r));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void The_reader_keeps_reading_the_files_it_opened_across_a_rotation(string impl)
    {
        using var w = Writer(impl, _log, 10, 2);
        Append(w, Fill('a', 10));
        Append(w, Fill('b', 4));
        using var r = Reader(impl, _log, 2); // log.0 = a*10, log = b*4, no log.1
        Append(w, Fill('c', 6));
        Append(w, Fill('d', 3));
        AssertFiles(("log", Fill('d', 3)), ("log.0", Cat(Fill('b', 4), Fill('c', 6))), ("log.1", Fill('a', 10)));
        // The same two files, under their old names: not the new log.
        Assert.Equal(Cat(Fill('a', 10), Fill('b', 4), Fill('c', 6)), ReadAll(r));
    }

    // ----------------------------------------------------------------- errors

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Opening_in_a_missing_directory_fails(string impl)
    {
        string path = P("nodir/log");
        AssertSystemError(Factory(impl).NewWriter(path, 100, 2, false, Mode0700).Error, 2,
            $"Unable to open file: {path}", "No such file or directory");
        // Truncating first: missing files are fine, the open is what fails.
        AssertSystemError(Factory(impl).NewWriter(path, 100, 2, true, Mode0700).Error, 2,
            $"Unable to open file: {path}", "No such file or directory");
        AssertFiles();
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Opening_a_directory_fails(string impl)
    {
        Directory.CreateDirectory(_log);
        AssertSystemError(Factory(impl).NewWriter(_log, 100, 2, false, Mode0700).Error, 21,
            $"Unable to open file: {_log}", "Is a directory");
        AssertFiles(("log", null));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Opening_below_a_regular_file_fails(string impl)
    {
        Put("file", Fill('f', 1));
        string path = P("file/log");
        AssertSystemError(Factory(impl).NewWriter(path, 100, 2, false, Mode0700).Error, 20,
            $"Unable to open file: {path}", "Not a directory");
        AssertSystemError(Factory(impl).NewReader(path, 2).Error, 20,
            $"Unable to open file: {path}", "Not a directory");
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Opening_a_name_too_long_or_a_symlink_loop_fails(string impl)
    {
        string longPath = P(new string('n', 300));
        AssertSystemError(Factory(impl).NewWriter(longPath, 100, 2, false, Mode0700).Error, 36,
            $"Unable to open file: {longPath}", "File name too long");
        File.CreateSymbolicLink(_log, _log);
        AssertSystemError(Factory(impl).NewWriter(_log, 100, 2, false, Mode0700).Error, 40,
            $"Unable to open file: {_log}", "Too many levels of symbolic links");
        AssertSystemError(Factory(impl).NewReader(_log, 2).Error, 40,
            $"Unable to open file: {_log}", "Too many levels of symbolic links");
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Opening_in_an_unwritable_directory_fails(string impl)
    {
        File.SetUnixFileMode(_dir, (UnixFileMode)0x16d); // 0555
        var error = AsNobody(() => Factory(impl).NewWriter(_log, 100, 2, false, Mode0700).Error);
        AssertSystemError(error, 13, $"Unable to open file: {_log}", "Permission denied");
        AssertFiles();
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Truncating_in_an_unwritable_directory_fails_to_delete(string impl)
    {
        Put("log", Fill('A', 10));
        File.SetUnixFileMode(P("log"), (UnixFileMode)0x1b6); // 0666: writable, but not deletable
        File.SetUnixFileMode(_dir, (UnixFileMode)0x16d);
        var error = AsNobody(() => Factory(impl).NewWriter(_log, 100, 2, true, Mode0700).Error);
        AssertSystemError(error, 13, $"Unable to delete file {_log}", "Permission denied");
        AssertFiles(("log", Fill('A', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Truncating_a_directory_fails_to_delete_it(string impl)
    {
        Put("log", Fill('A', 10));
        Put("log.0", Fill('B', 10));
        Directory.CreateDirectory(P("log.1"));
        AssertSystemError(Factory(impl).NewWriter(_log, 100, 2, true, Mode0700).Error, 21,
            $"Unable to delete file {_log}.1", "Is a directory");
        AssertFiles(("log.1", null)); // deleted in order up to the failure

        Directory.Delete(P("log.1"));
        Directory.CreateDirectory(_log);
        AssertSystemError(Factory(impl).NewWriter(_log, 100, 2, true, Mode0700).Error, 21,
            $"Unable to delete file {_log}", "Is a directory");
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public Task A_file_that_cannot_seek_fails(string impl) => WithCollectionsHeldOff(async dir =>
    {
        string fifo = Path.Combine(dir, "fifo");
        Assert.Equal(0, mkfifo(fifo, 0x180));
        int readEnd = open_(fifo, 0x800 /* O_RDONLY|O_NONBLOCK */);
        Assert.True(readEnd >= 0);
        try
        {
            // With a reader present opening for writing does not block; bound it anyway.
            var error = await Bounded(() => Factory(impl).NewWriter(fifo, 100, 2, false, Mode0700).Error);
            AssertSystemError(error, 29, $"Unable to determine current file offset: {fifo}", "Illegal seek");
        }
        finally
        {
            close_(readEnd);
        }
        Assert.Empty(OpenDescriptors());
    });

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_failed_write_is_an_error_and_does_not_move_the_offset(string impl)
    {
        File.CreateSymbolicLink(_log, "/dev/full");
        using var w = Writer(impl, _log, 0, 0);
        Assert.Equal(0, w.Offset);
        AssertSystemError(w.Append(Ascii("hello")).Error, 28, $"Unable to write to file {_log}", "No space left on device");
        Assert.Equal(0, w.Offset);
        Assert.Equal(0, w.Append([]).Value);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_failed_rename_fails_the_append_after_writing_what_fit_and_recovers(string impl)
    {
        Directory.CreateDirectory(P("log.0/blocker"));
        using var w = Writer(impl, _log, 10, 1);
        ulong first = w.INode;
        AssertSystemError(w.Append(Fill('a', 15)).Error, 21, $"Unable to rename {_log} to {_log}.0", "Is a directory");
        Assert.Equal(first, w.INode);
        Assert.Equal(10, w.Offset);
        AssertFiles(("log", Fill('a', 10)), ("log.0", null));

        AssertSystemError(w.Append(Fill('b', 1)).Error, 21, $"Unable to rename {_log} to {_log}.0", "Is a directory");
        AssertFiles(("log", Fill('a', 10)), ("log.0", null));

        Directory.Delete(P("log.0"), recursive: true);
        Append(w, Fill('c', 3));
        AssertFiles(("log", Fill('c', 3)), ("log.0", Fill('a', 10)));
        Assert.Equal(3, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_failed_shift_of_an_older_backup_moves_nothing(string impl)
    {
        Put("log.0", Fill('B', 10));
        Directory.CreateDirectory(P("log.1/blocker"));
        using var w = Writer(impl, _log, 10, 2);
        Append(w, Fill('a', 10));
        AssertSystemError(w.Append(Fill('b', 1)).Error, 21, $"Unable to rename {_log}.0 to {_log}.1", "Is a directory");
        AssertFiles(("log", Fill('a', 10)), ("log.0", Fill('B', 10)), ("log.1", null));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_rotation_in_an_unwritable_directory_fails(string impl)
    {
        using var w = Writer(impl, _log, 10, 1);
        Append(w, Fill('a', 10));
        using var w0 = Writer(impl, P("log0"), 10, 0);
        Append(w0, Fill('a', 10));
        File.SetUnixFileMode(_dir, (UnixFileMode)0x16d);

        var renameError = AsNobody(() => w.Append(Fill('b', 1)).Error);
        AssertSystemError(renameError, 13, $"Unable to rename {_log} to {_log}.0", "Permission denied");
        var removeError = AsNobody(() => w0.Append(Fill('b', 1)).Error);
        AssertSystemError(removeError, 13, $"Unable to remove {P("log0")}", "Permission denied");
        AssertFiles(("log", Fill('a', 10)), ("log0", Fill('a', 10)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Without_backups_a_directory_in_the_way_fails_the_removal(string impl)
    {
        using var w = Writer(impl, _log, 10, 0);
        Append(w, Fill('a', 10));
        File.Delete(_log);
        Directory.CreateDirectory(_log);
        AssertSystemError(w.Append(Fill('b', 1)).Error, 21, $"Unable to remove {_log}", "Is a directory");
        Assert.Equal(10, w.Offset);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_failed_reopen_keeps_the_old_file_current_until_a_later_rotation_succeeds(string impl)
    {
        string sub = P("sub");
        Directory.CreateDirectory(sub);
        string log = Path.Combine(sub, "log");
        using var w = Writer(impl, log, 10, 1);
        Append(w, Fill('a', 8));
        ulong first = w.INode;
        Directory.Delete(sub, recursive: true);

        // Renames of missing files are skipped; then the new file cannot be made.
        AssertSystemError(w.Append(Fill('b', 5)).Error, 2, $"Unable to open file: {log}", "No such file or directory");
        Assert.Equal(first, w.INode);
        Assert.Equal(10, w.Offset);
        AssertSystemError(w.Append(Fill('c', 1)).Error, 2, $"Unable to open file: {log}", "No such file or directory");
        Assert.Equal(10, w.Offset);

        Directory.CreateDirectory(sub);
        Append(w, Fill('d', 4));
        Assert.Equal(INodeOf(log), w.INode);
        Assert.Equal(4, w.Offset);
        Assert.Equal(Fill('d', 4), File.ReadAllBytes(log));
        Assert.Equal(new[] { "log" }, Directory.EnumerateFileSystemEntries(sub).Select(p => Path.GetFileName(p)));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public Task Reading_an_unreadable_backup_fails(string impl) => WithCollectionsHeldOff(dir =>
    {
        string log = Path.Combine(dir, "log");
        File.WriteAllBytes(log, Fill('n', 10));
        File.WriteAllBytes(log + ".0", Fill('m', 10));
        File.SetUnixFileMode(log + ".0", UnixFileMode.None);
        var error = AsNobody(() => Factory(impl).NewReader(log, 2).Error);
        AssertSystemError(error, 13, $"Unable to open file: {log}.0", "Permission denied");
        Assert.Empty(OpenDescriptors()); // nor log's, opened first
        return Task.CompletedTask;
    });

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Reading_a_directory_fails_and_drops_what_was_read_before(string impl)
    {
        Put("log.0", Fill('m', 10));
        Directory.CreateDirectory(_log);
        using var r = Reader(impl, _log, 1);
        var buf = new byte[100];
        AssertSystemError(r.Consume(buf).Error, 21, $"Unable to read from file {_log}", "Is a directory");
        AssertSystemError(r.Consume(buf).Error, 21, $"Unable to read from file {_log}", "Is a directory");
    }

    // ------------------------------------------------------------------ modes

    public static TheoryData<string, int> Modes()
    {
        var d = new TheoryData<string, int>();
        foreach (var impl in VirImplementations.Names)
            foreach (int mode in new[] { 0x180 /* 0600 */, 0x1a0 /* 0640 */, 0x1a4 /* 0644 */, 0x1c0 /* 0700 */, 0x1b6 /* 0666 */, 0x1ff /* 0777 */, 0x0 })
                d.Add(impl, mode);
        return d;
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void New_files_get_the_mode_less_the_umask(string impl, int mode)
    {
        var expected = (UnixFileMode)mode & ~Umask();
        using (var w = Writer(impl, _log, 10, 1, mode: (uint)mode))
        {
            Assert.Equal(expected, File.GetUnixFileMode(_log));
            Append(w, Fill('a', 15)); // the file made at rotation too
            Assert.Equal(expected, File.GetUnixFileMode(_log));
            Assert.Equal(expected, File.GetUnixFileMode(P("log.0")));
        }
        using (var w = Writer(impl, _log, 10, 1, truncate: true, mode: (uint)mode))
            Assert.Equal(expected, File.GetUnixFileMode(_log));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void An_existing_file_keeps_its_mode(string impl)
    {
        Put("log", Fill('p', 5));
        File.SetUnixFileMode(_log, (UnixFileMode)0x184); // 0604
        using var w = Writer(impl, _log, 10, 1, mode: 0x180);
        Append(w, Fill('a', 2));
        Assert.Equal((UnixFileMode)0x184, File.GetUnixFileMode(_log));
    }

    // ------------------------------------------------------------ descriptors

    [Theory]
    [MemberData(nameof(Implementations))]
    public Task The_writer_holds_one_close_on_exec_append_descriptor(string impl) => WithCollectionsHeldOff(dir =>
    {
        string log = Path.Combine(dir, "log");
        using (var w = Writer(impl, log, 10, 1))
        {
            Assert.Equal(new[] { (log, O_WRONLY | O_APPEND | O_CLOEXEC) }, OpenDescriptors());
            Append(w, Fill('a', 25)); // two rotations: each closes the file it leaves
            Assert.Equal(new[] { (log, O_WRONLY | O_APPEND | O_CLOEXEC) }, OpenDescriptors());
        }
        Assert.Empty(OpenDescriptors());
        return Task.CompletedTask;
    });

    [Theory]
    [MemberData(nameof(Implementations))]
    public Task The_reader_holds_one_close_on_exec_read_descriptor_per_existing_file(string impl) => WithCollectionsHeldOff(dir =>
    {
        string log = Path.Combine(dir, "log");
        File.WriteAllBytes(log, Fill('n', 1));
        File.WriteAllBytes(log + ".1", Fill('o', 1));
        using (var r = Reader(impl, log, 3))
            Assert.Equal(new[] { (log, O_CLOEXEC), (log + ".1", O_CLOEXEC) }, OpenDescriptors());
        Assert.Empty(OpenDescriptors());
        return Task.CompletedTask;
    });

    // ------------------------------------------------------------- hot path

    /// <summary>virtlogd appends every chunk it reads from a domain: the
    /// managed side of that call must not allocate.</summary>
    [Theory]
    [MemberData(nameof(Implementations))]
    public void Appending_without_rotation_allocates_nothing(string impl)
    {
        using var w = Writer(impl, _log, 0, 0);
        var chunk = Fill('a', 64);
        AppendMany(w, chunk, 100); // warm up
        long allocated = AllocationMeter.BytesOnThisThread(() => AppendMany(w, chunk, 2000));
        Assert.Equal(0, allocated);
        Assert.Equal(2100 * 64, w.Offset);
    }

    private static void AppendMany(IVirRotatingFileWriter w, byte[] chunk, int times)
    {
        for (int i = 0; i < times; i++)
        {
            if (!w.Append(chunk).Ok)
                throw new InvalidOperationException("append failed");
        }
    }
}
