/*
 * Fragments benchmark, reported as ratios measured in one run: a datagram
 * cut for a 1400-byte path (ipsecif_frag_start/next) and put together
 * again (ipsecif_reass_input), against copying its bytes twice with
 * memcpy (what the two steps must at least do: the fragmenter writes each
 * piece, the reassembler copies each piece in). IPv4 and IPv6, 3000, 8000
 * and 65000 bytes; the median of 7 rounds. Every round checks that the
 * datagram came back intact. `--quick` runs fewer iterations.
 *
 * usage: bench_frag [--quick]
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipsecif/ipsecif.h"

#define ROUNDS 7
#define MTU 1400
#define MAXLEN 65000

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp);
    return v[n / 2];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A whole datagram of len bytes: UDP-numbered header and a byte pattern. */
static void make(uint8_t *p, size_t len, bool v6)
{
    size_t i;

    memset(p, 0, 40);
    for (i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 13 + 5);
    }
    if (v6) {
        p[0] = 0x60;
        p[1] = 0;
        p[2] = 0;
        p[3] = 0;
        put16(p + 4, (uint16_t)(len - 40));
        p[6] = IPSECIF_IPPROTO_UDP;
        p[7] = 64;
    } else {
        uint32_t s = 0;

        p[0] = 0x45;
        p[1] = 0;
        put16(p + 2, (uint16_t)len);
        put16(p + 4, 0x4242);
        put16(p + 6, 0);
        p[8] = 64;
        p[9] = IPSECIF_IPPROTO_UDP;
        put16(p + 10, 0);
        for (i = 0; i < 20; i += 2) {
            s += (uint32_t)(p[i] << 8 | p[i + 1]);
        }
        while (s >> 16) {
            s = (s & 0xffff) + (s >> 16);
        }
        put16(p + 10, (uint16_t)~s);
    }
}

static struct ipsecif_reass *reass_new(void)
{
    struct ipsecif_reass_config c;
    struct ipsecif_reass *r;
    void *mem;
    size_t n;

    memset(&c, 0, sizeof(c));
    c.slots = 4;
    c.frags = 64;
    c.datagram_max = IPSECIF_REASS_DATAGRAM_MAX;
    c.headroom = 256;
    c.tailroom = 128;
    n = ipsecif_reass_mem_size(&c);
    mem = malloc(n);
    if (mem == NULL || ipsecif_reass_init(&r, mem, n, &c) != IPSECIF_OK) {
        fprintf(stderr, "bench_frag: reassembler\n");
        exit(1);
    }
    return r;
}

/* One datagram cut and put together; false when it did not come back. */
static bool cut_join(struct ipsecif_reass *r, const uint8_t *d, size_t len, uint8_t *piece,
                     uint64_t t)
{
    struct ipsecif_buf in = {(uint8_t *)d, len, 0, len};
    struct ipsecif_frag f;
    struct ipsecif_buf got = {0};
    int rc = IPSECIF_ERR_QUEUED;

    if (ipsecif_frag_start(&f, &in, MTU, 7) != IPSECIF_OK) {
        return false;
    }
    for (;;) {
        struct ipsecif_buf out = {piece, MTU, 0, 0};

        if (ipsecif_frag_next(&f, &out) != IPSECIF_OK) {
            break;
        }
        got = out;
        rc = ipsecif_reass_input(r, &got, t);
    }
    return rc == IPSECIF_OK && got.len == len && ipsecif_buf_data(&got)[len - 1] == d[len - 1];
}

int main(int argc, char **argv)
{
    static uint8_t d[MAXLEN];
    static uint8_t copy[2][MAXLEN];
    static uint8_t piece[MTU];
    static const size_t sizes[] = {3000, 8000, MAXLEN};
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    struct ipsecif_reass *r = reass_new();
    int fam;
    size_t i;

    printf("fragments: cut for a %u-byte path and reassembled, against 2 x memcpy\n"
           "(medians of %d rounds)\n\n",
           MTU, ROUNDS);
    printf("  %-5s %6s %12s %12s %8s\n", "family", "bytes", "frag+reass", "2 x memcpy", "ratio");
    for (fam = 0; fam < 2; fam++) {
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t len = sizes[i];
            int iters = (quick ? 200000 : 2000000) / (int)(len / 1000 + 1);
            double fr[ROUNDS];
            double mc[ROUNDS];
            double ra[ROUNDS];
            int k;

            make(d, len, fam == 1);
            for (k = 0; k < ROUNDS; k++) {
                double t0 = now_ns();
                int j;

                for (j = 0; j < iters; j++) {
                    if (!cut_join(r, d, len, piece, (uint64_t)j)) {
                        fprintf(stderr, "bench_frag: datagram of %zu bytes lost\n", len);
                        return 1;
                    }
                }
                fr[k] = (now_ns() - t0) / iters;
                t0 = now_ns();
                for (j = 0; j < iters; j++) {
                    memcpy(copy[0], d, len);
                    memcpy(copy[1], copy[0], len);
                    __asm__ __volatile__("" : : "r"(copy[1]) : "memory");
                }
                mc[k] = (now_ns() - t0) / iters;
                ra[k] = fr[k] / mc[k];
            }
            printf("  %-5s %6zu %9.0f ns %9.0f ns %8.2f\n", fam == 0 ? "IPv4" : "IPv6", len,
                   median(fr, ROUNDS), median(mc, ROUNDS), median(ra, ROUNDS));
        }
    }
    return 0;
}
