#!/bin/sh
# Rewrites ILC's exports file (a linker version script, every export under
# ILC's own node) so each export carries libvirt's symbol version: the two
# public event functions LIBVIRT_0.9.0, the rest LIBVIRT_PRIVATE_9.0.0.
# Idempotent: it reads the names back from whatever nodes the file has.
set -eu
file=$1
names=$(tr '{};' '   ' < "$file" | tr -s ' \t' '\n\n' |
        grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | grep -vE '^(V[0-9.]*|LIBVIRT_.*|global|local)$' | sort -u)
public=$(printf '%s\n' $names | grep -E '^virEvent(Register|Run)DefaultImpl$' || true)
private=$(printf '%s\n' $names | grep -vE '^virEvent(Register|Run)DefaultImpl$' || true)
{
    echo 'LIBVIRT_0.9.0 {'
    echo '  global:'
    for n in $public; do echo "    $n;"; done
    echo '};'
    echo
    echo 'LIBVIRT_PRIVATE_9.0.0 {'
    echo '  global:'
    for n in $private; do echo "    $n;"; done
    echo '  local: *;'
    echo '};'
} > "$file.new"
mv "$file.new" "$file"
echo "$file: $(printf '%s\n' $public | grep -c .) exports at LIBVIRT_0.9.0, $(printf '%s\n' $private | grep -c .) at LIBVIRT_PRIVATE_9.0.0"
