using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.Export;

/// <summary>A lock space as C holds it: the managed twin, and the directory
/// as the C string virLockSpaceGetDirectory hands out (owned here, as
/// lockspace->dir is owned by libvirt's object).</summary>
internal sealed unsafe class VirLockSpaceExported(IVirLockSpace space, byte* directory) : IDisposable
{
    public IVirLockSpace Space { get; } = space;
    public byte* Directory { get; private set; } = directory;

    public void Dispose()
    {
        Space.Dispose();
        VirExport.Free(Directory);
        Directory = null;
    }
}

/// <summary>
/// virlockspace.h's functions (src/util/virlockspace.c), exported at
/// LIBVIRT_PRIVATE_9.0.0 over <see cref="VirLockSpaceManaged"/>: the
/// signatures, NULL conventions, return values and last error of libvirt
/// 9.0.0's.
/// </summary>
internal static unsafe class VirLockSpaceExport
{
    private const VirErrorDomain Domain = VirErrorDomain.LockSpace;

    private static void* Wrap(IVirLockSpace space)
    {
        string? dir = space.Directory;
        byte* d = dir is null ? null : VirExport.StrDup(LosslessUtf8.Encode(dir));
        return VirExport.NewOpaque(new VirLockSpaceExported(space, d));
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceNew", CallConvs = [typeof(CallConvCdecl)])]
    public static void* New(byte* directory)
    {
        try
        {
            var r = VirLockSpaceManaged.New(VirExport.String(directory));
            if (!r.TryGet(out var space, out var error))
            {
                VirExport.Raise(error!, "virLockSpaceNew");
                return null;
            }
            return Wrap(space);
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, "virLockSpaceNew");
            return null;
        }
    }

    /// <summary>Reads the document; the caller keeps owning (and frees) it.</summary>
    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceNewPostExecRestart", CallConvs = [typeof(CallConvCdecl)])]
    public static void* NewPostExecRestart(virJSONValue* obj)
    {
        try
        {
            if (VirJSONNative.ReadNative(obj) is not JsonObject state)
            {
                VirExport.Raise(VirError.Report(Domain, VirErrorCode.InternalError, "Malformed lockspace JSON document"),
                    "virLockSpaceNewPostExecRestart");
                return null;
            }
            var r = VirLockSpaceManaged.NewPostExecRestart(state);
            if (!r.TryGet(out var space, out var error))
            {
                VirExport.Raise(error!, "virLockSpaceNewPostExecRestart");
                return null;
            }
            return Wrap(space);
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, "virLockSpaceNewPostExecRestart");
            return null;
        }
    }

    /// <summary>A new virJSONValue the caller owns (virJSONValueFree).</summary>
    [UnmanagedCallersOnly(EntryPoint = "virLockSpacePreExecRestart", CallConvs = [typeof(CallConvCdecl)])]
    public static virJSONValue* PreExecRestart(void* lockspace)
    {
        try
        {
            if (VirExport.Target<VirLockSpaceExported>(lockspace) is not { } ls)
            {
                VirExport.Raise(VirExport.NullObject(Domain, "virLockSpacePreExecRestart"), "virLockSpacePreExecRestart");
                return null;
            }
            var r = ls.Space.PreExecRestart();
            if (!r.TryGet(out var state, out var error))
            {
                VirExport.Raise(error!, "virLockSpacePreExecRestart");
                return null;
            }
            // virJSONValueFromString reports its own error on failure
            return VirJSONNative.ToNative(state);
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, "virLockSpacePreExecRestart");
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceFree", CallConvs = [typeof(CallConvCdecl)])]
    public static void Free(void* lockspace)
    {
        try
        {
            VirExport.FreeOpaque(lockspace);
        }
        catch
        {
            // void in C: nothing to report
        }
    }

    /// <summary>The directory string, owned by the lock space (NULL for the default one).</summary>
    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceGetDirectory", CallConvs = [typeof(CallConvCdecl)])]
    public static byte* GetDirectory(void* lockspace)
    {
        try
        {
            return VirExport.Target<VirLockSpaceExported>(lockspace) is { } ls ? ls.Directory : null;
        }
        catch
        {
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceCreateResource", CallConvs = [typeof(CallConvCdecl)])]
    public static int CreateResource(void* lockspace, byte* resname)
        => Status(lockspace, "virLockSpaceCreateResource", static (ls, n, _, _) => ls.CreateResource(n), resname, 0, 0);

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceDeleteResource", CallConvs = [typeof(CallConvCdecl)])]
    public static int DeleteResource(void* lockspace, byte* resname)
        => Status(lockspace, "virLockSpaceDeleteResource", static (ls, n, _, _) => ls.DeleteResource(n), resname, 0, 0);

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceAcquireResource", CallConvs = [typeof(CallConvCdecl)])]
    public static int AcquireResource(void* lockspace, byte* resname, int owner, uint flags)
        => Status(lockspace, "virLockSpaceAcquireResource",
            static (ls, n, o, f) => ls.AcquireResource(n, o, (VirLockSpaceAcquireFlags)f), resname, owner, flags);

    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceReleaseResource", CallConvs = [typeof(CallConvCdecl)])]
    public static int ReleaseResource(void* lockspace, byte* resname, int owner)
        => Status(lockspace, "virLockSpaceReleaseResource", static (ls, n, o, _) => ls.ReleaseResource(n, o), resname, owner, 0);

    /// <summary>How many resources the owner held, or -1.</summary>
    [UnmanagedCallersOnly(EntryPoint = "virLockSpaceReleaseResourcesForOwner", CallConvs = [typeof(CallConvCdecl)])]
    public static int ReleaseResourcesForOwner(void* lockspace, int owner)
    {
        const string Function = "virLockSpaceReleaseResourcesForOwner";
        try
        {
            if (VirExport.Target<VirLockSpaceExported>(lockspace) is not { } ls)
            {
                VirExport.Raise(VirExport.NullObject(Domain, Function), Function);
                return -1;
            }
            var r = ls.Space.ReleaseResourcesForOwner(owner);
            if (!r.TryGet(out int count, out var error))
            {
                VirExport.Raise(error!, Function);
                return -1;
            }
            return count;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return -1;
        }
    }

    private delegate VirResult Operation(IVirLockSpace space, ReadOnlySpan<byte> name, int owner, uint flags);

    /// <summary>0, or -1 with the error raised.</summary>
    private static int Status(void* lockspace, string function, Operation op, byte* resname, int owner, uint flags)
    {
        try
        {
            if (VirExport.Target<VirLockSpaceExported>(lockspace) is not { } ls)
            {
                VirExport.Raise(VirExport.NullObject(Domain, function), function);
                return -1;
            }
            var r = op(ls.Space, VirExport.Bytes(resname), owner, flags);
            if (r.Error is { } error)
            {
                VirExport.Raise(error, function);
                return -1;
            }
            return 0;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, function);
            return -1;
        }
    }
}
