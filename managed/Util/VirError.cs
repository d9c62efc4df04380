namespace Libvirt.Util;

/// <summary>
/// An error as a value: what libvirt's virError carries (code, domain,
/// message, level and the extra fields), so a managed implementation can
/// report exactly what the C function would without touching libvirt's
/// per-thread last error. Only native adapters convert to and from that
/// (<see cref="VirErrorNative"/>), at the boundary.
/// </summary>
public sealed record VirError(
    int Code,
    int Domain,
    string Message,
    int Level = VirError.LevelError,
    string? Str1 = null,
    string? Str2 = null,
    string? Str3 = null,
    int Int1 = -1,
    int Int2 = -1)
{
    public const int LevelError = 2; // VIR_ERR_ERROR

    /// <summary>libvirt logged this error when it was raised (it came from a
    /// native call): handing it back to libvirt must not log it twice. Not
    /// part of the error's identity.</summary>
    public bool Logged { get; init; }

    /// <summary>The C function that reports this error, when it is not the
    /// one that hands it to libvirt (libvirt's log line names it). Not part
    /// of the error's identity.</summary>
    public string? Function { get; init; }

    /// <summary>This error, reported from <paramref name="function"/>.</summary>
    public VirError At(string function) => this with { Function = function };

    public bool Equals(VirError? other)
        => other is not null && Code == other.Code && Domain == other.Domain && Message == other.Message &&
           Level == other.Level && Str1 == other.Str1 && Str2 == other.Str2 && Str3 == other.Str3 &&
           Int1 == other.Int1 && Int2 == other.Int2;

    public override int GetHashCode() => HashCode.Combine(Code, Domain, Message);

    public override string ToString() => Message;

    // ---- constructors with the C reporters' message formats ----

    /// <summary>What libvirt's virGetLastError gives when a call failed
    /// without reporting anything (virErrorGenericFailure).</summary>
    public static VirError UnknownCause()
        => new((int)VirErrorCode.InternalError, 0, "An error occurred, but the cause is unknown");

    /// <summary>As virReportError(code, "%s", detail): "&lt;prefix&gt;: detail".
    /// str1 is the prefix, str2 the detail, as virReportErrorHelper sets them.</summary>
    public static VirError Report(VirErrorDomain domain, VirErrorCode code, string detail)
    {
        string prefix = VirErrorMessages.Prefix(code);
        return new VirError((int)code, (int)domain, VirErrorMessages.Format(code, detail), Str1: prefix, Str2: detail);
    }

    /// <summary>As virReportSystemError(errno, fmt, ...): "detail: strerror(errno)",
    /// code VIR_ERR_SYSTEM_ERROR, int1 the errno.</summary>
    public static VirError System(VirErrorDomain domain, int errno, string detail)
    {
        string text = $"{detail}: {VirErrorMessages.StrError(errno)}";
        return new VirError((int)VirErrorCode.SystemError, (int)domain, text, Str1: "%s", Str2: text, Int1: errno);
    }

    /// <summary>As virCheckFlags (virReportInvalidArg): "unsupported flags
    /// (0x..) in function X" with no prefix, str1 the function, str2 "flags".</summary>
    public static VirError UnsupportedFlags(VirErrorDomain domain, uint unsupported, string function)
        => new((int)VirErrorCode.InvalidArg, (int)domain, $"unsupported flags (0x{unsupported:x}) in function {function}",
            Str1: function, Str2: "flags", Int1: 0, Int2: 0);

    /// <summary>virCheckFlags: null when only <paramref name="supported"/> bits are set.</summary>
    public static VirError? CheckFlags(VirErrorDomain domain, uint flags, uint supported, string function)
        => (flags & ~supported) == 0 ? null : UnsupportedFlags(domain, flags & ~supported, function);
}

/// <summary>Thrown where an error cannot be returned (constructors, properties).</summary>
public sealed class VirErrorException(VirError error) : Exception(error.Message)
{
    public VirError Error { get; } = error;
}

/// <summary>Success, or the error a C function would have reported.</summary>
public readonly struct VirResult
{
    public VirError? Error { get; }
    public bool Ok => Error is null;

    private VirResult(VirError? error) => Error = error;

    public static VirResult Success => default;
    public static implicit operator VirResult(VirError error) => new(error);

    /// <summary>Throws <see cref="VirErrorException"/> on failure.</summary>
    public void ThrowIfFailed()
    {
        if (Error is not null)
            throw new VirErrorException(Error);
    }
}

/// <summary>A value, or the error a C function would have reported.</summary>
public readonly struct VirResult<T>
{
    private readonly T _value;
    public VirError? Error { get; }
    public bool Ok => Error is null;

    public VirResult(T value)
    {
        _value = value;
        Error = null;
    }

    private VirResult(VirError error)
    {
        _value = default!;
        Error = error;
    }

    /// <summary>The value; throws <see cref="VirErrorException"/> on failure.</summary>
    public T Value => Error is null ? _value : throw new VirErrorException(Error);

    public bool TryGet(out T value, out VirError? error)
    {
        value = _value;
        error = Error;
        return Error is null;
    }

    public static implicit operator VirResult<T>(T value) => new(value);
    public static implicit operator VirResult<T>(VirError error) => new(error);
}
