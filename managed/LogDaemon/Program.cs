using Libvirt.Util;
using Libvirt.Rpc;
using System.Text.Json.Nodes;
using Libvirt.Host;
using Libvirt.Host.Configuration;
using Libvirt.Interop;
using Libvirt.LogDaemon;
using Libvirt.LogDaemon.RotatingFile;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

return new LogDaemonMain().Run();

namespace Libvirt.LogDaemon
{
    /// <summary>virtlogd.conf: the common keys, then the rotation limits.</summary>
    public sealed class LogDaemonConfig : DaemonConfig
    {
        public ulong MaxSize = 2 * 1024 * 1024;
        public ulong MaxBackups = 3;

        protected override void Read(VirConf conf)
        {
            base.Read(conf);
            conf.GetSizeT("max_size", ref MaxSize);
            conf.GetSizeT("max_backups", ref MaxBackups);
        }
    }

    /// <summary>virtlogd: the shared daemon main() with the log program over
    /// the log handler and rotating files.</summary>
    public sealed unsafe class LogDaemonMain : DaemonMain
    {
        private virLogHandler? _handler;

        protected override string Name => "virtlogd";
        protected override string Description => "libvirt log management daemon";
        protected override string LogCategory => "logging.log_daemon";

        protected override DaemonConfig NewConfig() => new LogDaemonConfig();

        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew => &virLogDaemonClient.ClientNew;
        protected override delegate* unmanaged[Cdecl]<void*, void> ClientFree => &virLogDaemonClient.ClientFree;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> ClientPreExecRestart => &virLogDaemonClient.ClientPreExecRestart;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, virJSONValue*, void*, void*> ClientNewPostExecRestart => &virLogDaemonClient.ClientNewPostExecRestart;

        protected override bool RestoreState(VirNetDaemonNative daemon, JsonObject state, DaemonConfig config, bool privileged)
        {
            if (!CreateState(daemon, config, privileged))
                return false;
            if (state["handler"] is not JsonObject handler)
            {
                Log.LogError("Missing handler data from JSON file");
                return false;
            }
            return _handler!.PostExecRestart(handler);
        }

        protected override bool SaveState(JsonObject state)
        {
            var handler = _handler!.PreExecRestart();
            if (handler is null)
                return false;
            state["handler"] = handler;
            return true;
        }

        protected override bool CreateState(VirNetDaemonNative daemon, DaemonConfig config, bool privileged)
        {
            var c = (LogDaemonConfig)config;
            // Only the native rotating file exists at this step; the interface
            // is where a managed one will be chosen by configuration.
            _handler = new virLogHandler(new NativeRotatingFileFactory(), daemon, privileged, c.MaxSize, c.MaxBackups, Log);
            return true;
        }

        protected override virNetServerProgram* NewProgram() => virLogManagerProtocolDispatch.NewProgram();

        protected override void AddServices(IServiceCollection services) => services.AddSingleton(_handler!);

        protected override void DisposeState() => _handler?.Dispose();
    }
}
