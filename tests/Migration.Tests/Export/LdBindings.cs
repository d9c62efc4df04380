using System.Text.RegularExpressions;

namespace Libvirt.Tests.Export;

/// <summary>
/// The dynamic loader's own account of which object each symbol reference
/// was bound to (LD_DEBUG=bindings, written to LD_DEBUG_OUTPUT.&lt;pid&gt;):
/// the evidence that a C program's calls reach libvirt-managed.so and not
/// libvirt.so.0, whatever its exit code says.
/// </summary>
public sealed partial record LdBinding(string From, string To, string Symbol, string? Version)
{
    [GeneratedRegex(@"binding file (?<from>\S+) \[\d+\] to (?<to>\S+) \[\d+\]: normal symbol `(?<sym>[^']+)'(?: \[(?<ver>[^\]]+)\])?")]
    private static partial Regex Line();

    /// <summary>Every binding in the LD_DEBUG_OUTPUT files whose name starts with <paramref name="prefix"/>.</summary>
    public static List<LdBinding> Read(string prefix)
    {
        var dir = Path.GetDirectoryName(prefix)!;
        var list = new List<LdBinding>();
        foreach (var file in Directory.GetFiles(dir, Path.GetFileName(prefix) + ".*"))
            foreach (Match m in Line().Matches(File.ReadAllText(file)))
                list.Add(new LdBinding(m.Groups["from"].Value, m.Groups["to"].Value, m.Groups["sym"].Value,
                    m.Groups["ver"].Success ? m.Groups["ver"].Value : null));
        return list;
    }

    /// <summary>The functions the bottom-up library takes over.</summary>
    public static bool IsTwinSymbol(string symbol) =>
        symbol.StartsWith("virLockSpace", StringComparison.Ordinal) ||
        symbol.StartsWith("virRotatingFile", StringComparison.Ordinal) ||
        symbol is "virEventRegisterDefaultImpl" or "virEventRunDefaultImpl";

    public static bool IsLibvirt(string path) => Path.GetFileName(path).StartsWith("libvirt.so.0", StringComparison.Ordinal);

    public override string ToString() => $"{From} -> {To}: {Symbol} [{Version}]";
}
