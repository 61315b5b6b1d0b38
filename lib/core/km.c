/*
 * Key-management events: ACQUIRE (rate-limited per policy) and EXPIRE, to
 * the port's km_event callback and, through the hook lib/pfkey installs, to
 * the registered PF_KEY endpoints; and the memory of those endpoints.
 */
#include "core/ctx.h"

/* PF_KEY endpoints and the message buffer live here, not in lib/pfkey, so a
 * build without lib/pfkey still links. */
size_t ipsecif_pfkey_mem_size(const struct ipsecif_config *cfg)
{
    if (cfg->max_pfkey_endpoints == 0) {
        return 0;
    }
    return IPSECIF_ALIGN16((size_t)cfg->max_pfkey_endpoints * sizeof(struct ipsecif_pfkey_ep)) +
           IPSECIF_ALIGN16((size_t)IPSECIF_PFKEY_MSG_MAX);
}

void ipsecif_pfkey_setup(struct ipsecif_ctx *ctx, uint8_t **cursor)
{
    ctx->pfkey.eps = NULL;
    ctx->pfkey.buf = NULL;
    ctx->pfkey.nopen = 0;
    ctx->pfkey.seq = 0;
    ctx->pfkey.hook = NULL;
    if (ctx->cfg.max_pfkey_endpoints == 0) {
        return;
    }
    ctx->pfkey.eps = (struct ipsecif_pfkey_ep *)(void *)*cursor;
    *cursor +=
        IPSECIF_ALIGN16((size_t)ctx->cfg.max_pfkey_endpoints * sizeof(struct ipsecif_pfkey_ep));
    ctx->pfkey.buf = *cursor;
    *cursor += IPSECIF_ALIGN16((size_t)IPSECIF_PFKEY_MSG_MAX);
    memset(ctx->pfkey.eps, 0,
           (size_t)ctx->cfg.max_pfkey_endpoints * sizeof(struct ipsecif_pfkey_ep));
}

void ipsecif_raise_acquire_pol(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol,
                               uint64_t *last, uint8_t req_index, const struct ipsecif_addr *src,
                               const struct ipsecif_addr *dst, uint16_t sport, uint16_t dport,
                               uint64_t now)
{
    struct ipsecif_km_event ev;

    if (*last != 0 && now - *last < ctx->cfg.acquire_interval_ms) {
        return;
    }
    /* 0 means "never"; a clock starting at 0 still gets rate-limited. */
    *last = now != 0 ? now : 1;
    ctx->stats.acquire++;
    memset(&ev, 0, sizeof(ev));
    ev.type = IPSECIF_KM_ACQUIRE;
    ev.acquire.policy_id = pol->id;
    ev.acquire.policy = *pol;
    ev.acquire.req_index = req_index;
    ev.acquire.src = *src;
    ev.acquire.dst = *dst;
    ev.acquire.natt_sport = sport;
    ev.acquire.natt_dport = dport;
    ipsecif_emit(ctx, &ev);
}

IPSECIF_COLD void ipsecif_raise_acquire(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp,
                                        uint8_t req_index, const struct ipsecif_addr *src,
                                        const struct ipsecif_addr *dst, uint16_t sport,
                                        uint16_t dport, uint64_t now)
{
    ipsecif_raise_acquire_pol(ctx, &sp->pol, &sp->last_acquire, req_index, src, dst, sport, dport,
                              now);
}

void ipsecif_raise_expire(struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa, uint8_t hard,
                          uint8_t reason)
{
    struct ipsecif_km_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = IPSECIF_KM_EXPIRE;
    ipsecif_sadb_info(sa, &ev.expire.sa);
    ev.expire.hard = hard;
    ev.expire.reason = reason;
    ipsecif_emit(ctx, &ev);
}

void ipsecif_emit(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev)
{
    if (ctx->port->km_event != NULL) {
        ctx->port->km_event(ctx->user, ev);
    }
    /* ACQUIRE and EXPIRE also go to registered PF_KEY endpoints. */
    if (ctx->pfkey.hook != NULL && ctx->pfkey.nopen != 0) {
        ctx->pfkey.hook(ctx, ev);
    }
}
