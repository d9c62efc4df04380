using System.Text;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>virtlogd driven by libvirt's own log client (virLogManager* via tests/LogClient).</summary>
public class LogClientTests
{
    public static TheoryData<DaemonKind> Kinds => LogKinds.All;

    private const int MaxSize = 65536;
    private const int MaxBackups = 3;

    /// <summary>
    /// <paramref name="writer"/> writes <paramref name="records"/> more records of <paramref name="size"/> bytes; then the
    /// position (asked by <paramref name="positionFrom"/>, default the writer) is the end of record total-1 and the log
    /// holds exactly records 0 .. total-1.
    /// </summary>
    private static async Task WriteAndCheckAsync(LogClientDriver writer, string path, long records, int size, long total,
        LogClientDriver? positionFrom = null)
    {
        await writer.WriteAsync(records, size);
        Assert.Equal(total * size, (await (positionFrom ?? writer).PosAsync(path)).Offset);
        Assert.Equal(Records.Stream(0, total, size), File.ReadAllBytes(path));
    }

    /// <summary>Sends <paramref name="line"/> until (bounded, 10 s) the reply starts with <paramref name="prefix"/>; returns that reply.</summary>
    private static async Task<string?> RepeatUntilAsync(LogClientDriver c, string line, string prefix, string what)
    {
        string? last = null;
        Assert.True(await LogEnv.EventuallyAsync(async () =>
        {
            last = await c.CommandAsync(line);
            return last.StartsWith(prefix);
        }, TimeSpan.FromSeconds(10)), $"{what}: {last}");
        return last;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Writes_land_in_order_across_rotations(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: LogEnv.SmallRotation);
        var path = env.LogPath("guest.log");
        var c = await env.ClientAsync();
        var (fd, inode0, off0) = await c.OpenAsync(path);
        Assert.True(fd >= 0);
        Assert.Equal(0, off0);
        Assert.Equal(FileInfoEx.Stat(path).Inode, inode0);

        const int n = 5000, size = 80; // 400000 bytes: > 6 rotations at 64 KiB
        Assert.Equal(n * size, await c.WriteAsync(n, size));
        var (inode, offset) = await c.PosAsync(path);

        var expected = Records.Stream(0, n, size);
        Assert.True(File.Exists(path + ".0") && File.Exists(path + ".1") && File.Exists(path + ".2"), "backups .0 .1 .2 must exist");
        Assert.False(File.Exists(path + ".3"), "max_backups = 3 keeps only .0 .1 .2");
        var st = FileInfoEx.Stat(path);
        Assert.Equal(st.Inode, inode);
        Assert.Equal(st.Size, offset);
        Assert.NotEqual(inode0, inode);
        Assert.True(st.Size <= MaxSize);
        for (int i = 0; i < MaxBackups; i++)
        {
            var b = FileInfoEx.Stat($"{path}.{i}");
            // a rollover cuts at a newline within the last 80 bytes, or exactly at max_size
            Assert.True(b.Size <= MaxSize && b.Size >= MaxSize - 80, $"{path}.{i} has {b.Size} bytes");
        }
        var all = LogEnv.ReadRotated(path, MaxBackups);
        Records.AssertTail(expected, all, "rotated files .2 .1 .0 base");
        Assert.True(all.Length > 3 * (MaxSize - 80), $"only {all.Length} bytes retained");

        // files are created 0600
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        await c.QuitAsync();
        env.AssertAlive("after the writer quit");
    }

    /// <summary>max_backups = 0: a rollover deletes the file and starts a new one.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Zero_backups_keeps_only_the_current_file(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: "max_size = 4096\nmax_backups = 0\n");
        var path = env.LogPath("nobackup.log");
        var c = await env.ClientAsync();
        var (_, inode0, _) = await c.OpenAsync(path);
        await c.WriteAsync(1000, 32); // 32000 bytes
        var (inode, offset) = await c.PosAsync(path);
        Assert.NotEqual(inode0, inode);
        Assert.False(File.Exists(path + ".0"));
        var st = FileInfoEx.Stat(path);
        Assert.Equal(st.Inode, inode);
        Assert.Equal(st.Size, offset);
        Assert.True(st.Size <= 4096);
        Records.AssertTail(Records.Stream(0, 1000, 32), File.ReadAllBytes(path), path);
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Position_reflects_drained_pipe_and_reopen_appends(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var path = env.LogPath("pos.log");
        File.WriteAllText(path, "preexisting\n");
        var c = await env.ClientAsync();
        var (_, inode, off) = await c.OpenAsync(path);
        Assert.Equal(12, off);
        Assert.Equal(FileInfoEx.Stat(path).Inode, inode);
        for (int round = 1; round <= 5; round++)
        {
            await c.WriteAsync(100, 50);
            // no sleep: the daemon drains the pipe before answering
            var (i2, o2) = await c.PosAsync(path);
            Assert.Equal(inode, i2);
            Assert.Equal(12 + round * 5000, o2);
        }
        Assert.Equal("preexisting\n" + Encoding.ASCII.GetString(Records.Stream(0, 500, 50)), File.ReadAllText(path));
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task ReadLogFile_crosses_rotated_files_and_is_bounded_by_maxlen(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: LogEnv.SmallRotation);
        var path = env.LogPath("read.log");
        var c = await env.ClientAsync();
        await c.OpenAsync(path);
        await c.WriteAsync(3500, 64); // 224000 bytes: base + .0 .1 .2, nothing dropped yet
        var (inode, offset) = await c.PosAsync(path);
        var all = LogEnv.ReadRotated(path, MaxBackups);
        Records.AssertEqual(Records.Stream(0, 3500, 64), all, "all rotated files");

        // unknown inode: starts from the oldest file at the given offset
        var got = await c.ReadAsync(path, 0, 0, 100000);
        Assert.Equal(100000, got.Length);
        Assert.Equal(all.AsSpan(0, 100000).ToArray(), got);
        got = await c.ReadAsync(path, 0, 7, 10);
        Assert.Equal(all.AsSpan(7, 10).ToArray(), got);

        // inode of .1 plus an offset: continues across .1 -> .0 -> base
        var s2 = FileInfoEx.Stat(path + ".2");
        var s1 = FileInfoEx.Stat(path + ".1");
        got = await c.ReadAsync(path, s1.Inode, 10, 90000);
        Assert.Equal(all.AsSpan((int)s2.Size + 10, 90000).ToArray(), got);

        // maxlen larger than what is left: everything to the end
        got = await c.ReadAsync(path, s1.Inode, 0, 4194304);
        Assert.Equal(all.AsSpan((int)s2.Size).ToArray(), got);

        // at the current position: nothing
        got = await c.ReadAsync(path, inode, offset, 1000);
        Assert.Empty(got);

        // maxlen 0
        Assert.Empty(await c.ReadAsync(path, s1.Inode, 0, 0));
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task AppendMessage_to_open_and_to_unopened_logs(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var open = env.LogPath("open.log");
        var closed = env.LogPath("closed.log");
        var c = await env.ClientAsync();
        await c.OpenAsync(open);
        await c.WriteAsync(10, 40);
        await c.PosAsync(open); // drain before appending, so the order is defined
        await c.AppendAsync(open, "appended to open log");
        await c.WriteAsync(10, 40);
        var (_, off) = await c.PosAsync(open);
        var expected = Encoding.ASCII.GetString(Records.Stream(0, 10, 40)) + "appended to open log\n" + Encoding.ASCII.GetString(Records.Stream(10, 10, 40));
        Assert.Equal(expected.Length, off);
        Assert.Equal(expected, File.ReadAllText(open));

        await c.AppendAsync(closed, "first");
        await c.AppendAsync(closed, "second message");
        Assert.Equal("first\nsecond message\n", File.ReadAllText(closed));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(closed));
        // a path that is only appended to is not "open"
        Assert.Equal(LogErr.NotOpen(closed), await c.ErrAsync($"pos {closed}"));
        // and it can be opened afterwards, positioned at its end
        var c2 = await env.ClientAsync("second");
        var (_, _, o2) = await c2.OpenAsync(closed);
        Assert.Equal(21, o2);
        await c2.QuitAsync();
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task AppendMessage_rotates_when_over_max_size(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: "max_size = 100\nmax_backups = 2\n");
        var path = env.LogPath("app.log");
        var c = await env.ClientAsync();
        for (int i = 0; i < 10; i++)
            await c.AppendAsync(path, $"message number {i:D2} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"); // 48 bytes each with \n
        var all = Encoding.ASCII.GetString(LogEnv.ReadRotated(path, 2));
        var full = string.Concat(Enumerable.Range(0, 10).Select(i => $"message number {i:D2} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"));
        Assert.EndsWith(all, full);
        Assert.True(File.Exists(path + ".0") && File.Exists(path + ".1"));
        Assert.False(File.Exists(path + ".2"));
        foreach (var f in new[] { path, path + ".0", path + ".1" })
            Assert.True(new FileInfo(f).Length <= 100, $"{f}: {new FileInfo(f).Length}");
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Truncate_flag_empties_the_log_and_removes_backups(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: LogEnv.SmallRotation);
        var path = env.LogPath("trunc.log");
        File.WriteAllText(path, "old contents\n");
        File.WriteAllText(path + ".0", "old backup 0\n");
        File.WriteAllText(path + ".2", "old backup 2\n");
        File.WriteAllText(path + ".3", "not a backup with max_backups 3\n");
        var c = await env.ClientAsync();
        var (_, inode, off) = await c.OpenAsync(path, truncate: true);
        Assert.Equal(0, off);
        Assert.Equal(FileInfoEx.Stat(path).Inode, inode);
        Assert.Equal(0, new FileInfo(path).Length);
        Assert.False(File.Exists(path + ".0"));
        Assert.False(File.Exists(path + ".2"));
        Assert.True(File.Exists(path + ".3"), "only .0 .. .(max_backups-1) are removed");
        await WriteAndCheckAsync(c, path, 3, 20, total: 3);
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Second_open_of_an_open_path_is_refused(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var path = env.LogPath("busy.log");
        var a = await env.ClientAsync("a");
        var b = await env.ClientAsync("b");
        await a.OpenAsync(path);
        await a.WriteAsync(5, 30);
        Assert.Equal(LogErr.Busy(path), await b.ErrAsync($"open {path}"));
        Assert.Equal(LogErr.Busy(path), await a.ErrAsync($"open {path}"));
        Assert.Equal(LogErr.Busy(path), await b.ErrAsync($"open {path} truncate"));
        // the refused truncate did not touch the file, and the first writer still works
        await WriteAndCheckAsync(a, path, 5, 30, total: 10, positionFrom: b);
        await a.QuitAsync();
        await b.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Many_domains_log_concurrently(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: LogEnv.SmallRotation);
        const int domains = 8, n = 1500, size = 64; // 96000 bytes each: one rotation
        var clients = await Task.WhenAll(Enumerable.Range(0, domains).Select(i => env.ClientAsync($"dom{i}")));
        var paths = Enumerable.Range(0, domains).Select(i => env.LogPath($"dom{i}.log")).ToArray();
        await Task.WhenAll(clients.Select((c, i) => c.OpenAsync(paths[i])));
        await Task.WhenAll(clients.Select(c => c.WriteAsync(n, size)));
        await Task.WhenAll(clients.Select((c, i) => c.PosAsync(paths[i])));
        var expected = Records.Stream(0, n, size);
        for (int i = 0; i < domains; i++)
            Records.AssertEqual(expected, LogEnv.ReadRotated(paths[i], MaxBackups), paths[i]);
        await Task.WhenAll(clients.Select(c => c.QuitAsync()));
        env.AssertAlive("after 8 concurrent domains");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Closed_pipe_closes_the_log_and_it_can_be_reopened(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var path = env.LogPath("closed-pipe.log");
        var c = await env.ClientAsync();
        await c.OpenAsync(path);
        await c.WriteAsync(100, 40);
        await c.CloseFdAsync();
        // the daemon drains to EOF and forgets the log: GetLogFilePosition then fails
        var last = await RepeatUntilAsync(c, $"pos {path}", "err ", "log still open after its pipe was closed");
        Assert.Equal("err " + LogErr.NotOpen(path), last);
        Assert.Equal(Records.Stream(0, 100, 40), File.ReadAllBytes(path));
        var (_, _, off) = await c.OpenAsync(path);
        Assert.Equal(4000, off);
        await WriteAndCheckAsync(c, path, 10, 40, total: 110);
        await c.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Client_that_dies_keeps_its_data(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind);
        var path = env.LogPath("dead.log");
        var c = await env.ClientAsync("doomed");
        await c.OpenAsync(path);
        await c.WriteAsync(2000, 60); // 120000 bytes, more than a pipe buffer: not drained yet, maybe
        c.Process.Kill();
        Assert.False(c.Process.IsRunning);
        Assert.True(await LogEnv.EventuallyAsync(() => new FileInfo(path).Length == 120000, TimeSpan.FromSeconds(10)),
            $"log has {new FileInfo(path).Length} of 120000 bytes");
        Assert.Equal(Records.Stream(0, 2000, 60), File.ReadAllBytes(path));
        env.AssertAlive("after a client was killed");
        // the log is closed once the dead writer's pipe hits EOF: a new client can open it
        var c2 = await env.ClientAsync("survivor");
        var r = await RepeatUntilAsync(c2, $"open {path}", "ok ", "reopen after client death");
        Assert.EndsWith(" 120000", r);
        await c2.QuitAsync();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Bench_mode_writes_everything(DaemonKind kind)
    {
        await using var env = await LogEnv.StartAsync(kind, config: "max_size = 0\n");
        var path = env.LogPath("bench.log");
        var r = await LogClientDriver.BenchAsync(env.Sandbox, path, 20000, 100);
        Assert.True(r.ExitCode == 0, $"bench failed: {r.Stdout} {r.Stderr}");
        Assert.Matches(@"^records 20000 bytes 2000000 seconds [0-9.]+ mbps [0-9.]+\n$", r.Stdout);
        Assert.Equal(2000000, new FileInfo(path).Length);
        Assert.False(File.Exists(path + ".0"), "max_size = 0 disables rotation");
    }
}
