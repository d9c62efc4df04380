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
    public static virNetServerProgram* NewProgram()
        => VirNetServerProgramNative.NewProgram((uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM, (uint)VIR_LOG_MANAGER_PROTOCOL_PROGRAM_VERSION,
            &virtshimLogProcInfo,
            [
                (nint)(DispatchFunc)(&DomainOpenLogFile),
                (nint)(DispatchFunc)(&DomainGetLogFilePosition),
                (nint)(DispatchFunc)(&DomainReadLogFile),
                (nint)(DispatchFunc)(&DomainAppendLogFile),
            ]);

    /// <summary>Runs one procedure: its error value, or any exception (one
    /// escaping would kill the process), is handed to libvirt here, at the
    /// boundary, and becomes the error reply; otherwise the body's result
    /// (0, or 1 for a reply carrying fds) is the dispatcher's.</summary>
    private static int Run<TArgs, TRet>(virNetServerClient* client, virNetMessage* msg, virNetMessageError* rerr, void* args, void* ret,
        string fn, delegate*<virLogHandler, virNetMessage*, TArgs*, TRet*, string, VirResult<int>> body)
        where TArgs : unmanaged where TRet : unmanaged
    {
        VirResult<int> rv;
        try
        {
            rv = body(virLogDaemonClient.Of(client).Daemon.Handler, msg, (TArgs*)args, (TRet*)ret, fn);
        }
        catch (Exception e)
        {
            return VirNetServerProgramError.Reply(rerr, virErrorDomain.VIR_FROM_RPC, fn, e);
        }
        return rv.TryGet(out int value, out var err) ? value : VirNetServerProgramError.Reply(rerr, err!, fn);
    }

    /// <summary>A wire string (NUL-terminated, maybe null) as a span.</summary>
    private static ReadOnlySpan<byte> Span(sbyte* s)
        => s == null ? default : MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)s);

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainOpenLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainOpenLogFileArgs, virLogManagerProtocolDomainOpenLogFileRet>(client, msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainOpenLogFile", &DoDomainOpenLogFile);

    private static VirResult<int> DoDomainOpenLogFile(virLogHandler handler, virNetMessage* msg, virLogManagerProtocolDomainOpenLogFileArgs* args,
        virLogManagerProtocolDomainOpenLogFileRet* ret, string fn)
    {
        bool trunc = (args->flags & VIR_LOG_MANAGER_PROTOCOL_DOMAIN_OPEN_LOG_FILE_TRUNCATE) != 0;
        var opened = handler.DomainOpenLogFile(Span(args->driver), new ReadOnlySpan<byte>(args->dom.uuid, 16), Span(args->dom.name),
            Span(args->path), trunc);
        if (!opened.TryGet(out var log, out var err))
            return err!;
        using var writeEnd = log.WriteEnd;
        ret->pos.inode = (nuint)log.INode;
        ret->pos.offset = (nuint)log.Offset;
        // the message keeps its own duplicate of the fd
        if (virNetMessageAddFD(msg, (int)writeEnd.DangerousGetHandle()) < 0)
            return VirErrorNative.TakeLast();
        return 1; // tells libvirt the reply carries fds
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainGetLogFilePosition(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainGetLogFilePositionArgs, virLogManagerProtocolDomainGetLogFilePositionRet>(client, msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainGetLogFilePosition", &DoDomainGetLogFilePosition);

    private static VirResult<int> DoDomainGetLogFilePosition(virLogHandler handler, virNetMessage* msg, virLogManagerProtocolDomainGetLogFilePositionArgs* args,
        virLogManagerProtocolDomainGetLogFilePositionRet* ret, string fn)
    {
        if (!handler.DomainGetLogFilePosition(Span(args->path), args->flags).TryGet(out var pos, out var err))
            return err!;
        ret->pos.inode = (nuint)pos.INode;
        ret->pos.offset = (nuint)pos.Offset;
        return 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainReadLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainReadLogFileArgs, virLogManagerProtocolDomainReadLogFileRet>(client, msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainReadLogFile", &DoDomainReadLogFile);

    private static VirResult<int> DoDomainReadLogFile(virLogHandler handler, virNetMessage* msg, virLogManagerProtocolDomainReadLogFileArgs* args,
        virLogManagerProtocolDomainReadLogFileRet* ret, string fn)
    {
        if (args->maxlen > VIR_LOG_MANAGER_PROTOCOL_STRING_MAX)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError,
                $"Requested data len {args->maxlen} is larger than maximum {VIR_LOG_MANAGER_PROTOCOL_STRING_MAX}");
        // glib memory: libvirt frees it with the reply
        var data = (byte*)GLib.g_malloc0((nuint)args->maxlen + 1);
        var got = handler.DomainReadLogFile(Span(args->path), args->pos.inode, (long)args->pos.offset,
            new Span<byte>(data, (int)args->maxlen), args->flags);
        if (!got.TryGet(out long n, out var err))
        {
            GLib.g_free(data);
            return err!;
        }
        data[n] = 0;
        ret->data = (sbyte*)data;
        return 0;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static int DomainAppendLogFile(virNetServer* server, virNetServerClient* client, virNetMessage* msg,
        virNetMessageError* rerr, void* args, void* ret)
        => Run<virLogManagerProtocolDomainAppendLogFileArgs, virLogManagerProtocolDomainAppendLogFileRet>(client, msg, rerr, args, ret,
            "virLogManagerProtocolDispatchDomainAppendLogFile", &DoDomainAppendLogFile);

    private static VirResult<int> DoDomainAppendLogFile(virLogHandler handler, virNetMessage* msg, virLogManagerProtocolDomainAppendLogFileArgs* args,
        virLogManagerProtocolDomainAppendLogFileRet* ret, string fn)
    {
        var appended = handler.DomainAppendLogFile(Span(args->path), Span(args->message), args->flags);
        if (!appended.Ok)
            return appended.Error!;
        ret->ret = 0;
        return 0;
    }
}
