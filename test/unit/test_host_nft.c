/* ipsecifd -H's nftables table (examples/router/host_nft.c): the fixed
 * accepts, per-socket policies, fwd and in policies in lookup order with
 * their verdicts (levels resolved through the sysctls), selectors, the
 * def_policy rules, one accept while IPsec is not used, NAT-T ports,
 * truncation and bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host_nft.h"
#include "test_util.h"

#define NOW 5000
#define BUF 65536

struct fx {
    struct test_ctx t;
    char text[BUF];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    test_ctx_new(&f->t, NULL);
    /* The whole table even while the SPD is empty (test_not_used: without). */
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ENABLED, IPSECIF_IPSEC_ALWAYS),
                     IPSECIF_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    test_ctx_free(&f->t);
    free(f);
    return 0;
}

/* Build with the device ipsech0 and no NAT-T ports. */
static const char *build(struct fx *f)
{
    struct rtr_hostnft_opts o = {"ipsech0", NULL, 0};
    long n = rtr_hostnft_build(f->t.ctx, &o, f->text, sizeof(f->text));

    assert_true(n > 0);
    assert_true((size_t)n < sizeof(f->text));
    assert_int_equal(strlen(f->text), (size_t)n);
    return f->text;
}

/* The position of a whole line in the text; fails the test if absent. */
static size_t line_at(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return (size_t)(p - text);
        }
        p++;
    }
    fail_msg("line not found: '%s' in\n%s", line, text);
    return 0;
}

/* line_at() of the line the format makes. */
static size_t rule_at(const char *text, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    return line_at(text, line);
}

static bool has_text(const char *text, const char *s)
{
    return strstr(text, s) != NULL;
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

static void req(struct ipsecif_policy *p, uint8_t proto, uint8_t mode, uint8_t level)
{
    struct ipsecif_ipsecreq *r = &p->req[p->nreq++];

    p->action = IPSECIF_ACTION_IPSEC;
    memset(r, 0, sizeof(*r));
    r->proto = proto;
    r->mode = mode;
    r->level = level;
    if (mode == IPSECIF_MODE_TUNNEL) {
        r->tun_src =
            test_addr(p->sel.src.family == IPSECIF_AF_INET ? "198.51.100.2" : "2001:db8::2");
        r->tun_dst =
            test_addr(p->sel.src.family == IPSECIF_AF_INET ? "198.51.100.1" : "2001:db8::1");
    }
}

static uint32_t add(struct fx *f, const struct ipsecif_policy *p)
{
    uint32_t id = 0;

    assert_int_equal(ipsecif_spd_add(f->t.ctx, p, NOW, &id), IPSECIF_OK);
    return id;
}

/* ---- Tests ---- */

static void test_empty(void **state)
{
    struct fx *f = *state;
    const char *t = build(f);
    size_t a;
    size_t b;
    size_t c;
    size_t d;
    size_t e;

    /* One transaction: the chain declared, flushed, filled. */
    assert_true(has_text(t, "table inet ipsecif_host {\n  chain prerouting { type filter hook "
                            "prerouting priority raw; policy accept; }\n}\n"
                            "flush chain inet ipsecif_host prerouting\n"));
    a = line_at(t, "    iifname \"ipsech0\" counter accept comment \"opened by the daemon\"");
    b = line_at(t, "    iif lo counter accept");
    c = line_at(t, "    meta l4proto { esp, ah } counter accept comment \"ESP and AH: to the "
                   "daemon\"");
    d = line_at(t, "    meta nfproto ipv4 counter accept comment \"def_policy 1\"");
    e = line_at(t, "    meta nfproto ipv6 counter accept comment \"def_policy 1\"");
    assert_true(a < b && b < c && c < d && d < e);
    assert_true(has_text(t, "nd-neighbor-solicit"));
    assert_false(has_text(t, "NAT-T"));
    assert_false(has_text(t, "comment \"policy"));
    /* Every rule counts. */
    assert_true(has_text(t, "icmpv6 type { nd-router-solicit, nd-router-advert, "
                            "nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } counter "
                            "accept"));
}

static void test_def_policy_and_natt(void **state)
{
    struct fx *f = *state;
    uint16_t ports[] = {4500, 4600};
    struct rtr_hostnft_opts o = {"ipsech0", ports, 2};

    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    assert_true(rtr_hostnft_build(f->t.ctx, &o, f->text, sizeof(f->text)) > 0);
    line_at(f->text, "    meta nfproto ipv4 counter drop comment \"def_policy 0\"");
    line_at(f->text, "    meta nfproto ipv6 counter accept comment \"def_policy 1\"");
    line_at(f->text, "    udp dport { 4500, 4600 } counter accept comment \"NAT-T\"");
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL6_DEF_POLICY, 0), IPSECIF_OK);
    build(f);
    line_at(f->text, "    meta nfproto ipv6 counter drop comment \"def_policy 0\"");
}

static void test_verdicts(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    static const char *const verdicts[] = {"drop", "accept", "drop", "accept", "drop", "accept"};
    uint32_t id[6];
    int i;

    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 22,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE);
    id[0] = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 23,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_USE);
    id[1] = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 24,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_USE);
    req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE);
    p.req[1].reqid = 100;
    id[2] = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 25,
            IPSECIF_ACTION_NONE);
    id[3] = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 26,
            IPSECIF_ACTION_DISCARD);
    id[4] = add(f, &p);
    /* Level default follows esp_trans_deflev: 1 (the library's default) use. */
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "198.51.100.1", 32, IPSECIF_IPPROTO_TCP, 0, 27,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_DEFAULT);
    id[5] = add(f, &p);

    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 1), IPSECIF_OK);
    build(f);
    for (i = 0; i < 6; i++) {
        rule_at(f->text,
                "    meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr 198.51.100.1 meta "
                "l4proto 6 th dport %d counter %s comment \"policy in %u\"",
                22 + i, verdicts[i], id[i]);
    }
    /* esp_trans_deflev 2 requires: the default-level policy drops now. */
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 2), IPSECIF_OK);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr 198.51.100.1 meta l4proto 6 "
            "th dport 27 counter drop comment \"policy in %u\"",
            id[5]);
}

static void test_levels_by_family_and_mode(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    uint32_t v6;
    uint32_t ah;

    p = pol(IPSECIF_DIR_IN, "2001:db8:b::", 64, "2001:db8:a::", 64, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_DEFAULT);
    v6 = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "192.0.2.0", 24, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_DEFAULT);
    ah = add(f, &p);
    /* Only the IPv6 ESP tunnel and IPv4 AH tunnel defaults count. */
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ESP_NET_DEFLEV, 2), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL6_ESP_NET_DEFLEV, 1), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_AH_NET_DEFLEV, 1), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL6_AH_NET_DEFLEV, 2), IPSECIF_OK);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv6 ip6 saddr 2001:db8:b::/64 ip6 daddr 2001:db8:a::/64 counter "
            "accept comment \"policy in %u\"",
            v6);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr 192.0.2.0/24 counter accept "
            "comment \"policy in %u\"",
            ah);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL6_ESP_NET_DEFLEV, 2), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_AH_NET_DEFLEV, 2), IPSECIF_OK);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv6 ip6 saddr 2001:db8:b::/64 ip6 daddr 2001:db8:a::/64 counter "
            "drop comment \"policy in %u\"",
            v6);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr 192.0.2.0/24 counter drop "
            "comment \"policy in %u\"",
            ah);
}

static void test_order(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    size_t at[4];
    uint32_t late;
    uint32_t early;
    uint32_t fwd;

    p = pol(IPSECIF_DIR_IN, "203.0.113.5", 32, "192.0.2.0", 24, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_DISCARD);
    p.priority = IPSECIF_PRIORITY_DEFAULT + 10; /* later in lookup order */
    late = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "203.0.113.0", 24, "192.0.2.0", 24, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_NONE);
    early = add(f, &p);
    p = pol(IPSECIF_DIR_FWD, "203.0.113.0", 24, "192.0.2.0", 24, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_NONE);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_REQUIRE);
    fwd = add(f, &p);
    /* Outbound policies are not the table's business. */
    p = pol(IPSECIF_DIR_OUT, "192.0.2.0", 24, "203.0.113.0", 24, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_DISCARD);
    add(f, &p);
    build(f);
    at[0] = line_at(f->text, "    meta l4proto { esp, ah } counter accept comment \"ESP and AH: to "
                             "the daemon\"");
    at[1] =
        rule_at(f->text,
                "    fib daddr type != local meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr "
                "192.0.2.0/24 counter drop comment \"policy fwd %u\"",
                fwd);
    at[2] = rule_at(
        f->text,
        "    meta nfproto ipv4 ip saddr 203.0.113.0/24 ip daddr 192.0.2.0/24 counter accept "
        "comment \"policy in %u\"",
        early);
    at[3] = rule_at(f->text,
                    "    meta nfproto ipv4 ip saddr 203.0.113.5 ip daddr 192.0.2.0/24 counter drop "
                    "comment \"policy in %u\"",
                    late);
    assert_true(at[0] < at[1] && at[1] < at[2] && at[2] < at[3]);
    assert_false(has_text(f->text, "policy out"));
}

static void test_selectors(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    uint32_t id;

    /* ICMP: type in sport, code in dport, 0xffff any. */
    p = pol(IPSECIF_DIR_IN, "0.0.0.0", 0, "0.0.0.0", 0, IPSECIF_IPPROTO_ICMP, 8, IPSECIF_ICMP_ANY,
            IPSECIF_ACTION_DISCARD);
    id = add(f, &p);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv4 meta l4proto icmp icmp type 8 counter drop comment \"policy in "
            "%u\"",
            id);
    /* ICMP type 0 is a type, not "any". */
    p = pol(IPSECIF_DIR_IN, "2001:db8::", 32, "::", 0, IPSECIF_IPPROTO_ICMPV6, 0, 0,
            IPSECIF_ACTION_DISCARD);
    id = add(f, &p);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv6 ip6 saddr 2001:db8::/32 meta l4proto icmpv6 icmpv6 type 0 "
            "icmpv6 code 0 counter drop comment \"policy in %u\"",
            id);
    /* UDP with both ports. */
    p = pol(IPSECIF_DIR_IN, "2001:db8::1", 128, "2001:db8::2", 128, IPSECIF_IPPROTO_UDP, 500, 4500,
            IPSECIF_ACTION_NONE);
    id = add(f, &p);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv6 ip6 saddr 2001:db8::1 ip6 daddr 2001:db8::2 meta l4proto 17 th "
            "sport 500 th dport 4500 counter accept comment \"policy in %u\"",
            id);
    /* A protocol without ports: just the protocol. */
    p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.2", 32, 47, 0, 0, IPSECIF_ACTION_DISCARD);
    id = add(f, &p);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 192.0.2.1 ip daddr 192.0.2.2 meta l4proto 47 counter "
            "drop comment \"policy in %u\"",
            id);
}

static void test_any_proto_with_ports(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    char line[256];
    uint32_t id;
    uint32_t big;

    /* The library compares the ports of TCP, UDP ... and ICMP's type and
     * code with them: two rules. */
    p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.2", 32, IPSECIF_IPPROTO_ANY, 0, 3,
            IPSECIF_ACTION_DISCARD);
    id = add(f, &p);
    p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.3", 32, IPSECIF_IPPROTO_ANY, 0, 4500,
            IPSECIF_ACTION_DISCARD);
    big = add(f, &p);
    build(f);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 192.0.2.1 ip daddr 192.0.2.2 meta l4proto { tcp, udp, "
            "dccp, sctp, udplite } th dport 3 counter drop comment \"policy in %u\"",
            id);
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 192.0.2.1 ip daddr 192.0.2.2 meta l4proto icmp icmp "
            "code 3 counter drop comment \"policy in %u\"",
            id);
    /* 4500 is no ICMP code: one rule. */
    snprintf(line, sizeof(line), "meta l4proto icmp icmp code 4500");
    assert_false(has_text(f->text, line));
    rule_at(f->text,
            "    meta nfproto ipv4 ip saddr 192.0.2.1 ip daddr 192.0.2.3 meta l4proto { tcp, udp, "
            "dccp, sctp, udplite } th dport 4500 counter drop comment \"policy in %u\"",
            big);
}

static void test_sockets(void **state)
{
    struct fx *f = *state;
    struct ipsecif_sockpolicy bypass;
    struct ipsecif_sockpolicy ipsec;
    struct ipsecif_sockpolicy outonly;
    struct ipsecif_sock any;
    struct ipsecif_sock one;
    struct ipsecif_sock out;
    struct ipsecif_sock unbound;
    struct ipsecif_policy p;
    size_t a;
    size_t b;
    size_t c;
    size_t d;

    memset(&bypass, 0, sizeof(bypass));
    bypass.dir = IPSECIF_DIR_IN;
    bypass.type = IPSECIF_SOCKPOL_BYPASS;
    memset(&ipsec, 0, sizeof(ipsec));
    ipsec.dir = IPSECIF_DIR_IN;
    ipsec.type = IPSECIF_SOCKPOL_IPSEC;
    ipsec.nreq = 1;
    ipsec.req[0].proto = IPSECIF_IPPROTO_ESP;
    ipsec.req[0].mode = IPSECIF_MODE_TRANSPORT;
    ipsec.req[0].level = IPSECIF_LEVEL_REQUIRE;
    outonly = bypass;
    outonly.dir = IPSECIF_DIR_OUT;
    memset(&any, 0, sizeof(any));
    any.owner = 7;
    any.handle = 3;
    any.proto = IPSECIF_IPPROTO_UDP;
    any.local.family = IPSECIF_AF_INET;
    any.lport = 500;
    one = any;
    one.handle = 4;
    one.proto = IPSECIF_IPPROTO_ANY;
    one.local = test_addr("198.51.100.1");
    one.lport = 4500;
    out = any;
    out.handle = 5;
    out.lport = 600;
    unbound = any;
    unbound.handle = 6;
    unbound.lport = 0;
    /* The wildcard one first, so that the order below is the table's own. */
    assert_int_equal(ipsecif_spd_sock_set(f->t.ctx, &any, &bypass), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_set(f->t.ctx, &one, &ipsec), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_set(f->t.ctx, &out, &outonly), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_set(f->t.ctx, &unbound, &bypass), IPSECIF_OK);
    p = pol(IPSECIF_DIR_IN, "0.0.0.0", 0, "0.0.0.0", 0, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_DISCARD);
    add(f, &p);
    build(f);
    a = line_at(f->text, "    icmpv6 type { nd-router-solicit, nd-router-advert, "
                         "nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } counter accept "
                         "comment \"neighbour discovery\"");
    /* A socket bound to an address before one bound to any. */
    b = line_at(f->text, "    fib daddr type local meta nfproto ipv4 ip daddr 198.51.100.1 meta "
                         "l4proto { tcp, udp, dccp, sctp, udplite } th dport 4500 counter drop "
                         "comment \"socket ipsec 7/4\"");
    c = line_at(f->text, "    fib daddr type local meta nfproto ipv4 meta l4proto 17 th dport 500 "
                         "counter accept comment \"socket bypass 7/3\"");
    d = line_at(f->text, "    meta nfproto ipv4 counter drop comment \"policy in 1\"");
    assert_true(a < b && b < c && c < d);
    /* Outbound only and not yet bound: nothing. */
    assert_false(has_text(f->text, "th dport 600"));
    assert_false(has_text(f->text, "7/6"));
}

static void test_text_follows_generation(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p;
    char before[BUF];
    uint32_t g0 = ipsecif_host_generation(f->t.ctx);

    build(f);
    memcpy(before, f->text, sizeof(before));
    p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.2", 32, IPSECIF_IPPROTO_ANY, 0, 0,
            IPSECIF_ACTION_DISCARD);
    add(f, &p);
    assert_int_not_equal(ipsecif_host_generation(f->t.ctx), g0);
    build(f);
    assert_string_not_equal(before, f->text);
    assert_int_equal(ipsecif_spd_flush(f->t.ctx), 1);
    build(f);
    assert_string_equal(before, f->text);
}

/* net.inet.ipsec.used 0: one rule accepts whatever the fixed ones do not,
 * as the library then asks no policy; the first policy brings the table. */
static void test_not_used(void **state)
{
    struct fx *f = *state;
    struct ipsecif_policy p = pol(IPSECIF_DIR_IN, "192.0.2.1", 32, "192.0.2.2", 32,
                                  IPSECIF_IPPROTO_ANY, 0, 0, IPSECIF_ACTION_DISCARD);
    const char *t;
    size_t a;
    size_t b;

    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ENABLED, IPSECIF_IPSEC_DISABLED),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_sysctl_set(f->t.ctx, IPSECIF_SYSCTL_ENABLED, IPSECIF_IPSEC_ENABLED),
                     IPSECIF_OK);
    t = build(f);
    a = line_at(t, "    meta l4proto { esp, ah } counter accept comment \"ESP and AH: to the "
                   "daemon\"");
    b = line_at(t, "    counter accept comment \"net.inet.ipsec.used 0\"");
    assert_true(a < b);
    assert_false(has_text(t, "def_policy"));
    assert_true(has_text(t, "  }\n}\n"));
    add(f, &p);
    t = build(f);
    assert_false(has_text(t, "net.inet.ipsec.used"));
    line_at(t, "    meta nfproto ipv4 counter drop comment \"def_policy 0\"");
    assert_true(has_text(t, "counter drop comment \"policy"));
    /* Used stays on without policies: def_policy still decides. */
    assert_int_equal(ipsecif_spd_flush(f->t.ctx), 1);
    t = build(f);
    line_at(t, "    meta nfproto ipv4 counter drop comment \"def_policy 0\"");
}

static void test_truncation_and_args(void **state)
{
    struct fx *f = *state;
    struct rtr_hostnft_opts o = {"ipsech0", NULL, 0};
    struct rtr_hostnft_opts bad = {"ipsec h0", NULL, 0};
    struct rtr_hostnft_opts quote = {"a\"b", NULL, 0};
    struct rtr_hostnft_opts noports = {"ipsech0", NULL, 1};
    char small[40];
    long whole = rtr_hostnft_build(f->t.ctx, &o, f->text, sizeof(f->text));
    long cut;

    assert_true(whole > (long)sizeof(small));
    memset(small, 'x', sizeof(small));
    cut = rtr_hostnft_build(f->t.ctx, &o, small, sizeof(small));
    assert_int_equal(cut, whole);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, f->text, sizeof(small) - 1);
    /* Just the length. */
    assert_int_equal(rtr_hostnft_build(f->t.ctx, &o, NULL, 0), whole);
    assert_int_equal(rtr_hostnft_build(NULL, &o, f->text, sizeof(f->text)), -1);
    assert_int_equal(rtr_hostnft_build(f->t.ctx, NULL, f->text, sizeof(f->text)), -1);
    assert_int_equal(rtr_hostnft_build(f->t.ctx, &bad, f->text, sizeof(f->text)), -1);
    assert_int_equal(rtr_hostnft_build(f->t.ctx, &quote, f->text, sizeof(f->text)), -1);
    assert_int_equal(rtr_hostnft_build(f->t.ctx, &noports, f->text, sizeof(f->text)), -1);
    assert_string_equal(rtr_hostnft_remove_script(), "delete table inet ipsecif_host\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_def_policy_and_natt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_by_family_and_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_proto_with_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sockets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_follows_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_and_args, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
