/*
 * libFuzzer target: vectors of untrusted outer packets into
 * ipsecif_input_batch() and ipsecif_input_esp_batch(), against the context
 * of fuzz_input.c (interfaces and SAs of several algorithms, NAT-T). The
 * input is a flag byte, then packets each behind a 2-byte length. Every
 * packet must be refused or delivered without a read outside its buffer,
 * and the verdicts must be the packet count the call returned.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input_ctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPKT 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t bufs[MAXPKT][2100];
    struct ipsecif_buf b[MAXPKT];
    struct ipsecif_buf *v[MAXPKT];
    struct ipsecif_outer_meta meta[MAXPKT];
    int res[MAXPKT];
    size_t n = 0, i;
    uint8_t flags;
    int got, ok = 0;

    if (ctx == NULL) {
        setup();
    }
    if (size < 1 || size > 8192) {
        return 0;
    }
    flags = data[0];
    data++;
    size--;
    while (n < MAXPKT && size >= 2) {
        size_t len = (size_t)data[0] << 8 | data[1];

        data += 2;
        size -= 2;
        if (len > size || len > 2048) {
            len = size < 2048 ? size : 2048;
        }
        /* Packets without tailroom: a read past one ends outside it. */
        memcpy(bufs[n] + 48, data, len);
        b[n].base = bufs[n];
        b[n].off = 48;
        b[n].len = len;
        b[n].cap = 48 + len;
        v[n] = &b[n];
        memset(&meta[n], 0, sizeof(meta[n]));
        meta[n].family = IPSECIF_AF_INET;
        meta[n].src = addr4(198, 51, 100, 2);
        meta[n].dst = addr4(198, 51, 100, 1);
        meta[n].sport = (flags >> (n % 8)) & 1 ? 4500 : 0;
        meta[n].dport = meta[n].sport;
        data += len;
        size -= len;
        n++;
    }
    if ((flags & 0x80) == 0) {
        got = ipsecif_input_batch(ctx, v, n, 1, res);
    } else {
        got = ipsecif_input_esp_batch(ctx, meta, v, n, 1, res);
    }
    for (i = 0; i < n; i++) {
        ok += res[i] == IPSECIF_OK;
    }
    if (got != ok) {
        abort();
    }
    return 0;
}
