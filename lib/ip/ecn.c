/* ECN across the tunnel (RFC 6040). */
#include "ip/ip.h"

/* ECN codepoints (RFC 3168). */
#define ECN_MASK 0x03u
#define ECN_NOT_ECT 0x00u
#define ECN_ECT1 0x01u
#define ECN_ECT0 0x02u
#define ECN_CE 0x03u

/*
 * RFC 6040 section 4.1. The outer header takes the inner TOS byte (the
 * DSCP is copied as gif(4) and ipsecif(4) do); normal mode keeps the ECN
 * field, compatibility mode clears it to Not-ECT. Returns the outer TOS.
 */
uint8_t ipsecif_ecn_encap(uint8_t inner_tos, bool ecn_friendly)
{
    if (ecn_friendly) {
        return inner_tos;
    }
    return (uint8_t)(inner_tos & ~ECN_MASK);
}

/*
 * RFC 6040 section 4.2, Figure 4. Returns the inner TOS byte to forward
 * (DSCP unchanged, ECN combined), or -1 to drop (CE over Not-ECT).
 */
int ipsecif_ecn_decap(uint8_t outer_tos, uint8_t inner_tos)
{
    uint8_t outer = outer_tos & ECN_MASK;
    uint8_t inner = inner_tos & ECN_MASK;
    uint8_t ecn = inner;

    if (outer == ECN_CE) {
        if (inner == ECN_NOT_ECT) {
            return -1;
        }
        ecn = ECN_CE;
    } else if (outer == ECN_ECT1 && inner == ECN_ECT0) {
        ecn = ECN_ECT1;
    }
    return (int)((inner_tos & ~ECN_MASK) | ecn);
}
