#!/bin/sh
# Rule content end to end, run INSIDE the lab kernel
# (scripts/lab -- Tests/lab/rule-content-e2e.sh). A rule of flowctl's
# replaced under its own comment (`nft replace rule ... drop comment
# "flowctl/v2 iifname tcp"`) blocks forwarding; the daemon, `apply`,
# `plan` and `enable` must see it by its content and put flowctl's rule
# back. Exits non-zero naming the failed step.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/Tests/lab/lib.sh"
daemon_workspace rule-content

# Its diagnostics: flowctl's chain with handles, not the whole ruleset.
fail() {
    echo "FAIL [$current_step]: $*" >&2
    echo "--- daemon log (tail)" >&2
    tail -n 40 "$log" >&2 2>/dev/null || true
    echo "--- flowctl's chain" >&2
    nft -a list chain inet flowctl forward >&2 || true
    exit 1
}
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    ip netns del vm1 2>/dev/null || true
    ip netns del ext 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
[ -x "$FLOWCTL" ] || fail "no flowctl binary at $FLOWCTL"


ids="flowctl/v2 iifname tcp
flowctl/v2 iifname udp
flowctl/v2 oifname tcp
flowctl/v2 oifname udp"
chain() { nft -a list chain inet flowctl forward; }
rule_line() { chain | grep -F "comment \"$1\""; }
handle_of() { rule_line "$1" | sed -n 's/.*# handle \([0-9]*\)$/\1/p'; }
# Every rule of flowctl's chain is flowctl's own, with the content flowctl
# gives it: four rules, each with its whole statement list.
intact() {
    [ "$(chain | grep -c 'comment "flowctl/')" -eq 4 ] || return 1
    [ "$(chain | grep -v '^[[:space:]]*chain ' | grep -c '# handle')" -eq 4 ] || return 1
    echo "$ids" | while read -r id; do
        dir=${id#flowctl/v2 }; proto=${dir#* }; dir=${dir% *}
        rule_line "$id" | grep -Eq "^[[:space:]]*$dir @offload_ifaces ct direction original meta l4proto $proto counter packets [0-9]+ bytes [0-9]+ flow add @fastpath comment \"$id\" # handle [0-9]+\$" \
            || return 1
    done
}
# tamper ID STATEMENTS...: what `nft replace rule` does to the rule with that
# comment; the comment stays.
tamper() {
    id=$1; shift
    h=$(handle_of "$id")
    [ -n "$h" ] || fail "no rule with comment \"$id\""
    nft replace rule inet flowctl forward handle "$h" "$@" comment "\"$id\""
}
vm1() { ip netns exec vm1 "$@"; }
ext() { ip netns exec ext "$@"; }
forwards() { vm1 ping -c 1 -W 1 198.18.61.2 >/dev/null 2>&1 && vm1 ping -6 -c 1 -W 1 2001:2:0:61::2 >/dev/null 2>&1; }

step "topology: vm1 -- vnet1 of br0 (198.18.60.1) | up0 (198.18.61.1) -- ext, default route via ext"
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
ip link add br0 address 02:00:00:00:00:01 type bridge
ip netns add vm1
ip netns add ext
for ns in vm1 ext; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0; done
ip link add vnet1 type veth peer name eth0 netns vm1
ip link set vnet1 master br0
ip link add up0 type veth peer name eth0 netns ext
for d in br0 vnet1 up0; do ip link set "$d" up; done
ip addr add 198.18.60.1/24 dev br0
ip addr add 2001:2:0:60::1/64 dev br0 nodad
ip addr add 198.18.61.1/24 dev up0
ip addr add 2001:2:0:61::1/64 dev up0 nodad
ip route add default via 198.18.61.2
ip -6 route add default via 2001:2:0:61::2
vm1 ip link set lo up
vm1 ip link set eth0 up
vm1 ip addr add 198.18.60.2/24 dev eth0
vm1 ip addr add 2001:2:0:60::2/64 dev eth0 nodad
vm1 ip route add default via 198.18.60.1
vm1 ip -6 route add default via 2001:2:0:60::1
ext ip link set lo up
ext ip link set eth0 up
ext ip addr add 198.18.61.2/24 dev eth0
ext ip addr add 2001:2:0:61::2/64 dev eth0 nodad
ext ip route add 198.18.60.0/24 via 198.18.61.1
ext ip -6 route add 2001:2:0:60::/64 via 2001:2:0:61::1
wait_for forwards 5 || fail "vm1 cannot reach ext before flowctl"

step "daemon starts (no automatic re-evaluation), enable br0 through it"
# An automatic re-evaluation recreates the flowtable after any foreign
# commit, and with it flowctl's rules: it would hide whether the reconcile
# itself sees the tampered rule. The repair must not depend on it (it can be
# switched off, and it is rate-limited).
"$FLOWCTL" daemon --state-dir "$state" --control-socket "$sock" --metrics-address "" --log-level info \
    --no-automatic-reevaluation >>"$log" 2>&1 &
daemon_pid=$!
wait_for '[ -S "$sock" ]' 5 || fail "daemon did not create its control socket"
"$FLOWCTL" enable br0 | grep -q "through the daemon" || fail "enable did not go through the daemon"
intact || fail "flowctl's rules after enable are not what flowctl sends"
forwards || fail "vm1 cannot reach ext with flowctl's rules"

step "the kernel's rules read back equal to flowctl's (no difference, nothing rebuilt)"
plan=$(FLOWCTL_CONTROL_SOCKET=$work/none.sock "$FLOWCTL" plan)
echo "$plan" | grep -q "^# nothing to change" || fail "plan finds differences in an untouched table: $plan"
sleep 0.3
grep -q "repaired" "$log" && fail "the daemon repaired an untouched table: $(cat "$log")"

step "the daemon restores a rule replaced under its own comment"
batches_before=$(grep -c "rule added" "$log" || true)
tamper "flowctl/v2 iifname tcp" iifname @offload_ifaces drop
wait_for intact 3 || fail "the daemon did not restore rule \"flowctl/v2 iifname tcp\" within 3 s: $(rule_line 'flowctl/v2 iifname tcp')"
wait_for 'grep -q "rule \"flowctl/v2 iifname tcp\" (handle [0-9]*) repaired" "$log"' 1 || fail "the repair was not logged"
grep "repaired" "$log" | grep -q "immediate reg 0 drop" || fail "the log does not say what the kernel had: $(grep repaired "$log")"
forwards || fail "vm1 cannot reach ext after the repair"

step "and does it once: its own rules are not rebuilt again"
sleep 0.5
[ "$(grep -c "repaired" "$log")" -eq 1 ] || fail "repaired more than once: $(grep repaired "$log")"
[ "$(grep -c "rule added" "$log")" -eq $((batches_before + 4)) ] || fail "rules rebuilt again: $(grep 'rule added' "$log")"
intact || fail "rules changed after the repair"

step "daemon stops (SIGTERM); the one-shot commands see rule content too"
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
export FLOWCTL_CONTROL_SOCKET=$work/none.sock
intact || fail "rules changed when the daemon stopped"

step "tampered rule: forwarding blocked, plan shows the difference"
tamper "flowctl/v2 iifname tcp" iifname @offload_ifaces drop
h=$(handle_of "flowctl/v2 iifname tcp")
rule_line "flowctl/v2 iifname tcp" | grep -q "drop comment" || fail "nft replace rule did not change the rule"
intact && fail "the tampered table looks intact (the test proves nothing)"
forwards && fail "the tampered rule does not block forwarding (the test proves nothing)"
plan=$("$FLOWCTL" plan)
echo "$plan" | grep -q "^delete rule inet flowctl forward handle $h\$" || fail "plan does not delete the tampered rule $h: $plan"
intact && fail "plan changed the kernel"

step "status reports the tampered rule and changes nothing; apply repairs it"
rc=0; out=$("$FLOWCTL" status) || rc=$?
[ "$rc" -eq 3 ] || fail "status with a tampered rule exited $rc, not 3 (not in place): $out"
echo "$out"
echo "$out" | grep -q "NOT in sync" || fail "status does not report the drift: $out"
echo "$out" | grep -q "rule \"flowctl/v2 iifname tcp\" (handle $h) to be repaired" || fail "status does not name the tampered rule: $out"
intact && fail "status changed the kernel (read commands never write)"
out=$("$FLOWCTL" apply) || fail "apply failed: $out"
echo "$out"
echo "$out" | grep -q "rule \"flowctl/v2 iifname tcp\" (handle $h) repaired" || fail "apply does not name the repaired rule: $out"
intact || fail "apply did not restore the rule"
forwards || fail "vm1 cannot reach ext after apply repaired the rule"

step "enable again repairs a subtler change (the v1 rule under the v2 comment)"
tamper "flowctl/v2 oifname udp" oifname @offload_ifaces meta l4proto udp counter flow add @fastpath
h=$(handle_of "flowctl/v2 oifname udp")
intact && fail "the tampered table looks intact (the test proves nothing)"
out=$("$FLOWCTL" enable br0) || fail "enable failed: $out"
echo "$out"
echo "$out" | grep -q "rule \"flowctl/v2 oifname udp\" (handle $h) repaired" || fail "enable does not name the repaired rule: $out"
intact || fail "enable did not restore the rule"

step "enable once more sends nothing"
out=$("$FLOWCTL" enable br0) || fail "enable failed: $out"
echo "$out" | grep -q "nothing sent" || fail "enable of an intact table sent changes: $out"

step "a TCP flow from vm1 is offloaded by the restored rule"
ext python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.61.2", 7100)); s.listen(1); s.settimeout(10)
c, _ = s.accept(); c.settimeout(5)
while c.recv(65536): pass
' &
sink=$!
sleep 0.3
vm1 python3 -c '
import socket, time
s = socket.create_connection(("198.18.61.2", 7100), timeout=5)
for _ in range(300):
    s.sendall(b"x" * 1000); time.sleep(0.01)
s.close()
' &
sender=$!
wait_for 'conntrack -L 2>/dev/null | grep "dport=7100 " | grep -q "\[OFFLOAD\]"' 2 || fail "the TCP flow is not offloaded: $(conntrack -L 2>&1 | grep 7100)"
wait "$sender" || fail "the TCP sender failed"
wait "$sink" || fail "the TCP receiver failed"
echo "PASS rule-content-e2e"
