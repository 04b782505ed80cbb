#!/bin/sh
# Control socket benchmark, run INSIDE the lab kernel:
#   scripts/lab --timeout 600 -- Bench/control-clients.sh [PORTS] [CLIENTS] [ROUNDS]
# `flowctl daemon` serving a bridge of PORTS ports (default 1000); while one
# client holds an idle connection, CLIENTS (default 200) clients ask for
# `status` at once, ROUNDS (default 5) times. Prints per-client latency as
# JSON (Bench/control-clients.py). It reports; it does not judge.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FLOWCTL_BIN_DIR:-$here/.build/release}
[ -x "$bin/flowctl" ] || bin=$here/.build/debug
ports=${1:-1000}
clients=${2:-200}
rounds=${3:-5}
work=$(mktemp -d /tmp/flowctl-clients.XXXXXX)
ip link add br0 address 02:00:00:00:00:01 type bridge
ip link set br0 up
ip link add up0 type dummy
ip link set up0 up
ip addr add 198.18.40.1/24 dev up0
ip route add default via 198.18.40.2 dev up0
i=0
while [ $i -lt "$ports" ]; do echo "link add p$i master br0 up type dummy"; i=$((i + 1)); done > "$work/batch"
ip -batch "$work/batch"
"$bin/flowctl" daemon --state-dir "$work/state" --control-socket "$work/sock" --metrics-address "" \
    --log-level warning 2>"$work/log" &
pid=$!
while [ ! -S "$work/sock" ]; do sleep 0.05; done
FLOWCTL_CONTROL_SOCKET=$work/sock "$bin/flowctl" enable br0 >/dev/null
echo "# $bin/flowctl, $ports ports, $clients clients x $rounds rounds, one idle client connected"
python3 "$here/Bench/control-clients.py" "$work/sock" "$clients" "$rounds"
kill "$pid"
wait "$pid" 2>/dev/null || true
rm -rf "$work"
