using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Interop;
using Xunit;

namespace Libvirt.Tests.Interop;

/// <summary>The generated bindings are what the headers say, and what the
/// installed libvirt.so.0 exports.</summary>
public class BindingTests
{
    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Migration.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    private static (int Code, string Out, string Err) Run(string file, string args, int timeoutMs = 120_000)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Root,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {args} did not finish in {timeoutMs} ms");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void RegeneratingYieldsNoDiff()
    {
        string bindgen = Directory.GetFiles(Path.Combine(Root, "interop", "Generator", "bin"), "bindgen.dll", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc).First();
        var (code, o, e) = Run("dotnet", $"\"{bindgen}\" --repo \"{Root}\" --check");
        Assert.True(code == 0, $"bindgen --check exited {code}:\n{o}\n{e}");
    }

    private static HashSet<string> Exports(string library)
    {
        var (code, o, e) = Run("nm", $"-D --defined-only \"{library}\"");
        Assert.True(code == 0, e);
        var set = new HashSet<string>();
        foreach (var line in o.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 3)
                set.Add(parts[2]);
        }
        return set;
    }

    [Fact]
    public void EveryImportExistsInTheInstalledLibraries()
    {
        var libvirt = Exports("/usr/lib/x86_64-linux-gnu/libvirt.so.0");
        var shim = Exports(Path.Combine(Root, "artifacts", "native", "libvirtshim.so"));
        var missing = new List<string>();
        int n = 0;
        foreach (var line in File.ReadAllLines(Path.Combine(Root, "interop", "Libvirt.Interop", "Generated", "symbols.txt")))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                continue;
            n++;
            string lib = parts[0], sym = parts[1];
            bool found = lib switch
            {
                // internals must be at exactly the private version we bind;
                // public API at any LIBVIRT_x.y.z version
                "libvirt.so.0" => libvirt.Contains($"{sym}@@LIBVIRT_PRIVATE_9.0.0") ||
                                  libvirt.Any(s => s.StartsWith(sym + "@@LIBVIRT_", StringComparison.Ordinal) && !s.Contains("PRIVATE")),
                "virtshim" => shim.Contains(sym),
                _ => false,
            };
            if (!found)
                missing.Add(line);
        }
        Assert.True(n > 50, $"only {n} imports listed");
        Assert.Empty(missing);
    }

    /// <summary>The daemons' procedure tables pass the XDR through to the
    /// generated managed codecs: the shim they link holds no rpcgen filter
    /// (those are only in the test library virxdrtest).</summary>
    [Fact]
    public void TheShimHasNoRpcgenFilters()
    {
        var shim = Exports(Path.Combine(Root, "artifacts", "native", "libvirtshim.so"));
        Assert.Contains("virtshimXdrArgsInPlace", shim);
        Assert.Contains("virtshimXdrReplyBytes", shim);
        Assert.Empty(shim.Where(s => s.StartsWith("xdr_", StringComparison.Ordinal)));
        Assert.Contains(Exports(Path.Combine(Root, "artifacts", "native", "libvirxdrtest.so")),
            s => s == "xdr_virLockSpaceProtocolRegisterArgs");
    }

    [Fact]
    public void ManagedLayoutsMatchLibclang()
    {
        foreach (var (name, type, size, managed) in GeneratedLayout.Sizes)
            Assert.True(size == managed, $"sizeof({name}): C {size}, C# {managed}");
        foreach (var (name, field, offset) in GeneratedLayout.Offsets)
        {
            var type = GeneratedLayout.Sizes.First(s => s.Struct == name).Type;
            Assert.True(offset == (long)Marshal.OffsetOf(type, field), $"{name}.{field}: C {offset}, C# {Marshal.OffsetOf(type, field)}");
        }
    }

    /// <summary>
    /// The same numbers from gcc, compiling libvirt's headers independently
    /// of libclang: a generator bug in computing layouts cannot hide.
    /// </summary>
    [Fact]
    public void ManagedLayoutsMatchGcc()
    {
        string src = Path.Combine(Root, ".build", "libvirt-9.0.0");
        var headers = File.ReadAllLines(Path.Combine(Root, "native", "headers.txt"))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#') && !l.StartsWith("rpcgen:"))
            .Select(l => l.StartsWith("shim:")
                ? (l.EndsWith(".x") ? Path.GetFileNameWithoutExtension(l[5..].Trim()) + ".h" : Path.Combine(Root, l[5..].Trim()))
                : Path.Combine(src, l))
            .ToList();
        var c = new StringBuilder();
        // internal.h first: it sets up what libvirt's public headers expect
        // when included from inside libvirt (enum sentinels and the like)
        c.AppendLine("#include <stdio.h>\n#include <stddef.h>\n#include \"internal.h\"");
        foreach (var h in headers)
            c.AppendLine($"#include \"{h}\"");
        c.AppendLine("int main(void) {");
        var top = GeneratedLayout.Sizes.Where(s => !s.Struct.Contains('.')).ToList();
        foreach (var s in top)
            c.AppendLine($"printf(\"size {s.Struct} %zu\\n\", sizeof({s.Struct}));");
        foreach (var (name, field, _) in GeneratedLayout.Offsets.Where(o => !o.Struct.Contains('.')))
            c.AppendLine($"printf(\"offset {name} {field} %zu\\n\", offsetof({name}, {field}));");
        c.AppendLine("return 0; }");

        string dir = Directory.CreateTempSubdirectory("layout").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "probe.c"), c.ToString());
            var (pc, pcflags, pcerr) = Run("pkg-config", "--cflags glib-2.0 libtirpc libxml-2.0");
            Assert.True(pc == 0, pcerr);
            string includes = string.Join(" ", new[]
            {
                Path.Combine(Root, "native", "include"), Path.Combine(Root, "native", "shim"),
                Path.Combine(Root, "artifacts", "native", "gen"), Path.Combine(src, "include"), Path.Combine(src, "src"),
                Path.Combine(src, "src", "util"), Path.Combine(src, "src", "rpc"), Path.Combine(src, "src", "conf"),
                Path.Combine(src, "src", "cpu"), Path.Combine(src, "src", "locking"),
            }.Select(i => $"-I\"{i}\""));
            var (cc, co, ce) = Run("gcc", $"-include config.h {includes} {pcflags.Trim()} -o \"{dir}/probe\" \"{dir}/probe.c\" -lvirt -lglib-2.0");
            Assert.True(cc == 0, $"gcc failed:\n{ce}");
            var (rc, output, _) = Run(Path.Combine(dir, "probe"), "");
            Assert.Equal(0, rc);
            int checkedCount = 0;
            foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var w = line.Split(' ');
                if (w[0] == "size")
                {
                    var s = top.First(t => t.Struct == w[1]);
                    Assert.True(long.Parse(w[2]) == s.ManagedSize, $"sizeof({w[1]}): gcc {w[2]}, C# {s.ManagedSize}");
                }
                else
                {
                    var type = top.First(t => t.Struct == w[1]).Type;
                    Assert.True(long.Parse(w[3]) == (long)Marshal.OffsetOf(type, w[2]),
                        $"{w[1]}.{w[2]}: gcc {w[3]}, C# {Marshal.OffsetOf(type, w[2])}");
                }
                checkedCount++;
            }
            Assert.True(checkedCount >= top.Count, "probe printed too little");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public unsafe void InstalledLibvirtIsTheOneBound()
    {
        Assert.Null(Libvirt.Host.LibvirtRuntime.CheckVersion());
    }
}
