#!/bin/bash
# Coherence benchmark, run INSIDE the lab kernel:
#   scripts/lab -- Bench/coherence.sh [TRIALS]
# The coherence test's topology (Tests/lab/coherence-lib.sh) under
# `flowctl daemon` with the default coalescing (20 ms) and rate limit
# (250 ms); Bench/coherence.py measures from a foreign nftables commit, or a
# bridge VLAN change, to the first dropped packet of an offloaded flow, the
# flow's return to the fast path, and what a storm of 100 commits costs.
# Prints JSON; it reports, it does not judge.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FLOWCTL_BIN_DIR:-$here/.build/release}
[ -x "$bin/flowctl" ] || bin=$here/.build/debug
FLOWCTL=$bin/flowctl
trials=${1:-20}
. "$here/Tests/lab/coherence-lib.sh"

build_topology >&2
"$FLOWCTL" daemon --state-dir "$state" --control-socket "$sock" --metrics-address "" --log-level warning \
    2>"$log" &
daemon_pid=$!
wait_for '[ -S "$sock" ]' 10 || fail "the daemon never published its control socket"
"$FLOWCTL" enable br0 >/dev/null
nft add table inet guard
nft add chain inet guard f '{ type filter hook forward priority 0; policy accept; }'
# Counts flow A's packets that took the slow path and were allowed (after the guard's rules).
nft -f - <<'NFT'
table inet observe {
    counter a7000 { }
    chain o { type filter hook forward priority 10; policy accept; udp dport 7000 counter name "a7000"; }
}
NFT
vm1 python3 "$UDPFLOW" send 198.18.20.2 7000 --sport 6000 --rate 2000 --duration 900 >/dev/null 2>&1 &
vm2 python3 "$UDPFLOW" send 198.18.20.2 7100 --sport 6100 --rate 1000 --duration 900 --flows 10 >/dev/null 2>&1 &
echo "flowctl: $FLOWCTL; kernel: $(uname -r); trials: $trials" >&2
ext python3 "$here/Bench/coherence.py" "$trials" "$FLOWCTL"
trap - EXIT
stop_all
