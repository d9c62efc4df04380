using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.LockDaemon;

/// <summary>Per-procedure success and error behaviour of the lock protocol (program 0xEA7BEEF v1).</summary>
public class ProcedureTests
{
    public static TheoryData<DaemonKind> Kinds => DaemonKinds.All;

    public static TheoryData<DaemonKind, int> KindsAndRegisteredProcs()
    {
        var d = new TheoryData<DaemonKind, int>();
        foreach (var k in DaemonKinds.Array)
            foreach (var p in new[] { LockProtocol.ProcRestrict, LockProtocol.ProcNew, LockProtocol.ProcCreateResource,
                                       LockProtocol.ProcDeleteResource, LockProtocol.ProcAcquireResource, LockProtocol.ProcReleaseResource })
                d.Add(k, p);
        return d;
    }

    private static byte[] ArgsFor(int proc, string path, uint flags = 0) => proc switch
    {
        LockProtocol.ProcRegister => LockProtocol.RegisterArgs(new byte[16], "x", 1, 1, flags),
        LockProtocol.ProcRestrict => LockProtocol.FlagsArgs(flags),
        LockProtocol.ProcNew => LockProtocol.NewArgs(path, flags),
        LockProtocol.ProcCreateLockspace => LockProtocol.CreateLockspaceArgs(path),
        _ => LockProtocol.ResourceArgs(path, "res", flags),
    };

    [Theory]
    [MemberData(nameof(KindsAndRegisteredProcs))]
    public async Task Unregistered_client_is_refused(DaemonKind kind, int proc)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        using var c = await env.ConnectAsync();
        var err = await c.CallAsync(proc, ArgsFor(proc, Path.Combine(env.TempDir, "ls")));
        RpcAssert.Error(err, Err.OperationInvalid, Err.FromRpc, Err.NotRegistered);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Register_with_id_zero_is_refused_and_client_stays_unregistered(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var owner = env.Sandbox.StartOwnerChild();
        using var c = await env.ConnectAsync();
        RpcAssert.Error(await c.RegisterAsync((uint)owner.Pid, id: 0), Err.OperationInvalid, Err.FromRpc, Err.NotRegistered);
        RpcAssert.Error(await c.RestrictAsync(), Err.OperationInvalid, Err.FromRpc, Err.NotRegistered);
        RpcAssert.Ok(await c.RegisterAsync((uint)owner.Pid, id: 7));
        RpcAssert.Ok(await c.RestrictAsync());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Register_twice_is_allowed(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, owner) = await env.ConnectOwnerAsync();
        using var _ = c;
        RpcAssert.Ok(await c.RegisterAsync((uint)owner.Pid, id: 2, name: "again"));
    }

    public static TheoryData<DaemonKind, int, uint, string> UnsupportedFlagCases()
    {
        var d = new TheoryData<DaemonKind, int, uint, string>();
        foreach (var k in DaemonKinds.Array)
        {
            d.Add(k, LockProtocol.ProcRegister, 0x4, "virLockSpaceProtocolDispatchRegister");
            d.Add(k, LockProtocol.ProcRestrict, 0x1, "virLockSpaceProtocolDispatchRestrict");
            d.Add(k, LockProtocol.ProcNew, 0x1, "virLockSpaceProtocolDispatchNew");
            d.Add(k, LockProtocol.ProcCreateResource, 0x1, "virLockSpaceProtocolDispatchCreateResource");
            d.Add(k, LockProtocol.ProcDeleteResource, 0x1, "virLockSpaceProtocolDispatchDeleteResource");
            d.Add(k, LockProtocol.ProcAcquireResource, 0x4, "virLockSpaceProtocolDispatchAcquireResource");
            d.Add(k, LockProtocol.ProcAcquireResource, 0x80000000, "virLockSpaceProtocolDispatchAcquireResource");
            d.Add(k, LockProtocol.ProcReleaseResource, 0x2, "virLockSpaceProtocolDispatchReleaseResource");
        }
        return d;
    }

    /// <summary>Flags are checked first — before the restricted and registered checks.</summary>
    [Theory]
    [MemberData(nameof(UnsupportedFlagCases))]
    public async Task Unsupported_flags_are_rejected_first(DaemonKind kind, int proc, uint flags, string function)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        using var c = await env.ConnectAsync(); // unregistered on purpose
        var err = await c.CallAsync(proc, ArgsFor(proc, Path.Combine(env.TempDir, "ls"), flags));
        RpcAssert.Error(err, Err.InvalidArg, Err.FromRpc, Err.UnsupportedFlags(flags, function));
        // full virNetMessageError layout as produced by virReportInvalidArg
        Assert.Equal(function, err!.Str1);
        Assert.Equal("flags", err.Str2);
        Assert.Null(err.Str3);
        Assert.Equal(0, err.Int1);
        Assert.Equal(0, err.Int2);
        Assert.Null(err.Dom);
        Assert.Null(err.Net);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Generic_error_struct_fields(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        using var c = await env.ConnectAsync();
        var err = await c.AcquireResourceAsync("", "/x");
        RpcAssert.Error(err, Err.OperationInvalid, Err.FromRpc, Err.NotRegistered);
        Assert.Equal("Requested operation is not valid: %s", err!.Str1);
        Assert.Equal("lock owner details have not been registered", err.Str2);
        Assert.Null(err.Str3);
        Assert.Equal(-1, err.Int1);
        Assert.Equal(-1, err.Int2);
        Assert.Null(err.Dom);
        Assert.Null(err.Net);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task New_with_empty_path_is_refused(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        RpcAssert.Error(await c.NewAsync(""), Err.OperationInvalid, Err.FromRpc,
            "Requested operation is not valid: the default lockspace already exists");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task New_creates_directory_and_refuses_existing_path(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        var ls = Path.Combine(env.TempDir, "newls");
        RpcAssert.Ok(await c.NewAsync(ls));
        Assert.True(Directory.Exists(ls), "NEW must create the lockspace directory");
        RpcAssert.Error(await c.NewAsync(ls), Err.InternalError, Err.FromRpc,
            $"internal error: Lockspace for path {ls} already exists");
        // a lockspace made by CREATE_LOCKSPACE also counts as existing for NEW
        var ls2 = Path.Combine(env.TempDir, "cls");
        RpcAssert.Ok(await c.CreateLockspaceAsync(ls2));
        RpcAssert.Error(await c.NewAsync(ls2), Err.InternalError, Err.FromRpc,
            $"internal error: Lockspace for path {ls2} already exists");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task CreateLockspace_is_idempotent_and_needs_no_registration(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        using var c = await env.ConnectAsync();
        var ls = Path.Combine(env.TempDir, "a", "b");
        RpcAssert.Ok(await c.CreateLockspaceAsync(ls));
        Assert.True(Directory.Exists(ls));
        RpcAssert.Ok(await c.CreateLockspaceAsync(ls));
        RpcAssert.Ok(await c.CreateLockspaceAsync(ls));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Missing_lockspace_is_reported_by_resource_procs(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        var nope = Path.Combine(env.TempDir, "nope");
        foreach (var proc in new[] { LockProtocol.ProcCreateResource, LockProtocol.ProcDeleteResource,
                                     LockProtocol.ProcAcquireResource, LockProtocol.ProcReleaseResource })
            RpcAssert.Error(await c.CallAsync(proc, LockProtocol.ResourceArgs(nope, "r")),
                Err.InternalError, Err.FromRpc, Err.NoLockspace(nope));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Restrict_then_every_call_is_denied(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, owner) = await env.ConnectOwnerAsync();
        using var __ = c;
        var ls = await env.CreateLockspaceAsync(c);
        RpcAssert.Ok(await c.RestrictAsync());
        var calls = new (int Proc, byte[] Args)[]
        {
            (LockProtocol.ProcRegister, LockProtocol.RegisterArgs(new byte[16], "x", 1, (uint)owner.Pid)),
            (LockProtocol.ProcRestrict, LockProtocol.FlagsArgs(0)),
            (LockProtocol.ProcNew, LockProtocol.NewArgs(Path.Combine(env.TempDir, "n"))),
            (LockProtocol.ProcCreateResource, LockProtocol.ResourceArgs(ls, "r")),
            (LockProtocol.ProcDeleteResource, LockProtocol.ResourceArgs(ls, "r")),
            (LockProtocol.ProcAcquireResource, LockProtocol.ResourceArgs(ls, "r", LockProtocol.AcquireAutoCreate)),
            (LockProtocol.ProcReleaseResource, LockProtocol.ResourceArgs(ls, "r")),
            (LockProtocol.ProcCreateLockspace, LockProtocol.CreateLockspaceArgs(ls)),
        };
        foreach (var (proc, args) in calls)
            RpcAssert.Error(await c.CallAsync(proc, args), Err.OperationDenied, Err.FromRpc, Err.Restricted);
        // restriction is per connection: a new connection is unaffected
        using var c2 = await env.ConnectAsync();
        RpcAssert.Ok(await c2.CreateLockspaceAsync(ls));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Restricted_flag_check_precedes_restriction(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        RpcAssert.Ok(await c.RestrictAsync());
        RpcAssert.Error(await c.AcquireResourceAsync("", "/x", 0x8), Err.InvalidArg, Err.FromRpc,
            Err.UnsupportedFlags(0x8, "virLockSpaceProtocolDispatchAcquireResource"));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Resource_lifecycle_create_acquire_release_delete(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        var ls = await env.CreateLockspaceAsync(c);
        var file = Path.Combine(ls, "r");

        // acquire without AUTOCREATE on a missing file: system error with errno text
        var err = await c.AcquireResourceAsync(ls, "r");
        RpcAssert.Error(err, Err.SystemError, Err.FromLockspace, $"Unable to open resource {file}: No such file or directory");
        Assert.Equal(2, err!.Int1); // errno ENOENT

        RpcAssert.Ok(await c.CreateResourceAsync(ls, "r"));
        Assert.True(File.Exists(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        RpcAssert.Ok(await c.CreateResourceAsync(ls, "r")); // touching an unheld resource again is fine

        RpcAssert.Ok(await c.AcquireResourceAsync(ls, "r"));
        RpcAssert.Locked(await c.AcquireResourceAsync(ls, "r"), "r");
        RpcAssert.Locked(await c.CreateResourceAsync(ls, "r"), "r");
        RpcAssert.Locked(await c.DeleteResourceAsync(ls, "r"), "r");

        RpcAssert.Ok(await c.ReleaseResourceAsync(ls, "r"));
        RpcAssert.Error(await c.ReleaseResourceAsync(ls, "r"), Err.ResourceBusy, Err.FromLockspace, Err.NotLocked("r"));

        RpcAssert.Ok(await c.DeleteResourceAsync(ls, "r"));
        Assert.False(File.Exists(file));
        RpcAssert.Ok(await c.DeleteResourceAsync(ls, "r")); // deleting a missing file is not an error
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Acquire_autocreate_creates_file(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        var ls = await env.CreateLockspaceAsync(c);
        RpcAssert.Ok(await c.AcquireResourceAsync(ls, "auto", LockProtocol.AcquireAutoCreate));
        Assert.True(File.Exists(Path.Combine(ls, "auto")));
        RpcAssert.Ok(await c.ReleaseResourceAsync(ls, "auto"));
        Assert.False(File.Exists(Path.Combine(ls, "auto")), "autocreated file is unlinked on release");
        // shared + autocreate: unlinked when the last holder releases
        RpcAssert.Ok(await c.AcquireResourceAsync(ls, "sh", LockProtocol.AcquireAutoCreate | LockProtocol.AcquireShared));
        RpcAssert.Ok(await c.ReleaseResourceAsync(ls, "sh"));
        Assert.False(File.Exists(Path.Combine(ls, "sh")));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Default_lockspace_uses_absolute_resource_paths(DaemonKind kind)
    {
        await using var env = await DaemonEnv.StartAsync(kind);
        var (c, _) = await env.ConnectOwnerAsync();
        using var __ = c;
        var file = Path.Combine(env.TempDir, "deflock");
        RpcAssert.Ok(await c.AcquireResourceAsync("", file, LockProtocol.AcquireAutoCreate));
        Assert.True(File.Exists(file));
        RpcAssert.Locked(await c.AcquireResourceAsync("", file, LockProtocol.AcquireAutoCreate), file);
        RpcAssert.Ok(await c.ReleaseResourceAsync("", file));
    }
}
