#!/usr/bin/env bash
# Runs the hybrid virtlockd and virtlogd in the foreground (./build.sh run).
#
#   scripts/run-daemons.sh [-v]      -v: pass -v (verbose) to both daemons
#
# As root: privileged mode inside a private mount namespace with a tmpfs on
# /run, so the sockets (/run/libvirt/virtlockd-sock, virtlogd-sock, and their
# -admin-sock) and pid files never meet a system daemon's; the script prints
# the nsenter command that reaches them. As a normal user: unprivileged mode,
# sockets under $XDG_RUNTIME_DIR/libvirt (virt-admin -c virtlockd:///session).
# If either daemon fails to start, or exits later, the other is stopped and
# the script exits 1. Ctrl-C stops both. RUN_DAEMONS_BIN overrides the
# directory of the binaries (default: artifacts/bin).
set -uo pipefail
bin="${RUN_DAEMONS_BIN:-$(cd "$(dirname "$0")/../artifacts/bin" && pwd)}"
args=()
for a in "$@"; do
  case "$a" in
    -v | --verbose) args=(-v) ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-daemons: unknown option '$a' (-v, -h)" >&2; exit 2 ;;
  esac
done
for d in virtlockd virtlogd; do
  [ -x "$bin/$d" ] || { echo "run-daemons: $bin/$d is missing: run ./build.sh publish" >&2; exit 1; }
done

if [ "$(id -u)" = 0 ] && [ -z "${RUN_DAEMONS_INSIDE:-}" ]; then
  exec unshare -m --propagation private -- env RUN_DAEMONS_INSIDE=1 bash -c \
    'mount -t tmpfs tmpfs /run && exec "$0" "$@"' "$0" "$@"
fi

if [ "$(id -u)" = 0 ]; then
  rundir=/run/libvirt
  uri=system
else
  rundir="${XDG_RUNTIME_DIR:-$HOME/.cache}/libvirt"
  uri=session
fi

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap 'echo "run-daemons: stopping both daemons" >&2; stop_all; exit 0' INT TERM

# each daemon in its own process group (job control), so a Ctrl-C reaches
# only this script, whose trap stops both in order
set -m
declare -A pid_of
for d in virtlockd virtlogd; do
  "$bin/$d" "${args[@]}" &
  pid_of[$d]=$!
  pids+=($!)
done

# both must serve: the socket exists and its daemon is alive (bounded)
for d in virtlockd virtlogd; do
  for _ in $(seq 150); do
    if ! kill -0 "${pid_of[$d]}" 2>/dev/null; then
      wait "${pid_of[$d]}"
      echo "run-daemons: $d failed to start (exit $?; its messages are above); stopping the other daemon" >&2
      stop_all
      exit 1
    fi
    [ -S "$rundir/$d-sock" ] && [ -S "$rundir/$d-admin-sock" ] && break
    sleep 0.1
  done
  if ! [ -S "$rundir/$d-sock" ]; then
    echo "run-daemons: $d did not create $rundir/$d-sock within 15 s; stopping both" >&2
    stop_all
    exit 1
  fi
done

for d in virtlockd virtlogd; do
  echo "$d pid ${pid_of[$d]}: $rundir/$d-sock, admin $rundir/$d-admin-sock"
done
if [ "$uri" = system ]; then
  echo "They run in a private mount namespace (its own /run); reach them from another shell as root with"
  echo "  nsenter -t ${pid_of[virtlockd]} -m -- virt-admin -c virtlockd:///system server-list"
  echo "  nsenter -t ${pid_of[virtlockd]} -m -- virt-admin -c virtlogd:///system client-list virtlogd"
else
  echo "Reach them with"
  echo "  virt-admin -c virtlockd:///session server-list"
  echo "  virt-admin -c virtlogd:///session client-list virtlogd"
fi
echo "Ctrl-C stops both."

# a daemon that exits on its own takes the other down with it
wait -n "${pids[@]}"
rc=$?
for d in virtlockd virtlogd; do
  kill -0 "${pid_of[$d]}" 2>/dev/null || echo "run-daemons: $d (pid ${pid_of[$d]}) exited ($rc); stopping the other daemon" >&2
done
stop_all
exit 1
