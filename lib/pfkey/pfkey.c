/* PF_KEY v2 (RFC 2367) with the KAME extensions: endpoints, parsing and
 * checks, dispatch onto the SADB and SPD, and the messages sent back.
 *
 * Wire access: lengths, types and counters are in host byte order (h16/h32/
 * h64 go through memcpy, so any alignment is fine); SPIs and ports are in
 * network byte order (ipsecif_load16/32). Every read is bounded by a length
 * checked beforehand. */
#include "ipsecif_priv.h"

#define HDR_LEN 16u
#define EXT_MAX 26u /* highest extension number either dialect knows */
#define MSG_MAX_TYPE 23u
#define BUILD_OFF 16u /* room for the X_PROMISC wrapper of KAME promiscuous copies */

#define AF_INET_WIRE 2u
#define AF_INET6_KAME 24u
#define AF_INET6_LINUX 10u
#define SIN_LEN 16u
#define SIN6_LEN 28u

#define POLICY_HDR 16u
#define REQ_HDR_KAME 8u
#define REQ_HDR_LINUX 16u
#define COMB_LEN 72u
#define SOCK_OFF (HDR_LEN + IPSECIF_SOCKPOL_SOCK_LEN) /* X_SOCKPOLICY: the policy */

#define IPSEC_POLICY_DISCARD 0u
#define IPSEC_POLICY_NONE 1u
#define IPSEC_POLICY_IPSEC 2u
#define IPSEC_POLICY_ENTRUST 3u
#define IPSEC_POLICY_BYPASS 4u
#define IPSEC_ULPROTO_ANY 255u
#define UDP_ENCAP_ESPINUDP 2u

/* KAME's default GETSPI range. */
#define SPI_DEFAULT_MIN 0x100u
#define SPI_DEFAULT_MAX 0x0fffffffu

/* ---- Host-order wire access ---- */

static uint16_t h16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t h32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t h64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

static void s16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void s32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void s64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* ---- errno ---- */

static bool is_linux(uint8_t dialect)
{
    return dialect == IPSECIF_PFKEY_DIALECT_LINUX;
}

static uint8_t e_nobufs(uint8_t d)
{
    return is_linux(d) ? IPSECIF_PFKEY_ENOBUFS_LINUX : IPSECIF_PFKEY_ENOBUFS_KAME;
}

static uint8_t e_msgsize(uint8_t d)
{
    return is_linux(d) ? IPSECIF_PFKEY_EMSGSIZE_LINUX : IPSECIF_PFKEY_EMSGSIZE_KAME;
}

static uint8_t e_opnotsupp(uint8_t d)
{
    return is_linux(d) ? IPSECIF_PFKEY_EOPNOTSUPP_LINUX : IPSECIF_PFKEY_EOPNOTSUPP_KAME;
}

void ipsecif_pfkey_set_wallclock(struct ipsecif_ctx *ctx, uint64_t now_ms, uint64_t unix_seconds)
{
    const uint64_t lim = (uint64_t)INT64_MAX / 1000u;

    if (ctx == NULL) {
        return;
    }
    unix_seconds = unix_seconds > lim ? lim : unix_seconds;
    now_ms = now_ms > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : now_ms;
    ctx->pfkey_wall_off_ms = (int64_t)(unix_seconds * 1000u) - (int64_t)now_ms;
}

uint8_t ipsecif_pfkey_errno(uint8_t dialect, int err)
{
    switch (err) {
    case IPSECIF_OK:
        return 0;
    case IPSECIF_ERR_EXIST:
        return IPSECIF_PFKEY_EEXIST;
    case IPSECIF_ERR_NOENT:
        return IPSECIF_PFKEY_ENOENT;
    case IPSECIF_ERR_FULL:
    case IPSECIF_ERR_NOROOM:
        return e_nobufs(dialect);
    case IPSECIF_ERR_BUSY:
        return IPSECIF_PFKEY_EBUSY;
    case IPSECIF_ERR_UNSUPPORTED:
        return e_opnotsupp(dialect);
    case IPSECIF_ERR_RANDOM:
    case IPSECIF_ERR_PORT:
    case IPSECIF_ERR_INTERNAL:
        return IPSECIF_PFKEY_ENOMEM;
    default:
        return IPSECIF_PFKEY_EINVAL;
    }
}

/* ---- Algorithms: wire number <-> library id, with key sizes in bits ---- */

struct walg {
    uint8_t wire;
    uint8_t lib;
    uint8_t ivlen;
    uint16_t minbits;
    uint16_t maxbits;
};

/* The supported algorithms have the same numbers in linux/pfkeyv2.h and
 * NetBSD's net/pfkeyv2.h; AEAD key sizes include the 4-byte salt, as both
 * kernels take them. Separate tables keep the dialects free to diverge. */
static const struct walg ealg_kame[] = {
    {IPSECIF_SADB_EALG_3DESCBC, IPSECIF_EALG_3DES_CBC, 8, 192, 192},
    {IPSECIF_SADB_EALG_NULL, IPSECIF_EALG_NULL, 0, 0, 0},
    {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_EALG_AES_CBC, 16, 128, 256},
    {IPSECIF_SADB_X_EALG_AESGCM16, IPSECIF_EALG_AES_GCM16, 8, 160, 288},
    {IPSECIF_SADB_X_EALG_AESGMAC, IPSECIF_EALG_AES_GMAC, 8, 160, 288},
};
static const struct walg ealg_linux[] = {
    {IPSECIF_SADB_EALG_3DESCBC, IPSECIF_EALG_3DES_CBC, 8, 192, 192},
    {IPSECIF_SADB_EALG_NULL, IPSECIF_EALG_NULL, 0, 0, 0},
    {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_EALG_AES_CBC, 16, 128, 256},
    {IPSECIF_SADB_X_EALG_AESGCM16, IPSECIF_EALG_AES_GCM16, 8, 160, 288},
    {IPSECIF_SADB_X_EALG_AESGMAC, IPSECIF_EALG_AES_GMAC, 8, 160, 288},
};
static const struct walg aalg_both[] = {
    {IPSECIF_SADB_AALG_SHA1HMAC, IPSECIF_AALG_HMAC_SHA1_96, 0, 160, 160},
    {IPSECIF_SADB_X_AALG_SHA2_256, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 256, 256},
    {IPSECIF_SADB_X_AALG_SHA2_384, IPSECIF_AALG_HMAC_SHA2_384_192, 0, 384, 384},
    {IPSECIF_SADB_X_AALG_SHA2_512, IPSECIF_AALG_HMAC_SHA2_512_256, 0, 512, 512},
};

static const struct walg *etable(uint8_t d, size_t *n)
{
    if (is_linux(d)) {
        *n = IPSECIF_ARRAY_SIZE(ealg_linux);
        return ealg_linux;
    }
    *n = IPSECIF_ARRAY_SIZE(ealg_kame);
    return ealg_kame;
}

static const struct walg *atable(uint8_t d, size_t *n)
{
    (void)d;
    *n = IPSECIF_ARRAY_SIZE(aalg_both);
    return aalg_both;
}

static const struct walg *by_wire(const struct walg *t, size_t n, uint8_t wire)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].wire == wire) {
            return &t[i];
        }
    }
    return NULL;
}

static uint8_t to_wire(const struct walg *t, size_t n, uint8_t lib)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].lib == lib) {
            return t[i].wire;
        }
    }
    return 0;
}

static uint8_t satype_of(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_AH ? IPSECIF_SADB_SATYPE_AH : IPSECIF_SADB_SATYPE_ESP;
}

/* ---- Endpoints ---- */

static struct ipsecif_pfkey_ep *ep_get(struct ipsecif_ctx *ctx, uint32_t id)
{
    if (ctx->pfkey_eps == NULL || id == 0 || id > ctx->cfg.max_pfkey_endpoints) {
        return NULL;
    }
    return ctx->pfkey_eps[id - 1].in_use ? &ctx->pfkey_eps[id - 1] : NULL;
}

int ipsecif_pfkey_open(struct ipsecif_ctx *ctx, uint8_t dialect, uint32_t *ep_id)
{
    uint32_t i;

    if (ctx == NULL || ep_id == NULL ||
        (dialect != IPSECIF_PFKEY_DIALECT_KAME && dialect != IPSECIF_PFKEY_DIALECT_LINUX)) {
        return IPSECIF_ERR_ARG;
    }
    for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
        struct ipsecif_pfkey_ep *ep = &ctx->pfkey_eps[i];

        if (!ep->in_use) {
            memset(ep, 0, sizeof(*ep));
            ep->in_use = true;
            ep->dialect = dialect;
            ctx->pfkey_nopen++;
            ctx->pfkey_hook = ipsecif_pfkey_event;
            *ep_id = i + 1;
            return IPSECIF_OK;
        }
    }
    return IPSECIF_ERR_FULL;
}

int ipsecif_pfkey_close(struct ipsecif_ctx *ctx, uint32_t ep_id)
{
    struct ipsecif_pfkey_ep *ep;

    if (ctx == NULL) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    memset(ep, 0, sizeof(*ep));
    ctx->pfkey_nopen--;
    /* The endpoint's sockets went with it. */
    (void)ipsecif_spd_sock_close(ctx, ep_id, IPSECIF_SOCK_ALL);
    return IPSECIF_OK;
}

/* ---- Parsed messages ---- */

struct pmsg {
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

struct paddr {
    struct ipsecif_addr a;
    uint16_t port; /* host order */
    uint8_t plen;
    uint8_t proto;
};

static const uint8_t *ext(const struct pmsg *m, unsigned type)
{
    return m->off[type] != 0 ? m->p + m->off[type] : NULL;
}

static bool has(const struct pmsg *m, unsigned type)
{
    return m->off[type] != 0;
}

static unsigned ext_max(uint8_t d)
{
    return is_linux(d) ? IPSECIF_SADB_X_EXT_NAT_T_OA : IPSECIF_SADB_X_EXT_SA_REPLAY;
}

static size_t af6(uint8_t d)
{
    return is_linux(d) ? AF_INET6_LINUX : AF_INET6_KAME;
}

/* One sockaddr at p with avail bytes; *used its size. */
static int sockaddr_parse(uint8_t d, const uint8_t *p, size_t avail, struct ipsecif_addr *a,
                          uint16_t *port, size_t *used)
{
    size_t fam;
    size_t need;

    if (avail < 2) {
        return IPSECIF_PFKEY_EINVAL;
    }
    fam = is_linux(d) ? h16(p) : p[1];
    if (fam == AF_INET_WIRE) {
        need = SIN_LEN;
    } else if (fam == af6(d)) {
        need = SIN6_LEN;
    } else {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* KAME's sa_len must be exact. */
    if (avail < need || (!is_linux(d) && p[0] != need)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    memset(a, 0, sizeof(*a));
    *port = ipsecif_load16(p + 2);
    if (need == SIN_LEN) {
        a->family = IPSECIF_AF_INET;
        memcpy(a->bytes, p + 4, 4);
    } else {
        a->family = IPSECIF_AF_INET6;
        memcpy(a->bytes, p + 8, 16);
    }
    *used = need;
    return 0;
}

static int addr_parse(uint8_t d, const uint8_t *e, size_t elen, struct paddr *o)
{
    size_t used;
    int rc;

    memset(o, 0, sizeof(*o));
    rc = sockaddr_parse(d, e + 8, elen - 8, &o->a, &o->port, &used);
    if (rc != 0) {
        return rc;
    }
    o->proto = e[4];
    o->plen = e[5];
    if (o->plen > 8 * ipsecif_addr_len(o->a.family)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    return 0;
}

static bool is_addr_ext(unsigned t)
{
    return t == IPSECIF_SADB_EXT_ADDRESS_SRC || t == IPSECIF_SADB_EXT_ADDRESS_DST ||
           t == IPSECIF_SADB_EXT_ADDRESS_PROXY || t == IPSECIF_SADB_X_EXT_NAT_T_OA ||
           t == IPSECIF_SADB_X_EXT_NAT_T_OAR;
}

/* Least length of each extension (bytes). */
static size_t ext_min(unsigned t)
{
    switch (t) {
    case IPSECIF_SADB_EXT_SA:
    case IPSECIF_SADB_EXT_IDENTITY_SRC:
    case IPSECIF_SADB_EXT_IDENTITY_DST:
    case IPSECIF_SADB_EXT_SENSITIVITY:
    case IPSECIF_SADB_EXT_SPIRANGE:
    case IPSECIF_SADB_X_EXT_POLICY:
    case IPSECIF_SADB_X_EXT_SA2:
        return 16;
    case IPSECIF_SADB_EXT_LIFETIME_CURRENT:
    case IPSECIF_SADB_EXT_LIFETIME_HARD:
    case IPSECIF_SADB_EXT_LIFETIME_SOFT:
        return 32;
    default:
        return 8;
    }
}

/* Structure of one extension, beyond its length. */
static int ext_check(uint8_t d, unsigned t, const uint8_t *e, size_t elen)
{
    struct paddr a;

    if (elen < ext_min(t)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (is_addr_ext(t)) {
        return addr_parse(d, e, elen, &a);
    }
    switch (t) {
    case IPSECIF_SADB_EXT_KEY_AUTH:
    case IPSECIF_SADB_EXT_KEY_ENCRYPT:
        if (h16(e + 4) % 8 != 0 || h16(e + 4) / 8u > elen - 8) {
            return IPSECIF_PFKEY_EINVAL;
        }
        return 0;
    case IPSECIF_SADB_EXT_SENSITIVITY:
        if (((size_t)e[9] + e[11]) * 8u > elen - 16) {
            return IPSECIF_PFKEY_EINVAL;
        }
        return 0;
    case IPSECIF_SADB_EXT_PROPOSAL:
        return (elen - 8) % COMB_LEN == 0 ? 0 : IPSECIF_PFKEY_EINVAL;
    default:
        return 0;
    }
}

/* RFC 2367 section 2.3 and 4: header, lengths in 64-bit units matching the
 * datagram exactly, extensions in any order, each at most once. */
static uint8_t parse(uint8_t d, const uint8_t *p, size_t len, struct pmsg *m)
{
    size_t off = HDR_LEN;
    uint8_t st;

    memset(m, 0, sizeof(*m));
    m->p = p;
    m->len = len;
    m->type = p[1];
    m->err = p[2];
    m->satype = p[3];
    m->seq = h32(p + 8);
    m->pid = h32(p + 12);
    if (p[0] != IPSECIF_PF_KEY_V2 || (size_t)h16(p + 4) * 8u != len || len % 8 != 0) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (m->type == 0 || m->type > MSG_MAX_TYPE) {
        return IPSECIF_PFKEY_EINVAL;
    }
    st = m->satype;
    /* X_PROMISC uses the satype byte as its on/off flag. */
    if (m->type != IPSECIF_SADB_X_PROMISC && st != IPSECIF_SADB_SATYPE_UNSPEC &&
        st != IPSECIF_SADB_SATYPE_AH && st != IPSECIF_SADB_SATYPE_ESP &&
        st != IPSECIF_SADB_X_SATYPE_IPCOMP) {
        return IPSECIF_PFKEY_EINVAL;
    }
    while (off < len) {
        size_t elen;
        unsigned t;
        uint8_t rc;

        if (len - off < 4) {
            return IPSECIF_PFKEY_EINVAL;
        }
        elen = (size_t)h16(p + off) * 8u;
        t = h16(p + off + 2);
        if (elen == 0 || elen > len - off || t == 0 || t > ext_max(d) || m->off[t] != 0) {
            return IPSECIF_PFKEY_EINVAL;
        }
        rc = (uint8_t)ext_check(d, t, p + off, elen);
        if (rc != 0) {
            return rc;
        }
        m->off[t] = (uint32_t)off;
        m->elen[t] = (uint32_t)elen;
        off += elen;
    }
    return 0;
}

/* ---- Building ---- */

struct bld {
    uint8_t *b;
    size_t cap;
    size_t len;
    bool over;
};

static uint8_t *put(struct bld *b, size_t n)
{
    uint8_t *p;

    if (b->over || n > b->cap - b->len) {
        b->over = true;
        return NULL;
    }
    p = b->b + b->len;
    memset(p, 0, n);
    b->len += n;
    return p;
}

static uint8_t *ext_put(struct bld *b, unsigned type, size_t n)
{
    uint8_t *p = put(b, align8(n));

    if (p != NULL) {
        s16(p, (uint16_t)(align8(n) / 8));
        s16(p + 2, (uint16_t)type);
    }
    return p;
}

static void hdr_put(struct bld *b, uint8_t type, uint8_t err, uint8_t satype, uint32_t seq,
                    uint32_t pid)
{
    uint8_t *p = put(b, HDR_LEN);

    if (p != NULL) {
        p[0] = IPSECIF_PF_KEY_V2;
        p[1] = type;
        p[2] = err;
        p[3] = satype;
        s32(p + 8, seq);
        s32(p + 12, pid);
    }
}

static size_t sockaddr_size(uint8_t family)
{
    return family == IPSECIF_AF_INET6 ? SIN6_LEN : SIN_LEN;
}

static void sockaddr_put(uint8_t d, uint8_t *p, const struct ipsecif_addr *a, uint16_t port)
{
    size_t n = sockaddr_size(a->family);

    if (is_linux(d)) {
        s16(p, (uint16_t)(n == SIN6_LEN ? AF_INET6_LINUX : AF_INET_WIRE));
    } else {
        p[0] = (uint8_t)n;
        p[1] = (uint8_t)(n == SIN6_LEN ? AF_INET6_KAME : AF_INET_WIRE);
    }
    ipsecif_store16(p + 2, port);
    if (n == SIN6_LEN) {
        memcpy(p + 8, a->bytes, 16);
    } else {
        memcpy(p + 4, a->bytes, 4);
    }
}

static void addr_put(struct bld *b, uint8_t d, unsigned type, const struct ipsecif_addr *a,
                     uint16_t port, uint8_t plen, uint8_t proto)
{
    uint8_t *p = ext_put(b, type, 8 + sockaddr_size(a->family));

    if (p != NULL) {
        p[4] = proto;
        p[5] = plen;
        sockaddr_put(d, p + 8, a, port);
    }
}

static uint8_t full_plen(const struct ipsecif_addr *a)
{
    return (uint8_t)(8 * ipsecif_addr_len(a->family));
}

static void lifetime_put(struct bld *b, unsigned type, const struct ipsecif_lifetime *lt)
{
    uint8_t *p = ext_put(b, type, 32);

    if (p != NULL) {
        s32(p + 4, lt->allocations);
        s64(p + 8, lt->bytes);
        s64(p + 16, lt->addtime);
        s64(p + 24, lt->usetime);
    }
}

/* A time of the library's clock (ms) as wire seconds: Unix seconds once
 * ipsecif_pfkey_set_wallclock() gave the offset. never_zero keeps a use time
 * of 0 (never used) at 0. */
static uint64_t wire_time(int64_t off_ms, uint64_t ms, bool never_zero)
{
    uint64_t t;

    if (never_zero && ms == 0) {
        return 0;
    }
    if (off_ms >= 0) {
        t = ms > UINT64_MAX - (uint64_t)off_ms ? UINT64_MAX : ms + (uint64_t)off_ms;
    } else {
        uint64_t back = (uint64_t)(-(off_ms + 1)) + 1u;

        t = ms >= back ? ms - back : 0;
    }
    return t / 1000u;
}

#if IPSECIF_SA_KEEP_KEYS
/* sadb_key: bits of key, then the key padded to 64 bits (RFC 2367 2.3.4). */
static void key_put(struct bld *b, unsigned type, const uint8_t *key, size_t len)
{
    uint8_t *p;

    if (len == 0) {
        return;
    }
    p = ext_put(b, type, 8 + len);
    if (p != NULL) {
        s16(p + 4, (uint16_t)(len * 8u));
        memcpy(p + 8, key, len);
    }
}
#endif

static void finish(struct bld *b)
{
    if (!b->over && b->len >= HDR_LEN) {
        s16(b->b + 4, (uint16_t)(b->len / 8));
    }
}

/* Which limits an SA message carries. */
enum limits { LIM_BOTH, LIM_HARD, LIM_SOFT };

/* The SA part of replies, DUMP entries and EXPIRE: no key material (GET and
 * DUMP add the keys after it). */
static void sa_exts_put(struct bld *b, uint8_t d, const struct ipsecif_sa_info *si, enum limits lim,
                        int64_t wall_off)
{
    const struct ipsecif_sa_params *sp = &si->params;
    size_t n;
    const struct walg *et = etable(d, &n);
    uint8_t *p = ext_put(b, IPSECIF_SADB_EXT_SA, 16);
    uint32_t win = sp->replay_window;

    if (p != NULL) {
        ipsecif_store32(p + 4, sp->spi);
        /* KAME counts the window in bytes of bitmap, Linux in packets. */
        if (is_linux(d)) {
            p[8] = (uint8_t)(win > 255 ? 255 : win);
        } else {
            p[8] = (uint8_t)(win / 8 > 255 ? 255 : win / 8);
        }
        p[9] = si->state;
        p[11] = to_wire(et, n, sp->ealg);
        et = atable(d, &n);
        p[10] = to_wire(et, n, sp->aalg);
    }
    if (!is_linux(d) && win / 8 > 255) {
        p = ext_put(b, IPSECIF_SADB_X_EXT_SA_REPLAY, 8);
        if (p != NULL) {
            s32(p + 4, win);
        }
    }
    p = ext_put(b, IPSECIF_SADB_X_EXT_SA2, 16);
    if (p != NULL) {
        p[4] = sp->mode;
        s32(p + 8, sp->seq);
        s32(p + 12, is_linux(d) ? sp->reqid : (sp->reqid & 0xffffu));
    }
    {
        struct ipsecif_lifetime cur = si->current;

        /* Times on the wire are seconds. */
        cur.addtime = wire_time(wall_off, cur.addtime, false);
        cur.usetime = wire_time(wall_off, cur.usetime, true);
        lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_CURRENT, &cur);
    }
    if (lim != LIM_SOFT) {
        lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_HARD, &sp->hard);
    }
    if (lim != LIM_HARD) {
        lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_SOFT, &sp->soft);
    }
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_SRC, &sp->src, 0, full_plen(&sp->src),
             IPSEC_ULPROTO_ANY);
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_DST, &sp->dst, 0, full_plen(&sp->dst),
             IPSEC_ULPROTO_ANY);
    if (sp->natt_sport != 0) {
        p = ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_TYPE, 8);
        if (p != NULL) {
            p[4] = UDP_ENCAP_ESPINUDP;
        }
        p = ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_SPORT, 8);
        if (p != NULL) {
            ipsecif_store16(p + 4, sp->natt_sport);
        }
        p = ext_put(b, IPSECIF_SADB_X_EXT_NAT_T_DPORT, 8);
        if (p != NULL) {
            ipsecif_store16(p + 4, sp->natt_dport);
        }
    }
}

static bool is_icmp(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ICMP || proto == IPSECIF_IPPROTO_ICMPV6;
}

/* Selector ports on the wire: 0 is "any" for ICMP type/code as for ports. */
static uint16_t wire_port(uint8_t ulproto, uint16_t v)
{
    return is_icmp(ulproto) && v == IPSECIF_ICMP_ANY ? 0 : v;
}

static uint16_t sel_port(uint8_t ulproto, uint16_t v)
{
    return is_icmp(ulproto) && v == 0 ? IPSECIF_ICMP_ANY : v;
}

/*
 * Policy ids on the wire. KAME: the library's id. Linux numbers policies
 * (index << 3) | direction (in 0, out 1, fwd 2); 3 and up are per-socket
 * policies, which Linux clients (setkey's printer, racoon's policy table)
 * skip, so an SPD entry must never carry such an id.
 */
static uint32_t wire_policy_id(uint8_t d, uint32_t id, uint8_t dir)
{
    if (!is_linux(d) || id == 0) {
        return id;
    }
    return (id << 3) | (dir == IPSECIF_DIR_IN ? 0u : dir == IPSECIF_DIR_OUT ? 1u : 2u);
}

/* The library's id of a wire id, 0 if it names no SPD entry in dialect d. */
static uint32_t lib_policy_id(uint8_t d, uint32_t wire, uint8_t *dir)
{
    static const uint8_t dirs[] = {IPSECIF_DIR_IN, IPSECIF_DIR_OUT, IPSECIF_DIR_FWD};

    *dir = IPSECIF_DIR_ANY;
    if (!is_linux(d)) {
        return wire;
    }
    if ((wire & 7u) >= IPSECIF_ARRAY_SIZE(dirs)) {
        return 0;
    }
    *dir = dirs[wire & 7u];
    return wire >> 3;
}

static size_t req_size(uint8_t d, const struct ipsecif_ipsecreq *r)
{
    size_t n = is_linux(d) ? REQ_HDR_LINUX : REQ_HDR_KAME;

    if (r->tun_src.family != IPSECIF_AF_UNSPEC) {
        n += 2 * sockaddr_size(r->tun_src.family);
    }
    return align8(n);
}

static size_t requests_size(uint8_t d, const struct ipsecif_ipsecreq *req, uint8_t n)
{
    size_t len = 0;
    uint8_t i;

    for (i = 0; i < n; i++) {
        len += req_size(d, &req[i]);
    }
    return len;
}

/* The sadb_x_ipsecrequest list of a policy, from p on (room checked by the caller). */
static void requests_put(uint8_t d, uint8_t *p, const struct ipsecif_ipsecreq *req, uint8_t n)
{
    size_t h = is_linux(d) ? REQ_HDR_LINUX : REQ_HDR_KAME;
    uint8_t i;

    for (i = 0; i < n; i++) {
        const struct ipsecif_ipsecreq *r = &req[i];
        size_t rs = req_size(d, r);

        s16(p, (uint16_t)rs);
        s16(p + 2, r->proto);
        p[4] = r->mode;
        p[5] = r->level;
        if (is_linux(d)) {
            s32(p + 8, r->reqid);
        } else {
            /* KAME's reqid field is 16 bits wide. */
            s16(p + 6, (uint16_t)r->reqid);
        }
        if (r->tun_src.family != IPSECIF_AF_UNSPEC) {
            sockaddr_put(d, p + h, &r->tun_src, 0);
            sockaddr_put(d, p + h + sockaddr_size(r->tun_src.family), &r->tun_dst, 0);
        }
        p += rs;
    }
}

static void policy_ext_put(struct bld *b, uint8_t d, const struct ipsecif_policy *pol)
{
    uint8_t *p =
        ext_put(b, IPSECIF_SADB_X_EXT_POLICY, POLICY_HDR + requests_size(d, pol->req, pol->nreq));

    if (p == NULL) {
        return;
    }
    s16(p + 4, pol->action == IPSECIF_ACTION_IPSEC  ? IPSEC_POLICY_IPSEC
               : pol->action == IPSECIF_ACTION_NONE ? IPSEC_POLICY_NONE
                                                    : IPSEC_POLICY_DISCARD);
    p[6] = pol->dir;
    s32(p + 8, wire_policy_id(d, pol->id, pol->dir));
    if (is_linux(d)) {
        s32(p + 12, pol->priority);
    }
    requests_put(d, p + POLICY_HDR, pol->req, pol->nreq);
}

static void policy_exts_put(struct bld *b, uint8_t d, const struct ipsecif_policy *pol,
                            int64_t wall_off)
{
    const struct ipsecif_selector *s = &pol->sel;
    struct ipsecif_lifetime cur;

    policy_ext_put(b, d, pol);
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_SRC, &s->src, wire_port(s->ulproto, s->sport),
             s->src_plen, s->ulproto);
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_DST, &s->dst, wire_port(s->ulproto, s->dport),
             s->dst_plen, s->ulproto);
    memset(&cur, 0, sizeof(cur));
    cur.addtime = wire_time(wall_off, pol->created, false);
    cur.usetime = wire_time(wall_off, pol->lastused, true);
    lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_CURRENT, &cur);
}

/*
 * A per-socket policy in a Linux X_SPDDUMP, as Linux lists them: id
 * (slot << 3) | (3 + direction), so Linux clients know it for one; the
 * selector is the socket's local end (source outbound, destination
 * inbound), the other end any.
 */
static void sockpol_exts_put(struct bld *b, uint8_t d, const struct ipsecif_sock *s,
                             const struct ipsecif_sockpolicy *sp, uint32_t slot)
{
    static const uint16_t types[] = {IPSEC_POLICY_ENTRUST, IPSEC_POLICY_BYPASS, IPSEC_POLICY_IPSEC};
    bool out = sp->dir == IPSECIF_DIR_OUT;
    uint8_t plen = ipsecif_addr_is_unspec(&s->local) ? 0 : full_plen(&s->local);
    struct ipsecif_addr any;
    struct ipsecif_lifetime cur;
    uint8_t *p =
        ext_put(b, IPSECIF_SADB_X_EXT_POLICY, POLICY_HDR + requests_size(d, sp->req, sp->nreq));

    if (p != NULL) {
        s16(p + 4, types[sp->type < IPSECIF_ARRAY_SIZE(types) ? sp->type : 0]);
        p[6] = sp->dir;
        s32(p + 8, (slot << 3) | (out ? 4u : 3u));
        requests_put(d, p + POLICY_HDR, sp->req, sp->nreq);
    }
    memset(&any, 0, sizeof(any));
    any.family = s->local.family;
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_SRC, out ? &s->local : &any, out ? s->lport : 0,
             out ? plen : 0, s->proto);
    addr_put(b, d, IPSECIF_SADB_EXT_ADDRESS_DST, out ? &any : &s->local, out ? 0 : s->lport,
             out ? 0 : plen, s->proto);
    memset(&cur, 0, sizeof(cur));
    lifetime_put(b, IPSECIF_SADB_EXT_LIFETIME_CURRENT, &cur);
}

static void supported_put(struct bld *b, unsigned type, const struct walg *t, size_t n)
{
    uint8_t *p = ext_put(b, type, 8 + 8 * n);
    size_t i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        uint8_t *a = p + 8 + 8 * i;

        a[0] = t[i].wire;
        a[1] = t[i].ivlen;
        s16(a + 2, t[i].minbits);
        s16(a + 4, t[i].maxbits);
    }
}

/* ACQUIRE proposal: the combinations the library can run, best first. */
static void proposal_put(struct bld *b, uint8_t d)
{
    static const uint8_t combs[][2] = {
        {IPSECIF_SADB_X_EALG_AESGCM16, IPSECIF_SADB_AALG_NONE},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_256},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_X_AALG_SHA2_512},
        {IPSECIF_SADB_X_EALG_AESCBC, IPSECIF_SADB_AALG_SHA1HMAC},
        {IPSECIF_SADB_EALG_3DESCBC, IPSECIF_SADB_AALG_SHA1HMAC},
    };
    size_t ne, na, i;
    const struct walg *et = etable(d, &ne);
    const struct walg *at = atable(d, &na);
    uint8_t *p = ext_put(b, IPSECIF_SADB_EXT_PROPOSAL, 8 + COMB_LEN * IPSECIF_ARRAY_SIZE(combs));

    if (p == NULL) {
        return;
    }
    p[4] = 32; /* replay window, packets */
    for (i = 0; i < IPSECIF_ARRAY_SIZE(combs); i++) {
        uint8_t *c = p + 8 + COMB_LEN * i;
        const struct walg *e = by_wire(et, ne, combs[i][0]);
        const struct walg *a = by_wire(at, na, combs[i][1]);

        c[0] = combs[i][1];
        c[1] = combs[i][0];
        if (a != NULL) {
            s16(c + 4, a->minbits);
            s16(c + 6, a->maxbits);
        }
        if (e != NULL) {
            s16(c + 8, e->minbits);
            s16(c + 10, e->maxbits);
        }
        /*
         * RFC 2367 2.3.4: flags and reserved 0; allocations and bytes 0 (no
         * limit); soft_addtime at 40, hard_addtime at 48: a day hard, 80 %
         * of it soft, as KAME proposes; use times 0 (no limit).
         */
        s64(c + 40, 69120);
        s64(c + 48, 86400);
    }
}

/* ---- Output: what to build, for whom ---- */

enum body {
    B_HDR,      /* header only */
    B_SA,       /* SA, lifetimes, addresses, SA2, NAT-T */
    B_DELETE,   /* optional SA (spi), the request's addresses */
    B_POLICY,   /* X_POLICY, addresses, current lifetime */
    B_REGISTER, /* supported algorithms */
    B_ACQUIRE,  /* addresses, X_POLICY, proposal */
    B_EXPIRE    /* SA exts, hard or soft limit */
};

enum dest {
    TO_ONE,       /* the sender */
    TO_ALL,       /* every endpoint */
    TO_REGISTERED /* the sender and endpoints registered for satype */
};

struct out {
    uint8_t type;
    uint8_t err;
    uint8_t satype;
    uint32_t seq;
    uint32_t pid;
    enum body body;
    const struct ipsecif_sa_info *sa;
    const struct ipsecif_policy *pol;
    const struct ipsecif_km_event *ev;
    /* B_SA of GET and DUMP: the SA's keys (NULL: none go out). */
    const struct ipsecif_sa *keys;
    const struct paddr *src; /* B_DELETE */
    const struct paddr *dst;
    bool has_spi;
    uint32_t spi;
    /* B_POLICY of a Linux X_SPDDUMP: a per-socket policy instead of pol. */
    const struct ipsecif_sockpol *sock;
    uint8_t sock_dir_index;
    uint32_t sock_slot;
};

static size_t build(const struct ipsecif_ctx *ctx, uint8_t d, const struct out *o, uint8_t *buf,
                    size_t cap)
{
    struct bld b = {buf, cap, 0, false};
    const int64_t off = ctx->pfkey_wall_off_ms;
    uint8_t *p;
    size_t n;

    hdr_put(&b, o->type, o->err, o->satype, o->seq, o->pid);
    switch (o->body) {
    case B_HDR:
        break;
    case B_SA:
        sa_exts_put(&b, d, o->sa, LIM_BOTH, off);
#if IPSECIF_SA_KEEP_KEYS
        if (o->keys != NULL) {
            key_put(&b, IPSECIF_SADB_EXT_KEY_AUTH, o->keys->akey, o->keys->akey_len);
            key_put(&b, IPSECIF_SADB_EXT_KEY_ENCRYPT, o->keys->ekey, o->keys->ekey_len);
        }
#endif
        break;
    case B_DELETE:
        if (o->has_spi) {
            p = ext_put(&b, IPSECIF_SADB_EXT_SA, 16);
            if (p != NULL) {
                ipsecif_store32(p + 4, o->spi);
            }
        }
        addr_put(&b, d, IPSECIF_SADB_EXT_ADDRESS_SRC, &o->src->a, o->src->port, o->src->plen,
                 o->src->proto);
        addr_put(&b, d, IPSECIF_SADB_EXT_ADDRESS_DST, &o->dst->a, o->dst->port, o->dst->plen,
                 o->dst->proto);
        break;
    case B_POLICY:
        if (o->sock != NULL) {
            sockpol_exts_put(&b, d, &o->sock->sock, &o->sock->pol[o->sock_dir_index], o->sock_slot);
        } else {
            policy_exts_put(&b, d, o->pol, off);
        }
        break;
    case B_REGISTER:
        if (o->satype == IPSECIF_SADB_SATYPE_UNSPEC || o->satype == IPSECIF_SADB_SATYPE_ESP) {
            const struct walg *t = atable(d, &n);

            supported_put(&b, IPSECIF_SADB_EXT_SUPPORTED_AUTH, t, n);
            t = etable(d, &n);
            supported_put(&b, IPSECIF_SADB_EXT_SUPPORTED_ENCRYPT, t, n);
        }
        break;
    case B_ACQUIRE:
        addr_put(&b, d, IPSECIF_SADB_EXT_ADDRESS_SRC, &o->ev->acquire.src, 0,
                 full_plen(&o->ev->acquire.src), IPSEC_ULPROTO_ANY);
        addr_put(&b, d, IPSECIF_SADB_EXT_ADDRESS_DST, &o->ev->acquire.dst, 0,
                 full_plen(&o->ev->acquire.dst), IPSEC_ULPROTO_ANY);
        policy_ext_put(&b, d, &o->ev->acquire.policy);
        proposal_put(&b, d);
        break;
    case B_EXPIRE:
        /* RFC 2367 3.1.10: the current lifetime and the limit that fired. */
        sa_exts_put(&b, d, &o->ev->expire.sa, o->ev->expire.hard ? LIM_HARD : LIM_SOFT, off);
        break;
    }
    finish(&b);
    return b.over ? 0 : b.len;
}

/* A KAME promiscuous copy is the message behind an X_PROMISC header, which
 * goes into the BUILD_OFF bytes kept in front of it. */
static void promisc_copy(struct ipsecif_ctx *ctx, uint32_t id, uint8_t d, uint8_t *msg, size_t len)
{
    uint8_t *w;

    if (is_linux(d)) {
        ctx->port->pfkey_deliver(ctx->user, id, msg, len);
        return;
    }
    if (msg != ctx->pfkey_buf + BUILD_OFF || (len + HDR_LEN) / 8 > 0xffffu) {
        return;
    }
    w = ctx->pfkey_buf;
    memset(w, 0, HDR_LEN);
    w[0] = IPSECIF_PF_KEY_V2;
    w[1] = IPSECIF_SADB_X_PROMISC;
    s16(w + 4, (uint16_t)((len + HDR_LEN) / 8));
    ctx->port->pfkey_deliver(ctx->user, id, w, len + HDR_LEN);
}

static bool is_target(const struct ipsecif_pfkey_ep *ep, uint32_t idx, uint32_t sender,
                      enum dest how, uint8_t satype)
{
    if (idx == sender) {
        return true;
    }
    if (how == TO_ALL) {
        return true;
    }
    if (how == TO_REGISTERED) {
        return satype == IPSECIF_SADB_SATYPE_UNSPEC ? ep->registered != 0
                                                    : (ep->registered & (1u << satype)) != 0;
    }
    return false;
}

/* Build once per dialect in use and hand the message to every target, and a
 * copy to every promiscuous endpoint that is not one. sender is an index, or
 * UINT32_MAX for library-originated messages. */
static void emit(struct ipsecif_ctx *ctx, uint32_t sender, enum dest how, const struct out *o)
{
    static const uint8_t dialects[] = {IPSECIF_PFKEY_DIALECT_KAME, IPSECIF_PFKEY_DIALECT_LINUX};
    uint8_t *buf = ctx->pfkey_buf + BUILD_OFF;
    const size_t cap = IPSECIF_PFKEY_MSG_MAX - BUILD_OFF;
    size_t k;
    uint32_t i;

    if (ctx->port->pfkey_deliver == NULL) {
        return;
    }
    for (k = 0; k < IPSECIF_ARRAY_SIZE(dialects); k++) {
        uint8_t d = dialects[k];
        size_t len = 0;

        for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
            const struct ipsecif_pfkey_ep *ep = &ctx->pfkey_eps[i];
            bool target;

            if (!ep->in_use || ep->dialect != d) {
                continue;
            }
            target = is_target(ep, i, sender, how, o->satype);
            if (!target && !ep->promisc) {
                continue;
            }
            if (len == 0) {
                len = build(ctx, d, o, buf, cap);
                if (len == 0) {
                    /* Too large for IPSECIF_PFKEY_MSG_MAX: the header alone says so. */
                    struct out e = *o;

                    e.body = B_HDR;
                    e.err = e_nobufs(d);
                    len = build(ctx, d, &e, buf, cap);
                }
            }
            if (target) {
                ctx->port->pfkey_deliver(ctx->user, i + 1, buf, len);
            } else {
                promisc_copy(ctx, i + 1, d, buf, len);
            }
        }
    }
    if (o->keys != NULL) {
        /* Keys do not outlive the message in the context. */
        ipsecif_wipe(ctx->pfkey_buf, IPSECIF_PFKEY_MSG_MAX);
    }
}

static void reply_err(struct ipsecif_ctx *ctx, uint32_t sender, const struct pmsg *m, uint8_t err)
{
    struct out o;

    ctx->pfkey_stats.in_errors++;
    memset(&o, 0, sizeof(o));
    o.type = m->type;
    o.err = err;
    o.satype = m->satype;
    o.seq = m->seq;
    o.pid = m->pid;
    o.body = B_HDR;
    emit(ctx, sender, TO_ONE, &o);
}

static void out_init(struct out *o, const struct pmsg *m, enum body body)
{
    memset(o, 0, sizeof(*o));
    o->type = m->type;
    o->satype = m->satype;
    o->seq = m->seq;
    o->pid = m->pid;
    o->body = body;
}

/* GET and DUMP replies carry the keys (RFC 2367 3.1.5, 3.1.11); broadcasts
 * of ADD and UPDATE do not, as in KAME. */
static void keys_of(struct ipsecif_ctx *ctx, struct out *o, const struct ipsecif_sa_info *si)
{
#if IPSECIF_SA_KEEP_KEYS
    o->keys = ipsecif_sadb_lookup_spi(ctx, si->params.proto, &si->params.dst, si->params.spi);
#else
    (void)ctx;
    (void)si;
    o->keys = NULL;
#endif
}

/* ---- Handlers: each returns 0 (it answered) or an errno to answer with ---- */

struct req {
    struct ipsecif_ctx *ctx;
    uint32_t sender; /* endpoint index */
    uint8_t d;
    const struct pmsg *m;
    uint64_t now;
};

static uint8_t sa_proto(uint8_t satype, uint8_t d, uint8_t *proto)
{
    switch (satype) {
    case IPSECIF_SADB_SATYPE_ESP:
        *proto = IPSECIF_IPPROTO_ESP;
        return 0;
    case IPSECIF_SADB_SATYPE_AH:
        *proto = IPSECIF_IPPROTO_AH;
        return 0;
    case IPSECIF_SADB_X_SATYPE_IPCOMP:
        return e_opnotsupp(d);
    default:
        return IPSECIF_PFKEY_EINVAL;
    }
}

static uint8_t src_dst(const struct req *r, struct paddr *src, struct paddr *dst)
{
    const struct pmsg *m = r->m;

    if (!has(m, IPSECIF_SADB_EXT_ADDRESS_SRC) || !has(m, IPSECIF_SADB_EXT_ADDRESS_DST)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* Both were checked by parse(). */
    (void)addr_parse(r->d, ext(m, IPSECIF_SADB_EXT_ADDRESS_SRC),
                     m->elen[IPSECIF_SADB_EXT_ADDRESS_SRC], src);
    (void)addr_parse(r->d, ext(m, IPSECIF_SADB_EXT_ADDRESS_DST),
                     m->elen[IPSECIF_SADB_EXT_ADDRESS_DST], dst);
    if (src->a.family != dst->a.family) {
        return IPSECIF_PFKEY_EINVAL;
    }
    return 0;
}

static uint8_t key_get(const struct pmsg *m, unsigned t, const uint8_t **key, size_t *len)
{
    const uint8_t *e = ext(m, t);

    *key = NULL;
    *len = 0;
    if (e == NULL) {
        return 0;
    }
    *len = h16(e + 4) / 8u;
    *key = e + 8;
    return 0;
}

static uint8_t lifetime_get(const struct pmsg *m, unsigned t, struct ipsecif_lifetime *lt)
{
    const uint8_t *e = ext(m, t);

    memset(lt, 0, sizeof(*lt));
    if (e != NULL) {
        lt->allocations = h32(e + 4);
        lt->bytes = h64(e + 8);
        lt->addtime = h64(e + 16);
        lt->usetime = h64(e + 24);
    }
    return 0;
}

/* UPDATE and ADD: everything an SA needs, checked against the algorithm. */
static uint8_t sa_params(const struct req *r, struct ipsecif_sa_params *p, struct paddr *src,
                         struct paddr *dst)
{
    const struct pmsg *m = r->m;
    const uint8_t *sa = ext(m, IPSECIF_SADB_EXT_SA);
    const uint8_t *e;
    const struct walg *wa;
    const struct walg *we;
    size_t n;
    uint8_t rc;

    memset(p, 0, sizeof(*p));
    rc = sa_proto(m->satype, r->d, &p->proto);
    if (rc != 0) {
        return rc;
    }
    if (sa == NULL) {
        return IPSECIF_PFKEY_EINVAL;
    }
    rc = src_dst(r, src, dst);
    if (rc != 0) {
        return rc;
    }
    if (p->proto != IPSECIF_IPPROTO_ESP) {
        return e_opnotsupp(r->d);
    }
    p->spi = ipsecif_load32(sa + 4);
    p->src = src->a;
    p->dst = dst->a;
    p->seq = m->seq;
    p->replay_window = is_linux(r->d) ? sa[8] : 8u * sa[8];
    e = ext(m, IPSECIF_SADB_X_EXT_SA_REPLAY);
    if (e != NULL) {
        p->replay_window = h32(e + 4);
    }
    we = etable(r->d, &n);
    we = by_wire(we, n, sa[11]);
    wa = atable(r->d, &n);
    wa = by_wire(wa, n, sa[10]);
    if (we == NULL || (wa == NULL && sa[10] != IPSECIF_SADB_AALG_NONE)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    p->ealg = we->lib;
    p->aalg = wa != NULL ? wa->lib : IPSECIF_AALG_NONE;
    /* A key extension must come exactly when the algorithm takes a key. */
    if ((p->aalg != IPSECIF_AALG_NONE) != has(m, IPSECIF_SADB_EXT_KEY_AUTH)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (p->ealg != IPSECIF_EALG_NULL && !has(m, IPSECIF_SADB_EXT_KEY_ENCRYPT)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    (void)key_get(m, IPSECIF_SADB_EXT_KEY_ENCRYPT, &p->ekey, &p->ekey_len);
    (void)key_get(m, IPSECIF_SADB_EXT_KEY_AUTH, &p->akey, &p->akey_len);
    if (!ipsecif_ealg_keylen_ok(p->ealg, p->ekey_len) ||
        !ipsecif_aalg_keylen_ok(p->aalg, p->akey_len)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* AEAD carries its own integrity check. */
    if (ipsecif_ealg_find(p->ealg)->aead != 0 && p->aalg != IPSECIF_AALG_NONE) {
        return IPSECIF_PFKEY_EINVAL;
    }
    e = ext(m, IPSECIF_SADB_X_EXT_SA2);
    if (e != NULL) {
        if (e[4] > IPSECIF_MODE_TUNNEL) {
            return IPSECIF_PFKEY_EINVAL;
        }
        p->mode = e[4];
        p->reqid = h32(e + 12);
    }
    (void)lifetime_get(m, IPSECIF_SADB_EXT_LIFETIME_HARD, &p->hard);
    (void)lifetime_get(m, IPSECIF_SADB_EXT_LIFETIME_SOFT, &p->soft);
    e = ext(m, IPSECIF_SADB_X_EXT_NAT_T_TYPE);
    if (e != NULL) {
        const uint8_t *sp = ext(m, IPSECIF_SADB_X_EXT_NAT_T_SPORT);
        const uint8_t *dp = ext(m, IPSECIF_SADB_X_EXT_NAT_T_DPORT);

        if (e[4] != UDP_ENCAP_ESPINUDP || sp == NULL || dp == NULL) {
            return IPSECIF_PFKEY_EINVAL;
        }
        p->natt_sport = ipsecif_load16(sp + 4);
        p->natt_dport = ipsecif_load16(dp + 4);
        if (p->natt_sport == 0 || p->natt_dport == 0) {
            return IPSECIF_PFKEY_EINVAL;
        }
    }
    return 0;
}

static uint8_t do_add_update(const struct req *r)
{
    struct ipsecif_sa_params p;
    struct ipsecif_sa_info info;
    struct paddr src, dst;
    struct out o;
    uint8_t rc;
    int err;

    rc = sa_params(r, &p, &src, &dst);
    if (rc != 0) {
        return rc;
    }
    if (r->m->type == IPSECIF_SADB_ADD) {
        err = ipsecif_sa_add(r->ctx, &p, r->now);
    } else {
        err = ipsecif_sa_update(r->ctx, &p, r->now);
        if (err == IPSECIF_ERR_NOENT) {
            return IPSECIF_PFKEY_ESRCH;
        }
    }
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->d, err);
    }
    if (ipsecif_sa_get(r->ctx, p.proto, NULL, &p.dst, p.spi, &info) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    out_init(&o, r->m, B_SA);
    o.sa = &info;
    emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

static uint8_t do_getspi(const struct req *r)
{
    const struct pmsg *m = r->m;
    const uint8_t *e;
    struct ipsecif_sa_info info;
    struct paddr src, dst;
    uint32_t lo = SPI_DEFAULT_MIN, hi = SPI_DEFAULT_MAX, spi = 0, reqid = 0;
    uint8_t proto = 0, mode = IPSECIF_MODE_ANY;
    struct out o;
    uint8_t rc;
    int err;

    rc = sa_proto(m->satype, r->d, &proto);
    if (rc == 0) {
        rc = src_dst(r, &src, &dst);
    }
    if (rc != 0) {
        return rc;
    }
    e = ext(m, IPSECIF_SADB_EXT_SPIRANGE);
    if (e != NULL) {
        lo = h32(e + 4);
        hi = h32(e + 8);
    }
    e = ext(m, IPSECIF_SADB_X_EXT_SA2);
    if (e != NULL) {
        if (e[4] > IPSECIF_MODE_TUNNEL) {
            return IPSECIF_PFKEY_EINVAL;
        }
        mode = e[4];
        reqid = h32(e + 12);
    }
    err =
        ipsecif_sa_getspi(r->ctx, proto, &src.a, &dst.a, mode, reqid, lo, hi, m->seq, r->now, &spi);
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->d, err);
    }
    if (ipsecif_sa_get(r->ctx, proto, NULL, &dst.a, spi, &info) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    out_init(&o, m, B_SA);
    o.sa = &info;
    emit(r->ctx, r->sender, TO_ONE, &o);
    return 0;
}

static uint8_t do_get(const struct req *r)
{
    const struct pmsg *m = r->m;
    struct ipsecif_sa_info info;
    struct paddr src, dst;
    uint8_t proto = 0;
    struct out o;
    uint8_t rc;

    rc = sa_proto(m->satype, r->d, &proto);
    if (rc == 0) {
        rc = src_dst(r, &src, &dst);
    }
    if (rc == 0 && !has(m, IPSECIF_SADB_EXT_SA)) {
        rc = IPSECIF_PFKEY_EINVAL;
    }
    if (rc != 0) {
        return rc;
    }
    if (ipsecif_sa_get(r->ctx, proto, &src.a, &dst.a,
                       ipsecif_load32(ext(m, IPSECIF_SADB_EXT_SA) + 4), &info) != IPSECIF_OK) {
        /* What each kernel answers for a missing SA. */
        return is_linux(r->d) ? IPSECIF_PFKEY_ESRCH : IPSECIF_PFKEY_ENOENT;
    }
    out_init(&o, m, B_SA);
    o.sa = &info;
    keys_of(r->ctx, &o, &info);
    emit(r->ctx, r->sender, TO_ONE, &o);
    return 0;
}

/* DELETE without an SA extension deletes every SA of the type between the
 * two addresses (KAME); the walk only collects, deletion follows it. */
struct collect {
    uint8_t proto;
    const struct ipsecif_addr *src;
    const struct ipsecif_addr *dst;
    uint32_t spi[16];
    unsigned n;
};

static int collect_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct collect *c = arg;

    if (sa->params.proto == c->proto && ipsecif_addr_eq(&sa->params.src, c->src) &&
        ipsecif_addr_eq(&sa->params.dst, c->dst)) {
        c->spi[c->n++] = sa->params.spi;
        if (c->n == IPSECIF_ARRAY_SIZE(c->spi)) {
            return 1;
        }
    }
    return 0;
}

static uint8_t do_delete(const struct req *r)
{
    const struct pmsg *m = r->m;
    struct paddr src, dst;
    uint8_t proto = 0;
    struct out o;
    uint8_t rc;
    unsigned i;

    rc = sa_proto(m->satype, r->d, &proto);
    if (rc == 0) {
        rc = src_dst(r, &src, &dst);
    }
    if (rc != 0) {
        return rc;
    }
    out_init(&o, m, B_DELETE);
    o.src = &src;
    o.dst = &dst;
    if (has(m, IPSECIF_SADB_EXT_SA)) {
        o.has_spi = true;
        o.spi = ipsecif_load32(ext(m, IPSECIF_SADB_EXT_SA) + 4);
        if (ipsecif_sa_delete(r->ctx, proto, &src.a, &dst.a, o.spi) != IPSECIF_OK) {
            return IPSECIF_PFKEY_ESRCH;
        }
    } else {
        struct collect c;

        do {
            memset(&c, 0, sizeof(c));
            c.proto = proto;
            c.src = &src.a;
            c.dst = &dst.a;
            (void)ipsecif_sa_walk(r->ctx, proto, collect_fn, &c);
            for (i = 0; i < c.n; i++) {
                (void)ipsecif_sa_delete(r->ctx, proto, &src.a, &dst.a, c.spi[i]);
            }
        } while (c.n == IPSECIF_ARRAY_SIZE(c.spi));
    }
    emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

static uint8_t do_register(const struct req *r)
{
    const struct pmsg *m = r->m;
    struct ipsecif_pfkey_ep *ep = &r->ctx->pfkey_eps[r->sender];
    struct out o;

    if (m->satype != IPSECIF_SADB_SATYPE_UNSPEC) {
        ep->registered |= 1u << m->satype;
    }
    out_init(&o, m, B_REGISTER);
    emit(r->ctx, r->sender, TO_REGISTERED, &o);
    return 0;
}

static uint8_t do_flush(const struct req *r)
{
    const struct pmsg *m = r->m;
    struct out o;

    if (m->satype == IPSECIF_SADB_SATYPE_UNSPEC) {
        (void)ipsecif_sa_flush(r->ctx, 0);
    } else if (m->satype == IPSECIF_SADB_SATYPE_ESP) {
        (void)ipsecif_sa_flush(r->ctx, IPSECIF_IPPROTO_ESP);
    }
    out_init(&o, m, B_HDR);
    emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

struct dump {
    const struct req *r;
    uint8_t proto;
    uint32_t left; /* entries still to send; the last goes with seq 0 */
};

static int count_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct dump *dp = arg;

    (void)sa;
    dp->left++;
    return 0;
}

static int dump_sa_fn(void *arg, const struct ipsecif_sa_info *sa)
{
    struct dump *dp = arg;
    struct out o;

    if (dp->left == 0) {
        return 1;
    }
    dp->left--;
    out_init(&o, dp->r->m, B_SA);
    o.satype = satype_of(sa->params.proto);
    o.seq = dp->left;
    o.sa = sa;
    keys_of(dp->r->ctx, &o, sa);
    emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
    return 0;
}

static uint8_t do_dump(const struct req *r)
{
    struct dump dp;

    memset(&dp, 0, sizeof(dp));
    dp.r = r;
    if (r->m->satype == IPSECIF_SADB_SATYPE_ESP) {
        dp.proto = IPSECIF_IPPROTO_ESP;
    } else if (r->m->satype != IPSECIF_SADB_SATYPE_UNSPEC) {
        return IPSECIF_PFKEY_ENOENT; /* the SADB holds no other type */
    }
    (void)ipsecif_sa_walk(r->ctx, dp.proto, count_fn, &dp);
    if (dp.left == 0) {
        return IPSECIF_PFKEY_ENOENT;
    }
    (void)ipsecif_sa_walk(r->ctx, dp.proto, dump_sa_fn, &dp);
    return 0;
}

static uint8_t do_promisc(const struct req *r)
{
    const struct pmsg *m = r->m;
    struct out o;

    /* A longer X_PROMISC (KAME: a message to relay) is not supported. */
    if (m->len != HDR_LEN || m->satype > 1) {
        return IPSECIF_PFKEY_EINVAL;
    }
    r->ctx->pfkey_eps[r->sender].promisc = m->satype == 1;
    out_init(&o, m, B_HDR);
    emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

static uint8_t do_acquire(const struct req *r)
{
    struct out o;

    /* From key management, an ACQUIRE with errno set reports a failed
     * negotiation (RFC 2367 section 3.1.6); it is noted and answered. */
    if (r->m->err == 0) {
        return IPSECIF_PFKEY_EINVAL;
    }
    out_init(&o, r->m, B_HDR);
    o.err = r->m->err;
    emit(r->ctx, r->sender, TO_ONE, &o);
    return 0;
}

/* ---- SPD messages ---- */

static uint8_t requests_parse(uint8_t d, const uint8_t *p, size_t len, struct ipsecif_policy *pol)
{
    size_t h = is_linux(d) ? REQ_HDR_LINUX : REQ_HDR_KAME;

    while (len > 0) {
        struct ipsecif_ipsecreq *q;
        size_t rl, used, used2;
        uint16_t port;

        if (len < h) {
            return IPSECIF_PFKEY_EINVAL;
        }
        rl = h16(p);
        if (rl < h || rl > len || rl % 8 != 0 || pol->nreq >= IPSECIF_MAX_REQUESTS) {
            return IPSECIF_PFKEY_EINVAL;
        }
        q = &pol->req[pol->nreq++];
        q->proto = (uint8_t)h16(p + 2);
        if (h16(p + 2) > 255) {
            return IPSECIF_PFKEY_EINVAL;
        }
        q->mode = p[4];
        q->level = p[5];
        q->reqid = is_linux(d) ? h32(p + 8) : h16(p + 6);
        if (rl > h) {
            if (sockaddr_parse(d, p + h, rl - h, &q->tun_src, &port, &used) != 0 ||
                sockaddr_parse(d, p + h + used, rl - h - used, &q->tun_dst, &port, &used2) != 0) {
                return IPSECIF_PFKEY_EINVAL;
            }
        }
        p += rl;
        len -= rl;
    }
    return 0;
}

static uint8_t policy_parse(const struct req *r, struct ipsecif_policy *pol, bool need_sel)
{
    const struct pmsg *m = r->m;
    const uint8_t *e = ext(m, IPSECIF_SADB_X_EXT_POLICY);
    struct paddr src, dst;
    uint16_t type;
    uint8_t rc;

    memset(pol, 0, sizeof(*pol));
    if (e == NULL) {
        return IPSECIF_PFKEY_EINVAL;
    }
    type = h16(e + 4);
    pol->dir = e[6];
    pol->id = h32(e + 8);
    pol->priority = is_linux(r->d) ? h32(e + 12) : IPSECIF_PRIORITY_DEFAULT;
    if (pol->dir != IPSECIF_DIR_IN && pol->dir != IPSECIF_DIR_OUT &&
        !(is_linux(r->d) && pol->dir == IPSECIF_DIR_FWD)) {
        if (need_sel) {
            return IPSECIF_PFKEY_EINVAL;
        }
    }
    if (type == IPSEC_POLICY_IPSEC) {
        pol->action = IPSECIF_ACTION_IPSEC;
    } else if (type == IPSEC_POLICY_NONE) {
        pol->action = IPSECIF_ACTION_NONE;
    } else if (type == IPSEC_POLICY_DISCARD) {
        pol->action = IPSECIF_ACTION_DISCARD;
    } else if (need_sel) {
        /* entrust and bypass are per-socket only. */
        return IPSECIF_PFKEY_EINVAL;
    }
    rc = requests_parse(r->d, e + POLICY_HDR, m->elen[IPSECIF_SADB_X_EXT_POLICY] - POLICY_HDR, pol);
    if (rc != 0 || !need_sel) {
        return rc;
    }
    rc = src_dst(r, &src, &dst);
    if (rc != 0) {
        return rc;
    }
    if (src.proto != dst.proto) {
        return IPSECIF_PFKEY_EINVAL;
    }
    pol->sel.src = src.a;
    pol->sel.dst = dst.a;
    pol->sel.src_plen = src.plen;
    pol->sel.dst_plen = dst.plen;
    pol->sel.ulproto = src.proto;
    pol->sel.sport = sel_port(src.proto, src.port);
    pol->sel.dport = sel_port(src.proto, dst.port);
    return 0;
}

static void policy_reply(const struct req *r, const struct ipsecif_policy *pol, enum dest how)
{
    struct out o;

    out_init(&o, r->m, B_POLICY);
    o.pol = pol;
    emit(r->ctx, r->sender, how, &o);
}

static uint8_t do_spdadd(const struct req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    uint32_t id = 0;
    uint8_t rc;
    int err;

    rc = policy_parse(r, &pol, true);
    if (rc != 0) {
        return rc;
    }
    if (r->m->type == IPSECIF_SADB_X_SPDUPDATE) {
        err = ipsecif_spd_update(r->ctx, &pol, r->now, &id);
    } else {
        err = ipsecif_spd_add(r->ctx, &pol, r->now, &id);
    }
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->d, err);
    }
    if (ipsecif_spd_get(r->ctx, id, &got) != IPSECIF_OK) {
        return IPSECIF_PFKEY_ENOMEM;
    }
    policy_reply(r, &got, TO_ALL);
    return 0;
}

static uint8_t do_spddelete(const struct req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    struct ipsecif_sp *sp;
    uint8_t rc;
    int err;

    rc = policy_parse(r, &pol, true);
    if (rc != 0) {
        return rc;
    }
    sp = ipsecif_spd_find_exact(r->ctx, &pol.sel, pol.dir);
    if (sp == NULL) {
        return IPSECIF_PFKEY_ENOENT;
    }
    got = sp->pol;
    err = ipsecif_spd_delete_id(r->ctx, got.id);
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->d, err);
    }
    policy_reply(r, &got, TO_ALL);
    return 0;
}

/* X_SPDDELETE2 and X_SPDGET name the policy by id. */
static uint8_t do_spd_byid(const struct req *r)
{
    struct ipsecif_policy pol;
    struct ipsecif_policy got;
    uint32_t id;
    uint8_t dir;
    uint8_t rc;
    int err;

    rc = policy_parse(r, &pol, false);
    if (rc != 0) {
        return rc;
    }
    id = lib_policy_id(r->d, pol.id, &dir);
    if (id == 0 && pol.id != 0) {
        /* Linux: a per-socket id names nothing these messages may touch. */
        return IPSECIF_PFKEY_EINVAL;
    }
    if (ipsecif_spd_get(r->ctx, id, &got) != IPSECIF_OK ||
        (dir != IPSECIF_DIR_ANY && got.dir != dir)) {
        return IPSECIF_PFKEY_ENOENT;
    }
    if (r->m->type == IPSECIF_SADB_X_SPDGET) {
        policy_reply(r, &got, TO_ONE);
        return 0;
    }
    err = ipsecif_spd_delete_id(r->ctx, got.id);
    if (err != IPSECIF_OK) {
        return ipsecif_pfkey_errno(r->d, err);
    }
    policy_reply(r, &got, TO_ALL);
    return 0;
}

static int dump_sp_fn(void *arg, const struct ipsecif_policy *pol)
{
    struct dump *dp = arg;
    struct out o;

    if (dp->left == 0) {
        return 1;
    }
    dp->left--;
    out_init(&o, dp->r->m, B_POLICY);
    o.seq = dp->left;
    o.pol = pol;
    emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
    return 0;
}

/* Linux lists per-socket policies in X_SPDDUMP too (KAME does not): after the SPD. */
static uint32_t sock_dirs(const struct ipsecif_ctx *ctx, uint8_t d)
{
    uint32_t i, n = 0;

    for (i = 0; is_linux(d) && i < ctx->cfg.max_socket_policies; i++) {
        const struct ipsecif_sockpol *e = &ctx->socks[i];

        n += e->in_use && e->pol[0].type != IPSECIF_SOCKPOL_ENTRUST;
        n += e->in_use && e->pol[1].type != IPSECIF_SOCKPOL_ENTRUST;
    }
    return n;
}

static void dump_socks(struct dump *dp)
{
    const struct ipsecif_ctx *ctx = dp->r->ctx;
    uint32_t i;
    uint8_t k;

    for (i = 0; i < ctx->cfg.max_socket_policies && dp->left > 0; i++) {
        for (k = 0; k < 2 && ctx->socks[i].in_use && dp->left > 0; k++) {
            struct out o;

            if (ctx->socks[i].pol[k].type == IPSECIF_SOCKPOL_ENTRUST) {
                continue;
            }
            dp->left--;
            out_init(&o, dp->r->m, B_POLICY);
            o.seq = dp->left;
            o.sock = &ctx->socks[i];
            o.sock_dir_index = k;
            o.sock_slot = i + 1;
            emit(dp->r->ctx, dp->r->sender, TO_ONE, &o);
        }
    }
}

static uint8_t do_spddump(const struct req *r)
{
    struct dump dp;

    memset(&dp, 0, sizeof(dp));
    dp.r = r;
    dp.left = (uint32_t)ipsecif_spd_count(r->ctx) + sock_dirs(r->ctx, r->d);
    if (dp.left == 0) {
        return IPSECIF_PFKEY_ENOENT;
    }
    (void)ipsecif_spd_walk(r->ctx, dump_sp_fn, &dp);
    if (is_linux(r->d)) {
        dump_socks(&dp);
    }
    return 0;
}

static uint8_t do_spdflush(const struct req *r)
{
    struct out o;

    (void)ipsecif_spd_flush(r->ctx);
    out_init(&o, r->m, B_HDR);
    emit(r->ctx, r->sender, TO_ALL, &o);
    return 0;
}

static uint8_t dispatch(const struct req *r)
{
    switch (r->m->type) {
    case IPSECIF_SADB_GETSPI:
        return do_getspi(r);
    case IPSECIF_SADB_UPDATE:
    case IPSECIF_SADB_ADD:
        return do_add_update(r);
    case IPSECIF_SADB_DELETE:
        return do_delete(r);
    case IPSECIF_SADB_GET:
        return do_get(r);
    case IPSECIF_SADB_ACQUIRE:
        return do_acquire(r);
    case IPSECIF_SADB_REGISTER:
        return do_register(r);
    case IPSECIF_SADB_FLUSH:
        return do_flush(r);
    case IPSECIF_SADB_DUMP:
        return do_dump(r);
    case IPSECIF_SADB_X_PROMISC:
        return do_promisc(r);
    case IPSECIF_SADB_X_SPDUPDATE:
    case IPSECIF_SADB_X_SPDADD:
    case IPSECIF_SADB_X_SPDSETIDX:
        return do_spdadd(r);
    case IPSECIF_SADB_X_SPDDELETE:
        return do_spddelete(r);
    case IPSECIF_SADB_X_SPDGET:
    case IPSECIF_SADB_X_SPDDELETE2:
        return do_spd_byid(r);
    case IPSECIF_SADB_X_SPDDUMP:
        return do_spddump(r);
    case IPSECIF_SADB_X_SPDFLUSH:
        return do_spdflush(r);
    default:
        /* EXPIRE, X_PCHANGE, X_SPDACQUIRE, X_SPDEXPIRE and
         * X_NAT_T_NEW_MAPPING only travel from the kernel to key management. */
        return IPSECIF_PFKEY_EINVAL;
    }
}

/* Promiscuous endpoints of the sender's dialect see what it sent. */
static void copy_request(struct ipsecif_ctx *ctx, uint32_t sender, uint8_t d, const uint8_t *msg,
                         size_t len)
{
    uint32_t i;

    if (ctx->port->pfkey_deliver == NULL) {
        return;
    }
    for (i = 0; i < ctx->cfg.max_pfkey_endpoints; i++) {
        const struct ipsecif_pfkey_ep *ep = &ctx->pfkey_eps[i];

        if (i == sender || !ep->in_use || !ep->promisc || ep->dialect != d) {
            continue;
        }
        if (is_linux(d)) {
            ctx->port->pfkey_deliver(ctx->user, i + 1, msg, len);
        } else if (len <= IPSECIF_PFKEY_MSG_MAX - BUILD_OFF) {
            memcpy(ctx->pfkey_buf + BUILD_OFF, msg, len);
            promisc_copy(ctx, i + 1, d, ctx->pfkey_buf + BUILD_OFF, len);
            /* An ADD or UPDATE carries keys. */
            ipsecif_wipe(ctx->pfkey_buf, BUILD_OFF + len);
        }
    }
}

/* ---- Per-socket policies: the setsockopt bytes, and X_SOCKPOLICY ---- */

int ipsecif_pfkey_sockpolicy_parse(uint8_t dialect, const uint8_t *buf, size_t len,
                                   struct ipsecif_sockpolicy *out)
{
    struct ipsecif_policy tmp;
    uint16_t type;

    if (buf == NULL || out == NULL ||
        (dialect != IPSECIF_PFKEY_DIALECT_KAME && dialect != IPSECIF_PFKEY_DIALECT_LINUX)) {
        return IPSECIF_ERR_ARG;
    }
    memset(out, 0, sizeof(*out));
    /* As KAME's key_msg2sp(): the option is exactly one sadb_x_policy. */
    if (len < POLICY_HDR || (size_t)h16(buf) * 8u != len) {
        return IPSECIF_ERR_MALFORMED;
    }
    memset(&tmp, 0, sizeof(tmp));
    if (requests_parse(dialect, buf + POLICY_HDR, len - POLICY_HDR, &tmp) != 0) {
        return IPSECIF_ERR_MALFORMED;
    }
    type = h16(buf + 4);
    out->dir = buf[6];
    if (type == IPSEC_POLICY_ENTRUST) {
        out->type = IPSECIF_SOCKPOL_ENTRUST;
    } else if (type == IPSEC_POLICY_BYPASS) {
        out->type = IPSECIF_SOCKPOL_BYPASS;
    } else if (type == IPSEC_POLICY_IPSEC) {
        out->type = IPSECIF_SOCKPOL_IPSEC;
    } else {
        /* discard and none are SPD actions, not socket policies (KAME). */
        return IPSECIF_ERR_ARG;
    }
    if ((out->dir != IPSECIF_DIR_IN && out->dir != IPSECIF_DIR_OUT) ||
        (out->type == IPSECIF_SOCKPOL_IPSEC) != (tmp.nreq > 0)) {
        return IPSECIF_ERR_ARG;
    }
    out->nreq = tmp.nreq;
    memcpy(out->req, tmp.req, sizeof(out->req));
    return IPSECIF_OK;
}

size_t ipsecif_pfkey_sockpolicy_build(uint8_t dialect, const struct ipsecif_sockpolicy *sp,
                                      uint8_t *buf, size_t cap)
{
    static const uint16_t types[] = {IPSEC_POLICY_ENTRUST, IPSEC_POLICY_BYPASS, IPSEC_POLICY_IPSEC};
    size_t len;

    if (sp == NULL || buf == NULL || sp->nreq > IPSECIF_MAX_REQUESTS ||
        sp->type >= IPSECIF_ARRAY_SIZE(types) ||
        (dialect != IPSECIF_PFKEY_DIALECT_KAME && dialect != IPSECIF_PFKEY_DIALECT_LINUX)) {
        return 0;
    }
    len = POLICY_HDR + requests_size(dialect, sp->req, sp->nreq);
    if (len > cap) {
        return 0;
    }
    memset(buf, 0, len);
    s16(buf, (uint16_t)(len / 8));
    s16(buf + 2, IPSECIF_SADB_X_EXT_POLICY);
    s16(buf + 4, types[sp->type]);
    buf[6] = sp->dir;
    requests_put(dialect, buf + POLICY_HDR, sp->req, sp->nreq);
    return len;
}

static uint8_t sockpol_errno(uint8_t d, int rc)
{
    return rc == IPSECIF_ERR_FULL ? e_nobufs(d) : IPSECIF_PFKEY_EINVAL;
}

/* The socket block of an X_SOCKPOLICY message; false if it is malformed. */
static bool sock_parse(const uint8_t *b, uint32_t owner, struct ipsecif_sock *s)
{
    memset(s, 0, sizeof(*s));
    s->owner = owner;
    s->handle = h32(b);
    s->proto = b[4];
    s->local.family = b[5];
    s->lport = (uint16_t)((b[6] << 8) | b[7]);
    if (s->local.family != IPSECIF_AF_INET && s->local.family != IPSECIF_AF_INET6) {
        return false;
    }
    memcpy(s->local.bytes, b + 8, ipsecif_addr_len(s->local.family));
    return true;
}

/* Answer to the sender alone: the header, and for GET the socket and its policy. */
static void sockpol_reply(struct ipsecif_ctx *ctx, uint32_t ep_id, uint8_t d, const uint8_t *msg,
                          uint8_t err, const struct ipsecif_sockpolicy *got)
{
    uint8_t *b = ctx->pfkey_buf;
    size_t len = HDR_LEN;

    memcpy(b, msg, HDR_LEN);
    b[2] = err;
    if (err == 0 && got != NULL) {
        memcpy(b + HDR_LEN, msg + HDR_LEN, IPSECIF_SOCKPOL_SOCK_LEN);
        len = SOCK_OFF + ipsecif_pfkey_sockpolicy_build(d, got, b + SOCK_OFF,
                                                        IPSECIF_PFKEY_MSG_MAX - SOCK_OFF);
    }
    s16(b + 4, (uint16_t)(len / 8));
    if (err != 0) {
        ctx->pfkey_stats.in_errors++;
    }
    ctx->port->pfkey_deliver(ctx->user, ep_id, b, len);
}

static void sockpol_msg(struct ipsecif_ctx *ctx, uint32_t ep_id, uint8_t d, const uint8_t *msg,
                        size_t len)
{
    struct ipsecif_sockpolicy sp;
    struct ipsecif_sock s;
    bool get = false;
    uint8_t err = IPSECIF_PFKEY_EINVAL;
    int rc;

    if (msg[0] != IPSECIF_PF_KEY_V2 || (size_t)h16(msg + 4) * 8u != len || len < SOCK_OFF ||
        !sock_parse(msg + HDR_LEN, ep_id, &s)) {
        goto out;
    }
    switch (msg[3]) {
    case IPSECIF_SOCKPOL_OP_SET:
        rc = ipsecif_pfkey_sockpolicy_parse(d, msg + SOCK_OFF, len - SOCK_OFF, &sp);
        if (rc == IPSECIF_OK) {
            rc = ipsecif_spd_sock_set(ctx, &s, &sp);
        }
        err = rc == IPSECIF_OK ? 0 : sockpol_errno(d, rc);
        ctx->pfkey_stats.sockpol_set += rc == IPSECIF_OK;
        break;
    case IPSECIF_SOCKPOL_OP_GET:
        /* As getsockopt: a policy header names the direction asked for. */
        if (len - SOCK_OFF >= POLICY_HDR &&
            ipsecif_spd_sock_get(ctx, ep_id, s.handle, msg[SOCK_OFF + 6], &sp) == IPSECIF_OK) {
            err = 0;
            get = true;
        }
        break;
    case IPSECIF_SOCKPOL_OP_BIND:
        rc = ipsecif_spd_sock_bind(ctx, &s);
        err = rc == IPSECIF_OK || rc == IPSECIF_ERR_NOENT ? 0 : IPSECIF_PFKEY_EINVAL;
        break;
    case IPSECIF_SOCKPOL_OP_CLOSE:
        (void)ipsecif_spd_sock_close(ctx, ep_id, s.handle);
        err = 0;
        break;
    default:
        break;
    }
out:
    sockpol_reply(ctx, ep_id, d, msg, err, get ? &sp : NULL);
}

/* A datagram that is no message: answer with a bare header that says so. */
static void refuse(struct ipsecif_ctx *ctx, uint32_t ep_id, uint8_t d, const uint8_t *head,
                   size_t n)
{
    uint8_t *b = ctx->pfkey_buf;

    memset(b, 0, HDR_LEN);
    if (head != NULL) {
        memcpy(b, head, n < HDR_LEN ? n : HDR_LEN);
    }
    b[0] = IPSECIF_PF_KEY_V2;
    b[2] = e_msgsize(d);
    s16(b + 4, HDR_LEN / 8);
    b[6] = 0;
    b[7] = 0;
    ctx->port->pfkey_deliver(ctx->user, ep_id, b, HDR_LEN);
}

int ipsecif_pfkey_oversize(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *head,
                           size_t head_len)
{
    struct ipsecif_pfkey_ep *ep;

    if (ctx == NULL || (head == NULL && head_len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    ctx->pfkey_stats.in_long++;
    refuse(ctx, ep_id, ep->dialect, head, head_len);
    return IPSECIF_OK;
}

const struct ipsecif_pfkey_stats *ipsecif_pfkey_stats_get(const struct ipsecif_ctx *ctx)
{
    return ctx == NULL ? NULL : &ctx->pfkey_stats;
}

int ipsecif_pfkey_send(struct ipsecif_ctx *ctx, uint32_t ep_id, const uint8_t *msg, size_t len,
                       uint64_t now)
{
    struct ipsecif_pfkey_ep *ep;
    struct pmsg m;
    struct req r;
    uint8_t err;

    if (ctx == NULL || (msg == NULL && len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    ep = ep_get(ctx, ep_id);
    if (ep == NULL) {
        return IPSECIF_ERR_NOENT;
    }
    if (len < HDR_LEN) {
        /* A kernel fails such a send with EMSGSIZE; a datagram transport answers. */
        ctx->pfkey_stats.in_short++;
        refuse(ctx, ep_id, ep->dialect, msg, len);
        return IPSECIF_ERR_MALFORMED;
    }
    ctx->pfkey_stats.in_msgs++;
    if (now > ctx->now) {
        ctx->now = now;
    }
    if (msg[1] == IPSECIF_SADB_X_SOCKPOLICY) {
        sockpol_msg(ctx, ep_id, ep->dialect, msg, len);
        return IPSECIF_OK;
    }
    r.ctx = ctx;
    r.sender = ep_id - 1;
    r.d = ep->dialect;
    r.m = &m;
    r.now = now;
    err = parse(ep->dialect, msg, len, &m);
    /* Only ACQUIRE may carry an errno from key management. */
    if (err == 0 && m.err != 0 && m.type != IPSECIF_SADB_ACQUIRE) {
        err = IPSECIF_PFKEY_EINVAL;
    }
    if (err == 0) {
        /* Only whole, well-formed messages are copied to promiscuous endpoints. */
        copy_request(ctx, r.sender, ep->dialect, msg, len);
        err = dispatch(&r);
    }
    if (err != 0) {
        reply_err(ctx, r.sender, &m, err);
    }
    return IPSECIF_OK;
}

/* ---- ACQUIRE and EXPIRE from the core ---- */

void ipsecif_pfkey_event(struct ipsecif_ctx *ctx, const struct ipsecif_km_event *ev)
{
    struct out o;

    if (ctx == NULL || ev == NULL || ctx->pfkey_eps == NULL) {
        return;
    }
    memset(&o, 0, sizeof(o));
    o.ev = ev;
    if (ev->type == IPSECIF_KM_ACQUIRE) {
        const struct ipsecif_policy *pol = &ev->acquire.policy;
        uint8_t proto = ev->acquire.req_index < pol->nreq ? pol->req[ev->acquire.req_index].proto
                                                          : IPSECIF_IPPROTO_ESP;

        o.type = IPSECIF_SADB_ACQUIRE;
        o.satype = satype_of(proto);
        o.seq = ++ctx->pfkey_seq;
        o.body = B_ACQUIRE;
    } else if (ev->type == IPSECIF_KM_EXPIRE) {
        o.type = IPSECIF_SADB_EXPIRE;
        o.satype = satype_of(ev->expire.sa.params.proto);
        o.seq = ev->expire.sa.params.seq;
        o.body = B_EXPIRE;
    } else {
        return;
    }
    emit(ctx, UINT32_MAX, TO_REGISTERED, &o);
}
