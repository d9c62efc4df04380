using System.Text;

namespace Libvirt.Xdr.Generator;

/// <summary>
/// The XDR language of RFC 4506 section 6 as rpcgen accepts it: const,
/// typedef, enum, struct, union (switch with case lists and default),
/// fixed and variable arrays, optional data, string and opaque, plus
/// rpcgen's "unsigned" alone, "%" pass-through lines (skipped), and
/// C preprocessor lines (skipped). Program definitions are refused: the
/// libvirt protocols name procedures by an enum instead.
/// </summary>
internal sealed class Parser
{
    private readonly List<(string Text, int Line)> _tokens = new();
    private readonly string _file;
    private int _pos;

    public Parser(string file, string text)
    {
        _file = file;
        Tokenize(text);
    }

    private void Tokenize(string text)
    {
        int line = 1;
        int i = 0;
        bool lineStart = true;
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '\n') { line++; i++; lineStart = true; continue; }
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (lineStart && (c == '%' || c == '#'))
            {
                while (i < text.Length && text[i] != '\n') i++;
                continue;
            }
            lineStart = false;
            if (c == '/' && i + 1 < text.Length && text[i + 1] == '*')
            {
                int end = text.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0) throw Error(line, "unterminated comment");
                line += text.AsSpan(i, end - i).Count('\n');
                i = end + 2;
                continue;
            }
            if (c == '/' && i + 1 < text.Length && text[i + 1] == '/')
            {
                while (i < text.Length && text[i] != '\n') i++;
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                int s = i;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]) || text[i] == '_')) i++;
                _tokens.Add((text[s..i], line));
                continue;
            }
            if (char.IsDigit(c) || (c == '-' && i + 1 < text.Length && char.IsDigit(text[i + 1])))
            {
                int s = i++;
                while (i < text.Length && (char.IsLetterOrDigit(text[i]))) i++;
                _tokens.Add((text[s..i], line));
                continue;
            }
            if ("{}()[]<>;:,=*".IndexOf(c) >= 0)
            {
                _tokens.Add((c.ToString(), line));
                i++;
                continue;
            }
            throw Error(line, $"unexpected character '{c}'");
        }
    }

    private XdrGenException Error(int line, string message) => new($"{_file}:{line}: {message}");
    private XdrGenException Error(string message) => Error(_pos < _tokens.Count ? _tokens[_pos].Line : _tokens.Count > 0 ? _tokens[^1].Line : 1, message);

    private string Peek(int ahead = 0) => _pos + ahead < _tokens.Count ? _tokens[_pos + ahead].Text : "";
    private string Next() => _pos < _tokens.Count ? _tokens[_pos++].Text : throw Error("unexpected end of file");
    private void Expect(string t)
    {
        var got = Next();
        if (got != t) throw Error($"expected '{t}', found '{got}'");
    }
    private bool Accept(string t)
    {
        if (Peek() != t) return false;
        _pos++;
        return true;
    }

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "bool", "case", "const", "default", "double", "quadruple", "enum", "float", "hyper", "int", "opaque",
        "string", "struct", "switch", "typedef", "union", "unsigned", "void", "program", "version",
    };

    private string Identifier()
    {
        var t = Next();
        if (t.Length == 0 || !(char.IsLetter(t[0]) || t[0] == '_') || Keywords.Contains(t))
            throw Error($"expected an identifier, found '{t}'");
        return t;
    }

    /// <summary>A constant: a number or a constant's name.</summary>
    private string Value()
    {
        var t = Next();
        if (t.Length == 0 || t == "{" || t == "}" || t == ";" || Keywords.Contains(t))
            throw Error($"expected a value, found '{t}'");
        return t;
    }

    public List<Definition> Parse()
    {
        var defs = new List<Definition>();
        while (_pos < _tokens.Count)
        {
            var kw = Next();
            switch (kw)
            {
                case "const":
                {
                    var name = Identifier();
                    Expect("=");
                    defs.Add(new ConstDef(name, Value(), _file));
                    break;
                }
                case "typedef":
                {
                    var d = Declaration();
                    if (d.Type is VoidSpec) throw Error("typedef void");
                    defs.Add(new TypedefDef(d.Name, d, _file));
                    break;
                }
                case "enum":
                    defs.Add(new EnumDef(Identifier(), EnumBody(), _file));
                    break;
                case "struct":
                {
                    var name = Identifier();
                    Expect("{");
                    var fields = new List<Decl>();
                    do
                    {
                        var d = Declaration();
                        if (d.Type is VoidSpec) throw Error("void member of a struct");
                        fields.Add(d);
                        Expect(";");
                    } while (Peek() != "}");
                    Expect("}");
                    defs.Add(new StructDef(name, fields, _file));
                    break;
                }
                case "union":
                {
                    var name = Identifier();
                    Expect("switch");
                    Expect("(");
                    var disc = Declaration();
                    Expect(")");
                    Expect("{");
                    var arms = new List<UnionArm>();
                    Decl? deflt = null;
                    while (Peek() == "case")
                    {
                        var cases = new List<string>();
                        while (Accept("case"))
                        {
                            cases.Add(Value());
                            Expect(":");
                        }
                        arms.Add(new UnionArm(cases, Declaration()));
                        Expect(";");
                    }
                    if (Accept("default"))
                    {
                        Expect(":");
                        deflt = Declaration();
                        Expect(";");
                    }
                    Expect("}");
                    if (arms.Count == 0) throw Error($"union {name} has no case");
                    defs.Add(new UnionDef(name, disc, arms, deflt, _file));
                    break;
                }
                case "program":
                    throw Error("program definitions are not supported (the procedures are an enum)");
                default:
                    throw Error($"expected a definition, found '{kw}'");
            }
            Expect(";");
        }
        return defs;
    }

    private List<(string, string)> EnumBody()
    {
        Expect("{");
        var members = new List<(string, string)>();
        do
        {
            var name = Identifier();
            Expect("=");
            members.Add((name, Value()));
        } while (Accept(","));
        Expect("}");
        return members;
    }

    private TypeSpec TypeSpecifier()
    {
        var t = Next();
        switch (t)
        {
            case "unsigned":
                if (Accept("int")) return new PrimSpec(Prim.UInt);
                if (Accept("hyper")) return new PrimSpec(Prim.UHyper);
                if (Accept("long")) return new PrimSpec(Prim.UInt);
                return new PrimSpec(Prim.UInt); // rpcgen: "unsigned" alone is unsigned int
            case "int": return new PrimSpec(Prim.Int);
            case "long": return new PrimSpec(Prim.Int);
            case "hyper": return new PrimSpec(Prim.Hyper);
            case "float": return new PrimSpec(Prim.Float);
            case "double": return new PrimSpec(Prim.Double);
            case "bool": return new PrimSpec(Prim.Bool);
            case "string": return new StringSpec();
            case "opaque": return new OpaqueSpec();
            case "void": return new VoidSpec();
            case "quadruple": throw Error("quadruple is not supported");
            case "struct" or "union" or "enum":
                if (Peek(1) == "{") throw Error($"inline {t} definitions are not supported");
                return new NameSpec(Identifier());
            default:
                _pos--;
                return new NameSpec(Identifier());
        }
    }

    private Decl Declaration()
    {
        var type = TypeSpecifier();
        if (type is VoidSpec) return new Decl("", type, DeclKind.Plain, null);
        if (Accept("*"))
        {
            if (type is StringSpec or OpaqueSpec) throw Error("optional string/opaque needs a typedef");
            return new Decl(Identifier(), type, DeclKind.Optional, null);
        }
        var name = Identifier();
        if (Accept("["))
        {
            var n = Value();
            Expect("]");
            if (type is StringSpec) throw Error($"string {name}[...]: strings are variable-length");
            return new Decl(name, type, DeclKind.FixedArray, n);
        }
        if (Accept("<"))
        {
            string? n = Peek() == ">" ? null : Value();
            Expect(">");
            return new Decl(name, type, DeclKind.VarArray, n);
        }
        if (type is StringSpec or OpaqueSpec) throw Error($"{name}: string and opaque need a bound ([n] or <n>)");
        return new Decl(name, type, DeclKind.Plain, null);
    }
}
