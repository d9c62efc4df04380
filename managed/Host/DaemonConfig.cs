using Libvirt.Util;
using Libvirt.Util;
using Libvirt.Host.Configuration;

namespace Libvirt.Host;

/// <summary>The keys every libvirt daemon config has (virtlockd.conf and
/// virtlogd.conf share them), read in the C daemons' order so the first
/// error reported is the same one.</summary>
public class DaemonConfig
{
    public uint LogLevel;
    public string? LogFilters;
    public string? LogOutputs;
    public uint MaxClients = 1024;
    public uint AdminMaxClients = 5000;

    protected virtual void Read(VirConf conf)
    {
        conf.GetUInt("log_level", ref LogLevel);
        conf.GetString("log_filters", ref LogFilters);
        conf.GetString("log_outputs", ref LogOutputs);
        conf.GetUInt("max_clients", ref MaxClients);
        conf.GetUInt("admin_max_clients", ref AdminMaxClients);
    }

    /// <summary>Reads <paramref name="path"/> into this config. A missing
    /// file is fine only for the implicit default path. Throws
    /// VirConfException with libvirt's text.</summary>
    public void Load(string path, bool allowMissing)
    {
        if (allowMissing && !File.Exists(path) && !Directory.Exists(path))
            return;
        Read(VirConf.ReadFile(path));
    }
}
