/* PF_KEY output: the builder and its extension writers, one message per
 * dialect in use, and its delivery to the endpoints that should see it. */
#include "pfkey_priv.h"

#define IPSEC_ULPROTO_ANY 255u
#define BUILD_OFF 16u /* room for the X_PROMISC wrapper of KAME promiscuous copies */

/* A message under construction; over once anything did not fit. */
struct bld {
    uint8_t *b;
    size_t cap;
    size_t len;
    bool over;
    const struct pfkey_dialect *dl;
    int64_t wall_off; /* ctx->pfkey.wall_off_ms */
};

/* Which limits an SA message carries. */
enum limits { LIM_BOTH, LIM_HARD, LIM_SOFT };

static uint8_t *put(struct bld *b, size_t n)
{
    uint8_t *p;

    if (b->over || n > b->cap - b->len) {
        b->over = true;
        return NULL;
    }
    p = b->b + b->len;
    memset(p, 0, n);
    b->len += n;
    return p;
}

static uint8_t *ext_put(struct bld *b, unsigned type, size_t n)
{
    uint8_t *p = put(b, align8(n));

    if (p != NULL) {
        s16(p, (uint16_t)(align8(n) / 8));
        s16(p + 2, (uint16_t)type);
    }
    return p;
}

static void hdr_put(struct bld *b, const struct pfkey_out *o)
{
    uint8_t *p = put(b, HDR_LEN);

    if (p != NULL) {
        p[0] = IPSECIF_PF_KEY_V2;
        p[1] = o->type;
        p[2] = o->err;
        p[3] = o->satype;
        s32(p + 8, o->seq);
        s32(p + 12, o->pid);
    }
}

static void finish(struct bld *b)
{
    if (!b->over && b->len >= HDR_LEN) {
        s16(b->b + 4, (uint16_t)(b->len / 8));
    }
}

/* ---- Addresses ---- */

static size_t sockaddr_size(uint8_t family)
{
    return family == IPSECIF_AF_INET6 ? SIN6_LEN : SIN_LEN;
}

static void sockaddr_put(const struct pfkey_dialect *dl, uint8_t *p, const struct ipsecif_addr *a,
                         uint16_t port)
{
    size_t n = sockaddr_size(a->family);
    uint8_t fam = n == SIN6_LEN ? dl->af_inet6 : AF_INET_WIRE;

    if (dl->sa_len) {
        p[0] = (uint8_t)n;
        p[1] = fam;
    } else {
        s16(p, fam);
    }
    ipsecif_store16(p + 2, port);
    if (n == SIN6_LEN) {
        memcpy(p + 8, a->bytes, 16);
    } else {
        memcpy(p + 4, a->bytes, 4);
    }
}

static void addr_put(struct bld *b, unsigned type, const struct ipsecif_addr *a, uint16_t port,
                     uint8_t plen, uint8_t proto)
{
    uint8_t *p = ext_put(b, type, 8 + sockaddr_size(a->family));

    if (p != NULL) {
        p[4] = proto;
        p[5] = plen;
        sockaddr_put(b->dl, p + 8, a, port);
    }
}

static uint8_t full_plen(const struct ipsecif_addr *a)
{
    return (uint8_t)(8 * ipsecif_addr_len(a->family));
}

/* An SA's or an ACQUIRE's endpoints: whole addresses, any protocol. */
static void host_pair_put(struct bld *b, const struct ipsecif_addr *src,
                          const struct ipsecif_addr *dst)
{
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_SRC, src, 0, full_plen(src), IPSEC_ULPROTO_ANY);
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_DST, dst, 0, full_plen(dst), IPSEC_ULPROTO_ANY);
}

/* Selector ports on the wire: 0 is "any" for ICMP type/code as for ports. */
static uint16_t wire_port(uint8_t ulproto, uint16_t v)
{
    return is_icmp(ulproto) && v == IPSECIF_ICMP_ANY ? 0 : v;
}

/* ---- Lifetimes ---- */

static void lifetime_put(struct bld *b, unsigned type, const struct ipsecif_lifetime *lt)
{
    uint8_t *p = ext_put(b, type, 32);

    if (p != NULL) {
        s32(p + 4, lt->allocations);
        s64(p + 8, lt->bytes);
        s64(p + 16, lt->addtime);
        s64(p + 24, lt->usetime);
    }
}

/* A time of the library's clock (ms) as wire seconds: Unix seconds once
 * ipsecif_pfkey_set_wallclock() gave the offset. never_zero keeps a use time
 * of 0 (never used) at 0. */
static uint64_t wire_time(int64_t off_ms, uint64_t ms, bool never_zero)
{
    uint64_t t;

    if (never_zero && ms == 0) {
        return 0;
    }
    if (off_ms >= 0) {
        t = ms > UINT64_MAX - (uint64_t)off_ms ? UINT64_MAX : ms + (uint64_t)off_ms;
    } else {
        uint64_t back = (uint64_t)(-(off_ms + 1)) + 1u;

        t = ms >= back ? ms - back : 0;
    }
    return t / 1000u;
}

/* The current lifetime with the times on the wire in seconds. */
static void current_put(struct bld *b, const struct ipsecif_lifetime *lt, uint64_t added,
                        uint64_t used)
{
    struct ipsecif_lifetime cur = *lt;

    cur.addtime = wire_time(b->wall_off, added, false);
    cur.usetime = wire_time(b->wall_off, used, true);
    lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_CURRENT, &cur);
}

/* ---- SA extensions ---- */

#if IPSECIF_SA_KEEP_KEYS
/* sadb_key: bits of key, then the key padded to 64 bits (RFC 2367 2.3.4). */
static void key_put(struct bld *b, unsigned type, const uint8_t *key, size_t len)
{
    uint8_t *p;

    if (len == 0) {
        return;
    }
    p = ext_put(b, type, 8 + len);
    if (p != NULL) {
        s16(p + 4, (uint16_t)(len * 8u));
        memcpy(p + 8, key, len);
    }
}
#endif

static void sa_ext_put(struct bld *b, const struct ipsecif_sa_info *si)
{
    const struct pfkey_dialect *dl = b->dl;
    const struct ipsecif_sa_params *sp = &si->params;
    uint32_t units = sp->replay_window / dl->replay_unit;
    uint8_t *p = ext_put(b, IPSECIF_SADB_EXT_SA, 16);

    if (p != NULL) {
        ipsecif_store32(p + 4, sp->spi);
        p[8] = (uint8_t)(units > 255 ? 255 : units);
        p[9] = si->state;
        p[10] = ipsecif_pfkey_alg_to_wire(dl->aalg, dl->naalg, sp->aalg);
        p[11] = ipsecif_pfkey_alg_to_wire(dl->ealg, dl->nealg, sp->ealg);
        if (sp->proto == IPSECIF_IPPROTO_AH && sp->ealg == IPSECIF_EALG_AES_GMAC) {
            const struct walg *wg = ipsecif_pfkey_ah_gmac_by_key(dl, sp->ekey_len);

            p[10] = wg != NULL ? wg->wire : IPSECIF_SADB_AALG_NONE;
            p[11] = IPSECIF_SADB_EALG_NONE;
        }
    }
    /* A window too wide for sadb_sa_replay goes in its own extension. */
    if (dl->replay_ext != 0 && units > 255) {
        p = ext_put(b, dl->replay_ext, 8);
        if (p != NULL) {
            s32(p + 4, sp->replay_window);
        }
    }
}

static void sa2_put(struct bld *b, const struct ipsecif_sa_params *sp)
{
    uint8_t *p = ext_put(b, IPSECIF_SADB_X_EXT_SA2, 16);

    if (p != NULL) {
        p[4] = sp->mode;
        s32(p + 8, sp->seq);
        s32(p + 12, b->dl->reqid32 ? sp->reqid : (sp->reqid & 0xffffu));
    }
}

static void port_ext_put(struct bld *b, unsigned type, uint16_t port)
{
    uint8_t *p = ext_put(b, type, 8);

    if (p != NULL) {
        ipsecif_store16(p + 4, port);
    }
}

static void natt_put(struct bld *b, const struct ipsecif_sa_params *sp)
{
    uint8_t *p;

    if (sp->natt_sport == 0) {
        return;
    }
    p = ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_TYPE, 8);
    if (p != NULL) {
        p[4] = UDP_ENCAP_ESPINUDP;
    }
    port_ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_SPORT, sp->natt_sport);
    port_ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_DPORT, sp->natt_dport);
}

/* The SA part of replies, DUMP entries and EXPIRE: no key material (GET and
 * DUMP add the keys after it). */
static void sa_exts_put(struct bld *b, const struct ipsecif_sa_info *si, enum limits lim)
{
    const struct ipsecif_sa_params *sp = &si->params;

    sa_ext_put(b, si);
    sa2_put(b, sp);
    current_put(b, &si->current, si->current.addtime, si->current.usetime);
    if (lim != LIM_SOFT) {
        lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_HARD, &sp->hard);
    }
    if (lim != LIM_HARD) {
        lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_SOFT, &sp->soft);
    }
    host_pair_put(b, &sp->src, &sp->dst);
    natt_put(b, sp);
}

/* ---- Policy extensions ---- */

static size_t req_size(const struct pfkey_dialect *dl, const struct ipsecif_ipsecreq *r)
{
    size_t n = dl->req_hdr;

    if (r->tun_src.family != IPSECIF_AF_UNSPEC) {
        n += 2 * sockaddr_size(r->tun_src.family);
    }
    return align8(n);
}

static size_t requests_size(const struct pfkey_dialect *dl, const struct ipsecif_ipsecreq *req,
                            uint8_t n)
{
    size_t len = 0;
    uint8_t i;

    for (i = 0; i < n; i++) {
        len += req_size(dl, &req[i]);
    }
    return len;
}

/* One sadb_x_ipsecrequest at p (room checked by the caller); its size. */
static size_t request_put(const struct pfkey_dialect *dl, uint8_t *p,
                          const struct ipsecif_ipsecreq *r)
{
    size_t rs = req_size(dl, r);

    s16(p, (uint16_t)rs);
    s16(p + 2, r->proto);
    p[4] = r->mode;
    p[5] = r->level;
    if (dl->reqid32) {
        s32(p + 8, r->reqid);
    } else {
        s16(p + 6, (uint16_t)r->reqid);
    }
    if (r->tun_src.family != IPSECIF_AF_UNSPEC) {
        sockaddr_put(dl, p + dl->req_hdr, &r->tun_src, 0);
        sockaddr_put(dl, p + dl->req_hdr + sockaddr_size(r->tun_src.family), &r->tun_dst, 0);
    }
    return rs;
}

/* A sadb_x_policy with its request list; NULL if it did not fit. */
static uint8_t *x_policy_put(struct bld *b, uint16_t type, uint8_t dir, uint32_t id,
                             const struct ipsecif_ipsecreq *req, uint8_t n)
{
    uint8_t *p = ext_put(b, IPSECIF_SADB_X_EXT_POLICY, POLICY_HDR + requests_size(b->dl, req, n));
    uint8_t *q;
    uint8_t i;

    if (p == NULL) {
        return NULL;
    }
    s16(p + 4, type);
    p[6] = dir;
    s32(p + 8, id);
    q = p + POLICY_HDR;
    for (i = 0; i < n; i++) {
        q += request_put(b->dl, q, &req[i]);
    }
    return p;
}

static void policy_ext_put(struct bld *b, const struct ipsecif_policy *pol)
{
    uint16_t type = pol->action == IPSECIF_ACTION_IPSEC  ? IPSEC_POLICY_IPSEC
                    : pol->action == IPSECIF_ACTION_NONE ? IPSEC_POLICY_NONE
                                                         : IPSEC_POLICY_DISCARD;
    uint8_t *p =
        x_policy_put(b, type, pol->dir, ipsecif_pfkey_policy_id_to_wire(b->dl, pol->id, pol->dir),
                     pol->req, pol->nreq);

    if (p != NULL && b->dl->has_priority) {
        s32(p + 12, pol->priority);
    }
}

static void policy_exts_put(struct bld *b, const struct ipsecif_policy *pol)
{
    const struct ipsecif_selector *s = &pol->sel;
    struct ipsecif_lifetime zero;

    policy_ext_put(b, pol);
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_SRC, &s->src, wire_port(s->ulproto, s->sport), s->src_plen,
             s->ulproto);
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_DST, &s->dst, wire_port(s->ulproto, s->dport), s->dst_plen,
             s->ulproto);
    memset(&zero, 0, sizeof(zero));
    current_put(b, &zero, pol->created, pol->lastused);
}

static void sockpol_ext_put(struct bld *b, const struct ipsecif_sockpolicy *sp, uint32_t id)
{
    static const uint16_t types[] = {IPSEC_POLICY_ENTRUST, IPSEC_POLICY_BYPASS, IPSEC_POLICY_IPSEC};

    (void)x_policy_put(b, types[sp->type < IPSECIF_ARRAY_SIZE(types) ? sp->type : 0], sp->dir, id,
                       sp->req, sp->nreq);
}

/*
 * A per-socket policy in a Linux X_SPDDUMP, as Linux lists them: a
 * per-socket id; the selector is the socket's local end (source outbound,
 * destination inbound), the other end any.
 */
static void sockpol_exts_put(struct bld *b, const struct ipsecif_sock *s,
                             const struct ipsecif_sockpolicy *sp, uint32_t slot)
{
    bool out = sp->dir == IPSECIF_DIR_OUT;
    uint8_t plen = ipsecif_addr_is_unspec(&s->local) ? 0 : full_plen(&s->local);
    struct ipsecif_addr any;
    struct ipsecif_lifetime cur;

    sockpol_ext_put(b, sp, ipsecif_pfkey_sock_policy_id(slot, sp->dir));
    memset(&any, 0, sizeof(any));
    any.family = s->local.family;
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_SRC, out ? &s->local : &any, out ? s->lport : 0,
             out ? plen : 0, s->proto);
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_DST, out ? &any : &s->local, out ? 0 : s->lport,
             out ? 0 : plen, s->proto);
    memset(&cur, 0, sizeof(cur));
    lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_CURRENT, &cur);
}

size_t ipsecif_pfkey_sockpol_put(const struct pfkey_dialect *dl,
                                 const struct ipsecif_sockpolicy *sp, uint8_t *buf, size_t cap)
{
    struct bld b = {buf, cap, 0, false, dl, 0};

    sockpol_ext_put(&b, sp, 0);
    return b.over ? 0 : b.len;
}

/* ---- REGISTER and ACQUIRE ---- */

/* One SUPPORTED extension listing table t, then table t2 (n2 may be 0). */
static void supported_put(struct bld *b, unsigned type, const struct walg *t, size_t n,
                          const struct walg *t2, size_t n2)
{
    uint8_t *p = ext_put(b, type, 8 + 8 * (n + n2));
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < n + n2; i++) {
        const struct walg *w = i < n ? &t[i] : &t2[i - n];
        uint8_t *a = p + 8 + 8 * i;

        a[0] = w->wire;
        a[1] = w->ivlen;
        s16(a + 2, w->minbits);
        s16(a + 4, w->maxbits);
    }
}

/* One sadb_comb of the proposal. */
static void comb_put(const struct pfkey_dialect *dl, uint8_t *c, uint8_t ealg, uint8_t aalg)
{
    const struct walg *e = ipsecif_pfkey_alg_by_wire(dl->ealg, dl->nealg, ealg);
    const struct walg *a = ipsecif_pfkey_alg_by_wire(dl->aalg, dl->naalg, aalg);

    c[0] = aalg;
    c[1] = ealg;
    if (a != NULL) {
        s16(c + 4, a->minbits);
        s16(c + 6, a->maxbits);
    }
    if (e != NULL) {
        s16(c + 8, e->minbits);
        s16(c + 10, e->maxbits);
    }
    /*
     * RFC 2367 2.3.4: flags and reserved 0; allocations and bytes 0 (no
     * limit); soft_addtime at 40, hard_addtime at 48: a day hard, 80 %
     * of it soft, as KAME proposes; use times 0 (no limit).
     */
    s64(c + 40, 69120);
    s64(c + 48, 86400);
}

/* ACQUIRE proposal: the combinations the library can run, best first. */
static void proposal_put(struct bld *b)
{
    static const uint8_t combs[][2] = {
        {IPSECIF_SADB_X_EALG_AESGCM16, IPSECIF_SADB_AALG_NONE},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_256},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_512},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_AALG_SHA1HMAC},
        {IPSECIF_SADB_EALG_3DESCBC, IPSECIF_SADB_AALG_SHA1HMAC},
    };
    uint8_t *p = ext_put(b, IPSECIF_SADB_EXT_PROPOSAL, 8 + COMB_LEN * IPSECIF_ARRAY_SIZE(combs));
    size_t i;

    if (p == NULL) {
        return;
    }
    p[4] = 32; /* replay window, packets */
    for (i = 0; i < IPSECIF_ARRAY_SIZE(combs); i++) {
        comb_put(b->dl, p + 8 + COMB_LEN * i, combs[i][0], combs[i][1]);
    }
}

/* ---- Bodies ---- */

/* GET and DUMP replies carry the keys (RFC 2367 3.1.5, 3.1.11). */
static void sa_body(struct bld *b, const struct pfkey_out *o)
{
    sa_exts_put(b, o->sa, LIM_BOTH);
#if IPSECIF_SA_KEEP_KEYS
    if (o->keys != NULL && o->keys->proto == IPSECIF_IPPROTO_AH) {
        /* AH's one key is KEY_AUTH, AES-GMAC's included. */
        key_put(b, IPSECIF_SADB_EXT_KEY_AUTH, o->keys->akey, o->keys->akey_len);
        key_put(b, IPSECIF_SADB_EXT_KEY_AUTH, o->keys->ekey, o->keys->ekey_len);
    } else if (o->keys != NULL) {
        key_put(b, IPSECIF_SADB_EXT_KEY_AUTH, o->keys->akey, o->keys->akey_len);
        key_put(b, IPSECIF_SADB_EXT_KEY_ENCRYPT, o->keys->ekey, o->keys->ekey_len);
    }
#endif
}

static void delete_body(struct bld *b, const struct pfkey_out *o)
{
    uint8_t *p;

    if (o->has_spi) {
        p = ext_put(b, IPSECIF_SADB_EXT_SA, 16);
        if (p != NULL) {
            ipsecif_store32(p + 4, o->spi);
        }
    }
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_SRC, &o->src->a, o->src->port, o->src->plen,
             o->src->proto);
    addr_put(b, IPSECIF_SADB_EXT_ADDRESS_DST, &o->dst->a, o->dst->port, o->dst->plen,
             o->dst->proto);
}

static void policy_body(struct bld *b, const struct pfkey_out *o)
{
    if (o->sock != NULL) {
        sockpol_exts_put(b, &o->sock->sock, &o->sock->pol[o->sock_dir_index], o->sock_slot);
    } else {
        policy_exts_put(b, o->pol);
    }
}

static void register_body(struct bld *b, const struct pfkey_out *o)
{
    /* AH takes the authentication algorithms only (RFC 2367 section 3.1.7). */
    if (o->satype == IPSECIF_SADB_SATYPE_AH) {
        supported_put(b, IPSECIF_SADB_EXT_SUPPORTED_AUTH, b->dl->aalg, b->dl->naalg, b->dl->ah_gmac,
                      b->dl->nah_gmac);
    }
    if (o->satype == IPSECIF_SADB_SATYPE_UNSPEC || o->satype == IPSECIF_SADB_SATYPE_ESP) {
        supported_put(b, IPSECIF_SADB_EXT_SUPPORTED_AUTH, b->dl->aalg, b->dl->naalg, NULL, 0);
        supported_put(b, IPSECIF_SADB_EXT_SUPPORTED_ENCRYPT, b->dl->ealg, b->dl->nealg, NULL, 0);
    }
}

static void acquire_body(struct bld *b, const struct pfkey_out *o)
{
    host_pair_put(b, &o->ev->acquire.src, &o->ev->acquire.dst);
    policy_ext_put(b, &o->ev->acquire.policy);
    proposal_put(b);
}

static size_t build(const struct ipsecif_ctx *ctx, const struct pfkey_dialect *dl,
                    const struct pfkey_out *o, uint8_t *buf, size_t cap)
{
    struct bld b = {buf, cap, 0, false, dl, ctx->pfkey.wall_off_ms};

    hdr_put(&b, o);
    switch (o->body) {
    case B_HDR:
        break;
    case B_SA:
        sa_body(&b, o);
        break;
    case B_DELETE:
        delete_body(&b, o);
        break;
    case B_POLICY:
        policy_body(&b, o);
        break;
    case B_REGISTER:
        register_body(&b, o);
        break;
    case B_ACQUIRE:
        acquire_body(&b, o);
        break;
    case B_EXPIRE:
        /* RFC 2367 3.1.10: the current lifetime and the limit that fired. */
        sa_exts_put(&b, &o->ev->expire.sa, o->ev->expire.hard ? LIM_HARD : LIM_SOFT);
        break;
    }
    finish(&b);
    return b.over ? 0 : b.len;
}

/* ---- Delivery ---- */

void ipsecif_pfkey_out_init(struct pfkey_out *o, const struct pfkey_msg *m, enum pfkey_body body)
{
    memset(o, 0, sizeof(*o));
    o->type = m->type;
    o->satype = m->satype;
    o->seq = m->seq;
    o->pid = m->pid;
    o->body = body;
}

bool ipsecif_pfkey_dump_entry(struct pfkey_dump *dp, struct pfkey_out *o, enum pfkey_body body)
{
    if (dp->left == 0) {
        return false;
    }
    dp->left--;
    ipsecif_pfkey_out_init(o, dp->r->m, body);
    o->seq = dp->left;
    return true;
}

void ipsecif_pfkey_reply_hdr(const struct pfkey_req *r, uint8_t err, enum pfkey_dest how)
{
    struct pfkey_out o;

    ipsecif_pfkey_out_init(&o, r->m, B_HDR);
    o.err = err;
    ipsecif_pfkey_emit(r->ctx, r->sender, how, &o);
}

/* A KAME promiscuous copy is the message behind an X_PROMISC header, which
 * goes into the BUILD_OFF bytes kept in front of it. */
static void promisc_copy(struct ipsecif_ctx *ctx, uint32_t id, const struct pfkey_dialect *dl,
                         const uint8_t *msg, size_t len)
{
    uint8_t *w;

    if (!dl->promisc_wrap) {
        ctx->port->pfkey_deliver(ctx->user, id, msg, len);
        return;
    }
    if (msg != ctx->pfkey.buf + BUILD_OFF || (len + HDR_LEN) / 8 > 0xffffu) {
        return;
    }
    w = ctx->pfkey.buf;
    memset(w, 0, HDR_LEN);
    w[0] = IPSECIF_PF_KEY_V2;
    w[1] = IPSECIF_SADB_X_PROMISC;
    s16(w + 4, (uint16_t)((len + HDR_LEN) / 8));
    ctx->port->pfkey_deliver(ctx->user, id, w, len + HDR_LEN);
}

static bool is_target(const struct ipsecif_pfkey_ep *ep, uint32_t idx, uint32_t sender,
                      enum pfkey_dest how, uint8_t satype)
{
    if (idx == sender) {
        return true;
    }
    if (how == TO_ALL) {
        return true;
    }
    if (how == TO_REGISTERED) {
        return satype == IPSECIF_SADB_SATYPE_UNSPEC ? ep->registered != 0
                                                    : (ep->registered & (1u << satype)) != 0;
    }
    return false;
}

/* The message in dialect dl; too large for IPSECIF_PFKEY_MSG_MAX, the
 * header alone says so. */
static size_t build_or_nobufs(struct ipsecif_ctx *ctx, const struct pfkey_dialect *dl,
                              const struct pfkey_out *o, uint8_t *buf, size_t cap)
{
    size_t len = build(ctx, dl, o, buf, cap);

    if (len == 0) {
        struct pfkey_out e = *o;

        e.body = B_HDR;
        e.err = dl->enobufs;
        len = build(ctx, dl, &e, buf, cap);
    }
    return len;
}

/* Built once, on the first endpoint of dialect dl that should see it. */
static void emit_dialect(struct ipsecif_ctx *ctx, const struct pfkey_dialect *dl, uint32_t sender,
                         enum pfkey_dest how, const struct pfkey_out *o)
{
    uint8_t *buf = ctx->pfkey.buf + BUILD_OFF;
    size_t len = 0;
    uint32_t i;

    for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
        const struct ipsecif_pfkey_ep *ep = &ctx->pfkey.eps[i];
        bool target;

        if (!ep->in_use || ep->dialect != dl->id) {
            continue;
        }
        target = is_target(ep, i, sender, how, o->satype);
        if (!target && !ep->promisc) {
            continue;
        }
        if (len == 0) {
            len = build_or_nobufs(ctx, dl, o, buf, IPSECIF_PFKEY_MSG_MAX - BUILD_OFF);
        }
        if (target) {
            ctx->port->pfkey_deliver(ctx->user, i + 1, buf, len);
        } else {
            promisc_copy(ctx, i + 1, dl, buf, len);
        }
    }
}

/* Hand the message to every target, and a copy to every promiscuous
 * endpoint that is not one. */
void ipsecif_pfkey_emit(struct ipsecif_ctx *ctx, uint32_t sender, enum pfkey_dest how,
                        const struct pfkey_out *o)
{
    size_t k;

    if (ctx->port->pfkey_deliver == NULL) {
        return;
    }
    for (k = 0; k < PFKEY_NDIALECTS; k++) {
        emit_dialect(ctx, &ipsecif_pfkey_dialects[k], sender, how, o);
    }
    if (o->keys != NULL) {
        /* Keys do not outlive the message in the context. */
        ipsecif_wipe(ctx->pfkey.buf, IPSECIF_PFKEY_MSG_MAX);
    }
}

/* Promiscuous endpoints of the sender's dialect see what it sent. */
void ipsecif_pfkey_copy_request(struct ipsecif_ctx *ctx, uint32_t sender,
                                const struct pfkey_dialect *dl, const uint8_t *msg, size_t len)
{
    uint32_t i;

    if (ctx->port->pfkey_deliver == NULL) {
        return;
    }
    for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
        const struct ipsecif_pfkey_ep *ep = &ctx->pfkey.eps[i];

        if (i == sender || !ep->in_use || !ep->promisc || ep->dialect != dl->id) {
            continue;
        }
        if (!dl->promisc_wrap) {
            promisc_copy(ctx, i + 1, dl, msg, len);
        } else if (len <= IPSECIF_PFKEY_MSG_MAX - BUILD_OFF) {
            memcpy(ctx->pfkey.buf + BUILD_OFF, msg, len);
            promisc_copy(ctx, i + 1, dl, ctx->pfkey.buf + BUILD_OFF, len);
            /* An ADD or UPDATE carries keys. */
            ipsecif_wipe(ctx->pfkey.buf, BUILD_OFF + len);
        }
    }
}
