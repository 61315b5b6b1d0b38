/**
 * @file frag.h
 * @brief IP fragments of host traffic: reassembly before the outbound
 *        policy, fragmentation of what IPsec made too big.
 */
#ifndef IPSECIF_FRAG_H
#define IPSECIF_FRAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_frag Fragments
 * @brief IPsec before fragmentation, as KAME does it.
 *
 * Transport mode cannot protect a fragment: only the whole datagram names
 * the ports the selectors match, and the receiver opens IPsec before it
 * reassembles. A host that fragments before the packet reaches the engine
 * (Linux at a device MTU) therefore needs the fragments put together again
 * first (the reassembler), and the protected packet, which is bigger than
 * the original, cut again for the path (ipsecif_frag_start(),
 * ipsecif_frag_next()).
 *
 * The reassembler works in memory the caller gives
 * (ipsecif_reass_mem_size(), ipsecif_reass_init()); it allocates nothing,
 * reads no clock (time comes in as `now`, ms) and holds a bounded number of
 * datagrams, fragments per datagram and bytes. It follows RFC 791 and RFC
 * 8200 section 4.5, and is stricter where those allow it, as current
 * stacks are: an overlap drops the whole datagram in both families (RFC
 * 5722), an exact duplicate is dropped alone, a first fragment must hold
 * the upper-layer header (RFC 7112; RFC 1858 for IPv4 TCP), and no
 * datagram grows past 65535 bytes of IPv4 total length or IPv6 payload
 * length. Each drop has a counter in ::ipsecif_reass_stats.
 * @{
 */

/** Largest datagram the reassembler can build: IPv6 header plus a 65535-byte payload. */
#define IPSECIF_REASS_DATAGRAM_MAX (40u + 65535u)

/** Most bytes of header in front of the fragmentable part (IPv6 extension headers). */
#define IPSECIF_REASS_HDR_MAX 512u

/** Default IPv4 reassembly timeout (ms): NetBSD's IPFRAGTTL and Linux's ipfrag_time. */
#define IPSECIF_REASS_TIMEOUT4_MS 30000u

/** Default IPv6 reassembly timeout (ms): RFC 8200 section 4.5. */
#define IPSECIF_REASS_TIMEOUT6_MS 60000u

/** Limits of a reassembler, fixed at ipsecif_reass_init(). */
struct ipsecif_reass_config {
    uint32_t slots;        /**< Datagrams under reassembly at once, 1..1024. */
    uint32_t frags;        /**< Fragments kept per datagram, 2..8192. */
    uint32_t datagram_max; /**< Largest datagram built (header included), 68 ..
                                ::IPSECIF_REASS_DATAGRAM_MAX. */
    uint32_t bytes_max;    /**< Fragment bytes held in all datagrams at once; 0 = slots x
                                datagram_max. */
    uint32_t headroom;     /**< Bytes free in front of a reassembled datagram (for IPsec
                                headers), at most 4096. */
    uint32_t tailroom;     /**< Bytes free behind it (ESP trailer, ICV), at most 4096. */
    uint32_t timeout4_ms;  /**< IPv4 timeout from the first fragment; 0 =
                                ::IPSECIF_REASS_TIMEOUT4_MS. */
    uint32_t timeout6_ms;  /**< IPv6 timeout; 0 = ::IPSECIF_REASS_TIMEOUT6_MS. */
};

/**
 * Counters of a reassembler. A fragment refused on its own counts in one of
 * malformed, tiny, toobig or duplicate; a datagram dropped whole counts once
 * in overlap, inconsistent, toobig, toomany, nomem, evicted or timeout, and
 * its fragments (the one that caused it included) in dropped_frags.
 */
struct ipsecif_reass_stats {
    uint64_t fragments;     /**< Fragments taken in. */
    uint64_t reassembled;   /**< Datagrams completed and handed out. */
    uint64_t atomic;        /**< IPv6 atomic fragments (offset 0, M clear) handed out whole. */
    uint64_t malformed;     /**< Fragments dropped: bad header, lengths, checksum, not 8-byte
                                 multiple. */
    uint64_t tiny;          /**< Fragments dropped: first fragment without the upper-layer
                                 header, or IPv4 TCP at offset 8. */
    uint64_t toobig;        /**< Fragments dropped: the datagram would pass 65535 or
                                 datagram_max. */
    uint64_t overlap;       /**< Datagrams dropped for overlapping fragments. */
    uint64_t duplicate;     /**< Exact duplicate fragments dropped (the datagram stays). */
    uint64_t inconsistent;  /**< Datagrams dropped: fragments disagree on where it ends. */
    uint64_t toomany;       /**< Datagrams dropped: more fragments than the frags limit. */
    uint64_t nomem;         /**< Datagrams dropped to stay within bytes_max. */
    uint64_t evicted;       /**< Datagrams dropped, oldest first, to make room for a new one. */
    uint64_t timeout;       /**< Datagrams dropped when their time ran out. */
    uint64_t dropped_frags; /**< Fragments lost with the datagrams dropped whole. */
};

/** A reassembler. Opaque; lives in the caller's memory. */
struct ipsecif_reass;

/**
 * @brief Bytes of memory a reassembler with this configuration needs.
 * @return the size, or 0 when the configuration is invalid.
 */
size_t ipsecif_reass_mem_size(const struct ipsecif_reass_config *cfg);

/**
 * @brief Lay a reassembler out in mem.
 * @param[out] out the reassembler (points into mem).
 * @param[in]  mem memory of at least ipsecif_reass_mem_size() bytes, aligned
 *                 for any object (malloc's or a static array of
 *                 max_align_t); it stays the caller's and must outlive the
 *                 reassembler. Nothing else is needed: drop the memory to
 *                 drop the reassembler.
 * @param[in]  len its size.
 * @param[in]  cfg the limits (copied).
 * @retval IPSECIF_OK ready.
 * @retval IPSECIF_ERR_ARG a NULL argument or an invalid configuration.
 * @retval IPSECIF_ERR_NOROOM len is too small.
 */
int ipsecif_reass_init(struct ipsecif_reass **out, void *mem, size_t len,
                       const struct ipsecif_reass_config *cfg);

/**
 * @brief Take in one packet.
 *
 * A packet that is not a fragment (IPv4 with MF clear and offset 0; IPv6
 * without a Fragment header in its unfragmentable part), and anything that
 * is neither IPv4 nor IPv6, is left untouched and not copied: IPSECIF_OK
 * with pkt as it was. A fragment is copied in and its buffer is no longer
 * needed. When it completes a datagram, pkt is pointed at the datagram
 * inside the reassembler's memory, with the configured headroom and
 * tailroom, to be changed in place; it stays valid until the next call
 * into this reassembler. Datagrams past their time are dropped first.
 * @param[in]     r   the reassembler.
 * @param[in,out] pkt an IPv4 or IPv6 packet.
 * @param[in]     now current time, ms (monotonic).
 * @retval IPSECIF_OK pkt is a whole datagram.
 * @retval IPSECIF_ERR_QUEUED the fragment was kept, or was an exact
 *         duplicate of one kept (counted in duplicate); nothing to send yet.
 * @retval IPSECIF_ERR_ARG a NULL argument or an invalid buffer (not counted).
 * @retval IPSECIF_ERR_MALFORMED the fragment was dropped (malformed, tiny,
 *         toobig, overlap, inconsistent counters).
 * @retval IPSECIF_ERR_FULL the fragment was dropped for lack of room
 *         (toomany, nomem).
 */
int ipsecif_reass_input(struct ipsecif_reass *r, struct ipsecif_buf *pkt, uint64_t now);

/** @brief Drop the datagrams whose time has run out (counted in timeout). */
void ipsecif_reass_expire(struct ipsecif_reass *r, uint64_t now);

/** @brief When the next datagram runs out of time (ms), or UINT64_MAX with none held. */
uint64_t ipsecif_reass_next_deadline(const struct ipsecif_reass *r);

/** @brief Datagrams under reassembly now. */
uint32_t ipsecif_reass_pending(const struct ipsecif_reass *r);

/** @brief The counters (valid as long as the reassembler). */
const struct ipsecif_reass_stats *ipsecif_reass_stats_get(const struct ipsecif_reass *r);

/**
 * @brief Fragmentation of one packet: its state between ipsecif_frag_start()
 *        and the last ipsecif_frag_next(). Fields are private.
 */
struct ipsecif_frag {
    const uint8_t *pkt; /**< The packet (the caller's, unchanged). */
    size_t len;         /**< Its length. */
    size_t hlen;        /**< Header repeated in each fragment (IPv4 header, IPv6
                             unfragmentable part). */
    size_t nh_pos;      /**< IPv6: offset of the next-header byte the Fragment header takes. */
    size_t chunk1;      /**< Payload bytes of the first fragment. */
    size_t chunk;       /**< Payload bytes of every other fragment. */
    size_t pos;         /**< Payload bytes already handed out. */
    uint32_t id;        /**< Identification written in each fragment. */
    uint16_t off0;      /**< IPv4: offset (8-byte units) of the packet itself. */
    bool whole;         /**< It fits: one piece, the packet as it is. */
    bool mf0;           /**< IPv4: the packet itself had MF set. */
    uint8_t family;     /**< 4 or 6. */
    uint8_t nh;         /**< IPv6: the first fragmentable header. */
    uint8_t h2len;      /**< IPv4: header length of the fragments after the first. */
    uint8_t h2[60];     /**< IPv4: their header (only options with the copy flag). */
};

/**
 * @brief Prepare cutting a whole IPv4 or IPv6 packet into fragments of at
 *        most mtu bytes (RFC 791 section 3.2; RFC 8200 section 4.5).
 *
 * IPv4: the first fragment keeps the whole header, the others carry only
 * the options with the copy flag; offsets in 8-byte units, MF on all but
 * the last, each header's checksum computed. The packet's identification
 * is kept; when it is 0, id's low 16 bits are used (then they must not be
 * 0 either). A packet with DF set is not cut (IPSECIF_ERR_TOOBIG).
 * IPv6: the source cuts; a Fragment header with identification id goes
 * after the unfragmentable part (the IPv6 header, hop-by-hop options and
 * everything up to the last routing header).
 *
 * The packet is read, not changed, and must stay in place until the last
 * ipsecif_frag_next().
 * @param[out] f   the state.
 * @param[in]  pkt the packet (its length field must equal pkt->len).
 * @param[in]  mtu the largest fragment.
 * @param[in]  id  the identification (see above; a random number for IPv6).
 * @retval IPSECIF_OK ready; call ipsecif_frag_next() until IPSECIF_ERR_NOENT.
 * @retval IPSECIF_ERR_ARG a NULL argument or invalid buffer, or IPv4 id 0 needed.
 * @retval IPSECIF_ERR_MALFORMED not a sound whole IPv4 or IPv6 packet, or
 *         an IPv6 packet that already is a fragment.
 * @retval IPSECIF_ERR_TOOBIG IPv4 with DF set: the sender gets
 *         ipsecif_frag_toobig() instead.
 * @retval IPSECIF_ERR_RANGE mtu leaves no room for 8 payload bytes, or
 *         (IPv6) is below 1280 or leaves the first fragment too small for
 *         the extension headers and the upper-layer header (RFC 8200).
 */
int ipsecif_frag_start(struct ipsecif_frag *f, const struct ipsecif_buf *pkt, uint32_t mtu,
                       uint32_t id);

/**
 * @brief Write the next fragment into out (from out->off on; out->len is set).
 * @retval IPSECIF_OK one more fragment in out.
 * @retval IPSECIF_ERR_NOENT all were handed out.
 * @retval IPSECIF_ERR_NOROOM out has less than mtu bytes behind out->off.
 * @retval IPSECIF_ERR_ARG a NULL argument or invalid buffer.
 */
int ipsecif_frag_next(struct ipsecif_frag *f, struct ipsecif_buf *out);

/**
 * @brief Turn a packet the path cannot carry into the error for its
 *        sender, in place: ICMP "fragmentation needed" with next-hop MTU
 *        mtu (RFC 1191) for IPv4, ICMPv6 "packet too big" (RFC 4443) for
 *        IPv6, from src, quoting as much of the packet as an error may.
 *        pkt may hold just the packet's first bytes (576 for IPv4, 1232
 *        for IPv6 are all that is quoted).
 * @retval IPSECIF_OK pkt holds the error.
 * @retval IPSECIF_ERR_DISCARD the packet gets no error (a non-first
 *         fragment, an ICMP error, a source that names no host).
 * @retval IPSECIF_ERR_MALFORMED, IPSECIF_ERR_ARG, IPSECIF_ERR_NOROOM
 *         (less than 48 bytes of headroom).
 */
int ipsecif_frag_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_FRAG_H */
