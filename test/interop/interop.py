#!/usr/bin/python3
"""Interop tests: the example router (ipsecifd, ipsecifctl) against an
independent ESP peer (esp_peer.py, on Debian's python3-scapy).

Each run makes two network namespaces joined by a veth pair on documentation
addresses: the router side runs ipsecifd with one ipsec0 interface, the peer
side runs esp_peer.py, an ESP tunnel-mode endpoint. ipsecif sends ESP in
transport mode over IP-in-IP, which equals tunnel mode on the wire.

usage: interop.py --bindir DIR CASE     (interop.py --list prints the cases)

Exit status: 0 passed, 1 failed, 77 skipped (not root, or no scapy for
/usr/bin/python3, or a tool the case needs is missing). With
IPSECIF_INTEROP_KEEP=1 in the environment the run's files (daemon log, peer
configurations with keys, captures) are kept and their folder printed.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

from netns_lab import PYTHON, Failure, RouterLab, counter, drive, log, run

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, 'esp_peer.py')
NS_PREFIX = 'ipsecif-it-'

# Documentation addresses: outer on the veth, inner on ipsec0 and in the peer.
OUTER = {
    '4': ('198.51.100.1', '198.51.100.2', 24),
    '6': ('2001:db8:100::1', '2001:db8:100::2', 64),
}
INNER = {
    '4': ('192.0.2.1', '192.0.2.2'),
    '6': ('2001:db8:200::1', '2001:db8:200::2'),
}
# SPIs: router -> peer 0x1001 (inner IPv4) and 0x1003 (inner IPv6); peer ->
# router 0x2001 and 0x2003. ipsecif's IPv4 and IPv6 policies have their own
# unique ids, so each inner family has its own pair of SAs.
SPI_OUT = {'4': 0x1001, '6': 0x1003}
SPI_IN = {'4': 0x2001, '6': 0x2003}
# With link0 (NAT-T) ipsecif's policies are 'require' rather than 'unique',
# so one SA per direction serves both inner families, as with a NAT-T peer
# that negotiates one tunnel-mode SA pair.
SPI_OUT_NATT = {'4': 0x1001, '6': 0x1001}
SPI_IN_NATT = {'4': 0x2001, '6': 0x2001}

# Algorithms: setkey words, scapy names, key lengths, Wireshark's names.
ALGS = {
    'gcm': dict(setkey_e='aes-gcm-16', ekey=20, scapy_e='AES-GCM', setkey_a=None, akey=0,
                scapy_a=None, ws_e='AES-GCM with 16 octet ICV [RFC4106]', ws_a='NULL'),
    'cbc-sha256': dict(setkey_e='aes-cbc', ekey=16, scapy_e='AES-CBC', setkey_a='hmac-sha256',
                       akey=32, scapy_a='SHA2-256-128', ws_e='AES-CBC [RFC3602]',
                       ws_a='HMAC-SHA-256-128 [RFC4868]'),
    'chacha': dict(setkey_e='chacha20-poly1305', ekey=36, scapy_e='CHACHA20-POLY1305',
                   setkey_a=None, akey=0, scapy_a=None, ws_e=None, ws_a='NULL'),
}


def case(kind, alg, outer, inner, natt=False, esn=False):
    return dict(kind=kind, alg=alg, outer=outer, inner=inner, natt=natt, esn=esn)


CASES = {
    'gcm-4in4': case('ping', 'gcm', '4', ['4']),
    'gcm-6in4': case('ping', 'gcm', '4', ['6']),
    'gcm-4in6': case('ping', 'gcm', '6', ['4']),
    'gcm-6in6': case('ping', 'gcm', '6', ['6']),
    'cbc-sha256-4in4': case('ping', 'cbc-sha256', '4', ['4', '6']),
    'cbc-sha256-6in6': case('ping', 'cbc-sha256', '6', ['4', '6']),
    'chacha-4in4': case('ping', 'chacha', '4', ['4', '6']),
    'chacha-4in6': case('ping', 'chacha', '6', ['4', '6']),
    'esn-gcm-4in6': case('ping', 'gcm', '6', ['4', '6'], esn=True),
    'esn-cbc-sha256-6in4': case('ping', 'cbc-sha256', '4', ['4', '6'], esn=True),
    'natt-gcm-4in4': case('ping', 'gcm', '4', ['4', '6'], natt=True),
    'natt-cbc-sha256-6in4': case('ping', 'cbc-sha256', '4', ['6'], natt=True),
    'replay-gcm-4in4': case('replay', 'gcm', '4', ['4']),
    'replay-cbc-sha256-6in6': case('replay', 'cbc-sha256', '6', ['6'], esn=True),
    'tamper-gcm-4in4': case('tamper', 'gcm', '4', ['4']),
    'tamper-cbc-sha256-6in4': case('tamper', 'cbc-sha256', '4', ['6']),
    'tamper-natt-chacha-4in4': case('tamper', 'chacha', '4', ['4'], natt=True),
    'tshark-gcm-4in4': case('tshark', 'gcm', '4', ['4']),
    'tshark-cbc-sha256-6in6': case('tshark', 'cbc-sha256', '6', ['6']),
}


class Lab(RouterLab):
    """Two namespaces, a veth pair, ipsecifd on the router side."""

    def __init__(self, bindir, c):
        super().__init__(bindir, NS_PREFIX, 'ipsecif-interop-')
        self.c = c
        self.nsp = self.tag + '-peer'
        self.keys = {}
        self.seq = {}
        self.spi_out = SPI_OUT_NATT if c['natt'] else SPI_OUT
        self.spi_in = SPI_IN_NATT if c['natt'] else SPI_IN

    def setup(self):
        o = OUTER[self.c['outer']]
        self.make_ns(self.nsr, self.nsp)
        run(['ip', '-n', self.nsr, 'link', 'add', 'vr', 'type', 'veth', 'peer', 'name', 'vp',
             'netns', self.nsp])
        extra = ['nodad'] if self.c['outer'] == '6' else []
        run(['ip', '-n', self.nsr, 'addr', 'add', '%s/%d' % (o[0], o[2]), 'dev', 'vr'] + extra)
        run(['ip', '-n', self.nsp, 'addr', 'add', '%s/%d' % (o[1], o[2]), 'dev', 'vp'] + extra)
        run(['ip', '-n', self.nsr, 'link', 'set', 'vr', 'up'])
        run(['ip', '-n', self.nsp, 'link', 'set', 'vp', 'up'])
        self.start_daemon()
        self.configure()

    # ---- router configuration, as ipsecif(4) and setkey(8) ----
    def configure(self):
        c = self.c
        ro, po = OUTER[c['outer']][0], OUTER[c['outer']][1]
        ri, pi = INNER['4']
        self.ctl('ifconfig', 'ipsec0', 'create')
        if c['natt']:
            self.ctl('ifconfig', 'ipsec0', 'link0')
        self.ctl('ifconfig', 'ipsec0', 'tunnel', ro, po)
        self.ctl('ifconfig', 'ipsec0', 'inet', ri + '/32', pi)
        self.ctl('ifconfig', 'ipsec0', 'inet6', INNER['6'][0] + '/64')
        self.ctl('ifconfig', 'ipsec0', 'up')
        listing = self.ctl('ifconfig', 'ipsec0').stdout
        log(listing.rstrip())
        m = re.search(r'unique id: v4 out (\d+) in (\d+), v6 out (\d+) in (\d+)', listing)
        if not m:
            raise Failure('no unique ids in the ipsec0 listing')
        uid = dict(zip(('4out', '4in', '6out', '6in'), (int(x) for x in m.groups())))
        alg = ALGS[c['alg']]
        script = []
        for fam in ('4',) if c['natt'] else ('4', '6'):
            for d, spi, src, dst in (('out', SPI_OUT[fam], ro, po), ('in', SPI_IN[fam], po, ro)):
                ek = os.urandom(alg['ekey']).hex()
                ak = os.urandom(alg['akey']).hex() if alg['akey'] else None
                self.keys[spi] = (ek, ak)
                proto = 'esp'
                if c['natt']:
                    proto = 'esp-udp'
                    src, dst = src + '[4500]', dst + '[4500]'
                words = ['add', src, dst, proto, '0x%x' % spi, '-m', 'transport', '-u',
                         str(uid[fam + d]), '-r', '8']
                if c['esn']:
                    words.append('-esn')
                words += ['-E', alg['setkey_e'], '0x' + ek]
                if ak:
                    words += ['-A', alg['setkey_a'], '0x' + ak]
                script.append(' '.join(words) + ';')
        log('setkey -c:\n  ' + '\n  '.join(re.sub(r'0x[0-9a-f]{16,}', '0x...', s)
                                        for s in script))
        self.ctl('setkey', '-c', stdin='\n'.join(script) + '\n')

    # ---- the peer ----
    def peer_config(self, mode, family=None, count=3, timeout=15):
        c = self.c
        alg = ALGS[c['alg']]
        inner = {}
        for fam in ('4', '6'):
            ek_out, ak_out = self.keys[self.spi_in[fam]]
            ek_in, ak_in = self.keys[self.spi_out[fam]]
            inner[fam] = dict(local=INNER[fam][1], remote=INNER[fam][0],
                              spi_out=self.spi_in[fam], ekey_out=ek_out, akey_out=ak_out,
                              spi_in=self.spi_out[fam], ekey_in=ek_in, akey_in=ak_in)
        cfg = dict(ifname='vp', local=OUTER[c['outer']][1], remote=OUTER[c['outer']][0],
                   natt=c['natt'], esn=c['esn'], crypt=alg['scapy_e'], auth=alg['scapy_a'],
                   inner=inner, mode=mode, family=family, count=count, timeout=timeout,
                   seq=self.seq)
        path = os.path.join(self.tmp, 'peer-%s-%s.json' % (mode, family))
        with open(path, 'w') as f:
            json.dump(cfg, f)
        return path

    def start_peer(self, mode, family=None, **kw):
        p = subprocess.Popen(['ip', 'netns', 'exec', self.nsp, PYTHON, PEER,
                              self.peer_config(mode, family, **kw)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.children.append(p)
        line = p.stdout.readline()
        while line and line.strip() != 'READY':
            log('  peer: ' + line.rstrip())
            line = p.stdout.readline()
        if not line:
            p.wait()
            raise Failure('the peer exited with %d before it was ready' % p.returncode)
        return p

    def finish_peer(self, p, timeout=40):
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            raise Failure('the peer did not finish:\n' + out)
        result = None
        for line in out.splitlines():
            log('  peer: ' + line)
            if line.startswith('RESULT '):
                result = json.loads(line[7:])
        if result is None:
            raise Failure('the peer printed no result (exit %d)' % p.returncode)
        self.seq.update(result.get('seq', {}))
        return p.returncode, result

    def run_peer(self, mode, family):
        return self.finish_peer(self.start_peer(mode, family))

    # ---- counters ----
    def if_io(self):
        """(input packets, output packets) of ipsec0."""
        listing = self.ctl('ifconfig', 'ipsec0').stdout
        m = re.search(r'input: (\d+) packets.*?output: (\d+) packets', listing)
        if not m:
            raise Failure('no input/output counters in the ipsec0 listing:\n' + listing)
        return int(m.group(1)), int(m.group(2))


# Patterns for the netstat-like lines of `ipsecifctl stats`.
ST_SUCCESS = r'^inbound packets .*success'
ST_REPLAY = r'^inbound packets .*replay'
ST_AUTH = r'^inbound packets .*(authentication|ICV)'


def fam_name(fam):
    return 'IPv' + fam


# ---- the cases ----
def case_ping(lab):
    c = lab.c
    before = lab.stats()
    for fam in c['inner']:
        dst = INNER[fam][1]
        log('-- router pings the peer\'s inner %s address %s through ipsec0' %
            (fam_name(fam), dst))
        peer = lab.start_peer('respond', fam)
        ping = lab.ns(lab.nsr, 'ping', '-%s' % fam, '-n', '-c', '3', '-i', '0.2', '-W', '3',
                      dst, check=False, timeout=30)
        log(ping.stdout.rstrip())
        rc, res = lab.finish_peer(peer)
        if ping.returncode != 0 or not re.search(r'\b3 received', ping.stdout):
            raise Failure('ping %s through ipsec0 failed' % dst)
        if rc != 0:
            raise Failure('the peer reported errors: %s' % res['errors'])
        log('-- the peer pings the router\'s inner %s address %s' % (fam_name(fam),
                                                                   INNER[fam][0]))
        rc, res = lab.run_peer('originate', fam)
        if rc != 0 or res['answered'] != 3:
            raise Failure('peer-originated pings: %s' % res)
    after = lab.stats()
    n = 6 * len(c['inner'])
    got = counter(after, ST_SUCCESS) - counter(before, ST_SUCCESS)
    if got < n:
        raise Failure('inbound success counter rose by %d, expected at least %d' % (got, n))
    for pat, name in ((ST_REPLAY, 'replay'), (ST_AUTH, 'authentication')):
        if counter(after, pat) != counter(before, pat):
            raise Failure('%s failures counted during clean traffic' % name)


def case_negative(lab, mode):
    fam = lab.c['inner'][0]
    before, io_before = lab.stats(), lab.if_io()
    rc, res = lab.run_peer(mode, fam)
    after, io_after = lab.stats(), lab.if_io()
    d_success = counter(after, ST_SUCCESS) - counter(before, ST_SUCCESS)
    d_replay = counter(after, ST_REPLAY) - counter(before, ST_REPLAY)
    d_auth = counter(after, ST_AUTH) - counter(before, ST_AUTH)
    d_in = io_after[0] - io_before[0]
    log('counter changes: inbound success +%d, replay +%d, auth +%d, ipsec0 input +%d' %
        (d_success, d_replay, d_auth, d_in))
    if rc != 0:
        raise Failure('the peer reported errors: %s' % res['errors'])
    want_replay, want_auth = (1, 0) if mode == 'replay' else (0, 2)
    # Exactly one good packet was sent (and answered); the bad ones must be
    # counted under their reason and nothing of them delivered.
    if (d_success, d_replay, d_auth, d_in) != (1, want_replay, want_auth, 1):
        raise Failure('expected inbound success +1, replay +%d, auth +%d, ipsec0 input +1' %
                      (want_replay, want_auth))


def tshark_fields(pcap, sas, fields):
    cmd = ['tshark', '-n', '-r', pcap, '-o', 'esp.enable_encryption_decode:TRUE', '-o',
           'esp.enable_authentication_check:TRUE']
    for sa in sas:
        cmd += ['-o', 'uat:esp_sa:' + ','.join('"%s"' % x for x in sa)]
    cmd += ['-Y', 'esp', '-T', 'fields', '-E', 'separator=|']
    for f in fields:
        cmd += ['-e', f]
    p = run(cmd, timeout=60)
    return [line.split('|') for line in p.stdout.splitlines() if line.strip()]


def case_tshark(lab):
    c = lab.c
    fam = c['inner'][0]
    alg = ALGS[c['alg']]
    pcap = os.path.join(lab.tmp, 'veth.pcap')
    # --immediate-mode: without it the last frames may still sit in the
    # capture ring when tcpdump is stopped, and are lost.
    cap = subprocess.Popen(['ip', 'netns', 'exec', lab.nsp, 'tcpdump', '-i', 'vp', '-n', '-U',
                            '--immediate-mode', '-w', pcap, 'esp or udp port 4500'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lab.children.append(cap)
    line = cap.stderr.readline()
    while line and 'listening on' not in line:
        line = cap.stderr.readline()
    if not line:
        raise Failure('tcpdump did not start')
    case_ping(lab)
    time.sleep(0.5)
    cap.send_signal(signal.SIGINT)
    cap.wait(timeout=10)
    ro, po = OUTER[c['outer']][0], OUTER[c['outer']][1]
    v = 'IPv' + c['outer']

    # Every SA goes to tshark, so that the TUN device's own IPv6 packets
    # (router solicitations) on the other family's SA decrypt too.
    def sa_rows(bad_key=False):
        rows = []
        for spi in sorted(lab.keys):
            src, dst = (ro, po) if spi in SPI_OUT.values() else (po, ro)
            ek, ak = lab.keys[spi]
            if bad_key and spi == SPI_OUT[fam]:
                ek = ('%02x' % (int(ek[:2], 16) ^ 1)) + ek[2:]
                if ak:
                    ak = ('%02x' % (int(ak[:2], 16) ^ 1)) + ak[2:]
            rows.append((v, src, dst, '0x%08x' % spi, alg['ws_e'], '0x' + ek, alg['ws_a'],
                         '0x' + ak if ak else ''))
        return rows

    icmp = 'icmp.type' if fam == '4' else 'icmpv6.type'
    src_f = 'ip.src' if fam == '4' else 'ipv6.src'
    fields = ['frame.number', 'esp.spi', 'esp.sequence', 'esp.icv_good', 'esp.icv_bad', icmp,
              src_f]
    rows = tshark_fields(pcap, sa_rows(), fields)
    log('tshark (frame | spi | seq | icv good | icv bad | inner ICMP type | sources):')
    for r in rows:
        log('  ' + ' | '.join(r))
    req, rep = ('8', '0') if fam == '4' else ('128', '129')
    out_spi = '0x%08x' % SPI_OUT[fam]
    for r in rows:
        if r[3] != '1' or r[4] == '1':
            raise Failure('tshark does not report a good ICV for frame %s' % r[0])
    # Each side sent 3 echo requests and answered the other's 3; the router's
    # inner packets come from its ipsec0 address. (Other inner packets, such
    # as the TUN device's own IPv6 neighbour discovery, may come along.)
    for spi, src, name in ((out_spi, INNER[fam][0], 'router'),
                           ('0x%08x' % SPI_IN[fam], INNER[fam][1], 'peer')):
        mine = [r for r in rows if r[1] == spi]
        for t in (req, rep):
            n = len([r for r in mine if r[5] == t and src in r[6].split(',')])
            if n != 3:
                raise Failure('tshark shows %d inner ICMP type %s from the %s (%s), '
                              'expected 3' % (n, t, name, src))
    # The control: with one wrong key the same frames must not pass.
    # (Wireshark leaves out the ICV verdict of a frame whose decrypted trailer
    # is garbage, so not every frame need say "bad"; none may say "good".)
    bad = [r for r in tshark_fields(pcap, sa_rows(bad_key=True), fields) if r[1] == out_spi]
    if any(r[3] == '1' for r in bad) or not any(r[4] == '1' for r in bad):
        raise Failure('tshark does not flag the ICV as bad with a wrong key: the check '
                      'proves nothing')
    log('tshark: %d ESP frames, all with a correct ICV; with a wrong key for the router\'s '
        'SA none of its %d frames is good, %d flagged bad' %
        (len(rows), len(bad), len([r for r in bad if r[4] == '1'])))


def scapy_algos(algo):
    """Whether PYTHON's scapy knows the ESP cipher algo; None without scapy."""
    if os.path.realpath(sys.executable) == os.path.realpath(PYTHON) and algo in ('AES-GCM',
                                                                               'AES-CBC'):
        # Every scapy with an IPsec layer has these when cryptography is there;
        # finding the modules is much cheaper than importing scapy.
        import importlib.util
        if importlib.util.find_spec('scapy') and importlib.util.find_spec('cryptography'):
            return True
        return None
    probe = subprocess.run([PYTHON, '-c', 'from scapy.layers.ipsec import CRYPT_ALGOS; '
                            'print(" ".join(CRYPT_ALGOS))'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if probe.returncode != 0:
        return None
    return algo in probe.stdout.split()


def prereq(c):
    have = scapy_algos(ALGS[c['alg']]['scapy_e'])
    if have is None:
        return ('%s has no scapy with its IPsec layer (Debian: python3-scapy, '
                'python3-cryptography)' % PYTHON)
    if not have:
        return 'this scapy lacks %s' % ALGS[c['alg']]['scapy_e']
    return None


def run_case(lab):
    lab.setup()
    kind = lab.c['kind']
    if kind == 'ping':
        case_ping(lab)
    elif kind in ('replay', 'tamper'):
        case_negative(lab, kind)
    else:
        case_tshark(lab)


def main():
    return drive(CASES, NS_PREFIX,
                 lambda c: ['ip', 'ping'] + (['tshark', 'tcpdump'] if c['kind'] == 'tshark'
                                             else []),
                 prereq, Lab, run_case)


if __name__ == '__main__':
    sys.exit(main())
