using System.Buffers;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using Libvirt.Util;
using Libvirt.Xdr;
using static Libvirt.Interop.Methods;
using virNetMessageError = Libvirt.Interop.virNetMessageError;

namespace Libvirt.Rpc;

/// <summary>
/// How one program's procedures are reached from libvirt's side: the
/// program's implementation and client object (through the private data of
/// libvirt's client, never a static) and the generated <c>Dispatch</c> of
/// its typed interface. One small struct per program; everything else is
/// <see cref="VirNetServerProgramNative"/>'s.
/// </summary>
public unsafe interface IVirNetServerProgramBinding
{
    /// <summary>The program's generated Dispatch, on the implementation and
    /// client object <paramref name="client"/> leads to.</summary>
    static abstract XdrDispatchStatus Dispatch(virNetServerClient* client, XdrCallContext call, int procedure,
        ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError);

    /// <summary>The function an error of the procedure is reported from
    /// (libvirt's log shows it), as the C daemon's dispatcher is named.</summary>
    static abstract string Function(int procedure);

    /// <summary>The domain an unexpected exception of the program is reported in.</summary>
    static abstract virErrorDomain ExceptionDomain { get; }
}

/// <summary>
/// libvirt's virNetServerProgram serving a program's typed interface
/// (<c>interop/Libvirt.Xdr</c>): the procedure table it dispatches through
/// has, for every procedure, the program's one entry point and two filters
/// of the shim instead of rpcgen's (<c>virtshimXdrArgsInPlace</c> leaves
/// the arguments undecoded in the message, <c>virtshimXdrReplyBytes</c>
/// writes the reply bytes the generated encoder produced). The entry point
/// (<see cref="Serve{TBinding}"/>) decodes, calls the procedure body and
/// encodes with the generated codecs, and turns an error value into the
/// reply libvirt encodes for it (<see cref="VirNetServerProgramError"/>).
/// libvirt keeps the table for the program's life: it lives in native
/// memory and is never freed.
/// </summary>
public static unsafe class VirNetServerProgramNative
{
    /// <summary>A program whose procedures (numbers as in the protocol)
    /// all go to <paramref name="entry"/>, an [UnmanagedCallersOnly]
    /// function that calls <see cref="Serve{TBinding}"/>.</summary>
    public static virNetServerProgram* NewProgram(uint program, uint version, ReadOnlySpan<int> procedures,
        delegate* unmanaged[Cdecl]<virNetServer*, virNetServerClient*, virNetMessage*, virNetMessageError*, void*, void*, int> entry)
    {
        int n = 1;
        foreach (int p in procedures)
            n = Math.Max(n, p + 1);
        var procs = (virNetServerProgramProc*)NativeMemory.AllocZeroed((nuint)n, (nuint)sizeof(virNetServerProgramProc));
        void* argsInPlace = virtshimXdrArgsInPlace(), replyBytes = virtshimXdrReplyBytes();
        // libvirt calls ret_filter even on errors, so no entry has a NULL one
        for (int i = 0; i < n; i++)
            procs[i].ret_filter = replyBytes;
        foreach (int p in procedures)
        {
            procs[p].func = entry;
            procs[p].arg_len = 0;
            procs[p].arg_filter = argsInPlace;
            procs[p].ret_len = (nuint)sizeof(virtshimXdrReply);
            procs[p].needAuth = 1;
            procs[p].priority = 0;
        }
        return virNetServerProgramNew(program, version, procs, (nuint)n);
    }

    /// <summary>One call, as libvirt's dispatcher hands it over: the
    /// undecoded arguments are the message's buffer from its offset on (the
    /// header, and the fd count of a CALL_WITH_FDS, already read); the
    /// descriptors received are the message's. Returns 0, 1 when the reply
    /// carries descriptors (REPLY_WITH_FDS), or -1 with the error saved in
    /// <paramref name="rerr"/>. Nothing escapes as an exception.</summary>
    public static int Serve<TBinding>(virNetServerClient* client, virNetMessage* msg, virNetMessageError* rerr, void* ret)
        where TBinding : IVirNetServerProgramBinding
    {
        int procedure = msg->header.proc;
        var call = NativeCall.Rent();
        try
        {
            var args = call.Arguments((byte*)msg->buffer + msg->bufferOffset, checked((int)(msg->bufferLength - msg->bufferOffset)));
            if (msg->nfds > 0)
                call.Context.SetReceivedFds(new ReadOnlySpan<int>(msg->fds, checked((int)msg->nfds)));
            var status = TBinding.Dispatch(client, call.Context, procedure, args, out var error, out _);
            switch (status)
            {
                case XdrDispatchStatus.Ok:
                    break;
                case XdrDispatchStatus.Failed:
                    return VirNetServerProgramError.Reply(rerr, error!, TBinding.Function(procedure));
                case XdrDispatchStatus.BadArgs:
                    // what libvirt reports when an rpcgen filter refuses the arguments
                    LibvirtError.Report(virErrorDomain.VIR_FROM_RPC, virErrorNumber.VIR_ERR_RPC, "virNetMessageDecodePayload",
                        "Unable to decode message payload");
                    return VirNetServerProgramError.Reply(rerr);
                case XdrDispatchStatus.BadRet:
                    LibvirtError.Report(virErrorDomain.VIR_FROM_RPC, virErrorNumber.VIR_ERR_RPC, "virNetMessageEncodePayload",
                        "Unable to encode message payload");
                    return VirNetServerProgramError.Reply(rerr);
                default: // the table holds only the program's procedures
                    LibvirtError.Report(virErrorDomain.VIR_FROM_RPC, virErrorNumber.VIR_ERR_RPC, "virNetServerProgramDispatchCall",
                        $"unknown procedure: {procedure}");
                    return VirNetServerProgramError.Reply(rerr);
            }
            SetReply((virtshimXdrReply*)ret, call.Context.Reply.WrittenSpan);
            int nfds = call.Context.OutgoingFdCount;
            for (int i = 0; i < nfds; i++)
            {
                // the message keeps its own duplicate; ours is closed with the call
                if (virNetMessageAddFD(msg, (int)call.Context.OutgoingFd(i).DangerousGetHandle()) < 0)
                    return VirNetServerProgramError.Reply(rerr);
            }
            return nfds > 0 ? 1 : 0;
        }
        catch (Exception e)
        {
            // one escaping into libvirt would kill the process
            return VirNetServerProgramError.Reply(rerr, TBinding.ExceptionDomain, TBinding.Function(procedure), e);
        }
        finally
        {
            NativeCall.Return(call);
        }
    }

    /// <summary>The encoded reply into the struct libvirt allocated for it
    /// (its XDR_FREE frees what is not inline).</summary>
    private static void SetReply(virtshimXdrReply* reply, ReadOnlySpan<byte> bytes)
    {
        byte* data = bytes.Length <= VIRTSHIM_XDR_REPLY_INLINE
            ? (byte*)reply->inline_data
            : (byte*)NativeMemory.Alloc((nuint)bytes.Length); // free()d by the shim's XDR_FREE
        bytes.CopyTo(new Span<byte>(data, bytes.Length));
        reply->data = (sbyte*)data;
        reply->len = (uint)bytes.Length;
    }

    /// <summary>A call's context and a view of its arguments in the
    /// message, reused by the next call on the same thread: serving a call
    /// allocates nothing. (libvirt dispatches on the event loop thread, or
    /// on its workers when the admin interface gives the server some.)</summary>
    private sealed class NativeCall
    {
        [ThreadStatic] private static NativeCall? t_free;

        public readonly XdrCallContext Context = new();
        private readonly NativeBytes _args = new();

        public static NativeCall Rent()
        {
            var c = t_free ?? new NativeCall();
            t_free = null;
            return c;
        }

        public static void Return(NativeCall c)
        {
            c.Context.Reset();
            c._args.Set(null, 0);
            t_free = c;
        }

        public ReadOnlyMemory<byte> Arguments(byte* p, int length)
        {
            _args.Set(p, length);
            return _args.Memory;
        }
    }

    /// <summary>Native bytes as Memory, valid while the call runs.</summary>
    private sealed class NativeBytes : MemoryManager<byte>
    {
        private byte* _p;
        private int _length;

        public void Set(byte* p, int length)
        {
            _p = p;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_p, _length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(_p + elementIndex);

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
