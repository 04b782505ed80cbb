#!/bin/bash
# Hardware offload that the kernel refuses, end to end in the lab2 kernel:
#   scripts/lab -- Tests/lab/hw-offload-e2e.sh   (FLOWCTL=path/to/flowctl)
#
# netdevsim NICs offer hw-tc-offload but refuse a flowtable with `flags
# offload` (EOPNOTSUPP). br0's port nsport0 and the uplink nsup0 are two of
# them, both with hw-tc-offload switched on (ethtool), so the planner asks
# for hardware:
#   (a) `enable --hw-offload on`: exit 1, one error line naming both
#       devices, no `inet flowctl` table, nothing stored;
#   (b) `enable --hw-offload auto`: a software flowtable in the same
#       command, and the output says why (the kernel refused it); status
#       and plan say the same and change nothing;
#   (c) under the daemon, enable through the control socket falls back the
#       same way; the port leaving and coming back and a new veth port are
#       followed without recreating the flowtable (same handle) and without
#       trying hardware again (one fallback in the daemon's statistics and
#       log); an explicit enable tries again; `--hw-offload on` through the
#       daemon fails and leaves the table and the intent as they were.
# Exits non-zero naming the failed step. (No `cmd | grep -q` here: with
# pipefail, grep leaving early can fail the pipeline through SIGPIPE.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FLOWCTL=${FLOWCTL:-$here/.build/debug/flowctl}
work=$(mktemp -d /tmp/flowctl-hw.XXXXXX)
state=$work/state
sock=$work/control.sock
log=$work/daemon.log
# A private state dir; the control socket only exists while our daemon runs.
export FLOWCTL_STATE_DIR=$state FLOWCTL_CONTROL_SOCKET=$sock
nsim_id=41
daemon_pid=
current_step=start

step() { current_step=$*; echo "== $*"; }
diagnostics() {
    echo "--- links"; ip -br link || true
    echo "--- ruleset"; nft -a list ruleset || true
    echo "--- daemon log (tail)"; tail -n 40 "$log" 2>/dev/null || true
}
fail() {
    trap - EXIT
    { echo "FAIL [$current_step]: $*"; diagnostics; } >&2
    cleanup
    exit 1
}
cleanup() {
    if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    daemon_pid=
    nft delete table inet flowctl 2>/dev/null || true
    ip link del vnet0 2>/dev/null || true
    ip link del br0 2>/dev/null || true
    [ -d "/sys/bus/netdevsim/devices/netdevsim$nsim_id" ] && echo "$nsim_id" >/sys/bus/netdevsim/del_device 2>/dev/null || true
    rm -rf "$work"
}
on_exit() {
    status=$?
    [ "$status" -eq 0 ] && { cleanup; return; }
    { echo "FAIL [$current_step]: a command failed (exit $status)"; diagnostics; } >&2
    cleanup
}
trap on_exit EXIT

# Waits up to $2 seconds (0.05 s steps) for the shell condition $1.
wait_for() {
    local n i=0
    n=$(awk "BEGIN { print int($2 / 0.05) }")
    while ! eval "$1"; do
        i=$((i + 1)); [ $i -le "$n" ] || return 1
        sleep 0.05
    done
}
# Flowtable devices of flowctl's table on one line, sorted.
ft_devices() {
    nft list flowtable inet flowctl fastpath 2>/dev/null | sed -n 's/.*devices = { \(.*\) }.*/\1/p' \
        | tr ',' '\n' | tr -d ' ' | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'
}
# The kernel's handle of flowctl's flowtable: a new one means it was recreated.
ft_handle() {
    nft -a list flowtable inet flowctl fastpath 2>/dev/null | sed -n 's/.*flowtable fastpath { # handle \([0-9]*\).*/\1/p'
}
fallbacks() { "$FLOWCTL" status --json | jq -r '.daemon.statistics.hardwareFallbacks'; }

[ -x "$FLOWCTL" ] || fail "no flowctl binary at $FLOWCTL (swift build, or pass FLOWCTL=...)"
command -v ethtool >/dev/null || fail "ethtool is missing on the host (apt-get install ethtool): it switches hw-tc-offload on"
command -v jq >/dev/null || fail "jq is missing on the host (apt-get install jq)"
[ -w /sys/bus/netdevsim/new_device ] || fail "this kernel has no netdevsim (the lab2 kernel has it: see scripts/lab)"

step "topology: netdevsim NICs nsport0 (port of br0) and nsup0 (uplink), hw-tc-offload on"
echo "$nsim_id 2" >/sys/bus/netdevsim/new_device
net=/sys/bus/netdevsim/devices/netdevsim$nsim_id/net
wait_for '[ "$(ls "$net" 2>/dev/null | wc -l)" -eq 2 ]' 5 || fail "netdevsim$nsim_id did not get two ports"
set -- $(ls "$net" | sort)
ip link set "$1" name nsport0
ip link set "$2" name nsup0
for dev in nsport0 nsup0; do
    ethtool -K "$dev" hw-tc-offload on
    features=$(ethtool -k "$dev")
    grep -qx 'hw-tc-offload: on' <<<"$features" || fail "$dev: hw-tc-offload did not switch on: $(grep hw-tc <<<"$features")"
done
ip link add br0 address 02:00:00:00:00:41 type bridge
ip link set nsport0 master br0
for dev in br0 nsport0 nsup0; do ip link set "$dev" up; done
ip addr add 198.18.41.1/24 dev nsup0

step "(a) --hw-offload on: one error line naming the devices, nothing left"
if "$FLOWCTL" enable br0 --uplink nsup0 --hw-offload on >"$work/out" 2>"$work/err"; then
    fail "enable --hw-offload on succeeded: $(cat "$work/out")"
fi
cat "$work/err"
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "expected one error line, got: $(cat "$work/err")"
grep -q '^flowctl: error: ' "$work/err" || fail "not a flowctl error line: $(cat "$work/err")"
grep -q 'nsport0' "$work/err" && grep -q 'nsup0' "$work/err" || fail "the error does not name both devices: $(cat "$work/err")"
if nft list table inet flowctl >/dev/null 2>&1; then fail "a table inet flowctl was left behind"; fi
[ "$("$FLOWCTL" status --json | jq -c '.enabled')" = '[]' ] || fail "br0 was stored as enabled"

step "(b) --hw-offload auto: a software flowtable in the same command, and why"
"$FLOWCTL" enable br0 --uplink nsup0 --hw-offload auto >"$work/out" 2>"$work/err" \
    || fail "enable --hw-offload auto failed: $(cat "$work/err")"
cat "$work/out"
reason="the kernel refused hardware offload on nsport0, nsup0: Operation not supported"
grep -qF "br0: fast path on, software ($reason)" "$work/out" || fail "enable does not say it fell back to software and why"
[ "$(ft_devices)" = "nsport0 nsup0" ] || fail "flowtable devices: $(ft_devices)"
grep -q 'flags offload' <<<"$(nft list flowtable inet flowctl fastpath)" && fail "the flowtable has flags offload"
handle=$(ft_handle)
[ -n "$handle" ] || fail "no handle for the flowtable"

step "(b) status and plan say why, and change nothing"
"$FLOWCTL" status >"$work/out"
cat "$work/out"
grep -qF "br0: enabled, software fast path ($reason)" "$work/out" || fail "status does not give the reason"
if grep -q 're-applied' "$work/out"; then fail "status changed the kernel"; fi
"$FLOWCTL" plan >"$work/out"
grep -qF "# nothing to change" "$work/out" || fail "plan wants changes: $(cat "$work/out")"
grep -qF "# offload: software ($reason)" "$work/out" || fail "plan does not give the reason: $(cat "$work/out")"
[ "$(ft_handle)" = "$handle" ] || fail "status or plan recreated the flowtable"
"$FLOWCTL" disable br0 >/dev/null
if nft list table inet flowctl >/dev/null 2>&1; then fail "disable left the table"; fi

step "(c) daemon: enable through the control socket falls back"
# Re-evaluations (Coherence) recreate the flowtable by design; this test
# counts hardware attempts and recreations from hotplug alone.
"$FLOWCTL" daemon --state-dir "$state" --control-socket "$sock" --metrics-address "" \
    --no-automatic-reevaluation --log-level info >>"$log" 2>&1 &
daemon_pid=$!
wait_for '[ -S "$sock" ]' 5 || fail "the daemon did not create its control socket"
"$FLOWCTL" enable br0 --uplink nsup0 --hw-offload auto >"$work/out" 2>"$work/err" \
    || fail "enable through the daemon failed: $(cat "$work/err")"
cat "$work/out"
grep -qF "br0: fast path on (through the daemon), software ($reason)" "$work/out" \
    || fail "enable through the daemon does not say it fell back to software and why"
[ "$(ft_devices)" = "nsport0 nsup0" ] || fail "flowtable devices: $(ft_devices)"
grep -q 'flags offload' <<<"$(nft list flowtable inet flowctl fastpath)" && fail "the flowtable has flags offload"
handle=$(ft_handle)
[ "$(fallbacks)" = 1 ] || fail "daemon fallbacks after enable: $(fallbacks)"
"$FLOWCTL" status >"$work/out" 2>&1 || true
grep -qF "br0: enabled, software fast path ($reason)" "$work/out" || fail "daemon status does not give the reason: $(cat "$work/out")"

step "(c) hotplug: the port leaves and comes back, a veth port comes and goes"
ip link set nsport0 nomaster
wait_for '[ "$(ft_devices)" = "nsup0" ]' 2 || fail "nsport0 did not leave the flowtable: $(ft_devices)"
ip link set nsport0 master br0
wait_for '[ "$(ft_devices)" = "nsport0 nsup0" ]' 2 || fail "nsport0 did not come back: $(ft_devices)"
ip link add vnet0 type veth peer name vnet0p
ip link set vnet0 master br0
ip link set vnet0 up
wait_for '[ "$(ft_devices)" = "nsport0 nsup0 vnet0" ]' 2 || fail "vnet0 did not join: $(ft_devices)"
ip link del vnet0
wait_for '[ "$(ft_devices)" = "nsport0 nsup0" ]' 2 || fail "vnet0 did not leave: $(ft_devices)"
[ "$(ft_handle)" = "$handle" ] || fail "the flowtable was recreated (handle $handle -> $(ft_handle))"
[ "$(fallbacks)" = 1 ] || fail "the daemon tried hardware again: $(fallbacks) fallbacks"
[ "$(grep -c 'refused hardware offload' "$log")" -eq 1 ] || fail "refusals logged: $(grep 'refused hardware offload' "$log")"
"$FLOWCTL" status >"$work/out" 2>&1 || true
grep -qF "br0: enabled, software fast path ($reason)" "$work/out" || fail "the reason was lost: $(cat "$work/out")"

step "(c) an explicit enable tries hardware again, still without recreating the flowtable"
"$FLOWCTL" enable br0 --uplink nsup0 --hw-offload auto >"$work/out" 2>"$work/err" \
    || fail "second enable failed: $(cat "$work/err")"
grep -qF "software ($reason)" "$work/out" || fail "second enable: $(cat "$work/out")"
[ "$(fallbacks)" = 2 ] || fail "the explicit enable did not try hardware: $(fallbacks) fallbacks"
[ "$(ft_handle)" = "$handle" ] || fail "the refused attempt recreated the flowtable"

step "(c) --hw-offload on through the daemon fails and leaves everything as it was"
if "$FLOWCTL" enable br0 --uplink nsup0 --hw-offload on >"$work/out" 2>"$work/err"; then
    fail "enable --hw-offload on through the daemon succeeded: $(cat "$work/out")"
fi
cat "$work/err"
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "expected one error line, got: $(cat "$work/err")"
grep -q 'nsport0' "$work/err" && grep -q 'nsup0' "$work/err" || fail "the error does not name both devices"
[ "$(ft_handle)" = "$handle" ] && [ "$(ft_devices)" = "nsport0 nsup0" ] || fail "the refused batch changed the flowtable"
[ "$("$FLOWCTL" status --json | jq -r '.bridges[0].hwOffload')" = auto ] || fail "the refused enable was stored"
kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon died"

echo "PASS hw-offload-e2e"
