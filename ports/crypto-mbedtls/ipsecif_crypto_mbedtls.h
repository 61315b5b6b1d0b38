/**
 * @file ipsecif_crypto_mbedtls.h
 * @brief The crypto backend on Mbed TLS (2.28 LTS and 3.6 LTS), shared by every OS port.
 */
#ifndef IPSECIF_CRYPTO_MBEDTLS_H
#define IPSECIF_CRYPTO_MBEDTLS_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/port.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_crypto_mbedtls Crypto backend: Mbed TLS
 * @brief AES-GCM, ChaCha20-Poly1305, AES-GMAC, AES-CBC, 3DES-CBC, NULL,
 *        HMAC-SHA1-96 and HMAC-SHA2, plus a CTR-DRBG random source.
 *
 * The key schedule of each SA lives in the SA's slot. The hash states for
 * HMAC are precomputed at key setup. Mbed TLS's GCM keeps its block cipher
 * context in memory it allocates when the key is set (once per SA install,
 * freed by wipe); nothing is allocated per packet.
 *
 * Accepted pairs: AES-GCM-16 (16/24/32-byte key), AES-GMAC (16/24/32) and
 * ChaCha20-Poly1305 (32) without an HMAC; AES-CBC (16/24/32), 3DES-CBC (24)
 * or NULL with or without an HMAC (NULL only with one); no encryption with
 * an HMAC. Keys exclude the 4-byte AEAD salt. Any other pair gives
 * ::IPSECIF_ERR_UNSUPPORTED, a key of the wrong length ::IPSECIF_ERR_CRYPTO.
 * Algorithms left out of the Mbed TLS build are unsupported.
 *
 * AEAD calls take a 12-byte nonce and a 16-byte tag; AES-GMAC takes len 0
 * (the whole packet is AAD). CBC lengths must be whole blocks (NULL: any).
 * mac() returns at most the full digest. Wrong use of a slot (a CBC call on
 * an AEAD slot, a failed or wiped slot) gives ::IPSECIF_ERR_CRYPTO.
 *
 * Only the first slot_size bytes of the slot are touched; init and wipe
 * zero them. A 3DES slot holds one key schedule and rebuilds it when an SA
 * first changes direction (two would not fit the default slot next to the
 * SHA-512 states); an SA is used in one direction, so this happens at most
 * once. Calls on one slot must be serialized, as every call into a context is.
 * @{
 */

/** The crypto operations; point ipsecif_port::crypto at this. */
extern const struct ipsecif_crypto_ops ipsecif_crypto_mbedtls_ops;

/**
 * @brief A random callback for ipsecif_port::random: a CTR-DRBG seeded from
 *        Mbed TLS's entropy sources on first use.
 *
 * The generator is process-wide; calls must be serialized by the host (as
 * every call into a context already is).
 * @param[in]  user unused.
 * @param[out] out  where the bytes go.
 * @param[in]  len  how many.
 * @retval 0 success.
 * @retval IPSECIF_ERR_RANDOM the generator could not be seeded or failed.
 */
int ipsecif_crypto_mbedtls_random(void *user, uint8_t *out, size_t len);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_CRYPTO_MBEDTLS_H */
