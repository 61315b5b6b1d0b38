/*
 * libFuzzer target: untrusted outer packets into ipsecif_input() and
 * ipsecif_input_esp(), against a context with interfaces and SAs of several
 * algorithms (NULL+HMAC so the fuzzer can reach past the ICV check only by
 * luck, AES-GCM, AES-CBC+HMAC), plus NAT-T. Every input must be refused or
 * delivered without a read outside the buffer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input_ctx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[4096];
    struct ipsecif_buf b;
    struct ipsecif_outer_meta meta;
    size_t head;

    if (ctx == NULL) {
        setup();
    }
    if (size < 1 || size > 2048) {
        return 0;
    }
    /* The first byte picks the entry point and the headroom. */
    head = data[0] & 0x3f;
    data++;
    size--;
    memcpy(buf + head, data, size);
    b.base = buf;
    b.off = head;
    b.len = size;
    b.cap = head + size + (data[-1] & 0x40 ? 32 : 0);
    if ((data[-1] & 0x80) == 0) {
        (void)ipsecif_input(ctx, &b, 1);
    } else {
        memset(&meta, 0, sizeof(meta));
        meta.family = IPSECIF_AF_INET;
        meta.src = addr4(198, 51, 100, 2);
        meta.dst = addr4(198, 51, 100, 1);
        meta.sport = (data[-1] & 0x40) ? 4500 : 0;
        meta.dport = meta.sport;
        (void)ipsecif_input_esp(ctx, &meta, &b, 1);
    }
    return 0;
}
