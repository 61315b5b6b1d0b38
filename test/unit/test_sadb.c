/* SADB: add, update, getspi, delete, flush, walk; failures leave the context
 * untouched; hashed lookups; outbound preference; lifetimes and the timer;
 * keys wiped when an SA goes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

#define T0 1000u /* test_ctx_new() initializes at this time */

static const uint8_t gcm_key[20] = {0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a,
                                    0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0xca, 0xfe, 0xba, 0xbe};
static const uint8_t cbc_key[16] = {0x5a, 0xa5, 0x3c, 0xc3, 0x96, 0x69, 0x0f, 0xf0,
                                    0x71, 0x17, 0x2e, 0xe2, 0x4d, 0xd4, 0x8b, 0xb8};
static const uint8_t hmac_key[32] = {
    0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0,
    0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf0};

static struct ipsecif_sa_params gcm(const char *src, const char *dst, uint32_t spi)
{
    struct ipsecif_sa_params p;

    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.aalg = IPSECIF_AALG_NONE;
    p.spi = spi;
    p.src = test_addr(src);
    p.dst = test_addr(dst);
    p.ekey = gcm_key;
    p.ekey_len = sizeof(gcm_key);
    return p;
}

static struct ipsecif_sa_params cbc(const char *src, const char *dst, uint32_t spi)
{
    struct ipsecif_sa_params p = gcm(src, dst, spi);

    p.ealg = IPSECIF_EALG_AES_CBC;
    p.ekey = cbc_key;
    p.ekey_len = sizeof(cbc_key);
    p.aalg = IPSECIF_AALG_HMAC_SHA2_256_128;
    p.akey = hmac_key;
    p.akey_len = sizeof(hmac_key);
    return p;
}

static void new_ctx(struct test_ctx *t, uint32_t max_sas)
{
    struct ipsecif_config cfg;

    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 2;
    cfg.max_policies = 8;
    cfg.max_sas = max_sas;
    test_ctx_new(t, &cfg);
}

static struct ipsecif_sa *lookup(struct test_ctx *t, const char *dst, uint32_t spi)
{
    struct ipsecif_addr d = test_addr(dst);

    return ipsecif_sadb_lookup_spi(t->ctx, IPSECIF_IPPROTO_ESP, &d, spi);
}

static struct ipsecif_sa *add(struct test_ctx *t, const struct ipsecif_sa_params *p, uint64_t now)
{
    struct ipsecif_sa *sa;

    assert_int_equal(ipsecif_sa_add(t->ctx, p, now), IPSECIF_OK);
    sa = ipsecif_sadb_lookup_spi(t->ctx, p->proto, &p->dst, p->spi);
    assert_non_null(sa);
    return sa;
}

/* A free slot is all zero but for the pointer to its own replay bitmap slice,
 * and that slice is zero too. */
static void assert_slot_free(struct test_ctx *t, uint32_t idx)
{
    struct ipsecif_sa *sa = &t->ctx->sadb.tab[idx];
    struct ipsecif_sa *zero = calloc(1, sizeof(*zero));
    uint32_t w;

    assert_non_null(zero);
    zero->replay_bits = t->ctx->sadb.replay_area + (size_t)idx * t->ctx->sadb.replay_words;
    assert_false(sa->in_use);
    assert_ptr_equal(sa->replay_bits, zero->replay_bits);
    assert_memory_equal(sa, zero, sizeof(*sa));
    for (w = 0; w < t->ctx->sadb.replay_words; w++) {
        assert_int_equal(sa->replay_bits[w], 0);
    }
    free(zero);
}

static bool mem_contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    size_t i;

    for (i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

/* A copy of the whole context memory, to prove a failed call changed nothing. */
static uint8_t *snapshot(const struct test_ctx *t)
{
    uint8_t *s = malloc(t->mem_len);

    assert_non_null(s);
    memcpy(s, t->mem + TEST_GUARD, t->mem_len);
    return s;
}

static void assert_unchanged(const struct test_ctx *t, uint8_t *snap)
{
    assert_memory_equal(t->mem + TEST_GUARD, snap, t->mem_len);
    free(snap);
}

/* ---- Memory layout ---- */

static void test_layout(void **state)
{
    struct ipsecif_config cfg;
    struct test_ctx t;
    size_t small;
    size_t big;
    uint32_t i;

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_sas = 8;
    cfg.replay_window_max = 64;
    small = ipsecif_sadb_mem_size(&cfg);
    cfg.max_sas = 16;
    big = ipsecif_sadb_mem_size(&cfg);
    assert_true(big >= small + 8 * sizeof(struct ipsecif_sa));
    cfg.replay_window_max = 128;
    assert_int_equal(ipsecif_sadb_mem_size(&cfg), big + 16 * 2 * sizeof(uint32_t));
    /* 0 means the compile-time maximum. */
    cfg.replay_window_max = 0;
    assert_int_equal(ipsecif_sadb_mem_size(&cfg),
                     big + 16 * (IPSECIF_REPLAY_WORDS_MAX - 2) * sizeof(uint32_t));
    cfg.replay_window_max = 33;
    assert_int_equal(ipsecif_sadb_mem_size(&cfg), 0);

    cfg.replay_window_max = 256;
    cfg.max_sas = 5;
    cfg.max_interfaces = 1;
    cfg.max_policies = 4;
    test_ctx_new(&t, &cfg);
    assert_int_equal(t.ctx->sadb.replay_words, 256 / 32);
    assert_int_equal(t.ctx->sadb.n, 0);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), UINT64_MAX);
    for (i = 0; i < 5; i++) {
        uint8_t *slot = t.ctx->sadb.tab[i].slot;
        const uint8_t *bits = (const uint8_t *)t.ctx->sadb.tab[i].replay_bits;

        assert_int_equal((uintptr_t)slot % 16, 0);
        assert_true(bits >= t.mem + TEST_GUARD);
        assert_true(bits + 256 / 8 <= t.mem + TEST_GUARD + t.mem_len);
        if (i > 0) {
            assert_ptr_equal(t.ctx->sadb.tab[i].replay_bits,
                             t.ctx->sadb.tab[i - 1].replay_bits + 8);
        }
        assert_slot_free(&t, i);
    }
    test_ctx_free(&t);
}

/* ---- Add, get, delete ---- */

static void test_add_get_delete(void **state)
{
    struct ipsecif_sa_params p = cbc("192.0.2.1", "192.0.2.2", 0x1234);
    struct ipsecif_addr other = test_addr("192.0.2.9");
    struct ipsecif_sa_info info;
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    p.reqid = 77;
    p.replay_window = 64;
    p.mode = IPSECIF_MODE_TUNNEL;
    p.flags = IPSECIF_SA_F_ESN;
    p.seq = 9;
    p.soft.bytes = 1000000;
    p.hard.addtime = 3600;
    sa = add(&t, &p, 5000);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);
    assert_int_equal(sa->state, IPSECIF_SA_MATURE);
    assert_int_equal(sa->icv_len, 16);
    assert_int_equal(sa->iv_len, 16);
    assert_int_equal(sa->gen, t.ctx->sadb.gen);

    memset(&info, 0xee, sizeof(info));
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, &p.src, &p.dst, 0x1234, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.proto, IPSECIF_IPPROTO_ESP);
    assert_int_equal(info.params.mode, IPSECIF_MODE_TUNNEL);
    assert_int_equal(info.params.ealg, IPSECIF_EALG_AES_CBC);
    assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA2_256_128);
    assert_int_equal(info.params.spi, 0x1234);
    assert_memory_equal(&info.params.src, &p.src, sizeof(p.src));
    assert_memory_equal(&info.params.dst, &p.dst, sizeof(p.dst));
    assert_int_equal(info.params.reqid, 77);
    assert_int_equal(info.params.replay_window, 64);
    assert_int_equal(info.params.flags, IPSECIF_SA_F_ESN);
    assert_int_equal(info.params.seq, 9);
    assert_null(info.params.ekey);
    assert_null(info.params.akey);
    assert_int_equal(info.params.ekey_len, sizeof(cbc_key));
    assert_int_equal(info.params.akey_len, sizeof(hmac_key));
    assert_int_equal(info.params.soft.bytes, 1000000);
    assert_int_equal(info.params.hard.addtime, 3600);
    assert_int_equal(info.state, IPSECIF_SA_MATURE);
    assert_int_equal(info.current.addtime, 5000);
    assert_int_equal(info.current.usetime, 0);
    assert_int_equal(info.current.bytes, 0);
    assert_int_equal(info.current.allocations, 0);
    assert_int_equal(info.seq_out, 0);
    assert_int_equal(info.seq_in_top, 0);

    /* Source NULL matches any; a wrong source matches nothing. */
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &p.dst, 0x1234, &info),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, &other, &p.dst, 0x1234, &info),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &other, 0x1234, &info),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &p.dst, 0x1235, &info),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_AH, NULL, &p.dst, 0x1234, &info),
                     IPSECIF_ERR_NOENT);

    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, &other, &p.dst, 0x1234),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, &p.src, &p.dst, 0x1234),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_null(lookup(&t, "192.0.2.2", 0x1234));
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &p.dst, 0x1234, &info),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &p.dst, 0x1234),
                     IPSECIF_ERR_NOENT);
    /* Deleting sends no EXPIRE: that is the caller's business. */
    assert_int_equal(t.mock->n_events, 0);
    test_ctx_free(&t);
}

static void test_add_ipv6_and_duplicates(void **state)
{
    struct ipsecif_sa_params p = gcm("2001:db8::1", "2001:db8::2", 0x5000);
    struct ipsecif_sa_params q;
    struct test_ctx t;
    uint8_t *snap;

    (void)state;
    new_ctx(&t, 8);
    add(&t, &p, T0);

    /* Same (proto, dst, spi) from another source, with other keys: EXIST. */
    q = cbc("2001:db8::7", "2001:db8::2", 0x5000);
    snap = snapshot(&t);
    assert_int_equal(ipsecif_sa_add(t.ctx, &q, T0), IPSECIF_ERR_EXIST);
    assert_unchanged(&t, snap);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);

    /* The same SPI towards another destination is another SA. */
    q = gcm("2001:db8::1", "2001:db8::3", 0x5000);
    add(&t, &q, T0);
    q = gcm("192.0.2.1", "192.0.2.2", 0x5000);
    add(&t, &q, T0);
    assert_int_equal(ipsecif_sa_count(t.ctx), 3);
    assert_ptr_not_equal(lookup(&t, "2001:db8::2", 0x5000), lookup(&t, "2001:db8::3", 0x5000));
    assert_null(lookup(&t, "2001:db8::4", 0x5000));
    test_ctx_free(&t);
}

/* ---- Rejected parameters ---- */

/* AH takes no encryption algorithm: ESP's AES-GCM parameters do not fit. */
static void bad_proto_ah(struct ipsecif_sa_params *p)
{
    p->proto = IPSECIF_IPPROTO_AH;
}
static void bad_proto_udp(struct ipsecif_sa_params *p)
{
    p->proto = IPSECIF_IPPROTO_UDP;
}
static void bad_family_mix(struct ipsecif_sa_params *p)
{
    p->src = test_addr("2001:db8::1");
}
static void bad_family_unspec(struct ipsecif_sa_params *p)
{
    memset(&p->src, 0, sizeof(p->src));
    memset(&p->dst, 0, sizeof(p->dst));
}
static void bad_family_value(struct ipsecif_sa_params *p)
{
    p->src.family = 5;
    p->dst.family = 5;
}
static void bad_src_zero(struct ipsecif_sa_params *p)
{
    p->src = test_addr("0.0.0.0");
}
static void bad_dst_zero(struct ipsecif_sa_params *p)
{
    p->dst = test_addr("0.0.0.0");
}
static void bad_dst6_zero(struct ipsecif_sa_params *p)
{
    p->src = test_addr("2001:db8::1");
    p->dst = test_addr("::");
}
static void bad_spi_255(struct ipsecif_sa_params *p)
{
    p->spi = 255;
}
static void bad_spi_0(struct ipsecif_sa_params *p)
{
    p->spi = 0;
}
static void bad_mode(struct ipsecif_sa_params *p)
{
    p->mode = 3;
}
static void bad_flags(struct ipsecif_sa_params *p)
{
    p->flags = 0x2;
}
static void bad_replay(struct ipsecif_sa_params *p)
{
    p->replay_window = 1024 + 1;
}
static void bad_natt_half(struct ipsecif_sa_params *p)
{
    p->natt_sport = 4500;
}
static void bad_natt_half2(struct ipsecif_sa_params *p)
{
    p->natt_dport = 4500;
}
static void bad_ealg(struct ipsecif_sa_params *p)
{
    p->ealg = 99;
}
static void bad_aalg(struct ipsecif_sa_params *p)
{
    p->aalg = 99;
}
static void bad_ekey_len(struct ipsecif_sa_params *p)
{
    p->ekey_len = 19;
}
static void bad_ekey_huge(struct ipsecif_sa_params *p)
{
    p->ekey_len = 300;
}
static void bad_akey_len(struct ipsecif_sa_params *p)
{
    p->akey_len = 20;
}
static void bad_ekey_null(struct ipsecif_sa_params *p)
{
    p->ekey = NULL;
}
static void bad_akey_null(struct ipsecif_sa_params *p)
{
    p->akey = NULL;
}

static void test_add_rejects(void **state)
{
    static const struct {
        const char *what;
        bool use_cbc;
        void (*mutate)(struct ipsecif_sa_params *p);
        int rc;
    } cases[] = {
        {"proto AH with ESP algorithms", false, bad_proto_ah, IPSECIF_ERR_UNSUPPORTED},
        {"proto UDP", false, bad_proto_udp, IPSECIF_ERR_UNSUPPORTED},
        {"families differ", false, bad_family_mix, IPSECIF_ERR_ARG},
        {"no family", false, bad_family_unspec, IPSECIF_ERR_ARG},
        {"unknown family", false, bad_family_value, IPSECIF_ERR_ARG},
        {"src unspecified", false, bad_src_zero, IPSECIF_ERR_ARG},
        {"dst unspecified", false, bad_dst_zero, IPSECIF_ERR_ARG},
        {"dst6 unspecified", false, bad_dst6_zero, IPSECIF_ERR_ARG},
        {"spi 255", false, bad_spi_255, IPSECIF_ERR_ARG},
        {"spi 0", false, bad_spi_0, IPSECIF_ERR_ARG},
        {"mode 3", false, bad_mode, IPSECIF_ERR_ARG},
        {"unknown flag", false, bad_flags, IPSECIF_ERR_ARG},
        {"replay window", false, bad_replay, IPSECIF_ERR_RANGE},
        {"natt sport only", false, bad_natt_half, IPSECIF_ERR_ARG},
        {"natt dport only", false, bad_natt_half2, IPSECIF_ERR_ARG},
        {"ealg", false, bad_ealg, IPSECIF_ERR_UNSUPPORTED},
        {"aalg", true, bad_aalg, IPSECIF_ERR_UNSUPPORTED},
        {"ekey length", false, bad_ekey_len, IPSECIF_ERR_KEYLEN},
        {"ekey too long", false, bad_ekey_huge, IPSECIF_ERR_KEYLEN},
        {"akey length", true, bad_akey_len, IPSECIF_ERR_KEYLEN},
        {"ekey NULL", false, bad_ekey_null, IPSECIF_ERR_ARG},
        {"akey NULL", true, bad_akey_null, IPSECIF_ERR_ARG},
    };
    struct test_ctx t;
    size_t i;

    (void)state;
    new_ctx(&t, 4);
    /* One SA already there, so "unchanged" covers a non-empty SADB. */
    {
        struct ipsecif_sa_params ok = gcm("198.51.100.1", "198.51.100.2", 0x999);

        add(&t, &ok, T0);
    }
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        struct ipsecif_sa_params p = cases[i].use_cbc ? cbc("192.0.2.1", "192.0.2.2", 0x4242)
                                                      : gcm("192.0.2.1", "192.0.2.2", 0x4242);
        uint8_t *snap;
        int rc;

        cases[i].mutate(&p);
        snap = snapshot(&t);
        rc = ipsecif_sa_add(t.ctx, &p, T0);
        if (rc != cases[i].rc) {
            fail_msg("case %s: got %d, want %d", cases[i].what, rc, cases[i].rc);
        }
        assert_unchanged(&t, snap);
        assert_int_equal(ipsecif_sa_count(t.ctx), 1);
        /* The slot a failed add tried is wiped (keys never stay behind). */
        assert_slot_free(&t, 1);
    }
    assert_int_equal(ipsecif_sa_add(NULL, NULL, T0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_add(t.ctx, NULL, T0), IPSECIF_ERR_ARG);
    test_ctx_free(&t);
}

static void test_replay_window_rounding(void **state)
{
    static const struct {
        uint32_t asked;
        uint32_t kept;
    } cases[] = {{0, 0}, {1, 32}, {31, 32}, {32, 32}, {33, 64}, {1000, 1024}, {1024, 1024}};
    struct test_ctx t;
    size_t i;

    (void)state;
    new_ctx(&t, 16);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x100 + (uint32_t)i);
        struct ipsecif_sa *sa;

        p.replay_window = cases[i].asked;
        sa = add(&t, &p, T0);
        assert_int_equal(sa->replay_window, cases[i].kept);
    }
    test_ctx_free(&t);
}

static void test_full(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_sa_params p;
    struct test_ctx t;
    uint32_t spi = 0;
    uint32_t i;
    uint8_t *snap;

    (void)state;
    new_ctx(&t, 4);
    for (i = 0; i < 4; i++) {
        p = gcm("192.0.2.1", "192.0.2.2", 0x1000 + i);
        add(&t, &p, T0);
    }
    p = gcm("192.0.2.1", "192.0.2.2", 0x2000);
    snap = snapshot(&t);
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, T0), IPSECIF_ERR_FULL);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 0xffffffffu, 1, T0, &spi),
                     IPSECIF_ERR_FULL);
    assert_unchanged(&t, snap);
    assert_int_equal(ipsecif_sa_count(t.ctx), 4);
    /* Existence is reported before fullness. */
    p.spi = 0x1001;
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, T0), IPSECIF_ERR_EXIST);

    /* A freed slot is reused. */
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x1002), IPSECIF_OK);
    p.spi = 0x2000;
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sa_count(t.ctx), 4);
    assert_non_null(lookup(&t, "192.0.2.2", 0x1000));
    assert_non_null(lookup(&t, "192.0.2.2", 0x1001));
    assert_null(lookup(&t, "192.0.2.2", 0x1002));
    assert_non_null(lookup(&t, "192.0.2.2", 0x1003));
    test_ctx_free(&t);
}

/* ---- Flush, walk ---- */

struct walk_rec {
    unsigned n;
    unsigned stop_at; /* return 42 on this visit (1-based), 0 = never */
    uint32_t spis[16];
    uint8_t states[16];
};

static int walk_cb(void *arg, const struct ipsecif_sa_info *sa)
{
    struct walk_rec *r = arg;

    assert_null(sa->params.ekey);
    assert_null(sa->params.akey);
    if (r->n < 16) {
        r->spis[r->n] = sa->params.spi;
        r->states[r->n] = sa->state;
    }
    r->n++;
    return r->n == r->stop_at ? 42 : 0;
}

static void test_walk_flush(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_sa_params p;
    struct walk_rec r;
    struct test_ctx t;
    uint32_t larval = 0;
    uint32_t i;

    (void)state;
    new_ctx(&t, 8);
    memset(&r, 0, sizeof(r));
    assert_int_equal(ipsecif_sa_walk(t.ctx, 0, walk_cb, &r), 0);
    assert_int_equal(r.n, 0);

    for (i = 0; i < 3; i++) {
        p = gcm("192.0.2.1", "192.0.2.2", 0x300 + i);
        add(&t, &p, T0 + i);
    }
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0x400, 0x4ff, 1, T0, &larval),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x301), IPSECIF_OK);
    p = gcm("192.0.2.1", "192.0.2.2", 0x310);
    add(&t, &p, T0 + 10);

    memset(&r, 0, sizeof(r));
    assert_int_equal(ipsecif_sa_walk(t.ctx, 0, walk_cb, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.spis[0], 0x300);
    assert_int_equal(r.spis[1], 0x302);
    assert_int_equal(r.spis[2], larval);
    assert_int_equal(r.states[2], IPSECIF_SA_LARVAL);
    assert_int_equal(r.spis[3], 0x310);

    /* A larval SA that matures is the newest: it moves to the end. */
    p = gcm("192.0.2.1", "192.0.2.2", larval);
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 20), IPSECIF_OK);
    memset(&r, 0, sizeof(r));
    assert_int_equal(ipsecif_sa_walk(t.ctx, IPSECIF_IPPROTO_ESP, walk_cb, &r), 0);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.spis[2], 0x310);
    assert_int_equal(r.spis[3], larval);
    assert_int_equal(r.states[3], IPSECIF_SA_MATURE);

    /* The callback's nonzero value stops the walk and comes back. */
    memset(&r, 0, sizeof(r));
    r.stop_at = 2;
    assert_int_equal(ipsecif_sa_walk(t.ctx, 0, walk_cb, &r), 42);
    assert_int_equal(r.n, 2);

    /* Protocol filter. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(ipsecif_sa_walk(t.ctx, IPSECIF_IPPROTO_AH, walk_cb, &r), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(ipsecif_sa_walk(t.ctx, 0, NULL, &r), IPSECIF_ERR_ARG);

    assert_int_equal(ipsecif_sa_flush(t.ctx, IPSECIF_IPPROTO_AH), 0);
    assert_int_equal(ipsecif_sa_count(t.ctx), 4);
    assert_int_equal(ipsecif_sa_flush(t.ctx, IPSECIF_IPPROTO_ESP), 4);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_int_equal(ipsecif_sa_flush(t.ctx, 0), 0);
    for (i = 0; i < 8; i++) {
        assert_slot_free(&t, i);
    }
    assert_null(t.ctx->sadb.age_head);
    assert_null(t.ctx->sadb.age_tail);
    for (i = 0; i <= t.ctx->sadb.hash_mask; i++) {
        assert_null(t.ctx->sadb.spi_hash[i]);
        assert_null(t.ctx->sadb.pair_hash[i]);
        assert_null(t.ctx->sadb.reqid_hash[i]);
    }
    /* Everything works again afterwards. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x300);
    add(&t, &p, T0);
    p.reqid = 3;
    p.spi = 0x301;
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sa_flush(t.ctx, 0), 2);
    test_ctx_free(&t);
}

/* ---- GETSPI, larval SAs, UPDATE ---- */

static void test_getspi_range(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_addr dst2 = test_addr("192.0.2.3");
    struct ipsecif_sa_params p;
    struct test_ctx t;
    bool seen[10] = {false};
    uint32_t spi;
    uint32_t i;
    uint8_t *snap;

    (void)state;
    new_ctx(&t, 32);
    /* Ten SPIs in a range of ten: all distinct, then the range is exhausted. */
    for (i = 0; i < 10; i++) {
        struct ipsecif_sa *sa;

        spi = 0;
        assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                           IPSECIF_MODE_TRANSPORT, 5, 1000, 1009, 77, T0, &spi),
                         IPSECIF_OK);
        assert_in_range(spi, 1000, 1009);
        assert_false(seen[spi - 1000]);
        seen[spi - 1000] = true;
        sa = lookup(&t, "192.0.2.2", spi);
        assert_non_null(sa);
        assert_int_equal(sa->state, IPSECIF_SA_LARVAL);
        assert_int_equal(sa->reqid, 5);
        assert_int_equal(sa->seq, 77);
        assert_int_equal(sa->mode, IPSECIF_MODE_TRANSPORT);
        assert_int_equal(sa->ealg, IPSECIF_EALG_NONE);
        assert_int_equal(sa->ekey_len, 0);
    }
    snap = snapshot(&t);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 5, 1000, 1009, 77, T0, &spi),
                     IPSECIF_ERR_EXIST);
    assert_unchanged(&t, snap);
    assert_int_equal(ipsecif_sa_count(t.ctx), 10);
    /* Another destination has its own SPI space. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst2,
                                       IPSECIF_MODE_TRANSPORT, 5, 1000, 1000, 77, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 1000);

    /* A range of one. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst, IPSECIF_MODE_TUNNEL,
                                       0, 5000, 5000, 1, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 5000);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst, IPSECIF_MODE_TUNNEL,
                                       0, 5000, 5000, 1, T0, &spi),
                     IPSECIF_ERR_EXIST);

    /* SPIs of mature SAs are avoided too. */
    p = gcm("192.0.2.1", "192.0.2.2", 7000);
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 7000, 7001, 1, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 7001);

    /* Values under 256 are raised to 256. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0, 256, 1, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 256);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0, 256, 1, T0, &spi),
                     IPSECIF_ERR_EXIST);
    /* The whole 32-bit space works (no overflow in the span). */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0, 0xffffffffu, 1, T0, &spi),
                     IPSECIF_OK);
    assert_true(spi >= 256);

    /* Bad arguments, each leaving everything as it was. */
    snap = snapshot(&t);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0, 255, 1, T0, &spi),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 9000, 8000, 1, T0, &spi),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_UDP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 9000, 1, T0, &spi),
                     IPSECIF_ERR_UNSUPPORTED);
    assert_int_equal(
        ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst, 3, 0, 256, 9000, 1, T0, &spi),
        IPSECIF_ERR_ARG);
    {
        struct ipsecif_addr v6 = test_addr("2001:db8::1");
        struct ipsecif_addr zero = test_addr("0.0.0.0");

        assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &v6, &dst,
                                           IPSECIF_MODE_TRANSPORT, 0, 256, 9000, 1, T0, &spi),
                         IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &zero,
                                           IPSECIF_MODE_TRANSPORT, 0, 256, 9000, 1, T0, &spi),
                         IPSECIF_ERR_ARG);
    }
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 9000, 1, T0, NULL),
                     IPSECIF_ERR_ARG);
    t.mock->random_fail = 1;
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 9000, 1, T0, &spi),
                     IPSECIF_ERR_RANDOM);
    t.mock->random_fail = 0;
    assert_unchanged(&t, snap);
    test_ctx_free(&t);
}

/* With a random source stuck on one value every random pick collides, so
 * the linear probe must find the free SPIs. */
static void test_getspi_probe(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_sa_params p;
    struct test_ctx t;
    uint32_t spi = 0;
    uint32_t i;

    (void)state;
    new_ctx(&t, 16);
    /* xorshift from state 0 stays 0: the mock then returns only zero bytes,
     * so every random pick is the bottom of the range. */
    t.mock->rng_state = 0;
    for (i = 0; i < 5; i++) {
        assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                           IPSECIF_MODE_TRANSPORT, 0, 2000, 2004, 1, T0, &spi),
                         IPSECIF_OK);
        assert_int_equal(spi, 2000 + i);
    }
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 2000, 2004, 1, T0, &spi),
                     IPSECIF_ERR_EXIST);
    /* A hole in the middle is found. */
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 2003), IPSECIF_OK);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 2000, 2004, 1, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 2003);
    /* The probe does not stop early in a huge range whose start is taken
     * by many SAs in a row. */
    for (i = 0; i < 8; i++) {
        p = gcm("192.0.2.1", "192.0.2.2", 0x10000000u + i);
        add(&t, &p, T0);
    }
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0x10000000u, 0xffffffffu, 1, T0,
                                       &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 0x10000008u);
    test_ctx_free(&t);
}

static void test_larval_update(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_ipsecreq req;
    struct ipsecif_sa_params p;
    struct ipsecif_sa_info info;
    struct test_ctx t;
    struct ipsecif_sa *sa;
    uint32_t spi = 0;
    uint8_t *snap;

    (void)state;
    new_ctx(&t, 8);
    memset(&req, 0, sizeof(req));
    req.proto = IPSECIF_IPPROTO_ESP;
    req.mode = IPSECIF_MODE_TRANSPORT;
    req.reqid = 0x4001;

    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0x4001, 256, 0xffffffffu, 12, T0,
                                       &spi),
                     IPSECIF_OK);
    sa = lookup(&t, "192.0.2.2", spi);
    assert_non_null(sa);
    /* Found by SPI (the caller checks the state), never chosen for output. */
    assert_int_equal(sa->state, IPSECIF_SA_LARVAL);
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &src, &dst, 0, 0));
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &src, &dst, 0, 0));
    assert_false(ipsecif_sadb_account(t.ctx, sa, 100, T0));
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);

    /* A failing UPDATE leaves the larval SA as it was. */
    p = gcm("192.0.2.1", "192.0.2.2", spi);
    p.reqid = 0x4001;
    p.ekey_len = 17;
    snap = snapshot(&t);
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 500), IPSECIF_ERR_KEYLEN);
    p = gcm("192.0.2.1", "192.0.2.2", spi);
    p.ealg = 42;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 500), IPSECIF_ERR_UNSUPPORTED);
    assert_unchanged(&t, snap);

    /* Unknown SA. */
    p = gcm("192.0.2.1", "192.0.2.2", spi + 1 == 0 ? 256 : spi + 1);
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 500), IPSECIF_ERR_NOENT);

    /* UPDATE matures it with its keys, now and newest. */
    p = gcm("192.0.2.1", "192.0.2.2", spi);
    p.reqid = 0x4001;
    p.replay_window = 128;
    p.hard.addtime = 600;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 500), IPSECIF_OK);
    assert_int_equal(sa->state, IPSECIF_SA_MATURE);
    assert_int_equal(sa->gen, t.ctx->sadb.gen);
    assert_int_equal(sa->icv_len, 16);
    assert_int_equal(sa->replay_window, 128);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &src, &dst, 0, 0),
                     sa);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &src, &dst, 0, 0),
                     sa);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst, spi, &info),
                     IPSECIF_OK);
    assert_int_equal(info.current.addtime, T0 + 500);
    assert_int_equal(info.params.ekey_len, sizeof(gcm_key));
    /* The cache may still hold the larval deadline (early is allowed, late
     * is not); a timer run settles it without touching the SA. */
    assert_true(ipsecif_sadb_next_deadline(t.ctx) <= T0 + 500 + 600000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, T0 + 30000), T0 + 500 + 600000);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 500 + 600000);
    assert_int_equal(sa->state, IPSECIF_SA_MATURE);
    assert_int_equal(t.mock->n_events, 0);

    /* A mature SA's keys and algorithms cannot change... */
    snap = snapshot(&t);
    p = cbc("192.0.2.1", "192.0.2.2", spi);
    p.reqid = 0x4001;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 600), IPSECIF_ERR_STATE);
    p = gcm("192.0.2.1", "192.0.2.2", spi);
    p.ealg = IPSECIF_EALG_CHACHA20_POLY1305;
    p.ekey_len = 36;
    p.ekey = (const uint8_t *)"0123456789abcdef0123456789abcdefSALT";
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 600), IPSECIF_ERR_STATE);
    /* A key of the same length but other bytes is a change too. */
    {
        uint8_t other[sizeof(gcm_key)];

        p = gcm("192.0.2.1", "192.0.2.2", spi);
        memcpy(other, gcm_key, sizeof(other));
        other[3] ^= 0x40;
        p.ekey = other;
        p.soft.addtime = 60;
        assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 600), IPSECIF_ERR_STATE);
    }
    assert_unchanged(&t, snap);
    /* ...but its lifetimes can, and an earlier deadline is noticed at once. */
    p = gcm("192.0.2.1", "192.0.2.2", spi);
    p.reqid = 0x4001;
    p.soft.addtime = 60;
    p.hard.addtime = 120;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 600), IPSECIF_OK);
    assert_int_equal(sa->soft.addtime, 60);
    assert_int_equal(sa->hard.addtime, 120);
    assert_int_equal(sa->add_ms, T0 + 500);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 500 + 60000);
    test_ctx_free(&t);
}

/* UPDATE may give a larval SA another source and reqid: it must be found
 * under the new ones and no longer under the old. */
static void test_larval_update_moves(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr src2 = test_addr("192.0.2.9");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_ipsecreq req;
    struct ipsecif_sa_params p;
    struct test_ctx t;
    struct ipsecif_sa *sa;
    uint32_t spi = 0;

    (void)state;
    new_ctx(&t, 8);
    memset(&req, 0, sizeof(req));
    req.proto = IPSECIF_IPPROTO_ESP;
    req.mode = IPSECIF_MODE_TRANSPORT;
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 10, 256, 0xffff, 1, T0, &spi),
                     IPSECIF_OK);
    p = gcm("192.0.2.9", "192.0.2.2", spi);
    p.reqid = 11;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0), IPSECIF_OK);
    sa = lookup(&t, "192.0.2.2", spi);
    assert_non_null(sa);
    req.reqid = 11;
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &src2, &dst, 0, 0),
                     sa);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &src2, &dst, 0, 0),
                     sa);
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &src, &dst, 0, 0));
    req.reqid = 10;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &src2, &dst, 0, 0));
    /* And it leaves cleanly from its new chains. */
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, &src2, &dst, spi), IPSECIF_OK);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_larval_timeout(void **state)
{
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct test_ctx t;
    uint32_t spi1 = 0;
    uint32_t spi2 = 0;

    (void)state;
    new_ctx(&t, 8);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 0xffffffffu, 1, 2000, &spi1),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 32000);
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 0xffffffffu, 2, 5000, &spi2),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 32000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 31999), 32000);
    assert_int_equal(ipsecif_sa_count(t.ctx), 2);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 32000), 35000);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 35000);
    assert_null(lookup(&t, "192.0.2.2", spi1));
    assert_non_null(lookup(&t, "192.0.2.2", spi2));
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 40000), UINT64_MAX);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    /* Larval SAs go quietly. */
    assert_int_equal(t.mock->n_events, 0);
    /* A matured SA does not time out as larval. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 256, 0xffffffffu, 1, 50000,
                                       &spi1),
                     IPSECIF_OK);
    {
        struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", spi1);

        assert_int_equal(ipsecif_sa_update(t.ctx, &p, 60000), IPSECIF_OK);
    }
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 200000), UINT64_MAX);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);
    test_ctx_free(&t);
}

/* ---- Lookups ---- */

static void test_lookup_spi_many(void **state)
{
    struct ipsecif_config cfg;
    struct test_ctx t;
    uint32_t i;
    uint32_t longest = 0;

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_sas = 2048;
    cfg.replay_window_max = 64;
    test_ctx_new(&t, &cfg);
    for (i = 0; i < 2000; i++) {
        /* Half the SAs share one destination, with SPIs close together. */
        struct ipsecif_sa_params p =
            gcm("192.0.2.1", (i & 1) ? "192.0.2.2" : "2001:db8::2", 0x10000 + i / 2);

        if (!(i & 1)) {
            p.src = test_addr("2001:db8::1");
        }
        add(&t, &p, T0);
    }
    assert_int_equal(ipsecif_sa_count(t.ctx), 2000);
    for (i = 0; i < 2000; i++) {
        const char *dst = (i & 1) ? "192.0.2.2" : "2001:db8::2";
        struct ipsecif_sa *sa = lookup(&t, dst, 0x10000 + i / 2);

        assert_non_null(sa);
        assert_int_equal(sa->spi, 0x10000 + i / 2);
        assert_int_equal(sa->dst.family, (i & 1) ? IPSECIF_AF_INET : IPSECIF_AF_INET6);
    }
    assert_null(lookup(&t, "192.0.2.2", 0x10000 + 1000));
    assert_null(lookup(&t, "192.0.2.3", 0x10000));
    assert_null(lookup(&t, "2001:db8::3", 0x10000));
    /* O(1) on average: no chain is long. */
    for (i = 0; i <= t.ctx->sadb.hash_mask; i++) {
        uint32_t n = 0;
        struct ipsecif_sa *sa;

        for (sa = t.ctx->sadb.spi_hash[i]; sa != NULL; sa = sa->spi_next) {
            n++;
        }
        longest = n > longest ? n : longest;
    }
    assert_true(longest <= 10);
    test_ctx_free(&t);
}

static struct ipsecif_ipsecreq esp_req(uint8_t mode, uint32_t reqid)
{
    struct ipsecif_ipsecreq r;

    memset(&r, 0, sizeof(r));
    r.proto = IPSECIF_IPPROTO_ESP;
    r.mode = mode;
    r.reqid = reqid;
    return r;
}

static void test_lookup_out_preference(void **state)
{
    struct ipsecif_addr s = test_addr("192.0.2.1");
    struct ipsecif_addr d = test_addr("192.0.2.2");
    struct ipsecif_addr d2 = test_addr("192.0.2.3");
    struct ipsecif_ipsecreq req = esp_req(IPSECIF_MODE_TRANSPORT, 10);
    struct ipsecif_sa_params p;
    struct ipsecif_sa *a;
    struct ipsecif_sa *b;
    struct ipsecif_sa *c;
    struct test_ctx t;

    (void)state;
    new_ctx(&t, 16);
    p = gcm("192.0.2.1", "192.0.2.2", 0x501);
    p.reqid = 10;
    p.soft.bytes = 100;
    a = add(&t, &p, T0);
    p.spi = 0x502;
    b = add(&t, &p, T0);
    /* Newest mature wins, whatever the SPI order. */
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), b);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), b);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_USE, &s, &d, 0, 0), b);

    /* Mature beats dying even if older. */
    assert_true(ipsecif_sadb_account(t.ctx, b, 100, T0));
    assert_int_equal(b->state, IPSECIF_SA_DYING);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), a);
    /* Both dying: the newest. */
    assert_true(ipsecif_sadb_account(t.ctx, a, 100, T0));
    assert_int_equal(a->state, IPSECIF_SA_DYING);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), b);

    /* Unique is by reqid; require is by address pair whatever the reqid. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x503);
    p.reqid = 11;
    c = add(&t, &p, T0);
    req.reqid = 11;
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), c);
    req.reqid = 10;
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), b);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), c);
    req.reqid = 12;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0));
    req.reqid = 0;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0));
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), c);
    /* Unique with the right reqid but the wrong addresses: none. */
    req.reqid = 11;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d2, 0, 0));
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &d, &s, 0, 0));
    /* Mode must match, unless the SA says any. */
    req.mode = IPSECIF_MODE_TUNNEL;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0));
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0));
    p = gcm("192.0.2.1", "192.0.2.2", 0x504);
    p.mode = IPSECIF_MODE_ANY;
    p.reqid = 11;
    c = add(&t, &p, T0);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), c);
    req.mode = IPSECIF_MODE_TRANSPORT;
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), c);
    /* Protocol must match. */
    req.proto = IPSECIF_IPPROTO_AH;
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0));
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0));
    test_ctx_free(&t);
}

/* The outbound SA under net.key.prefered_oldsa old (0 or 1), for level
 * unique and require (the interface's and the host's lookup): all four
 * must agree. */
static struct ipsecif_sa *pick(struct test_ctx *t, struct ipsecif_ipsecreq *req, int old)
{
    struct ipsecif_addr s = test_addr("192.0.2.1");
    struct ipsecif_addr d = test_addr("192.0.2.2");
    struct ipsecif_sa *u;

    assert_int_equal(ipsecif_sysctl_set(t->ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, old),
                     IPSECIF_OK);
    u = ipsecif_sadb_lookup_out(t->ctx, req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t->ctx, req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), u);
    assert_ptr_equal(ipsecif_sadb_lookup_host(t->ctx, req, IPSECIF_LEVEL_UNIQUE, &s, &d), u);
    assert_ptr_equal(ipsecif_sadb_lookup_host(t->ctx, req, IPSECIF_LEVEL_REQUIRE, &s, &d), u);
    return u;
}

/* prefered_oldsa 0: the newest mature SA, then the newest dying one; 1: the
 * oldest dying one, then the oldest mature one. Age counts from maturity:
 * a larval SA that an UPDATE matures after a later ADD is the newer. */
static void test_lookup_out_prefered_oldsa(void **state)
{
    struct ipsecif_addr s = test_addr("192.0.2.1");
    struct ipsecif_addr d = test_addr("192.0.2.2");
    struct ipsecif_ipsecreq req = esp_req(IPSECIF_MODE_TRANSPORT, 10);
    struct ipsecif_sa_params p;
    struct ipsecif_sa *a;
    struct ipsecif_sa *b;
    struct ipsecif_sa *c;
    struct ipsecif_sa *l;
    struct test_ctx t;
    uint32_t spi = 0;

    (void)state;
    new_ctx(&t, 16);
    assert_int_equal(ipsecif_sysctl_set(t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 2),
                     IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_sysctl_set(t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, -1),
                     IPSECIF_ERR_RANGE);
    assert_null(pick(&t, &req, 0));
    assert_null(pick(&t, &req, 1));

    p = gcm("192.0.2.1", "192.0.2.2", 0x601);
    p.reqid = 10;
    p.soft.bytes = 100;
    a = add(&t, &p, T0);
    assert_ptr_equal(pick(&t, &req, 0), a);
    assert_ptr_equal(pick(&t, &req, 1), a);
    /* A larval SA made now, matured after b: younger than b. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_ESP, &s, &d, IPSECIF_MODE_TRANSPORT,
                                       10, 0x700, 0x7ff, 1, T0, &spi),
                     IPSECIF_OK);
    l = lookup(&t, "192.0.2.2", spi);
    assert_non_null(l);
    assert_ptr_equal(pick(&t, &req, 0), a);
    assert_ptr_equal(pick(&t, &req, 1), a);
    p.spi = 0x602;
    b = add(&t, &p, T0 + 10);
    assert_ptr_equal(pick(&t, &req, 0), b);
    assert_ptr_equal(pick(&t, &req, 1), a);
    p.spi = spi;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0 + 20), IPSECIF_OK);
    assert_ptr_equal(pick(&t, &req, 0), l);
    assert_ptr_equal(pick(&t, &req, 1), a);
    /* The setting itself changes nothing else: back and forth. */
    assert_ptr_equal(pick(&t, &req, 0), l);

    /* A dying SA: the old preference takes it first, the new one last. */
    assert_true(ipsecif_sadb_account(t.ctx, b, 100, T0 + 30));
    assert_int_equal(b->state, IPSECIF_SA_DYING);
    assert_ptr_equal(pick(&t, &req, 0), l);
    assert_ptr_equal(pick(&t, &req, 1), b);
    assert_true(ipsecif_sadb_account(t.ctx, a, 100, T0 + 30));
    assert_ptr_equal(pick(&t, &req, 0), l);
    assert_ptr_equal(pick(&t, &req, 1), a);
    /* All dying: newest or oldest of them. */
    assert_true(ipsecif_sadb_account(t.ctx, l, 100, T0 + 30));
    assert_ptr_equal(pick(&t, &req, 0), l);
    assert_ptr_equal(pick(&t, &req, 1), a);
    /* A new mature SA: the new preference moves to it, the old stays. */
    p.spi = 0x603;
    c = add(&t, &p, T0 + 40);
    assert_ptr_equal(pick(&t, &req, 0), c);
    assert_ptr_equal(pick(&t, &req, 1), a);
    /* Deleting falls back the same way. */
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, &s, &d, 0x601), IPSECIF_OK);
    assert_ptr_equal(pick(&t, &req, 0), c);
    assert_ptr_equal(pick(&t, &req, 1), b);
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, &s, &d, 0x603), IPSECIF_OK);
    assert_ptr_equal(pick(&t, &req, 0), l);
    assert_ptr_equal(pick(&t, &req, 1), b);
    /* An SA of another reqid counts for require only. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x604);
    p.reqid = 11;
    c = add(&t, &p, T0 + 50);
    assert_int_equal(ipsecif_sysctl_set(t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 0), IPSECIF_OK);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), l);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), c);
    assert_int_equal(ipsecif_sysctl_set(t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 1), IPSECIF_OK);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_UNIQUE, &s, &d, 0, 0), b);
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0), b);
    test_ctx_free(&t);
}

/* AH SAs: HMAC or AES-GMAC, found by (AH, dst, SPI) apart from ESP SAs with
 * the same SPI; GETSPI makes larval AH SAs that UPDATE matures. */
static void test_ah_sas(void **state)
{
    struct test_ctx t;
    struct ipsecif_sa_params p, q;
    struct ipsecif_sa *ah, *esp, *g;
    struct ipsecif_addr src = test_addr("192.0.2.1");
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_sa_info info;
    uint32_t spi = 0;

    (void)state;
    test_ctx_new(&t, NULL);
    p = cbc("192.0.2.1", "192.0.2.2", 0x7000);
    p.proto = IPSECIF_IPPROTO_AH;
    p.ealg = IPSECIF_EALG_NONE;
    p.ekey = NULL;
    p.ekey_len = 0;
    ah = add(&t, &p, T0);
    assert_int_equal(ah->proto, IPSECIF_IPPROTO_AH);
    assert_int_equal(ah->icv_len, 16);
    q = cbc("192.0.2.1", "192.0.2.2", 0x7000);
    esp = add(&t, &q, T0);
    assert_ptr_not_equal(ah, esp);
    assert_ptr_equal(ipsecif_sadb_lookup_spi(t.ctx, IPSECIF_IPPROTO_AH, &dst, 0x7000), ah);
    assert_ptr_equal(lookup(&t, "192.0.2.2", 0x7000), esp);
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, T0), IPSECIF_ERR_EXIST);
    /* AES-GMAC alone. */
    q = gcm("192.0.2.1", "192.0.2.2", 0x7001);
    q.proto = IPSECIF_IPPROTO_AH;
    q.ealg = IPSECIF_EALG_AES_GMAC;
    g = add(&t, &q, T0);
    assert_int_equal(g->iv_len, 8);
    /* No encryption, no NAT-T, and some integrity algorithm. */
    q.spi = 0x7002;
    q.ealg = IPSECIF_EALG_AES_GCM16;
    assert_int_equal(ipsecif_sa_add(t.ctx, &q, T0), IPSECIF_ERR_UNSUPPORTED);
    p.spi = 0x7002;
    p.natt_sport = p.natt_dport = 4500;
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, T0), IPSECIF_ERR_ARG);
    p.natt_sport = p.natt_dport = 0;
    p.aalg = IPSECIF_AALG_NONE;
    p.akey = NULL;
    p.akey_len = 0;
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, T0), IPSECIF_ERR_UNSUPPORTED);
    /* GETSPI, UPDATE, GET, DELETE, FLUSH by protocol. */
    assert_int_equal(ipsecif_sa_getspi(t.ctx, IPSECIF_IPPROTO_AH, &src, &dst,
                                       IPSECIF_MODE_TRANSPORT, 0, 0x8000, 0x8000, 1, T0, &spi),
                     IPSECIF_OK);
    assert_int_equal(spi, 0x8000);
    p = cbc("192.0.2.1", "192.0.2.2", 0x8000);
    p.proto = IPSECIF_IPPROTO_AH;
    p.ealg = IPSECIF_EALG_NONE;
    p.ekey = NULL;
    p.ekey_len = 0;
    assert_int_equal(ipsecif_sa_update(t.ctx, &p, T0), IPSECIF_OK);
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_AH, NULL, &dst, 0x8000, &info),
                     IPSECIF_OK);
    assert_int_equal(info.state, IPSECIF_SA_MATURE);
    assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA2_256_128);
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_AH, NULL, &dst, 0x8000), IPSECIF_OK);
    assert_int_equal(ipsecif_sa_flush(t.ctx, IPSECIF_IPPROTO_AH), 2);
    assert_ptr_equal(lookup(&t, "192.0.2.2", 0x7000), esp);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1);
    test_ctx_free(&t);
}

static void test_lookup_out_natt(void **state)
{
    struct ipsecif_addr s = test_addr("198.51.100.1");
    struct ipsecif_addr d = test_addr("203.0.113.2");
    struct ipsecif_ipsecreq req = esp_req(IPSECIF_MODE_TRANSPORT, 0);
    struct ipsecif_sa_params p;
    struct ipsecif_sa *plain;
    struct ipsecif_sa *natt;
    struct test_ctx t;

    (void)state;
    new_ctx(&t, 8);
    p = gcm("198.51.100.1", "203.0.113.2", 0x601);
    plain = add(&t, &p, T0);
    p.spi = 0x602;
    p.natt_sport = 4500;
    p.natt_dport = 4500;
    natt = add(&t, &p, T0);
    assert_ptr_equal(
        ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 4500, 4500), natt);
    /* Without ports, only a non-encapsulated SA does, even if older. */
    assert_ptr_equal(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0),
                     plain);
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 4500, 4501));
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 1024, 4500));
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x601), IPSECIF_OK);
    assert_null(ipsecif_sadb_lookup_out(t.ctx, &req, IPSECIF_LEVEL_REQUIRE, &s, &d, 0, 0));
    test_ctx_free(&t);
}

/* ---- Lifetimes ---- */

static void assert_expire(const struct test_ctx *t, unsigned i, uint32_t spi, uint8_t hard,
                          uint8_t reason)
{
    const struct ipsecif_km_event *ev = &t->mock->events[i];

    assert_true(t->mock->n_events > i);
    assert_int_equal(ev->type, IPSECIF_KM_EXPIRE);
    assert_int_equal(ev->expire.sa.params.spi, spi);
    assert_int_equal(ev->expire.hard, hard);
    assert_int_equal(ev->expire.reason, reason);
    assert_null(ev->expire.sa.params.ekey);
    assert_int_equal(ev->expire.sa.state, hard ? IPSECIF_SA_DEAD : IPSECIF_SA_DYING);
}

static void test_addtime(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x700);
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    p.soft.addtime = 10;
    p.hard.addtime = 20;
    sa = add(&t, &p, 2000);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 12000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 11999), 12000);
    assert_int_equal(t.mock->n_events, 0);
    assert_int_equal(sa->state, IPSECIF_SA_MATURE);

    assert_int_equal(ipsecif_sadb_timer(t.ctx, 12000), 22000);
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x700, 0, IPSECIF_EXPIRE_ADDTIME);
    assert_int_equal(t.mock->events[0].expire.sa.params.soft.addtime, 10);
    assert_int_equal(t.mock->events[0].expire.sa.current.addtime, 2000);
    assert_int_equal(sa->state, IPSECIF_SA_DYING);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 22000);
    /* One soft event only. */
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 15000), 22000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 21999), 22000);
    assert_int_equal(t.mock->n_events, 1);

    assert_int_equal(ipsecif_sadb_timer(t.ctx, 22000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 2);
    assert_expire(&t, 1, 0x700, 1, IPSECIF_EXPIRE_ADDTIME);
    assert_int_equal(t.mock->events[1].expire.sa.params.ekey_len, sizeof(gcm_key));
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_null(lookup(&t, "192.0.2.2", 0x700));
    assert_slot_free(&t, 0);
    test_ctx_free(&t);
}

static void test_hard_and_soft_together(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x710);
    struct test_ctx t;

    (void)state;
    new_ctx(&t, 8);
    p.soft.addtime = 10;
    p.hard.addtime = 20;
    add(&t, &p, 2000);
    /* The timer ran late: the hard limit alone is reported. */
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 50000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x710, 1, IPSECIF_EXPIRE_ADDTIME);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_usetime(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x720);
    struct ipsecif_sa_info info;
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    p.soft.usetime = 5;
    p.hard.usetime = 8;
    sa = add(&t, &p, 2000);
    /* Unused: no deadline at all, however long it waits. */
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), UINT64_MAX);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 1000000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 0);

    /* First use starts the clock, and lowers the cached deadline at once. */
    assert_true(ipsecif_sadb_account(t.ctx, sa, 64, 1000000));
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 1005000);
    assert_true(ipsecif_sadb_account(t.ctx, sa, 64, 1002000));
    assert_int_equal(ipsecif_sa_get(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &p.dst, 0x720, &info),
                     IPSECIF_OK);
    assert_int_equal(info.current.usetime, 1000000);
    assert_int_equal(info.current.allocations, 1);
    assert_int_equal(info.current.bytes, 128);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 1005000);

    assert_int_equal(ipsecif_sadb_timer(t.ctx, 1004999), 1005000);
    assert_int_equal(t.mock->n_events, 0);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 1005000), 1008000);
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x720, 0, IPSECIF_EXPIRE_USETIME);
    assert_int_equal(t.mock->events[0].expire.sa.current.usetime, 1000000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 1008000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 2);
    assert_expire(&t, 1, 0x720, 1, IPSECIF_EXPIRE_USETIME);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_usetime_at_time_zero(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x730);
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    p.hard.usetime = 1;
    sa = add(&t, &p, 0);
    /* A first use at time 0 still counts as used. */
    assert_true(ipsecif_sadb_account(t.ctx, sa, 1, 0));
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), 1000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, 1000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x730, 1, IPSECIF_EXPIRE_USETIME);
    test_ctx_free(&t);
}

static void test_bytes(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x740);
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    p.soft.bytes = 1000;
    p.hard.bytes = 2000;
    sa = add(&t, &p, T0);
    /* Byte limits are checked per use, not by the timer. */
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), UINT64_MAX);
    assert_true(ipsecif_sadb_account(t.ctx, sa, 600, T0));
    assert_int_equal(t.mock->n_events, 0);
    assert_true(ipsecif_sadb_account(t.ctx, sa, 400, T0));
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x740, 0, IPSECIF_EXPIRE_BYTES);
    assert_int_equal(t.mock->events[0].expire.sa.current.bytes, 1000);
    assert_int_equal(sa->state, IPSECIF_SA_DYING);
    assert_true(ipsecif_sadb_account(t.ctx, sa, 500, T0));
    assert_true(ipsecif_sadb_account(t.ctx, sa, 500, T0)); /* exactly the hard limit */
    assert_int_equal(t.mock->n_events, 1);
    assert_int_equal(sa->bytes, 2000);
    /* Going past the hard limit is refused and kills the SA. */
    assert_false(ipsecif_sadb_account(t.ctx, sa, 1, T0));
    assert_int_equal(t.mock->n_events, 2);
    assert_expire(&t, 1, 0x740, 1, IPSECIF_EXPIRE_BYTES);
    assert_int_equal(t.mock->events[1].expire.sa.current.bytes, 2000);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_slot_free(&t, 0);
    /* A dead slot is refused too. */
    assert_false(ipsecif_sadb_account(t.ctx, sa, 1, T0));
    test_ctx_free(&t);
}

static void test_no_km_callback(void **state)
{
    struct ipsecif_sa_params p = gcm("192.0.2.1", "192.0.2.2", 0x750);
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    t.mock->port.km_event = NULL;
    p.soft.addtime = 1;
    p.hard.bytes = 10;
    sa = add(&t, &p, T0);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, T0 + 1000), UINT64_MAX);
    assert_int_equal(sa->state, IPSECIF_SA_DYING);
    assert_false(ipsecif_sadb_account(t.ctx, sa, 11, T0 + 1000));
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_int_equal(t.mock->n_events, 0);
    test_ctx_free(&t);
}

static void test_kill(void **state)
{
    struct ipsecif_sa_params p = cbc("192.0.2.1", "192.0.2.2", 0x760);
    struct test_ctx t;
    struct ipsecif_sa *sa;

    (void)state;
    new_ctx(&t, 8);
    sa = add(&t, &p, T0);
    sa->seq_out = 0xffffffffu;
    ipsecif_sadb_kill(t.ctx, sa, IPSECIF_EXPIRE_SEQWRAP);
    assert_int_equal(t.mock->n_events, 1);
    assert_expire(&t, 0, 0x760, 1, IPSECIF_EXPIRE_SEQWRAP);
    assert_int_equal(t.mock->events[0].expire.sa.seq_out, 0xffffffffu);
    assert_int_equal(t.mock->events[0].expire.sa.params.akey_len, sizeof(hmac_key));
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_slot_free(&t, 0);
    /* Killing a freed slot does nothing. */
    ipsecif_sadb_kill(t.ctx, sa, IPSECIF_EXPIRE_SEQWRAP);
    assert_int_equal(t.mock->n_events, 1);
    test_ctx_free(&t);
}

static void test_deadlines(void **state)
{
    struct ipsecif_sa_params p;
    struct test_ctx t;

    (void)state;
    new_ctx(&t, 8);
    p = gcm("192.0.2.1", "192.0.2.2", 0x800);
    p.hard.addtime = 100;
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 100000);
    /* An SA with an earlier deadline lowers the cache without a timer run. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x801);
    p.soft.addtime = 5;
    add(&t, &p, T0 + 1000);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 6000);
    /* A later one does not raise it. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x802);
    p.hard.addtime = 1000;
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 6000);
    /* A timer run returns and caches the earliest of what is left. */
    assert_int_equal(ipsecif_sadb_timer(t.ctx, T0 + 6000), T0 + 100000);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), T0 + 100000);
    assert_int_equal(t.mock->n_events, 1);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, T0 + 100000), T0 + 1000000);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, T0 + 1000000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 3);
    assert_int_equal(ipsecif_sa_count(t.ctx), 1); /* 0x801 has no hard limit */
    /* A huge lifetime saturates instead of wrapping around. */
    p = gcm("192.0.2.1", "192.0.2.2", 0x803);
    p.hard.addtime = UINT64_MAX / 10;
    add(&t, &p, T0);
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), UINT64_MAX);
    assert_int_equal(ipsecif_sadb_timer(t.ctx, UINT64_MAX - 1), UINT64_MAX);
    assert_int_equal(ipsecif_sa_count(t.ctx), 2);
    test_ctx_free(&t);
}

/* ---- Wiping ---- */

static void test_keys_wiped(void **state)
{
    struct ipsecif_sa_params p;
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct test_ctx t;
    struct ipsecif_sa *sa;
    uint32_t idx;

    (void)state;
    new_ctx(&t, 8);
    /* Three ways to go: delete, flush, deinit-time clear. */
    p = cbc("192.0.2.1", "192.0.2.2", 0x900);
    p.replay_window = 1024;
    p.soft.bytes = 5;
    p.hard.addtime = 7;
    sa = add(&t, &p, T0);
    idx = (uint32_t)(sa - t.ctx->sadb.tab);
    /* What the data path would have left: replay state and counters. */
    sa->replay_bits[0] = 0xdeadbeefu;
    sa->replay_bits[t.ctx->sadb.replay_words - 1] = 0x1u;
    sa->replay_top = 99;
    sa->stats.packets = 3;
    /* The AES key schedule starts with the key itself: the search below can
     * find it, so its absence after the delete means something. */
    assert_true(mem_contains(t.mem + TEST_GUARD, t.mem_len, cbc_key, sizeof(cbc_key)));
    assert_int_equal(ipsecif_sa_delete(t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x900), IPSECIF_OK);
    assert_slot_free(&t, idx);
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, cbc_key, sizeof(cbc_key)));
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, hmac_key, sizeof(hmac_key)));

    p = gcm("192.0.2.1", "192.0.2.2", 0x901);
    sa = add(&t, &p, T0);
    idx = (uint32_t)(sa - t.ctx->sadb.tab);
    /* The salt sits in the SA in the clear while it lives. */
    assert_memory_equal(sa->salt, gcm_key + 16, 4);
    assert_int_equal(ipsecif_sa_flush(t.ctx, 0), 1);
    assert_slot_free(&t, idx);
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, gcm_key, 16));
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, gcm_key + 16, 4));

    p = gcm("192.0.2.1", "192.0.2.2", 0x902);
    add(&t, &p, T0);
    p = cbc("192.0.2.1", "192.0.2.2", 0x903);
    add(&t, &p, T0);
    ipsecif_sadb_clear(t.ctx);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    assert_slot_free(&t, 0);
    assert_slot_free(&t, 1);
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, gcm_key + 16, 4));
    assert_false(mem_contains(t.mem + TEST_GUARD, t.mem_len, cbc_key, sizeof(cbc_key)));
    assert_int_equal(ipsecif_sadb_next_deadline(t.ctx), UINT64_MAX);
    test_ctx_free(&t);
}

static void test_null_args(void **state)
{
    struct ipsecif_addr a = test_addr("192.0.2.1");
    struct ipsecif_sa_info info;
    uint32_t spi;

    (void)state;
    assert_int_equal(ipsecif_sa_count(NULL), 0);
    assert_int_equal(ipsecif_sa_flush(NULL, 0), 0);
    assert_int_equal(ipsecif_sa_delete(NULL, IPSECIF_IPPROTO_ESP, NULL, &a, 300), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_get(NULL, IPSECIF_IPPROTO_ESP, NULL, &a, 300, &info),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_update(NULL, NULL, 0), IPSECIF_ERR_ARG);
    assert_int_equal(
        ipsecif_sa_getspi(NULL, IPSECIF_IPPROTO_ESP, &a, &a, 0, 0, 256, 300, 0, 0, &spi),
        IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sa_walk(NULL, 0, walk_cb, NULL), IPSECIF_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_add_get_delete),
        cmocka_unit_test(test_add_ipv6_and_duplicates),
        cmocka_unit_test(test_add_rejects),
        cmocka_unit_test(test_replay_window_rounding),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_walk_flush),
        cmocka_unit_test(test_getspi_range),
        cmocka_unit_test(test_getspi_probe),
        cmocka_unit_test(test_larval_update),
        cmocka_unit_test(test_larval_update_moves),
        cmocka_unit_test(test_larval_timeout),
        cmocka_unit_test(test_lookup_spi_many),
        cmocka_unit_test(test_lookup_out_preference),
        cmocka_unit_test(test_lookup_out_prefered_oldsa),
        cmocka_unit_test(test_lookup_out_natt),
        cmocka_unit_test(test_ah_sas),
        cmocka_unit_test(test_addtime),
        cmocka_unit_test(test_hard_and_soft_together),
        cmocka_unit_test(test_usetime),
        cmocka_unit_test(test_usetime_at_time_zero),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_no_km_callback),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_deadlines),
        cmocka_unit_test(test_keys_wiped),
        cmocka_unit_test(test_null_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
