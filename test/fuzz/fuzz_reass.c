/*
 * libFuzzer target: the reassembler (lib/ip/reass.c) on a sequence of
 * packets, each in a buffer of exactly its size. Input: records of
 * [time step (1 byte)] [length (2 bytes, big endian)] [packet]. A
 * reassembler with small limits (4 slots, 16 fragments, 20000 bytes) takes
 * each packet. Whatever it hands out as a reassembled datagram must be a
 * sound whole datagram (length field equal to its length, IPv4 header
 * checksum right); it is then cut again by the fragmenter at an MTU from
 * the time byte, the pieces go to a second reassembler, and that must give
 * back the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipsecif/ipsecif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD 64
#define TAIL 32

static struct ipsecif_reass *mk(uint32_t slots, uint32_t frags, uint32_t bytes)
{
    struct ipsecif_reass_config c;
    struct ipsecif_reass *r = NULL;
    size_t n;
    void *mem;

    memset(&c, 0, sizeof(c));
    c.slots = slots;
    c.frags = frags;
    c.datagram_max = IPSECIF_REASS_DATAGRAM_MAX;
    c.bytes_max = bytes;
    c.headroom = HEAD;
    c.tailroom = TAIL;
    n = ipsecif_reass_mem_size(&c);
    mem = malloc(n);
    if (mem == NULL || ipsecif_reass_init(&r, mem, n, &c) != IPSECIF_OK) {
        abort();
    }
    return r;
}

static uint16_t sum16(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    size_t i;

    for (i = 0; i + 1 < n; i += 2) {
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return (uint16_t)~s;
}

static void check_whole(const struct ipsecif_buf *b)
{
    const uint8_t *p = ipsecif_buf_data(b);

    if (ipsecif_buf_headroom(b) < HEAD || ipsecif_buf_tailroom(b) < TAIL) {
        abort();
    }
    if ((p[0] >> 4) == 4) {
        size_t ihl = (size_t)(p[0] & 15) * 4;

        if (b->len < ihl || ((p[2] << 8) | p[3]) != (int)b->len || sum16(p, ihl) != 0 ||
            (p[6] & 0x3f) != 0 || p[7] != 0) {
            abort();
        }
    } else if ((p[0] >> 4) == 6) {
        if (b->len < 40 || ((p[4] << 8) | p[5]) + 40 != (int)b->len) {
            abort();
        }
    } else {
        abort();
    }
}

/* Cut the datagram again and put it together in a reassembler of its own. */
static void round_trip(struct ipsecif_reass *r2, const struct ipsecif_buf *b, uint32_t mtu,
                       uint64_t now)
{
    static uint8_t piece[70000];
    struct ipsecif_frag f;
    int rc = ipsecif_frag_start(&f, b, mtu, 0x1234);
    int last = IPSECIF_ERR_QUEUED;
    struct ipsecif_buf got;
    uint64_t toobig;
    int n = 0;

    if (rc != IPSECIF_OK) {
        return; /* DF, an IPv6 fragment of a fragment, odd options */
    }
    for (;;) {
        struct ipsecif_buf out = {piece, sizeof(piece), 0, 0};

        rc = ipsecif_frag_next(&f, &out);
        if (rc == IPSECIF_ERR_NOENT) {
            break;
        }
        if (rc != IPSECIF_OK || out.len > mtu) {
            abort();
        }
        n++;
        got = out;
        toobig = ipsecif_reass_stats_get(r2)->toobig;
        last = ipsecif_reass_input(r2, &got, now);
        if (last == IPSECIF_ERR_MALFORMED && ipsecif_reass_stats_get(r2)->toobig > toobig) {
            /* A routing header behind the Fragment header made the
             * unfragmentable part longer than the reassembler keeps. */
            return;
        }
        if (last != IPSECIF_OK && last != IPSECIF_ERR_QUEUED) {
            abort();
        }
    }
    if (n > 1) {
        const uint8_t *p = ipsecif_buf_data(b);
        const uint8_t *q;

        if (last != IPSECIF_OK || got.len != b->len) {
            abort();
        }
        q = ipsecif_buf_data(&got);
        /* IPv4: the identification may be new (it was 0), the checksum with it. */
        if ((p[0] >> 4) == 4) {
            if (memcmp(p, q, 4) != 0 || memcmp(p + 6, q + 6, 4) != 0 ||
                memcmp(p + 12, q + 12, b->len - 12) != 0) {
                abort();
            }
        } else if (memcmp(p, q, b->len) != 0) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ipsecif_reass *r;
    static struct ipsecif_reass *r2;
    static uint64_t now;
    static uint8_t copy[66000];
    size_t pos = 0;

    if (r == NULL) {
        r = mk(4, 16, 20000);
        r2 = mk(1, 8192, 0);
    }
    now += 100000; /* whatever the last input left runs out */
    ipsecif_reass_expire(r, now);
    ipsecif_reass_expire(r2, now + 100000);
    while (pos + 3 <= size) {
        uint8_t step = data[pos];
        size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
        uint8_t *pkt;
        struct ipsecif_buf b;
        int rc;

        pos += 3;
        if (len > size - pos) {
            len = size - pos;
        }
        /* An exact-size heap buffer, so a read past the packet is caught. */
        pkt = malloc(len > 0 ? len : 1);
        if (pkt == NULL) {
            abort();
        }
        memcpy(pkt, data + pos, len);
        pos += len;
        now += (uint64_t)(step & 0x3f) * 1000;
        b.base = pkt;
        b.cap = len;
        b.off = 0;
        b.len = len;
        rc = ipsecif_reass_input(r, &b, now);
        if (rc == IPSECIF_OK && b.base != pkt) {
            check_whole(&b);
            if (b.len <= sizeof(copy)) {
                struct ipsecif_buf c = {copy, sizeof(copy), 0, b.len};

                memcpy(copy, ipsecif_buf_data(&b), b.len);
                round_trip(r2, &c, 1280u + (uint32_t)(step >> 6) * 300u, now);
            }
        } else if (rc != IPSECIF_OK && rc != IPSECIF_ERR_QUEUED && rc != IPSECIF_ERR_MALFORMED &&
                   rc != IPSECIF_ERR_FULL) {
            abort();
        }
        free(pkt);
        if (ipsecif_reass_pending(r) > 4) {
            abort();
        }
    }
    return 0;
}
