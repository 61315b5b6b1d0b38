/* ESP algorithm tables, key length checks, and SA key setup. */
#include "core/ctx.h"

/* Block and IV sizes: RFC 2451 (3DES), RFC 3602 (AES-CBC), RFC 4106 (GCM),
 * RFC 4543 (GMAC), RFC 7634 (ChaCha20-Poly1305). Stream-like and AEAD modes
 * still pad to 4 bytes (RFC 4303 section 2.4). */
static const struct ipsecif_ealg_info ealgs[] = {
    {IPSECIF_EALG_NULL, IPSECIF_XFORM_CIPHER_MAC, 4, 0, 0, 0, {0, 0, 0}},
    {IPSECIF_EALG_3DES_CBC, IPSECIF_XFORM_CIPHER_MAC, 8, 8, 0, 0, {24, 0, 0}},
    {IPSECIF_EALG_AES_CBC, IPSECIF_XFORM_CIPHER_MAC, 16, 16, 0, 0, {16, 24, 32}},
    {IPSECIF_EALG_AES_GCM16, IPSECIF_XFORM_AEAD, 4, 8, 16, 4, {16, 24, 32}},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_XFORM_GMAC, 4, 8, 16, 4, {16, 24, 32}},
    {IPSECIF_EALG_CHACHA20_POLY1305, IPSECIF_XFORM_AEAD, 4, 8, 16, 4, {32, 0, 0}},
};

/* RFC 2404 (SHA-1-96) and RFC 4868 (SHA-2): the key is the hash output size,
 * the ICV half of it. */
static const struct ipsecif_aalg_info aalgs[] = {
    {IPSECIF_AALG_HMAC_SHA1_96, 20, 12},
    {IPSECIF_AALG_HMAC_SHA2_256_128, 32, 16},
    {IPSECIF_AALG_HMAC_SHA2_384_192, 48, 24},
    {IPSECIF_AALG_HMAC_SHA2_512_256, 64, 32},
};

const struct ipsecif_ealg_info *ipsecif_ealg_find(uint8_t ealg)
{
    size_t i;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(ealgs); i++) {
        if (ealgs[i].id == ealg) {
            return &ealgs[i];
        }
    }
    return NULL;
}

const struct ipsecif_aalg_info *ipsecif_aalg_find(uint8_t aalg)
{
    size_t i;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(aalgs); i++) {
        if (aalgs[i].id == aalg) {
            return &aalgs[i];
        }
    }
    return NULL;
}

static bool ekey_fits(const struct ipsecif_ealg_info *e, size_t len)
{
    size_t i;

    /* NULL encryption has no key at all. */
    if (e->id == IPSECIF_EALG_NULL) {
        return len == 0;
    }
    for (i = 0; i < IPSECIF_ARRAY_SIZE(e->key_lens); i++) {
        if (e->key_lens[i] != 0 && len == (size_t)e->key_lens[i] + e->salt_len) {
            return true;
        }
    }
    return false;
}

bool ipsecif_ealg_keylen_ok(uint8_t ealg, size_t len)
{
    const struct ipsecif_ealg_info *e = ipsecif_ealg_find(ealg);

    return e != NULL && ekey_fits(e, len);
}

bool ipsecif_aalg_keylen_ok(uint8_t aalg, size_t len)
{
    const struct ipsecif_aalg_info *a;

    if (aalg == IPSECIF_AALG_NONE) {
        return len == 0;
    }
    a = ipsecif_aalg_find(aalg);
    return a != NULL && len == a->key_len;
}

static void clear_alg_fields(struct ipsecif_sa *sa)
{
    ipsecif_wipe(sa->salt, sizeof(sa->salt));
    sa->ealg = IPSECIF_EALG_NONE;
    sa->aalg = IPSECIF_AALG_NONE;
    sa->iv_len = 0;
    sa->icv_len = 0;
    sa->block = 0;
    sa->aead = IPSECIF_XFORM_CIPHER_MAC;
    sa->ekey_len = 0;
    sa->akey_len = 0;
}

int ipsecif_esp_sa_init(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                        const struct ipsecif_sa_params *p)
{
    const struct ipsecif_ealg_info *e;
    const struct ipsecif_aalg_info *a = NULL;
    int rc;

    if (ops == NULL || sa == NULL || p == NULL) {
        return IPSECIF_ERR_ARG;
    }
    if ((p->ekey == NULL && p->ekey_len != 0) || (p->akey == NULL && p->akey_len != 0)) {
        return IPSECIF_ERR_ARG;
    }
    e = ipsecif_ealg_find(p->ealg);
    if (e == NULL) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    if (p->aalg != IPSECIF_AALG_NONE) {
        a = ipsecif_aalg_find(p->aalg);
        if (a == NULL) {
            return IPSECIF_ERR_UNSUPPORTED;
        }
    }
    /* AEAD and GMAC carry their own ICV; a second one is not defined
     * (RFC 4106 section 8.4, RFC 4543 section 5). NULL without an integrity
     * algorithm would protect nothing (RFC 4303 section 3.2). CBC without
     * integrity stays allowed, as setkey(8) allows it. */
    if (e->aead != IPSECIF_XFORM_CIPHER_MAC && a != NULL) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    if (e->id == IPSECIF_EALG_NULL && a == NULL) {
        return IPSECIF_ERR_UNSUPPORTED;
    }
    if (e->iv_len > IPSECIF_ESP_IV_MAX ||
        (a != NULL ? a->icv_len : e->icv_len) > IPSECIF_ESP_ICV_MAX) {
        return IPSECIF_ERR_INTERNAL;
    }
    if (!ekey_fits(e, p->ekey_len)) {
        return IPSECIF_ERR_KEYLEN;
    }
    if (!ipsecif_aalg_keylen_ok(p->aalg, p->akey_len)) {
        return IPSECIF_ERR_KEYLEN;
    }

    sa->ealg = e->id;
    sa->aalg = p->aalg;
    sa->iv_len = e->iv_len;
    sa->icv_len = a != NULL ? a->icv_len : e->icv_len;
    sa->block = e->block;
    sa->aead = e->aead;
    sa->ekey_len = (uint8_t)p->ekey_len;
    sa->akey_len = (uint8_t)p->akey_len;
    /* The salt is the last bytes of the keying material (RFC 4106 section 8.1). */
    if (e->salt_len != 0) {
        memcpy(sa->salt, p->ekey + p->ekey_len - e->salt_len, e->salt_len);
    }
    rc = ops->init(sa->slot, e->id, p->ekey, p->ekey_len - e->salt_len, p->aalg, p->akey,
                   p->akey_len);
    if (rc != 0) {
        ops->wipe(sa->slot);
        clear_alg_fields(sa);
        return rc == IPSECIF_ERR_UNSUPPORTED ? IPSECIF_ERR_UNSUPPORTED : IPSECIF_ERR_CRYPTO;
    }
    return IPSECIF_OK;
}

void ipsecif_esp_sa_wipe(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa)
{
    if (sa == NULL) {
        return;
    }
    if (ops != NULL) {
        ops->wipe(sa->slot);
    } else {
        ipsecif_wipe(sa->slot, sizeof(sa->slot));
    }
    clear_alg_fields(sa);
}
