#!/usr/bin/env python3
"""Coherence benchmark driver; Bench/coherence.sh runs it inside the lab, in
the `ext` namespace (where the flows arrive), with the daemon running.

Flow A (vm1 -> ext:7000, 2000 datagrams/s, sequence numbers) is received
here with kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME).
Commands for the host run in PID 1's network namespace through long-lived
`nft -i` and `bridge -batch -` processes, so a change costs no process
start. Reported (JSON on stdout; it reports, it does not judge):

- foreign commit -> first dropped packet of A (a drop rule in another
  table), per trial: the last arrival before the gap minus the moment the
  rule was written to nft, plus half a packet interval;
- rtnetlink event -> first dropped packet (vnet1 moved to VLAN 11);
- after the rule is removed (or the VLAN restored): how many of A's packets
  took the slow path before A was offloaded again (an observer counter on
  the forward hook; at 2000 packets/s each packet is 0.5 ms);
- a storm of 100 commits in about 2 s: re-evaluations it cost and the share
  of 10 other flows (vm2 -> ext:7100-7109) offloaded 1 s after it ended.
"""
import json
import socket
import struct
import subprocess
import sys
import threading
import time

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
FLOWCTL = sys.argv[2] if len(sys.argv) > 2 else "flowctl"
INTERVAL_NS = 500_000  # 2000 packets/s
HOST = ["nsenter", "-t", "1", "-n"]
# Linux's value (asm-generic); Python 3.11's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)

arrivals = []  # (kernel timestamp ns, seq)
lock = threading.Lock()


def receive():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", 7000))
    while True:
        data, ancillary, _, _ = s.recvmsg(64, 64)
        stamp = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                stamp = seconds * 1_000_000_000 + nanoseconds
        if stamp is not None and len(data) >= 8:
            with lock:
                arrivals.append((stamp, struct.unpack("!Q", data[:8])[0]))


class Shell:
    """A long-lived command reading one command per line (nft -i, bridge -batch -)."""

    def __init__(self, argv):
        self.process = subprocess.Popen(HOST + argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        text=True, bufsize=1)

    def run(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()


def host(*argv):
    return subprocess.run(HOST + list(argv), capture_output=True, text=True).stdout


def offloaded(port_prefix):
    return [line for line in host("conntrack", "-L").splitlines()
            if f"dport={port_prefix}" in line.split("[UNREPLIED]")[0] and "[OFFLOAD]" in line]


def wait(condition, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def last_arrival_before_gap(since_ns):
    """The arrival after which A stopped (no packet for 200 ms)."""
    with lock:
        after = [a for a in arrivals if a[0] >= since_ns]
    last = None
    for stamp, _ in after:
        if last is not None and stamp - last > 200_000_000:
            break
        last = stamp
    return last


def percentiles(values):
    ordered = sorted(values)
    if not ordered:
        return None
    pick = lambda p: ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
    return {"count": len(ordered), "p50": pick(50), "p90": pick(90), "p99": pick(99), "max": ordered[-1]}


def slow_path_packets():
    """A's packets seen by the forward hook so far (observer counter)."""
    listing = json.loads(host("nft", "-j", "list", "counter", "inet", "observe", "a7000"))
    return next(item["counter"]["packets"] for item in listing["nftables"] if "counter" in item)


def stop_latency(change, undo):
    """Milliseconds from `change` to A's first dropped packet; then undo:
    whether A came back, and its packets on the slow path until offloaded again."""
    if not wait(lambda: offloaded("7000 "), 5):
        return None
    start = time.time_ns()
    change()
    time.sleep(0.8)
    last = last_arrival_before_gap(start)
    stopped_ms = None if last is None else (last - start + INTERVAL_NS // 2) / 1e6
    before = slow_path_packets()
    undone = time.time_ns()
    undo()
    back = wait(lambda: last_arrival_before_gap(undone) is not None, 2)
    time.sleep(1)
    return stopped_ms, back, slow_path_packets() - before


def reevaluations():
    status = json.loads(host(FLOWCTL, "status", "--json"))
    return status["daemon"]["statistics"]["reevaluations"]


def main():
    threading.Thread(target=receive, daemon=True).start()
    nft = Shell(["nft", "-i"])
    bridge = Shell(["bridge", "-batch", "-"])
    time.sleep(1)
    results = {"trials": TRIALS}

    commit, commit_back, commit_offload = [], 0, []
    for _ in range(TRIALS):
        r = stop_latency(lambda: nft.run("add rule inet guard f udp dport 7000 drop"),
                         lambda: nft.run("flush chain inet guard f"))
        if r is None:
            continue
        if r[0] is not None:
            commit.append(r[0])
        commit_back += r[1]
        if r[2] is not None:
            commit_offload.append(r[2])
    results["commitToFirstDropMilliseconds"] = percentiles(commit)
    results["commitTrialsWhereTheFlowStopped"] = len(commit)
    results["flowBackAfterRuleRemoved"] = commit_back
    results["slowPathPacketsAfterRuleRemoved"] = percentiles(commit_offload)

    vlan, vlan_offload = [], []
    for _ in range(max(1, TRIALS // 2)):
        r = stop_latency(lambda: bridge.run("vlan add dev vnet1 vid 11 pvid untagged") or bridge.run("vlan del dev vnet1 vid 10"),
                         lambda: bridge.run("vlan add dev vnet1 vid 10 pvid untagged"))
        if r is None:
            continue
        if r[0] is not None:
            vlan.append(r[0])
        if r[2] is not None:
            vlan_offload.append(r[2])
    results["vlanMoveToFirstDropMilliseconds"] = percentiles(vlan)
    results["slowPathPacketsAfterVlanRestored"] = percentiles(vlan_offload)

    wait(lambda: len(offloaded("710")) >= 10, 5)
    before = reevaluations()
    start = time.time()
    for i in range(50):
        nft.run("add table inet storm")
        nft.run("delete table inet storm")
        time.sleep(0.04)
    storm_seconds = time.time() - start
    time.sleep(1)
    results["storm"] = {
        "commits": 100, "seconds": round(storm_seconds, 2),
        "reevaluations": reevaluations() - before,
        "otherFlowsOffloadedOneSecondAfter": len(offloaded("710")), "otherFlows": 10,
    }
    print(json.dumps(results, indent=2))


main()
