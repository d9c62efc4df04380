using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockDaemonOutside;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>
/// Exec-restart handoffs (SIGUSR1) of a daemon started the three other ways it runs: backgrounded with -d,
/// socket-activated (LISTEN_FDS / LISTEN_FDNAMES, by the python stand-in for systemd) and unprivileged (a
/// non-root user, sockets under $XDG_RUNTIME_DIR). Across the handoff the pid stays, virtlockd's leases stay
/// held and its owner's connection is served, virtlogd's pipe keeps flowing into the same file and its client's
/// connection is served. As in <see cref="HandoffRig"/>, /usr/sbin/&lt;daemon&gt; is a bind mount of a distinct
/// copy per step, so the exec is seen in /proc/PID/exe.
/// </summary>
public sealed class HandoffModesTests(ITestOutputHelper output)
{
    /// <summary>Modes × daemons × C>C, ours>ours and C>twins (C, our default and ours with every twin managed:
    /// how a daemon was started is the host's part, not the twins'; C>twins is the migration step itself), and
    /// rpc>rpc and C>rpc (the managed RPC core, whose sockets, activation and signals are its own).</summary>
    public static TheoryData<string, DaemonName, string> Cases()
    {
        var d = new TheoryData<string, DaemonName, string>();
        foreach (var mode in new[] { "daemon", "activated", "unprivileged" })
            foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
                foreach (var dir in new[] { "C>C", "ours>ours", "C>twins", "rpc>rpc", "C>rpc" })
                    d.Add(mode, name, dir);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task The_daemon_hands_off_in_place_and_keeps_serving(string mode, DaemonName name, string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        var exe = DaemonPaths.ExeName(name);
        var target = "/usr/sbin/" + exe;
        await using var sb = await Sandbox.CreateAsync();
        bool unprivileged = mode == "unprivileged";
        var user = unprivileged ? OutsideTests.MakeUserEnv(sb) : null;

        var copies = new string[chain.Length];
        for (int i = 0; i < chain.Length; i++)
        {
            copies[i] = Path.Combine(sb.TempDir, $"step{i}-{chain[i]}-{exe}");
            File.Copy(DaemonPaths.Executable(name, chain[i]), copies[i]);
            File.SetUnixFileMode(copies[i], (UnixFileMode)0b111_101_101);
        }
        // -d sends stderr to /dev/null: the daemon's log goes to a file instead
        var daemonLog = Path.Combine(sb.TempDir, exe + ".log");
        var cfg = Path.Combine(sb.TempDir, exe + ".conf");
        void WriteConfig(int step) => File.WriteAllText(cfg,
            (mode == "daemon" ? $"log_outputs = \"3:file:{daemonLog}\"\n" : "") + chain[step].ImplConfig(name));
        WriteConfig(0);
        File.SetUnixFileMode(cfg, (UnixFileMode)0b110_100_100);
        await HandoffRig.BindAsync(sb, copies[0], target, unmountFirst: false);

        string runDir = unprivileged ? Path.Combine(user!.Runtime, "libvirt") : sb.HostPath("/run");
        string socketHost = unprivileged ? Path.Combine(runDir, $"{exe}-sock") : sb.HostPath(DaemonPaths.Socket(name));
        string pidFile = unprivileged ? Path.Combine(runDir, $"{exe}.pid") : sb.HostPath(DaemonPaths.PidFile(name));
        string stateFile = Path.Combine(runDir, $"{exe}-restart-exec.json");

        SandboxProcess? started = null;
        int pid = 0;
        try
        {
            Func<string> diag;
            switch (mode)
            {
                case "daemon":
                    var starter = sb.StartInside(target, ["-d", "-f", cfg], description: $"{exe} -d [{direction}]");
                    starter.CloseStdin();
                    Assert.Equal(0, await starter.WaitForExitAsync(TimeSpan.FromSeconds(20)));
                    pid = int.Parse(File.ReadAllText(pidFile).Trim());
                    diag = () => File.Exists(daemonLog) ? HandoffRig.Tail(File.ReadAllText(daemonLog)) : "";
                    break;
                case "activated":
                    // the stand-in binds the default socket paths, so the usual clients find them
                    var helper = Outside.WriteScript(sb, "act.py", Outside.ActivationHelper);
                    var act = sb.StartInside(Outside.Python, [helper, DaemonPaths.Socket(name), DaemonPaths.AdminSocket(name),
                        Outside.ActivationNames(name), target, "-f", cfg], description: $"activated {exe}[{direction}]");
                    (started, pid) = (act, act.Pid); // the helper execs the daemon in place
                    diag = () => HandoffRig.Tail(act.Stderr);
                    break;
                default:
                    var nobody = sb.StartInside("setpriv", OutsideTests.AsNobody(target, "-f", cfg), user!.Env,
                        $"unprivileged {exe}[{direction}]");
                    (started, pid) = (nobody, nobody.Pid); // setpriv execs in place
                    diag = () => HandoffRig.Tail(nobody.Stderr);
                    break;
            }
            started?.CloseStdin();
            await Outside.WaitConnectableAsync(socketHost, TimeSpan.FromSeconds(20), diag, () => Native.Exists(pid));
            await AssertPidFileAsync(pidFile, pid, "after start");
            AssertRuns(pid, copies[0], "after start");
            var startTime = HandoffRig.StartTime(pid);
            // the listening socket crosses the exec as a descriptor: its file is never made anew
            var socketId = Posix.DevIno(socketHost);

            // what must survive: a lease and its owner's connection, or a log pipe and its client's connection
            Func<Task> check = name == DaemonName.Virtlockd
                ? await HoldLeaseAsync(sb, socketHost, user)
                : await KeepLogFlowingAsync(sb, user);

            for (int step = 1; step < chain.Length; step++)
            {
                // a (re)started image handles SIGUSR1 only once set up: until then the signal would kill it
                for (var sw = Stopwatch.StartNew(); !Posix.HandlesSignal(pid, Posix.SIGUSR1); await Task.Delay(10))
                    Assert.True(Native.Exists(pid) && sw.Elapsed < TimeSpan.FromSeconds(30), $"pid {pid} never handled SIGUSR1. {diag()}");
                await HandoffRig.BindAsync(sb, copies[step], target, unmountFirst: true);
                WriteConfig(step);
                Assert.Equal(0, Native.Kill(pid, Posix.SIGUSR1));
                var want = HandoffRig.FileId(copies[step]);
                for (var sw = Stopwatch.StartNew(); Posix.DevIno($"/proc/{pid}/exe") != want || File.Exists(stateFile); await Task.Delay(10))
                    Assert.True(Native.Exists(pid) && sw.Elapsed < TimeSpan.FromSeconds(30),
                        $"{mode} {direction}: handoff {step} not done (exe {(Posix.DevIno($"/proc/{pid}/exe") == want ? "switched" : "not switched")}, " +
                        $"state file {(File.Exists(stateFile) ? "present" : "gone")}, alive {Native.Exists(pid)}). {diag()}");
                await Outside.WaitConnectableAsync(socketHost, TimeSpan.FromSeconds(15), diag, () => Native.Exists(pid));
                Assert.True(HandoffRig.StartTime(pid) == startTime, $"pid {pid} is another process after handoff {step}");
                await AssertPidFileAsync(pidFile, pid, $"after handoff {step}");
                Assert.True(Posix.DevIno(socketHost) == socketId, $"{socketHost} was made anew in handoff {step}");
                await check();
                output.WriteLine($"{mode} {exe} {direction}: handoff {step} ({chain[step - 1]} -> {chain[step]}) kept pid {pid}");
            }
        }
        finally
        {
            if (started != null) await started.StopAsync(TimeSpan.FromSeconds(3));
            else await Outside.TerminateAsync(pid);
        }
    }

    /// <summary>The pid file names <paramref name="pid"/>: a daemon taking it over truncates it, then writes its
    /// pid, so an empty or missing file is waited for (bounded).</summary>
    private static async Task AssertPidFileAsync(string pidFile, int pid, string when)
    {
        string text = "";
        for (var sw = Stopwatch.StartNew(); text.Length == 0 && sw.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(10))
            text = File.Exists(pidFile) ? File.ReadAllText(pidFile).Trim() : "";
        Assert.True(text == pid.ToString(), $"{when}: pid file {pidFile} says '{text}', the daemon is {pid}");
    }

    private static void AssertRuns(int pid, string copy, string when) =>
        Assert.True(Posix.DevIno($"/proc/{pid}/exe") == HandoffRig.FileId(copy), $"{when}: pid {pid} does not run {copy}");

    /// <summary>An owner (as the daemon's user) REGISTERs and holds a lease on a file; the returned check asserts,
    /// after a handoff, that the file is still locked, the owner's kept connection acquires another, and a rival
    /// owner is refused the first.</summary>
    private static async Task<Func<Task>> HoldLeaseAsync(Sandbox sb, string socketHost, OutsideTests.UserEnv? user)
    {
        var dir = user?.Home ?? sb.TempDir;
        var held = Path.Combine(dir, "held");
        var holder = await LeaseOwner.StartAsync(sb, socketHost, user, "holder");
        await holder.OkAsync("register");
        await holder.OkAsync($"acquire {held}");
        Assert.True(await GapWatcher.IsLockedAsync(sb, held), "the lease is not held before the handoff");
        int n = 0;
        return async () =>
        {
            Assert.True(await GapWatcher.IsLockedAsync(sb, held), "the lease is not held after the handoff");
            var more = Path.Combine(dir, $"more{n++}");
            await holder.OkAsync($"acquire {more}");
            Assert.True(await GapWatcher.IsLockedAsync(sb, more), "the kept connection's new lease is not held");
            var rival = await LeaseOwner.StartAsync(sb, socketHost, user, "rival");
            await rival.OkAsync("register");
            Assert.Equal("err 1", await rival.CommandAsync($"acquire {held}"));
            rival.Process.Kill();
        };
    }

    /// <summary>A domain opens a log (libvirt's own client, session mode for an unprivileged daemon) and writes
    /// through its pipe; the returned check writes more after a handoff and asserts every record landed once, in
    /// order, in the same file, and that the client's kept connection reports that position.</summary>
    private static async Task<Func<Task>> KeepLogFlowingAsync(Sandbox sb, OutsideTests.UserEnv? user)
    {
        const int Size = 50, Per = 20;
        var path = Path.Combine(user?.Home ?? sb.TempDir, "dom.log");
        LineProtocolDriver client = user != null
            ? await UnprivilegedLogClient.StartAsync(sb, Outside.Nobody, user.Env)
            : await LogClientDriver.StartAsync(sb, "dom");
        var w = (await client.OkAsync($"open {path}")).Split(' ');
        var inode = ulong.Parse(w[1]);
        await client.OkAsync($"write {Per} {Size}");
        long records = Per;
        return async () =>
        {
            await client.OkAsync($"write {Per} {Size}");
            records += Per;
            Assert.True(await LogEnv.EventuallyAsync(() => File.Exists(path) && new FileInfo(path).Length >= records * Size, TimeSpan.FromSeconds(15)),
                $"{path}: the pipe stopped flowing across the handoff");
            Records.AssertEqual(Records.Stream(0, records, Size), File.ReadAllBytes(path), path);
            var pos = (await client.OkAsync($"pos {path}")).Split(' ');
            Assert.Equal(inode, ulong.Parse(pos[0]));
            Assert.Equal(records * Size, long.Parse(pos[1]));
        };
    }
}

/// <summary>
/// A lock-protocol owner on one connection, in python (so it can run as the unprivileged daemon's user):
/// "register" REGISTERs it, "acquire PATH" acquires PATH in the default lock space (auto-created); replies
/// "ok" or "err STATUS" (the RPC status, 1 for an error reply) / "err eof".
/// </summary>
internal sealed class LeaseOwner : LineProtocolDriver
{
    private const string Script = """
        import os, socket, struct, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sys.argv[1])
        serial = 0
        def xstr(b):
            return struct.pack(">I", len(b)) + b + b"\0" * ((4 - len(b) % 4) % 4)
        def call(proc, body):
            global serial
            serial += 1
            msg = struct.pack(">IIiiIi", 0xEA7BEEF, 1, proc, 0, serial, 0) + body
            s.sendall(struct.pack(">I", len(msg) + 4) + msg)
            data = b""
            while len(data) < 4 or len(data) < struct.unpack(">I", data[:4])[0]:
                c = s.recv(65536)
                if not c:
                    return "err eof"
                data += c
            st = struct.unpack(">i", data[24:28])[0]
            return "ok" if st == 0 else "err %d" % st
        print("ready %d" % os.getpid(), flush=True)
        for line in sys.stdin:
            w = line.split()
            if w[0] == "register":
                print(call(1, os.urandom(16) + xstr(sys.argv[2].encode()) + struct.pack(">III", 1, os.getpid(), 0)), flush=True)
            elif w[0] == "acquire":
                print(call(6, xstr(b"") + xstr(w[1].encode()) + struct.pack(">I", 2)), flush=True)
            else:
                print("err unknown command", flush=True)
        """;

    private LeaseOwner(SandboxProcess p) : base(p, "lease owner") { }

    public static Task<LeaseOwner> StartAsync(Sandbox sb, string socketHost, OutsideTests.UserEnv? user, string name)
    {
        var script = Outside.WriteScript(sb, "lease-owner.py", Script);
        var p = user == null
            ? sb.StartOnHost(Outside.Python, [script, socketHost, name], description: $"lease owner[{name}]")
            : sb.StartInside("setpriv", OutsideTests.AsNobody(Outside.Python, script, socketHost, name), user.Env, $"lease owner[{name}] as nobody");
        return WaitReadyAsync(new LeaseOwner(p));
    }
}
