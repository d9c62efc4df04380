using Libvirt.Host.Configuration;

namespace Libvirt.LockDaemon;

/// <summary>virtlockd.conf: every key the C daemon reads, with its defaults.</summary>
public sealed class LockDaemonConfig
{
    public uint LogLevel;
    public string? LogFilters;
    public string? LogOutputs;
    public uint MaxClients = 1024;
    public uint AdminMaxClients = 5000;

    /// <summary>Loads <paramref name="path"/>; a missing file is fine only when
    /// it is the implicit default. Throws VirConfException with libvirt's text.</summary>
    public static LockDaemonConfig Load(string path, bool allowMissing)
    {
        var cfg = new LockDaemonConfig();
        if (allowMissing && !File.Exists(path) && !Directory.Exists(path))
            return cfg;
        var conf = VirConf.ReadFile(path);
        conf.GetUInt("log_level", ref cfg.LogLevel);
        conf.GetString("log_filters", ref cfg.LogFilters);
        conf.GetString("log_outputs", ref cfg.LogOutputs);
        conf.GetUInt("max_clients", ref cfg.MaxClients);
        conf.GetUInt("admin_max_clients", ref cfg.AdminMaxClients);
        return cfg;
    }
}
