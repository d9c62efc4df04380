using System.Text;
using System.Text.RegularExpressions;
using Libvirt.Tests.Fuzz;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>
/// A log on a full file system (a 64 KiB tmpfs inside the sandbox): the domain's pipe is closed as in C, but
/// ours accounts for every byte the pipe had accepted: what is in the file plus what it logs as dropped (per
/// domain, with the reason) is exactly what the domain wrote. When space returns, a new open works.
/// </summary>
public class DiskFullTests
{
    private const int Written = 48_000; // fits in the pipe (64 KiB) in one write; more than the file system has left

    [Theory]
    [MemberData(nameof(Libvirt.Tests.LockDaemon.DaemonKinds.OursData), MemberType = typeof(Libvirt.Tests.LockDaemon.DaemonKinds))]
    public async Task Every_byte_is_written_or_reported_dropped_and_space_returning_works(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var sb = env.Sandbox;
        var mount = await sb.RunInsideAsync("sh", ["-c",
            "mkdir -p /run/small && mount -t tmpfs -o size=64k tmpfs /run/small && dd if=/dev/zero of=/run/small/filler bs=1k count=40 2>&1"]);
        Assert.True(mount.ExitCode == 0, $"small tmpfs: {mount.Stdout}{mount.Stderr}");
        const string path = "/run/small/dom.log";

        using var s = OpenRaw(env, path, "full");
        var data = Records.Stream(0, Written / 100, 100);
        Assert.Equal(Written, UnixStream.Write(s.ReceivedFds[0], data));

        // the daemon says how much it dropped, for which domain, and why
        var drop = new Regex(@"qemu domain full \([0-9a-f-]+\): (\d+) bytes for /run/small/dom\.log dropped: (.*)$", RegexOptions.Multiline);
        Assert.True(await LogEnv.EventuallyAsync(() => drop.IsMatch(env.Daemon.Stderr) || !env.Daemon.IsRunning, TimeSpan.FromSeconds(30)),
            $"no drop report: {HandoffTail(env.Daemon.Stderr)}");
        env.AssertAlive("on a full file system");
        var m = drop.Match(env.Daemon.Stderr);
        long dropped = long.Parse(m.Groups[1].Value);
        Assert.Contains("No space left on device", m.Groups[2].Value);
        var inFile = File.ReadAllBytes(sb.HostPath(path));
        Assert.True(inFile.Length > 0, "nothing reached the file: the test would not show what is kept");
        Assert.True(dropped > 0, "nothing dropped: the file system was not full");
        Records.AssertEqual(data[..inFile.Length], inFile, "the bytes before the failure, in order");
        Assert.True(inFile.Length + dropped == Written,
            $"{inFile.Length} bytes in the file + {dropped} reported dropped != {Written} written");

        // the domain's pipe is closed: its next write fails
        Assert.True(await LogEnv.EventuallyAsync(() => UnixStream.Write(s.ReceivedFds[0], "x"u8) < 0, TimeSpan.FromSeconds(10)),
            "the pipe of a log that cannot be written stays open");

        // space returns: a new open works and its bytes land
        File.Delete(sb.HostPath("/run/small/filler"));
        using var again = OpenRaw(env, path, "full");
        var more = Encoding.ASCII.GetBytes("space is back\n");
        Assert.Equal(more.Length, UnixStream.Write(again.ReceivedFds[0], more));
        Assert.True(await LogEnv.EventuallyAsync(() => File.ReadAllBytes(sb.HostPath(path)).AsSpan().EndsWith(more), TimeSpan.FromSeconds(10)),
            "the bytes written after space returned did not land");
    }

    private static UnixStream OpenRaw(LogEnv env, string path, string domain)
    {
        var s = UnixStream.Connect(env.Daemon.SocketHostPath, TimeSpan.FromSeconds(10));
        var frame = FrameFuzzer.Frame(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen, 1,
            LogProtocol.OpenArgs("qemu", Guid.NewGuid().ToByteArray(), domain, path, 0));
        Assert.True(s.Send(frame, TimeSpan.FromSeconds(10)));
        var o = new StringBuilder();
        Assert.True(new FrameReader(s).ReadUntil(o, x => x.Serial == 1, "open"), $"no reply to OPEN {path}: {o}");
        Assert.True(s.ReceivedFds.Count == 1, $"OPEN {path}: {o}");
        return s;
    }

    private static string HandoffTail(string s) => string.Join('\n', s.Split('\n').TakeLast(10));
}
