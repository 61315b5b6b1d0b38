#!/usr/bin/env python3
"""Socket helpers of host_netbsd.sh.

  pfkey-add PFKEY_SOCKET SATYPE SPI ENC_ALG ENC_HEX AUTH_ALG AUTH_HEX
      One SADB_ADD (Linux dialect: the daemon's) straight to the daemon's
      PF_KEY socket, 198.51.100.1 -> 198.51.100.2, keys given in hex ("-"
      for none); prints the reply's errno (0 = added).
  serve ADDR PORT POLICY READY_FILE
      A UDP echo server bound to ADDR:PORT; POLICY as below. Writes
      READY_FILE once bound and answers every datagram until killed.
  ask ADDR PORT PEER PEER_PORT POLICY
      A UDP socket bound to ADDR:PORT (PORT 0: any) sends one datagram to
      PEER:PEER_PORT and waits 1 s for the answer: exit 0 if it came, 1 if
      not (a send that fails counts as no answer).

POLICY is a comma-separated list of per-socket policies set with
setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY) before bind, run under
libipsecif_pfkey_preload.so: "in-bypass", "out-bypass",
"in-esp-require", "out-esp-require", or "none" for a socket without one.
"""
import ipaddress
import socket
import struct
import sys

IP_IPSEC_POLICY = 16
IPV6_IPSEC_POLICY = 34
SADB_X_EXT_POLICY = 18
POLICY_TYPES = {"bypass": 4, "ipsec": 2}
DIRS = {"in": 1, "out": 2}
IPPROTO_ESP = 50
MODE_TRANSPORT = 1
LEVEL_REQUIRE = 2


def policy_bytes(word):
    """One sadb_x_policy, with one ESP transport request for "...-esp-require"."""
    parts = word.split("-")
    direction = DIRS[parts[0]]
    if parts[1] == "bypass":
        return struct.pack("<HHHBBII", 2, SADB_X_EXT_POLICY, POLICY_TYPES["bypass"], direction,
                           0, 0, 0)
    req = struct.pack("<HHBBHII", 16, IPPROTO_ESP, MODE_TRANSPORT, LEVEL_REQUIRE, 0, 0, 0)
    return struct.pack("<HHHBBII", 4, SADB_X_EXT_POLICY, POLICY_TYPES["ipsec"], direction, 0, 0,
                       0) + req


def udp_socket(addr, port, policy):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if policy != "none":
        level = socket.IPPROTO_IPV6 if family == socket.AF_INET6 else socket.IPPROTO_IP
        opt = IPV6_IPSEC_POLICY if family == socket.AF_INET6 else IP_IPSEC_POLICY
        for word in policy.split(","):
            s.setsockopt(level, opt, policy_bytes(word))
    s.bind((addr, int(port)))
    return s


def serve(addr, port, policy, ready):
    s = udp_socket(addr, port, policy)
    with open(ready, "w", encoding="ascii") as f:
        f.write("ready\n")
    while True:
        data, peer = s.recvfrom(2048)
        try:
            s.sendto(data, peer)
        except OSError:
            pass


def ask(addr, port, peer, peer_port, policy):
    s = udp_socket(addr, port, policy)
    s.settimeout(1.0)
    try:
        s.sendto(b"netbsd-ipsec", (peer, int(peer_port)))
        data, _ = s.recvfrom(2048)
    except OSError as e:
        print(f"no answer ({e})")
        return 1
    print(f"answer: {data!r}")
    return 0 if data == b"netbsd-ipsec" else 1


def ext_address(exttype, addr):
    # sockaddr_in: the family in host order, port and address in network order.
    sin = struct.pack("<H", socket.AF_INET) + struct.pack("!H4s8x", 0,
                                                          ipaddress.IPv4Address(addr).packed)
    return struct.pack("<HHBBH", 3, exttype, 0, 32, 0) + sin


def ext_key(exttype, hexkey):
    key = bytes.fromhex(hexkey)
    pad = (-len(key)) % 8
    return struct.pack("<HHHH", (8 + len(key) + pad) // 8, exttype, len(key) * 8, 0) + key + \
        bytes(pad)


def pfkey_add(path, satype, spi, ealg, ekey, aalg, akey):
    satype = {"ah": 2, "esp": 3}[satype]
    exts = struct.pack("<HHIBBBBI", 2, 1, socket.htonl(int(spi)), 0, 1, int(aalg), int(ealg), 0)
    exts += ext_address(5, "198.51.100.1") + ext_address(6, "198.51.100.2")
    if akey != "-":
        exts += ext_key(8, akey)
    if ekey != "-":
        exts += ext_key(9, ekey)
    msg = struct.pack("<BBBBHHII", 2, 3, 0, satype, (16 + len(exts)) // 8, 0, 1, 4242) + exts
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(2.0)
    s.connect(path)
    s.send(msg)
    while True:
        reply = s.recv(65536)
        # Skip what is no answer to this request (a broadcast to every endpoint).
        if len(reply) >= 16 and reply[1] == 3 and struct.unpack_from("<I", reply, 12)[0] == 4242:
            break
    print(reply[2])
    return 0


def main(argv):
    if len(argv) == 9 and argv[1] == "pfkey-add":
        return pfkey_add(*argv[2:])
    if len(argv) == 6 and argv[1] == "serve":
        return serve(*argv[2:])
    if len(argv) == 7 and argv[1] == "ask":
        return ask(*argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
