using System.Diagnostics;
using Libvirt.Host;
using Libvirt.Util;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>
/// The pid file (libvirt's src/util/virpidfile.c: virPidFileAcquirePath, virPidFileReleasePath) against
/// libvirt.so.0's and the managed twin, with the same expectations: the file's mode and text, the lock
/// another process sees, truncation of an old pid, close-on-exec, and the errors (as whole values) for a
/// missing directory and a file another process holds.
/// </summary>
public sealed class VirPidFileContractTests : IDisposable
{
    public static TheoryData<string> Implementations => new() { VirImplementations.Native, VirImplementations.Managed };

    // the native adapter reports through libvirt's error layer
    private static readonly bool LibvirtReady = LibvirtRuntime.Initialize();

    private readonly string _dir = Directory.CreateTempSubdirectory("virpidfile-").FullName;

    public VirPidFileContractTests() => Assert.True(LibvirtReady, "libvirt initialisation failed");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static IVirPidFile New(string impl) => impl == VirImplementations.Native ? new VirPidFileNative() : new VirPidFileManaged();

    private const string LockProbe = """
        import fcntl, sys
        f = open(sys.argv[1], 'r+')
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            print('free')
        except OSError as e:
            print('locked')
        """;

    /// <summary>What another process sees: can it take the write lock on the first byte?</summary>
    private static string Probe(string path)
    {
        var psi = new ProcessStartInfo("python3", ["-c", LockProbe, path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string outText = p.StandardOutput.ReadToEnd().Trim();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(20)), "lock probe did not exit");
        return outText;
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Acquire_writes_the_pid_without_newline_and_holds_the_lock_until_release(string impl)
    {
        var path = Path.Combine(_dir, "daemon.pid");
        File.WriteAllText(path, "9999999999\n"); // an old, longer pid is replaced, not overwritten in part
        var fd = Acquired(New(impl).AcquirePath(path, false, 4242));
        // probed before this process opens the file again: closing any descriptor of it drops the process's fcntl locks
        Assert.Equal("locked", Probe(path));
        Assert.Equal("4242", File.ReadAllText(path));
        Assert.Equal(Libc.FD_CLOEXEC, Libc.fcntl(fd!, Libc.F_GETFD, 0) & Libc.FD_CLOEXEC);

        Assert.Equal(0, VirPidFile.ReleasePath(path, fd));
        Assert.False(File.Exists(path), "released pid file left behind");
        Assert.True(fd!.IsClosed);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_new_file_is_0644_under_the_umask(string impl)
    {
        var path = Path.Combine(_dir, "new.pid");
        uint old = Libc.umask(0x12 /* 022 */);
        SafeFileHandle? fd;
        try { fd = Acquired(New(impl).AcquirePath(path, false, 7)); }
        finally { Libc.umask(old); }
        Assert.Equal((UnixFileMode)0x1A4, File.GetUnixFileMode(path));
        VirPidFile.ReleasePath(path, fd);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_file_another_process_holds_is_refused(string impl)
    {
        var path = Path.Combine(_dir, "held.pid");
        // the first holder is the other implementation's, in another process: a python lockf holder
        File.WriteAllText(path, "1");
        var holder = Process.Start(new ProcessStartInfo("python3", ["-c",
            "import fcntl, sys, time\nf = open(sys.argv[1], 'r+')\nfcntl.lockf(f, fcntl.LOCK_EX, 1, 0)\nprint('held', flush=True)\ntime.sleep(60)", path])
            { RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("held", holder.StandardOutput.ReadLine());
            var r = New(impl).AcquirePath(path, false, 5);
            Assert.False(r.Ok, "acquired a pid file another process holds");
            Assert.Equal(VirError.System(VirErrorDomain.None, 11 /* EAGAIN */, $"Failed to acquire pid file '{path}'"), r.Error);
            Assert.Equal("1", File.ReadAllText(path)); // untouched
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit(TimeSpan.FromSeconds(10));
        }
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void A_missing_directory_is_an_open_error(string impl)
    {
        var path = Path.Combine(_dir, "no", "such.pid");
        var r = New(impl).AcquirePath(path, false, 5);
        Assert.False(r.Ok);
        Assert.Equal(VirError.System(VirErrorDomain.None, 2 /* ENOENT */, $"Failed to open pid file '{path}'"), r.Error);
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void An_empty_path_is_no_pid_file(string impl)
    {
        var r = New(impl).AcquirePath("", false, 5);
        Assert.True(r.Ok, r.Error?.Message);
        Assert.Null(r.Value);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    private static SafeFileHandle? Acquired(VirResult<SafeFileHandle?> r)
    {
        Assert.True(r.Ok, r.Error?.Message);
        return r.Value;
    }
}
