/*
 * Key-management events: ACQUIRE and EXPIRE raised by the data path and the
 * SADB, the ACQUIRE rate limit, and the hook through which lib/pfkey hears
 * them. The PF_KEY endpoint table and message buffer are carved here, not in
 * lib/pfkey, so a build without lib/pfkey still links. Not installed.
 */
#ifndef IPSECIF_KM_H
#define IPSECIF_KM_H

#include "base/base.h"

struct ipsecif_sp;
struct ipsecif_sa;

struct ipsecif_pfkey_ep {
    bool in_use;
    bool promisc;
    uint8_t dialect;     /* IPSECIF_PFKEY_DIALECT_* */
    uint32_t registered; /* bit per SA type registered for (1u << satype) */
};

/* PF_KEY's part of the context: endpoint table (cfg.max_pfkey_endpoints)
 * and one buffer of IPSECIF_PFKEY_MSG_MAX bytes where every outgoing message
 * is built. hook is set by lib/pfkey when an endpoint opens, so the core
 * links without lib/pfkey; ipsecif_emit() passes events through it. */
struct ipsecif_pfkey_state {
    struct ipsecif_pfkey_ep *eps;
    struct ipsecif_pfkey_stats stats;
    uint8_t *buf;
    uint32_t nopen;
    uint32_t seq; /* sadb_msg_seq of library-originated ACQUIREs */
    /* Unix time minus the library's clock, ms (ipsecif_pfkey_set_wallclock);
     * 0 leaves PF_KEY times in the library's clock. */
    int64_t wall_off_ms;
    void (*hook)(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);
};

size_t ipsecif_pfkey_mem_size(const struct ipsecif_config *cfg);
void ipsecif_pfkey_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);

/* ACQUIRE for request req_index of sp, at most one per policy per
 * cfg.acquire_interval_ms. */
void ipsecif_raise_acquire(struct ipsecif_ctx *ctx, struct ipsecif_sp *sp, uint8_t req_index,
                           const struct ipsecif_addr *src, const struct ipsecif_addr *dst,
                           uint16_t sport, uint16_t dport, uint64_t now);
/* The same for any policy (a per-socket one has id 0), rate-limited
 * through *last (ms of the last ACQUIRE, 0 = never). */
void ipsecif_raise_acquire_pol(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol,
                               uint64_t *last, uint8_t req_index, const struct ipsecif_addr *src,
                               const struct ipsecif_addr *dst, uint16_t sport, uint16_t dport,
                               uint64_t now);
/* EXPIRE for sa (hard or soft), with the reason. */
void ipsecif_raise_expire(struct ipsecif_ctx *ctx, const struct ipsecif_sa *sa, uint8_t hard,
                          uint8_t reason);
/* An event to the port's km_event and, through the hook, to PF_KEY. */
void ipsecif_emit(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);

/* Broadcast an ACQUIRE or EXPIRE built from a km event to the registered
 * endpoints; installed as the hook (lib/pfkey). */
void ipsecif_pfkey_event(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev);

#endif /* IPSECIF_KM_H */
