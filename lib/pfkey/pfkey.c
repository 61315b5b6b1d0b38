/* PF_KEY v2 (RFC 2367) with the KAME extensions: endpoints, what comes in
 * (send, oversize) and where it goes. Parsing, building, the SA and SPD
 * messages and the dialects are in the other pfkey_*.c files. */
#include "pfkey_priv.h"

void ipsecif_pfkey_set_wallclock(struct ipsecif_ctx *ctx, uint64_t now_ms, uint64_t unix_seconds)
{
    const uint64_t lim = (uint64_t)INT64_MAX / 1000u;

    if (ctx == NULL) {
        return;
    }
    unix_seconds = unix_seconds > lim ? lim : unix_seconds;
    now_ms = now_ms > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : now_ms;
    ctx->pfkey.wall_off_ms = (int64_t)(unix_seconds * 1000u) - (int64_t)now_ms;
}

/* ---- Endpoints ---- */

static struct ipsecif_pfkey_ep *ep_get(struct ipsecif_ctx *ctx, uint32_t id)
{
    if (ctx->pfkey.eps == NULL || id == 0 || id > ctx->cfg.max_pfkey_endpoints) {
        return NULL;
    }
    return ctx->pfkey.eps[id - 1].in_use ? &ctx->pfkey.eps[id - 1] : NULL;
}

int ipsecif_pfkey_open(struct ipsecif_ctx *ctx, uint8_t dialect, uint32_t *ep_id)
{
    uint32_t i;

    if (ctx == NULL || ep_id == NULL || ipsecif_pfkey_dialect(dialect) == NULL) {
        return IPSECIF_ERR_ARG;
    }
    for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
        struct ipsecif_pfkey_ep *ep = &ctx->pfkey.eps[i];

        if (!ep->in_use) {
            memset(ep, 0, sizeof(*ep));
            ep->in_use = true;
            ep->dialect = dialect;
            ctx->pfkey.nopen++;
            ctx->pfkey.hook = ipsecif_pfkey_event;
            *ep_id = i + 1;
            return IPSECIF_OK;
        }
    }
    return IPSECIF_ERR_FULL;
}

int ipsecif_pfkey_close(struct ipsecif_ctx *ctx, uint32_t ep_id)
{
    struct ipsecif_pfkey_ep *ep;

    if (ctx == NULL) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    memset(ep, 0, sizeof(*ep));
    ctx->pfkey.nopen--;
    /* The endpoint's sockets went with it. */
    (void)ipsecif_spd_sock_close(ctx, ep_id, IPSECIF_SOCK_ALL);
    return IPSECIF_OK;
}

const struct ipsecif_pfkey_stats *ipsecif_pfkey_stats_get(const struct ipsecif_ctx *ctx)
{
    return ctx == NULL ? NULL : &ctx->pfkey.stats;
}

/* ---- Dispatch ---- */

static uint8_t do_promisc(const struct pfkey_req *r)
{
    const struct pfkey_msg *m = r->m;

    /* A longer X_PROMISC (KAME: a message to relay) is not supported. */
    if (m->len != HDR_LEN || m->satype > 1) {
        return IPSECIF_PFKEY_EINVAL;
    }
    r->ctx->pfkey.eps[r->sender].promisc = m->satype == 1;
    ipsecif_pfkey_reply_hdr(r, 0, TO_ALL);
    return 0;
}

static uint8_t dispatch(const struct pfkey_req *r)
{
    switch (r->m->type) {
    case IPSECIF_SADB_GETSPI:
        return ipsecif_pfkey_do_getspi(r);
    case IPSECIF_SADB_UPDATE:
    case IPSECIF_SADB_ADD:
        return ipsecif_pfkey_do_add_update(r);
    case IPSECIF_SADB_DELETE:
        return ipsecif_pfkey_do_delete(r);
    case IPSECIF_SADB_GET:
        return ipsecif_pfkey_do_get(r);
    case IPSECIF_SADB_ACQUIRE:
        return ipsecif_pfkey_do_acquire(r);
    case IPSECIF_SADB_REGISTER:
        return ipsecif_pfkey_do_register(r);
    case IPSECIF_SADB_FLUSH:
        return ipsecif_pfkey_do_flush(r);
    case IPSECIF_SADB_DUMP:
        return ipsecif_pfkey_do_dump(r);
    case IPSECIF_SADB_X_PROMISC:
        return do_promisc(r);
    case IPSECIF_SADB_X_SPDUPDATE:
    case IPSECIF_SADB_X_SPDADD:
    case IPSECIF_SADB_X_SPDSETIDX:
        return ipsecif_pfkey_do_spdadd(r);
    case IPSECIF_SADB_X_SPDDELETE:
        return ipsecif_pfkey_do_spddelete(r);
    case IPSECIF_SADB_X_SPDGET:
    case IPSECIF_SADB_X_SPDDELETE2:
        return ipsecif_pfkey_do_spd_byid(r);
    case IPSECIF_SADB_X_SPDDUMP:
        return ipsecif_pfkey_do_spddump(r);
    case IPSECIF_SADB_X_SPDFLUSH:
        return ipsecif_pfkey_do_spdflush(r);
    default:
        /* EXPIRE, X_PCHANGE, X_SPDACQUIRE, X_SPDEXPIRE and
         * X_NAT_T_NEW_MAPPING only travel from the kernel to key management. */
        return IPSECIF_PFKEY_EINVAL;
    }
}

/* A datagram that is no message: answer with a bare header that says so. */
static void refuse(struct ipsecif_ctx *ctx, uint32_t ep_id, const struct pfkey_dialect *dl,
                   const uint8_t *head, size_t n)
{
    uint8_t *b = ctx->pfkey.buf;

    memset(b, 0, HDR_LEN);
    if (head != NULL) {
        memcpy(b, head, n < HDR_LEN ? n : HDR_LEN);
    }
    b[0] = IPSECIF_PF_KEY_V2;
    b[2] = dl->emsgsize;
    s16(b + 4, HDR_LEN / 8);
    b[6] = 0;
    b[7] = 0;
    ctx->port->pfkey_deliver(ctx->user, ep_id, b, HDR_LEN);
}

int ipsecif_pfkey_oversize(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *head,
                           size_t head_len)
{
    struct ipsecif_pfkey_ep *ep;

    if (ctx == NULL || (head == NULL && head_len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    ctx->pfkey.stats.in_long++;
    refuse(ctx, ep_id, ipsecif_pfkey_dialect(ep->dialect), head, head_len);
    return IPSECIF_OK;
}

/* A whole datagram of at least a header, from endpoint r->sender. */
static void message(const struct pfkey_req *r, struct pfkey_msg *m, const uint8_t *msg, size_t len)
{
    uint8_t err = ipsecif_pfkey_parse(r->dl, msg, len, m);

    /* Only ACQUIRE may carry an errno from key management. */
    if (err == 0 && m->err != 0 && m->type != IPSECIF_SADB_ACQUIRE) {
        err = IPSECIF_PFKEY_EINVAL;
    }
    if (err == 0) {
        /* Only whole, well-formed messages are copied to promiscuous endpoints. */
        ipsecif_pfkey_copy_request(r->ctx, r->sender, r->dl, msg, len);
        err = dispatch(r);
    }
    if (err != 0) {
        r->ctx->pfkey.stats.in_errors++;
        ipsecif_pfkey_reply_hdr(r, err, TO_ONE);
    }
}

int ipsecif_pfkey_send(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *msg, size_t len,
                       uint64_t now)
{
    struct ipsecif_pfkey_ep *ep;
    struct pfkey_msg m;
    struct pfkey_req r;

    if (ctx == NULL || (msg == NULL && len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    r.ctx = ctx;
    r.sender = ep_id - 1;
    r.dl = ipsecif_pfkey_dialect(ep->dialect);
    r.m = &m;
    r.now = now;
    if (len < HDR_LEN) {
        /* A kernel fails such a send with EMSGSIZE; a datagram transport answers. */
        ctx->pfkey.stats.in_short++;
        refuse(ctx, ep_id, r.dl, msg, len);
        return IPSECIF_ERR_MALFORMED;
    }
    ctx->pfkey.stats.in_msgs++;
    if (now > ctx->now) {
        ctx->now = now;
    }
    if (msg[1] == IPSECIF_SADB_X_SOCKPOLICY) {
        ipsecif_pfkey_sockpol_msg(ctx, ep_id, r.dl, msg, len);
    } else {
        message(&r, &m, msg, len);
    }
    return IPSECIF_OK;
}
