using System.Buffers.Binary;
using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Xdr;
using XdrReader = Libvirt.Xdr.XdrReader;
using XdrWriter = Libvirt.Xdr.XdrWriter;
using Libvirt.XdrFuzz;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Xdr;

/// <summary>
/// The coverage-guided XDR fuzzer (tests/XdrFuzz, ./build.sh fuzz-xdr): its target in process, on valid,
/// lenient and deliberately broken codecs; and the SharpFuzz-instrumented harness
/// (.build/fuzz-xdr/harness, made by ./build.sh's fuzz-xdr-harness, which `test` depends on) under
/// afl-fuzz for a few seconds: coverage feedback, new paths, no crash; a broken codec found as a crash.
/// </summary>
public class XdrFuzzTests(ITestOutputHelper output)
{
    private static readonly XdrTarget Target = new();

    private static byte[] Select(XdrTarget target, string type, byte[] value)
    {
        int i = target.Types.ToList().FindIndex(t => t.Name == type);
        Assert.InRange(i, 0, XdrTarget.FrameSelector - 1);
        return [(byte)i, .. value];
    }

    private static byte[] Words(params uint[] words)
    {
        var b = new byte[words.Length * 4];
        for (int i = 0; i < words.Length; i++)
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4 * i), words[i]);
        return b;
    }

    [Fact]
    public void Every_seed_passes_the_target()
    {
        var seeds = Seeds.All(Target, 4).ToList();
        foreach (var (name, data) in seeds)
        {
            var e = Record.Exception(() => Target.Run(data));
            Assert.True(e is null, $"{name}: {e}");
        }
        // a value of every type, a CALL of every procedure of the four programs (8 + 4 + 19 + 2)
        Assert.Equal(4 * (XdrTypes.All.Length + Standalone.All.Length), seeds.Count(s => s.Name.StartsWith("type-")));
        Assert.Equal(33, seeds.Count(s => s.Name.StartsWith("call-")));
    }

    [Fact]
    public void Every_generated_codec_class_is_a_target_type()
    {
        // the static classes with a Decode(ref XdrReader, out T) (typedefs, enums): each one is reached
        var classes = typeof(XdrTypes).Assembly.GetExportedTypes()
            .Where(t => t.IsAbstract && t.IsSealed && t.GetMethod("Decode") is { } m && m.GetParameters() is [{ ParameterType.IsByRef: true } p, _]
                        && p.ParameterType.GetElementType() == typeof(XdrReader))
            .Select(t => t.Name.EndsWith("Xdr") ? t.Name[..^3] : t.Name).Order().ToList();
        Assert.Equal(17, classes.Count);
        // and every struct and union is also decoded as a typed value (EncodedSize, IBufferWriter encoding)
        Assert.Equal(XdrTypes.All.Length - 17, XdrTypes.All.Count(t => XdrTarget.TypedNames.Contains(t.Name)));
        Assert.Equal(classes, Standalone.All.Select(t => t.Name[Standalone.Prefix.Length..]).Order());
        Assert.All(Target.Types.Take(XdrTypes.All.Length), (t, i) => Assert.Equal(XdrTypes.All[i].Name, t.Name));
        Assert.True(Target.Types.Count < XdrTarget.FrameSelector);
    }

    [Fact]
    public void Procedure_tables_name_the_types_Dispatch_decodes()
    {
        // with no payload, Dispatch accepts exactly the procedures without arguments (every argument type
        // takes at least one word); the target also checks, per CALL, the type Dispatch decoded
        int withArgs = 0;
        foreach (var p in Target.Programs)
            foreach (var (proc, types) in p.Procedures)
            {
                var status = p.Dispatch(proc, ReadOnlyMemory<byte>.Empty);
                Assert.True(types.Args is null ? status is XdrDispatchStatus.Ok or XdrDispatchStatus.BadRet : status == XdrDispatchStatus.BadArgs,
                    $"{p.Name} {proc}: table {types.Args?.Name ?? "void"}, Dispatch {status}");
                if (types.Args is not null) withArgs++;
            }
        Assert.Equal(8 + 4 + 17, withArgs); // admin: all but CONNECT_CLOSE and CONNECT_GET_LIB_VERSION; keepalive: none
        Assert.Equal("virLockSpaceProtocolCreateLockSpaceArgs", Target.Programs[0].Procedures[8].Args?.Name);
    }

    [Fact]
    public void Lenient_inputs_decode_without_finding_and_are_not_canonical()
    {
        // accepted as rpcgen accepts them, encoded canonically: optional flag 2, a string with a NUL and
        // junk after it, non-zero padding; a TypedParam's int arm; a bool discriminated nothing
        var optionalString = Words(2, 5).Concat(new byte[] { (byte)'a', 0, (byte)'c', (byte)'d', (byte)'e', 0xAA, 0xBB, 0xCC }).ToArray();
        var type = Target.Type("virNetMessageString");
        Assert.Equal(XdrError.None, Target.CheckValue(type, optionalString, out var canonical));
        Assert.Equal(Words(1, 1).Concat(new byte[] { (byte)'a', 0, 0, 0 }), canonical);
        Target.Run(Select(Target, "virNetMessageString", optionalString));
        // truncated and too long are rejected by both the decoder and the schema, without a finding
        Assert.Equal(XdrError.Truncated, Target.CheckValue(type, optionalString[..10]));
        Assert.Equal(XdrError.TooLong, Target.CheckValue(type, Words(1, 4194305)));
    }

    public static TheoryData<string> Breakages => new() { "flip", "short", "overread", "reject", "opaque-string", "throw" };

    /// <summary>The codec of virLockSpaceProtocolOwner (uuid, name, id, pid), broken one way.</summary>
    private static XdrTypeInfo Broken(XdrTypeInfo real, string how) => real with
    {
        RoundTrip = (ReadOnlyMemory<byte> input, out int consumed, Span<byte> output, out int written, out XdrError encodeError) =>
        {
            if (how == "throw")
                throw new IndexOutOfRangeException("a decoder indexing past its input");
            if (how == "opaque-string")
            {
                // the name decoded as an opaque: not cut at its NUL, so it re-encodes longer than canonical
                var r = new XdrReader(input);
                var w = new XdrWriter(output);
                XdrError d;
                encodeError = XdrError.None;
                if ((d = r.ReadFixedOpaque(16, out var uuid)) == XdrError.None && (d = r.ReadOpaque(65536, out var name)) == XdrError.None
                    && (d = r.ReadUInt(out uint id)) == XdrError.None && (d = r.ReadUInt(out uint pid)) == XdrError.None)
                {
                    w.WriteFixedOpaque(uuid, 16); w.WriteOpaque(name, 65536); w.WriteUInt(id); w.WriteUInt(pid);
                }
                consumed = r.Position;
                written = w.Position;
                return d;
            }
            var e = real.RoundTrip(input, out consumed, output, out written, out encodeError);
            switch (how)
            {
                case "flip": output[written - 1] ^= 1; break;
                case "short": written -= 4; break;
                case "overread": consumed += 4; break;
                case "reject": return XdrError.Truncated;
            }
            return e;
        },
    };

    [Theory]
    [MemberData(nameof(Breakages))]
    public void A_broken_codec_is_a_finding(string how)
    {
        var real = Target.Type("virLockSpaceProtocolOwner");
        // uuid, a name with a NUL inside ("ab\0d"), id, pid
        byte[] owner = [.. new byte[16], .. Words(4), (byte)'a', (byte)'b', 0, (byte)'d', .. Words(7, 42)];
        // the control: the real codec passes this input
        Target.Run(Select(Target, real.Name, owner));
        var broken = new XdrTarget(Target.Types.Select(t => t.Name == real.Name ? Broken(real, how) : t).ToArray());
        var e = Record.Exception(() => broken.Run(Select(broken, real.Name, owner)));
        output.WriteLine($"{how}: {e?.GetType().Name}: {e?.Message}");
        if (how == "throw")
            Assert.IsType<IndexOutOfRangeException>(e);
        else
            Assert.Contains("virLockSpaceProtocolOwner", Assert.IsType<XdrFindingException>(e).Message);
        // the deliberately broken type the afl test uses is one too, on the input a bit flip makes
        var withBroken = new XdrTarget(BrokenType.WithBroken());
        withBroken.Run(Select(withBroken, BrokenType.Name, BrokenType.Seed));
        var flipped = BrokenType.Seed;
        flipped[^1] ^= 0x80;
        Assert.Throws<XdrFindingException>(() => withBroken.Run(Select(withBroken, BrokenType.Name, flipped)));
    }

    // ---- the instrumented harness under afl-fuzz ----

    private static string Harness => Path.Combine(DaemonPaths.RepoRoot, ".build", "fuzz-xdr", "harness", "XdrFuzz.dll");

    private sealed record AflRun(Dictionary<string, string> Stats, string Dir, string Log)
    {
        public long this[string key] => long.Parse(Stats[key].Split('.')[0]);
    }

    private async Task<string> Sh(string command, Dictionary<string, string> env, int timeoutSeconds)
    {
        var psi = new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{command}: still running after {timeoutSeconds} s"); }
        return await stdout + await stderr;
    }

    private async Task<AflRun> RunAfl(int seconds, Dictionary<string, string> env)
    {
        Assert.True(File.Exists(Harness), $"{Harness} is missing: ./build.sh test makes it (target fuzz-xdr-harness)");
        var dir = Directory.CreateTempSubdirectory("xdrfuzz-").FullName;
        var allEnv = new Dictionary<string, string>(env)
        {
            ["AFL_SKIP_BIN_CHECK"] = "1", ["AFL_SKIP_CPUFREQ"] = "1", ["AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES"] = "1",
            ["AFL_NO_AFFINITY"] = "1", ["AFL_NO_UI"] = "1", ["AFL_FORKSRV_INIT_TMOUT"] = "30000",
        };
        output.WriteLine(await Sh($"dotnet {Harness} seeds {dir}/seeds", allEnv, 60));
        // afl-fuzz stops itself after -V seconds; the bound here is for a stuck start
        var log = await Sh($"afl-fuzz -V {seconds} -t 1000 -m none -i {dir}/seeds -o {dir}/out -- dotnet {Harness} 2>&1 | tail -5", allEnv, seconds + 90);
        output.WriteLine(log);
        var statsFile = Path.Combine(dir, "out", "default", "fuzzer_stats");
        Assert.True(File.Exists(statsFile), $"afl-fuzz wrote no fuzzer_stats: {log}");
        var stats = File.ReadAllLines(statsFile).Select(l => l.Split(':', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0].Trim(), p => p[1].Trim());
        output.WriteLine(string.Join(", ", new[] { "execs_done", "corpus_count", "corpus_found", "edges_found", "saved_crashes", "saved_hangs" }.Select(k => $"{k}={stats[k]}")));
        return new AflRun(stats, dir, log);
    }

    [Fact]
    public async Task Afl_gets_coverage_feedback_and_finds_no_crash()
    {
        var run = await RunAfl(20, new());
        try
        {
            Assert.True(run["execs_done"] > 2000, $"only {run["execs_done"]} executions");
            // coverage reaches AFL from the instrumented Libvirt.Xdr: many edges, and inputs that were kept for new ones
            Assert.True(run["edges_found"] > 1000, $"only {run["edges_found"]} edges");
            Assert.True(run["corpus_found"] > 10, $"only {run["corpus_found"]} new paths");
            Assert.Equal(0, run["saved_crashes"]);
            Assert.Equal(0, run["saved_hangs"]);
        }
        finally { Directory.Delete(run.Dir, recursive: true); }
    }

    [Fact]
    public async Task Afl_reports_a_broken_codec_as_a_crash_that_check_reproduces()
    {
        // BrokenVarOpaque alone: one bit flip of its seed is a finding; AFL stops at the first crash
        var env = new Dictionary<string, string> { ["XDRFUZZ_BROKEN"] = "1", ["XDRFUZZ_TYPE"] = BrokenType.Name, ["AFL_BENCH_UNTIL_CRASH"] = "1" };
        var run = await RunAfl(30, env);
        try
        {
            Assert.True(run["saved_crashes"] >= 1, "afl-fuzz found no crash in the broken codec");
            var crash = Directory.GetFiles(Path.Combine(run.Dir, "out", "default", "crashes"), "id*").First();
            var check = await Sh($"dotnet {Harness} check '{crash}'; echo exit=$?", env, 60);
            output.WriteLine(check);
            Assert.Contains("XdrFindingException: BrokenVarOpaque", check);
            Assert.Contains("exit=1", check);
        }
        finally { Directory.Delete(run.Dir, recursive: true); }
    }
}
