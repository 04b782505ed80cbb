#!/bin/sh
# Seeded churn soak, run INSIDE the lab kernel (scripts/lab -- Tests/lab/churn-e2e.sh [SEED]).
# 2,000 random link events over 100 ports (adds, deletes, moves, ports that
# live for an instant, VLAN ports, uplink flaps), kill -9 of the daemon at 3
# random points; at 10 checkpoints the flowtable must equal the set
# Tests/lab/churn.py computes from the events it sent, and one-shot
# `flowctl plan` must have nothing to change. The seed is printed first:
# a failure is replayed with the same seed.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
work=$(mktemp -d /tmp/flowctl-churn.XXXXXX)
trap 'rm -rf "$work"' EXIT

# A fact the daemon depends on (SyncEngine.noteRouteCarrier): a link going
# down flushes its IPv4 routes without an RTM_DELROUTE.
ip link add rt0 type dummy
ip link set rt0 up
ip addr add 198.18.61.1/24 dev rt0
ip route add 198.18.62.0/24 via 198.18.61.2 dev rt0
ip monitor route >"$work/monitor" 2>&1 &
monitor=$!
sleep 0.2
ip link set rt0 down
sleep 0.2
kill "$monitor"
if ip route show 198.18.62.0/24 | grep -q .; then echo "FAIL: this kernel keeps IPv4 routes of a link that went down" >&2; exit 1; fi
if grep -q "198.18.62.0/24" "$work/monitor"; then
    echo "note: this kernel notifies IPv4 routes flushed by a link going down (the daemon re-reads routes anyway)"
fi
ip link del rt0

if ! python3 "$here/Tests/lab/churn.py" --flowctl "$FLOWCTL" --kit "$(dirname "$FLOWCTL")/flowctl-kit" --work "$work" ${1:+--seed "$1"} \
    --events 2000 --ports 100 --checkpoints 10 --kills 3 --max-resync-percent 1 >"$work/out" 2>&1; then
    cat "$work/out" >&2
    echo "--- daemon log (tail)" >&2
    tail -n 30 "$work/daemon.log" >&2
    exit 1
fi
cat "$work/out"
echo "PASS churn-e2e"
