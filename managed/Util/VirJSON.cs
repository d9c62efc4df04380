using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Libvirt.Util;

/// <summary>
/// virjson.c's typed accessors and its formatter, over System.Text.Json, for
/// managed twins of code that reads and writes libvirt's JSON documents.
/// <para>The one mapping to keep in mind: a JSON null is a value in virJSON
/// (VIR_JSON_TYPE_NULL) but a null <see cref="JsonNode"/> here. A key that
/// is present with a null value is "present" (<see cref="HasKey"/>), and
/// the typed getters fail on it as virJSON's do on a NULL-typed value.</para>
/// </summary>
public static class VirJSON
{
    /// <summary>virJSONValueObjectHasKey: false for a non-object.</summary>
    public static bool HasKey(JsonNode? obj, string key)
        => obj is JsonObject o && o.ContainsKey(key);

    /// <summary>virJSONValueObjectGet: <paramref name="present"/> is what a
    /// non-NULL return would mean (the value itself may be a JSON null).</summary>
    public static JsonNode? Get(JsonNode? obj, string key, out bool present)
    {
        present = false;
        return obj is JsonObject o && (present = o.TryGetPropertyValue(key, out var v)) ? v : null;
    }

    public static JsonNode? Get(JsonNode? obj, string key) => Get(obj, key, out _);

    /// <summary>A JSON number's text, which virJSON keeps as it was written
    /// and parses with virStrToLong_*: only plain integers pass.</summary>
    private static string? NumberText(JsonNode? node)
        => node is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.ToJsonString() : null;

    /// <summary>virJSONValueGetNumberInt (virStrToLong_i).</summary>
    public static bool TryGetNumberInt(JsonNode? node, out int value)
    {
        value = 0;
        return NumberText(node) is { } t &&
               int.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>virJSONValueGetNumberLong (virStrToLong_ll).</summary>
    public static bool TryGetNumberLong(JsonNode? node, out long value)
    {
        value = 0;
        return NumberText(node) is { } t &&
               long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>virJSONValueGetNumberUint (virStrToLong_ui): "-N" wraps as
    /// long as N fits in 32 bits.</summary>
    public static bool TryGetNumberUint(JsonNode? node, out uint value)
    {
        value = 0;
        if (NumberText(node) is not { } t || !TryParseUnsigned(t, out ulong magnitude, out bool negative) ||
            magnitude > uint.MaxValue)
            return false;
        value = negative ? unchecked((uint)-(long)magnitude) : (uint)magnitude;
        return true;
    }

    /// <summary>virJSONValueGetNumberUlong (virStrToLong_ull, strtoull): "-N" wraps.</summary>
    public static bool TryGetNumberUlong(JsonNode? node, out ulong value)
    {
        value = 0;
        if (NumberText(node) is not { } t || !TryParseUnsigned(t, out ulong magnitude, out bool negative))
            return false;
        value = negative ? unchecked(0UL - magnitude) : magnitude;
        return true;
    }

    private static bool TryParseUnsigned(string text, out ulong magnitude, out bool negative)
    {
        negative = text.StartsWith('-');
        return ulong.TryParse(negative ? text.AsSpan(1) : text.AsSpan(), NumberStyles.None,
            CultureInfo.InvariantCulture, out magnitude);
    }

    /// <summary>virJSONValueGetString: a JSON string's value, else null.</summary>
    public static string? GetString(JsonNode? node)
        => node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>virJSONValueGetBoolean: only true and false.</summary>
    public static bool TryGetBoolean(JsonNode? node, out bool value)
    {
        var kind = node?.GetValueKind();
        value = kind == JsonValueKind.True;
        return kind is JsonValueKind.True or JsonValueKind.False;
    }

    public static bool TryGetNumberInt(JsonNode? obj, string key, out int value) => TryGetNumberInt(Get(obj, key), out value);
    public static bool TryGetNumberLong(JsonNode? obj, string key, out long value) => TryGetNumberLong(Get(obj, key), out value);
    public static bool TryGetNumberUint(JsonNode? obj, string key, out uint value) => TryGetNumberUint(Get(obj, key), out value);
    public static bool TryGetNumberUlong(JsonNode? obj, string key, out ulong value) => TryGetNumberUlong(Get(obj, key), out value);
    public static bool TryGetBoolean(JsonNode? obj, string key, out bool value) => TryGetBoolean(Get(obj, key), out value);

    /// <summary>
    /// virJSONValueToString: the text libvirt 9.0.0's yajl generator makes.
    /// Pretty is yajl's beautify mode with a two-space indent, where an empty
    /// array or object still gets its line breaks ("[\n\n  ]") and the
    /// document ends with a newline; compact has no whitespace at all.
    /// Strings escape only what yajl does (no solidus).
    /// </summary>
    public static string ToString(JsonNode? node, bool pretty)
    {
        var sb = new StringBuilder();
        Write(sb, node, pretty, 0);
        if (pretty)
            sb.Append('\n');
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonNode? node, bool pretty, int depth)
    {
        switch (node)
        {
            case JsonObject o:
                sb.Append('{');
                Open(sb, pretty);
                bool first = true;
                foreach (var (key, value) in o)
                {
                    Separate(sb, pretty, ref first, depth + 1);
                    WriteString(sb, key);
                    sb.Append(pretty ? ": " : ":");
                    Write(sb, value, pretty, depth + 1);
                }
                Close(sb, pretty, depth, '}');
                break;
            case JsonArray a:
                sb.Append('[');
                Open(sb, pretty);
                bool firstItem = true;
                foreach (var value in a)
                {
                    Separate(sb, pretty, ref firstItem, depth + 1);
                    Write(sb, value, pretty, depth + 1);
                }
                Close(sb, pretty, depth, ']');
                break;
            case null:
                sb.Append("null");
                break;
            default:
                switch (node.GetValueKind())
                {
                    case JsonValueKind.String:
                        WriteString(sb, node.GetValue<string>());
                        break;
                    case JsonValueKind.True:
                        sb.Append("true");
                        break;
                    case JsonValueKind.False:
                        sb.Append("false");
                        break;
                    default:
                        sb.Append(node.ToJsonString()); // a number, as written
                        break;
                }
                break;
        }
    }

    private static void Open(StringBuilder sb, bool pretty)
    {
        if (pretty)
            sb.Append('\n');
    }

    private static void Separate(StringBuilder sb, bool pretty, ref bool first, int depth)
    {
        if (!first)
            sb.Append(pretty ? ",\n" : ",");
        first = false;
        if (pretty)
            sb.Append(' ', 2 * depth);
    }

    private static void Close(StringBuilder sb, bool pretty, int depth, char bracket)
    {
        if (pretty)
            sb.Append('\n').Append(' ', 2 * depth);
        sb.Append(bracket);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20)
                        sb.Append("\\u00").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
