/*
 * Private definitions shared by the parts of lib/pfkey: wire constants and
 * access, the dialect descriptor, the parsed message, the output
 * description and the handlers. Not installed.
 *
 * Wire access: lengths, types and counters are in host byte order (h16/h32/
 * h64 go through memcpy, so any alignment is fine); SPIs and ports are in
 * network byte order (ipsecif_load16/32). Every read is bounded by a length
 * checked beforehand.
 */
#ifndef IPSECIF_PFKEY_PRIV_H
#define IPSECIF_PFKEY_PRIV_H

#include "core/ctx.h"

#define HDR_LEN 16u
#define EXT_MAX 26u /* highest extension number either dialect knows */

#define AF_INET_WIRE 2u
#define SIN_LEN 16u
#define SIN6_LEN 28u

#define POLICY_HDR 16u
#define COMB_LEN 72u

#define IPSEC_POLICY_DISCARD 0u
#define IPSEC_POLICY_NONE 1u
#define IPSEC_POLICY_IPSEC 2u
#define IPSEC_POLICY_ENTRUST 3u
#define IPSEC_POLICY_BYPASS 4u
#define UDP_ENCAP_ESPINUDP 2u

/* ---- Host-order wire access ---- */

static inline uint16_t h16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint32_t h32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t h64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void s16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline void s32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline void s64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static inline size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* Selector ports hold an ICMP type or code for ICMP. */
static inline bool is_icmp(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ICMP || proto == IPSECIF_IPPROTO_ICMPV6;
}

/* ---- Dialects (pfkey_dialect.c) ---- */

/* An algorithm: wire number <-> library id, with key sizes in bits. */
struct walg {
    uint8_t wire;
    uint8_t lib;
    uint8_t ivlen;
    uint16_t minbits;
    uint16_t maxbits;
};

/* Everything in which KAME/NetBSD and Linux (linux/pfkeyv2.h) differ on the
 * wire, so the code asks the descriptor instead of naming a dialect. */
struct pfkey_dialect {
    const struct walg *ealg; /* encryption algorithms offered and taken */
    size_t nealg;
    const struct walg *aalg;
    size_t naalg;
    /* AH's AES-GMAC as authentication algorithms, one number per key size
     * (the key includes the salt); none in the Linux dialect. */
    const struct walg *ah_gmac;
    size_t nah_gmac;
    size_t req_hdr;      /* sadb_x_ipsecrequest header before the endpoints */
    uint8_t id;          /* IPSECIF_PFKEY_DIALECT_* */
    uint8_t af_inet6;    /* AF_INET6 on the wire (AF_INET is 2 in both) */
    uint8_t ext_max;     /* highest extension number known */
    uint8_t replay_unit; /* packets per unit of sadb_sa_replay */
    uint8_t replay_ext;  /* extension with the window in packets, 0 = none */
    bool sa_len;         /* sockaddr: sa_len + 1-byte family, else 2-byte family */
    bool reqid32;        /* reqids 32 bits wide, else 16 */
    bool has_priority;   /* sadb_x_policy bytes 12..15 are a priority */
    bool has_fwd;        /* fwd policies exist */
    bool dir_in_id;      /* policy ids are (index << 3) | direction */
    bool dump_socks;     /* X_SPDDUMP lists per-socket policies too */
    bool promisc_wrap;   /* promiscuous copies go behind an X_PROMISC header */
    uint8_t enobufs;     /* errno values of the platform */
    uint8_t eopnotsupp;
    uint8_t emsgsize;
    uint8_t enosa; /* GET of a missing SA */
};

#define PFKEY_NDIALECTS 2u
extern const struct pfkey_dialect ipsecif_pfkey_dialects[PFKEY_NDIALECTS];

/* The descriptor of a dialect number, NULL if there is none. */
const struct pfkey_dialect *ipsecif_pfkey_dialect(uint8_t id);
const struct walg *ipsecif_pfkey_alg_by_wire(const struct walg *t, size_t n, uint8_t wire);
uint8_t ipsecif_pfkey_alg_to_wire(const struct walg *t, size_t n, uint8_t lib);
/* The AH AES-GMAC entry for a key of key_len bytes, NULL if none. */
const struct walg *ipsecif_pfkey_ah_gmac_by_key(const struct pfkey_dialect *dl, size_t key_len);
uint32_t ipsecif_pfkey_policy_id_to_wire(const struct pfkey_dialect *dl, uint32_t id, uint8_t dir);
uint32_t ipsecif_pfkey_policy_id_from_wire(const struct pfkey_dialect *dl, uint32_t wire,
                                           uint8_t *dir);
uint32_t ipsecif_pfkey_sock_policy_id(uint32_t slot, uint8_t dir);

/* ---- Parsed messages (pfkey_parse.c) ---- */

struct pfkey_msg {
    const uint8_t *p;
    size_t len;
    uint8_t type;
    uint8_t err;
    uint8_t satype;
    uint32_t seq;
    uint32_t pid;
    uint32_t off[EXT_MAX + 1]; /* offset of each extension, 0 = absent */
    uint32_t elen[EXT_MAX + 1];
};

struct pfkey_addr {
    struct ipsecif_addr a;
    uint16_t port; /* host order */
    uint8_t plen;
    uint8_t proto;
};

/* Slot 0 is never set, so ext(m, 0) is NULL. */
static inline const uint8_t *ext(const struct pfkey_msg *m, unsigned type)
{
    return m->off[type] != 0 ? m->p + m->off[type] : NULL;
}

static inline bool has(const struct pfkey_msg *m, unsigned type)
{
    return m->off[type] != 0;
}

uint8_t ipsecif_pfkey_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t len,
                            struct pfkey_msg *m);
uint8_t ipsecif_pfkey_src_dst(const struct pfkey_dialect *dl, const struct pfkey_msg *m,
                              struct pfkey_addr *src, struct pfkey_addr *dst);
uint8_t ipsecif_pfkey_requests_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t len,
                                     struct ipsecif_policy *pol);

/* A message from endpoint index sender, parsed in its dialect. */
struct pfkey_req {
    struct ipsecif_ctx *ctx;
    uint32_t sender; /* endpoint index */
    const struct pfkey_dialect *dl;
    const struct pfkey_msg *m;
    uint64_t now;
};

/* ---- Output: what to build, for whom (pfkey_build.c) ---- */

enum pfkey_body {
    B_HDR,      /* header only */
    B_SA,       /* SA, lifetimes, addresses, SA2, NAT-T */
    B_DELETE,   /* optional SA (spi), the request's addresses */
    B_POLICY,   /* X_POLICY, addresses, current lifetime */
    B_REGISTER, /* supported algorithms */
    B_ACQUIRE,  /* addresses, X_POLICY, proposal */
    B_EXPIRE    /* SA exts, hard or soft limit */
};

enum pfkey_dest {
    TO_ONE,       /* the sender */
    TO_ALL,       /* every endpoint */
    TO_REGISTERED /* the sender and endpoints registered for satype */
};

struct pfkey_out {
    uint8_t type;
    uint8_t err;
    uint8_t satype;
    uint32_t seq;
    uint32_t pid;
    enum pfkey_body body;
    const struct ipsecif_sa_info *sa;
    const struct ipsecif_policy *pol;
    const struct ipsecif_km_event *ev;
    /* B_SA of GET and DUMP: the SA's keys (NULL: none go out). */
    const struct ipsecif_sa *keys;
    const struct pfkey_addr *src; /* B_DELETE */
    const struct pfkey_addr *dst;
    bool has_spi;
    uint32_t spi;
    /* B_POLICY of a Linux X_SPDDUMP: a per-socket policy instead of pol. */
    const struct ipsecif_sockpol *sock;
    uint8_t sock_dir_index;
    uint32_t sock_slot;
};

void ipsecif_pfkey_out_init(struct pfkey_out *o, const struct pfkey_msg *m, enum pfkey_body body);
/* sender is an endpoint index, or UINT32_MAX for library-originated messages. */
void ipsecif_pfkey_emit(struct ipsecif_ctx *ctx, uint32_t sender, enum pfkey_dest how,
                        const struct pfkey_out *o);
void ipsecif_pfkey_copy_request(struct ipsecif_ctx *ctx, uint32_t sender,
                                const struct pfkey_dialect *dl, const uint8_t *msg, size_t len);

/* A dump in answer to r: the entries count down, the last goes with seq 0. */
struct pfkey_dump {
    const struct pfkey_req *r;
    uint32_t left; /* entries still to send */
};

/* The next entry of dp as o, body to be filled in; false once all went. */
bool ipsecif_pfkey_dump_entry(struct pfkey_dump *dp, struct pfkey_out *o, enum pfkey_body body);
/* The header of r's message with errno err, nothing after it. */
void ipsecif_pfkey_reply_hdr(const struct pfkey_req *r, uint8_t err, enum pfkey_dest how);
/* A socket policy as one sadb_x_policy at buf; its length, 0 if over cap. */
size_t ipsecif_pfkey_sockpol_put(const struct pfkey_dialect *dl,
                                 const struct ipsecif_sockpolicy *sp, uint8_t *buf, size_t cap);

/* ---- Handlers: each returns 0 (it answered) or an errno to answer with ---- */

/* SA messages (pfkey_sa.c) */
uint8_t ipsecif_pfkey_do_getspi(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_add_update(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_delete(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_get(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_acquire(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_register(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_flush(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_dump(const struct pfkey_req *r);

/* SPD messages (pfkey_spd.c) */
uint8_t ipsecif_pfkey_do_spdadd(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_spddelete(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_spd_byid(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_spddump(const struct pfkey_req *r);
uint8_t ipsecif_pfkey_do_spdflush(const struct pfkey_req *r);
/* X_SOCKPOLICY: its own layout, answered to the sender alone. */
void ipsecif_pfkey_sockpol_msg(struct ipsecif_ctx *ctx, uint32_t ep_id,
                               const struct pfkey_dialect *dl, const uint8_t *msg, size_t len);

#endif /* IPSECIF_PFKEY_PRIV_H */
