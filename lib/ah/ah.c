/*
 * AH (RFC 4302) output and input, in place on a whole IP packet.
 *
 *   Next header(1) | Payload len(1) | Reserved(2) | SPI(4) | Seq(4) |
 *   [IV(8), AES-GMAC] | ICV | padding to 4 (IPv4) or 8 (IPv6) bytes
 *
 * The ICV covers the IP header and the extension headers before AH with
 * their mutable fields zeroed (RFC 4302 section 3.3.3.1), AH with its IV
 * and ICV zeroed (the padding after them is zero from us and covered as
 * received), the rest of the packet,
 * and for ESN the high half of the sequence number appended (RFC 4302
 * section 3.3.3.1 and Appendix B). AES-GMAC (RFC 4543 section 4) takes the
 * same bytes as AAD over an empty plaintext, with the nonce salt || IV; the
 * IV is authenticated through the nonce.
 *
 * The crypto ops take one contiguous input, so the mutable fields are
 * zeroed in the packet itself and restored from a copy afterwards; the ESN
 * high half borrows 4 bytes of tailroom.
 */
#include "core/ctx.h"

#define AH_HDR 12
#define AH_IV_GMAC 8
#define NONCE_LEN 12 /* salt(4) || IV(8) */
#define AUTH_MAX 40  /* IV + ICV + padding: HMAC-SHA2-512-256 on IPv6 is 36 */
#define IP4_HDR 20
#define IP6_HDR 40

#define NH_ROUTING 43

static bool is_esn(const struct ipsecif_sa *sa)
{
    return (sa->flags & IPSECIF_SA_F_ESN) != 0;
}

static bool is_gmac(const struct ipsecif_sa *sa)
{
    return sa->aead == IPSECIF_XFORM_GMAC;
}

size_t ipsecif_ah_hdr_len(const struct ipsecif_sa *sa, uint8_t family)
{
    size_t align = family == IPSECIF_AF_INET6 ? 8 : 4;
    size_t n = AH_HDR + sa->iv_len + sa->icv_len;

    return (n + align - 1) / align * align;
}

/* ---- SA setup ---- */

int ipsecif_ah_sa_init(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                       const struct ipsecif_sa_params *p)
{
    const struct ipsecif_aalg_info *a;
    const struct ipsecif_ealg_info *e;
    int rc;

    if (ops == NULL || sa == NULL || p == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if ((p->ekey == NULL && p->ekey_len != 0) || (p->akey == NULL && p->akey_len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    if (p->ealg == IPSECIF_EALG_AES_GMAC && p->aalg == IPSECIF_AALG_NONE) {
        /* AES-GMAC as AH's integrity algorithm (RFC 4543 section 4). */
        e = ipsecif_ealg_find(p->ealg);
        if (e == NULL) {
            return IPSECIF_ERR_UNSUPPORTED;
        }
        if (!ipsecif_ealg_keylen_ok(p->ealg, p->ekey_len) || p->akey_len != 0) {
            return IPSECIF_ERR_KEYLEN;
        }
        sa->iv_len = AH_IV_GMAC;
        sa->icv_len = e->icv_len;
        sa->aead = IPSECIF_XFORM_GMAC;
        memcpy(sa->salt, p->ekey + p->ekey_len - e->salt_len, e->salt_len);
        rc = ops->init(sa->slot, p->ealg, p->ekey, p->ekey_len - e->salt_len, IPSECIF_AALG_NONE,
                       NULL, 0);
    } else {
        /* Otherwise an HMAC and no encryption transform at all. */
        if (p->ealg != IPSECIF_EALG_NONE || p->ekey_len != 0) {
            return IPSECIF_ERR_UNSUPPORTED;
        }
        a = ipsecif_aalg_find(p->aalg);
        if (a == NULL) {
            return IPSECIF_ERR_UNSUPPORTED;
        }
        if (p->akey_len != a->key_len) {
            return IPSECIF_ERR_KEYLEN;
        }
        sa->iv_len = 0;
        sa->icv_len = a->icv_len;
        sa->aead = IPSECIF_XFORM_CIPHER_MAC;
        rc = ops->init(sa->slot, IPSECIF_EALG_NONE, NULL, 0, p->aalg, p->akey, p->akey_len);
    }
    sa->ealg = p->ealg;
    sa->aalg = p->aalg;
    sa->block = 4;
    sa->ekey_len = (uint8_t)p->ekey_len;
    sa->akey_len = (uint8_t)p->akey_len;
    if (rc != 0) {
        ipsecif_esp_sa_wipe(ops, sa);
        return rc == IPSECIF_ERR_UNSUPPORTED ? IPSECIF_ERR_UNSUPPORTED : IPSECIF_ERR_CRYPTO;
    }
    return IPSECIF_OK;
}

/* ---- Parsing the headers in front of AH ---- */

/* ---- Mutable fields (RFC 4302 section 3.3.3.1, Appendix A) ---- */

/* IPv4 options included as they are: EOL, NOP, the security options, router
 * alert, SDMDD (RFC 4302 Appendix A.1). Every other option is zeroed whole. */
static bool opt4_immutable(uint8_t type)
{
    switch (type) {
    case 0:   /* end of list */
    case 1:   /* no operation */
    case 130: /* security */
    case 133: /* extended security */
    case 134: /* commercial security */
    case 148: /* router alert */
    case 149: /* sender directed multi-destination delivery */
        return true;
    default:
        return false;
    }
}

static int zero4(uint8_t *p, size_t hlen)
{
    size_t i = IP4_HDR;

    p[1] = 0;          /* TOS */
    p[6] = p[7] = 0;   /* flags, fragment offset */
    p[8] = 0;          /* TTL */
    p[10] = p[11] = 0; /* header checksum */
    while (i < hlen) {
        uint8_t t = p[i];
        size_t ol;

        if (t == 0) {
            break; /* what follows EOL is padding, kept */
        }
        if (t == 1) {
            i++;
            continue;
        }
        if (i + 2 > hlen) {
            return IPSECIF_ERR_MALFORMED;
        }
        ol = p[i + 1];
        if (ol < 2 || ol > hlen - i) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (!opt4_immutable(t)) {
            memset(p + i, 0, ol);
        }
        i += ol;
    }
    return IPSECIF_OK;
}

/* Hop-by-hop and destination options: the data of options with the
 * "may change en route" bit (0x20) is zeroed; type and length stay. */
static int zero6_opts(uint8_t *p, size_t end)
{
    size_t i = 2;

    while (i < end) {
        size_t ol;

        if (p[i] == 0) { /* Pad1 */
            i++;
            continue;
        }
        if (i + 2 > end) {
            return IPSECIF_ERR_MALFORMED;
        }
        ol = p[i + 1];
        if (ol > end - i - 2) {
            return IPSECIF_ERR_MALFORMED;
        }
        if (p[i] & 0x20) {
            memset(p + i + 2, 0, ol);
        }
        i += 2 + ol;
    }
    return IPSECIF_OK;
}

/*
 * A routing header with segments left is made to look as it will at the
 * receiver (RFC 4302 section 3.3.3.1.2.2): each remaining hop swaps the
 * destination with the next address, as type 0 and type 2 processing do.
 * Other types with segments left cannot be predicted here.
 */
static int route6(uint8_t *ip6, uint8_t *rh, size_t hl)
{
    size_t n, k;
    uint8_t tmp[16];

    if (rh[3] == 0) {
        return IPSECIF_OK;
    }
    if (rh[2] != 0 && rh[2] != 2) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    n = rh[1] / 2u;
    if ((rh[1] & 1) != 0 || rh[3] > n || 8 + n * 16 > hl) {
        return IPSECIF_ERR_MALFORMED;
    }
    for (k = n - rh[3]; k < n; k++) {
        memcpy(tmp, ip6 + 24, 16);
        memcpy(ip6 + 24, rh + 8 + k * 16, 16);
        memcpy(rh + 8 + k * 16, tmp, 16);
    }
    rh[3] = 0;
    return IPSECIF_OK;
}

static int zero6(uint8_t *p, size_t pre)
{
    size_t pos = IP6_HDR;
    uint8_t nh = p[6];
    int rc = IPSECIF_OK;

    p[0] &= 0xf0; /* traffic class, flow label */
    p[1] = p[2] = p[3] = 0;
    p[7] = 0; /* hop limit */
    /* ipsecif_sec_layout checked that the chain fills [40, pre) exactly. */
    while (pos < pre && rc == IPSECIF_OK) {
        size_t hl = ((size_t)p[pos + 1] + 1) * 8;

        if (nh == NH_ROUTING) {
            rc = route6(p, p + pos, hl);
        } else {
            rc = zero6_opts(p + pos, hl);
        }
        nh = p[pos];
        pos += hl;
    }
    return rc;
}

static int zero_mutable(uint8_t *p, const struct ipsecif_sec_layout *l)
{
    return l->family == IPSECIF_AF_INET ? zero4(p, l->pre) : zero6(p, l->pre);
}

/* ---- The ICV ---- */

/*
 * The ICV over p[0..len) as it stands (mutable fields and Authentication
 * Data already zeroed), with seq hi written into the 4 bytes after the
 * packet for ESN. seal: write it to out; else compare with out in
 * constant time. iv: the GMAC IV.
 */
static int icv_run(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *p,
                   size_t len, uint64_t seq, const uint8_t *iv, uint8_t *out, bool seal)
{
    uint8_t nonce[NONCE_LEN];
    uint8_t mac[AUTH_MAX];
    uint8_t tail[4] = {0, 0, 0, 0};
    int rc;

    if (is_esn(sa)) {
        memcpy(tail, p + len, 4);
        ipsecif_store32(p + len, (uint32_t)(seq >> 32));
        len += 4;
    }
    if (is_gmac(sa)) {
        memcpy(nonce, sa->salt, 4);
        memcpy(nonce + 4, iv, AH_IV_GMAC);
        if (seal) {
            rc = ops->aead_seal(sa->slot, nonce, NONCE_LEN, p, len, p + len, 0, out, sa->icv_len);
        } else {
            rc = ops->aead_open(sa->slot, nonce, NONCE_LEN, p, len, p + len, 0, out, sa->icv_len);
            if (rc != 0) {
                rc = rc == IPSECIF_ERR_AUTH ? IPSECIF_ERR_AUTH : IPSECIF_ERR_CRYPTO;
            }
        }
        ipsecif_wipe(nonce, sizeof(nonce));
    } else {
        rc = ops->mac(sa->slot, p, len, mac, sa->icv_len);
        if (rc != 0) {
            rc = IPSECIF_ERR_CRYPTO;
        } else if (seal) {
            memcpy(out, mac, sa->icv_len);
        } else if (!ipsecif_ct_memeq(mac, out, sa->icv_len)) {
            rc = IPSECIF_ERR_AUTH;
        }
        ipsecif_wipe(mac, sizeof(mac));
    }
    if (is_esn(sa)) {
        memcpy(p + len - 4, tail, 4);
    }
    if (seal && rc != 0) {
        rc = IPSECIF_ERR_CRYPTO;
    }
    return rc;
}

/*
 * Zero the mutable fields of the headers in front of AH (saved to keep) and
 * the IV and ICV in AH, run the ICV, and put the headers back. The ICV
 * padding is covered as it stands (RFC 4302 section 3.3.3.2.1). IV and ICV
 * stay zeroed; the caller fills or restores them.
 */
static int icv_packet(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *p,
                      size_t len, const struct ipsecif_sec_layout *l, uint64_t seq,
                      const uint8_t *iv, uint8_t *icv, bool seal)
{
    uint8_t keep[IPSECIF_AH_PRE_MAX];
    int rc;

    memcpy(keep, p, l->pre);
    memset(p + l->pre + AH_HDR, 0, (size_t)sa->iv_len + sa->icv_len);
    rc = zero_mutable(p, l);
    if (rc == IPSECIF_OK) {
        rc = icv_run(ops, sa, p, len, seq, iv, icv, seal);
    }
    memcpy(p, keep, l->pre);
    return rc;
}

static void fix_ip(uint8_t *p, const struct ipsecif_sec_layout *l, size_t len)
{
    ipsecif_ip_set_len(p, l->family, l->pre, len);
}

/* ---- Output ---- */

/* What both directions check before they look at the packet. */
static int args_check(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                      const struct ipsecif_buf *pkt)
{
    if (ctx == NULL || sa == NULL || !ipsecif_buf_valid(pkt) || ctx->port == NULL ||
        ctx->port->crypto == NULL) {
        return IPSECIF_ERR_ARG;
    }
    /* The Authentication Data of every algorithm fits AUTH_MAX with padding. */
    if (sa->icv_len == 0 || (size_t)sa->iv_len + sa->icv_len + 4 > AUTH_MAX) {
        return IPSECIF_ERR_INTERNAL;
    }
    return IPSECIF_OK;
}

static int out_check(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                     const struct ipsecif_buf *pkt)
{
    int rc = args_check(ctx, sa, pkt);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (is_esn(sa) ? sa->seq_out == UINT64_MAX : sa->seq_out >= 0xffffffffu) {
        return IPSECIF_ERR_SEQWRAP;
    }
    return IPSECIF_OK;
}

int ipsecif_ah_output(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt)
{
    uint8_t icv[AUTH_MAX];
    struct ipsecif_sec_layout l;
    size_t ah_len, len;
    uint8_t *p, *ah;
    uint64_t seq;
    uint8_t nh;
    int rc;

    rc = out_check(ctx, sa, pkt);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    rc = ipsecif_sec_layout(ipsecif_buf_data(pkt), pkt->len, 0, &l);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (l.pre > IPSECIF_AH_PRE_MAX) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    ah_len = ipsecif_ah_hdr_len(sa, l.family);
    len = pkt->len + ah_len;
    if (len > 0xffff + (l.family == IPSECIF_AF_INET6 ? IP6_HDR : 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    if (!ipsecif_buf_room(pkt, ah_len, is_esn(sa) ? 4 : 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    seq = sa->seq_out + 1;
    /* The headers in front move into the headroom; AH fills the gap. */
    p = ipsecif_buf_push(pkt, ah_len);
    memmove(p, p + ah_len, l.pre);
    ah = p + l.pre;
    nh = p[l.nh_pos];
    p[l.nh_pos] = IPSECIF_IPPROTO_AH;
    ah[0] = nh;
    ah[1] = (uint8_t)(ah_len / 4 - 2);
    ah[2] = ah[3] = 0;
    ipsecif_store32(ah + 4, sa->spi);
    ipsecif_store32(ah + 8, (uint32_t)seq);
    memset(ah + AH_HDR, 0, ah_len - AH_HDR);
    fix_ip(p, &l, len);
    /* GMAC IVs are a counter, unique per key (RFC 4543 section 3.1). */
    ipsecif_store64(icv, seq ^ sa->iv_base);
    rc = icv_packet(ctx->port->crypto, sa, p, len, &l, seq, icv, icv + sa->iv_len, true);
    if (rc != IPSECIF_OK) {
        /* Undo: the original packet back where it was. */
        p[l.nh_pos] = nh;
        memmove(p + ah_len, p, l.pre);
        ipsecif_buf_pull(pkt, ah_len);
        fix_ip(ipsecif_buf_data(pkt), &l, pkt->len);
        ipsecif_wipe(icv, sizeof(icv));
        return rc;
    }
    /* Authentication Data: IV (GMAC), ICV, then the zero padding. */
    memcpy(ah + AH_HDR, icv, sa->iv_len + sa->icv_len);
    ipsecif_wipe(icv, sizeof(icv));
    sa->seq_out = seq;
    return IPSECIF_OK;
}

/* ---- Input ---- */

int ipsecif_ah_locate(const struct ipsecif_buf *pkt, size_t *ah_off, uint32_t *spi)
{
    const uint8_t *p;
    struct ipsecif_sec_layout l;
    size_t ah_len;
    int rc;

    if (!ipsecif_buf_valid(pkt) || ah_off == NULL || spi == NULL) {
        return IPSECIF_ERR_ARG;
    }
    p = ipsecif_buf_data(pkt);
    rc = ipsecif_sec_layout(p, pkt->len, IPSECIF_IPPROTO_AH, &l);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (pkt->len - l.pre < AH_HDR) {
        return IPSECIF_ERR_MALFORMED;
    }
    ah_len = ((size_t)p[l.pre + 1] + 2) * 4;
    if (ah_len < AH_HDR || ah_len > pkt->len - l.pre) {
        return IPSECIF_ERR_MALFORMED;
    }
    *ah_off = l.pre;
    *spi = ipsecif_load32(p + l.pre + 4);
    return IPSECIF_OK;
}

/* Everything about the packet's shape that input checks before any crypto. */
static int in_shape(const struct ipsecif_sa *sa, const struct ipsecif_buf *pkt, size_t ah_off,
                    struct ipsecif_sec_layout *l)
{
    const uint8_t *p = ipsecif_buf_data(pkt);
    int rc;

    rc = ipsecif_sec_layout(p, pkt->len, IPSECIF_IPPROTO_AH, l);
    if (rc != IPSECIF_OK) {
        return rc == IPSECIF_ERR_PROTO ? IPSECIF_ERR_MALFORMED : rc;
    }
    if (l->pre != ah_off || l->pre > IPSECIF_AH_PRE_MAX) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (pkt->len - l->pre < AH_HDR) {
        return IPSECIF_ERR_MALFORMED;
    }
    /* The length must be the one this SA's algorithm gives (RFC 4302 2.2). */
    if (((size_t)p[l->pre + 1] + 2) * 4 != ipsecif_ah_hdr_len(sa, l->family) ||
        ipsecif_ah_hdr_len(sa, l->family) > pkt->len - l->pre) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (ipsecif_load32(p + l->pre + 4) != sa->spi) {
        return IPSECIF_ERR_MALFORMED;
    }
    return IPSECIF_OK;
}

static int in_check(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                    const struct ipsecif_buf *pkt, const uint8_t *next_header)
{
    return next_header == NULL ? IPSECIF_ERR_ARG : args_check(ctx, sa, pkt);
}

int ipsecif_ah_input(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                     size_t ah_off, uint8_t *next_header)
{
    uint8_t auth[AUTH_MAX];
    struct ipsecif_sec_layout l;
    size_t ah_len, len;
    uint8_t *p, *ah;
    uint64_t seq;
    uint8_t nh;
    int rc;

    rc = in_check(ctx, sa, pkt, next_header);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    rc = in_shape(sa, pkt, ah_off, &l);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (is_esn(sa) && !ipsecif_buf_room(pkt, 0, 4)) {
        return IPSECIF_ERR_NOROOM;
    }
    p = ipsecif_buf_data(pkt);
    len = pkt->len;
    ah = p + l.pre;
    ah_len = ipsecif_ah_hdr_len(sa, l.family);
    /* Cheap rejection of replays before any crypto (RFC 4302 3.4.3). */
    if (ipsecif_replay_check(sa, ipsecif_load32(ah + 8), &seq) != IPSECIF_OK) {
        sa->stats.replay++;
        return IPSECIF_ERR_REPLAY;
    }
    memcpy(auth, ah + AH_HDR, ah_len - AH_HDR);
    rc = icv_packet(ctx->port->crypto, sa, p, len, &l, seq, auth, auth + sa->iv_len, false);
    memcpy(ah + AH_HDR, auth, ah_len - AH_HDR);
    ipsecif_wipe(auth, sizeof(auth));
    if (rc != IPSECIF_OK) {
        if (rc == IPSECIF_ERR_AUTH) {
            sa->stats.auth++;
        }
        return rc;
    }
    /* Authentic: the window moves, and AH comes out. */
    ipsecif_replay_update(sa, seq);
    nh = ah[0];
    p[l.nh_pos] = nh;
    memmove(p + ah_len, p, l.pre);
    ipsecif_buf_pull(pkt, ah_len);
    fix_ip(ipsecif_buf_data(pkt), &l, pkt->len);
    *next_header = nh;
    return IPSECIF_OK;
}
