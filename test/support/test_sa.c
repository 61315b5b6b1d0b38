#include "test_sa.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ah/ah.h"
#include "core/ctx.h"

void test_key_pattern(uint8_t *k, size_t n, uint8_t seed)
{
    size_t i;

    for (i = 0; i < n; i++) {
        k[i] = (uint8_t)(seed + i * 13 + (i >> 3));
    }
}

int test_sa_make(const struct ipsecif_crypto_ops *ops, uint8_t proto, struct tsa *t, uint8_t ealg,
                 uint8_t aalg, const uint8_t *ek, size_t ekl, const uint8_t *ak, size_t akl,
                 uint32_t spi, uint32_t flags, uint32_t window)
{
    struct ipsecif_sa_params p;
    size_t size = (sizeof(struct ipsecif_sa) + 63) & ~(size_t)63;

    t->sa = aligned_alloc(64, size);
    t->bits = calloc(IPSECIF_REPLAY_WORDS_MAX, sizeof(uint32_t));
    assert_non_null(t->sa);
    assert_non_null(t->bits);
    memset(t->sa, 0, sizeof(*t->sa));
    t->sa->proto = proto;
    t->sa->spi = spi;
    t->sa->flags = flags;
    t->sa->replay_window = window;
    t->sa->replay_bits = t->bits;
    memset(&p, 0, sizeof(p));
    p.proto = proto;
    p.ealg = ealg;
    p.aalg = aalg;
    p.spi = spi;
    p.flags = flags;
    p.replay_window = window;
    p.ekey = ek;
    p.ekey_len = ekl;
    p.akey = ak;
    p.akey_len = akl;
    return proto == IPSECIF_IPPROTO_AH ? ipsecif_ah_sa_init(ops, t->sa, &p)
                                       : ipsecif_esp_sa_init(ops, t->sa, &p);
}

void test_sa_free(const struct ipsecif_crypto_ops *ops, struct tsa *t)
{
    ipsecif_esp_sa_wipe(ops, t->sa);
    free(t->sa);
    free(t->bits);
    t->sa = NULL;
    t->bits = NULL;
}
