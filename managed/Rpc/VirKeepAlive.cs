using Libvirt.Util;
using Libvirt.Xdr;

namespace Libvirt.Rpc;

/// <summary>
/// libvirt's keepalive protocol on one connection (virkeepalive.c): every
/// message received restarts the idle interval and the count of pings a
/// peer may leave unanswered; a keepalive PING (program KEEPALIVE_PROGRAM,
/// version 1, type MESSAGE) is answered with a PONG, a PONG is taken note
/// of, and either goes no further. Once started (as libvirtd's clients ask
/// for; virtlockd and virtlogd never start it), the client is pinged after
/// each idle interval and, after <c>count</c> pings with nothing received,
/// the connection is declared dead. The two procedures go through the
/// generated keepalive program's <c>Dispatch</c>. Runs on the event loop
/// thread; time is the monotonic clock in seconds, as libvirt's.
/// </summary>
public sealed class VirKeepAlive : IVirKeepAliveProgram<VirKeepAlive>
{
    private readonly IVirEventLoop _loop;
    private readonly VirNetMessagePool _pool;
    private readonly Func<VirNetMessage, int> _send;
    private readonly Action _dead;
    private readonly VirEventTimeoutCallback _onTimer;
    private readonly XdrCallContext _call = new();

    private int _interval;
    private uint _count;
    private uint _countToDeath;
    private long _lastPacketReceived;
    private long _intervalStart;
    private int _timer = -1;
    private bool _pingReceived;

    private readonly VirNetLog _log;
    private ulong _logId;
    private ulong _clientId;
    private static readonly VirLogSource Src = VirNetLog.KeepAlive;
    private const string File = VirNetLog.KeepAliveFile;

    /// <param name="send">queues a message on the connection (0, or -1 and the caller keeps it)</param>
    /// <param name="dead">the peer stopped answering</param>
    /// <param name="clientLogId">the client's %p in the rpc lines (<see cref="VirNetLog"/>)</param>
    public VirKeepAlive(int interval, uint count, IVirEventLoop loop, VirNetMessagePool pool,
        Func<VirNetMessage, int> send, Action dead, ulong clientLogId = 0)
    {
        _loop = loop;
        _pool = pool;
        _send = send;
        _dead = dead;
        _onTimer = Timer;
        _log = pool.Log;
        Renew(interval, count, clientLogId);
    }

    /// <summary>virKeepAliveNew's state, for a new object or for the stopped
    /// one of a closed connection that its client reuses (the same send and
    /// dead callbacks: they belong to the client object).</summary>
    internal void Renew(int interval, uint count, ulong clientLogId)
    {
        if (_timer >= 0)
            throw new InvalidOperationException("the keepalive is still running");
        _interval = interval;
        _count = count;
        _countToDeath = count;
        _lastPacketReceived = 0;
        _intervalStart = 0;
        _pingReceived = false;
        _call.Reset();
        _logId = VirNetLog.NewId();
        _clientId = clientLogId;
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 188, "virKeepAliveNew",
                $"client={VirNetLog.Ptr(_clientId)}, interval={interval}, count={count}");
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 205, "virKeepAliveNew",
                $"RPC_KEEPALIVE_NEW: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)}");
    }

    public bool IsActive => _timer >= 0;

    private static long Now => Environment.TickCount64 / 1000;

    /// <summary>virKeepAliveMessage: a PING or PONG, a header and no payload.</summary>
    private VirNetMessage? Message(keepalive_procedure proc)
    {
        var msg = _pool.Rent(tracked: false);
        msg.Header = new virNetMessageHeader
        {
            prog = VirKeepAliveProgram.Program, vers = VirKeepAliveProgram.Version,
            proc = (int)proc, type = virNetMessageType.VIR_NET_MESSAGE,
        };
        if (msg.EncodeHeader() is not null || msg.EncodePayloadEmpty() is not null)
        {
            _pool.Return(msg);
            return null;
        }
        _pool.LogEncoded(msg, raw: true);
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 96, "virKeepAliveMessage",
                $"Sending keepalive {(proc == keepalive_procedure.KEEPALIVE_PROC_PING ? "request" : "response")} to client {VirNetLog.Ptr(_clientId)}");
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 97, "virKeepAliveMessage",
                $"RPC_KEEPALIVE_SEND: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)} prog={(int)msg.Header.prog} vers={(int)msg.Header.vers} proc={msg.Header.proc}");
        return msg;
    }

    /// <summary>virKeepAliveStart: with <paramref name="interval"/> &gt; 0 the
    /// interval and count given here (if none was set), else the ones given
    /// at creation; nothing when the interval is not positive.</summary>
    public VirResult Start(int interval, uint count)
    {
        if (_timer >= 0)
        {
            if (_log.On(Src, VirLogPriority.Debug))
                _log.Debug(Src, File, 238, "virKeepAliveStart", "Keepalive messages already enabled");
            return VirResult.Success;
        }
        if (interval > 0)
        {
            if (_interval > 0)
                return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "keepalive interval already set");
            if (interval > int.MaxValue / 1000)
                return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, $"keepalive interval {interval} too large");
            _interval = interval;
            _count = count;
            _countToDeath = count;
        }
        if (_interval <= 0)
        {
            if (_log.On(Src, VirLogPriority.Debug))
                _log.Debug(Src, File, 261, "virKeepAliveStart", "Keepalive messages disabled by configuration");
            return VirResult.Success;
        }
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 266, "virKeepAliveStart",
                $"RPC_KEEPALIVE_START: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)} interval={interval} count={count}");
        long now = Now;
        long delay = now - _lastPacketReceived;
        long timeout = delay > _interval ? 0 : _interval - delay;
        _intervalStart = now - (_interval - timeout);
        _timer = _loop.AddTimeout((int)(timeout * 1000), _onTimer, null);
        if (_timer < 0)
            return VirError.Report(VirErrorDomain.Rpc, VirErrorCode.InternalError, "Unable to add keepalive timer");
        return VirResult.Success;
    }

    /// <summary>virKeepAliveStop.</summary>
    public void Stop()
    {
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 297, "virKeepAliveStop",
                $"RPC_KEEPALIVE_STOP: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)}");
        if (_timer > 0)
        {
            _loop.RemoveTimeout(_timer);
            _timer = -1;
        }
    }

    /// <summary>virKeepAliveTimerInternal: true when the peer is dead;
    /// else maybe a PING to send.</summary>
    private bool TimerInternal(out VirNetMessage? msg)
    {
        msg = null;
        long now = Now;
        if (_interval <= 0 || _intervalStart == 0)
            return false;
        if (now - _intervalStart < _interval)
        {
            _loop.UpdateTimeout(_timer, (int)((_interval - (now - _intervalStart)) * 1000));
            return false;
        }
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 126, "virKeepAliveTimerInternal",
                $"RPC_KEEPALIVE_TIMEOUT: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)} countToDeath={(int)_countToDeath} idle={(int)(now - _lastPacketReceived)}");
        if (_countToDeath == 0)
        {
            if (_log.On(Src, VirLogPriority.Debug))
                _log.Debug(Src, File, 131, "virKeepAliveTimerInternal",
                    $"No response from client {VirNetLog.Ptr(_clientId)} after {(int)_count} keepalive messages in {(int)(now - _lastPacketReceived)} seconds");
            return true; // libvirt: "connection closed due to keepalive timeout"
        }
        _countToDeath--;
        _intervalStart = now;
        msg = Message(keepalive_procedure.KEEPALIVE_PROC_PING);
        _loop.UpdateTimeout(_timer, _interval * 1000);
        return false;
    }

    private void Timer(int timer)
    {
        bool dead = TimerInternal(out var msg);
        if (dead)
            _dead();
        else if (msg is not null && _send(msg) < 0)
            _pool.Return(msg);
    }

    /// <summary>virKeepAliveCheckMessage: true when <paramref name="msg"/>
    /// was a keepalive message (consumed here), with the PONG to send for a PING.</summary>
    public bool CheckMessage(VirNetMessage msg, out VirNetMessage? response)
    {
        response = null;
        if (_log.On(Src, VirLogPriority.Debug))
            _log.Debug(Src, File, 365, "virKeepAliveCheckMessage",
                $"ka={VirNetLog.Ptr(_logId)}, client={VirNetLog.Ptr(_clientId)}, msg={VirNetLog.Ptr(msg.LogId)}");
        _countToDeath = _count;
        _intervalStart = Now;
        _lastPacketReceived = _intervalStart;

        bool handled = false;
        if (msg.Header.prog == VirKeepAliveProgram.Program &&
            msg.Header.vers == VirKeepAliveProgram.Version &&
            msg.Header.type == virNetMessageType.VIR_NET_MESSAGE)
        {
            handled = true;
            if (_log.On(Src, VirLogPriority.Info))
                _log.Info(Src, File, 381, "virKeepAliveCheckMessage",
                    $"RPC_KEEPALIVE_RECEIVED: ka={VirNetLog.Ptr(_logId)} client={VirNetLog.Ptr(_clientId)} prog={(int)msg.Header.prog} vers={(int)msg.Header.vers} proc={msg.Header.proc}");
            if (_log.On(Src, VirLogPriority.Debug))
            {
                string line = msg.Header.proc switch
                {
                    (int)keepalive_procedure.KEEPALIVE_PROC_PING => $"Got keepalive request from client {VirNetLog.Ptr(_clientId)}",
                    (int)keepalive_procedure.KEEPALIVE_PROC_PONG => $"Got keepalive response from client {VirNetLog.Ptr(_clientId)}",
                    _ => $"Ignoring unknown keepalive message {msg.Header.proc} from client {VirNetLog.Ptr(_clientId)}",
                };
                int at = msg.Header.proc switch
                {
                    (int)keepalive_procedure.KEEPALIVE_PROC_PING => 388,
                    (int)keepalive_procedure.KEEPALIVE_PROC_PONG => 393,
                    _ => 397,
                };
                _log.Debug(Src, File, at, "virKeepAliveCheckMessage", line);
            }
            _pingReceived = false;
            // an unknown keepalive procedure is ignored, as libvirt does
            VirKeepAliveProgram.Dispatch(this, this, _call, msg.Header.proc, msg.Payload, out _, out _);
            _call.Reset();
            if (_pingReceived)
                response = Message(keepalive_procedure.KEEPALIVE_PROC_PONG);
        }
        if (_timer >= 0)
            _loop.UpdateTimeout(_timer, _interval * 1000);
        return handled;
    }

    /// <summary>The last reference dropped (virKeepAliveDispose's line): the connection closed.</summary>
    internal void Release()
    {
        if (_log.On(Src, VirLogPriority.Info))
            _log.Info(Src, File, 218, "virKeepAliveDispose", $"RPC_KEEPALIVE_DISPOSE: ka={VirNetLog.Ptr(_logId)}");
    }

    VirResult IVirKeepAliveProgram<VirKeepAlive>.Ping(VirKeepAlive client, XdrCallContext call)
    {
        _pingReceived = true;
        return VirResult.Success;
    }

    VirResult IVirKeepAliveProgram<VirKeepAlive>.Pong(VirKeepAlive client, XdrCallContext call) => VirResult.Success;
}
