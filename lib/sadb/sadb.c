/* The SADB: SAs live in fixed slots carved at init and are found through three
 * hash tables sized at init, by (proto, dst, spi) for input, by (proto, src,
 * dst) and by reqid for output, so lookups do not grow with the number of
 * SAs. Lifetimes follow RFC 2367: byte limits are checked per use, time limits
 * by the host's timer, whose next deadline is cached. */
#include "core/ctx.h"

/* A larval SA that never gets its UPDATE goes away quietly after this long,
 * like KAME's key_larval_lifetime. */
#define LARVAL_LIFETIME_MS 30000u
/* SPIs below 256 are reserved (RFC 4303 section 2.1). */
#define SPI_MIN 256u
/* Random picks before the linear probe takes over. */
#define SPI_RANDOM_TRIES 16u

/* Offsets of the SADB's pieces from a 16-byte aligned base. */
struct layout {
    size_t spi_hash;
    size_t pair_hash;
    size_t reqid_hash;
    size_t free_stack;
    size_t replay;
    size_t end;
};

/* Fill l; false when the configuration cannot be laid out. */
static bool layout(const struct ipsecif_config *cfg, struct layout *l)
{
    uint32_t wmax =
        cfg->replay_window_max != 0 ? cfg->replay_window_max : IPSECIF_REPLAY_WINDOW_MAX;
    size_t n = cfg->max_sas;
    size_t hs = ipsecif_hash_size(cfg->max_sas);
    size_t words = wmax / 32u;
    size_t per_sa = sizeof(struct ipsecif_sa) + sizeof(uint32_t) + words * sizeof(uint32_t);

    if (wmax % 32u != 0 || wmax > IPSECIF_REPLAY_WINDOW_MAX) {
        return false;
    }
    /* Leave ample margin so that the sums below cannot wrap on 32-bit hosts. */
    if (n > (SIZE_MAX / 4u) / per_sa || hs > (SIZE_MAX / 16u) / sizeof(void *)) {
        return false;
    }
    l->spi_hash = IPSECIF_ALIGN16(n * sizeof(struct ipsecif_sa));
    l->pair_hash = l->spi_hash + IPSECIF_ALIGN16(hs * sizeof(struct ipsecif_sa *));
    l->reqid_hash = l->pair_hash + IPSECIF_ALIGN16(hs * sizeof(struct ipsecif_sa *));
    l->free_stack = l->reqid_hash + IPSECIF_ALIGN16(hs * sizeof(struct ipsecif_sa *));
    l->replay = l->free_stack + IPSECIF_ALIGN16(n * sizeof(uint32_t));
    l->end = l->replay + IPSECIF_ALIGN16(n * words * sizeof(uint32_t));
    return true;
}

size_t ipsecif_sadb_mem_size(const struct ipsecif_config *cfg)
{
    struct layout l;

    if (cfg == NULL || !layout(cfg, &l)) {
        return 0;
    }
    /* 15 spare bytes: the cursor handed to setup need not be aligned. */
    return l.end + 15u;
}

void ipsecif_sadb_setup(struct ipsecif_ctx *ctx, uint8_t **cursor)
{
    struct layout l;
    uint8_t *start = *cursor;
    uint8_t *base = start + ((16u - ((uintptr_t)start & 15u)) & 15u);
    uint32_t n = ctx->cfg.max_sas;
    uint32_t i;

    if (!layout(&ctx->cfg, &l)) {
        return; /* ctx.c validated the configuration; leave the cursor to fail its check */
    }
    memset(base, 0, l.end);
    ctx->sadb.tab = (struct ipsecif_sa *)(void *)base;
    ctx->sadb.n = 0;
    ctx->sadb.spi_hash = (struct ipsecif_sa **)(void *)(base + l.spi_hash);
    ctx->sadb.pair_hash = (struct ipsecif_sa **)(void *)(base + l.pair_hash);
    ctx->sadb.reqid_hash = (struct ipsecif_sa **)(void *)(base + l.reqid_hash);
    ctx->sadb.hash_mask = ipsecif_hash_size(n) - 1u;
    ctx->sadb.free = (uint32_t *)(void *)(base + l.free_stack);
    ctx->sadb.replay_area = (uint32_t *)(void *)(base + l.replay);
    ctx->sadb.replay_words = ctx->cfg.replay_window_max / 32u;
    ctx->sadb.age_head = NULL;
    ctx->sadb.age_tail = NULL;
    ctx->sadb.gen = 0;
    ctx->sadb.next_deadline = UINT64_MAX;
    for (i = 0; i < n; i++) {
        ctx->sadb.tab[i].replay_bits = ctx->sadb.replay_area + (size_t)i * ctx->sadb.replay_words;
        /* Popped from the top, so slots are handed out from index 0 upwards. */
        ctx->sadb.free[i] = n - 1u - i;
    }
    *cursor = start + l.end + 15u;
}

/* ---- Hashing ---- */

static uint32_t spi_bucket(const struct ipsecif_ctx *ctx, uint8_t proto,
                           const struct ipsecif_addr *dst, uint32_t spi)
{
    uint8_t b[5];
    uint32_t h;

    b[0] = proto;
    ipsecif_store32(b + 1, spi);
    h = ipsecif_hash_bytes(IPSECIF_HASH_INIT, b, sizeof(b));
    h = ipsecif_hash_addr(h, dst);
    return ipsecif_hash_finish(h) & ctx->sadb.hash_mask;
}

static uint32_t pair_bucket(const struct ipsecif_ctx *ctx, uint8_t proto,
                            const struct ipsecif_addr *src, const struct ipsecif_addr *dst)
{
    uint32_t h;

    h = ipsecif_hash_bytes(IPSECIF_HASH_INIT, &proto, 1);
    h = ipsecif_hash_addr(h, src);
    h = ipsecif_hash_addr(h, dst);
    return ipsecif_hash_finish(h) & ctx->sadb.hash_mask;
}

static uint32_t reqid_bucket(const struct ipsecif_ctx *ctx, uint32_t reqid)
{
    return ipsecif_hash_finish(ipsecif_hash_u32(IPSECIF_HASH_INIT, reqid)) & ctx->sadb.hash_mask;
}

static void link_pair(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **head =
        &ctx->sadb.pair_hash[pair_bucket(ctx, sa->proto, &sa->src, &sa->dst)];

    sa->pair_next = *head;
    *head = sa;
}

static void unlink_pair(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **pp = &ctx->sadb.pair_hash[pair_bucket(ctx, sa->proto, &sa->src, &sa->dst)];

    while (*pp != NULL && *pp != sa) {
        pp = &(*pp)->pair_next;
    }
    if (*pp == sa) {
        *pp = sa->pair_next;
    }
    sa->pair_next = NULL;
}

static void link_reqid(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **head;

    if (sa->reqid == 0) {
        return;
    }
    head = &ctx->sadb.reqid_hash[reqid_bucket(ctx, sa->reqid)];
    sa->reqid_next = *head;
    *head = sa;
}

static void unlink_reqid(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **pp;

    if (sa->reqid == 0) {
        return;
    }
    pp = &ctx->sadb.reqid_hash[reqid_bucket(ctx, sa->reqid)];
    while (*pp != NULL && *pp != sa) {
        pp = &(*pp)->reqid_next;
    }
    if (*pp == sa) {
        *pp = sa->reqid_next;
    }
    sa->reqid_next = NULL;
}

static void link_spi(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **head = &ctx->sadb.spi_hash[spi_bucket(ctx, sa->proto, &sa->dst, sa->spi)];

    sa->spi_next = *head;
    *head = sa;
}

static void unlink_spi(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    struct ipsecif_sa **pp = &ctx->sadb.spi_hash[spi_bucket(ctx, sa->proto, &sa->dst, sa->spi)];

    while (*pp != NULL && *pp != sa) {
        pp = &(*pp)->spi_next;
    }
    if (*pp == sa) {
        *pp = sa->spi_next;
    }
    sa->spi_next = NULL;
}

static void age_append(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    sa->age_next = NULL;
    sa->age_prev = ctx->sadb.age_tail;
    if (ctx->sadb.age_tail != NULL) {
        ctx->sadb.age_tail->age_next = sa;
    } else {
        ctx->sadb.age_head = sa;
    }
    ctx->sadb.age_tail = sa;
}

static void age_remove(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    if (sa->age_prev != NULL) {
        sa->age_prev->age_next = sa->age_next;
    } else if (ctx->sadb.age_head == sa) {
        ctx->sadb.age_head = sa->age_next;
    }
    if (sa->age_next != NULL) {
        sa->age_next->age_prev = sa->age_prev;
    } else if (ctx->sadb.age_tail == sa) {
        ctx->sadb.age_tail = sa->age_prev;
    }
    sa->age_prev = NULL;
    sa->age_next = NULL;
}

/* ---- Slots ---- */

static struct ipsecif_sa *slot_alloc(struct ipsecif_ctx *ctx)
{
    uint32_t nfree = ctx->cfg.max_sas - ctx->sadb.n;
    struct ipsecif_sa *sa;

    if (nfree == 0) {
        return NULL;
    }
    sa = &ctx->sadb.tab[ctx->sadb.free[nfree - 1u]];
    ctx->sadb.n++;
    sa->in_use = true;
    return sa;
}

/* Wipe an unlinked SA (keys, replay bitmap, lifetimes: the whole struct) and
 * give its slot back. Only the bitmap pointer survives: it belongs to the slot. */
static void slot_release(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    uint32_t *bits = sa->replay_bits;
    uint32_t idx = (uint32_t)(sa - ctx->sadb.tab);

    ipsecif_esp_sa_wipe(ctx->port->crypto, sa);
    ipsecif_wipe(bits, (size_t)ctx->sadb.replay_words * sizeof(uint32_t));
    ipsecif_wipe(sa, sizeof(*sa));
    sa->replay_bits = bits;
    ctx->sadb.free[ctx->cfg.max_sas - ctx->sadb.n] = idx;
    ctx->sadb.n--;
}

static void sa_free(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa)
{
    unlink_spi(ctx, sa);
    unlink_pair(ctx, sa);
    unlink_reqid(ctx, sa);
    age_remove(ctx, sa);
    slot_release(ctx, sa);
}

/* ---- Deadlines ---- */

static uint64_t add_ms(uint64_t base, uint64_t ms)
{
    return ms > UINT64_MAX - base ? UINT64_MAX : base + ms;
}

static uint64_t add_secs(uint64_t base, uint64_t secs)
{
    return secs > UINT64_MAX / 1000u ? UINT64_MAX : add_ms(base, secs * 1000u);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static bool sa_used(const struct ipsecif_sa *sa)
{
    /* allocations becomes 1 at first use; use_ms alone cannot tell, since 0
     * is a valid time. */
    return sa->allocations != 0;
}

/* When the SA next needs the timer; UINT64_MAX if never. */
static uint64_t sa_deadline(const struct ipsecif_sa *sa)
{
    uint64_t d = UINT64_MAX;

    if (sa->state == IPSECIF_SA_LARVAL) {
        return add_ms(sa->add_ms, LARVAL_LIFETIME_MS);
    }
    if (sa->hard.addtime != 0) {
        d = min64(d, add_secs(sa->add_ms, sa->hard.addtime));
    }
    if (sa->hard.usetime != 0 && sa_used(sa)) {
        d = min64(d, add_secs(sa->use_ms, sa->hard.usetime));
    }
    if (!sa->soft_sent) {
        if (sa->soft.addtime != 0) {
            d = min64(d, add_secs(sa->add_ms, sa->soft.addtime));
        }
        if (sa->soft.usetime != 0 && sa_used(sa)) {
            d = min64(d, add_secs(sa->use_ms, sa->soft.usetime));
        }
    }
    return d;
}

static void note_deadline(struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa)
{
    ctx->sadb.next_deadline = min64(ctx->sadb.next_deadline, sa_deadline(sa));
}

/* ---- Reporting and events ---- */

void ipsecif_sadb_info(const struct ipsecif_sa *sa, struct ipsecif_sa_info *out)
{
    struct ipsecif_sa_params *p = &out->params;

    memset(out, 0, sizeof(*out));
    p->proto = sa->proto;
    p->mode = sa->mode;
    p->ealg = sa->ealg;
    p->aalg = sa->aalg;
    p->spi = sa->spi;
    p->src = sa->src;
    p->dst = sa->dst;
    p->natt_sport = sa->natt_sport;
    p->natt_dport = sa->natt_dport;
    p->reqid = sa->reqid;
    p->replay_window = sa->replay_window;
    p->flags = sa->flags;
    p->seq = sa->seq;
    p->ekey = NULL;
    p->ekey_len = sa->ekey_len;
    p->akey = NULL;
    p->akey_len = sa->akey_len;
    p->soft = sa->soft;
    p->hard = sa->hard;
    out->state = sa->state;
    out->current.allocations = sa->allocations;
    out->current.bytes = sa->bytes;
    out->current.addtime = sa->add_ms;
    out->current.usetime = sa->use_ms;
    out->seq_out = sa->seq_out;
    out->seq_in_top = sa->replay_top;
    out->pid = sa->pid;
    out->stats = sa->stats;
}

static void soft_expire(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, uint8_t reason)
{
    sa->state = IPSECIF_SA_DYING;
    sa->soft_sent = 1;
    ipsecif_raise_expire(ctx, sa, 0, reason);
}

IPSECIF_COLD void ipsecif_sadb_kill(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, uint8_t reason)
{
    if (ctx == NULL || sa == NULL || !sa->in_use) {
        return;
    }
    sa->state = IPSECIF_SA_DEAD;
    sa->hard_reason = reason;
    /* The event reports the SA as it was; keys are wiped only afterwards. */
    ipsecif_raise_expire(ctx, sa, 1, reason);
    sa_free(ctx, sa);
}

/* ---- Parameter checks ---- */

static int check_addrs(const struct ipsecif_addr *src, const struct ipsecif_addr *dst)
{
    if (dst->family != IPSECIF_AF_INET && dst->family != IPSECIF_AF_INET6) {
        return IPSECIF_ERR_ARG;
    }
    if (src->family != dst->family || ipsecif_addr_is_unspec(src) || ipsecif_addr_is_unspec(dst)) {
        return IPSECIF_ERR_ARG;
    }
    return IPSECIF_OK;
}

static int check_params(const struct ipsecif_ctx *ctx, const struct ipsecif_sa_params *p)
{
    int rc;

    if (p->proto != IPSECIF_IPPROTO_ESP && p->proto != IPSECIF_IPPROTO_AH) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    rc = check_addrs(&p->src, &p->dst);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (p->spi < SPI_MIN || p->mode > IPSECIF_MODE_TUNNEL ||
        (p->flags & ~(uint32_t)IPSECIF_SA_F_ESN) != 0) {
        return IPSECIF_ERR_ARG;
    }
    /* UDP encapsulation needs both ports, and exists for ESP only (RFC 3948). */
    if ((p->natt_sport == 0) != (p->natt_dport == 0) ||
        (p->proto == IPSECIF_IPPROTO_AH && p->natt_sport != 0)) {
        return IPSECIF_ERR_ARG;
    }
    if ((p->ekey_len != 0 && p->ekey == NULL) || (p->akey_len != 0 && p->akey == NULL)) {
        return IPSECIF_ERR_ARG;
    }
    if (p->ekey_len > IPSECIF_MAX_EKEY || p->akey_len > IPSECIF_MAX_AKEY) {
        return IPSECIF_ERR_KEYLEN;
    }
    if (p->replay_window > ctx->cfg.replay_window_max) {
        return IPSECIF_ERR_RANGE;
    }
    return IPSECIF_OK;
}

static void addr_copy(struct ipsecif_addr *to, const struct ipsecif_addr *from)
{
    /* Stored IPv4 addresses keep bytes 4..15 zero, whatever the caller passed. */
    *to = *from;
    ipsecif_addr_norm(to);
}

/* Everything of p but the keys. */
static void fill(struct ipsecif_sa *sa, const struct ipsecif_sa_params *p)
{
    sa->proto = p->proto;
    sa->mode = p->mode;
    sa->spi = p->spi;
    addr_copy(&sa->src, &p->src);
    addr_copy(&sa->dst, &p->dst);
    sa->natt_sport = p->natt_sport;
    sa->natt_dport = p->natt_dport;
    sa->reqid = p->reqid;
    sa->flags = p->flags;
    sa->seq = p->seq;
    sa->replay_window = (p->replay_window + 31u) & ~(uint32_t)31u;
    sa->soft = p->soft;
    sa->hard = p->hard;
}

/* Keys and algorithms, through the ESP or AH module. On failure nothing key-related
 * stays in the SA. */
static int set_keys(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                    const struct ipsecif_sa_params *p)
{
    uint8_t ivb[8];
    int rc = p->proto == IPSECIF_IPPROTO_AH ? ipsecif_ah_sa_init(ctx->port->crypto, sa, p)
                                            : ipsecif_esp_sa_init(ctx->port->crypto, sa, p);

    if (rc != IPSECIF_OK) {
        ipsecif_esp_sa_wipe(ctx->port->crypto, sa);
        return rc;
    }
    /* AEAD IVs are the sequence number masked by a random per-SA value, so
     * SAs keyed alike by hand (one key both ways) still never share a nonce. */
    if (ctx->port->random(ctx->user, ivb, sizeof(ivb)) != 0) {
        ipsecif_esp_sa_wipe(ctx->port->crypto, sa);
        return IPSECIF_ERR_RANDOM;
    }
    sa->iv_base = ipsecif_load64(ivb);
    sa->ealg = p->ealg;
    sa->aalg = p->aalg;
    sa->ekey_len = (uint8_t)p->ekey_len;
    sa->akey_len = (uint8_t)p->akey_len;
#if IPSECIF_SA_KEEP_KEYS
    /* check_params bounded both lengths by the arrays. */
    if (p->ekey_len != 0) {
        memcpy(sa->ekey, p->ekey, p->ekey_len);
    }
    if (p->akey_len != 0) {
        memcpy(sa->akey, p->akey, p->akey_len);
    }
#endif
    return IPSECIF_OK;
}

/* ---- Lookups ---- */

IPSECIF_NOINLINE struct ipsecif_sa *ipsecif_sadb_lookup_spi(struct ipsecif_ctx *ctx, uint8_t proto,
                                                            const struct ipsecif_addr *dst,
                                                            uint32_t spi)
{
    struct ipsecif_sa *sa;

    for (sa = ctx->sadb.spi_hash[spi_bucket(ctx, proto, dst, spi)]; sa != NULL; sa = sa->spi_next) {
        if (sa->spi == spi && sa->proto == proto && ipsecif_addr_eq(&sa->dst, dst)) {
            return sa;
        }
    }
    return NULL;
}

static struct ipsecif_sa *find(struct ipsecif_ctx *ctx, uint8_t proto,
                               const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                               uint32_t spi)
{
    struct ipsecif_sa *sa = ipsecif_sadb_lookup_spi(ctx, proto, dst, spi);

    if (sa != NULL && src != NULL && !ipsecif_addr_eq(&sa->src, src)) {
        return NULL;
    }
    return sa;
}

/* natt_any: any encapsulation (host traffic takes the ports from the SA);
 * else ports 0 mean plain ESP and nonzero ones must match. */
static bool out_usable(const struct ipsecif_sa *sa, const struct ipsecif_ipsecreq *req, bool unique,
                       const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                       uint16_t sport, uint16_t dport, bool natt_any)
{
    if (sa->state != IPSECIF_SA_MATURE && sa->state != IPSECIF_SA_DYING) {
        return false;
    }
    if (sa->proto != req->proto || (unique && sa->reqid != req->reqid)) {
        return false;
    }
    if (sa->mode != IPSECIF_MODE_ANY && sa->mode != req->mode) {
        return false;
    }
    if (!ipsecif_addr_eq(&sa->src, src) || !ipsecif_addr_eq(&sa->dst, dst)) {
        return false;
    }
    if (natt_any) {
        return true;
    }
    /* Without NAT-T ports the SA must not be UDP-encapsulated either. */
    if (sport != 0 || dport != 0) {
        return sa->natt_sport == sport && sa->natt_dport == dport;
    }
    return sa->natt_sport == 0 && sa->natt_dport == 0;
}

/* Should a take the place of best (same state)? The newer one unless
 * net.key.prefered_oldsa asks for the older. */
static bool better(const struct ipsecif_sa *a, const struct ipsecif_sa *best, bool old)
{
    if (best == NULL) {
        return true;
    }
    return old ? a->gen < best->gen : a->gen > best->gen;
}

static struct ipsecif_sa *lookup_out(struct ipsecif_ctx *ctx, const struct ipsecif_ipsecreq *req,
                                     uint8_t level, const struct ipsecif_addr *src,
                                     const struct ipsecif_addr *dst, uint16_t sport, uint16_t dport,
                                     bool natt_any)
{
    bool unique = level == IPSECIF_LEVEL_UNIQUE;
    bool old = ctx->spd.sysctl[IPSECIF_SYSCTL_KEY_PREFERED_OLDSA] != 0;
    struct ipsecif_sa *mature = NULL;
    struct ipsecif_sa *dying = NULL;
    struct ipsecif_sa *sa;

    if (unique) {
        if (req->reqid == 0) {
            return NULL;
        }
        sa = ctx->sadb.reqid_hash[reqid_bucket(ctx, req->reqid)];
    } else {
        sa = ctx->sadb.pair_hash[pair_bucket(ctx, req->proto, src, dst)];
    }
    for (; sa != NULL; sa = unique ? sa->reqid_next : sa->pair_next) {
        if (!out_usable(sa, req, unique, src, dst, sport, dport, natt_any)) {
            continue;
        }
        if (sa->state == IPSECIF_SA_MATURE) {
            if (better(sa, mature, old)) {
                mature = sa;
            }
        } else if (better(sa, dying, old)) {
            dying = sa;
        }
    }
    /* prefered_oldsa 0 (NetBSD's default): the newest mature SA, so that
     * after a rekey the new SA takes the traffic while the old one drains;
     * else the dying ones first, the oldest of them, and the SA in use
     * keeps the traffic until it is gone. */
    if (old) {
        return dying != NULL ? dying : mature;
    }
    return mature != NULL ? mature : dying;
}

IPSECIF_NOINLINE struct ipsecif_sa *
ipsecif_sadb_lookup_out(struct ipsecif_ctx *ctx, const struct ipsecif_ipsecreq *req, uint8_t level,
                        const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                        uint16_t sport, uint16_t dport)
{
    return lookup_out(ctx, req, level, src, dst, sport, dport, false);
}

struct ipsecif_sa *ipsecif_sadb_lookup_host(struct ipsecif_ctx *ctx,
                                            const struct ipsecif_ipsecreq *req, uint8_t level,
                                            const struct ipsecif_addr *src,
                                            const struct ipsecif_addr *dst)
{
    return lookup_out(ctx, req, level, src, dst, 0, 0, true);
}

/* ---- Use and expiry ---- */

IPSECIF_NOINLINE bool ipsecif_sadb_account_slow(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                                                size_t bytes, uint64_t now)
{
    uint64_t total;

    if (!sa->in_use || (sa->state != IPSECIF_SA_MATURE && sa->state != IPSECIF_SA_DYING)) {
        return false;
    }
    total = add_ms(sa->bytes, (uint64_t)bytes);
    /* The hard limit is the most the SA may protect: a packet that would go
     * past it is refused and the SA dies. */
    if (sa->hard.bytes != 0 && total > sa->hard.bytes) {
        ipsecif_sadb_kill(ctx, sa, IPSECIF_EXPIRE_BYTES);
        return false;
    }
    sa->bytes = total;
    if (!sa_used(sa)) {
        sa->allocations = 1;
        sa->use_ms = now;
        if (sa->soft.usetime != 0 || sa->hard.usetime != 0) {
            note_deadline(ctx, sa);
        }
    }
    if (!sa->soft_sent && sa->soft.bytes != 0 && total >= sa->soft.bytes) {
        soft_expire(ctx, sa, IPSECIF_EXPIRE_BYTES);
    }
    return true;
}

static bool reached(uint64_t base, uint64_t secs, uint64_t now)
{
    return secs != 0 && add_secs(base, secs) <= now;
}

/* Act on time limits that have passed; false if the SA is gone. A hard limit
 * wins over a soft one that passed at the same time. */
static bool expire_time(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, uint64_t now)
{
    if (sa->state == IPSECIF_SA_LARVAL) {
        sa_free(ctx, sa);
        return false;
    }
    if (reached(sa->add_ms, sa->hard.addtime, now)) {
        ipsecif_sadb_kill(ctx, sa, IPSECIF_EXPIRE_ADDTIME);
        return false;
    }
    if (sa_used(sa) && reached(sa->use_ms, sa->hard.usetime, now)) {
        ipsecif_sadb_kill(ctx, sa, IPSECIF_EXPIRE_USETIME);
        return false;
    }
    if (!sa->soft_sent) {
        if (reached(sa->add_ms, sa->soft.addtime, now)) {
            soft_expire(ctx, sa, IPSECIF_EXPIRE_ADDTIME);
        } else if (sa_used(sa) && reached(sa->use_ms, sa->soft.usetime, now)) {
            soft_expire(ctx, sa, IPSECIF_EXPIRE_USETIME);
        }
    }
    return true;
}

uint64_t ipsecif_sadb_timer(struct ipsecif_ctx *ctx, uint64_t now)
{
    struct ipsecif_sa *sa;
    struct ipsecif_sa *next_sa;
    uint64_t next = UINT64_MAX;
    uint64_t d;

    for (sa = ctx->sadb.age_head; sa != NULL; sa = next_sa) {
        next_sa = sa->age_next;
        d = sa_deadline(sa);
        if (d <= now) {
            if (!expire_time(ctx, sa, now)) {
                continue;
            }
            d = sa_deadline(sa);
        }
        next = min64(next, d);
    }
    ctx->sadb.next_deadline = next;
    return next;
}

uint64_t ipsecif_sadb_next_deadline(const struct ipsecif_ctx *ctx)
{
    return ctx->sadb.next_deadline;
}

void ipsecif_sadb_clear(struct ipsecif_ctx *ctx)
{
    while (ctx->sadb.age_head != NULL) {
        sa_free(ctx, ctx->sadb.age_head);
    }
    ctx->sadb.next_deadline = UINT64_MAX;
}

/* ---- Public API ---- */

int ipsecif_sa_add(struct ipsecif_ctx *ctx, const struct ipsecif_sa_params *p, uint64_t now)
{
    struct ipsecif_sa *sa;
    int rc;

    if (ctx == NULL || p == NULL) {
        return IPSECIF_ERR_ARG;
    }
    rc = check_params(ctx, p);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (ipsecif_sadb_lookup_spi(ctx, p->proto, &p->dst, p->spi) != NULL) {
        return IPSECIF_ERR_EXIST;
    }
    sa = slot_alloc(ctx);
    if (sa == NULL) {
        return IPSECIF_ERR_FULL;
    }
    fill(sa, p);
    rc = set_keys(ctx, sa, p);
    if (rc != IPSECIF_OK) {
        slot_release(ctx, sa);
        return rc;
    }
    sa->state = IPSECIF_SA_MATURE;
    sa->add_ms = now;
    sa->gen = ++ctx->sadb.gen;
    link_spi(ctx, sa);
    link_pair(ctx, sa);
    link_reqid(ctx, sa);
    age_append(ctx, sa);
    note_deadline(ctx, sa);
    return IPSECIF_OK;
}

/* Are the keys p gives the ones the SA has? Without kept keys nothing can
 * tell, so any key given counts as a change. */
static bool same_keys(const struct ipsecif_sa *sa, const struct ipsecif_sa_params *p)
{
#if IPSECIF_SA_KEEP_KEYS
    int e = p->ekey_len == 0 || ipsecif_ct_memeq(sa->ekey, p->ekey, p->ekey_len);
    int a = p->akey_len == 0 || ipsecif_ct_memeq(sa->akey, p->akey, p->akey_len);

    return (e & a) != 0;
#else
    (void)sa;
    return p->ekey_len == 0 && p->akey_len == 0;
#endif
}

/* A mature or dying SA keeps its keys; only its lifetimes may change. An
 * update that would change a key is refused rather than half applied. */
static int update_lifetimes(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                            const struct ipsecif_sa_params *p)
{
    if (p->ealg != sa->ealg || p->aalg != sa->aalg || p->ekey_len != sa->ekey_len ||
        p->akey_len != sa->akey_len || !same_keys(sa, p)) {
        return IPSECIF_ERR_STATE;
    }
    sa->soft = p->soft;
    sa->hard = p->hard;
    note_deadline(ctx, sa);
    return IPSECIF_OK;
}

int ipsecif_sa_update(struct ipsecif_ctx *ctx, const struct ipsecif_sa_params *p, uint64_t now)
{
    struct ipsecif_sa *sa;
    int rc;

    if (ctx == NULL || p == NULL) {
        return IPSECIF_ERR_ARG;
    }
    rc = check_params(ctx, p);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    sa = ipsecif_sadb_lookup_spi(ctx, p->proto, &p->dst, p->spi);
    if (sa == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (sa->state == IPSECIF_SA_DEAD) {
        return IPSECIF_ERR_STATE;
    }
    if (sa->state != IPSECIF_SA_LARVAL) {
        return update_lifetimes(ctx, sa, p);
    }
    /* Keys first: a larval SA holds none, so a failure leaves it as it was. */
    rc = set_keys(ctx, sa, p);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    /* src and reqid may change, so the SA moves in their hash chains; it is
     * now the newest SA, at the end of the age list. */
    unlink_pair(ctx, sa);
    unlink_reqid(ctx, sa);
    age_remove(ctx, sa);
    fill(sa, p);
    sa->state = IPSECIF_SA_MATURE;
    sa->add_ms = now;
    sa->gen = ++ctx->sadb.gen;
    link_pair(ctx, sa);
    link_reqid(ctx, sa);
    age_append(ctx, sa);
    note_deadline(ctx, sa);
    return IPSECIF_OK;
}

/* A random SPI in [lo, hi] that (proto, dst) does not use yet. */
static int pick_spi(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *dst,
                    uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t span = (uint64_t)hi - lo + 1u;
    uint64_t off = 0;
    uint64_t limit;
    uint64_t i;
    uint8_t r[8];
    uint32_t spi;

    for (i = 0; i < SPI_RANDOM_TRIES; i++) {
        if (ctx->port->random(ctx->user, r, sizeof(r)) != 0) {
            return IPSECIF_ERR_RANDOM;
        }
        /* 64 random bits over a span of at most 2^32: the modulo bias is nil. */
        off = ipsecif_load64(r) % span;
        spi = (uint32_t)(lo + off);
        if (ipsecif_sadb_lookup_spi(ctx, proto, dst, spi) == NULL) {
            *out = spi;
            return IPSECIF_OK;
        }
    }
    /* At most nsas SPIs are taken, so nsas + 1 steps find a free one if the
     * range has one; the probe never walks a huge range. */
    limit = min64(span, (uint64_t)ctx->sadb.n + 1u);
    for (i = 0; i < limit; i++) {
        spi = (uint32_t)(lo + (off + i) % span);
        if (ipsecif_sadb_lookup_spi(ctx, proto, dst, spi) == NULL) {
            *out = spi;
            return IPSECIF_OK;
        }
    }
    return IPSECIF_ERR_EXIST;
}

int ipsecif_sa_getspi(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                      const struct ipsecif_addr *dst, uint8_t mode, uint32_t reqid,
                      uint32_t spi_min, uint32_t spi_max, uint32_t seq, uint64_t now, uint32_t *spi)
{
    struct ipsecif_sa *sa;
    uint32_t v = 0;
    int rc;

    if (ctx == NULL || src == NULL || dst == NULL || spi == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (proto != IPSECIF_IPPROTO_ESP && proto != IPSECIF_IPPROTO_AH) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    rc = check_addrs(src, dst);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (mode > IPSECIF_MODE_TUNNEL) {
        return IPSECIF_ERR_ARG;
    }
    if (spi_min < SPI_MIN) {
        spi_min = SPI_MIN;
    }
    if (spi_min > spi_max) {
        return IPSECIF_ERR_ARG;
    }
    if (ctx->sadb.n >= ctx->cfg.max_sas) {
        return IPSECIF_ERR_FULL;
    }
    rc = pick_spi(ctx, proto, dst, spi_min, spi_max, &v);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    sa = slot_alloc(ctx);
    if (sa == NULL) {
        return IPSECIF_ERR_FULL;
    }
    sa->proto = proto;
    sa->mode = mode;
    sa->spi = v;
    addr_copy(&sa->src, src);
    addr_copy(&sa->dst, dst);
    sa->reqid = reqid;
    sa->seq = seq;
    sa->state = IPSECIF_SA_LARVAL;
    sa->add_ms = now;
    sa->gen = ++ctx->sadb.gen;
    link_spi(ctx, sa);
    link_pair(ctx, sa);
    link_reqid(ctx, sa);
    age_append(ctx, sa);
    note_deadline(ctx, sa);
    *spi = v;
    return IPSECIF_OK;
}

int ipsecif_sa_delete(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                      const struct ipsecif_addr *dst, uint32_t spi)
{
    struct ipsecif_sa *sa;

    if (ctx == NULL || dst == NULL) {
        return IPSECIF_ERR_ARG;
    }
    sa = find(ctx, proto, src, dst, spi);
    if (sa == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    sa_free(ctx, sa);
    return IPSECIF_OK;
}

int ipsecif_sa_get(struct ipsecif_ctx *ctx, uint8_t proto, const struct ipsecif_addr *src,
                   const struct ipsecif_addr *dst, uint32_t spi, struct ipsecif_sa_info *out)
{
    struct ipsecif_sa *sa;

    if (ctx == NULL || dst == NULL || out == NULL) {
        return IPSECIF_ERR_ARG;
    }
    sa = find(ctx, proto, src, dst, spi);
    if (sa == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    ipsecif_sadb_info(sa, out);
    return IPSECIF_OK;
}

int ipsecif_sa_flush(struct ipsecif_ctx *ctx, uint8_t proto)
{
    struct ipsecif_sa *sa;
    struct ipsecif_sa *next_sa;
    int n = 0;

    if (ctx == NULL) {
        return 0;
    }
    for (sa = ctx->sadb.age_head; sa != NULL; sa = next_sa) {
        next_sa = sa->age_next;
        if (proto == 0 || sa->proto == proto) {
            sa_free(ctx, sa);
            n++;
        }
    }
    return n;
}

int ipsecif_sa_walk(struct ipsecif_ctx *ctx, uint8_t proto, ipsecif_sa_walk_fn fn, void *arg)
{
    struct ipsecif_sa_info info;
    struct ipsecif_sa *sa;
    struct ipsecif_sa *next_sa;
    int rc;

    if (ctx == NULL || fn == NULL) {
        return IPSECIF_ERR_ARG;
    }
    for (sa = ctx->sadb.age_head; sa != NULL; sa = next_sa) {
        next_sa = sa->age_next;
        if (proto != 0 && sa->proto != proto) {
            continue;
        }
        ipsecif_sadb_info(sa, &info);
        rc = fn(arg, &info);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

size_t ipsecif_sa_count(const struct ipsecif_ctx *ctx)
{
    return ctx != NULL ? ctx->sadb.n : 0;
}
