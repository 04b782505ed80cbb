#!/usr/bin/env python3
"""Control socket under load, run INSIDE the lab kernel (Bench/control-clients.sh):
while one client holds an idle connection, N clients connect at once and
each sends `status`; prints each round's per-client latency (connect to
whole answer) p50/p99/max in ms as JSON. Reports; does not judge."""
import json, socket, sys, threading, time

path, clients, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
idle = socket.socket(socket.AF_UNIX)
idle.connect(path)
results = []
for r in range(rounds):
    latencies, failures = [], []
    gate = threading.Barrier(clients)

    def client():
        gate.wait()
        start = time.monotonic()
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(path)
            s.sendall(b'{"version":1,"command":"status"}\n')
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
            ok = json.loads(data).get("ok")
            latencies.append((time.monotonic() - start) * 1000) if ok else failures.append("not ok")
        except Exception as error:
            failures.append(str(error))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    latencies.sort()
    q = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None
    results.append({"round": r, "answered": len(latencies), "failed": len(failures),
                    "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": round(latencies[-1], 1) if latencies else None})
    time.sleep(0.5)
print(json.dumps({"clients": clients, "idle_client_held": True, "rounds": results}))
