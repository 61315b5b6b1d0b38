#!/usr/bin/python3
"""An independent ESP tunnel-mode peer built on scapy, for the interop tests.

It runs inside the peer's network namespace. ESP transport mode over IP-in-IP
(what ipsecif sends) equals ESP tunnel mode on the wire, so this side uses
scapy's SecurityAssociation in tunnel mode and nothing of libipsecif.

The configuration is a JSON file (written by interop.py):
  ifname            the veth to listen on
  local, remote     outer addresses (peer, router)
  natt              ESP in UDP 4500 (RFC 3948) instead of bare ESP
  esn               64-bit sequence numbers (RFC 4303)
  crypt, auth       scapy names ('AES-GCM', 'AES-CBC', 'CHACHA20-POLY1305';
                    'SHA2-256-128' or null)
  inner             per inner family ("4", "6"): local and remote inner
                    addresses, spi_out (peer -> router) and spi_in (router ->
                    peer) with their keys (hex)
  mode              respond | originate | replay | tamper
  family            inner family for the modes that originate ("4" or "6")
  count, timeout    packets and seconds
  seq               per SPI (a string): the next sequence number to send, or
                    for inbound SAs one more than the last one seen

Modes:
  respond    answer `count` inner echo requests that arrive as ESP with
             encrypted echo replies.
  originate  send `count` encrypted echo requests to the router's inner
             address; every reply must come back as ESP and decrypt to the
             matching echo reply.
  replay     send one echo request (answered), then the same bytes again
             (must not be answered).
  tamper     send an echo request with one ICV byte flipped, one with a
             ciphertext byte flipped (neither may be answered), then an
             untampered one with the same sequence number (must be answered:
             a packet that fails the ICV must not move the replay window).

Prints READY once the sockets are open, one line per event, and a final
RESULT line with JSON. Exit status 0 when the mode's expectations held.
"""

import hmac
import json
import os
import select
import socket
import struct
import sys
import time

from scapy.all import IP, UDP, ICMP, IPv6, Raw, raw
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest
from scapy.layers.ipsec import ESP, SecurityAssociation, IPSecIntegrityError

from peer_pkt import checksums_ok, echo_fields

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
NATT_PORT = 4500

# scapy 2.5 leaves the high sequence bits out of HMAC ICVs in ESP (it only
# puts them into AEAD AAD), so with ESN and an HMAC this script computes and
# checks the ICV itself, as RFC 4303 section 2.2.1 says: over the ESP packet
# with the high 32 bits appended. Those bits are 0 here: a test run never
# sends 2^32 packets.
HMAC_DIGEST = {'SHA2-256-128': ('sha256', 16), 'HMAC-SHA1-96': ('sha1', 12)}


def log(msg):
    print(msg, flush=True)


class PeerSA:
    """One SA: one direction of the tunnel."""

    def __init__(self, cfg, spi, ekey, akey, outbound):
        self.cfg = cfg
        self.spi = spi
        self.ekey = bytes.fromhex(ekey)
        self.akey = bytes.fromhex(akey) if akey else None
        self.esn = cfg['esn']
        # Sequence numbers go on from the previous run of this script on the
        # same SA, or the router would rightly drop the packets as replays.
        self.next_seq = cfg.get('seq', {}).get(str(spi), 1)
        self.last_seq = cfg.get('seq', {}).get(str(spi), 1) - 1
        if outbound:
            src, dst = cfg['local'], cfg['remote']
        else:
            src, dst = cfg['remote'], cfg['local']
        hdr = IP(src=src, dst=dst) if ':' not in src else IPv6(src=src, dst=dst)
        natt = UDP(sport=NATT_PORT, dport=NATT_PORT) if cfg['natt'] else None
        self.own_hmac = self.esn and cfg['auth'] is not None
        kw = dict(crypt_algo=cfg['crypt'], crypt_key=self.ekey, tunnel_header=hdr,
                  nat_t_header=natt, esn_en=self.esn, esn=0)
        self.sa = SecurityAssociation(ESP, spi=spi, auth_algo=cfg['auth'],
                                      auth_key=self.akey, **kw)
        # Encrypts without an ICV when this script appends its own.
        self.sa_noauth = SecurityAssociation(ESP, spi=spi, **kw) if self.own_hmac else None

    def _icv(self, esp_bytes):
        name, size = HMAC_DIGEST[self.cfg['auth']]
        return hmac.new(self.akey, esp_bytes + struct.pack('!L', 0), name).digest()[:size]

    def encrypt(self, inner):
        seq = self.next_seq
        self.next_seq += 1
        pkt = (self.sa_noauth if self.own_hmac else self.sa).encrypt(inner, seq_num=seq)
        if self.own_hmac:
            pkt[ESP].data += self._icv(raw(pkt[ESP]))
        # Lengths are recomputed: scapy 2.5 writes a UDP length of 8 into
        # NAT-T packets (it fixes the header before the ESP part is added).
        if UDP in pkt:
            pkt[UDP].len = None
            pkt[UDP].chksum = 0
        if pkt.version == 4:
            pkt.len = None
            pkt.chksum = None
        else:
            pkt.plen = None
        return raw(pkt)

    def decrypt(self, outer):
        """The inner packet, or raises IPSecIntegrityError."""
        if not self.own_hmac:
            return self.sa.decrypt(outer)
        size = HMAC_DIGEST[self.cfg['auth']][1]
        esp = raw(outer[ESP])
        if len(esp) < 8 + size or not hmac.compare_digest(esp[-size:], self._icv(esp[:-size])):
            raise IPSecIntegrityError('ICV mismatch (ESN HMAC)')
        return self.sa.decrypt(outer, verify=False)


class Peer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.out = {}
        self.inn = {}
        # Both inner families may share one SA pair (NAT-T: ipsecif's link0
        # policies are 'require', so any SA between the two ends serves both
        # families). Otherwise each SPI carries one inner family only, as
        # ipsecif's per-family unique ids demand.
        shared = {}
        for fam, c in cfg['inner'].items():
            spi = c['spi_out']
            if spi not in shared:
                shared[spi] = PeerSA(cfg, spi, c['ekey_out'], c.get('akey_out'), True)
            self.out[fam] = shared[spi]
            spi = c['spi_in']
            if spi not in self.inn:
                self.inn[spi] = (set(), PeerSA(cfg, spi, c['ekey_in'], c.get('akey_in'), False))
            self.inn[spi][0].add(fam)
        self.v6 = ':' in cfg['local']
        self.errors = []
        self.seen = 0
        self.ignored = 0
        self.cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.cap.bind((cfg['ifname'], 0))
        fam = socket.AF_INET6 if self.v6 else socket.AF_INET
        self.tx = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # Open so that this namespace's kernel, which has no SA, answers
        # neither ESP nor ESP-in-UDP with ICMP unreachable.
        self.sink = [socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ESP)]
        if cfg['natt']:
            u = socket.socket(fam, socket.SOCK_DGRAM)
            u.bind((cfg['local'], NATT_PORT))
            self.sink.append(u)

    def error(self, msg):
        self.errors.append(msg)
        log('ERROR ' + msg)

    def send(self, data):
        dst = (self.cfg['remote'], 0, 0, 0) if self.v6 else (self.cfg['remote'], 0)
        self.tx.sendto(data, dst)

    def drain_sinks(self):
        for s in self.sink:
            try:
                while s.recv(65535, socket.MSG_DONTWAIT):
                    pass
            except BlockingIOError:
                pass

    def outer_packets(self, deadline):
        """Yield (outer scapy packet) for each ESP packet from the router."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.cap], [], [], left)
            if not r:
                return
            data, addr = self.cap.recvfrom(65535)
            self.drain_sinks()
            if addr[2] == PACKET_OUTGOING:
                continue
            if addr[1] == ETH_P_IP:
                pkt = IP(data)
            elif addr[1] == ETH_P_IPV6:
                pkt = IPv6(data)
            else:
                continue
            if ESP not in pkt:
                continue
            if pkt.src != self.cfg['remote'] or pkt.dst != self.cfg['local']:
                continue
            if self.cfg['natt'] != (UDP in pkt):
                self.error('ESP %s UDP encapsulation' % ('without' if self.cfg['natt'] else 'in'))
                continue
            if UDP in pkt and (pkt[UDP].sport != NATT_PORT or pkt[UDP].dport != NATT_PORT):
                self.error('NAT-T ports %d -> %d' % (pkt[UDP].sport, pkt[UDP].dport))
                continue
            yield pkt

    def inner_packets(self, deadline):
        """Yield (family, inner) for each ESP packet that decrypts and checks out."""
        for outer in self.outer_packets(deadline):
            self.seen += 1
            spi = outer[ESP].spi
            if spi not in self.inn:
                self.error('unknown SPI 0x%x' % spi)
                continue
            fams, sa = self.inn[spi]
            seq = outer[ESP].seq
            if seq <= sa.last_seq:
                self.error('SPI 0x%x: sequence %d after %d' % (spi, seq, sa.last_seq))
            sa.last_seq = max(seq, sa.last_seq)
            try:
                inner = sa.decrypt(outer)
            except IPSecIntegrityError as e:
                self.error('SPI 0x%x seq %d: integrity check failed: %s' % (spi, seq, e))
                continue
            fam = '4' if isinstance(inner, IP) else '6' if isinstance(inner, IPv6) else None
            if fam not in fams:
                self.error('SPI 0x%x carries %s, expected IPv%s' % (spi, inner.name,
                                                                  ' or IPv'.join(sorted(fams))))
                continue
            if not checksums_ok(inner):
                self.error('inner packet with a bad checksum: %r' % inner)
                continue
            log('RX spi=0x%x seq=%d %s' % (spi, seq, inner.summary()))
            yield fam, inner

    def echo(self, fam, ident, seq, payload, reply):
        c = self.cfg['inner'][fam]
        if fam == '4':
            icmp = ICMP(type=0 if reply else 8, id=ident, seq=seq)
            return IP(src=c['local'], dst=c['remote'], ttl=64) / icmp / Raw(payload)
        cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
        return IPv6(src=c['local'], dst=c['remote'], hlim=64) / cls(id=ident, seq=seq,
                                                                    data=payload)

    def respond(self):
        c = self.cfg
        answered = 0
        deadline = time.monotonic() + c['timeout']
        for fam, inner in self.inner_packets(deadline):
            req = echo_fields(inner, request=True)
            if req is None:
                self.ignored += 1
                continue
            ident, seq, payload = req
            want = c['inner'][fam]
            if inner.src != want['remote'] or inner.dst != want['local']:
                self.error('echo request %s -> %s' % (inner.src, inner.dst))
                continue
            self.send(self.out[fam].encrypt(self.echo(fam, ident, seq, payload, True)))
            answered += 1
            log('TX echo reply id=%d seq=%d' % (ident, seq))
            if answered >= c['count']:
                break
        if answered < c['count']:
            self.error('answered %d of %d echo requests' % (answered, c['count']))
        return {'answered': answered}

    def ping(self, fam, ident, seq, data, wait):
        """Send one encrypted echo request (data: raw ESP packet); True if answered."""
        self.send(data)
        deadline = time.monotonic() + wait
        for rfam, inner in self.inner_packets(deadline):
            rep = echo_fields(inner, request=False)
            if rep is None:
                self.ignored += 1
                continue
            want = self.cfg['inner'][fam]
            if rfam != fam or inner.src != want['remote'] or inner.dst != want['local']:
                self.error('echo reply %s -> %s' % (inner.src, inner.dst))
                continue
            if rep != (ident, seq, self.last_payload):
                self.error('echo reply id=%d seq=%d does not match' % rep[:2])
                continue
            return True
        return False

    def request(self, fam, ident, seq):
        self.last_payload = os.urandom(48)
        return self.out[fam].encrypt(self.echo(fam, ident, seq, self.last_payload, False))

    def originate(self):
        c = self.cfg
        fam = c['family']
        ident = int.from_bytes(os.urandom(2), 'big')
        ok = 0
        for seq in range(1, c['count'] + 1):
            if self.ping(fam, ident, seq, self.request(fam, ident, seq), 3.0):
                ok += 1
                log('echo %d answered' % seq)
            else:
                self.error('echo %d not answered' % seq)
        return {'answered': ok}

    def replay(self):
        fam = self.cfg['family']
        ident = int.from_bytes(os.urandom(2), 'big')
        pkt = self.request(fam, ident, 1)
        first = self.ping(fam, ident, 1, pkt, 3.0)
        if not first:
            self.error('the original packet was not answered')
        again = self.ping(fam, ident, 1, pkt, 1.5)
        if again:
            self.error('the replayed packet was answered')
        log('original answered: %s, replay answered: %s' % (first, again))
        return {'original': first, 'replay': again}

    def tamper(self):
        fam = self.cfg['family']
        ident = int.from_bytes(os.urandom(2), 'big')
        sa = self.out[fam]
        seq = sa.next_seq
        good = self.request(fam, ident, 1)
        results = {}
        # The last byte is in the ICV; the byte 30 from the end lies in the
        # encrypted payload for every algorithm here.
        for name, pos in (('icv', len(good) - 1), ('ciphertext', len(good) - 30)):
            bad = bytearray(good)
            bad[pos] ^= 0x01
            answered = self.ping(fam, ident, 1, bytes(bad), 1.5)
            results[name] = answered
            if answered:
                self.error('the packet with a flipped %s byte was answered' % name)
        results['original'] = self.ping(fam, ident, 1, good, 3.0)
        if not results['original']:
            self.error('the untampered packet with sequence %d was not answered' % seq)
        log('tamper results: %s' % results)
        return results


def main():
    if len(sys.argv) != 2:
        print('usage: esp_peer.py CONFIG.json', file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    peer = Peer(cfg)
    log('READY')
    result = getattr(peer, cfg['mode'])()
    seq = {str(sa.spi): sa.next_seq for sa in peer.out.values()}
    seq.update({str(spi): sa.last_seq + 1 for spi, (_, sa) in peer.inn.items()})
    result.update(errors=peer.errors, esp_seen=peer.seen, ignored=peer.ignored, seq=seq)
    log('RESULT ' + json.dumps(result))
    return 1 if peer.errors else 0


if __name__ == '__main__':
    sys.exit(main())
