#!/bin/sh
# Daemon hotplug benchmark, run INSIDE the lab kernel:
#   scripts/lab -- Bench/hotplug.sh [PORTS] [SAMPLES] [ports|routes]
# A bridge with PORTS ports (default 1000) is enabled under `flowctl daemon`;
# then SAMPLES times a port is added and removed, and flowctl-kit measures
# RTM_NEWLINK -> the notification of the daemon's acked nftables commit.
# Also: restore of all PORTS after `nft delete table`, daemon RSS and CPU
# ticks over 5 idle seconds. Prints JSON; it reports, it does not judge.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Bench/lib.sh"
ports=${1:-1000}
samples=${2:-200}
# routes: each sample is a route through a link without one (it joins and
# leaves as an uplink); the daemon runs without automatic re-evaluation so
# that only the device changes are timed.
mode=${3:-ports}
daemon_args=
kit_args=
if [ "$mode" = routes ]; then daemon_args=--no-automatic-reevaluation; kit_args=--routes; fi
work=$(mktemp -d /tmp/flowctl-hotplug.XXXXXX)
bench_daemon "$work" "$ports" $daemon_args
"$bin/flowctl-kit" hotplug-bench --daemon-pid "$pid" --control-socket "$work/sock" --bridge br0 $kit_args \
    --samples "$samples" --idle 5
kill "$pid"
wait "$pid" 2>/dev/null || true
rm -rf "$work"
