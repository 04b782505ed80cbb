#!/bin/bash
# flowctl's UDP generator against iperf3 UDP with the same payload size, on
# the host kernel, over loopback in a throwaway network namespace, one flow,
# interleaved repetitions. Reports sender packets/s of each (median, min,
# max) and the ratio of the medians. A benchmark: it reports, it does not judge.
#   sudo Bench/udp-vs-iperf3.sh [REPETITIONS] [SECONDS] [PAYLOAD]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FLOWCTL_BIN_DIR:-$here/.build/release}
reps=${1:-5}; secs=${2:-3}; size=${3:-18}
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
ns=flowctl-iperf-$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }
flowctl_rates=() iperf_rates=()
for rep in $(seq "$reps"); do
    in_ns "$bin/flowctl" traffic udp-sink --port 9500 --duration $((secs + 10)) --idle-timeout 1 >/dev/null 2>&1 &
    sink=$!; sleep 0.3
    pps=$(in_ns "$bin/flowctl" traffic udp-send --to 127.0.0.1:9500 --size "$size" --flows 1 --duration "$secs" \
        | sed -n 's/.*"packetsPerSecond":\([0-9.]*\).*/\1/p')
    wait $sink || true
    flowctl_rates+=("$pps")
    in_ns iperf3 -s -1 -p 9501 >/dev/null 2>&1 &
    server=$!; sleep 0.3
    ipps=$(in_ns iperf3 -c 127.0.0.1 -p 9501 -u -b 0 -l "$size" -t "$secs" -J \
        | python3 -c 'import json,sys; d=json.load(sys.stdin)["end"]["sum"]; print(d["packets"]/d["seconds"])')
    wait $server || true
    iperf_rates+=("$ipps")
    echo "repetition $rep: flowctl $pps pps, iperf3 $ipps pps" >&2
done
python3 - "${flowctl_rates[*]}" "${iperf_rates[*]}" "$size" "$secs" <<'PY'
import statistics, sys
f = [float(x) for x in sys.argv[1].split()]; i = [float(x) for x in sys.argv[2].split()]
print(f"UDP sender, {sys.argv[3]}-byte payload, 1 flow, {sys.argv[4]} s, loopback, {len(f)} interleaved runs")
print(f"  flowctl traffic udp-send: median {statistics.median(f):,.0f} pps (min {min(f):,.0f}, max {max(f):,.0f})")
print(f"  iperf3 -u -b 0:           median {statistics.median(i):,.0f} pps (min {min(i):,.0f}, max {max(i):,.0f})")
print(f"  ratio of medians: {statistics.median(f) / statistics.median(i):.2f}")
PY
