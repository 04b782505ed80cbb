#!/bin/bash
# Which host changes the kernel itself answers by tearing offloaded flows
# down, run INSIDE the lab kernel (no daemon, no re-evaluation by flowctl):
#   scripts/lab -- Tests/lab/coherence-kernel-facts.sh
#
# For each change: flow A (vm1 -> ext through br0.10 and the VLAN uplink
# up0.20, a direct path) or flow R (vm1 -> 198.18.99.1 through the plain
# uplink up1, a neighbour path) is offloaded, a drop rule for it is added
# (an offloaded flow ignores it), then the change is made. If the flow stops
# arriving, the kernel tore it down (its next packet met the rule); if it
# keeps arriving, flowctl must re-evaluate on that change. (A one-way flow
# is only really offloaded while the host has a neighbour entry for its
# sender: without one, the reverse path cannot be resolved to the port and
# the flow's entry never matches; the undo steps ping to restore it.) Prints the table
# the README's Coherence section shows, and fails when a change flowctl
# leaves to the kernel (a flowtable device going down, a conntrack entry
# deleted) is not handled by it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$here/Tests/lab/coherence-lib.sh"

step "topology, plus a plain uplink up1 to 198.18.99.0/24"
build_topology
ip link add up1 type veth peer name eth1 netns ext
ip link set up1 up
ip addr add 198.18.21.1/24 dev up1
ext ip link set eth1 up
ext ip addr add 198.18.21.2/24 dev eth1
ext ip addr add 198.18.99.1/32 dev lo
ext ip route add 198.18.10.0/24 via 198.18.20.1 2>/dev/null || true
ip route add 198.18.99.0/24 via 198.18.21.2 dev up1
vm1 ping -c 1 -w 5 198.18.99.1 >/dev/null || fail "vm1 cannot reach 198.18.99.1 through up1"
"$FLOWCTL" enable br0 --uplink up0.20 --uplink up1 >/dev/null
nft add table inet guard
nft add chain inet guard f '{ type filter hook forward priority 0; policy accept; }'

results=()
failures=()
port=7000
# probe NAME DST EXPECT(kernel|flowctl|-) COMMAND UNDO: a fresh flow to DST
# each time (from vm1 to ext, or from ext to vm1 when DST is vm1's address).
probe() {
    local name=$1 dst=$2 expect=$3 change=$4 undo=$5 who
    port=$((port + 1))
    current_step="$name"
    guard_clear
    if [ "$dst" = 198.18.10.2 ]; then udp_flow_to vm1 "$dst" "$port"; else udp_flow vm1 "$dst" "$port"; fi
    wait_for "flowing $port && offloaded $port" 10 || fail "flow $port is not flowing and offloaded before: $name"
    guard_rule udp dport "$port" drop
    flowing "$port" || fail "flow $port stopped at a drop rule alone (before: $name)"
    eval "$change"
    if wait_for "stopped $port" 2; then who="kernel (stops or follows by itself)"; else who="flowctl (the old path stays)"; fi
    guard_clear
    eval "$undo"
    pkill -f "udpflow.py (send $dst|recv) $port " || true
    results+=("$(printf '%-66s %s' "$name" "$who")")
    if [ "$expect" != - ] && [ "${who%% *}" != "$expect" ]; then failures+=("$name: expected $expect, observed $who"); fi
}

# Flows out of a VM leave through the uplink: a routed (neighbour) path the
# kernel checks against route changes. Flows toward a VM leave through the
# bridge: a direct path (cached port and MAC) it does not check.
out=198.18.20.2 in=198.18.10.2 plain=198.18.99.1
probe "conntrack entry deleted (conntrack -D)" $out kernel \
    'conntrack -D -p udp --dport $port >/dev/null 2>&1' ':'
probe "port (flowtable device) down and up, flow toward the VM" $in kernel \
    'ip link set vnet1 down; sleep 0.1; ip link set vnet1 up' 'vm1 ping -c 1 -w 2 198.18.10.1 >/dev/null || true'
probe "port moved to another VLAN, flow out of the VM" $out - \
    'bridge vlan add dev vnet1 vid 11 pvid untagged; bridge vlan del dev vnet1 vid 10' \
    'bridge vlan add dev vnet1 vid 10 pvid untagged'
probe "port moved to another VLAN, flow toward the VM" $in - \
    'bridge vlan add dev vnet1 vid 11 pvid untagged; bridge vlan del dev vnet1 vid 10' \
    'bridge vlan add dev vnet1 vid 10 pvid untagged; vm1 ping -c 1 -w 2 198.18.10.1 >/dev/null || true'
probe "port MTU changed, flow out of the VM" $out - 'ip link set vnet1 mtu 1400' 'ip link set vnet1 mtu 1500'
probe "port MTU changed, flow toward the VM" $in - 'ip link set vnet1 mtu 1400' 'ip link set vnet1 mtu 1500'
probe "VM's neighbour entry changed to another MAC, flow toward the VM" $in - \
    'ip neigh replace 198.18.10.2 lladdr 02:00:00:00:99:99 dev br0.10' \
    'ip neigh del 198.18.10.2 dev br0.10; vm1 ping -c 1 -w 2 198.18.10.1 >/dev/null || true'
probe "gateway neighbour's MAC changed, flow out of the VM (VLAN uplink)" $out - \
    'ip neigh replace 198.18.20.2 lladdr 02:00:00:00:99:99 dev up0.20' \
    'ip neigh del 198.18.20.2 dev up0.20; vm1 ping -c 1 -w 2 198.18.20.2 >/dev/null || true'
probe "route added, flow out of the VM (VLAN uplink)" $out - \
    'ip route add 198.18.98.0/24 via 198.18.21.2' 'ip route del 198.18.98.0/24'
probe "route added, flow out of the VM (plain uplink)" $plain - \
    'ip route add 198.18.98.0/24 via 198.18.21.2' 'ip route del 198.18.98.0/24'
probe "route added, flow toward the VM (bridge)" $in - \
    'ip route add 198.18.98.0/24 via 198.18.21.2' 'ip route del 198.18.98.0/24'
probe "VLAN upper of the bridge (br0.10) down and up, flow toward the VM" $in - \
    'ip link set br0.10 down; sleep 0.1; ip link set br0.10 up' \
    'ip route replace default via 198.18.20.2; vm1 ping -c 1 -w 2 198.18.10.1 >/dev/null || true'
probe "port left its bridge, flow toward the VM" $in - \
    'ip link set vnet1 nomaster' \
    'ip link set vnet1 master br0; bridge vlan del dev vnet1 vid 1; bridge vlan add dev vnet1 vid 10 pvid untagged; bridge vlan add dev vnet1 vid 11; vm1 ping -c 1 -w 2 198.18.10.1 >/dev/null || true'
probe "nftables rule added in another table (the drop rule alone)" $out flowctl ':' ':'

echo
printf '%-66s %s\n' "change (no daemon; a drop rule added after offload)" "who ends the old path"
printf '%s\n' "${results[@]}"
[ ${#failures[@]} -eq 0 ] || fail "kernel behaviour differs from what flowctl relies on: ${failures[*]}"
trap - EXIT
stop_all
echo "PASS coherence-kernel-facts"
