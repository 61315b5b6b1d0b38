/* PF_KEY input: the message header, the extensions and their structure
 * (RFC 2367 section 2), sockaddrs, addresses and ipsecrequest lists. */
#include "pfkey_priv.h"

#define MSG_MAX_TYPE 23u

/* One sockaddr at p with avail bytes; *used its size. */
static int sockaddr_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t avail,
                          struct ipsecif_addr *a, uint16_t *port, size_t *used)
{
    size_t fam;
    size_t need;

    if (avail < 2) {
        return IPSECIF_PFKEY_EINVAL;
    }
    fam = dl->sa_len ? p[1] : h16(p);
    if (fam == AF_INET_WIRE) {
        need = SIN_LEN;
    } else if (fam == dl->af_inet6) {
        need = SIN6_LEN;
    } else {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* sa_len, where there is one, must be exact. */
    if (avail < need || (dl->sa_len && p[0] != need)) {
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

static int addr_parse(const struct pfkey_dialect *dl, const uint8_t *e, size_t elen,
                      struct pfkey_addr *o)
{
    size_t used;
    int rc;

    memset(o, 0, sizeof(*o));
    rc = sockaddr_parse(dl, e + 8, elen - 8, &o->a, &o->port, &used);
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
static int ext_check(const struct pfkey_dialect *dl, unsigned t, const uint8_t *e, size_t elen)
{
    struct pfkey_addr a;

    if (elen < ext_min(t)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    if (is_addr_ext(t)) {
        return addr_parse(dl, e, elen, &a);
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

/* The header fields, and whether they make a message of len bytes. */
static uint8_t hdr_parse(const uint8_t *p, size_t len, struct pfkey_msg *m)
{
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
    return 0;
}

/* RFC 2367 section 2.3 and 4: header, lengths in 64-bit units matching the
 * datagram exactly, extensions in any order, each at most once. */
uint8_t ipsecif_pfkey_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t len,
                            struct pfkey_msg *m)
{
    size_t off = HDR_LEN;
    uint8_t rc = hdr_parse(p, len, m);

    if (rc != 0) {
        return rc;
    }
    while (off < len) {
        size_t elen;
        unsigned t;

        if (len - off < 4) {
            return IPSECIF_PFKEY_EINVAL;
        }
        elen = (size_t)h16(p + off) * 8u;
        t = h16(p + off + 2);
        if (elen == 0 || elen > len - off || t == 0 || t > dl->ext_max || m->off[t] != 0) {
            return IPSECIF_PFKEY_EINVAL;
        }
        rc = (uint8_t)ext_check(dl, t, p + off, elen);
        if (rc != 0) {
            return rc;
        }
        m->off[t] = (uint32_t)off;
        m->elen[t] = (uint32_t)elen;
        off += elen;
    }
    return 0;
}

uint8_t ipsecif_pfkey_src_dst(const struct pfkey_dialect *dl, const struct pfkey_msg *m,
                              struct pfkey_addr *src, struct pfkey_addr *dst)
{
    if (!has(m, IPSECIF_SADB_EXT_ADDRESS_SRC) || !has(m, IPSECIF_SADB_EXT_ADDRESS_DST)) {
        return IPSECIF_PFKEY_EINVAL;
    }
    /* Both were checked by ipsecif_pfkey_parse(). */
    (void)addr_parse(dl, ext(m, IPSECIF_SADB_EXT_ADDRESS_SRC),
                     m->elen[IPSECIF_SADB_EXT_ADDRESS_SRC], src);
    (void)addr_parse(dl, ext(m, IPSECIF_SADB_EXT_ADDRESS_DST),
                     m->elen[IPSECIF_SADB_EXT_ADDRESS_DST], dst);
    if (src->a.family != dst->a.family) {
        return IPSECIF_PFKEY_EINVAL;
    }
    return 0;
}

/* One sadb_x_ipsecrequest of rl bytes at p (rl checked by the caller). */
static uint8_t request_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t rl,
                             struct ipsecif_ipsecreq *q)
{
    const size_t h = dl->req_hdr;
    size_t used, used2;
    uint16_t port;

    q->proto = (uint8_t)h16(p + 2);
    if (h16(p + 2) > 255) {
        return IPSECIF_PFKEY_EINVAL;
    }
    q->mode = p[4];
    q->level = p[5];
    q->reqid = dl->reqid32 ? h32(p + 8) : h16(p + 6);
    if (rl > h) {
        if (sockaddr_parse(dl, p + h, rl - h, &q->tun_src, &port, &used) != 0 ||
            sockaddr_parse(dl, p + h + used, rl - h - used, &q->tun_dst, &port, &used2) != 0) {
            return IPSECIF_PFKEY_EINVAL;
        }
    }
    return 0;
}

uint8_t ipsecif_pfkey_requests_parse(const struct pfkey_dialect *dl, const uint8_t *p, size_t len,
                                     struct ipsecif_policy *pol)
{
    while (len > 0) {
        size_t rl;

        if (len < dl->req_hdr) {
            return IPSECIF_PFKEY_EINVAL;
        }
        rl = h16(p);
        if (rl < dl->req_hdr || rl > len || rl % 8 != 0 || pol->nreq >= IPSECIF_MAX_REQUESTS) {
            return IPSECIF_PFKEY_EINVAL;
        }
        if (request_parse(dl, p, rl, &pol->req[pol->nreq++]) != 0) {
            return IPSECIF_PFKEY_EINVAL;
        }
        p += rl;
        len -= rl;
    }
    return 0;
}
