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

static bool is_esn(const struct ipsecif_sa *sa)
{
    return (sa->flags & IPSECIF_SA_F_ESN) != 0;
}

static size_t pad_align(const struct ipsecif_sa *sa)
{
    return sa->block < 4 ? 4 : sa->block;
}

/* Padding that makes payload + pad length + next header a multiple of the
 * alignment. Every alignment in the tables (4, 8, 16) is a power of two: a
 * mask instead of two divisions per packet. */
static size_t pad_len(const struct ipsecif_sa *sa, size_t len)
{
    size_t a = pad_align(sa);

    return (0 - (len + 2)) & (a - 1);
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

/* What the single-packet functions check that the data path has checked
 * before it calls the stages. */
static bool args_ok(const struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa,
                    const struct ipsecif_buf *pkt)
{
    return ctx != NULL && sa != NULL && ipsecif_buf_valid(pkt) && ctx->port != NULL &&
           ctx->port->crypto != NULL;
}

/* seq is the number the packet is to carry. */
static int out_check(const struct ipsecif_sa *sa, uint64_t seq)
{
    /* Without ESN the counter must not wrap past 2^32 - 1 (RFC 4303 3.3.3). */
    if (seq == 0 || (!is_esn(sa) && seq > 0xffffffffu)) {
        return IPSECIF_ERR_SEQWRAP;
    }
    return IPSECIF_OK;
}

/* 16 zeros, then 1 to 16: the padding's first 16 bytes at pad_seq + 16; at
 * pad_seq + pad, the 16 bytes before a trailer with pad bytes of padding
 * (pad_mask + pad: which of them are padding). */
static const uint8_t pad_seq[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,  0,  0,  0,  0,  0,
                                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t pad_mask[32] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Lay out ESP around the payload in pkt: header, room for the IV, padding,
 * trailer and room for the ICV. Returns the ESP header. */
static uint8_t *frame(const struct ipsecif_sa *sa, struct ipsecif_buf *pkt, size_t pad,
                      uint64_t seq, uint8_t next_header)
{
    uint8_t *trailer, *hdr;
    size_t i;

    /* Monotone padding 1, 2, 3, ... (RFC 4303 section 2.4). When the room
     * laid out behind the payload (padding, trailer, ICV) holds 16 bytes,
     * one copy of 16 writes it; the trailer and ICV then overwrite the rest. */
    trailer = ipsecif_buf_put(pkt, pad + 2);
    if (pad <= 16 && pad + 2 + sa->icv_len >= 16) {
        memcpy(trailer, pad_seq + 16, 16);
    } else {
        for (i = 0; i < pad; i++) {
            trailer[i] = (uint8_t)(i + 1);
        }
    }
    trailer[pad] = (uint8_t)pad;
    trailer[pad + 1] = next_header;
    hdr = ipsecif_buf_push(pkt, ESP_HDR + sa->iv_len);
    ipsecif_store32(hdr, sa->spi);
    ipsecif_store32(hdr + 4, (uint32_t)seq);
    ipsecif_buf_put(pkt, sa->icv_len);
    return hdr;
}

/* The AEAD call of an AEAD or GMAC job: data, AAD and tag in the packet
 * or in the job. GMAC with ESN authenticates the header with seq hi
 * spliced in (gmac_shift, undone by job_unshift). */
static void job_aead(struct ipsecif_sa *sa, struct ipsecif_esp_job *j, size_t auth_len)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    struct ipsecif_aead_op *op = &j->op;

    make_nonce(sa, j->hdr + ESP_HDR, j->nonce);
    op->nonce = j->nonce;
    op->nonce_len = NONCE_LEN;
    op->tag = j->hdr + auth_len;
    op->tag_len = sa->icv_len;
    op->rc = IPSECIF_ERR_CRYPTO;
    if (sa->aead == IPSECIF_XFORM_AEAD) {
        op->aad_len = make_aad(sa, j->hdr, j->seq, j->aad);
        op->aad = j->aad;
        op->data = j->hdr + hlen;
        op->len = auth_len - hlen;
        return;
    }
    op->aad = j->hdr;
    op->aad_len = auth_len;
    op->data = j->hdr + auth_len;
    op->len = 0;
    if (is_esn(sa)) {
        gmac_shift(j->hdr, (uint32_t)(j->seq >> 32), j->saved);
        op->aad = j->hdr - 4;
        op->aad_len += 4;
        j->shifted = true;
    }
}

static void job_unshift(struct ipsecif_esp_job *j)
{
    if (j->shifted) {
        gmac_unshift(j->hdr, j->saved);
        j->shifted = false;
    }
}

int ipsecif_esp_out_prepare(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                            uint8_t next_header, uint64_t seq, struct ipsecif_esp_job *j)
{
    size_t pad, head_need;
    int rc;

    rc = out_check(sa, seq);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    pad = pad_len(sa, pkt->len);
    head_need = ESP_HDR + sa->iv_len + (sa->aead == IPSECIF_XFORM_GMAC && is_esn(sa) ? 4 : 0);
    if (!ipsecif_buf_room(pkt, head_need, pad + 2 + sa->icv_len)) {
        return IPSECIF_ERR_NOROOM;
    }
    j->shifted = false;
    /* CBC needs an unpredictable IV (RFC 3602 section 2.1). Fetch it before
     * touching the packet so a failure leaves everything as it was. */
    if (is_cbc(sa) && ctx->port->random(ctx->user, j->iv, sa->iv_len) != 0) {
        ipsecif_wipe(j->iv, sizeof(j->iv));
        return IPSECIF_ERR_RANDOM;
    }
    j->seq = seq;
    j->off0 = pkt->off;
    j->len0 = pkt->len;
    j->body_len = pkt->len + pad + 2;
    j->hdr = frame(sa, pkt, pad, seq, next_header);
    if (sa->aead != IPSECIF_XFORM_CIPHER_MAC) {
        /* A counter never repeats under one key, as GCM and ChaCha20 demand
         * (RFC 4106 section 3.1, RFC 7634 section 2). */
        ipsecif_store64(j->hdr + ESP_HDR, seq ^ sa->iv_base);
        job_aead(sa, j, ESP_HDR + sa->iv_len + j->body_len);
    }
    return IPSECIF_OK;
}

/* CBC (or NULL) encryption with the IV fetched at prepare, then HMAC. */
static int seal_cbc_mac(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                        struct ipsecif_esp_job *j)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    uint8_t *hdr = j->hdr;
    uint8_t mac[IPSECIF_ESP_ICV_MAX];
    int rc = 0;

    if (is_cbc(sa)) {
        memcpy(hdr + ESP_HDR, j->iv, sa->iv_len);
        rc = ops->cbc(sa->slot, 1, j->iv, hdr + hlen, j->body_len);
    }
    if (rc == 0 && sa->aalg != IPSECIF_AALG_NONE) {
        /* Computed aside: with ESN the MAC input runs into the ICV. */
        rc = hmac_run(ops, sa, hdr, hlen + j->body_len, j->seq, mac);
        if (rc == 0) {
            memcpy(hdr + hlen + j->body_len, mac, sa->icv_len);
        }
    }
    return rc;
}

/* Verify a CBC/NULL + HMAC packet (nothing to verify without HMAC). */
static int verify_mac(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                      struct ipsecif_esp_job *j)
{
    size_t auth_len = j->len0 - sa->icv_len; /* header .. next header */
    uint8_t *icv = j->hdr + auth_len;
    uint8_t saved[IPSECIF_ESP_ICV_MAX];
    uint8_t mac[IPSECIF_ESP_ICV_MAX];
    int rc;

    if (sa->aalg == IPSECIF_AALG_NONE) {
        return IPSECIF_OK;
    }
    /* seq hi borrows the ICV's first bytes: keep the received ICV aside. */
    memcpy(saved, icv, sa->icv_len);
    rc = hmac_run(ops, sa, j->hdr, auth_len, j->seq, mac);
    memcpy(icv, saved, sa->icv_len);
    if (rc != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    return ipsecif_ct_memeq(mac, saved, sa->icv_len) ? IPSECIF_OK : IPSECIF_ERR_AUTH;
}

/* The backend's AEAD result as a verdict. */
static int aead_verdict(int rc)
{
    if (rc == 0) {
        return IPSECIF_OK;
    }
    return rc == IPSECIF_ERR_AUTH ? IPSECIF_ERR_AUTH : IPSECIF_ERR_CRYPTO;
}

/* One AEAD job through the single-packet op. */
static void run_one(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                    struct ipsecif_aead_op *op, bool seal)
{
    if (seal) {
        op->rc = ops->aead_seal(sa->slot, op->nonce, op->nonce_len, op->aad, op->aad_len, op->data,
                                op->len, op->tag, op->tag_len);
    } else {
        op->rc = ops->aead_open(sa->slot, op->nonce, op->nonce_len, op->aad, op->aad_len, op->data,
                                op->len, op->tag, op->tag_len);
    }
}

void ipsecif_esp_crypto(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                        struct ipsecif_esp_job *const *jobs, size_t n, bool seal)
{
    void (*burst)(void *, struct ipsecif_aead_op *const *, size_t);
    struct ipsecif_aead_op *batch[IPSECIF_BATCH_MAX];
    size_t i, k;

    if (sa->aead == IPSECIF_XFORM_CIPHER_MAC) {
        for (i = 0; i < n; i++) {
            jobs[i]->rc =
                seal ? (seal_cbc_mac(ops, sa, jobs[i]) == 0 ? IPSECIF_OK : IPSECIF_ERR_CRYPTO)
                     : verify_mac(ops, sa, jobs[i]);
        }
        return;
    }
    burst = seal ? ops->aead_seal_burst : ops->aead_open_burst;
    for (i = 0; i < n; i += k) {
        k = n - i < IPSECIF_BATCH_MAX ? n - i : IPSECIF_BATCH_MAX;
        if (burst == NULL || k == 1) {
            run_one(ops, sa, &jobs[i]->op, seal);
            k = 1;
        } else {
            size_t m;

            for (m = 0; m < k; m++) {
                batch[m] = &jobs[i + m]->op;
            }
            burst(sa->slot, batch, k);
        }
    }
    for (i = 0; i < n; i++) {
        jobs[i]->rc = aead_verdict(jobs[i]->op.rc);
    }
}

int ipsecif_esp_out_finish(struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                           struct ipsecif_esp_job *j)
{
    (void)sa;
    job_unshift(j);
    /* The nonce holds the salt, keying material; the IV goes on the wire. */
    ipsecif_wipe(j->nonce, sizeof(j->nonce));
    if (j->rc != IPSECIF_OK) {
        pkt->off = j->off0;
        pkt->len = j->len0;
        return IPSECIF_ERR_CRYPTO;
    }
    return IPSECIF_OK;
}

int ipsecif_esp_output(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                       uint8_t next_header)
{
    struct ipsecif_esp_job j;
    struct ipsecif_esp_job *jp = &j;
    int rc;

    if (!args_ok(ctx, sa, pkt)) {
        return IPSECIF_ERR_ARG;
    }
    /* The next number, or 0 (refused as a wrap) once it would wrap. */
    rc = ipsecif_esp_out_prepare(ctx, sa, pkt, next_header,
                                 sa->seq_out == UINT64_MAX ? 0 : sa->seq_out + 1, &j);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    ipsecif_esp_crypto(ctx->port->crypto, sa, &jp, 1, true);
    rc = ipsecif_esp_out_finish(sa, pkt, &j);
    if (rc == IPSECIF_OK) {
        sa->seq_out = j.seq;
    }
    return rc;
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
    if (pad <= 16 && avail >= 18) {
        /* The 16 bytes before the trailer, all inside the payload, compared
         * where they are padding: two words, whatever pad is. */
        uint64_t w[2], e[2], m[2];

        memcpy(w, trailer_end - 18, 16);
        memcpy(e, pad_seq + pad, 16);
        memcpy(m, pad_mask + pad, 16);
        if ((((w[0] ^ e[0]) & m[0]) | ((w[1] ^ e[1]) & m[1])) != 0) {
            return false;
        }
    } else {
        p = trailer_end - 2 - pad;
        for (i = 0; i < pad; i++) {
            if (p[i] != (uint8_t)(i + 1)) {
                return false;
            }
        }
    }
    *pad_out = (uint8_t)pad;
    return true;
}

/* What ESP input checks before it reads the packet's content. */
static int in_check(const struct ipsecif_sa *sa, const struct ipsecif_buf *pkt)
{
    size_t hlen;

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

int ipsecif_esp_in_prepare(struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                           struct ipsecif_esp_job *j)
{
    int rc;

    rc = in_check(sa, pkt);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    j->hdr = ipsecif_buf_data(pkt);
    j->off0 = pkt->off;
    j->len0 = pkt->len;
    j->body_len = pkt->len - ESP_HDR - sa->iv_len - sa->icv_len;
    j->shifted = false;
    /* Cheap rejection of replays before any crypto (RFC 4303 3.4.3). */
    if (ipsecif_replay_check(sa, ipsecif_load32(j->hdr + 4), &j->seq) != IPSECIF_OK) {
        sa->stats.replay++;
        return IPSECIF_ERR_REPLAY;
    }
    if (sa->aead != IPSECIF_XFORM_CIPHER_MAC) {
        job_aead(sa, j, pkt->len - sa->icv_len);
    }
    return IPSECIF_OK;
}

int ipsecif_esp_in_finish(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                          struct ipsecif_esp_job *j, uint8_t *next_header)
{
    size_t hlen = ESP_HDR + sa->iv_len;
    uint8_t *body = j->hdr + hlen;
    uint64_t seq;
    uint8_t pad;
    uint8_t nh;

    job_unshift(j);
    ipsecif_wipe(j->nonce, sizeof(j->nonce));
    if (j->rc != IPSECIF_OK) {
        if (j->rc == IPSECIF_ERR_AUTH) {
            sa->stats.auth++;
        }
        return j->rc;
    }
    /* Authentic. Packets opened together were checked against the window
     * as it stood before any of them: check again now that the ones ahead
     * have moved it (a duplicate in the same burst, or one the window has
     * left behind), and move it only then, even if the padding turns out bad. */
    if (ipsecif_replay_check(sa, ipsecif_load32(j->hdr + 4), &seq) != IPSECIF_OK || seq != j->seq) {
        sa->stats.replay++;
        return IPSECIF_ERR_REPLAY;
    }
    ipsecif_replay_update(sa, seq);
    if (is_cbc(sa) &&
        ctx->port->crypto->cbc(sa->slot, 0, j->hdr + ESP_HDR, body, j->body_len) != 0) {
        return IPSECIF_ERR_CRYPTO;
    }
    if (!pad_ok(body + j->body_len, j->body_len, &pad)) {
        sa->stats.badpad++;
        return IPSECIF_ERR_BADPAD;
    }
    nh = body[j->body_len - 1];
    ipsecif_buf_trim(pkt, sa->icv_len + pad + 2u);
    ipsecif_buf_pull(pkt, hlen);
    *next_header = nh;
    return IPSECIF_OK;
}

int ipsecif_esp_input(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                      uint8_t *next_header)
{
    struct ipsecif_esp_job j;
    struct ipsecif_esp_job *jp = &j;
    int rc;

    if (next_header == NULL || !args_ok(ctx, sa, pkt)) {
        return IPSECIF_ERR_ARG;
    }
    rc = ipsecif_esp_in_prepare(sa, pkt, &j);
    if (rc != IPSECIF_OK) {
        return rc;
    }
    ipsecif_esp_crypto(ctx->port->crypto, sa, &jp, 1, false);
    return ipsecif_esp_in_finish(ctx, sa, pkt, &j, next_header);
}
