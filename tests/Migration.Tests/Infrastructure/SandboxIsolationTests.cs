using Libvirt.Tests.LogDaemon;
using Xunit;

namespace Libvirt.Tests.Infrastructure;

/// <summary>
/// A daemon under test must never reach the host's /dev: virtlogd told to
/// truncate a log at /dev/null unlinks the node (both C and ours do, as
/// libvirt's rotating file deletes before it opens), and a later open would
/// create a regular file in its place. The sandbox's private /dev takes it.
/// </summary>
public sealed class SandboxIsolationTests
{
    [Theory]
    [MemberData(nameof(Libvirt.Tests.LockDaemon.DaemonKinds.All), MemberType = typeof(Libvirt.Tests.LockDaemon.DaemonKinds))]
    public async Task Truncating_dev_null_through_virtlogd_leaves_the_hosts_alone(DaemonKind kind)
    {
        Assert.True(IsCharDevice("/dev/null"), "the host's /dev/null is not a character device before the test");
        await using var env = await LogEnv.StartAsync(kind);
        using var raw = await env.RawAsync();
        var open = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen,
            LogProtocol.OpenArgs("qemu", new byte[16], "dom", "/dev/null", LogProtocol.OpenTruncate));
        Assert.Null(open.Error);
        // inside, the node was replaced by a regular log file; outside, nothing changed
        Assert.False(IsCharDevice(env.Sandbox.HostPath("/dev/null")), "the sandbox's /dev/null was not truncated: the test proves nothing");
        Assert.True(IsCharDevice("/dev/null"), "the host's /dev/null is no longer a character device");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int stat(string path, byte[] buf);

    /// <summary>S_ISCHR of st_mode (x86_64 struct stat: st_mode at byte 24).</summary>
    private static bool IsCharDevice(string path)
    {
        var b = new byte[256];
        return stat(path, b) == 0 && (BitConverter.ToUInt32(b, 24) & 0xF000) == 0x2000;
    }
}
