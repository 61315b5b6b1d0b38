/*
 * The SADB: SAs in fixed slots carved at init, found through hash tables
 * sized at init; lifetimes and the expiry timer. Not installed.
 */
#ifndef IPSECIF_SADB_H
#define IPSECIF_SADB_H

#include "base/base.h"

#define IPSECIF_REPLAY_WORDS_MAX (IPSECIF_REPLAY_WINDOW_MAX / 32)

struct ipsecif_sa {
    bool in_use;
    uint8_t state; /* enum ipsecif_sa_state */
    uint8_t proto;
    uint8_t mode;
    uint8_t ealg;
    uint8_t aalg;
    uint8_t iv_len;   /* from the algorithm tables */
    uint8_t icv_len;  /* AEAD ICV or truncated HMAC */
    uint8_t block;    /* padding alignment */
    uint8_t aead;     /* as ipsecif_ealg_info.aead */
    uint8_t ekey_len; /* as given, salt included (reporting) */
    uint8_t akey_len;
    uint8_t salt[4];
#if IPSECIF_SA_KEEP_KEYS
    /* Keys as given (ekey with the salt), for PF_KEY GET/DUMP; wiped with the SA. */
    uint8_t ekey[IPSECIF_MAX_EKEY];
    uint8_t akey[IPSECIF_MAX_AKEY];
#endif
    uint8_t soft_sent;   /* soft EXPIRE already raised */
    uint8_t hard_reason; /* reason to report once killed, 0 while alive */
    uint32_t spi;
    struct ipsecif_addr src;
    struct ipsecif_addr dst;
    uint16_t natt_sport;
    uint16_t natt_dport;
    uint32_t reqid;
    uint32_t flags; /* IPSECIF_SA_F_* */
    uint32_t seq;   /* key-management sequence */
    uint32_t pid;

    /* Outbound: last sequence number used (64-bit; the low 32 go on the wire). */
    uint64_t seq_out;
    /* AEAD/GMAC explicit IV = 64-bit sequence number XOR iv_base: unique per
     * key whatever iv_base is. The SADB should fill it from the port's random
     * source when it makes the SA (ipsecif_esp_sa_init leaves it alone), so
     * that two SAs keyed alike by hand do not repeat nonces; 0 gives IV = seq. */
    uint64_t iv_base;
    /* Inbound anti-replay: window size in packets (0 = off), highest seq
     * accepted, and the bitmap (replay_window bits, a ring indexed by seq). */
    uint32_t replay_window;
    uint64_t replay_top;
    uint32_t *replay_bits;

    struct ipsecif_lifetime soft;
    struct ipsecif_lifetime hard;
    uint64_t add_ms; /* when added (or matured), ms */
    uint64_t use_ms; /* first use, ms; 0 = unused */
    uint64_t bytes;  /* bytes processed */
    uint32_t allocations;
    uint64_t gen; /* creation order; larger = newer */

    struct ipsecif_sa_stats stats;

    /* Hash chains and the age list. */
    struct ipsecif_sa *spi_next;   /* (proto, dst, spi) */
    struct ipsecif_sa *pair_next;  /* (proto, src, dst) */
    struct ipsecif_sa *reqid_next; /* reqid */
    struct ipsecif_sa *age_prev;
    struct ipsecif_sa *age_next;

    /* Crypto backend key schedule. */
    _Alignas(16) uint8_t slot[IPSECIF_CRYPTO_SLOT_SIZE];
};

/* The SADB's part of the context; only sadb.c knows its layout. */
struct ipsecif_sadb_state {
    struct ipsecif_sa *tab;
    uint32_t n;
    struct ipsecif_sa **spi_hash;
    struct ipsecif_sa **pair_hash;
    struct ipsecif_sa **reqid_hash;
    uint32_t hash_mask;
    struct ipsecif_sa *age_head;
    struct ipsecif_sa *age_tail;
    uint64_t gen;
    uint32_t *replay_area;
    uint32_t replay_words; /* per SA */
    /* n counts SAs in use; free is a stack of free slot indices (entries
     * [0, max_sas - n) are valid) so add is O(1); next_deadline caches the
     * earliest SA deadline (may be early, never late) so
     * ipsecif_next_deadline() is O(1). */
    uint32_t *free;
    uint64_t next_deadline;
};

/* Replay window (replay.c), shared by ESP and AH. seq_lo is the 32-bit
 * wire value; for ESN the high half is inferred (RFC 4303 Appendix A,
 * RFC 4302 Appendix B). check never changes state; update records seq (call
 * only after the ICV verified). */
int ipsecif_replay_check(const struct ipsecif_sa *sa, uint32_t seq_lo, uint64_t *seq);
void ipsecif_replay_update(struct ipsecif_sa *sa, uint64_t seq);

size_t ipsecif_sadb_mem_size(const struct ipsecif_config *cfg);
void ipsecif_sadb_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
struct ipsecif_sa *ipsecif_sadb_lookup_spi(struct ipsecif_ctx *ctx, uint8_t proto,
                                           const struct ipsecif_addr *dst, uint32_t spi);
/* Outbound SA for a request: level unique matches reqid; other levels match
 * (proto, mode, src, dst). NAT-T ports must match when given (nonzero).
 * Prefers the newest mature SA, then the newest dying one; with
 * net.key.prefered_oldsa 1 the oldest dying one, then the oldest mature one
 * (age: when the SA became mature). */
struct ipsecif_sa *ipsecif_sadb_lookup_out(struct ipsecif_ctx *ctx,
                                           const struct ipsecif_ipsecreq *req, uint8_t level,
                                           const struct ipsecif_addr *src,
                                           const struct ipsecif_addr *dst, uint16_t sport,
                                           uint16_t dport);
/* The same for host traffic: UDP-encapsulated or not, the SA says (its
 * NAT-T ports go on the wire). */
struct ipsecif_sa *ipsecif_sadb_lookup_host(struct ipsecif_ctx *ctx,
                                            const struct ipsecif_ipsecreq *req, uint8_t level,
                                            const struct ipsecif_addr *src,
                                            const struct ipsecif_addr *dst);
/* No byte limit of sa is left to reach: none hard, the soft one raised or none. */
static inline bool ipsecif_sadb_bytes_free(const struct ipsecif_sa *sa)
{
    return sa->hard.bytes == 0 && (sa->soft.bytes == 0 || sa->soft_sent);
}
/* Count use of an SA (bytes, first use); raises soft/hard EXPIRE on byte limits.
 * Returns false if the SA died. */
bool ipsecif_sadb_account_slow(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, size_t bytes,
                               uint64_t now);
/* ipsecif_sadb_account_slow(), with the case of every packet but an SA's first inline: a live
 * SA used before, with no byte limit left to watch, only adds the bytes. */
static inline bool ipsecif_sadb_account(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa,
                                        size_t bytes, uint64_t now)
{
    if (sa->allocations != 0 && ipsecif_sadb_bytes_free(sa) && sa->in_use &&
        (sa->state == IPSECIF_SA_MATURE || sa->state == IPSECIF_SA_DYING)) {
        sa->bytes = bytes > UINT64_MAX - sa->bytes ? UINT64_MAX : sa->bytes + bytes;
        return true;
    }
    return ipsecif_sadb_account_slow(ctx, sa, bytes, now);
}
/* Kill an SA now: EXPIRE hard event with the reason, keys wiped, removed. */
void ipsecif_sadb_kill(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, uint8_t reason);
uint64_t ipsecif_sadb_timer(struct ipsecif_ctx *ctx, uint64_t now);
uint64_t ipsecif_sadb_next_deadline(const struct ipsecif_ctx *ctx);
void ipsecif_sadb_info(const struct ipsecif_sa *sa, struct ipsecif_sa_info *out);
void ipsecif_sadb_clear(struct ipsecif_ctx *ctx); /* deinit: wipe all */

#endif /* IPSECIF_SADB_H */
