using System.Runtime.InteropServices;

namespace Libvirt.Util;

/// <summary>libvirt's error domains (virErrorDomain) that the migrated code reports from.</summary>
public enum VirErrorDomain
{
    None = 0,
    Rpc = 7,
    Conf = 9,
    Event = 40,
    Locking = 42,
    LockSpace = 51,
    Systemd = 56,
    Thread = 61,
    Admin = 62,
    Logging = 63,
}

/// <summary>libvirt's error codes (virErrorNumber) that the migrated code reports.</summary>
public enum VirErrorCode
{
    Ok = 0,
    InternalError = 1,
    NoMemory = 2,
    NoSupport = 3,
    InvalidArg = 8,
    OperationFailed = 9,
    OperationDenied = 29,
    ConfSyntax = 33,
    SystemError = 38,
    Rpc = 39,
    OperationInvalid = 55,
    ConfigUnsupported = 67,
    ArgumentUnsupported = 74,
    ResourceBusy = 87,
    NoServer = 95,
    NoClient = 96,
}

/// <summary>
/// The message formats of virerror.c's table (the "with detail" column), so
/// that a managed error reads exactly as libvirt's, and strerror texts as
/// glib's g_strerror gives them (glibc's, untranslated: the daemons run in
/// the C locale as far as error texts go).
/// </summary>
public static class VirErrorMessages
{
    /// <summary>The printf format virErrorMsg(code, detail) returns.</summary>
    public static string Prefix(VirErrorCode code) => code switch
    {
        VirErrorCode.InternalError => "internal error: %s",
        VirErrorCode.NoMemory => "out of memory: %s",
        VirErrorCode.NoSupport => "this function is not supported by the connection driver: %s",
        VirErrorCode.InvalidArg => "invalid argument: %s",
        VirErrorCode.OperationFailed => "operation failed: %s",
        VirErrorCode.OperationDenied => "operation forbidden: %s",
        VirErrorCode.ConfSyntax => "configuration file syntax error: %s",
        VirErrorCode.SystemError => "%s",
        VirErrorCode.Rpc => "%s",
        VirErrorCode.OperationInvalid => "Requested operation is not valid: %s",
        VirErrorCode.ConfigUnsupported => "unsupported configuration: %s",
        VirErrorCode.ArgumentUnsupported => "argument unsupported: %s",
        VirErrorCode.ResourceBusy => "resource busy: %s",
        VirErrorCode.NoServer => "Server not found: %s",
        VirErrorCode.NoClient => "Client not found: %s",
        _ => throw new ArgumentOutOfRangeException(nameof(code), code, "no message format known for this code"),
    };

    public static string Format(VirErrorCode code, string detail) => Prefix(code).Replace("%s", detail);

    /// <summary>virErrorDomainTypeToString for the domains above (what
    /// virDispatchError's default handler prints); "Unknown" for another, as there.</summary>
    public static string DomainName(int domain) => (VirErrorDomain)domain switch
    {
        VirErrorDomain.None => "",
        VirErrorDomain.Rpc => "XML-RPC",
        VirErrorDomain.Conf => "Config File",
        VirErrorDomain.Event => "Event Loop",
        VirErrorDomain.Locking => "Lock Driver",
        VirErrorDomain.LockSpace => "Lock Space",
        VirErrorDomain.Systemd => "Systemd",
        VirErrorDomain.Thread => "Thread jobs",
        VirErrorDomain.Admin => "Admin Interface",
        VirErrorDomain.Logging => "Log Manager",
        _ => "Unknown",
    };

    /// <summary>strerror(errno) in the C locale.</summary>
    public static string StrError(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
