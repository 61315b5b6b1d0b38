/*
 * The whole data path between two contexts: A's interface sends, the mock
 * port records the outer packet, B takes it in. Every algorithm, all four
 * family combinations, NAT-T, ECN, ACQUIRE, too-big, inbound policy checks,
 * and bad packets dropped with the right counter.
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

struct pair {
    struct test_ctx a;
    struct test_ctx b;
    struct ipsecif_if *ia;
    struct ipsecif_if *ib;
    struct ipsecif_if_info infa;
    struct ipsecif_if_info infb;
    const char *oa; /* outer addresses */
    const char *ob;
};

struct algo {
    uint8_t ealg;
    uint8_t aalg;
    size_t ekey;
    size_t akey;
    const char *name;
};

static const struct algo algos[] = {
    {IPSECIF_EALG_AES_GCM16, 0, 20, 0, "aes-gcm-128"},
    {IPSECIF_EALG_AES_GCM16, 0, 28, 0, "aes-gcm-192"},
    {IPSECIF_EALG_AES_GCM16, 0, 36, 0, "aes-gcm-256"},
    {IPSECIF_EALG_CHACHA20_POLY1305, 0, 36, 0, "chacha20-poly1305"},
    {IPSECIF_EALG_AES_GMAC, 0, 20, 0, "aes-gmac-128"},
    {IPSECIF_EALG_AES_GMAC, 0, 36, 0, "aes-gmac-256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA1_96, 16, 20, "aes-cbc-128/sha1"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 32, 32, "aes-cbc-256/sha256"},
    {IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_384_192, 24, 48, "aes-cbc-192/sha384"},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_AALG_HMAC_SHA2_512_256, 24, 64, "3des/sha512"},
    {IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 32, "null/sha256"},
};

static const uint8_t keybytes[80] = {
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
    0x13, 0x57, 0x9b, 0xdf, 0x24, 0x68, 0xac, 0xe0, 0x31, 0x75, 0xb9, 0xfd, 0x42, 0x86, 0xca, 0x0e,
    0x53, 0x97, 0xdb, 0x1f, 0x64, 0xa8, 0xec, 0x20, 0x75, 0xb9, 0xfd, 0x31, 0x86, 0xca, 0x0e, 0x42};

static void sa_params(struct ipsecif_sa_params *p, const struct algo *al, const char *src,
                      const char *dst, uint32_t spi, uint32_t reqid, uint32_t flags)
{
    memset(p, 0, sizeof(*p));
    p->proto = IPSECIF_IPPROTO_ESP;
    p->mode = IPSECIF_MODE_TRANSPORT;
    p->ealg = al->ealg;
    p->aalg = al->aalg;
    p->spi = spi;
    p->src = test_addr(src);
    p->dst = test_addr(dst);
    p->reqid = reqid;
    p->replay_window = 64;
    p->flags = flags;
    p->ekey = keybytes;
    p->ekey_len = al->ekey;
    p->akey = keybytes + 7;
    p->akey_len = al->akey;
}

/* net.inet.ipsec.enabled both contexts of the next pair_up() get before
 * their tunnels are set. */
static int pair_enabled = IPSECIF_IPSEC_ENABLED;

/* Two contexts with ipsec0 each, tunnel oa <-> ob, SAs both ways. */
static void pair_up(struct pair *pr, const char *oa, const char *ob, const struct algo *al,
                    uint32_t flags, uint32_t saflags)
{
    struct ipsecif_sa_params p;
    struct ipsecif_addr a = test_addr(oa), b = test_addr(ob);
    uint16_t port = (flags & IPSECIF_IFF_LINK0) ? 4500 : 0;

    memset(pr, 0, sizeof(*pr));
    pr->oa = oa;
    pr->ob = ob;
    test_ctx_new(&pr->a, NULL);
    test_ctx_new(&pr->b, NULL);
    assert_int_equal(ipsecif_sysctl_set(pr->a.ctx, IPSECIF_SYSCTL_ENABLED, pair_enabled),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(pr->b.ctx, IPSECIF_SYSCTL_ENABLED, pair_enabled),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_if_create(pr->a.ctx, "ipsec0", &pr->ia), IPSECIF_OK);
    assert_int_equal(ipsecif_if_create(pr->b.ctx, "ipsec0", &pr->ib), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(pr->a.ctx, pr->ia, flags | IPSECIF_IFF_UP, 0),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(pr->b.ctx, pr->ib, flags | IPSECIF_IFF_UP, 0),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(pr->a.ctx, pr->ia, &a, 0, &b, 0, 1000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(pr->b.ctx, pr->ib, &b, 0, &a, 0, 1000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(pr->a.ctx, pr->ia, &pr->infa), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(pr->b.ctx, pr->ib, &pr->infb), IPSECIF_OK);

    /* A -> B: A's out ids, B's in ids (IPv4 pair and IPv6 pair). */
    sa_params(&p, al, oa, ob, 0x1001, pr->infa.reqid[IPSECIF_IFPOL_V4_OUT], saflags);
    p.natt_sport = port;
    p.natt_dport = port;
    assert_int_equal(ipsecif_sa_add(pr->a.ctx, &p, 1000), IPSECIF_OK);
    p.reqid = pr->infb.reqid[IPSECIF_IFPOL_V4_IN];
    assert_int_equal(ipsecif_sa_add(pr->b.ctx, &p, 1000), IPSECIF_OK);
    sa_params(&p, al, oa, ob, 0x1003, pr->infa.reqid[IPSECIF_IFPOL_V6_OUT], saflags);
    p.natt_sport = port;
    p.natt_dport = port;
    assert_int_equal(ipsecif_sa_add(pr->a.ctx, &p, 1000), IPSECIF_OK);
    p.reqid = pr->infb.reqid[IPSECIF_IFPOL_V6_IN];
    assert_int_equal(ipsecif_sa_add(pr->b.ctx, &p, 1000), IPSECIF_OK);
    /* B -> A */
    sa_params(&p, al, ob, oa, 0x2001, pr->infb.reqid[IPSECIF_IFPOL_V4_OUT], saflags);
    p.natt_sport = port;
    p.natt_dport = port;
    assert_int_equal(ipsecif_sa_add(pr->b.ctx, &p, 1000), IPSECIF_OK);
    p.reqid = pr->infa.reqid[IPSECIF_IFPOL_V4_IN];
    assert_int_equal(ipsecif_sa_add(pr->a.ctx, &p, 1000), IPSECIF_OK);
    sa_params(&p, al, ob, oa, 0x2003, pr->infb.reqid[IPSECIF_IFPOL_V6_OUT], saflags);
    p.natt_sport = port;
    p.natt_dport = port;
    assert_int_equal(ipsecif_sa_add(pr->b.ctx, &p, 1000), IPSECIF_OK);
    p.reqid = pr->infa.reqid[IPSECIF_IFPOL_V6_IN];
    assert_int_equal(ipsecif_sa_add(pr->a.ctx, &p, 1000), IPSECIF_OK);
}

static void pair_down(struct pair *pr)
{
    test_ctx_free(&pr->a);
    test_ctx_free(&pr->b);
}

/* Send an inner packet from one side; return the recorded outer packet in out. */
static int send_one(struct test_ctx *from, struct ipsecif_if *ifp, const char *isrc,
                    const char *idst, size_t payload, uint8_t tos, struct test_buf *inner,
                    struct test_buf *out)
{
    struct test_buf tb;
    unsigned before = from->mock->n_sent;
    int rc;

    test_build_ping(&tb, 128, isrc, idst, payload, tos);
    *inner = tb;
    inner->b.base = inner->mem;
    rc = ipsecif_if_output(from->ctx, ifp, &tb.b, 5000);
    if (rc == IPSECIF_OK) {
        struct mock_pkt *mp = &from->mock->sent[before];

        assert_int_equal(from->mock->n_sent, before + 1);
        test_buf_set(out, 64, mp->data, mp->len);
    }
    return rc;
}

static int receive(struct test_ctx *to, struct test_buf *outer)
{
    return ipsecif_input(to->ctx, &outer->b, 5000);
}

static void assert_delivered(struct test_ctx *to, const struct test_buf *inner)
{
    struct mock_pkt *mp;

    assert_true(to->mock->n_delivered >= 1);
    mp = &to->mock->delivered[to->mock->n_delivered - 1];
    assert_int_equal(mp->len, inner->b.len);
    assert_memory_equal(mp->data, inner->mem + inner->b.off, inner->b.len);
}

static const char *outer_fams[2][2] = {{"198.51.100.1", "198.51.100.2"},
                                       {"2001:db8:1::1", "2001:db8:1::2"}};
static const char *inner_fams[2][2] = {{"192.0.2.1", "203.0.113.1"},
                                       {"2001:db8:a::1", "2001:db8:b::1"}};

/* The outer header of a sent packet is sound: lengths, TTL, and the IPv4
 * header checksum, or with NAT-T over IPv6 the UDP checksum. */
static void assert_outer_sound(const struct test_buf *outer, bool v6, bool natt)
{
    const uint8_t *o = outer->mem + outer->b.off;
    size_t ih = v6 ? 40 : 20;
    size_t len = outer->b.len;

    assert_true(len >= ih + (natt ? 8 : 0) + 8);
    if (!v6) {
        assert_int_equal(o[0], 0x45);
        assert_int_equal(ipsecif_load16(o + 2), len);
        assert_int_equal(o[8], 64);
        assert_int_equal(ipsecif_csum_fold(ipsecif_csum_add(0, o, 20)), 0);
    } else {
        assert_int_equal(o[0] >> 4, 6);
        assert_int_equal(ipsecif_load16(o + 4), len - 40);
        assert_int_equal(o[7], 64);
    }
    if (natt) {
        uint32_t ulen = (uint32_t)(len - ih);

        assert_int_equal(ipsecif_load16(o + ih + 4), ulen);
        if (v6) {
            uint32_t sum = ipsecif_v6_pseudo(o + 8, o + 24, ulen, IPSECIF_IPPROTO_UDP);

            assert_int_not_equal(ipsecif_load16(o + ih + 6), 0);
            assert_int_equal(ipsecif_csum_fold(ipsecif_csum_add(sum, o + ih, ulen)), 0);
        } else {
            assert_int_equal(ipsecif_load16(o + ih + 6), 0);
        }
    }
}

static void test_round_trips(void **state)
{
    size_t ai;
    int of, inf, esn;
    static const size_t sizes[] = {0, 1, 13, 64, 500, 1200};

    (void)state;
    for (ai = 0; ai < sizeof(algos) / sizeof(algos[0]); ai++) {
        for (of = 0; of < 2; of++) {
            for (esn = 0; esn < 2; esn++) {
                struct pair pr;

                pair_up(&pr, outer_fams[of][0], outer_fams[of][1], &algos[ai], IPSECIF_IFF_LINK2,
                        esn ? IPSECIF_SA_F_ESN : 0);
                for (inf = 0; inf < 2; inf++) {
                    size_t si;

                    for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                        struct test_buf inner, outer;
                        const uint8_t *o;

                        /* A -> B */
                        assert_int_equal(send_one(&pr.a, pr.ia, inner_fams[inf][0],
                                                  inner_fams[inf][1], sizes[si], 0, &inner, &outer),
                                         IPSECIF_OK);
                        o = outer.mem + outer.b.off;
                        assert_outer_sound(&outer, of == 1, false);
                        /* The outer header is the tunnel's, ESP inside. */
                        if (of == 0) {
                            assert_int_equal(o[0] >> 4, 4);
                            assert_int_equal(o[9], IPSECIF_IPPROTO_ESP);
                        } else {
                            assert_int_equal(o[0] >> 4, 6);
                            assert_int_equal(o[6], IPSECIF_IPPROTO_ESP);
                        }
                        assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
                        assert_delivered(&pr.b, &inner);
                        assert_ptr_equal(pr.b.mock->delivered[pr.b.mock->n_delivered - 1].ifp,
                                         pr.ib);
                        /* B -> A */
                        assert_int_equal(send_one(&pr.b, pr.ib, inner_fams[inf][1],
                                                  inner_fams[inf][0], sizes[si], 0, &inner, &outer),
                                         IPSECIF_OK);
                        assert_int_equal(receive(&pr.a, &outer), IPSECIF_OK);
                        assert_delivered(&pr.a, &inner);
                        mock_port_clear(pr.a.mock);
                        mock_port_clear(pr.b.mock);
                    }
                }
                assert_int_equal(ipsecif_stats_get(pr.b.ctx)->in_success, 12);
                assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_success, 12);
                pair_down(&pr);
            }
        }
    }
}

static void test_bad_packets_counted(void **state)
{
    struct test_buf inner, outer, copy;
    struct pair pr;
    const struct ipsecif_stats *st;
    size_t i, len;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    st = ipsecif_stats_get(pr.b.ctx);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 100, 0, &inner, &outer),
                     IPSECIF_OK);
    len = outer.b.len;

    /* Tampered anywhere after the outer header: auth failure (or bad SPI
     * when the SPI itself changed), nothing delivered. */
    for (i = 20; i < len; i++) {
        uint64_t auth = st->in_auth, spi = st->in_badspi, mal = st->in_malformed;

        copy = outer;
        copy.b.base = copy.mem;
        copy.mem[copy.b.off + i] ^= 0x40;
        assert_int_not_equal(receive(&pr.b, &copy), IPSECIF_OK);
        assert_true(st->in_auth + st->in_badspi + st->in_malformed == auth + spi + mal + 1);
        if (i >= 28) {
            assert_int_equal(st->in_auth, auth + 1);
        }
    }
    assert_int_equal(pr.b.mock->n_delivered, 0);

    /* Truncated: every length. */
    for (i = 0; i < len; i++) {
        copy = outer;
        copy.b.base = copy.mem;
        copy.b.len = i;
        assert_int_not_equal(receive(&pr.b, &copy), IPSECIF_OK);
    }
    assert_int_equal(pr.b.mock->n_delivered, 0);

    /* The genuine packet still passes (the window was untouched), once. */
    copy = outer;
    copy.b.base = copy.mem;
    assert_int_equal(receive(&pr.b, &copy), IPSECIF_OK);
    assert_delivered(&pr.b, &inner);
    copy = outer;
    copy.b.base = copy.mem;
    assert_int_equal(receive(&pr.b, &copy), IPSECIF_ERR_REPLAY);
    assert_int_equal(st->in_replay, 1);
    assert_int_equal(pr.infb.stats.in_replay, 0); /* the snapshot is older */
    {
        struct ipsecif_if_info now;

        assert_int_equal(ipsecif_if_get_info(pr.b.ctx, pr.ib, &now), IPSECIF_OK);
        assert_int_equal(now.stats.in_replay, 1);
        assert_int_equal(now.stats.in_success, 1);
    }

    /* Unknown SPI. */
    copy = outer;
    copy.b.base = copy.mem;
    ipsecif_store32(copy.mem + copy.b.off + 20, 0xdead);
    assert_int_equal(receive(&pr.b, &copy), IPSECIF_ERR_BADSPI);
    /* Not ESP at all: left to the host. */
    copy = outer;
    copy.b.base = copy.mem;
    copy.mem[copy.b.off + 9] = IPSECIF_IPPROTO_TCP;
    copy.mem[copy.b.off + 10] = 0;
    copy.mem[copy.b.off + 11] = 0;
    ipsecif_store16(copy.mem + copy.b.off + 10,
                    ipsecif_csum_fold(ipsecif_csum_add(0, copy.mem + copy.b.off, 20)));
    assert_int_equal(receive(&pr.b, &copy), IPSECIF_ERR_PROTO);
    assert_int_equal(pr.b.mock->n_delivered, 1);
    pair_down(&pr);
}

static void test_inbound_policy(void **state)
{
    struct test_buf inner, outer;
    struct ipsecif_sa_params p;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    /* An SA of another unique id on B: authentic, but the in policy wants
     * its own id, so the packet is a policy violation. */
    assert_int_equal(
        ipsecif_sa_delete(pr.b.ctx, IPSECIF_IPPROTO_ESP, NULL, &(struct ipsecif_addr){0}, 0x1001),
        IPSECIF_ERR_NOENT);
    {
        struct ipsecif_addr d = test_addr("198.51.100.2");

        assert_int_equal(ipsecif_sa_delete(pr.b.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x1001),
                         IPSECIF_OK);
    }
    sa_params(&p, &algos[0], "198.51.100.1", "198.51.100.2", 0x1001, 77, 0);
    assert_int_equal(ipsecif_sa_add(pr.b.ctx, &p, 1000), IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_ERR_POLICY);
    assert_int_equal(ipsecif_stats_get(pr.b.ctx)->in_polvio, 1);
    assert_int_equal(pr.b.mock->n_delivered, 0);
    pair_down(&pr);
}

/* The SPI of an outer IPv4 ESP packet. */
static uint32_t outer_spi(const struct test_buf *outer)
{
    const uint8_t *p = ipsecif_buf_data(&outer->b);

    return (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
}

/* net.key.prefered_oldsa picks among the interface's SAs too: with a
 * second SA for A's out policy, 0 sends with the new one, 1 with the old;
 * B takes both. */
static void test_interface_prefered_oldsa(void **state)
{
    struct test_buf inner, outer;
    struct ipsecif_sa_params p;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(outer_spi(&outer), 0x1001);
    sa_params(&p, &algos[0], "198.51.100.1", "198.51.100.2", 0x1011,
              pr.infa.reqid[IPSECIF_IFPOL_V4_OUT], 0);
    assert_int_equal(ipsecif_sa_add(pr.a.ctx, &p, 2000), IPSECIF_OK);
    p.reqid = pr.infb.reqid[IPSECIF_IFPOL_V4_IN];
    assert_int_equal(ipsecif_sa_add(pr.b.ctx, &p, 2000), IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(outer_spi(&outer), 0x1011);
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
    assert_delivered(&pr.b, &inner);
    assert_int_equal(ipsecif_sysctl_set(pr.a.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 1),
                     IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(outer_spi(&outer), 0x1001);
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
    assert_delivered(&pr.b, &inner);
    assert_int_equal(ipsecif_sysctl_set(pr.a.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 0),
                     IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(outer_spi(&outer), 0x1011);
    pair_down(&pr);
}

/* net.inet.ipsec.enabled and used are about host traffic: the interfaces'
 * policies make IPsec used (as NetBSD's ipsecif(4) policies do, so enabled
 * 0 is then refused), and with enabled 0 set before the tunnels, interface
 * traffic is protected all the same. */
static void test_interface_enabled(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(ipsecif_sysctl_get(pr.a.ctx, IPSECIF_SYSCTL_USED), 1);
    assert_int_equal(ipsecif_sysctl_set(pr.a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_sysctl_get(pr.a.ctx, IPSECIF_SYSCTL_ENABLED), 1);
    pair_down(&pr);

    pair_enabled = IPSECIF_IPSEC_DISABLED;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    pair_enabled = IPSECIF_IPSEC_ENABLED;
    assert_int_equal(ipsecif_sysctl_get(pr.a.ctx, IPSECIF_SYSCTL_ENABLED), 0);
    assert_int_equal(ipsecif_sysctl_get(pr.a.ctx, IPSECIF_SYSCTL_USED), 0);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_buf_data(&outer.b)[9], IPSECIF_IPPROTO_ESP);
    assert_int_equal(outer_spi(&outer), 0x1001);
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
    assert_delivered(&pr.b, &inner);
    /* And the interface's inbound policy still holds: an SA of another
     * unique id opens the packet, the policy refuses it. */
    {
        struct ipsecif_addr d = test_addr("198.51.100.2");
        struct ipsecif_sa_params p;

        assert_int_equal(ipsecif_sa_delete(pr.b.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x1001),
                         IPSECIF_OK);
        sa_params(&p, &algos[0], "198.51.100.1", "198.51.100.2", 0x1001, 77, 0);
        assert_int_equal(ipsecif_sa_add(pr.b.ctx, &p, 1000), IPSECIF_OK);
    }
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_ERR_POLICY);
    assert_int_equal(ipsecif_stats_get(pr.b.ctx)->in_polvio, 1);
    pair_down(&pr);
}

static void test_link2_off_discards_v6(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], 0, 0);
    assert_int_equal(
        send_one(&pr.a, pr.ia, "2001:db8:a::1", "2001:db8:b::1", 10, 0, &inner, &outer),
        IPSECIF_ERR_DISCARD);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_polvio, 1);
    assert_int_equal(pr.a.mock->n_sent, 0);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    pair_down(&pr);
}

static void test_acquire_rate_limited(void **state)
{
    struct test_buf inner, outer;
    struct test_buf tb;
    struct pair pr;
    struct ipsecif_addr d = test_addr("198.51.100.2");

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(ipsecif_sa_delete(pr.a.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x1001),
                     IPSECIF_OK);
    mock_port_clear(pr.a.mock);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_ERR_NOSA);
    assert_int_equal(pr.a.mock->n_events, 1);
    assert_int_equal(pr.a.mock->events[0].type, IPSECIF_KM_ACQUIRE);
    assert_int_equal(pr.a.mock->events[0].acquire.policy_id,
                     pr.infa.policy_id[IPSECIF_IFPOL_V4_OUT]);
    assert_int_equal(pr.a.mock->events[0].acquire.policy.req[0].reqid,
                     pr.infa.reqid[IPSECIF_IFPOL_V4_OUT]);
    assert_true(ipsecif_addr_eq(&pr.a.mock->events[0].acquire.dst, &d));
    /* Within the interval: dropped, counted, no second ACQUIRE. */
    test_build_ping(&tb, 128, "192.0.2.1", "203.0.113.1", 10, 0);
    assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5500), IPSECIF_ERR_NOSA);
    assert_int_equal(pr.a.mock->n_events, 1);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_nosa, 2);
    /* After it: another. */
    test_build_ping(&tb, 128, "192.0.2.1", "203.0.113.1", 10, 0);
    assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 7000), IPSECIF_ERR_NOSA);
    assert_int_equal(pr.a.mock->n_events, 2);
    assert_int_equal(pr.a.mock->n_sent, 0);
    pair_down(&pr);
}

static void test_too_big(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;
    const uint8_t *icmp;
    int f;

    (void)state;
    for (f = 0; f < 2; f++) {
        pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
        assert_int_equal(
            send_one(&pr.a, pr.ia, inner_fams[f][0], inner_fams[f][1], 1400, 0, &inner, &outer),
            IPSECIF_ERR_TOOBIG);
        assert_int_equal(pr.a.mock->n_sent, 0);
        assert_int_equal(pr.a.mock->n_icmp, 1);
        assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_toobig, 1);
        icmp = pr.a.mock->icmp[0].data;
        if (f == 0) {
            struct ipsecif_addr s = test_addr("192.0.2.1");

            assert_int_equal(icmp[9], IPSECIF_IPPROTO_ICMP);
            assert_memory_equal(icmp + 16, s.bytes, 4); /* back to the sender */
            assert_int_equal(icmp[20], 3);
            assert_int_equal(icmp[21], 4);
            assert_int_equal(ipsecif_load16(icmp + 26), 1280);
        } else {
            struct ipsecif_addr s = test_addr("2001:db8:a::1");

            assert_int_equal(icmp[6], IPSECIF_IPPROTO_ICMPV6);
            assert_memory_equal(icmp + 24, s.bytes, 16);
            assert_int_equal(icmp[40], 2);
            assert_int_equal(ipsecif_load32(icmp + 44), 1280);
        }
        /* At the MTU it passes. */
        assert_int_equal(send_one(&pr.a, pr.ia, inner_fams[f][0], inner_fams[f][1],
                                  1280 - (f == 0 ? 28 : 48), 0, &inner, &outer),
                         IPSECIF_OK);
        assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
        assert_delivered(&pr.b, &inner);
        pair_down(&pr);
    }
}

static void test_ecn(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;
    uint8_t *o;

    (void)state;
    /* link1: inner ECT(0) is copied out; CE on the outer marks the inner. */
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK1 | IPSECIF_IFF_LINK2,
            0);
    assert_int_equal(
        send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0xb8 | 2, &inner, &outer),
        IPSECIF_OK);
    o = outer.mem + outer.b.off;
    assert_int_equal(o[1] & 3, 2);
    assert_int_equal(o[1] & 0xfc, 0xb8);
    o[1] |= 3; /* a router marks CE */
    o[10] = 0;
    o[11] = 0;
    ipsecif_store16(o + 10, ipsecif_csum_fold(ipsecif_csum_add(0, o, 20)));
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
    assert_int_equal(pr.b.mock->delivered[0].data[1] & 3, 3);
    /* The inner header checksum still verifies. */
    assert_int_equal(ipsecif_csum_fold(ipsecif_csum_add(0, pr.b.mock->delivered[0].data, 20)), 0);
    /* CE over a not-ECT inner: dropped and counted. */
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    o = outer.mem + outer.b.off;
    assert_int_equal(o[1] & 3, 0);
    o[1] |= 3;
    o[10] = 0;
    o[11] = 0;
    ipsecif_store16(o + 10, ipsecif_csum_fold(ipsecif_csum_add(0, o, 20)));
    assert_int_equal(receive(&pr.b, &outer), IPSECIF_ERR_ECN);
    assert_int_equal(ipsecif_stats_get(pr.b.ctx)->in_ecn, 1);
    pair_down(&pr);

    /* Without link1 the outer never carries ECN. */
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(
        send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0xb8 | 2, &inner, &outer),
        IPSECIF_OK);
    assert_int_equal(outer.mem[outer.b.off + 1] & 3, 0);
    pair_down(&pr);
}

static void test_natt(void **state)
{
    struct test_buf inner, outer, ka;
    struct pair pr;
    const uint8_t *o;
    int of;

    (void)state;
    for (of = 0; of < 2; of++) {
        size_t ih = of == 0 ? 20 : 40;

        pair_up(&pr, outer_fams[of][0], outer_fams[of][1], &algos[0],
                IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK2, 0);
        assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 50, 0, &inner, &outer),
                         IPSECIF_OK);
        o = outer.mem + outer.b.off;
        assert_outer_sound(&outer, of == 1, true);
        assert_int_equal(of == 0 ? o[9] : o[6], IPSECIF_IPPROTO_UDP);
        assert_int_equal(ipsecif_load16(o + ih), 4500);
        assert_int_equal(ipsecif_load16(o + ih + 2), 4500);
        /* SPI right after UDP. With link0 the level is require, so either
         * SA of the outer pair (IPv4 or IPv6 pair's) may carry it. */
        assert_true(ipsecif_load32(o + ih + 8) == 0x1001 || ipsecif_load32(o + ih + 8) == 0x1003);
        assert_int_equal(pr.a.mock->sent[0].meta.esp_off, ih + 8);
        assert_int_equal(pr.a.mock->sent[0].meta.dport, 4500);
        assert_int_equal(receive(&pr.b, &outer), IPSECIF_OK);
        assert_delivered(&pr.b, &inner);

        /* A NAT keepalive (one 0xFF byte) through ipsecif_input_esp is consumed. */
        {
            struct ipsecif_outer_meta m;

            memset(&m, 0, sizeof(m));
            m.family = pr.infb.dst.family;
            m.src = pr.infb.dst;
            m.dst = pr.infb.src;
            m.sport = 4500;
            m.dport = 4500;
            test_buf_init(&ka, 64);
            ka.mem[64] = 0xff;
            ka.b.len = 1;
            assert_int_equal(ipsecif_input_esp(pr.b.ctx, &m, &ka.b, 6000), IPSECIF_OK);
            assert_int_equal(ipsecif_stats_get(pr.b.ctx)->in_natt_keepalive, 1);
            /* Non-ESP marker: IKE, not ours. */
            test_buf_init(&ka, 64);
            ka.b.len = 20;
            assert_int_equal(ipsecif_input_esp(pr.b.ctx, &m, &ka.b, 6000), IPSECIF_ERR_PROTO);
        }
        assert_int_equal(pr.b.mock->n_delivered, 1);
        pair_down(&pr);
    }
}

/* link0 switched on and off on an interface whose tunnel is set: its ESP
 * goes into UDP 4500 and back out, on the SA with the matching ports. */
static void test_natt_toggle(void **state)
{
    struct test_buf inner, outer;
    struct ipsecif_sa_params p;
    struct pair pr;
    int of, round;

    (void)state;
    for (of = 0; of < 2; of++) {
        size_t ih = of == 0 ? 20 : 40;

        pair_up(&pr, outer_fams[of][0], outer_fams[of][1], &algos[0], IPSECIF_IFF_LINK2, 0);
        sa_params(&p, &algos[0], outer_fams[of][0], outer_fams[of][1], 0x1101,
                  pr.infa.reqid[IPSECIF_IFPOL_V4_OUT], 0);
        p.natt_sport = 4500;
        p.natt_dport = 4500;
        assert_int_equal(ipsecif_sa_add(pr.a.ctx, &p, 1000), IPSECIF_OK);
        for (round = 0; round < 4; round++) {
            bool natt = (round & 1) != 0;
            const uint8_t *o;

            assert_int_equal(ipsecif_if_set_flags(pr.a.ctx, pr.ia,
                                                  IPSECIF_IFF_UP | IPSECIF_IFF_LINK2 |
                                                      (natt ? IPSECIF_IFF_LINK0 : 0),
                                                  2000),
                             IPSECIF_OK);
            assert_int_equal(
                send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 50, 0, &inner, &outer),
                IPSECIF_OK);
            assert_outer_sound(&outer, of == 1, natt);
            o = outer.mem + outer.b.off;
            assert_int_equal(of == 0 ? o[9] : o[6],
                             natt ? IPSECIF_IPPROTO_UDP : IPSECIF_IPPROTO_ESP);
            if (natt) {
                assert_int_equal(ipsecif_load16(o + ih), 4500);
                assert_int_equal(ipsecif_load16(o + ih + 2), 4500);
                assert_int_equal(ipsecif_load32(o + ih + 8), 0x1101);
            } else {
                assert_int_equal(ipsecif_load32(o + ih), 0x1001);
            }
        }
        pair_down(&pr);
    }
}

static void test_down_and_no_tunnel(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(ipsecif_if_set_flags(pr.a.ctx, pr.ia, IPSECIF_IFF_LINK2, 0), IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_ERR_DOWN);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_down, 1);
    assert_int_equal(ipsecif_if_delete_tunnel(pr.a.ctx, pr.ia), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(pr.a.ctx, pr.ia, IPSECIF_IFF_UP | IPSECIF_IFF_LINK2, 0),
                     IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_ERR_DOWN);
    assert_int_equal(pr.a.mock->n_sent, 0);
    pair_down(&pr);
}

static void test_lifetime_bytes(void **state)
{
    struct test_buf inner, outer;
    struct ipsecif_sa_params p;
    struct pair pr;
    struct ipsecif_addr d = test_addr("198.51.100.2");
    int i;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    /* Replace A's outbound SA with one that has byte limits. */
    assert_int_equal(ipsecif_sa_delete(pr.a.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x1001),
                     IPSECIF_OK);
    sa_params(&p, &algos[0], "198.51.100.1", "198.51.100.2", 0x1001,
              pr.infa.reqid[IPSECIF_IFPOL_V4_OUT], 0);
    p.soft.bytes = 100;
    p.hard.bytes = 200;
    assert_int_equal(ipsecif_sa_add(pr.a.ctx, &p, 1000), IPSECIF_OK);
    mock_port_clear(pr.a.mock);
    for (i = 0; i < 3; i++) {
        assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 52, 0, &inner, &outer),
                         IPSECIF_OK);
    }
    /* 80, 160 (soft), 240 (hard): one soft, then one hard EXPIRE. */
    assert_int_equal(pr.a.mock->n_events, 2);
    assert_int_equal(pr.a.mock->events[0].type, IPSECIF_KM_EXPIRE);
    assert_int_equal(pr.a.mock->events[0].expire.hard, 0);
    assert_int_equal(pr.a.mock->events[1].expire.hard, 1);
    assert_int_equal(pr.a.mock->events[1].expire.reason, IPSECIF_EXPIRE_BYTES);
    assert_int_equal(ipsecif_sa_get(pr.a.ctx, IPSECIF_IPPROTO_ESP, NULL, &d, 0x1001,
                                    &(struct ipsecif_sa_info){0}),
                     IPSECIF_ERR_NOENT);
    /* The next packet has no SA. */
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 52, 0, &inner, &outer),
                     IPSECIF_ERR_NOSA);
    pair_down(&pr);
}

static void test_seqwrap(void **state)
{
    struct test_buf inner, outer;
    struct pair pr;
    struct ipsecif_sa *sa;
    struct ipsecif_addr d = test_addr("198.51.100.2");

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    sa = ipsecif_sadb_lookup_spi(pr.a.ctx, IPSECIF_IPPROTO_ESP, &d, 0x1001);
    assert_non_null(sa);
    sa->seq_out = 0xfffffffeu;
    mock_port_clear(pr.a.mock);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_OK);
    assert_int_equal(send_one(&pr.a, pr.ia, "192.0.2.1", "203.0.113.1", 10, 0, &inner, &outer),
                     IPSECIF_ERR_SEQWRAP);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_seqwrap, 1);
    assert_int_equal(pr.a.mock->n_events, 1);
    assert_int_equal(pr.a.mock->events[0].expire.reason, IPSECIF_EXPIRE_SEQWRAP);
    assert_null(ipsecif_sadb_lookup_spi(pr.a.ctx, IPSECIF_IPPROTO_ESP, &d, 0x1001));
    pair_down(&pr);
}

static void test_noroom(void **state)
{
    struct test_buf tb;
    struct pair pr;

    (void)state;
    pair_up(&pr, "198.51.100.1", "198.51.100.2", &algos[0], IPSECIF_IFF_LINK2, 0);
    test_build_ping(&tb, 8, "192.0.2.1", "203.0.113.1", 10, 0);
    assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000), IPSECIF_ERR_NOROOM);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_noroom, 1);
    assert_int_equal(pr.a.mock->n_sent, 0);
    pair_down(&pr);
}

/* ---- Nesting: outer packets of ours routed back into an interface ---- */

/* The last outer packet t sent, as an inner packet with room for another round. */
static void last_sent(const struct test_ctx *t, struct test_buf *tb)
{
    const struct mock_pkt *mp;

    assert_true(t->mock->n_sent >= 1 && t->mock->n_sent <= MOCK_MAX_PKTS);
    mp = &t->mock->sent[t->mock->n_sent - 1];
    test_buf_set(tb, 128, mp->data, mp->len);
}

static int ping_into(struct test_ctx *t, struct ipsecif_if *ifp, uint64_t now)
{
    struct test_buf tb;

    test_build_ping(&tb, 128, "192.0.2.1", "203.0.113.1", 20, 0);
    return ipsecif_if_output(t->ctx, ifp, &tb.b, now);
}

static uint64_t if_nested(struct test_ctx *t, struct ipsecif_if *ifp)
{
    struct ipsecif_if_info info;

    assert_int_equal(ipsecif_if_get_info(t->ctx, ifp, &info), IPSECIF_OK);
    return info.stats.out_nested;
}

/* Another interface in t's context, tunnel s -> d, up, with outbound SAs
 * (none when sas is false). */
static struct ipsecif_if *add_if(struct test_ctx *t, const char *name, const char *s, const char *d,
                                 uint32_t flags, bool sas)
{
    struct ipsecif_addr a = test_addr(s), b = test_addr(d);
    struct ipsecif_if_info info;
    struct ipsecif_sa_params p;
    struct ipsecif_if *ifp;
    uint16_t port = (flags & IPSECIF_IFF_LINK0) ? 4500 : 0;

    assert_int_equal(ipsecif_if_create(t->ctx, name, &ifp), IPSECIF_OK);
    assert_int_equal(
        ipsecif_if_set_flags(t->ctx, ifp, flags | IPSECIF_IFF_UP | IPSECIF_IFF_LINK2, 0),
        IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(t->ctx, ifp, &a, 0, &b, 0, 1000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(t->ctx, ifp, &info), IPSECIF_OK);
    if (sas) {
        sa_params(&p, &algos[0], s, d, 0x3001 + info.unit * 16, info.reqid[IPSECIF_IFPOL_V4_OUT],
                  0);
        p.natt_sport = port;
        p.natt_dport = port;
        assert_int_equal(ipsecif_sa_add(t->ctx, &p, 1000), IPSECIF_OK);
        sa_params(&p, &algos[0], s, d, 0x3003 + info.unit * 16, info.reqid[IPSECIF_IFPOL_V6_OUT],
                  0);
        p.natt_sport = port;
        p.natt_dport = port;
        assert_int_equal(ipsecif_sa_add(t->ctx, &p, 1000), IPSECIF_OK);
    }
    return ifp;
}

static void test_nesting_self_loop(void **state)
{
    struct test_buf tb;
    struct pair pr;
    int of, natt;

    (void)state;
    for (of = 0; of < 2; of++) {
        for (natt = 0; natt < 2; natt++) {
            unsigned logs;

            pair_up(&pr, outer_fams[of][0], outer_fams[of][1], &algos[0],
                    IPSECIF_IFF_LINK2 | (natt ? IPSECIF_IFF_LINK0 : 0), 0);
            assert_int_equal(ipsecif_if_max_nesting_get(pr.a.ctx), IPSECIF_MAX_NESTING_DEFAULT);
            assert_int_equal(ping_into(&pr.a, pr.ia, 5000), IPSECIF_OK);
            assert_int_equal(pr.a.mock->n_sent, 1);
            /* ipsec0's own outer packet routed back into ipsec0. */
            logs = pr.a.mock->n_logs;
            last_sent(&pr.a, &tb);
            assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000), IPSECIF_ERR_NESTED);
            assert_int_equal(pr.a.mock->n_sent, 1);
            assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_nested, 1);
            assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_success, 1);
            assert_int_equal(if_nested(&pr.a, pr.ia), 1);
            assert_int_equal(pr.a.mock->n_logs, logs + 1);
            assert_string_equal(pr.a.mock->last_log,
                                "ipsec0: recursively called too many times(2)");
            /* Counted every time, logged at most once a second. */
            last_sent(&pr.a, &tb);
            assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5999), IPSECIF_ERR_NESTED);
            assert_int_equal(pr.a.mock->n_logs, logs + 1);
            last_sent(&pr.a, &tb);
            assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 6000), IPSECIF_ERR_NESTED);
            assert_int_equal(pr.a.mock->n_logs, logs + 2);
            assert_int_equal(if_nested(&pr.a, pr.ia), 3);
            if (of == 0 && !natt) {
                /* A later IPv4 fragment of it is still ESP between our endpoints. */
                last_sent(&pr.a, &tb);
                tb.mem[tb.b.off + 6] = 0x20;
                tb.mem[tb.b.off + 7] = 0xb9;
                assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 6000),
                                 IPSECIF_ERR_NESTED);
                assert_int_equal(if_nested(&pr.a, pr.ia), 4);
            }
            assert_int_equal(pr.a.mock->n_sent, 1);
            pair_down(&pr);
        }
    }

    /* With max 2 a self-loop gets one more round, then stops. */
    pair_up(&pr, outer_fams[0][0], outer_fams[0][1], &algos[0], IPSECIF_IFF_LINK2, 0);
    assert_int_equal(ipsecif_if_max_nesting_set(pr.a.ctx, 2), IPSECIF_OK);
    assert_int_equal(ping_into(&pr.a, pr.ia, 5000), IPSECIF_OK);
    last_sent(&pr.a, &tb);
    assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000), IPSECIF_OK);
    assert_int_equal(pr.a.mock->n_sent, 2);
    last_sent(&pr.a, &tb);
    assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000), IPSECIF_ERR_NESTED);
    assert_string_equal(pr.a.mock->last_log, "ipsec0: recursively called too many times(3)");
    assert_int_equal(pr.a.mock->n_sent, 2);
    assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_nested, 1);
    pair_down(&pr);
}

static void test_nesting_chain(void **state)
{
    static const char *under[2][2] = {{"203.0.113.1", "203.0.113.2"},
                                      {"2001:db8:2::1", "2001:db8:2::2"}};
    struct test_buf tb, p0;
    struct ipsecif_if *i1;
    struct pair pr;
    const uint8_t *o;
    int of;

    (void)state;
    for (of = 0; of < 2; of++) {
        /* ipsec1 over ipsec0: ipsec1's outer packets are routed into ipsec0. */
        pair_up(&pr, outer_fams[0][0], outer_fams[0][1], &algos[0], IPSECIF_IFF_LINK2, 0);
        i1 = add_if(&pr.a, "ipsec1", under[of][0], under[of][1], 0, true);

        /* Max 1: ipsec0 refuses it. */
        assert_int_equal(ping_into(&pr.a, i1, 5000), IPSECIF_OK);
        last_sent(&pr.a, &tb);
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000), IPSECIF_ERR_NESTED);
        assert_string_equal(pr.a.mock->last_log, "ipsec0: recursively called too many times(2)");
        assert_int_equal(if_nested(&pr.a, pr.ia), 1);
        assert_int_equal(if_nested(&pr.a, i1), 0);
        assert_int_equal(pr.a.mock->n_sent, 1);

        /* Max 2 (and past the log's quiet second): it passes once, as ipsec0's ESP. */
        assert_int_equal(ipsecif_if_max_nesting_set(pr.a.ctx, 2), IPSECIF_OK);
        assert_int_equal(ping_into(&pr.a, i1, 7000), IPSECIF_OK);
        last_sent(&pr.a, &tb);
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 7000), IPSECIF_OK);
        assert_int_equal(pr.a.mock->n_sent, 3);
        assert_ptr_equal(pr.a.mock->sent[2].ifp, pr.ia);
        o = pr.a.mock->sent[2].data;
        assert_int_equal(o[9], IPSECIF_IPPROTO_ESP);
        assert_int_equal(o[12], 198);

        /* ipsec0's packet back into ipsec0 or into ipsec1 is a loop. */
        last_sent(&pr.a, &p0);
        tb = p0;
        tb.b.base = tb.mem;
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 7000), IPSECIF_ERR_NESTED);
        assert_string_equal(pr.a.mock->last_log, "ipsec0: recursively called too many times(3)");
        tb = p0;
        tb.b.base = tb.mem;
        assert_int_equal(ipsecif_if_output(pr.a.ctx, i1, &tb.b, 7000), IPSECIF_ERR_NESTED);
        assert_string_equal(pr.a.mock->last_log, "ipsec1: recursively called too many times(3)");
        assert_int_equal(if_nested(&pr.a, i1), 1);

        /* Plain traffic on ipsec0 does not lower its depth within the hold... */
        assert_int_equal(ping_into(&pr.a, pr.ia, 7100), IPSECIF_OK);
        tb = p0;
        tb.b.base = tb.mem;
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 7200), IPSECIF_ERR_NESTED);
        /* ...and ipsec1's packets keep passing over ipsec0. */
        assert_int_equal(ping_into(&pr.a, i1, 7300), IPSECIF_OK);
        last_sent(&pr.a, &tb);
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 7300), IPSECIF_OK);
        assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_nested, 4);
        assert_int_equal(if_nested(&pr.a, pr.ia), 3);

        /* Once the hold is over plain traffic sets it back to 1: a loop at
         * max 2 gets one more round per hold period, no more. */
        assert_int_equal(ping_into(&pr.a, pr.ia, 8400), IPSECIF_OK);
        tb = p0;
        tb.b.base = tb.mem;
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 8400), IPSECIF_OK);
        last_sent(&pr.a, &tb);
        assert_int_equal(ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 8400), IPSECIF_ERR_NESTED);
        pair_down(&pr);
    }
}

/* An IPv4 or IPv6 packet src -> dst of protocol proto carrying pl. */
static void build_ip(struct test_buf *tb, const char *src, const char *dst, uint8_t proto,
                     const uint8_t *pl, size_t plen)
{
    struct ipsecif_addr s = test_addr(src), d = test_addr(dst);
    size_t hl = s.family == IPSECIF_AF_INET ? 20 : 40;
    uint8_t *p;

    test_buf_init(tb, 128);
    p = tb->mem + 128;
    if (s.family == IPSECIF_AF_INET) {
        p[0] = 0x45;
        ipsecif_store16(p + 2, (uint16_t)(hl + plen));
        p[8] = 64;
        p[9] = proto;
        memcpy(p + 12, s.bytes, 4);
        memcpy(p + 16, d.bytes, 4);
    } else {
        p[0] = 0x60;
        ipsecif_store16(p + 4, (uint16_t)plen);
        p[6] = proto;
        p[7] = 64;
        memcpy(p + 8, s.bytes, 16);
        memcpy(p + 24, d.bytes, 16);
    }
    memcpy(p + hl, pl, plen);
    tb->b.len = hl + plen;
}

static void test_nesting_not_ours(void **state)
{
    /* ESP header (SPI, sequence number) and some bytes. */
    static const uint8_t esp[24] = {0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xaa, 0xbb};
    /* UDP 4500 -> 4500, then ESP. */
    static const uint8_t udp_esp[32] = {0x11, 0x94, 0x11, 0x94, 0, 32, 0, 0,
                                        0,    0,    0x10, 0x01, 0, 0,  0, 1};
    /* UDP 4501 -> 4500, then ESP. */
    static const uint8_t udp_other[32] = {0x11, 0x95, 0x11, 0x94, 0, 32, 0, 0,
                                          0,    0,    0x10, 0x01, 0, 0,  0, 1};
    /* UDP 4500 -> 4500 with the non-ESP marker: IKE. */
    static const uint8_t udp_ike[32] = {0x11, 0x94, 0x11, 0x94, 0, 32, 0, 0};
    /* UDP 4500 -> 4500 NAT keepalive. */
    static const uint8_t udp_ka[9] = {0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff};
    /* IPv6 fragment header (first fragment, more follow), then ESP. */
    static const uint8_t frag_esp[32] = {
        IPSECIF_IPPROTO_ESP, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0x10, 0x01, 0, 0, 0, 1};
    static const struct {
        const char *src, *dst;
        uint8_t proto;
        const uint8_t *pl;
        size_t plen;
        int want;
    } cases[] = {
        /* ipsec0: plain ESP, 198.51.100.1 -> 198.51.100.2 */
        {"198.51.100.1", "198.51.100.2", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_ERR_NESTED},
        {"192.0.2.1", "192.0.2.2", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_OK},
        {"198.51.100.2", "198.51.100.1", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_OK},
        {"198.51.100.1", "198.51.100.3", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_OK},
        {"198.51.100.1", "198.51.100.2", IPSECIF_IPPROTO_UDP, udp_esp, sizeof(udp_esp), IPSECIF_OK},
        {"198.51.100.1", "198.51.100.2", IPSECIF_IPPROTO_AH, esp, sizeof(esp), IPSECIF_OK},
        /* ipsec1: link0, 203.0.113.1:4500 -> 203.0.113.2:4500 */
        {"203.0.113.1", "203.0.113.2", IPSECIF_IPPROTO_UDP, udp_esp, sizeof(udp_esp),
         IPSECIF_ERR_NESTED},
        {"203.0.113.1", "203.0.113.2", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_OK},
        {"203.0.113.1", "203.0.113.2", IPSECIF_IPPROTO_UDP, udp_other, sizeof(udp_other),
         IPSECIF_OK},
        {"203.0.113.1", "203.0.113.2", IPSECIF_IPPROTO_UDP, udp_ike, sizeof(udp_ike), IPSECIF_OK},
        {"203.0.113.1", "203.0.113.2", IPSECIF_IPPROTO_UDP, udp_ka, sizeof(udp_ka), IPSECIF_OK},
        {"203.0.113.2", "203.0.113.1", IPSECIF_IPPROTO_UDP, udp_esp, sizeof(udp_esp), IPSECIF_OK},
        /* ipsec2: plain ESP, 2001:db8:1::1 -> 2001:db8:1::2 */
        {"2001:db8:1::1", "2001:db8:1::2", IPSECIF_IPPROTO_ESP, esp, sizeof(esp),
         IPSECIF_ERR_NESTED},
        {"2001:db8:1::1", "2001:db8:1::2", 44, frag_esp, sizeof(frag_esp), IPSECIF_ERR_NESTED},
        {"2001:db8:9::1", "2001:db8:9::2", IPSECIF_IPPROTO_ESP, esp, sizeof(esp), IPSECIF_OK},
        {"2001:db8:1::2", "2001:db8:1::1", 44, frag_esp, sizeof(frag_esp), IPSECIF_OK},
        {"2001:db8:1::1", "2001:db8:1::2", IPSECIF_IPPROTO_UDP, udp_esp, sizeof(udp_esp),
         IPSECIF_OK},
    };
    struct test_buf tb;
    struct pair pr;
    uint64_t refused = 0;
    size_t i;

    (void)state;
    pair_up(&pr, outer_fams[0][0], outer_fams[0][1], &algos[0], IPSECIF_IFF_LINK2, 0);
    (void)add_if(&pr.a, "ipsec1", "203.0.113.1", "203.0.113.2", IPSECIF_IFF_LINK0, false);
    (void)add_if(&pr.a, "ipsec2", "2001:db8:1::1", "2001:db8:1::2", 0, false);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned sent = pr.a.mock->n_sent;
        int rc;

        build_ip(&tb, cases[i].src, cases[i].dst, cases[i].proto, cases[i].pl, cases[i].plen);
        rc = ipsecif_if_output(pr.a.ctx, pr.ia, &tb.b, 5000 + i);
        if (rc != cases[i].want) {
            fail_msg("case %zu: %d, want %d", i, rc, cases[i].want);
        }
        refused += rc == IPSECIF_ERR_NESTED;
        assert_int_equal(pr.a.mock->n_sent, sent + (rc == IPSECIF_OK));
        assert_int_equal(ipsecif_stats_get(pr.a.ctx)->out_nested, refused);
        mock_port_clear(pr.a.mock);
    }
    pair_down(&pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_bad_packets_counted),
        cmocka_unit_test(test_inbound_policy),
        cmocka_unit_test(test_interface_prefered_oldsa),
        cmocka_unit_test(test_interface_enabled),
        cmocka_unit_test(test_link2_off_discards_v6),
        cmocka_unit_test(test_acquire_rate_limited),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_ecn),
        cmocka_unit_test(test_natt),
        cmocka_unit_test(test_natt_toggle),
        cmocka_unit_test(test_down_and_no_tunnel),
        cmocka_unit_test(test_lifetime_bytes),
        cmocka_unit_test(test_seqwrap),
        cmocka_unit_test(test_noroom),
        cmocka_unit_test(test_nesting_self_loop),
        cmocka_unit_test(test_nesting_chain),
        cmocka_unit_test(test_nesting_not_ours),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
