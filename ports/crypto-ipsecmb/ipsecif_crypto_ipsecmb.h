/**
 * @file ipsecif_crypto_ipsecmb.h
 * @brief The crypto backend on intel-ipsec-mb (x86-64 Linux and FreeBSD hosts).
 */
#ifndef IPSECIF_CRYPTO_IPSECMB_H
#define IPSECIF_CRYPTO_IPSECMB_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/port.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_crypto_ipsecmb Crypto backend: intel-ipsec-mb
 * @brief AES-GCM, ChaCha20-Poly1305, AES-GMAC, AES-CBC, 3DES-CBC, NULL,
 *        HMAC-SHA1-96 and HMAC-SHA2 on Intel's multi-buffer crypto library
 *        (1.x), plus getrandom(2) as the random source.
 *
 * Same algorithms, key lengths and answers as the Mbed TLS backend
 * (@ref ipsecif_crypto_mbedtls): AES-GCM-16 (16/24/32-byte key), AES-GMAC
 * (16/24/32) and ChaCha20-Poly1305 (32) without an HMAC; AES-CBC
 * (16/24/32), 3DES-CBC (24) or NULL with or without an HMAC (NULL only with
 * one). Keys exclude the 4-byte AEAD salt. Any other pair gives
 * ::IPSECIF_ERR_UNSUPPORTED, a key of the wrong length ::IPSECIF_ERR_CRYPTO.
 * AEAD calls take a 12-byte nonce and a 16-byte tag; AES-GMAC takes len 0.
 * CBC lengths must be whole blocks (NULL: any). mac() returns at most the
 * full digest. Wrong use of a slot gives ::IPSECIF_ERR_CRYPTO. Tags are
 * compared in constant time; a failed open wipes the data.
 *
 * The key schedule lives in the slot: the AES round keys and GHASH keys of
 * GCM and GMAC (at a 64-byte boundary inside the slot), the ChaCha20 key,
 * both AES-CBC expanded keys, the three 3DES key schedules, and for HMAC
 * the hash states after the padded key plus the HMAC of the empty message.
 * One exception: the GHASH keys of the VAES AVX-512 code take 1008 bytes,
 * more than the default slot holds beside the rest, so on such CPUs init
 * (SA install) allocates them once per SA, and wipe frees them; a slot of
 * at least 1072 bytes (`IPSECIF_CRYPTO_SLOT_SIZE`) keeps them inside too.
 * Nothing is allocated per packet.
 *
 * Each thread that calls the backend gets its own multi-buffer manager
 * (`IMB_MGR`, some 200 kB), allocated and set up on the thread's first call
 * (normally SA install) and freed when the thread exits. Every call
 * finishes its own job before it returns, so one manager serves all SAs
 * and contexts of the thread. All managers of a process run the same code
 * path, chosen once: the fastest the CPU offers (`init_mb_mgr_auto`), or
 * the one named by the environment variable
 * ::IPSECIF_CRYPTO_IPSECMB_ARCH_ENV (`sse`, `avx`, `avx2`, `avx512`,
 * `auto`); a name that is unknown or that the CPU cannot run makes every
 * init fail with ::IPSECIF_ERR_CRYPTO. With the default, on a CPU that has
 * the SHA extensions but not GFNI (where intel-ipsec-mb 1.3 uses SHA-NI on
 * its SSE path only), HMAC-SHA1 and HMAC-SHA-256 run on a second manager
 * per thread, on the SSE path.
 *
 * Speed: without AVX-512, intel-ipsec-mb's DES is a constant-time C
 * implementation that runs some hundred times slower than Mbed TLS's or
 * OpenSSL's 3DES; 3DES works, for interoperability, at a few hundred kB/s.
 *
 * Only the first slot_size bytes of the slot are touched; init and wipe
 * zero them. Calls on one slot must be serialized, as every call into a
 * context is; different slots may be used from different threads.
 * @{
 */

/** Environment variable naming the code path of every manager (see above). */
#define IPSECIF_CRYPTO_IPSECMB_ARCH_ENV "IPSECIF_IPSECMB_ARCH"

/** The crypto operations; point ipsecif_port::crypto at this. */
extern const struct ipsecif_crypto_ops ipsecif_crypto_ipsecmb_ops;

/**
 * @brief A random callback for ipsecif_port::random: getrandom(2), the
 *        kernel's generator (intel-ipsec-mb has none).
 * @param[in]  user unused.
 * @param[out] out  where the bytes go; zeroed on failure.
 * @param[in]  len  how many.
 * @retval 0 success.
 * @retval IPSECIF_ERR_RANDOM the kernel failed, or out is NULL with len > 0.
 */
int ipsecif_crypto_ipsecmb_random(void *user, uint8_t *out, size_t len);

/**
 * @brief The code path the managers run: "sse", "avx", "avx2" or "avx512",
 *        followed by "+sse-sha" when HMAC-SHA1 and -SHA-256 run on SSE.
 *
 * Sets up the calling thread's manager if it has none yet.
 * @return the name, or NULL when no manager can be made (the CPU lacks the
 *         path asked for, or out of memory); init then fails as well.
 */
const char *ipsecif_crypto_ipsecmb_arch(void);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_CRYPTO_IPSECMB_H */
