#!/usr/bin/env bash
# ./build.sh <target> [cake options]: restores Cake (a local dotnet tool) and
# runs build.cake. Targets: setup native bindings build publish test run bench fuzz
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
dotnet tool restore >/dev/null
target="${1:-build}"
[ $# -gt 0 ] && shift
exec dotnet cake build.cake --target="$target" "$@"
