/*
 * ESP (RFC 4303): the algorithm tables, SA key setup, output and input in
 * place, and the outer header of a tunnel packet (the anti-replay window,
 * shared with AH, is in lib/sadb).
 * Works on one SA at a time; knows nothing of the SADB's tables. Not
 * installed.
 */
#ifndef IPSECIF_ESP_H
#define IPSECIF_ESP_H

#include "base/base.h"
#include "ip/ip.h"

struct ipsecif_sa;

/* How an SA protects a packet: the field ipsecif_ealg_info.aead and
 * ipsecif_sa.aead hold one of these. */
enum ipsecif_esp_xform {
    IPSECIF_XFORM_CIPHER_MAC = 0, /* CBC or NULL encryption, then HMAC (or none) */
    IPSECIF_XFORM_AEAD = 1,       /* AES-GCM, ChaCha20-Poly1305 */
    IPSECIF_XFORM_GMAC = 2        /* AES-GMAC: authentication only, on the AEAD engine */
};

/* ---- Algorithms (alg.c) ---- */
struct ipsecif_ealg_info {
    uint8_t id;          /* enum ipsecif_ealg */
    uint8_t aead;        /* enum ipsecif_esp_xform */
    uint8_t block;       /* padding alignment (block size, or 4) */
    uint8_t iv_len;      /* explicit IV on the wire */
    uint8_t icv_len;     /* ICV for AEAD/GMAC, else 0 */
    uint8_t salt_len;    /* 4 for AEAD/GMAC, else 0 */
    uint8_t key_lens[3]; /* accepted key lengths without salt (0 = unused entry) */
};
struct ipsecif_aalg_info {
    uint8_t id;      /* enum ipsecif_aalg */
    uint8_t key_len; /* HMAC key length */
    uint8_t icv_len; /* truncated output */
};
const struct ipsecif_ealg_info *ipsecif_ealg_find(uint8_t ealg);
const struct ipsecif_aalg_info *ipsecif_aalg_find(uint8_t aalg);

/* ---- ESP (esp.c) ---- */
/*
 * Check algorithms and key lengths of p, fill sa's algorithm fields and salt,
 * and set up the crypto slot. On failure the slot holds no secret.
 * Returns IPSECIF_OK, IPSECIF_ERR_UNSUPPORTED, IPSECIF_ERR_KEYLEN, IPSECIF_ERR_CRYPTO.
 */
int ipsecif_esp_sa_init(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                        const struct ipsecif_sa_params *p);
/* Wipe the slot and every key-derived field of the SA. */
void ipsecif_esp_sa_wipe(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa);
/*
 * One packet between the stages of ESP output or input: prepare frames it
 * (output) or checks it against the replay window (input) and sets up the
 * crypto call; ipsecif_esp_crypto() runs the calls of several packets of
 * one SA together (the backend's burst ops when it has them); finish
 * undoes what prepare lent from the packet and gives the verdict. The
 * single-packet functions below are the three stages for one packet.
 */
/* The longest explicit IV and ICV of any algorithm in the tables; an SA
 * with more is refused at ipsecif_esp_sa_init(). */
#define IPSECIF_ESP_IV_MAX 16
#define IPSECIF_ESP_ICV_MAX 32

struct ipsecif_esp_job {
    struct ipsecif_aead_op op; /* AEAD and GMAC: the call */
    uint8_t *hdr;              /* the ESP header */
    uint64_t seq;              /* the full sequence number */
    size_t off0, len0;         /* the view before framing (output), as received (input) */
    size_t body_len;           /* encrypted part: payload .. next header */
    int rc;                    /* the crypto step's verdict */
    bool shifted;              /* GMAC with ESN: saved holds the bytes moved aside */
    uint8_t saved[4];
    uint8_t nonce[12];
    uint8_t aad[12];
    uint8_t iv[IPSECIF_ESP_IV_MAX]; /* CBC output: the random IV */
};
/*
 * The stage functions take what the data path has checked already: a
 * context, an SA set up by ipsecif_esp_sa_init() and a valid buffer (the
 * single-packet functions check these themselves).
 *
 * Output stage 1 with sequence number seq (0 or past 2^32 - 1 without ESN:
 * IPSECIF_ERR_SEQWRAP). Checks room, fetches a CBC IV, frames. Nothing
 * changes on failure: IPSECIF_ERR_SEQWRAP, _NOROOM, _RANDOM.
 */
int ipsecif_esp_out_prepare(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                            uint8_t next_header, uint64_t seq, struct ipsecif_esp_job *j);
/* Stage 2: the crypto of n prepared jobs of sa; sets each job's rc. */
void ipsecif_esp_crypto(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                        struct ipsecif_esp_job *const *jobs, size_t n, bool seal);
/* Output stage 3: IPSECIF_OK, or IPSECIF_ERR_CRYPTO with pkt as it was. */
int ipsecif_esp_out_finish(struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                           struct ipsecif_esp_job *j);
/* Input stage 1: shape checks and the replay check before any crypto
 * (IPSECIF_ERR_MALFORMED, _REPLAY counted on the SA, _NOROOM). */
int ipsecif_esp_in_prepare(struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                           struct ipsecif_esp_job *j);
/* Input stage 3: the tag's verdict (AUTH counted on the SA), the replay
 * check again against the window as it is now, the window update, CBC
 * decryption, padding, strip. Returns as ipsecif_esp_input(). */
int ipsecif_esp_in_finish(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                          struct ipsecif_esp_job *j, uint8_t *next_header);
/*
 * ESP output, in place. On entry pkt holds the payload (the inner packet);
 * on success it holds ESP header, IV, encrypted payload, padding, trailer and
 * ICV. Uses the next sequence number (IPSECIF_ERR_SEQWRAP if exhausted; the
 * caller kills the SA). IVs: a counter for AEAD/GMAC, random for CBC.
 */
int ipsecif_esp_output(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                       uint8_t next_header);
/*
 * ESP input, in place. pkt starts at the ESP header of an SA already looked
 * up by SPI. Checks replay (before and after ICV), verifies, decrypts, checks
 * padding, strips everything but the payload. The replay window changes only
 * when everything verified. Needs 4 bytes of headroom (ESN with GMAC) that
 * it restores. Returns IPSECIF_OK, IPSECIF_ERR_MALFORMED, IPSECIF_ERR_REPLAY,
 * IPSECIF_ERR_AUTH, IPSECIF_ERR_BADPAD, IPSECIF_ERR_CRYPTO; per-SA counters
 * (replay, auth, badpad) are incremented here.
 */
int ipsecif_esp_input(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                      uint8_t *next_header);
/* Bytes ESP adds for a payload of len bytes with this SA. */
size_t ipsecif_esp_overhead(const struct ipsecif_sa *sa, size_t len);

/* ---- The outer header (outer.c) ---- */
/*
 * Push an outer IP header (and UDP header when sport/dport are nonzero) in
 * front of the ESP packet in pkt. The inner header (at the payload start
 * before ESP was applied) gave tos and df. Fills meta. IPSECIF_OK,
 * IPSECIF_ERR_ARG or IPSECIF_ERR_NOROOM.
 */
int ipsecif_encap_outer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                        const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                        uint16_t sport, uint16_t dport, uint8_t tos, bool df,
                        struct ipsecif_outer_meta *meta);
/* Write at h the outer headers meta describes (family, addresses, tos,
 * ttl, ip_hlen, esp_off, ports) in front of len bytes of proto: IP, and
 * UDP carrying ESP when meta has ports. IPv4 gets id and df. */
void ipsecif_outer_write(uint8_t *h, const struct ipsecif_outer_meta *m, uint8_t proto, size_t len,
                         uint16_t id, bool df);

/*
 * An interface's outer header, built when its tunnel is set: the meta and
 * header bytes every packet of the tunnel shares (tos, lengths, id and
 * checksums left 0), and the checksum of the fixed fields (IPv4: of the IP
 * header; IPv6 with UDP: of the pseudo-header's addresses and protocol).
 * meta.esp_off is 0 when the pair has no outer header.
 */
struct ipsecif_outer_tpl {
    struct ipsecif_outer_meta meta;
    uint8_t hdr[IPSECIF_IP6_HLEN + IPSECIF_UDP_HLEN];
    uint32_t sum;
    uint16_t max_len; /* the longest ESP packet the length fields hold */
};

/* Build t for src -> dst (UDP with sport/dport when either is nonzero),
 * with this TTL or hop limit. */
void ipsecif_outer_tpl_set(struct ipsecif_outer_tpl *t, const struct ipsecif_addr *src,
                           const struct ipsecif_addr *dst, uint16_t sport, uint16_t dport,
                           uint8_t ttl);
/* ipsecif_encap_outer() from a template: the same headers and meta, with
 * tos and, for IPv4, df and the context's next id. */
int ipsecif_encap_tpl(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                      const struct ipsecif_outer_tpl *t, uint8_t tos, bool df,
                      struct ipsecif_outer_meta *meta);

/* Rewrite the protocol of the outer header ipsecif_encap_outer() just put
 * in front (no UDP): IP in IP, or AH about to be inserted. */
void ipsecif_outer_set_proto(struct ipsecif_buf *pkt, const struct ipsecif_outer_meta *meta,
                             uint8_t proto);
/*
 * Parse an outer IPv4/IPv6 header at the start of pkt: fill meta (addresses,
 * tos, protocol via *proto, UDP ports if UDP) and pull the IP (and UDP)
 * header. Returns IPSECIF_OK or IPSECIF_ERR_MALFORMED / IPSECIF_ERR_PROTO.
 * On failure the packet is as it was and meta holds nothing to read. pkt
 * is a valid view (the input functions have checked it).
 */
int ipsecif_decap_outer(struct ipsecif_buf *pkt, struct ipsecif_outer_meta *meta, uint8_t *proto);
#endif /* IPSECIF_ESP_H */
