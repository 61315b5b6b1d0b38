/*
 * libFuzzer target: untrusted bytes as ipsecifd -H's state file
 * (examples/router/host_state.c). Each input is parsed as it is, and once
 * more with a correct end line appended (so the records reach the library
 * past the CRC); what parses is applied to a context, written again, and
 * the text written must parse again to the same number of records.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_state.h"
#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"
#include "router_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_POLS 16

static struct ipsecif_ctx *ctx;
static int defaults[64];
static char text[65536];

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

static void setup(void)
{
    struct ipsecif_config cfg;
    size_t need;
    void *mem;

    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 2;
    cfg.max_policies = MAX_POLS;
    cfg.max_sas = 4;
    need = ipsecif_ctx_size(&cfg);
    mem = aligned_alloc(16, (need + 15) & ~(size_t)15);
    if (mem == NULL || rtr_sysctl_count() > 64 ||
        ipsecif_init(&ctx, mem, need, &cfg, &port, NULL, 0) != IPSECIF_OK) {
        abort();
    }
    rtr_state_defaults(ctx, defaults);
}

static void one(const char *buf, size_t len)
{
    struct rtr_state st;
    struct rtr_state again;
    char err[RTR_STATE_ERR_SIZE];
    long n;
    size_t i;

    if (rtr_state_parse(buf, len, MAX_POLS, &st, err) == 0 &&
        rtr_state_apply(ctx, &st, 1000, err) == 0) {
        n = rtr_state_build(ctx, defaults, text, sizeof(text));
        if (n < 0 || (size_t)n >= sizeof(text) ||
            rtr_state_parse(text, (size_t)n, MAX_POLS, &again, err) != 0 ||
            again.npols != st.npols) {
            abort();
        }
        rtr_state_free(&again);
        (void)ipsecif_spd_flush(ctx);
        for (i = 0; i < rtr_sysctl_count(); i++) {
            (void)rtr_sysctl_write(ctx, i, defaults[i]);
        }
    }
    rtr_state_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy;
    size_t lines = 0;
    size_t i;
    int k;

    if (ctx == NULL) {
        setup();
    }
    /* Exact-size heap copies, so ASan sees any read past the end. */
    copy = malloc(size + 32);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, data, size);
    one(copy, size);
    for (i = 0; i < size; i++) {
        lines += data[i] == '\n';
    }
    k = snprintf(copy + size, 32, "end %lu %08x\n", (unsigned long)(lines > 0 ? lines - 1 : 0),
                 rtr_state_crc32(data, size));
    if (k > 0 && k < 32) {
        one(copy, size + (size_t)k);
    }
    free(copy);
    return 0;
}
