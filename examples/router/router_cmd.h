/**
 * @file router_cmd.h
 * @brief The example router's commands that need no operating system:
 *        control-protocol framing, setkey, sysctl and stats, and the
 *        listings (setkey -D / -DP, ifconfig).
 *
 * Host code of examples/router, shared by ipsecifd, ipsecifctl and the unit
 * test. Output goes to a struct rtr_out; nothing here prints or logs keys.
 */
#ifndef IPSECIF_ROUTER_CMD_H
#define IPSECIF_ROUTER_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ipsecif/ipsecif.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RTR_PRINTF(f, a)
#endif

/** Where a command writes its output and its error. */
struct rtr_out {
    void (*write)(void *arg, const char *s, size_t n); /**< Output text sink. */
    void *arg;                                         /**< Its argument. */
    bool failed;                                       /**< An error was reported. */
    char err[512];                                     /**< The first error's text. */
};

/** Append formatted output. */
void rtr_printf(struct rtr_out *o, const char *fmt, ...) RTR_PRINTF(2, 3);

/** Report an error (the first one is kept); returns -1 for `return rtr_fail(...)`. */
int rtr_fail(struct rtr_out *o, const char *fmt, ...) RTR_PRINTF(2, 3);

/** What a command runs against: the context, and the time on both clocks. */
struct rtr_env {
    struct ipsecif_ctx *ctx; /**< The context. */
    uint64_t now;            /**< Monotonic time, ms (the library's clock). */
    time_t wall;             /**< Wall-clock time at the same instant. */
};

/* ---- Control-protocol framing ---- */

/** Most words in one request. */
#define RTR_ARGV_MAX 64

/**
 * @brief Build a request: the words joined by '\n', then, if script is not
 *        NULL, a NUL byte and the script.
 * @return the length, or -1 when it does not fit cap or a word is empty or
 *         contains '\n' or NUL.
 */
long rtr_request_build(char *out, size_t cap, int argc, char *const argv[], const char *script,
                       size_t script_len);

/** A request taken apart. */
struct rtr_request {
    int argc;                 /**< Number of words. */
    char *argv[RTR_ARGV_MAX]; /**< The words (point into words[]). */
    bool has_script;          /**< A NUL and a script followed. */
    const char *script;       /**< The script (points into the request). */
    size_t script_len;        /**< Its length. */
    char words[4096];         /**< Storage of the words. */
};

/**
 * @brief Split a request.
 * @return 0, or -1 (no words, too many, too long, an empty word).
 */
int rtr_request_split(const char *req, size_t len, struct rtr_request *out);

/**
 * @brief The PF_KEY socket path that goes with a control socket path when
 *        none is given: a trailing ".sock" becomes ".pfkey", otherwise
 *        ".pfkey" is appended (/run/ipsecifd.sock gives /run/ipsecifd.pfkey).
 * @return 0, or -1 when it does not fit len.
 */
int rtr_pfkey_path(const char *ctl_path, char *out, size_t len);

/* ---- Addresses ---- */

/** Parse an IPv4 or IPv6 literal. @return 0 or -1. */
int rtr_parse_addr(const char *text, struct ipsecif_addr *out);

/** Parse `ADDR` or `ADDR[PORT]` (port 0 when absent). @return 0 or -1. */
int rtr_parse_addr_port(const char *text, struct ipsecif_addr *out, uint16_t *port);

/** Parse `ADDR/PLEN` (PLEN defaults to the full length). @return 0 or -1. */
int rtr_parse_prefix(const char *text, struct ipsecif_addr *out, unsigned *plen);

/** Text of an address ("?" if it has none). */
const char *rtr_addr_str(const struct ipsecif_addr *a, char *buf, size_t len);

/* ---- Commands ---- */

/**
 * @brief `setkey` with its options against env->ctx: `-c` / `-f FILE` run
 *        the script (req->script), `-D` dumps SAs, `-DP` the SPD, `-F`
 *        flushes SAs, `-FP` the SPD. The setkey executor (setkey_exec.h)
 *        with the library as its backend; defined in setkey_lib.c.
 * @return 0, or -1 with the error in o ("line N: ..." for script errors;
 *         statements before the bad one were applied).
 */
int rtr_setkey(const struct rtr_env *env, struct rtr_out *o, const struct rtr_request *req);

/** `sysctl -a`, `sysctl NAME`, `sysctl NAME=VALUE`. @return 0 or -1. */
int rtr_sysctl(const struct rtr_env *env, struct rtr_out *o, int argc, char *const argv[]);

/*
 * The sysctl table behind `sysctl` (every name `sysctl -a` lists), by
 * index 0 .. rtr_sysctl_count() - 1, for code that walks all of them (the
 * daemon's state file).
 */

/** Number of names in the sysctl table. */
size_t rtr_sysctl_count(void);

/** Name of entry i, NULL past the end. */
const char *rtr_sysctl_name(size_t i);

/** Whether the state file keeps entry i: false for read-only entries
 *  (net.inet.ipsec.used) and for second names of an entry kept under its
 *  first (net.inet6.ipsec6.enabled). */
bool rtr_sysctl_kept(size_t i);

/** Index of the name (len bytes, not NUL-terminated), or -1. */
int rtr_sysctl_find(const char *name, size_t len);

/** Value of entry i in ctx (>= 0), or a negative IPSECIF_ERR_* code. */
int rtr_sysctl_read(struct ipsecif_ctx *ctx, size_t i);

/** Set entry i in ctx. @return IPSECIF_OK or the library's error (range, argument). */
int rtr_sysctl_write(struct ipsecif_ctx *ctx, size_t i, int value);

/** `stats`: the global counters, one per line. @return 0 or -1. */
int rtr_stats(const struct rtr_env *env, struct rtr_out *o, int argc, char *const argv[]);

/* ---- Listings ---- */

/** Print one SA as setkey -D does; sadb_seq is the dump's countdown value. */
void rtr_print_sa(const struct rtr_env *env, struct rtr_out *o, const struct ipsecif_sa_info *sa,
                  uint32_t sadb_seq);

/** Print one policy as setkey -DP does; seq is the dump's countdown value. */
void rtr_print_policy(const struct rtr_env *env, struct rtr_out *o, const struct ipsecif_policy *p,
                      uint32_t seq);

/** An address the router put on an interface's TUN device. */
struct rtr_inner_addr {
    struct ipsecif_addr addr; /**< Local address. */
    struct ipsecif_addr peer; /**< Point-to-point peer (IPv4), family 0 if none. */
    uint8_t plen;             /**< Prefix length. */
};

/** Print an interface as NetBSD's ifconfig does, plus unique and policy ids. */
void rtr_print_if(struct rtr_out *o, const struct ipsecif_if_info *info,
                  const struct rtr_inner_addr *addrs, size_t naddrs);

/** Text of a library error in the words the tools use for a command's object. */
const char *rtr_err_text(int rc, bool policy);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_ROUTER_CMD_H */
