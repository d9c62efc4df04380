using System.Runtime.CompilerServices;

// Every generated import is blittable: no runtime marshalling, so the
// calls are as cheap as in C and NativeAOT-safe.
[assembly: DisableRuntimeMarshalling]
[assembly: InternalsVisibleTo("Migration.Tests")]
