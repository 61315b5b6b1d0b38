/* The two PF_KEY wire dialects, KAME/NetBSD and Linux, as one descriptor
 * each: table values, errno numbers, algorithm tables and the policy id
 * mapping. */
#include "pfkey_priv.h"

#define AF_INET6_KAME 24u
#define AF_INET6_LINUX 10u
#define REQ_HDR_KAME 8u
#define REQ_HDR_LINUX 16u

/* The supported algorithms have the same numbers in linux/pfkeyv2.h and
 * NetBSD's net/pfkeyv2.h; AEAD key sizes include the 4-byte salt, as both
 * kernels take them. Each descriptor names its own tables, so the dialects
 * stay free to diverge. */
static const struct walg ealg_both[] = {
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

/* NetBSD's net/pfkeyv2.h: SADB_X_AALG_AES128GMAC 11, _AES192GMAC 12,
 * _AES256GMAC 13, keyed with key + salt (RFC 4543 section 4). Linux's PF_KEY
 * has no AH GMAC and leaves 11..13 unused; its dialect here takes NetBSD's
 * numbers for it, an extension a Linux kernel would refuse. */
static const struct walg ah_gmac_kame[] = {
    {IPSECIF_SADB_X_AALG_AES128GMAC, IPSECIF_EALG_AES_GMAC, 0, 160, 160},
    {IPSECIF_SADB_X_AALG_AES192GMAC, IPSECIF_EALG_AES_GMAC, 0, 224, 224},
    {IPSECIF_SADB_X_AALG_AES256GMAC, IPSECIF_EALG_AES_GMAC, 0, 288, 288},
};

const struct pfkey_dialect ipsecif_pfkey_dialects[PFKEY_NDIALECTS] = {
    {
        .ealg = ealg_both,
        .nealg = IPSECIF_ARRAY_SIZE(ealg_both),
        .aalg = aalg_both,
        .naalg = IPSECIF_ARRAY_SIZE(aalg_both),
        .ah_gmac = ah_gmac_kame,
        .nah_gmac = IPSECIF_ARRAY_SIZE(ah_gmac_kame),
        .req_hdr = REQ_HDR_KAME,
        .id = IPSECIF_PFKEY_DIALECT_KAME,
        .af_inet6 = AF_INET6_KAME,
        .ext_max = IPSECIF_SADB_X_EXT_SA_REPLAY,
        .replay_unit = 8, /* sadb_sa_replay counts bytes of bitmap */
        .replay_ext = IPSECIF_SADB_X_EXT_SA_REPLAY,
        .sa_len = true,
        .reqid32 = false,
        .has_priority = false,
        .has_fwd = false,
        .dir_in_id = false,
        .dump_socks = false,
        .promisc_wrap = true,
        .enobufs = IPSECIF_PFKEY_ENOBUFS_KAME,
        .eopnotsupp = IPSECIF_PFKEY_EOPNOTSUPP_KAME,
        .emsgsize = IPSECIF_PFKEY_EMSGSIZE_KAME,
        .enosa = IPSECIF_PFKEY_ENOENT,
    },
    {
        .ealg = ealg_both,
        .nealg = IPSECIF_ARRAY_SIZE(ealg_both),
        .aalg = aalg_both,
        .naalg = IPSECIF_ARRAY_SIZE(aalg_both),
        .ah_gmac = ah_gmac_kame,
        .nah_gmac = IPSECIF_ARRAY_SIZE(ah_gmac_kame),
        .req_hdr = REQ_HDR_LINUX,
        .id = IPSECIF_PFKEY_DIALECT_LINUX,
        .af_inet6 = AF_INET6_LINUX,
        .ext_max = IPSECIF_SADB_X_EXT_NAT_T_OA,
        .replay_unit = 1, /* sadb_sa_replay counts packets */
        .replay_ext = 0,
        .sa_len = false,
        .reqid32 = true,
        .has_priority = true,
        .has_fwd = true,
        .dir_in_id = true,
        .dump_socks = true,
        .promisc_wrap = false,
        .enobufs = IPSECIF_PFKEY_ENOBUFS_LINUX,
        .eopnotsupp = IPSECIF_PFKEY_EOPNOTSUPP_LINUX,
        .emsgsize = IPSECIF_PFKEY_EMSGSIZE_LINUX,
        .enosa = IPSECIF_PFKEY_ESRCH,
    },
};

const struct pfkey_dialect *ipsecif_pfkey_dialect(uint8_t id)
{
    size_t i;

    for (i = 0; i < PFKEY_NDIALECTS; i++) {
        if (ipsecif_pfkey_dialects[i].id == id) {
            return &ipsecif_pfkey_dialects[i];
        }
    }
    return NULL;
}

uint8_t ipsecif_pfkey_errno(uint8_t dialect, int err)
{
    const struct pfkey_dialect *dl = ipsecif_pfkey_dialect(dialect);

    /* Any other dialect number gets the KAME values, as it always has. */
    if (dl == NULL) {
        dl = &ipsecif_pfkey_dialects[0];
    }
    switch (err) {
    case IPSECIF_OK:
        return 0;
    case IPSECIF_ERR_EXIST:
        return IPSECIF_PFKEY_EEXIST;
    case IPSECIF_ERR_NOENT:
        return IPSECIF_PFKEY_ENOENT;
    case IPSECIF_ERR_FULL:
    case IPSECIF_ERR_NOROOM:
        return dl->enobufs;
    case IPSECIF_ERR_BUSY:
        return IPSECIF_PFKEY_EBUSY;
    case IPSECIF_ERR_UNSUPPORTED:
        return dl->eopnotsupp;
    case IPSECIF_ERR_RANDOM:
    case IPSECIF_ERR_PORT:
    case IPSECIF_ERR_INTERNAL:
        return IPSECIF_PFKEY_ENOMEM;
    default:
        return IPSECIF_PFKEY_EINVAL;
    }
}

const struct walg *ipsecif_pfkey_alg_by_wire(const struct walg *t, size_t n, uint8_t wire)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].wire == wire) {
            return &t[i];
        }
    }
    return NULL;
}

uint8_t ipsecif_pfkey_alg_to_wire(const struct walg *t, size_t n, uint8_t lib)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (t[i].lib == lib) {
            return t[i].wire;
        }
    }
    return 0;
}

/*
 * Policy ids on the wire. KAME: the library's id. Linux numbers policies
 * (index << 3) | direction (in 0, out 1, fwd 2); 3 and up are per-socket
 * policies, which Linux clients (setkey's printer, racoon's policy table)
 * skip, so an SPD entry must never carry such an id.
 */
uint32_t ipsecif_pfkey_policy_id_to_wire(const struct pfkey_dialect *dl, uint32_t id, uint8_t dir)
{
    if (!dl->dir_in_id || id == 0) {
        return id;
    }
    return (id << 3) | (dir == IPSECIF_DIR_IN ? 0u : dir == IPSECIF_DIR_OUT ? 1u : 2u);
}

/* The library's id of a wire id, 0 if it names no SPD entry. */
uint32_t ipsecif_pfkey_policy_id_from_wire(const struct pfkey_dialect *dl, uint32_t wire,
                                           uint8_t *dir)
{
    static const uint8_t dirs[] = {IPSECIF_DIR_IN, IPSECIF_DIR_OUT, IPSECIF_DIR_FWD};

    *dir = IPSECIF_DIR_ANY;
    if (!dl->dir_in_id) {
        return wire;
    }
    if ((wire & 7u) >= IPSECIF_ARRAY_SIZE(dirs)) {
        return 0;
    }
    *dir = dirs[wire & 7u];
    return wire >> 3;
}

/* A per-socket policy as Linux lists it: (slot << 3) | (3 + direction), so
 * Linux clients know it for one. */
uint32_t ipsecif_pfkey_sock_policy_id(uint32_t slot, uint8_t dir)
{
    return (slot << 3) | (dir == IPSECIF_DIR_OUT ? 4u : 3u);
}

const struct walg *ipsecif_pfkey_ah_gmac_by_key(const struct pfkey_dialect *dl, size_t key_len)
{
    size_t i;

    for (i = 0; i < dl->nah_gmac; i++) {
        if ((size_t)dl->ah_gmac[i].maxbits == key_len * 8u) {
            return &dl->ah_gmac[i];
        }
    }
    return NULL;
}
