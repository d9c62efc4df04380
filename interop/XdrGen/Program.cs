// xdrgen: generates interop/Libvirt.Xdr/Generated from the protocol .x files:
// our own native/protocol/{lock_protocol,log_protocol,admin_program}.x (the
// ones rpcgen compiles into the filters the native procedure tables use) and
// libvirt's src/rpc/{virnetprotocol,virkeepaliveprotocol}.x, read from the
// unpacked source (./build.sh setup), never copied.
//
//   dotnet run --project interop/XdrGen -- --repo DIR [--source DIR] [--check]
//
// --check generates in memory and exits 1 when the committed files differ.
using System.Reflection;
using System.Text;

namespace Libvirt.Xdr.Generator;

internal static class Program
{
    private const string Usage = "usage: xdrgen [--repo DIR] [--source DIR] [--out DIR] [--check]";

    private static int Main(string[] args)
    {
        string repo = Directory.GetCurrentDirectory();
        string? source = null, outDir = null;
        bool check = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--repo": repo = Path.GetFullPath(Next()); break;
                case "--source": source = Path.GetFullPath(Next()); break;
                case "--out": outDir = Path.GetFullPath(Next()); break;
                case "--check": check = true; break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default: Console.Error.WriteLine($"xdrgen: unknown argument {args[i]}\n{Usage}"); return 2;
            }
        }
        source ??= Path.Combine(repo, ".build", "libvirt-9.0.0");
        outDir ??= Path.Combine(repo, "interop", "Libvirt.Xdr", "Generated");

        SortedDictionary<string, string> files;
        try
        {
            files = Generate(repo, source);
        }
        catch (XdrGenException e)
        {
            Console.Error.WriteLine($"xdrgen: error: {e.Message}");
            return 2;
        }

        var existing = Directory.Exists(outDir)
            ? Directory.EnumerateFiles(outDir, "*.cs").Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string?>();
        if (check)
        {
            var diffs = new List<string>();
            foreach (var (name, text) in files)
            {
                var path = Path.Combine(outDir, name);
                if (!File.Exists(path)) diffs.Add($"missing {name}");
                else if (File.ReadAllText(path) != text) diffs.Add($"differs {name}");
            }
            diffs.AddRange(existing.Where(n => !files.ContainsKey(n!)).Select(n => $"stale {n}"));
            foreach (var d in diffs) Console.Error.WriteLine($"xdrgen: check: {d}");
            if (diffs.Count > 0) { Console.Error.WriteLine("xdrgen: generated XDR is out of date; run ./build.sh xdr"); return 1; }
            Console.WriteLine($"xdrgen: {files.Count} generated files are up to date");
            return 0;
        }
        Directory.CreateDirectory(outDir);
        foreach (var stale in existing.Where(n => !files.ContainsKey(n!)))
            File.Delete(Path.Combine(outDir, stale!));
        var utf8 = new UTF8Encoding(false);
        foreach (var (name, text) in files)
        {
            var path = Path.Combine(outDir, name);
            if (!File.Exists(path) || File.ReadAllText(path) != text) File.WriteAllText(path, text, utf8);
        }
        Console.WriteLine($"xdrgen: wrote {files.Count} files to {outDir}");
        return 0;
    }

    /// <summary>Constants the libvirt .x files take from C headers (rpcgen
    /// leaves them to the C compiler): VIR_UUID_BUFLEN is internal.h's.</summary>
    private static readonly Dictionary<string, long> Externals = new() { ["VIR_UUID_BUFLEN"] = 16 };

    /// <summary>
    /// Our lock, log and admin .x files are written for this project; libvirt's own are the
    /// reference for the wire. Each program's number, version and procedure numbers, and each
    /// procedure's argument and return shapes (names aside), must be the same in both, or
    /// nothing is generated.
    /// </summary>
    private static void CheckAgainstLibvirt(string source, Emitter ours, List<ProgramSpec> programs)
    {
        var theirs = new List<(string File, ProgramSpec Spec)>
        {
            ("src/locking/lock_protocol.x", new("", "", "VIR_LOCK_SPACE_PROTOCOL_PROGRAM", "VIR_LOCK_SPACE_PROTOCOL_PROGRAM_VERSION",
                "virLockSpaceProtocolProcedure", "VIR_LOCK_SPACE_PROTOCOL_PROC_", "virLockSpaceProtocol", "")),
            ("src/logging/log_protocol.x", new("", "", "VIR_LOG_MANAGER_PROTOCOL_PROGRAM", "VIR_LOG_MANAGER_PROTOCOL_PROGRAM_VERSION",
                "virLogManagerProtocolProcedure", "VIR_LOG_MANAGER_PROTOCOL_PROC_", "virLogManagerProtocol", "")),
            ("src/admin/admin_protocol.x", new("", "", "ADMIN_PROGRAM", "ADMIN_PROTOCOL_VERSION",
                "admin_procedure", "ADMIN_PROC_", "admin_", "")),
        };
        // admin_protocol.x takes the typed parameter kinds from libvirt-common.h
        var externals = new Dictionary<string, long>(Externals)
        {
            ["VIR_TYPED_PARAM_INT"] = 1, ["VIR_TYPED_PARAM_UINT"] = 2, ["VIR_TYPED_PARAM_LLONG"] = 3, ["VIR_TYPED_PARAM_ULLONG"] = 4,
            ["VIR_TYPED_PARAM_DOUBLE"] = 5, ["VIR_TYPED_PARAM_BOOLEAN"] = 6, ["VIR_TYPED_PARAM_STRING"] = 7,
        };
        var problems = new List<string>();
        for (int i = 0; i < theirs.Count; i++)
        {
            var (file, spec) = theirs[i];
            var mine = programs[i];
            var path = Path.Combine(source, file);
            if (!File.Exists(path))
                throw new XdrGenException($"{path} not found (libvirt's source is unpacked by ./build.sh setup)");
            var lib = new Emitter(new Parser(path, File.ReadAllText(path)).Parse(), externals);
            void Same(string what, object a, object b)
            {
                if (!Equals(a, b)) problems.Add($"{mine.Name}: {what}: ours {a}, libvirt's {b}");
            }
            Same("program", ours.Eval(mine.ProgramConst, mine.Name), lib.Eval(spec.ProgramConst, file));
            Same("version", ours.Eval(mine.VersionConst, mine.Name), lib.Eval(spec.VersionConst, file));
            var a = ours.Procedures(mine);
            var b = lib.Procedures(spec);
            Same("procedures", string.Join(",", a.Select(p => p.Number)), string.Join(",", b.Select(p => p.Number)));
            foreach (var (pa, pb) in a.Zip(b))
            {
                string Shape(Emitter e, StructDef? s) => s is null ? "void"
                    : System.Text.RegularExpressions.Regex.Replace(e.Schema(new WStruct(s.Name)), @"\((struct|union|enum) [A-Za-z_0-9]+", "($1");
                Same($"{pa.EnumMember} arguments", Shape(ours, pa.Args), Shape(lib, pb.Args));
                Same($"{pa.EnumMember} result", Shape(ours, pa.Ret), Shape(lib, pb.Ret));
            }
        }
        if (problems.Count > 0)
            throw new XdrGenException("native/protocol differs from libvirt's protocol files:\n  " + string.Join("\n  ", problems));
    }

    internal static SortedDictionary<string, string> Generate(string repo, string source)
    {
        var inputs = new List<ProtocolFile>
        {
            new(Path.Combine(repo, "native/protocol/lock_protocol.x"), "native/protocol/lock_protocol.x", "lock_protocol", "LockProtocol"),
            new(Path.Combine(repo, "native/protocol/log_protocol.x"), "native/protocol/log_protocol.x", "log_protocol", "LogProtocol"),
            new(Path.Combine(repo, "native/protocol/admin_program.x"), "native/protocol/admin_program.x", "admin_program", "AdminProtocol"),
            new(Path.Combine(source, "src/rpc/virnetprotocol.x"), "libvirt 9.0.0's src/rpc/virnetprotocol.x", "virnetprotocol", "VirNetProtocol"),
            new(Path.Combine(source, "src/rpc/virkeepaliveprotocol.x"), "libvirt 9.0.0's src/rpc/virkeepaliveprotocol.x", "virkeepaliveprotocol", "VirKeepAliveProtocol"),
        };
        var programs = new List<ProgramSpec>
        {
            new("lock_protocol", "VirLockSpaceProtocolProgram", "VIR_LOCK_SPACE_PROTOCOL_PROGRAM", "VIR_LOCK_SPACE_PROTOCOL_PROGRAM_VERSION",
                "virLockSpaceProtocolProcedure", "VIR_LOCK_SPACE_PROTOCOL_PROC_", "virLockSpaceProtocol", "The lock space program of virtlockd"),
            new("log_protocol", "VirLogManagerProtocolProgram", "VIR_LOG_MANAGER_PROTOCOL_PROGRAM", "VIR_LOG_MANAGER_PROTOCOL_PROGRAM_VERSION",
                "virLogManagerProtocolProcedure", "VIR_LOG_MANAGER_PROTOCOL_PROC_", "virLogManagerProtocol", "The log manager program of virtlogd"),
            new("admin_program", "VirAdminProtocolProgram", "VIR_ADMIN_PROTOCOL_PROGRAM", "VIR_ADMIN_PROTOCOL_PROGRAM_VERSION",
                "virAdminProtocolProcedure", "VIR_ADMIN_PROTOCOL_PROC_", "virAdminProtocol", "The admin program of the daemons' admin server"),
            new("virkeepaliveprotocol", "VirKeepAliveProgram", "KEEPALIVE_PROGRAM", "KEEPALIVE_PROTOCOL_VERSION",
                "keepalive_procedure", "KEEPALIVE_PROC_", "keepalive", "The keepalive program (messages, no replies)"),
        };

        var defs = new List<Definition>();
        foreach (var f in inputs)
        {
            if (!File.Exists(f.Path))
                throw new XdrGenException($"{f.Path} not found (libvirt's source is unpacked by ./build.sh setup)");
            defs.AddRange(new Parser(f.Path, File.ReadAllText(f.Path)).Parse());
        }
        var emitter = new Emitter(defs, Externals);
        CheckAgainstLibvirt(source, emitter, programs);
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in inputs)
            files[f.Stem + ".cs"] = emitter.EmitFile(f, programs.Where(p => p.File == f.Stem));
        files["XdrTypes.cs"] = emitter.EmitRegistry(inputs);
        using var runtime = Assembly.GetExecutingAssembly().GetManifestResourceStream("XdrRuntime.template")
            ?? throw new XdrGenException("XdrRuntime.template is not embedded");
        files["XdrRuntime.cs"] = "// <auto-generated>\n// Written by interop/XdrGen (./build.sh xdr) from its template Templates/XdrRuntime.template. Do not edit.\n// </auto-generated>\n"
            + new StreamReader(runtime).ReadToEnd();
        return files;
    }
}
