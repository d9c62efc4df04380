using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Xdr.LogProtocolConstants;

namespace Libvirt.LogDaemon;

/// <summary>
/// The log manager program's procedures (0x87539319 v1,
/// log_daemon_dispatch.c): the bodies of
/// <see cref="IVirLogManagerProtocolProgram{TClient}"/> over the daemon's
/// log handler, written once for any RPC layer, with the C daemon's checks
/// and its errors as values. OPEN_LOG_FILE's reply carries the write end of
/// the log's pipe (REPLY_WITH_FDS) through the call's context. libvirt's
/// virNetServer serves them through <see cref="virLogManagerProtocolNative"/>.
/// </summary>
public sealed class virLogManagerProtocolDispatch : IVirLogManagerProtocolProgram<virLogDaemonClient>
{
    public VirResult<virLogManagerProtocolDomainOpenLogFileRet> DomainOpenLogFile(virLogDaemonClient client, XdrCallContext call,
        in virLogManagerProtocolDomainOpenLogFileArgs args)
    {
        bool trunc = (args.flags & VIR_LOG_MANAGER_PROTOCOL_DOMAIN_OPEN_LOG_FILE_TRUNCATE) != 0;
        var opened = client.Daemon.Handler.DomainOpenLogFile(args.driver.Span, args.dom.uuid.Span, args.dom.name.Span,
            args.path.Span, trunc);
        if (!opened.TryGet(out var log, out var err))
            return err!;
        // the context owns the write end from here, and the reply carries it
        call.AddFd(log.WriteEnd);
        return new virLogManagerProtocolDomainOpenLogFileRet
        {
            pos = new() { inode = log.INode, offset = (ulong)log.Offset },
        };
    }

    public VirResult<virLogManagerProtocolDomainGetLogFilePositionRet> DomainGetLogFilePosition(virLogDaemonClient client,
        XdrCallContext call, in virLogManagerProtocolDomainGetLogFilePositionArgs args)
    {
        if (!client.Daemon.Handler.DomainGetLogFilePosition(args.path.Span, args.flags).TryGet(out var pos, out var err))
            return err!;
        return new virLogManagerProtocolDomainGetLogFilePositionRet
        {
            pos = new() { inode = pos.INode, offset = (ulong)pos.Offset },
        };
    }

    public VirResult<virLogManagerProtocolDomainReadLogFileRet> DomainReadLogFile(virLogDaemonClient client, XdrCallContext call,
        in virLogManagerProtocolDomainReadLogFileArgs args)
    {
        if (args.maxlen > VIR_LOG_MANAGER_PROTOCOL_STRING_MAX)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError,
                $"Requested data len {args.maxlen} is larger than maximum {VIR_LOG_MANAGER_PROTOCOL_STRING_MAX}");
        // pooled, until the reply is encoded; as the C daemon's string, the
        // reply holds the bytes read up to the first NUL
        var data = call.Rent((int)args.maxlen);
        var got = client.Daemon.Handler.DomainReadLogFile(args.path.Span, args.pos.inode, (long)args.pos.offset,
            data.Span, args.flags);
        if (!got.TryGet(out long n, out var err))
            return err!;
        return new virLogManagerProtocolDomainReadLogFileRet { data = data[..(int)n] };
    }

    public VirResult<virLogManagerProtocolDomainAppendLogFileRet> DomainAppendLogFile(virLogDaemonClient client, XdrCallContext call,
        in virLogManagerProtocolDomainAppendLogFileArgs args)
    {
        var appended = client.Daemon.Handler.DomainAppendLogFile(args.path.Span, args.message.Span, args.flags);
        if (!appended.Ok)
            return appended.Error!;
        return new virLogManagerProtocolDomainAppendLogFileRet { ret = 0 };
    }
}
