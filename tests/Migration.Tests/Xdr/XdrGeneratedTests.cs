using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Libvirt.Util;
using Libvirt.Xdr;
using Xunit;

namespace Libvirt.Tests.Xdr;

/// <summary>The generated XDR (interop/Libvirt.Xdr/Generated) is current, and its typed API:
/// values built in C# encode to what rpcgen decodes, bounds are enforced on encode, nothing
/// is allocated or copied on the hot path, and the program dispatch works.</summary>
public class XdrGeneratedTests
{
    private static byte[] U(string s) => Encoding.UTF8.GetBytes(s);
    private static string S(ReadOnlyMemory<byte> m) => Encoding.UTF8.GetString(m.Span);
    private static string Hex(ReadOnlySpan<byte> b) => Convert.ToHexString(b);

    [Fact]
    public void RegeneratingYieldsNoDiff()
    {
        string root = RpcgenFilters.Root;
        string xdrgen = Directory.GetFiles(Path.Combine(root, "interop", "XdrGen", "bin"), "xdrgen.dll", SearchOption.AllDirectories)
            .OrderByDescending(File.GetLastWriteTimeUtc).First();
        var psi = new ProcessStartInfo("dotnet", $"\"{xdrgen}\" --repo \"{root}\" --check")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(120_000), "xdrgen --check hung");
        Assert.True(p.ExitCode == 0, $"xdrgen --check exited {p.ExitCode}:\n{o.Result}\n{e.Result}");
    }

    /// <summary>C# value → C# encode (span and buffer writer agree) → rpcgen decode → rpcgen
    /// encode is the same bytes; C# decode gives the value back.</summary>
    private static byte[] EncodeBothWays<T>(in T value, string type) where T : struct, IXdrCodec<T>
    {
        var buf = new byte[value.EncodedSize()];
        Assert.Equal(XdrError.None, XdrCodec.Encode(value, buf, out int written));
        Assert.Equal(buf.Length, written);
        var abw = new ArrayBufferWriter<byte>();
        Assert.Equal(XdrError.None, XdrCodec.Encode(value, abw));
        Assert.Equal(Hex(buf), Hex(abw.WrittenSpan));
        var c = RpcgenFilters.RoundTrip(type, buf);
        Assert.True(c.Decoded && c.Encoded, $"rpcgen rejects C#'s {type}: {Hex(buf)}");
        Assert.Equal(buf.Length, c.Consumed);
        Assert.Equal(Hex(buf), Hex(c.Output));
        return buf;
    }

    [Fact]
    public void RandomRegisterArgsGoThroughRpcgenAndBack()
    {
        var gen = from uuid in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), 16)
                  from name in Gen.ArrayOf(Gen.Choose(1, 255).Select(i => (byte)i))
                  from id in Gen.Choose(int.MinValue, int.MaxValue)
                  from pid in Gen.Choose(int.MinValue, int.MaxValue)
                  from flags in Gen.Choose(int.MinValue, int.MaxValue)
                  select new virLockSpaceProtocolRegisterArgs
                  {
                      owner = new virLockSpaceProtocolOwner { uuid = uuid, name = name, id = (uint)id, pid = (uint)pid },
                      flags = (uint)flags,
                  };
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200).WithQuietOnSuccess(true), Prop.ForAll(Arb.From(gen), v =>
        {
            var bytes = EncodeBothWays(v, "virLockSpaceProtocolRegisterArgs");
            Assert.Equal(XdrError.None, XdrCodec.Decode(bytes, out virLockSpaceProtocolRegisterArgs back, out int consumed));
            Assert.Equal(bytes.Length, consumed);
            Assert.Equal(Hex(v.owner.uuid.Span), Hex(back.owner.uuid.Span));
            Assert.Equal(Hex(v.owner.name.Span), Hex(back.owner.name.Span));
            Assert.Equal((v.owner.id, v.owner.pid, v.flags), (back.owner.id, back.owner.pid, back.flags));
        }));
    }

    [Fact]
    public void TypedParamsOfEveryKindAndClientListsGoThroughRpcgen()
    {
        var ps = new virAdminProtocolTypedParam[]
        {
            new() { field = U("maxWorkers"), value = new() { type = 1, i = -5 } },
            new() { field = U("minWorkers"), value = new() { type = 2, ui = 7 } },
            new() { field = U("l"), value = new() { type = 3, l = long.MinValue } },
            new() { field = U("ul"), value = new() { type = 4, ul = ulong.MaxValue } },
            new() { field = U("d"), value = new() { type = 5, d = 3.25 } },
            new() { field = U("b"), value = new() { type = 6, b = 1 } },
            new() { field = U("sock_addr"), value = new() { type = 7, s = U("127.0.0.1;0") } },
        };
        var args = new virAdminProtocolServerSetThreadpoolParametersArgs { srv = new() { name = U("virtlockd") }, @params = ps, flags = 0 };
        var bytes = EncodeBothWays(args, "virAdminProtocolServerSetThreadpoolParametersArgs");
        Assert.Equal(XdrError.None, XdrCodec.Decode(bytes, out virAdminProtocolServerSetThreadpoolParametersArgs back, out _));
        Assert.Equal(7, back.@params.Count);
        int i = 0;
        foreach (var p in back.@params)
        {
            Assert.Equal(S(ps[i].field), S(p.field));
            Assert.Equal(ps[i].value.type, p.value.type);
            i++;
        }

        var clients = Enumerable.Range(1, 3).Select(n => new virAdminProtocolClient
        {
            srv = new() { name = U("admin") }, id = (ulong)n, timestamp = 1700000000 + n, transport = 0,
        }).ToArray();
        var ret = new virAdminProtocolServerListClientsRet { clients = clients, ret = 3 };
        bytes = EncodeBothWays(ret, "virAdminProtocolServerListClientsRet");
        Assert.Equal(XdrError.None, XdrCodec.Decode(bytes, out virAdminProtocolServerListClientsRet r2, out _));
        Assert.Equal(new ulong[] { 1, 2, 3 }, r2.clients.ToArrayOf(c => c.id));
    }

    [Fact]
    public void RemoteErrorWithAndWithoutOptionalFields()
    {
        var full = new virNetMessageError
        {
            code = 1, domain = 7, message = U("internal error: boom"), level = 2,
            dom = new virNetMessageNonnullDomain { name = U("vm"), uuid = new byte[16], id = 3 },
            str1 = U("internal error: %s"), str2 = U("boom"), str3 = null, int1 = -1, int2 = 0, net = null,
        };
        var bytes = EncodeBothWays(full, "virNetMessageError");
        Assert.Equal(XdrError.None, XdrCodec.Decode(bytes, out virNetMessageError back, out _));
        Assert.Equal("internal error: boom", S(back.message!.Value));
        Assert.Null(back.str3);
        Assert.Equal("vm", S(back.dom!.Value.name));
        EncodeBothWays(new virNetMessageError { code = 38 }, "virNetMessageError");
    }

    [Fact]
    public void BoundsAreEnforcedOnEncode()
    {
        var tooLong = new virLockSpaceProtocolNewArgs { path = new byte[LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_STRING_MAX + 1] };
        tooLong.path = Enumerable.Repeat((byte)'a', LockProtocolConstants.VIR_LOCK_SPACE_PROTOCOL_STRING_MAX + 1).ToArray();
        Assert.Equal(XdrError.TooLong, XdrCodec.Encode(tooLong, new byte[70000], out _));
        var atMax = new virLockSpaceProtocolNewArgs { path = tooLong.path[..^1] };
        Assert.Equal(XdrError.None, XdrCodec.Encode(atMax, new byte[70000], out int w));
        Assert.Equal(4 + 65536 + 4, w);

        var badUuid = new virLockSpaceProtocolOwner { uuid = new byte[15], name = U("x") };
        Assert.Equal(XdrError.BadLength, XdrCodec.Encode(badUuid, new byte[100], out _));

        var ok = new virLockSpaceProtocolOwner { uuid = new byte[16], name = U("x") };
        Assert.Equal(XdrError.NoSpace, XdrCodec.Encode(ok, new byte[20], out _));

        var badUnion = new virAdminProtocolTypedParamValue { type = 8 };
        Assert.Equal(XdrError.BadDiscriminant, XdrCodec.Encode(badUnion, new byte[100], out _));

        var tooMany = new virAdminProtocolServerGetThreadpoolParametersRet
        {
            @params = Enumerable.Repeat(new virAdminProtocolTypedParam { field = U("f"), value = new() { type = 1 } },
                AdminProtocolConstants.VIR_ADMIN_PROTOCOL_SERVER_THREADPOOL_PARAMETERS_MAX + 1).ToArray(),
        };
        Assert.Equal(XdrError.TooLong, XdrCodec.Encode(tooMany, new byte[10000], out _));
    }

    /// <summary>rpcgen's xdr_string takes a string with a NUL inside; what C then holds is the
    /// part before it, and that is the decoded value here too (and what rpcgen encodes again).</summary>
    [Fact]
    public void StringsAreWhatCSeesUpToTheFirstNul()
    {
        byte[] wire = [0, 0, 0, 5, (byte)'a', (byte)'b', 0, (byte)'c', (byte)'d', 0, 0, 0];
        var r = new XdrReader(wire);
        Assert.Equal(XdrError.None, virLockSpaceProtocolNonNullString.Decode(ref r, out var s));
        Assert.Equal("ab", S(s));
        var c = RpcgenFilters.RoundTrip("virLockSpaceProtocolNonNullString", wire);
        Assert.True(c.Decoded);
        var w = new byte[16];
        var writer = new XdrWriter(w);
        Assert.Equal(XdrError.None, virLockSpaceProtocolNonNullString.Encode(ref writer, s));
        Assert.Equal(Hex(c.Output), Hex(w.AsSpan(0, writer.Position)));
    }

    /// <summary>Decoding and encoding a call's arguments allocates nothing, and the decoded
    /// strings are slices of the input buffer.</summary>
    [Fact]
    public void DecodeAndEncodeAllocateNothingAndStringsAreSlicesOfTheInput()
    {
        var args = new virLockSpaceProtocolAcquireResourceArgs { path = U("/var/lib/libvirt/lockd/files"), name = U("0123456789abcdef"), flags = 2 };
        var wire = new byte[args.EncodedSize()];
        XdrCodec.Encode(args, wire, out _);
        var input = new ReadOnlyMemory<byte>(wire);
        var output = new byte[wire.Length];
        for (int i = 0; i < 10; i++) Run();
        Assert.Equal(0, Infrastructure.AllocationMeter.BytesOnThisThread(() =>
        {
            for (int i = 0; i < 1000; i++) Run();
        }));

        XdrCodec.Decode(input, out virLockSpaceProtocolAcquireResourceArgs d, out _);
        Assert.True(MemoryMarshal.TryGetArray(d.name, out var seg));
        Assert.Same(wire, seg.Array);
        Assert.Equal(4 + 28 + 4, seg.Offset);

        void Run()
        {
            if (XdrCodec.Decode(input, out virLockSpaceProtocolAcquireResourceArgs a, out _) != XdrError.None) throw new Exception();
            if (XdrCodec.Encode(a, output, out _) != XdrError.None) throw new Exception();
        }
    }

    private sealed class FakeLockProgram : IVirLockSpaceProtocolProgram<List<string>>
    {
        private static VirResult Log(List<string> calls, string s) { calls.Add(s); return VirResult.Success; }
        public VirResult Register(List<string> c, XdrCallContext call, in virLockSpaceProtocolRegisterArgs a) => Log(c, $"register {S(a.owner.name)} {a.owner.id}");
        public VirResult Restrict(List<string> c, XdrCallContext call, in virLockSpaceProtocolRestrictArgs a) => Log(c, "restrict");
        public VirResult New(List<string> c, XdrCallContext call, in virLockSpaceProtocolNewArgs a) => Log(c, "new");
        public VirResult CreateResource(List<string> c, XdrCallContext call, in virLockSpaceProtocolCreateResourceArgs a) => Log(c, "create");
        public VirResult DeleteResource(List<string> c, XdrCallContext call, in virLockSpaceProtocolDeleteResourceArgs a) => Log(c, "delete");
        public VirResult AcquireResource(List<string> c, XdrCallContext call, in virLockSpaceProtocolAcquireResourceArgs a)
            => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.OperationInvalid, $"no {S(a.name)}");
        public VirResult ReleaseResource(List<string> c, XdrCallContext call, in virLockSpaceProtocolReleaseResourceArgs a) => Log(c, "release");
        public VirResult CreateLockSpace(List<string> c, XdrCallContext call, in virLockSpaceProtocolCreateLockSpaceArgs a) => Log(c, $"createlockspace {S(a.path)}");
    }

    [Fact]
    public void ProgramConstantsAndDispatch()
    {
        Assert.Equal(0xEA7BEEFu, VirLockSpaceProtocolProgram.Program);
        Assert.Equal(1u, VirLockSpaceProtocolProgram.Version);
        Assert.Equal(0x87539319u, VirLogManagerProtocolProgram.Program);
        Assert.Equal(0x06900690u, VirAdminProtocolProgram.Program);
        Assert.Equal(0x6b656570u, VirKeepAliveProgram.Program);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8], VirLockSpaceProtocolProgram.Procedures.ToArray());
        Assert.Equal(19, VirAdminProtocolProgram.Procedures.Length);
        Assert.Equal("VIR_LOCK_SPACE_PROTOCOL_PROC_CREATE_LOCKSPACE", VirLockSpaceProtocolProgram.Name(8));

        var impl = new FakeLockProgram();
        var calls = new List<string>();
        var call = new XdrCallContext();
        var reg = new virLockSpaceProtocolRegisterArgs { owner = new() { uuid = new byte[16], name = U("vm1"), id = 4, pid = 99 } };
        var buf = new byte[reg.EncodedSize()];
        XdrCodec.Encode(reg, buf, out _);
        Assert.Equal(XdrDispatchStatus.Ok, VirLockSpaceProtocolProgram.Dispatch(impl, calls, call, 1, buf, out var err, out _));
        Assert.Null(err);
        Assert.Equal("register vm1 4", calls.Single());
        Assert.Equal(0, call.Reply.WrittenCount);
        Assert.Equal(XdrDispatchStatus.BadArgs, VirLockSpaceProtocolProgram.Dispatch(impl, calls, call, 1, buf.AsMemory(0, 10), out _, out var xe));
        Assert.Equal(XdrError.Truncated, xe);
        Assert.Equal(XdrDispatchStatus.UnknownProcedure, VirLockSpaceProtocolProgram.Dispatch(impl, calls, call, 9, buf, out _, out _));

        var acq = new virLockSpaceProtocolAcquireResourceArgs { path = U(""), name = U("disk"), flags = 0 };
        buf = new byte[acq.EncodedSize()];
        XdrCodec.Encode(acq, buf, out _);
        Assert.Equal(XdrDispatchStatus.Failed, VirLockSpaceProtocolProgram.Dispatch(impl, calls, call, 6, buf, out err, out _));
        Assert.Equal("Requested operation is not valid: no disk", err!.Message);
    }
}

internal static class XdrArrayExtensions
{
    public static TOut[] ToArrayOf<T, TOut>(this XdrArray<T> a, Func<T, TOut> f) where T : struct, IXdrCodec<T>
    {
        var list = new List<TOut>();
        foreach (var x in a) list.Add(f(x));
        return list.ToArray();
    }
}
