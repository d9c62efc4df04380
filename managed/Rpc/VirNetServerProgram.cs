using System.Text;
using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.Rpc;

/// <summary>A program's generated <c>Dispatch</c>, bound to its
/// implementation: decodes the arguments of <paramref name="procedure"/>,
/// runs the body for <paramref name="client"/> and encodes its result into
/// <paramref name="call"/>'s reply buffer.</summary>
public delegate XdrDispatchStatus VirNetServerProgramDispatchFunc(VirNetServerClient client, XdrCallContext call,
    int procedure, ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError);

/// <summary>
/// The managed twin of libvirt's virnetserverprogram.c (the native one,
/// libvirt's own object, is <see cref="VirNetServerProgramNative"/>): a
/// program and version, and the routing of a message to the program's
/// generated <c>Dispatch</c>, with the replies libvirt's C code gives:
/// a REPLY (or REPLY_WITH_FDS with the call context's descriptors) with the
/// encoded result, an error REPLY carrying the error as virNetMessageError
/// (virNetServerProgramSendError after virNetMessageSaveError), or the
/// dummy reply (nothing on the wire, the request slot freed) for a message
/// that wants no answer. Serves one event loop thread: the call context is
/// the program's and reused call after call.
/// </summary>
public sealed class VirNetServerProgram
{
    private readonly Func<int, string?> _procedureName;
    private readonly VirNetServerProgramDispatchFunc _dispatch;
    private readonly XdrCallContext _call = new();

    public uint Program { get; }
    public uint Version { get; }

    /// <param name="procedureName">the generated <c>Name</c>: null for a procedure the program does not have</param>
    public VirNetServerProgram(uint program, uint version, Func<int, string?> procedureName, VirNetServerProgramDispatchFunc dispatch)
    {
        Program = program;
        Version = version;
        _procedureName = procedureName;
        _dispatch = dispatch;
    }

    /// <summary>The lock program (virtlockd) over its typed interface;
    /// <paramref name="clientOf"/> gives the body's client object (the C
    /// daemons' client private data).</summary>
    public static VirNetServerProgram LockSpace<TClient>(IVirLockSpaceProtocolProgram<TClient> impl, Func<VirNetServerClient, TClient> clientOf)
        => new(VirLockSpaceProtocolProgram.Program, VirLockSpaceProtocolProgram.Version, VirLockSpaceProtocolProgram.Name,
            (VirNetServerClient c, XdrCallContext call, int p, ReadOnlyMemory<byte> a, out VirError? e, out XdrError x)
                => VirLockSpaceProtocolProgram.Dispatch(impl, clientOf(c), call, p, a, out e, out x));

    /// <summary>The log program (virtlogd).</summary>
    public static VirNetServerProgram LogManager<TClient>(IVirLogManagerProtocolProgram<TClient> impl, Func<VirNetServerClient, TClient> clientOf)
        => new(VirLogManagerProtocolProgram.Program, VirLogManagerProtocolProgram.Version, VirLogManagerProtocolProgram.Name,
            (VirNetServerClient c, XdrCallContext call, int p, ReadOnlyMemory<byte> a, out VirError? e, out XdrError x)
                => VirLogManagerProtocolProgram.Dispatch(impl, clientOf(c), call, p, a, out e, out x));

    /// <summary>The admin program (both daemons' admin server).</summary>
    public static VirNetServerProgram Admin<TClient>(IVirAdminProtocolProgram<TClient> impl, Func<VirNetServerClient, TClient> clientOf)
        => new(VirAdminProtocolProgram.Program, VirAdminProtocolProgram.Version, VirAdminProtocolProgram.Name,
            (VirNetServerClient c, XdrCallContext call, int p, ReadOnlyMemory<byte> a, out VirError? e, out XdrError x)
                => VirAdminProtocolProgram.Dispatch(impl, clientOf(c), call, p, a, out e, out x));

    /// <summary>virNetServerProgramMatches: the message's program and version are this one's.</summary>
    public bool Matches(in virNetMessageHeader header) => header.prog == Program && header.vers == Version;

    /// <summary>virNetServerProgramDispatch: 0 when the message was answered
    /// (the message became the reply, queued on the client); -1 when it
    /// could not be, and the caller frees the message and closes the client.</summary>
    public int Dispatch(VirNetServerClient client, VirNetMessage msg)
    {
        var log = client.Pool.Log;
        if (log.On(Src, VirLogPriority.Debug))
            log.Debug(Src, File, 280, "virNetServerProgramDispatch",
                $"prog={(int)msg.Header.prog} ver={(int)msg.Header.vers} type={(int)msg.Header.type} status={(int)msg.Header.status} serial={msg.Header.serial} proc={msg.Header.proc}");
        VirError error;
        if (msg.Header.prog != Program)
            error = Rpc($"program mismatch (actual {msg.Header.prog:x}, expected {Program:x})");
        else if (msg.Header.vers != Version)
            error = Rpc($"version mismatch (actual {msg.Header.vers:x}, expected {Version:x})");
        else
        {
            switch (msg.Header.type)
            {
                case virNetMessageType.VIR_NET_CALL:
                case virNetMessageType.VIR_NET_CALL_WITH_FDS:
                    return DispatchCall(client, msg);
                case virNetMessageType.VIR_NET_STREAM:
                    // stream data is not acknowledged: dropped, its slot freed
                    if (log.On(Src, VirLogPriority.Info))
                        log.Info(Src, File, 310, "virNetServerProgramDispatch",
                            $"Ignoring unexpected stream data serial={msg.Header.serial} proc={msg.Header.proc} status={(int)msg.Header.status}");
                    return DummyReply(client, msg);
                default:
                    error = Rpc($"Unexpected message type {(uint)msg.Header.type}");
                    break;
            }
        }
        if (msg.Header.type is virNetMessageType.VIR_NET_CALL or virNetMessageType.VIR_NET_CALL_WITH_FDS)
            return SendReplyError(client, msg, error);
        return DummyReply(client, msg);
    }

    /// <summary>virNetServerProgramDispatchCall.</summary>
    private int DispatchCall(VirNetServerClient client, VirNetMessage msg)
    {
        VirError? error;
        int procedure = msg.Header.proc;
        if (msg.Header.status != virNetMessageStatus.VIR_NET_OK)
            error = Rpc($"Unexpected message status {(uint)msg.Header.status}");
        else if (_procedureName(procedure) is null)
            error = Rpc($"unknown procedure: {procedure}");
        else if (!client.IsAuthenticated)
            // every procedure of these programs needs authentication (needAuth)
            error = Rpc("authentication required");
        else
        {
            var call = _call;
            XdrDispatchStatus status;
            try
            {
                call.SetReceivedFds(msg.Fds);
                status = _dispatch(client, call, procedure, msg.Payload, out error, out _);
            }
            catch (Exception e)
            {
                status = XdrDispatchStatus.Failed;
                error = VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, e.Message);
            }
            // libvirt decodes the arguments before the body runs and keeps
            // the received descriptors in the message on that error path (its
            // error reply then carries them back); after the body ran it
            // closes them. (It would also keep them when the body adds
            // descriptors of its own; none of the programs receives and
            // returns descriptors in one call, so here they are always closed.)
            if (status != XdrDispatchStatus.BadArgs)
            {
                msg.CloseFds();
                client.HasIdentity = true;
            }
            bool replied = false;
            switch (status)
            {
                case XdrDispatchStatus.Ok:
                    error = Reply(client.Pool, msg, call);
                    replied = error is null;
                    if (!replied)
                        msg.CloseFds(); // the duplicates of a reply that did not encode
                    break;
                case XdrDispatchStatus.Failed:
                    break; // the body's error value
                case XdrDispatchStatus.BadArgs:
                    error = Rpc("Unable to decode message payload");
                    break;
                case XdrDispatchStatus.BadRet:
                    error = Rpc("Unable to encode message payload");
                    break;
                default:
                    error = Rpc($"unknown procedure: {procedure}");
                    break;
            }
            call.Reset();
            if (replied)
                return client.SendMessage(msg);
        }
        return SendReplyError(client, msg, error);
    }

    /// <summary>The message turned into the REPLY (REPLY_WITH_FDS when the
    /// body added descriptors) carrying the encoded result; null, or the
    /// error that stops it.</summary>
    private static VirError? Reply(VirNetMessagePool pool, VirNetMessage msg, XdrCallContext call)
    {
        for (int i = 0; i < call.OutgoingFdCount; i++)
            if (msg.AddFd(call.OutgoingFd(i)) is { } e)
                return e;
        msg.Header.type = msg.FdCount > 0 ? virNetMessageType.VIR_NET_REPLY_WITH_FDS : virNetMessageType.VIR_NET_REPLY;
        msg.Header.status = virNetMessageStatus.VIR_NET_OK;
        if (msg.EncodeHeader() is { } he)
            return he;
        if (msg.FdCount > 0)
        {
            if (msg.EncodeNumFds() is { } fe)
                return fe;
            pool.LogFdCount(msg, received: false);
        }
        if (msg.EncodePayload(call.Reply.WrittenSpan) is { } pe)
            return pe;
        pool.LogEncoded(msg);
        return null;
    }

    /// <summary>virNetServerProgramSendReplyError: an error REPLY from this program.</summary>
    private int SendReplyError(VirNetServerClient client, VirNetMessage msg, VirError? error)
        => SendError(Program, Version, client, msg, error, msg.Header.proc,
            msg.Header.type == virNetMessageType.VIR_NET_STREAM ? virNetMessageType.VIR_NET_STREAM : virNetMessageType.VIR_NET_REPLY,
            msg.Header.serial);

    /// <summary>virNetServerProgramUnknownError: the error REPLY to a call
    /// of a program and version the server does not serve.</summary>
    public static int UnknownError(VirNetServerClient client, VirNetMessage msg)
        => SendError(msg.Header.prog, msg.Header.vers, client, msg,
            Rpc($"Cannot find program {(int)msg.Header.prog} version {(int)msg.Header.vers}"),
            msg.Header.proc, virNetMessageType.VIR_NET_REPLY, msg.Header.serial);

    /// <summary>The dummy reply: a cleared message queued as a REPLY writes
    /// nothing, and frees the request slot when it is "sent".</summary>
    internal static int DummyReply(VirNetServerClient client, VirNetMessage msg)
    {
        client.Pool.LogClear(msg);
        msg.Clear();
        msg.Header.type = virNetMessageType.VIR_NET_REPLY;
        return client.SendMessage(msg) < 0 ? -1 : 0;
    }

    /// <summary>virNetServerProgramSendError: the message becomes the error
    /// reply (status ERROR) with <paramref name="error"/> as
    /// virNetMessageSaveError encodes it; -1 if it cannot be encoded or queued.</summary>
    public static int SendError(uint program, uint version, VirNetServerClient client, VirNetMessage msg, VirError? error,
        int procedure, virNetMessageType type, uint serial)
    {
        var log = client.Pool.Log;
        // rerr: libvirt's is on its stack; a fresh number stands for it
        if (log.On(Src, VirLogPriority.Debug))
            log.Debug(Src, File, 147, "virNetServerProgramSendError",
                $"prog={(int)program} ver={(int)version} proc={procedure} type={(int)type} serial={serial} msg={VirNetLog.Ptr(msg.LogId)} rerr={VirNetLog.Ptr(VirNetLog.NewId())}");
        var rerr = SaveError(error);
        msg.Header = new virNetMessageHeader
        {
            prog = program, vers = version, proc = procedure, type = type, serial = serial,
            status = virNetMessageStatus.VIR_NET_ERROR,
        };
        if (msg.EncodeHeader() is not null || msg.EncodePayload(rerr) is not null)
            return -1;
        client.Pool.LogEncoded(msg);
        return client.SendMessage(msg);
    }

    /// <summary>virNetMessageSaveError: the error's fields, or libvirt's
    /// default when there is no error to send.</summary>
    public static virNetMessageError SaveError(VirError? error)
    {
        if (error is null)
            return new virNetMessageError
            {
                code = (int)VirErrorCode.InternalError,
                domain = (int)VirErrorDomain.Rpc,
                message = Encoding.UTF8.GetBytes("Library function returned error but did not set virError"),
                level = VirError.LevelError,
            };
        return new virNetMessageError
        {
            code = error.Code,
            domain = error.Domain,
            message = Utf8(error.Message),
            level = error.Level,
            str1 = Utf8(error.Str1),
            str2 = Utf8(error.Str2),
            str3 = Utf8(error.Str3),
            int1 = error.Int1,
            int2 = error.Int2,
        };
    }

    // (a null byte[] would convert to an empty, present string: test for null first);
    // lossless: a message naming a path that is not UTF-8 carries its bytes, as libvirt's does
    private static ReadOnlyMemory<byte>? Utf8(string? s)
    {
        if (s is null) return null;
        return Libvirt.Interop.LosslessUtf8.Encode(s);
    }

    private static readonly VirLogSource Src = VirNetLog.NetServerProgram;
    private const string File = VirNetLog.ProgramFile;

    private static VirError Rpc(string detail) => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.Rpc, detail);
}
