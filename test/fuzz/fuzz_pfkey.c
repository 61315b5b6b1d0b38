/*
 * libFuzzer target: untrusted PF_KEY messages into ipsecif_pfkey_send() on a
 * KAME and a Linux endpoint of one context (a promiscuous third endpoint
 * gets copies; per-socket policy messages included). Every input must be
 * answered or refused without a read outside the buffer; every message
 * handed back must be whole.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ipsecif_ctx *ctx;
static uint32_t ep_kame;
static uint32_t ep_linux;

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
    (void)user;
    (void)ifp;
    (void)pkt;
}

static void pfkey_deliver(void *user, uint32_t ep_id, const uint8_t *msg, size_t len)
{
    volatile uint8_t sink = 0;
    size_t i;
    uint16_t units;

    (void)user;
    (void)ep_id;
    if (len < 16 || len % 8 != 0) {
        abort();
    }
    memcpy(&units, msg + 4, 2);
    if ((size_t)units * 8 != len) {
        abort();
    }
    /* Touch every byte so a bad length shows up under ASan. */
    for (i = 0; i < len; i++) {
        sink ^= msg[i];
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
    .pfkey_deliver = pfkey_deliver,
};

static void setup(void)
{
    static const uint8_t promisc[16] = {2, 11, 0, 1, 2, 0};
    struct ipsecif_config cfg;
    uint32_t ep_promisc;
    size_t need;
    void *mem;

    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 2;
    cfg.max_policies = 16;
    cfg.max_sas = 8;
    cfg.max_pfkey_endpoints = 3;
    need = ipsecif_ctx_size(&cfg);
    mem = aligned_alloc(16, (need + 15) & ~(size_t)15);
    if (mem == NULL || ipsecif_init(&ctx, mem, need, &cfg, &port, NULL, 0) != IPSECIF_OK ||
        ipsecif_pfkey_open(ctx, IPSECIF_PFKEY_DIALECT_KAME, &ep_kame) != IPSECIF_OK ||
        ipsecif_pfkey_open(ctx, IPSECIF_PFKEY_DIALECT_LINUX, &ep_linux) != IPSECIF_OK ||
        ipsecif_pfkey_open(ctx, IPSECIF_PFKEY_DIALECT_KAME, &ep_promisc) != IPSECIF_OK ||
        ipsecif_pfkey_send(ctx, ep_promisc, promisc, sizeof(promisc), 0) != IPSECIF_OK) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t now = 1000;
    uint8_t *copy;

    if (ctx == NULL) {
        setup();
    }
    /* An exact-size heap copy, so ASan sees any read past the end. */
    copy = malloc(size != 0 ? size : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, data, size);
    (void)ipsecif_pfkey_send(ctx, ep_linux, copy, size, now);
    (void)ipsecif_pfkey_send(ctx, ep_kame, copy, size, now);
    free(copy);
    now += 1000;
    /* Keep the tables from filling up for good. */
    if (ipsecif_sa_count(ctx) >= 6) {
        (void)ipsecif_sa_flush(ctx, 0);
    }
    if (ipsecif_spd_count(ctx) >= 12) {
        (void)ipsecif_spd_flush(ctx);
    }
    if (ipsecif_spd_sock_count(ctx) >= 12) {
        (void)ipsecif_spd_sock_close(ctx, ep_linux, IPSECIF_SOCK_ALL);
        (void)ipsecif_spd_sock_close(ctx, ep_kame, IPSECIF_SOCK_ALL);
    }
    (void)ipsecif_timer(ctx, now);
    return 0;
}
