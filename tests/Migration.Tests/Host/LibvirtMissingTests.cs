using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Host;

/// <summary>
/// The refusal of a wrong libvirt.so.0 beyond a wrong version: a library that says 9.0.0 but lacks the
/// private ABI ours binds (LIBVIRT_PRIVATE_9.0.0), and no usable libvirt.so.0 at all. Either way the daemon
/// says why and exits 1; it must not die of an unhandled EntryPointNotFoundException or DllNotFoundException
/// (exit 134).
/// </summary>
public class LibvirtMissingTests
{
    public static TheoryData<string> Daemons => new() { "virtlockd", "virtlogd" };

    private const string SystemLibvirt = "/usr/lib/x86_64-linux-gnu/libvirt.so.0";

    private static async Task<(int Code, string Stderr)> RunAsync(string file, string[] args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(true); throw new TimeoutException($"{file} did not exit within 30 s"); }
        return (p.ExitCode, await stderr + await stdout);
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task A_libvirt_without_the_private_abi_is_refused_with_a_message(string daemon)
    {
        string bin = DaemonPaths.Binary(daemon == "virtlogd" ? DaemonName.Virtlogd : DaemonName.Virtlockd, DaemonKind.Managed);
        string dir = Directory.CreateTempSubdirectory("fake-libvirt-abi").FullName;
        try
        {
            // the right version, none of libvirt's versioned symbols
            File.WriteAllText(Path.Combine(dir, "fake.c"),
                "int virGetVersion(unsigned long *lib, const char *type, unsigned long *typeVer)\n" +
                "{ (void)type; (void)typeVer; if (lib) *lib = 9000000UL; return 0; }\n");
            var cc = await RunAsync("gcc", ["-shared", "-fPIC", "-Wl,-soname,libvirt.so.0", "-o", Path.Combine(dir, "libvirt.so.0"), Path.Combine(dir, "fake.c")]);
            Assert.True(cc.Code == 0, cc.Stderr);
            var (code, err) = await RunAsync(bin, ["-t", "1"], new Dictionary<string, string> { ["LD_LIBRARY_PATH"] = dir });
            Assert.True(code == 1, $"exit {code}, expected 1: {err}");
            Assert.Contains("libvirt.so.0 does not export LIBVIRT_PRIVATE_9.0.0", err);
            Assert.DoesNotContain("Exception", err);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [MemberData(nameof(Daemons))]
    public async Task No_usable_libvirt_is_refused_with_a_message(string daemon)
    {
        string bin = DaemonPaths.Binary(daemon == "virtlogd" ? DaemonName.Virtlogd : DaemonName.Virtlockd, DaemonKind.Managed);
        Assert.True(File.Exists(SystemLibvirt), $"{SystemLibvirt} missing: libvirt0 is not installed");
        // in a mount namespace of its own, the system's libvirt.so.0 is an empty file
        var (code, err) = await RunAsync("unshare", ["-m", "--propagation", "private", "--", "sh", "-c",
            $"mount --bind /dev/null {SystemLibvirt} && exec \"$0\" -t 1", bin]);
        Assert.True(code == 1, $"exit {code}, expected 1: {err}");
        Assert.Contains("cannot load libvirt.so.0", err);
        Assert.Contains("install libvirt0 9.0.0", err);
        Assert.DoesNotContain("Unhandled exception", err);
    }
}
