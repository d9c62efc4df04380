namespace Libvirt.Util;

/// <summary>
/// Where an error goes that code cannot return (a refused connection, a
/// failed start-up step): libvirt raises it, which logs it and makes it the
/// thread's last error. With libvirt.so.0 in the process that is
/// <see cref="VirErrorReporterNative"/>; a daemon whose subsystems are all
/// managed has no libvirt to raise into, and <see cref="VirErrorReporterManaged"/>
/// logs the error through the managed logging twin as libvirt would have
/// (virerror.c's virRaiseErrorFull: source "util.error", the error level's
/// priority, the reporting function) and prints it as virDispatchError does.
/// </summary>
public interface IVirErrorReporter
{
    /// <summary>virRaiseErrorFull from <paramref name="function"/> (or the
    /// error's own <see cref="VirError.Function"/>); an error already
    /// <see cref="VirError.Logged"/> is not logged again.</summary>
    void Raise(VirError error, string function);

    /// <summary>virResetLastError.</summary>
    void ResetLast();

    /// <summary>A fatal start-up error, before the daemon's logging works:
    /// raised, then printed to stderr as virDispatchError's default handler
    /// prints it ("libvirt: DOMAIN LEVEL : MESSAGE").</summary>
    void Dispatch(VirError error, string function);
}

/// <summary>Into libvirt's last error (<see cref="VirErrorNative"/>).</summary>
public sealed unsafe class VirErrorReporterNative : IVirErrorReporter
{
    public void Raise(VirError error, string function) => VirErrorNative.Raise(error, function);

    public void ResetLast() => Libvirt.Interop.Methods.virResetLastError();

    public void Dispatch(VirError error, string function)
    {
        VirErrorNative.Raise(error, function);
        Libvirt.Interop.Methods.virDispatchError(null);
    }
}

/// <summary>With no libvirt in the process: logged by <paramref name="log"/>, printed to <paramref name="stderr"/>.</summary>
public sealed class VirErrorReporterManaged(IVirLog log, TextWriter stderr) : IVirErrorReporter
{
    // virerror.c's log source
    private readonly VirLogSource _source = new("util.error");

    public void Raise(VirError error, string function)
    {
        if (error.Logged || error.Code == (int)VirErrorCode.Ok)
            return;
        // the file and line libvirt's log line shows for an error the managed code raised through the shim
        log.Message(_source, Priority(error.Level), "managed", 0, error.Function ?? function, error.Message);
    }

    public void ResetLast()
    {
    }

    public void Dispatch(VirError error, string function)
    {
        Raise(error, function);
        if (error.Code == (int)VirErrorCode.Ok)
            return;
        // virDefaultErrorFunc (no domain or network object in a daemon's errors)
        string lvl = error.Level switch { 1 => "warning", 2 => "error", _ => "" };
        string dom = VirErrorMessages.DomainName(error.Domain);
        stderr.Write(error.Message.EndsWith('\n')
            ? $"libvirt: {dom} {lvl} : {error.Message}"
            : $"libvirt: {dom} {lvl} : {error.Message}\n");
        stderr.Flush();
    }

    /// <summary>virErrorLevelPriority.</summary>
    private static VirLogPriority Priority(int level) => level switch
    {
        0 => VirLogPriority.Info,
        1 => VirLogPriority.Warn,
        _ => VirLogPriority.Error,
    };
}
