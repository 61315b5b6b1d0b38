/*
 * ipsecif interfaces: the slots, the tunnel-pair and unit hashes, and what
 * the data path asks of them. Not installed.
 */
#ifndef IPSECIF_IFACE_PRIV_H
#define IPSECIF_IFACE_PRIV_H

#include "base/base.h"
#include "esp/esp.h"

struct ipsecif_sp;

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
    struct ipsecif_outer_tpl otpl; /* the outer header of ESP packets sent */
    struct ipsecif_sp *sp[4];      /* enum ipsecif_if_policy order */
    uint32_t reqid[4];             /* unique ids of the four (kept across tunnel changes) */
    struct ipsecif_addr local4;    /* source for ICMP errors built back, optional */
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

/* The interfaces' part of the context; only iface.c knows its layout. */
struct ipsecif_iface_state {
    struct ipsecif_if *tab;
    uint32_t n;
    struct ipsecif_if **hash;      /* by tunnel (src, dst) */
    struct ipsecif_if **unit_hash; /* by unit, so names resolve in O(1) */
    uint32_t hash_mask;
    uint32_t *free; /* stack of free slot indices */
    uint32_t nfree;
    struct ipsecif_if *head;
    struct ipsecif_if *tail;
    uint8_t max_nesting;   /* interface outputs one packet may pass */
    uint32_t natt_tunnels; /* link0 interfaces in the tunnel hash: 0, no ESP in UDP is ours */
};

size_t ipsecif_iface_mem_size(const struct ipsecif_config *cfg);
void ipsecif_iface_setup(struct ipsecif_ctx *ctx, uint8_t **cursor);
uint16_t ipsecif_if_local_port(const struct ipsecif_if *ifp);
uint16_t ipsecif_if_remote_port(const struct ipsecif_if *ifp);
/* The interface whose tunnel is local -> remote (NAT-T: with these ports;
 * ports 0 = plain ESP, matching only interfaces without link0). */
struct ipsecif_if *ipsecif_if_lookup_outer(struct ipsecif_ctx *ctx,
                                           const struct ipsecif_addr *local,
                                           const struct ipsecif_addr *remote, uint16_t lport,
                                           uint16_t rport);

/* Count a dropped packet once, in the counter its verdict rc names
 * (dispatch.c's tables), globally and on ifp when one is known. */
void ipsecif_count_out_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, int rc);
void ipsecif_count_in_drop(struct ipsecif_ctx *ctx, struct ipsecif_if *ifp, int rc);

/* The host-traffic path (host.c) for a whole packet ipsecif_input() found
 * no interface for: ipsecif_host_input(), then the port's deliver_host. */
int ipsecif_host_deliver(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now);
/* Is the UDP payload in pkt ESP for a host SA with meta's ports (RFC 3948)? */
bool ipsecif_host_natt_ours(struct ipsecif_ctx *ctx, const struct ipsecif_outer_meta *meta,
                            const struct ipsecif_buf *pkt);

/* How long (ms) an interface's deeper nesting depth holds against
 * shallower packets, and the least time between two nesting log lines. */
#define IPSECIF_NEST_HOLD_MS 1000u

#endif /* IPSECIF_IFACE_PRIV_H */
