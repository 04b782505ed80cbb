#!/bin/sh
# The packaged binary (scripts/package, the Swift runtime linked in
# statically) in the lab kernel: an enable / status / disable round with
# traffic-free checks, run INSIDE the lab:
#   scripts/lab -- env FLOWCTL=/path/to/extracted/usr/sbin/flowctl Tests/lab/package-e2e.sh
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/Tests/lab/lib.sh"
: "${FLOWCTL:?FLOWCTL must name the packaged binary}"
work=$(mktemp -d /tmp/flowctl-package.XXXXXX)
export FLOWCTL_STATE_DIR=$work/state FLOWCTL_CONTROL_SOCKET=$work/none
log=/dev/null
trap 'rm -rf "$work"' EXIT

step "the packaged binary runs: $("$FLOWCTL" --version)"
"$FLOWCTL" doctor >"$work/doctor" || fail "doctor found something missing: $(cat "$work/doctor")"

step "enable: a bridge with a port and an uplink"
ip link add br0 address 02:00:00:00:00:01 type bridge
ip link set br0 up
ip addr add 198.18.80.1/24 dev br0
ip link add vnet0 type veth peer name g0
ip link set vnet0 master br0
ip link set vnet0 up
ip link add up0 type dummy
ip link set up0 up
ip addr add 198.18.81.1/24 dev up0
ip route add default via 198.18.81.2 dev up0
out=$("$FLOWCTL" enable br0) || fail "enable: $out"
[ "$(ft_devices | tr '\n' ' ')" = "up0 vnet0 " ] || fail "flowtable devices: $(ft_devices | tr '\n' ' ')"

step "status: in place (exit 0)"
out=$("$FLOWCTL" status) || fail "status exited $?: $out"
echo "$out" | grep -q "br0: enabled, software fast path" || fail "status: $out"

step "disable: the ruleset is empty again"
"$FLOWCTL" disable br0 >/dev/null || fail "disable"
[ -z "$(nft list ruleset)" ] || fail "disable left: $(nft list ruleset)"
echo "PASS package-e2e"
