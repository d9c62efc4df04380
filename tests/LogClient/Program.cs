using System.Diagnostics;
using System.Text;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

// logclient: drives libvirt's own log client (virLogManager* from
// libvirt.so.0) for tests and benchmarks. Privileged mode: it connects to
// /run/libvirt/virtlogd-sock, so run it inside the daemon's mount namespace.
// --unprivileged: virLogManagerNew(false), i.e. libvirt's session-mode client,
// which connects to $XDG_RUNTIME_DIR/libvirt/virtlogd-sock (run it as the
// daemon's uid with the daemon's XDG_RUNTIME_DIR).
//
//   logclient [--unprivileged] [--driver NAME] [--name DOMNAME] [--uuid HEX32]
//     prints "ready <pid>", then reads commands on stdin and answers one line
//     each ("ok ..." or "err MESSAGE"):
//       open PATH [truncate]             DomainOpenLogFile; keeps the pipe fd
//                                        -> ok <fd> <inode> <offset>
//       write N SIZE                     write N records of SIZE bytes to the
//                                        kept fd (see Record) -> ok <bytes>
//       pos PATH                         DomainGetLogFilePosition -> ok <inode> <offset>
//       read PATH INODE OFFSET MAXLEN    DomainReadLogFile -> ok <base64 of data>
//       append PATH MESSAGE...           DomainAppendMessage (MESSAGE is the
//                                        rest of the line plus "\n") -> ok
//       closefd                          close the kept fd -> ok
//       disconnect                       virLogManagerFree (closes the daemon
//                                        connection, keeps the pipe fd) -> ok
//       quit                             -> ok, exit 0
//   logclient bench --path P --records N --size S [--truncate]
//     open, write N records, GetLogFilePosition (the daemon drains the pipe
//     first), close the pipe; prints
//     "records N bytes B seconds S mbps M"
//
// Records: record k (k = 0, 1, ... counted over the whole process) of SIZE
// bytes is "%010d " k, then 'a' + k % 26 repeated, then "\n" (SIZE >= 12).
return LogClient.Main(args);

static unsafe class LogClient
{
    private static string s_driver = "qemu";
    private static string s_name = "logclient";
    private static byte[] s_uuid = Guid.NewGuid().ToByteArray();
    private static long s_seq;

    public static int Main(string[] args)
    {
        bool bench = args.Length > 0 && args[0] == "bench";
        string? path = null;
        long records = 10000;
        int size = 80;
        bool truncate = false;
        bool privileged = true;
        for (int i = bench ? 1 : 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--driver": s_driver = Next(); break;
                case "--name": s_name = Next(); break;
                case "--uuid": s_uuid = Convert.FromHexString(Next()); break;
                case "--path": path = Next(); break;
                case "--records": records = long.Parse(Next()); break;
                case "--size": size = int.Parse(Next()); break;
                case "--truncate": truncate = true; break;
                case "--unprivileged": privileged = false; break;
                default:
                    Console.Error.WriteLine($"logclient: unknown argument {a}");
                    return 2;
            }
        }

        nuint v;
        if (virGetVersion(&v, null, null) < 0 || v != 9_000_000)
        {
            Console.Out.WriteLine($"err libvirt.so.0 version {(ulong)v} is not 9.0.0");
            return 1;
        }
        virInitialize();

        var mgr = virLogManagerNew((byte)(privileged ? 1 : 0));
        if (mgr == null)
        {
            Console.Out.WriteLine("err " + LastError());
            return 1;
        }
        try
        {
            if (bench)
                return Bench(mgr, path ?? throw new ArgumentException("--path is required"), records, size, truncate);
            return Interactive(ref mgr);
        }
        finally
        {
            if (mgr != null)
                virLogManagerFree(mgr);
        }
    }

    private static string LastError() => NativeUtf8.Read(virGetLastErrorMessage()) ?? "unknown error";

    /// <summary>Record <paramref name="k"/> of <paramref name="size"/> bytes (size >= 12).</summary>
    public static void Record(long k, Span<byte> dst)
    {
        Span<byte> head = stackalloc byte[16];
        Encoding.ASCII.GetBytes((k % 10_000_000_000L).ToString("D10") + " ", head);
        head[..11].CopyTo(dst);
        dst[11..^1].Fill((byte)('a' + (int)(k % 26)));
        dst[^1] = (byte)'\n';
    }

    private static int Open(virLogManager* mgr, string path, bool truncate, out ulong inode, out long offset)
    {
        using var drv = new NativeUtf8(s_driver);
        using var nm = new NativeUtf8(s_name);
        using var p = new NativeUtf8(path);
        nuint ino = 0;
        nint off = 0;
        int fd;
        fixed (byte* u = s_uuid)
            fd = virLogManagerDomainOpenLogFile(mgr, drv, u, nm, p, truncate ? 1u : 0u, &ino, &off);
        inode = ino;
        offset = off;
        return fd;
    }

    /// <summary>Writes n records of size bytes to fd in batches; returns bytes written or -1 (errno text in err).</summary>
    private static long WriteRecords(int fd, long n, int size, out string? err)
    {
        err = null;
        const int batchBytes = 1 << 16;
        int perBatch = Math.Max(1, batchBytes / size);
        var buf = new byte[perBatch * size];
        long total = 0;
        while (n > 0)
        {
            int cnt = (int)Math.Min(perBatch, n);
            for (int i = 0; i < cnt; i++)
                Record(s_seq++, buf.AsSpan(i * size, size));
            int len = cnt * size, done = 0;
            fixed (byte* b = buf)
                while (done < len)
                {
                    nint w = Native.write(fd, b + done, (nuint)(len - done));
                    if (w < 0)
                    {
                        int e = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                        if (e == 4) continue; // EINTR
                        err = $"write: errno {e} ({System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(e)})";
                        return -1;
                    }
                    done += (int)w;
                }
            total += len;
            n -= cnt;
        }
        return total;
    }

    private static int Interactive(ref virLogManager* mgr)
    {
        int keptFd = -1;
        Console.Out.WriteLine($"ready {Environment.ProcessId}");
        Console.Out.Flush();
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0)
                continue;
            string reply;
            try
            {
                if (mgr == null && words[0] is "open" or "pos" or "read" or "append")
                {
                    Console.Out.WriteLine("err not connected");
                    Console.Out.Flush();
                    continue;
                }
                switch (words[0])
                {
                    case "open":
                    {
                        int fd = Open(mgr, words[1], words.Length > 2 && words[2] == "truncate", out var ino, out var off);
                        if (fd < 0)
                            reply = "err " + LastError();
                        else
                        {
                            if (keptFd >= 0)
                                Native.close(keptFd);
                            keptFd = fd;
                            reply = $"ok {fd} {ino} {off}";
                        }
                        break;
                    }
                    case "write":
                    {
                        if (keptFd < 0) { reply = "err no open fd"; break; }
                        long n = long.Parse(words[1]);
                        int size = int.Parse(words[2]);
                        if (size < 12) { reply = "err SIZE must be >= 12"; break; }
                        long w = WriteRecords(keptFd, n, size, out var err);
                        reply = w < 0 ? "err " + err : $"ok {w}";
                        break;
                    }
                    case "pos":
                    {
                        using var p = new NativeUtf8(words[1]);
                        nuint ino = 0;
                        nint off = 0;
                        reply = virLogManagerDomainGetLogFilePosition(mgr, p, 0, &ino, &off) < 0
                            ? "err " + LastError()
                            : $"ok {ino} {off}";
                        break;
                    }
                    case "read":
                    {
                        using var p = new NativeUtf8(words[1]);
                        var data = virLogManagerDomainReadLogFile(mgr, p, (nuint)ulong.Parse(words[2]),
                            (nint)long.Parse(words[3]), (nuint)ulong.Parse(words[4]), 0);
                        if (data == null)
                            reply = "err " + LastError();
                        else
                        {
                            int len = 0;
                            while (data[len] != 0) len++;
                            reply = "ok " + Convert.ToBase64String(new ReadOnlySpan<byte>(data, len));
                            GLib.g_free(data);
                        }
                        break;
                    }
                    case "append":
                    {
                        int idx = line.IndexOf(words[1], line.IndexOf("append", StringComparison.Ordinal) + 6, StringComparison.Ordinal);
                        string rest = line[(idx + words[1].Length)..];
                        if (rest.StartsWith(' ')) rest = rest[1..];
                        using var drv = new NativeUtf8(s_driver);
                        using var nm = new NativeUtf8(s_name);
                        using var p = new NativeUtf8(words[1]);
                        using var msg = new NativeUtf8(rest + "\n");
                        int rc;
                        fixed (byte* u = s_uuid)
                            rc = virLogManagerDomainAppendMessage(mgr, drv, u, nm, p, msg, 0);
                        reply = rc < 0 ? "err " + LastError() : "ok";
                        break;
                    }
                    case "closefd":
                        if (keptFd >= 0)
                            Native.close(keptFd);
                        keptFd = -1;
                        reply = "ok";
                        break;
                    case "disconnect":
                        if (mgr != null)
                            virLogManagerFree(mgr);
                        mgr = null;
                        reply = "ok";
                        break;
                    case "quit":
                        if (keptFd >= 0)
                            Native.close(keptFd);
                        Console.Out.WriteLine("ok");
                        Console.Out.Flush();
                        return 0;
                    default:
                        reply = "err unknown command " + words[0];
                        break;
                }
            }
            catch (Exception e) when (e is FormatException or IndexOutOfRangeException or OverflowException)
            {
                reply = "err bad arguments: " + e.Message;
            }
            Console.Out.WriteLine(reply);
            Console.Out.Flush();
        }
        if (keptFd >= 0)
            Native.close(keptFd);
        return 0;
    }

    private static int Bench(virLogManager* mgr, string path, long records, int size, bool truncate)
    {
        if (size < 12)
        {
            Console.Out.WriteLine("err --size must be >= 12");
            return 2;
        }
        var sw = Stopwatch.StartNew();
        int fd = Open(mgr, path, truncate, out _, out _);
        if (fd < 0)
        {
            Console.Out.WriteLine("err " + LastError());
            return 1;
        }
        long bytes = WriteRecords(fd, records, size, out var err);
        if (bytes >= 0)
        {
            // the daemon drains the pipe before answering: once this returns,
            // every byte written is in the log file
            using var p = new NativeUtf8(path);
            nuint ino = 0;
            nint off = 0;
            if (virLogManagerDomainGetLogFilePosition(mgr, p, 0, &ino, &off) < 0)
                err = "pos: " + LastError();
        }
        Native.close(fd);
        if (bytes < 0 || err != null)
        {
            Console.Out.WriteLine("err " + err);
            return 1;
        }
        sw.Stop();
        double secs = sw.Elapsed.TotalSeconds;
        Console.Out.WriteLine($"records {records} bytes {bytes} seconds {secs:F6} mbps {bytes / 1e6 / secs:F2}");
        return 0;
    }
}

static unsafe partial class Native
{
    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buf, nuint count);

    [System.Runtime.InteropServices.LibraryImport("libc")]
    public static partial int close(int fd);
}
