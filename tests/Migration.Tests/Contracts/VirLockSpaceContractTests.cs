using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;

namespace Libvirt.Tests.Contracts;

/// <summary>
/// The lock space contract, run against every implementation with the same
/// expectations: libvirt's own tests/virlockspacetest.c cases, then the
/// rest of virlockspace.c's behaviour (errors field by field, the locks as
/// /proc/locks shows them, exec restart across implementations).
/// </summary>
public sealed class VirLockSpaceContractTests : IClassFixture<LibvirtFixture>, IDisposable
{
    public static TheoryData<string> Impls => new(VirImplementations.Names);

    /// <summary>Who saves before the exec, who restores after, and whether
    /// the lock space has a directory or is the default one.</summary>
    public static TheoryData<string, string, bool> RestartPairs
    {
        get
        {
            var data = new TheoryData<string, string, bool>();
            foreach (var saver in VirImplementations.Names)
                foreach (var restorer in VirImplementations.Names)
                    foreach (bool withDir in new[] { true, false })
                        data.Add(saver, restorer, withDir);
            return data;
        }
    }

    private const VirLockSpaceAcquireFlags Excl = VirLockSpaceAcquireFlags.None;
    private const VirLockSpaceAcquireFlags Shared = VirLockSpaceAcquireFlags.Shared;
    private const VirLockSpaceAcquireFlags Auto = VirLockSpaceAcquireFlags.AutoCreate;
    private const VirLockSpaceAcquireFlags SharedAuto = Shared | Auto;
    private const int Owner = 4242, Owner2 = 4343, Owner3 = 4444;

    // A lock space whose state went to an exec-restart document is left
    // alone for good, as the process image it lived in would be gone: freeing
    // it would close fds the restored one now owns.
    private static readonly List<IVirLockSpace> s_abandoned = new();

    private readonly TempDirectory _tmp = new("vls-contract-");
    private readonly List<IVirLockSpace> _spaces = new();

    public VirLockSpaceContractTests(LibvirtFixture libvirt) => _ = libvirt;

    public void Dispose()
    {
        foreach (var ls in _spaces)
            ls.Dispose();
        _tmp.Dispose();
    }

    // ---- helpers ----

    private static IVirLockSpaceFactory Factory(string impl)
        => VirImplementations.LockSpace(impl) ?? throw new InvalidOperationException($"no lock space implementation {impl}");

    private IVirLockSpace Track(IVirLockSpace ls)
    {
        _spaces.Add(ls);
        return ls;
    }

    private IVirLockSpace New(string impl, string? dir) => Track(Factory(impl).New(dir).Value);

    private static void Abandon(IVirLockSpace ls)
    {
        lock (s_abandoned) s_abandoned.Add(ls);
    }

    private static byte[] N(string s) => Encoding.UTF8.GetBytes(s);

    private static VirError Busy(string name) => VirError.Report(VirErrorDomain.LockSpace, VirErrorCode.ResourceBusy, $"Lockspace resource '{name}' is locked");
    private static VirError NotLocked(string name) => VirError.Report(VirErrorDomain.LockSpace, VirErrorCode.ResourceBusy, $"Lockspace resource '{name}' is not locked");
    private static VirError Internal(string detail) => VirError.Report(VirErrorDomain.LockSpace, VirErrorCode.InternalError, detail);
    private static VirError Sys(int errno, string detail) => VirError.System(VirErrorDomain.LockSpace, errno, detail);

    private static string Describe(VirError? e) => e is null
        ? "(success)"
        : $"code={e.Code} domain={e.Domain} level={e.Level} message=[{e.Message}] str1=[{e.Str1}] str2=[{e.Str2}] str3=[{e.Str3}] int1={e.Int1} int2={e.Int2}";

    /// <summary>Every field of the error, as libvirt's virError has them.</summary>
    private static void AssertError(VirError expected, VirResult actual) => Assert.Equal(Describe(expected), Describe(actual.Error));
    private static void AssertError<T>(VirError expected, VirResult<T> actual) => Assert.Equal(Describe(expected), Describe(actual.Error));

    private static void Ok(VirResult r, string what = "call") => Assert.True(r.Ok, $"{what}: {Describe(r.Error)}");

    private static bool Exists(string path) => File.Exists(path) || Directory.Exists(path);

    private static unsafe bool ExistsRaw(byte[] path)
    {
        var z = new byte[path.Length + 1];
        path.CopyTo(z, 0);
        fixed (byte* p = z)
            return Libc.access(p, Libc.F_OK) == 0;
    }

    private static bool CloseOnExec(int fd)
    {
        int flags = Libc.fcntl(fd, Libc.F_GETFD, 0);
        Assert.True(flags >= 0, $"fd {fd} is not open");
        return (flags & Libc.FD_CLOEXEC) != 0;
    }

    private static IEnumerable<JsonObject> Resources(JsonObject doc) => doc["resources"]!.AsArray().Select(r => r!.AsObject());

    private static JsonObject Resource(JsonObject doc, string name) => Resources(doc).Single(r => (string)r["name"]! == name);

    private static int FdOf(JsonObject doc, string name) => (int)Resource(doc, name)["fd"]!;

    /// <summary>The document with resources in name order (C keeps them in hash order).</summary>
    private static string Canonical(JsonObject doc)
    {
        var copy = JsonNode.Parse(doc.ToJsonString())!.AsObject();
        var sorted = Resources(copy).OrderBy(r => (string)r["name"]!, StringComparer.Ordinal).Select(r => r.DeepClone()).ToArray();
        copy["resources"] = new JsonArray(sorted);
        return copy.ToJsonString();
    }

    // ---- libvirt's tests/virlockspacetest.c ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void New_creates_the_directory(string impl)
    {
        string dir = _tmp["a/b/lockspace"];
        var ls = New(impl, dir);
        Assert.True(Directory.Exists(dir));
        Assert.Equal(dir, ls.Directory);
        // g_mkdir_with_parents(dir, 0700): parents too, each 0700 (less the umask)
        foreach (var d in new[] { _tmp["a"], _tmp["a/b"], dir })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(d));
        // and an existing directory is just used
        var again = New(impl, dir);
        Assert.Equal(dir, again.Directory);
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Resource_lifecycle(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("foo")));
        Assert.True(File.Exists(Path.Combine(dir, "foo")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "foo")));
        Ok(ls.DeleteResource(N("foo")));
        Assert.False(File.Exists(Path.Combine(dir, "foo")));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Exclusive_lock(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("foo")));
        Ok(ls.AcquireResource(N("foo"), Owner, Excl));
        Assert.True(File.Exists(Path.Combine(dir, "foo")));
        AssertError(Busy("foo"), ls.AcquireResource(N("foo"), Owner, Excl));
        AssertError(Busy("foo"), ls.DeleteResource(N("foo")));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        Ok(ls.DeleteResource(N("foo")));
        Assert.False(File.Exists(Path.Combine(dir, "foo")));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Shared_lock(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("foo")));
        Ok(ls.AcquireResource(N("foo"), Owner, Shared));
        AssertError(Busy("foo"), ls.AcquireResource(N("foo"), Owner, Excl));
        Ok(ls.AcquireResource(N("foo"), Owner, Shared));
        AssertError(Busy("foo"), ls.DeleteResource(N("foo")));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        AssertError(Busy("foo"), ls.DeleteResource(N("foo")));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        Ok(ls.DeleteResource(N("foo")));
        Assert.False(File.Exists(Path.Combine(dir, "foo")));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Exclusive_autocreate_lock_unlinks_on_release(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("foo")));
        Ok(ls.AcquireResource(N("foo"), Owner, Auto));
        Assert.True(File.Exists(Path.Combine(dir, "foo")));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        Assert.False(File.Exists(Path.Combine(dir, "foo")));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Shared_autocreate_lock_unlinks_on_last_release(string impl)
    {
        string dir = _tmp["ls"], foo = Path.Combine(dir, "foo");
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("foo")));
        Ok(ls.AcquireResource(N("foo"), Owner, SharedAuto));
        Assert.True(File.Exists(foo));
        AssertError(Busy("foo"), ls.AcquireResource(N("foo"), Owner, Auto));
        Assert.True(File.Exists(foo));
        Ok(ls.AcquireResource(N("foo"), Owner, SharedAuto));
        Assert.True(File.Exists(foo));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        Assert.True(File.Exists(foo));
        Ok(ls.ReleaseResource(N("foo"), Owner));
        Assert.False(File.Exists(foo));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Default_lock_space_takes_full_paths(string impl)
    {
        var ls = New(impl, null);
        Assert.Null(ls.Directory);
        string foo = _tmp["foo"];
        Ok(ls.CreateResource(N(foo)));
        Ok(ls.AcquireResource(N(foo), Owner, Excl));
        Assert.True(File.Exists(foo));
        AssertError(Busy(foo), ls.AcquireResource(N(foo), Owner, Excl));
        AssertError(Busy(foo), ls.DeleteResource(N(foo)));
        Ok(ls.ReleaseResource(N(foo), Owner));
        Ok(ls.DeleteResource(N(foo)));
        Assert.False(File.Exists(foo));
    }

    // ---- lock space creation ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void New_refuses_a_location_that_is_not_a_directory(string impl)
    {
        string file = _tmp["file"];
        File.WriteAllText(file, "x");
        AssertError(Internal($"Lockspace location {file} exists, but is not a directory"), Factory(impl).New(file));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void New_fails_when_a_parent_is_a_file(string impl)
    {
        string file = _tmp["file"];
        File.WriteAllText(file, "x");
        string dir = file + "/sub/ls";
        AssertError(Sys(Libc.ENOTDIR, $"Unable to create lockspace {dir}"), Factory(impl).New(dir));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void New_with_an_empty_directory_name_fails(string impl)
    {
        AssertError(Sys(Libc.EINVAL, "Unable to create lockspace "), Factory(impl).New(""));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void New_refuses_a_dangling_symlink(string impl)
    {
        // access() says missing, then mkdir says EEXIST and stat no directory
        string link = _tmp["link"];
        File.CreateSymbolicLink(link, _tmp["nowhere"]);
        AssertError(Sys(Libc.ENOTDIR, $"Unable to create lockspace {link}"), Factory(impl).New(link));
        Assert.False(Directory.Exists(_tmp["nowhere"]));
    }

    // ---- the locks themselves ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void Locks_are_posix_record_locks_on_the_first_byte(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.AcquireResource(N("x"), Owner, Auto));
        Ok(ls.AcquireResource(N("s"), Owner, SharedAuto));
        Ok(ls.AcquireResource(N("s"), Owner2, SharedAuto));
        var x = ProcLocks.Identify(Path.Combine(dir, "x"));
        var s = ProcLocks.Identify(Path.Combine(dir, "s"));

        // process-associated fcntl locks (not flock, not OFD), pid = this process, byte 0 only
        var onX = Assert.Single(ProcLocks.On(x));
        Assert.Equal(("POSIX", "WRITE", Environment.ProcessId, 0L, "0"), (onX.Kind, onX.Access, onX.Pid, onX.Start, onX.End));
        var onS = Assert.Single(ProcLocks.On(s)); // two owners, one lock
        Assert.Equal(("POSIX", "READ", Environment.ProcessId, 0L, "0"), (onS.Kind, onS.Access, onS.Pid, onS.Start, onS.End));

        Ok(ls.ReleaseResource(N("x"), Owner));
        Assert.Empty(ProcLocks.On(x));
        Ok(ls.ReleaseResource(N("s"), Owner));
        Assert.Single(ProcLocks.Mine(s));
        Ok(ls.ReleaseResource(N("s"), Owner2));
        Assert.Empty(ProcLocks.On(s));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void A_resource_locked_by_another_process_is_busy(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        using (FcntlLockHolder.Start(Path.Combine(dir, "w"), shared: false))
        {
            AssertError(Busy("w"), ls.AcquireResource(N("w"), Owner, Excl));
            AssertError(Busy("w"), ls.AcquireResource(N("w"), Owner, Shared));
            AssertError(Busy("w"), ls.AcquireResource(N("w"), Owner, SharedAuto));
            // a failed acquire holds nothing
            Ok(ls.DeleteResource(N("w")));
        }
        using (FcntlLockHolder.Start(Path.Combine(dir, "r"), shared: true))
        {
            AssertError(Busy("r"), ls.AcquireResource(N("r"), Owner, Auto));
            Ok(ls.AcquireResource(N("r"), Owner, Shared));
            Assert.Equal(2, ProcLocks.On(ProcLocks.Identify(Path.Combine(dir, "r"))).Count);
            Ok(ls.ReleaseResource(N("r"), Owner));
        }
        // once the other process is gone, it is free
        Ok(ls.AcquireResource(N("w"), Owner, Auto));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void A_shared_autocreated_file_is_kept_while_another_process_holds_it(string impl)
    {
        string dir = _tmp["ls"], path = Path.Combine(dir, "s");
        var ls = New(impl, dir);
        using (var other = FcntlLockHolder.Start(path, shared: true))
        {
            var id = ProcLocks.Identify(path);
            Ok(ls.AcquireResource(N("s"), Owner, SharedAuto));
            Ok(ls.ReleaseResource(N("s"), Owner));
            // the upgrade to exclusive before unlinking failed: file kept, our lock gone
            Assert.True(File.Exists(path));
            var left = Assert.Single(ProcLocks.On(id));
            Assert.Equal(other.Pid, left.Pid);
        }
        Ok(ls.AcquireResource(N("s"), Owner, SharedAuto));
        Ok(ls.ReleaseResource(N("s"), Owner));
        Assert.False(File.Exists(path));
    }

    // ---- owners ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void Two_owners_share_a_resource_until_both_release(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.AcquireResource(N("s"), Owner, SharedAuto));
        Ok(ls.AcquireResource(N("s"), Owner2, Shared)); // flags of the first acquire rule
        var id = ProcLocks.Identify(Path.Combine(dir, "s"));
        AssertError(Busy("s"), ls.AcquireResource(N("s"), Owner3, Auto));
        AssertError(Internal($"owner {Owner3} does not hold the resource lock"), ls.ReleaseResource(N("s"), Owner3));
        Ok(ls.ReleaseResource(N("s"), Owner));
        AssertError(Internal($"owner {Owner} does not hold the resource lock"), ls.ReleaseResource(N("s"), Owner));
        AssertError(Busy("s"), ls.AcquireResource(N("s"), Owner3, Auto));
        Assert.Single(ProcLocks.Mine(id));
        Ok(ls.ReleaseResource(N("s"), Owner2));
        Assert.Empty(ProcLocks.On(id));
        Assert.False(File.Exists(Path.Combine(dir, "s")));
        AssertError(NotLocked("s"), ls.ReleaseResource(N("s"), Owner2));
        Ok(ls.AcquireResource(N("s"), Owner3, Auto));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Exclusive_then_shared_is_busy_and_shared_then_exclusive_too(string impl)
    {
        var ls = New(impl, _tmp["ls"]);
        Ok(ls.AcquireResource(N("x"), Owner, Auto));
        AssertError(Busy("x"), ls.AcquireResource(N("x"), Owner2, SharedAuto));
        AssertError(Busy("x"), ls.AcquireResource(N("x"), Owner, Auto)); // even for its owner
        Ok(ls.AcquireResource(N("s"), Owner, SharedAuto));
        AssertError(Busy("s"), ls.AcquireResource(N("s"), Owner2, Auto));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void ReleaseResourcesForOwner_counts_and_frees(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.AcquireResource(N("x"), Owner, Auto));
        Ok(ls.AcquireResource(N("both"), Owner, SharedAuto));
        Ok(ls.AcquireResource(N("both"), Owner2, SharedAuto));
        Ok(ls.AcquireResource(N("twice"), Owner, SharedAuto));
        Ok(ls.AcquireResource(N("twice"), Owner, SharedAuto));
        Ok(ls.AcquireResource(N("other"), Owner2, Auto));

        Assert.Equal(3, ls.ReleaseResourcesForOwner(Owner).Value);
        Assert.False(File.Exists(Path.Combine(dir, "x")));
        Assert.True(File.Exists(Path.Combine(dir, "both")));
        // one lease of "twice" went, the other is still held
        Assert.True(File.Exists(Path.Combine(dir, "twice")));
        AssertError(Busy("twice"), ls.AcquireResource(N("twice"), Owner2, Auto));

        Assert.Equal(1, ls.ReleaseResourcesForOwner(Owner).Value);
        Assert.False(File.Exists(Path.Combine(dir, "twice")));
        Assert.Equal(0, ls.ReleaseResourcesForOwner(Owner).Value);
        AssertError(Busy("both"), ls.AcquireResource(N("both"), Owner3, Auto));
        Assert.Equal(2, ls.ReleaseResourcesForOwner(Owner2).Value);
        Assert.False(File.Exists(Path.Combine(dir, "both")));
        Assert.False(File.Exists(Path.Combine(dir, "other")));
        Assert.Empty(Resources(ls.PreExecRestart().Value));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Owner_pids_are_reported_as_signed(string impl)
    {
        var ls = New(impl, _tmp["ls"]);
        Ok(ls.AcquireResource(N("r"), -5, SharedAuto));
        AssertError(Internal("owner -7 does not hold the resource lock"), ls.ReleaseResource(N("r"), -7));
        Ok(ls.ReleaseResource(N("r"), -5));
    }

    // ---- bad input ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void Unsupported_flags_are_refused_as_virCheckFlags_does(string impl)
    {
        var ls = New(impl, _tmp["ls"]);
        // virReportInvalidArg: no "invalid argument" prefix, str1 the function, str2 the argument
        var expected = new VirError((int)VirErrorCode.InvalidArg, (int)VirErrorDomain.LockSpace,
            "unsupported flags (0xc) in function virLockSpaceAcquireResource",
            Str1: "virLockSpaceAcquireResource", Str2: "flags", Int1: 0, Int2: 0);
        AssertError(expected, ls.AcquireResource(N("r"), Owner, SharedAuto | (VirLockSpaceAcquireFlags)0xc));
        Assert.False(File.Exists(_tmp["ls/r"]));
        // checked before the lookup, even for a held resource
        Ok(ls.AcquireResource(N("r"), Owner, SharedAuto));
        AssertError(expected, ls.AcquireResource(N("r"), Owner2, SharedAuto | (VirLockSpaceAcquireFlags)0xc));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Acquire_reports_open_failures_with_the_path(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        AssertError(Sys(Libc.ENOENT, $"Unable to open resource {dir}/missing"), ls.AcquireResource(N("missing"), Owner, Excl));
        AssertError(Sys(Libc.ENOENT, $"Unable to open resource {dir}/missing"), ls.AcquireResource(N("missing"), Owner, Shared));
        AssertError(Sys(Libc.ENOENT, $"Unable to open/create resource {dir}/no/such"), ls.AcquireResource(N("no/such"), Owner, Auto));
        AssertError(Sys(Libc.EISDIR, $"Unable to open resource {dir}/sub"), ls.AcquireResource(N("sub"), Owner, Excl));
        AssertError(Sys(Libc.EISDIR, $"Unable to open/create resource {dir}/sub"), ls.AcquireResource(N("sub"), Owner, SharedAuto));
        AssertError(Sys(Libc.EISDIR, $"Unable to open resource {dir}/"), ls.AcquireResource(N(""), Owner, Excl));
        AssertError(Sys(Libc.EISDIR, $"Unable to open/create resource {dir}/.."), ls.AcquireResource(N(".."), Owner, Auto));
        // a failure leaves nothing held
        AssertError(NotLocked("sub"), ls.ReleaseResource(N("sub"), Owner));
        Assert.Empty(Resources(ls.PreExecRestart().Value));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Create_and_delete_errors(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        // virFileTouch reports from virfile.c: no error domain
        AssertError(VirError.System(VirErrorDomain.None, Libc.ENOENT, $"cannot create file '{dir}/no/such'"), ls.CreateResource(N("no/such")));
        AssertError(VirError.System(VirErrorDomain.None, Libc.EISDIR, $"cannot create file '{dir}/'"), ls.CreateResource(N("")));

        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        AssertError(Sys(Libc.EISDIR, $"Unable to delete lockspace resource {dir}/sub"), ls.DeleteResource(N("sub")));
        Ok(ls.DeleteResource(N("never-created"))); // ENOENT is fine

        // creating an existing file keeps its content; either is refused while held
        File.WriteAllText(Path.Combine(dir, "kept"), "content");
        Ok(ls.CreateResource(N("kept")));
        Assert.Equal("content", File.ReadAllText(Path.Combine(dir, "kept")));
        Ok(ls.AcquireResource(N("kept"), Owner, Shared));
        AssertError(Busy("kept"), ls.CreateResource(N("kept")));
        AssertError(Busy("kept"), ls.DeleteResource(N("kept")));
        Ok(ls.ReleaseResource(N("kept"), Owner));
        Assert.True(File.Exists(Path.Combine(dir, "kept"))); // not auto-created: kept
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Names_are_C_strings_of_bytes(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        // a NUL ends the name, as it would in C
        Ok(ls.AcquireResource(N("foo\0bar"), Owner, Auto));
        Assert.True(File.Exists(Path.Combine(dir, "foo")));
        AssertError(Busy("foo"), ls.AcquireResource(N("foo"), Owner2, Auto));
        Ok(ls.ReleaseResource(N("foo\0other"), Owner));

        // bytes that are not UTF-8 name the file they spell
        byte[] odd = [(byte)'r', 0xff, (byte)'x'];
        Ok(ls.AcquireResource(odd, Owner, Auto));
        Assert.True(ExistsRaw([.. N(dir + "/"), .. odd]));
        // the message keeps the name's bytes (0xff as U+DCFF, LosslessUtf8), as C's does
        AssertError(Busy("r\uDCFFx"), ls.AcquireResource(odd, Owner2, Auto));
        Ok(ls.ReleaseResource(odd, Owner));
        Assert.False(ExistsRaw([.. N(dir + "/"), .. odd]));
    }

    // ---- freeing ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void Freeing_the_lock_space_drops_locks_and_autocreated_files(string impl)
    {
        string dir = _tmp["ls"];
        var ls = Factory(impl).New(dir).Value;
        Ok(ls.CreateResource(N("plain")));
        Ok(ls.AcquireResource(N("plain"), Owner, Excl));
        Ok(ls.AcquireResource(N("auto"), Owner, Auto));
        Ok(ls.AcquireResource(N("shared"), Owner, SharedAuto));
        var ids = new[] { "plain", "auto", "shared" }.Select(n => ProcLocks.Identify(Path.Combine(dir, n))).ToArray();
        ls.Dispose();
        Assert.All(ids, id => Assert.Empty(ProcLocks.On(id)));
        Assert.True(File.Exists(Path.Combine(dir, "plain")));
        Assert.False(File.Exists(Path.Combine(dir, "auto")));
        Assert.False(File.Exists(Path.Combine(dir, "shared")));
    }

    // ---- exec restart ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void PreExecRestart_writes_virtlockd_9_0_0s_document(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        Ok(ls.CreateResource(N("plain")));
        Ok(ls.AcquireResource(N("plain"), Owner, Excl));
        Ok(ls.AcquireResource(N("s"), Owner, Shared | Auto));
        Ok(ls.AcquireResource(N("s"), Owner2, Shared));
        Ok(ls.AcquireResource(N("s"), Owner, Shared));
        Ok(ls.AcquireResource(N("neg"), -1, Auto));

        var doc = ls.PreExecRestart().Value;
        Assert.Equal(["directory", "resources"], doc.Select(kv => kv.Key));
        Assert.Equal(dir, (string)doc["directory"]!);
        Assert.Equal(3, Resources(doc).Count());
        foreach (var r in Resources(doc))
        {
            Assert.Equal(["name", "path", "fd", "lockHeld", "flags", "owners"], r.Select(kv => kv.Key));
            Assert.Equal(JsonValueKind.String, r["name"]!.GetValueKind());
            Assert.Equal(JsonValueKind.String, r["path"]!.GetValueKind());
            Assert.Equal(JsonValueKind.Number, r["fd"]!.GetValueKind());
            Assert.Equal(JsonValueKind.True, r["lockHeld"]!.GetValueKind());
            Assert.Equal(JsonValueKind.Number, r["flags"]!.GetValueKind());
            Assert.Equal($"{dir}/{r["name"]}", (string)r["path"]!);
            // inheritable now, so the lock survives exec
            Assert.False(CloseOnExec((int)r["fd"]!));
        }
        Assert.Equal("""{"flags":0,"owners":[4242]}""", Pick(Resource(doc, "plain")));
        Assert.Equal("""{"flags":3,"owners":[4242,4343,4242]}""", Pick(Resource(doc, "s")));
        // pid_t -1 as unsigned long long
        Assert.Equal("""{"flags":2,"owners":[18446744073709551615]}""", Pick(Resource(doc, "neg")));

        // the default lock space has no "directory" at all
        var dflt = New(impl, null);
        Assert.Equal("""{"resources":[]}""", dflt.PreExecRestart().Value.ToJsonString());

        static string Pick(JsonObject r) => new JsonObject { ["flags"] = r["flags"]!.DeepClone(), ["owners"] = r["owners"]!.DeepClone() }.ToJsonString();
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void PreExecRestart_refuses_names_that_are_not_UTF8(string impl)
    {
        // libvirt's JSON writer validates UTF-8: no document, rather than a lossy one
        var ls = New(impl, _tmp["ls"]);
        Ok(ls.AcquireResource(N("fine"), Owner, Auto));
        Ok(ls.AcquireResource([(byte)'r', 0xff], Owner, Auto));
        AssertError(VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, "failed to convert virJSONValue to yajl data"),
            ls.PreExecRestart());
        Ok(ls.ReleaseResource([(byte)'r', 0xff], Owner));
        Assert.Single(Resources(ls.PreExecRestart().Value));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void Lock_fds_are_close_on_exec(string impl)
    {
        var ls = New(impl, _tmp["ls"]);
        Ok(ls.AcquireResource(N("a"), Owner, Auto));
        Ok(ls.AcquireResource(N("b"), Owner, SharedAuto));
        // read the fds without PreExecRestart's side effect: from /proc/self/fd
        foreach (var name in new[] { "a", "b" })
        {
            string target = _tmp[$"ls/{name}"];
            var fds = Directory.GetFiles("/proc/self/fd")
                .Select(f => (Fd: int.Parse(Path.GetFileName(f)), Link: ReadLink(f)))
                .Where(x => x.Link == target).ToList();
            var fd = Assert.Single(fds);
            Assert.True(CloseOnExec(fd.Fd), $"fd {fd.Fd} for {name} is inheritable");
        }

        static string? ReadLink(string f)
        {
            try { return new FileInfo(f).LinkTarget; } catch (IOException) { return null; }
        }
    }

    [Theory]
    [MemberData(nameof(RestartPairs))]
    public void Exec_restart_hands_every_lock_over(string saver, string restorer, bool withDir)
    {
        string? dir = withDir ? _tmp["ls"] : null;
        string Res(string name) => withDir ? name : _tmp[name];
        string PathOf(string name) => withDir ? Path.Combine(dir!, name) : _tmp[name];

        var before = Factory(saver).New(dir).Value; // abandoned below, never freed
        Ok(before.AcquireResource(N(Res("x")), Owner, Auto));
        Ok(before.AcquireResource(N(Res("s")), Owner, SharedAuto));
        Ok(before.AcquireResource(N(Res("s")), Owner2, SharedAuto));
        Ok(before.CreateResource(N(Res("p"))));
        Ok(before.AcquireResource(N(Res("p")), Owner3, Excl));
        var x = ProcLocks.Identify(PathOf("x"));
        var s = ProcLocks.Identify(PathOf("s"));
        var p = ProcLocks.Identify(PathOf("p"));

        JsonObject doc;
        IVirLockSpace after;
        using (var watcher = new LockWatcher((x, "WRITE"), (s, "READ"), (p, "WRITE")))
        {
            doc = before.PreExecRestart().Value;
            Abandon(before);
            // what crosses an exec is text
            doc = JsonNode.Parse(doc.ToJsonString())!.AsObject();
            foreach (var r in Resources(doc))
                Assert.False(CloseOnExec((int)r["fd"]!));
            after = Track(Factory(restorer).NewPostExecRestart(doc).Value);
            Assert.Empty(watcher.Stop());
        }

        Assert.Equal(dir, after.Directory);
        foreach (var r in Resources(doc))
            Assert.True(CloseOnExec((int)r["fd"]!), $"{r["name"]}: close-on-exec not restored");
        // the very same fds, owners and flags: a second restart writes the same document
        Assert.Equal(Canonical(doc), Canonical(after.PreExecRestart().Value));

        // and the restored lock space carries on with them
        AssertError(Busy(Res("x")), after.AcquireResource(N(Res("x")), Owner2, Auto));
        Ok(after.AcquireResource(N(Res("s")), Owner3, SharedAuto));
        AssertError(Busy(Res("p")), after.DeleteResource(N(Res("p"))));
        Ok(after.ReleaseResource(N(Res("s")), Owner));
        Ok(after.ReleaseResource(N(Res("s")), Owner2));
        Assert.Single(ProcLocks.Mine(s));
        Ok(after.ReleaseResource(N(Res("s")), Owner3));
        Assert.Empty(ProcLocks.On(s));
        Assert.False(File.Exists(PathOf("s")));
        Assert.Equal(1, after.ReleaseResourcesForOwner(Owner).Value);
        Assert.Empty(ProcLocks.On(x));
        Assert.False(File.Exists(PathOf("x")));
        Ok(after.ReleaseResource(N(Res("p")), Owner3));
        Assert.Empty(ProcLocks.On(p));
        Assert.True(File.Exists(PathOf("p")));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void PostExecRestart_reads_owners_and_flags_as_libvirts_json_getters(string impl)
    {
        string path = _tmp["r"];
        int fd = OpenFd(path);
        // owners are unsigned long long cast to pid_t; flags may be written as negative
        var doc = JsonNode.Parse($$"""
            {"resources":[{"name":"r","path":"{{path}}","fd":{{fd}},"lockHeld":false,"flags":-0,
              "owners":[18446744073709551615, 4294967297, -2]}]}
            """)!.AsObject();
        var ls = Track(Factory(impl).NewPostExecRestart(doc).Value);
        Assert.Null(ls.Directory);
        Assert.True(CloseOnExec(fd));
        var back = Resource(ls.PreExecRestart().Value, "r");
        Assert.Equal("[18446744073709551615,1,18446744073709551614]", back["owners"]!.ToJsonString());
        Assert.Equal(0u, (uint)back["flags"]!);
        Assert.False((bool)back["lockHeld"]!);
        Ok(ls.ReleaseResource(N("r"), -1));
        Ok(ls.ReleaseResource(N("r"), 1));
        Ok(ls.ReleaseResource(N("r"), -2));
        Assert.True(File.Exists(path)); // lockHeld false: never unlinked
    }

    private static unsafe int OpenFd(string path)
    {
        fixed (byte* p = N(path + "\0"))
        {
            int fd = Libc.open(p, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180);
            Assert.True(fd >= 0, $"open {path}");
            return fd;
        }
    }

    /// <summary>True when <paramref name="fd"/> no longer refers to <paramref name="path"/>.</summary>
    private static bool Closed(int fd, string path)
    {
        try { return new FileInfo($"/proc/self/fd/{fd}").LinkTarget != path; }
        catch (IOException) { return true; }
    }

    /// <summary>Documents virLockSpaceNewPostExecRestart refuses, what it says,
    /// and whether it had taken over (and so closed) the fds by then.</summary>
    public static TheoryData<string, string> BadDocuments
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var impl in VirImplementations.Names)
                foreach (var name in BadDocumentCases.Keys)
                    data.Add(impl, name);
            return data;
        }
    }

    private sealed record BadCase(string Template, VirError Error, bool FdsClosed);

    // {P0}/{F0} and {P1}/{F1} stand for real files and fds opened for the case.
    private static readonly Dictionary<string, BadCase> BadDocumentCases = new()
    {
        ["no resources"] = new("""{"directory":"/x"}""", Internal("Missing resources value in JSON document"), false),
        ["resources null"] = new("""{"resources":null}""", Internal("Malformed resources array"), false),
        ["resources object"] = new("""{"resources":{}}""", Internal("Malformed resources array"), false),
        ["resource not an object"] = new("""{"resources":[5]}""", Internal("Missing resource name in JSON document"), false),
        ["no name"] = new("""{"resources":[{"path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource name in JSON document"), false),
        ["name not a string"] = new("""{"resources":[{"name":5,"path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource name in JSON document"), false),
        ["no path"] = new("""{"resources":[{"name":"r","fd":{F0},"lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource path in JSON document"), false),
        ["no fd"] = new("""{"resources":[{"name":"r","path":"{P0}","lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource fd in JSON document"), false),
        ["fd a string"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":"{F0}","lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource fd in JSON document"), false),
        ["fd a fraction"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0}.5,"lockHeld":true,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource fd in JSON document"), false),
        ["fd not open"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":-1,"lockHeld":true,"flags":0,"owners":[1]}]}""",
            Sys(Libc.EBADF, "Cannot enable close-on-exec flag"), false),
        ["no lockHeld"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"flags":0,"owners":[1]}]}""",
            Internal("Missing resource lockHeld in JSON document"), true),
        ["lockHeld a number"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":1,"flags":0,"owners":[1]}]}""",
            Internal("Missing resource lockHeld in JSON document"), true),
        ["no flags"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"owners":[1]}]}""",
            Internal("Missing resource flags in JSON document"), true),
        ["flags too big"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":4294967296,"owners":[1]}]}""",
            Internal("Missing resource flags in JSON document"), true),
        ["no owners"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0}]}""",
            Internal("Missing resource owners in JSON document"), true),
        ["owners an object"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":{}}]}""",
            Internal("Malformed owners array"), true),
        ["owner a string"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1,"2"]}]}""",
            Internal("Malformed owner value in JSON document"), true),
        ["owner a fraction"] = new("""{"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1.5]}]}""",
            Internal("Malformed owner value in JSON document"), true),
        // virHashAddEntry reports from virhash.c: no error domain
        ["duplicate name"] = new("""
            {"resources":[{"name":"r","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1]},
                          {"name":"r","path":"{P1}","fd":{F1},"lockHeld":true,"flags":0,"owners":[2]}]}
            """, VirError.Report(VirErrorDomain.None, VirErrorCode.InternalError, "Duplicate hash table key 'r'"), true),
        // what was taken over before the bad resource is freed too
        ["good then bad"] = new("""
            {"resources":[{"name":"a","path":"{P0}","fd":{F0},"lockHeld":true,"flags":0,"owners":[1]},
                          {"name":"b","path":"{P1}","fd":{F1},"lockHeld":true,"flags":0}]}
            """, Internal("Missing resource owners in JSON document"), true),
    };

    [Theory]
    [MemberData(nameof(BadDocuments))]
    public void PostExecRestart_refuses_bad_documents_as_C_does(string impl, string caseName)
    {
        var c = BadDocumentCases[caseName];
        string p0 = _tmp["f0"], p1 = _tmp["f1"];
        int f0 = OpenFd(p0), f1 = OpenFd(p1);
        string text = c.Template.Replace("{P0}", p0).Replace("{P1}", p1).Replace("{F0}", f0.ToString()).Replace("{F1}", f1.ToString());
        bool f1Used = c.Template.Contains("{F1}");
        try
        {
            AssertError(c.Error, Factory(impl).NewPostExecRestart(JsonNode.Parse(text)!.AsObject()));
            Assert.Equal(c.FdsClosed, Closed(f0, p0));
            if (f1Used)
                Assert.Equal(c.FdsClosed, Closed(f1, p1));
            Assert.True(File.Exists(p0) && File.Exists(p1)); // not auto-created: never unlinked
        }
        finally
        {
            if (!Closed(f0, p0)) Libc.close(f0);
            if (!Closed(f1, p1)) Libc.close(f1);
        }
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void PostExecRestart_failure_unlinks_a_held_autocreated_resource(string impl)
    {
        // C frees a half-read resource like any other: held and auto-created
        // once "lockHeld" and "flags" are read means its file goes.
        string held = _tmp["held"], notHeld = _tmp["not-held"];
        int f0 = OpenFd(held), f1 = OpenFd(notHeld);
        var doc = JsonNode.Parse($$"""
            {"resources":[{"name":"a","path":"{{notHeld}}","fd":{{f1}},"lockHeld":false,"flags":2,"owners":[1]},
                          {"name":"b","path":"{{held}}","fd":{{f0}},"lockHeld":true,"flags":2}]}
            """)!.AsObject();
        AssertError(Internal("Missing resource owners in JSON document"), Factory(impl).NewPostExecRestart(doc));
        Assert.False(File.Exists(held));
        Assert.True(File.Exists(notHeld));
        Assert.True(Closed(f0, held) && Closed(f1, notHeld));
    }

    [Theory]
    [MemberData(nameof(Impls))]
    public void PostExecRestart_directory_that_is_not_a_string_means_none(string impl)
    {
        var ls = Track(Factory(impl).NewPostExecRestart(JsonNode.Parse("""{"directory":7,"resources":[]}""")!.AsObject()).Value);
        Assert.Null(ls.Directory);
        var ls2 = Track(Factory(impl).NewPostExecRestart(JsonNode.Parse("""{"directory":"/nonexistent/dir","resources":[]}""")!.AsObject()).Value);
        Assert.Equal("/nonexistent/dir", ls2.Directory); // taken as is: not created
        Assert.False(Directory.Exists("/nonexistent/dir"));
    }

    // ---- the hot path ----

    /// <summary>virtlockd's lock client acquires a disk and releases it,
    /// connection after connection: once warm, the managed lock space does
    /// that without allocating (names of one length, several owners, shared
    /// and exclusive, auto-created or not).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Acquire_and_release_allocate_nothing_Managed(bool withDir)
    {
        string? dir = withDir ? _tmp["ls"] : null;
        var ls = New(VirImplementations.Managed, dir);
        // the default lock space takes full paths, as lockd.so hands disks over
        byte[][] names = Enumerable.Range(0, 4).Select(i => N(withDir ? $"disk-{i}" : _tmp[$"disk-{i}"])).ToArray();
        byte[] plain = N(withDir ? "plain-0" : _tmp["plain-0"]);
        Ok(ls.CreateResource(plain));

        void Cycles(int count)
        {
            for (int i = 0; i < count; i++)
            {
                byte[] name = names[i % names.Length];
                int owner = 5000 + i % 3;
                Check(ls.AcquireResource(name, owner, (i & 1) == 0 ? Auto : SharedAuto));
                Check(ls.ReleaseResource(name, owner));
                // two owners of one shared lease, released in either order
                Check(ls.AcquireResource(plain, owner, Shared));
                Check(ls.AcquireResource(plain, owner + 1, Shared));
                Check(ls.ReleaseResource(plain, (i & 1) == 0 ? owner : owner + 1));
                Check(ls.ReleaseResource(plain, (i & 1) == 0 ? owner + 1 : owner));
                Check(ls.AcquireResource(plain, owner, Excl));
                Check(ls.ReleaseResource(plain, owner));
            }
        }

        Cycles(50); // warm up
        long allocated = AllocationMeter.BytesOnThisThread(() => Cycles(1000));
        Assert.Equal(0, allocated);
        Assert.Empty(Resources(ls.PreExecRestart().Value));
        Assert.All(names, n => Assert.False(ExistsRaw(withDir ? [.. N(dir + "/"), .. n] : n)));

        // Assert allocates its message: only a failure pays for it
        static void Check(VirResult r)
        {
            if (!r.Ok)
                Assert.Fail(Describe(r.Error));
        }
    }

    // ---- threads ----

    [Theory]
    [MemberData(nameof(Impls))]
    public void Concurrent_owners_keep_the_table_consistent(string impl)
    {
        string dir = _tmp["ls"];
        var ls = New(impl, dir);
        const int Threads = 6, Rounds = 150;
        int failures = 0;
        var tasks = Enumerable.Range(0, Threads).Select(t => Task.Run(() =>
        {
            int owner = 10_000 + t;
            byte[] mine = N($"own{t}"), common = N("common");
            for (int i = 0; i < Rounds; i++)
            {
                if (!ls.AcquireResource(common, owner, SharedAuto).Ok) Interlocked.Increment(ref failures);
                if (!ls.AcquireResource(mine, owner, Auto).Ok) Interlocked.Increment(ref failures);
                if (!ls.ReleaseResource(mine, owner).Ok) Interlocked.Increment(ref failures);
                if (!ls.ReleaseResource(common, owner).Ok) Interlocked.Increment(ref failures);
            }
            if (!ls.AcquireResource(common, owner, SharedAuto).Ok) Interlocked.Increment(ref failures);
        })).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromSeconds(60)), "threads did not finish");
        Assert.Equal(0, failures);

        var doc = ls.PreExecRestart().Value;
        var common = Assert.Single(Resources(doc));
        Assert.Equal(Enumerable.Range(0, Threads).Select(t => 10_000 + t).Order(),
            common["owners"]!.AsArray().Select(o => int.Parse(o!.ToJsonString())).Order());
        for (int t = 0; t < Threads; t++)
            Assert.Equal(1, ls.ReleaseResourcesForOwner(10_000 + t).Value);
        Assert.False(File.Exists(Path.Combine(dir, "common")));
    }
}
