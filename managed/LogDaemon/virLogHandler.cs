using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Host.ExecRestart;
using Libvirt.Host;
using Libvirt.Interop;
using Libvirt.LogDaemon.RotatingFile;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.LogDaemon;

/// <summary>
/// virtlogd's log handler: one entry per open domain log, fed by the read
/// end of a pipe whose write end went to the client (QEMU). Pipes are
/// watched on libvirt's event loop; everything here runs on that thread
/// (dispatch included), the lock only guards against the host's shutdown.
/// </summary>
public sealed unsafe class virLogHandler : IDisposable
{
    private const virErrorDomain FromThis = virErrorDomain.VIR_FROM_LOGGING;
    private const uint DefaultMode = 0x180; // 0600
    // The C daemon reads 1 KiB per wake-up; a larger read moves the same
    // bytes in the same order with fewer wake-ups. One buffer serves all
    // pipes: reads happen only on the event loop thread.
    private const int ReadBufferSize = 64 * 1024;

    private sealed class LogFile
    {
        public required IRotatingFileWriter File;
        // the path as it arrives off the wire, for lookups without encoding
        public byte[] PathUtf8 => _pathUtf8 ??= System.Text.Encoding.UTF8.GetBytes(File.Path);
        private byte[]? _pathUtf8;
        public int Watch = -1;
        public int PipeFd = -1;
        public bool Drained;
        public required string Driver;
        public required byte[] DomUUID;
        public required string DomName;
    }

    private static virLogHandler? s_instance;

    private readonly Lock _lock = new();
    private readonly List<LogFile> _files = new();
    private readonly IRotatingFileFactory _factory;
    private readonly VirNetDaemonNative _daemon;
    private readonly ILogger _log;
    private readonly byte* _buffer;

    public bool Privileged { get; }
    public long MaxSize { get; }
    public ulong MaxBackups { get; }

    public virLogHandler(IRotatingFileFactory factory, VirNetDaemonNative daemon, bool privileged, ulong maxSize, ulong maxBackups, ILogger log)
    {
        _factory = factory;
        _daemon = daemon;
        Privileged = privileged;
        MaxSize = (long)maxSize;
        MaxBackups = maxBackups;
        _log = log;
        _buffer = (byte*)NativeMemory.Alloc(ReadBufferSize);
        s_instance = this;
    }

    public static virLogHandler Instance => s_instance ?? throw new InvalidOperationException("no log handler");

    /// <summary>
    /// A session daemon must not time out while domains still log through
    /// it; the system one is kept alive by its units' dependencies, so (as
    /// in the C daemon) open pipes inhibit shutdown only when unprivileged.
    /// </summary>
    private void Inhibit(bool inhibit)
    {
        if (virNetDaemonIsPrivileged(_daemon.Handle) != 0)
            return;
        if (inhibit)
            virNetDaemonAddShutdownInhibition(_daemon.Handle);
        else
            virNetDaemonRemoveShutdownInhibition(_daemon.Handle);
    }

    private LogFile? Find(sbyte* path)
    {
        var key = MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)path);
        foreach (var f in _files)
        {
            if (key.SequenceEqual(f.PathUtf8))
                return f;
        }
        return null;
    }

    /// <summary>Opens a domain log; returns the write end of its pipe for the
    /// client, or -1 with libvirt's error set.</summary>
    public int DomainOpenLogFile(sbyte* driver, byte* domuuid, sbyte* domname, sbyte* path, bool truncate,
        out ulong inode, out long offset)
    {
        inode = 0;
        offset = 0;
        lock (_lock)
        {
            Inhibit(true);
            if (Find(path) is not null)
            {
                LibvirtError.ReportSystem(FromThis, Libc.EBUSY, "virLogHandlerDomainOpenLogFile",
                    $"Cannot open log file: '{NativeUtf8.Read(path)}'");
                Inhibit(false);
                return -1;
            }
            int* fds = stackalloc int[2];
            if (Libc.pipe2(fds, Libc.O_CLOEXEC) < 0)
            {
                LibvirtError.ReportSystem(FromThis, Marshal.GetLastPInvokeError(), "virLogHandlerDomainOpenLogFile",
                    "Unable to create pipe");
                Inhibit(false);
                return -1;
            }
            var writer = _factory.NewWriter(NativeUtf8.Read(path)!, MaxSize, MaxBackups, truncate, DefaultMode);
            if (writer is null)
            {
                Libc.close(fds[0]);
                Libc.close(fds[1]);
                Inhibit(false);
                return -1;
            }
            var file = new LogFile
            {
                File = writer,
                PipeFd = fds[0],
                Driver = NativeUtf8.Read(driver)!,
                DomUUID = new ReadOnlySpan<byte>(domuuid, 16).ToArray(),
                DomName = NativeUtf8.Read(domname)!,
            };
            _files.Add(file);
            file.Watch = virEventAddHandle(file.PipeFd, (int)virEventHandleType.VIR_EVENT_HANDLE_READABLE,
                &OnPipeEvent, null, null);
            if (file.Watch < 0)
            {
                _files.Remove(file);
                Libc.close(fds[1]);
                Free(file);
                Inhibit(false);
                return -1;
            }
            inode = writer.INode;
            offset = writer.Offset;
            return fds[1];
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static void OnPipeEvent(int watch, int fd, int events, void* opaque)
    {
        try
        {
            s_instance?.PipeEvent(watch, fd);
        }
        catch (Exception e)
        {
            s_instance?._log.LogError("virLogHandlerDomainLogFileEvent: {Error}", e.Message);
        }
    }

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
                virEventRemoveHandle(watch);
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
                LibvirtError.ReportSystem(FromThis, Marshal.GetLastPInvokeError(), "virLogHandlerDomainLogFileEvent",
                    "Unable to read from log pipe");
                Close(file);
                return;
            }
            if (len == 0 || file.File.Append(_buffer, (nuint)len) != len)
                Close(file); // the writer closed its end, or the log is unwritable
        }
    }

    private void Close(LogFile file)
    {
        Inhibit(false);
        _files.Remove(file);
        Free(file);
    }

    private static void Free(LogFile file)
    {
        if (file.PipeFd >= 0)
            Libc.close(file.PipeFd);
        file.File.Dispose();
        if (file.Watch >= 0)
            virEventRemoveHandle(file.Watch);
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
            if (len == 0 || file.File.Append(_buffer, (nuint)len) != len)
                return;
        }
    }

    public int DomainGetLogFilePosition(sbyte* path, uint flags, out ulong inode, out long offset)
    {
        inode = 0;
        offset = 0;
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainGetLogFilePosition"))
            return -1;
        lock (_lock)
        {
            var file = Find(path);
            if (file is null)
            {
                LibvirtError.Report(FromThis, virErrorNumber.VIR_ERR_INTERNAL_ERROR, "virLogHandlerDomainGetLogFilePosition",
                    $"No open log file {NativeUtf8.Read(path)}");
                return -1;
            }
            Drain(file);
            inode = file.File.INode;
            offset = file.File.Offset;
            return 0;
        }
    }

    /// <summary>Reads up to <paramref name="maxlen"/> bytes from (inode, offset)
    /// on, across rotated files; returns a glib-allocated string (the RPC
    /// layer frees it) or null with libvirt's error set.</summary>
    public sbyte* DomainReadLogFile(sbyte* path, ulong inode, long offset, ulong maxlen, uint flags)
    {
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainReadLogFile"))
            return null;
        lock (_lock)
        {
            using var reader = _factory.NewReader(NativeUtf8.Read(path)!, MaxBackups);
            if (reader is null || reader.Seek(inode, offset) < 0)
                return null;
            var data = (byte*)GLib.g_malloc0((nuint)maxlen + 1);
            long got = reader.Consume(data, (nuint)maxlen);
            if (got < 0)
            {
                GLib.g_free(data);
                return null;
            }
            data[got] = 0;
            return (sbyte*)data;
        }
    }

    public int DomainAppendLogFile(sbyte* path, sbyte* message, uint flags)
    {
        if (!LibvirtError.CheckFlags(FromThis, flags, 0, "virLogHandlerDomainAppendLogFile"))
            return -1;
        lock (_lock)
        {
            var open = Find(path);
            IRotatingFileWriter? temporary = null;
            var writer = open?.File;
            if (writer is null)
            {
                temporary = _factory.NewWriter(NativeUtf8.Read(path)!, MaxSize, MaxBackups, false, DefaultMode);
                if (temporary is null)
                    return -1;
                writer = temporary;
            }
            try
            {
                var bytes = MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)message);
                fixed (byte* p = bytes)
                    return writer.Append(p, (nuint)bytes.Length) < 0 ? -1 : 0;
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
    public JsonObject? PreExecRestart()
    {
        lock (_lock)
        {
            var files = new JsonArray();
            foreach (var f in _files)
            {
                if (virSetInherit(f.PipeFd, 1) < 0)
                {
                    LibvirtError.ReportSystem(FromThis, Marshal.GetLastSystemError(), "virLogHandlerPreExecRestart",
                        "Cannot disable close-on-exec flag");
                    return null;
                }
                files.Add(new JsonObject
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
                var writer = _factory.NewWriter(path, MaxSize, MaxBackups, false, DefaultMode);
                if (writer is null)
                {
                    Inhibit(false);
                    return false;
                }
                virSetInherit(pipefd, 0);
                var file = new LogFile { File = writer, PipeFd = pipefd, Driver = driver, DomUUID = uuid, DomName = domname };
                _files.Add(file);
                file.Watch = virEventAddHandle(pipefd, (int)virEventHandleType.VIR_EVENT_HANDLE_READABLE, &OnPipeEvent, null, null);
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
        if (s_instance == this)
            s_instance = null;
    }
}
