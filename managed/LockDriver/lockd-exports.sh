#!/bin/sh
# Rewrites ILC's exports file (the linker version script of lockd.so) so the
# library exports exactly what libvirt's lock manager looks up: the data
# symbol virLockDriverImpl (defined by native/lockdriver/), unversioned, as
# in libvirt's own lockd.so. ILC's entry points (virLockManagerLockDaemon*,
# which the table points at) become local. Idempotent.
set -eu
file=$1
cat > "$file.new" <<'SCRIPT'
{
  global:
    virLockDriverImpl;
  local: *;
};
SCRIPT
mv "$file.new" "$file"
echo "$file: virLockDriverImpl exported, everything else local"
