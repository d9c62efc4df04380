using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.LockDriver;

/// <summary>
/// The entries of lockd.so's <c>virLockDriverImpl</c> table (lock_driver.h's
/// virLockDriver), under the names of lock_driver_lockd.c's static functions.
/// They are not exported from lockd.so (lockd-exports.sh keeps only the
/// table): native/lockdriver/lock_driver_lockd_table.c, linked into the same
/// library, points the table at them, because NativeAOT exports functions
/// but cannot define a data symbol.
///
/// Each entry converts C arguments, runs <see cref="virLockManagerLockDaemon"/>
/// and, on failure, sets libvirt's last error to exactly what the C plugin
/// reports (<see cref="VirErrorNative.Raise"/>, libvirt.so.0's own error
/// functions) before returning -1. A lock manager's private data is a
/// GCHandle to its <see cref="LockDaemonPrivate"/>. No exception unwinds
/// into C: one becomes an internal error of VIR_FROM_LOCKING.
/// </summary>
internal static unsafe class LockDriverExport
{
    private const VirErrorDomain Domain = VirErrorDomain.Locking;

    private static int Fail(VirError error, string function)
    {
        VirErrorNative.Raise(error, function);
        return -1;
    }

    private static int Fail(Exception e, string function)
    {
        try
        {
            VirErrorNative.Raise(e is VirErrorException v ? v.Error : VirError.Report(Domain, VirErrorCode.InternalError, e.Message), function);
        }
        catch
        {
            // libvirt unreachable: -1 still says it failed
        }
        return -1;
    }

    private static int Result(VirResult r, string function) => r.Error is { } e ? Fail(e, function) : 0;

    private static LockDaemonPrivate Private(virLockManager* man)
        => GCHandle.FromIntPtr((nint)man->privateData).Target as LockDaemonPrivate
           ?? throw new InvalidOperationException("lock manager without lockd private data");

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonInit", CallConvs = [typeof(CallConvCdecl)])]
    public static int Init(uint version, byte* configFile, uint flags)
    {
        const string fn = "virLockManagerLockDaemonInit";
        try
        {
            // a path: every byte kept (LosslessUtf8), UTF-8 or not
            string? file = configFile == null ? null
                : LosslessUtf8.Decode(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(configFile));
            return Result(virLockManagerLockDaemon.Init(version, file, flags), fn);
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonDeinit", CallConvs = [typeof(CallConvCdecl)])]
    public static int Deinit()
    {
        try
        {
            return Result(virLockManagerLockDaemon.Deinit(), "virLockManagerLockDaemonDeinit");
        }
        catch (Exception e)
        {
            return Fail(e, "virLockManagerLockDaemonDeinit");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonNew", CallConvs = [typeof(CallConvCdecl)])]
    public static int New(virLockManager* man, uint type, nuint nparams, virLockManagerParam* parms, uint flags)
    {
        const string fn = "virLockManagerLockDaemonNew";
        try
        {
            var r = virLockManagerLockDaemon.New(type, nparams, parms, flags);
            if (!r.TryGet(out var priv, out var error))
                return Fail(error!, fn);
            man->privateData = (void*)GCHandle.ToIntPtr(GCHandle.Alloc(priv));
            return 0;
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonFree", CallConvs = [typeof(CallConvCdecl)])]
    public static void Free(virLockManager* man)
    {
        try
        {
            if (man == null || man->privateData == null)
                return;
            GCHandle.FromIntPtr((nint)man->privateData).Free();
            man->privateData = null;
        }
        catch (Exception e)
        {
            Fail(e, "virLockManagerLockDaemonFree");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonAddResource", CallConvs = [typeof(CallConvCdecl)])]
    public static int AddResource(virLockManager* man, uint type, byte* name, nuint nparams, virLockManagerParam* parms, uint flags)
    {
        const string fn = "virLockManagerLockDaemonAddResource";
        try
        {
            return Result(virLockManagerLockDaemon.AddResource(Private(man), type, name, nparams, parms, flags), fn);
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonAcquire", CallConvs = [typeof(CallConvCdecl)])]
    public static int Acquire(virLockManager* man, byte* state, uint flags, int action, int* fd)
    {
        const string fn = "virLockManagerLockDaemonAcquire";
        try
        {
            // state and action are unused, as in C
            return Result(virLockManagerLockDaemon.Acquire(Private(man), flags, fd), fn);
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonRelease", CallConvs = [typeof(CallConvCdecl)])]
    public static int Release(virLockManager* man, sbyte** state, uint flags)
    {
        const string fn = "virLockManagerLockDaemonRelease";
        try
        {
            return Result(virLockManagerLockDaemon.Release(Private(man), state, flags), fn);
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virLockManagerLockDaemonInquire", CallConvs = [typeof(CallConvCdecl)])]
    public static int Inquire(virLockManager* man, sbyte** state, uint flags)
    {
        const string fn = "virLockManagerLockDaemonInquire";
        try
        {
            return Result(virLockManagerLockDaemon.Inquire(state, flags), fn);
        }
        catch (Exception e)
        {
            return Fail(e, fn);
        }
    }
}
