namespace Libvirt.Tests.Infrastructure;

/// <summary>
/// A lock-protocol connection owned by a separate child process (a small perl relay), so the daemon's
/// SO_PEERCRED pid for the connection is the child's pid. Registering that pid as owner makes the child
/// the "lock holder" in virtlockd's sense: when the connection closes while it holds leases, the
/// daemon releases them and SIGTERMs/SIGKILLs the child. Never use the test runner's own pid for that.
/// The child runs in its own process group and is killed on Sandbox dispose.
/// </summary>
public sealed class OwnerConnection
{
    private const string Script = """
        use strict; use warnings; use IO::Socket::UNIX; use Socket;
        $| = 1;
        my $path = shift @ARGV;
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or die "connect $path: $!\n";
        print "pid $$\n";
        sub readn { my ($n) = @_; my $buf = ''; while (length($buf) < $n) { my $r = sysread($s, $buf, $n - length($buf), length($buf)); die "eof\n" unless $r; } return $buf; }
        my $seq = 0;
        while (my $line = <STDIN>) {
            chomp $line;
            if ($line eq 'close') { close($s); print "closed\n"; sleep 600; exit 0; }
            if ($line =~ /^partial (\w+)$/) { my $b = pack('H*', $1); syswrite($s, $b) == length($b) or die "write\n"; print "sent\n"; next; }
            if ($line =~ /^call (\w+)$/) {
                my $b = pack('H*', $1); syswrite($s, $b) == length($b) or die "write\n";
                my $h = readn(4); my $len = unpack('N', $h); my $rest = readn($len - 4);
                $seq++; print "reply $seq ", unpack('H*', $h . $rest), "\n"; next;
            }
            die "bad command\n";
        }
        sleep 600;
        """;

    private int _seq;
    private uint _serial;

    public SandboxProcess Process { get; }
    public int Pid => Process.Pid;

    private OwnerConnection(SandboxProcess p) => Process = p;

    /// <summary>Start the relay child and wait (bounded) until it is connected.</summary>
    public static async Task<OwnerConnection> StartAsync(Sandbox sandbox, string socketHostPath, TimeSpan? timeout = null,
        IDictionary<string, string?>? env = null)
    {
        var script = Path.Combine(sandbox.TempDir, "owner-relay.pl");
        if (!File.Exists(script)) File.WriteAllText(script, Script);
        var p = sandbox.StartOnHost("perl", [script, socketHostPath], env, "owner relay (perl)");
        var line = await p.WaitForStdoutLineAsync(l => l.StartsWith("pid "), timeout ?? TimeSpan.FromSeconds(10));
        var pid = int.Parse(line[4..].Trim());
        if (pid != p.Pid) throw new InvalidOperationException($"relay pid {pid} != process pid {p.Pid}");
        return new OwnerConnection(p);
    }

    public async Task<RpcMessage> CallRawAsync(uint program, uint version, int proc, byte[] payload, TimeSpan? timeout = null)
    {
        var frame = RawRpcClient.BuildFrame(new RpcHeader(program, version, proc, RpcMessageType.Call, ++_serial, RpcStatus.Ok), payload);
        int seq = ++_seq;
        await Process.WriteLineAsync("call " + Convert.ToHexString(frame));
        var line = await Process.WaitForStdoutLineAsync(l => l.StartsWith($"reply {seq} "), timeout ?? TimeSpan.FromSeconds(10));
        var bytes = Convert.FromHexString(line.Split(' ')[2].Trim());
        var r = new XdrReader(bytes, 4);
        var h = RpcHeader.Read(r);
        return new RpcMessage(h, bytes[(4 + RpcHeader.Size)..]);
    }

    public async Task<RpcError?> CallAsync(int proc, byte[] args)
    {
        var m = await CallRawAsync(LockProtocol.Program, LockProtocol.Version, proc, args);
        return m.Error;
    }

    /// <summary>REGISTER with this relay's own pid as owner pid.</summary>
    public Task<RpcError?> RegisterSelfAsync(uint id = 1, string name = "relay-owner") =>
        CallAsync(LockProtocol.ProcRegister, LockProtocol.RegisterArgs(LockProtocolClient.DefaultUuid((uint)Pid), name, id, (uint)Pid));

    public Task<RpcError?> AcquireAsync(string path, string name, uint flags = 0) =>
        CallAsync(LockProtocol.ProcAcquireResource, LockProtocol.ResourceArgs(path, name, flags));

    /// <summary>Write bytes without waiting for any reply (e.g. half a frame).</summary>
    public async Task SendPartialAsync(byte[] data)
    {
        await Process.WriteLineAsync("partial " + Convert.ToHexString(data));
        await Process.WaitForStdoutLineAsync(l => l == "sent", TimeSpan.FromSeconds(10));
    }

    /// <summary>Close the socket while the relay process stays alive (sleeping).</summary>
    public Task CloseConnectionAsync() => Process.WriteLineAsync("close");
}
