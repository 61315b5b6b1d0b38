/* The context: configuration checks, memory rules, port checks, timers,
 * counters and error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "test_util.h"

static void test_config_checks(void **state)
{
    struct ipsecif_config cfg;

    (void)state;
    ipsecif_config_default(&cfg);
    assert_true(ipsecif_ctx_size(&cfg) > sizeof(struct ipsecif_ctx));
    assert_int_equal(ipsecif_ctx_size(NULL), 0);
    cfg.replay_window_max = 33;
    assert_int_equal(ipsecif_ctx_size(&cfg), 0);
    cfg.replay_window_max = IPSECIF_REPLAY_WINDOW_MAX + 32;
    assert_int_equal(ipsecif_ctx_size(&cfg), 0);
    ipsecif_config_default(&cfg);
    cfg.max_sas = 0;
    assert_int_equal(ipsecif_ctx_size(&cfg), 0);
    ipsecif_config_default(&cfg);
    cfg.max_policies = 0;
    assert_int_equal(ipsecif_ctx_size(&cfg), 0);
    /* More capacity costs more memory. */
    ipsecif_config_default(&cfg);
    {
        size_t small = ipsecif_ctx_size(&cfg);

        cfg.max_sas *= 2;
        assert_true(ipsecif_ctx_size(&cfg) > small);
    }
}

static void test_init_errors(void **state)
{
    struct ipsecif_config cfg;
    struct mock_port *m = mock_port_new();
    struct ipsecif_port port = m->port;
    struct ipsecif_crypto_ops ops = *m->port.crypto;
    struct ipsecif_ctx *ctx = NULL;
    size_t need;
    uint8_t *mem;

    (void)state;
    ipsecif_config_default(&cfg);
    need = ipsecif_ctx_size(&cfg);
    mem = aligned_alloc(16, (need + 32 + 15) & ~(size_t)15);
    assert_non_null(mem);
    assert_int_equal(ipsecif_init(NULL, mem, need, &cfg, &port, m, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_init(&ctx, NULL, need, &cfg, &port, m, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_init(&ctx, mem, need - 1, &cfg, &port, m, 0), IPSECIF_ERR_NOROOM);
    assert_int_equal(ipsecif_init(&ctx, mem + 8, need, &cfg, &port, m, 0), IPSECIF_ERR_NOROOM);
    port.send_outer = NULL;
    assert_int_equal(ipsecif_init(&ctx, mem, need, &cfg, &port, m, 0), IPSECIF_ERR_ARG);
    port = m->port;
    port.random = NULL;
    assert_int_equal(ipsecif_init(&ctx, mem, need, &cfg, &port, m, 0), IPSECIF_ERR_ARG);
    port = m->port;
    ops.slot_size = IPSECIF_CRYPTO_SLOT_SIZE + 16;
    port.crypto = &ops;
    assert_int_equal(ipsecif_init(&ctx, mem, need, &cfg, &port, m, 0), IPSECIF_ERR_UNSUPPORTED);
    port = m->port;
    m->random_fail = 1;
    assert_int_equal(ipsecif_init(&ctx, mem, need, &cfg, &port, m, 0), IPSECIF_ERR_RANDOM);
    m->random_fail = 0;
    assert_null(ctx);
    /* Optional callbacks may be missing. */
    port.log = NULL;
    port.km_event = NULL;
    port.deliver_icmp = NULL;
    assert_int_equal(ipsecif_init(&ctx, mem, need, &cfg, &port, m, 0), IPSECIF_OK);
    assert_non_null(ctx);
    ipsecif_deinit(ctx);
    free(mem);
    mock_port_free(m);
}

static void test_deinit_wipes(void **state)
{
    static const uint8_t key[20] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x01, 0x02, 0x03, 0x04};
    struct ipsecif_sa_params p;
    struct test_ctx t;
    size_t i;
    uint8_t *mem;

    (void)state;
    test_ctx_new(&t, NULL);
    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.ekey = key;
    p.ekey_len = sizeof(key);
    p.spi = 0x1234;
    p.src = test_addr("198.51.100.1");
    p.dst = test_addr("198.51.100.2");
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, 0), IPSECIF_OK);
    assert_int_equal(ipsecif_if_create(t.ctx, "ipsec0", NULL), IPSECIF_OK);
    mem = t.mem + TEST_GUARD;
    ipsecif_deinit(t.ctx);
    for (i = 0; i < t.mem_len; i++) {
        assert_int_equal(mem[i], 0);
    }
    /* test_ctx_free deinits again: must be harmless on wiped memory. */
    test_ctx_free(&t);
}

static void test_timer_deadlines(void **state)
{
    static const uint8_t key[20] = {1,  2,  3,  4,  5,  6,  7, 8, 9, 10,
                                    11, 12, 13, 14, 15, 16, 1, 2, 3, 4};
    struct ipsecif_sa_params p;
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    assert_int_equal(ipsecif_next_deadline(t.ctx), UINT64_MAX);
    assert_int_equal(ipsecif_timer(t.ctx, 2000), UINT64_MAX);
    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.ekey = key;
    p.ekey_len = sizeof(key);
    p.spi = 0x1234;
    p.src = test_addr("198.51.100.1");
    p.dst = test_addr("198.51.100.2");
    p.soft.addtime = 10;
    p.hard.addtime = 20;
    assert_int_equal(ipsecif_sa_add(t.ctx, &p, 2000), IPSECIF_OK);
    assert_int_equal(ipsecif_timer(t.ctx, 2000), 12000);
    assert_int_equal(ipsecif_next_deadline(t.ctx), 12000);
    assert_int_equal(ipsecif_timer(t.ctx, 12000), 22000);
    assert_int_equal(t.mock->n_events, 1);
    assert_int_equal(t.mock->events[0].expire.hard, 0);
    assert_int_equal(ipsecif_timer(t.ctx, 22000), UINT64_MAX);
    assert_int_equal(t.mock->n_events, 2);
    assert_int_equal(t.mock->events[1].expire.hard, 1);
    assert_int_equal(t.mock->events[1].expire.reason, IPSECIF_EXPIRE_ADDTIME);
    assert_int_equal(ipsecif_sa_count(t.ctx), 0);
    test_ctx_free(&t);
}

static void test_strerror(void **state)
{
    static const int codes[] = {
        IPSECIF_OK,
        IPSECIF_ERR_ARG,
        IPSECIF_ERR_STATE,
        IPSECIF_ERR_EXIST,
        IPSECIF_ERR_NOENT,
        IPSECIF_ERR_FULL,
        IPSECIF_ERR_BUSY,
        IPSECIF_ERR_UNSUPPORTED,
        IPSECIF_ERR_RANGE,
        IPSECIF_ERR_KEYLEN,
        IPSECIF_ERR_NOROOM,
        IPSECIF_ERR_TOOBIG,
        IPSECIF_ERR_MALFORMED,
        IPSECIF_ERR_AUTH,
        IPSECIF_ERR_REPLAY,
        IPSECIF_ERR_NOSA,
        IPSECIF_ERR_POLICY,
        IPSECIF_ERR_BADPAD,
        IPSECIF_ERR_BADSPI,
        IPSECIF_ERR_DISCARD,
        IPSECIF_ERR_DOWN,
        IPSECIF_ERR_SEQWRAP,
        IPSECIF_ERR_ECN,
        IPSECIF_ERR_PROTO,
        IPSECIF_ERR_NESTED,
        IPSECIF_ERR_QUEUED,
        IPSECIF_ERR_PORT,
        IPSECIF_ERR_CRYPTO,
        IPSECIF_ERR_RANDOM,
        IPSECIF_ERR_INTERNAL,
    };
    size_t i, j;

    (void)state;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *s = ipsecif_strerror(codes[i]);

        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (j = 0; j < i; j++) {
            assert_string_not_equal(s, ipsecif_strerror(codes[j]));
        }
    }
    assert_string_equal(ipsecif_strerror(-999), "unknown error");
}

static void test_stats_reset(void **state)
{
    struct test_ctx t;

    (void)state;
    test_ctx_new(&t, NULL);
    t.ctx->stats.in_auth = 5;
    assert_int_equal(ipsecif_stats_get(t.ctx)->in_auth, 5);
    ipsecif_stats_reset(t.ctx);
    assert_int_equal(ipsecif_stats_get(t.ctx)->in_auth, 0);
    assert_null(ipsecif_stats_get(NULL));
    test_ctx_free(&t);
}

static void test_input_args(void **state)
{
    struct test_ctx t;
    struct test_buf tb;

    (void)state;
    test_ctx_new(&t, NULL);
    test_buf_init(&tb, 0);
    assert_int_equal(ipsecif_input(NULL, &tb.b, 0), IPSECIF_ERR_ARG);
    assert_int_equal(ipsecif_input(t.ctx, NULL, 0), IPSECIF_ERR_ARG);
    tb.b.len = tb.b.cap + 1;
    assert_int_equal(ipsecif_input(t.ctx, &tb.b, 0), IPSECIF_ERR_ARG);
    test_ctx_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_checks), cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_deinit_wipes),  cmocka_unit_test(test_timer_deadlines),
        cmocka_unit_test(test_strerror),      cmocka_unit_test(test_stats_reset),
        cmocka_unit_test(test_input_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
