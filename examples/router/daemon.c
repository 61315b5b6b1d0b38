/* Daemonizing with a readiness handshake, and the pid file. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "router_app.h"

int rtr_daemonize(int *ready_fd)
{
    int p[2];
    pid_t pid;
    char b;
    ssize_t n;

    *ready_fd = -1;
    if (pipe(p) < 0) {
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        /* The parent reports whether the child got as far as serving. */
        close(p[1]);
        do {
            n = read(p[0], &b, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 ? 0 : 1);
    }
    close(p[0]);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    if (setsid() < 0 || chdir("/") < 0) {
        close(p[1]);
        return -1;
    }
    *ready_fd = p[1];
    return 0;
}

void rtr_daemon_ready(int ready_fd)
{
    int fd;
    char b = 1;

    /* Errors so far went to the caller's terminal; from now on only the log. */
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    if (ready_fd >= 0) {
        if (write(ready_fd, &b, 1) != 1) {
            b = 0;
        }
        close(ready_fd);
    }
}

int rtr_pidfile_write(const char *path)
{
    char text[32];
    int fd;
    int len;
    int saved;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (write(fd, text, (size_t)len) != (ssize_t)len) {
        saved = errno;
        close(fd);
        unlink(path);
        errno = saved != 0 ? saved : EIO;
        return -1;
    }
    return close(fd);
}
