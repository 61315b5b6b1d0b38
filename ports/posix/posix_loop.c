/* Event loop on poll(), monotonic time, and leaving the loop on signals. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipsecif_posix.h"

struct ipsecif_posix_loop_ent {
    ipsecif_posix_fd_fn fn; /* NULL: deleted, waiting for compaction */
    void *arg;
};

/* The one loop signals stop; a signal handler can only reach a global. */
static int sig_wfd = -1;

uint64_t ipsecif_posix_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ipsecif_posix_loop_init(struct ipsecif_posix_loop *loop, size_t cap)
{
    memset(loop, 0, sizeof(*loop));
    loop->sigpipe[0] = -1;
    loop->sigpipe[1] = -1;
    if (cap == 0) {
        errno = EINVAL;
        return -1;
    }
    loop->pfd = calloc(cap, sizeof(*loop->pfd));
    loop->ent = calloc(cap, sizeof(*loop->ent));
    if (loop->pfd == NULL || loop->ent == NULL) {
        ipsecif_posix_loop_free(loop);
        errno = ENOMEM;
        return -1;
    }
    loop->cap = cap;
    return 0;
}

void ipsecif_posix_loop_free(struct ipsecif_posix_loop *loop)
{
    if (loop->sigpipe[0] >= 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sig_wfd = -1;
        close(loop->sigpipe[0]);
        close(loop->sigpipe[1]);
    }
    free(loop->pfd);
    free(loop->ent);
    memset(loop, 0, sizeof(*loop));
    loop->sigpipe[0] = -1;
    loop->sigpipe[1] = -1;
}

static void compact(struct ipsecif_posix_loop *loop)
{
    size_t i;
    size_t j = 0;

    for (i = 0; i < loop->n; i++) {
        if (loop->ent[i].fn == NULL) {
            continue;
        }
        loop->pfd[j] = loop->pfd[i];
        loop->ent[j] = loop->ent[i];
        j++;
    }
    loop->n = j;
    loop->dirty = false;
}

int ipsecif_posix_loop_add(struct ipsecif_posix_loop *loop, int fd, short events,
                           ipsecif_posix_fd_fn fn, void *arg)
{
    size_t i;

    if (fd < 0 || fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    for (i = 0; i < loop->n; i++) {
        if (loop->ent[i].fn != NULL && loop->pfd[i].fd == fd) {
            errno = EEXIST;
            return -1;
        }
    }
    /* No compaction here: a dispatch round may be walking the arrays. */
    if (loop->n == loop->cap) {
        errno = ENOSPC;
        return -1;
    }
    loop->pfd[loop->n].fd = fd;
    loop->pfd[loop->n].events = events;
    loop->pfd[loop->n].revents = 0;
    loop->ent[loop->n].fn = fn;
    loop->ent[loop->n].arg = arg;
    loop->n++;
    return 0;
}

void ipsecif_posix_loop_del(struct ipsecif_posix_loop *loop, int fd)
{
    size_t i;

    /* Only mark: a dispatch round may be walking the arrays right now. */
    for (i = 0; i < loop->n; i++) {
        if (loop->ent[i].fn != NULL && loop->pfd[i].fd == fd) {
            loop->ent[i].fn = NULL;
            loop->pfd[i].fd = -1;
            loop->pfd[i].revents = 0;
            loop->dirty = true;
        }
    }
}

void ipsecif_posix_loop_set_timer(struct ipsecif_posix_loop *loop,
                                  ipsecif_posix_deadline_fn deadline,
                                  ipsecif_posix_expire_fn expire, void *arg)
{
    loop->deadline = deadline;
    loop->expire = expire;
    loop->timer_arg = arg;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;

    if (sig_wfd >= 0) {
        /* A full pipe already says "stop"; losing this byte is harmless. */
        if (write(sig_wfd, &b, 1) < 0) {
            b = 0;
        }
    }
    errno = saved;
}

static void on_sigpipe_readable(void *arg, int fd, short revents)
{
    struct ipsecif_posix_loop *loop = arg;
    unsigned char b[16];

    (void)revents;
    while (read(fd, b, sizeof(b)) > 0) {
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "signal received, stopping");
    ipsecif_posix_loop_stop(loop);
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int ipsecif_posix_loop_stop_on_signals(struct ipsecif_posix_loop *loop)
{
    struct sigaction sa;

    if (pipe(loop->sigpipe) < 0) {
        loop->sigpipe[0] = -1;
        loop->sigpipe[1] = -1;
        return -1;
    }
    if (set_flags(loop->sigpipe[0]) < 0 || set_flags(loop->sigpipe[1]) < 0 ||
        ipsecif_posix_loop_add(loop, loop->sigpipe[0], POLLIN, on_sigpipe_readable, loop) < 0) {
        goto fail;
    }
    sig_wfd = loop->sigpipe[1];
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
        goto fail;
    }
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        goto fail;
    }
    return 0;
fail:
    ipsecif_posix_loop_del(loop, loop->sigpipe[0]);
    sig_wfd = -1;
    close(loop->sigpipe[0]);
    close(loop->sigpipe[1]);
    loop->sigpipe[0] = -1;
    loop->sigpipe[1] = -1;
    return -1;
}

void ipsecif_posix_loop_stop(struct ipsecif_posix_loop *loop)
{
    /* Another thread may ask (then it wakes the loop itself). */
    __atomic_store_n(&loop->stop, true, __ATOMIC_RELAXED);
}

void ipsecif_posix_loop_set_idle(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                 void *arg)
{
    loop->idle = fn;
    loop->idle_arg = arg;
}

int ipsecif_posix_loop_add_flush(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                 void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (loop->nflush == IPSECIF_POSIX_LOOP_FLUSHES) {
        errno = ENOSPC;
        return -1;
    }
    loop->flush[loop->nflush] = fn;
    loop->flush_arg[loop->nflush] = arg;
    loop->nflush++;
    return 0;
}

void ipsecif_posix_loop_del_flush(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                  void *arg)
{
    size_t i;

    for (i = 0; i < loop->nflush; i++) {
        if (loop->flush[i] == fn && loop->flush_arg[i] == arg) {
            memmove(&loop->flush[i], &loop->flush[i + 1],
                    (loop->nflush - i - 1) * sizeof(loop->flush[0]));
            memmove(&loop->flush_arg[i], &loop->flush_arg[i + 1],
                    (loop->nflush - i - 1) * sizeof(loop->flush_arg[0]));
            loop->nflush--;
            return;
        }
    }
}

static int poll_timeout(struct ipsecif_posix_loop *loop, uint64_t *deadline)
{
    uint64_t now;

    *deadline = UINT64_MAX;
    if (loop->deadline == NULL) {
        return -1;
    }
    *deadline = loop->deadline(loop->timer_arg);
    if (*deadline == UINT64_MAX) {
        return -1;
    }
    now = ipsecif_posix_now_ms();
    if (*deadline <= now) {
        return 0;
    }
    if (*deadline - now > 60000) {
        return 60000; /* wake now and then; the deadline is asked again */
    }
    return (int)(*deadline - now);
}

static bool stopped(struct ipsecif_posix_loop *loop)
{
    return __atomic_load_n(&loop->stop, __ATOMIC_RELAXED);
}

void ipsecif_posix_loop_set_lock(struct ipsecif_posix_loop *loop, pthread_mutex_t *lock)
{
    loop->lock = lock;
}

int ipsecif_posix_loop_run(struct ipsecif_posix_loop *loop)
{
    while (!stopped(loop)) {
        uint64_t deadline;
        size_t i;
        size_t n;
        int timeout;
        int rc;

        if (loop->idle != NULL) {
            loop->idle(loop->idle_arg);
        }
        for (i = 0; i < loop->nflush; i++) {
            loop->flush[i](loop->flush_arg[i]);
        }
        if (loop->dirty) {
            compact(loop);
        }
        timeout = poll_timeout(loop, &deadline);
        if (loop->lock != NULL) {
            pthread_mutex_unlock(loop->lock);
        }
        rc = poll(loop->pfd, (nfds_t)loop->n, timeout);
        if (loop->lock != NULL) {
            pthread_mutex_lock(loop->lock);
        }
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "poll: %s", strerror(errno));
            return -1;
        }
        /* Entries added by a callback are not dispatched before the next poll. */
        n = loop->n;
        for (i = 0; i < n && rc > 0 && !stopped(loop); i++) {
            short revents = loop->pfd[i].revents;

            if (revents == 0 || loop->ent[i].fn == NULL) {
                continue;
            }
            rc--;
            loop->pfd[i].revents = 0;
            loop->ent[i].fn(loop->ent[i].arg, loop->pfd[i].fd, revents);
        }
        if (loop->expire != NULL && deadline != UINT64_MAX && !stopped(loop)) {
            uint64_t now = ipsecif_posix_now_ms();

            if (now >= deadline) {
                loop->expire(loop->timer_arg, now);
            }
        }
    }
    return 0;
}
