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

    /// <summary>The test executable (building it on first use): linked against libvirt.so.0 alone, or, with
    /// <paramref name="staticTwins"/>, with artifacts/lib/libvirt-managed.a and the NativeAOT runtime linked in
    /// (the link line README.md gives).</summary>
    public static Task<string> ExecutableAsync(string test, bool staticTwins = false)
    {
        lock (s_builds)
        {
            var key = $"{test}/{staticTwins}";
            if (!s_builds.TryGetValue(key, out var build))
                s_builds[key] = build = new Lazy<Task<string>>(() => BuildAsync(test, staticTwins));
            return build.Value;
        }
    }

    /// <summary>The NativeAOT runtime pack's static libraries (the one the SDK published the library with).</summary>
    private static string RuntimePackNative()
    {
        var root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages",
            "microsoft.netcore.app.runtime.nativeaot.linux-x64");
        var dir = Directory.Exists(root)
            ? Directory.GetDirectories(root).Select(d => Path.Combine(d, "runtimes", "linux-x64", "native"))
                .Where(d => File.Exists(Path.Combine(d, "libRuntime.WorkstationGC.a"))).Order().LastOrDefault()
            : null;
        return dir ?? throw new DirectoryNotFoundException($"no NativeAOT runtime pack under {root}: run ./build.sh publish");
    }

    /// <summary>One of this project's own C programs (<paramref name="source"/>, under
    /// tests/Migration.Tests), built as the unit tests are and linked against libvirt.so.0 alone.</summary>
    public static Task<string> ProgramAsync(string source)
    {
        lock (s_builds)
        {
            var key = $"program:{source}";
            if (!s_builds.TryGetValue(key, out var build))
                s_builds[key] = build = new Lazy<Task<string>>(() => BuildAsync(Path.GetFileNameWithoutExtension(source), false,
                    Path.Combine(DaemonPaths.RepoRoot, "tests", "Migration.Tests", source)));
            return build.Value;
        }
    }

    private static async Task<string> BuildAsync(string test, bool staticTwins, string? program = null)
    {
        string src = Source, repo = DaemonPaths.RepoRoot;
        if (!File.Exists(Path.Combine(src, "tests", "testutils.c")))
            throw new FileNotFoundException($"libvirt's source is not unpacked at {src}: run ./build.sh setup");
        var dir = Path.Combine(Path.GetTempPath(), $"libvirt-unit-{test}{(staticTwins ? "-static" : "")}-{Environment.ProcessId}-{Guid.NewGuid():N}");
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
        string twins = "";
        if (staticTwins)
        {
            string lib = Path.Combine(repo, "artifacts", "lib"), n = RuntimePackNative();
            if (!File.Exists(Path.Combine(lib, "libvirt-managed.a")))
                throw new FileNotFoundException($"{lib}/libvirt-managed.a not found: run ./build.sh publish");
            twins = $"{lib}/libvirt-managed.a {lib}/libvirtshim.a {n}/libbootstrapperdll.o {n}/libRuntime.WorkstationGC.a " +
                    $"{n}/libRuntime.VxsortDisabled.a {n}/libeventpipe-disabled.a {n}/libstandalonegc-disabled.a " +
                    $"{n}/libSystem.Native.a {n}/libSystem.Security.Cryptography.Native.OpenSsl.a {n}/libaotminipal.a " +
                    $"{n}/libstdc++compat.a";
        }
        string sources = program ?? $"{src}/tests/{test}.c {src}/tests/testutils.c";
        await ShAsync($"gcc -O1 -w {includes} -o {exe} {sources} {twins} " +
                      $"-l:libvirt.so.0 {flags.Trim()} -lpthread -ldl -lm -lrt 2>&1");
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
