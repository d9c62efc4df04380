#!/usr/bin/env bash
# Runs the hybrid virtlockd and virtlogd in the foreground (./build.sh run).
# As root: privileged mode inside a private mount namespace with tmpfs on
# /run, so the sockets (/run/libvirt/virtlockd-sock, virtlogd-sock) and pid
# files never meet a system daemon's. As a normal user: unprivileged mode,
# sockets under $XDG_RUNTIME_DIR/libvirt. Ctrl-C stops both.
set -euo pipefail
bin="$(cd "$(dirname "$0")/../artifacts/bin" && pwd)"
if [ "$(id -u)" = 0 ] && [ -z "${RUN_DAEMONS_INSIDE:-}" ]; then
  exec unshare -m --propagation private -- env RUN_DAEMONS_INSIDE=1 bash -c \
    'mount -t tmpfs tmpfs /run && exec "$0"' "$0"
fi
"$bin/virtlockd" -v & lockd=$!
"$bin/virtlogd" -v & logd=$!
trap 'kill -TERM $lockd $logd 2>/dev/null' INT TERM
echo "virtlockd pid $lockd, virtlogd pid $logd; Ctrl-C stops them" >&2
wait
