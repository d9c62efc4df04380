#!/usr/bin/env bash
# Builds artifacts/deb/libvirt-daemons-managed_<version>_amd64.deb from the
# NativeAOT binaries in artifacts/bin (./build.sh package runs it after
# publish). Usage: packaging/debian/build-deb.sh [BIN_DIR] [OUT_DIR] [VERSION]
# (VERSION: instead of debian/changelog's, e.g. for an upgrade test)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${1:-$repo/artifacts/bin}"
out="${2:-$repo/artifacts/deb}"
pkg=libvirt-daemons-managed

for f in virtlockd virtlogd; do
  [ -x "$bin/$f" ] || { echo "build-deb: $bin/$f is missing: run ./build.sh publish first" >&2; exit 1; }
done
version="${3:-$(dpkg-parsechangelog -l "$here/changelog" -S Version)}"
arch="$(dpkg --print-architecture)"
[ "$arch" = amd64 ] || { echo "build-deb: only amd64 is built (this machine: $arch)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
doc="$root/usr/share/doc/$pkg"
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/share/man/man8" "$doc/examples" "$root/usr/share/lintian/overrides"

# the binaries, stripped (NativeAOT already strips them; strip again is a no-op then)
for f in virtlockd virtlogd; do
  install -m 0755 "$bin/$f" "$root/usr/sbin/$f"
  # (the package tests also build packages around stand-in scripts: only ELF files are stripped)
  if [ "$(head -c 4 "$root/usr/sbin/$f" | tail -c 3)" = ELF ]; then
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/sbin/$f"
  fi
done

# documentation (gzip -9n: no timestamps, as policy asks)
for m in virtlockd virtlogd; do
  gzip -9n < "$here/man/$m.8" > "$root/usr/share/man/man8/$m.8.gz"
  install -m 0644 "$here/examples/$m.conf" "$doc/examples/$m.conf"
done
gzip -9n < "$here/changelog" > "$doc/changelog.gz"
install -m 0644 "$here/copyright" "$doc/copyright"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/$pkg"

# maintainer scripts: #SWITCH# is the shared live-switch code
for s in preinst postinst postrm; do
  awk -v snippet="$here/switch.sh" '
    $0 == "#SWITCH#" { while ((getline l < snippet) > 0) print l; next } { print }' "$here/$s" > "$root/DEBIAN/$s"
  chmod 0755 "$root/DEBIAN/$s"
  sh -n "$root/DEBIAN/$s"
done

# shared-library dependencies of the executables (libvirt.so.0 is loaded at
# run time, so it is not among them: control.in names it)
mkdir -p "$work/shlibs/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" > "$work/shlibs/debian/control"
shlibs="$(cd "$work/shlibs" && dpkg-shlibdeps -O "-e$root/usr/sbin/virtlockd" "-e$root/usr/sbin/virtlogd" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
size="$(du -k -s --apparent-size "$root/usr" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" "$here/control.in" > "$root/DEBIAN/control"

find "$root" -type d -exec chmod 0755 {} +
find "$root/usr/share" -type f -exec chmod 0644 {} +
mkdir -p "$out"
deb="$out/${pkg}_${version}_${arch}.deb"
# reproducible: every mtime is the changelog's date
epoch="$(dpkg-parsechangelog -l "$here/changelog" -S Timestamp)"
find "$root" -exec touch -h -d "@$epoch" {} +
SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Zxz --build "$root" "$deb.tmp" >/dev/null
mv "$deb.tmp" "$deb"
echo "$deb"
