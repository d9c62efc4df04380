// Build script: ./build.sh <target>. See README.md.
using System.Xml.Linq;

var target = Argument("target", "build");
var configuration = Argument("configuration", "Release");
var repo = MakeAbsolute(Directory(".")).FullPath;
var libvirtSrc = $"{repo}/.build/libvirt-9.0.0";
var nativeBuild = $"{repo}/.build/native";
var nativeOut = $"{repo}/artifacts/native";
var binOut = $"{repo}/artifacts/bin";
var libOut = $"{repo}/artifacts/lib";
var aptPackages = new[] {
    "libvirt0", "libvirt-dev", "libvirt-daemon", "libvirt-clients",
    "cmake", "gcc", "make", "pkg-config", "rpcsvc-proto", "libtirpc-dev", "libglib2.0-dev", "libxml2-dev",
    "libclang1-14", "libclang-common-14-dev", "dpkg-dev", "util-linux", "clang", "zlib1g-dev",
    // package: lintian checks the .deb; systemd for systemd-socket-activate in the package tests, and
    // systemd-nspawn to boot it as PID 1 of a container for the package's test under a real systemd
    "lintian", "systemd", "systemd-container",
    // fuzz-xdr and its test: afl-fuzz drives the SharpFuzz-instrumented XDR decoders
    "afl++",
};
// package tests: Debian's libvirt-daemon-system and what it needs beyond this machine's packages, as .debs
// installed at test time into an overlay of / (never into the host's own /usr)
var pkgrootDebs = $"{repo}/.build/pkgroot/debs";

int Sh(string command, bool check = true)
{
    var rc = StartProcess("bash", new ProcessSettings { Arguments = $"-c \"{command.Replace("\"", "\\\"")}\"" });
    if (check && rc != 0)
        throw new Exception($"failed ({rc}): {command}");
    return rc;
}

string ShOut(string command)
{
    var rc = StartProcess("bash", new ProcessSettings { Arguments = $"-c \"{command.Replace("\"", "\\\"")}\"", RedirectStandardOutput = true },
        out IEnumerable<string> lines);
    if (rc != 0)
        throw new Exception($"failed ({rc}): {command}");
    return string.Join("\n", lines);
}

bool IsRoot() => Sh("test \"$(id -u)\" = 0", check: false) == 0;
string Sudo() => IsRoot() ? "" : "sudo ";

Task("setup")
    .Description("Installs the Debian packages the build and tests need, and libvirt 9.0.0's source (idempotent).")
    .Does(() =>
{
    var missing = Sh($"dpkg-query -W -f='${{Status}}\\n' {string.Join(" ", aptPackages)} 2>/dev/null | grep -c 'install ok installed' | grep -qx {aptPackages.Length}", check: false) != 0;
    if (missing)
    {
        Information("Installing Debian packages: " + string.Join(" ", aptPackages));
        Sh($"{Sudo()}env DEBIAN_FRONTEND=noninteractive apt-get update -q");
        Sh($"{Sudo()}env DEBIAN_FRONTEND=noninteractive apt-get install -y -q {string.Join(" ", aptPackages)}");
    }
    Sh("test \"$(pkg-config --modversion libvirt)\" = 9.0.0 || { echo 'libvirt-dev is not 9.0.0: this project binds exactly libvirt 9.0.0 (Debian 12)' >&2; exit 1; }");
    if (!FileExists($"{libvirtSrc}/src/internal.h"))
    {
        Information("Fetching libvirt's Debian source package for its headers");
        // deb-src entries, once, for apt-get source
        Sh($"grep -qs '^Types: deb deb-src' /etc/apt/sources.list.d/debian.sources || {{ {Sudo()}sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources && {Sudo()}apt-get update -q; }}");
        // Debian 12's exact package first; any later 9.0.0 Debian revision unpacks to the same upstream tree
        Sh($"mkdir -p {repo}/.build/src && cd {repo}/.build/src && {{ apt-get source -q --only-source libvirt=9.0.0-4+deb12u2 || apt-get source -q libvirt; }} > {repo}/.build/apt-source.log 2>&1 || {{ tail -20 {repo}/.build/apt-source.log; exit 1; }}");
        Sh($"rm -rf {libvirtSrc} && mv {repo}/.build/src/libvirt-9.0.0 {libvirtSrc}");
    }
    // systemd-container pinned to this machine's systemd so nothing of it is upgraded inside the test root; the
    // download is redone when the host's systemd changed since (its stamp holds the version it was made for)
    var systemdVersion = ShOut("dpkg-query -W -f='${Version}' systemd").Trim();
    var stamp = $"{pkgrootDebs}/.complete";
    if (!FileExists(stamp) || System.IO.File.ReadAllText(stamp).Trim() != systemdVersion)
    {
        Information($"Downloading libvirt-daemon-system and its missing dependencies into {pkgrootDebs} (for the package tests)");
        Sh($"rm -rf {pkgrootDebs} && mkdir -p {pkgrootDebs}/partial && {Sudo()}apt-get install -d -y -q --no-install-recommends -o Dir::Cache::archives={pkgrootDebs} " +
           $"libvirt-daemon-system systemd-container={systemdVersion} > /dev/null");
        System.IO.File.WriteAllText(stamp, systemdVersion + "\n");
    }
});

Task("native")
    .Description("Builds the C shim and the rpcgen headers with CMake into artifacts/native.")
    .IsDependentOn("setup") // a fresh clone has neither the packages nor libvirt's source yet (idempotent, quick when done)
    .Does(() =>
{
    Sh($"cmake -S {repo}/native -B {nativeBuild} -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX={nativeOut} -DLIBVIRT_SRC={libvirtSrc} > {repo}/.build/cmake-configure.log || {{ cat {repo}/.build/cmake-configure.log; exit 1; }}");
    Sh($"cmake --build {nativeBuild} -j2");
    Sh($"cmake --install {nativeBuild} > /dev/null");
});

Task("bindings")
    .Description("Regenerates interop/Libvirt.Interop/Generated from libvirt's headers.")
    .IsDependentOn("native")
    .Does(() =>
{
    Sh($"dotnet run --project {repo}/interop/Generator -c Release -- --repo {repo}");
});

Task("xdr")
    .Description("Regenerates interop/Libvirt.Xdr/Generated from the protocol .x files (native/protocol and libvirt's src/rpc).")
    .IsDependentOn("setup")
    .Does(() =>
{
    Sh($"dotnet run --project {repo}/interop/XdrGen -c Release -- --repo {repo}");
});

Task("build")
    .IsDependentOn("native")
    .Does(() =>
{
    DotNetBuild($"{repo}/Migration.sln", new DotNetBuildSettings { Configuration = configuration });
});

var daemons = new[] { ("virtlockd", "managed/LockDaemon/LockDaemon.csproj"), ("virtlogd", "managed/LogDaemon/LogDaemon.csproj") };

Task("publish")
    .Description("NativeAOT drop-ins: artifacts/bin/virtlockd and artifacts/bin/virtlogd; the twins for the C daemons: artifacts/lib/libvirt-managed.so and .a; the lockd lock-driver plugin: artifacts/lib/lock-driver/lockd.so")
    .IsDependentOn("native")
    .Does(() =>
{
    EnsureDirectoryExists(binOut);
    foreach (var (name, project) in daemons)
    {
        DotNetPublish($"{repo}/{project}", new DotNetPublishSettings {
            Configuration = configuration,
            Runtime = "linux-x64",
            OutputDirectory = $"{repo}/.build/publish/{name}",
        });
        // a new file renamed over the old one: a running published daemon keeps its inode, no "Text file busy"
        Sh($"cp {repo}/.build/publish/{name}/{name} {binOut}/.{name}.new && chmod 755 {binOut}/.{name}.new && mv -f {binOut}/.{name}.new {binOut}/{name}");
        Information($"{binOut}/{name}");
    }
    // bottom-up: the twins under libvirt's C names, for the C daemons (README, "Inside the C daemons")
    EnsureDirectoryExists(libOut);
    foreach (var (flavour, file) in new[] { ("Shared", "libvirt-managed.so"), ("Static", "libvirt-managed.a") })
    {
        DotNetPublish($"{repo}/managed/Export/Libvirt.Export.csproj", new DotNetPublishSettings {
            Configuration = configuration,
            Runtime = "linux-x64",
            OutputDirectory = $"{repo}/.build/publish/libvirt-managed-{flavour}",
            MSBuildSettings = new DotNetMSBuildSettings().WithProperty("NativeLib", flavour),
        });
        Sh($"cp {repo}/.build/publish/libvirt-managed-{flavour}/{file} {libOut}/.{file}.new && mv -f {libOut}/.{file}.new {libOut}/{file}");
        Information($"{libOut}/{file}");
    }
    // what a C program linking the static flavour also needs: the shim it calls into
    Sh($"cp {nativeOut}/libvirtshim.a {libOut}/libvirtshim.a");
    // the managed lockd lock-driver plugin, in a directory of its own for
    // LIBVIRT_LOCK_MANAGER_PLUGIN_DIR (README, "The lockd lock-driver plugin")
    DotNetPublish($"{repo}/managed/LockDriver/Libvirt.LockDriver.csproj", new DotNetPublishSettings {
        Configuration = configuration,
        Runtime = "linux-x64",
        OutputDirectory = $"{repo}/.build/publish/lockd",
    });
    EnsureDirectoryExists($"{libOut}/lock-driver");
    // renamed over the old file: a process that has the plugin loaded keeps its inode
    Sh($"cp {repo}/.build/publish/lockd/lockd.so {libOut}/lock-driver/.lockd.so.new && mv -f {libOut}/lock-driver/.lockd.so.new {libOut}/lock-driver/lockd.so");
    Information($"{libOut}/lock-driver/lockd.so");
});

Task("package")
    .Description("artifacts/deb/libvirt-daemons-managed_<version>_amd64.deb (packaging/debian/), checked by lintian.")
    .IsDependentOn("publish")
    .Does(() =>
{
    Sh($"{repo}/packaging/debian/build-deb.sh {binOut} {repo}/artifacts/deb");
    if (Sh("command -v lintian > /dev/null", check: false) != 0)
        throw new Exception("lintian is missing: run ./build.sh setup");
    // errors and warnings fail the target; informational tags are overridden in packaging/debian/lintian-overrides
    Sh($"lintian --fail-on error,warning {repo}/artifacts/deb/libvirt-daemons-managed_*_amd64.deb");
});

Task("test")
    .Description("Every test: unit, bindings, and the conformance suites against our daemons and the C ones.")
    .IsDependentOn("setup")
    .IsDependentOn("native")
    .IsDependentOn("build")
    .IsDependentOn("publish")
    .IsDependentOn("fuzz-xdr-harness") // Xdr/XdrFuzzTests run the instrumented harness under afl-fuzz
    .Does(() =>
{
    var results = $"{repo}/.build/test-results";
    CleanDirectory(results);
    var rc = Sh($"dotnet test {repo}/Migration.sln -c {configuration} --no-build --logger 'trx' --logger 'console;verbosity=normal' --results-directory {results} --blame-hang-timeout 5m" + (HasArgument("filter") ? $" --filter '{Argument<string>("filter")}'" : ""), check: false);
    if (SummarizeTestResults(results, rc) > 0)
        throw new Exception("tests failed");
});

Task("test-summary")
    .Description("The summary line of a results directory of .trx files (--results=DIR), as the test target prints it; tested by NewcomerTests.")
    .Does(() =>
{
    SummarizeTestResults(Argument<string>("results"), 0);
});

// Prints every failed test (name, first lines of its message) and then "N passed, N failed, N skipped",
// the runner's own counts; returns the failed count. rc: the runner's exit code.
int SummarizeTestResults(string results, int rc)
{
    int passed = 0, failed = 0, skipped = 0;
    // one UnitTestResult per test run, its outcome as the runner reports it (the Counters element's
    // notExecuted stays 0 for skipped xunit tests, so it is not used)
    var failures = new List<string>();
    foreach (var trx in GetFiles($"{results}/*.trx"))
        foreach (var r in XDocument.Load(trx.FullPath).Descendants().Where(e => e.Name.LocalName == "UnitTestResult"))
            switch (r.Attribute("outcome")?.Value)
            {
                case "Passed": passed++; break;
                case "NotExecuted": skipped++; break;
                default: // Failed, Error, Timeout, Aborted, ...
                    failed++;
                    var message = r.Descendants().FirstOrDefault(e => e.Name.LocalName == "Message")?.Value ?? "";
                    var firstLines = string.Join("\n      ", message.Split('\n').Take(6).Select(l => l.TrimEnd()));
                    failures.Add($"  {r.Attribute("outcome")?.Value}: {r.Attribute("testName")?.Value}\n      {firstLines}");
                    break;
            }
    // CI keeps only the end of the log: name every failure just above the summary line
    if (failures.Count > 0)
    {
        Console.WriteLine("Failed tests:");
        foreach (var f in failures.Take(20))
            Console.WriteLine(f);
        if (failures.Count > 20)
            Console.WriteLine($"  ... and {failures.Count - 20} more (see {results})");
    }
    if (rc != 0 && failed == 0)
        failed = 1; // the run itself failed (build, crash, hang)
    // plain, uncoloured: CI reads this line
    Console.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
    return failed;
}

Task("fuzz")
    .Description("The frame fuzzer against the C daemons and ours for as long as you like: --seed=N --cases=N (per daemon) --first=N --daemon=virtlockd|virtlogd|both --batch=N. Reports go to .build/fuzz/.")
    .IsDependentOn("build")
    .IsDependentOn("publish")
    .Does(() =>
{
    var env = new Dictionary<string, string> {
        ["FUZZ_SEED"] = Argument("seed", DateTime.UtcNow.Ticks % 1000000000).ToString(),
        ["FUZZ_CASES"] = Argument("cases", 20000).ToString(),
        ["FUZZ_FIRST"] = Argument("first", 0).ToString(),
        ["FUZZ_DAEMON"] = Argument("daemon", "both"),
        ["FUZZ_BATCH"] = Argument("batch", 200).ToString(),
    };
    Information($"fuzz: seed {env["FUZZ_SEED"]}, {env["FUZZ_CASES"]} cases per daemon from {env["FUZZ_FIRST"]}, daemon {env["FUZZ_DAEMON"]}");
    var vars = string.Join(" ", env.Select(e => $"{e.Key}={e.Value}"));
    var rc = Sh($"env {vars} dotnet test {repo}/tests/Migration.Tests -c {configuration} --no-build --filter 'FullyQualifiedName~Libvirt.Tests.Fuzz.FrameFuzzTests' --logger 'console;verbosity=detailed' --blame-hang-timeout 60m", check: false);
    if (rc != 0)
        throw new Exception("the fuzzer found a failure of ours or an unlisted difference (see .build/fuzz/)");
});

// The coverage-guided XDR fuzzer (tests/XdrFuzz): its build output copied to .build/fuzz-xdr/harness, where
// the SharpFuzz tool instruments Libvirt.Xdr.dll (never the copy in bin/, never one in git)
var fuzzXdr = $"{repo}/.build/fuzz-xdr";
var fuzzXdrHarness = $"{fuzzXdr}/harness";

// afl-fuzz without touching the host: no CPU governor check, no core_pattern change, no core pinning on a
// shared machine, room for the runtime to start; the target is `dotnet`, not a compiled-in AFL binary
var aflEnv = "AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_FORKSRV_INIT_TMOUT=30000";

Task("fuzz-xdr-harness")
    .Description("Builds tests/XdrFuzz into .build/fuzz-xdr/harness and instruments its Libvirt.Xdr.dll with SharpFuzz.")
    .IsDependentOn("setup")
    .IsDependentOn("build")
    .Does(() =>
{
    var bin = $"{repo}/tests/XdrFuzz/bin/{configuration}/net10.0";
    Sh($"rm -rf {fuzzXdrHarness} && mkdir -p {fuzzXdrHarness} && cp -r {bin}/. {fuzzXdrHarness}/");
    Sh($"cd {repo} && dotnet tool run sharpfuzz {fuzzXdrHarness}/Libvirt.Xdr.dll > {fuzzXdr}/instrument.log 2>&1 || {{ cat {fuzzXdr}/instrument.log; exit 1; }}");
});

Task("fuzz-xdr")
    .Description("Coverage-guided fuzzing of the generated XDR decoders (SharpFuzz + afl-fuzz) for --seconds=N (default 600); --type=NAME fuzzes one type. " +
                 "Findings (decode/encode disagreements, exceptions, hangs) go to .build/fuzz-xdr/run-<time>/; fails if there are any.")
    .IsDependentOn("fuzz-xdr-harness")
    .Does(() =>
{
    var seconds = Argument("seconds", 600);
    var type = Argument("type", "");
    var run = $"{fuzzXdr}/run-{DateTime.Now:yyyyMMdd-HHmmss}";
    var harness = $"dotnet {fuzzXdrHarness}/XdrFuzz.dll";
    // the harness's knobs, also in the printed reproduction (XDRFUZZ_BROKEN: the tests' deliberately broken type)
    var typeEnv = (type == "" ? "" : $"XDRFUZZ_TYPE={type} ") + (EnvironmentVariable("XDRFUZZ_BROKEN") == "1" ? "XDRFUZZ_BROKEN=1 " : "");
    // the seed corpus: random valid encodings of every type and a message for every procedure, made now
    Sh($"env {typeEnv}{harness} seeds {run}/seeds");
    Information($"fuzz-xdr: afl-fuzz for {seconds} s, findings in {run}/out/default");
    var rc = Sh($"cd {run} && env {aflEnv} {typeEnv}afl-fuzz -V {seconds} -t 1000 -m none -i {run}/seeds -o {run}/out -- {harness} > {run}/afl-fuzz.log 2>&1", check: false);
    var statsFile = $"{run}/out/default/fuzzer_stats";
    if (!FileExists(statsFile))
    {
        Sh($"tail -30 {run}/afl-fuzz.log", check: false);
        throw new Exception($"afl-fuzz did not run (exit {rc}): see {run}/afl-fuzz.log");
    }
    var stats = System.IO.File.ReadAllLines(statsFile).Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
        .ToDictionary(p => p[0].Trim(), p => p[1].Trim());
    string S(string k) => stats.TryGetValue(k, out var v) ? v : "?";
    Console.WriteLine($"fuzz-xdr: {S("execs_done")} executions in {S("run_time")} s ({S("execs_per_sec")}/s), {S("corpus_count")} paths " +
                      $"({S("corpus_found")} found), {S("edges_found")} edges, stability {S("stability")}, {S("saved_crashes")} crashes, {S("saved_hangs")} hangs");
    var findings = GetFiles($"{run}/out/default/crashes/id*").Concat(GetFiles($"{run}/out/default/hangs/id*")).ToList();
    if (findings.Count == 0)
        return;
    Console.WriteLine($"Findings ({findings.Count}); reproduce one (the instrumented harness, no AFL needed):");
    foreach (var f in findings.Take(10))
        Console.WriteLine($"  {typeEnv}{harness} check '{f.FullPath}'");
    // what the first few are
    Sh($"{typeEnv}timeout 20 {harness} check " + string.Join(" ", findings.Take(3).Select(f => $"'{f.FullPath}'")) + " 2>&1 | cut -c1-600", check: false);
    throw new Exception($"fuzz-xdr: {findings.Count} crash(es) or hang(s) in {run}/out/default");
});

Task("run")
    .Description("Runs the hybrid virtlockd and virtlogd in the foreground: unprivileged for a normal user; as root, in a private mount namespace so no system daemon is touched. Ctrl-C stops both.")
    .IsDependentOn("setup")
    .IsDependentOn("publish")
    .Does(() =>
{
    // the build is done: stop the build servers it left (MSBuild nodes, the compiler server) now, so that
    // nothing of the build outlives a Ctrl-C
    Sh("dotnet build-server shutdown > /dev/null 2>&1", check: false);
    var rc = Sh($"{repo}/scripts/run-daemons.sh" + (HasArgument("verbose-daemons") ? " -v" : ""), check: false);
    if (rc != 0 && rc != 130)
        throw new Exception($"run-daemons.sh exited {rc}");
});

Task("bench")
    .Description("One report, C against each of our configurations (needs root): bench/results/report-<date>/report.md with PNG plots and CSV. " +
                 "--bench-configs=\"LABEL=CONF|LABEL=CONF\" picks the configurations (CONF: config-file text, ';' between lines; '@preload': the C daemon with libvirt-managed.so preloaded); " +
                 "--all-benches=true also runs the detailed LockBench, LogBench and HandoffBench. Not a test.")
    .IsDependentOn("setup")
    .IsDependentOn("build")
    .IsDependentOn("publish")
    .Does(() =>
{
    // default: our daemons with every key at "native", with the storage twin managed (each daemon reads only
    // its own key: virtlockd lock_space_impl, virtlogd rotating_file_impl), with the managed event loop, and
    // with every twin managed (logging too); and the C daemon with libvirt-managed.so preloaded (Cp)
    const string store = "lock_space_impl = \"managed\";rotating_file_impl = \"managed\"", loop = "event_loop_impl = \"managed\"",
        logging = "logging_impl = \"managed\"";
    var configs = Argument("bench-configs", $"native=|store={store}|loop={loop}|managed={store};{loop};{logging}|Cp=@preload");
    var args = string.Join(" ", configs.Split('|', StringSplitOptions.RemoveEmptyEntries)
        .Select(c => "--configs '" + c.Replace("'", "'\\''") + "'"));
    // the report project is not in Migration.sln (ScottPlot is only needed here): dotnet run builds it
    Sh($"cd {repo} && dotnet run --project bench/Report -c {configuration} -- {args}");
    if (Argument("all-benches", false))
        foreach (var bench in new[] { "LockBench", "LogBench", "HandoffBench" })
            if (FileExists($"{repo}/bench/{bench}/{bench}.csproj"))
                Sh($"cd {repo} && dotnet run --project bench/{bench} -c {configuration} --no-build");
});

RunTarget(target);
