using System.Diagnostics;
using System.Globalization;
using Libvirt.Host;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>libvirt.so.0 initialised in the test process, as a daemon does
/// at start-up, so native adapters can be called (and report errors).</summary>
public sealed class LibvirtFixture
{
    private static readonly Lazy<string?> s_failure = new(() =>
    {
        if (LibvirtRuntime.CheckVersion() is { } why)
            return why;
        return LibvirtRuntime.Initialize() ? null : "libvirt's error layer failed to initialise";
    });

    public LibvirtFixture()
    {
        if (s_failure.Value is { } why)
            throw new InvalidOperationException(why);
    }
}

/// <summary>A directory under /tmp, removed with its contents.</summary>
public sealed class TempDirectory : IDisposable
{
    public string Path { get; }

    public TempDirectory(string prefix)
    {
        Path = System.IO.Path.Combine("/tmp", prefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>One line of /proc/locks (blocked waiters, "->", are skipped).</summary>
public readonly record struct ProcLock(string Kind, string Access, int Pid, uint DevMajor, uint DevMinor, ulong Inode, long Start, string End)
{
    public bool IsOn(Libc.FileId file) => Inode == file.Inode && DevMajor == file.DevMajor && DevMinor == file.DevMinor;
    public override string ToString() => $"{Kind} {Access} pid {Pid} {DevMajor:x}:{DevMinor:x}:{Inode} {Start}-{End}";
}

public static class ProcLocks
{
    public static List<ProcLock> Read()
    {
        var list = new List<ProcLock>();
        foreach (var line in File.ReadAllLines("/proc/locks"))
        {
            // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 0"
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8 || f[1] == "->")
                continue;
            var dev = f[5].Split(':');
            list.Add(new ProcLock(f[1], f[3], int.Parse(f[4], CultureInfo.InvariantCulture),
                uint.Parse(dev[0], NumberStyles.HexNumber), uint.Parse(dev[1], NumberStyles.HexNumber),
                ulong.Parse(dev[2], CultureInfo.InvariantCulture), long.Parse(f[6], CultureInfo.InvariantCulture), f[7]));
        }
        return list;
    }

    /// <summary>The locks held on <paramref name="file"/>, by anyone.</summary>
    public static List<ProcLock> On(Libc.FileId file) => Read().Where(l => l.IsOn(file)).ToList();

    /// <summary>The locks this process holds on <paramref name="file"/>.</summary>
    public static List<ProcLock> Mine(Libc.FileId file) => On(file).Where(l => l.Pid == Environment.ProcessId).ToList();

    /// <summary>The file's identity (to find its locks, also once unlinked).</summary>
    public static Libc.FileId Identify(string path)
    {
        Assert.True(Libc.TryStat(path, out var id, out int errno), $"stat {path}: errno {errno}");
        return id;
    }
}

/// <summary>
/// Watches /proc/locks on a background thread until disposed, recording
/// any moment one of the expected locks of this process was missing: a lock
/// handed over (exec restart) must never be released in between.
/// </summary>
public sealed class LockWatcher : IDisposable
{
    private readonly (Libc.FileId File, string Access)[] _expected;
    private readonly Thread _thread;
    private volatile bool _stop;
    private readonly List<string> _gaps = new();
    public int Polls { get; private set; }

    public LockWatcher(params (Libc.FileId File, string Access)[] expected)
    {
        _expected = expected;
        Check(); // synchronously once, so a watcher started late fails loudly
        _thread = new Thread(Run) { IsBackground = true, Name = "lock watcher" };
        _thread.Start();
    }

    private void Check()
    {
        var locks = ProcLocks.Read();
        Polls++;
        foreach (var (file, access) in _expected)
        {
            if (!locks.Any(l => l.IsOn(file) && l.Pid == Environment.ProcessId && l.Kind == "POSIX" && l.Access == access))
                lock (_gaps) _gaps.Add($"poll {Polls}: no POSIX {access} lock of pid {Environment.ProcessId} on inode {file.Inode}");
        }
    }

    private void Run()
    {
        var sw = Stopwatch.StartNew();
        while (!_stop && sw.Elapsed < TimeSpan.FromSeconds(60))
            Check();
    }

    /// <summary>Stops (bounded) and returns every gap seen.</summary>
    public IReadOnlyList<string> Stop()
    {
        _stop = true;
        Assert.True(_thread.Join(TimeSpan.FromSeconds(10)), "lock watcher did not stop");
        Check();
        lock (_gaps) return _gaps.ToList();
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join(TimeSpan.FromSeconds(10));
    }
}

/// <summary>
/// Another process holding a POSIX record lock (fcntl F_SETLK, byte 0,
/// length 1, as libvirt's virFileLock) on a file, until disposed: for what
/// only another process can show, since these locks never conflict within
/// one process. Perl (perl-base is essential in Debian) keeps it small.
/// </summary>
public sealed class FcntlLockHolder : IDisposable
{
    private const string Script = """
        use strict; use Fcntl;
        my ($path, $type) = @ARGV;
        alarm 120;  # never outlive a test run
        sysopen(my $fh, $path, O_RDWR | O_CREAT, 0600) or die "open $path: $!\n";
        # struct flock on Linux LP64: short type, short whence, off_t start, off_t len, pid_t pid
        my $fl = pack("s s x4 q q l x4", $type eq "shared" ? F_RDLCK : F_WRLCK, 0, 0, 1, 0);
        fcntl($fh, F_SETLK, $fl) or die "lock $path: $!\n";
        $| = 1; print "locked\n";
        my $ignored = <STDIN>;
        """;

    private readonly Process _p;
    public int Pid => _p.Id;

    private FcntlLockHolder(Process p) => _p = p;

    public static FcntlLockHolder Start(string path, bool shared)
    {
        var psi = new ProcessStartInfo("perl") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-e");
        psi.ArgumentList.Add(Script);
        psi.ArgumentList.Add(path);
        psi.ArgumentList.Add(shared ? "shared" : "exclusive");
        var p = Process.Start(psi)!;
        var holder = new FcntlLockHolder(p);
        var line = p.StandardOutput.ReadLineAsync();
        if (!line.Wait(TimeSpan.FromSeconds(15)) || line.Result != "locked")
        {
            string err = p.WaitForExit(2000) ? p.StandardError.ReadToEnd() : "(still running)";
            holder.Dispose();
            throw new InvalidOperationException($"lock holder for {path} did not lock: {err}");
        }
        return holder;
    }

    public void Dispose()
    {
        try { _p.StandardInput.Close(); } catch (IOException) { }
        if (!_p.WaitForExit(5000))
        {
            _p.Kill();
            _p.WaitForExit(5000);
        }
        _p.Dispose();
    }
}
