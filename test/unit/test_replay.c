/* Anti-replay window and ESN inference (lib/sadb/replay.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"

#define OK IPSECIF_OK
#define RP IPSECIF_ERR_REPLAY

struct win {
    struct ipsecif_sa *sa;
    uint32_t bits[IPSECIF_REPLAY_WORDS_MAX];
    unsigned step;
};

static void win_init(struct win *w, uint32_t window, bool esn, uint64_t top)
{
    w->sa = calloc(1, sizeof(*w->sa));
    assert_non_null(w->sa);
    memset(w->bits, 0, sizeof(w->bits));
    w->sa->replay_window = window;
    w->sa->replay_bits = w->bits;
    w->sa->replay_top = top;
    w->sa->flags = esn ? IPSECIF_SA_F_ESN : 0;
    w->step = 0;
}

static void win_free(struct win *w)
{
    free(w->sa);
    w->sa = NULL;
}

/*
 * One numbered step: check seq_lo, expect rc (and, when accepted, the 64-bit
 * number want), then record it as a verified packet would be. A failed
 * check must leave the window exactly as it was.
 */
static void step(struct win *w, int line, uint32_t seq_lo, int rc, uint64_t want, bool update)
{
    uint32_t before_bits[IPSECIF_REPLAY_WORDS_MAX];
    uint64_t before_top = w->sa->replay_top;
    uint64_t seq = 0xdeadbeefULL;
    int got;

    w->step++;
    memcpy(before_bits, w->bits, sizeof(before_bits));
    got = ipsecif_replay_check(w->sa, seq_lo, &seq);
    if (got != rc || (rc == OK && seq != want)) {
        fail_msg("window %u esn %d: case %u (line %d): seq_lo 0x%08x: rc %d want %d, "
                 "seq 0x%016llx want 0x%016llx",
                 w->sa->replay_window, (w->sa->flags & IPSECIF_SA_F_ESN) != 0, w->step, line,
                 seq_lo, got, rc, (unsigned long long)seq, (unsigned long long)want);
    }
    /* check never changes state */
    assert_int_equal(w->sa->replay_top, before_top);
    assert_memory_equal(w->bits, before_bits, sizeof(before_bits));
    if (got == OK && update) {
        ipsecif_replay_update(w->sa, seq);
        assert_true(w->sa->replay_top >= before_top);
        /* now it is a duplicate */
        if (w->sa->replay_window != 0) {
            assert_int_equal(ipsecif_replay_check(w->sa, seq_lo, &seq), RP);
        }
    }
}

/* T: 32-bit case; TE: ESN case with the expected 64-bit number; TC: check only. */
#define T(s, rc) step(&w, __LINE__, (uint32_t)(s), (rc), (uint64_t)(uint32_t)(s), true)
#define TE(s, rc, want) step(&w, __LINE__, (uint32_t)(s), (rc), (want), true)
#define TC(s, rc, want) step(&w, __LINE__, (uint32_t)(s), (rc), (want), false)

/* Powers of two take a mask, the others a division. */
static const uint32_t windows[] = {32, 48, 64, 100, 1024, 4096};

/* Cases for 32-bit sequence numbers, written against the window size W. */
static void table_plain(uint32_t W)
{
    struct win w;
    uint32_t i, top;

    win_init(&w, W, false, 0);
    T(0, RP);         /* 0 is never sent */
    T(1, OK);         /* first packet */
    T(1, RP);         /* duplicate */
    T(2, OK);         /* in order */
    T(9, OK);         /* jump ahead */
    T(8, OK);         /* late but in window */
    T(7, OK);         /* late */
    T(8, RP);         /* late duplicate */
    T(3, OK);         /* still in window */
    T(W, OK);         /* top = W: window [1, W] */
    T(1, RP);         /* seen */
    T(4, OK);         /* W - 4 < W: unseen, accepted */
    T(W + 1, OK);     /* window [2, W + 1] */
    T(1, RP);         /* too old now: top - 1 = W */
    T(5, OK);         /* unseen, in the window */
    T(2, RP);         /* seen */
    T(W + 1, RP);     /* top itself */
    T(W + 2, OK);     /* window [3, W + 2] */
    T(2, RP);         /* too old */
    T(6, OK);         /* unseen */
    T(3 * W, OK);     /* far jump: whole window clears */
    T(3 * W, RP);     /* top duplicate */
    T(2 * W, RP);     /* exactly W below top: too old */
    T(2 * W + 1, OK); /* oldest in window, not seen (its slot held W+1 before) */
    T(2 * W + 1, RP);
    T(3 * W - 1, OK);
    T(W + 2, RP);     /* long gone */
    T(4 * W - 1, OK); /* jump by W - 1: every slot but that of 3W is cleared */
    T(3 * W, RP);     /* now the oldest in the window, and seen */
    T(3 * W - 1, RP); /* seen, and too old now */
    T(3 * W + 1, OK); /* slot reused from 2W + 1: cleared by the jump */
    win_free(&w);

    /* Ring wraparound: three full turns in order, each number once. */
    win_init(&w, W, false, 0);
    for (i = 1; i <= 3 * W; i++) {
        T(i, OK);
    }
    for (i = 2 * W + 1; i <= 3 * W; i++) {
        T(i, RP); /* every number of the window is seen */
    }
    T(2 * W, RP); /* the one below is too old */
    top = 3 * W;
    /* Every other number ahead, then fill the holes backwards. */
    for (i = 2; i <= W; i += 2) {
        T(top + i, OK);
    }
    for (i = 0; i < W / 2; i++) {
        T(top + W - 1 - 2 * i, OK);
    }
    for (i = 1; i <= W; i++) {
        T(top + i, RP);
    }
    /* 0xffffffff is the last valid number without ESN. */
    T(0xffffffffu, OK);
    T(0xffffffffu, RP);
    T(0xffffffffu - W, RP); /* too old */
    T(0xffffffffu - W + 1, OK);
    win_free(&w);
}

static void test_plain_windows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(windows); i++) {
        table_plain(windows[i]);
    }
}

/*
 * After a jump of d, exactly the numbers seen and still in the window are
 * replays: check every number around the window without recording it.
 */
static void test_jump_sweep(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(windows); k++) {
        uint32_t W = windows[k];
        uint32_t d;

        for (d = 1; d < 2 * W + 3; d += (d < 70 ? 1 : 61)) {
            struct win w;
            uint32_t top = 1000 + d;
            uint32_t x;

            win_init(&w, W, false, 0);
            T(1000, OK);
            T(999, OK);
            T(990, OK);
            T(top, OK);
            for (x = top > W + 5 ? top - W - 5 : 1; x <= top; x++) {
                bool seen = x == 1000 || x == 999 || x == 990 || x == top;
                bool old = top - x >= W;

                TC(x, old || seen ? RP : OK, x);
            }
            win_free(&w);
        }
    }
}

static void test_window_zero(void **state)
{
    struct win w;

    (void)state;
    win_init(&w, 0, false, 0);
    T(0, RP);
    T(5, OK);
    T(5, OK); /* no window: duplicates pass */
    T(1, OK);
    assert_int_equal(w.sa->replay_top, 5);
    T(100000, OK);
    assert_int_equal(w.sa->replay_top, 100000);
    win_free(&w);

    /* ESN still infers the high half, with an assumed window of 32. */
    win_init(&w, 0, true, 0xfffffff0ULL);
    TE(3, OK, 0x100000003ULL);
    assert_int_equal(w.sa->replay_top, 0x100000003ULL);
    TE(0xfffffff8u, OK, 0xfffffff8ULL);  /* within 32 below top: previous epoch */
    TE(0xffffff00u, OK, 0x1ffffff00ULL); /* further: taken as the next epoch */
    win_free(&w);
}

/* The number after the highest, at the ends of the number spaces: past
 * 2^32 - 1 without ESN and past 2^64 - 1 with it, there is none. */
static void test_next_at_the_ends(void **state)
{
    static const uint32_t ws[] = {0, 32, 64, 100};
    struct win w;
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(ws); i++) {
        win_init(&w, ws[i], false, 0);
        T(1, OK);
        T(2, OK);
        win_free(&w);
        win_init(&w, ws[i], false, 0xfffffffeULL);
        T(0xffffffffu, OK);
        T(0, RP);
        win_free(&w);
        win_init(&w, ws[i], true, 0xffffffffULL);
        TE(0, OK, 0x100000000ULL);
        TE(1, OK, 0x100000001ULL);
        win_free(&w);
        win_init(&w, ws[i], true, UINT64_MAX);
        TC(0, RP, 0);
        win_free(&w);
    }
}

/* ESN (RFC 4303 Appendix A.2) across the 2^32 boundary. */
static void table_esn(uint32_t W)
{
    const uint64_t E = 0x100000000ULL; /* one epoch */
    struct win w;
    uint32_t i;

    /* Fresh SA: the first epoch starts at 1. */
    win_init(&w, W, true, 0);
    TE(0, RP, 0);
    TE(0xffffffffu, RP, 0);         /* would be epoch -1 */
    TE(0xffffffffu - W + 2, RP, 0); /* bottom of an imaginary window: still before 0 */
    TE(1, OK, 1);
    TE(1, RP, 1);
    TE(2, OK, 2);
    win_free(&w);

    win_init(&w, W, true, 0);
    for (i = 0; i < W; i++) {
        TE((uint32_t)(E - W + i), OK, E - W + i);
    }
    /* top = E - 1: window [E - W, E - 1], all seen */
    TE(0xffffffffu, RP, 0);
    TE((uint32_t)(E - W), RP, 0);
    /* Below the window: A.2 takes it as the next epoch; the ICV decides. */
    TC((uint32_t)(E - W - 1), OK, E + (uint32_t)(E - W - 1));
    win_free(&w);

    /* Crossing: top = E - 16, packets after the wrap carry small seq_lo. */
    win_init(&w, W, true, E - 16);
    TE(3, OK, E + 3); /* seq_lo < bottom: next epoch (case A) */
    /* top = E + 3: window spans two subspaces (case B) */
    TE(0xfffffff8u, OK, E - 8); /* late packet from the previous epoch */
    TE(0xfffffff8u, RP, E - 8); /* its duplicate */
    TE(0xffffffffu, OK, E - 1);
    TE(0, OK, E); /* seq_lo 0 is valid in epoch 1 (number 2^32) */
    TE(0, RP, E);
    TE(1, OK, E + 1);
    TE(3, RP, E + 3);
    /* W below top is just under the window bottom: A.2 reads it as the far
     * end of the current epoch, a future number. */
    TC((uint32_t)(E + 3 - W), OK, E + (uint32_t)(E + 3 - W));
    TE((uint32_t)(E + 4 - W), OK, E + 4 - W); /* oldest in window */
    TE(4, OK, E + 4);
    TE(W + 10, OK, E + W + 10);     /* jump within epoch 1 */
    TE(0xfffffffeu, OK, 2 * E - 2); /* window in one subspace (case A): same epoch */
    TE(5, OK, 2 * E + 5);           /* and across into epoch 2 */
    win_free(&w);

    /* The last epoch: the number may not pass 2^64 - 1. */
    win_init(&w, W, true, UINT64_MAX - 5);
    TE(0xfffffffbu, OK, UINT64_MAX - 4);
    TE(0xffffffffu, OK, UINT64_MAX);
    TE(1, RP, 0); /* would be epoch 2^32: no such number */
    win_free(&w);
}

static void test_esn_windows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(windows); i++) {
        table_esn(windows[i]);
    }
}

/* Until the first number is accepted the bitmap may hold anything (a slot
 * reused from an earlier SA): it must not be trusted. */
static void test_stale_bitmap(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(windows); k++) {
        uint32_t W = windows[k];
        struct win w;

        win_init(&w, W, false, 0);
        memset(w.bits, 0xff, sizeof(w.bits));
        T(5, OK);
        T(3, OK);
        T(1, OK);
        T(W, OK);
        T(W - 1, OK);
        win_free(&w);
    }
}

/* Window sizes that are multiples of 32 but not powers of two work too. */
static void test_odd_multiple(void **state)
{
    struct win w;
    uint32_t i;

    (void)state;
    win_init(&w, 96, false, 0);
    for (i = 1; i <= 500; i += 3) {
        T(i, OK);
    }
    /* top 499, seen: 1 mod 3 */
    T(499, RP);
    T(498, OK);
    T(403, RP); /* too old */
    T(404, OK); /* oldest in the window */
    T(406, RP); /* seen */
    T(405, OK);
    win_free(&w);
}

/*
 * Differential test against a plain reference: the RFC rule over a record
 * of seen numbers, on random sequences with jumps, reorders and duplicates.
 * The record is a ring keyed by seq mod 2^16 holding the full number; a
 * slot is only overwritten by a number 2^16 later, when the old one is far
 * out of any window.
 */
#define REF_SLOTS 65536u
static uint64_t ref_seen[REF_SLOTS];

static uint64_t rng_state = 0x243F6A8885A308D3ULL;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void test_random_vs_reference(void **state)
{
    size_t k;

    (void)state;
    for (k = 0; k < IPSECIF_ARRAY_SIZE(windows); k++) {
        uint32_t W = windows[k];
        struct win w;
        uint64_t top = 0;
        unsigned n, accepted = 0, rejected = 0;

        memset(ref_seen, 0, sizeof(ref_seen));
        win_init(&w, W, false, 0);
        for (n = 0; n < 200000; n++) {
            uint32_t r = rnd();
            int64_t delta;
            uint64_t s, seq;
            int want, got;

            /* Mostly near the top, sometimes far ahead or far behind. */
            switch (r & 7) {
            case 0:
                delta = (int64_t)(rnd() % (3 * W)) + 1;
                break;
            case 1:
                delta = -(int64_t)(rnd() % (3 * W));
                break;
            case 2:
                delta = -(int64_t)(rnd() % 16); /* likely a duplicate */
                break;
            default:
                delta = (int64_t)(rnd() % 8) - (int64_t)(rnd() % (W + 8));
                break;
            }
            if ((int64_t)top + delta <= 0) {
                continue;
            }
            s = (uint64_t)((int64_t)top + delta);
            if (s > top) {
                want = OK;
            } else if (top - s >= W || ref_seen[s % REF_SLOTS] == s) {
                want = RP;
            } else {
                want = OK;
            }
            got = ipsecif_replay_check(w.sa, (uint32_t)s, &seq);
            if (got != want) {
                fail_msg("window %u step %u: seq %llu top %llu: got %d want %d", W, n,
                         (unsigned long long)s, (unsigned long long)top, got, want);
            }
            if (got == OK) {
                accepted++;
                assert_int_equal(seq, s);
                ipsecif_replay_update(w.sa, seq);
                ref_seen[s % REF_SLOTS] = s;
                if (s > top) {
                    top = s;
                }
            } else {
                rejected++;
            }
            assert_int_equal(w.sa->replay_top, top);
        }
        /* The mix exercised both outcomes plenty. */
        assert_true(accepted > 20000);
        assert_true(rejected > 20000);
        win_free(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_windows),       cmocka_unit_test(test_jump_sweep),
        cmocka_unit_test(test_window_zero),         cmocka_unit_test(test_esn_windows),
        cmocka_unit_test(test_stale_bitmap),        cmocka_unit_test(test_odd_multiple),
        cmocka_unit_test(test_random_vs_reference), cmocka_unit_test(test_next_at_the_ends),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
