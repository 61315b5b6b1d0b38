/**
 * @file ipsecif_crypto_openssl.h
 * @brief The crypto backend on OpenSSL 3 libcrypto (Linux and other hosts
 *        with a full OpenSSL).
 */
#ifndef IPSECIF_CRYPTO_OPENSSL_H
#define IPSECIF_CRYPTO_OPENSSL_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/port.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_crypto_openssl Crypto backend: OpenSSL 3
 * @brief AES-GCM, ChaCha20-Poly1305, AES-GMAC, AES-CBC, 3DES-CBC, NULL,
 *        HMAC-SHA1-96 and HMAC-SHA2 on OpenSSL 3 libcrypto, plus RAND_bytes
 *        as the random source.
 *
 * Same algorithms, key lengths and answers as the Mbed TLS backend
 * (@ref ipsecif_crypto_mbedtls): AES-GCM-16 (16/24/32-byte key), AES-GMAC
 * (16/24/32) and ChaCha20-Poly1305 (32) without an HMAC; AES-CBC
 * (16/24/32), 3DES-CBC (24) or NULL with or without an HMAC (NULL only with
 * one). Keys exclude the 4-byte AEAD salt. Any other pair gives
 * ::IPSECIF_ERR_UNSUPPORTED, a key of the wrong length ::IPSECIF_ERR_CRYPTO.
 * AEAD calls take a 12-byte nonce and a 16-byte tag; AES-GMAC takes len 0.
 * CBC lengths must be whole blocks (NULL: any). mac() returns at most the
 * full digest. Wrong use of a slot gives ::IPSECIF_ERR_CRYPTO.
 *
 * Memory: init (SA install) allocates the OpenSSL cipher contexts with the
 * key schedule and keeps pointers to them in the slot; wipe frees them
 * (OpenSSL cleanses key material on free) and zeroes the slot. An SA that
 * is added must therefore be wiped (the core does so when it deletes the SA
 * or frees the context). Per packet nothing is allocated: the contexts are
 * only given the packet's IV. The HMAC states after absorbing the padded key
 * live in the slot itself and are copied per packet (OpenSSL 3.0's EVP
 * digest contexts allocate on every init and copy, so HMAC uses the SHA
 * functions below EVP).
 *
 * Only the first slot_size bytes of the slot are touched. Calls on one slot
 * must be serialized, as every call into a context is; different slots may
 * be used from different threads.
 * @{
 */

/** The crypto operations; point ipsecif_port::crypto at this. */
extern const struct ipsecif_crypto_ops ipsecif_crypto_openssl_ops;

/**
 * @brief A random callback for ipsecif_port::random: OpenSSL's RAND_bytes
 *        (the default DRBG, seeded by the operating system).
 * @param[in]  user unused.
 * @param[out] out  where the bytes go; zeroed on failure.
 * @param[in]  len  how many.
 * @retval 0 success.
 * @retval IPSECIF_ERR_RANDOM the generator failed, or out is NULL with len > 0.
 */
int ipsecif_crypto_openssl_random(void *user, uint8_t *out, size_t len);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_CRYPTO_OPENSSL_H */
