/*
 * Host traffic (lib/core/host.c): two contexts, "a" and "b", each with the
 * other's SAs, pass packets through ipsecif_host_output() on one and
 * ipsecif_host_input() (or ipsecif_input()) on the other. Transport and
 * tunnel mode, ESP and AH, a bundle, both families; levels and sysctls,
 * discard and def_policy, the inbound check against cleartext and too
 * little protection, per-socket bypass and ipsec, forward policies, tamper
 * and replay, the generation counter; net.inet.ipsec.enabled and used,
 * net.key.prefered_oldsa.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ipsecif/ipsecif.h"
#include "mock_port.h"
#include "test_util.h"

#define HEADROOM 256

#define A4 "192.0.2.1"
#define B4 "192.0.2.2"
#define A6 "2001:db8::1"
#define B6 "2001:db8::2"

static const uint8_t gcm_key[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                    11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
static const uint8_t sha_key[32] = {
    0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
    0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40};

struct pair {
    struct test_ctx a, b;
};

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    test_ctx_new(&p->a, NULL);
    test_ctx_new(&p->b, NULL);
    mock_port_host(p->a.mock);
    mock_port_host(p->b.mock);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;

    test_ctx_free(&p->a);
    test_ctx_free(&p->b);
    free(p);
    return 0;
}

/* Add the same SA to both contexts. */
static void sa_both(struct pair *p, uint8_t proto, uint8_t mode, uint32_t spi, const char *src,
                    const char *dst, uint32_t reqid)
{
    struct ipsecif_sa_params sp;

    memset(&sp, 0, sizeof(sp));
    sp.proto = proto;
    sp.mode = mode;
    sp.spi = spi;
    sp.src = test_addr(src);
    sp.dst = test_addr(dst);
    sp.reqid = reqid;
    sp.replay_window = 64;
    if (proto == IPSECIF_IPPROTO_ESP) {
        sp.ealg = IPSECIF_EALG_AES_GCM16;
        sp.ekey = gcm_key;
        sp.ekey_len = sizeof(gcm_key);
    } else {
        sp.aalg = IPSECIF_AALG_HMAC_SHA2_256_128;
        sp.akey = sha_key;
        sp.akey_len = sizeof(sha_key);
    }
    assert_int_equal(ipsecif_sa_add(p->a.ctx, &sp, 1000), IPSECIF_OK);
    assert_int_equal(ipsecif_sa_add(p->b.ctx, &sp, 1000), IPSECIF_OK);
}

/* A policy src/plen -> dst/plen (any protocol) with up to two requests. */
static struct ipsecif_policy pol(const char *src, unsigned splen, const char *dst, unsigned dplen,
                                 uint8_t dir, uint8_t action)
{
    struct ipsecif_policy po;

    memset(&po, 0, sizeof(po));
    po.sel.src = test_addr(src);
    po.sel.dst = test_addr(dst);
    po.sel.src_plen = (uint8_t)splen;
    po.sel.dst_plen = (uint8_t)dplen;
    po.sel.ulproto = IPSECIF_IPPROTO_ANY;
    po.dir = dir;
    po.action = action;
    po.priority = IPSECIF_PRIORITY_DEFAULT;
    return po;
}

static void add_req(struct ipsecif_policy *po, uint8_t proto, uint8_t mode, uint8_t level,
                    const char *tsrc, const char *tdst)
{
    struct ipsecif_ipsecreq *r = &po->req[po->nreq++];

    r->proto = proto;
    r->mode = mode;
    r->level = level;
    if (tsrc != NULL) {
        r->tun_src = test_addr(tsrc);
        r->tun_dst = test_addr(tdst);
    }
}

static void add_pol(struct test_ctx *t, const struct ipsecif_policy *po)
{
    assert_int_equal(ipsecif_spd_add(t->ctx, po, 1000, NULL), IPSECIF_OK);
}

/* Outbound on one side and inbound on the other with the same requests. */
static void pol_both(struct pair *p, const char *a, const char *b, unsigned plen, uint8_t proto1,
                     uint8_t proto2, uint8_t mode, uint8_t level, const char *ta, const char *tb)
{
    struct ipsecif_policy out = pol(a, plen, b, plen, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_policy in = pol(a, plen, b, plen, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);

    add_req(&out, proto1, mode, level, ta, tb);
    add_req(&in, proto1, mode, level, ta, tb);
    if (proto2 != 0) {
        add_req(&out, proto2, mode, level, ta, tb);
        add_req(&in, proto2, mode, level, ta, tb);
    }
    add_pol(&p->a, &out);
    add_pol(&p->b, &in);
}

/* A sound IPv4 header checksum. */
static void put_csum4(uint8_t *h)
{
    uint32_t sum = 0;
    size_t i;

    for (i = 0; i < 20; i += 2) {
        sum += (uint32_t)(h[i] << 8 | h[i + 1]);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10] = (uint8_t)(~sum >> 8);
    h[11] = (uint8_t)~sum;
}

/* A UDP datagram src:sport -> dst:dport with a short payload. */
static size_t build_udp(struct test_buf *tb, const char *src, const char *dst, uint16_t sport,
                        uint16_t dport)
{
    struct ipsecif_addr s = test_addr(src), d = test_addr(dst);
    uint8_t pkt[80];
    size_t hl = s.family == IPSECIF_AF_INET ? 20 : 40;
    size_t len = hl + 8 + 12;

    memset(pkt, 0, sizeof(pkt));
    if (s.family == IPSECIF_AF_INET) {
        pkt[0] = 0x45;
        pkt[3] = (uint8_t)len;
        pkt[8] = 64;
        pkt[9] = IPSECIF_IPPROTO_UDP;
        memcpy(pkt + 12, s.bytes, 4);
        memcpy(pkt + 16, d.bytes, 4);
        put_csum4(pkt);
    } else {
        pkt[0] = 0x60;
        pkt[5] = (uint8_t)(len - 40);
        pkt[6] = IPSECIF_IPPROTO_UDP;
        pkt[7] = 64;
        memcpy(pkt + 8, s.bytes, 16);
        memcpy(pkt + 24, d.bytes, 16);
    }
    pkt[hl] = (uint8_t)(sport >> 8);
    pkt[hl + 1] = (uint8_t)sport;
    pkt[hl + 2] = (uint8_t)(dport >> 8);
    pkt[hl + 3] = (uint8_t)dport;
    pkt[hl + 5] = 20;
    memcpy(pkt + hl + 8, "host traffic", 12);
    test_buf_set(tb, HEADROOM, pkt, len);
    return len;
}

/* Protocol (IPv4) or first next header (IPv6) of a packet. */
static uint8_t proto_of(const struct ipsecif_buf *b)
{
    const uint8_t *p = ipsecif_buf_data(b);

    return (p[0] >> 4) == 4 ? p[9] : p[6];
}

/* Send orig through a, receive on b: b must give back exactly orig. */
static void round_trip(struct pair *p, struct test_buf *tb, const uint8_t *orig, size_t len,
                       uint8_t wire_proto, uint8_t nsa, uint8_t tunnels)
{
    struct ipsecif_host_result r;

    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb->b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
    assert_int_equal(r.nsa, nsa);
    assert_int_equal(r.tunnels, tunnels);
    assert_int_equal(proto_of(&tb->b), wire_proto);
    assert_true(tb->b.len > len);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb->b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
    assert_int_equal(r.nsa, nsa);
    assert_int_equal(tb->b.len, len);
    assert_memory_equal(ipsecif_buf_data(&tb->b), orig, len);
}

static void copy_pkt(const struct test_buf *tb, uint8_t *out, size_t *len)
{
    *len = tb->b.len;
    memcpy(out, ipsecif_buf_data(&tb->b), tb->b.len);
}

static void test_transport_esp(void **state)
{
    struct pair *p = *state;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len, bytes;

    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x1001, A4, B4, 0);
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x1002, A6, B6, 0);
    pol_both(p, A4, B4, 32, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);
    pol_both(p, A6, B6, 128, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);

    build_udp(&tb, A4, B4, 1111, 2222);
    copy_pkt(&tb, orig, &len);
    bytes = len;
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_ESP, 1, 0);
    test_build_ping(&tb, HEADROOM, A6, B6, 100, 0);
    copy_pkt(&tb, orig, &len);
    bytes += len;
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_ESP, 1, 0);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->host_out_ipsec, 2);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->host_in_ipsec, 2);
    /* Host IPsec counts in the general counters as well, bytes unprotected. */
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_success, 2);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_bytes, bytes);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_success, 2);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_bytes, bytes);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->in_success, 0);
}

static void test_transport_ah_and_bundle(void **state)
{
    struct pair *p = *state;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len;
    const uint8_t *w;

    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, 0x2001, A6, B6, 0);
    pol_both(p, A6, B6, 128, IPSECIF_IPPROTO_AH, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);
    build_udp(&tb, A6, B6, 5, 6);
    copy_pkt(&tb, orig, &len);
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_AH, 1, 0);

    /* esp then ah: IP | AH | ESP | UDP. */
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, 0x2002, A4, B4, 0);
    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, 0x2003, A4, B4, 0);
    pol_both(p, A4, B4, 32, IPSECIF_IPPROTO_ESP, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT,
             IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    build_udp(&tb, A4, B4, 7, 8);
    copy_pkt(&tb, orig, &len);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    w = ipsecif_buf_data(&tb.b);
    assert_int_equal(w[9], IPSECIF_IPPROTO_AH);
    assert_int_equal(w[20], IPSECIF_IPPROTO_ESP); /* AH's next header */
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(tb.b.len, len);
    assert_memory_equal(ipsecif_buf_data(&tb.b), orig, len);
}

/* The inbound policy asks for ESP and AH; ESP alone is not enough. */
static void test_bundle_partial_refused(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy out = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_policy in = pol(A4, 32, B4, 32, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);
    struct test_buf tb;

    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, 0x2102, A4, B4, 0);
    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, 0x2103, A4, B4, 0);
    add_req(&out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_req(&in, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_req(&in, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_pol(&p->a, &out);
    add_pol(&p->b, &in);
    build_udp(&tb, A4, B4, 7, 8);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, NULL), IPSECIF_ERR_POLICY);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_polvio, 1);
}

static void test_tunnel(void **state)
{
    struct pair *p = *state;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len;

    /* 192.0.2.128/25 behind a, 198.51.100.0/24 behind b, tunnel over IPv6. */
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, 0x3001, A6, B6, 0);
    pol_both(p, "192.0.2.128", "198.51.100.0", 24, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TUNNEL,
             IPSECIF_LEVEL_REQUIRE, A6, B6);
    test_build_ping(&tb, HEADROOM, "192.0.2.130", "198.51.100.7", 64, 0x02);
    copy_pkt(&tb, orig, &len);
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_ESP, 1, 1);

    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TUNNEL, 0x3002, A4, B4, 0);
    pol_both(p, "2001:db8:a::", "2001:db8:b::", 48, IPSECIF_IPPROTO_AH, 0, IPSECIF_MODE_TUNNEL,
             IPSECIF_LEVEL_REQUIRE, A4, B4);
    build_udp(&tb, "2001:db8:a::5", "2001:db8:b::6", 9, 10);
    copy_pkt(&tb, orig, &len);
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_AH, 1, 1);
}

/* A tunnel-mode inbound policy names its endpoints: the same SA from other
 * endpoints does not meet it. */
static void test_tunnel_endpoints_checked(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy out =
        pol("192.0.2.128", 25, "198.51.100.0", 24, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_policy in =
        pol("192.0.2.128", 25, "198.51.100.0", 24, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);
    struct test_buf tb;

    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, 0x3101, A4, B4, 0);
    add_req(&out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_REQUIRE, A4, B4);
    add_req(&in, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_REQUIRE, "192.0.2.9", B4);
    add_pol(&p->a, &out);
    add_pol(&p->b, &in);
    test_build_ping(&tb, HEADROOM, "192.0.2.130", "198.51.100.7", 8, 0);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, NULL), IPSECIF_ERR_POLICY);
}

static void test_require_without_sa(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy out = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_host_result r;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len;

    add_req(&out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_pol(&p->a, &out);
    build_udp(&tb, A4, B4, 1, 2);
    copy_pkt(&tb, orig, &len);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_NOSA);
    assert_int_equal(tb.b.len, len);
    assert_memory_equal(ipsecif_buf_data(&tb.b), orig, len);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_nosa, 1);
    assert_int_equal(p->a.mock->n_events, 1);
    assert_int_equal(p->a.mock->events[0].type, IPSECIF_KM_ACQUIRE);
    assert_memory_equal(p->a.mock->events[0].acquire.dst.bytes, test_addr(B4).bytes, 4);
    /* Rate-limited: a second packet within the interval raises none. */
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2100, NULL), IPSECIF_ERR_NOSA);
    assert_int_equal(p->a.mock->n_events, 1);
}

/* Level default follows esp_trans_deflev: 1 use (clear without an SA), 2 require. */
static void test_levels_and_sysctl(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy out = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_host_result r;
    struct test_buf tb;

    add_req(&out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_DEFAULT, NULL, NULL);
    add_pol(&p->a, &out);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 1), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_int_equal(proto_of(&tb.b), IPSECIF_IPPROTO_UDP);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 2), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_NOSA);
    /* The tunnel-mode default does not touch a transport request. */
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ESP_NET_DEFLEV, 1), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 3000, &r), IPSECIF_ERR_NOSA);
    /* With an SA it is protected. */
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x4001, A4, B4, 0);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 3000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
}

static void test_discard_and_def_policy(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy d = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_DISCARD);
    struct ipsecif_host_result r;
    struct test_buf tb;

    d.sel.ulproto = IPSECIF_IPPROTO_UDP;
    d.sel.dport = 9;
    add_pol(&p->a, &d);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_DISCARD);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_polvio, 1);
    /* Another port: no policy, def_policy 1 passes it, 0 drops it. */
    build_udp(&tb, A4, B4, 1, 10);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_int_equal(r.policy_id, 0);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 10);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_DISCARD);
    /* The IPv6 default is its own. */
    build_udp(&tb, A6, B6, 1, 10);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 10);
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);
}

/* Cleartext that a require policy covers is refused; use lets it in. */
static void test_inbound_cleartext(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy in = pol(A4, 32, B4, 32, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);
    struct ipsecif_host_result r;
    struct test_buf tb;

    add_req(&in, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_pol(&p->b, &in);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_polvio, 1);
    in.req[0].level = IPSECIF_LEVEL_USE;
    assert_int_equal(ipsecif_spd_update(p->b.ctx, &in, 2000, NULL), IPSECIF_OK);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->host_in_clear, 1);
    /* Cleartext is no IPsec success. */
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_success, 0);
}

/* An IKE socket bypasses a policy that covers everything, both ways; an
 * ipsec socket policy protects where the SPD would not. */
static void test_socket_policies(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy all_out =
        pol("0.0.0.0", 0, "0.0.0.0", 0, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_policy all_in =
        pol("0.0.0.0", 0, "0.0.0.0", 0, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);
    struct ipsecif_sockpolicy bp;
    struct ipsecif_sock s;
    struct ipsecif_host_result r;
    struct test_buf tb;

    add_req(&all_out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL,
            NULL);
    add_req(&all_in, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL,
            NULL);
    add_pol(&p->a, &all_out);
    add_pol(&p->a, &all_in);
    memset(&s, 0, sizeof(s));
    s.owner = 7;
    s.handle = 3;
    s.proto = IPSECIF_IPPROTO_UDP;
    s.local.family = IPSECIF_AF_INET;
    s.lport = 500;
    memset(&bp, 0, sizeof(bp));
    bp.type = IPSECIF_SOCKPOL_BYPASS;
    bp.dir = IPSECIF_DIR_OUT;
    assert_int_equal(ipsecif_spd_sock_set(p->a.ctx, &s, &bp), IPSECIF_OK);
    bp.dir = IPSECIF_DIR_IN;
    assert_int_equal(ipsecif_spd_sock_set(p->a.ctx, &s, &bp), IPSECIF_OK);

    build_udp(&tb, A4, B4, 500, 500);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_true(r.by_socket);
    build_udp(&tb, A4, B4, 501, 500);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_NOSA);
    build_udp(&tb, B4, A4, 500, 500);
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_true(r.by_socket);
    build_udp(&tb, B4, A4, 500, 501);
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);

    /* Closed: the SPD decides again. */
    assert_int_equal(ipsecif_spd_sock_close(p->a.ctx, 7, 3), 1);
    build_udp(&tb, A4, B4, 500, 500);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 3500, &r), IPSECIF_ERR_NOSA);

    /* An ipsec socket policy on b, where b's SPD has nothing: protected. */
    s.lport = 4000;
    memset(&bp, 0, sizeof(bp));
    bp.type = IPSECIF_SOCKPOL_IPSEC;
    bp.dir = IPSECIF_DIR_OUT;
    bp.nreq = 1;
    bp.req[0].proto = IPSECIF_IPPROTO_ESP;
    bp.req[0].mode = IPSECIF_MODE_TRANSPORT;
    bp.req[0].level = IPSECIF_LEVEL_REQUIRE;
    assert_int_equal(ipsecif_spd_sock_set(p->b.ctx, &s, &bp), IPSECIF_OK);
    build_udp(&tb, B4, A4, 4000, 9);
    assert_int_equal(ipsecif_host_output(p->b.ctx, &tb.b, 2000, &r), IPSECIF_ERR_NOSA);
    assert_int_equal(p->b.mock->n_events, 1);
    assert_int_equal(p->b.mock->events[0].type, IPSECIF_KM_ACQUIRE);
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x5001, B4, A4, 0);
    build_udp(&tb, B4, A4, 4000, 9);
    assert_int_equal(ipsecif_host_output(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
    assert_true(r.by_socket);
    /* a's catch-all inbound policy is met by it. */
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
}

/* A packet not for the host meets fwd policies first. */
static void test_forward(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy fwd =
        pol("0.0.0.0", 0, "198.51.100.0", 24, IPSECIF_DIR_FWD, IPSECIF_ACTION_DISCARD);
    struct ipsecif_host_result r;
    struct test_buf tb;

    add_pol(&p->b, &fwd);
    build_udp(&tb, A4, "198.51.100.7", 1, 2);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_false(r.forward);
    p->b.mock->foreign[0] = test_addr("198.51.100.7");
    p->b.mock->n_foreign = 1;
    build_udp(&tb, A4, "198.51.100.7", 1, 2);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);
}

static void test_tamper_and_replay(void **state)
{
    struct pair *p = *state;
    struct test_buf tb, copy;
    uint8_t *w;

    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_ANY, 0x6001, A4, B4, 0);
    pol_both(p, A4, B4, 32, IPSECIF_IPPROTO_AH, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    test_buf_set(&copy, HEADROOM, ipsecif_buf_data(&tb.b), tb.b.len);
    w = ipsecif_buf_data(&copy.b);
    w[copy.b.len - 1] ^= 1;
    assert_int_equal(ipsecif_host_input(p->b.ctx, &copy.b, 2000, NULL), IPSECIF_ERR_AUTH);
    test_buf_set(&copy, HEADROOM, ipsecif_buf_data(&tb.b), tb.b.len);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &copy.b, 2000, NULL), IPSECIF_ERR_REPLAY);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_auth, 1);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_replay, 1);
}

/* ipsecif_input() hands host ESP and AH to deliver_host; an IPv6 payload
 * without its header comes back whole through ipsecif_input_payload(). */
static void test_input_dispatch(void **state)
{
    struct pair *p = *state;
    struct ipsecif_outer_meta meta;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len;

    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x7001, A4, B4, 0);
    sa_both(p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_ANY, 0x7002, A6, B6, 0);
    pol_both(p, A4, B4, 32, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);
    pol_both(p, A6, B6, 128, IPSECIF_IPPROTO_AH, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);

    build_udp(&tb, A4, B4, 1, 2);
    copy_pkt(&tb, orig, &len);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_input(p->b.ctx, &tb.b, 2000), IPSECIF_OK);
    assert_int_equal(p->b.mock->n_host, 1);
    assert_int_equal(p->b.mock->host[0].len, len);
    assert_memory_equal(p->b.mock->host[0].data, orig, len);

    test_build_ping(&tb, HEADROOM, A6, B6, 40, 0);
    copy_pkt(&tb, orig, &len);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    memset(&meta, 0, sizeof(meta));
    meta.family = IPSECIF_AF_INET6;
    meta.src = test_addr(A6);
    meta.dst = test_addr(B6);
    meta.ttl = 3; /* hop limit changed in flight: mutable */
    ipsecif_buf_pull(&tb.b, 40);
    assert_int_equal(ipsecif_input_payload(p->b.ctx, &meta, IPSECIF_IPPROTO_AH, &tb.b, 2000),
                     IPSECIF_OK);
    assert_int_equal(p->b.mock->n_host, 2);
    assert_int_equal(p->b.mock->host[1].len, len);
    assert_memory_equal(p->b.mock->host[1].data + 8, orig + 8, len - 8);
    assert_int_equal(p->b.mock->host[1].data[7], 3);

    /* With a hop-by-hop header in front of AH (in the ICV), which the raw
     * socket gives apart: the port puts it back and names it in proto. */
    test_build_ping(&tb, HEADROOM, A6, B6, 40, 0);
    {
        /* Hop-by-hop (a mutable option, 0x3e: AH counts it as zeros), then
         * destination options (an immutable one, 0x1e, and a Pad1 pair). */
        static const uint8_t hbh[24] = {IPSECIF_IPPROTO_DSTOPTS,
                                        0,
                                        0x3e,
                                        4,
                                        0x11,
                                        0x11,
                                        0x11,
                                        0x11,
                                        IPSECIF_IPPROTO_ICMPV6,
                                        1,
                                        0x1e,
                                        10,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0xab,
                                        0,
                                        0};
        uint8_t pk[256];
        size_t n = tb.b.len, plen;

        memcpy(pk, ipsecif_buf_data(&tb.b), 40);
        memcpy(pk + 40, hbh, sizeof(hbh));
        memcpy(pk + 40 + sizeof(hbh), ipsecif_buf_data(&tb.b) + 40, n - 40);
        pk[6] = IPSECIF_IPPROTO_HOPOPTS;
        plen = n + sizeof(hbh) - 40;
        pk[4] = (uint8_t)(plen >> 8);
        pk[5] = (uint8_t)plen;
        test_buf_set(&tb, HEADROOM, pk, n + sizeof(hbh));
    }
    copy_pkt(&tb, orig, &len);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_buf_data(&tb.b)[6], IPSECIF_IPPROTO_HOPOPTS);
    assert_int_equal(ipsecif_buf_data(&tb.b)[48], IPSECIF_IPPROTO_AH); /* AH after them */
    ipsecif_buf_pull(&tb.b, 40);
    {
        struct test_buf again = tb;

        /* Named as AH, the payload is not AH: refused. */
        again.b.base = again.mem;
        assert_int_not_equal(
            ipsecif_input_payload(p->b.ctx, &meta, IPSECIF_IPPROTO_AH, &again.b, 2000), IPSECIF_OK);
        /* Extension headers are IPv6's only. */
        meta.family = IPSECIF_AF_INET;
        meta.src = test_addr(A4);
        meta.dst = test_addr(B4);
        assert_int_equal(
            ipsecif_input_payload(p->b.ctx, &meta, IPSECIF_IPPROTO_HOPOPTS, &again.b, 2000),
            IPSECIF_ERR_ARG);
        meta.family = IPSECIF_AF_INET6;
        meta.src = test_addr(A6);
        meta.dst = test_addr(B6);
    }
    assert_int_equal(ipsecif_input_payload(p->b.ctx, &meta, IPSECIF_IPPROTO_HOPOPTS, &tb.b, 2000),
                     IPSECIF_OK);
    assert_int_equal(p->b.mock->n_host, 3);
    assert_int_equal(p->b.mock->host[2].len, len);
    assert_memory_equal(p->b.mock->host[2].data + 8, orig + 8, len - 8);

    /* Without deliver_host, host ESP is refused, not delivered. */
    p->b.mock->port.deliver_host = NULL;
    build_udp(&tb, A4, B4, 1, 2);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_input(p->b.ctx, &tb.b, 2000), IPSECIF_ERR_POLICY);
    assert_int_equal(p->b.mock->n_host, 3);
}

/* Add an SA to one context only (NAT-T: each end sees other addresses). */
static void sa_one(struct test_ctx *t, uint32_t spi, const char *src, const char *dst, uint8_t mode,
                   uint16_t sport, uint16_t dport)
{
    struct ipsecif_sa_params sp;

    memset(&sp, 0, sizeof(sp));
    sp.proto = IPSECIF_IPPROTO_ESP;
    sp.mode = mode;
    sp.spi = spi;
    sp.src = test_addr(src);
    sp.dst = test_addr(dst);
    sp.natt_sport = sport;
    sp.natt_dport = dport;
    sp.replay_window = 64;
    sp.ealg = IPSECIF_EALG_AES_GCM16;
    sp.ekey = gcm_key;
    sp.ekey_len = sizeof(gcm_key);
    assert_int_equal(ipsecif_sa_add(t->ctx, &sp, 1000), IPSECIF_OK);
}

/* One's complement sum check of the IPv4 UDP datagram in p: 0 when sound. */
static uint16_t udp4_check(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    size_t i, ulen = len - 20;

    for (i = 12; i < 20; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    sum += IPSECIF_IPPROTO_UDP + (uint32_t)ulen;
    for (i = 20; i + 1 < len; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (i < len) {
        sum += (uint32_t)(p[i] << 8);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/*
 * RFC 3948 through a NAT: a (192.0.2.1) sends ESP in UDP from port 4500,
 * a NAT rewrites the outer source to 198.51.100.9:1024; b opens it from
 * the UDP datagram, whole or as a socket's payload, and fixes the inner
 * UDP checksum for the addresses it sees. Keepalives and IKE stay out.
 */
static void test_natt_transport(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy out = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_policy in =
        pol("198.51.100.9", 32, B4, 32, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC);
    struct ipsecif_outer_meta meta;
    struct test_buf tb, copy;
    uint8_t *w, *d;
    uint8_t ka = 0xff;

    sa_one(&p->a, 0x8001, A4, B4, IPSECIF_MODE_TRANSPORT, 4500, 4500);
    sa_one(&p->b, 0x8001, "198.51.100.9", B4, IPSECIF_MODE_TRANSPORT, 1024, 4500);
    add_req(&out, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_req(&in, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    add_pol(&p->a, &out);
    add_pol(&p->b, &in);

    build_udp(&tb, A4, B4, 1111, 2222);
    w = ipsecif_buf_data(&tb.b);
    w[26] = 0;
    w[27] = 0;
    {
        uint16_t c = udp4_check(w, tb.b.len);

        w[26] = (uint8_t)(c >> 8);
        w[27] = (uint8_t)c;
    }
    assert_int_equal(udp4_check(w, tb.b.len), 0);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    w = ipsecif_buf_data(&tb.b);
    assert_int_equal(w[9], IPSECIF_IPPROTO_UDP);
    assert_int_equal(w[20] << 8 | w[21], 4500);
    assert_int_equal(w[22] << 8 | w[23], 4500);
    assert_int_equal(w[28] << 8 | w[29], 0x0000); /* SPI high half, not a marker */
    /* The NAT. */
    memcpy(w + 12, test_addr("198.51.100.9").bytes, 4);
    w[20] = 1024 >> 8;
    w[21] = 1024 & 0xff;
    w[10] = w[11] = 0;
    {
        uint32_t sum = 0;
        size_t i;

        for (i = 0; i < 20; i += 2) {
            sum += (uint32_t)(w[i] << 8 | w[i + 1]);
        }
        while (sum >> 16) {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        w[10] = (uint8_t)(~sum >> 8);
        w[11] = (uint8_t)~sum;
    }
    test_buf_set(&copy, HEADROOM, w, tb.b.len);
    assert_int_equal(ipsecif_input(p->b.ctx, &tb.b, 2000), IPSECIF_OK);
    assert_int_equal(p->b.mock->n_host, 1);
    d = p->b.mock->host[0].data;
    assert_int_equal(d[9], IPSECIF_IPPROTO_UDP);
    assert_int_equal(d[20] << 8 | d[21], 1111);
    assert_memory_equal(d + 12, test_addr("198.51.100.9").bytes, 4);
    assert_int_equal(udp4_check(d, p->b.mock->host[0].len), 0);

    /* The same packet again, as a NAT-T socket's payload: a replay now. */
    memset(&meta, 0, sizeof(meta));
    meta.family = IPSECIF_AF_INET;
    meta.src = test_addr("198.51.100.9");
    meta.dst = test_addr(B4);
    meta.sport = 1024;
    meta.dport = 4500;
    meta.ttl = 60;
    ipsecif_buf_pull(&copy.b, 28);
    assert_int_equal(ipsecif_input_esp(p->b.ctx, &meta, &copy.b, 2000), IPSECIF_ERR_REPLAY);

    /* A keepalive is consumed; IKE behind the marker is the host's. */
    test_buf_set(&copy, HEADROOM, &ka, 1);
    assert_int_equal(ipsecif_input_esp(p->b.ctx, &meta, &copy.b, 2000), IPSECIF_OK);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_natt_keepalive, 1);
    build_udp(&copy, "198.51.100.9", B4, 1024, 4500);
    memset(ipsecif_buf_data(&copy.b) + 28, 0, 4);
    assert_int_equal(ipsecif_input(p->b.ctx, &copy.b, 2000), IPSECIF_ERR_PROTO);
    assert_int_equal(p->b.mock->n_host, 1);

    /* Plain ESP on the UDP-encapsulated SA is refused. */
    build_udp(&tb, A4, B4, 1111, 2222);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, NULL), IPSECIF_OK);
    w = ipsecif_buf_data(&tb.b);
    memcpy(w + 12, test_addr("198.51.100.9").bytes, 4);
    ipsecif_buf_pull(&tb.b, 28);
    meta.sport = meta.dport = 0;
    assert_int_equal(ipsecif_input_payload(p->b.ctx, &meta, IPSECIF_IPPROTO_ESP, &tb.b, 2000),
                     IPSECIF_ERR_POLICY);
}

/* Tunnel mode in UDP over IPv6 (its UDP checksum must be sound). */
static void test_natt_tunnel6(void **state)
{
    struct pair *p = *state;
    struct test_buf tb;
    uint8_t orig[256];
    size_t len;

    sa_one(&p->a, 0x8101, A6, B6, IPSECIF_MODE_TUNNEL, 4500, 4500);
    sa_one(&p->b, 0x8101, A6, B6, IPSECIF_MODE_TUNNEL, 4500, 4500);
    pol_both(p, "192.0.2.128", "198.51.100.0", 24, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TUNNEL,
             IPSECIF_LEVEL_REQUIRE, A6, B6);
    test_build_ping(&tb, HEADROOM, "192.0.2.130", "198.51.100.7", 30, 0);
    copy_pkt(&tb, orig, &len);
    round_trip(p, &tb, orig, len, IPSECIF_IPPROTO_UDP, 1, 1);
}

static void test_generation(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy d = pol(A4, 32, B4, 32, IPSECIF_DIR_IN, IPSECIF_ACTION_DISCARD);
    uint32_t g0 = ipsecif_host_generation(p->a.ctx), g1, g2;

    add_pol(&p->a, &d);
    g1 = ipsecif_host_generation(p->a.ctx);
    assert_int_not_equal(g0, g1);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL6_DEF_POLICY, 0), IPSECIF_OK);
    g2 = ipsecif_host_generation(p->a.ctx);
    assert_int_not_equal(g1, g2);
    assert_int_equal(ipsecif_spd_flush(p->a.ctx), 1);
    assert_int_not_equal(ipsecif_host_generation(p->a.ctx), g2);
}

/* net.inet.ipsec.used and enabled, as NetBSD's t_ipsec_sysctl and
 * ipsec_netbsd.c have them: not used before the first policy (cleartext
 * passes whatever def_policy says, ESP for a host SA is still opened), used
 * from then on even once the SPD is empty again; enabled 0 only without
 * policies, and policies added meanwhile do nothing until enabled is 1;
 * enabled 2 uses IPsec with no policy at all. */
static void test_ipsec_used(void **state)
{
    struct pair *p = *state;
    struct ipsecif_policy d = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_DISCARD);
    struct ipsecif_policy ok = pol(A4, 32, B4, 32, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC);
    struct ipsecif_host_result r;
    struct test_buf tb;
    uint32_t g;

    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_ENABLED), 1);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_USED, 1), IPSECIF_ERR_UNSUPPORTED);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_USED, 0), IPSECIF_ERR_UNSUPPORTED);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 3), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, -1), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL6_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(p->b.ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);

    /* Not used: def_policy 0 drops nothing, either way. An SA alone does
     * not make IPsec used. */
    sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, 0x6001, A4, B4, 0);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    test_build_ping(&tb, HEADROOM, A6, B6, 10, 0);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->host_out_clear, 2);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_polvio, 0);
    assert_int_equal(ipsecif_stats_get(p->b.ctx)->in_polvio, 0);

    /* a's first policy: used, and its ESP is still opened by b, which is not. */
    add_req(&ok, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, NULL, NULL);
    ok.sel.ulproto = IPSECIF_IPPROTO_UDP;
    ok.sel.dport = 7;
    g = ipsecif_host_generation(p->a.ctx);
    add_pol(&p->a, &ok);
    assert_int_not_equal(ipsecif_host_generation(p->a.ctx), g);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 1);
    build_udp(&tb, A4, B4, 1, 7);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
    assert_int_equal(r.policy_id, 0);
    /* Now def_policy 0 drops what no policy covers. */
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_DISCARD);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_polvio, 1);
    build_udp(&tb, B4, A4, 9, 1);
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);
    /* enabled 0 is refused while a policy exists; the SPD emptied, used stays. */
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_ENABLED), 1);
    assert_int_equal(ipsecif_spd_flush(p->a.ctx), 1);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 1);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_DISCARD);

    /* enabled 0: not used, and a policy added now is not applied... */
    g = ipsecif_host_generation(p->a.ctx);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_OK);
    assert_int_not_equal(ipsecif_host_generation(p->a.ctx), g);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
    add_pol(&p->a, &d);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
    assert_int_equal(r.verdict, IPSECIF_HOST_CLEAR);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_ERR_BUSY);
    /* ...until enabled is 1 again. */
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 1), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 1);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_ERR_DISCARD);

    /* enabled 2 on b, which has no policy: used, def_policy 0 applies. */
    assert_int_equal(ipsecif_sysctl_set(p->b.ctx, IPSECIF_SYSCTL_ENABLED, 2), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->b.ctx, IPSECIF_SYSCTL_USED), 1);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_ERR_POLICY);
    /* Back to 1: used stays; to 0 (no policy): not used, it passes again. */
    assert_int_equal(ipsecif_sysctl_set(p->b.ctx, IPSECIF_SYSCTL_ENABLED, 1), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->b.ctx, IPSECIF_SYSCTL_USED), 1);
    assert_int_equal(ipsecif_sysctl_set(p->b.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->b.ctx, IPSECIF_SYSCTL_USED), 0);
    build_udp(&tb, A4, B4, 1, 9);
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
}

/* A per-socket policy alone makes IPsec used (NetBSD counts its socket
 * policy list), and keeps enabled from going to 0. */
static void test_ipsec_used_by_socket(void **state)
{
    struct pair *p = *state;
    struct ipsecif_sockpolicy bp;
    struct ipsecif_sock s;

    memset(&s, 0, sizeof(s));
    s.owner = 7;
    s.handle = 3;
    s.proto = IPSECIF_IPPROTO_UDP;
    s.local.family = IPSECIF_AF_INET;
    s.lport = 500;
    memset(&bp, 0, sizeof(bp));
    bp.type = IPSECIF_SOCKPOL_BYPASS;
    bp.dir = IPSECIF_DIR_OUT;
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
    assert_int_equal(ipsecif_spd_sock_set(p->a.ctx, &s, &bp), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 1);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_sock_close(p->a.ctx, 7, 3), 1);
    assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_ENABLED, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_get(p->a.ctx, IPSECIF_SYSCTL_USED), 0);
}

/* The SPI of the ESP header right after an IPv4 header. */
static uint32_t esp_spi4(const struct test_buf *tb)
{
    const uint8_t *w = ipsecif_buf_data(&tb->b);

    assert_int_equal(w[9], IPSECIF_IPPROTO_ESP);
    return (uint32_t)w[20] << 24 | (uint32_t)w[21] << 16 | (uint32_t)w[22] << 8 | w[23];
}

/* net.key.prefered_oldsa for host traffic, as t_ipsec_misc checks it on the
 * wire: a second SA takes the traffic under 0 and not under 1; deleting the
 * newer one falls back. b opens whichever was used. */
static void test_prefered_oldsa(void **state)
{
    struct pair *p = *state;
    struct ipsecif_addr a = test_addr(A4), b = test_addr(B4);
    struct ipsecif_host_result r;
    struct test_buf tb;
    static const uint32_t want[2][3] = {{0x7001, 0x7002, 0x7003}, {0x7001, 0x7001, 0x7001}};
    uint32_t spi;
    int old;

    pol_both(p, A4, B4, 32, IPSECIF_IPPROTO_ESP, 0, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE,
             NULL, NULL);
    for (old = 0; old <= 1; old++) {
        assert_int_equal(ipsecif_sysctl_set(p->a.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, old),
                         IPSECIF_OK);
        for (spi = 0x7001; spi <= 0x7003; spi++) {
            sa_both(p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_ANY, spi, A4, B4, 0);
            build_udp(&tb, A4, B4, 1, 2);
            assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
            assert_int_equal(esp_spi4(&tb), want[old][spi - 0x7001]);
            assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 2000, &r), IPSECIF_OK);
            assert_int_equal(r.verdict, IPSECIF_HOST_PROTECTED);
        }
        /* Deleting the newest: 0 falls back to the one before, 1 stays. */
        assert_int_equal(ipsecif_sa_delete(p->a.ctx, IPSECIF_IPPROTO_ESP, &a, &b, 0x7003),
                         IPSECIF_OK);
        build_udp(&tb, A4, B4, 1, 2);
        assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
        assert_int_equal(esp_spi4(&tb), old ? 0x7001 : 0x7002);
        /* Deleting the oldest: 1 moves to the next oldest. */
        assert_int_equal(ipsecif_sa_delete(p->a.ctx, IPSECIF_IPPROTO_ESP, &a, &b, 0x7001),
                         IPSECIF_OK);
        build_udp(&tb, A4, B4, 1, 2);
        assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 2000, &r), IPSECIF_OK);
        assert_int_equal(esp_spi4(&tb), 0x7002);
        assert_int_equal(ipsecif_sa_flush(p->a.ctx, 0), 1);
        assert_int_equal(ipsecif_sa_flush(p->b.ctx, 0), 3);
    }
}

static void test_bad_input(void **state)
{
    struct pair *p = *state;
    struct test_buf tb;
    uint8_t junk[3] = {0x45, 0, 0};

    assert_int_equal(ipsecif_host_output(NULL, &tb.b, 0, NULL), IPSECIF_ERR_ARG);
    test_buf_set(&tb, HEADROOM, junk, sizeof(junk));
    assert_int_equal(ipsecif_host_output(p->a.ctx, &tb.b, 0, NULL), IPSECIF_ERR_MALFORMED);
    test_buf_set(&tb, HEADROOM, junk, sizeof(junk));
    assert_int_equal(ipsecif_host_input(p->a.ctx, &tb.b, 0, NULL), IPSECIF_ERR_MALFORMED);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->out_malformed, 1);
    assert_int_equal(ipsecif_stats_get(p->a.ctx)->in_malformed, 1);
    /* ESP with an SPI nobody has. */
    build_udp(&tb, A4, B4, 1, 2);
    ipsecif_buf_data(&tb.b)[9] = IPSECIF_IPPROTO_ESP;
    ipsecif_buf_data(&tb.b)[10] = 0;
    assert_int_equal(ipsecif_host_input(p->b.ctx, &tb.b, 0, NULL), IPSECIF_ERR_BADSPI);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transport_esp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_ah_and_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bundle_partial_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_endpoints_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_without_sa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_and_sysctl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_and_def_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipsec_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipsec_used_by_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefered_oldsa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbound_cleartext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_dispatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_natt_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_natt_tunnel6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
