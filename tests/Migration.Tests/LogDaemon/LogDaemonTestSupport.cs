using System.Diagnostics;
using System.Text;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LogDaemon;

/// <summary>virtlogd protocol constants and argument encoders (log_protocol.x, program 0x87539319 v1).</summary>
public static class LogProtocol
{
    public const uint Program = 0x87539319;
    public const uint Version = 1;
    public const int ProcOpen = 1;
    public const int ProcGetPosition = 2;
    public const int ProcRead = 3;
    public const int ProcAppend = 4;
    public const uint OpenTruncate = 1;
    public const ulong StringMax = 4194304;

    public static byte[] OpenArgs(string driver, byte[] uuid, string name, string path, uint flags) =>
        new XdrWriter().String(driver).OpaqueFixed(uuid).String(name).String(path).UInt(flags).ToArray();

    public static byte[] PositionArgs(string path, uint flags) => new XdrWriter().String(path).UInt(flags).ToArray();

    public static byte[] ReadArgs(string path, ulong inode, ulong offset, ulong maxlen, uint flags) =>
        new XdrWriter().String(path).UHyper(inode).UHyper(offset).UHyper(maxlen).UInt(flags).ToArray();

    public static byte[] AppendArgs(string driver, byte[] uuid, string name, string path, string message, uint flags) =>
        new XdrWriter().String(driver).OpaqueFixed(uuid).String(name).String(path).String(message).UInt(flags).ToArray();

    public static (ulong Inode, ulong Offset) DecodePosition(byte[] payload)
    {
        var r = new XdrReader(payload);
        return (r.UHyper(), r.UHyper());
    }
}

/// <summary>virterror.h values seen from virtlogd.</summary>
public static class LogErr
{
    public const int InternalError = 1;   // VIR_ERR_INTERNAL_ERROR
    public const int InvalidArg = 8;      // VIR_ERR_INVALID_ARG
    public const int SystemError = 38;    // VIR_ERR_SYSTEM_ERROR
    public const int Rpc = 39;            // VIR_ERR_RPC
    public const int FromRpc = 7;         // VIR_FROM_RPC
    public const int FromLogging = 63;    // VIR_FROM_LOGGING
    public const int FromNone = 0;        // VIR_FROM_NONE
    public const int LevelError = 2;

    public static string Busy(string path) => $"Cannot open log file: '{path}': Device or resource busy";
    public static string NotOpen(string path) => $"internal error: No open log file {path}";
    public static string UnsupportedFlags(uint flags, string function) => $"unsupported flags (0x{flags:x}) in function {function}";
    public static string TooLong(ulong maxlen) => $"internal error: Requested data len {maxlen} is larger than maximum 4194304";
    public const string Decode = "Unable to decode message payload";

    public static void Assert(RpcError? err, int code, int domain, string message)
    {
        Xunit.Assert.NotNull(err);
        Xunit.Assert.Equal(message, err!.Message);
        Xunit.Assert.Equal(code, err.Code);
        Xunit.Assert.Equal(domain, err.Domain);
        Xunit.Assert.Equal(LevelError, err.Level);
    }
}

public static class LogKinds
{
    /// <summary>Every configuration, as for virtlockd's suites: the log client and raw-protocol suites must pass
    /// with the rotating file twin, the managed loop and both.</summary>
    public static TheoryData<DaemonKind> All => new(Libvirt.Tests.LockDaemon.DaemonKinds.Array);
}

/// <summary>The deterministic record stream logclient writes (see tests/LogClient/Program.cs).</summary>
public static class Records
{
    public static byte[] Record(long k, int size)
    {
        var b = new byte[size];
        Encoding.ASCII.GetBytes((k % 10_000_000_000L).ToString("D10") + " ").CopyTo(b, 0);
        b.AsSpan(11, size - 12).Fill((byte)('a' + (int)(k % 26)));
        b[^1] = (byte)'\n';
        return b;
    }

    /// <summary>Records first..first+count-1 of <paramref name="size"/> bytes, concatenated.</summary>
    public static byte[] Stream(long first, long count, int size)
    {
        var ms = new MemoryStream();
        for (long k = first; k < first + count; k++) ms.Write(Record(k, size));
        return ms.ToArray();
    }

    /// <summary>Asserts <paramref name="actual"/> is exactly the last actual.Length bytes of <paramref name="expected"/>.</summary>
    public static void AssertTail(byte[] expected, byte[] actual, string what)
    {
        // an empty log is the tail of anything: it would pass whatever the daemon did
        Assert.True(actual.Length > 0 || expected.Length == 0, $"{what}: empty, where the tail of {expected.Length} bytes was expected");
        Assert.True(actual.Length <= expected.Length, $"{what}: {actual.Length} bytes is more than the {expected.Length} written");
        int start = expected.Length - actual.Length;
        for (int i = 0; i < actual.Length; i++)
            if (actual[i] != expected[start + i])
                Assert.Fail($"{what}: first difference at byte {i} of {actual.Length} (stream offset {start + i}): " +
                    $"expected '{Snip(expected, start + i)}' got '{Snip(actual, i)}'");
    }

    public static void AssertEqual(byte[] expected, byte[] actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        AssertTail(expected, actual, what);
    }

    private static string Snip(byte[] b, int at) =>
        Encoding.ASCII.GetString(b, Math.Max(0, at - 20), Math.Min(b.Length, at + 20) - Math.Max(0, at - 20)).Replace("\n", "\\n");
}

public static class FileInfoEx
{
    /// <summary>(inode, size) via stat(1); the test temp dir is the same path inside and outside the sandbox.</summary>
    public static (ulong Inode, long Size) Stat(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%i %s", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(5000) || p.ExitCode != 0) throw new IOException($"stat {path} failed: {p.StandardError.ReadToEnd()}");
        var parts = o.Trim().Split(' ');
        return (ulong.Parse(parts[0]), long.Parse(parts[1]));
    }
}

/// <summary>
/// tests/LogClient ("logclient"): libvirt's own log client (virLogManager* from libvirt.so.0) driven over a
/// stdin line protocol. It runs INSIDE the daemon's sandbox (privileged: /run/libvirt/virtlogd-sock).
/// </summary>
public sealed class LogClientDriver : LineProtocolDriver
{
    private LogClientDriver(SandboxProcess p) : base(p, "logclient") { }

    public static string BinaryPath => FindBinary("LogClient", "logclient");

    public static Task<LogClientDriver> StartAsync(Sandbox sb, string name = "logclient") =>
        WaitReadyAsync(new LogClientDriver(sb.StartInside(BinaryPath,
            ["--name", name, "--uuid", Convert.ToHexString(Guid.NewGuid().ToByteArray())], description: $"logclient[{name}]")));

    /// <summary>Run logclient's bench mode inside the sandbox to completion (bounded).</summary>
    public static Task<ProcessResult> BenchAsync(Sandbox sb, string path, long records, int size, TimeSpan? timeout = null) =>
        sb.RunInsideAsync(BinaryPath, ["bench", "--path", path, "--records", records.ToString(), "--size", size.ToString()],
            timeout ?? TimeSpan.FromSeconds(60));

    public async Task<(int Fd, ulong Inode, long Offset)> OpenAsync(string path, bool truncate = false)
    {
        var w = (await OkAsync($"open {path}{(truncate ? " truncate" : "")}")).Split(' ');
        return (int.Parse(w[0]), ulong.Parse(w[1]), long.Parse(w[2]));
    }

    public async Task<long> WriteAsync(long records, int size) => long.Parse(await OkAsync($"write {records} {size}"));

    public async Task<(ulong Inode, long Offset)> PosAsync(string path)
    {
        var w = (await OkAsync($"pos {path}")).Split(' ');
        return (ulong.Parse(w[0]), long.Parse(w[1]));
    }

    public async Task<byte[]> ReadAsync(string path, ulong inode, long offset, ulong maxlen) =>
        Convert.FromBase64String(await OkAsync($"read {path} {inode} {offset} {maxlen}"));

    public Task AppendAsync(string path, string message) => OkAsync($"append {path} {message}");
    public Task CloseFdAsync() => OkAsync("closefd");
}

/// <summary>A sandbox + a running virtlogd; dispose tears down both.</summary>
public sealed class LogEnv : IAsyncDisposable
{
    public Sandbox Sandbox { get; }
    public DaemonProcess Daemon { get; }
    public DaemonKind Kind => Daemon.Kind;

    private LogEnv(Sandbox sb, DaemonProcess d) { Sandbox = sb; Daemon = d; }

    public const string SmallRotation = "max_size = 65536\nmax_backups = 3\n";

    public static async Task<LogEnv> StartAsync(DaemonKind kind, IEnumerable<string>? args = null, string? config = null)
    {
        DaemonPaths.Binary(DaemonName.Virtlogd, kind); // a missing managed build fails here, clearly
        var sb = await Sandbox.CreateAsync();
        try
        {
            var d = await DaemonProcess.StartAndWaitAsync(sb, DaemonName.Virtlogd, kind, args, config);
            return new LogEnv(sb, d);
        }
        catch
        {
            await sb.DisposeAsync();
            throw;
        }
    }

    public string TempDir => Sandbox.TempDir;
    public string LogPath(string name) => Path.Combine(TempDir, name);

    public Task<LogClientDriver> ClientAsync(string name = "logclient") => LogClientDriver.StartAsync(Sandbox, name);
    public Task<RawRpcClient> RawAsync() => Daemon.ConnectRawAsync();

    /// <summary>Concatenation of PATH.(n-1) ... PATH.0, PATH (oldest first), skipping missing files.</summary>
    public static byte[] ReadRotated(string path, int maxBackups)
    {
        var ms = new MemoryStream();
        for (int i = maxBackups - 1; i >= 0; i--)
            if (File.Exists($"{path}.{i}")) ms.Write(File.ReadAllBytes($"{path}.{i}"));
        if (File.Exists(path)) ms.Write(File.ReadAllBytes(path));
        return ms.ToArray();
    }

    public void AssertAlive(string when)
    {
        Assert.True(Daemon.IsRunning, $"{Kind} virtlogd died {when}: exit {Daemon.Process.ExitCode} stderr=[{Daemon.Stderr}]");
    }

    /// <summary>Polls (bounded) until <paramref name="cond"/> holds.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> cond, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (cond()) return true;
            await Task.Delay(20);
        }
        return cond();
    }

    /// <summary>Polls (bounded) until <paramref name="cond"/> holds.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> cond, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (await cond()) return true;
            await Task.Delay(20);
        }
        return await cond();
    }

    public async ValueTask DisposeAsync()
    {
        await Daemon.DisposeAsync();
        await Sandbox.DisposeAsync();
    }
}
