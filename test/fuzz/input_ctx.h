/*
 * The context fuzz_input.c and fuzz_input_batch.c feed: interfaces with
 * tunnels and SAs of several algorithms (NULL+HMAC, so that the fuzzer can
 * reach past the ICV check only by luck, AES-GCM, AES-CBC+HMAC with ESN,
 * AES-GMAC, ChaCha20-Poly1305 with NAT-T). Included by each target (one
 * translation unit each); setup() makes ctx once.
 */
#ifndef IPSECIF_FUZZ_INPUT_CTX_H
#define IPSECIF_FUZZ_INPUT_CTX_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"

static struct ipsecif_ctx *ctx;

static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    (void)user;
    (void)ifp;
    (void)meta;
    (void)pkt;
    return 0;
}

static void deliver(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    volatile uint8_t sink = 0;
    size_t i;

    (void)user;
    (void)ifp;
    /* Touch every delivered byte so a bad length shows up under ASan. */
    for (i = 0; i < pkt->len; i++) {
        sink ^= pkt->base[pkt->off + i];
    }
    (void)sink;
}

static int rnd(void *user, uint8_t *out, size_t len)
{
    (void)user;
    memset(out, 0x5c, len);
    return 0;
}

static const struct ipsecif_port port = {
    .send_outer = send_outer,
    .deliver_inner = deliver,
    .random = rnd,
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

static struct ipsecif_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct ipsecif_addr x;

    memset(&x, 0, sizeof(x));
    x.family = IPSECIF_AF_INET;
    x.bytes[0] = a;
    x.bytes[1] = b;
    x.bytes[2] = c;
    x.bytes[3] = d;
    return x;
}

static void add_sa(uint32_t spi, uint8_t ealg, uint8_t aalg, size_t ekl, size_t akl, uint16_t port_,
                   uint32_t reqid, uint32_t flags)
{
    static const uint8_t key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct ipsecif_sa_params p;

    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = ealg;
    p.aalg = aalg;
    p.spi = spi;
    p.src = addr4(198, 51, 100, 2);
    p.dst = addr4(198, 51, 100, 1);
    p.natt_sport = port_;
    p.natt_dport = port_;
    p.reqid = reqid;
    p.replay_window = 128;
    p.flags = flags;
    p.ekey = key;
    p.ekey_len = ekl;
    p.akey = key;
    p.akey_len = akl;
    if (ipsecif_sa_add(ctx, &p, 0) != IPSECIF_OK) {
        abort();
    }
}

static void setup(void)
{
    struct ipsecif_config cfg;
    struct ipsecif_if *ifp;
    struct ipsecif_if_info info;
    struct ipsecif_addr s = addr4(198, 51, 100, 1), d = addr4(198, 51, 100, 2);
    size_t need;
    void *mem;

    ipsecif_config_default(&cfg);
    need = ipsecif_ctx_size(&cfg);
    mem = aligned_alloc(16, (need + 15) & ~(size_t)15);
    if (mem == NULL || ipsecif_init(&ctx, mem, need, &cfg, &port, NULL, 0) != IPSECIF_OK) {
        abort();
    }
    if (ipsecif_if_create(ctx, "ipsec0", &ifp) != IPSECIF_OK ||
        ipsecif_if_set_flags(ctx, ifp, IPSECIF_IFF_UP | IPSECIF_IFF_LINK1 | IPSECIF_IFF_LINK2, 0) !=
            IPSECIF_OK ||
        ipsecif_if_set_tunnel(ctx, ifp, &s, 0, &d, 0, 0) != IPSECIF_OK ||
        ipsecif_if_get_info(ctx, ifp, &info) != IPSECIF_OK) {
        abort();
    }
    add_sa(0x100, IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, 0,
           info.reqid[IPSECIF_IFPOL_V4_IN], 0);
    add_sa(0x101, IPSECIF_EALG_AES_GCM16, 0, 20, 0, 0, info.reqid[IPSECIF_IFPOL_V4_IN], 0);
    add_sa(0x102, IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 16, 32, 0,
           info.reqid[IPSECIF_IFPOL_V6_IN], IPSECIF_SA_F_ESN);
    add_sa(0x103, IPSECIF_EALG_AES_GMAC, 0, 20, 0, 0, info.reqid[IPSECIF_IFPOL_V6_IN],
           IPSECIF_SA_F_ESN);
    add_sa(0x104, IPSECIF_EALG_CHACHA20_POLY1305, 0, 36, 0, 4500, 1, 0);
}

#endif /* IPSECIF_FUZZ_INPUT_CTX_H */
