#!/bin/bash
# Coherence end to end, run INSIDE the lab kernel:
#   scripts/lab -- Tests/lab/coherence-e2e.sh   (FLOWCTL=path/to/flowctl)
#
# vm1 and vm2 (VLAN 10, untagged ports vnet1 and vnet2 of the VLAN-filtering
# bridge br0) send paced flows out through br0.10 and the VLAN uplink up0.20
# to ext. VLAN 11 exists on the ports only: a quarantine VLAN with no router.
# Checked, each against the flow that must keep going:
#   (0) the kernel alone: an offloaded flow ignores a drop rule added later;
#   (1) one-shot `flowctl reevaluate` (no daemon) makes the rule apply to the
#       offloaded flow, the other flow keeps flowing without loss; removing
#       the rule and re-evaluating brings the flow back onto the fast path;
#       bad names fail with one line and change nothing;
# with the daemon (automatic re-evaluation):
#   (2) a drop rule in another table stops an offloaded UDP and TCP flow
#       (IPv4) and an IPv6 UDP flow within a second; the other flow keeps
#       flowing; removing the rule puts the flow back on the fast path;
#   (3) a bridge-family rule (bridge prerouting) stops an offloaded flow;
#   (4) vnet1 moved from VLAN 10 to VLAN 11 isolates vm1 at once; moving it
#       back restores the flow;
#   (5) vm1's MAC moved to another port (vnet3): traffic to vm1's address
#       follows the bridge's FDB instead of the cached port;
#   (6) a storm of 100 foreign commits (about 2 s) costs at most one
#       re-evaluation per 250 ms and leaves the flows offloaded afterwards;
#   (7) status shows the last re-evaluation; metrics count them by cause.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$here/Tests/lab/coherence-lib.sh"

step "topology: vm1, vm2 -(VLAN 10)- br0 (vlan_filtering) br0.10 -> up0.20 -(VLAN 20)- ext; vm3 on vnet3"
build_topology

step "(0) enable br0 one-shot; flows A (vm1:7000), B (vm2:7001) offloaded"
"$FLOWCTL" enable br0 >/dev/null
nft add table inet guard
nft add chain inet guard f '{ type filter hook forward priority 0; policy accept; }'
udp_flow vm1 198.18.20.2 7000
udp_flow vm2 198.18.20.2 7001
wait_for 'offloaded 7000 && offloaded 7001' 10 || fail "flows A and B were never offloaded"
flowing 7000 || fail "flow A does not flow"

step "(0) the kernel alone: a drop rule added later does not reach the offloaded flow A"
guard_rule udp dport 7000 drop
flowing 7000 || fail "flow A stopped without re-evaluation: this kernel tears offloaded flows down on a rule change by itself; the coherence design (README) must be revisited"
echo "A still arrives: $(rate 7000) packets in 0.5 s after the drop rule"

step "(1) one-shot reevaluate: bad names change nothing"
if out=$("$FLOWCTL" reevaluate nosuch0 2>&1); then fail "reevaluate nosuch0 succeeded: $out"; fi
[ "$out" = "flowctl: error: no such device: nosuch0" ] || fail "reevaluate nosuch0 said: $out"
if out=$("$FLOWCTL" reevaluate br0 --port up0 2>&1); then fail "reevaluate --port up0 succeeded: $out"; fi
case $out in "flowctl: error: up0 is not a port of an enabled bridge"*) ;; *) fail "reevaluate --port up0 said: $out" ;; esac
flowing 7000 || fail "a refused reevaluate changed the offloaded flow A"

step "(1) one-shot reevaluate br0 --port vnet1: A meets the rule, B keeps flowing without loss"
b_lost=$(lost 7001)
out=$("$FLOWCTL" reevaluate br0 --port vnet1) || fail "reevaluate exited $?: $out"
echo "$out"
case $out in *"re-evaluated (flowtable inet flowctl fastpath recreated): requested for br0, port vnet1"*) ;;
    *) fail "unexpected reevaluate output: $out" ;; esac
stopped 7000 || fail "flow A still arrives after reevaluate"
flowing 7001 || fail "flow B stopped after reevaluate"
wait_for 'offloaded 7001' 2 || fail "flow B was not offloaded again after reevaluate"
# Every datagram B sent across the re-evaluation arrived.
[ "$(lost 7001)" -eq "$b_lost" ] || fail "flow B lost $(($(lost 7001) - b_lost)) datagrams across the re-evaluation"
echo "flow B: no datagram lost across the re-evaluation ($(received 7001) received)"

step "(1) rule removed, reevaluate: A flows again and is offloaded again"
guard_clear
"$FLOWCTL" reevaluate >/dev/null
wait_for 'flowing 7000' 2 || fail "flow A does not come back after the rule was removed"
wait_for 'offloaded 7000' 2 || fail "flow A is not offloaded again"

step "daemon starts (automatic re-evaluation)"
"$FLOWCTL" daemon --state-dir "$state" --control-socket "$sock" --metrics-address 127.0.0.1:9464 \
    --log-level info >"$log" 2>&1 &
daemon_pid=$!
wait_for '[ -S "$sock" ]' 10 || fail "the daemon never published its control socket"
reevaluations() { "$FLOWCTL" status --json | jq '.daemon.statistics.reevaluations'; }
wait_for 'offloaded 7000 && offloaded 7001' 5 || fail "flows not offloaded under the daemon"

step "(2) drop rule in another table: offloaded UDP A stops within a second, B keeps flowing"
guard_rule udp dport 7000 drop
wait_for 'stopped 7000' 3 || fail "flow A still arrives 3 s after the drop rule"
flowing 7001 || fail "flow B stopped"
wait_for 'offloaded 7001' 2 || fail "flow B not offloaded again after the re-evaluation"
grep -q 're-evaluated (flowtable inet flowctl fastpath recreated): nftables commit by pid' "$log" \
    || fail "no re-evaluation line in the daemon log"
guard_clear
wait_for 'flowing 7000' 2 || fail "flow A does not come back after the rule was removed"
wait_for 'offloaded 7000' 2 || fail "flow A is not offloaded again after the rule was removed"

step "(2) TCP: an offloaded TCP stream stops at a drop rule added later"
tcp_flow 7010
wait_for 'offloaded 7010' 10 || fail "the TCP stream was never offloaded"
flowing 7010 || fail "the TCP stream does not flow"
guard_rule tcp dport 7010 drop
wait_for 'stopped 7010' 3 || fail "the TCP stream still flows after the drop rule"
flowing 7001 || fail "flow B stopped"
guard_clear
wait_for 'flowing 7010' 5 || fail "the TCP stream does not recover after the rule was removed"
wait_for 'offloaded 7010' 3 || fail "the TCP stream is not offloaded again after the rule was removed"

step "(2) IPv6: an offloaded UDP flow over IPv6 stops at a drop rule"
udp_flow vm1 2001:2:0:20::2 7020
wait_for 'offloaded 7020' 10 || fail "the IPv6 flow was never offloaded"
guard_rule meta nfproto ipv6 udp dport 7020 drop
wait_for 'stopped 7020' 3 || fail "the IPv6 flow still arrives 3 s after the drop rule"
flowing 7001 || fail "flow B stopped"
guard_clear
wait_for 'flowing 7020' 2 || fail "the IPv6 flow does not come back"

step "(3) bridge-family rule: bridge prerouting drop of vm1's UDP stops offloaded A"
nft add table bridge bguard
nft add chain bridge bguard pre '{ type filter hook prerouting priority 0; policy accept; }'
nft add rule bridge bguard pre ether saddr 02:00:00:00:10:01 udp dport 7000 drop
wait_for 'stopped 7000' 3 || fail "flow A still arrives 3 s after the bridge-family rule"
flowing 7001 || fail "flow B stopped"
nft delete table bridge bguard
wait_for 'flowing 7000' 2 || fail "flow A does not come back after the bridge rule was removed"

step "(4) VLAN: vnet1 moved from VLAN 10 to quarantine VLAN 11 isolates vm1 at once"
wait_for 'offloaded 7000' 2 || fail "A is not offloaded before the VLAN move"
bridge vlan add dev vnet1 vid 11 pvid untagged
bridge vlan del dev vnet1 vid 10
wait_for 'stopped 7000' 3 || fail "vm1's flow still arrives 3 s after vnet1 left VLAN 10"
flowing 7001 || fail "flow B (vnet2, still VLAN 10) stopped"
grep -q 'vnet1 (port of br0): VLAN' "$log" || fail "no VLAN re-evaluation line in the daemon log"
bridge vlan add dev vnet1 vid 10 pvid untagged
wait_for 'flowing 7000' 2 || fail "vm1's flow does not come back in VLAN 10"
wait_for 'offloaded 7000' 2 || fail "vm1's flow is not offloaded again in VLAN 10"

step "(4) a VLAN on the bridge itself is a bridge change, not a link change: the flowtable keeps its devices"
bridge vlan add dev br0 vid 12 self
sleep 0.5
devices=$(nft -j list flowtable inet flowctl fastpath | jq -r '.nftables[] | select(.flowtable) | .flowtable.dev | if type == "array" then .[] else . end' | sort | tr '\n' ' ')
[ "$devices" = "up0 vnet1 vnet2 vnet3 " ] || fail "after bridge vlan add ... self the flowtable lists '$devices'"
wait_for 'flowing 7001 && offloaded 7001' 3 || fail "flow B is not back on the fast path after the bridge VLAN change"

step "(5) MAC move: vm1's MAC and address show up on vnet3; traffic to it follows the FDB"
ext python3 "$UDPFLOW" send 198.18.10.2 7030 --sport 6030 --rate 2000 --duration 600 >/dev/null 2>&1 &
vm1 python3 "$UDPFLOW" recv 7030 --status "$work/r7030" &
wait_for '[ -f "$work/r7030" ]' 5 || fail "vm1's receiver never started"
wait_for 'offloaded 7030' 10 || fail "ext -> vm1 was never offloaded"
flowing 7030 || fail "ext -> vm1 does not flow"
# vm3 becomes vm1 (a VM moved to another port): same MAC and address; vm1 goes quiet.
vm1 ip link set eth0 down
vm3 ip link set eth0 down
vm3 ip link set eth0 address 02:00:00:00:10:01 up
vm3 ip addr add 198.18.10.2/24 dev eth0
ip netns exec vm3 python3 "$UDPFLOW" recv 7030 --status "$work/r7030b" &
vm3 ping -c 1 -w 2 198.18.10.1 >/dev/null || true
wait_for '[ -f "$work/r7030b" ] && [ "$(cut -d" " -f1 "$work/r7030b")" -gt 100 ]' 5 \
    || fail "after the MAC moved to vnet3, traffic to 198.18.10.2 does not reach vnet3 (it stays on the cached port)"
grep -q 'moved from vnet1 to vnet3' "$log" || fail "no MAC move re-evaluation line in the daemon log"
vm3 ip link set eth0 down
vm1 ip link set eth0 up

step "(6) storm: 100 foreign commits in about 2 s"
wait_for 'flowing 7001 && offloaded 7001' 3 || fail "B is not flowing and offloaded before the storm"
before=$(reevaluations)
# nft -i commits every line on its own: 100 commits from one process, paced over about 2 s.
storm_start=$(date +%s%N)
python3 -c '
import sys, time
for i in range(50):
    print("add table inet storm\ndelete table inet storm", flush=True)
    time.sleep(0.04)' | nft -i >/dev/null
storm_ms=$((($(date +%s%N) - storm_start) / 1000000))
after=$(reevaluations)
sleep 0.5
final=$(reevaluations)
echo "storm of 100 commits took $storm_ms ms; re-evaluations: $before before, $after right after the storm, $final 0.5 s later"
# At most one re-evaluation per 250 ms interval, and one trailing: the bound
# follows the storm's own duration (a slow lab stretches it), never time.
allowed=$((storm_ms / 250 + 2))
[ $((final - before)) -le "$allowed" ] || fail "the storm of $storm_ms ms cost $((final - before)) re-evaluations (at most one per 250 ms: $allowed)"
[ $((final - before)) -le 25 ] || fail "the storm of 100 commits cost $((final - before)) re-evaluations: they were not coalesced"
[ $((final - before)) -ge 1 ] || fail "the storm caused no re-evaluation"
wait_for 'offloaded 7001' 1 || fail "flow B is not offloaded 1 s after the storm"
flowing 7001 || fail "flow B does not flow after the storm"

step "(7) reevaluate through the daemon, status and metrics"
out=$("$FLOWCTL" reevaluate br0) || fail "reevaluate through the daemon exited $?: $out"
case $out in *"(through the daemon)"*) ;; *) fail "reevaluate did not go through the daemon: $out" ;; esac
"$FLOWCTL" status --json | jq -e '.daemon.statistics.lastReevaluation.causes | length > 0' >/dev/null \
    || fail "status --json has no last re-evaluation"
"$FLOWCTL" status | grep -q 'last re-evaluation' || fail "status does not show the last re-evaluation"
metrics=$(curl -s http://127.0.0.1:9464/metrics)
for cause in nftables bridge_port fdb requested; do
    printf '%s\n' "$metrics" | grep -q "flowctl_reevaluations_total{cause=\"$cause\"} [1-9]" \
        || fail "metric flowctl_reevaluations_total{cause=\"$cause\"} missing or 0"
done
printf '%s\n' "$metrics" | grep -q '^flowctl_reevaluated_flows_total [1-9]' || fail "flowctl_reevaluated_flows_total missing or 0"

kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=
trap - EXIT
stop_all
echo "PASS coherence-e2e"
