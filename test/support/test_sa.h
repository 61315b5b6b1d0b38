/* SAs made outside a context, for the ESP and AH tests: the SA in its own
 * 64-byte aligned memory with a replay bitmap, keyed by the backend. */
#ifndef IPSECIF_TEST_SA_H
#define IPSECIF_TEST_SA_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/port.h"

struct ipsecif_sa;

struct tsa {
    struct ipsecif_sa *sa;
    uint32_t *bits;
};

/* Key bytes of a pattern a seed picks. */
void test_key_pattern(uint8_t *k, size_t n, uint8_t seed);

/* Make t an SA of proto (ESP or AH) with these algorithms, keys, SPI,
 * flags and replay window: the SA init's result (IPSECIF_OK or its error;
 * t is made either way, free it with test_sa_free()). */
int test_sa_make(const struct ipsecif_crypto_ops *ops, uint8_t proto, struct tsa *t, uint8_t ealg,
                 uint8_t aalg, const uint8_t *ek, size_t ekl, const uint8_t *ak, size_t akl,
                 uint32_t spi, uint32_t flags, uint32_t window);

/* Wipe the keys and free t. */
void test_sa_free(const struct ipsecif_crypto_ops *ops, struct tsa *t);

#endif /* IPSECIF_TEST_SA_H */
