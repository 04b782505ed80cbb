#!/bin/sh
# Control socket benchmark, run INSIDE the lab kernel:
#   scripts/lab --timeout 600 -- Bench/control-clients.sh [PORTS] [CLIENTS] [ROUNDS]
# `flowctl daemon` serving a bridge of PORTS ports (default 1000); while one
# client holds an idle connection, CLIENTS (default 200) clients ask for
# `status` at once, ROUNDS (default 5) times. Prints per-client latency as
# JSON (Bench/control-clients.py). It reports; it does not judge.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Bench/lib.sh"
ports=${1:-1000}
clients=${2:-200}
rounds=${3:-5}
work=$(mktemp -d /tmp/flowctl-clients.XXXXXX)
bench_daemon "$work" "$ports"
echo "# $bin/flowctl, $ports ports, $clients clients x $rounds rounds, one idle client connected"
python3 "$here/Bench/control-clients.py" "$work/sock" "$clients" "$rounds"
kill "$pid"
wait "$pid" 2>/dev/null || true
rm -rf "$work"
