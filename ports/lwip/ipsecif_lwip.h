/**
 * @file ipsecif_lwip.h
 * @brief The lwIP port: every ipsecif interface is an lwIP netif; outer ESP
 *        goes through raw pcbs, NAT-T through a UDP pcb on port 4500, the
 *        core's timer through one sys_timeout.
 *
 * Threads. Every function here, and every callback the port installs, runs
 * in lwIP's core context:
 * - NO_SYS=1: the one main loop that also calls sys_check_timeouts() and the
 *   drivers' input;
 * - NO_SYS=0: the tcpip thread (for example from tcpip_callback()), or any
 *   thread holding LOCK_TCPIP_CORE() when LWIP_TCPIP_CORE_LOCKING is 1.
 * The context is not locked inside; calls on it through ipsecif_lwip_ctx()
 * (tunnels, SAs, policies) must follow the same rule. After such a call,
 * ipsecif_lwip_rearm() brings the timer forward if the core's next deadline
 * moved.
 *
 * Memory. The port never allocates; its packets live in buffers inside the
 * instance:
 * - Input: a received pbuf that is one piece (p->next == NULL) is decrypted
 *   in place and the same pbuf, trimmed to the inner packet, goes to
 *   netif->input. A chain is copied into the port's receive buffer,
 *   processed there, and the inner packet copied back into the same chain.
 * - Output: lwIP forbids a netif's output function to change the pbuf it is
 *   given (TCP keeps it for retransmission), so the inner packet is copied
 *   once into one of the port's IPSECIF_LWIP_TX_BUFS transmit buffers,
 *   protected there in place, and sent as a pbuf_custom of type PBUF_RAM
 *   over that buffer (no pool element, no heap). The outer packet is sent
 *   whole through a raw pcb with RAW_FLAGS_HDRINCL, so lwIP adds no header
 *   pbuf either.
 * - lwIP may keep such a pbuf past raw_sendto(): ARP and neighbour
 *   discovery queue it by reference while the next hop is being resolved.
 *   The buffer is lwIP's until the pbuf is freed (the custom free function
 *   gives it back); the next packet takes another buffer. When lwIP holds
 *   all of them, the packet is dropped (ERR_MEM to the caller) and counted
 *   in counters.tx_no_buf, as an Ethernet driver with a full ring does.
 *   A PBUF_REF would be copied by lwIP's queues instead, but Ethernet
 *   output cannot prepend its header to a PBUF_REF, so PBUF_RAM it is.
 * - ICMP errors the core builds (packet too big) go to lwIP in a transmit
 *   buffer too.
 * - After ipsecif_lwip_deinit(), lwIP may still hold buffers queued for
 *   address resolution; keep the instance's memory until those queues
 *   have drained (or their netif is removed) before reusing it.
 *
 * Time: sys_now() (32-bit ms) is extended to 64 bits; the port wakes at
 * least every IPSECIF_LWIP_MAX_SLEEP_MS so that no wrap is missed.
 */
#ifndef IPSECIF_LWIP_H
#define IPSECIF_LWIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/opt.h"
#include "lwip/pbuf.h"
#include "lwip/raw.h"
#include "lwip/udp.h"

#ifdef __cplusplus
extern "C" {
#endif

#if !LWIP_RAW
#error "the ipsecif lwIP port needs LWIP_RAW 1 (ESP travels through raw pcbs)"
#endif
#if !LWIP_SUPPORT_CUSTOM_PBUF
#error "the ipsecif lwIP port needs LWIP_SUPPORT_CUSTOM_PBUF 1 (zero-copy transmit buffer)"
#endif
#if !LWIP_TIMERS
#error "the ipsecif lwIP port needs LWIP_TIMERS 1 (sys_timeout)"
#endif

/**
 * @defgroup ipsecif_lwip lwIP port
 * @brief ipsecif interfaces as lwIP netifs.
 * @{
 */

/** How many ipsecif interfaces (netifs) one port instance holds. */
#ifndef IPSECIF_LWIP_MAX_IFS
#define IPSECIF_LWIP_MAX_IFS 2
#endif

/** Largest outer packet the port receives or sends, in bytes (the outer
 *  link MTU; the inner MTU plus IPsec overhead must fit in it). */
#ifndef IPSECIF_LWIP_OUTER_MAX
#define IPSECIF_LWIP_OUTER_MAX 1500
#endif

/** 1 to open the UDP pcb on port 4500 for NAT-T (link0), 0 to leave it out. */
#ifndef IPSECIF_LWIP_NATT
#define IPSECIF_LWIP_NATT 1
#endif

#if IPSECIF_LWIP_NATT && !LWIP_UDP
#error "IPSECIF_LWIP_NATT needs LWIP_UDP 1 (or set IPSECIF_LWIP_NATT 0)"
#endif

/** Longest sleep of the port's timer, in ms. */
#ifndef IPSECIF_LWIP_MAX_SLEEP_MS
#define IPSECIF_LWIP_MAX_SLEEP_MS 3600000u
#endif

/** Room kept in front of a transmitted outer packet for the link header. */
#define IPSECIF_LWIP_LINK_ROOM LWIP_MEM_ALIGN_SIZE(PBUF_LINK_ENCAPSULATION_HLEN + PBUF_LINK_HLEN)

/** Size of each of the port's packet buffers (receive and transmit). */
#define IPSECIF_LWIP_BUF_SIZE                                                                      \
    (IPSECIF_LWIP_LINK_ROOM + IPSECIF_HEADROOM + IPSECIF_LWIP_OUTER_MAX + IPSECIF_TAILROOM)

struct ipsecif_lwip;

/** One ipsecif interface and its netif. */
struct ipsecif_lwip_if {
    struct netif netif;        /**< The lwIP netif ("ip" + unit). */
    struct ipsecif_if *ifp;    /**< The core's interface; NULL when the slot is free. */
    struct ipsecif_lwip *port; /**< Back pointer. */
};

/** How many transmit buffers the port owns (each IPSECIF_LWIP_BUF_SIZE
 *  bytes). One is enough while every next hop is resolved; each more lets
 *  one more packet wait in lwIP's ARP or neighbour-discovery queue. */
#ifndef IPSECIF_LWIP_TX_BUFS
#define IPSECIF_LWIP_TX_BUFS 3
#endif

#if IPSECIF_LWIP_TX_BUFS < 1
#error "IPSECIF_LWIP_TX_BUFS must be at least 1"
#endif

/** A transmit buffer is free, being filled and protected, or held by lwIP. */
enum ipsecif_lwip_tx_state {
    IPSECIF_LWIP_TX_FREE = 0, /**< Free. */
    IPSECIF_LWIP_TX_WORK,     /**< Being filled and protected (inside a port call). */
    IPSECIF_LWIP_TX_HELD      /**< Sent as a pbuf that lwIP has not freed yet. */
};

/** A transmit buffer: the pbuf header sits right before the bytes so that
 *  lwIP's header room check on a PBUF_RAM pbuf holds. */
struct ipsecif_lwip_txbuf {
    struct ipsecif_lwip *port; /**< Back pointer. */
    uint8_t state;             /**< An enum ipsecif_lwip_tx_state. */
    struct pbuf_custom pc;     /**< The pbuf lwIP sees. */
    /** The bytes (aligned for lwIP and for the core's 16-byte habits). */
    _Alignas(16) uint8_t mem[IPSECIF_LWIP_BUF_SIZE];
};

/** One port instance. Allocate it statically; all members are private. */
struct ipsecif_lwip {
    struct ipsecif_ctx *ctx;                            /**< The core context. */
    struct ipsecif_port port;                           /**< Callbacks given to the core. */
    struct raw_pcb *esp4;                               /**< ESP over IPv4. */
    struct raw_pcb *esp6;                               /**< ESP over IPv6. */
    struct udp_pcb *natt;                               /**< ESP in UDP, port 4500. */
    struct ipsecif_lwip_if ifs[IPSECIF_LWIP_MAX_IFS];   /**< Interface slots. */
    netif_input_fn input;                               /**< Where inner packets go. */
    struct netif *outer_netif;                          /**< Where outer packets leave, or NULL. */
    struct ipsecif_lwip_txbuf tx[IPSECIF_LWIP_TX_BUFS]; /**< Transmit buffers. */
    uint32_t tx_held;                                   /**< How many lwIP holds now. */
    /** Receive buffer for chained pbufs. */
    _Alignas(16) uint8_t rx[IPSECIF_LWIP_BUF_SIZE];
    struct pbuf *rx_p;         /**< The pbuf being decapsulated. */
    const uint8_t *rx_base;    /**< Where its bytes are being processed. */
    struct pbuf *pending;      /**< An inner packet to hand to lwIP after the core returns. */
    struct netif *pending_nif; /**< Its netif. */
    bool timer_armed;          /**< A sys_timeout is pending. */
    uint64_t armed_at;         /**< When it fires (ms). */
    uint32_t last_now;         /**< Last sys_now() seen. */
    uint32_t now_high;         /**< High word of the 64-bit clock. */
    /** How the memory rules played out (read-only for the host). */
    struct {
        uint32_t rx_in_place;  /**< Outer packets decrypted inside their pbuf. */
        uint32_t rx_copied;    /**< Chained outer packets copied to the receive buffer. */
        uint32_t tx_in_place;  /**< Outer packets sent from the buffer they were protected in. */
        uint32_t tx_copied;    /**< Outer packets the core built elsewhere, copied to a buffer. */
        uint32_t local_copied; /**< Packets the core built (ICMP errors) handed to lwIP. */
        uint32_t tx_no_buf;    /**< Packets dropped: lwIP held every transmit buffer. */
        uint32_t tx_held_max;  /**< Most transmit buffers lwIP held at once. */
    } counters;
};

/**
 * @brief Start a port instance: the core context in ctx_mem, raw pcbs for
 *        ESP over IPv4 and IPv6, the UDP pcb on 4500, the timer.
 * @param[out] pl      the instance (caller memory, static).
 * @param[in]  ctx_mem memory for the context, ipsecif_ctx_size(cfg) bytes, 16-byte aligned.
 * @param[in]  ctx_len its size.
 * @param[in]  cfg     the core configuration.
 * @param[in]  random  a random source for the core (see ipsecif_port::random);
 *                     NULL uses Mbed TLS's CTR-DRBG (ipsecif_crypto_mbedtls_random),
 *                     which needs an entropy source in the Mbed TLS build.
 * @param[in]  log     a log callback, or NULL.
 * @param[in]  input   where decapsulated packets go: tcpip_input (NO_SYS=0)
 *                     or netif_input / ip_input (NO_SYS=1).
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_PORT a pcb could not be made or bound.
 * @retval others as ipsecif_init().
 */
int ipsecif_lwip_init(struct ipsecif_lwip *pl, void *ctx_mem, size_t ctx_len,
                      const struct ipsecif_config *cfg,
                      int (*random)(void *user, uint8_t *out, size_t len),
                      void (*log)(void *user, int level, const char *msg), netif_input_fn input);

/** @brief Remove the netifs and pcbs, stop the timer, tear the context down. */
void ipsecif_lwip_deinit(struct ipsecif_lwip *pl);

/** @brief The core context, for tunnels, SAs and policies. */
struct ipsecif_ctx *ipsecif_lwip_ctx(struct ipsecif_lwip *pl);

/**
 * @brief Create interface `name` ("ipsecN") in the core and its netif (no
 *        address yet; set them with netif_set_addr() and
 *        netif_add_ip6_address()).
 * @param[in]  pl   the instance.
 * @param[in]  name "ipsecN".
 * @param[out] out  the interface.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_FULL no free slot (IPSECIF_LWIP_MAX_IFS).
 * @retval IPSECIF_ERR_PORT netif_add() failed.
 * @retval others as ipsecif_if_create().
 */
int ipsecif_lwip_if_create(struct ipsecif_lwip *pl, const char *name, struct ipsecif_lwip_if **out);

/** @brief Remove the netif and destroy the interface with its tunnel and policies. */
void ipsecif_lwip_if_destroy(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif);

/**
 * @brief Bring the interface up or down: the core's UP flag and the
 *        netif's administrative and link state together.
 * @return as ipsecif_if_set_flags().
 */
int ipsecif_lwip_if_set_up(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif, bool up);

/**
 * @brief Set the MTU of the core's interface and of the netif.
 * @retval IPSECIF_ERR_RANGE outside 1280 .. IPSECIF_LWIP_OUTER_MAX - IPSECIF_HEADROOM -
 *         IPSECIF_TAILROOM (1372 with the defaults).
 * @return others as ipsecif_if_set_mtu().
 */
int ipsecif_lwip_if_set_mtu(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif, uint32_t mtu);

#if LWIP_IPV6
/**
 * @brief Add an IPv6 address to the netif, usable at once (no duplicate
 *        address detection over a tunnel), and tell the core it is the
 *        interface's own (source of the ICMPv6 errors it builds).
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_FULL the netif has no free address slot.
 */
int ipsecif_lwip_if_add_ip6(struct ipsecif_lwip *pl, struct ipsecif_lwip_if *lif,
                            const ip6_addr_t *addr);
#endif

/**
 * @brief Name the netif outer packets leave through (the device's uplink).
 *
 * lwIP routes by netif subnets and one default netif. When an ipsecif netif
 * is the default (everything not on a local link goes through the tunnel),
 * a peer that is not on the uplink's subnet would be routed into the tunnel
 * itself; naming the uplink avoids that. NULL (the default) uses lwIP's
 * routing; an outer packet that it routes into an ipsecif netif is dropped
 * (IPSECIF_ERR_PORT), never looped.
 */
void ipsecif_lwip_set_outer_netif(struct ipsecif_lwip *pl, struct netif *nif);

/**
 * @brief Receive the core's key-management events (ACQUIRE, EXPIRE), for
 *        example to drive an IKE daemon on the device. NULL drops them.
 *        The callback's user argument is the port instance (pl).
 */
void ipsecif_lwip_set_km_event(struct ipsecif_lwip *pl,
                               void (*km_event)(void *user, const struct ipsecif_km_event *ev));

/** @brief Current time for calls into the context (ms, monotonic, 64-bit). */
uint64_t ipsecif_lwip_now(struct ipsecif_lwip *pl);

/** @brief Bring the timer forward to the core's next deadline if it moved. */
void ipsecif_lwip_rearm(struct ipsecif_lwip *pl);

/** @brief Convert an lwIP address to the core's form. */
void ipsecif_lwip_addr_from(struct ipsecif_addr *out, const ip_addr_t *in);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_LWIP_H */
