#!/usr/bin/env python3
"""TCP bulk transfer with a digest, for tun_offload.sh.

  tcp_offload.py recv ADDR PORT READY_FILE  -> prints "<bytes> <sha256>" after EOF
  tcp_offload.py send ADDR PORT BYTES SEED  -> prints "<bytes> <sha256>" of what it sent

The data is a deterministic pseudo-random stream (SHA-256 in counter mode
from SEED), sent in chunks of varying size so that the sender's kernel
builds super-packets of all sizes.
"""
import hashlib
import socket
import sys


def stream(seed, total):
    sent = 0
    ctr = 0
    sizes = (65536, 1, 1447, 30000, 4096, 99, 131072)
    while sent < total:
        want = min(sizes[ctr % len(sizes)], total - sent)
        block = bytearray()
        while len(block) < want:
            block += hashlib.sha256(b"%s:%d:%d" % (seed.encode(), ctr, len(block))).digest()
        ctr += 1
        sent += want
        yield bytes(block[:want])


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    h = hashlib.sha256()
    n = 0
    if mode == "recv":
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        open(sys.argv[4], "w").close()
        s.settimeout(60)
        c, _ = s.accept()
        c.settimeout(60)
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        c.close()
    else:
        total, seed = int(sys.argv[4]), sys.argv[5]
        c = socket.create_connection((addr, port), timeout=60)
        for b in stream(seed, total):
            c.sendall(b)
            h.update(b)
            n += len(b)
        c.shutdown(socket.SHUT_WR)
        c.settimeout(60)
        while c.recv(4096):
            pass
        c.close()
    print(n, h.hexdigest())


if __name__ == "__main__":
    main()
