/**
 * @file ipsecif_linux_host.h
 * @brief The Linux port's host mode: the network namespace's own and
 *        forwarded traffic through the library's ipsec(4) engine
 *        (ipsecif_host_output(), and ipsecif_input() handing the result to
 *        deliver_host).
 *
 * Host code, not part of libipsecif. Policy routing sends the host's
 * packets into one TUN device (ipsech0): for IPv4 and IPv6 the rules
 *
 *     100: iif ipsech0 lookup main          (what the daemon hands back)
 *     101: fwmark 0x4950 lookup main        (the daemon's own sockets)
 *     102: to fe80::/10, ff00::/8, 169.254.0.0/16, 224.0.0.0/4,
 *          255.255.255.255 lookup main      (link-local, multicast, broadcast)
 *     103: lookup 0x4950
 *
 * and table 0x4950 holds `default dev ipsech0` and, at a higher metric,
 * `blackhole default`. The daemon reads each packet from the device, gives
 * it to ipsecif_host_output(), and sends the result (IPPROTO_RAW, SO_MARK
 * 0x4950, so it takes the main table) to the address the library names.
 *
 * Fragments: the kernel cuts what is larger than the device's MTU before
 * the daemon sees it, and transport mode cannot protect a fragment, so the
 * fragments read from the device are put together first (ipsecif_reass_*:
 * 32 datagrams, 64 KiB each, 1 MiB in all, 30 s for IPv4 and 60 s for
 * IPv6). What IPsec made larger than the path MTU towards its destination
 * is cut after IPsec (ipsecif_frag_*), as KAME does: IPv4 only with DF
 * clear, IPv6 with a Fragment header and a random identification, when
 * the host had fragmented the packet itself. A packet the host sent whole
 * (IPv4 with DF set, or IPv6) gets an ICMP "fragmentation needed" or
 * ICMPv6 "packet too big" instead, with the path MTU less what IPsec
 * added, written back to the device from the packet's destination, so the
 * kernel lowers its path MTU for it (TCP then sends smaller segments, the
 * rest is fragmented before IPsec), as Linux's own IPsec does; an IPv6
 * packet whose MTU would fall below 1280 is cut instead, and so is the
 * outer IPv4 header of a tunnel whose inner packet gets no error (DF
 * copied from IPv6, RFC 4213). The path MTU is what the kernel
 * knows for the destination in the main table: IP_MTU or IPV6_MTU of a UDP
 * socket with the mark, connected to it. It is kept per destination for
 * IPSECIF_LINUX_HOST_PMTU_TTL_MS and asked again sooner when a send fails
 * with EMSGSIZE (the kernel does not cut IPPROTO_RAW packets). Inbound,
 * the kernel reassembles ESP and AH before the raw sockets see them. Every socket of the port gets
 * the mark. Packets the library opens (ESP, AH) and lets in are written to the device: the kernel
 * then takes them as arriving on ipsech0 (rule 100: delivered or forwarded by the main table).
 * Cleartext that arrives never reaches the library: the daemon mirrors the inbound side of the SPD
 * in an nftables table (see examples/router/host_nft.h).
 *
 * Fail closed: the device is persistent and the rules and both routes
 * stay when the daemon stops (SIGTERM, a crash, kill -9). With no process
 * attached the kernel drops what is routed into the device, and without
 * the device the blackhole route drops it: host traffic stops instead of
 * leaving in clear. A daemon started again takes the device over and
 * finds the rules and routes in place (ipsecif_linux_host::adopted says
 * so); the example router then loads the policies of the run before from
 * its state file before it reads a packet (examples/router/host_state.h).
 * ipsecif_linux_host_close() with remove = true takes it all away.
 */
#ifndef IPSECIF_LINUX_HOST_H
#define IPSECIF_LINUX_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_linux.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Name of the host device. */
#define IPSECIF_LINUX_HOST_DEV "ipsech0"

/** Its MTU: room under a 1500-byte link for ESP or AH, transport or tunnel mode. */
#define IPSECIF_LINUX_HOST_MTU 1400

/** Packet mark of the daemon's sockets, and the routing table of host traffic. */
#define IPSECIF_LINUX_HOST_MARK 0x4950u

/** Preference of the first of the rules (the others follow it). */
#define IPSECIF_LINUX_HOST_PREF 100u

/** Metric of the route into the device; the blackhole route's is higher. */
#define IPSECIF_LINUX_HOST_METRIC 100u

/** Metric of the blackhole route. */
#define IPSECIF_LINUX_HOST_BLACKHOLE_METRIC 4096u

/** Headroom before a host packet read from the device (headers of two SAs, tunnel mode). */
#define IPSECIF_LINUX_HOST_HEADROOM 256

/** Tailroom after it (ESP trailers and ICVs). */
#define IPSECIF_LINUX_HOST_TAILROOM 128

/** Addresses of the namespace kept for local_addr. */
#define IPSECIF_LINUX_HOST_ADDRS 64

/** Datagrams reassembled at once. */
#define IPSECIF_LINUX_HOST_REASS_SLOTS 32

/** Bytes of fragments held at once. */
#define IPSECIF_LINUX_HOST_REASS_BYTES (1024u * 1024u)

/** Destinations whose path MTU is kept. */
#define IPSECIF_LINUX_HOST_PMTU_CACHE 64

/** How long a path MTU is kept before the kernel is asked again, ms. */
#define IPSECIF_LINUX_HOST_PMTU_TTL_MS 10000u

/** One kept path MTU. */
struct ipsecif_linux_host_pmtu {
    struct ipsecif_addr dst; /**< The destination (family 0: unused). */
    uint32_t mtu;            /**< Its path MTU. */
    uint64_t until;          /**< Asked again from then on (ms). */
};

/** Counters of host mode (the library counts the rest). */
struct ipsecif_linux_host_stats {
    uint64_t rx_packets;      /**< Packets read from the device. */
    uint64_t rx_dropped;      /**< Of them, what the library refused. */
    uint64_t tx_packets;      /**< Packets written to the device (deliver_host). */
    uint64_t tx_errors;       /**< Writes that failed. */
    uint64_t frag_in;         /**< Fragments read from the device. */
    uint64_t reassembled;     /**< Datagrams made whole from them. */
    uint64_t frag_dropped;    /**< Fragments dropped (the reassembler's counters say why). */
    uint64_t out_fragmented;  /**< Packets cut after IPsec for the path MTU. */
    uint64_t out_fragments;   /**< Fragments sent. */
    uint64_t out_toobig;      /**< Packets too big after IPsec, ICMP error written back. */
    uint64_t out_frag_errors; /**< Packets neither sent nor cut (fragmenter refused, no error
                                   allowed). */
    uint64_t pmtu_lookups;    /**< Path MTUs asked of the kernel. */
    uint64_t pmtu_emsgsize;   /**< Sends refused with EMSGSIZE (path MTU asked again). */
};

/** Host mode. Fields are private. */
struct ipsecif_linux_host {
    struct ipsecif_linux *lx;                            /**< The port. */
    int fd;                                              /**< The TUN descriptor, -1 when closed. */
    bool adopted;                                        /**< The device was there before open. */
    struct ipsecif_addr addrs[IPSECIF_LINUX_HOST_ADDRS]; /**< The namespace's addresses. */
    size_t naddrs;                                       /**< How many. */
    uint64_t addrs_read;                   /**< When they were read (ms), 0 = never. */
    struct ipsecif_linux_host_stats stats; /**< Counters. */
    struct ipsecif_reass *reass;           /**< Fragments read from the device. */
    void *reass_mem;                       /**< Its memory. */
    uint8_t *out;                          /**< One fragment or ICMP error being written. */
    int mtu4;                              /**< UDP socket asking IPv4 path MTUs, -1. */
    int mtu6;                              /**< The same for IPv6. */
    uint32_t frag_id;                      /**< IPv4 identification when a packet has 0. */
    struct ipsecif_linux_host_pmtu pmtu[IPSECIF_LINUX_HOST_PMTU_CACHE]; /**< Path MTUs. */
    uint8_t buf[IPSECIF_LINUX_HOST_HEADROOM + IPSECIF_MTU_MAX + IPSECIF_LINUX_HOST_TAILROOM];
    /**< Receive buffer. */
};

/**
 * @brief Start host mode: the AH and IPPROTO_RAW sockets, the mark on
 *        every port socket, the device (made or taken over: persistent,
 *        MTU, up, IPv6 on, rp_filter 0), the routes and the rules.
 *
 * Call after ipsecif_linux_set_ctx(). What is already there (rules and
 * routes of an earlier run) is no error.
 * @return 0, or -1 with errno set; what was installed stays (it drops, it
 *         does not leak), until ipsecif_linux_host_close(h, true). When
 *         the device could not be had (EBUSY: another process holds it),
 *         nothing was installed and close leaves everything as it is.
 */
int ipsecif_linux_host_open(struct ipsecif_linux_host *h, struct ipsecif_linux *lx);

/**
 * @brief Stop host mode.
 * @param remove true: the rules, the routes and the device go, and host
 *        traffic takes the main table again; false: they stay and drop
 *        host traffic until a daemon takes them over (fail closed).
 */
void ipsecif_linux_host_close(struct ipsecif_linux_host *h, bool remove);

/** Port callback body: ipsecif_port::deliver_host, writes the packet to the device. */
void ipsecif_linux_host_deliver(struct ipsecif_linux_host *h, const struct ipsecif_buf *pkt);

/** @brief The reassembler's counters (NULL before open). */
const struct ipsecif_reass_stats *
ipsecif_linux_host_reass_stats(const struct ipsecif_linux_host *h);

/**
 * @brief Port callback body: ipsecif_port::local_addr. The namespace's
 *        addresses (getifaddrs), read again on a miss at most once a second.
 */
bool ipsecif_linux_host_local_addr(struct ipsecif_linux_host *h, const struct ipsecif_addr *a);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_LINUX_HOST_H */
