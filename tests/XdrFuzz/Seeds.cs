using System.Buffers.Binary;
using Libvirt.Tests.Xdr;
using Libvirt.Xdr;

namespace Libvirt.XdrFuzz;

/// <summary>The seed corpus, made at run time from valid encodings: for every type, random valid values
/// (the schema's own encoder, fixed seeds); for every procedure of every program, a CALL with valid
/// arguments and a REPLY with a valid result; an error reply; a stream hole.</summary>
public static class Seeds
{
    public static IEnumerable<(string Name, byte[] Data)> All(XdrTarget target, int perType)
    {
        if (target.Only is { } only)
        {
            if (only.Name == BrokenType.Name)
                yield return ($"type-{only.Name}", BrokenType.Seed);
            else
                for (int k = 0; k < perType; k++)
                    yield return ($"type-{only.Name}-{k}", new ValidEncoder(new Random(k)).Encode(target.ShapeOf(only)));
            yield break;
        }
        for (int i = 0; i < target.Types.Count; i++)
        {
            var t = target.Types[i];
            if (t.Name == BrokenType.Name)
            {
                yield return ($"type-{t.Name}", [(byte)i, .. BrokenType.Seed]);
                continue;
            }
            var shape = target.ShapeOf(t);
            for (int k = 0; k < perType; k++)
                yield return ($"type-{t.Name}-{k}", [(byte)i, .. new ValidEncoder(new Random(1000 * i + k)).Encode(shape)]);
        }
        var rng = new Random(7);
        foreach (var p in target.Programs)
            foreach (var (proc, types) in p.Procedures)
            {
                yield return ($"call-{p.Name}-{proc}", Frame(p.Program, p.Version, proc, 0, 0, types.Args, target, rng));
                if (types.Ret is not null)
                    yield return ($"reply-{p.Name}-{proc}", Frame(p.Program, p.Version, proc, 1, 0, types.Ret, target, rng));
            }
        var lockProgram = target.Programs[0];
        yield return ("reply-error", Frame(lockProgram.Program, lockProgram.Version, 1, 1, 1, target.Type("virNetMessageError"), target, rng));
        yield return ("stream-hole", Frame(lockProgram.Program, lockProgram.Version, 1, 6, 2, target.Type("virNetStreamHole"), target, rng));
    }

    private static byte[] Frame(uint prog, uint vers, int proc, int type, int status, XdrTypeInfo? payload, XdrTarget target, Random rng)
    {
        var h = new byte[24];
        BinaryPrimitives.WriteUInt32BigEndian(h, prog);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), vers);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(8), proc);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(16), 1);
        BinaryPrimitives.WriteInt32BigEndian(h.AsSpan(20), status);
        var body = payload is null ? [] : new ValidEncoder(rng).Encode(target.ShapeOf(payload));
        return [XdrTarget.FrameSelector, .. h, .. body];
    }

    /// <summary>Writes every seed to <paramref name="dir"/>; a seed the target finds fault with is
    /// itself a finding (a valid encoding that does not round-trip) and is returned, not written.</summary>
    public static (int Written, List<string> Findings) Write(XdrTarget target, string dir, int perType)
    {
        Directory.CreateDirectory(dir);
        int n = 0;
        var findings = new List<string>();
        foreach (var (name, data) in All(target, perType))
        {
            try { target.Run(data); }
            catch (Exception e)
            {
                findings.Add($"{name}: {e.GetType().Name}: {e.Message}");
                continue;
            }
            File.WriteAllBytes(Path.Combine(dir, name), data);
            n++;
        }
        return (n, findings);
    }
}
