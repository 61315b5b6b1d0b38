/* The router's log front: the port's log as timestamped lines on stderr,
 * or to syslog. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "router_app.h"

static bool log_syslog;
static int log_level = IPSECIF_LOG_INFO;
static const char *log_ident = "ipsecif";

static void to_syslog(void *arg, int level, const char *msg)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

    (void)arg;
    syslog(prio[level], "%s", msg);
}

static void to_stderr(void *arg, int level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    (void)arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld %s %s: %s\n", when, ts.tv_nsec / 1000000L, log_ident,
            ipsecif_posix_log_level_name(level), msg);
}

void rtr_log_open(const char *ident, bool use_syslog, int level)
{
    log_ident = ident != NULL ? ident : "ipsecif";
    log_syslog = use_syslog;
    log_level = level;
    if (use_syslog) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
    ipsecif_posix_log_set(level, use_syslog ? to_syslog : to_stderr, NULL);
}

void rtr_log_close(void)
{
    if (log_syslog) {
        ipsecif_posix_log_set(log_level, to_stderr, NULL);
        closelog();
        log_syslog = false;
    }
}

int rtr_log_level_parse(const char *name)
{
    int level;

    for (level = IPSECIF_LOG_ERR; level <= IPSECIF_LOG_DEBUG; level++) {
        if (strcmp(name, ipsecif_posix_log_level_name(level)) == 0) {
            return level;
        }
    }
    return -1;
}
