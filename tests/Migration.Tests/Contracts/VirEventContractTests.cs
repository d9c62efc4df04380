using System.Diagnostics;
using Libvirt.Tests.Infrastructure;
using Libvirt.Util;
using Xunit;
using static Libvirt.Util.Libc;

namespace Libvirt.Tests.Contracts;

/// <summary>
/// The event loop contract, run against every implementation with the same
/// expectations: libvirt's default loop (glib, through the public virEvent*
/// API) and the managed epoll loop. The cases of libvirt's eventtest.c come
/// first, then the rest of the semantics vireventglib.c gives its users.
/// <para>libvirt allows one registered loop per process: in this process it
/// is the default one (the native adapter registers it), and the managed
/// loop is tested through its own instance API. All instances of the native
/// adapter are the same process-wide loop, so every test removes what it
/// added (<see cref="Registrations"/>) and waits are bounded everywhere.</para>
/// </summary>
public sealed unsafe class VirEventContractTests : IClassFixture<LibvirtFixture>
{
    public static TheoryData<string> Impls => new(VirImplementations.Names);

    private const int Bound = 10_000;

    private static IVirEventLoop NewLoop(string impl)
    {
        var loop = VirImplementations.EventLoop(impl);
        Assert.NotNull(loop);
        Assert.Equal(impl, loop.Name);
        return loop;
    }

    // ------------------------------------------------------------------
    // helpers
    // ------------------------------------------------------------------

    /// <summary>A non-blocking pipe; each end closed at most once.</summary>
    private sealed class Pipe : IDisposable
    {
        public int Read { get; private set; } = -1;
        public int Write { get; private set; } = -1;

        public Pipe()
        {
            int* fds = stackalloc int[2];
            Assert.Equal(0, pipe2(fds, O_CLOEXEC | O_NONBLOCK));
            Read = fds[0];
            Write = fds[1];
        }

        public void Put(int count = 1)
        {
            byte b = (byte)'1';
            for (int i = 0; i < count; i++)
                Assert.Equal(1, (int)write(Write, &b, 1));
        }

        public bool Take()
        {
            byte b;
            return read(Read, &b, 1) == 1;
        }

        public void CloseRead()
        {
            if (Read >= 0)
                close(Read);
            Read = -1;
        }

        public void CloseWrite()
        {
            if (Write >= 0)
                close(Write);
            Write = -1;
        }

        public void Dispose()
        {
            CloseRead();
            CloseWrite();
        }
    }

    private sealed class Pipes(int count) : IDisposable
    {
        public readonly Pipe[] All = Enumerable.Range(0, count).Select(_ => new Pipe()).ToArray();
        public Pipe this[int i] => All[i];

        public void Dispose()
        {
            foreach (var p in All)
                p.Dispose();
        }
    }

    /// <summary>What a test added, removed again at its end (before its
    /// pipes close) so nothing it left fires in another test.</summary>
    private sealed class Registrations(IVirEventLoop loop) : IDisposable
    {
        private readonly List<int> _handles = new();
        private readonly List<int> _timers = new();

        public int Handle(int fd, VirEventHandleType events, VirEventHandleCallback cb, Action? free = null)
        {
            int id = loop.AddHandle(fd, events, cb, free);
            Assert.True(id > 0, $"AddHandle returned {id}");
            _handles.Add(id);
            return id;
        }

        public int Timer(int ms, VirEventTimeoutCallback cb, Action? free = null)
        {
            int id = loop.AddTimeout(ms, cb, free);
            Assert.True(id > 0, $"AddTimeout returned {id}");
            _timers.Add(id);
            return id;
        }

        public void Dispose()
        {
            foreach (int h in _handles)
                loop.RemoveHandle(h);
            foreach (int t in _timers)
                loop.RemoveTimeout(t);
        }
    }

    /// <summary>A thread-safe record of what fired, in order.</summary>
    private sealed class Log
    {
        private readonly List<string> _items = new();

        public void Add(string item)
        {
            lock (_items)
                _items.Add(item);
        }

        public string[] Items
        {
            get
            {
                lock (_items)
                    return _items.ToArray();
            }
        }

        public int Count(string item) => Items.Count(i => i == item);

        public void Clear()
        {
            lock (_items)
                _items.Clear();
        }
    }

    /// <summary>
    /// Ends a RunOnce that should have returned by now, by every means a
    /// loop has (an interrupt, a due timer, a ready fd), so a loop with one
    /// of them broken fails the test instead of hanging it.
    /// </summary>
    private sealed class Watchdog : IDisposable
    {
        private readonly IVirEventLoop _loop;
        private readonly Timer _timer;
        private readonly Pipe _pipe = new();
        private readonly Lock _lock = new();
        private bool _disposed;
        private int _timerId, _watchId;
        private volatile bool _fired;

        public bool Fired => _fired;

        public Watchdog(IVirEventLoop loop, int ms)
        {
            _loop = loop;
            _timer = new Timer(_ => Fire(), null, ms, Timeout.Infinite);
        }

        private void Fire()
        {
            lock (_lock)
            {
                if (_disposed)
                    return;
                _fired = true;
                _loop.Interrupt();
                _timerId = _loop.AddTimeout(0, t => _loop.UpdateTimeout(t, -1), null);
                _pipe.Put();
                _watchId = _loop.AddHandle(_pipe.Read, VirEventHandleType.Readable,
                    (w, _, _) => _loop.UpdateHandle(w, VirEventHandleType.None), null);
            }
        }

        public void Dispose()
        {
            lock (_lock)
            {
                _disposed = true;
                if (_timerId > 0)
                    _loop.RemoveTimeout(_timerId);
                if (_watchId > 0)
                    _loop.RemoveHandle(_watchId);
            }
            _timer.Dispose();
            _pipe.Dispose();
        }
    }

    /// <summary>One iteration on this thread; it must not block (the
    /// watchdog ends it after the bound and the test fails).</summary>
    private static void Step(IVirEventLoop loop)
    {
        using var watchdog = new Watchdog(loop, Bound);
        loop.RunOnce().ThrowIfFailed();
        Assert.False(watchdog.Fired, "RunOnce blocked though something was due");
    }

    /// <summary>Iterations on this thread until <paramref name="done"/>;
    /// an interrupt every 50 ms lets the bound be checked.</summary>
    private static void RunUntil(IVirEventLoop loop, Func<bool> done, string what, int bound = Bound)
    {
        using var watchdog = new Watchdog(loop, bound);
        using var tick = new Timer(_ => loop.Interrupt(), null, 50, 50);
        while (!done())
        {
            Assert.False(watchdog.Fired, $"timed out waiting for {what}");
            loop.RunOnce().ThrowIfFailed();
        }
    }

    /// <summary>Iterations on this thread for about <paramref name="ms"/>
    /// (for what must NOT happen), ended by interrupts.</summary>
    private static void RunFor(IVirEventLoop loop, int ms)
    {
        using var watchdog = new Watchdog(loop, ms + Bound);
        using var tick = new Timer(_ => loop.Interrupt(), null, 20, 20);
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < ms)
            loop.RunOnce().ThrowIfFailed();
        Assert.False(watchdog.Fired, "RunOnce did not return to Interrupt");
    }

    /// <summary>
    /// Lets the free callbacks of watches removed earlier run, so the next
    /// iteration dispatches what is due: glib runs them in an iteration of
    /// their own (a high-priority idle), the managed loop before dispatching.
    /// A removed sentinel's free callback runs after those removed before it.
    /// (glib runs timers' free callbacks at idle priority, in an iteration
    /// where nothing else is due: they never hold up a dispatch.)
    /// </summary>
    private static void Settle(IVirEventLoop loop)
    {
        using var p = new Pipe();
        bool freed = false;
        int w = loop.AddHandle(p.Read, VirEventHandleType.None, (_, _, _) => { }, () => freed = true);
        Assert.True(w > 0);
        Assert.Equal(0, loop.RemoveHandle(w));
        RunUntil(loop, () => freed, "the sentinel's free callback");
    }

    private static bool WaitUntil(Func<bool> done, int bound = Bound)
    {
        var sw = Stopwatch.StartNew();
        while (!done())
        {
            if (sw.ElapsedMilliseconds > bound)
                return false;
            Thread.Sleep(2);
        }
        return true;
    }

    /// <summary>The loop iterating on its own thread until disposed.</summary>
    private sealed class LoopThread : IDisposable
    {
        private readonly IVirEventLoop _loop;
        private readonly Thread _thread;
        private volatile bool _stop;
        private long _iterations;
        private readonly ManualResetEventSlim _started = new();

        public int ThreadId { get; private set; }
        public Exception? Error { get; private set; }
        public long Iterations => Interlocked.Read(ref _iterations);

        public LoopThread(IVirEventLoop loop)
        {
            _loop = loop;
            _thread = new Thread(Body) { IsBackground = true, Name = "event loop under test" };
            _thread.Start();
            Assert.True(_started.Wait(Bound));
        }

        private void Body()
        {
            ThreadId = Environment.CurrentManagedThreadId;
            _started.Set();
            try
            {
                while (!_stop)
                {
                    _loop.RunOnce().ThrowIfFailed();
                    Interlocked.Increment(ref _iterations);
                }
            }
            catch (Exception e)
            {
                Error = e;
            }
        }

        /// <summary>Waits (bounded) until the loop has gone idle: at most an
        /// iteration or two in 100 ms, so it is blocked waiting. (A loop
        /// that spins does thousands, even on a busy machine.)</summary>
        public void WaitIdle()
        {
            var sw = Stopwatch.StartNew();
            long last = Iterations;
            while (sw.ElapsedMilliseconds < Bound)
            {
                Thread.Sleep(100);
                long now = Iterations;
                if (now - last <= 2)
                    return;
                last = now;
            }
            Assert.Fail("the loop never went idle");
        }

        public void Dispose()
        {
            _stop = true;
            _loop.Interrupt();
            if (!_thread.Join(Bound))
            {
                using (new Watchdog(_loop, 0))
                    _thread.Join(Bound);
                Assert.Fail("the loop thread did not stop on Interrupt");
            }
            Assert.Null(Error);
        }
    }

    // ------------------------------------------------------------------
    // libvirt's eventtest.c: handles
    // ------------------------------------------------------------------

    private const int NumFds = 31;

    [Theory, MemberData(nameof(Impls))]
    public void Simple_write_fires_only_its_watch_with_its_id_fd_and_readable(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(NumFds);
        using var reg = new Registrations(loop);
        var fired = new List<(int Index, int Watch, int Fd, VirEventHandleType Events, bool Read)>();
        var watches = new int[NumFds];
        for (int i = 0; i < NumFds; i++)
        {
            int index = i;
            watches[i] = reg.Handle(pipes[i].Read, VirEventHandleType.Readable,
                (w, fd, ev) => fired.Add((index, w, fd, ev, pipes[index].Take())));
        }

        pipes[1].Put();
        RunUntil(loop, () => fired.Count > 0, "the written pipe's watch");
        RunFor(loop, 100);

        var f = Assert.Single(fired);
        Assert.Equal(1, f.Index);
        Assert.Equal(watches[1], f.Watch);
        Assert.Equal(pipes[1].Read, f.Fd);
        Assert.True(f.Events.HasFlag(VirEventHandleType.Readable));
        Assert.True(f.Read);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_handle_removed_before_the_poll_never_fires(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(2);
        using var reg = new Registrations(loop);
        var log = new Log();
        int w0 = reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (_, _, _) => { log.Add("0"); pipes[0].Take(); });
        reg.Handle(pipes[1].Read, VirEventHandleType.Readable, (_, _, _) => { log.Add("1"); pipes[1].Take(); });

        Assert.Equal(0, loop.RemoveHandle(w0));
        pipes[0].Put();
        pipes[1].Put();
        RunUntil(loop, () => log.Count("1") == 1, "the remaining watch");
        RunFor(loop, 100);

        Assert.Equal(["1"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void Removing_a_handle_during_the_poll_wakes_the_loop_with_nothing_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        int freedOn = 0;
        int w = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => log.Add("fired"),
            () => freedOn = Environment.CurrentManagedThreadId);

        using (var runner = new LoopThread(loop))
        {
            runner.WaitIdle();
            long before = runner.Iterations;
            Assert.Equal(0, loop.RemoveHandle(w));
            Assert.True(WaitUntil(() => runner.Iterations > before), "the removal did not wake the loop");
            Assert.True(WaitUntil(() => Volatile.Read(ref freedOn) != 0), "the free callback did not run");
            Assert.Equal(runner.ThreadId, freedOn);
        }
        Assert.Empty(log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_later_handle_removed_during_dispatch_is_not_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(2);
        using var reg = new Registrations(loop);
        var log = new Log();
        int w3 = 0;
        reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (_, _, _) =>
        {
            log.Add("2");
            pipes[0].Take();
            Assert.Equal(0, loop.RemoveHandle(w3));
        });
        w3 = reg.Handle(pipes[1].Read, VirEventHandleType.Readable, (_, _, _) => { log.Add("3"); pipes[1].Take(); });

        Settle(loop);
        pipes[0].Put();
        pipes[1].Put();
        Step(loop); // both are ready in this one iteration
        RunFor(loop, 100);

        Assert.Equal(["2"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_handle_removing_itself_during_dispatch_fires_once_then_is_freed(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (w, _, _) =>
        {
            log.Add("fired");
            pipe.Take();
            Assert.Equal(0, loop.RemoveHandle(w));
            log.Add("removed");
        }, () => log.Add("freed"));

        pipe.Put(3); // still readable after the first callback
        RunUntil(loop, () => log.Count("freed") == 1, "the free callback");
        RunFor(loop, 100);

        Assert.Equal(["fired", "removed", "freed"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void The_last_handle_fires_for_each_write_in_a_row(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(NumFds);
        using var reg = new Registrations(loop);
        var fired = new int[NumFds];
        var ids = new int[NumFds];
        for (int i = 0; i < NumFds; i++)
        {
            int index = i;
            ids[i] = reg.Handle(pipes[i].Read, VirEventHandleType.Readable, (_, _, _) =>
            {
                fired[index]++;
                pipes[index].Take();
            });
        }
        for (int i = 0; i < NumFds - 1; i++)
            Assert.Equal(0, loop.RemoveHandle(ids[i]));

        for (int round = 1; round <= 4; round++)
        {
            pipes[NumFds - 1].Put();
            RunUntil(loop, () => fired[NumFds - 1] == round, $"write {round}");
        }
        RunFor(loop, 50);
        Assert.Equal(4, fired[NumFds - 1]);
        Assert.All(fired.Take(NumFds - 1), n => Assert.Equal(0, n));
    }

    [Theory, MemberData(nameof(Impls))]
    public void The_same_fd_twice_runs_only_the_watch_that_asked(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        int none = reg.Handle(pipe.Read, VirEventHandleType.None, (_, _, _) => log.Add("none"));
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => log.Add("readable"));

        pipe.Put();
        RunUntil(loop, () => log.Count("readable") == 1, "the readable watch");
        Assert.DoesNotContain("none", log.Items);

        // once it asks, both see the data: the re-armed one after the other
        Settle(loop);
        log.Clear();
        loop.UpdateHandle(none, VirEventHandleType.Readable);
        Step(loop);
        Assert.Equal(["readable", "none"], log.Items);
    }

    // ------------------------------------------------------------------
    // libvirt's eventtest.c: timers
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void A_disabled_timer_fires_once_enabled_and_stops_when_disabled_again(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int fired = 0;
        int t = reg.Timer(-1, _ => fired++);

        RunFor(loop, 150);
        Assert.Equal(0, fired);

        loop.UpdateTimeout(t, 100);
        RunUntil(loop, () => fired > 0, "the enabled timer");
        loop.UpdateTimeout(t, -1);
        int seen = fired;
        RunFor(loop, 250);
        Assert.Equal(seen, fired);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_timer_removed_before_the_poll_never_fires(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var log = new Log();
        int t0 = reg.Timer(50, _ => log.Add("0"));
        reg.Timer(100, t => { log.Add("1"); loop.UpdateTimeout(t, -1); });

        Assert.Equal(0, loop.RemoveTimeout(t0));
        RunUntil(loop, () => log.Count("1") == 1, "the remaining timer");
        RunFor(loop, 150);
        Assert.Equal(["1"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void Removing_a_timer_during_the_poll_wakes_the_loop_with_nothing_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var log = new Log();
        int freedOn = 0;
        int t = reg.Timer(-1, _ => log.Add("fired"), () => freedOn = Environment.CurrentManagedThreadId);

        using (var runner = new LoopThread(loop))
        {
            runner.WaitIdle();
            long before = runner.Iterations;
            Assert.Equal(0, loop.RemoveTimeout(t));
            Assert.True(WaitUntil(() => runner.Iterations > before), "the removal did not wake the loop");
            Assert.True(WaitUntil(() => Volatile.Read(ref freedOn) != 0), "the free callback did not run");
            Assert.Equal(runner.ThreadId, freedOn);
        }
        Assert.Empty(log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_later_timer_removed_during_dispatch_is_not_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var log = new Log();
        int t3 = 0;
        reg.Timer(0, t =>
        {
            log.Add("2");
            loop.UpdateTimeout(t, -1);
            Assert.Equal(0, loop.RemoveTimeout(t3));
        });
        t3 = reg.Timer(0, _ => log.Add("3"));

        Step(loop); // both are due in this one iteration
        RunFor(loop, 100);
        Assert.Equal(["2"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_timer_removing_itself_during_dispatch_fires_once_then_is_freed(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var log = new Log();
        reg.Timer(0, t =>
        {
            log.Add("fired");
            Assert.Equal(0, loop.RemoveTimeout(t));
            log.Add("removed");
        }, () => log.Add("freed"));

        RunUntil(loop, () => log.Count("freed") == 1, "the free callback");
        RunFor(loop, 100);
        Assert.Equal(["fired", "removed", "freed"], log.Items);
    }

    // ------------------------------------------------------------------
    // ids
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Ids_are_positive_and_count_up_each_kind_on_its_own_never_reused(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        int h1 = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { });
        int t1 = reg.Timer(-1, _ => { });
        int h2 = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { });
        int t2 = reg.Timer(-1, _ => { });
        Assert.True(h1 > 0 && t1 > 0);
        Assert.Equal(h1 + 1, h2);
        Assert.Equal(t1 + 1, t2);

        Assert.Equal(0, loop.RemoveHandle(h2));
        Assert.Equal(0, loop.RemoveTimeout(t2));
        Assert.Equal(h2 + 1, reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { }));
        Assert.Equal(t2 + 1, reg.Timer(-1, _ => { }));
    }

    [Theory, MemberData(nameof(Impls))]
    public void Unknown_or_removed_ids_are_refused_and_updates_of_them_do_nothing(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        Assert.Equal(-1, loop.RemoveHandle(int.MaxValue));
        Assert.Equal(-1, loop.RemoveTimeout(int.MaxValue));
        loop.UpdateHandle(int.MaxValue, VirEventHandleType.Readable);
        loop.UpdateTimeout(int.MaxValue, 0);

        int w = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => log.Add("handle"));
        int t = reg.Timer(-1, _ => log.Add("timer"));
        Assert.Equal(0, loop.RemoveHandle(w));
        Assert.Equal(0, loop.RemoveTimeout(t));
        Assert.Equal(-1, loop.RemoveHandle(w));
        Assert.Equal(-1, loop.RemoveTimeout(t));

        // an update does not bring a removed entry back
        loop.UpdateHandle(w, VirEventHandleType.Readable | VirEventHandleType.Writable);
        loop.UpdateTimeout(t, 0);
        pipe.Put();
        RunFor(loop, 150);
        Assert.Empty(log.Items);
    }

    // ------------------------------------------------------------------
    // events
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void A_writable_watch_reports_writable(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        VirEventHandleType seen = 0;
        reg.Handle(pipe.Write, VirEventHandleType.Writable, (w, _, ev) => { seen = ev; loop.RemoveHandle(w); });

        RunUntil(loop, () => seen != 0, "the writable watch");
        Assert.Equal(VirEventHandleType.Writable, seen);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_is_told_only_what_it_asked_for(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        VirEventHandleType both = 0;
        reg.Handle(pipe.Read, VirEventHandleType.Readable | VirEventHandleType.Writable, (w, _, ev) =>
        {
            both = ev;
            loop.RemoveHandle(w);
        });
        reg.Handle(pipe.Read, VirEventHandleType.Writable, (_, _, ev) => log.Add($"writable-only {ev}"));

        pipe.Put();
        RunUntil(loop, () => both != 0, "the readable watch");
        RunFor(loop, 100);
        // a pipe's read end is never writable
        Assert.Equal(VirEventHandleType.Readable, both);
        Assert.Empty(log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void Hangup_is_reported_to_a_watch_that_did_not_ask(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        VirEventHandleType seen = 0;
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (w, _, ev) => { seen = ev; loop.RemoveHandle(w); });

        pipe.CloseWrite();
        RunUntil(loop, () => seen != 0, "the hangup");
        Assert.True(seen.HasFlag(VirEventHandleType.Hangup), $"got {seen}");
        Assert.False(seen.HasFlag(VirEventHandleType.Writable));
    }

    [Theory, MemberData(nameof(Impls))]
    public void Error_is_reported_to_a_watch_that_did_not_ask(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        VirEventHandleType seen = 0;
        // writable is not asked for either: only the error can fire it
        reg.Handle(pipe.Write, VirEventHandleType.Readable, (w, _, ev) => { seen = ev; loop.RemoveHandle(w); });

        RunFor(loop, 100);
        Assert.Equal((VirEventHandleType)0, seen);
        pipe.CloseRead();
        RunUntil(loop, () => seen != 0, "the error");
        Assert.Equal(VirEventHandleType.Error, seen);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_asking_only_for_hangup_gets_only_hangup(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        VirEventHandleType seen = 0;
        reg.Handle(pipe.Read, VirEventHandleType.Hangup, (w, _, ev) => { seen = ev; loop.RemoveHandle(w); });

        pipe.Put();
        RunFor(loop, 100);
        Assert.Equal((VirEventHandleType)0, seen);
        pipe.CloseWrite(); // now readable and hung up
        RunUntil(loop, () => seen != 0, "the hangup");
        Assert.Equal(VirEventHandleType.Hangup, seen);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_with_no_events_is_not_polled_even_for_hangup(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        reg.Handle(pipe.Read, VirEventHandleType.None, (_, _, ev) => log.Add($"{ev}"));

        pipe.Put();
        pipe.CloseWrite();
        RunFor(loop, 150);
        Assert.Empty(log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_regular_file_is_always_ready_as_poll_says(string impl)
    {
        using var loop = NewLoop(impl);
        string path = Path.GetTempFileName();
        try
        {
            using var file = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
            int fd = (int)file.DangerousGetHandle();
            using var reg = new Registrations(loop);
            VirEventHandleType seen = 0;
            reg.Handle(fd, VirEventHandleType.Readable | VirEventHandleType.Writable, (w, _, ev) =>
            {
                seen = ev;
                loop.RemoveHandle(w);
            });
            RunUntil(loop, () => seen != 0, "the file's watch");
            Assert.Equal(VirEventHandleType.Readable | VirEventHandleType.Writable, seen);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_on_a_bad_fd_is_accepted_and_never_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        // -1 (poll ignores it) and a number far beyond any open fd (POLLNVAL)
        reg.Handle(-1, VirEventHandleType.Readable, (_, _, ev) => log.Add($"-1 {ev}"));
        reg.Handle(1_000_000, VirEventHandleType.Readable, (_, _, ev) => log.Add($"big {ev}"));
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { log.Add("pipe"); pipe.Take(); });

        pipe.Put();
        RunUntil(loop, () => log.Count("pipe") == 1, "the good watch");
        RunFor(loop, 100);
        Assert.Equal(["pipe"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_removed_or_disabled_watch_on_a_ready_fd_lets_the_loop_sleep(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(2);
        using var reg = new Registrations(loop);
        int a = reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (_, _, _) => { });
        int b = reg.Handle(pipes[1].Read, VirEventHandleType.Readable, (_, _, _) => { });
        pipes[0].Put(); // never read: ready for good
        pipes[1].Put();

        using var runner = new LoopThread(loop);
        Assert.True(WaitUntil(() => runner.Iterations > 10), "the ready watches did not keep the loop busy");
        Assert.Equal(0, loop.RemoveHandle(a));
        loop.UpdateHandle(b, VirEventHandleType.None);
        runner.WaitIdle(); // fails if the fds are still polled
    }

    // ------------------------------------------------------------------
    // updates
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Updating_a_watch_to_no_events_stops_it_and_back_restarts_it(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        int fired = 0;
        int w = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => fired++);

        pipe.Put(); // never read: readable for the whole test
        loop.UpdateHandle(w, VirEventHandleType.None);
        RunFor(loop, 150);
        Assert.Equal(0, fired);

        loop.UpdateHandle(w, VirEventHandleType.Readable);
        RunUntil(loop, () => fired > 0, "the re-enabled watch");
        loop.UpdateHandle(w, VirEventHandleType.None);
        int seen = fired;
        RunFor(loop, 100);
        Assert.Equal(seen, fired);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_disabling_itself_in_its_callback_fires_once(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        int fired = 0;
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (w, _, _) =>
        {
            fired++;
            loop.UpdateHandle(w, VirEventHandleType.None);
        });

        pipe.Put();
        RunUntil(loop, () => fired > 0, "the watch");
        RunFor(loop, 150);
        Assert.Equal(1, fired);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_or_timer_disabled_by_an_earlier_callback_is_not_dispatched(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(2);
        using var reg = new Registrations(loop);
        var log = new Log();
        int b = 0, t = 0;
        reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (_, _, _) =>
        {
            log.Add("a");
            pipes[0].Take();
            loop.UpdateHandle(b, VirEventHandleType.None);
            loop.UpdateTimeout(t, -1);
        });
        b = reg.Handle(pipes[1].Read, VirEventHandleType.Readable, (_, _, _) => { log.Add("b"); pipes[1].Take(); });
        t = reg.Timer(0, _ => log.Add("t"));

        Settle(loop);
        log.Clear();
        pipes[0].Put();
        pipes[1].Put();
        RunUntil(loop, () => log.Count("a") == 1, "the first watch");
        RunFor(loop, 100);
        // the timer may fire before the data arrives; never after "a"
        var items = log.Items.SkipWhile(i => i == "t").ToArray();
        Assert.Equal(["a"], items);

        loop.UpdateHandle(b, VirEventHandleType.Readable);
        RunUntil(loop, () => log.Count("b") == 1, "the re-enabled watch");
    }

    [Theory, MemberData(nameof(Impls))]
    public void Updating_a_timer_rearms_it_from_now(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var sw = Stopwatch.StartNew();
        long updatedAt = -1, firedAt = -1;
        int t = reg.Timer(200, _ => firedAt = sw.ElapsedMilliseconds);
        reg.Timer(100, self =>
        {
            updatedAt = sw.ElapsedMilliseconds; // taken before the update: a lower bound
            loop.UpdateTimeout(t, 200);
            loop.UpdateTimeout(self, -1);
        });

        RunUntil(loop, () => firedAt >= 0, "the re-armed timer");
        Assert.True(updatedAt >= 99, $"the 100 ms timer fired after {updatedAt} ms");
        Assert.True(firedAt - updatedAt >= 199, $"fired {firedAt - updatedAt} ms after the update to 200 ms");
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_zero_timer_fires_on_every_iteration(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int fired = 0;
        reg.Timer(0, _ => fired++);

        RunUntil(loop, () => fired > 0, "the first firing");
        Settle(loop);
        int before = fired;
        for (int i = 0; i < 5; i++)
            Step(loop);
        Assert.Equal(before + 5, fired);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_periodic_timer_keeps_firing_and_never_early(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        var sw = Stopwatch.StartNew();
        var times = new List<double>();
        reg.Timer(50, _ => times.Add(sw.Elapsed.TotalMilliseconds));

        RunUntil(loop, () => times.Count >= 5, "five firings");
        Assert.True(times[0] >= 49, $"first firing after {times[0]} ms");
        for (int i = 1; i < times.Count; i++)
            Assert.True(times[i] - times[i - 1] >= 45, $"firings {i - 1} and {i} {times[i] - times[i - 1]} ms apart");
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_timer_disabling_itself_in_its_callback_fires_once(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int fired = 0;
        reg.Timer(0, t =>
        {
            fired++;
            loop.UpdateTimeout(t, -1);
        });

        RunUntil(loop, () => fired > 0, "the timer");
        RunFor(loop, 100);
        Assert.Equal(1, fired);
    }

    // ------------------------------------------------------------------
    // ordering
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Due_entries_run_in_the_order_they_were_armed(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(3);
        using var reg = new Registrations(loop);
        var log = new Log();
        var ids = new int[3];
        for (int i = 0; i < 3; i++)
        {
            string name = "h" + i;
            ids[i] = reg.Handle(pipes[i].Read, VirEventHandleType.Readable, (_, _, _) => log.Add(name));
        }
        int ta = reg.Timer(0, _ => log.Add("ta"));
        reg.Timer(0, _ => log.Add("tb"));
        for (int i = 0; i < 3; i++)
            pipes[i].Put(); // never read: ready on every iteration

        Settle(loop);
        log.Clear();
        Step(loop);
        Assert.Equal(["h0", "h1", "h2", "ta", "tb"], log.Items);

        // an update that changes an entry re-arms it: it goes last
        loop.UpdateHandle(ids[0], VirEventHandleType.None);
        loop.UpdateHandle(ids[0], VirEventHandleType.Readable);
        loop.UpdateTimeout(ta, 0);
        // one that changes nothing does not
        loop.UpdateHandle(ids[1], VirEventHandleType.Readable);
        log.Clear();
        Step(loop);
        Assert.Equal(["h1", "h2", "tb", "h0", "ta"], log.Items);
    }

    [Theory, MemberData(nameof(Impls))]
    public void What_a_callback_adds_waits_for_the_next_iteration(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        var log = new Log();
        Settle(loop);
        reg.Timer(0, t =>
        {
            log.Add("first");
            loop.UpdateTimeout(t, -1);
            reg.Timer(0, t2 => { log.Add("added timer"); loop.UpdateTimeout(t2, -1); });
            reg.Handle(pipe.Read, VirEventHandleType.Readable, (w, _, _) => { log.Add("added handle"); loop.RemoveHandle(w); });
        });
        pipe.Put();

        Step(loop);
        Assert.Equal(["first"], log.Items);
        RunUntil(loop, () => log.Items.Length == 3, "the added entries");
    }

    // ------------------------------------------------------------------
    // free callbacks
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Free_callbacks_run_later_on_the_loop_never_inside_remove(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        using var reg = new Registrations(loop);
        int handleFreed = 0, timerFreed = 0;
        int w = reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { }, () => handleFreed++);
        int t = reg.Timer(1000, _ => { }, () => timerFreed++);
        reg.Handle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => { }); // no free callback: fine

        Assert.Equal(0, loop.RemoveHandle(w));
        Assert.Equal(0, loop.RemoveTimeout(t));
        Assert.Equal(0, handleFreed);
        Assert.Equal(0, timerFreed);

        RunUntil(loop, () => handleFreed > 0 && timerFreed > 0, "the free callbacks");
        RunFor(loop, 50);
        Assert.Equal(1, handleFreed);
        Assert.Equal(1, timerFreed);
    }

    [Theory, MemberData(nameof(Impls))]
    public void Removing_others_from_a_callback_frees_them_without_dispatching(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(3);
        using var reg = new Registrations(loop);
        var log = new Log();
        int b = 0, c = 0, t = 0;
        reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (w, _, _) =>
        {
            log.Add("a");
            Assert.Equal(0, loop.RemoveHandle(b));
            Assert.Equal(0, loop.RemoveHandle(c));
            Assert.Equal(0, loop.RemoveTimeout(t));
            loop.RemoveHandle(w);
        });
        b = reg.Handle(pipes[1].Read, VirEventHandleType.Readable, (_, _, _) => log.Add("b"), () => log.Add("b freed"));
        c = reg.Handle(pipes[2].Read, VirEventHandleType.Readable, (_, _, _) => log.Add("c"), () => log.Add("c freed"));
        t = reg.Timer(0, _ => log.Add("t"), () => log.Add("t freed"));

        Settle(loop);
        log.Clear();
        foreach (var p in pipes.All)
            p.Put();
        RunUntil(loop, () => log.Items.Length >= 4 && log.Items.Contains("a"), "the removals' free callbacks");
        RunFor(loop, 100);
        // the timer is due on every iteration until "a" removes it
        var items = log.Items.SkipWhile(i => i == "t").ToArray();
        Assert.Equal("a", items[0]);
        Assert.Equal(["b freed", "c freed", "t freed"], items.Skip(1).Order().ToArray());
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_free_callback_may_add_to_the_loop(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int fired = 0;
        int t = reg.Timer(-1, _ => { }, () => reg.Timer(0, t2 => { fired++; loop.UpdateTimeout(t2, -1); }));
        Assert.Equal(0, loop.RemoveTimeout(t));
        RunUntil(loop, () => fired == 1, "the timer added by the free callback");
    }

    [Theory, MemberData(nameof(Impls))]
    public void No_callback_runs_after_its_free_callback_under_concurrent_removal(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipe = new Pipe();
        pipe.Put(); // the read end stays readable: every watch is due on every iteration
        const int N = 200;
        var freed = new int[N];
        var fired = new int[N];
        int violations = 0, frees = 0;
        var ids = new int[N];
        using (var runner = new LoopThread(loop))
        {
            for (int i = 0; i < N; i++)
            {
                int index = i;
                void Check()
                {
                    Interlocked.Increment(ref fired[index]);
                    if (Volatile.Read(ref freed[index]) != 0)
                        Interlocked.Increment(ref violations);
                }
                void Free()
                {
                    if (Interlocked.Exchange(ref freed[index], 1) != 0)
                        Interlocked.Increment(ref violations); // freed twice
                    Interlocked.Increment(ref frees);
                }
                ids[i] = i % 2 == 0
                    ? loop.AddHandle(pipe.Read, VirEventHandleType.Readable, (_, _, _) => Check(), Free)
                    : loop.AddTimeout(0, _ => Check(), Free);
                Assert.True(ids[i] > 0);
            }
            Assert.True(WaitUntil(() => Enumerable.Range(0, N).All(i => Volatile.Read(ref fired[i]) > 0)), "not every entry fired");
            for (int i = 0; i < N; i++)
                Assert.Equal(0, i % 2 == 0 ? loop.RemoveHandle(ids[i]) : loop.RemoveTimeout(ids[i]));
            Assert.True(WaitUntil(() => Volatile.Read(ref frees) == N), $"{frees} of {N} free callbacks ran");
        }
        Assert.Equal(0, violations);
    }

    // ------------------------------------------------------------------
    // many fds
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Hundreds_of_fds_each_fire_for_their_own_data(string impl)
    {
        const int N = 300;
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(N);
        using var reg = new Registrations(loop);
        var fired = new int[N];
        int total = 0;
        for (int i = 0; i < N; i++)
        {
            int index = i;
            reg.Handle(pipes[i].Read, VirEventHandleType.Readable, (_, fd, _) =>
            {
                Assert.Equal(pipes[index].Read, fd);
                Assert.True(pipes[index].Take());
                fired[index]++;
                total++;
            });
        }

        for (int i = 1; i < N; i += 2)
            pipes[i].Put();
        RunUntil(loop, () => total == N / 2, "the odd pipes");
        RunFor(loop, 100);
        for (int i = 0; i < N; i++)
            Assert.Equal(i % 2, fired[i]);

        foreach (var p in pipes.All)
            p.Put();
        RunUntil(loop, () => total == N / 2 + N, "every pipe");
        RunFor(loop, 50);
        for (int i = 0; i < N; i++)
            Assert.Equal(i % 2 + 1, fired[i]);
    }

    // ------------------------------------------------------------------
    // threads
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Interrupt_from_another_thread_wakes_a_blocked_loop(string impl)
    {
        using var loop = NewLoop(impl);
        using var runner = new LoopThread(loop);
        for (int i = 0; i < 3; i++)
        {
            runner.WaitIdle();
            long before = runner.Iterations;
            loop.Interrupt();
            Assert.True(WaitUntil(() => runner.Iterations > before), "Interrupt did not wake the loop");
        }
    }

    [Theory, MemberData(nameof(Impls))]
    public void Interrupt_before_RunOnce_makes_it_return_without_blocking(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        Settle(loop);
        int fired = 0;
        int t = reg.Timer(0, _ => fired++);
        Thread.Sleep(100); // any interrupt still on its way from the helpers lands
        Step(loop); // the timer is due: consumes whatever wake is pending
        Assert.True(fired > 0);
        loop.UpdateTimeout(t, -1); // nothing due now: only the interrupt ends the next iteration
        loop.Interrupt();
        Step(loop);
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_timer_added_from_another_thread_wakes_the_loop_and_fires(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int fired = 0;
        using var runner = new LoopThread(loop);
        runner.WaitIdle();
        var sw = Stopwatch.StartNew();
        long firedAfter = -1;
        reg.Timer(50, t =>
        {
            firedAfter = sw.ElapsedMilliseconds;
            Interlocked.Increment(ref fired);
            loop.UpdateTimeout(t, -1);
        });
        Assert.True(WaitUntil(() => Volatile.Read(ref fired) == 1), "the timer never fired");
        Assert.True(firedAfter >= 49, $"fired after {firedAfter} ms");
    }

    [Theory, MemberData(nameof(Impls))]
    public void A_watch_added_or_enabled_from_another_thread_fires(string impl)
    {
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(2);
        using var reg = new Registrations(loop);
        int a = 0, b = 0;
        using var runner = new LoopThread(loop);
        runner.WaitIdle();
        reg.Handle(pipes[0].Read, VirEventHandleType.Readable, (_, _, _) => { pipes[0].Take(); Interlocked.Increment(ref a); });
        int wb = reg.Handle(pipes[1].Read, VirEventHandleType.None, (_, _, _) => { pipes[1].Take(); Interlocked.Increment(ref b); });
        runner.WaitIdle();
        pipes[0].Put();
        Assert.True(WaitUntil(() => Volatile.Read(ref a) == 1), "the added watch never fired");
        pipes[1].Put();
        runner.WaitIdle();
        Assert.Equal(0, Volatile.Read(ref b));
        loop.UpdateHandle(wb, VirEventHandleType.Readable);
        Assert.True(WaitUntil(() => Volatile.Read(ref b) == 1), "the enabled watch never fired");
    }

    [Theory, MemberData(nameof(Impls))]
    public void Many_threads_add_update_and_remove_while_the_loop_runs(string impl)
    {
        const int Threads = 4, Rounds = 50;
        using var loop = NewLoop(impl);
        int frees = 0;
        using (var runner = new LoopThread(loop))
        {
            var errors = new List<Exception>();
            var workers = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
            {
                try
                {
                    Work();
                }
                catch (Exception e)
                {
                    lock (errors)
                        errors.Add(e);
                }
            }) { IsBackground = true }).ToArray();

            void Work()
            {
                using var pipe = new Pipe();
                for (int r = 0; r < Rounds; r++)
                {
                    int timerFired = 0, handleFired = 0;
                    int t = loop.AddTimeout(-1, _ => Interlocked.Increment(ref timerFired), () => Interlocked.Increment(ref frees));
                    int w = loop.AddHandle(pipe.Read, VirEventHandleType.None,
                        (_, _, _) => Interlocked.Increment(ref handleFired), () => Interlocked.Increment(ref frees));
                    loop.UpdateTimeout(t, 0);
                    pipe.Put();
                    loop.UpdateHandle(w, VirEventHandleType.Readable);
                    bool ok = WaitUntil(() => Volatile.Read(ref timerFired) > 0 && Volatile.Read(ref handleFired) > 0);
                    loop.RemoveTimeout(t);
                    loop.RemoveHandle(w);
                    pipe.Take();
                    if (!ok)
                        throw new TimeoutException("an entry added from a worker never fired");
                }
            }

            foreach (var w in workers)
                w.UnsafeStart();
            foreach (var w in workers)
                Assert.True(w.Join(60_000), "a worker did not finish");
            Assert.Empty(errors);
            Assert.True(WaitUntil(() => Volatile.Read(ref frees) == 2 * Threads * Rounds),
                $"{frees} of {2 * Threads * Rounds} free callbacks ran");
        }
    }

    // ------------------------------------------------------------------
    // cost
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void Dispatch_allocates_nothing_per_event(string impl)
    {
        const int Iterations = 2000;
        using var loop = NewLoop(impl);
        using var pipes = new Pipes(8);
        using var reg = new Registrations(loop);
        long events = 0;
        VirEventHandleCallback onHandle = (_, _, _) => events++;
        VirEventTimeoutCallback onTimer = _ => events++;
        foreach (var p in pipes.All)
        {
            p.Put(); // never read: every watch is due on every iteration
            reg.Handle(p.Read, VirEventHandleType.Readable, onHandle);
        }
        reg.Timer(0, onTimer); // and this keeps RunOnce from blocking

        Settle(loop);
        for (int i = 0; i < 200; i++)
            loop.RunOnce().ThrowIfFailed(); // warm up
        long dispatched = 0;
        // in a window no collection ran in: one started by another test's
        // allocations moves this thread's count too (AllocationMeter)
        long allocated = AllocationMeter.BytesOnThisThread(() =>
        {
            long firstEvent = events;
            for (int i = 0; i < Iterations; i++)
                loop.RunOnce().ThrowIfFailed();
            dispatched = events - firstEvent;
        });

        Assert.True(dispatched >= Iterations * 9, $"{dispatched} callbacks in {Iterations} iterations");
        Assert.True(allocated < dispatched / 100, $"{allocated} bytes allocated for {dispatched} callbacks");
    }

    /// <summary>
    /// The daemon adds and removes a watch (and timers) per connection: once
    /// warm, the managed loop reuses its entries and fd records instead of
    /// allocating them. Managed loop only: libvirt's glib loop allocates a
    /// GSource per registration.
    /// </summary>
    [Fact]
    public void Managed_add_and_remove_allocate_nothing_once_warm()
    {
        const int Cycles = 1000;
        using var loop = NewLoop(VirImplementations.Managed);
        using var pipe = new Pipe();
        pipe.Put(); // never read: the watch is due as soon as it is added
        long fired = 0, freed = 0;
        // made before the windows, so they allocate no delegate
        VirEventHandleCallback onHandle = (_, _, _) => fired++;
        VirEventTimeoutCallback onTimer = _ => fired++;
        Action onFree = () => freed++;
        int fd = pipe.Read;

        void HandleCycles(int cycles)
        {
            for (int i = 0; i < cycles; i++)
            {
                int w = loop.AddHandle(fd, VirEventHandleType.Readable, onHandle, onFree);
                loop.RunOnce().ThrowIfFailed();
                loop.RemoveHandle(w);
                loop.RunOnce().ThrowIfFailed(); // runs the free callback
            }
        }

        void TimerCycles(int cycles)
        {
            for (int i = 0; i < cycles; i++)
            {
                int t = loop.AddTimeout(0, onTimer, onFree);
                loop.RunOnce().ThrowIfFailed();
                loop.RemoveTimeout(t);
                loop.RunOnce().ThrowIfFailed();
            }
        }

        Settle(loop);
        HandleCycles(100); // warm up
        TimerCycles(100);
        long firedBefore = fired, freedBefore = freed;
        long handles = AllocationMeter.BytesOnThisThread(() => HandleCycles(Cycles));
        long timers = AllocationMeter.BytesOnThisThread(() => TimerCycles(Cycles));

        // each window ran to the end at least once: every entry fired and was freed
        Assert.True(fired - firedBefore >= 2 * Cycles, $"{fired - firedBefore} callbacks in {2 * Cycles} cycles");
        Assert.True(freed - freedBefore >= 2 * Cycles, $"{freed - freedBefore} free callbacks in {2 * Cycles} cycles");
        Assert.True(handles == 0 && timers == 0,
            $"{handles} bytes for {Cycles} watches, {timers} bytes for {Cycles} timers added and removed");
    }

    // ------------------------------------------------------------------
    // callbacks that throw
    // ------------------------------------------------------------------

    [Theory, MemberData(nameof(Impls))]
    public void An_exception_from_a_callback_comes_out_of_RunOnce_and_the_loop_goes_on(string impl)
    {
        using var loop = NewLoop(impl);
        using var reg = new Registrations(loop);
        int calls = 0;
        reg.Timer(0, _ =>
        {
            if (++calls == 1)
                throw new InvalidOperationException("from the callback");
        });

        var sw = Stopwatch.StartNew();
        InvalidOperationException? thrown = null;
        while (thrown is null && calls == 0 && sw.ElapsedMilliseconds < Bound)
        {
            try
            {
                Step(loop);
            }
            catch (InvalidOperationException e)
            {
                thrown = e;
            }
        }
        Assert.Equal("from the callback", thrown?.Message);
        RunUntil(loop, () => calls >= 3, "the timer after the exception");
    }
}
