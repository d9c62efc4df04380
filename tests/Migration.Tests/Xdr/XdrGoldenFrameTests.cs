using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Libvirt.Tests.Infrastructure;
using Libvirt.Tests.LockClient;
using Libvirt.Xdr;
using Xunit;

namespace Libvirt.Tests.Xdr;

/// <summary>
/// Frames captured from libvirt's own lock client (lockd.so through tests/LockClient) at a
/// listener standing in for virtlockd's socket, which answers every call OK: each decodes
/// with the generated header and argument types to exactly what the client was told to send.
/// </summary>
public class XdrGoldenFrameTests
{
    private sealed record Frame(int Connection, virNetMessageHeader Header, byte[] Payload);

    private static async Task ServeAsync(Socket s, int connection, List<Frame> frames)
    {
        using var stream = new NetworkStream(s, ownsSocket: true);
        var len = new byte[4];
        while (true)
        {
            try { await stream.ReadExactlyAsync(len); }
            catch (EndOfStreamException) { return; }
            catch (IOException) { return; }
            int n = BinaryPrimitives.ReadInt32BigEndian(len);
            Assert.InRange(n, 28, 1 << 20);
            var body = new byte[n - 4];
            await stream.ReadExactlyAsync(body);
            Assert.Equal(XdrError.None, XdrCodec.Decode(body, out virNetMessageHeader h, out int hl));
            Assert.Equal(24, hl);
            lock (frames) frames.Add(new Frame(connection, h, body[hl..]));
            // the reply: same program, version, procedure and serial, REPLY, OK, no payload
            var reply = h;
            reply.type = virNetMessageType.VIR_NET_REPLY;
            reply.status = virNetMessageStatus.VIR_NET_OK;
            var buf = new byte[28];
            BinaryPrimitives.WriteInt32BigEndian(buf, 28);
            Assert.Equal(XdrError.None, XdrCodec.Encode(reply, buf.AsSpan(4), out _));
            await stream.WriteAsync(buf);
        }
    }

    [Fact]
    public async Task LockClientCallsDecodeToWhatTheClientSent()
    {
        await using var sb = await Sandbox.CreateAsync();
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sb.HostPath("/run/libvirt/virtlockd-sock")));
        listener.Listen(8);
        var frames = new List<Frame>();
        using var cts = new CancellationTokenSource();
        var accept = Task.Run(async () =>
        {
            var conns = new List<Task>();
            try
            {
                for (int i = 0; ; i++)
                    conns.Add(ServeAsync(await listener.AcceptAsync(cts.Token), i, frames));
            }
            catch (OperationCanceledException) { }
            await Task.WhenAll(conns);
        });

        var lsDir = Path.Combine(sb.TempDir, "leases");
        var cfgDir = Path.Combine(sb.TempDir, "cfg");
        Directory.CreateDirectory(cfgDir);
        File.WriteAllText(Path.Combine(cfgDir, "qemu-lockd.conf"), $"file_lockspace_dir = \"{lsDir}\"\n");
        var disk = sb.WriteTempFile("disk.img", "");
        const string uuid = "00112233445566778899AABBCCDDEEFF";
        var client = await LockClientDriver.StartAsync(sb, "golden-vm", 7, cfgDir, uuid);
        await client.OkAsync($"disk {disk}");
        await client.OkAsync("acquire");
        await client.QuitAsync();
        cts.Cancel();
        listener.Close();
        await accept.WaitAsync(TimeSpan.FromSeconds(10));

        Frame[] got;
        lock (frames) got = frames.ToArray();
        Assert.All(got, f =>
        {
            Assert.Equal(VirLockSpaceProtocolProgram.Program, f.Header.prog);
            Assert.Equal(VirLockSpaceProtocolProgram.Version, f.Header.vers);
            Assert.Equal(virNetMessageType.VIR_NET_CALL, f.Header.type);
            Assert.Equal(virNetMessageStatus.VIR_NET_OK, f.Header.status);
        });
        string Str(ReadOnlyMemory<byte> m) => Encoding.UTF8.GetString(m.Span);
        T Args<T>(Frame f) where T : struct, IXdrCodec<T>
        {
            Assert.Equal(XdrError.None, XdrCodec.Decode(f.Payload, out T v, out int n));
            Assert.Equal(f.Payload.Length, n);
            return v;
        }

        // plugin start: CREATE_LOCKSPACE for file_lockspace_dir
        var create = Assert.Single(got, f => f.Header.proc == (int)virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_LOCKSPACE);
        Assert.Equal(lsDir, Str(Args<virLockSpaceProtocolCreateLockSpaceArgs>(create).path));

        // acquire: REGISTER then ACQUIRE_RESOURCE on one connection, serials counting up
        var register = Assert.Single(got, f => f.Header.proc == (int)virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_REGISTER);
        var r = Args<virLockSpaceProtocolRegisterArgs>(register);
        Assert.Equal(uuid, Convert.ToHexString(r.owner.uuid.Span));
        Assert.Equal("golden-vm", Str(r.owner.name));
        Assert.Equal(7u, r.owner.id);
        Assert.Equal((uint)client.Pid, r.owner.pid);
        Assert.Equal(0u, r.flags);

        var acquire = Assert.Single(got, f => f.Header.proc == (int)virLockSpaceProtocolProcedure.VIR_LOCK_SPACE_PROTOCOL_PROC_ACQUIRE_RESOURCE);
        Assert.Equal(register.Connection, acquire.Connection);
        Assert.True(acquire.Header.serial > register.Header.serial);
        var a = Args<virLockSpaceProtocolAcquireResourceArgs>(acquire);
        Assert.Equal(lsDir, Str(a.path));
        Assert.Equal(Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(disk))).ToLowerInvariant(), Str(a.name));
        Assert.Equal((uint)LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_ACQUIRE_RESOURCE_AUTOCREATE, a.flags);

        // and every captured frame's arguments decode in C# exactly as rpcgen decodes them
        foreach (var f in got)
        {
            var type = f.Header.proc switch
            {
                1 => "virLockSpaceProtocolRegisterArgs",
                6 => "virLockSpaceProtocolAcquireResourceArgs",
                8 => "virLockSpaceProtocolCreateLockSpaceArgs",
                int p => throw new Xunit.Sdk.XunitException($"unexpected procedure {p}"),
            };
            var c = RpcgenFilters.RoundTrip(type, f.Payload);
            Assert.True(c.Decoded);
            Assert.Equal(Convert.ToHexString(f.Payload), Convert.ToHexString(c.Output));
        }
    }
}
