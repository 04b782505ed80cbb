#!/bin/bash
# End to end in the lab kernel:  scripts/lab -- Tests/lab/vlan-e2e.sh
# (FLOWCTL=path/to/flowctl, default .build/debug/flowctl).
#
# A VM (netns vm1) sends tagged VLAN 10 traffic into br0, a VLAN-filtering
# bridge; br0.10 routes it out of the VLAN 20 uplink up0.20 to netns ext.
# An observer chain in its own table counts what the forward hook sees.
#   (a) before enable: the observer sees every packet;
#   (b) after `flowctl enable br0`: the flowtable lists the real devices
#       (vnet1 and up0), conntrack shows the flows [OFFLOAD], and the
#       observer sees only the first packets of each flow;
#   (c) after `flowctl disable br0`: flowctl's table is gone, the observer
#       table untouched, traffic still flows.
# IPv4 (198.18.0.0/15) and IPv6 (2001:2::/48), UDP and TCP.
# Exits non-zero naming the failed step, with diagnostics on stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
state=$(mktemp -d /tmp/flowctl-state.XXXXXX)
# A private state dir, and never a running daemon's control socket.
export FLOWCTL_STATE_DIR=$state FLOWCTL_CONTROL_SOCKET=$state/no-daemon.sock
N=1000            # UDP datagrams per flow
TCP_CHUNKS=40     # 64 KiB each, paced so the flow is alive while conntrack is read
current_step="start"

step() { current_step=$*; echo "== $*"; }
vm() { ip netns exec vm1 "$@"; }
ext() { ip netns exec ext "$@"; }

diagnostics() {
    echo "--- links and addresses (root, vm1, ext)"
    ip -br addr || true; vm ip -br addr || true; ext ip -br addr || true
    echo "--- routes"
    ip route || true; ip -6 route || true
    echo "--- bridge vlans"
    bridge vlan show || true
    echo "--- ruleset"
    nft list ruleset || true
    echo "--- conntrack"
    conntrack -L 2>&1 || true
    echo "--- /proc/net/stat/nf_flowtable"
    cat /proc/net/stat/nf_flowtable 2>&1 || true
}
fail() {
    trap - EXIT
    { echo "FAIL [$current_step]: $*"; diagnostics; } >&2
    exit 1
}
on_exit() {
    status=$?
    [ "$status" -eq 0 ] && return
    { echo "FAIL [$current_step]: a command failed (exit $status)"; diagnostics; } >&2
}
trap on_exit EXIT

[ -x "$FLOWCTL" ] || fail "no flowctl binary at $FLOWCTL (swift build, or pass FLOWCTL=...)"

step "topology: vm1 -(VLAN 10)- vnet1/br0 (vlan_filtering) br0.10 -> up0.20 -(VLAN 20)- ext"
ip netns add vm1
ip netns add ext
# No duplicate address detection: addresses (link-local too) usable at once.
sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
vm sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
ext sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip link add br0 type bridge vlan_filtering 1
ip link add vnet1 type veth peer name vm1-eth0 netns vm1
ip link set vnet1 master br0
bridge vlan add dev vnet1 vid 10
bridge vlan add dev br0 vid 10 self
ip link add link br0 name br0.10 type vlan id 10
ip link add up0 type veth peer name ext-eth0 netns ext
ip link add link up0 name up0.20 type vlan id 20
for d in br0 vnet1 br0.10 up0 up0.20; do ip link set "$d" up; done
ip addr add 198.18.10.1/24 dev br0.10
ip addr add 2001:2:0:10::1/64 dev br0.10 nodad
ip addr add 198.18.20.1/24 dev up0.20
ip addr add 2001:2:0:20::1/64 dev up0.20 nodad
ip route add default via 198.18.20.2 dev up0.20
ip -6 route add default via 2001:2:0:20::2 dev up0.20

vm ip link set lo up
vm ip link set vm1-eth0 up
vm ip link add link vm1-eth0 name vm1-eth0.10 type vlan id 10
vm ip link set vm1-eth0.10 up
vm ip addr add 198.18.10.2/24 dev vm1-eth0.10
vm ip addr add 2001:2:0:10::2/64 dev vm1-eth0.10 nodad
vm ip route add default via 198.18.10.1
vm ip -6 route add default via 2001:2:0:10::1

ext ip link set lo up
ext ip link set ext-eth0 up
ext ip link add link ext-eth0 name ext-eth0.20 type vlan id 20
ext ip link set ext-eth0.20 up
ext ip addr add 198.18.20.2/24 dev ext-eth0.20
ext ip addr add 2001:2:0:20::2/64 dev ext-eth0.20 nodad
ext ip route add 198.18.10.0/24 via 198.18.20.1
ext ip -6 route add 2001:2:0:10::/64 via 2001:2:0:20::1

step "connectivity vm1 -> ext through both VLANs (IPv4 and IPv6)"
vm ping -c 1 -w 5 198.18.20.2 >/dev/null || fail "vm1 cannot ping 198.18.20.2 (ext) through br0.10 and up0.20"
vm ping -6 -c 1 -w 5 2001:2:0:20::2 >/dev/null || fail "vm1 cannot ping 2001:2:0:20::2 (ext) through br0.10 and up0.20"

step "observer table: counts what the forward hook sees, per family and protocol"
nft -f - <<'NFT'
table inet observe {
    counter udp4 { }
    counter tcp4 { }
    counter udp6 { }
    counter tcp6 { }
    chain observer {
        type filter hook forward priority 0; policy accept;
        meta nfproto ipv4 meta l4proto udp counter name "udp4"
        meta nfproto ipv4 meta l4proto tcp counter name "tcp4"
        meta nfproto ipv6 meta l4proto udp counter name "udp6"
        meta nfproto ipv6 meta l4proto tcp counter name "tcp6"
    }
}
NFT
observed() { nft list counter inet observe "$1" | sed -n 's/^[[:space:]]*packets \([0-9]*\).*/\1/p'; }
reset_counters() { nft reset counters table inet observe >/dev/null; }

# Waits until ext listens on $1 $2 (tcp|udp, port).
wait_listen() {
    local i=0
    until ext ss -ln --"$1" | grep "[]:]$2 " >/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || fail "ext never listened on $1 port $2"
        sleep 0.05
    done
}
# One UDP flow (fixed source port) of N 2-byte datagrams: udp_flow 4|6 PORT
# (IPv4 flows use ports 500x, IPv6 flows 600x: no v4/v6 listener clashes)
udp_flow() {
    local fam=$1 port=$2 dst sink
    if [ "$fam" = 4 ]; then dst=198.18.20.2; else dst="[2001:2:0:20::2]"; fi
    ext socat -u "UDP$fam-RECV:$port" /dev/null &
    sink=$!
    wait_listen udp "$port"
    vm bash -c "for ((i = 0; i < $N; i++)); do echo x; done" \
        | vm socat -u -b 2 - "UDP$fam-SENDTO:$dst:$port,sourceport=$((port - 1000))"
    sleep 0.2
    kill "$sink" 2>/dev/null || true
    wait "$sink" 2>/dev/null || true
}
# One TCP connection carrying TCP_CHUNKS x 64 KiB, paced: tcp_flow 4|6 PORT
tcp_flow() {
    local fam=$1 port=$2 dst sink
    if [ "$fam" = 4 ]; then dst=198.18.20.2; else dst="[2001:2:0:20::2]"; fi
    ext socat -u "TCP$fam-LISTEN:$port,reuseaddr" /dev/null &
    sink=$!
    wait_listen tcp "$port"
    vm bash -c "for ((i = 0; i < $TCP_CHUNKS; i++)); do head -c 65536 /dev/zero; sleep 0.02; done" \
        | vm socat -u - "TCP$fam:$dst:$port"
    wait "$sink" || fail "the TCP sink on port $port failed"
}

step "(a) before enable: the forward hook sees every packet"
reset_counters
udp_flow 4 5001
tcp_flow 4 5002
udp_flow 6 6001
tcp_flow 6 6002
for c in udp4 tcp4 udp6 tcp6; do eval "before_$c=\$(observed $c)"; done
echo "observer: udp4 $before_udp4, tcp4 $before_tcp4, udp6 $before_udp6, tcp6 $before_tcp6 packets" \
    "(of $N datagrams per UDP flow, $((TCP_CHUNKS * 64))k bytes per TCP flow)"
for c in udp4 udp6; do
    v=before_$c
    [ "${!v}" -ge $((N * 9 / 10)) ] || fail "without flowctl the forward hook saw only ${!v} of $N $c packets"
done
for c in tcp4 tcp6; do
    v=before_$c
    [ "${!v}" -ge 100 ] || fail "without flowctl the forward hook saw only ${!v} $c packets of a $((TCP_CHUNKS * 64))k transfer"
done

step "(b) flowctl enable br0"
"$FLOWCTL" enable br0 || fail "flowctl enable br0 exited $?"

step "(b) the flowtable lists exactly the real devices: vnet1 (bridge port) and up0 (below the VLAN uplink)"
nft list flowtables
json=$(nft -j list flowtable inet flowctl fastpath) || fail "no flowtable inet flowctl fastpath after enable"
devices=$(printf '%s' "$json" | jq -r '.nftables[] | select(.flowtable) | .flowtable.dev | if type == "array" then .[] else . end' \
    | sort | tr '\n' ' ')
[ "$devices" = "up0 vnet1 " ] || fail "flowtable devices are '$devices', expected exactly 'up0 vnet1 '"
"$FLOWCTL" status || fail "flowctl status exited $?"

step "(b) after enable: flows are [OFFLOAD] and skip the forward hook after their first packets"
conntrack -F 2>/dev/null || true
reset_counters
udp_flow 4 5003 & f1=$!
tcp_flow 4 5004 & f2=$!
udp_flow 6 6003 & f3=$!
tcp_flow 6 6004 & f4=$!
# Every flow must show up offloaded while it runs (checked until all were
# seen, for at most 30 s).
flows="udp/198.18/5003 tcp/198.18/5004 udp/2001:2/6003 tcp/2001:2/6004"
seen=
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
    ct=$(conntrack -L 2>/dev/null; conntrack -L -f ipv6 2>/dev/null)
    for flow in $flows; do
        case " $seen " in *" $flow "*) continue ;; esac
        IFS=/ read -r proto net port <<<"$flow"
        if line=$(printf '%s\n' "$ct" | grep "^$proto " | grep "src=$net" | grep "dport=$port " | grep '\[OFFLOAD\]'); then
            seen="$seen $flow"
            printf '%s\n' "${line%%$'\n'*}"
        fi
    done
    missing=
    for flow in $flows; do case " $seen " in *" $flow "*) ;; *) missing="$missing $flow" ;; esac; done
    [ -z "$missing" ] && break
    sleep 0.05
done
[ -z "$missing" ] || { wait; fail "flows never [OFFLOAD] in conntrack while running:$missing"; }
offloaded=$("$FLOWCTL" status --json | sed -n 's/.*"offloadedFlows" *: *\([0-9]*\).*/\1/p' | head -n 1)
[ "${offloaded:-0}" -ge 1 ] || { wait; fail "flowctl status --json reports '${offloaded:-nothing}' offloaded flows while 4 run"; }
echo "flowctl status --json: $offloaded offloaded flows"
for f in $f1 $f2 $f3 $f4; do wait "$f" || fail "a traffic flow failed after enable"; done
for c in udp4 tcp4 udp6 tcp6; do eval "after_$c=\$(observed $c)"; done
echo "observer: udp4 $after_udp4, tcp4 $after_tcp4, udp6 $after_udp6, tcp6 $after_tcp6 packets" \
    "(of $N datagrams per UDP flow, $((TCP_CHUNKS * 64))k bytes per TCP flow)"
for c in udp4 udp6; do
    v=after_$c
    [ "${!v}" -le 10 ] || fail "the forward hook still saw ${!v} of $N $c packets of an offloaded flow"
done
for c in tcp4 tcp6; do
    v=after_$c
    [ "${!v}" -le 20 ] || fail "the forward hook still saw ${!v} $c packets of an offloaded flow (handshake and FIN only expected)"
done

step "(c) flowctl disable br0: flowctl's table is gone, the observer table untouched"
"$FLOWCTL" disable br0 || fail "flowctl disable br0 exited $?"
tables=$(nft list tables | tr '\n' ' ')
[ "$tables" = "table inet observe " ] || fail "tables after disable: '$tables', expected only 'table inet observe'"
if nft list flowtables | grep flowtable >/dev/null; then fail "a flowtable is left after disable: $(nft list flowtables)"; fi
nft list chain inet observe observer | grep 'counter name "udp4"' >/dev/null || fail "the observer chain was changed by disable"

step "(c) after disable: traffic flows, on the slow path again"
reset_counters
udp_flow 4 5005
after_off=$(observed udp4)
[ "$after_off" -ge $((N * 9 / 10)) ] || fail "after disable the forward hook saw only $after_off of $N UDP packets"
echo "observer: udp4 $after_off packets"
trap - EXIT
echo "PASS vlan-e2e"
