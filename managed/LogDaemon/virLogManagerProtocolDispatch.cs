using Libvirt.Rpc;
using Libvirt.Util;
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
        => VirNetServerProgramNative.NewProgram((uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM, (uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM_VERSION,
            &virtshimLogProcInfo,
            [
                (nint)(DispatchFunc)(&DomainOpenLogFile),
                (nint)(DispatchFunc)(&DomainGetLogFilePosition),
                (nint)(DispatchFunc)(&DomainReadLogFile),
                (nint)(DispatchFunc)(&DomainAppendLogFile),
            ]);

    /// <summary>Runs one procedure: a negative result, or any exception
    /// (one escaping would kill the process), becomes the error reply;
    /// otherwise the body's result is the dispatcher's.</summary>
    private static int Run<TArgs, TRet>(virNetMessage* msg, virNetMessageError* rerr, void* args, void* ret, string fn,
        delegate*<virNetMessage*, TArgs*, TRet*, string, int> body) where TArgs : unmanaged where TRet : unmanaged
    {
        int rv;
        try
        {
            rv = body(msg, (TArgs*)args, (TRet*)ret, fn);
        }
        catch (Exception e)
        {
            return VirNetServerProgramError.Reply(rerr, FromThis, fn, e);
        }
        return rv < 0 ? VirNetServerProgramError.Reply(rerr) : rv;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainOpenLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainOpenLogFileArgs, virLogManagerProtocolDomainOpenLogFileRet>(msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainOpenLogFile", &DoDomainOpenLogFile);

    private static int DoDomainOpenLogFile(virNetMessage* msg, virLogManagerProtocolDomainOpenLogFileArgs* args,
        virLogManagerProtocolDomainOpenLogFileRet* ret, string fn)
    {
        bool trunc = (args->flags & VIR_LOG_MANAGER_PROTOCOL_DOMAIN_OPEN_LOG_FILE_TRUNCATE) != 0;
        int fd = virLogHandler.Instance.DomainOpenLogFile(args->driver, (byte*)args->dom.uuid, args->dom.name,
            args->path, trunc, out ulong inode, out long offset);
        if (fd < 0)
            return -1;
        ret->pos.inode = (nuint)inode;
        ret->pos.offset = (nuint)offset;
        // the message keeps its own duplicate of the fd
        int added = virNetMessageAddFD(msg, fd);
        Libc.close(fd);
        if (added < 0)
            return -1;
        return 1; // tells libvirt the reply carries fds
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainGetLogFilePosition(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainGetLogFilePositionArgs, virLogManagerProtocolDomainGetLogFilePositionRet>(msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainGetLogFilePosition", &DoDomainGetLogFilePosition);

    private static int DoDomainGetLogFilePosition(virNetMessage* msg, virLogManagerProtocolDomainGetLogFilePositionArgs* args,
        virLogManagerProtocolDomainGetLogFilePositionRet* ret, string fn)
    {
        if (virLogHandler.Instance.DomainGetLogFilePosition(args->path, args->flags, out ulong inode, out long offset) < 0)
            return -1;
        ret->pos.inode = (nuint)inode;
        ret->pos.offset = (nuint)offset;
        return 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainReadLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainReadLogFileArgs, virLogManagerProtocolDomainReadLogFileRet>(msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainReadLogFile", &DoDomainReadLogFile);

    private static int DoDomainReadLogFile(virNetMessage* msg, virLogManagerProtocolDomainReadLogFileArgs* args,
        virLogManagerProtocolDomainReadLogFileRet* ret, string fn)
    {
        if (args->maxlen > VIR_LOG_MANAGER_PROTOCOL_STRING_MAX)
        {
            LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                $"Requested data len {args->maxlen} is larger than maximum {VIR_LOG_MANAGER_PROTOCOL_STRING_MAX}");
            return -1;
        }
        var data = virLogHandler.Instance.DomainReadLogFile(args->path, args->pos.inode, (long)args->pos.offset,
            args->maxlen, args->flags);
        if (data == null)
            return -1;
        ret->data = data; // freed by libvirt with the reply
        return 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainAppendLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainAppendLogFileArgs, virLogManagerProtocolDomainAppendLogFileRet>(msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainAppendLogFile", &DoDomainAppendLogFile);

    private static int DoDomainAppendLogFile(virNetMessage* msg, virLogManagerProtocolDomainAppendLogFileArgs* args,
        virLogManagerProtocolDomainAppendLogFileRet* ret, string fn)
    {
        int rv = virLogHandler.Instance.DomainAppendLogFile(args->path, args->message, args->flags);
        if (rv < 0)
            return -1;
        ret->ret = rv;
        return 0;
    }
}
