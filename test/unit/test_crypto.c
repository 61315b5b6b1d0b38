/*
 * The crypto backends (Mbed TLS, and OpenSSL and intel-ipsec-mb when built),
 * called directly on a slot: every test below runs once per backend against
 * the same published vectors (known answers, forgeries, failure behaviour,
 * wiping); then each algorithm is sealed by one backend and opened by each
 * other, on fixed inputs and on pseudo-random ones of every length from 0
 * to 2048 bytes.
 *
 * Vectors:
 *   AES-GCM       McGrew and Viega, "The Galois/Counter Mode of Operation",
 *                 test cases 2-4 (128-bit), 8-10 (192-bit), 14-16 (256-bit)
 *   AES-GMAC      NIST CAVP gcmEncryptExtIV128/256.rsp, PTlen=0 AADlen=128 Count=0
 *   ChaCha20-Poly1305  RFC 8439 section 2.8.2
 *   HMAC-SHA1     RFC 2202 section 3; HMAC-SHA2: RFC 4231 section 4
 *   AES-CBC       RFC 3602 section 4 cases 1-4; NIST SP 800-38A F.2.1, F.2.3, F.2.5
 *   3DES          NIST SP 800-67 Rev. 1 example (three-key TDEA)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"
#if IPSECIF_TEST_OPENSSL
#include "ipsecif_crypto_openssl.h"

#include <openssl/crypto.h>
#endif
#if IPSECIF_TEST_IPSECMB
#include <pthread.h>

#include "ipsecif_crypto_ipsecmb.h"
#endif

#define BUF_MAX 512

struct backend {
    const char *name;
    const struct ipsecif_crypto_ops *ops;
    int (*random)(void *user, uint8_t *out, size_t len);
};

static const struct backend backends[] = {
    {"mbedtls", &ipsecif_crypto_mbedtls_ops, ipsecif_crypto_mbedtls_random},
#if IPSECIF_TEST_OPENSSL
    {"openssl", &ipsecif_crypto_openssl_ops, ipsecif_crypto_openssl_random},
#endif
#if IPSECIF_TEST_IPSECMB
    {"ipsecmb", &ipsecif_crypto_ipsecmb_ops, ipsecif_crypto_ipsecmb_random},
#endif
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

static _Alignas(16) uint8_t slot[IPSECIF_CRYPTO_SLOT_SIZE];
static _Alignas(16) uint8_t slot2[IPSECIF_CRYPTO_SLOT_SIZE];
/* The backend under test. */
static const struct backend *be = &backends[0];
static const struct ipsecif_crypto_ops *ops = &ipsecif_crypto_mbedtls_ops;

/* ---- Helpers ---- */

static int nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Bytes from a vector spec: "t:" and ASCII text, or hex where "aa*131"
 * repeats a byte (RFC 2202 and 4231 write their keys that way).
 */
static size_t bytes(const char *spec, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (strncmp(spec, "t:", 2) == 0) {
        n = strlen(spec + 2);
        assert_true(n <= cap);
        memcpy(out, spec + 2, n);
        return n;
    }
    while (*spec != '\0') {
        int hi;
        int lo;
        unsigned long rep = 1;

        if (*spec == ' ') {
            spec++;
            continue;
        }
        hi = nibble(spec[0]);
        lo = spec[1] != '\0' ? nibble(spec[1]) : -1;
        assert_true(hi >= 0 && lo >= 0);
        spec += 2;
        if (*spec == '*') {
            char *end;

            rep = strtoul(spec + 1, &end, 10);
            assert_true(end != spec + 1);
            spec = end;
        }
        assert_true(n + rep <= cap);
        memset(out + n, (hi << 4) | lo, rep);
        n += rep;
    }
    return n;
}

static int all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i;

    for (i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static int setup(void **state)
{
    (void)state;
    memset(slot, 0, sizeof(slot));
    return 0;
}

/* Every test ends with a wipe: the slot must come back all zero and, under
 * valgrind, with nothing left allocated. */
static int teardown(void **state)
{
    (void)state;
    ops->wipe(slot);
    return all_zero(slot, sizeof(slot)) ? 0 : -1;
}

/* ---- Shape of the ops ---- */

static void test_ops_shape(void **state)
{
    (void)state;
    assert_non_null(ops->init);
    assert_non_null(ops->wipe);
    assert_non_null(ops->aead_seal);
    assert_non_null(ops->aead_open);
    assert_non_null(ops->cbc);
    assert_non_null(ops->mac);
    assert_true(ops->slot_size > 0);
    assert_true(ops->slot_size <= IPSECIF_CRYPTO_SLOT_SIZE);
}

/* ---- AEAD ---- */

struct aead_vec {
    const char *name;
    uint8_t ealg;
    const char *key; /* without the ESP salt */
    const char *nonce;
    const char *aad;
    const char *pt;
    const char *ct;
    const char *tag;
};

#define GCM_K "feffe9928665731c6d6a8f9467308308"
#define GCM_IV "cafebabefacedbaddecaf888"
#define GCM_P60                                                                                    \
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"                             \
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define GCM_P64 GCM_P60 "1aafd255"
#define GCM_A "feedfacedeadbeeffeedfacedeadbeefabaddad2"

static const struct aead_vec aead_vecs[] = {
    {"GCM TC2", IPSECIF_EALG_AES_GCM16, "00*16", "00*12", "", "00*16",
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
    {"GCM TC3", IPSECIF_EALG_AES_GCM16, GCM_K, GCM_IV, "", GCM_P64,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"GCM TC4", IPSECIF_EALG_AES_GCM16, GCM_K, GCM_IV, GCM_A, GCM_P60,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"GCM TC8", IPSECIF_EALG_AES_GCM16, "00*24", "00*12", "", "00*16",
     "98e7247c07f0fe411c267e4384b0f600", "2ff58d80033927ab8ef4d4587514f0fb"},
    {"GCM TC9", IPSECIF_EALG_AES_GCM16, GCM_K "feffe9928665731c", GCM_IV, "", GCM_P64,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
     "9924a7c8587336bfb118024db8674a14"},
    {"GCM TC10", IPSECIF_EALG_AES_GCM16, GCM_K "feffe9928665731c", GCM_IV, GCM_A, GCM_P60,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
     "2519498e80f1478f37ba55bd6d27618c"},
    {"GCM TC14", IPSECIF_EALG_AES_GCM16, "00*32", "00*12", "", "00*16",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"GCM TC15", IPSECIF_EALG_AES_GCM16, GCM_K GCM_K, GCM_IV, "", GCM_P64,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"GCM TC16", IPSECIF_EALG_AES_GCM16, GCM_K GCM_K, GCM_IV, GCM_A, GCM_P60,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    {"GMAC-128 CAVP", IPSECIF_EALG_AES_GMAC, "77be63708971c4e240d1cb79e8d77feb",
     "e0e00f19fed7ba0136a797f3", "7a43ec1d9c0a5a78a0b16533a6213cab", "", "",
     "209fcc8d3675ed938e9c7166709dd946"},
    {"GMAC-256 CAVP", IPSECIF_EALG_AES_GMAC,
     "78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223", "d79cf22d504cc793c3fb6c8a",
     "b96baa8c1c75a671bfb2d08d06be5f36", "", "", "3e5d486aa2e30b22e040b85723a06e76"},
    {"ChaCha20-Poly1305 RFC 8439 2.8.2", IPSECIF_EALG_CHACHA20_POLY1305,
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", "070000004041424344454647",
     "50515253c0c1c2c3c4c5c6c7",
     "t:Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
     "future, sunscreen would be it.",
     "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
     "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
     "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
     "3ff4def08e4b7a9de576d26586cec64b6116",
     "1ae10b594f09e26a7e902ecbd0600691"},
};

struct aead_in {
    uint8_t key[32], nonce[12], aad[BUF_MAX], pt[BUF_MAX], ct[BUF_MAX], tag[16];
    size_t key_len, nonce_len, aad_len, pt_len, ct_len, tag_len;
};

static void aead_load(const struct aead_vec *v, struct aead_in *in)
{
    in->key_len = bytes(v->key, in->key, sizeof(in->key));
    in->nonce_len = bytes(v->nonce, in->nonce, sizeof(in->nonce));
    in->aad_len = bytes(v->aad, in->aad, sizeof(in->aad));
    in->pt_len = bytes(v->pt, in->pt, sizeof(in->pt));
    in->ct_len = bytes(v->ct, in->ct, sizeof(in->ct));
    in->tag_len = bytes(v->tag, in->tag, sizeof(in->tag));
    assert_int_equal(in->pt_len, in->ct_len);
}

static void test_aead_known_answers(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(aead_vecs) / sizeof(aead_vecs[0]); i++) {
        const struct aead_vec *v = &aead_vecs[i];
        struct aead_in in;
        uint8_t data[BUF_MAX];
        uint8_t tag[16];

        print_message("%s\n", v->name);
        aead_load(v, &in);
        assert_int_equal(ops->init(slot, v->ealg, in.key, in.key_len, IPSECIF_AALG_NONE, NULL, 0),
                         IPSECIF_OK);

        /* Seal in place. */
        memcpy(data, in.pt, in.pt_len);
        memset(tag, 0xee, sizeof(tag));
        assert_int_equal(ops->aead_seal(slot, in.nonce, in.nonce_len, in.aad, in.aad_len, data,
                                        in.pt_len, tag, in.tag_len),
                         IPSECIF_OK);
        assert_memory_equal(data, in.ct, in.ct_len);
        assert_memory_equal(tag, in.tag, in.tag_len);

        /* Open in place, twice: the key schedule is not consumed by use. */
        for (int round = 0; round < 2; round++) {
            memcpy(data, in.ct, in.ct_len);
            assert_int_equal(ops->aead_open(slot, in.nonce, in.nonce_len, in.aad, in.aad_len, data,
                                            in.ct_len, in.tag, in.tag_len),
                             IPSECIF_OK);
            assert_memory_equal(data, in.pt, in.pt_len);
        }

        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
    }
}

/* A forged packet: the open fails with AUTH and no plaintext is released. */
static void check_forgery(const struct aead_in *in, const uint8_t *aad, const uint8_t *ct,
                          const uint8_t *tag)
{
    uint8_t data[BUF_MAX];

    memcpy(data, ct, in->ct_len);
    assert_int_equal(ops->aead_open(slot, in->nonce, in->nonce_len, aad, in->aad_len, data,
                                    in->ct_len, tag, in->tag_len),
                     IPSECIF_ERR_AUTH);
    assert_true(all_zero(data, in->ct_len));
}

static void test_aead_forgeries(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(aead_vecs) / sizeof(aead_vecs[0]); i++) {
        const struct aead_vec *v = &aead_vecs[i];
        struct aead_in in;
        uint8_t bad[BUF_MAX];
        uint8_t nonce[12];
        uint8_t data[BUF_MAX];

        print_message("%s\n", v->name);
        aead_load(v, &in);
        assert_int_equal(ops->init(slot, v->ealg, in.key, in.key_len, IPSECIF_AALG_NONE, NULL, 0),
                         IPSECIF_OK);

        /* Every tag byte matters, first and last. */
        memcpy(bad, in.tag, in.tag_len);
        bad[0] ^= 0x01;
        check_forgery(&in, in.aad, in.ct, bad);
        memcpy(bad, in.tag, in.tag_len);
        bad[in.tag_len - 1] ^= 0x80;
        check_forgery(&in, in.aad, in.ct, bad);

        if (in.ct_len > 0) {
            memcpy(bad, in.ct, in.ct_len);
            bad[in.ct_len / 2] ^= 0x04;
            check_forgery(&in, in.aad, bad, in.tag);
        }
        if (in.aad_len > 0) {
            memcpy(bad, in.aad, in.aad_len);
            bad[in.aad_len - 1] ^= 0x10;
            check_forgery(&in, bad, in.ct, in.tag);
        }

        /* Another nonce (the sequence number part of the IV changed). */
        memcpy(nonce, in.nonce, sizeof(nonce));
        nonce[11] ^= 0x01;
        memcpy(data, in.ct, in.ct_len);
        assert_int_equal(ops->aead_open(slot, nonce, in.nonce_len, in.aad, in.aad_len, data,
                                        in.ct_len, in.tag, in.tag_len),
                         IPSECIF_ERR_AUTH);
        assert_true(all_zero(data, in.ct_len));

        /* The SA still works after failures. */
        memcpy(data, in.ct, in.ct_len);
        assert_int_equal(ops->aead_open(slot, in.nonce, in.nonce_len, in.aad, in.aad_len, data,
                                        in.ct_len, in.tag, in.tag_len),
                         IPSECIF_OK);
        assert_memory_equal(data, in.pt, in.pt_len);

        ops->wipe(slot);
    }
}

/* A wrong key (same length) never verifies. */
static void test_aead_wrong_key(void **state)
{
    static const uint8_t ealgs[] = {IPSECIF_EALG_AES_GCM16, IPSECIF_EALG_AES_GMAC,
                                    IPSECIF_EALG_CHACHA20_POLY1305};
    uint8_t key[32];
    uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t aad[8] = {0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1};
    uint8_t data[64];
    uint8_t tag[16];
    size_t i;
    size_t len;

    (void)state;
    for (i = 0; i < sizeof(ealgs); i++) {
        len = ealgs[i] == IPSECIF_EALG_AES_GMAC ? 0 : sizeof(data);
        memset(key, 0x42, sizeof(key));
        memset(data, 0x33, sizeof(data));
        assert_int_equal(ops->init(slot, ealgs[i], key, 32, IPSECIF_AALG_NONE, NULL, 0), 0);
        assert_int_equal(
            ops->aead_seal(slot, nonce, 12, aad, sizeof(aad), data, len, tag, sizeof(tag)), 0);
        ops->wipe(slot);

        key[31] ^= 0x01;
        assert_int_equal(ops->init(slot, ealgs[i], key, 32, IPSECIF_AALG_NONE, NULL, 0), 0);
        assert_int_equal(
            ops->aead_open(slot, nonce, 12, aad, sizeof(aad), data, len, tag, sizeof(tag)),
            IPSECIF_ERR_AUTH);
        assert_true(all_zero(data, len));
        ops->wipe(slot);
    }
}

static void test_aead_misuse(void **state)
{
    uint8_t key[32] = {0};
    uint8_t nonce[12] = {0};
    uint8_t data[32] = {0};
    uint8_t tag[16] = {0};

    (void)state;
    assert_int_equal(ops->init(slot, IPSECIF_EALG_AES_GCM16, key, 16, IPSECIF_AALG_NONE, NULL, 0),
                     0);
    /* ESP nonces are salt || IV: 12 bytes. ICVs are 16 bytes. */
    assert_int_equal(ops->aead_seal(slot, nonce, 8, NULL, 0, data, 16, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->aead_seal(slot, nonce, 16, NULL, 0, data, 16, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->aead_seal(slot, nonce, 12, NULL, 0, data, 16, tag, 12),
                     IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->aead_open(slot, nonce, 12, NULL, 0, data, 16, tag, 8),
                     IPSECIF_ERR_CRYPTO);
    /* Not a CBC or HMAC slot. */
    assert_int_equal(ops->cbc(slot, 1, nonce, data, 16), IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->mac(slot, data, 16, tag, 12), IPSECIF_ERR_CRYPTO);
    ops->wipe(slot);

    /* GMAC authenticates only; it must never be asked to encrypt. */
    assert_int_equal(ops->init(slot, IPSECIF_EALG_AES_GMAC, key, 16, IPSECIF_AALG_NONE, NULL, 0),
                     0);
    assert_int_equal(ops->aead_seal(slot, nonce, 12, data, 8, data + 8, 8, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    ops->wipe(slot);

    /* A CBC slot has no AEAD. */
    assert_int_equal(
        ops->init(slot, IPSECIF_EALG_AES_CBC, key, 16, IPSECIF_AALG_HMAC_SHA2_256_128, key, 32), 0);
    assert_int_equal(ops->aead_seal(slot, nonce, 12, NULL, 0, data, 16, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->aead_open(slot, nonce, 12, NULL, 0, data, 16, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    ops->wipe(slot);

    /* A zeroed or wiped slot does nothing. */
    assert_int_equal(ops->aead_seal(slot, nonce, 12, NULL, 0, data, 16, tag, 16),
                     IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->cbc(slot, 1, nonce, data, 16), IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->mac(slot, data, 16, tag, 12), IPSECIF_ERR_CRYPTO);
}

/* ---- HMAC ---- */

struct mac_vec {
    const char *name;
    uint8_t aalg;
    size_t esp_len; /* the truncation ESP uses */
    const char *key;
    const char *data;
    const char *mac; /* full, or as published when the RFC truncates */
};

#define RFC4231_T6 "t:Test Using Larger Than Block-Size Key - Hash Key First"
#define RFC4231_T7                                                                                 \
    "t:This is a test using a larger than block-size key and a larger than block-size data. The "  \
    "key needs to be hashed before being used by the HMAC algorithm."

static const struct mac_vec mac_vecs[] = {
    /* RFC 2202 */
    {"SHA1 1", IPSECIF_AALG_HMAC_SHA1_96, 12, "0b*20", "t:Hi There",
     "b617318655057264e28bc0b6fb378c8ef146be00"},
    {"SHA1 2", IPSECIF_AALG_HMAC_SHA1_96, 12, "t:Jefe", "t:what do ya want for nothing?",
     "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
    {"SHA1 3", IPSECIF_AALG_HMAC_SHA1_96, 12, "aa*20", "dd*50",
     "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
    {"SHA1 4", IPSECIF_AALG_HMAC_SHA1_96, 12, "0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cd*50", "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
    {"SHA1 5", IPSECIF_AALG_HMAC_SHA1_96, 12, "0c*20", "t:Test With Truncation",
     "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
    {"SHA1 6", IPSECIF_AALG_HMAC_SHA1_96, 12, "aa*80", RFC4231_T6,
     "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
    {"SHA1 7", IPSECIF_AALG_HMAC_SHA1_96, 12, "aa*80",
     "t:Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
     "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
    /* RFC 4231 */
    {"SHA256 1", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "0b*20", "t:Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {"SHA256 2", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "t:Jefe", "t:what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"SHA256 3", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "aa*20", "dd*50",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    {"SHA256 4", IPSECIF_AALG_HMAC_SHA2_256_128, 16,
     "0102030405060708090a0b0c0d0e0f10111213141516171819", "cd*50",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    {"SHA256 5", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "0c*20", "t:Test With Truncation",
     "a3b6167473100ee06e0c796c2955552b"},
    {"SHA256 6", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "aa*131", RFC4231_T6,
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    {"SHA256 7", IPSECIF_AALG_HMAC_SHA2_256_128, 16, "aa*131", RFC4231_T7,
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    {"SHA384 1", IPSECIF_AALG_HMAC_SHA2_384_192, 24, "0b*20", "t:Hi There",
     "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
     "faea9ea9076ede7f4af152e8b2fa9cb6"},
    {"SHA384 2", IPSECIF_AALG_HMAC_SHA2_384_192, 24, "t:Jefe", "t:what do ya want for nothing?",
     "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
     "8e2240ca5e69e2c78b3239ecfab21649"},
    {"SHA384 3", IPSECIF_AALG_HMAC_SHA2_384_192, 24, "aa*20", "dd*50",
     "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b"
     "2a5ab39dc13814b94e3ab6e101a34f27"},
    {"SHA384 4", IPSECIF_AALG_HMAC_SHA2_384_192, 24,
     "0102030405060708090a0b0c0d0e0f10111213141516171819", "cd*50",
     "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e"
     "6801dd23c4a7d679ccf8a386c674cffb"},
    {"SHA384 5", IPSECIF_AALG_HMAC_SHA2_384_192, 16, "0c*20", "t:Test With Truncation",
     "3abf34c3503b2a23a46efc619baef897"},
    {"SHA384 6", IPSECIF_AALG_HMAC_SHA2_384_192, 24, "aa*131", RFC4231_T6,
     "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6"
     "0c2ef6ab4030fe8296248df163f44952"},
    {"SHA384 7", IPSECIF_AALG_HMAC_SHA2_384_192, 24, "aa*131", RFC4231_T7,
     "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5"
     "a678cc31e799176d3860e6110c46523e"},
    {"SHA512 1", IPSECIF_AALG_HMAC_SHA2_512_256, 32, "0b*20", "t:Hi There",
     "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
     "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
    {"SHA512 2", IPSECIF_AALG_HMAC_SHA2_512_256, 32, "t:Jefe", "t:what do ya want for nothing?",
     "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
     "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
    {"SHA512 3", IPSECIF_AALG_HMAC_SHA2_512_256, 32, "aa*20", "dd*50",
     "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
     "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"},
    {"SHA512 4", IPSECIF_AALG_HMAC_SHA2_512_256, 32,
     "0102030405060708090a0b0c0d0e0f10111213141516171819", "cd*50",
     "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
     "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"},
    {"SHA512 5", IPSECIF_AALG_HMAC_SHA2_512_256, 16, "0c*20", "t:Test With Truncation",
     "415fad6271580a531d4179bc891d87a6"},
    {"SHA512 6", IPSECIF_AALG_HMAC_SHA2_512_256, 32, "aa*131", RFC4231_T6,
     "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
     "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
    {"SHA512 7", IPSECIF_AALG_HMAC_SHA2_512_256, 32, "aa*131", RFC4231_T7,
     "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
     "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"},
};

static size_t digest_len(uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return 20;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return 32;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return 48;
    default:
        return 64;
    }
}

/* mac() into out with a canary after out_len: nothing past out_len is written. */
static int mac_guarded(const uint8_t *data, size_t len, uint8_t *out, size_t out_len)
{
    uint8_t buf[80];
    int ret;

    assert_true(out_len + 8 <= sizeof(buf));
    memset(buf, 0xc5, sizeof(buf));
    ret = ops->mac(slot, data, len, buf, out_len);
    for (size_t i = out_len; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], 0xc5);
    }
    memcpy(out, buf, out_len);
    return ret;
}

static void check_mac_vec(const struct mac_vec *v)
{
    uint8_t data[BUF_MAX], exp[64], out[64];
    size_t data_len = bytes(v->data, data, sizeof(data));
    size_t exp_len = bytes(v->mac, exp, sizeof(exp));
    size_t full = digest_len(v->aalg);

    /* The ESP truncation is the prefix of the published value. */
    assert_true(v->esp_len <= exp_len);
    assert_int_equal(mac_guarded(data, data_len, out, v->esp_len), IPSECIF_OK);
    assert_memory_equal(out, exp, v->esp_len);
    /* The whole published value, where the RFC gives it. */
    assert_int_equal(mac_guarded(data, data_len, out, exp_len), IPSECIF_OK);
    assert_memory_equal(out, exp, exp_len);
    /* More than the digest is refused. */
    assert_int_equal(mac_guarded(data, data_len, out, full), IPSECIF_OK);
    assert_int_equal(ops->mac(slot, data, data_len, out, full + 1), IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->mac(slot, data, data_len, out, 0), IPSECIF_ERR_CRYPTO);
}

static void test_hmac_known_answers(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(mac_vecs) / sizeof(mac_vecs[0]); i++) {
        const struct mac_vec *v = &mac_vecs[i];
        uint8_t key[BUF_MAX];
        size_t key_len = bytes(v->key, key, sizeof(key));

        print_message("HMAC-%s (with NULL encryption)\n", v->name);
        assert_int_equal(ops->init(slot, IPSECIF_EALG_NULL, NULL, 0, v->aalg, key, key_len),
                         IPSECIF_OK);
        check_mac_vec(v);
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));

        /* The same HMAC next to a cipher (the slot layout differs). */
        print_message("HMAC-%s (with AES-CBC)\n", v->name);
        {
            uint8_t ekey[32];

            memset(ekey, 0x5a, sizeof(ekey));
            assert_int_equal(ops->init(slot, IPSECIF_EALG_AES_CBC, ekey, 32, v->aalg, key, key_len),
                             IPSECIF_OK);
        }
        check_mac_vec(v);
        ops->wipe(slot);
    }
}

/* ---- CBC ---- */

struct cbc_vec {
    const char *name;
    uint8_t ealg;
    const char *key;
    const char *iv;
    const char *pt;
    const char *ct;
};

#define SP38A_IV "000102030405060708090a0b0c0d0e0f"
#define SP38A_P                                                                                    \
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"                             \
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"

static const struct cbc_vec cbc_vecs[] = {
    {"RFC 3602 case 1", IPSECIF_EALG_AES_CBC, "06a9214036b8a15b512e03d534120006",
     "3dafba429d9eb430b422da802c9fac41", "t:Single block msg", "e353779c1079aeb82708942dbe77181a"},
    {"RFC 3602 case 2", IPSECIF_EALG_AES_CBC, "c286696d887c9aa0611bbb3e2025a45a",
     "562e17996d093d28ddb3ba695a2e6f58",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"},
    {"RFC 3602 case 3", IPSECIF_EALG_AES_CBC, "6c3ea0477630ce21a2ce334aa746c2cd",
     "c782dc4c098c66cbd9cd27d825682c81", "t:This is a 48-byte message (exactly 3 AES blocks)",
     "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5"
     "021c19216bad525c8579695d83ba2684"},
    {"RFC 3602 case 4", IPSECIF_EALG_AES_CBC, "56e47a38c5598974bc46903dba290349",
     "8ce82eefbea0da3c44699ed7db51b7d9",
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
     "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
     "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e"
     "35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55"},
    {"SP 800-38A F.2.1 AES-128", IPSECIF_EALG_AES_CBC, "2b7e151628aed2a6abf7158809cf4f3c", SP38A_IV,
     SP38A_P,
     "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
     "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"},
    {"SP 800-38A F.2.3 AES-192", IPSECIF_EALG_AES_CBC,
     "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", SP38A_IV, SP38A_P,
     "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a"
     "571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd"},
    {"SP 800-38A F.2.5 AES-256", IPSECIF_EALG_AES_CBC,
     "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", SP38A_IV, SP38A_P,
     "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
     "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"},
};

struct cbc_in {
    uint8_t key[32], iv[16], pt[BUF_MAX], ct[BUF_MAX];
    size_t key_len, iv_len, pt_len, ct_len;
};

static void cbc_load(const struct cbc_vec *v, struct cbc_in *in)
{
    in->key_len = bytes(v->key, in->key, sizeof(in->key));
    in->iv_len = bytes(v->iv, in->iv, sizeof(in->iv));
    in->pt_len = bytes(v->pt, in->pt, sizeof(in->pt));
    in->ct_len = bytes(v->ct, in->ct, sizeof(in->ct));
    assert_int_equal(in->pt_len, in->ct_len);
}

/* Encrypt and decrypt in place, in both orders, IV left untouched. */
static void check_cbc(const struct cbc_in *in)
{
    uint8_t data[BUF_MAX];
    uint8_t iv[16];

    memcpy(iv, in->iv, in->iv_len);
    for (int round = 0; round < 2; round++) {
        memcpy(data, in->pt, in->pt_len);
        assert_int_equal(ops->cbc(slot, 1, iv, data, in->pt_len), IPSECIF_OK);
        assert_memory_equal(data, in->ct, in->ct_len);
        assert_memory_equal(iv, in->iv, in->iv_len);
        assert_int_equal(ops->cbc(slot, 0, iv, data, in->ct_len), IPSECIF_OK);
        assert_memory_equal(data, in->pt, in->pt_len);
        assert_memory_equal(iv, in->iv, in->iv_len);
    }
}

static void test_aes_cbc_known_answers(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cbc_vecs) / sizeof(cbc_vecs[0]); i++) {
        struct cbc_in in;
        uint8_t data[BUF_MAX];

        print_message("%s\n", cbc_vecs[i].name);
        cbc_load(&cbc_vecs[i], &in);
        assert_int_equal(
            ops->init(slot, cbc_vecs[i].ealg, in.key, in.key_len, IPSECIF_AALG_NONE, NULL, 0),
            IPSECIF_OK);
        /* Decrypt before any encryption: both schedules exist from the start. */
        memcpy(data, in.ct, in.ct_len);
        assert_int_equal(ops->cbc(slot, 0, in.iv, data, in.ct_len), IPSECIF_OK);
        assert_memory_equal(data, in.pt, in.pt_len);
        check_cbc(&in);
        /* Not a whole number of blocks. */
        assert_int_equal(ops->cbc(slot, 1, in.iv, data, in.pt_len - 1), IPSECIF_ERR_CRYPTO);
        assert_int_equal(ops->cbc(slot, 0, in.iv, data, 8), IPSECIF_ERR_CRYPTO);
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
    }
}

/* The largest slot content: AES-256-CBC with HMAC-SHA-512 states. */
static void test_aes_cbc_with_hmac_sha512(void **state)
{
    const struct cbc_vec *cv = &cbc_vecs[6];
    const struct mac_vec *mv = &mac_vecs[sizeof(mac_vecs) / sizeof(mac_vecs[0]) - 1];
    struct cbc_in in;
    uint8_t akey[BUF_MAX];
    size_t akey_len = bytes(mv->key, akey, sizeof(akey));

    (void)state;
    assert_int_equal(mv->aalg, IPSECIF_AALG_HMAC_SHA2_512_256);
    cbc_load(cv, &in);
    assert_int_equal(in.key_len, 32);
    assert_int_equal(
        ops->init(slot, IPSECIF_EALG_AES_CBC, in.key, in.key_len, mv->aalg, akey, akey_len),
        IPSECIF_OK);
    /* Interleaved use: neither disturbs the other. */
    check_cbc(&in);
    check_mac_vec(mv);
    check_cbc(&in);
    check_mac_vec(mv);
}

/*
 * 3DES against the SP 800-67 example (published for ECB). A CBC chain whose
 * plaintext blocks are P[i] ^ C[i-1] (C[-1] = IV) must produce exactly the
 * published ECB ciphertext, which checks the cipher and the chaining.
 */
#define TDEA_KEY "0123456789abcdef23456789abcdef01456789abcdef0123"
#define TDEA_P "t:The qufck brown fox jump"
#define TDEA_C "a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900"

static void test_3des_known_answer(void **state)
{
    uint8_t key[24], p[24], c[24], iv[8], chain[24], data[24];
    const uint8_t *prev;
    size_t i;

    (void)state;
    assert_int_equal(bytes(TDEA_KEY, key, sizeof(key)), 24);
    assert_int_equal(bytes(TDEA_P, p, sizeof(p)), 24);
    assert_int_equal(bytes(TDEA_C, c, sizeof(c)), 24);
    assert_int_equal(bytes("f69f2445df4f9b17", iv, sizeof(iv)), 8);
    prev = iv;
    for (i = 0; i < 24; i++) {
        if (i > 0 && i % 8 == 0) {
            prev = c + i - 8;
        }
        chain[i] = p[i] ^ prev[i % 8];
    }

    assert_int_equal(ops->init(slot, IPSECIF_EALG_3DES_CBC, key, 24, IPSECIF_AALG_NONE, NULL, 0),
                     IPSECIF_OK);
    memcpy(data, chain, sizeof(data));
    assert_int_equal(ops->cbc(slot, 1, iv, data, sizeof(data)), IPSECIF_OK);
    assert_memory_equal(data, c, sizeof(c));
    assert_int_equal(ops->cbc(slot, 0, iv, data, sizeof(data)), IPSECIF_OK);
    assert_memory_equal(data, chain, sizeof(chain));

    /* One block with a zero IV is plain ECB: the first published block. */
    memset(iv, 0, sizeof(iv));
    memcpy(data, p, 8);
    assert_int_equal(ops->cbc(slot, 1, iv, data, 8), IPSECIF_OK);
    assert_memory_equal(data, c, 8);

    assert_int_equal(ops->cbc(slot, 1, iv, data, 12), IPSECIF_ERR_CRYPTO);
    assert_int_equal(ops->cbc(slot, 0, iv, data, 7), IPSECIF_ERR_CRYPTO);
}

/* The 3DES slot rebuilds its schedule when the direction changes: any
 * order of calls must give the same results. */
static void test_3des_round_trips(void **state)
{
    uint8_t key[24], key2[24], iv[8], pt[96], ct[96], ct2[96], data[96];
    size_t i;

    (void)state;
    assert_int_equal(bytes(TDEA_KEY, key, sizeof(key)), 24);
    memcpy(key2, key, sizeof(key2));
    key2[20] ^= 0x10; /* not a parity bit */
    for (i = 0; i < sizeof(pt); i++) {
        pt[i] = (uint8_t)(i * 7 + 3);
    }
    memset(iv, 0xa5, sizeof(iv));

    assert_int_equal(
        ops->init(slot, IPSECIF_EALG_3DES_CBC, key, 24, IPSECIF_AALG_HMAC_SHA2_512_256, key, 24),
        IPSECIF_OK);
    /* Decrypt first, then encrypt, then alternate. */
    memcpy(data, pt, sizeof(pt));
    assert_int_equal(ops->cbc(slot, 0, iv, data, sizeof(data)), IPSECIF_OK);
    assert_memory_not_equal(data, pt, sizeof(pt));
    assert_int_equal(ops->cbc(slot, 1, iv, data, sizeof(data)), IPSECIF_OK);
    assert_memory_equal(data, pt, sizeof(pt));
    assert_int_equal(ops->cbc(slot, 1, iv, data, sizeof(data)), IPSECIF_OK);
    memcpy(ct, data, sizeof(ct));
    assert_memory_not_equal(ct, pt, sizeof(pt));
    for (int round = 0; round < 3; round++) {
        assert_int_equal(ops->cbc(slot, 0, iv, data, sizeof(data)), IPSECIF_OK);
        assert_memory_equal(data, pt, sizeof(pt));
        assert_int_equal(ops->cbc(slot, 1, iv, data, sizeof(data)), IPSECIF_OK);
        assert_memory_equal(data, ct, sizeof(ct));
    }
    ops->wipe(slot);
    assert_true(all_zero(slot, sizeof(slot)));

    /* Another key, another ciphertext. */
    assert_int_equal(ops->init(slot, IPSECIF_EALG_3DES_CBC, key2, 24, IPSECIF_AALG_NONE, NULL, 0),
                     IPSECIF_OK);
    memcpy(ct2, pt, sizeof(pt));
    assert_int_equal(ops->cbc(slot, 1, iv, ct2, sizeof(ct2)), IPSECIF_OK);
    assert_memory_not_equal(ct2, ct, sizeof(ct));
    assert_int_equal(ops->cbc(slot, 0, iv, ct2, sizeof(ct2)), IPSECIF_OK);
    assert_memory_equal(ct2, pt, sizeof(pt));
}

static void test_null_encryption(void **state)
{
    uint8_t akey[20];
    uint8_t data[40];
    uint8_t copy[40];
    uint8_t iv[16] = {0};
    uint8_t out[12];

    (void)state;
    memset(akey, 0x0b, sizeof(akey));
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)i;
    }
    memcpy(copy, data, sizeof(copy));
    assert_int_equal(
        ops->init(slot, IPSECIF_EALG_NULL, NULL, 0, IPSECIF_AALG_HMAC_SHA1_96, akey, sizeof(akey)),
        IPSECIF_OK);
    /* Any length: NULL has a block size of 1 (RFC 2410). */
    assert_int_equal(ops->cbc(slot, 1, iv, data, 37), IPSECIF_OK);
    assert_int_equal(ops->cbc(slot, 0, iv, data, sizeof(data)), IPSECIF_OK);
    assert_memory_equal(data, copy, sizeof(copy));
    /* "Hi There" (RFC 2202 case 1) still authenticates. */
    assert_int_equal(ops->mac(slot, (const uint8_t *)"Hi There", 8, out, sizeof(out)), IPSECIF_OK);
    assert_memory_equal(out, "\xb6\x17\x31\x86\x55\x05\x72\x64\xe2\x8b\xc0\xb6", 12);
    /* No AEAD here. */
    assert_int_equal(ops->aead_seal(slot, iv, 12, NULL, 0, data, 16, out, 16), IPSECIF_ERR_CRYPTO);
}

/* AES-CBC without authentication is a legal (if unwise) ESP SA: mac refuses. */
static void test_cbc_without_auth(void **state)
{
    uint8_t key[16] = {1};
    uint8_t out[32];

    (void)state;
    assert_int_equal(ops->init(slot, IPSECIF_EALG_AES_CBC, key, 16, IPSECIF_AALG_NONE, NULL, 0),
                     IPSECIF_OK);
    assert_int_equal(ops->mac(slot, key, 16, out, 12), IPSECIF_ERR_CRYPTO);
}

/* ---- init failures ---- */

struct init_vec {
    const char *name;
    uint8_t ealg;
    size_t ekey_len;
    uint8_t aalg;
    size_t akey_len;
    int expect;
};

static const struct init_vec init_vecs[] = {
    {"GCM 15-byte key", IPSECIF_EALG_AES_GCM16, 15, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"GCM 20-byte key (salt left on)", IPSECIF_EALG_AES_GCM16, 20, IPSECIF_AALG_NONE, 0,
     IPSECIF_ERR_CRYPTO},
    {"GCM 36-byte key", IPSECIF_EALG_AES_GCM16, 36, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"GCM no key", IPSECIF_EALG_AES_GCM16, 0, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"GCM huge key", IPSECIF_EALG_AES_GCM16, 600, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"GMAC 31-byte key", IPSECIF_EALG_AES_GMAC, 31, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"ChaCha 16-byte key", IPSECIF_EALG_CHACHA20_POLY1305, 16, IPSECIF_AALG_NONE, 0,
     IPSECIF_ERR_CRYPTO},
    {"ChaCha 36-byte key", IPSECIF_EALG_CHACHA20_POLY1305, 36, IPSECIF_AALG_NONE, 0,
     IPSECIF_ERR_CRYPTO},
    {"AES-CBC 17-byte key", IPSECIF_EALG_AES_CBC, 17, IPSECIF_AALG_HMAC_SHA1_96, 20,
     IPSECIF_ERR_CRYPTO},
    {"AES-CBC no key", IPSECIF_EALG_AES_CBC, 0, IPSECIF_AALG_HMAC_SHA1_96, 20, IPSECIF_ERR_CRYPTO},
    {"AES-CBC 64-byte key", IPSECIF_EALG_AES_CBC, 64, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"3DES 16-byte key", IPSECIF_EALG_3DES_CBC, 16, IPSECIF_AALG_HMAC_SHA1_96, 20,
     IPSECIF_ERR_CRYPTO},
    {"3DES 8-byte key", IPSECIF_EALG_3DES_CBC, 8, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_CRYPTO},
    {"NULL with a key", IPSECIF_EALG_NULL, 8, IPSECIF_AALG_HMAC_SHA1_96, 20, IPSECIF_ERR_CRYPTO},
    /* A key given for no algorithm, after the cipher was set up (wiped too). */
    {"GCM with an auth key", IPSECIF_EALG_AES_GCM16, 16, IPSECIF_AALG_NONE, 20, IPSECIF_ERR_CRYPTO},
    {"AES-CBC with an auth key", IPSECIF_EALG_AES_CBC, 16, IPSECIF_AALG_NONE, 20,
     IPSECIF_ERR_CRYPTO},
    {"GCM with HMAC", IPSECIF_EALG_AES_GCM16, 16, IPSECIF_AALG_HMAC_SHA1_96, 20,
     IPSECIF_ERR_UNSUPPORTED},
    {"GMAC with HMAC", IPSECIF_EALG_AES_GMAC, 16, IPSECIF_AALG_HMAC_SHA2_256_128, 32,
     IPSECIF_ERR_UNSUPPORTED},
    {"ChaCha with HMAC", IPSECIF_EALG_CHACHA20_POLY1305, 32, IPSECIF_AALG_HMAC_SHA2_512_256, 64,
     IPSECIF_ERR_UNSUPPORTED},
    {"NULL without auth", IPSECIF_EALG_NULL, 0, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_UNSUPPORTED},
    {"nothing at all", IPSECIF_EALG_NONE, 0, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_UNSUPPORTED},
    {"unknown ealg 7", 7, 16, IPSECIF_AALG_NONE, 0, IPSECIF_ERR_UNSUPPORTED},
    {"unknown ealg 255", 255, 16, IPSECIF_AALG_HMAC_SHA1_96, 20, IPSECIF_ERR_UNSUPPORTED},
    {"unknown aalg 5", IPSECIF_EALG_AES_CBC, 16, 5, 20, IPSECIF_ERR_UNSUPPORTED},
    {"unknown aalg 250", IPSECIF_EALG_NULL, 0, 250, 20, IPSECIF_ERR_UNSUPPORTED},
};

static void test_init_failures_leave_slot_zero(void **state)
{
    uint8_t key[600];
    uint8_t iv[16] = {0};
    uint8_t data[32] = {0};
    uint8_t out[64];
    size_t i;

    (void)state;
    memset(key, 0x11, sizeof(key));
    for (i = 0; i < sizeof(init_vecs) / sizeof(init_vecs[0]); i++) {
        const struct init_vec *v = &init_vecs[i];

        print_message("%s\n", v->name);
        /* Whatever was in the slot before, nothing is left after a failure;
         * bytes past slot_size are never the backend's to touch. */
        memset(slot, 0xa5, sizeof(slot));
        assert_int_equal(ops->init(slot, v->ealg, key, v->ekey_len, v->aalg, key, v->akey_len),
                         v->expect);
        assert_true(all_zero(slot, ops->slot_size));
        for (size_t j = ops->slot_size; j < sizeof(slot); j++) {
            assert_int_equal(slot[j], 0xa5);
        }
        memset(slot, 0, sizeof(slot));
        /* And the failed slot does nothing. */
        assert_int_equal(ops->cbc(slot, 1, iv, data, 16), IPSECIF_ERR_CRYPTO);
        assert_int_equal(ops->mac(slot, data, 16, out, 12), IPSECIF_ERR_CRYPTO);
        assert_int_equal(ops->aead_seal(slot, iv, 12, NULL, 0, data, 16, out, 16),
                         IPSECIF_ERR_CRYPTO);
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
    }
}

/* ---- wipe ---- */

struct algpair {
    uint8_t ealg;
    size_t ekey_len;
    uint8_t aalg;
    size_t akey_len;
};

static const struct algpair every_pair[] = {
    {IPSECIF_EALG_AES_GCM16, 16, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_AES_GCM16, 24, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_AES_GCM16, 32, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_AES_GMAC, 16, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_AES_GMAC, 32, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_CHACHA20_POLY1305, 32, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_AES_CBC, 16, IPSECIF_AALG_HMAC_SHA1_96, 20},
    {IPSECIF_EALG_AES_CBC, 24, IPSECIF_AALG_HMAC_SHA2_256_128, 32},
    {IPSECIF_EALG_AES_CBC, 32, IPSECIF_AALG_HMAC_SHA2_384_192, 48},
    {IPSECIF_EALG_AES_CBC, 32, IPSECIF_AALG_HMAC_SHA2_512_256, 64},
    {IPSECIF_EALG_AES_CBC, 16, IPSECIF_AALG_NONE, 0},
    {IPSECIF_EALG_3DES_CBC, 24, IPSECIF_AALG_HMAC_SHA1_96, 20},
    {IPSECIF_EALG_3DES_CBC, 24, IPSECIF_AALG_HMAC_SHA2_512_256, 64},
    {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA2_256_128, 32},
    {IPSECIF_EALG_NONE, 0, IPSECIF_AALG_HMAC_SHA2_384_192, 48},
};

static void test_wipe(void **state)
{
    uint8_t key[64];
    size_t i;

    (void)state;
    memset(key, 0x77, sizeof(key));
    /* A zeroed slot, and a wiped one. */
    ops->wipe(slot);
    assert_true(all_zero(slot, sizeof(slot)));
    ops->wipe(slot);
    assert_true(all_zero(slot, sizeof(slot)));

    for (i = 0; i < sizeof(every_pair) / sizeof(every_pair[0]); i++) {
        const struct algpair *a = &every_pair[i];

        print_message("ealg %u aalg %u\n", a->ealg, a->aalg);
        assert_int_equal(ops->init(slot, a->ealg, key, a->ekey_len, a->aalg, key, a->akey_len),
                         IPSECIF_OK);
        assert_false(all_zero(slot, sizeof(slot)));
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
        /* A wiped slot can be set up again. */
        assert_int_equal(ops->init(slot, a->ealg, key, a->ekey_len, a->aalg, key, a->akey_len),
                         IPSECIF_OK);
        ops->wipe(slot);
        assert_true(all_zero(slot, sizeof(slot)));
    }
}

/* ---- random ---- */

static void test_random(void **state)
{
    uint8_t a[32];
    uint8_t b[32];
    static uint8_t big[5000];

    (void)state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(be->random(NULL, a, sizeof(a)), IPSECIF_OK);
    assert_int_equal(be->random(NULL, b, sizeof(b)), IPSECIF_OK);
    assert_false(all_zero(a, sizeof(a)));
    assert_false(all_zero(b, sizeof(b)));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(be->random(NULL, a, 0), IPSECIF_OK);

    /* More than one DRBG request: every part is filled, parts differ. */
    assert_int_equal(be->random(NULL, big, sizeof(big)), IPSECIF_OK);
    assert_false(all_zero(big + sizeof(big) - 32, 32));
    assert_memory_not_equal(big, big + 4096, 32);
    assert_int_equal(be->random(NULL, NULL, 1), IPSECIF_ERR_RANDOM);
}

/* ---- Across backends: what one seals, the other opens ---- */

/* Which backend set up each slot (a failed assertion leaves them set). */
static const struct backend *slot_owner;
static const struct backend *slot2_owner;

static int cross_teardown(void **state)
{
    (void)state;
    if (slot_owner != NULL) {
        slot_owner->ops->wipe(slot);
    }
    if (slot2_owner != NULL) {
        slot2_owner->ops->wipe(slot2);
    }
    slot_owner = NULL;
    slot2_owner = NULL;
    return all_zero(slot, sizeof(slot)) && all_zero(slot2, sizeof(slot2)) ? 0 : -1;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i * 31u + (i >> 3));
    }
}

/* Seal or encrypt+MAC in slot with a, open or decrypt+MAC in slot2 with b. */
static void cross_one(const struct backend *a, const struct backend *b, const struct algpair *p,
                      size_t len)
{
    uint8_t ekey[32], akey[64], nonce[12], iv[16], aad[12], pt[BUF_MAX], data[BUF_MAX];
    uint8_t tag[16], tag2[16], mac[64], mac2[64];
    /* The ESP truncation: half the digest, 96 bits for SHA-1. */
    size_t tlen = p->aalg == IPSECIF_AALG_HMAC_SHA1_96 ? 12 : digest_len(p->aalg) / 2;

    fill(ekey, sizeof(ekey), (uint8_t)(p->ealg * 17 + p->ekey_len));
    fill(akey, sizeof(akey), (uint8_t)(p->aalg * 29 + 5));
    fill(nonce, sizeof(nonce), (uint8_t)len);
    fill(iv, sizeof(iv), (uint8_t)(len + 7));
    fill(aad, sizeof(aad), 0x5a);
    fill(pt, len, (uint8_t)(len + 1));
    slot_owner = a;
    assert_int_equal(a->ops->init(slot, p->ealg, ekey, p->ekey_len, p->aalg, akey, p->akey_len),
                     IPSECIF_OK);
    slot2_owner = b;
    assert_int_equal(b->ops->init(slot2, p->ealg, ekey, p->ekey_len, p->aalg, akey, p->akey_len),
                     IPSECIF_OK);
    memcpy(data, pt, len);
    if (p->ealg == IPSECIF_EALG_AES_GMAC) {
        /* The whole packet is AAD. */
        assert_int_equal(a->ops->aead_seal(slot, nonce, 12, pt, len, NULL, 0, tag, 16), IPSECIF_OK);
        assert_int_equal(b->ops->aead_open(slot2, nonce, 12, pt, len, NULL, 0, tag, 16),
                         IPSECIF_OK);
        tag[5] ^= 0x20;
        assert_int_equal(b->ops->aead_open(slot2, nonce, 12, pt, len, NULL, 0, tag, 16),
                         IPSECIF_ERR_AUTH);
    } else if (p->ealg == IPSECIF_EALG_AES_GCM16 || p->ealg == IPSECIF_EALG_CHACHA20_POLY1305) {
        assert_int_equal(a->ops->aead_seal(slot, nonce, 12, aad, sizeof(aad), data, len, tag, 16),
                         IPSECIF_OK);
        /* Both backends produce the same bytes. */
        memcpy(tag2, tag, sizeof(tag));
        assert_int_equal(b->ops->aead_open(slot2, nonce, 12, aad, sizeof(aad), data, len, tag, 16),
                         IPSECIF_OK);
        assert_memory_equal(data, pt, len);
        assert_int_equal(b->ops->aead_seal(slot2, nonce, 12, aad, sizeof(aad), data, len, tag, 16),
                         IPSECIF_OK);
        assert_memory_equal(tag, tag2, sizeof(tag));
        data[len - 1] ^= 0x01;
        assert_int_equal(a->ops->aead_open(slot, nonce, 12, aad, sizeof(aad), data, len, tag, 16),
                         IPSECIF_ERR_AUTH);
        assert_true(all_zero(data, len));
    } else {
        size_t block = p->ealg == IPSECIF_EALG_3DES_CBC ? 8 : 16;
        size_t clen = p->ealg == IPSECIF_EALG_NULL ? len : len / block * block;

        /* EALG_NONE (integrity only) has no cipher to call. */
        int cipher = p->ealg != IPSECIF_EALG_NONE;

        if (cipher) {
            assert_int_equal(a->ops->cbc(slot, 1, iv, data, clen), IPSECIF_OK);
        }
        if (cipher && p->ealg != IPSECIF_EALG_NULL && clen > 0) {
            assert_memory_not_equal(data, pt, clen);
        }
        if (p->aalg != IPSECIF_AALG_NONE) {
            assert_int_equal(a->ops->mac(slot, data, clen, mac, tlen), IPSECIF_OK);
            assert_int_equal(b->ops->mac(slot2, data, clen, mac2, tlen), IPSECIF_OK);
            assert_memory_equal(mac, mac2, tlen);
        }
        if (cipher) {
            assert_int_equal(b->ops->cbc(slot2, 0, iv, data, clen), IPSECIF_OK);
        }
        assert_memory_equal(data, pt, clen);
    }
    a->ops->wipe(slot);
    b->ops->wipe(slot2);
    slot_owner = NULL;
    slot2_owner = NULL;
}

static void test_cross_backends(void **state)
{
    static const size_t lens[] = {16, 64, 100, 496};
    static const struct algpair more[] = {
        {IPSECIF_EALG_AES_GMAC, 24, IPSECIF_AALG_NONE, 0},
        {IPSECIF_EALG_AES_CBC, 32, IPSECIF_AALG_NONE, 0},
        {IPSECIF_EALG_3DES_CBC, 24, IPSECIF_AALG_HMAC_SHA2_256_128, 32},
        {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA1_96, 20},
        {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA2_512_256, 64},
    };

    (void)state;
    if (NBACKENDS < 2) {
        skip();
    }
    for (size_t a = 0; a < NBACKENDS; a++) {
        for (size_t b = 0; b < NBACKENDS; b++) {
            if (a == b) {
                continue;
            }
            for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                for (size_t i = 0; i < sizeof(every_pair) / sizeof(every_pair[0]); i++) {
                    cross_one(&backends[a], &backends[b], &every_pair[i], lens[l]);
                }
                for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
                    cross_one(&backends[a], &backends[b], &more[i], lens[l]);
                }
            }
        }
    }
}

/*
 * Pseudo-random inputs (xorshift64*, fixed seed: a failure reproduces) of
 * every length from 0 to RAND_MAX_LEN: each pair of backends must give the
 * same bytes and open what the other sealed. CBC takes every whole number
 * of blocks (an HMAC over them too; NULL with an HMAC covers every length);
 * GMAC authenticates the bytes as AAD.
 */
#define RAND_MAX_LEN 2048

static uint64_t rng_state;

static uint8_t rng_byte(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint8_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 56);
}

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = rng_byte();
    }
}

/* Inputs and each backend's outputs for one length. */
struct rand_case {
    uint8_t ekey[32], akey[64], nonce[12], iv[16], aad[16];
    size_t aad_len;
    uint8_t pt[RAND_MAX_LEN];
    uint8_t out[NBACKENDS][RAND_MAX_LEN];
    uint8_t tag[NBACKENDS][64];
    uint8_t mac[NBACKENDS][64];
};

static struct rand_case rc;
static _Alignas(16) uint8_t rand_slots[NBACKENDS][IPSECIF_CRYPTO_SLOT_SIZE];
static bool rand_live[NBACKENDS];

static void rand_wipe_all(void)
{
    for (size_t k = 0; k < NBACKENDS; k++) {
        if (rand_live[k]) {
            backends[k].ops->wipe(rand_slots[k]);
            rand_live[k] = false;
        }
    }
}

static int rand_teardown(void **state)
{
    (void)state;
    rand_wipe_all();
    return 0;
}

/* Backend k's output for the current case: ciphertext or tag or MAC. */
static void rand_produce(size_t k, const struct algpair *p, size_t len)
{
    const struct ipsecif_crypto_ops *o = backends[k].ops;
    uint8_t *slotk = rand_slots[k];
    size_t dlen = digest_len(p->aalg);

    memcpy(rc.out[k], rc.pt, len);
    if (p->ealg == IPSECIF_EALG_AES_GMAC) {
        assert_int_equal(o->aead_seal(slotk, rc.nonce, 12, rc.pt, len, NULL, 0, rc.tag[k], 16),
                         IPSECIF_OK);
    } else if (p->ealg == IPSECIF_EALG_AES_GCM16 || p->ealg == IPSECIF_EALG_CHACHA20_POLY1305) {
        assert_int_equal(
            o->aead_seal(slotk, rc.nonce, 12, rc.aad, rc.aad_len, rc.out[k], len, rc.tag[k], 16),
            IPSECIF_OK);
    } else {
        if (p->ealg != IPSECIF_EALG_NONE) {
            assert_int_equal(o->cbc(slotk, 1, rc.iv, rc.out[k], len), IPSECIF_OK);
        }
        if (p->aalg != IPSECIF_AALG_NONE) {
            /* Over the ciphertext, as ESP does; the whole digest. */
            assert_int_equal(o->mac(slotk, rc.out[k], len, rc.mac[k], dlen), IPSECIF_OK);
        }
    }
}

/* Backend b opens (or decrypts and verifies) what backend a produced. */
static void rand_consume(size_t a, size_t b, const struct algpair *p, size_t len)
{
    const struct ipsecif_crypto_ops *o = backends[b].ops;
    uint8_t *slotb = rand_slots[b];
    static uint8_t data[RAND_MAX_LEN];
    uint8_t mac[64];
    uint8_t bad[16];

    memcpy(data, rc.out[a], len);
    if (p->ealg == IPSECIF_EALG_AES_GMAC) {
        assert_int_equal(o->aead_open(slotb, rc.nonce, 12, rc.pt, len, NULL, 0, rc.tag[a], 16),
                         IPSECIF_OK);
        memcpy(bad, rc.tag[a], 16);
        bad[len % 16] ^= 0x40;
        assert_int_equal(o->aead_open(slotb, rc.nonce, 12, rc.pt, len, NULL, 0, bad, 16),
                         IPSECIF_ERR_AUTH);
    } else if (p->ealg == IPSECIF_EALG_AES_GCM16 || p->ealg == IPSECIF_EALG_CHACHA20_POLY1305) {
        assert_int_equal(
            o->aead_open(slotb, rc.nonce, 12, rc.aad, rc.aad_len, data, len, rc.tag[a], 16),
            IPSECIF_OK);
        assert_memory_equal(data, rc.pt, len);
        /* A flipped bit anywhere: refused, nothing released. */
        memcpy(data, rc.out[a], len);
        if (len > 0) {
            data[(len * 7) % len] ^= 0x01;
        } else {
            memcpy(bad, rc.tag[a], 16);
            bad[15] ^= 0x01;
        }
        assert_int_equal(o->aead_open(slotb, rc.nonce, 12, rc.aad, rc.aad_len, data, len,
                                      len > 0 ? rc.tag[a] : bad, 16),
                         IPSECIF_ERR_AUTH);
        assert_true(all_zero(data, len));
    } else {
        if (p->aalg != IPSECIF_AALG_NONE) {
            size_t tlen = p->aalg == IPSECIF_AALG_HMAC_SHA1_96 ? 12 : digest_len(p->aalg) / 2;

            assert_int_equal(o->mac(slotb, data, len, mac, tlen), IPSECIF_OK);
            assert_memory_equal(mac, rc.mac[a], tlen);
        }
        if (p->ealg != IPSECIF_EALG_NONE) {
            assert_int_equal(o->cbc(slotb, 0, rc.iv, data, len), IPSECIF_OK);
        }
        assert_memory_equal(data, rc.pt, len);
    }
}

static bool is_aead_alg(uint8_t ealg)
{
    return ealg == IPSECIF_EALG_AES_GCM16 || ealg == IPSECIF_EALG_AES_GMAC ||
           ealg == IPSECIF_EALG_CHACHA20_POLY1305;
}

static size_t block_of(uint8_t ealg)
{
    return ealg == IPSECIF_EALG_3DES_CBC ? 8 : ealg == IPSECIF_EALG_AES_CBC ? 16 : 1;
}

static void rand_one(const struct algpair *p, size_t len)
{
    size_t dlen = digest_len(p->aalg);

    rng_fill(rc.ekey, sizeof(rc.ekey));
    rng_fill(rc.akey, sizeof(rc.akey));
    rng_fill(rc.nonce, sizeof(rc.nonce));
    rng_fill(rc.iv, sizeof(rc.iv));
    /* ESP's AAD is 8 bytes, 12 with ESN; other lengths as well. */
    rc.aad_len = rng_byte() % (sizeof(rc.aad) + 1);
    rng_fill(rc.aad, rc.aad_len);
    rng_fill(rc.pt, len);

    for (size_t k = 0; k < NBACKENDS; k++) {
        assert_int_equal(backends[k].ops->init(rand_slots[k], p->ealg, rc.ekey, p->ekey_len,
                                               p->aalg, rc.akey, p->akey_len),
                         IPSECIF_OK);
        rand_live[k] = true;
        rand_produce(k, p, len);
    }
    for (size_t a = 0; a < NBACKENDS; a++) {
        for (size_t b = 0; b < NBACKENDS; b++) {
            if (a == b) {
                continue;
            }
            /* The same bytes out of every backend. */
            assert_memory_equal(rc.out[a], rc.out[b], len);
            if (is_aead_alg(p->ealg)) {
                assert_memory_equal(rc.tag[a], rc.tag[b], 16);
            } else if (p->aalg != IPSECIF_AALG_NONE) {
                assert_memory_equal(rc.mac[a], rc.mac[b], dlen);
            }
            rand_consume(a, b, p, len);
        }
    }
    rand_wipe_all();
}

static void test_cross_random(void **state)
{
    static const struct algpair more[] = {
        {IPSECIF_EALG_AES_GMAC, 24, IPSECIF_AALG_NONE, 0},
        {IPSECIF_EALG_AES_CBC, 24, IPSECIF_AALG_NONE, 0},
        {IPSECIF_EALG_AES_CBC, 32, IPSECIF_AALG_HMAC_SHA1_96, 20},
        {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA1_96, 20},
        {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA2_384_192, 48},
        {IPSECIF_EALG_NULL, 0, IPSECIF_AALG_HMAC_SHA2_512_256, 64},
    };
    size_t npairs = sizeof(every_pair) / sizeof(every_pair[0]);
    size_t nmore = sizeof(more) / sizeof(more[0]);

    (void)state;
    if (NBACKENDS < 2) {
        skip();
    }
    rng_state = 0x6970736563696621ULL;
    for (size_t i = 0; i < npairs + nmore; i++) {
        const struct algpair *p = i < npairs ? &every_pair[i] : &more[i - npairs];

        size_t block = block_of(p->ealg);

        /* CBC: every whole number of blocks. intel-ipsec-mb's constant-time
         * DES runs at some 300 kB/s without AVX-512 (an hour under
         * valgrind for every length): 3DES takes every length up to 32
         * blocks, then every 13th block count. */
        print_message("ealg %u (%zu-byte key) aalg %u, lengths 0..%d step %zu\n", p->ealg,
                      p->ekey_len, p->aalg, RAND_MAX_LEN, block);
        for (size_t n = 0; n <= RAND_MAX_LEN;
             n += p->ealg == IPSECIF_EALG_3DES_CBC && n >= 32 * block ? 13 * block : block) {
            rand_one(p, n);
        }
    }
}

#if IPSECIF_TEST_IPSECMB
/*
 * intel-ipsec-mb: each thread has its own multi-buffer manager. Slots set
 * up on this thread are used on another (its manager made there on first
 * use) and must give the same bytes; then both threads again.
 */
struct mb_thread_arg {
    uint8_t *gcm_slot, *cbc_slot;
    uint8_t data[300], tag[16], mac[32];
    int rc;
};

static void mb_work(struct mb_thread_arg *t)
{
    const struct ipsecif_crypto_ops *o = &ipsecif_crypto_ipsecmb_ops;
    static const uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const uint8_t iv[16] = {0xf0, 0xe1};
    uint8_t aad[8] = {0, 0, 0, 1, 0, 0, 0, 2};

    for (size_t i = 0; i < sizeof(t->data); i++) {
        t->data[i] = (uint8_t)(i * 3);
    }
    t->rc = o->aead_seal(t->gcm_slot, nonce, 12, aad, 8, t->data, 200, t->tag, 16);
    if (t->rc == 0) {
        t->rc = o->cbc(t->cbc_slot, 1, iv, t->data + 200, 96);
    }
    if (t->rc == 0) {
        t->rc = o->mac(t->cbc_slot, t->data, sizeof(t->data), t->mac, sizeof(t->mac));
    }
}

static void *mb_thread(void *p)
{
    mb_work(p);
    return NULL;
}

static int ipsecmb_teardown(void **state)
{
    (void)state;
    ipsecif_crypto_ipsecmb_ops.wipe(slot);
    ipsecif_crypto_ipsecmb_ops.wipe(slot2);
    return all_zero(slot, sizeof(slot)) && all_zero(slot2, sizeof(slot2)) ? 0 : -1;
}

static void test_ipsecmb_threads(void **state)
{
    const struct ipsecif_crypto_ops *o = &ipsecif_crypto_ipsecmb_ops;
    struct mb_thread_arg here, there;
    uint8_t key[32];
    pthread_t th;

    (void)state;
    assert_non_null(ipsecif_crypto_ipsecmb_arch());
    print_message("intel-ipsec-mb code path: %s\n", ipsecif_crypto_ipsecmb_arch());
    memset(key, 0x2b, sizeof(key));
    assert_int_equal(o->init(slot, IPSECIF_EALG_AES_GCM16, key, 32, IPSECIF_AALG_NONE, NULL, 0), 0);
    assert_int_equal(
        o->init(slot2, IPSECIF_EALG_AES_CBC, key, 16, IPSECIF_AALG_HMAC_SHA2_256_128, key, 32), 0);
    memset(&here, 0, sizeof(here));
    memset(&there, 0, sizeof(there));
    here.gcm_slot = there.gcm_slot = slot;
    here.cbc_slot = there.cbc_slot = slot2;
    mb_work(&here);
    assert_int_equal(here.rc, 0);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(pthread_create(&th, NULL, mb_thread, &there), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(there.rc, 0);
        assert_memory_equal(there.data, here.data, sizeof(here.data));
        assert_memory_equal(there.tag, here.tag, sizeof(here.tag));
        assert_memory_equal(there.mac, here.mac, sizeof(here.mac));
    }
    o->wipe(slot2);
}
#endif

#if IPSECIF_TEST_OPENSSL
/* OpenSSL's allocations, counted through its memory hooks (installed first
 * thing in main, before OpenSSL allocates anything). */
static unsigned long ossl_allocs;
static int ossl_hooks;

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    ossl_allocs++;
    return malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    ossl_allocs++;
    return realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

/* Per packet the OpenSSL backend allocates nothing, for every algorithm,
 * in both directions, also when a packet fails authentication. */
static void test_openssl_no_alloc_per_packet(void **state)
{
    const struct ipsecif_crypto_ops *o = &ipsecif_crypto_openssl_ops;
    uint8_t key[64], nonce[12] = {9}, iv[16] = {7}, aad[8] = {1}, data[256], tag[16], mac[64];
    unsigned long before;

    (void)state;
    if (!ossl_hooks) {
        skip();
    }
    memset(key, 0x3c, sizeof(key));
    for (size_t i = 0; i < sizeof(every_pair) / sizeof(every_pair[0]); i++) {
        const struct algpair *p = &every_pair[i];
        size_t dlen = p->ealg == IPSECIF_EALG_AES_GMAC ? 0 : sizeof(data);

        print_message("ealg %u aalg %u\n", p->ealg, p->aalg);
        assert_int_equal(o->init(slot, p->ealg, key, p->ekey_len, p->aalg, key, p->akey_len), 0);
        /* The first packet may set up lazily; count from the second. */
        for (int round = 0; round < 3; round++) {
            before = ossl_allocs;
            memset(data, round, sizeof(data));
            if (p->ealg == IPSECIF_EALG_AES_GCM16 || p->ealg == IPSECIF_EALG_AES_GMAC ||
                p->ealg == IPSECIF_EALG_CHACHA20_POLY1305) {
                assert_int_equal(o->aead_seal(slot, nonce, 12, aad, 8, data, dlen, tag, 16), 0);
                assert_int_equal(o->aead_open(slot, nonce, 12, aad, 8, data, dlen, tag, 16), 0);
                tag[0] ^= 1;
                assert_int_equal(o->aead_open(slot, nonce, 12, aad, 8, data, dlen, tag, 16),
                                 IPSECIF_ERR_AUTH);
            } else {
                assert_int_equal(o->cbc(slot, 1, iv, data, sizeof(data)),
                                 p->ealg == IPSECIF_EALG_NONE ? IPSECIF_ERR_CRYPTO : 0);
                if (p->aalg != IPSECIF_AALG_NONE) {
                    assert_int_equal(o->mac(slot, data, sizeof(data), mac, 12), 0);
                }
                if (p->ealg != IPSECIF_EALG_NONE) {
                    assert_int_equal(o->cbc(slot, 0, iv, data, sizeof(data)), 0);
                }
            }
            if (round > 0) {
                assert_int_equal(ossl_allocs, before);
            }
        }
        o->wipe(slot);
    }
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ops_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aead_known_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aead_forgeries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aead_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aead_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hmac_known_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes_cbc_known_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aes_cbc_with_hmac_sha512, setup, teardown),
        cmocka_unit_test_setup_teardown(test_3des_known_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_3des_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_encryption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cbc_without_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_failures_leave_slot_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
    };
    const struct CMUnitTest cross[] = {
        cmocka_unit_test_setup_teardown(test_cross_backends, setup, cross_teardown),
        cmocka_unit_test_setup_teardown(test_cross_random, setup, rand_teardown),
#if IPSECIF_TEST_IPSECMB
        cmocka_unit_test_setup_teardown(test_ipsecmb_threads, setup, ipsecmb_teardown),
#endif
#if IPSECIF_TEST_OPENSSL
        cmocka_unit_test_setup_teardown(test_openssl_no_alloc_per_packet, setup, teardown),
#endif
    };
    int failed = 0;

#if IPSECIF_TEST_OPENSSL
    ossl_hooks = CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
#endif
    for (size_t i = 0; i < NBACKENDS; i++) {
        be = &backends[i];
        ops = be->ops;
        failed += cmocka_run_group_tests_name(be->name, tests, NULL, NULL);
    }
    ops = backends[NBACKENDS - 1].ops;
    failed += cmocka_run_group_tests_name("across backends", cross, NULL, NULL);
    return failed;
}
