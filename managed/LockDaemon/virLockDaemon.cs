using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Host.ExecRestart;
using Libvirt.Host;
using Libvirt.Interop;
using Libvirt.LockDaemon.LockSpace;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.LockDaemon;

/// <summary>
/// virtlockd's state: the default lock space and the named ones, and the
/// client life cycle of the "virtlockd" server. One instance per process;
/// libvirt calls back into it through static unmanaged entry points.
/// </summary>
public sealed unsafe class virLockDaemon : IDisposable
{
    private static virLockDaemon? s_instance;

    public static virLockDaemon Instance => s_instance ?? throw new InvalidOperationException("no lock daemon");

    private readonly Lock _lock = new();
    private readonly ILockSpaceFactory _factory;
    private readonly ILogger _log;
    // Named lock spaces, keyed by the UTF-8 bytes of their directory so a
    // lookup from the wire needs no string; there are only ever a few.
    private readonly List<(byte[] Key, ILockSpace Space)> _lockspaces = new();

    public ILockSpace DefaultLockspace { get; }
    public bool Privileged { get; }

    private virLockDaemon(ILockSpaceFactory factory, ILockSpace defaultLockspace, bool privileged, ILogger log)
    {
        _factory = factory;
        DefaultLockspace = defaultLockspace;
        Privileged = privileged;
        _log = log;
    }

    public static virLockDaemon? New(ILockSpaceFactory factory, bool privileged, ILogger log)
    {
        var def = factory.Create(null);
        if (def is null)
            return null;
        return s_instance = new virLockDaemon(factory, def, privileged, log);
    }

    /// <summary>The lock spaces from an exec-restart state ("defaultLockspace",
    /// "lockspaces"); null when they cannot be restored.</summary>
    public static virLockDaemon? NewPostExecRestart(ILockSpaceFactory factory, JsonObject state, bool privileged, ILogger log)
    {
        if (state["defaultLockspace"] is not JsonNode defNode)
        {
            log.LogError("Missing defaultLockspace data from JSON file");
            return null;
        }
        if (state["lockspaces"] is not JsonArray spaces)
        {
            log.LogError("Missing lockspaces data from JSON file");
            return null;
        }
        var def = factory.NewPostExecRestart(defNode);
        if (def is null)
            return null;
        var lockd = s_instance = new virLockDaemon(factory, def, privileged, log);
        foreach (var node in spaces)
        {
            var space = node is null ? null : factory.NewPostExecRestart(node);
            if (space is null)
            {
                lockd.Dispose();
                return null;
            }
            lockd._lockspaces.Add((System.Text.Encoding.UTF8.GetBytes(space.Directory ?? ""), space));
        }
        return lockd;
    }

    /// <summary>Adds this daemon's part of the exec-restart state, in the
    /// C daemon's key order after "daemon": defaultLockspace, lockspaces.</summary>
    public bool PreExecRestart(JsonObject state)
    {
        lock (_lock)
        {
            var def = DefaultLockspace.PreExecRestart();
            if (def is null)
                return false;
            state["defaultLockspace"] = def;
            var spaces = new JsonArray();
            foreach (var (_, space) in _lockspaces)
            {
                var node = space.PreExecRestart();
                if (node is null)
                    return false;
                spaces.Add(node);
            }
            state["lockspaces"] = spaces;
            return true;
        }
    }

    /// <summary>Null or "" is the default lock space.</summary>
    public ILockSpace? FindLockSpace(sbyte* path)
    {
        if (path == null || *path == 0)
            return DefaultLockspace;
        var key = MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)path);
        lock (_lock)
        {
            foreach (var (k, space) in _lockspaces)
            {
                if (key.SequenceEqual(k))
                    return space;
            }
        }
        return null;
    }

    /// <summary>Adds a lock space for <paramref name="path"/>; null with
    /// libvirt's error set when it cannot be created.</summary>
    public ILockSpace? AddLockSpace(sbyte* path)
    {
        string dir = NativeUtf8.Read(path)!;
        var space = _factory.Create(dir);
        if (space is null)
            return null;
        lock (_lock)
            _lockspaces.Add((MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)path).ToArray(), space));
        return space;
    }

    // ---- client life cycle (called by virNetServer on the loop thread) ----

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
    public static void* ClientNew(virNetServerClient* client, void* opaque)
    {
        try
        {
            int pid = VirNetServerClientIdentity.Check(client, opaque != null, virErrorDomain.VIR_FROM_LOCKING, "virLockDaemonClientNew");
            if (pid < 0)
                return null;

            var priv = new virLockDaemonClient { ClientPid = pid };
            return (void*)GCHandle.ToIntPtr(GCHandle.Alloc(priv));
        }
        catch (Exception e)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_LOCKING, virErrorNumber.VIR_ERR_INTERNAL_ERROR,
                "virLockDaemonClientNew", e.Message);
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
    public static void ClientFree(void* opaque)
    {
        if (opaque == null)
            return;
        try
        {
            var handle = GCHandle.FromIntPtr((nint)opaque);
            var priv = (virLockDaemonClient)handle.Target!;
            handle.Free();
            s_instance?.ClientClosed(priv);
        }
        catch (Exception e)
        {
            s_instance?._log.LogError("virLockDaemonClientFree: {Error}", e.Message);
        }
    }

    /// <summary>
    /// A client's data for the exec-restart state, as virtlockd 9.0.0 writes
    /// it. A client that connected but never registered has no owner name:
    /// the C daemon fails to save it (and exits, dropping every lock); here
    /// it is saved with an empty name and a zero UUID, which the C daemon
    /// reads back as the same unregistered client.
    /// </summary>
    [UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
    public static virJSONValue* ClientPreExecRestart(virNetServerClient* client, void* data)
    {
        try
        {
            var priv = (virLockDaemonClient)GCHandle.FromIntPtr((nint)data).Target!;
            JsonObject o;
            lock (priv.Lock)
            {
                o = new JsonObject
                {
                    ["restricted"] = priv.Restricted,
                    ["ownerPid"] = (uint)priv.OwnerPid,
                    ["ownerId"] = priv.OwnerId,
                    ["ownerName"] = priv.OwnerName ?? "",
                    ["ownerUUID"] = VirUUID.Format(priv.OwnerUUID),
                };
            }
            return VirJSONNative.ToNative(o);
        }
        catch (Exception e)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_LOCKING, virErrorNumber.VIR_ERR_INTERNAL_ERROR,
                "virLockDaemonClientPreExecRestart", e.Message);
            return null;
        }
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
    public static void* ClientNewPostExecRestart(virNetServerClient* client, virJSONValue* obj, void* opaque)
    {
        const string fn = "virLockDaemonClientNewPostExecRestart";
        try
        {
            int pid = VirNetServerClientIdentity.Check(client, opaque != null, virErrorDomain.VIR_FROM_LOCKING, "virLockDaemonClientNew");
            if (pid < 0)
                return null;
            var o = VirJSONNative.ReadNative(obj) as JsonObject;
            var priv = new virLockDaemonClient { ClientPid = pid };
            string? missing = null;
            if (o?["restricted"] is JsonValue r && r.TryGetValue(out bool restricted))
                priv.Restricted = restricted;
            else
                missing = "restricted";
            if (missing is null && o!["ownerPid"] is JsonValue p && p.TryGetValue(out uint ownerPid))
                priv.OwnerPid = (int)ownerPid;
            else
                missing ??= "ownerPid";
            if (missing is null && o!["ownerId"] is JsonValue i && i.TryGetValue(out uint ownerId))
                priv.OwnerId = ownerId;
            else
                missing ??= "ownerId";
            if (missing is null && o!["ownerName"] is JsonValue n && n.TryGetValue(out string? name))
                priv.OwnerName = name;
            else
                missing ??= "ownerName";
            if (missing is null && !(o!["ownerUUID"] is JsonValue u && u.TryGetValue(out string? uuid) &&
                                     VirUUID.TryParse(uuid, priv.OwnerUUID)))
                missing = "ownerUUID";
            if (missing is not null)
            {
                LibvirtError.Report(virErrorDomain.VIR_FROM_LOCKING, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn,
                    $"Missing {missing} data in JSON document");
                return null;
            }
            return (void*)GCHandle.ToIntPtr(GCHandle.Alloc(priv));
        }
        catch (Exception e)
        {
            LibvirtError.Report(virErrorDomain.VIR_FROM_LOCKING, virErrorNumber.VIR_ERR_INTERNAL_ERROR, fn, e.Message);
            return null;
        }
    }

    public static virLockDaemonClient Client(virNetServerClient* client)
        => (virLockDaemonClient)GCHandle.FromIntPtr((nint)virNetServerClientGetPrivateData(client)).Target!;

    /// <summary>
    /// A lease holder's connection is gone: its leases are released, and if
    /// it held any the holder is ended (SIGTERM, then SIGKILL), because it
    /// may still be writing to the disks it no longer owns. The C daemon
    /// waits for the process on its only thread; here the wait runs apart so
    /// other clients go on being served.
    /// </summary>
    private void ClientClosed(virLockDaemonClient priv)
    {
        if (priv.ClientPid != priv.OwnerPid)
            return;
        bool hadLeases = false, gotError = false;
        lock (_lock)
        {
            void Release(ILockSpace space)
            {
                int rc = space.ReleaseResourcesForOwner(priv.ClientPid);
                if (rc > 0)
                    hadLeases = true;
                else if (rc < 0)
                    gotError = true;
            }
            foreach (var (_, space) in _lockspaces)
                Release(space);
            Release(DefaultLockspace);
        }
        if ((hadLeases || gotError) && priv.ClientPid != 0)
            _ = OwnerReaper.KillAsync(priv.ClientPid, _log);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, space) in _lockspaces)
                space.Dispose();
            _lockspaces.Clear();
        }
        DefaultLockspace.Dispose();
        if (s_instance == this)
            s_instance = null;
    }
}

/// <summary>Ends a lease owner whose connection closed with leases held,
/// with the C daemon's schedule: SIGTERM, then SIGKILL after 1.6 s, polling
/// every 200 ms for up to 3 s, off the event loop thread.</summary>
internal static class OwnerReaper
{
    public static async Task KillAsync(int pid, ILogger log)
    {
        for (int i = 0; i < 15; i++)
        {
            int signum = i == 0 ? 15 /* SIGTERM */ : i == 8 ? 9 /* SIGKILL */ : 0;
            if (virProcessKill(pid, signum) < 0)
            {
                int errno = Marshal.GetLastSystemError();
                if (errno == 3 /* ESRCH */)
                    return;
                log.LogWarning("Failed to kill off pid {Pid}", pid);
            }
            await Task.Delay(200).ConfigureAwait(false);
        }
    }
}
