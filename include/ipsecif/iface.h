/**
 * @file iface.h
 * @brief ipsecif interfaces: create, destroy, tunnel, flags, MTU, counters.
 */
#ifndef IPSECIF_IFACE_H
#define IPSECIF_IFACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/stats.h"
#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_if Interfaces
 * @brief Route-based IPsec interfaces, as ipsecif(4).
 *
 * Setting the tunnel creates four policies (IPv4 out and in, IPv6 out and
 * in; `esp/transport//unique`, or `require` with link0), each with its own
 * unique id. They are added and removed as one unit with the tunnel.
 * @{
 */

/** Interface flags. */
enum ipsecif_if_flags {
    IPSECIF_IFF_UP = 0x1,    /**< Administratively up. */
    IPSECIF_IFF_LINK0 = 0x2, /**< NAT-Traversal: ESP in UDP (RFC 3948). */
    IPSECIF_IFF_LINK1 = 0x4, /**< ECN-friendly encapsulation (RFC 6040). */
    IPSECIF_IFF_LINK2 = 0x8  /**< Forward inner IPv6 (default on). */
};

/** Default and limits of the interface MTU. */
#define IPSECIF_MTU_DEFAULT 1280
/** Smallest MTU. */
#define IPSECIF_MTU_MIN 1280
/** Largest MTU. */
#define IPSECIF_MTU_MAX 8192

/** Default NAT-T UDP port. */
#define IPSECIF_NATT_PORT 4500

/** Indexes of an interface's four policies in ipsecif_if_info::policy_id. */
enum ipsecif_if_policy {
    IPSECIF_IFPOL_V4_OUT = 0, /**< IPv4 out. */
    IPSECIF_IFPOL_V4_IN = 1,  /**< IPv4 in. */
    IPSECIF_IFPOL_V6_OUT = 2, /**< IPv6 out. */
    IPSECIF_IFPOL_V6_IN = 3   /**< IPv6 in. */
};

/** What ipsecif_if_get_info() reports. */
struct ipsecif_if_info {
    char name[16];              /**< Interface name. */
    uint32_t unit;              /**< Unit number (N of ipsecN). */
    uint32_t flags;             /**< ::ipsecif_if_flags. */
    uint16_t mtu;               /**< MTU. */
    bool has_tunnel;            /**< A tunnel is set. */
    struct ipsecif_addr src;    /**< Tunnel source. */
    struct ipsecif_addr dst;    /**< Tunnel destination. */
    uint16_t sport;             /**< NAT-T source port (link0). */
    uint16_t dport;             /**< NAT-T destination port (link0). */
    uint32_t policy_id[4];      /**< Policy ids, ::ipsecif_if_policy order; 0 without tunnel. */
    uint32_t reqid[4];          /**< Unique ids, same order. */
    struct ipsecif_stats stats; /**< Counters. */
};

struct ipsecif_ctx;
struct ipsecif_if;

/**
 * @brief Create an interface.
 * @param[in]  ctx  the context.
 * @param[in]  name "ipsecN" (N a decimal unit, no leading zero).
 * @param[out] out  the interface handle, valid until destroyed (may be NULL).
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx is NULL or not a context, or the name is not ipsecN.
 * @retval IPSECIF_ERR_EXIST the name is taken.
 * @retval IPSECIF_ERR_FULL no free interface slot.
 */
int ipsecif_if_create(struct ipsecif_ctx *ctx, const char *name, struct ipsecif_if **out);

/**
 * @brief Destroy an interface, removing its tunnel and policies.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context.
 */
int ipsecif_if_destroy(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp);

/** @brief Find an interface by name; NULL if there is none. */
struct ipsecif_if *ipsecif_if_find(struct ipsecif_ctx *ctx, const char *name);

/**
 * @brief Set (or replace) the tunnel endpoints and create the four policies.
 *
 * All or nothing: on any failure the previous tunnel and its policies stay
 * as they were.
 * @param[in] ctx   the context.
 * @param[in] ifp   the interface.
 * @param[in] src   outer source (ours).
 * @param[in] sport NAT-T source port, 0 = 4500 (used with link0 only).
 * @param[in] dst   outer destination (the peer).
 * @param[in] dport NAT-T destination port, 0 = 4500 (used with link0 only).
 * @param[in] now   current time, ms.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context, an address is
 *         NULL or unspecified, the families differ or are unknown, or src
 *         equals dst.
 * @retval IPSECIF_ERR_EXIST another interface has this outer pair (and
 *         NAT-T is off on either, or both use the same ports, or their
 *         link2 differs), or one of the four policies already exists.
 * @retval IPSECIF_ERR_FULL no room for the policies.
 * @retval IPSECIF_ERR_INTERNAL no free policy id, or the previous policies
 *         could not be put back (neither can happen).
 */
int ipsecif_if_set_tunnel(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                          const struct ipsecif_addr *src, uint16_t sport,
                          const struct ipsecif_addr *dst, uint16_t dport, uint64_t now);

/**
 * @brief Delete the tunnel and its four policies.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context.
 * @retval IPSECIF_ERR_NOENT no tunnel is set.
 */
int ipsecif_if_delete_tunnel(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp);

/**
 * @brief Set the flags (::ipsecif_if_flags). Changing link0 or link2 on a
 *        tunnel re-creates its policies, all or nothing.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context, or unknown flag bits.
 * @retval IPSECIF_ERR_EXIST, IPSECIF_ERR_FULL, IPSECIF_ERR_INTERNAL as
 *         ipsecif_if_set_tunnel(), when the tunnel's policies are re-created.
 */
int ipsecif_if_set_flags(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint32_t flags,
                         uint64_t now);

/** @brief Current flags. */
uint32_t ipsecif_if_get_flags(const struct ipsecif_if *ifp);

/**
 * @brief Set the MTU.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context.
 * @retval IPSECIF_ERR_RANGE outside IPSECIF_MTU_MIN .. IPSECIF_MTU_MAX.
 */
int ipsecif_if_set_mtu(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint32_t mtu);

/**
 * @brief Report an interface.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context, or out is NULL.
 */
int ipsecif_if_get_info(const struct ipsecif_ctx *ctx, const struct ipsecif_if *ifp,
                        struct ipsecif_if_info *out);

/** Callback for ipsecif_if_walk(): 0 to go on, nonzero to stop with that value. */
typedef int (*ipsecif_if_walk_fn)(void *arg, struct ipsecif_if *ifp);

/**
 * @brief Visit every interface in creation order.
 * @return 0 when all were visited, or the callback's nonzero value.
 * @retval IPSECIF_ERR_ARG ctx or fn is NULL.
 */
int ipsecif_if_walk(struct ipsecif_ctx *ctx, ipsecif_if_walk_fn fn, void *arg);

/**
 * @brief Set the interface's own inner address of a family, used as the
 *        source of ICMP errors the core builds (packet too big).
 *
 * Without one, IPv4 errors come from the tunnel source when it is IPv4, else
 * from 192.0.0.8 (RFC 7600); IPv6 errors from the tunnel source when it is
 * IPv6, else from the destination of the packet that was too big.
 * @param[in] ctx  the context.
 * @param[in] ifp  the interface.
 * @param[in] addr the address (IPv4 or IPv6); an all-zero address of a
 *                 family clears that family's address.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ifp is NULL or not of this context, addr is NULL,
 *         or its family is neither IPv4 nor IPv6.
 */
int ipsecif_if_set_local(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                         const struct ipsecif_addr *addr);

/** @brief The interface's name. */
const char *ipsecif_if_name(const struct ipsecif_if *ifp);

/** @brief Attach a host pointer to the interface (for the port). */
void ipsecif_if_set_user(struct ipsecif_if *ifp, void *user);

/** @brief The host pointer attached with ipsecif_if_set_user(). */
void *ipsecif_if_get_user(const struct ipsecif_if *ifp);

/**
 * @brief Encapsulate and protect an inner packet routed into the interface.
 *
 * The packet is processed in place: it needs headroom for the outer IP
 * header, UDP (link0), ESP header and IV (IPSECIF_HEADROOM is always
 * enough) and tailroom for padding, trailer and ICV (IPSECIF_TAILROOM).
 * On success the port's send_outer was called once.
 *
 * Nesting: an inner packet that is itself an outer packet of this context
 * (ESP, or ESP in UDP on a link0 interface's ports, from the tunnel source
 * to the tunnel destination of one of its interfaces; found in the tunnel
 * hash, so the cost does not grow with the number of interfaces) has
 * already passed that interface's output, and is refused when passing this
 * one too would exceed the limit set with ipsecif_if_max_nesting_set().
 * This stops a route for a tunnel destination that points into an ipsec
 * interface (its own or another's) from encapsulating again and again. See
 * ipsecif_if_max_nesting_set() for how the depth is known.
 * @param[in]     ctx the context.
 * @param[in]     ifp the interface.
 * @param[in,out] pkt the inner IPv4 or IPv6 packet; its content is undefined afterwards.
 * @param[in]     now current time, ms.
 * @retval IPSECIF_OK sent.
 * @retval IPSECIF_ERR_ARG ctx, ifp or pkt is NULL or not valid (not counted),
 *         or the outer packet would exceed 65535 bytes (counted in out_noroom).
 * @retval IPSECIF_ERR_DOWN down or no tunnel.
 * @retval IPSECIF_ERR_MALFORMED not an IPv4/IPv6 packet.
 * @retval IPSECIF_ERR_NESTED an outer packet of ours nested deeper than the
 *         limit; counted in out_nested and logged (at most once a second per
 *         interface) at ::IPSECIF_LOG_WARN.
 * @retval IPSECIF_ERR_DISCARD inner IPv6 with -link2.
 * @retval IPSECIF_ERR_TOOBIG over the MTU or path; an ICMP error went back.
 * @retval IPSECIF_ERR_NOSA no SA; an ACQUIRE was raised (rate-limited).
 * @retval IPSECIF_ERR_NOROOM not enough head- or tailroom.
 * @retval IPSECIF_ERR_SEQWRAP the SA's sequence number is exhausted.
 * @retval IPSECIF_ERR_RANDOM the port gave no random IV (CBC).
 * @retval IPSECIF_ERR_CRYPTO the crypto backend failed.
 * @retval IPSECIF_ERR_INTERNAL the SA's IV or ICV is longer than ESP supports.
 * @retval IPSECIF_ERR_PORT send_outer failed.
 */
int ipsecif_if_output(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, struct ipsecif_buf *pkt,
                      uint64_t now);

/**
 * @brief Encapsulate and protect a vector of inner packets, each as
 *        ipsecif_if_output() would, with the lookups and the crypto shared.
 *
 * Each packet gets exactly the verdict, the counters (global, interface,
 * SA) and, when sent, the outer packet that ipsecif_if_output() called n
 * times in vector order would give: a packet that fails affects no other,
 * the others still go. The packets are taken in slices of up to
 * ::IPSECIF_BATCH_MAX: each slice is checked and framed in order (so the
 * packets of one SA get consecutive sequence numbers, taken in vector
 * order), the crypto backend gets the packets of each SA in the slice as
 * one burst (its aead_seal_burst when it has one), then the outer headers
 * are added and send_outer is called in vector order. ICMP errors
 * (deliver_icmp) and ACQUIREs for refused packets can thus come before the
 * sends of packets ahead of them in the same slice. A slice ends early
 * where one more packet could change what the packets behind find (an
 * SA's sequence numbers or byte limits about to run out), so lifetimes and
 * expiry act at the same packet as with single calls.
 *
 * A packet whose sequence number was taken and whose crypto then fails
 * (::IPSECIF_ERR_CRYPTO) leaves that number unused; with single calls the
 * next packet would carry it. Receivers accept such gaps.
 *
 * Ownership: the library keeps no pointer after the call. Each buffer is
 * processed in place as with ipsecif_if_output() and is valid for the
 * caller again on return; the content of a packet that was not sent is
 * undefined.
 * @param[in]     ctx     the context.
 * @param[in]     ifp     the interface of every packet, or NULL to take ifps[i].
 * @param[in]     ifps    with ifp NULL: the interface of each packet (interfaces
 *                        may alternate freely); ignored otherwise.
 * @param[in,out] pkts    the n inner packets (distinct buffers).
 * @param[in]     n       how many.
 * @param[in]     now     current time, ms.
 * @param[out]    results NULL, or n verdicts: results[i] is what
 *                        ipsecif_if_output() would return for pkts[i]
 *                        (::IPSECIF_ERR_ARG, not counted, for a NULL or
 *                        invalid buffer or interface).
 * @return the number of packets sent (0..n), or ::IPSECIF_ERR_ARG when ctx
 *         is not a context, pkts is NULL (n > 0), or both ifp and ifps are
 *         NULL (n > 0); then nothing was processed.
 */
int ipsecif_if_output_batch(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                            struct ipsecif_if *const *ifps, struct ipsecif_buf *const *pkts,
                            size_t n, uint64_t now, int *results);

/** Default nesting limit: a packet passes one interface's output only, as
 *  NetBSD's max_ipsec_nesting. */
#define IPSECIF_MAX_NESTING_DEFAULT 1
/** Largest nesting limit ipsecif_if_max_nesting_set() accepts. */
#define IPSECIF_MAX_NESTING_MAX 255

/**
 * @brief Set how many interface outputs one packet may pass (ipsec over
 *        ipsec), for every interface of the context.
 *
 * NetBSD counts the passes in a tag on the packet; a host's stack keeps no
 * such tag, so the depth is read off the packet instead. A plain inner
 * packet has depth 0. Each interface remembers the depth of the outer
 * packets it sent (the depth of what it encapsulated, plus one); a deeper
 * depth holds for a second against shallower ones, so plain traffic mixed
 * into a loop cannot reset it between two rounds of one packet. An inner
 * packet that is an outer packet of interface X (see ipsecif_if_output())
 * has X's depth, at least 1. A packet of depth d is refused when d + 1 >
 * max. So with max 1 (the default) no outer packet of ours is encapsulated
 * again; with max 2, ipsec1 over ipsec0 works and a loop stops after at
 * most one more round per second. Only outer packets of this context are
 * recognized; a loop through a second host or context is not seen here.
 * @param[in] ctx the context.
 * @param[in] max 1 .. IPSECIF_MAX_NESTING_MAX.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx is NULL or not a context.
 * @retval IPSECIF_ERR_RANGE max is outside 1 .. IPSECIF_MAX_NESTING_MAX.
 */
int ipsecif_if_max_nesting_set(struct ipsecif_ctx *ctx, int max);

/**
 * @brief The nesting limit (see ipsecif_if_max_nesting_set()).
 * @return the limit, or ::IPSECIF_ERR_ARG when ctx is NULL or not a context.
 */
int ipsecif_if_max_nesting_get(const struct ipsecif_ctx *ctx);

/** Headroom ipsecif_if_output() may need: IPv6 (40) + UDP (8) + ESP (8) + IV (16). */
#define IPSECIF_HEADROOM 72
/** Tailroom ipsecif_if_output() may need: padding (up to 15) + 2 + ICV (up to 32) + 4 (ESN). */
#define IPSECIF_TAILROOM 56

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_IFACE_H */
