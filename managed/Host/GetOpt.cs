namespace Libvirt.Host;

/// <summary>
/// The command-line scanner the C daemons use is glibc's getopt_long with
/// argument permutation. Operators and unit files rely on its exact
/// behaviour (option clustering, "-t5", "--timeout=5", unambiguous long
/// prefixes, its error texts), so this reproduces it rather than using a
/// general-purpose parser whose rules and messages differ.
/// </summary>
public sealed class GetOpt
{
    public readonly record struct LongOption(string Name, bool RequiresArgument, char ShortName);

    public readonly record struct Result(char Option, string? Argument);

    private readonly string _argv0;
    private readonly string _shortSpec;
    private readonly LongOption[] _longOptions;

    public GetOpt(string argv0, string shortSpec, params LongOption[] longOptions)
    {
        _argv0 = argv0;
        _shortSpec = shortSpec;
        _longOptions = longOptions;
    }

    /// <summary>
    /// Scans <paramref name="args"/> (without argv[0]). Returns the options in
    /// order; on the first error returns the message glibc would print and
    /// stops, as the daemons print usage and exit on the first '?'.
    /// Non-option arguments are collected in <paramref name="operands"/>.
    /// </summary>
    public (List<Result> Options, string? Error) Parse(IReadOnlyList<string> args, List<string>? operands = null)
    {
        var results = new List<Result>();
        for (int i = 0; i < args.Count; i++)
        {
            string arg = args[i];
            if (arg == "--")
            {
                for (int j = i + 1; j < args.Count; j++)
                    operands?.Add(args[j]);
                break;
            }
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                string body = arg[2..];
                string name = body;
                string? inlineValue = null;
                int eq = body.IndexOf('=');
                if (eq >= 0)
                {
                    name = body[..eq];
                    inlineValue = body[(eq + 1)..];
                }
                LongOption? match = null;
                var prefixMatches = new List<LongOption>();
                foreach (var o in _longOptions)
                {
                    if (o.Name == name) { match = o; break; }
                    if (o.Name.StartsWith(name, StringComparison.Ordinal))
                        prefixMatches.Add(o);
                }
                if (match is null)
                {
                    if (prefixMatches.Count == 1)
                        match = prefixMatches[0];
                    else if (prefixMatches.Count > 1)
                    {
                        string poss = string.Join(" ", prefixMatches.Select(p => $"'--{p.Name}'"));
                        return (results, $"{_argv0}: option '--{name}' is ambiguous; possibilities: {poss}\n");
                    }
                    else
                        return (results, $"{_argv0}: unrecognized option '--{name}'\n");
                }
                var lo = match.Value;
                if (lo.RequiresArgument)
                {
                    if (inlineValue is null)
                    {
                        if (i + 1 >= args.Count)
                            return (results, $"{_argv0}: option '--{lo.Name}' requires an argument\n");
                        inlineValue = args[++i];
                    }
                    results.Add(new Result(lo.ShortName, inlineValue));
                }
                else
                {
                    if (inlineValue is not null)
                        return (results, $"{_argv0}: option '--{lo.Name}' doesn't allow an argument\n");
                    results.Add(new Result(lo.ShortName, null));
                }
                continue;
            }
            if (arg.Length > 1 && arg[0] == '-')
            {
                for (int k = 1; k < arg.Length; k++)
                {
                    char c = arg[k];
                    int pos = c == ':' ? -1 : _shortSpec.IndexOf(c);
                    if (pos < 0)
                        return (results, $"{_argv0}: invalid option -- '{c}'\n");
                    bool needsArg = pos + 1 < _shortSpec.Length && _shortSpec[pos + 1] == ':';
                    if (!needsArg)
                    {
                        results.Add(new Result(c, null));
                        continue;
                    }
                    if (k + 1 < arg.Length)
                    {
                        results.Add(new Result(c, arg[(k + 1)..]));
                    }
                    else if (i + 1 < args.Count)
                    {
                        results.Add(new Result(c, args[++i]));
                    }
                    else
                    {
                        return (results, $"{_argv0}: option requires an argument -- '{c}'\n");
                    }
                    break;
                }
                continue;
            }
            operands?.Add(arg);
        }
        return (results, null);
    }
}
