using Libvirt.XdrFuzz;
using SharpFuzz;

// tests/XdrFuzz: the SharpFuzz + AFL++ harness over the generated XDR decoders (interop/Libvirt.Xdr).
//   XdrFuzz                  the AFL target (afl-fuzz ... -- dotnet XdrFuzz.dll); without AFL, one input from stdin
//   XdrFuzz seeds DIR [N]    writes the seed corpus: N random valid encodings of every type, a CALL of every procedure
//   XdrFuzz check FILE...    runs the target on each file without AFL and prints what it finds (to reproduce a crash)
// XDRFUZZ_TYPE=NAME: every input is a value of that one type (no selector byte, no frames).
// XDRFUZZ_BROKEN=1 adds a deliberately broken type, BrokenVarOpaque (the tests use it to see a finding reach AFL).
// The instrumented Libvirt.Xdr writes its coverage to SharpFuzz's shared memory from its first
// instruction on (XdrTypes' static constructor included): outside the afl-fuzz loop, a private map.
XdrTarget NewTarget()
{
    var t = new XdrTarget(Environment.GetEnvironmentVariable("XDRFUZZ_BROKEN") == "1" ? BrokenType.WithBroken() : Standalone.WithTypes(Libvirt.Xdr.XdrTypes.All));
    return Environment.GetEnvironmentVariable("XDRFUZZ_TYPE") is { Length: > 0 } only ? new XdrTarget(t.Types) { Only = t.Type(only) } : t;
}
XdrTarget? target = null;
if (args.Length > 0)
    unsafe { SharpFuzz.Common.Trace.SharedMem = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(1 << 16); }
switch (args)
{
    case ["seeds", var dir, ..]:
    {
        int perType = args.Length > 2 ? int.Parse(args[2]) : 2;
        var (written, findings) = Seeds.Write(NewTarget(), dir, perType);
        Console.WriteLine($"{written} seeds in {dir}");
        foreach (var f in findings)
            Console.Error.WriteLine($"a valid encoding is a finding: {f}");
        return findings.Count == 0 ? 0 : 1;
    }
    case ["check", .. var files]:
    {
        int failed = 0;
        target = NewTarget();
        foreach (var f in files)
        {
            try
            {
                target.Run(File.ReadAllBytes(f));
                Console.WriteLine($"{f}: no finding");
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine($"{f}: {e.GetType().Name}: {e.Message}");
                if (e is not XdrFindingException)
                    Console.WriteLine(e.StackTrace);
            }
        }
        return failed == 0 ? 0 : 1;
    }
    case []:
        // the afl-fuzz loop in a child process, so that a crash of the runtime itself is reported too
        Fuzzer.OutOfProcess.Run(stream =>
        {
            target ??= NewTarget();
            using var ms = new MemoryStream();
            stream.CopyTo(ms);
            target.Run(ms.GetBuffer().AsSpan(0, (int)ms.Length));
        });
        return 0;
    default:
        Console.Error.WriteLine("usage: XdrFuzz | XdrFuzz seeds DIR [PER_TYPE] | XdrFuzz check FILE...");
        return 2;
}
