/**
 * @file setkey_parse.h
 * @brief A parser for KAME setkey(8) scripts, for the example router's control tool.
 *
 * Host-side code (POSIX userland), not part of libipsecif. It turns the
 * text setkey reads with `-f` or `-c` into commands that map one to one onto
 * the library's SADB and SPD calls. It fills one struct per statement on
 * its own stack and allocates nothing.
 *
 * Syntax (as setkey(8) of KAME / ipsec-tools):
 * - Statements end with `;` and may span lines; `#` starts a comment that runs
 *   to the end of the line; words are separated by white space; keys are
 *   `"quoted strings"` (the bytes between the quotes, no escapes) or `0x` hex
 *   (an odd number of digits gets a leading zero nibble, as setkey does).
 * - `add [-46n] src dst proto spi [ext...] algs ;`, `update` (same),
 *   `get|delete [-46n] src dst proto spi [ext...] ;`,
 *   `getspi [-46n] src dst proto spi [ext...] ;`,
 *   `deleteall [-46n] src dst proto ;`, `flush [proto] ;`, `dump [proto] ;`.
 *   proto is `esp`, `esp-udp` (NAT-T: ports from `addr[port]`, 4500 when
 *   absent) or `ah`. SPIs are decimal or `0x` hex and at least 256.
 * - Extensions: `-m transport|tunnel|any`, `-r bytes` (replay window in
 *   bytes, as the setkey man page and KAME kernels read it; stored as
 *   bytes x 8 packets, so at most 536870911; Linux kernels read the same
 *   number as packets), `-u id`,
 *   `-f zero-pad|random-pad|seq-pad|nocyclic-seq` (accepted, no effect: the
 *   library pads per RFC 4303 and never lets the sequence number cycle),
 *   `-lh`/`-ls seconds`, `-bh`/`-bs bytes`, and `-esn` (an extension of ours:
 *   64-bit sequence numbers). Extensions and algorithms may come in any order.
 * - Algorithms: `-E 3des-cbc|null|rijndael-cbc|aes-cbc|aes-gcm-16|aes-gmac|
 *   chacha20-poly1305 key` (AEAD keys carry the 4-byte salt last; `null` takes
 *   no key) and `-A hmac-sha1|hmac-sha256|hmac-sha384|hmac-sha512|null key`
 *   (`null` takes no key). Key lengths are checked with
 *   ipsecif_ealg_keylen_ok() and ipsecif_aalg_keylen_ok().
 * - `spdadd [-46n] src_range dst_range upperspec policy ;`, `spdupdate` (same),
 *   `spddelete [-46n] src_range dst_range upperspec -P dir [rest] ;`,
 *   `spdflush ;`, `spddump ;`. Ranges are `addr[/plen][[port|any]]`;
 *   upperspec is `any`, a protocol name (icmp, tcp, udp, ipv4/ip4/ipencap,
 *   ipv6, gre, esp, ah, icmp6/ipv6-icmp, sctp) or number, and icmp/icmp6 may
 *   be followed by `type[,code]`. The policy is
 *   `-P in|out|fwd [prio N | prio -N | prio low|def|high [+N|-N]]
 *   discard|none|ipsec proto/mode/[src-dst]/[level] ...` with level
 *   `default|use|require|unique|unique:N` (N 1..32767). Priorities are
 *   the values setkey sends (lower first): 0x80000000 when none is given,
 *   `prio N` = 0x80000000 - N, high/def/low = 0x40000000/0x80000000/
 *   0xc0000000, `+N` raises (subtracts). Ports in tunnel endpoints
 *   (`a[4500]-b[4500]`) are accepted and dropped: NAT-T ports live in the SA.
 *
 * Addresses are numeric IPv4 or IPv6 literals; names are not resolved.
 * Refused with ::SKP_ERR_UNSUPPORTED although setkey knows them: des-cbc and
 * the other old ciphers, aes-ctr, hmac-md5 and the other old MACs, ipcomp and
 * `-C`, tcp (TCP-MD5), esp-old/ah-old, `-ctx` labels, `spdadd tagged`, GRE
 * keys, `me`/`any` tunnel endpoints, bypass/entrust actions.
 *
 * Unlike setkey in its Linux "RFC mode", the parser never adds a `fwd` copy
 * of an `in` policy: it reports what the text says; the caller decides.
 */
#ifndef IPSECIF_SETKEY_PARSE_H
#define IPSECIF_SETKEY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Commands. */
enum skp_cmd_type {
    SKP_CMD_ADD = 1,   /**< `add`: sa filled, keys included. */
    SKP_CMD_UPDATE,    /**< `update`: as add. */
    SKP_CMD_GET,       /**< `get`: sa.proto, src, dst, spi (and NAT-T ports). */
    SKP_CMD_GETSPI,    /**< `getspi`: as get, plus mode and reqid. */
    SKP_CMD_DELETE,    /**< `delete`: as get. */
    SKP_CMD_DELETEALL, /**< `deleteall`: sa.proto, src, dst. */
    SKP_CMD_FLUSH,     /**< `flush`: sa.proto, 0 = every protocol. */
    SKP_CMD_DUMP,      /**< `dump`: sa.proto, 0 = every protocol. */
    SKP_CMD_SPDADD,    /**< `spdadd`: pol filled. */
    SKP_CMD_SPDUPDATE, /**< `spdupdate`: pol filled. */
    SKP_CMD_SPDDELETE, /**< `spddelete`: pol.sel and pol.dir. */
    SKP_CMD_SPDFLUSH,  /**< `spdflush`. */
    SKP_CMD_SPDDUMP    /**< `spddump`. */
};

/** Return codes of skp_parse() (a callback's own nonzero value passes through). */
enum skp_status {
    SKP_OK = 0,               /**< The whole text was parsed and delivered. */
    SKP_ERR_ARG = -1,         /**< NULL text with a nonzero length, or no callback. */
    SKP_ERR_SYNTAX = -2,      /**< Not setkey syntax: unknown word, missing part, no ';'. */
    SKP_ERR_VALUE = -3,       /**< A bad value: address, prefix, port, number, key length. */
    SKP_ERR_UNSUPPORTED = -4, /**< Valid setkey, but libipsecif does not do it. */
    SKP_ERR_LIMIT = -5        /**< A token or statement exceeds the parser's limits. */
};

/** Longest word or quoted string, in bytes (quotes included). */
#define SKP_TOKEN_MAX 256

/** Most words in one statement. */
#define SKP_STMT_TOKENS_MAX 64

/** Room for an error message. */
#define SKP_ERRMSG_SIZE 256

/** Where and why parsing stopped. */
struct skp_error {
    unsigned line;             /**< 1-based line of the bad token (or the statement). */
    int code;                  /**< ::skp_status value, or the callback's return value. */
    char msg[SKP_ERRMSG_SIZE]; /**< "line N: what went wrong 'token'", NUL-terminated. */
};

/**
 * @brief One parsed statement.
 *
 * sa.ekey and sa.akey point into ekey[] and akey[] of this struct. The
 * struct lives inside skp_parse(): it is valid only during the callback and
 * is wiped right after it, keys included. A callback that copies it must
 * copy the key bytes, not the pointers.
 */
struct skp_cmd {
    enum skp_cmd_type type;         /**< What to do. */
    struct ipsecif_sa_params sa;    /**< SA commands (see ::skp_cmd_type for which fields). */
    struct ipsecif_policy pol;      /**< Policy commands. */
    uint8_t ekey[IPSECIF_MAX_EKEY]; /**< Encryption key storage (sa.ekey). */
    uint8_t akey[IPSECIF_MAX_AKEY]; /**< Authentication key storage (sa.akey). */
};

/**
 * @brief Called once per statement, in order.
 * @param[in] arg  the caller's pointer.
 * @param[in] cmd  the statement; valid during the call only.
 * @param[in] line the line where the statement starts.
 * @return 0 to go on; anything else stops parsing and skp_parse() returns it.
 */
typedef int (*skp_cb)(void *arg, const struct skp_cmd *cmd, unsigned line);

/**
 * @brief Parse a whole setkey script and deliver each statement.
 *
 * Statements before an error are delivered already (as `setkey -f` sends
 * them); the bad one and those after it are not. The input need not be
 * NUL-terminated and is never read beyond len.
 *
 * @param[in]  text the script (may contain anything; NUL and other control
 *                  characters outside comments are errors).
 * @param[in]  len  its length in bytes.
 * @param[in]  cb   called for every statement.
 * @param[in]  arg  passed to cb.
 * @param[out] err  filled on failure (may be NULL); msg is "" on success.
 * @retval SKP_OK every statement was parsed and the callback accepted it.
 * @retval SKP_ERR_ARG, SKP_ERR_SYNTAX, SKP_ERR_VALUE, SKP_ERR_UNSUPPORTED,
 *         SKP_ERR_LIMIT as ::skp_status describes; err says where.
 * @retval other the callback's nonzero return value (err->line is the
 *         statement's line).
 */
int skp_parse(const char *text, size_t len, skp_cb cb, void *arg, struct skp_error *err);

/** @brief The setkey keyword of a command ("add", "spdadd" ...), "?" if unknown. */
const char *skp_cmd_name(enum skp_cmd_type type);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_SETKEY_PARSE_H */
