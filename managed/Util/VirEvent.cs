namespace Libvirt.Util;

/// <summary>virEventHandleType: what a watch waits for and what fired.</summary>
[Flags]
public enum VirEventHandleType
{
    None = 0,
    Readable = 1 << 0,
    Writable = 1 << 1,
    Error = 1 << 2,
    Hangup = 1 << 3,
}

public delegate void VirEventHandleCallback(int watch, int fd, VirEventHandleType events);
public delegate void VirEventTimeoutCallback(int timer);

/// <summary>
/// The event loop contract (libvirt's virevent.c API as vireventglib.c
/// implements it): fd watches and timers with libvirt's semantics: ids
/// counting up from 1, removal from inside a callback, the free callback run
/// once a removed entry can no longer be dispatched, a timeout of -1
/// disabled and 0 firing on every iteration. The loop watches descriptors
/// it does not own (libvirt's API takes plain fds), so they are ints here.
/// </summary>
public interface IVirEventLoop : IDisposable
{
    /// <summary>"native" or "managed", as the event_loop_impl key names it.</summary>
    string Name { get; }

    /// <summary>The watch id (&gt; 0), or -1.</summary>
    int AddHandle(int fd, VirEventHandleType events, VirEventHandleCallback callback, Action? free);
    void UpdateHandle(int watch, VirEventHandleType events);
    /// <summary>0, or -1 for an unknown watch.</summary>
    int RemoveHandle(int watch);

    /// <summary>The timer id (&gt; 0), or -1. <paramref name="frequencyMs"/>: -1 off, 0 every iteration.</summary>
    int AddTimeout(int frequencyMs, VirEventTimeoutCallback callback, Action? free);
    void UpdateTimeout(int timer, int frequencyMs);
    /// <summary>0, or -1 for an unknown timer.</summary>
    int RemoveTimeout(int timer);

    /// <summary>One iteration, as virEventRunDefaultImpl: waits for the next
    /// event or timer (or <see cref="Interrupt"/>) and dispatches what is due.</summary>
    VirResult RunOnce();

    /// <summary>Wakes a <see cref="RunOnce"/> blocked on another thread.</summary>
    void Interrupt();
}
