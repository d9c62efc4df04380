using System.Net.Sockets;
using System.Text;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemon;
using Xunit;

namespace Libvirt.Tests.LockDaemonOutside;

/// <summary>The daemon as seen from outside: systemd activation/notification, -d, pid file, config errors, unprivileged mode.</summary>
public class OutsideTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    private static async Task RegisterOkAsync(Sandbox sb, string socketHostPath)
    {
        var owner = sb.StartOwnerChild();
        using var c = await LockProtocolClient.ConnectAsync(socketHostPath, TimeSpan.FromSeconds(5));
        RpcAssert.Ok(await c.RegisterAsync((uint)owner.Pid, 1, "outside"), "REGISTER");
    }

    // ---------------------------------------------------------------- systemd socket activation

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Socket_activation_serves_on_passed_fds(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var helper = Outside.WriteScript(sb, "act.py", Outside.ActivationHelper);
        var sock = Path.Combine(sb.TempDir, "act.sock");
        var admin = Path.Combine(sb.TempDir, "act-admin.sock");
        var p = sb.StartInside(Outside.Python, [helper, sock, admin, "virtlockd.socket:virtlockd-admin.socket", bin],
            description: $"activated virtlockd[{kind}]");
        p.CloseStdin();

        await Outside.WaitFileAsync(sb.HostPath("/run/virtlockd.pid"), TimeSpan.FromSeconds(15), () => p.Stderr);
        // the python helper exec'd the daemon in place: the pid is the daemon's
        Assert.Equal(p.Pid.ToString(), File.ReadAllText(sb.HostPath("/run/virtlockd.pid")));
        await RegisterOkAsync(sb, sock);
        using (var a = await RawRpcClient.ConnectAsync(admin, TimeSpan.FromSeconds(5))) { }

        // with activation the daemon creates no sockets of its own
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultSocket)), "daemon created its own lock socket despite activation");
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultAdminSocket)), "daemon created its own admin socket despite activation");
        Assert.True(p.IsRunning);
        Assert.Equal(0, await p.StopAsync());
    }

    /// <summary>LISTEN_FDNAMES must carry the unit names virtlockd.socket / virtlockd-admin.socket; others are unclaimed.</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Socket_activation_with_unknown_names_fails(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var helper = Outside.WriteScript(sb, "act.py", Outside.ActivationHelper);
        var r = await sb.RunInsideAsync(Outside.Python,
            [helper, Path.Combine(sb.TempDir, "a.sock"), Path.Combine(sb.TempDir, "b.sock"), "virtlockd.sock:virtlockd-admin.sock", bin],
            TimeSpan.FromSeconds(15));
        Assert.Equal(6, r.ExitCode); // VIR_DAEMON_ERR_NETWORK
        var errors = Outside.ErrorLines(r.Stderr);
        Assert.Contains("internal error: Some activation file descriptors are unclaimed", errors.Select(Outside.MessageOf));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultSocket)), "no lock socket may be left behind");
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "no pid file may be left behind");
    }

    // ---------------------------------------------------------------- readiness notification

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Notify_socket_gets_ready_once_serving(DaemonKind kind)
    {
        DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var notify = Path.Combine(sb.TempDir, "notify.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(notify));

        await using var d = DaemonProcess.Start(sb, kind, env: new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = notify });
        var buf = new byte[256];
        int n;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            try { n = await listener.ReceiveAsync(buf, SocketFlags.None, cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"no notification within 15 s. stderr=[{d.Stderr}]"); }
        }
        Assert.Equal("READY=1", Encoding.UTF8.GetString(buf, 0, n));
        // READY=1 means it serves: no waiting here
        await RegisterOkAsync(sb, d.SocketHostPath);

        // exactly one datagram
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            try
            {
                n = await listener.ReceiveAsync(buf, SocketFlags.None, cts.Token);
                Assert.Fail($"unexpected second notification '{Encoding.UTF8.GetString(buf, 0, n)}'");
            }
            catch (OperationCanceledException) { }
        }
    }

    // ---------------------------------------------------------------- -d / --daemon

    private static string LogConfig(Sandbox sb) =>
        sb.WriteTempFile("log.conf", $"log_outputs = \"3:file:{Path.Combine(sb.TempDir, "virtlockd.log")}\"\n");

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Daemon_flag_forks_into_background(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var cfg = LogConfig(sb);
        int pid = 0;
        try
        {
            var starter = sb.StartInside(bin, ["-d", "-f", cfg], description: $"virtlockd -d [{kind}]");
            starter.CloseStdin();
            var rc = await starter.WaitForExitAsync(TimeSpan.FromSeconds(15));
            var pidFile = sb.HostPath(DaemonPaths.DefaultPidFile);
            if (File.Exists(pidFile)) int.TryParse(File.ReadAllText(pidFile), out pid);
            Assert.True(rc == 0, $"rc={rc} stdout=[{starter.Stdout}] stderr=[{starter.Stderr}]");
            Assert.Equal("", starter.Stdout);
            Assert.Equal("", starter.Stderr);

            // serving as soon as the command returned
            await RegisterOkAsync(sb, sb.HostPath(DaemonPaths.DefaultSocket));

            Assert.True(pid > 0, "pid file missing or empty");
            Assert.NotEqual(starter.Pid, pid);
            Assert.True(Native.Exists(pid));
            var st = Outside.StatFields(pid);
            int pgrp = int.Parse(st[2]), session = int.Parse(st[3]);
            Assert.NotEqual(starter.Pid, session); // a new session, not the starter's
            Assert.Equal(session, pgrp);           // it is in its setsid()'d session's process group
            Assert.NotEqual(pid, session);         // double fork: not the session leader
            foreach (var fd in new[] { 0, 1, 2 })
                Assert.Equal("/dev/null", new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget);
            Assert.Equal("/", new DirectoryInfo($"/proc/{pid}/cwd").LinkTarget);

            await Outside.TerminateAsync(pid);
            for (var sw = System.Diagnostics.Stopwatch.StartNew(); File.Exists(pidFile) && sw.Elapsed < TimeSpan.FromSeconds(5);)
                await Task.Delay(25);
            Assert.False(File.Exists(pidFile), "pid file removed on SIGTERM");
        }
        finally { await Outside.TerminateAsync(pid); }
    }

    /// <summary>
    /// Runs <c>BIN -d -f CFG</c> (CFG logs to virtlockd.log in the temp dir), which must exit 0, reads the daemon's pid
    /// from the default pid file, runs <paramref name="body"/>(sandbox, bin, cfg, pid) and always SIGTERMs the daemon.
    /// </summary>
    private static async Task WithDaemonizedAsync(DaemonKind kind, Func<Sandbox, string, string, int, Task> body)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var cfg = LogConfig(sb);
        int pid = 0;
        try
        {
            var r1 = await sb.RunInsideAsync(bin, ["-d", "-f", cfg], TimeSpan.FromSeconds(15));
            Assert.Equal(0, r1.ExitCode);
            pid = int.Parse(File.ReadAllText(sb.HostPath(DaemonPaths.DefaultPidFile)));
            await body(sb, bin, cfg, pid);
        }
        finally { await Outside.TerminateAsync(pid); }
    }

    /// <summary>The backgrounded daemon still looks like virtlockd to ps/pgrep/systemd (comm and argv).</summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public Task Daemonized_process_keeps_its_name(DaemonKind kind) =>
        WithDaemonizedAsync(kind, (sb, bin, cfg, pid) =>
        {
            var comm = File.ReadAllText($"/proc/{pid}/comm");
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', '|');
            Assert.True(comm == "virtlockd\n" && cmdline == $"{bin}|-d|-f|{cfg}|",
                $"comm=[{comm.TrimEnd()}] cmdline=[{cmdline}] exe=[{new FileInfo($"/proc/{pid}/exe").LinkTarget}]");
            return Task.CompletedTask;
        });

    [Theory]
    [MemberData(nameof(Kinds))]
    public Task Daemon_flag_start_failure_exits_1_with_pidfile_message(DaemonKind kind) =>
        WithDaemonizedAsync(kind, async (sb, bin, cfg, pid) =>
        {
            var r2 = await sb.RunInsideAsync(bin, ["-d", "-f", cfg], TimeSpan.FromSeconds(15));
            Assert.Equal(1, r2.ExitCode);
            Assert.Equal("", r2.Stdout);
            Assert.Equal($"{bin}: error: Unable to obtain pidfile. Check /var/log/messages or run without --daemon for more info.\n", r2.Stderr);
            // the failing child logged why to the configured log output
            var log = File.ReadAllText(Path.Combine(sb.TempDir, "virtlockd.log"));
            Assert.Contains("Failed to acquire pid file '/run/virtlockd.pid': Resource temporarily unavailable", log);
            // the first daemon is unaffected
            Assert.Equal(pid.ToString(), File.ReadAllText(sb.HostPath(DaemonPaths.DefaultPidFile)));
            await RegisterOkAsync(sb, sb.HostPath(DaemonPaths.DefaultSocket));
        });

    // ---------------------------------------------------------------- second instance

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Second_instance_fails_on_locked_pid_file(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var r = await env.Sandbox.RunInsideAsync(env.Daemon.BinaryPath, [], TimeSpan.FromSeconds(15));
        Assert.Equal(1, r.ExitCode); // VIR_DAEMON_ERR_PIDFILE
        Assert.Equal("", r.Stdout);
        Assert.Equal(["Failed to acquire pid file '/run/virtlockd.pid': Resource temporarily unavailable"],
            Outside.ErrorLines(r.Stderr).Select(Outside.MessageOf));
        Assert.True(env.Daemon.IsRunning);
        Assert.Equal(env.Daemon.Pid.ToString(), File.ReadAllText(env.Sandbox.HostPath(DaemonPaths.DefaultPidFile)));
        await RegisterOkAsync(env.Sandbox, env.Daemon.SocketHostPath);
    }

    // ---------------------------------------------------------------- config errors

    public static TheoryData<DaemonKind, string> ConfigCases()
    {
        var d = new TheoryData<DaemonKind, string>();
        foreach (var k in new[] { DaemonKind.C, DaemonKind.Managed })
            foreach (var c in new[] { "syntax", "string", "negative", "missing", "directory" })
                d.Add(k, c);
        return d;
    }

    private static (string Path, string Message) ConfigCase(Sandbox sb, string which)
    {
        switch (which)
        {
            case "syntax":
            {
                var p = sb.WriteTempFile("syntax.conf", "max_clients = \n");
                return (p, $"configuration file syntax error: {p}:1: expecting a value");
            }
            case "string":
            {
                var p = sb.WriteTempFile("string.conf", "max_clients = \"x\"\n");
                return (p, $"internal error: {p}: expected an unsigned integer for 'max_clients' parameter");
            }
            case "negative":
            {
                var p = sb.WriteTempFile("negative.conf", "max_clients = -1\n");
                return (p, $"internal error: {p}: expected an unsigned integer for 'max_clients' parameter");
            }
            case "missing":
            {
                var p = Path.Combine(sb.TempDir, "missing.conf");
                return (p, $"Failed to open file '{p}': No such file or directory");
            }
            case "directory":
            {
                var p = Path.Combine(sb.TempDir, "confdir");
                Directory.CreateDirectory(p);
                return (p, $"Failed to read file '{p}': Is a directory");
            }
            default: throw new ArgumentOutOfRangeException(nameof(which));
        }
    }

    [Theory]
    [MemberData(nameof(ConfigCases))]
    public async Task Config_errors_exit_1_without_serving(DaemonKind kind, string which)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var (path, message) = ConfigCase(sb, which);
        var r = await sb.RunInsideAsync(bin, ["-f", path], TimeSpan.FromSeconds(15));
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout);
        var errors = Outside.ErrorLines(r.Stderr);
        Assert.Single(errors);
        Assert.Matches(@"^main:\d+ : ", errors[0]);
        Assert.Equal($"Can't load config file: {message}: {path}", Outside.MessageOf(errors[0]));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultSocket)), "socket created despite config error");
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)), "pid file created despite config error");
    }

    // ---------------------------------------------------------------- unprivileged mode

    private sealed record UserEnv(string Home, string Runtime, string Config, Dictionary<string, string?> Env);

    private static UserEnv MakeUserEnv(Sandbox sb)
    {
        File.SetUnixFileMode(sb.TempDir, (UnixFileMode)0b111_101_101); // traversable by the unprivileged user
        var home = Path.Combine(sb.TempDir, "home");
        var rt = Path.Combine(home, "rt");
        var cfg = Path.Combine(home, "cfg");
        var cache = Path.Combine(home, "cache");
        foreach (var d in new[] { home, rt, cfg, cache })
        {
            Directory.CreateDirectory(d);
            Outside.Chown(d, Outside.Nobody, Outside.Nobody);
        }
        File.SetUnixFileMode(rt, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var env = new Dictionary<string, string?>
        {
            ["HOME"] = home, ["XDG_RUNTIME_DIR"] = rt, ["XDG_CONFIG_HOME"] = cfg, ["XDG_CACHE_HOME"] = cache,
            ["USER"] = "nobody", ["LOGNAME"] = "nobody",
        };
        return new UserEnv(home, rt, cfg, env);
    }

    private static string[] AsNobody(params string[] cmd) =>
        [$"--reuid={Outside.Nobody}", $"--regid={Outside.Nobody}", "--clear-groups", .. cmd];

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Unprivileged_daemon_serves_only_its_own_uid(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var u = MakeUserEnv(sb);
        var client = Outside.WriteScript(sb, "oneshot.py", Outside.OneShotClient);
        var d = sb.StartInside("setpriv", AsNobody(bin), u.Env, $"unprivileged virtlockd[{kind}]");
        d.CloseStdin();

        var sock = Path.Combine(u.Runtime, "libvirt", "virtlockd-sock");
        var pidFile = Path.Combine(u.Runtime, "libvirt", "virtlockd.pid");
        await Outside.WaitFileAsync(pidFile, TimeSpan.FromSeconds(15), () => d.Stderr);
        await Outside.WaitFileAsync(sock, TimeSpan.FromSeconds(15), () => d.Stderr);
        Assert.Equal(d.Pid.ToString(), File.ReadAllText(pidFile)); // setsid/nsenter/setpriv all exec in place
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(sock));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute,
            File.GetUnixFileMode(Path.Combine(u.Runtime, "libvirt")));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultSocket)));
        Assert.False(File.Exists(sb.HostPath(DaemonPaths.DefaultPidFile)));

        // the same uid is served (retry briefly: the socket file exists before listen())
        string same = "";
        for (var sw = System.Diagnostics.Stopwatch.StartNew(); sw.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(50))
        {
            var r = await sb.RunInsideAsync("setpriv", AsNobody(Outside.Python, client, sock, Path.Combine(u.Home, "ls")),
                TimeSpan.FromSeconds(15), u.Env);
            same = r.Stdout.Trim();
            if (!same.StartsWith("error")) break;
        }
        Assert.Equal("reply 0", same);
        Assert.True(Directory.Exists(Path.Combine(u.Home, "ls")));

        // root (uid != daemon euid) is refused: the connection is closed without a reply
        using (var root = await RawRpcClient.ConnectAsync(sock, TimeSpan.FromSeconds(5)))
        {
            // the daemon may close before our call is written (EPIPE/ECONNRESET): that is the refusal too
            try
            {
                await root.SendCallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcCreateLockspace,
                    LockProtocol.CreateLockspaceArgs(Path.Combine(u.Home, "ls2")));
            }
            catch (SocketException) { }
            var got = new List<byte>();
            Assert.True(await root.WaitForPeerCloseAsync(TimeSpan.FromSeconds(10), got), "root client not disconnected");
            Assert.Empty(got);
        }
        Assert.False(Directory.Exists(Path.Combine(u.Home, "ls2")));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (!d.Stderr.Contains("Disallowing client") && DateTime.UtcNow < deadline) await Task.Delay(25);
        Assert.Contains(Outside.ErrorLines(d.Stderr),
            l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^virLockDaemonClientNew:\d+ : operation forbidden: Disallowing client \d+ with uid 0$"));

        Assert.True(d.IsRunning);
        Assert.Equal(0, await d.StopAsync());
        Assert.False(File.Exists(pidFile), "pid file removed on shutdown");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Unprivileged_help_prints_user_paths(DaemonKind kind)
    {
        var bin = DaemonPaths.Binary(kind);
        await using var sb = await Sandbox.CreateAsync();
        var u = MakeUserEnv(sb);
        var r = await sb.RunInsideAsync("setpriv", AsNobody(bin, "-h"), TimeSpan.FromSeconds(15), u.Env);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal(DaemonUsage.Text(bin, DaemonName.Virtlockd, privileged: false), r.Stderr);
    }

    // Log lines are compared by function and message (see above), not by the
    // C source's line numbers: those are an artifact of its layout, not part
    // of what operators or tools rely on.
}
