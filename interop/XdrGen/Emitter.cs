using System.Globalization;
using System.Text;

namespace Libvirt.Xdr.Generator;

/// <summary>One input .x file and what its C# file is called.</summary>
internal sealed record ProtocolFile(string Path, string DisplayPath, string Stem, string ClassName, IReadOnlyDictionary<string, long>? Externals = null);

/// <summary>
/// A program in a protocol file. The libvirt protocols have no rpcgen
/// "program" block: a program is its two constants and an enum of
/// procedures, and a procedure's argument and return structs are found by
/// name (PROC_FOO_BAR: ...FooBarArgs / ...FooBarRet, or ..._foo_bar_args).
/// </summary>
internal sealed record ProgramSpec(string File, string Name, string ProgramConst, string VersionConst,
    string ProcedureEnum, string ProcedurePrefix, string TypePrefix, string Description);

internal sealed class Emitter
{
    private readonly List<Definition> _defs;
    private readonly Dictionary<string, Definition> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _values = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _externals = new(StringComparer.Ordinal);
    private int _tmp;

    public Emitter(List<Definition> defs, IEnumerable<KeyValuePair<string, long>> externals)
    {
        // "typedef struct foo foo;" names the struct itself: nothing to add
        _defs = defs.Where(d => d is not TypedefDef { Decl: { Kind: DeclKind.Plain, Type: NameSpec n } } td || n.Name != td.Name).ToList();
        defs = _defs;
        foreach (var (k, v) in externals) _externals[k] = v;
        foreach (var d in defs)
        {
            if (!_byName.TryAdd(d.Name, d))
                throw new XdrGenException($"{d.File}: {d.Name} is defined twice (also in {_byName[d.Name].File})");
            if (d is EnumDef en)
                foreach (var (m, _) in en.Members)
                    if (!_byName.TryAdd(m, d))
                        throw new XdrGenException($"{d.File}: enum member {m} clashes with another name");
        }
    }

    // ---- constants ----

    public long Eval(string value, string context)
    {
        if (_values.TryGetValue(value, out var known)) return known;
        long v;
        var s = value;
        bool neg = s.StartsWith('-');
        if (neg) s = s[1..];
        if (char.IsDigit(s[0]))
        {
            if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
                v = long.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            else if (s.Length > 1 && s[0] == '0')
                v = Convert.ToInt64(s, 8);
            else
                v = long.Parse(s, CultureInfo.InvariantCulture);
            return neg ? -v : v;
        }
        if (neg) throw new XdrGenException($"{context}: -{s}: a negated name is not a constant");
        if (_byName.TryGetValue(s, out var def))
        {
            v = def switch
            {
                ConstDef c => Eval(c.Value, c.Name),
                EnumDef e => Eval(e.Members.First(m => m.Name == s).Value, s),
                _ => throw new XdrGenException($"{context}: {s} is a type, not a constant"),
            };
        }
        else if (_externals.TryGetValue(s, out v)) { }
        else throw new XdrGenException($"{context}: unknown constant {s}");
        _values[value] = v;
        return v;
    }

    private long Bound(Decl d, string context)
    {
        if (d.Bound is null) return uint.MaxValue;
        long v = Eval(d.Bound, $"{context}.{d.Name}");
        if (v < 0 || v > uint.MaxValue) throw new XdrGenException($"{context}.{d.Name}: bound {v} out of range");
        return v;
    }

    // ---- types ----

    public WType Resolve(Decl d, string context, HashSet<string>? seen = null)
    {
        WType Base()
        {
            switch (d.Type)
            {
                case PrimSpec p: return new WPrim(p.Kind);
                case VoidSpec: return new WVoid();
                case NameSpec n:
                    if (!_byName.TryGetValue(n.Name, out var def))
                        throw new XdrGenException($"{context}: unknown type {n.Name}");
                    switch (def)
                    {
                        case StructDef: return new WStruct(n.Name);
                        case UnionDef: return new WUnion(n.Name);
                        case EnumDef e when e.Name == n.Name: return new WEnum(n.Name);
                        case TypedefDef t:
                            seen ??= new HashSet<string>();
                            if (!seen.Add(t.Name)) throw new XdrGenException($"{context}: typedef {t.Name} refers to itself");
                            return Resolve(t.Decl, t.Name, seen);
                        default: throw new XdrGenException($"{context}: {n.Name} is not a type");
                    }
                default: throw new InvalidOperationException();
            }
        }
        if (d.Type is StringSpec)
            return new WString(Bound(d, context));
        if (d.Type is OpaqueSpec)
            return d.Kind == DeclKind.FixedArray ? new WOpaqueFixed(Bound(d, context)) : new WOpaqueVar(Bound(d, context));
        var b = Base();
        return d.Kind switch
        {
            DeclKind.Plain => b,
            DeclKind.Optional => new WOptional(b),
            DeclKind.FixedArray => new WArrayFixed(b, Bound(d, context)),
            DeclKind.VarArray => new WArrayVar(b, Bound(d, context)),
            _ => throw new InvalidOperationException(),
        };
    }

    private static readonly HashSet<string> CSharpKeywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const",
        "continue", "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern",
        "false", "finally", "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface",
        "internal", "is", "lock", "long", "namespace", "new", "null", "object", "operator", "out", "override",
        "params", "private", "protected", "public", "readonly", "ref", "return", "sbyte", "sealed", "short",
        "sizeof", "stackalloc", "static", "string", "struct", "switch", "this", "throw", "true", "try", "typeof",
        "uint", "ulong", "unchecked", "unsafe", "ushort", "using", "virtual", "void", "volatile", "while",
    };

    private static string Id(string name) => CSharpKeywords.Contains(name) ? "@" + name : name;

    private static string PrimCs(Prim p) => p switch
    {
        Prim.Int => "int", Prim.UInt => "uint", Prim.Hyper => "long", Prim.UHyper => "ulong",
        Prim.Float => "float", Prim.Double => "double", Prim.Bool => "bool", _ => throw new InvalidOperationException(),
    };

    private static string PrimName(Prim p) => p switch
    {
        Prim.Int => "Int", Prim.UInt => "UInt", Prim.Hyper => "Hyper", Prim.UHyper => "UHyper",
        Prim.Float => "Float", Prim.Double => "Double", Prim.Bool => "Bool", _ => throw new InvalidOperationException(),
    };

    private static string ElementCs(WType t, string context) => t switch
    {
        WStruct s => s.Name,
        WUnion u => u.Name,
        WPrim p => "Xdr" + PrimName(p.Kind),
        _ => throw new XdrGenException($"{context}: arrays of {t} are not supported (give the element a struct)"),
    };

    public static string Cs(WType t, string context) => t switch
    {
        WPrim p => PrimCs(p.Kind),
        WEnum e => e.Name,
        WStruct s => s.Name,
        WUnion u => u.Name,
        WString or WOpaqueFixed or WOpaqueVar => "ReadOnlyMemory<byte>",
        WArrayFixed a => $"XdrArray<{ElementCs(a.Element, context)}>",
        WArrayVar a => $"XdrArray<{ElementCs(a.Element, context)}>",
        WOptional o => o.Element is WOptional or WVoid
            ? throw new XdrGenException($"{context}: optional of {o.Element} is not supported")
            : Cs(o.Element, context) + "?",
        _ => throw new XdrGenException($"{context}: {t} has no C# type"),
    };

    private static string Lit(long v) => v.ToString(CultureInfo.InvariantCulture);

    private string NewTmp() => "t" + (_tmp++).ToString(CultureInfo.InvariantCulture);

    private const string Fail = ") != XdrError.None) return e;";

    /// <summary>Statements decoding <paramref name="t"/> from r into <paramref name="target"/>.</summary>
    private void Decode(WType t, string target, StringBuilder sb, string ind, string context)
    {
        switch (t)
        {
            case WPrim p: sb.Append(ind).Append($"if ((e = r.Read{PrimName(p.Kind)}(out {target})").AppendLine(Fail); break;
            case WEnum en:
            {
                var tmp = NewTmp();
                sb.Append(ind).Append($"if ((e = r.ReadInt(out int {tmp})").AppendLine(Fail);
                sb.Append(ind).AppendLine($"{target} = ({en.Name}){tmp};");
                break;
            }
            case WStruct or WUnion: sb.Append(ind).Append($"if ((e = {Cs(t, context)}.Decode(ref r, out {target})").AppendLine(Fail); break;
            case WString s: sb.Append(ind).Append($"if ((e = r.ReadString({Lit(s.Max)}, out {target})").AppendLine(Fail); break;
            case WOpaqueFixed f: sb.Append(ind).Append($"if ((e = r.ReadFixedOpaque({Lit(f.Length)}, out {target})").AppendLine(Fail); break;
            case WOpaqueVar v: sb.Append(ind).Append($"if ((e = r.ReadOpaque({Lit(v.Max)}, out {target})").AppendLine(Fail); break;
            case WArrayVar a: sb.Append(ind).Append($"if ((e = {Cs(t, context)}.Decode(ref r, {Lit(a.Max)}, out {target})").AppendLine(Fail); break;
            case WArrayFixed a: sb.Append(ind).Append($"if ((e = {Cs(t, context)}.DecodeFixed(ref r, {Lit(a.Length)}, out {target})").AppendLine(Fail); break;
            case WOptional o:
            {
                var present = NewTmp();
                var tmp = NewTmp();
                sb.Append(ind).Append($"if ((e = r.ReadBool(out bool {present})").AppendLine(Fail);
                sb.Append(ind).AppendLine($"if ({present})");
                sb.Append(ind).AppendLine("{");
                sb.Append(ind).AppendLine($"    {Cs(o.Element, context)} {tmp};");
                Decode(o.Element, tmp, sb, ind + "    ", context);
                sb.Append(ind).AppendLine($"    {target} = {tmp};");
                sb.Append(ind).AppendLine("}");
                sb.Append(ind).AppendLine("else");
                sb.Append(ind).AppendLine($"    {target} = null;");
                break;
            }
            case WVoid: break;
            default: throw new XdrGenException($"{context}: cannot decode {t}");
        }
    }

    /// <summary>Statements encoding <paramref name="src"/> of type <paramref name="t"/> into w.</summary>
    private void Encode(WType t, string src, StringBuilder sb, string ind, string context)
    {
        switch (t)
        {
            case WPrim p: sb.Append(ind).Append($"if ((e = w.Write{PrimName(p.Kind)}({src})").AppendLine(Fail); break;
            case WEnum: sb.Append(ind).Append($"if ((e = w.WriteInt((int){src})").AppendLine(Fail); break;
            case WStruct or WUnion: sb.Append(ind).Append($"if ((e = {src}.Encode(ref w)").AppendLine(Fail); break;
            case WString s: sb.Append(ind).Append($"if ((e = w.WriteString({src}, {Lit(s.Max)})").AppendLine(Fail); break;
            case WOpaqueFixed f: sb.Append(ind).Append($"if ((e = w.WriteFixedOpaque({src}, {Lit(f.Length)})").AppendLine(Fail); break;
            case WOpaqueVar v: sb.Append(ind).Append($"if ((e = w.WriteOpaque({src}, {Lit(v.Max)})").AppendLine(Fail); break;
            case WArrayVar a: sb.Append(ind).Append($"if ((e = {src}.Encode(ref w, {Lit(a.Max)})").AppendLine(Fail); break;
            case WArrayFixed a: sb.Append(ind).Append($"if ((e = {src}.EncodeFixed(ref w, {Lit(a.Length)})").AppendLine(Fail); break;
            case WOptional o:
            {
                var tmp = NewTmp();
                sb.Append(ind).AppendLine($"if ({src} is {{ }} {tmp})");
                sb.Append(ind).AppendLine("{");
                sb.Append(ind).Append("    if ((e = w.WriteBool(true)").AppendLine(Fail);
                Encode(o.Element, tmp, sb, ind + "    ", context);
                sb.Append(ind).AppendLine("}");
                sb.Append(ind).Append("else if ((e = w.WriteBool(false)").AppendLine(Fail);
                break;
            }
            case WVoid: break;
            default: throw new XdrGenException($"{context}: cannot encode {t}");
        }
    }

    /// <summary>An expression for the encoded size of <paramref name="src"/>.</summary>
    private string Size(WType t, string src, string context)
    {
        switch (t)
        {
            case WPrim p: return p.Kind is Prim.Hyper or Prim.UHyper or Prim.Double ? "8" : "4";
            case WEnum: return "4";
            case WStruct or WUnion: return $"{src}.EncodedSize()";
            case WString: return $"XdrSize.String({src})";
            case WOpaqueFixed f: return Lit((f.Length + 3) & ~3L);
            case WOpaqueVar: return $"XdrSize.Opaque({src})";
            case WArrayVar: return $"{src}.EncodedSize(true)";
            case WArrayFixed: return $"{src}.EncodedSize(false)";
            case WOptional o:
            {
                var tmp = NewTmp();
                return $"({src} is {{ }} {tmp} ? 4 + {Size(o.Element, tmp, context)} : 4)";
            }
            case WVoid: return "0";
            default: throw new XdrGenException($"{context}: no size for {t}");
        }
    }

    /// <summary>The wire shape as an s-expression (structs and unions inline), for tests and fuzzers.</summary>
    public string Schema(WType t, HashSet<string>? open = null)
    {
        open ??= new HashSet<string>();
        switch (t)
        {
            case WPrim p: return PrimName(p.Kind).ToLowerInvariant();
            case WEnum en:
            {
                var def = (EnumDef)_byName[en.Name];
                return $"(enum {en.Name} {string.Join(" ", def.Members.Select(m => Lit(Eval(m.Value, m.Name))))})";
            }
            case WString s: return $"(string {Lit(s.Max)})";
            case WOpaqueFixed f: return $"(opaque {Lit(f.Length)})";
            case WOpaqueVar v: return $"(varopaque {Lit(v.Max)})";
            case WArrayFixed a: return $"(array {Lit(a.Length)} {Schema(a.Element, open)})";
            case WArrayVar a: return $"(vararray {Lit(a.Max)} {Schema(a.Element, open)})";
            case WOptional o: return $"(optional {Schema(o.Element, open)})";
            case WVoid: return "void";
            case WStruct st:
            {
                if (!open.Add(st.Name)) throw new XdrGenException($"{st.Name} contains itself: recursive types are not supported");
                var def = (StructDef)_byName[st.Name];
                var s = $"(struct {st.Name} {string.Join(" ", def.Fields.Select(f => Schema(Resolve(f, st.Name), open)))})";
                open.Remove(st.Name);
                return s;
            }
            case WUnion un:
            {
                if (!open.Add(un.Name)) throw new XdrGenException($"{un.Name} contains itself: recursive types are not supported");
                var def = (UnionDef)_byName[un.Name];
                var sb = new StringBuilder($"(union {un.Name} {Schema(Resolve(def.Discriminant, un.Name), open)}");
                foreach (var arm in def.Arms)
                    sb.Append($" (case ({string.Join(" ", arm.Cases.Select(c => Lit(Eval(c, un.Name))))}) {Schema(Resolve(arm.Decl, un.Name), open)})");
                if (def.Default is { } d)
                    sb.Append($" (default {Schema(Resolve(d, un.Name), open)})");
                sb.Append(')');
                open.Remove(un.Name);
                return sb.ToString();
            }
            default: throw new InvalidOperationException();
        }
    }

    private const string Header = "// <auto-generated>\n// Written by interop/XdrGen (./build.sh xdr) from {0}. Do not edit.\n// </auto-generated>\n";

    // ---- one C# file per .x file ----

    public string EmitFile(ProtocolFile file, IEnumerable<ProgramSpec> programs)
    {
        var sb = new StringBuilder();
        sb.AppendFormat(CultureInfo.InvariantCulture, Header, file.DisplayPath);
        sb.AppendLine("#nullable enable");
        sb.AppendLine("using System.Buffers;");
        sb.AppendLine("using Libvirt.Util;");
        sb.AppendLine();
        sb.AppendLine("namespace Libvirt.Xdr;");
        var defs = _defs.Where(d => d.File == file.Path).ToList();

        var consts = defs.OfType<ConstDef>().ToList();
        sb.AppendLine();
        sb.AppendLine($"/// <summary>The constants of {file.DisplayPath}.</summary>");
        sb.AppendLine($"public static class {file.ClassName}Constants");
        sb.AppendLine("{");
        foreach (var c in consts)
        {
            long v = Eval(c.Value, c.Name);
            string type = v is >= int.MinValue and <= int.MaxValue ? "int" : v is >= 0 and <= uint.MaxValue ? "uint" : "long";
            sb.AppendLine($"    public const {type} {c.Name} = {(c.Value.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? c.Value : Lit(v))};");
        }
        sb.AppendLine("}");

        foreach (var d in defs)
        {
            _tmp = 0;
            switch (d)
            {
                case EnumDef en: EmitEnum(en, sb); break;
                case StructDef st: EmitStruct(st, sb); break;
                case UnionDef un: EmitUnion(un, sb); break;
                case TypedefDef td: EmitTypedef(td, sb); break;
            }
        }
        foreach (var p in programs)
            EmitProgram(p, sb);
        return sb.ToString();
    }

    private void EmitEnum(EnumDef en, StringBuilder sb)
    {
        sb.AppendLine();
        sb.AppendLine($"public enum {en.Name} : int");
        sb.AppendLine("{");
        foreach (var (m, v) in en.Members)
        {
            long x = Eval(v, m);
            if (x is < int.MinValue or > int.MaxValue) throw new XdrGenException($"{en.Name}.{m}: {x} is not an int");
            sb.AppendLine($"    {m} = {Lit(x)},");
        }
        sb.AppendLine("}");
        // the enum's codec, as for a typedef
        EmitCodecClass(en.Name + "Xdr", en.Name, new WEnum(en.Name), sb, $"XDR codec of enum {en.Name} (xdr_enum: any int decodes).");
    }

    private void EmitStruct(StructDef st, StringBuilder sb)
    {
        var fields = st.Fields.Select(f => (f, t: Resolve(f, st.Name))).ToList();
        sb.AppendLine();
        sb.AppendLine($"public partial struct {st.Name} : IXdrCodec<{st.Name}>");
        sb.AppendLine("{");
        foreach (var (f, t) in fields)
            sb.AppendLine($"    public {Cs(t, st.Name + "." + f.Name)} {Id(f.Name)};");
        sb.AppendLine();
        sb.AppendLine($"    public static XdrError Decode(ref XdrReader r, out {st.Name} v)");
        sb.AppendLine("    {");
        sb.AppendLine("        v = default;");
        sb.AppendLine("        XdrError e;");
        foreach (var (f, t) in fields)
            Decode(t, "v." + Id(f.Name), sb, "        ", st.Name);
        sb.AppendLine("        return XdrError.None;");
        sb.AppendLine("    }");
        sb.AppendLine();
        sb.AppendLine("    public readonly XdrError Encode(ref XdrWriter w)");
        sb.AppendLine("    {");
        sb.AppendLine("        XdrError e;");
        foreach (var (f, t) in fields)
            Encode(t, "this." + Id(f.Name), sb, "        ", st.Name);
        sb.AppendLine("        return XdrError.None;");
        sb.AppendLine("    }");
        sb.AppendLine();
        sb.AppendLine($"    public readonly long EncodedSize() => {string.Join(" + ", fields.Select(x => Size(x.t, "this." + Id(x.f.Name), st.Name)))};");
        sb.AppendLine("}");
    }

    private string CaseLabel(WType disc, string value, string context)
    {
        long v = Eval(value, context);
        return disc switch
        {
            WEnum en => $"({en.Name}){Lit(v)}",
            WPrim { Kind: Prim.Bool } => v != 0 ? "true" : "false",
            WPrim { Kind: Prim.UInt } => Lit((uint)v) + "u",
            WPrim { Kind: Prim.Int } => v < 0 ? $"({Lit(v)})" : Lit(v),
            _ => throw new XdrGenException($"{context}: a union discriminant must be int, unsigned int, bool or an enum"),
        };
    }

    private void EmitUnion(UnionDef un, StringBuilder sb)
    {
        var disc = Resolve(un.Discriminant, un.Name);
        var arms = un.Arms.Select(a => (a, t: Resolve(a.Decl, un.Name))).ToList();
        WType? deflt = un.Default is { } dd ? Resolve(dd, un.Name) : null;
        var discName = Id(un.Discriminant.Name);
        sb.AppendLine();
        sb.AppendLine($"/// <summary>Union on {un.Discriminant.Name}: only the arm it selects is on the wire.</summary>");
        sb.AppendLine($"public partial struct {un.Name} : IXdrCodec<{un.Name}>");
        sb.AppendLine("{");
        sb.AppendLine($"    public {Cs(disc, un.Name)} {discName};");
        var members = arms.Select(x => (x.a.Decl, x.t)).ToList();
        if (un.Default is { } dDecl) members.Add((dDecl, deflt!));
        foreach (var (d, t) in members)
            if (t is not WVoid)
                sb.AppendLine($"    public {Cs(t, un.Name + "." + d.Name)} {Id(d.Name)};");

        var seen = new HashSet<long>();
        foreach (var (a, _) in arms)
            foreach (var c in a.Cases)
                if (!seen.Add(Eval(c, un.Name)))
                    throw new XdrGenException($"{un.Name}: case {c} appears twice");

        void Switch(string action)
        {
            sb.AppendLine($"        switch ({discName})");
            sb.AppendLine("        {");
            foreach (var (a, t) in arms)
            {
                foreach (var c in a.Cases)
                    sb.AppendLine($"            case {CaseLabel(disc, c, un.Name)}:");
                Arm(action, t, a.Decl.Name);
                sb.AppendLine("                break;");
            }
            sb.AppendLine("            default:");
            if (deflt is not null)
            {
                Arm(action, deflt, un.Default!.Name);
                sb.AppendLine("                break;");
            }
            else if (action == "size")
                sb.AppendLine("                break;");
            else
                sb.AppendLine("                return XdrError.BadDiscriminant;");
            sb.AppendLine("        }");
        }

        void Arm(string action, WType t, string name)
        {
            if (t is WVoid) return;
            switch (action)
            {
                case "decode": Decode(t, "v." + Id(name), sb, "                ", un.Name); break;
                case "encode": Encode(t, "this." + Id(name), sb, "                ", un.Name); break;
                case "size": sb.AppendLine($"                n += {Size(t, "this." + Id(name), un.Name)};"); break;
            }
        }

        sb.AppendLine();
        sb.AppendLine($"    public static XdrError Decode(ref XdrReader r, out {un.Name} v)");
        sb.AppendLine("    {");
        sb.AppendLine("        v = default;");
        sb.AppendLine("        XdrError e;");
        Decode(disc, "v." + discName, sb, "        ", un.Name);
        sb.AppendLine("        var " + discName.TrimStart('@') + "_ = v." + discName + ";");
        // switch on a local copy in decode (v is being written)
        var field = discName;
        discName = discName.TrimStart('@') + "_";
        Switch("decode");
        discName = "this." + field;
        sb.AppendLine("        return XdrError.None;");
        sb.AppendLine("    }");
        sb.AppendLine();
        sb.AppendLine("    public readonly XdrError Encode(ref XdrWriter w)");
        sb.AppendLine("    {");
        sb.AppendLine("        XdrError e;");
        Encode(disc, discName, sb, "        ", un.Name);
        Switch("encode");
        sb.AppendLine("        return XdrError.None;");
        sb.AppendLine("    }");
        sb.AppendLine();
        sb.AppendLine("    public readonly long EncodedSize()");
        sb.AppendLine("    {");
        sb.AppendLine($"        long n = {Size(disc, discName, un.Name)};");
        Switch("size");
        sb.AppendLine("        return n;");
        sb.AppendLine("    }");
        sb.AppendLine("}");
    }

    private void EmitTypedef(TypedefDef td, StringBuilder sb)
    {
        var t = Resolve(td.Decl, td.Name);
        if (_byName.TryGetValue(td.Name, out var other) && other != td)
            return;
        EmitCodecClass(td.Name, Cs(t, td.Name), t, sb, $"typedef {td.Name}: a {Cs(t, td.Name)} on the wire as {Schema(t)}.");
    }

    private void EmitCodecClass(string className, string cs, WType t, StringBuilder sb, string summary)
    {
        sb.AppendLine();
        sb.AppendLine($"/// <summary>{System.Security.SecurityElement.Escape(summary)}</summary>");
        sb.AppendLine($"public static class {className}");
        sb.AppendLine("{");
        EmitDecodeEncode(cs, t, sb, "    ", "public static ", className);
        sb.AppendLine();
        sb.AppendLine($"    public static long EncodedSize(in {cs} v) => {Size(t, "v", className)};");
        sb.AppendLine("}");
    }

    /// <summary>The Decode and Encode methods of type <paramref name="t"/>
    /// (a codec class's, or the local functions of a round trip).</summary>
    private void EmitDecodeEncode(string cs, WType t, StringBuilder sb, string indent, string modifiers, string context)
    {
        sb.AppendLine($"{indent}{modifiers}XdrError Decode(ref XdrReader r, out {cs} v)");
        sb.AppendLine($"{indent}{{");
        sb.AppendLine($"{indent}    v = default;");
        sb.AppendLine($"{indent}    XdrError e;");
        Decode(t, "v", sb, indent + "    ", context);
        sb.AppendLine($"{indent}    return XdrError.None;");
        sb.AppendLine($"{indent}}}");
        sb.AppendLine();
        sb.AppendLine($"{indent}{modifiers}XdrError Encode(ref XdrWriter w, in {cs} v)");
        sb.AppendLine($"{indent}{{");
        sb.AppendLine($"{indent}    XdrError e;");
        Encode(t, "v", sb, indent + "    ", context);
        sb.AppendLine($"{indent}    return XdrError.None;");
        sb.AppendLine($"{indent}}}");
    }

    // ---- programs ----

    private static string Pascal(string upperSnake)
        => string.Concat(upperSnake.Split('_', StringSplitOptions.RemoveEmptyEntries)
            .Select(w => char.ToUpperInvariant(w[0]) + w[1..].ToLowerInvariant()));

    private StructDef? FindStruct(string typePrefix, string proc, string suffix)
    {
        // ...FooBarArgs or ..._foo_bar_args, compared without case (CreateLockSpace vs CREATE_LOCKSPACE)
        string camel = (typePrefix + Pascal(proc) + suffix).ToLowerInvariant();
        string snake = (typePrefix + proc + "_" + suffix).ToLowerInvariant();
        return _defs.OfType<StructDef>().FirstOrDefault(s =>
        {
            var n = s.Name.ToLowerInvariant();
            return n == camel || n == snake;
        });
    }

    public record Procedure(string EnumMember, string Method, long Number, StructDef? Args, StructDef? Ret);

    public List<Procedure> Procedures(ProgramSpec p)
    {
        if (!_byName.TryGetValue(p.ProcedureEnum, out var d) || d is not EnumDef en || en.Name != p.ProcedureEnum)
            throw new XdrGenException($"{p.File}: no procedure enum {p.ProcedureEnum}");
        var list = new List<Procedure>();
        foreach (var (m, v) in en.Members)
        {
            if (!m.StartsWith(p.ProcedurePrefix, StringComparison.Ordinal))
                throw new XdrGenException($"{p.ProcedureEnum}.{m} does not start with {p.ProcedurePrefix}");
            var proc = m[p.ProcedurePrefix.Length..];
            var args = FindStruct(p.TypePrefix, proc, "Args");
            var ret = FindStruct(p.TypePrefix, proc, "Ret");
            // the method is named as the structs spell the procedure (CreateLockSpace), else from the enum
            string method = Pascal(proc);
            foreach (var (st, suffix) in new[] { (args, "Args"), (ret, "Ret") })
                if (st is not null && st.Name.StartsWith(p.TypePrefix, StringComparison.Ordinal) && st.Name.EndsWith(suffix, StringComparison.Ordinal)
                    && char.IsUpper(st.Name[p.TypePrefix.Length]))
                {
                    method = st.Name[p.TypePrefix.Length..^suffix.Length];
                    break;
                }
            list.Add(new Procedure(m, method, Eval(v, m), args, ret));
        }
        return list;
    }

    private void EmitProgram(ProgramSpec p, StringBuilder sb)
    {
        var procs = Procedures(p);
        long prog = Eval(p.ProgramConst, p.Name), vers = Eval(p.VersionConst, p.Name);
        string iface = "I" + p.Name;
        sb.AppendLine();
        sb.AppendLine($"/// <summary>{System.Security.SecurityElement.Escape(p.Description)}: one method per procedure,");
        sb.AppendLine("/// typed arguments in, the result or the error (a value, not an exception) out. The call's");
        sb.AppendLine("/// context carries what is not in the arguments and results: file descriptors (in with");
        sb.AppendLine("/// CALL_WITH_FDS, out with REPLY_WITH_FDS) and scratch memory for results. Any RPC layer");
        sb.AppendLine("/// serves an implementation through <c>Dispatch</c>.</summary>");
        sb.AppendLine($"public interface {iface}<TClient>");
        sb.AppendLine("{");
        foreach (var pr in procs)
        {
            string ret = pr.Ret is null ? "VirResult" : $"VirResult<{pr.Ret.Name}>";
            string args = pr.Args is null ? "TClient client, XdrCallContext call" : $"TClient client, XdrCallContext call, in {pr.Args.Name} args";
            sb.AppendLine($"    /// <summary>{pr.EnumMember} ({Lit(pr.Number)}).</summary>");
            sb.AppendLine($"    {ret} {pr.Method}({args});");
        }
        sb.AppendLine("}");
        sb.AppendLine();
        sb.AppendLine($"/// <summary>{System.Security.SecurityElement.Escape(p.Description)}: program and version, its procedures, and dispatch of");
        sb.AppendLine("/// an encoded call to an implementation of the interface.</summary>");
        sb.AppendLine($"public static class {p.Name}");
        sb.AppendLine("{");
        sb.AppendLine($"    public const uint Program = 0x{prog:X};");
        sb.AppendLine($"    public const uint Version = {Lit(vers)};");
        sb.AppendLine();
        sb.AppendLine("    /// <summary>The procedure numbers, in protocol order.</summary>");
        sb.AppendLine($"    public static ReadOnlySpan<int> Procedures => [{string.Join(", ", procs.Select(x => Lit(x.Number)))}];");
        sb.AppendLine();
        sb.AppendLine("    /// <summary>Procedure name, as in the enum.</summary>");
        sb.AppendLine("    public static string? Name(int procedure) => procedure switch");
        sb.AppendLine("    {");
        foreach (var pr in procs)
            sb.AppendLine($"        {Lit(pr.Number)} => \"{pr.EnumMember}\",");
        sb.AppendLine("        _ => null,");
        sb.AppendLine("    };");
        sb.AppendLine();
        sb.AppendLine($"    /// <summary>The method of {iface} that implements the procedure.</summary>");
        sb.AppendLine("    public static string? MethodName(int procedure) => procedure switch");
        sb.AppendLine("    {");
        foreach (var pr in procs)
            sb.AppendLine($"        {Lit(pr.Number)} => \"{pr.Method}\",");
        sb.AppendLine("        _ => null,");
        sb.AppendLine("    };");
        sb.AppendLine();
        sb.AppendLine("    /// <summary>Decodes the arguments of <paramref name=\"procedure\"/> from <paramref name=\"args\"/>,");
        sb.AppendLine("    /// calls the implementation, and encodes its result into the call's <see cref=\"XdrCallContext.Reply\"/>");
        sb.AppendLine("    /// (nothing for a procedure without one). Strings and opaques of the arguments are slices of");
        sb.AppendLine("    /// <paramref name=\"args\"/>: valid during the call only.</summary>");
        sb.AppendLine($"    public static XdrDispatchStatus Dispatch<TClient>({iface}<TClient> impl, TClient client, XdrCallContext call,");
        sb.AppendLine("        int procedure, ReadOnlyMemory<byte> args, out VirError? error, out XdrError xdrError)");
        sb.AppendLine("    {");
        sb.AppendLine("        error = null;");
        sb.AppendLine("        xdrError = XdrError.None;");
        sb.AppendLine("        switch (procedure)");
        sb.AppendLine("        {");
        foreach (var pr in procs)
        {
            sb.AppendLine($"            case {Lit(pr.Number)}:");
            sb.AppendLine("            {");
            string call;
            if (pr.Args is not null)
            {
                sb.AppendLine($"                if ((xdrError = XdrCodec.Decode(args, out {pr.Args.Name} a, out _)) != XdrError.None)");
                sb.AppendLine("                    return XdrDispatchStatus.BadArgs;");
                call = $"impl.{pr.Method}(client, call, in a)";
            }
            else
                call = $"impl.{pr.Method}(client, call)";
            sb.AppendLine($"                var result = {call};");
            sb.AppendLine("                if (!result.Ok)");
            sb.AppendLine("                {");
            sb.AppendLine("                    error = result.Error;");
            sb.AppendLine("                    return XdrDispatchStatus.Failed;");
            sb.AppendLine("                }");
            if (pr.Ret is not null)
            {
                sb.AppendLine("                if ((xdrError = XdrCodec.Encode(result.Value, call.Reply)) != XdrError.None)");
                sb.AppendLine("                    return XdrDispatchStatus.BadRet;");
            }
            sb.AppendLine("                return XdrDispatchStatus.Ok;");
            sb.AppendLine("            }");
        }
        sb.AppendLine("            default:");
        sb.AppendLine("                return XdrDispatchStatus.UnknownProcedure;");
        sb.AppendLine("        }");
        sb.AppendLine("    }");
        sb.AppendLine("}");
    }

    // ---- the registry of every type, for tests and fuzzers ----

    public string EmitRegistry(IEnumerable<ProtocolFile> files)
    {
        var sb = new StringBuilder();
        sb.AppendFormat(CultureInfo.InvariantCulture, Header, "every protocol file");
        sb.AppendLine("#nullable enable");
        sb.AppendLine("namespace Libvirt.Xdr;");
        sb.AppendLine();
        sb.AppendLine("/// <summary>Decodes one value of a type from the input and encodes it again into the output.</summary>");
        sb.AppendLine("public delegate XdrError XdrRoundTrip(ReadOnlyMemory<byte> input, out int consumed, Span<byte> output, out int written, out XdrError encodeError);");
        sb.AppendLine();
        sb.AppendLine("/// <summary>A type of a protocol file: its name (rpcgen's filter is xdr_&lt;Name&gt;), its file,");
        sb.AppendLine("/// its wire shape as an s-expression, and a decode-then-encode of it.</summary>");
        sb.AppendLine("public sealed record XdrTypeInfo(string Name, string File, string Schema, XdrRoundTrip RoundTrip);");
        sb.AppendLine();
        sb.AppendLine("/// <summary>Every struct, union, enum and typedef of the protocol files.</summary>");
        sb.AppendLine("public static class XdrTypes");
        sb.AppendLine("{");
        sb.AppendLine("    public static readonly XdrTypeInfo[] All =");
        sb.AppendLine("    [");
        var fileNames = files.ToDictionary(f => f.Path, f => f.Stem);
        var entries = new List<(string Name, string Cs, WType T)>();
        foreach (var d in _defs)
        {
            WType? t = d switch
            {
                StructDef s => new WStruct(s.Name),
                UnionDef u => new WUnion(u.Name),
                EnumDef e => new WEnum(e.Name),
                TypedefDef td => Resolve(td.Decl, td.Name),
                _ => null,
            };
            if (t is null) continue;
            entries.Add((d.Name, Cs(t, d.Name), t));
            sb.AppendLine($"        new(\"{d.Name}\", \"{fileNames[d.File]}\", \"{Schema(t)}\", RT_{d.Name}),");
        }
        sb.AppendLine("    ];");
        foreach (var (name, cs, t) in entries)
        {
            _tmp = 0;
            sb.AppendLine();
            sb.AppendLine($"    private static XdrError RT_{name}(ReadOnlyMemory<byte> input, out int consumed, Span<byte> output, out int written, out XdrError encodeError)");
            sb.AppendLine("    {");
            sb.AppendLine("        written = 0;");
            sb.AppendLine("        encodeError = XdrError.None;");
            sb.AppendLine("        var r = new XdrReader(input);");
            sb.AppendLine($"        var d = Decode(ref r, out {cs} v);");
            sb.AppendLine("        consumed = r.Position;");
            sb.AppendLine("        if (d != XdrError.None) return d;");
            sb.AppendLine("        var w = new XdrWriter(output);");
            sb.AppendLine("        encodeError = Encode(ref w, v);");
            sb.AppendLine("        written = w.Position;");
            sb.AppendLine("        return XdrError.None;");
            sb.AppendLine();
            EmitDecodeEncode(cs, t, sb, "        ", "static ", name);
            sb.AppendLine("    }");
        }
        sb.AppendLine("}");
        return sb.ToString();
    }
}
