using Libvirt.Util;
using System.Text.Json.Nodes;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Util;

/// <summary>libvirt's virJSONValue and managed JSON, at native boundaries:
/// the exec-restart document is composed in managed JSON, and only what
/// native objects serialise themselves crosses through here.</summary>
public static unsafe class VirJSONNative
{
    /// <summary>A libvirt JSON value as managed JSON; frees the native one.</summary>
    public static JsonNode? FromNative(virJSONValue* value)
    {
        if (value == null)
            return null;
        try
        {
            return ReadNative(value);
        }
        finally
        {
            virJSONValueFree(value);
        }
    }

    /// <summary>A libvirt JSON value libvirt keeps owning, as managed JSON.</summary>
    public static JsonNode? ReadNative(virJSONValue* value)
    {
        if (value == null)
            return null;
        var text = NativeUtf8.ReadAndFree(virJSONValueToString(value, 0));
        return text is null ? null : JsonNode.Parse(text);
    }

    /// <summary>Managed JSON as a libvirt JSON value (the caller owns it).</summary>
    public static virJSONValue* ToNative(JsonNode node)
    {
        using var text = new NativeUtf8(node.ToJsonString());
        return virJSONValueFromString(text);
    }
}
