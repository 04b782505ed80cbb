#!/usr/bin/env python3
"""A paced UDP (or TCP) flow with a live receiver, for the coherence tests and bench.

  udpflow.py send DST PORT --sport S --rate PPS --duration SECONDS [--tcp 1] [--flows N]
  udpflow.py recv PORT --status FILE [--times FILE] [--duration SECONDS] [--tcp 1]

With --flows N the sender spreads the rate over N flows (source port S+i
to PORT+i, UDP). With --tcp 1 one connection carries the 8-byte messages and the receiver
counts messages the same way.

The sender sends one 8-byte sequence number per datagram from a fixed
source port (one conntrack entry). The receiver keeps FILE current (every
10 ms, atomically): "received last_arrival_ns highest_seq overflows" with CLOCK_MONOTONIC
nanoseconds, which every process of one kernel shares, so a test can
compare an arrival with the moment it changed something; UDP adds the
highest sequence number seen and the socket's overflow count, so
"highest + 1 - received - overflows" counts datagrams the network lost. With --times it
writes every arrival time (ns, one per line) when it ends (SIGTERM or
--duration).
"""
import os
import signal
import socket
import struct
import sys
import time


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send(args):
    dst, port = args[0], int(args[1])
    opts = dict(zip(args[2::2], args[3::2]))
    sport = int(opts.get("--sport", "0"))
    rate = float(opts.get("--rate", "2000"))
    duration = float(opts.get("--duration", "10"))
    tcp = opts.get("--tcp") == "1"
    flows = int(opts.get("--flows", "1"))
    any_address = "::" if family(dst) == socket.AF_INET6 else "0.0.0.0"
    sockets = []
    for i in range(flows):
        one = socket.socket(family(dst), socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        one.bind((any_address, sport + i if sport else 0))
        sockets.append(one)
    s = sockets[0]
    if tcp:
        s.connect((dst, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    interval = 1.0 / rate
    start = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        if now - start >= duration:
            break
        due = start + seq * interval
        if due > now:
            time.sleep(due - now)
        try:
            if tcp:
                s.send(struct.pack("!Q", seq))
            else:
                sockets[seq % flows].sendto(struct.pack("!Q", seq), (dst, port + seq % flows))
        except OSError:
            pass  # dropped or in flux: the receiver sees the gap
        seq += 1
    print(seq)


def recv(args):
    port = int(args[0])
    opts = dict(zip(args[1::2], args[2::2]))
    status = opts["--status"]
    times_file = opts.get("--times")
    duration = float(opts.get("--duration", "86400"))
    tcp = opts.get("--tcp") == "1"
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The socket's own overflow count comes with every datagram
    # (SO_RXQ_OVFL, Linux's value 40): a slow reader is not network loss.
    if not tcp:
        s.setsockopt(socket.SOL_SOCKET, 40, 1)
    s.bind(("::", port))
    if tcp:
        s.listen(1)
        ready = status + ".listening"
        open(ready, "w").close()
        s, _ = s.accept()
    s.settimeout(0.01)
    received, last, times, highest, overflows = 0, 0, [], -1, 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + duration
    next_write = 0.0

    def write_status():
        tmp = status + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{received} {last} {highest} {overflows}\n")
        os.rename(tmp, status)

    write_status()
    while not stop and time.monotonic() < end:
        try:
            if tcp:
                data = s.recv(65536)
                if not data:
                    break
            else:
                data, ancillary, _, _ = s.recvmsg(64, 64)
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == 40 and len(value) >= 4:
                        overflows = struct.unpack("I", value[:4])[0]
            last = time.monotonic_ns()
            received += len(data) // 8 if tcp else 1
            if not tcp and len(data) >= 8:
                highest = max(highest, struct.unpack("!Q", data[:8])[0])
            if times_file:
                times.append(last)
        except socket.timeout:
            pass
        if time.monotonic() >= next_write:
            write_status()
            next_write = time.monotonic() + 0.01
    write_status()
    if times_file:
        with open(times_file, "w") as f:
            f.write("".join(f"{t}\n" for t in times))


if __name__ == "__main__":
    {"send": send, "recv": recv}[sys.argv[1]](sys.argv[2:])
