#!/usr/bin/env python3
"""The table of bench/compare.sh: one column per path, then the ratios.

usage: compare_report.py RESULTS UDP_SMALL UDP_LARGE DURATION

RESULTS has one figure a line: path, metric and value, tab-separated, as
compare.sh writes them. A figure that is missing (its measurement failed)
prints as "-", and so does a ratio with a missing or zero term.
"""

import sys

PATHS = [
    ("bare", "bare veth"),
    ("ipsecifd", "ipsecifd"),
    ("strongswan", "strongSwan"),
    ("wireguard", "wireguard-go"),
]


def rows(small, large):
    """(metric, label, which way is better) in the order printed."""
    return [
        ("tcp1_mbps", "TCP 1 stream, Mbit/s", "higher"),
        ("tcp4_mbps", "TCP 4 streams, Mbit/s", "higher"),
        ("udp_small_kpps", f"UDP {small} B received, kpps", "higher"),
        ("udp_small_loss", f"UDP {small} B loss, %", "lower"),
        ("udp_small_tx_kpps", f"UDP {small} B sent, kpps", "-"),
        ("udp_large_kpps", f"UDP {large} B received, kpps", "higher"),
        ("udp_large_loss", f"UDP {large} B loss, %", "lower"),
        ("udp_large_tx_kpps", f"UDP {large} B sent, kpps", "-"),
        ("rtt_median", "ping RTT median, ms", "lower"),
        ("rtt_avg", "ping RTT avg, ms", "lower"),
        ("tcp1_cpu_vpn", "CPU s/GB VPN procs, TCP 1", "lower"),
        ("tcp4_cpu_vpn", "CPU s/GB VPN procs, TCP 4", "lower"),
        ("tcp1_cpu_kernel", "CPU s/GB kernel, TCP 1", "lower"),
        ("tcp4_cpu_kernel", "CPU s/GB kernel, TCP 4", "lower"),
        ("tcp1_cpu_busy", "CPU s/GB machine, TCP 1", "lower"),
        ("tcp4_cpu_busy", "CPU s/GB machine, TCP 4", "lower"),
    ]


def load(path):
    figures = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            try:
                figures[(parts[0], parts[1])] = float(parts[2])
            except ValueError:
                continue
    return figures


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v < 1 else f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        return 2
    figures = load(sys.argv[1])
    small, large, duration = sys.argv[2:5]
    head = f"{'metric':<30} {'better':<6}"
    for _, name in PATHS:
        head += f" {name:>12}"
    head += f" {'ipsecifd/sS':>12} {'ipsecifd/wg':>12}"
    print(head)
    print("-" * len(head))
    for key, label, better in rows(small, large):
        vals = {p: figures.get((p, key)) for p, _ in PATHS}
        line = f"{label:<30} {better:<6}"
        for p, _ in PATHS:
            line += f" {fmt(vals[p]):>12}"
        r_ss = ratio(vals["ipsecifd"], vals["strongswan"])
        r_wg = ratio(vals["ipsecifd"], vals["wireguard"])
        line += f" {fmt(r_ss):>12} {fmt(r_wg):>12}"
        print(line)
    print()
    print(f"iperf3 runs of {duration} s; kpps: thousand packets per second; CPU s/GB: CPU")
    print("seconds per 10^9 bytes received, = ns per byte (VPN procs: both sides' daemons;")
    print("kernel: system + irq + softirq of the whole machine; machine: all its busy")
    print("time; both include other load). Ratios: ipsecifd's figure over the other's.")
    t1 = ratio(figures.get(("ipsecifd", "tcp1_mbps")), figures.get(("strongswan", "tcp1_mbps")))
    t4 = ratio(figures.get(("ipsecifd", "tcp4_mbps")), figures.get(("strongswan", "tcp4_mbps")))

    def verdict(r):
        if r is None:
            return "not measured"
        return "met" if r >= 2.5 else "not met"

    print(
        f"target: TCP ipsecifd/strongSwan >= 2.5: measured {fmt(t1)} with 1 stream "
        f"({verdict(t1)}), {fmt(t4)} with 4 streams ({verdict(t4)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
