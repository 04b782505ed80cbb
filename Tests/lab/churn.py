#!/usr/bin/env python3
"""Seeded churn soak for `flowctl daemon`, run INSIDE the lab kernel.

Streams random link events (ports added, deleted and moved between an
enabled and a disabled bridge, ports that live for an instant, VLAN
sub-interfaces as ports, uplink flaps) through one `ip -batch -` process,
optionally `kill -9`s the daemon at random points and restarts it, and at
each checkpoint waits for the daemon's flowtable to equal the set this
script computes itself from the events it sent (its own model, not
flowctl's planner), then checks that one-shot `flowctl plan` has nothing
to change. Prints the seed first, and the daemon's statistics at the end
as JSON. Exits non-zero naming the first checkpoint that did not converge.

  churn.py --flowctl BIN [--kit BIN] --work DIR [--seed N] [--events N]
           [--ports N] [--checkpoints N] [--kills N] [--converge-timeout S] [--rate N]
"""
import argparse, json, os, random, signal, subprocess, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flowctl", required=True)
    ap.add_argument("--kit", help="flowctl-kit: read the flowtable with it (nft 1.0.6 cannot list > ~500 devices)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--ports", type=int, default=100)
    ap.add_argument("--checkpoints", type=int, default=10)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--converge-timeout", type=float, default=20)
    ap.add_argument("--rate", type=float, default=0, help="events per second (0: as fast as ip takes them)")
    ap.add_argument("--daemon-arg", action="append", default=[], help="passed to `flowctl daemon` (repeatable)")
    ap.add_argument("--max-resync-percent", type=float, default=None,
                    help="fail when full resyncs beyond daemon starts exceed this share of events")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"churn seed {seed} ({args.events} events, {args.ports} ports, {args.checkpoints} checkpoints, {args.kills} kills)", flush=True)
    rng = random.Random(seed)
    soak = Soak(args, rng)
    soak.seed = seed
    try:
        soak.run()
    finally:
        soak.stop()


class Soak:
    def __init__(self, args, rng):
        self.args, self.rng = args, rng
        self.state = os.path.join(args.work, "state")
        self.sock = os.path.join(args.work, "control.sock")
        self.log = open(os.path.join(args.work, "daemon.log"), "ab")
        self.env = dict(os.environ, FLOWCTL_CONTROL_SOCKET=self.sock, FLOWCTL_STATE_DIR=self.state)
        self.daemon = None
        self.ip = None
        # The model: what the flowtable must hold when the daemon has caught up.
        self.on_br0 = set()      # dummy ports of br0
        self.on_br1 = set()      # dummy ports of br1 (not enabled)
        self.vlan_ports = {}     # "vN.5" -> lower "vN", port of br0
        self.uplink = True       # up0 carries the default route
        self.serial = 0
        self.kills_done = 0
        self.totals = {}
        self.latencies = []

    # --- host
    def sh(self, *argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    def setup(self):
        lines = ["link add br0 address 02:00:00:00:00:01 type bridge", "link add br1 type bridge",
                 "link add up0 type dummy", "link set br0 up", "link set br1 up", "link set up0 up",
                 "address add 198.18.60.1/24 dev up0", "route add default via 198.18.60.2 dev up0"]
        for _ in range(self.args.ports):
            name = self.new_name("p")
            lines.append(f"link add {name} master br0 up type dummy")
            self.on_br0.add(name)
        subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)

    def new_name(self, prefix):
        self.serial += 1
        return f"{prefix}{self.serial}"

    def start_daemon(self):
        self.daemon = subprocess.Popen(
            [self.args.flowctl, "daemon", "--state-dir", self.state, "--control-socket", self.sock,
             "--metrics-address", "", "--log-level", os.environ.get("CHURN_LOG_LEVEL", "notice")]
            + self.args.daemon_arg, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                fail(f"the daemon did not start (exit {self.daemon.poll()})")
            time.sleep(0.02)

    def kill_daemon(self):
        self.collect()
        self.daemon.send_signal(signal.SIGKILL)
        self.daemon.wait()
        self.kills_done += 1

    def stop(self):
        if self.ip:
            self.ip.stdin.close()
            self.ip.wait()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait()

    def stream(self, line):
        if self.ip is None:
            self.ip = subprocess.Popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE, text=True,
                                       stdout=subprocess.DEVNULL, bufsize=1)
        self.ip.stdin.write(line + "\n")

    def settle_ip(self):
        if self.ip:
            self.ip.stdin.close()
            if self.ip.wait() != 0:
                fail("an ip command of the churn failed (the model and the host disagree)")
            self.ip = None

    # --- events
    # A bridge takes at most 1024 ports (BR_MAX_PORTS; more is EXFULL).
    MAX_PORTS = 1000

    def event(self):
        r = self.rng.random()
        full = len(self.on_br0) + len(self.vlan_ports) >= self.MAX_PORTS
        if full and (r < 0.25 or 0.72 <= r < 0.90):
            r = 0.3   # a deletion instead of a port more
        if r < 0.25 or not self.on_br0:
            name = self.new_name("p")
            self.stream(f"link add {name} master br0 up type dummy")
            self.on_br0.add(name)
        elif r < 0.50:
            name = self.rng.choice(sorted(self.on_br0))
            self.stream(f"link del {name}")
            self.on_br0.discard(name)
        elif r < 0.60:
            if self.on_br1 and self.rng.random() < 0.5 and not full:
                name = self.rng.choice(sorted(self.on_br1))
                self.stream(f"link set {name} master br0")
                self.on_br1.discard(name); self.on_br0.add(name)
            else:
                name = self.rng.choice(sorted(self.on_br0))
                self.stream(f"link set {name} master br1")
                self.on_br0.discard(name); self.on_br1.add(name)
        elif r < 0.72:
            # A port that lives for an instant.
            name = self.new_name("i")
            self.stream(f"link add {name} master br0 up type dummy")
            self.stream(f"link del {name}")
        elif r < 0.80:
            # An uplink flap: down flushes the IPv4 default route (without a
            # notification), up brings it back only when re-added.
            self.stream("link set up0 down")
            self.stream("link set up0 up")
            self.stream("address replace 198.18.60.1/24 dev up0")
            self.stream("route replace default via 198.18.60.2 dev up0")
        elif r < 0.90:
            if self.vlan_ports and self.rng.random() < 0.4:
                port = self.rng.choice(sorted(self.vlan_ports))
                lower = self.vlan_ports.pop(port)
                self.stream(f"link del {port}")
                self.stream(f"link del {lower}")
            else:
                lower = self.new_name("v")
                port = f"{lower}.5"
                self.stream(f"link add {lower} up type dummy")
                self.stream(f"link add link {lower} name {port} type vlan id 5")
                self.stream(f"link set {port} master br0 up")
                self.vlan_ports[port] = lower
        else:
            if self.on_br1:
                name = self.rng.choice(sorted(self.on_br1))
                self.stream(f"link del {name}")
                self.on_br1.discard(name)
            else:
                name = self.new_name("q")
                self.stream(f"link add {name} master br1 up type dummy")
                self.on_br1.add(name)

    def expected(self):
        return sorted(self.on_br0 | set(self.vlan_ports.values()) | ({"up0"} if self.uplink else set()))

    # --- checks
    def flowtable(self):
        # nft 1.0.6 cannot list a flowtable of more than a few hundred
        # devices; past that, flowctl-kit reads it (flowctl's own reader).
        if self.args.kit and len(self.expected()) > 250:
            out = subprocess.run([self.args.kit, "nft-dump", "inet", "flowctl"], capture_output=True, text=True)
            if out.returncode != 0 or not out.stdout.strip() or out.stdout.strip() == "null":
                return None
            table = json.loads(out.stdout)
            for ft in table.get("flowtables", []):
                if ft["name"] == "fastpath":
                    return sorted(ft["devices"])
            return None
        out = subprocess.run(["nft", "-j", "list", "flowtable", "inet", "flowctl", "fastpath"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return None
        for item in json.loads(out.stdout)["nftables"]:
            if "flowtable" in item:
                dev = item["flowtable"].get("dev", [])
                return sorted([dev] if isinstance(dev, str) else dev)
        return None

    def checkpoint(self, number):
        self.settle_ip()
        want = self.expected()
        deadline = time.monotonic() + self.args.converge_timeout
        have = None
        while time.monotonic() < deadline:
            have = self.flowtable()
            if have == want:
                break
            time.sleep(0.05)
        if have != want:
            have = have or []
            fail(f"checkpoint {number}: the flowtable did not converge within {self.args.converge_timeout} s: "
                 f"missing {sorted(set(want) - set(have))[:10]}, extra {sorted(set(have) - set(want))[:10]} "
                 f"({len(have)} devices, {len(want)} expected)")
        plan = subprocess.run([self.args.flowctl, "plan", "--state-dir", self.state], capture_output=True, text=True)
        if plan.returncode != 0 or not plan.stdout.startswith("# nothing to change"):
            fail(f"checkpoint {number}: one-shot plan disagrees with the daemon's table:\n{plan.stdout}{plan.stderr}")
        if self.daemon.poll() is not None:
            fail(f"checkpoint {number}: the daemon exited ({self.daemon.returncode})")
        print(f"checkpoint {number}: {len(want)} devices, converged", flush=True)

    def collect(self):
        """Adds the running daemon's counters to the soak's totals (a
        restarted daemon counts from zero)."""
        stats = self.statistics()
        for key in ("events", "batches", "resyncs", "errors", "reevaluations", "routeReads", "vanishedDevices"):
            self.totals[key] = self.totals.get(key, 0) + (stats.get(key) or 0)
        if stats.get("lastError"):
            self.totals["lastError"] = stats["lastError"]
        latency = stats.get("eventToAckMicroseconds")
        if latency:
            self.latencies.append(latency)

    def statistics(self):
        out = subprocess.run([self.args.flowctl, "status", "--json"], capture_output=True, text=True, env=self.env)
        # 3: not fully in place at this instant (churn goes on); still an answer.
        if out.returncode not in (0, 3):
            fail(f"status exited {out.returncode}: {out.stderr}")
        return json.loads(out.stdout).get("daemon", {}).get("statistics", {})

    def run(self):
        self.setup()
        self.start_daemon()
        out = subprocess.run([self.args.flowctl, "enable", "br0"], capture_output=True, text=True, env=self.env)
        if out.returncode != 0:
            fail(f"enable: {out.stderr}")
        self.checkpoint(0)
        per = max(1, self.args.events // self.args.checkpoints)
        kill_points = set(self.rng.sample(range(1, self.args.events), min(self.args.kills, self.args.events - 1)))
        sent = 0
        number = 0
        started = time.monotonic()
        while sent < self.args.events:
            if self.args.rate > 0:
                delay = started + sent / self.args.rate - time.monotonic()
                if delay > 0:
                    self.ip and self.ip.stdin.flush()
                    time.sleep(delay)
            self.event()
            sent += 1
            if sent in kill_points:
                # Mid-stream: the events keep coming while the daemon is dead and restarting.
                self.kill_daemon()
                self.start_daemon()
            if sent % per == 0 or sent == self.args.events:
                number += 1
                self.checkpoint(number)
                started = time.monotonic() - sent / self.args.rate if self.args.rate > 0 else started
        self.collect()
        # Each daemon start reads everything once; beyond that, churn must not
        # cost full resyncs (issue 9: at most 1 in 100 events).
        extra = self.totals.get("resyncs", 0) - (1 + self.kills_done)
        print(json.dumps({"seed": self.seed, "events": self.args.events, "ports": self.args.ports,
                          "rate": self.args.rate, "kills": self.kills_done, "resyncs_beyond_starts": extra,
                          "daemon_totals": self.totals, "event_to_ack_us_per_daemon": self.latencies}), flush=True)
        if self.args.max_resync_percent is not None and extra * 100 > self.args.max_resync_percent * self.args.events:
            fail(f"{extra} full resyncs beyond daemon starts in {self.args.events} events "
                 f"(more than {self.args.max_resync_percent}%)")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
