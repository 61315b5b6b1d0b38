/*
 * Writes a seed corpus for fuzz_input: genuine ESP packets (IPv4 and IPv6
 * inner, each algorithm the target's context knows) that a sender context
 * with the same keys produces. Usage: make_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"

static const char *outdir;
static int nseeds;
static uint8_t mode_byte;

static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    char path[512];
    FILE *f;
    size_t off = mode_byte & 0x80 ? meta->esp_off : 0;

    (void)user;
    (void)ifp;
    snprintf(path, sizeof(path), "%s/seed-%03d", outdir, nseeds++);
    f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    fputc(mode_byte, f);
    fwrite(pkt->base + pkt->off + off, 1, pkt->len - off, f);
    fclose(f);
    return 0;
}

static void deliver(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    (void)user;
    (void)ifp;
    (void)pkt;
}

static const struct ipsecif_port port = {
    .send_outer = send_outer,
    .deliver_inner = deliver,
    .random = ipsecif_crypto_mbedtls_random,
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

static struct ipsecif_addr addr4(uint8_t d)
{
    struct ipsecif_addr x;

    memset(&x, 0, sizeof(x));
    x.family = IPSECIF_AF_INET;
    x.bytes[0] = 198;
    x.bytes[1] = 51;
    x.bytes[2] = 100;
    x.bytes[3] = d;
    return x;
}

static size_t ping(uint8_t *p, int v6)
{
    size_t len = v6 ? 48 + 16 : 28 + 16;

    memset(p, 0, len);
    if (v6) {
        p[0] = 0x60;
        p[5] = (uint8_t)(len - 40);
        p[6] = 58;
        p[7] = 64;
        p[8] = 0x20;
        p[9] = 0x01;
        p[10] = 0x0d;
        p[11] = 0xb8;
        p[23] = 1;
        p[24] = 0x20;
        p[25] = 0x01;
        p[26] = 0x0d;
        p[27] = 0xb8;
        p[39] = 2;
        p[40] = 128;
    } else {
        p[0] = 0x45;
        p[3] = (uint8_t)len;
        p[8] = 64;
        p[9] = 1;
        p[12] = 192;
        p[14] = 2;
        p[15] = 1;
        p[16] = 203;
        p[18] = 113;
        p[19] = 1;
        p[20] = 8;
    }
    return len;
}

int main(int argc, char **argv)
{
    static const struct {
        uint32_t spi;
        uint8_t ealg, aalg;
        size_t ekl, akl;
        uint16_t port;
        uint32_t flags;
    } sas[] = {
        {0x100, IPSECIF_EALG_NULL, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, 0, 0},
        {0x101, IPSECIF_EALG_AES_GCM16, 0, 20, 0, 0, 0},
        {0x102, IPSECIF_EALG_AES_CBC, IPSECIF_AALG_HMAC_SHA2_256_128, 16, 32, 0, IPSECIF_SA_F_ESN},
        {0x103, IPSECIF_EALG_AES_GMAC, 0, 20, 0, 0, IPSECIF_SA_F_ESN},
        {0x104, IPSECIF_EALG_CHACHA20_POLY1305, 0, 36, 0, 4500, 0},
    };
    static const uint8_t key[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static uint8_t mem[1 << 20] __attribute__((aligned(16)));
    struct ipsecif_config cfg;
    struct ipsecif_ctx *ctx;
    struct ipsecif_if *ifp;
    struct ipsecif_if_info info;
    struct ipsecif_addr s = addr4(2), d = addr4(1);
    size_t i;
    int v6;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    ipsecif_config_default(&cfg);
    if (ipsecif_ctx_size(&cfg) > sizeof(mem) ||
        ipsecif_init(&ctx, mem, sizeof(mem), &cfg, &port, NULL, 0) != IPSECIF_OK ||
        ipsecif_if_create(ctx, "ipsec0", &ifp) != IPSECIF_OK) {
        return 1;
    }
    for (i = 0; i < sizeof(sas) / sizeof(sas[0]); i++) {
        struct ipsecif_sa_params p;
        uint32_t flags = IPSECIF_IFF_UP | IPSECIF_IFF_LINK1 | IPSECIF_IFF_LINK2;

        if (sas[i].port != 0) {
            flags |= IPSECIF_IFF_LINK0;
        }
        if (ipsecif_if_set_flags(ctx, ifp, flags, 0) != IPSECIF_OK ||
            ipsecif_if_set_tunnel(ctx, ifp, &s, 0, &d, 0, 0) != IPSECIF_OK ||
            ipsecif_if_get_info(ctx, ifp, &info) != IPSECIF_OK) {
            return 1;
        }
        for (v6 = 0; v6 < 2; v6++) {
            uint8_t buf[512];
            struct ipsecif_buf b;

            memset(&p, 0, sizeof(p));
            p.proto = IPSECIF_IPPROTO_ESP;
            p.mode = IPSECIF_MODE_TRANSPORT;
            p.ealg = sas[i].ealg;
            p.aalg = sas[i].aalg;
            p.spi = sas[i].spi;
            p.src = s;
            p.dst = d;
            p.natt_sport = sas[i].port;
            p.natt_dport = sas[i].port;
            p.reqid = info.reqid[v6 ? IPSECIF_IFPOL_V6_OUT : IPSECIF_IFPOL_V4_OUT];
            p.flags = sas[i].flags;
            p.ekey = key;
            p.ekey_len = sas[i].ekl;
            p.akey = key;
            p.akey_len = sas[i].akl;
            if (ipsecif_sa_add(ctx, &p, 0) != IPSECIF_OK) {
                return 1;
            }
            b.base = buf;
            b.cap = sizeof(buf);
            b.off = 128;
            b.len = ping(buf + 128, v6);
            mode_byte = (uint8_t)(sas[i].port != 0 ? 0xc0 | 8 : 8);
            if (ipsecif_if_output(ctx, ifp, &b, 1) != IPSECIF_OK) {
                return 1;
            }
            (void)ipsecif_sa_delete(ctx, IPSECIF_IPPROTO_ESP, NULL, &d, sas[i].spi);
        }
        (void)ipsecif_if_delete_tunnel(ctx, ifp);
    }
    ipsecif_deinit(ctx);
    printf("%d seeds written to %s\n", nseeds, outdir);
    return 0;
}
