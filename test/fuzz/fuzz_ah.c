/*
 * libFuzzer target: arbitrary bytes into AH (lib/ah): ipsecif_ah_locate and
 * ipsecif_ah_input on the bytes as a received packet, in a buffer of exactly
 * their size (or with the 4 bytes of tailroom ESN borrows); and
 * ipsecif_ah_output on them as a packet to protect, which whenever it
 * succeeds must give a packet that ipsecif_ah_input accepts and turns back
 * into the same bytes. The first byte picks the SA (HMAC-SHA1-96,
 * HMAC-SHA2-256-128 with ESN, HMAC-SHA2-512-256, AES-GMAC-128 with ESN) and,
 * with its top bit, the tailroom.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "ipsecif_crypto_mbedtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSA 4
#define HEAD 64

static struct ipsecif_ctx ctx;
static struct ipsecif_sa *sas[NSA];
static uint32_t bits[NSA][IPSECIF_REPLAY_WORDS_MAX];

static const struct ipsecif_port port = {
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

static void make_sa(unsigned i, uint8_t ealg, uint8_t aalg, size_t ekl, size_t akl, uint32_t flags)
{
    static const uint8_t key[64] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                    11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
    struct ipsecif_sa_params p;
    struct ipsecif_sa *sa = aligned_alloc(64, (sizeof(*sa) + 63) & ~(size_t)63);

    if (sa == NULL) {
        abort();
    }
    memset(sa, 0, sizeof(*sa));
    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_AH;
    p.ealg = ealg;
    p.aalg = aalg;
    p.ekey = key;
    p.ekey_len = ekl;
    p.akey = key;
    p.akey_len = akl;
    sa->proto = IPSECIF_IPPROTO_AH;
    sa->flags = flags;
    sa->replay_window = 64;
    sa->replay_bits = bits[i];
    if (ipsecif_ah_sa_init(port.crypto, sa, &p) != IPSECIF_OK) {
        abort();
    }
    sas[i] = sa;
}

static void setup(void)
{
    ctx.port = &port;
    make_sa(0, IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, 0);
    make_sa(1, IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 32, IPSECIF_SA_F_ESN);
    make_sa(2, IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA2_512_256, 0, 64, 0);
    make_sa(3, IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 20, 0, IPSECIF_SA_F_ESN);
}

/* Every run starts from the same SA state. */
static void sa_reset(unsigned i)
{
    sas[i]->seq_out = (sas[i]->flags & IPSECIF_SA_F_ESN) ? 0xffffffffu : 0;
    sas[i]->replay_top = sas[i]->seq_out;
    memset(bits[i], 0, sizeof(bits[i]));
}

static void touch(const struct ipsecif_buf *b)
{
    volatile uint8_t sink = 0;
    size_t i;

    for (i = 0; i < b->len; i++) {
        sink ^= b->base[b->off + i];
    }
    (void)sink;
}

/* The bytes as a received packet. */
static void as_input(unsigned i, const uint8_t *pkt, size_t len, size_t tail)
{
    uint8_t *mem = malloc(len + tail + 1);
    struct ipsecif_buf b = {mem, len + tail, 0, len};
    size_t off = 0;
    uint32_t spi = 0;
    uint8_t nh;

    if (mem == NULL) {
        abort();
    }
    memcpy(mem, pkt, len);
    if (ipsecif_ah_locate(&b, &off, &spi) == IPSECIF_OK) {
        sas[i]->spi = spi;
        if (ipsecif_ah_input(&ctx, sas[i], &b, off, &nh) == IPSECIF_OK) {
            touch(&b);
        }
    }
    free(mem);
}

/* The bytes as a packet to protect: output, then input must undo it. */
static void round_trip(unsigned i, const uint8_t *pkt, size_t len)
{
    size_t cap = HEAD + len + 4;
    uint8_t *mem = malloc(cap);
    struct ipsecif_buf b = {mem, cap, HEAD, len};
    size_t off = 0;
    uint32_t spi = 0;
    uint8_t nh = 0;

    if (mem == NULL) {
        abort();
    }
    memcpy(mem + HEAD, pkt, len);
    sas[i]->spi = 0x1234;
    if (ipsecif_ah_output(&ctx, sas[i], &b) == IPSECIF_OK) {
        if (ipsecif_ah_locate(&b, &off, &spi) != IPSECIF_OK || spi != 0x1234 ||
            ipsecif_ah_input(&ctx, sas[i], &b, off, &nh) != IPSECIF_OK || b.len != len) {
            abort();
        }
        /* Only the IPv4 checksum may differ: output leaves it recomputed. */
        if (len >= 20 && (pkt[0] >> 4) == 4) {
            if (memcmp(mem + b.off, pkt, 10) != 0 ||
                memcmp(mem + b.off + 12, pkt + 12, len - 12) != 0) {
                abort();
            }
        } else if (memcmp(mem + b.off, pkt, len) != 0) {
            abort();
        }
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    unsigned i;

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1) {
        return 0;
    }
    i = data[0] % NSA;
    sa_reset(i);
    as_input(i, data + 1, size - 1, (data[0] & 0x80) ? 4 : 0);
    sa_reset(i);
    round_trip(i, data + 1, size - 1);
    return 0;
}
