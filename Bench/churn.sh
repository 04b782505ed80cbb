#!/bin/sh
# Churn benchmark, run INSIDE the lab kernel:
#   scripts/lab --timeout 1800 -- Bench/churn.sh [PORTS] [EVENTS] [RATE] [SEED] [DAEMON ARG...]
# A bridge with PORTS ports (default 1000) under `flowctl daemon`; EVENTS
# (default 2000) seeded random link events (adds, deletes, moves, ports that
# live for an instant, VLAN ports, uplink flaps) at RATE events per second
# (default 100; 0 = as fast as `ip -batch` takes them), checked at 4
# checkpoints against the soak's own model (Tests/lab/churn.py). Prints the
# daemon's own event-to-ack summary, its full resyncs and errors as JSON.
# It reports; it does not judge.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Bench/lib.sh"
ports=${1:-1000}
events=${2:-2000}
rate=${3:-100}
seed=${4:-}
[ $# -gt 4 ] && shift 4 || set --
extra=""
for arg in "$@"; do extra="$extra --daemon-arg=$arg"; done
work=$(mktemp -d /tmp/flowctl-churn-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "# $bin/flowctl, $ports ports, $events events at ${rate}/s${extra:+, daemon$extra}"
python3 "$here/Tests/lab/churn.py" --flowctl "$bin/flowctl" --kit "$bin/flowctl-kit" --work "$work" \
    --events "$events" --ports "$ports" --checkpoints 4 --rate "$rate" --converge-timeout 60 ${seed:+--seed "$seed"} $extra \
    | grep -v '^checkpoint'
