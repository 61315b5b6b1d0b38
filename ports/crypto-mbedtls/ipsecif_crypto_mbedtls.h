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
