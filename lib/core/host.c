/*
 * ipsec(4) for host traffic: whole IPv4/IPv6 packets the host sends,
 * receives or forwards, through the per-socket policies, the SPD and the
 * SADB; ESP and AH in transport and tunnel mode, bundles of them.
 *
 * Output finds every SA a policy asks for before it changes a byte, so a
 * packet that lacks one leaves untouched (and is dropped); input removes
 * each ESP or AH header in turn, remembers what it removed, and only then
 * asks the inbound policy whether that was enough.
 */
#include "core/ctx.h"
#include "esp/esp.h"

/* Layers a received packet may carry: a bundle inside a tunnel bundle. */
#define HOST_LAYERS_MAX (2 * IPSECIF_MAX_REQUESTS)

/* IPv6 header we rebuild for payloads whose header a socket removed. */
#define IP6_HLEN IPSECIF_IP6_HLEN

/* What decides a packet: a per-socket policy or an SPD policy, or the
 * default. req points into the policy that decided (levels unresolved:
 * level() resolves one where it is used). */
struct decision {
    uint8_t action;
    uint8_t family;
    uint8_t nreq;
    const struct ipsecif_ipsecreq *req;
    struct ipsecif_sp *sp;        /* the SPD policy, or NULL */
    struct ipsecif_sockpol *sock; /* the socket, or NULL */
    const struct ipsecif_selector *sel;
    uint8_t dir;
};

/* One IPsec header removed from a received packet. */
struct layer {
    const struct ipsecif_sa *sa;
    uint8_t proto;
    bool tunnel;
    struct ipsecif_addr src, dst; /* the header's addresses (tunnel: the outer ones) */
};

/* ---- Selectors ---- */

static bool has_ports(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_TCP || proto == IPSECIF_IPPROTO_UDP || proto == 33 ||
           proto == 132 || proto == 136; /* DCCP, SCTP, UDP-Lite */
}

static void take_ports(struct ipsecif_selector *sel, const uint8_t *p, size_t off, size_t len)
{
    if (has_ports(sel->ulproto) && len >= off + 4) {
        sel->sport = ipsecif_load16(p + off);
        sel->dport = ipsecif_load16(p + off + 2);
    } else if ((sel->ulproto == IPSECIF_IPPROTO_ICMP || sel->ulproto == IPSECIF_IPPROTO_ICMPV6) &&
               len >= off + 2) {
        sel->sport = p[off];
        sel->dport = p[off + 1];
    }
}

/*
 * The selector of a whole packet: addresses, the upper-layer protocol
 * behind the IPv6 extension headers (ESP and AH count as upper layers
 * here), ports or ICMP type and code. A later fragment has no ports.
 * *frag: the packet is a fragment; *l4off: where the upper layer starts.
 * The buffer is trimmed to the length its header gives.
 */
static int host_selector(struct ipsecif_buf *pkt, struct ipsecif_selector *sel, bool *frag,
                         size_t *l4off)
{
    struct ipsecif_inner in;
    const uint8_t *p;
    size_t alen;
    int rc;

    rc = ipsecif_inner_parse(pkt, &in);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    p = ipsecif_buf_data(pkt);
    memset(sel, 0, sizeof(*sel));
    alen = ipsecif_addr_len(in.family);
    sel->src.family = in.family;
    sel->dst.family = in.family;
    sel->src_plen = (uint8_t)(alen * 8);
    sel->dst_plen = sel->src_plen;
    if (in.family == IPSECIF_AF_INET) {
        size_t hlen = (size_t)(p[0] & 0x0f) * 4;
        uint16_t fo = ipsecif_load16(p + 6);

        memcpy(sel->src.bytes, p + 12, 4);
        memcpy(sel->dst.bytes, p + 16, 4);
        sel->ulproto = p[9];
        *frag = (fo & 0x3fff) != 0;
        *l4off = hlen;
        if ((fo & 0x1fff) == 0) {
            take_ports(sel, p, hlen, pkt->len);
        }
    } else {
        struct ipsecif_v6chain c;

        memcpy(sel->src.bytes, p + 8, 16);
        memcpy(sel->dst.bytes, p + 24, 16);
        if (!ipsecif_v6_walk(p, pkt->len, &c)) {
            return IPSECIF_ERR_MALFORMED;
        }
        sel->ulproto = c.nh;
        *frag = c.frag;
        *l4off = c.off;
        if (!c.frag || c.frag_off == 0) {
            take_ports(sel, p, c.off, pkt->len);
        }
    }
    return IPSECIF_OK;
}

/* ---- Deciding ---- */

static uint8_t def_policy(const struct ipsecif_ctx *ctx, uint8_t family)
{
    int key = family == IPSECIF_AF_INET6 ? IPSECIF_SYSCTL6_DEF_POLICY : IPSECIF_SYSCTL_DEF_POLICY;

    return ctx->spd.sysctl[key] == IPSECIF_ACTION_NONE ? IPSECIF_ACTION_NONE
                                                       : IPSECIF_ACTION_DISCARD;
}

/* A per-socket policy as a decision: bypass is none, ipsec its requests. */
static void from_socket(struct ipsecif_sockpol *e, uint8_t dir, struct decision *d)
{
    const struct ipsecif_sockpolicy *sp = &e->pol[dir == IPSECIF_DIR_IN ? 0 : 1];

    d->sock = e;
    if (sp->type == IPSECIF_SOCKPOL_BYPASS) {
        d->action = IPSECIF_ACTION_NONE;
        return;
    }
    d->action = IPSECIF_ACTION_IPSEC;
    d->nreq = sp->nreq;
    d->req = sp->req;
}

static void from_spd(struct ipsecif_sp *sp, uint64_t now, struct decision *d)
{
    sp->pol.lastused = now;
    d->sp = sp;
    d->action = sp->pol.action;
    d->nreq = sp->pol.nreq;
    d->req = sp->pol.req;
}

/* The level request i of the decision works at (default resolved). */
static uint8_t level(const struct ipsecif_ctx *ctx, const struct decision *d, uint8_t i)
{
    return ipsecif_spd_level(ctx, d->family, &d->req[i]);
}

/*
 * The policy for a packet: the socket at its local end (outbound: source,
 * inbound: destination of a packet for the host), then the SPD in dir
 * (forwarded inbound packets: fwd policies, then in ones), then def_policy.
 * While IPsec is not used (net.inet.ipsec.used 0) none of them is asked and
 * the packet passes, as NetBSD's ip_output() and ip_input() skip IPsec.
 * The decision points into sel, which must outlive it.
 */
static void decide(struct ipsecif_ctx *ctx, uint8_t dir, bool forward,
                   const struct ipsecif_selector *sel, uint64_t now, struct decision *d)
{
    struct ipsecif_sockpol *e = NULL;
    struct ipsecif_sp *sp = NULL;

    memset(d, 0, sizeof(*d));
    d->family = sel->src.family;
    d->sel = sel;
    d->dir = dir;
    if (!ipsecif_spd_used(ctx)) {
        d->action = IPSECIF_ACTION_NONE;
        return;
    }
    if (!forward && ctx->spd.nsocks > 0 && has_ports(sel->ulproto)) {
        bool out = dir == IPSECIF_DIR_OUT;

        e = ipsecif_spd_sock_match(ctx, dir, sel->ulproto, out ? &sel->src : &sel->dst,
                                   out ? sel->sport : sel->dport);
    }
    if (e != NULL) {
        from_socket(e, dir, d);
        return;
    }
    if (forward) {
        sp = ipsecif_spd_match(ctx, IPSECIF_DIR_FWD, sel);
    }
    if (sp == NULL) {
        sp = ipsecif_spd_match(ctx, dir, sel);
    }
    if (sp != NULL) {
        from_spd(sp, now, d);
        return;
    }
    d->action = def_policy(ctx, sel->src.family);
}

static void acquire(struct ipsecif_ctx *ctx, const struct decision *d, uint8_t i,
                    const struct ipsecif_addr *src, const struct ipsecif_addr *dst, uint64_t now)
{
    struct ipsecif_policy pol;
    uint8_t k;

    if (d->sp != NULL) {
        ipsecif_raise_acquire(ctx, d->sp, i, src, dst, 0, 0, now);
        return;
    }
    if (d->sock == NULL) {
        return;
    }
    /* A socket's policy is reported as a policy on the packet's selector. */
    memset(&pol, 0, sizeof(pol));
    pol.sel = *d->sel;
    pol.dir = d->dir;
    pol.action = d->action;
    pol.nreq = d->nreq;
    for (k = 0; k < d->nreq; k++) {
        pol.req[k] = d->req[k];
        pol.req[k].level = level(ctx, d, k);
    }
    ipsecif_raise_acquire_pol(ctx, &pol, &d->sock->last_acquire, i, src, dst, 0, 0, now);
}

/* ---- Transport mode ESP: the header stays in front ---- */

/* Write a header of pre bytes back in front, naming proto at nh_pos, with
 * the lengths and the IPv4 checksum of the packet it now heads. */
static int put_header(struct ipsecif_buf *pkt, const uint8_t *hdr,
                      const struct ipsecif_sec_layout *l, uint8_t proto)
{
    size_t total = pkt->len + l->pre;
    uint8_t *p;

    if (total - (l->family == IPSECIF_AF_INET6 ? IP6_HLEN : 0) > 0xffff) {
        return IPSECIF_ERR_NOROOM;
    }
    p = ipsecif_buf_push(pkt, l->pre);
    if (p == NULL) {
        return IPSECIF_ERR_NOROOM;
    }
    memmove(p, hdr, l->pre);
    p[l->nh_pos] = proto;
    ipsecif_ip_set_len(p, l->family, l->pre, total);
    return IPSECIF_OK;
}

static bool is_natt(const struct ipsecif_sa *sa)
{
    return sa->natt_sport != 0 || sa->natt_dport != 0;
}

/* The TCP or UDP checksum of the segment at p + off (len bytes) of a
 * packet whose addresses start at p + aoff, written at its place. */
static void put_l4_csum(uint8_t *p, uint8_t family, size_t off, size_t len, uint8_t proto)
{
    size_t alen = ipsecif_addr_len(family);
    size_t aoff = family == IPSECIF_AF_INET ? 12 : 8;
    size_t at = off + (proto == IPSECIF_IPPROTO_TCP ? 16 : 6);
    uint32_t sum;
    uint16_t c;

    p[at] = 0;
    p[at + 1] = 0;
    if (family == IPSECIF_AF_INET) {
        sum = ipsecif_csum_add(0, p + aoff, 2 * alen);
        sum += proto;
        sum += (uint32_t)len;
    } else {
        sum = ipsecif_v6_pseudo(p + aoff, p + aoff + alen, (uint32_t)len, proto);
    }
    c = ipsecif_csum_fold(ipsecif_csum_add(sum, p + off, len));
    if (c == 0 && proto == IPSECIF_IPPROTO_UDP) {
        c = 0xffff;
    }
    ipsecif_store16(p + at, c);
}

/* RFC 3948 section 2.1: the UDP header in front of ESP, from the SA's
 * ports; IPv4 leaves the checksum 0, IPv6 needs one (put_header fills it
 * once the addresses are in front). */
static int push_udp(struct ipsecif_buf *pkt, const struct ipsecif_sa *sa)
{
    size_t len = pkt->len + IPSECIF_UDP_HLEN;
    uint8_t *u;

    if (len > 0xffff) {
        return IPSECIF_ERR_NOROOM;
    }
    u = ipsecif_buf_push(pkt, IPSECIF_UDP_HLEN);
    if (u == NULL) {
        return IPSECIF_ERR_NOROOM;
    }
    ipsecif_store16(u, sa->natt_sport);
    ipsecif_store16(u + 2, sa->natt_dport);
    ipsecif_store16(u + 4, (uint16_t)len);
    ipsecif_store16(u + 6, 0);
    return IPSECIF_OK;
}

static int esp_transport_out(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                             struct ipsecif_buf *pkt)
{
    uint8_t hdr[IPSECIF_AH_PRE_MAX];
    struct ipsecif_sec_layout l;
    uint8_t nh;
    int rc;

    rc = ipsecif_sec_layout(ipsecif_buf_data(pkt), pkt->len, 0, &l);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (l.pre > sizeof(hdr)) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    /* The ESP header, its IV and the IP header go in front: check before
     * a sequence number is spent. */
    if (ipsecif_buf_headroom(pkt) < 8u + sa->iv_len + (is_natt(sa) ? IPSECIF_UDP_HLEN : 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    memcpy(hdr, ipsecif_buf_data(pkt), l.pre);
    nh = hdr[l.nh_pos];
    ipsecif_buf_pull(pkt, l.pre);
    rc = ipsecif_esp_output(ctx, sa, pkt, nh);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (!is_natt(sa)) {
        return put_header(pkt, hdr, &l, IPSECIF_IPPROTO_ESP);
    }
    if ((rc = push_udp(pkt, sa)) != IPSECIF_OK ||
        (rc = put_header(pkt, hdr, &l, IPSECIF_IPPROTO_UDP)) != IPSECIF_OK) {
        return rc;
    }
    if (l.family == IPSECIF_AF_INET6) {
        put_l4_csum(ipsecif_buf_data(pkt), l.family, l.pre, pkt->len - l.pre, IPSECIF_IPPROTO_UDP);
    }
    return IPSECIF_OK;
}

/* ESP at the layout l found; on success pkt holds the packet with ESP
 * removed (header in front) and *nh what ESP carried. */
static int esp_transport_in(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                            const struct ipsecif_sec_layout *l, uint8_t *nh)
{
    uint8_t hdr[IPSECIF_AH_PRE_MAX];
    int rc;

    if (l->pre > sizeof(hdr)) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    memcpy(hdr, ipsecif_buf_data(pkt), l->pre);
    ipsecif_buf_pull(pkt, l->pre);
    rc = ipsecif_esp_input(ctx, sa, pkt, nh);
    if (rc != IPSECIF_OK) {
        ipsecif_buf_push(pkt, l->pre);
        return rc;
    }
    return put_header(pkt, hdr, l, *nh);
}

/* ---- Tunnel mode: a new outer header ---- */

static int tunnel_out(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                      const struct ipsecif_ipsecreq *req, struct ipsecif_buf *pkt)
{
    struct ipsecif_outer_meta meta;
    struct ipsecif_inner in;
    uint8_t otos;
    int rc;

    rc = ipsecif_inner_parse(pkt, &in);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    /* RFC 6040 normal mode: the outer ECN field is a copy. */
    otos = (uint8_t)((in.tos & 0xfc) | (ipsecif_ecn_encap(in.tos, true) & 3));
    if (req->proto == IPSECIF_IPPROTO_ESP) {
        /* Room for the outer header is checked before a sequence number is spent. */
        if (ipsecif_buf_headroom(pkt) < 8u + sa->iv_len + IP6_HLEN + IPSECIF_UDP_HLEN) {
            return IPSECIF_ERR_NOROOM;
        }
        rc = ipsecif_esp_output(ctx, sa, pkt, in.nh);
        if (rc != IPSECIF_OK) {
            return rc;
        }
        return ipsecif_encap_outer(ctx, pkt, &req->tun_src, &req->tun_dst, sa->natt_sport,
                                   sa->natt_dport, otos, in.df, &meta);
    }
    rc = ipsecif_encap_outer(ctx, pkt, &req->tun_src, &req->tun_dst, 0, 0, otos, in.df, &meta);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    ipsecif_outer_set_proto(pkt, &meta, in.nh);
    rc = ipsecif_ah_output(ctx, sa, pkt);
    if (rc != IPSECIF_OK) {
        ipsecif_buf_pull(pkt, meta.ip_hlen);
    }
    return rc;
}

/* ---- Output ---- */

/* Every SA the policy's requests need, from the innermost out; a missing
 * one at level require or unique raises an ACQUIRE. */
static int find_sas(struct ipsecif_ctx *ctx, struct decision *d, const struct ipsecif_selector *sel,
                    struct ipsecif_sa **sas, uint64_t now)
{
    struct ipsecif_addr src = sel->src, dst = sel->dst;
    uint8_t i;

    for (i = 0; i < d->nreq; i++) {
        const struct ipsecif_ipsecreq *r = &d->req[i];
        uint8_t lev = level(ctx, d, i);

        if (r->mode == IPSECIF_MODE_TUNNEL) {
            src = r->tun_src;
            dst = r->tun_dst;
        }
        sas[i] = ipsecif_sadb_lookup_host(ctx, r, lev, &src, &dst);
        if (sas[i] == NULL && lev != IPSECIF_LEVEL_USE) {
            acquire(ctx, d, i, &src, &dst, now);
            return IPSECIF_ERR_NOSA;
        }
    }
    return IPSECIF_OK;
}

static int apply_one(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                     const struct ipsecif_ipsecreq *r, struct ipsecif_buf *pkt, uint64_t now)
{
    size_t len = pkt->len;
    int rc;

    if (r->mode == IPSECIF_MODE_TUNNEL) {
        rc = tunnel_out(ctx, sa, r, pkt);
    } else if (r->proto == IPSECIF_IPPROTO_ESP) {
        rc = esp_transport_out(ctx, sa, pkt);
    } else {
        rc = ipsecif_ah_output(ctx, sa, pkt);
    }
    if (rc == IPSECIF_ERR_SEQWRAP) {
        ipsecif_sadb_kill(ctx, sa, IPSECIF_EXPIRE_SEQWRAP);
    }
    if (rc != IPSECIF_OK) {
        return rc;
    }
    sa->stats.packets++;
    sa->stats.bytes += len;
    (void)ipsecif_sadb_account(ctx, sa, len, now);
    return IPSECIF_OK;
}

/* The addresses of the packet now in the buffer. */
static void note_addrs(const struct ipsecif_buf *pkt, struct ipsecif_host_result *r)
{
    const uint8_t *p = ipsecif_buf_data(pkt);
    size_t alen;

    memset(&r->src, 0, sizeof(r->src));
    memset(&r->dst, 0, sizeof(r->dst));
    r->family = (p[0] >> 4) == 4 ? IPSECIF_AF_INET : IPSECIF_AF_INET6;
    alen = ipsecif_addr_len(r->family);
    r->src.family = r->family;
    r->dst.family = r->family;
    memcpy(r->src.bytes, p + (r->family == IPSECIF_AF_INET ? 12 : 8), alen);
    memcpy(r->dst.bytes, p + (r->family == IPSECIF_AF_INET ? 16 : 24), alen);
}

static int host_out(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                    struct ipsecif_host_result *r)
{
    struct ipsecif_sa *sas[IPSECIF_MAX_REQUESTS];
    struct ipsecif_selector sel;
    struct decision d;
    bool frag = false;
    size_t l4off = 0;
    uint8_t i;
    int rc;

    rc = host_selector(pkt, &sel, &frag, &l4off);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    decide(ctx, IPSECIF_DIR_OUT, false, &sel, now, &d);
    r->policy_id = d.sp != NULL ? d.sp->pol.id : 0;
    r->by_socket = d.sock != NULL;
    if (d.action == IPSECIF_ACTION_DISCARD) {
        return IPSECIF_ERR_DISCARD;
    }
    if (d.action == IPSECIF_ACTION_IPSEC) {
        rc = find_sas(ctx, &d, &sel, sas, now);
        if (rc != IPSECIF_OK) {
            return rc;
        }
        for (i = 0; i < d.nreq; i++) {
            if (sas[i] == NULL) {
                continue; /* level use, no SA */
            }
            rc = apply_one(ctx, sas[i], &d.req[i], pkt, now);
            if (rc != IPSECIF_OK) {
                return rc;
            }
            r->nsa++;
            r->tunnels = (uint8_t)(r->tunnels + (d.req[i].mode == IPSECIF_MODE_TUNNEL));
        }
    }
    r->verdict = r->nsa > 0 ? IPSECIF_HOST_PROTECTED : IPSECIF_HOST_CLEAR;
    note_addrs(pkt, r);
    return IPSECIF_OK;
}

int ipsecif_host_output(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                        struct ipsecif_host_result *res)
{
    struct ipsecif_host_result r;
    size_t len;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    memset(&r, 0, sizeof(r));
    len = pkt->len;
    rc = host_out(ctx, pkt, now, &r);
    if (rc != IPSECIF_OK) {
        ipsecif_count_out_drop(ctx, NULL, rc);
        return rc;
    }
    if (r.verdict == IPSECIF_HOST_PROTECTED) {
        /* IPsec output as any other: the general counters too (netstat -s). */
        ctx->stats.host_out_ipsec++;
        ctx->stats.out_success++;
        ctx->stats.out_bytes += len;
    } else {
        ctx->stats.host_out_clear++;
    }
    if (res != NULL) {
        *res = r;
    }
    return IPSECIF_OK;
}

/* ---- Input ---- */

static struct ipsecif_sa *sa_for(struct ipsecif_ctx *ctx, uint8_t proto,
                                 const struct ipsecif_addr *dst, uint32_t spi)
{
    struct ipsecif_sa *sa = ipsecif_sadb_lookup_spi(ctx, proto, dst, spi);

    if (sa == NULL || sa->state == IPSECIF_SA_LARVAL || sa->state == IPSECIF_SA_DEAD) {
        return NULL;
    }
    return sa;
}

/* Tunnel mode: what the SA carried is an IP packet of its own (and the SA
 * is not transport-only). Strips the outer header of hlen bytes; RFC 6040
 * normal-mode ECN decapsulation. */
static int tunnel_in(struct ipsecif_buf *pkt, size_t hlen, uint8_t outer_tos, uint8_t nh)
{
    struct ipsecif_inner in;
    int ecn;

    ipsecif_buf_pull(pkt, hlen);
    if (ipsecif_inner_parse(pkt, &in) != IPSECIF_OK || in.nh != nh) {
        return IPSECIF_ERR_MALFORMED;
    }
    ecn = ipsecif_ecn_decap(outer_tos, in.tos);
    if (ecn < 0) {
        return IPSECIF_ERR_ECN;
    }
    if ((uint8_t)(ecn & 3) != (in.tos & 3)) {
        ipsecif_inner_set_ecn(pkt, in.family, (uint8_t)ecn);
    }
    return IPSECIF_OK;
}

static uint8_t outer_tos(const uint8_t *p)
{
    if ((p[0] >> 4) == 4) {
        return p[1];
    }
    return (uint8_t)(((p[0] & 0x0f) << 4) | (p[1] >> 4));
}

/*
 * RFC 3948 section 3.1.2: in transport mode a NAT on the way changed the
 * addresses the TCP or UDP checksum was computed with; recompute it over
 * the addresses the packet has now (the ICV already vouched for the
 * segment). A UDP checksum of 0 over IPv4 stays 0.
 */
static void fix_natt_csum(struct ipsecif_buf *pkt, const struct ipsecif_sec_layout *l, uint8_t nh)
{
    uint8_t *p = ipsecif_buf_data(pkt);
    size_t len = pkt->len - l->pre;

    if (nh == IPSECIF_IPPROTO_TCP && len >= 20) {
        put_l4_csum(p, l->family, l->pre, len, nh);
    } else if (nh == IPSECIF_IPPROTO_UDP && len >= 8 &&
               (l->family == IPSECIF_AF_INET6 || ipsecif_load16(p + l->pre + 6) != 0)) {
        put_l4_csum(p, l->family, l->pre, len, nh);
    }
}

/*
 * Is the UDP datagram at l4off ESP in UDP (RFC 3948) for one of our SAs: a
 * nonzero SPI of an ESP SA with these ports? Then take the UDP header out
 * (the packet then reads as plain ESP) and say so.
 */
static bool strip_natt(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                       const struct ipsecif_selector *sel, size_t l4off)
{
    uint8_t hdr[IPSECIF_AH_PRE_MAX];
    struct ipsecif_sec_layout l;
    const uint8_t *p = ipsecif_buf_data(pkt);
    const struct ipsecif_sa *sa;
    uint32_t spi;

    if (pkt->len < l4off + IPSECIF_UDP_HLEN + 8 || l4off > sizeof(hdr)) {
        return false;
    }
    spi = ipsecif_load32(p + l4off + IPSECIF_UDP_HLEN);
    if (spi == 0) {
        return false; /* IKE behind the non-ESP marker */
    }
    sa = sa_for(ctx, IPSECIF_IPPROTO_ESP, &sel->dst, spi);
    if (sa == NULL || sa->natt_sport != sel->sport || sa->natt_dport != sel->dport ||
        ipsecif_sec_layout(p, pkt->len, IPSECIF_IPPROTO_UDP, &l) != IPSECIF_OK || l.pre != l4off) {
        return false;
    }
    memcpy(hdr, p, l.pre);
    ipsecif_buf_pull(pkt, l.pre + IPSECIF_UDP_HLEN);
    return put_header(pkt, hdr, &l, IPSECIF_IPPROTO_ESP) == IPSECIF_OK;
}

/* Remove the outermost ESP or AH header (proto) and, in tunnel mode, the
 * outer IP header; fill lay. udp: it came in UDP. */
static int open_layer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                      const struct ipsecif_selector *sel, uint8_t proto, bool udp,
                      struct layer *lay, uint64_t now)
{
    struct ipsecif_sec_layout l;
    struct ipsecif_sa *sa;
    uint8_t tos = outer_tos(ipsecif_buf_data(pkt));
    size_t hlen;
    uint8_t nh = 0;
    int rc;

    rc = ipsecif_sec_layout(ipsecif_buf_data(pkt), pkt->len, proto, &l);
    if (rc != IPSECIF_OK) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (pkt->len < l.pre + 8) {
        return IPSECIF_ERR_MALFORMED;
    }
    sa = sa_for(
        ctx, proto, &sel->dst,
        ipsecif_load32(ipsecif_buf_data(pkt) + l.pre + (proto == IPSECIF_IPPROTO_AH ? 4 : 0)));
    if (sa == NULL) {
        return IPSECIF_ERR_BADSPI;
    }
    if (is_natt(sa) != udp) {
        return IPSECIF_ERR_POLICY; /* UDP-encapsulated or not, as the SA says */
    }
    if (proto == IPSECIF_IPPROTO_ESP) {
        rc = esp_transport_in(ctx, sa, pkt, &l, &nh);
        hlen = l.pre;
    } else {
        rc = ipsecif_ah_input(ctx, sa, pkt, l.pre, &nh);
        hlen = l.pre;
    }
    if (rc != IPSECIF_OK) {
        return rc;
    }
    sa->stats.packets++;
    sa->stats.bytes += pkt->len;
    (void)ipsecif_sadb_account(ctx, sa, pkt->len, now);
    lay->sa = sa;
    lay->proto = proto;
    lay->src = sel->src;
    lay->dst = sel->dst;
    lay->tunnel = (nh == IPSECIF_IPPROTO_IPV4 || nh == IPSECIF_IPPROTO_IPV6) &&
                  sa->mode != IPSECIF_MODE_TRANSPORT;
    if (lay->tunnel) {
        return tunnel_in(pkt, hlen, tos, nh);
    }
    if (udp) {
        fix_natt_csum(pkt, &l, nh);
    }
    return IPSECIF_OK;
}

/* Did the layers removed meet request r? */
static bool req_met(const struct ipsecif_ipsecreq *r, uint8_t lev, const struct layer *lays,
                    unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        const struct layer *y = &lays[i];

        if (y->proto != r->proto || y->tunnel != (r->mode == IPSECIF_MODE_TUNNEL)) {
            continue;
        }
        if (r->mode == IPSECIF_MODE_TUNNEL &&
            ((!ipsecif_addr_is_unspec(&r->tun_src) && !ipsecif_addr_eq(&r->tun_src, &y->src)) ||
             (!ipsecif_addr_is_unspec(&r->tun_dst) && !ipsecif_addr_eq(&r->tun_dst, &y->dst)))) {
            continue;
        }
        if (lev == IPSECIF_LEVEL_UNIQUE && y->sa->reqid != r->reqid) {
            continue;
        }
        return true;
    }
    return false;
}

static int check_in(const struct ipsecif_ctx *ctx, const struct decision *d,
                    const struct layer *lays, unsigned n)
{
    uint8_t i;

    if (d->action == IPSECIF_ACTION_DISCARD) {
        return IPSECIF_ERR_POLICY;
    }
    if (d->action == IPSECIF_ACTION_NONE) {
        return IPSECIF_OK;
    }
    for (i = 0; i < d->nreq; i++) {
        uint8_t lev = level(ctx, d, i);

        if (lev != IPSECIF_LEVEL_USE && !req_met(&d->req[i], lev, lays, n)) {
            return IPSECIF_ERR_POLICY;
        }
    }
    return IPSECIF_OK;
}

static int host_in(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                   struct ipsecif_host_result *r)
{
    struct layer lays[HOST_LAYERS_MAX];
    struct ipsecif_selector sel;
    struct decision d;
    unsigned n = 0;
    bool frag = false;
    size_t l4off = 0;
    int rc;

    for (;;) {
        bool udp = false;

        rc = host_selector(pkt, &sel, &frag, &l4off);
        if (rc != IPSECIF_OK) {
            return rc;
        }
        if (sel.ulproto == IPSECIF_IPPROTO_UDP && n == 0 && !frag &&
            strip_natt(ctx, pkt, &sel, l4off)) {
            udp = true;
            sel.ulproto = IPSECIF_IPPROTO_ESP;
        }
        if (sel.ulproto != IPSECIF_IPPROTO_ESP && sel.ulproto != IPSECIF_IPPROTO_AH) {
            break;
        }
        if (n == HOST_LAYERS_MAX || frag) {
            /* Deeper than any policy asks, or a fragment the host did not reassemble. */
            return IPSECIF_ERR_UNSUPPORTED;
        }
        rc = open_layer(ctx, pkt, &sel, sel.ulproto, udp, &lays[n], now);
        if (rc != IPSECIF_OK) {
            return rc;
        }
        n++;
        r->tunnels = (uint8_t)(r->tunnels + lays[n - 1].tunnel);
    }
    r->nsa = (uint8_t)n;
    r->forward = ctx->port->local_addr != NULL && !ctx->port->local_addr(ctx->user, &sel.dst);
    decide(ctx, IPSECIF_DIR_IN, r->forward, &sel, now, &d);
    r->policy_id = d.sp != NULL ? d.sp->pol.id : 0;
    r->by_socket = d.sock != NULL;
    rc = check_in(ctx, &d, lays, n);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    r->verdict = n > 0 ? IPSECIF_HOST_PROTECTED : IPSECIF_HOST_CLEAR;
    note_addrs(pkt, r);
    return IPSECIF_OK;
}

int ipsecif_host_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                       struct ipsecif_host_result *res)
{
    struct ipsecif_host_result r;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    memset(&r, 0, sizeof(r));
    rc = host_in(ctx, pkt, now, &r);
    if (rc != IPSECIF_OK) {
        ipsecif_count_in_drop(ctx, NULL, rc);
        return rc;
    }
    if (r.verdict == IPSECIF_HOST_PROTECTED) {
        ctx->stats.host_in_ipsec++;
        ctx->stats.in_success++;
        ctx->stats.in_bytes += pkt->len;
    } else {
        ctx->stats.host_in_clear++;
    }
    if (res != NULL) {
        *res = r;
    }
    return IPSECIF_OK;
}

IPSECIF_NOINLINE int ipsecif_host_deliver(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                                          uint64_t now)
{
    struct ipsecif_host_result r;
    int rc;

    if (ctx->port->deliver_host == NULL) {
        /* The host takes no IPsec of its own: nothing allows it in. */
        ipsecif_count_in_drop(ctx, NULL, IPSECIF_ERR_POLICY);
        return IPSECIF_ERR_POLICY;
    }
    rc = ipsecif_host_input(ctx, pkt, now, &r);
    if (rc == IPSECIF_OK) {
        ctx->port->deliver_host(ctx->user, pkt, &r);
    }
    return rc;
}

uint32_t ipsecif_host_generation(const struct ipsecif_ctx *ctx)
{
    return ctx == NULL ? 0 : ctx->spd.gen;
}

/* ---- Payloads whose IP header a socket removed ---- */

IPSECIF_NOINLINE bool ipsecif_host_natt_ours(struct ipsecif_ctx *ctx,
                                             const struct ipsecif_outer_meta *meta,
                                             const struct ipsecif_buf *pkt)
{
    const struct ipsecif_sa *sa;
    uint32_t spi;

    if (pkt->len < 8) {
        return false;
    }
    spi = ipsecif_load32(ipsecif_buf_data(pkt));
    if (spi == 0) {
        return false;
    }
    sa = sa_for(ctx, IPSECIF_IPPROTO_ESP, &meta->dst, spi);
    return sa != NULL && sa->natt_sport == meta->sport && sa->natt_dport == meta->dport;
}

/* IPv6 extension headers that may stand in front of AH or ESP (RFC 8200
 * order: hop-by-hop, destination options, routing). */
static bool v6_ext_before_sec(uint8_t nh)
{
    return nh == IPSECIF_IPPROTO_HOPOPTS || nh == IPSECIF_IPPROTO_DSTOPTS ||
           nh == IPSECIF_IPPROTO_ROUTING;
}

IPSECIF_NOINLINE int ipsecif_input_payload(struct ipsecif_ctx *ctx,
                                           const struct ipsecif_outer_meta *meta, uint8_t proto,
                                           struct ipsecif_buf *pkt, uint64_t now)
{
    struct ipsecif_outer_meta m;
    size_t alen, iphl, hlen, len;
    bool udp;
    uint8_t *h;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || meta == NULL || !ipsecif_buf_valid(pkt) ||
        meta->src.family != meta->dst.family) {
        return IPSECIF_ERR_ARG;
    }
    udp = meta->sport != 0 || meta->dport != 0;
    alen = ipsecif_addr_len(meta->src.family);
    if (alen == 0 || (udp && proto != IPSECIF_IPPROTO_ESP) ||
        (proto != IPSECIF_IPPROTO_ESP && proto != IPSECIF_IPPROTO_AH &&
         (alen != 16 || !v6_ext_before_sec(proto)))) {
        return IPSECIF_ERR_ARG;
    }
    iphl = alen == 4 ? IPSECIF_IP4_HLEN : IP6_HLEN;
    hlen = iphl + (udp ? IPSECIF_UDP_HLEN : 0);
    if (pkt->len > 0xffff - hlen) {
        return IPSECIF_ERR_ARG;
    }
    len = pkt->len;
    h = ipsecif_buf_push(pkt, hlen);
    if (h == NULL) {
        ipsecif_count_in_drop(ctx, NULL, IPSECIF_ERR_NOROOM);
        return IPSECIF_ERR_NOROOM;
    }
    m = *meta;
    m.family = meta->src.family;
    /* A socket that did not say leaves 0: the host would take that for
     * a spent TTL. */
    m.ttl = meta->ttl != 0 ? meta->ttl : IPSECIF_DEFAULT_TTL;
    m.ip_hlen = (uint16_t)iphl;
    m.esp_off = (uint16_t)hlen;
    ipsecif_outer_write(h, &m, proto, len, 0, false);
    return ipsecif_input(ctx, pkt, now);
}
