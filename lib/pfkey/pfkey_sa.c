/* PF_KEY SA messages onto the SADB: GETSPI, UPDATE, ADD, DELETE, GET,
 * ACQUIRE (from key management), REGISTER, FLUSH, DUMP; and the ACQUIRE and
 * EXPIRE that the core raises. */
#include "pfkey_priv.h"

/* KAME's default GETSPI range. */
#define SPI_DEFAULT_MIN 0x100u
#define SPI_DEFAULT_MAX 0x0fffffffu

static uint8_t satype_of(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_AH ? IPSECIF_SADB_SATYPE_AH : IPSECIF_SADB_SATYPE_ESP;
}

static uint8_t sa_proto(const struct pfkey_dialect *dl, uint8_t satype, uint8_t *proto)
{
    switch (satype) {
    case IPSECIF_SADB_SATYPE_ESP:
        *proto = IPSECIF_IPPROTO_ESP;
        return 0;
    case IPSECIF_SADB_SATYPE_AH:
        *proto = IPSECIF_IPPROTO_AH;
        return 0;
    case IPSECIF_SADB_X_SATYPE_IPCOMP:
        return dl->eopnotsupp;
    default:
        return IPSECIF_PFKEY_EINVAL;
    }
}

/* What every SA message names: the protocol and the two addresses. */
static uint8_t proto_src_dst(const struct pfkey_req *r, uint8_t *proto, struct pfkey_addr *src,
                             struct pfkey_addr *dst)
{
    uint8_t rc = sa_proto(r->dl, r->m->satype, proto);

    return rc != 0 ? rc : ipsecif_pfkey_src_dst(r->dl, r->m, src, dst);
}

static void key_get(const struct pfkey_msg *m, unsigned t, const uint8_t **key, size_t *len)
{
    const uint8_t *e = ext(m, t);

    *key = NULL;
    *len = 0;
    if (e != NULL) {
        *len = h16(e + 4) / 8u;
        *key = e + 8;
    }
}

static void lifetime_get(const struct pfkey_msg *m, unsigned t, struct ipsecif_lifetime *lt)
{
    const uint8_t *e = ext(m, t);

    memset(lt, 0, sizeof(*lt));
    if (e != NULL) {
        lt->allocations = h32(e + 4);
        lt->bytes = h64(e + 8);
        lt->addtime = h64(e + 16);
        lt->usetime = h64(e + 24);
    }
}

/* SA2's mode and reqid, where the message has one. */
static uint8_t sa2_get(const struct pfkey_msg *m, uint8_t *mode, uint32_t *reqid)
{
    const uint8_t *e = ext(m, IPSECIF_SADB_X_EXT_SA2);

    if (e == NULL) {
        return 0;
    }
    if (e[4] > IPSECIF_MODE_TUNNEL) {
        return IPSECIF_PFKEY_EINVAL;
    }
    *mode = e[4];
    *reqid = h32(e + 12);
    return 0;
}

/* AH: an authentication algorithm with its key, and no encryption. KAME's
 * AES-GMAC numbers become the library's AES-GMAC with KEY_AUTH as its key. */
static uint8_t ah_algs_get(const struct pfkey_dialect *dl, const struct walg *wa,
                           const struct pfkey_msg *m, const uint8_t *sa,
                           struct ipsecif_sa_params *p)
{
    const struct walg *wg = ipsecif_pfkey_alg_by_wire(dl->ah_gmac, dl->nah_gmac, sa[10]);
    const uint8_t *key;
    size_t len;

    if ((wa == NULL && wg == NULL) || sa[11] != IPSECIF_SADB_EALG_NONE ||
        has(m, IPSECIF_SADB_EXT_KEY_ENCRYPT) || !has(m, IPSECIF_SADB_EXT_KEY_AUTH)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    key_get(m, IPSECIF_SADB_EXT_KEY_AUTH, &key, &len);
    if (wg != NULL) {
        p->ealg = wg->lib;
        p->ekey = key;
        p->ekey_len = len;
        return len * 8u == wg->maxbits ? 0 : IPSECIF_PFKEY_EINVAL;
    }
    p->ealg = IPSECIF_EALG_NONE;
    p->aalg = wa->lib;
    p->akey = key;
    p->akey_len = len;
    return ipsecif_aalg_keylen_ok(p->aalg, p->akey_len) ? 0 : IPSECIF_PFKEY_EINVAL;
}

/* The algorithms of the SA extension and their keys. */
static uint8_t algs_get(const struct pfkey_dialect *dl, const struct pfkey_msg *m,
                        const uint8_t *sa, struct ipsecif_sa_params *p)
{
    const struct walg *we = ipsecif_pfkey_alg_by_wire(dl->ealg, dl->nealg, sa[11]);
    const struct walg *wa = ipsecif_pfkey_alg_by_wire(dl->aalg, dl->naalg, sa[10]);

    if (p->proto == IPSECIF_IPPROTO_AH) {
        return ah_algs_get(dl, wa, m, sa, p);
    }
    if (we == NULL || (wa == NULL && sa[10] != IPSECIF_SADB_AALG_NONE)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    p->ealg = we->lib;
    p->aalg = wa != NULL ? wa->lib : IPSECIF_AALG_NONE;
    /* A key extension must come exactly when the algorithm takes a key. */
    if ((p->aalg != IPSECIF_AALG_NONE) != has(m, IPSECIF_SADB_EXT_KEY_AUTH)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (p->ealg != IPSECIF_EALG_NULL && !has(m, IPSECIF_SADB_EXT_KEY_ENCRYPT)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    key_get(m, IPSECIF_SADB_EXT_KEY_ENCRYPT, &p->ekey, &p->ekey_len);
    key_get(m, IPSECIF_SADB_EXT_KEY_AUTH, &p->akey, &p->akey_len);
    if (!ipsecif_ealg_keylen_ok(p->ealg, p->ekey_len) ||
        !ipsecif_aalg_keylen_ok(p->aalg, p->akey_len)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* AEAD carries its own integrity check. */
    if (ipsecif_ealg_find(p->ealg)->aead != 0 && p->aalg != IPSECIF_AALG_NONE) {
        return IPSECIF_PFKEY_EINVAL;
    }
    return 0;
}

static uint8_t natt_get(const struct pfkey_msg *m, struct ipsecif_sa_params *p)
{
    const uint8_t *e = ext(m, IPSECIF_SADB_X_EXT_NAT_T_TYPE);
    const uint8_t *sp = ext(m, IPSECIF_SADB_X_EXT_NAT_T_SPORT);
    const uint8_t *dp = ext(m, IPSECIF_SADB_X_EXT_NAT_T_DPORT);

    if (e == NULL) {
        return 0;
    }
    if (e[4] != UDP_ENCAP_ESPINUDP || sp == NULL || dp == NULL) {
        return IPSECIF_PFKEY_EINVAL;
    }
    p->natt_sport = ipsecif_load16(sp + 4);
    p->natt_dport = ipsecif_load16(dp + 4);
    return p->natt_sport == 0 || p->natt_dport == 0 ? IPSECIF_PFKEY_EINVAL : 0;
}

/* UPDATE and ADD: everything an SA needs, checked against the algorithm. */
static uint8_t sa_params(const struct pfkey_req *r, struct ipsecif_sa_params *p,
                         struct pfkey_addr *src, struct pfkey_addr *dst)
{
    const struct pfkey_msg *m = r->m;
    const uint8_t *sa = ext(m, IPSECIF_SADB_EXT_SA);
    const uint8_t *e;
    uint8_t rc;

    memset(p, 0, sizeof(*p));
    rc = proto_src_dst(r, &p->proto, src, dst);
    if (rc == 0 && sa == NULL) {
        rc = IPSECIF_PFKEY_EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    p->spi = ipsecif_load32(sa + 4);
    p->src = src->a;
    p->dst = dst->a;
    p->seq = m->seq;
    p->replay_window = r->dl->replay_unit * sa[8];
    e = ext(m, r->dl->replay_ext);
    if (e != NULL) {
        p->replay_window = h32(e + 4);
    }
    rc = algs_get(r->dl, m, sa, p);
    if (rc == 0) {
        rc = sa2_get(m, &p->mode, &p->reqid);
    }
    if (rc != 0) {
        return rc;
    }
    lifetime_get(m, IPSECIF_SADB_EXT_LIFETIME_HARD, &p->hard);
    lifetime_get(m, IPSECIF_SADB_EXT_LIFETIME_SOFT, &p->soft);
    return natt_get(m, p);
}

/* GET and DUMP replies carry the keys (RFC 2367 3.1.5, 3.1.11); broadcasts
 * of ADD and UPDATE do not, as in KAME. */
static void keys_of(struct ipsecif_ctx *ctx, struct pfkey_out *o, const struct ipsecif_sa_info *si)
{
#if IPSECIF_SA_KEEP_KEYS
    o->keys = ipsecif_sadb_lookup_spi(ctx, si->params.proto, &si->params.dst, si->params.spi);
#else
    (void)ctx;
    (void)si;
    o->keys = NULL;
#endif
}

/* The SA as it is now, in answer to r. */
static void sa_reply(const struct pfkey_req *r, const struct ipsecif_sa_info *info, bool keys,
                     enum pfkey_dest how)
{
    struct pfkey_out o;

    ipsecif_pfkey_out_init(&o, r->m, B_SA);
    o.sa = info;
    if (keys) {
        keys_of(r->ctx, &o, info);
    }
    ipsecif_pfkey_emit(r->ctx, r->sender, how, &o);
}

uint8_t ipsecif_pfkey_do_add_update(const struct pfkey_req *r)
{
    struct ipsecif_sa_params p;
    struct ipsecif_sa_info info;
    struct pfkey_addr src, dst;
    uint8_t rc;
    int err;

    rc = sa_params(r, &p, &src, &dst);
    if (rc != 0) {
        return rc;
    }
    if (r->m->type == IPSECIF_SADB_ADD) {
        err = ipsecif_sa_add(r->ctx, &p, r->now);
    } else {
        err = ipsecif_sa_update(r->ctx, &p, r->now);
        if (err == IPSECIF_ERR_NOENT) {
            return IPSECIF_PFKEY_ESRCH;
        }
    }
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->dl->id, err);
    }
    if (ipsecif_sa_get(r->ctx, p.proto, NULL, &p.dst, p.spi, &info) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    sa_reply(r, &info, false, TO_ALL);
    return 0;
}

uint8_t ipsecif_pfkey_do_getspi(const struct pfkey_req *r)
{
    const struct pfkey_msg *m = r->m;
    const uint8_t *e;
    struct ipsecif_sa_info info;
    struct pfkey_addr src, dst;
    uint32_t lo = SPI_DEFAULT_MIN, hi = SPI_DEFAULT_MAX, spi = 0, reqid = 0;
    uint8_t proto = 0, mode = IPSECIF_MODE_ANY;
    uint8_t rc;
    int err;

    rc = proto_src_dst(r, &proto, &src, &dst);
    if (rc != 0) {
        return rc;
    }
    e = ext(m, IPSECIF_SADB_EXT_SPIRANGE);
    if (e != NULL) {
        lo = h32(e + 4);
        hi = h32(e + 8);
    }
    rc = sa2_get(m, &mode, &reqid);
    if (rc != 0) {
        return rc;
    }
    err =
        ipsecif_sa_getspi(r->ctx, proto, &src.a, &dst.a, mode, reqid, lo, hi, m->seq, r->now, &spi);
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->dl->id, err);
    }
    if (ipsecif_sa_get(r->ctx, proto, NULL, &dst.a, spi, &info) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    sa_reply(r, &info, false, TO_ONE);
    return 0;
}

uint8_t ipsecif_pfkey_do_get(const struct pfkey_req *r)
{
    const struct pfkey_msg *m = r->m;
    struct ipsecif_sa_info info;
    struct pfkey_addr src, dst;
    uint8_t proto = 0;
    uint8_t rc;

    rc = proto_src_dst(r, &proto, &src, &dst);
    if (rc == 0 && !has(m, IPSECIF_SADB_EXT_SA)) {
        rc = IPSECIF_PFKEY_EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    if (ipsecif_sa_get(r->ctx, proto, &src.a, &dst.a,
                       ipsecif_load32(ext(m, IPSECIF_SADB_EXT_SA) + 4), &info) != IPSECIF_OK) {
        /* What each kernel answers for a missing SA. */
        return r->dl->enosa;
    }
    sa_reply(r, &info, true, TO_ONE);
    return 0;
}

/* DELETE without an SA extension deletes every SA of the type between the
 * two addresses (KAME); the walk only collects, deletion follows it. */
struct collect {
    uint8_t proto;
    const struct ipsecif_addr *src;
    const struct ipsecif_addr *dst;
    uint32_t spi[16];
    unsigned n;
};

static int collect_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct collect *c = arg;

    if (sa->params.proto == c->proto && ipsecif_addr_eq(&sa->params.src, c->src) &&
        ipsecif_addr_eq(&sa->params.dst, c->dst)) {
        c->spi[c->n++] = sa->params.spi;
        if (c->n == IPSECIF_ARRAY_SIZE(c->spi)) {
            return 1;
        }
    }
    return 0;
}

static void delete_all(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                       const struct ipsecif_addr *dst)
{
    struct collect c;
    unsigned i;

    do {
        memset(&c, 0, sizeof(c));
        c.proto = proto;
        c.src = src;
        c.dst = dst;
        (void)ipsecif_sa_walk(ctx, proto, collect_fn, &c);
        for (i = 0; i < c.n; i++) {
            (void)ipsecif_sa_delete(ctx, proto, src, dst, c.spi[i]);
        }
    } while (c.n == IPSECIF_ARRAY_SIZE(c.spi));
}

uint8_t ipsecif_pfkey_do_delete(const struct pfkey_req *r)
{
    const struct pfkey_msg *m = r->m;
    struct pfkey_addr src, dst;
    uint8_t proto = 0;
    struct pfkey_out o;
    uint8_t rc;

    rc = proto_src_dst(r, &proto, &src, &dst);
    if (rc != 0) {
        return rc;
    }
    ipsecif_pfkey_out_init(&o, m, B_DELETE);
    o.src = &src;
    o.dst = &dst;
    if (has(m, IPSECIF_SADB_EXT_SA)) {
        o.has_spi = true;
        o.spi = ipsecif_load32(ext(m, IPSECIF_SADB_EXT_SA) + 4);
        if (ipsecif_sa_delete(r->ctx, proto, &src.a, &dst.a, o.spi) != IPSECIF_OK) {
            return IPSECIF_PFKEY_ESRCH;
        }
    } else {
        delete_all(r->ctx, proto, &src.a, &dst.a);
    }
    ipsecif_pfkey_emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

uint8_t ipsecif_pfkey_do_register(const struct pfkey_req *r)
{
    const struct pfkey_msg *m = r->m;
    struct ipsecif_pfkey_ep *ep = &r->ctx->pfkey.eps[r->sender];
    struct pfkey_out o;

    if (m->satype != IPSECIF_SADB_SATYPE_UNSPEC) {
        ep->registered |= 1u << m->satype;
    }
    ipsecif_pfkey_out_init(&o, m, B_REGISTER);
    ipsecif_pfkey_emit(r->ctx, r->sender, TO_REGISTERED, &o);
    return 0;
}

uint8_t ipsecif_pfkey_do_flush(const struct pfkey_req *r)
{
    if (r->m->satype == IPSECIF_SADB_SATYPE_UNSPEC) {
        (void)ipsecif_sa_flush(r->ctx, 0);
    } else if (r->m->satype == IPSECIF_SADB_SATYPE_ESP) {
        (void)ipsecif_sa_flush(r->ctx, IPSECIF_IPPROTO_ESP);
    } else if (r->m->satype == IPSECIF_SADB_SATYPE_AH) {
        (void)ipsecif_sa_flush(r->ctx, IPSECIF_IPPROTO_AH);
    }
    ipsecif_pfkey_reply_hdr(r, 0, TO_ALL);
    return 0;
}

uint8_t ipsecif_pfkey_do_acquire(const struct pfkey_req *r)
{
    /* From key management, an ACQUIRE with errno set reports a failed
     * negotiation (RFC 2367 section 3.1.6); it is noted and answered. */
    if (r->m->err == 0) {
        return IPSECIF_PFKEY_EINVAL;
    }
    ipsecif_pfkey_reply_hdr(r, r->m->err, TO_ONE);
    return 0;
}

static int count_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct pfkey_dump *dp = arg;

    (void)sa;
    dp->left++;
    return 0;
}

static int dump_sa_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct pfkey_dump *dp = arg;
    struct pfkey_out o;

    if (!ipsecif_pfkey_dump_entry(dp, &o, B_SA)) {
        return 1;
    }
    o.satype = satype_of(sa->params.proto);
    o.sa = sa;
    keys_of(dp->r->ctx, &o, sa);
    ipsecif_pfkey_emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
    return 0;
}

uint8_t ipsecif_pfkey_do_dump(const struct pfkey_req *r)
{
    struct pfkey_dump dp;
    uint8_t proto = 0;

    if (r->m->satype == IPSECIF_SADB_SATYPE_ESP) {
        proto = IPSECIF_IPPROTO_ESP;
    } else if (r->m->satype == IPSECIF_SADB_SATYPE_AH) {
        proto = IPSECIF_IPPROTO_AH;
    } else if (r->m->satype != IPSECIF_SADB_SATYPE_UNSPEC) {
        return IPSECIF_PFKEY_ENOENT; /* the SADB holds no other type */
    }
    memset(&dp, 0, sizeof(dp));
    dp.r = r;
    (void)ipsecif_sa_walk(r->ctx, proto, count_fn, &dp);
    if (dp.left == 0) {
        return IPSECIF_PFKEY_ENOENT;
    }
    (void)ipsecif_sa_walk(r->ctx, proto, dump_sa_fn, &dp);
    return 0;
}

/* ---- ACQUIRE and EXPIRE from the core ---- */

void ipsecif_pfkey_event(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev)
{
    struct pfkey_out o;

    if (ctx == NULL || ev == NULL || ctx->pfkey.eps == NULL) {
        return;
    }
    memset(&o, 0, sizeof(o));
    o.ev = ev;
    if (ev->type == IPSECIF_KM_ACQUIRE) {
        const struct ipsecif_policy *pol = &ev->acquire.policy;
        uint8_t proto = ev->acquire.req_index < pol->nreq ? pol->req[ev->acquire.req_index].proto
                                                          : IPSECIF_IPPROTO_ESP;

        o.type = IPSECIF_SADB_ACQUIRE;
        o.satype = satype_of(proto);
        o.seq = ++ctx->pfkey.seq;
        o.body = B_ACQUIRE;
    } else if (ev->type == IPSECIF_KM_EXPIRE) {
        o.type = IPSECIF_SADB_EXPIRE;
        o.satype = satype_of(ev->expire.sa.params.proto);
        o.seq = ev->expire.sa.params.seq;
        o.body = B_EXPIRE;
    } else {
        return;
    }
    ipsecif_pfkey_emit(ctx, UINT32_MAX, TO_REGISTERED, &o);
}
