// bindgen: generates interop/Libvirt.Interop/Generated from libvirt 9.0.0's
// headers (see native/headers.txt and interop/allowlist.txt) through libclang.
//
//   dotnet run --project interop/Generator -- --repo /work/main [--check]
//
// Requires the native build first (it generates the rpcgen headers into
// artifacts/native/gen). --check regenerates in memory and exits 1 when the
// committed files differ.
using System.Runtime.InteropServices;
using System.Text;

namespace Libvirt.Interop.Generator;

internal sealed class Options
{
    public string Repo = Directory.GetCurrentDirectory();
    public string? Source, Gen, Out, ClangInclude, AllowList;
    public string LibClang = "/usr/lib/llvm-14/lib/libclang.so.1";
    public string Libvirt = "/usr/lib/x86_64-linux-gnu/libvirt.so.0";
    public bool Check, Verbose;

    public string SourceDir => Source ?? Path.Combine(Repo, ".build", "libvirt-9.0.0");
    public string GenDir => Gen ?? Path.Combine(Repo, "artifacts", "native", "gen");
    public string OutDir => Out ?? Path.Combine(Repo, "interop", "Libvirt.Interop", "Generated");
}

internal static class Program
{
    private const string Usage =
        "usage: bindgen [--repo DIR] [--source DIR] [--gen DIR] [--out DIR] [--allowlist FILE] [--libclang PATH] [--libvirt PATH] [--clang-include DIR] [--check] [--verbose]";

    private static int Main(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--repo": o.Repo = Path.GetFullPath(Next()); break;
                case "--source": o.Source = Path.GetFullPath(Next()); break;
                case "--gen": o.Gen = Path.GetFullPath(Next()); break;
                case "--out": o.Out = Path.GetFullPath(Next()); break;
                case "--allowlist": o.AllowList = Path.GetFullPath(Next()); break;
                case "--libvirt": o.Libvirt = Next(); break;
                case "--libclang": o.LibClang = Next(); break;
                case "--clang-include": o.ClangInclude = Next(); break;
                case "--check": o.Check = true; break;
                case "--verbose": o.Verbose = true; break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default: Console.Error.WriteLine($"bindgen: unknown argument {args[i]}\n{Usage}"); return 2;
            }
        }

        // Bind the "libclang" DllImports to the chosen libclang (Debian's libclang-14 by default).
        NativeLibrary.SetDllImportResolver(typeof(Program).Assembly,
            (name, _, _) => name == "libclang" ? NativeLibrary.Load(o.LibClang) : 0);

        SortedDictionary<string, string> files;
        try
        {
            files = new Bindgen(o).Run();
        }
        catch (BindgenException e)
        {
            Console.Error.WriteLine($"bindgen: error: {e.Message}");
            return 2;
        }

        var existing = Directory.Exists(o.OutDir)
            ? Directory.EnumerateFiles(o.OutDir).Where(IsOurs).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string?>();

        if (o.Check)
        {
            var diffs = new List<string>();
            foreach (var (name, text) in files)
            {
                var path = Path.Combine(o.OutDir, name);
                if (!File.Exists(path)) diffs.Add($"missing {name}");
                else if (File.ReadAllText(path) != text) diffs.Add($"differs {name}");
            }
            diffs.AddRange(existing.Where(n => !files.ContainsKey(n!)).Select(n => $"stale {n}"));
            foreach (var d in diffs) Console.Error.WriteLine($"bindgen: check: {d}");
            if (diffs.Count > 0) { Console.Error.WriteLine("bindgen: generated bindings are out of date; rerun without --check"); return 1; }
            Console.WriteLine($"bindgen: {files.Count} generated files are up to date");
            return 0;
        }

        Directory.CreateDirectory(o.OutDir);
        foreach (var stale in existing.Where(n => !files.ContainsKey(n!)))
            File.Delete(Path.Combine(o.OutDir, stale!));
        var utf8 = new UTF8Encoding(false);
        foreach (var (name, text) in files)
        {
            var path = Path.Combine(o.OutDir, name);
            if (!File.Exists(path) || File.ReadAllText(path) != text) File.WriteAllText(path, text, utf8);
        }
        Console.WriteLine($"bindgen: wrote {files.Count} files to {o.OutDir}");
        return 0;
    }

    // Only files the generator owns are compared or deleted.
    private static bool IsOurs(string path) => path.EndsWith(".cs", StringComparison.Ordinal) || Path.GetFileName(path) == "symbols.txt";
}

internal sealed class BindgenException(string message) : Exception(message);
