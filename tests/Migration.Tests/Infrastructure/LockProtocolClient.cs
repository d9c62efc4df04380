namespace Libvirt.Tests.Infrastructure;

public static class LockProtocol
{
    public const uint Program = 0xEA7BEEF;
    public const uint Version = 1;

    public const int ProcRegister = 1;
    public const int ProcRestrict = 2;
    public const int ProcNew = 3;
    public const int ProcCreateResource = 4;
    public const int ProcDeleteResource = 5;
    public const int ProcAcquireResource = 6;
    public const int ProcReleaseResource = 7;
    public const int ProcCreateLockspace = 8;

    public const uint AcquireShared = 1;
    public const uint AcquireAutoCreate = 2;

    public static byte[] RegisterArgs(byte[] uuid, string name, uint id, uint pid, uint flags = 0) =>
        new XdrWriter().OpaqueFixed(uuid).String(name).UInt(id).UInt(pid).UInt(flags).ToArray();

    public static byte[] FlagsArgs(uint flags) => new XdrWriter().UInt(flags).ToArray();

    public static byte[] NewArgs(string path, uint flags = 0) => new XdrWriter().String(path).UInt(flags).ToArray();

    public static byte[] ResourceArgs(string path, string name, uint flags = 0) =>
        new XdrWriter().String(path).String(name).UInt(flags).ToArray();

    public static byte[] CreateLockspaceArgs(string path) => new XdrWriter().String(path).ToArray();
}

/// <summary>
/// Typed wrapper over <see cref="RawRpcClient"/> for the virtlockd program (0xEA7BEEF v1).
/// Every call returns null on success or the decoded <see cref="RpcError"/>; use
/// <see cref="LockProtocolExtensions.OkAsync"/> to throw on error instead.
/// </summary>
public sealed class LockProtocolClient : IDisposable
{
    public RawRpcClient Raw { get; }

    public LockProtocolClient(RawRpcClient raw) => Raw = raw;

    public static async Task<LockProtocolClient> ConnectAsync(string socketPath, TimeSpan? timeout = null) =>
        new(await RawRpcClient.ConnectAsync(socketPath, timeout));

    public async Task<RpcError?> CallAsync(int proc, byte[] args, TimeSpan? timeout = null)
    {
        var reply = await Raw.CallAsync(LockProtocol.Program, LockProtocol.Version, proc, args, timeout);
        if (reply.IsError) return reply.Error;
        if (reply.Header.Status != RpcStatus.Ok)
            throw new InvalidDataException($"unexpected reply status {reply.Header.Status}");
        if (reply.Payload.Length != 0)
            throw new InvalidDataException($"unexpected non-empty success payload ({reply.Payload.Length} bytes)");
        return null;
    }

    public Task<RpcError?> RegisterAsync(uint pid, uint id = 1, string name = "test-owner", byte[]? uuid = null, uint flags = 0) =>
        CallAsync(LockProtocol.ProcRegister, LockProtocol.RegisterArgs(uuid ?? DefaultUuid(pid), name, id, pid, flags));

    public Task<RpcError?> RestrictAsync(uint flags = 0) =>
        CallAsync(LockProtocol.ProcRestrict, LockProtocol.FlagsArgs(flags));

    public Task<RpcError?> NewAsync(string path, uint flags = 0) =>
        CallAsync(LockProtocol.ProcNew, LockProtocol.NewArgs(path, flags));

    public Task<RpcError?> CreateResourceAsync(string path, string name, uint flags = 0) =>
        CallAsync(LockProtocol.ProcCreateResource, LockProtocol.ResourceArgs(path, name, flags));

    public Task<RpcError?> DeleteResourceAsync(string path, string name, uint flags = 0) =>
        CallAsync(LockProtocol.ProcDeleteResource, LockProtocol.ResourceArgs(path, name, flags));

    public Task<RpcError?> AcquireResourceAsync(string path, string name, uint flags = 0) =>
        CallAsync(LockProtocol.ProcAcquireResource, LockProtocol.ResourceArgs(path, name, flags));

    public Task<RpcError?> ReleaseResourceAsync(string path, string name, uint flags = 0) =>
        CallAsync(LockProtocol.ProcReleaseResource, LockProtocol.ResourceArgs(path, name, flags));

    public Task<RpcError?> CreateLockspaceAsync(string path) =>
        CallAsync(LockProtocol.ProcCreateLockspace, LockProtocol.CreateLockspaceArgs(path));

    public static byte[] DefaultUuid(uint seed)
    {
        var u = new byte[16];
        BitConverter.GetBytes(seed).CopyTo(u, 0);
        u[15] = 0x42;
        return u;
    }

    public void Dispose() => Raw.Dispose();
}

public static class LockProtocolExtensions
{
    /// <summary>Await a call and throw <see cref="RpcErrorException"/> if it failed.</summary>
    public static async Task OkAsync(this Task<RpcError?> call)
    {
        var err = await call;
        if (err is not null) throw new RpcErrorException(err);
    }
}
