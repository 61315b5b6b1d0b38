/*
 * Per-socket policies: what setsockopt(IP_IPSEC_POLICY) records for one
 * socket, checked before the SPD. A small table of sockets, each with an
 * inbound and an outbound policy; a direction left at entrust defers to
 * the SPD, and a socket whose two directions entrust takes no slot.
 */
#include "core/ctx.h"

static int dir_index(uint8_t dir)
{
    return dir == IPSECIF_DIR_IN ? 0 : dir == IPSECIF_DIR_OUT ? 1 : -1;
}

static bool sock_ok(const struct ipsecif_sock *s)
{
    return s->owner != 0 &&
           (s->local.family == IPSECIF_AF_INET || s->local.family == IPSECIF_AF_INET6);
}

static void entrust(struct ipsecif_sockpolicy *p, uint8_t dir)
{
    memset(p, 0, sizeof(*p));
    p->dir = dir;
    p->type = IPSECIF_SOCKPOL_ENTRUST;
}

/* The stored form: checked, unused parts zero. */
static int check(const struct ipsecif_sockpolicy *in, struct ipsecif_sockpolicy *out)
{
    entrust(out, in->dir);
    if (dir_index(in->dir) < 0) {
        return IPSECIF_ERR_ARG;
    }
    out->type = in->type;
    if (in->type == IPSECIF_SOCKPOL_ENTRUST || in->type == IPSECIF_SOCKPOL_BYPASS) {
        return in->nreq == 0 ? IPSECIF_OK : IPSECIF_ERR_ARG;
    }
    if (in->type != IPSECIF_SOCKPOL_IPSEC || !ipsecif_spd_check_reqs(in->req, in->nreq, out->req)) {
        return IPSECIF_ERR_ARG;
    }
    out->nreq = in->nreq;
    return IPSECIF_OK;
}

static struct ipsecif_sockpol *find(const struct ipsecif_ctx *ctx, uint32_t owner, uint32_t handle)
{
    uint32_t i;

    for (i = 0; i < ctx->cfg.max_socket_policies; i++) {
        struct ipsecif_sockpol *e = &ctx->spd.socks[i];

        if (e->in_use && e->sock.owner == owner && e->sock.handle == handle) {
            return e;
        }
    }
    return NULL;
}

static void put_binding(struct ipsecif_sockpol *e, const struct ipsecif_sock *s)
{
    e->sock = *s;
    /* An IPv4 address keeps its unused tail zero, so comparisons hold. */
    memset(e->sock.local.bytes + ipsecif_addr_len(s->local.family), 0,
           sizeof(e->sock.local.bytes) - ipsecif_addr_len(s->local.family));
}

static void release(struct ipsecif_ctx *ctx, struct ipsecif_sockpol *e)
{
    memset(e, 0, sizeof(*e));
    ctx->spd.nsocks--;
    ctx->spd.gen++;
}

int ipsecif_spd_sock_set(struct ipsecif_ctx *ctx, const struct ipsecif_sock *s,
                         const struct ipsecif_sockpolicy *p)
{
    struct ipsecif_sockpolicy stored;
    struct ipsecif_sockpol *e;
    uint32_t i;
    int rc;

    if (ctx == NULL || s == NULL || p == NULL || !sock_ok(s)) {
        return IPSECIF_ERR_ARG;
    }
    rc = check(p, &stored);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    e = find(ctx, s->owner, s->handle);
    if (e == NULL) {
        if (stored.type == IPSECIF_SOCKPOL_ENTRUST) {
            return IPSECIF_OK;
        }
        for (i = 0; i < ctx->cfg.max_socket_policies && e == NULL; i++) {
            if (!ctx->spd.socks[i].in_use) {
                e = &ctx->spd.socks[i];
            }
        }
        if (e == NULL) {
            return IPSECIF_ERR_FULL;
        }
        e->in_use = true;
        entrust(&e->pol[0], IPSECIF_DIR_IN);
        entrust(&e->pol[1], IPSECIF_DIR_OUT);
        ctx->spd.nsocks++;
    }
    put_binding(e, s);
    e->pol[dir_index(stored.dir)] = stored;
    ctx->spd.gen++;
    if (e->pol[0].type == IPSECIF_SOCKPOL_ENTRUST && e->pol[1].type == IPSECIF_SOCKPOL_ENTRUST) {
        release(ctx, e);
    }
    ipsecif_spd_note_used(ctx);
    return IPSECIF_OK;
}

int ipsecif_spd_sock_bind(struct ipsecif_ctx *ctx, const struct ipsecif_sock *s)
{
    struct ipsecif_sockpol *e;

    if (ctx == NULL || s == NULL || !sock_ok(s)) {
        return IPSECIF_ERR_ARG;
    }
    e = find(ctx, s->owner, s->handle);
    if (e == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    put_binding(e, s);
    ctx->spd.gen++;
    return IPSECIF_OK;
}

int ipsecif_spd_sock_get(const struct ipsecif_ctx *ctx, uint32_t owner, uint32_t handle,
                         uint8_t dir, struct ipsecif_sockpolicy *out)
{
    const struct ipsecif_sockpol *e;
    int k = dir_index(dir);

    if (ctx == NULL || out == NULL || owner == 0 || k < 0) {
        return IPSECIF_ERR_ARG;
    }
    e = find(ctx, owner, handle);
    if (e == NULL) {
        entrust(out, dir);
    } else {
        *out = e->pol[k];
    }
    return IPSECIF_OK;
}

size_t ipsecif_spd_sock_close(struct ipsecif_ctx *ctx, uint32_t owner, uint32_t handle)
{
    size_t n = 0;
    uint32_t i;

    if (ctx == NULL || owner == 0) {
        return 0;
    }
    for (i = 0; i < ctx->cfg.max_socket_policies; i++) {
        struct ipsecif_sockpol *e = &ctx->spd.socks[i];

        if (e->in_use && e->sock.owner == owner &&
            (handle == IPSECIF_SOCK_ALL || e->sock.handle == handle)) {
            release(ctx, e);
            n++;
        }
    }
    return n;
}

struct ipsecif_sockpol *ipsecif_spd_sock_match(const struct ipsecif_ctx *ctx, uint8_t dir,
                                               uint8_t proto, const struct ipsecif_addr *local,
                                               uint16_t lport)
{
    struct ipsecif_sockpol *best = NULL;
    int k = dir_index(dir);
    uint32_t i;

    if (ctx == NULL || local == NULL || k < 0) {
        return NULL;
    }
    for (i = 0; i < ctx->cfg.max_socket_policies && ctx->spd.nsocks > 0; i++) {
        struct ipsecif_sockpol *e = &ctx->spd.socks[i];
        const struct ipsecif_sock *s = &e->sock;

        if (!e->in_use || e->pol[k].type == IPSECIF_SOCKPOL_ENTRUST || s->lport == 0 ||
            s->lport != lport || s->local.family != local->family ||
            (s->proto != IPSECIF_IPPROTO_ANY && s->proto != proto)) {
            continue;
        }
        if (ipsecif_addr_eq(&s->local, local)) {
            best = e;
            break;
        }
        if (best == NULL && ipsecif_addr_is_unspec(&s->local)) {
            best = e;
        }
    }
    return best;
}

int ipsecif_spd_sock_lookup(const struct ipsecif_ctx *ctx, uint8_t dir, uint8_t proto,
                            const struct ipsecif_addr *local, uint16_t lport,
                            struct ipsecif_sockpolicy *out, struct ipsecif_sock *sock)
{
    const struct ipsecif_sockpol *best;

    if (ctx == NULL || local == NULL || dir_index(dir) < 0) {
        return IPSECIF_ERR_ARG;
    }
    best = ipsecif_spd_sock_match(ctx, dir, proto, local, lport);
    if (best == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (out != NULL) {
        *out = best->pol[dir_index(dir)];
    }
    if (sock != NULL) {
        *sock = best->sock;
    }
    return IPSECIF_OK;
}

int ipsecif_spd_sock_walk(const struct ipsecif_ctx *ctx, ipsecif_spd_sock_walk_fn fn, void *arg)
{
    uint32_t i;

    if (ctx == NULL || fn == NULL) {
        return 0;
    }
    for (i = 0; i < ctx->cfg.max_socket_policies; i++) {
        const struct ipsecif_sockpol *e = &ctx->spd.socks[i];
        int rc;

        if (!e->in_use) {
            continue;
        }
        rc = fn(arg, &e->sock, &e->pol[0], &e->pol[1]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

size_t ipsecif_spd_sock_count(const struct ipsecif_ctx *ctx)
{
    return ctx == NULL ? 0 : ctx->spd.nsocks;
}
