using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>Error numbers / domains observed from the C virtlockd (virterror.h values).</summary>
public static class Err
{
    public const int InternalError = 1;        // VIR_ERR_INTERNAL_ERROR
    public const int InvalidArg = 8;           // VIR_ERR_INVALID_ARG
    public const int OperationDenied = 29;     // VIR_ERR_OPERATION_DENIED
    public const int SystemError = 38;         // VIR_ERR_SYSTEM_ERROR
    public const int Rpc = 39;                 // VIR_ERR_RPC
    public const int OperationInvalid = 55;    // VIR_ERR_OPERATION_INVALID
    public const int ResourceBusy = 87;        // VIR_ERR_RESOURCE_BUSY

    public const int FromRpc = 7;              // VIR_FROM_RPC
    public const int FromLockspace = 51;       // VIR_FROM_LOCKSPACE

    public const int LevelError = 2;           // VIR_ERR_ERROR

    public const string NotRegistered = "Requested operation is not valid: lock owner details have not been registered";
    public const string Restricted = "operation forbidden: lock manager connection has been restricted";

    public static string UnsupportedFlags(uint flags, string function) => $"unsupported flags (0x{flags:x}) in function {function}";
    public static string Locked(string res) => $"resource busy: Lockspace resource '{res}' is locked";
    public static string NotLocked(string res) => $"resource busy: Lockspace resource '{res}' is not locked";
    public static string NoLockspace(string path) => $"internal error: Lockspace for path {path} does not exist";
}

public static class DaemonKinds
{
    /// <summary>The C daemon, each of our configurations, and the C daemon with the twins preloaded: every
    /// behavioural theory runs against all of them with the same expectations.</summary>
    public static DaemonKind[] Array { get; } =
        [DaemonKind.C, DaemonKind.Managed, DaemonKind.ManagedStore, DaemonKind.ManagedLoop, DaemonKind.ManagedAll, DaemonKind.ManagedRpc,
         DaemonKind.CPreloaded];

    /// <summary>Our configurations only.</summary>
    public static DaemonKind[] Ours { get; } = System.Array.FindAll(Array, k => k.IsOurs());

    public static TheoryData<DaemonKind> All => new(Array);

    public static TheoryData<DaemonKind> OursData => new(Ours);

    /// <summary>Each daemon with the C daemon and each of our configurations.</summary>
    public static TheoryData<DaemonName, DaemonKind> DaemonsAndKinds
    {
        get
        {
            var d = new TheoryData<DaemonName, DaemonKind>();
            foreach (var n in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
                foreach (var k in Array)
                    d.Add(n, k);
            return d;
        }
    }

    /// <summary>Each daemon with each of our configurations (for tests that compare against C themselves).</summary>
    public static TheoryData<DaemonName, DaemonKind> DaemonsAndOurs
    {
        get
        {
            var d = new TheoryData<DaemonName, DaemonKind>();
            foreach (var n in new[] { DaemonName.Virtlockd, DaemonName.Virtlogd })
                foreach (var k in Ours)
                    d.Add(n, k);
            return d;
        }
    }
}

public static class RpcAssert
{
    public static void Ok(RpcError? err, string what = "call")
    {
        if (err is not null) Assert.Fail($"{what} failed: {err}");
    }

    public static void Error(RpcError? err, int code, int domain, string message)
    {
        Assert.NotNull(err);
        Assert.Equal(message, err!.Message);
        Assert.Equal(code, err.Code);
        Assert.Equal(domain, err.Domain);
        Assert.Equal(Err.LevelError, err.Level);
    }

    /// <summary>RESOURCE_BUSY from the lockspace: "resource busy: Lockspace resource '<paramref name="resource"/>' is locked".</summary>
    public static void Locked(RpcError? err, string resource) =>
        Error(err, Err.ResourceBusy, Err.FromLockspace, Err.Locked(resource));
}

/// <summary>A sandbox + a running daemon; dispose tears down both.</summary>
public sealed class DaemonEnv : IAsyncDisposable
{
    public Sandbox Sandbox { get; }
    public DaemonProcess Daemon { get; }

    private DaemonEnv(Sandbox sb, DaemonProcess d) { Sandbox = sb; Daemon = d; }

    public static async Task<DaemonEnv> StartAsync(DaemonKind kind, IEnumerable<string>? args = null, string? config = null)
    {
        // resolve the binary first so a missing managed build fails with a clear message
        DaemonPaths.Binary(kind);
        var sb = await Sandbox.CreateAsync();
        try
        {
            var d = await DaemonProcess.StartAndWaitAsync(sb, kind, args, config);
            return new DaemonEnv(sb, d);
        }
        catch
        {
            await sb.DisposeAsync();
            throw;
        }
    }

    public string TempDir => Sandbox.TempDir;

    public Task<LockProtocolClient> ConnectAsync() => Daemon.ConnectAsync();

    /// <summary>Connect and REGISTER with a fresh throwaway `sleep 600` child as the owner pid.</summary>
    public async Task<(LockProtocolClient Client, SandboxProcess Owner)> ConnectOwnerAsync(uint id = 1, string name = "owner")
    {
        var owner = Sandbox.StartOwnerChild();
        var c = await ConnectAsync();
        RpcAssert.Ok(await c.RegisterAsync((uint)owner.Pid, id, name), "REGISTER");
        return (c, owner);
    }

    /// <summary>Create a lockspace directory path under the sandbox temp dir (via CREATE_LOCKSPACE).</summary>
    public async Task<string> CreateLockspaceAsync(LockProtocolClient c, string name = "ls")
    {
        var path = Path.Combine(TempDir, name);
        RpcAssert.Ok(await c.CreateLockspaceAsync(path), "CREATE_LOCKSPACE");
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await Daemon.DisposeAsync();
        await Sandbox.DisposeAsync();
    }
}
