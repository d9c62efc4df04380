using Libvirt.Interop;
using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// systemd socket activation for the managed server core (the activation
/// half of libvirt's virsystemd.c): LISTEN_PID/LISTEN_FDS name descriptors
/// 3 and up for this process, LISTEN_FDNAMES gives each its unit name
/// ("virtlockd.socket", "virtlockd-admin.socket"...); a service claims the
/// descriptors of its name, and once every service is set up none may be
/// left unclaimed. With activation present a service whose name has no
/// descriptor is not created at all (a unit may disable it), as in libvirt.
/// </summary>
public sealed class VirSystemdActivation : IDisposable
{
    private readonly Dictionary<string, List<int>> _fds = new();

    private VirSystemdActivation()
    {
    }

    /// <summary>
    /// virSystemdGetActivation: null when the process was not socket
    /// activated. As libvirt's, LISTEN_PID and LISTEN_FDS are removed from
    /// the environment and the descriptors made close-on-exec; names that
    /// do not match the count are reported (logged) and the descriptors
    /// closed, and the daemon then sets its sockets up itself.
    /// </summary>
    public static unsafe VirSystemdActivation? Get(IVirErrorReporter errors)
    {
        if (Environment.GetEnvironmentVariable("LISTEN_PID") is not { } pidText ||
            !ulong.TryParse(pidText, out ulong pid) || (long)pid != Environment.ProcessId)
            return null;
        if (Environment.GetEnvironmentVariable("LISTEN_FDS") is not { } fdsText ||
            !uint.TryParse(fdsText, out uint nfds))
            return null;
        Unset("LISTEN_PID");
        Unset("LISTEN_FDS");
        for (int i = 0; i < nfds; i++)
            Libc.SetInherit(3 + i, false);
        if (nfds == 0)
            return null;

        var names = Environment.GetEnvironmentVariable("LISTEN_FDNAMES");
        if (names is null)
        {
            Report(errors, "virSystemdActivationNew", "Missing LISTEN_FDNAMES env from systemd socket activation");
            return null;
        }
        var list = names.Split(':');
        if (list.Length != nfds)
        {
            Report(errors, "virSystemdActivationInitFromNames", $"Expecting {nfds} FD names but got {list.Length}");
            for (int i = 0; i < nfds; i++)
                Libc.close(3 + i);
            return null;
        }
        var act = new VirSystemdActivation();
        for (int i = 0; i < list.Length; i++)
        {
            if (!act._fds.TryGetValue(list[i], out var fds))
                act._fds[list[i]] = fds = new List<int>();
            fds.Add(3 + i);
        }
        return act;
    }

    /// <summary>virSystemdActivationClaimFDs: the caller owns them from here.</summary>
    public int[] Claim(string name)
    {
        if (!_fds.Remove(name, out var fds))
            return [];
        return fds.ToArray();
    }

    /// <summary>virSystemdActivationComplete.</summary>
    public VirResult Complete()
        => _fds.Count != 0
            ? VirError.Report(VirErrorDomain.Systemd, VirErrorCode.InternalError, "Some activation file descriptors are unclaimed")
            : VirResult.Success;

    /// <summary>virSystemdActivationFree: unclaimed descriptors are closed.</summary>
    public void Dispose()
    {
        foreach (var fds in _fds.Values)
            foreach (int fd in fds)
                Libc.close(fd);
        _fds.Clear();
    }

    private static unsafe void Unset(string name)
    {
        using var n = new NativeUtf8(name);
        Libc.unsetenv(n);
    }

    // libvirt reports these (and so logs them) and carries on without activation
    private static void Report(IVirErrorReporter errors, string function, string detail)
        => errors.Raise(VirError.Report(VirErrorDomain.Systemd, VirErrorCode.InternalError, detail), function);
}
