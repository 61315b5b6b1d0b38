"""Packet checks the scapy peers (esp_peer.py, host_peer.py) share."""

from scapy.all import IP, UDP, ICMP, IPv6, raw
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest


def echo_fields(inner, request):
    """(id, seq, payload) of an ICMP or ICMPv6 echo request/reply, else None."""
    if isinstance(inner, IP) and ICMP in inner:
        if inner[ICMP].type == (8 if request else 0) and inner[ICMP].code == 0:
            return inner[ICMP].id, inner[ICMP].seq, bytes(inner[ICMP].payload)
        return None
    cls = ICMPv6EchoRequest if request else ICMPv6EchoReply
    if isinstance(inner, IPv6) and cls in inner:
        e = inner[cls]
        return e.id, e.seq, bytes(e.data)
    return None


def checksums_ok(inner):
    """The IPv4 header, ICMP, ICMPv6 and UDP checksums as the sender wrote
    them are right."""
    fields = ((IP, 'chksum'), (ICMP, 'chksum'), (ICMPv6EchoRequest, 'cksum'),
              (ICMPv6EchoReply, 'cksum'), (UDP, 'chksum'))
    for cls, name in fields:
        if cls not in inner:
            continue
        if cls is UDP and isinstance(inner, IP) and inner[UDP].chksum == 0:
            continue
        clone = inner.copy()
        setattr(clone[cls], name, None)
        clone = clone.__class__(raw(clone))
        if getattr(inner[cls], name) != getattr(clone[cls], name):
            return False
    return True
