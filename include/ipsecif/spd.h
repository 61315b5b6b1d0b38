/**
 * @file spd.h
 * @brief Security policy database (SPD) and the system-wide defaults.
 */
#ifndef IPSECIF_SPD_H
#define IPSECIF_SPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/opts.h"
#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_spd SPD
 * @brief Policies: selectors, directions, actions, IPsec requests, levels.
 *
 * Policies are ordered as KAME orders them: by priority (lower value
 * first), then by the order they were added. Each policy gets an id when it
 * is added. The policies an ipsecif interface owns are listed like any other
 * but cannot be deleted through this API, and a policy that would clash with
 * one of them is refused.
 * @{
 */

/** Policy directions. */
enum ipsecif_dir {
    IPSECIF_DIR_ANY = 0, /**< Any (lookups by id only). */
    IPSECIF_DIR_IN = 1,  /**< Inbound. */
    IPSECIF_DIR_OUT = 2, /**< Outbound. */
    IPSECIF_DIR_FWD = 3  /**< Forward (Linux). */
};

/** Policy actions. */
enum ipsecif_action {
    IPSECIF_ACTION_DISCARD = 0, /**< Drop. */
    IPSECIF_ACTION_NONE = 1,    /**< Bypass IPsec. */
    IPSECIF_ACTION_IPSEC = 2    /**< Apply the request list. */
};

/** IPsec request levels. */
enum ipsecif_level {
    IPSECIF_LEVEL_DEFAULT = 0, /**< Follow the system-wide default. */
    IPSECIF_LEVEL_USE = 1,     /**< Use an SA if there is one. */
    IPSECIF_LEVEL_REQUIRE = 2, /**< Require an SA. */
    IPSECIF_LEVEL_UNIQUE = 3   /**< Require an SA bound to this policy's reqid. */
};

/** Largest manual request id; automatic ids are allocated above it. */
#define IPSECIF_REQID_MANUAL_MAX 0x3fffu

/** Port value meaning "any" in a selector. */
#define IPSECIF_PORT_ANY 0

/**
 * @brief A traffic selector.
 *
 * For ICMP and ICMPv6 the type sits in sport and the code in dport, with
 * 0xffff meaning any (the KAME convention shifted by one: use
 * ::IPSECIF_ICMP_ANY).
 */
struct ipsecif_selector {
    struct ipsecif_addr src; /**< Source prefix. */
    struct ipsecif_addr dst; /**< Destination prefix (same family as src). */
    uint8_t src_plen;        /**< Source prefix length. */
    uint8_t dst_plen;        /**< Destination prefix length. */
    uint8_t ulproto;         /**< Upper-layer protocol, ::IPSECIF_IPPROTO_ANY for any. */
    uint16_t sport;          /**< Source port, 0 = any (ICMP: type). */
    uint16_t dport;          /**< Destination port, 0 = any (ICMP: code). */
};

/** ICMP type/code value meaning "any". */
#define IPSECIF_ICMP_ANY 0xffffu

/** One IPsec request of a policy. */
struct ipsecif_ipsecreq {
    uint8_t proto;               /**< ::IPSECIF_IPPROTO_ESP or ::IPSECIF_IPPROTO_AH. */
    uint8_t mode;                /**< ::IPSECIF_MODE_TRANSPORT or ::IPSECIF_MODE_TUNNEL. */
    uint8_t level;               /**< ::ipsecif_level. */
    uint32_t reqid;              /**< Request id; required for unique, 0 otherwise allowed. */
    struct ipsecif_addr tun_src; /**< Tunnel source (tunnel mode). */
    struct ipsecif_addr tun_dst; /**< Tunnel destination (tunnel mode). */
};

/** A policy as added or reported. */
struct ipsecif_policy {
    struct ipsecif_selector sel; /**< What it matches. */
    uint8_t dir;                 /**< ::ipsecif_dir. */
    uint8_t action;              /**< ::ipsecif_action. */
    uint32_t priority;           /**< Lower first; 0x80000000 is the usual default. */
    uint8_t nreq;                /**< Number of requests (IPSEC action). */
    struct ipsecif_ipsecreq req[IPSECIF_MAX_REQUESTS]; /**< The requests, outermost last. */
    uint32_t id;                                       /**< Policy id (reported; ignored on add). */
    bool owned;                                        /**< Owned by an interface (reported). */
    uint64_t created;                                  /**< When added, ms (reported). */
    uint64_t lastused;                                 /**< Last match, ms, 0 = never (reported). */
};

/** Priority most tools send when none is given. */
#define IPSECIF_PRIORITY_DEFAULT 0x80000000u

/**
 * Largest policy id. Ids count up from 1 and wrap here, so that the Linux
 * PF_KEY dialect's wire id, (id << 3) | direction, fits in 32 bits.
 */
#define IPSECIF_POLICY_ID_MAX 0x1fffffffu

/** System-wide settings (the net.inet.ipsec, net.inet6.ipsec6 and net.key sysctls). */
enum ipsecif_sysctl {
    IPSECIF_SYSCTL_ESP_TRANS_DEFLEV = 0, /**< IPv4 ESP transport default level. */
    IPSECIF_SYSCTL_ESP_NET_DEFLEV,       /**< IPv4 ESP tunnel default level. */
    IPSECIF_SYSCTL_AH_TRANS_DEFLEV,      /**< IPv4 AH transport default level. */
    IPSECIF_SYSCTL_AH_NET_DEFLEV,        /**< IPv4 AH tunnel default level. */
    IPSECIF_SYSCTL_DEF_POLICY,           /**< IPv4 policy when none matches: 0 discard, 1 none. */
    IPSECIF_SYSCTL6_ESP_TRANS_DEFLEV,    /**< IPv6 ESP transport default level. */
    IPSECIF_SYSCTL6_ESP_NET_DEFLEV,      /**< IPv6 ESP tunnel default level. */
    IPSECIF_SYSCTL6_AH_TRANS_DEFLEV,     /**< IPv6 AH transport default level. */
    IPSECIF_SYSCTL6_AH_NET_DEFLEV,       /**< IPv6 AH tunnel default level. */
    IPSECIF_SYSCTL6_DEF_POLICY,          /**< IPv6 policy when none matches. */
    /**
     * net.inet.ipsec.enabled (net.inet6.ipsec6.enabled is the same value):
     * whether host traffic may go through the engine. 0 off: host traffic
     * bypasses the SPD whatever it holds; setting 0 is refused
     * (::IPSECIF_ERR_BUSY) while any policy or per-socket policy exists.
     * 1 (the default) on once IPsec is used: ::IPSECIF_SYSCTL_USED becomes 1
     * with the first policy or per-socket policy. 2 always on: used is 1
     * even with an empty SPD, so def_policy applies from the start.
     */
    IPSECIF_SYSCTL_ENABLED,
    /**
     * net.inet.ipsec.used (net.inet6.ipsec6.used is the same value), read
     * only (a write gives ::IPSECIF_ERR_UNSUPPORTED): 1 once host traffic
     * goes through the SPD. Set by the first policy or per-socket policy
     * added while enabled is 1, or by enabled 2; it stays 1 when the
     * policies are removed again (as NetBSD's does), and goes back to 0
     * only when enabled is set to 0. While it is 0, ipsecif_host_output()
     * and ipsecif_host_input() look up no policy: cleartext passes both
     * ways whatever def_policy says, and ESP or AH for a host SA is still
     * opened. Interface (ipsecif) traffic is not affected by enabled or used.
     */
    IPSECIF_SYSCTL_USED,
    /**
     * net.key.prefered_oldsa: when several SAs fit an outbound request (same
     * protocol, addresses and, for level unique, reqid), 0 (the default)
     * takes the newest mature one, then the newest dying one; 1 takes the
     * oldest dying one, then the oldest mature one. An SA's age counts from
     * when it became mature (SADB_ADD, or the SADB_UPDATE of a larval SA).
     * Applies to interface and host traffic alike; inbound SAs are found by
     * SPI and are not affected. Values 0 or 1.
     */
    IPSECIF_SYSCTL_KEY_PREFERED_OLDSA,
    IPSECIF_SYSCTL_COUNT /**< Number of values. */
};

/** net.inet.ipsec.enabled 0: host traffic bypasses the SPD. */
#define IPSECIF_IPSEC_DISABLED 0
/** net.inet.ipsec.enabled 1: the SPD applies once a policy was added. */
#define IPSECIF_IPSEC_ENABLED 1
/** net.inet.ipsec.enabled 2: the SPD always applies. */
#define IPSECIF_IPSEC_ALWAYS 2

/**
 * @brief What a per-socket policy does (setsockopt IP_IPSEC_POLICY and
 * IPV6_IPSEC_POLICY, one for each direction of a socket).
 */
enum ipsecif_sockpol_type {
    IPSECIF_SOCKPOL_ENTRUST = 0, /**< Follow the SPD: every socket's default. */
    IPSECIF_SOCKPOL_BYPASS = 1,  /**< No IPsec whatever the SPD says (IKE sockets). */
    IPSECIF_SOCKPOL_IPSEC = 2    /**< Apply the request list, before the SPD. */
};

/** A per-socket policy for one direction. */
struct ipsecif_sockpolicy {
    uint8_t dir;  /**< ::IPSECIF_DIR_IN or ::IPSECIF_DIR_OUT. */
    uint8_t type; /**< ::ipsecif_sockpol_type. */
    uint8_t nreq; /**< Requests (IPSEC type only, 1 or more). */
    struct ipsecif_ipsecreq req[IPSECIF_MAX_REQUESTS]; /**< The requests, outermost last. */
};

/**
 * @brief A socket as the host identifies it.
 *
 * The library never sees sockets: the host names each one by an owner (for
 * example the PF_KEY endpoint of the process holding it) and the owner's
 * handle for it (for example its descriptor), and says what it is bound to.
 */
struct ipsecif_sock {
    uint32_t owner;            /**< Who holds the socket, nonzero. */
    uint32_t handle;           /**< The owner's name for the socket. */
    uint8_t proto;             /**< ::IPSECIF_IPPROTO_UDP, _TCP ..., or _ANY if not known. */
    struct ipsecif_addr local; /**< Bound address: family set; all-zero bytes bind any. */
    uint16_t lport;            /**< Bound port, host order; 0 while not bound. */
};

/** ipsecif_spd_sock_close(): every socket of the owner. */
#define IPSECIF_SOCK_ALL 0xffffffffu

struct ipsecif_ctx;

/**
 * @brief Add a policy.
 * @param[in]  ctx the context.
 * @param[in]  pol the policy; id, owned, created and lastused are ignored.
 * @param[in]  now current time, ms.
 * @param[out] id  the new policy's id (may be NULL).
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx or pol is NULL, or a malformed selector,
 *         direction, action or request.
 * @retval IPSECIF_ERR_EXIST a policy with the same selector and direction exists.
 * @retval IPSECIF_ERR_BUSY it would clash with a policy an interface owns.
 * @retval IPSECIF_ERR_FULL no free policy slot.
 * @retval IPSECIF_ERR_INTERNAL no free policy id (cannot happen: there are
 *         more ids than slots).
 */
int ipsecif_spd_add(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, uint64_t now,
                    uint32_t *id);

/**
 * @brief Replace the policy with the same selector and direction, or add it.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG as ipsecif_spd_add().
 * @retval IPSECIF_ERR_BUSY the existing policy is owned by an interface.
 * @retval IPSECIF_ERR_FULL, IPSECIF_ERR_INTERNAL as ipsecif_spd_add(), when
 *         there is no policy to replace.
 */
int ipsecif_spd_update(struct ipsecif_ctx *ctx, const struct ipsecif_policy *pol, uint64_t now,
                       uint32_t *id);

/**
 * @brief Delete the policy with this selector and direction.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx or sel is NULL, or a bad selector or direction.
 * @retval IPSECIF_ERR_NOENT none matches.
 * @retval IPSECIF_ERR_BUSY it is owned by an interface.
 */
int ipsecif_spd_delete(struct ipsecif_ctx *ctx, const struct ipsecif_selector *sel, uint8_t dir);

/**
 * @brief Delete a policy by id.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx is NULL.
 * @retval IPSECIF_ERR_NOENT no such id.
 * @retval IPSECIF_ERR_BUSY it is owned by an interface.
 */
int ipsecif_spd_delete_id(struct ipsecif_ctx *ctx, uint32_t id);

/**
 * @brief Report a policy by id.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx or out is NULL.
 * @retval IPSECIF_ERR_NOENT no such id.
 */
int ipsecif_spd_get(struct ipsecif_ctx *ctx, uint32_t id, struct ipsecif_policy *out);

/**
 * @brief Delete every policy not owned by an interface.
 * @return the number deleted (>= 0).
 * @retval IPSECIF_ERR_ARG ctx is NULL.
 */
int ipsecif_spd_flush(struct ipsecif_ctx *ctx);

/** Callback for ipsecif_spd_walk(): 0 to go on, nonzero to stop with that value. */
typedef int (*ipsecif_spd_walk_fn)(void *arg, const struct ipsecif_policy *pol);

/**
 * @brief Visit every policy in lookup order (direction by direction: in, out, fwd).
 * The callback must not add or delete policies.
 * @return 0 when all were visited, or the callback's nonzero value.
 * @retval IPSECIF_ERR_ARG ctx or fn is NULL.
 */
int ipsecif_spd_walk(struct ipsecif_ctx *ctx, ipsecif_spd_walk_fn fn, void *arg);

/** @brief Number of policies installed. */
size_t ipsecif_spd_count(const struct ipsecif_ctx *ctx);

/**
 * @brief Find the policy a packet matches.
 * @param[in]  ctx the context.
 * @param[in]  dir ::IPSECIF_DIR_IN, ::IPSECIF_DIR_OUT or ::IPSECIF_DIR_FWD.
 * @param[in]  pkt the packet's selector: full addresses (prefix lengths are
 *                 ignored), protocol and ports (ICMP type/code).
 * @param[in]  now current time, ms (recorded as last use).
 * @param[out] out the matching policy, with its levels resolved against the
 *                 system defaults (default becomes use or require). When none
 *                 matches, out holds the def_policy action with id 0.
 * @retval IPSECIF_OK a policy matched.
 * @retval IPSECIF_ERR_NOENT none matched; *out holds the default.
 * @retval IPSECIF_ERR_ARG a NULL argument, a bad direction, or the
 *         selector's families are unknown or differ.
 */
int ipsecif_spd_lookup(struct ipsecif_ctx *ctx, uint8_t dir, const struct ipsecif_selector *pkt,
                       uint64_t now, struct ipsecif_policy *out);

/**
 * @brief Set one direction's policy of a socket (per-socket policy).
 *
 * ::IPSECIF_SOCKPOL_ENTRUST removes what was set for that direction (a
 * socket whose two directions entrust is forgotten); BYPASS and IPSEC are
 * recorded, with the socket's binding as given. Per-socket policies are
 * checked before the SPD (ipsecif_spd_sock_lookup()); they never appear in
 * the SPD's walk, count or PF_KEY dumps. Access control is the host's: on
 * Linux and NetBSD only privileged sockets may bypass.
 * @param[in] ctx the context.
 * @param[in] s   the socket (owner nonzero, local family IPv4 or IPv6).
 * @param[in] p   the policy.
 * @retval IPSECIF_OK recorded (or removed, for entrust).
 * @retval IPSECIF_ERR_ARG a NULL argument, owner 0, a bad family, direction
 *         or type, or a bad request list (none, too many, a bad protocol,
 *         mode, level or tunnel endpoints).
 * @retval IPSECIF_ERR_FULL cfg.max_socket_policies sockets have policies.
 */
int ipsecif_spd_sock_set(struct ipsecif_ctx *ctx, const struct ipsecif_sock *s,
                         const struct ipsecif_sockpolicy *p);

/**
 * @brief Tell the library what a socket with policies is bound to now.
 * @retval IPSECIF_OK updated.
 * @retval IPSECIF_ERR_ARG a NULL argument or a bad family.
 * @retval IPSECIF_ERR_NOENT the socket has no policy (nothing to update).
 */
int ipsecif_spd_sock_bind(struct ipsecif_ctx *ctx, const struct ipsecif_sock *s);

/**
 * @brief One direction's policy of a socket.
 * @param[in]  ctx    the context.
 * @param[in]  owner  the socket's owner.
 * @param[in]  handle the owner's handle for it.
 * @param[in]  dir    ::IPSECIF_DIR_IN or ::IPSECIF_DIR_OUT.
 * @param[out] out    the policy; ::IPSECIF_SOCKPOL_ENTRUST if none is set.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG a NULL argument, owner 0 or a bad direction.
 */
int ipsecif_spd_sock_get(const struct ipsecif_ctx *ctx, uint32_t owner, uint32_t handle,
                         uint8_t dir, struct ipsecif_sockpolicy *out);

/**
 * @brief Forget a closed socket's policies.
 * @param[in] ctx    the context.
 * @param[in] owner  the socket's owner.
 * @param[in] handle the socket, or ::IPSECIF_SOCK_ALL for every socket of the owner.
 * @return the number of sockets forgotten.
 */
size_t ipsecif_spd_sock_close(struct ipsecif_ctx *ctx, uint32_t owner, uint32_t handle);

/**
 * @brief The per-socket policy that covers a packet's local end.
 *
 * A socket bound to the packet's local address (or to any address of its
 * family) and port, with the packet's protocol, covers it; an address match
 * wins over a wildcard. Cost is linear in the sockets with policies.
 * @param[in]  ctx    the context.
 * @param[in]  dir    ::IPSECIF_DIR_IN or ::IPSECIF_DIR_OUT.
 * @param[in]  proto  the packet's upper-layer protocol.
 * @param[in]  local  the packet's local address (destination inbound, source outbound).
 * @param[in]  lport  its local port, host order.
 * @param[out] out    the policy (may be NULL).
 * @param[out] sock   the socket that holds it (may be NULL).
 * @retval IPSECIF_OK a socket with a BYPASS or IPSEC policy for dir covers it.
 * @retval IPSECIF_ERR_NOENT none: the SPD decides.
 * @retval IPSECIF_ERR_ARG a NULL argument or a bad direction.
 */
int ipsecif_spd_sock_lookup(const struct ipsecif_ctx *ctx, uint8_t dir, uint8_t proto,
                            const struct ipsecif_addr *local, uint16_t lport,
                            struct ipsecif_sockpolicy *out, struct ipsecif_sock *sock);

/** @brief Callback of ipsecif_spd_sock_walk(): nonzero stops the walk. */
typedef int (*ipsecif_spd_sock_walk_fn)(void *arg, const struct ipsecif_sock *s,
                                        const struct ipsecif_sockpolicy *in,
                                        const struct ipsecif_sockpolicy *out);

/**
 * @brief Visit every socket with a policy (entrust directions come as ENTRUST).
 * @return 0 (also when ctx or fn is NULL), or the nonzero value the callback
 *         stopped with.
 */
int ipsecif_spd_sock_walk(const struct ipsecif_ctx *ctx, ipsecif_spd_sock_walk_fn fn, void *arg);

/** @brief Sockets that have a policy. */
size_t ipsecif_spd_sock_count(const struct ipsecif_ctx *ctx);

/**
 * @brief The level a request has once the system-wide defaults decide
 *        level default: the esp/ah trans/net deflev of its protocol, mode
 *        and family (1 use, 2 require; anything but use requires).
 * @param[in] ctx    the context.
 * @param[in] family the family of the policy's selector.
 * @param[in] req    the request.
 * @return ::IPSECIF_LEVEL_USE, ::IPSECIF_LEVEL_REQUIRE or ::IPSECIF_LEVEL_UNIQUE, never default.
 */
uint8_t ipsecif_spd_level(const struct ipsecif_ctx *ctx, uint8_t family,
                          const struct ipsecif_ipsecreq *req);

/**
 * @brief Read a system-wide default.
 * @param[in] ctx the context.
 * @param[in] key ::ipsecif_sysctl.
 * @retval >=0 the value.
 * @retval IPSECIF_ERR_ARG ctx is NULL or the key unknown.
 */
int ipsecif_sysctl_get(const struct ipsecif_ctx *ctx, int key);

/**
 * @brief Set a system-wide default.
 * @param[in] ctx   the context.
 * @param[in] key   ::ipsecif_sysctl.
 * @param[in] value levels: 1 use or 2 require; def_policy: 0 discard or 1 none;
 *                  enabled: 0, 1 or 2; prefered_oldsa: 0 or 1.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG ctx is NULL or the key unknown.
 * @retval IPSECIF_ERR_RANGE value not allowed for the key.
 * @retval IPSECIF_ERR_BUSY enabled 0 while a policy or per-socket policy exists.
 * @retval IPSECIF_ERR_UNSUPPORTED the key is read only (used).
 */
int ipsecif_sysctl_set(struct ipsecif_ctx *ctx, int key, int value);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_SPD_H */
