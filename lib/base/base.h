/*
 * Base utilities every module of lib/ uses and that use nothing of theirs:
 * byte-order loads and stores, constant-time compare, wiping, addresses,
 * hashing, the Internet checksum and the one alignment rule of the carved
 * context memory. Not installed.
 */
#ifndef IPSECIF_BASE_H
#define IPSECIF_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ipsecif/ipsecif.h"

/* Expands to static unless a test build wants a direct look. */
#ifdef IPSECIF_TESTING
#define IPSECIF_STATIC
#else
#define IPSECIF_STATIC static
#endif

#define IPSECIF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The batch path's stages have every call inside them inlined (GCC and
 * clang; with LTO across files), which takes the calls, the argument
 * passing and the register saves out of the per-packet cost. What a packet
 * seldom needs is kept out of them: IPSECIF_COLD (also optimized for size)
 * for drops, errors and key management events, IPSECIF_NOINLINE for what is
 * another path's own (host traffic, SAs with byte limits) and for the table
 * lookups a batch's caches spare all but its first packet. A build for size
 * (-Os) keeps its calls.
 */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__OPTIMIZE_SIZE__)
#define IPSECIF_FLATTEN __attribute__((flatten))
#define IPSECIF_COLD __attribute__((cold, noinline))
#define IPSECIF_NOINLINE __attribute__((noinline))
#elif defined(__GNUC__) || defined(__clang__)
#define IPSECIF_FLATTEN
#define IPSECIF_COLD __attribute__((cold))
#define IPSECIF_NOINLINE
#else
#define IPSECIF_FLATTEN
#define IPSECIF_COLD
#define IPSECIF_NOINLINE
#endif

/* Every piece of the context memory starts on a 16-byte boundary. */
#define IPSECIF_ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

/* ---- Byte-order helpers: never cast structs onto packets. ---- */
static inline uint16_t ipsecif_load16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}
static inline uint32_t ipsecif_load32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t ipsecif_load64(const uint8_t *p)
{
    return ((uint64_t)ipsecif_load32(p) << 32) | ipsecif_load32(p + 4);
}
static inline void ipsecif_store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void ipsecif_store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void ipsecif_store64(uint8_t *p, uint64_t v)
{
    ipsecif_store32(p, (uint32_t)(v >> 32));
    ipsecif_store32(p + 4, (uint32_t)v);
}

/* ---- Packet buffers ---- */
/* The one shape check of a buffer view handed in: data inside the buffer. */
static inline bool ipsecif_buf_valid(const struct ipsecif_buf *b)
{
    return b != NULL && b->base != NULL && b->off <= b->cap && b->len <= b->cap - b->off;
}
/* Room to push head bytes in front and put tail bytes behind. */
static inline bool ipsecif_buf_room(const struct ipsecif_buf *b, size_t head, size_t tail)
{
    return ipsecif_buf_headroom(b) >= head && ipsecif_buf_tailroom(b) >= tail;
}

/* Constant-time comparison: 1 if equal, 0 otherwise. */
int ipsecif_ct_memeq(const void *a, const void *b, size_t n);
/* Wipe memory in a way the compiler may not drop. */
void ipsecif_wipe(void *p, size_t n);

/* ---- Addresses ---- */
/* Inline: every lookup compares addresses, and constant-size compares
 * become a load or two. */
static inline bool ipsecif_addr_eq(const struct ipsecif_addr *a, const struct ipsecif_addr *b)
{
    if (a->family != b->family) {
        return false;
    }
    if (a->family == IPSECIF_AF_INET) {
        return memcmp(a->bytes, b->bytes, 4) == 0;
    }
    if (a->family == IPSECIF_AF_INET6) {
        return memcmp(a->bytes, b->bytes, 16) == 0;
    }
    return true;
}
bool ipsecif_addr_is_unspec(const struct ipsecif_addr *a);
size_t ipsecif_addr_len(uint8_t family); /* 4, 16, or 0 */
/* Does addr fall in prefix/plen? Families must match. */
bool ipsecif_addr_in_prefix(const struct ipsecif_addr *addr, const struct ipsecif_addr *prefix,
                            uint8_t plen);
/* Clear the bits past plen, and the bytes past the family's length, so that
 * equal prefixes compare and hash equal. */
void ipsecif_addr_mask(struct ipsecif_addr *a, unsigned plen);
/* The stored form of a full address: ipsecif_addr_mask(a, 128). */
void ipsecif_addr_norm(struct ipsecif_addr *a);

/* ---- Hashing: FNV-1a over the key, then ipsecif_hash_finish() ---- */
#define IPSECIF_HASH_INIT 2166136261u
uint32_t ipsecif_hash_bytes(uint32_t h, const void *p, size_t n);
uint32_t ipsecif_hash_addr(uint32_t h, const struct ipsecif_addr *a);
uint32_t ipsecif_hash_u32(uint32_t h, uint32_t v);
/* FNV leaves the low bits, which pick the bucket, weak: an avalanche step
 * spreads the whole key into them. */
uint32_t ipsecif_hash_finish(uint32_t h);
/* Round a power-of-two hash size for n entries (at least 16). */
uint32_t ipsecif_hash_size(uint32_t n);

/* ---- Internet checksum: sum 16-bit words (partial, not folded) and fold ---- */

/* Inline: most sums are of headers, of a length the caller knows, which the
 * compiler then unrolls into a few loads. */
static inline uint32_t ipsecif_csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    /* A 64-bit sum of 32-bit words does not overflow below 16 GiB; the
     * result is folded to 17 bits, so callers may add partial sums. */
    uint64_t acc = sum;
    size_t i;

    /* 32-bit words: 2^16 = 1 modulo 0xffff, so a big-endian 32-bit word
     * adds what its two 16-bit halves add. */
    for (i = 0; i + 8 <= n; i += 8) {
        acc += (uint64_t)ipsecif_load32(p + i) + ipsecif_load32(p + i + 4);
    }
    if (i + 4 <= n) {
        acc += ipsecif_load32(p + i);
        i += 4;
    }
    for (; i + 1 < n; i += 2) {
        acc += ipsecif_load16(p + i);
    }
    if (n & 1) {
        acc += (uint64_t)p[n - 1] << 8;
    }
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffu) + (acc >> 16);
    acc = (acc & 0xffffu) + (acc >> 16);
    return (uint32_t)acc;
}

static inline uint16_t ipsecif_csum_fold(uint32_t sum)
{
    /* Two folds take any 32-bit sum to 16 bits: the first leaves at most
     * 0x1fffe, the second at most 0xffff. */
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

#endif /* IPSECIF_BASE_H */
