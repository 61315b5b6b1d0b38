/* Small helpers every module uses: constant-time compare, wiping, addresses,
 * hashing and the Internet checksum. */
#include "base/base.h"

int ipsecif_ct_memeq(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t diff = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        diff |= (uint8_t)(x[i] ^ y[i]);
    }
    /* Map 0 -> 1 and anything else -> 0 without a branch on the data. */
    return (int)(1 & (((uint32_t)diff - 1) >> 8));
}

void ipsecif_wipe(void *p, size_t n)
{
#if defined(__GNUC__) || defined(__clang__)
    /* memset at full speed; the barrier makes the stores observable, so
     * the compiler cannot drop them as dead. */
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
#else
    volatile uint8_t *v = p;

    while (n--) {
        *v++ = 0;
    }
#endif
}

size_t ipsecif_addr_len(uint8_t family)
{
    if (family == IPSECIF_AF_INET) {
        return 4;
    }
    if (family == IPSECIF_AF_INET6) {
        return 16;
    }
    return 0;
}

bool ipsecif_addr_is_unspec(const struct ipsecif_addr *a)
{
    size_t n = ipsecif_addr_len(a->family);
    size_t i;

    if (n == 0) {
        return true;
    }
    for (i = 0; i < n; i++) {
        if (a->bytes[i] != 0) {
            return false;
        }
    }
    return true;
}

bool ipsecif_addr_in_prefix(const struct ipsecif_addr *addr, const struct ipsecif_addr *prefix,
                            uint8_t plen)
{
    size_t n = ipsecif_addr_len(prefix->family);
    size_t full;
    uint8_t mask;

    if (addr->family != prefix->family || plen > n * 8) {
        return false;
    }
    full = plen / 8;
    if (memcmp(addr->bytes, prefix->bytes, full) != 0) {
        return false;
    }
    if ((plen % 8) == 0) {
        return true;
    }
    mask = (uint8_t)(0xff << (8 - plen % 8));
    return ((addr->bytes[full] ^ prefix->bytes[full]) & mask) == 0;
}

void ipsecif_addr_mask(struct ipsecif_addr *a, unsigned plen)
{
    size_t len = ipsecif_addr_len(a->family);
    size_t full;

    if (plen > 8 * len) {
        plen = (unsigned)(8 * len);
    }
    full = plen / 8;
    if (plen % 8 != 0) {
        a->bytes[full] &= (uint8_t)(0xffu << (8 - plen % 8));
        full++;
    }
    memset(a->bytes + full, 0, sizeof(a->bytes) - full);
}

void ipsecif_addr_norm(struct ipsecif_addr *a)
{
    ipsecif_addr_mask(a, 128);
}

uint32_t ipsecif_hash_bytes(uint32_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

uint32_t ipsecif_hash_addr(uint32_t h, const struct ipsecif_addr *a)
{
    h = ipsecif_hash_bytes(h, &a->family, 1);
    return ipsecif_hash_bytes(h, a->bytes, ipsecif_addr_len(a->family));
}

uint32_t ipsecif_hash_u32(uint32_t h, uint32_t v)
{
    uint8_t b[4];

    ipsecif_store32(b, v);
    return ipsecif_hash_bytes(h, b, sizeof(b));
}

uint32_t ipsecif_hash_finish(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h;
}

uint32_t ipsecif_hash_size(uint32_t n)
{
    uint32_t s = 16;

    while (s < n && s < 0x80000000u) {
        s <<= 1;
    }
    return s;
}
