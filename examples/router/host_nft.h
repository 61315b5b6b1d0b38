/**
 * @file host_nft.h
 * @brief The inbound side of the SPD as an nftables table, for cleartext
 *        that never reaches the library (ipsecifd -H).
 *
 * Host code of examples/router; needs nothing of the operating system, so
 * a unit test checks the text. In host mode ESP and AH go to the daemon,
 * which opens them and writes what the inbound policy allows to the host
 * device; but a packet that arrives in clear goes straight to the host's
 * stack. The table `inet ipsecif_host` decides for those as
 * ipsecif_host_input() would, one rule per policy, first match wins:
 *
 * 1. accept: from the host device (opened by the daemon), from lo, ESP
 *    and AH (for the daemon), UDP to the NAT-T ports in use, ICMPv6
 *    neighbour discovery (types 133..137);
 * 2. per-socket policies (ipsecif_spd_sock_walk()) for packets to a local
 *    address: a socket bound to the destination (address or any, protocol,
 *    port; sockets bound to an address first) with a bypass policy
 *    accepts, with an ipsec policy it decides as a policy does;
 * 3. for packets not to a local address, the fwd policies, then for every
 *    packet the in policies, each in lookup order (ipsecif_spd_walk()):
 *    selector (prefixes, protocol, ports or ICMP type and code) to accept
 *    for action none, drop for discard, and for ipsec drop when a request's
 *    level (default resolved through the sysctls: 1 use, else require) is
 *    require or unique, accept when all are use;
 * 4. per family, def_policy: 0 drop, 1 accept.
 *
 * While net.inet.ipsec.used is 0 (no policy yet, or net.inet.ipsec.enabled
 * 0) rules 2 to 4 are one rule that accepts everything, as the library
 * then asks no policy either.
 *
 * Every rule has a counter. The script is one nft transaction: the chain
 * is flushed and filled again, so no packet sees it half made.
 */
#ifndef IPSECIF_ROUTER_HOST_NFT_H
#define IPSECIF_ROUTER_HOST_NFT_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The table's name (family inet). */
#define RTR_HOSTNFT_TABLE "ipsecif_host"

/** What the table needs beyond the context. */
struct rtr_hostnft_opts {
    const char *dev;            /**< The host device (lowercase letters and digits). */
    const uint16_t *natt_ports; /**< Local UDP ports of the NAT-T sockets in use. */
    size_t n_natt;              /**< How many. */
};

/**
 * @brief Write the nft script that (re)makes the table from ctx's SPD,
 *        per-socket policies and sysctls.
 * @param[in]  ctx  the context (walked, not changed).
 * @param[in]  opts the device and ports.
 * @param[out] out  the script, NUL-terminated; cut short when cap is too small.
 * @param[in]  cap  bytes of out.
 * @return the script's whole length (as snprintf: when it is cap or more,
 *         out holds only its start), or -1 for a NULL argument or a device
 *         name that would need quoting.
 */
long rtr_hostnft_build(struct ipsecif_ctx *ctx, const struct rtr_hostnft_opts *opts, char *out,
                       size_t cap);

/** The script that deletes the table. */
const char *rtr_hostnft_remove_script(void);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_ROUTER_HOST_NFT_H */
