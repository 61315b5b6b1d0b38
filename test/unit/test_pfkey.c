/*
 * PF_KEY v2: the setkey(8) captures replayed in order, round trips of every
 * message type in both dialects, malformed messages, REGISTER lists,
 * ACQUIRE and EXPIRE broadcasts, promiscuous copies, interface-owned
 * policies, endpoints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "ipsecif/ipsecif.h"
#include "mock_port.h"
#include "pfkey_captures.h"
#include "test_util.h"

#define KAME IPSECIF_PFKEY_DIALECT_KAME
#define LINUX IPSECIF_PFKEY_DIALECT_LINUX

/* ---- Recording of pfkey_deliver (the mock port predates it) ---- */

#define REC_MAX 64
#define REC_SIZE 4096

struct rec_msg {
    uint32_t ep;
    size_t len;
    uint8_t b[REC_SIZE];
};

static struct rec_msg rec[REC_MAX];
static unsigned n_rec;

static void rec_deliver(void *user, uint32_t ep_id, const uint8_t *msg, size_t len)
{
    (void)user;
    assert_true(n_rec < REC_MAX);
    assert_true(len <= REC_SIZE);
    /* Every message the library builds is whole: its length field says so. */
    assert_true(len >= 16 && len % 8 == 0);
    rec[n_rec].ep = ep_id;
    rec[n_rec].len = len;
    memcpy(rec[n_rec].b, msg, len);
    n_rec++;
}

static void rec_clear(void)
{
    n_rec = 0;
}

static unsigned rec_count(uint32_t ep)
{
    unsigned i, n = 0;

    for (i = 0; i < n_rec; i++) {
        n += rec[i].ep == ep;
    }
    return n;
}

/* The k-th message delivered to ep. */
static const struct rec_msg *rec_get(uint32_t ep, unsigned k)
{
    unsigned i;

    for (i = 0; i < n_rec; i++) {
        if (rec[i].ep == ep && k-- == 0) {
            return &rec[i];
        }
    }
    fail_msg("no message %u for endpoint %u", k, ep);
    return NULL;
}

static uint16_t g16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, 2);
    return v;
}

static uint32_t g32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

/*
 * The wire id of a library policy id (linux/pfkeyv2.h clients: index << 3 |
 * direction, in 0, out 1, fwd 2; 3 and up are per-socket), and back.
 */
static uint32_t wire_id(uint8_t d, uint32_t id, uint8_t dir)
{
    if (d != LINUX) {
        return id;
    }
    return (id << 3) | (dir == IPSECIF_DIR_IN ? 0u : dir == IPSECIF_DIR_OUT ? 1u : 2u);
}

static uint32_t lib_id(uint8_t d, uint32_t wire)
{
    return d == LINUX ? wire >> 3 : wire;
}

static uint64_t g64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* An extension of a received message, checking the walk stays in bounds. */
static const uint8_t *find_ext(const struct rec_msg *m, unsigned type, size_t *elen)
{
    size_t off = 16;

    assert_int_equal((size_t)g16(m->b + 4) * 8, m->len);
    while (off < m->len) {
        size_t l = (size_t)g16(m->b + off) * 8;

        assert_true(l >= 8 && l <= m->len - off);
        if (g16(m->b + off + 2) == type) {
            if (elen != NULL) {
                *elen = l;
            }
            return m->b + off;
        }
        off += l;
    }
    return NULL;
}

static unsigned ext_count(const struct rec_msg *m)
{
    size_t off = 16;
    unsigned n = 0;

    while (off < m->len) {
        off += (size_t)g16(m->b + off) * 8;
        n++;
    }
    return n;
}

/* ---- Fixture ---- */

struct fx {
    struct test_ctx t;
    uint32_t ep;
};

static void fx_up(struct fx *f, uint8_t dialect)
{
    memset(f, 0, sizeof(*f));
    test_ctx_new(&f->t, NULL);
    f->t.mock->port.pfkey_deliver = rec_deliver;
    rec_clear();
    assert_int_equal(ipsecif_pfkey_open(f->t.ctx, dialect, &f->ep), IPSECIF_OK);
}

static void fx_down(struct fx *f)
{
    test_ctx_free(&f->t);
}

static void sendm(struct fx *f, uint32_t ep, const uint8_t *m, size_t len, uint64_t now)
{
    assert_int_equal(ipsecif_pfkey_send(f->t.ctx, ep, m, len, now), IPSECIF_OK);
}

/* ---- A message builder (host order, as a PF_KEY client writes) ---- */

struct mb {
    uint8_t d;
    size_t len;
    uint8_t b[1024];
};

static void mb_init(struct mb *m, uint8_t d, uint8_t type, uint8_t satype, uint32_t seq)
{
    memset(m, 0, sizeof(*m));
    m->d = d;
    m->b[0] = 2;
    m->b[1] = type;
    m->b[3] = satype;
    memcpy(m->b + 8, &seq, 4);
    m->b[12] = 0x42;
    m->len = 16;
}

static uint8_t *mb_ext(struct mb *m, uint16_t type, size_t n)
{
    uint8_t *p = m->b + m->len;
    uint16_t units = (uint16_t)((n + 7) / 8);

    assert_true(m->len + units * 8u <= sizeof(m->b));
    memcpy(p, &units, 2);
    memcpy(p + 2, &type, 2);
    m->len += units * 8u;
    return p;
}

static size_t mb_done(struct mb *m)
{
    uint16_t units = (uint16_t)(m->len / 8);

    memcpy(m->b + 4, &units, 2);
    return m->len;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void putbe32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t sa_size(const struct ipsecif_addr *a)
{
    return a->family == IPSECIF_AF_INET6 ? 28 : 16;
}

static void sockaddr_w(uint8_t d, uint8_t *p, const struct ipsecif_addr *a, uint16_t port)
{
    if (d == LINUX) {
        put16(p, a->family == IPSECIF_AF_INET6 ? 10 : 2);
    } else {
        p[0] = (uint8_t)sa_size(a);
        p[1] = a->family == IPSECIF_AF_INET6 ? 24 : 2;
    }
    p[2] = (uint8_t)(port >> 8);
    p[3] = (uint8_t)port;
    if (a->family == IPSECIF_AF_INET6) {
        memcpy(p + 8, a->bytes, 16);
    } else {
        memcpy(p + 4, a->bytes, 4);
    }
}

static void mb_addr(struct mb *m, uint16_t type, const char *text, uint16_t port, int plen,
                    uint8_t proto)
{
    struct ipsecif_addr a = test_addr(text);
    uint8_t *p = mb_ext(m, type, 8 + sa_size(&a));

    p[4] = proto;
    p[5] = (uint8_t)(plen >= 0 ? plen : (a.family == IPSECIF_AF_INET6 ? 128 : 32));
    sockaddr_w(m->d, p + 8, &a, port);
}

static void mb_sa(struct mb *m, uint32_t spi, uint8_t replay, uint8_t aalg, uint8_t ealg)
{
    uint8_t *p = mb_ext(m, IPSECIF_SADB_EXT_SA, 16);

    putbe32(p + 4, spi);
    p[8] = replay;
    p[10] = aalg;
    p[11] = ealg;
}

static void mb_key(struct mb *m, uint16_t type, size_t bytes, uint8_t fill)
{
    uint8_t *p = mb_ext(m, type, 8 + bytes);

    put16(p + 4, (uint16_t)(bytes * 8));
    memset(p + 8, fill, bytes);
}

static void mb_sa2(struct mb *m, uint8_t mode, uint32_t reqid)
{
    uint8_t *p = mb_ext(m, IPSECIF_SADB_X_EXT_SA2, 16);

    p[4] = mode;
    put32(p + 12, reqid);
}

static void mb_lifetime(struct mb *m, uint16_t type, uint64_t bytes, uint64_t addtime)
{
    uint8_t *p = mb_ext(m, type, 32);

    put64(p + 8, bytes);
    put64(p + 16, addtime);
}

struct wreq {
    uint8_t proto, mode, level;
    uint32_t reqid;
    const char *src; /* NULL: no endpoints */
    const char *dst;
};

static void mb_policy(struct mb *m, uint16_t type, uint8_t dir, uint32_t id, uint32_t prio,
                      const struct wreq *rq, unsigned n)
{
    size_t h = m->d == LINUX ? 16 : 8;
    size_t total = 16;
    uint8_t *p;
    unsigned i;

    for (i = 0; i < n; i++) {
        size_t rl = h;

        if (rq[i].src != NULL) {
            struct ipsecif_addr a = test_addr(rq[i].src);

            rl += 2 * sa_size(&a);
        }
        total += (rl + 7) & ~(size_t)7;
    }
    p = mb_ext(m, IPSECIF_SADB_X_EXT_POLICY, total);
    put16(p + 4, type);
    p[6] = dir;
    put32(p + 8, id);
    if (m->d == LINUX) {
        put32(p + 12, prio);
    }
    p += 16;
    for (i = 0; i < n; i++) {
        size_t rl = h;

        if (rq[i].src != NULL) {
            struct ipsecif_addr s = test_addr(rq[i].src);
            struct ipsecif_addr t = test_addr(rq[i].dst);

            sockaddr_w(m->d, p + h, &s, 0);
            sockaddr_w(m->d, p + h + sa_size(&s), &t, 0);
            rl += 2 * sa_size(&s);
        }
        rl = (rl + 7) & ~(size_t)7;
        put16(p, (uint16_t)rl);
        put16(p + 2, rq[i].proto);
        p[4] = rq[i].mode;
        p[5] = rq[i].level;
        if (m->d == LINUX) {
            put32(p + 8, rq[i].reqid);
        } else {
            put16(p + 6, (uint16_t)rq[i].reqid);
        }
        p += rl;
    }
}

/* ADD of an AES-CBC-128 + HMAC-SHA2-256 transport SA. */
static size_t mb_add_sa(struct mb *m, uint8_t d, uint8_t type, uint32_t spi, const char *src,
                        const char *dst)
{
    mb_init(m, d, type, IPSECIF_SADB_SATYPE_ESP, 7);
    mb_sa(m, spi, 4, IPSECIF_SADB_X_AALG_SHA2_256, IPSECIF_SADB_X_EALG_AESCBC);
    mb_sa2(m, IPSECIF_MODE_TRANSPORT, 77);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_SRC, src, 0, -1, 255);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_DST, dst, 0, -1, 255);
    mb_key(m, IPSECIF_SADB_EXT_KEY_ENCRYPT, 16, 0x11);
    mb_key(m, IPSECIF_SADB_EXT_KEY_AUTH, 32, 0x22);
    return mb_done(m);
}

/* The one reply to the last request: header checks. */
static const struct rec_msg *only_reply(uint32_t ep, uint8_t type, uint8_t err)
{
    const struct rec_msg *r;

    assert_int_equal(rec_count(ep), 1);
    r = rec_get(ep, 0);
    assert_int_equal(r->b[0], 2);
    assert_int_equal(r->b[1], type);
    assert_int_equal(r->b[2], err);
    return r;
}

/* ---- Captures ---- */

static void send_capture(struct fx *f, const struct pfkey_capture *c)
{
    rec_clear();
    sendm(f, f->ep, c->msg, c->len, 5000);
}

static void check_dump(uint32_t ep, uint8_t type, unsigned n)
{
    unsigned i;

    assert_int_equal(rec_count(ep), n);
    for (i = 0; i < n; i++) {
        const struct rec_msg *r = rec_get(ep, i);

        assert_int_equal(r->b[1], type);
        assert_int_equal(r->b[2], 0);
        /* The sequence counts down to 0 on the last. */
        assert_int_equal(g32(r->b + 8), n - 1 - i);
    }
}

static void test_captures_basic(void **state)
{
    const struct pfkey_capture *c = captures_basic;
    struct ipsecif_sa_info info;
    struct ipsecif_addr dst = test_addr("192.0.2.2");
    struct ipsecif_policy pol;
    const struct rec_msg *r;
    unsigned i;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_int_equal(IPSECIF_ARRAY_SIZE(captures_basic), 7);
    for (i = 0; i < 5; i++) {
        send_capture(&f, &c[i]);
        r = only_reply(f.ep, c[i].msg[1], 0);
        /* The reply echoes seq and pid. */
        assert_memory_equal(r->b + 8, c[i].msg + 8, 8);
    }
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 1);
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x1000, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.ealg, IPSECIF_EALG_AES_CBC);
    assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA2_256_128);
    assert_int_equal(info.params.ekey_len, 16);
    assert_int_equal(info.params.akey_len, 32);
    assert_int_equal(info.params.reqid, 16385);
    assert_int_equal(info.params.mode, IPSECIF_MODE_TRANSPORT);
    assert_int_equal(info.state, IPSECIF_SA_MATURE);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 1);

    send_capture(&f, &c[5]); /* DUMP */
    check_dump(f.ep, IPSECIF_SADB_DUMP, 1);
    r = rec_get(f.ep, 0);
    assert_int_equal(be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4), 0x1000);
    /* DUMP returns the keys (RFC 2367 3.1.11) unless the build drops them. */
#if IPSECIF_SA_KEEP_KEYS
    assert_int_equal(g16(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL) + 4), 128);
    assert_int_equal(g16(find_ext(r, IPSECIF_SADB_EXT_KEY_AUTH, NULL) + 4), 256);
#else
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL));
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_AUTH, NULL));
#endif

    send_capture(&f, &c[6]); /* X_SPDDUMP */
    check_dump(f.ep, IPSECIF_SADB_X_SPDDUMP, 1);
    r = rec_get(f.ep, 0);
    {
        const uint8_t *x = find_ext(r, IPSECIF_SADB_X_EXT_POLICY, NULL);

        assert_non_null(x);
        assert_int_equal(x[6], IPSECIF_DIR_OUT);
        assert_int_equal(g32(x + 12), IPSECIF_PRIORITY_DEFAULT);
        assert_int_equal(g32(x + 16 + 8), 16385);
        assert_int_equal(x[16 + 5], IPSECIF_LEVEL_UNIQUE);
        /* setkey's Linux build skips ids that are not index << 3 | dir. */
        assert_int_equal(g32(x + 8) & 7u, 1u);
        assert_int_equal(ipsecif_spd_get(f.t.ctx, lib_id(LINUX, g32(x + 8)), &pol), IPSECIF_OK);
        assert_int_equal(pol.req[0].reqid, 16385);
        assert_int_equal(pol.sel.ulproto, IPSECIF_IPPROTO_ANY);
    }
    fx_down(&f);
}

struct cap_expect {
    uint8_t err;     /* errno of the (first) reply */
    unsigned nreply; /* replies on the sender */
};

static int count_prio(void *arg, const struct ipsecif_policy *pol)
{
    unsigned *n = arg;

    *n += pol->priority == 0x40000000u;
    return 0;
}

static void test_captures_extra(void **state)
{
    /* What this library answers: AES-CTR and IPComp are not in its SADB,
     * and the explicit fwd policy of line 15 clashes with the automatic fwd
     * copy setkey sent for line 14. */
    static const struct cap_expect want[] = {
        {0, 1},                              /* 001 REGISTER */
        {0, 1},                              /* 002 FLUSH */
        {0, 1},                              /* 003 X_SPDFLUSH */
        {0, 1},                              /* 004 ADD tunnel, lifetimes */
        {IPSECIF_PFKEY_EINVAL, 1},           /* 005 ADD aes-ctr */
        {0, 1},                              /* 006 ADD ah */
        {0, 1},                              /* 007 ADD esp-udp */
        {0, 1},                              /* 008 ADD null */
        {IPSECIF_PFKEY_EOPNOTSUPP_LINUX, 1}, /* 009 ADD ipcomp */
        {0, 1},                              /* 010 GET ah */
        {0, 1},                              /* 011 GETSPI */
        {0, 1},                              /* 012 DELETE ah */
        {0, 4},                              /* 013 DUMP esp */
        {0, 1},                              /* 014 X_SPDADD out */
        {0, 1},                              /* 015 X_SPDADD in */
        {0, 1},                              /* 016 X_SPDADD fwd copy */
        {IPSECIF_PFKEY_EEXIST, 1},           /* 017 X_SPDADD fwd */
        {0, 1},                              /* 018 tcp AH+ESP */
        {0, 1},                              /* 019 icmp6 prio high */
        {0, 1},                              /* 020 none */
        {0, 1},                              /* 021 discard in */
        {0, 1},                              /* 022 discard fwd copy */
        {0, 1},                              /* 023 NAT-T */
        {0, 1},                              /* 024 X_SPDUPDATE */
        {0, 1},                              /* 025 X_SPDDELETE fwd */
        {0, 4},                              /* 026 DUMP */
        {0, 8},                              /* 027 X_SPDDUMP */
        {0, 1},                              /* 028 FLUSH */
        {0, 1},                              /* 029 X_SPDFLUSH */
        {IPSECIF_PFKEY_ENOENT, 1},           /* 030 DUMP */
    };
    const struct pfkey_capture *c = captures_extra;
    struct ipsecif_addr d1 = test_addr("198.51.100.2");
    struct ipsecif_addr d9 = test_addr("198.51.100.9");
    struct ipsecif_addr d2 = test_addr("192.0.2.2");
    struct ipsecif_sa_info info;
    struct ipsecif_selector sel;
    struct ipsecif_policy pol;
    struct ipsecif_sp *sp;
    const struct rec_msg *r;
    unsigned i, n;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_int_equal(IPSECIF_ARRAY_SIZE(captures_extra), IPSECIF_ARRAY_SIZE(want));
    for (i = 0; i < IPSECIF_ARRAY_SIZE(want); i++) {
        size_t sas = ipsecif_sa_count(f.t.ctx);
        size_t sps = ipsecif_spd_count(f.t.ctx);

        send_capture(&f, &c[i]);
        assert_int_equal(rec_count(f.ep), want[i].nreply);
        r = rec_get(f.ep, 0);
        assert_int_equal(r->b[1], c[i].msg[1]);
        assert_int_equal(r->b[2], want[i].err);
        if (want[i].err != 0) {
            /* Refused: header only, nothing changed. */
            assert_int_equal(r->len, 16);
            assert_int_equal(ipsecif_sa_count(f.t.ctx), sas);
            assert_int_equal(ipsecif_spd_count(f.t.ctx), sps);
        } else if (want[i].nreply > 1) {
            check_dump(f.ep, c[i].msg[1], want[i].nreply);
        } else {
            assert_int_equal(g32(r->b + 8), g32(c[i].msg + 8));
        }
        switch (i + 1) {
        case 4:
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &d1, 0x2001, &info),
                             IPSECIF_OK);
            assert_int_equal(info.params.mode, IPSECIF_MODE_TUNNEL);
            assert_int_equal(info.params.reqid, 2001);
            assert_int_equal(info.params.replay_window, 64);
            assert_int_equal(info.params.hard.addtime, 3600);
            assert_int_equal(info.params.soft.addtime, 3000);
            assert_int_equal(info.params.hard.bytes, 1000000);
            assert_int_equal(info.params.soft.bytes, 900000);
            assert_int_equal(info.params.ekey_len, 32);
            assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA2_512_256);
            /* The reply carries what was stored. */
            assert_int_equal(g64(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_HARD, NULL) + 16), 3600);
            assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[8], 64);
            assert_int_equal(find_ext(r, IPSECIF_SADB_X_EXT_SA2, NULL)[4], IPSECIF_MODE_TUNNEL);
            break;
        case 6:
        case 10:
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_AH, NULL, &d2, 0x4001, &info),
                             IPSECIF_OK);
            assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA1_96);
            assert_int_equal(info.params.ealg, IPSECIF_EALG_NONE);
            assert_int_equal(r->b[3], IPSECIF_SADB_SATYPE_AH);
            assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[10],
                             IPSECIF_SADB_AALG_SHA1HMAC);
            assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[11], IPSECIF_SADB_EALG_NONE);
            break;
        case 12:
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_AH, NULL, &d2, 0x4001, &info),
                             IPSECIF_ERR_NOENT);
            break;
        case 7:
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &d9, 0x5001, &info),
                             IPSECIF_OK);
            assert_int_equal(info.params.natt_sport, 4500);
            assert_int_equal(info.params.natt_dport, 4500);
            assert_non_null(find_ext(r, IPSECIF_SADB_X_EXT_NAT_T_TYPE, NULL));
            break;
        case 8:
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &d2, 0x5002, &info),
                             IPSECIF_OK);
            assert_int_equal(info.params.ealg, IPSECIF_EALG_NULL);
            break;
        case 11:
            assert_int_equal(be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4), 0x7000);
            assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[9], IPSECIF_SA_LARVAL);
            assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &d2, 0x7000, &info),
                             IPSECIF_OK);
            assert_int_equal(info.state, IPSECIF_SA_LARVAL);
            break;
        case 18:
            assert_int_equal(
                ipsecif_spd_get(
                    f.t.ctx, lib_id(LINUX, g32(find_ext(r, IPSECIF_SADB_X_EXT_POLICY, NULL) + 8)),
                    &pol),
                IPSECIF_OK);
            assert_int_equal(pol.nreq, 2);
            assert_int_equal(pol.req[0].proto, IPSECIF_IPPROTO_AH);
            assert_int_equal(pol.req[1].proto, IPSECIF_IPPROTO_ESP);
            assert_int_equal(pol.sel.ulproto, IPSECIF_IPPROTO_TCP);
            assert_int_equal(pol.sel.dport, 80);
            break;
        case 24:
            memset(&sel, 0, sizeof(sel));
            sel.src = test_addr("10.0.1.0");
            sel.dst = test_addr("10.0.2.0");
            sel.src_plen = 24;
            sel.dst_plen = 24;
            sel.ulproto = IPSECIF_IPPROTO_ANY;
            sp = ipsecif_spd_find_exact(f.t.ctx, &sel, IPSECIF_DIR_OUT);
            assert_non_null(sp);
            assert_int_equal(sp->pol.req[0].level, IPSECIF_LEVEL_UNIQUE);
            assert_int_equal(sp->pol.req[0].reqid, 2001);
            assert_int_equal(sp->pol.req[0].mode, IPSECIF_MODE_TUNNEL);
            break;
        case 25:
            assert_int_equal(ipsecif_spd_count(f.t.ctx), 8);
            n = 0;
            (void)ipsecif_spd_walk(f.t.ctx, count_prio, &n);
            assert_int_equal(n, 1);
            break;
        default:
            break;
        }
    }
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 0);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    fx_down(&f);
}

/* ---- Round trips of SA messages in both dialects ---- */

static void sa_round_trip(uint8_t d)
{
    struct ipsecif_addr dst = test_addr("2001:db8::2");
    struct ipsecif_sa_info info;
    const struct rec_msg *r;
    const uint8_t *x;
    struct mb m;
    size_t len, elen;
    uint32_t spi;
    struct fx f;

    fx_up(&f, d);
    /* ADD over IPv6 with lifetimes. */
    mb_init(&m, d, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_ESP, 9);
    mb_sa(&m, 0x4242, 8, IPSECIF_SADB_AALG_NONE, IPSECIF_SADB_X_EALG_AESGCM16);
    mb_sa2(&m, IPSECIF_MODE_TUNNEL, 0x1234);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "2001:db8::1", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "2001:db8::2", 0, -1, 255);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_ENCRYPT, 20, 0x33);
    mb_lifetime(&m, IPSECIF_SADB_EXT_LIFETIME_HARD, 5000, 60);
    mb_lifetime(&m, IPSECIF_SADB_EXT_LIFETIME_SOFT, 4000, 50);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_ADD, 0);
    assert_int_equal(g32(r->b + 8), 9);
    x = find_ext(r, IPSECIF_SADB_EXT_SA, NULL);
    assert_int_equal(be32(x + 4), 0x4242);
    /* KAME counts the window in bitmap bytes, Linux in packets (the SADB
     * rounds windows up to 32). */
    assert_int_equal(x[8], d == LINUX ? 32 : 8);
    assert_int_equal(x[9], IPSECIF_SA_MATURE);
    assert_int_equal(x[10], IPSECIF_SADB_AALG_NONE);
    assert_int_equal(x[11], IPSECIF_SADB_X_EALG_AESGCM16);
    x = find_ext(r, IPSECIF_SADB_X_EXT_SA2, NULL);
    assert_int_equal(x[4], IPSECIF_MODE_TUNNEL);
    assert_int_equal(g32(x + 12), 0x1234);
    x = find_ext(r, IPSECIF_SADB_EXT_ADDRESS_DST, &elen);
    assert_int_equal(elen, 40);
    assert_int_equal(x[5], 128);
    if (d == LINUX) {
        assert_int_equal(g16(x + 8), 10);
    } else {
        assert_int_equal(x[8], 28);
        assert_int_equal(x[9], 24);
    }
    assert_memory_equal(x + 16, dst.bytes, 16);
    assert_int_equal(g64(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_SOFT, NULL) + 8), 4000);
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL));
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x4242, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.replay_window, d == LINUX ? 32 : 64);
    assert_int_equal(info.params.hard.addtime, 60);
    assert_int_equal(info.params.ekey_len, 20);

    /* GET returns the same SA (sender only). */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_GET, IPSECIF_SADB_SATYPE_ESP, 10);
    mb_sa(&m, 0x4242, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "2001:db8::1", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "2001:db8::2", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4), 0x4242);
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_CURRENT, NULL));
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_HARD, NULL));

    /* GETSPI in a range, then UPDATE matures the larval SA. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_GETSPI, IPSECIF_SADB_SATYPE_ESP, 11);
    {
        uint8_t *p = mb_ext(&m, IPSECIF_SADB_EXT_SPIRANGE, 16);

        put32(p + 4, 0x10000);
        put32(p + 8, 0x1ffff);
    }
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_GETSPI, 0);
    spi = be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4);
    assert_true(spi >= 0x10000 && spi <= 0x1ffff);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[9], IPSECIF_SA_LARVAL);
    rec_clear();
    len = mb_add_sa(&m, d, IPSECIF_SADB_UPDATE, spi, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_UPDATE, 0);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[9], IPSECIF_SA_MATURE);
    /* UPDATE of an SA that does not exist. */
    rec_clear();
    len = mb_add_sa(&m, d, IPSECIF_SADB_UPDATE, 0x999, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_UPDATE, IPSECIF_PFKEY_ESRCH);

    /* DELETE with an SA extension, then again: ESRCH. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DELETE, IPSECIF_SADB_SATYPE_ESP, 12);
    mb_sa(&m, spi, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_DELETE, 0);
    assert_int_equal(be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4), spi);
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 1);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_DELETE, IPSECIF_PFKEY_ESRCH);

    /* DELETE without SA: every SA between the two addresses. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DELETE, IPSECIF_SADB_SATYPE_ESP, 13);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "2001:db8::1", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "2001:db8::2", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_DELETE, 0);
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 0);

    /* FLUSH and an empty DUMP. */
    len = mb_add_sa(&m, d, IPSECIF_SADB_ADD, 0x500, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, len, 2000);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_FLUSH, IPSECIF_SADB_SATYPE_ESP, 14);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_FLUSH, 0);
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 0);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DUMP, IPSECIF_SADB_SATYPE_UNSPEC, 15);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_DUMP, IPSECIF_PFKEY_ENOENT);
    fx_down(&f);
}

static void test_sa_round_trip_linux(void **state)
{
    (void)state;
    sa_round_trip(LINUX);
}

static void test_sa_round_trip_kame(void **state)
{
    (void)state;
    sa_round_trip(KAME);
}

static void test_kame_sa_replay_ext(void **state)
{
    struct ipsecif_addr dst = test_addr("192.0.2.1");
    struct ipsecif_sa_info info;
    const struct rec_msg *r;
    const uint8_t *x;
    struct mb m;
    struct fx f;
    uint8_t *p;
    size_t len;

    (void)state;
    fx_up(&f, KAME);
    len = mb_add_sa(&m, KAME, IPSECIF_SADB_ADD, 0x600, "192.0.2.9", "192.0.2.1");
    p = mb_ext(&m, IPSECIF_SADB_X_EXT_SA_REPLAY, 8);
    put32(p + 4, 4096);
    len = mb_done(&m);
    f.t.ctx->cfg.replay_window_max = 4096;
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_ADD, 0);
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x600, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.replay_window, 4096);
    /* Too large for the one-byte field: the extension says it. */
    x = find_ext(r, IPSECIF_SADB_X_EXT_SA_REPLAY, NULL);
    assert_non_null(x);
    assert_int_equal(g32(x + 4), 4096);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[8], 255);
    fx_down(&f);
}

/* ---- Round trips of SPD messages ---- */

static void spd_round_trip(uint8_t d)
{
    static const struct wreq rq[2] = {
        {IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL},
        {IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_UNIQUE, 300, "198.51.100.1",
         "198.51.100.2"},
    };
    struct ipsecif_policy pol;
    const struct rec_msg *r;
    const uint8_t *x;
    struct mb m;
    size_t len, elen, h = d == LINUX ? 16 : 8;
    uint32_t id;
    struct fx f;

    fx_up(&f, d);
    mb_init(&m, d, IPSECIF_SADB_X_SPDADD, 0, 21);
    mb_policy(&m, 2, IPSECIF_DIR_OUT, 0, 1000, rq, 2);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.1.0.0", 0, 16, IPSECIF_IPPROTO_TCP);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.2.0.0", 80, 16, IPSECIF_IPPROTO_TCP);
    len = mb_done(&m);
    assert_int_equal(ipsecif_sysctl_get(f.t.ctx, IPSECIF_SYSCTL_USED), 0);
    sendm(&f, f.ep, m.b, len, 3000);
    r = only_reply(f.ep, IPSECIF_SADB_X_SPDADD, 0);
    /* A policy over PF_KEY makes IPsec used (net.inet.ipsec.used). */
    assert_int_equal(ipsecif_sysctl_get(f.t.ctx, IPSECIF_SYSCTL_USED), 1);
    x = find_ext(r, IPSECIF_SADB_X_EXT_POLICY, &elen);
    id = g32(x + 8);
    assert_true(id != 0);
    assert_int_equal(g16(x + 4), 2);
    assert_int_equal(x[6], IPSECIF_DIR_OUT);
    assert_int_equal(g32(x + 12), d == LINUX ? 1000 : 0);
    /* Two requests: one bare, one with its tunnel endpoints. */
    assert_int_equal(elen, 16 + h + ((h + 32 + 7) & ~(size_t)7));
    assert_int_equal(g16(x + 16), h);
    assert_int_equal(g16(x + 18), IPSECIF_IPPROTO_AH);
    assert_int_equal(g16(x + 16 + h + 2), IPSECIF_IPPROTO_ESP);
    assert_int_equal(x[16 + h + 4], IPSECIF_MODE_TUNNEL);
    assert_int_equal(x[16 + h + 5], IPSECIF_LEVEL_UNIQUE);
    assert_int_equal(d == LINUX ? g32(x + 16 + h + 8) : g16(x + 16 + h + 6), 300);
    x = find_ext(r, IPSECIF_SADB_EXT_ADDRESS_DST, NULL);
    assert_int_equal(x[4], IPSECIF_IPPROTO_TCP);
    assert_int_equal(x[5], 16);
    assert_int_equal((x[10] << 8) | x[11], 80);
    if (d == LINUX) {
        assert_int_equal(id & 7u, 1u);
    }
    assert_int_equal(ipsecif_spd_get(f.t.ctx, lib_id(d, id), &pol), IPSECIF_OK);
    assert_int_equal(wire_id(d, pol.id, pol.dir), id);
    assert_int_equal(pol.priority, d == LINUX ? 1000 : IPSECIF_PRIORITY_DEFAULT);
    assert_int_equal(pol.nreq, 2);
    assert_int_equal(pol.sel.dport, 80);
    assert_true(ipsecif_addr_eq(&pol.req[1].tun_dst, &(struct ipsecif_addr){0}) == false);

    /* The same again: EEXIST; X_SPDUPDATE replaces it. */
    rec_clear();
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EEXIST);
    rec_clear();
    m.b[1] = IPSECIF_SADB_X_SPDUPDATE;
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDUPDATE, 0);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 1);

    /* X_SPDGET by id. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_X_SPDGET, 0, 22);
    mb_policy(&m, 0, 0, id, 0, NULL, 0);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 3000);
    r = only_reply(f.ep, IPSECIF_SADB_X_SPDGET, 0);
    assert_int_equal(g32(find_ext(r, IPSECIF_SADB_X_EXT_POLICY, NULL) + 8), id);
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_ADDRESS_SRC, NULL));
    if (d == LINUX) {
        /* The right index with the wrong direction names nothing; a
         * per-socket id (direction 3 or 4) is refused as Linux does. */
        static const uint32_t bad[] = {0u, 2u, 3u, 4u, 7u};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            mb_init(&m, d, IPSECIF_SADB_X_SPDGET, 0, 22);
            mb_policy(&m, 0, 0, (id & ~7u) | bad[i], 0, NULL, 0);
            len = mb_done(&m);
            rec_clear();
            sendm(&f, f.ep, m.b, len, 3000);
            only_reply(f.ep, IPSECIF_SADB_X_SPDGET,
                       bad[i] >= 3 ? IPSECIF_PFKEY_EINVAL : IPSECIF_PFKEY_ENOENT);
        }
        mb_init(&m, d, IPSECIF_SADB_X_SPDGET, 0, 22);
        mb_policy(&m, 0, 0, id, 0, NULL, 0);
        len = mb_done(&m);
    }

    /* X_SPDDELETE2 by id, then X_SPDGET: ENOENT. */
    rec_clear();
    m.b[1] = IPSECIF_SADB_X_SPDDELETE2;
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDDELETE2, 0);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    rec_clear();
    m.b[1] = IPSECIF_SADB_X_SPDGET;
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDGET, IPSECIF_PFKEY_ENOENT);

    /* X_SPDADD of an ICMPv6 discard, X_SPDDELETE by selector. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_X_SPDADD, 0, 23);
    mb_policy(&m, 0, IPSECIF_DIR_IN, 0, 0, NULL, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "2001:db8::", 0, 32, IPSECIF_IPPROTO_ICMPV6);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "2001:db8::", 0, 32, IPSECIF_IPPROTO_ICMPV6);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 3000);
    r = only_reply(f.ep, IPSECIF_SADB_X_SPDADD, 0);
    assert_int_equal(
        ipsecif_spd_get(f.t.ctx, lib_id(d, g32(find_ext(r, IPSECIF_SADB_X_EXT_POLICY, NULL) + 8)),
                        &pol),
        IPSECIF_OK);
    assert_int_equal(pol.sel.sport, IPSECIF_ICMP_ANY);
    assert_int_equal(pol.action, IPSECIF_ACTION_DISCARD);
    rec_clear();
    m.b[1] = IPSECIF_SADB_X_SPDDELETE;
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDDELETE, 0);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDDELETE, IPSECIF_PFKEY_ENOENT);

    /* Empty X_SPDDUMP; X_SPDFLUSH. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_X_SPDDUMP, 0, 24);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDDUMP, IPSECIF_PFKEY_ENOENT);
    rec_clear();
    m.b[1] = IPSECIF_SADB_X_SPDFLUSH;
    sendm(&f, f.ep, m.b, len, 3000);
    only_reply(f.ep, IPSECIF_SADB_X_SPDFLUSH, 0);
    fx_down(&f);
}

static void test_spd_round_trip_linux(void **state)
{
    (void)state;
    spd_round_trip(LINUX);
}

static void test_spd_round_trip_kame(void **state)
{
    (void)state;
    spd_round_trip(KAME);
}

/* ---- Malformed messages ---- */

enum mut {
    M_NONE,
    M_VERSION,      /* version 1 */
    M_MSGLEN_BIG,   /* sadb_msg_len one unit too many */
    M_MSGLEN_SMALL, /* one unit too few */
    M_TRUNC,        /* datagram cut inside the last extension */
    M_EXTLEN_ZERO,  /* an extension of length 0 */
    M_EXTLEN_OVER,  /* an extension past the end */
    M_DUP,          /* SA extension twice */
    M_UNKNOWN,      /* extension type 99 */
    M_LINUX_ONLY,   /* type 26 on Linux (X_FILTER there) */
    M_NO_SA,        /* ADD without SA */
    M_NO_DST,       /* ADD without destination */
    M_KEYLEN,       /* 15-byte AES key */
    M_KEYBITS,      /* key bits not a multiple of 8 */
    M_NO_AKEY,      /* HMAC without its key */
    M_SOCKADDR,     /* family 7 */
    M_SALEN,        /* KAME sa_len wrong */
    M_SATYPE,       /* satype 4 */
    M_TYPE,         /* type 0 */
    M_TYPE_BIG,     /* type 30 */
    M_ERRNO,        /* errno set on an ADD */
    M_EXPIRE,       /* EXPIRE from key management */
    M_MIXED_AF,     /* IPv4 source, IPv6 destination */
    M_BAD_EALG,     /* encryption algorithm 13 (AES-CTR) */
    M_PLEN,         /* prefix length 33 */
};

struct bad_case {
    const char *name;
    enum mut mut;
    uint8_t dialect;
    uint8_t err;
};

static size_t bad_msg(const struct bad_case *bc, struct mb *m)
{
    uint8_t d = bc->dialect;
    const char *dst = bc->mut == M_MIXED_AF ? "2001:db8::1" : "192.0.2.1";
    size_t len;

    mb_init(m, d, IPSECIF_SADB_ADD, bc->mut == M_SATYPE ? 4 : IPSECIF_SADB_SATYPE_ESP, 5);
    if (bc->mut != M_NO_SA) {
        mb_sa(m, 0x700, 4,
              bc->mut == M_BAD_EALG ? IPSECIF_SADB_AALG_NONE : IPSECIF_SADB_X_AALG_SHA2_256,
              bc->mut == M_BAD_EALG ? 13 : IPSECIF_SADB_X_EALG_AESCBC);
    }
    if (bc->mut == M_DUP) {
        mb_sa(m, 0x701, 4, IPSECIF_SADB_X_AALG_SHA2_256, IPSECIF_SADB_X_EALG_AESCBC);
    }
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, bc->mut == M_PLEN ? 33 : -1, 255);
    if (bc->mut != M_NO_DST) {
        mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_DST, dst, 0, -1, 255);
    }
    if (bc->mut == M_SOCKADDR) {
        uint8_t *p = m->b + m->len - 16;

        if (d == LINUX) {
            put16(p, 7);
        } else {
            p[1] = 7;
        }
    }
    if (bc->mut == M_SALEN) {
        m->b[m->len - 16] = 15;
    }
    if (bc->mut == M_KEYBITS) {
        uint8_t *p = mb_ext(m, IPSECIF_SADB_EXT_KEY_ENCRYPT, 8 + 16);

        put16(p + 4, 127);
    } else {
        mb_key(m, IPSECIF_SADB_EXT_KEY_ENCRYPT, bc->mut == M_KEYLEN ? 15 : 16, 0x11);
    }
    if (bc->mut != M_NO_AKEY && bc->mut != M_BAD_EALG) {
        mb_key(m, IPSECIF_SADB_EXT_KEY_AUTH, 32, 0x22);
    }
    if (bc->mut == M_UNKNOWN) {
        mb_ext(m, 99, 8);
    }
    if (bc->mut == M_LINUX_ONLY) {
        mb_ext(m, 26, 8);
    }
    if (bc->mut == M_EXTLEN_ZERO) {
        uint8_t *p = mb_ext(m, IPSECIF_SADB_X_EXT_KMPRIVATE, 8);

        put16(p, 0);
    }
    len = mb_done(m);
    switch (bc->mut) {
    case M_VERSION:
        m->b[0] = 1;
        break;
    case M_MSGLEN_BIG:
        put16(m->b + 4, (uint16_t)(len / 8 + 1));
        break;
    case M_MSGLEN_SMALL:
        put16(m->b + 4, (uint16_t)(len / 8 - 1));
        break;
    case M_TRUNC:
        len -= 8;
        put16(m->b + 4, (uint16_t)(len / 8));
        break;
    case M_EXTLEN_OVER:
        put16(m->b + 16, 200);
        break;
    case M_TYPE:
        m->b[1] = 0;
        break;
    case M_TYPE_BIG:
        m->b[1] = 30;
        break;
    case M_ERRNO:
        m->b[2] = 5;
        break;
    case M_EXPIRE:
        m->b[1] = IPSECIF_SADB_EXPIRE;
        break;
    default:
        break;
    }
    return len;
}

static void test_malformed(void **state)
{
    static const struct bad_case cases[] = {
        {"valid", M_NONE, LINUX, 0},
        {"valid kame", M_NONE, KAME, 0},
        {"version", M_VERSION, LINUX, IPSECIF_PFKEY_EINVAL},
        {"msg len too big", M_MSGLEN_BIG, LINUX, IPSECIF_PFKEY_EINVAL},
        {"msg len too small", M_MSGLEN_SMALL, KAME, IPSECIF_PFKEY_EINVAL},
        {"truncated ext", M_TRUNC, LINUX, IPSECIF_PFKEY_EINVAL},
        {"ext len 0", M_EXTLEN_ZERO, LINUX, IPSECIF_PFKEY_EINVAL},
        {"ext past end", M_EXTLEN_OVER, KAME, IPSECIF_PFKEY_EINVAL},
        {"duplicate ext", M_DUP, LINUX, IPSECIF_PFKEY_EINVAL},
        {"unknown ext", M_UNKNOWN, KAME, IPSECIF_PFKEY_EINVAL},
        {"kame-only ext on linux", M_LINUX_ONLY, LINUX, IPSECIF_PFKEY_EINVAL},
        {"missing SA", M_NO_SA, LINUX, IPSECIF_PFKEY_EINVAL},
        {"missing dst", M_NO_DST, KAME, IPSECIF_PFKEY_EINVAL},
        {"wrong key length", M_KEYLEN, LINUX, IPSECIF_PFKEY_EINVAL},
        {"key bits", M_KEYBITS, KAME, IPSECIF_PFKEY_EINVAL},
        {"missing auth key", M_NO_AKEY, LINUX, IPSECIF_PFKEY_EINVAL},
        {"bad family", M_SOCKADDR, LINUX, IPSECIF_PFKEY_EINVAL},
        {"bad family kame", M_SOCKADDR, KAME, IPSECIF_PFKEY_EINVAL},
        {"bad sa_len", M_SALEN, KAME, IPSECIF_PFKEY_EINVAL},
        {"unknown satype", M_SATYPE, LINUX, IPSECIF_PFKEY_EINVAL},
        {"type 0", M_TYPE, LINUX, IPSECIF_PFKEY_EINVAL},
        {"type 30", M_TYPE_BIG, KAME, IPSECIF_PFKEY_EINVAL},
        {"errno set", M_ERRNO, LINUX, IPSECIF_PFKEY_EINVAL},
        {"EXPIRE from KM", M_EXPIRE, LINUX, IPSECIF_PFKEY_EINVAL},
        {"mixed families", M_MIXED_AF, KAME, IPSECIF_PFKEY_EINVAL},
        {"unknown algorithm", M_BAD_EALG, LINUX, IPSECIF_PFKEY_EINVAL},
        {"prefix length", M_PLEN, LINUX, IPSECIF_PFKEY_EINVAL},
    };
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        const struct rec_msg *r;
        struct mb m;
        size_t len;
        struct fx f;

        fx_up(&f, cases[i].dialect);
        len = bad_msg(&cases[i], &m);
        sendm(&f, f.ep, m.b, len, 2000);
        if (rec_count(f.ep) != 1 || rec_get(f.ep, 0)->b[2] != cases[i].err) {
            fail_msg("case %s: %u replies, errno %u", cases[i].name, rec_count(f.ep),
                     rec_count(f.ep) ? rec_get(f.ep, 0)->b[2] : 0);
        }
        r = rec_get(f.ep, 0);
        assert_int_equal(g32(r->b + 8), 5);
        assert_int_equal(ipsecif_sa_count(f.t.ctx), cases[i].err == 0 ? 1 : 0);
        if (cases[i].err != 0) {
            assert_int_equal(r->len, 16);
        }
        fx_down(&f);
    }
}

/* Malformed SPD messages. */
static void test_malformed_spd(void **state)
{
    static const struct wreq bad_level = {
        IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, 9, 0, NULL, NULL};
    static const struct wreq tun_noaddr = {
        IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL};
    struct mb m;
    size_t len;
    struct fx f;

    (void)state;
    fx_up(&f, KAME);
    /* fwd is Linux only. */
    mb_init(&m, KAME, IPSECIF_SADB_X_SPDADD, 0, 1);
    mb_policy(&m, 0, IPSECIF_DIR_FWD, 0, 0, NULL, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.0.0.0", 0, 8, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.0.0.0", 0, 8, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EINVAL);
    /* A bad level, a tunnel without endpoints, no policy extension. */
    rec_clear();
    mb_init(&m, KAME, IPSECIF_SADB_X_SPDADD, 0, 1);
    mb_policy(&m, 2, IPSECIF_DIR_OUT, 0, 0, &bad_level, 1);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.0.0.0", 0, 8, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.0.0.0", 0, 8, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EINVAL);
    rec_clear();
    mb_init(&m, KAME, IPSECIF_SADB_X_SPDADD, 0, 1);
    mb_policy(&m, 2, IPSECIF_DIR_OUT, 0, 0, &tun_noaddr, 1);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.0.0.0", 0, 8, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.0.0.0", 0, 8, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EINVAL);
    rec_clear();
    /* A request length that overruns the policy extension. */
    put16(m.b + 16 + 16, 64);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EINVAL);
    rec_clear();
    mb_init(&m, KAME, IPSECIF_SADB_X_SPDADD, 0, 1);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.0.0.0", 0, 8, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.0.0.0", 0, 8, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDADD, IPSECIF_PFKEY_EINVAL);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    /* Refused policies leave IPsec unused. */
    assert_int_equal(ipsecif_sysctl_get(f.t.ctx, IPSECIF_SYSCTL_USED), 0);
    fx_down(&f);
}

/* Every prefix of a valid message, and every byte flipped: never a crash,
 * always exactly one reply (or none below a header). */
static void test_truncations(void **state)
{
    const struct pfkey_capture *c = &captures_extra[3];
    uint8_t buf[512];
    size_t n;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_true(c->len <= sizeof(buf));
    for (n = 0; n < c->len; n++) {
        rec_clear();
        memcpy(buf, c->msg, n);
        if (n < 16) {
            const struct rec_msg *r;

            /* Not even a header: a bare header with EMSGSIZE (Linux 90) answers,
             * with what there was of the request's type and sequence number. */
            assert_int_equal(ipsecif_pfkey_send(f.t.ctx, f.ep, n > 0 ? buf : NULL, n, 1),
                             IPSECIF_ERR_MALFORMED);
            r = only_reply(f.ep, n > 1 ? c->msg[1] : 0, IPSECIF_PFKEY_EMSGSIZE_LINUX);
            assert_int_equal(r->len, 16);
            assert_int_equal(g16(r->b + 4), 2);
            assert_int_equal(r->b[3], n > 3 ? c->msg[3] : 0);
            assert_int_equal(g32(r->b + 8), n >= 12 ? g32(c->msg + 8) : 0);
            continue;
        }
        sendm(&f, f.ep, buf, n, 1);
        assert_int_equal(rec_count(f.ep), 1);
        assert_int_equal(rec_get(f.ep, 0)->b[2], IPSECIF_PFKEY_EINVAL);
    }
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 0);
    for (n = 0; n < c->len; n++) {
        memcpy(buf, c->msg, c->len);
        buf[n] ^= 0xff;
        rec_clear();
        sendm(&f, f.ep, buf, c->len, 1);
        assert_int_equal(rec_count(f.ep), 1);
        (void)ipsecif_sa_flush(f.t.ctx, 0);
    }
    fx_down(&f);
}

/* ---- REGISTER ---- */

struct alg_want {
    uint8_t id;
    uint16_t minbits;
    uint16_t maxbits;
};

static void check_supported(const struct rec_msg *r, unsigned type, const struct alg_want *w,
                            size_t n)
{
    size_t elen, i, k;
    const uint8_t *x = find_ext(r, type, &elen);

    assert_non_null(x);
    assert_int_equal((elen - 8) / 8, n);
    for (i = 0; i < n; i++) {
        bool found = false;

        for (k = 8; k < elen; k += 8) {
            if (x[k] == w[i].id) {
                assert_int_equal(g16(x + k + 2), w[i].minbits);
                assert_int_equal(g16(x + k + 4), w[i].maxbits);
                found = true;
            }
        }
        assert_true(found);
    }
}

static void register_lists(uint8_t d)
{
    /* linux/pfkeyv2.h: SADB_AALG_SHA1HMAC 3, SADB_X_AALG_SHA2_256HMAC 5,
     * _384 6, _512 7; SADB_EALG_3DESCBC 3, SADB_EALG_NULL 11,
     * SADB_X_EALG_AESCBC 12, SADB_X_EALG_AES_GCM_ICV16 20,
     * SADB_X_EALG_NULL_AES_GMAC 23. NetBSD's net/pfkeyv2.h: the same numbers
     * as SADB_X_AALG_SHA2_256 ... and SADB_X_EALG_AES 12, _AESGCM16 20,
     * _AESGMAC 23. */
    static const struct alg_want auth[] = {
        {3, 160, 160}, {5, 256, 256}, {6, 384, 384}, {7, 512, 512}};
    static const struct alg_want enc[] = {
        {3, 192, 192}, {11, 0, 0}, {12, 128, 256}, {20, 160, 288}, {23, 160, 288}};
    const struct rec_msg *r;
    struct mb m;
    uint32_t ep2, ep3;
    size_t len;
    struct fx f;

    fx_up(&f, d);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &ep2), IPSECIF_OK);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &ep3), IPSECIF_OK);
    /* ep2 registers for ESP: it alone gets its reply. */
    mb_init(&m, d, IPSECIF_SADB_REGISTER, IPSECIF_SADB_SATYPE_ESP, 1);
    len = mb_done(&m);
    sendm(&f, ep2, m.b, len, 1);
    r = only_reply(ep2, IPSECIF_SADB_REGISTER, 0);
    assert_int_equal(r->b[3], IPSECIF_SADB_SATYPE_ESP);
    check_supported(r, IPSECIF_SADB_EXT_SUPPORTED_AUTH, auth, IPSECIF_ARRAY_SIZE(auth));
    check_supported(r, IPSECIF_SADB_EXT_SUPPORTED_ENCRYPT, enc, IPSECIF_ARRAY_SIZE(enc));
    assert_int_equal(rec_count(f.ep), 0);
    assert_int_equal(rec_count(ep3), 0);
    /* f.ep registers too: both registered endpoints get the reply. */
    rec_clear();
    sendm(&f, f.ep, m.b, len, 1);
    assert_int_equal(rec_count(f.ep), 1);
    assert_int_equal(rec_count(ep2), 1);
    assert_int_equal(rec_count(ep3), 0);
    /* UNSPEC (what setkey sends) registers nothing, still lists. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_REGISTER, IPSECIF_SADB_SATYPE_UNSPEC, 1);
    len = mb_done(&m);
    sendm(&f, ep3, m.b, len, 1);
    assert_int_equal(rec_count(ep3), 1);
    check_supported(rec_get(ep3, 0), IPSECIF_SADB_EXT_SUPPORTED_ENCRYPT, enc,
                    IPSECIF_ARRAY_SIZE(enc));
    assert_int_equal(f.t.ctx->pfkey.eps[ep3 - 1].registered, 0);
    assert_int_equal(f.t.ctx->pfkey.eps[ep2 - 1].registered, 1u << 3);
    /* AH: registered, offered the authentication algorithms only. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_REGISTER, IPSECIF_SADB_SATYPE_AH, 1);
    len = mb_done(&m);
    sendm(&f, ep3, m.b, len, 1);
    r = only_reply(ep3, IPSECIF_SADB_REGISTER, 0);
    assert_int_equal(ext_count(r), 1);
    {
        /* NetBSD's SADB_X_AALG_AES128GMAC .. AES256GMAC join the HMACs
         * (in the Linux dialect too, where those numbers are free). */
        static const struct alg_want ah_auth[] = {{3, 160, 160}, {5, 256, 256},  {6, 384, 384},
                                                  {7, 512, 512}, {11, 160, 160}, {12, 224, 224},
                                                  {13, 288, 288}};

        check_supported(r, IPSECIF_SADB_EXT_SUPPORTED_AUTH, ah_auth, IPSECIF_ARRAY_SIZE(ah_auth));
    }
    assert_int_equal(f.t.ctx->pfkey.eps[ep3 - 1].registered, 1u << IPSECIF_SADB_SATYPE_AH);
    fx_down(&f);
}

/* AH SAs over PF_KEY: GETSPI, UPDATE, ADD, GET (with the key), DUMP by
 * type, DELETE and FLUSH of AH only; ESP algorithms or keys are refused. */
static size_t mb_ah_sa(struct mb *m, uint8_t d, uint8_t type, uint32_t spi, uint8_t ealg)
{
    mb_init(m, d, type, IPSECIF_SADB_SATYPE_AH, 21);
    mb_sa(m, spi, 4, IPSECIF_SADB_X_AALG_SHA2_512, ealg);
    mb_sa2(m, IPSECIF_MODE_TRANSPORT, 5);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    mb_key(m, IPSECIF_SADB_EXT_KEY_AUTH, 64, 0x44);
    return mb_done(m);
}

static void ah_round_trip(uint8_t d)
{
    struct ipsecif_addr dst = test_addr("192.0.2.1");
    struct ipsecif_sa_info info;
    const struct rec_msg *r;
    const uint8_t *x;
    struct mb m;
    size_t len, elen;
    uint32_t spi;
    struct fx f;

    fx_up(&f, d);
    /* GETSPI, then UPDATE matures it. */
    mb_init(&m, d, IPSECIF_SADB_GETSPI, IPSECIF_SADB_SATYPE_AH, 20);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_GETSPI, 0);
    assert_int_equal(r->b[3], IPSECIF_SADB_SATYPE_AH);
    spi = be32(find_ext(r, IPSECIF_SADB_EXT_SA, NULL) + 4);
    rec_clear();
    len = mb_ah_sa(&m, d, IPSECIF_SADB_UPDATE, spi, IPSECIF_SADB_EALG_NONE);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_UPDATE, 0);
    x = find_ext(r, IPSECIF_SADB_EXT_SA, NULL);
    assert_int_equal(x[9], IPSECIF_SA_MATURE);
    assert_int_equal(x[10], IPSECIF_SADB_X_AALG_SHA2_512);
    assert_int_equal(x[11], IPSECIF_SADB_EALG_NONE);
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_AH, NULL, &dst, spi, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.aalg, IPSECIF_AALG_HMAC_SHA2_512_256);
    /* ADD of a second one; an ESP SA with the same SPI is another SA. */
    rec_clear();
    len = mb_ah_sa(&m, d, IPSECIF_SADB_ADD, 0x600, IPSECIF_SADB_EALG_NONE);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_ADD, 0);
    len = mb_add_sa(&m, d, IPSECIF_SADB_ADD, 0x600, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, len, 2000);
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 3);
    /* An encryption algorithm, or an encryption key, is not AH's. */
    rec_clear();
    len = mb_ah_sa(&m, d, IPSECIF_SADB_ADD, 0x601, IPSECIF_SADB_X_EALG_AESCBC);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_ADD, IPSECIF_PFKEY_EINVAL);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_AH, 22);
    mb_sa(&m, 0x602, 4, IPSECIF_SADB_AALG_SHA1HMAC, IPSECIF_SADB_EALG_NONE);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_AUTH, 20, 0x44);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_ENCRYPT, 16, 0x45);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_ADD, IPSECIF_PFKEY_EINVAL);
    /* GET carries the authentication key. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_GET, IPSECIF_SADB_SATYPE_AH, 23);
    mb_sa(&m, 0x600, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(r->b[3], IPSECIF_SADB_SATYPE_AH);
#if IPSECIF_SA_KEEP_KEYS
    x = find_ext(r, IPSECIF_SADB_EXT_KEY_AUTH, &elen);
    assert_non_null(x);
    assert_int_equal(elen, 8 + 64);
    assert_int_equal(x[8], 0x44);
#else
    (void)elen;
#endif
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL));
    /* DUMP of AH lists the two AH SAs only. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DUMP, IPSECIF_SADB_SATYPE_AH, 24);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    check_dump(f.ep, IPSECIF_SADB_DUMP, 2);
    assert_int_equal(rec_get(f.ep, 0)->b[3], IPSECIF_SADB_SATYPE_AH);
    /* DELETE one, FLUSH the other: the ESP SA stays. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DELETE, IPSECIF_SADB_SATYPE_AH, 25);
    mb_sa(&m, spi, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_DELETE, 0);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_FLUSH, IPSECIF_SADB_SATYPE_AH, 26);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_FLUSH, 0);
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 1);
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_ESP, NULL, &dst, 0x600, &info),
                     IPSECIF_OK);
    fx_down(&f);
}

/* AH with AES-GMAC named by NetBSD's authentication algorithm number per
 * key size, its key (with the salt) in KEY_AUTH; both dialects. */
static void ah_gmac(uint8_t d)
{
    struct ipsecif_addr dst = test_addr("192.0.2.1");
    struct ipsecif_sa_info info;
    const struct rec_msg *r;
    const uint8_t *x;
    struct mb m;
    size_t len, elen = 0;
    struct fx f;

    fx_up(&f, d);
    mb_init(&m, d, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_AH, 30);
    mb_sa(&m, 0x700, 4, IPSECIF_SADB_X_AALG_AES192GMAC, IPSECIF_SADB_EALG_NONE);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_AUTH, 28, 0x66);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_ADD, 0);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[10], IPSECIF_SADB_X_AALG_AES192GMAC);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[11], IPSECIF_SADB_EALG_NONE);
    assert_int_equal(ipsecif_sa_get(f.t.ctx, IPSECIF_IPPROTO_AH, NULL, &dst, 0x700, &info),
                     IPSECIF_OK);
    assert_int_equal(info.params.ealg, IPSECIF_EALG_AES_GMAC);
    assert_int_equal(info.params.aalg, IPSECIF_AALG_NONE);
    assert_int_equal(info.params.ekey_len, 28);
    /* GET gives the key back as KEY_AUTH. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_GET, IPSECIF_SADB_SATYPE_AH, 31);
    mb_sa(&m, 0x700, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[10], IPSECIF_SADB_X_AALG_AES192GMAC);
#if IPSECIF_SA_KEEP_KEYS
    x = find_ext(r, IPSECIF_SADB_EXT_KEY_AUTH, &elen);
    assert_non_null(x);
    assert_int_equal(g16(x + 4), 224);
#else
    (void)x;
    (void)elen;
#endif
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL));
    /* A key of another size than the number says. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_AH, 32);
    mb_sa(&m, 0x701, 4, IPSECIF_SADB_X_AALG_AES128GMAC, IPSECIF_SADB_EALG_NONE);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_AUTH, 28, 0x66);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 2000);
    only_reply(f.ep, IPSECIF_SADB_ADD, IPSECIF_PFKEY_EINVAL);
    fx_down(&f);
}

static void test_ah_linux(void **state)
{
    (void)state;
    ah_round_trip(LINUX);
    ah_gmac(LINUX);
}

static void test_ah_kame(void **state)
{
    (void)state;
    ah_round_trip(KAME);
    ah_gmac(KAME);
}

static void test_register_linux(void **state)
{
    (void)state;
    register_lists(LINUX);
}

static void test_register_kame(void **state)
{
    (void)state;
    register_lists(KAME);
}

/* ---- ACQUIRE and EXPIRE ---- */

static void register_esp(struct fx *f, uint32_t ep)
{
    struct mb m;
    size_t len;

    mb_init(&m, f->t.ctx->pfkey.eps[ep - 1].dialect, IPSECIF_SADB_REGISTER, IPSECIF_SADB_SATYPE_ESP,
            1);
    len = mb_done(&m);
    sendm(f, ep, m.b, len, 1);
}

static void acquire_case(uint8_t d)
{
    struct ipsecif_addr src = test_addr("198.51.100.1");
    struct ipsecif_addr dst = test_addr("198.51.100.2");
    struct ipsecif_if_info info;
    struct ipsecif_if *ifp;
    struct test_buf tb;
    const struct rec_msg *r;
    const uint8_t *x;
    uint32_t other;
    size_t elen;
    struct fx f;

    fx_up(&f, d);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &other), IPSECIF_OK);
    register_esp(&f, f.ep);
    assert_int_equal(ipsecif_if_create(f.t.ctx, "ipsec0", &ifp), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(f.t.ctx, ifp, &src, 0, &dst, 0, 1000), IPSECIF_OK);
    assert_int_equal(
        ipsecif_if_set_flags(f.t.ctx, ifp, ipsecif_if_get_flags(ifp) | IPSECIF_IFF_UP, 1000),
        IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(f.t.ctx, ifp, &info), IPSECIF_OK);
    rec_clear();
    test_build_ping(&tb, 128, "192.0.2.1", "203.0.113.1", 10, 0);
    assert_int_equal(ipsecif_if_output(f.t.ctx, ifp, &tb.b, 2000), IPSECIF_ERR_NOSA);
    /* The registered endpoint gets it; the other does not. */
    assert_int_equal(rec_count(other), 0);
    r = only_reply(f.ep, IPSECIF_SADB_ACQUIRE, 0);
    assert_int_equal(r->b[3], IPSECIF_SADB_SATYPE_ESP);
    assert_int_equal(g32(r->b + 8), 1);
    x = find_ext(r, IPSECIF_SADB_EXT_ADDRESS_SRC, NULL);
    assert_memory_equal(x + (d == LINUX ? 12 : 12), src.bytes, 4);
    x = find_ext(r, IPSECIF_SADB_EXT_ADDRESS_DST, NULL);
    assert_memory_equal(x + 12, dst.bytes, 4);
    x = find_ext(r, IPSECIF_SADB_X_EXT_POLICY, NULL);
    assert_int_equal(g32(x + 8), wire_id(d, info.policy_id[IPSECIF_IFPOL_V4_OUT], IPSECIF_DIR_OUT));
    assert_int_equal(x[6], IPSECIF_DIR_OUT);
    if (d == LINUX) {
        assert_int_equal(g32(x + 16 + 8), info.reqid[IPSECIF_IFPOL_V4_OUT]);
    } else {
        assert_int_equal(g16(x + 16 + 6), (uint16_t)info.reqid[IPSECIF_IFPOL_V4_OUT]);
    }
    x = find_ext(r, IPSECIF_SADB_EXT_PROPOSAL, &elen);
    assert_non_null(x);
    assert_int_equal((elen - 8) % 72, 0);
    assert_true(elen > 8);
    assert_int_equal(x[8 + 1], IPSECIF_SADB_X_EALG_AESGCM16);
    /* Every sadb_comb (RFC 2367 2.3.4) field at its offset. */
    for (size_t off = 8; off < elen; off += 72) {
        const uint8_t *c = x + off;

        assert_int_equal(g16(c + 2), 0);  /* flags */
        assert_int_equal(g32(c + 12), 0); /* reserved */
        assert_int_equal(g32(c + 16), 0); /* soft allocations */
        assert_int_equal(g32(c + 20), 0); /* hard allocations */
        assert_int_equal(g64(c + 24), 0); /* soft bytes */
        assert_int_equal(g64(c + 32), 0); /* hard bytes */
        assert_int_equal(g64(c + 40), 69120);
        assert_int_equal(g64(c + 48), 86400);
        assert_int_equal(g64(c + 56), 0); /* soft usetime */
        assert_int_equal(g64(c + 64), 0); /* hard usetime */
        assert_true(g16(c + 8) >= 64 && g16(c + 8) <= g16(c + 10));
        if (c[0] != IPSECIF_SADB_AALG_NONE) {
            assert_true(g16(c + 4) >= 128 && g16(c + 4) <= g16(c + 6));
        } else {
            assert_int_equal(g16(c + 4), 0);
            assert_int_equal(g16(c + 6), 0);
        }
    }
    /* The next one (after the rate limit) counts on. */
    rec_clear();
    test_build_ping(&tb, 128, "192.0.2.1", "203.0.113.1", 10, 0);
    assert_int_equal(ipsecif_if_output(f.t.ctx, ifp, &tb.b, 9000), IPSECIF_ERR_NOSA);
    r = only_reply(f.ep, IPSECIF_SADB_ACQUIRE, 0);
    assert_int_equal(g32(r->b + 8), 2);
    /* An ACQUIRE from key management with errno: negotiation failed, accepted. */
    rec_clear();
    {
        uint8_t a[16];

        memcpy(a, r->b, 16);
        put16(a + 4, 2);
        a[2] = 60;
        sendm(&f, f.ep, a, 16, 9000);
        only_reply(f.ep, IPSECIF_SADB_ACQUIRE, 60);
        rec_clear();
        a[2] = 0;
        sendm(&f, f.ep, a, 16, 9000);
        only_reply(f.ep, IPSECIF_SADB_ACQUIRE, IPSECIF_PFKEY_EINVAL);
    }
    /* The mock port still saw the km events too. */
    assert_int_equal(f.t.mock->n_events, 2);
    fx_down(&f);
}

static void test_acquire_linux(void **state)
{
    (void)state;
    acquire_case(LINUX);
}

static void test_acquire_kame(void **state)
{
    (void)state;
    acquire_case(KAME);
}

static void test_expire(void **state)
{
    const struct rec_msg *r;
    const uint8_t *x;
    uint32_t other;
    struct mb m;
    size_t len;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, KAME, &other), IPSECIF_OK);
    register_esp(&f, f.ep);
    register_esp(&f, other);
    mb_init(&m, LINUX, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_ESP, 31);
    mb_sa(&m, 0x800, 4, IPSECIF_SADB_X_AALG_SHA2_256, IPSECIF_SADB_X_EALG_AESCBC);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_ENCRYPT, 16, 0x11);
    mb_key(&m, IPSECIF_SADB_EXT_KEY_AUTH, 32, 0x22);
    mb_lifetime(&m, IPSECIF_SADB_EXT_LIFETIME_HARD, 0, 20);
    mb_lifetime(&m, IPSECIF_SADB_EXT_LIFETIME_SOFT, 0, 10);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1000);
    rec_clear();
    (void)ipsecif_timer(f.t.ctx, 10999);
    assert_int_equal(n_rec, 0);
    (void)ipsecif_timer(f.t.ctx, 11000);
    /* Soft: to both registered endpoints, each in its dialect. */
    r = only_reply(f.ep, IPSECIF_SADB_EXPIRE, 0);
    assert_int_equal(g32(r->b + 8), 31);
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_CURRENT, NULL));
    x = find_ext(r, IPSECIF_SADB_EXT_LIFETIME_SOFT, NULL);
    assert_non_null(x);
    assert_int_equal(g64(x + 16), 10);
    assert_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_HARD, NULL));
    assert_int_equal(find_ext(r, IPSECIF_SADB_EXT_SA, NULL)[9], IPSECIF_SA_DYING);
    r = only_reply(other, IPSECIF_SADB_EXPIRE, 0);
    x = find_ext(r, IPSECIF_SADB_EXT_ADDRESS_DST, NULL);
    assert_int_equal(x[8], 16); /* KAME sa_len */
    rec_clear();
    (void)ipsecif_timer(f.t.ctx, 21000);
    r = only_reply(f.ep, IPSECIF_SADB_EXPIRE, 0);
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_HARD, NULL));
    assert_null(find_ext(r, IPSECIF_SADB_EXT_LIFETIME_SOFT, NULL));
    assert_int_equal(ipsecif_sa_count(f.t.ctx), 0);
    fx_down(&f);
}

/* ---- Promiscuous endpoints ---- */

static void promisc_case(uint8_t d)
{
    const struct rec_msg *r;
    uint32_t p;
    struct mb m;
    size_t len, addlen;
    struct fx f;

    fx_up(&f, d);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &p), IPSECIF_OK);
    mb_init(&m, d, IPSECIF_SADB_X_PROMISC, 1, 1);
    len = mb_done(&m);
    sendm(&f, p, m.b, len, 1);
    /* Its reply goes to everyone. */
    assert_int_equal(rec_count(p), 1);
    assert_int_equal(rec_count(f.ep), 1);
    assert_true(f.t.ctx->pfkey.eps[p - 1].promisc);

    /* A GET from the other endpoint: the promiscuous one sees the request
     * and the reply. */
    addlen = mb_add_sa(&m, d, IPSECIF_SADB_ADD, 0x900, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, addlen, 1);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_GET, IPSECIF_SADB_SATYPE_ESP, 77);
    mb_sa(&m, 0x900, 0, 0, 0);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.9", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.1", 0, -1, 255);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    assert_int_equal(rec_count(f.ep), 1);
    assert_int_equal(rec_count(p), 2);
    r = rec_get(p, 0);
    if (d == LINUX) {
        /* A plain copy. */
        assert_int_equal(r->len, len);
        assert_memory_equal(r->b, m.b, len);
        r = rec_get(p, 1);
        assert_int_equal(r->len, rec_get(f.ep, 0)->len);
        assert_memory_equal(r->b, rec_get(f.ep, 0)->b, r->len);
    } else {
        /* Wrapped in an X_PROMISC header. */
        assert_int_equal(r->b[1], IPSECIF_SADB_X_PROMISC);
        assert_int_equal(r->len, 16 + len);
        assert_memory_equal(r->b + 16, m.b, len);
        r = rec_get(p, 1);
        assert_int_equal(r->b[1], IPSECIF_SADB_X_PROMISC);
        assert_memory_equal(r->b + 16, rec_get(f.ep, 0)->b, r->len - 16);
    }
    /* Off again: no more copies. */
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_X_PROMISC, 0, 1);
    len = mb_done(&m);
    sendm(&f, p, m.b, len, 1);
    rec_clear();
    mb_init(&m, d, IPSECIF_SADB_DUMP, 0, 1);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    assert_int_equal(rec_count(p), 0);
    /* A bad flag. */
    mb_init(&m, d, IPSECIF_SADB_X_PROMISC, 2, 1);
    len = mb_done(&m);
    rec_clear();
    sendm(&f, p, m.b, len, 1);
    only_reply(p, IPSECIF_SADB_X_PROMISC, IPSECIF_PFKEY_EINVAL);
    fx_down(&f);
}

static void test_promisc_linux(void **state)
{
    (void)state;
    promisc_case(LINUX);
}

static void test_promisc_kame(void **state)
{
    (void)state;
    promisc_case(KAME);
}

/* ---- Broadcast scope ---- */

static void test_broadcast_scope(void **state)
{
    uint32_t b;
    struct mb m;
    size_t len;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, LINUX, &b), IPSECIF_OK);
    /* ADD goes to all, GET only to its sender. */
    len = mb_add_sa(&m, LINUX, IPSECIF_SADB_ADD, 0x901, "192.0.2.9", "192.0.2.1");
    sendm(&f, f.ep, m.b, len, 1);
    assert_int_equal(rec_count(f.ep), 1);
    assert_int_equal(rec_count(b), 1);
    rec_clear();
    m.b[1] = IPSECIF_SADB_GET;
    sendm(&f, f.ep, m.b, len, 1);
    assert_int_equal(rec_count(f.ep), 1);
    assert_int_equal(rec_count(b), 0);
    /* An error goes only to the sender. */
    rec_clear();
    m.b[1] = IPSECIF_SADB_ADD;
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_ADD, IPSECIF_PFKEY_EEXIST);
    assert_int_equal(rec_count(b), 0);
    fx_down(&f);
}

/* ---- Interface-owned policies ---- */

static int find_owned(void *arg, const struct ipsecif_policy *pol)
{
    struct ipsecif_policy *out = arg;

    if (pol->owned) {
        *out = *pol;
        return 1;
    }
    return 0;
}

static void test_owned_policies(void **state)
{
    struct ipsecif_addr src = test_addr("198.51.100.1");
    struct ipsecif_addr dst = test_addr("198.51.100.2");
    struct ipsecif_if_info info;
    struct ipsecif_policy owned;
    struct ipsecif_if *ifp;
    unsigned i, k, matched = 0;
    struct mb m;
    size_t len;
    struct fx f;

    (void)state;
    fx_up(&f, LINUX);
    assert_int_equal(ipsecif_if_create(f.t.ctx, "ipsec0", &ifp), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(f.t.ctx, ifp, &src, 0, &dst, 0, 1000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(f.t.ctx, ifp, &info), IPSECIF_OK);
    /* X_SPDDUMP lists the four with their ids and unique ids. */
    mb_init(&m, LINUX, IPSECIF_SADB_X_SPDDUMP, 0, 1);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    check_dump(f.ep, IPSECIF_SADB_X_SPDDUMP, 4);
    for (i = 0; i < 4; i++) {
        const uint8_t *x = find_ext(rec_get(f.ep, i), IPSECIF_SADB_X_EXT_POLICY, NULL);

        /* Linux ids: index << 3 | direction, never a per-socket one. */
        assert_true((g32(x + 8) & 7u) < 2u);
        assert_int_equal(g32(x + 8) & 7u, x[6] == IPSECIF_DIR_IN ? 0u : 1u);
        for (k = 0; k < 4; k++) {
            if (lib_id(LINUX, g32(x + 8)) == info.policy_id[k]) {
                assert_int_equal(g32(x + 8),
                                 wire_id(LINUX, info.policy_id[k],
                                         k % 2 == 0 ? IPSECIF_DIR_OUT : IPSECIF_DIR_IN));
                assert_int_equal(g32(x + 16 + 8), info.reqid[k]);
                assert_int_equal(x[16 + 5], IPSECIF_LEVEL_UNIQUE);
                matched++;
            }
        }
    }
    assert_int_equal(matched, 4);
    assert_int_equal(ipsecif_spd_walk(f.t.ctx, find_owned, &owned), 1);

    /* X_SPDDELETE2 by id: EBUSY. */
    rec_clear();
    mb_init(&m, LINUX, IPSECIF_SADB_X_SPDDELETE2, 0, 2);
    mb_policy(&m, 0, 0, wire_id(LINUX, owned.id, owned.dir), 0, NULL, 0);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDDELETE2, IPSECIF_PFKEY_EBUSY);

    /* X_SPDDELETE and X_SPDADD / X_SPDUPDATE with its selector: EBUSY. */
    {
        static const uint8_t types[] = {IPSECIF_SADB_X_SPDDELETE, IPSECIF_SADB_X_SPDADD,
                                        IPSECIF_SADB_X_SPDUPDATE};
        char s[64], d[64];

        (void)snprintf(s, sizeof(s), "%u.%u.%u.%u", owned.sel.src.bytes[0], owned.sel.src.bytes[1],
                       owned.sel.src.bytes[2], owned.sel.src.bytes[3]);
        (void)snprintf(d, sizeof(d), "%u.%u.%u.%u", owned.sel.dst.bytes[0], owned.sel.dst.bytes[1],
                       owned.sel.dst.bytes[2], owned.sel.dst.bytes[3]);
        assert_int_equal(owned.sel.src.family, IPSECIF_AF_INET);
        for (i = 0; i < IPSECIF_ARRAY_SIZE(types); i++) {
            rec_clear();
            mb_init(&m, LINUX, types[i], 0, 3);
            mb_policy(&m, 0, owned.dir, 0, 0, NULL, 0);
            mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, s, 0, owned.sel.src_plen, owned.sel.ulproto);
            mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, d, 0, owned.sel.dst_plen, owned.sel.ulproto);
            len = mb_done(&m);
            sendm(&f, f.ep, m.b, len, 1);
            only_reply(f.ep, types[i], IPSECIF_PFKEY_EBUSY);
        }
    }
    /* X_SPDFLUSH leaves them. */
    rec_clear();
    mb_init(&m, LINUX, IPSECIF_SADB_X_SPDFLUSH, 0, 4);
    len = mb_done(&m);
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SPDFLUSH, 0);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 4);
    fx_down(&f);
}

/* ---- Endpoints and errors ---- */

static void test_endpoints(void **state)
{
    struct ipsecif_config cfg;
    struct test_ctx t;
    uint32_t ids[3];
    uint8_t hdr[16] = {2, IPSECIF_SADB_FLUSH, 0, 0, 2, 0};

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_pfkey_endpoints = 2;
    cfg.max_sas = 4;
    cfg.max_policies = 4;
    test_ctx_new(&t, &cfg);
    t.mock->port.pfkey_deliver = rec_deliver;
    assert_int_equal(ipsecif_pfkey_open(t.ctx, 0, &ids[0]), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_pfkey_open(t.ctx, KAME, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_pfkey_open(t.ctx, KAME, &ids[0]), IPSECIF_OK);
    assert_int_equal(ipsecif_pfkey_open(t.ctx, LINUX, &ids[1]), IPSECIF_OK);
    assert_int_not_equal(ids[0], ids[1]);
    assert_int_equal(ipsecif_pfkey_open(t.ctx, LINUX, &ids[2]), IPSECIF_ERR_FULL);
    assert_int_equal(ipsecif_pfkey_close(t.ctx, ids[0]), IPSECIF_OK);
    assert_int_equal(ipsecif_pfkey_close(t.ctx, ids[0]), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_pfkey_close(t.ctx, 0), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_pfkey_close(t.ctx, 99), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_pfkey_close(NULL, 1), IPSECIF_ERR_ARG);
    rec_clear();
    assert_int_equal(ipsecif_pfkey_send(t.ctx, ids[0], hdr, 16, 1), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_pfkey_send(t.ctx, ids[1], NULL, 16, 1), IPSECIF_ERR_ARG);
    assert_int_equal(n_rec, 0);
    assert_int_equal(ipsecif_pfkey_send(t.ctx, ids[1], hdr, 8, 1), IPSECIF_ERR_MALFORMED);
    assert_int_equal(n_rec, 1);
    assert_int_equal(ipsecif_pfkey_send(t.ctx, ids[1], hdr, 16, 1), IPSECIF_OK);
    assert_int_equal(n_rec, 2);
    /* Too long for the host: EMSGSIZE, in the endpoint's dialect. */
    assert_int_equal(ipsecif_pfkey_oversize(t.ctx, ids[1], hdr, 16), IPSECIF_OK);
    assert_int_equal(n_rec, 3);
    assert_int_equal(rec[2].b[1], IPSECIF_SADB_FLUSH);
    assert_int_equal(rec[2].b[2], IPSECIF_PFKEY_EMSGSIZE_LINUX);
    assert_int_equal(ipsecif_pfkey_oversize(t.ctx, ids[0], hdr, 16), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_pfkey_oversize(t.ctx, ids[1], NULL, 16), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_pfkey_stats_get(t.ctx)->in_short, 1);
    assert_int_equal(ipsecif_pfkey_stats_get(t.ctx)->in_long, 1);
    assert_int_equal(ipsecif_pfkey_stats_get(t.ctx)->in_msgs, 1);
    /* Reopened: a fresh endpoint. */
    assert_int_equal(ipsecif_pfkey_open(t.ctx, KAME, &ids[2]), IPSECIF_OK);
    assert_int_equal(t.ctx->pfkey.eps[ids[2] - 1].registered, 0);
    test_ctx_free(&t);

    /* Without endpoints configured. */
    cfg.max_pfkey_endpoints = 0;
    test_ctx_new(&t, &cfg);
    assert_int_equal(ipsecif_pfkey_open(t.ctx, KAME, &ids[0]), IPSECIF_ERR_FULL);
    test_ctx_free(&t);
}

/* ---- Keys in GET and DUMP, wall-clock times ---- */

struct key_case {
    uint8_t d;
    uint8_t ealg, aalg; /* wire numbers */
    size_t ekey_len;    /* salt included for GCM */
    size_t akey_len;
};

static void mb_key_bytes(struct mb *m, uint16_t type, const uint8_t *key, size_t bytes)
{
    uint8_t *p = mb_ext(m, type, 8 + bytes);

    put16(p + 4, (uint16_t)(bytes * 8));
    memcpy(p + 8, key, bytes);
}

static void mb_sa_id(struct mb *m, uint8_t d, uint8_t type, uint32_t spi)
{
    mb_init(m, d, type, IPSECIF_SADB_SATYPE_ESP, 9);
    mb_sa(m, spi, 0, 0, 0);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.1", 0, -1, 255);
    mb_addr(m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.2", 0, -1, 255);
}

/* A reply's key extension: whole 64-bit units, bits, bytes, zero padding. */
static void check_key(const struct rec_msg *r, unsigned type, const uint8_t *key, size_t len)
{
    size_t elen = 0;
    const uint8_t *e = find_ext(r, type, &elen);
    size_t i;

    if (len == 0) {
        assert_null(e);
        return;
    }
#if IPSECIF_SA_KEEP_KEYS
    assert_non_null(e);
    assert_int_equal(elen, (8 + len + 7) / 8 * 8);
    assert_int_equal(g16(e + 4), len * 8);
    assert_int_equal(g16(e + 6), 0);
    assert_memory_equal(e + 8, key, len);
    for (i = 8 + len; i < elen; i++) {
        assert_int_equal(e[i], 0);
    }
#else
    (void)key;
    (void)i;
    assert_null(e);
#endif
}

static bool ctx_holds(const struct fx *f, const uint8_t *needle, size_t m)
{
    const uint8_t *hay = f->t.mem + TEST_GUARD;
    size_t i;

    for (i = 0; i + m <= f->t.mem_len; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

static uint64_t cur_addtime(const struct rec_msg *r, uint64_t *usetime)
{
    const uint8_t *e = find_ext(r, IPSECIF_SADB_EXT_LIFETIME_CURRENT, NULL);

    assert_non_null(e);
    *usetime = g64(e + 24);
    return g64(e + 16);
}

static void key_case_run(const struct key_case *kc)
{
    const uint64_t wall_now_ms = 2500, unix_s = 1700000000, add_ms = 9700;
    uint8_t ekey[IPSECIF_MAX_EKEY], akey[IPSECIF_MAX_AKEY];
    uint64_t usetime = 1;
    const struct rec_msg *r;
    struct mb m;
    struct fx f;
    size_t i;

    for (i = 0; i < sizeof(ekey); i++) {
        ekey[i] = (uint8_t)(0xa0 + i);
    }
    for (i = 0; i < sizeof(akey); i++) {
        akey[i] = (uint8_t)(0x30 + 3 * i);
    }
    fx_up(&f, kc->d);
    ipsecif_pfkey_set_wallclock(f.t.ctx, wall_now_ms, unix_s);

    mb_init(&m, kc->d, IPSECIF_SADB_ADD, IPSECIF_SADB_SATYPE_ESP, 7);
    mb_sa(&m, 0x4242, 4, kc->aalg, kc->ealg);
    mb_sa2(&m, IPSECIF_MODE_TUNNEL, 5);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "192.0.2.1", 0, -1, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "192.0.2.2", 0, -1, 255);
    mb_key_bytes(&m, IPSECIF_SADB_EXT_KEY_ENCRYPT, ekey, kc->ekey_len);
    if (kc->akey_len != 0) {
        mb_key_bytes(&m, IPSECIF_SADB_EXT_KEY_AUTH, akey, kc->akey_len);
    }
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), add_ms);
    /* The ADD broadcast never carries keys, as in KAME. */
    r = only_reply(f.ep, IPSECIF_SADB_ADD, 0);
    assert_non_null(find_ext(r, IPSECIF_SADB_EXT_SA, NULL));
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, NULL));
    assert_null(find_ext(r, IPSECIF_SADB_EXT_KEY_AUTH, NULL));

    mb_sa_id(&m, kc->d, IPSECIF_SADB_GET, 0x4242);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), add_ms + 60000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    check_key(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, ekey, kc->ekey_len);
    check_key(r, IPSECIF_SADB_EXT_KEY_AUTH, akey, kc->akey_len);
    /* Unix seconds once the offset is known; an unused SA keeps usetime 0. */
    assert_int_equal(cur_addtime(r, &usetime), unix_s + (add_ms - wall_now_ms) / 1000);
    assert_int_equal(usetime, 0);

    mb_init(&m, kc->d, IPSECIF_SADB_DUMP, IPSECIF_SADB_SATYPE_ESP, 3);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), add_ms + 60000);
    check_dump(f.ep, IPSECIF_SADB_DUMP, 1);
    r = rec_get(f.ep, 0);
    check_key(r, IPSECIF_SADB_EXT_KEY_ENCRYPT, ekey, kc->ekey_len);
    check_key(r, IPSECIF_SADB_EXT_KEY_AUTH, akey, kc->akey_len);
    assert_int_equal(cur_addtime(r, &usetime), unix_s + (add_ms - wall_now_ms) / 1000);

    /* The SA holds its keys; after DELETE no copy is left in the context,
     * not even in the buffer GET and DUMP were built in. */
#if IPSECIF_SA_KEEP_KEYS
    assert_true(ctx_holds(&f, ekey, kc->ekey_len));
#endif
    mb_sa_id(&m, kc->d, IPSECIF_SADB_DELETE, 0x4242);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), add_ms + 61000);
    (void)only_reply(f.ep, IPSECIF_SADB_DELETE, 0);
    assert_false(ctx_holds(&f, ekey, kc->ekey_len));
    if (kc->akey_len != 0) {
        assert_false(ctx_holds(&f, akey, kc->akey_len));
    }
    mb_sa_id(&m, kc->d, IPSECIF_SADB_GET, 0x4242);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), add_ms + 62000);
    r = rec_get(f.ep, 0);
    assert_int_not_equal(r->b[2], 0);
    assert_int_equal(r->len, 16);
    fx_down(&f);
}

static void test_get_dump_keys(void **state)
{
    static const struct key_case cases[] = {
        {LINUX, IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_256, 16, 32},
        {KAME, IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_256, 32, 32},
        {LINUX, IPSECIF_SADB_X_EALG_AESGCM16, 0, 20, 0},
        {KAME, IPSECIF_SADB_X_EALG_AESGCM16, 0, 36, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        key_case_run(&cases[i]);
    }
}

/* Without ipsecif_pfkey_set_wallclock() times stay in the library's clock;
 * a later call moves SA and policy times alike. */
static void test_wallclock(void **state)
{
    uint64_t usetime = 1;
    const struct rec_msg *r;
    const uint8_t *e;
    struct mb m;
    struct fx f;

    (void)state;
    fx_up(&f, KAME);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_add_sa(&m, KAME, IPSECIF_SADB_ADD, 0x500, "192.0.2.1", "192.0.2.2"),
          42000);
    mb_sa_id(&m, KAME, IPSECIF_SADB_GET, 0x500);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), 50000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(cur_addtime(r, &usetime), 42);

    /* The wall clock may be behind the library's clock's origin too. */
    ipsecif_pfkey_set_wallclock(f.t.ctx, 100000, 90);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), 50000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(cur_addtime(r, &usetime), 32);
    assert_int_equal(usetime, 0);
    ipsecif_pfkey_set_wallclock(f.t.ctx, 100000, 10);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), 50000);
    r = only_reply(f.ep, IPSECIF_SADB_GET, 0);
    assert_int_equal(cur_addtime(r, &usetime), 0); /* clamped, not wrapped */

    ipsecif_pfkey_set_wallclock(f.t.ctx, 1000, 1600000000);
    mb_init(&m, KAME, IPSECIF_SADB_X_SPDADD, IPSECIF_SADB_SATYPE_UNSPEC, 4);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_SRC, "10.0.0.0", 0, 24, 255);
    mb_addr(&m, IPSECIF_SADB_EXT_ADDRESS_DST, "10.0.1.0", 0, 24, 255);
    mb_policy(&m, 0 /* discard */, IPSECIF_DIR_OUT, 0, 0, NULL, 0);
    rec_clear();
    sendm(&f, f.ep, m.b, mb_done(&m), 7000);
    r = only_reply(f.ep, IPSECIF_SADB_X_SPDADD, 0);
    e = find_ext(r, IPSECIF_SADB_EXT_LIFETIME_CURRENT, NULL);
    assert_non_null(e);
    assert_int_equal(g64(e + 16), 1600000006);
    assert_int_equal(g64(e + 24), 0);
    ipsecif_pfkey_set_wallclock(NULL, 1, 1); /* harmless */
    fx_down(&f);
}

static void test_errno_map(void **state)
{
    (void)state;
    assert_int_equal(ipsecif_pfkey_errno(LINUX, IPSECIF_OK), 0);
    assert_int_equal(ipsecif_pfkey_errno(LINUX, IPSECIF_ERR_ARG), 22);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_EXIST), 17);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_NOENT), 2);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_BUSY), 16);
    assert_int_equal(ipsecif_pfkey_errno(LINUX, IPSECIF_ERR_FULL), 105);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_FULL), 55);
    assert_int_equal(ipsecif_pfkey_errno(LINUX, IPSECIF_ERR_UNSUPPORTED), 95);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_UNSUPPORTED), 45);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_KEYLEN), 22);
    assert_int_equal(ipsecif_pfkey_errno(KAME, IPSECIF_ERR_RANDOM), 12);
}

/* SA table full: ENOBUFS in the dialect's number. */
static void test_full(void **state)
{
    struct ipsecif_config cfg;
    struct fx f;
    struct mb m;
    size_t len;
    uint32_t i;

    (void)state;
    memset(&f, 0, sizeof(f));
    ipsecif_config_default(&cfg);
    cfg.max_sas = 2;
    cfg.max_policies = 4;
    test_ctx_new(&f.t, &cfg);
    f.t.mock->port.pfkey_deliver = rec_deliver;
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, KAME, &f.ep), IPSECIF_OK);
    for (i = 0; i < 3; i++) {
        rec_clear();
        len = mb_add_sa(&m, KAME, IPSECIF_SADB_ADD, 0x1000 + i, "192.0.2.9", "192.0.2.1");
        sendm(&f, f.ep, m.b, len, 1);
        only_reply(f.ep, IPSECIF_SADB_ADD, i < 2 ? 0 : IPSECIF_PFKEY_ENOBUFS_KAME);
    }
    fx_down(&f);
}

/* ---- Per-socket policies (X_SOCKPOLICY, setsockopt bytes) ---- */

/* The socket block: handle, protocol, family, port (network order), address. */
static void mb_sock(struct mb *m, uint32_t handle, uint8_t proto, const char *addr, uint16_t port)
{
    struct ipsecif_addr a = test_addr(addr);
    uint8_t *p = m->b + m->len;

    memset(p, 0, 32);
    put32(p, handle);
    p[4] = proto;
    p[5] = a.family;
    p[6] = (uint8_t)(port >> 8);
    p[7] = (uint8_t)port;
    memcpy(p + 8, a.bytes, ipsecif_addr_len(a.family));
    m->len += 32;
}

/* One X_SOCKPOLICY request with an optional policy; returns the reply's errno. */
static uint8_t sockpol(struct fx *f, uint32_t ep, uint8_t op, uint32_t handle, const char *addr,
                       uint16_t port, uint16_t type, uint8_t dir, const struct wreq *rq, unsigned n)
{
    uint8_t d = f->t.ctx->pfkey.eps[ep - 1].dialect;
    const struct rec_msg *r;
    struct mb m;
    size_t len;

    mb_init(&m, d, IPSECIF_SADB_X_SOCKPOLICY, op, 77);
    mb_sock(&m, handle, IPSECIF_IPPROTO_UDP, addr, port);
    if (op == IPSECIF_SOCKPOL_OP_SET || op == IPSECIF_SOCKPOL_OP_GET) {
        mb_policy(&m, type, dir, 0, 0, rq, n);
    }
    len = mb_done(&m);
    rec_clear();
    sendm(f, ep, m.b, len, 1);
    /* The sender alone is answered. */
    assert_int_equal(n_rec, 1);
    r = rec_get(ep, 0);
    assert_int_equal(r->b[1], IPSECIF_SADB_X_SOCKPOLICY);
    assert_int_equal(r->b[3], op);
    assert_int_equal(g32(r->b + 8), 77);
    assert_int_equal(g16(r->b + 4) * 8u, r->len);
    return r->b[2];
}

static void sockpol_case(uint8_t d)
{
    static const struct wreq esp = {
        IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL};
    static const struct wreq udp = {
        IPSECIF_IPPROTO_UDP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL};
    struct ipsecif_addr local = test_addr("198.51.100.1");
    struct ipsecif_sockpolicy sp;
    struct ipsecif_sock so;
    const struct rec_msg *r;
    uint64_t errs;
    uint32_t other, promisc;
    struct mb m;
    size_t len;
    struct fx f;

    fx_up(&f, d);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &promisc), IPSECIF_OK);
    mb_init(&m, d, IPSECIF_SADB_X_PROMISC, 1, 1);
    len = mb_done(&m);
    sendm(&f, promisc, m.b, len, 1);

    /* racoon's IKE socket: bypass both ways, set before bind. */
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 7, "0.0.0.0", 0, 4, IPSECIF_DIR_IN, NULL, 0), 0);
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 7, "0.0.0.0", 0, 4, IPSECIF_DIR_OUT, NULL, 0), 0);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 1);
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    /* Not bound yet: covers nothing. */
    assert_int_equal(ipsecif_spd_sock_lookup(f.t.ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &local,
                                             500, NULL, NULL),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_BIND, 7, "198.51.100.1", 500, 0, 0, NULL, 0), 0);
    assert_int_equal(ipsecif_spd_sock_lookup(f.t.ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &local,
                                             500, &sp, &so),
                     IPSECIF_OK);
    assert_int_equal(sp.type, IPSECIF_SOCKPOL_BYPASS);
    assert_int_equal(so.owner, f.ep);
    assert_int_equal(so.handle, 7);
    assert_int_equal(ipsecif_spd_sock_lookup(f.t.ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &local,
                                             4500, NULL, NULL),
                     IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_sock_lookup(f.t.ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_TCP, &local,
                                             500, NULL, NULL),
                     IPSECIF_ERR_NOENT);

    /* X_SPDDUMP: Linux lists them with per-socket ids (3 in, 4 out), KAME does not. */
    mb_init(&m, d, IPSECIF_SADB_X_SPDDUMP, 0, 5);
    len = mb_done(&m);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 1);
    if (d == LINUX) {
        check_dump(f.ep, IPSECIF_SADB_X_SPDDUMP, 2);
        for (unsigned i = 0; i < 2; i++) {
            const uint8_t *x = find_ext(rec_get(f.ep, i), IPSECIF_SADB_X_EXT_POLICY, NULL);
            const uint8_t *a = find_ext(rec_get(f.ep, i),
                                        x[6] == IPSECIF_DIR_IN ? IPSECIF_SADB_EXT_ADDRESS_DST
                                                               : IPSECIF_SADB_EXT_ADDRESS_SRC,
                                        NULL);

            assert_int_equal(g16(x + 4), 4);
            assert_int_equal(g32(x + 8) & 7u, x[6] == IPSECIF_DIR_IN ? 3u : 4u);
            assert_int_equal(a[4], IPSECIF_IPPROTO_UDP);
            assert_int_equal(a[5], 32);
            assert_int_equal((a[10] << 8) | a[11], 500);
        }
    } else {
        only_reply(f.ep, IPSECIF_SADB_X_SPDDUMP, IPSECIF_PFKEY_ENOENT);
    }
    /* getsockopt: the direction asked for comes back as setsockopt bytes. */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_GET, 7, "198.51.100.1", 500, 0,
                             IPSECIF_DIR_IN, NULL, 0),
                     0);
    r = rec_get(f.ep, 0);
    assert_int_equal(r->len, 16 + 32 + 16);
    assert_int_equal(g16(r->b + 48), 2);
    assert_int_equal(g16(r->b + 48 + 4), 4); /* IPSEC_POLICY_BYPASS */
    assert_int_equal(r->b[48 + 6], IPSECIF_DIR_IN);
    assert_int_equal(g32(r->b + 16), 7);

    /* An ipsec policy on another socket, then read back. */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 8, "198.51.100.1", 4000, 2,
                             IPSECIF_DIR_OUT, &esp, 1),
                     0);
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_GET, 8, "198.51.100.1", 4000, 0,
                             IPSECIF_DIR_OUT, NULL, 0),
                     0);
    r = rec_get(f.ep, 0);
    assert_int_equal(g16(r->b + 48 + 4), 2);
    assert_int_equal(g16(r->b + 48 + 16 + 2), IPSECIF_IPPROTO_ESP);
    assert_int_equal(r->b[48 + 16 + 5], IPSECIF_LEVEL_REQUIRE);
    assert_int_equal(ipsecif_pfkey_sockpolicy_parse(d, r->b + 48, r->len - 48, &sp), IPSECIF_OK);
    assert_int_equal(sp.type, IPSECIF_SOCKPOL_IPSEC);
    assert_int_equal(sp.nreq, 1);
    /* Its other direction entrusts. */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_GET, 8, "198.51.100.1", 4000, 0,
                             IPSECIF_DIR_IN, NULL, 0),
                     0);
    assert_int_equal(g16(rec_get(f.ep, 0)->b + 48 + 4), 3); /* IPSEC_POLICY_ENTRUST */
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 2);

    /* What setsockopt refuses with EINVAL, leaving the table as it was. */
    errs = ipsecif_pfkey_stats_get(f.t.ctx)->in_errors;
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 0, IPSECIF_DIR_IN, NULL, 0),
        IPSECIF_PFKEY_EINVAL); /* discard */
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 1, IPSECIF_DIR_IN, NULL, 0),
        IPSECIF_PFKEY_EINVAL); /* none */
    assert_int_equal(
        sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 9, IPSECIF_DIR_IN, NULL, 0),
        IPSECIF_PFKEY_EINVAL); /* no such type */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 4,
                             IPSECIF_DIR_FWD, NULL, 0),
                     IPSECIF_PFKEY_EINVAL); /* fwd is no socket direction */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 2,
                             IPSECIF_DIR_OUT, NULL, 0),
                     IPSECIF_PFKEY_EINVAL); /* ipsec without requests */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 4,
                             IPSECIF_DIR_OUT, &esp, 1),
                     IPSECIF_PFKEY_EINVAL); /* bypass with requests */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 9, "198.51.100.1", 1, 2,
                             IPSECIF_DIR_OUT, &udp, 1),
                     IPSECIF_PFKEY_EINVAL); /* a request for UDP */
    assert_int_equal(sockpol(&f, f.ep, 9, 9, "198.51.100.1", 1, 4, IPSECIF_DIR_OUT, NULL, 0),
                     IPSECIF_PFKEY_EINVAL); /* no such operation */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_GET, 8, "198.51.100.1", 1, 0,
                             IPSECIF_DIR_FWD, NULL, 0),
                     IPSECIF_PFKEY_EINVAL);
    /* A policy whose own length does not match the bytes given; a missing
     * socket block; a socket of no family. */
    mb_init(&m, d, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_SOCKPOL_OP_SET, 77);
    mb_sock(&m, 9, IPSECIF_IPPROTO_UDP, "198.51.100.1", 1);
    mb_policy(&m, 4, IPSECIF_DIR_IN, 0, 0, NULL, 0);
    put16(m.b + 48, 3);
    m.len += 8;
    len = mb_done(&m);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_PFKEY_EINVAL);
    mb_init(&m, d, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_SOCKPOL_OP_SET, 77);
    len = mb_done(&m);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_PFKEY_EINVAL);
    mb_init(&m, d, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_SOCKPOL_OP_SET, 77);
    mb_sock(&m, 9, IPSECIF_IPPROTO_UDP, "198.51.100.1", 1);
    m.b[16 + 5] = 0;
    mb_policy(&m, 4, IPSECIF_DIR_IN, 0, 0, NULL, 0);
    len = mb_done(&m);
    rec_clear();
    sendm(&f, f.ep, m.b, len, 1);
    only_reply(f.ep, IPSECIF_SADB_X_SOCKPOLICY, IPSECIF_PFKEY_EINVAL);
    assert_int_equal(ipsecif_pfkey_stats_get(f.t.ctx)->in_errors, errs + 12);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 2);

    /* Entrust both ways forgets a socket; close forgets one; the end of the
     * endpoint forgets all of its sockets and none of another's. */
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 8, "198.51.100.1", 4000, 3,
                             IPSECIF_DIR_OUT, NULL, 0),
                     0);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 1);
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_CLOSE, 7, "0.0.0.0", 0, 0, 0, NULL, 0),
                     0);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 0);
    assert_int_equal(ipsecif_pfkey_open(f.t.ctx, d, &other), IPSECIF_OK);
    assert_int_equal(sockpol(&f, other, IPSECIF_SOCKPOL_OP_SET, 7, "2001:db8::1", 500, 4,
                             IPSECIF_DIR_IN, NULL, 0),
                     0);
    assert_int_equal(sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, 7, "2001:db8::1", 500, 4,
                             IPSECIF_DIR_IN, NULL, 0),
                     0);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 2);
    assert_int_equal(ipsecif_pfkey_close(f.t.ctx, other), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), 1);
    assert_int_equal(ipsecif_spd_sock_get(f.t.ctx, f.ep, 7, IPSECIF_DIR_IN, &sp), IPSECIF_OK);
    assert_int_equal(sp.type, IPSECIF_SOCKPOL_BYPASS);

    /* A full table: ENOBUFS in the endpoint's dialect. */
    for (uint32_t h = 100;; h++) {
        uint8_t e = sockpol(&f, f.ep, IPSECIF_SOCKPOL_OP_SET, h, "192.0.2.1", (uint16_t)h, 4,
                            IPSECIF_DIR_OUT, NULL, 0);

        if (e != 0) {
            assert_int_equal(e,
                             d == LINUX ? IPSECIF_PFKEY_ENOBUFS_LINUX : IPSECIF_PFKEY_ENOBUFS_KAME);
            assert_int_equal(ipsecif_spd_sock_count(f.t.ctx), f.t.ctx->cfg.max_socket_policies);
            break;
        }
        assert_true(h < 100 + f.t.ctx->cfg.max_socket_policies);
    }
    /* No SPD entry came of any of it. */
    assert_int_equal(ipsecif_spd_count(f.t.ctx), 0);
    fx_down(&f);
}

static void test_sockpolicy_linux(void **state)
{
    (void)state;
    sockpol_case(LINUX);
}

static void test_sockpolicy_kame(void **state)
{
    (void)state;
    sockpol_case(KAME);
}

/* The setsockopt bytes: build then parse, both dialects, and the refusals. */
static void test_sockpolicy_codec(void **state)
{
    static const uint8_t dialects[] = {KAME, LINUX};
    struct ipsecif_sockpolicy in, out;
    uint8_t buf[256];
    size_t k, len, n;

    (void)state;
    for (k = 0; k < 2; k++) {
        uint8_t d = dialects[k];

        memset(&in, 0, sizeof(in));
        in.dir = IPSECIF_DIR_OUT;
        in.type = IPSECIF_SOCKPOL_IPSEC;
        in.nreq = 2;
        in.req[0].proto = IPSECIF_IPPROTO_ESP;
        in.req[0].mode = IPSECIF_MODE_TRANSPORT;
        in.req[0].level = IPSECIF_LEVEL_USE;
        in.req[1].proto = IPSECIF_IPPROTO_AH;
        in.req[1].mode = IPSECIF_MODE_TUNNEL;
        in.req[1].level = IPSECIF_LEVEL_UNIQUE;
        in.req[1].reqid = 300;
        in.req[1].tun_src = test_addr("2001:db8::1");
        in.req[1].tun_dst = test_addr("2001:db8::2");
        len = ipsecif_pfkey_sockpolicy_build(d, &in, buf, sizeof(buf));
        assert_true(len > 16 && len % 8 == 0);
        assert_int_equal(ipsecif_pfkey_sockpolicy_build(d, &in, buf, len - 1), 0);
        assert_int_equal(ipsecif_pfkey_sockpolicy_parse(d, buf, len, &out), IPSECIF_OK);
        assert_int_equal(out.type, IPSECIF_SOCKPOL_IPSEC);
        assert_int_equal(out.dir, IPSECIF_DIR_OUT);
        assert_int_equal(out.nreq, 2);
        assert_int_equal(out.req[1].reqid, 300);
        assert_true(ipsecif_addr_eq(&out.req[1].tun_dst, &in.req[1].tun_dst));
        /* Every shorter or longer length is refused, never read past. */
        for (n = 0; n < len + 8; n++) {
            if (n != len) {
                assert_int_not_equal(ipsecif_pfkey_sockpolicy_parse(d, buf, n, &out), IPSECIF_OK);
            }
        }
        assert_int_equal(ipsecif_pfkey_sockpolicy_parse(0, buf, len, &out), IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_pfkey_sockpolicy_parse(d, NULL, len, &out), IPSECIF_ERR_ARG);
        /* bypass and entrust: a bare header. */
        in.type = IPSECIF_SOCKPOL_BYPASS;
        in.nreq = 0;
        in.dir = IPSECIF_DIR_IN;
        assert_int_equal(ipsecif_pfkey_sockpolicy_build(d, &in, buf, sizeof(buf)), 16);
        assert_int_equal(g16(buf + 4), 4);
        assert_int_equal(ipsecif_pfkey_sockpolicy_parse(d, buf, 16, &out), IPSECIF_OK);
        assert_int_equal(out.type, IPSECIF_SOCKPOL_BYPASS);
        in.type = 7;
        assert_int_equal(ipsecif_pfkey_sockpolicy_build(d, &in, buf, sizeof(buf)), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captures_basic),
        cmocka_unit_test(test_captures_extra),
        cmocka_unit_test(test_sa_round_trip_linux),
        cmocka_unit_test(test_sa_round_trip_kame),
        cmocka_unit_test(test_ah_linux),
        cmocka_unit_test(test_ah_kame),
        cmocka_unit_test(test_kame_sa_replay_ext),
        cmocka_unit_test(test_spd_round_trip_linux),
        cmocka_unit_test(test_spd_round_trip_kame),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_spd),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_register_linux),
        cmocka_unit_test(test_register_kame),
        cmocka_unit_test(test_acquire_linux),
        cmocka_unit_test(test_acquire_kame),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_promisc_linux),
        cmocka_unit_test(test_promisc_kame),
        cmocka_unit_test(test_broadcast_scope),
        cmocka_unit_test(test_owned_policies),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_get_dump_keys),
        cmocka_unit_test(test_wallclock),
        cmocka_unit_test(test_errno_map),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_sockpolicy_linux),
        cmocka_unit_test(test_sockpolicy_kame),
        cmocka_unit_test(test_sockpolicy_codec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
