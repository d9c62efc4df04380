using Libvirt.Tests.Handoff;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LogDaemon;
using Xunit;

namespace Libvirt.Tests.Host;

/// <summary>
/// With every subsystem managed (<see cref="DaemonKind.ManagedRpc"/>) the daemon does not load libvirt.so.0,
/// nor glib or libtirpc: it starts, serves and re-execs itself where libvirt0 is not installed. Here the
/// sandbox's mount namespace makes the three libraries empty files (the host is untouched), and the same
/// namespace refuses a daemon that needs libvirt (the control: the libraries really are gone for it).
/// Every other ManagedRpc theory checks the process's maps when its daemon starts and stops
/// (<see cref="DaemonProcess"/>).
/// </summary>
public class LibvirtFreeTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>Each library's real file in the sandbox becomes /dev/null.</summary>
    private static string HideLibraries =>
        "for f in " + string.Join(' ', DaemonProcess.LibvirtLibraries.Select(l => "/usr/lib/x86_64-linux-gnu" + l)) +
        "; do mount --bind /dev/null \"$(readlink -f \"$f\")\" || exit 1; done";

    public static TheoryData<DaemonName> Names => new() { DaemonName.Virtlockd, DaemonName.Virtlogd };

    [Theory]
    [MemberData(nameof(Names))]
    public async Task The_fully_managed_daemon_serves_and_restarts_where_libvirt0_is_not_installed(DaemonName name)
    {
        await using var rig = await HandoffRig.StartAsync(name, [DaemonKind.ManagedRpc, DaemonKind.ManagedRpc], sandboxSetup: HideLibraries);
        AssertNoLibvirt(rig.Pid, "after start");

        // the control: in this namespace a daemon that needs libvirt.so.0 cannot load it, and says so
        var control = await rig.Sandbox.RunInsideAsync(DaemonPaths.Executable(name, DaemonKind.Managed),
            ["-f", rig.Sandbox.WriteTempFile("native.conf", ""), "-p", Path.Combine(rig.TempDir, "control.pid")], Bound);
        Assert.True(control.ExitCode == 1, $"a native daemon ran in the sandbox without libvirt: exit {control.ExitCode}, {control.Stderr}");
        Assert.Contains("cannot load libvirt.so.0", control.Stderr);

        var serve = name == DaemonName.Virtlockd ? LockServingAsync(rig) : LogServingAsync(rig);
        await serve.Before();
        await rig.HandoffAsync(Bound);
        AssertNoLibvirt(rig.Pid, "after the SIGUSR1 re-exec");
        await serve.After();
        AssertNoLibvirt(rig.Pid, "after serving");
        Assert.DoesNotContain(" error : ", rig.Daemon.Stderr);
        // the loop runs on the main thread, as C's; no thread pool (no Generic Host) and no
        // System.Net.Sockets engine thread (no .NET Socket): only the runtime's finalizer besides
        Assert.Equal([DaemonPaths.ExeName(name), ".NET Finalizer"], Threads(rig.Pid));
    }

    /// <summary>The names of the process's threads, the main thread first.</summary>
    private static string[] Threads(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task").Select(t => int.Parse(Path.GetFileName(t)))
            .OrderBy(tid => tid != pid).ThenBy(tid => tid)
            .Select(tid => File.ReadAllText($"/proc/{pid}/task/{tid}/comm").TrimEnd('\n')).ToArray();

    private static void AssertNoLibvirt(int pid, string when)
    {
        var libs = DaemonProcess.MappedLibvirtLibraries(pid);
        Assert.True(libs.Count == 0, $"{when}: pid {pid} maps {string.Join(", ", libs)}");
    }

    private sealed record Serving(Func<Task> Before, Func<Task> After);

    /// <summary>A lease taken before the re-exec is still held after it, on the same connection.</summary>
    private static Serving LockServingAsync(HandoffRig rig)
    {
        LockProtocolClient? client = null;
        var space = Path.Combine(rig.TempDir, "space");
        Directory.CreateDirectory(space);
        var owner = rig.Sandbox.StartOwnerChild();
        return new Serving(
            async () =>
            {
                client = await LockProtocolClient.ConnectAsync(rig.SocketHost);
                await client.CreateLockspaceAsync(space).OkAsync();
                await client.RegisterAsync((uint)owner.Pid).OkAsync();
                await client.CreateResourceAsync(space, "disk").OkAsync();
                await client.AcquireResourceAsync(space, "disk").OkAsync();
            },
            async () =>
            {
                // a second owner is refused the lease the first still holds after the handoff
                using var other = await LockProtocolClient.ConnectAsync(rig.SocketHost);
                using var otherOwner = rig.Sandbox.StartOwnerChild();
                await other.RegisterAsync((uint)otherOwner.Pid, id: 2, name: "other", uuid: LockProtocolClient.DefaultUuid(2)).OkAsync();
                var busy = await other.AcquireResourceAsync(space, "disk");
                Assert.NotNull(busy);
                Assert.Contains("is locked", busy!.Message);
                await client!.ReleaseResourceAsync(space, "disk").OkAsync();
                await other.AcquireResourceAsync(space, "disk").OkAsync();
                client.Dispose();
                owner.Dispose();
            });
    }

    /// <summary>Appends through the daemon's rotating file before and after the re-exec land in order.</summary>
    private static Serving LogServingAsync(HandoffRig rig)
    {
        var path = Path.Combine(rig.TempDir, "domain.log");
        var uuid = LockProtocolClient.DefaultUuid(1);
        async Task AppendAsync(string text)
        {
            using var raw = await RawRpcClient.ConnectAsync(rig.SocketHost);
            var r = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcAppend,
                LogProtocol.AppendArgs("qemu", uuid, "dom", path, text, 0));
            Assert.Null(r.Error);
        }
        return new Serving(
            () => AppendAsync("before\n"),
            async () =>
            {
                await AppendAsync("after\n");
                Assert.Equal("before\nafter\n", File.ReadAllText(path));
            });
    }
}
