/*
 * IPv4 and IPv6 headers as the tunnel sees them, with nothing of the
 * context: ECN across the tunnel (RFC 6040), the inner header check, the
 * IPv6 extension header walk and pseudo-header, and ICMP "packet too big"
 * errors for the inner sender. Not installed.
 */
#ifndef IPSECIF_IP_H
#define IPSECIF_IP_H

#include "base/base.h"

#define IPSECIF_IP4_HLEN 20
#define IPSECIF_IP6_HLEN 40
#define IPSECIF_UDP_HLEN 8
#define IPSECIF_DEFAULT_TTL 64

/* ---- ECN (ecn.c) ---- */
/* RFC 6040: outer ECN at encapsulation (normal mode copies, compatibility clears). */
uint8_t ipsecif_ecn_encap(uint8_t inner_tos, bool ecn_friendly);
/* RFC 6040 decapsulation: new inner ECN, or -1 to drop (CE over not-ECT). */
int ipsecif_ecn_decap(uint8_t outer_tos, uint8_t inner_tos);

/* ---- Headers (hdr.c) ---- */
/* What the inner header of a tunnelled packet says. */
struct ipsecif_inner {
    uint8_t family;
    uint8_t nh;  /* 4 or 41: what ESP's next header says */
    uint8_t tos; /* TOS or traffic class */
    bool df;     /* IPv4 DF, always true for IPv6 */
};
/* Check an inner IPv4/IPv6 header and trim the buffer to the packet length.
 * IPSECIF_OK or IPSECIF_ERR_MALFORMED. */
int ipsecif_inner_parse(struct ipsecif_buf *pkt, struct ipsecif_inner *in);
/* Rewrite the ECN bits of an inner header (IPv4 checksum updated). */
void ipsecif_inner_set_ecn(struct ipsecif_buf *pkt, uint8_t family, uint8_t ecn);

/* Where an IPv6 extension header chain leads. */
struct ipsecif_v6chain {
    uint8_t nh;        /* first header that is not hop-by-hop, routing, dest opts, fragment */
    size_t off;        /* its offset */
    bool frag;         /* a fragment header was crossed */
    uint16_t frag_off; /* its fragment offset (8-byte units) */
    bool in_transit;   /* a routing header still has segments left */
};
/*
 * Walk the extension headers of the IPv6 packet p[0..end). Stops at the
 * first other header, or after a fragment header of a non-first fragment
 * (what follows is not a header). Returns false on a truncated or misplaced
 * header.
 */
bool ipsecif_v6_walk(const uint8_t *p, size_t end, struct ipsecif_v6chain *c);
/* Where an IPsec header (AH or ESP in transport mode) sits in a whole
 * IPv4 or IPv6 packet. */
struct ipsecif_sec_layout {
    uint8_t family;
    size_t pre;    /* bytes of IP header (and extension headers) before it */
    size_t nh_pos; /* offset of the protocol / next header byte naming it */
};
/*
 * want 0: where one goes on output, after the IPv4 header (options
 * included) or after the IPv6 hop-by-hop, routing, and the destination
 * options not after a routing header (RFC 4302 section 3.1, RFC 4303
 * section 3.1.1). want AH or ESP: find that header behind those headers.
 * Whole datagrams only: the length field must equal len and a fragment is
 * refused. IPSECIF_OK, IPSECIF_ERR_MALFORMED, or IPSECIF_ERR_PROTO (want
 * set and something else is there).
 */
int ipsecif_sec_layout(const uint8_t *p, size_t len, uint8_t want, struct ipsecif_sec_layout *l);
/* Write the checksum of the IPv4 header of hlen bytes at h (its old one
 * is ignored). */
void ipsecif_ip4_set_csum(uint8_t *h, size_t hlen);
/* Write the length of a packet of len bytes whose IP header (options or
 * IPv6 extension headers in front, hlen bytes) is at p: IPv4 total length
 * and checksum, or IPv6 payload length. */
void ipsecif_ip_set_len(uint8_t *p, uint8_t family, size_t hlen, size_t len);
/* One's complement sum of the IPv6 pseudo-header (RFC 8200 section 8.1). */
uint32_t ipsecif_v6_pseudo(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh);

/* ---- ICMP errors (icmp.c) ---- */
/*
 * Turn the oversize inner packet in pkt into an ICMP fragmentation-needed
 * (IPv4) or ICMPv6 packet-too-big, in place, addressed to its sender, from
 * src (the interface's address). mtu is what the sender may use.
 * IPSECIF_OK, IPSECIF_ERR_ARG, IPSECIF_ERR_MALFORMED, IPSECIF_ERR_DISCARD
 * (the packet gets no ICMP error) or IPSECIF_ERR_NOROOM.
 */
int ipsecif_icmp_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu);

#endif /* IPSECIF_IP_H */
