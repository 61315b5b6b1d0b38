/**
 * @file types.h
 * @brief Addresses and packet buffer views shared by every module.
 */
#ifndef IPSECIF_TYPES_H
#define IPSECIF_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_types Addresses and buffers
 * @brief Plain value types: IP addresses and the in-place packet view.
 * @{
 */

/** Address family values used throughout the API. */
enum ipsecif_family {
    IPSECIF_AF_UNSPEC = 0, /**< No address. */
    IPSECIF_AF_INET = 4,   /**< IPv4. */
    IPSECIF_AF_INET6 = 6   /**< IPv6. */
};

/** IP protocol numbers the library knows by name. */
enum ipsecif_ipproto {
    IPSECIF_IPPROTO_HOPOPTS = 0,   /**< IPv6 hop-by-hop options. */
    IPSECIF_IPPROTO_ICMP = 1,      /**< ICMP. */
    IPSECIF_IPPROTO_IPV4 = 4,      /**< IPv4 in IP. */
    IPSECIF_IPPROTO_TCP = 6,       /**< TCP. */
    IPSECIF_IPPROTO_UDP = 17,      /**< UDP. */
    IPSECIF_IPPROTO_IPV6 = 41,     /**< IPv6 in IP. */
    IPSECIF_IPPROTO_ROUTING = 43,  /**< IPv6 routing header. */
    IPSECIF_IPPROTO_FRAGMENT = 44, /**< IPv6 fragment header. */
    IPSECIF_IPPROTO_ESP = 50,      /**< ESP. */
    IPSECIF_IPPROTO_AH = 51,       /**< AH. */
    IPSECIF_IPPROTO_ICMPV6 = 58,   /**< ICMPv6. */
    IPSECIF_IPPROTO_DSTOPTS = 60,  /**< IPv6 destination options. */
    IPSECIF_IPPROTO_ANY = 255      /**< Any upper-layer protocol (selectors only). */
};

/**
 * @brief An IPv4 or IPv6 address in network byte order.
 *
 * IPv4 uses bytes[0..3]; the rest must be zero so that addresses compare
 * with memcmp().
 */
struct ipsecif_addr {
    uint8_t family;    /**< ::ipsecif_family. */
    uint8_t bytes[16]; /**< The address, network byte order. */
};

/**
 * @brief A view of a packet inside a caller-owned buffer.
 *
 * The packet occupies base[off .. off+len). Bytes before off are headroom,
 * bytes after off+len up to cap are tailroom. The library moves off and len
 * within cap and never reallocates: missing room is ::IPSECIF_ERR_NOROOM.
 */
struct ipsecif_buf {
    uint8_t *base; /**< Start of the whole buffer. */
    size_t cap;    /**< Size of the whole buffer. */
    size_t off;    /**< Offset of the first packet byte. */
    size_t len;    /**< Packet length. */
};

/** @brief First byte of the packet. */
static inline uint8_t *ipsecif_buf_data(const struct ipsecif_buf *b)
{
    return b->base + b->off;
}

/** @brief Bytes free before the packet. */
static inline size_t ipsecif_buf_headroom(const struct ipsecif_buf *b)
{
    return b->off;
}

/** @brief Bytes free after the packet. */
static inline size_t ipsecif_buf_tailroom(const struct ipsecif_buf *b)
{
    return b->cap - b->off - b->len;
}

/**
 * @brief Grow the packet at its head.
 * @return the new first byte, or NULL (nothing changed) when headroom < n.
 */
static inline uint8_t *ipsecif_buf_push(struct ipsecif_buf *b, size_t n)
{
    if (b->off < n) {
        return NULL;
    }
    b->off -= n;
    b->len += n;
    return b->base + b->off;
}

/**
 * @brief Drop n bytes from the head.
 * @return the new first byte, or NULL (nothing changed) when len < n.
 */
static inline uint8_t *ipsecif_buf_pull(struct ipsecif_buf *b, size_t n)
{
    if (b->len < n) {
        return NULL;
    }
    b->off += n;
    b->len -= n;
    return b->base + b->off;
}

/**
 * @brief Grow the packet at its tail.
 * @return the first added byte, or NULL (nothing changed) when tailroom < n.
 */
static inline uint8_t *ipsecif_buf_put(struct ipsecif_buf *b, size_t n)
{
    uint8_t *p;

    if (ipsecif_buf_tailroom(b) < n) {
        return NULL;
    }
    p = b->base + b->off + b->len;
    b->len += n;
    return p;
}

/**
 * @brief Drop n bytes from the tail.
 * @return true, or false (nothing changed) when len < n.
 */
static inline bool ipsecif_buf_trim(struct ipsecif_buf *b, size_t n)
{
    if (b->len < n) {
        return false;
    }
    b->len -= n;
    return true;
}

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_TYPES_H */
