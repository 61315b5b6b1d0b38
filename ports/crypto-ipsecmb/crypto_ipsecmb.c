/*
 * The crypto backend on intel-ipsec-mb 1.x: AES-GCM and AES-GMAC through the
 * library's direct API with the expanded key and GHASH keys in the SA's
 * slot, ChaCha20-Poly1305 through the direct API, AES-CBC, 3DES-CBC and the
 * truncated HMACs through the job API on the calling thread's multi-buffer
 * manager, and getrandom(2) as the random source.
 */
/* explicit_bzero (glibc, FreeBSD): a wipe the compiler keeps, without the
 * flag save and store fence of imb_clear_mem on every per-packet scratch. */
#define _DEFAULT_SOURCE 1

#include "ipsecif_crypto_ipsecmb.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "ipsecif/err.h"
#include "ipsecif/opts.h"
#include "ipsecif/sa.h"

#include <intel-ipsec-mb.h>

#if IMB_VERSION_NUM < IMB_VERSION(1, 0, 0)
#error "the intel-ipsec-mb backend needs intel-ipsec-mb 1.0 or later"
#endif

#define NONCE_LEN 12 /* salt || IV for GCM, GMAC and ChaCha20-Poly1305 (RFC 4106, 4543, 7634) */
#define TAG_LEN 16   /* the only ICV length the algorithm ids name */
#define HASH_MAX 64  /* SHA-512 output */
#define HBLOCK_MAX 128
#define HSTATE 64    /* a hash state after one block, as the one-block calls write it */
#define AES_EXP 240  /* 15 round keys: the expanded key of any AES size */
#define DES_SCHED 16 /* 64-bit words per DES key schedule */
#define CHACHA_KEY 32
#define DES3_KEY_LEN 24

/*
 * GCM key data: 240 bytes of round keys, then the GHASH keys, whose number
 * depends on the code the manager runs (intel-ipsec-mb 1.3: 128 bytes for
 * AVX2 and AVX-512, 256 for SSE and AVX, 768 for VAES AVX-512). The
 * library's own build declares the structure 64-byte aligned, so it is kept
 * at a 64-byte boundary inside the slot area (the slot is only 16-byte
 * aligned: up to 48 bytes are lost to that). How much precomputation writes
 * is measured once per process; what does not fit the area goes to one
 * allocation per SA at init (VAES AVX-512 with the default slot).
 */
#define GCM_ALIGN 64
#define GCM_SLACK (GCM_ALIGN - 16)
#define GCM_DATA_BIG 1008 /* sizeof(struct gcm_key_data) in 1.3 */
#define GCM_DATA_SMALL 496
#define GCM_HEAP_SIZE ((sizeof(struct gcm_key_data) + GCM_ALIGN - 1) & ~(size_t)(GCM_ALIGN - 1))
#define SLOT_HDR 16
#if IPSECIF_CRYPTO_SLOT_SIZE >= SLOT_HDR + GCM_SLACK + GCM_DATA_BIG
#define GCM_AREA (GCM_SLACK + GCM_DATA_BIG)
#else
#define GCM_AREA (GCM_SLACK + GCM_DATA_SMALL)
#endif

/* Whether init completed. */
#define LIVE_READY 0x01u

/*
 * The slot. AEADs and cipher+HMAC pairs never coexist, so they share memory.
 * AES-CBC keeps both expanded keys (the core does not say which way an SA
 * goes); 3DES keeps its three key schedules, which serve both directions.
 * HMAC keeps the hash states after absorbing key ^ ipad and key ^ opad, and
 * the HMAC of the empty message (the job API refuses to hash zero bytes).
 */
struct slot {
    uint8_t ealg;
    uint8_t aalg;
    uint8_t live;    /* LIVE_* */
    uint8_t key_len; /* AES key bytes */
    uint8_t gcm_off; /* GCM key data offset in u.gcm when kept in the slot */
    void *gcm_heap;  /* GCM key data when it did not fit, else NULL */
    union {
        _Alignas(16) uint8_t gcm[GCM_AREA];
        uint8_t chacha[CHACHA_KEY];
        struct {
            union {
                struct {
                    _Alignas(16) uint8_t enc[AES_EXP];
                    _Alignas(16) uint8_t dec[AES_EXP];
                } aes;
                uint64_t des3[3][DES_SCHED];
            } c;
            _Alignas(16) uint8_t ipad[HSTATE];
            _Alignas(16) uint8_t opad[HSTATE];
            uint8_t empty_mac[HASH_MAX];
        } cbc;
    } u;
};

_Static_assert(sizeof(struct slot) <= IPSECIF_CRYPTO_SLOT_SIZE,
               "the intel-ipsec-mb slot exceeds IPSECIF_CRYPTO_SLOT_SIZE; raise it in the options");
_Static_assert(_Alignof(struct slot) <= 16, "the SA slot is only 16-byte aligned");
_Static_assert(offsetof(struct slot, u) == SLOT_HDR, "the slot header is SLOT_HDR bytes");

/* ---- The multi-buffer managers: per thread, one architecture per process ---- */

struct arch_desc {
    const char *name;
    IMB_ARCH arch;
    void (*init)(IMB_MGR *m);
};

static const struct arch_desc arch_descs[] = {
    {"sse", IMB_ARCH_SSE, init_mb_mgr_sse},
    {"avx", IMB_ARCH_AVX, init_mb_mgr_avx},
    {"avx2", IMB_ARCH_AVX2, init_mb_mgr_avx2},
    {"avx512", IMB_ARCH_AVX512, init_mb_mgr_avx512},
};
#define ARCH_SSE (&arch_descs[0])

/*
 * What every thread's managers are made like; set once (pthread_once).
 * The main manager runs everything but HMAC-SHA1 and HMAC-SHA-256, which
 * go to a second manager on the SSE path when the path chosen by default
 * is another and the CPU has the SHA extensions but not GFNI: the SSE path
 * takes its SHA-NI code whenever the CPU has the extensions, the AVX and
 * AVX2 paths only in their variants that need GFNI too
 * (IMB_CPUFLAGS_AVX_T2, IMB_CPUFLAGS_AVX2_T2). Their multi-lane SHA code,
 * flushed for one packet at a time, took three to four times as long.
 */
static struct {
    bool ok;
    const struct arch_desc *arch;     /* the main manager's */
    const struct arch_desc *sha_arch; /* HMAC-SHA1 and -SHA-256, or NULL: the main one */
    size_t gcm_data;                  /* bytes GCM precomputation writes */
    char name[32];                    /* for ipsecif_crypto_ipsecmb_arch() */
} proc;

static pthread_once_t proc_once = PTHREAD_ONCE_INIT;
static pthread_key_t main_key;
static pthread_key_t sha_key;
static _Thread_local IMB_MGR *tls_main;
static _Thread_local IMB_MGR *tls_sha;

static void mgr_release(void *p)
{
    free_mb_mgr(p);
}

static const struct arch_desc *arch_by_id(IMB_ARCH arch)
{
    for (size_t i = 0; i < sizeof(arch_descs) / sizeof(arch_descs[0]); i++) {
        if (arch_descs[i].arch == arch) {
            return &arch_descs[i];
        }
    }
    return NULL;
}

static const struct arch_desc *arch_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(arch_descs) / sizeof(arch_descs[0]); i++) {
        if (strcmp(arch_descs[i].name, name) == 0) {
            return &arch_descs[i];
        }
    }
    return NULL;
}

/* Bytes of struct gcm_key_data that precomputation writes with this
 * manager: the last byte that differs from either of two fill patterns. */
static size_t gcm_data_written(IMB_MGR *m)
{
    static const uint8_t fills[2] = {0xa5, 0x5a};
    _Alignas(GCM_ALIGN) uint8_t buf[sizeof(struct gcm_key_data)];
    uint8_t key[32];
    size_t hi = 0;

    memset(key, 0x3c, sizeof(key));
    for (int f = 0; f < 2; f++) {
        for (int k = 0; k < 3; k++) {
            memset(buf, fills[f], sizeof(buf));
            if (k == 0) {
                IMB_AES128_GCM_PRE(m, key, (struct gcm_key_data *)buf);
            } else if (k == 1) {
                IMB_AES192_GCM_PRE(m, key, (struct gcm_key_data *)buf);
            } else {
                IMB_AES256_GCM_PRE(m, key, (struct gcm_key_data *)buf);
            }
            for (size_t i = hi; i < sizeof(buf); i++) {
                if (buf[i] != fills[f]) {
                    hi = i + 1;
                }
            }
        }
    }
    explicit_bzero(buf, sizeof(buf));
    return hi;
}

/* A manager on the path want (NULL: the fastest); NULL if the CPU lacks it. */
static IMB_MGR *mgr_new(const struct arch_desc *want, const struct arch_desc **got)
{
    IMB_MGR *m = alloc_mb_mgr(0);
    IMB_ARCH arch = IMB_ARCH_NONE;

    if (m == NULL) {
        return NULL;
    }
    if (want != NULL) {
        want->init(m);
        arch = want->arch;
    } else {
        init_mb_mgr_auto(m, &arch);
    }
    *got = arch_by_id(arch);
    if (imb_get_errno(m) != 0 || *got == NULL || (want != NULL && *got != want)) {
        free_mb_mgr(m);
        return NULL;
    }
    return m;
}

static void mgr_keep(IMB_MGR **tls, pthread_key_t key, IMB_MGR *m)
{
    /* If this fails, no destructor runs: the manager lives as long as the
     * process instead of the thread. */
    (void)pthread_setspecific(key, m);
    *tls = m;
}

static void proc_init(void)
{
    const char *env = getenv(IPSECIF_CRYPTO_IPSECMB_ARCH_ENV);
    const struct arch_desc *want = NULL;
    const struct arch_desc *got = NULL;
    IMB_MGR *m;

    if (env != NULL && env[0] != '\0' && strcmp(env, "auto") != 0) {
        want = arch_by_name(env);
        if (want == NULL) {
            return; /* an unknown name: no backend rather than a guess */
        }
    }
    if (pthread_key_create(&main_key, mgr_release) != 0) {
        return;
    }
    if (pthread_key_create(&sha_key, mgr_release) != 0) {
        return;
    }
    m = mgr_new(want, &got);
    if (m == NULL) {
        return;
    }
    proc.arch = got;
    if (want == NULL && got != ARCH_SSE && (m->features & IMB_FEATURE_SHANI) != 0 &&
        (m->features & IMB_FEATURE_GFNI) == 0) {
        proc.sha_arch = ARCH_SSE;
    }
    snprintf(proc.name, sizeof(proc.name), "%s%s", got->name,
             proc.sha_arch != NULL ? "+sse-sha" : "");
    proc.gcm_data = gcm_data_written(m);
    proc.ok = proc.gcm_data > AES_EXP && proc.gcm_data <= sizeof(struct gcm_key_data);
    if (!proc.ok) {
        free_mb_mgr(m);
        return;
    }
    mgr_keep(&tls_main, main_key, m);
}

/* One of the calling thread's managers, made on its first use. */
static IMB_MGR *thread_mgr(IMB_MGR **tls, pthread_key_t key, const struct arch_desc *arch)
{
    const struct arch_desc *got = NULL;
    IMB_MGR *m;

    /* Every thread runs the same code: key data made on one thread's
     * manager is read by another's. */
    m = mgr_new(arch, &got);
    if (m == NULL) {
        return NULL;
    }
    mgr_keep(tls, key, m);
    return m;
}

/* The calling thread's main manager; NULL if none can be made. */
static IMB_MGR *mgr(void)
{
    if (tls_main != NULL) {
        return tls_main;
    }
    if (pthread_once(&proc_once, proc_init) != 0 || !proc.ok) {
        return NULL;
    }
    if (tls_main != NULL) {
        return tls_main; /* this thread ran proc_init */
    }
    return thread_mgr(&tls_main, main_key, proc.arch);
}

/* The manager for an HMAC's hash. */
static IMB_MGR *hash_mgr(uint8_t aalg)
{
    IMB_MGR *m = mgr();

    if (m == NULL || proc.sha_arch == NULL ||
        (aalg != IPSECIF_AALG_HMAC_SHA1_96 && aalg != IPSECIF_AALG_HMAC_SHA2_256_128)) {
        return m;
    }
    if (tls_sha != NULL) {
        return tls_sha;
    }
    return thread_mgr(&tls_sha, sha_key, proc.sha_arch);
}

const char *ipsecif_crypto_ipsecmb_arch(void)
{
    return mgr() != NULL ? proc.name : NULL;
}

/*
 * Submit one job and wait for it. The manager holds no other job between
 * calls (each call drains its own), so what completes is this job, after
 * the flush for the multi-lane algorithms.
 */
static int run_job(IMB_MGR *m, IMB_JOB *job)
{
    IMB_JOB *done = IMB_SUBMIT_JOB(m);

    while (done != job) {
        done = IMB_FLUSH_JOB(m);
        if (done == NULL) {
            return IPSECIF_ERR_CRYPTO;
        }
    }
    return job->status == IMB_STATUS_COMPLETED ? 0 : IPSECIF_ERR_CRYPTO;
}

/* Constant-time comparison of two tags: nonzero if they differ. Word by
 * word, with no branch on the data. */
static int tag_differs(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t d = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;

        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    for (; i < n; i++) {
        d |= (uint64_t)(a[i] ^ b[i]);
    }
    /* Keep the compiler from turning the loop into an early exit. */
    __asm__ __volatile__("" : "+r"(d));
    return d != 0;
}

/* ---- HMAC ---- */

static size_t hash_len(uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return IMB_SHA1_DIGEST_SIZE_IN_BYTES;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return IMB_SHA256_DIGEST_SIZE_IN_BYTES;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return IMB_SHA384_DIGEST_SIZE_IN_BYTES;
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return IMB_SHA512_DIGEST_SIZE_IN_BYTES;
    default:
        return 0;
    }
}

static size_t hash_block(uint8_t aalg)
{
    return aalg == IPSECIF_AALG_HMAC_SHA2_384_192 || aalg == IPSECIF_AALG_HMAC_SHA2_512_256
               ? IMB_SHA_512_BLOCK_SIZE
               : IMB_SHA1_BLOCK_SIZE;
}

static IMB_HASH_ALG hash_alg(uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return IMB_AUTH_HMAC_SHA_1;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return IMB_AUTH_HMAC_SHA_256;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return IMB_AUTH_HMAC_SHA_384;
    default:
        return IMB_AUTH_HMAC_SHA_512;
    }
}

/* A whole message (any length) and one block (the block size). */
static void hash_all(IMB_MGR *m, uint8_t aalg, const void *p, size_t n, uint8_t *out)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        IMB_SHA1(m, p, n, out);
        break;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        IMB_SHA256(m, p, n, out);
        break;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        IMB_SHA384(m, p, n, out);
        break;
    default:
        IMB_SHA512(m, p, n, out);
        break;
    }
}

static void hash_one_block(IMB_MGR *m, uint8_t aalg, const void *p, uint8_t *state)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        IMB_SHA1_ONE_BLOCK(m, p, state);
        break;
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        IMB_SHA256_ONE_BLOCK(m, p, state);
        break;
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        IMB_SHA384_ONE_BLOCK(m, p, state);
        break;
    default:
        IMB_SHA512_ONE_BLOCK(m, p, state);
        break;
    }
}

/*
 * HMAC key setup (RFC 2104): the states after key ^ ipad and key ^ opad,
 * so each packet costs its own blocks plus the finishing compressions; and
 * HMAC(key, "") in full, for the one length the job API will not take.
 */
static int hmac_setup(IMB_MGR *m, struct slot *s, const uint8_t *key, size_t key_len)
{
    uint8_t aalg = s->aalg;
    size_t block = hash_block(aalg);
    size_t dlen = hash_len(aalg);
    uint8_t k[HBLOCK_MAX];
    uint8_t pad[HBLOCK_MAX + HASH_MAX];
    uint8_t inner[HASH_MAX];
    size_t i;

    memset(k, 0, sizeof(k));
    if (key_len > block) {
        /* Longer keys are replaced by their hash. */
        hash_all(m, aalg, key, key_len, k);
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }

    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    }
    hash_one_block(m, aalg, pad, s->u.cbc.ipad);
    hash_all(m, aalg, pad, block, inner);
    for (i = 0; i < block; i++) {
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    }
    hash_one_block(m, aalg, pad, s->u.cbc.opad);
    memcpy(pad + block, inner, dlen);
    hash_all(m, aalg, pad, block + dlen, s->u.cbc.empty_mac);

    explicit_bzero(k, sizeof(k));
    explicit_bzero(pad, sizeof(pad));
    explicit_bzero(inner, sizeof(inner));
    return 0;
}

/* ---- Cipher setup ---- */

static bool aes_key_len_ok(size_t n)
{
    return n == 16 || n == 24 || n == 32;
}

static bool is_aead(uint8_t ealg)
{
    return ealg == IPSECIF_EALG_AES_GCM16 || ealg == IPSECIF_EALG_AES_GMAC ||
           ealg == IPSECIF_EALG_CHACHA20_POLY1305;
}

static bool ealg_known(uint8_t ealg)
{
    switch (ealg) {
    case IPSECIF_EALG_NONE:
    case IPSECIF_EALG_NULL:
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
    case IPSECIF_EALG_CHACHA20_POLY1305:
    case IPSECIF_EALG_AES_CBC:
    case IPSECIF_EALG_3DES_CBC:
        return true;
    default:
        return false;
    }
}

/*
 * Where the GCM key data lives: in the slot at the offset init chose (a
 * 64-byte boundary then; the library reads it unaligned too, should the SA
 * ever be moved), or on the heap.
 */
static struct gcm_key_data *gcm_key(struct slot *s)
{
    if (s->gcm_heap != NULL) {
        return s->gcm_heap;
    }
    return (struct gcm_key_data *)(void *)(s->u.gcm + s->gcm_off);
}

static int gcm_setup(IMB_MGR *m, struct slot *s, const uint8_t *key)
{
    size_t off = (GCM_ALIGN - ((uintptr_t)s->u.gcm & (GCM_ALIGN - 1))) & (GCM_ALIGN - 1);
    struct gcm_key_data *kd;

    if (off + proc.gcm_data <= sizeof(s->u.gcm)) {
        s->gcm_off = (uint8_t)off;
    } else {
        /* Once per SA install, never per packet; wipe frees it. */
        s->gcm_heap = aligned_alloc(GCM_ALIGN, GCM_HEAP_SIZE);
        if (s->gcm_heap == NULL) {
            return IPSECIF_ERR_CRYPTO;
        }
    }
    kd = gcm_key(s);
    switch (s->key_len) {
    case 16:
        IMB_AES128_GCM_PRE(m, key, kd);
        break;
    case 24:
        IMB_AES192_GCM_PRE(m, key, kd);
        break;
    default:
        IMB_AES256_GCM_PRE(m, key, kd);
        break;
    }
    return 0;
}

static int cipher_setup(IMB_MGR *m, struct slot *s, const uint8_t *key, size_t key_len)
{
    switch (s->ealg) {
    case IPSECIF_EALG_NONE:
    case IPSECIF_EALG_NULL:
        return key_len == 0 ? 0 : IPSECIF_ERR_CRYPTO;
    case IPSECIF_EALG_AES_GCM16:
    case IPSECIF_EALG_AES_GMAC:
        if (!aes_key_len_ok(key_len)) {
            return IPSECIF_ERR_CRYPTO;
        }
        s->key_len = (uint8_t)key_len;
        return gcm_setup(m, s, key);
    case IPSECIF_EALG_CHACHA20_POLY1305:
        if (key_len != CHACHA_KEY) {
            return IPSECIF_ERR_CRYPTO;
        }
        memcpy(s->u.chacha, key, CHACHA_KEY);
        return 0;
    case IPSECIF_EALG_AES_CBC:
        if (!aes_key_len_ok(key_len)) {
            return IPSECIF_ERR_CRYPTO;
        }
        s->key_len = (uint8_t)key_len;
        if (key_len == 16) {
            IMB_AES_KEYEXP_128(m, key, s->u.cbc.c.aes.enc, s->u.cbc.c.aes.dec);
        } else if (key_len == 24) {
            IMB_AES_KEYEXP_192(m, key, s->u.cbc.c.aes.enc, s->u.cbc.c.aes.dec);
        } else {
            IMB_AES_KEYEXP_256(m, key, s->u.cbc.c.aes.enc, s->u.cbc.c.aes.dec);
        }
        return 0;
    case IPSECIF_EALG_3DES_CBC:
        if (key_len != DES3_KEY_LEN) {
            return IPSECIF_ERR_CRYPTO;
        }
        for (int i = 0; i < 3; i++) {
            if (IMB_DES_KEYSCHED(m, s->u.cbc.c.des3[i], key + 8 * i) != 0) {
                return IPSECIF_ERR_CRYPTO;
            }
        }
        return 0;
    default:
        return IPSECIF_ERR_UNSUPPORTED;
    }
}

/* ---- The ops ---- */

static void crypto_wipe(void *slot)
{
    struct slot *s = slot;

    if (s->gcm_heap != NULL) {
        explicit_bzero(s->gcm_heap, GCM_HEAP_SIZE);
        free(s->gcm_heap);
    }
    explicit_bzero(slot, sizeof(struct slot));
}

static int crypto_init(void *slot, uint8_t ealg, const uint8_t *ekey, size_t ekey_len, uint8_t aalg,
                       const uint8_t *akey, size_t akey_len)
{
    struct slot *s = slot;
    IMB_MGR *m;
    int ret;

    /* The slot may hold anything (fresh SA memory); treat it as raw. */
    explicit_bzero(slot, sizeof(struct slot));

    ret = ipsecif_crypto_check_pair(ealg_known(ealg), is_aead(ealg), ealg,
                                    aalg == IPSECIF_AALG_NONE || hash_len(aalg) != 0, aalg, ekey,
                                    ekey_len, akey, akey_len);
    if (ret != 0) {
        return ret;
    }
    m = mgr();
    if (m == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }

    s->ealg = ealg;
    s->aalg = aalg;
    ret = cipher_setup(m, s, ekey, ekey_len);
    if (ret != 0) {
        goto fail;
    }
    if (aalg == IPSECIF_AALG_NONE) {
        ret = akey_len == 0 ? 0 : IPSECIF_ERR_CRYPTO;
    } else {
        /* The states are made by the manager that continues them. */
        m = hash_mgr(aalg);
        ret = m != NULL ? hmac_setup(m, s, akey, akey_len) : IPSECIF_ERR_CRYPTO;
    }
    if (ret != 0) {
        goto fail;
    }
    s->live |= LIVE_READY;
    return 0;
fail:
    crypto_wipe(slot);
    return ret;
}

static int aead_check(const struct slot *s, const uint8_t *nonce, size_t nonce_len,
                      const uint8_t *aad, size_t aad_len, const uint8_t *data, size_t len,
                      const uint8_t *tag, size_t tag_len)
{
    if (!(s->live & LIVE_READY) || !is_aead(s->ealg)) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (nonce == NULL || nonce_len != NONCE_LEN || tag == NULL || tag_len != TAG_LEN ||
        (aad == NULL && aad_len != 0) || (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    /* GMAC never encrypts (RFC 4543): the whole packet is in the AAD. */
    if (s->ealg == IPSECIF_EALG_AES_GMAC && len != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    return 0;
}

static void chacha_pass(IMB_MGR *m, struct slot *s, int enc, const uint8_t *nonce,
                        const uint8_t *aad, size_t aad_len, uint8_t *data, size_t len, uint8_t *tag)
{
    struct chacha20_poly1305_context_data c;

    IMB_CHACHA20_POLY1305_INIT(m, s->u.chacha, &c, nonce, aad, aad_len);
    if (len > 0 && enc) {
        IMB_CHACHA20_POLY1305_ENC_UPDATE(m, s->u.chacha, &c, data, data, len);
    } else if (len > 0) {
        IMB_CHACHA20_POLY1305_DEC_UPDATE(m, s->u.chacha, &c, data, data, len);
    }
    IMB_CHACHA20_POLY1305_ENC_FINALIZE(m, &c, tag, TAG_LEN);
    explicit_bzero(&c, sizeof(c));
}

static void gmac_pass(IMB_MGR *m, struct slot *s, const uint8_t *nonce, const uint8_t *aad,
                      size_t aad_len, uint8_t *tag)
{
    const struct gcm_key_data *kd = gcm_key(s);
    struct gcm_context_data c;

    switch (s->key_len) {
    case 16:
        IMB_AES128_GMAC_INIT(m, kd, &c, nonce, NONCE_LEN);
        IMB_AES128_GMAC_UPDATE(m, kd, &c, aad, aad_len);
        IMB_AES128_GMAC_FINALIZE(m, kd, &c, tag, TAG_LEN);
        break;
    case 24:
        IMB_AES192_GMAC_INIT(m, kd, &c, nonce, NONCE_LEN);
        IMB_AES192_GMAC_UPDATE(m, kd, &c, aad, aad_len);
        IMB_AES192_GMAC_FINALIZE(m, kd, &c, tag, TAG_LEN);
        break;
    default:
        IMB_AES256_GMAC_INIT(m, kd, &c, nonce, NONCE_LEN);
        IMB_AES256_GMAC_UPDATE(m, kd, &c, aad, aad_len);
        IMB_AES256_GMAC_FINALIZE(m, kd, &c, tag, TAG_LEN);
        break;
    }
    explicit_bzero(&c, sizeof(c));
}

static void gcm_pass(IMB_MGR *m, struct slot *s, int enc, const uint8_t *nonce, const uint8_t *aad,
                     size_t aad_len, uint8_t *data, size_t len, uint8_t *tag)
{
    const struct gcm_key_data *kd = gcm_key(s);
    struct gcm_context_data c;

    if (enc) {
        switch (s->key_len) {
        case 16:
            IMB_AES128_GCM_ENC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        case 24:
            IMB_AES192_GCM_ENC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        default:
            IMB_AES256_GCM_ENC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        }
    } else {
        switch (s->key_len) {
        case 16:
            IMB_AES128_GCM_DEC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        case 24:
            IMB_AES192_GCM_DEC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        default:
            IMB_AES256_GCM_DEC(m, kd, &c, data, data, len, nonce, aad, aad_len, tag, TAG_LEN);
            break;
        }
    }
    explicit_bzero(&c, sizeof(c));
}

/*
 * One AEAD pass in place: encrypt (enc) or decrypt data, and write the tag
 * it computes. The library takes no NULL buffer, even for zero bytes.
 */
static void aead_pass(IMB_MGR *m, struct slot *s, int enc, const uint8_t *nonce, const uint8_t *aad,
                      size_t aad_len, uint8_t *data, size_t len, uint8_t *tag)
{
    uint8_t none[1] = {0};
    uint8_t *d = len > 0 ? data : none;
    const uint8_t *a = aad_len > 0 ? aad : none;

    switch (s->ealg) {
    case IPSECIF_EALG_CHACHA20_POLY1305:
        chacha_pass(m, s, enc, nonce, a, aad_len, d, len, tag);
        break;
    case IPSECIF_EALG_AES_GMAC:
        gmac_pass(m, s, nonce, a, aad_len, tag);
        break;
    default:
        gcm_pass(m, s, enc, nonce, a, aad_len, d, len, tag);
        break;
    }
}

static int crypto_aead_seal(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, uint8_t *tag, size_t tag_len)
{
    struct slot *s = slot;
    IMB_MGR *m;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);

    if (ret != 0) {
        return ret;
    }
    m = mgr();
    if (m == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    aead_pass(m, s, 1, nonce, aad, aad_len, data, len, tag);
    return 0;
}

/*
 * Decrypts in place while computing the tag, then compares it in constant
 * time; on a mismatch the plaintext is wiped before anyone sees it.
 */
static int crypto_aead_open(void *slot, const uint8_t *nonce, size_t nonce_len, const uint8_t *aad,
                            size_t aad_len, uint8_t *data, size_t len, const uint8_t *tag,
                            size_t tag_len)
{
    struct slot *s = slot;
    uint8_t want[TAG_LEN];
    IMB_MGR *m;
    int ret = aead_check(s, nonce, nonce_len, aad, aad_len, data, len, tag, tag_len);

    if (ret != 0) {
        return ret;
    }
    m = mgr();
    if (m == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    aead_pass(m, s, 0, nonce, aad, aad_len, data, len, want);
    if (tag_differs(want, tag, TAG_LEN)) {
        if (len > 0) {
            explicit_bzero(data, len);
        }
        ret = IPSECIF_ERR_AUTH;
    }
    explicit_bzero(want, sizeof(want));
    return ret;
}

/* ---- Bursts ---- */

/*
 * Bursts run the direct API op after op: the thread's manager is fetched
 * once per burst, each op's arguments are checked, then it runs. The job API
 * (GCM jobs submitted back to back, then flushed) was measured here too:
 * on the AVX2 path of intel-ipsec-mb 1.3 a burst of 32 AES-128-GCM jobs
 * each way took about twice as long as the direct calls (64-byte packets:
 * 380-490 against 170-200 ns per packet; bench_esp part 1d reports both),
 * since that path has no multi-lane GCM behind the job manager.
 */
static void aead_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n, int enc)
{
    struct slot *s = slot;
    uint8_t want[TAG_LEN];
    IMB_MGR *m = mgr();
    size_t i;

    for (i = 0; i < n; i++) {
        struct ipsecif_aead_op *op = ops[i];

        op->rc = m == NULL ? IPSECIF_ERR_CRYPTO
                           : aead_check(s, op->nonce, op->nonce_len, op->aad, op->aad_len, op->data,
                                        op->len, op->tag, op->tag_len);
    }
    if (m == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        struct ipsecif_aead_op *op = ops[i];

        if (op->rc != 0) {
            continue;
        }
        aead_pass(m, s, enc, op->nonce, op->aad, op->aad_len, op->data, op->len,
                  enc ? op->tag : want);
        if (!enc && tag_differs(want, op->tag, TAG_LEN)) {
            if (op->len > 0) {
                explicit_bzero(op->data, op->len);
            }
            op->rc = IPSECIF_ERR_AUTH;
        }
    }
    explicit_bzero(want, sizeof(want));
}

static void crypto_aead_seal_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    aead_burst(slot, ops, n, 1);
}

static void crypto_aead_open_burst(void *slot, struct ipsecif_aead_op *const *ops, size_t n)
{
    aead_burst(slot, ops, n, 0);
}

static int crypto_cbc(void *slot, int enc, const uint8_t *iv, uint8_t *data, size_t len)
{
    struct slot *s = slot;
    const void *des3[3];
    size_t block;
    IMB_MGR *m;
    IMB_JOB *job;
    int ret;

    if (!(s->live & LIVE_READY) || (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    switch (s->ealg) {
    case IPSECIF_EALG_NULL:
        return 0;
    case IPSECIF_EALG_AES_CBC:
        block = IMB_AES_BLOCK_SIZE;
        break;
    case IPSECIF_EALG_3DES_CBC:
        block = IMB_DES_BLOCK_SIZE;
        break;
    default:
        return IPSECIF_ERR_CRYPTO;
    }
    if (iv == NULL || len % block != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (len == 0) {
        return 0; /* the job API refuses an empty cipher run */
    }
    m = mgr();
    if (m == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    job = IMB_GET_NEXT_JOB(m);
    memset(job, 0, sizeof(*job));
    if (s->ealg == IPSECIF_EALG_AES_CBC) {
        job->cipher_mode = IMB_CIPHER_CBC;
        job->enc_keys = s->u.cbc.c.aes.enc;
        job->dec_keys = s->u.cbc.c.aes.dec;
        job->key_len_in_bytes = s->key_len;
    } else {
        /* The job takes an array of the three schedules; made here so that
         * the slot holds no pointer into itself. */
        des3[0] = s->u.cbc.c.des3[0];
        des3[1] = s->u.cbc.c.des3[1];
        des3[2] = s->u.cbc.c.des3[2];
        job->cipher_mode = IMB_CIPHER_DES3;
        job->enc_keys = des3;
        job->dec_keys = des3;
        job->key_len_in_bytes = DES3_KEY_LEN;
    }
    job->cipher_direction = enc ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
    job->chain_order = enc ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
    job->hash_alg = IMB_AUTH_NULL;
    job->src = data;
    job->dst = data;
    job->cipher_start_src_offset_in_bytes = 0;
    job->msg_len_to_cipher_in_bytes = len;
    /* The library reads the IV; the caller's stays intact. */
    job->iv = iv;
    job->iv_len_in_bytes = block;
    ret = run_job(m, job);
    if (ret != 0) {
        explicit_bzero(data, len);
    }
    return ret;
}

static int crypto_mac(void *slot, const uint8_t *data, size_t len, uint8_t *out, size_t out_len)
{
    struct slot *s = slot;
    uint8_t aalg = s->aalg;
    size_t dlen = hash_len(aalg);
    uint8_t digest[HASH_MAX];
    IMB_MGR *m;
    IMB_JOB *job;
    int ret;

    if (!(s->live & LIVE_READY) || dlen == 0 || out == NULL || out_len == 0 || out_len > dlen ||
        (data == NULL && len != 0)) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (len == 0) {
        memcpy(out, s->u.cbc.empty_mac, out_len);
        return 0;
    }
    m = hash_mgr(aalg);
    if (m == NULL) {
        return IPSECIF_ERR_CRYPTO;
    }
    job = IMB_GET_NEXT_JOB(m);
    memset(job, 0, sizeof(*job));
    job->cipher_mode = IMB_CIPHER_NULL;
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    job->hash_alg = hash_alg(aalg);
    job->src = data;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = len;
    /* The full digest (a length every version takes), truncated below. */
    job->auth_tag_output = digest;
    job->auth_tag_output_len_in_bytes = dlen;
    job->u.HMAC._hashed_auth_key_xor_ipad = s->u.cbc.ipad;
    job->u.HMAC._hashed_auth_key_xor_opad = s->u.cbc.opad;
    ret = run_job(m, job);
    if (ret == 0) {
        memcpy(out, digest, out_len);
    }
    explicit_bzero(digest, sizeof(digest));
    return ret;
}

const struct ipsecif_crypto_ops ipsecif_crypto_ipsecmb_ops = {
    .slot_size = sizeof(struct slot),
    .init = crypto_init,
    .wipe = crypto_wipe,
    .aead_seal = crypto_aead_seal,
    .aead_open = crypto_aead_open,
    .cbc = crypto_cbc,
    .mac = crypto_mac,
    .aead_seal_burst = crypto_aead_seal_burst,
    .aead_open_burst = crypto_aead_open_burst,
};

/* ---- Random ---- */

int ipsecif_crypto_ipsecmb_random(void *user, uint8_t *out, size_t len)
{
    size_t done = 0;
    ssize_t n;

    (void)user;
    if (out == NULL && len != 0) {
        return IPSECIF_ERR_RANDOM;
    }
    while (done < len) {
        /* The kernel's generator; large requests may come back in parts. */
        n = getrandom(out + done, len - done, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto fail;
        }
        done += (size_t)n;
    }
    return 0;
fail:
    /* A caller that ignores the error must not send a partly filled buffer. */
    explicit_bzero(out, len);
    return IPSECIF_ERR_RANDOM;
}
