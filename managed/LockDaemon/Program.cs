using System.Text.Json.Nodes;
using Libvirt.Host;
using Libvirt.Interop;
using Libvirt.LockDaemon;
using Libvirt.Rpc;
using Libvirt.Util;

return new LockDaemonMain().Run();

namespace Libvirt.LockDaemon
{
    /// <summary>virtlockd.conf: the common keys, and which lock space
    /// implementation serves (lock_space_impl; the C daemon ignores it).</summary>
    public sealed class LockDaemonConfig : DaemonConfig
    {
        public string LockSpaceImpl = VirImplementations.Native;

        protected override void Read(VirConf conf)
        {
            base.Read(conf);
            ReadImpl(conf, "lock_space_impl", ref LockSpaceImpl);
        }

        public override IEnumerable<(string Key, string Value)> Implementations
            => [.. base.Implementations, ("lock_space_impl", LockSpaceImpl)];
    }

    /// <summary>virtlockd: the shared daemon main() with the lock program
    /// over lock spaces.</summary>
    public sealed unsafe class LockDaemonMain : DaemonMain
    {
        private virLockDaemon? _lockd;

        protected override string Name => "virtlockd";
        protected override string Description => "libvirt lock management daemon";
        protected override string LogCategory => "locking.lock_daemon";

        protected override DaemonConfig NewConfig() => new LockDaemonConfig();

        protected override object NewState(DaemonConfig config, bool privileged)
        {
            var factory = VirImplementations.LockSpace(((LockDaemonConfig)config).LockSpaceImpl)!;
            return _lockd = new virLockDaemon(factory, privileged, Log);
        }

        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew => &virLockDaemon.ClientNew;
        protected override delegate* unmanaged[Cdecl]<void*, void> ClientFree => &virLockDaemon.ClientFree;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> ClientPreExecRestart => &virLockDaemon.ClientPreExecRestart;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, virJSONValue*, void*, void*> ClientNewPostExecRestart => &virLockDaemon.ClientNewPostExecRestart;

        protected override bool RestoreState(IVirNetDaemon daemon, JsonObject state, DaemonConfig config, bool privileged)
            => _lockd!.PostExecRestart(state);

        // lock_daemon.c's virLockDaemonNewPostExecRestart: lock spaces first, then "daemon" or the older "server"
        protected override VirError? MissingRestartData(JsonObject state) =>
            (state["defaultLockspace"] is not JsonObject ? "Missing defaultLockspace data from JSON file"
            : state["lockspaces"] is null ? "Missing lockspaces data from JSON file"
            : state["lockspaces"] is not JsonArray ? "Malformed lockspaces array"
            : state["daemon"] is null && state["server"] is null ? "Missing server data from JSON file"
            : null) is { } detail ? VirError.Report(VirErrorDomain.Locking, VirErrorCode.InternalError, detail) : null;

        protected override VirResult SaveState(JsonObject state) => _lockd!.PreExecRestart(state);

        protected override VirResult CreateState(IVirNetDaemon daemon, DaemonConfig config, bool privileged)
            => _lockd!.CreateDefaultLockSpace();

        protected override virNetServerProgram* NewProgram() => virLockSpaceProtocolNative.NewProgram();

        protected override VirNetServerProgram NewManagedProgram()
            => VirNetServerProgram.LockSpace(_lockd!.Procedures, c => (virLockDaemonClient)c.PrivateData!);

        protected override IVirNetServerClientHooks ClientHooks => _lockd!;

        protected override void DisposeState() => _lockd?.Dispose();
    }
}
