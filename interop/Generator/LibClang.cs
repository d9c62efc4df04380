// The slice of libclang's stable C API (clang-c/Index.h) the generator uses.
// Only blittable structs cross the boundary, so plain DllImport suffices.
using System.Runtime.InteropServices;

namespace Libvirt.Interop.Generator;

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXString { public void* Data; public uint Flags; }

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXCursor
{
    public CXCursorKind Kind;
    public int XData;
    public void* D0, D1, D2;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXType
{
    public CXTypeKind Kind;
    public void* D0, D1;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXSourceLocation { public void* P0, P1; public uint IntData; }

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXSourceRange { public void* P0, P1; public uint Begin, End; }

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXToken { public uint I0, I1, I2, I3; public void* Ptr; }

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CXUnsavedFile { public byte* Filename; public byte* Contents; public nuint Length; }

internal enum CXCursorKind
{
    StructDecl = 2, UnionDecl = 3, FieldDecl = 6, EnumDecl = 5, EnumConstantDecl = 7,
    FunctionDecl = 8, VarDecl = 9, ParmDecl = 10, TypedefDecl = 20,
    MacroDefinition = 501,
}

internal enum CXTypeKind
{
    Invalid = 0, Void = 2, Bool = 3, Char_U = 4, UChar = 5, UShort = 8, UInt = 9, ULong = 10,
    ULongLong = 11, UInt128 = 12, Char_S = 13, SChar = 14, Short = 16, Int = 17, Long = 18,
    LongLong = 19, Int128 = 20, Float = 21, Double = 22, LongDouble = 23,
    Pointer = 101, Record = 105, Enum = 106, Typedef = 107, FunctionNoProto = 110,
    FunctionProto = 111, ConstantArray = 112, IncompleteArray = 114, Elaborated = 119,
}

internal enum CXEvalResultKind { Int = 1, Float = 2, StrLiteral = 4 }

internal static unsafe partial class Clang
{
    private const string Lib = "libclang";

    // Parse options (CXTranslationUnit_Flags).
    public const uint DetailedPreprocessingRecord = 0x01;
    public const uint SkipFunctionBodies = 0x40;

    [DllImport(Lib)] public static extern void* clang_createIndex(int excludeDeclarationsFromPCH, int displayDiagnostics);
    [DllImport(Lib)] public static extern void clang_disposeIndex(void* index);
    [DllImport(Lib)]
    public static extern void* clang_parseTranslationUnit(void* index, byte* sourceFilename, byte** args, int numArgs,
        CXUnsavedFile* unsaved, uint numUnsaved, uint options);
    [DllImport(Lib)] public static extern void clang_disposeTranslationUnit(void* tu);

    [DllImport(Lib)] public static extern uint clang_getNumDiagnostics(void* tu);
    [DllImport(Lib)] public static extern void* clang_getDiagnostic(void* tu, uint index);
    [DllImport(Lib)] public static extern int clang_getDiagnosticSeverity(void* diag);
    [DllImport(Lib)] public static extern CXSourceLocation clang_getDiagnosticLocation(void* diag);
    [DllImport(Lib)] public static extern CXString clang_formatDiagnostic(void* diag, uint options);
    [DllImport(Lib)] public static extern void clang_disposeDiagnostic(void* diag);

    [DllImport(Lib)] public static extern CXCursor clang_getTranslationUnitCursor(void* tu);
    [DllImport(Lib)]
    public static extern uint clang_visitChildren(CXCursor parent,
        delegate* unmanaged[Cdecl]<CXCursor, CXCursor, void*, int> visitor, void* clientData);

    [DllImport(Lib)] public static extern CXString clang_getCursorSpelling(CXCursor c);
    [DllImport(Lib)] public static extern CXString clang_getCursorUSR(CXCursor c);
    [DllImport(Lib)] public static extern CXType clang_getCursorType(CXCursor c);
    [DllImport(Lib)] public static extern CXType clang_getCursorResultType(CXCursor c);
    [DllImport(Lib)] public static extern CXCursor clang_getCursorDefinition(CXCursor c);
    [DllImport(Lib)] public static extern CXCursor clang_getCanonicalCursor(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_isCursorDefinition(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isAnonymous(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isAnonymousRecordDecl(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isBitField(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isMacroFunctionLike(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isFunctionInlined(CXCursor c);
    [DllImport(Lib)] public static extern uint clang_Cursor_isVariadic(CXCursor c);
    [DllImport(Lib)] public static extern int clang_Cursor_getStorageClass(CXCursor c);
    [DllImport(Lib)] public static extern int clang_Cursor_getNumArguments(CXCursor c);
    [DllImport(Lib)] public static extern CXCursor clang_Cursor_getArgument(CXCursor c, uint i);
    [DllImport(Lib)] public static extern long clang_Cursor_getOffsetOfField(CXCursor c);
    [DllImport(Lib)] public static extern CXType clang_getTypedefDeclUnderlyingType(CXCursor c);
    [DllImport(Lib)] public static extern CXType clang_getEnumDeclIntegerType(CXCursor c);
    [DllImport(Lib)] public static extern long clang_getEnumConstantDeclValue(CXCursor c);
    [DllImport(Lib)] public static extern ulong clang_getEnumConstantDeclUnsignedValue(CXCursor c);
    [DllImport(Lib)] public static extern CXSourceLocation clang_getCursorLocation(CXCursor c);
    [DllImport(Lib)] public static extern CXSourceRange clang_getCursorExtent(CXCursor c);

    [DllImport(Lib)] public static extern CXString clang_getTypeSpelling(CXType t);
    [DllImport(Lib)] public static extern CXType clang_getCanonicalType(CXType t);
    [DllImport(Lib)] public static extern CXType clang_getPointeeType(CXType t);
    [DllImport(Lib)] public static extern CXType clang_Type_getNamedType(CXType t);
    [DllImport(Lib)] public static extern CXCursor clang_getTypeDeclaration(CXType t);
    [DllImport(Lib)] public static extern CXType clang_getArrayElementType(CXType t);
    [DllImport(Lib)] public static extern long clang_getArraySize(CXType t);
    [DllImport(Lib)] public static extern CXType clang_getResultType(CXType t);
    [DllImport(Lib)] public static extern int clang_getNumArgTypes(CXType t);
    [DllImport(Lib)] public static extern CXType clang_getArgType(CXType t, uint i);
    [DllImport(Lib)] public static extern uint clang_isFunctionTypeVariadic(CXType t);
    [DllImport(Lib)] public static extern long clang_Type_getSizeOf(CXType t);
    [DllImport(Lib)] public static extern long clang_Type_getAlignOf(CXType t);
    [DllImport(Lib)] private static extern long clang_Type_getOffsetOf(CXType t, byte* field);
    public static long clang_Type_getOffsetOf(CXType t, string field)
    {
        var p = Marshal.StringToCoTaskMemUTF8(field);
        try { return clang_Type_getOffsetOf(t, (byte*)p); } finally { Marshal.FreeCoTaskMem(p); }
    }
    [DllImport(Lib)] public static extern CXString clang_getTypedefName(CXType t);

    [DllImport(Lib)]
    public static extern void clang_getFileLocation(CXSourceLocation loc, void** file, uint* line, uint* column, uint* offset);
    [DllImport(Lib)] public static extern CXString clang_getFileName(void* file);

    [DllImport(Lib)] public static extern void clang_tokenize(void* tu, CXSourceRange range, CXToken** tokens, uint* count);
    [DllImport(Lib)] public static extern CXString clang_getTokenSpelling(void* tu, CXToken token);
    [DllImport(Lib)] public static extern int clang_getTokenKind(CXToken token);
    [DllImport(Lib)] public static extern void clang_disposeTokens(void* tu, CXToken* tokens, uint count);

    [DllImport(Lib)] public static extern void* clang_Cursor_Evaluate(CXCursor c);
    [DllImport(Lib)] public static extern CXEvalResultKind clang_EvalResult_getKind(void* r);
    [DllImport(Lib)] public static extern long clang_EvalResult_getAsLongLong(void* r);
    [DllImport(Lib)] public static extern uint clang_EvalResult_isUnsignedInt(void* r);
    [DllImport(Lib)] public static extern ulong clang_EvalResult_getAsUnsigned(void* r);
    [DllImport(Lib)] public static extern double clang_EvalResult_getAsDouble(void* r);
    [DllImport(Lib)] public static extern byte* clang_EvalResult_getAsStr(void* r);
    [DllImport(Lib)] public static extern void clang_EvalResult_dispose(void* r);

    [DllImport(Lib)] private static extern byte* clang_getCString(CXString s);
    [DllImport(Lib)] private static extern void clang_disposeString(CXString s);

    /// <summary>Copies and frees a CXString.</summary>
    public static string Str(CXString s)
    {
        var p = clang_getCString(s);
        var r = p == null ? "" : Marshal.PtrToStringUTF8((nint)p)!;
        clang_disposeString(s);
        return r;
    }

    public static string Spelling(this CXCursor c) => Str(clang_getCursorSpelling(c));
    public static string Usr(this CXCursor c) => Str(clang_getCursorUSR(c));
    public static string Spelling(this CXType t) => Str(clang_getTypeSpelling(t));
    public static bool IsNull(this CXCursor c) => c.Kind is 0 or >= (CXCursorKind)70 and < (CXCursorKind)100;

    /// <summary>File, line and column a cursor is spelled at (after macro expansion).</summary>
    public static (string File, uint Line, uint Col, uint Offset) Location(this CXCursor c) => Location(clang_getCursorLocation(c));

    public static (string File, uint Line, uint Col, uint Offset) Location(CXSourceLocation loc)
    {
        void* file; uint line, col, off;
        clang_getFileLocation(loc, &file, &line, &col, &off);
        return (file == null ? "" : Str(clang_getFileName(file)), line, col, off);
    }

    /// <summary>Direct children of a cursor; collected into a list so callers never re-enter
    /// libclang from inside a visitor callback.</summary>
    public static List<CXCursor> Children(this CXCursor parent)
    {
        var list = new List<CXCursor>();
        var h = GCHandle.Alloc(list);
        try { clang_visitChildren(parent, &Collect, (void*)GCHandle.ToIntPtr(h)); }
        finally { h.Free(); }
        return list;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static int Collect(CXCursor cursor, CXCursor parent, void* data)
    {
        ((List<CXCursor>)GCHandle.FromIntPtr((nint)data).Target!).Add(cursor);
        return 1; // CXChildVisit_Continue
    }

    public static List<string> Tokens(void* tu, CXCursor c)
    {
        CXToken* toks; uint n;
        clang_tokenize(tu, clang_getCursorExtent(c), &toks, &n);
        var r = new List<string>((int)n);
        for (uint i = 0; i < n; i++) r.Add(Str(clang_getTokenSpelling(tu, toks[i])));
        if (toks != null) clang_disposeTokens(tu, toks, n);
        return r;
    }
}
