/**
 * @file ipsecif.h
 * @brief libipsecif: the context, its configuration, packet input and timers.
 *
 * Include this header to get the whole public API.
 */
#ifndef IPSECIF_IPSECIF_H
#define IPSECIF_IPSECIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/err.h"
#include "ipsecif/frag.h"
#include "ipsecif/host.h"
#include "ipsecif/iface.h"
#include "ipsecif/opts.h"
#include "ipsecif/pfkey.h"
#include "ipsecif/port.h"
#include "ipsecif/sa.h"
#include "ipsecif/spd.h"
#include "ipsecif/stats.h"
#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_ctx Context
 * @brief One instance of the IPsec engine in host-supplied memory.
 *
 * Threading: a context is not locked inside. The host serializes every call
 * on one context (one lock, or one thread such as lwIP's tcpip thread).
 * Time: every call that may need it takes `now`, a monotonic time in
 * milliseconds; the library never reads a clock.
 * @{
 */

/** Library version. */
#define IPSECIF_VERSION_STRING "0.1.0"

/** Capacities and behaviour, fixed at ipsecif_init(). */
struct ipsecif_config {
    uint32_t max_interfaces;      /**< Interfaces (each holds 4 policies). */
    uint32_t max_policies;        /**< Policies, interface-owned ones included. */
    uint32_t max_sas;             /**< SAs, larval ones included. */
    uint32_t replay_window_max;   /**< Largest replay window per SA, packets; multiple of 32,
                                       <= IPSECIF_REPLAY_WINDOW_MAX; 0 = that maximum. */
    bool fixed_reqid;             /**< Use NetBSD's fixed unique-id scheme. */
    uint32_t reqid_base;          /**< Base of the fixed scheme (IPv4 pair: base + 2 x unit,
                                       IPv6 pair: base + 2 x unit + 1). */
    uint32_t acquire_interval_ms; /**< Least time between two ACQUIREs for one policy; 0 = 1000. */
    uint8_t ttl;                  /**< Outer TTL / hop limit; 0 = 64. */
    uint32_t max_pfkey_endpoints; /**< PF_KEY endpoints open at once (0: no PF_KEY). */
    uint32_t max_socket_policies; /**< Sockets with a per-socket policy at once (0: none). */
};

/** Fill a configuration with defaults for a small gateway. */
void ipsecif_config_default(struct ipsecif_config *cfg);

struct ipsecif_ctx;

/**
 * @brief Bytes of memory a context with this configuration needs.
 * @return the size, or 0 if the configuration is invalid.
 */
size_t ipsecif_ctx_size(const struct ipsecif_config *cfg);

/**
 * @brief Initialize a context in caller memory.
 * @param[out] out      the context (it lives inside mem).
 * @param[in]  mem      memory of at least ipsecif_ctx_size() bytes, 16-byte aligned;
 *                      owned by the context until ipsecif_deinit().
 * @param[in]  mem_len  its size.
 * @param[in]  cfg      the configuration (copied).
 * @param[in]  port     the port callbacks; must outlive the context.
 * @param[in]  user     passed to every port callback.
 * @param[in]  now      current time, ms.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG a NULL argument, a missing required callback, or a bad configuration.
 * @retval IPSECIF_ERR_NOROOM mem_len is too small or mem misaligned.
 * @retval IPSECIF_ERR_UNSUPPORTED the crypto backend needs a larger slot than
 *         IPSECIF_CRYPTO_SLOT_SIZE.
 * @retval IPSECIF_ERR_RANDOM the port's random callback failed.
 * @retval IPSECIF_ERR_INTERNAL the modules' memory layout did not add up.
 */
int ipsecif_init(struct ipsecif_ctx **out, void *mem, size_t mem_len,
                 const struct ipsecif_config *cfg, const struct ipsecif_port *port, void *user,
                 uint64_t now);

/**
 * @brief Tear a context down: destroys interfaces, wipes every SA key. The
 *        memory may be reused afterwards.
 */
void ipsecif_deinit(struct ipsecif_ctx *ctx);

/**
 * @brief Process an outer packet received from the network.
 *
 * The buffer starts with the outer IPv4 or IPv6 header. ESP (protocol 50)
 * and ESP in UDP to a NAT-T interface's port are handled; the decapsulated
 * inner packet is delivered through the port's deliver_inner. ESP between
 * addresses no interface's tunnel has, and AH (protocol 51), are host
 * traffic: when the port has deliver_host they go through
 * ipsecif_host_input() and the result to deliver_host, else they are
 * refused (in_polvio). Processing is in place.
 * @retval IPSECIF_OK delivered (or a NAT-T keepalive consumed).
 * @retval IPSECIF_ERR_ARG ctx or pkt is NULL or not valid (not counted).
 * @retval IPSECIF_ERR_PROTO not ESP and not NAT-T, or IKE behind the non-ESP
 *         marker (the host should handle it; counted in in_notours).
 * @retval IPSECIF_ERR_MALFORMED, IPSECIF_ERR_BADSPI, IPSECIF_ERR_AUTH,
 *         IPSECIF_ERR_REPLAY, IPSECIF_ERR_BADPAD, IPSECIF_ERR_POLICY,
 *         IPSECIF_ERR_ECN, IPSECIF_ERR_NOROOM, IPSECIF_ERR_CRYPTO,
 *         IPSECIF_ERR_INTERNAL dropped and counted.
 * @retval IPSECIF_ERR_DOWN the interface is down; counted in in_polvio.
 */
int ipsecif_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now);

/**
 * @brief Process an ESP packet whose outer IP header was already removed
 *        (IPv6 raw sockets, UDP sockets).
 * @param[in]     ctx  the context.
 * @param[in]     meta outer addresses, tos/traffic class, and for ESP in UDP the
 *                     ports (sport/dport nonzero); ip_hlen and esp_off are ignored.
 * @param[in,out] pkt  starting at the ESP header (or the UDP payload for NAT-T).
 * @param[in]     now  current time, ms.
 *
 * Every code but IPSECIF_OK and IPSECIF_ERR_ARG is a drop, counted in the
 * context's statistics and, when the outer address pair names an interface,
 * in that interface's.
 * @retval IPSECIF_OK delivered (or a NAT-T keepalive consumed).
 * @retval IPSECIF_ERR_ARG ctx, meta or pkt is NULL or not valid, or
 *         meta's addresses are not both IPv4 or both IPv6 (not counted).
 * @retval IPSECIF_ERR_PROTO ESP in UDP with the non-ESP marker: IKE, for the
 *         host to handle (counted in in_notours, of the context only).
 * @retval IPSECIF_ERR_MALFORMED shorter than an ESP header, an ESP length that
 *         does not fit the SA, or an inner header that is malformed or not
 *         what ESP's next header says.
 * @retval IPSECIF_ERR_BADSPI no mature SA for the SPI and destination.
 * @retval IPSECIF_ERR_POLICY ESP in UDP on an SA without UDP encapsulation
 *         (or the reverse), an inner packet neither IPv4 nor IPv6, no
 *         interface for the outer addresses, or the inbound policy refuses it.
 * @retval IPSECIF_ERR_REPLAY a sequence number of 0, seen before, or left of the window.
 * @retval IPSECIF_ERR_AUTH the ICV does not verify.
 * @retval IPSECIF_ERR_BADPAD the padding is not 1, 2, 3, ...
 * @retval IPSECIF_ERR_NOROOM less than 4 bytes of headroom for AES-GMAC with ESN.
 * @retval IPSECIF_ERR_CRYPTO the crypto backend failed.
 * @retval IPSECIF_ERR_INTERNAL the SA's IV or ICV is longer than ESP supports
 *         (counted in in_crypto).
 * @retval IPSECIF_ERR_ECN CE on a not-ECT inner packet of a link1 interface (RFC 6040).
 * @retval IPSECIF_ERR_DOWN the interface is down (counted in in_polvio).
 */
int ipsecif_input_esp(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                      struct ipsecif_buf *pkt, uint64_t now);

/**
 * @brief Process a vector of outer packets, each as ipsecif_input() would,
 *        with the lookups and the crypto shared.
 *
 * Each packet gets exactly the verdict and the counters (global,
 * interface, SA) that ipsecif_input() called n times in vector order would
 * give, and the packets delivered (deliver_inner) are delivered in vector
 * order; one that fails affects no other. The packets are taken in slices
 * of up to ::IPSECIF_BATCH_MAX: each slice is parsed, its SAs found and
 * every packet checked against its SA's replay window (before any crypto),
 * then the crypto backend gets the packets of each SA as one burst (its
 * aead_open_burst when it has one), then, in vector order, each packet
 * whose tag verified is checked against the window again as the packets
 * ahead of it have left it, and only then the window moves (RFC 4303
 * section 3.4.3), before the policy check and the delivery. So a
 * duplicate within one vector is refused as a replay, a packet whose tag
 * fails leaves the window as it was and does not hurt the others, and a
 * packet the window has passed meanwhile is a replay. Host traffic (AH, ESP
 * no interface claims) goes through ipsecif_input() on its own, in order.
 *
 * A duplicate or late packet refused only at the second check was
 * decrypted first; the content of a packet that was not delivered is
 * undefined.
 *
 * Ownership: the library keeps no pointer after the call; buffers are
 * processed in place and are the caller's again on return.
 * @param[in]     ctx     the context.
 * @param[in,out] pkts    the n outer packets, each from its IP header (distinct buffers).
 * @param[in]     n       how many.
 * @param[in]     now     current time, ms.
 * @param[out]    results NULL, or n verdicts: results[i] is what
 *                        ipsecif_input() would return for pkts[i].
 * @return the number of packets that got ::IPSECIF_OK (delivered, or
 *         keepalives consumed), or ::IPSECIF_ERR_ARG when ctx is not a
 *         context or pkts is NULL with n > 0 (nothing processed).
 */
int ipsecif_input_batch(struct ipsecif_ctx *ctx, struct ipsecif_buf *const *pkts, size_t n,
                        uint64_t now, int *results);

/**
 * @brief ipsecif_input_esp() for a vector: packets whose outer IP header
 *        the socket removed, each with its own meta.
 *
 * As ipsecif_input_batch() in every other respect; results[i] is what
 * ipsecif_input_esp() would return for metas[i] and pkts[i].
 * @param[in]     ctx     the context.
 * @param[in]     metas   n outer descriptions, as for ipsecif_input_esp().
 * @param[in,out] pkts    the n packets, each from its ESP header (or UDP payload).
 * @param[in]     n       how many.
 * @param[in]     now     current time, ms.
 * @param[out]    results NULL, or n verdicts.
 * @return the number that got ::IPSECIF_OK, or ::IPSECIF_ERR_ARG when ctx is
 *         not a context or pkts or metas is NULL with n > 0.
 */
int ipsecif_input_esp_batch(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *metas,
                            struct ipsecif_buf *const *pkts, size_t n, uint64_t now, int *results);

/**
 * @brief Process an outer packet whose IP header the socket removed (IPv6
 *        raw sockets, UDP sockets): the library puts back an IP header made
 *        from meta (addresses, tos, ttl), and for ESP in UDP (meta's ports
 *        nonzero) a UDP header, and goes on as ipsecif_input(), so AH can
 *        check it and transport mode can hand the host a whole packet.
 *
 * IPv6 extension headers that stood in front of AH or ESP (which AH's ICV
 * covers, and which an IPv6 raw socket gives apart, as ancillary data) go
 * back in front of the payload, chained by their next-header bytes to the
 * AH or ESP header, with proto naming the first of them.
 * @param[in]     ctx   the context.
 * @param[in]     meta  outer addresses, tos and ttl; UDP ports for ESP in UDP, else 0.
 * @param[in]     proto ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH (ports 0); for
 *                      IPv6 (ports 0) also ::IPSECIF_IPPROTO_HOPOPTS,
 *                      ::IPSECIF_IPPROTO_DSTOPTS or ::IPSECIF_IPPROTO_ROUTING when
 *                      the payload starts with that extension header.
 * @param[in,out] pkt   the payload after the IP (and UDP) header; needs 48
 *                      bytes of headroom.
 * @param[in]     now   current time, ms.
 * @retval IPSECIF_ERR_ARG a NULL or invalid argument, another protocol, AH
 *         with ports, or a payload too long for one packet (not counted).
 * @retval IPSECIF_ERR_NOROOM too little headroom (counted in in_noroom).
 * @return otherwise as ipsecif_input().
 */
int ipsecif_input_payload(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                          uint8_t proto, struct ipsecif_buf *pkt, uint64_t now);

/**
 * @brief Run expiry: lifetimes, dead SAs, rate-limit state.
 * @return the next deadline in ms (absolute), or UINT64_MAX if none.
 */
uint64_t ipsecif_timer(struct ipsecif_ctx *ctx, uint64_t now);

/** @brief The next deadline without running anything (UINT64_MAX if none). */
uint64_t ipsecif_next_deadline(const struct ipsecif_ctx *ctx);

/** @brief Global counters. */
const struct ipsecif_stats *ipsecif_stats_get(const struct ipsecif_ctx *ctx);

/** @brief Reset global, per-interface and per-SA counters. */
void ipsecif_stats_reset(struct ipsecif_ctx *ctx);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_IPSECIF_H */
