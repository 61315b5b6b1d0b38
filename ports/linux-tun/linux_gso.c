/* TCP segmentation (TSO from the kernel) and coalescing (GRO towards it)
 * for TUN devices with virtio-net headers; see linux_gso.h. */
#include <string.h>

#include "linux_gso.h"

/* The coalescer's counters are written by the thread that owns it and may
 * be read by another (relaxed atomics, as IPSECIF_POSIX_COUNT()). */
#define GRO_COUNT(c, n)                                                                            \
    __atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

#define IPPROTO_TCP_NUM 6u

/* TCP flag bits (header byte 13). */
#define TH_FIN 0x01u
#define TH_SYN 0x02u
#define TH_RST 0x04u
#define TH_PSH 0x08u
#define TH_ACK 0x10u
#define TH_URG 0x20u
#define TH_ECE 0x40u
#define TH_CWR 0x80u

static uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void st32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Host byte order: the virtio header's legacy layout. */
static uint16_t ldh(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static void sth(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}

void ipsecif_linux_vnet_get(const uint8_t *p, struct ipsecif_linux_vnet *h)
{
    h->flags = p[0];
    h->gso_type = p[1];
    h->hdr_len = ldh(p + 2);
    h->gso_size = ldh(p + 4);
    h->csum_start = ldh(p + 6);
    h->csum_offset = ldh(p + 8);
}

void ipsecif_linux_vnet_put(uint8_t *p, const struct ipsecif_linux_vnet *h)
{
    p[0] = h->flags;
    p[1] = h->gso_type;
    sth(p + 2, h->hdr_len);
    sth(p + 4, h->gso_size);
    sth(p + 6, h->csum_start);
    sth(p + 8, h->csum_offset);
}

/* ---- Checksums ---- */

uint32_t ipsecif_linux_csum_add(uint32_t sum, const uint8_t *data, size_t len)
{
    uint64_t acc = sum;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        acc +=
            (uint32_t)ld16(data + i) + ld16(data + i + 2) + ld16(data + i + 4) + ld16(data + i + 6);
    }
    for (; i + 2 <= len; i += 2) {
        acc += ld16(data + i);
    }
    if (i < len) {
        acc += (uint32_t)data[i] << 8;
    }
    while (acc >> 32 != 0) {
        acc = (acc & 0xffffffffu) + (acc >> 32);
    }
    return (uint32_t)acc;
}

uint16_t ipsecif_linux_csum_fold(uint32_t sum)
{
    while (sum >> 16 != 0) {
        sum = (sum & 0xffffu) + (sum >> 16);
    }
    return (uint16_t)sum;
}

/* The TCP pseudo-header of pkt (IP header at 0) for l4len transport bytes. */
static uint32_t pseudo(const uint8_t *pkt, bool v6, size_t l4len)
{
    uint32_t sum;

    if (v6) {
        sum = ipsecif_linux_csum_add(0, pkt + 8, 32);
        sum += (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffffu);
    } else {
        sum = ipsecif_linux_csum_add(0, pkt + 12, 8);
        sum += (uint32_t)l4len;
    }
    return sum + IPPROTO_TCP_NUM;
}

static void ip4_csum(uint8_t *ip, size_t ihl)
{
    st16(ip + 10, 0);
    st16(ip + 10, (uint16_t)~ipsecif_linux_csum_fold(ipsecif_linux_csum_add(0, ip, ihl)));
}

/* ---- Segmentation ---- */

/* Fill in the partial checksum of a single packet: the field holds the
 * pseudo-header sum, the rest of the coverage is summed here. */
static int complete_csum(uint8_t *pkt, size_t len, const struct ipsecif_linux_vnet *h)
{
    size_t start = h->csum_start;
    size_t field = start + h->csum_offset;
    uint16_t c;

    if (start >= len || field > len || len - field < 2) {
        return IPSECIF_LINUX_GSO_ERR_HDR;
    }
    c = (uint16_t)~ipsecif_linux_csum_fold(ipsecif_linux_csum_add(0, pkt + start, len - start));
    st16(pkt + field, c != 0 ? c : 0xffffu);
    return IPSECIF_LINUX_GSO_OK;
}

/* IP and TCP header of a super-packet: offsets, or a verdict. */
static int parse_tcp(const uint8_t *pkt, size_t len, bool v6, size_t *l4off, size_t *hlen)
{
    size_t thl;

    if (v6) {
        if (len < 40 || pkt[0] >> 4 != 6 || (size_t)ld16(pkt + 4) + 40 != len ||
            pkt[6] != IPPROTO_TCP_NUM) {
            return IPSECIF_LINUX_GSO_ERR_PKT;
        }
        *l4off = 40;
    } else {
        size_t ihl;

        if (len < 20 || pkt[0] >> 4 != 4) {
            return IPSECIF_LINUX_GSO_ERR_PKT;
        }
        ihl = (size_t)(pkt[0] & 0x0fu) * 4;
        if (ihl < 20 || ihl > len || ld16(pkt + 2) != len || pkt[9] != IPPROTO_TCP_NUM ||
            (ld16(pkt + 6) & 0x3fffu) != 0) {
            return IPSECIF_LINUX_GSO_ERR_PKT;
        }
        *l4off = ihl;
    }
    if (len - *l4off < 20) {
        return IPSECIF_LINUX_GSO_ERR_PKT;
    }
    thl = (size_t)(pkt[*l4off + 12] >> 4) * 4;
    if (thl < 20 || thl > len - *l4off) {
        return IPSECIF_LINUX_GSO_ERR_PKT;
    }
    *hlen = *l4off + thl;
    return IPSECIF_LINUX_GSO_OK;
}

int ipsecif_linux_gso_prepare(uint8_t *pkt, size_t len, const struct ipsecif_linux_vnet *h,
                              size_t seg_cap, struct ipsecif_linux_gso *g)
{
    uint8_t type = (uint8_t)(h->gso_type & ~IPSECIF_LINUX_VNET_GSO_ECN);
    size_t payload;
    int rc;

    memset(g, 0, sizeof(*g));
    g->pkt = pkt;
    g->len = len;
    g->nseg = 1;
    if (len == 0 || len > IPSECIF_LINUX_GSO_MAX) {
        return IPSECIF_LINUX_GSO_ERR_PKT;
    }
    if (type == IPSECIF_LINUX_VNET_GSO_NONE) {
        if ((h->gso_type & IPSECIF_LINUX_VNET_GSO_ECN) != 0) {
            return IPSECIF_LINUX_GSO_ERR_HDR;
        }
        if (len > seg_cap) {
            return IPSECIF_LINUX_GSO_ERR_ROOM;
        }
        if ((h->flags & IPSECIF_LINUX_VNET_F_NEEDS_CSUM) != 0) {
            return complete_csum(pkt, len, h);
        }
        return IPSECIF_LINUX_GSO_OK;
    }
    if (type != IPSECIF_LINUX_VNET_GSO_TCPV4 && type != IPSECIF_LINUX_VNET_GSO_TCPV6) {
        return IPSECIF_LINUX_GSO_ERR_TYPE;
    }
    g->v6 = type == IPSECIF_LINUX_VNET_GSO_TCPV6;
    rc = parse_tcp(pkt, len, g->v6, &g->l4off, &g->hlen);
    if (rc != IPSECIF_LINUX_GSO_OK) {
        return rc;
    }
    if ((h->flags & IPSECIF_LINUX_VNET_F_NEEDS_CSUM) != 0 &&
        (h->csum_start != g->l4off || h->csum_offset != 16)) {
        return IPSECIF_LINUX_GSO_ERR_HDR;
    }
    if ((pkt[g->l4off + 13] & (TH_SYN | TH_RST | TH_URG)) != 0) {
        return IPSECIF_LINUX_GSO_ERR_TYPE;
    }
    payload = len - g->hlen;
    if (h->gso_size == 0 || payload == 0) {
        return IPSECIF_LINUX_GSO_ERR_HDR;
    }
    g->mss = h->gso_size;
    if (g->mss > payload) {
        g->mss = payload;
    }
    if (g->hlen + g->mss > seg_cap) {
        return IPSECIF_LINUX_GSO_ERR_ROOM;
    }
    g->nseg = (unsigned)((payload + g->mss - 1) / g->mss);
    g->off = g->hlen;
    g->seq = ld32(pkt + g->l4off + 4);
    g->id = g->v6 ? 0 : ld16(pkt + 4);
    g->gso = true;
    return IPSECIF_LINUX_GSO_OK;
}

unsigned ipsecif_linux_gso_count(const struct ipsecif_linux_gso *g)
{
    return g->nseg;
}

size_t ipsecif_linux_gso_seg_max(const struct ipsecif_linux_gso *g)
{
    return g->gso ? g->hlen + g->mss : g->len;
}

size_t ipsecif_linux_gso_next(struct ipsecif_linux_gso *g, uint8_t *out)
{
    size_t n;
    size_t seg;
    uint8_t *th;
    uint8_t flags;
    uint32_t sum;

    if (!g->gso || g->idx >= g->nseg || g->off >= g->len) {
        return 0;
    }
    n = g->len - g->off;
    if (n > g->mss) {
        n = g->mss;
    }
    seg = g->hlen + n;
    memcpy(out, g->pkt, g->hlen);
    memcpy(out + g->hlen, g->pkt + g->off, n);
    if (g->v6) {
        st16(out + 4, (uint16_t)(seg - 40));
    } else {
        st16(out + 2, (uint16_t)seg);
        st16(out + 4, g->id);
        ip4_csum(out, g->l4off);
    }
    th = out + g->l4off;
    st32(th + 4, g->seq);
    flags = th[13];
    if (g->idx + 1 < g->nseg) {
        flags = (uint8_t)(flags & ~(TH_FIN | TH_PSH));
    }
    if (g->idx > 0) {
        flags = (uint8_t)(flags & ~TH_CWR);
    }
    th[13] = flags;
    st16(th + 16, 0);
    sum = pseudo(out, g->v6, seg - g->l4off);
    sum = ipsecif_linux_csum_add(sum, th, seg - g->l4off);
    st16(th + 16, (uint16_t)~ipsecif_linux_csum_fold(sum));
    g->off += n;
    g->seq += (uint32_t)n;
    g->id = (uint16_t)(g->id + 1);
    g->idx++;
    return seg;
}

/* ---- Coalescing ---- */

void ipsecif_linux_gro_init(struct ipsecif_linux_gro *g, uint8_t *buf, size_t cap)
{
    memset(g, 0, sizeof(*g));
    g->buf = buf;
    g->cap = cap < IPSECIF_LINUX_GSO_MAX ? cap : IPSECIF_LINUX_GSO_MAX;
}

bool ipsecif_linux_gro_pending(const struct ipsecif_linux_gro *g)
{
    return g->len != 0;
}

/* A segment that may be coalesced: its offsets, family and payload. */
struct cand {
    size_t l4off;
    size_t hlen;
    size_t payload;
    bool v6;
};

static bool candidate(const uint8_t *pkt, size_t len, struct cand *c)
{
    uint8_t flags;

    if (len < 20) {
        return false;
    }
    c->v6 = pkt[0] >> 4 == 6;
    if (!c->v6) {
        /* No IP options, DF, not a fragment: the kernel may cut it again. */
        if (pkt[0] != 0x45 || (ld16(pkt + 6) & 0xbfffu) != 0 || (pkt[6] & 0x40u) == 0) {
            return false;
        }
    }
    if (parse_tcp(pkt, len, c->v6, &c->l4off, &c->hlen) != IPSECIF_LINUX_GSO_OK) {
        return false;
    }
    flags = pkt[c->l4off + 13];
    if (flags != TH_ACK && flags != (TH_ACK | TH_PSH)) {
        return false;
    }
    c->payload = len - c->hlen;
    return c->payload > 0;
}

static bool csum_ok(const uint8_t *pkt, size_t len, const struct cand *c)
{
    uint32_t sum = pseudo(pkt, c->v6, len - c->l4off);

    sum = ipsecif_linux_csum_add(sum, pkt + c->l4off, len - c->l4off);
    return ipsecif_linux_csum_fold(sum) == 0xffffu;
}

/* Same flow and headers: every byte but lengths, ID, checksums, seq and PSH. */
static bool same_headers(const struct ipsecif_linux_gro *g, const uint8_t *pkt,
                         const struct cand *c)
{
    const uint8_t *a = g->buf;
    const uint8_t *ta = a + g->l4off;
    const uint8_t *tb = pkt + c->l4off;

    if (c->v6 != g->v6 || c->hlen != g->hlen || c->l4off != g->l4off) {
        return false;
    }
    if (c->v6) {
        if (memcmp(a, pkt, 4) != 0 || memcmp(a + 6, pkt + 6, 34) != 0) {
            return false;
        }
    } else if (memcmp(a, pkt, 2) != 0 || memcmp(a + 6, pkt + 6, 4) != 0 ||
               memcmp(a + 12, pkt + 12, 8) != 0) {
        return false;
    }
    return memcmp(ta, tb, 4) == 0 && memcmp(ta + 8, tb + 8, 5) == 0 &&
           (ta[13] & ~TH_PSH) == (tb[13] & ~TH_PSH) && memcmp(ta + 14, tb + 14, 2) == 0 &&
           memcmp(ta + 18, tb + 18, g->hlen - g->l4off - 18) == 0;
}

static void emit_single(ipsecif_linux_gro_emit_fn emit, void *arg, const uint8_t *pkt, size_t len)
{
    struct ipsecif_linux_vnet h;

    memset(&h, 0, sizeof(h));
    emit(arg, &h, pkt, len);
}

void ipsecif_linux_gro_flush(struct ipsecif_linux_gro *g, ipsecif_linux_gro_emit_fn emit, void *arg)
{
    struct ipsecif_linux_vnet h;
    uint8_t *th;

    if (g->len == 0) {
        return;
    }
    if (g->nseg < 2) {
        GRO_COUNT(g->stats.single, 1);
        emit_single(emit, arg, g->buf, g->len);
        g->len = 0;
        return;
    }
    if (g->v6) {
        st16(g->buf + 4, (uint16_t)(g->len - 40));
    } else {
        st16(g->buf + 2, (uint16_t)g->len);
        ip4_csum(g->buf, g->l4off);
    }
    /* A partial checksum, as a NIC's coalesced packet leaves it: the
     * pseudo-header sum, uncomplemented; the kernel finishes it. */
    th = g->buf + g->l4off;
    st16(th + 16, ipsecif_linux_csum_fold(pseudo(g->buf, g->v6, g->len - g->l4off)));
    memset(&h, 0, sizeof(h));
    h.flags = IPSECIF_LINUX_VNET_F_NEEDS_CSUM;
    h.gso_type = g->v6 ? IPSECIF_LINUX_VNET_GSO_TCPV6 : IPSECIF_LINUX_VNET_GSO_TCPV4;
    h.hdr_len = (uint16_t)g->hlen;
    h.gso_size = (uint16_t)g->mss;
    h.csum_start = (uint16_t)g->l4off;
    h.csum_offset = 16;
    GRO_COUNT(g->stats.merged, 1);
    GRO_COUNT(g->stats.segments, g->nseg);
    emit(arg, &h, g->buf, g->len);
    g->len = 0;
}

static void hold(struct ipsecif_linux_gro *g, const uint8_t *pkt, size_t len, const struct cand *c)
{
    memcpy(g->buf, pkt, len);
    g->len = len;
    g->l4off = c->l4off;
    g->hlen = c->hlen;
    g->mss = c->payload;
    g->v6 = c->v6;
    g->nseg = 1;
    g->next_seq = ld32(pkt + c->l4off + 4) + (uint32_t)c->payload;
    g->closed = (pkt[c->l4off + 13] & TH_PSH) != 0;
}

void ipsecif_linux_gro_add(struct ipsecif_linux_gro *g, const uint8_t *pkt, size_t len,
                           ipsecif_linux_gro_emit_fn emit, void *arg)
{
    struct cand c;

    if (len > g->cap || !candidate(pkt, len, &c)) {
        ipsecif_linux_gro_flush(g, emit, arg);
        GRO_COUNT(g->stats.single, 1);
        emit_single(emit, arg, pkt, len);
        return;
    }
    if (!csum_ok(pkt, len, &c)) {
        /* Alone and as it is: the kernel counts and drops it. */
        ipsecif_linux_gro_flush(g, emit, arg);
        GRO_COUNT(g->stats.bad_csum, 1);
        GRO_COUNT(g->stats.single, 1);
        emit_single(emit, arg, pkt, len);
        return;
    }
    if (g->len != 0 && !g->closed && g->nseg < IPSECIF_LINUX_GRO_SEGS && c.payload <= g->mss &&
        g->len + c.payload <= g->cap && ld32(pkt + c.l4off + 4) == g->next_seq &&
        same_headers(g, pkt, &c)) {
        memcpy(g->buf + g->len, pkt + c.hlen, c.payload);
        g->len += c.payload;
        g->nseg++;
        g->next_seq += (uint32_t)c.payload;
        if ((pkt[c.l4off + 13] & TH_PSH) != 0) {
            g->buf[g->l4off + 13] |= TH_PSH;
            g->closed = true;
        }
        if (c.payload < g->mss) {
            g->closed = true;
        }
        return;
    }
    ipsecif_linux_gro_flush(g, emit, arg);
    hold(g, pkt, len, &c);
}
