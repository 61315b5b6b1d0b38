/*
 * The security policy database: policies ordered as KAME orders them (by
 * priority, then by the order they were added), the system-wide defaults,
 * and a lookup whose cost does not grow with the number of host-to-host
 * policies.
 *
 * Every policy sits on the list of its direction (lookup order). Policies
 * whose prefixes are both full length ("exact") are also chained in a hash
 * keyed by (direction, source, destination); all others are also on a
 * second per-direction list. A lookup takes the first match of its host
 * pair's hash chain, then walks the non-exact list only while its entries
 * come before that match, so thousands of tunnels cost one hash probe.
 *
 * All insertions and removals go through ipsecif_spd_insert() and
 * ipsecif_spd_remove(), whoever asks (public API, interfaces, PF_KEY).
 */
#include "core/ctx.h"

static bool dir_ok(uint8_t dir)
{
    return dir == IPSECIF_DIR_IN || dir == IPSECIF_DIR_OUT || dir == IPSECIF_DIR_FWD;
}

static bool family_ok(uint8_t family)
{
    return family == IPSECIF_AF_INET || family == IPSECIF_AF_INET6;
}

static bool is_icmp(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ICMP || proto == IPSECIF_IPPROTO_ICMPV6;
}

/* ---- Memory ---- */

static size_t table_bytes(uint32_t max_policies)
{
    return IPSECIF_ALIGN16((size_t)ipsecif_hash_size(max_policies) * sizeof(void *));
}

size_t ipsecif_spd_mem_size(const struct ipsecif_config *cfg)
{
    size_t n = cfg->max_policies;

    if (n > (SIZE_MAX / 2) / sizeof(struct ipsecif_sp)) {
        return 0;
    }
    /* Policies, the exact, id, selector and reqid hash tables, socket policies. */
    return IPSECIF_ALIGN16(n * sizeof(struct ipsecif_sp)) + 4 * table_bytes(cfg->max_policies) +
           IPSECIF_ALIGN16((size_t)cfg->max_socket_policies * sizeof(struct ipsecif_sockpol));
}

static void *carve(uint8_t **cursor, size_t bytes)
{
    void *p = *cursor;

    memset(p, 0, bytes);
    *cursor += IPSECIF_ALIGN16(bytes);
    return p;
}

void ipsecif_spd_setup(struct ipsecif_ctx *ctx, uint8_t **cursor)
{
    uint32_t n = ctx->cfg.max_policies;
    size_t tbl = table_bytes(n);
    uint32_t i;

    ctx->spd.tab = carve(cursor, (size_t)n * sizeof(struct ipsecif_sp));
    ctx->spd.exact_hash = carve(cursor, tbl);
    ctx->spd.id_hash = carve(cursor, tbl);
    ctx->spd.sel_hash = carve(cursor, tbl);
    ctx->spd.rq_hash = carve(cursor, tbl);
    ctx->spd.hash_mask = ipsecif_hash_size(n) - 1;
    ctx->spd.socks =
        carve(cursor, (size_t)ctx->cfg.max_socket_policies * sizeof(struct ipsecif_sockpol));
    ctx->spd.nsocks = 0;
    ctx->spd.n = 0;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(ctx->spd.all); i++) {
        ctx->spd.all[i].head = NULL;
        ctx->spd.all[i].tail = NULL;
        ctx->spd.nx[i].head = NULL;
        ctx->spd.nx[i].tail = NULL;
        ctx->spd.nonexact[i] = 0;
    }
    /* Hand out low slots first: easier to read in a debugger. */
    ctx->spd.free = NULL;
    for (i = n; i-- > 0;) {
        ctx->spd.tab[i].all.next = ctx->spd.free;
        ctx->spd.free = &ctx->spd.tab[i];
    }
    ctx->spd.order = 0;
    ctx->spd.next_id = 1;
    ctx->spd.next_reqid = IPSECIF_REQID_MANUAL_MAX + 1;

    for (i = 0; i < IPSECIF_SYSCTL_COUNT; i++) {
        ctx->spd.sysctl[i] = IPSECIF_LEVEL_USE;
    }
    ctx->spd.sysctl[IPSECIF_SYSCTL_DEF_POLICY] = IPSECIF_ACTION_NONE;
    ctx->spd.sysctl[IPSECIF_SYSCTL6_DEF_POLICY] = IPSECIF_ACTION_NONE;
    ctx->spd.sysctl[IPSECIF_SYSCTL_ENABLED] = IPSECIF_IPSEC_ENABLED;
    ctx->spd.sysctl[IPSECIF_SYSCTL_USED] = 0;
    ctx->spd.sysctl[IPSECIF_SYSCTL_KEY_PREFERED_OLDSA] = 0;
}

/* Policies or per-socket policies exist (NetBSD's key_get_used()). */
static bool has_policies(const struct ipsecif_ctx *ctx)
{
    return ctx->spd.n > 0 || ctx->spd.nsocks > 0;
}

bool ipsecif_spd_used(const struct ipsecif_ctx *ctx)
{
    return ctx->spd.sysctl[IPSECIF_SYSCTL_USED] != 0;
}

void ipsecif_spd_note_used(struct ipsecif_ctx *ctx)
{
    uint8_t *used = &ctx->spd.sysctl[IPSECIF_SYSCTL_USED];
    uint8_t was = *used;

    switch (ctx->spd.sysctl[IPSECIF_SYSCTL_ENABLED]) {
    case IPSECIF_IPSEC_ALWAYS:
        *used = 1;
        break;
    case IPSECIF_IPSEC_ENABLED:
        /* Once on it stays on: a flushed SPD keeps def_policy in force. */
        if (*used == 0 && has_policies(ctx)) {
            *used = 1;
        }
        break;
    default:
        *used = 0;
        break;
    }
    if (*used != was) {
        ctx->spd.gen++;
    }
}

uint32_t ipsecif_spd_free_slots(const struct ipsecif_ctx *ctx)
{
    if (ctx == NULL) {
        return 0;
    }
    return ctx->cfg.max_policies - ctx->spd.n;
}

/* ---- Checking and normalizing what callers give ---- */

static void norm_addr(struct ipsecif_addr *a)
{
    if (family_ok(a->family)) {
        ipsecif_addr_norm(a);
    } else {
        memset(a, 0, sizeof(*a));
    }
}

static bool icmp_value_ok(uint16_t v)
{
    return v <= 255 || v == IPSECIF_ICMP_ANY;
}

static bool norm_sel(const struct ipsecif_selector *in, struct ipsecif_selector *out)
{
    size_t bits;

    if (!family_ok(in->src.family) || in->dst.family != in->src.family) {
        return false;
    }
    bits = 8 * ipsecif_addr_len(in->src.family);
    if (in->src_plen > bits || in->dst_plen > bits) {
        return false;
    }
    if (is_icmp(in->ulproto) && (!icmp_value_ok(in->sport) || !icmp_value_ok(in->dport))) {
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->src = in->src;
    out->dst = in->dst;
    out->src_plen = in->src_plen;
    out->dst_plen = in->dst_plen;
    out->ulproto = in->ulproto;
    out->sport = in->sport;
    out->dport = in->dport;
    ipsecif_addr_mask(&out->src, out->src_plen);
    ipsecif_addr_mask(&out->dst, out->dst_plen);
    return true;
}

static bool check_req(const struct ipsecif_ipsecreq *in, struct ipsecif_ipsecreq *out)
{
    uint8_t fs = in->tun_src.family;
    uint8_t fd = in->tun_dst.family;

    if (in->proto != IPSECIF_IPPROTO_ESP && in->proto != IPSECIF_IPPROTO_AH) {
        return false;
    }
    if (in->level > IPSECIF_LEVEL_UNIQUE) {
        return false;
    }
    if (in->mode == IPSECIF_MODE_TUNNEL) {
        if (!family_ok(fs) || fd != fs) {
            return false;
        }
    } else if (in->mode == IPSECIF_MODE_TRANSPORT) {
        /* Endpoints are optional in transport mode, but not half given. */
        if (fd != fs || (fs != IPSECIF_AF_UNSPEC && !family_ok(fs))) {
            return false;
        }
    } else {
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->proto = in->proto;
    out->mode = in->mode;
    out->level = in->level;
    out->reqid = in->reqid;
    out->tun_src = in->tun_src;
    out->tun_dst = in->tun_dst;
    norm_addr(&out->tun_src);
    norm_addr(&out->tun_dst);
    return true;
}

bool ipsecif_spd_check_reqs(const struct ipsecif_ipsecreq *in, uint8_t n,
                            struct ipsecif_ipsecreq *out)
{
    uint8_t i;

    if (n < 1 || n > IPSECIF_MAX_REQUESTS) {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (!check_req(&in[i], &out[i])) {
            return false;
        }
    }
    return true;
}

/* Build the stored form of a policy: checked, masked, unused parts zero. */
static int check_policy(const struct ipsecif_policy *in, struct ipsecif_policy *out)
{
    memset(out, 0, sizeof(*out));
    if (!norm_sel(&in->sel, &out->sel) || !dir_ok(in->dir)) {
        return IPSECIF_ERR_ARG;
    }
    out->dir = in->dir;
    out->action = in->action;
    out->priority = in->priority;
    if (in->action == IPSECIF_ACTION_DISCARD || in->action == IPSECIF_ACTION_NONE) {
        return in->nreq == 0 ? IPSECIF_OK : IPSECIF_ERR_ARG;
    }
    if (in->action != IPSECIF_ACTION_IPSEC ||
        !ipsecif_spd_check_reqs(in->req, in->nreq, out->req)) {
        return IPSECIF_ERR_ARG;
    }
    out->nreq = in->nreq;
    return IPSECIF_OK;
}

static bool sel_eq(const struct ipsecif_selector *a, const struct ipsecif_selector *b)
{
    return ipsecif_addr_eq(&a->src, &b->src) && ipsecif_addr_eq(&a->dst, &b->dst) &&
           a->src_plen == b->src_plen && a->dst_plen == b->dst_plen && a->ulproto == b->ulproto &&
           a->sport == b->sport && a->dport == b->dport;
}

static bool sel_is_exact(const struct ipsecif_selector *sel)
{
    size_t bits = 8 * ipsecif_addr_len(sel->src.family);

    return sel->src_plen == bits && sel->dst_plen == bits;
}

/* Lookup order: lower priority value first, then older first. */
static bool before(const struct ipsecif_sp *a, const struct ipsecif_sp *b)
{
    return a->pol.priority < b->pol.priority ||
           (a->pol.priority == b->pol.priority && a->order < b->order);
}

/* ---- Hash buckets ---- */

static uint32_t pair_bucket(const struct ipsecif_ctx *ctx, uint8_t dir,
                            const struct ipsecif_addr *src, const struct ipsecif_addr *dst)
{
    uint32_t h = ipsecif_hash_bytes(IPSECIF_HASH_INIT, &dir, 1);

    h = ipsecif_hash_addr(h, src);
    h = ipsecif_hash_addr(h, dst);
    return ipsecif_hash_finish(h) & ctx->spd.hash_mask;
}

static uint32_t sel_bucket(const struct ipsecif_ctx *ctx, const struct ipsecif_selector *sel,
                           uint8_t dir)
{
    uint8_t rest[8];
    uint32_t h;

    /* Field by field: struct padding must not reach the hash. */
    rest[0] = dir;
    rest[1] = sel->src_plen;
    rest[2] = sel->dst_plen;
    rest[3] = sel->ulproto;
    ipsecif_store16(&rest[4], sel->sport);
    ipsecif_store16(&rest[6], sel->dport);
    h = ipsecif_hash_bytes(IPSECIF_HASH_INIT, rest, sizeof(rest));
    h = ipsecif_hash_addr(h, &sel->src);
    h = ipsecif_hash_addr(h, &sel->dst);
    return ipsecif_hash_finish(h) & ctx->spd.hash_mask;
}

static uint32_t u32_bucket(const struct ipsecif_ctx *ctx, uint32_t v)
{
    return ipsecif_hash_finish(v) & ctx->spd.hash_mask;
}

static struct ipsecif_sp *find_sel(struct ipsecif_ctx *ctx, const struct ipsecif_selector *sel,
                                   uint8_t dir)
{
    struct ipsecif_sp *sp;

    for (sp = ctx->spd.sel_hash[sel_bucket(ctx, sel, dir)]; sp != NULL; sp = sp->sel_next) {
        if (sp->pol.dir == dir && sel_eq(&sp->pol.sel, sel)) {
            return sp;
        }
    }
    return NULL;
}

/* ---- Linking ---- */

/* The ordered lists: every policy of a direction (link all) and the
 * non-exact ones only (link nx), both in lookup order. */
#define SP_LINK(sp, off) ((struct ipsecif_sp_link *)(void *)((uint8_t *)(sp) + (off)))
#define LINK_ALL offsetof(struct ipsecif_sp, all)
#define LINK_NX offsetof(struct ipsecif_sp, nx)

/* Insert in (priority, order) position. Walking from the tail makes a run
 * of equal priorities (the usual case: a new policy is the youngest) O(1). */
static void list_link(struct ipsecif_sp_list *l, size_t off, struct ipsecif_sp *sp)
{
    struct ipsecif_sp_link *lk = SP_LINK(sp, off);
    struct ipsecif_sp *p = l->tail;

    while (p != NULL && before(sp, p)) {
        p = SP_LINK(p, off)->prev;
    }
    lk->prev = p;
    lk->next = p != NULL ? SP_LINK(p, off)->next : l->head;
    if (lk->next != NULL) {
        SP_LINK(lk->next, off)->prev = sp;
    } else {
        l->tail = sp;
    }
    if (p != NULL) {
        SP_LINK(p, off)->next = sp;
    } else {
        l->head = sp;
    }
}

static void list_unlink(struct ipsecif_sp_list *l, size_t off, struct ipsecif_sp *sp)
{
    struct ipsecif_sp_link *lk = SP_LINK(sp, off);

    if (lk->prev != NULL) {
        SP_LINK(lk->prev, off)->next = lk->next;
    } else {
        l->head = lk->next;
    }
    if (lk->next != NULL) {
        SP_LINK(lk->next, off)->prev = lk->prev;
    } else {
        l->tail = lk->prev;
    }
}

static void all_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    list_link(&ctx->spd.all[sp->pol.dir], LINK_ALL, sp);
}

static void all_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    list_unlink(&ctx->spd.all[sp->pol.dir], LINK_ALL, sp);
}

static void nx_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    list_link(&ctx->spd.nx[sp->pol.dir], LINK_NX, sp);
    ctx->spd.nonexact[sp->pol.dir]++;
}

static void nx_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    list_unlink(&ctx->spd.nx[sp->pol.dir], LINK_NX, sp);
    ctx->spd.nonexact[sp->pol.dir]--;
}

/* Exact chains stay in lookup order so a lookup stops at the first match. */
static void exact_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **pp;

    pp = &ctx->spd.exact_hash[pair_bucket(ctx, sp->pol.dir, &sp->pol.sel.src, &sp->pol.sel.dst)];
    while (*pp != NULL && !before(sp, *pp)) {
        pp = &(*pp)->hnext;
    }
    sp->hnext = *pp;
    *pp = sp;
}

static void exact_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **pp;

    pp = &ctx->spd.exact_hash[pair_bucket(ctx, sp->pol.dir, &sp->pol.sel.src, &sp->pol.sel.dst)];
    while (*pp != NULL && *pp != sp) {
        pp = &(*pp)->hnext;
    }
    if (*pp == sp) {
        *pp = sp->hnext;
    }
}

static void sel_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **head = &ctx->spd.sel_hash[sel_bucket(ctx, &sp->pol.sel, sp->pol.dir)];

    sp->sel_next = *head;
    *head = sp;
}

static void sel_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **pp = &ctx->spd.sel_hash[sel_bucket(ctx, &sp->pol.sel, sp->pol.dir)];

    while (*pp != NULL && *pp != sp) {
        pp = &(*pp)->sel_next;
    }
    if (*pp == sp) {
        *pp = sp->sel_next;
    }
}

static void id_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **head = &ctx->spd.id_hash[u32_bucket(ctx, sp->pol.id)];

    sp->id_next = *head;
    *head = sp;
}

static void id_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    struct ipsecif_sp **pp = &ctx->spd.id_hash[u32_bucket(ctx, sp->pol.id)];

    while (*pp != NULL && *pp != sp) {
        pp = &(*pp)->id_next;
    }
    if (*pp == sp) {
        *pp = sp->id_next;
    }
}

/* One link per request with a reqid. Doubly linked: many policies may share
 * one manual reqid, and removing one of them must not walk the others. */
static void rq_link(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    uint8_t i;

    for (i = 0; i < sp->pol.nreq; i++) {
        uint32_t r = sp->pol.req[i].reqid;
        struct ipsecif_sp_rq *n = &sp->rq[i];
        struct ipsecif_sp_rq **head;

        if (r == 0) {
            continue;
        }
        head = &ctx->spd.rq_hash[u32_bucket(ctx, r)];
        n->sp = sp;
        n->reqid = r;
        n->prev = NULL;
        n->next = *head;
        if (*head != NULL) {
            (*head)->prev = n;
        }
        *head = n;
    }
}

static void rq_unlink(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    uint8_t i;

    for (i = 0; i < IPSECIF_MAX_REQUESTS; i++) {
        struct ipsecif_sp_rq *n = &sp->rq[i];

        if (n->sp == NULL) {
            continue;
        }
        if (n->prev != NULL) {
            n->prev->next = n->next;
        } else {
            ctx->spd.rq_hash[u32_bucket(ctx, n->reqid)] = n->next;
        }
        if (n->next != NULL) {
            n->next->prev = n->prev;
        }
        memset(n, 0, sizeof(*n));
    }
}

/* ---- Ids ---- */

struct ipsecif_sp *ipsecif_spd_find_id(struct ipsecif_ctx *ctx, uint32_t id)
{
    struct ipsecif_sp *sp;

    if (ctx == NULL || id == 0) {
        return NULL;
    }
    for (sp = ctx->spd.id_hash[u32_bucket(ctx, id)]; sp != NULL; sp = sp->id_next) {
        if (sp->pol.id == id) {
            return sp;
        }
    }
    return NULL;
}

/* Ids count up and skip 0 and ids still in use after a wrap. At most nsps
 * ids are taken, so nsps + 1 tries always find one. */
static uint32_t new_id(struct ipsecif_ctx *ctx)
{
    uint64_t tries;

    for (tries = 0; tries <= (uint64_t)ctx->spd.n; tries++) {
        uint32_t id = ctx->spd.next_id;

        ctx->spd.next_id = id >= IPSECIF_POLICY_ID_MAX ? 1 : id + 1;
        if (id != 0 && ipsecif_spd_find_id(ctx, id) == NULL) {
            return id;
        }
    }
    return 0;
}

bool ipsecif_spd_reqid_used(struct ipsecif_ctx *ctx, uint32_t reqid)
{
    struct ipsecif_sp_rq *n;

    if (ctx == NULL || reqid == 0) {
        return false;
    }
    for (n = ctx->spd.rq_hash[u32_bucket(ctx, reqid)]; n != NULL; n = n->next) {
        if (n->reqid == reqid) {
            return true;
        }
    }
    return false;
}

uint32_t ipsecif_spd_new_reqid(struct ipsecif_ctx *ctx)
{
    const uint32_t first = IPSECIF_REQID_MANUAL_MAX + 1;
    uint64_t limit;
    uint64_t tries;
    uint32_t r = first;

    if (ctx == NULL) {
        return 0;
    }
    /* Each policy holds at most IPSECIF_MAX_REQUESTS reqids, so this many
     * tries always reach a free one. */
    limit = (uint64_t)ctx->spd.n * IPSECIF_MAX_REQUESTS;
    for (tries = 0; tries <= limit; tries++) {
        r = ctx->spd.next_reqid < first ? first : ctx->spd.next_reqid;
        ctx->spd.next_reqid = r == UINT32_MAX ? first : r + 1;
        if (!ipsecif_spd_reqid_used(ctx, r)) {
            break;
        }
    }
    return r;
}

/* ---- The mutation path ---- */

/* What a re-insert keeps of a policy that was removed: its id, and for a
 * restore also its place in lookup order and its times. */
struct keep {
    uint32_t id;  /* 0: allocate */
    bool restore; /* keep order, created and lastused */
    uint64_t order;
    uint64_t created;
    uint64_t lastused;
};

static int insert_sp(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, bool owned,
                     uint64_t now, const struct keep *keep, struct ipsecif_sp **out)
{
    struct ipsecif_policy p;
    struct ipsecif_sp *old;
    struct ipsecif_sp *sp;
    uint8_t i;
    int rc;

    rc = check_policy(pol, &p);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    old = find_sel(ctx, &p.sel, p.dir);
    if (old != NULL) {
        return old->pol.owned ? IPSECIF_ERR_BUSY : IPSECIF_ERR_EXIST;
    }
    if (ctx->spd.free == NULL) {
        return IPSECIF_ERR_FULL;
    }
    for (i = 0; i < p.nreq; i++) {
        if (p.req[i].level == IPSECIF_LEVEL_UNIQUE && p.req[i].reqid == 0) {
            p.req[i].reqid = ipsecif_spd_new_reqid(ctx);
        }
    }
    p.id = keep != NULL && keep->id != 0 ? keep->id : new_id(ctx);
    if (p.id == 0) {
        return IPSECIF_ERR_INTERNAL;
    }
    p.owned = owned;
    p.created = keep != NULL && keep->restore ? keep->created : now;
    p.lastused = keep != NULL && keep->restore ? keep->lastused : 0;

    sp = ctx->spd.free;
    ctx->spd.free = sp->all.next;
    memset(sp, 0, sizeof(*sp));
    sp->in_use = true;
    sp->exact = sel_is_exact(&p.sel);
    sp->refcnt = owned ? 1 : 0;
    sp->pol = p;
    sp->order = keep != NULL && keep->restore ? keep->order : ctx->spd.order++;

    all_link(ctx, sp);
    if (sp->exact) {
        exact_link(ctx, sp);
    } else {
        nx_link(ctx, sp);
    }
    sel_link(ctx, sp);
    id_link(ctx, sp);
    rq_link(ctx, sp);
    ctx->spd.n++;
    ctx->spd.gen++;
    ipsecif_spd_note_used(ctx);
    if (out != NULL) {
        *out = sp;
    }
    return IPSECIF_OK;
}

int ipsecif_spd_insert(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, bool owned,
                       uint64_t now, struct ipsecif_sp **out)
{
    if (ctx == NULL || pol == NULL) {
        return IPSECIF_ERR_ARG;
    }
    return insert_sp(ctx, pol, owned, now, NULL, out);
}

int ipsecif_spd_restore(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, bool owned,
                        uint64_t order, struct ipsecif_sp **out)
{
    struct keep k;

    if (ctx == NULL || pol == NULL || pol->id == 0 || order >= ctx->spd.order) {
        return IPSECIF_ERR_ARG;
    }
    if (ipsecif_spd_find_id(ctx, pol->id) != NULL) {
        return IPSECIF_ERR_EXIST;
    }
    k.id = pol->id;
    k.restore = true;
    k.order = order;
    k.created = pol->created;
    k.lastused = pol->lastused;
    return insert_sp(ctx, pol, owned, pol->created, &k, out);
}

void ipsecif_spd_remove(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp)
{
    if (ctx == NULL || sp == NULL || !sp->in_use) {
        return;
    }
    all_unlink(ctx, sp);
    if (sp->exact) {
        exact_unlink(ctx, sp);
    } else {
        nx_unlink(ctx, sp);
    }
    sel_unlink(ctx, sp);
    id_unlink(ctx, sp);
    rq_unlink(ctx, sp);
    ctx->spd.n--;
    ctx->spd.gen++;
    memset(sp, 0, sizeof(*sp));
    sp->all.next = ctx->spd.free;
    ctx->spd.free = sp;
}

struct ipsecif_sp *ipsecif_spd_find_exact(struct ipsecif_ctx *ctx,
                                          const struct ipsecif_selector *sel, uint8_t dir)
{
    struct ipsecif_selector s;

    if (ctx == NULL || sel == NULL || !dir_ok(dir) || !norm_sel(sel, &s)) {
        return NULL;
    }
    return find_sel(ctx, &s, dir);
}

/* ---- Matching ---- */

static bool ul_match(const struct ipsecif_selector *sel, const struct ipsecif_selector *pkt)
{
    uint16_t any = is_icmp(sel->ulproto) ? IPSECIF_ICMP_ANY : IPSECIF_PORT_ANY;

    if (sel->ulproto != IPSECIF_IPPROTO_ANY && sel->ulproto != pkt->ulproto) {
        return false;
    }
    return (sel->sport == any || sel->sport == pkt->sport) &&
           (sel->dport == any || sel->dport == pkt->dport);
}

struct ipsecif_sp *ipsecif_spd_match(struct ipsecif_ctx *ctx, uint8_t dir,
                                     const struct ipsecif_selector *pkt)
{
    struct ipsecif_addr src;
    struct ipsecif_addr dst;
    struct ipsecif_sp *best = NULL;
    struct ipsecif_sp *sp;

    if (ctx == NULL || pkt == NULL || !dir_ok(dir) || !family_ok(pkt->src.family) ||
        pkt->dst.family != pkt->src.family) {
        return NULL;
    }
    src = pkt->src;
    dst = pkt->dst;
    norm_addr(&src);
    norm_addr(&dst);

    for (sp = ctx->spd.exact_hash[pair_bucket(ctx, dir, &src, &dst)]; sp != NULL; sp = sp->hnext) {
        if (sp->pol.dir == dir && ipsecif_addr_eq(&sp->pol.sel.src, &src) &&
            ipsecif_addr_eq(&sp->pol.sel.dst, &dst) && ul_match(&sp->pol.sel, pkt)) {
            best = sp;
            break;
        }
    }
    /* A prefix policy wins only if it comes first in lookup order. */
    for (sp = ctx->spd.nx[dir].head; sp != NULL; sp = sp->nx.next) {
        if (best != NULL && !before(sp, best)) {
            break;
        }
        if (ipsecif_addr_in_prefix(&src, &sp->pol.sel.src, sp->pol.sel.src_plen) &&
            ipsecif_addr_in_prefix(&dst, &sp->pol.sel.dst, sp->pol.sel.dst_plen) &&
            ul_match(&sp->pol.sel, pkt)) {
            best = sp;
            break;
        }
    }
    return best;
}

uint8_t ipsecif_spd_level(const struct ipsecif_ctx *ctx, uint8_t family,
                          const struct ipsecif_ipsecreq *req)
{
    bool v6 = family == IPSECIF_AF_INET6;
    bool tunnel = req->mode == IPSECIF_MODE_TUNNEL;
    int key;

    if (req->level != IPSECIF_LEVEL_DEFAULT) {
        return req->level;
    }
    if (req->proto == IPSECIF_IPPROTO_AH) {
        key = v6 ? (tunnel ? IPSECIF_SYSCTL6_AH_NET_DEFLEV : IPSECIF_SYSCTL6_AH_TRANS_DEFLEV)
                 : (tunnel ? IPSECIF_SYSCTL_AH_NET_DEFLEV : IPSECIF_SYSCTL_AH_TRANS_DEFLEV);
    } else {
        key = v6 ? (tunnel ? IPSECIF_SYSCTL6_ESP_NET_DEFLEV : IPSECIF_SYSCTL6_ESP_TRANS_DEFLEV)
                 : (tunnel ? IPSECIF_SYSCTL_ESP_NET_DEFLEV : IPSECIF_SYSCTL_ESP_TRANS_DEFLEV);
    }
    /* Anything but an explicit "use" fails closed. */
    return ctx->spd.sysctl[key] == IPSECIF_LEVEL_USE ? IPSECIF_LEVEL_USE : IPSECIF_LEVEL_REQUIRE;
}

/* ---- Public API ---- */

int ipsecif_spd_add(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, uint64_t now,
                    uint32_t *id)
{
    struct ipsecif_sp *sp = NULL;
    int rc;

    if (ctx == NULL || pol == NULL) {
        return IPSECIF_ERR_ARG;
    }
    rc = insert_sp(ctx, pol, false, now, NULL, &sp);
    if (rc == IPSECIF_OK && id != NULL) {
        *id = sp->pol.id;
    }
    return rc;
}

int ipsecif_spd_update(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, uint64_t now,
                       uint32_t *id)
{
    struct ipsecif_policy p;
    struct ipsecif_sp *old;
    struct ipsecif_sp *sp = NULL;
    struct keep k;
    int rc;

    if (ctx == NULL || pol == NULL) {
        return IPSECIF_ERR_ARG;
    }
    rc = check_policy(pol, &p);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    old = find_sel(ctx, &p.sel, p.dir);
    if (old == NULL) {
        return ipsecif_spd_add(ctx, pol, now, id);
    }
    if (old->pol.owned) {
        return IPSECIF_ERR_BUSY;
    }
    /* The policy is checked and its slot is freed first, so the insert
     * below cannot fail: the replacement is all or nothing. */
    memset(&k, 0, sizeof(k));
    k.id = old->pol.id;
    ipsecif_spd_remove(ctx, old);
    rc = insert_sp(ctx, pol, false, now, &k, &sp);
    if (rc == IPSECIF_OK && id != NULL) {
        *id = sp->pol.id;
    }
    return rc;
}

int ipsecif_spd_delete(struct ipsecif_ctx *ctx, const struct ipsecif_selector *sel, uint8_t dir)
{
    struct ipsecif_selector s;
    struct ipsecif_sp *sp;

    if (ctx == NULL || sel == NULL || !dir_ok(dir) || !norm_sel(sel, &s)) {
        return IPSECIF_ERR_ARG;
    }
    sp = find_sel(ctx, &s, dir);
    if (sp == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (sp->pol.owned) {
        return IPSECIF_ERR_BUSY;
    }
    ipsecif_spd_remove(ctx, sp);
    return IPSECIF_OK;
}

int ipsecif_spd_delete_id(struct ipsecif_ctx *ctx, uint32_t id)
{
    struct ipsecif_sp *sp;

    if (ctx == NULL) {
        return IPSECIF_ERR_ARG;
    }
    sp = ipsecif_spd_find_id(ctx, id);
    if (sp == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (sp->pol.owned) {
        return IPSECIF_ERR_BUSY;
    }
    ipsecif_spd_remove(ctx, sp);
    return IPSECIF_OK;
}

int ipsecif_spd_get(struct ipsecif_ctx *ctx, uint32_t id, struct ipsecif_policy *out)
{
    struct ipsecif_sp *sp;

    if (ctx == NULL || out == NULL) {
        return IPSECIF_ERR_ARG;
    }
    sp = ipsecif_spd_find_id(ctx, id);
    if (sp == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    *out = sp->pol;
    return IPSECIF_OK;
}

int ipsecif_spd_flush(struct ipsecif_ctx *ctx)
{
    struct ipsecif_sp *sp;
    struct ipsecif_sp *next;
    uint8_t d;
    int n = 0;

    if (ctx == NULL) {
        return IPSECIF_ERR_ARG;
    }
    for (d = IPSECIF_DIR_IN; d <= IPSECIF_DIR_FWD; d++) {
        for (sp = ctx->spd.all[d].head; sp != NULL; sp = next) {
            next = sp->all.next;
            if (!sp->pol.owned) {
                ipsecif_spd_remove(ctx, sp);
                n++;
            }
        }
    }
    return n;
}

int ipsecif_spd_walk(struct ipsecif_ctx *ctx, ipsecif_spd_walk_fn fn, void *arg)
{
    const struct ipsecif_sp *sp;
    uint8_t d;
    int rc;

    if (ctx == NULL || fn == NULL) {
        return IPSECIF_ERR_ARG;
    }
    for (d = IPSECIF_DIR_IN; d <= IPSECIF_DIR_FWD; d++) {
        for (sp = ctx->spd.all[d].head; sp != NULL; sp = sp->all.next) {
            rc = fn(arg, &sp->pol);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

size_t ipsecif_spd_count(const struct ipsecif_ctx *ctx)
{
    return ctx != NULL ? ctx->spd.n : 0;
}

int ipsecif_spd_lookup(struct ipsecif_ctx *ctx, uint8_t dir, const struct ipsecif_selector *pkt,
                       uint64_t now, struct ipsecif_policy *out)
{
    struct ipsecif_sp *sp;
    uint8_t i;
    int key;

    if (ctx == NULL || pkt == NULL || out == NULL || !dir_ok(dir) || !family_ok(pkt->src.family) ||
        pkt->dst.family != pkt->src.family) {
        return IPSECIF_ERR_ARG;
    }
    sp = ipsecif_spd_match(ctx, dir, pkt);
    if (sp == NULL) {
        key = pkt->src.family == IPSECIF_AF_INET6 ? IPSECIF_SYSCTL6_DEF_POLICY
                                                  : IPSECIF_SYSCTL_DEF_POLICY;
        memset(out, 0, sizeof(*out));
        out->dir = dir;
        out->action = ctx->spd.sysctl[key] == IPSECIF_ACTION_NONE ? IPSECIF_ACTION_NONE
                                                                  : IPSECIF_ACTION_DISCARD;
        return IPSECIF_ERR_NOENT;
    }
    sp->pol.lastused = now;
    *out = sp->pol;
    for (i = 0; i < out->nreq; i++) {
        out->req[i].level = ipsecif_spd_level(ctx, sp->pol.sel.src.family, &sp->pol.req[i]);
    }
    return IPSECIF_OK;
}

/* ---- System-wide defaults ---- */

int ipsecif_sysctl_get(const struct ipsecif_ctx *ctx, int key)
{
    if (ctx == NULL || key < 0 || key >= IPSECIF_SYSCTL_COUNT) {
        return IPSECIF_ERR_ARG;
    }
    return ctx->spd.sysctl[key];
}

int ipsecif_sysctl_set(struct ipsecif_ctx *ctx, int key, int value)
{
    int lo = IPSECIF_LEVEL_USE;
    int hi = IPSECIF_LEVEL_REQUIRE;

    if (ctx == NULL || key < 0 || key >= IPSECIF_SYSCTL_COUNT) {
        return IPSECIF_ERR_ARG;
    }
    switch (key) {
    case IPSECIF_SYSCTL_DEF_POLICY:
    case IPSECIF_SYSCTL6_DEF_POLICY:
        lo = IPSECIF_ACTION_DISCARD;
        hi = IPSECIF_ACTION_NONE;
        break;
    case IPSECIF_SYSCTL_ENABLED:
        lo = IPSECIF_IPSEC_DISABLED;
        hi = IPSECIF_IPSEC_ALWAYS;
        break;
    case IPSECIF_SYSCTL_USED:
        return IPSECIF_ERR_UNSUPPORTED;
    case IPSECIF_SYSCTL_KEY_PREFERED_OLDSA:
        lo = 0;
        hi = 1;
        break;
    default:
        break;
    }
    if (value < lo || value > hi) {
        return IPSECIF_ERR_RANGE;
    }
    if (key == IPSECIF_SYSCTL_ENABLED && value == IPSECIF_IPSEC_DISABLED && has_policies(ctx)) {
        return IPSECIF_ERR_BUSY;
    }
    ctx->spd.sysctl[key] = (uint8_t)value;
    ctx->spd.gen++;
    if (key == IPSECIF_SYSCTL_ENABLED) {
        ipsecif_spd_note_used(ctx);
    }
    return IPSECIF_OK;
}

/* ---- Inbound check ---- */

/* Does the SA that opened it satisfy a request of the matched policy? */
static bool req_allows(const struct ipsecif_ctx *ctx, uint8_t family,
                       const struct ipsecif_ipsecreq *req, const struct ipsecif_sa *sa)
{
    if (req->proto != sa->proto) {
        return false;
    }
    if (sa->mode != IPSECIF_MODE_ANY && sa->mode != req->mode) {
        return false;
    }
    return ipsecif_spd_level(ctx, family, req) != IPSECIF_LEVEL_UNIQUE || sa->reqid == req->reqid;
}

int ipsecif_spd_check_in(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta, uint8_t nh,
                         const struct ipsecif_sa *sa, uint64_t now)
{
    struct ipsecif_sp *sp;

    return ipsecif_spd_check_in_sp(ctx, meta, nh, sa, now, &sp);
}

IPSECIF_NOINLINE int ipsecif_spd_check_in_sp(struct ipsecif_ctx *ctx,
                                             const struct ipsecif_outer_meta *meta, uint8_t nh,
                                             const struct ipsecif_sa *sa, uint64_t now,
                                             struct ipsecif_sp **matched)
{
    struct ipsecif_selector sel;
    struct ipsecif_sp *sp;
    int verdict = IPSECIF_ERR_POLICY; /* refused unless a rule below lets it in */
    bool allow = false;

    memset(&sel, 0, sizeof(sel));
    sel.src = meta->src;
    sel.dst = meta->dst;
    sel.src_plen = (uint8_t)(ipsecif_addr_len(meta->src.family) * 8);
    sel.dst_plen = sel.src_plen;
    sel.ulproto = nh;
    sp = ipsecif_spd_match(ctx, IPSECIF_DIR_IN, &sel);
    *matched = sp;
    if (sp == NULL) {
        uint8_t key = meta->src.family == IPSECIF_AF_INET ? IPSECIF_SYSCTL_DEF_POLICY
                                                          : IPSECIF_SYSCTL6_DEF_POLICY;

        allow = ctx->spd.sysctl[key] != 0;
    } else {
        sp->pol.lastused = now;
        if (sp->pol.action == IPSECIF_ACTION_NONE) {
            allow = true;
        } else if (sp->pol.action == IPSECIF_ACTION_IPSEC) {
            allow = sp->pol.nreq == 0 || req_allows(ctx, meta->src.family, &sp->pol.req[0], sa);
        }
    }
    if (allow) {
        verdict = IPSECIF_OK;
    }
    return verdict;
}
