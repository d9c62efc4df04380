using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.Export;

/// <summary>
/// libvirt's own unit tests (tests/&lt;name&gt;.c with tests/testutils.c),
/// compiled at test time from the unpacked Debian source against its
/// headers and linked against libvirt.so.0 alone: nothing of libvirt's is
/// copied into this repository. Built once per test run, each into its own
/// directory, which is also the test's abs_builddir (virlockspacetest makes
/// its lock space there).
/// </summary>
public static class LibvirtUnitTestBuild
{
    private static readonly Dictionary<string, Lazy<Task<string>>> s_builds = new();

    public static string Source => Path.Combine(DaemonPaths.RepoRoot, ".build", "libvirt-9.0.0");

    /// <summary>The test executable (building it on first use).</summary>
    public static Task<string> ExecutableAsync(string test)
    {
        lock (s_builds)
        {
            if (!s_builds.TryGetValue(test, out var build))
                s_builds[test] = build = new Lazy<Task<string>>(() => BuildAsync(test));
            return build.Value;
        }
    }

    private static async Task<string> BuildAsync(string test)
    {
        string src = Source, repo = DaemonPaths.RepoRoot;
        if (!File.Exists(Path.Combine(src, "tests", test + ".c")))
            throw new FileNotFoundException($"libvirt's source is not unpacked at {src}: run ./build.sh setup");
        var dir = Path.Combine(Path.GetTempPath(), $"libvirt-unit-{test}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        // the project's minimal config.h, plus the directories testutils.c is compiled with in libvirt's build
        File.WriteAllText(Path.Combine(dir, "config.h"),
            $"#include \"{repo}/native/include/config.h\"\n" +
            $"#define abs_srcdir \"{src}/tests\"\n#define abs_builddir \"{dir}\"\n" +
            $"#define abs_top_srcdir \"{src}\"\n#define abs_top_builddir \"{dir}\"\n");
        var exe = Path.Combine(dir, test);
        string flags = await ShAsync("pkg-config --cflags --libs glib-2.0 libxml-2.0 libtirpc");
        var includes = string.Join(' ', new[]
        {
            dir, $"{src}/include", $"{src}/src", $"{src}/src/util", $"{src}/src/conf", $"{src}/src/rpc", $"{src}/tests",
            $"{repo}/artifacts/native/gen", // rpcgen headers libvirt's internal headers include
        }.Select(i => $"-I{i}"));
        await ShAsync($"gcc -O1 -w {includes} -o {exe} {src}/tests/{test}.c {src}/tests/testutils.c " +
                      $"-l:libvirt.so.0 {flags.Trim()} -lpthread 2>&1");
        return exe;
    }

    private static async Task<string> ShAsync(string command)
    {
        var r = await RunAsync("sh", ["-c", command], null, TimeSpan.FromMinutes(3));
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"'{command}' failed ({r.ExitCode}): {r.Stdout}{r.Stderr}");
        return r.Stdout;
    }

    /// <summary>Runs a program to completion (bounded; killed on timeout).</summary>
    public static async Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, IDictionary<string, string?>? env,
        TimeSpan timeout, string? workingDirectory = null)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null)
            foreach (var (k, v) in env)
                psi.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {timeout}: {await stderr}");
        }
        return new ProcessResult(p.ExitCode, await stdout, await stderr);
    }
}
