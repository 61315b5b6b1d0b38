/*
 * ESP (RFC 4303) output and input, in place.
 *
 *   SPI(4) | Seq(4) | IV | payload | padding | pad length | next header | ICV
 *
 * Transforms: AEAD (AES-GCM RFC 4106, ChaCha20-Poly1305 RFC 7634) with
 * AAD = SPI || [seq hi] || seq lo; GMAC (RFC 4543) authenticating
 * SPI || [seq hi] || seq lo || IV || payload .. next header; CBC or NULL
 * encryption with encrypt-then-MAC HMAC over SPI .. next header, followed by
 * seq hi for ESN (RFC 4303 section 2.2.1).
 */
#include "core/ctx.h"

#define ESP_HDR 8
#define NONCE_LEN 12 /* salt(4) || IV(8) */
#define MAC_MAX 32
#define IV_MAX 16

static bool is_esn(const struct ipsecif_sa *sa)
{
    return (sa->flags & IPSECIF_SA_F_ESN) != 0;
}

static size_t pad_align(const struct ipsecif_sa *sa)
{
    return sa->block < 4 ? 4 : sa->block;
}

/* Padding that makes payload + pad length + next header a multiple of the
 * alignment. */
static size_t pad_len(const struct ipsecif_sa *sa, size_t len)
{
    size_t a = pad_align(sa);

    return (a - (len + 2) % a) % a;
}

size_t ipsecif_esp_overhead(const struct ipsecif_sa *sa, size_t len)
{
    return ESP_HDR + sa->iv_len + pad_len(sa, len) + 2 + sa->icv_len;
}

/* CBC ciphers are the non-AEAD ones with an IV; NULL has none. */
static bool is_cbc(const struct ipsecif_sa *sa)
{
    return sa->aead == IPSECIF_XFORM_CIPHER_MAC && sa->iv_len != 0;
}

static void make_nonce(const struct ipsecif_sa *sa, const uint8_t *iv, uint8_t *nonce)
{
    memcpy(nonce, sa->salt, 4);
    memcpy(nonce + 4, iv, 8);
}

/* AEAD AAD: SPI || seq (8 bytes), or SPI || seq hi || seq lo with ESN
 * (RFC 4106 section 5, RFC 7634 section 2.1). The SPI is taken from the
 * packet so that every byte of the header is authenticated. */
static size_t make_aad(const struct ipsecif_sa *sa, const uint8_t *hdr, uint64_t seq, uint8_t *aad)
{
    memcpy(aad, hdr, 4);
    if (is_esn(sa)) {
        ipsecif_store64(aad + 4, seq);
        return 12;
    }
    ipsecif_store32(aad + 4, (uint32_t)seq);
    return 8;
}

/*
 * GMAC with ESN authenticates SPI || seq hi || seq lo || IV || ... as one
 * contiguous buffer. Without copying the packet, move the SPI 4 bytes back
 * into the headroom and write seq hi where it was; gmac_unshift undoes it.
 * hdr must have 4 bytes of headroom before it.
 */
static void gmac_shift(uint8_t *hdr, uint32_t seq_hi, uint8_t saved[4])
{
    memcpy(saved, hdr - 4, 4);
    memcpy(hdr - 4, hdr, 4);
    ipsecif_store32(hdr, seq_hi);
}

static void gmac_unshift(uint8_t *hdr, const uint8_t saved[4])
{
    memcpy(hdr, hdr - 4, 4);
    memcpy(hdr - 4, saved, 4);
}

/* The GMAC tag over hdr[0..len), with seq hi spliced in for ESN. */
static int gmac_run(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                    size_t len, uint64_t seq, uint8_t *icv, bool seal)
{
    uint8_t nonce[NONCE_LEN];
    uint8_t saved[4] = {0, 0, 0, 0};
    const uint8_t *aad = hdr;
    size_t aad_len = len;
    int rc;

    make_nonce(sa, hdr + ESP_HDR, nonce);
    if (is_esn(sa)) {
        gmac_shift(hdr, (uint32_t)(seq >> 32), saved);
        aad = hdr - 4;
        aad_len += 4;
    }
    if (seal) {
        rc = ops->aead_seal(sa->slot, nonce, NONCE_LEN, aad, aad_len, hdr + len, 0, icv,
                            sa->icv_len);
    } else {
        rc = ops->aead_open(sa->slot, nonce, NONCE_LEN, aad, aad_len, hdr + len, 0, icv,
                            sa->icv_len);
    }
    if (is_esn(sa)) {
        gmac_unshift(hdr, saved);
    }
    return rc;
}

/*
 * HMAC over hdr[0..len) and, for ESN, seq hi. The 4 bytes of seq hi are
 * written at hdr[len], where the ICV goes: the ICV is at least 12 bytes and
 * the caller owns that space (output) or has kept the received ICV (input).
 */
static int hmac_run(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                    size_t len, uint64_t seq, uint8_t *out)
{
    if (is_esn(sa)) {
        ipsecif_store32(hdr + len, (uint32_t)(seq >> 32));
        len += 4;
    }
    return ops->mac(sa->slot, hdr, len, out, sa->icv_len);
}

/* What ESP output checks before it looks at the packet. */
static int out_check(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                     const struct ipsecif_buf *pkt)
{
    if (ctx == NULL || sa == NULL || !ipsecif_buf_valid(pkt) || ctx->port == NULL ||
        ctx->port->crypto == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (sa->iv_len > IV_MAX || sa->icv_len > MAC_MAX) {
        return IPSECIF_ERR_INTERNAL;
    }
    /* Without ESN the counter must not wrap past 2^32 - 1 (RFC 4303 3.3.3). */
    if (is_esn(sa) ? sa->seq_out == UINT64_MAX : sa->seq_out >= 0xffffffffu) {
        return IPSECIF_ERR_SEQWRAP;
    }
    return IPSECIF_OK;
}

/* Lay out ESP around the payload in pkt: header, room for the IV, padding,
 * trailer and room for the ICV. Returns the ESP header. */
static uint8_t *frame(const struct ipsecif_sa *sa, struct ipsecif_buf *pkt, size_t pad,
                      uint64_t seq, uint8_t next_header)
{
    uint8_t *trailer, *hdr;
    size_t i;

    /* Monotone padding 1, 2, 3, ... (RFC 4303 section 2.4). */
    trailer = ipsecif_buf_put(pkt, pad + 2);
    for (i = 0; i < pad; i++) {
        trailer[i] = (uint8_t)(i + 1);
    }
    trailer[pad] = (uint8_t)pad;
    trailer[pad + 1] = next_header;
    hdr = ipsecif_buf_push(pkt, ESP_HDR + sa->iv_len);
    ipsecif_store32(hdr, sa->spi);
    ipsecif_store32(hdr + 4, (uint32_t)seq);
    ipsecif_buf_put(pkt, sa->icv_len);
    return hdr;
}

static int seal_aead(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                     size_t body_len, uint64_t seq)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    uint8_t nonce[NONCE_LEN];
    uint8_t aad[12];
    size_t aad_len;
    int rc;

    /* A counter never repeats under one key, as GCM and ChaCha20 demand
     * (RFC 4106 section 3.1, RFC 7634 section 2). */
    ipsecif_store64(hdr + ESP_HDR, seq ^ sa->iv_base);
    make_nonce(sa, hdr + ESP_HDR, nonce);
    aad_len = make_aad(sa, hdr, seq, aad);
    rc = ops->aead_seal(sa->slot, nonce, NONCE_LEN, aad, aad_len, hdr + hlen, body_len,
                        hdr + hlen + body_len, sa->icv_len);
    ipsecif_wipe(nonce, sizeof(nonce));
    return rc;
}

/* CBC (or NULL) encryption with the IV fetched by the caller, then HMAC. */
static int seal_cbc_mac(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                        size_t body_len, uint64_t seq, uint8_t *iv)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    uint8_t mac[MAC_MAX];
    int rc = 0;

    if (is_cbc(sa)) {
        memcpy(hdr + ESP_HDR, iv, sa->iv_len);
        rc = ops->cbc(sa->slot, 1, iv, hdr + hlen, body_len);
    }
    if (rc == 0 && sa->aalg != IPSECIF_AALG_NONE) {
        /* Computed aside: with ESN the MAC input runs into the ICV. */
        rc = hmac_run(ops, sa, hdr, hlen + body_len, seq, mac);
        if (rc == 0) {
            memcpy(hdr + hlen + body_len, mac, sa->icv_len);
        }
    }
    return rc;
}

/* Encrypt and authenticate the framed packet at hdr; nonzero on failure. */
static int seal(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                size_t body_len, uint64_t seq, uint8_t *iv)
{
    size_t hlen = ESP_HDR + sa->iv_len;

    if (sa->aead == IPSECIF_XFORM_AEAD) {
        return seal_aead(ops, sa, hdr, body_len, seq);
    }
    if (sa->aead == IPSECIF_XFORM_GMAC) {
        ipsecif_store64(hdr + ESP_HDR, seq ^ sa->iv_base);
        return gmac_run(ops, sa, hdr, hlen + body_len, seq, hdr + hlen + body_len, true);
    }
    return seal_cbc_mac(ops, sa, hdr, body_len, seq, iv);
}

int ipsecif_esp_output(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                       uint8_t next_header)
{
    uint8_t iv[IV_MAX];
    size_t pad, head_need, off0, len0;
    uint8_t *hdr;
    uint64_t seq;
    int rc;

    rc = out_check(ctx, sa, pkt);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    seq = sa->seq_out + 1;
    pad = pad_len(sa, pkt->len);
    head_need = ESP_HDR + sa->iv_len + (sa->aead == IPSECIF_XFORM_GMAC && is_esn(sa) ? 4 : 0);
    if (!ipsecif_buf_room(pkt, head_need, pad + 2 + sa->icv_len)) {
        return IPSECIF_ERR_NOROOM;
    }
    /* CBC needs an unpredictable IV (RFC 3602 section 2.1). Fetch it before
     * touching the packet so a failure leaves everything as it was. */
    if (is_cbc(sa) && ctx->port->random(ctx->user, iv, sa->iv_len) != 0) {
        ipsecif_wipe(iv, sizeof(iv));
        return IPSECIF_ERR_RANDOM;
    }
    off0 = pkt->off;
    len0 = pkt->len;
    hdr = frame(sa, pkt, pad, seq, next_header);
    rc = seal(ctx->port->crypto, sa, hdr, len0 + pad + 2, seq, iv);
    ipsecif_wipe(iv, sizeof(iv));
    if (rc != 0) {
        pkt->off = off0;
        pkt->len = len0;
        return IPSECIF_ERR_CRYPTO;
    }
    sa->seq_out = seq;
    return IPSECIF_OK;
}

/* The backend's AEAD open result as a verdict. */
static int open_verdict(int rc)
{
    if (rc == 0) {
        return IPSECIF_OK;
    }
    return rc == IPSECIF_ERR_AUTH ? IPSECIF_ERR_AUTH : IPSECIF_ERR_CRYPTO;
}

/* Verify the ICV (and, for AEAD, decrypt). No state changes here. */
static int verify(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                  size_t len, uint64_t seq)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    size_t auth_len = len - sa->icv_len; /* header .. next header */
    uint8_t *icv = hdr + auth_len;
    uint8_t nonce[NONCE_LEN];
    uint8_t aad[12];
    uint8_t saved[MAC_MAX];
    uint8_t mac[MAC_MAX];
    int rc;

    if (sa->aead == IPSECIF_XFORM_AEAD) {
        size_t aad_len = make_aad(sa, hdr, seq, aad);

        make_nonce(sa, hdr + ESP_HDR, nonce);
        rc = ops->aead_open(sa->slot, nonce, NONCE_LEN, aad, aad_len, hdr + hlen, auth_len - hlen,
                            icv, sa->icv_len);
        ipsecif_wipe(nonce, sizeof(nonce));
        return open_verdict(rc);
    }
    if (sa->aead == IPSECIF_XFORM_GMAC) {
        return open_verdict(gmac_run(ops, sa, hdr, auth_len, seq, icv, false));
    }
    if (sa->aalg == IPSECIF_AALG_NONE) {
        return IPSECIF_OK;
    }
    /* seq hi borrows the ICV's first bytes: keep the received ICV aside. */
    memcpy(saved, icv, sa->icv_len);
    rc = hmac_run(ops, sa, hdr, auth_len, seq, mac);
    memcpy(icv, saved, sa->icv_len);
    if (rc != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    return ipsecif_ct_memeq(mac, saved, sa->icv_len) ? IPSECIF_OK : IPSECIF_ERR_AUTH;
}

/* Padding must be 1, 2, 3, ... (RFC 4303 section 2.4, the default scheme). */
static bool pad_ok(const uint8_t *trailer_end, size_t avail, uint8_t *pad_out)
{
    size_t pad = trailer_end[-2];
    const uint8_t *p;
    size_t i;

    if (pad + 2 > avail) {
        return false;
    }
    p = trailer_end - 2 - pad;
    for (i = 0; i < pad; i++) {
        if (p[i] != (uint8_t)(i + 1)) {
            return false;
        }
    }
    *pad_out = (uint8_t)pad;
    return true;
}

/* What ESP input checks before it reads the packet's content. */
static int in_check(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                    const struct ipsecif_buf *pkt, const uint8_t *next_header)
{
    size_t hlen;

    if (ctx == NULL || sa == NULL || !ipsecif_buf_valid(pkt) || next_header == NULL ||
        ctx->port == NULL || ctx->port->crypto == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if (sa->iv_len > IV_MAX || sa->icv_len > MAC_MAX) {
        return IPSECIF_ERR_INTERNAL;
    }
    hlen = ESP_HDR + sa->iv_len;
    if (pkt->len < hlen + 2 + sa->icv_len) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (is_cbc(sa) && (pkt->len - hlen - sa->icv_len) % pad_align(sa) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    if (sa->aead == IPSECIF_XFORM_GMAC && is_esn(sa) && !ipsecif_buf_room(pkt, 4, 0)) {
        return IPSECIF_ERR_NOROOM;
    }
    return IPSECIF_OK;
}

/* Replay check, ICV check, and only then the window moves; *seq is the
 * packet's full sequence number. */
static int authenticate(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa, uint8_t *hdr,
                        size_t len, uint64_t *seq)
{
    int rc;

    /* Cheap rejection of replays before any crypto (RFC 4303 3.4.3). */
    rc = ipsecif_replay_check(sa, ipsecif_load32(hdr + 4), seq);
    if (rc != IPSECIF_OK) {
        sa->stats.replay++;
        return IPSECIF_ERR_REPLAY;
    }
    rc = verify(ops, sa, hdr, len, *seq);
    if (rc != IPSECIF_OK) {
        if (rc == IPSECIF_ERR_AUTH) {
            sa->stats.auth++;
        }
        return rc;
    }
    /* Authentic: the window moves now, even if the padding turns out bad.
     * The context is used by one caller at a time, so nothing can have
     * moved the window since the check above. */
    ipsecif_replay_update(sa, *seq);
    return IPSECIF_OK;
}

int ipsecif_esp_input(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                      uint8_t *next_header)
{
    const struct ipsecif_crypto_ops *ops;
    size_t hlen, body_len;
    uint8_t *hdr, *body;
    uint64_t seq;
    uint8_t pad;
    uint8_t nh;
    int rc;

    rc = in_check(ctx, sa, pkt, next_header);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    ops = ctx->port->crypto;
    hlen = ESP_HDR + sa->iv_len;
    body_len = pkt->len - hlen - sa->icv_len;
    hdr = ipsecif_buf_data(pkt);
    body = hdr + hlen;
    rc = authenticate(ops, sa, hdr, pkt->len, &seq);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (is_cbc(sa) && ops->cbc(sa->slot, 0, hdr + ESP_HDR, body, body_len) != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (!pad_ok(body + body_len, body_len, &pad)) {
        sa->stats.badpad++;
        return IPSECIF_ERR_BADPAD;
    }
    nh = body[body_len - 1];
    ipsecif_buf_trim(pkt, sa->icv_len + pad + 2u);
    ipsecif_buf_pull(pkt, hlen);
    *next_header = nh;
    return IPSECIF_OK;
}
