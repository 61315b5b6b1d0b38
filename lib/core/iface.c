/*
 * ipsecif interfaces: naming, tunnel endpoints and the four policies each
 * tunnel owns. A tunnel change is all or nothing: the old policies are taken
 * out, the new ones put in, and on any failure the new ones are removed and
 * the old ones restored with their ids and unique ids, before the call
 * returns. The host serializes calls, so no packet sees a half-made state.
 */
#include "core/ctx.h"

/* ---- Memory ---- */

size_t ipsecif_iface_mem_size(const struct ipsecif_config *cfg)
{
    if ((uint64_t)cfg->max_interfaces * sizeof(struct ipsecif_if) > SIZE_MAX / 2) {
        return 0;
    }
    return IPSECIF_ALIGN16((size_t)cfg->max_interfaces * sizeof(struct ipsecif_if)) +
           2 * IPSECIF_ALIGN16((size_t)ipsecif_hash_size(cfg->max_interfaces) *
                               sizeof(struct ipsecif_if *)) +
           IPSECIF_ALIGN16((size_t)cfg->max_interfaces * sizeof(uint32_t));
}

void ipsecif_iface_setup(struct ipsecif_ctx *ctx, uint8_t **cursor)
{
    uint32_t hs = ipsecif_hash_size(ctx->cfg.max_interfaces);
    uint32_t i;

    ctx->ifs.tab = (struct ipsecif_if *)(void *)*cursor;
    ctx->ifs.n = 0;
    *cursor += IPSECIF_ALIGN16((size_t)ctx->cfg.max_interfaces * sizeof(struct ipsecif_if));
    ctx->ifs.hash = (struct ipsecif_if **)(void *)*cursor;
    ctx->ifs.hash_mask = hs - 1;
    *cursor += IPSECIF_ALIGN16((size_t)hs * sizeof(struct ipsecif_if *));
    ctx->ifs.unit_hash = (struct ipsecif_if **)(void *)*cursor;
    *cursor += IPSECIF_ALIGN16((size_t)hs * sizeof(struct ipsecif_if *));
    ctx->ifs.free = (uint32_t *)(void *)*cursor;
    *cursor += IPSECIF_ALIGN16((size_t)ctx->cfg.max_interfaces * sizeof(uint32_t));
    memset(ctx->ifs.tab, 0, (size_t)ctx->cfg.max_interfaces * sizeof(struct ipsecif_if));
    memset(ctx->ifs.hash, 0, (size_t)hs * sizeof(struct ipsecif_if *));
    memset(ctx->ifs.unit_hash, 0, (size_t)hs * sizeof(struct ipsecif_if *));
    /* Pop order hands out slot 0 first. */
    for (i = 0; i < ctx->cfg.max_interfaces; i++) {
        ctx->ifs.free[i] = ctx->cfg.max_interfaces - 1 - i;
    }
    ctx->ifs.nfree = ctx->cfg.max_interfaces;
    ctx->ifs.head = NULL;
    ctx->ifs.tail = NULL;
    ctx->ifs.max_nesting = IPSECIF_MAX_NESTING_DEFAULT;
    ctx->ifs.natt_tunnels = 0;
}

/* Snapshot of a tunnel configuration, the unit that is swapped. */
struct tuncfg {
    bool has_tunnel;
    uint32_t flags;
    struct ipsecif_addr src;
    struct ipsecif_addr dst;
    uint16_t sport;
    uint16_t dport;
};

static bool valid_if(const struct ipsecif_ctx *ctx, const struct ipsecif_if *ifp)
{
    const struct ipsecif_if *first;

    if (ctx == NULL || ifp == NULL || ctx->magic != IPSECIF_CTX_MAGIC) {
        return false;
    }
    first = ctx->ifs.tab;
    return ifp >= first && ifp < first + ctx->cfg.max_interfaces && ifp->in_use;
}

static uint32_t pair_hash(const struct ipsecif_ctx *ctx, const struct ipsecif_addr *src,
                          const struct ipsecif_addr *dst)
{
    uint32_t h = IPSECIF_HASH_INIT;

    h = ipsecif_hash_addr(h, src);
    h = ipsecif_hash_addr(h, dst);
    return ipsecif_hash_finish(h) & ctx->ifs.hash_mask;
}

static void hash_link(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp)
{
    uint32_t b = pair_hash(ctx, &ifp->src, &ifp->dst);

    ifp->hnext = ctx->ifs.hash[b];
    ctx->ifs.hash[b] = ifp;
    ctx->ifs.natt_tunnels += (ifp->flags & IPSECIF_IFF_LINK0) != 0;
}

static void hash_unlink(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp)
{
    struct ipsecif_if **pp = &ctx->ifs.hash[pair_hash(ctx, &ifp->src, &ifp->dst)];

    while (*pp != NULL) {
        if (*pp == ifp) {
            *pp = ifp->hnext;
            ifp->hnext = NULL;
            ctx->ifs.natt_tunnels -= (ifp->flags & IPSECIF_IFF_LINK0) != 0;
            return;
        }
        pp = &(*pp)->hnext;
    }
}

uint16_t ipsecif_if_local_port(const struct ipsecif_if *ifp)
{
    return ifp->sport != 0 ? ifp->sport : IPSECIF_NATT_PORT;
}

uint16_t ipsecif_if_remote_port(const struct ipsecif_if *ifp)
{
    return ifp->dport != 0 ? ifp->dport : IPSECIF_NATT_PORT;
}

IPSECIF_NOINLINE struct ipsecif_if *ipsecif_if_lookup_outer(struct ipsecif_ctx *ctx,
                                                            const struct ipsecif_addr *local,
                                                            const struct ipsecif_addr *remote,
                                                            uint16_t lport, uint16_t rport)
{
    struct ipsecif_if *ifp = ctx->ifs.hash[pair_hash(ctx, local, remote)];
    bool natt = lport != 0 || rport != 0;

    for (; ifp != NULL; ifp = ifp->hnext) {
        if (!ipsecif_addr_eq(&ifp->src, local) || !ipsecif_addr_eq(&ifp->dst, remote)) {
            continue;
        }
        if (natt != ((ifp->flags & IPSECIF_IFF_LINK0) != 0)) {
            continue;
        }
        if (natt && (ipsecif_if_local_port(ifp) != lport || ipsecif_if_remote_port(ifp) != rport)) {
            continue;
        }
        return ifp;
    }
    return NULL;
}

/* "ipsecN": N decimal, no leading zero, fits the name buffer. */
static int parse_name(const char *name, uint32_t *unit)
{
    const char *p;
    uint64_t v = 0;
    size_t len;

    if (name == NULL || strncmp(name, "ipsec", 5) != 0) {
        return IPSECIF_ERR_ARG;
    }
    len = strlen(name);
    if (len < 6 || len >= IPSECIF_IFNAME_SIZE ||
        len >= sizeof(((struct ipsecif_if_info *)0)->name)) {
        return IPSECIF_ERR_ARG;
    }
    p = name + 5;
    if (p[0] == '0' && p[1] != '\0') {
        return IPSECIF_ERR_ARG;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return IPSECIF_ERR_ARG;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > 0xffffffu) {
            return IPSECIF_ERR_ARG;
        }
    }
    *unit = (uint32_t)v;
    return IPSECIF_OK;
}

static uint32_t unit_bucket(const struct ipsecif_ctx *ctx, uint32_t unit)
{
    return ipsecif_hash_finish(unit) & ctx->ifs.hash_mask;
}

struct ipsecif_if *ipsecif_if_find(struct ipsecif_ctx *ctx, const char *name)
{
    struct ipsecif_if *ifp;
    uint32_t unit;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC || parse_name(name, &unit) != IPSECIF_OK) {
        return NULL;
    }
    /* The name is canonical (no leading zeros), so the unit identifies it. */
    for (ifp = ctx->ifs.unit_hash[unit_bucket(ctx, unit)]; ifp != NULL; ifp = ifp->unit_next) {
        if (ifp->unit == unit) {
            return ifp;
        }
    }
    return NULL;
}

int ipsecif_if_create(struct ipsecif_ctx *ctx, const char *name, struct ipsecif_if **out)
{
    struct ipsecif_if *ifp;
    uint32_t unit, b;
    int rc;

    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC) {
        return IPSECIF_ERR_ARG;
    }
    rc = parse_name(name, &unit);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (ipsecif_if_find(ctx, name) != NULL) {
        return IPSECIF_ERR_EXIST;
    }
    if (ctx->ifs.nfree == 0) {
        return IPSECIF_ERR_FULL;
    }
    ifp = &ctx->ifs.tab[ctx->ifs.free[--ctx->ifs.nfree]];
    memset(ifp, 0, sizeof(*ifp));
    ifp->in_use = true;
    ifp->unit = unit;
    memcpy(ifp->name, name, strlen(name) + 1);
    ifp->flags = IPSECIF_IFF_LINK2;
    ifp->mtu = IPSECIF_MTU_DEFAULT;
    b = unit_bucket(ctx, unit);
    ifp->unit_next = ctx->ifs.unit_hash[b];
    ctx->ifs.unit_hash[b] = ifp;
    ifp->list_prev = ctx->ifs.tail;
    if (ctx->ifs.tail != NULL) {
        ctx->ifs.tail->list_next = ifp;
    } else {
        ctx->ifs.head = ifp;
    }
    ctx->ifs.tail = ifp;
    ctx->ifs.n++;
    if (out != NULL) {
        *out = ifp;
    }
    ipsecif_log(ctx, IPSECIF_LOG_INFO, "interface created");
    return IPSECIF_OK;
}

/* The four policies of a tunnel configuration, in ipsecif_if_policy order. */
static void make_policies(const struct ipsecif_ctx *ctx, const struct ipsecif_if *ifp,
                          const struct tuncfg *c, const uint32_t reqid[4],
                          struct ipsecif_policy pol[4])
{
    uint8_t plen = (uint8_t)(ipsecif_addr_len(c->src.family) * 8);
    bool natt = (c->flags & IPSECIF_IFF_LINK0) != 0;
    int i;

    (void)ctx;
    (void)ifp;
    memset(pol, 0, 4 * sizeof(*pol));
    for (i = 0; i < 4; i++) {
        struct ipsecif_policy *p = &pol[i];
        bool out = (i == IPSECIF_IFPOL_V4_OUT || i == IPSECIF_IFPOL_V6_OUT);
        bool v6 = (i >= IPSECIF_IFPOL_V6_OUT);

        p->sel.src = out ? c->src : c->dst;
        p->sel.dst = out ? c->dst : c->src;
        p->sel.src_plen = plen;
        p->sel.dst_plen = plen;
        p->sel.ulproto = v6 ? IPSECIF_IPPROTO_IPV6 : IPSECIF_IPPROTO_IPV4;
        p->dir = out ? IPSECIF_DIR_OUT : IPSECIF_DIR_IN;
        p->priority = IPSECIF_PRIORITY_DEFAULT;
        if (v6 && (c->flags & IPSECIF_IFF_LINK2) == 0) {
            p->action = IPSECIF_ACTION_DISCARD;
            continue;
        }
        p->action = IPSECIF_ACTION_IPSEC;
        p->nreq = 1;
        p->req[0].proto = IPSECIF_IPPROTO_ESP;
        p->req[0].mode = IPSECIF_MODE_TRANSPORT;
        p->req[0].level = natt ? IPSECIF_LEVEL_REQUIRE : IPSECIF_LEVEL_UNIQUE;
        p->req[0].reqid = reqid[i];
    }
}

/* Unique ids for a new configuration: the fixed scheme, or the interface's
 * previous ids while no other policy uses them, or fresh ones. */
static void pick_reqids(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint32_t reqid[4])
{
    int i, j;

    if (ctx->cfg.fixed_reqid) {
        uint32_t v4 = ctx->cfg.reqid_base + 2u * ifp->unit;

        reqid[IPSECIF_IFPOL_V4_OUT] = v4;
        reqid[IPSECIF_IFPOL_V4_IN] = v4;
        reqid[IPSECIF_IFPOL_V6_OUT] = v4 + 1;
        reqid[IPSECIF_IFPOL_V6_IN] = v4 + 1;
        return;
    }
    for (i = 0; i < 4; i++) {
        uint32_t r = ifp->reqid[i];
        bool clash = (r == 0 || ipsecif_spd_reqid_used(ctx, r));

        for (j = 0; j < i && !clash; j++) {
            clash = (reqid[j] == r);
        }
        if (clash) {
            do {
                r = ipsecif_spd_new_reqid(ctx);
                clash = false;
                for (j = 0; j < i; j++) {
                    clash |= (reqid[j] == r);
                }
            } while (clash);
        }
        reqid[i] = r;
    }
}

/* Another link0 interface with the same outer pair and the same policy shape
 * whose policies this one may share. */
static struct ipsecif_if *find_sharer(struct ipsecif_ctx *ctx, struct ipsecif_if *self,
                                      const struct tuncfg *c)
{
    struct ipsecif_if *o = ctx->ifs.hash[pair_hash(ctx, &c->src, &c->dst)];

    for (; o != NULL; o = o->hnext) {
        if (o != self && o->has_tunnel && ipsecif_addr_eq(&o->src, &c->src) &&
            ipsecif_addr_eq(&o->dst, &c->dst)) {
            return o;
        }
    }
    return NULL;
}

/* Release the interface's hold on its policies; save what is needed to undo. */
static void release_policies(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                             struct ipsecif_policy saved[4], uint64_t order[4], bool removed[4])
{
    int i;

    for (i = 0; i < 4; i++) {
        struct ipsecif_sp *sp = ifp->sp[i];

        removed[i] = false;
        if (sp == NULL) {
            continue;
        }
        saved[i] = sp->pol;
        order[i] = sp->order;
        if (sp->refcnt > 1) {
            sp->refcnt--;
        } else {
            ipsecif_spd_remove(ctx, sp);
            removed[i] = true;
        }
        ifp->sp[i] = NULL;
    }
}

/* Undo release_policies(): put removed policies back with their ids and
 * their places in lookup order. */
static int restore_policies(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                            struct ipsecif_sp *const old[4], const struct ipsecif_policy saved[4],
                            const uint64_t order[4], const bool removed[4])
{
    int i, rc = IPSECIF_OK;

    for (i = 0; i < 4; i++) {
        if (old[i] == NULL) {
            continue;
        }
        if (!removed[i]) {
            old[i]->refcnt++;
            ifp->sp[i] = old[i];
            continue;
        }
        rc = ipsecif_spd_restore(ctx, &saved[i], true, order[i], &ifp->sp[i]);
        if (rc != IPSECIF_OK) {
            /* Cannot happen: the slots and selectors were free a moment ago. */
            ipsecif_log(ctx, IPSECIF_LOG_ERR, "tunnel rollback failed");
            return IPSECIF_ERR_INTERNAL;
        }
    }
    return rc;
}

/* A second interface on the same outer pair needs NAT-T on both, on
 * different ports; same-port NAT-T duplicates would be ambiguous. Finds the
 * interface whose policies this one would share. */
static int check_pair(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, const struct tuncfg *c,
                      struct ipsecif_if **sharer)
{
    struct ipsecif_if *o = ctx->ifs.hash[pair_hash(ctx, &c->src, &c->dst)];

    for (; o != NULL; o = o->hnext) {
        if (o == ifp || !ipsecif_addr_eq(&o->src, &c->src) || !ipsecif_addr_eq(&o->dst, &c->dst)) {
            continue;
        }
        if ((c->flags & IPSECIF_IFF_LINK0) == 0 || (o->flags & IPSECIF_IFF_LINK0) == 0) {
            return IPSECIF_ERR_EXIST;
        }
        if ((c->sport ? c->sport : IPSECIF_NATT_PORT) == ipsecif_if_local_port(o) &&
            (c->dport ? c->dport : IPSECIF_NATT_PORT) == ipsecif_if_remote_port(o)) {
            return IPSECIF_ERR_EXIST;
        }
    }
    *sharer = find_sharer(ctx, ifp, c);
    if (*sharer != NULL && (((*sharer)->flags ^ c->flags) & IPSECIF_IFF_LINK2) != 0) {
        /* Same selectors, different actions: the sets cannot coexist. */
        return IPSECIF_ERR_EXIST;
    }
    return IPSECIF_OK;
}

/* Give the interface, whose policies are released, those of configuration
 * c: the sharer's, or four new ones with new reqids. On failure none of the
 * new ones is left in the SPD. */
static int take_policies(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, const struct tuncfg *c,
                         struct ipsecif_if *sharer, uint64_t now, uint32_t reqid[4])
{
    struct ipsecif_policy pol[4];
    int i, rc;

    if (!c->has_tunnel) {
        return IPSECIF_OK;
    }
    if (sharer != NULL) {
        for (i = 0; i < 4; i++) {
            ifp->sp[i] = sharer->sp[i];
            ifp->sp[i]->refcnt++;
        }
        return IPSECIF_OK;
    }
    pick_reqids(ctx, ifp, reqid);
    make_policies(ctx, ifp, c, reqid, pol);
    for (i = 0; i < 4; i++) {
        rc = ipsecif_spd_insert(ctx, &pol[i], true, now, &ifp->sp[i]);
        if (rc != IPSECIF_OK) {
            while (--i >= 0) {
                ipsecif_spd_remove(ctx, ifp->sp[i]);
                ifp->sp[i] = NULL;
            }
            return rc;
        }
    }
    return IPSECIF_OK;
}

/* The interface takes configuration c, whose policies it holds already. */
static void switch_tunnel(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, const struct tuncfg *c,
                          const struct ipsecif_if *sharer, const uint32_t reqid[4])
{
    int i;

    if (ifp->has_tunnel) {
        hash_unlink(ctx, ifp);
    }
    ifp->has_tunnel = c->has_tunnel;
    ifp->flags = c->flags;
    ifp->src = c->src;
    ifp->dst = c->dst;
    ifp->sport = c->sport;
    ifp->dport = c->dport;
    if (!c->has_tunnel) {
        return;
    }
    ipsecif_outer_tpl_set(&ifp->otpl, &ifp->src, &ifp->dst,
                          (c->flags & IPSECIF_IFF_LINK0) != 0 ? ipsecif_if_local_port(ifp) : 0,
                          (c->flags & IPSECIF_IFF_LINK0) != 0 ? ipsecif_if_remote_port(ifp) : 0,
                          ctx->cfg.ttl != 0 ? ctx->cfg.ttl : IPSECIF_DEFAULT_TTL);
    for (i = 0; i < 4; i++) {
        if (ifp->sp[i]->pol.nreq > 0) {
            ifp->reqid[i] = ifp->sp[i]->pol.req[0].reqid;
        } else if (sharer == NULL) {
            ifp->reqid[i] = reqid[i];
        }
    }
    hash_link(ctx, ifp);
}

/* Swap the interface to configuration c, all or nothing. */
static int apply(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, const struct tuncfg *c,
                 uint64_t now)
{
    struct ipsecif_sp *old[4];
    struct ipsecif_policy saved[4];
    uint64_t order[4];
    struct ipsecif_if *sharer = NULL;
    bool removed[4];
    uint32_t reqid[4];
    int rc, rrc;

    memset(reqid, 0, sizeof(reqid));
    if (c->has_tunnel) {
        rc = check_pair(ctx, ifp, c, &sharer);
        if (rc != IPSECIF_OK) {
            return rc;
        }
    }
    memcpy(old, ifp->sp, sizeof(old));
    release_policies(ctx, ifp, saved, order, removed);
    rc = take_policies(ctx, ifp, c, sharer, now, reqid);
    if (rc != IPSECIF_OK) {
        rrc = restore_policies(ctx, ifp, old, saved, order, removed);
        return rrc != IPSECIF_OK ? rrc : rc;
    }
    switch_tunnel(ctx, ifp, c, sharer, reqid);
    return IPSECIF_OK;
}

static void current(const struct ipsecif_if *ifp, struct tuncfg *c)
{
    c->has_tunnel = ifp->has_tunnel;
    c->flags = ifp->flags;
    c->src = ifp->src;
    c->dst = ifp->dst;
    c->sport = ifp->sport;
    c->dport = ifp->dport;
}

int ipsecif_if_set_tunnel(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                          const struct ipsecif_addr *src, uint16_t sport,
                          const struct ipsecif_addr *dst, uint16_t dport, uint64_t now)
{
    struct tuncfg c;
    int rc;

    if (!valid_if(ctx, ifp) || src == NULL || dst == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (src->family != dst->family || ipsecif_addr_len(src->family) == 0 ||
        ipsecif_addr_is_unspec(src) || ipsecif_addr_is_unspec(dst) || ipsecif_addr_eq(src, dst)) {
        return IPSECIF_ERR_ARG;
    }
    current(ifp, &c);
    c.has_tunnel = true;
    memset(&c.src, 0, sizeof(c.src));
    memset(&c.dst, 0, sizeof(c.dst));
    c.src.family = src->family;
    c.dst.family = dst->family;
    memcpy(c.src.bytes, src->bytes, ipsecif_addr_len(src->family));
    memcpy(c.dst.bytes, dst->bytes, ipsecif_addr_len(dst->family));
    c.sport = sport;
    c.dport = dport;
    rc = apply(ctx, ifp, &c, now);
    if (rc == IPSECIF_OK) {
        ipsecif_log(ctx, IPSECIF_LOG_INFO, "tunnel set");
    }
    return rc;
}

int ipsecif_if_delete_tunnel(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp)
{
    struct tuncfg c;

    if (!valid_if(ctx, ifp)) {
        return IPSECIF_ERR_ARG;
    }
    if (!ifp->has_tunnel) {
        return IPSECIF_ERR_NOENT;
    }
    current(ifp, &c);
    c.has_tunnel = false;
    memset(&c.src, 0, sizeof(c.src));
    memset(&c.dst, 0, sizeof(c.dst));
    c.sport = 0;
    c.dport = 0;
    /* Removing cannot fail. */
    return apply(ctx, ifp, &c, ctx->now);
}

int ipsecif_if_destroy(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp)
{
    if (!valid_if(ctx, ifp)) {
        return IPSECIF_ERR_ARG;
    }
    if (ifp->has_tunnel) {
        (void)ipsecif_if_delete_tunnel(ctx, ifp);
    }
    if (ifp->list_prev != NULL) {
        ifp->list_prev->list_next = ifp->list_next;
    } else {
        ctx->ifs.head = ifp->list_next;
    }
    if (ifp->list_next != NULL) {
        ifp->list_next->list_prev = ifp->list_prev;
    } else {
        ctx->ifs.tail = ifp->list_prev;
    }
    {
        struct ipsecif_if **pp = &ctx->ifs.unit_hash[unit_bucket(ctx, ifp->unit)];

        while (*pp != ifp) {
            pp = &(*pp)->unit_next;
        }
        *pp = ifp->unit_next;
    }
    ctx->ifs.free[ctx->ifs.nfree++] = (uint32_t)(ifp - ctx->ifs.tab);
    memset(ifp, 0, sizeof(*ifp));
    ctx->ifs.n--;
    ipsecif_log(ctx, IPSECIF_LOG_INFO, "interface destroyed");
    return IPSECIF_OK;
}

int ipsecif_if_set_flags(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint32_t flags,
                         uint64_t now)
{
    const uint32_t known =
        IPSECIF_IFF_UP | IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK1 | IPSECIF_IFF_LINK2;
    const uint32_t shape = IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK2;
    struct tuncfg c;

    if (!valid_if(ctx, ifp) || (flags & ~known) != 0) {
        return IPSECIF_ERR_ARG;
    }
    if (!ifp->has_tunnel || ((ifp->flags ^ flags) & shape) == 0) {
        ifp->flags = flags;
        return IPSECIF_OK;
    }
    current(ifp, &c);
    c.flags = flags;
    return apply(ctx, ifp, &c, now);
}

uint32_t ipsecif_if_get_flags(const struct ipsecif_if *ifp)
{
    return ifp != NULL ? ifp->flags : 0;
}

int ipsecif_if_set_mtu(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, uint32_t mtu)
{
    if (!valid_if(ctx, ifp)) {
        return IPSECIF_ERR_ARG;
    }
    if (mtu < IPSECIF_MTU_MIN || mtu > IPSECIF_MTU_MAX) {
        return IPSECIF_ERR_RANGE;
    }
    ifp->mtu = (uint16_t)mtu;
    return IPSECIF_OK;
}

int ipsecif_if_set_local(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp,
                         const struct ipsecif_addr *addr)
{
    if (!valid_if(ctx, ifp) || addr == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (addr->family == IPSECIF_AF_INET) {
        ifp->local4 = *addr;
    } else if (addr->family == IPSECIF_AF_INET6) {
        ifp->local6 = *addr;
    } else {
        return IPSECIF_ERR_ARG;
    }
    return IPSECIF_OK;
}

int ipsecif_if_get_info(const struct ipsecif_ctx *ctx, const struct ipsecif_if *ifp,
                        struct ipsecif_if_info *out)
{
    int i;

    if (!valid_if(ctx, ifp) || out == NULL) {
        return IPSECIF_ERR_ARG;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->name, ifp->name, sizeof(out->name) - 1);
    out->unit = ifp->unit;
    out->flags = ifp->flags;
    out->mtu = ifp->mtu;
    out->has_tunnel = ifp->has_tunnel;
    out->src = ifp->src;
    out->dst = ifp->dst;
    if (ifp->has_tunnel && (ifp->flags & IPSECIF_IFF_LINK0) != 0) {
        out->sport = ipsecif_if_local_port(ifp);
        out->dport = ipsecif_if_remote_port(ifp);
    }
    for (i = 0; i < 4; i++) {
        if (ifp->sp[i] != NULL) {
            out->policy_id[i] = ifp->sp[i]->pol.id;
            out->reqid[i] = ifp->reqid[i];
        }
    }
    out->stats = ifp->stats;
    return IPSECIF_OK;
}

int ipsecif_if_walk(struct ipsecif_ctx *ctx, ipsecif_if_walk_fn fn, void *arg)
{
    struct ipsecif_if *ifp, *next;
    int rc;

    if (ctx == NULL || fn == NULL) {
        return IPSECIF_ERR_ARG;
    }
    for (ifp = ctx->ifs.head; ifp != NULL; ifp = next) {
        next = ifp->list_next;
        rc = fn(arg, ifp);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int ipsecif_if_max_nesting_set(struct ipsecif_ctx *ctx, int max)
{
    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC) {
        return IPSECIF_ERR_ARG;
    }
    if (max < 1 || max > IPSECIF_MAX_NESTING_MAX) {
        return IPSECIF_ERR_RANGE;
    }
    ctx->ifs.max_nesting = (uint8_t)max;
    return IPSECIF_OK;
}

int ipsecif_if_max_nesting_get(const struct ipsecif_ctx *ctx)
{
    if (ctx == NULL || ctx->magic != IPSECIF_CTX_MAGIC) {
        return IPSECIF_ERR_ARG;
    }
    return ctx->ifs.max_nesting;
}

const char *ipsecif_if_name(const struct ipsecif_if *ifp)
{
    return ifp != NULL ? ifp->name : "";
}

void ipsecif_if_set_user(struct ipsecif_if *ifp, void *user)
{
    if (ifp != NULL) {
        ifp->user = user;
    }
}

void *ipsecif_if_get_user(const struct ipsecif_if *ifp)
{
    return ifp != NULL ? ifp->user : NULL;
}
