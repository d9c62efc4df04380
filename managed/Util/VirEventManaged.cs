using System.Diagnostics;
using System.Runtime.InteropServices;
using static Libvirt.Util.Libc;

namespace Libvirt.Util;

/// <summary>
/// The managed event loop: an epoll set plus an eventfd to wake it, with the
/// semantics libvirt's default (glib) implementation gives its users:
/// <list type="bullet">
/// <item>watch and timer ids count up from 1, each kind on its own;</item>
/// <item>a watch is told about error and hangup whatever it asked for, and
/// only about readable/writable if it asked; a watch with no events is not
/// polled at all (not even for hangup); several watches may share an fd;</item>
/// <item>what is due in one iteration is dispatched in the order the entries
/// were armed (added, or re-armed by an update that changes them), timers
/// and watches alike, as glib dispatches sources of one priority;</item>
/// <item>an entry removed, disarmed or re-armed before its turn in the
/// current iteration is not dispatched in it;</item>
/// <item>the free callback of a removed entry runs on the loop thread in the
/// next iteration, never inside Remove, so a callback may remove itself or
/// others and the free callback never races a dispatch;</item>
/// <item>a timer of 0 ms fires on every iteration (and keeps the loop from
/// blocking), -1 is off; an update re-arms it from now; a periodic timer is
/// re-armed from the time of the iteration that dispatches it;</item>
/// <item>add, update and remove are safe from any thread; from a thread other
/// than the one running the loop they wake it, so a new timer or a removal
/// takes effect without waiting for some fd to become ready.</item>
/// </list>
/// Where epoll cannot stand in for poll(2): a descriptor epoll refuses as
/// always ready (EPERM: regular files, directories) is reported readable and
/// writable on every iteration, as poll says; one it refuses as bad (EBADF) is
/// never dispatched, as glib never dispatches POLLNVAL (glib then spins, this
/// loop does not). A descriptor closed without removing its watch first,
/// whose open file lives on elsewhere, would stay in the epoll set beyond our
/// reach; when a removal shows that happened the set is rebuilt.
/// <para>Dispatch allocates nothing: the epoll buffer, the due list and the
/// free lists are reused, callbacks are stored delegates or C function
/// pointers (entries libvirt registers through
/// <see cref="VirEventManagedRegistration"/>). Once warm, adding and removing
/// allocates nothing either: freed entries and fd records are reused.</para>
/// </summary>
public sealed unsafe class VirEventManaged : IVirEventLoop
{
    public string Name => VirImplementations.Managed;

    private abstract class Entry
    {
        public int Id;
        /// <summary>When it was last armed: the dispatch order within an
        /// iteration, and how a pending dispatch recognises a re-arm.</summary>
        public long Seq;
        public bool Removed;
        public Action? Free;
        public delegate* unmanaged[Cdecl]<void*, void> NativeFree;
        public void* Opaque;

        public void RunFree()
        {
            if (NativeFree != null)
                NativeFree(Opaque);
            else
                Free?.Invoke();
        }
    }

    private sealed class Watch : Entry
    {
        public int Fd;
        public VirEventHandleType Events;
        public VirEventHandleCallback? Callback;
        public delegate* unmanaged[Cdecl]<int, int, int, void*, void> NativeCallback;
        public FdRecord Record = null!;
    }

    private sealed class Timer : Entry
    {
        public int Interval;
        public long Expiry;
        public VirEventTimeoutCallback? Callback;
        public delegate* unmanaged[Cdecl]<int, void*, void> NativeCallback;
    }

    private enum FdMode
    {
        /// <summary>Not in the epoll set: no watch on it asks for events.</summary>
        Off,
        InEpoll,
        /// <summary>epoll refused it with EPERM (a regular file): poll(2) calls it always ready.</summary>
        AlwaysReady,
        /// <summary>epoll refused it otherwise (EBADF): never ready, as glib never dispatches POLLNVAL.</summary>
        Refused,
    }

    /// <summary>The watches of one fd, and what the epoll set holds for it.</summary>
    private sealed class FdRecord
    {
        public int Fd;
        /// <summary>Tells this record's epoll events from those of an earlier
        /// record of the same fd number still in a buffer.</summary>
        public uint Generation;
        public readonly List<Watch> Watches = new(1);
        public FdMode Mode;
        public uint Mask;
    }

    /// <summary>One entry due in the current iteration.</summary>
    private struct Due : IComparable<Due>
    {
        public Entry Entry;
        public long Seq;
        public VirEventHandleType Events;

        public readonly int CompareTo(Due other) => Seq.CompareTo(other.Seq);
    }

    private const ulong WakeKey = ulong.MaxValue;
    private static readonly long TicksPerMs = Stopwatch.Frequency / 1000;

    private readonly Lock _lock = new();
    /// <summary>One iteration at a time, as glib's context ownership.</summary>
    private readonly Lock _runLock = new();
    private int _epfd;
    private int _wakeFd;
    private bool _disposed;
    private bool _closed;
    private bool _rebuildEpoll;

    private int _nextWatch = 1;
    private int _nextTimer = 1;
    private long _nextSeq = 1;
    private uint _nextGeneration = 1;

    private readonly Dictionary<int, Watch> _watches = new();
    private readonly Dictionary<int, FdRecord> _fds = new();
    private readonly List<FdRecord> _alwaysReady = new();
    private readonly Dictionary<int, Timer> _timerIds = new();
    private readonly List<Timer> _timers = new();

    private List<Entry> _pendingFree = new();
    private List<Entry> _freeing = new();

    // Freed entries and unwatched fd records kept for reuse: the daemon adds
    // and removes a watch per connection, and would otherwise allocate for
    // each. Bounded, so a burst of connections does not pin its memory.
    private const int PoolCap = 256;
    private readonly Stack<Watch> _freeWatches = new();
    private readonly Stack<Timer> _freeTimers = new();
    private readonly Stack<FdRecord> _freeRecords = new();
    private Due[] _due = new Due[64];
    private int _dueCount;

    private byte* _events;
    private int _eventsCapacity;

    /// <summary>The managed id of the thread inside <see cref="RunOnce"/>, 0 if none.</summary>
    private volatile int _loopThread;

    public VirEventManaged()
    {
        _epfd = epoll_create1(EPOLL_CLOEXEC);
        if (_epfd < 0)
            throw new VirErrorException(VirError.System(VirErrorDomain.Event, Marshal.GetLastPInvokeError(),
                "Unable to create epoll instance"));
        _wakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (_wakeFd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            close(_epfd);
            throw new VirErrorException(VirError.System(VirErrorDomain.Event, errno, "Unable to create wakeup eventfd"));
        }
        if (!AddWakeFd(_epfd))
        {
            int errno = Marshal.GetLastPInvokeError();
            close(_wakeFd);
            close(_epfd);
            throw new VirErrorException(VirError.System(VirErrorDomain.Event, errno, "Unable to watch wakeup eventfd"));
        }
        _eventsCapacity = 64;
        _events = (byte*)NativeMemory.Alloc((nuint)(_eventsCapacity * EpollEventSize));
    }

    private bool AddWakeFd(int epfd)
    {
        byte* ev = stackalloc byte[16];
        EpollSet(ev, EPOLLIN, WakeKey);
        return epoll_ctl(epfd, EPOLL_CTL_ADD, _wakeFd, ev) == 0;
    }

    // ---- watches ----

    public int AddHandle(int fd, VirEventHandleType events, VirEventHandleCallback callback, Action? free)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return AddWatch(fd, events, callback, free, null, null, null);
    }

    /// <summary>A watch libvirt's C code registered: its callback, opaque and
    /// free function are called as they are, with no managed wrapper.</summary>
    internal int AddHandleNative(int fd, int events, delegate* unmanaged[Cdecl]<int, int, int, void*, void> cb,
        void* opaque, delegate* unmanaged[Cdecl]<void*, void> ff)
        => AddWatch(fd, (VirEventHandleType)events, null, null, cb, opaque, ff);

    private int AddWatch(int fd, VirEventHandleType events, VirEventHandleCallback? callback, Action? free,
        delegate* unmanaged[Cdecl]<int, int, int, void*, void> nativeCallback, void* opaque,
        delegate* unmanaged[Cdecl]<void*, void> nativeFree)
    {
        int id;
        lock (_lock)
        {
            if (_disposed)
                return -1;
            // every field set, as a reused watch holds those of its last use
            var w = _freeWatches.Count > 0 ? _freeWatches.Pop() : new Watch();
            id = w.Id = _nextWatch++;
            w.Seq = _nextSeq++;
            w.Removed = false;
            w.Fd = fd;
            w.Events = events;
            w.Callback = callback;
            w.Free = free;
            w.NativeCallback = nativeCallback;
            w.Opaque = opaque;
            w.NativeFree = nativeFree;
            if (!_fds.TryGetValue(fd, out var rec))
            {
                rec = _freeRecords.Count > 0 ? _freeRecords.Pop() : new FdRecord();
                rec.Fd = fd;
                // a new generation even when reused: epoll events of its
                // last use may still be in the buffer
                rec.Generation = _nextGeneration++;
                rec.Mode = FdMode.Off;
                rec.Mask = 0;
                _fds.Add(fd, rec);
            }
            w.Record = rec;
            rec.Watches.Add(w);
            _watches.Add(id, w);
            SyncFd(rec);
            WakeIfForeign();
        }
        return id;
    }

    public void UpdateHandle(int watch, VirEventHandleType events)
    {
        lock (_lock)
        {
            if (!_watches.TryGetValue(watch, out var w) || w.Events == events)
                return;
            w.Events = events;
            // glib replaces the watch's source: it is armed anew, after the
            // others, and not dispatched for what the old one saw
            w.Seq = _nextSeq++;
            SyncFd(w.Record);
            WakeIfForeign();
        }
    }

    public int RemoveHandle(int watch)
    {
        lock (_lock)
        {
            if (!_watches.Remove(watch, out var w))
                return -1;
            w.Removed = true;
            var rec = w.Record;
            rec.Watches.Remove(w);
            SyncFd(rec);
            if (rec.Watches.Count == 0)
            {
                _fds.Remove(rec.Fd);
                // reusable now: only _fds leads an iteration to a record
                // (a removed watch's Record is never read again)
                if (_freeRecords.Count < PoolCap)
                    _freeRecords.Push(rec);
            }
            _pendingFree.Add(w);
            WakeIfForeign();
        }
        return 0;
    }

    private static uint ToEpoll(VirEventHandleType events)
        => ((events & VirEventHandleType.Readable) != 0 ? EPOLLIN : 0)
         | ((events & VirEventHandleType.Writable) != 0 ? EPOLLOUT : 0);

    private static VirEventHandleType FromEpoll(uint events)
        => ((events & EPOLLIN) != 0 ? VirEventHandleType.Readable : 0)
         | ((events & EPOLLOUT) != 0 ? VirEventHandleType.Writable : 0)
         | ((events & EPOLLERR) != 0 ? VirEventHandleType.Error : 0)
         | ((events & EPOLLHUP) != 0 ? VirEventHandleType.Hangup : 0);

    /// <summary>Makes the epoll set hold what the fd's watches ask for. Under the lock.</summary>
    private void SyncFd(FdRecord rec)
    {
        bool wanted = false;
        uint mask = 0;
        foreach (var w in rec.Watches)
        {
            if (w.Events != VirEventHandleType.None)
            {
                wanted = true;
                mask |= ToEpoll(w.Events);
            }
        }

        if (!wanted)
        {
            if (rec.Mode == FdMode.InEpoll && epoll_ctl(_epfd, EPOLL_CTL_DEL, rec.Fd, null) < 0)
                _rebuildEpoll = true; // closed before its watch went: see RebuildEpoll
            if (rec.Mode == FdMode.AlwaysReady)
                _alwaysReady.Remove(rec);
            rec.Mode = FdMode.Off;
            rec.Mask = 0;
            return;
        }

        if (rec.Mode == FdMode.InEpoll && rec.Mask == mask)
            return;
        if (rec.Mode is FdMode.AlwaysReady or FdMode.Refused)
        {
            rec.Mask = mask;
            return;
        }

        byte* ev = stackalloc byte[16];
        EpollSet(ev, mask, ((ulong)rec.Generation << 32) | (uint)rec.Fd);
        int op = rec.Mode == FdMode.InEpoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        int rc = epoll_ctl(_epfd, op, rec.Fd, ev);
        int errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        if (errno == ENOENT && op == EPOLL_CTL_MOD)
        {
            // the fd was closed and reopened under its watch
            _rebuildEpoll = true;
            rc = epoll_ctl(_epfd, EPOLL_CTL_ADD, rec.Fd, ev);
            errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        else if (errno == EEXIST && op == EPOLL_CTL_ADD)
        {
            rc = epoll_ctl(_epfd, EPOLL_CTL_MOD, rec.Fd, ev);
            errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        rec.Mask = mask;
        if (rc == 0)
        {
            rec.Mode = FdMode.InEpoll;
        }
        else if (errno == EPERM)
        {
            rec.Mode = FdMode.AlwaysReady;
            _alwaysReady.Add(rec);
        }
        else
        {
            rec.Mode = FdMode.Refused;
        }
    }

    /// <summary>
    /// A new epoll set with what the records say. epoll keys on the open
    /// file, not the fd number: when an fd is closed before its watch is
    /// removed, EPOLL_CTL_DEL can no longer reach the old registration, which
    /// lives on (level-triggered, forever ready) if the file is still open
    /// elsewhere. Only a new set is rid of it. Under the lock, on the loop thread.
    /// </summary>
    private void RebuildEpoll()
    {
        _rebuildEpoll = false;
        int epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0)
            return; // keep the old one; events of unknown generations are ignored
        if (!AddWakeFd(epfd))
        {
            close(epfd);
            return;
        }
        int old = _epfd;
        _epfd = epfd;
        foreach (var rec in _fds.Values)
        {
            if (rec.Mode == FdMode.InEpoll)
            {
                rec.Mode = FdMode.Off;
                rec.Mask = 0;
                SyncFd(rec);
            }
        }
        close(old);
    }

    // ---- timers ----

    public int AddTimeout(int frequencyMs, VirEventTimeoutCallback callback, Action? free)
    {
        ArgumentNullException.ThrowIfNull(callback);
        return AddTimer(frequencyMs, callback, free, null, null, null);
    }

    internal int AddTimeoutNative(int frequencyMs, delegate* unmanaged[Cdecl]<int, void*, void> cb,
        void* opaque, delegate* unmanaged[Cdecl]<void*, void> ff)
        => AddTimer(frequencyMs, null, null, cb, opaque, ff);

    private int AddTimer(int frequencyMs, VirEventTimeoutCallback? callback, Action? free,
        delegate* unmanaged[Cdecl]<int, void*, void> nativeCallback, void* opaque,
        delegate* unmanaged[Cdecl]<void*, void> nativeFree)
    {
        int id;
        lock (_lock)
        {
            if (_disposed)
                return -1;
            // every field set, as a reused timer holds those of its last use
            var t = _freeTimers.Count > 0 ? _freeTimers.Pop() : new Timer();
            id = t.Id = _nextTimer++;
            t.Removed = false;
            t.Expiry = 0;
            t.Callback = callback;
            t.Free = free;
            t.NativeCallback = nativeCallback;
            t.Opaque = opaque;
            t.NativeFree = nativeFree;
            Arm(t, frequencyMs, Stopwatch.GetTimestamp());
            _timerIds.Add(id, t);
            _timers.Add(t);
            WakeIfForeign();
        }
        return id;
    }

    private void Arm(Timer t, int intervalMs, long now)
    {
        t.Interval = intervalMs < 0 ? -1 : intervalMs;
        t.Seq = _nextSeq++;
        if (intervalMs >= 0)
            t.Expiry = now + intervalMs * TicksPerMs;
    }

    /// <summary>How many timers were ever added (the registration's probe).</summary>
    internal int TimersAdded
    {
        get
        {
            lock (_lock)
                return _nextTimer - 1;
        }
    }

    public void UpdateTimeout(int timer, int frequencyMs)
    {
        lock (_lock)
        {
            if (!_timerIds.TryGetValue(timer, out var t))
                return;
            // glib: any interval re-arms from now (a new source); off just stops it
            if (frequencyMs < 0 && t.Interval < 0)
                return;
            Arm(t, frequencyMs, Stopwatch.GetTimestamp());
            WakeIfForeign();
        }
    }

    public int RemoveTimeout(int timer)
    {
        lock (_lock)
        {
            if (!_timerIds.Remove(timer, out var t))
                return -1;
            t.Removed = true;
            _timers.Remove(t);
            _pendingFree.Add(t);
            WakeIfForeign();
        }
        return 0;
    }

    // ---- the loop ----

    /// <summary>Milliseconds epoll_wait may block: -1 when nothing is timed,
    /// rounded up so a timer is never early. Under the lock.</summary>
    private int WaitTimeout(long now)
    {
        if (_pendingFree.Count > 0 || _alwaysReady.Count > 0)
            return 0;
        long next = long.MaxValue;
        foreach (var t in _timers)
        {
            if (t.Interval >= 0 && t.Expiry < next)
                next = t.Expiry;
        }
        if (next == long.MaxValue)
            return -1;
        if (next <= now)
            return 0;
        long ms = (next - now + TicksPerMs - 1) / TicksPerMs;
        return ms > int.MaxValue ? int.MaxValue : (int)ms;
    }

    private void AddDue(Entry e, VirEventHandleType events)
    {
        if (_dueCount == _due.Length)
            Array.Resize(ref _due, _due.Length * 2);
        _due[_dueCount++] = new Due { Entry = e, Seq = e.Seq, Events = events };
    }

    /// <summary>The due entries in arming order. An insertion sort: a few
    /// entries, collected nearly in order. The runtime's generic sort is not
    /// used because under NativeAOT it makes a Comparison delegate on every
    /// call with two or more entries (measured: about 40 bytes per iteration
    /// of a daemon serving 16 clients at once), which the JIT's does not.</summary>
    private static void SortDue(Span<Due> due)
    {
        if (due.Length > 64)
        {
            due.Sort(); // many at once: the allocation matters less than n²
            return;
        }
        for (int i = 1; i < due.Length; i++)
        {
            var d = due[i];
            int j = i - 1;
            while (j >= 0 && due[j].Seq > d.Seq)
            {
                due[j + 1] = due[j];
                j--;
            }
            due[j + 1] = d;
        }
    }

    private static VirEventHandleType Reported(Watch w, VirEventHandleType ready)
        => ready & (w.Events | VirEventHandleType.Error | VirEventHandleType.Hangup);

    public VirResult RunOnce()
    {
        if (_loopThread == Environment.CurrentManagedThreadId)
            throw new InvalidOperationException("RunOnce called from one of the loop's own callbacks");
        using var run = _runLock.EnterScope();
        _loopThread = Environment.CurrentManagedThreadId;
        int freed = 0;
        int dispatched = 0;
        try
        {
            int timeout;
            lock (_lock)
            {
                if (_disposed)
                    return VirError.Report(VirErrorDomain.Event, VirErrorCode.InternalError, "the event loop has been closed");
                if (_rebuildEpoll)
                    RebuildEpoll();
                timeout = WaitTimeout(Stopwatch.GetTimestamp());
            }

            int n = epoll_wait(_epfd, _events, _eventsCapacity, timeout);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR)
                    return VirError.System(VirErrorDomain.Event, errno, "Unable to poll on file handles");
                n = 0;
            }
            long now = Stopwatch.GetTimestamp();

            lock (_lock)
            {
                // removals so far: their entries can no longer be dispatched
                (_freeing, _pendingFree) = (_pendingFree, _freeing);

                for (int i = 0; i < n; i++)
                {
                    byte* ev = _events + i * EpollEventSize;
                    ulong key = EpollData(ev);
                    if (key == WakeKey)
                    {
                        ulong count;
                        read(_wakeFd, (byte*)&count, sizeof(ulong));
                        continue;
                    }
                    // a record removed (or replaced) since the wait is skipped
                    if (!_fds.TryGetValue((int)(uint)key, out var rec) || rec.Generation != (uint)(key >> 32))
                        continue;
                    var ready = FromEpoll(EpollEvents(ev));
                    foreach (var w in rec.Watches)
                    {
                        var events = Reported(w, ready);
                        if (events != 0)
                            AddDue(w, events);
                    }
                }
                foreach (var rec in _alwaysReady)
                {
                    foreach (var w in rec.Watches)
                    {
                        var events = w.Events & (VirEventHandleType.Readable | VirEventHandleType.Writable);
                        if (events != 0)
                            AddDue(w, events);
                    }
                }
                foreach (var t in _timers)
                {
                    if (t.Interval >= 0 && t.Expiry <= now)
                        AddDue(t, 0);
                }
                SortDue(_due.AsSpan(0, _dueCount));
            }

            while (freed < _freeing.Count)
                _freeing[freed++].RunFree();

            for (; dispatched < _dueCount; dispatched++)
                Dispatch(ref _due[dispatched], now);

            if (n == _eventsCapacity)
                GrowEvents();
            return VirResult.Success;
        }
        finally
        {
            if (_freeing.Count > 0)
            {
                lock (_lock)
                {
                    // a callback threw: what it left undone waits for the next iteration
                    for (int i = freed; i < _freeing.Count; i++)
                        _pendingFree.Add(_freeing[i]);
                    // removed before this iteration collected its events, so
                    // none of its due entries is one of these; freed: reusable
                    for (int i = 0; i < freed; i++)
                        Recycle(_freeing[i]);
                }
            }
            _freeing.Clear();
            Array.Clear(_due, 0, _dueCount);
            _dueCount = 0;
            _loopThread = 0;
        }
    }

    /// <summary>Keeps an entry whose free callback ran for a later add,
    /// holding no reference (callbacks, opaque) of its last use. Under the lock.</summary>
    private void Recycle(Entry e)
    {
        e.Free = null;
        e.NativeFree = null;
        e.Opaque = null;
        if (e is Watch w)
        {
            w.Callback = null;
            w.NativeCallback = null;
            w.Record = null!;
            if (_freeWatches.Count < PoolCap)
                _freeWatches.Push(w);
        }
        else
        {
            var t = (Timer)e;
            t.Callback = null;
            t.NativeCallback = null;
            if (_freeTimers.Count < PoolCap)
                _freeTimers.Push(t);
        }
    }

    private void Dispatch(ref Due due, long now)
    {
        var e = due.Entry;
        if (e is Watch w)
        {
            lock (_lock)
            {
                if (w.Removed || w.Seq != due.Seq)
                    return;
            }
            if (w.NativeCallback != null)
                w.NativeCallback(w.Id, w.Fd, (int)due.Events, w.Opaque);
            else
                w.Callback!(w.Id, w.Fd, due.Events);
        }
        else
        {
            var t = (Timer)e;
            lock (_lock)
            {
                if (t.Removed || t.Seq != due.Seq || t.Interval < 0)
                    return;
                // next period from this iteration's time; an update from
                // the callback re-arms it anew
                t.Expiry = now + t.Interval * TicksPerMs;
            }
            if (t.NativeCallback != null)
                t.NativeCallback(t.Id, t.Opaque);
            else
                t.Callback!(t.Id);
        }
    }

    private void GrowEvents()
    {
        int capacity = _eventsCapacity * 2;
        _events = (byte*)NativeMemory.Realloc(_events, (nuint)(capacity * EpollEventSize));
        _eventsCapacity = capacity;
    }

    public void Interrupt()
    {
        lock (_lock)
            Wake();
    }

    /// <summary>The eventfd stays readable until the loop reads it: a wake
    /// before RunOnce makes the next one return without blocking, as
    /// g_main_context_wakeup does. Under the lock (Dispose closes the fd).</summary>
    private void Wake()
    {
        if (_closed)
            return;
        ulong one = 1;
        write(_wakeFd, (byte*)&one, sizeof(ulong));
    }

    /// <summary>A change from a thread other than the one running the loop
    /// wakes it to take the change into account (as glib wakes a context
    /// owned by another thread). A loop not running needs no wake: its next
    /// iteration reads the change under the lock, and one already past
    /// setting <see cref="_loopThread"/> is seen here. Under the lock.</summary>
    private void WakeIfForeign()
    {
        int loopThread = _loopThread;
        if (loopThread != 0 && loopThread != Environment.CurrentManagedThreadId)
            Wake();
    }

    /// <summary>
    /// Closes the loop once no iteration runs; the free callbacks of removed
    /// entries run now (on the caller's thread). Entries still registered are
    /// dropped without theirs, as libvirt never frees a live watch.
    /// </summary>
    public void Dispose()
    {
        if (_loopThread == Environment.CurrentManagedThreadId)
            throw new InvalidOperationException("the event loop cannot be disposed from one of its callbacks");
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            Wake();
        }
        using (_runLock.EnterScope())
        {
            List<Entry> pending;
            lock (_lock)
            {
                pending = _pendingFree;
                _pendingFree = new List<Entry>();
                _watches.Clear();
                _fds.Clear();
                _alwaysReady.Clear();
                _timerIds.Clear();
                _timers.Clear();
                _freeWatches.Clear();
                _freeTimers.Clear();
                _freeRecords.Clear();
                _closed = true;
                close(_wakeFd);
                close(_epfd);
            }
            NativeMemory.Free(_events);
            _events = null;
            foreach (var e in pending)
                e.RunFree();
        }
    }
}
