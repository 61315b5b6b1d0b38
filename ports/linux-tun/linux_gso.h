/**
 * @file linux_gso.h
 * @brief TCP segmentation and coalescing for TUN devices with virtio-net
 *        headers (IFF_VNET_HDR): the Linux port's offload logic, free of
 *        any OS call so that it can be tested and fuzzed on its own.
 *
 * Host code, not part of libipsecif. With TUNSETOFFLOAD (TUN_F_CSUM,
 * TUN_F_TSO4, TUN_F_TSO6) the kernel hands a TUN reader TCP super-packets
 * of up to 64 KiB, each behind a virtio_net_hdr (gso_type, gso_size = MSS,
 * csum_start, csum_offset), and packets whose transport checksum is only
 * partial (VIRTIO_NET_HDR_F_NEEDS_CSUM). ipsecif_linux_gso_prepare() checks
 * one such packet and its header; ipsecif_linux_gso_next() then cuts it
 * into the MSS-sized TCP segments a NIC would put on the wire (IPv4 total
 * length, ID and header checksum, IPv6 payload length, TCP sequence number,
 * FIN and PSH on the last segment only, CWR on the first only, a full TCP
 * checksum each).
 *
 * The other way, ipsecif_linux_gro_add() collects consecutive in-order TCP
 * segments of one flow into one super-packet that is written with a GSO
 * header (the kernel treats it as if a NIC had coalesced it). Only plain
 * ACK or ACK+PSH data segments with a valid checksum, identical IP and TCP
 * headers (options included) apart from the lengths, the IPv4 ID, the
 * sequence number and a PSH on the last, qualify; IPv4 needs DF and no IP
 * options. Anything else is passed on alone, after what was held.
 *
 * Every multi-byte field is read and written byte by byte; no pointer into
 * a packet is cast to a struct. The virtio header's own fields are in host
 * byte order (the legacy virtio layout TUN uses unless told otherwise).
 */
#ifndef IPSECIF_LINUX_GSO_H
#define IPSECIF_LINUX_GSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of the virtio-net header before each packet (TUNSETVNETHDRSZ). */
#define IPSECIF_LINUX_VNET_HDR_LEN 10u

/** Largest packet behind a virtio-net header (IPv4 total length, IPv6 payload + 40). */
#define IPSECIF_LINUX_GSO_MAX 65535u

/** Segments held at most in one coalesced packet. */
#define IPSECIF_LINUX_GRO_SEGS 64u

/** virtio_net_hdr flags. */
#define IPSECIF_LINUX_VNET_F_NEEDS_CSUM 1u /**< Checksum at csum_start/offset is partial. */
#define IPSECIF_LINUX_VNET_F_DATA_VALID 2u /**< Checksum already checked. */

/** virtio_net_hdr gso_type values. */
#define IPSECIF_LINUX_VNET_GSO_NONE 0u   /**< A single packet. */
#define IPSECIF_LINUX_VNET_GSO_TCPV4 1u  /**< TCP over IPv4 super-packet. */
#define IPSECIF_LINUX_VNET_GSO_UDP 3u    /**< UFO (not offered, refused). */
#define IPSECIF_LINUX_VNET_GSO_TCPV6 4u  /**< TCP over IPv6 super-packet. */
#define IPSECIF_LINUX_VNET_GSO_ECN 0x80u /**< Flag: the sender set CWR (ECN). */

/** A virtio-net header, decoded. */
struct ipsecif_linux_vnet {
    uint8_t flags;        /**< IPSECIF_LINUX_VNET_F_*. */
    uint8_t gso_type;     /**< IPSECIF_LINUX_VNET_GSO_*, maybe with the ECN flag. */
    uint16_t hdr_len;     /**< Header bytes (a hint; never trusted). */
    uint16_t gso_size;    /**< Payload bytes per segment (the MSS). */
    uint16_t csum_start;  /**< Where the partial checksum's coverage starts. */
    uint16_t csum_offset; /**< Where the checksum field is, from csum_start. */
};

/** Verdicts of ipsecif_linux_gso_prepare() (negative: the packet is dropped). */
enum ipsecif_linux_gso_err {
    IPSECIF_LINUX_GSO_OK = 0,        /**< Ready. */
    IPSECIF_LINUX_GSO_ERR_HDR = -1,  /**< Virtio header inconsistent with the packet. */
    IPSECIF_LINUX_GSO_ERR_PKT = -2,  /**< IP or TCP header malformed or truncated. */
    IPSECIF_LINUX_GSO_ERR_TYPE = -3, /**< A GSO type or TCP flag mix not handled. */
    IPSECIF_LINUX_GSO_ERR_ROOM = -4  /**< A segment would not fit the caller's buffer. */
};

/** Decode the IPSECIF_LINUX_VNET_HDR_LEN bytes at p. */
void ipsecif_linux_vnet_get(const uint8_t *p, struct ipsecif_linux_vnet *h);

/** Encode h into the IPSECIF_LINUX_VNET_HDR_LEN bytes at p. */
void ipsecif_linux_vnet_put(uint8_t *p, const struct ipsecif_linux_vnet *h);

/** A super-packet being cut into segments. Fields are private. */
struct ipsecif_linux_gso {
    const uint8_t *pkt; /**< The super-packet (IP header first). */
    size_t len;         /**< Its length. */
    size_t l4off;       /**< Offset of the TCP header. */
    size_t hlen;        /**< IP and TCP header bytes, copied to each segment. */
    size_t mss;         /**< Payload bytes per segment. */
    size_t off;         /**< Offset of the next segment's payload. */
    uint32_t seq;       /**< Sequence number of the next segment. */
    uint16_t id;        /**< IPv4 ID of the next segment. */
    bool v6;            /**< IPv6 (else IPv4). */
    bool gso;           /**< Segments to cut (else the packet passes whole). */
    unsigned nseg;      /**< Segments in all. */
    unsigned idx;       /**< Segments cut so far. */
};

/**
 * @brief Check a packet read behind a virtio-net header and get it ready.
 *
 * gso_type NONE: the packet stays where it is; with NEEDS_CSUM its partial
 * checksum is completed in place (so pkt is written to); nseg is 1 and
 * ipsecif_linux_gso_next() is not needed. TCPV4 / TCPV6 (ECN flag
 * allowed): the IP and TCP headers are checked against the packet's own
 * length, csum_start (when NEEDS_CSUM) must point at the TCP header and
 * the checksum field, SYN, RST and URG are refused, and every segment
 * (headers + gso_size) must fit seg_cap. Nothing outside pkt[0..len) is
 * read.
 * @param pkt     the packet (after the virtio header).
 * @param len     its length.
 * @param h       the decoded virtio header.
 * @param seg_cap the room for one segment that the caller will give to
 *                ipsecif_linux_gso_next().
 * @param[out] g  the cutter.
 * @return ::IPSECIF_LINUX_GSO_OK or a negative ::ipsecif_linux_gso_err.
 */
int ipsecif_linux_gso_prepare(uint8_t *pkt, size_t len, const struct ipsecif_linux_vnet *h,
                              size_t seg_cap, struct ipsecif_linux_gso *g);

/** Number of segments the packet makes (1 for a packet that passes whole). */
unsigned ipsecif_linux_gso_count(const struct ipsecif_linux_gso *g);

/** Bytes of the largest segment (header + payload) the packet makes. */
size_t ipsecif_linux_gso_seg_max(const struct ipsecif_linux_gso *g);

/**
 * @brief Write the next segment into out (which must hold the seg_cap
 *        given to ipsecif_linux_gso_prepare()).
 * @return its length, or 0 when every segment has been cut.
 */
size_t ipsecif_linux_gso_next(struct ipsecif_linux_gso *g, uint8_t *out);

/** Where ipsecif_linux_gro_add() and ipsecif_linux_gro_flush() put packets out. */
typedef void (*ipsecif_linux_gro_emit_fn)(void *arg, const struct ipsecif_linux_vnet *h,
                                          const uint8_t *pkt, size_t len);

/** Counters of a coalescer. */
struct ipsecif_linux_gro_stats {
    uint64_t merged;   /**< Super-packets put out (of two segments or more). */
    uint64_t segments; /**< Segments that went into them. */
    uint64_t single;   /**< Packets put out alone. */
    uint64_t bad_csum; /**< TCP segments with a wrong checksum (put out alone). */
};

/** A coalescer of TCP segments. Fields are private. */
struct ipsecif_linux_gro {
    uint8_t *buf;                         /**< Held packet (the caller's memory). */
    size_t cap;                           /**< Its size (at most IPSECIF_LINUX_GSO_MAX is used). */
    size_t len;                           /**< Bytes held, 0 = nothing. */
    size_t l4off;                         /**< TCP header offset of the held packet. */
    size_t hlen;                          /**< Its header bytes. */
    size_t mss;                           /**< Payload of its first segment. */
    uint32_t next_seq;                    /**< Sequence number the next segment must have. */
    unsigned nseg;                        /**< Segments held. */
    bool v6;                              /**< IPv6 (else IPv4). */
    bool closed;                          /**< A short or PSH segment came: nothing more joins. */
    struct ipsecif_linux_gro_stats stats; /**< Counters. */
};

/** Set up a coalescer on buf[0..cap) (cap should be IPSECIF_LINUX_GSO_MAX). */
void ipsecif_linux_gro_init(struct ipsecif_linux_gro *g, uint8_t *buf, size_t cap);

/**
 * @brief Offer one packet (IP header first). It joins the held packet, or
 *        the held one is put out and this one is held instead, or (not a
 *        candidate) both are put out, in order. pkt is copied when held.
 */
void ipsecif_linux_gro_add(struct ipsecif_linux_gro *g, const uint8_t *pkt, size_t len,
                           ipsecif_linux_gro_emit_fn emit, void *arg);

/** Put out what is held (a single segment as it came; more as one GSO packet). */
void ipsecif_linux_gro_flush(struct ipsecif_linux_gro *g, ipsecif_linux_gro_emit_fn emit,
                             void *arg);

/** True when a packet is held. */
bool ipsecif_linux_gro_pending(const struct ipsecif_linux_gro *g);

/**
 * @brief Internet checksum (RFC 1071) helper: add data[0..len) to a running
 *        32-bit ones'-complement sum (big-endian words; an odd last byte is
 *        padded with zero).
 */
uint32_t ipsecif_linux_csum_add(uint32_t sum, const uint8_t *data, size_t len);

/** Fold a running sum to 16 bits (not complemented). */
uint16_t ipsecif_linux_csum_fold(uint32_t sum);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_LINUX_GSO_H */
