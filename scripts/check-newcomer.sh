#!/usr/bin/env bash
# Scripted checks of two newcomer fixes that take a full build, so they are
# not in the test suite (run as root from the repository; minutes):
#  1. ./build.sh publish while a published daemon is running: no "Text file
#     busy"; the running process keeps its (now unlinked) binary.
#  2. a fresh clone: ./build.sh publish runs setup itself (libvirt's source
#     into .build/) instead of failing inside cmake.
# Usage: scripts/check-newcomer.sh [publish|clone|all]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:-all}"
fail() { echo "check-newcomer: FAIL: $*" >&2; exit 1; }

if [ "$what" = publish ] || [ "$what" = all ]; then
  [ -x "$repo/artifacts/bin/virtlockd" ] || fail "run ./build.sh publish once first"
  # a running published virtlockd, in its own namespace so no system daemon is met
  unshare -m --propagation private -- sh -c \
    'mount -t tmpfs tmpfs /run && mkdir -p /run/libvirt && exec "$0" -t 600' "$repo/artifacts/bin/virtlockd" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ "$(readlink /proc/$pid/exe 2>/dev/null)" = "$repo/artifacts/bin/virtlockd" ] && break; sleep 0.1; done
  [ "$(readlink /proc/$pid/exe)" = "$repo/artifacts/bin/virtlockd" ] || fail "the daemon did not start"
  (cd "$repo" && ./build.sh publish > /tmp/check-newcomer-publish.log 2>&1) || { tail -20 /tmp/check-newcomer-publish.log; fail "publish failed while virtlockd ran"; }
  grep -q "Text file busy" /tmp/check-newcomer-publish.log && fail "Text file busy"
  kill -0 $pid || fail "the running daemon died during publish"
  echo "check-newcomer: publish while running: ok (running daemon: $(readlink /proc/$pid/exe))"
  kill $pid; trap - EXIT
fi

if [ "$what" = clone ] || [ "$what" = all ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  git clone -q "$repo" "$tmp/clone"
  (cd "$tmp/clone" && ./build.sh publish > "$tmp/publish.log" 2>&1) || { tail -20 "$tmp/publish.log"; fail "publish on a fresh clone failed"; }
  [ -f "$tmp/clone/.build/libvirt-9.0.0/src/internal.h" ] || fail "setup did not run"
  [ -x "$tmp/clone/artifacts/bin/virtlockd" ] || fail "no binary"
  echo "check-newcomer: publish on a fresh clone: ok (setup ran first)"
fi
