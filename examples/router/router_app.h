/**
 * @file router_app.h
 * @brief The example router's application plumbing on POSIX: the control
 *        socket (server in ipsecifd, client in ipsecifctl), daemonizing
 *        with a pid file, and the log front (stderr or syslog).
 *
 * Host code of examples/router, not of a port: a port (ports/posix) gives
 * the event loop these run on and the logger they write to; how a daemon
 * is controlled, detaches and where its log goes is the application's.
 */
#ifndef IPSECIF_ROUTER_APP_H
#define IPSECIF_ROUTER_APP_H

#include <stdbool.h>
#include <stddef.h>

#include "ipsecif_posix.h"
#include "router_cmd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Logging ---- */

/**
 * @brief Send the port's log (ipsecif_posix_logf(), ipsecif_port::log) to
 *        stderr, one timestamped line per message under ident, or to syslog
 *        (daemon facility) under ident.
 * @param level the most verbose ::ipsecif_log_level written.
 */
void rtr_log_open(const char *ident, bool use_syslog, int level);

/** Stop logging to syslog (stderr needs nothing). */
void rtr_log_close(void);

/** "err", "warn", "info", "debug" to a level; -1 if unknown. */
int rtr_log_level_parse(const char *name);

/* ---- Control socket ---- */

/** Largest reply message. */
#define RTR_CTL_MSG 4096

/** One control connection being answered. Fields are private. */
struct rtr_ctl_conn {
    int fd;                /**< The connection. */
    bool failed;           /**< The handler reported an error. */
    bool broken;           /**< Sending failed; the rest is dropped. */
    size_t n;              /**< Bytes pending in out. */
    char out[RTR_CTL_MSG]; /**< Output not yet sent. */
    char err[512];         /**< The error text. */
};

/** Handles one request: req[0..len) as received (not NUL-terminated). */
typedef void (*rtr_ctl_fn)(void *arg, struct rtr_ctl_conn *c, const char *req, size_t len);

/** A control socket server (UNIX domain, SOCK_SEQPACKET, one request per connection). */
struct rtr_ctl {
    int fd;                          /**< Listening socket, -1 if closed. */
    char path[108];                  /**< Its path (unlinked at close). */
    struct ipsecif_posix_loop *loop; /**< Where it is watched. */
    rtr_ctl_fn fn;                   /**< Request handler. */
    void *arg;                       /**< Its argument. */
    char *req;                       /**< Request buffer. */
    size_t req_cap;                  /**< Its size (largest request + 1). */
};

/**
 * @brief Listen on path (an existing socket file there is replaced) and
 *        answer each connection's one request with fn.
 * @param req_max largest request accepted, bytes.
 * @return 0, or -1 with errno set.
 */
int rtr_ctl_open(struct rtr_ctl *ctl, struct ipsecif_posix_loop *loop, const char *path,
                 size_t req_max, rtr_ctl_fn fn, void *arg);

/** Stop listening and unlink the path. */
void rtr_ctl_close(struct rtr_ctl *ctl);

/** Append output text to the reply. */
void rtr_ctl_write(struct rtr_ctl_conn *c, const char *s, size_t n);

/** Make the request fail with this text (the first error given is kept). */
void rtr_ctl_error(struct rtr_ctl_conn *c, const char *fmt, ...) RTR_PRINTF(2, 3);

/** Called by the client for each output message. */
typedef void (*rtr_ctl_out_fn)(void *arg, const char *s, size_t n);

/**
 * @brief Client side: send one request, pass each output message to out,
 *        and return the final status.
 * @param[out] err the ERR text (or why the exchange failed), NUL-terminated.
 * @return 0 on OK, 1 on ERR, -1 when the exchange failed (err says why).
 */
int rtr_ctl_request(const char *path, const char *req, size_t len, rtr_ctl_out_fn out, void *arg,
                    char *err, size_t err_len);

/* ---- Daemon ---- */

/**
 * @brief Fork into the background: the parent waits until the child calls
 *        rtr_daemon_ready() (then exits 0) or exits (then exits 1).
 *        The child runs setsid() and chdir("/").
 * @param[out] ready_fd what the child passes to rtr_daemon_ready().
 * @return 0 in the child, -1 when the fork failed (in the caller).
 */
int rtr_daemonize(int *ready_fd);

/** Release the waiting parent and point stdin, stdout and stderr at /dev/null. */
void rtr_daemon_ready(int ready_fd);

/**
 * @brief Write the process id to path (created with mode 0644).
 * @return 0, or -1 with errno set.
 */
int rtr_pidfile_write(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_ROUTER_APP_H */
