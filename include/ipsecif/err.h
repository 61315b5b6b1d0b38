/**
 * @file err.h
 * @brief Error codes of libipsecif.
 */
#ifndef IPSECIF_ERR_H
#define IPSECIF_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_err Errors
 * @brief One enum of stable negative codes; 0 is success.
 * @{
 */

/** Return codes. Values are stable across releases. */
typedef enum ipsecif_err {
    IPSECIF_OK = 0, /**< Success. */

    /* Argument and state: -1 .. -19 */
    IPSECIF_ERR_ARG = -1,         /**< An argument is invalid. */
    IPSECIF_ERR_STATE = -2,       /**< The object is not in a state that allows this. */
    IPSECIF_ERR_EXIST = -3,       /**< The object already exists (or clashes with one). */
    IPSECIF_ERR_NOENT = -4,       /**< No such object. */
    IPSECIF_ERR_FULL = -5,        /**< A configured capacity is exhausted. */
    IPSECIF_ERR_BUSY = -6,        /**< The object is owned by an interface, or in use. */
    IPSECIF_ERR_UNSUPPORTED = -7, /**< Algorithm, mode or feature not supported. */
    IPSECIF_ERR_RANGE = -8,       /**< A value is outside its allowed range. */
    IPSECIF_ERR_KEYLEN = -9,      /**< A key has the wrong length for its algorithm. */

    /* Buffer room: -20 .. -29 */
    IPSECIF_ERR_NOROOM = -20, /**< Not enough headroom or tailroom in the buffer. */
    IPSECIF_ERR_TOOBIG = -21, /**< The packet exceeds the MTU; an ICMP error was built. */

    /* Packet verdicts: -40 .. -59 */
    IPSECIF_ERR_MALFORMED = -40, /**< The packet is truncated or malformed. */
    IPSECIF_ERR_AUTH = -41,      /**< The integrity check value did not verify. */
    IPSECIF_ERR_REPLAY = -42,    /**< The sequence number was replayed or is too old. */
    IPSECIF_ERR_NOSA = -43,      /**< No usable SA; an ACQUIRE may have been sent. */
    IPSECIF_ERR_POLICY = -44,    /**< The packet violates the security policy. */
    IPSECIF_ERR_BADPAD = -45,    /**< The ESP padding is wrong. */
    IPSECIF_ERR_BADSPI = -46,    /**< No SA matches the SPI. */
    IPSECIF_ERR_DISCARD = -47,   /**< A policy says discard. */
    IPSECIF_ERR_DOWN = -48,      /**< The interface is down or has no tunnel. */
    IPSECIF_ERR_SEQWRAP = -49,   /**< The SA's sequence number would wrap. */
    IPSECIF_ERR_ECN = -50,       /**< CE arrived in an outer header over a not-ECT inner. */
    IPSECIF_ERR_PROTO = -51,     /**< The packet is not for us (not ESP, not NAT-T). */
    IPSECIF_ERR_NESTED = -52,    /**< An outer packet of ours came back into an interface
                                      more often than the nesting limit allows. */
    IPSECIF_ERR_QUEUED = -53,    /**< A fragment was kept; its datagram is not complete yet. */

    /* Port failures: -60 .. -69 */
    IPSECIF_ERR_PORT = -60,   /**< A port callback failed. */
    IPSECIF_ERR_CRYPTO = -61, /**< The crypto backend failed. */
    IPSECIF_ERR_RANDOM = -62, /**< The random source failed. */

    /* Internal: -80 .. */
    IPSECIF_ERR_INTERNAL = -80 /**< An internal invariant failed. */
} ipsecif_err_t;

/**
 * @brief Text for an error code.
 * @param[in] err a value of ::ipsecif_err_t.
 * @return a static NUL-terminated string; empty when compiled out with
 *         IPSECIF_STRERROR 0.
 */
const char *ipsecif_strerror(int err);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_ERR_H */
