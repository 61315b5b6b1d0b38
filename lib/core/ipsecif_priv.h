/*
 * Private definitions shared by lib/core, lib/spd and lib/esp. The context
 * struct is defined here and nowhere else. Not installed.
 *
 * Locking: nothing here is locked. The host serializes all calls on one
 * context (see ipsecif.h); callbacks run inside those calls.
 */
#ifndef IPSECIF_PRIV_H
#define IPSECIF_PRIV_H

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

/* ---- util.c ---- */
/* Constant-time comparison: 1 if equal, 0 otherwise. */
int ipsecif_ct_memeq(const void *a, const void *b, size_t n);
/* Wipe memory in a way the compiler may not drop. */
void ipsecif_wipe(void *p, size_t n);
bool ipsecif_addr_eq(const struct ipsecif_addr *a, const struct ipsecif_addr *b);
bool ipsecif_addr_is_unspec(const struct ipsecif_addr *a);
size_t ipsecif_addr_len(uint8_t family); /* 4, 16, or 0 */
/* Does addr fall in prefix/plen? Families must match. */
bool ipsecif_addr_in_prefix(const struct ipsecif_addr *addr, const struct ipsecif_addr *prefix,
                            uint8_t plen);
/* FNV-1a style mixing for hash tables. */
uint32_t ipsecif_hash_bytes(uint32_t h, const void *p, size_t n);
uint32_t ipsecif_hash_addr(uint32_t h, const struct ipsecif_addr *a);
/* Internet checksum: sum 16-bit words (partial, not folded) and fold. */
uint32_t ipsecif_csum_add(uint32_t sum, const uint8_t *p, size_t n);
uint16_t ipsecif_csum_fold(uint32_t sum);
/* Log through the port if IPSECIF_LOG and a log callback exist (printf-free: fixed text). */
void ipsecif_log(struct ipsecif_ctx *ctx, int level, const char *msg);

/* ---- Algorithms (lib/esp/alg.c) ---- */
struct ipsecif_ealg_info {
    uint8_t id;          /* enum ipsecif_ealg */
    uint8_t aead;        /* 1: AEAD (GCM, ChaCha20-Poly1305), 2: GMAC (auth only, AEAD engine) */
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

/* ---- SA ---- */
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

/* ---- Policy ---- */
struct ipsecif_sp;
/* One link of a policy in the reqid hash, one per request with a nonzero
 * reqid, so a policy with two reqids is found under both. */
struct ipsecif_sp_rq {
    struct ipsecif_sp *sp;
    uint32_t reqid;
    struct ipsecif_sp_rq *next;
    struct ipsecif_sp_rq *prev;
};
/* A policy's place in one ordered per-direction list, and such a list. */
struct ipsecif_sp_link {
    struct ipsecif_sp *next;
    struct ipsecif_sp *prev;
};
struct ipsecif_sp_list {
    struct ipsecif_sp *head;
    struct ipsecif_sp *tail;
};
struct ipsecif_sp {
    bool in_use;
    bool exact;                 /* both prefixes full length: lives in the host-pair hash */
    uint16_t refcnt;            /* interfaces sharing it (NAT-T); 0 = manual */
    struct ipsecif_policy pol;  /* pol.id, pol.owned kept current */
    uint64_t order;             /* insertion order within equal priority */
    uint64_t last_acquire;      /* ms of the last ACQUIRE raised, 0 = never */
    struct ipsecif_sp_link all; /* every policy of a direction (free slots: all.next) */
    struct ipsecif_sp *hnext;   /* exact host-pair hash chain, ordered */
    struct ipsecif_sp *id_next; /* id hash chain */
    /* all above chains every policy of a direction (and the free slots
     * through all.next); nx chains only the non-exact ones so a lookup never
     * walks exact host pairs; sel_next chains the selector hash (duplicate
     * checks, delete by selector); a policy may carry two reqids, so each
     * request has its own reqid-hash link. */
    struct ipsecif_sp_link nx;
    struct ipsecif_sp *sel_next;
    struct ipsecif_sp_rq rq[IPSECIF_MAX_REQUESTS];
};

/* ---- Per-socket policy (lib/spd/sockpol.c) ---- */
struct ipsecif_sockpol {
    bool in_use;
    struct ipsecif_sock sock;
    struct ipsecif_sockpolicy pol[2]; /* in, out; ENTRUST where none is set */
};

/* ---- Interface ---- */
struct ipsecif_if {
    bool in_use;
    uint32_t unit;
    char name[IPSECIF_IFNAME_SIZE];
    uint32_t flags;
    uint16_t mtu;
    void *user;
    /* Tunnel configuration: swapped as a whole. */
    bool has_tunnel;
    struct ipsecif_addr src;
    struct ipsecif_addr dst;
    uint16_t sport; /* NAT-T ports, as configured (0 = 4500) */
    uint16_t dport;
    struct ipsecif_sp *sp[4];   /* enum ipsecif_if_policy order */
    uint32_t reqid[4];          /* unique ids of the four (kept across tunnel changes) */
    struct ipsecif_addr local4; /* source for ICMP errors built back, optional */
    struct ipsecif_addr local6;
    struct ipsecif_stats stats;
    /* Nesting: depth of the outer packets sent lately (0 = none yet), held
     * against shallower ones until nest_hold (ms), and when a refusal was
     * last logged (0 = never). */
    uint8_t nest_depth;
    uint64_t nest_hold;
    uint64_t nest_logged;
    struct ipsecif_if *hnext;     /* tunnel-pair hash chain */
    struct ipsecif_if *unit_next; /* unit (name) hash chain */
    struct ipsecif_if *list_next; /* creation order */
    struct ipsecif_if *list_prev;
};

/* ---- PF_KEY endpoint (lib/pfkey) ---- */
struct ipsecif_pfkey_ep {
    bool in_use;
    bool promisc;
    uint8_t dialect;     /* IPSECIF_PFKEY_DIALECT_* */
    uint32_t registered; /* bit per SA type registered for (1u << satype) */
};

/* ---- Context ---- */
struct ipsecif_ctx {
    uint32_t magic;
    size_t mem_len; /* bytes of host memory the context covers */
    struct ipsecif_config cfg;
    const struct ipsecif_port *port;
    void *user;
    struct ipsecif_stats stats;
    uint64_t now;   /* last time seen */
    uint16_t ip_id; /* next outer IPv4 id */
    uint8_t sysctl[IPSECIF_SYSCTL_COUNT];

    /* Interfaces */
    struct ipsecif_if *ifs;
    uint32_t nifs;
    struct ipsecif_if **if_hash;      /* by tunnel (src, dst) */
    struct ipsecif_if **if_unit_hash; /* by unit, so names resolve in O(1) */
    uint32_t if_hash_mask;
    uint32_t *if_free; /* stack of free slot indices */
    uint32_t if_nfree;
    struct ipsecif_if *if_head;
    struct ipsecif_if *if_tail;
    uint8_t if_max_nesting; /* interface outputs one packet may pass */

    /* SPD */
    struct ipsecif_sp *sps;
    uint32_t nsps;
    struct ipsecif_sp **sp_exact_hash; /* (dir, src, dst) of exact policies */
    struct ipsecif_sp **sp_id_hash;
    uint32_t sp_hash_mask;
    struct ipsecif_sp_list sp_all[4]; /* per direction: every policy, lookup order */
    uint64_t sp_order;
    uint32_t sp_next_id;
    uint32_t sp_next_reqid;
    uint32_t sp_nonexact[4];           /* count of non-exact policies per direction */
    struct ipsecif_sp_list sp_nx[4];   /* per direction: non-exact policies, lookup order */
    struct ipsecif_sp **sp_sel_hash;   /* (dir, whole selector) of every policy */
    struct ipsecif_sp_rq **sp_rq_hash; /* reqid -> request links */
    struct ipsecif_sp *sp_free;        /* free slots, chained through next */
    struct ipsecif_sockpol *socks;     /* cfg.max_socket_policies slots */
    uint32_t nsocks;                   /* slots in use */

    /* SADB */
    struct ipsecif_sa *sas;
    uint32_t nsas;
    struct ipsecif_sa **sa_spi_hash;
    struct ipsecif_sa **sa_pair_hash;
    struct ipsecif_sa **sa_reqid_hash;
    uint32_t sa_hash_mask;
    struct ipsecif_sa *sa_age_head;
    struct ipsecif_sa *sa_age_tail;
    uint64_t sa_gen;
    uint32_t *replay_area;
    uint32_t replay_words; /* per SA */
    /* nsas counts SAs in use; sa_free is a stack of free
     * slot indices (entries [0, max_sas - nsas) are valid) so add is O(1);
     * sa_next_deadline caches the earliest SA deadline (may be early, never
     * late) so ipsecif_next_deadline() is O(1). */
    uint32_t *sa_free;
    uint64_t sa_next_deadline;

    /* PF_KEY: endpoint table (cfg.max_pfkey_endpoints) and one buffer of
     * IPSECIF_PFKEY_MSG_MAX bytes where every outgoing message is built.
     * pfkey_hook is set by lib/pfkey when an endpoint opens, so the core
     * links without lib/pfkey; ipsecif_emit() passes events through it. */
    struct ipsecif_pfkey_ep *pfkey_eps;
    struct ipsecif_pfkey_stats pfkey_stats;
    uint8_t *pfkey_buf;
    uint32_t pfkey_nopen;
    uint32_t pfkey_seq; /* sadb_msg_seq of library-originated ACQUIREs */
    /* Unix time minus the library's clock, ms (ipsecif_pfkey_set_wallclock);
     * 0 leaves PF_KEY times in the library's clock. */
    int64_t pfkey_wall_off_ms;
    void (*pfkey_hook)(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);
};

#define IPSECIF_CTX_MAGIC 0x49505346u

/* ---- ctx.c: memory carving ---- */
/* Each module reports what it needs; ctx.c lays it out in this order. */
size_t ipsecif_spd_mem_size(const struct ipsecif_config *cfg);
void ipsecif_spd_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
/* Check a request and build its stored form (endpoints normalised). */
bool ipsecif_spd_check_req(const struct ipsecif_ipsecreq *in, struct ipsecif_ipsecreq *out);
size_t ipsecif_sadb_mem_size(const struct ipsecif_config *cfg);
void ipsecif_sadb_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
size_t ipsecif_iface_mem_size(const struct ipsecif_config *cfg);
void ipsecif_iface_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
size_t ipsecif_pfkey_mem_size(const struct ipsecif_config *cfg);
void ipsecif_pfkey_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
/* Round a power-of-two hash size for n entries (at least 16). */
uint32_t ipsecif_hash_size(uint32_t n);

/* ---- SPD internals (lib/spd/spd.c): the one mutation path ---- */
/*
 * Insert a policy. owner != NULL marks it interface-owned (refcnt 1, not
 * deletable through the public API). Refuses a policy with the same selector
 * and direction: IPSECIF_ERR_BUSY if that one is owned, else IPSECIF_ERR_EXIST.
 * Level unique with reqid 0 gets an automatic reqid above the manual range.
 */
int ipsecif_spd_insert(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, bool owned,
                       uint64_t now, struct ipsecif_sp **out);
/* Remove unconditionally (owned or not). */
void ipsecif_spd_remove(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp);
/*
 * Undo a removal (rollback): insert pol, a copy of a removed policy's pol,
 * keeping its id, created and lastused, at its old place in lookup order
 * (order: the removed sp->order, saved before ipsecif_spd_remove()). Same
 * checks as ipsecif_spd_insert(); IPSECIF_ERR_EXIST also if the id is in use,
 * IPSECIF_ERR_ARG if pol->id is 0 or order was never issued.
 */
int ipsecif_spd_restore(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, bool owned,
                        uint64_t order, struct ipsecif_sp **out);
struct ipsecif_sp *ipsecif_spd_find_exact(struct ipsecif_ctx *ctx,
                                          const struct ipsecif_selector *sel, uint8_t dir);
struct ipsecif_sp *ipsecif_spd_find_id(struct ipsecif_ctx *ctx, uint32_t id);
/* Best policy for a packet selector (full addresses), or NULL. */
struct ipsecif_sp *ipsecif_spd_match(struct ipsecif_ctx *ctx, uint8_t dir,
                                     const struct ipsecif_selector *pkt);
/* A fresh reqid above IPSECIF_REQID_MANUAL_MAX that no policy uses. */
uint32_t ipsecif_spd_new_reqid(struct ipsecif_ctx *ctx);
bool ipsecif_spd_reqid_used(struct ipsecif_ctx *ctx, uint32_t reqid);
/* Resolve a request's level against the system defaults (never DEFAULT). */
uint8_t ipsecif_spd_level(const struct ipsecif_ctx *ctx, uint8_t family,
                          const struct ipsecif_ipsecreq *req);
/* Free policy slots. */
uint32_t ipsecif_spd_free_slots(const struct ipsecif_ctx *ctx);

/* ---- SADB internals (lib/core/sadb.c) ---- */
struct ipsecif_sa *ipsecif_sadb_lookup_spi(struct ipsecif_ctx *ctx, uint8_t proto,
                                           const struct ipsecif_addr *dst, uint32_t spi);
/* Outbound SA for a request: level unique matches reqid; other levels match
 * (proto, mode, src, dst). NAT-T ports must match when given (nonzero).
 * Prefers the newest mature SA, then the newest dying one. */
struct ipsecif_sa *ipsecif_sadb_lookup_out(struct ipsecif_ctx *ctx,
                                           const struct ipsecif_ipsecreq *req, uint8_t level,
                                           const struct ipsecif_addr *src,
                                           const struct ipsecif_addr *dst, uint16_t sport,
                                           uint16_t dport);
/* Count use of an SA (bytes, first use); raises soft/hard EXPIRE on byte limits.
 * Returns false if the SA died. */
bool ipsecif_sadb_account(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, size_t bytes,
                          uint64_t now);
/* Kill an SA now: EXPIRE hard event with the reason, keys wiped, removed. */
void ipsecif_sadb_kill(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, uint8_t reason);
uint64_t ipsecif_sadb_timer(struct ipsecif_ctx *ctx, uint64_t now);
uint64_t ipsecif_sadb_next_deadline(const struct ipsecif_ctx *ctx);
void ipsecif_sadb_info(const struct ipsecif_sa *sa, struct ipsecif_sa_info *out);
void ipsecif_sadb_clear(struct ipsecif_ctx *ctx); /* deinit: wipe all */

/* ---- ESP (lib/esp) ---- */
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

/* Replay window (lib/esp/replay.c). seq_lo is the 32-bit wire value; for
 * ESN the high half is inferred (RFC 4303 Appendix A). check never changes
 * state; update records seq (call only after the ICV verified). */
int ipsecif_replay_check(const struct ipsecif_sa *sa, uint32_t seq_lo, uint64_t *seq);
void ipsecif_replay_update(struct ipsecif_sa *sa, uint64_t seq);

/* Encapsulation helpers (lib/esp/encap.c). */
/* RFC 6040: outer ECN at encapsulation (normal mode copies, compatibility clears). */
uint8_t ipsecif_ecn_encap(uint8_t inner_tos, bool ecn_friendly);
/* RFC 6040 decapsulation: new inner ECN, or -1 to drop (CE over not-ECT). */
int ipsecif_ecn_decap(uint8_t outer_tos, uint8_t inner_tos);
/*
 * Push an outer IP header (and UDP header when sport/dport are nonzero) in
 * front of the ESP packet in pkt. The inner header (at the payload start
 * before ESP was applied) gave tos and df. Fills meta.
 */
int ipsecif_encap_outer(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt,
                        const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                        uint16_t sport, uint16_t dport, uint8_t tos, bool df,
                        struct ipsecif_outer_meta *meta);
/*
 * Parse an outer IPv4/IPv6 header at the start of pkt: fill meta (addresses,
 * tos, protocol via *proto, UDP ports if UDP) and pull the IP (and UDP)
 * header. Returns IPSECIF_OK or IPSECIF_ERR_MALFORMED / IPSECIF_ERR_PROTO.
 */
int ipsecif_decap_outer(struct ipsecif_buf *pkt, struct ipsecif_outer_meta *meta, uint8_t *proto);
/*
 * Turn the oversize inner packet in pkt into an ICMP fragmentation-needed
 * (IPv4) or ICMPv6 packet-too-big, in place, addressed to its sender, from
 * src (the interface's address). mtu is what the sender may use.
 */
int ipsecif_icmp_toobig(struct ipsecif_buf *pkt, const struct ipsecif_addr *src, uint32_t mtu);

/* ---- Interfaces (lib/core/iface.c) ---- */
uint16_t ipsecif_if_local_port(const struct ipsecif_if *ifp);
uint16_t ipsecif_if_remote_port(const struct ipsecif_if *ifp);
/* The interface whose tunnel is local -> remote (NAT-T: with these ports;
 * ports 0 = plain ESP, matching only interfaces without link0). */
struct ipsecif_if *ipsecif_if_lookup_outer(struct ipsecif_ctx *ctx,
                                           const struct ipsecif_addr *local,
                                           const struct ipsecif_addr *remote, uint16_t lport,
                                           uint16_t rport);

/* How long (ms) an interface's deeper nesting depth holds against
 * shallower packets, and the least time between two nesting log lines. */
#define IPSECIF_NEST_HOLD_MS 1000u

/* ---- core dispatch helpers ---- */
void ipsecif_raise_acquire(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp, uint8_t req_index,
                           const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                           uint16_t sport, uint16_t dport, uint64_t now);
void ipsecif_emit(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);

/* ---- PF_KEY (lib/pfkey) ---- */
/* Broadcast an ACQUIRE or EXPIRE built from a km event to the registered
 * endpoints; installed as ctx->pfkey_hook. */
void ipsecif_pfkey_event(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);

#endif /* IPSECIF_PRIV_H */
