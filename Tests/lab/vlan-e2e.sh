#!/bin/sh
# End to end in the lab kernel (scripts/lab -- Tests/lab/vlan-e2e.sh):
# a VM sends tagged VLAN 10 traffic into a VLAN-filtering bridge, routed
# out through a VLAN 20 uplink. An observer chain counts what the forward
# hook sees. After `flowctl enable br0` established flows skip it (only
# their first packets are seen) and conntrack shows them [OFFLOAD];
# `flowctl disable br0` removes everything flowctl added.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
state=$(mktemp -d /tmp/flowctl-state.XXXXXX)
export FLOWCTL_STATE_DIR=$state FLOWCTL_CONTROL_SOCKET=$state/none.sock
N=2000

fail() {
    echo "FAIL: $*" >&2
    nft list ruleset >&2 || true
    conntrack -L >&2 2>/dev/null || true
    exit 1
}
step() { echo "== $*"; }
vm() { ip netns exec vm1 "$@"; }
ext() { ip netns exec ext "$@"; }

step "topology"
ip netns add vm1
ip netns add ext
sysctl -qw net.ipv4.ip_forward=1
ip link add br0 type bridge vlan_filtering 1
ip link add vnet1 type veth peer name eth0 netns vm1
ip link set vnet1 master br0
bridge vlan add dev vnet1 vid 10
bridge vlan add dev br0 vid 10 self
ip link add link br0 name br0.10 type vlan id 10
ip link add up0 type veth peer name eth0 netns ext
ip link add link up0 name up0.20 type vlan id 20
for d in br0 vnet1 br0.10 up0 up0.20; do ip link set "$d" up; done
ip addr add 198.18.10.1/24 dev br0.10
ip addr add 198.18.20.1/24 dev up0.20
ip route add default via 198.18.20.2 dev up0.20
vm ip link set lo up
vm ip link set eth0 up
vm ip link add link eth0 name eth0.10 type vlan id 10
vm ip link set eth0.10 up
vm ip addr add 198.18.10.2/24 dev eth0.10
vm ip route add default via 198.18.10.1
ext ip link set lo up
ext ip link set eth0 up
ext ip link add link eth0 name eth0.20 type vlan id 20
ext ip link set eth0.20 up
ext ip addr add 198.18.20.2/24 dev eth0.20
ext ip route add 198.18.10.0/24 via 198.18.20.1
vm ping -c 1 -W 2 198.18.20.2 >/dev/null || fail "no connectivity vm1 -> ext through the VLANs"

nft -f - <<'NFT'
table inet observe {
    chain seen {
        type filter hook forward priority 0; policy accept;
        meta l4proto udp counter name "seen_udp"
        meta l4proto tcp counter name "seen_tcp"
    }
    counter seen_udp { }
    counter seen_tcp { }
}
NFT
observed() { nft list counter inet observe "seen_$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
reset_counters() { nft reset counters table inet observe >/dev/null; }

# UDP: N datagrams on one flow (fixed source port), then a TCP transfer.
udp_flow() {
    port=$1
    ext socat -u UDP-RECV:$port /dev/null &
    sink=$!
    sleep 0.3
    vm sh -c "i=0; while [ \$i -lt $N ]; do echo x; i=\$((i+1)); done" \
        | vm socat -u -b 2 - UDP-SENDTO:198.18.20.2:$port,sourceport=4001
    sleep 0.2
    kill $sink 2>/dev/null || true
}
tcp_flow() {
    port=$1
    ext socat -u TCP-LISTEN:$port,reuseaddr /dev/null &
    sink=$!
    sleep 0.3
    vm sh -c "head -c 4000000 /dev/zero | socat -u - TCP:198.18.20.2:$port"
    wait $sink 2>/dev/null || true
}

step "before enable: the forward hook sees every packet"
reset_counters
udp_flow 5001
tcp_flow 5002
before_udp=$(observed udp); before_tcp=$(observed tcp)
echo "observer: udp $before_udp, tcp $before_tcp packets"
[ "$before_udp" -ge $((N * 9 / 10)) ] || fail "slow path saw only $before_udp of $N UDP packets"
[ "$before_tcp" -ge 100 ] || fail "slow path saw only $before_tcp TCP packets"

step "flowctl enable br0"
"$FLOWCTL" enable br0 || fail "flowctl enable br0"
devices=$(nft list flowtable inet flowctl fastpath | sed -n 's/.*devices = { \(.*\) }.*/\1/p' | tr -d ' ')
[ "$devices" = "up0,vnet1" ] || fail "flowtable devices are '$devices', expected the real devices up0,vnet1"
"$FLOWCTL" status

step "after enable: established flows bypass the forward hook"
conntrack -F 2>/dev/null || true
reset_counters
udp_flow 5003 &
flows=$!
sleep 0.5
conntrack -L 2>/dev/null | grep -q 'OFFLOAD' || { wait $flows; fail "no conntrack entry is [OFFLOAD] while the UDP flow runs"; }
offloaded=$("$FLOWCTL" status --json | sed -n 's/.*"offloadedFlows" : \([0-9]*\).*/\1/p')
[ "${offloaded:-0}" -ge 1 ] || { wait $flows; fail "flowctl status reports $offloaded offloaded flows"; }
wait $flows
tcp_flow 5004
after_udp=$(observed udp); after_tcp=$(observed tcp)
echo "observer: udp $after_udp, tcp $after_tcp packets (of $N UDP datagrams and a 4 MB TCP transfer)"
[ "$after_udp" -le 10 ] || fail "forward hook still saw $after_udp UDP packets of an established flow"
[ "$after_tcp" -le 20 ] || fail "forward hook still saw $after_tcp TCP packets of an established flow"

step "flowctl disable br0: everything flowctl added is gone, the rest untouched"
"$FLOWCTL" disable br0 || fail "flowctl disable br0"
tables=$(nft list tables | tr '\n' ' ')
[ "$tables" = "table inet observe " ] || fail "tables after disable: $tables"
echo "PASS vlan-e2e"
