/*
 * Reassembly of IPv4 and IPv6 fragments in caller memory: a fixed number
 * of slots, each with room for one whole datagram behind the configured
 * headroom and a table of the fragments it holds. Lookup is a linear walk
 * over the slots: they are few (a host has few datagrams in pieces at
 * once), and a whole packet never gets that far.
 */
#include "ip/ip.h"

/* Payload bytes [off, off + len) of the datagram. */
struct span {
    uint32_t off;
    uint32_t len;
};

struct slot {
    bool used;
    bool have_last;
    uint8_t family;
    uint8_t proto; /* IPv4: part of the key */
    uint8_t nh;    /* IPv6: what follows the Fragment header */
    uint16_t hlen; /* header of the first fragment; 0 until it came */
    uint16_t nh_pos;
    uint32_t id;
    uint8_t src[16];
    uint8_t dst[16];
    uint64_t born;
    uint64_t expires;
    uint32_t end;  /* payload length, once the last fragment came */
    uint32_t have; /* payload bytes held */
    uint32_t max_end;
    uint32_t nspans;
    struct span *spans;
    uint8_t *data;
};

struct ipsecif_reass {
    struct ipsecif_reass_config cfg;
    struct slot *slots;
    size_t slot_bytes; /* size of each slot's data */
    size_t base;       /* where payload byte 0 goes in it */
    uint64_t held;
    uint32_t pending;
    struct ipsecif_reass_stats st;
};

/* What a fragment says. */
struct frag {
    uint8_t family;
    uint8_t proto; /* IPv4 protocol */
    uint8_t nh;    /* IPv6 Fragment header's next header */
    bool more;
    uint32_t id;
    const uint8_t *src;
    const uint8_t *dst;
    uint32_t off; /* payload offset, bytes */
    uint32_t len; /* payload bytes */
    const uint8_t *payload;
    size_t hlen;   /* bytes in front of the fragmentable part */
    size_t nh_pos; /* IPv6: the next-header byte naming the Fragment header */
};

/* Parse outcomes besides a fragment (1) and a whole packet (0). */
#define P_MALFORMED (-1)
#define P_TINY (-2)
#define P_TOOBIG (-3)
#define P_ATOMIC (-4)

static size_t alen(uint8_t family)
{
    return family == IPSECIF_AF_INET ? 4 : 16;
}

/* Least upper-layer header a first fragment must carry. */
static uint32_t upper_min(uint8_t proto)
{
    switch (proto) {
    case IPSECIF_IPPROTO_TCP:
        return 20;
    case IPSECIF_IPPROTO_UDP:
    case IPSECIF_IPPROTO_ICMP:
    case IPSECIF_IPPROTO_ICMPV6:
    case IPSECIF_IPPROTO_ESP:
        return 8;
    default:
        return 0;
    }
}

static int parse4(const uint8_t *p, size_t len, struct frag *f)
{
    size_t ihl;
    size_t tot;
    uint16_t fo;

    if (len < IPSECIF_IP4_HLEN) {
        return 0;
    }
    ihl = (size_t)(p[0] & 0x0f) * 4;
    fo = ipsecif_load16(p + 6);
    if (ihl < IPSECIF_IP4_HLEN || ihl > len || (fo & 0x3fff) == 0) {
        return 0; /* whole, or for the policy's own check to refuse */
    }
    tot = ipsecif_load16(p + 2);
    if (tot < ihl || tot > len || ipsecif_csum_fold(ipsecif_csum_add(0, p, ihl)) != 0 ||
        (fo & 0x8000) != 0) {
        return P_MALFORMED;
    }
    f->family = IPSECIF_AF_INET;
    f->proto = p[9];
    f->more = (fo & 0x2000) != 0;
    f->id = ipsecif_load16(p + 4);
    f->src = p + 12;
    f->dst = p + 16;
    f->off = (uint32_t)(fo & 0x1fff) * 8;
    f->len = (uint32_t)(tot - ihl);
    f->payload = p + ihl;
    f->hlen = ihl;
    f->nh_pos = 9;
    if (f->len == 0 || (f->more && f->len % 8 != 0)) {
        return P_MALFORMED;
    }
    if (ihl + f->off + f->len > 0xffff) {
        return P_TOOBIG;
    }
    /* RFC 1858: a TCP fragment at offset 8 would rewrite the flags. */
    if ((f->off == 0 && f->len < upper_min(f->proto)) ||
        (f->proto == IPSECIF_IPPROTO_TCP && f->off == 8)) {
        return P_TINY;
    }
    return 1;
}

static bool v6_ext(uint8_t nh)
{
    return nh == 0 || nh == 43 || nh == 60;
}

/* RFC 7112: the first fragment holds every header up to the upper layer. */
static bool v6_chain_whole(const uint8_t *q, size_t n, uint8_t nh)
{
    size_t pos = 0;

    while (v6_ext(nh) || nh == IPSECIF_IPPROTO_AH) {
        size_t hl;

        if (pos + 2 > n) {
            return false;
        }
        hl = nh == IPSECIF_IPPROTO_AH ? ((size_t)q[pos + 1] + 2) * 4 : ((size_t)q[pos + 1] + 1) * 8;
        nh = q[pos];
        pos += hl;
        if (pos > n) {
            return false;
        }
    }
    if (nh == 44) {
        return false;
    }
    return n - pos >= upper_min(nh);
}

static int parse6(const uint8_t *p, size_t len, struct frag *f)
{
    size_t end;
    size_t pos = IPSECIF_IP6_HLEN;
    size_t nh_pos = 6;
    uint8_t nh;
    uint16_t fo;

    if (len < IPSECIF_IP6_HLEN) {
        return 0;
    }
    end = IPSECIF_IP6_HLEN + (size_t)ipsecif_load16(p + 4);
    nh = p[6];
    while (v6_ext(nh)) {
        if (pos + 2 > len) {
            return 0;
        }
        nh_pos = pos;
        nh = p[pos];
        pos += ((size_t)p[pos + 1] + 1) * 8;
    }
    if (nh != 44) {
        return 0;
    }
    /* A Fragment header: from here on the packet is ours to judge. */
    if (end == IPSECIF_IP6_HLEN || end > len || pos + 8 > end) {
        return P_MALFORMED;
    }
    fo = ipsecif_load16(p + pos + 2);
    f->family = IPSECIF_AF_INET6;
    f->proto = 0;
    f->nh = p[pos];
    f->more = (fo & 1) != 0;
    f->id = ipsecif_load32(p + pos + 4);
    f->src = p + 8;
    f->dst = p + 24;
    f->off = (uint32_t)(fo >> 3) * 8;
    f->len = (uint32_t)(end - pos - 8);
    f->payload = p + pos + 8;
    f->hlen = pos;
    f->nh_pos = nh_pos;
    if (f->off == 0 && !f->more) {
        return P_ATOMIC;
    }
    if (f->len == 0 || (f->more && f->len % 8 != 0)) {
        return P_MALFORMED;
    }
    if (pos - IPSECIF_IP6_HLEN + f->off + f->len > 0xffff || pos > IPSECIF_REASS_HDR_MAX) {
        return P_TOOBIG;
    }
    if (f->off == 0 && !v6_chain_whole(f->payload, f->len, f->nh)) {
        return P_TINY;
    }
    return 1;
}

/* RFC 6946: an atomic fragment is a datagram of its own; the Fragment
 * header goes, in place. */
static void unwrap_atomic(struct ipsecif_buf *pkt, const struct frag *f)
{
    uint8_t *p = ipsecif_buf_data(pkt);
    size_t end = f->hlen + 8 + f->len;

    memmove(p + 8, p, f->hlen);
    pkt->off += 8;
    pkt->len = end - 8;
    p += 8;
    p[f->nh_pos] = f->nh;
    ipsecif_store16(p + 4, (uint16_t)(end - 8 - IPSECIF_IP6_HLEN));
}

static void slot_free(struct ipsecif_reass *r, struct slot *s)
{
    r->held -= s->have;
    r->pending--;
    s->used = false;
}

static void slot_drop(struct ipsecif_reass *r, struct slot *s)
{
    r->st.dropped_frags += s->nspans;
    slot_free(r, s);
}

static struct slot *oldest(struct ipsecif_reass *r, const struct slot * not )
{
    struct slot *o = NULL;
    uint32_t i;

    for (i = 0; i < r->cfg.slots; i++) {
        struct slot *s = &r->slots[i];

        if (s->used && s != not &&(o == NULL || s->born < o->born)) {
            o = s;
        }
    }
    return o;
}

static struct slot *find(struct ipsecif_reass *r, const struct frag *f)
{
    size_t n = alen(f->family);
    uint32_t i;

    for (i = 0; i < r->cfg.slots; i++) {
        struct slot *s = &r->slots[i];

        if (s->used && s->family == f->family && s->id == f->id && s->proto == f->proto &&
            memcmp(s->src, f->src, n) == 0 && memcmp(s->dst, f->dst, n) == 0) {
            return s;
        }
    }
    return NULL;
}

static struct slot *take(struct ipsecif_reass *r, const struct frag *f, uint64_t now)
{
    struct slot *s = NULL;
    uint32_t i;

    for (i = 0; i < r->cfg.slots && s == NULL; i++) {
        if (!r->slots[i].used) {
            s = &r->slots[i];
        }
    }
    if (s == NULL) {
        s = oldest(r, NULL);
        r->st.evicted++;
        slot_drop(r, s);
    }
    s->used = true;
    s->have_last = false;
    s->family = f->family;
    s->proto = f->proto;
    s->id = f->id;
    memset(s->src, 0, sizeof(s->src));
    memset(s->dst, 0, sizeof(s->dst));
    memcpy(s->src, f->src, alen(f->family));
    memcpy(s->dst, f->dst, alen(f->family));
    s->hlen = 0;
    s->nh_pos = 0;
    s->nh = 0;
    s->born = now;
    s->expires = now + (f->family == IPSECIF_AF_INET ? r->cfg.timeout4_ms : r->cfg.timeout6_ms);
    s->end = 0;
    s->have = 0;
    s->max_end = 0;
    s->nspans = 0;
    r->pending++;
    return s;
}

/* Whether a datagram with header hlen and payload end fits the limits. */
static bool fits(const struct ipsecif_reass *r, uint8_t family, size_t hlen, uint32_t end)
{
    size_t lim = family == IPSECIF_AF_INET ? 0xffffu : 0xffffu + IPSECIF_IP6_HLEN;

    return hlen + end <= lim && hlen + end <= r->cfg.datagram_max && hlen <= IPSECIF_REASS_HDR_MAX;
}

/* The datagram is whole: its header in front of the payload, the fields
 * of a whole datagram, pkt pointed at it. */
static void finish(struct ipsecif_reass *r, struct slot *s, struct ipsecif_buf *pkt)
{
    uint8_t *p = s->data + r->base - s->hlen;
    size_t tot = (size_t)s->hlen + s->end;

    if (s->family == IPSECIF_AF_INET) {
        ipsecif_store16(p + 2, (uint16_t)tot);
        ipsecif_store16(p + 6, (uint16_t)(ipsecif_load16(p + 6) & 0x4000));
        ipsecif_store16(p + 10, 0);
        ipsecif_store16(p + 10, ipsecif_csum_fold(ipsecif_csum_add(0, p, s->hlen)));
    } else {
        p[s->nh_pos] = s->nh;
        ipsecif_store16(p + 4, (uint16_t)(tot - IPSECIF_IP6_HLEN));
    }
    pkt->base = s->data;
    pkt->cap = r->slot_bytes;
    pkt->off = r->base - s->hlen;
    pkt->len = tot;
    r->st.reassembled++;
    slot_free(r, s);
}

/* Drop the datagram of s and count why. */
static int drop(struct ipsecif_reass *r, struct slot *s, uint64_t *counter, int rc)
{
    (*counter)++;
    r->st.dropped_frags++; /* the fragment that caused it */
    slot_drop(r, s);
    return rc;
}

static int add(struct ipsecif_reass *r, struct slot *s, const struct frag *f,
               struct ipsecif_buf *pkt)
{
    uint32_t e = f->off + f->len;
    uint32_t i;

    if ((s->have_last && (e > s->end || (!f->more && e != s->end))) ||
        (!f->more && s->max_end > e)) {
        return drop(r, s, &r->st.inconsistent, IPSECIF_ERR_MALFORMED);
    }
    for (i = 0; i < s->nspans; i++) {
        const struct span *sp = &s->spans[i];

        if (sp->off == f->off && sp->len == f->len &&
            memcmp(s->data + r->base + f->off, f->payload, f->len) == 0 &&
            (f->off != 0 || s->hlen == f->hlen)) {
            /* RFC 8200 section 4.5: an exact duplicate goes alone. */
            r->st.duplicate++;
            return IPSECIF_ERR_QUEUED;
        }
        if (f->off < sp->off + sp->len && sp->off < e) {
            return drop(r, s, &r->st.overlap, IPSECIF_ERR_MALFORMED);
        }
    }
    if (s->nspans == r->cfg.frags) {
        return drop(r, s, &r->st.toomany, IPSECIF_ERR_FULL);
    }
    if (!fits(r, f->family, f->off == 0 ? f->hlen : (s->hlen != 0 ? s->hlen : f->hlen),
              e > s->max_end ? e : s->max_end)) {
        return drop(r, s, &r->st.toobig, IPSECIF_ERR_MALFORMED);
    }
    while (r->held + f->len > r->cfg.bytes_max) {
        struct slot *o = oldest(r, s);

        if (o == NULL) {
            return drop(r, s, &r->st.nomem, IPSECIF_ERR_FULL);
        }
        r->st.nomem++;
        slot_drop(r, o);
    }
    if (f->off == 0) {
        s->hlen = (uint16_t)f->hlen;
        s->nh_pos = (uint16_t)f->nh_pos;
        s->nh = f->nh;
        memcpy(s->data + r->base - f->hlen, ipsecif_buf_data(pkt), f->hlen);
    }
    memcpy(s->data + r->base + f->off, f->payload, f->len);
    s->spans[s->nspans].off = f->off;
    s->spans[s->nspans].len = f->len;
    s->nspans++;
    s->have += f->len;
    r->held += f->len;
    if (e > s->max_end) {
        s->max_end = e;
    }
    if (!f->more) {
        s->have_last = true;
        s->end = e;
    }
    if (s->have_last && s->hlen != 0 && s->have == s->end) {
        finish(r, s, pkt);
        return IPSECIF_OK;
    }
    return IPSECIF_ERR_QUEUED;
}

static bool cfg_ok(const struct ipsecif_reass_config *c)
{
    return c != NULL && c->slots >= 1 && c->slots <= 1024 && c->frags >= 2 && c->frags <= 8192 &&
           c->datagram_max >= 68 && c->datagram_max <= IPSECIF_REASS_DATAGRAM_MAX &&
           c->headroom <= 4096 && c->tailroom <= 4096;
}

static size_t slot_data_bytes(const struct ipsecif_reass_config *c)
{
    return IPSECIF_ALIGN16((size_t)c->headroom + IPSECIF_REASS_HDR_MAX + c->datagram_max +
                           c->tailroom);
}

size_t ipsecif_reass_mem_size(const struct ipsecif_reass_config *cfg)
{
    if (!cfg_ok(cfg)) {
        return 0;
    }
    return IPSECIF_ALIGN16(sizeof(struct ipsecif_reass)) +
           IPSECIF_ALIGN16((size_t)cfg->slots * sizeof(struct slot)) +
           IPSECIF_ALIGN16((size_t)cfg->slots * cfg->frags * sizeof(struct span)) +
           (size_t)cfg->slots * slot_data_bytes(cfg);
}

int ipsecif_reass_init(struct ipsecif_reass **out, void *mem, size_t len,
                       const struct ipsecif_reass_config *cfg)
{
    struct ipsecif_reass *r;
    uint8_t *m = mem;
    struct span *spans;
    uint8_t *data;
    size_t need;
    uint32_t i;

    if (out == NULL || mem == NULL || !cfg_ok(cfg)) {
        return IPSECIF_ERR_ARG;
    }
    need = ipsecif_reass_mem_size(cfg);
    if (len < need) {
        return IPSECIF_ERR_NOROOM;
    }
    r = (struct ipsecif_reass *)(void *)m;
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    if (r->cfg.bytes_max == 0) {
        r->cfg.bytes_max = cfg->slots * cfg->datagram_max;
    }
    if (r->cfg.timeout4_ms == 0) {
        r->cfg.timeout4_ms = IPSECIF_REASS_TIMEOUT4_MS;
    }
    if (r->cfg.timeout6_ms == 0) {
        r->cfg.timeout6_ms = IPSECIF_REASS_TIMEOUT6_MS;
    }
    m += IPSECIF_ALIGN16(sizeof(*r));
    r->slots = (struct slot *)(void *)m;
    m += IPSECIF_ALIGN16((size_t)cfg->slots * sizeof(struct slot));
    spans = (struct span *)(void *)m;
    m += IPSECIF_ALIGN16((size_t)cfg->slots * cfg->frags * sizeof(struct span));
    data = m;
    r->slot_bytes = slot_data_bytes(cfg);
    r->base = (size_t)cfg->headroom + IPSECIF_REASS_HDR_MAX;
    for (i = 0; i < cfg->slots; i++) {
        memset(&r->slots[i], 0, sizeof(r->slots[i]));
        r->slots[i].spans = spans + (size_t)i * cfg->frags;
        r->slots[i].data = data + (size_t)i * r->slot_bytes;
    }
    *out = r;
    return IPSECIF_OK;
}

void ipsecif_reass_expire(struct ipsecif_reass *r, uint64_t now)
{
    uint32_t i;

    if (r == NULL || r->pending == 0) {
        return;
    }
    for (i = 0; i < r->cfg.slots; i++) {
        struct slot *s = &r->slots[i];

        if (s->used && now >= s->expires) {
            r->st.timeout++;
            slot_drop(r, s);
        }
    }
}

uint64_t ipsecif_reass_next_deadline(const struct ipsecif_reass *r)
{
    uint64_t t = UINT64_MAX;
    uint32_t i;

    if (r == NULL) {
        return t;
    }
    for (i = 0; i < r->cfg.slots; i++) {
        if (r->slots[i].used && r->slots[i].expires < t) {
            t = r->slots[i].expires;
        }
    }
    return t;
}

uint32_t ipsecif_reass_pending(const struct ipsecif_reass *r)
{
    return r == NULL ? 0 : r->pending;
}

const struct ipsecif_reass_stats *ipsecif_reass_stats_get(const struct ipsecif_reass *r)
{
    return r == NULL ? NULL : &r->st;
}

int ipsecif_reass_input(struct ipsecif_reass *r, struct ipsecif_buf *pkt, uint64_t now)
{
    struct frag f;
    struct slot *s;
    const uint8_t *p;
    int kind;

    if (r == NULL || !ipsecif_buf_valid(pkt)) {
        return IPSECIF_ERR_ARG;
    }
    if (pkt->len < 1) {
        return IPSECIF_OK;
    }
    p = ipsecif_buf_data(pkt);
    memset(&f, 0, sizeof(f));
    if ((p[0] >> 4) == 4) {
        kind = parse4(p, pkt->len, &f);
    } else if ((p[0] >> 4) == 6) {
        kind = parse6(p, pkt->len, &f);
    } else {
        kind = 0;
    }
    if (kind == 0) {
        return IPSECIF_OK;
    }
    r->st.fragments++;
    switch (kind) {
    case P_ATOMIC:
        r->st.atomic++;
        unwrap_atomic(pkt, &f);
        return IPSECIF_OK;
    case P_MALFORMED:
        r->st.malformed++;
        return IPSECIF_ERR_MALFORMED;
    case P_TINY:
        r->st.tiny++;
        return IPSECIF_ERR_MALFORMED;
    case P_TOOBIG:
        r->st.toobig++;
        return IPSECIF_ERR_MALFORMED;
    default:
        break;
    }
    ipsecif_reass_expire(r, now);
    s = find(r, &f);
    if (s == NULL) {
        if (!fits(r, f.family, f.hlen, f.off + f.len)) {
            r->st.toobig++;
            return IPSECIF_ERR_MALFORMED;
        }
        s = take(r, &f, now);
    }
    return add(r, s, &f, pkt);
}
