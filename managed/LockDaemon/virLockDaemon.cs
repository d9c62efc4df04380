using Libvirt.Rpc;
using Libvirt.Util;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Libvirt.Host.ExecRestart;
using Libvirt.Host;
using Libvirt.Interop;
using Microsoft.Extensions.Logging;
using static Libvirt.Interop.Methods;

namespace Libvirt.LockDaemon;

/// <summary>
/// virtlockd's state (lock_daemon.c's virLockDaemon): the default lock space
/// and the named ones, of the implementation lock_space_impl chose, and
/// the client life cycle of the "virtlockd" server. libvirt's callbacks
/// reach it through their opaque (the server's for new clients, the
/// client's private data afterwards), never through a static.
/// </summary>
public sealed unsafe class virLockDaemon : IVirNetServerClientHooks, IDisposable
{
    private readonly Lock _lock = new();
    private readonly IVirLockSpaceFactory _factory;
    private readonly ILogger _log;
    // Named lock spaces, keyed by the UTF-8 bytes of their directory so a
    // lookup from the wire needs no string; there are only ever a few.
    private readonly List<(byte[] Key, IVirLockSpace Space)> _lockspaces = new();

    public IVirLockSpace DefaultLockspace { get; private set; } = null!;
    public bool Privileged { get; }

    public virLockDaemon(IVirLockSpaceFactory factory, bool privileged, ILogger log)
    {
        _factory = factory;
        Privileged = privileged;
        _log = log;
    }

    public IVirLockSpaceFactory Factory => _factory;

    /// <summary>The lock program's procedures, whichever RPC layer serves them.</summary>
    public virLockSpaceProtocolDispatch Procedures { get; } = new();

    /// <summary>A cold start: the default lock space (absolute paths).</summary>
    public VirResult CreateDefaultLockSpace()
    {
        if (!_factory.New(null).TryGet(out var def, out var err))
            return err!;
        DefaultLockspace = def;
        return VirResult.Success;
    }

    /// <summary>The lock spaces from an exec-restart state ("defaultLockspace",
    /// "lockspaces", both present: see LockDaemonMain.MissingRestartData); false (logged) when they cannot be
    /// restored.</summary>
    public bool PostExecRestart(JsonObject state)
    {
        // DaemonMain checked both keys (MissingRestartData) before restoring anything
        var defNode = (JsonObject)state["defaultLockspace"]!;
        var spaces = (JsonArray)state["lockspaces"]!;
        if (!_factory.NewPostExecRestart(defNode).TryGet(out var def, out var err))
        {
            _log.LogError("Unable to restore the default lock space: {Error}", err!.Message);
            return false;
        }
        DefaultLockspace = def;
        foreach (var node in spaces)
        {
            if (node is not JsonObject o)
            {
                _log.LogError("Malformed lockspaces data in JSON file");
                return false;
            }
            if (!_factory.NewPostExecRestart(o).TryGet(out var space, out err))
            {
                _log.LogError("Unable to restore a lock space: {Error}", err!.Message);
                return false;
            }
            lock (_lock)
                _lockspaces.Add((Libvirt.Interop.LosslessUtf8.Encode(space.Directory ?? ""), space));
        }
        return true;
    }

    /// <summary>Adds this daemon's part of the exec-restart state, in the
    /// C daemon's key order after "daemon": defaultLockspace, lockspaces.</summary>
    public VirResult PreExecRestart(JsonObject state)
    {
        lock (_lock)
        {
            if (!DefaultLockspace.PreExecRestart().TryGet(out var def, out var err))
                return err!;
            state["defaultLockspace"] = def;
            var spaces = new JsonArray();
            foreach (var (_, space) in _lockspaces)
            {
                if (!space.PreExecRestart().TryGet(out var node, out err))
                    return err!;
                spaces.Add((JsonNode)node);
            }
            state["lockspaces"] = spaces;
            return VirResult.Success;
        }
    }

    /// <summary>An empty path is the default lock space.</summary>
    public IVirLockSpace? FindLockSpace(ReadOnlySpan<byte> path)
    {
        if (path.IsEmpty)
            return DefaultLockspace;
        lock (_lock)
        {
            foreach (var (k, space) in _lockspaces)
            {
                if (path.SequenceEqual(k))
                    return space;
            }
        }
        return null;
    }

    /// <summary>Adds a lock space for directory <paramref name="path"/>.</summary>
    public VirResult<IVirLockSpace> AddLockSpace(ReadOnlySpan<byte> path)
    {
        // a path is bytes: one that is not UTF-8 names the directory it spells (LosslessUtf8)
        if (!_factory.New(Libvirt.Interop.LosslessUtf8.Decode(path)).TryGet(out var space, out var err))
            return err!;
        lock (_lock)
            _lockspaces.Add((path.ToArray(), space));
        return new VirResult<IVirLockSpace>(space);
    }

    // ---- client life cycle (called by virNetServer on the loop thread) ----

    /// <summary>virLockDaemonClientNew: only root, or the daemon's own uid
    /// when unprivileged, may connect.</summary>
    public VirResult<object> ClientNew(VirNetSocketUnixIdentity peer)
    {
        if (VirNetServerClientIdentity.Refusal(peer, Privileged, VirErrorDomain.Locking, "virLockDaemonClientNew") is { } refused)
            return refused;
        virLockDaemonClient? priv;
        lock (_spareClients)
            _spareClients.TryPop(out priv);
        priv ??= new virLockDaemonClient(this);
        priv.Reset(peer.Pid);
        return priv;
    }

    /// <summary>The data of closed connections, for the next ones.</summary>
    private readonly Stack<virLockDaemonClient> _spareClients = new();
    private const int MaxSpareClients = 64;

    /// <summary>virLockDaemonClientFree: a lease holder's leases go with its connection.</summary>
    public void ClientFree(object privateData)
    {
        var priv = (virLockDaemonClient)privateData;
        try
        {
            ClientClosed(priv);
        }
        catch (Exception e)
        {
            _log.LogError("virLockDaemonClientFree: {Error}", e.Message);
        }
        lock (_spareClients)
        {
            if (_spareClients.Count < MaxSpareClients)
                _spareClients.Push(priv);
        }
    }

    /// <summary>virLockDaemonClientPreExecRestart's object (see the native callback below).</summary>
    public VirResult<JsonNode?> ClientPreExecRestart(object privateData)
    {
        var priv = (virLockDaemonClient)privateData;
        lock (priv.Lock)
        {
            return new JsonObject
            {
                ["restricted"] = priv.Restricted,
                ["ownerPid"] = (uint)priv.OwnerPid,
                ["ownerId"] = priv.OwnerId,
                ["ownerName"] = priv.OwnerName ?? "",
                ["ownerUUID"] = VirUUID.Format(priv.OwnerUUID),
            };
        }
    }

    /// <summary>virLockDaemonClientNewPostExecRestart: the peer checked as a
    /// new one, then the saved owner.</summary>
    public VirResult<object> ClientNewPostExecRestart(VirNetSocketUnixIdentity peer, JsonNode? saved)
    {
        if (!ClientNew(peer).TryGet(out var data, out var err))
            return err!;
        var priv = (virLockDaemonClient)data;
        if (ReadSaved(saved as JsonObject, priv) is { } missing)
            return VirError.Report(VirErrorDomain.Locking, VirErrorCode.InternalError, $"Missing {missing} data in JSON document")
                .At("virLockDaemonClientNewPostExecRestart");
        return priv;
    }

    /// <summary>The saved owner into <paramref name="priv"/>; the first key missing, or null.</summary>
    private static string? ReadSaved(JsonObject? o, virLockDaemonClient priv)
    {
        if (o?["restricted"] is JsonValue r && r.TryGetValue(out bool restricted))
            priv.Restricted = restricted;
        else
            return "restricted";
        if (o["ownerPid"] is JsonValue p && p.TryGetValue(out uint ownerPid))
            priv.OwnerPid = (int)ownerPid;
        else
            return "ownerPid";
        if (o["ownerId"] is JsonValue i && i.TryGetValue(out uint ownerId))
            priv.OwnerId = ownerId;
        else
            return "ownerId";
        if (o["ownerName"] is JsonValue n && n.TryGetValue(out string? name))
            priv.OwnerName = name;
        else
            return "ownerName";
        if (!(o["ownerUUID"] is JsonValue u && u.TryGetValue(out string? uuid) && VirUUID.TryParse(uuid, priv.OwnerUUID)))
            return "ownerUUID";
        return null;
    }

    // libvirt's raw callbacks, adapted to the hooks above

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(System.Runtime.CompilerServices.CallConvCdecl) })]
    public static void* ClientNew(virNetServerClient* client, void* opaque)
    {
        try
        {
            var lockd = DaemonMain.StateFromOpaque<virLockDaemon>(opaque);
            if (VirNetServerClientIdentity.NativePeer(client) is not { } peer)
                return null;
            if (!lockd.ClientNew(peer).TryGet(out var priv, out var err))
            {
                VirErrorNative.Raise(err!, "virLockDaemonClientNew");
                return null;
            }
            // neither protocol has a closing handshake
            virNetServerClientSetQuietEOF(client);
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
            priv.Daemon.ClientFree(priv);
        }
        catch (Exception)
        {
            // a bad opaque: nothing to release, and nothing may escape into libvirt
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
            if (!priv.Daemon.ClientPreExecRestart(priv).TryGet(out var o, out var err))
            {
                VirErrorNative.Raise(err!, "virLockDaemonClientPreExecRestart");
                return null;
            }
            return VirJSONNative.ToNative(o!);
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
            var lockd = DaemonMain.StateFromOpaque<virLockDaemon>(opaque);
            int pid = VirNetServerClientIdentity.Check(client, lockd.Privileged, virErrorDomain.VIR_FROM_LOCKING, "virLockDaemonClientNew");
            if (pid < 0)
                return null;
            var o = VirJSONNative.ReadNative(obj) as JsonObject;
            var priv = new virLockDaemonClient(lockd) { ClientPid = pid };
            string? missing = ReadSaved(o, priv);
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
            void Release(IVirLockSpace space)
            {
                var rc = space.ReleaseResourcesForOwner(priv.ClientPid);
                if (!rc.Ok)
                {
                    gotError = true;
                    if (!rc.Error!.Logged) // as libvirt logs what it raises
                        _log.LogError("Unable to release leases of pid {Pid}: {Error}", priv.ClientPid, rc.Error.Message);
                }
                else if (rc.Value > 0)
                    hadLeases = true;
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
        DefaultLockspace?.Dispose();
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
            if (Libc.ProcessKill(pid, signum) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == 3 /* ESRCH */)
                    return;
                log.LogWarning("Failed to kill off pid {Pid}", pid);
            }
            await Task.Delay(200).ConfigureAwait(false);
        }
    }
}
