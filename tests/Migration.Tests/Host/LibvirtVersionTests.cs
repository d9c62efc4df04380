using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Host;

/// <summary>
/// Ours binds libvirt's private ABI of exactly 9.0.0, so any other
/// libvirt.so.0 must be refused with a clear message before anything else
/// runs. A stand-in libvirt.so.0 that reports another version is put first
/// on the library path.
/// </summary>
public class LibvirtVersionTests
{
    public static TheoryData<string> Daemons => new() { "virtlockd", "virtlogd" };

    private static string BuildFakeLibvirt(string dir, string version)
    {
        var parts = version.Split('.').Select(int.Parse).ToArray();
        long number = parts[0] * 1_000_000L + parts[1] * 1000 + parts[2];
        string src = Path.Combine(dir, "fake.c");
        File.WriteAllText(src,
            "int virGetVersion(unsigned long *lib, const char *type, unsigned long *typeVer)\n" +
            $"{{ (void)type; (void)typeVer; if (lib) *lib = {number}UL; return 0; }}\n");
        string so = Path.Combine(dir, "libvirt.so.0");
        using var cc = Process.Start(new ProcessStartInfo("gcc", $"-shared -fPIC -Wl,-soname,libvirt.so.0 -o \"{so}\" \"{src}\"")
        {
            RedirectStandardError = true,
        })!;
        string err = cc.StandardError.ReadToEnd();
        Assert.True(cc.WaitForExit(60_000), "gcc did not finish");
        Assert.True(cc.ExitCode == 0, err);
        return dir;
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task Another_libvirt_is_refused_with_a_clear_message(string daemon)
    {
        string bin = Path.Combine(DaemonPaths.RepoRoot, "artifacts", "bin", daemon);
        Assert.True(File.Exists(bin), $"{bin} missing: run ./build.sh publish");
        string dir = Directory.CreateTempSubdirectory("fake-libvirt").FullName;
        try
        {
            BuildFakeLibvirt(dir, "9.1.0");
            var psi = new ProcessStartInfo(bin, "-t 1")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            psi.Environment["LD_LIBRARY_PATH"] = dir;
            using var p = Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
            Assert.Equal(1, p.ExitCode);
            Assert.Contains("libvirt.so.0 is version 9.1.0, but this build requires exactly 9.0.0", await stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
