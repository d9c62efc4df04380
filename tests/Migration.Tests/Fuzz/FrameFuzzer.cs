using System.Buffers.Binary;
using System.Text;
using Libvirt.Tests.Infrastructure;

namespace Libvirt.Tests.Fuzz;

/// <summary>The programs a case can address.</summary>
public enum FuzzProgram { Lock, Log, Admin, Keepalive }

/// <summary>
/// One fuzz case: valid set-up calls (the prefix), then the fuzzed bytes, optionally descriptors, optionally a
/// half-close instead of the sentinel. Everything is a pure function of (seed, daemon, index), so a case can
/// be replayed alone: <c>./build.sh fuzz --seed=S --first=I --cases=1</c>.
/// </summary>
public sealed record FuzzCase(
    int Index, FuzzProgram Program, bool AdminSocket, IReadOnlyList<byte[]> Prefix, byte[] Bytes,
    int FdsToSend, bool HalfClose, string Description);

/// <summary>
/// Structure-aware frame generator for every program virtlockd and virtlogd serve: the lock program
/// (0xEA7BEEF), the log program (0x87539319), the admin program (0x06900690) and keepalive (0x6b656570). Each
/// case starts from a well-formed call with plausible arguments (paths under /run/fuzz, which is the
/// sandbox's own tmpfs), then applies one or more mutations: bit flips, length-word edits, truncation,
/// random header fields, junk bodies, interesting integers in the body, CALL_WITH_FDS with or without the
/// descriptors, two frames at once.
/// </summary>
public sealed class FrameFuzzer
{
    public const uint LockProgram = 0xEA7BEEF;
    public const uint LogProgram = 0x87539319;
    public const uint AdminProgram = 0x06900690;
    public const uint KeepaliveProgram = 0x6b656570;
    public const int MessageMax = 33554432;

    /// <summary>An owner pid for REGISTER that is never a real process of the test (see <see cref="ScrubOwnPid"/>).</summary>
    public const uint FakeOwnerPid = 4_000_000;

    private readonly int _seed;
    private readonly DaemonName _daemon;
    private readonly string _server;
    private Random _r = null!;
    private int _index;

    public FrameFuzzer(int seed, DaemonName daemon)
    {
        _seed = seed;
        _daemon = daemon;
        _server = DaemonPaths.ExeName(daemon);
    }

    public FuzzCase Generate(int index)
    {
        _index = index;
        _r = new Random(CaseSeed(_seed, _daemon, index));
        var program = Pick<FuzzProgram>(_daemon == DaemonName.Virtlockd
            ? [FuzzProgram.Lock, FuzzProgram.Lock, FuzzProgram.Lock, FuzzProgram.Admin, FuzzProgram.Keepalive]
            : [FuzzProgram.Log, FuzzProgram.Log, FuzzProgram.Log, FuzzProgram.Admin, FuzzProgram.Keepalive]);
        bool adminSocket = program == FuzzProgram.Admin || (program == FuzzProgram.Keepalive && Chance(0.5));
        // now and then, a program sent to the other server (the admin program on the main socket and v.v.)
        if (Chance(0.05)) adminSocket = !adminSocket;

        var prefix = new List<byte[]>();
        uint serial = 1;
        switch (program)
        {
            case FuzzProgram.Lock:
                if (Chance(0.7)) prefix.Add(Frame(LockProgram, 1, 1, serial++, LockRegister(FakeOwnerPid)));
                if (Chance(0.4)) prefix.Add(Frame(LockProgram, 1, 6, serial++, LockResourceArgs(LockPath(), LockName(), 2)));
                if (Chance(0.1)) prefix.Add(Frame(LockProgram, 1, 2, serial++, U32(0)));
                break;
            case FuzzProgram.Log:
                if (Chance(0.5)) prefix.Add(Frame(LogProgram, 1, 1, serial++, LogOpenArgs(CaseLogPath(), 0)));
                break;
            case FuzzProgram.Admin:
                if (Chance(0.5)) prefix.Add(Frame(AdminProgram, 1, 1, serial++, U32(0)));
                break;
        }

        var desc = new StringBuilder($"#{index} {program}{(adminSocket ? "@admin" : "")}");
        if (prefix.Count > 0) desc.Append($" prefix={prefix.Count}");
        var (proc, body) = ValidCall(program);
        var header = new RpcHeader(ProgramNumber(program), 1, proc,
            program == FuzzProgram.Keepalive ? RpcMessageType.Message : RpcMessageType.Call, serial++, RpcStatus.Ok);
        desc.Append($" proc={proc}");

        int fds = 0;
        bool halfClose = false;
        byte[] bytes;
        int mutations = _r.Next(10) == 0 ? 0 : 1 + (Chance(0.3) ? _r.Next(3) : 0);
        var h = header;
        var b = body;
        var applied = new List<string>();
        byte[]? raw = null;
        for (int m = 0; m < mutations; m++)
        {
            switch (_r.Next(10))
            {
                case 0: // a header field
                    h = MutateHeader(h, applied);
                    break;
                case 1: // junk body
                    b = Junk();
                    applied.Add($"junk({b.Length})");
                    break;
                case 2: // an interesting integer over an aligned word of the body
                    if (b.Length >= 4)
                    {
                        int off = 4 * _r.Next(b.Length / 4);
                        uint v = Interesting(b.Length);
                        b = (byte[])b.Clone();
                        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(off), v);
                        applied.Add($"word@{off}={v}");
                    }
                    break;
                case 3: // payload truncated, length word consistent
                    if (b.Length > 0)
                    {
                        b = b[.._r.Next(b.Length)];
                        applied.Add($"cut-body({b.Length})");
                    }
                    break;
                case 4: // CALL_WITH_FDS: nfds prefix, with or without the descriptors
                    {
                        uint nfds = Pick<uint>([0, 1, 1, 2, 3, 32, 33, 0xffffffff]);
                        h = h with { Type = RpcMessageType.CallWithFds };
                        b = [.. U32(nfds), .. b];
                        bool send = nfds is > 0 and <= 3 && Chance(0.5);
                        fds = send ? (int)nfds : 0;
                        applied.Add($"with-fds(n={nfds},{(send ? "sent" : "none sent")})");
                        break;
                    }
                default:
                    break; // byte-level mutations below
            }
        }
        raw = RawRpcClient.BuildFrame(h, b);
        for (int m = 0; m < mutations; m++)
        {
            switch (_r.Next(8))
            {
                case 0:
                case 1: // bit flips anywhere, length word included
                    if (raw.Length > 0)
                    {
                        int n = 1 + _r.Next(4);
                        raw = (byte[])raw.Clone();
                        for (int i = 0; i < n; i++)
                        {
                            int bit = _r.Next(raw.Length * 8);
                            raw[bit / 8] ^= (byte)(1 << (bit % 8));
                        }
                        applied.Add($"flip({n})");
                    }
                    break;
                case 2: // the length word
                    if (raw.Length >= 4)
                    {
                        uint len = (uint)raw.Length;
                        uint v = _r.Next(3) switch
                        {
                            0 => Pick<uint>([0, 1, 3, 4, 27, 28, 29, MessageMax + 4, MessageMax + 5, 0x7fffffff, 0xffffffff]),
                            1 => (uint)(len + Pick([-8, -4, -1, 1, 2, 4, 8, 64])),
                            _ => (uint)_r.Next(28, 4096),
                        };
                        raw = (byte[])raw.Clone();
                        BinaryPrimitives.WriteUInt32BigEndian(raw, v);
                        applied.Add($"len={v}");
                    }
                    break;
                case 3: // truncation, then the connection is half-closed (EOF inside the frame)
                    raw = raw[.._r.Next(raw.Length)];
                    halfClose = true;
                    applied.Add($"truncate({raw.Length})+eof");
                    break;
                case 4: // two frames in one write
                    {
                        var (p2, b2) = ValidCall(program);
                        raw = [.. raw, .. RawRpcClient.BuildFrame(new RpcHeader(ProgramNumber(program), 1, p2,
                            program == FuzzProgram.Keepalive ? RpcMessageType.Message : RpcMessageType.Call, serial++, RpcStatus.Ok), b2)];
                        applied.Add($"+frame(proc={p2})");
                        break;
                    }
                default:
                    break;
            }
        }
        bytes = Guard(raw);
        if (fds > 0 && halfClose) fds = 0;
        desc.Append(applied.Count == 0 ? " valid" : " " + string.Join(' ', applied));
        return new FuzzCase(index, program, adminSocket, prefix, bytes, fds, halfClose, desc.ToString());
    }

    /// <summary>A stable mix (not HashCode, which differs from process to process) of seed, daemon and index.</summary>
    private static int CaseSeed(int seed, DaemonName daemon, int index)
    {
        ulong x = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)index * 0xC2B2AE3D27D4EB4FUL ^ (ulong)daemon * 0x165667B19E3779F9UL;
        x ^= x >> 33; x *= 0xFF51AFD7ED558CCDUL; x ^= x >> 33;
        return (int)(x & 0x7fffffff);
    }

    private static uint ProgramNumber(FuzzProgram p) => p switch
    {
        FuzzProgram.Lock => LockProgram,
        FuzzProgram.Log => LogProgram,
        FuzzProgram.Admin => AdminProgram,
        _ => KeepaliveProgram,
    };

    private RpcHeader MutateHeader(RpcHeader h, List<string> applied)
    {
        switch (_r.Next(6))
        {
            case 0:
                h = h with { Program = Pick<uint>([LockProgram, LogProgram, AdminProgram, KeepaliveProgram, 0, 0x20008086, (uint)_r.Next()]) };
                applied.Add($"prog=0x{h.Program:x}");
                break;
            case 1:
                h = h with { Version = Pick<uint>([0, 2, 0xffffffff, (uint)_r.Next()]) };
                applied.Add($"vers={h.Version}");
                break;
            case 2:
                h = h with { Procedure = Pick([-1, 0, _r.Next(1, 25), _r.Next(1, 25), int.MaxValue, int.MinValue, _r.Next()]) };
                applied.Add($"proc={h.Procedure}");
                break;
            case 3:
                h = h with { Type = (RpcMessageType)Pick([0, 1, 2, 3, 4, 5, 6, 7, -1, _r.Next()]) };
                applied.Add($"type={(int)h.Type}");
                break;
            case 4:
                h = h with { Status = (RpcStatus)Pick([0, 1, 2, 3, -1, _r.Next()]) };
                applied.Add($"status={(int)h.Status}");
                break;
            default:
                h = h with { Serial = Pick<uint>([0, 0xffffffff, (uint)_r.Next()]) };
                applied.Add($"serial={h.Serial}");
                break;
        }
        return h;
    }

    private (int Proc, byte[] Body) ValidCall(FuzzProgram program) => program switch
    {
        FuzzProgram.Lock => LockCall(),
        FuzzProgram.Log => LogCall(),
        FuzzProgram.Admin => AdminCall(),
        _ => (Pick([1, 2, 1, 3]), Chance(0.9) ? [] : Junk()),
    };

    // ---- lock program (lock_protocol.x) ----

    private string LockPath() => Pick(["", "", "/run/fuzz/ls", "/run/fuzz/ls", $"/run/fuzz/ls-{_index}", "/run/fuzz/missing/ls", "relative", "/run/fuzz/ls/"]);

    private string LockName() => Pick([$"r{_index}", $"r{_index}", $"/run/fuzz/d{_index}", "", "a/b", "..", new string('x', 300)]);

    private byte[] LockRegister(uint pid) =>
        new XdrWriter().OpaqueFixed(Uuid()).String(Pick(["dom", "", "owner-" + _index, new string('n', 1000)]))
            .UInt(Pick<uint>([1, 2, (uint)_index])).UInt(pid).UInt(Pick<uint>([0, 0, 0, 1])).ToArray();

    private static byte[] LockResourceArgs(string path, string name, uint flags) =>
        new XdrWriter().String(path).String(name).UInt(flags).ToArray();

    private (int, byte[]) LockCall()
    {
        int proc = _r.Next(1, 9);
        uint flags = Pick<uint>([0, 0, 0, 1, 2, 3, 4, 0x80000000]);
        return (proc, proc switch
        {
            1 => LockRegister(Chance(0.8) ? FakeOwnerPid : Pick<uint>([0, 1, 0xffffffff, FakeOwnerPid + 1])),
            2 => U32(flags),
            3 => new XdrWriter().String(LockPath()).UInt(flags).ToArray(),
            4 or 5 or 6 or 7 => LockResourceArgs(LockPath(), LockName(), flags),
            _ => new XdrWriter().String(LockPath()).ToArray(),
        });
    }

    // ---- log program (log_protocol.x) ----

    private string CaseLogPath() => $"/run/fuzz/l{_index}.log";

    private string LogPath() => Pick([CaseLogPath(), CaseLogPath(), "/run/fuzz/missing/x.log", "", "relative.log", "/run/fuzz", "/dev/null"]);

    private byte[] LogOpenArgs(string path, uint flags) =>
        new XdrWriter().String(Pick(["qemu", "", "lxc"])).OpaqueFixed(Uuid()).String(Pick(["dom", "", "d" + _index]))
            .String(path).UInt(flags).ToArray();

    private (int, byte[]) LogCall()
    {
        int proc = _r.Next(1, 5);
        uint flags = Pick<uint>([0, 0, 0, 1, 2, 0x80000000]);
        return (proc, proc switch
        {
            1 => LogOpenArgs(LogPath(), flags),
            2 => new XdrWriter().String(LogPath()).UInt(flags).ToArray(),
            3 => new XdrWriter().String(LogPath()).UHyper(Pick<ulong>([0, 1, (ulong)_r.NextInt64()]))
                .UHyper(Pick<ulong>([0, 10, ulong.MaxValue])).UHyper(Pick<ulong>([0, 16, 4194304, 4194305, ulong.MaxValue]))
                .UInt(flags).ToArray(),
            _ => new XdrWriter().String(Pick(["qemu", ""])).OpaqueFixed(Uuid()).String("dom").String(LogPath())
                .String(Pick(["hello\n", "", new string('m', 5000)])).UInt(flags).ToArray(),
        });
    }

    // ---- admin program (admin_protocol.x) ----

    private string ServerName() => Pick([_server, _server, "admin", "nope", ""]);

    private byte[] Client(XdrWriter w) =>
        w.String(ServerName()).UHyper(Pick<ulong>([0, 1, 2, 3, (ulong)_r.Next(1, 50), ulong.MaxValue]))
            .Hyper(Pick<long>([0, -1, _r.NextInt64()])).UInt(Pick<uint>([0, 1, 2, 7])).ToArray();

    private (int, byte[]) AdminCall()
    {
        int proc = _r.Next(1, 20);
        uint flags = Pick<uint>([0, 0, 0, 1, 0x80000000]);
        var w = new XdrWriter();
        return (proc, proc switch
        {
            1 => U32(flags),
            2 or 3 => [],
            4 => w.UInt(Pick<uint>([0, 1, 2, 16384, 16385])).UInt(flags).ToArray(),
            5 or 6 or 12 or 18 => w.String(ServerName()).UInt(flags).ToArray(),
            7 => w.String(ServerName()).UInt(1).String(Pick(["minWorkers", "maxWorkers", "prioWorkers", "bogus"]))
                .Int(2 /* UINT */).UInt(0).UInt(flags).ToArray(),
            8 => w.String(ServerName()).UInt(Pick<uint>([0, 1, 10, 16384, 16385])).UInt(flags).ToArray(),
            9 => w.String(ServerName()).UHyper(Pick<ulong>([0, 1, 2, (ulong)_r.Next(1, 50)])).UInt(flags).ToArray(),
            10 or 11 => Client(w).Concat(U32(flags)).ToArray(),
            13 => w.String(ServerName()).UInt(1).String(Pick(["nclients_max", "nclients_unauth_max", "bogus"]))
                .Int(2).UInt(Pick<uint>([5000, 4000, 0])).UInt(flags).ToArray(),
            14 or 15 => U32(flags),
            16 => OptionalString(w, Pick<string?>([null, "", "4:stderr", "bogus", "9:stderr"])).UInt(flags).ToArray(),
            17 => OptionalString(w, Pick<string?>([null, "", "4:util", "bogus", "3:+rpc"])).UInt(flags).ToArray(),
            _ => w.UInt(0).UInt(flags).ToArray(),
        });
    }

    private static XdrWriter OptionalString(XdrWriter w, string? s) => s is null ? w.Bool(false) : w.Bool(true).String(s);

    // ---- guards: what a fuzz case must never do to the machine running it ----

    /// <summary>
    /// The fuzzed bytes must not be able to change anything outside the daemon under test:
    /// <list type="bullet">
    /// <item>virtlockd kills a lease holder whose REGISTERed pid equals the connection's peer pid; the test
    /// process is the peer, so its pid never appears as a 4-byte word anywhere in the bytes;</item>
    /// <item>the admin program's state-changing calls (daemon timeout, thread pool, log outputs and filters)
    /// keep harmless values: no auto-shutdown, no worker threads (replies stay in order), no logging to
    /// files, syslog or the journal and no debug flood.</item>
    /// </list>
    /// </summary>
    private static byte[] Guard(byte[] raw)
    {
        raw = ScrubOwnPid(raw);
        // walk the frames as the daemon will and neutralise the admin calls above
        int pos = 0;
        while (pos + 28 <= raw.Length)
        {
            uint len = BinaryPrimitives.ReadUInt32BigEndian(raw.AsSpan(pos));
            if (len < 28 || len > MessageMax + 4) break;
            int end = (int)Math.Min(raw.Length, pos + (long)len);
            uint prog = BinaryPrimitives.ReadUInt32BigEndian(raw.AsSpan(pos + 4));
            int proc = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(pos + 12));
            int type = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(pos + 16));
            int body = pos + 28 + (type == (int)RpcMessageType.CallWithFds ? 4 : 0);
            if (prog == AdminProgram)
            {
                switch (proc)
                {
                    case 19: // set daemon timeout: 0 (none)
                        if (body + 4 <= end) raw.AsSpan(body, 4).Clear();
                        break;
                    case 7: // thread pool: every value 0
                    case 16: // logging outputs
                    case 17: // logging filters
                        for (int i = body; i < end; i++) raw[i] = 0; // decodes as NULL/empty or fails, never a setting
                        break;
                }
            }
            pos += (int)len;
        }
        return raw;
    }

    /// <summary>Replaces every big-endian occurrence of this process's pid (at any offset).</summary>
    public static byte[] ScrubOwnPid(byte[] raw)
    {
        Span<byte> me = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(me, (uint)Environment.ProcessId);
        for (int i = 0; i + 4 <= raw.Length; i++)
            if (raw.AsSpan(i, 4).SequenceEqual(me))
            {
                raw = (byte[])raw.Clone();
                raw[i + 3] ^= 0x80;
            }
        return raw;
    }

    // ---- helpers ----

    private byte[] Junk()
    {
        if (Chance(0.5))
        {
            var j = new byte[Pick([0, 1, 3, 4, 7, 8, 16, 63, 64, 255, 1024])];
            _r.NextBytes(j);
            return j;
        }
        // XDR-shaped junk: words and strings
        var w = new XdrWriter();
        int n = _r.Next(1, 8);
        for (int i = 0; i < n; i++)
        {
            if (Chance(0.5)) w.UInt(Interesting(64));
            else w.String(new string((char)('a' + _r.Next(26)), _r.Next(0, 40)));
        }
        return w.ToArray();
    }

    private uint Interesting(int bodyLength) =>
        Pick<uint>([0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
            4194304, 4194305, (uint)bodyLength, (uint)bodyLength + 1, (uint)_r.Next()]);

    private byte[] Uuid()
    {
        var u = new byte[16];
        _r.NextBytes(u);
        return u;
    }

    private static byte[] U32(uint v) => new XdrWriter().UInt(v).ToArray();

    public static byte[] Frame(uint program, uint version, int proc, uint serial, byte[] body,
        RpcMessageType type = RpcMessageType.Call) =>
        ScrubOwnPid(RawRpcClient.BuildFrame(new RpcHeader(program, version, proc, type, serial, RpcStatus.Ok), body));

    private bool Chance(double p) => _r.NextDouble() < p;

    private T Pick<T>(T[] items) => items[_r.Next(items.Length)];
}
