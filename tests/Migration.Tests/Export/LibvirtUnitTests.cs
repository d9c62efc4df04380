using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Export;

/// <summary>
/// libvirt's own tests of the three subsystems, unmodified, run against
/// libvirt.so.0 alone ("libvirt"), with libvirt-managed.so preloaded
/// ("preload"), and linked with libvirt-managed.a ("static"). Passing is not
/// enough: the loader's bindings must show the test's calls reaching the
/// implementation the run is about, and libvirt.so.0's own calls to the event
/// loop reaching it too.
/// </summary>
public sealed partial class LibvirtUnitTests
{
    /// <summary>test, its case count (all must pass), the functions its calls must be seen binding.</summary>
    public static TheoryData<string, int, string[], string> Cases
    {
        get
        {
            var d = new TheoryData<string, int, string[], string>();
            foreach (var preload in new[] { "libvirt", "preload", "static" })
            {
                d.Add("virlockspacetest", 7, ["virLockSpaceNew", "virLockSpaceCreateResource", "virLockSpaceDeleteResource",
                    "virLockSpaceAcquireResource", "virLockSpaceReleaseResource", "virLockSpaceFree"], preload);
                d.Add("virrotatingfiletest", 13, ["virRotatingFileWriterNew", "virRotatingFileWriterAppend", "virRotatingFileWriterFree",
                    "virRotatingFileReaderNew", "virRotatingFileReaderSeek", "virRotatingFileReaderConsume", "virRotatingFileReaderFree"], preload);
                d.Add("eventtest", 15, ["virEventRegisterDefaultImpl", "virEventRunDefaultImpl"], preload);
            }
            return d;
        }
    }

    [GeneratedRegex(@"(?m)^\s*(\d+)\) ")]
    private static partial Regex CaseLine();

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task PassesAndBindsToTheLibraryUnderTest(string test, int cases, string[] symbols, string mode)
    {
        bool preload = mode == "preload", staticTwins = mode == "static";
        var exe = await LibvirtUnitTestBuild.ExecutableAsync(test, staticTwins);
        var dir = Path.GetDirectoryName(exe)!;
        var lib = DaemonPaths.ExportLibrary;
        if (preload)
            Assert.True(File.Exists(lib), $"{lib} not found: run ./build.sh publish");
        // where the twins' calls must land: our library, the test executable itself, or libvirt.so.0
        Func<string, bool> expected = preload ? to => to == lib : staticTwins ? to => to == exe : LdBinding.IsLibvirt;
        // what an earlier run left (virlockspacetest expects to create its directory)
        foreach (var old in Directory.GetDirectories(dir)) Directory.Delete(old, recursive: true);
        var ldPrefix = Path.Combine(dir, $"ld-{mode}-{Guid.NewGuid():N}");
        var env = new Dictionary<string, string?>
        {
            ["VIR_TEST_VERBOSE"] = "1",
            ["LD_DEBUG"] = "bindings",
            ["LD_DEBUG_OUTPUT"] = ldPrefix,
            ["LD_PRELOAD"] = preload ? lib : null,
            ["LIBVIRT_DEBUG"] = null,
        };
        var r = await LibvirtUnitTestBuild.RunAsync(exe, [], env, TimeSpan.FromMinutes(2), dir);
        string output = r.Stdout + r.Stderr;

        Assert.True(r.ExitCode == 0, $"{test} ({mode}) exited {r.ExitCode}:\n{output}");
        var ran = CaseLine().Matches(output).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();
        Assert.True(ran == cases, $"{test} ({mode}) ran {ran} cases, expected {cases}:\n{output}");
        Assert.DoesNotContain("FAILED", output);

        var bindings = LdBinding.Read(ldPrefix);
        var fromTest = bindings.Where(b => b.From == exe).ToList();
        if (staticTwins)
        {
            // linked in: the test's calls are resolved at link time, none left for the loader to bind elsewhere
            var nm = await LibvirtUnitTestBuild.RunAsync("nm", ["--defined-only", exe], null, TimeSpan.FromSeconds(30));
            foreach (var symbol in symbols)
                Assert.Matches($@"(?m) T {symbol}$", nm.Stdout);
            Assert.DoesNotContain(fromTest, b => LdBinding.IsTwinSymbol(b.Symbol));
        }
        else
        {
            foreach (var symbol in symbols)
            {
                var b = fromTest.Where(x => x.Symbol == symbol).ToList();
                Assert.True(b.Count > 0, $"no binding of {symbol} from {test} seen: {string.Join("\n", fromTest)}");
                Assert.All(b, x => Assert.True(expected(x.To), $"{test} ({mode}): {x}"));
            }
            // nothing of the test's reaches the other library for these functions
            Assert.All(fromTest.Where(b => LdBinding.IsTwinSymbol(b.Symbol)), x => Assert.True(expected(x.To), $"{test} ({mode}): {x}"));
        }
        // libvirt's own internal calls to the loop (virNetDaemonRun's, virNetDaemonNew's) reach the same implementation
        var internalRun = bindings.Where(b => LdBinding.IsLibvirt(b.From) && b.Symbol == "virEventRunDefaultImpl").ToList();
        Assert.NotEmpty(internalRun);
        Assert.All(internalRun, x => Assert.True(expected(x.To), $"{test} ({mode}): {x}"));
    }
}
