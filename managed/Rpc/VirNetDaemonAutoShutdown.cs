using Libvirt.Util;

namespace Libvirt.Rpc;

/// <summary>
/// virNetDaemon's idle timeout, the part both managed run loops share (the
/// managed virNetDaemon, and <see cref="VirNetDaemonRunLoop"/> for
/// libvirt's): the timer on the managed loop, the timeout, whether the timer
/// is armed, and the shutdown inhibitions. Its owner calls it under its own
/// lock.
/// </summary>
internal sealed class VirNetDaemonAutoShutdown(IVirEventLoop loop, VirEventTimeoutCallback onTimer)
{
    private uint _timeout;
    private int _timerId = -1;
    private bool _active;

    public long Inhibitions;

    /// <summary>virNetDaemonAutoShutdown's timer: added (disarmed) for the
    /// first non-zero timeout; false if the loop refused it.</summary>
    public bool Set(uint seconds)
    {
        if (seconds > 0 && _timerId == -1)
        {
            int id = loop.AddTimeout(-1, onTimer, null);
            if (id < 0)
                return false;
            _timerId = id;
        }
        _timeout = seconds;
        return true;
    }

    /// <summary>virNetDaemonShutdownTimerUpdate: armed while no server has a
    /// client and a timeout is set, disarmed otherwise.</summary>
    public void Update(bool hasClients)
    {
        if (_timerId == -1)
            return;
        if (_active)
        {
            if (hasClients || _timeout == 0)
            {
                loop.UpdateTimeout(_timerId, -1);
                _active = false;
            }
        }
        else if (!hasClients && _timeout != 0)
        {
            loop.UpdateTimeout(_timerId, (int)Math.Min(_timeout * 1000L, int.MaxValue));
            _active = true;
        }
    }

    public void RemoveTimer()
    {
        if (_timerId >= 0)
        {
            loop.RemoveTimeout(_timerId);
            _timerId = -1;
        }
    }
}
