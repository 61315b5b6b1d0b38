/* Unit tests of the Linux port's TCP segmentation and coalescing
 * (ports/linux-tun/linux_gso.c): segment boundaries and headers, checksums
 * checked by an independent sum, flags, IPv6, partial checksums, malformed
 * virtio headers and lengths, and coalescing back (round trip). Packets sit
 * in buffers of exactly their size, so ASan sees any read past them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linux_gso.h"

#define TH_FIN 0x01u
#define TH_SYN 0x02u
#define TH_PSH 0x08u
#define TH_ACK 0x10u
#define TH_CWR 0x80u

/* ---- An independent checksum: bytes at even and odd offsets summed apart ---- */

static uint16_t ref_sum(const uint8_t *const *parts, const size_t *lens, size_t n)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    size_t i;
    size_t k;

    for (k = 0; k < n; k++) {
        for (i = 0; i < lens[k]; i++) {
            /* every part starts at an even offset of the whole */
            if (i % 2 == 0) {
                hi += parts[k][i];
            } else {
                lo += parts[k][i];
            }
        }
    }
    uint64_t s = hi * 256 + lo;

    while (s > 0xffff) {
        s = (s & 0xffff) + (s >> 16);
    }
    return (uint16_t)s;
}

/* The TCP sum of the packet over pseudo-header and segment (0xffff: valid). */
static uint16_t tcp_sum(const uint8_t *p, size_t len)
{
    bool v6 = p[0] >> 4 == 6;
    size_t l4 = v6 ? 40 : (size_t)(p[0] & 15) * 4;
    size_t l4len = len - l4;
    uint8_t ph[40];
    const uint8_t *parts[2];
    size_t lens[2];

    memset(ph, 0, sizeof(ph));
    if (v6) {
        memcpy(ph, p + 8, 32);
        ph[34] = (uint8_t)(l4len >> 8);
        ph[35] = (uint8_t)l4len;
        ph[39] = 6;
        lens[0] = 40;
    } else {
        memcpy(ph, p + 12, 8);
        ph[9] = 6;
        ph[10] = (uint8_t)(l4len >> 8);
        ph[11] = (uint8_t)l4len;
        lens[0] = 12;
    }
    parts[0] = ph;
    parts[1] = p + l4;
    lens[1] = l4len;
    return ref_sum(parts, lens, 2);
}

static bool tcp_ok(const uint8_t *p, size_t len)
{
    return tcp_sum(p, len) == 0xffff;
}

/* Give the (IPv4) packet a right TCP checksum again after a test changed it. */
static void fix_tcp(uint8_t *p, size_t len)
{
    size_t l4 = (size_t)(p[0] & 15) * 4;
    uint16_t c;

    p[l4 + 16] = 0;
    p[l4 + 17] = 0;
    c = (uint16_t)~tcp_sum(p, len);
    p[l4 + 16] = (uint8_t)(c >> 8);
    p[l4 + 17] = (uint8_t)c;
}

static bool ip4_ok(const uint8_t *p)
{
    const uint8_t *parts[1] = {p};
    size_t lens[1] = {(size_t)(p[0] & 15) * 4};

    return ref_sum(parts, lens, 1) == 0xffff;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- Building super-packets ---- */

#define OPTLEN 12 /* TCP timestamps with two NOPs, as Linux sends them */

/* A TCP super-packet of payload bytes (pattern i*7+3) in a malloc'd buffer of
 * exactly its size; seq 0xfffff000 so that the numbers wrap. */
static uint8_t *build(bool v6, size_t payload, uint8_t flags, size_t *len_out)
{
    size_t l4 = v6 ? 40 : 20;
    size_t hlen = l4 + 20 + OPTLEN;
    size_t len = hlen + payload;
    uint8_t *p = calloc(1, len);
    size_t i;

    assert_non_null(p);
    if (v6) {
        p[0] = 0x60;
        p[4] = (uint8_t)((len - 40) >> 8);
        p[5] = (uint8_t)(len - 40);
        p[6] = 6;
        p[7] = 64;
        p[8] = 0x20;
        p[9] = 0x01;
        p[10] = 0x0d;
        p[11] = 0xb8;
        p[23] = 1;
        p[24] = 0x20;
        p[25] = 0x01;
        p[26] = 0x0d;
        p[27] = 0xb8;
        p[39] = 2;
    } else {
        p[0] = 0x45;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        p[4] = 0x12;
        p[5] = 0x34;
        p[6] = 0x40; /* DF */
        p[8] = 64;
        p[9] = 6;
        p[12] = 203;
        p[13] = 0;
        p[14] = 113;
        p[15] = 1;
        p[16] = 203;
        p[17] = 0;
        p[18] = 113;
        p[19] = 2;
    }
    p[l4 + 0] = 0x9c;
    p[l4 + 1] = 0x40;
    p[l4 + 2] = 0x14;
    p[l4 + 3] = 0x51;
    p[l4 + 4] = 0xff;
    p[l4 + 5] = 0xff;
    p[l4 + 6] = 0xf0;
    p[l4 + 7] = 0x00;
    p[l4 + 8] = 0x01;
    p[l4 + 11] = 0x02;
    p[l4 + 12] = (uint8_t)(((20 + OPTLEN) / 4) << 4);
    p[l4 + 13] = flags;
    p[l4 + 14] = 0x01;
    p[l4 + 15] = 0xf5;
    p[l4 + 20] = 1;
    p[l4 + 21] = 1;
    p[l4 + 22] = 8;
    p[l4 + 23] = 10;
    p[l4 + 24] = 0xaa;
    p[l4 + 28] = 0xbb;
    for (i = 0; i < payload; i++) {
        p[hlen + i] = (uint8_t)(i * 7 + 3);
    }
    *len_out = len;
    return p;
}

static struct ipsecif_linux_vnet tso_hdr(bool v6, uint16_t mss)
{
    struct ipsecif_linux_vnet h;

    memset(&h, 0, sizeof(h));
    h.flags = IPSECIF_LINUX_VNET_F_NEEDS_CSUM;
    h.gso_type = v6 ? IPSECIF_LINUX_VNET_GSO_TCPV6 : IPSECIF_LINUX_VNET_GSO_TCPV4;
    h.gso_size = mss;
    h.hdr_len = 1234; /* only a hint, must not matter */
    h.csum_start = v6 ? 40 : 20;
    h.csum_offset = 16;
    return h;
}

#define SEGCAP 9000

/* Cut a super-packet and check every segment; returns the number. */
static unsigned check_segments(bool v6, size_t payload, uint16_t mss, uint8_t flags)
{
    size_t len;
    uint8_t *p = build(v6, payload, flags, &len);
    size_t hlen = (v6 ? 40 : 20) + 20 + OPTLEN;
    struct ipsecif_linux_vnet h = tso_hdr(v6, mss);
    struct ipsecif_linux_gso g;
    uint8_t *seg = malloc(SEGCAP);
    size_t off = 0;
    unsigned n = 0;
    size_t sl;

    assert_non_null(seg);
    assert_int_equal(ipsecif_linux_gso_prepare(p, len, &h, SEGCAP, &g), IPSECIF_LINUX_GSO_OK);
    assert_int_equal(ipsecif_linux_gso_count(&g), (payload + mss - 1) / mss);
    while ((sl = ipsecif_linux_gso_next(&g, seg)) != 0) {
        const uint8_t *th = seg + (v6 ? 40 : 20);
        bool last = n + 1 == ipsecif_linux_gso_count(&g);
        size_t want = payload - off < mss ? payload - off : mss;

        assert_int_equal(sl, hlen + want);
        if (v6) {
            assert_int_equal(rd16(seg + 4), sl - 40);
        } else {
            assert_int_equal(rd16(seg + 2), sl);
            assert_int_equal(rd16(seg + 4), (uint16_t)(0x1234 + n));
            assert_true(ip4_ok(seg));
        }
        assert_int_equal(rd32(th + 4), (uint32_t)(0xfffff000u + off));
        assert_true(tcp_ok(seg, sl));
        assert_int_equal(th[13] & TH_ACK, flags & TH_ACK);
        assert_int_equal(th[13] & (TH_FIN | TH_PSH), last ? flags & (TH_FIN | TH_PSH) : 0);
        assert_int_equal(th[13] & TH_CWR, n == 0 ? flags & TH_CWR : 0);
        /* options and everything else of the header as they were */
        assert_memory_equal(th + 18, p + (v6 ? 40 : 20) + 18, 2 + OPTLEN);
        assert_memory_equal(seg + hlen, p + hlen + off, want);
        off += want;
        n++;
    }
    assert_int_equal(off, payload);
    assert_int_equal(n, ipsecif_linux_gso_count(&g));
    assert_int_equal(ipsecif_linux_gso_next(&g, seg), 0);
    free(seg);
    free(p);
    return n;
}

static void test_tso4_boundaries(void **state)
{
    (void)state;
    assert_int_equal(check_segments(false, 1448 * 10, 1448, TH_ACK), 10);     /* exact */
    assert_int_equal(check_segments(false, 1448 * 10 + 1, 1448, TH_ACK), 11); /* 1 byte more */
    assert_int_equal(check_segments(false, 1447, 1448, TH_ACK), 1);           /* under one MSS */
    assert_int_equal(check_segments(false, 65535 - 52, 1188, TH_ACK), 56);    /* largest */
    assert_int_equal(check_segments(false, 5, 1, TH_ACK), 5);                 /* MSS 1 */
}

static void test_tso_flags(void **state)
{
    (void)state;
    check_segments(false, 4000, 1000, TH_ACK | TH_PSH | TH_FIN | TH_CWR);
    check_segments(true, 4000, 1000, TH_ACK | TH_PSH | TH_CWR);
    check_segments(false, 999, 1000, TH_ACK | TH_PSH | TH_FIN | TH_CWR);
}

static void test_tso6(void **state)
{
    (void)state;
    assert_int_equal(check_segments(true, 1208 * 7 + 100, 1208, TH_ACK | TH_PSH), 8);
    assert_int_equal(check_segments(true, 65535 - 72, 1428, TH_ACK), 46);
}

/* gso_type NONE with a partial checksum: completed in place (TCP, and UDP
 * where a zero result is sent as 0xffff). */
static void test_partial_csum(void **state)
{
    size_t len;
    uint8_t *p = build(false, 301, TH_ACK | TH_PSH, &len);
    struct ipsecif_linux_vnet h;
    struct ipsecif_linux_gso g;
    uint32_t seed;
    uint8_t *u;

    (void)state;
    /* the kernel leaves the pseudo-header sum in the field */
    seed = (203u << 8) + 0 + (113u << 8) + 1 + (203u << 8) + 0 + (113u << 8) + 2 + 6 + (len - 20);
    while (seed > 0xffff) {
        seed = (seed & 0xffff) + (seed >> 16);
    }
    p[36] = (uint8_t)(seed >> 8);
    p[37] = (uint8_t)seed;
    memset(&h, 0, sizeof(h));
    h.flags = IPSECIF_LINUX_VNET_F_NEEDS_CSUM;
    h.csum_start = 20;
    h.csum_offset = 16;
    assert_int_equal(ipsecif_linux_gso_prepare(p, len, &h, SEGCAP, &g), IPSECIF_LINUX_GSO_OK);
    assert_int_equal(ipsecif_linux_gso_count(&g), 1);
    assert_int_equal(ipsecif_linux_gso_next(&g, p), 0); /* passes whole */
    assert_true(tcp_ok(p, len));
    free(p);

    /* UDP whose sum comes out as zero: 0xffff instead */
    u = calloc(1, 10);
    assert_non_null(u);
    u[0] = 0xff;
    u[1] = 0xff; /* csum_start 0, all ones: the complement is 0 */
    memset(&h, 0, sizeof(h));
    h.flags = IPSECIF_LINUX_VNET_F_NEEDS_CSUM;
    h.csum_start = 0;
    h.csum_offset = 6;
    assert_int_equal(ipsecif_linux_gso_prepare(u, 10, &h, SEGCAP, &g), IPSECIF_LINUX_GSO_OK);
    assert_int_equal(rd16(u + 6), 0xffff);
    free(u);
}

/* Malformed headers and lengths: the verdict, and nothing read outside. */
static void test_malformed(void **state)
{
    static const struct {
        int what;
        int rc;
    } cases[] = {
        {0, IPSECIF_LINUX_GSO_ERR_TYPE}, /* UDP (UFO) */
        {1, IPSECIF_LINUX_GSO_ERR_TYPE}, /* unknown type */
        {2, IPSECIF_LINUX_GSO_ERR_HDR},  /* gso_size 0 */
        {3, IPSECIF_LINUX_GSO_ERR_HDR},  /* csum_start not the TCP header */
        {4, IPSECIF_LINUX_GSO_ERR_HDR},  /* csum_offset not the TCP checksum */
        {5, IPSECIF_LINUX_GSO_ERR_PKT},  /* IPv4 total length != read length */
        {6, IPSECIF_LINUX_GSO_ERR_PKT},  /* TCP data offset past the end */
        {7, IPSECIF_LINUX_GSO_ERR_PKT},  /* TCPV6 type on an IPv4 packet */
        {8, IPSECIF_LINUX_GSO_ERR_TYPE}, /* SYN in a super-packet */
        {9, IPSECIF_LINUX_GSO_ERR_ROOM}, /* segment over the caller's room */
        {10, IPSECIF_LINUX_GSO_ERR_PKT}, /* not TCP */
        {11, IPSECIF_LINUX_GSO_ERR_PKT}, /* IPv4 fragment */
        {12, IPSECIF_LINUX_GSO_ERR_HDR}, /* no payload */
        {13, IPSECIF_LINUX_GSO_ERR_HDR}, /* NONE, csum field past the end */
        {14, IPSECIF_LINUX_GSO_ERR_HDR}, /* NONE, csum_start past the end */
        {15, IPSECIF_LINUX_GSO_ERR_HDR}, /* NONE with the ECN flag */
        {16, IPSECIF_LINUX_GSO_ERR_PKT}, /* IHL under 5 */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        uint8_t *p = build(false, cases[i].what == 12 ? 0 : 3000, TH_ACK, &len);
        struct ipsecif_linux_vnet h = tso_hdr(false, 1000);
        struct ipsecif_linux_gso g;
        size_t cap = SEGCAP;

        switch (cases[i].what) {
        case 0:
            h.gso_type = IPSECIF_LINUX_VNET_GSO_UDP;
            break;
        case 1:
            h.gso_type = 0x42;
            break;
        case 2:
            h.gso_size = 0;
            break;
        case 3:
            h.csum_start = 24;
            break;
        case 4:
            h.csum_offset = 6;
            break;
        case 5:
            p[3]++;
            break;
        case 6:
            p[32] = 0xf0;
            len = 50;
            p[2] = 0;
            p[3] = 50;
            break;
        case 7:
            h.gso_type = IPSECIF_LINUX_VNET_GSO_TCPV6;
            break;
        case 8:
            p[33] |= TH_SYN;
            break;
        case 9:
            cap = 1000;
            break;
        case 10:
            p[9] = 17;
            break;
        case 11:
            p[7] = 1;
            break;
        case 12:
            break;
        case 13:
            h.gso_type = IPSECIF_LINUX_VNET_GSO_NONE;
            h.csum_start = (uint16_t)(len - 10);
            h.csum_offset = 9;
            break;
        case 14:
            h.gso_type = IPSECIF_LINUX_VNET_GSO_NONE;
            h.csum_start = (uint16_t)len;
            h.csum_offset = 0;
            break;
        case 15:
            h.gso_type = IPSECIF_LINUX_VNET_GSO_NONE | IPSECIF_LINUX_VNET_GSO_ECN;
            break;
        case 16:
            p[0] = 0x44;
            break;
        default:
            break;
        }
        print_message("case %d\n", cases[i].what);
        assert_int_equal(ipsecif_linux_gso_prepare(p, len, &h, cap, &g), cases[i].rc);
        free(p);
    }
}

/* Every length of a short buffer: refused or cut, never read outside. */
static void test_truncated(void **state)
{
    size_t full;
    uint8_t *src = build(true, 200, TH_ACK, &full);
    size_t len;

    (void)state;
    for (len = 0; len < full; len++) {
        uint8_t *p = malloc(len > 0 ? len : 1);
        struct ipsecif_linux_vnet h = tso_hdr(true, 50);
        struct ipsecif_linux_gso g;

        assert_non_null(p);
        memcpy(p, src, len);
        assert_true(ipsecif_linux_gso_prepare(p, len, &h, SEGCAP, &g) < 0);
        free(p);
    }
    free(src);
}

/* ---- Coalescing ---- */

struct rec {
    unsigned n;
    struct ipsecif_linux_vnet h[8];
    size_t len[8];
    uint8_t *pkt[8];
};

static void rec_emit(void *arg, const struct ipsecif_linux_vnet *h, const uint8_t *pkt, size_t len)
{
    struct rec *r = arg;

    assert_true(r->n < 8);
    r->h[r->n] = *h;
    r->len[r->n] = len;
    r->pkt[r->n] = malloc(len);
    assert_non_null(r->pkt[r->n]);
    memcpy(r->pkt[r->n], pkt, len);
    r->n++;
}

static void rec_free(struct rec *r)
{
    unsigned i;

    for (i = 0; i < r->n; i++) {
        free(r->pkt[i]);
    }
    memset(r, 0, sizeof(*r));
}

/* Cut a super-packet into segs[] (malloc'd, exact size). */
static unsigned cut(bool v6, size_t payload, uint16_t mss, uint8_t flags, uint8_t **segs,
                    size_t *lens, unsigned max, uint8_t **orig, size_t *olen)
{
    struct ipsecif_linux_vnet h = tso_hdr(v6, mss);
    struct ipsecif_linux_gso g;
    uint8_t tmp[SEGCAP];
    unsigned n = 0;
    size_t sl;

    *orig = build(v6, payload, flags, olen);
    assert_int_equal(ipsecif_linux_gso_prepare(*orig, *olen, &h, SEGCAP, &g), IPSECIF_LINUX_GSO_OK);
    while ((sl = ipsecif_linux_gso_next(&g, tmp)) != 0) {
        assert_true(n < max);
        segs[n] = malloc(sl);
        assert_non_null(segs[n]);
        memcpy(segs[n], tmp, sl);
        lens[n] = sl;
        n++;
    }
    return n;
}

static void free_segs(uint8_t **segs, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        free(segs[i]);
    }
}

/* Segments of one super-packet coalesce into one that the kernel would cut
 * into the same segments again. */
static void round_trip(bool v6, uint8_t flags)
{
    static uint8_t buf[IPSECIF_LINUX_GSO_MAX];
    uint8_t *segs[64];
    size_t lens[64];
    uint8_t *orig;
    size_t olen;
    unsigned n = cut(v6, 10 * 1200 + 77, 1200, flags, segs, lens, 64, &orig, &olen);
    struct ipsecif_linux_gro gro;
    struct ipsecif_linux_gso g;
    struct rec r;
    uint8_t tmp[SEGCAP];
    unsigned i;
    size_t sl;

    memset(&r, 0, sizeof(r));
    ipsecif_linux_gro_init(&gro, buf, sizeof(buf));
    for (i = 0; i < n; i++) {
        ipsecif_linux_gro_add(&gro, segs[i], lens[i], rec_emit, &r);
    }
    assert_int_equal(r.n, 0);
    assert_true(ipsecif_linux_gro_pending(&gro));
    ipsecif_linux_gro_flush(&gro, rec_emit, &r);
    assert_false(ipsecif_linux_gro_pending(&gro));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.len[0], olen);
    assert_int_equal(r.h[0].gso_type,
                     v6 ? IPSECIF_LINUX_VNET_GSO_TCPV6 : IPSECIF_LINUX_VNET_GSO_TCPV4);
    assert_int_equal(r.h[0].gso_size, 1200);
    assert_int_equal(r.h[0].flags, IPSECIF_LINUX_VNET_F_NEEDS_CSUM);
    assert_int_equal(r.h[0].csum_start, v6 ? 40 : 20);
    assert_int_equal(r.h[0].csum_offset, 16);
    assert_int_equal(gro.stats.merged, 1);
    assert_int_equal(gro.stats.segments, n);
    /* the payload and headers are the original's (checksums aside) */
    assert_memory_equal(r.pkt[0] + (v6 ? 40 : 20) + 20, orig + (v6 ? 40 : 20) + 20,
                        olen - (v6 ? 40 : 20) - 20);
    if (!v6) {
        assert_true(ip4_ok(r.pkt[0]));
        assert_int_equal(rd16(r.pkt[0] + 2), olen);
    } else {
        assert_int_equal(rd16(r.pkt[0] + 4), olen - 40);
    }
    /* cut again: the same segments */
    assert_int_equal(ipsecif_linux_gso_prepare(r.pkt[0], r.len[0], &r.h[0], SEGCAP, &g),
                     IPSECIF_LINUX_GSO_OK);
    for (i = 0; (sl = ipsecif_linux_gso_next(&g, tmp)) != 0; i++) {
        assert_true(i < n);
        assert_int_equal(sl, lens[i]);
        assert_memory_equal(tmp, segs[i], sl);
    }
    assert_int_equal(i, n);
    rec_free(&r);
    free_segs(segs, n);
    free(orig);
}

static void test_gro_round_trip(void **state)
{
    (void)state;
    round_trip(false, TH_ACK | TH_PSH);
    round_trip(true, TH_ACK | TH_PSH);
    round_trip(false, TH_ACK);
}

/* What breaks a run: a gap in sequence, another flow, a bad checksum, a
 * non-data segment, a PSH before the end; each flushes in order. */
static void test_gro_breaks(void **state)
{
    static uint8_t buf[IPSECIF_LINUX_GSO_MAX];
    uint8_t *segs[8];
    size_t lens[8];
    uint8_t *orig;
    size_t olen;
    unsigned n = cut(false, 4 * 1000, 1000, TH_ACK, segs, lens, 8, &orig, &olen);
    struct ipsecif_linux_gro gro;
    struct rec r;
    uint8_t *syn;
    size_t synlen;

    (void)state;
    assert_int_equal(n, 4);
    memset(&r, 0, sizeof(r));
    ipsecif_linux_gro_init(&gro, buf, sizeof(buf));

    /* gap: 0, 2 -> two packets held one after the other */
    ipsecif_linux_gro_add(&gro, segs[0], lens[0], rec_emit, &r);
    ipsecif_linux_gro_add(&gro, segs[2], lens[2], rec_emit, &r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.h[0].gso_type, IPSECIF_LINUX_VNET_GSO_NONE);
    assert_memory_equal(r.pkt[0], segs[0], lens[0]); /* alone: as it came */
    ipsecif_linux_gro_flush(&gro, rec_emit, &r);
    assert_int_equal(r.n, 2);
    rec_free(&r);

    /* bad checksum: the held packet first, then the bad one alone */
    ipsecif_linux_gro_add(&gro, segs[0], lens[0], rec_emit, &r);
    segs[1][lens[1] - 1] ^= 1;
    ipsecif_linux_gro_add(&gro, segs[1], lens[1], rec_emit, &r);
    segs[1][lens[1] - 1] ^= 1;
    assert_int_equal(r.n, 2);
    assert_int_equal(gro.stats.bad_csum, 1);
    assert_false(ipsecif_linux_gro_pending(&gro));
    rec_free(&r);

    /* another flow (port) */
    ipsecif_linux_gro_add(&gro, segs[0], lens[0], rec_emit, &r);
    segs[1][21] ^= 1;
    fix_tcp(segs[1], lens[1]);
    ipsecif_linux_gro_add(&gro, segs[1], lens[1], rec_emit, &r);
    segs[1][21] ^= 1;
    fix_tcp(segs[1], lens[1]);
    assert_int_equal(r.n, 1);
    ipsecif_linux_gro_flush(&gro, rec_emit, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(gro.stats.merged, 0);
    rec_free(&r);

    /* a SYN: not a candidate, passes alone after the held one */
    syn = build(false, 0, TH_SYN, &synlen);
    ipsecif_linux_gro_add(&gro, segs[0], lens[0], rec_emit, &r);
    ipsecif_linux_gro_add(&gro, syn, synlen, rec_emit, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.len[1], synlen);
    assert_false(ipsecif_linux_gro_pending(&gro));
    rec_free(&r);
    free(syn);

    /* PSH on the second: 0+1 merged, 2+3 a new run */
    segs[1][33] |= TH_PSH;
    fix_tcp(segs[1], lens[1]);
    assert_true(tcp_ok(segs[1], lens[1]));
    ipsecif_linux_gro_add(&gro, segs[0], lens[0], rec_emit, &r);
    ipsecif_linux_gro_add(&gro, segs[1], lens[1], rec_emit, &r);
    ipsecif_linux_gro_add(&gro, segs[2], lens[2], rec_emit, &r);
    ipsecif_linux_gro_add(&gro, segs[3], lens[3], rec_emit, &r);
    ipsecif_linux_gro_flush(&gro, rec_emit, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.h[0].gso_type, IPSECIF_LINUX_VNET_GSO_TCPV4);
    assert_int_equal(r.len[0], lens[0] + lens[1] - 52);
    assert_int_equal(r.pkt[0][33] & TH_PSH, TH_PSH);
    assert_int_equal(r.h[1].gso_type, IPSECIF_LINUX_VNET_GSO_TCPV4);
    rec_free(&r);

    /* IPv4 without DF is never held */
    segs[2][6] &= (uint8_t)~0x40u;
    ipsecif_linux_gro_add(&gro, segs[2], lens[2], rec_emit, &r);
    assert_int_equal(r.n, 1);
    assert_false(ipsecif_linux_gro_pending(&gro));
    rec_free(&r);

    /* a malformed packet of any length is passed on alone, never read past */
    {
        size_t len;

        for (len = 0; len < lens[3]; len += 7) {
            uint8_t *p = malloc(len > 0 ? len : 1);

            assert_non_null(p);
            memcpy(p, segs[3], len);
            ipsecif_linux_gro_add(&gro, p, len, rec_emit, &r);
            assert_int_equal(r.n, 1);
            rec_free(&r);
            free(p);
        }
    }
    free_segs(segs, n);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tso4_boundaries),
        cmocka_unit_test(test_tso_flags),
        cmocka_unit_test(test_tso6),
        cmocka_unit_test(test_partial_csum),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_gro_round_trip),
        cmocka_unit_test(test_gro_breaks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
