/*
 * The crypto backend on OpenSSL 3 libcrypto: per-SA cipher contexts made at
 * SA install and only re-initialized with the IV per packet, HMAC states
 * precomputed in the slot, and RAND_bytes.
 */

/*
 * HMAC runs on SHA1_* / SHA256_* / SHA512_* (deprecated in 3.0, still built
 * by every distribution): in OpenSSL 3.0 each EVP_DigestInit and
 * EVP_MD_CTX_copy allocates a new provider context, EVP_MAC_init two, so
 * no EVP path is free of allocation per packet. These are the same
 * implementations (with the same assembly) the default provider calls.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "ipsecif_crypto_openssl.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "ipsecif/err.h"
#include "ipsecif/opts.h"
#include "ipsecif/sa.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#if OPENSSL_VERSION_MAJOR < 3
#error "the OpenSSL backend needs OpenSSL 3"
#endif
#if defined(OPENSSL_NO_DEPRECATED_3_0)
#error "the OpenSSL backend needs the SHA functions below EVP (OpenSSL built without them)"
#endif

#define NONCE_LEN 12 /* salt || IV for GCM, GMAC and ChaCha20-Poly1305 (RFC 4106, 4543, 7634) */
#define TAG_LEN 16   /* the only ICV length the algorithm ids name */
#define HASH_MAX 64  /* SHA-512 output */
#define HBLOCK_MAX 128

/* What init completed; wipe frees whatever pointer is set regardless. */
#define LIVE_READY 0x01u

union hash_state {
    SHA_CTX sha1;
    SHA256_CTX sha256;
    SHA512_CTX sha512; /* SHA-384 too */
};

/*
 * The slot. AEADs use one cipher context for both directions (GCM and
 * ChaCha20 key schedules do not depend on the direction; the direction is
 * set with each IV). AES-CBC and 3DES keep one context per direction: an
 * AES decryption key schedule differs from the encryption one, and the core
 * does not say which way an SA goes.
 */
struct slot {
    uint8_t ealg;
    uint8_t aalg;
    uint8_t live;        /* LIVE_* */
    EVP_CIPHER_CTX *enc; /* AEAD: both directions; CBC: encrypt */
    EVP_CIPHER_CTX *dec; /* CBC: decrypt */
    /* HMAC: the hash states after absorbing key ^ ipad and key ^ opad. */
    union hash_state inner;
    union hash_state outer;
};

_Static_assert(sizeof(struct slot) <= IPSECIF_CRYPTO_SLOT_SIZE,
               "the OpenSSL slot exceeds IPSECIF_CRYPTO_SLOT_SIZE; raise it in the options");
_Static_assert(_Alignof(struct slot) <= 16, "the SA slot is only 16-byte aligned");

/* ---- Hashes for HMAC ---- */

static size_t hash_len(uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA_DIGEST_LENGTH;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_DIGEST_LENGTH;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return SHA384_DIGEST_LENGTH;
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_DIGEST_LENGTH;
    default:
        return 0;
    }
}

static size_t hash_block(uint8_t aalg)
{
    return aalg == IPSECIF_AALG_HMAC_SHA2_384_192 || aalg == IPSECIF_AALG_HMAC_SHA2_512_256 ? 128
                                                                                            : 64;
}

/* Each returns 1 on success, as the OpenSSL calls do. */
static int hash_starts(union hash_state *h, uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_Init(&h->sha1);
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_Init(&h->sha256);
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return SHA384_Init(&h->sha512);
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_Init(&h->sha512);
    default:
        return 0;
    }
}

static int hash_update(union hash_state *h, uint8_t aalg, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return 1;
    }
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_Update(&h->sha1, p, n);
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_Update(&h->sha256, p, n);
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return SHA384_Update(&h->sha512, p, n);
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_Update(&h->sha512, p, n);
    default:
        return 0;
    }
}

static int hash_finish(union hash_state *h, uint8_t aalg, uint8_t out[HASH_MAX])
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return SHA1_Final(out, &h->sha1);
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return SHA256_Final(out, &h->sha256);
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return SHA384_Final(out, &h->sha512);
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return SHA512_Final(out, &h->sha512);
    default:
        return 0;
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
    union hash_state tmp;
    size_t i;
    int ret = IPSECIF_ERR_CRYPTO;

    memset(k, 0, sizeof(k));
    memset(&tmp, 0, sizeof(tmp));
    if (key_len > block) {
        /* Longer keys are replaced by their hash. */
        if (hash_starts(&tmp, aalg) != 1 || hash_update(&tmp, aalg, key, key_len) != 1 ||
            hash_finish(&tmp, aalg, k) != 1) {
            goto out;
        }
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }

    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    }
    if (hash_starts(&s->inner, aalg) != 1 || hash_update(&s->inner, aalg, pad, block) != 1) {
        goto out;
    }
    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    }
    if (hash_starts(&s->outer, aalg) != 1 || hash_update(&s->outer, aalg, pad, block) != 1) {
        goto out;
    }
    ret = 0;
out:
    OPENSSL_cleanse(&tmp, sizeof(tmp));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    return ret;
}

/* ---- Cipher setup ---- */

static const EVP_CIPHER *aes_cipher(uint8_t ealg, size_t key_len)
{
    switch (key_len) {
    case 16:
        return ealg == IPSECIF_EALG_AES_CBC ? EVP_aes_128_cbc() : EVP_aes_128_gcm();
    case 24:
        return ealg == IPSECIF_EALG_AES_CBC ? EVP_aes_192_cbc() : EVP_aes_192_gcm();
    case 32:
        return ealg == IPSECIF_EALG_AES_CBC ? EVP_aes_256_cbc() : EVP_aes_256_gcm();
    default:
        return NULL;
    }
}

/* The cipher for an ealg and key length; NULL for a wrong key length. */
static const EVP_CIPHER *cipher_for(uint8_t ealg, size_t key_len)
{
    switch (ealg) {
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
    case IPSECIF_EALG_AES_CBC:
        return aes_cipher(ealg, key_len);
    case IPSECIF_EALG_CHACHA20_POLY1305:
        return key_len == 32 ? EVP_chacha20_poly1305() : NULL;
    case IPSECIF_EALG_3DES_CBC:
        return key_len == 24 ? EVP_des_ede3_cbc() : NULL;
    default:
        return NULL;
    }
}

static bool is_aead(uint8_t ealg)
{
    return ealg == IPSECIF_EALG_AES_GCM16 || ealg == IPSECIF_EALG_AES_GMAC ||
           ealg == IPSECIF_EALG_CHACHA20_POLY1305;
}

static bool ealg_known(uint8_t ealg)
{
    switch (ealg) {
    case IPSECIF_EALG_NONE:
    case IPSECIF_EALG_NULL:
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
    case IPSECIF_EALG_CHACHA20_POLY1305:
    case IPSECIF_EALG_AES_CBC:
    case IPSECIF_EALG_3DES_CBC:
        return true;
    default:
        return false;
    }
}

/* One context with the key schedule in place; the IV comes per packet. */
static EVP_CIPHER_CTX *cipher_ctx(const EVP_CIPHER *c, const uint8_t *key, int enc, bool cbc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (ctx == NULL) {
        return NULL;
    }
    if (EVP_CipherInit_ex2(ctx, c, key, NULL, enc, NULL) != 1 ||
        (cbc && EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) ||
        (!cbc && EVP_CIPHER_CTX_get_iv_length(ctx) != NONCE_LEN)) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int cipher_setup(struct slot *s, const uint8_t *key, size_t key_len)
{
    const EVP_CIPHER *c;

    if (s->ealg == IPSECIF_EALG_NONE || s->ealg == IPSECIF_EALG_NULL) {
        return key_len == 0 ? 0 : IPSECIF_ERR_CRYPTO;
    }
    c = cipher_for(s->ealg, key_len);
    if (c == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (is_aead(s->ealg)) {
        s->enc = cipher_ctx(c, key, 1, false);
        return s->enc != NULL ? 0 : IPSECIF_ERR_CRYPTO;
    }
    s->enc = cipher_ctx(c, key, 1, true);
    s->dec = cipher_ctx(c, key, 0, true);
    return s->enc != NULL && s->dec != NULL ? 0 : IPSECIF_ERR_CRYPTO;
}

/* ---- The ops ---- */

static void crypto_wipe(void *slot)
{
    struct slot *s = slot;

    /* Freeing a context cleanses its key schedule. */
    EVP_CIPHER_CTX_free(s->enc);
    EVP_CIPHER_CTX_free(s->dec);
    OPENSSL_cleanse(slot, sizeof(struct slot));
}

static int crypto_init(void *slot, uint8_t ealg, const uint8_t *ekey, size_t ekey_len, uint8_t aalg,
                       const uint8_t *akey, size_t akey_len)
{
    struct slot *s = slot;
    int ret;

    /* The slot may hold anything (fresh SA memory); treat it as raw. */
    OPENSSL_cleanse(slot, sizeof(struct slot));

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
    ERR_clear_error();
    crypto_wipe(slot);
    return ret;
}

static int aead_check(const struct slot *s, const uint8_t *nonce, size_t nonce_len,
                      const uint8_t *aad, size_t aad_len, const uint8_t *data, size_t len,
                      const uint8_t *tag, size_t tag_len)
{
    if (!(s->live & LIVE_READY) || !is_aead(s->ealg) || s->enc == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (nonce == NULL || nonce_len != NONCE_LEN || tag == NULL || tag_len != TAG_LEN ||
        (aad == NULL && aad_len != 0) || (data == NULL && len != 0) || aad_len > INT_MAX ||
        len > INT_MAX) {
        return IPSECIF_ERR_CRYPTO;
    }
    /* GMAC never encrypts (RFC 4543): the whole packet is in the AAD. */
    if (s->ealg == IPSECIF_EALG_AES_GMAC && len != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

/* AAD then data, in place; 1 on success. */
static int aead_update(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t aad_len, uint8_t *data,
                       size_t len)
{
    int n;

    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1) {
        return 0;
    }
    if (len > 0 && (EVP_CipherUpdate(ctx, data, &n, data, (int)len) != 1 || (size_t)n != len)) {
        return 0;
    }
    return 1;
}

static int crypto_aead_seal(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, size_t tag_len)
{
    struct slot *s = slot;
    uint8_t fin[16];
    int n = 0;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);

    if (ret != 0) {
        return ret;
    }
    /* Reuses the key schedule: no cipher, no key, only the nonce. */
    if (EVP_CipherInit_ex2(s->enc, NULL, NULL, nonce, 1, NULL) != 1 ||
        aead_update(s->enc, aad, aad_len, data, len) != 1 ||
        EVP_CipherFinal_ex(s->enc, fin, &n) != 1 || n != 0 ||
        EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, tag) != 1) {
        /* Half-encrypted data must not go out as if it were ciphertext. */
        ERR_clear_error();
        if (len > 0) {
            OPENSSL_cleanse(data, len);
        }
        OPENSSL_cleanse(tag, tag_len);
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

/*
 * Decrypts in place, then the final call compares the tag (in constant
 * time, with CRYPTO_memcmp inside OpenSSL's GCM and ChaCha20-Poly1305);
 * on a mismatch the plaintext is wiped before anyone sees it.
 */
static int crypto_aead_open(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, const uint8_t *tag,
                            size_t tag_len)
{
    struct slot *s = slot;
    uint8_t fin[16];
    int n = 0;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);

    if (ret != 0) {
        return ret;
    }
    if (EVP_CipherInit_ex2(s->enc, NULL, NULL, nonce, 0, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, (void *)(uintptr_t)tag) !=
            1 ||
        aead_update(s->enc, aad, aad_len, data, len) != 1) {
        ret = IPSECIF_ERR_CRYPTO;
    } else if (EVP_CipherFinal_ex(s->enc, fin, &n) != 1 || n != 0) {
        ret = IPSECIF_ERR_AUTH;
    }
    if (ret != 0) {
        ERR_clear_error();
        if (len > 0) {
            OPENSSL_cleanse(data, len);
        }
    }
    return ret;
}

/* Bursts: the SA's one context, only the nonce set per op (no cipher, no
 * key, no allocation), each op with its own result. */
static void crypto_aead_seal_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ipsecif_aead_op *op = ops[i];

        op->rc = crypto_aead_seal(slot, op->nonce, op->nonce_len, op->aad, op->aad_len, op->data,
                                  op->len, op->tag, op->tag_len);
    }
}

static void crypto_aead_open_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ipsecif_aead_op *op = ops[i];

        op->rc = crypto_aead_open(slot, op->nonce, op->nonce_len, op->aad, op->aad_len, op->data,
                                  op->len, op->tag, op->tag_len);
    }
}

static int crypto_cbc(void *slot, int enc, const uint8_t *iv, uint8_t *data, size_t len)
{
    struct slot *s = slot;
    EVP_CIPHER_CTX *ctx;
    size_t block;
    uint8_t fin[16];
    int n = 0;

    if (!(s->live & LIVE_READY) || (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    switch (s->ealg) {
    case IPSECIF_EALG_NULL:
        return 0;
    case IPSECIF_EALG_AES_CBC:
        block = 16;
        break;
    case IPSECIF_EALG_3DES_CBC:
        block = 8;
        break;
    default:
        return IPSECIF_ERR_CRYPTO;
    }
    ctx = enc ? s->enc : s->dec;
    if (ctx == NULL || iv == NULL || len % block != 0 || len > INT_MAX) {
        return IPSECIF_ERR_CRYPTO;
    }
    /* The context copies the IV; the caller's stays intact. */
    if (EVP_CipherInit_ex2(ctx, NULL, NULL, iv, enc ? 1 : 0, NULL) != 1 ||
        (len > 0 && (EVP_CipherUpdate(ctx, data, &n, data, (int)len) != 1 || (size_t)n != len)) ||
        EVP_CipherFinal_ex(ctx, fin, &n) != 1 || n != 0) {
        ERR_clear_error();
        if (len > 0) {
            OPENSSL_cleanse(data, len);
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
    union hash_state h;
    int ret = IPSECIF_ERR_CRYPTO;

    if (!(s->live & LIVE_READY) || dlen == 0 || out == NULL || out_len == 0 || out_len > dlen ||
        (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    memcpy(&h, &s->inner, sizeof(h));
    if (hash_update(&h, aalg, data, len) != 1 || hash_finish(&h, aalg, digest) != 1) {
        goto out;
    }
    memcpy(&h, &s->outer, sizeof(h));
    if (hash_update(&h, aalg, digest, dlen) != 1 || hash_finish(&h, aalg, digest) != 1) {
        goto out;
    }
    memcpy(out, digest, out_len);
    ret = 0;
out:
    OPENSSL_cleanse(&h, sizeof(h));
    OPENSSL_cleanse(digest, sizeof(digest));
    return ret;
}

const struct ipsecif_crypto_ops ipsecif_crypto_openssl_ops = {
    .slot_size = sizeof(struct slot),
    .init = crypto_init,
    .wipe = crypto_wipe,
    .aead_seal = crypto_aead_seal,
    .aead_open = crypto_aead_open,
    .cbc = crypto_cbc,
    .mac = crypto_mac,
    .aead_seal_burst = crypto_aead_seal_burst,
    .aead_open_burst = crypto_aead_open_burst,
};

/* ---- Random ---- */

int ipsecif_crypto_openssl_random(void *user, uint8_t *out, size_t len)
{
    size_t done = 0;
    size_t n;

    (void)user;
    if (out == NULL && len != 0) {
        return IPSECIF_ERR_RANDOM;
    }
    while (done < len) {
        n = len - done < (size_t)INT_MAX ? len - done : (size_t)INT_MAX;
        if (RAND_bytes(out + done, (int)n) != 1) {
            goto fail;
        }
        done += n;
    }
    return 0;
fail:
    ERR_clear_error();
    /* A caller that ignores the error must not send a partly filled buffer. */
    OPENSSL_cleanse(out, len);
    return IPSECIF_ERR_RANDOM;
}
