/*
 * AH (RFC 4302): SA key setup, output and input in place on a whole IPv4 or
 * IPv6 packet. Works on one SA at a time; knows nothing of the SADB's tables
 * nor of modes: in tunnel mode the caller hands in the packet with its outer
 * IP header already in front (protocol 4 or 41), in transport mode the
 * packet itself. Not installed.
 */
#ifndef IPSECIF_AH_H
#define IPSECIF_AH_H

#include "base/base.h"

struct ipsecif_ctx;
struct ipsecif_sa;

/* Bytes of IP header and IPv6 extension headers in front of AH that AH
 * processing handles; longer chains are refused (IPSECIF_ERR_UNSUPPORTED on
 * output, IPSECIF_ERR_MALFORMED on input). */
#define IPSECIF_AH_PRE_MAX 256

/*
 * Check the algorithms and key lengths of p for AH and set up the crypto
 * slot: an HMAC (aalg set, ealg IPSECIF_EALG_NONE) or AES-GMAC (ealg
 * IPSECIF_EALG_AES_GMAC with the salt last in ekey, aalg none; RFC 4543).
 * On failure the slot holds no secret. Returns IPSECIF_OK,
 * IPSECIF_ERR_ARG, IPSECIF_ERR_UNSUPPORTED, IPSECIF_ERR_KEYLEN, IPSECIF_ERR_CRYPTO.
 * ipsecif_esp_sa_wipe() wipes an AH SA as well.
 */
int ipsecif_ah_sa_init(const struct ipsecif_crypto_ops *ops, struct ipsecif_sa *sa,
                       const struct ipsecif_sa_params *p);

/* Length of the AH header (ICV and its padding included) for a family. */
size_t ipsecif_ah_hdr_len(const struct ipsecif_sa *sa, uint8_t family);

/*
 * AH output, in place. pkt holds a complete IPv4 or IPv6 packet; AH is
 * inserted after the IPv4 header (options included) or after the IPv6
 * hop-by-hop, routing and the destination options not after a routing
 * header (RFC 4302 section 3.1), moving those headers into the headroom.
 * Lengths, the protocol or next header and the IPv4 checksum are updated.
 * Uses the next sequence number (IPSECIF_ERR_SEQWRAP if exhausted). With
 * ESN 4 bytes of tailroom are borrowed (and restored) for the high half.
 * Returns IPSECIF_OK, IPSECIF_ERR_ARG, IPSECIF_ERR_MALFORMED (not a valid
 * IP packet, or a fragment), IPSECIF_ERR_UNSUPPORTED (headers longer than
 * IPSECIF_AH_PRE_MAX, a routing header type it cannot predict),
 * IPSECIF_ERR_NOROOM, IPSECIF_ERR_SEQWRAP, IPSECIF_ERR_CRYPTO.
 */
int ipsecif_ah_output(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt);

/*
 * Find the AH header of the IPv4 or IPv6 packet in pkt: *ah_off is its
 * offset from the packet start, *spi its SPI (for the SA lookup). Reads
 * nothing outside pkt. Returns IPSECIF_OK, IPSECIF_ERR_ARG,
 * IPSECIF_ERR_MALFORMED, IPSECIF_ERR_PROTO (no AH where it would be).
 */
int ipsecif_ah_locate(const struct ipsecif_buf *pkt, size_t *ah_off, uint32_t *spi);

/*
 * AH input, in place. pkt holds the whole IP packet, AH at ah_off (from
 * ipsecif_ah_locate), for an SA already looked up by SPI. Checks replay
 * (before and after the ICV), verifies the ICV in constant time, then
 * removes AH: the headers in front move up by its length, the protocol or
 * next header becomes AH's next header (also in *next_header), lengths and
 * the IPv4 checksum are updated; mutable fields keep their received values.
 * The replay window changes only once the ICV verified. With ESN 4 bytes
 * of tailroom are borrowed (and restored). On any error pkt is unchanged.
 * Returns IPSECIF_OK, IPSECIF_ERR_ARG, IPSECIF_ERR_MALFORMED,
 * IPSECIF_ERR_UNSUPPORTED (a routing header with segments left of a type it
 * cannot predict), IPSECIF_ERR_NOROOM, IPSECIF_ERR_REPLAY, IPSECIF_ERR_AUTH,
 * IPSECIF_ERR_CRYPTO;
 * per-SA counters (replay, auth) are incremented here.
 */
int ipsecif_ah_input(struct ipsecif_ctx *ctx, struct ipsecif_sa *sa, struct ipsecif_buf *pkt,
                     size_t ah_off, uint8_t *next_header);

#endif /* IPSECIF_AH_H */
