/**
 * @file stats.h
 * @brief Counters, kept globally, per interface and per SA.
 */
#ifndef IPSECIF_STATS_H
#define IPSECIF_STATS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_stats Counters
 * @brief Packet counters in the spirit of netstat's ipsec and esp sections.
 *
 * The same structure is kept for the whole context and for each interface;
 * a dropped packet increments exactly one drop counter for its reason.
 * @{
 */

/** Packet counters. */
struct ipsecif_stats {
    uint64_t in_success;        /**< Inbound packets processed and delivered. */
    uint64_t in_bytes;          /**< Inbound inner bytes delivered. */
    uint64_t in_polvio;         /**< Inbound packets violating the policy. */
    uint64_t in_nosa;           /**< Inbound packets for which no SA was usable (state). */
    uint64_t in_badspi;         /**< Inbound ESP with an unknown SPI. */
    uint64_t in_replay;         /**< Inbound packets rejected by the replay window. */
    uint64_t in_auth;           /**< Inbound packets whose ICV failed. */
    uint64_t in_badpad;         /**< Inbound packets with wrong padding. */
    uint64_t in_malformed;      /**< Inbound packets truncated or malformed. */
    uint64_t in_ecn;            /**< Inbound packets dropped by the RFC 6040 ECN rule. */
    uint64_t in_noroom;         /**< Inbound packets dropped for lack of buffer room. */
    uint64_t in_crypto;         /**< Inbound packets the crypto backend failed on. */
    uint64_t in_natt_keepalive; /**< NAT keepalives (0xFF) received and ignored. */
    uint64_t in_notours;        /**< Inbound packets not for IPsec (ignored). */
    uint64_t out_success;       /**< Outbound packets protected and sent. */
    uint64_t out_bytes;         /**< Outbound inner bytes protected. */
    uint64_t out_polvio;        /**< Outbound packets dropped by a discard policy. */
    uint64_t out_nosa;          /**< Outbound packets dropped for lack of an SA. */
    uint64_t out_noroom;        /**< Outbound packets dropped for lack of buffer room. */
    uint64_t out_toobig;        /**< Outbound packets over the MTU (ICMP sent back). */
    uint64_t out_seqwrap;       /**< Outbound packets refused because the SA sequence would wrap. */
    uint64_t out_crypto;        /**< Outbound packets the crypto backend failed on. */
    uint64_t out_malformed;     /**< Outbound inner packets that are not IPv4/IPv6. */
    uint64_t out_down;       /**< Outbound packets to an interface that is down or has no tunnel. */
    uint64_t out_inval;      /**< Outbound packets of a family the interface does not forward. */
    uint64_t out_port;       /**< Outbound packets the port failed to send. */
    uint64_t out_nested;     /**< Outbound packets refused: ipsec over ipsec beyond the limit. */
    uint64_t acquire;        /**< ACQUIRE events raised. */
    uint64_t host_out_ipsec; /**< Host packets sent with IPsec applied. */
    uint64_t host_out_clear; /**< Host packets sent in clear (policy none, bypass, level use). */
    uint64_t host_in_ipsec;  /**< Host packets received with IPsec and allowed. */
    uint64_t host_in_clear;  /**< Host packets received in clear and allowed. */
};

/** Per-SA counters. */
struct ipsecif_sa_stats {
    uint64_t packets; /**< Packets processed with this SA. */
    uint64_t bytes;   /**< Payload bytes processed with this SA. */
    uint64_t replay;  /**< Packets rejected by the replay window. */
    uint64_t auth;    /**< Packets whose ICV failed. */
    uint64_t badpad;  /**< Packets with wrong padding. */
};

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_STATS_H */
