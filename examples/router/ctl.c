/* Control socket: UNIX domain, SOCK_SEQPACKET, one request per connection.
 *
 * A request is one message. The reply is zero or more messages of output
 * text and a final message "OK" or "ERR <text>"; then the server closes.
 * The client knows the final message as the last one before end of file,
 * so output text may look like anything. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "router_app.h"

/* A client that stops reading must not stall the daemon for long. */
#define CONN_TIMEOUT_S 5

static int fill_addr(struct sockaddr_un *sun, const char *path)
{
    size_t len = strlen(path);

    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof(sun->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun->sun_path, path, len + 1);
    return 0;
}

static void set_timeouts(int fd)
{
    struct timeval tv;

    tv.tv_sec = CONN_TIMEOUT_S;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void send_msg(struct rtr_ctl_conn *c, const char *s, size_t n)
{
    if (c->broken) {
        return;
    }
    if (send(c->fd, s, n, MSG_NOSIGNAL) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "control reply: %s", strerror(errno));
        c->broken = true;
    }
}

static void flush_out(struct rtr_ctl_conn *c)
{
    if (c->n > 0) {
        send_msg(c, c->out, c->n);
        c->n = 0;
    }
}

void rtr_ctl_write(struct rtr_ctl_conn *c, const char *s, size_t n)
{
    while (n > 0) {
        size_t room = sizeof(c->out) - c->n;
        size_t k = n < room ? n : room;

        memcpy(c->out + c->n, s, k);
        c->n += k;
        s += k;
        n -= k;
        if (c->n == sizeof(c->out)) {
            flush_out(c);
        }
    }
}

void rtr_ctl_error(struct rtr_ctl_conn *c, const char *fmt, ...)
{
    va_list ap;

    if (c->failed) {
        return;
    }
    c->failed = true;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

static void serve(struct rtr_ctl *ctl, int fd)
{
    struct rtr_ctl_conn *c;
    char final[sizeof(c->err) + 8];
    ssize_t n;
    int len;

    /* The connection state is large (it holds a reply buffer); keep it off the stack. */
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->fd = fd;
    set_timeouts(fd);
    n = recv(fd, ctl->req, ctl->req_cap, MSG_TRUNC);
    if (n < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN, "control request: %s", strerror(errno));
        goto out;
    }
    if ((size_t)n >= ctl->req_cap) {
        rtr_ctl_error(c, "request too large (at most %zu bytes)", ctl->req_cap - 1);
    } else {
        ctl->fn(ctl->arg, c, ctl->req, (size_t)n);
    }
    /* Requests may carry keys (setkey scripts): do not keep them around. */
    memset(ctl->req, 0, (size_t)n < ctl->req_cap ? (size_t)n : ctl->req_cap);
    flush_out(c);
    if (c->failed) {
        len = snprintf(final, sizeof(final), "ERR %s", c->err);
    } else {
        len = snprintf(final, sizeof(final), "OK");
    }
    send_msg(c, final, (size_t)len);
out:
    free(c);
}

static void on_listen(void *arg, int fd, short revents)
{
    struct rtr_ctl *ctl = arg;
    int i;

    (void)revents;
    /* A few per wakeup, so that packets keep flowing under a flood of requests. */
    for (i = 0; i < 8; i++) {
        int c = accept(fd, NULL, NULL);

        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                ipsecif_posix_logf(IPSECIF_LOG_WARN, "control accept: %s", strerror(errno));
            }
            return;
        }
        serve(ctl, c);
        close(c);
    }
}

int rtr_ctl_open(struct rtr_ctl *ctl, struct ipsecif_posix_loop *loop, const char *path,
                 size_t req_max, rtr_ctl_fn fn, void *arg)
{
    struct sockaddr_un sun;
    struct stat st;
    int saved;

    memset(ctl, 0, sizeof(*ctl));
    ctl->fd = -1;
    if (fn == NULL || req_max == 0 || fill_addr(&sun, path) < 0) {
        if (errno != ENAMETOOLONG) {
            errno = EINVAL;
        }
        return -1;
    }
    ctl->req_cap = req_max + 1;
    ctl->req = malloc(ctl->req_cap);
    if (ctl->req == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ctl->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ctl->fd < 0) {
        goto fail;
    }
    /* A stale socket of an earlier run is replaced; any other file is not. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errno = EEXIST;
            goto fail;
        }
        unlink(path);
    }
    if (bind(ctl->fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0) {
        goto fail;
    }
    memcpy(ctl->path, sun.sun_path, sizeof(ctl->path));
    if (chmod(path, 0600) < 0 || listen(ctl->fd, 16) < 0 ||
        ipsecif_posix_loop_add(loop, ctl->fd, POLLIN, on_listen, ctl) < 0) {
        goto fail;
    }
    ctl->loop = loop;
    ctl->fn = fn;
    ctl->arg = arg;
    return 0;
fail:
    saved = errno;
    if (ctl->path[0] != '\0') {
        unlink(ctl->path);
    }
    if (ctl->fd >= 0) {
        close(ctl->fd);
    }
    free(ctl->req);
    memset(ctl, 0, sizeof(*ctl));
    ctl->fd = -1;
    errno = saved;
    return -1;
}

void rtr_ctl_close(struct rtr_ctl *ctl)
{
    if (ctl->fd >= 0) {
        if (ctl->loop != NULL) {
            ipsecif_posix_loop_del(ctl->loop, ctl->fd);
        }
        close(ctl->fd);
        unlink(ctl->path);
    }
    free(ctl->req);
    memset(ctl, 0, sizeof(*ctl));
    ctl->fd = -1;
}

int rtr_ctl_request(const char *path, const char *req, size_t len, rtr_ctl_out_fn out, void *arg,
                    char *err, size_t err_len)
{
    struct sockaddr_un sun;
    char *prev = NULL;
    char *cur = NULL;
    size_t prev_len = 0;
    int rc = -1;
    int fd = -1;
    int sndbuf;

    if (err_len > 0) {
        err[0] = '\0';
    }
    if (fill_addr(&sun, path) < 0) {
        snprintf(err, err_len, "%s: bad socket path", path);
        return -1;
    }
    prev = malloc(RTR_CTL_MSG + 1024);
    cur = malloc(RTR_CTL_MSG + 1024);
    if (prev == NULL || cur == NULL) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        goto out;
    }
    /* One request is one message: the send buffer must hold all of it. */
    sndbuf = (int)(len + 4096 < 0x7fffffff ? len + 4096 : 0x7fffffff);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (send(fd, req, len, MSG_NOSIGNAL) < 0) {
        snprintf(err, err_len, "sending the request: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, cur, RTR_CTL_MSG + 1024, 0);
        char *t;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(err, err_len, "reading the reply: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        /* The message before this one was output, not the final status. */
        if (prev_len > 0 && out != NULL) {
            out(arg, prev, prev_len);
        }
        t = prev;
        prev = cur;
        cur = t;
        prev_len = (size_t)n;
    }
    if (prev_len == 2 && memcmp(prev, "OK", 2) == 0) {
        rc = 0;
    } else if (prev_len >= 4 && memcmp(prev, "ERR ", 4) == 0) {
        size_t k = prev_len - 4;

        if (err_len > 0) {
            if (k >= err_len) {
                k = err_len - 1;
            }
            memcpy(err, prev + 4, k);
            err[k] = '\0';
        }
        rc = 1;
    } else {
        snprintf(err, err_len, "the daemon closed the connection without a status");
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(prev);
    free(cur);
    return rc;
}
