/*
 * Transitional: lib/pfkey's view of the context while it still reads the
 * PF_KEY and socket-policy fields by their former flat names. Everything
 * else includes the module headers (core/ctx.h and below). Not installed.
 */
#ifndef IPSECIF_PRIV_H
#define IPSECIF_PRIV_H

#include "core/ctx.h"

#define pfkey_eps pfkey.eps
#define pfkey_buf pfkey.buf
#define pfkey_stats pfkey.stats
#define pfkey_nopen pfkey.nopen
#define pfkey_seq pfkey.seq
#define pfkey_wall_off_ms pfkey.wall_off_ms
#define pfkey_hook pfkey.hook
#define socks spd.socks

#endif /* IPSECIF_PRIV_H */
