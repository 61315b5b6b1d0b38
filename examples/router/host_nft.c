/* The inbound side of the SPD as an nftables table (see host_nft.h). */
#include "host_nft.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define TABLE "inet " RTR_HOSTNFT_TABLE

/* Upper layers whose ports the library reads (as lib/core/host.c does). */
#define PORT_PROTOS "{ tcp, udp, dccp, sctp, udplite }"

/* The script so far: len counts what was asked for, even past cap. */
struct text {
    char *out;
    size_t cap;
    size_t len;
};

static void put(struct text *t, const char *fmt, ...)
{
    char *at = t->len < t->cap ? t->out + t->len : NULL;
    size_t room = t->len < t->cap ? t->cap - t->len : 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0) {
        t->len += (size_t)n;
    }
}

static bool is_v6(const struct ipsecif_addr *a)
{
    return a->family == IPSECIF_AF_INET6;
}

static void put_addr(struct text *t, const char *what, const struct ipsecif_addr *a, unsigned plen)
{
    char s[INET6_ADDRSTRLEN];
    unsigned bits = is_v6(a) ? 128 : 32;

    if (plen == 0 || inet_ntop(is_v6(a) ? AF_INET6 : AF_INET, a->bytes, s, sizeof(s)) == NULL) {
        return;
    }
    if (plen >= bits) {
        put(t, " %s %s %s", is_v6(a) ? "ip6" : "ip", what, s);
    } else {
        put(t, " %s %s %s/%u", is_v6(a) ? "ip6" : "ip", what, s, plen);
    }
}

static bool is_icmp(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ICMP || proto == IPSECIF_IPPROTO_ICMPV6;
}

static bool has_ports(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_TCP || proto == IPSECIF_IPPROTO_UDP || proto == 33 ||
           proto == 132 || proto == 136;
}

static void put_icmp(struct text *t, uint8_t proto, uint16_t type, uint16_t code)
{
    const char *kw = proto == IPSECIF_IPPROTO_ICMPV6 ? "icmpv6" : "icmp";

    put(t, " meta l4proto %s", kw);
    if (type != IPSECIF_ICMP_ANY) {
        put(t, " %s type %u", kw, type);
    }
    if (code != IPSECIF_ICMP_ANY) {
        put(t, " %s code %u", kw, code);
    }
}

static void put_ports(struct text *t, uint16_t sport, uint16_t dport)
{
    if (sport != IPSECIF_PORT_ANY) {
        put(t, " th sport %u", sport);
    }
    if (dport != IPSECIF_PORT_ANY) {
        put(t, " th dport %u", dport);
    }
}

/* The verdict of a decision: requests with resolved levels. */
static const char *verdict(struct ipsecif_ctx *ctx, uint8_t family, uint8_t action, uint8_t nreq,
                           const struct ipsecif_ipsecreq *req)
{
    uint8_t i;

    if (action == IPSECIF_ACTION_NONE) {
        return "accept";
    }
    if (action != IPSECIF_ACTION_IPSEC) {
        return "drop";
    }
    for (i = 0; i < nreq; i++) {
        uint8_t level = ipsecif_spd_level(ctx, family, &req[i]);

        if (level != IPSECIF_LEVEL_USE) {
            return "drop";
        }
    }
    return "accept";
}

static const char *dir_name(uint8_t dir)
{
    return dir == IPSECIF_DIR_FWD ? "fwd" : dir == IPSECIF_DIR_IN ? "in" : "out";
}

struct walk {
    struct text *t;
    struct ipsecif_ctx *ctx;
    uint8_t dir; /* the direction written in this pass */
    bool exact;  /* sockets: bound to an address (else to any) */
};

/* One rule: a prefix (what comes before the selector), the selector, then
 * the protocol part given as text, the verdict and the comment. */
static void put_policy_rule(struct text *t, const char *pre, const struct ipsecif_selector *sel,
                            const char *l4, const char *v, const char *comment, uint32_t id)
{
    put(t, "    %smeta nfproto %s", pre, is_v6(&sel->src) ? "ipv6" : "ipv4");
    put_addr(t, "saddr", &sel->src, sel->src_plen);
    put_addr(t, "daddr", &sel->dst, sel->dst_plen);
    put(t, "%s counter %s comment \"%s %u\"\n", l4, v, comment, id);
}

static int policy_cb(void *arg, const struct ipsecif_policy *p)
{
    struct walk *w = arg;
    const struct ipsecif_selector *sel = &p->sel;
    const char *pre = w->dir == IPSECIF_DIR_FWD ? "fib daddr type != local " : "";
    const char *v;
    char comment[32];
    char l4[96];
    struct text l;

    if (p->dir != w->dir) {
        return 0;
    }
    v = verdict(w->ctx, sel->src.family, p->action, p->nreq, p->req);
    snprintf(comment, sizeof(comment), "policy %s", dir_name(p->dir));
    l.out = l4;
    l.cap = sizeof(l4);
    l.len = 0;
    l4[0] = '\0';
    if (sel->ulproto == IPSECIF_IPPROTO_ANY) {
        if (sel->sport == IPSECIF_PORT_ANY && sel->dport == IPSECIF_PORT_ANY) {
            put_policy_rule(w->t, pre, sel, "", v, comment, p->id);
            return 0;
        }
        /* Ports with any protocol: the library compares them with the
         * ports of TCP, UDP ... and with the type and code of ICMP. */
        put(&l, " meta l4proto %s", PORT_PROTOS);
        put_ports(&l, sel->sport, sel->dport);
        put_policy_rule(w->t, pre, sel, l4, v, comment, p->id);
        if ((sel->sport == IPSECIF_PORT_ANY || sel->sport <= 255) &&
            (sel->dport == IPSECIF_PORT_ANY || sel->dport <= 255)) {
            uint8_t icmp = is_v6(&sel->src) ? IPSECIF_IPPROTO_ICMPV6 : IPSECIF_IPPROTO_ICMP;

            l.len = 0;
            put_icmp(&l, icmp, sel->sport == IPSECIF_PORT_ANY ? IPSECIF_ICMP_ANY : sel->sport,
                     sel->dport == IPSECIF_PORT_ANY ? IPSECIF_ICMP_ANY : sel->dport);
            put_policy_rule(w->t, pre, sel, l4, v, comment, p->id);
        }
        return 0;
    }
    if (is_icmp(sel->ulproto)) {
        put_icmp(&l, sel->ulproto, sel->sport, sel->dport);
    } else if (has_ports(sel->ulproto)) {
        put(&l, " meta l4proto %u", sel->ulproto);
        put_ports(&l, sel->sport, sel->dport);
    } else if (sel->sport != IPSECIF_PORT_ANY || sel->dport != IPSECIF_PORT_ANY) {
        return 0; /* ports of a protocol without them: the library never matches it */
    } else {
        put(&l, " meta l4proto %u", sel->ulproto);
    }
    put_policy_rule(w->t, pre, sel, l4, v, comment, p->id);
    return 0;
}

static int sock_cb(void *arg, const struct ipsecif_sock *s, const struct ipsecif_sockpolicy *in,
                   const struct ipsecif_sockpolicy *out)
{
    struct walk *w = arg;
    static const uint8_t zero[16];
    bool any = memcmp(s->local.bytes, zero, is_v6(&s->local) ? 16 : 4) == 0;
    const char *v;

    (void)out;
    if (in->type == IPSECIF_SOCKPOL_ENTRUST || s->lport == 0 || any == w->exact ||
        (s->local.family != IPSECIF_AF_INET && s->local.family != IPSECIF_AF_INET6)) {
        return 0;
    }
    v = in->type == IPSECIF_SOCKPOL_BYPASS
            ? "accept"
            : verdict(w->ctx, s->local.family, IPSECIF_ACTION_IPSEC, in->nreq, in->req);
    put(w->t, "    fib daddr type local meta nfproto %s", is_v6(&s->local) ? "ipv6" : "ipv4");
    if (!any) {
        put_addr(w->t, "daddr", &s->local, 128);
    }
    if (s->proto == IPSECIF_IPPROTO_ANY) {
        put(w->t, " meta l4proto %s", PORT_PROTOS);
    } else {
        put(w->t, " meta l4proto %u", s->proto);
    }
    put(w->t, " th dport %u counter %s comment \"socket %s %u/%u\"\n", s->lport, v,
        in->type == IPSECIF_SOCKPOL_BYPASS ? "bypass" : "ipsec", s->owner, s->handle);
    return 0;
}

static bool name_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) {
            return false;
        }
    }
    return i > 0 && i < 16;
}

static void put_defaults(struct text *t, struct ipsecif_ctx *ctx)
{
    int v4 = ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_DEF_POLICY);
    int v6 = ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL6_DEF_POLICY);

    put(t, "    meta nfproto ipv4 counter %s comment \"def_policy %d\"\n",
        v4 == IPSECIF_ACTION_NONE ? "accept" : "drop", v4);
    put(t, "    meta nfproto ipv6 counter %s comment \"def_policy %d\"\n",
        v6 == IPSECIF_ACTION_NONE ? "accept" : "drop", v6);
}

long rtr_hostnft_build(struct ipsecif_ctx *ctx, const struct rtr_hostnft_opts *opts, char *out,
                       size_t cap)
{
    struct text t = {out, cap, 0};
    struct walk w;
    size_t i;

    if (ctx == NULL || opts == NULL || opts->dev == NULL || (out == NULL && cap > 0) ||
        (opts->n_natt > 0 && opts->natt_ports == NULL) || !name_ok(opts->dev)) {
        return -1;
    }
    if (cap > 0) {
        out[0] = '\0';
    }
    put(&t, "table " TABLE " {\n"
            "  chain prerouting { type filter hook prerouting priority raw; policy accept; }\n"
            "}\n"
            "flush chain " TABLE " prerouting\n"
            "table " TABLE " {\n"
            "  chain prerouting {\n");
    put(&t, "    iifname \"%s\" counter accept comment \"opened by the daemon\"\n", opts->dev);
    put(&t, "    iif lo counter accept\n");
    put(&t, "    meta l4proto { esp, ah } counter accept comment \"ESP and AH: to the daemon\"\n");
    /* IPv6 fragments of AH past the first: the kernel names no upper
     * layer for them (AH counts as an extension header), so l4proto does
     * not match; they reach the daemon once reassembled. */
    put(&t, "    frag nexthdr { esp, ah } counter accept comment \"ESP and AH fragments: to the "
            "daemon\"\n");
    if (opts->n_natt > 0) {
        put(&t, "    udp dport { ");
        for (i = 0; i < opts->n_natt; i++) {
            put(&t, "%s%u", i > 0 ? ", " : "", opts->natt_ports[i]);
        }
        put(&t, " } counter accept comment \"NAT-T\"\n");
    }
    put(&t, "    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit,"
            " nd-neighbor-advert, nd-redirect } counter accept comment \"neighbour discovery\"\n");
    if (ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_USED) == 0) {
        /* IPsec not in use: the library asks no policy, nor does the table. */
        put(&t, "    counter accept comment \"net.inet.ipsec.used 0\"\n");
        put(&t, "  }\n}\n");
        return (long)t.len;
    }
    w.t = &t;
    w.ctx = ctx;
    w.exact = true;
    (void)ipsecif_spd_sock_walk(ctx, sock_cb, &w);
    w.exact = false;
    (void)ipsecif_spd_sock_walk(ctx, sock_cb, &w);
    w.dir = IPSECIF_DIR_FWD;
    (void)ipsecif_spd_walk(ctx, policy_cb, &w);
    w.dir = IPSECIF_DIR_IN;
    (void)ipsecif_spd_walk(ctx, policy_cb, &w);
    put_defaults(&t, ctx);
    put(&t, "  }\n}\n");
    return (long)t.len;
}

const char *rtr_hostnft_remove_script(void)
{
    return "delete table " TABLE "\n";
}
