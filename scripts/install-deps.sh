#!/usr/bin/env bash
# Installs the Debian packages diffusion.c builds against (.ci/packages), only
# those missing, so `make demo` and `make test` work on a fresh Debian machine.
# Other lists may be named instead: .ci/packages-fuzz (clang, libFuzzer) for
# `make fuzz`.
# Usage: scripts/install-deps.sh [LIST...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] && set -- .ci/packages
missing=()
for p in $(cat "$@"); do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
