using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Newcomer;

/// <summary>
/// What a new user meets first: scripts/run-daemons.sh (./build.sh run) and ./build.sh's own checks. The script
/// makes its own private mount namespace when run as root, so these tests never meet a system daemon.
/// </summary>
public sealed class NewcomerTests(ITestOutputHelper output)
{
    private static string Script => Path.Combine(DaemonPaths.RepoRoot, "scripts", "run-daemons.sh");

    [Fact]
    public async Task RunPrintsTheSocketsAndAWorkingWayToReachThemRunsQuietAndCtrlCStopsBoth()
    {
        await using var sb = await Sandbox.CreateAsync(); // only for process tracking and cleanup
        var run = sb.StartOnHost(Script, [], description: "run-daemons.sh");
        var last = await run.WaitForStdoutLineAsync(l => l == "Ctrl-C stops both.", TimeSpan.FromSeconds(30));
        output.WriteLine(run.Stdout);
        var lines = run.Stdout.Split('\n');
        var pids = new List<int>();
        foreach (var d in new[] { "virtlockd", "virtlogd" })
        {
            var line = lines.Single(l => l.StartsWith($"{d} pid "));
            Assert.EndsWith($": /run/libvirt/{d}-sock, admin /run/libvirt/{d}-admin-sock", line);
            var pid = int.Parse(line.Split(' ')[2].TrimEnd(':'));
            pids.Add(pid);
            var argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal([Path.Combine(DaemonPaths.RepoRoot, "artifacts", "bin", d)], argv); // no -v unless asked
        }
        // the printed commands work as printed
        foreach (var hint in lines.Where(l => l.TrimStart().StartsWith("nsenter ")))
        {
            var r = sb.StartOnHost("sh", ["-c", hint.Trim()], description: hint.Trim());
            Assert.True(await r.WaitForExitAsync(TimeSpan.FromSeconds(20)) == 0, $"'{hint.Trim()}' failed: {r.Stdout}{r.Stderr}");
            Assert.Contains(hint.Contains("virtlockd://") ? "virtlockd" : "Id", r.Stdout);
        }

        run.SignalGroup(2); // Ctrl-C: SIGINT to the foreground process group
        Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("stopping both daemons", run.Stderr);
        foreach (var pid in pids)
            Assert.False(Native.Exists(pid) && File.Exists($"/proc/{pid}/exe") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z"),
                $"daemon {pid} still running after Ctrl-C");
    }

    [Fact]
    public async Task RunStopsTheOtherDaemonAndSaysSoWhenOneFailsToStart()
    {
        await using var sb = await Sandbox.CreateAsync();
        var bin = Path.Combine(sb.TempDir, "bin");
        Directory.CreateDirectory(bin);
        var lockd = Path.Combine(bin, "virtlockd");
        File.Copy(DaemonPaths.Binary(DaemonName.Virtlockd, DaemonKind.Managed), lockd);
        File.WriteAllText(Path.Combine(bin, "virtlogd"), "#!/bin/sh\necho 'virtlogd: cannot start here' >&2\nexit 3\n");
        foreach (var f in Directory.GetFiles(bin)) File.SetUnixFileMode(f, (UnixFileMode)0b111_101_101);

        var run = sb.StartOnHost(Script, [], new Dictionary<string, string?> { ["RUN_DAEMONS_BIN"] = bin }, "run-daemons.sh");
        var rc = await run.WaitForExitAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"rc={rc}\n{run.Stdout}{run.Stderr}");
        Assert.Equal(1, rc);
        Assert.Contains("run-daemons: virtlogd failed to start (exit 3; its messages are above); stopping the other daemon", run.Stderr);
        Assert.DoesNotContain("Ctrl-C stops both.", run.Stdout);
        // the virtlockd it started is gone too
        var left = Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)).Where(d =>
        {
            try { return new FileInfo(d + "/exe").LinkTarget == lockd; } catch { return false; }
        }).ToList();
        Assert.True(left.Count == 0, $"virtlockd still running: {string.Join(", ", left)}");
    }

    [Fact]
    public async Task BuildShTestRunByANonRootUserStopsAtOnceSayingItNeedsRoot()
    {
        await using var sb = await Sandbox.CreateAsync();
        var p = sb.StartOnHost("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
            Path.Combine(DaemonPaths.RepoRoot, "build.sh"), "test"], description: "build.sh test as nobody");
        var rc = await p.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, rc);
        Assert.Contains("./build.sh test needs root", p.Stderr);
        Assert.DoesNotContain("passed", p.Stdout + p.Stderr);
    }

    /// <summary>The summary line's counts are the runner's own: a real xunit project with one passing, one
    /// skipped and one failing test, run by dotnet test into .trx, then summarised by the same code as
    /// <c>./build.sh test</c> (its test-summary target). A skipped test once counted as 0 skipped.</summary>
    [Fact]
    public async Task TestSummaryCountsWhatTheRunnerReportsSkippedIncluded()
    {
        var dir = Directory.CreateTempSubdirectory("summary-").FullName;
        try
        {
            var version = (string name) => System.Text.RegularExpressions.Regex.Match(
                File.ReadAllText(Path.Combine(DaemonPaths.RepoRoot, "tests/Migration.Tests/Migration.Tests.csproj")),
                $"Include=\"{System.Text.RegularExpressions.Regex.Escape(name)}\" Version=\"([^\"]+)\"").Groups[1].Value;
            File.WriteAllText(Path.Combine(dir, "Three.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>net10.0</TargetFramework><IsPackable>false</IsPackable></PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Microsoft.NET.Test.Sdk" Version="{version("Microsoft.NET.Test.Sdk")}" />
                    <PackageReference Include="xunit" Version="{version("xunit")}" />
                    <PackageReference Include="xunit.runner.visualstudio" Version="{version("xunit.runner.visualstudio")}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(dir, "Three.cs"), """
                public class Three
                {
                    [Xunit.Fact] public void Passes() { }
                    [Xunit.Fact(Skip = "skipped on purpose")] public void IsSkipped() { }
                    [Xunit.Fact] public void Fails() => Xunit.Assert.Fail("fails on purpose");
                }
                """);
            var results = Path.Combine(dir, "results");
            // a clean environment for the nested dotnet: the runner's MSBuild variables would redirect it
            static ProcessStartInfo Dotnet(string file, IEnumerable<string> args, string cwd)
            {
                var psi = new ProcessStartInfo(file, args) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase) ||
                                                                     k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
                    psi.Environment.Remove(key);
                return psi;
            }
            var (testRc, testOut) = await RunAsync(Dotnet("dotnet", ["test", dir, "--logger", "trx", "--results-directory", results], dir), TimeSpan.FromMinutes(4));
            output.WriteLine(testOut);
            Assert.NotEqual(0, testRc); // one test fails
            var (rc, summaryOut) = await RunAsync(Dotnet(Path.Combine(DaemonPaths.RepoRoot, "build.sh"), ["test-summary", $"--results={results}"], DaemonPaths.RepoRoot), TimeSpan.FromMinutes(2));
            output.WriteLine(summaryOut);
            Assert.Equal(0, rc);
            Assert.Contains("1 passed, 1 failed, 1 skipped", summaryOut);
            Assert.Matches(@"Failed: Three\.Fails\s+.*fails on purpose", summaryOut);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int Rc, string Output)> RunAsync(ProcessStartInfo psi, TimeSpan timeout)
    {
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{psi.FileName} {string.Join(' ', psi.ArgumentList)}: no exit within {timeout}"); }
        return (p.ExitCode, await stdout + await stderr);
    }
}
