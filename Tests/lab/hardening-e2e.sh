#!/bin/sh
# Hardening end to end, run INSIDE the lab kernel (scripts/lab -- Tests/lab/hardening-e2e.sh).
# No client can stall the daemon, one writer per network namespace, read
# commands never write, a VLAN port is listed under its real device, and
# the daemon's flowtable is what one-shot `plan` computes after each step.
# Exits non-zero naming the failed step.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/Tests/lab/lib.sh"
daemon_workspace hardening
helpers=

cleanup() {
    for p in $helpers; do kill "$p" 2>/dev/null || true; done
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    ip netns del hother 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The flowtable's devices on one line: "d1 p0 up0 ".
ft_list() { ft_devices | tr '\n' ' '; }
# The daemon's kernel state equals what one-shot `plan` computes for the same host.
agrees_with_plan() {
    out=$("$FLOWCTL" plan --state-dir "$state" 2>&1) || fail "plan failed: $out"
    echo "$out" | grep -q "^# nothing to change" || fail "$1: the daemon's table differs from the plan: $out"
}

step "topology: br0 with port p0, uplink up0 with the default route; the daemon enables br0"
ip link add br0 address 02:00:00:00:00:01 type bridge
ip link add up0 type dummy
ip link add p0 type dummy
ip link set p0 master br0
for d in br0 up0 p0; do ip link set "$d" up; done
ip addr add 198.18.40.1/24 dev up0
ip route add default via 198.18.40.2 dev up0
"$FLOWCTL" daemon --state-dir "$state" --control-socket "$sock" --metrics-address 127.0.0.1:9464 --log-level info >>"$log" 2>&1 &
daemon_pid=$!
wait_for '[ -S "$sock" ]' 5 || fail "daemon did not create its control socket"
"$FLOWCTL" enable br0 | grep -q "through the daemon" || fail "enable did not go through the daemon"
[ "$(ft_list)" = "p0 up0 " ] || fail "flowtable after enable: $(ft_list)"
agrees_with_plan "after enable"

step "a VLAN sub-interface as a bridge port is listed as its real device (d1, not d1.5)"
ip link add d1 type dummy
ip link set d1 up
ip link add link d1 name d1.5 type vlan id 5
ip link set d1.5 master br0
ip link set d1.5 up
wait_for '[ "$(ft_list)" = "d1 p0 up0 " ]' 2 || fail "flowtable with the VLAN port d1.5: '$(ft_list)' (want d1 p0 up0)"
agrees_with_plan "after the VLAN port"

step "an idle and a trickling control client delay neither hotplug nor other clients"
python3 - "$sock" >"$work/slow-clients" 2>&1 <<'EOF' &
import socket, sys, time
idle = socket.socket(socket.AF_UNIX); idle.connect(sys.argv[1])
trickle = socket.socket(socket.AF_UNIX); trickle.connect(sys.argv[1])
request = b'{"version":1,"command":"status"}\n'
# One byte every 0.4 s: the whole request would take 13 s.
for byte in request[:8]:
    try:
        trickle.send(bytes([byte]))
    except OSError:
        break
    time.sleep(0.4)
trickle.settimeout(5); idle.settimeout(5)
print("trickle:", trickle.recv(4096).decode().strip())
print("idle:", idle.recv(4096).decode().strip())
EOF
helpers="$helpers $!"
slow=$!
sleep 0.3
ip link add hp0 master br0 up type dummy
wait_for '[ "$(ft_list)" = "d1 hp0 p0 up0 " ]' 1 || fail "a port added while slow clients are connected took over 1 s: '$(ft_list)'"
"$FLOWCTL" status | grep -q "daemon: pid" || fail "status was not answered while slow clients are connected"
wait "$slow" || true
grep -q '^trickle: .*no whole request within' "$work/slow-clients" || fail "the trickling client was not cut off at its deadline: $(cat "$work/slow-clients")"
grep -q '^idle: .*no whole request within' "$work/slow-clients" || fail "the idle client was not cut off at its deadline: $(cat "$work/slow-clients")"
kill -0 "$daemon_pid" || fail "the daemon died"

step "200 concurrent status clients are all answered while an idle client holds a connection"
python3 - "$sock" <<'EOF' || fail "concurrent clients"
import json, socket, sys, threading
idle = socket.socket(socket.AF_UNIX); idle.connect(sys.argv[1])
answers = []
def client():
    s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])
    s.sendall(b'{"version":1,"command":"status"}\n'); s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    answers.append(json.loads(data).get("ok"))
threads = [threading.Thread(target=client) for _ in range(200)]
for t in threads: t.start()
for t in threads: t.join()
ok = sum(1 for a in answers if a)
print(f"{ok} of 200 answered ok")
sys.exit(0 if ok == 200 else 1)
EOF

step "an idle metrics client does not block the scrape"
python3 -c 'import socket, time
s = socket.create_connection(("127.0.0.1", 9464)); time.sleep(4)' &
helpers="$helpers $!"
sleep 0.2
curl -sf --max-time 2 http://127.0.0.1:9464/metrics | grep -q '^flowctl_flowtable_devices' || fail "metrics not served while an idle client is connected"

step "a second daemon in the same network namespace is refused, naming the first"
if out=$("$FLOWCTL" daemon --state-dir "$work/state2" --control-socket "$work/control2.sock" --metrics-address "" 2>&1); then
    fail "a second daemon started: $out"
fi
echo "$out" | grep -q "another flowctl daemon runs in this network namespace (pid $daemon_pid" || fail "the refusal does not name the first daemon: $out"
[ ! -e "$work/state2/intent.json" ] || fail "the refused daemon wrote its state"
agrees_with_plan "after the refused second daemon"

step "a daemon in another network namespace is its own host"
ip netns add hother
ip netns exec hother "$FLOWCTL" daemon --state-dir "$work/state3" --control-socket "$work/control3.sock" --metrics-address "" >"$work/other.log" 2>&1 &
other=$!
helpers="$helpers $other"
wait_for '[ -S "$work/control3.sock" ]' 5 || fail "the daemon of another namespace did not start: $(cat "$work/other.log")"
kill "$other"; wait "$other" 2>/dev/null || true

step "a one-shot write with another socket goes through the daemon (one writer)"
out=$("$FLOWCTL" enable br0 --uplink up0 --control-socket "$work/nothing.sock" 2>&1) || fail "enable: $out"
echo "$out" | grep -q "the daemon of this network namespace answered" || fail "the one-shot did not go through the daemon: $out"
grep -q '"up0"' "$state/intent.json" || fail "the daemon's intent does not have the uplink"
agrees_with_plan "after the forwarded enable"

step "the daemon refuses what the CLI refuses: the bridge as its own uplink"
out=$(python3 - "$sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"version":1,"command":"enable","bridge":"br0","uplinks":["br0"]}\n'); s.shutdown(socket.SHUT_WR)
print(s.recv(65536).decode())
EOF
)
echo "$out" | grep -q "uplink br0 is the bridge itself" || fail "the daemon took the bridge as its uplink: $out"

step "the host is as the daemon left it"
kill -0 "$daemon_pid" || fail "the daemon died"
agrees_with_plan "at the end"
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
daemon_pid=

step "read commands never write (one-shot): status with a mistyped state dir, a dangling intent.json"
before=$(nft -a list table inet flowctl)
rc=0; out=$("$FLOWCTL" status --state-dir /tmp/typo 2>&1) || rc=$?
[ "$rc" -eq 3 ] || fail "status with a mistyped state dir (drift: not in place) exited $rc, not 3: $out"
[ "$(nft -a list table inet flowctl)" = "$before" ] || fail "status with a mistyped state dir changed the table: $out"
[ ! -e /tmp/typo ] || fail "status created the mistyped state dir"
echo "$out" | grep -q "state directory /tmp/typo does not exist" || fail "status does not say the state dir is missing: $out"
echo "$out" | grep -q "NOT in sync" || fail "status does not list the pending changes: $out"
mkdir -p "$work/dangling"
ln -s "$work/dangling/nowhere" "$work/dangling/intent.json"
if out=$("$FLOWCTL" status --state-dir "$work/dangling" 2>&1); then fail "status with a dangling intent.json succeeded: $out"; fi
echo "$out" | grep -q "a symbolic link to nothing" || fail "the dangling intent.json is not named: $out"
[ "$(nft -a list table inet flowctl)" = "$before" ] || fail "reading a dangling intent.json changed the table"
"$FLOWCTL" status | grep -q "NOT in sync" && fail "status with the real state dir finds drift"
"$FLOWCTL" status >/dev/null || fail "status with the real state dir exited $? (in place: 0)"
echo "PASS hardening-e2e"
