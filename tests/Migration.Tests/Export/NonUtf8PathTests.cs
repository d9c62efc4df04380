using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Export;

/// <summary>
/// On Linux a path is bytes: a lock space directory, a resource name and a
/// rotating log whose names are not UTF-8 (0xff, 0xfe) must reach the file
/// system as they are, and what the functions hand back (the directory, the
/// writer's path, the errors naming them) must be C's bytes.
/// Export/nonutf8paths.c drives libvirt's functions and prints all of it in
/// hex; its output with libvirt-managed.so preloaded must equal its output
/// against libvirt.so.0 alone.
/// </summary>
public sealed class NonUtf8PathTests
{
    private static async Task<(string Stdout, string Stderr)> RunAsync(string exe, bool preload)
    {
        // relative paths, each run in a directory of its own: the outputs compare as they are
        var dir = Path.Combine(Path.GetTempPath(), $"nonutf8-{(preload ? "preload" : "libvirt")}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var env = new Dictionary<string, string?>
            {
                ["LD_PRELOAD"] = preload ? DaemonPaths.ExportLibrary : null,
                ["LIBVIRT_DEBUG"] = null,
                ["LIBVIRT_LOG_OUTPUTS"] = null,
            };
            var r = await LibvirtUnitTestBuild.RunAsync(exe, [], env, TimeSpan.FromMinutes(1), dir);
            Assert.True(r.ExitCode == 0, $"nonutf8paths ({(preload ? "preload" : "libvirt")}) exited {r.ExitCode}:\n{r.Stdout}{r.Stderr}");
            return (r.Stdout, r.Stderr);
        }
        finally
        {
            // not Directory.Delete: .NET cannot name the files it would have to remove
            await LibvirtUnitTestBuild.RunAsync("rm", ["-rf", "--", dir], null, TimeSpan.FromMinutes(1));
        }
    }

    [Fact]
    public async Task Lock_space_and_rotating_file_at_non_UTF8_paths_give_Cs_bytes()
    {
        Assert.True(File.Exists(DaemonPaths.ExportLibrary), $"{DaemonPaths.ExportLibrary} not found: run ./build.sh publish");
        var exe = await LibvirtUnitTestBuild.ProgramAsync("Export/nonutf8paths.c");
        var c = await RunAsync(exe, preload: false);
        var ours = await RunAsync(exe, preload: true);

        // the runs reached the implementation they are about
        Assert.Contains("impl /lib/x86_64-linux-gnu/libvirt.so.0", c.Stderr);
        Assert.Contains($"impl {DaemonPaths.ExportLibrary}", ours.Stderr);
        // what C gives, checked here so the comparison below is of something:
        // "lock\xff\xfespace", its file "res\xff", the log "log\xff/file\xfe.log"
        Assert.Contains("virLockSpaceGetDirectory 6c6f636bfffe7370616365\n", c.Stdout);
        Assert.Contains("path 6c6f636bfffe73706163652f726573ff\n  exists 1\n", c.Stdout);
        Assert.Contains("virRotatingFileWriterGetPath 6c6f67ff2f66696c65fe2e6c6f67\n", c.Stdout);
        Assert.Contains("path 6c6f67ff2f66696c65fe2e6c6f672e31\n  exists 1\n", c.Stdout);
        Assert.Equal(c.Stdout, ours.Stdout);
    }
}
