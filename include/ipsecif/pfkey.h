/**
 * @file pfkey.h
 * @brief PF_KEY v2 (RFC 2367) with the KAME extensions, sans-I/O.
 */
#ifndef IPSECIF_PFKEY_H
#define IPSECIF_PFKEY_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/spd.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_pfkey PF_KEY
 * @brief PF_KEY v2 endpoints (the library side of PF_KEY sockets).
 *
 * The host opens one endpoint per PF_KEY socket a key-management program
 * (setkey(8), racoon(8), an IKE daemon) opens, hands every message the
 * program writes to ipsecif_pfkey_send(), and writes what the port's
 * `pfkey_deliver` callback gives it back to the right socket. The library
 * reads no socket itself.
 *
 * Wire format: lengths, types and most numbers are in the host's byte
 * order (as a kernel's PF_KEY socket gives them); SPIs and ports are in
 * network byte order (RFC 2367). Two dialects exist and each endpoint speaks
 * one:
 * - ::IPSECIF_PFKEY_DIALECT_KAME, NetBSD/KAME: sockaddrs start with
 *   sa_len and a one-byte family (AF_INET6 is 24); `sadb_x_policy` bytes
 *   12..15 are reserved (policies get ::IPSECIF_PRIORITY_DEFAULT); IPsec
 *   requests are 8 bytes with a 16-bit reqid (larger reqids are sent cut to
 *   their low 16 bits);
 *   the replay window may come in `SADB_X_EXT_SA_REPLAY` (number 26);
 *   promiscuous copies are wrapped in an `SADB_X_PROMISC` header.
 * - ::IPSECIF_PFKEY_DIALECT_LINUX (`linux/pfkeyv2.h`): sockaddrs start with
 *   a two-byte family (AF_INET6 is 10); `sadb_x_policy` bytes 12..15 are the
 *   priority; IPsec requests are 16 bytes with a 32-bit reqid; policies may
 *   have direction fwd; promiscuous copies are plain copies. Policy ids on
 *   the wire are Linux's `(index << 3) | direction` (in 0, out 1, fwd 2),
 *   the index being the library's id: in ACQUIRE, replies and dumps, and
 *   as X_SPDGET / X_SPDDELETE2 take them (an id whose low bits do not match
 *   the policy's direction is ENOENT; 3 and up, Linux's per-socket ids, are
 *   EINVAL). Linux clients skip policies whose id does not follow that rule.
 *   As Linux does, X_SPDDUMP lists per-socket policies after the SPD, with
 *   ids `(slot << 3) | (3 + direction)` and the socket's local end as the
 *   selector; KAME's dump leaves them out.
 *
 * Replies and broadcasts (RFC 2367 section 3.1):
 * - Every request gets exactly one reply on its endpoint. A refused request
 *   gets its own header back with `sadb_msg_errno` set and changes nothing.
 * - DUMP and X_SPDDUMP answer with one message per entry, `sadb_msg_seq`
 *   counting down to 0 on the last; an empty dump is one reply with ENOENT.
 * - Results of ADD, UPDATE, DELETE, FLUSH, X_SPDADD, X_SPDUPDATE,
 *   X_SPDSETIDX, X_SPDDELETE, X_SPDDELETE2, X_SPDFLUSH and X_PROMISC go to
 *   every endpoint; REGISTER replies to the sender and every endpoint
 *   registered for that SA type; GETSPI, GET, DUMP, X_SPDGET and X_SPDDUMP
 *   replies only to the sender.
 * - ACQUIRE (a packet needs an SA that is missing) and EXPIRE (an SA reached
 *   a soft or hard lifetime) go to the endpoints registered for the SA type.
 * - A promiscuous endpoint (X_PROMISC) also gets a copy of every message
 *   sent to the library and of every message delivered to another endpoint.
 *
 * SA types ESP and AH are served (AH SAs take an authentication algorithm,
 * no encryption algorithm and no KEY_ENCRYPT; REGISTER for AH lists the
 * authentication algorithms only). What the SADB cannot hold is refused:
 * IPComp and other SA types, algorithms the library lacks (EINVAL for an
 * unknown algorithm number, EOPNOTSUPP for an SA type). GET and DUMP replies carry the SA's keys
 * (KEY_AUTH, KEY_ENCRYPT; for AES-GCM and AES-GMAC the salt is part of the
 * encryption key) as RFC 2367 says, unless the library is built with
 * ::IPSECIF_SA_KEEP_KEYS 0. ADD and UPDATE results, EXPIRE and ACQUIRE
 * never carry keys (as in KAME). A promiscuous endpoint's copy of a GET or
 * DUMP reply carries them too.
 *
 * Times: LIFETIME_CURRENT add and use times are in seconds of the clock
 * passed as `now`, unless ipsecif_pfkey_set_wallclock() gave its offset to
 * Unix time; then they are Unix seconds, as PF_KEY programs expect.
 *
 * Policies an ipsecif interface owns are listed by X_SPDDUMP like any other
 * (their requests carry the interface's unique ids); X_SPDDELETE and
 * X_SPDDELETE2 refuse them with EBUSY, and X_SPDADD or X_SPDUPDATE of a
 * policy with the same selector and direction gets EBUSY (EEXIST for a
 * clash with a manual policy on X_SPDADD).
 *
 * ICMP selectors: a port value of 0 on the wire means any type or code
 * (::IPSECIF_ICMP_ANY inside the library), as in KAME.
 * @{
 */

/** KAME/NetBSD wire dialect. */
#define IPSECIF_PFKEY_DIALECT_KAME 1
/** Linux (`linux/pfkeyv2.h`) wire dialect. */
#define IPSECIF_PFKEY_DIALECT_LINUX 2

/** PF_KEY protocol version (`sadb_msg_version`). */
#define IPSECIF_PF_KEY_V2 2

/** `sadb_msg_type` values. */
enum ipsecif_pfkey_msg_type {
    IPSECIF_SADB_GETSPI = 1,              /**< Allocate an SPI (larval SA). */
    IPSECIF_SADB_UPDATE = 2,              /**< Complete a larval SA / change lifetimes. */
    IPSECIF_SADB_ADD = 3,                 /**< Add a mature SA. */
    IPSECIF_SADB_DELETE = 4,              /**< Delete an SA. */
    IPSECIF_SADB_GET = 5,                 /**< Report an SA. */
    IPSECIF_SADB_ACQUIRE = 6,             /**< An SA is wanted (kernel to key management). */
    IPSECIF_SADB_REGISTER = 7,            /**< Register for an SA type; lists algorithms. */
    IPSECIF_SADB_EXPIRE = 8,              /**< An SA reached a lifetime (kernel to KM). */
    IPSECIF_SADB_FLUSH = 9,               /**< Delete every SA of a type. */
    IPSECIF_SADB_DUMP = 10,               /**< List SAs. */
    IPSECIF_SADB_X_PROMISC = 11,          /**< Promiscuous mode on or off. */
    IPSECIF_SADB_X_PCHANGE = 12,          /**< Reserved (refused). */
    IPSECIF_SADB_X_SPDUPDATE = 13,        /**< Replace or add a policy. */
    IPSECIF_SADB_X_SPDADD = 14,           /**< Add a policy. */
    IPSECIF_SADB_X_SPDDELETE = 15,        /**< Delete a policy by selector and direction. */
    IPSECIF_SADB_X_SPDGET = 16,           /**< Report a policy by id. */
    IPSECIF_SADB_X_SPDACQUIRE = 17,       /**< Kernel to KM only (refused). */
    IPSECIF_SADB_X_SPDDUMP = 18,          /**< List policies. */
    IPSECIF_SADB_X_SPDFLUSH = 19,         /**< Delete every manual policy. */
    IPSECIF_SADB_X_SPDSETIDX = 20,        /**< Add a policy (KAME: set its index). */
    IPSECIF_SADB_X_SPDEXPIRE = 21,        /**< Kernel to KM only (refused). */
    IPSECIF_SADB_X_SPDDELETE2 = 22,       /**< Delete a policy by id. */
    IPSECIF_SADB_X_NAT_T_NEW_MAPPING = 23 /**< Kernel to KM only (refused). */
};

/** Extension types (`sadb_ext_type`). */
enum ipsecif_pfkey_ext_type {
    IPSECIF_SADB_EXT_SA = 1,                 /**< sadb_sa. */
    IPSECIF_SADB_EXT_LIFETIME_CURRENT = 2,   /**< Current lifetime. */
    IPSECIF_SADB_EXT_LIFETIME_HARD = 3,      /**< Hard limits. */
    IPSECIF_SADB_EXT_LIFETIME_SOFT = 4,      /**< Soft limits. */
    IPSECIF_SADB_EXT_ADDRESS_SRC = 5,        /**< Source address. */
    IPSECIF_SADB_EXT_ADDRESS_DST = 6,        /**< Destination address. */
    IPSECIF_SADB_EXT_ADDRESS_PROXY = 7,      /**< Proxy address. */
    IPSECIF_SADB_EXT_KEY_AUTH = 8,           /**< Authentication key. */
    IPSECIF_SADB_EXT_KEY_ENCRYPT = 9,        /**< Encryption key. */
    IPSECIF_SADB_EXT_IDENTITY_SRC = 10,      /**< Source identity. */
    IPSECIF_SADB_EXT_IDENTITY_DST = 11,      /**< Destination identity. */
    IPSECIF_SADB_EXT_SENSITIVITY = 12,       /**< Sensitivity. */
    IPSECIF_SADB_EXT_PROPOSAL = 13,          /**< Proposal (ACQUIRE). */
    IPSECIF_SADB_EXT_SUPPORTED_AUTH = 14,    /**< Supported authentication algorithms. */
    IPSECIF_SADB_EXT_SUPPORTED_ENCRYPT = 15, /**< Supported encryption algorithms. */
    IPSECIF_SADB_EXT_SPIRANGE = 16,          /**< SPI range (GETSPI). */
    IPSECIF_SADB_X_EXT_KMPRIVATE = 17,       /**< Key-management private data. */
    IPSECIF_SADB_X_EXT_POLICY = 18,          /**< Policy and its IPsec requests. */
    IPSECIF_SADB_X_EXT_SA2 = 19,             /**< Mode and reqid. */
    IPSECIF_SADB_X_EXT_NAT_T_TYPE = 20,      /**< NAT-T encapsulation type. */
    IPSECIF_SADB_X_EXT_NAT_T_SPORT = 21,     /**< NAT-T source port. */
    IPSECIF_SADB_X_EXT_NAT_T_DPORT = 22,     /**< NAT-T destination port. */
    IPSECIF_SADB_X_EXT_NAT_T_OA = 23,        /**< NAT-T original address (KAME: OAI). */
    IPSECIF_SADB_X_EXT_NAT_T_OAR = 24,       /**< KAME only: NAT-T original responder address. */
    IPSECIF_SADB_X_EXT_NAT_T_FRAG = 25,      /**< KAME only: ESP fragment size. */
    IPSECIF_SADB_X_EXT_SA_REPLAY = 26        /**< KAME only: replay window in packets. */
};

/** SA types (`sadb_msg_satype`). */
enum ipsecif_pfkey_satype {
    IPSECIF_SADB_SATYPE_UNSPEC = 0,  /**< Any. */
    IPSECIF_SADB_SATYPE_AH = 2,      /**< AH. */
    IPSECIF_SADB_SATYPE_ESP = 3,     /**< ESP. */
    IPSECIF_SADB_X_SATYPE_IPCOMP = 9 /**< IPComp (not supported by the SADB). */
};

/** Algorithm numbers (equal in both dialects for the algorithms supported). */
enum ipsecif_pfkey_alg {
    IPSECIF_SADB_AALG_NONE = 0,          /**< No authentication. */
    IPSECIF_SADB_AALG_SHA1HMAC = 3,      /**< HMAC-SHA1-96. */
    IPSECIF_SADB_X_AALG_SHA2_256 = 5,    /**< HMAC-SHA2-256-128. */
    IPSECIF_SADB_X_AALG_SHA2_384 = 6,    /**< HMAC-SHA2-384-192. */
    IPSECIF_SADB_X_AALG_SHA2_512 = 7,    /**< HMAC-SHA2-512-256. */
    IPSECIF_SADB_X_AALG_AES128GMAC = 11, /**< KAME only: AH with AES-GMAC, 160-bit key + salt. */
    IPSECIF_SADB_X_AALG_AES192GMAC = 12, /**< KAME only: AH with AES-GMAC, 224 bits. */
    IPSECIF_SADB_X_AALG_AES256GMAC = 13, /**< KAME only: AH with AES-GMAC, 288 bits. */
    IPSECIF_SADB_EALG_NONE = 0,          /**< No encryption. */
    IPSECIF_SADB_EALG_3DESCBC = 3,       /**< 3DES-CBC. */
    IPSECIF_SADB_EALG_NULL = 11,         /**< NULL encryption. */
    IPSECIF_SADB_X_EALG_AESCBC = 12,     /**< AES-CBC (KAME: SADB_X_EALG_AES). */
    IPSECIF_SADB_X_EALG_AESGCM16 = 20,   /**< AES-GCM, 16-byte ICV; key bits include the salt. */
    IPSECIF_SADB_X_EALG_AESGMAC =
        23 /**< AES-GMAC (Linux: NULL_AES_GMAC); key bits include the salt. */
};

/**
 * errno values in `sadb_msg_errno`. The ones equal on Linux and NetBSD have
 * one name; the others one per dialect (ipsecif_pfkey_errno() picks).
 */
enum ipsecif_pfkey_errno_value {
    IPSECIF_PFKEY_EPERM = 1,             /**< Operation not permitted. */
    IPSECIF_PFKEY_ENOENT = 2,            /**< No such entry. */
    IPSECIF_PFKEY_ESRCH = 3,             /**< No such process. */
    IPSECIF_PFKEY_ENOMEM = 12,           /**< Out of memory (port failure). */
    IPSECIF_PFKEY_EBUSY = 16,            /**< Owned by an interface. */
    IPSECIF_PFKEY_EEXIST = 17,           /**< Exists. */
    IPSECIF_PFKEY_EINVAL = 22,           /**< Invalid message. */
    IPSECIF_PFKEY_ENOBUFS_KAME = 55,     /**< NetBSD ENOBUFS: a table is full. */
    IPSECIF_PFKEY_ENOBUFS_LINUX = 105,   /**< Linux ENOBUFS. */
    IPSECIF_PFKEY_EOPNOTSUPP_KAME = 45,  /**< NetBSD EOPNOTSUPP: SA type not supported. */
    IPSECIF_PFKEY_EOPNOTSUPP_LINUX = 95, /**< Linux EOPNOTSUPP. */
    IPSECIF_PFKEY_EMSGSIZE_KAME = 40,    /**< NetBSD EMSGSIZE: not a whole message. */
    IPSECIF_PFKEY_EMSGSIZE_LINUX = 90    /**< Linux EMSGSIZE. */
};

/**
 * @brief `sadb_msg_type` of libipsecif's per-socket policy message.
 *
 * Not RFC 2367: kernels take per-socket policies through
 * setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY), whose argument is one
 * `sadb_x_policy` with its requests. A host that runs key-management
 * programs over its own PF_KEY transport (the example router's preload
 * library) passes those calls on as this message, on an endpoint of the
 * program's process; the sockets it names are the endpoint's, and they are
 * forgotten when it closes. Layout, all multiples of 8 bytes:
 * - a `sadb_msg` header: version 2, this type, `sadb_msg_satype` one of
 *   ::ipsecif_sockpol_op, `sadb_msg_len`, seq and pid as usual;
 * - a socket block of ::IPSECIF_SOCKPOL_SOCK_LEN bytes: the handle (32
 *   bits, host order), the protocol (1 byte), the family (1 byte,
 *   ::IPSECIF_AF_INET or ::IPSECIF_AF_INET6), the bound port (2 bytes,
 *   network order), the bound address (16 bytes, IPv4 in the first 4), 8
 *   bytes of zero;
 * - for SET, the setsockopt bytes; for GET, a `sadb_x_policy` header whose
 *   direction is the one asked for.
 *
 * The reply goes to the sender only: the header with `sadb_msg_errno` 0 or
 * EINVAL (malformed, a bad direction, type or request list: what
 * setsockopt answers), ENOBUFS (no free socket slot); a GET reply carries
 * the socket block and the policy (entrust when none is set).
 */
#define IPSECIF_SADB_X_SOCKPOLICY 0xf0u

/** Bytes of the socket block of an ::IPSECIF_SADB_X_SOCKPOLICY message. */
#define IPSECIF_SOCKPOL_SOCK_LEN 32u

/** Operations of ::IPSECIF_SADB_X_SOCKPOLICY (in `sadb_msg_satype`). */
enum ipsecif_sockpol_op {
    IPSECIF_SOCKPOL_OP_SET = 1,  /**< setsockopt: record (or, entrust, clear) a direction. */
    IPSECIF_SOCKPOL_OP_GET = 2,  /**< getsockopt: the policy of a direction. */
    IPSECIF_SOCKPOL_OP_BIND = 3, /**< The socket was bound: update its address and port. */
    IPSECIF_SOCKPOL_OP_CLOSE = 4 /**< The socket was closed: forget it. */
};

/** PF_KEY counters of a context. */
struct ipsecif_pfkey_stats {
    uint64_t in_msgs;     /**< Messages of a whole header or more taken from endpoints. */
    uint64_t in_short;    /**< Datagrams shorter than a header, answered EMSGSIZE. */
    uint64_t in_long;     /**< Datagrams longer than the host takes, answered EMSGSIZE. */
    uint64_t in_errors;   /**< Requests answered with an errno. */
    uint64_t sockpol_set; /**< Per-socket policies set through ::IPSECIF_SADB_X_SOCKPOLICY. */
};

struct ipsecif_ctx;

/**
 * @brief Open a PF_KEY endpoint.
 * @param[in]  ctx     the context.
 * @param[in]  dialect ::IPSECIF_PFKEY_DIALECT_KAME or ::IPSECIF_PFKEY_DIALECT_LINUX.
 * @param[out] ep_id   the endpoint's id (nonzero), passed to the port's
 *                     `pfkey_deliver` with every message for it.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG a NULL argument or an unknown dialect.
 * @retval IPSECIF_ERR_FULL all `max_pfkey_endpoints` endpoints are open.
 */
int ipsecif_pfkey_open(struct ipsecif_ctx *ctx, uint8_t dialect, uint32_t *ep_id);

/**
 * @brief Close an endpoint: its registrations and promiscuous mode end.
 * @param[in] ctx   the context.
 * @param[in] ep_id an id from ipsecif_pfkey_open().
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG NULL context.
 * @retval IPSECIF_ERR_NOENT no open endpoint has this id.
 */
int ipsecif_pfkey_close(struct ipsecif_ctx *ctx, uint32_t ep_id);

/**
 * @brief Process one PF_KEY message written by the program on an endpoint.
 *
 * The message is read only during the call (any alignment). Replies and
 * broadcasts are built in the context and handed to the port's
 * `pfkey_deliver` before this returns; a refused message gets a reply with
 * `sadb_msg_errno` set, so its return value is still IPSECIF_OK.
 * @param[in] ctx   the context.
 * @param[in] ep_id the sending endpoint.
 * @param[in] msg   the message.
 * @param[in] len   its length in bytes (the datagram length).
 * @param[in] now   current time, ms.
 * @retval IPSECIF_OK the message was answered (possibly with an errno).
 * @retval IPSECIF_ERR_ARG NULL context, or msg NULL with len nonzero.
 * @retval IPSECIF_ERR_NOENT no open endpoint has this id.
 * @retval IPSECIF_ERR_MALFORMED shorter than a `sadb_msg` header (0 bytes
 *         included): answered with a bare header with EMSGSIZE, carrying
 *         what bytes of a header there were, as a datagram transport must
 *         (a kernel fails such a send instead).
 */
int ipsecif_pfkey_send(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *msg, size_t len,
                       uint64_t now);

/**
 * @brief Answer a datagram longer than the host takes (a kernel fails such
 *        a send with EMSGSIZE): a bare header with EMSGSIZE, to the sender.
 * @param[in] ctx      the context.
 * @param[in] ep_id    the sending endpoint.
 * @param[in] head     the datagram's first bytes (its header, if it has one).
 * @param[in] head_len how many of them there are (16 are used at most).
 * @retval IPSECIF_OK answered.
 * @retval IPSECIF_ERR_ARG NULL context, or head NULL with head_len nonzero.
 * @retval IPSECIF_ERR_NOENT no open endpoint has this id.
 */
int ipsecif_pfkey_oversize(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *head,
                           size_t head_len);

/**
 * @brief Parse the argument of setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY).
 *
 * Exactly one `sadb_x_policy` (its length field equal to len) of type
 * entrust, bypass or ipsec with direction in or out; ipsec carries one or
 * more requests, the others none. The request values are checked by
 * ipsecif_spd_sock_set().
 * @param[in]  dialect ::IPSECIF_PFKEY_DIALECT_KAME or ::IPSECIF_PFKEY_DIALECT_LINUX.
 * @param[in]  buf     the option bytes (any alignment).
 * @param[in]  len     their length.
 * @param[out] out     the policy.
 * @retval IPSECIF_OK success.
 * @retval IPSECIF_ERR_ARG a NULL argument, an unknown dialect, a type
 *         other than entrust, bypass or ipsec (discard and none are SPD
 *         actions, not socket policies), a bad direction, or requests that
 *         do not fit the type.
 * @retval IPSECIF_ERR_MALFORMED a length that does not match, or a
 *         malformed request.
 */
int ipsecif_pfkey_sockpolicy_parse(uint8_t dialect, const uint8_t *buf, size_t len,
                                   struct ipsecif_sockpolicy *out);

/**
 * @brief Write a per-socket policy as a `sadb_x_policy` (what getsockopt returns).
 * @return its length, or 0 if it does not fit in cap or the arguments are bad.
 */
size_t ipsecif_pfkey_sockpolicy_build(uint8_t dialect, const struct ipsecif_sockpolicy *sp,
                                      uint8_t *buf, size_t cap);

/** @brief The context's PF_KEY counters (NULL for a NULL context). */
const struct ipsecif_pfkey_stats *ipsecif_pfkey_stats_get(const struct ipsecif_ctx *ctx);

/**
 * @brief Tell the library how its clock relates to Unix time, so that
 *        LIFETIME_CURRENT add and use times (SAs and policies) go out as
 *        Unix seconds, as PF_KEY programs expect.
 *
 * Call it once after ipsecif_init(), and again if the wall clock is
 * stepped. A use time of 0 (never used) stays 0.
 * @param[in] ctx          the context (NULL: nothing happens).
 * @param[in] now_ms       the library's clock (as passed as `now`), ms.
 * @param[in] unix_seconds Unix time at the same instant, seconds.
 */
void ipsecif_pfkey_set_wallclock(struct ipsecif_ctx *ctx, uint64_t now_ms, uint64_t unix_seconds);

/**
 * @brief The `sadb_msg_errno` value the library puts in a reply for one of
 *        its error codes.
 * @param[in] dialect ::IPSECIF_PFKEY_DIALECT_KAME or ::IPSECIF_PFKEY_DIALECT_LINUX.
 * @param[in] err     an ::ipsecif_err value (IPSECIF_OK gives 0).
 * @return the errno value (EINVAL for codes without a closer match).
 */
uint8_t ipsecif_pfkey_errno(uint8_t dialect, int err);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_PFKEY_H */
