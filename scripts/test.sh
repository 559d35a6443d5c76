#!/usr/bin/env bash
# Everything the tests need, then the tests. Needs root: the lab fleet is network namespaces
# with their own sshd. Used as-is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "test.sh: run as root (the lab builds network namespaces)" >&2; exit 2; fi
need=()
for pair in sshd:openssh-server ssh:openssh-client tcpdump:tcpdump lsof:lsof ip:iproute2 \
            pgrep:procps sudo:sudo chromium:chromium timeout:coreutils; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
EXTRAS="[test]" bash scripts/install.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
