/*
 * The SPD: policies, their lookup structures, the system defaults, the
 * per-socket policy table and the inbound policy check. Not installed.
 */
#ifndef IPSECIF_SPD_PRIV_H
#define IPSECIF_SPD_PRIV_H

#include "base/base.h"

struct ipsecif_sa;

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

/* Per-socket policy (sockpol.c). */
struct ipsecif_sockpol {
    bool in_use;
    struct ipsecif_sock sock;
    struct ipsecif_sockpolicy pol[2]; /* in, out; ENTRUST where none is set */
    uint64_t last_acquire;            /* ms of the last ACQUIRE for it, 0 = never */
};

/* The SPD's part of the context; only spd.c knows its layout. */
struct ipsecif_spd_state {
    struct ipsecif_sp *tab;
    uint32_t n;
    struct ipsecif_sp **exact_hash; /* (dir, src, dst) of exact policies */
    struct ipsecif_sp **id_hash;
    uint32_t hash_mask;
    struct ipsecif_sp_list all[4]; /* per direction: every policy, lookup order */
    uint64_t order;
    uint32_t next_id;
    uint32_t next_reqid;
    uint32_t nonexact[4];           /* count of non-exact policies per direction */
    struct ipsecif_sp_list nx[4];   /* per direction: non-exact policies, lookup order */
    struct ipsecif_sp **sel_hash;   /* (dir, whole selector) of every policy */
    struct ipsecif_sp_rq **rq_hash; /* reqid -> request links */
    struct ipsecif_sp *free;        /* free slots, chained through all.next */
    struct ipsecif_sockpol *socks;  /* cfg.max_socket_policies slots */
    uint32_t nsocks;                /* slots in use */
    uint8_t sysctl[IPSECIF_SYSCTL_COUNT];
    uint32_t gen; /* bumped by every change host traffic depends on */
};

size_t ipsecif_spd_mem_size(const struct ipsecif_config *cfg);
/* Bring net.inet.ipsec.used up to date after a policy or per-socket policy
 * was added or enabled was set (NetBSD's key_update_used()). */
void ipsecif_spd_note_used(struct ipsecif_ctx *ctx);
/* Does host traffic go through the SPD (net.inet.ipsec.used)? */
bool ipsecif_spd_used(const struct ipsecif_ctx *ctx);
void ipsecif_spd_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
/* Check a request list of 1..IPSECIF_MAX_REQUESTS and build its stored form
 * (endpoints normalised). */
bool ipsecif_spd_check_reqs(const struct ipsecif_ipsecreq *in, uint8_t n,
                            struct ipsecif_ipsecreq *out);
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
/* Free policy slots. */
uint32_t ipsecif_spd_free_slots(const struct ipsecif_ctx *ctx);

/* The socket whose per-socket policy for dir covers a packet's local end
 * (see ipsecif_spd_sock_lookup()), or NULL. */
struct ipsecif_sockpol *ipsecif_spd_sock_match(const struct ipsecif_ctx *ctx, uint8_t dir,
                                               uint8_t proto, const struct ipsecif_addr *local,
                                               uint16_t lport);

/*
 * The inbound check: does sa, which opened a packet from meta->src to
 * meta->dst carrying next header nh, satisfy the inbound policy that
 * matches it (or the system default when none does)? IPSECIF_OK or
 * IPSECIF_ERR_POLICY; marks the matched policy used at now.
 */
int ipsecif_spd_check_in(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta, uint8_t nh,
                         const struct ipsecif_sa *sa, uint64_t now);
/* The same, also giving the policy that decided (NULL: the system default),
 * so a caller may apply the verdict again to a packet with the same outer
 * addresses, next header and SA while the SPD is unchanged (it then sets
 * the policy's lastused itself). */
int ipsecif_spd_check_in_sp(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                            uint8_t nh, const struct ipsecif_sa *sa, uint64_t now,
                            struct ipsecif_sp **matched);

#endif /* IPSECIF_SPD_PRIV_H */
