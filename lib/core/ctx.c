/* The context: configuration, memory layout in host-supplied memory, timers
 * and global counters. */
#include "core/ctx.h"

void ipsecif_config_default(struct ipsecif_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_interfaces = 16;
    cfg->max_policies = 128;
    cfg->max_sas = 64;
    cfg->replay_window_max = 1024;
    cfg->fixed_reqid = false;
    cfg->reqid_base = 0x2000;
    cfg->acquire_interval_ms = 1000;
    cfg->ttl = 64;
    cfg->max_pfkey_endpoints = 8;
    cfg->max_socket_policies = 16;
}

/* Fill in defaults and check limits; false if the configuration is unusable. */
static bool normalize(struct ipsecif_config *c)
{
    if (c->replay_window_max == 0) {
        c->replay_window_max = IPSECIF_REPLAY_WINDOW_MAX;
    }
    if (c->replay_window_max % 32 != 0 || c->replay_window_max > IPSECIF_REPLAY_WINDOW_MAX) {
        return false;
    }
    if (c->acquire_interval_ms == 0) {
        c->acquire_interval_ms = 1000;
    }
    if (c->ttl == 0) {
        c->ttl = 64;
    }
    /* Keep every table index and hash size well inside 32 bits. */
    if (c->max_pfkey_endpoints > 0x10000u || c->max_socket_policies > 0x10000u) {
        return false;
    }
    if (c->max_interfaces > 0x1000000u || c->max_policies > 0x4000000u || c->max_sas > 0x4000000u ||
        c->max_policies == 0 || c->max_sas == 0) {
        return false;
    }
    if (c->fixed_reqid && (uint64_t)c->reqid_base + 2ull * c->max_interfaces + 1 > 0xffffffffull) {
        return false;
    }
    return true;
}

size_t ipsecif_ctx_size(const struct ipsecif_config *cfg)
{
    struct ipsecif_config c;
    size_t parts[3], total;
    int i;

    if (cfg == NULL) {
        return 0;
    }
    c = *cfg;
    if (!normalize(&c)) {
        return 0;
    }
    parts[0] = ipsecif_iface_mem_size(&c);
    parts[1] = ipsecif_spd_mem_size(&c);
    parts[2] = ipsecif_sadb_mem_size(&c);
    total = IPSECIF_ALIGN16(sizeof(struct ipsecif_ctx));
    for (i = 0; i < 3; i++) {
        /* A module says 0 when its size would overflow. */
        if (parts[i] == 0 || total + parts[i] < total) {
            return 0;
        }
        total += parts[i];
    }
    /* Zero here means "no PF_KEY", not an overflow. */
    if (total + ipsecif_pfkey_mem_size(&c) < total) {
        return 0;
    }
    return total + ipsecif_pfkey_mem_size(&c);
}

static bool port_ok(const struct ipsecif_port *port)
{
    const struct ipsecif_crypto_ops *c = port->crypto;

    return port->send_outer != NULL && port->deliver_inner != NULL && port->random != NULL &&
           c != NULL && c->init != NULL && c->wipe != NULL && c->aead_seal != NULL &&
           c->aead_open != NULL && c->cbc != NULL && c->mac != NULL;
}

int ipsecif_init(struct ipsecif_ctx **out, void *mem, size_t mem_len,
                 const struct ipsecif_config *cfg, const struct ipsecif_port *port, void *user,
                 uint64_t now)
{
    struct ipsecif_ctx *ctx;
    struct ipsecif_config c;
    uint8_t *cursor;
    size_t need;
    uint8_t id[2];

    if (out == NULL || mem == NULL || cfg == NULL || port == NULL || !port_ok(port)) {
        return IPSECIF_ERR_ARG;
    }
    c = *cfg;
    if (!normalize(&c)) {
        return IPSECIF_ERR_ARG;
    }
    if (port->crypto->slot_size > IPSECIF_CRYPTO_SLOT_SIZE) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    need = ipsecif_ctx_size(&c);
    if (need == 0) {
        return IPSECIF_ERR_ARG;
    }
    if (((uintptr_t)mem & 15u) != 0 || mem_len < need) {
        return IPSECIF_ERR_NOROOM;
    }
    if (port->random(user, id, sizeof(id)) != 0) {
        return IPSECIF_ERR_RANDOM;
    }

    ctx = mem;
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = c;
    ctx->port = port;
    ctx->user = user;
    ctx->now = now;
    ctx->mem_len = need;
    ctx->ip_id = ipsecif_load16(id);
    cursor = (uint8_t *)mem + IPSECIF_ALIGN16(sizeof(struct ipsecif_ctx));
    /* PF_KEY first: its parts are whole multiples of 16 bytes, so the
     * modules after it keep the alignment they had. */
    ipsecif_pfkey_setup(ctx, &cursor);
    ipsecif_iface_setup(ctx, &cursor);
    ipsecif_spd_setup(ctx, &cursor);
    ipsecif_sadb_setup(ctx, &cursor);
    if ((size_t)(cursor - (uint8_t *)mem) != need) {
        ipsecif_wipe(mem, need);
        return IPSECIF_ERR_INTERNAL;
    }
    ctx->magic = IPSECIF_CTX_MAGIC;
    *out = ctx;
    return IPSECIF_OK;
}

void ipsecif_deinit(struct ipsecif_ctx *ctx)
{
    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC) {
        return;
    }
    while (ctx->ifs.head != NULL) {
        (void)ipsecif_if_destroy(ctx, ctx->ifs.head);
    }
    ipsecif_sadb_clear(ctx);
    ipsecif_wipe(ctx, ctx->mem_len);
}

uint64_t ipsecif_timer(struct ipsecif_ctx *ctx, uint64_t now)
{
    if (ctx == NULL) {
        return UINT64_MAX;
    }
    if (now > ctx->now) {
        ctx->now = now;
    }
    return ipsecif_sadb_timer(ctx, now);
}

uint64_t ipsecif_next_deadline(const struct ipsecif_ctx *ctx)
{
    if (ctx == NULL) {
        return UINT64_MAX;
    }
    return ipsecif_sadb_next_deadline(ctx);
}

const struct ipsecif_stats *ipsecif_stats_get(const struct ipsecif_ctx *ctx)
{
    return ctx != NULL ? &ctx->stats : NULL;
}

void ipsecif_stats_reset(struct ipsecif_ctx *ctx)
{
    uint32_t i;

    if (ctx == NULL) {
        return;
    }
    memset(&ctx->stats, 0, sizeof(ctx->stats));
    for (i = 0; i < ctx->cfg.max_interfaces; i++) {
        memset(&ctx->ifs.tab[i].stats, 0, sizeof(ctx->ifs.tab[i].stats));
    }
    for (i = 0; i < ctx->cfg.max_sas; i++) {
        memset(&ctx->sadb.tab[i].stats, 0, sizeof(ctx->sadb.tab[i].stats));
    }
}

IPSECIF_COLD void ipsecif_log(struct ipsecif_ctx *ctx, int level, const char *msg)
{
#if IPSECIF_LOG
    if (ctx != NULL && ctx->port != NULL && ctx->port->log != NULL) {
        ctx->port->log(ctx->user, level, msg);
    }
#else
    (void)ctx;
    (void)level;
    (void)msg;
#endif
}
