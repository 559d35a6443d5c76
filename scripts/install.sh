#!/usr/bin/env bash
# Install rstfleet into ./.venv (idempotent). Debian/Ubuntu: pulls python3-venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
apt_install() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        [ -n "$(find /var/lib/apt/lists -name '*Packages*' -print -quit 2>/dev/null)" ] || apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "install.sh: please install: $*" >&2; return 1
    fi
}
command -v "$PY" >/dev/null || { apt_install python3; PY=python3; }
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${EXTRAS:-[fleet]}" 2>&1 | grep -v '^WARNING: Location' >&2 || true
.venv/bin/python -c 'import rstfleet, paramiko, yaml, tabulate' 
echo "rstfleet installed: $(pwd)/.venv/bin/rstfleet" >&2
