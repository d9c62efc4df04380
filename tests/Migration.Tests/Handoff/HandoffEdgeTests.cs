using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LogDaemon;
using Xunit;
using Xunit.Abstractions;

namespace Libvirt.Tests.Handoff;

/// <summary>A client connected to virtlockd but never REGISTERed when SIGUSR1 arrives.</summary>
public sealed class UnregisteredClientHandoffTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("C>C")]
    [InlineData("ours>ours")]
    [InlineData("ours>C")]
    [InlineData("rpc>rpc")]
    [InlineData("rpc>C")]
    public async Task UnregisteredClientAtSigusr1(string direction)
    {
        var chain = HandoffDirections.Parse(direction);
        await using var rig = await HandoffRig.StartAsync(DaemonName.Virtlockd, chain);
        var sb = rig.Sandbox;
        var disk = Path.Combine(rig.TempDir, "disk0");
        var holder = await LeaseChecks.HoldAsync(sb, disk, "dom0", 1);
        var owner = await OwnerConnection.StartAsync(sb, rig.SocketHost);
        LockHandoffTests.RpcAssertOk(await owner.RegisterSelfAsync(100, "relay"), "relay REGISTER");
        var relayFile = Path.Combine(rig.TempDir, "relay0");
        LockHandoffTests.RpcAssertOk(await owner.AcquireAsync("", relayFile, LockProtocol.AcquireAutoCreate), "relay ACQUIRE");
        var unreg = await OwnerConnection.StartAsync(sb, rig.SocketHost); // connected, no REGISTER
        Assert.Equal(3, (await rig.ClientListAsync()).Count); // the daemon has accepted all three

        if (direction == "C>C")
        {
            // libvirt 9.0.0: the client's ownerName is NULL, virLockDaemonClientPreExecRestart fails, the save
            // fails and the daemon exits (VIR_LOCK_DAEMON_ERR_REEXEC = 9); every lease goes with it.
            await rig.SwapAndSignalAsync();
            var code = await rig.Daemon.WaitForExitAsync(TimeSpan.FromSeconds(10));
            output.WriteLine($"C>C: virtlockd exited with {code}; stderr tail:\n{HandoffRig.Tail(rig.Daemon.Stderr, 5)}");
            Assert.Equal(9, code);
            Assert.Contains("argument key 'ownerName' must not have null value", rig.Daemon.Stderr);
            Assert.False(File.Exists(rig.StateFileHost), "C left a state file");
            Assert.False(await GapWatcher.IsLockedAsync(sb, disk), "the lockclient's lease survived the C daemon's exit");
            Assert.False(await GapWatcher.IsLockedAsync(sb, relayFile), "the relay's lease survived the C daemon's exit");
            return;
        }

        await rig.HandoffAsync();
        Assert.Equal(3, (await rig.ClientListAsync()).Count);
        await LeaseChecks.AssertAllBusyAsync(sb, [disk, relayFile], $"{direction} with an unregistered client");
        Assert.True(holder.Process.IsRunning && owner.Process.IsRunning);
        // the unregistered client was carried over and can now register and acquire
        LockHandoffTests.RpcAssertOk(await unreg.RegisterSelfAsync(200, "late"), "late REGISTER after the handoff");
        var late = Path.Combine(rig.TempDir, "late0");
        LockHandoffTests.RpcAssertOk(await unreg.AcquireAsync("", late, LockProtocol.AcquireAutoCreate), "late ACQUIRE after the handoff");
        await LeaseChecks.AssertAllBusyAsync(sb, [late], $"{direction}: late owner's lease");
    }
}

/// <summary>A state file already in /run when the daemon starts.</summary>
public sealed class BadStateFileTests(ITestOutputHelper output)
{
    public static TheoryData<DaemonName, string> Cases => new()
    {
        { DaemonName.Virtlockd, "stale" }, { DaemonName.Virtlockd, "truncated" }, { DaemonName.Virtlockd, "notjson" },
        { DaemonName.Virtlogd, "stale" }, { DaemonName.Virtlogd, "truncated" }, { DaemonName.Virtlogd, "notjson" },
    };

    public static TheoryData<DaemonName> Names => new() { DaemonName.Virtlockd, DaemonName.Virtlogd };

    /// <summary>Our configurations that restore the state differently: our default (libvirt's virNetDaemon
    /// restores the servers) and the managed RPC core (its own state model does).</summary>
    private static readonly DaemonKind[] Ours = [DaemonKind.Managed, DaemonKind.ManagedRpc];

    public static TheoryData<DaemonName, string, DaemonKind> OursCases()
    {
        var d = new TheoryData<DaemonName, string, DaemonKind>();
        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            foreach (var content in new[] { "stale", "truncated", "notjson" })
                foreach (var kind in Ours)
                    d.Add(name, content, kind);
        return d;
    }

    public static TheoryData<DaemonName, DaemonKind> OursNames()
    {
        var d = new TheoryData<DaemonName, DaemonKind>();
        foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
            foreach (var kind in Ours)
                d.Add(name, kind);
        return d;
    }

    private static string Content(string c) => c switch
    {
        "stale" => "{\"magic\": \"1\", \"daemon\": {\"servers\": {}}}\n",
        "truncated" => "{\"magic\": \"12",
        "notjson" => "hello world\n",
        _ => throw new ArgumentException(c),
    };

    private static string StateFile(DaemonName n) => $"/run/{DaemonPaths.ExeName(n)}-restart-exec.json";

    /// <summary>One request served on a fresh connection: REGISTER (virtlockd) / GetLogFilePosition (virtlogd).</summary>
    internal static async Task AssertServesAsync(DaemonName name, string socketHost, Sandbox sb)
    {
        using var raw = await RawRpcClient.ConnectAsync(socketHost);
        if (name == DaemonName.Virtlockd)
        {
            var m = await raw.CallAsync(LockProtocol.Program, LockProtocol.Version, LockProtocol.ProcRegister,
                LockProtocol.RegisterArgs(LockProtocolClient.DefaultUuid((uint)sb.HolderPid), "probe", 1, (uint)sb.HolderPid));
            Assert.True(m.Error is null, $"REGISTER failed: {m.Error}");
        }
        else
        {
            var m = await raw.CallAsync(LogProtocol.Program, LogProtocol.Version, LogProtocol.ProcGetPosition,
                LogProtocol.PositionArgs(Path.Combine(sb.TempDir, "nothing.log"), 0));
            Assert.Equal(RpcMessageType.Reply, m.Header.Type);
        }
    }

    [Theory]
    [MemberData(nameof(OursCases))]
    public async Task OursStartsColdAndRemovesTheFile(DaemonName name, string kind, DaemonKind ours)
    {
        await using var sb = await Sandbox.CreateAsync();
        File.WriteAllText(sb.HostPath(StateFile(name)), Content(kind));
        await using var d = await DaemonProcess.StartAndWaitAsync(sb, name, ours);
        await AssertServesAsync(name, d.SocketHostPath, sb);
        Assert.False(File.Exists(sb.HostPath(StateFile(name))), "state file not removed");
        Assert.True(d.IsRunning);
        // stderr is pumped asynchronously: the line was written before the daemon served, but may not be read yet
        var wanted = kind == "stale" ? "Found restart exec file" : "starting cold";
        for (var sw = System.Diagnostics.Stopwatch.StartNew(); !d.Stderr.Contains(wanted) && sw.Elapsed < TimeSpan.FromSeconds(10);)
            await Task.Delay(20);
        if (kind == "stale")
            Assert.Matches($@"warning : \S*:\d+ : Found restart exec file with old magic 1 vs wanted {d.Pid}", d.Stderr);
        else
            Assert.Contains($"Restart state file {StateFile(name)} is not valid JSON (", d.Stderr);
        if (kind != "stale") Assert.Contains("); starting cold", d.Stderr);
        output.WriteLine(HandoffRig.Tail(d.Stderr, 3));
    }

    /// <summary>Recorded C behaviour: stale = warn, remove, start; unparsable = error, remove, exit 3.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public async Task CReference(DaemonName name, string kind)
    {
        await using var sb = await Sandbox.CreateAsync();
        File.WriteAllText(sb.HostPath(StateFile(name)), Content(kind));
        var d = DaemonProcess.Start(sb, name, DaemonKind.C);
        await using var _ = d;
        if (kind == "stale")
        {
            await d.WaitForSocketAsync(DaemonPaths.Socket(name), TimeSpan.FromSeconds(15));
            await AssertServesAsync(name, d.SocketHostPath, sb);
            Assert.Contains($"Found restart exec file with old magic 1 vs wanted {d.Pid}", d.Stderr);
        }
        else
        {
            var code = await d.WaitForExitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(3, code); // VIR_*_DAEMON_ERR_INIT
            Assert.Contains("virJSONValueFromString", d.Stderr);
            Assert.Contains("internal error: cannot parse json", d.Stderr);
        }
        Assert.False(File.Exists(sb.HostPath(StateFile(name))), "C left the state file");
        output.WriteLine($"C {name} {kind}: running={d.IsRunning} exit={d.Process.ExitCode}\n{HandoffRig.Tail(d.Stderr, 4)}");
    }

    /// <summary>
    /// Valid JSON with the right magic but no other keys: SIGUSR1 with /usr/sbin/&lt;daemon&gt; swapped for a script
    /// that overwrites the state file (magic = $$ = the daemon's pid) and execs ours again.
    /// </summary>
    [Theory]
    [MemberData(nameof(OursNames))]
    public async Task OursRightMagicMissingKeys(DaemonName name, DaemonKind ours)
    {
        await using var rig = await HandoffRig.StartAsync(name, [ours]);
        var script = MagicOnlyStateScript(rig);
        var before = rig.CurrentProcess();
        await rig.SwapAndSignalAsync(script);
        // the event to wait for: the new image has given up on the state and says so
        Assert.True(await LogEnv.EventuallyAsync(() => rig.Daemon.Stderr.Contains("starting cold") || !rig.Daemon.IsRunning, TimeSpan.FromSeconds(15)),
            $"no 'starting cold' within 15 s: {HandoffRig.Tail(rig.Daemon.Stderr)}");
        await rig.WaitServingAsync(TimeSpan.FromSeconds(10));
        output.WriteLine(HandoffRig.Tail(rig.Daemon.Stderr, 6));
        Assert.True(rig.Daemon.IsRunning, $"ours exited ({rig.Daemon.ExitCode}) on a state file missing keys: {HandoffRig.Tail(rig.Daemon.Stderr)}");
        rig.AssertSameProcess(before, "after a state file missing keys");
        Assert.False(File.Exists(rig.StateFileHost), "state file not removed");
        await BadStateFileTests.AssertServesAsync(name, rig.SocketHost, rig.Sandbox);
        // the C daemon's message for the first key it checks (CRightMagicMissingKeys), then ours starts cold
        Assert.Contains(MissingKeysMessage(name), rig.Daemon.Stderr);
        Assert.Contains("starting cold", rig.Daemon.Stderr);
    }

    /// <summary>A stand-in for the daemon binary that overwrites the state file with nothing but the right magic
    /// ($$, the pid the exec keeps) and execs the daemon's copy again.</summary>
    private static string MagicOnlyStateScript(HandoffRig rig)
    {
        var script = Path.Combine(rig.TempDir, "overwrite-state.sh");
        File.WriteAllText(script, $"#!/bin/sh\nprintf '{{\"magic\": \"%s\"}}\\n' \"$$\" > {rig.StateFileInside}\nexec {rig.Copies[0]} \"$@\"\n");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        return script;
    }

    /// <summary>What lock_daemon.c and log_daemon.c report first for a document with nothing but the magic.</summary>
    private static string MissingKeysMessage(DaemonName name) => name == DaemonName.Virtlockd
        ? "internal error: Missing defaultLockspace data from JSON file"
        : "internal error: Malformed daemon data from JSON file";

    /// <summary>The same document given to the C daemon (through the same script): it reports the message ours
    /// must match, then exits (ours serves on: a deliberate difference).</summary>
    [Theory]
    [MemberData(nameof(Names))]
    public async Task CRightMagicMissingKeys(DaemonName name)
    {
        await using var rig = await HandoffRig.StartAsync(name, [DaemonKind.C]);
        var script = MagicOnlyStateScript(rig);
        await rig.SwapAndSignalAsync(script);
        Assert.True(await LogEnv.EventuallyAsync(() => rig.Daemon.Stderr.Contains(MissingKeysMessage(name)), TimeSpan.FromSeconds(15)),
            $"C did not say '{MissingKeysMessage(name)}' within 15 s: {HandoffRig.Tail(rig.Daemon.Stderr)}");
        output.WriteLine(HandoffRig.Tail(rig.Daemon.Stderr, 6));
    }
}

/// <summary>SIGUSR1 when argv[0] no longer exists: exec fails.</summary>
public sealed class FailedExecTests(ITestOutputHelper output)
{
    /// <summary>Failures × ours (our default, and ours on the managed RPC core) and C × daemons.</summary>
    public static TheoryData<DaemonName, DaemonKind, string> Cases
    {
        get
        {
            var data = new TheoryData<DaemonName, DaemonKind, string>();
            foreach (var failure in new[] { "removed-binary", "unwritable-state" })
                foreach (var kind in new[] { DaemonKind.Managed, DaemonKind.ManagedRpc, DaemonKind.C })
                    foreach (var name in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
                        data.Add(name, kind, failure);
            return data;
        }
    }

    /// <summary>The daemon's descriptors above stderr that an exec would keep (no O_CLOEXEC in
    /// /proc/PID/fdinfo), each with what it is (its /proc/PID/fd link).</summary>
    private static SortedDictionary<int, string> Inheritable(int pid)
    {
        const int O_CLOEXEC = 0x80000; // 02000000
        var fds = new SortedDictionary<int, string>();
        foreach (var entry in Directory.GetFiles($"/proc/{pid}/fdinfo"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out int fd) || fd <= 2)
                continue;
            string flags, target;
            try
            {
                flags = File.ReadAllLines(entry).First(l => l.StartsWith("flags:"))["flags:".Length..].Trim();
                target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget ?? "?";
            }
            catch (IOException) { continue; } // closed in between
            if ((Convert.ToInt32(flags, 8) & O_CLOEXEC) == 0)
                fds[fd] = target;
        }
        return fds;
    }

    private static string Describe(IEnumerable<KeyValuePair<int, string>> fds) =>
        string.Join(", ", fds.Select(f => $"{f.Key} ({f.Value})"));

    /// <summary>The restart fails half-way: argv[0] is gone when the daemon
    /// execs it ("removed-binary"), or the state cannot be written because a
    /// directory stands where the file goes ("unwritable-state"). Ours serves
    /// on, and what the restart made inheritable for the exec (sockets, client
    /// connections, lease files, log pipes) is close-on-exec again.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public async Task AFailedRestartKeepsServing(DaemonName name, DaemonKind kind, string failure)
    {
        var exe = DaemonPaths.ExeName(name);
        await using var sb = await Sandbox.CreateAsync();
        var copy = Path.Combine(sb.TempDir, $"{exe}-copy");
        File.Copy(DaemonPaths.Binary(name, kind), copy);
        File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
        var config = (name == DaemonName.Virtlogd ? "max_size = 1000000000\n" : "") + kind.ImplConfig(name);
        var args = config.Length > 0 ? new[] { "-f", sb.WriteTempFile($"{exe}.conf", config) } : [];
        var daemon = sb.StartInside(copy, args, description: $"{exe}-copy[{kind}]");
        daemon.CloseStdin();
        var sock = sb.HostPath(DaemonPaths.Socket(name));
        var state = sb.HostPath($"/run/{exe}-restart-exec.json");
        await HandoffRig.WaitSocketAsync(daemon, sock, TimeSpan.FromSeconds(15));

        var disk = Path.Combine(sb.TempDir, "disk0");
        var log = Path.Combine(sb.TempDir, "dom0.log");
        LogClientDriver? lc = null;
        if (name == DaemonName.Virtlockd) await LeaseChecks.HoldAsync(sb, disk, "dom0", 1);
        else
        {
            lc = await LogClientDriver.StartAsync(sb, "dom0");
            await lc.OpenAsync(log);
            await lc.WriteAsync(100, 100);
        }

        // what crosses an exec before the restart: what the daemon was started with (the test host's own), no more
        var inheritableBefore = Inheritable(daemon.Pid);
        Assert.True(inheritableBefore.All(f => !f.Value.StartsWith("socket:")), $"before SIGUSR1, inheritable: {Describe(inheritableBefore)}");
        var sockets = Directory.GetFiles($"/proc/{daemon.Pid}/fd").Count(f => new FileInfo(f).LinkTarget?.StartsWith("socket:") == true);

        string why;
        if (failure == "removed-binary")
        {
            File.Delete(copy);
            why = "Unable to restart self: No such file or directory";
        }
        else
        {
            Directory.CreateDirectory(state);
            why = "Unable to save state file";
        }
        Assert.Equal(0, Native.Kill(daemon.Pid, Posix.SIGUSR1));

        if (kind == DaemonKind.C)
        {
            var code = await daemon.WaitForExitAsync(TimeSpan.FromSeconds(10));
            output.WriteLine($"C {exe}: exit {code}, state file left: {File.Exists(state)}\n{HandoffRig.Tail(daemon.Stderr, 3)}");
            Assert.Equal(9, code); // VIR_*_DAEMON_ERR_REEXEC
            Assert.Contains(why, daemon.Stderr);
            if (failure == "removed-binary")
                Assert.True(File.Exists(state), "C 9.0.0 leaves the state file behind");
            return;
        }

        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!daemon.Stderr.Contains(why) && daemon.IsRunning && sw.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(20);
        Assert.True(daemon.IsRunning, $"ours exited ({daemon.ExitCode}) after a failed exec: {HandoffRig.Tail(daemon.Stderr)}");
        // served again: the failed restart is behind it (its clean-up included)
        await BadStateFileTests.AssertServesAsync(name, sock, sb);
        output.WriteLine(HandoffRig.Tail(daemon.Stderr, 3));
        Assert.True(daemon.IsRunning, $"ours exited ({daemon.ExitCode}) after a failed exec: {HandoffRig.Tail(daemon.Stderr)}");
        Assert.Contains(why, daemon.Stderr);
        // the listening sockets, the clients' connections and the rest were made inheritable for the exec
        Assert.True(sockets >= 3, $"the daemon has {sockets} sockets: fewer than its two listening sockets and a client");
        var leaked = Inheritable(daemon.Pid).Where(f => !inheritableBefore.Contains(f)).ToList();
        Assert.True(leaked.Count == 0, $"{kind} {exe}: inheritable after the failed restart ({failure}), not before: {Describe(leaked)}");
        if (failure == "unwritable-state")
        {
            // File.Exists is false for a directory whatever happened: look inside it, and at what stands there
            Assert.True(Directory.Exists(state), "the directory standing where the state file goes is gone");
            Assert.True(Directory.GetFileSystemEntries(state).Length == 0, "something was written into " + state);
        }
        else
            Assert.False(Path.Exists(state), "state file left behind after a failed restart");
        if (name == DaemonName.Virtlockd)
            await LeaseChecks.AssertAllBusyAsync(sb, [disk], "after a failed exec");
        else
        {
            await lc!.WriteAsync(100, 100);
            await lc.CloseFdAsync();
            var sw2 = System.Diagnostics.Stopwatch.StartNew();
            while (sw2.Elapsed < TimeSpan.FromSeconds(10) && new FileInfo(log).Length < 20000) await Task.Delay(20);
            Records.AssertEqual(Records.Stream(0, 200, 100), File.ReadAllBytes(log), "dom0.log after a failed exec");
        }
    }
}
