/**
 * @file host_state.h
 * @brief ipsecifd -H's state file: the host-side policy state that a
 *        restarted daemon takes up again, so host traffic does not leave
 *        in clear while nobody has loaded the policies anew.
 *
 * Host code of examples/router. What the file holds:
 * - every SPD entry that no interface owns (added by setkey or an IKE
 *   daemon over PF_KEY; an interface's four policies come back when the
 *   interface is set up again), in lookup order, so re-adding them keeps
 *   the order of equal priorities;
 * - every sysctl of the daemon's table (rtr_sysctl_count()) whose value
 *   differs from a fresh context's;
 * - the number of sockets that had a per-socket policy. Their policies
 *   are not restored: the preload library names a socket by its PF_KEY
 *   connection and descriptor, the connection dies with the daemon, and
 *   while no daemon runs a program's close() cannot reach it, so the same
 *   descriptor may name another socket by the time a new daemon starts; a
 *   restored bypass could then let that socket's traffic out in clear.
 *   Programs that set them (racoon's bypass on its IKE sockets) set them
 *   again when they are restarted.
 *
 * Never keys: SAs are not kept. A require policy without an SA drops and
 * raises an ACQUIRE, so traffic stays protected until SAs come again.
 *
 * Format, version 1: lines of printable ASCII, at most
 * ::RTR_STATE_LINE_MAX bytes with the newline, words separated by one
 * space:
 *
 *     # comment (only before the header)
 *     ipsecifd-state 1
 *     sysctl NAME VALUE
 *     policy DIR prio N src ADDR/PLEN sport N dst ADDR/PLEN dport N proto N ACTION [REQ ...]
 *     sockets N
 *     end RECORDS CRC
 *
 * DIR is in, out or fwd; ACTION discard, none or ipsec, the last followed
 * by 1 to IPSECIF_MAX_REQUESTS requests PROTO/MODE/ENDPOINTS/LEVEL/REQID:
 * esp or ah, transport or tunnel, SRC-DST or `-` without endpoints,
 * default, use, require or unique, the request id. Ports, protocol
 * (255: any) and ICMP type and code are the library's numbers
 * (struct ipsecif_selector). RECORDS counts the lines between the header
 * and the end line; CRC is the CRC-32 (as zlib's crc32()) of every byte
 * before the end line, as 8 lowercase hex digits. A file cut short, with
 * a line changed, with unknown words, names, versions or trailing bytes,
 * is refused as a whole. The daemon writes the file whole to a temporary
 * file and renames it over the old one.
 */
#ifndef IPSECIF_ROUTER_HOST_STATE_H
#define IPSECIF_ROUTER_HOST_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The format version this code writes and reads. */
#define RTR_STATE_VERSION 1

/** Longest line, newline included. */
#define RTR_STATE_LINE_MAX 1024u

/** The first word of the header line. */
#define RTR_STATE_MAGIC "ipsecifd-state"

/** Room for an error text. */
#define RTR_STATE_ERR_SIZE 256

/** A parsed state file. */
struct rtr_state {
    struct rtr_state_sysctl {
        size_t index;            /**< Entry of the sysctl table (rtr_sysctl_name()). */
        int value;               /**< Its value. */
    } * sysctls;                 /**< The sysctls set (allocated). */
    size_t nsysctls;             /**< How many. */
    struct ipsecif_policy *pols; /**< The policies in lookup order (allocated). */
    size_t npols;                /**< How many. */
    uint32_t sockets;            /**< Sockets that had a per-socket policy. */
};

/**
 * @brief The values of every sysctl in ctx (a fresh context: the defaults
 *        that rtr_state_build() leaves out).
 * @param[out] out rtr_sysctl_count() values.
 */
void rtr_state_defaults(struct ipsecif_ctx *ctx, int *out);

/**
 * @brief Write the state of ctx as a state file's text.
 * @param[in]  ctx       the context (walked, not changed).
 * @param[in]  defaults  rtr_state_defaults() of a fresh context; sysctls
 *                       equal to them are left out. NULL: all are written.
 * @param[out] out       the text, NUL-terminated; cut short when cap is too small.
 * @param[in]  cap       bytes of out.
 * @return the text's whole length (as snprintf: when it is cap or more,
 *         out holds only its start, and the text must be built again), or
 *         -1 for a NULL ctx or a policy that cannot be written.
 */
long rtr_state_build(struct ipsecif_ctx *ctx, const int *defaults, char *out, size_t cap);

/**
 * @brief Parse a state file's text. Nothing is applied.
 * @param[in]  text     the text (need not be NUL-terminated; never read past len).
 * @param[in]  len      its length.
 * @param[in]  max_pols most policies accepted (the context's capacity).
 * @param[out] out      the state; free it with rtr_state_free() (also on error).
 * @param[out] err      why it was refused, "line N: ..." (RTR_STATE_ERR_SIZE bytes).
 * @return 0, or -1 with err set.
 */
int rtr_state_parse(const char *text, size_t len, size_t max_pols, struct rtr_state *out,
                    char *err);

/** Free what rtr_state_parse() allocated (the struct itself is the caller's). */
void rtr_state_free(struct rtr_state *st);

/**
 * @brief Apply a parsed state to ctx, all or nothing: the sysctls, then
 *        the policies in their order.
 * @param[in]  ctx the context.
 * @param[in]  st  the state.
 * @param[in]  now current time, ms.
 * @param[out] err why it failed (RTR_STATE_ERR_SIZE bytes).
 * @return 0, or -1 with err set: then every policy added is deleted again
 *         and every sysctl has its old value.
 */
int rtr_state_apply(struct ipsecif_ctx *ctx, const struct rtr_state *st, uint64_t now, char *err);

/**
 * @brief Read a state file: a regular file owned by this user, with no
 *        group or other permission bits, of at most max bytes.
 * @param[out] text the contents (allocated; the caller frees them).
 * @param[out] len  their length.
 * @param[out] err  why it was refused (RTR_STATE_ERR_SIZE bytes).
 * @return 1 read, 0 there is no file, -1 with err set.
 */
int rtr_state_read_file(const char *path, size_t max, char **text, size_t *len, char *err);

/**
 * @brief Write the file atomically: PATH.tmp (mode 0600), then rename
 *        over path. Not fsynced: it must outlive the daemon (kill -9),
 *        which the page cache ensures; what it protects (ipsech0, the
 *        rules) does not outlive a reboot either.
 * @return 0, or -1 with errno set (the old file is then unchanged).
 */
int rtr_state_write_file(const char *path, const char *text, size_t len);

/**
 * @brief The state file's path that goes with a control socket path when
 *        none is given: a trailing ".sock" becomes ".state", otherwise
 *        ".state" is appended (/run/ipsecifd.sock gives /run/ipsecifd.state).
 * @return 0, or -1 when it does not fit len.
 */
int rtr_state_path(const char *ctl_path, char *out, size_t len);

/** CRC-32 (IEEE 802.3, reflected, as zlib's crc32()) of len bytes. */
uint32_t rtr_state_crc32(const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_ROUTER_HOST_STATE_H */
