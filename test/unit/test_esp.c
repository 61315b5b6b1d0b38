/*
 * ESP output and input (lib/esp/esp.c, alg.c): published known answers,
 * round trips for every algorithm, and every way a packet must be refused.
 *
 * SAs are built by hand (no context init): a zeroed struct ipsecif_sa with
 * its replay bitmap in the test, keyed through ipsecif_esp_sa_init with the
 * Mbed TLS backend, and a zeroed context that only carries the port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "ipsecif_crypto_mbedtls.h"
#include "mock_port.h"
#include "test_sa.h"
#include "test_util.h"

/* Built once per backend: test_esp on Mbed TLS, test_esp_openssl on
 * OpenSSL, test_esp_ipsecmb on intel-ipsec-mb. */
#ifndef IPSECIF_TEST_ESP_OPENSSL
#define IPSECIF_TEST_ESP_OPENSSL 0
#endif
#ifndef IPSECIF_TEST_ESP_IPSECMB
#define IPSECIF_TEST_ESP_IPSECMB 0
#endif
#if IPSECIF_TEST_ESP_OPENSSL
#include "ipsecif_crypto_openssl.h"
#define CRYPTO (&ipsecif_crypto_openssl_ops)
#elif IPSECIF_TEST_ESP_IPSECMB
#include "ipsecif_crypto_ipsecmb.h"
#define CRYPTO (&ipsecif_crypto_ipsecmb_ops)
#else
#define CRYPTO (&ipsecif_crypto_mbedtls_ops)
#endif
#define HEADROOM 64

/* ---- Fixtures ---- */

struct env {
    struct mock_port *mock;
    struct ipsecif_ctx ctx;
};

static void env_init(struct env *e)
{
    e->mock = mock_port_new();
    e->mock->port.crypto = CRYPTO;
    memset(&e->ctx, 0, sizeof(e->ctx));
    e->ctx.port = &e->mock->port;
    e->ctx.user = e->mock;
}

static void env_free(struct env *e)
{
    mock_port_free(e->mock);
    e->mock = NULL;
}

/* An SA with its own replay bitmap. */
struct alg {
    uint8_t ealg;
    uint8_t aalg;
    uint8_t ekey_len; /* salt included */
    uint8_t akey_len;
    const char *name;
};

static const struct alg algs[] = {
    {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, "null/sha1"},
    {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 32, "null/sha256"},
    {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_384_192, 0, 48, "null/sha384"},
    {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_512_256, 0, 64, "null/sha512"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_NONE, 24, 0, "3des"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 24, 20, "3des/sha1"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 24, 32, "3des/sha256"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA2_384_192, 24, 48, "3des/sha384"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 24, 64, "3des/sha512"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_NONE, 16, 0, "aes128"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_NONE, 24, 0, "aes192"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_NONE, 32, 0, "aes256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 16, 20, "aes128/sha1"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 16, 32, "aes128/sha256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_384_192, 16, 48, "aes128/sha384"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 16, 64, "aes128/sha512"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 24, 20, "aes192/sha1"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 24, 32, "aes192/sha256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_384_192, 24, 48, "aes192/sha384"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 24, 64, "aes192/sha512"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 32, 20, "aes256/sha1"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 32, 32, "aes256/sha256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_384_192, 32, 48, "aes256/sha384"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 32, 64, "aes256/sha512"},
    {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_NONE, 20, 0, "gcm128"},
    {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_NONE, 28, 0, "gcm192"},
    {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_NONE, 36, 0, "gcm256"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 20, 0, "gmac128"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 28, 0, "gmac192"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 36, 0, "gmac256"},
    {IPSECIF_EALG_CHACHA20_POLY1305, IPSECIF_AALG_NONE, 36, 0, "chacha20poly1305"},
};

static bool has_integrity(const struct alg *a)
{
    return a->aalg != IPSECIF_AALG_NONE || a->ealg == IPSECIF_EALG_AES_GCM16 ||
           a->ealg == IPSECIF_EALG_AES_GMAC || a->ealg == IPSECIF_EALG_CHACHA20_POLY1305;
}

static void tsa_make(struct tsa *t, const struct alg *a, uint8_t seed, uint32_t spi, bool esn,
                     uint32_t window)
{
    uint8_t ek[64], ak[64];

    test_key_pattern(ek, a->ekey_len, seed);
    test_key_pattern(ak, a->akey_len, (uint8_t)(seed + 0x55));
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, t, a->ealg, a->aalg, ek, a->ekey_len,
                                  ak, a->akey_len, spi, esn ? IPSECIF_SA_F_ESN : 0, window),
                     IPSECIF_OK);
}

/* What a refused packet must leave alone. */
struct rx_state {
    uint64_t top;
    struct ipsecif_sa_stats stats;
    uint32_t bits[IPSECIF_REPLAY_WORDS_MAX];
};

static void rx_save(const struct tsa *t, struct rx_state *s)
{
    s->top = t->sa->replay_top;
    s->stats = t->sa->stats;
    memcpy(s->bits, t->bits, sizeof(s->bits));
}

static void assert_window_same(const struct tsa *t, const struct rx_state *s)
{
    assert_int_equal(t->sa->replay_top, s->top);
    assert_memory_equal(t->bits, s->bits, sizeof(s->bits));
}

static void payload_pattern(uint8_t *p, size_t n, unsigned salt)
{
    size_t i;

    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + salt);
    }
}

/* Protect a payload of n bytes with tx into tb (headroom HEADROOM). */
static void make_packet(struct env *e, struct tsa *tx, struct test_buf *tb, size_t n, uint8_t nh)
{
    test_buf_init(tb, HEADROOM);
    payload_pattern(tb->mem + HEADROOM, n, (unsigned)n);
    tb->b.len = n;
    assert_int_equal(ipsecif_esp_output(&e->ctx, tx->sa, &tb->b, nh), IPSECIF_OK);
}

static void copy_packet(struct test_buf *dst, const struct test_buf *src, size_t headroom,
                        size_t len)
{
    test_buf_set(dst, headroom, src->mem + src->b.off, len);
}

/* ---- Algorithm tables and SA setup ---- */

static void test_alg_tables(void **state)
{
    static const struct {
        uint8_t id, aead, block, iv, icv, salt;
    } ew[] = {
        {IPSECIF_EALG_NULL, 0, 4, 0, 0, 0},      {IPSECIF_EALG_3DES_CBC, 0, 8, 8, 0, 0},
        {IPSECIF_EALG_AES_CBC, 0, 16, 16, 0, 0}, {IPSECIF_EALG_AES_GCM16, 1, 4, 8, 16, 4},
        {IPSECIF_EALG_AES_GMAC, 2, 4, 8, 16, 4}, {IPSECIF_EALG_CHACHA20_POLY1305, 1, 4, 8, 16, 4},
    };
    static const struct {
        uint8_t id, key, icv;
    } aw[] = {
        {IPSECIF_AALG_HMAC_SHA1_96, 20, 12},
        {IPSECIF_AALG_HMAC_SHA2_256_128, 32, 16},
        {IPSECIF_AALG_HMAC_SHA2_384_192, 48, 24},
        {IPSECIF_AALG_HMAC_SHA2_512_256, 64, 32},
    };
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(ew); i++) {
        const struct ipsecif_ealg_info *e = ipsecif_ealg_find(ew[i].id);

        assert_non_null(e);
        assert_int_equal(e->id, ew[i].id);
        assert_int_equal(e->aead, ew[i].aead);
        assert_int_equal(e->block, ew[i].block);
        assert_int_equal(e->block & (e->block - 1), 0); /* esp.c pads with a mask */
        assert_int_equal(e->iv_len, ew[i].iv);
        assert_int_equal(e->icv_len, ew[i].icv);
        assert_int_equal(e->salt_len, ew[i].salt);
    }
    for (i = 0; i < IPSECIF_ARRAY_SIZE(aw); i++) {
        const struct ipsecif_aalg_info *a = ipsecif_aalg_find(aw[i].id);

        assert_non_null(a);
        assert_int_equal(a->key_len, aw[i].key);
        assert_int_equal(a->icv_len, aw[i].icv);
    }
    assert_null(ipsecif_ealg_find(IPSECIF_EALG_NONE));
    assert_null(ipsecif_ealg_find(7));
    assert_null(ipsecif_ealg_find(255));
    assert_null(ipsecif_aalg_find(IPSECIF_AALG_NONE));
    assert_null(ipsecif_aalg_find(5));
}

static void test_keylen_ok(void **state)
{
    static const struct {
        uint8_t ealg;
        size_t ok[4];
    } e[] = {
        {IPSECIF_EALG_NULL, {0}},
        {IPSECIF_EALG_3DES_CBC, {24}},
        {IPSECIF_EALG_AES_CBC, {16, 24, 32}},
        {IPSECIF_EALG_AES_GCM16, {20, 28, 36}},
        {IPSECIF_EALG_AES_GMAC, {20, 28, 36}},
        {IPSECIF_EALG_CHACHA20_POLY1305, {36}},
        {IPSECIF_EALG_NONE, {999}},
        {9, {999}},
    };
    static const struct {
        uint8_t aalg;
        size_t ok;
    } a[] = {
        {IPSECIF_AALG_NONE, 0},
        {IPSECIF_AALG_HMAC_SHA1_96, 20},
        {IPSECIF_AALG_HMAC_SHA2_256_128, 32},
        {IPSECIF_AALG_HMAC_SHA2_384_192, 48},
        {IPSECIF_AALG_HMAC_SHA2_512_256, 64},
        {42, 999},
    };
    size_t i, j, len;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(e); i++) {
        for (len = 0; len <= 80; len++) {
            bool want = false;

            for (j = 0; j < 4; j++) {
                /* ok[] lists lengths; a zero after the first entry ends it */
                if (e[i].ok[j] == len && (j == 0 || e[i].ok[j] != 0)) {
                    want = true;
                }
            }
            if (ipsecif_ealg_keylen_ok(e[i].ealg, len) != want) {
                fail_msg("ealg %u len %zu: want %d", e[i].ealg, len, want);
            }
        }
    }
    for (i = 0; i < IPSECIF_ARRAY_SIZE(a); i++) {
        for (len = 0; len <= 80; len++) {
            assert_int_equal(ipsecif_aalg_keylen_ok(a[i].aalg, len), len == a[i].ok);
        }
    }
}

static void test_sa_init(void **state)
{
    static const struct {
        uint8_t ealg, aalg;
        size_t ekl, akl;
        int want;
    } cases[] = {
        {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_NONE, 20, 0, IPSECIF_OK},
        {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_HMAC_SHA1_96, 20, 20, IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_HMAC_SHA2_256_128, 20, 32, IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_CHACHA20_POLY1305, IPSECIF_AALG_HMAC_SHA1_96, 36, 20,
         IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_NULL, IPSECIF_AALG_NONE, 0, 0, IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, IPSECIF_ERR_UNSUPPORTED},
        {17, IPSECIF_AALG_HMAC_SHA1_96, 16, 20, IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_AES_CBC, 9, 16, 20, IPSECIF_ERR_UNSUPPORTED},
        {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_NONE, 16, 0, IPSECIF_OK},
        {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 15, 20, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 16, 19, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_NONE, 16, 4, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_AES_GCM16, IPSECIF_AALG_NONE, 16, 0, IPSECIF_ERR_KEYLEN}, /* no salt */
        {IPSECIF_EALG_CHACHA20_POLY1305, IPSECIF_AALG_NONE, 32, 0, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 16, 64, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA1_96, 4, 20, IPSECIF_ERR_KEYLEN},
        {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_384_192, 0, 48, IPSECIF_OK},
    };
    uint8_t ek[64], ak[64];
    size_t i;

    (void)state;
    test_key_pattern(ek, sizeof(ek), 1);
    test_key_pattern(ak, sizeof(ak), 2);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        struct tsa t;
        int rc = test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, &t, cases[i].ealg, cases[i].aalg, ek,
                              cases[i].ekl, ak, cases[i].akl, 0x1000, 0, 64);

        if (rc != cases[i].want) {
            fail_msg("case %zu: rc %d want %d", i, rc, cases[i].want);
        }
        if (rc != IPSECIF_OK) {
            /* Nothing key-derived is left behind. */
            static const uint8_t zero[4];

            assert_memory_equal(t.sa->salt, zero, 4);
            assert_int_equal(t.sa->ekey_len, 0);
            assert_int_equal(t.sa->icv_len, 0);
        }
        test_sa_free(CRYPTO, &t);
    }
}

static void test_sa_init_fields(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        const struct alg *a = &algs[i];
        const struct ipsecif_ealg_info *e = ipsecif_ealg_find(a->ealg);
        const struct ipsecif_aalg_info *h = ipsecif_aalg_find(a->aalg);
        uint8_t ek[64];
        struct tsa t;

        tsa_make(&t, a, 9, 0x1000, false, 64);
        test_key_pattern(ek, a->ekey_len, 9);
        assert_int_equal(t.sa->ealg, a->ealg);
        assert_int_equal(t.sa->aalg, a->aalg);
        assert_int_equal(t.sa->iv_len, e->iv_len);
        assert_int_equal(t.sa->block, e->block);
        assert_int_equal(t.sa->aead, e->aead);
        assert_int_equal(t.sa->icv_len, h != NULL ? h->icv_len : e->icv_len);
        assert_int_equal(t.sa->ekey_len, a->ekey_len);
        assert_int_equal(t.sa->akey_len, a->akey_len);
        if (e->salt_len != 0) {
            assert_memory_equal(t.sa->salt, ek + a->ekey_len - 4, 4);
        }
        ipsecif_esp_sa_wipe(CRYPTO, t.sa);
        {
            static const uint8_t zero[4];

            assert_memory_equal(t.sa->salt, zero, 4);
            assert_int_equal(t.sa->ekey_len, 0);
            assert_int_equal(t.sa->akey_len, 0);
        }
        test_sa_free(CRYPTO, &t);
    }
}

/* ---- Known answers ---- */

/*
 * Published ESP packets. The plaintext is as published: payload, padding,
 * pad length and next header. AES-GCM and AES-GMAC: draft-mcgrew-gcm-test-01
 * (the key below is key || salt, the salt being the nonce's first 4 bytes).
 * ChaCha20-Poly1305: RFC 7634 Appendix A. AES-CBC without authentication:
 * RFC 3602 section 4, cases 5 to 8.
 */
struct kat {
    const char *name;
    uint8_t ealg;
    const char *key;
    uint32_t spi;
    uint64_t seq;
    bool esn;
    const char *iv;
    const char *plain;
    const char *packet;
};

static const struct kat kats[] = {
    {"gcm-test case 1 (128-bit key, ESN)", IPSECIF_EALG_AES_GCM16,
     "4c80cdefbb5d10da906ac73c3613a634 2e443b68", 0x4321, 0x8765432100000000ULL, true,
     "4956ed7e3b244cfe",
     "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
     "00000000045f736970045f756470037369700963796265726369747902646b00"
     "0021000101020201",
     "00004321000000004956ed7e3b244cfe"
     "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
     "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
     "61bc17d768fd9732459018148f6cbe722fd04796562dfdb4"},
    {"gcm-test case 2 (128-bit key)", IPSECIF_EALG_AES_GCM16,
     "feffe9928665731c6d6a8f9467308308 cafebabe", 0xa5f8, 0x0a, false, "facedbaddecaf888",
     "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100"
     "0001000000000000037369700963796265726369747902646b00000100010001",
     "0000a5f80000000afacedbaddecaf888"
     "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c"
     "3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1"
     "83b70d3aa8bc6ee4c309e9d85a41ad4a"},
    {"gcm-test case 3 (256-bit key)", IPSECIF_EALG_AES_GCM16,
     "abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344", 0x4a2cbfe3, 0x2,
     false, "0102030405060708",
     "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
     "7002400020bf0000020405b40101040201020201",
     "4a2cbfe3000000020102030405060708"
     "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
     "748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c49"
     "15956c96"},
    {"gcm-test (192-bit key)", IPSECIF_EALG_AES_GCM16,
     "feffe9928665731c6d6a8f9467308308feffe9928665731c cafebabe", 0xa5f8, 0x0a, false,
     "facedbaddecaf888",
     "45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e"
     "501016d075680001",
     "0000a5f80000000afacedbaddecaf888"
     "a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0"
     "315b27452144cc7795457b9652037f5318027b5b4cd7a636"},
    {"gcm-test (empty payload, seq 2^32-1)", IPSECIF_EALG_AES_GCM16,
     "7d773d00c144c525ac619d18c84a3f47 d9664267", 0x335467ae, 0xffffffffULL, false,
     "43457e9182443bc6", "01020201",
     "335467aeffffffff43457e9182443bc6437f866bcb3f699fe9b0822bac961c4504bef270"},
    {"gcm-test (256-bit key, ESN 2^64-1)", IPSECIF_EALG_AES_GCM16,
     "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961 7475726e", 0x796b6963,
     0xffffffffffffffffULL, true, "333021696765746d",
     "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
     "65666768696a6b6c6d6e6f707172737401020201",
     "796b6963ffffffff333021696765746d"
     "f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a86"
     "4cd3d78ca4ae68a32b42458fb57dbe821dcc63b9d0937ba2945f669368661a32"
     "9fb4c053"},
    {"gcm-test (ESN, seq 1)", IPSECIF_EALG_AES_GCM16, "abbccddef00112233445566778899aab decaf888",
     0x100, 0x1ULL, true, "cafedebaceface74", "746f016265016f72016e6f7401746f0162650001",
     "0000010000000001cafedebaceface74"
     "29c9fc69a197d038ccdd14e2ddfcaa0543332164412503524303ed3c6c5f2838"
     "43af8c3e"},
    {"gcm-test GMAC (128-bit key)", IPSECIF_EALG_AES_GMAC,
     "4c80cdefbb5d10da906ac73c3613a634 22433c64", 0x4321, 0x7, false, "0000000000000000",
     "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
     "65666768696a6b6c6d6e6f707172737401020201",
     "00004321000000070000000000000000"
     "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
     "65666768696a6b6c6d6e6f707172737401020201f2a9a836e155106aa8dcd618"
     "e4099aaa"},
    {"RFC 7634 A (ChaCha20-Poly1305)", IPSECIF_EALG_CHACHA20_POLY1305,
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3", 0x01020304, 0x5,
     false, "1011121314151617",
     "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec10"
     "0007362708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
     "2425262728292a2b2c2d2e2f303132333435363701020204",
     "0102030400000005 1011121314151617"
     "24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c6"
     "14ee8099d52844eb61aa95dfab4c02f72aa71e7c4c4f64c9befe2facc638e8f3"
     "cbec163fac469b502773f6fb94e664da9165b82829f641e0"
     "76aaa8266b7fb0f7b11b369907e1ad43"},
    {"RFC 3602 case 5", IPSECIF_EALG_AES_CBC, "90d382b410eeba7ad938c46cec1a82bf", 0x4321, 1, false,
     "e96e8c08ab465763fd098d45dd3ff893",
     "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f1011121314151617"
     "18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637"
     "0102030405060708090a0b0c0d0e0e01",
     "0000432100000001e96e8c08ab465763fd098d45dd3ff893"
     "f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856"
     "a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a"
     "a269add047ad2d5913ac19b7cfbad4a6"},
    {"RFC 3602 case 6", IPSECIF_EALG_AES_CBC, "90d382b410eeba7ad938c46cec1a82bf", 0x4321, 8, false,
     "69d08df7d203329db093fc4924e5bd80",
     "0800b5e8a80a0500a69c083d0b660e0077777777777777777777777701020201",
     "000043210000000869d08df7d203329db093fc4924e5bd80"
     "f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75"},
    {"RFC 3602 case 7", IPSECIF_EALG_AES_CBC, "0123456789abcdef0123456789abcdef", 0x8765, 2, false,
     "f4e765244f6407adf13dc1380f673f37",
     "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d"
     "02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
     "2425262728292a2b2c2d2e2f30313233343536370102030405060708090a0a04",
     "0000876500000002f4e765244f6407adf13dc1380f673f37"
     "773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8"
     "e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5"
     "c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d"},
    {"RFC 3602 case 8", IPSECIF_EALG_AES_CBC, "0123456789abcdef0123456789abcdef", 0x8765, 5, false,
     "85d47224b5f3dd5d2101d4ea8dffab22",
     "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083d"
     "a3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
     "ffffffff0102030405060708090a0a04",
     "000087650000000585d47224b5f3dd5d2101d4ea8dffab22"
     "15b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb5"
     "0f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3"
     "d2726d9b5ef6affc6d17a0decbb13892"},
};

/* A port whose random source hands out a chosen IV (for CBC known answers). */
struct iv_port {
    struct ipsecif_port port;
    uint8_t iv[16];
    size_t iv_len;
    unsigned calls;
};

static int iv_random(void *user, uint8_t *out, size_t len)
{
    struct iv_port *p = user;

    assert_int_equal(len, p->iv_len);
    memcpy(out, p->iv, len);
    p->calls++;
    return 0;
}

static void test_known_answers(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(kats); k++) {
        const struct kat *v = &kats[k];
        uint8_t key[64], iv[16], plain[256], packet[300];
        size_t key_len = test_hex(v->key, key, sizeof(key));
        size_t iv_len = test_hex(v->iv, iv, sizeof(iv));
        size_t plain_len = test_hex(v->plain, plain, sizeof(plain));
        size_t packet_len = test_hex(v->packet, packet, sizeof(packet));
        size_t pad = plain[plain_len - 2];
        size_t payload_len = plain_len - 2 - pad;
        uint8_t nh = plain[plain_len - 1];
        uint32_t flags = v->esn ? IPSECIF_SA_F_ESN : 0;
        struct iv_port ivp;
        struct ipsecif_ctx ctx;
        struct test_buf tb;
        struct tsa tx, rx;
        uint8_t got_nh = 0;
        int rc;

        print_message("  %s\n", v->name);
        assert_true(plain_len >= pad + 2);

        /* Decrypt the published packet to the published plaintext. */
        memset(&ivp, 0, sizeof(ivp));
        ivp.port.random = iv_random;
        ivp.port.crypto = CRYPTO;
        memcpy(ivp.iv, iv, iv_len);
        ivp.iv_len = iv_len;
        memset(&ctx, 0, sizeof(ctx));
        ctx.port = &ivp.port;
        ctx.user = &ivp;
        assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, &rx, v->ealg, IPSECIF_AALG_NONE,
                                      key, key_len, NULL, 0, v->spi, flags, 64),
                         IPSECIF_OK);
        rx.sa->replay_top = v->esn ? v->seq - 1 : 0;
        test_buf_set(&tb, 16, packet, packet_len);
        rc = ipsecif_esp_input(&ctx, rx.sa, &tb.b, &got_nh);
        if (rc != IPSECIF_OK) {
            fail_msg("%s: input rc %d", v->name, rc);
        }
        assert_int_equal(tb.b.len, payload_len);
        assert_memory_equal(tb.mem + tb.b.off, plain, payload_len);
        assert_int_equal(got_nh, nh);
        assert_int_equal(rx.sa->replay_top, v->seq);
        /* The same packet again is a replay. */
        test_buf_set(&tb, 16, packet, packet_len);
        assert_int_equal(ipsecif_esp_input(&ctx, rx.sa, &tb.b, &got_nh), IPSECIF_ERR_REPLAY);
        assert_int_equal(rx.sa->stats.replay, 1);
        test_sa_free(CRYPTO, &rx);

        /* Encrypt the payload with the vector's SPI, sequence number and IV
         * to the published packet. AEAD IVs are seq XOR iv_base. */
        assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, &tx, v->ealg, IPSECIF_AALG_NONE,
                                      key, key_len, NULL, 0, v->spi, flags, 64),
                         IPSECIF_OK);
        tx.sa->seq_out = v->seq - 1;
        if (tx.sa->aead != 0) {
            tx.sa->iv_base = v->seq ^ ipsecif_load64(iv);
        }
        test_buf_set(&tb, HEADROOM, plain, payload_len);
        rc = ipsecif_esp_output(&ctx, tx.sa, &tb.b, nh);
        if (rc != IPSECIF_OK) {
            fail_msg("%s: output rc %d", v->name, rc);
        }
        assert_int_equal(tb.b.len, packet_len);
        assert_memory_equal(tb.mem + tb.b.off, packet, packet_len);
        assert_int_equal(tx.sa->seq_out, v->seq);
        assert_int_equal(ivp.calls, tx.sa->aead != 0 ? 0 : 1);
        assert_int_equal(ipsecif_esp_overhead(tx.sa, payload_len), packet_len - payload_len);
        test_sa_free(CRYPTO, &tx);
    }
}

/* The AEAD vectors again through the crypto step with two packets at
 * once, which reaches the backend's burst ops where it has them: a
 * tampered copy fails alone, the genuine packet opens to the published
 * plaintext, a second genuine copy in the same burst is a replay at the
 * check after the tag; two sealed in one burst both give the packet. */
static void test_known_answers_burst(void **state)
{
    static struct test_buf tb[2];
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(kats); k++) {
        const struct kat *v = &kats[k];
        uint8_t key[64], iv[16], plain[256], packet[300];
        size_t key_len = test_hex(v->key, key, sizeof(key));
        size_t iv_len = test_hex(v->iv, iv, sizeof(iv));
        size_t plain_len = test_hex(v->plain, plain, sizeof(plain));
        size_t packet_len = test_hex(v->packet, packet, sizeof(packet));
        size_t payload_len = plain_len - 2 - plain[plain_len - 2];
        uint8_t nh = plain[plain_len - 1];
        uint32_t flags = v->esn ? IPSECIF_SA_F_ESN : 0;
        struct ipsecif_esp_job j[2];
        struct ipsecif_esp_job *jp[2] = {&j[0], &j[1]};
        struct iv_port ivp;
        struct ipsecif_ctx ctx;
        struct tsa tx, rx;
        uint8_t got_nh = 0;
        int pass, i;

        memset(&ivp, 0, sizeof(ivp));
        ivp.port.random = iv_random;
        ivp.port.crypto = CRYPTO;
        memcpy(ivp.iv, iv, iv_len);
        ivp.iv_len = iv_len;
        memset(&ctx, 0, sizeof(ctx));
        ctx.port = &ivp.port;
        ctx.user = &ivp;
        assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, &rx, v->ealg, IPSECIF_AALG_NONE,
                                      key, key_len, NULL, 0, v->spi, flags, 64),
                         IPSECIF_OK);
        if (rx.sa->aead == IPSECIF_XFORM_CIPHER_MAC) {
            test_sa_free(CRYPTO, &rx);
            continue;
        }
        print_message("  %s\n", v->name);
        for (pass = 0; pass < 2; pass++) {
            /* Pass 0: tampered, genuine. Pass 1: genuine twice. */
            rx.sa->replay_top = v->esn ? v->seq - 1 : 0;
            memset(rx.bits, 0, sizeof(uint32_t) * 2);
            for (i = 0; i < 2; i++) {
                test_buf_set(&tb[i], 16, packet, packet_len);
                assert_int_equal(ipsecif_esp_in_prepare(rx.sa, &tb[i].b, &j[i]), IPSECIF_OK);
            }
            if (pass == 0) {
                tb[0].mem[tb[0].b.off + packet_len - 1] ^= 0x01;
            }
            ipsecif_esp_crypto(CRYPTO, rx.sa, jp, 2, false);
            assert_int_equal(ipsecif_esp_in_finish(&ctx, rx.sa, &tb[0].b, &j[0], &got_nh),
                             pass == 0 ? IPSECIF_ERR_AUTH : IPSECIF_OK);
            assert_int_equal(ipsecif_esp_in_finish(&ctx, rx.sa, &tb[1].b, &j[1], &got_nh),
                             pass == 0 ? IPSECIF_OK : IPSECIF_ERR_REPLAY);
            i = pass == 0 ? 1 : 0;
            assert_int_equal(tb[i].b.len, payload_len);
            assert_memory_equal(tb[i].mem + tb[i].b.off, plain, payload_len);
            assert_int_equal(got_nh, nh);
            assert_int_equal(rx.sa->replay_top, v->seq);
        }
        assert_int_equal(rx.sa->stats.auth, 1);
        assert_int_equal(rx.sa->stats.replay, 1);
        test_sa_free(CRYPTO, &rx);

        assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_ESP, &tx, v->ealg, IPSECIF_AALG_NONE,
                                      key, key_len, NULL, 0, v->spi, flags, 64),
                         IPSECIF_OK);
        tx.sa->iv_base = v->seq ^ ipsecif_load64(iv);
        for (i = 0; i < 2; i++) {
            test_buf_set(&tb[i], HEADROOM, plain, payload_len);
            assert_int_equal(ipsecif_esp_out_prepare(&ctx, tx.sa, &tb[i].b, nh, v->seq, &j[i]),
                             IPSECIF_OK);
        }
        ipsecif_esp_crypto(CRYPTO, tx.sa, jp, 2, true);
        for (i = 0; i < 2; i++) {
            assert_int_equal(ipsecif_esp_out_finish(tx.sa, &tb[i].b, &j[i]), IPSECIF_OK);
            assert_int_equal(tb[i].b.len, packet_len);
            assert_memory_equal(tb[i].mem + tb[i].b.off, packet, packet_len);
        }
        test_sa_free(CRYPTO, &tx);
    }
}

/* ---- Round trips ---- */

static void roundtrip_alg(struct env *e, const struct alg *a, bool esn)
{
    struct tsa tx, rx;
    struct test_buf tb;
    size_t n;

    tsa_make(&tx, a, 3, 0x2000, esn, 64);
    tsa_make(&rx, a, 3, 0x2000, esn, 64);
    if (esn) {
        /* Cross the 2^32 boundary halfway. */
        tx.sa->seq_out = 0xffffff6aULL;
        rx.sa->replay_top = 0xffffff6aULL;
    }
    for (n = 0; n <= 300; n++) {
        uint8_t nh = (n & 1) ? IPSECIF_IPPROTO_IPV4 : IPSECIF_IPPROTO_IPV6;
        uint64_t seq = tx.sa->seq_out + 1;
        uint8_t want[300];
        uint8_t got_nh = 0;
        const uint8_t *p;
        size_t hlen = 8 + tx.sa->iv_len;
        int rc;

        payload_pattern(want, n, (unsigned)n);
        make_packet(e, &tx, &tb, n, nh);
        p = tb.mem + tb.b.off;
        assert_int_equal(tb.b.off, HEADROOM - hlen);
        assert_int_equal(tb.b.len, n + ipsecif_esp_overhead(tx.sa, n));
        assert_int_equal((tb.b.len - hlen - tx.sa->icv_len) % (tx.sa->block < 4 ? 4 : tx.sa->block),
                         0);
        assert_int_equal(ipsecif_load32(p), 0x2000);
        assert_int_equal(ipsecif_load32(p + 4), (uint32_t)seq);
        assert_int_equal(tx.sa->seq_out, seq);
        if (tx.sa->aead != 0) {
            assert_int_equal(ipsecif_load64(p + 8), seq ^ tx.sa->iv_base);
        }
        if (a->ealg == IPSECIF_EALG_NULL || a->ealg == IPSECIF_EALG_AES_GMAC) {
            /* No confidentiality: the payload is on the wire as is. */
            assert_memory_equal(p + hlen, want, n);
        } else if (n >= 16) {
            assert_memory_not_equal(p + hlen, want, 16);
        }
        rc = ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &got_nh);
        if (rc != IPSECIF_OK) {
            fail_msg("%s esn %d len %zu: input rc %d", a->name, esn, n, rc);
        }
        assert_int_equal(tb.b.len, n);
        assert_int_equal(tb.b.off, HEADROOM);
        assert_memory_equal(tb.mem + tb.b.off, want, n);
        assert_int_equal(got_nh, nh);
        assert_int_equal(rx.sa->replay_top, seq);
    }
    assert_int_equal(rx.sa->stats.auth + rx.sa->stats.replay + rx.sa->stats.badpad, 0);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
}

static void test_roundtrip(void **state)
{
    struct env e;
    size_t i;

    (void)state;
    env_init(&e);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        roundtrip_alg(&e, &algs[i], false);
        roundtrip_alg(&e, &algs[i], true);
    }
    env_free(&e);
}

/* IVs: AEAD counters never repeat; CBC IVs come from the port. */
static void test_ivs(void **state)
{
    struct env e;
    struct tsa t;
    struct test_buf tb;
    uint8_t first[16];
    unsigned i;

    (void)state;
    env_init(&e);
    tsa_make(&t, &algs[24], 1, 0x3000, false, 0); /* gcm128 */
    t.sa->iv_base = 0x0123456789abcdefULL;
    for (i = 1; i <= 5; i++) {
        make_packet(&e, &t, &tb, 20, 4);
        assert_int_equal(ipsecif_load64(tb.mem + tb.b.off + 8), i ^ 0x0123456789abcdefULL);
    }
    test_sa_free(CRYPTO, &t);

    /* CBC: the IV is what the port's random source returned, fresh each time. */
    tsa_make(&t, &algs[13], 1, 0x3000, false, 0); /* aes128/sha256 */
    make_packet(&e, &t, &tb, 20, 4);
    memcpy(first, tb.mem + tb.b.off + 8, 16);
    make_packet(&e, &t, &tb, 20, 4);
    assert_memory_not_equal(first, tb.mem + tb.b.off + 8, 16);
    /* A failing random source stops output and leaves everything alone. */
    e.mock->random_fail = 1;
    test_buf_init(&tb, HEADROOM);
    payload_pattern(tb.mem + HEADROOM, 20, 1);
    tb.b.len = 20;
    {
        struct test_buf before = tb;

        assert_int_equal(ipsecif_esp_output(&e.ctx, t.sa, &tb.b, 4), IPSECIF_ERR_RANDOM);
        assert_int_equal(t.sa->seq_out, 2);
        assert_int_equal(tb.b.off, before.b.off);
        assert_int_equal(tb.b.len, before.b.len);
        assert_memory_equal(tb.mem, before.mem, sizeof(tb.mem));
    }
    test_sa_free(CRYPTO, &t);
    /* AEAD never asks for random bytes. */
    tsa_make(&t, &algs[30], 1, 0x3000, false, 0); /* chacha20poly1305 */
    make_packet(&e, &t, &tb, 20, 4);
    test_sa_free(CRYPTO, &t);
    env_free(&e);
}

/* ---- Refusals ---- */

/* The algorithms with integrity, with and without ESN. */
static void each_auth_alg(void (*fn)(struct env *, const struct alg *, bool))
{
    struct env e;
    size_t i;
    int esn;

    env_init(&e);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        if (!has_integrity(&algs[i])) {
            continue;
        }
        for (esn = 0; esn < 2; esn++) {
            fn(&e, &algs[i], esn != 0);
        }
    }
    env_free(&e);
}

/* Two SAs with the same keys: tx sends from seq, rx has seen nothing of it. */
static void pair_make(struct tsa *tx, struct tsa *rx, const struct alg *a, bool esn)
{
    tsa_make(tx, a, 5, 0x4000, esn, 64);
    tsa_make(rx, a, 5, 0x4000, esn, 64);
    if (esn) {
        tx->sa->seq_out = 0x100000010ULL;
        rx->sa->replay_top = 0x100000000ULL;
    } else {
        /* Low enough that no single bit flip of the sequence number makes
         * it look old: tampering always reaches the ICV check. */
        tx->sa->seq_out = 0x10010;
        rx->sa->replay_top = 0x10;
    }
}

static const char *region(const struct ipsecif_sa *sa, size_t i, size_t len)
{
    size_t hlen = 8 + sa->iv_len;

    if (i < 4) {
        return "spi";
    }
    if (i < 8) {
        return "seq";
    }
    if (i < hlen) {
        return "iv";
    }
    if (i >= len - sa->icv_len) {
        return "icv";
    }
    if (i >= len - sa->icv_len - 2) {
        return "trailer";
    }
    return "body";
}

static void tamper_alg(struct env *e, const struct alg *a, bool esn)
{
    struct tsa tx, rx;
    struct test_buf pkt, tb;
    size_t i, len;
    unsigned auth = 0;
    uint8_t nh;

    pair_make(&tx, &rx, a, esn);
    make_packet(e, &tx, &pkt, 45, 4);
    len = pkt.b.len;
    for (i = 0; i < len; i++) {
        static const uint8_t flips[] = {0x01, 0x80};
        size_t f;

        for (f = 0; f < sizeof(flips); f++) {
            struct rx_state before;
            int rc;

            copy_packet(&tb, &pkt, 16, len);
            tb.mem[16 + i] ^= flips[f];
            rx_save(&rx, &before);
            rc = ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh);
            if (rc != IPSECIF_ERR_AUTH) {
                fail_msg("%s esn %d: byte %zu (%s) ^ 0x%02x: rc %d", a->name, esn, i,
                         region(rx.sa, i, len), flips[f], rc);
            }
            auth++;
            assert_int_equal(rx.sa->stats.auth, auth);
            assert_int_equal(rx.sa->stats.replay, 0);
            assert_window_same(&rx, &before);
            if (a->aalg != IPSECIF_AALG_NONE || a->ealg == IPSECIF_EALG_AES_GMAC) {
                /* Bytes borrowed for seq hi are given back. */
                assert_int_equal(tb.b.off, 16);
                assert_int_equal(tb.b.len, len);
                assert_int_equal(tb.mem[16 + i], pkt.mem[pkt.b.off + i] ^ flips[f]);
                tb.mem[16 + i] ^= flips[f];
                assert_memory_equal(tb.mem + 16, pkt.mem + pkt.b.off, len);
                assert_memory_equal(tb.mem, (uint8_t[16]){0}, 16);
            }
        }
    }
    /* The untouched packet still passes. */
    copy_packet(&tb, &pkt, 16, len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);
    assert_int_equal(tb.b.len, 45);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
}

static void test_tampered(void **state)
{
    (void)state;
    each_auth_alg(tamper_alg);
}

static void truncate_alg(struct env *e, const struct alg *a, bool esn)
{
    struct tsa tx, rx;
    struct test_buf pkt;
    size_t len, n;
    size_t min;
    unsigned auth = 0;
    uint8_t nh;

    pair_make(&tx, &rx, a, esn);
    make_packet(e, &tx, &pkt, 45, 4);
    len = pkt.b.len;
    min = 8 + rx.sa->iv_len + rx.sa->icv_len + 2;
    for (n = 0; n < len; n++) {
        struct rx_state before;
        bool cbc = rx.sa->aead == 0 && rx.sa->iv_len != 0;
        int want;
        int rc;
        /* Exactly n bytes on the heap: a read past the end shows under valgrind. */
        uint8_t *mem = malloc(n + 4);
        struct ipsecif_buf b;

        assert_non_null(mem);
        memset(mem, 0, 4);
        memcpy(mem + 4, pkt.mem + pkt.b.off, n);
        b.base = mem;
        b.cap = n + 4;
        b.off = 4;
        b.len = n;
        if (n < min || (cbc && (n - 8 - rx.sa->iv_len - rx.sa->icv_len) % rx.sa->block != 0)) {
            want = IPSECIF_ERR_MALFORMED;
        } else {
            want = IPSECIF_ERR_AUTH;
            auth++;
        }
        rx_save(&rx, &before);
        rc = ipsecif_esp_input(&e->ctx, rx.sa, &b, &nh);
        if (rc != want) {
            fail_msg("%s esn %d: cut to %zu of %zu: rc %d want %d", a->name, esn, n, len, rc, want);
        }
        assert_int_equal(rx.sa->stats.auth, auth);
        assert_window_same(&rx, &before);
        free(mem);
    }
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
}

static void test_truncated(void **state)
{
    (void)state;
    each_auth_alg(truncate_alg);
}

static void wrong_sa_alg(struct env *e, const struct alg *a, bool esn)
{
    struct tsa tx, rx, other;
    struct test_buf pkt, tb;
    struct rx_state before;
    uint8_t nh;

    /* Other keys. */
    pair_make(&tx, &rx, a, esn);
    tsa_make(&other, a, 77, 0x4000, esn, 64);
    make_packet(e, &tx, &pkt, 60, 4);
    copy_packet(&tb, &pkt, 16, pkt.b.len);
    rx_save(&other, &before);
    assert_int_equal(ipsecif_esp_input(&e->ctx, other.sa, &tb.b, &nh), IPSECIF_ERR_AUTH);
    assert_int_equal(other.sa->stats.auth, 1);
    assert_window_same(&other, &before);
    test_sa_free(CRYPTO, &other);

    /* Same keys, other ESN setting: the ICV covers different bytes. */
    tsa_make(&other, a, 5, 0x4000, !esn, 64);
    other.sa->replay_top = esn ? 0 : 0x10000;
    rx_save(&other, &before);
    copy_packet(&tb, &pkt, 16, pkt.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, other.sa, &tb.b, &nh), IPSECIF_ERR_AUTH);
    assert_window_same(&other, &before);
    test_sa_free(CRYPTO, &other);

    /* ESN, same keys, but the receiver is an epoch behind: seq hi differs. */
    if (esn) {
        tsa_make(&other, a, 5, 0x4000, true, 64);
        other.sa->replay_top = 0x10;
        rx_save(&other, &before);
        copy_packet(&tb, &pkt, 16, pkt.b.len);
        assert_int_equal(ipsecif_esp_input(&e->ctx, other.sa, &tb.b, &nh), IPSECIF_ERR_AUTH);
        assert_window_same(&other, &before);
        test_sa_free(CRYPTO, &other);
    }
    /* The right SA takes it. */
    copy_packet(&tb, &pkt, 16, pkt.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
}

static void test_wrong_sa(void **state)
{
    (void)state;
    each_auth_alg(wrong_sa_alg);
}

static void replay_alg(struct env *e, const struct alg *a, bool esn)
{
    struct tsa tx, rx;
    struct test_buf p1, p2, old, tb;
    struct rx_state before;
    uint8_t nh;

    pair_make(&tx, &rx, a, esn);
    tx.sa->seq_out -= 100;
    make_packet(e, &tx, &old, 30, 4); /* 100 below the others */
    tx.sa->seq_out += 98;
    make_packet(e, &tx, &p1, 30, 4);
    make_packet(e, &tx, &p2, 31, 4);

    copy_packet(&tb, &p2, 16, p2.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);
    copy_packet(&tb, &p1, 16, p1.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);

    /* Duplicates. */
    rx_save(&rx, &before);
    copy_packet(&tb, &p2, 16, p2.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_REPLAY);
    copy_packet(&tb, &p1, 16, p1.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_REPLAY);
    /* Too old for a window of 64. With ESN, RFC 4303 A.2 takes a number
     * below the window for one of the next epoch, and the ICV refuses it. */
    copy_packet(&tb, &old, 16, old.b.len);
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh),
                     esn ? IPSECIF_ERR_AUTH : IPSECIF_ERR_REPLAY);
    /* A replay is refused before the ICV is even looked at. */
    copy_packet(&tb, &p1, 16, p1.b.len);
    tb.mem[16 + p1.b.len - 1] ^= 1;
    assert_int_equal(ipsecif_esp_input(&e->ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_REPLAY);
    assert_int_equal(rx.sa->stats.replay, esn ? 3 : 4);
    assert_int_equal(rx.sa->stats.auth, esn ? 1 : 0);
    assert_window_same(&rx, &before);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
}

static void test_replayed(void **state)
{
    (void)state;
    each_auth_alg(replay_alg);
}

/*
 * Forged padding. With NULL encryption (and with CBC, encrypting by hand)
 * the test can write any trailer and compute a valid ICV through the SA's
 * own crypto slot, so the packet is authentic and only the padding is wrong.
 */
static size_t forge(struct tsa *t, uint8_t *out, uint32_t seq, size_t payload_len,
                    const uint8_t *pad, size_t pad_n, uint8_t pad_len_field)
{
    size_t hlen = 8 + t->sa->iv_len;
    size_t body, len;
    uint8_t *b;

    ipsecif_store32(out, t->sa->spi);
    ipsecif_store32(out + 4, seq);
    memset(out + 8, 0x5a, t->sa->iv_len);
    b = out + hlen;
    payload_pattern(b, payload_len, 7);
    memcpy(b + payload_len, pad, pad_n);
    body = payload_len + pad_n + 2;
    b[payload_len + pad_n] = pad_len_field;
    b[payload_len + pad_n + 1] = 4;
    if (t->sa->iv_len != 0) {
        assert_int_equal(body % t->sa->block, 0);
        assert_int_equal(CRYPTO->cbc(t->sa->slot, 1, out + 8, b, body), 0);
    }
    len = hlen + body;
    assert_int_equal(CRYPTO->mac(t->sa->slot, out, len, out + len, t->sa->icv_len), 0);
    return len + t->sa->icv_len;
}

static void test_bad_padding(void **state)
{
    static const struct {
        size_t payload;
        uint8_t pad[20];
        size_t pad_n;
        int field; /* pad length byte; -1 = pad_n */
        int want;
        bool cbc_ok; /* the body length fits a 16-byte block */
    } cases[] = {
        {9, {1, 2, 3}, 3, -1, IPSECIF_OK, false},
        {9, {1, 3, 3}, 3, -1, IPSECIF_ERR_BADPAD, false},
        {9, {0, 0, 0}, 3, -1, IPSECIF_ERR_BADPAD, false},
        {10, {2, 3}, 2, -1, IPSECIF_ERR_BADPAD, false},
        {10, {1, 2}, 2, 200, IPSECIF_ERR_BADPAD, false}, /* longer than the body */
        {10, {1, 2}, 2, 13, IPSECIF_ERR_BADPAD, false},  /* pad + 2 = body + 1 */
        {10, {1, 2}, 2, 12, IPSECIF_ERR_BADPAD, false},  /* covers the payload */
        {0, {1, 2}, 2, -1, IPSECIF_OK, false},           /* empty payload */
        {12, {1, 2}, 2, 14, IPSECIF_ERR_BADPAD, true},   /* 16-byte body, pad 14 */
        {0, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 14, -1, IPSECIF_OK, true},
        {0, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15}, 14, -1, IPSECIF_ERR_BADPAD, true},
        {13, {1}, 1, -1, IPSECIF_OK, true},
        {13, {2}, 1, -1, IPSECIF_ERR_BADPAD, true},
        /* Bodies of 18 bytes and more: the padding is compared as words. */
        {40, {1, 2, 3}, 3, -1, IPSECIF_OK, false},
        {40, {1, 2, 4}, 3, -1, IPSECIF_ERR_BADPAD, false},
        {40, {0, 2, 3}, 3, -1, IPSECIF_ERR_BADPAD, false},
        {40, {1, 2, 3}, 3, 4, IPSECIF_ERR_BADPAD, false}, /* a payload byte as padding */
        {30, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 16, -1, IPSECIF_OK, true},
        {30,
         {2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
         16,
         -1,
         IPSECIF_ERR_BADPAD,
         true},
        {30,
         {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0},
         16,
         -1,
         IPSECIF_ERR_BADPAD,
         true},
        {40,
         {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
         17,
         -1,
         IPSECIF_OK,
         false},
        {40,
         {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16},
         17,
         -1,
         IPSECIF_ERR_BADPAD,
         false},
        {40, {0}, 0, -1, IPSECIF_OK, false},
    };
    static const struct alg null_sha = {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 32,
                                        "null/sha256"};
    static const struct alg cbc_sha = {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 16, 20,
                                       "aes128/sha1"};
    const struct alg *which[2] = {&null_sha, &cbc_sha};
    struct env e;
    size_t k, w;

    (void)state;
    env_init(&e);
    for (w = 0; w < 2; w++) {
        struct tsa rx;
        unsigned badpad = 0;

        tsa_make(&rx, which[w], 8, 0x5000, false, 64);
        for (k = 0; k < IPSECIF_ARRAY_SIZE(cases); k++) {
            uint8_t pkt[200];
            uint8_t nh = 0;
            struct test_buf tb;
            uint32_t seq = (uint32_t)(100 + k);
            size_t len;
            int rc;

            if (w == 1 && !cases[k].cbc_ok) {
                continue;
            }
            len = forge(&rx, pkt, seq, cases[k].payload, cases[k].pad, cases[k].pad_n,
                        (uint8_t)(cases[k].field < 0 ? (int)cases[k].pad_n : cases[k].field));
            test_buf_set(&tb, 16, pkt, len);
            rc = ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh);
            if (rc != cases[k].want) {
                fail_msg("%s case %zu: rc %d want %d", which[w]->name, k, rc, cases[k].want);
            }
            if (rc == IPSECIF_ERR_BADPAD) {
                badpad++;
            } else {
                uint8_t want[64];

                payload_pattern(want, cases[k].payload, 7);
                assert_int_equal(tb.b.len, cases[k].payload);
                assert_memory_equal(tb.mem + tb.b.off, want, cases[k].payload);
                assert_int_equal(nh, 4);
            }
            assert_int_equal(rx.sa->stats.badpad, badpad);
            assert_int_equal(rx.sa->stats.auth, 0);
            /* The packet was authentic: the window took it either way. */
            assert_int_equal(rx.sa->replay_top, seq);
            test_buf_set(&tb, 16, pkt, len);
            assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_REPLAY);
        }
        assert_true(badpad >= 3);
        if (w == 0) {
            /* A pad length one past the body: the bytes before the body
             * (the last of the sequence number, 0x01) would continue the
             * monotone padding 2, 3, ..., but they are not padding. */
            static const uint8_t two_to_13[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
            uint8_t pkt[200];
            uint8_t nh = 0;
            struct test_buf tb;
            size_t len = forge(&rx, pkt, 0x201, 0, two_to_13, sizeof(two_to_13), 13);

            test_buf_set(&tb, 16, pkt, len);
            assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_BADPAD);
            assert_int_equal(rx.sa->stats.badpad, badpad + 1);
        }
        test_sa_free(CRYPTO, &rx);
    }
    env_free(&e);
}

/* Headroom or tailroom one byte short: refused, nothing changed. */
static void test_noroom(void **state)
{
    struct env e;
    size_t i;
    int esn;

    (void)state;
    env_init(&e);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        for (esn = 0; esn < 2; esn++) {
            const struct alg *a = &algs[i];
            struct tsa t;
            size_t hlen, tail, n = 33;
            bool gmac_esn;
            int side;

            tsa_make(&t, a, 2, 0x6000, esn != 0, 64);
            t.sa->seq_out = 41;
            hlen = 8 + t.sa->iv_len;
            tail = ipsecif_esp_overhead(t.sa, n) - hlen;
            gmac_esn = a->ealg == IPSECIF_EALG_AES_GMAC && esn;
            for (side = 0; side < 2; side++) {
                struct test_buf tb, before;
                size_t head = hlen + (gmac_esn ? 4 : 0) - (side == 0 ? 1 : 0);

                memset(&tb, 0, sizeof(tb));
                tb.b.base = tb.mem;
                tb.b.off = head;
                tb.b.len = n;
                tb.b.cap = head + n + tail - (side == 1 ? 1 : 0);
                memset(tb.mem, 0xaa, sizeof(tb.mem));
                payload_pattern(tb.mem + head, n, 3);
                before = tb;
                assert_int_equal(ipsecif_esp_output(&e.ctx, t.sa, &tb.b, 4), IPSECIF_ERR_NOROOM);
                assert_int_equal(tb.b.off, before.b.off);
                assert_int_equal(tb.b.len, before.b.len);
                assert_memory_equal(tb.mem, before.mem, sizeof(tb.mem));
                assert_int_equal(t.sa->seq_out, 41);

                /* With the missing byte it works, and borrowed headroom is restored. */
                if (side == 0) {
                    tb.b.off++;
                    memmove(tb.mem + tb.b.off, before.mem + before.b.off, n);
                    tb.b.cap++;
                } else {
                    tb.b.cap++;
                }
                assert_int_equal(ipsecif_esp_output(&e.ctx, t.sa, &tb.b, 4), IPSECIF_OK);
                assert_int_equal(tb.b.off, gmac_esn ? 4 : 0);
                assert_int_equal(tb.b.off + tb.b.len, tb.b.cap);
                if (gmac_esn) {
                    static const uint8_t aa[4] = {0xaa, 0xaa, 0xaa, 0xaa};

                    assert_memory_equal(tb.mem, aa, 4);
                }
                t.sa->seq_out = 41;
            }
            test_sa_free(CRYPTO, &t);
        }
    }
    env_free(&e);
}

/* GMAC with ESN needs 4 bytes before the ESP header on input as well. */
static void test_gmac_esn_input_headroom(void **state)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf pkt, tb, before;
    uint8_t nh;

    (void)state;
    env_init(&e);
    pair_make(&tx, &rx, &algs[27], true); /* gmac128 */
    make_packet(&e, &tx, &pkt, 50, 4);
    copy_packet(&tb, &pkt, 0, pkt.b.len);
    before = tb;
    assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_NOROOM);
    assert_int_equal(tb.b.off, 0);
    assert_memory_equal(tb.mem, before.mem, sizeof(tb.mem));
    assert_int_equal(rx.sa->replay_top, 0x100000000ULL);

    copy_packet(&tb, &pkt, 4, pkt.b.len);
    memset(tb.mem, 0xbb, 4);
    assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);
    assert_int_equal(tb.mem[0] & tb.mem[1] & tb.mem[2] & tb.mem[3], 0xbb);
    assert_int_equal(tb.mem[0] | tb.mem[1] | tb.mem[2] | tb.mem[3], 0xbb);
    assert_int_equal(tb.b.len, 50);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

static void test_seqwrap(void **state)
{
    struct env e;
    struct tsa t;
    struct test_buf tb, before;

    (void)state;
    env_init(&e);
    /* Without ESN the last number is 2^32 - 1. */
    tsa_make(&t, &algs[24], 1, 0x7000, false, 0);
    t.sa->seq_out = 0xfffffffeULL;
    make_packet(&e, &t, &tb, 10, 4);
    assert_int_equal(ipsecif_load32(tb.mem + tb.b.off + 4), 0xffffffffu);
    test_buf_init(&tb, HEADROOM);
    tb.b.len = 10;
    before = tb;
    assert_int_equal(ipsecif_esp_output(&e.ctx, t.sa, &tb.b, 4), IPSECIF_ERR_SEQWRAP);
    assert_int_equal(t.sa->seq_out, 0xffffffffULL);
    assert_int_equal(tb.b.off, before.b.off);
    assert_int_equal(tb.b.len, before.b.len);
    assert_memory_equal(tb.mem, before.mem, sizeof(tb.mem));
    test_sa_free(CRYPTO, &t);

    /* With ESN the number goes on past 2^32 (the wire shows the low half)... */
    tsa_make(&t, &algs[1], 1, 0x7000, true, 0);
    t.sa->seq_out = 0xffffffffULL;
    make_packet(&e, &t, &tb, 10, 4);
    assert_int_equal(ipsecif_load32(tb.mem + tb.b.off + 4), 0);
    assert_int_equal(t.sa->seq_out, 0x100000000ULL);
    /* ...up to 2^64 - 1. */
    t.sa->seq_out = UINT64_MAX - 1;
    make_packet(&e, &t, &tb, 10, 4);
    assert_int_equal(t.sa->seq_out, UINT64_MAX);
    test_buf_init(&tb, HEADROOM);
    tb.b.len = 10;
    assert_int_equal(ipsecif_esp_output(&e.ctx, t.sa, &tb.b, 4), IPSECIF_ERR_SEQWRAP);
    assert_int_equal(t.sa->seq_out, UINT64_MAX);
    test_sa_free(CRYPTO, &t);
    env_free(&e);
}

/* CBC ciphertext that is not a whole number of blocks is malformed. */
static void test_cbc_misaligned(void **state)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf pkt, tb;
    uint8_t nh;
    size_t n;

    (void)state;
    env_init(&e);
    tsa_make(&tx, &algs[9], 5, 0x4000, false, 64); /* aes128, no integrity */
    tsa_make(&rx, &algs[9], 5, 0x4000, false, 64);
    make_packet(&e, &tx, &pkt, 30, 4);
    for (n = 1; n < 16; n++) {
        copy_packet(&tb, &pkt, 16, pkt.b.len - n);
        assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_ERR_MALFORMED);
    }
    assert_int_equal(rx.sa->replay_top, 0);
    copy_packet(&tb, &pkt, 16, pkt.b.len);
    assert_int_equal(ipsecif_esp_input(&e.ctx, rx.sa, &tb.b, &nh), IPSECIF_OK);
    assert_int_equal(tb.b.len, 30);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_tables),
        cmocka_unit_test(test_keylen_ok),
        cmocka_unit_test(test_sa_init),
        cmocka_unit_test(test_sa_init_fields),
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_known_answers_burst),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_ivs),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_wrong_sa),
        cmocka_unit_test(test_replayed),
        cmocka_unit_test(test_bad_padding),
        cmocka_unit_test(test_noroom),
        cmocka_unit_test(test_gmac_esn_input_headroom),
        cmocka_unit_test(test_seqwrap),
        cmocka_unit_test(test_cbc_misaligned),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
