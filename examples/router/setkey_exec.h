/**
 * @file setkey_exec.h
 * @brief The example router's one setkey(8) executor: `setkey` options and
 *        the statements of skp_parse(), applied through a backend.
 *
 * Host code of examples/router. The executor reads the options (-c, -f
 * FILE, -D, -DP, -F, -FP), walks the statements of a script, calls the
 * backend for each, and prints what comes back: the SA and policy listings
 * of router_cmd (setkey -D / -DP formats, "No SAD entries." for an empty
 * dump) and the errors ("line N: STATEMENT: why"). Listings and errors are
 * so the same whichever backend ran them.
 *
 * Two backends exist:
 * - the library (setkey_lib.c, rtr_setkey()): ipsecifd runs a script that
 *   came over the control socket against its context, for what the Linux
 *   PF_KEY dialect cannot carry (ChaCha20-Poly1305, ESN: see
 *   spk_needs_control());
 * - PF_KEY messages (setkey_pfkey.c, spk_setkey()): ipsecifctl as a
 *   PF_KEY v2 client of ipsecifd's PF_KEY socket, as setkey(8) talks to a
 *   kernel.
 */
#ifndef IPSECIF_SETKEY_EXEC_H
#define IPSECIF_SETKEY_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"
#include "router_cmd.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Room for a backend's reason of a failure ("no such SA", "no reply from the daemon" ...). */
#define SKX_WHY 256

/** Receives one SA of a dump; seq counts down to 0 on the last. */
typedef void (*skx_sa_fn)(void *arg, const struct ipsecif_sa_info *sa, uint32_t seq);

/**
 * Receives one policy of a dump; seq counts down to 0 on the last;
 * per_socket marks a per-socket policy (listed with a prefix, as setkey(8)
 * of ipsec-tools lists Linux's).
 */
typedef void (*skx_policy_fn)(void *arg, const struct ipsecif_policy *p, uint32_t seq,
                              bool per_socket);

/**
 * @brief What a setkey backend does. Every operation is required; be is
 * the backend's own pointer given to skx_run(). Each returns 0, or -1 with
 * the reason in why (NUL-terminated, at most ::SKX_WHY bytes), in the
 * words of rtr_err_text() where a library error or its errno stands
 * behind it. Keys in sa are the statement's: valid during the call only.
 */
struct skx_ops {
    /** `add` (update false) or `update` an SA. */
    int (*sa_add)(void *be, const struct ipsecif_sa_params *sa, bool update, char *why);
    /** `get`: the SA (proto, src, dst, spi, NAT-T ports of sa) into out. */
    int (*sa_get)(void *be, const struct ipsecif_sa_params *sa, struct ipsecif_sa_info *out,
                  char *why);
    /** `getspi`: reserve sa->spi (mode, reqid of sa) as a larval SA, into out. */
    int (*sa_getspi)(void *be, const struct ipsecif_sa_params *sa, struct ipsecif_sa_info *out,
                     char *why);
    /** `delete` one SA. */
    int (*sa_delete)(void *be, const struct ipsecif_sa_params *sa, char *why);
    /** `deleteall`: every SA of sa->proto from sa->src to sa->dst (none: failure). */
    int (*sa_deleteall)(void *be, const struct ipsecif_sa_params *sa, char *why);
    /** `flush`: every SA of proto, 0 for all. */
    int (*sa_flush)(void *be, uint8_t proto, char *why);
    /** `dump`: each SA of proto (0 for all) to fn, in order; none is no failure. */
    int (*sa_dump)(void *be, uint8_t proto, skx_sa_fn fn, void *arg, char *why);
    /** `spdadd` (update false) or `spdupdate` a policy. */
    int (*spd_add)(void *be, const struct ipsecif_policy *p, bool update, char *why);
    /** `spddelete`: the policy of p->sel and p->dir. */
    int (*spd_delete)(void *be, const struct ipsecif_policy *p, char *why);
    /** `spdflush`. */
    int (*spd_flush)(void *be, char *why);
    /** `spddump`: each policy to fn, in order; none is no failure. */
    int (*spd_dump)(void *be, skx_policy_fn fn, void *arg, char *why);
};

/** What `setkey ARGS` asks for. */
struct skx_args {
    bool script; /**< -c or -f FILE: run a script. */
    bool dump;   /**< -D: dump. */
    bool flush;  /**< -F: flush. */
    bool spd;    /**< -P: the SPD instead of the SADB (with -D or -F). */
};

/**
 * @brief Read `setkey ARGS` (argv[0] is "setkey"); exactly one of -c,
 *        -f FILE (the file's name is only informational: the caller reads
 *        it), -D, -DP, -F, -FP.
 * @return 0, or -1 with the error in o.
 */
int skx_args_parse(struct rtr_out *o, int argc, char *const argv[], struct skx_args *args);

/**
 * @brief Run what args asks for through a backend: the script's statements
 *        in order (those before a bad one stay applied, as `setkey -f`
 *        leaves them), a dump or a flush. Listings go to o, printed for
 *        env's clocks.
 * @return 0, or -1 with the error in o ("line N: ..." for script errors).
 */
int skx_run(const struct skx_ops *ops, void *be, const struct rtr_env *env, struct rtr_out *o,
            const struct skx_args *args, const char *script, size_t script_len);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_SETKEY_EXEC_H */
