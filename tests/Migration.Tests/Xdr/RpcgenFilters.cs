using System.Runtime.InteropServices;

namespace Libvirt.Tests.Xdr;

/// <summary>
/// rpcgen's XDR filters for every protocol file, from artifacts/native/libvirxdrtest.so
/// (native/xdrtest: the filters xdr_&lt;type&gt; rpcgen wrote, and one decode-then-encode
/// through libtirpc's xdrmem).
/// </summary>
internal static unsafe class RpcgenFilters
{
    public static readonly string Root = FindRoot();
    public static readonly string LibraryPath = Path.Combine(Root, "artifacts", "native", "libvirxdrtest.so");
    private static readonly nint s_lib = NativeLibrary.Load(LibraryPath);
    private static readonly delegate* unmanaged<void*, byte*, uint, uint*, byte*, uint, uint*, int> s_roundTrip =
        (delegate* unmanaged<void*, byte*, uint, uint*, byte*, uint, uint*, int>)NativeLibrary.GetExport(s_lib, "virxdrtestRoundTrip");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Migration.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found");
    }

    public static bool HasFilter(string type) => NativeLibrary.TryGetExport(s_lib, "xdr_" + type, out _);

    /// <summary>What rpcgen's filter for <paramref name="type"/> makes of <paramref name="input"/>:
    /// whether it decoded, how far it read, and the decoded value encoded again.</summary>
    public static (bool Decoded, int Consumed, bool Encoded, byte[] Output) RoundTrip(string type, ReadOnlySpan<byte> input)
    {
        var filter = (void*)NativeLibrary.GetExport(s_lib, "xdr_" + type);
        var output = new byte[input.Length + 64];
        uint consumed, written;
        int rc;
        fixed (byte* i = input)
        fixed (byte* o = output)
            rc = s_roundTrip(filter, i, (uint)input.Length, &consumed, o, (uint)output.Length, &written);
        return (rc != 0, (int)consumed, rc == 1, output.AsSpan(0, (int)written).ToArray());
    }
}
