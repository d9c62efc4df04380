using Libvirt.Tests.Admin;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>
/// Log paths that are not regular files. A FIFO with no reader blocks the C virtlogd in open(2), the whole
/// daemon with it (admin socket included); ours refuses a FIFO at once with an error naming it (README:
/// "Behaviour that differs"). Character devices such as /dev/null are accepted by both.
/// </summary>
public class OddLogPathTests
{
    private static readonly byte[] Uuid = new byte[16];

    public static string FifoError(string path) => $"invalid argument: Cannot open log file: '{path}': it is a FIFO, which virtlogd does not write to";

    private static async Task MkfifoAsync(Sandbox sb, string path)
    {
        var r = await sb.RunInsideAsync("mkfifo", [path], TimeSpan.FromSeconds(10));
        Assert.True(r.ExitCode == 0, $"mkfifo {path}: {r.Stderr}");
    }

    /// <summary>OPEN, APPEND and READ of a FIFO (with no reader, then with one) are refused at once; the
    /// daemon goes on serving both its sockets.</summary>
    [Theory]
    [MemberData(nameof(Libvirt.Tests.LockDaemon.DaemonKinds.OursData), MemberType = typeof(Libvirt.Tests.LockDaemon.DaemonKinds))]
    public async Task A_fifo_is_refused_without_blocking(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        await env.Daemon.WaitForSocketAsync(DaemonPaths.AdminSocket(DaemonName.Virtlogd), TimeSpan.FromSeconds(15));
        var fifo = env.LogPath("domain.fifo");
        await MkfifoAsync(env.Sandbox, fifo);
        using var raw = await env.RawAsync();

        async Task AssertRefusedAsync(string when)
        {
            var open = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen,
                LogProtocol.OpenArgs("qemu", Uuid, "dom", fifo, 0), TimeSpan.FromSeconds(20));
            LogErr.Assert(open.Error, LogErr.InvalidArg, LogErr.FromLogging, FifoError(fifo));
            var append = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcAppend,
                LogProtocol.AppendArgs("qemu", Uuid, "dom", fifo, "hello\n", 0), TimeSpan.FromSeconds(20));
            LogErr.Assert(append.Error, LogErr.InvalidArg, LogErr.FromLogging, FifoError(fifo));
            var read = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcRead,
                LogProtocol.ReadArgs(fifo, 0, 0, 10, 0), TimeSpan.FromSeconds(20));
            LogErr.Assert(read.Error, LogErr.InvalidArg, LogErr.FromLogging, FifoError(fifo));
            env.AssertAlive(when);
        }

        await AssertRefusedAsync("with no reader on the FIFO");
        // a reader and a writer that hold the FIFO open change nothing: a FIFO can still block a writer when full
        var holder = env.Sandbox.StartInside("sh", ["-c", $"exec 3<>{fifo}; echo held; exec sleep 600"], description: "fifo holder");
        await holder.WaitForStdoutLineAsync(l => l == "held", TimeSpan.FromSeconds(10));
        await AssertRefusedAsync("with the FIFO held open");

        // the daemon serves: a regular log opens, and the admin socket answers
        var ok = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcAppend,
            LogProtocol.AppendArgs("qemu", Uuid, "dom", env.LogPath("plain.log"), "fine\n", 0));
        Assert.Null(ok.Error);
        Assert.Equal("fine\n", File.ReadAllText(env.LogPath("plain.log")));
        var va = await new VirtAdmin(env.Daemon).RunAsync("srv-list");
        Assert.True(va.ExitCode == 0, $"virt-admin: {va.Stdout}{va.Stderr}");
    }

    /// <summary>A character device (/dev/null) is accepted by the C daemon and ours alike.</summary>
    [Theory]
    [MemberData(nameof(Libvirt.Tests.LockDaemon.DaemonKinds.All), MemberType = typeof(Libvirt.Tests.LockDaemon.DaemonKinds))]
    public async Task Dev_null_is_accepted(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        using var raw = await env.RawAsync();
        var append = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcAppend,
            LogProtocol.AppendArgs("qemu", Uuid, "dom", "/dev/null", "hello\n", 0));
        Assert.Null(append.Error);
        var open = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen,
            LogProtocol.OpenArgs("qemu", Uuid, "dom", "/dev/null", 0));
        Assert.Null(open.Error);
        Assert.Equal(RpcMessageType.ReplyWithFds, open.Header.Type);
        env.AssertAlive("after /dev/null");
    }

    /// <summary>A log path that is not UTF-8 (0xff 0xfe) names the same bytes on disk and in errors for the
    /// C daemon and ours: APPEND creates that file (not one with U+FFFD in its name), READ returns what it
    /// holds, and an OPEN that fails names the path's bytes in its message.</summary>
    [Theory]
    [MemberData(nameof(Libvirt.Tests.LockDaemon.DaemonKinds.All), MemberType = typeof(Libvirt.Tests.LockDaemon.DaemonKinds))]
    public async Task A_path_that_is_not_UTF8_is_its_bytes(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        using var raw = await env.RawAsync();
        byte[] dir = System.Text.Encoding.UTF8.GetBytes(env.TempDir);
        byte[] path = [.. dir, .. "/dom-"u8, 0xff, 0xfe, .. ".log"u8];

        var append = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcAppend,
            new XdrWriter().String("qemu").OpaqueFixed(Uuid).String("dom").OpaqueVar(path).String("hello\n").UInt(0).ToArray());
        Assert.Null(append.Error);
        Assert.True(Exists(path), "no file with the path's bytes");
        Assert.False(Exists([.. dir, .. "/dom-"u8, 0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd, .. ".log"u8]), "the path was decoded lossily");

        var read = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcRead,
            new XdrWriter().OpaqueVar(path).UHyper(Inode(path)).UHyper(0).UHyper(100).UInt(0).ToArray());
        Assert.Null(read.Error);
        Assert.Equal("hello\n"u8.ToArray(), new XdrReader(read.Payload).OpaqueVar());

        byte[] missing = [.. dir, .. "/no-"u8, 0xff, .. "/x.log"u8];
        var open = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcOpen,
            new XdrWriter().String("qemu").OpaqueFixed(Uuid).String("dom").OpaqueVar(missing).UInt(0).ToArray());
        Assert.NotNull(open.Error);
        Assert.True(open.Payload.AsSpan().IndexOf(missing) >= 0, $"the error does not carry the path's bytes: {open.Error!.Message}");
        env.AssertAlive("after non-UTF-8 paths");
    }

    private static bool Exists(byte[] path) => Stat(path) is not null;

    private static ulong Inode(byte[] path) => Stat(path)?.Inode ?? throw new FileNotFoundException("no such file");

    private static unsafe Libvirt.Util.Libc.FileId? Stat(byte[] path)
    {
        fixed (byte* p = (byte[])[.. path, 0])
            return Libvirt.Util.Libc.TryStat(p, out var id, out _) ? id : null;
    }
}
