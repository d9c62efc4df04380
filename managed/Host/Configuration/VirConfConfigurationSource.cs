using Libvirt.Util;
using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Libvirt.Host.Configuration;

/// <summary>Exposes a virConf file through Microsoft.Extensions.Configuration.
/// Values become strings (numbers in decimal, lists as key:0, key:1, ...);
/// for libvirt's exact type checks and messages use <see cref="VirConf"/>'s
/// typed getters instead.</summary>
public sealed class VirConfConfigurationSource : IConfigurationSource
{
    public VirConfConfigurationSource(string path, bool optional = false)
    {
        Path = path;
        Optional = optional;
    }

    public string Path { get; }

    /// <summary>When true a missing file (ENOENT) gives an empty configuration,
    /// as the daemons do for their implicit default config file.</summary>
    public bool Optional { get; }

    public IConfigurationProvider Build(IConfigurationBuilder builder) => new VirConfConfigurationProvider(this);
}

public sealed class VirConfConfigurationProvider : ConfigurationProvider
{
    private const int ENOENT = 2;

    private readonly VirConfConfigurationSource _source;

    public VirConfConfigurationProvider(VirConfConfigurationSource source) => _source = source;

    /// <summary>The parsed file after <see cref="Load"/>, or null when it was optional and absent.</summary>
    public VirConf? Conf { get; private set; }

    /// <summary>Throws <see cref="VirConfException"/> with libvirt's message on failure.</summary>
    public override void Load()
    {
        VirConf? conf = null;
        try
        {
            conf = VirConf.ReadFile(_source.Path);
        }
        catch (VirConfException e) when (_source.Optional && e.Code == VirConfException.VIR_ERR_SYSTEM_ERROR && e.Errno == ENOENT)
        {
        }
        Conf = conf;
        Data = conf is null ? new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase) : ToData(conf);
    }

    /// <summary>Flattens a parsed file into configuration keys. The first
    /// occurrence of a key wins, as in virConfGetValue.</summary>
    public static Dictionary<string, string?> ToData(VirConf conf)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in conf.Entries)
        {
            if (seen.Add(key))
                Add(data, key, value);
        }
        return data;
    }

    private static void Add(Dictionary<string, string?> data, string key, VirConfValue value)
    {
        switch (value.Type)
        {
            case VirConfType.List:
                for (int i = 0; i < value.List.Count; i++)
                    Add(data, key + ConfigurationPath.KeyDelimiter + i.ToString(CultureInfo.InvariantCulture), value.List[i]);
                break;
            default:
                data[key] = value.ToString();
                break;
        }
    }
}

public static class VirConfConfigurationExtensions
{
    public static IConfigurationBuilder AddVirConfFile(this IConfigurationBuilder builder, string path, bool optional = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(path);
        return builder.Add(new VirConfConfigurationSource(path, optional));
    }
}
