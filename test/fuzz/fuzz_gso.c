/*
 * libFuzzer target: bytes as the Linux port reads them from a TUN device
 * with virtio-net headers (ports/linux-tun/linux_gso.c): the first 10 bytes
 * are the virtio header, the rest the packet, in a buffer of exactly its
 * size. ipsecif_linux_gso_prepare() must refuse it or cut it into segments
 * that each fit the room promised and carry a right TCP checksum; every
 * segment, and the packet itself, then goes through the coalescer, whose
 * output must be at most IPSECIF_LINUX_GSO_MAX bytes and, when it is a GSO
 * packet, cut again into segments of no more than gso_size payload.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linux_gso.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEGCAP 8400

static uint8_t gro_buf[IPSECIF_LINUX_GSO_MAX];
static uint8_t seg[SEGCAP];
static uint8_t reseg[SEGCAP];

static void check_tcp(const uint8_t *p, size_t len)
{
    size_t l4 = p[0] >> 4 == 6 ? 40 : (size_t)(p[0] & 15) * 4;
    uint32_t sum;

    if (l4 >= len) {
        abort();
    }
    if (p[0] >> 4 == 6) {
        sum = ipsecif_linux_csum_add(0, p + 8, 32) + (uint32_t)(len - l4) + 6;
    } else {
        sum = ipsecif_linux_csum_add(0, p + 12, 8) + (uint32_t)(len - l4) + 6;
    }
    sum = ipsecif_linux_csum_add(sum, p + l4, len - l4);
    if (ipsecif_linux_csum_fold(sum) != 0xffff) {
        abort();
    }
}

static void emit(void *arg, const struct ipsecif_linux_vnet *h, const uint8_t *pkt, size_t len)
{
    struct ipsecif_linux_gso g;
    uint8_t *copy;
    size_t n;

    (void)arg;
    if (len > IPSECIF_LINUX_GSO_MAX) {
        abort();
    }
    if (h->gso_type == IPSECIF_LINUX_VNET_GSO_NONE) {
        return;
    }
    copy = malloc(len);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, pkt, len);
    if (ipsecif_linux_gso_prepare(copy, len, h, SEGCAP, &g) == IPSECIF_LINUX_GSO_OK) {
        while ((n = ipsecif_linux_gso_next(&g, reseg)) != 0) {
            if (n > ipsecif_linux_gso_seg_max(&g)) {
                abort();
            }
            check_tcp(reseg, n);
        }
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipsecif_linux_vnet h;
    struct ipsecif_linux_gso g;
    struct ipsecif_linux_gro gro;
    uint8_t *pkt;
    size_t len;
    size_t n;

    if (size < IPSECIF_LINUX_VNET_HDR_LEN) {
        return 0;
    }
    ipsecif_linux_vnet_get(data, &h);
    len = size - IPSECIF_LINUX_VNET_HDR_LEN;
    pkt = malloc(len > 0 ? len : 1);
    if (pkt == NULL) {
        return 0;
    }
    memcpy(pkt, data + IPSECIF_LINUX_VNET_HDR_LEN, len);
    ipsecif_linux_gro_init(&gro, gro_buf, sizeof(gro_buf));
    if (ipsecif_linux_gso_prepare(pkt, len, &h, SEGCAP, &g) == IPSECIF_LINUX_GSO_OK) {
        unsigned count = 0;

        while ((n = ipsecif_linux_gso_next(&g, seg)) != 0) {
            if (n > SEGCAP || n > ipsecif_linux_gso_seg_max(&g)) {
                abort();
            }
            check_tcp(seg, n);
            ipsecif_linux_gro_add(&gro, seg, n, emit, NULL);
            count++;
        }
        if (ipsecif_linux_gso_count(&g) > 1 && count != ipsecif_linux_gso_count(&g)) {
            abort();
        }
    }
    ipsecif_linux_gro_add(&gro, pkt, len, emit, NULL);
    ipsecif_linux_gro_flush(&gro, emit, NULL);
    free(pkt);
    return 0;
}
