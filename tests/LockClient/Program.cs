using System.Diagnostics;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

// lockclient: drives libvirt's own lock client (virLockManager* from
// libvirt.so.0, which loads the lockd lock-driver plugin) for tests and
// benchmarks.
//
//   lockclient [--config-dir DIR] [--plugin-dir DIR] [--init-flags N] [--full-errors]
//              [--name NAME] [--id N] [--pid PID] [--uuid HEX32]
//     reads commands on stdin, answers one line each ("ok ..." or "err MESSAGE"):
//       disk PATH [shared|readonly]    add a disk resource; PATH "hex:HEX" is the
//                                      bytes HEX (a path that is not UTF-8)
//       lease LOCKSPACE NAME           add a lease resource (lockspace dir LOCKSPACE)
//       lease PATH LOCKSPACE NAME      same, lockspace dir PATH/LOCKSPACE
//       acquire [restrict] [registeronly] [flags=N]   acquire; keeps the connection fd
//       release [flags=N]              release all resources
//       inquire [flags=N]              virLockManagerInquire
//       close                          close the kept connection fd(s)
//       new [type=N] [flags=N] [KEY=VALUE]...
//                                      a new lock manager in place of the current one, with
//                                      exactly these parameters (uuid=HEX32, id=N, pid=N as
//                                      UUID and INT, any other key a STRING)
//       resource TYPE NAME [flags=N] [KEY=VALUE]...
//                                      virLockManagerAddResource as given (offset=N a ULONG,
//                                      any other key a STRING)
//       plugin                         "ok PATH": the lockd.so this process has mapped
//       quit
//   lockclient bench --disk PATH --cycles N [--config-dir DIR] [--plugin-dir DIR]
//     N acquire+release cycles; prints "cycles N seconds S"
//
// --plugin-dir sets LIBVIRT_LOCK_MANAGER_PLUGIN_DIR (the directory libvirt's
// lock manager loads lockd.so from; the variable may also come from the
// environment); without either, Debian's plugin is loaded. --full-errors
// gives each "err" the whole of libvirt's last error:
// "err code=N domain=N level=N str1=S str2=S str3=S int1=N int2=N: MESSAGE".
//
// The lease owner the daemon may kill is this process (or --pid), never a
// test runner.
return LockClient.Main(args);

static unsafe class LockClient
{
    private static string? s_configDir;
    private static string s_name = "lockclient";
    private static int s_id = 1;
    private static int s_pid = Environment.ProcessId;
    private static byte[] s_uuid = Guid.NewGuid().ToByteArray();
    private static uint s_initFlags;
    private static bool s_fullErrors;
    private const string PluginDirEnv = "LIBVIRT_LOCK_MANAGER_PLUGIN_DIR";
    /// <summary>Where libvirt's lock manager loads plugins from without LIBVIRT_LOCK_MANAGER_PLUGIN_DIR.</summary>
    private const string DefaultPluginDir = "/usr/lib/x86_64-linux-gnu/libvirt/lock-driver";

    public static int Main(string[] args)
    {
        bool bench = args.Length > 0 && args[0] == "bench";
        string? disk = null;
        int cycles = 1000;
        for (int i = bench ? 1 : 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            switch (a)
            {
                case "--config-dir": s_configDir = Next(); break;
                case "--plugin-dir": Native.SetEnv(PluginDirEnv, Next()); break;
                case "--init-flags": s_initFlags = ParseUInt(Next()); break;
                case "--full-errors": s_fullErrors = true; break;
                case "--name": s_name = Next(); break;
                case "--id": s_id = int.Parse(Next()); break;
                case "--pid": s_pid = int.Parse(Next()); break;
                case "--uuid": s_uuid = Convert.FromHexString(Next()); break;
                case "--disk": disk = Next(); break;
                case "--cycles": cycles = int.Parse(Next()); break;
                default:
                    Console.Error.WriteLine($"lockclient: unknown argument {a}");
                    return 2;
            }
        }

        string? abi = null;
        ulong ver = 0;
        nuint v;
        if (virGetVersion(&v, null, null) < 0 || (ver = v) != 9_000_000)
            abi = $"libvirt.so.0 version {ver} is not 9.0.0";
        if (abi is not null)
        {
            Console.Out.WriteLine("err " + abi);
            return 1;
        }
        virInitialize();

        using var nm = new NativeUtf8("lockd");
        using var drv = new NativeUtf8("qemu");
        using var dir = new NativeUtf8(s_configDir ?? "/nonexistent-lockclient-config");
        var plugin = virLockManagerPluginNew(nm, drv, dir, s_initFlags);
        if (plugin == null)
        {
            Console.Out.WriteLine("err " + LastError());
            return 1;
        }
        try
        {
            return bench ? Bench(plugin, disk ?? throw new ArgumentException("--disk is required"), cycles) : Interactive(plugin);
        }
        finally
        {
            virLockManagerPluginUnref(plugin);
        }
    }

    /// <summary>
    /// The plugin's driver table. libvirt.so.0 does not export
    /// virLockManagerPluginGetDriver; the table is the data symbol
    /// virLockDriverImpl of the lockd.so that virLockManagerPluginNew loaded
    /// (opening it again here returns the same, already loaded, handle).
    /// </summary>
    private static virLockDriver* Driver()
    {
        var handle = System.Runtime.InteropServices.NativeLibrary.Load(LockdModule);
        return (virLockDriver*)System.Runtime.InteropServices.NativeLibrary.GetExport(handle, "virLockDriverImpl");
    }

    /// <summary>The plugin virLockManagerPluginNew loads: lockd.so in
    /// $LIBVIRT_LOCK_MANAGER_PLUGIN_DIR, else in libvirt's plugin directory.</summary>
    private static string LockdModule
        => System.IO.Path.Combine(Native.GetEnv(PluginDirEnv) is { Length: > 0 } d ? d : DefaultPluginDir, "lockd.so");

    private static string LastError()
    {
        string message = NativeUtf8.Read(virGetLastErrorMessage()) ?? "unknown error";
        if (!s_fullErrors)
            return message;
        var e = virGetLastError();
        if (e == null)
            return "code=0 (no error): " + message;
        static string S(sbyte* p) => NativeUtf8.Read(p) ?? "(null)";
        return $"code={e->code} domain={e->domain} level={(int)e->level} str1={S(e->str1)} str2={S(e->str2)} " +
               $"str3={S(e->str3)} int1={e->int1} int2={e->int2}: {message}";
    }

    private static uint ParseUInt(string s)
        => s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? Convert.ToUInt32(s[2..], 16) : uint.Parse(s);

    /// <summary>"flags=N" among <paramref name="words"/>, or 0.</summary>
    private static uint FlagsWord(string[] words, uint otherwise = 0)
    {
        foreach (var w in words)
            if (w.StartsWith("flags=", StringComparison.Ordinal))
                return ParseUInt(w["flags=".Length..]);
        return otherwise;
    }

    /// <summary>The lockd.so files mapped into this process (/proc/self/maps).</summary>
    private static string MappedPlugins()
        => string.Join(" ", File.ReadLines("/proc/self/maps")
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && f[5].EndsWith("/lockd.so", StringComparison.Ordinal))
            .Select(f => f[5]).Distinct());

    private static virLockManager* NewManager(virLockManagerPlugin* plugin)
    {
        var parms = stackalloc virLockManagerParam[4];
        using var kUuid = new NativeUtf8("uuid");
        using var kName = new NativeUtf8("name");
        using var kId = new NativeUtf8("id");
        using var kPid = new NativeUtf8("pid");
        using var name = new NativeUtf8(s_name);
        parms[0] = default;
        parms[0].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_UUID;
        parms[0].key = kUuid;
        for (int i = 0; i < 16; i++)
            parms[0].value.uuid[i] = s_uuid[i];
        parms[1] = default;
        parms[1].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
        parms[1].key = kName;
        parms[1].value.str = name;
        parms[2] = default;
        parms[2].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_INT;
        parms[2].key = kId;
        parms[2].value.iv = s_id;
        parms[3] = default;
        parms[3].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_INT;
        parms[3].key = kPid;
        parms[3].value.iv = s_pid;
        return virLockManagerNew(Driver(),
            (uint)virLockManagerObjectType.VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN, 4, parms, 0);
    }

    private static int AddDisk(virLockManager* mgr, string path, uint flags)
    {
        using var p = new NativeUtf8(path);
        return virLockManagerAddResource(mgr, (uint)virLockManagerResourceType.VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK,
            p, 0, null, flags);
    }

    // lockd.so needs both "path" and "lockspace" (as domain_lock.c passes
    // them: <target path=...> and <lockspace>); the daemon-side lockspace is
    // "PATH/LOCKSPACE".
    private static int AddLease(virLockManager* mgr, string path, string lockspace, string name)
    {
        var parms = stackalloc virLockManagerParam[3];
        using var kPath = new NativeUtf8("path");
        using var kOffset = new NativeUtf8("offset");
        using var kLockspace = new NativeUtf8("lockspace");
        using var p = new NativeUtf8(path);
        using var ls = new NativeUtf8(lockspace);
        using var n = new NativeUtf8(name);
        parms[0] = default;
        parms[0].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
        parms[0].key = kPath;
        parms[0].value.str = p;
        parms[1] = default;
        parms[1].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_ULONG;
        parms[1].key = kOffset;
        parms[1].value.ul = 0;
        parms[2] = default;
        parms[2].type = (int)VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
        parms[2].key = kLockspace;
        parms[2].value.str = ls;
        return virLockManagerAddResource(mgr, (uint)virLockManagerResourceType.VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE,
            n, 3, parms, 0);
    }

    /// <summary>"KEY=VALUE" words as lock manager parameters; keys and strings
    /// stay allocated for the process's life (a test helper).</summary>
    private static virLockManagerParam* Params(IEnumerable<string> words, Func<string, uint> typeOf, out nuint count)
    {
        var list = words.Where(w => w.Contains('=') && !w.StartsWith("flags=", StringComparison.Ordinal)
                                    && !w.StartsWith("type=", StringComparison.Ordinal)).ToArray();
        count = (nuint)list.Length;
        if (list.Length == 0)
            return null;
        var p = (virLockManagerParam*)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)list.Length, (nuint)sizeof(virLockManagerParam));
        for (int i = 0; i < list.Length; i++)
        {
            int eq = list[i].IndexOf('=');
            string key = list[i][..eq], value = list[i][(eq + 1)..];
            uint type = typeOf(key);
            p[i].type = (int)type;
            p[i].key = (sbyte*)System.Runtime.InteropServices.Marshal.StringToCoTaskMemUTF8(key);
            switch (type)
            {
                case VIR_LOCK_MANAGER_PARAM_TYPE_UUID:
                    var u = Convert.FromHexString(value);
                    for (int b = 0; b < 16 && b < u.Length; b++)
                        p[i].value.uuid[b] = u[b];
                    break;
                case VIR_LOCK_MANAGER_PARAM_TYPE_INT:
                    p[i].value.iv = int.Parse(value);
                    break;
                case VIR_LOCK_MANAGER_PARAM_TYPE_ULONG:
                    p[i].value.ul = ulong.Parse(value);
                    break;
                default:
                    p[i].value.str = (sbyte*)System.Runtime.InteropServices.Marshal.StringToCoTaskMemUTF8(value);
                    break;
            }
        }
        return p;
    }

    private static uint WordValue(string[] words, string key, uint otherwise)
    {
        foreach (var w in words)
            if (w.StartsWith(key + "=", StringComparison.Ordinal))
                return ParseUInt(w[(key.Length + 1)..]);
        return otherwise;
    }

    /// <summary>"new [type=N] [flags=N] [KEY=VALUE]...": virLockManagerNew with exactly these parameters.</summary>
    private static virLockManager* NewManagerRaw(string[] words)
    {
        var parms = Params(words, k => k switch
        {
            "uuid" => VIR_LOCK_MANAGER_PARAM_TYPE_UUID,
            "id" or "pid" => VIR_LOCK_MANAGER_PARAM_TYPE_INT,
            _ => VIR_LOCK_MANAGER_PARAM_TYPE_STRING,
        }, out nuint n);
        return virLockManagerNew(Driver(), WordValue(words, "type", 0), n, parms, FlagsWord(words));
    }

    /// <summary>"resource TYPE NAME [flags=N] [KEY=VALUE]...": virLockManagerAddResource as given.</summary>
    private static int AddResourceRaw(virLockManager* mgr, string[] words)
    {
        var parms = Params(words.Skip(2), k => k == "offset" ? VIR_LOCK_MANAGER_PARAM_TYPE_ULONG : VIR_LOCK_MANAGER_PARAM_TYPE_STRING, out nuint n);
        using var name = new NativeUtf8(words[1]);
        return virLockManagerAddResource(mgr, ParseUInt(words[0]), name, n, parms, FlagsWord(words.Skip(2).ToArray()));
    }

    private static int Interactive(virLockManagerPlugin* plugin)
    {
        var mgr = NewManager(plugin);
        if (mgr == null)
        {
            Console.Out.WriteLine("err " + LastError());
            return 1;
        }
        var fds = new List<int>();
        Console.Out.WriteLine($"ready {Environment.ProcessId}");
        Console.Out.Flush();
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0)
                continue;
            string reply;
            switch (words[0])
            {
                case "disk":
                {
                    uint flags = 0;
                    if (words.Contains("shared"))
                        flags |= (uint)virLockManagerResourceFlags.VIR_LOCK_MANAGER_RESOURCE_SHARED;
                    if (words.Contains("readonly"))
                        flags |= (uint)virLockManagerResourceFlags.VIR_LOCK_MANAGER_RESOURCE_READONLY;
                    // NativeUtf8 gives libvirt back the bytes LosslessUtf8 decoded
                    string path = words[1].StartsWith("hex:")
                        ? LosslessUtf8.Decode(Convert.FromHexString(words[1][4..]))
                        : words[1];
                    reply = AddDisk(mgr, path, flags) < 0 ? "err " + LastError() : "ok";
                    break;
                }
                case "lease":
                {
                    // lease LOCKSPACE NAME: daemon lockspace LOCKSPACE (split into path/lockspace)
                    // lease PATH LOCKSPACE NAME: passed verbatim (daemon lockspace PATH/LOCKSPACE)
                    string path, ls, name;
                    if (words.Length >= 4)
                        (path, ls, name) = (words[1], words[2], words[3]);
                    else
                    {
                        string full = words[1].TrimEnd('/');
                        int slash = full.LastIndexOf('/');
                        (path, ls, name) = (slash > 0 ? full[..slash] : "/", full[(slash + 1)..], words[2]);
                    }
                    reply = AddLease(mgr, path, ls, name) < 0 ? "err " + LastError() : "ok";
                    break;
                }
                case "acquire":
                {
                    uint flags = FlagsWord(words);
                    if (words.Contains("restrict"))
                        flags |= (uint)virLockManagerAcquireFlags.VIR_LOCK_MANAGER_ACQUIRE_RESTRICT;
                    if (words.Contains("registeronly"))
                        flags |= (uint)virLockManagerAcquireFlags.VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY;
                    int fd = -1;
                    if (virLockManagerAcquire(mgr, null, flags, virDomainLockFailureAction.VIR_DOMAIN_LOCK_FAILURE_DEFAULT, &fd) < 0)
                        reply = "err " + LastError();
                    else
                    {
                        fds.Add(fd);
                        reply = $"ok {fd}";
                    }
                    break;
                }
                case "release":
                    reply = virLockManagerRelease(mgr, null, FlagsWord(words)) < 0 ? "err " + LastError() : "ok";
                    break;
                case "inquire":
                {
                    sbyte* state = null;
                    reply = virLockManagerInquire(mgr, &state, FlagsWord(words)) < 0 ? "err " + LastError()
                        : "ok " + (NativeUtf8.ReadAndFree(state) ?? "(null)");
                    break;
                }
                case "new":
                {
                    var fresh = NewManagerRaw(words.Skip(1).ToArray());
                    if (fresh == null)
                        reply = "err " + LastError();
                    else
                    {
                        virLockManagerFree(mgr);
                        mgr = fresh;
                        reply = "ok";
                    }
                    break;
                }
                case "resource":
                    reply = AddResourceRaw(mgr, words.Skip(1).ToArray()) < 0 ? "err " + LastError() : "ok";
                    break;
                case "plugin":
                    reply = "ok " + MappedPlugins();
                    break;
                case "close":
                    foreach (int fd in fds)
                        Native.close(fd);
                    fds.Clear();
                    reply = "ok";
                    break;
                case "quit":
                    Console.Out.WriteLine("ok");
                    Console.Out.Flush();
                    virLockManagerFree(mgr);
                    return 0;
                default:
                    reply = "err unknown command " + words[0];
                    break;
            }
            Console.Out.WriteLine(reply);
            Console.Out.Flush();
        }
        virLockManagerFree(mgr);
        return 0;
    }

    private static int Bench(virLockManagerPlugin* plugin, string disk, int cycles)
    {
        var mgr = NewManager(plugin);
        if (mgr == null || AddDisk(mgr, disk, 0) < 0)
        {
            Console.Out.WriteLine("err " + LastError());
            return 1;
        }
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < cycles; i++)
        {
            int fd = -1;
            if (virLockManagerAcquire(mgr, null, 0, virDomainLockFailureAction.VIR_DOMAIN_LOCK_FAILURE_DEFAULT, &fd) < 0 ||
                virLockManagerRelease(mgr, null, 0) < 0)
            {
                Console.Out.WriteLine($"err cycle {i}: {LastError()}");
                return 1;
            }
            Native.close(fd);
        }
        sw.Stop();
        Console.Out.WriteLine($"cycles {cycles} seconds {sw.Elapsed.TotalSeconds:F6}");
        virLockManagerFree(mgr);
        return 0;
    }
}

static unsafe partial class Native
{
    [System.Runtime.InteropServices.LibraryImport("libc")]
    public static partial int close(int fd);

    [System.Runtime.InteropServices.LibraryImport("libc", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    [System.Runtime.InteropServices.LibraryImport("libc", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial byte* getenv(string name);

    /// <summary>libc's environment, which libvirt reads (.NET's
    /// Environment.SetEnvironmentVariable does not change it).</summary>
    public static void SetEnv(string name, string value)
    {
        if (setenv(name, value, 1) < 0)
            throw new InvalidOperationException($"setenv {name} failed");
    }

    public static string? GetEnv(string name)
    {
        byte* v = getenv(name);
        return v == null ? null : System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)v);
    }
}
