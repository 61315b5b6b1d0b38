/*
 * The crypto backend on Mbed TLS 2.28 and 3.6: per-SA key schedules in the
 * SA's slot, ESP's AEADs, CBC ciphers and truncated HMACs, and a CTR-DRBG.
 */
#include "ipsecif_crypto_mbedtls.h"

#include <stdbool.h>
#include <string.h>

#include "ipsecif/err.h"
#include "ipsecif/opts.h"
#include "ipsecif/sa.h"

/* First: it pulls in the library's configuration (2.28) or build info (3.x). */
#include "mbedtls/version.h"

#include "mbedtls/aes.h"
#include "mbedtls/chachapoly.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/des.h"
#include "mbedtls/entropy.h"
#include "mbedtls/gcm.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha1.h"
#include "mbedtls/sha256.h"
#include "mbedtls/sha512.h"

/*
 * Which algorithms this Mbed TLS build offers. A trimmed firmware build
 * still compiles; init answers IPSECIF_ERR_UNSUPPORTED for what is missing.
 */
#if defined(MBEDTLS_GCM_C)
#define HAVE_GCM 1
#else
#define HAVE_GCM 0
#endif
#if defined(MBEDTLS_CHACHAPOLY_C)
#define HAVE_CHACHAPOLY 1
#else
#define HAVE_CHACHAPOLY 0
#endif
#if defined(MBEDTLS_AES_C) && defined(MBEDTLS_CIPHER_MODE_CBC) &&                                  \
    !defined(MBEDTLS_BLOCK_CIPHER_NO_DECRYPT)
#define HAVE_AES_CBC 1
#else
#define HAVE_AES_CBC 0
#endif
#if defined(MBEDTLS_DES_C) && defined(MBEDTLS_CIPHER_MODE_CBC)
#define HAVE_DES3_CBC 1
#else
#define HAVE_DES3_CBC 0
#endif
#if defined(MBEDTLS_SHA1_C)
#define HAVE_SHA1 1
#else
#define HAVE_SHA1 0
#endif
#if defined(MBEDTLS_SHA256_C)
#define HAVE_SHA256 1
#else
#define HAVE_SHA256 0
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#if defined(MBEDTLS_SHA384_C)
#define HAVE_SHA384 1
#else
#define HAVE_SHA384 0
#endif
#else
#if defined(MBEDTLS_SHA512_C) && !defined(MBEDTLS_SHA512_NO_SHA384)
#define HAVE_SHA384 1
#else
#define HAVE_SHA384 0
#endif
#endif
#if defined(MBEDTLS_SHA512_C)
#define HAVE_SHA512 1
#else
#define HAVE_SHA512 0
#endif

/* 3.0 dropped the _ret suffix that 2.x used for the hash calls that can fail. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define SHA1_STARTS mbedtls_sha1_starts
#define SHA1_UPDATE mbedtls_sha1_update
#define SHA1_FINISH mbedtls_sha1_finish
#define SHA256_STARTS mbedtls_sha256_starts
#define SHA256_UPDATE mbedtls_sha256_update
#define SHA256_FINISH mbedtls_sha256_finish
#define SHA512_STARTS mbedtls_sha512_starts
#define SHA512_UPDATE mbedtls_sha512_update
#define SHA512_FINISH mbedtls_sha512_finish
#else
#define SHA1_STARTS mbedtls_sha1_starts_ret
#define SHA1_UPDATE mbedtls_sha1_update_ret
#define SHA1_FINISH mbedtls_sha1_finish_ret
#define SHA256_STARTS mbedtls_sha256_starts_ret
#define SHA256_UPDATE mbedtls_sha256_update_ret
#define SHA256_FINISH mbedtls_sha256_finish_ret
#define SHA512_STARTS mbedtls_sha512_starts_ret
#define SHA512_UPDATE mbedtls_sha512_update_ret
#define SHA512_FINISH mbedtls_sha512_finish_ret
#endif

#define NONCE_LEN 12 /* salt || IV for GCM, GMAC and ChaCha20-Poly1305 (RFC 4106, 4543, 7634) */
#define TAG_LEN 16   /* the only ICV length the algorithm ids name */
#define HASH_MAX 64  /* SHA-512 output */
#define HBLOCK_MAX 128
#define DES3_KEY_LEN 24

/* What wipe has to free (set as soon as a context is initialized), and
 * whether init completed. */
#define LIVE_CIPHER 0x01u
#define LIVE_HMAC 0x02u
#define LIVE_READY 0x04u

/* Which key schedule the 3DES context holds. */
#define DES_DIR_ENC 1u
#define DES_DIR_DEC 2u

union hash_ctx {
#if HAVE_SHA1
    mbedtls_sha1_context sha1;
#endif
#if HAVE_SHA256
    mbedtls_sha256_context sha256;
#endif
#if HAVE_SHA384 || HAVE_SHA512
    mbedtls_sha512_context sha512;
#endif
    uint8_t none; /* keeps the union legal in a build without hashes */
};

/*
 * The slot. AEADs and cipher+HMAC pairs never coexist, so they share memory.
 *
 * AES-CBC keeps both key schedules: the core does not say whether an SA
 * encrypts or decrypts. Two 3DES schedules plus the two SHA-512 states would
 * not fit the default 1024-byte slot, so 3DES keeps one schedule and the key,
 * and rebuilds the schedule when the direction changes. An SA works in one
 * direction only, so that happens at most once per SA.
 */
struct slot {
    uint8_t ealg;
    uint8_t aalg;
    uint8_t live;    /* LIVE_* */
    uint8_t des_dir; /* DES_DIR_*: 3DES only */
    union {
#if HAVE_GCM
        mbedtls_gcm_context gcm; /* AES-GCM-16 and AES-GMAC */
#endif
#if HAVE_CHACHAPOLY
        mbedtls_chachapoly_context chachapoly;
#endif
        struct {
            union {
#if HAVE_AES_CBC
                struct {
                    mbedtls_aes_context enc;
                    mbedtls_aes_context dec;
                } aes;
#endif
#if HAVE_DES3_CBC
                struct {
                    mbedtls_des3_context ctx;
                    uint8_t key[DES3_KEY_LEN];
                } des3;
#endif
                uint8_t none;
            } c;
            /* HMAC: the hash states after absorbing key ^ ipad and key ^ opad. */
            union hash_ctx inner;
            union hash_ctx outer;
        } cbc;
    } u;
};

_Static_assert(sizeof(struct slot) <= IPSECIF_CRYPTO_SLOT_SIZE,
               "Mbed TLS contexts exceed IPSECIF_CRYPTO_SLOT_SIZE; raise it in the options");
_Static_assert(_Alignof(struct slot) <= 16, "the SA slot is only 16-byte aligned");

/* ---- Hashes for HMAC ---- */

/* Digest and block size of an HMAC id; 0 if this build does not have it. */
static size_t hash_len(uint8_t aalg)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        return 20;
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return 32;
#endif
#if HAVE_SHA384
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return 48;
#endif
#if HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return 64;
#endif
    default:
        return 0;
    }
}

static size_t hash_block(uint8_t aalg)
{
    return aalg == IPSECIF_AALG_HMAC_SHA2_384_192 || aalg == IPSECIF_AALG_HMAC_SHA2_512_256 ? 128
                                                                                            : 64;
}

static void hash_init(union hash_ctx *h, uint8_t aalg)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        mbedtls_sha1_init(&h->sha1);
        break;
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        mbedtls_sha256_init(&h->sha256);
        break;
#endif
#if HAVE_SHA384 || HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_384_192:
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        mbedtls_sha512_init(&h->sha512);
        break;
#endif
    default:
        break;
    }
}

static void hash_free(union hash_ctx *h, uint8_t aalg)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        mbedtls_sha1_free(&h->sha1);
        break;
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        mbedtls_sha256_free(&h->sha256);
        break;
#endif
#if HAVE_SHA384 || HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_384_192:
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        mbedtls_sha512_free(&h->sha512);
        break;
#endif
    default:
        break;
    }
}

static void hash_clone(union hash_ctx *dst, const union hash_ctx *src, uint8_t aalg)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        mbedtls_sha1_clone(&dst->sha1, &src->sha1);
        break;
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        mbedtls_sha256_clone(&dst->sha256, &src->sha256);
        break;
#endif
#if HAVE_SHA384 || HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_384_192:
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        mbedtls_sha512_clone(&dst->sha512, &src->sha512);
        break;
#endif
    default:
        break;
    }
}

/* Each returns 0 or an Mbed TLS error. */
static int hash_starts(union hash_ctx *h, uint8_t aalg)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_STARTS(&h->sha1);
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_STARTS(&h->sha256, 0);
#endif
#if HAVE_SHA384
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return SHA512_STARTS(&h->sha512, 1);
#endif
#if HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_STARTS(&h->sha512, 0);
#endif
    default:
        return -1;
    }
}

static int hash_update(union hash_ctx *h, uint8_t aalg, const uint8_t *p, size_t n)
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_UPDATE(&h->sha1, p, n);
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_UPDATE(&h->sha256, p, n);
#endif
#if HAVE_SHA384 || HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_384_192:
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_UPDATE(&h->sha512, p, n);
#endif
    default:
        return -1;
    }
}

static int hash_finish(union hash_ctx *h, uint8_t aalg, uint8_t out[HASH_MAX])
{
    switch (aalg) {
#if HAVE_SHA1
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_FINISH(&h->sha1, out);
#endif
#if HAVE_SHA256
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_FINISH(&h->sha256, out);
#endif
#if HAVE_SHA384 || HAVE_SHA512
    case IPSECIF_AALG_HMAC_SHA2_384_192:
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_FINISH(&h->sha512, out);
#endif
    default:
        return -1;
    }
}

/* HMAC key setup (RFC 2104): absorb key ^ ipad and key ^ opad once, so each
 * packet costs only its own blocks plus two finishing compressions. */
static int hmac_setup(struct slot *s, const uint8_t *key, size_t key_len)
{
    uint8_t aalg = s->aalg;
    size_t block = hash_block(aalg);
    uint8_t k[HBLOCK_MAX];
    uint8_t pad[HBLOCK_MAX];
    union hash_ctx tmp;
    size_t i;
    int ret = IPSECIF_ERR_CRYPTO;

    hash_init(&s->u.cbc.inner, aalg);
    hash_init(&s->u.cbc.outer, aalg);
    hash_init(&tmp, aalg);
    s->live |= LIVE_HMAC;
    memset(k, 0, sizeof(k));

    if (key_len > block) {
        /* Longer keys are replaced by their hash. */
        if (hash_starts(&tmp, aalg) != 0 || hash_update(&tmp, aalg, key, key_len) != 0 ||
            hash_finish(&tmp, aalg, k) != 0) {
            goto out;
        }
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }

    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    }
    if (hash_starts(&s->u.cbc.inner, aalg) != 0 ||
        hash_update(&s->u.cbc.inner, aalg, pad, block) != 0) {
        goto out;
    }
    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    }
    if (hash_starts(&s->u.cbc.outer, aalg) != 0 ||
        hash_update(&s->u.cbc.outer, aalg, pad, block) != 0) {
        goto out;
    }
    ret = 0;
out:
    hash_free(&tmp, aalg);
    mbedtls_platform_zeroize(k, sizeof(k));
    mbedtls_platform_zeroize(pad, sizeof(pad));
    return ret;
}

/* ---- Cipher setup ---- */

static bool aes_key_len_ok(size_t n)
{
    return n == 16 || n == 24 || n == 32;
}

static int cipher_setup(struct slot *s, const uint8_t *key, size_t key_len)
{
    switch (s->ealg) {
    case IPSECIF_EALG_NONE:
    case IPSECIF_EALG_NULL:
        return key_len == 0 ? 0 : IPSECIF_ERR_CRYPTO;
#if HAVE_GCM
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
        mbedtls_gcm_init(&s->u.gcm);
        s->live |= LIVE_CIPHER;
        if (!aes_key_len_ok(key_len) || mbedtls_gcm_setkey(&s->u.gcm, MBEDTLS_CIPHER_ID_AES, key,
                                                           (unsigned int)(key_len * 8)) != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        return 0;
#endif
#if HAVE_CHACHAPOLY
    case IPSECIF_EALG_CHACHA20_POLY1305:
        mbedtls_chachapoly_init(&s->u.chachapoly);
        s->live |= LIVE_CIPHER;
        if (key_len != 32 || mbedtls_chachapoly_setkey(&s->u.chachapoly, key) != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        return 0;
#endif
#if HAVE_AES_CBC
    case IPSECIF_EALG_AES_CBC:
        mbedtls_aes_init(&s->u.cbc.c.aes.enc);
        mbedtls_aes_init(&s->u.cbc.c.aes.dec);
        s->live |= LIVE_CIPHER;
        if (!aes_key_len_ok(key_len) ||
            mbedtls_aes_setkey_enc(&s->u.cbc.c.aes.enc, key, (unsigned int)(key_len * 8)) != 0 ||
            mbedtls_aes_setkey_dec(&s->u.cbc.c.aes.dec, key, (unsigned int)(key_len * 8)) != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        return 0;
#endif
#if HAVE_DES3_CBC
    case IPSECIF_EALG_3DES_CBC:
        mbedtls_des3_init(&s->u.cbc.c.des3.ctx);
        s->live |= LIVE_CIPHER;
        if (key_len != DES3_KEY_LEN || mbedtls_des3_set3key_enc(&s->u.cbc.c.des3.ctx, key) != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        memcpy(s->u.cbc.c.des3.key, key, DES3_KEY_LEN);
        s->des_dir = DES_DIR_ENC;
        return 0;
#endif
    default:
        return IPSECIF_ERR_UNSUPPORTED;
    }
}

static bool ealg_known(uint8_t ealg)
{
    switch (ealg) {
    case IPSECIF_EALG_NONE:
    case IPSECIF_EALG_NULL:
        return true;
#if HAVE_GCM
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
        return true;
#endif
#if HAVE_CHACHAPOLY
    case IPSECIF_EALG_CHACHA20_POLY1305:
        return true;
#endif
#if HAVE_AES_CBC
    case IPSECIF_EALG_AES_CBC:
        return true;
#endif
#if HAVE_DES3_CBC
    case IPSECIF_EALG_3DES_CBC:
        return true;
#endif
    default:
        return false;
    }
}

static bool is_aead(uint8_t ealg)
{
    return ealg == IPSECIF_EALG_AES_GCM16 || ealg == IPSECIF_EALG_AES_GMAC ||
           ealg == IPSECIF_EALG_CHACHA20_POLY1305;
}

/* ---- The ops ---- */

static void crypto_wipe(void *slot)
{
    struct slot *s = slot;

    if (s->live & LIVE_CIPHER) {
        switch (s->ealg) {
#if HAVE_GCM
        case IPSECIF_EALG_AES_GCM16:
        case IPSECIF_EALG_AES_GMAC:
            mbedtls_gcm_free(&s->u.gcm);
            break;
#endif
#if HAVE_CHACHAPOLY
        case IPSECIF_EALG_CHACHA20_POLY1305:
            mbedtls_chachapoly_free(&s->u.chachapoly);
            break;
#endif
#if HAVE_AES_CBC
        case IPSECIF_EALG_AES_CBC:
            mbedtls_aes_free(&s->u.cbc.c.aes.enc);
            mbedtls_aes_free(&s->u.cbc.c.aes.dec);
            break;
#endif
#if HAVE_DES3_CBC
        case IPSECIF_EALG_3DES_CBC:
            mbedtls_des3_free(&s->u.cbc.c.des3.ctx);
            break;
#endif
        default:
            break;
        }
    }
    if (s->live & LIVE_HMAC) {
        hash_free(&s->u.cbc.inner, s->aalg);
        hash_free(&s->u.cbc.outer, s->aalg);
    }
    /* The whole slot, not just the contexts: the 3DES key and padding too. */
    mbedtls_platform_zeroize(slot, sizeof(struct slot));
}

static int crypto_init(void *slot, uint8_t ealg, const uint8_t *ekey, size_t ekey_len, uint8_t aalg,
                       const uint8_t *akey, size_t akey_len)
{
    struct slot *s = slot;
    int ret;

    /* The slot may hold anything (fresh SA memory); treat it as raw. */
    mbedtls_platform_zeroize(slot, sizeof(struct slot));

    ret = ipsecif_crypto_check_pair(ealg_known(ealg), is_aead(ealg), ealg,
                                    aalg == IPSECIF_AALG_NONE || hash_len(aalg) != 0, aalg, ekey,
                                    ekey_len, akey, akey_len);
    if (ret != 0) {
        return ret;
    }

    s->ealg = ealg;
    s->aalg = aalg;
    ret = cipher_setup(s, ekey, ekey_len);
    if (ret != 0) {
        goto fail;
    }
    if (aalg == IPSECIF_AALG_NONE) {
        ret = akey_len == 0 ? 0 : IPSECIF_ERR_CRYPTO;
    } else {
        ret = hmac_setup(s, akey, akey_len);
    }
    if (ret != 0) {
        goto fail;
    }
    s->live |= LIVE_READY;
    return 0;
fail:
    crypto_wipe(slot);
    return ret;
}

static int aead_check(const struct slot *s, const uint8_t *nonce, size_t nonce_len,
                      const uint8_t *aad, size_t aad_len, const uint8_t *data, size_t len,
                      const uint8_t *tag, size_t tag_len)
{
    if (!(s->live & LIVE_READY) || !is_aead(s->ealg)) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (nonce == NULL || nonce_len != NONCE_LEN || tag == NULL || tag_len != TAG_LEN ||
        (aad == NULL && aad_len != 0) || (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    /* GMAC never encrypts (RFC 4543): the whole packet is in the AAD. */
    if (s->ealg == IPSECIF_EALG_AES_GMAC && len != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

static int crypto_aead_seal(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, size_t tag_len)
{
    struct slot *s = slot;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);

    if (ret != 0) {
        return ret;
    }
    switch (s->ealg) {
#if HAVE_GCM
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
        ret = mbedtls_gcm_crypt_and_tag(&s->u.gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, nonce_len, aad,
                                        aad_len, data, data, tag_len, tag);
        break;
#endif
#if HAVE_CHACHAPOLY
    case IPSECIF_EALG_CHACHA20_POLY1305:
        ret = mbedtls_chachapoly_encrypt_and_tag(&s->u.chachapoly, len, nonce, aad, aad_len, data,
                                                 data, tag);
        break;
#endif
    default:
        ret = -1;
        break;
    }
    if (ret != 0) {
        /* Half-encrypted data must not go out as if it were ciphertext. */
        if (len > 0) {
            mbedtls_platform_zeroize(data, len);
        }
        mbedtls_platform_zeroize(tag, tag_len);
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

/*
 * Decryption runs in place. Mbed TLS 2.28's gcm.h says the buffers must not
 * be the same for decryption, but both 2.28 and 3.6 read each input block
 * before writing its output, and Mbed TLS's own TLS record layer decrypts
 * GCM records in place; the unit tests check in-place known answers.
 */
static int crypto_aead_open(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, const uint8_t *tag,
                            size_t tag_len)
{
    struct slot *s = slot;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);
    int auth_failed;

    if (ret != 0) {
        return ret;
    }
    switch (s->ealg) {
#if HAVE_GCM
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
        /* Compares the tag in constant time. */
        ret = mbedtls_gcm_auth_decrypt(&s->u.gcm, len, nonce, nonce_len, aad, aad_len, tag, tag_len,
                                       data, data);
        auth_failed = ret == MBEDTLS_ERR_GCM_AUTH_FAILED;
        break;
#endif
#if HAVE_CHACHAPOLY
    case IPSECIF_EALG_CHACHA20_POLY1305:
        ret = mbedtls_chachapoly_auth_decrypt(&s->u.chachapoly, len, nonce, aad, aad_len, tag, data,
                                              data);
        auth_failed = ret == MBEDTLS_ERR_CHACHAPOLY_AUTH_FAILED;
        break;
#endif
    default:
        ret = -1;
        auth_failed = 0;
        break;
    }
    if (ret != 0) {
        /* Mbed TLS wipes on a tag mismatch; other failures may leave a
         * partial plaintext behind. Never release either. */
        if (len > 0) {
            mbedtls_platform_zeroize(data, len);
        }
        return auth_failed ? IPSECIF_ERR_AUTH : IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

static int crypto_cbc(void *slot, int enc, const uint8_t *iv, uint8_t *data, size_t len)
{
    struct slot *s = slot;
    uint8_t ivbuf[16];
    int ret = IPSECIF_ERR_CRYPTO;

    (void)enc; /* both unused in an AEAD-only build */
    (void)iv;
    if (!(s->live & LIVE_READY) || (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    switch (s->ealg) {
    case IPSECIF_EALG_NULL:
        return 0;
#if HAVE_AES_CBC
    case IPSECIF_EALG_AES_CBC:
        if (iv == NULL || len % 16 != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        /* Mbed TLS advances the IV it is given; the caller's stays intact. */
        memcpy(ivbuf, iv, 16);
        if (enc) {
            ret = mbedtls_aes_crypt_cbc(&s->u.cbc.c.aes.enc, MBEDTLS_AES_ENCRYPT, len, ivbuf, data,
                                        data);
        } else {
            ret = mbedtls_aes_crypt_cbc(&s->u.cbc.c.aes.dec, MBEDTLS_AES_DECRYPT, len, ivbuf, data,
                                        data);
        }
        break;
#endif
#if HAVE_DES3_CBC
    case IPSECIF_EALG_3DES_CBC: {
        uint8_t want = enc ? DES_DIR_ENC : DES_DIR_DEC;

        if (iv == NULL || len % 8 != 0) {
            return IPSECIF_ERR_CRYPTO;
        }
        if (s->des_dir != want) {
            ret = enc ? mbedtls_des3_set3key_enc(&s->u.cbc.c.des3.ctx, s->u.cbc.c.des3.key)
                      : mbedtls_des3_set3key_dec(&s->u.cbc.c.des3.ctx, s->u.cbc.c.des3.key);
            if (ret != 0) {
                s->des_dir = 0;
                return IPSECIF_ERR_CRYPTO;
            }
            s->des_dir = want;
        }
        memcpy(ivbuf, iv, 8);
        ret = mbedtls_des3_crypt_cbc(&s->u.cbc.c.des3.ctx,
                                     enc ? MBEDTLS_DES_ENCRYPT : MBEDTLS_DES_DECRYPT, len, ivbuf,
                                     data, data);
        break;
    }
#endif
    default:
        return IPSECIF_ERR_CRYPTO;
    }
    mbedtls_platform_zeroize(ivbuf, sizeof(ivbuf));
    if (ret != 0) {
        if (len > 0) {
            mbedtls_platform_zeroize(data, len);
        }
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

static int crypto_mac(void *slot, const uint8_t *data, size_t len, uint8_t *out, size_t out_len)
{
    struct slot *s = slot;
    uint8_t aalg = s->aalg;
    size_t dlen = hash_len(aalg);
    uint8_t digest[HASH_MAX];
    union hash_ctx h;
    int ret = IPSECIF_ERR_CRYPTO;

    if (!(s->live & LIVE_READY) || dlen == 0 || out == NULL || out_len == 0 || out_len > dlen ||
        (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    hash_init(&h, aalg);
    hash_clone(&h, &s->u.cbc.inner, aalg);
    if (hash_update(&h, aalg, data, len) != 0 || hash_finish(&h, aalg, digest) != 0) {
        goto out;
    }
    hash_clone(&h, &s->u.cbc.outer, aalg);
    if (hash_update(&h, aalg, digest, dlen) != 0 || hash_finish(&h, aalg, digest) != 0) {
        goto out;
    }
    memcpy(out, digest, out_len);
    ret = 0;
out:
    hash_free(&h, aalg);
    mbedtls_platform_zeroize(digest, sizeof(digest));
    return ret;
}

const struct ipsecif_crypto_ops ipsecif_crypto_mbedtls_ops = {
    .slot_size = sizeof(struct slot),
    .init = crypto_init,
    .wipe = crypto_wipe,
    .aead_seal = crypto_aead_seal,
    .aead_open = crypto_aead_open,
    .cbc = crypto_cbc,
    .mac = crypto_mac,
};

/* ---- Random ---- */

static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;
static bool rng_ready;

static int rng_seed(void)
{
    static const char pers[] = "libipsecif";

    mbedtls_entropy_init(&rng_entropy);
    mbedtls_ctr_drbg_init(&rng_drbg);
    if (mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func, &rng_entropy,
                              (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
        /* Leave nothing half set up; the next call tries again. */
        mbedtls_ctr_drbg_free(&rng_drbg);
        mbedtls_entropy_free(&rng_entropy);
        return IPSECIF_ERR_RANDOM;
    }
    rng_ready = true;
    return 0;
}

int ipsecif_crypto_mbedtls_random(void *user, uint8_t *out, size_t len)
{
    size_t done = 0;
    size_t n;

    (void)user;
    if (out == NULL && len != 0) {
        return IPSECIF_ERR_RANDOM;
    }
    if (!rng_ready && rng_seed() != 0) {
        goto fail;
    }
    while (done < len) {
        /* One request is capped; reseeding on schedule is the DRBG's job. */
        n = len - done < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len - done : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        if (mbedtls_ctr_drbg_random(&rng_drbg, out + done, n) != 0) {
            goto fail;
        }
        done += n;
    }
    return 0;
fail:
    /* A caller that ignores the error must not send a partly filled buffer. */
    if (len > 0) {
        mbedtls_platform_zeroize(out, len);
    }
    return IPSECIF_ERR_RANDOM;
}
