using Libvirt.Util;
using Libvirt.Rpc;
using System.Text.Json.Nodes;
using Libvirt.Host;
using Libvirt.Host.Configuration;
using Libvirt.Interop;
using Libvirt.LogDaemon;
using Microsoft.Extensions.Logging;

return new LogDaemonMain().Run();

namespace Libvirt.LogDaemon
{
    /// <summary>virtlogd.conf: the common keys, then the rotation limits,
    /// and which rotating-file implementation writes the logs
    /// (rotating_file_impl; the C daemon ignores it).</summary>
    public sealed class LogDaemonConfig : DaemonConfig
    {
        public ulong MaxSize = 2 * 1024 * 1024;
        public ulong MaxBackups = 3;
        public string RotatingFileImpl = VirImplementations.Native;

        protected override void Read(VirConf conf)
        {
            base.Read(conf);
            conf.GetSizeT("max_size", ref MaxSize);
            conf.GetSizeT("max_backups", ref MaxBackups);
            ReadImpl(conf, "rotating_file_impl", ref RotatingFileImpl);
        }

        public override IEnumerable<(string Key, string Value)> Implementations
            => [.. base.Implementations, ("rotating_file_impl", RotatingFileImpl)];
    }

    /// <summary>virtlogd: the shared daemon main() with the log program over
    /// the log handler and rotating files.</summary>
    public sealed unsafe class LogDaemonMain : DaemonMain
    {
        private virLogDaemon? _logd;
        private virLogHandler? _handler;

        protected override string Name => "virtlogd";
        protected override string Description => "libvirt log management daemon";
        protected override string LogCategory => "logging.log_daemon";

        protected override DaemonConfig NewConfig() => new LogDaemonConfig();

        protected override object NewState(DaemonConfig config, bool privileged) => _logd = new virLogDaemon(privileged);

        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew => &virLogDaemonClient.ClientNew;
        protected override delegate* unmanaged[Cdecl]<void*, void> ClientFree => &virLogDaemonClient.ClientFree;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> ClientPreExecRestart => &virLogDaemonClient.ClientPreExecRestart;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, virJSONValue*, void*, void*> ClientNewPostExecRestart => &virLogDaemonClient.ClientNewPostExecRestart;

        protected override bool RestoreState(IVirNetDaemon daemon, JsonObject state, DaemonConfig config, bool privileged)
        {
            if (!CreateState(daemon, config, privileged).Ok)
                return false;
            return _handler!.PostExecRestart((JsonObject)state["handler"]!);
        }

        // log_daemon.c's virLogDaemonNewPostExecRestart says the same of both keys
        protected override VirError? MissingRestartData(JsonObject state) =>
            (state["daemon"] ?? state["server"]) is null || state["handler"] is not JsonObject
                ? VirError.Report(VirErrorDomain.Logging, VirErrorCode.InternalError, "Malformed daemon data from JSON file") : null;

        protected override VirResult SaveState(JsonObject state)
        {
            if (!_handler!.PreExecRestart().TryGet(out var handler, out var err))
                return err!;
            state["handler"] = handler;
            return VirResult.Success;
        }

        protected override VirResult CreateState(IVirNetDaemon daemon, DaemonConfig config, bool privileged)
        {
            var c = (LogDaemonConfig)config;
            var factory = VirImplementations.RotatingFile(c.RotatingFileImpl)!;
            _logd!.Handler = _handler = new virLogHandler(factory, daemon, privileged, c.MaxSize, c.MaxBackups, Log);
            return VirResult.Success;
        }

        protected override virNetServerProgram* NewProgram() => virLogManagerProtocolNative.NewProgram();

        protected override VirNetServerProgram NewManagedProgram()
            => VirNetServerProgram.LogManager(_logd!.Procedures, c => (virLogDaemonClient)c.PrivateData!);

        protected override IVirNetServerClientHooks ClientHooks => _logd!;

        protected override void DisposeState() => _handler?.Dispose();
    }
}
