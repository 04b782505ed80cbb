#!/usr/bin/env python3
"""Control socket under load, run INSIDE the lab kernel (Bench/control-clients.sh):
while one client holds an idle connection, N clients connect at once and
each sends `status`; prints each round's per-client latency (its own
connect to its whole answer) p50/p99/max in ms as JSON. One thread drives all clients
with non-blocking sockets (no interpreter lock between them and the
daemon), answers are parsed after the clock stops. Reports; does not judge."""
import json, selectors, socket, sys, time

path, clients, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def drain(selector, state, timeout):
    for key, _ in selector.select(timeout=timeout):
        s = key.fileobj
        chunk = s.recv(1 << 16)
        if chunk:
            state[s][0] += chunk
        else:
            state[s][1] = (time.monotonic() - state[s][2]) * 1000
            selector.unregister(s)
            s.close()


idle = socket.socket(socket.AF_UNIX)
idle.connect(path)
request = b'{"version":1,"command":"status"}\n'
results = []
for r in range(rounds):
    selector = selectors.DefaultSelector()
    state = {}
    start = time.monotonic()
    for index in range(clients):
        s = socket.socket(socket.AF_UNIX)
        began = time.monotonic()
        s.connect(path)
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        s.setblocking(False)
        state[s] = [b"", None, began]
        selector.register(s, selectors.EVENT_READ)
        # Read what has arrived between connects: each client is read as
        # soon as its answer is there, not after all have connected.
        drain(selector, state, 0)
    deadline = start + 60
    while any(v[1] is None for v in state.values()) and time.monotonic() < deadline:
        drain(selector, state, 1)
    latencies, failures, sizes = [], 0, []
    for data, elapsed, _ in state.values():
        try:
            ok = elapsed is not None and json.loads(data).get("ok")
        except ValueError:
            ok = False
        if ok:
            latencies.append(elapsed)
            sizes.append(len(data))
        else:
            failures += 1
    latencies.sort()
    q = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None
    results.append({"round": r, "answered": len(latencies), "failed": failures, "p50_ms": q(0.5),
                    "p99_ms": q(0.99), "max_ms": round(latencies[-1], 1) if latencies else None,
                    "answer_bytes": max(sizes) if sizes else None})
    time.sleep(0.5)
print(json.dumps({"clients": clients, "idle_client_held": True, "rounds": results}))
