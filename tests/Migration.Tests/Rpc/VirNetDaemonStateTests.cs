using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Libvirt.Interop;
using Libvirt.Rpc;
using Libvirt.Tests.Contracts;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;
using static Libvirt.Interop.Methods;

namespace Libvirt.Tests.Rpc;

/// <summary>
/// The managed model of the daemon's exec-restart state against libvirt's
/// own corpus (tests/virnetdaemondata of the unpacked source, read where it
/// is), and the same documents through libvirt's virNetDaemonNewPostExecRestart
/// and virNetDaemonPreExecRestart, with one set of expectations for both.
/// As in libvirt's virnetdaemontest: servers are made only under the names
/// the case allows ("testServer0", and "testServer1" when it has two), each
/// allowed name must end up as a server, a client's privateData is the
/// number 1729, and the saved document is compared as text (pretty) with
/// the output file, a failure's message with the .err file.
/// </summary>
public sealed unsafe partial class VirNetDaemonStateTests : IClassFixture<LibvirtFixture>
{
    public VirNetDaemonStateTests(LibvirtFixture libvirt) => _ = libvirt;

    private const string Native = VirImplementations.Native;
    private const string Managed = VirImplementations.Managed;

    private static string CorpusDir => Path.Combine(DaemonPaths.RepoRoot, ".build", "libvirt-9.0.0", "tests", "virnetdaemondata");

    private static readonly string[] s_serverNames = ["testServer0", "testServer1"];

    private const int Magic = 1729;

    /// <summary>virnetdaemontest's cases: the input file, how many server
    /// names are allowed, and whether it should restore and save.</summary>
    private static readonly (string File, int Servers, bool Pass)[] s_cases =
    [
        ("initial", 1, true),
        ("anon-clients", 1, true),
        ("admin", 2, true),
        ("admin-server-names", 2, true),
        ("no-keepalive-required", 2, true),
        ("client-ids", 1, true),
        ("client-timestamp", 1, true),
        ("anon-clients", 2, false),
        ("client-auth-pending", 1, true),
        ("client-auth-pending-failure", 1, false),
        ("invalid-max-clients-failure", 1, false),
    ];

    public static TheoryData<string, string, int, bool> Corpus()
    {
        var data = new TheoryData<string, string, int, bool>();
        foreach (var impl in VirImplementations.Names)
            foreach (var (file, servers, pass) in s_cases)
                data.Add(impl, file, servers, pass);
        return data;
    }

    [Theory, MemberData(nameof(Corpus))]
    public void Corpus_case_restores_and_saves_as_libvirt_test_expects(string impl, string file, int servers, bool pass)
    {
        string input = File.ReadAllText(Path.Combine(CorpusDir, $"input-data-{file}.json"));
        string expected = File.ReadAllText(Path.Combine(CorpusDir, $"output-data-{file}.{(pass ? "json" : "err")}"));
        var names = s_serverNames[..servers];

        var (saved, error) = Run(impl, input, names);

        if (pass)
        {
            Assert.Null(error);
            Assert.Equal(expected, AsComparedToFile(saved!, expected));
        }
        else
        {
            Assert.True(saved is null, "the case should have failed");
            Assert.Equal(expected, AsComparedToFile(error!.Message, expected));
            Assert.Equal(((int)VirErrorDomain.Rpc, (int)VirErrorCode.InternalError), (error.Domain, error.Code));
        }
    }

    /// <summary>
    /// Beyond the corpus: one of its documents (client-ids, the current
    /// format) changed in one place, through both implementations, which
    /// must restore and save the same text or fail with the same error
    /// (domain, code, message). What libvirt does here is measured, not
    /// assumed: the native run is the expectation.
    /// </summary>
    [Theory]
    [InlineData("servers/testServer0/min_workers", null)]
    [InlineData("servers/testServer0/min_workers", "60")]
    [InlineData("servers/testServer0/max_workers", "\"50\"")]
    [InlineData("servers/testServer0/priority_workers", "5.0")]
    [InlineData("servers/testServer0/max_clients", "1e2")]
    [InlineData("servers/testServer0/max_anonymous_clients", "\"x\"")]
    [InlineData("servers/testServer0/max_anonymous_clients", null)]
    [InlineData("servers/testServer0/keepaliveInterval", "-1")]
    [InlineData("servers/testServer0/keepaliveCount", null)]
    [InlineData("servers/testServer0/keepaliveCount", "4294967296")]
    [InlineData("servers/testServer0/next_client_id", null)]
    [InlineData("servers/testServer0/next_client_id", "-1")]
    [InlineData("servers/testServer0/services", "{}")]
    [InlineData("servers/testServer0/services", null)]
    [InlineData("servers/testServer0/clients", "null")]
    [InlineData("servers/testServer0/clients", null)]
    [InlineData("servers/testServer0/services/0/auth", "true")]
    [InlineData("servers/testServer0/services/0/readonly", "1")]
    [InlineData("servers/testServer0/services/0/nrequests_client_max", null)]
    [InlineData("servers/testServer0/services/0/socks", null)]
    [InlineData("servers/testServer0/services/0/socks", "[null]")]
    [InlineData("servers/testServer0/services/0/socks/0/fd", null)]
    [InlineData("servers/testServer0/services/0/socks/0/pid", null)]
    [InlineData("servers/testServer0/services/0/socks/0/errfd", "\"x\"")]
    [InlineData("servers/testServer0/services/0/socks/0/isClient", "0")]
    [InlineData("servers/testServer0/services/0/socks/0/unlinkUNIX", "\"yes\"")]
    [InlineData("servers/testServer0/services/0/socks/0/unlinkUNIX", "false")]
    [InlineData("servers/testServer0/clients/0/auth", "2147483648")]
    [InlineData("servers/testServer0/clients/0/auth_pending", "\"yes\"")]
    [InlineData("servers/testServer0/clients/0/auth_pending", "false")]
    [InlineData("servers/testServer0/clients/0/auth", "0")]
    [InlineData("servers/testServer0/clients/0/readonly", null)]
    [InlineData("servers/testServer0/clients/0/nrequests_max", "-5")]
    [InlineData("servers/testServer0/clients/0/nrequests_max", null)]
    [InlineData("servers/testServer0/clients/0/sock", null)]
    [InlineData("servers/testServer0/clients/0/sock", "null")]
    [InlineData("servers/testServer0/clients/0/sock/isClient", null)]
    [InlineData("servers/testServer0/clients/0/id", "1.5")]
    [InlineData("servers/testServer0/clients/0/id", "18446744073709551616")]
    [InlineData("servers/testServer0/clients/0/id", null)]
    [InlineData("servers/testServer0/clients/0/conn_time", "-3")]
    [InlineData("servers/testServer0/clients/0/conn_time", "0")]
    [InlineData("servers/testServer0/clients/0/conn_time", "\"x\"")]
    [InlineData("servers/testServer0/clients/0/privateData", null)]
    [InlineData("servers", "[]")]
    [InlineData("servers", "{\"testServer9\": {}}")]
    [InlineData("servers", "{\"testServer0\": 1}")]
    public void Changed_document_restores_and_saves_alike_in_both(string path, string? value)
    {
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(CorpusDir, "input-data-client-ids.json")))!;
        Change(doc, path, value);
        string input = doc.ToJsonString();
        string[] names = s_serverNames[..1];

        var (nativeSaved, nativeError) = RunNative(input, names);
        var (managedSaved, managedError) = RunManaged(input, names);

        Assert.Equal(nativeSaved, managedSaved);
        Assert.Equal(Identity(nativeError), Identity(managedError));
    }

    /// <summary>Corpus documents under fewer server names than they need:
    /// the server-array format with more servers than names, any old format
    /// with none. Both implementations fail alike.</summary>
    [Theory]
    [InlineData("no-keepalive-required", 1)]
    [InlineData("admin", 0)]
    [InlineData("initial", 0)]
    public void Too_few_server_names_fail_alike_in_both(string file, int servers)
    {
        string input = File.ReadAllText(Path.Combine(CorpusDir, $"input-data-{file}.json"));
        var names = s_serverNames[..servers];

        var (nativeSaved, nativeError) = RunNative(input, names);
        var (managedSaved, managedError) = RunManaged(input, names);

        Assert.Null(nativeSaved);
        Assert.Null(managedSaved);
        Assert.Equal(Identity(nativeError), Identity(managedError));
    }

    /// <summary>Servers are saved in strcmp order of their names, whatever
    /// order the document had them in.</summary>
    [Fact]
    public void Servers_are_saved_in_name_order_by_both()
    {
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(CorpusDir, "input-data-admin-server-names.json")))!;
        var servers = doc["servers"]!.AsObject();
        var reversed = new JsonObject();
        foreach (var (name, value) in servers.ToList().AsEnumerable().Reverse())
        {
            servers.Remove(name);
            reversed[name] = value;
        }
        doc["servers"] = reversed;
        Assert.Equal("testServer1", reversed.First().Key);
        string input = doc.ToJsonString();

        var (nativeSaved, nativeError) = RunNative(input, s_serverNames);
        var (managedSaved, managedError) = RunManaged(input, s_serverNames);

        Assert.Null(nativeError);
        Assert.Null(managedError);
        Assert.Equal(nativeSaved, managedSaved);
        Assert.Equal(["testServer0", "testServer1"], JsonNode.Parse(managedSaved!)!["servers"]!.AsObject().Select(p => p.Key));
    }

    /// <summary>Where libvirt fails without saying why ("servers" neither
    /// an object nor an array), the model says what is wrong: the one
    /// documented departure this corpus can reach.</summary>
    [Fact]
    public void Malformed_servers_fail_in_both_and_the_model_says_why()
    {
        const string input = """{"servers": 5}""";

        var (nativeSaved, nativeError) = RunNative(input, s_serverNames);
        var (managedSaved, managedError) = RunManaged(input, s_serverNames);

        Assert.Null(nativeSaved);
        Assert.Null(managedSaved);
        Assert.Equal(0, nativeError!.Domain); // no error set: TakeLast's stand-in
        Assert.Equal(Identity(Internal("Malformed servers data in JSON document")), Identity(managedError));
    }

    private static (int Domain, int Code, string Message)? Identity(VirError? e)
        => e is null ? null : (e.Domain, e.Code, e.Message);

    /// <summary>Sets (or, for a null value, removes) what a path of keys
    /// and array indexes names.</summary>
    private static void Change(JsonNode doc, string path, string? value)
    {
        var keys = path.Split('/');
        JsonNode parent = doc;
        foreach (var key in keys[..^1])
            parent = parent is JsonArray a ? a[int.Parse(key)]! : parent[key]!;
        var last = keys[^1];
        var node = value is null ? null : JsonNode.Parse(value);
        if (parent is JsonArray array)
            array[int.Parse(last)] = node;
        else if (value is null)
            Assert.True(parent.AsObject().Remove(last));
        else
            parent[last] = node;
    }

    /// <summary>The yajl text libvirt writes, for what the daemons' state
    /// holds (and what it could: empty containers, escapes), pretty and not.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void VirJSON_ToString_is_libvirts_text(bool pretty)
    {
        const string doc = """
            {"a": [], "b": {}, "c": "q\"b\\s/t\tn\nc\u0001\u001fé", "d": [1, -2, true, false, null, 18446744073709551615],
             "e": {"f": [{"g": 1}, [[]], {}]}, "": ""}
            """;
        using var text = new NativeUtf8(doc);
        var json = virJSONValueFromString(text);
        Assert.True(json != null);
        string expected = NativeUtf8.ReadAndFree(virJSONValueToString(json, pretty ? (byte)1 : (byte)0))!;
        virJSONValueFree(json);

        Assert.Equal(expected, VirJSON.ToString(JsonNode.Parse(doc), pretty));
    }

    /// <summary>virTestCompareToFile's one allowance: a missing final newline.</summary>
    private static string AsComparedToFile(string actual, string file)
        => file.EndsWith('\n') && !actual.EndsWith('\n') ? actual + "\n" : actual;

    private static (string? Saved, VirError? Error) Run(string impl, string input, string[] names)
        => impl switch
        {
            Managed => RunManaged(input, names),
            Native => RunNative(input, names),
            _ => throw new ArgumentOutOfRangeException(nameof(impl)),
        };

    private static VirError Internal(string detail) => VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, detail);

    // ---- the managed model ----

    private sealed record TestClientPriv(int Magic);

    private static readonly VirNetServerClientPrivateCallbacks s_clientPriv = new(
        (_, node) => VirJSON.TryGetNumberInt(node, out int magic) && magic == Magic
            ? new TestClientPriv(magic)
            : Internal("privateData is not the test's magic"),
        (_, data) => JsonValue.Create(((TestClientPriv)data).Magic));

    private static (string?, VirError?) RunManaged(string input, string[] names)
    {
        var state = JsonNode.Parse(input);
        var restored = VirNetDaemonState.FromJson(state, names, (name, obj) =>
            names.Contains(name)
                ? VirNetServerState.FromJson(obj, name, s_clientPriv)
                : Internal($"Unexpected server name '{name}'"));
        if (!restored.TryGet(out var dmn, out var err))
            return (null, err);
        foreach (var name in names)
        {
            if (!dmn.HasServer(name))
                return (null, Internal($"Server {name} was not created"));
        }
        if (!dmn.ToJson().TryGet(out var saved, out err))
            return (null, err);
        return (VirJSON.ToString(saved, pretty: true), null);
    }

    // ---- libvirt's functions ----

    private const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000, F_DUPFD_CLOEXEC = 1030, F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socketpair(int domain, int type, int protocol, int* sv);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    [GeneratedRegex("\"fd\": (-?[0-9]+)")]
    private static partial Regex SavedFd();

    /// <summary>
    /// libvirt takes over the corpus' fds 100 to 103 (two listening and two
    /// client sockets) and asks the kernel about them, so they must be real
    /// sockets. libvirt's test dup2()s two socketpairs onto those numbers;
    /// a test host process cannot give numbers away like that, so each fd
    /// the document names gets a fresh duplicate of the matching socket (one
    /// per occurrence: libvirt closes every socket it owns, and two servers
    /// sharing one number would close it twice), and the saved text has the
    /// corpus' numbers put back before it is compared.
    /// </summary>
    private static (string?, VirError?) RunNative(string input, string[] names)
    {
        int* pairs = stackalloc int[4];
        Assert.Equal(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs));     // "server" 100, 101
        Assert.Equal(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs + 2)); // "client" 102, 103
        var corpusFdOf = new Dictionary<int, int>();
        var state = JsonNode.Parse(input)!;
        var gch = GCHandle.Alloc(names);
        virNetDaemon* dmn = null;
        try
        {
            SubstituteFds(state, fd =>
            {
                int dup = fcntl(pairs[fd - 100], F_DUPFD_CLOEXEC, 0);
                Assert.True(dup >= 0);
                corpusFdOf[dup] = fd;
                return dup;
            });

            virResetLastError();
            var json = VirJSONNative.ToNative(state);
            Assert.True(json != null);
            using (var utf8 = new NativeStrings(names))
                dmn = virNetDaemonNewPostExecRestart(json, (nuint)names.Length, utf8.Pointers, &NewServer, (void*)GCHandle.ToIntPtr(gch));
            virJSONValueFree(json);
            if (dmn == null)
                return (null, VirErrorNative.TakeLast());

            foreach (var name in names)
            {
                using var n = new NativeUtf8(name);
                if (virNetDaemonHasServer(dmn, n) == 0)
                    return (null, Internal($"Server {name} was not created"));
            }

            var saved = virNetDaemonPreExecRestart(dmn);
            // it cleared close-on-exec on every socket (for the exec it
            // prepares): set it again at once, or every process this test
            // host starts later (the other tests' daemons) inherits them
            foreach (int fd in corpusFdOf.Keys)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
            if (saved == null)
                return (null, VirErrorNative.TakeLast());
            string text = NativeUtf8.ReadAndFree(virJSONValueToString(saved, 1))!;
            virJSONValueFree(saved);
            text = SavedFd().Replace(text, m =>
                corpusFdOf.TryGetValue(int.Parse(m.Groups[1].Value), out int fd) ? $"\"fd\": {fd}" : m.Value);
            return (text, null);
        }
        finally
        {
            if (dmn != null)
            {
                // stop its sockets' watches and close them, then let it go
                foreach (var name in names)
                {
                    using var n = new NativeUtf8(name);
                    if (virNetDaemonHasServer(dmn, n) != 0)
                    {
                        var srv = virNetDaemonGetServer(dmn, n);
                        virNetServerClose(srv);
                        virObjectUnref(srv);
                    }
                }
                virObjectUnref(dmn);
            }
            virResetLastError();
            gch.Free();
            for (int i = 0; i < 4; i++)
                close(pairs[i]);
            // what libvirt still holds must not leak into the processes other tests start
            foreach (int fd in corpusFdOf.Keys)
            {
                int flags = fcntl(fd, F_GETFD, 0);
                Assert.True(flags < 0 || (flags & FD_CLOEXEC) != 0, $"fd {fd} was left inheritable");
            }
        }
    }

    /// <summary>Replaces the fd of every socket object (a service's socks, a
    /// client's sock) that names one of the corpus' fds 100 to 103.</summary>
    private static void SubstituteFds(JsonNode? node, Func<int, int> replace)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o.ToList())
                {
                    if (key == "fd" && VirJSON.TryGetNumberInt(value, out int fd) && fd is >= 100 and <= 103)
                        o[key] = replace(fd);
                    else
                        SubstituteFds(value, replace);
                }
                break;
            case JsonArray a:
                foreach (var item in a)
                    SubstituteFds(item, replace);
                break;
        }
    }

    /// <summary>virnetdaemontest's server callback: a server for a name the
    /// case allows, with its client privateData callbacks.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static virNetServer* NewServer(virNetDaemon* dmn, sbyte* name, virJSONValue* obj, void* opaque)
    {
        var names = (string[])GCHandle.FromIntPtr((nint)opaque).Target!;
        string n = NativeUtf8.Read(name)!;
        if (!names.Contains(n))
        {
            VirErrorNative.Raise(Internal($"Unexpected server name '{n}'"), "NewServer");
            return null;
        }
        return virNetServerNewPostExecRestart(obj, name, &ClientNew, &ClientNewPostExec, &ClientPreExec, &ClientFree, null);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static void* ClientNew(virNetServerClient* client, void* opaque) => NewPriv();

    private static void* NewPriv()
    {
        var priv = (int*)NativeMemory.Alloc(sizeof(int));
        *priv = Magic;
        return priv;
    }

    /// <summary>A client restores only with privateData the number 1729
    /// (read through its text: the bindings have libvirt's JSON text, not
    /// its typed getters). Like libvirt's test, a refusal sets no error.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static void* ClientNewPostExec(virNetServerClient* client, virJSONValue* obj, void* opaque)
    {
        var text = NativeUtf8.ReadAndFree(virJSONValueToString(obj, 0));
        return VirJSON.TryGetNumberInt(text is null ? null : JsonNode.Parse(text), out int magic) && magic == Magic
            ? NewPriv()
            : null;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static virJSONValue* ClientPreExec(virNetServerClient* client, void* data)
    {
        using var text = new NativeUtf8((*(int*)data).ToString(System.Globalization.CultureInfo.InvariantCulture));
        return virJSONValueFromString(text);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static void ClientFree(void* data) => NativeMemory.Free(data);

    /// <summary>An array of C strings for the length of a call.</summary>
    private sealed class NativeStrings : IDisposable
    {
        private readonly NativeUtf8[] _strings;
        public sbyte** Pointers { get; }

        public NativeStrings(string[] strings)
        {
            _strings = strings.Select(s => new NativeUtf8(s)).ToArray();
            Pointers = (sbyte**)NativeMemory.Alloc((nuint)Math.Max(1, strings.Length), (nuint)sizeof(sbyte*));
            for (int i = 0; i < strings.Length; i++)
                Pointers[i] = _strings[i].Pointer;
        }

        public void Dispose()
        {
            NativeMemory.Free(Pointers);
            foreach (var s in _strings)
                s.Dispose();
        }
    }
}
