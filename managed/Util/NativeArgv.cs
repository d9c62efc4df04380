using System.Runtime.InteropServices;
using Libvirt.Interop;

namespace Libvirt.Util;

/// <summary>A string[] as a NULL-terminated char *argv[] in native memory
/// (each element a NUL-terminated UTF-8 copy), for the duration of one
/// exec-style call.</summary>
public sealed unsafe class NativeArgv : IDisposable
{
    private readonly NativeUtf8[] _handles;

    /// <summary>argv[0] .. argv[n-1], then NULL.</summary>
    public sbyte** Pointer { get; private set; }

    public NativeArgv(string[] argv)
    {
        _handles = new NativeUtf8[argv.Length];
        Pointer = (sbyte**)NativeMemory.AllocZeroed((nuint)(argv.Length + 1), (nuint)sizeof(sbyte*));
        try
        {
            for (int i = 0; i < argv.Length; i++)
            {
                _handles[i] = new NativeUtf8(argv[i]);
                Pointer[i] = _handles[i].Pointer;
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (Pointer == null)
            return;
        foreach (var h in _handles)
            h.Dispose();
        NativeMemory.Free(Pointer);
        Pointer = null;
    }
}
