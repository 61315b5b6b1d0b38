/**
 * @file host.h
 * @brief ipsec(4) for the host's own and forwarded traffic: the SPD and
 *        SADB applied to whole IP packets, transport and tunnel mode, ESP
 *        and AH, bundles, per-socket policy.
 */
#ifndef IPSECIF_HOST_H
#define IPSECIF_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup ipsecif_host Host traffic
 * @brief The KAME engine on packets the host sends, receives and forwards.
 *
 * Output: a whole IPv4 or IPv6 packet the host is about to send (its own or
 * one it forwards) goes through ipsecif_host_output(). A per-socket policy
 * that covers its source address, protocol and source port decides first
 * (bypass, or its own requests); otherwise the first matching outbound SPD
 * policy does, and without one the def_policy sysctl (0 discard, 1 none).
 * For an ipsec policy every request gets its SA first (transport mode
 * between the packet's addresses, tunnel mode between the request's
 * endpoints, level use may go without); only then is the packet changed,
 * the first request innermost: `esp/transport//require ah/transport//require`
 * gives IP | AH | ESP | payload. A request at level require or unique
 * without an SA raises an ACQUIRE and drops the packet.
 *
 * Input: a whole packet that arrived for the host goes through
 * ipsecif_host_input(). Every ESP and AH header is removed in turn (tunnel
 * mode also removes the outer header), then the inbound policy decides:
 * the per-socket policy of the socket the packet is for, else the first
 * matching inbound policy (forward policies first for packets the port's
 * local_addr says are not the host's, then inbound ones), else def_policy.
 * Each request at level require or unique must have been met by an SA of
 * its protocol and mode (tunnel mode: with its endpoints; unique: with its
 * reqid) that the packet was opened with. Cleartext a require policy covers
 * is refused, and so is IPsec the policy did not ask for only when the
 * policy is discard (more protection than asked is accepted, as KAME does).
 *
 * Neither direction asks any policy while net.inet.ipsec.used
 * (::IPSECIF_SYSCTL_USED) is 0, that is before the first policy or
 * per-socket policy, or with net.inet.ipsec.enabled 0: output passes the
 * packet in clear and input delivers it (ESP and AH for a host SA are still
 * removed), whatever def_policy says.
 *
 * An ESP SA with NAT-T ports (RFC 3948) puts a UDP header from those ports
 * in front of ESP, in transport and tunnel mode; on input ESP in UDP is
 * taken for such an SA when its SPI and ports match (a nonzero SPI: the
 * zero marker is IKE's), and in transport mode the TCP or UDP checksum is
 * recomputed for the addresses a NAT left (RFC 3948 section 3.1.2).
 *
 * ipsecif_input() sends ESP and AH that no interface claims, and ESP in
 * UDP for a host SA, down the same input path and hands the result to the
 * port's deliver_host.
 * @{
 */

/** What was done to a packet. */
enum ipsecif_host_verdict {
    IPSECIF_HOST_CLEAR = 0,    /**< Passes without IPsec (policy none, bypass, level use). */
    IPSECIF_HOST_PROTECTED = 1 /**< IPsec was applied (output) or removed (input). */
};

/** The outcome of ipsecif_host_output() or ipsecif_host_input(). */
struct ipsecif_host_result {
    uint8_t verdict;         /**< ::ipsecif_host_verdict. */
    uint8_t family;          /**< Family of the packet now in the buffer. */
    struct ipsecif_addr src; /**< Its source (the outer one after tunnel mode). */
    struct ipsecif_addr dst; /**< Its destination. */
    uint8_t nsa;             /**< SAs applied (output) or removed (input). */
    uint8_t tunnels;         /**< Tunnel-mode layers among them. */
    uint32_t policy_id;      /**< The SPD policy that decided; 0 for def_policy or a socket. */
    bool by_socket;          /**< A per-socket policy decided. */
    bool forward;            /**< Input: the port's local_addr says it is not the host's. */
};

struct ipsecif_ctx;

/**
 * @brief Apply the outbound policy to a packet the host sends or forwards.
 *
 * In place: on IPSECIF_OK the buffer holds what goes on the wire (the
 * packet unchanged when the verdict is clear). Headroom for the headers
 * added and tailroom for ESP's trailer must be there. Counted in
 * host_out_ipsec or host_out_clear, drops in the out_* counters.
 * @param[in]     ctx the context.
 * @param[in,out] pkt a whole IPv4 or IPv6 packet (not a fragment when
 *                    transport mode applies: ipsecif_reass_input() puts
 *                    fragments together first, and ipsecif_frag_start()
 *                    cuts the result for the path).
 * @param[in]     now current time, ms.
 * @param[out]    res what was done (may be NULL).
 * @retval IPSECIF_OK send the buffer.
 * @retval IPSECIF_ERR_ARG a NULL ctx or an invalid buffer (not counted).
 * @retval IPSECIF_ERR_MALFORMED not a sound IPv4/IPv6 packet (out_malformed).
 * @retval IPSECIF_ERR_DISCARD a discard policy, or def_policy 0 (out_polvio).
 * @retval IPSECIF_ERR_NOSA a request without its SA; ACQUIRE raised (out_nosa).
 * @retval IPSECIF_ERR_NOROOM, IPSECIF_ERR_UNSUPPORTED, IPSECIF_ERR_SEQWRAP,
 *         IPSECIF_ERR_CRYPTO dropped (out_noroom, out_malformed,
 *         out_seqwrap, out_crypto); a fragment where transport mode
 *         applies is IPSECIF_ERR_MALFORMED.
 */
int ipsecif_host_output(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                        struct ipsecif_host_result *res);

/**
 * @brief Remove IPsec from a packet that arrived and apply the inbound policy.
 *
 * In place: on IPSECIF_OK the buffer holds the packet for the host to
 * deliver or forward (unchanged when it came in clear). Counted in
 * host_in_ipsec or host_in_clear, drops in the in_* counters.
 * @param[in]     ctx the context.
 * @param[in,out] pkt a whole IPv4 or IPv6 packet as received (reassembled).
 * @param[in]     now current time, ms.
 * @param[out]    res what was done (may be NULL).
 * @retval IPSECIF_OK deliver the buffer.
 * @retval IPSECIF_ERR_ARG a NULL ctx or an invalid buffer (not counted).
 * @retval IPSECIF_ERR_POLICY the inbound policy refuses it (in_polvio).
 * @retval IPSECIF_ERR_MALFORMED, IPSECIF_ERR_BADSPI, IPSECIF_ERR_REPLAY,
 *         IPSECIF_ERR_AUTH, IPSECIF_ERR_BADPAD, IPSECIF_ERR_NOROOM,
 *         IPSECIF_ERR_UNSUPPORTED, IPSECIF_ERR_CRYPTO dropped and counted.
 */
int ipsecif_host_input(struct ipsecif_ctx *ctx, struct ipsecif_buf *pkt, uint64_t now,
                       struct ipsecif_host_result *res);

/**
 * @brief A number that changes whenever what decides host traffic changes:
 *        a policy added or removed, a per-socket policy set, bound or
 *        dropped, a sysctl set. Ports that mirror the policy elsewhere (a
 *        packet filter for cleartext that never reaches the library) compare
 *        it to know when to rebuild.
 */
uint32_t ipsecif_host_generation(const struct ipsecif_ctx *ctx);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_HOST_H */
