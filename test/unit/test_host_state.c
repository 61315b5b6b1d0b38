/* ipsecifd -H's state file (examples/router/host_state.c): build, parse
 * and apply round trip (policies of every shape, changed sysctls, the
 * socket count, interface policies left out), the parser on bad input
 * (every truncation, versions, garbage, overlong lines, bytes, counts,
 * CRC), apply all or nothing, the file I/O (mode, owner, links, size,
 * atomic replace) and the CRC. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host_state.h"
#include "router_cmd.h"
#include "test_util.h"

#define NOW 5000
#define BUF 65536

struct fx {
    struct test_ctx t;
    struct test_ctx u; /* a second, fresh context to apply to */
    int defaults[64];
    char text[BUF];
    char text2[BUF];
    char err[RTR_STATE_ERR_SIZE];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_true(rtr_sysctl_count() <= 64);
    test_ctx_new(&f->t, NULL);
    test_ctx_new(&f->u, NULL);
    rtr_state_defaults(f->t.ctx, f->defaults);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    test_ctx_free(&f->t);
    test_ctx_free(&f->u);
    free(f);
    return 0;
}

static const char *build(struct fx *f, struct ipsecif_ctx *ctx, char *out)
{
    long n = rtr_state_build(ctx, f->defaults, out, BUF);

    assert_true(n > 0);
    assert_true((size_t)n < BUF);
    assert_int_equal(strlen(out), (size_t)n);
    return out;
}

static struct ipsecif_policy pol(uint8_t dir, const char *src, uint8_t splen, const char *dst,
                                 uint8_t dplen, uint8_t proto, uint16_t sport, uint16_t dport,
                                 uint8_t action)
{
    struct ipsecif_policy p;

    memset(&p, 0, sizeof(p));
    p.sel.src = test_addr(src);
    p.sel.dst = test_addr(dst);
    p.sel.src_plen = splen;
    p.sel.dst_plen = dplen;
    p.sel.ulproto = proto;
    p.sel.sport = sport;
    p.sel.dport = dport;
    p.dir = dir;
    p.action = action;
    p.priority = IPSECIF_PRIORITY_DEFAULT;
    return p;
}

static void add_req(struct ipsecif_policy *p, uint8_t proto, uint8_t mode, uint8_t level,
                    uint32_t reqid, const char *ts, const char *td)
{
    struct ipsecif_ipsecreq *r = &p->req[p->nreq++];

    r->proto = proto;
    r->mode = mode;
    r->level = level;
    r->reqid = reqid;
    if (ts != NULL) {
        r->tun_src = test_addr(ts);
        r->tun_dst = test_addr(td);
    }
}

/* Policies of every shape, two sysctls changed, one socket with a policy. */
static void fill(struct ipsecif_ctx *ctx)
{
    struct ipsecif_policy p;
    struct ipsecif_sock s;
    struct ipsecif_sockpolicy sp;

    p = pol(IPSECIF_DIR_OUT, "198.51.100.1", 32, "198.51.100.2", 32, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_IPSEC);
    add_req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL);
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_OK);
    p = pol(IPSECIF_DIR_IN, "2001:db8:1::", 48, "2001:db8:2::1", 128, IPSECIF_IPPROTO_TCP, 1234,
            443, IPSECIF_ACTION_NONE);
    p.priority = 0;
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_OK);
    p = pol(IPSECIF_DIR_OUT, "2001:db8::1", 128, "2001:db8::2", 128, IPSECIF_IPPROTO_ICMPV6, 128,
            IPSECIF_ICMP_ANY, IPSECIF_ACTION_IPSEC);
    p.priority = 0xffffffffu;
    add_req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_UNIQUE, 7, "2001:db8::1",
            "2001:db8::2");
    add_req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_DEFAULT, 0, NULL, NULL);
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_OK);
    p = pol(IPSECIF_DIR_FWD, "192.0.2.0", 24, "203.0.113.0", 24, IPSECIF_IPPROTO_UDP, 0, 53,
            IPSECIF_ACTION_DISCARD);
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_OK);
    /* Same priority as the first: their order must come back. */
    p = pol(IPSECIF_DIR_OUT, "198.51.100.0", 24, "0.0.0.0", 0, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_IPSEC);
    add_req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_USE, 0x4000, "192.0.2.1",
            "192.0.2.2");
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(ctx, IPSECIF_SYSCTL6_ESP_TRANS_DEFLEV, 2), IPSECIF_OK);
    memset(&s, 0, sizeof(s));
    s.owner = 9;
    s.handle = 4;
    s.proto = IPSECIF_IPPROTO_UDP;
    s.local.family = IPSECIF_AF_INET;
    s.lport = 500;
    memset(&sp, 0, sizeof(sp));
    sp.dir = IPSECIF_DIR_IN;
    sp.type = IPSECIF_SOCKPOL_BYPASS;
    assert_int_equal(ipsecif_spd_sock_set(ctx, &s, &sp), IPSECIF_OK);
}

struct pols {
    struct ipsecif_policy p[16];
    size_t n;
};

static int collect(void *arg, const struct ipsecif_policy *p)
{
    struct pols *c = arg;

    assert_true(c->n < 16);
    c->p[c->n++] = *p;
    return 0;
}

static void assert_same_spd(struct ipsecif_ctx *a, struct ipsecif_ctx *b)
{
    struct pols pa;
    struct pols pb;
    size_t i;
    uint8_t k;

    memset(&pa, 0, sizeof(pa));
    memset(&pb, 0, sizeof(pb));
    assert_int_equal(ipsecif_spd_walk(a, collect, &pa), 0);
    assert_int_equal(ipsecif_spd_walk(b, collect, &pb), 0);
    assert_int_equal(pa.n, pb.n);
    for (i = 0; i < pa.n; i++) {
        const struct ipsecif_policy *x = &pa.p[i];
        const struct ipsecif_policy *y = &pb.p[i];

        assert_memory_equal(&x->sel, &y->sel, sizeof(x->sel));
        assert_int_equal(x->dir, y->dir);
        assert_int_equal(x->action, y->action);
        assert_int_equal(x->priority, y->priority);
        assert_int_equal(x->nreq, y->nreq);
        for (k = 0; k < x->nreq; k++) {
            assert_memory_equal(&x->req[k], &y->req[k], sizeof(x->req[k]));
        }
    }
}

static void round_trip(void **state)
{
    struct fx *f = *state;
    struct rtr_state st;
    const char *t1 = NULL;
    const char *t2;
    size_t i;

    fill(f->t.ctx);
    t1 = build(f, f->t.ctx, f->text);
    assert_non_null(strstr(t1, "\nipsecifd-state 1\n"));
    assert_non_null(strstr(t1, "\nsysctl net.inet.ipsec.def_policy 0\n"));
    assert_non_null(strstr(t1, "\nsysctl net.inet6.ipsec6.esp_trans_deflev 2\n"));
    /* Unchanged sysctls are left out. */
    assert_null(strstr(t1, "net.inet6.ipsec6.def_policy"));
    assert_non_null(strstr(t1, "\npolicy out prio 4294967295 src 2001:db8::1/128 sport 128 dst "
                               "2001:db8::2/128 dport 65535 proto 58 ipsec "
                               "esp/tunnel/2001:db8::1-2001:db8::2/unique/7 "
                               "ah/transport/-/default/0\n"));
    assert_non_null(strstr(t1, "\npolicy fwd prio 2147483648 src 192.0.2.0/24 sport 0 dst "
                               "203.0.113.0/24 dport 53 proto 17 discard\n"));
    assert_non_null(strstr(t1, "\nsockets 1\nend 8 "));
    memset(&st, 0, sizeof(st));
    assert_int_equal(rtr_state_parse(t1, strlen(t1), 64, &st, f->err), 0);
    assert_string_equal(f->err, "");
    assert_int_equal(st.npols, 5);
    assert_int_equal(st.nsysctls, 2);
    assert_int_equal(st.sockets, 1);
    assert_int_equal(rtr_state_apply(f->u.ctx, &st, NOW, f->err), 0);
    rtr_state_free(&st);
    assert_same_spd(f->t.ctx, f->u.ctx);
    for (i = 0; i < rtr_sysctl_count(); i++) {
        assert_int_equal(rtr_sysctl_read(f->u.ctx, i), rtr_sysctl_read(f->t.ctx, i));
    }
    /* Per-socket policies are counted, never restored. */
    assert_int_equal(ipsecif_spd_sock_count(f->u.ctx), 0);
    t2 = build(f, f->u.ctx, f->text2);
    assert_non_null(strstr(t2, "\nsockets 0\n"));
    assert_null(strstr(t2, "\nsockets 1\n"));
}

/* enabled and prefered_oldsa come back; used is the library's own (policies
 * make it 1) and the ipsec6 names of enabled and used are not written. */
static void enabled_used_oldsa(void **state)
{
    struct fx *f = *state;
    struct rtr_state st;
    const char *t1;

    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ENABLED, IPSECIF_IPSEC_ALWAYS),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, 1),
                     IPSECIF_OK);
    fill(f->t.ctx);
    t1 = build(f, f->t.ctx, f->text);
    assert_non_null(strstr(t1, "\nsysctl net.inet.ipsec.enabled 2\n"));
    assert_non_null(strstr(t1, "\nsysctl net.key.prefered_oldsa 1\n"));
    assert_null(strstr(t1, ".used "));
    assert_null(strstr(t1, "ipsec6.enabled"));
    memset(&st, 0, sizeof(st));
    assert_int_equal(rtr_state_parse(t1, strlen(t1), 64, &st, f->err), 0);
    assert_int_equal(rtr_state_apply(f->u.ctx, &st, NOW, f->err), 0);
    rtr_state_free(&st);
    assert_int_equal(ipsecif_sysctl_get(f->u.ctx, IPSECIF_SYSCTL_ENABLED), IPSECIF_IPSEC_ALWAYS);
    assert_int_equal(ipsecif_sysctl_get(f->u.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA), 1);
    assert_int_equal(ipsecif_sysctl_get(f->u.ctx, IPSECIF_SYSCTL_USED), 1);
}

static void fresh_and_owned(void **state)
{
    struct fx *f = *state;
    struct ipsecif_addr a = test_addr("198.51.100.1");
    struct ipsecif_addr b = test_addr("198.51.100.2");
    struct ipsecif_if *ifp;
    struct rtr_state st;
    const char *t;
    char expect[256];

    t = build(f, f->t.ctx, f->text);
    snprintf(expect, sizeof(expect),
             "# ipsecifd host policy state: SPD and sysctls, no keys; written by the daemon\n"
             "ipsecifd-state 1\nsockets 0\nend 1 %08x\n",
             rtr_state_crc32(t, strlen(t) - strlen("end 1 00000000\n")));
    assert_string_equal(t, expect);
    /* An interface's four policies are not written. */
    assert_int_equal(ipsecif_if_create(f->t.ctx, "ipsec0", &ifp), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(f->t.ctx, ifp, &a, 0, &b, 0, NOW), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_count(f->t.ctx), 4);
    assert_string_equal(build(f, f->t.ctx, f->text2), expect);
    memset(&st, 0, sizeof(st));
    assert_int_equal(rtr_state_parse(t, strlen(t), 64, &st, f->err), 0);
    assert_int_equal(st.npols, 0);
    rtr_state_free(&st);
    /* Without defaults every sysctl is written. */
    assert_true(rtr_state_build(f->t.ctx, NULL, f->text, BUF) > 0);
    assert_non_null(strstr(f->text, "\nsysctl net.inet6.ipsec6.def_policy 1\n"));
    /* Cut short: the length is still the whole text's. */
    {
        long whole = rtr_state_build(f->t.ctx, f->defaults, NULL, 0);
        char small[16];

        assert_int_equal(whole, (long)strlen(expect));
        assert_int_equal(rtr_state_build(f->t.ctx, f->defaults, small, sizeof(small)), whole);
        assert_int_equal(strlen(small), sizeof(small) - 1);
    }
    assert_int_equal(rtr_state_build(NULL, f->defaults, f->text, BUF), -1);
}

/* body (header and records) with a correct end line after it. */
static const char *seal(char *out, const char *body, size_t records)
{
    snprintf(out, BUF, "%send %lu %08x\n", body, (unsigned long)records,
             rtr_state_crc32(body, strlen(body)));
    return out;
}

static void expect_bad(struct fx *f, const char *text, size_t len, const char *needle)
{
    struct rtr_state st;
    int rc = rtr_state_parse(text, len, 8, &st, f->err);

    if (rc != -1 || strstr(f->err, needle) == NULL) {
        fail_msg("expected an error with '%s', got %d '%s' for\n%.*s", needle, rc, f->err, (int)len,
                 text);
    }
    rtr_state_free(&st);
    assert_null(st.pols);
}

#define HDR "ipsecifd-state 1\n"
#define P1                                                                                         \
    "policy out prio 2147483648 src 198.51.100.1/32 sport 0 dst 198.51.100.2/32 dport 0 proto "    \
    "255 ipsec esp/transport/-/require/0\n"

static void bad_input(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *body;
        size_t records;
        const char *needle;
    } cases[] = {
        {"ipsecifd-state 2\nsockets 0\n", 1, "format version '2'"},
        {"ipsecifd-state 01x\nsockets 0\n", 1, "format version"},
        {"ipsecifd-state\nsockets 0\n", 1, "not an ipsecifd state file"},
        {"hello world\n", 0, "line 1: not an ipsecifd state file"},
        {HDR "sockets 0\n", 2, "2 records announced, 1 found"},
        {HDR "garbage here\nsockets 0\n", 2, "line 2: unknown word 'garbage'"},
        {HDR P1, 1, "no sockets line"},
        {HDR "sockets 0\n" P1, 2, "line 3: 'policy' after the sockets line"},
        {HDR "sockets x\n", 1, "sockets: needs a number"},
        {HDR "sysctl net.inet.ipsec.def_policy 0\nsysctl net.inet.ipsec.def_policy 1\nsockets 0\n",
         3, "given twice"},
        {HDR "sysctl net.inet.ipsec.nonesuch 0\nsockets 0\n", 2, "unknown name"},
        /* Read-only, or a second name: never written, so never read. */
        {HDR "sysctl net.inet.ipsec.used 1\nsockets 0\n", 2, "not kept in the state file"},
        {HDR "sysctl net.inet6.ipsec6.enabled 2\nsockets 0\n", 2, "not kept in the state file"},
        {HDR "sysctl net.inet.ipsec.def_policy 256\nsockets 0\n", 2, "bad value '256'"},
        {HDR "sysctl net.inet.ipsec.def_policy\nsockets 0\n", 2, "needs NAME VALUE"},
        {HDR "sockets  0\n", 1, "empty word"},
        {HDR "sockets 0 \n", 1, "empty word"},
        {HDR "policy in prio 1\nsockets 0\n", 2, "too few words"},
        {HDR "policy up prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 none\n"
             "sockets 0\n",
         2, "unknown direction 'up'"},
        {HDR "policy in prio 4294967296 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto "
             "255 none\nsockets 0\n",
         2, "bad priority"},
        {HDR "policy in prio 1 src 192.0.2.1/33 sport 0 dst 192.0.2.2/32 dport 0 proto 255 none\n"
             "sockets 0\n",
         2, "bad source or destination prefix"},
        {HDR "policy in prio 1 src 192.0.2.1 sport 0 dst 192.0.2.2/32 dport 0 proto 255 none\n"
             "sockets 0\n",
         2, "bad source or destination prefix"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 2001:db8::1/128 dport 0 proto 255 "
             "none\nsockets 0\n",
         2, "bad source or destination prefix"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 65536 dst 192.0.2.2/32 dport 0 proto 255 "
             "none\nsockets 0\n",
         2, "bad source port"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport -1 proto 255 none\n"
             "sockets 0\n",
         2, "bad destination port"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 256 none\n"
             "sockets 0\n",
         2, "bad protocol"},
        {HDR "policy in prio 1 source 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 "
             "none\nsockets 0\n",
         2, "'source' where 'src' belongs"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 bypass\n"
             "sockets 0\n",
         2, "unknown action 'bypass'"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec\n"
             "sockets 0\n",
         2, "ipsec takes 1 to"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 none "
             "esp/transport/-/require/0\nsockets 0\n",
         2, "none takes no requests"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/transport/-/require/0 esp/transport/-/require/0 esp/transport/-/require/0\n"
             "sockets 0\n",
         2, "ipsec takes 1 to"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "ipcomp/transport/-/require/0\nsockets 0\n",
         2, "unknown protocol 'ipcomp'"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/beet/-/require/0\nsockets 0\n",
         2, "unknown mode 'beet'"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/tunnel/192.0.2.1-2001:db8::1/require/0\nsockets 0\n",
         2, "bad endpoints"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/tunnel/192.0.2.1/require/0\nsockets 0\n",
         2, "bad endpoints"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/tunnel/require/0\nsockets 0\n",
         2, "not PROTO/MODE/ENDPOINTS/LEVEL/REQID"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/transport/-/required/0\nsockets 0\n",
         2, "unknown level 'required'"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/transport/-/unique/x\nsockets 0\n",
         2, "bad request id"},
        {HDR "policy in prio 1 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 proto 255 ipsec "
             "esp/transport/-/unique/1/2\nsockets 0\n",
         2, "not PROTO/MODE/ENDPOINTS/LEVEL/REQID"},
        {HDR "sockets 0\nsockets 0\n", 2, "'sockets' after the sockets line"},
        /* More policies than the capacity (8 in expect_bad). */
        {HDR P1 P1 P1 P1 P1 P1 P1 P1 P1 "sockets 0\n", 10, "line 10: more than 8 policies"},
    };
    char buf[BUF];
    char line[2100];
    size_t i;
    size_t n;
    const char *good;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        seal(buf, cases[i].body, cases[i].records);
        expect_bad(f, buf, strlen(buf), cases[i].needle);
    }
    /* The CRC, the end line and what follows it. */
    good = seal(f->text, HDR P1 "sockets 0\n", 2);
    {
        struct rtr_state st;

        assert_int_equal(rtr_state_parse(good, strlen(good), 8, &st, f->err), 0);
        assert_int_equal(st.npols, 1);
        rtr_state_free(&st);
    }
    /* One character changed: 198.51.100.3 is valid, but not what was written. */
    memcpy(buf, good, strlen(good) + 1);
    strstr(buf, "198.51.100.2/32")[11] = '3';
    expect_bad(f, buf, strlen(buf), "(changed or damaged)");
    memcpy(buf, good, strlen(good) + 1);
    snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "policy");
    expect_bad(f, buf, strlen(buf), "bytes after the end line");
    memcpy(buf, good, strlen(good) + 1);
    *strstr(buf, "end ") = 'E';
    expect_bad(f, buf, strlen(buf), "line 4: 'End' after the sockets line");
    memcpy(buf, good, strlen(good) + 1);
    *(strrchr(buf, ' ') + 1) = 'g';
    expect_bad(f, buf, strlen(buf), "end: bad CRC");
    memcpy(buf, good, strlen(good) + 1);
    memcpy(strstr(buf, "end 2"), "end x", 5);
    expect_bad(f, buf, strlen(buf), "end: needs RECORDS CRC");
    /* Every truncation of a good file is refused. */
    for (n = 0; n < strlen(good); n++) {
        struct rtr_state st;

        if (rtr_state_parse(good, n, 8, &st, f->err) != -1) {
            fail_msg("accepted %lu of %lu bytes", (unsigned long)n, (unsigned long)strlen(good));
        }
        rtr_state_free(&st);
    }
    expect_bad(f, good, strlen(good) - 1, "no newline at its end");
    expect_bad(f, good, strlen(good) - strlen(strstr(good, "end ")), "no end line");
    expect_bad(f, "", 0, "empty: no header");
    expect_bad(f, "# only a comment\n", 17, "empty: no header");
    /* Overlong lines, at the header and among the records. */
    memset(line, 'a', sizeof(line) - 2);
    line[sizeof(line) - 2] = '\n';
    line[sizeof(line) - 1] = '\0';
    expect_bad(f, line, strlen(line), "line 1: longer than 1023 bytes");
    snprintf(buf, sizeof(buf), HDR "%s", line);
    expect_bad(f, buf, strlen(buf), "line 2: longer than 1023 bytes");
    /* Bytes that are not printable ASCII: NUL, tab, 0xff. */
    {
        static const char nul[] = HDR "sockets 0\0\n";
        static const char tab[] = HDR "sockets\t0\n";
        static const char high[] = HDR "sockets 0\xff\n";

        expect_bad(f, nul, sizeof(nul) - 1, "byte 0x00");
        expect_bad(f, tab, sizeof(tab) - 1, "byte 0x09");
        expect_bad(f, high, sizeof(high) - 1, "byte 0xff");
    }
    /* A NULL text with a length. */
    expect_bad(f, NULL, 5, "no text");
}

/* A policy that cannot be added: nothing of the state stays. */
static void apply_all_or_nothing(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    struct rtr_state st;
    char body[1024];

    p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.2", 32, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_NONE);
    assert_int_equal(ipsecif_spd_add(f->u.ctx, &p, NOW, NULL), IPSECIF_OK);
    snprintf(body, sizeof(body),
             HDR "sysctl net.inet.ipsec.def_policy 0\n" P1
                 "policy in prio 2147483648 src 192.0.2.1/32 sport 0 dst 192.0.2.2/32 dport 0 "
                 "proto 255 discard\nsockets 0\n");
    seal(f->text, body, 4);
    memset(&st, 0, sizeof(st));
    assert_int_equal(rtr_state_parse(f->text, strlen(f->text), 8, &st, f->err), 0);
    assert_int_equal(rtr_state_apply(f->u.ctx, &st, NOW, f->err), -1);
    assert_string_equal(f->err, "policy 2 of 2: policy already exists");
    assert_int_equal(ipsecif_spd_count(f->u.ctx), 1);
    assert_int_equal(ipsecif_sysctl_get(f->u.ctx, IPSECIF_SYSCTL_DEF_POLICY), 1);
    rtr_state_free(&st);
}

static void files(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/test_host_state.XXXXXX";
    char path[128];
    char link[128];
    char tmp[160];
    struct stat sb;
    char *text = NULL;
    size_t len = 0;
    const char *good;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a.state", dir);
    snprintf(link, sizeof(link), "%s/b.state", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(rtr_state_read_file(path, 4096, &text, &len, f->err), 0);
    good = build(f, f->t.ctx, f->text);
    /* A stale temporary file of a crash is replaced, never followed. */
    assert_int_equal(symlink("/nonexistent/target", tmp), 0);
    umask(0);
    assert_int_equal(rtr_state_write_file(path, good, strlen(good)), 0);
    umask(022);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(lstat(tmp, &sb), -1);
    assert_int_equal(rtr_state_read_file(path, 4096, &text, &len, f->err), 1);
    assert_int_equal(len, strlen(good));
    assert_memory_equal(text, good, len);
    free(text);
    /* Replaced whole. */
    assert_int_equal(rtr_state_write_file(path, "x\n", 2), 0);
    assert_int_equal(rtr_state_read_file(path, 4096, &text, &len, f->err), 1);
    assert_int_equal(len, 2);
    free(text);
    /* Too big for the limit. */
    assert_int_equal(rtr_state_read_file(path, 1, &text, &len, f->err), -1);
    assert_non_null(strstr(f->err, "more than the 1"));
    assert_null(text);
    /* Loose modes, links, not a file. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(rtr_state_read_file(path, 4096, &text, &len, f->err), -1);
    assert_non_null(strstr(f->err, "mode 0644"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(rtr_state_read_file(link, 4096, &text, &len, f->err), -1);
    assert_string_equal(f->err, "a symbolic link");
    assert_int_equal(rtr_state_read_file(dir, 4096, &text, &len, f->err), -1);
    /* A directory that does not exist: the write fails, nothing is left. */
    snprintf(tmp, sizeof(tmp), "%s/no/such.state", dir);
    assert_int_equal(rtr_state_write_file(tmp, "x\n", 2), -1);
    unlink(link);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

static void paths_and_crc(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(rtr_state_path("/run/ipsecifd.sock", out, sizeof(out)), 0);
    assert_string_equal(out, "/run/ipsecifd.state");
    assert_int_equal(rtr_state_path("/tmp/ctl", out, sizeof(out)), 0);
    assert_string_equal(out, "/tmp/ctl.state");
    assert_int_equal(rtr_state_path("/run/ipsecifd.sock", out, 10), -1);
    /* The check value of CRC-32/ISO-HDLC. */
    assert_int_equal(rtr_state_crc32("123456789", 9), 0xcbf43926u);
    assert_int_equal(rtr_state_crc32("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(enabled_used_oldsa, setup, teardown),
        cmocka_unit_test_setup_teardown(fresh_and_owned, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(files, setup, teardown),
        cmocka_unit_test(paths_and_crc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
