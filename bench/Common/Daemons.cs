// Shared by bench/LockBench and bench/LogBench: daemon start in a fresh
// sandbox with exec -> first RPC reply timing, idle RSS, stop; raw libvirt
// RPC framing for the start-up probe.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Libvirt.Bench.Common;

/// <summary>The C daemon, ours, or the stub that answers every call OK at once
/// (bench/StubDaemon: the ceiling of what libvirt's client can do).</summary>
public enum Kind { C, Ours, Stub }

public sealed record DaemonStart(Sandbox Sandbox, Child Daemon, double ExecToFirstReplyMs, double IdleRssMb);

/// <summary>How to start one daemon and probe it: the binary per kind, its socket inside the sandbox, one RPC call.</summary>
public sealed class DaemonSpec
{
    public required string Name { get; init; }              // "virtlockd"
    public required string CBinary { get; init; }           // /usr/sbin/virtlockd
    public required string OursBinary { get; init; }        // <repo>/artifacts/bin/virtlockd
    public required string SocketInside { get; init; }      // /run/libvirt/virtlockd-sock
    public required string ProbeName { get; init; }         // "REGISTER"
    /// <summary>A library LD_PRELOADed into the "ours" variant (the C daemon
    /// with our twins exported in place of libvirt's), or null.</summary>
    public string? OursPreload { get; init; }
    /// <summary>Builds the probe CALL frame (complete, with the length word) for a sandbox.</summary>
    public required Func<Sandbox, byte[]> ProbeFrame { get; init; }

    /// <summary>bench/StubDaemon's binary, for <see cref="Kind.Stub"/>.</summary>
    public string? StubBinary { get; init; }

    public string Bin(Kind k) => k switch
    {
        Kind.C => CBinary,
        Kind.Ours => OursBinary,
        _ => StubBinary ?? throw new InvalidOperationException("no stub daemon given"),
    };
    public static string Label(Kind k) => k switch { Kind.C => "C", Kind.Ours => "ours", _ => "stub" };

    /// <summary>
    /// Fresh sandbox + daemon; measures exec (Process.Start of setsid/nsenter/daemon) to the first
    /// successful probe reply over the socket, then idle VmRSS (200 ms after that reply).
    /// </summary>
    public async Task<DaemonStart> StartAsync(Kind kind, IEnumerable<string>? args = null)
    {
        var sb = await Sandbox.CreateAsync();
        try
        {
            // env execs in place, so the pid is still the daemon's
            if (kind == Kind.Stub)
                args = [SocketInside];
            var d = kind == Kind.Ours && OursPreload is { } lib
                ? sb.StartInside($"{Name}[{Label(kind)}]", "env", new[] { "LD_PRELOAD=" + lib, Bin(kind) }.Concat(args ?? []))
                : sb.StartInside($"{Name}[{Label(kind)}]", Bin(kind), args ?? []);
            double ms = await FirstReplyAsync(sb, d, TimeSpan.FromSeconds(15));
            CheckIsDaemon(d, kind);
            await Task.Delay(200); // settle, then read idle RSS
            var rss = Mem.ReadRss(d.Pid).rss;
            return new DaemonStart(sb, d, ms, rss);
        }
        catch { sb.Dispose(); throw; }
    }

    public static async Task StopAsync(DaemonStart ds)
    {
        await ds.Daemon.StopAsync(TimeSpan.FromSeconds(3));
        ds.Sandbox.Dispose();
    }

    private void CheckIsDaemon(Child d, Kind kind)
    {
        string exe;
        try { exe = new FileInfo($"/proc/{d.Pid}/exe").LinkTarget ?? ""; } catch { exe = ""; }
        var want = Path.GetFullPath(Bin(kind));
        if (exe != want && !(File.Exists(want) && new FileInfo(want).LinkTarget is { } t && Path.GetFullPath(t, Path.GetDirectoryName(want)!) == exe))
            throw new InvalidOperationException($"pid {d.Pid} is '{exe}', expected the daemon '{want}' (setsid/nsenter did not exec in place?)");
    }

    /// <summary>Poll connect + probe call (raw libvirt RPC) until the daemon replies OK; returns ms since the daemon's Process.Start.</summary>
    private async Task<double> FirstReplyAsync(Sandbox sb, Child d, TimeSpan timeout)
    {
        var path = sb.HostPath(SocketInside);
        var deadline = d.StartTicks + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        string? last = null;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (!d.IsRunning)
            {
                await d.WaitAsync(TimeSpan.FromSeconds(2));
                throw new BenchSetupException($"{d.Name} exited ({d.ExitCode}) before replying. stderr=[{d.Stderr.Trim()}]");
            }
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                s.Connect(new UnixDomainSocketEndPoint(path));
            }
            catch (SocketException e) { last = e.Message; Thread.Sleep(1); continue; }
            s.ReceiveTimeout = 5000;
            s.SendTimeout = 5000;
            s.Send(ProbeFrame(sb));
            var reply = Rpc.ReadFrame(s);
            long now = Stopwatch.GetTimestamp();
            int status = BinaryPrimitives.ReadInt32BigEndian(reply.AsSpan(24));
            int type = BinaryPrimitives.ReadInt32BigEndian(reply.AsSpan(16));
            if (type != 1 || status != 0)
                throw new InvalidOperationException($"{d.Name}: {ProbeName} reply type {type} status {status}: {Rpc.ErrorMessage(reply)}");
            return (now - d.StartTicks) * 1000.0 / Stopwatch.Frequency;
        }
        throw new TimeoutException($"{d.Name}: no {ProbeName} reply within {timeout} ({last}). stderr=[{d.Stderr.Trim()}]");
    }
}

public static class Mem
{
    /// <summary>VmRSS and VmHWM of a process in MB (NaN if gone).</summary>
    public static (double rss, double hwm) ReadRss(int pid)
    {
        double rss = double.NaN, hwm = double.NaN;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:")) rss = ParseKb(line) / 1024.0;
                else if (line.StartsWith("VmHWM:")) hwm = ParseKb(line) / 1024.0;
            }
        }
        catch (IOException) { }
        return (rss, hwm);
        static double ParseKb(string l) => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}

/// <summary>Minimal libvirt RPC (XDR) framing: one CALL out, one reply in.</summary>
public static class Rpc
{
    /// <summary>XDR writer for a CALL frame: length word + virNetMessageHeader, then the args.</summary>
    public sealed class Call
    {
        private readonly List<byte> _b = new();
        public Call(uint program, uint version, uint procedure, uint serial = 1)
        {
            U32(0); // length, patched in Frame()
            U32(program); U32(version); U32(procedure); U32(0 /* CALL */); U32(serial); U32(0 /* OK */);
        }
        public Call U32(uint v) { Span<byte> t = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(t, v); _b.AddRange(t.ToArray()); return this; }
        public Call U64(ulong v) { U32((uint)(v >> 32)); return U32((uint)v); }
        public Call Opaque(ReadOnlySpan<byte> fixedBytes) { _b.AddRange(fixedBytes.ToArray()); Pad(fixedBytes.Length); return this; }
        public Call String(string s) { var b = Encoding.UTF8.GetBytes(s); U32((uint)b.Length); return Opaque(b); }
        private void Pad(int n) { for (int i = 0; i < (4 - n % 4) % 4; i++) _b.Add(0); }
        public byte[] Frame()
        {
            var buf = _b.ToArray();
            BinaryPrimitives.WriteUInt32BigEndian(buf, (uint)buf.Length);
            return buf;
        }
    }

    public static string ErrorMessage(byte[] reply)
    {
        try
        {
            var p = reply.AsSpan(28); // code, domain, message (optional string)
            if (BinaryPrimitives.ReadInt32BigEndian(p[8..]) == 0) return "<no message>";
            int n = BinaryPrimitives.ReadInt32BigEndian(p[12..]);
            return Encoding.UTF8.GetString(p.Slice(16, n));
        }
        catch { return "<undecodable error>"; }
    }

    public static byte[] ReadFrame(Socket s)
    {
        var len = new byte[4];
        ReadExactly(s, len);
        uint n = BinaryPrimitives.ReadUInt32BigEndian(len);
        if (n < 28 || n > 1 << 20) throw new InvalidDataException($"bad frame length {n}");
        var body = new byte[n];
        len.CopyTo(body, 0);
        ReadExactly(s, body.AsSpan(4));
        return body;
    }

    private static void ReadExactly(Socket s, Span<byte> buf)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = s.Receive(buf[got..]);
            if (n == 0) throw new EndOfStreamException("daemon closed the connection");
            got += n;
        }
    }
}
