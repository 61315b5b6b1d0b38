/**
 * @file ipsecif_opts_small.h
 * @brief Sample libipsecif options for a small device (Cortex-M class, a
 *        few hundred KiB of RAM) on the lwIP port.
 *
 * Use with `-DIPSECIF_OPTS_FILE="ipsecif_opts_small.h"` for every file of
 * lib/, ports/crypto-mbedtls/ and ports/lwip/. scripts/firmware.sh builds
 * with it and prints what one interface and one SA cost.
 *
 * Capacities are runtime configuration (struct ipsecif_config); a device
 * with one tunnel wants about:
 *   max_interfaces 1 or 2, max_policies 8 (4 per interface), max_sas 4
 *   (one per direction and inner family; 2 more while rekeying),
 *   replay_window_max 64, max_pfkey_endpoints 0 without an IKE daemon.
 *
 * lwipopts.h for the port (see ports/lwip/mcu/lwipopts.h):
 *   LWIP_RAW 1                      ESP is received and sent on raw pcbs
 *   LWIP_SUPPORT_CUSTOM_PBUF 1      the port's zero-copy transmit pbuf
 *   LWIP_UDP 1                      NAT-T (IPSECIF_LWIP_NATT 1), else 0 is fine
 *   MEMP_NUM_RAW_PCB   +2           ESP over IPv4 and IPv6
 *   MEMP_NUM_UDP_PCB   +1           NAT-T
 *   MEMP_NUM_SYS_TIMEOUT +1         the port's timer
 *   LWIP_NUM_NETIF_CLIENT_DATA      unchanged: the netif state pointer is used
 *   TCP_MSS <= 1280 - 40 - 20       inner MTU 1280 (IPv6 inner: 1280 - 60)
 *   PBUF_POOL_BUFSIZE >= 1514       frames arrive in one pbuf and are
 *                                   decrypted in place (else they are copied
 *                                   once into the port's receive buffer)
 *   IPSECIF_LWIP_OUTER_MAX 1500     the port's buffers (one receive, two
 *                                   transmit) are about 1.6 KiB each
 */
#ifndef IPSECIF_OPTS_SMALL_H
#define IPSECIF_OPTS_SMALL_H

/* The Mbed TLS slot for AES-GCM, ChaCha20-Poly1305, AES-CBC with
 * HMAC-SHA2-256 on a 32-bit target (the backend checks it at compile time).
 * SHA-384/512 HMAC states need more: raise it, or leave them out of the
 * Mbed TLS build. */
#ifndef IPSECIF_CRYPTO_SLOT_SIZE
#define IPSECIF_CRYPTO_SLOT_SIZE 832
#endif

/* A 64-packet anti-replay window (RFC 4303's recommended minimum is 32). */
#define IPSECIF_REPLAY_WINDOW_MAX 64

/* One transform per policy: what ipsecif's own policies need. */
#define IPSECIF_MAX_REQUESTS 1

/* "ipsec0".."ipsec9" and a NUL. */
#define IPSECIF_IFNAME_SIZE 8

/* Keys: AES-256 or ChaCha20 with a 4-byte salt; HMAC keys up to SHA-256. */
#define IPSECIF_MAX_EKEY 36
#define IPSECIF_MAX_AKEY 32

/* Flash: no error texts. Logging stays (the port's log callback may be NULL). */
#define IPSECIF_STRERROR 0
#define IPSECIF_LOG 1

/* Smallest PF_KEY message buffer (reserved only with PF_KEY endpoints). */
#define IPSECIF_PFKEY_MSG_MAX 1024

/* The lwIP port: one tunnel, outer link MTU 1500, NAT-T on. */
#ifndef IPSECIF_LWIP_MAX_IFS
#define IPSECIF_LWIP_MAX_IFS 1
#endif
#ifndef IPSECIF_LWIP_OUTER_MAX
#define IPSECIF_LWIP_OUTER_MAX 1500
#endif
#ifndef IPSECIF_LWIP_NATT
#define IPSECIF_LWIP_NATT 1
#endif
/* Two transmit buffers: one packet may wait for ARP or neighbour discovery
 * while the next is sent (a third would be dropped and counted). */
#ifndef IPSECIF_LWIP_TX_BUFS
#define IPSECIF_LWIP_TX_BUFS 2
#endif
/* The batch functions keep a slice on the stack (about 400 bytes a
 * packet); lwIP hands packets over one at a time anyway. */
#ifndef IPSECIF_BATCH_MAX
#define IPSECIF_BATCH_MAX 4
#endif

#endif /* IPSECIF_OPTS_SMALL_H */
