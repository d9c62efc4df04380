namespace Libvirt.Util;

/// <summary>libvirt's UUID text form (src/util/viruuid.c): the 16 bytes in
/// order, 8-4-4-4-12 lower-case hex (not System.Guid's mixed-endian layout).</summary>
public static class VirUUID
{
    public static string Format(ReadOnlySpan<byte> uuid)
    {
        string hex = Convert.ToHexStringLower(uuid);
        return $"{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..]}";
    }

    public static bool TryParse(string? text, Span<byte> uuid)
    {
        if (text is null)
            return false;
        string hex = text.Replace("-", "", StringComparison.Ordinal);
        if (hex.Length != 32)
            return false;
        try
        {
            Convert.FromHexString(hex).CopyTo(uuid);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
