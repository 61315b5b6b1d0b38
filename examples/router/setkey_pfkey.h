/**
 * @file setkey_pfkey.h
 * @brief ipsecifctl's setkey as a PF_KEY v2 client of ipsecifd: the setkey
 *        executor (setkey_exec.h) with PF_KEY messages as its backend.
 *
 * Host code of examples/router (Linux dialect, `linux/pfkeyv2.h`). The
 * statements are sent as PF_KEY messages over ipsecifd's PF_KEY socket, as
 * setkey(8) sends them to a kernel: REGISTER first, X_SPDADD plus its fwd
 * copy for `-P in`; the replies are listed as setkey lists them, Linux
 * per-socket policies with a "(per-socket policy) " prefix.
 */
#ifndef IPSECIF_SETKEY_PFKEY_H
#define IPSECIF_SETKEY_PFKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "router_cmd.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Run `setkey ARGS` (argv[0] is "setkey"; -c / -f FILE with the
 *        script text, -D, -DP, -F, -FP) against the PF_KEY socket at path.
 * @return 0, or -1 with the error in o ("line N: ..." for script errors;
 *         statements before the bad one were applied).
 */
int spk_setkey(const char *path, struct rtr_out *o, int argc, char *const argv[],
               const char *script, size_t script_len);

/**
 * @brief Whether a script needs what the Linux PF_KEY dialect cannot carry
 *        (ChaCha20-Poly1305, extended sequence numbers); such scripts go
 *        over the control socket instead.
 */
bool spk_needs_control(const char *script, size_t script_len);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_SETKEY_PFKEY_H */
