#!/usr/bin/python3
"""An independent ESP and AH peer for host traffic, built on scapy, for
host_interop.py.

It runs in the peer's network namespace and plays the other end of the
router namespace's ipsec(4) policies: a host in transport mode, or a
security gateway in tunnel mode for a documentation subnet behind it (the
hosts of that subnet exist only in this script). Every packet is protected
and opened with scapy's SecurityAssociation; nothing of libipsecif is used.

The configuration is a JSON file (written by host_interop.py):
  ifname   the veth to listen on
  sas      list of SAs: proto (esp|ah), spi, dir (out: peer -> router, in:
           router -> peer), mode (transport|tunnel), src and dst (the
           packet's addresses in transport mode, the tunnel's endpoints in
           tunnel mode), crypt and auth (scapy names or null), ekey and akey
           (hex), esn (64-bit sequence numbers), seq (the first sequence
           number, 1 by default)
  flows    by name: family, local (the peer's side, or a host behind the
           gateway), remote (the router's side), out (SPIs applied to what
           the peer sends, innermost first) and in (SPIs that must have
           protected what the router sends, outermost first, as they are
           removed); an empty list means cleartext
  udp_port the router side's UDP echo port

Commands arrive on stdin, one JSON object a line, {"cmd": NAME, ...}:
  respond  flow, count, timeout: answer `count` echo requests that arrive
           on the flow, protected as the flow says.
  ping     flow, count[, size]: send protected echo requests (size bytes
           of data, 48 by default; the protected packet is fragmented when
           the link needs it) to the flow's remote address; each must be
           answered by a matching, protected reply.
  udp      flow, count: the same with UDP datagrams to udp_port, which the
           router side echoes.
  setseq   flow, seq: the next sequence number of the flow's outbound SAs
           (a jump forward; with ESN it may be 2^32 or more).
  replay   flow: one echo request (answered), then the same bytes again
           (must not be answered).
  tamper   flow: an echo request with an ICV byte flipped, one with a
           payload byte flipped (ciphertext for ESP, covered data for AH);
           neither may be answered; then the untampered packet with the
           same sequence number, which must be (a packet that fails its
           ICV must not move the replay window).
  clear    flow: an echo request in cleartext (the router's inbound policy
           requires IPsec): no reply of any kind may come; then the same
           request protected, which must be answered.
  wire     report what was seen on the veth and the SAs' counters, and exit.

Before each command the frames that arrived since the last one are read
(and every IPsec packet among them opened and checked); then the script
prints READY, runs the command, and prints DONE with a JSON result whose
"errors" list is empty when the command's expectations held. Every
protected packet from the router is opened: an unknown SPI, a failed ICV,
a sequence number that does not grow, SAs other than the flow's, a bad
inner checksum or cleartext on a protected flow (neighbour discovery
aside) is an error.

`host_peer.py --selftest` checks this script's own packets without a
network: each configuration (ESN also from just below 2^32, so the high
half becomes 1) protects packets that the mirrored one opens, tampered
packets fail, and the AH ICVs equal ones computed here by hand from RFC
4302's rules (not through scapy's mutable-field code).
"""

import hmac
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

try:
    from scapy.all import IP, UDP, ICMP, IPv6, Raw, fragment, raw
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, IPv6ExtHdrDestOpt,
                                    IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                                    HBHOptUnknown, PadN, fragment6)
    from scapy.layers.ipsec import (AH, ESP, SecurityAssociation, IPSecIntegrityError,
                                    zero_mutable_fields)

    from peer_pkt import checksums_ok, echo_fields
except ImportError as e:
    if __name__ == '__main__' and sys.argv[1:] == ['--selftest']:
        print('SKIP: no scapy with its IPsec layer (%s)' % e)
        sys.exit(77)
    raise

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
IPPROTO_ESP = 50
IPPROTO_AH = 51
PROTO_NUM = {'esp': IPPROTO_ESP, 'ah': IPPROTO_AH}
IPV6_EXT = (0, 43, 60)
# Seconds a packet that must not be answered is given to be answered all
# the same (answers on the veth take a few milliseconds).
QUIET = 0.6
# The veth's MTU.
LINK_MTU = 1500

# scapy 2.5 leaves the high sequence bits out of ESP's HMAC ICVs (it only
# puts them into AEAD AAD), so with ESN and an HMAC this script computes and
# checks ESP's ICV itself, as RFC 4303 section 2.2.1 says: over the ESP
# packet with the high 32 bits appended. Those bits are 0: a run never sends
# 2^32 packets. (For AH, scapy appends them itself.)
HMAC_DIGEST = {'HMAC-SHA1-96': ('sha1', 12), 'SHA2-256-128': ('sha256', 16),
               'SHA2-384-192': ('sha384', 24), 'SHA2-512-256': ('sha512', 32)}


def log(msg):
    print(msg, flush=True)


def norm(a):
    return str(ipaddress.ip_address(a))


def reparse(pkt):
    """A fresh scapy packet from the bytes, so every layer is decoded."""
    data = raw(pkt)
    return IP(data) if data[0] >> 4 == 4 else IPv6(data)


def fix_lengths(pkt):
    if pkt.version == 4:
        pkt.len = None
        pkt.chksum = None
    else:
        pkt.plen = None
    return reparse(pkt)


def ipsec_layer(pkt):
    """('esp'|'ah', layer) for an ESP or AH header right after the IP
    header (and IPv6 extension headers), else (None, None)."""
    layer = pkt.payload
    while isinstance(layer, (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt)):
        layer = layer.payload
    if isinstance(layer, ESP):
        return 'esp', layer
    if isinstance(layer, AH):
        return 'ah', layer
    return None, None


def wire_summary(data):
    """(src, dst, protocols, ICMPv6 type) of a frame, read from the bytes:
    the protocols in order as far as they are visible (AH and IP-in-IP are
    looked through, ESP is opaque; IPv6 extension headers are left out);
    the type of a visible ICMPv6 message, else None."""
    if len(data) < 20:
        return None
    v = data[0] >> 4
    if v == 4:
        off = (data[0] & 15) * 4
        proto = data[9]
        src, dst = socket.inet_ntop(socket.AF_INET, data[12:16]), socket.inet_ntop(
            socket.AF_INET, data[16:20])
    elif v == 6 and len(data) >= 40:
        off = 40
        proto = data[6]
        src, dst = socket.inet_ntop(socket.AF_INET6, data[8:24]), socket.inet_ntop(
            socket.AF_INET6, data[24:40])
    else:
        return None
    chain = []
    icmp6 = None
    for _ in range(16):
        if off + 2 > len(data):
            chain.append(proto)
            break
        if v == 6 and proto in IPV6_EXT:
            proto, off = data[off], off + (data[off + 1] + 1) * 8
            continue
        chain.append(proto)
        if proto == IPPROTO_AH:
            proto, off = data[off], off + (data[off + 1] + 2) * 4
        elif proto == 4 and off + 20 <= len(data):
            proto, off, v = data[off + 9], off + (data[off] & 15) * 4, 4
        elif proto == 41 and off + 40 <= len(data):
            proto, off, v = data[off + 6], off + 40, 6
        else:
            if proto == 58:
                icmp6 = data[off]
            break
    return norm(src), norm(dst), chain, icmp6


class PeerSA:
    """One SA of the peer. Sequence numbers are kept whole (64 bits with
    ESN); the wire carries the low half."""

    def __init__(self, d):
        self.proto = d['proto']
        self.spi = d['spi']
        self.dir = d['dir']
        self.mode = d['mode']
        self.src = norm(d['src'])
        self.dst = norm(d['dst'])
        self.esn = bool(d.get('esn'))
        self.auth = d.get('auth')
        self.akey = bytes.fromhex(d['akey']) if d.get('akey') else None
        ekey = bytes.fromhex(d['ekey']) if d.get('ekey') else None
        # Outbound: the first number to send (a run may start just below
        # 2^32 to cross into the next half with ESN); inbound: the last one
        # seen, the top of the window.
        self.first_seq = d.get('seq', 1)
        self.next_seq = self.first_seq
        self.last_seq = self.first_seq - 1
        self.opened = 0
        self.sent = 0
        hdr = None
        if self.mode == 'tunnel':
            hdr = IP(src=self.src, dst=self.dst) if ':' not in self.src else IPv6(
                src=self.src, dst=self.dst)
        if self.proto == 'esp':
            self.own_hmac = self.esn and self.auth is not None
            kw = dict(crypt_algo=d.get('crypt'), crypt_key=ekey, tunnel_header=hdr,
                      esn_en=self.esn, esn=0)
            self.sa = SecurityAssociation(ESP, spi=self.spi, auth_algo=self.auth,
                                          auth_key=self.akey, **kw)
            self.sa_noauth = SecurityAssociation(ESP, spi=self.spi, **kw) if self.own_hmac \
                else None
        elif self.proto == 'ah':
            self.own_hmac = False
            self.sa = SecurityAssociation(AH, spi=self.spi, auth_algo=self.auth,
                                          auth_key=self.akey, tunnel_header=hdr,
                                          esn_en=self.esn, esn=0)
        else:
            raise ValueError('proto %r' % self.proto)

    def _esp_icv(self, esp_bytes, high):
        name, size = HMAC_DIGEST[self.auth]
        return hmac.new(self.akey, esp_bytes + struct.pack('!L', high), name).digest()[:size]

    def _use_seq(self, sa, seq):
        # scapy takes a sequence number of 0 in an argument for "none given",
        # so the numbers go in through the SA's own fields.
        sa.seq_num = seq & 0xffffffff
        sa.esn = seq >> 32

    def protect(self, pkt, seq=None):
        """pkt protected by this SA (a new scapy packet)."""
        if seq is None:
            seq = self.next_seq
            self.next_seq += 1
        if not self.esn and seq > 0xffffffff:
            raise ValueError('sequence number %d without ESN' % seq)
        self.sent += 1
        if self.proto == 'esp' and self.own_hmac:
            self._use_seq(self.sa_noauth, seq)
            out = self.sa_noauth.encrypt(pkt)
            out[ESP].data += self._esp_icv(raw(out[ESP]), seq >> 32)
        else:
            self._use_seq(self.sa, seq)
            out = self.sa.encrypt(pkt)
            if self.proto == 'ah' and ESP in out:
                out = self._ah_over_esp(out, seq >> 32)
        return fix_lengths(out)

    def _ah_over_esp(self, out, high):
        # scapy 2.5 signs a packet that has an ESP layer as ESP, even when
        # AH is being added over it (a bundle): it appends an ESP ICV and
        # leaves AH's zero. Undo that and sign AH as scapy does for AH
        # alone: over the packet with its mutable fields zeroed.
        name, size = HMAC_DIGEST[self.auth]
        out[ESP].data = out[ESP].data[:-size]
        clone = zero_mutable_fields(out.copy(), sending=True)
        data = raw(clone) + (struct.pack('!L', high) if self.esn else b'')
        out[AH].icv = hmac.new(self.akey, data, name).digest()[:size]
        return out

    def whole_seq(self, low):
        """The whole sequence number of a received low half: with ESN the
        high half as RFC 4303 Appendix A2.1 infers it from the window's
        top (a window of 64)."""
        if not self.esn:
            return low
        w = 64
        th, tl = self.last_seq >> 32, self.last_seq & 0xffffffff
        if tl >= w - 1:
            high = th if low >= tl - w + 1 else th + 1
        else:
            high = th - 1 if th > 0 and low >= (tl - w + 1) % (1 << 32) else th
        return (high << 32) | low

    def open(self, pkt, seq):
        """The packet with this SA's header removed; seq: its whole
        sequence number. Raises IPSecIntegrityError when the ICV does not
        verify."""
        pkt = pkt.copy()
        self.sa.esn = seq >> 32
        if self.proto == 'esp' and self.own_hmac:
            size = HMAC_DIGEST[self.auth][1]
            esp = raw(pkt[ESP])
            if len(esp) < 8 + size or not hmac.compare_digest(
                    esp[-size:], self._esp_icv(esp[:-size], seq >> 32)):
                raise IPSecIntegrityError('ICV mismatch (ESN HMAC)')
            inner = self.sa.decrypt(pkt, verify=False)
        else:
            inner = self.sa.decrypt(pkt)
        return reparse(inner)


class Engine:
    """The peer's SAs and flows: protect what it sends, open what it gets."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.out = {}
        self.inn = {}
        for d in cfg['sas']:
            sa = PeerSA(d)
            if sa.dir == 'out':
                self.out[sa.spi] = sa
            else:
                self.inn[(sa.proto, sa.spi)] = sa
        self.flows = {}
        for name, f in cfg['flows'].items():
            f = dict(f)
            f['local'], f['remote'] = norm(f['local']), norm(f['remote'])
            self.flows[name] = f
        self.errors = []
        self.quiet = False

    def error(self, msg):
        self.errors.append(msg)
        if not self.quiet:
            log('ERROR ' + msg)

    def protect(self, flow, inner, seqs=None):
        pkt = inner
        for i, spi in enumerate(flow['out']):
            pkt = self.out[spi].protect(pkt, None if seqs is None else seqs[i])
        return raw(pkt)

    def open(self, pkt):
        """(SPIs removed, outermost first; the packet left), or None after
        an error."""
        chain = []
        cur = pkt
        for _ in range(4):
            proto, layer = ipsec_layer(cur)
            if proto is None:
                return chain, cur
            spi, seq = layer.spi, layer.seq
            sa = self.inn.get((proto, spi))
            where = '%s %s -> %s spi 0x%x seq %d' % (proto.upper(), cur.src, cur.dst, spi, seq)
            if sa is None:
                self.error('%s: unknown SA' % where)
                return None
            if (norm(cur.src), norm(cur.dst)) != (sa.src, sa.dst):
                self.error('%s: the SA is for %s -> %s' % (where, sa.src, sa.dst))
                return None
            seq = sa.whole_seq(seq)
            if seq <= sa.last_seq:
                self.error('%s: sequence number %d after %d' % (where, seq, sa.last_seq))
            try:
                cur = sa.open(cur, seq)
            except IPSecIntegrityError as e:
                self.error('%s: integrity check failed: %s' % (where, e))
                return None
            except Exception as e:  # malformed: scapy raises whatever it meets
                self.error('%s: cannot be opened: %r' % (where, e))
                return None
            sa.last_seq = max(seq, sa.last_seq)
            sa.opened += 1
            chain.append(spi)
        self.error('more than 4 IPsec headers')
        return None

    def flow_of(self, inner):
        for name, f in self.flows.items():
            if norm(inner.src) == f['remote'] and norm(inner.dst) == f['local']:
                return name, f
        return None, None

    def accept(self, pkt):
        """(flow name, inner packet) for a packet from the router that
        opened with the flow's SAs and checks out; None otherwise (errors
        say why, except for cleartext outside every flow)."""
        res = self.open(pkt)
        if res is None:
            return None
        chain, inner = res
        if not chain and is_nd(inner):
            # Neighbour discovery goes in clear whatever the policy says
            # (the router lets it pass both ways, as IPsec hosts do).
            return None
        name, f = self.flow_of(inner)
        if f is None:
            if chain:
                self.error('a packet opened with SAs %s matches no flow: %s' %
                           (hexs(chain), inner.summary()))
            return None
        if chain != f['in']:
            self.error('flow %s: %s arrived with SAs %s, expected %s' %
                       (name, inner.summary(), hexs(chain) or 'none (cleartext)',
                        hexs(f['in']) or 'none'))
            return None
        if not checksums_ok(inner):
            self.error('flow %s: bad checksum in %r' % (name, inner))
            return None
        if not self.quiet:
            log('RX %s via %s: %s' % (name, hexs(chain) or 'clear', inner.summary()))
        return name, inner

    def sa_report(self):
        rep = {}
        for sa in list(self.out.values()) + list(self.inn.values()):
            rep['%s-0x%x' % (sa.proto, sa.spi)] = dict(dir=sa.dir, opened=sa.opened,
                                                      sent=sa.sent, next_seq=sa.next_seq)
        return rep


def hexs(spis):
    return ','.join('0x%x' % s for s in spis)


def is_nd(pkt):
    """ICMPv6 router or neighbour discovery (types 133..137) right after
    the IPv6 header."""
    if not isinstance(pkt, IPv6):
        return False
    data = raw(pkt)
    return len(data) > 40 and data[6] == 58 and 133 <= data[40] <= 137


def ip_header(f):
    """The IP header of the flow's packets from the peer; with ext6 an IPv6
    hop-by-hop and a destination options header follow it (in front of
    AH or ESP once protected, and in AH's ICV)."""
    if f['family'] == '4':
        return IP(src=f['local'], dst=f['remote'], ttl=64)
    h = IPv6(src=f['local'], dst=f['remote'], hlim=64)
    if f.get('ext6'):
        # Options a receiver skips when it does not know them (type bits
        # 00); the hop-by-hop one may change en route (bit 0x20: AH counts
        # it as zeros). Linux refuses more than 7 bytes of padding.
        h = h / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x3e, optdata=b'\x11' * 4)]) / \
            IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1e, optdata=b'\xab' * 10),
                                       PadN(optdata=b'')])
    return h


def echo(f, ident, seq, payload, reply):
    if f['family'] == '4':
        return ip_header(f) / ICMP(type=0 if reply else 8, id=ident, seq=seq) / Raw(payload)
    cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return ip_header(f) / cls(id=ident, seq=seq, data=payload)


class Peer(Engine):
    """The engine on the veth."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.wire = []
        self.cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.cap.bind((cfg['ifname'], 0))
        self.tx = {4: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
                   6: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)}
        # Open so that this namespace's kernel, which has no SAs, answers
        # neither ESP nor AH with ICMP "protocol unreachable".
        self.sink = [socket.socket(fam, socket.SOCK_RAW, proto)
                     for fam in (socket.AF_INET, socket.AF_INET6)
                     for proto in (IPPROTO_ESP, IPPROTO_AH)]
        for s in self.sink:
            s.setblocking(False)

    def send(self, data):
        """Send a whole packet; one larger than the link takes is sent in
        fragments (raw sockets do not fragment what they are given)."""
        v = data[0] >> 4
        if len(data) <= LINK_MTU:
            frags = [data]
        elif v == 4:
            frags = [raw(x) for x in fragment(IP(data), fragsize=LINK_MTU - 60)]
        else:
            h = IPv6(data[:40])
            pkt = IPv6(src=h.src, dst=h.dst, tc=h.tc, fl=h.fl, hlim=h.hlim) / IPv6ExtHdrFragment(
                nh=data[6], id=int.from_bytes(os.urandom(4), 'big')) / Raw(data[40:])
            frags = [raw(x) for x in fragment6(pkt, LINK_MTU)]
        for frag in frags:
            if v == 4:
                self.tx[4].sendto(frag, (socket.inet_ntop(socket.AF_INET, frag[16:20]), 0))
            else:
                self.tx[6].sendto(frag, (socket.inet_ntop(socket.AF_INET6, frag[24:40]), 0, 0,
                                         0))

    def drain_sinks(self):
        for s in self.sink:
            try:
                while s.recv(65535):
                    pass
            except BlockingIOError:
                pass

    def frames(self, deadline):
        """Every frame is recorded; yields the IP packets that came in."""
        while True:
            left = deadline - time.monotonic()
            if left < 0:
                return
            r, _, _ = select.select([self.cap], [], [], left)
            if not r:
                return
            data, addr = self.cap.recvfrom(65535)
            self.drain_sinks()
            if addr[1] not in (ETH_P_IP, ETH_P_IPV6):
                continue
            s = wire_summary(data)
            if s is None:
                continue
            incoming = addr[2] != PACKET_OUTGOING
            self.wire.append(['in' if incoming else 'out'] + list(s))
            if incoming:
                yield IP(data) if data[0] >> 4 == 4 else IPv6(data)

    def receive(self, deadline):
        """(flow name, inner) for each good packet from the router."""
        for pkt in self.frames(deadline):
            res = self.accept(pkt)
            if res is not None:
                yield res

    def drain(self):
        for name, inner in self.receive(time.monotonic()):
            log('late: %s %s' % (name, inner.summary()))

    def wait_for(self, flow, match, wait):
        """True once a good packet on the flow satisfies match()."""
        for name, inner in self.receive(time.monotonic() + wait):
            if name == flow and match(inner):
                return True
            log('ignored: %s %s' % (name, inner.summary()))
        return False

    # ---- commands ----
    def cmd_respond(self, c):
        f = self.flows[c['flow']]
        answered = 0
        for name, inner in self.receive(time.monotonic() + c.get('timeout', 10)):
            req = echo_fields(inner, True) if name == c['flow'] else None
            if req is None:
                log('ignored: %s %s' % (name, inner.summary()))
                continue
            self.send(self.protect(f, echo(f, req[0], req[1], req[2], True)))
            answered += 1
            log('TX echo reply id=%d seq=%d' % req[:2])
            if answered >= c['count']:
                break
        if answered < c['count']:
            self.error('answered %d of %d echo requests' % (answered, c['count']))
        return {'answered': answered}

    def request(self, f, ident, seq, payload):
        return echo(f, ident, seq, payload, False)

    def echo_match(self, ident, seq, payload):
        return lambda inner: echo_fields(inner, False) == (ident, seq, payload)

    def cmd_ping(self, c):
        f = self.flows[c['flow']]
        ident = int.from_bytes(os.urandom(2), 'big')
        ok = 0
        for seq in range(1, c['count'] + 1):
            payload = os.urandom(c.get('size', 48))
            self.send(self.protect(f, self.request(f, ident, seq, payload)))
            if self.wait_for(c['flow'], self.echo_match(ident, seq, payload), 3.0):
                ok += 1
                log('echo %d answered' % seq)
            else:
                self.error('echo %d not answered' % seq)
        return {'answered': ok}

    def cmd_udp(self, c):
        f = self.flows[c['flow']]
        port = self.cfg['udp_port']
        ok = 0
        for i in range(c['count']):
            sport = 40000 + int.from_bytes(os.urandom(2), 'big') % 20000
            payload = os.urandom(32 + i)
            self.send(self.protect(f, ip_header(f) / UDP(sport=sport, dport=port) /
                                   Raw(payload)))

            def match(inner):
                return (UDP in inner and inner[UDP].sport == port and inner[UDP].dport == sport
                        and bytes(inner[UDP].payload) == payload)
            if self.wait_for(c['flow'], match, 3.0):
                ok += 1
                log('udp %d echoed' % i)
            else:
                self.error('udp %d not echoed' % i)
        return {'answered': ok}

    def cmd_setseq(self, c):
        for spi in self.flows[c['flow']]['out']:
            self.out[spi].next_seq = c['seq']
        log('next sequence number on %s: 0x%x' % (c['flow'], c['seq']))
        return {}

    def cmd_replay(self, c):
        f = self.flows[c['flow']]
        ident = int.from_bytes(os.urandom(2), 'big')
        payload = os.urandom(48)
        data = self.protect(f, self.request(f, ident, 1, payload))
        self.send(data)
        first = self.wait_for(c['flow'], self.echo_match(ident, 1, payload), 3.0)
        if not first:
            self.error('the original packet was not answered')
        self.send(data)
        again = self.wait_for(c['flow'], self.echo_match(ident, 1, payload), QUIET)
        if again:
            self.error('the replayed packet was answered')
        log('original answered: %s, replay answered: %s' % (first, again))
        return {'original': first, 'replay': again}

    def cmd_tamper(self, c):
        f = self.flows[c['flow']]
        ident = int.from_bytes(os.urandom(2), 'big')
        payload = os.urandom(48)
        seqs = [self.out[spi].next_seq for spi in f['out']]
        good = self.protect(f, self.request(f, ident, 1, payload), seqs)
        for spi in f['out']:
            self.out[spi].next_seq += 1
        outer = self.out[f['out'][-1]]
        iphl = (good[0] & 15) * 4 if good[0] >> 4 == 4 else 40
        if outer.proto == 'esp':
            # ESP's ICV ends the packet; 30 bytes from the end lies in the
            # ciphertext for every algorithm here.
            spots = (('icv', len(good) - 1), ('payload', len(good) - 30))
        else:
            # AH's ICV follows its 12 fixed bytes; the last byte of the
            # packet is covered data.
            spots = (('icv', iphl + 12), ('payload', len(good) - 1))
        res = {}
        for what, pos in spots:
            bad = bytearray(good)
            bad[pos] ^= 0x01
            self.send(bytes(bad))
            res[what] = self.wait_for(c['flow'], self.echo_match(ident, 1, payload), QUIET)
            if res[what]:
                self.error('the packet with a flipped %s byte (offset %d) was answered' %
                           (what, pos))
        self.send(good)
        res['original'] = self.wait_for(c['flow'], self.echo_match(ident, 1, payload), 3.0)
        if not res['original']:
            self.error('the untampered packet (sequence %s) was not answered' % seqs)
        log('tamper results: %s' % res)
        return res

    def cmd_clear(self, c):
        f = self.flows[c['flow']]
        ident = int.from_bytes(os.urandom(2), 'big')
        payload = os.urandom(48)
        self.send(raw(self.request(f, ident, 1, payload)))
        n_err = len(self.errors)
        refused = True
        for name, inner in self.receive(time.monotonic() + QUIET):
            log('after the cleartext request: %s %s' % (name, inner.summary()))
            if name == c['flow']:
                refused = False
        if not refused or len(self.errors) > n_err:
            self.error('the cleartext request got an answer')
        self.send(self.protect(f, self.request(f, ident, 2, payload)))
        control = self.wait_for(c['flow'], self.echo_match(ident, 2, payload), 3.0)
        if not control:
            self.error('the protected request after it was not answered')
        log('cleartext refused: %s, protected answered: %s' % (refused, control))
        return {'refused': refused, 'control': control}

    def serve(self):
        for line in sys.stdin:
            if not line.strip():
                continue
            c = json.loads(line)
            self.errors = []
            self.drain()
            if c['cmd'] == 'wire':
                res = {'wire': self.wire, 'sas': self.sa_report()}
                res['errors'] = self.errors
                log('DONE ' + json.dumps(res))
                return 0
            log('READY')
            res = getattr(self, 'cmd_' + c['cmd'])(c)
            res['errors'] = self.errors
            log('DONE ' + json.dumps(res))
        return 0


# ---- self-test ----
def ah_icv_by_hand(pkt, sa, high):
    """AH's ICV computed from RFC 4302 section 3.3.3.1 directly on the
    bytes: IPv4 TOS, flags and fragment offset, TTL and checksum zeroed;
    IPv6 traffic class, flow label and hop limit zeroed (no extension
    headers here); the ICV field zeroed; the ESN high half appended."""
    data = bytearray(raw(pkt))
    if data[0] >> 4 == 4:
        hl = (data[0] & 15) * 4
        data[1] = 0
        data[6:8] = b'\0\0'
        data[8] = 0
        data[10:12] = b'\0\0'
    else:
        hl = 40
        data[0:4] = b'\x60\0\0\0'
        data[7] = 0
    name, size = HMAC_DIGEST[sa.auth]
    ah_len = (data[hl + 1] + 2) * 4
    got = bytes(data[hl + 12:hl + 12 + size])
    data[hl + 12:hl + ah_len] = bytes(ah_len - 12)
    if sa.esn:
        data += struct.pack('!L', high)
    return got, hmac.new(sa.akey, bytes(data), name).digest()[:size]


def selftest():
    addrs = {'4': ('198.51.100.1', '198.51.100.2', '192.0.2.1', '203.0.113.5'),
             '6': ('2001:db8:100::1', '2001:db8:100::2', '2001:db8:200::1', '2001:db8:300::5')}
    algs = [('esp', 'AES-GCM', 20, None, 0), ('esp', 'AES-CBC', 16, 'SHA2-256-128', 32),
            ('ah', None, 0, 'HMAC-SHA1-96', 20), ('ah', None, 0, 'SHA2-256-128', 32),
            ('ah', None, 0, 'SHA2-512-256', 64)]
    fails = 0
    n = 0

    def sa(proto, crypt, ekey, auth, akey, spi, d, mode, src, dst, esn, seq):
        return dict(proto=proto, crypt=crypt, ekey=ekey, auth=auth, akey=akey, spi=spi,
                    dir=d, mode=mode, src=src, dst=dst, esn=esn, seq=seq)

    for fam, (ro, po, ri, pi) in addrs.items():
        for mode in ('transport', 'tunnel'):
            # ESN from 1, and from just below 2^32: the third packet carries a
            # high half of 1.
            for esn, first in ((False, 1), (True, 1), (True, (1 << 32) - 2)):
                combos = [[a] for a in algs] + [[algs[0], algs[3]], [algs[1], algs[4]]]
                for combo in combos:
                    sas_a, sas_b, spis = [], [], []
                    for i, (proto, crypt, el, auth, al) in enumerate(combo):
                        ek = os.urandom(el).hex() if el else None
                        ak = os.urandom(al).hex() if al else None
                        spi = 0x3000 + i
                        m = mode if i == 0 else 'transport'
                        src, dst = (po, ro)
                        sas_a.append(sa(proto, crypt, ek, auth, ak, spi, 'out', m, src, dst, esn,
                                        first))
                        sas_b.append(sa(proto, crypt, ek, auth, ak, spi, 'in', m, src, dst, esn,
                                        first))
                        spis.append(spi)
                    if mode == 'tunnel' and len(combo) > 1:
                        continue
                    local, remote = (pi, ri) if mode == 'tunnel' else (po, ro)
                    a = Engine(dict(sas=sas_a, flows={'f': {
                        'family': fam, 'local': local, 'remote': remote, 'out': spis, 'in': []}}))
                    b = Engine(dict(sas=sas_b, flows={'f': {
                        'family': fam, 'local': remote, 'remote': local, 'out': [],
                        'in': spis[::-1]}}))
                    b.quiet = True
                    label = '%s %s %s%s' % ('IPv' + fam, mode, '+'.join(
                        '%s/%s' % (c[0], c[1] or c[3]) for c in combo),
                        (' esn from 0x%x' % first) if esn else '')
                    for k in range(3):
                        n += 1
                        inner = echo(a.flows['f'], 7, k, os.urandom(40 + k), False)
                        data = a.protect(a.flows['f'], inner)
                        pkt = IP(data) if fam == '4' else IPv6(data)
                        s = wire_summary(data)
                        want = [PROTO_NUM[c[0]] for c in combo][::-1]
                        if s[2][:len(want)] != want:
                            log('FAIL %s: wire protocols %s' % (label, s[2]))
                            fails += 1
                        if combo[-1][0] == 'ah':
                            got, want_icv = ah_icv_by_hand(pkt, a.out[spis[-1]],
                                                           (first + k) >> 32)
                            if got != want_icv:
                                log('FAIL %s: AH ICV differs from the hand-made one' % label)
                                fails += 1
                        res = b.accept(pkt)
                        if res is None or raw(res[1]) != raw(reparse(inner)):
                            log('FAIL %s: did not open to the same packet: %s' %
                                (label, b.errors))
                            fails += 1
                        b.errors = []
                        iphl = 20 if fam == '4' else 40
                        spots = [len(data) - 1, len(data) - 30]
                        if combo[-1][0] == 'ah':
                            spots.append(iphl + 12)
                        for pos in spots:
                            bad = bytearray(data)
                            bad[pos] ^= 1
                            # A fresh receiver: the good packet already moved
                            # the sequence window of b.
                            c2 = Engine(dict(sas=sas_b, flows=b.cfg['flows']))
                            c2.quiet = True
                            pb = IP(bytes(bad)) if fam == '4' else IPv6(bytes(bad))
                            if c2.accept(pb) is not None:
                                log('FAIL %s: a flipped byte at %d went unnoticed' % (label, pos))
                                fails += 1
                    log('ok %s' % label)
    log('selftest: %d packets, %d failures' % (n, fails))
    return 1 if fails else 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == '--selftest':
        return selftest()
    if len(sys.argv) != 2:
        print('usage: host_peer.py CONFIG.json | --selftest', file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    return Peer(cfg).serve()


if __name__ == '__main__':
    sys.exit(main())
