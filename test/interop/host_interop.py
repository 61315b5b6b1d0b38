#!/usr/bin/python3
"""Interop tests of ipsec(4) host traffic: the example router in host mode
(ipsecifd -H) against an independent ESP and AH peer (host_peer.py, on
Debian's python3-scapy).

Each run makes fresh network namespaces joined by veth pairs on
documentation addresses:

  router  ipsecifd -H: the namespace's own and forwarded traffic goes
          through the library's SPD (policies and SAs given with
          `ipsecifctl setkey -c`); a UDP echo server on port 7777
  peer    host_peer.py: the other end, a host (transport mode) or a
          security gateway for 203.0.113.0/24 and 2001:db8:300::/64
          (tunnel mode), whose hosts exist only in the script
  host    (tunnel-fwd cases) a third namespace behind the router, on
          192.0.2.0/24 and 2001:db8:200::/64, whose traffic the router
          forwards; it runs the pings and the UDP echo server then

Every case checks both directions in each family: the router side pings
the peer (the peer opens and verifies each request and answers
protected), and the peer sends protected echo requests and UDP datagrams
that the router side answers (protected again). The peer records every
frame on the veth: nothing of a protected flow may cross it in clear, and
every frame of it must carry the SAs' protocols in the right order. The
negative cases send tampered packets, replayed packets and cleartext that
the inbound policy requires to be protected; they must go unanswered and
be counted (`ipsecifctl stats`, or the nftables table of host mode for
cleartext).

usage: host_interop.py --bindir DIR CASE   (host_interop.py --list prints the cases)

Exit status: 0 passed, 1 failed, 77 skipped (not root, no scapy for
/usr/bin/python3, a tool missing, or an ipsecifd without -H). With
IPSECIF_INTEROP_KEEP=1 in the environment the run's files (daemon log,
peer configuration with keys, the setkey script) are kept and their folder
printed.
"""

import ipaddress
import json
import os
import re
import subprocess
import sys

from netns_lab import PYTHON, Failure, RouterLab, Skip, counter, drive, log, run

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, 'host_peer.py')
NS_PREFIX = 'ipsecif-ht-'
UDP_PORT = 7777

# The link between router and peer: the outer addresses (transport mode:
# also the flow's addresses).
OUTER = {
    '4': ('198.51.100.1', '198.51.100.2', 24),
    '6': ('2001:db8:100::1', '2001:db8:100::2', 64),
}
# Tunnel mode: the router side's network (the router's own inner address
# on lo, or on the link to the host namespace), the host behind it, and
# the gateway's network with the one host the peer plays.
R_NET = {'4': ('192.0.2.0/24', '192.0.2.1', 24), '6': ('2001:db8:200::/64', '2001:db8:200::1', 64)}
H_ADDR = {'4': '192.0.2.10', '6': '2001:db8:200::10'}
P_NET = {'4': '203.0.113.0/24', '6': '2001:db8:300::/64'}
P_HOST = {'4': '203.0.113.5', '6': '2001:db8:300::5'}
# Documentation MAC addresses (RFC 7042).
MAC = {'vr': '00:00:5e:00:53:01', 'vp': '00:00:5e:00:53:02', 'vrh': '00:00:5e:00:53:03',
       'vh': '00:00:5e:00:53:04'}

# Algorithms: setkey words and key lengths, scapy names.
ESP_ALGS = {
    'gcm': dict(e='aes-gcm-16', ekey=20, scapy_e='AES-GCM', a=None, akey=0, scapy_a=None),
    'cbc-sha256': dict(e='aes-cbc', ekey=16, scapy_e='AES-CBC', a='hmac-sha256', akey=32,
                       scapy_a='SHA2-256-128'),
}
AH_ALGS = {
    'sha1': dict(a='hmac-sha1', akey=20, scapy_a='HMAC-SHA1-96'),
    'sha256': dict(a='hmac-sha256', akey=32, scapy_a='SHA2-256-128'),
    'sha512': dict(a='hmac-sha512', akey=64, scapy_a='SHA2-512-256'),
}
PROTO_NUM = {'esp': 50, 'ah': 51}
ND_TYPES = range(133, 138)


def case(topo, sec, kind='traffic', fams=('4', '6'), esn=False, wrap=False, ext6=False):
    """topo: transport, tunnel-host or tunnel-fwd; sec: (protocol,
    algorithm) pairs, innermost first, as the policy's request list; wrap:
    the peer's sequence numbers jump to just below 2^32 and cross it (ESN),
    so the router must infer a high half of 1; ext6: the peer's IPv6
    packets carry hop-by-hop and destination options headers in front of
    AH or ESP (which an IPv6 raw socket gives the router apart)."""
    return dict(topo=topo, sec=sec, kind=kind, fams=list(fams), esn=esn, wrap=wrap, ext6=ext6)


CASES = {
    'transport-esp-gcm': case('transport', [('esp', 'gcm')]),
    'transport-esp-cbc-sha256': case('transport', [('esp', 'cbc-sha256')]),
    'transport-esp-esn-wrap-cbc-sha256': case('transport', [('esp', 'cbc-sha256')], esn=True,
                                              wrap=True),
    'transport-esp-esn-wrap-gcm': case('transport', [('esp', 'gcm')], esn=True, wrap=True),
    'transport-ah-sha1': case('transport', [('ah', 'sha1')]),
    'transport-ah-sha256': case('transport', [('ah', 'sha256')]),
    'transport-ah-sha512': case('transport', [('ah', 'sha512')]),
    'transport-ah-esn-wrap-sha512': case('transport', [('ah', 'sha512')], esn=True, wrap=True),
    'transport-ah-ext6-sha256': case('transport', [('ah', 'sha256')], fams=('6',), ext6=True),
    'bundle-esp-gcm-ah-sha1-ext6': case('transport', [('esp', 'gcm'), ('ah', 'sha1')],
                                        fams=('6',), ext6=True),
    'tunnel-host-esp-gcm': case('tunnel-host', [('esp', 'gcm')]),
    'tunnel-fwd-esp-cbc-sha256': case('tunnel-fwd', [('esp', 'cbc-sha256')]),
    'tunnel-host-ah-sha256': case('tunnel-host', [('ah', 'sha256')]),
    'tunnel-fwd-ah-sha1': case('tunnel-fwd', [('ah', 'sha1')]),
    'bundle-esp-gcm-ah-sha256': case('transport', [('esp', 'gcm'), ('ah', 'sha256')]),
    'bundle-esp-cbc-sha256-ah-sha1-esn': case('transport', [('esp', 'cbc-sha256'),
                                                            ('ah', 'sha1')], esn=True),
    'tamper-esp-gcm': case('transport', [('esp', 'gcm')], kind='tamper'),
    'tamper-ah-sha256': case('transport', [('ah', 'sha256')], kind='tamper'),
    'tamper-tunnel-fwd-esp-cbc-sha256': case('tunnel-fwd', [('esp', 'cbc-sha256')],
                                             kind='tamper'),
    'tamper-bundle-esp-gcm-ah-sha1': case('transport', [('esp', 'gcm'), ('ah', 'sha1')],
                                          kind='tamper'),
    'replay-esp-cbc-sha256': case('transport', [('esp', 'cbc-sha256')], kind='replay'),
    'replay-ah-sha1': case('transport', [('ah', 'sha1')], kind='replay', esn=True),
    'clear-transport-esp-gcm': case('transport', [('esp', 'gcm')], kind='clear'),
    'clear-tunnel-fwd-ah-sha256': case('tunnel-fwd', [('ah', 'sha256')], kind='clear'),
}


def norm(a):
    return str(ipaddress.ip_address(a))


def in_net(a, net):
    return ipaddress.ip_address(a) in ipaddress.ip_network(net)


# A UDP echo server for the router side (plain sockets, no scapy).
UDP_ECHO = r'''
import select, socket, sys
socks = []
for fam, addr in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, int(sys.argv[1])))
    socks.append(s)
print('READY', flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
'''


class Lab(RouterLab):
    """The namespaces, the daemon, the peer."""

    daemon_args = ('-H',)

    def __init__(self, bindir, c):
        super().__init__(bindir, NS_PREFIX, 'ipsecif-hostinterop-')
        self.c = c
        self.nsp = self.tag + '-peer'
        self.nsh = self.tag + '-host' if c['topo'] == 'tunnel-fwd' else None
        self.peer = None
        self.sas = []      # the peer's SAs
        self.flows = {}    # the peer's flows, by family
        self.script = []   # the router's setkey script

    def start_failed(self, text):
        if self.daemon.returncode == 2 and "invalid option -- 'H'" in text:
            raise Skip('this ipsecifd has no host mode (-H)')
        super().start_failed(text)

    def keep_files(self):
        with open(os.path.join(self.tmp, 'setkey.txt'), 'w') as f:
            f.write('\n'.join(self.script) + '\n')

    def veth(self, ns_a, a, ns_b, b):
        run(['ip', '-n', ns_a, 'link', 'add', a, 'address', MAC[a], 'type', 'veth', 'peer',
             'name', b, 'address', MAC[b], 'netns', ns_b])

    def addr(self, ns, dev, a, plen):
        extra = ['nodad'] if ':' in a else []
        run(['ip', '-n', ns, 'addr', 'add', '%s/%d' % (a, plen), 'dev', dev] + extra)

    @property
    def pinger(self):
        """The namespace whose host talks to the peer's side."""
        return self.nsh or self.nsr

    def setup(self):
        c = self.c
        self.make_ns(*(ns for ns in (self.nsr, self.nsp, self.nsh) if ns is not None))
        self.veth(self.nsr, 'vr', self.nsp, 'vp')
        for fam in ('4', '6'):
            r, p, plen = OUTER[fam]
            self.addr(self.nsr, 'vr', r, plen)
            self.addr(self.nsp, 'vp', p, plen)
        run(['ip', '-n', self.nsr, 'link', 'set', 'vr', 'up'])
        run(['ip', '-n', self.nsp, 'link', 'set', 'vp', 'up'])
        if c['topo'] != 'transport':
            for fam in ('4', '6'):
                # The peer's kernel routes what the script sends from its
                # gateway's hosts (the cleartext cases need it).
                run(['ip', '-n', self.nsp, '-' + fam, 'route', 'add', R_NET[fam][0], 'via',
                     OUTER[fam][0]])
        if c['topo'] == 'tunnel-host':
            for fam in ('4', '6'):
                a = R_NET[fam][1]
                self.addr(self.nsr, 'lo', a, 32 if fam == '4' else 128)
        if c['topo'] == 'tunnel-fwd':
            self.veth(self.nsr, 'vrh', self.nsh, 'vh')
            for fam in ('4', '6'):
                self.addr(self.nsr, 'vrh', R_NET[fam][1], R_NET[fam][2])
                self.addr(self.nsh, 'vh', H_ADDR[fam], R_NET[fam][2])
            run(['ip', '-n', self.nsr, 'link', 'set', 'vrh', 'up'])
            run(['ip', '-n', self.nsh, 'link', 'set', 'vh', 'up'])
            for fam in ('4', '6'):
                run(['ip', '-n', self.nsh, '-' + fam, 'route', 'add', 'default', 'via',
                     R_NET[fam][1]])
            self.ns(self.nsr, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
            self.ns(self.nsr, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1')
        self.make_keys()
        self.start_peer()
        self.start_daemon()
        log('setkey -c:\n  ' + '\n  '.join(re.sub(r'0x[0-9a-f]{16,}', '0x...', s)
                                        for s in self.script))
        self.ctl('setkey', '-c', stdin='\n'.join(self.script) + '\n')
        self.start_udp_echo()

    def make_keys(self):
        """SAs, policies and the peer's flows for each family."""
        c = self.c
        for fam in c['fams']:
            ro, po, _ = OUTER[fam]
            mode = 'transport' if c['topo'] == 'transport' else 'tunnel'
            to_peer, to_router = [], []
            for i, (proto, alg) in enumerate(c['sec']):
                a = ESP_ALGS[alg] if proto == 'esp' else AH_ALGS[alg]
                for d, src, dst, spis in (('in', ro, po, to_peer), ('out', po, ro, to_router)):
                    spi = (0x1000 if d == 'in' else 0x2000) | (int(fam) << 8) | (i + 1)
                    ek = os.urandom(a['ekey']).hex() if a.get('ekey') else None
                    ak = os.urandom(a['akey']).hex() if a['akey'] else None
                    words = ['add', src, dst, proto, '0x%x' % spi, '-m', mode, '-r', '8']
                    if c['esn']:
                        words.append('-esn')
                    if ek:
                        words += ['-E', a['e'], '0x' + ek]
                    if ak:
                        words += ['-A', a['a'], '0x' + ak]
                    self.script.append(' '.join(words) + ';')
                    self.sas.append(dict(proto=proto, spi=spi, dir=d, mode=mode, src=src, dst=dst,
                                         crypt=a.get('scapy_e'), ekey=ek, auth=a['scapy_a'],
                                         akey=ak, esn=c['esn']))
                    spis.append(spi)
            if mode == 'transport':
                sel_r, sel_p = ro, po
                local, remote = po, ro
                reqs = ' '.join('%s/transport//require' % p for p, _ in c['sec'])
                reqs_in = reqs
            else:
                sel_r = R_NET[fam][1] if c['topo'] == 'tunnel-host' else R_NET[fam][0]
                sel_p = P_NET[fam]
                local = P_HOST[fam]
                remote = R_NET[fam][1] if c['topo'] == 'tunnel-host' else H_ADDR[fam]
                reqs = ' '.join('%s/tunnel/%s-%s/require' % (p, ro, po) for p, _ in c['sec'])
                reqs_in = ' '.join('%s/tunnel/%s-%s/require' % (p, po, ro) for p, _ in c['sec'])
            self.script.append('spdadd %s %s any -P out ipsec %s;' % (sel_r, sel_p, reqs))
            self.script.append('spdadd %s %s any -P in ipsec %s;' % (sel_p, sel_r, reqs_in))
            self.flows[fam] = {'family': fam, 'local': local, 'remote': remote,
                               'out': to_router, 'in': to_peer[::-1], 'ext6': c['ext6']}

    def start_udp_echo(self):
        p = subprocess.Popen(['ip', 'netns', 'exec', self.pinger, PYTHON, '-c', UDP_ECHO,
                              str(UDP_PORT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.children.append(p)
        if p.stdout.readline().strip() != 'READY':
            raise Failure('the UDP echo server did not start')

    def start_peer(self):
        cfg = dict(ifname='vp', sas=self.sas, udp_port=UDP_PORT,
                   flows={'v' + fam: f for fam, f in self.flows.items()})
        path = os.path.join(self.tmp, 'peer.json')
        with open(path, 'w') as f:
            json.dump(cfg, f)
        self.peer = subprocess.Popen(['ip', 'netns', 'exec', self.nsp, PYTHON, PEER, path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.children.append(self.peer)

    def cleanup(self):
        if self.peer is not None and self.peer.poll() is None:
            try:
                self.peer.stdin.close()
            except OSError:
                pass
        return super().cleanup()

    # ---- the peer ----
    def peer_send(self, cmd, **kw):
        kw['cmd'] = cmd
        self.peer.stdin.write(json.dumps(kw) + '\n')
        self.peer.stdin.flush()
        if cmd == 'wire':
            return None
        line = self.peer_line('READY')
        if line is None:
            raise Failure('the peer exited (%s) before %s' % (self.peer.wait(), cmd))
        return line

    def peer_line(self, want):
        """Log the peer's lines up to the one that starts with want (the
        peer's commands all end within their own timeouts)."""
        while True:
            line = self.peer.stdout.readline()
            if not line:
                return None
            line = line.rstrip('\n')
            if line.startswith('DONE '):
                if cmd_is_wire(line):
                    log('  peer: DONE (wire report)')
                else:
                    log('  peer: ' + line)
            else:
                log('  peer: ' + line)
            if line == want or line.startswith(want + ' '):
                return line

    def peer_done(self):
        line = self.peer_line('DONE')
        if line is None:
            raise Failure('the peer exited (%s)' % self.peer.wait())
        return json.loads(line[5:])

    def peer_cmd(self, cmd, **kw):
        """Run a command to its end; its result, errors raise."""
        self.peer_send(cmd, **kw)
        res = self.peer_done()
        if res['errors']:
            raise Failure('peer %s %s: %s' % (cmd, kw, '; '.join(res['errors'])))
        return res

    # ---- the router's side ----
    def nft_drops(self):
        """{rule comment or text: packets} of the drop rules of host mode's
        nftables table, or None when there is no such table."""
        p = self.ns(self.nsr, 'nft', 'list', 'table', 'inet', 'ipsecif_host', check=False)
        if p.returncode != 0:
            return None
        res = {}
        for line in p.stdout.splitlines():
            m = re.search(r'counter packets (\d+) bytes \d+ drop', line)
            if m:
                rule = re.sub(r'counter packets \d+ bytes \d+', 'counter', line.strip())
                res[rule] = int(m.group(1))
        return res

    def ping(self, fam, count=3):
        f = self.flows[fam]
        cmd = ['ping', '-' + fam, '-n', '-c', str(count), '-i', '0.2', '-W', '2']
        if self.c['topo'] == 'tunnel-host':
            cmd += ['-I', f['remote']]
        cmd.append(f['local'])
        p = self.ns(self.pinger, *cmd, check=False, timeout=30)
        log('  ' + '\n  '.join(p.stdout.rstrip().splitlines()))
        if p.returncode != 0 or not re.search(r'\b%d received' % count, p.stdout) or \
                'DUP!' in p.stdout:
            return '%s: not %d replies' % (' '.join(cmd), count)
        return None


def cmd_is_wire(line):
    return line.startswith('DONE {"wire"')


def delta(before, after, pattern):
    return counter(after, pattern) - counter(before, pattern)


ST_SUCCESS = r'^inbound packets processed successfully'
ST_REPLAY = r'^inbound packets .*replay'
ST_AUTH = r'^inbound packets .*authentication'
ST_HOST_IN = r'^host packets received with IPsec'
ST_HOST_OUT = r'^host packets sent with IPsec'


# ---- the checks ----
def check_wire(lab, report, want_frames):
    """Every frame of a protected flow carries its SAs' protocols; nothing
    of it crosses in clear. want_frames: per family, the least number of
    protected frames from the router."""
    c = lab.c
    wire = report['wire']
    problems = []
    seen = {fam: 0 for fam in c['fams']}
    outer = {fam: (norm(OUTER[fam][0]), norm(OUTER[fam][1])) for fam in ('4', '6')}
    for d, src, dst, chain, icmp6 in wire:
        fam = '6' if ':' in src else '4'
        desc = '%s %s -> %s %s' % (d, src, dst, chain)
        if d == 'out' and c['kind'] == 'clear' and chain[:1] != [PROTO_NUM[c['sec'][-1][0]]]:
            # The cleartext the peer itself sent on purpose.
            continue
        if chain[:1] == [58] and icmp6 in ND_TYPES:
            continue
        pair = (src, dst)
        if fam in c['fams'] and pair in (outer[fam], outer[fam][::-1]):
            want = [PROTO_NUM[p] for p, _ in c['sec']][::-1]
            if c['topo'] == 'transport':
                ok = chain[:len(want)] == want
            else:
                ok = chain[:len(want)] == want and (want[-1] == 50 or
                                                    chain[len(want):len(want) + 1] ==
                                                    [4 if fam == '4' else 41])
            if not ok:
                problems.append('%s: expected %s%s' % (desc, want,
                                                       '' if c['topo'] == 'transport'
                                                       else ' then IP-in-IP'))
            elif d == 'in':
                seen[fam] += 1
            continue
        if c['topo'] != 'transport' and fam in c['fams']:
            f = lab.flows[fam]
            side_r = in_net(src, R_NET[fam][0]) or in_net(dst, R_NET[fam][0])
            side_p = in_net(src, P_NET[fam]) or in_net(dst, P_NET[fam])
            if side_r and side_p:
                problems.append('%s: a tunnelled flow (%s <-> %s) in clear' %
                                (desc, f['remote'], f['local']))
    for fam, n in seen.items():
        log('wire IPv%s: %d protected frames from the router' % (fam, n))
        if n < want_frames.get(fam, 0):
            problems.append('IPv%s: %d protected frames from the router, expected at least %d' %
                            (fam, n, want_frames[fam]))
    if problems:
        raise Failure('on the veth:\n  ' + '\n  '.join(problems[:20]))
    log('wire: %d frames seen, every one of the protected flows protected as the policy says' %
        len(wire))


def check_sas(lab, report, sent, opened):
    """The peer's SA counters: each of the peer's SAs sent `sent` packets,
    each router SA was opened at least `opened` times."""
    problems = []
    for name, s in sorted(report['sas'].items()):
        log('peer SA %s (%s): sent %d, opened %d' % (name, s['dir'], s['sent'], s['opened']))
        if s['dir'] == 'out' and sent is not None and s['sent'] != sent:
            problems.append('%s sent %d, expected %d' % (name, s['sent'], sent))
        if s['dir'] == 'in' and s['opened'] < opened:
            problems.append('%s opened %d, expected at least %d' % (name, s['opened'], opened))
    if problems:
        raise Failure('peer SAs: ' + '; '.join(problems))


def case_traffic(lab):
    c = lab.c
    before = lab.stats()
    for fam in c['fams']:
        flow = 'v' + fam
        f = lab.flows[fam]
        log('-- IPv%s: %s pings %s through the policy' % (fam, f['remote'], f['local']))
        lab.peer_send('respond', flow=flow, count=3, timeout=10)
        bad_ping = lab.ping(fam)
        res = lab.peer_done()
        if res['errors'] or res['answered'] != 3:
            raise Failure('%sthe peer answering the pings: %s' %
                          (bad_ping + '; ' if bad_ping else '', res))
        if bad_ping:
            raise Failure(bad_ping)
        log('-- IPv%s: the peer pings %s' % (fam, f['remote']))
        if c['wrap']:
            # A receiver infers the high half from the top of its window
            # (RFC 4303 Appendix A2.1): a first jump gets that top above
            # the window's size, the second goes to just below 2^32; the
            # first UDP datagram then has the number 2^32 (low half 0).
            lab.peer_cmd('setseq', flow=flow, seq=1000)
            lab.peer_cmd('ping', flow=flow, count=1)
            lab.peer_cmd('setseq', flow=flow, seq=(1 << 32) - 2)
            lab.peer_cmd('ping', flow=flow, count=2)
        else:
            lab.peer_cmd('ping', flow=flow, count=3)
        log('-- IPv%s: the peer sends UDP to %s port %d' % (fam, f['remote'], UDP_PORT))
        lab.peer_cmd('udp', flow=flow, count=2)
    after = lab.stats()
    report = lab.peer_cmd('wire')
    nf = len(c['fams'])
    # Per family the router opened 3 echo replies, 3 echo requests and 2
    # UDP datagrams, and protected as many.
    n = 8 * nf
    d_in, d_out = delta(before, after, ST_HOST_IN), delta(before, after, ST_HOST_OUT)
    log('counters: host in with IPsec +%d, host out with IPsec +%d, inbound success +%d' %
        (d_in, d_out, delta(before, after, ST_SUCCESS)))
    if d_in < n or d_out < n:
        raise Failure('host IPsec counters rose by %d in, %d out; expected at least %d each' %
                      (d_in, d_out, n))
    for pat, what in ((ST_REPLAY, 'replay'), (ST_AUTH, 'authentication')):
        if delta(before, after, pat) != 0:
            raise Failure('%s failures counted during clean traffic' % what)
    check_wire(lab, report, {fam: 8 for fam in c['fams']})
    check_sas(lab, report, 8, 8)
    if c['wrap']:
        for name, s in sorted(report['sas'].items()):
            if s['dir'] == 'out' and s['next_seq'] != (1 << 32) + 2:
                raise Failure('%s did not cross 2^32: next sequence number 0x%x' %
                              (name, s['next_seq']))
        log('the peer\'s SAs crossed 2^32: the router took sequence numbers 0x%x and 0x%x' %
            ((1 << 32), (1 << 32) + 1))


def case_negative(lab):
    c = lab.c
    kind = c['kind']
    before = lab.stats()
    drops_before = lab.nft_drops() if kind == 'clear' else None
    for fam in c['fams']:
        log('-- IPv%s: %s' % (fam, kind))
        lab.peer_cmd(kind, flow='v' + fam)
    after = lab.stats()
    report = lab.peer_cmd('wire')
    nf = len(c['fams'])
    d_success = delta(before, after, ST_HOST_IN)
    d_replay = delta(before, after, ST_REPLAY)
    d_auth = delta(before, after, ST_AUTH)
    log('counters: host in with IPsec +%d, replay +%d, authentication +%d' %
        (d_success, d_replay, d_auth))
    want_replay = nf if kind == 'replay' else 0
    want_auth = 2 * nf if kind == 'tamper' else 0
    # One good packet per family went in (and its reply out); the bad ones
    # must be counted under their reason.
    if d_replay != want_replay or d_auth != want_auth or d_success < nf:
        raise Failure('expected host in with IPsec +%d or more, replay +%d, authentication +%d' %
                      (nf, want_replay, want_auth))
    if kind == 'clear':
        drops_after = lab.nft_drops()
        if drops_before is None or drops_after is None:
            raise Failure('no nftables table inet ipsecif_host in the router namespace: '
                          'what refused the cleartext is not known')
        rose = {k: v - drops_before.get(k, 0) for k, v in drops_after.items()
                if v != drops_before.get(k, 0)}
        log('nft drop counters that rose: %s' % (rose or 'none'))
        if sum(rose.values()) < nf:
            raise Failure('the cleartext requests were not counted by a drop rule of '
                          'inet ipsecif_host (%d of %d)' % (sum(rose.values()), nf))
    check_wire(lab, report, {fam: 1 for fam in c['fams']})
    check_sas(lab, report, None, 1)


def scapy_ok():
    probe = subprocess.run([PYTHON, '-c', 'import scapy.layers.ipsec, cryptography'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


def prereq(c):
    if not scapy_ok():
        return ('%s has no scapy with its IPsec layer (Debian: python3-scapy, '
                'python3-cryptography)' % PYTHON)
    return None


def run_case(lab):
    lab.setup()
    if lab.c['kind'] == 'traffic':
        case_traffic(lab)
    else:
        case_negative(lab)


def main():
    return drive(CASES, NS_PREFIX, ('ip', 'ping', 'nft', 'sysctl'), prereq, Lab, run_case)


if __name__ == '__main__':
    sys.exit(main())
