using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.LockDaemonOutside;

internal static class Outside
{
    public const string Python = "/usr/bin/python3";
    public const int Nobody = 65534;

    /// <summary>
    /// systemd socket activation stand-in: binds + listens on two Unix sockets, puts them on fds 3 and 4,
    /// sets LISTEN_FDS=2, LISTEN_PID=its own pid (kept across exec), LISTEN_FDNAMES, then execs the daemon.
    ///   act.py SOCK ADMINSOCK FDNAMES DAEMON [ARGS...]
    /// </summary>
    public const string ActivationHelper = """
        import os, socket, sys
        sock, admin, names = sys.argv[1:4]
        hi = []
        for i, p in enumerate((sock, admin)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(p)
            s.listen(16)
            fd = s.detach()
            os.dup2(fd, 20 + i)
            os.close(fd)
            hi.append(20 + i)
        for i, fd in enumerate(hi):
            os.dup2(fd, 3 + i)
            os.set_inheritable(3 + i, True)
            os.close(fd)
        os.environ["LISTEN_FDS"] = "2"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDNAMES"] = names
        os.execv(sys.argv[4], sys.argv[4:])
        """;

    /// <summary>
    /// A one-shot lock protocol client: connects to argv[1], sends CREATE_LOCKSPACE(argv[2]) and prints
    /// "reply <status>" or "eof" / "error <exc>". Used to connect as another uid (under setpriv).
    /// </summary>
    public const string OneShotClient = """
        import socket, struct, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(sys.argv[1])
            path = sys.argv[2].encode()
            pad = (4 - len(path) % 4) % 4
            body = struct.pack(">IIiiIi", 0xEA7BEEF, 1, 8, 0, 1, 0) + struct.pack(">I", len(path)) + path + b"\0" * pad
            s.sendall(struct.pack(">I", len(body) + 4) + body)
            data = b""
            while len(data) < 28:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if len(data) < 28:
                print("eof %d" % len(data))
            else:
                print("reply %d" % struct.unpack(">i", data[24:28])[0])
        except Exception as e:
            print("error %s" % e)
        """;

    /// <summary>
    /// A one-shot RPC client: connects to argv[1], sends a call of program argv[2] (hex), version 1, procedure argv[3]
    /// with an empty payload, and prints "reply STATUS" (+ " MESSAGE" for an error reply) or "eof N" / "error EXC".
    /// Used to connect as another uid (under setpriv); with an unknown procedure any daemon answers with an error.
    /// </summary>
    public const string OneShotRawClient = """
        import socket, struct, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(sys.argv[1])
            body = struct.pack(">IIiiIi", int(sys.argv[2], 16), 1, int(sys.argv[3]), 0, 1, 0)
            s.sendall(struct.pack(">I", len(body) + 4) + body)
            data = b""
            while True:
                if len(data) >= 4 and len(data) >= struct.unpack(">I", data[:4])[0]:
                    break
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if len(data) < 28:
                print("eof %d" % len(data))
            else:
                status = struct.unpack(">i", data[24:28])[0]
                msg = ""
                if status == 1 and len(data) >= 44 and struct.unpack(">i", data[36:40])[0] == 1:
                    n = struct.unpack(">I", data[40:44])[0]
                    msg = " " + data[44:44 + n].decode()
                print("reply %d%s" % (status, msg))
        except Exception as e:
            print("error %s" % e)
        """;

    public static string WriteScript(Sandbox sb, string name, string text)
    {
        var p = Path.Combine(sb.TempDir, name);
        File.WriteAllText(p, text);
        File.SetUnixFileMode(p, (UnixFileMode)0b110_100_100);
        return p;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int chown(string path, int owner, int group);

    public static void Chown(string path, int uid, int gid)
    {
        if (chown(path, uid, gid) != 0) throw new IOException($"chown {path}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Poll (bounded) until a Unix stream socket at a host path accepts a connection.</summary>
    public static async Task WaitConnectableAsync(string hostPath, TimeSpan timeout, Func<string>? diag = null, Func<bool>? alive = null)
    {
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < timeout)
        {
            if (alive != null && !alive()) throw new InvalidOperationException($"process exited before {hostPath} was ready. {diag?.Invoke()}");
            if (File.Exists(hostPath))
            {
                try
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(hostPath), cts.Token);
                    return;
                }
                catch (Exception e) { last = e; }
            }
            await Task.Delay(25);
        }
        throw new TimeoutException($"{hostPath} not connectable within {timeout} ({last?.Message}). {diag?.Invoke()}");
    }

    /// <summary>Poll (bounded) until a file exists.</summary>
    public static async Task WaitFileAsync(string hostPath, TimeSpan timeout, Func<string>? diag = null)
    {
        var sw = Stopwatch.StartNew();
        while (!File.Exists(hostPath))
        {
            if (sw.Elapsed > timeout) throw new TimeoutException($"{hostPath} did not appear within {timeout}. {diag?.Invoke()}");
            await Task.Delay(25);
        }
    }

    /// <summary>Fields of /proc/PID/stat after the "(comm)" field: [0]=state, [1]=ppid, [2]=pgrp, [3]=session.</summary>
    public static string[] StatFields(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    /// <summary>SIGTERM, bounded wait, SIGKILL a process this test started that is not tracked by the sandbox.</summary>
    public static async Task TerminateAsync(int pid)
    {
        if (pid <= 0 || !Native.Exists(pid)) return;
        Native.Kill(pid, Native.SIGTERM);
        for (var sw = Stopwatch.StartNew(); sw.Elapsed < TimeSpan.FromSeconds(5); await Task.Delay(25))
            if (!Native.Exists(pid) || IsZombie(pid)) return;
        Native.Kill(pid, Native.SIGKILL);
    }

    private static bool IsZombie(int pid)
    {
        try { return StatFields(pid)[0] == "Z"; } catch { return true; }
    }

    /// <summary>The "error : FUNC:LINE : MESSAGE" lines of a libvirt-style log on stderr, as "FUNC:LINE : MESSAGE".</summary>
    public static List<string> ErrorLines(string stderr) =>
        stderr.Split('\n').Where(l => l.Contains(": error : ")).Select(l => l[(l.IndexOf(": error : ") + ": error : ".Length)..]).ToList();

    /// <summary>Names of the socket units systemd passes in LISTEN_FDNAMES: "EXE.socket:EXE-admin.socket".</summary>
    public static string ActivationNames(DaemonName name) => $"{DaemonPaths.ExeName(name)}.socket:{DaemonPaths.ExeName(name)}-admin.socket";

    /// <summary>The main RPC program: lock 0xEA7BEEF / log 0x87539319.</summary>
    public static uint MainProgram(DaemonName name) => name == DaemonName.Virtlogd ? 0x87539319u : 0xEA7BEEFu;

    /// <summary>Message part of "FUNC:LINE : MESSAGE".</summary>
    public static string MessageOf(string errorLine) => errorLine[(errorLine.IndexOf(" : ") + 3)..];
}

/// <summary>
/// tests/LogClient ("logclient --unprivileged"): libvirt's own session-mode log client (virLogManagerNew(false)),
/// run as <paramref name="uid"/> via setpriv with the given environment, so it connects to
/// $XDG_RUNTIME_DIR/libvirt/virtlogd-sock like a session libvirtd would.
/// </summary>
internal sealed class UnprivilegedLogClient : LineProtocolDriver
{
    private UnprivilegedLogClient(SandboxProcess p) : base(p, "logclient --unprivileged") { }

    public static Task<UnprivilegedLogClient> StartAsync(Sandbox sb, int uid, IDictionary<string, string?> env, string name = "outside")
    {
        var bin = FindBinary("LogClient", "logclient");
        var p = sb.StartInside("setpriv",
            [$"--reuid={uid}", $"--regid={uid}", "--clear-groups", bin, "--unprivileged", "--name", name,
             "--uuid", Convert.ToHexString(Guid.NewGuid().ToByteArray())], env, $"logclient --unprivileged[{name}]");
        return WaitReadyAsync(new UnprivilegedLogClient(p));
    }

    /// <summary>DomainOpenLogFile; the pipe fd stays open in the client. Returns (fd, inode, offset).</summary>
    public async Task<(int Fd, ulong Inode, long Offset)> OpenAsync(string path)
    {
        var w = (await OkAsync($"open {path}")).Split(' ');
        return (int.Parse(w[0]), ulong.Parse(w[1]), long.Parse(w[2]));
    }
}
