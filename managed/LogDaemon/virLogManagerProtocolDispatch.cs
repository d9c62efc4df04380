using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Host;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;
using unsafe DispatchFunc = delegate* unmanaged[Cdecl]<Libvirt.Interop.virNetServer*, Libvirt.Interop.virNetServerClient*, Libvirt.Interop.virNetMessage*, Libvirt.Interop.virNetMessageError*, void*, void*, int>;

namespace Libvirt.LogDaemon;

/// <summary>
/// The log manager program (0x87539319 v1): procedure entry points over the
/// log handler, with the C daemon's checks and replies. Dispatch runs on the
/// event loop thread, synchronously, so libvirt's per-thread last error is
/// the one saved into the reply.
/// </summary>
public static unsafe class virLogManagerProtocolDispatch
{
    private const virErrorDomain FromThis = virErrorDomain.VIR_FROM_RPC;

    public static virNetServerProgram* NewProgram()
        => ServerProgramTable.NewProgram((uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM, (uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM_VERSION,
            &virtshimLogProcInfo,
            [
                (nint)(DispatchFunc)(&DomainOpenLogFile),
                (nint)(DispatchFunc)(&DomainGetLogFilePosition),
                (nint)(DispatchFunc)(&DomainReadLogFile),
                (nint)(DispatchFunc)(&DomainAppendLogFile),
            ]);

    /// <summary>An exception must never escape into libvirt: it becomes an
    /// error reply.</summary>
    private static int Fail(virNetMessageError* rerr, string fn, Exception? e = null)
    {
        if (e is not null)
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn, e.Message);
        virNetMessageSaveError(rerr);
        return -1;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainOpenLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "virLogManagerProtocolDispatchDomainOpenLogFile";
        var args = (virLogManagerProtocolDomainOpenLogFileArgs*)a;
        var ret = (virLogManagerProtocolDomainOpenLogFileRet*)r;
        try
        {
            bool trunc = (args->flags & VIR_LOG_MANAGER_PROTOCOL_DOMAIN_OPEN_LOG_FILE_TRUNCATE) != 0;
            int fd = virLogHandler.Instance.DomainOpenLogFile(args->driver, (byte*)args->dom.uuid, args->dom.name,
                args->path, trunc, out ulong inode, out long offset);
            if (fd < 0)
                return Fail(rerr, fn);
            ret->pos.inode = (nuint)inode;
            ret->pos.offset = (nuint)offset;
            // the message keeps its own duplicate of the fd
            int added = virNetMessageAddFD(msg, fd);
            Libc.close(fd);
            if (added < 0)
                return Fail(rerr, fn);
            return 1; // tells libvirt the reply carries fds
        }
        catch (Exception e)
        {
            return Fail(rerr, fn, e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainGetLogFilePosition(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "virLogManagerProtocolDispatchDomainGetLogFilePosition";
        var args = (virLogManagerProtocolDomainGetLogFilePositionArgs*)a;
        var ret = (virLogManagerProtocolDomainGetLogFilePositionRet*)r;
        try
        {
            if (virLogHandler.Instance.DomainGetLogFilePosition(args->path, args->flags, out ulong inode, out long offset) < 0)
                return Fail(rerr, fn);
            ret->pos.inode = (nuint)inode;
            ret->pos.offset = (nuint)offset;
            return 0;
        }
        catch (Exception e)
        {
            return Fail(rerr, fn, e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainReadLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "virLogManagerProtocolDispatchDomainReadLogFile";
        var args = (virLogManagerProtocolDomainReadLogFileArgs*)a;
        var ret = (virLogManagerProtocolDomainReadLogFileRet*)r;
        try
        {
            if (args->maxlen > VIR_LOG_MANAGER_PROTOCOL_STRING_MAX)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Requested data len {args->maxlen} is larger than maximum {VIR_LOG_MANAGER_PROTOCOL_STRING_MAX}");
                return Fail(rerr, fn);
            }
            var data = virLogHandler.Instance.DomainReadLogFile(args->path, args->pos.inode, (long)args->pos.offset,
                args->maxlen, args->flags);
            if (data == null)
                return Fail(rerr, fn);
            ret->data = data; // freed by libvirt with the reply
            return 0;
        }
        catch (Exception e)
        {
            return Fail(rerr, fn, e);
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainAppendLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* a, void* r)
    {
        const string fn = "virLogManagerProtocolDispatchDomainAppendLogFile";
        var args = (virLogManagerProtocolDomainAppendLogFileArgs*)a;
        var ret = (virLogManagerProtocolDomainAppendLogFileRet*)r;
        try
        {
            int rv = virLogHandler.Instance.DomainAppendLogFile(args->path, args->message, args->flags);
            if (rv < 0)
                return Fail(rerr, fn);
            ret->ret = rv;
            return 0;
        }
        catch (Exception e)
        {
            return Fail(rerr, fn, e);
        }
    }
}
