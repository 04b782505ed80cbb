#!/bin/sh
# The daemon beside a large conntrack table, run INSIDE the lab kernel:
#   scripts/lab --mem 3G -- Bench/conntrack-scale.sh [ENTRIES] [IDLE_SECONDS]
# Fills conntrack with about ENTRIES UDP flows (default 1,000,000; each two
# packets long, so most are offloaded) forwarded through br0 under
# `flowctl daemon`, injected by pktgen at the VM's port, then reports: the
# entries and offloaded flows, the daemon's CPU over IDLE_SECONDS
# (default 60) of nothing happening, `flowctl status` through the daemon
# (five answers: median and worst, with flowctl's own start, and the
# answer alone through socat), one filtered conntrack dump's cost
# (flowctl-kit), and the daemon's RSS. Set FLOWCTL_BIN_DIR to the static
# build (scripts/package) to measure what hosts install. Prints JSON; it
# reports, it does not judge.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/Bench/lib.sh"
entries=${1:-1000000}
idle=${2:-60}
work=$(mktemp -d /tmp/flowctl-ctscale.XXXXXX)
ns() { ip netns exec "$@"; }

# Room for the flows, kept long enough to measure (unreplied UDP: 30 s by default).
sysctl -qw net.netfilter.nf_conntrack_max=$((entries + entries / 4))
echo $((entries / 4)) > /sys/module/nf_conntrack/parameters/hashsize
sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3600
sysctl -qw net.ipv4.ip_forward=1

ip link add br0 type bridge
ip link set br0 up
ip addr add 198.18.10.1/24 dev br0
ip netns add vm
ip link add vnet0 type veth peer name eth0 netns vm
ip link set vnet0 master br0 up
ns vm ip link set eth0 up
ns vm ip addr add 198.18.10.2/24 dev eth0
ip netns add ext
ip link add up0 type veth peer name eth0 netns ext
ip link set up0 up
ip addr add 198.18.20.1/24 dev up0
ns ext ip link set eth0 up
ns ext ip addr add 198.18.20.2/24 dev eth0
ip route add default via 198.18.20.2 dev up0
ns ext nft -f - <<'NFT'
table netdev sink {
    chain in {
        type filter hook ingress device "eth0" priority -500;
        meta l4proto udp counter drop
    }
}
NFT
nft -f - <<'NFT'
table inet host {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        ct state new accept
    }
}
NFT

"$bin/flowctl" daemon --state-dir "$work/state" --control-socket "$work/sock" --metrics-address "" \
    --log-level warning 2>"$work/log" &
pid=$!
while [ ! -S "$work/sock" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "the daemon exited: $(cat "$work/log")" >&2; exit 1; }
    sleep 0.05
done
export FLOWCTL_CONTROL_SOCKET=$work/sock
"$bin/flowctl" enable br0 >/dev/null

# The VM's 21 addresses, known to the host as a VM that spoke would be.
ns vm ping -c 1 -W 1 198.18.10.1 >/dev/null
vmmac=$(ns vm cat /sys/class/net/eth0/address)
brmac=$(cat /sys/class/net/br0/address)
i=2
while [ $i -le 22 ]; do ip neigh replace 198.18.10.$i lladdr "$vmmac" dev br0 nud permanent; i=$((i + 1)); done
ping -c 1 -W 1 198.18.20.2 >/dev/null

# 21 source addresses x 50,000 source ports: 1,050,000 distinct flows per
# round (pktgen steps both each packet; the port maximum is exclusive);
# rounds of that, twice each flow, for ENTRIES.
flows=1050000
count=$(( (entries < flows ? entries : flows) * 2 ))
filled=$(date +%s)
"$bin/flowctl" traffic pktgen --inject --device vnet0 --to 198.18.20.2 --from 198.18.10.2-198.18.10.22 \
    --dst-mac "$brmac" --src-mac "$vmmac" --size 64 --src-ports 10000-59999 --dst-ports 9000 \
    --count "$count" --duration 600 > "$work/pktgen.json"
filled=$(( $(date +%s) - filled ))
conntrack_count=$(cat /proc/sys/net/netfilter/nf_conntrack_count)

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
sleep 2
t0=$(ticks)
sleep "$idle"
t1=$(ticks)
hz=$(getconf CLK_TCK)

status_ms=""
n=0
while [ $n -lt 5 ]; do
    a=$(date +%s%N)
    "$bin/flowctl" status --json > "$work/status.json" || [ $? -eq 3 ]
    b=$(date +%s%N)
    status_ms="$status_ms $(( (b - a) / 1000000 ))"
    n=$((n + 1))
done
offloaded=$(jq '.offloadedFlows // 0' "$work/status.json")
# The answer alone, without starting flowctl: one request line through socat.
socket_ms=""
n=0
while [ $n -lt 5 ]; do
    a=$(date +%s%N)
    printf '{"version":1,"command":"status"}\n' | socat -t 5 - "UNIX-CONNECT:$work/sock" > "$work/answer.json"
    b=$(date +%s%N)
    socket_ms="$socket_ms $(( (b - a) / 1000000 ))"
    n=$((n + 1))
done
grep -q '"ok":true' "$work/answer.json" || { echo "the daemon's status answer was not ok: $(head -c 300 "$work/answer.json")" >&2; exit 1; }
socket_median=$(echo $socket_ms | tr ' ' '\n' | sort -n | sed -n 3p)
a=$(date +%s%N)
"$bin/flowctl-kit" conntrack > "$work/dump.json"
b=$(date +%s%N)
dump_ms=$(( (b - a) / 1000000 ))
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")
sorted=$(echo $status_ms | tr ' ' '\n' | sort -n)
median=$(echo "$sorted" | sed -n 3p)
worst=$(echo "$sorted" | sed -n 5p)

cat <<JSON
{"entriesWanted": $entries, "conntrackCount": $conntrack_count, "fillSeconds": $filled,
 "offloadedFlowsByStatus": $offloaded,
 "daemonIdleCpuPercent": $(awk -v t=$((t1 - t0)) -v hz="$hz" -v s="$idle" 'BEGIN { printf "%.2f", 100 * t / hz / s }'),
 "idleSeconds": $idle, "statusMilliseconds": {"median": $median, "worst": $worst, "all": "$(echo $status_ms)"},
 "statusAnswerMilliseconds": {"median": $socket_median, "all": "$(echo $socket_ms)"},
 "filteredDumpMilliseconds": $dump_ms, "daemonRssKiB": $rss_kb, "daemonRssAnonKiB": $anon_kb, "binaries": "$bin"}
JSON
kill "$pid"
wait "$pid" 2>/dev/null || true
rm -rf "$work"
