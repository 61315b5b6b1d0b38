/* ECN, outer headers, outer parsing and ICMP too-big (lib/ip/ecn.c,
 * lib/esp/outer.c, lib/ip/icmp.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

#define NOT_ECT 0
#define ECT1 1
#define ECT0 2
#define CE 3

/* An Internet checksum written here, not taken from the library. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i + 1 < n; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (n & 1) {
        sum += (uint32_t)p[n - 1] << 8;
    }
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)sum;
}

/* A received checksum verifies when everything sums to 0xffff. */
static bool csum_ok(const uint8_t *p, size_t n)
{
    return fold(sum16(0, p, n)) == 0xffff;
}

static bool csum6_ok(const uint8_t *ip6, const uint8_t *l4, size_t n, uint8_t nh)
{
    uint32_t sum = sum16(0, ip6 + 8, 32);

    sum += (uint32_t)(n >> 16) + (uint32_t)(n & 0xffff) + nh;
    return fold(sum16(sum, l4, n)) == 0xffff;
}

/* ---- ECN (RFC 6040) ---- */

static void test_ecn_encap(void **state)
{
    static const uint8_t dscps[] = {0x00, 0xb8, 0x28, 0xfc};
    size_t d;
    uint8_t ecn;

    (void)state;
    for (d = 0; d < sizeof(dscps); d++) {
        for (ecn = 0; ecn < 4; ecn++) {
            uint8_t inner = (uint8_t)(dscps[d] | ecn);

            /* Normal mode copies the ECN field, CE included (RFC 6040 4.1). */
            assert_int_equal(ipsecif_ecn_encap(inner, true), inner);
            /* Compatibility mode: Not-ECT outside, DSCP still copied. */
            assert_int_equal(ipsecif_ecn_encap(inner, false), dscps[d]);
        }
    }
}

/* RFC 6040 Figure 4, rows = arriving inner, columns = arriving outer. */
static const int fig4[4][4] = {
    /*             outer: Not-ECT   ECT(1)   ECT(0)   CE */
    [NOT_ECT] = {[NOT_ECT] = NOT_ECT, [ECT1] = NOT_ECT, [ECT0] = NOT_ECT, [CE] = -1},
    [ECT1] = {[NOT_ECT] = ECT1, [ECT1] = ECT1, [ECT0] = ECT1, [CE] = CE},
    [ECT0] = {[NOT_ECT] = ECT0, [ECT1] = ECT1, [ECT0] = ECT0, [CE] = CE},
    [CE] = {[NOT_ECT] = CE, [ECT1] = CE, [ECT0] = CE, [CE] = CE},
};

static void test_ecn_decap(void **state)
{
    int in, out;

    (void)state;
    for (in = 0; in < 4; in++) {
        for (out = 0; out < 4; out++) {
            /* The inner DSCP survives, the outer DSCP does not matter. */
            int got = ipsecif_ecn_decap((uint8_t)(0x48 | out), (uint8_t)(0xb8 | in));

            if (fig4[in][out] < 0) {
                assert_int_equal(got, -1);
            } else {
                assert_int_equal(got, 0xb8 | fig4[in][out]);
            }
        }
    }
}

/* ---- Outer headers ---- */

static void ctx_init(struct ipsecif_ctx *ctx, uint8_t ttl, uint16_t ip_id)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg.ttl = ttl;
    ctx->ip_id = ip_id;
}

/* A fake ESP packet: SPI, seq, then a pattern. */
static void fake_esp(struct test_buf *tb, size_t headroom, size_t len)
{
    size_t i;

    test_buf_init(tb, headroom);
    for (i = 0; i < len; i++) {
        tb->mem[headroom + i] = (uint8_t)(i * 7 + 3);
    }
    ipsecif_store32(tb->mem + headroom, 0x12345678);
    tb->b.len = len;
}

struct outer_case {
    const char *src;
    const char *dst;
    uint16_t sport;
    uint16_t dport;
    size_t esp_len;
    uint8_t tos;
    bool df;
    uint8_t cfg_ttl;
};

static const struct outer_case outer_cases[] = {
    {"198.51.100.1", "203.0.113.9", 0, 0, 100, 0x00, true, 0},
    {"198.51.100.1", "203.0.113.9", 0, 0, 57, 0xb9, false, 17},
    {"198.51.100.1", "203.0.113.9", 4500, 4500, 100, 0x02, true, 0},
    {"198.51.100.1", "203.0.113.9", 4500, 61234, 33, 0x03, false, 255},
    {"2001:db8::1", "2001:db8:ffff::2", 0, 0, 100, 0x00, true, 0},
    {"2001:db8::1", "2001:db8:ffff::2", 0, 0, 57, 0xb9, true, 9},
    {"2001:db8::1", "2001:db8:ffff::2", 4500, 4500, 100, 0x02, false, 0},
    {"2001:db8::1", "2001:db8:ffff::2", 4500, 1025, 33, 0xff, false, 1},
};

/* What a case's outer headers come to: addresses, family, UDP, the IP
 * header's and all headers' length, the TTL written. */
struct case_geom {
    struct ipsecif_addr src, dst;
    bool v4, udp;
    size_t iphl, need;
    uint8_t ttl;
};

static struct case_geom geom_of(const struct outer_case *c)
{
    struct case_geom g;

    g.src = test_addr(c->src);
    g.dst = test_addr(c->dst);
    g.v4 = g.src.family == IPSECIF_AF_INET;
    g.udp = c->sport != 0;
    g.iphl = g.v4 ? 20 : 40;
    g.need = g.iphl + (g.udp ? 8 : 0);
    g.ttl = c->cfg_ttl != 0 ? c->cfg_ttl : 64;
    return g;
}

static void test_encap_outer(void **state)
{
    struct ipsecif_ctx ctx;
    struct test_buf tb, orig;
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(outer_cases); k++) {
        const struct outer_case *c = &outer_cases[k];
        struct case_geom g = geom_of(c);
        struct ipsecif_addr src = g.src, dst = g.dst;
        bool v4 = g.v4, udp = g.udp;
        size_t iphl = g.iphl, need = g.need;
        uint8_t ttl = g.ttl;
        struct ipsecif_outer_meta meta;
        const uint8_t *h;

        ctx_init(&ctx, c->cfg_ttl, 0xfffe);
        /* One byte short of headroom: refused, nothing moves. */
        fake_esp(&tb, need - 1, c->esp_len);
        orig = tb;
        assert_int_equal(
            ipsecif_encap_outer(&ctx, &tb.b, &src, &dst, c->sport, c->dport, c->tos, c->df, &meta),
            IPSECIF_ERR_NOROOM);
        assert_int_equal(tb.b.off, orig.b.off);
        assert_int_equal(tb.b.len, orig.b.len);
        assert_memory_equal(tb.mem, orig.mem, sizeof(tb.mem));
        assert_int_equal(ctx.ip_id, 0xfffe);

        /* Exactly enough. */
        fake_esp(&tb, need, c->esp_len);
        orig = tb;
        assert_int_equal(
            ipsecif_encap_outer(&ctx, &tb.b, &src, &dst, c->sport, c->dport, c->tos, c->df, &meta),
            IPSECIF_OK);
        assert_int_equal(tb.b.off, 0);
        assert_int_equal(tb.b.len, need + c->esp_len);
        h = tb.mem;
        /* The ESP packet is untouched behind the headers. */
        assert_memory_equal(h + need, orig.mem + need, c->esp_len);
        if (v4) {
            assert_int_equal(h[0], 0x45);
            assert_int_equal(h[1], c->tos);
            assert_int_equal(ipsecif_load16(h + 2), need + c->esp_len);
            assert_int_equal(ipsecif_load16(h + 4), 0xfffe);
            assert_int_equal(ipsecif_load16(h + 6), c->df ? 0x4000 : 0);
            assert_int_equal(h[8], ttl);
            assert_int_equal(h[9], udp ? 17 : 50);
            assert_true(csum_ok(h, 20));
            assert_memory_equal(h + 12, src.bytes, 4);
            assert_memory_equal(h + 16, dst.bytes, 4);
            assert_int_equal(ctx.ip_id, 0xffff);
        } else {
            assert_int_equal(h[0] >> 4, 6);
            assert_int_equal(((h[0] & 0xf) << 4) | (h[1] >> 4), c->tos);
            assert_int_equal(h[1] & 0xf, 0); /* flow label 0 */
            assert_int_equal(h[2], 0);
            assert_int_equal(h[3], 0);
            assert_int_equal(ipsecif_load16(h + 4), need - 40 + c->esp_len);
            assert_int_equal(h[6], udp ? 17 : 50);
            assert_int_equal(h[7], ttl);
            assert_memory_equal(h + 8, src.bytes, 16);
            assert_memory_equal(h + 24, dst.bytes, 16);
            assert_int_equal(ctx.ip_id, 0xfffe); /* IPv6 has no id */
        }
        if (udp) {
            const uint8_t *u = h + iphl;

            assert_int_equal(ipsecif_load16(u), c->sport);
            assert_int_equal(ipsecif_load16(u + 2), c->dport);
            assert_int_equal(ipsecif_load16(u + 4), 8 + c->esp_len);
            if (v4) {
                assert_int_equal(ipsecif_load16(u + 6), 0); /* RFC 3948: zero */
            } else {
                assert_int_not_equal(ipsecif_load16(u + 6), 0);
                assert_true(csum6_ok(h, u, 8 + c->esp_len, 17));
            }
        }
        assert_int_equal(meta.family, src.family);
        assert_memory_equal(&meta.src, &src, sizeof(src));
        assert_memory_equal(&meta.dst, &dst, sizeof(dst));
        assert_int_equal(meta.ttl, ttl);
        assert_int_equal(meta.tos, c->tos);
        assert_int_equal(meta.ip_hlen, iphl);
        assert_int_equal(meta.sport, c->sport);
        assert_int_equal(meta.dport, c->dport);
        assert_int_equal(meta.esp_off, need);

        /* The id goes on counting across packets (IPv4). */
        fake_esp(&tb, need, c->esp_len);
        assert_int_equal(
            ipsecif_encap_outer(&ctx, &tb.b, &src, &dst, c->sport, c->dport, c->tos, c->df, &meta),
            IPSECIF_OK);
        if (v4) {
            assert_int_equal(ipsecif_load16(tb.mem + 4), 0xffff);
            assert_true(csum_ok(tb.mem, 20));
            assert_int_equal(ctx.ip_id, 0);
        }
    }
}

static void test_encap_outer_args(void **state)
{
    struct ipsecif_ctx ctx;
    struct test_buf tb;
    struct ipsecif_addr a4 = test_addr("198.51.100.1");
    struct ipsecif_addr a6 = test_addr("2001:db8::1");
    struct ipsecif_addr none;
    struct ipsecif_outer_meta meta;

    (void)state;
    memset(&none, 0, sizeof(none));
    ctx_init(&ctx, 0, 1);
    fake_esp(&tb, 64, 40);
    assert_int_equal(ipsecif_encap_outer(&ctx, &tb.b, &a4, &a6, 0, 0, 0, false, &meta),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_encap_outer(&ctx, &tb.b, &none, &none, 0, 0, 0, false, &meta),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_encap_outer(&ctx, &tb.b, &a4, &a4, 0, 0, 0, false, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(tb.b.off, 64);
    /* An IPv6 UDP checksum that sums to zero is sent as 0xffff: search a
     * payload whose checksum would be 0 by adjusting two bytes. */
    {
        uint16_t fix;
        int found = 0;

        for (fix = 0; fix < 0xffff && !found; fix++) {
            fake_esp(&tb, 48, 40);
            ipsecif_store16(tb.mem + 48 + 38, fix);
            assert_int_equal(
                ipsecif_encap_outer(&ctx, &tb.b, &a6, &a6, 4500, 4500, 0, false, &meta),
                IPSECIF_OK);
            if (ipsecif_load16(tb.mem + 46) == 0xffff) {
                found = 1;
                assert_true(csum6_ok(tb.mem, tb.mem + 40, 48, 17));
            }
            assert_int_not_equal(ipsecif_load16(tb.mem + 46), 0);
        }
        assert_true(found);
    }
}

/* An interface's template writes what ipsecif_encap_outer() writes, byte
 * for byte, meta and IPv4 id included, over several packets. */
static void test_encap_tpl(void **state)
{
    struct ipsecif_ctx ca, cb;
    struct test_buf ta, tb, orig;
    struct ipsecif_outer_tpl t;
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(outer_cases); k++) {
        const struct outer_case *c = &outer_cases[k];
        struct case_geom g = geom_of(c);
        struct ipsecif_addr src = g.src, dst = g.dst;
        bool v4 = g.v4;
        size_t need = g.need;
        uint8_t ttl = g.ttl;
        struct ipsecif_outer_meta ma, mb;
        unsigned n;

        ipsecif_outer_tpl_set(&t, &src, &dst, c->sport, c->dport, ttl);
        assert_int_equal(t.meta.esp_off, need);
        assert_int_equal(t.max_len, 0xffff - (v4 ? need : need - 40));
        ctx_init(&ca, c->cfg_ttl, 0xfffe);
        ctx_init(&cb, c->cfg_ttl, 0xfffe);
        /* One byte short of headroom: refused, nothing moves. */
        fake_esp(&tb, need - 1, c->esp_len);
        orig = tb;
        assert_int_equal(ipsecif_encap_tpl(&cb, &tb.b, &t, c->tos, c->df, &mb), IPSECIF_ERR_NOROOM);
        assert_int_equal(tb.b.off, orig.b.off);
        assert_int_equal(tb.b.len, orig.b.len);
        assert_memory_equal(tb.mem, orig.mem, sizeof(tb.mem));
        assert_int_equal(cb.ip_id, 0xfffe);
        for (n = 0; n < 3; n++) {
            size_t len = c->esp_len + n * 13;
            uint8_t tos = (uint8_t)(c->tos ^ (n * 0x41));
            bool df = c->df != (n == 1);

            fake_esp(&ta, 64, len);
            fake_esp(&tb, 64, len);
            assert_int_equal(
                ipsecif_encap_outer(&ca, &ta.b, &src, &dst, c->sport, c->dport, tos, df, &ma),
                IPSECIF_OK);
            memset(&mb, 0xa5, sizeof(mb));
            assert_int_equal(ipsecif_encap_tpl(&cb, &tb.b, &t, tos, df, &mb), IPSECIF_OK);
            assert_int_equal(tb.b.off, ta.b.off);
            assert_int_equal(tb.b.len, ta.b.len);
            assert_memory_equal(tb.mem, ta.mem, sizeof(ta.mem));
            assert_int_equal(mb.family, ma.family);
            assert_memory_equal(&mb.src, &ma.src, sizeof(ma.src));
            assert_memory_equal(&mb.dst, &ma.dst, sizeof(ma.dst));
            assert_int_equal(mb.ttl, ma.ttl);
            assert_int_equal(mb.tos, ma.tos);
            assert_int_equal(mb.ip_hlen, ma.ip_hlen);
            assert_int_equal(mb.sport, ma.sport);
            assert_int_equal(mb.dport, ma.dport);
            assert_int_equal(mb.esp_off, ma.esp_off);
            assert_int_equal(cb.ip_id, ca.ip_id);
        }
        /* Longer than the length fields hold: refused, the longest not. */
        {
            size_t cap = 64 + (size_t)t.max_len + 1;
            uint8_t *big = calloc(1, cap);
            struct ipsecif_buf b;

            assert_non_null(big);
            b.base = big;
            b.cap = cap;
            b.off = 64;
            b.len = (size_t)t.max_len + 1;
            assert_int_equal(ipsecif_encap_tpl(&cb, &b, &t, 0, false, &mb), IPSECIF_ERR_ARG);
            assert_int_equal(b.off, 64);
            b.len = t.max_len;
            assert_int_equal(ipsecif_encap_tpl(&cb, &b, &t, 0, false, &mb), IPSECIF_OK);
            assert_int_equal(b.off, 64 - need);
            if (v4) {
                assert_int_equal(ipsecif_load16(big + 64 - need + 2), 0xffff);
            } else {
                assert_int_equal(ipsecif_load16(big + 64 - need + 4), 0xffff);
            }
            free(big);
        }
    }
    /* A pair of two families, or of no family, has no outer header. */
    {
        struct ipsecif_addr a4 = test_addr("198.51.100.1");
        struct ipsecif_addr a6 = test_addr("2001:db8::1");
        struct ipsecif_addr none;
        struct ipsecif_outer_meta m;

        memset(&none, 0, sizeof(none));
        ctx_init(&ca, 0, 1);
        ipsecif_outer_tpl_set(&t, &a4, &a6, 0, 0, 64);
        assert_int_equal(t.meta.esp_off, 0);
        fake_esp(&ta, 64, 40);
        assert_int_equal(ipsecif_encap_tpl(&ca, &ta.b, &t, 0, false, &m), IPSECIF_ERR_ARG);
        ipsecif_outer_tpl_set(&t, &none, &none, 4500, 4500, 64);
        assert_int_equal(ipsecif_encap_tpl(&ca, &ta.b, &t, 0, false, &m), IPSECIF_ERR_ARG);
        assert_int_equal(ta.b.off, 64);
        assert_int_equal(ca.ip_id, 1);
    }
}

/* ---- Parsing outer headers ---- */

/* Build an outer packet with the library, then parse it back. */
static void build_outer(struct test_buf *tb, const char *s, const char *d, uint16_t sport,
                        uint16_t dport, size_t esp_len, uint8_t tos)
{
    struct ipsecif_ctx ctx;
    struct ipsecif_addr src = test_addr(s);
    struct ipsecif_addr dst = test_addr(d);
    struct ipsecif_outer_meta meta;

    ctx_init(&ctx, 0, 7);
    fake_esp(tb, 64, esp_len);
    assert_int_equal(ipsecif_encap_outer(&ctx, &tb->b, &src, &dst, sport, dport, tos, true, &meta),
                     IPSECIF_OK);
}

static void test_decap_roundtrip(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(outer_cases); k++) {
        const struct outer_case *c = &outer_cases[k];
        struct test_buf tb, esp;
        struct ipsecif_outer_meta meta;
        uint8_t proto = 0;
        size_t pad;

        for (pad = 0; pad < 3; pad++) {
            build_outer(&tb, c->src, c->dst, c->sport, c->dport, c->esp_len, c->tos);
            fake_esp(&esp, 0, c->esp_len);
            /* Link-layer padding after the IP packet is dropped. */
            memset(tb.mem + tb.b.off + tb.b.len, 0xee, pad * 5);
            tb.b.len += pad * 5;
            assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_OK);
            assert_int_equal(proto, c->sport != 0 ? 17 : 50);
            assert_int_equal(tb.b.len, c->esp_len);
            assert_memory_equal(tb.mem + tb.b.off, esp.mem, c->esp_len);
            {
                struct ipsecif_addr s = test_addr(c->src);
                struct ipsecif_addr d = test_addr(c->dst);

                assert_memory_equal(&meta.src, &s, sizeof(s));
                assert_memory_equal(&meta.dst, &d, sizeof(d));
                assert_int_equal(meta.family, s.family);
            }
            assert_int_equal(meta.tos, c->tos);
            assert_int_equal(meta.ttl, 64);
            assert_int_equal(meta.sport, c->sport);
            assert_int_equal(meta.dport, c->dport);
            assert_int_equal(meta.ip_hlen, strchr(c->src, ':') != NULL ? 40 : 20);
            assert_int_equal(meta.esp_off, meta.ip_hlen + (c->sport ? 8 : 0));
            assert_int_equal(tb.b.off, 64);
        }
    }
}

/* Set the IPv4 header checksum right after a test edit. */
static void fix4(uint8_t *h)
{
    size_t ihl = (size_t)(h[0] & 0xf) * 4;

    h[10] = 0;
    h[11] = 0;
    ipsecif_store16(h + 10, (uint16_t)~fold(sum16(0, h, ihl)));
}

enum edit4 {
    E4_VERSION,
    E4_IHL_SMALL,
    E4_TOTLEN_BIG,
    E4_TOTLEN_SMALL,
    E4_CSUM,
    E4_MF,
    E4_OFFSET,
    E4_UDP_LEN_SMALL,
    E4_UDP_LEN_BIG,
    E4_PROTO_TCP,
    E4_PROTO_AH,
    E4_OPTIONS,
    E4_COUNT
};

static void test_decap_ipv4_invalid(void **state)
{
    int e;

    (void)state;
    for (e = 0; e < E4_COUNT; e++) {
        struct test_buf tb, before;
        struct ipsecif_outer_meta meta;
        uint8_t proto = 0;
        uint8_t *h;
        int want = IPSECIF_ERR_MALFORMED;
        bool udp = e == E4_UDP_LEN_SMALL || e == E4_UDP_LEN_BIG;
        int rc;

        build_outer(&tb, "198.51.100.1", "203.0.113.9", udp ? 4500 : 0, udp ? 4500 : 0, 60, 0);
        h = tb.mem + tb.b.off;
        switch (e) {
        case E4_VERSION:
            h[0] = 0x55;
            break;
        case E4_IHL_SMALL:
            h[0] = 0x44;
            break;
        case E4_TOTLEN_BIG:
            ipsecif_store16(h + 2, (uint16_t)(tb.b.len + 1));
            break;
        case E4_TOTLEN_SMALL:
            ipsecif_store16(h + 2, 19);
            break;
        case E4_CSUM:
            h[11] ^= 1;
            break;
        case E4_MF:
            h[6] |= 0x20;
            break;
        case E4_OFFSET:
            ipsecif_store16(h + 6, 0x0001);
            break;
        case E4_UDP_LEN_SMALL:
            ipsecif_store16(h + 24, 7);
            break;
        case E4_UDP_LEN_BIG:
            ipsecif_store16(h + 24, (uint16_t)(tb.b.len - 20 + 1));
            break;
        case E4_PROTO_TCP:
            h[9] = 6;
            want = IPSECIF_ERR_PROTO;
            break;
        case E4_PROTO_AH:
            h[9] = 51;
            want = IPSECIF_ERR_PROTO;
            break;
        case E4_OPTIONS:
            /* IHL 6 with a 4-byte option eaten from the ESP bytes: valid. */
            h[0] = 0x46;
            want = IPSECIF_OK;
            break;
        }
        if (e != E4_CSUM) {
            fix4(h);
        }
        before = tb;
        rc = ipsecif_decap_outer(&tb.b, &meta, &proto);
        if (rc != want) {
            fail_msg("edit %d: rc %d want %d", e, rc, want);
        }
        if (want != IPSECIF_OK) {
            /* A refused packet is left as it was. */
            assert_int_equal(tb.b.off, before.b.off);
            assert_int_equal(tb.b.len, before.b.len);
            assert_memory_equal(tb.mem, before.mem, sizeof(tb.mem));
        } else {
            assert_int_equal(meta.ip_hlen, 24);
            assert_int_equal(tb.b.len, 60 - 4);
        }
        if (want == IPSECIF_ERR_PROTO) {
            assert_int_equal(proto, h[9]);
        }
    }
}

/* An IPv6 packet with a chain of extension headers before ESP or UDP. */
static size_t build6(uint8_t *p, const uint8_t *chain, size_t nchain, uint8_t last, size_t payload)
{
    struct ipsecif_addr s = test_addr("2001:db8::1");
    struct ipsecif_addr d = test_addr("2001:db8::2");
    size_t off = 40, i;
    uint8_t *nhp = p + 6;

    memset(p, 0, 40);
    p[0] = 0x60;
    p[7] = 33;
    memcpy(p + 8, s.bytes, 16);
    memcpy(p + 24, d.bytes, 16);
    for (i = 0; i < nchain; i++) {
        *nhp = chain[i];
        memset(p + off, 0, 16);
        nhp = p + off;
        if (chain[i] == 44) {
            off += 8;
        } else {
            p[off + 1] = 1; /* 16 bytes */
            off += 16;
        }
    }
    *nhp = last;
    for (i = 0; i < payload; i++) {
        p[off + i] = (uint8_t)i;
    }
    if (last == 17) {
        ipsecif_store16(p + off, 4500);
        ipsecif_store16(p + off + 2, 4500);
        ipsecif_store16(p + off + 4, (uint16_t)payload);
    }
    ipsecif_store16(p + 4, (uint16_t)(off - 40 + payload));
    return off + payload;
}

static void test_decap_ipv6_chain(void **state)
{
    static const struct {
        uint8_t chain[4];
        size_t n;
        uint8_t last;
        int want;
        size_t hlen;
    } cases[] = {
        {{0}, 0, 50, IPSECIF_OK, 40},
        {{0}, 1, 50, IPSECIF_OK, 56},               /* hop-by-hop */
        {{0, 60}, 2, 50, IPSECIF_OK, 72},           /* hop-by-hop, dest opts */
        {{0, 43, 60}, 3, 17, IPSECIF_OK, 88},       /* + routing, then UDP */
        {{60, 0}, 2, 50, IPSECIF_ERR_MALFORMED, 0}, /* hop-by-hop not first */
        {{44}, 1, 50, IPSECIF_ERR_MALFORMED, 0},    /* fragment */
        {{60, 44}, 2, 17, IPSECIF_ERR_MALFORMED, 0},
        {{60}, 1, 6, IPSECIF_ERR_PROTO, 0}, /* TCP */
        {{0}, 0, 59, IPSECIF_ERR_PROTO, 0}, /* no next header */
    };
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(cases); k++) {
        struct test_buf tb;
        struct ipsecif_outer_meta meta;
        uint8_t proto = 0;
        size_t len;
        int rc;

        test_buf_init(&tb, 32);
        len = build6(tb.mem + 32, cases[k].chain, cases[k].n, cases[k].last, 48);
        tb.mem[33] = 0xa0; /* traffic class 0x0a */
        tb.mem[32] = 0x60;
        tb.b.len = len;
        rc = ipsecif_decap_outer(&tb.b, &meta, &proto);
        if (rc != cases[k].want) {
            fail_msg("case %zu: rc %d want %d", k, rc, cases[k].want);
        }
        if (rc == IPSECIF_OK) {
            assert_int_equal(proto, cases[k].last);
            assert_int_equal(meta.ip_hlen, cases[k].hlen);
            assert_int_equal(meta.esp_off, cases[k].hlen + (cases[k].last == 17 ? 8 : 0));
            assert_int_equal(meta.tos, 0x0a);
            assert_int_equal(meta.ttl, 33);
            assert_int_equal(tb.b.off, 32 + meta.esp_off);
            assert_int_equal(tb.b.len, len - meta.esp_off);
        } else {
            assert_int_equal(tb.b.off, 32);
            assert_int_equal(tb.b.len, len);
        }
    }
}

static void test_decap_ipv6_invalid(void **state)
{
    static const uint8_t hbh[] = {0};
    static const uint8_t rt[] = {43};
    struct test_buf tb;
    struct ipsecif_outer_meta meta;
    uint8_t proto;
    size_t len;

    (void)state;
    /* Payload length beyond the buffer. */
    test_buf_init(&tb, 0);
    len = build6(tb.mem, NULL, 0, 50, 40);
    tb.b.len = len - 1;
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    /* Jumbogram (payload length 0). */
    tb.b.len = len;
    ipsecif_store16(tb.mem + 4, 0);
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    /* Wrong version. */
    len = build6(tb.mem, NULL, 0, 50, 40);
    tb.mem[0] = 0x70;
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    /* An extension header longer than the packet. */
    len = build6(tb.mem, hbh, 1, 50, 8);
    tb.b.len = len;
    tb.mem[41] = 3; /* 32 bytes, only 24 left */
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    /* A routing header with segments left: still in transit, not ours. */
    len = build6(tb.mem, rt, 1, 50, 40);
    tb.b.len = len;
    tb.mem[43] = 1;
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_PROTO);
    /* UDP shorter than its header, or claiming more than there is. */
    len = build6(tb.mem, NULL, 0, 17, 40);
    tb.b.len = len;
    ipsecif_store16(tb.mem + 44, 7);
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    ipsecif_store16(tb.mem + 44, 41);
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_ERR_MALFORMED);
    ipsecif_store16(tb.mem + 44, 39);
    assert_int_equal(ipsecif_decap_outer(&tb.b, &meta, &proto), IPSECIF_OK);
    assert_int_equal(tb.b.len, 31);
}

/*
 * Every truncation of valid packets, each in a heap buffer of exactly that
 * size so a read past the end shows under valgrind or ASan: never a crash,
 * always MALFORMED.
 */
static void test_decap_truncations(void **state)
{
    static const uint8_t chain[] = {0, 43, 60};
    struct test_buf tb;
    uint8_t pkts[4][400];
    size_t lens[4];
    size_t k, n;

    (void)state;
    build_outer(&tb, "198.51.100.1", "203.0.113.9", 0, 0, 60, 0);
    lens[0] = tb.b.len;
    memcpy(pkts[0], tb.mem + tb.b.off, tb.b.len);
    build_outer(&tb, "198.51.100.1", "203.0.113.9", 4500, 4500, 60, 0);
    lens[1] = tb.b.len;
    memcpy(pkts[1], tb.mem + tb.b.off, tb.b.len);
    build_outer(&tb, "2001:db8::1", "2001:db8::2", 4500, 4500, 60, 0);
    lens[2] = tb.b.len;
    memcpy(pkts[2], tb.mem + tb.b.off, tb.b.len);
    lens[3] = build6(pkts[3], chain, 3, 17, 60);

    for (k = 0; k < 4; k++) {
        for (n = 0; n <= lens[k]; n++) {
            uint8_t *mem = malloc(n == 0 ? 1 : n);
            struct ipsecif_buf b;
            struct ipsecif_outer_meta meta;
            uint8_t proto;
            int rc;

            assert_non_null(mem);
            memcpy(mem, pkts[k], n);
            b.base = mem;
            b.cap = n;
            b.off = 0;
            b.len = n;
            rc = ipsecif_decap_outer(&b, &meta, &proto);
            if (n < lens[k]) {
                if (rc != IPSECIF_ERR_MALFORMED) {
                    fail_msg("packet %zu cut to %zu: rc %d", k, n, rc);
                }
                assert_int_equal(b.len, n);
            } else {
                assert_int_equal(rc, IPSECIF_OK);
            }
            free(mem);
        }
    }
}

/* Random bytes with a plausible first byte: any verdict, never a crash, and
 * a success leaves the view inside the buffer. */
static void test_decap_random(void **state)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    unsigned iter;

    (void)state;
    for (iter = 0; iter < 20000; iter++) {
        size_t n, i;
        uint8_t *mem;
        struct ipsecif_buf b;
        struct ipsecif_outer_meta meta;
        uint8_t proto;
        int rc;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n = (size_t)(x % 120);
        mem = malloc(n == 0 ? 1 : n);
        assert_non_null(mem);
        for (i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mem[i] = (uint8_t)x;
        }
        if (n > 0) {
            mem[0] = (uint8_t)((iter & 1) ? 0x45 : 0x60);
        }
        if (n > 9 && (iter & 2)) {
            mem[9] = 50;
            mem[6] = (uint8_t)((iter & 1) ? mem[6] : 0);
        }
        if (n >= 6 && (iter & 4)) {
            ipsecif_store16(mem + ((iter & 1) ? 2 : 4), (uint16_t)((iter & 1) ? n : n - 40));
        }
        b.base = mem;
        b.cap = n;
        b.off = 0;
        b.len = n;
        rc = ipsecif_decap_outer(&b, &meta, &proto);
        assert_true(rc == IPSECIF_OK || rc == IPSECIF_ERR_MALFORMED || rc == IPSECIF_ERR_PROTO);
        assert_true(b.off + b.len <= n);
        free(mem);
    }
}

/* ---- ICMP too big ---- */

static void test_toobig_v4(void **state)
{
    static const size_t payloads[] = {0, 100, 520, 521, 1400};
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(payloads); k++) {
        struct test_buf tb, orig;
        struct ipsecif_addr me = test_addr("192.0.2.254");
        size_t olen = test_build_ping(&tb, 28, "192.0.2.1", "203.0.113.1", payloads[k], 0x10);
        size_t quote = olen < 548 ? olen : 548;
        const uint8_t *h;

        orig = tb;
        assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me, 1300), IPSECIF_OK);
        h = tb.mem + tb.b.off;
        assert_int_equal(tb.b.off, 0);
        assert_int_equal(tb.b.len, 28 + quote);
        assert_true(tb.b.len <= 576);
        assert_int_equal(h[0], 0x45);
        assert_int_equal(ipsecif_load16(h + 2), 28 + quote);
        assert_int_equal(h[8], 64);
        assert_int_equal(h[9], 1);
        assert_true(csum_ok(h, 20));
        assert_memory_equal(h + 12, me.bytes, 4);
        assert_memory_equal(h + 16, orig.mem + 28 + 12, 4); /* back to the sender */
        assert_int_equal(h[20], 3);
        assert_int_equal(h[21], 4);
        assert_int_equal(ipsecif_load16(h + 24), 0);
        assert_int_equal(ipsecif_load16(h + 26), 1300);
        assert_true(csum_ok(h + 20, 8 + quote));
        assert_memory_equal(h + 28, orig.mem + 28, quote);
    }
}

static void test_toobig_v6(void **state)
{
    static const size_t payloads[] = {0, 100, 1184, 1185, 1400, 8000};
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(payloads); k++) {
        struct test_buf tb, orig;
        struct ipsecif_addr me = test_addr("2001:db8::fe");
        size_t olen = test_build_ping(&tb, 48, "2001:db8::1", "2001:db8:1::1", payloads[k], 0);
        size_t quote = olen < 1232 ? olen : 1232;
        const uint8_t *h;

        orig = tb;
        assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me, 70000), IPSECIF_OK);
        h = tb.mem + tb.b.off;
        assert_int_equal(tb.b.off, 0);
        assert_int_equal(tb.b.len, 48 + quote);
        assert_true(tb.b.len <= 1280);
        assert_int_equal(h[0], 0x60);
        assert_int_equal(h[1], 0);
        assert_int_equal(ipsecif_load16(h + 4), 8 + quote);
        assert_int_equal(h[6], 58);
        assert_int_equal(h[7], 64);
        assert_memory_equal(h + 8, me.bytes, 16);
        assert_memory_equal(h + 24, orig.mem + 48 + 8, 16);
        assert_int_equal(h[40], 2);
        assert_int_equal(h[41], 0);
        assert_int_equal(ipsecif_load32(h + 44), 70000);
        assert_true(csum6_ok(h, h + 40, 8 + quote, 58));
        assert_memory_equal(h + 48, orig.mem + 48, quote);
    }
}

static void test_toobig_refusals(void **state)
{
    struct test_buf tb, orig;
    struct ipsecif_addr me4 = test_addr("192.0.2.254");
    struct ipsecif_addr me6 = test_addr("2001:db8::fe");
    int type;

    (void)state;
    /* Headroom one short: nothing changes. */
    test_build_ping(&tb, 27, "192.0.2.1", "203.0.113.1", 600, 0);
    orig = tb;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_NOROOM);
    assert_int_equal(tb.b.off, 27);
    assert_int_equal(tb.b.len, orig.b.len);
    assert_memory_equal(tb.mem, orig.mem, sizeof(tb.mem));
    test_build_ping(&tb, 47, "2001:db8::1", "2001:db8:1::1", 1300, 0);
    orig = tb;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_ERR_NOROOM);
    assert_int_equal(tb.b.off, 47);
    assert_memory_equal(tb.mem, orig.mem, sizeof(tb.mem));

    /* The source must be of the packet's family. */
    test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1300), IPSECIF_ERR_ARG);
    test_build_ping(&tb, 64, "2001:db8::1", "2001:db8:1::1", 1300, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1280), IPSECIF_ERR_ARG);

    /* Never an ICMP error about an ICMP error (IPv4 types 3, 4, 5, 11, 12). */
    for (type = 0; type < 256; type++) {
        bool err = type == 3 || type == 4 || type == 5 || type == 11 || type == 12;

        test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
        tb.mem[64 + 20] = (uint8_t)type;
        assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300),
                         err ? IPSECIF_ERR_DISCARD : IPSECIF_OK);
    }
    /* ICMPv6 errors are types below 128. */
    for (type = 0; type < 256; type++) {
        test_build_ping(&tb, 64, "2001:db8::1", "2001:db8:1::1", 1300, 0);
        tb.mem[64 + 40] = (uint8_t)type;
        assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280),
                         type < 128 ? IPSECIF_ERR_DISCARD : IPSECIF_OK);
    }
    /* Non-first IPv4 fragment; a first fragment (MF, offset 0) is answered. */
    test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
    ipsecif_store16(tb.mem + 64 + 6, 0x0010);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_DISCARD);
    test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
    ipsecif_store16(tb.mem + 64 + 6, 0x2000);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_OK);
    /* Sources that are no single host, and multicast destinations. */
    test_build_ping(&tb, 64, "0.0.0.0", "203.0.113.1", 600, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_DISCARD);
    test_build_ping(&tb, 64, "224.0.0.5", "203.0.113.1", 600, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_DISCARD);
    test_build_ping(&tb, 64, "192.0.2.1", "239.1.1.1", 600, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_DISCARD);
    test_build_ping(&tb, 64, "::", "2001:db8:1::1", 1300, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_ERR_DISCARD);
    test_build_ping(&tb, 64, "ff02::1", "2001:db8:1::1", 1300, 0);
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_ERR_DISCARD);
    /* Not IP at all, or too short to tell. */
    test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
    tb.mem[64] = 0x55;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_MALFORMED);
    tb.b.len = 0;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_MALFORMED);
    test_build_ping(&tb, 64, "192.0.2.1", "203.0.113.1", 600, 0);
    tb.b.len = 19;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me4, 1300), IPSECIF_ERR_MALFORMED);
}

/* A non-first IPv6 fragment gets no answer; a first fragment does, and the
 * walk looks past the fragment header for ICMPv6 errors. */
static void test_toobig_v6_fragments(void **state)
{
    static const uint8_t frag[] = {44};
    static const uint8_t dst_frag[] = {60, 44};
    struct ipsecif_addr me6 = test_addr("2001:db8::fe");
    struct test_buf tb;
    size_t len;

    (void)state;
    test_buf_init(&tb, 64);
    len = build6(tb.mem + 64, frag, 1, 17, 1300);
    tb.b.len = len;
    ipsecif_store16(tb.mem + 64 + 42, 0x0008); /* offset 1 */
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_ERR_DISCARD);

    test_buf_init(&tb, 64);
    len = build6(tb.mem + 64, dst_frag, 2, 17, 1300);
    tb.b.len = len;
    ipsecif_store16(tb.mem + 64 + 58, 0x0001); /* offset 0, M */
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_OK);

    test_buf_init(&tb, 64);
    len = build6(tb.mem + 64, dst_frag, 2, 58, 1300);
    tb.b.len = len;
    tb.mem[64 + 64] = 1; /* destination unreachable inside */
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_ERR_DISCARD);
    tb.mem[64 + 64] = 128;
    assert_int_equal(ipsecif_icmp_toobig(&tb.b, &me6, 1280), IPSECIF_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ecn_encap),           cmocka_unit_test(test_ecn_decap),
        cmocka_unit_test(test_encap_outer),         cmocka_unit_test(test_encap_outer_args),
        cmocka_unit_test(test_encap_tpl),           cmocka_unit_test(test_decap_roundtrip),
        cmocka_unit_test(test_decap_ipv4_invalid),  cmocka_unit_test(test_decap_ipv6_chain),
        cmocka_unit_test(test_decap_ipv6_invalid),  cmocka_unit_test(test_decap_truncations),
        cmocka_unit_test(test_decap_random),        cmocka_unit_test(test_toobig_v4),
        cmocka_unit_test(test_toobig_v6),           cmocka_unit_test(test_toobig_refusals),
        cmocka_unit_test(test_toobig_v6_fragments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
