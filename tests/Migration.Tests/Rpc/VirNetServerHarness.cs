using System.Buffers.Binary;
using System.Net.Sockets;
using Libvirt.Rpc;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Libvirt.Xdr;
using Microsoft.Win32.SafeHandles;
using Xunit;
using TXdrWriter = Libvirt.Tests.Infrastructure.XdrWriter;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// A managed server in this process: a listening UNIX socket in a temp
/// dir, the managed event loop on its own thread (the one thread that
/// touches the server, as in the C daemons), the lock program served by
/// <see cref="FakeLockProgram"/>, and keepalive. Tests look at server state
/// through <see cref="OnLoop{T}"/>, which runs on the loop thread.
/// </summary>
internal sealed class VirNetServerHarness : IDisposable
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public string Dir { get; }
    public string SocketPath { get; }
    public VirEventManaged Loop { get; } = new();
    public Socket Listener { get; }
    public VirNetServer Server { get; }
    public VirNetServerService Service { get; }
    public FakeLockProgram Lock { get; } = new();
    private readonly Thread? _thread;
    private volatile bool _stop;
    private Exception? _loopError;

    public VirNetServerHarness(long maxClients = 20, long maxAnonymous = 0, VirNetServerServiceAuth auth = VirNetServerServiceAuth.None,
        int maxRequests = 5, int keepaliveInterval = 5, uint keepaliveCount = 5, bool loopThread = true, IVirLog? log = null)
    {
        Dir = Directory.CreateTempSubdirectory("virnetserver-").FullName;
        SocketPath = Path.Combine(Dir, "sock");
        Listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        Listener.Listen(30);
        Listener.Blocking = false;
        Server = new VirNetServer("test", Loop, maxClients, maxAnonymous, keepaliveInterval, keepaliveCount)
        {
            Log = new VirNetLog { Target = log },
        };
        Service = new VirNetServerService(Listener.SafeHandle, Loop, auth, maxRequests: maxRequests);
        Server.AddService(Service);
        Server.AddProgram(VirNetServerProgram.LockSpace(Lock, c => c));
        if (loopThread)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "virnetserver-test-loop" };
            _thread.Start();
        }
    }

    private void Run()
    {
        try
        {
            while (!_stop)
                Loop.RunOnce().ThrowIfFailed();
        }
        catch (Exception e)
        {
            _loopError = e;
        }
    }

    /// <summary>Runs <paramref name="f"/> on the loop thread (a one-shot timer), bounded.</summary>
    public T OnLoop<T>(Func<T> f)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        int id = -1;
        id = Loop.AddTimeout(0, t =>
        {
            Loop.RemoveTimeout(t);
            try { done.TrySetResult(f()); }
            catch (Exception e) { done.TrySetException(e); }
        }, null);
        Assert.True(id > 0);
        Assert.True(done.Task.Wait(Bound), "the loop thread did not run the probe");
        return done.Task.Result;
    }

    /// <summary>Waits (bounded) until <paramref name="cond"/>, checked on the loop thread, holds.</summary>
    public void WaitFor(Func<bool> cond, string what)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!OnLoop(cond))
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for: {what}");
            Thread.Sleep(10);
        }
    }

    public SyncRpcClient Connect() => new(SocketPath);

    public void Dispose()
    {
        _stop = true;
        Loop.Interrupt();
        if (_thread is not null)
            Assert.True(_thread.Join(Bound), "the loop thread did not stop");
        Server.Dispose();
        Listener.Dispose();
        Loop.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
        if (_loopError is not null)
            throw new Xunit.Sdk.XunitException($"the event loop failed: {_loopError}");
    }
}

/// <summary>
/// The lock program's interface with small fake bodies, so that each
/// outcome the RPC layer must encode has a procedure: REGISTER and NEW
/// succeed, RESTRICT returns an error value, ACQUIRE_RESOURCE throws,
/// CREATE_RESOURCE writes its path into every descriptor it received and
/// returns a duplicate of each (REPLY_WITH_FDS). Nothing is allocated on
/// the success paths.
/// </summary>
internal sealed class FakeLockProgram : IVirLockSpaceProtocolProgram<VirNetServerClient>
{
    public int Calls;
    public int LastReceivedFds;

    public static readonly VirError RestrictError =
        VirError.Report(VirErrorDomain.Locking, VirErrorCode.OperationInvalid, "restricted by the fake");

    public VirResult Register(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolRegisterArgs args)
    {
        Calls++;
        return VirResult.Success;
    }

    public VirResult Restrict(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolRestrictArgs args)
        => RestrictError;

    public VirResult New(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolNewArgs args)
    {
        Calls++;
        return VirResult.Success;
    }

    public unsafe VirResult CreateResource(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolCreateResourceArgs args)
    {
        LastReceivedFds = call.ReceivedFds.Length;
        foreach (int fd in call.ReceivedFds)
        {
            fixed (byte* p = args.path.Span)
                Assert.Equal(args.path.Length, (int)Libc.write(fd, p, (nuint)args.path.Length));
            int dup = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
            Assert.True(dup >= 0);
            call.AddFd(new SafeFileHandle(dup, ownsHandle: true));
        }
        return VirResult.Success;
    }

    public VirResult DeleteResource(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolDeleteResourceArgs args)
        => VirResult.Success;

    public VirResult AcquireResource(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolAcquireResourceArgs args)
        => throw new InvalidOperationException("the fake throws");

    public VirResult ReleaseResource(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolReleaseResourceArgs args)
        => VirResult.Success;

    public VirResult CreateLockSpace(VirNetServerClient client, XdrCallContext call, in virLockSpaceProtocolCreateLockSpaceArgs args)
        => VirResult.Success;
}

/// <summary>A raw client with blocking, time-bounded socket calls, able to
/// pass descriptors as libvirt does (one byte with SCM_RIGHTS each, after
/// the frame), so that it reads exactly one frame at a time.</summary>
internal sealed class SyncRpcClient : IDisposable
{
    public Socket Socket { get; }

    public SyncRpcClient(string path)
    {
        Socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        {
            ReceiveTimeout = (int)VirNetServerHarness.Bound.TotalMilliseconds,
            SendTimeout = (int)VirNetServerHarness.Bound.TotalMilliseconds,
        };
        Socket.Connect(new UnixDomainSocketEndPoint(path));
    }

    private int Fd => (int)Socket.SafeHandle.DangerousGetHandle();

    public void Send(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
            bytes = bytes[Socket.Send(bytes)..];
    }

    public void SendFd(int fd) => Assert.Equal(1, Libc.SendFd(Fd, fd));

    public int RecvFd()
    {
        Assert.Equal(1, Libc.RecvFd(Fd, out int fd, out int errno));
        Assert.Equal(0, errno);
        return fd;
    }

    private int ReadExactly(Span<byte> buf)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = Socket.Receive(buf[got..]);
            if (n == 0) break;
            got += n;
        }
        return got;
    }

    /// <summary>One whole frame (length word included), null at end of file; throws on timeout.</summary>
    public byte[]? ReadFrame()
    {
        var len = new byte[4];
        int n = ReadExactly(len);
        if (n == 0) return null;
        Assert.Equal(4, n);
        int total = BinaryPrimitives.ReadInt32BigEndian(len);
        Assert.InRange(total, 28, 4 + 33554432);
        var frame = new byte[total];
        len.CopyTo(frame, 0);
        Assert.Equal(total - 4, ReadExactly(frame.AsSpan(4)));
        return frame;
    }

    /// <summary>True when the server closes the connection (bounded); what it sent before goes to <paramref name="received"/>.</summary>
    public bool WaitClosed(List<byte>? received = null)
    {
        var buf = new byte[4096];
        try
        {
            while (true)
            {
                int n = Socket.Receive(buf);
                if (n == 0) return true;
                received?.AddRange(buf.AsSpan(0, n).ToArray());
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut || e.SocketErrorCode == SocketError.WouldBlock)
        {
            return false;
        }
        catch (SocketException)
        {
            return true; // reset
        }
    }

    public void Dispose() => Socket.Dispose();
}

/// <summary>Frames as the wire has them, built with the tests' own XDR writer.</summary>
internal static class Frames
{
    public const uint LockProgram = 0xEA7BEEF;
    public const uint KeepAliveProgram = 0x6b656570;

    public static byte[] Build(uint prog, uint vers, int proc, RpcMessageType type, uint serial, RpcStatus status,
        ReadOnlySpan<byte> payload = default, int? nfds = null)
    {
        var w = new TXdrWriter();
        int len = 4 + RpcHeader.Size + (nfds is null ? 0 : 4) + payload.Length;
        w.UInt((uint)len);
        new RpcHeader(prog, vers, proc, type, serial, status).Write(w);
        if (nfds is { } n) w.Int(n);
        w.Raw(payload);
        return w.ToArray();
    }

    public static byte[] Call(int proc, uint serial, ReadOnlySpan<byte> payload = default, uint prog = LockProgram, uint vers = 1)
        => Build(prog, vers, proc, RpcMessageType.Call, serial, RpcStatus.Ok, payload);

    /// <summary>What libvirt's server sends for a successful call with no result.</summary>
    public static byte[] OkReply(int proc, uint serial, uint prog = LockProgram, uint vers = 1)
        => Build(prog, vers, proc, RpcMessageType.Reply, serial, RpcStatus.Ok);

    /// <summary>An error reply with a virReportError(VIR_ERR_RPC, ...) error of the RPC layer.</summary>
    public static byte[] RpcErrorReply(uint prog, uint vers, int proc, uint serial, string message)
        => Build(prog, vers, proc, RpcMessageType.Reply, serial, RpcStatus.Error,
            new RpcError(39, 7, message, 2, null, "%s", message, null, -1, -1, null).Encode());

    public static byte[] Register(string name = "vm")
        => new TXdrWriter().OpaqueFixed(new byte[16]).String(name).UInt(1).UInt(4242).UInt(0).ToArray();

    public static byte[] CreateResource(string path)
        => new TXdrWriter().String(path).String("res").UInt(0).ToArray();
}
