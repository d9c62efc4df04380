using Libvirt.Rpc;
using System.Text.Json.Nodes;
using Libvirt.Host;
using Libvirt.Interop;
using Libvirt.LockDaemon;
using Libvirt.LockDaemon.LockSpace;
using Microsoft.Extensions.DependencyInjection;

return new LockDaemonMain().Run();

namespace Libvirt.LockDaemon
{
    /// <summary>virtlockd: the shared daemon main() with the lock program
    /// over lock spaces. virtlockd.conf has only the common keys.</summary>
    public sealed unsafe class LockDaemonMain : DaemonMain
    {
        private virLockDaemon? _lockd;

        protected override string Name => "virtlockd";
        protected override string Description => "libvirt lock management daemon";
        protected override string LogCategory => "locking.lock_daemon";

        protected override DaemonConfig NewConfig() => new();

        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, void*> ClientNew => &virLockDaemon.ClientNew;
        protected override delegate* unmanaged[Cdecl]<void*, void> ClientFree => &virLockDaemon.ClientFree;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, void*, virJSONValue*> ClientPreExecRestart => &virLockDaemon.ClientPreExecRestart;
        protected override delegate* unmanaged[Cdecl]<virNetServerClient*, virJSONValue*, void*, void*> ClientNewPostExecRestart => &virLockDaemon.ClientNewPostExecRestart;

        protected override bool RestoreState(VirNetDaemonNative daemon, JsonObject state, DaemonConfig config, bool privileged)
        {
            _lockd = virLockDaemon.NewPostExecRestart(new NativeLockSpaceFactory(), state, privileged, Log);
            return _lockd is not null;
        }

        protected override bool SaveState(JsonObject state) => _lockd!.PreExecRestart(state);

        protected override bool CreateState(VirNetDaemonNative daemon, DaemonConfig config, bool privileged)
        {
            // Only the native lock space exists at this step; the interface
            // is where a managed one will be chosen by configuration.
            _lockd = virLockDaemon.New(new NativeLockSpaceFactory(), privileged, Log);
            return _lockd is not null;
        }

        protected override virNetServerProgram* NewProgram() => virLockSpaceProtocolDispatch.NewProgram();

        protected override void AddServices(IServiceCollection services) => services.AddSingleton(_lockd!);

        protected override void DisposeState() => _lockd?.Dispose();
    }
}
