#!/bin/bash
# Shows the fast path at work on a small demo topology, built entirely in
# throwaway network namespaces (the host's own links and ruleset are not
# touched): a "hypervisor" namespace with bridge br0 and two VMs on it,
# routed out of an uplink to an "internet" namespace. Counts what the
# forward hook sees before and after `flowctl enable br0`.
#
#   FLOWCTL=path/to/flowctl scripts/demo.sh     (root; needs nft flowtables:
#                                              run it through scripts/lab otherwise)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
[ -x "$FLOWCTL" ] || { echo "demo: no flowctl at $FLOWCTL (swift build first, or FLOWCTL=...)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "demo: must run as root" >&2; exit 1; }

hv=flowctl-demo-hv vm1=flowctl-demo-vm1 vm2=flowctl-demo-vm2 inet=flowctl-demo-inet
state=$(mktemp -d)
cleanup() {
    for ns in $vm1 $vm2 $inet $hv; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$state"
}
trap cleanup EXIT
for ns in $hv $vm1 $vm2 $inet; do
    if [ -e "/run/netns/$ns" ]; then echo "demo: namespace $ns exists (another demo running?)" >&2; trap - EXIT; exit 1; fi
done

H() { ip netns exec "$hv" "$@"; }
flowctl() { H env FLOWCTL_STATE_DIR="$state" FLOWCTL_CONTROL_SOCKET="$state/no-daemon.sock" "$FLOWCTL" "$@"; }
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
title() { printf '\n%s### %s%s\n' "$bold" "$*" "$plain"; }
# Runs a command in the hypervisor namespace, showing it first.
show() { printf '[hypervisor]# %s\n' "$*"; if [ "$1" = flowctl ]; then "$@"; else H "$@"; fi; }

title "Topology: vm1, vm2 -- br0 [hypervisor] up0 -- internet (all in namespaces flowctl-demo-*)"
for ns in $hv $vm1 $vm2 $inet; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
H sysctl -qw net.ipv4.ip_forward=1
H ip link add br0 type bridge
H ip addr add 198.18.1.1/24 dev br0
H ip link set br0 up
n=0
for vm in $vm1 $vm2; do
    n=$((n + 1))
    H ip link add "vnet$n" type veth peer name eth0 netns "$vm"
    H ip link set "vnet$n" master br0 up
    ip -n "$vm" link set eth0 up
    ip -n "$vm" addr add "198.18.1.$((n + 1))/24" dev eth0
    ip -n "$vm" route add default via 198.18.1.1
done
H ip link add up0 type veth peer name eth0 netns "$inet"
H ip addr add 198.18.2.1/24 dev up0
H ip link set up0 up
H ip route add default via 198.18.2.2
ip -n "$inet" link set eth0 up
ip -n "$inet" addr add 198.18.2.2/24 dev eth0
ip -n "$inet" route add 198.18.1.0/24 via 198.18.2.1
ip netns exec "$vm1" ping -c 1 -w 5 198.18.2.2 >/dev/null
ip netns exec "$vm2" ping -c 1 -w 5 198.18.2.2 >/dev/null
H ip -br link show master br0
H ip -br addr show dev up0

H nft -f - <<'NFT'
table inet observe {
    counter udp_packets { }
    counter tcp_packets { }
    chain forward_hook {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp counter name "udp_packets"
        meta l4proto tcp counter name "tcp_packets"
    }
}
NFT
observed() { H nft list counter inet observe "$1_packets" | sed -n 's/^[[:space:]]*packets \([0-9]*\).*/\1/p'; }

# At once: vm1 sends 1000 UDP datagrams on one flow, vm2 4 MB over one TCP connection.
traffic() {
    local port=$1 sink udp
    ip netns exec "$inet" socat -u "UDP4-RECV:$port" /dev/null & sink=$!
    ip netns exec "$inet" socat -u "TCP4-LISTEN:$((port + 1)),reuseaddr" /dev/null &
    sleep 0.3
    ip netns exec "$vm1" bash -c 'for ((i = 0; i < 1000; i++)); do echo x; done' \
        | ip netns exec "$vm1" socat -u -b 2 - "UDP4-SENDTO:198.18.2.2:$port,sourceport=4000" & udp=$!
    head -c 4000000 /dev/zero | ip netns exec "$vm2" socat -u - "TCP4:198.18.2.2:$((port + 1))"
    wait "$udp"
    sleep 0.2
    kill "$sink" 2>/dev/null || true
    wait 2>/dev/null || true
}

title "Slow path: 1000 UDP datagrams (vm1) and a 4 MB TCP transfer (vm2) to the internet"
traffic 5000
slow_udp=$(observed udp) slow_tcp=$(observed tcp)
echo "the forward hook saw: $slow_udp UDP and $slow_tcp TCP packets"

title "Switch the fast path on"
show flowctl enable br0
show nft list flowtables

title "Fast path: the same traffic again"
H nft reset counters table inet observe >/dev/null
H conntrack -F 2>/dev/null || true
traffic 6000 &
traffic_pid=$!
sleep 0.7
echo "conntrack while the flows run:"
H conntrack -L 2>/dev/null | grep OFFLOAD || echo "  (no [OFFLOAD] entry seen yet)"
wait "$traffic_pid"
fast_udp=$(observed udp) fast_tcp=$(observed tcp)
show flowctl status

title "What the forward hook (firewall chains, routing, conntrack) saw"
printf '%-12s %8s %8s\n' "" UDP TCP
printf '%-12s %8s %8s\n' "slow path" "$slow_udp" "$slow_tcp"
printf '%-12s %8s %8s\n' "fast path" "$fast_udp" "$fast_tcp"
echo "(after flowctl enable, only the first packets of each flow and TCP's FIN take the slow path)"

title "Switch it off again"
show flowctl disable br0
show nft list tables
