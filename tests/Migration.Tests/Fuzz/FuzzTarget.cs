using System.Buffers.Binary;
using System.Text;
using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.Fuzz;

/// <summary>
/// One daemon under fuzz: its own sandbox in which every file system but the sandbox's /run is read-only (a
/// fuzzed path cannot create or truncate a file of the machine), /run/fuzz for the paths the cases name.
/// <see cref="Run"/> plays a case and describes what came back, message by message, as text comparable
/// between the C daemon and ours.
/// </summary>
public sealed class FuzzTarget : IAsyncDisposable
{
    /// <summary>The call that ends every case: a program no daemon serves, answered by virNetServer itself.</summary>
    public const uint SentinelProgram = 0x5E771E11;
    public const uint SentinelSerial = 0x7FFFFFF0;
    private static readonly TimeSpan ReplyWait = TimeSpan.FromSeconds(10);
    private const int MaxFiller = 1 << 20;

    public DaemonName Name { get; }
    public DaemonKind Kind { get; }
    public Sandbox Sandbox { get; private set; } = null!;
    public DaemonProcess Daemon { get; private set; } = null!;
    public int Restarts { get; private set; }

    private FuzzTarget(DaemonName name, DaemonKind kind) { Name = name; Kind = kind; }

    public static async Task<FuzzTarget> StartAsync(DaemonName name, DaemonKind kind)
    {
        var t = new FuzzTarget(name, kind);
        await t.StartDaemonAsync();
        return t;
    }

    private const string ReadOnlyMachine =
        "mkdir -p /run/fuzz/ls && " +
        // every mount but the sandbox's /run (and the kernel's /proc, /sys, /dev) read-only in this namespace
        "for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do case \"$m\" in /run|/run/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) ;; " +
        "*) mount -o remount,bind,ro \"$m\" 2>/dev/null ;; esac; done; true";

    private async Task StartDaemonAsync()
    {
        Sandbox = await Sandbox.CreateAsync(setup: ReadOnlyMachine);
        try
        {
            Daemon = await DaemonProcess.StartAndWaitAsync(Sandbox, Name, Kind);
            await Daemon.WaitForSocketAsync(DaemonPaths.AdminSocket(Name), TimeSpan.FromSeconds(15));
            if (Name == DaemonName.Virtlockd)
            {
                // the named lock space the cases use
                var r = Run(new FuzzCase(-1, FuzzProgram.Lock, false, [],
                    FrameFuzzer.Frame(FrameFuzzer.LockProgram, 1, 8, 1, new XdrWriter().String("/run/fuzz/ls").ToArray()), 0, false, "setup"));
                if (!r.Contains("st=Ok"))
                    throw new InvalidOperationException($"{Kind} virtlockd: CREATE_LOCKSPACE /run/fuzz/ls failed: {r}");
            }
        }
        catch
        {
            await Sandbox.DisposeAsync();
            throw;
        }
    }

    /// <summary>After a crash of this daemon: a fresh sandbox and daemon, so the run can go on.</summary>
    public async Task RestartAsync()
    {
        Restarts++;
        await DisposeAsync();
        await StartDaemonAsync();
    }

    public bool Alive => Daemon.IsRunning;

    /// <summary>Plays <paramref name="c"/> on a fresh connection; the text of every message that came back, in order.</summary>
    public string Run(FuzzCase c)
    {
        var o = new StringBuilder();
        using var s = UnixStream.Connect(c.AdminSocket ? Daemon.AdminSocketHostPath : Daemon.SocketHostPath, TimeSpan.FromSeconds(10));
        Play(c, s, o);
        if (s.ReceivedFds.Count > 0)
            o.Append($"fds received: {s.ReceivedFds.Count}; ");
        return o.ToString();
    }

    private void Play(FuzzCase c, UnixStream s, StringBuilder o)
    {
        var reader = new FrameReader(s);
        foreach (var p in c.Prefix)
        {
            uint serial = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(20));
            if (!s.Send(p, ReplyWait)) { o.Append("prefix: peer closed on send; "); return; }
            if (!reader.ReadUntil(o, m => m.Serial == serial, "prefix"))
                return;
        }

        // the case's bytes, with descriptors after the first frame if it wants them
        var (firstEnd, nfds) = FirstFrame(c.Bytes);
        int[] fds = c.FdsToSend > 0 && nfds is > 0 and <= 3 ? Enumerable.Range(0, (int)nfds).Select(_ => UnixStream.OpenDevNull()).ToArray() : [];
        try
        {
            bool open = fds.Length > 0
                ? s.Send(c.Bytes.AsSpan(0, firstEnd), ReplyWait) && s.SendFds(fds, ReplyWait) && s.Send(c.Bytes.AsSpan(firstEnd), ReplyWait)
                : s.Send(c.Bytes, ReplyWait);
            if (!open) o.Append("peer closed on send; ");
        }
        finally
        {
            foreach (var fd in fds) UnixStream.CloseFd(fd);
        }

        if (c.HalfClose)
        {
            s.ShutdownWrite();
            reader.ReadUntil(o, _ => false, "after eof");
            return;
        }
        int filler = Filler(c.Bytes);
        if (filler > MaxFiller)
        {
            s.ShutdownWrite();
            o.Append($"[frame wants {filler} more bytes: eof] ");
            reader.ReadUntil(o, _ => false, "after eof");
            return;
        }
        var tail = new byte[filler].Concat(FrameFuzzer.Frame(SentinelProgram, 1, 1, SentinelSerial, [])).ToArray();
        s.Send(tail, ReplyWait);
        if (reader.ReadUntil(o, m => m.Program == SentinelProgram && m.Serial == SentinelSerial, "case"))
        {
            // then our EOF: anything else the daemon sends before it closes
            s.ShutdownWrite();
            reader.ReadUntil(o, _ => false, "late");
        }
    }

    /// <summary>A fresh connection gets a valid call of each of the daemon's programs answered, and the sentinel.</summary>
    public string? HealthCheck(int batch)
    {
        try
        {
            var main = Name == DaemonName.Virtlockd
                ? new[]
                {
                    FrameFuzzer.Frame(FrameFuzzer.LockProgram, 1, 1, 1, new XdrWriter().OpaqueFixed(new byte[16]).String("health")
                        .UInt(1).UInt(FrameFuzzer.FakeOwnerPid).UInt(0).ToArray()),
                    FrameFuzzer.Frame(FrameFuzzer.LockProgram, 1, 6, 2, new XdrWriter().String("/run/fuzz/ls")
                        .String($"health{batch}").UInt(2).ToArray()),
                }
                : new[]
                {
                    FrameFuzzer.Frame(FrameFuzzer.LogProgram, 1, 4, 1, new XdrWriter().String("qemu").OpaqueFixed(new byte[16])
                        .String("health").String("/run/fuzz/health.log").String($"batch {batch}\n").UInt(0).ToArray()),
                };
            var admin = new[] { FrameFuzzer.Frame(FrameFuzzer.AdminProgram, 1, 3, 1, []) };
            foreach (var (frames, adminSocket) in new[] { (main, false), (admin, true) })
            {
                var r = Run(new FuzzCase(-1, FuzzProgram.Lock, adminSocket, frames, [], 0, false, "health"));
                int oks = r.Split("st=Ok").Length - 1;
                int errors = r.Split("st=Error").Length - 1; // the sentinel's
                if (oks != frames.Length || errors != 1 || !r.Contains($"p={SentinelProgram:x}"))
                    return $"{(adminSocket ? "admin" : "main")} socket: {r}";
            }
            return Alive ? null : "daemon exited";
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    /// <summary>End of the first frame in <paramref name="b"/> and its nfds if it is a CALL_WITH_FDS.</summary>
    private static (int End, uint? Nfds) FirstFrame(byte[] b)
    {
        if (b.Length < 4) return (b.Length, null);
        uint len = BinaryPrimitives.ReadUInt32BigEndian(b);
        if (len < 28 || len > b.Length) return (b.Length, null);
        int type = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(16));
        uint? nfds = type == (int)RpcMessageType.CallWithFds && len >= 32 ? BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(28)) : null;
        return ((int)len, nfds);
    }

    /// <summary>
    /// Zero bytes that complete the last frame the daemon will be waiting for (after which the sentinel starts a
    /// frame of its own): the daemon's framing replayed over the case's bytes. 0 when the bytes end on a frame
    /// boundary or with a length the daemon refuses (it closes the connection then).
    /// </summary>
    public static int Filler(byte[] b)
    {
        long pos = 0;
        Span<byte> lenWord = stackalloc byte[4];
        while (pos < b.Length)
        {
            long have = b.Length - pos;
            lenWord.Clear();
            b.AsSpan((int)pos, (int)Math.Min(4, have)).CopyTo(lenWord);
            uint len = BinaryPrimitives.ReadUInt32BigEndian(lenWord);
            if (len < 28 || len > FrameFuzzer.MessageMax + 4)
                return have < 4 ? (int)(4 - have) : 0;
            if (len > have)
                return (int)(len - have);
            pos += len;
        }
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        if (Daemon != null) await Daemon.DisposeAsync();
        if (Sandbox != null) await Sandbox.DisposeAsync();
    }
}

/// <summary>Reads whole RPC messages from a <see cref="UnixStream"/> and writes them as comparable text.</summary>
public sealed class FrameReader(UnixStream s)
{
    private readonly List<byte> _buf = new();
    private int _fdsExpected;

    public sealed record Msg(uint Program, uint Version, int Procedure, int Type, uint Serial, int Status, byte[] Payload);

    /// <summary>
    /// Appends every message to <paramref name="o"/> until one satisfies <paramref name="until"/> (true), EOF
    /// (false, "eof" appended) or no byte for a while (false, "stall" appended).
    /// </summary>
    public bool ReadUntil(StringBuilder o, Func<Msg, bool> until, string phase)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            while (TryTake(out var m))
            {
                o.Append(Describe(m)).Append("; ");
                if (m.Type == (int)RpcMessageType.ReplyWithFds && m.Payload.Length >= 4)
                    _fdsExpected += (int)Math.Min(32, BinaryPrimitives.ReadUInt32BigEndian(m.Payload));
                if (until(m))
                {
                    // the descriptors follow their frame, one byte each: wait (bounded) for them too
                    while (s.ReceivedFds.Count < _fdsExpected && DateTime.UtcNow < deadline)
                    {
                        var more = s.Receive(deadline - DateTime.UtcNow);
                        if (more is null) continue; // nothing yet, or only a descriptor's byte
                        if (more.Length == 0) break; // EOF
                        _buf.AddRange(more);
                    }
                    return true;
                }
            }
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                o.Append($"{phase}: stall; ");
                return false;
            }
            var got = s.Receive(left);
            if (got is null) continue;
            if (got.Length == 0)
            {
                o.Append(_buf.Count > 0 ? $"{phase}: eof inside a frame ({_buf.Count} bytes); " : $"{phase}: eof; ");
                return false;
            }
            _buf.AddRange(got);
        }
    }

    private bool TryTake(out Msg m)
    {
        m = null!;
        if (_buf.Count < 4) return false;
        uint len = BinaryPrimitives.ReadUInt32BigEndian(_buf.GetRange(0, 4).ToArray());
        if (len < 28)
        {
            // not something a daemon sends: keep it visible and drop it
            m = new Msg(0, 0, 0, -1, 0, -1, _buf.ToArray());
            _buf.Clear();
            return true;
        }
        if (_buf.Count < len) return false;
        var f = _buf.GetRange(0, (int)len).ToArray();
        _buf.RemoveRange(0, (int)len);
        var r = new XdrReader(f, 4);
        m = new Msg(r.UInt(), r.UInt(), r.Int(), r.Int(), r.UInt(), r.Int(), f[28..]);
        return true;
    }

    /// <summary>Descriptors that arrived with the messages read so far.</summary>
    public int FdsReceived => s.ReceivedFds.Count;

    /// <summary>
    /// Replies whose bytes are the same from any daemon given the same calls; the others carry inodes, client
    /// ids, timestamps or hash-table order (log OPEN/GET_POSITION, admin lists and client lookups) and are
    /// compared by length.
    /// </summary>
    private static bool Deterministic(Msg m) => m.Program switch
    {
        FrameFuzzer.LogProgram => m.Procedure is not (1 or 2),
        FrameFuzzer.AdminProgram => m.Procedure is not (4 or 8 or 9 or 10),
        _ => true,
    };

    private string Describe(Msg m)
    {
        var t = m.Type is >= 0 and <= 6 ? ((RpcMessageType)m.Type).ToString() : m.Type.ToString();
        var st = m.Status is >= 0 and <= 2 ? ((RpcStatus)m.Status).ToString() : m.Status.ToString();
        var d = $"{t} p={m.Program:x} v={m.Version} proc={m.Procedure} s={m.Serial} st={st}";
        if (m.Status == (int)RpcStatus.Error)
        {
            try
            {
                var e = RpcError.Decode(m.Payload);
                d += $" code={e.Code} dom={e.Domain} lvl={e.Level} msg={e.Message ?? "<null>"}";
            }
            catch (Exception) { d += $" undecodable error ({m.Payload.Length} bytes)"; }
        }
        else
        {
            d += $" len={m.Payload.Length}";
            if (Deterministic(m) && m.Payload.Length > 0)
                d += " " + Convert.ToHexString(m.Payload, 0, Math.Min(m.Payload.Length, 128));
        }
        return d;
    }
}
