/* Interfaces: naming, tunnel endpoints, the four paired policies, clashes
 * both ways, NAT-T sharing, flags, and rollback when an add fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

static void small_cfg(struct ipsecif_config *cfg, uint32_t ifs, uint32_t pols)
{
    ipsecif_config_default(cfg);
    cfg->max_interfaces = ifs;
    cfg->max_policies = pols;
    cfg->max_sas = 16;
}

static struct ipsecif_if *mkif(struct test_ctx *t, const char *name)
{
    struct ipsecif_if *ifp = NULL;

    assert_int_equal(ipsecif_if_create(t->ctx, name, &ifp), IPSECIF_OK);
    assert_non_null(ifp);
    return ifp;
}

static int tunnel(struct test_ctx *t, struct ipsecif_if *ifp, const char *src, const char *dst)
{
    struct ipsecif_addr s = test_addr(src);
    struct ipsecif_addr d = test_addr(dst);

    return ipsecif_if_set_tunnel(t->ctx, ifp, &s, 0, &d, 0, 2000);
}

static void test_names(void **state)
{
    static const struct {
        const char *name;
        int rc;
    } cases[] = {
        {"ipsec0", IPSECIF_OK},        {"ipsec12", IPSECIF_OK},
        {"ipsec", IPSECIF_ERR_ARG},    {"ipsec01", IPSECIF_ERR_ARG},
        {"eth0", IPSECIF_ERR_ARG},     {"ipsecx", IPSECIF_ERR_ARG},
        {"ipsec1x", IPSECIF_ERR_ARG},  {"ipsec123456789012", IPSECIF_ERR_ARG},
        {"ipsec0", IPSECIF_ERR_EXIST},
    };
    struct test_ctx t;
    size_t i;

    (void)state;
    test_ctx_new(&t, NULL);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(ipsecif_if_create(t.ctx, cases[i].name, NULL), cases[i].rc);
    }
    assert_non_null(ipsecif_if_find(t.ctx, "ipsec12"));
    assert_null(ipsecif_if_find(t.ctx, "ipsec3"));
    assert_int_equal(ipsecif_if_create(t.ctx, NULL, NULL), IPSECIF_ERR_ARG);
    test_ctx_free(&t);
}

static void test_capacity(void **state)
{
    struct ipsecif_config cfg;
    struct test_ctx t;
    char name[16];
    int i;

    (void)state;
    small_cfg(&cfg, 3, 16);
    test_ctx_new(&t, &cfg);
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "ipsec%d", i);
        assert_int_equal(ipsecif_if_create(t.ctx, name, NULL), IPSECIF_OK);
    }
    assert_int_equal(ipsecif_if_create(t.ctx, "ipsec9", NULL), IPSECIF_ERR_FULL);
    assert_null(ipsecif_if_find(t.ctx, "ipsec9"));
    /* Destroying one makes room again. */
    assert_int_equal(ipsecif_if_destroy(t.ctx, ipsecif_if_find(t.ctx, "ipsec1")), IPSECIF_OK);
    assert_int_equal(ipsecif_if_create(t.ctx, "ipsec9", NULL), IPSECIF_OK);
    test_ctx_free(&t);
}

static void test_defaults_mtu_flags(void **state)
{
    struct ipsecif_if_info info;
    struct ipsecif_if *ifp;
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    ifp = mkif(&t, "ipsec0");
    assert_int_equal(ipsecif_if_get_info(t.ctx, ifp, &info), IPSECIF_OK);
    assert_string_equal(info.name, "ipsec0");
    assert_int_equal(info.mtu, 1280);
    assert_int_equal(info.flags, IPSECIF_IFF_LINK2);
    assert_false(info.has_tunnel);
    assert_int_equal(ipsecif_if_set_mtu(t.ctx, ifp, 1279), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_if_set_mtu(t.ctx, ifp, 8193), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_if_set_mtu(t.ctx, ifp, 8192), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_mtu(t.ctx, ifp, 1280), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(t.ctx, ifp, 0x100, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_get_flags(ifp), IPSECIF_IFF_LINK2);
    test_ctx_free(&t);
}

static void check_policy(struct test_ctx *t, uint32_t id, const char *src, const char *dst,
                         uint8_t dir, uint8_t ulproto, uint8_t action, uint8_t level,
                         uint32_t reqid)
{
    struct ipsecif_policy p;
    struct ipsecif_addr s = test_addr(src), d = test_addr(dst);

    assert_int_equal(ipsecif_spd_get(t->ctx, id, &p), IPSECIF_OK);
    assert_true(p.owned);
    assert_true(ipsecif_addr_eq(&p.sel.src, &s));
    assert_true(ipsecif_addr_eq(&p.sel.dst, &d));
    assert_int_equal(p.sel.src_plen, s.family == IPSECIF_AF_INET ? 32 : 128);
    assert_int_equal(p.dir, dir);
    assert_int_equal(p.sel.ulproto, ulproto);
    assert_int_equal(p.action, action);
    if (action == IPSECIF_ACTION_IPSEC) {
        assert_int_equal(p.nreq, 1);
        assert_int_equal(p.req[0].proto, IPSECIF_IPPROTO_ESP);
        assert_int_equal(p.req[0].mode, IPSECIF_MODE_TRANSPORT);
        assert_int_equal(p.req[0].level, level);
        assert_int_equal(p.req[0].reqid, reqid);
    } else {
        assert_int_equal(p.nreq, 0);
    }
}

static void test_four_policies(void **state)
{
    static const char *fam[2][2] = {{"198.51.100.1", "198.51.100.2"},
                                    {"2001:db8::1", "2001:db8::2"}};
    int f;

    (void)state;
    for (f = 0; f < 2; f++) {
        struct ipsecif_if_info info;
        struct ipsecif_if *ifp;
        struct test_ctx t;
        const char *a = fam[f][0], *b = fam[f][1];
        int i, j;

        test_ctx_new(&t, NULL);
        ifp = mkif(&t, "ipsec0");
        assert_int_equal(tunnel(&t, ifp, a, b), IPSECIF_OK);
        assert_int_equal(ipsecif_spd_count(t.ctx), 4);
        assert_int_equal(ipsecif_if_get_info(t.ctx, ifp, &info), IPSECIF_OK);
        assert_true(info.has_tunnel);
        for (i = 0; i < 4; i++) {
            assert_true(info.reqid[i] > IPSECIF_REQID_MANUAL_MAX);
            assert_true(info.policy_id[i] != 0);
            for (j = 0; j < i; j++) {
                assert_int_not_equal(info.reqid[i], info.reqid[j]);
                assert_int_not_equal(info.policy_id[i], info.policy_id[j]);
            }
        }
        check_policy(&t, info.policy_id[IPSECIF_IFPOL_V4_OUT], a, b, IPSECIF_DIR_OUT, 4,
                     IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, info.reqid[0]);
        check_policy(&t, info.policy_id[IPSECIF_IFPOL_V4_IN], b, a, IPSECIF_DIR_IN, 4,
                     IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, info.reqid[1]);
        check_policy(&t, info.policy_id[IPSECIF_IFPOL_V6_OUT], a, b, IPSECIF_DIR_OUT, 41,
                     IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, info.reqid[2]);
        check_policy(&t, info.policy_id[IPSECIF_IFPOL_V6_IN], b, a, IPSECIF_DIR_IN, 41,
                     IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, info.reqid[3]);

        /* -link2: the IPv6 pair becomes discard, ids of the IPv4 pair stay. */
        assert_int_equal(ipsecif_if_set_flags(t.ctx, ifp, 0, 3000), IPSECIF_OK);
        {
            struct ipsecif_if_info i2;

            assert_int_equal(ipsecif_if_get_info(t.ctx, ifp, &i2), IPSECIF_OK);
            assert_int_equal(ipsecif_spd_count(t.ctx), 4);
            check_policy(&t, i2.policy_id[IPSECIF_IFPOL_V6_OUT], a, b, IPSECIF_DIR_OUT, 41,
                         IPSECIF_ACTION_DISCARD, 0, 0);
            check_policy(&t, i2.policy_id[IPSECIF_IFPOL_V4_OUT], a, b, IPSECIF_DIR_OUT, 4,
                         IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, info.reqid[0]);
            assert_int_equal(i2.reqid[0], info.reqid[0]);
        }
        /* link0: level require. */
        assert_int_equal(
            ipsecif_if_set_flags(t.ctx, ifp, IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK2, 3000),
            IPSECIF_OK);
        assert_int_equal(ipsecif_if_get_info(t.ctx, ifp, &info), IPSECIF_OK);
        check_policy(&t, info.policy_id[IPSECIF_IFPOL_V4_OUT], a, b, IPSECIF_DIR_OUT, 4,
                     IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_REQUIRE, info.reqid[0]);
        assert_int_equal(info.sport, 4500);
        assert_int_equal(info.dport, 4500);

        assert_int_equal(ipsecif_if_delete_tunnel(t.ctx, ifp), IPSECIF_OK);
        assert_int_equal(ipsecif_spd_count(t.ctx), 0);
        assert_int_equal(ipsecif_if_delete_tunnel(t.ctx, ifp), IPSECIF_ERR_NOENT);
        assert_int_equal(tunnel(&t, ifp, a, b), IPSECIF_OK);
        assert_int_equal(ipsecif_if_destroy(t.ctx, ifp), IPSECIF_OK);
        assert_int_equal(ipsecif_spd_count(t.ctx), 0);
        test_ctx_free(&t);
    }
}

static void test_bad_tunnels(void **state)
{
    struct ipsecif_addr v4 = test_addr("198.51.100.1"), v6 = test_addr("2001:db8::2");
    struct ipsecif_addr zero4 = test_addr("0.0.0.0");
    struct ipsecif_if *ifp;
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    ifp = mkif(&t, "ipsec0");
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, ifp, &v4, 0, &v6, 0, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, ifp, &zero4, 0, &v4, 0, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, ifp, &v4, 0, &v4, 0, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, NULL, &v4, 0, &v6, 0, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_spd_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_fixed_reqid(void **state)
{
    struct ipsecif_config cfg;
    struct ipsecif_if_info info;
    struct ipsecif_if *ifp;
    struct test_ctx t;

    (void)state;
    small_cfg(&cfg, 8, 64);
    cfg.fixed_reqid = true;
    cfg.reqid_base = 0x2000;
    test_ctx_new(&t, &cfg);
    ifp = mkif(&t, "ipsec5");
    assert_int_equal(tunnel(&t, ifp, "198.51.100.1", "198.51.100.2"), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(t.ctx, ifp, &info), IPSECIF_OK);
    assert_int_equal(info.reqid[IPSECIF_IFPOL_V4_OUT], 0x2000 + 10);
    assert_int_equal(info.reqid[IPSECIF_IFPOL_V4_IN], 0x2000 + 10);
    assert_int_equal(info.reqid[IPSECIF_IFPOL_V6_OUT], 0x2000 + 11);
    assert_int_equal(info.reqid[IPSECIF_IFPOL_V6_IN], 0x2000 + 11);
    check_policy(&t, info.policy_id[IPSECIF_IFPOL_V6_IN], "198.51.100.2", "198.51.100.1",
                 IPSECIF_DIR_IN, 41, IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, 0x2000 + 11);
    test_ctx_free(&t);
}

static void manual_policy(struct ipsecif_policy *p, const char *src, const char *dst, uint8_t dir,
                          uint8_t ulproto)
{
    memset(p, 0, sizeof(*p));
    p->sel.src = test_addr(src);
    p->sel.dst = test_addr(dst);
    p->sel.src_plen = p->sel.src.family == IPSECIF_AF_INET ? 32 : 128;
    p->sel.dst_plen = p->sel.src_plen;
    p->sel.ulproto = ulproto;
    p->dir = dir;
    p->priority = IPSECIF_PRIORITY_DEFAULT;
    p->action = IPSECIF_ACTION_IPSEC;
    p->nreq = 1;
    p->req[0].proto = IPSECIF_IPPROTO_ESP;
    p->req[0].mode = IPSECIF_MODE_TRANSPORT;
    p->req[0].level = IPSECIF_LEVEL_REQUIRE;
}

static void test_clash_both_ways(void **state)
{
    struct ipsecif_policy p;
    struct ipsecif_if_info info;
    struct ipsecif_if *a, *b;
    struct test_ctx t;
    uint32_t id = 0;
    int i;

    (void)state;
    test_ctx_new(&t, NULL);
    a = mkif(&t, "ipsec0");
    b = mkif(&t, "ipsec1");
    assert_int_equal(tunnel(&t, a, "198.51.100.1", "198.51.100.2"), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(t.ctx, a, &info), IPSECIF_OK);

    /* A manual policy equal to an owned one is refused; owned ones stay. */
    manual_policy(&p, "198.51.100.2", "198.51.100.1", IPSECIF_DIR_IN, 41);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, 0, &id), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_update(t.ctx, &p, 0, &id), IPSECIF_ERR_BUSY);
    assert_int_equal(ipsecif_spd_delete(t.ctx, &p.sel, IPSECIF_DIR_IN), IPSECIF_ERR_BUSY);
    for (i = 0; i < 4; i++) {
        assert_int_equal(ipsecif_spd_delete_id(t.ctx, info.policy_id[i]), IPSECIF_ERR_BUSY);
    }
    assert_int_equal(ipsecif_spd_flush(t.ctx), 0);
    assert_int_equal(ipsecif_spd_count(t.ctx), 4);

    /* Same outer pair on a second interface without NAT-T: refused. */
    assert_int_equal(tunnel(&t, b, "198.51.100.1", "198.51.100.2"), IPSECIF_ERR_EXIST);

    /* The other way: a manual policy first, then the tunnel is refused and
     * nothing of it remains. */
    manual_policy(&p, "203.0.113.1", "203.0.113.2", IPSECIF_DIR_OUT, 41);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, 0, &id), IPSECIF_OK);
    assert_int_equal(tunnel(&t, b, "203.0.113.1", "203.0.113.2"), IPSECIF_ERR_EXIST);
    assert_int_equal(ipsecif_spd_count(t.ctx), 5);
    assert_int_equal(ipsecif_if_get_info(t.ctx, b, &info), IPSECIF_OK);
    assert_false(info.has_tunnel);
    /* Once the manual one is gone the tunnel can be set. */
    assert_int_equal(ipsecif_spd_delete_id(t.ctx, id), IPSECIF_OK);
    assert_int_equal(tunnel(&t, b, "203.0.113.1", "203.0.113.2"), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_count(t.ctx), 8);
    test_ctx_free(&t);
}

static void test_rollback_third_add(void **state)
{
    struct ipsecif_config cfg;
    struct ipsecif_if_info before, after;
    struct ipsecif_if *a, *b;
    struct ipsecif_policy p;
    struct test_ctx t;
    uint32_t id;

    (void)state;
    /* Room for one tunnel plus two: the third add of a second tunnel fails. */
    small_cfg(&cfg, 4, 6);
    test_ctx_new(&t, &cfg);
    a = mkif(&t, "ipsec0");
    b = mkif(&t, "ipsec1");
    assert_int_equal(tunnel(&t, a, "198.51.100.1", "198.51.100.2"), IPSECIF_OK);
    assert_int_equal(tunnel(&t, b, "203.0.113.1", "203.0.113.2"), IPSECIF_ERR_FULL);
    assert_int_equal(ipsecif_spd_count(t.ctx), 4);
    assert_int_equal(ipsecif_if_get_info(t.ctx, b, &after), IPSECIF_OK);
    assert_false(after.has_tunnel);
    assert_int_equal(ipsecif_spd_free_slots(t.ctx), 2);

    /* A tunnel change that fails on its third add restores the old tunnel
     * with its policy ids and unique ids. */
    assert_int_equal(ipsecif_if_get_info(t.ctx, a, &before), IPSECIF_OK);
    manual_policy(&p, "192.0.2.1", "192.0.2.2", IPSECIF_DIR_OUT, 41);
    assert_int_equal(ipsecif_spd_add(t.ctx, &p, 0, &id), IPSECIF_OK);
    assert_int_equal(tunnel(&t, a, "192.0.2.1", "192.0.2.2"), IPSECIF_ERR_EXIST);
    assert_int_equal(ipsecif_if_get_info(t.ctx, a, &after), IPSECIF_OK);
    assert_true(after.has_tunnel);
    assert_true(ipsecif_addr_eq(&after.src, &before.src));
    assert_true(ipsecif_addr_eq(&after.dst, &before.dst));
    assert_memory_equal(after.policy_id, before.policy_id, sizeof(before.policy_id));
    assert_memory_equal(after.reqid, before.reqid, sizeof(before.reqid));
    assert_int_equal(ipsecif_spd_count(t.ctx), 5);
    check_policy(&t, before.policy_id[IPSECIF_IFPOL_V4_OUT], "198.51.100.1", "198.51.100.2",
                 IPSECIF_DIR_OUT, 4, IPSECIF_ACTION_IPSEC, IPSECIF_LEVEL_UNIQUE, before.reqid[0]);
    test_ctx_free(&t);
}

static void test_natt_sharing(void **state)
{
    struct ipsecif_addr s = test_addr("198.51.100.1"), d = test_addr("198.51.100.2");
    struct ipsecif_if_info ia, ib;
    struct ipsecif_if *a, *b, *c;
    struct test_ctx t;
    uint32_t f = IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK2;

    (void)state;
    test_ctx_new(&t, NULL);
    a = mkif(&t, "ipsec0");
    b = mkif(&t, "ipsec1");
    c = mkif(&t, "ipsec2");
    assert_int_equal(ipsecif_if_set_flags(t.ctx, a, f, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(t.ctx, b, f, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, a, &s, 4500, &d, 4500, 0), IPSECIF_OK);
    /* Same pair, same ports: ambiguous, refused. */
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, b, &s, 4500, &d, 4500, 0), IPSECIF_ERR_EXIST);
    /* Same pair, other port: shares the four policies. */
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, b, &s, 4501, &d, 4500, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_count(t.ctx), 4);
    assert_int_equal(ipsecif_if_get_info(t.ctx, a, &ia), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(t.ctx, b, &ib), IPSECIF_OK);
    assert_memory_equal(ia.policy_id, ib.policy_id, sizeof(ia.policy_id));
    assert_int_equal(ib.sport, 4501);
    /* A non-NAT-T interface on that pair is refused. */
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, c, &s, 0, &d, 0, 0), IPSECIF_ERR_EXIST);
    /* The policies stay while one sharer is left. */
    assert_int_equal(ipsecif_if_delete_tunnel(t.ctx, a), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_count(t.ctx), 4);
    assert_int_equal(ipsecif_spd_get(t.ctx, ib.policy_id[0], &(struct ipsecif_policy){0}),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_if_destroy(t.ctx, b), IPSECIF_OK);
    assert_int_equal(ipsecif_spd_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_walk_and_user(void **state)
{
    struct ipsecif_if *a, *b;
    struct test_ctx t;
    int x = 7;

    (void)state;
    test_ctx_new(&t, NULL);
    a = mkif(&t, "ipsec0");
    b = mkif(&t, "ipsec1");
    ipsecif_if_set_user(b, &x);
    assert_ptr_equal(ipsecif_if_get_user(b), &x);
    assert_null(ipsecif_if_get_user(a));
    assert_string_equal(ipsecif_if_name(b), "ipsec1");
    assert_int_equal(ipsecif_if_destroy(t.ctx, a), IPSECIF_OK);
    assert_int_equal(ipsecif_if_destroy(t.ctx, a), IPSECIF_ERR_ARG);
    test_ctx_free(&t);
}

static void test_max_nesting_knob(void **state)
{
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    assert_int_equal(ipsecif_if_max_nesting_get(t.ctx), IPSECIF_MAX_NESTING_DEFAULT);
    assert_int_equal(IPSECIF_MAX_NESTING_DEFAULT, 1);
    assert_int_equal(ipsecif_if_max_nesting_set(t.ctx, 0), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_if_max_nesting_set(t.ctx, -1), IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_if_max_nesting_set(t.ctx, IPSECIF_MAX_NESTING_MAX + 1),
                     IPSECIF_ERR_RANGE);
    assert_int_equal(ipsecif_if_max_nesting_get(t.ctx), 1);
    assert_int_equal(ipsecif_if_max_nesting_set(t.ctx, IPSECIF_MAX_NESTING_MAX), IPSECIF_OK);
    assert_int_equal(ipsecif_if_max_nesting_get(t.ctx), IPSECIF_MAX_NESTING_MAX);
    assert_int_equal(ipsecif_if_max_nesting_set(t.ctx, 2), IPSECIF_OK);
    assert_int_equal(ipsecif_if_max_nesting_get(t.ctx), 2);
    assert_int_equal(ipsecif_if_max_nesting_set(NULL, 2), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_if_max_nesting_get(NULL), IPSECIF_ERR_ARG);
    test_ctx_free(&t);
}

/* The count of link0 tunnels, which spares every inner UDP packet the
 * nesting check's lookup while there are none, follows every change. */
static void test_natt_count(void **state)
{
    struct ipsecif_addr s = test_addr("198.51.100.1"), d = test_addr("198.51.100.2");
    struct ipsecif_addr s6 = test_addr("2001:db8::1"), d6 = test_addr("2001:db8::2");
    const uint32_t natt = IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK2;
    struct ipsecif_if *a, *b;
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    a = mkif(&t, "ipsec0");
    b = mkif(&t, "ipsec1");
    /* Flags without a tunnel, a tunnel without link0: none. */
    assert_int_equal(ipsecif_if_set_flags(t.ctx, a, natt, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, b, &s6, 0, &d6, 0, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 0);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, a, &s, 0, &d, 0, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 1);
    /* link0 on and off with a tunnel set. */
    assert_int_equal(ipsecif_if_set_flags(t.ctx, b, natt, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 2);
    assert_int_equal(ipsecif_if_set_flags(t.ctx, b, IPSECIF_IFF_LINK2, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 1);
    /* A refused tunnel change (b onto a's pair without link0) changes nothing. */
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, b, &s, 0, &d, 0, 0), IPSECIF_ERR_EXIST);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 1);
    /* Moving a's tunnel keeps it counted once; deleting and destroying uncount. */
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, a, &s, 4501, &d, 4500, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 1);
    assert_int_equal(ipsecif_if_delete_tunnel(t.ctx, a), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 0);
    assert_int_equal(ipsecif_if_set_tunnel(t.ctx, a, &s, 0, &d, 0, 0), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 1);
    assert_int_equal(ipsecif_if_destroy(t.ctx, a), IPSECIF_OK);
    assert_int_equal(t.ctx->ifs.natt_tunnels, 0);
    test_ctx_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_defaults_mtu_flags),
        cmocka_unit_test(test_four_policies),
        cmocka_unit_test(test_bad_tunnels),
        cmocka_unit_test(test_fixed_reqid),
        cmocka_unit_test(test_clash_both_ways),
        cmocka_unit_test(test_rollback_third_add),
        cmocka_unit_test(test_natt_sharing),
        cmocka_unit_test(test_natt_count),
        cmocka_unit_test(test_walk_and_user),
        cmocka_unit_test(test_max_nesting_knob),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
