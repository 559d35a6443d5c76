#!/usr/bin/env bash
# Everything the tests need, then the tests. Needs root: the lab fleet is network namespaces
# with their own sshd. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "test.sh: run as root (the lab builds network namespaces)" >&2; exit 2; fi
need=()
for package in $(grep -v '^#' scripts/debian-packages.txt); do
    dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    bash scripts/apt-install.sh "${need[@]}"   # starts no service (no root-namespace netdata)
fi
EXTRAS="[test]" bash scripts/install.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
