# --- live switch (inserted by packaging/debian/build-deb.sh) ---
# switch_daemon NAME: make a running NAME exec the binary now at /usr/sbin/NAME
# by SIGUSR1, as the unit's ExecReload does; the daemon saves its clients,
# leases and log pipes and execs argv[0], which keeps its pid. Prints what it
# did; returns 1 (after saying so) when the old binary is still serving.
switch_daemon() {
    name=$1
    bin=/usr/sbin/$name
    state=/run/$name-restart-exec.json
    pid=
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        pid=$(systemctl show -p MainPID --value "$name.service" 2>/dev/null || true)
        [ "$pid" = 0 ] && pid=
    fi
    if [ -z "$pid" ] && [ -r "/run/$name.pid" ]; then
        pid=$(head -n 1 "/run/$name.pid" 2>/dev/null || true)
    fi
    case "$pid" in
        '' | *[!0-9]*) echo "$name: not running, nothing to switch"; return 0 ;;
    esac
    if [ ! -r "/proc/$pid/cmdline" ]; then
        echo "$name: not running (stale pid $pid), nothing to switch"
        return 0
    fi
    argv0=$(tr '\000' '\n' < "/proc/$pid/cmdline" | head -n 1)
    if [ "$argv0" != "$bin" ]; then
        echo "$name: pid $pid was started as '$argv0', not $bin; SIGUSR1 would not exec $bin, so it was left alone: restart it to use $bin" >&2
        return 1
    fi
    want=$(stat -L -c %d:%i "$bin" 2>/dev/null || true)
    have=$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null || true)
    if [ -z "$want" ]; then
        echo "$name: $bin is missing; pid $pid keeps running its current binary" >&2
        return 1
    fi
    if [ "$have" = "$want" ]; then
        echo "$name: pid $pid already runs $bin"
        return 0
    fi
    # the exec must not fail: a C daemon whose exec fails exits and drops
    # every lease, so check that the binary starts here first
    if ! out=$("$bin" --version 2>&1); then
        echo "$name: '$bin --version' failed ($out); pid $pid was not signalled and keeps serving with $(readlink "/proc/$pid/exe")" >&2
        return 1
    fi
    if [ -e "$state" ]; then
        echo "$name: $state exists (a restart is under way?); pid $pid was not signalled and keeps serving with $(readlink "/proc/$pid/exe")" >&2
        return 1
    fi
    old=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    kill -USR1 "$pid"
    i=0
    while [ "$i" -lt 300 ]; do
        if [ ! -e "/proc/$pid/exe" ]; then
            echo "$name: pid $pid exited while switching from $old to $bin: its clients were disconnected; the next connection starts $bin (socket activation)" >&2
            return 1
        fi
        have=$(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null || true)
        if [ "$have" = "$want" ] && [ ! -e "$state" ]; then
            echo "$name: pid $pid switched live from $old to $bin"
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    if [ "$have" = "$want" ]; then
        echo "$name: pid $pid runs $bin but has not finished restoring its state within 30 s ($state is still there)" >&2
    else
        echo "$name: pid $pid did not switch to $bin within 30 s and keeps serving with $(readlink "/proc/$pid/exe"); see its log, then retry with 'systemctl reload $name' or 'kill -USR1 $pid'" >&2
    fi
    return 1
}

switch_all() {
    rc=0
    for d in virtlockd virtlogd; do
        switch_daemon "$d" || rc=1
    done
    if [ "$rc" != 0 ]; then
        echo "libvirt-daemons-managed: not every running daemon was switched (see above); the ones that were not still serve with their previous binary" >&2
    fi
    # never fail the package operation for this: the files and diversions
    # are in place, a daemon that was not switched serves on unchanged
    return 0
}
# --- end of live switch ---
