/**
 * @file sa.h
 * @brief Security associations (SADB).
 */
#ifndef IPSECIF_SA_H
#define IPSECIF_SA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/stats.h"
#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_sa SADB
 * @brief Adding, updating, finding, expiring and removing SAs.
 *
 * An SA is identified by (protocol, destination, SPI). Keys are copied into
 * the context at add or update time; the caller's buffers may be wiped right
 * after the call. Keys are wiped when the SA dies.
 * @{
 */

/** Encryption algorithms (ESP). Values are the library's own, not PF_KEY's. */
enum ipsecif_ealg {
    IPSECIF_EALG_NONE = 0,      /**< No encryption transform (AH). */
    IPSECIF_EALG_NULL = 1,      /**< NULL encryption (RFC 2410). */
    IPSECIF_EALG_3DES_CBC = 2,  /**< 3DES-CBC, 24-byte key. */
    IPSECIF_EALG_AES_CBC = 3,   /**< AES-CBC (RFC 3602), 16/24/32-byte key. */
    IPSECIF_EALG_AES_GCM16 = 4, /**< AES-GCM, 16-byte ICV (RFC 4106); key + 4-byte salt. */
    IPSECIF_EALG_AES_GMAC = 5,  /**< AES-GMAC (RFC 4543); key + 4-byte salt. */
    IPSECIF_EALG_CHACHA20_POLY1305 =
        6 /**< ChaCha20-Poly1305 (RFC 7634); 32-byte key + 4-byte salt. */
};

/** Authentication algorithms. */
enum ipsecif_aalg {
    IPSECIF_AALG_NONE = 0,              /**< None (AEAD or NULL-auth). */
    IPSECIF_AALG_HMAC_SHA1_96 = 1,      /**< HMAC-SHA1-96, 20-byte key. */
    IPSECIF_AALG_HMAC_SHA2_256_128 = 2, /**< HMAC-SHA2-256-128 (RFC 4868), 32-byte key. */
    IPSECIF_AALG_HMAC_SHA2_384_192 = 3, /**< HMAC-SHA2-384-192, 48-byte key. */
    IPSECIF_AALG_HMAC_SHA2_512_256 = 4  /**< HMAC-SHA2-512-256, 64-byte key. */
};

/** IPsec modes. */
enum ipsecif_mode {
    IPSECIF_MODE_ANY = 0,       /**< Any (SA only: matches either). */
    IPSECIF_MODE_TRANSPORT = 1, /**< Transport mode. */
    IPSECIF_MODE_TUNNEL = 2     /**< Tunnel mode. */
};

/** SA states, as in RFC 2367. */
enum ipsecif_sa_state {
    IPSECIF_SA_LARVAL = 0, /**< Made by GETSPI, waiting for UPDATE. */
    IPSECIF_SA_MATURE = 1, /**< Usable. */
    IPSECIF_SA_DYING = 2,  /**< Soft lifetime reached; still usable. */
    IPSECIF_SA_DEAD = 3    /**< Hard lifetime reached; about to be removed. */
};

/** SA flags. */
enum ipsecif_sa_flags {
    IPSECIF_SA_F_ESN = 0x1 /**< Extended (64-bit) sequence numbers (RFC 4303). */
};

/** A set of lifetime limits or current values (RFC 2367 sadb_lifetime). 0 = no limit. */
struct ipsecif_lifetime {
    uint32_t allocations; /**< Number of allocations (not enforced, reported). */
    uint64_t bytes;       /**< Bytes protected. */
    uint64_t addtime;     /**< Seconds since the SA was added (or, current: when added, in ms). */
    uint64_t usetime; /**< Seconds since first use (or, current: first use, in ms; 0 = unused). */
};

/** Parameters to add or update an SA. */
struct ipsecif_sa_params {
    uint8_t proto;                /**< ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH. */
    uint8_t mode;                 /**< ::ipsecif_mode. */
    uint8_t ealg;                 /**< ::ipsecif_ealg (AH: none, or ::IPSECIF_EALG_AES_GMAC). */
    uint8_t aalg;                 /**< ::ipsecif_aalg (AH: required unless AES-GMAC). */
    uint32_t spi;                 /**< SPI, host byte order; 256 .. 0xffffffff. */
    struct ipsecif_addr src;      /**< Outer source. */
    struct ipsecif_addr dst;      /**< Outer destination. */
    uint16_t natt_sport;          /**< NAT-T UDP source port, 0 = no UDP encapsulation. */
    uint16_t natt_dport;          /**< NAT-T UDP destination port. */
    uint32_t reqid;               /**< Request id ("unique id"), 0 = none. */
    uint32_t replay_window;       /**< Anti-replay window in packets, 0 = off. */
    uint32_t flags;               /**< ::ipsecif_sa_flags. */
    uint32_t seq;                 /**< Key-management sequence (PF_KEY), informational. */
    const uint8_t *ekey;          /**< Encryption key (salt last for AEAD). */
    size_t ekey_len;              /**< Its length. */
    const uint8_t *akey;          /**< Authentication key. */
    size_t akey_len;              /**< Its length. */
    struct ipsecif_lifetime soft; /**< Soft limits (EXPIRE soft). */
    struct ipsecif_lifetime hard; /**< Hard limits (EXPIRE hard, SA removed). */
};

/** What ipsecif_sa_get() and the walk report of an SA (no keys). */
struct ipsecif_sa_info {
    struct ipsecif_sa_params params; /**< As added; ekey/akey are NULL, lengths kept. */
    uint8_t state;                   /**< ::ipsecif_sa_state. */
    struct ipsecif_lifetime current; /**< Bytes, add time and first use time (ms). */
    uint64_t seq_out;                /**< Last sequence number sent (64-bit). */
    uint64_t seq_in_top;             /**< Highest sequence number accepted. */
    uint32_t pid;                    /**< Creator id given by key management, informational. */
    struct ipsecif_sa_stats stats;   /**< Counters. */
};

struct ipsecif_ctx;

/**
 * @brief Add a mature SA.
 * @param[in] ctx the context.
 * @param[in] p   the parameters; keys are copied.
 * @param[in] now current time, ms.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx or p is NULL, or bad parameters (family
 *         mismatch, SPI < 256, NAT-T ports on an AH SA ...).
 * @retval IPSECIF_ERR_UNSUPPORTED the protocol is neither ESP nor AH, or an
 *         unknown or unsupported algorithm (or combination of algorithms; AH
 *         takes an authentication algorithm and no encryption, or AES-GMAC
 *         alone).
 * @retval IPSECIF_ERR_KEYLEN a key length does not fit the algorithm.
 * @retval IPSECIF_ERR_RANGE the replay window exceeds IPSECIF_REPLAY_WINDOW_MAX.
 * @retval IPSECIF_ERR_EXIST an SA with this (proto, dst, spi) exists.
 * @retval IPSECIF_ERR_FULL no free SA slot.
 * @retval IPSECIF_ERR_CRYPTO the crypto backend refused the key.
 * @retval IPSECIF_ERR_RANDOM the random source failed (the per-SA IV mask).
 */
int ipsecif_sa_add(struct ipsecif_ctx *ctx, const struct ipsecif_sa_params *p, uint64_t now);

/**
 * @brief Update an SA: mature a larval SA made by ipsecif_sa_getspi(), or
 *        change the lifetimes of a mature one (keys of a mature SA cannot change).
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_NOENT no SA with (proto, dst, spi).
 * @retval IPSECIF_ERR_STATE the SA is mature and the call would change its keys
 *         or algorithms, or the SA is dead.
 * @retval IPSECIF_ERR_ARG, IPSECIF_ERR_UNSUPPORTED, IPSECIF_ERR_KEYLEN,
 *         IPSECIF_ERR_RANGE, IPSECIF_ERR_CRYPTO, IPSECIF_ERR_RANDOM as
 *         ipsecif_sa_add() (the last two only when a larval SA matures).
 */
int ipsecif_sa_update(struct ipsecif_ctx *ctx, const struct ipsecif_sa_params *p, uint64_t now);

/**
 * @brief Allocate an SPI in [spi_min, spi_max] and make a larval SA for it.
 * @param[in]  ctx     the context.
 * @param[in]  proto   ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH.
 * @param[in]  src     source of the future SA.
 * @param[in]  dst     destination of the future SA (us, for inbound).
 * @param[in]  mode    ::ipsecif_mode.
 * @param[in]  reqid   request id.
 * @param[in]  spi_min lowest SPI (values below 256 are raised to 256).
 * @param[in]  spi_max highest SPI.
 * @param[in]  seq     key-management sequence to remember.
 * @param[in]  now     current time, ms.
 * @param[out] spi     the allocated SPI.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG a NULL argument, bad addresses or mode, or an
 *         empty range.
 * @retval IPSECIF_ERR_UNSUPPORTED proto is neither ESP nor AH.
 * @retval IPSECIF_ERR_EXIST no free SPI found in the range.
 * @retval IPSECIF_ERR_FULL no free SA slot.
 * @retval IPSECIF_ERR_RANDOM the random source failed.
 */
int ipsecif_sa_getspi(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                      const struct ipsecif_addr *dst, uint8_t mode, uint32_t reqid,
                      uint32_t spi_min, uint32_t spi_max, uint32_t seq, uint64_t now,
                      uint32_t *spi);

/**
 * @brief Delete an SA; its keys are wiped.
 * @param[in] ctx   the context.
 * @param[in] proto ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH.
 * @param[in] src   the SA's source, or NULL to match any.
 * @param[in] dst   the SA's destination.
 * @param[in] spi   the SPI, host byte order.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx or dst is NULL.
 * @retval IPSECIF_ERR_NOENT no such SA.
 */
int ipsecif_sa_delete(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                      const struct ipsecif_addr *dst, uint32_t spi);

/**
 * @brief Report an SA.
 * @param[in]  ctx   the context.
 * @param[in]  proto ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH.
 * @param[in]  src   the SA's source, or NULL to match any.
 * @param[in]  dst   the SA's destination.
 * @param[in]  spi   the SPI, host byte order.
 * @param[out] out   the SA's description.
 * @retval IPSECIF_OK success, *out filled.
 * @retval IPSECIF_ERR_ARG ctx, dst or out is NULL.
 * @retval IPSECIF_ERR_NOENT no such SA.
 */
int ipsecif_sa_get(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                   const struct ipsecif_addr *dst, uint32_t spi, struct ipsecif_sa_info *out);

/**
 * @brief Delete every SA of a protocol (0 = all protocols).
 * @return the number of SAs deleted (>= 0; 0 for a NULL context).
 */
int ipsecif_sa_flush(struct ipsecif_ctx *ctx, uint8_t proto);

/**
 * @brief Callback for ipsecif_sa_walk().
 * @return 0 to go on, anything else to stop the walk with that value.
 */
typedef int (*ipsecif_sa_walk_fn)(void *arg, const struct ipsecif_sa_info *sa);

/**
 * @brief Visit every SA of a protocol (0 = all), oldest first.
 *
 * The callback must not add or delete SAs.
 * @return 0 when all were visited, or the callback's nonzero value.
 * @retval IPSECIF_ERR_ARG ctx or fn is NULL.
 */
int ipsecif_sa_walk(struct ipsecif_ctx *ctx, uint8_t proto, ipsecif_sa_walk_fn fn, void *arg);

/** @brief Number of SAs in use (any state). */
size_t ipsecif_sa_count(const struct ipsecif_ctx *ctx);

/**
 * @brief Does an encryption key length fit the algorithm?
 * @param[in] ealg an ::ipsecif_ealg.
 * @param[in] len  key length in bytes, salt included for AEAD algorithms.
 * @return true if the length fits.
 */
bool ipsecif_ealg_keylen_ok(uint8_t ealg, size_t len);

/**
 * @brief Does an authentication key length fit the algorithm?
 * @param[in] aalg an ::ipsecif_aalg.
 * @param[in] len  key length in bytes.
 * @return true if the length fits.
 */
bool ipsecif_aalg_keylen_ok(uint8_t aalg, size_t len);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_SA_H */
