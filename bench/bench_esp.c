/*
 * ESP benchmark, reported as ratios measured in one run:
 *
 *  1. ESP output on context A plus input on context B (AES-128-GCM-16,
 *     IPv4 in IPv4) against raw AES-128-GCM seal + open of the same payload
 *     sizes in the same crypto library, once per crypto backend (Mbed TLS,
 *     and OpenSSL and intel-ipsec-mb when built), then the raw ciphers and
 *     the ESP paths of the libraries against each other.
 *  1d. The batch path (ipsecif_if_output_batch on A, ipsecif_input_batch
 *     on B, vectors of 32) against each library's raw AES-128-GCM run in
 *     the same burst shape (32 seals, then 32 opens; for intel-ipsec-mb the
 *     faster of its job API and its direct API), at 64 and 1400 bytes,
 *     beside part 1's per-packet ratios, with the targets (ESP/raw <= 1.25
 *     at 64 bytes, <= 1.05 at 1400) and whether they are met.
 *  1e. The core alone: the batch path of 1d over a cipher that does no
 *     work (a fixed tag), so what is left is the library's own cost per
 *     packet (parsing, policy and SA lookup, headers, replay, counters).
 *  2. The same per-packet path with 1, 1000 and 100000 interfaces installed
 *     (each with its tunnel, four policies and two SAs), relative to 1.
 *  3. Heap allocations per packet, counted by replacing malloc and friends
 *     in this executable while the timed loops run.
 *
 * Nothing is asserted on time. The program fails only when a packet does not
 * make it through intact. `--quick` runs fewer iterations and at most 1000
 * interfaces (smoke run). `--batch` runs parts 1d and 1e only, `--backend
 * NAME` measures one crypto backend ("none": the core alone), `--iters N`
 * sets the iterations of the timed loops.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/gcm.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"
#if IPSECIF_BENCH_OPENSSL
#include <openssl/evp.h>

#include "ipsecif_crypto_openssl.h"
#endif
#if IPSECIF_BENCH_IPSECMB
#include <intel-ipsec-mb.h>

#include "ipsecif_crypto_ipsecmb.h"
#endif

/* ---- Allocation counting: glibc's allocator under a counting wrapper ---- */

/* Sanitizer runtimes own malloc; counting is off in such builds. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define COUNT_ALLOCS 0
#endif
#endif
#ifndef COUNT_ALLOCS
#define COUNT_ALLOCS 1
#endif

static volatile bool counting;
static unsigned long long alloc_calls;

#if COUNT_ALLOCS
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

void *malloc(size_t size)
{
    if (counting) {
        alloc_calls++;
    }
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (counting) {
        alloc_calls++;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (counting) {
        alloc_calls++;
    }
    return __libc_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (counting) {
        alloc_calls++;
    }
    return __libc_memalign(align, size);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* Does the counting wrapper see calls made from elsewhere? One call through
 * a volatile pointer, so the compiler cannot drop it. */
static bool counting_works(void)
{
    void *(*volatile alloc)(size_t) = malloc;
    void (*volatile release)(void *) = free;
    void *p;

    alloc_calls = 0;
    counting = true;
    p = alloc(32);
    counting = false;
    release(p);
    return COUNT_ALLOCS && alloc_calls == 1;
}

/* ---- Small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static struct ipsecif_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
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

/*
 * Outer addresses of tunnel i, all from documentation ranges: the remote end
 * is 203.0.113.(i % 256), the local end walks 198.51.100.0/24 and then
 * 192.0.2.0/24, so up to 131072 distinct pairs.
 */

static struct ipsecif_addr local_addr(uint32_t i)
{
    uint32_t hi = i / 256;

    return hi < 256 ? v4(198, 51, 100, (uint8_t)hi) : v4(192, 0, 2, (uint8_t)(hi - 256));
}

static struct ipsecif_addr remote_addr(uint32_t i)
{
    return v4(203, 0, 113, (uint8_t)(i % 256));
}

/* An inner IPv4 UDP packet of total length len (>= 28), 192.0.2.1 -> 203.0.113.1. */
static void build_inner(uint8_t *p, size_t len)
{
    size_t i;
    uint32_t sum = 0;

    memset(p, 0, 28);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)len);
    p[8] = 64;
    p[9] = IPSECIF_IPPROTO_UDP;
    p[12] = 192;
    p[13] = 0;
    p[14] = 2;
    p[15] = 1;
    p[16] = 203;
    p[17] = 0;
    p[18] = 113;
    p[19] = 1;
    for (i = 0; i < 20; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    put16(p + 10, (uint16_t)~sum);
    put16(p + 20, 40000);
    put16(p + 22, 9);
    put16(p + 24, (uint16_t)(len - 20));
    for (i = 28; i < len; i++) {
        p[i] = (uint8_t)i;
    }
}

/* ---- The two contexts and their port ---- */

#define BUF_SIZE 2048
#define HEADROOM IPSECIF_HEADROOM

struct side {
    const char *name;
    struct ipsecif_ctx *ctx;
    void *mem;
    size_t mem_len;
    struct ipsecif_if **ifs;
    uint32_t nifs;
    /* Outbound: where the last outer packet was. */
    const uint8_t *out_data;
    size_t out_len;
    unsigned long long sent;
    /* Inbound: deliveries, and the bytes expected when verifying. */
    unsigned long long delivered;
    const uint8_t *expect;
    size_t expect_len;
    unsigned long long mismatches;
};

static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    struct side *s = user;

    (void)ifp;
    (void)meta;
    s->out_data = ipsecif_buf_data(pkt);
    s->out_len = pkt->len;
    s->sent++;
    return 0;
}

static void deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct side *s = user;

    (void)ifp;
    s->delivered++;
    if (s->expect != NULL &&
        (pkt->len != s->expect_len || memcmp(ipsecif_buf_data(pkt), s->expect, pkt->len) != 0)) {
        s->mismatches++;
    }
}

static void port_log(void *user, int level, const char *msg)
{
    const struct side *s = user;

    if (level <= IPSECIF_LOG_WARN) {
        fprintf(stderr, "[%s] %s\n", s->name, msg);
    }
}

/* The crypto backend is set per part before the contexts are made. */
static struct ipsecif_port port = {
    .send_outer = send_outer,
    .deliver_inner = deliver_inner,
    .random = ipsecif_crypto_mbedtls_random,
    .log = port_log,
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

static void config_for(struct ipsecif_config *cfg, uint32_t nifs)
{
    ipsecif_config_default(cfg);
    cfg->max_interfaces = nifs;
    cfg->max_policies = 4 * nifs + 16;
    cfg->max_sas = 2 * nifs + 16;
    cfg->replay_window_max = 64;
}

static int side_init(struct side *s, const char *name, uint32_t max_ifs)
{
    struct ipsecif_config cfg;
    size_t size;
    int rc;

    memset(s, 0, sizeof(*s));
    s->name = name;
    config_for(&cfg, max_ifs);
    size = ipsecif_ctx_size(&cfg);
    if (size == 0) {
        fprintf(stderr, "ipsecif_ctx_size refused %u interfaces\n", max_ifs);
        return -1;
    }
    s->mem_len = (size + 63) & ~(size_t)63;
    s->mem = aligned_alloc(64, s->mem_len);
    s->ifs = calloc(max_ifs, sizeof(s->ifs[0]));
    if (s->mem == NULL || s->ifs == NULL) {
        fprintf(stderr, "out of memory (%zu bytes)\n", s->mem_len);
        return -1;
    }
    rc = ipsecif_init(&s->ctx, s->mem, s->mem_len, &cfg, &port, s, 1);
    if (rc != IPSECIF_OK) {
        fprintf(stderr, "ipsecif_init: %s\n", ipsecif_strerror(rc));
        return -1;
    }
    return 0;
}

static void side_fini(struct side *s)
{
    if (s->ctx != NULL) {
        ipsecif_deinit(s->ctx);
    }
    free(s->mem);
    free(s->ifs);
    memset(s, 0, sizeof(*s));
}

static int sa_add(struct side *s, uint32_t spi, const struct ipsecif_addr *src,
                  const struct ipsecif_addr *dst, uint32_t reqid, const uint8_t *key)
{
    struct ipsecif_sa_params p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.spi = spi;
    p.src = *src;
    p.dst = *dst;
    p.reqid = reqid;
    p.replay_window = 64;
    p.ekey = key;
    p.ekey_len = 20;
    rc = ipsecif_sa_add(s->ctx, &p, 1);
    if (rc != IPSECIF_OK) {
        fprintf(stderr, "[%s] ipsecif_sa_add spi 0x%x: %s\n", s->name, spi, ipsecif_strerror(rc));
    }
    return rc;
}

/* Interface i on both sides: tunnel, up, and the two SAs for inner IPv4. */
static int add_tunnel(struct side *a, struct side *b, uint32_t i, const uint8_t *key)
{
    struct ipsecif_addr la = local_addr(i);
    struct ipsecif_addr ra = remote_addr(i);
    struct side *sides[2] = {a, b};
    struct ipsecif_if_info info;
    char name[16];
    int k;
    int rc;

    snprintf(name, sizeof(name), "ipsec%u", i);
    for (k = 0; k < 2; k++) {
        struct side *s = sides[k];
        const struct ipsecif_addr *src = k == 0 ? &la : &ra;
        const struct ipsecif_addr *dst = k == 0 ? &ra : &la;
        struct ipsecif_if *ifp;

        rc = ipsecif_if_create(s->ctx, name, &ifp);
        if (rc == IPSECIF_OK) {
            rc = ipsecif_if_set_tunnel(s->ctx, ifp, src, 0, dst, 0, 1);
        }
        if (rc == IPSECIF_OK) {
            rc = ipsecif_if_set_flags(s->ctx, ifp, ipsecif_if_get_flags(ifp) | IPSECIF_IFF_UP, 1);
        }
        if (rc == IPSECIF_OK) {
            rc = ipsecif_if_get_info(s->ctx, ifp, &info);
        }
        if (rc != IPSECIF_OK) {
            fprintf(stderr, "[%s] %s: %s\n", s->name, name, ipsecif_strerror(rc));
            return rc;
        }
        s->ifs[i] = ifp;
        s->nifs = i + 1;
        /* SPI 2i+0x1000 carries A->B, 2i+0x1001 B->A. */
        rc = sa_add(s, 0x1000 + 2 * i, &la, &ra,
                    info.reqid[k == 0 ? IPSECIF_IFPOL_V4_OUT : IPSECIF_IFPOL_V4_IN], key);
        if (rc == IPSECIF_OK) {
            rc = sa_add(s, 0x1001 + 2 * i, &ra, &la,
                        info.reqid[k == 0 ? IPSECIF_IFPOL_V4_IN : IPSECIF_IFPOL_V4_OUT], key);
        }
        if (rc != IPSECIF_OK) {
            return rc;
        }
    }
    return IPSECIF_OK;
}

/* ---- One packet through both contexts ---- */

static uint8_t txmem[BUF_SIZE];

/* Output of inner[0..len) on A's interface, then input of the result on B. */
static int one_packet(struct side *a, struct side *b, struct ipsecif_if *ifp, const uint8_t *inner,
                      size_t len, uint64_t now)
{
    struct ipsecif_buf pkt;
    int rc;

    memcpy(txmem + HEADROOM, inner, len);
    pkt.base = txmem;
    pkt.cap = sizeof(txmem);
    pkt.off = HEADROOM;
    pkt.len = len;
    rc = ipsecif_if_output(a->ctx, ifp, &pkt, now);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    /* The outer packet is still in txmem: feed that very buffer to B. */
    if (a->out_data < txmem || a->out_data + a->out_len > txmem + sizeof(txmem)) {
        return IPSECIF_ERR_INTERNAL;
    }
    pkt.off = (size_t)(a->out_data - txmem);
    pkt.len = a->out_len;
    return ipsecif_input(b->ctx, &pkt, now);
}

/* Send one packet with full verification; false if it did not arrive intact. */
static bool verify_packet(struct side *a, struct side *b, struct ipsecif_if *ifp,
                          const uint8_t *inner, size_t len)
{
    unsigned long long before = b->delivered;
    int rc;

    b->expect = inner;
    b->expect_len = len;
    b->mismatches = 0;
    rc = one_packet(a, b, ifp, inner, len, 2);
    b->expect = NULL;
    if (rc != IPSECIF_OK || b->delivered != before + 1 || b->mismatches != 0) {
        fprintf(stderr, "packet of %zu bytes did not arrive intact: %s (%d)\n", len,
                ipsecif_strerror(rc), rc);
        return false;
    }
    return true;
}

struct timing {
    double ns;     /* median ns per packet */
    double allocs; /* heap calls per packet over the timed loops */
    bool ok;
};

/* Median over reps of iters packets through ifs[k] (round robin over nk). */
static struct timing time_esp(struct side *a, struct side *b, struct ipsecif_if **ifs, size_t nk,
                              const uint8_t *inner, size_t len, unsigned iters, unsigned reps)
{
    struct timing t = {0, 0, true};
    double per[16];
    unsigned long long before = b->delivered;
    unsigned r;
    unsigned i;

    for (i = 0; i < iters / 4 + 1; i++) {
        if (one_packet(a, b, ifs[i % nk], inner, len, 2) != IPSECIF_OK) {
            t.ok = false;
            return t;
        }
    }
    alloc_calls = 0;
    for (r = 0; r < reps; r++) {
        uint64_t t0;
        int bad = 0;

        counting = true;
        t0 = now_ns();
        for (i = 0; i < iters; i++) {
            bad |= one_packet(a, b, ifs[i % nk], inner, len, 2);
        }
        per[r] = (double)(now_ns() - t0) / iters;
        counting = false;
        if (bad != 0) {
            t.ok = false;
        }
    }
    if (b->delivered - before !=
        (unsigned long long)(iters / 4 + 1) + (unsigned long long)iters * reps) {
        t.ok = false;
    }
    t.ns = median(per, reps);
    t.allocs = (double)alloc_calls / ((double)iters * reps);
    return t;
}

/* One raw seal then open of p[0..len) in place with nonce and 8 bytes of
 * AAD, in the library's own context c; true if both succeeded. */
typedef bool (*raw_packet_fn)(void *c, const uint8_t *nonce, const uint8_t *aad, uint8_t *p,
                              size_t len);

/* The raw loop shared by the libraries: the same copies and nonces as ESP. */
static struct timing raw_loop(void *c, raw_packet_fn one, const uint8_t *key, const uint8_t *inner,
                              size_t len, unsigned iters, unsigned reps)
{
    struct timing t = {0, 0, true};
    uint8_t nonce[12];
    uint8_t aad[8] = {0, 0, 0x10, 0, 0, 0, 0, 0};
    double per[16];
    unsigned r;
    unsigned i;
    uint64_t seq = 0;

    memcpy(nonce, key + 16, 4);
    alloc_calls = 0;
    for (r = 0; r < reps + 1; r++) {
        uint64_t t0;
        bool good = true;

        /* Round 0 is the warm-up. */
        counting = r > 0;
        t0 = now_ns();
        for (i = 0; i < (r == 0 ? iters / 4 + 1 : iters); i++) {
            uint8_t *p = txmem + HEADROOM;

            seq++;
            memcpy(p, inner, len);
            memcpy(nonce + 4, &seq, 8);
            memcpy(aad + 4, &seq, 4);
            good &= one(c, nonce, aad, p, len);
        }
        if (r > 0) {
            per[r - 1] = (double)(now_ns() - t0) / iters;
        }
        counting = false;
        if (!good || memcmp(txmem + HEADROOM, inner, len) != 0) {
            t.ok = false;
        }
    }
    t.ns = median(per, reps);
    t.allocs = (double)alloc_calls / ((double)iters * reps);
    return t;
}

static bool mbedtls_packet(void *c, const uint8_t *nonce, const uint8_t *aad, uint8_t *p,
                           size_t len)
{
    mbedtls_gcm_context *gcm = c;
    uint8_t tag[16];

    return mbedtls_gcm_crypt_and_tag(gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, 12, aad, 8, p, p,
                                     sizeof(tag), tag) == 0 &&
           mbedtls_gcm_auth_decrypt(gcm, len, nonce, 12, aad, 8, tag, sizeof(tag), p, p) == 0;
}

/* Raw Mbed TLS AES-128-GCM. */
static struct timing time_raw(const uint8_t *key, const uint8_t *inner, size_t len, unsigned iters,
                              unsigned reps)
{
    struct timing t = {0, 0, false};
    mbedtls_gcm_context gcm;

    mbedtls_gcm_init(&gcm);
    if (mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 128) == 0) {
        t = raw_loop(&gcm, mbedtls_packet, key, inner, len, iters, reps);
    }
    mbedtls_gcm_free(&gcm);
    return t;
}

#if IPSECIF_BENCH_OPENSSL
static bool openssl_packet(void *c, const uint8_t *nonce, const uint8_t *aad, uint8_t *p,
                           size_t len)
{
    EVP_CIPHER_CTX *ctx = c;
    uint8_t tag[16];
    uint8_t fin[16];
    int n;

    return EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 1, NULL) == 1 &&
           EVP_CipherUpdate(ctx, NULL, &n, aad, 8) == 1 &&
           EVP_CipherUpdate(ctx, p, &n, p, (int)len) == 1 &&
           EVP_CipherFinal_ex(ctx, fin, &n) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, sizeof(tag), tag) == 1 &&
           EVP_CipherInit_ex2(ctx, NULL, NULL, nonce, 0, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, sizeof(tag), tag) == 1 &&
           EVP_CipherUpdate(ctx, NULL, &n, aad, 8) == 1 &&
           EVP_CipherUpdate(ctx, p, &n, p, (int)len) == 1 && EVP_CipherFinal_ex(ctx, fin, &n) == 1;
}

/* Raw OpenSSL AES-128-GCM, as an application would drive EVP: one context
 * with the key schedule, re-initialized with each nonce. */
static struct timing time_raw_openssl(const uint8_t *key, const uint8_t *inner, size_t len,
                                      unsigned iters, unsigned reps)
{
    struct timing t = {0, 0, false};
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (ctx != NULL && EVP_CipherInit_ex2(ctx, EVP_aes_128_gcm(), key, NULL, 1, NULL) == 1) {
        t = raw_loop(ctx, openssl_packet, key, inner, len, iters, reps);
    }
    EVP_CIPHER_CTX_free(ctx);
    return t;
}
#endif

#if IPSECIF_BENCH_IPSECMB
struct mb_raw {
    IMB_MGR *mgr;
    struct gcm_key_data *key;
};

static bool ipsecmb_packet(void *c, const uint8_t *nonce, const uint8_t *aad, uint8_t *p,
                           size_t len)
{
    struct mb_raw *r = c;
    struct gcm_context_data ctx;
    uint8_t tag[16];
    uint8_t want[16];

    IMB_AES128_GCM_ENC(r->mgr, r->key, &ctx, p, p, len, nonce, aad, 8, tag, sizeof(tag));
    IMB_AES128_GCM_DEC(r->mgr, r->key, &ctx, p, p, len, nonce, aad, 8, want, sizeof(want));
    return memcmp(tag, want, sizeof(tag)) == 0;
}

/* Raw intel-ipsec-mb AES-128-GCM, as an application drives its direct API:
 * a manager on the code path the backend runs, and the precomputed key. */
static struct timing time_raw_ipsecmb(const uint8_t *key, const uint8_t *inner, size_t len,
                                      unsigned iters, unsigned reps)
{
    static const struct {
        const char *name;
        void (*init)(IMB_MGR *m);
    } paths[] = {{"sse", init_mb_mgr_sse},
                 {"avx", init_mb_mgr_avx},
                 {"avx2", init_mb_mgr_avx2},
                 {"avx512", init_mb_mgr_avx512}};
    const char *arch = ipsecif_crypto_ipsecmb_arch();
    struct timing t = {0, 0, false};
    struct mb_raw r;
    size_t i;

    r.mgr = alloc_mb_mgr(0);
    r.key = aligned_alloc(64, (sizeof(struct gcm_key_data) + 63) & ~(size_t)63);
    if (r.mgr != NULL && r.key != NULL && arch != NULL) {
        for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
            /* "avx2", or "avx2+sse-sha" (the HMACs elsewhere): the GCM path. */
            size_t n = strcspn(arch, "+");

            if (strlen(paths[i].name) == n && strncmp(paths[i].name, arch, n) == 0) {
                paths[i].init(r.mgr);
                IMB_AES128_GCM_PRE(r.mgr, key, r.key);
                t = raw_loop(&r, ipsecmb_packet, key, inner, len, iters, reps);
                break;
            }
        }
    }
    free(r.key);
    if (r.mgr != NULL) {
        free_mb_mgr(r.mgr);
    }
    return t;
}
#endif

/* ---- Part 1d: bursts ---- */

#define BURST 32

/* One raw burst: n packets in place, each with its nonce and 8-byte AAD;
 * the tags go to tag[i]. */
struct burst_in {
    uint8_t *p[BURST];
    uint8_t nonce[BURST][12];
    uint8_t aad[BURST][8];
    uint8_t tag[BURST][16];
    size_t len;
    size_t n;
};

static uint8_t burst_mem[BURST][BUF_SIZE];

static void *mbedtls_raw_new(const uint8_t *key)
{
    mbedtls_gcm_context *gcm = malloc(sizeof(*gcm));

    if (gcm != NULL) {
        mbedtls_gcm_init(gcm);
        if (mbedtls_gcm_setkey(gcm, MBEDTLS_CIPHER_ID_AES, key, 128) != 0) {
            mbedtls_gcm_free(gcm);
            free(gcm);
            gcm = NULL;
        }
    }
    return gcm;
}

static void mbedtls_raw_free(void *c)
{
    mbedtls_gcm_free(c);
    free(c);
}

static bool mbedtls_burst(void *c, const struct burst_in *in)
{
    struct burst_in *b = (struct burst_in *)(uintptr_t)in;
    bool ok = true;
    size_t i;

    for (i = 0; i < b->n; i++) {
        ok &= mbedtls_gcm_crypt_and_tag(c, MBEDTLS_GCM_ENCRYPT, b->len, b->nonce[i], 12, b->aad[i],
                                        8, b->p[i], b->p[i], 16, b->tag[i]) == 0;
    }
    for (i = 0; i < b->n; i++) {
        ok &= mbedtls_gcm_auth_decrypt(c, b->len, b->nonce[i], 12, b->aad[i], 8, b->tag[i], 16,
                                       b->p[i], b->p[i]) == 0;
    }
    return ok;
}

#if IPSECIF_BENCH_OPENSSL
static void *openssl_raw_new(const uint8_t *key)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

    if (ctx != NULL && EVP_CipherInit_ex2(ctx, EVP_aes_128_gcm(), key, NULL, 1, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void openssl_raw_free(void *c)
{
    EVP_CIPHER_CTX_free(c);
}

static bool openssl_burst(void *c, const struct burst_in *in)
{
    struct burst_in *b = (struct burst_in *)(uintptr_t)in;
    EVP_CIPHER_CTX *ctx = c;
    uint8_t fin[16];
    bool ok = true;
    size_t i;
    int n;

    for (i = 0; i < b->n; i++) {
        ok &= EVP_CipherInit_ex2(ctx, NULL, NULL, b->nonce[i], 1, NULL) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &n, b->aad[i], 8) == 1 &&
              EVP_CipherUpdate(ctx, b->p[i], &n, b->p[i], (int)b->len) == 1 &&
              EVP_CipherFinal_ex(ctx, fin, &n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, b->tag[i]) == 1;
    }
    for (i = 0; i < b->n; i++) {
        ok &= EVP_CipherInit_ex2(ctx, NULL, NULL, b->nonce[i], 0, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, b->tag[i]) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &n, b->aad[i], 8) == 1 &&
              EVP_CipherUpdate(ctx, b->p[i], &n, b->p[i], (int)b->len) == 1 &&
              EVP_CipherFinal_ex(ctx, fin, &n) == 1;
    }
    return ok;
}
#endif

#if IPSECIF_BENCH_IPSECMB
/* The manager on the backend's GCM code path, as in part 1. */
static void *ipsecmb_raw_new(const uint8_t *key)
{
    static const struct {
        const char *name;
        void (*init)(IMB_MGR *m);
    } paths[] = {{"sse", init_mb_mgr_sse},
                 {"avx", init_mb_mgr_avx},
                 {"avx2", init_mb_mgr_avx2},
                 {"avx512", init_mb_mgr_avx512}};
    const char *arch = ipsecif_crypto_ipsecmb_arch();
    struct mb_raw *r = calloc(1, sizeof(*r));
    size_t i;

    if (r == NULL || arch == NULL) {
        free(r);
        return NULL;
    }
    r->mgr = alloc_mb_mgr(0);
    r->key = aligned_alloc(64, (sizeof(struct gcm_key_data) + 63) & ~(size_t)63);
    for (i = 0; r->mgr != NULL && r->key != NULL && i < sizeof(paths) / sizeof(paths[0]); i++) {
        size_t n = strcspn(arch, "+");

        if (strlen(paths[i].name) == n && strncmp(paths[i].name, arch, n) == 0) {
            paths[i].init(r->mgr);
            IMB_AES128_GCM_PRE(r->mgr, key, r->key);
            return r;
        }
    }
    free(r->key);
    if (r->mgr != NULL) {
        free_mb_mgr(r->mgr);
    }
    free(r);
    return NULL;
}

static void ipsecmb_raw_free(void *c)
{
    struct mb_raw *r = c;

    free(r->key);
    free_mb_mgr(r->mgr);
    free(r);
}

static bool mb_jobs(struct mb_raw *r, struct burst_in *b, int enc, uint8_t (*out)[16])
{
    IMB_JOB *job;
    size_t i;
    size_t done = 0;

    for (i = 0; i < b->n; i++) {
        job = IMB_GET_NEXT_JOB(r->mgr);
        memset(job, 0, sizeof(*job));
        job->cipher_mode = IMB_CIPHER_GCM;
        job->hash_alg = IMB_AUTH_AES_GMAC;
        job->cipher_direction = enc ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
        job->chain_order = enc ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
        job->key_len_in_bytes = 16;
        job->enc_keys = r->key;
        job->dec_keys = r->key;
        job->src = b->p[i];
        job->dst = b->p[i];
        job->msg_len_to_cipher_in_bytes = b->len;
        job->msg_len_to_hash_in_bytes = b->len;
        job->iv = b->nonce[i];
        job->iv_len_in_bytes = 12;
        job->u.GCM.aad = b->aad[i];
        job->u.GCM.aad_len_in_bytes = 8;
        job->auth_tag_output = out[i];
        job->auth_tag_output_len_in_bytes = 16;
        job = IMB_SUBMIT_JOB(r->mgr);
        while (job != NULL) {
            done += job->status == IMB_STATUS_COMPLETED;
            job = IMB_GET_COMPLETED_JOB(r->mgr);
        }
    }
    while ((job = IMB_FLUSH_JOB(r->mgr)) != NULL) {
        done += job->status == IMB_STATUS_COMPLETED;
    }
    return done == b->n;
}

static bool ipsecmb_burst_jobs(void *c, const struct burst_in *in)
{
    struct burst_in *b = (struct burst_in *)(uintptr_t)in;
    uint8_t want[BURST][16];

    return mb_jobs(c, b, 1, b->tag) && mb_jobs(c, b, 0, want) &&
           memcmp(want, b->tag, b->n * 16) == 0;
}

static bool ipsecmb_burst_direct(void *c, const struct burst_in *in)
{
    struct burst_in *b = (struct burst_in *)(uintptr_t)in;
    struct mb_raw *r = c;
    struct gcm_context_data ctx;
    uint8_t want[BURST][16];
    size_t i;

    for (i = 0; i < b->n; i++) {
        IMB_AES128_GCM_ENC(r->mgr, r->key, &ctx, b->p[i], b->p[i], b->len, b->nonce[i], b->aad[i],
                           8, b->tag[i], 16);
    }
    for (i = 0; i < b->n; i++) {
        IMB_AES128_GCM_DEC(r->mgr, r->key, &ctx, b->p[i], b->p[i], b->len, b->nonce[i], b->aad[i],
                           8, want[i], 16);
    }
    return memcmp(want, b->tag, b->n * 16) == 0;
}
#endif

/* A crypto backend and the raw cipher of its library. */
struct backend {
    const char *name;
    const struct ipsecif_crypto_ops *ops;
    int (*random)(void *user, uint8_t *out, size_t len);
    struct timing (*raw)(const uint8_t *key, const uint8_t *inner, size_t len, unsigned iters,
                         unsigned reps);
    double raw_1400;    /* median raw ns per packet at 1400 bytes, from part 1 */
    double esp_1400;    /* median ESP ns per packet at 1400 bytes, from part 1 */
    double pp_ratio[2]; /* part 1's ESP/raw at 64 and 1400 bytes */
    bool (*raw_burst)(void *c, const struct burst_in *in); /* part 1d: raw burst of the library */
    void *(*raw_new)(const uint8_t *key);
    void (*raw_free)(void *c);
    bool (*raw_burst2)(void *c, const struct burst_in *in); /* a second raw shape, or NULL */
    const char *raw_desc;
};

static struct backend backends[] = {
    {"Mbed TLS",
     &ipsecif_crypto_mbedtls_ops,
     ipsecif_crypto_mbedtls_random,
     time_raw,
     0,
     0,
     {0, 0},
     mbedtls_burst,
     mbedtls_raw_new,
     mbedtls_raw_free,
     NULL,
     "mbedtls_gcm_crypt_and_tag x n, then mbedtls_gcm_auth_decrypt x n"},
#if IPSECIF_BENCH_OPENSSL
    {"OpenSSL",
     &ipsecif_crypto_openssl_ops,
     ipsecif_crypto_openssl_random,
     time_raw_openssl,
     0,
     0,
     {0, 0},
     openssl_burst,
     openssl_raw_new,
     openssl_raw_free,
     NULL,
     "one EVP_CIPHER_CTX, IV set per packet: n seals, then n opens"},
#endif
#if IPSECIF_BENCH_IPSECMB
    {"intel-ipsec-mb",
     &ipsecif_crypto_ipsecmb_ops,
     ipsecif_crypto_ipsecmb_random,
     time_raw_ipsecmb,
     0,
     0,
     {0, 0},
     ipsecmb_burst_jobs,
     ipsecmb_raw_new,
     ipsecmb_raw_free,
     ipsecmb_burst_direct,
     "n GCM jobs submitted then flushed, each way (or the direct API n times, if faster)"},
#endif
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

/* ---- No cipher: what the core costs by itself (part 1e) ----
 * A stand-in for the crypto port that leaves the data as it is and writes
 * a fixed tag, so that the batch path's time is the core's own work. Only
 * this measurement uses it; nothing it seals is secret. */

static int nocipher_init(void *slot, uint8_t ealg, const uint8_t *ekey, size_t ekey_len,
                         uint8_t aalg, const uint8_t *akey, size_t akey_len)
{
    (void)ekey;
    (void)ekey_len;
    (void)akey;
    (void)akey_len;
    memset(slot, 0, 16);
    return ealg == IPSECIF_EALG_AES_GCM16 && aalg == IPSECIF_AALG_NONE ? 0
                                                                       : IPSECIF_ERR_UNSUPPORTED;
}

static void nocipher_wipe(void *slot)
{
    memset(slot, 0, 16);
}

static int nocipher_seal(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                         size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, size_t tag_len)
{
    (void)slot;
    (void)nonce;
    (void)nonce_len;
    (void)aad;
    (void)aad_len;
    (void)data;
    (void)len;
    memset(tag, 0x5a, tag_len);
    return 0;
}

static int nocipher_open(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                         size_t aad_len, uint8_t *data, size_t len, const uint8_t *tag,
                         size_t tag_len)
{
    (void)slot;
    (void)nonce;
    (void)nonce_len;
    (void)aad;
    (void)aad_len;
    (void)data;
    (void)len;
    return tag_len > 0 && tag[0] == 0x5a && tag[tag_len - 1] == 0x5a ? 0 : IPSECIF_ERR_AUTH;
}

static void nocipher_seal_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        ops[i]->rc =
            nocipher_seal(slot, ops[i]->nonce, ops[i]->nonce_len, ops[i]->aad, ops[i]->aad_len,
                          ops[i]->data, ops[i]->len, ops[i]->tag, ops[i]->tag_len);
    }
}

static void nocipher_open_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        ops[i]->rc =
            nocipher_open(slot, ops[i]->nonce, ops[i]->nonce_len, ops[i]->aad, ops[i]->aad_len,
                          ops[i]->data, ops[i]->len, ops[i]->tag, ops[i]->tag_len);
    }
}

static int nocipher_cbc(void *slot, int enc, const uint8_t *iv, uint8_t *data, size_t len)
{
    (void)slot;
    (void)enc;
    (void)iv;
    (void)data;
    (void)len;
    return IPSECIF_ERR_CRYPTO;
}

static int nocipher_mac(void *slot, const uint8_t *data, size_t len, uint8_t *out, size_t out_len)
{
    (void)slot;
    (void)data;
    (void)len;
    (void)out;
    (void)out_len;
    return IPSECIF_ERR_CRYPTO;
}

static const struct ipsecif_crypto_ops nocipher_ops = {
    .slot_size = 16,
    .init = nocipher_init,
    .wipe = nocipher_wipe,
    .aead_seal = nocipher_seal,
    .aead_open = nocipher_open,
    .cbc = nocipher_cbc,
    .mac = nocipher_mac,
    .aead_seal_burst = nocipher_seal_burst,
    .aead_open_burst = nocipher_open_burst,
};

static void use_backend(const struct backend *be)
{
    port.crypto = be->ops;
    port.random = be->random;
}

/* ---- The three parts ---- */

static const uint8_t bench_key[20] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                      0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xca, 0xfe, 0xba, 0xbe};

/* Keep the CPU busy for a moment so that frequency scaling settles before
 * the first figure is taken. */
static void warm_up_cpu(uint64_t ms)
{
    uint8_t inner[1400];
    uint64_t end = now_ns() + ms * 1000000u;

    build_inner(inner, sizeof(inner));
    while (now_ns() < end) {
        (void)time_raw(bench_key, inner, sizeof(inner), 200, 1);
    }
}

static int part_cipher(struct backend *be, const char *num, unsigned iters, unsigned reps)
{
    static const size_t sizes[] = {64, 512, 1400};
    struct side a;
    struct side b;
    uint8_t inner[1500];
    size_t i;
    int failed = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    use_backend(be);
    printf("\n%s ESP output (A) + input (B) against raw %s AES-128-GCM seal + open\n", num,
           be->name);
#if IPSECIF_BENCH_IPSECMB
    if (be->ops == &ipsecif_crypto_ipsecmb_ops) {
        printf("   crypto backend: %s (code path %s)\n", be->name,
               ipsecif_crypto_ipsecmb_arch() != NULL ? ipsecif_crypto_ipsecmb_arch() : "none");
    } else
#endif
    {
        printf("   crypto backend: %s\n", be->name);
    }
    printf(
        "   AES-128-GCM-16, IPv4 in IPv4 over ESP, replay window 64; raw: same key, 8-byte AAD,\n");
    printf("   both copy the inner packet into the buffer first; %u packets x %u, alternating;\n"
           "   medians (ESP/raw: median of the per-round ratios)\n\n",
           iters, reps);
    if (side_init(&a, "A", 1) != 0 || side_init(&b, "B", 1) != 0 ||
        add_tunnel(&a, &b, 0, bench_key) != IPSECIF_OK) {
        failed = 1;
        goto out;
    }
    printf("   %-11s %-11s %-14s %-14s %-8s %-10s %s\n", "inner bytes", "outer bytes", "ESP ns/pkt",
           "raw ns/pkt", "ESP/raw", "ESP Mbit/s", "ESP allocs/pkt");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct timing esp;
        struct timing raw;
        double esp_ns[16];
        double raw_ns[16];
        double ratio[16];
        double allocs;
        double e;
        unsigned r;
        bool ok;

        build_inner(inner, sizes[i]);
        if (!verify_packet(&a, &b, a.ifs[0], inner, sizes[i])) {
            failed = 1;
            continue;
        }
        /* Alternate the two so that drift on a busy machine hits both alike. */
        allocs = 0;
        ok = true;
        for (r = 0; r < reps; r++) {
            esp = time_esp(&a, &b, a.ifs, 1, inner, sizes[i], iters, 1);
            raw = be->raw(bench_key, inner, sizes[i], iters, 1);
            ok = ok && esp.ok && raw.ok;
            esp_ns[r] = esp.ns;
            raw_ns[r] = raw.ns;
            ratio[r] = esp.ns / raw.ns;
            allocs += esp.allocs / reps;
        }
        if (!ok) {
            fprintf(stderr, "size %zu: a packet failed during the timed loop\n", sizes[i]);
            failed = 1;
            continue;
        }
        e = median(esp_ns, reps);
        if (sizes[i] == 1400) {
            be->raw_1400 = median(raw_ns, reps);
            be->esp_1400 = e;
        }
        if (sizes[i] == 64 || sizes[i] == 1400) {
            be->pp_ratio[sizes[i] == 64 ? 0 : 1] = median(ratio, reps);
        }
        printf("   %-11zu %-11zu %-14.0f %-14.0f %-8.2f %-10.0f %.2f\n", sizes[i], a.out_len, e,
               median(raw_ns, reps), median(ratio, reps), (double)sizes[i] * 8.0 * 1000.0 / e,
               allocs);
        fflush(stdout);
    }
out:
    side_fini(&a);
    side_fini(&b);
    return failed;
}

/* Fill the burst buffers with n copies of inner; views for ESP. */
static void burst_fill(struct ipsecif_buf *views, struct ipsecif_buf **vp, const uint8_t *inner,
                       size_t len, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        memcpy(burst_mem[i] + HEADROOM, inner, len);
        views[i].base = burst_mem[i];
        views[i].cap = BUF_SIZE;
        views[i].off = HEADROOM;
        views[i].len = len;
        vp[i] = &views[i];
    }
}

/* ns per packet over batches of BURST: ipsecif_if_output_batch on A, then
 * ipsecif_input_batch of the same buffers (now the outer packets) on B. */
static double time_esp_batch(struct side *a, struct side *b, const uint8_t *inner, size_t len,
                             unsigned batches, bool *ok)
{
    struct ipsecif_buf views[BURST];
    struct ipsecif_buf *vp[BURST];
    unsigned long long before = b->delivered;
    uint64_t t0;
    unsigned r;

    t0 = now_ns();
    for (r = 0; r < batches; r++) {
        burst_fill(views, vp, inner, len, BURST);
        if (ipsecif_if_output_batch(a->ctx, a->ifs[0], NULL, vp, BURST, 2, NULL) != BURST ||
            ipsecif_input_batch(b->ctx, vp, BURST, 2, NULL) != BURST) {
            *ok = false;
        }
    }
    t0 = now_ns() - t0;
    if (b->delivered - before != (unsigned long long)batches * BURST ||
        memcmp(ipsecif_buf_data(vp[BURST - 1]), inner, len) != 0) {
        *ok = false;
    }
    return (double)t0 / ((double)batches * BURST);
}

/* ns per packet of the library's raw burst, same copies and nonces. */
static double time_raw_burst(bool (*fn)(void *, const struct burst_in *), void *c,
                             const uint8_t *inner, size_t len, unsigned batches, bool *ok)
{
    static struct burst_in in;
    static uint64_t seq;
    uint64_t t0;
    unsigned r;
    size_t i;

    in.len = len;
    in.n = BURST;
    t0 = now_ns();
    for (r = 0; r < batches; r++) {
        for (i = 0; i < BURST; i++) {
            seq++;
            in.p[i] = burst_mem[i] + HEADROOM;
            memcpy(in.p[i], inner, len);
            memcpy(in.nonce[i], bench_key + 16, 4);
            memcpy(in.nonce[i] + 4, &seq, 8);
            memset(in.aad[i], 0, 4);
            memcpy(in.aad[i] + 4, &seq, 4);
        }
        if (!fn(c, &in)) {
            *ok = false;
        }
    }
    t0 = now_ns() - t0;
    if (memcmp(in.p[BURST - 1], inner, len) != 0) {
        *ok = false;
    }
    return (double)t0 / ((double)batches * BURST);
}

#define TARGET_64 1.25
#define TARGET_1400 1.05

/* Part 1d: the batch path against the raw cipher in the same burst shape. */
static int part_batch(struct backend *be, unsigned iters, unsigned reps)
{
    static const size_t sizes[] = {64, 1400};
    unsigned batches = iters / BURST + 1;
    struct side a;
    struct side b;
    uint8_t inner[1500];
    double padded[2] = {0, 0}; /* raw at 64 bytes, at 68 */
    void *raw = NULL;
    size_t i;
    int failed = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    use_backend(be);
    printf("\n   %s: batches of %d; raw: %s\n", be->name, BURST, be->raw_desc);
    if (side_init(&a, "A", 1) != 0 || side_init(&b, "B", 1) != 0 ||
        add_tunnel(&a, &b, 0, bench_key) != IPSECIF_OK || (raw = be->raw_new(bench_key)) == NULL) {
        failed = 1;
        goto out;
    }
    printf("   %-6s %-19s %-13s %-11s %-14s %-8s %s\n", "bytes", "per-packet ESP/raw",
           "batch ns/pkt", "raw ns/pkt", "batch ESP/raw", "target", "met");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        double esp_ns[16], raw_ns[16], ratio[16];
        double target = sizes[i] == 64 ? TARGET_64 : TARGET_1400;
        double pp = be->pp_ratio[sizes[i] == 64 ? 0 : 1];
        char ppbuf[16];
        double q;
        bool ok = true;
        unsigned r;

        build_inner(inner, sizes[i]);
        (void)time_esp_batch(&a, &b, inner, sizes[i], batches / 4 + 1, &ok);
        for (r = 0; r < reps; r++) {
            double r1, r2;

            esp_ns[r] = time_esp_batch(&a, &b, inner, sizes[i], batches, &ok);
            r1 = time_raw_burst(be->raw_burst, raw, inner, sizes[i], batches, &ok);
            r2 = be->raw_burst2 != NULL
                     ? time_raw_burst(be->raw_burst2, raw, inner, sizes[i], batches, &ok)
                     : r1;
            raw_ns[r] = r1 < r2 ? r1 : r2;
            ratio[r] = esp_ns[r] / raw_ns[r];
        }
        if (!ok) {
            fprintf(stderr, "%s, %zu bytes: a packet failed in the batch loop\n", be->name,
                    sizes[i]);
            failed = 1;
            continue;
        }
        q = median(ratio, reps);
        if (pp > 0) {
            snprintf(ppbuf, sizeof(ppbuf), "%.2f", pp);
        } else {
            snprintf(ppbuf, sizeof(ppbuf), "-");
        }
        printf("   %-6zu %-19s %-13.0f %-11.0f %-14.2f <= %-5.2f %s\n", sizes[i], ppbuf,
               median(esp_ns, reps), median(raw_ns, reps), q, target, q <= target ? "yes" : "no");
        if (sizes[i] == 64) {
            padded[0] = median(raw_ns, reps);
        }
        fflush(stdout);
    }
    /* ESP encrypts the payload with its trailer, padded to 4 bytes: 64
     * bytes become 68, one cipher block more than the raw run's 64. */
    if (padded[0] > 0) {
        double pr[16];
        bool ok = true;
        unsigned r;

        build_inner(inner, 68);
        for (r = 0; r < reps; r++) {
            double r1 = time_raw_burst(be->raw_burst, raw, inner, 68, batches, &ok);
            double r2 = be->raw_burst2 != NULL
                            ? time_raw_burst(be->raw_burst2, raw, inner, 68, batches, &ok)
                            : r1;

            pr[r] = r1 < r2 ? r1 : r2;
        }
        padded[1] = median(pr, reps);
        if (ok) {
            printf(
                "   64 bytes travel as 68 in ESP (trailer, padding): raw at 68 bytes %.0f ns/pkt,\n"
                "   %.2f of raw at 64, the part of the 64-byte ratio that is the cipher's\n",
                padded[1], padded[1] / padded[0]);
        }
    }
out:
    if (raw != NULL) {
        be->raw_free(raw);
    }
    side_fini(&a);
    side_fini(&b);
    return failed;
}

/* Part 1e: the batch path with the no-op cipher, so the core's own cost. */
static int part_core(unsigned iters, unsigned reps)
{
    static const size_t sizes[] = {64, 1400};
    unsigned batches = iters / BURST + 1;
    struct side a;
    struct side b;
    uint8_t inner[1500];
    size_t i;
    int failed = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    port.crypto = &nocipher_ops;
    port.random = ipsecif_crypto_mbedtls_random;
    printf("\n1e. The core alone: the batch path of 1d with the cipher replaced by a no-op\n"
           "   (data left as it is, fixed tag); what ESP adds to the raw cipher, per packet\n"
           "   out and in; medians of %u rounds\n\n",
           reps);
    if (side_init(&a, "A", 1) != 0 || side_init(&b, "B", 1) != 0 ||
        add_tunnel(&a, &b, 0, bench_key) != IPSECIF_OK) {
        failed = 1;
        goto out;
    }
    printf("   %-6s %s\n", "bytes", "core ns/pkt");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        double ns[16];
        bool ok = true;
        unsigned r;

        build_inner(inner, sizes[i]);
        (void)time_esp_batch(&a, &b, inner, sizes[i], batches / 4 + 1, &ok);
        for (r = 0; r < reps; r++) {
            ns[r] = time_esp_batch(&a, &b, inner, sizes[i], batches, &ok);
        }
        if (!ok) {
            fprintf(stderr, "no cipher, %zu bytes: a packet failed in the batch loop\n", sizes[i]);
            failed = 1;
            continue;
        }
        printf("   %-6zu %.0f\n", sizes[i], median(ns, reps));
        fflush(stdout);
    }
out:
    side_fini(&a);
    side_fini(&b);
    return failed;
}

static int part_scale(uint32_t max_ifs, unsigned iters, unsigned reps)
{
    static const uint32_t steps[] = {1, 1000, 100000};
    static const char *const where[3] = {"first", "middle", "last"};
    struct side a;
    struct side b;
    uint8_t inner[64];
    double base = 0;
    uint32_t n = 0;
    size_t k;
    int failed = 0;
    struct ipsecif_config cfg;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    config_for(&cfg, max_ifs);
    printf("\n2. One 64-byte packet (output on A, input on B) with N interfaces installed\n");
    printf("   both contexts sized for %u interfaces, %u policies, %u SAs: %zu bytes each;\n",
           cfg.max_interfaces, cfg.max_policies, cfg.max_sas, ipsecif_ctx_size(&cfg));
    printf("   timed through the first, middle and last interface created;\n");
    printf("   %u packets x %u each, median; vs 1 if: the slowest of the three against\n"
           "   the median of the three with one interface\n\n",
           iters, reps);
    if (side_init(&a, "A", max_ifs) != 0 || side_init(&b, "B", max_ifs) != 0) {
        failed = 1;
        goto out;
    }
    build_inner(inner, sizeof(inner));
    printf("   %-10s %-8s %-8s %-9s %-9s %-9s %-9s %-8s %s\n", "interfaces", "policies", "SAs",
           "setup s", "first ns", "middle ns", "last ns", "vs 1 if", "allocs/pkt");
    fflush(stdout);
    for (k = 0; k < sizeof(steps) / sizeof(steps[0]) && steps[k] <= max_ifs; k++) {
        uint64_t t0 = now_ns();
        double setup_s;
        double ns[3];
        double worst = 0;
        double allocs = 0;
        size_t p;

        while (n < steps[k]) {
            if (add_tunnel(&a, &b, n, bench_key) != IPSECIF_OK) {
                failed = 1;
                goto out;
            }
            n++;
        }
        setup_s = (double)(now_ns() - t0) / 1e9;
        for (p = 0; p < 3; p++) {
            uint32_t idx = p == 0 ? 0 : p == 1 ? n / 2 : n - 1;
            struct ipsecif_if *ifp = a.ifs[idx];
            struct timing t;

            if (!verify_packet(&a, &b, ifp, inner, sizeof(inner))) {
                failed = 1;
                goto out;
            }
            t = time_esp(&a, &b, &ifp, 1, inner, sizeof(inner), iters, reps);
            if (!t.ok) {
                fprintf(stderr, "%u interfaces, %s: a packet failed during the timed loop\n", n,
                        where[p]);
                failed = 1;
                goto out;
            }
            ns[p] = t.ns;
            worst = t.ns > worst ? t.ns : worst;
            allocs = t.allocs > allocs ? t.allocs : allocs;
        }
        if (k == 0) {
            /* With one interface the three runs are the same work: their
             * median is the least noisy base. */
            double one[3] = {ns[0], ns[1], ns[2]};
            base = median(one, 3);
        }
        printf("   %-10u %-8zu %-8zu %-9.2f %-9.0f %-9.0f %-9.0f %-8.2f %.2f\n", n,
               ipsecif_spd_count(a.ctx), ipsecif_sa_count(a.ctx), setup_s, ns[0], ns[1], ns[2],
               worst / base, allocs);
        fflush(stdout);
    }
out:
    side_fini(&a);
    side_fini(&b);
    return failed;
}

static void part_memory(void)
{
    const uint32_t steps[] = {1, 1000, 100000};
    size_t k;

    printf("\n3. Context memory (replay window up to 64; 4 policies and 2 SAs per interface)\n\n");
    printf("   %-11s %-14s %s\n", "interfaces", "bytes", "bytes/interface");
    for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        struct ipsecif_config cfg;
        size_t size;

        config_for(&cfg, steps[k]);
        size = ipsecif_ctx_size(&cfg);
        printf("   %-11u %-14zu %.0f\n", steps[k], size, (double)size / steps[k]);
    }
}

int main(int argc, char **argv)
{
    bool quick = false;
    bool batch_only = false;
    const char *only = NULL;
    unsigned iters_set = 0;
    unsigned iters = 20000;
    unsigned reps = 7;
    uint32_t max_ifs = 100000;
    int failed = 0;
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--batch") == 0) {
            batch_only = true;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            iters_set = (unsigned)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--quick] [--batch] [--backend NAME] [--iters N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (quick) {
        iters = 2000;
        reps = 3;
        max_ifs = 1000;
    }
    if (iters_set > 0) {
        iters = iters_set;
    }
    printf("libipsecif %s ESP benchmark%s\n", IPSECIF_VERSION_STRING, quick ? " (quick)" : "");
    warm_up_cpu(quick ? 100 : 500);
    for (size_t k = 0; k < NBACKENDS && !batch_only; k++) {
        static const char *const nums[] = {"1.", "1b.", "1c."};

        if (only != NULL && strcmp(only, backends[k].name) != 0) {
            continue;
        }
        failed |= part_cipher(&backends[k], nums[k], iters, reps);
    }
    if (NBACKENDS > 1 && backends[0].raw_1400 > 0) {
        printf("\n   at 1400 bytes, against %s (raw %.0f ns, ESP %.0f ns):\n", backends[0].name,
               backends[0].raw_1400, backends[0].esp_1400);
        for (size_t k = 1; k < NBACKENDS; k++) {
            if (backends[k].raw_1400 > 0) {
                printf("   %-15s raw AES-128-GCM seal + open %.0f ns (%s/%s = %.2f), "
                       "ESP %.0f ns (%.2f)\n",
                       backends[k].name, backends[k].raw_1400, backends[k].name, backends[0].name,
                       backends[k].raw_1400 / backends[0].raw_1400, backends[k].esp_1400,
                       backends[k].esp_1400 / backends[0].esp_1400);
            }
        }
    }
    printf("\n1d. Batch path: ipsecif_if_output_batch (A) + ipsecif_input_batch (B) against the\n"
           "   raw cipher in the same burst shape (n seals, then n opens), per backend;\n"
           "   AES-128-GCM-16, IPv4 in IPv4; medians of %u rounds (ESP/raw: of the per-round\n"
           "   ratios); per-packet ESP/raw is part 1's; targets ESP/raw <= %.2f at 64 bytes,\n"
           "   <= %.2f at 1400 bytes (printed, not enforced)\n",
           reps, TARGET_64, TARGET_1400);
    for (size_t k = 0; k < NBACKENDS; k++) {
        if (only != NULL && strcmp(only, backends[k].name) != 0) {
            continue;
        }
        failed |= part_batch(&backends[k], iters, reps);
    }
    failed |= part_core(iters, reps);
    if (batch_only) {
        return failed;
    }
    /* Part 2 measures the core's lookups; it stays on one backend (Mbed TLS)
     * so that its figures compare across runs. */
    use_backend(&backends[0]);
    failed |= part_scale(max_ifs, iters, reps);
    part_memory();
    if (counting_works()) {
        printf("\nallocs/pkt: malloc, calloc, realloc and aligned_alloc calls per packet "
               "while timing.\n");
    } else {
        printf("\nallocs/pkt: NOT COUNTED (sanitizer build, or malloc not interposed).\n");
    }
    if (failed) {
        printf("bench_esp: FAILED (a packet did not make it through)\n");
        return 1;
    }
    return 0;
}
