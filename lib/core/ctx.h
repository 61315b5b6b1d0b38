/*
 * The context: a composition of the modules' states. It is defined here and
 * nowhere else; each module carves its own part of the host's memory
 * (its mem_size and setup functions) and only that module knows its part's
 * layout. Not installed.
 *
 * Locking: nothing here is locked. The host serializes all calls on one
 * context (see ipsecif.h); callbacks run inside those calls.
 */
#ifndef IPSECIF_CTX_H
#define IPSECIF_CTX_H

#include "ah/ah.h"
#include "base/base.h"
#include "core/iface.h"
#include "core/km.h"
#include "esp/esp.h"
#include "ip/ip.h"
#include "sadb/sadb.h"
#include "spd/spd.h"

struct ipsecif_ctx {
    uint32_t magic;
    size_t mem_len; /* bytes of host memory the context covers */
    struct ipsecif_config cfg;
    const struct ipsecif_port *port;
    void *user;
    struct ipsecif_stats stats;
    uint64_t now;   /* last time seen */
    uint16_t ip_id; /* next outer IPv4 id */

    struct ipsecif_iface_state ifs;
    struct ipsecif_spd_state spd;
    struct ipsecif_sadb_state sadb;
    struct ipsecif_pfkey_state pfkey;
};

#define IPSECIF_CTX_MAGIC 0x49505346u

/* Log through the port if IPSECIF_LOG and a log callback exist (printf-free: fixed text). */
void ipsecif_log(struct ipsecif_ctx *ctx, int level, const char *msg);

#endif /* IPSECIF_CTX_H */
