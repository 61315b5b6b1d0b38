/* The PF_KEY socket server (see ipsecif_posix.h). */
#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_posix.h"

#define HDR_LEN 16u

static struct ipsecif_posix_pfkey_client *client_of(struct ipsecif_posix_pfkey *pk, uint32_t ep)
{
    size_t i;

    for (i = 0; i < pk->max_clients; i++) {
        if (pk->clients[i].fd >= 0 && pk->clients[i].ep == ep) {
            return &pk->clients[i];
        }
    }
    return NULL;
}

void ipsecif_posix_pfkey_deliver(struct ipsecif_posix_pfkey *pk, uint32_t ep, const uint8_t *msg,
                                 size_t len)
{
    struct ipsecif_posix_pfkey_client *c = client_of(pk, ep);
    int tries;

    if (c == NULL) {
        return;
    }
    for (tries = 0; tries < 2; tries++) {
        struct pollfd p = {c->fd, POLLOUT, 0};

        if (send(c->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
            return;
        }
        /* The requester reads its reply as soon as the first part is there
         * (a long dump): give it up to a second. */
        if ((errno != EAGAIN && errno != EWOULDBLOCK) || c->fd != pk->busy ||
            poll(&p, 1, 1000) <= 0) {
            break;
        }
    }
    ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "PF_KEY: message to endpoint %u dropped: %s", ep,
                       strerror(errno));
}

static void drop(struct ipsecif_posix_pfkey *pk, struct ipsecif_posix_pfkey_client *c)
{
    ipsecif_posix_loop_del(pk->loop, c->fd);
    close(c->fd);
    ipsecif_pfkey_close(pk->ctx, c->ep);
    ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "PF_KEY: endpoint %u closed", c->ep);
    c->fd = -1;
    c->ep = 0;
}

/* recv() gives 0 both for an empty datagram and for a peer that hung up. */
static bool hung_up(int fd, short revents)
{
    struct pollfd p = {fd, POLLRDHUP, 0};

    if ((revents & (POLLHUP | POLLERR)) != 0) {
        return true;
    }
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void on_client(void *arg, int fd, short revents)
{
    struct ipsecif_posix_pfkey_client *c = arg;
    struct ipsecif_posix_pfkey *pk = c->srv;
    ssize_t n;

    (void)fd;
    n = recv(c->fd, pk->buf, IPSECIF_POSIX_PFKEY_MSG_MAX, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if ((revents & (POLLHUP | POLLERR)) == 0) {
            return;
        }
    }
    if (n < 0 || (n == 0 && hung_up(c->fd, revents))) {
        drop(pk, c);
        return;
    }
    pk->busy = c->fd;
    if ((size_t)n > IPSECIF_POSIX_PFKEY_MSG_MAX) {
        ipsecif_posix_logf(IPSECIF_LOG_WARN,
                           "PF_KEY: endpoint %u: %zd-byte message refused (EMSGSIZE)", c->ep, n);
        ipsecif_pfkey_oversize(pk->ctx, c->ep, pk->buf, HDR_LEN);
    } else {
        if ((size_t)n < HDR_LEN) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN,
                               "PF_KEY: endpoint %u: %zd-byte message refused (EMSGSIZE)", c->ep,
                               n);
        }
        ipsecif_pfkey_send(pk->ctx, c->ep, pk->buf, (size_t)n, ipsecif_posix_now_ms());
    }
    pk->busy = -1;
    /* Requests may carry keys. */
    memset(pk->buf, 0,
           (size_t)n < IPSECIF_POSIX_PFKEY_MSG_MAX ? (size_t)n : IPSECIF_POSIX_PFKEY_MSG_MAX);
    (void)recv(c->fd, pk->buf, 1, MSG_DONTWAIT);
    pk->buf[0] = 0;
}

static void on_listen(void *arg, int fd, short revents)
{
    struct ipsecif_posix_pfkey *pk = arg;
    int i;

    (void)revents;
    for (i = 0; i < 8; i++) {
        struct ipsecif_posix_pfkey_client *sl = NULL;
        int sbuf = 1 << 20;
        size_t k;
        int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (s < 0) {
            return;
        }
        for (k = 0; k < pk->max_clients; k++) {
            if (pk->clients[k].fd < 0) {
                sl = &pk->clients[k];
                break;
            }
        }
        if (sl == NULL || ipsecif_pfkey_open(pk->ctx, pk->dialect, &sl->ep) != IPSECIF_OK) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN, "PF_KEY: too many clients");
            close(s);
            continue;
        }
        /* Room for a long dump; SO_SNDBUFFORCE when allowed, the capped value otherwise. */
        if (setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sbuf, sizeof(sbuf)) < 0) {
            setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sbuf, sizeof(sbuf));
        }
        if (ipsecif_posix_loop_add(pk->loop, s, POLLIN, on_client, sl) < 0) {
            ipsecif_pfkey_close(pk->ctx, sl->ep);
            close(s);
            continue;
        }
        sl->fd = s;
        ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "PF_KEY: endpoint %u opened", sl->ep);
    }
}

int ipsecif_posix_pfkey_open(struct ipsecif_posix_pfkey *pk, struct ipsecif_posix_loop *loop,
                             struct ipsecif_ctx *ctx, const char *path, size_t max_clients,
                             uint8_t dialect)
{
    struct sockaddr_un sun;
    struct stat st;
    size_t i;

    memset(pk, 0, sizeof(*pk));
    pk->fd = -1;
    pk->busy = -1;
    pk->loop = loop;
    pk->ctx = ctx;
    pk->dialect = dialect;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (path == NULL || max_clients == 0 || strlen(path) >= sizeof(sun.sun_path) ||
        strlen(path) >= sizeof(pk->path)) {
        errno = path == NULL || max_clients == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path));
    pk->buf = calloc(1, IPSECIF_POSIX_PFKEY_MSG_MAX);
    pk->clients = calloc(max_clients, sizeof(*pk->clients));
    if (pk->buf == NULL || pk->clients == NULL) {
        goto fail;
    }
    pk->max_clients = max_clients;
    for (i = 0; i < max_clients; i++) {
        pk->clients[i].fd = -1;
        pk->clients[i].srv = pk;
    }
    pk->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pk->fd < 0) {
        goto fail;
    }
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    if (bind(pk->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        goto fail;
    }
    memcpy(pk->path, path, strlen(path) + 1);
    /* Key management is privileged, as PF_KEY sockets are. */
    if (chmod(path, 0600) < 0 || listen(pk->fd, 16) < 0 ||
        ipsecif_posix_loop_add(loop, pk->fd, POLLIN, on_listen, pk) < 0) {
        goto fail;
    }
    return 0;
fail : {
    int e = errno;

    ipsecif_posix_pfkey_close(pk);
    errno = e;
    return -1;
}
}

void ipsecif_posix_pfkey_close(struct ipsecif_posix_pfkey *pk)
{
    size_t i;

    for (i = 0; pk->clients != NULL && i < pk->max_clients; i++) {
        if (pk->clients[i].fd >= 0) {
            drop(pk, &pk->clients[i]);
        }
    }
    if (pk->fd >= 0) {
        ipsecif_posix_loop_del(pk->loop, pk->fd);
        close(pk->fd);
        pk->fd = -1;
    }
    if (pk->path[0] != '\0') {
        unlink(pk->path);
        pk->path[0] = '\0';
    }
    free(pk->clients);
    free(pk->buf);
    pk->clients = NULL;
    pk->buf = NULL;
    pk->max_clients = 0;
}
