# Shared by the coherence lab test, the kernel-facts check and the coherence
# benchmark (source it from bash, inside the lab): the topology, paced flows
# (Tests/lab/udpflow.py) and the checks on them. Expects `here` (the
# repository) and FLOWCTL.
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
UDPFLOW=$here/Tests/lab/udpflow.py
work=$(mktemp -d /tmp/flowctl-coherence.XXXXXX)
state=$work/state
sock=$work/control.sock
export FLOWCTL_STATE_DIR=$state FLOWCTL_CONTROL_SOCKET=$sock
log=$work/daemon.log
current_step=start
daemon_pid=

step() { current_step=$*; echo "== $*"; }
vm1() { ip netns exec vm1 "$@"; }
vm2() { ip netns exec vm2 "$@"; }
vm3() { ip netns exec vm3 "$@"; }
ext() { ip netns exec ext "$@"; }

diagnostics() {
    echo "--- bridge vlan / fdb"; bridge vlan show || true; bridge fdb show br br0 | grep -v permanent || true
    echo "--- ruleset"; nft list ruleset || true
    echo "--- conntrack"; conntrack -L 2>&1 || true; conntrack -L -f ipv6 2>&1 || true
    for f in "$work"/r*; do [ -f "$f" ] && echo "$f: $(cat "$f")"; done
    if [ -f "$log" ]; then echo "--- daemon log (tail)"; tail -n 40 "$log"; fi
}
fail() {
    trap - EXIT
    { echo "FAIL [$current_step]: $*"; diagnostics; } >&2
    stop_all
    exit 1
}
stop_all() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
}
on_exit() {
    status=$?
    stop_all
    [ "$status" -eq 0 ] && return
    { echo "FAIL [$current_step]: a command failed (exit $status)"; diagnostics; } >&2
}
trap on_exit EXIT
[ -x "$FLOWCTL" ] || fail "no flowctl binary at $FLOWCTL"

# vm1, vm2 -(VLAN 10)- vnet1, vnet2 of br0 (vlan_filtering) br0.10 -> up0.20 -(VLAN 20)- ext;
# vm3 on vnet3. VLAN 11 exists on the ports only (a quarantine VLAN, no router).
build_topology() {
    sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    ip link add br0 address 02:00:00:00:00:01 type bridge vlan_filtering 1
    bridge vlan add dev br0 vid 10 self
    for i in 1 2 3; do
        ip netns add "vm$i"
        ip netns exec "vm$i" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
        ip link add "vnet$i" type veth peer name eth0 netns "vm$i"
        ip link set "vnet$i" master br0
        bridge vlan del dev "vnet$i" vid 1
        bridge vlan add dev "vnet$i" vid 10 pvid untagged
        bridge vlan add dev "vnet$i" vid 11
        ip link set "vnet$i" up
        ip netns exec "vm$i" ip link set lo up
    done
    ip link add link br0 name br0.10 type vlan id 10
    ip netns add ext
    ext sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    ip link add up0 type veth peer name eth0 netns ext
    ip link add link up0 name up0.20 type vlan id 20
    for d in br0 br0.10 up0 up0.20; do ip link set "$d" up; done
    ip addr add 198.18.10.1/24 dev br0.10
    ip addr add 2001:2:0:10::1/64 dev br0.10 nodad
    ip addr add 198.18.20.1/24 dev up0.20
    ip addr add 2001:2:0:20::1/64 dev up0.20 nodad
    ip route add default via 198.18.20.2
    ip -6 route add default via 2001:2:0:20::2
    # vm1 and vm2 are the VMs; vm3 takes vm1's MAC and address in (5).
    vm1 ip link set eth0 address 02:00:00:00:10:01 up
    vm1 ip addr add 198.18.10.2/24 dev eth0
    vm1 ip addr add 2001:2:0:10::2/64 dev eth0 nodad
    vm1 ip route add default via 198.18.10.1
    vm1 ip -6 route add default via 2001:2:0:10::1
    vm2 ip link set eth0 address 02:00:00:00:10:02 up
    vm2 ip addr add 198.18.10.3/24 dev eth0
    vm2 ip route add default via 198.18.10.1
    vm3 ip link set eth0 address 02:00:00:00:10:03 up
    ext ip link set lo up
    ext ip link set eth0 up
    ext ip link add link eth0 name eth0.20 type vlan id 20
    ext ip link set eth0.20 up
    ext ip addr add 198.18.20.2/24 dev eth0.20
    ext ip addr add 2001:2:0:20::2/64 dev eth0.20 nodad
    ext ip route add 198.18.10.0/24 via 198.18.20.1
    ext ip -6 route add 2001:2:0:10::/64 via 2001:2:0:20::1
    vm1 ping -c 1 -w 5 198.18.20.2 >/dev/null || fail "vm1 cannot reach ext"
    vm1 ping -6 -c 1 -w 5 2001:2:0:20::2 >/dev/null || fail "vm1 cannot reach ext over IPv6"
    vm2 ping -c 1 -w 5 198.18.20.2 >/dev/null || fail "vm2 cannot reach ext"
    mkdir -p "$state"
}

# Flows: UDP from vmX to ext:PORT (source port PORT-1000), 2000 packets/s.
#   udp_flow NS DST PORT  -> receiver status in $work/rPORT
udp_flow() {
    local ns=$1 dst=$2 port=$3
    ext python3 "$UDPFLOW" recv "$port" --status "$work/r$port" &
    local i=0; until [ -f "$work/r$port" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "receiver $port never started"; sleep 0.02; done
    ip netns exec "$ns" python3 "$UDPFLOW" send "$dst" "$port" --sport $((port - 1000)) --rate 2000 --duration 600 \
        >/dev/null 2>&1 &
}
# The other direction: ext sends to DST (a VM's address) at PORT, NS receives.
#   udp_flow_to NS DST PORT  -> receiver status in $work/rPORT
udp_flow_to() {
    local ns=$1 dst=$2 port=$3
    ip netns exec "$ns" python3 "$UDPFLOW" recv "$port" --status "$work/r$port" &
    local i=0; until [ -f "$work/r$port" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "receiver $port never started"; sleep 0.02; done
    ext python3 "$UDPFLOW" send "$dst" "$port" --sport $((port - 1000)) --rate 2000 --duration 600 >/dev/null 2>&1 &
}
received() { cut -d' ' -f1 "$work/r$1"; }
# UDP datagrams of flow PORT the network lost so far (sequence numbers
# never received, less those the slow receiver's socket overflowed).
lost() { awk '{ print $3 + 1 - $1 - $4 }' "$work/r$1"; }
# Packets of flow PORT that arrive within 0.5 s.
rate() { local a b; a=$(received "$1"); sleep 0.5; b=$(received "$1"); echo $((b - a)); }
flowing() { [ "$(rate "$1")" -gt 100 ]; }
# Nothing new arrives (what was queued in the receiver's socket is read first).
stopped() { local a; sleep 0.2; a=$(received "$1"); sleep 0.5; [ "$(received "$1")" -eq "$a" ]; }
# waits up to $2 seconds for shell condition $1
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1"; do [ $SECONDS -lt "$deadline" ] || return 1; sleep 0.05; done
}
offloaded() { { conntrack -L 2>/dev/null; conntrack -L -f ipv6 2>/dev/null; } | grep "dport=$1 " | grep -q '\[OFFLOAD\]'; }
# A paced TCP stream vm1 -> ext:PORT (8-byte messages, 2000/s), counted like a UDP flow.
tcp_flow() {
    local port=$1
    ext python3 "$UDPFLOW" recv "$port" --status "$work/r$port" --tcp 1 &
    local i=0; until [ -f "$work/r$port.listening" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "no TCP listener"; sleep 0.02; done
    vm1 python3 "$UDPFLOW" send 198.18.20.2 "$port" --sport $((port - 1000)) --rate 2000 --duration 600 --tcp 1 \
        >/dev/null 2>&1 &
    i=0; until [ -f "$work/r$port" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "TCP receiver never accepted"; sleep 0.02; done
}
guard_rule() { nft add rule inet guard f "$@"; }
guard_clear() { nft flush chain inet guard f; }
