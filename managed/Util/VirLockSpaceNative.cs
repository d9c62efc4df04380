using Libvirt.Util;
using System.Text.Json.Nodes;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>libvirt's own virLockSpace from libvirt.so.0 behind the
/// contract; libvirt's last error becomes the returned value here.</summary>
public sealed unsafe class VirLockSpaceNative : IVirLockSpace
{
    private virLockSpace* _handle;

    private VirLockSpaceNative(virLockSpace* handle) => _handle = handle;

    public static VirResult<IVirLockSpace> New(string? directory)
    {
        using var dir = new NativeUtf8(directory);
        var ls = virLockSpaceNew(dir);
        return ls == null ? VirErrorNative.TakeLast() : new VirLockSpaceNative(ls);
    }

    public static VirResult<IVirLockSpace> NewPostExecRestart(JsonObject state)
    {
        var json = VirJSONNative.ToNative(state);
        if (json == null)
            return VirErrorNative.TakeLast();
        try
        {
            var ls = virLockSpaceNewPostExecRestart(json);
            return ls == null ? VirErrorNative.TakeLast() : new VirLockSpaceNative(ls);
        }
        finally
        {
            virJSONValueFree(json);
        }
    }

    public string? Directory => NativeUtf8.ReadLossless(virLockSpaceGetDirectory(_handle));

    /// <summary>libvirt wants NUL-terminated names: a copy on the stack for
    /// the usual short one, so the call allocates nothing.</summary>
    private static int Call(ReadOnlySpan<byte> name, delegate*<virLockSpace*, sbyte*, int, uint, int> call,
        virLockSpace* ls, int pid, uint flags)
    {
        const int StackLimit = 512;
        byte[]? rented = null;
        Span<byte> buf = name.Length < StackLimit
            ? stackalloc byte[StackLimit]
            : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(name.Length + 1));
        try
        {
            name.CopyTo(buf);
            buf[name.Length] = 0;
            fixed (byte* p = buf)
                return call(ls, (sbyte*)p, pid, flags);
        }
        finally
        {
            if (rented is not null)
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static VirResult Check(int rc) => rc < 0 ? VirErrorNative.TakeLast() : VirResult.Success;

    public VirResult CreateResource(ReadOnlySpan<byte> name)
        => Check(Call(name, &DoCreate, _handle, 0, 0));

    public VirResult DeleteResource(ReadOnlySpan<byte> name)
        => Check(Call(name, &DoDelete, _handle, 0, 0));

    public VirResult AcquireResource(ReadOnlySpan<byte> name, int ownerPid, VirLockSpaceAcquireFlags flags)
        => Check(Call(name, &DoAcquire, _handle, ownerPid, (uint)flags));

    public VirResult ReleaseResource(ReadOnlySpan<byte> name, int ownerPid)
        => Check(Call(name, &DoRelease, _handle, ownerPid, 0));

    private static int DoCreate(virLockSpace* ls, sbyte* name, int pid, uint flags) => virLockSpaceCreateResource(ls, name);
    private static int DoDelete(virLockSpace* ls, sbyte* name, int pid, uint flags) => virLockSpaceDeleteResource(ls, name);
    private static int DoAcquire(virLockSpace* ls, sbyte* name, int pid, uint flags) => virLockSpaceAcquireResource(ls, name, pid, flags);
    private static int DoRelease(virLockSpace* ls, sbyte* name, int pid, uint flags) => virLockSpaceReleaseResource(ls, name, pid);

    public VirResult<int> ReleaseResourcesForOwner(int ownerPid)
    {
        int n = virLockSpaceReleaseResourcesForOwner(_handle, ownerPid);
        return n < 0 ? VirErrorNative.TakeLast() : n;
    }

    public VirResult<JsonObject> PreExecRestart()
    {
        var node = VirJSONNative.FromNative(virLockSpacePreExecRestart(_handle));
        return node is JsonObject o ? o : VirErrorNative.TakeLast();
    }

    public void Dispose()
    {
        if (_handle != null)
        {
            virLockSpaceFree(_handle);
            _handle = null;
        }
    }
}

public sealed class VirLockSpaceNativeFactory : IVirLockSpaceFactory
{
    public string Name => "native";
    public VirResult<IVirLockSpace> New(string? directory) => VirLockSpaceNative.New(directory);
    public VirResult<IVirLockSpace> NewPostExecRestart(JsonObject state) => VirLockSpaceNative.NewPostExecRestart(state);
}
