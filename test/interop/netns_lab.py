"""Parts the interop drivers (interop.py, host_interop.py) share: running
commands, the namespaces a run makes and removes, the example router in
its namespace (start, control, counters, stop), and the driver's main
flow (arguments, prerequisites, cleanup, exit status).

Exit status of a driver: 0 passed, 1 failed, 77 skipped. With
IPSECIF_INTEROP_KEEP=1 in the environment a run's files are kept and
their folder printed.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
PYTHON = '/usr/bin/python3'


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(cmd, check=True, timeout=30, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise Failure('%s: exit %d\n%s%s' % (' '.join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_namespaces(prefix):
    """Remove namespaces named prefix<pid>-... whose run was killed."""
    out = run(['ip', 'netns', 'list'], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ''
        m = re.match(re.escape(prefix) + r'(\d+)-', name)
        if not m or pid_alive(int(m.group(1))):
            continue
        for pid in run(['ip', 'netns', 'pids', name], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(['ip', 'netns', 'del', name], check=False)


def counter(stats, pattern):
    """The one counter of stats whose text matches pattern."""
    hits = [k for k in stats if re.search(pattern, k, re.I)]
    if len(hits) != 1:
        raise Failure('expected one counter matching /%s/ in ipsecifctl stats, found %s:\n%s' %
                      (pattern, hits, '\n'.join('%8d %s' % (v, k) for k, v in stats.items())))
    return stats[hits[0]]


class RouterLab:
    """The run's namespaces (the router's one first) and ipsecifd in it.

    Subclasses add the other namespaces to self.made, their processes to
    self.children, and say how the daemon starts (daemon_args)."""

    daemon_args = ()

    def __init__(self, bindir, prefix, tmp_prefix):
        self.bindir = bindir
        self.tag = '%s%d' % (prefix, os.getpid())
        self.nsr = self.tag + '-router'
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        self.sock = os.path.join(self.tmp, 'ipsecifd.sock')
        self.daemon = None
        self.daemon_log = os.path.join(self.tmp, 'ipsecifd.log')
        self.children = []
        self.made = []

    def ns(self, ns, *cmd, **kw):
        return run(['ip', 'netns', 'exec', ns] + list(cmd), **kw)

    def make_ns(self, *names):
        for ns in names:
            run(['ip', 'netns', 'add', ns])
            self.made.append(ns)
            run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])

    def ctl(self, *args, stdin=None, check=True):
        """ipsecifctl in the router's namespace; the finished process."""
        cmd = ['ip', 'netns', 'exec', self.nsr, os.path.join(self.bindir, 'ipsecifctl'),
               '-s', self.sock] + list(args)
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        if check and p.returncode != 0:
            raise Failure('ipsecifctl %s: exit %d: %s%s' % (' '.join(args), p.returncode,
                                                              p.stdout, p.stderr.strip()))
        return p

    def stats(self):
        """`ipsecifctl stats` as {text: count}."""
        out = self.ctl('stats').stdout
        res = {}
        for line in out.splitlines():
            m = re.match(r'\s*(\d+)\s+(.*\S)\s*$', line)
            if m:
                res[m.group(2)] = int(m.group(1))
        if not res:
            raise Failure('ipsecifctl stats printed no counters:\n' + out)
        return res

    def start_failed(self, text):
        """The daemon exited at start with this log: raise Skip or Failure."""
        raise Failure('ipsecifd exited with %d at start:\n%s' % (self.daemon.returncode, text))

    def start_daemon(self):
        exe = os.path.join(self.bindir, 'ipsecifd')
        with open(self.daemon_log, 'w') as f:
            self.daemon = subprocess.Popen(
                ['ip', 'netns', 'exec', self.nsr, exe, '-f'] + list(self.daemon_args) +
                ['-s', self.sock, '-p', os.path.join(self.tmp, 'ipsecifd.pid'), '-l', 'debug'],
                stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.daemon.poll() is not None:
                with open(self.daemon_log) as f:
                    self.start_failed(f.read())
            if time.monotonic() > deadline:
                raise Failure('ipsecifd made no control socket within 10 s')
            time.sleep(0.05)

    def stop_daemon(self):
        """SIGTERM; the daemon must exit 0 (under ASan also: no leak, no error)."""
        if self.daemon is None or self.daemon.poll() is not None:
            return None if self.daemon is None else self.daemon.returncode
        self.daemon.send_signal(signal.SIGTERM)
        try:
            return self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            return 'hung'

    def cleanup(self):
        """Stop everything, remove the namespaces; the daemon's exit status."""
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        rc = self.stop_daemon()
        for ns in self.made:
            run(['ip', 'netns', 'del', ns], check=False)
        return rc

    def keep_files(self):
        """Write what a kept run's folder should hold besides the logs."""


def drive(cases, prefix, tools, prereq, make_lab, run_case):
    """A driver's main: `--bindir DIR CASE` or `--list`.

    tools: commands every case needs (or a function of the case giving
    them); prereq(case): None, or why the case must be skipped;
    make_lab(bindir, case) -> RouterLab; run_case(lab) raises Failure or
    Skip."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--bindir', help='directory with ipsecifd and ipsecifctl')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('case', nargs='?')
    a = ap.parse_args()
    if a.list:
        print('\n'.join(cases))
        return 0
    if a.case not in cases or not a.bindir:
        ap.error('give --bindir and one of: ' + ', '.join(cases))
    c = cases[a.case]
    if os.geteuid() != 0:
        log('SKIP: interop tests need root (network namespaces, raw sockets, TUN)')
        return SKIP
    need = tools(c) if callable(tools) else tools
    missing = [t for t in need if not shutil.which(t)]
    if missing:
        log('SKIP: missing %s (scripts/deps.sh installs them)' % ', '.join(missing))
        return SKIP
    why = prereq(c)
    if why:
        log('SKIP: ' + why)
        return SKIP
    for exe in ('ipsecifd', 'ipsecifctl'):
        if not os.access(os.path.join(a.bindir, exe), os.X_OK):
            log('FAIL: %s not built in %s' % (exe, a.bindir))
            return 1
    reap_stale_namespaces(prefix)
    lab = make_lab(a.bindir, c)
    # A SIGTERM (ctest timeout) still removes the namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ok = False
    skipped = None
    t0 = time.monotonic()
    try:
        run_case(lab)
        log(lab.ctl('stats').stdout.rstrip())
        ok = True
    except Skip as e:
        skipped = str(e)
    except (Failure, subprocess.TimeoutExpired) as e:
        log('FAIL: %s' % e)
        try:
            log('---- ipsecifctl stats ----\n' + lab.ctl('stats', check=False).stdout.rstrip())
        except (OSError, subprocess.SubprocessError):
            pass
    finally:
        rc = lab.cleanup()
        if skipped is None and rc not in (0, None):
            log('FAIL: ipsecifd exit status on SIGTERM: %s' % rc)
            ok = False
        if not ok and skipped is None and os.path.exists(lab.daemon_log):
            with open(lab.daemon_log) as f:
                text = f.read()
            log('---- ipsecifd log (last 80 lines) ----')
            log('\n'.join(text.splitlines()[-80:]))
        if os.environ.get('IPSECIF_INTEROP_KEEP'):
            lab.keep_files()
            log('kept %s' % lab.tmp)
        else:
            shutil.rmtree(lab.tmp, ignore_errors=True)
    if skipped is not None:
        log('SKIP: %s' % skipped)
        return SKIP
    log('%s: %s (%.1f s)' % (a.case, 'PASS' if ok else 'FAIL', time.monotonic() - t0))
    return 0 if ok else 1
