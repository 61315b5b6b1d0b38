/* PF_KEY SPD messages onto the SPD (SPDADD, SPDUPDATE, SPDDELETE,
 * SPDDELETE2, SPDGET, SPDDUMP, SPDFLUSH), and per-socket policies: the
 * setsockopt bytes and the X_SOCKPOLICY message. */
#include "pfkey_priv.h"

#define SOCK_OFF (HDR_LEN + IPSECIF_SOCKPOL_SOCK_LEN) /* X_SOCKPOLICY: the policy */

static uint16_t sel_port(uint8_t ulproto, uint16_t v)
{
    return is_icmp(ulproto) && v == 0 ? IPSECIF_ICMP_ANY : v;
}

static bool dir_ok(const struct pfkey_dialect *dl, uint8_t dir)
{
    return dir == IPSECIF_DIR_IN || dir == IPSECIF_DIR_OUT ||
           (dl->has_fwd && dir == IPSECIF_DIR_FWD);
}

/* The sadb_x_policy header. Without a selector (policies named by id) the
 * direction and the type are not checked. */
static uint8_t x_policy_get(const struct pfkey_dialect *dl, const uint8_t *e,
                            struct ipsecif_policy *pol, bool need_sel)
{
    uint16_t type = h16(e + 4);

    pol->dir = e[6];
    pol->id = h32(e + 8);
    pol->priority = dl->has_priority ? h32(e + 12) : IPSECIF_PRIORITY_DEFAULT;
    if (need_sel && !dir_ok(dl, pol->dir)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (type == IPSEC_POLICY_IPSEC) {
        pol->action = IPSECIF_ACTION_IPSEC;
    } else if (type == IPSEC_POLICY_NONE) {
        pol->action = IPSECIF_ACTION_NONE;
    } else if (type == IPSEC_POLICY_DISCARD) {
        pol->action = IPSECIF_ACTION_DISCARD;
    } else if (need_sel) {
        /* entrust and bypass are per-socket only. */
        return IPSECIF_PFKEY_EINVAL;
    }
    return 0;
}

static uint8_t selector_get(const struct pfkey_req *r, struct ipsecif_selector *sel)
{
    struct pfkey_addr src, dst;
    uint8_t rc = ipsecif_pfkey_src_dst(r->dl, r->m, &src, &dst);

    if (rc != 0) {
        return rc;
    }
    if (src.proto != dst.proto) {
        return IPSECIF_PFKEY_EINVAL;
    }
    sel->src = src.a;
    sel->dst = dst.a;
    sel->src_plen = src.plen;
    sel->dst_plen = dst.plen;
    sel->ulproto = src.proto;
    sel->sport = sel_port(src.proto, src.port);
    sel->dport = sel_port(src.proto, dst.port);
    return 0;
}

static uint8_t policy_parse(const struct pfkey_req *r, struct ipsecif_policy *pol, bool need_sel)
{
    const uint8_t *e = ext(r->m, IPSECIF_SADB_X_EXT_POLICY);
    uint8_t rc;

    memset(pol, 0, sizeof(*pol));
    if (e == NULL) {
        return IPSECIF_PFKEY_EINVAL;
    }
    rc = x_policy_get(r->dl, e, pol, need_sel);
    if (rc == 0) {
        rc = ipsecif_pfkey_requests_parse(r->dl, e + POLICY_HDR,
                                          r->m->elen[IPSECIF_SADB_X_EXT_POLICY] - POLICY_HDR, pol);
    }
    if (rc != 0 || !need_sel) {
        return rc;
    }
    return selector_get(r, &pol->sel);
}

static void policy_reply(const struct pfkey_req *r, const struct ipsecif_policy *pol,
                         enum pfkey_dest how)
{
    struct pfkey_out o;

    ipsecif_pfkey_out_init(&o, r->m, B_POLICY);
    o.pol = pol;
    ipsecif_pfkey_emit(r->ctx, r->sender, how, &o);
}

/* Delete the policy got names and tell every endpoint. */
static uint8_t delete_reply(const struct pfkey_req *r, const struct ipsecif_policy *got)
{
    int err = ipsecif_spd_delete_id(r->ctx, got->id);

    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->dl->id, err);
    }
    policy_reply(r, got, TO_ALL);
    return 0;
}

uint8_t ipsecif_pfkey_do_spdadd(const struct pfkey_req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    uint32_t id = 0;
    uint8_t rc;
    int err;

    rc = policy_parse(r, &pol, true);
    if (rc != 0) {
        return rc;
    }
    if (r->m->type == IPSECIF_SADB_X_SPDUPDATE) {
        err = ipsecif_spd_update(r->ctx, &pol, r->now, &id);
    } else {
        err = ipsecif_spd_add(r->ctx, &pol, r->now, &id);
    }
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->dl->id, err);
    }
    if (ipsecif_spd_get(r->ctx, id, &got) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    policy_reply(r, &got, TO_ALL);
    return 0;
}

uint8_t ipsecif_pfkey_do_spddelete(const struct pfkey_req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    struct ipsecif_sp *sp;
    uint8_t rc;

    rc = policy_parse(r, &pol, true);
    if (rc != 0) {
        return rc;
    }
    sp = ipsecif_spd_find_exact(r->ctx, &pol.sel, pol.dir);
    if (sp == NULL) {
        return IPSECIF_PFKEY_ENOENT;
    }
    got = sp->pol;
    return delete_reply(r, &got);
}

/* X_SPDDELETE2 and X_SPDGET name the policy by id. */
uint8_t ipsecif_pfkey_do_spd_byid(const struct pfkey_req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    uint32_t id;
    uint8_t dir;
    uint8_t rc;

    rc = policy_parse(r, &pol, false);
    if (rc != 0) {
        return rc;
    }
    id = ipsecif_pfkey_policy_id_from_wire(r->dl, pol.id, &dir);
    if (id == 0 && pol.id != 0) {
        /* Linux: a per-socket id names nothing these messages may touch. */
        return IPSECIF_PFKEY_EINVAL;
    }
    if (ipsecif_spd_get(r->ctx, id, &got) != IPSECIF_OK ||
        (dir != IPSECIF_DIR_ANY && got.dir != dir)) {
        return IPSECIF_PFKEY_ENOENT;
    }
    if (r->m->type == IPSECIF_SADB_X_SPDGET) {
        policy_reply(r, &got, TO_ONE);
        return 0;
    }
    return delete_reply(r, &got);
}

static int dump_sp_fn(void *arg, const struct ipsecif_policy *pol)
{
    struct pfkey_dump *dp = arg;
    struct pfkey_out o;

    if (!ipsecif_pfkey_dump_entry(dp, &o, B_POLICY)) {
        return 1;
    }
    o.pol = pol;
    ipsecif_pfkey_emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
    return 0;
}

/* Per-socket policies a dump lists after the SPD (where the dialect lists them). */
static uint32_t sock_dirs(const struct ipsecif_ctx *ctx, const struct pfkey_dialect *dl)
{
    uint32_t i, n = 0;

    for (i = 0; dl->dump_socks && i < ctx->cfg.max_socket_policies; i++) {
        const struct ipsecif_sockpol *e = &ctx->spd.socks[i];

        n += e->in_use && e->pol[0].type != IPSECIF_SOCKPOL_ENTRUST;
        n += e->in_use && e->pol[1].type != IPSECIF_SOCKPOL_ENTRUST;
    }
    return n;
}

static void dump_socks(struct pfkey_dump *dp)
{
    const struct ipsecif_ctx *ctx = dp->r->ctx;
    uint32_t i;
    uint8_t k;

    for (i = 0; i < ctx->cfg.max_socket_policies && dp->left > 0; i++) {
        for (k = 0; k < 2 && ctx->spd.socks[i].in_use && dp->left > 0; k++) {
            struct pfkey_out o;

            if (ctx->spd.socks[i].pol[k].type == IPSECIF_SOCKPOL_ENTRUST ||
                !ipsecif_pfkey_dump_entry(dp, &o, B_POLICY)) {
                continue;
            }
            o.sock = &ctx->spd.socks[i];
            o.sock_dir_index = k;
            o.sock_slot = i + 1;
            ipsecif_pfkey_emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
        }
    }
}

uint8_t ipsecif_pfkey_do_spddump(const struct pfkey_req *r)
{
    struct pfkey_dump dp;

    memset(&dp, 0, sizeof(dp));
    dp.r = r;
    dp.left = (uint32_t)ipsecif_spd_count(r->ctx) + sock_dirs(r->ctx, r->dl);
    if (dp.left == 0) {
        return IPSECIF_PFKEY_ENOENT;
    }
    (void)ipsecif_spd_walk(r->ctx, dump_sp_fn, &dp);
    if (r->dl->dump_socks) {
        dump_socks(&dp);
    }
    return 0;
}

uint8_t ipsecif_pfkey_do_spdflush(const struct pfkey_req *r)
{
    (void)ipsecif_spd_flush(r->ctx);
    ipsecif_pfkey_reply_hdr(r, 0, TO_ALL);
    return 0;
}

/* ---- Per-socket policies: the setsockopt bytes, and X_SOCKPOLICY ---- */

static int sockpol_parse(const struct pfkey_dialect *dl, const uint8_t *buf, size_t len,
                         struct ipsecif_sockpolicy *out)
{
    struct ipsecif_policy tmp;
    uint16_t type;

    memset(out, 0, sizeof(*out));
    /* As KAME's key_msg2sp(): the option is exactly one sadb_x_policy. */
    if (len < POLICY_HDR || (size_t)h16(buf) * 8u != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    memset(&tmp, 0, sizeof(tmp));
    if (ipsecif_pfkey_requests_parse(dl, buf + POLICY_HDR, len - POLICY_HDR, &tmp) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    type = h16(buf + 4);
    out->dir = buf[6];
    if (type == IPSEC_POLICY_ENTRUST) {
        out->type = IPSECIF_SOCKPOL_ENTRUST;
    } else if (type == IPSEC_POLICY_BYPASS) {
        out->type = IPSECIF_SOCKPOL_BYPASS;
    } else if (type == IPSEC_POLICY_IPSEC) {
        out->type = IPSECIF_SOCKPOL_IPSEC;
    } else {
        /* discard and none are SPD actions, not socket policies (KAME). */
        return IPSECIF_ERR_ARG;
    }
    if ((out->dir != IPSECIF_DIR_IN && out->dir != IPSECIF_DIR_OUT) ||
        (out->type == IPSECIF_SOCKPOL_IPSEC) != (tmp.nreq > 0)) {
        return IPSECIF_ERR_ARG;
    }
    out->nreq = tmp.nreq;
    memcpy(out->req, tmp.req, sizeof(out->req));
    return IPSECIF_OK;
}

int ipsecif_pfkey_sockpolicy_parse(uint8_t dialect, const uint8_t *buf, size_t len,
                                   struct ipsecif_sockpolicy *out)
{
    const struct pfkey_dialect *dl = ipsecif_pfkey_dialect(dialect);

    if (buf == NULL || out == NULL || dl == NULL) {
        return IPSECIF_ERR_ARG;
    }
    return sockpol_parse(dl, buf, len, out);
}

static size_t sockpol_build(const struct pfkey_dialect *dl, const struct ipsecif_sockpolicy *sp,
                            uint8_t *buf, size_t cap)
{
    if (sp->nreq > IPSECIF_MAX_REQUESTS || sp->type > IPSECIF_SOCKPOL_IPSEC) {
        return 0;
    }
    return ipsecif_pfkey_sockpol_put(dl, sp, buf, cap);
}

size_t ipsecif_pfkey_sockpolicy_build(uint8_t dialect, const struct ipsecif_sockpolicy *sp,
                                      uint8_t *buf, size_t cap)
{
    const struct pfkey_dialect *dl = ipsecif_pfkey_dialect(dialect);

    if (sp == NULL || buf == NULL || dl == NULL) {
        return 0;
    }
    return sockpol_build(dl, sp, buf, cap);
}

/* The socket block of an X_SOCKPOLICY message; false if it is malformed. */
static bool sock_parse(const uint8_t *b, uint32_t owner, struct ipsecif_sock *s)
{
    memset(s, 0, sizeof(*s));
    s->owner = owner;
    s->handle = h32(b);
    s->proto = b[4];
    s->local.family = b[5];
    s->lport = (uint16_t)((b[6] << 8) | b[7]);
    if (s->local.family != IPSECIF_AF_INET && s->local.family != IPSECIF_AF_INET6) {
        return false;
    }
    memcpy(s->local.bytes, b + 8, ipsecif_addr_len(s->local.family));
    return true;
}

/* Answer to the sender alone: the header, and for GET the socket and its policy. */
static void sockpol_reply(struct ipsecif_ctx *ctx, uint32_t ep_id, const struct pfkey_dialect *dl,
                          const uint8_t *msg, uint8_t err, const struct ipsecif_sockpolicy *got)
{
    uint8_t *b = ctx->pfkey.buf;
    size_t len = HDR_LEN;

    memcpy(b, msg, HDR_LEN);
    b[2] = err;
    if (err == 0 && got != NULL) {
        memcpy(b + HDR_LEN, msg + HDR_LEN, IPSECIF_SOCKPOL_SOCK_LEN);
        len = SOCK_OFF + sockpol_build(dl, got, b + SOCK_OFF, IPSECIF_PFKEY_MSG_MAX - SOCK_OFF);
    }
    s16(b + 4, (uint16_t)(len / 8));
    if (err != 0) {
        ctx->pfkey.stats.in_errors++;
    }
    ctx->port->pfkey_deliver(ctx->user, ep_id, b, len);
}

/* The operation of a well-formed X_SOCKPOLICY on socket s; *got for GET. */
static uint8_t sock_op(struct ipsecif_ctx *ctx, const struct pfkey_dialect *dl,
                       const struct ipsecif_sock *s, const uint8_t *msg, size_t len,
                       struct ipsecif_sockpolicy *sp, bool *got)
{
    int rc;

    switch (msg[3]) {
    case IPSECIF_SOCKPOL_OP_SET:
        rc = sockpol_parse(dl, msg + SOCK_OFF, len - SOCK_OFF, sp);
        if (rc == IPSECIF_OK) {
            rc = ipsecif_spd_sock_set(ctx, s, sp);
        }
        ctx->pfkey.stats.sockpol_set += rc == IPSECIF_OK;
        if (rc == IPSECIF_OK) {
            return 0;
        }
        return rc == IPSECIF_ERR_FULL ? dl->enobufs : IPSECIF_PFKEY_EINVAL;
    case IPSECIF_SOCKPOL_OP_GET:
        /* As getsockopt: a policy header names the direction asked for. */
        *got = len - SOCK_OFF >= POLICY_HDR &&
               ipsecif_spd_sock_get(ctx, s->owner, s->handle, msg[SOCK_OFF + 6], sp) == IPSECIF_OK;
        return *got ? 0 : IPSECIF_PFKEY_EINVAL;
    case IPSECIF_SOCKPOL_OP_BIND:
        rc = ipsecif_spd_sock_bind(ctx, s);
        return rc == IPSECIF_OK || rc == IPSECIF_ERR_NOENT ? 0 : IPSECIF_PFKEY_EINVAL;
    case IPSECIF_SOCKPOL_OP_CLOSE:
        (void)ipsecif_spd_sock_close(ctx, s->owner, s->handle);
        return 0;
    default:
        return IPSECIF_PFKEY_EINVAL;
    }
}

void ipsecif_pfkey_sockpol_msg(struct ipsecif_ctx *ctx, uint32_t ep_id,
                               const struct pfkey_dialect *dl, const uint8_t *msg, size_t len)
{
    struct ipsecif_sockpolicy sp;
    struct ipsecif_sock s;
    bool got = false;
    uint8_t err = IPSECIF_PFKEY_EINVAL;

    if (msg[0] == IPSECIF_PF_KEY_V2 && (size_t)h16(msg + 4) * 8u == len && len >= SOCK_OFF &&
        sock_parse(msg + HDR_LEN, ep_id, &s)) {
        err = sock_op(ctx, dl, &s, msg, len, &sp, &got);
    }
    sockpol_reply(ctx, ep_id, dl, msg, err, got ? &sp : NULL);
}
