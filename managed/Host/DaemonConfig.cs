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
    /// <summary>event_loop_impl: libvirt's glib loop or the managed twin.</summary>
    public string EventLoopImpl = VirImplementations.Native;
    /// <summary>logging_impl: libvirt's virLog or the managed twin, for
    /// log_level/log_filters/log_outputs and the admin logging procedures.</summary>
    public string LoggingImpl = VirImplementations.Native;
    /// <summary>rpc_impl: libvirt's virNetDaemon/virNetServer or the managed
    /// RPC core (Rpc/VirNetDaemon.cs), which runs only on the managed loop.</summary>
    public string RpcImpl = VirImplementations.Native;

    protected virtual void Read(VirConf conf)
    {
        conf.GetUInt("log_level", ref LogLevel);
        conf.GetString("log_filters", ref LogFilters);
        conf.GetString("log_outputs", ref LogOutputs);
        conf.GetUInt("max_clients", ref MaxClients);
        conf.GetUInt("admin_max_clients", ref AdminMaxClients);
        ReadImpl(conf, "event_loop_impl", ref EventLoopImpl);
        ReadImpl(conf, "logging_impl", ref LoggingImpl);
        ReadImpl(conf, "rpc_impl", ref RpcImpl);
        // the managed server core watches its sockets on the managed loop: with glib's loop nothing would
        // ever run them, so the combination is refused here rather than hanging at start-up
        if (RpcImpl == VirImplementations.Managed && EventLoopImpl != VirImplementations.Managed)
            throw new VirConfException(VirConfException.VIR_FROM_CONF, VirConfException.VIR_ERR_INTERNAL_ERROR,
                $"{conf.FileName}: invalid value \"managed\" for 'rpc_impl' parameter: it requires event_loop_impl = \"managed\"");
    }

    /// <summary>Every <c>*_impl</c> key with its value, for the start-up log line.</summary>
    /// <summary>Some subsystem is libvirt's: the process loads libvirt.so.0
    /// (and checks its version). With every one managed it never does.</summary>
    public bool UsesLibvirt => Implementations.Any(i => i.Value != VirImplementations.Managed);

    public virtual IEnumerable<(string Key, string Value)> Implementations => [("event_loop_impl", EventLoopImpl), ("logging_impl", LoggingImpl), ("rpc_impl", RpcImpl)];

    /// <summary>A <c>*_impl</c> key: "native" or "managed", anything else a
    /// configuration error. The C daemons ignore these keys, so one file
    /// serves both during a live switch.</summary>
    protected static void ReadImpl(VirConf conf, string key, ref string value, IReadOnlyList<string>? available = null)
    {
        available ??= VirImplementations.Names;
        string? v = null;
        if (!conf.GetString(key, ref v))
            return;
        if (!available.Contains(v!))
            throw new VirConfException(VirConfException.VIR_FROM_CONF, VirConfException.VIR_ERR_INTERNAL_ERROR,
                $"{conf.FileName}: invalid value \"{v}\" for '{key}' parameter: expected {string.Join(" or ", available.Select(a => $"\"{a}\""))}");
        value = v!;
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
