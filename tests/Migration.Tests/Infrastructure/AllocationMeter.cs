using System.Runtime;

namespace Libvirt.Tests.Infrastructure;

/// <summary>
/// What code allocates on the current thread (GC.GetAllocatedBytesForCurrentThread),
/// measured only in windows no garbage collection ran in.
/// <para>A collection moves the count of a thread that allocates nothing: a
/// thread that only spun (Thread.SpinWait) while two others allocated saw
/// 1888 to 4936 bytes in about one window in five with concurrent GC, and
/// none with DOTNET_gcConcurrent=0 or inside a no-GC region; the managed
/// event loop's RunOnce in the same place saw the same figures. In the test
/// host the other test classes are those threads.</para>
/// </summary>
internal static class AllocationMeter
{
    // what the test host's other threads may allocate while a window is open;
    // past it the runtime collects, and the window is run again
    private const long Budget = 64L << 20;

    /// <summary>The bytes <paramref name="body"/> allocated on this thread, in
    /// the first run of it that no collection interrupted.</summary>
    public static long BytesOnThisThread(Action body, int attempts = 10)
    {
        long bytes = 0;
        RunWithoutCollection(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            body();
            bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        }, attempts);
        return bytes;
    }

    /// <summary>Runs <paramref name="body"/> in a no-GC region until one run
    /// completes with the region still held, at most
    /// <paramref name="attempts"/> times; throws if none did, so a test
    /// cannot pass without having measured.</summary>
    public static void RunWithoutCollection(Action body, int attempts = 10)
    {
        for (int attempt = 0; attempt < attempts; attempt++)
        {
            bool started;
            try
            {
                started = GC.TryStartNoGCRegion(Budget);
            }
            catch (InvalidOperationException)
            {
                started = false; // another test holds the process's one region
            }
            if (!started)
            {
                Thread.Sleep(50);
                continue;
            }

            bool held;
            try
            {
                body();
            }
            finally
            {
                held = GCSettings.LatencyMode == GCLatencyMode.NoGCRegion;
                try
                {
                    GC.EndNoGCRegion();
                }
                catch (InvalidOperationException)
                {
                    held = false; // a collection ended the region inside the window
                }
            }
            if (held)
                return;
        }
        throw new InvalidOperationException($"no run free of garbage collections in {attempts} attempts");
    }
}
