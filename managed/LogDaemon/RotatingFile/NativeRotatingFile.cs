using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.LogDaemon.RotatingFile;

/// <summary>libvirt's own virRotatingFileWriter/Reader from libvirt.so.0.</summary>
public sealed unsafe class NativeRotatingFileFactory : IRotatingFileFactory
{
    public IRotatingFileWriter? NewWriter(string path, long maxLength, ulong maxBackups, bool truncate, uint mode)
    {
        using var p = new NativeUtf8(path);
        var w = virRotatingFileWriterNew(p, (nint)maxLength, (nuint)maxBackups, (byte)(truncate ? 1 : 0), mode);
        return w == null ? null : new Writer(w, path);
    }

    public IRotatingFileReader? NewReader(string path, ulong maxBackups)
    {
        using var p = new NativeUtf8(path);
        var r = virRotatingFileReaderNew(p, (nuint)maxBackups);
        return r == null ? null : new Reader(r);
    }

    private sealed class Writer(virRotatingFileWriter* handle, string path) : IRotatingFileWriter
    {
        private virRotatingFileWriter* _handle = handle;

        public string Path { get; } = path;
        public ulong INode => virRotatingFileWriterGetINode(_handle);
        public long Offset => virRotatingFileWriterGetOffset(_handle);

        public long Append(byte* data, nuint length) => virRotatingFileWriterAppend(_handle, (sbyte*)data, length);

        public void Dispose()
        {
            if (_handle != null)
            {
                virRotatingFileWriterFree(_handle);
                _handle = null;
            }
        }
    }

    private sealed class Reader(virRotatingFileReader* handle) : IRotatingFileReader
    {
        private virRotatingFileReader* _handle = handle;

        public int Seek(ulong inode, long offset) => virRotatingFileReaderSeek(_handle, (nuint)inode, (nint)offset);

        public long Consume(byte* buffer, nuint length) => virRotatingFileReaderConsume(_handle, (sbyte*)buffer, length);

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
