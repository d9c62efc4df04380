#!/usr/bin/env bash
# ./build.sh <target> [cake options]: restores Cake (a local dotnet tool) and
# runs build.cake. Targets: setup native bindings xdr build publish package test run bench fuzz fuzz-xdr
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
target="${1:-build}"
[ $# -gt 0 ] && shift
# the tests and benches make mount namespaces and run the privileged daemons: say so at once, not 381 failures later
case "$target" in
  test | bench)
    if [ "$(id -u)" != 0 ]; then
      echo "./build.sh $target needs root (it creates private mount namespaces and runs the daemons privileged inside them): run it as root, e.g. sudo ./build.sh $target" >&2
      exit 1
    fi ;;
esac

dotnet tool restore >/dev/null
exec dotnet cake build.cake --target="$target" "$@"
