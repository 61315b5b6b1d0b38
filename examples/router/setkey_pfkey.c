/*
 * ipsecifctl's setkey over PF_KEY v2 (Linux dialect): the PF_KEY backend
 * of the setkey executor (setkey_exec.h). Statements become the messages
 * setkey(8) sends, the replies are turned back into the library's SA and
 * policy records, which the executor prints with router_cmd's setkey -D /
 * -DP formats.
 *
 * Times: the daemon reports lifetimes on the library's monotonic clock
 * (seconds), the same system-wide clock ipsecif_posix_now_ms() reads here.
 */
#define _GNU_SOURCE

#include "setkey_pfkey.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipsecif_posix.h"
#include "setkey_exec.h"
#include "setkey_parse.h"

#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif

/* How long a reply may take (setkey waits 1 s; the daemon answers at once). */
#define REPLY_MS 2000

struct spk {
    int fd;
    struct rtr_env env;
    uint32_t seq;
    uint64_t msg[8192]; /* request under construction */
    uint64_t rep[8192]; /* reply */
    char err[SKX_WHY];  /* why an exchange failed */
};

/* ---- Algorithms (Linux wire numbers) ---- */

static const struct {
    uint8_t lib;
    uint8_t wire;
} ealgs[] = {{IPSECIF_EALG_NULL, SADB_EALG_NULL},
             {IPSECIF_EALG_3DES_CBC, SADB_EALG_3DESCBC},
             {IPSECIF_EALG_AES_CBC, SADB_X_EALG_AESCBC},
             {IPSECIF_EALG_AES_GCM16, SADB_X_EALG_AES_GCM_ICV16},
             {IPSECIF_EALG_AES_GMAC, SADB_X_EALG_NULL_AES_GMAC}},
  aalgs[] = {{IPSECIF_AALG_HMAC_SHA1_96, SADB_AALG_SHA1HMAC},
             {IPSECIF_AALG_HMAC_SHA2_256_128, SADB_X_AALG_SHA2_256HMAC},
             {IPSECIF_AALG_HMAC_SHA2_384_192, SADB_X_AALG_SHA2_384HMAC},
             {IPSECIF_AALG_HMAC_SHA2_512_256, SADB_X_AALG_SHA2_512HMAC}};

static int alg_wire(bool enc, uint8_t lib, uint8_t *wire)
{
    size_t i;
    size_t n = enc ? sizeof(ealgs) / sizeof(ealgs[0]) : sizeof(aalgs) / sizeof(aalgs[0]);

    if (lib == 0) {
        *wire = 0;
        return 0;
    }
    for (i = 0; i < n; i++) {
        if ((enc ? ealgs[i].lib : aalgs[i].lib) == lib) {
            *wire = enc ? ealgs[i].wire : aalgs[i].wire;
            return 0;
        }
    }
    return -1;
}

static uint8_t alg_lib(bool enc, uint8_t wire)
{
    size_t i;
    size_t n = enc ? sizeof(ealgs) / sizeof(ealgs[0]) : sizeof(aalgs) / sizeof(aalgs[0]);

    for (i = 0; wire != 0 && i < n; i++) {
        if ((enc ? ealgs[i].wire : aalgs[i].wire) == wire) {
            return enc ? ealgs[i].lib : aalgs[i].lib;
        }
    }
    return 0;
}

/* AH with AES-GMAC: NetBSD's SADB_X_AALG_AES{128,192,256}GMAC (11..13),
 * which the library's Linux dialect takes too, by key length with salt. */
static const struct {
    uint8_t wire;
    size_t key_len;
} ah_gmacs[] = {{11, 20}, {12, 28}, {13, 36}};

static int ah_gmac_wire(size_t key_len, uint8_t *wire)
{
    size_t i;

    for (i = 0; i < sizeof(ah_gmacs) / sizeof(ah_gmacs[0]); i++) {
        if (ah_gmacs[i].key_len == key_len) {
            *wire = ah_gmacs[i].wire;
            return 0;
        }
    }
    return -1;
}

static bool ah_gmac_of(uint8_t wire)
{
    return wire >= 11 && wire <= 13;
}

static uint8_t satype_of(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ESP  ? SADB_SATYPE_ESP
           : proto == IPSECIF_IPPROTO_AH ? SADB_SATYPE_AH
                                         : SADB_SATYPE_UNSPEC;
}

/* ---- Building ---- */

static struct sadb_msg *start(struct spk *k, uint8_t type, uint8_t satype)
{
    struct sadb_msg *m = (struct sadb_msg *)k->msg;

    memset(k->msg, 0, sizeof(k->msg));
    m->sadb_msg_version = PF_KEY_V2;
    m->sadb_msg_type = type;
    m->sadb_msg_satype = satype;
    m->sadb_msg_len = sizeof(*m) / 8;
    m->sadb_msg_seq = ++k->seq;
    m->sadb_msg_pid = (uint32_t)getpid();
    return m;
}

static void *ext(struct spk *k, uint16_t type, size_t len)
{
    struct sadb_msg *m = (struct sadb_msg *)k->msg;
    struct sadb_ext *e = (struct sadb_ext *)(k->msg + m->sadb_msg_len);

    len = (len + 7) & ~(size_t)7;
    e->sadb_ext_len = (uint16_t)(len / 8);
    e->sadb_ext_type = type;
    m->sadb_msg_len = (uint16_t)(m->sadb_msg_len + len / 8);
    return e;
}

static size_t sockaddr_put(void *p, const struct ipsecif_addr *a, uint16_t port)
{
    if (a->family == IPSECIF_AF_INET6) {
        struct sockaddr_in6 s6;

        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        s6.sin6_port = htons(port);
        memcpy(&s6.sin6_addr, a->bytes, 16);
        memcpy(p, &s6, sizeof(s6));
        return sizeof(s6);
    }
    struct sockaddr_in s4;

    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    s4.sin_port = htons(port);
    memcpy(&s4.sin_addr, a->bytes, 4);
    memcpy(p, &s4, sizeof(s4));
    return sizeof(s4);
}

static size_t sockaddr_size(const struct ipsecif_addr *a)
{
    return a->family == IPSECIF_AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void addr(struct spk *k, uint16_t type, const struct ipsecif_addr *a, uint16_t port,
                 uint8_t plen, uint8_t proto)
{
    struct sadb_address *e = ext(k, type, sizeof(*e) + sockaddr_size(a));

    e->sadb_address_proto = proto;
    e->sadb_address_prefixlen = plen;
    sockaddr_put(e + 1, a, port);
}

static uint8_t full(const struct ipsecif_addr *a)
{
    return a->family == IPSECIF_AF_INET6 ? 128 : 32;
}

static void sa_addrs(struct spk *k, const struct ipsecif_sa_params *p)
{
    addr(k, SADB_EXT_ADDRESS_SRC, &p->src, 0, full(&p->src), IPSEC_PROTO_ANY);
    addr(k, SADB_EXT_ADDRESS_DST, &p->dst, 0, full(&p->dst), IPSEC_PROTO_ANY);
}

static int sa_ext(struct spk *k, const struct ipsecif_sa_params *p)
{
    struct sadb_sa *sa = ext(k, SADB_EXT_SA, sizeof(*sa));

    sa->sadb_sa_spi = htonl(p->spi);
    /*
     * The Linux dialect counts the window in packets, in one byte; the
     * parser already turned setkey's -r (bytes of bitmap) into packets.
     */
    sa->sadb_sa_replay = (uint8_t)(p->replay_window > 255 ? 255 : p->replay_window);
    sa->sadb_sa_state = SADB_SASTATE_MATURE;
    if (p->proto == IPSECIF_IPPROTO_AH && p->ealg == IPSECIF_EALG_AES_GMAC) {
        sa->sadb_sa_encrypt = SADB_EALG_NONE;
        return ah_gmac_wire(p->ekey_len, &sa->sadb_sa_auth);
    }
    if (alg_wire(true, p->ealg, &sa->sadb_sa_encrypt) < 0 ||
        alg_wire(false, p->aalg, &sa->sadb_sa_auth) < 0) {
        return -1;
    }
    return 0;
}

static void sa2(struct spk *k, uint8_t mode, uint32_t reqid)
{
    struct sadb_x_sa2 *e = ext(k, SADB_X_EXT_SA2, sizeof(*e));

    e->sadb_x_sa2_mode = mode;
    e->sadb_x_sa2_reqid = reqid;
}

static void key_ext(struct spk *k, uint16_t type, const uint8_t *bytes, size_t len)
{
    struct sadb_key *e = ext(k, type, sizeof(*e) + len);

    e->sadb_key_bits = (uint16_t)(len * 8);
    if (len > 0) {
        memcpy(e + 1, bytes, len);
    }
}

static void lifetime(struct spk *k, uint16_t type, const struct ipsecif_lifetime *lt)
{
    struct sadb_lifetime *e;

    if (lt->allocations == 0 && lt->bytes == 0 && lt->addtime == 0 && lt->usetime == 0) {
        return;
    }
    e = ext(k, type, sizeof(*e));
    e->sadb_lifetime_allocations = lt->allocations;
    e->sadb_lifetime_bytes = lt->bytes;
    e->sadb_lifetime_addtime = lt->addtime;
    e->sadb_lifetime_usetime = lt->usetime;
}

static void natt(struct spk *k, const struct ipsecif_sa_params *p)
{
    struct sadb_x_nat_t_type *t;
    struct sadb_x_nat_t_port *port;

    if (p->natt_sport == 0 && p->natt_dport == 0) {
        return;
    }
    t = ext(k, SADB_X_EXT_NAT_T_TYPE, sizeof(*t));
    t->sadb_x_nat_t_type_type = UDP_ENCAP_ESPINUDP;
    port = ext(k, SADB_X_EXT_NAT_T_SPORT, sizeof(*port));
    port->sadb_x_nat_t_port_port = htons(p->natt_sport);
    port = ext(k, SADB_X_EXT_NAT_T_DPORT, sizeof(*port));
    port->sadb_x_nat_t_port_port = htons(p->natt_dport);
}

static void policy_ext(struct spk *k, const struct ipsecif_policy *p, uint8_t dir)
{
    const struct ipsecif_selector *s = &p->sel;
    bool icmp = s->ulproto == IPSECIF_IPPROTO_ICMP || s->ulproto == IPSECIF_IPPROTO_ICMPV6;
    size_t n = sizeof(struct sadb_x_policy);
    struct sadb_x_policy *x;
    uint8_t *q;
    uint8_t i;

    addr(k, SADB_EXT_ADDRESS_SRC, &s->src, icmp && s->sport == IPSECIF_ICMP_ANY ? 0 : s->sport,
         s->src_plen, s->ulproto);
    addr(k, SADB_EXT_ADDRESS_DST, &s->dst, icmp && s->dport == IPSECIF_ICMP_ANY ? 0 : s->dport,
         s->dst_plen, s->ulproto);
    for (i = 0; p->action == IPSECIF_ACTION_IPSEC && i < p->nreq; i++) {
        n += sizeof(struct sadb_x_ipsecrequest);
        if (p->req[i].mode == IPSECIF_MODE_TUNNEL) {
            n += 2 * sockaddr_size(&p->req[i].tun_src);
        }
        n = (n + 7) & ~(size_t)7;
    }
    x = ext(k, SADB_X_EXT_POLICY, n);
    x->sadb_x_policy_type = p->action == IPSECIF_ACTION_IPSEC  ? IPSEC_POLICY_IPSEC
                            : p->action == IPSECIF_ACTION_NONE ? IPSEC_POLICY_NONE
                                                               : IPSEC_POLICY_DISCARD;
    x->sadb_x_policy_dir = dir;
    x->sadb_x_policy_priority = p->priority;
    q = (uint8_t *)(x + 1);
    for (i = 0; p->action == IPSECIF_ACTION_IPSEC && i < p->nreq; i++) {
        const struct ipsecif_ipsecreq *r = &p->req[i];
        struct sadb_x_ipsecrequest rq;
        size_t len = sizeof(rq);

        memset(&rq, 0, sizeof(rq));
        if (r->mode == IPSECIF_MODE_TUNNEL) {
            len += sockaddr_put(q + len, &r->tun_src, 0);
            len += sockaddr_put(q + len, &r->tun_dst, 0);
        }
        len = (len + 7) & ~(size_t)7;
        rq.sadb_x_ipsecrequest_len = (uint16_t)len;
        rq.sadb_x_ipsecrequest_proto = r->proto;
        rq.sadb_x_ipsecrequest_mode = r->mode;
        rq.sadb_x_ipsecrequest_level = r->level;
        rq.sadb_x_ipsecrequest_reqid = r->reqid;
        memcpy(q, &rq, sizeof(rq));
        q += len;
    }
}

/* ---- Replies ---- */

static const uint8_t *find(const struct sadb_msg *m, uint16_t type)
{
    const uint8_t *b = (const uint8_t *)m;
    size_t off = sizeof(*m);
    size_t end = (size_t)m->sadb_msg_len * 8;

    while (off + sizeof(struct sadb_ext) <= end) {
        struct sadb_ext e;

        memcpy(&e, b + off, sizeof(e));
        if (e.sadb_ext_len == 0 || off + (size_t)e.sadb_ext_len * 8 > end) {
            break;
        }
        if (e.sadb_ext_type == type) {
            return b + off;
        }
        off += (size_t)e.sadb_ext_len * 8;
    }
    return NULL;
}

/* A sockaddr into an address; returns the port. */
static uint16_t sockaddr_get(const uint8_t *p, struct ipsecif_addr *a)
{
    sa_family_t fam;

    memcpy(&fam, p, sizeof(fam));
    memset(a, 0, sizeof(*a));
    if (fam == AF_INET6) {
        struct sockaddr_in6 s6;

        memcpy(&s6, p, sizeof(s6));
        a->family = IPSECIF_AF_INET6;
        memcpy(a->bytes, &s6.sin6_addr, 16);
        return ntohs(s6.sin6_port);
    }
    if (fam == AF_INET) {
        struct sockaddr_in s4;

        memcpy(&s4, p, sizeof(s4));
        a->family = IPSECIF_AF_INET;
        memcpy(a->bytes, &s4.sin_addr, 4);
        return ntohs(s4.sin_port);
    }
    return 0;
}

/* Unix times below this (2001) are taken for seconds of the library's
 * monotonic clock: what an endpoint sends before ipsecif_pfkey_set_wallclock(). */
#define WALL_MIN 1000000000u

/* A LIFETIME_CURRENT time (seconds) as the library's ms, which rtr_print_sa()
 * and rtr_print_policy() turn into dates; 0 (never) stays 0. ipsecifd and the
 * kernel send Unix seconds. */
static uint64_t lib_ms(const struct spk *k, uint64_t secs)
{
    uint64_t ago_ms;

    if (secs < WALL_MIN) {
        return secs * 1000u;
    }
    if (k->env.wall < 0 || secs >= (uint64_t)k->env.wall) {
        return k->env.now;
    }
    ago_ms = ((uint64_t)k->env.wall - secs) * 1000u;
    return ago_ms < k->env.now ? k->env.now - ago_ms : 0;
}

static void lifetime_get(const struct sadb_msg *m, uint16_t type, struct ipsecif_lifetime *lt)
{
    const uint8_t *e = find(m, type);
    struct sadb_lifetime l;

    if (e == NULL) {
        return;
    }
    memcpy(&l, e, sizeof(l));
    lt->allocations = l.sadb_lifetime_allocations;
    lt->bytes = l.sadb_lifetime_bytes;
    lt->addtime = l.sadb_lifetime_addtime;
    lt->usetime = l.sadb_lifetime_usetime;
}

static void sa_from_msg(const struct spk *k, const struct sadb_msg *m, struct ipsecif_sa_info *out)
{
    struct ipsecif_sa_info si;
    struct ipsecif_sa_params *p = &si.params;
    const uint8_t *e;

    memset(&si, 0, sizeof(si));
    p->proto = m->sadb_msg_satype == SADB_SATYPE_AH ? IPSECIF_IPPROTO_AH : IPSECIF_IPPROTO_ESP;
    si.pid = m->sadb_msg_pid;
    if ((e = find(m, SADB_EXT_SA)) != NULL) {
        struct sadb_sa sa;

        memcpy(&sa, e, sizeof(sa));
        p->spi = ntohl(sa.sadb_sa_spi);
        p->replay_window = sa.sadb_sa_replay;
        si.state = sa.sadb_sa_state;
        p->ealg = alg_lib(true, sa.sadb_sa_encrypt);
        p->aalg = alg_lib(false, sa.sadb_sa_auth);
        if (p->proto == IPSECIF_IPPROTO_AH && ah_gmac_of(sa.sadb_sa_auth)) {
            p->ealg = IPSECIF_EALG_AES_GMAC;
        }
        p->flags = sa.sadb_sa_flags;
    }
    if ((e = find(m, SADB_X_EXT_SA2)) != NULL) {
        struct sadb_x_sa2 s2;

        memcpy(&s2, e, sizeof(s2));
        p->mode = s2.sadb_x_sa2_mode;
        p->seq = s2.sadb_x_sa2_sequence;
        p->reqid = s2.sadb_x_sa2_reqid;
    }
    lifetime_get(m, SADB_EXT_LIFETIME_CURRENT, &si.current);
    si.current.addtime = lib_ms(k, si.current.addtime);
    si.current.usetime = lib_ms(k, si.current.usetime);
    lifetime_get(m, SADB_EXT_LIFETIME_HARD, &p->hard);
    lifetime_get(m, SADB_EXT_LIFETIME_SOFT, &p->soft);
    if ((e = find(m, SADB_EXT_ADDRESS_SRC)) != NULL) {
        sockaddr_get(e + sizeof(struct sadb_address), &p->src);
    }
    if ((e = find(m, SADB_EXT_ADDRESS_DST)) != NULL) {
        sockaddr_get(e + sizeof(struct sadb_address), &p->dst);
    }
    if ((e = find(m, SADB_X_EXT_NAT_T_SPORT)) != NULL) {
        struct sadb_x_nat_t_port np;

        memcpy(&np, e, sizeof(np));
        p->natt_sport = ntohs(np.sadb_x_nat_t_port_port);
    }
    if ((e = find(m, SADB_X_EXT_NAT_T_DPORT)) != NULL) {
        struct sadb_x_nat_t_port np;

        memcpy(&np, e, sizeof(np));
        p->natt_dport = ntohs(np.sadb_x_nat_t_port_port);
    }
    *out = si;
}

/* Returns whether it is a per-socket policy. */
static bool policy_from_msg(const struct spk *k, const struct sadb_msg *m,
                            struct ipsecif_policy *out)
{
    struct ipsecif_policy p;
    bool per_socket = false;
    struct ipsecif_lifetime cur;
    struct sadb_x_policy x;
    struct sadb_address a;
    const uint8_t *e;
    size_t off;
    size_t end;

    memset(&p, 0, sizeof(p));
    memset(&cur, 0, sizeof(cur));
    if ((e = find(m, SADB_EXT_ADDRESS_SRC)) != NULL) {
        memcpy(&a, e, sizeof(a));
        p.sel.ulproto = a.sadb_address_proto;
        p.sel.src_plen = a.sadb_address_prefixlen;
        p.sel.sport = sockaddr_get(e + sizeof(a), &p.sel.src);
    }
    if ((e = find(m, SADB_EXT_ADDRESS_DST)) != NULL) {
        memcpy(&a, e, sizeof(a));
        p.sel.dst_plen = a.sadb_address_prefixlen;
        p.sel.dport = sockaddr_get(e + sizeof(a), &p.sel.dst);
    }
    if ((p.sel.ulproto == IPSECIF_IPPROTO_ICMP || p.sel.ulproto == IPSECIF_IPPROTO_ICMPV6)) {
        p.sel.sport = p.sel.sport == 0 ? IPSECIF_ICMP_ANY : p.sel.sport;
        p.sel.dport = p.sel.dport == 0 ? IPSECIF_ICMP_ANY : p.sel.dport;
    }
    lifetime_get(m, SADB_EXT_LIFETIME_CURRENT, &cur);
    p.created = lib_ms(k, cur.addtime);
    p.lastused = lib_ms(k, cur.usetime);
    e = find(m, SADB_X_EXT_POLICY);
    if (e != NULL) {
        memcpy(&x, e, sizeof(x));
        /* A bypass (per-socket) policy passes traffic in clear, as none does. */
        p.action = x.sadb_x_policy_type == IPSEC_POLICY_IPSEC ? IPSECIF_ACTION_IPSEC
                   : x.sadb_x_policy_type == IPSEC_POLICY_NONE ||
                           x.sadb_x_policy_type == IPSEC_POLICY_BYPASS
                       ? IPSECIF_ACTION_NONE
                       : IPSECIF_ACTION_DISCARD;
        /* Linux numbers per-socket policies index << 3 | (3 + direction). */
        per_socket = x.sadb_x_policy_id % 8 >= 3;
        p.dir = x.sadb_x_policy_dir;
        p.id = x.sadb_x_policy_id;
        p.priority = x.sadb_x_policy_priority;
        end = (size_t)x.sadb_x_policy_len * 8;
        off = sizeof(x);
        while (off + sizeof(struct sadb_x_ipsecrequest) <= end && p.nreq < IPSECIF_MAX_REQUESTS) {
            struct sadb_x_ipsecrequest rq;
            struct ipsecif_ipsecreq *r = &p.req[p.nreq];

            memcpy(&rq, e + off, sizeof(rq));
            if (rq.sadb_x_ipsecrequest_len < sizeof(rq) || off + rq.sadb_x_ipsecrequest_len > end) {
                break;
            }
            r->proto = (uint8_t)rq.sadb_x_ipsecrequest_proto;
            r->mode = rq.sadb_x_ipsecrequest_mode;
            r->level = rq.sadb_x_ipsecrequest_level;
            r->reqid = rq.sadb_x_ipsecrequest_reqid;
            if (rq.sadb_x_ipsecrequest_len > sizeof(rq)) {
                size_t first;

                sockaddr_get(e + off + sizeof(rq), &r->tun_src);
                first = sockaddr_size(&r->tun_src);
                sockaddr_get(e + off + sizeof(rq) + first, &r->tun_dst);
            }
            off += rq.sadb_x_ipsecrequest_len;
            p.nreq++;
        }
    }
    *out = p;
    return per_socket;
}

/* ---- Exchanging ---- */

/* Receive the next reply to the request in k->msg; NULL on timeout. */
static const struct sadb_msg *next_reply(struct spk *k)
{
    const struct sadb_msg *q = (const struct sadb_msg *)k->msg;
    const struct sadb_msg *r = (const struct sadb_msg *)k->rep;

    for (;;) {
        struct pollfd p = {k->fd, POLLIN, 0};
        ssize_t n;

        if (poll(&p, 1, REPLY_MS) != 1) {
            return NULL;
        }
        n = recv(k->fd, k->rep, sizeof(k->rep), 0);
        if (n <= 0) {
            return NULL;
        }
        if ((size_t)n < sizeof(*r) || (size_t)r->sadb_msg_len * 8 != (size_t)n) {
            continue;
        }
        /* Broadcasts of other clients' changes and ACQUIREs are not ours. */
        if (r->sadb_msg_type == q->sadb_msg_type && r->sadb_msg_pid == q->sadb_msg_pid) {
            return r;
        }
    }
}

/* Send k->msg; returns the reply's errno (0) or -1 when none came. */
static int xfer(struct spk *k, const struct sadb_msg **reply)
{
    const struct sadb_msg *q = (const struct sadb_msg *)k->msg;
    const struct sadb_msg *r;

    if (send(k->fd, k->msg, (size_t)q->sadb_msg_len * 8, 0) < 0) {
        snprintf(k->err, sizeof(k->err), "PF_KEY send: %s", strerror(errno));
        return -1;
    }
    r = next_reply(k);
    if (r == NULL) {
        snprintf(k->err, sizeof(k->err), "no reply from the daemon");
        return -1;
    }
    if (reply != NULL) {
        *reply = r;
    }
    return r->sadb_msg_errno;
}

static const char *errno_text(int e, bool policy)
{
    switch (e) {
    case EEXIST:
        return rtr_err_text(IPSECIF_ERR_EXIST, policy);
    case ENOENT:
    case ESRCH:
        return rtr_err_text(IPSECIF_ERR_NOENT, policy);
    case EBUSY:
        return rtr_err_text(IPSECIF_ERR_BUSY, policy);
    case ENOBUFS:
        return rtr_err_text(IPSECIF_ERR_FULL, policy);
    default:
        return strerror(e);
    }
}

/* What xfer() (or a dump) gave, as the executor wants it. */
static int result(const struct spk *k, int e, bool policy, char *why)
{
    if (e == 0) {
        return 0;
    }
    snprintf(why, SKX_WHY, "%s", e < 0 ? k->err : errno_text(e, policy));
    return -1;
}

/* Send the dump request in k->msg and pass each entry on; ENOENT is an
 * empty dump. Returns as xfer(). */
static int dump(struct spk *k, skx_sa_fn sa_fn, skx_policy_fn pol_fn, void *arg)
{
    const struct sadb_msg *r;
    int e = xfer(k, &r);

    if (e == ENOENT) {
        return 0;
    }
    while (e == 0) {
        if (pol_fn != NULL) {
            struct ipsecif_policy p;
            bool per_socket = policy_from_msg(k, r, &p);

            pol_fn(arg, &p, r->sadb_msg_seq, per_socket);
        } else {
            struct ipsecif_sa_info si;

            sa_from_msg(k, r, &si);
            sa_fn(arg, &si, r->sadb_msg_seq);
        }
        if (r->sadb_msg_seq == 0) {
            return 0;
        }
        r = next_reply(k);
        if (r == NULL) {
            snprintf(k->err, sizeof(k->err), "the dump ended early");
            return -1;
        }
        e = r->sadb_msg_errno;
    }
    return e;
}

/* ---- The backend ---- */

static int pk_sa_add(void *be, const struct ipsecif_sa_params *p, bool update, char *why)
{
    struct spk *k = be;
    int e;

    start(k, update ? SADB_UPDATE : SADB_ADD, satype_of(p->proto));
    if (sa_ext(k, p) < 0) {
        return result(k, EOPNOTSUPP, false, why);
    }
    sa2(k, p->mode, p->reqid);
    sa_addrs(k, p);
    natt(k, p);
    if (p->proto == IPSECIF_IPPROTO_AH && p->ealg == IPSECIF_EALG_AES_GMAC) {
        /* AH has one key, KEY_AUTH, AES-GMAC's included. */
        key_ext(k, SADB_EXT_KEY_AUTH, p->ekey, p->ekey_len);
    } else if (p->aalg != IPSECIF_AALG_NONE) {
        key_ext(k, SADB_EXT_KEY_AUTH, p->akey, p->akey_len);
    }
    if (p->ealg != IPSECIF_EALG_NONE && p->proto != IPSECIF_IPPROTO_AH) {
        key_ext(k, SADB_EXT_KEY_ENCRYPT, p->ekey, p->ekey_len);
    }
    lifetime(k, SADB_EXT_LIFETIME_HARD, &p->hard);
    lifetime(k, SADB_EXT_LIFETIME_SOFT, &p->soft);
    e = xfer(k, NULL);
    /* The request held keys. */
    memset(k->msg, 0, sizeof(k->msg));
    return result(k, e, false, why);
}

/* GET or DELETE of one SA; the reply of a GET into out. */
static int sa_one(struct spk *k, uint8_t type, const struct ipsecif_sa_params *p,
                  struct ipsecif_sa_info *out, char *why)
{
    const struct sadb_msg *r = NULL;
    int e;

    start(k, type, satype_of(p->proto));
    sa_ext(k, p);
    sa_addrs(k, p);
    natt(k, p);
    e = xfer(k, &r);
    if (e == 0 && out != NULL) {
        sa_from_msg(k, r, out);
    }
    return result(k, e, false, why);
}

static int pk_sa_get(void *be, const struct ipsecif_sa_params *p, struct ipsecif_sa_info *out,
                     char *why)
{
    return sa_one(be, SADB_GET, p, out, why);
}

static int pk_sa_delete(void *be, const struct ipsecif_sa_params *p, char *why)
{
    return sa_one(be, SADB_DELETE, p, NULL, why);
}

static int pk_sa_getspi(void *be, const struct ipsecif_sa_params *p, struct ipsecif_sa_info *out,
                        char *why)
{
    struct spk *k = be;
    const struct sadb_msg *r = NULL;
    struct sadb_spirange *sr;
    int e;

    start(k, SADB_GETSPI, satype_of(p->proto));
    sa2(k, p->mode, p->reqid);
    sa_addrs(k, p);
    sr = ext(k, SADB_EXT_SPIRANGE, sizeof(*sr));
    sr->sadb_spirange_min = p->spi;
    sr->sadb_spirange_max = p->spi;
    e = xfer(k, &r);
    if (e == 0) {
        sa_from_msg(k, r, out);
    }
    return result(k, e, false, why);
}

static int pk_sa_deleteall(void *be, const struct ipsecif_sa_params *p, char *why)
{
    struct spk *k = be;

    /* DELETE without an SA extension: every SA between the two addresses. */
    start(k, SADB_DELETE, satype_of(p->proto));
    sa_addrs(k, p);
    return result(k, xfer(k, NULL), false, why);
}

static int pk_sa_flush(void *be, uint8_t proto, char *why)
{
    struct spk *k = be;

    start(k, SADB_FLUSH, satype_of(proto));
    return result(k, xfer(k, NULL), false, why);
}

static int pk_sa_dump(void *be, uint8_t proto, skx_sa_fn fn, void *arg, char *why)
{
    struct spk *k = be;

    start(k, SADB_DUMP, satype_of(proto));
    return result(k, dump(k, fn, NULL, arg), false, why);
}

/* X_SPDADD, X_SPDUPDATE or X_SPDDELETE. */
static int spd_change(struct spk *k, uint8_t type, const struct ipsecif_policy *p, char *why)
{
    int e;

    start(k, type, SADB_SATYPE_UNSPEC);
    policy_ext(k, p, p->dir);
    e = xfer(k, NULL);
    /* As Linux setkey: forwarded traffic needs its own copy of an inbound policy. */
    if (e == 0 && p->dir == IPSECIF_DIR_IN) {
        start(k, type, SADB_SATYPE_UNSPEC);
        policy_ext(k, p, IPSECIF_DIR_FWD);
        e = xfer(k, NULL);
        if (type == SADB_X_SPDDELETE && (e == ENOENT || e == ESRCH)) {
            e = 0;
        }
    }
    return result(k, e, true, why);
}

static int pk_spd_add(void *be, const struct ipsecif_policy *p, bool update, char *why)
{
    return spd_change(be, update ? SADB_X_SPDUPDATE : SADB_X_SPDADD, p, why);
}

static int pk_spd_delete(void *be, const struct ipsecif_policy *p, char *why)
{
    return spd_change(be, SADB_X_SPDDELETE, p, why);
}

static int pk_spd_flush(void *be, char *why)
{
    struct spk *k = be;

    start(k, SADB_X_SPDFLUSH, SADB_SATYPE_UNSPEC);
    return result(k, xfer(k, NULL), false, why);
}

static int pk_spd_dump(void *be, skx_policy_fn fn, void *arg, char *why)
{
    struct spk *k = be;

    start(k, SADB_X_SPDDUMP, SADB_SATYPE_UNSPEC);
    return result(k, dump(k, NULL, fn, arg), false, why);
}

static const struct skx_ops pfkey_ops = {
    .sa_add = pk_sa_add,
    .sa_get = pk_sa_get,
    .sa_getspi = pk_sa_getspi,
    .sa_delete = pk_sa_delete,
    .sa_deleteall = pk_sa_deleteall,
    .sa_flush = pk_sa_flush,
    .sa_dump = pk_sa_dump,
    .spd_add = pk_spd_add,
    .spd_delete = pk_spd_delete,
    .spd_flush = pk_spd_flush,
    .spd_dump = pk_spd_dump,
};

static int needs_control(void *arg, const struct skp_cmd *cmd, unsigned line)
{
    (void)arg;
    (void)line;
    return (cmd->type == SKP_CMD_ADD || cmd->type == SKP_CMD_UPDATE) &&
                   (cmd->sa.ealg == IPSECIF_EALG_CHACHA20_POLY1305 ||
                    (cmd->sa.flags & IPSECIF_SA_F_ESN) != 0)
               ? 1
               : 0;
}

bool spk_needs_control(const char *script, size_t script_len)
{
    struct skp_error err;

    return skp_parse(script, script_len, needs_control, NULL, &err) != SKP_OK && err.code == 1;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int spk_setkey(const char *path, struct rtr_out *o, int argc, char *const argv[],
               const char *script, size_t script_len)
{
    static struct spk k;
    struct skx_args args;
    int rc = -1;

    if (skx_args_parse(o, argc, argv, &args) < 0) {
        return -1;
    }
    memset(&k, 0, sizeof(k));
    k.env.ctx = NULL;
    k.env.now = ipsecif_posix_now_ms();
    k.env.wall = time(NULL);
    k.fd = connect_to(path);
    if (k.fd < 0) {
        return rtr_fail(o, "PF_KEY socket %s: %s", path, strerror(errno));
    }
    /* As setkey: register first (the reply lists the algorithms). */
    start(&k, SADB_REGISTER, SADB_SATYPE_UNSPEC);
    if (xfer(&k, NULL) != 0) {
        rtr_fail(o, "REGISTER: %s", k.err[0] != '\0' ? k.err : "refused");
        goto out;
    }
    rc = skx_run(&pfkey_ops, &k, &k.env, o, &args, script, script_len);
out:
    close(k.fd);
    memset(&k, 0, sizeof(k));
    return rc;
}
