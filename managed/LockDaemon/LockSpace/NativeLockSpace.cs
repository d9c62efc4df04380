using Libvirt.Util;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.LockDaemon.LockSpace;

/// <summary>libvirt's own virLockSpace from libvirt.so.0.</summary>
public sealed unsafe class NativeLockSpace : ILockSpace
{
    private virLockSpace* _handle;

    private NativeLockSpace(virLockSpace* handle) => _handle = handle;

    public virLockSpace* Handle => _handle;

    public static NativeLockSpace? New(string? directory)
    {
        using var dir = new NativeUtf8(directory);
        var ls = virLockSpaceNew(dir);
        return ls == null ? null : new NativeLockSpace(ls);
    }

    public string? Directory => NativeUtf8.Read(virLockSpaceGetDirectory(_handle));

    public int CreateResource(sbyte* name) => virLockSpaceCreateResource(_handle, name);

    public int DeleteResource(sbyte* name) => virLockSpaceDeleteResource(_handle, name);

    public int AcquireResource(sbyte* name, int ownerPid, LockSpaceAcquireFlags flags)
        => virLockSpaceAcquireResource(_handle, name, ownerPid, (uint)flags);

    public int ReleaseResource(sbyte* name, int ownerPid) => virLockSpaceReleaseResource(_handle, name, ownerPid);

    public int ReleaseResourcesForOwner(int ownerPid) => virLockSpaceReleaseResourcesForOwner(_handle, ownerPid);

    public System.Text.Json.Nodes.JsonNode? PreExecRestart()
        => VirJSONNative.FromNative(virLockSpacePreExecRestart(_handle));

    public static NativeLockSpace? NewPostExecRestart(System.Text.Json.Nodes.JsonNode state)
    {
        var json = VirJSONNative.ToNative(state);
        if (json == null)
            return null;
        try
        {
            var ls = virLockSpaceNewPostExecRestart(json);
            return ls == null ? null : new NativeLockSpace(ls);
        }
        finally
        {
            virJSONValueFree(json);
        }
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

public sealed class NativeLockSpaceFactory : ILockSpaceFactory
{
    public ILockSpace? Create(string? directory) => NativeLockSpace.New(directory);

    public ILockSpace? NewPostExecRestart(System.Text.Json.Nodes.JsonNode state) => NativeLockSpace.NewPostExecRestart(state);
}
