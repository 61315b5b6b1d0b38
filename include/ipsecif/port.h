/**
 * @file port.h
 * @brief The port: what a host gives the core (packet I/O, random, log,
 *        key-management events, crypto).
 */
#ifndef IPSECIF_PORT_H
#define IPSECIF_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/err.h"
#include "ipsecif/host.h"
#include "ipsecif/sa.h"
#include "ipsecif/spd.h"
#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_port Port
 * @brief Callbacks the host supplies. Every callback is called from within a
 *        library call, on the caller's thread; none may call back into the
 *        same context.
 * @{
 */

/**
 * @brief One AEAD operation of a burst (see ipsecif_crypto_ops::aead_seal_burst):
 *        the arguments of one aead_seal or aead_open call, and its result.
 */
struct ipsecif_aead_op {
    const uint8_t *nonce; /**< salt || IV, nonce_len bytes. */
    const uint8_t *aad;   /**< Additional data, aad_len bytes (NULL when 0). */
    uint8_t *data;        /**< Plaintext or ciphertext, len bytes, in place. */
    uint8_t *tag;         /**< Seal: written; open: read only. tag_len bytes. */
    size_t nonce_len;     /**< Nonce length (12 for every ESP AEAD). */
    size_t aad_len;       /**< AAD length. */
    size_t len;           /**< Data length (0 for AES-GMAC). */
    size_t tag_len;       /**< Tag length. */
    int rc;               /**< Out: the result aead_seal or aead_open would return. */
};

/**
 * @brief Crypto operations on a per-SA key slot.
 *
 * The slot is IPSECIF_CRYPTO_SLOT_SIZE bytes inside the SA, 16-byte aligned.
 * All operations work in place. All members are required except the burst
 * operations aead_seal_burst and aead_open_burst: when they are NULL the
 * core runs aead_seal and aead_open once per packet.
 */
struct ipsecif_crypto_ops {
    /** Bytes of slot this backend needs; checked at ipsecif_init(). */
    size_t slot_size;
    /**
     * Set up the slot for an algorithm pair. ekey excludes the AEAD salt.
     * Return 0, ::IPSECIF_ERR_UNSUPPORTED or ::IPSECIF_ERR_CRYPTO. On failure
     * the slot must hold no secret.
     */
    int (*init)(void *slot, uint8_t ealg, const uint8_t *ekey, size_t ekey_len, uint8_t aalg,
                const uint8_t *akey, size_t akey_len);
    /** Free what init set up and wipe the slot. Must accept a failed or wiped slot. */
    void (*wipe)(void *slot);
    /**
     * AEAD seal (AES-GCM, ChaCha20-Poly1305; AES-GMAC with len 0): encrypt
     * data[0..len) in place and write tag_len bytes of tag. nonce is salt || IV.
     */
    int (*aead_seal)(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                     size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, size_t tag_len);
    /**
     * AEAD open: verify the tag in constant time, then decrypt in place.
     * Return 0 or ::IPSECIF_ERR_AUTH (data unchanged or wiped, never partly
     * released), ::IPSECIF_ERR_CRYPTO.
     */
    int (*aead_open)(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                     size_t aad_len, uint8_t *data, size_t len, const uint8_t *tag, size_t tag_len);
    /** CBC encrypt (enc != 0) or decrypt in place; len is a multiple of the block size. */
    int (*cbc)(void *slot, int enc, const uint8_t *iv, uint8_t *data, size_t len);
    /** HMAC over data[0..len), truncated to out_len bytes. */
    int (*mac)(void *slot, const uint8_t *data, size_t len, uint8_t *out, size_t out_len);
    /**
     * Optional. Seal *ops[0..n) under this one slot, each exactly as
     * aead_seal would (n >= 1, the buffers of different ops do not overlap),
     * and store each op's result in its rc (0 or ::IPSECIF_ERR_CRYPTO). The
     * ops may run in any order or in parallel; all are done on return.
     */
    void (*aead_seal_burst)(void *slot, struct ipsecif_aead_op *const *ops, size_t n);
    /**
     * Optional. Open *ops[0..n) under this one slot, each exactly as
     * aead_open would; each op's rc is 0, ::IPSECIF_ERR_AUTH or
     * ::IPSECIF_ERR_CRYPTO. A tag that fails affects only its own op (its
     * data is wiped or left as it was, never partly released).
     */
    void (*aead_open_burst)(void *slot, struct ipsecif_aead_op *const *ops, size_t n);
};

/**
 * @brief The checks every backend's `init` makes before it touches a key.
 *
 * An algorithm the backend lacks, an AEAD with a separate authenticator
 * (AEADs authenticate themselves), and NULL encryption without
 * authentication (RFC 4303: neither confidentiality nor integrity) are not
 * supported; a NULL key with a nonzero length is a caller error.
 * @param[in] ealg_ok  the backend offers ealg.
 * @param[in] aead     ealg is an AEAD (AES-GCM, ChaCha20-Poly1305, AES-GMAC).
 * @param[in] ealg     the ::ipsecif_ealg.
 * @param[in] aalg_ok  the backend offers aalg (true for ::IPSECIF_AALG_NONE).
 * @param[in] aalg     the ::ipsecif_aalg.
 * @param[in] ekey     encryption key (may be NULL when ekey_len is 0).
 * @param[in] ekey_len its length.
 * @param[in] akey     authentication key (may be NULL when akey_len is 0).
 * @param[in] akey_len its length.
 * @retval 0 the pair may be set up.
 * @retval IPSECIF_ERR_UNSUPPORTED not a pair this backend or ESP runs.
 * @retval IPSECIF_ERR_CRYPTO a NULL key with a nonzero length.
 */
static inline int ipsecif_crypto_check_pair(bool ealg_ok, bool aead, uint8_t ealg, bool aalg_ok,
                                            uint8_t aalg, const uint8_t *ekey, size_t ekey_len,
                                            const uint8_t *akey, size_t akey_len)
{
    if (!ealg_ok || !aalg_ok || (aead && aalg != IPSECIF_AALG_NONE)) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    if ((ealg == IPSECIF_EALG_NONE || ealg == IPSECIF_EALG_NULL) && aalg == IPSECIF_AALG_NONE) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    if ((ekey == NULL && ekey_len != 0) || (akey == NULL && akey_len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

/** Key-management event types. */
enum ipsecif_km_type {
    IPSECIF_KM_ACQUIRE = 1, /**< Outbound traffic needs an SA that is missing. */
    IPSECIF_KM_EXPIRE = 2   /**< An SA reached a soft or hard lifetime. */
};

/** Why an SA expired. */
enum ipsecif_expire_reason {
    IPSECIF_EXPIRE_BYTES = 1,   /**< Byte limit. */
    IPSECIF_EXPIRE_ADDTIME = 2, /**< Time since added. */
    IPSECIF_EXPIRE_USETIME = 3, /**< Time since first use. */
    IPSECIF_EXPIRE_SEQWRAP = 4  /**< The sequence number would wrap. */
};

/** A key-management event (see PF_KEY ACQUIRE and EXPIRE). */
struct ipsecif_km_event {
    uint8_t type; /**< ::ipsecif_km_type. */
    /** ACQUIRE: the policy that wanted the SA and the SA it wants. */
    struct {
        uint32_t policy_id;           /**< The policy's id. */
        struct ipsecif_policy policy; /**< A copy of the policy. */
        uint8_t req_index;            /**< Which request of the policy lacks an SA. */
        struct ipsecif_addr src;      /**< SA source wanted. */
        struct ipsecif_addr dst;      /**< SA destination wanted. */
        uint16_t natt_sport;          /**< NAT-T ports, 0 if none. */
        uint16_t natt_dport;          /**< NAT-T destination port. */
    } acquire;
    /** EXPIRE: the SA, and which limit it reached. */
    struct {
        struct ipsecif_sa_info sa; /**< The SA, as ipsecif_sa_get() reports it. */
        uint8_t hard;              /**< 1 hard (SA removed), 0 soft. */
        uint8_t reason;            /**< ::ipsecif_expire_reason. */
    } expire;
};

/** Log levels. */
enum ipsecif_log_level {
    IPSECIF_LOG_ERR = 0,  /**< Errors. */
    IPSECIF_LOG_WARN = 1, /**< Warnings. */
    IPSECIF_LOG_INFO = 2, /**< Configuration changes. */
    IPSECIF_LOG_DEBUG = 3 /**< Per-packet detail. */
};

/** Describes an outer packet handed to ipsecif_port::send_outer. */
struct ipsecif_outer_meta {
    uint8_t family;          /**< ::IPSECIF_AF_INET or ::IPSECIF_AF_INET6. */
    struct ipsecif_addr src; /**< Outer source. */
    struct ipsecif_addr dst; /**< Outer destination. */
    uint8_t ttl;             /**< TTL or hop limit written in the header. */
    uint8_t tos;             /**< TOS or traffic class written in the header. */
    uint16_t ip_hlen;        /**< Length of the outer IP header at the start of the buffer. */
    uint16_t sport;          /**< NAT-T: UDP source port, else 0. */
    uint16_t dport;          /**< NAT-T: UDP destination port, else 0. */
    uint16_t esp_off;        /**< Offset of the ESP header (after the UDP header for NAT-T). */
};

struct ipsecif_if;

/**
 * @brief The port struct. Required members: send_outer, deliver_inner,
 *        random, crypto. Optional (may be NULL): deliver_icmp, log, km_event,
 *        pfkey_deliver, deliver_host, local_addr.
 */
struct ipsecif_port {
    /**
     * Send an outer packet. The buffer holds the complete outer IP packet
     * (IP header, UDP header for NAT-T, ESP); meta says where each part
     * starts, so a port whose socket builds its own IP header sends from
     * esp_off (or from the UDP payload). The buffer is valid only during
     * the call. Return 0 or a negative ::ipsecif_err.
     */
    int (*send_outer)(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt);
    /**
     * Deliver a decapsulated inner IPv4 or IPv6 packet received on ifp.
     * The buffer is valid only during the call.
     */
    void (*deliver_inner)(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt);
    /**
     * Deliver an ICMP or ICMPv6 error the core built for the inner sender of
     * an oversize packet that entered ifp (the port delivers it to the host
     * stack like an inner packet). Optional: NULL uses deliver_inner.
     */
    void (*deliver_icmp)(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt);
    /** Fill out[0..len) with cryptographically strong random bytes. Return 0 or
     * ::IPSECIF_ERR_RANDOM. */
    int (*random)(void *user, uint8_t *out, size_t len);
    /** Log a message (no trailing newline). Optional. */
    void (*log)(void *user, int level, const char *msg);
    /** A key-management event (ACQUIRE, EXPIRE). Optional. */
    void (*km_event)(void *user, const struct ipsecif_km_event *ev);
    /** The crypto backend. Required. */
    const struct ipsecif_crypto_ops *crypto;
    /**
     * Deliver a PF_KEY message (a reply, a broadcast, an ACQUIRE or EXPIRE)
     * to endpoint ep_id (see ipsecif_pfkey_open()). The message is valid
     * only during the call. Optional: NULL drops every PF_KEY message.
     */
    void (*pfkey_deliver)(void *user, uint32_t ep_id, const uint8_t *msg, size_t len);
    /**
     * Deliver a host packet that ipsecif_input() opened and the inbound
     * policy allowed (see ipsecif_host_input()): the whole IPv4 or IPv6
     * packet, for the host stack to take or forward. The buffer is valid
     * only during the call. Optional: NULL refuses host traffic.
     */
    void (*deliver_host)(void *user, const struct ipsecif_buf *pkt,
                         const struct ipsecif_host_result *res);
    /**
     * Is a one of the host's own addresses? Decides whether a packet that
     * came in is checked against forward policies (not the host's) or
     * inbound ones. Optional: NULL takes every packet as the host's.
     */
    bool (*local_addr)(void *user, const struct ipsecif_addr *a);
};

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_PORT_H */
