using Libvirt.Util;
using System.Runtime.InteropServices;
using Libvirt.Interop;
using static Libvirt.Interop.Methods;

namespace Libvirt.Rpc;

/// <summary>
/// Builds the procedure table a native virNetServerProgram dispatches
/// through. libvirt keeps the table's pointer for the program's life, so it
/// lives in native memory and is never freed. Entry 0 is unused (procedure
/// numbers start at 1); sizes and XDR filters come from the shim, compiled
/// from our .x files, so they match the rpcgen structs exactly.
/// </summary>
public static unsafe class VirNetServerProgramNative
{

    public static virNetServerProgram* NewProgram(uint program, uint version,
        delegate*<int, virtshimProcInfo*, int> procInfo,
        ReadOnlySpan<nint> dispatchers)
    {
        int n = dispatchers.Length + 1;
        var procs = (virNetServerProgramProc*)NativeMemory.AllocZeroed((nuint)n, (nuint)sizeof(virNetServerProgramProc));
        void* xdrVoid = virtshimXdrVoid();
        procs[0].ret_filter = xdrVoid; // libvirt calls ret_filter even on errors
        for (int i = 1; i < n; i++)
        {
            virtshimProcInfo info;
            if (procInfo(i, &info) < 0)
                throw new InvalidOperationException($"program 0x{program:x}: no procedure {i} in the shim");
            procs[i].func = (delegate* unmanaged[Cdecl]<virNetServer*, virNetServerClient*, virNetMessage*, virNetMessageError*, void*, void*, int>)dispatchers[i - 1];
            procs[i].arg_len = info.arg_len;
            procs[i].arg_filter = info.arg_filter;
            procs[i].ret_len = info.ret_len;
            procs[i].ret_filter = info.ret_filter;
            procs[i].needAuth = 1;
            procs[i].priority = 0;
        }
        return virNetServerProgramNew(program, version, procs, (nuint)n);
    }
}
