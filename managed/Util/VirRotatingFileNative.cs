using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>libvirt's own virRotatingFileWriter/Reader from libvirt.so.0
/// behind the contract.</summary>
public sealed unsafe class VirRotatingFileNativeFactory : IVirRotatingFileFactory
{
    public string Name => "native";

    public VirResult<IVirRotatingFileWriter> NewWriter(string path, long maxLength, ulong maxBackups, bool truncate, uint mode)
    {
        using var p = new NativeUtf8(path);
        var w = virRotatingFileWriterNew(p, (nint)maxLength, (nuint)maxBackups, (byte)(truncate ? 1 : 0), mode);
        return w == null ? VirErrorNative.TakeLast() : new Writer(w, path);
    }

    public VirResult<IVirRotatingFileReader> NewReader(string path, ulong maxBackups)
    {
        using var p = new NativeUtf8(path);
        var r = virRotatingFileReaderNew(p, (nuint)maxBackups);
        return r == null ? VirErrorNative.TakeLast() : new Reader(r);
    }

    private sealed class Writer(virRotatingFileWriter* handle, string path) : IVirRotatingFileWriter
    {
        private virRotatingFileWriter* _handle = handle;

        public string Path { get; } = path;
        public ulong INode => virRotatingFileWriterGetINode(_handle);
        public long Offset => virRotatingFileWriterGetOffset(_handle);

        public VirResult<long> Append(ReadOnlySpan<byte> data)
        {
            fixed (byte* p = data)
            {
                long n = virRotatingFileWriterAppend(_handle, (sbyte*)p, (nuint)data.Length);
                return n < 0 ? VirErrorNative.TakeLast() : n;
            }
        }

        public void Dispose()
        {
            if (_handle != null)
            {
                virRotatingFileWriterFree(_handle);
                _handle = null;
            }
        }
    }

    private sealed class Reader(virRotatingFileReader* handle) : IVirRotatingFileReader
    {
        private virRotatingFileReader* _handle = handle;

        public VirResult Seek(ulong inode, long offset)
            => virRotatingFileReaderSeek(_handle, (nuint)inode, (nint)offset) < 0 ? VirErrorNative.TakeLast() : VirResult.Success;

        public VirResult<long> Consume(Span<byte> buffer)
        {
            fixed (byte* p = buffer)
            {
                long n = virRotatingFileReaderConsume(_handle, (sbyte*)p, (nuint)buffer.Length);
                return n < 0 ? VirErrorNative.TakeLast() : n;
            }
        }

        public void Dispose()
        {
            if (_handle != null)
            {
                virRotatingFileReaderFree(_handle);
                _handle = null;
            }
        }
    }
}
