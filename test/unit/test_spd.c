/* SPD: add/get/delete/update/flush/walk, ownership, KAME ordering, levels,
 * system defaults, bad input, capacity, reqids, ids, and a large table of
 * host-pair policies checked against a plain reference matcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

#define NOW 5000
#define ANYP IPSECIF_IPPROTO_ANY
#define ICMPANY IPSECIF_ICMP_ANY

/* ---- Builders ---- */

static struct ipsecif_policy pol(uint8_t dir, const char *src, uint8_t splen, const char *dst,
                                 uint8_t dplen, uint8_t ulproto, uint16_t sport, uint16_t dport,
                                 uint8_t action, uint32_t prio)
{
    struct ipsecif_policy p;

    memset(&p, 0, sizeof(p));
    p.sel.src = test_addr(src);
    p.sel.dst = test_addr(dst);
    p.sel.src_plen = splen;
    p.sel.dst_plen = dplen;
    p.sel.ulproto = ulproto;
    p.sel.sport = sport;
    p.sel.dport = dport;
    p.dir = dir;
    p.action = action;
    p.priority = prio;
    return p;
}

/* A host-to-host policy in one direction, any protocol, action none. */
static struct ipsecif_policy host(uint8_t dir, const char *src, const char *dst, uint32_t prio)
{
    uint8_t bits = strchr(src, ':') != NULL ? 128 : 32;

    return pol(dir, src, bits, dst, bits, ANYP, 0, 0, IPSECIF_ACTION_NONE, prio);
}

/* Append an IPsec request (sets action ipsec). */
static void req(struct ipsecif_policy *p, uint8_t proto, uint8_t mode, uint8_t level,
                uint32_t reqid, const char *tsrc, const char *tdst)
{
    struct ipsecif_ipsecreq *r = &p->req[p->nreq++];

    p->action = IPSECIF_ACTION_IPSEC;
    memset(r, 0, sizeof(*r));
    r->proto = proto;
    r->mode = mode;
    r->level = level;
    r->reqid = reqid;
    if (tsrc != NULL) {
        r->tun_src = test_addr(tsrc);
        r->tun_dst = test_addr(tdst);
    }
}

static struct ipsecif_selector pkt(const char *src, const char *dst, uint8_t proto, uint16_t sport,
                                   uint16_t dport)
{
    struct ipsecif_selector s;

    memset(&s, 0, sizeof(s));
    s.src = test_addr(src);
    s.dst = test_addr(dst);
    s.ulproto = proto;
    s.sport = sport;
    s.dport = dport;
    return s;
}

static uint32_t add_ok(struct ipsecif_ctx *ctx, const struct ipsecif_policy *p)
{
    uint32_t id = 0;

    assert_int_equal(ipsecif_spd_add(ctx, p, NOW, &id), IPSECIF_OK);
    assert_true(id != 0);
    return id;
}

/* ---- Invariants of the internal structures ---- */

static bool sp_before(const struct ipsecif_sp *a, const struct ipsecif_sp *b)
{
    return a->pol.priority < b->pol.priority ||
           (a->pol.priority == b->pol.priority && a->order < b->order);
}

static void check_spd(struct ipsecif_ctx *ctx)
{
    size_t total = 0;
    size_t nfree = 0;
    const struct ipsecif_sp *sp;
    const struct ipsecif_sp *prev;
    uint8_t d;

    for (d = IPSECIF_DIR_IN; d <= IPSECIF_DIR_FWD; d++) {
        uint32_t nonexact = 0;
        const struct ipsecif_sp *nx = ctx->spd.nx[d].head;
        const struct ipsecif_sp *nxprev = NULL;

        prev = NULL;
        for (sp = ctx->spd.all[d].head; sp != NULL; sp = sp->all.next) {
            assert_true(sp->in_use);
            assert_int_equal(sp->pol.dir, d);
            assert_ptr_equal(sp->all.prev, prev);
            if (prev != NULL) {
                assert_true(sp_before(prev, sp));
            }
            assert_ptr_equal(ipsecif_spd_find_id(ctx, sp->pol.id), sp);
            assert_ptr_equal(ipsecif_spd_find_exact(ctx, &sp->pol.sel, d), sp);
            assert_int_equal(sp->refcnt, sp->pol.owned ? 1 : 0);
            if (!sp->exact) {
                /* The non-exact list holds the same policies in the same order. */
                assert_ptr_equal(nx, sp);
                assert_ptr_equal(nx->nx.prev, nxprev);
                nxprev = nx;
                nx = nx->nx.next;
                nonexact++;
            }
            prev = sp;
            total++;
        }
        assert_ptr_equal(ctx->spd.all[d].tail, prev);
        assert_null(nx);
        assert_ptr_equal(ctx->spd.nx[d].tail, nxprev);
        assert_int_equal(ctx->spd.nonexact[d], nonexact);
    }
    assert_int_equal(total, ctx->spd.n);
    assert_int_equal(total, ipsecif_spd_count(ctx));
    for (sp = ctx->spd.free; sp != NULL; sp = sp->all.next) {
        assert_false(sp->in_use);
        nfree++;
    }
    assert_int_equal(nfree, ctx->cfg.max_policies - total);
    assert_int_equal(nfree, ipsecif_spd_free_slots(ctx));
}

/* A snapshot of every policy, in walk order, for "nothing changed" checks. */
struct snap {
    size_t n;
    struct ipsecif_policy p[64];
};

static int snap_cb(void *arg, const struct ipsecif_policy *p)
{
    struct snap *s = arg;

    assert_true(s->n < IPSECIF_ARRAY_SIZE(s->p));
    s->p[s->n++] = *p;
    return 0;
}

static void take_snap(struct ipsecif_ctx *ctx, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(ipsecif_spd_walk(ctx, snap_cb, s), 0);
}

static void assert_snap_same(const struct snap *a, const struct snap *b)
{
    size_t i;

    assert_int_equal(a->n, b->n);
    for (i = 0; i < a->n; i++) {
        assert_int_equal(a->p[i].id, b->p[i].id);
        assert_int_equal(a->p[i].action, b->p[i].action);
        assert_int_equal(a->p[i].priority, b->p[i].priority);
        assert_memory_equal(&a->p[i].sel.src, &b->p[i].sel.src, sizeof(struct ipsecif_addr));
        assert_memory_equal(&a->p[i].sel.dst, &b->p[i].sel.dst, sizeof(struct ipsecif_addr));
    }
}

/* ---- Fixtures ---- */

static int setup(void **state)
{
    struct test_ctx *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    test_ctx_new(t, NULL);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct test_ctx *t = *state;
    struct ipsecif_sp *sp;
    uint8_t d;

    check_spd(t->ctx);
    (void)ipsecif_spd_flush(t->ctx);
    /* Owned policies stay after a flush; remove them the internal way. */
    for (d = IPSECIF_DIR_IN; d <= IPSECIF_DIR_FWD; d++) {
        while ((sp = t->ctx->spd.all[d].head) != NULL) {
            ipsecif_spd_remove(t->ctx, sp);
        }
    }
    check_spd(t->ctx);
    assert_int_equal(ipsecif_spd_count(t->ctx), 0);
    test_ctx_free(t);
    free(t);
    return 0;
}

static struct ipsecif_ctx *C(void **state)
{
    return ((struct test_ctx *)*state)->ctx;
}

/* ---- Tests ---- */

static void test_defaults(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    int k;

    assert_int_equal(ipsecif_spd_count(ctx), 0);
    assert_int_equal(ipsecif_spd_free_slots(ctx), ctx->cfg.max_policies);
    for (k = 0; k <= IPSECIF_SYSCTL6_DEF_POLICY; k++) {
        assert_int_equal(ipsecif_sysctl_get(ctx, k), 1);
    }
    /* NetBSD's: enabled 1, not used before a policy, the newest SA preferred. */
    assert_int_equal(ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_ENABLED), 1);
    assert_int_equal(ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_USED), 0);
    assert_int_equal(ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA), 0);
    assert_int_equal(ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_COUNT), IPSECIF_ERR_ARG);
    check_spd(ctx);
}

static void test_add_get_delete(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p = pol(IPSECIF_DIR_OUT, "192.0.2.77", 24, "198.51.100.1", 32,
                                  IPSECIF_IPPROTO_TCP, 0, 443, 0, 1000);
    struct ipsecif_policy got;
    uint32_t id1;
    uint32_t id2;

    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_LEVEL_REQUIRE, 0, "203.0.113.1",
        "203.0.113.2");
    p.id = 999; /* ignored on add */
    p.owned = true;
    id1 = add_ok(ctx, &p);
    assert_int_equal(ipsecif_spd_count(ctx), 1);

    assert_int_equal(ipsecif_spd_get(ctx, id1, &got), IPSECIF_OK);
    assert_int_equal(got.id, id1);
    assert_false(got.owned);
    assert_int_equal(got.created, NOW);
    assert_int_equal(got.lastused, 0);
    assert_int_equal(got.dir, IPSECIF_DIR_OUT);
    assert_int_equal(got.action, IPSECIF_ACTION_IPSEC);
    assert_int_equal(got.priority, 1000);
    assert_int_equal(got.nreq, 1);
    assert_int_equal(got.req[0].proto, IPSECIF_IPPROTO_ESP);
    assert_int_equal(got.req[0].mode, IPSECIF_MODE_TUNNEL);
    assert_int_equal(got.req[0].level, IPSECIF_LEVEL_REQUIRE);
    assert_true(ipsecif_addr_eq(&got.req[0].tun_dst, &p.req[0].tun_dst));
    /* Host bits beyond the prefix are cleared in the stored copy. */
    struct ipsecif_addr net = test_addr("192.0.2.0");
    assert_memory_equal(&got.sel.src, &net, sizeof(net));
    assert_int_equal(got.sel.src_plen, 24);
    assert_int_equal(got.sel.ulproto, IPSECIF_IPPROTO_TCP);
    assert_int_equal(got.sel.dport, 443);

    /* A second one gets another id; the same selector in another direction is fine. */
    p.dir = IPSECIF_DIR_IN;
    id2 = add_ok(ctx, &p);
    assert_true(id2 != id1);
    assert_int_equal(ipsecif_spd_count(ctx), 2);
    check_spd(ctx);

    /* Delete by selector (given with other host bits: it is masked the same way). */
    p.sel.src = test_addr("192.0.2.200");
    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_OUT), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_get(ctx, id1, &got), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_OUT), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_delete_id(ctx, id1), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_count(ctx), 1);

    /* Delete by id. */
    assert_int_equal(ipsecif_spd_delete_id(ctx, id2), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_delete_id(ctx, id2), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_get(ctx, id2, &got), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_count(ctx), 0);
    check_spd(ctx);
}

static void test_duplicates(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy a =
        pol(IPSECIF_DIR_OUT, "10.1.2.3", 24, "10.9.0.0", 16, ANYP, 0, 0, IPSECIF_ACTION_NONE, 5);
    struct ipsecif_policy b = a;
    struct snap before;
    struct snap after;
    uint32_t id = 12345;

    add_ok(ctx, &a);
    take_snap(ctx, &before);
    /* Same selector after masking, other action and priority: still a duplicate. */
    b.sel.src = test_addr("10.1.2.0");
    b.action = IPSECIF_ACTION_DISCARD;
    b.priority = 1;
    assert_int_equal(ipsecif_spd_add(ctx, &b, NOW, &id), IPSECIF_ERR_EXIST);
    assert_int_equal(id, 12345);
    assert_int_equal(ipsecif_spd_insert(ctx, &b, false, NOW, NULL), IPSECIF_ERR_EXIST);
    assert_int_equal(ipsecif_spd_insert(ctx, &b, true, NOW, NULL), IPSECIF_ERR_EXIST);
    take_snap(ctx, &after);
    assert_snap_same(&before, &after);

    /* Each field of the selector makes it different. */
    b = a;
    b.sel.src_plen = 23;
    add_ok(ctx, &b);
    b = a;
    b.sel.ulproto = IPSECIF_IPPROTO_UDP;
    add_ok(ctx, &b);
    b.sel.sport = 1;
    add_ok(ctx, &b);
    b.sel.dport = 1;
    add_ok(ctx, &b);
    b = a;
    b.dir = IPSECIF_DIR_FWD;
    add_ok(ctx, &b);
    b = a;
    b.sel.dst = test_addr("10.8.0.0");
    add_ok(ctx, &b);
    assert_int_equal(ipsecif_spd_count(ctx), 7);

    /* Exact host pairs too. */
    b = host(IPSECIF_DIR_OUT, "2001:db8::1", "2001:db8::2", 7);
    add_ok(ctx, &b);
    b.priority = 8;
    assert_int_equal(ipsecif_spd_add(ctx, &b, NOW, NULL), IPSECIF_ERR_EXIST);
    assert_int_equal(ipsecif_spd_count(ctx), 8);
    check_spd(ctx);
}

static void test_update(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p = host(IPSECIF_DIR_OUT, "192.0.2.1", "192.0.2.2", 100);
    struct ipsecif_policy q;
    struct ipsecif_policy got;
    struct ipsecif_selector k = pkt("192.0.2.1", "192.0.2.2", IPSECIF_IPPROTO_UDP, 1, 2);
    uint32_t id;
    uint32_t id2 = 0;
    uint32_t other;

    id = add_ok(ctx, &p);
    other = add_ok(ctx, &(struct ipsecif_policy){
                            .sel = p.sel, .dir = IPSECIF_DIR_IN, .action = IPSECIF_ACTION_NONE});

    /* Replace: same id, new content; the other direction untouched. */
    q = p;
    req(&q, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 77, NULL, NULL);
    q.priority = 50;
    assert_int_equal(ipsecif_spd_update(ctx, &q, NOW + 10, &id2), IPSECIF_OK);
    assert_int_equal(id2, id);
    assert_int_equal(ipsecif_spd_count(ctx), 2);
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.action, IPSECIF_ACTION_IPSEC);
    assert_int_equal(got.priority, 50);
    assert_int_equal(got.req[0].reqid, 77);
    assert_int_equal(got.created, NOW + 10);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k, NOW, &got), IPSECIF_OK);
    assert_int_equal(got.id, id);
    assert_int_equal(got.action, IPSECIF_ACTION_IPSEC);
    assert_true(ipsecif_spd_reqid_used(ctx, 77));
    assert_int_equal(ipsecif_spd_get(ctx, other, &got), IPSECIF_OK);
    assert_int_equal(got.dir, IPSECIF_DIR_IN);

    /* Back to a bypass: the old reqid is no longer referenced. */
    assert_int_equal(ipsecif_spd_update(ctx, &p, NOW, NULL), IPSECIF_OK);
    assert_false(ipsecif_spd_reqid_used(ctx, 77));
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.action, IPSECIF_ACTION_NONE);
    assert_int_equal(got.nreq, 0);

    /* Update of a missing policy adds it. */
    q = host(IPSECIF_DIR_OUT, "192.0.2.3", "192.0.2.4", 1);
    id2 = 0;
    assert_int_equal(ipsecif_spd_update(ctx, &q, NOW, &id2), IPSECIF_OK);
    assert_true(id2 != 0 && id2 != id && id2 != other);
    assert_int_equal(ipsecif_spd_count(ctx), 3);

    /* A bad replacement leaves the old one in place. */
    q = p;
    q.action = IPSECIF_ACTION_IPSEC; /* with no request */
    assert_int_equal(ipsecif_spd_update(ctx, &q, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.action, IPSECIF_ACTION_NONE);
    assert_int_equal(ipsecif_spd_count(ctx), 3);
    check_spd(ctx);
}

/* Update must work on a full SPD: the replaced slot is reused. */
static void test_update_when_full(void **state)
{
    struct test_ctx t;
    struct ipsecif_config cfg;
    struct ipsecif_policy p;
    struct ipsecif_policy got;
    uint32_t ids[3];
    uint32_t id = 0;
    int i;
    char dst[32];

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_policies = 3;
    test_ctx_new(&t, &cfg);
    for (i = 0; i < 3; i++) {
        snprintf(dst, sizeof(dst), "198.51.100.%d", i + 1);
        p = host(IPSECIF_DIR_OUT, "192.0.2.1", dst, 10);
        ids[i] = add_ok(t.ctx, &p);
    }
    p.action = IPSECIF_ACTION_DISCARD;
    assert_int_equal(ipsecif_spd_update(t.ctx, &p, NOW, &id), IPSECIF_OK);
    assert_int_equal(id, ids[2]);
    assert_int_equal(ipsecif_spd_get(t.ctx, ids[2], &got), IPSECIF_OK);
    assert_int_equal(got.action, IPSECIF_ACTION_DISCARD);
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.99", 10);
    assert_int_equal(ipsecif_spd_update(t.ctx, &p, NOW, &id), IPSECIF_ERR_FULL);
    check_spd(t.ctx);
    assert_int_equal(ipsecif_spd_flush(t.ctx), 3);
    test_ctx_free(&t);
}

struct walk_rec {
    size_t n;
    size_t stop_at;
    uint32_t ids[32];
    uint8_t dirs[32];
};

static int walk_cb(void *arg, const struct ipsecif_policy *p)
{
    struct walk_rec *w = arg;

    assert_true(w->n < IPSECIF_ARRAY_SIZE(w->ids));
    w->ids[w->n] = p->id;
    w->dirs[w->n] = p->dir;
    w->n++;
    return w->n == w->stop_at ? 7 : 0;
}

static void test_walk_flush(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    /* Added in this order; walked IN, OUT, FWD, each by priority then age. */
    static const struct {
        uint8_t dir;
        uint32_t prio;
        const char *dst;
        int walk_pos;
    } tab[] = {
        {IPSECIF_DIR_FWD, 5, "198.51.100.1", 6},  {IPSECIF_DIR_OUT, 30, "198.51.100.2", 4},
        {IPSECIF_DIR_IN, 20, "198.51.100.3", 2},  {IPSECIF_DIR_OUT, 10, "198.51.100.4", 3},
        {IPSECIF_DIR_IN, 10, "198.51.100.5", 0},  {IPSECIF_DIR_IN, 10, "198.51.100.6", 1},
        {IPSECIF_DIR_OUT, 30, "198.51.100.7", 5}, {IPSECIF_DIR_FWD, 5, "198.51.100.8", 7},
    };
    uint32_t ids[IPSECIF_ARRAY_SIZE(tab)];
    struct walk_rec w;
    size_t i;

    memset(&w, 0, sizeof(w));
    assert_int_equal(ipsecif_spd_walk(ctx, walk_cb, &w), 0);
    assert_int_equal(w.n, 0);

    for (i = 0; i < IPSECIF_ARRAY_SIZE(tab); i++) {
        struct ipsecif_policy p = host(tab[i].dir, "192.0.2.1", tab[i].dst, tab[i].prio);

        if (i % 2) { /* mix prefix and host policies: one order for both */
            p.sel.dst_plen = 31;
        }
        ids[i] = add_ok(ctx, &p);
    }
    memset(&w, 0, sizeof(w));
    assert_int_equal(ipsecif_spd_walk(ctx, walk_cb, &w), 0);
    assert_int_equal(w.n, IPSECIF_ARRAY_SIZE(tab));
    for (i = 0; i < IPSECIF_ARRAY_SIZE(tab); i++) {
        assert_int_equal(w.ids[tab[i].walk_pos], ids[i]);
        assert_int_equal(w.dirs[tab[i].walk_pos], tab[i].dir);
    }

    /* The callback's nonzero value stops the walk. */
    memset(&w, 0, sizeof(w));
    w.stop_at = 3;
    assert_int_equal(ipsecif_spd_walk(ctx, walk_cb, &w), 7);
    assert_int_equal(w.n, 3);

    assert_int_equal(ipsecif_spd_flush(ctx), (int)IPSECIF_ARRAY_SIZE(tab));
    assert_int_equal(ipsecif_spd_count(ctx), 0);
    assert_int_equal(ipsecif_spd_flush(ctx), 0);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(tab); i++) {
        assert_null(ipsecif_spd_find_id(ctx, ids[i]));
    }
    check_spd(ctx);
}

static void test_owned(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.1", 0x80000000u);
    struct ipsecif_policy m = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.2", 1);
    struct ipsecif_policy got;
    struct ipsecif_sp *sp = NULL;
    uint32_t mid;

    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL, NULL);
    assert_int_equal(ipsecif_spd_insert(ctx, &p, true, NOW, &sp), IPSECIF_OK);
    assert_non_null(sp);
    assert_true(sp->pol.owned);
    assert_int_equal(sp->refcnt, 1);
    assert_true(sp->pol.id != 0);
    mid = add_ok(ctx, &m);

    assert_int_equal(ipsecif_spd_get(ctx, sp->pol.id, &got), IPSECIF_OK);
    assert_true(got.owned);
    assert_int_equal(got.created, NOW);

    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_OUT), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_delete_id(ctx, sp->pol.id), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_update(ctx, &p, NOW, NULL), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, NULL), IPSECIF_ERR_BUSY);
    /* A clash is refused whatever the content of the new policy. */
    m.sel = p.sel;
    assert_int_equal(ipsecif_spd_add(ctx, &m, NOW, NULL), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_insert(ctx, &p, true, NOW, NULL), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_count(ctx), 2);

    /* Flush takes the manual one only. */
    assert_int_equal(ipsecif_spd_flush(ctx), 1);
    assert_int_equal(ipsecif_spd_count(ctx), 1);
    assert_null(ipsecif_spd_find_id(ctx, mid));
    assert_ptr_equal(ipsecif_spd_find_id(ctx, sp->pol.id), sp);
    assert_ptr_equal(ipsecif_spd_find_exact(ctx, &p.sel, IPSECIF_DIR_OUT), sp);
    check_spd(ctx);

    /* The owner removes it; then a manual add of the same selector works. */
    ipsecif_spd_remove(ctx, sp);
    assert_int_equal(ipsecif_spd_count(ctx), 0);
    add_ok(ctx, &p);
    check_spd(ctx);
}

/* A rollback puts a removed policy back with its id, times and place. */
static void test_restore(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p[4];
    struct ipsecif_policy saved;
    struct ipsecif_policy got;
    struct ipsecif_selector k = pkt("192.0.2.1", "198.51.100.1", IPSECIF_IPPROTO_TCP, 1, 2);
    struct ipsecif_sp *sp;
    struct walk_rec w;
    uint32_t ids[4];
    uint64_t order;
    size_t v;
    size_t i;

    /* Policies of one priority that all match k: the oldest wins. */
    p[0] = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.1", 7);
    p[1] = pol(IPSECIF_DIR_OUT, "192.0.2.0", 24, "198.51.100.0", 24, ANYP, 0, 0,
               IPSECIF_ACTION_DISCARD, 7);
    p[2] = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.1", 7);
    p[2].sel.ulproto = IPSECIF_IPPROTO_TCP;
    p[3] = p[1];
    p[3].sel.src_plen = 25;
    for (i = 0; i < 4; i++) {
        ids[i] = add_ok(ctx, &p[i]);
    }
    /* Take out each one in turn (exact and prefix alike) and put it back. */
    for (v = 0; v < 4; v++) {
        sp = ipsecif_spd_find_id(ctx, ids[v]);
        assert_non_null(sp);
        sp->pol.lastused = 77;
        saved = sp->pol;
        order = sp->order;
        ipsecif_spd_remove(ctx, sp);
        assert_int_equal(ipsecif_spd_match(ctx, IPSECIF_DIR_OUT, &k)->pol.id, ids[v == 0 ? 1 : 0]);

        assert_int_equal(ipsecif_spd_restore(ctx, &saved, true, order, &sp), IPSECIF_OK);
        assert_int_equal(sp->pol.id, ids[v]);
        assert_true(sp->pol.owned);
        assert_int_equal(ipsecif_spd_get(ctx, ids[v], &got), IPSECIF_OK);
        assert_int_equal(got.created, NOW);
        assert_int_equal(got.lastused, 77);
        assert_int_equal(ipsecif_spd_match(ctx, IPSECIF_DIR_OUT, &k)->pol.id, ids[0]);
        memset(&w, 0, sizeof(w));
        assert_int_equal(ipsecif_spd_walk(ctx, walk_cb, &w), 0);
        assert_int_equal(w.n, 4);
        for (i = 0; i < 4; i++) {
            assert_int_equal(w.ids[i], ids[i]);
        }
        check_spd(ctx);
        ipsecif_spd_remove(ctx, sp);
        assert_int_equal(ipsecif_spd_restore(ctx, &saved, false, order, NULL), IPSECIF_OK);
    }

    /* Refused: id in use, id 0, an order never issued. Nothing changes. */
    sp = ipsecif_spd_find_id(ctx, ids[0]);
    saved = sp->pol;
    order = sp->order;
    saved.sel.dst_plen = 31; /* a free selector, so only the id clashes */
    assert_int_equal(ipsecif_spd_restore(ctx, &saved, false, order, NULL), IPSECIF_ERR_EXIST);
    saved.id = 0;
    assert_int_equal(ipsecif_spd_restore(ctx, &saved, false, order, NULL), IPSECIF_ERR_ARG);
    saved.id = 999;
    assert_int_equal(ipsecif_spd_restore(ctx, &saved, false, ctx->spd.order, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_restore(NULL, &saved, false, order, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_restore(ctx, NULL, false, order, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_count(ctx), 4);
    check_spd(ctx);
}

static void test_lookup_order(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    const uint8_t O = IPSECIF_DIR_OUT;
    const uint8_t TCP = IPSECIF_IPPROTO_TCP;
    const uint8_t UDP = IPSECIF_IPPROTO_UDP;
    const uint8_t ICMP = IPSECIF_IPPROTO_ICMP;
    const uint8_t ICMP6 = IPSECIF_IPPROTO_ICMPV6;
    const uint8_t D = IPSECIF_ACTION_DISCARD;
    const uint8_t N = IPSECIF_ACTION_NONE;
    /* Added in this order. */
    const struct {
        uint8_t dir;
        const char *src;
        uint8_t splen;
        const char *dst;
        uint8_t dplen;
        uint8_t proto;
        uint16_t sport;
        uint16_t dport;
        uint8_t action;
        uint32_t prio;
    } pols[] = {
        /* 0 */ {O, "10.0.0.0", 8, "10.0.0.0", 8, ANYP, 0, 0, N, 100},
        /* 1 */ {O, "10.1.1.1", 32, "10.2.2.2", 32, ANYP, 0, 0, D, 200},
        /* 2 */ {O, "10.1.1.1", 32, "10.2.2.2", 32, TCP, 0, 22, D, 50},
        /* 3 */ {O, "10.1.0.0", 16, "10.2.0.0", 16, UDP, 0, 500, N, 10},
        /* 4 */ {O, "192.0.2.0", 24, "198.51.100.0", 24, ICMP, 8, ICMPANY, D, 100},
        /* 5 */ {O, "192.0.2.0", 24, "198.51.100.0", 24, ANYP, 0, 0, N, 100},
        /* 6 */ {O, "192.0.2.1", 32, "198.51.100.1", 32, ICMP, ICMPANY, ICMPANY, D, 100},
        /* 7 */ {O, "192.0.2.1", 32, "198.51.100.1", 32, TCP, 1234, 0, D, 99},
        /* 8 */ {O, "2001:db8::", 32, "2001:db8::", 32, ANYP, 0, 0, D, 0x80000000u},
        /* 9 */ {O, "2001:db8::1", 128, "2001:db8::2", 128, ICMP6, 135, 0, N, 0x7fffffffu},
        /* 10 */ {O, "0.0.0.0", 0, "0.0.0.0", 0, ANYP, 0, 0, D, 0xffffffffu},
        /* 11 */ {O, "192.0.2.1", 32, "198.51.100.1", 32, ICMP, 0, 0, N, 1},
        /* 12 */ {IPSECIF_DIR_IN, "10.2.2.2", 32, "10.1.1.1", 32, ANYP, 0, 0, N, 1},
        /* 13 */ {O, "2001:db8::1", 128, "2001:db8::2", 128, ANYP, 0, 0, N, 0x80000000u},
    };
    const struct {
        uint8_t dir;
        const char *src;
        const char *dst;
        uint8_t proto;
        uint16_t sport;
        uint16_t dport;
        int want; /* index in pols, -1 none */
    } cases[] = {
        {O, "10.1.1.1", "10.2.2.2", TCP, 1000, 22, 2},    /* host rule with lower priority */
        {O, "10.1.1.1", "10.2.2.2", TCP, 1000, 80, 0},    /* prefix beats host by priority */
        {O, "10.1.1.1", "10.2.2.2", UDP, 500, 500, 3},    /* port selector */
        {O, "10.1.9.9", "10.2.9.9", UDP, 1, 500, 3},      /* sport any */
        {O, "10.1.9.9", "10.2.9.9", UDP, 500, 501, 0},    /* dport differs */
        {O, "10.1.1.1", "10.3.0.1", UDP, 1, 500, 0},      /* dst outside /16 */
        {O, "10.1.1.1", "10.2.2.2", ICMP, 8, 0, 0},       /* ICMP against port rules */
        {O, "192.0.2.1", "198.51.100.1", ICMP, 8, 0, 4},  /* ICMP type, any code */
        {O, "192.0.2.1", "198.51.100.1", ICMP, 0, 0, 11}, /* type 0 code 0 exactly */
        {O, "192.0.2.1", "198.51.100.1", ICMP, 0, 1, 5},  /* FIFO among equal priority */
        {O, "192.0.2.1", "198.51.100.1", TCP, 1234, 80, 7},
        {O, "192.0.2.1", "198.51.100.1", TCP, 1235, 80, 5},
        {O, "192.0.2.7", "198.51.100.1", ICMP, 8, 3, 4},
        {O, "192.0.2.7", "198.51.101.1", ICMP, 8, 3, 10}, /* catch-all, last */
        {O, "203.0.113.1", "192.0.2.1", UDP, 1, 2, 10},
        {IPSECIF_DIR_IN, "10.2.2.2", "10.1.1.1", TCP, 1, 2, 12},
        {O, "10.2.2.2", "10.1.1.1", TCP, 1, 2, 0}, /* directions are separate */
        {IPSECIF_DIR_IN, "10.1.1.1", "10.2.2.2", TCP, 1, 2, -1},
        {O, "2001:db8::1", "2001:db8::2", ICMP6, 135, 0, 9},
        {O, "2001:db8::1", "2001:db8::2", ICMP6, 135, 1, 8},
        {O, "2001:db8::1", "2001:db8::2", TCP, 135, 0, 8}, /* same priority: older prefix */
        {O, "2001:db8::2", "2001:db8::1", TCP, 1, 1, 8},
        {O, "2001:db9::1", "2001:db8::2", TCP, 1, 1, -1}, /* v4 catch-all does not apply */
        {IPSECIF_DIR_FWD, "10.1.1.1", "10.2.2.2", TCP, 1, 1, -1},
    };
    uint32_t ids[IPSECIF_ARRAY_SIZE(pols)];
    size_t i;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(pols); i++) {
        struct ipsecif_policy p =
            pol(pols[i].dir, pols[i].src, pols[i].splen, pols[i].dst, pols[i].dplen, pols[i].proto,
                pols[i].sport, pols[i].dport, pols[i].action, pols[i].prio);
        ids[i] = add_ok(ctx, &p);
    }
    check_spd(ctx);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(cases); i++) {
        struct ipsecif_selector k =
            pkt(cases[i].src, cases[i].dst, cases[i].proto, cases[i].sport, cases[i].dport);
        struct ipsecif_policy out;
        struct ipsecif_sp *sp = ipsecif_spd_match(ctx, cases[i].dir, &k);
        int rc = ipsecif_spd_lookup(ctx, cases[i].dir, &k, NOW + i, &out);

        print_message("case %zu\n", i);
        if (cases[i].want < 0) {
            assert_null(sp);
            assert_int_equal(rc, IPSECIF_ERR_NOENT);
            assert_int_equal(out.id, 0);
            continue;
        }
        assert_non_null(sp);
        assert_int_equal(sp->pol.id, ids[cases[i].want]);
        assert_int_equal(rc, IPSECIF_OK);
        assert_int_equal(out.id, ids[cases[i].want]);
        assert_int_equal(out.action, pols[cases[i].want].action);
        assert_int_equal(out.lastused, NOW + i);
        assert_int_equal(sp->pol.lastused, NOW + i);
    }
    /* Remove the winner of a case: the next in order takes over. */
    assert_int_equal(ipsecif_spd_delete_id(ctx, ids[2]), IPSECIF_OK);
    {
        struct ipsecif_selector k = pkt("10.1.1.1", "10.2.2.2", TCP, 1000, 22);
        assert_int_equal(ipsecif_spd_match(ctx, O, &k)->pol.id, ids[0]);
    }
    assert_int_equal(ipsecif_spd_delete_id(ctx, ids[0]), IPSECIF_OK);
    {
        struct ipsecif_selector k = pkt("10.1.1.1", "10.2.2.2", TCP, 1000, 22);
        assert_int_equal(ipsecif_spd_match(ctx, O, &k)->pol.id, ids[1]);
    }
    check_spd(ctx);
}

static void test_def_policy(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_selector k4 = pkt("192.0.2.1", "198.51.100.1", IPSECIF_IPPROTO_UDP, 1, 2);
    struct ipsecif_selector k6 = pkt("2001:db8::1", "2001:db8::2", IPSECIF_IPPROTO_UDP, 1, 2);
    struct ipsecif_policy out;
    struct ipsecif_policy p = host(IPSECIF_DIR_OUT, "192.0.2.9", "198.51.100.9", 1);

    add_ok(ctx, &p);
    memset(&out, 0x5a, sizeof(out));
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k4, NOW, &out), IPSECIF_ERR_NOENT);
    assert_int_equal(out.action, IPSECIF_ACTION_NONE);
    assert_int_equal(out.id, 0);
    assert_int_equal(out.nreq, 0);

    assert_int_equal(ipsecif_sysctl_set(ctx, IPSECIF_SYSCTL_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k4, NOW, &out), IPSECIF_ERR_NOENT);
    assert_int_equal(out.action, IPSECIF_ACTION_DISCARD);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_IN, &k6, NOW, &out), IPSECIF_ERR_NOENT);
    assert_int_equal(out.action, IPSECIF_ACTION_NONE);

    assert_int_equal(ipsecif_sysctl_set(ctx, IPSECIF_SYSCTL6_DEF_POLICY, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_IN, &k6, NOW, &out), IPSECIF_ERR_NOENT);
    assert_int_equal(out.action, IPSECIF_ACTION_DISCARD);
    assert_int_equal(ipsecif_sysctl_set(ctx, IPSECIF_SYSCTL_DEF_POLICY, 1), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k4, NOW, &out), IPSECIF_ERR_NOENT);
    assert_int_equal(out.action, IPSECIF_ACTION_NONE);

    /* A matching policy is reported with OK whatever the default. */
    k4 = pkt("192.0.2.9", "198.51.100.9", IPSECIF_IPPROTO_UDP, 1, 2);
    assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k4, NOW, &out), IPSECIF_OK);
    assert_int_equal(out.action, IPSECIF_ACTION_NONE);
    assert_true(out.id != 0);
}

static void test_levels(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    static const struct {
        uint8_t family;
        uint8_t proto;
        uint8_t mode;
        int key;
    } tab[] = {
        {IPSECIF_AF_INET, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT,
         IPSECIF_SYSCTL_ESP_TRANS_DEFLEV},
        {IPSECIF_AF_INET, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL, IPSECIF_SYSCTL_ESP_NET_DEFLEV},
        {IPSECIF_AF_INET, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT,
         IPSECIF_SYSCTL_AH_TRANS_DEFLEV},
        {IPSECIF_AF_INET, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TUNNEL, IPSECIF_SYSCTL_AH_NET_DEFLEV},
        {IPSECIF_AF_INET6, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT,
         IPSECIF_SYSCTL6_ESP_TRANS_DEFLEV},
        {IPSECIF_AF_INET6, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TUNNEL,
         IPSECIF_SYSCTL6_ESP_NET_DEFLEV},
        {IPSECIF_AF_INET6, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT,
         IPSECIF_SYSCTL6_AH_TRANS_DEFLEV},
        {IPSECIF_AF_INET6, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TUNNEL, IPSECIF_SYSCTL6_AH_NET_DEFLEV},
    };
    size_t i;
    size_t j;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(tab); i++) {
        bool v6 = tab[i].family == IPSECIF_AF_INET6;
        const char *s = v6 ? "2001:db8::1" : "192.0.2.1";
        const char *d = v6 ? "2001:db8::2" : "192.0.2.2";
        /* Tunnel endpoints of the other family: the selector's family decides. */
        const char *ts = v6 ? "203.0.113.1" : "2001:db8:1::1";
        const char *td = v6 ? "203.0.113.2" : "2001:db8:1::2";
        struct ipsecif_policy p = host(IPSECIF_DIR_OUT, s, d, 1);
        struct ipsecif_policy out;
        struct ipsecif_selector k = pkt(s, d, IPSECIF_IPPROTO_TCP, 1, 2);
        uint32_t id;

        print_message("case %zu\n", i);
        req(&p, tab[i].proto, tab[i].mode, IPSECIF_LEVEL_DEFAULT, 0,
            tab[i].mode == IPSECIF_MODE_TUNNEL ? ts : NULL, td);
        /* A second request with a fixed level is never changed. */
        req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_USE, 0, NULL, NULL);
        id = add_ok(ctx, &p);

        assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k, NOW, &out), IPSECIF_OK);
        assert_int_equal(out.req[0].level, IPSECIF_LEVEL_USE);
        assert_int_equal(ipsecif_sysctl_set(ctx, tab[i].key, 2), IPSECIF_OK);
        assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k, NOW, &out), IPSECIF_OK);
        assert_int_equal(out.req[0].level, IPSECIF_LEVEL_REQUIRE);
        assert_int_equal(out.req[1].level, IPSECIF_LEVEL_USE);
        /* The stored policy keeps "default". */
        assert_int_equal(ipsecif_spd_get(ctx, id, &out), IPSECIF_OK);
        assert_int_equal(out.req[0].level, IPSECIF_LEVEL_DEFAULT);

        /* Exactly one of the eight combinations follows this key. */
        for (j = 0; j < IPSECIF_ARRAY_SIZE(tab); j++) {
            struct ipsecif_ipsecreq r;

            memset(&r, 0, sizeof(r));
            r.proto = tab[j].proto;
            r.mode = tab[j].mode;
            r.level = IPSECIF_LEVEL_DEFAULT;
            assert_int_equal(ipsecif_spd_level(ctx, tab[j].family, &r),
                             i == j ? IPSECIF_LEVEL_REQUIRE : IPSECIF_LEVEL_USE);
            r.level = IPSECIF_LEVEL_UNIQUE;
            assert_int_equal(ipsecif_spd_level(ctx, tab[j].family, &r), IPSECIF_LEVEL_UNIQUE);
            r.level = IPSECIF_LEVEL_USE;
            assert_int_equal(ipsecif_spd_level(ctx, tab[j].family, &r), IPSECIF_LEVEL_USE);
        }
        assert_int_equal(ipsecif_sysctl_set(ctx, tab[i].key, 1), IPSECIF_OK);
        assert_int_equal(ipsecif_spd_delete_id(ctx, id), IPSECIF_OK);
    }
}

static void test_sysctl(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    static const struct {
        int key;
        int value;
        int rc;
    } tab[] = {
        {IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 2, IPSECIF_OK},
        {IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 1, IPSECIF_OK},
        {IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 0, IPSECIF_ERR_RANGE},
        {IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, 3, IPSECIF_ERR_RANGE},
        {IPSECIF_SYSCTL6_AH_NET_DEFLEV, 2, IPSECIF_OK},
        {IPSECIF_SYSCTL6_AH_NET_DEFLEV, -1, IPSECIF_ERR_RANGE},
        {IPSECIF_SYSCTL_DEF_POLICY, 0, IPSECIF_OK},
        {IPSECIF_SYSCTL_DEF_POLICY, 2, IPSECIF_ERR_RANGE},
        {IPSECIF_SYSCTL6_DEF_POLICY, 0, IPSECIF_OK},
        {IPSECIF_SYSCTL6_DEF_POLICY, 1, IPSECIF_OK},
        {IPSECIF_SYSCTL6_DEF_POLICY, 256, IPSECIF_ERR_RANGE},
        {IPSECIF_SYSCTL_COUNT, 1, IPSECIF_ERR_ARG},
        {-1, 1, IPSECIF_ERR_ARG},
        {1000, 1, IPSECIF_ERR_ARG},
    };
    int expect[IPSECIF_SYSCTL_COUNT];
    size_t i;
    int k;

    for (k = 0; k < IPSECIF_SYSCTL_COUNT; k++) {
        expect[k] = ipsecif_sysctl_get(ctx, k);
    }
    for (i = 0; i < IPSECIF_ARRAY_SIZE(tab); i++) {
        print_message("case %zu\n", i);
        assert_int_equal(ipsecif_sysctl_set(ctx, tab[i].key, tab[i].value), tab[i].rc);
        if (tab[i].rc == IPSECIF_OK) {
            expect[tab[i].key] = tab[i].value;
        }
        for (k = 0; k < IPSECIF_SYSCTL_COUNT; k++) {
            assert_int_equal(ipsecif_sysctl_get(ctx, k), expect[k]);
        }
    }
    assert_int_equal(ipsecif_sysctl_get(ctx, IPSECIF_SYSCTL_COUNT), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sysctl_get(ctx, -1), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sysctl_get(NULL, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_sysctl_set(NULL, 0, 1), IPSECIF_ERR_ARG);
}

/* ---- Bad input: each mutation of a good policy is refused, nothing changes ---- */

static void bad_src_unspec(struct ipsecif_policy *p)
{
    p->sel.src.family = IPSECIF_AF_UNSPEC;
}
static void bad_mixed_family(struct ipsecif_policy *p)
{
    p->sel.dst = test_addr("2001:db8::1");
}
static void bad_family_7(struct ipsecif_policy *p)
{
    p->sel.src.family = 7;
    p->sel.dst.family = 7;
}
static void bad_splen(struct ipsecif_policy *p)
{
    p->sel.src_plen = 33;
}
static void bad_dplen(struct ipsecif_policy *p)
{
    p->sel.dst_plen = 255;
}
static void bad_plen6(struct ipsecif_policy *p)
{
    p->sel.src = test_addr("2001:db8::1");
    p->sel.dst = test_addr("2001:db8::2");
    p->sel.src_plen = 129;
}
static void bad_dir0(struct ipsecif_policy *p)
{
    p->dir = IPSECIF_DIR_ANY;
}
static void bad_dir4(struct ipsecif_policy *p)
{
    p->dir = 4;
}
static void bad_action(struct ipsecif_policy *p)
{
    p->action = 3;
}
static void bad_nreq0(struct ipsecif_policy *p)
{
    p->nreq = 0;
}
static void bad_nreq_max(struct ipsecif_policy *p)
{
    p->nreq = IPSECIF_MAX_REQUESTS + 1;
}
static void bad_discard_req(struct ipsecif_policy *p)
{
    p->action = IPSECIF_ACTION_DISCARD;
}
static void bad_none_req(struct ipsecif_policy *p)
{
    p->action = IPSECIF_ACTION_NONE;
}
static void bad_req_proto(struct ipsecif_policy *p)
{
    p->req[0].proto = IPSECIF_IPPROTO_TCP;
}
static void bad_req_mode0(struct ipsecif_policy *p)
{
    p->req[0].mode = IPSECIF_MODE_ANY;
}
static void bad_req_mode3(struct ipsecif_policy *p)
{
    p->req[0].mode = 3;
}
static void bad_req_level(struct ipsecif_policy *p)
{
    p->req[0].level = 4;
}
static void bad_tunnel_noaddr(struct ipsecif_policy *p)
{
    p->req[0].mode = IPSECIF_MODE_TUNNEL;
}
static void bad_tunnel_mixed(struct ipsecif_policy *p)
{
    p->req[0].mode = IPSECIF_MODE_TUNNEL;
    p->req[0].tun_src = test_addr("203.0.113.1");
    p->req[0].tun_dst = test_addr("2001:db8::2");
}
static void bad_transport_half(struct ipsecif_policy *p)
{
    p->req[0].tun_src = test_addr("203.0.113.1");
}
static void bad_second_req(struct ipsecif_policy *p)
{
    p->nreq = 2;
    p->req[1] = p->req[0];
    p->req[1].proto = 0;
}
static void bad_icmp_type(struct ipsecif_policy *p)
{
    p->sel.ulproto = IPSECIF_IPPROTO_ICMP;
    p->sel.sport = 256;
}
static void bad_icmp6_code(struct ipsecif_policy *p)
{
    p->sel.ulproto = IPSECIF_IPPROTO_ICMPV6;
    p->sel.sport = 1;
    p->sel.dport = 0xfffe;
}

static void test_bad_inputs(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    static void (*const muts[])(struct ipsecif_policy *) = {
        bad_src_unspec, bad_mixed_family, bad_family_7,      bad_splen,        bad_dplen,
        bad_plen6,      bad_dir0,         bad_dir4,          bad_action,       bad_nreq0,
        bad_nreq_max,   bad_discard_req,  bad_none_req,      bad_req_proto,    bad_req_mode0,
        bad_req_mode3,  bad_req_level,    bad_tunnel_noaddr, bad_tunnel_mixed, bad_transport_half,
        bad_second_req, bad_icmp_type,    bad_icmp6_code,
    };
    struct ipsecif_policy good = pol(IPSECIF_DIR_OUT, "192.0.2.0", 24, "198.51.100.0", 24,
                                     IPSECIF_IPPROTO_UDP, 0, 53, 0, 100);
    struct snap before;
    struct snap after;
    uint32_t next_id;
    uint32_t next_reqid;
    size_t i;

    req(&good, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL, NULL);
    add_ok(ctx, &(struct ipsecif_policy){.sel = good.sel, .dir = IPSECIF_DIR_IN, .priority = 3});
    add_ok(ctx, &(struct ipsecif_policy){.sel = good.sel, .dir = IPSECIF_DIR_FWD});
    take_snap(ctx, &before);
    next_id = ctx->spd.next_id;
    next_reqid = ctx->spd.next_reqid;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(muts); i++) {
        struct ipsecif_policy p = good;
        uint32_t id = 4242;

        print_message("case %zu\n", i);
        muts[i](&p);
        assert_int_equal(ipsecif_spd_add(ctx, &p, NOW, &id), IPSECIF_ERR_ARG);
        assert_int_equal(id, 4242);
        assert_int_equal(ipsecif_spd_update(ctx, &p, NOW, &id), IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_spd_insert(ctx, &p, true, NOW, NULL), IPSECIF_ERR_ARG);
        take_snap(ctx, &after);
        assert_snap_same(&before, &after);
        /* Nothing was consumed either. */
        assert_int_equal(ctx->spd.next_id, next_id);
        assert_int_equal(ctx->spd.next_reqid, next_reqid);
    }
    /* The unmodified policy is fine. */
    add_ok(ctx, &good);

    /* Bad selectors for delete and lookup. */
    {
        struct ipsecif_policy p = good;
        struct ipsecif_policy out;
        struct ipsecif_selector k = pkt("192.0.2.1", "198.51.100.1", 17, 1, 53);

        bad_splen(&p);
        assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_OUT), IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_spd_delete(ctx, &good.sel, 0), IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_spd_delete(ctx, &good.sel, 4), IPSECIF_ERR_ARG);
        assert_null(ipsecif_spd_find_exact(ctx, &p.sel, IPSECIF_DIR_OUT));
        assert_int_equal(ipsecif_spd_lookup(ctx, 0, &k, NOW, &out), IPSECIF_ERR_ARG);
        assert_int_equal(ipsecif_spd_lookup(ctx, 4, &k, NOW, &out), IPSECIF_ERR_ARG);
        k.dst = test_addr("2001:db8::1");
        assert_int_equal(ipsecif_spd_lookup(ctx, IPSECIF_DIR_OUT, &k, NOW, &out), IPSECIF_ERR_ARG);
        assert_null(ipsecif_spd_match(ctx, IPSECIF_DIR_OUT, &k));
        assert_int_equal(ipsecif_spd_count(ctx), 3);
    }
}

static void test_null_args(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p = host(IPSECIF_DIR_OUT, "192.0.2.1", "192.0.2.2", 1);
    struct ipsecif_selector k = pkt("192.0.2.1", "192.0.2.2", 6, 1, 2);
    struct ipsecif_policy out;
    struct walk_rec w;

    assert_int_equal(ipsecif_spd_add(NULL, &p, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_add(ctx, NULL, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_update(NULL, &p, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_update(ctx, NULL, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_insert(NULL, &p, false, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_insert(ctx, NULL, false, NOW, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_delete(NULL, &p.sel, 1), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_delete(ctx, NULL, 1), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_delete_id(NULL, 1), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_get(NULL, 1, &out), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_get(ctx, 1, NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_flush(NULL), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_walk(NULL, walk_cb, &w), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_walk(ctx, NULL, &w), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_count(NULL), 0);
    assert_int_equal(ipsecif_spd_lookup(NULL, 2, &k, NOW, &out), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_lookup(ctx, 2, NULL, NOW, &out), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_lookup(ctx, 2, &k, NOW, NULL), IPSECIF_ERR_ARG);
    assert_null(ipsecif_spd_match(NULL, 2, &k));
    assert_null(ipsecif_spd_match(ctx, 2, NULL));
    assert_null(ipsecif_spd_find_id(ctx, 0));
    assert_null(ipsecif_spd_find_exact(ctx, NULL, 2));
    assert_false(ipsecif_spd_reqid_used(ctx, 0));
    ipsecif_spd_remove(ctx, NULL);
    assert_int_equal(ipsecif_spd_delete_id(ctx, 0), IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_count(ctx), 0);
}

static void test_full(void **state)
{
    struct test_ctx t;
    struct ipsecif_config cfg;
    struct ipsecif_policy p;
    struct snap before;
    struct snap after;
    uint32_t ids[5];
    uint32_t id = 99;
    char dst[32];
    int i;

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_policies = 5;
    test_ctx_new(&t, &cfg);
    for (i = 0; i < 5; i++) {
        snprintf(dst, sizeof(dst), "198.51.100.%d", i + 1);
        p = host(IPSECIF_DIR_OUT, "192.0.2.1", dst, (uint32_t)(10 - i));
        p.sel.dst_plen = (uint8_t)(i % 2 ? 32 : 31); /* exact and prefix alike */
        ids[i] = add_ok(t.ctx, &p);
    }
    assert_int_equal(ipsecif_spd_free_slots(t.ctx), 0);
    check_spd(t.ctx);
    take_snap(t.ctx, &before);

    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.50", 1);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, NOW, &id), IPSECIF_ERR_FULL);
    assert_int_equal(id, 99);
    assert_int_equal(ipsecif_spd_insert(t.ctx, &p, true, NOW, NULL), IPSECIF_ERR_FULL);
    p.sel.dst_plen = 8;
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, NOW, NULL), IPSECIF_ERR_FULL);
    /* A duplicate is reported as such even when full. */
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.2", 1);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, NOW, NULL), IPSECIF_ERR_EXIST);
    take_snap(t.ctx, &after);
    assert_snap_same(&before, &after);
    check_spd(t.ctx);

    /* Free one slot: the next add fits, the one after does not. */
    assert_int_equal(ipsecif_spd_delete_id(t.ctx, ids[2]), IPSECIF_OK);
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.50", 1);
    id = add_ok(t.ctx, &p);
    assert_true(id != ids[2]); /* ids are not reused right away */
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.51", 1);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, NOW, NULL), IPSECIF_ERR_FULL);
    check_spd(t.ctx);

    assert_int_equal(ipsecif_spd_flush(t.ctx), 5);
    check_spd(t.ctx);
    test_ctx_free(&t);
}

static void test_reqid(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.1", 1);
    struct ipsecif_policy got;
    uint32_t seen[8];
    size_t nseen = 0;
    uint32_t id;
    uint32_t r;
    size_t i;
    size_t j;

    /* unique without reqid: automatic, above the manual range, all distinct. */
    for (i = 0; i < 3; i++) {
        char dst[32];

        snprintf(dst, sizeof(dst), "198.51.100.%zu", i + 1);
        p = host(IPSECIF_DIR_OUT, "192.0.2.1", dst, 1);
        req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL, NULL);
        if (i == 2) { /* two requests, two reqids */
            req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL,
                NULL);
        }
        id = add_ok(ctx, &p);
        assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
        for (j = 0; j < got.nreq; j++) {
            assert_true(got.req[j].reqid > IPSECIF_REQID_MANUAL_MAX);
            assert_int_equal(got.req[j].level, IPSECIF_LEVEL_UNIQUE);
            assert_true(ipsecif_spd_reqid_used(ctx, got.req[j].reqid));
            seen[nseen++] = got.req[j].reqid;
        }
    }
    for (i = 0; i < nseen; i++) {
        for (j = i + 1; j < nseen; j++) {
            assert_true(seen[i] != seen[j]);
        }
    }

    /* Given reqids are kept, with unique or any other level. */
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.1", 1);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 5, NULL, NULL);
    id = add_ok(ctx, &p);
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.req[0].reqid, 5);
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.2", 1);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 5, NULL, NULL);
    req(&p, IPSECIF_IPPROTO_AH, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_USE, 9, NULL, NULL);
    id = add_ok(ctx, &p);
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.req[0].reqid, 5);
    assert_int_equal(got.req[1].reqid, 9);
    /* require without reqid stays 0 and is not "used". */
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.3", 1);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL);
    id = add_ok(ctx, &p);
    assert_int_equal(ipsecif_spd_get(ctx, id, &got), IPSECIF_OK);
    assert_int_equal(got.req[0].reqid, 0);
    assert_false(ipsecif_spd_reqid_used(ctx, 0));

    /* Shared reqid: used until the last user is gone. */
    assert_true(ipsecif_spd_reqid_used(ctx, 5));
    assert_true(ipsecif_spd_reqid_used(ctx, 9));
    assert_false(ipsecif_spd_reqid_used(ctx, 6));
    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_IN), IPSECIF_OK);
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.2", 1);
    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_IN), IPSECIF_OK);
    assert_true(ipsecif_spd_reqid_used(ctx, 5));
    assert_false(ipsecif_spd_reqid_used(ctx, 9));
    p = host(IPSECIF_DIR_IN, "192.0.2.1", "198.51.100.1", 1);
    assert_int_equal(ipsecif_spd_delete(ctx, &p.sel, IPSECIF_DIR_IN), IPSECIF_OK);
    assert_false(ipsecif_spd_reqid_used(ctx, 5));

    /* The allocator skips reqids in use. */
    ctx->spd.next_reqid = seen[0];
    r = ipsecif_spd_new_reqid(ctx);
    assert_true(r > IPSECIF_REQID_MANUAL_MAX);
    assert_false(ipsecif_spd_reqid_used(ctx, r));
    for (i = 0; i < nseen; i++) {
        assert_true(r != seen[i]);
    }

    /* It wraps from the top back to the first automatic value, skipping used ones. */
    p = host(IPSECIF_DIR_FWD, "192.0.2.1", "198.51.100.1", 1);
    req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE,
        IPSECIF_REQID_MANUAL_MAX + 1, NULL, NULL);
    add_ok(ctx, &p);
    ctx->spd.next_reqid = UINT32_MAX;
    assert_int_equal(ipsecif_spd_new_reqid(ctx), UINT32_MAX);
    r = ipsecif_spd_new_reqid(ctx);
    assert_true(r > IPSECIF_REQID_MANUAL_MAX + 1);
    assert_false(ipsecif_spd_reqid_used(ctx, r));
    check_spd(ctx);
}

static void test_id_wrap(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_policy p;
    uint32_t a;
    uint32_t b;
    uint32_t c;
    uint32_t d;

    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.1", 1);
    a = add_ok(ctx, &p);
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.2", 1);
    b = add_ok(ctx, &p);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    ctx->spd.next_id = IPSECIF_POLICY_ID_MAX;
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.3", 1);
    c = add_ok(ctx, &p);
    assert_int_equal(c, IPSECIF_POLICY_ID_MAX);
    /* Ids wrap at IPSECIF_POLICY_ID_MAX; 0 is never an id; 1 and 2 are taken. */
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.4", 1);
    d = add_ok(ctx, &p);
    assert_int_equal(d, 3);
    assert_int_equal(ipsecif_spd_delete_id(ctx, a), IPSECIF_OK);
    ctx->spd.next_id = 0;
    p = host(IPSECIF_DIR_OUT, "192.0.2.1", "198.51.100.5", 1);
    assert_int_equal(add_ok(ctx, &p), 1);
    check_spd(ctx);
}

/* ---- Many host pairs ---- */

static void addr4(char *buf, size_t len, unsigned a, unsigned b, unsigned c, unsigned d)
{
    snprintf(buf, len, "%u.%u.%u.%u", a, b, c, d);
}

static void test_many_exact(void **state)
{
    enum { N = 10000 };
    struct test_ctx t;
    struct ipsecif_config cfg;
    static uint32_t ids[N];
    uint32_t net_id;
    uint32_t late_id;
    char s[32];
    char d[32];
    unsigned i;

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_policies = N + 8;
    test_ctx_new(&t, &cfg);

    /* A prefix policy covering every pair sits between the two priorities
     * used by the host pairs: even pairs win over it, odd ones lose. */
    net_id = add_ok(t.ctx, &(struct ipsecif_policy){.sel = {.src = test_addr("10.0.0.0"),
                                                            .dst = test_addr("172.16.0.0"),
                                                            .src_plen = 8,
                                                            .dst_plen = 12,
                                                            .ulproto = ANYP},
                                                    .dir = IPSECIF_DIR_OUT,
                                                    .action = IPSECIF_ACTION_DISCARD,
                                                    .priority = 2000});
    for (i = 0; i < N; i++) {
        struct ipsecif_policy p;

        addr4(s, sizeof(s), 10, i >> 8, i & 255, 1);
        addr4(d, sizeof(d), 172, 16, i >> 8, i & 255);
        p = host(IPSECIF_DIR_OUT, s, d, i % 2 ? 3000 : 1000);
        req(&p, IPSECIF_IPPROTO_ESP, IPSECIF_MODE_TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL, NULL);
        ids[i] = add_ok(t.ctx, &p);
    }
    /* One more prefix policy, added last with the lowest priority value of
     * all: it wins for the pairs it covers. */
    late_id = add_ok(t.ctx, &(struct ipsecif_policy){.sel = {.src = test_addr("10.0.7.0"),
                                                             .dst = test_addr("172.16.0.0"),
                                                             .src_plen = 24,
                                                             .dst_plen = 16,
                                                             .ulproto = ANYP},
                                                     .dir = IPSECIF_DIR_OUT,
                                                     .action = IPSECIF_ACTION_NONE,
                                                     .priority = 500});
    assert_int_equal(ipsecif_spd_count(t.ctx), N + 2);
    assert_int_equal(t.ctx->spd.nonexact[IPSECIF_DIR_OUT], 2);
    check_spd(t.ctx);

    for (i = 0; i < N; i++) {
        struct ipsecif_selector k;
        struct ipsecif_policy out;
        uint32_t want;

        addr4(s, sizeof(s), 10, i >> 8, i & 255, 1);
        addr4(d, sizeof(d), 172, 16, i >> 8, i & 255);
        k = pkt(s, d, IPSECIF_IPPROTO_UDP, 4500, 4500);
        want = (i >> 8) == 0 && (i & 255) == 7 ? late_id : (i % 2 ? net_id : ids[i]);
        assert_int_equal(ipsecif_spd_lookup(t.ctx, IPSECIF_DIR_OUT, &k, NOW, &out), IPSECIF_OK);
        if (out.id != want) {
            fail_msg("pair %u: got id %u, want %u", i, out.id, want);
        }
        /* The reverse direction has no policy at all. */
        assert_null(ipsecif_spd_match(t.ctx, IPSECIF_DIR_IN, &k));
        /* A neighbour address hits only the prefix. */
        addr4(s, sizeof(s), 10, i >> 8, i & 255, 2);
        k = pkt(s, d, IPSECIF_IPPROTO_UDP, 4500, 4500);
        assert_int_equal(ipsecif_spd_match(t.ctx, IPSECIF_DIR_OUT, &k)->pol.id,
                         (i & 255) == 7 && (i >> 8) == 0 ? late_id : net_id);
    }

    /* Delete every third host pair: those fall back to the prefix. */
    for (i = 0; i < N; i += 3) {
        assert_int_equal(ipsecif_spd_delete_id(t.ctx, ids[i]), IPSECIF_OK);
    }
    check_spd(t.ctx);
    for (i = 0; i < N; i++) {
        struct ipsecif_selector k;
        uint32_t want;

        if ((i >> 8) == 0 && (i & 255) == 7) {
            continue;
        }
        addr4(s, sizeof(s), 10, i >> 8, i & 255, 1);
        addr4(d, sizeof(d), 172, 16, i >> 8, i & 255);
        k = pkt(s, d, IPSECIF_IPPROTO_TCP, 1, 2);
        want = (i % 3 == 0 || i % 2) ? net_id : ids[i];
        assert_int_equal(ipsecif_spd_match(t.ctx, IPSECIF_DIR_OUT, &k)->pol.id, want);
    }
    assert_int_equal(ipsecif_spd_flush(t.ctx), (int)(N - (N + 2) / 3 + 2));
    check_spd(t.ctx);
    test_ctx_free(&t);
}

/* ---- Random policies against a plain reference matcher ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Does a fall inside p/plen? Bit by bit, independent of the library. */
static bool ref_in(const struct ipsecif_addr *a, const struct ipsecif_addr *p, unsigned plen)
{
    unsigned i;

    if (a->family != p->family) {
        return false;
    }
    for (i = 0; i < plen; i++) {
        unsigned bit = 7 - i % 8;

        if (((a->bytes[i / 8] >> bit) & 1) != ((p->bytes[i / 8] >> bit) & 1)) {
            return false;
        }
    }
    return true;
}

static bool ref_match(const struct ipsecif_policy *p, const struct ipsecif_selector *k)
{
    const struct ipsecif_selector *s = &p->sel;
    bool icmp = s->ulproto == IPSECIF_IPPROTO_ICMP || s->ulproto == IPSECIF_IPPROTO_ICMPV6;
    uint16_t any = icmp ? IPSECIF_ICMP_ANY : 0;

    return ref_in(&k->src, &s->src, s->src_plen) && ref_in(&k->dst, &s->dst, s->dst_plen) &&
           (s->ulproto == ANYP || s->ulproto == k->ulproto) &&
           (s->sport == any || s->sport == k->sport) && (s->dport == any || s->dport == k->dport);
}

struct ref {
    size_t n;
    struct ipsecif_policy p[200];
    uint64_t seq[200];
};

static const char *const r_hosts[] = {"192.0.2.1", "192.0.2.2", "192.0.2.129", "198.51.100.1",
                                      "198.51.100.6"};
static const uint8_t r_plens[] = {32, 32, 32, 24, 25, 30, 0};
static const uint8_t r_protos[] = {ANYP, IPSECIF_IPPROTO_TCP, IPSECIF_IPPROTO_UDP,
                                   IPSECIF_IPPROTO_ICMP};
static const uint16_t r_ports[] = {0, 1, 2};
static const uint16_t r_icmp[] = {ICMPANY, 0, 8};

static void test_random_vs_reference(void **state)
{
    struct test_ctx t;
    struct ipsecif_config cfg;
    static struct ref ref;
    uint64_t seq = 0;
    unsigned round;
    unsigned i;

    (void)state;
    ipsecif_config_default(&cfg);
    cfg.max_policies = IPSECIF_ARRAY_SIZE(ref.p);
    test_ctx_new(&t, &cfg);
    memset(&ref, 0, sizeof(ref));

    for (round = 0; round < 3000; round++) {
        unsigned op = rnd(10);

        if (op < 6 && ref.n < IPSECIF_ARRAY_SIZE(ref.p)) {
            struct ipsecif_policy p;
            uint8_t proto = r_protos[rnd(IPSECIF_ARRAY_SIZE(r_protos))];
            bool icmp = proto == IPSECIF_IPPROTO_ICMP;
            uint32_t id = 0;
            size_t dup = SIZE_MAX;
            int rc;

            p = pol((uint8_t)(1 + rnd(2)), r_hosts[rnd(IPSECIF_ARRAY_SIZE(r_hosts))],
                    r_plens[rnd(IPSECIF_ARRAY_SIZE(r_plens))],
                    r_hosts[rnd(IPSECIF_ARRAY_SIZE(r_hosts))],
                    r_plens[rnd(IPSECIF_ARRAY_SIZE(r_plens))], proto,
                    icmp ? r_icmp[rnd(3)] : (proto == ANYP ? 0 : r_ports[rnd(3)]),
                    icmp ? r_icmp[rnd(3)] : (proto == ANYP ? 0 : r_ports[rnd(3)]), (uint8_t)rnd(2),
                    1 + rnd(3));
            rc = ipsecif_spd_add(t.ctx, &p, NOW, &id);
            /* The reference sees the stored (masked) form through get(). */
            for (i = 0; i < ref.n; i++) {
                struct ipsecif_policy q = p;
                unsigned b;

                for (b = q.sel.src_plen; b < 32; b++) {
                    q.sel.src.bytes[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
                }
                for (b = q.sel.dst_plen; b < 32; b++) {
                    q.sel.dst.bytes[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
                }
                if (ref.p[i].dir == q.dir && ref.p[i].sel.src_plen == q.sel.src_plen &&
                    ref.p[i].sel.dst_plen == q.sel.dst_plen &&
                    memcmp(&ref.p[i].sel.src, &q.sel.src, sizeof(q.sel.src)) == 0 &&
                    memcmp(&ref.p[i].sel.dst, &q.sel.dst, sizeof(q.sel.dst)) == 0 &&
                    ref.p[i].sel.ulproto == q.sel.ulproto && ref.p[i].sel.sport == q.sel.sport &&
                    ref.p[i].sel.dport == q.sel.dport) {
                    dup = i;
                }
            }
            if (dup != SIZE_MAX) {
                assert_int_equal(rc, IPSECIF_ERR_EXIST);
                continue;
            }
            assert_int_equal(rc, IPSECIF_OK);
            assert_int_equal(ipsecif_spd_get(t.ctx, id, &ref.p[ref.n]), IPSECIF_OK);
            ref.seq[ref.n] = seq++;
            ref.n++;
        } else if (op < 8 && ref.n > 0) {
            unsigned v = rnd((uint32_t)ref.n);

            if (rnd(2)) {
                assert_int_equal(ipsecif_spd_delete_id(t.ctx, ref.p[v].id), IPSECIF_OK);
            } else {
                assert_int_equal(ipsecif_spd_delete(t.ctx, &ref.p[v].sel, ref.p[v].dir),
                                 IPSECIF_OK);
            }
            ref.p[v] = ref.p[ref.n - 1];
            ref.seq[v] = ref.seq[ref.n - 1];
            ref.n--;
        } else {
            uint8_t dir = (uint8_t)(1 + rnd(2));
            uint8_t proto = r_protos[1 + rnd(3)];
            struct ipsecif_selector k = pkt(r_hosts[rnd(IPSECIF_ARRAY_SIZE(r_hosts))],
                                            r_hosts[rnd(IPSECIF_ARRAY_SIZE(r_hosts))], proto,
                                            (uint16_t)rnd(3), (uint16_t)rnd(3));
            const struct ipsecif_policy *want = NULL;
            uint64_t want_seq = 0;
            struct ipsecif_sp *sp;

            if (proto == IPSECIF_IPPROTO_ICMP) {
                k.sport = rnd(2) ? 8 : 0;
            }
            for (i = 0; i < ref.n; i++) {
                if (ref.p[i].dir != dir || !ref_match(&ref.p[i], &k)) {
                    continue;
                }
                if (want == NULL || ref.p[i].priority < want->priority ||
                    (ref.p[i].priority == want->priority && ref.seq[i] < want_seq)) {
                    want = &ref.p[i];
                    want_seq = ref.seq[i];
                }
            }
            sp = ipsecif_spd_match(t.ctx, dir, &k);
            if (want == NULL) {
                assert_null(sp);
            } else {
                assert_non_null(sp);
                assert_int_equal(sp->pol.id, want->id);
            }
        }
        if (round % 100 == 0) {
            check_spd(t.ctx);
        }
    }
    assert_int_equal(ipsecif_spd_count(t.ctx), ref.n);
    check_spd(t.ctx);
    (void)ipsecif_spd_flush(t.ctx);
    test_ctx_free(&t);
}

/* ---- Per-socket policies ---- */

static int count_socks(void *arg, const struct ipsecif_sock *s, const struct ipsecif_sockpolicy *in,
                       const struct ipsecif_sockpolicy *out)
{
    unsigned *n = arg;

    assert_int_equal(in->dir, IPSECIF_DIR_IN);
    assert_int_equal(out->dir, IPSECIF_DIR_OUT);
    assert_true(s->owner != 0);
    (*n)++;
    return 0;
}

static void test_sock_policies(void **state)
{
    struct ipsecif_ctx *ctx = C(state);
    struct ipsecif_sockpolicy bypass, ipsec, got;
    struct ipsecif_sock any, one, found;
    struct ipsecif_addr a = test_addr("192.0.2.1");
    struct ipsecif_addr b = test_addr("192.0.2.2");
    unsigned n = 0;

    memset(&bypass, 0, sizeof(bypass));
    bypass.dir = IPSECIF_DIR_IN;
    bypass.type = IPSECIF_SOCKPOL_BYPASS;
    memset(&ipsec, 0, sizeof(ipsec));
    ipsec.dir = IPSECIF_DIR_IN;
    ipsec.type = IPSECIF_SOCKPOL_IPSEC;
    ipsec.nreq = 1;
    ipsec.req[0].proto = IPSECIF_IPPROTO_ESP;
    ipsec.req[0].mode = IPSECIF_MODE_TRANSPORT;
    ipsec.req[0].level = IPSECIF_LEVEL_REQUIRE;
    memset(&any, 0, sizeof(any));
    any.owner = 1;
    any.handle = 3;
    any.proto = IPSECIF_IPPROTO_UDP;
    any.local.family = IPSECIF_AF_INET;
    any.lport = 500;
    one = any;
    one.handle = 4;
    one.local = a;
    /* Garbage past an IPv4 address does not keep it from matching. */
    one.local.bytes[15] = 0xee;

    assert_int_equal(ipsecif_spd_sock_set(ctx, &any, &bypass), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_sock_count(ctx), 2);
    /* The socket bound to the address wins over the wildcard one. */
    assert_int_equal(
        ipsecif_spd_sock_lookup(ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &a, 500, &got, &found),
        IPSECIF_OK);
    assert_int_equal(got.type, IPSECIF_SOCKPOL_IPSEC);
    assert_int_equal(found.handle, 4);
    assert_int_equal(
        ipsecif_spd_sock_lookup(ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &b, 500, &got, &found),
        IPSECIF_OK);
    assert_int_equal(got.type, IPSECIF_SOCKPOL_BYPASS);
    assert_int_equal(found.handle, 3);
    /* Outbound both entrust: the SPD decides. */
    assert_int_equal(
        ipsecif_spd_sock_lookup(ctx, IPSECIF_DIR_OUT, IPSECIF_IPPROTO_UDP, &a, 500, NULL, NULL),
        IPSECIF_ERR_NOENT);
    assert_int_equal(ipsecif_spd_sock_walk(ctx, count_socks, &n), 0);
    assert_int_equal(n, 2);
    /* Rebinding moves what it covers. */
    one.lport = 4500;
    assert_int_equal(ipsecif_spd_sock_bind(ctx, &one), IPSECIF_OK);
    assert_int_equal(
        ipsecif_spd_sock_lookup(ctx, IPSECIF_DIR_IN, IPSECIF_IPPROTO_UDP, &a, 500, NULL, &found),
        IPSECIF_OK);
    assert_int_equal(found.handle, 3);
    one.handle = 99;
    assert_int_equal(ipsecif_spd_sock_bind(ctx, &one), IPSECIF_ERR_NOENT);

    /* Bad arguments change nothing. */
    one.handle = 4;
    assert_int_equal(ipsecif_spd_sock_set(NULL, &one, &ipsec), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_set(ctx, NULL, &ipsec), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, NULL), IPSECIF_ERR_ARG);
    one.owner = 0;
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_ERR_ARG);
    one.owner = 1;
    one.local.family = IPSECIF_AF_UNSPEC;
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_ERR_ARG);
    one.local = a;
    ipsec.req[0].level = 9;
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_ERR_ARG);
    ipsec.req[0].level = IPSECIF_LEVEL_REQUIRE;
    ipsec.req[0].mode = IPSECIF_MODE_TUNNEL; /* tunnel without endpoints */
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_ERR_ARG);
    ipsec.req[0].mode = IPSECIF_MODE_TRANSPORT;
    ipsec.dir = IPSECIF_DIR_FWD;
    assert_int_equal(ipsecif_spd_sock_set(ctx, &one, &ipsec), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_get(ctx, 1, 4, IPSECIF_DIR_FWD, &got), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_get(ctx, 0, 4, IPSECIF_DIR_IN, &got), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_lookup(ctx, IPSECIF_DIR_ANY, 17, &a, 500, NULL, NULL),
                     IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_sock_get(ctx, 1, 4, IPSECIF_DIR_IN, &got), IPSECIF_OK);
    assert_int_equal(got.type, IPSECIF_SOCKPOL_IPSEC);
    assert_int_equal(ipsecif_spd_sock_count(ctx), 2);

    /* Closing: one socket, then all of an owner. */
    assert_int_equal(ipsecif_spd_sock_close(ctx, 1, 4), 1);
    assert_int_equal(ipsecif_spd_sock_close(ctx, 1, 4), 0);
    assert_int_equal(ipsecif_spd_sock_get(ctx, 1, 4, IPSECIF_DIR_IN, &got), IPSECIF_OK);
    assert_int_equal(got.type, IPSECIF_SOCKPOL_ENTRUST);
    assert_int_equal(ipsecif_spd_sock_close(ctx, 2, IPSECIF_SOCK_ALL), 0);
    assert_int_equal(ipsecif_spd_sock_close(ctx, 1, IPSECIF_SOCK_ALL), 1);
    assert_int_equal(ipsecif_spd_sock_count(ctx), 0);
    assert_int_equal(ipsecif_spd_count(ctx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update, setup, teardown),
        cmocka_unit_test(test_update_when_full),
        cmocka_unit_test_setup_teardown(test_walk_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_def_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sysctl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
        cmocka_unit_test(test_full),
        cmocka_unit_test_setup_teardown(test_reqid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_wrap, setup, teardown),
        cmocka_unit_test(test_many_exact),
        cmocka_unit_test_setup_teardown(test_sock_policies, setup, teardown),
        cmocka_unit_test(test_random_vs_reference),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
