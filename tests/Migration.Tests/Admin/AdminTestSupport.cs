using System.Text;
using System.Text.RegularExpressions;
using Libvirt.Tests.Infrastructure;
using Xunit;

namespace Libvirt.Tests.Admin;

/// <summary>Runs the real /usr/bin/virt-admin inside a daemon's sandbox
/// (its URI names the daemon's admin socket under /run) and records a
/// transcript of commands, exit codes and output.</summary>
public sealed class VirtAdmin(DaemonProcess daemon)
{
    public const string Binary = "/usr/bin/virt-admin";
    private readonly StringBuilder _transcript = new();

    public string Uri => $"{DaemonPaths.ExeName(daemon.Name)}:///system";
    public string Server => DaemonPaths.ExeName(daemon.Name);
    public string Transcript => _transcript.ToString();

    public Task<ProcessResult> RunAsync(params string[] args) => RunAsync(true, args);

    /// <summary>Without <paramref name="record"/>, the run stays out of the transcript (polling).</summary>
    public async Task<ProcessResult> RunAsync(bool record, params string[] args)
    {
        var r = await daemon.Sandbox.RunInsideAsync(Binary, ["-c", Uri, .. args], TimeSpan.FromSeconds(20));
        if (record)
            _transcript.Append($"$ virt-admin {string.Join(' ', args)}\n[rc={r.ExitCode}]\n{r.Stdout}{r.Stderr}");
        return r;
    }

    /// <summary>A virt-admin left connected (interactive, reading commands
    /// from its stdin) so that the admin server has a client.</summary>
    public SandboxProcess StartConnected()
        => daemon.Sandbox.StartInside(Binary, ["-c", Uri], description: "virt-admin (connected, idle)");

    /// <summary>Polls (bounded, unrecorded) until <paramref name="server"/> has <paramref name="n"/> clients.</summary>
    public async Task WaitForClientsAsync(string server, int n, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            var r = await RunAsync(false, "server-clients-info", server);
            last = r.Stdout + r.Stderr;
            var m = Regex.Match(last, @"^nclients\s*:\s*(\d+)", RegexOptions.Multiline);
            if (m.Success && int.Parse(m.Groups[1].Value) == n)
                return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"{daemon.Kind} {Server}: server {server} never had {n} clients; last: {last}");
    }

    /// <summary>Client ids in a client-list table.</summary>
    public static List<ulong> ClientIds(string clientListOutput)
        => Regex.Matches(clientListOutput, @"^\s*(\d+)\s+unix\s", RegexOptions.Multiline)
            .Select(m => ulong.Parse(m.Groups[1].Value)).ToList();

    /// <summary>Times, pids and client ids normalised away.</summary>
    public static string Normalise(string s)
    {
        s = Regex.Replace(s, @"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{4}", "<time>");
        s = Regex.Replace(s, @"(unix_process_id\s*:\s*)\d+", "$1<pid>");
        s = Regex.Replace(s, @"^(\$ virt-admin client-(?:info|disconnect) admin )\d+$", "$1<id>", RegexOptions.Multiline);
        s = Regex.Replace(s, @"^(id\s*:\s*)\d+$", "$1<id>", RegexOptions.Multiline);
        s = Regex.Replace(s, @"^(\s*)\d+(\s+unix\s)", "$1<id>$2", RegexOptions.Multiline);
        // server-list comes from libvirt's hash table of servers, in an
        // order that differs from run to run for the C daemon too: rows sorted
        s = Regex.Replace(s, @"(?<=Id   Name\n-+\n)((?: \d+ +\S+\n)+)", m =>
            string.Concat(m.Value.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => Regex.Replace(l, @"^ \d+ +", " <n>    ")).Order(StringComparer.Ordinal).Select(l => l + "\n")));
        return s;
    }
}

public static class AdminCases
{
    public static TheoryData<DaemonName> Daemons => new() { DaemonName.Virtlockd, DaemonName.Virtlogd };

    public static TheoryData<DaemonName, DaemonKind> DaemonsAndKinds => Libvirt.Tests.LockDaemon.DaemonKinds.DaemonsAndKinds;

    public static TheoryData<DaemonName, DaemonKind> DaemonsAndOurs => Libvirt.Tests.LockDaemon.DaemonKinds.DaemonsAndOurs;

    /// <summary>Starts the daemon in a fresh sandbox and waits (bounded)
    /// for both its sockets.</summary>
    public static async Task<(Sandbox, DaemonProcess)> StartAsync(DaemonName name, DaemonKind kind, IEnumerable<string>? args = null)
    {
        var sb = await Sandbox.CreateAsync();
        try
        {
            var d = await DaemonProcess.StartAndWaitAsync(sb, name, kind, args);
            await d.WaitForSocketAsync(DaemonPaths.AdminSocket(name), TimeSpan.FromSeconds(15));
            return (sb, d);
        }
        catch
        {
            await sb.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs <paramref name="scenario"/> against the C daemon and
    /// ours in configuration <paramref name="ours"/> (in parallel, each in
    /// its own sandbox) and returns both transcripts, normalised.</summary>
    public static async Task<(string C, string Managed)> BothAsync(DaemonName name, DaemonKind ours,
        Func<DaemonProcess, VirtAdmin, Task> scenario, [System.Runtime.CompilerServices.CallerMemberName] string scenarioName = "")
    {
        async Task<string> One(DaemonKind kind)
        {
            var (sb, d) = await StartAsync(name, kind);
            await using (sb)
            await using (d)
            {
                var va = new VirtAdmin(d);
                try
                {
                    await scenario(d, va);
                }
                finally
                {
                    // for a failing comparison: ADMIN_TRANSCRIPTS=dir keeps both
                    var dir = Environment.GetEnvironmentVariable("ADMIN_TRANSCRIPTS");
                    if (!string.IsNullOrEmpty(dir))
                        await File.WriteAllTextAsync(Path.Combine(dir, $"{DaemonPaths.ExeName(name)}-{kind}-{scenarioName}.txt"), va.Transcript);
                }
                return VirtAdmin.Normalise(va.Transcript);
            }
        }
        var c = One(DaemonKind.C);
        var m = One(ours);
        return (await c, await m);
    }
}
