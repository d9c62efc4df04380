using System.Runtime.InteropServices;
using System.Text;
using Libvirt.Interop;

namespace Libvirt.Util;

/// <summary>Kinds of value a virConf file can hold (same order and meaning
/// as libvirt's virConfType).</summary>
public enum VirConfType
{
    None = 0,
    /// <summary>A number written with a leading '-'.</summary>
    LLong = 1,
    /// <summary>A number written without a leading '-' (a '+' still gives this).</summary>
    ULLong = 2,
    String = 3,
    List = 4,
}

/// <summary>One parsed value. Numbers keep the raw 64-bit pattern that the
/// C lexer produces (digits accumulated with two's-complement wrap-around),
/// so the typed getters can reproduce libvirt's range checks exactly.</summary>
public sealed class VirConfValue
{
    internal VirConfValue(VirConfType type, long number, string? str, IReadOnlyList<VirConfValue>? list)
    {
        Type = type;
        Number = number;
        String = str;
        List = list ?? Array.Empty<VirConfValue>();
    }

    public VirConfType Type { get; }

    /// <summary>Raw 64-bit value for <see cref="VirConfType.LLong"/> and
    /// <see cref="VirConfType.ULLong"/>; reinterpret as ulong for the latter.</summary>
    public long Number { get; }

    public string? String { get; }

    public IReadOnlyList<VirConfValue> List { get; }

    public override string ToString() => Type switch
    {
        VirConfType.LLong => Number.ToString(System.Globalization.CultureInfo.InvariantCulture),
        VirConfType.ULLong => ((ulong)Number).ToString(System.Globalization.CultureInfo.InvariantCulture),
        VirConfType.String => String ?? "",
        VirConfType.List => "[ " + string.Join(", ", List.Select(v => v.ToString())) + " ]",
        _ => "",
    };
}

/// <summary>A libvirt error raised while reading or querying a virConf file.
/// <see cref="Exception.Message"/> is the full text libvirt's
/// virGetLastErrorMessage() would return (prefix from virErrorMsg included),
/// e.g. "configuration file syntax error: /etc/x.conf:3: expecting a value".</summary>
public sealed class VirConfException : Exception
{
    /// <summary>virErrorNumber values used here.</summary>
    public const int VIR_ERR_INTERNAL_ERROR = 1;
    public const int VIR_ERR_INVALID_ARG = 8;
    public const int VIR_ERR_CONF_SYNTAX = 33;
    public const int VIR_ERR_SYSTEM_ERROR = 38;

    /// <summary>virErrorDomain values used here.</summary>
    public const int VIR_FROM_NONE = 0;
    public const int VIR_FROM_CONF = 9;

    public VirConfException(int domain, int code, string detail, int errno = 0, int line = 0)
        : base(Format(code, detail))
    {
        Domain = domain;
        Code = code;
        Detail = detail;
        Errno = errno;
        Line = line;
    }

    /// <summary>virErrorDomain (VIR_FROM_CONF, or VIR_FROM_NONE for file reading).</summary>
    public int Domain { get; }

    /// <summary>virErrorNumber.</summary>
    public int Code { get; }

    /// <summary>The message without virErrorMsg's prefix (libvirt's "str1").</summary>
    public string Detail { get; }

    /// <summary>errno for VIR_ERR_SYSTEM_ERROR, else 0.</summary>
    public int Errno { get; }

    /// <summary>Line of a syntax error (1-based), else 0.</summary>
    public int Line { get; }

    /// <summary>virErrorMsg(code, info) applied to the detail, for the codes this parser raises.</summary>
    public static string Format(int code, string detail) => code switch
    {
        VIR_ERR_INTERNAL_ERROR => "internal error: " + detail,
        VIR_ERR_INVALID_ARG => "invalid argument: " + detail,
        VIR_ERR_CONF_SYNTAX => "configuration file syntax error: " + detail,
        VIR_ERR_SYSTEM_ERROR => detail,
        _ => detail,
    };
}

/// <summary>
/// Reader for libvirt's virConf format (the format of virtlockd.conf and
/// virtlogd.conf), following the behaviour of libvirt 9.0.0 in its default
/// mode (no VMX/LXC flags): grammar, line counting, error texts and the
/// typed getters' acceptance rules. Entries are kept in file order; a key
/// that occurs more than once resolves to its first occurrence.
/// </summary>
public sealed partial class VirConf
{
    /// <summary>virConf refuses files larger than this many bytes.</summary>
    public const int MaxConfigFileSize = 1024 * 1024 * 10;

    /// <summary>The file name libvirt uses for configurations parsed from memory.</summary>
    public const string MemoryFileName = "memory conf";

    private readonly List<KeyValuePair<string, VirConfValue>> _entries = new();

    private VirConf(string fileName) => FileName = fileName;

    /// <summary>The name used in error messages.</summary>
    public string FileName { get; }

    /// <summary>All settings in file order (duplicates included; comments dropped).</summary>
    public IReadOnlyList<KeyValuePair<string, VirConfValue>> Entries => _entries;

    // ------------------------------------------------------------------
    // Loading
    // ------------------------------------------------------------------

    /// <summary>As virConfReadFile(path, 0).</summary>
    public static VirConf ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        byte[] content = ReadAll(path, MaxConfigFileSize);
        return Parse(content, path);
    }

    /// <summary>Parses text (encoded as UTF-8, as it would be on disk).</summary>
    public static VirConf Parse(string text, string filename = MemoryFileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Parse(Encoding.UTF8.GetBytes(text), filename);
    }

    /// <summary>Parses raw file content; <paramref name="filename"/> is used in error messages.</summary>
    public static VirConf Parse(ReadOnlySpan<byte> content, string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        var conf = new VirConf(filename);
        var parser = new Parser(content, filename, conf);
        parser.Run();
        return conf;
    }

    // ------------------------------------------------------------------
    // Lookup and typed getters (virConfGetValue*)
    // ------------------------------------------------------------------

    /// <summary>First value stored under <paramref name="key"/> (case-sensitive), or null.</summary>
    public VirConfValue? GetValue(string key)
    {
        foreach (var e in _entries)
        {
            if (string.Equals(e.Key, key, StringComparison.Ordinal))
                return e.Value;
        }
        return null;
    }

    public VirConfType GetValueType(string key) => GetValue(key)?.Type ?? VirConfType.None;

    public bool ContainsKey(string key) => GetValue(key) is not null;

    /// <summary>As virConfGetValueString: strings only (lists and numbers are errors).
    /// Returns false, leaving <paramref name="value"/> untouched, when the key is absent.</summary>
    public bool GetString(string key, ref string? value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.String)
            throw Internal($"{FileName}: expected a string for '{key}' parameter");
        value = v.String;
        return true;
    }

    /// <summary>As virConfGetValueStringList. With <paramref name="compatString"/>
    /// a single string is accepted as a one-element list. Note libvirt discards
    /// the previous <paramref name="values"/> (sets it to null here) as soon as the
    /// key is found, even when the value then turns out to have the wrong type.</summary>
    public bool GetStringList(string key, bool compatString, ref string[]? values)
    {
        var v = GetValue(key);
        if (v is null)
            return false;

        values = null;
        switch (v.Type)
        {
            case VirConfType.List:
                foreach (var item in v.List)
                {
                    if (item.Type != VirConfType.String)
                        throw new VirConfException(VirConfException.VIR_FROM_CONF, VirConfException.VIR_ERR_CONF_SYNTAX,
                            $"{FileName}: expected a string list for '{key}' parameter");
                }
                values = v.List.Select(i => i.String ?? "").ToArray();
                return true;
            case VirConfType.String when compatString:
                values = v.String is null ? Array.Empty<string>() : new[] { v.String };
                return true;
            default:
                throw Internal(compatString
                    ? $"{FileName}: expected a string or string list for '{key}' parameter"
                    : $"{FileName}: expected a string list for '{key}' parameter");
        }
    }

    /// <summary>As virConfGetValueBool: only an unsigned (no '-') number 0 or 1.</summary>
    public bool GetBool(string key, ref bool value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.ULLong)
            throw Internal($"{FileName}: expected a bool for '{key}' parameter");
        if ((ulong)v.Number > 1)
            throw Internal($"{FileName}: value for '{key}' parameter must be 0 or 1");
        value = v.Number == 1;
        return true;
    }

    /// <summary>As virConfGetValueInt: any number within int range (compared as the raw signed 64-bit value).</summary>
    public bool GetInt(string key, ref int value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.LLong && v.Type != VirConfType.ULLong)
            throw Internal($"{FileName}: expected a signed integer for '{key}' parameter");
        if (v.Number > int.MaxValue || v.Number < int.MinValue)
            throw Internal($"{FileName}: value for '{key}' parameter must be in range {int.MinValue}:{int.MaxValue}");
        value = (int)v.Number;
        return true;
    }

    /// <summary>As virConfGetValueUInt: a number without '-' (even "-0" is refused) up to 4294967295.</summary>
    public bool GetUInt(string key, ref uint value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.ULLong)
            throw Internal($"{FileName}: expected an unsigned integer for '{key}' parameter");
        if ((ulong)v.Number > uint.MaxValue)
            throw Internal($"{FileName}: value for '{key}' parameter must be in range 0:{uint.MaxValue}");
        value = (uint)v.Number;
        return true;
    }

    /// <summary>As virConfGetValueSizeT (size_t; on 64-bit hosts no range check).</summary>
    public bool GetSizeT(string key, ref ulong value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.ULLong)
            throw Internal($"{FileName}: expected an unsigned integer for '{key}' parameter");
        ulong max = nuint.MaxValue;
        if ((ulong)v.Number > max)
            throw Internal($"{FileName}: value for '{key}' parameter must be in range 0:{max}");
        value = (ulong)v.Number;
        return true;
    }

    /// <summary>As virConfGetValueSSizeT (ssize_t).</summary>
    public bool GetSSizeT(string key, ref long value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        long max = nint.MaxValue, min = nint.MinValue;
        if (v.Type == VirConfType.ULLong)
        {
            if ((ulong)v.Number > (ulong)max)
                throw Internal($"{FileName}: value for '{key}' parameter must be in range {min}:{max}");
        }
        else if (v.Type == VirConfType.LLong)
        {
            if (v.Number < min || v.Number > max)
                throw Internal($"{FileName}: value for '{key}' parameter must be in range {min}:{max}");
        }
        else
        {
            throw Internal($"{FileName}: expected a signed integer for '{key}' parameter");
        }
        value = v.Number;
        return true;
    }

    /// <summary>As virConfGetValueLLong.</summary>
    public bool GetLLong(string key, ref long value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type == VirConfType.ULLong)
        {
            if ((ulong)v.Number > long.MaxValue)
                throw Internal($"{FileName}: value for '{key}' parameter must be in range {long.MinValue}:{long.MaxValue}");
        }
        else if (v.Type != VirConfType.LLong)
        {
            throw Internal($"{FileName}: expected a signed integer for '{key}' parameter");
        }
        value = v.Number;
        return true;
    }

    /// <summary>As virConfGetValueULLong: a number without '-', any 64-bit pattern.</summary>
    public bool GetULLong(string key, ref ulong value)
    {
        var v = GetValue(key);
        if (v is null)
            return false;
        if (v.Type != VirConfType.ULLong)
            throw Internal($"{FileName}: expected an unsigned integer for '{key}' parameter");
        value = (ulong)v.Number;
        return true;
    }

    private static VirConfException Internal(string detail) =>
        new(VirConfException.VIR_FROM_CONF, VirConfException.VIR_ERR_INTERNAL_ERROR, detail);

    // ------------------------------------------------------------------
    // File reading (virFileReadAll semantics and messages)
    // ------------------------------------------------------------------

    private const int O_RDONLY = 0;
    private const int O_CLOEXEC = 0x80000; // Linux
    private const int EINTR = 4;
    private const int EOVERFLOW = 75; // Linux

    private static unsafe byte[] ReadAll(string path, int maxLen)
    {
        int fd;
        fixed (byte* p = NulTerminated(path))
            fd = Native.open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw SystemError(Marshal.GetLastPInvokeError(), $"Failed to open file '{path}'");

        try
        {
            var buf = new MemoryStream();
            var chunk = new byte[64 * 1024];
            while (true)
            {
                nint n;
                fixed (byte* c = chunk)
                    n = Native.read(fd, c, (nuint)chunk.Length);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == EINTR)
                        continue;
                    throw SystemError(errno, $"Failed to read file '{path}'");
                }
                if (n == 0)
                    break;
                buf.Write(chunk, 0, (int)n);
                if (buf.Length > maxLen)
                    throw SystemError(EOVERFLOW, $"Failed to read file '{path}'");
            }
            return buf.ToArray();
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static VirConfException SystemError(int errno, string what) =>
        new(VirConfException.VIR_FROM_NONE, VirConfException.VIR_ERR_SYSTEM_ERROR,
            what + ": " + Marshal.GetPInvokeErrorMessage(errno), errno);

    private static byte[] NulTerminated(string s)
    {
        // a path decoded from C bytes that were not UTF-8 gets those bytes back
        return LosslessUtf8.EncodeNulTerminated(s);
    }

    private static unsafe partial class Native
    {
        [LibraryImport("libc", SetLastError = true)]
        internal static partial int open(byte* path, int flags);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial nint read(int fd, byte* buf, nuint count);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int close(int fd);
    }

    // ------------------------------------------------------------------
    // Parser: a byte-level recursive-descent reader with the same cursor
    // movements as libvirt's, so that error lines and accepted inputs agree.
    // Reading at or past the end yields 0, like the NUL that terminates the
    // buffer libvirt parses.
    // ------------------------------------------------------------------

    private ref struct Parser
    {
        private readonly ReadOnlySpan<byte> _s;
        private readonly string _file;
        private readonly VirConf _conf;
        private int _pos;
        private int _line;

        public Parser(ReadOnlySpan<byte> s, string file, VirConf conf)
        {
            _s = s;
            _file = file;
            _conf = conf;
            _pos = 0;
            _line = 1;
        }

        private readonly byte Cur => _pos < _s.Length ? _s[_pos] : (byte)0;
        private readonly byte At(int i) => i >= 0 && i < _s.Length ? _s[i] : (byte)0;
        private readonly bool AtEnd => _pos >= _s.Length;

        private void Next()
        {
            if (_pos < _s.Length)
                _pos++;
        }

        private static bool IsEol(byte c) => c == (byte)'\n' || c == (byte)'\r';
        private static bool IsBlank(byte c) => c == (byte)' ' || c == (byte)'\t';
        private static bool IsDigit(byte c) => c >= (byte)'0' && c <= (byte)'9';
        private static bool IsAlpha(byte c) => (c | 0x20) >= (byte)'a' && (c | 0x20) <= (byte)'z';

        private void SkipBlanks()
        {
            while (!AtEnd && IsBlank(Cur))
                _pos++;
        }

        private void SkipBlanksAndEol()
        {
            while (!AtEnd && (IsBlank(Cur) || IsEol(Cur)))
            {
                if (Cur == (byte)'\n')
                    _line++;
                _pos++;
            }
        }

        private readonly bool TripleQuoteAt(int i) =>
            At(i) == (byte)'"' && At(i + 1) == (byte)'"' && At(i + 2) == (byte)'"';

        private readonly VirConfException Syntax(string info) =>
            new(VirConfException.VIR_FROM_CONF, VirConfException.VIR_ERR_CONF_SYNTAX,
                $"{_file}:{_line}: {info}", line: _line);

        public void Run()
        {
            while (!AtEnd)
            {
                ParseStatement();
                ParseSeparator();
            }
        }

        private void ParseStatement()
        {
            SkipBlanksAndEol();
            if (Cur == (byte)'#')
            {
                // Whole-line comment: runs to end of line (not consumed).
                Next();
                while (!AtEnd && !IsEol(Cur))
                    Next();
                return;
            }

            string name = ParseName();
            SkipBlanks();
            if (Cur != (byte)'=')
                throw Syntax("expecting an assignment");
            Next();
            SkipBlanks();
            VirConfValue value = ParseValue();
            SkipBlanks();
            if (Cur == (byte)'#')
            {
                // Trailing comment after the value.
                Next();
                while (!AtEnd && !IsEol(Cur))
                    Next();
            }
            _conf._entries.Add(new KeyValuePair<string, VirConfValue>(name, value));
        }

        private void ParseSeparator()
        {
            SkipBlanks();
            if (AtEnd)
                return;
            if (IsEol(Cur))
            {
                SkipBlanksAndEol();
            }
            else if (Cur == (byte)';')
            {
                Next();
                SkipBlanksAndEol();
            }
            else
            {
                throw Syntax("expecting a separator");
            }
        }

        private string ParseName()
        {
            SkipBlanks();
            int start = _pos;
            if (!IsAlpha(Cur))
                throw Syntax("expecting a name");
            while (!AtEnd && (IsAlpha(Cur) || IsDigit(Cur) || Cur == (byte)'_'))
                Next();
            return Encoding.ASCII.GetString(_s[start.._pos]);
        }

        private VirConfValue ParseValue()
        {
            SkipBlanks();
            if (AtEnd)
                throw Syntax("expecting a value");

            byte c = Cur;
            if (c == (byte)'"' || c == (byte)'\'')
                return new VirConfValue(VirConfType.String, 0, ParseString(), null);

            if (c == (byte)'[')
            {
                var items = new List<VirConfValue>();
                Next();
                SkipBlanksAndEol();
                if (!AtEnd && Cur != (byte)']')
                {
                    items.Add(ParseValue());
                    SkipBlanksAndEol();
                }
                while (!AtEnd && Cur != (byte)']')
                {
                    if (Cur != (byte)',')
                        throw Syntax("expecting a separator in list");
                    Next();
                    SkipBlanksAndEol();
                    if (Cur == (byte)']')
                        break; // trailing comma
                    items.Add(ParseValue());
                    SkipBlanksAndEol();
                }
                if (Cur != (byte)']')
                    throw Syntax("list is not closed with ]");
                Next();
                return new VirConfValue(VirConfType.List, 0, null, items);
            }

            if (IsDigit(c) || c == (byte)'-' || c == (byte)'+')
            {
                var type = c == (byte)'-' ? VirConfType.LLong : VirConfType.ULLong;
                return new VirConfValue(type, ParseNumber(), null, null);
            }

            throw Syntax("expecting a value");
        }

        private long ParseNumber()
        {
            bool neg = false;
            if (Cur == (byte)'-')
            {
                neg = true;
                Next();
            }
            else if (Cur == (byte)'+')
            {
                Next();
            }
            if (AtEnd || !IsDigit(Cur))
                throw Syntax("unterminated number");
            long l = 0;
            unchecked
            {
                while (!AtEnd && IsDigit(Cur))
                {
                    l = l * 10 + (Cur - (byte)'0');
                    Next();
                }
                return neg ? -l : l;
            }
        }

        private string ParseString()
        {
            if (Cur == (byte)'\'')
                return ParseQuoted((byte)'\'');

            // Triple quotes only when at least seven bytes remain from the opening quote.
            if (_pos + 6 < _s.Length && TripleQuoteAt(_pos))
            {
                _pos += 3;
                int start = _pos;
                while (_pos + 2 < _s.Length && !TripleQuoteAt(_pos))
                {
                    if (Cur == (byte)'\n')
                        _line++;
                    Next();
                }
                if (!TripleQuoteAt(_pos))
                    throw Syntax("unterminated string");
                string s = Decode(_s[start.._pos]);
                _pos += 3;
                return s;
            }

            return ParseQuoted((byte)'"');
        }

        private string ParseQuoted(byte quote)
        {
            Next();
            int start = _pos;
            while (!AtEnd && Cur != quote && !IsEol(Cur))
                Next();
            if (Cur != quote)
                throw Syntax("unterminated string");
            string s = Decode(_s[start.._pos]);
            Next();
            return s;
        }

        // libvirt copies strings with g_strndup, which stops at an embedded NUL.
        private static string Decode(ReadOnlySpan<byte> bytes)
        {
            int nul = bytes.IndexOf((byte)0);
            if (nul >= 0)
                bytes = bytes[..nul];
            // every byte kept (LosslessUtf8): a path in the file that is not
            // UTF-8 reaches libc, and libvirt, as the bytes it was
            return LosslessUtf8.Decode(bytes);
        }
    }
}
