#!/bin/sh
# Reach end to end, run INSIDE the lab kernel (scripts/lab -- Tests/lab/reach-e2e.sh).
# Every routed path of an enabled bridge is in the flowtable: a specific
# route (storage network), both nexthops of an ECMP default route, a
# policy-routing table, a bond; the replies of a TCP flow to a prefix behind
# a non-default route take the fast path (an observer chain sees only the
# first packets); under the daemon a route through a new link adds it and
# its last route's removal takes it out, and a pattern ('vbr*') enables a
# bridge created later with its ports; a CLI in another network namespace
# is not answered by this one's daemon; a bridge that only switches is
# reported as layer-2-only. Exits non-zero naming the failed step.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/Tests/lab/lib.sh"
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
work=$(mktemp -d /tmp/flowctl-reach.XXXXXX)
export FLOWCTL_STATE_DIR=$work/state FLOWCTL_CONTROL_SOCKET=$work/control.sock
log=$work/daemon.log
daemon_pid=

fail() {
    echo "FAIL [$current_step]: $*" >&2
    echo "--- flowtable: $(ft_devices | tr '\n' ' ')" >&2
    tail -n 20 "$log" >&2 2>/dev/null || true
    exit 1
}
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    for ns in vm1 stor; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
listed() { ft_devices | grep -qx "$1"; }

step "topology: vm1 on br0 (198.18.70.0/24), a storage network behind stor0 (198.18.99.0/24), the default route via up0"
sysctl -qw net.ipv4.ip_forward=1
ip link add br0 address 02:00:00:00:00:01 type bridge
ip link set br0 up
ip addr add 198.18.70.1/24 dev br0
ip netns add vm1
ip link add vnet1 type veth peer name eth0 netns vm1
ip link set vnet1 master br0
ip link set vnet1 up
ip netns exec vm1 sh -c 'ip link set lo up; ip link set eth0 up; ip addr add 198.18.70.2/24 dev eth0; ip route add default via 198.18.70.1'
ip netns add stor
ip link add stor0 type veth peer name eth0 netns stor
ip link set stor0 up
ip addr add 198.18.71.1/24 dev stor0
ip netns exec stor sh -c 'ip link set lo up; ip addr add 198.18.99.1/32 dev lo; ip link set eth0 up; ip addr add 198.18.71.2/24 dev eth0; ip route add default via 198.18.71.1'
ip route add 198.18.99.0/24 via 198.18.71.2 dev stor0
ip link add up0 type dummy
ip link set up0 up
ip addr add 198.18.72.1/24 dev up0
ip route add default via 198.18.72.2 dev up0

step "enable br0: the storage network's device is an uplink beside the default route's"
out=$("$FLOWCTL" enable br0) || fail "enable: $out"
echo "$out"
listed stor0 || fail "stor0 (route 198.18.99.0/24) is not in the flowtable"
listed up0 || fail "up0 (default route) is not in the flowtable"
echo "$out" | grep -q "stor0 .*uplink of br0 \[route " || fail "enable does not say why stor0 is there: $out"
echo "$out" | grep -q "layer 2" && fail "a routed bridge was called layer-2-only: $out"

step "the replies of a TCP flow to 198.18.99.1 take the fast path (an observer chain sees only the first)"
nft -f - <<'EOF'
table inet observe {
    chain observer {
        type filter hook forward priority 0; policy accept;
        ip saddr 198.18.99.1 tcp sport 5001 counter
    }
}
EOF
ip netns exec stor python3 "$here/Tests/lab/tcp-bulk.py" serve 198.18.99.1 5001 64 &
server=$!
got=$(ip netns exec vm1 python3 "$here/Tests/lab/tcp-bulk.py" fetch 198.18.99.1 5001) || fail "the transfer failed"
wait "$server" || true
[ "$got" -eq $((64 * 65536)) ] || fail "received $got of $((64 * 65536)) bytes"
seen=$(nft list chain inet observe observer | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
echo "forward hook saw $seen reply packets of a 4 MiB transfer"
[ "$seen" -lt 100 ] || fail "the forward hook saw $seen reply packets: the replies took the slow path"
nft delete table inet observe

step "ECMP: both nexthops of a multipath default route are uplinks"
for i in 1 2; do
    ip link add "ecmp$i" type dummy
    ip link set "ecmp$i" up
    ip addr add "198.18.7$((2 + i)).1/24" dev "ecmp$i"
done
ip route replace default nexthop via 198.18.73.2 dev ecmp1 nexthop via 198.18.74.2 dev ecmp2
"$FLOWCTL" apply >/dev/null || fail "apply"
listed ecmp1 && listed ecmp2 || fail "ECMP nexthops not both listed: $(ft_devices | tr '\n' ' ')"

step "policy routing: a default route in a table an ip rule selects"
ip link add pr0 type dummy
ip link set pr0 up
ip addr add 198.18.75.1/24 dev pr0
ip rule add from 198.18.70.0/24 lookup 100
ip route add default via 198.18.75.2 dev pr0 table 100
"$FLOWCTL" apply >/dev/null || fail "apply"
listed pr0 || fail "pr0 (table 100) is not listed"

step "a bond uplink is listed as itself"
ip link add bondx type bond
ip link add bm0 type dummy
ip link set bm0 master bondx
ip link set bondx up
ip addr add 198.18.76.1/24 dev bondx
ip route add 198.18.97.0/24 via 198.18.76.2 dev bondx
"$FLOWCTL" apply >/dev/null || fail "apply"
listed bondx || fail "bondx is not listed"
listed bm0 && fail "the bond's member bm0 is listed instead of the bond"

step "--exclude-uplink keeps devices the routes lead to out (names and patterns)"
"$FLOWCTL" enable br0 --exclude-uplink 'ecmp*' --exclude-uplink bondx >/dev/null || fail "enable --exclude-uplink"
listed ecmp1 || listed ecmp2 || listed bondx && fail "excluded uplinks are listed: $(ft_devices | tr '\n' ' ')"
listed stor0 || fail "stor0 left with the exclusions"

step "under the daemon: a route through a new link adds it, its last route's removal takes it out"
cat >"$work/flowctl.toml" <<'EOF'
[[bridge]]
name = "cfg*"
exclude_uplinks = ["up0"]
EOF
"$FLOWCTL" daemon --config "$work/flowctl.toml" --state-dir "$FLOWCTL_STATE_DIR" --control-socket "$FLOWCTL_CONTROL_SOCKET" --metrics-address "" >>"$log" 2>&1 &
daemon_pid=$!
wait_for '[ -S "$FLOWCTL_CONTROL_SOCKET" ]' 5 || fail "the daemon did not start"
ip link add nl0 type dummy
ip link set nl0 up
ip addr add 198.18.77.1/24 dev nl0
wait_for 'listed nl0' 2 || fail "nl0 (its connected route 198.18.77.0/24) did not join"
ip route add 198.18.96.0/24 via 198.18.77.2 dev nl0
ip route del 198.18.96.0/24
ip addr del 198.18.77.1/24 dev nl0
wait_for '! listed nl0' 2 || fail "nl0 stayed after its last route went away: $(ip route show dev nl0)"
out=$("$FLOWCTL" plan --state-dir "$FLOWCTL_STATE_DIR")
echo "$out" | grep -q "^# nothing to change" || fail "the daemon's table differs from the plan: $out"

step "IPv6 next hops join and leave one by one, nexthop objects count, and no notification costs a route dump"
counts() {
    "$FLOWCTL" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["daemon"]["statistics"]
print(s.get("routeReads") or 0, s["resyncs"])'
}
before=$(counts)
for i in 1 2 3; do ip link add "mp$i" type dummy; ip link set "mp$i" up; done
ip -6 route add 2001:2:99::/64 via fe80::1 dev mp1
ip -6 route append 2001:2:99::/64 via fe80::2 dev mp2
wait_for 'listed mp1 && listed mp2' 2 || fail "the next hops of an IPv6 multipath route did not both join"
# The kernel announces the deletion of one next hop with that next hop alone.
ip -6 route del 2001:2:99::/64 via fe80::1 dev mp1
wait_for '! listed mp1' 2 || fail "mp1 stayed after its next hop was deleted"
listed mp2 || fail "mp2 left with mp1's next hop"
ip nexthop add id 7 dev mp3
ip route add 198.18.95.0/24 nhid 7
wait_for 'listed mp3' 2 || fail "mp3 (nexthop object 7) did not join"
# nexthop_compat_mode (default 1): the kernel re-announces the routes that use it.
ip nexthop replace id 7 dev mp1
wait_for 'listed mp1 && ! listed mp3' 2 || fail "nexthop 7 moved to mp1, the flowtable did not follow: $(ip route show 198.18.95.0/24)"
ip -6 route del 2001:2:99::/64
wait_for '! listed mp2' 2 || fail "mp2 stayed after its route was deleted"
after=$(counts)
[ "$before" = "$after" ] || fail "route notifications cost route dumps or resyncs (route reads, resyncs: $before -> $after)"
# Deleting a nexthop object deletes its routes without a route notification
# (the kernel fact this step depends on): the nexthop's own notification
# has the routes read again.
ip monitor route >"$work/monitor" 2>&1 &
monitor=$!
sleep 0.2
ip nexthop del id 7
sleep 0.2
kill "$monitor"
[ -z "$(ip route show 198.18.95.0/24)" ] || fail "the route through nexthop 7 outlived it"
grep -q "198.18.95.0/24" "$work/monitor" && echo "note: this kernel announces the routes of a deleted nexthop"
wait_for '! listed mp1' 2 || fail "mp1 stayed after nexthop 7 (its last route) was deleted"

step "a pattern declared in the daemon's configuration file enables a bridge created later; the CLI cannot disable it"
ip link add cfg1 address 02:00:00:00:00:08 type bridge
ip link set cfg1 up
ip link add cp1 type dummy
ip link set cp1 master cfg1
ip link set cp1 up
wait_for 'listed cp1' 2 || fail "the port of cfg1 (declared pattern cfg*) did not join"
out=$("$FLOWCTL" disable 'cfg*' 2>&1) && fail "disable of a declared pattern succeeded: $out"
echo "$out" | grep -q "declared in the daemon's configuration file $work/flowctl.toml" || fail "the refusal does not name the file: $out"
"$FLOWCTL" status | grep -q "declared in $work/flowctl.toml: cfg\\*" || fail "status does not show the declared pattern: $("$FLOWCTL" status)"
ip link del cfg1
ip link del cp1
wait_for '! listed cp1' 2 || fail "cp1 stayed after its bridge was deleted"

step "a pattern enables every matching bridge, also one created later, with its ports"
out=$("$FLOWCTL" enable 'vbr*' 2>&1) || fail "enable 'vbr*': $out"
echo "$out" | grep -q "vbr\* (no bridge matches yet)" || fail "enable does not say the pattern matches nothing yet: $out"
ip link add vbr7 address 02:00:00:00:00:07 type bridge
ip link set vbr7 up
# (No address: with one, br0's traffic would be routed to vbr7's ports,
# which would then stay as br0's uplinks after the disable.)
ip link add vp7 type dummy
ip link set vp7 master vbr7
ip link set vp7 up
wait_for 'listed vp7' 2 || fail "the port of a bridge created later that matches 'vbr*' did not join"
"$FLOWCTL" status | grep -q "vbr7: enabled (pattern vbr\*)" || fail "status does not show vbr7 enabled by the pattern: $("$FLOWCTL" status)"
"$FLOWCTL" disable 'vbr*' >/dev/null || fail "disable 'vbr*'"
wait_for '! listed vp7' 2 || fail "vp7 stayed after disable 'vbr*'"
out=$("$FLOWCTL" enable vbr9 2>&1) && fail "enable of a bridge that does not exist succeeded: $out"
echo "$out" | grep -q "no such device: vbr9" || fail "an exact name that does not exist is not a one-line error: $out"

step "a CLI in another network namespace is not answered by this one's daemon"
out=$(ip netns exec stor "$FLOWCTL" enable br0 --state-dir "$work/stor-state" 2>&1) && fail "enable in netns stor succeeded: $out"
echo "$out" | grep -q "serves another network namespace" || fail "no note about the other namespace: $out"
echo "$out" | grep -q "no such device: br0" || fail "enable in stor did not work one-shot in its own namespace: $out"
out=$(ip netns exec stor "$FLOWCTL" status --state-dir "$work/stor-state" 2>&1) || fail "status in stor: $out"
echo "$out" | grep -q "serves another network namespace" || fail "no note about the other namespace: $out"
echo "$out" | grep -q "no bridge enabled" || fail "status in stor reported the daemon's host: $out"

step "a bridge that only switches is reported as layer-2-only"
ip link add br2 address 02:00:00:00:00:02 type bridge
ip link set br2 up
ip link add l2p type dummy
ip link set l2p master br2
ip link set l2p up
out=$("$FLOWCTL" enable br2 2>&1) || fail "enable br2: $out"
echo "$out" | grep -q "br2 only switches at layer 2" || fail "enable does not warn that br2 only switches: $out"
"$FLOWCTL" status --json | python3 -c '
import json, sys
bridges = {b["name"]: b for b in json.load(sys.stdin)["bridges"]}
assert bridges["br2"]["layer2Only"] is True, bridges["br2"]
assert bridges["br0"]["layer2Only"] is False, bridges["br0"]
' || fail "status --json does not report br2 as layer-2-only (and br0 as routed)"
echo "PASS reach-e2e"
