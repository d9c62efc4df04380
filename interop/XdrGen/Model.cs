namespace Libvirt.Xdr.Generator;

/// <summary>A type specifier as written: a base type or a name.</summary>
internal abstract record TypeSpec;
internal sealed record PrimSpec(Prim Kind) : TypeSpec;
internal sealed record NameSpec(string Name) : TypeSpec;
internal sealed record StringSpec : TypeSpec;
internal sealed record OpaqueSpec : TypeSpec;
internal sealed record VoidSpec : TypeSpec;

internal enum Prim { Int, UInt, Hyper, UHyper, Float, Double, Bool }

internal enum DeclKind { Plain, FixedArray, VarArray, Optional }

/// <summary>A declaration: <c>type name</c>, <c>type name[n]</c>, <c>type name&lt;n&gt;</c>,
/// <c>type *name</c>, or <c>void</c>. Bound is a constant expression (null: unbounded).</summary>
internal sealed record Decl(string Name, TypeSpec Type, DeclKind Kind, string? Bound);

internal abstract record Definition(string Name, string File);
internal sealed record ConstDef(string Name, string Value, string File) : Definition(Name, File);
internal sealed record TypedefDef(string Name, Decl Decl, string File) : Definition(Name, File);
internal sealed record EnumDef(string Name, List<(string Name, string Value)> Members, string File) : Definition(Name, File);
internal sealed record StructDef(string Name, List<Decl> Fields, string File) : Definition(Name, File);
internal sealed record UnionArm(List<string> Cases, Decl Decl);
internal sealed record UnionDef(string Name, Decl Discriminant, List<UnionArm> Arms, Decl? Default, string File) : Definition(Name, File);

/// <summary>A type with typedefs resolved: what goes on the wire.</summary>
internal abstract record WType;
internal sealed record WPrim(Prim Kind) : WType;
internal sealed record WEnum(string Name) : WType;
internal sealed record WStruct(string Name) : WType;
internal sealed record WUnion(string Name) : WType;
internal sealed record WString(long Max) : WType;
internal sealed record WOpaqueFixed(long Length) : WType;
internal sealed record WOpaqueVar(long Max) : WType;
internal sealed record WArrayFixed(WType Element, long Length) : WType;
internal sealed record WArrayVar(WType Element, long Max) : WType;
internal sealed record WOptional(WType Element) : WType;
internal sealed record WVoid : WType;

internal sealed class XdrGenException(string message) : Exception(message);
