using Microsoft.Win32.SafeHandles;
using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Host.ExecRestart;
using Libvirt.Host;
using Libvirt.Interop;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.LogDaemon;

/// <summary>
/// virtlogd's log handler: one entry per open domain log, fed by the read
/// end of a pipe whose write end went to the client (QEMU). Pipes are
/// watched on the event loop; everything here runs on that thread (dispatch
/// included), the lock only guards against the host's shutdown. Logs are
/// written through the rotating-file implementation rotating_file_impl
/// chose; failures are error values, in VIR_FROM_LOGGING as in C.
/// </summary>
public sealed unsafe class virLogHandler : IDisposable
{
    private const VirErrorDomain FromThis = VirErrorDomain.Logging;
    private const uint DefaultMode = 0x180; // 0600
    // The C daemon reads 1 KiB per wake-up; a larger read moves the same
    // bytes in the same order with fewer wake-ups. One buffer serves all
    // pipes: reads happen only on the event loop thread.
    private const int ReadBufferSize = 64 * 1024;

    private sealed class LogFile
    {
        public required IVirRotatingFileWriter File;
        // the path as it arrives off the wire, for lookups without encoding
        public byte[] PathUtf8 => _pathUtf8 ??= System.Text.Encoding.UTF8.GetBytes(File.Path);
        private byte[]? _pathUtf8;
        public int Watch = -1;
        public required SafeFileHandle Pipe;
        public int PipeFd => (int)Pipe.DangerousGetHandle();
        public bool Drained;
        public required string Driver;
        public required byte[] DomUUID;
        public required string DomName;
    }

    private readonly Lock _lock = new();
    private readonly List<LogFile> _files = new();
    private readonly IVirRotatingFileFactory _factory;
    private readonly IVirNetDaemon _daemon;
    private readonly ILogger _log;
    private readonly byte* _buffer;

    public bool Privileged { get; }
    public long MaxSize { get; }
    public ulong MaxBackups { get; }

    public virLogHandler(IVirRotatingFileFactory factory, IVirNetDaemon daemon, bool privileged, ulong maxSize, ulong maxBackups, ILogger log)
    {
        _factory = factory;
        _daemon = daemon;
        Privileged = privileged;
        MaxSize = (long)maxSize;
        MaxBackups = maxBackups;
        _log = log;
        _buffer = (byte*)NativeMemory.Alloc(ReadBufferSize);
    }

    /// <summary>
    /// A session daemon must not time out while domains still log through
    /// it; the system one is kept alive by its units' dependencies, so (as
    /// in the C daemon) open pipes inhibit shutdown only when unprivileged.
    /// </summary>
    private void Inhibit(bool inhibit)
    {
        if (_daemon.Privileged)
            return;
        // through the wrapper: the managed run loop counts them too
        if (inhibit)
            _daemon.AddShutdownInhibition();
        else
            _daemon.RemoveShutdownInhibition();
    }

    private LogFile? Find(ReadOnlySpan<byte> key)
    {
        foreach (var f in _files)
        {
            if (key.SequenceEqual(f.PathUtf8))
                return f;
        }
        return null;
    }

    // lossless: a path (or name) that is not UTF-8 names the same file, and reads back the same, as in C
    private static string Text(ReadOnlySpan<byte> utf8) => Libvirt.Interop.LosslessUtf8.Decode(utf8);

    /// <summary>
    /// A log path that is a FIFO is refused before anything opens it (a
    /// deliberate difference from C, which blocks in open(2), the whole
    /// daemon with it, until the other end appears, and then whenever the
    /// FIFO is full). Character and block devices such as /dev/null are
    /// opened as in C. A path that does not exist or cannot be examined is
    /// left to the rotating file, which reports as libvirt does.
    /// </summary>
    private static VirError? RefuseFifo(string path)
    {
        if (Libc.FileStat(path) is { } st && (st.Mode & Libc.S_IFMT) == Libc.S_IFIFO)
            return VirError.Report(FromThis, VirErrorCode.InvalidArg,
                $"Cannot open log file: '{path}': it is a FIFO, which virtlogd does not write to");
        return null;
    }

    /// <summary>Opens a domain log; the value is the write end of its pipe,
    /// for the client, with the position the log starts at.</summary>
    public VirResult<(SafeFileHandle WriteEnd, ulong INode, long Offset)> DomainOpenLogFile(
        ReadOnlySpan<byte> driver, ReadOnlySpan<byte> domuuid, ReadOnlySpan<byte> domname, ReadOnlySpan<byte> path, bool truncate)
    {
        lock (_lock)
        {
            Inhibit(true);
            if (Find(path) is not null)
            {
                Inhibit(false);
                return VirError.System(FromThis, Libc.EBUSY, $"Cannot open log file: '{Text(path)}'");
            }
            if (RefuseFifo(Text(path)) is { } fifo)
            {
                Inhibit(false);
                return fifo;
            }
            int* fds = stackalloc int[2];
            if (Libc.pipe2(fds, Libc.O_CLOEXEC) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                Inhibit(false);
                return VirError.System(FromThis, errno, "Unable to create pipe");
            }
            var readEnd = new SafeFileHandle(fds[0], ownsHandle: true);
            var writeEnd = new SafeFileHandle(fds[1], ownsHandle: true);
            if (!_factory.NewWriter(Text(path), MaxSize, MaxBackups, truncate, DefaultMode).TryGet(out var writer, out var err))
            {
                readEnd.Dispose();
                writeEnd.Dispose();
                Inhibit(false);
                return err!;
            }
            var file = new LogFile
            {
                File = writer,
                Pipe = readEnd,
                Driver = Text(driver),
                DomUUID = domuuid.ToArray(),
                DomName = Text(domname),
            };
            _files.Add(file);
            file.Watch = AddWatch(file.PipeFd);
            if (file.Watch < 0)
            {
                _files.Remove(file);
                writeEnd.Dispose();
                Free(file);
                Inhibit(false);
                // libvirt's API sets no error for a failed watch
                return VirError.UnknownCause();
            }
            return (writeEnd, writer.INode, writer.Offset);
        }
    }

    /// <summary>A readable watch on a pipe, on the loop the daemon runs on.</summary>
    private int AddWatch(int fd)
        => _daemon.EventLoop.AddHandle(fd, VirEventHandleType.Readable, _onPipe ??= OnPipeEvent, null);

    private void RemoveWatch(int watch) => _daemon.EventLoop.RemoveHandle(watch);

    private VirEventHandleCallback? _onPipe;

    private void OnPipeEvent(int watch, int fd, VirEventHandleType events)
    {
        try
        {
            PipeEvent(watch, fd);
        }
        catch (Exception e)
        {
            _log.LogError("virLogHandlerDomainLogFileEvent: {Error}", e.Message);
        }
    }

    private static readonly EventId InLogFileEvent = new(0, "virLogHandlerDomainLogFileEvent");

    private void PipeEvent(int watch, int fd)
    {
        lock (_lock)
        {
            LogFile? file = null;
            foreach (var f in _files)
            {
                if (f.Watch == watch)
                {
                    file = f;
                    break;
                }
            }
            if (file is null || file.PipeFd != fd)
            {
                RemoveWatch(watch);
                return;
            }
            // a position request just emptied the pipe; this wake-up is stale
            if (file.Drained)
            {
                file.Drained = false;
                return;
            }
            nint len;
            do
            {
                len = Libc.read(fd, _buffer, ReadBufferSize);
            } while (len < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR);
            if (len < 0)
            {
                _log.LogError(InLogFileEvent, "{Error}",
                    VirError.System(FromThis, Marshal.GetLastPInvokeError(), "Unable to read from log pipe").Message);
                Close(file);
                return;
            }
            if (len == 0)
            {
                Close(file); // the writer closed its end
                return;
            }
            ulong inodeBefore = file.File.INode;
            long offsetBefore = file.File.Offset;
            var appended = file.File.Append(new ReadOnlySpan<byte>(_buffer, (int)len));
            if (!appended.Ok || appended.Value != len)
            {
                // the log is unwritable (a full disk, say): the pipe is closed, as in C, and what it had
                // accepted and the file did not get is counted and reported for the domain
                if (appended.Error is { Logged: false } err)
                    _log.LogError(InLogFileEvent, "{Error}", err.Message);
                long written = appended.Ok ? appended.Value : WrittenBeforeFailure(file, inodeBefore, offsetBefore, len);
                long dropped = len - written + DrainUnwritten(file);
                _log.LogError(InLogFileEvent, "{Driver} domain {Name} ({Uuid}): {Dropped} bytes for {Path} dropped: {Why}; its log pipe is closed",
                    file.Driver, file.DomName, VirUUID.Format(file.DomUUID), dropped, file.File.Path,
                    appended.Error?.Message ?? "short write");
                Close(file);
            }
        }
    }

    /// <summary>How much of a failed append reached the file: the file's
    /// growth since (or, had it rotated, the rest of the old file up to
    /// max_size and the new file's length).</summary>
    private long WrittenBeforeFailure(LogFile file, ulong inodeBefore, long offsetBefore, long len)
    {
        if (Libc.FileStat(file.File.Path) is not { } st)
            return 0;
        long written = st.INode == inodeBefore
            ? st.Size - offsetBefore
            : Math.Max(0, (long)MaxSize - offsetBefore) + st.Size;
        return Math.Clamp(written, 0, len);
    }

    /// <summary>Empties the pipe of a log being given up, without blocking:
    /// the count of bytes the domain wrote that will not be logged.</summary>
    private long DrainUnwritten(LogFile file)
    {
        long total = 0;
        while (true)
        {
            var pfd = new Libc.pollfd { fd = file.PipeFd, events = Libc.POLLIN };
            int ready = Libc.poll(&pfd, 1, 0);
            if (ready < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR)
                continue;
            if (ready <= 0)
                return total;
            nint n = Libc.read(file.PipeFd, _buffer, ReadBufferSize);
            if (n < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR)
                continue;
            if (n <= 0)
                return total;
            total += n;
        }
    }

    private void Close(LogFile file)
    {
        Inhibit(false);
        _files.Remove(file);
        Free(file);
    }

    private void Free(LogFile file)
    {
        if (file.Watch >= 0)
            RemoveWatch(file.Watch);
        file.Pipe.Dispose();
        file.File.Dispose();
    }

    /// <summary>Moves whatever is in the pipe now into the log, so a position
    /// reported to the client covers everything it wrote before asking.</summary>
    private void Drain(LogFile file)
    {
        while (true)
        {
            var pfd = new Libc.pollfd { fd = file.PipeFd, events = Libc.POLLIN };
            int ready = Libc.poll(&pfd, 1, 0);
            if (ready < 0 && Marshal.GetLastPInvokeError() == Libc.EINTR)
                continue;
            if (ready <= 0)
                return; // nothing more to read now
            nint len = Libc.read(file.PipeFd, _buffer, ReadBufferSize);
            if (len < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR)
                    continue;
                return;
            }
            file.Drained = true;
            if (len == 0)
                return;
            var appended = file.File.Append(new ReadOnlySpan<byte>(_buffer, (int)len));
            if (!appended.Ok || appended.Value != len)
                return;
        }
    }

    public VirResult<(ulong INode, long Offset)> DomainGetLogFilePosition(ReadOnlySpan<byte> path, uint flags)
    {
        if (VirError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainGetLogFilePosition") is { } bad)
            return bad;
        lock (_lock)
        {
            var file = Find(path);
            if (file is null)
                return VirError.Report(FromThis, VirErrorCode.InternalError, $"No open log file {Text(path)}");
            Drain(file);
            return (file.File.INode, file.File.Offset);
        }
    }

    /// <summary>Reads up to <paramref name="into"/>'s length from (inode,
    /// offset) on, across rotated files; the value is the count read.</summary>
    public VirResult<long> DomainReadLogFile(ReadOnlySpan<byte> path, ulong inode, long offset, Span<byte> into, uint flags)
    {
        if (VirError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainReadLogFile") is { } bad)
            return bad;
        lock (_lock)
        {
            if (RefuseFifo(Text(path)) is { } fifo)
                return fifo;
            if (!_factory.NewReader(Text(path), MaxBackups).TryGet(out var reader, out var err))
                return err!;
            using (reader)
            {
                var seek = reader.Seek(inode, offset);
                if (!seek.Ok)
                    return seek.Error!;
                return reader.Consume(into);
            }
        }
    }

    public VirResult DomainAppendLogFile(ReadOnlySpan<byte> path, ReadOnlySpan<byte> message, uint flags)
    {
        if (VirError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainAppendLogFile") is { } bad)
            return bad;
        lock (_lock)
        {
            var open = Find(path);
            IVirRotatingFileWriter? temporary = null;
            var writer = open?.File;
            if (writer is null)
            {
                if (RefuseFifo(Text(path)) is { } fifo)
                    return fifo;
                if (!_factory.NewWriter(Text(path), MaxSize, MaxBackups, false, DefaultMode).TryGet(out temporary, out var err))
                    return err!;
                writer = temporary;
            }
            try
            {
                var appended = writer.Append(message);
                return appended.Ok ? VirResult.Success : appended.Error!;
            }
            finally
            {
                temporary?.Dispose();
            }
        }
    }

    /// <summary>
    /// The handler in virtlogd 9.0.0's exec-restart format: {"files": [{
    /// "pipefd", "path", "driver", "domname", "domuuid"}]}, each pipe made
    /// inheritable so QEMU's writes keep flowing into the new process.
    /// </summary>
    public VirResult<JsonObject> PreExecRestart()
    {
        lock (_lock)
        {
            var files = new JsonArray();
            foreach (var f in _files)
            {
                if (Libc.SetInherit(f.PipeFd, true) < 0)
                    return VirError.System(FromThis, Marshal.GetLastSystemError(), "Cannot disable close-on-exec flag");
                files.Add((JsonNode)new JsonObject
                {
                    ["pipefd"] = f.PipeFd,
                    ["path"] = f.File.Path,
                    ["driver"] = f.Driver,
                    ["domname"] = f.DomName,
                    ["domuuid"] = VirUUID.Format(f.DomUUID),
                });
            }
            return new JsonObject { ["files"] = files };
        }
    }

    /// <summary>Takes over the logs of an exec-restart state; false (with
    /// the reason logged) when the state cannot be used.</summary>
    public bool PostExecRestart(JsonObject handler)
    {
        if (handler["files"] is not JsonArray files)
        {
            _log.LogError("Missing files data from JSON file");
            return false;
        }
        lock (_lock)
        {
            foreach (var node in files)
            {
                Inhibit(true);
                if (node is not JsonObject o ||
                    o["path"]?.GetValue<string>() is not string path ||
                    o["driver"]?.GetValue<string>() is not string driver ||
                    o["domname"]?.GetValue<string>() is not string domname ||
                    o["domuuid"]?.GetValue<string>() is not string domuuid ||
                    o["pipefd"] is not JsonValue fdValue || !fdValue.TryGetValue(out int pipefd))
                {
                    _log.LogError("Malformed log file entry in JSON document: {Entry}", node?.ToJsonString());
                    Inhibit(false);
                    return false;
                }
                var uuid = new byte[16];
                if (!VirUUID.TryParse(domuuid, uuid))
                {
                    _log.LogError("Malformed 'domuuid' in JSON document");
                    Inhibit(false);
                    return false;
                }
                if (!_factory.NewWriter(path, MaxSize, MaxBackups, false, DefaultMode).TryGet(out var writer, out var err))
                {
                    if (!err!.Logged)
                        _log.LogError("{Error}", err.Message);
                    Inhibit(false);
                    return false;
                }
                Libc.SetInherit(pipefd, false);
                var file = new LogFile
                {
                    File = writer, Pipe = new SafeFileHandle(pipefd, ownsHandle: true),
                    Driver = driver, DomUUID = uuid, DomName = domname,
                };
                _files.Add(file);
                file.Watch = AddWatch(pipefd);
                if (file.Watch < 0)
                {
                    _files.Remove(file);
                    Free(file);
                    Inhibit(false);
                    return false;
                }
            }
        }
        return true;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var f in _files)
            {
                Inhibit(false);
                Free(f);
            }
            _files.Clear();
        }
        NativeMemory.Free(_buffer);
    }
}
