#include "core/ctx.h"

#if IPSECIF_STRERROR
struct errtext {
    int code;
    const char *text;
};

static const struct errtext errtexts[] = {
    {IPSECIF_OK, "success"},
    {IPSECIF_ERR_ARG, "invalid argument"},
    {IPSECIF_ERR_STATE, "invalid state for this operation"},
    {IPSECIF_ERR_EXIST, "already exists"},
    {IPSECIF_ERR_NOENT, "no such entry"},
    {IPSECIF_ERR_FULL, "capacity exhausted"},
    {IPSECIF_ERR_BUSY, "owned by an interface"},
    {IPSECIF_ERR_UNSUPPORTED, "not supported"},
    {IPSECIF_ERR_RANGE, "value out of range"},
    {IPSECIF_ERR_KEYLEN, "wrong key length for the algorithm"},
    {IPSECIF_ERR_NOROOM, "not enough buffer room"},
    {IPSECIF_ERR_TOOBIG, "packet too big"},
    {IPSECIF_ERR_MALFORMED, "malformed packet"},
    {IPSECIF_ERR_AUTH, "authentication failed"},
    {IPSECIF_ERR_REPLAY, "replayed packet"},
    {IPSECIF_ERR_NOSA, "no SA"},
    {IPSECIF_ERR_POLICY, "policy violation"},
    {IPSECIF_ERR_BADPAD, "bad padding"},
    {IPSECIF_ERR_BADSPI, "unknown SPI"},
    {IPSECIF_ERR_DISCARD, "discarded by policy"},
    {IPSECIF_ERR_DOWN, "interface down or without tunnel"},
    {IPSECIF_ERR_SEQWRAP, "sequence number exhausted"},
    {IPSECIF_ERR_ECN, "ECN: CE over not-ECT"},
    {IPSECIF_ERR_PROTO, "not an IPsec packet"},
    {IPSECIF_ERR_NESTED, "ipsec interfaces nested too deep"},
    {IPSECIF_ERR_QUEUED, "fragment kept for reassembly"},
    {IPSECIF_ERR_PORT, "port callback failed"},
    {IPSECIF_ERR_CRYPTO, "crypto backend failed"},
    {IPSECIF_ERR_RANDOM, "random source failed"},
    {IPSECIF_ERR_INTERNAL, "internal error"},
};
#endif

const char *ipsecif_strerror(int err)
{
#if IPSECIF_STRERROR
    size_t i;

    for (i = 0; i < IPSECIF_ARRAY_SIZE(errtexts); i++) {
        if (errtexts[i].code == err) {
            return errtexts[i].text;
        }
    }
    return "unknown error";
#else
    (void)err;
    return "";
#endif
}
