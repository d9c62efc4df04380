using Libvirt.Tests.LockDaemon;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>
/// virtlogd protocol over a raw socket. Each test first has a logclient open a log and write to it, then sends the
/// bad or edge input, then checks the daemon still serves (old client and a fresh connection) and the log is intact.
/// </summary>
public class RawProtocolTests
{
    public static TheoryData<DaemonKind> Kinds => LogKinds.All;

    private static readonly byte[] Uuid = Guid.NewGuid().ToByteArray();

    private sealed class Setup : IAsyncDisposable
    {
        public required LogEnv Env;
        public required LogClientDriver Writer;
        public required string Path;
        public long Written;
        public async ValueTask DisposeAsync() => await Env.DisposeAsync();
    }

    private static async Task<Setup> SetupAsync(DaemonKind kind)
    {
        var env = await LogEnv.StartAsync(kind);
        try
        {
            var path = env.LogPath("kept.log");
            var w = await env.ClientAsync("writer");
            await w.OpenAsync(path);
            await w.WriteAsync(100, 40);
            Assert.Equal(4000, (await w.PosAsync(path)).Offset);
            return new Setup { Env = env, Writer = w, Path = path, Written = 100 };
        }
        catch
        {
            await env.DisposeAsync();
            throw;
        }
    }

    private static Task<RpcMessage> CallAsync(RawRpcClient raw, int proc, byte[] args) =>
        raw.CallAsync(LogProtocol.Program, LogProtocol.Version, proc, args);

    /// <summary>
    /// <see cref="SetupAsync"/>, then <paramref name="body"/> on a fresh raw connection (closed afterwards), then
    /// <see cref="AssertStillHealthyAsync"/>.
    /// </summary>
    private static async Task WithRawConnectionAsync(DaemonKind kind, Func<Setup, RawRpcClient, Task> body)
    {
        await using var s = await SetupAsync(kind);
        using (var raw = await s.Env.RawAsync())
            await body(s, raw);
        await AssertStillHealthyAsync(s);
    }

    private static async Task AssertStillHealthyAsync(Setup s)
    {
        s.Env.AssertAlive("after bad input");
        // the original writer still works
        await s.Writer.WriteAsync(10, 40);
        s.Written += 10;
        Assert.Equal(s.Written * 40, (await s.Writer.PosAsync(s.Path)).Offset);
        // a fresh raw connection is served
        using var raw = await s.Env.RawAsync();
        var reply = await CallAsync(raw, LogProtocol.ProcGetPosition, LogProtocol.PositionArgs(s.Path, 0));
        Assert.Null(reply.Error);
        Assert.Equal(RpcStatus.Ok, reply.Header.Status);
        var (inode, offset) = LogProtocol.DecodePosition(reply.Payload);
        Assert.Equal(FileInfoEx.Stat(s.Path).Inode, inode);
        Assert.Equal((ulong)(s.Written * 40), offset);
        Assert.Equal(Records.Stream(0, s.Written, 40), File.ReadAllBytes(s.Path));
    }

    public static TheoryData<DaemonKind, uint, uint, int, string> UnknownTargets()
    {
        var d = new TheoryData<DaemonKind, uint, uint, int, string>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, 0x1234, 1, 1, "Cannot find program 4660 version 1");
            // "%d" of an unsigned program number: 0x87539319 prints negative
            d.Add(k, LogProtocol.Program, 2, 1, "Cannot find program -2024565991 version 2");
            d.Add(k, LogProtocol.Program, 1, 5, "unknown procedure: 5");
            d.Add(k, LogProtocol.Program, 1, 0, "unknown procedure: 0");
            d.Add(k, LogProtocol.Program, 1, -1, "unknown procedure: -1");
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(UnknownTargets))]
    public async Task Unknown_program_version_or_procedure_gets_error_reply(DaemonKind kind, uint prog, uint vers, int proc, string message)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            var reply = await raw.CallAsync(prog, vers, proc, Array.Empty<byte>());
            Assert.Equal(new RpcHeader(prog, vers, proc, RpcMessageType.Reply, reply.Header.Serial, RpcStatus.Error), reply.Header);
            var err = reply.Error!;
            LogErr.Assert(err, LogErr.Rpc, LogErr.FromRpc, message);
            // connection remains usable
            var ok = await CallAsync(raw, LogProtocol.ProcGetPosition, LogProtocol.PositionArgs(s.Path, 0));
            Assert.Null(ok.Error);
        });
    }

    public static TheoryData<DaemonKind, int> Procedures()
    {
        var d = new TheoryData<DaemonKind, int>();
        foreach (var k in DaemonKinds.Array)
            for (int p = 1; p <= 4; p++) d.Add(k, p);
        return d;
    }

    [Theory]
    [MemberData(nameof(Procedures))]
    public async Task Junk_arguments_get_decode_error(DaemonKind kind, int proc)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            foreach (var junk in new[]
            {
                Array.Empty<byte>(),
                new byte[] { 0xde, 0xad, 0xbe },
                new XdrWriter().UInt(1_000_000).ToArray(),                // string longer than the payload
                new XdrWriter().UInt(4194305).Raw(new byte[64]).ToArray(), // string over STRING_MAX
            })
            {
                var reply = await CallAsync(raw, proc, junk);
                Assert.Equal(RpcStatus.Error, reply.Header.Status);
                LogErr.Assert(reply.Error, LogErr.Rpc, LogErr.FromRpc, LogErr.Decode);
            }
        });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Read_maxlen_over_limit_is_refused(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            foreach (var maxlen in new ulong[] { 4194305, 1UL << 40, ulong.MaxValue })
            {
                var reply = await CallAsync(raw, LogProtocol.ProcRead,
                    LogProtocol.ReadArgs(s.Path, 0, 0, maxlen, 0));
                LogErr.Assert(reply.Error, LogErr.InternalError, LogErr.FromRpc, LogErr.TooLong(maxlen));
            }
            // exactly the maximum is fine
            var ok = await CallAsync(raw, LogProtocol.ProcRead,
                LogProtocol.ReadArgs(s.Path, FileInfoEx.Stat(s.Path).Inode, 0, LogProtocol.StringMax, 0));
            Assert.Null(ok.Error);
            var data = new XdrReader(ok.Payload).OpaqueVar();
            Assert.Equal(File.ReadAllBytes(s.Path), data);
            // an inode matching no file seeks in the oldest backup slot (PATH.2 with max_backups 3), which does not
            // exist yet: the C daemon fails with EBADF rather than reading PATH
            var quirk = await CallAsync(raw, LogProtocol.ProcRead,
                LogProtocol.ReadArgs(s.Path, 0, 0, 10, 0));
            LogErr.Assert(quirk.Error, LogErr.SystemError, LogErr.FromNone, "Unable to seek to inode 0 offset 0: Bad file descriptor");
        });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Position_of_a_path_not_open_is_an_error(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            foreach (var p in new[] { s.Env.LogPath("never.log"), s.Path + "x", "", "relative.log" })
            {
                var reply = await CallAsync(raw, LogProtocol.ProcGetPosition, LogProtocol.PositionArgs(p, 0));
                LogErr.Assert(reply.Error, LogErr.InternalError, LogErr.FromLogging, LogErr.NotOpen(p));
            }
        });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Unsupported_flags_are_refused(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            var fresh = s.Env.LogPath("fresh.log");
            foreach (uint f in new uint[] { 1, 0x80000000 })
            {
                var r = await CallAsync(raw, LogProtocol.ProcGetPosition, LogProtocol.PositionArgs(s.Path, f));
                LogErr.Assert(r.Error, LogErr.InvalidArg, LogErr.FromLogging, LogErr.UnsupportedFlags(f, "virLogHandlerDomainGetLogFilePosition"));
                r = await CallAsync(raw, LogProtocol.ProcRead, LogProtocol.ReadArgs(s.Path, 0, 0, 10, f));
                LogErr.Assert(r.Error, LogErr.InvalidArg, LogErr.FromLogging, LogErr.UnsupportedFlags(f, "virLogHandlerDomainReadLogFile"));
                r = await CallAsync(raw, LogProtocol.ProcAppend,
                    LogProtocol.AppendArgs("qemu", Uuid, "dom", fresh, "nope\n", f));
                LogErr.Assert(r.Error, LogErr.InvalidArg, LogErr.FromLogging, LogErr.UnsupportedFlags(f, "virLogHandlerDomainAppendLogFile"));
                r = await CallAsync(raw, LogProtocol.ProcAppend,
                    LogProtocol.AppendArgs("qemu", Uuid, "dom", s.Path, "nope\n", f));
                LogErr.Assert(r.Error, LogErr.InvalidArg, LogErr.FromLogging, LogErr.UnsupportedFlags(f, "virLogHandlerDomainAppendLogFile"));
            }
            Assert.False(File.Exists(fresh), "a refused append must not create the file");
        });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Raw_append_returns_zero(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            var other = s.Env.LogPath("raw-append.log");
            var r = await CallAsync(raw, LogProtocol.ProcAppend,
                LogProtocol.AppendArgs("qemu", Uuid, "dom", other, "no newline added", 0));
            Assert.Null(r.Error);
            Assert.Equal(RpcMessageType.Reply, r.Header.Type);
            Assert.Equal(new XdrWriter().Int(0).ToArray(), r.Payload);
            Assert.Equal("no newline added", File.ReadAllText(other));
        });
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Read_of_a_missing_path_is_an_error(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            var missing = s.Env.LogPath("missing.log");
            var r = await CallAsync(raw, LogProtocol.ProcRead, LogProtocol.ReadArgs(missing, 0, 0, 10, 0));
            LogErr.Assert(r.Error, LogErr.SystemError, LogErr.FromNone, "Unable to seek to inode 0 offset 0: Bad file descriptor");
        });
    }

    /// <summary>OPEN ignores flag bits other than TRUNCATE; the reply is REPLY_WITH_FDS carrying one fd.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Raw_open_ignores_unknown_flags_and_replies_with_one_fd(DaemonKind kind)
    {
        await WithRawConnectionAsync(kind, async (s, raw) =>
        {
            var other = s.Env.LogPath("raw-open.log");
            var r = await CallAsync(raw, LogProtocol.ProcOpen,
                LogProtocol.OpenArgs("qemu", Uuid, "dom", other, 0xfffffffe));
            Assert.Null(r.Error);
            Assert.Equal(RpcMessageType.ReplyWithFds, r.Header.Type);
            var x = new XdrReader(r.Payload);
            Assert.Equal(1u, x.UInt()); // number of fds
            Assert.Equal(FileInfoEx.Stat(other).Inode, x.UHyper());
            Assert.Equal(0UL, x.UHyper());
            Assert.True(x.AtEnd);
            // then: busy while the raw open is alive? the fd was discarded by recv(), so the pipe hits EOF and the log closes
        });
    }
}
