#!/usr/bin/env python3
"""A bulk TCP transfer for the tests that check the replies take the fast path.

    tcp-bulk.py serve ADDRESS PORT [BLOCKS]   send BLOCKS x 64 KiB (default 64) to the first client
    tcp-bulk.py fetch ADDRESS PORT            connect (retrying for 5 s), print the bytes received
"""
import socket
import sys
import time

BLOCK = 65536


def serve(address, port, blocks):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(1)
    s.settimeout(20)
    c, _ = s.accept()
    for _ in range(blocks):
        c.sendall(b"x" * BLOCK)
    c.close()


def fetch(address, port):
    deadline = time.monotonic() + 5
    while True:
        try:
            s = socket.create_connection((address, port), timeout=20)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    n = 0
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        n += len(d)
    print(n)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 64)
    elif len(sys.argv) == 4 and sys.argv[1] == "fetch":
        fetch(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
