/*
 * The batch data path (ipsecif_if_output_batch, ipsecif_input_batch,
 * ipsecif_input_esp_batch) against the per-packet one: two twin pairs of
 * contexts, one fed packet by packet and one fed vectors, must end with the
 * same verdicts, the same bytes on the wire and delivered, and the same
 * counters. Mixed good and bad packets, a tag failure in the middle of a
 * burst, replays and duplicates inside one burst, interfaces and SAs
 * interleaved in one vector, contiguous sequence numbers, byte limits, and
 * every transform. Built once per crypto backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

#ifndef IPSECIF_TEST_BATCH_OPENSSL
#define IPSECIF_TEST_BATCH_OPENSSL 0
#endif
#ifndef IPSECIF_TEST_BATCH_IPSECMB
#define IPSECIF_TEST_BATCH_IPSECMB 0
#endif
#if IPSECIF_TEST_BATCH_OPENSSL
#include "ipsecif_crypto_openssl.h"
#define CRYPTO (&ipsecif_crypto_openssl_ops)
#elif IPSECIF_TEST_BATCH_IPSECMB
#include "ipsecif_crypto_ipsecmb.h"
#define CRYPTO (&ipsecif_crypto_ipsecmb_ops)
#else
#include "ipsecif_crypto_mbedtls.h"
#define CRYPTO (&ipsecif_crypto_mbedtls_ops)
#endif

#define NPKT 40 /* more than IPSECIF_BATCH_MAX: two slices */
#define NOW 5000

struct algo {
    uint8_t ealg;
    uint8_t aalg;
    size_t ekey;
    size_t akey;
    uint32_t saflags;
    const char *name;
};

static const struct algo algos[] = {
    {IPSECIF_EALG_AES_GCM16, 0, 20, 0, 0, "aes-gcm-128"},
    {IPSECIF_EALG_AES_GCM16, 0, 36, 0, IPSECIF_SA_F_ESN, "aes-gcm-256 esn"},
    {IPSECIF_EALG_CHACHA20_POLY1305, 0, 36, 0, 0, "chacha20-poly1305"},
    {IPSECIF_EALG_AES_GMAC, 0, 20, 0, IPSECIF_SA_F_ESN, "aes-gmac-128 esn"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 16, 32, 0, "aes-cbc/sha256"},
};

static const uint8_t keybytes[80] = {
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
    0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0, 0x31, 0x75, 0xb9, 0xfd, 0x42, 0x86, 0xca, 0x0e,
    0x53, 0x97, 0xdb, 0x1f, 0x64, 0xa8, 0xec, 0x20, 0x75, 0xb9, 0xfd, 0x31, 0x86, 0xca, 0x0e, 0x42};

/* Two interfaces per side: ipsec0 over 198.51.100.1 <-> .2, ipsec1 over
 * 198.51.100.1 <-> .3, each with its SAs both ways for IPv4 and IPv6. */
struct side {
    struct test_ctx t;
    struct ipsecif_if *ifs[2];
};

struct twin {
    struct side a, b;
};

static const char *const remote[2] = {"198.51.100.2", "198.51.100.3"};

static void sa_add(struct test_ctx *t, const struct algo *al, const char *src, const char *dst,
                   uint32_t spi, uint32_t reqid, uint64_t hard_bytes)
{
    struct ipsecif_sa_params p;

    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = al->ealg;
    p.aalg = al->aalg;
    p.spi = spi;
    p.src = test_addr(src);
    p.dst = test_addr(dst);
    p.reqid = reqid;
    p.replay_window = 64;
    p.flags = al->saflags;
    p.ekey = keybytes;
    p.ekey_len = al->ekey;
    p.akey = keybytes + 7;
    p.akey_len = al->akey;
    p.hard.bytes = hard_bytes;
    assert_int_equal(ipsecif_sa_add(t->ctx, &p, 1000), IPSECIF_OK);
}

static void side_up(struct side *s, bool is_a)
{
    struct ipsecif_config cfg;
    int k;

    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 4;
    cfg.max_policies = 32;
    cfg.max_sas = 32;
    test_ctx_new(&s->t, &cfg);
    s->t.mock->port.crypto = CRYPTO;
    for (k = 0; k < 2; k++) {
        struct ipsecif_addr l = test_addr(is_a ? "198.51.100.1" : remote[k]);
        struct ipsecif_addr r = test_addr(is_a ? remote[k] : "198.51.100.1");
        char name[8];

        snprintf(name, sizeof(name), "ipsec%d", k);
        assert_int_equal(ipsecif_if_create(s->t.ctx, name, &s->ifs[k]), IPSECIF_OK);
        assert_int_equal(ipsecif_if_set_flags(s->t.ctx, s->ifs[k], IPSECIF_IFF_UP, 0), IPSECIF_OK);
        assert_int_equal(ipsecif_if_set_tunnel(s->t.ctx, s->ifs[k], &l, 0, &r, 0, 1000),
                         IPSECIF_OK);
    }
}

/* SAs A -> B (SPI 0x100 + 16k + family) and B -> A (0x200 + ...). */
static void twin_sas(struct twin *w, const struct algo *al, uint64_t hard_bytes)
{
    struct ipsecif_if_info ia, ib;
    int k;

    for (k = 0; k < 2; k++) {
        assert_int_equal(ipsecif_if_get_info(w->a.t.ctx, w->a.ifs[k], &ia), IPSECIF_OK);
        assert_int_equal(ipsecif_if_get_info(w->b.t.ctx, w->b.ifs[k], &ib), IPSECIF_OK);
        sa_add(&w->a.t, al, "198.51.100.1", remote[k], 0x100u + 16u * k,
               ia.reqid[IPSECIF_IFPOL_V4_OUT], hard_bytes);
        sa_add(&w->b.t, al, "198.51.100.1", remote[k], 0x100u + 16u * k,
               ib.reqid[IPSECIF_IFPOL_V4_IN], hard_bytes);
        sa_add(&w->a.t, al, "198.51.100.1", remote[k], 0x101u + 16u * k,
               ia.reqid[IPSECIF_IFPOL_V6_OUT], hard_bytes);
        sa_add(&w->b.t, al, "198.51.100.1", remote[k], 0x101u + 16u * k,
               ib.reqid[IPSECIF_IFPOL_V6_IN], hard_bytes);
    }
}

static void twin_up(struct twin *w, const struct algo *al, uint64_t hard_bytes)
{
    memset(w, 0, sizeof(*w));
    side_up(&w->a, true);
    side_up(&w->b, false);
    twin_sas(w, al, hard_bytes);
}

static void twin_down(struct twin *w)
{
    test_ctx_free(&w->a.t);
    test_ctx_free(&w->b.t);
}

static struct test_buf bufs[2][NPKT];
static struct ipsecif_buf *views[2][NPKT];
static int res[2][NPKT];
static struct test_buf wire[NPKT]; /* outer packets, as sent */

/* Inner packet i of a vector: IPv4 or IPv6 ping of varying size, some on
 * the second interface; the bad ones are not IP, or too big for the MTU. */
static struct ipsecif_if *inner_packet(const struct side *s, struct test_buf *tb, size_t i,
                                       bool mixed, bool interleave)
{
    bool v6 = (i % 3) == 1;
    size_t payload = 16 + (i * 37) % 300;

    if (v6) {
        test_build_ping(tb, 128, "2001:db8:a::1", "2001:db8:b::1", payload, 0);
    } else {
        test_build_ping(tb, 128, "192.0.2.1", "203.0.113.1", payload, 0);
    }
    if (mixed && i % 7 == 3) {
        tb->mem[tb->b.off] = 0x00; /* neither IPv4 nor IPv6 */
    }
    if (mixed && i % 11 == 5) {
        test_build_ping(tb, 128, "2001:db8:a::1", "2001:db8:b::1", 1400, 0); /* over 1280 */
    }
    return s->ifs[interleave ? (i / 2) % 2 : 0];
}

static void assert_stats_equal(const struct ipsecif_stats *x, const struct ipsecif_stats *y)
{
    assert_memory_equal(x, y, sizeof(*x));
}

/* Every counter of the two contexts: global, per interface, per SA. */
static void assert_same_counters(struct side *x, struct side *y)
{
    size_t i;

    assert_stats_equal(ipsecif_stats_get(x->t.ctx), ipsecif_stats_get(y->t.ctx));
    assert_stats_equal(&x->ifs[0]->stats, &y->ifs[0]->stats);
    assert_stats_equal(&x->ifs[1]->stats, &y->ifs[1]->stats);
    for (i = 0; i < x->t.ctx->sadb.n; i++) {
        const struct ipsecif_sa *sx = &x->t.ctx->sadb.tab[i];
        const struct ipsecif_sa *sy = &y->t.ctx->sadb.tab[i];

        assert_int_equal(sx->in_use, sy->in_use);
        if (!sx->in_use) {
            continue;
        }
        assert_int_equal(sx->spi, sy->spi);
        assert_memory_equal(&sx->stats, &sy->stats, sizeof(sx->stats));
        assert_int_equal(sx->seq_out, sy->seq_out);
        assert_int_equal(sx->replay_top, sy->replay_top);
        assert_int_equal(sx->bytes, sy->bytes);
        assert_int_equal(sx->state, sy->state);
    }
}

/* The per-packet twin (0) gets single calls, the other (1) one batch
 * call; verdicts, sends and counters must agree. */
static void output_both(struct twin w[2], size_t n, bool mixed, bool interleave)
{
    struct ipsecif_if *ifps[NPKT];
    size_t i;
    int sent;
    int ok = 0;

    for (i = 0; i < n; i++) {
        struct ipsecif_if *ifp0 = inner_packet(&w[0].a, &bufs[0][i], i, mixed, interleave);

        ifps[i] = inner_packet(&w[1].a, &bufs[1][i], i, mixed, interleave);
        views[1][i] = &bufs[1][i].b;
        res[0][i] = ipsecif_if_output(w[0].a.t.ctx, ifp0, &bufs[0][i].b, NOW);
        ok += res[0][i] == IPSECIF_OK;
    }
    sent = ipsecif_if_output_batch(w[1].a.t.ctx, interleave ? NULL : w[1].a.ifs[0],
                                   interleave ? ifps : NULL, views[1], n, NOW, res[1]);
    assert_int_equal(sent, ok);
    assert_memory_equal(res[0], res[1], n * sizeof(int));
    assert_int_equal(w[0].a.t.mock->n_sent, w[1].a.t.mock->n_sent);
    for (i = 0; i < w[0].a.t.mock->n_sent && i < MOCK_MAX_PKTS; i++) {
        const struct mock_pkt *p0 = &w[0].a.t.mock->sent[i];
        const struct mock_pkt *p1 = &w[1].a.t.mock->sent[i];

        assert_int_equal(p0->len, p1->len);
        assert_memory_equal(p0->data, p1->data, p0->len);
        test_buf_set(&wire[i], 64, p0->data, p0->len);
    }
    assert_int_equal(w[0].a.t.mock->n_icmp, w[1].a.t.mock->n_icmp);
    assert_same_counters(&w[0].a, &w[1].a);
}

/* Feed the vector in[0..n) to both B sides (single calls vs one batch). */
static void input_both(struct twin w[2], struct test_buf *in, size_t n)
{
    size_t i;
    int ok = 0;
    int got;

    for (i = 0; i < n; i++) {
        bufs[0][i] = in[i];
        bufs[0][i].b.base = bufs[0][i].mem;
        bufs[1][i] = in[i];
        bufs[1][i].b.base = bufs[1][i].mem;
        views[1][i] = &bufs[1][i].b;
        res[0][i] = ipsecif_input(w[0].b.t.ctx, &bufs[0][i].b, NOW);
        ok += res[0][i] == IPSECIF_OK;
    }
    got = ipsecif_input_batch(w[1].b.t.ctx, views[1], n, NOW, res[1]);
    assert_int_equal(got, ok);
    assert_memory_equal(res[0], res[1], n * sizeof(int));
    assert_int_equal(w[0].b.t.mock->n_delivered, w[1].b.t.mock->n_delivered);
    assert_int_equal(w[0].b.t.mock->n_host, w[1].b.t.mock->n_host);
    for (i = 0; i < w[0].b.t.mock->n_delivered && i < MOCK_MAX_PKTS; i++) {
        const struct mock_pkt *p0 = &w[0].b.t.mock->delivered[i];
        const struct mock_pkt *p1 = &w[1].b.t.mock->delivered[i];

        assert_int_equal(p0->len, p1->len);
        assert_memory_equal(p0->data, p1->data, p0->len);
        assert_ptr_equal(p0->ifp == w[0].b.ifs[0], p1->ifp == w[1].b.ifs[0]);
    }
    assert_same_counters(&w[0].b, &w[1].b);
}

static void clear_mocks(struct twin w[2])
{
    int k;

    for (k = 0; k < 2; k++) {
        mock_port_clear(w[k].a.t.mock);
        mock_port_clear(w[k].b.t.mock);
    }
}

/* Good and bad packets, both ways, every transform, one and two interfaces. */
static void test_same_as_single(void **state)
{
    static struct test_buf in[NPKT];
    struct twin w[2];
    size_t al, i;
    int mode;

    (void)state;
    for (al = 0; al < IPSECIF_ARRAY_SIZE(algos); al++) {
        for (mode = 0; mode < 4; mode++) {
            bool mixed = (mode & 1) != 0;
            bool interleave = (mode & 2) != 0;
            unsigned n;

            print_message("  %s%s%s\n", algos[al].name, mixed ? " mixed" : "",
                          interleave ? " interleaved" : "");
            twin_up(&w[0], &algos[al], 0);
            twin_up(&w[1], &algos[al], 0);
            output_both(w, NPKT, mixed, interleave);
            n = w[0].a.t.mock->n_sent;
            for (i = 0; i < n; i++) {
                in[i] = wire[i];
            }
            if (mixed && n > 8) {
                uint8_t *h = in[6].mem + in[6].b.off;

                /* A tag failure, a truncated packet, an unknown SPI, and
                 * the first packet again (a duplicate of the same vector). */
                in[2].mem[in[2].b.off + in[2].b.len - 1] ^= 0x01;
                in[3].b.len = 30;
                in[4].mem[in[4].b.off + 20 + 3] ^= 0x40;
                in[n - 1] = in[0];
                in[n - 1].b.base = in[n - 1].mem;
                /* From an address no tunnel has: host traffic, which takes
                 * the per-packet path in the middle of the vector. */
                h[15] = 99;
                ipsecif_store16(h + 10, 0);
                ipsecif_store16(h + 10, ipsecif_csum_fold(ipsecif_csum_add(0, h, 20)));
                mock_port_host(w[0].b.t.mock);
                mock_port_host(w[1].b.t.mock);
            }
            input_both(w, in, n);
            if (!mixed) {
                assert_int_equal(w[1].b.t.mock->n_delivered, n);
            }
            twin_down(&w[0]);
            twin_down(&w[1]);
        }
    }
}

/* A burst carries numbers 1, 2, 3, ... in vector order, per SA, also when
 * interfaces alternate and the vector runs over several slices. */
static void test_sequence_contiguous(void **state)
{
    uint32_t next[2] = {1, 1};
    struct ipsecif_if *ifps[NPKT];
    struct twin w;
    size_t i;

    (void)state;
    twin_up(&w, &algos[0], 0);
    for (i = 0; i < NPKT; i++) {
        test_build_ping(&bufs[1][i], 128, "192.0.2.1", "203.0.113.1", 40, 0);
        views[1][i] = &bufs[1][i].b;
        ifps[i] = w.a.ifs[(i / 3) % 2];
    }
    assert_int_equal(ipsecif_if_output_batch(w.a.t.ctx, NULL, ifps, views[1], NPKT, NOW, res[1]),
                     NPKT);
    assert_int_equal(w.a.t.mock->n_sent, NPKT);
    for (i = 0; i < MOCK_MAX_PKTS && i < NPKT; i++) {
        const struct mock_pkt *p = &w.a.t.mock->sent[i];
        const uint8_t *esp = p->data + p->meta.esp_off;
        int k = ifps[i] == w.a.ifs[0] ? 0 : 1;

        assert_ptr_equal(p->ifp, ifps[i]);
        assert_int_equal(ipsecif_load32(esp), 0x100u + 16u * (unsigned)k);
        assert_int_equal(ipsecif_load32(esp + 4), next[k]++);
    }
    assert_int_equal(next[0] + next[1] - 2, NPKT);
    twin_down(&w);
}

/* Make n outer packets of ipsec0 on w's A side, kept in wire[]. */
static void make_wire(struct twin *w, size_t n)
{
    size_t i;

    mock_port_clear(w->a.t.mock);
    for (i = 0; i < n; i++) {
        test_build_ping(&bufs[0][i], 128, "192.0.2.1", "203.0.113.1", 24 + i, 0);
        assert_int_equal(ipsecif_if_output(w->a.t.ctx, w->a.ifs[0], &bufs[0][i].b, NOW),
                         IPSECIF_OK);
        test_buf_set(&wire[i], 64, w->a.t.mock->sent[i].data, w->a.t.mock->sent[i].len);
    }
}

static int batch_in(struct twin *w, const size_t *order, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        bufs[1][i] = wire[order[i]];
        bufs[1][i].b.base = bufs[1][i].mem;
        views[1][i] = &bufs[1][i].b;
    }
    return ipsecif_input_batch(w->b.t.ctx, views[1], n, NOW, res[1]);
}

/* Replays: a duplicate within one burst, a number seen by an earlier call,
 * a tag failure that leaves the window alone, all in one vector. */
static void test_replay_in_burst(void **state)
{
    const struct ipsecif_stats *st;
    struct ipsecif_sa *sa;
    struct twin w;
    size_t first[] = {0, 1, 1, 2, 0};
    size_t second[] = {3, 0, 6, 4, 5};

    (void)state;
    twin_up(&w, &algos[0], 0);
    make_wire(&w, 8);
    sa = ipsecif_sadb_lookup_spi(w.b.t.ctx, IPSECIF_IPPROTO_ESP, &w.b.ifs[0]->src, 0x100);
    assert_non_null(sa);

    assert_int_equal(batch_in(&w, first, 5), 3);
    assert_int_equal(res[1][0], IPSECIF_OK);
    assert_int_equal(res[1][1], IPSECIF_OK);
    assert_int_equal(res[1][2], IPSECIF_ERR_REPLAY); /* duplicate in the burst */
    assert_int_equal(res[1][3], IPSECIF_OK);
    assert_int_equal(res[1][4], IPSECIF_ERR_REPLAY);
    assert_int_equal(sa->replay_top, 3);
    assert_int_equal(sa->stats.replay, 2);

    /* Packet 4 tampered (tag fails), then the genuine 4 again in the same
     * burst: accepted, since the failure did not move the window. */
    wire[6] = wire[4];
    wire[6].b.base = wire[6].mem;
    wire[6].mem[wire[6].b.off + wire[6].b.len - 2] ^= 0x80;
    assert_int_equal(batch_in(&w, second, 5), 3);
    assert_int_equal(res[1][0], IPSECIF_OK);         /* seq 4 */
    assert_int_equal(res[1][1], IPSECIF_ERR_REPLAY); /* seq 1, taken by the call before */
    assert_int_equal(res[1][2], IPSECIF_ERR_AUTH);   /* seq 5, tampered */
    assert_int_equal(res[1][3], IPSECIF_OK);         /* seq 5, genuine */
    assert_int_equal(res[1][4], IPSECIF_OK);         /* seq 6 */
    assert_int_equal(sa->replay_top, 6);
    assert_int_equal(sa->stats.replay, 3);
    assert_int_equal(sa->stats.auth, 1);
    st = ipsecif_stats_get(w.b.t.ctx);
    assert_int_equal(st->in_replay, 3);
    assert_int_equal(st->in_auth, 1);
    assert_int_equal(st->in_success, 6);
    assert_int_equal(w.b.t.mock->n_delivered, 6);
    twin_down(&w);
}

/* A byte limit reached inside a vector: the SA dies at the same packet as
 * with single calls, and what follows finds no SA. */
static void test_byte_limit(void **state)
{
    struct twin w[2];

    (void)state;
    twin_up(&w[0], &algos[0], 2000);
    twin_up(&w[1], &algos[0], 2000);
    static struct test_buf in[NPKT];
    size_t i, n;

    output_both(w, NPKT, false, true);
    n = w[0].a.t.mock->n_sent;
    assert_true(n < NPKT); /* some found their SA dead */
    assert_true(ipsecif_stats_get(w[1].a.t.ctx)->out_nosa > 0);
    for (i = 0; i < n; i++) {
        in[i] = wire[i];
    }
    input_both(w, in, n);
    clear_mocks(w);
    twin_down(&w[0]);
    twin_down(&w[1]);
}

/* Sequence numbers running out inside a vector: the SA dies at the same
 * packet as with single calls (numbers up to 2^32 - 1 used, none twice). */
static void test_seqwrap(void **state)
{
    struct twin w[2];
    size_t i, k;

    (void)state;
    for (k = 0; k < 2; k++) {
        twin_up(&w[k], &algos[0], 0);
        for (i = 0; i < w[k].a.t.ctx->sadb.n; i++) {
            struct ipsecif_sa *sa = &w[k].a.t.ctx->sadb.tab[i];

            if (sa->in_use && sa->spi == 0x100) {
                sa->seq_out = 0xffffffffu - 5;
            }
        }
    }
    output_both(w, 20, false, true);
    assert_true(ipsecif_stats_get(w[1].a.t.ctx)->out_seqwrap == 1);
    assert_true(ipsecif_stats_get(w[1].a.t.ctx)->out_success < 20);
    twin_down(&w[0]);
    twin_down(&w[1]);
}

/* Arguments: a bad vector is refused whole, a bad packet alone. */
static void test_args(void **state)
{
    struct twin w;

    (void)state;
    twin_up(&w, &algos[0], 0);
    assert_int_equal(ipsecif_if_output_batch(NULL, w.a.ifs[0], NULL, views[1], 1, NOW, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_output_batch(w.a.t.ctx, NULL, NULL, views[1], 1, NOW, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_output_batch(w.a.t.ctx, w.a.ifs[0], NULL, NULL, 1, NOW, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_input_batch(w.b.t.ctx, NULL, 2, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_input_esp_batch(w.b.t.ctx, NULL, views[1], 2, NOW, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_output_batch(w.a.t.ctx, w.a.ifs[0], NULL, NULL, 0, NOW, NULL), 0);

    test_build_ping(&bufs[1][0], 128, "192.0.2.1", "203.0.113.1", 40, 0);
    test_build_ping(&bufs[1][2], 128, "192.0.2.1", "203.0.113.1", 40, 0);
    views[1][0] = &bufs[1][0].b;
    views[1][1] = NULL;
    views[1][2] = &bufs[1][2].b;
    assert_int_equal(ipsecif_if_output_batch(w.a.t.ctx, w.a.ifs[0], NULL, views[1], 3, NOW, res[1]),
                     2);
    assert_int_equal(res[1][1], IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_stats_get(w.a.t.ctx)->out_success, 2);
    twin_down(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_single),  cmocka_unit_test(test_sequence_contiguous),
        cmocka_unit_test(test_replay_in_burst), cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_seqwrap),         cmocka_unit_test(test_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
