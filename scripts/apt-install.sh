#!/usr/bin/env bash
# apt-get install the given Debian packages without starting their services. netdata's postinst
# would otherwise start an agent in the root namespace, beside the lab's own agents (one per host
# namespace, rstfleet_lab/netdata.py). The standard way: a /usr/sbin/policy-rc.d that exits 101
# ("action forbidden") for the install, removed afterwards whatever happens. A policy-rc.d that
# was there before is the machine's own: it is used as it is and left alone.
set -euo pipefail
[ $# -gt 0 ] || exit 0
policy=${RSTFLEET_POLICY_RC_D:-/usr/sbin/policy-rc.d}   # the override is for its tests only
if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    trap 'exit 130' INT TERM HUP          # exit, so the EXIT trap removes it
    printf '#!/bin/sh\n# scripts/apt-install.sh: no service starts during this install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
