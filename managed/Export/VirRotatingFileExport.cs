using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Libvirt.Util;

namespace Libvirt.Export;

/// <summary>A writer as C holds it: the managed twin, and the path as the C
/// string virRotatingFileWriterGetPath hands out (owned here, as
/// file->basepath is by libvirt's object).</summary>
internal sealed unsafe class VirRotatingFileWriterExported(IVirRotatingFileWriter writer, byte* path) : IDisposable
{
    public IVirRotatingFileWriter Writer { get; } = writer;
    public byte* Path { get; private set; } = path;

    public void Dispose()
    {
        Writer.Dispose();
        VirExport.Free(Path);
        Path = null;
    }
}

/// <summary>
/// virrotatingfile.h's functions (src/util/virrotatingfile.c), exported at
/// LIBVIRT_PRIVATE_9.0.0 over the managed rotating file twin, with libvirt
/// 9.0.0's signatures, return values and last error.
/// </summary>
internal static unsafe class VirRotatingFileExport
{
    private const VirErrorDomain Domain = VirErrorDomain.None; // virrotatingfile.c reports from VIR_FROM_NONE

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterNew", CallConvs = [typeof(CallConvCdecl)])]
    public static void* WriterNew(byte* path, long maxlen, nuint maxbackup, byte trunc, uint mode)
    {
        const string Function = "virRotatingFileWriterNew";
        try
        {
            var r = new VirRotatingFileManagedFactory().NewWriter(VirExport.String(path) ?? "", maxlen, maxbackup, trunc != 0, mode);
            if (!r.TryGet(out var writer, out var error))
            {
                VirExport.Raise(error!, Function);
                return null;
            }
            return VirExport.NewOpaque(new VirRotatingFileWriterExported(writer, VirExport.StrDup(VirExport.Bytes(path))));
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterGetPath", CallConvs = [typeof(CallConvCdecl)])]
    public static byte* WriterGetPath(void* file)
    {
        try
        {
            return VirExport.Target<VirRotatingFileWriterExported>(file) is { } w ? w.Path : null;
        }
        catch
        {
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterGetINode", CallConvs = [typeof(CallConvCdecl)])]
    public static ulong WriterGetINode(void* file)
    {
        try
        {
            return VirExport.Target<VirRotatingFileWriterExported>(file) is { } w ? w.Writer.INode : 0;
        }
        catch
        {
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterGetOffset", CallConvs = [typeof(CallConvCdecl)])]
    public static long WriterGetOffset(void* file)
    {
        try
        {
            return VirExport.Target<VirRotatingFileWriterExported>(file) is { } w ? w.Writer.Offset : 0;
        }
        catch
        {
            return 0;
        }
    }

    /// <summary>The bytes written (all of them), or -1.</summary>
    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterAppend", CallConvs = [typeof(CallConvCdecl)])]
    public static nint WriterAppend(void* file, byte* buf, nuint len)
    {
        const string Function = "virRotatingFileWriterAppend";
        try
        {
            if (VirExport.Target<VirRotatingFileWriterExported>(file) is not { } w)
            {
                VirExport.Raise(VirExport.NullObject(Domain, Function), Function);
                return -1;
            }
            long total = 0;
            // spans are int-sized; size_t lengths go in slices
            while (len > 0)
            {
                int n = (int)Math.Min(len, (nuint)int.MaxValue);
                var r = w.Writer.Append(new ReadOnlySpan<byte>(buf, n));
                if (!r.TryGet(out long wrote, out var error))
                {
                    VirExport.Raise(error!, Function);
                    return -1;
                }
                total += wrote;
                buf += n;
                len -= (nuint)n;
            }
            return (nint)total;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return -1;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileWriterFree", CallConvs = [typeof(CallConvCdecl)])]
    public static void WriterFree(void* file)
    {
        try
        {
            VirExport.FreeOpaque(file);
        }
        catch
        {
            // void in C
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileReaderNew", CallConvs = [typeof(CallConvCdecl)])]
    public static void* ReaderNew(byte* path, nuint maxbackup)
    {
        const string Function = "virRotatingFileReaderNew";
        try
        {
            var r = new VirRotatingFileManagedFactory().NewReader(VirExport.String(path) ?? "", maxbackup);
            if (!r.TryGet(out var reader, out var error))
            {
                VirExport.Raise(error!, Function);
                return null;
            }
            return VirExport.NewOpaque(reader);
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileReaderSeek", CallConvs = [typeof(CallConvCdecl)])]
    public static int ReaderSeek(void* file, ulong inode, long offset)
    {
        const string Function = "virRotatingFileReaderSeek";
        try
        {
            if (VirExport.Target<IVirRotatingFileReader>(file) is not { } reader)
            {
                VirExport.Raise(VirExport.NullObject(Domain, Function), Function);
                return -1;
            }
            var r = reader.Seek(inode, offset);
            if (r.Error is { } error)
            {
                VirExport.Raise(error, Function);
                return -1;
            }
            return 0;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return -1;
        }
    }

    /// <summary>The bytes read (0 at the end), or -1.</summary>
    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileReaderConsume", CallConvs = [typeof(CallConvCdecl)])]
    public static nint ReaderConsume(void* file, byte* buf, nuint len)
    {
        const string Function = "virRotatingFileReaderConsume";
        try
        {
            if (VirExport.Target<IVirRotatingFileReader>(file) is not { } reader)
            {
                VirExport.Raise(VirExport.NullObject(Domain, Function), Function);
                return -1;
            }
            var r = reader.Consume(new Span<byte>(buf, (int)Math.Min(len, (nuint)int.MaxValue)));
            if (!r.TryGet(out long got, out var error))
            {
                VirExport.Raise(error!, Function);
                return -1;
            }
            return (nint)got;
        }
        catch (Exception e)
        {
            VirExport.Raise(e, Domain, Function);
            return -1;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "virRotatingFileReaderFree", CallConvs = [typeof(CallConvCdecl)])]
    public static void ReaderFree(void* file)
    {
        try
        {
            VirExport.FreeOpaque(file);
        }
        catch
        {
            // void in C
        }
    }
}
