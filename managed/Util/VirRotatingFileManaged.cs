using System.Runtime.InteropServices;
using Libvirt.Interop;
using Microsoft.Win32.SafeHandles;
using static Libvirt.Util.Libc.RotatingFile;

namespace Libvirt.Util;

/// <summary>The managed twin of libvirt's virRotatingFileWriter/Reader
/// (src/util/virrotatingfile.c): the same system calls in the same order, so
/// the files on disk, the values returned and the errors reported are C's.</summary>
public sealed class VirRotatingFileManagedFactory : IVirRotatingFileFactory
{
    public string Name => VirImplementations.Managed;

    public VirResult<IVirRotatingFileWriter> NewWriter(string path, long maxLength, ulong maxBackups, bool truncate, uint mode)
        => VirRotatingFileWriterManaged.Open(path, maxLength, maxBackups, truncate, mode);

    public VirResult<IVirRotatingFileReader> NewReader(string path, ulong maxBackups)
        => VirRotatingFileReaderManaged.Open(path, maxBackups);
}

/// <summary>What the writer and the reader share: the backup limit, and
/// paths as the C code sees them.</summary>
internal static class VirRotatingFilePaths
{
    /// <summary>VIR_MAX_MAX_BACKUP.</summary>
    public const ulong MaxMaxBackup = 32;

    /// <summary>VIR_ERR_CONFIG_UNSUPPORTED; not (yet) in <see cref="VirErrorCode"/>.</summary>
    private const int ErrConfigUnsupported = 67;
    private const string ConfigUnsupportedFormat = "unsupported configuration: %s";

    /// <summary>The backup count as the size_t C receives: a negative int
    /// becomes a huge count, refused like any other above the limit.</summary>

    /// <summary>As virReportError(VIR_ERR_CONFIG_UNSUPPORTED, ...) from VIR_FROM_NONE.</summary>
    public static VirError TooManyBackups(ulong maxBackups)
    {
        string detail = $"Max backup {maxBackups} must be less than or equal to {MaxMaxBackup}";
        return new VirError(ErrConfigUnsupported, (int)VirErrorDomain.None,
            ConfigUnsupportedFormat.Replace("%s", detail), Str1: ConfigUnsupportedFormat, Str2: detail);
    }

    public static VirError System(int errno, string detail) => VirError.System(VirErrorDomain.None, errno, detail);

    /// <summary>The path C works with: a string reaches it as a C string, so
    /// it ends at the first NUL.</summary>
    public static string AsCPath(string path)
    {
        int nul = path.IndexOf('\0');
        return nul < 0 ? path : path[..nul];
    }

    /// <summary>"path" for <paramref name="index"/> -1, "path.index" otherwise
    /// (C's "%s.%zu").</summary>
    public static string Name(string basePath, int index) => index < 0 ? basePath : $"{basePath}.{index}";

    /// <summary>NUL-terminated bytes, ready for a libc call; a path decoded
    /// from C bytes that were not UTF-8 gets those bytes back (LosslessUtf8).</summary>
    public static byte[] Encode(string path) => LosslessUtf8.EncodeNulTerminated(path);
}

/// <summary>
/// Appends to path, renaming it to path.0 (and path.0 to path.1, ...) when the
/// next byte would pass the maximum length. Append is virtlogd's per-chunk
/// hot path: it allocates nothing unless it rotates or fails.
/// </summary>
internal sealed unsafe class VirRotatingFileWriterManaged : IVirRotatingFileWriter
{
    /// <summary>How far back from a cut the writer looks for a newline to end the file on.</summary>
    private const int LineBreakWindow = 80;

    private readonly string _cPath;
    // [0] is the path, [k + 1] the backup path.k; built once so rotation encodes nothing.
    private readonly byte[][] _paths;
    // size_t in C: a negative length compares as huge, so it never rotates.
    private readonly ulong _maxLength;
    private readonly int _maxBackups;
    private readonly uint _mode;

    private SafeFileHandle _fd;
    private ulong _inode;
    private long _offset;

    public string Path { get; }
    public ulong INode => _inode;
    public long Offset => _offset;

    private VirRotatingFileWriterManaged(string path, string cPath, ulong maxLength, int maxBackups, uint mode)
    {
        Path = path;
        _cPath = cPath;
        _maxLength = maxLength;
        _maxBackups = maxBackups;
        _mode = mode;
        _paths = new byte[maxBackups + 1][];
        for (int i = 0; i <= maxBackups; i++)
            _paths[i] = VirRotatingFilePaths.Encode(VirRotatingFilePaths.Name(cPath, i - 1));
        _fd = null!;
    }

    /// <summary>virRotatingFileWriterNew: checks the backup count, deletes
    /// the files first when <paramref name="truncate"/>, then opens path.</summary>
    public static VirResult<IVirRotatingFileWriter> Open(string path, long maxLength, ulong maxBackups, bool truncate, uint mode)
    {
        ulong backups = maxBackups;
        if (backups > VirRotatingFilePaths.MaxMaxBackup)
            return VirRotatingFilePaths.TooManyBackups(backups);

        var w = new VirRotatingFileWriterManaged(path, VirRotatingFilePaths.AsCPath(path), (ulong)maxLength, (int)backups, mode);
        if (truncate && w.DeleteAll() is { } deleteError)
            return deleteError;
        if (w.OpenCurrent() is { } openError)
            return openError;
        return new VirResult<IVirRotatingFileWriter>(w);
    }

    /// <summary>path, then path.0 .. path.(n-1); files already gone are fine.</summary>
    private VirError? DeleteAll()
    {
        for (int i = 0; i <= _maxBackups; i++)
        {
            fixed (byte* p = _paths[i])
            {
                if (unlink(p) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != ENOENT)
                        return VirRotatingFilePaths.System(errno, $"Unable to delete file {PathText(i)}");
                }
            }
        }
        return null;
    }

    /// <summary>Opens (creating) path for appending and takes its size and
    /// inode; the file open until now stays current on failure.</summary>
    private VirError? OpenCurrent()
    {
        int raw;
        fixed (byte* p = _paths[0])
            raw = open(p, O_CREAT | O_APPEND | O_WRONLY | Libc.O_CLOEXEC, _mode);
        if (raw < 0)
            return VirRotatingFilePaths.System(Marshal.GetLastPInvokeError(), $"Unable to open file: {_cPath}");

        var fd = new SafeFileHandle(raw, ownsHandle: true);
        long end = lseek(fd, 0, SEEK_END);
        if (end == -1)
        {
            int errno = Marshal.GetLastPInvokeError();
            fd.Dispose();
            return VirRotatingFilePaths.System(errno, $"Unable to determine current file offset: {_cPath}");
        }
        if (!TryFStatINode(fd, out ulong inode, out int statErrno))
        {
            fd.Dispose();
            return VirRotatingFilePaths.System(statErrno, $"Unable to determine current file inode: {_cPath}");
        }

        _fd?.Dispose();
        _fd = fd;
        _inode = inode;
        _offset = end;
        return null;
    }

    public VirResult<long> Append(ReadOnlySpan<byte> data)
    {
        long written = 0;
        while (!data.IsEmpty)
        {
            int chunk = data.Length;
            bool rotateNow = false;

            if (_maxLength != 0)
            {
                // off_t against size_t: C compares these unsigned.
                ulong offset = (ulong)_offset;
                if (offset > _maxLength)
                {
                    // Already past the limit (opened that way): start a new file.
                    rotateNow = true;
                    chunk = 0;
                }
                else if (offset + (ulong)chunk > _maxLength)
                {
                    chunk = (int)(_maxLength - offset);
                    // End this file after the last newline among the final
                    // bytes that fit, rather than splitting that line.
                    int window = Math.Min(chunk, LineBreakWindow);
                    int newline = data.Slice(chunk - window, window).LastIndexOf((byte)'\n');
                    if (newline >= 0)
                    {
                        chunk = chunk - window + newline + 1;
                        rotateNow = true;
                    }
                }
            }

            if (chunk > 0)
            {
                if (WriteAll(data[..chunk]) is { } writeError)
                    return writeError;
                data = data[chunk..];
                written += chunk;
                _offset += chunk;
            }

            if (_maxLength != 0 && (rotateNow || ((ulong)_offset == _maxLength && !data.IsEmpty)))
            {
                if (Rotate() is { } rotateError)
                    return rotateError;
                if (OpenCurrent() is { } openError)
                    return openError;
            }
        }
        return written;
    }

    /// <summary>safewrite: all of it, retrying interrupted and partial writes.</summary>
    private VirError? WriteAll(ReadOnlySpan<byte> bytes)
    {
        fixed (byte* start = bytes)
        {
            nuint done = 0, length = (nuint)bytes.Length;
            while (done < length)
            {
                nint n = write(_fd, start + done, length - done);
                if (n <= 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (n < 0 && errno == EINTR)
                        continue;
                    // A write of 0 is short too; C then reports whatever errno holds.
                    return VirRotatingFilePaths.System(errno, $"Unable to write to file {_cPath}");
                }
                done += (nuint)n;
            }
        }
        return null;
    }

    /// <summary>Without backups path is removed; with n, path.(n-2) becomes
    /// path.(n-1) ... path becomes path.0, the oldest dropped. Missing files
    /// are skipped, so a gap in the backups moves along with them.</summary>
    private VirError? Rotate()
    {
        if (_maxBackups == 0)
        {
            fixed (byte* p = _paths[0])
            {
                if (unlink(p) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != ENOENT)
                        return VirRotatingFilePaths.System(errno, $"Unable to remove {_cPath}");
                }
            }
            return null;
        }

        for (int to = _maxBackups; to >= 1; to--)
        {
            fixed (byte* from = _paths[to - 1], dest = _paths[to])
            {
                if (rename(from, dest) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != ENOENT)
                        return VirRotatingFilePaths.System(errno, $"Unable to rename {PathText(to - 1)} to {PathText(to)}");
                }
            }
        }
        return null;
    }

    private string PathText(int index) => VirRotatingFilePaths.Name(_cPath, index - 1);

    public void Dispose() => _fd?.Dispose();
}

/// <summary>
/// Reads path.(n-1) .. path.0, path in that order (oldest first) through the
/// descriptors opened at creation, so a rotation afterwards does not move
/// what it reads. Backups missing at creation are skipped.
/// </summary>
internal sealed unsafe class VirRotatingFileReaderManaged : IVirRotatingFileReader
{
    private sealed class Entry(string path, SafeFileHandle? fd, ulong inode)
    {
        public readonly string Path = path;
        public readonly SafeFileHandle? Fd = fd; // null: the file did not exist
        public readonly ulong INode = inode;
    }

    private readonly Entry?[] _entries; // oldest first
    private int _current;

    private VirRotatingFileReaderManaged(int count) => _entries = new Entry?[count];

    /// <summary>virRotatingFileReaderNew: opens path first, then path.0, path.1, ...</summary>
    public static VirResult<IVirRotatingFileReader> Open(string path, ulong maxBackups)
    {
        ulong backups = maxBackups;
        if (backups > VirRotatingFilePaths.MaxMaxBackup)
            return VirRotatingFilePaths.TooManyBackups(backups);

        int n = (int)backups;
        string cPath = VirRotatingFilePaths.AsCPath(path);
        var r = new VirRotatingFileReaderManaged(n + 1);
        for (int i = -1; i < n; i++)
        {
            // path goes last, path.i just before path.(i-1).
            if (OpenEntry(VirRotatingFilePaths.Name(cPath, i), out var entry) is { } error)
            {
                r.Dispose();
                return error;
            }
            r._entries[n - 1 - i] = entry;
        }
        return new VirResult<IVirRotatingFileReader>(r);
    }

    private static VirError? OpenEntry(string path, out Entry entry)
    {
        int raw;
        fixed (byte* p = VirRotatingFilePaths.Encode(path))
            raw = open(p, O_RDONLY | Libc.O_CLOEXEC, 0);
        if (raw < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            entry = new Entry(path, null, 0);
            return errno == ENOENT ? null : VirRotatingFilePaths.System(errno, $"Unable to open file: {path}");
        }

        var fd = new SafeFileHandle(raw, ownsHandle: true);
        if (!TryFStatINode(fd, out ulong inode, out int statErrno))
        {
            fd.Dispose();
            entry = new Entry(path, null, 0);
            return VirRotatingFilePaths.System(statErrno, $"Unable to determine current file inode: {path}");
        }
        entry = new Entry(path, fd, inode);
        return null;
    }

    public VirResult Seek(ulong inode, long offset)
    {
        for (int i = 0; i < _entries.Length; i++)
        {
            var e = _entries[i]!;
            if (e.Fd is null || e.INode != inode)
                continue;
            if (lseek(e.Fd, offset, SEEK_SET) == -1)
                return SeekError(Marshal.GetLastPInvokeError(), inode, offset);
            _current = i;
            return VirResult.Success;
        }

        // Not found: most likely rotated away, so start from the oldest file,
        // at the same offset, as C does. If that backup is missing C seeks
        // descriptor -1, hence EBADF.
        _current = 0;
        var oldest = _entries[0]!;
        if (oldest.Fd is null)
            return SeekError(EBADF, inode, offset);
        if (lseek(oldest.Fd, offset, SEEK_SET) == -1)
            return SeekError(Marshal.GetLastPInvokeError(), inode, offset);
        return VirResult.Success;
    }

    // C prints both with %llu, so a negative offset reads as a huge number.
    private static VirError SeekError(int errno, ulong inode, long offset)
        => VirRotatingFilePaths.System(errno, $"Unable to seek to inode {inode} offset {(ulong)offset}");

    public VirResult<long> Consume(Span<byte> buffer)
    {
        long total = 0;
        fixed (byte* start = buffer)
        {
            while (total < buffer.Length && _current < _entries.Length)
            {
                var e = _entries[_current]!;
                if (e.Fd is null)
                {
                    _current++;
                    continue;
                }
                nint n = read(e.Fd, start + total, (nuint)(buffer.Length - total));
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR)
                        continue;
                    // What was read before the error is dropped, as in C.
                    return VirRotatingFilePaths.System(errno, $"Unable to read from file {e.Path}");
                }
                if (n == 0)
                {
                    _current++;
                    continue;
                }
                total += n;
            }
        }
        return total;
    }

    public void Dispose()
    {
        foreach (var e in _entries)
            e?.Fd?.Dispose();
    }
}
