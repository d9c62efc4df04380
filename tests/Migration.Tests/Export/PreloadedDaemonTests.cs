using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Libvirt.Tests.LogDaemon;
using Xunit;

namespace Libvirt.Tests.Export;

/// <summary>
/// Proof that with libvirt-managed.so preloaded the unmodified C daemons run
/// the managed twins: the loader binds the daemon's virLockSpace* /
/// virRotatingFile* calls and libvirt.so.0's virEventRunDefaultImpl to our
/// library (and, for contrast, to libvirt.so.0 without the preload), the
/// daemon serves through them, and the loop it iterates is the managed epoll
/// loop (glib's polls with poll(2): the C daemon alone has no epoll fd).
/// </summary>
public sealed class PreloadedDaemonTests
{
    public static TheoryData<DaemonName, DaemonKind> Cases => new()
    {
        { DaemonName.Virtlockd, DaemonKind.C }, { DaemonName.Virtlockd, DaemonKind.CPreloaded },
        { DaemonName.Virtlogd, DaemonKind.C }, { DaemonName.Virtlogd, DaemonKind.CPreloaded },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task TheDaemonsCallsBindToTheManagedTwinsAndItServesThroughThem(DaemonName name, DaemonKind kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        var ldPrefix = Path.Combine(sb.TempDir, "ld");
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind,
            env: new Dictionary<string, string?> { ["LD_DEBUG"] = "bindings", ["LD_DEBUG_OUTPUT"] = ldPrefix });
        bool preloaded = kind == DaemonKind.CPreloaded;
        string exe = "/usr/sbin/" + DaemonPaths.ExeName(name);

        string[] daemonCalls;
        if (name == DaemonName.Virtlockd)
        {
            daemonCalls = ["virLockSpaceNew", "virLockSpaceAcquireResource", "virLockSpaceReleaseResource",
                "virLockSpaceReleaseResourcesForOwner", "virLockSpacePreExecRestart", "virLockSpaceNewPostExecRestart"];
            var owner = sb.StartOwnerChild();
            var c = await d.ConnectAsync();
            RpcAssert.Ok(await c.RegisterAsync((uint)owner.Pid), "REGISTER");
            var ls = Path.Combine(sb.TempDir, "ls");
            RpcAssert.Ok(await c.CreateLockspaceAsync(ls), "CREATE_LOCKSPACE");
            RpcAssert.Ok(await c.AcquireResourceAsync(ls, "disk", LockProtocol.AcquireAutoCreate), "ACQUIRE");
            // a second owner is refused: the lease is a real lock, held through the twin
            var other = sb.StartOwnerChild();
            var c2 = await d.ConnectAsync();
            RpcAssert.Ok(await c2.RegisterAsync((uint)other.Pid, 2, "other"), "REGISTER other");
            RpcAssert.Locked(await c2.AcquireResourceAsync(ls, "disk", LockProtocol.AcquireAutoCreate), "disk");
            RpcAssert.Ok(await c.ReleaseResourceAsync(ls, "disk"), "RELEASE");
            RpcAssert.Ok(await c2.AcquireResourceAsync(ls, "disk", LockProtocol.AcquireAutoCreate), "ACQUIRE after release");
        }
        else
        {
            daemonCalls = ["virRotatingFileWriterNew", "virRotatingFileWriterAppend", "virRotatingFileWriterGetINode",
                "virRotatingFileWriterGetOffset", "virRotatingFileReaderNew", "virRotatingFileReaderConsume"];
            var c = await LogClientDriver.StartAsync(sb);
            var path = Path.Combine(sb.TempDir, "dom.log");
            var (_, inode, offset) = await c.OpenAsync(path);
            Assert.Equal(0, offset);
            Assert.Equal(100L * 40, await c.WriteAsync(100, 40));
            // the daemon drains the pipe a piece per loop iteration (C: 1 KiB), so an APPEND sent now could land
            // between two pieces: wait (bounded) for the whole stream first
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            while (new FileInfo(path).Length < 100L * 40 && DateTime.UtcNow < deadline)
                await Task.Delay(20);
            await c.AppendAsync(path, "appended");
            // the stream reached the file through the writer, then the append (which ends the line): every byte, in order
            var expected = Records.Stream(0, 100, 40).Concat("appended\n"u8.ToArray()).ToArray();
            while (new FileInfo(path).Length < expected.Length && DateTime.UtcNow < deadline)
                await Task.Delay(20);
            Records.AssertEqual(expected, File.ReadAllBytes(path), $"{path} through {kind}");
            var (inode2, offset2) = await c.PosAsync(path);
            Assert.Equal(inode, inode2);
            Assert.Equal(expected.Length, offset2);
        }
        Assert.True(d.IsRunning, $"the daemon exited: {d.Stderr}");
        Assert.Equal(preloaded, d.MapsExportLibrary());
        Assert.Equal(preloaded, HasEpollFd(d.Pid));

        string lib = DaemonPaths.ExportLibrary;
        var bindings = LdBinding.Read(ldPrefix);
        foreach (var symbol in daemonCalls)
        {
            var b = bindings.Where(x => x.From == exe && x.Symbol == symbol).ToList();
            Assert.True(b.Count > 0, $"no binding of {symbol} from {exe}");
            Assert.All(b, x => Assert.True(preloaded ? x.To == lib : LdBinding.IsLibvirt(x.To), x.ToString()));
            Assert.All(b, x => Assert.Equal("LIBVIRT_PRIVATE_9.0.0", x.Version));
        }
        // virNetDaemonNew and virNetDaemonRun, inside libvirt.so.0, reach the loop through its PLT
        foreach (var symbol in new[] { "virEventRegisterDefaultImpl", "virEventRunDefaultImpl" })
        {
            var b = bindings.Where(x => LdBinding.IsLibvirt(x.From) && x.Symbol == symbol && x.Version == "LIBVIRT_0.9.0").ToList();
            Assert.True(b.Count > 0, $"no binding of {symbol} from libvirt.so.0");
            Assert.All(b, x => Assert.True(preloaded ? x.To == lib : LdBinding.IsLibvirt(x.To), x.ToString()));
        }
        Assert.Equal(0, await d.StopAsync());
    }

    private static bool HasEpollFd(int pid)
    {
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget == "anon_inode:[eventpoll]")
                    return true;
            }
            catch (IOException)
            {
                // closed meanwhile
            }
        }
        return false;
    }
}
