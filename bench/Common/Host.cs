// Shared by bench/LockBench and bench/LogBench: Main wrapper (culture,
// Ctrl-C / exit cleanup), repo lookup and prerequisites, machine info,
// statistics and Markdown helpers.
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Libvirt.Bench.Common;

public static class BenchHost
{
    private static readonly List<PosixSignalRegistration> s_signals = new();

    /// <summary>Runs a bench: invariant culture, kill every started process on Ctrl-C, exit or exception.</summary>
    public static int Run<TOptions>(string tool, string usage, string[] args, Func<string[], TOptions> parse,
        Func<TOptions, bool> help, Func<TOptions, int> run)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        TOptions opt;
        try { opt = parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"{tool}: {e.Message}");
            Console.Error.WriteLine(usage);
            return 2;
        }
        if (help(opt)) { Console.WriteLine(usage); return 0; }

        // Ctrl-C (SIGINT), SIGTERM, SIGHUP, SIGQUIT: kill every started process group and delete the
        // scratch directories, then let the default handling terminate the harness.
        foreach (var sig in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT })
            s_signals.Add(PosixSignalRegistration.Create(sig, ctx =>
            {
                Console.Error.WriteLine($"{tool}: {ctx.Signal}, killing started processes");
                Procs.KillAll();
                Procs.DeleteDirs();
                ctx.Cancel = false;
            }));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { Procs.KillAll(); Procs.DeleteDirs(); };
        try
        {
            return run(opt);
        }
        catch (BenchSetupException e)
        {
            Console.Error.WriteLine($"{tool}: {e.Message}");
            return 3;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{tool}: failed: {e}");
            return 1;
        }
        finally
        {
            Procs.KillAll();
            Procs.DeleteDirs();
        }
    }

    /// <summary>The repository root (the directory holding Migration.sln) above the running bench.</summary>
    public static string FindRepo(string project)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Migration.sln"))) return d.FullName;
        throw new BenchSetupException($"Migration.sln not found above {AppContext.BaseDirectory}; run from the repository (dotnet run --project bench/{project} -c Release)");
    }

    /// <summary>Throws a BenchSetupException listing every missing prerequisite (files with how to get them; root).</summary>
    public static void Require(IEnumerable<(string path, string howTo)> files)
    {
        var missing = new List<string>();
        foreach (var (path, howTo) in files)
            if (!File.Exists(path)) missing.Add(howTo);
        if (Environment.UserName != "root" && Native.GetEuid() != 0)
            missing.Add("must run as root (unshare -m / mount tmpfs on /run in a private namespace)");
        if (missing.Count > 0) throw new BenchSetupException(string.Join("\n  ", ["cannot run:", .. missing]));
    }

    public static void Log(string s) => Console.Error.WriteLine(s);

    /// <summary>Prints the report, writes it to outPath and logs where.</summary>
    public static void WriteResults(string md, string outPath)
    {
        Console.WriteLine();
        Console.WriteLine(md);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        File.WriteAllText(outPath, md);
        Log($"results written to {outPath}");
    }

    public static string Trim(string s) { s = s.Trim(); return s.Length > 400 ? s[..400] + "…" : s; }
}

public static class Machine
{
    public static string LoadAvg() { try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); } catch { return "?"; } }

    /// <summary>"nproc N, CPU `model`, X GiB RAM, kernel K"</summary>
    public static string Describe()
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "unknown";
        string kernel = File.Exists("/proc/sys/kernel/osrelease") ? File.ReadAllText("/proc/sys/kernel/osrelease").Trim() : "?";
        double memGb = double.NaN;
        try { memGb = double.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024 / 1024; } catch { }
        return $"nproc {Environment.ProcessorCount}, CPU `{cpu}`, {memGb:F1} GiB RAM, kernel {kernel}";
    }

    /// <summary>The standard report preamble: title, date, machine, load average, command.</summary>
    public static void Preamble(StringBuilder sb, string title, DateTime started, string loadStart, string project, string commandLine)
    {
        string cmd = $"dotnet run --project bench/{project} -c Release --" + (commandLine.Length > 0 ? " " + commandLine : "");
        sb.AppendLine($"# {title}");
        sb.AppendLine();
        sb.AppendLine($"- Date: {started:yyyy-MM-dd HH:mm:ss zzz} (all figures below measured in this one run)");
        sb.AppendLine($"- Machine: {Describe()}");
        sb.AppendLine($"- Load average (1/5/15 min) at start: {loadStart}; at end: {LoadAvg()} (other work on the machine is not controlled)");
        sb.AppendLine($"- Command (from the repo root): `{cmd}`");
    }
}

public static class Stats
{
    public static double Median(IEnumerable<double> xs)
    {
        var a = xs.Where(x => !double.IsNaN(x)).OrderBy(x => x).ToArray();
        if (a.Length == 0) return double.NaN;
        return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2;
    }

    /// <summary>"median (min–max)", or the single value, or "n/a"; NaNs are ignored.</summary>
    public static string MedRange(IEnumerable<double> xs, string fmt)
    {
        var a = xs.Where(x => !double.IsNaN(x)).ToArray();
        if (a.Length == 0) return "n/a";
        return a.Length == 1 ? a[0].ToString(fmt) : $"{Median(a).ToString(fmt)} ({a.Min().ToString(fmt)}–{a.Max().ToString(fmt)})";
    }
}

public static class Md
{
    /// <summary>Header row + alignment row; columns starting with '<' are left-aligned (the '<' is dropped), others right-aligned except the first when named "".</summary>
    public static void TableHeader(StringBuilder sb, params string[] cols)
    {
        sb.AppendLine("| " + string.Join(" | ", cols.Select(c => c.TrimStart('<'))) + " |");
        sb.AppendLine("|" + string.Join("|", cols.Select(c => c.StartsWith('<') ? "---" : "---:")) + "|");
    }

    public static void Row(StringBuilder sb, params object[] cells) =>
        sb.AppendLine("| " + string.Join(" | ", cells) + " |");
}
