/*
 * Fragments (lib/ip/reass.c, lib/ip/frag.c): reassembly of IPv4 and IPv6
 * fragments in order, out of order, with duplicates, overlaps (RFC 5722),
 * timeouts and every limit, garbage and tiny first fragments; whole packets
 * passing untouched; fragmentation (sizes, offsets, MF, checksums, copied
 * options, the IPv6 unfragmentable part) and the round trip of a packet
 * cut by the fragmenter and put together by the reassembler.
 *
 * Fragments are cut by hand here (cut4, cut6), not by the fragmenter, so
 * the two halves are tested against an independent writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipsecif/ipsecif.h"

#define HEAD 128
#define TAIL 64
#define BIG 70000

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    size_t i;

    for (i = 0; i + 1 < n; i += 2) {
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (n & 1) {
        s += (uint32_t)p[n - 1] << 8;
    }
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return (uint16_t)~s;
}

static void fix4(uint8_t *p)
{
    size_t ihl = (size_t)(p[0] & 15) * 4;

    st16(p + 10, 0);
    st16(p + 10, csum(p, ihl));
}

/* A whole IPv4 datagram of len bytes: header (with opt_len bytes of
 * options from opts), proto, then a byte pattern. */
static size_t mk4(uint8_t *p, size_t len, uint8_t proto, uint16_t id, bool df, const uint8_t *opts,
                  size_t opt_len)
{
    size_t ihl = 20 + opt_len;
    size_t i;

    memset(p, 0, ihl);
    p[0] = (uint8_t)(0x40 | (ihl / 4));
    st16(p + 2, (uint16_t)len);
    st16(p + 4, id);
    st16(p + 6, df ? 0x4000 : 0);
    p[8] = 64;
    p[9] = proto;
    p[12] = 198, p[13] = 51, p[14] = 100, p[15] = 1;
    p[16] = 198, p[17] = 51, p[18] = 100, p[19] = 2;
    if (opt_len > 0) {
        memcpy(p + 20, opts, opt_len);
    }
    for (i = ihl; i < len; i++) {
        p[i] = (uint8_t)(i * 7 + 3);
    }
    fix4(p);
    return len;
}

/* A whole IPv6 datagram: header, ext (ext_len bytes, starting with the
 * next header 0 = hop-by-hop when ext_len > 0), UDP-numbered pattern. */
static size_t mk6(uint8_t *p, size_t len, const uint8_t *ext, size_t ext_len)
{
    size_t i;

    memset(p, 0, 40);
    p[0] = 0x60;
    st16(p + 4, (uint16_t)(len - 40));
    p[6] = ext_len > 0 ? 0 : IPSECIF_IPPROTO_UDP;
    p[7] = 64;
    p[8] = 0x20, p[9] = 0x01, p[10] = 0x0d, p[11] = 0xb8, p[23] = 1;
    p[24] = 0x20, p[25] = 0x01, p[26] = 0x0d, p[27] = 0xb8, p[39] = 2;
    if (ext_len > 0) {
        memcpy(p + 40, ext, ext_len);
    }
    for (i = 40 + ext_len; i < len; i++) {
        p[i] = (uint8_t)(i * 5 + 1);
    }
    return len;
}

/* Fragment [off, off+n) of the IPv4 datagram d (header ihl copied whole). */
static size_t cut4(uint8_t *o, const uint8_t *d, size_t off, size_t n, bool more)
{
    size_t ihl = (size_t)(d[0] & 15) * 4;

    memcpy(o, d, ihl);
    memcpy(o + ihl, d + ihl + off, n);
    st16(o + 2, (uint16_t)(ihl + n));
    st16(o + 6, (uint16_t)((ld16(d + 6) & 0x4000) | (more ? 0x2000 : 0) | (off / 8)));
    fix4(o);
    return ihl + n;
}

/* Fragment of the IPv6 datagram d without extension headers. */
static size_t cut6(uint8_t *o, const uint8_t *d, size_t off, size_t n, bool more, uint32_t id)
{
    memcpy(o, d, 40);
    o[6] = 44;
    st16(o + 4, (uint16_t)(8 + n));
    o[40] = d[6];
    o[41] = 0;
    st16(o + 42, (uint16_t)((off / 8) << 3 | (more ? 1 : 0)));
    o[44] = (uint8_t)(id >> 24), o[45] = (uint8_t)(id >> 16), o[46] = (uint8_t)(id >> 8);
    o[47] = (uint8_t)id;
    memcpy(o + 48, d + 40 + off, n);
    return 48 + n;
}

struct fx {
    struct ipsecif_reass *r;
    void *mem;
    uint8_t d[BIG];  /* the datagram */
    uint8_t fb[BIG]; /* one fragment */
    uint8_t in[BIG]; /* input buffer (with headroom) */
    struct ipsecif_buf b;
};

static struct fx *fx_new(uint32_t slots, uint32_t frags, uint32_t bytes_max)
{
    struct ipsecif_reass_config c;
    struct fx *f = calloc(1, sizeof(*f));
    size_t n;

    assert_non_null(f);
    memset(&c, 0, sizeof(c));
    c.slots = slots;
    c.frags = frags;
    c.datagram_max = IPSECIF_REASS_DATAGRAM_MAX;
    c.bytes_max = bytes_max;
    c.headroom = HEAD;
    c.tailroom = TAIL;
    n = ipsecif_reass_mem_size(&c);
    assert_true(n > 0);
    f->mem = malloc(n);
    assert_non_null(f->mem);
    assert_int_equal(ipsecif_reass_init(&f->r, f->mem, n - 1, &c), IPSECIF_ERR_NOROOM);
    assert_int_equal(ipsecif_reass_init(&f->r, f->mem, n, &c), IPSECIF_OK);
    return f;
}

static void fx_free(struct fx *f)
{
    free(f->mem);
    free(f);
}

/* Feed len bytes of src into the reassembler, in an exact-size buffer. */
static int feed(struct fx *f, const uint8_t *src, size_t len, uint64_t now)
{
    memcpy(f->in + 16, src, len);
    f->b.base = f->in;
    f->b.cap = 16 + len;
    f->b.off = 16;
    f->b.len = len;
    return ipsecif_reass_input(f->r, &f->b, now);
}

static void assert_is_d(const struct fx *f, size_t len)
{
    assert_int_equal(f->b.len, len);
    assert_true(ipsecif_buf_headroom(&f->b) >= HEAD);
    assert_true(ipsecif_buf_tailroom(&f->b) >= TAIL);
    if ((f->d[0] >> 4) == 4) {
        assert_int_equal(csum(ipsecif_buf_data(&f->b), (size_t)(f->d[0] & 15) * 4), 0);
    }
    assert_memory_equal(ipsecif_buf_data(&f->b), f->d, len);
}

static const struct ipsecif_reass_stats *st(const struct fx *f)
{
    return ipsecif_reass_stats_get(f->r);
}

/* ---- Reassembly ---- */

static void test_whole_untouched(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t n;

    (void)state;
    n = mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 7, false, NULL, 0);
    assert_int_equal(feed(f, f->d, n, 0), IPSECIF_OK);
    assert_ptr_equal(f->b.base, f->in);
    assert_int_equal(f->b.off, 16);
    assert_int_equal(f->b.len, n);
    n = mk4(f->d, 100, IPSECIF_IPPROTO_TCP, 0, true, NULL, 0);
    assert_int_equal(feed(f, f->d, n, 0), IPSECIF_OK);
    assert_ptr_equal(f->b.base, f->in);
    n = mk6(f->d, 1500, NULL, 0);
    assert_int_equal(feed(f, f->d, n, 0), IPSECIF_OK);
    assert_ptr_equal(f->b.base, f->in);
    assert_memory_equal(f->in + 16, f->d, n);
    /* Neither family, truncated: for the policy to judge, untouched. */
    f->d[0] = 0x10;
    assert_int_equal(feed(f, f->d, 30, 0), IPSECIF_OK);
    assert_int_equal(feed(f, (const uint8_t *)"\x45", 1, 0), IPSECIF_OK);
    assert_int_equal(st(f)->fragments, 0);
    fx_free(f);
}

static void test_v4_in_order(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t n = mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 0x1234, false, NULL, 0);
    size_t k;

    (void)state;
    k = cut4(f->fb, f->d, 0, 1480, true);
    assert_int_equal(feed(f, f->fb, k, 10), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_pending(f->r), 1);
    assert_int_equal(ipsecif_reass_next_deadline(f->r), 10 + IPSECIF_REASS_TIMEOUT4_MS);
    k = cut4(f->fb, f->d, 1480, 1480, true);
    assert_int_equal(feed(f, f->fb, k, 11), IPSECIF_ERR_QUEUED);
    k = cut4(f->fb, f->d, 2960, 20, false);
    assert_int_equal(feed(f, f->fb, k, 12), IPSECIF_OK);
    assert_is_d(f, n);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    assert_int_equal(ipsecif_reass_next_deadline(f->r), UINT64_MAX);
    assert_int_equal(st(f)->fragments, 3);
    assert_int_equal(st(f)->reassembled, 1);
    fx_free(f);
}

static void test_v4_out_of_order_options(void **state)
{
    /* Record route (not copied) and a copied option (security, 130). */
    static const uint8_t opts[] = {7, 7, 4, 0, 0, 0, 0, 130, 4, 0xaa, 0xbb, 1};
    struct fx *f = fx_new(4, 64, 0);
    size_t n = mk4(f->d, 5000, IPSECIF_IPPROTO_ICMP, 99, false, opts, sizeof(opts));
    static const size_t offs[] = {4000, 800, 0, 2400, 3200, 1600};
    size_t i;

    (void)state;
    for (i = 0; i < 6; i++) {
        size_t len = offs[i] == 4000 ? n - 32 - 4000 : 800;
        size_t k = cut4(f->fb, f->d, offs[i], len, offs[i] != 4000);

        assert_int_equal(feed(f, f->fb, k, 0), i == 5 ? IPSECIF_OK : IPSECIF_ERR_QUEUED);
    }
    assert_is_d(f, n);
    fx_free(f);
}

static void test_v6_out_of_order(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t n = mk6(f->d, 4000, NULL, 0);
    size_t k;

    (void)state;
    k = cut6(f->fb, f->d, 2480, n - 40 - 2480, false, 0xdeadbeef);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_next_deadline(f->r), IPSECIF_REASS_TIMEOUT6_MS);
    /* Another identification is another datagram. */
    k = cut6(f->fb, f->d, 0, 1240, true, 0xdeadbeee);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_pending(f->r), 2);
    k = cut6(f->fb, f->d, 1240, 1240, true, 0xdeadbeef);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    k = cut6(f->fb, f->d, 0, 1240, true, 0xdeadbeef);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_OK);
    assert_is_d(f, n);
    assert_int_equal(ipsecif_reass_pending(f->r), 1);
    fx_free(f);
}

static void test_v6_ext_headers(void **state)
{
    /* Hop-by-hop (PadN), then the Fragment header after it. */
    struct fx *f = fx_new(4, 16, 0);
    uint8_t hbh[8] = {IPSECIF_IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0};
    size_t n = mk6(f->d, 3000, hbh, sizeof(hbh));
    struct ipsecif_frag fr;
    struct ipsecif_buf in = {f->d, sizeof(f->d), 0, n};
    struct ipsecif_buf out = {f->fb, 1400, 0, 0};
    int rc;
    int pieces = 0;

    (void)state;
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1400, 77), IPSECIF_OK);
    while ((rc = ipsecif_frag_next(&fr, &out)) == IPSECIF_OK) {
        assert_true(out.len <= 1400);
        /* Hop-by-hop stays in front, it names the Fragment header. */
        assert_int_equal(f->fb[6], 0);
        assert_int_equal(f->fb[40], 44);
        assert_int_equal(f->fb[48], IPSECIF_IPPROTO_UDP);
        pieces++;
        assert_int_equal(feed(f, f->fb, out.len, 0), pieces == 3 ? IPSECIF_OK : IPSECIF_ERR_QUEUED);
    }
    assert_int_equal(rc, IPSECIF_ERR_NOENT);
    assert_int_equal(pieces, 3);
    assert_is_d(f, n);
    fx_free(f);
}

static void test_duplicate(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t n = mk4(f->d, 2000, IPSECIF_IPPROTO_UDP, 5, false, NULL, 0);
    size_t k;

    (void)state;
    k = cut4(f->fb, f->d, 0, 1480, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(st(f)->duplicate, 1);
    k = cut4(f->fb, f->d, 1480, n - 20 - 1480, false);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_OK);
    assert_is_d(f, n);
    /* IPv6 too; a "duplicate" with other bytes is an overlap. */
    n = mk6(f->d, 2000, NULL, 0);
    k = cut6(f->fb, f->d, 0, 1000, true, 1);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(st(f)->duplicate, 2);
    f->fb[100] ^= 1;
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->overlap, 1);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    fx_free(f);
}

static void test_overlap(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t n;
    size_t k;

    (void)state;
    /* IPv6 (RFC 5722): the whole datagram goes, the rest that comes
     * later starts a new one that never completes. */
    n = mk6(f->d, 3000, NULL, 0);
    k = cut6(f->fb, f->d, 0, 1000, true, 9);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    k = cut6(f->fb, f->d, 992, 1000, true, 9);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->overlap, 1);
    assert_int_equal(st(f)->dropped_frags, 2);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    k = cut6(f->fb, f->d, 1000, n - 40 - 1000, false, 9);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_pending(f->r), 1);
    /* IPv4: the same, a fragment inside another. */
    n = mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 5, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 1480, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    k = cut4(f->fb, f->d, 800, 80, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->overlap, 2);
    assert_int_equal(st(f)->reassembled, 0);
    fx_free(f);
}

static void test_inconsistent_end(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t k;

    (void)state;
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 5, false, NULL, 0);
    k = cut4(f->fb, f->d, 1480, 800, false);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    /* Data past the end the last fragment set. */
    k = cut4(f->fb, f->d, 2280, 400, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->inconsistent, 1);
    /* A last fragment ending before data already held. */
    k = cut4(f->fb, f->d, 1480, 800, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    k = cut4(f->fb, f->d, 800, 400, false);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->inconsistent, 2);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    fx_free(f);
}

static void test_timeout(void **state)
{
    struct fx *f = fx_new(4, 16, 0);
    size_t k;

    (void)state;
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 5, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 1480, true);
    assert_int_equal(feed(f, f->fb, k, 1000), IPSECIF_ERR_QUEUED);
    mk6(f->d + 4000, 3000, NULL, 0);
    k = cut6(f->fb, f->d + 4000, 0, 1480, true, 3);
    assert_int_equal(feed(f, f->fb, k, 1000), IPSECIF_ERR_QUEUED);
    ipsecif_reass_expire(f->r, 1000 + IPSECIF_REASS_TIMEOUT4_MS - 1);
    assert_int_equal(ipsecif_reass_pending(f->r), 2);
    ipsecif_reass_expire(f->r, 1000 + IPSECIF_REASS_TIMEOUT4_MS);
    assert_int_equal(ipsecif_reass_pending(f->r), 1);
    assert_int_equal(st(f)->timeout, 1);
    assert_int_equal(ipsecif_reass_next_deadline(f->r), 1000 + IPSECIF_REASS_TIMEOUT6_MS);
    /* The rest of the IPv4 datagram after its time: a new one, incomplete. */
    k = cut4(f->fb, f->d, 1480, 3000 - 20 - 1480, false);
    assert_int_equal(feed(f, f->fb, k, 40000), IPSECIF_ERR_QUEUED);
    /* Input expires too: the IPv6 one is gone at 61000. */
    k = cut6(f->fb, f->d + 4000, 1480, 3000 - 40 - 1480, false, 3);
    assert_int_equal(feed(f, f->fb, k, 1000 + IPSECIF_REASS_TIMEOUT6_MS), IPSECIF_ERR_QUEUED);
    assert_int_equal(st(f)->timeout, 2);
    assert_int_equal(st(f)->reassembled, 0);
    fx_free(f);
}

static void test_limits(void **state)
{
    struct fx *f = fx_new(2, 4, 4000);
    size_t k;
    uint16_t id;

    (void)state;
    /* Slots: a third datagram evicts the oldest. */
    for (id = 1; id <= 3; id++) {
        mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, id, false, NULL, 0);
        k = cut4(f->fb, f->d, 0, 800, true);
        assert_int_equal(feed(f, f->fb, k, id), IPSECIF_ERR_QUEUED);
    }
    assert_int_equal(st(f)->evicted, 1);
    assert_int_equal(ipsecif_reass_pending(f->r), 2);
    /* id 1 is gone; id 3 goes on: 800 (id 2) + 3000 (id 3) stays
     * within 4000 bytes. */
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 3, false, NULL, 0);
    k = cut4(f->fb, f->d, 800, 800, true);
    assert_int_equal(feed(f, f->fb, k, 5), IPSECIF_ERR_QUEUED);
    k = cut4(f->fb, f->d, 1600, 1376, true);
    assert_int_equal(feed(f, f->fb, k, 6), IPSECIF_ERR_QUEUED);
    k = cut4(f->fb, f->d, 2976, 4, false);
    assert_int_equal(feed(f, f->fb, k, 6), IPSECIF_OK);
    assert_is_d(f, 3000);
    assert_int_equal(st(f)->nomem, 0);
    /* Past bytes_max: id 2 (800 bytes) goes first to make room, then
     * the datagram that alone passes it. */
    mk4(f->d, 6000, IPSECIF_IPPROTO_UDP, 50, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 2400, true);
    assert_int_equal(feed(f, f->fb, k, 7), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_pending(f->r), 2);
    k = cut4(f->fb, f->d, 2400, 2400, true);
    assert_int_equal(feed(f, f->fb, k, 7), IPSECIF_ERR_FULL);
    assert_int_equal(st(f)->nomem, 2);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    /* Fragments per datagram: 4 kept, the fifth drops it. */
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 51, false, NULL, 0);
    for (k = 0; k < 5; k++) {
        size_t l = cut4(f->fb, f->d, k * 8, 8, true);

        assert_int_equal(feed(f, f->fb, l, 8), k < 4 ? IPSECIF_ERR_QUEUED : IPSECIF_ERR_FULL);
    }
    assert_int_equal(st(f)->toomany, 1);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    fx_free(f);
}

static void test_toobig(void **state)
{
    struct fx *f = fx_new(2, 16, 0);
    size_t k;

    (void)state;
    /* Ping of death: offset 65528 plus 16 bytes. */
    mk4(f->d, 20 + 16, IPSECIF_IPPROTO_ICMP, 1, false, NULL, 0);
    memcpy(f->fb, f->d, 36);
    st16(f->fb + 6, 65528 / 8);
    fix4(f->fb);
    assert_int_equal(feed(f, f->fb, 36, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->toobig, 1);
    /* IPv6: payload length would pass 65535. */
    mk6(f->d, 40 + 64, NULL, 0);
    k = cut6(f->fb, f->d, 0, 64, false, 1);
    st16(f->fb + 42, (uint16_t)((65480 / 8) << 3));
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->toobig, 2);
    /* The last possible byte still fits. */
    k = cut6(f->fb, f->d, 0, 16, false, 1);
    st16(f->fb + 42, (uint16_t)((65512 / 8) << 3));
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(ipsecif_reass_pending(f->r), 1);
    fx_free(f);
}

static void test_tiny(void **state)
{
    struct fx *f = fx_new(2, 16, 0);
    size_t k;

    (void)state;
    /* IPv4 TCP first fragment of 8 bytes, and TCP at offset 8 (RFC 1858). */
    mk4(f->d, 3000, IPSECIF_IPPROTO_TCP, 1, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 8, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    k = cut4(f->fb, f->d, 8, 800, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->tiny, 2);
    /* UDP with 8 bytes is enough. */
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 1, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 8, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    /* IPv6 (RFC 7112): a destination options header that the first
     * fragment does not hold whole. */
    mk6(f->d, 3000, NULL, 0);
    f->d[6] = 60;
    f->d[40] = IPSECIF_IPPROTO_UDP;
    f->d[41] = 2; /* 24 bytes */
    k = cut6(f->fb, f->d, 0, 16, true, 4);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    /* It whole, but not the UDP header behind it. */
    k = cut6(f->fb, f->d, 0, 24, true, 4);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->tiny, 4);
    k = cut6(f->fb, f->d, 0, 32, true, 4);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_QUEUED);
    fx_free(f);
}

static void test_garbage(void **state)
{
    struct fx *f = fx_new(2, 16, 0);
    size_t k;
    uint32_t seed = 12345;
    int i;

    (void)state;
    /* Bad checksum, MF with a length not a multiple of 8, no payload,
     * total length past the buffer, the reserved flag. */
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 1, false, NULL, 0);
    k = cut4(f->fb, f->d, 0, 800, true);
    f->fb[10] ^= 1;
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    k = cut4(f->fb, f->d, 0, 801, true);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    k = cut4(f->fb, f->d, 800, 0, false);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    k = cut4(f->fb, f->d, 0, 800, true);
    assert_int_equal(feed(f, f->fb, k - 1, 0), IPSECIF_ERR_MALFORMED);
    k = cut4(f->fb, f->d, 0, 800, true);
    f->fb[6] |= 0x80;
    fix4(f->fb);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    /* IPv6: truncated Fragment header, payload length past the buffer,
     * jumbo (0), M with an odd length. */
    mk6(f->d, 3000, NULL, 0);
    k = cut6(f->fb, f->d, 0, 800, true, 1);
    st16(f->fb + 4, 4);
    assert_int_equal(feed(f, f->fb, 44, 0), IPSECIF_ERR_MALFORMED);
    k = cut6(f->fb, f->d, 0, 800, true, 1);
    assert_int_equal(feed(f, f->fb, k - 8, 0), IPSECIF_ERR_MALFORMED);
    st16(f->fb + 4, 0);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    k = cut6(f->fb, f->d, 0, 804, true, 1);
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->malformed, 9);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    /* Random bytes with fragment bits: no crash, nothing completes. */
    for (i = 0; i < 20000; i++) {
        size_t len;
        size_t j;
        int rc;

        seed = seed * 1103515245u + 12345u;
        len = 1 + (seed >> 8) % 200;
        for (j = 0; j < len; j++) {
            seed = seed * 1103515245u + 12345u;
            f->fb[j] = (uint8_t)(seed >> 16);
        }
        f->fb[0] = (uint8_t)((i & 1) ? 0x45 : 0x60);
        if (i & 1) {
            f->fb[6] |= 0x20;
            st16(f->fb + 2, (uint16_t)len);
            if (len >= 20 && (i & 2)) {
                fix4(f->fb);
            }
        } else if (len > 48) {
            f->fb[6] = 44;
            st16(f->fb + 4, (uint16_t)(len - 40));
        }
        rc = feed(f, f->fb, len, (uint64_t)i);
        assert_true(rc == IPSECIF_OK || rc == IPSECIF_ERR_QUEUED || rc == IPSECIF_ERR_MALFORMED ||
                    rc == IPSECIF_ERR_FULL);
        assert_true(ipsecif_reass_pending(f->r) <= 2);
    }
    fx_free(f);
}

static void test_atomic(void **state)
{
    struct fx *f = fx_new(2, 16, 0);
    size_t n = mk6(f->d, 200, NULL, 0);
    size_t k = cut6(f->fb, f->d, 0, 160, false, 8);

    (void)state;
    assert_int_equal(feed(f, f->fb, k, 0), IPSECIF_OK);
    assert_int_equal(f->b.len, n);
    assert_memory_equal(ipsecif_buf_data(&f->b), f->d, n);
    assert_int_equal(st(f)->atomic, 1);
    assert_int_equal(ipsecif_reass_pending(f->r), 0);
    fx_free(f);
}

static void test_config(void **state)
{
    struct ipsecif_reass_config c;
    struct ipsecif_reass *r;
    uint8_t m[64];

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(ipsecif_reass_mem_size(&c), 0);
    assert_int_equal(ipsecif_reass_mem_size(NULL), 0);
    c.slots = 1;
    c.frags = 2;
    c.datagram_max = 67;
    assert_int_equal(ipsecif_reass_mem_size(&c), 0);
    c.datagram_max = IPSECIF_REASS_DATAGRAM_MAX + 1;
    assert_int_equal(ipsecif_reass_mem_size(&c), 0);
    c.datagram_max = 1500;
    assert_true(ipsecif_reass_mem_size(&c) > 1500);
    assert_int_equal(ipsecif_reass_init(&r, m, sizeof(m), &c), IPSECIF_ERR_NOROOM);
    assert_int_equal(ipsecif_reass_init(NULL, m, sizeof(m), &c), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_reass_input(NULL, NULL, 0), IPSECIF_ERR_ARG);
}

static void test_datagram_max(void **state)
{
    struct ipsecif_reass_config c;
    struct ipsecif_reass *r;
    struct fx *f = fx_new(1, 4, 0);
    void *mem;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.slots = 1;
    c.frags = 4;
    c.datagram_max = 2000;
    mem = malloc(ipsecif_reass_mem_size(&c));
    assert_int_equal(ipsecif_reass_init(&r, mem, ipsecif_reass_mem_size(&c), &c), IPSECIF_OK);
    f->r = r;
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 1, false, NULL, 0);
    assert_int_equal(feed(f, f->fb, cut4(f->fb, f->d, 0, 1480, true), 0), IPSECIF_ERR_QUEUED);
    assert_int_equal(feed(f, f->fb, cut4(f->fb, f->d, 1480, 1480, true), 0), IPSECIF_ERR_MALFORMED);
    assert_int_equal(st(f)->toobig, 1);
    f->r = NULL;
    free(mem);
    fx_free(f);
}

/* ---- Fragmentation ---- */

/* Cut d at mtu, check every fragment, feed them to the reassembler (in
 * reverse when rev), and expect d back. */
static int cut_and_join(struct fx *f, size_t n, uint32_t mtu, bool rev)
{
    static uint8_t pieces[64][2048];
    static size_t plen[64];
    struct ipsecif_frag fr;
    struct ipsecif_buf in = {f->d, n, 0, n};
    int np = 0;
    int rc;
    int i;
    size_t covered = 0;
    bool v4 = (f->d[0] >> 4) == 4;

    rc = ipsecif_frag_start(&fr, &in, mtu, 0x5a5a);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    for (;;) {
        struct ipsecif_buf out = {pieces[np], mtu, 0, 0};

        assert_true(np < 64);
        rc = ipsecif_frag_next(&fr, &out);
        if (rc == IPSECIF_ERR_NOENT) {
            break;
        }
        assert_int_equal(rc, IPSECIF_OK);
        assert_true(out.len <= mtu);
        plen[np++] = out.len;
    }
    assert_int_equal(ipsecif_frag_next(&fr, &(struct ipsecif_buf){pieces[0], mtu, 0, 0}),
                     IPSECIF_ERR_NOENT);
    for (i = 0; i < np; i++) {
        const uint8_t *p = pieces[i];

        if (v4) {
            size_t ihl = (size_t)(p[0] & 15) * 4;
            uint16_t fo = ld16(p + 6);

            assert_int_equal(csum(p, ihl), 0);
            assert_int_equal(ld16(p + 2), plen[i]);
            assert_int_equal((fo & 0x1fff) * 8, covered);
            assert_int_equal(!!(fo & 0x2000), i < np - 1);
            assert_int_equal(fo & 0x4000, 0);
            assert_int_equal(ld16(p + 4), ld16(f->d + 4) != 0 ? ld16(f->d + 4) : 0x5a5a);
            if (i < np - 1) {
                assert_int_equal((plen[i] - ihl) % 8, 0);
            }
            covered += plen[i] - ihl;
        } else {
            size_t u = 40, pos = 40, nhp = 6;
            uint8_t nh = f->d[6];
            uint16_t fo;

            /* The unfragmentable part: up to the last hop-by-hop or
             * routing header. */
            while (nh == 0 || nh == 43 || nh == 60) {
                size_t hl = ((size_t)f->d[pos + 1] + 1) * 8;

                if (nh != 60) {
                    u = pos + hl;
                    nhp = pos;
                }
                nh = f->d[pos];
                pos += hl;
            }
            fo = ld16(p + u + 2);
            assert_memory_equal(p + 8, f->d + 8, 32);
            assert_int_equal(p[nhp], 44);
            assert_int_equal(p[u], f->d[nhp]);
            assert_int_equal(ld16(p + 4) + 40, plen[i]);
            assert_int_equal(fo >> 3, covered / 8);
            assert_int_equal(fo & 1, i < np - 1);
            assert_int_equal(p[u + 7], 0x5a);
            if (i < np - 1) {
                assert_int_equal((plen[i] - u - 8) % 8, 0);
            }
            covered += plen[i] - u - 8;
        }
    }
    if (np == 1) {
        assert_int_equal(plen[0], n);
        assert_memory_equal(pieces[0], f->d, n);
        return np;
    }
    for (i = 0; i < np; i++) {
        int j = rev ? np - 1 - i : i;

        rc = feed(f, pieces[j], plen[j], 0);
        assert_int_equal(rc, i == np - 1 ? IPSECIF_OK : IPSECIF_ERR_QUEUED);
    }
    if (v4 && ld16(f->d + 4) == 0 && np > 1) {
        /* The fragmenter gave the datagram its identification. */
        st16(f->d + 4, 0x5a5a);
        fix4(f->d);
    }
    assert_is_d(f, n);
    return np;
}

static void test_frag_v4(void **state)
{
    static const uint8_t opts[] = {7, 7, 4, 0, 0, 0, 0, 130, 4, 0xaa, 0xbb, 1};
    struct fx *f = fx_new(4, 64, 0);
    size_t n;

    (void)state;
    n = mk4(f->d, 3000, IPSECIF_IPPROTO_ESP, 0x77, false, NULL, 0);
    /* 1500: 1480 + 1480 + 20 payload bytes. */
    assert_int_equal(cut_and_join(f, n, 1500, false), 3);
    assert_int_equal(cut_and_join(f, n, 1400, true), 3);
    assert_int_equal(cut_and_join(f, n, 577, true), 6);
    /* id 0 in the packet: the given one. */
    n = mk4(f->d, 2000, IPSECIF_IPPROTO_AH, 0, false, NULL, 0);
    assert_int_equal(cut_and_join(f, n, 1000, false), 3);
    /* It fits: one piece, the packet itself. */
    assert_int_equal(cut_and_join(f, n, 2000, false), 1);
    /* Options: the first fragment keeps them all, the others only the
     * copied one (4 bytes, then padding to 28). */
    n = mk4(f->d, 4000, IPSECIF_IPPROTO_UDP, 0x99, false, opts, sizeof(opts));
    {
        struct ipsecif_frag fr;
        struct ipsecif_buf in = {f->d, n, 0, n};
        struct ipsecif_buf out = {f->fb, 1500, 0, 0};

        assert_int_equal(ipsecif_frag_start(&fr, &in, 1500, 1), IPSECIF_OK);
        assert_int_equal(ipsecif_frag_next(&fr, &out), IPSECIF_OK);
        assert_int_equal(f->fb[0], 0x48);
        assert_int_equal(out.len, 32 + 1464);
        assert_int_equal(ipsecif_frag_next(&fr, &out), IPSECIF_OK);
        assert_int_equal(f->fb[0], 0x46);
        assert_memory_equal(f->fb + 20, "\x82\x04\xaa\xbb", 4);
        assert_int_equal(out.len, 24 + 1472);
        /* Too small an output buffer. */
        out.cap = 100;
        out.len = 0;
        assert_int_equal(ipsecif_frag_next(&fr, &out), IPSECIF_ERR_NOROOM);
    }
    assert_int_equal(cut_and_join(f, n, 1500, true), 3);
    fx_free(f);
}

static void test_frag_v4_refused(void **state)
{
    struct fx *f = fx_new(2, 16, 0);
    struct ipsecif_frag fr;
    struct ipsecif_buf in = {f->d, 3000, 0, 3000};

    (void)state;
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 1, true, NULL, 0);
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1500, 1), IPSECIF_ERR_TOOBIG);
    mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 0, false, NULL, 0);
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1500, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_frag_start(&fr, &in, 27, 1), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_frag_start(&fr, &in, 28, 1), IPSECIF_OK);
    in.len = 2999;
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1500, 1), IPSECIF_ERR_MALFORMED);
    /* A bad option length. */
    {
        static const uint8_t bad[] = {130, 9, 0, 0};

        mk4(f->d, 3000, IPSECIF_IPPROTO_UDP, 1, false, bad, sizeof(bad));
        in.len = 3000;
        assert_int_equal(ipsecif_frag_start(&fr, &in, 1500, 1), IPSECIF_ERR_MALFORMED);
    }
    fx_free(f);
}

static void test_frag_v6(void **state)
{
    struct fx *f = fx_new(4, 64, 0);
    struct ipsecif_frag fr;
    struct ipsecif_buf in;
    size_t n;

    (void)state;
    n = mk6(f->d, 3000, NULL, 0);
    assert_int_equal(cut_and_join(f, n, 1500, false), 3);
    assert_int_equal(cut_and_join(f, n, 1280, true), 3);
    n = mk6(f->d, 10000, NULL, 0);
    assert_int_equal(cut_and_join(f, n, 1280, true), 9);
    /* Hop-by-hop, a routing header, destination options: the first two
     * stay in front of the Fragment header, the options go behind it. */
    {
        uint8_t ext[8 + 24 + 8] = {43, 0, 1, 4, 0, 0, 0, 0};
        struct ipsecif_buf out = {f->fb, 1280, 0, 0};

        ext[8] = 60; /* routing header: next is destination options */
        ext[9] = 2;  /* 24 bytes */
        ext[10] = 4; /* type 4 (segment routing), segments left 0 */
        ext[32] = IPSECIF_IPPROTO_UDP;
        n = mk6(f->d, 3000, ext, sizeof(ext));
        in = (struct ipsecif_buf){f->d, n, 0, n};
        assert_int_equal(ipsecif_frag_start(&fr, &in, 1280, 5), IPSECIF_OK);
        assert_int_equal(ipsecif_frag_next(&fr, &out), IPSECIF_OK);
        assert_int_equal(f->fb[40 + 8], 44); /* the routing header names it */
        assert_int_equal(f->fb[40 + 32], 60);
        assert_int_equal(f->fb[40 + 32 + 8], IPSECIF_IPPROTO_UDP);
        assert_int_equal(cut_and_join(f, n, 1280, true), 3);
        /* Destination options too long for the first fragment (RFC 8200). */
        memset(ext, 0, sizeof(ext));
        n = mk6(f->d, 3000, NULL, 0);
        f->d[6] = 60;
        f->d[40] = IPSECIF_IPPROTO_UDP;
        f->d[41] = 200; /* 1608 bytes */
        in = (struct ipsecif_buf){f->d, n, 0, n};
        assert_int_equal(ipsecif_frag_start(&fr, &in, 1280, 5), IPSECIF_ERR_RANGE);
        assert_int_equal(ipsecif_frag_start(&fr, &in, 1700, 5), IPSECIF_OK);
    }
    /* Below the IPv6 minimum MTU; already a fragment. */
    in = (struct ipsecif_buf){f->d, n, 0, n};
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1279, 1), IPSECIF_ERR_RANGE);
    n = cut6(f->fb, f->d, 0, 2000, true, 1);
    in = (struct ipsecif_buf){f->fb, n, 0, n};
    assert_int_equal(ipsecif_frag_start(&fr, &in, 1280, 1), IPSECIF_ERR_MALFORMED);
    fx_free(f);
}

static void test_toobig_icmp(void **state)
{
    uint8_t b[HEAD + 1500];
    struct ipsecif_buf pkt = {b, sizeof(b), HEAD, 0};
    struct ipsecif_addr src = {IPSECIF_AF_INET, {198, 51, 100, 2}};
    uint8_t d[1400];

    (void)state;
    mk4(d, sizeof(d), IPSECIF_IPPROTO_UDP, 1, true, NULL, 0);
    memcpy(b + HEAD, d, 576);
    pkt.len = 576;
    assert_int_equal(ipsecif_frag_toobig(&pkt, &src, 1342), IPSECIF_OK);
    assert_int_equal(pkt.len, 576);
    assert_int_equal(ipsecif_buf_data(&pkt)[20], 3);
    assert_int_equal(ipsecif_buf_data(&pkt)[21], 4);
    assert_int_equal(ld16(ipsecif_buf_data(&pkt) + 26), 1342);
    assert_memory_equal(ipsecif_buf_data(&pkt) + 28, d, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_untouched),
        cmocka_unit_test(test_v4_in_order),
        cmocka_unit_test(test_v4_out_of_order_options),
        cmocka_unit_test(test_v6_out_of_order),
        cmocka_unit_test(test_v6_ext_headers),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_inconsistent_end),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_toobig),
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_atomic),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_datagram_max),
        cmocka_unit_test(test_frag_v4),
        cmocka_unit_test(test_frag_v4_refused),
        cmocka_unit_test(test_frag_v6),
        cmocka_unit_test(test_toobig_icmp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
