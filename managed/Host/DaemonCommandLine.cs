namespace Libvirt.Host;

/// <summary>
/// The options virtlockd and virtlogd share (-h, -v, -d, -t, -f, -V, -p),
/// scanned as the C daemons scan them.
/// </summary>
public sealed class DaemonCommandLine
{
    public bool Verbose { get; private set; }
    public bool Daemon { get; private set; }
    public int Timeout { get; private set; }
    public string? ConfigFile { get; private set; }
    public string? PidFile { get; private set; }
    public bool ShowVersion { get; private set; }
    public bool ShowHelp { get; private set; }

    /// <summary>What getopt printed, when scanning failed.</summary>
    public string? Error { get; private set; }
    /// <summary>Set when -t was not a number in range.</summary>
    public bool InvalidTimeout { get; private set; }

    private static readonly GetOpt.LongOption[] LongOptions =
    {
        new("verbose", false, 'v'),
        new("daemon", false, 'd'),
        new("config", true, 'f'),
        new("timeout", true, 't'),
        new("pid-file", true, 'p'),
        new("version", false, 'V'),
        new("help", false, 'h'),
    };

    public static DaemonCommandLine Parse(string argv0, IReadOnlyList<string> args)
    {
        var cl = new DaemonCommandLine();
        var (options, error) = new GetOpt(argv0, "df:p:t:vVh", LongOptions).Parse(args);
        foreach (var o in options)
        {
            switch (o.Option)
            {
                case 'v': cl.Verbose = true; break;
                case 'd': cl.Daemon = true; break;
                case 'f': cl.ConfigFile = o.Argument; break;
                case 'p': cl.PidFile = o.Argument; break;
                case 't':
                    if (!TryParseTimeout(o.Argument!, out int t))
                    {
                        // the C daemons stop at the first bad -t, before later options
                        cl.InvalidTimeout = true;
                        return cl;
                    }
                    cl.Timeout = t;
                    break;
                case 'V': cl.ShowVersion = true; return cl;
                case 'h': cl.ShowHelp = true; return cl;
            }
        }
        cl.Error = error;
        return cl;
    }

    /// <summary>
    /// libvirt reads -t with strtol semantics (leading blanks and sign,
    /// trailing text ignored), then wants 0 &lt;= t &lt;= INT_MAX/1000.
    /// </summary>
    public static bool TryParseTimeout(string s, out int value)
    {
        value = 0;
        int i = 0;
        while (i < s.Length && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
            i++;
        bool negative = false;
        if (i < s.Length && (s[i] == '+' || s[i] == '-'))
            negative = s[i++] == '-';
        int start = i;
        long acc = 0;
        while (i < s.Length && s[i] >= '0' && s[i] <= '9')
        {
            acc = acc * 10 + (s[i] - '0');
            if (acc > int.MaxValue + 1L)
                return false;
            i++;
        }
        if (i == start)
            return false;
        if (negative)
            acc = -acc;
        if (acc < 0 || acc > int.MaxValue / 1000)
            return false;
        value = (int)acc;
        return true;
    }
}
