using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Export;

/// <summary>
/// libvirt's own tests of the three subsystems, unmodified, run once against
/// libvirt.so.0 alone and once with libvirt-managed.so preloaded. Passing is
/// not enough: the loader's bindings must show the test's calls reaching the
/// library the run is about (ours when preloaded, libvirt's otherwise), and
/// libvirt.so.0's own calls to the event loop reaching ours too.
/// </summary>
public sealed partial class LibvirtUnitTests
{
    /// <summary>test, its case count (all must pass), the functions its calls must be seen binding.</summary>
    public static TheoryData<string, int, string[], bool> Cases
    {
        get
        {
            var d = new TheoryData<string, int, string[], bool>();
            foreach (bool preload in new[] { false, true })
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
    public async Task PassesAndBindsToTheLibraryUnderTest(string test, int cases, string[] symbols, bool preload)
    {
        var exe = await LibvirtUnitTestBuild.ExecutableAsync(test);
        var dir = Path.GetDirectoryName(exe)!;
        var lib = DaemonPaths.ExportLibrary;
        if (preload)
            Assert.True(File.Exists(lib), $"{lib} not found: run ./build.sh publish");
        // what an earlier run left (virlockspacetest expects to create its directory)
        foreach (var old in Directory.GetDirectories(dir)) Directory.Delete(old, recursive: true);
        var ldPrefix = Path.Combine(dir, $"ld-{(preload ? "preload" : "plain")}-{Guid.NewGuid():N}");
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

        Assert.True(r.ExitCode == 0, $"{test} exited {r.ExitCode}:\n{output}");
        var ran = CaseLine().Matches(output).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();
        Assert.True(ran == cases, $"{test} ran {ran} cases, expected {cases}:\n{output}");
        Assert.DoesNotContain("FAILED", output);

        var bindings = LdBinding.Read(ldPrefix);
        var fromTest = bindings.Where(b => b.From == exe || b.From == "./" + test).ToList();
        foreach (var symbol in symbols)
        {
            var b = fromTest.Where(x => x.Symbol == symbol).ToList();
            Assert.True(b.Count > 0, $"no binding of {symbol} from {test} seen: {string.Join("\n", fromTest)}");
            foreach (var x in b)
                Assert.True(preload ? x.To == lib : LdBinding.IsLibvirt(x.To), $"{test}: {x}");
        }
        // nothing of the test's reaches the other library for these functions
        foreach (var x in fromTest.Where(b => LdBinding.IsTwinSymbol(b.Symbol)))
            Assert.True(preload ? x.To == lib : LdBinding.IsLibvirt(x.To), $"{test}: {x}");
        // libvirt's own internal calls to the loop (virNetDaemonRun's, virNetDaemonNew's) reach ours when preloaded
        var internalRun = bindings.Where(b => LdBinding.IsLibvirt(b.From) && b.Symbol == "virEventRunDefaultImpl").ToList();
        Assert.NotEmpty(internalRun);
        Assert.All(internalRun, x => Assert.True(preload ? x.To == lib : LdBinding.IsLibvirt(x.To), x.ToString()));
    }
}
