/* Logging to stderr or syslog, with a level threshold. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "ipsecif_posix.h"

static int log_level = IPSECIF_LOG_INFO;
static bool log_syslog;
static const char *log_ident = "ipsecif";

static const char *const level_names[] = {"err", "warn", "info", "debug"};

void ipsecif_posix_log_open(const char *ident, bool use_syslog, int level)
{
    log_ident = ident != NULL ? ident : "ipsecif";
    log_level = level;
    log_syslog = use_syslog;
    if (use_syslog) {
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
}

void ipsecif_posix_log_close(void)
{
    if (log_syslog) {
        closelog();
        log_syslog = false;
    }
}

bool ipsecif_posix_log_enabled(int level)
{
    return level <= log_level;
}

int ipsecif_posix_log_level_parse(const char *name)
{
    int i;

    for (i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static void emit(int level, const char *msg)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    struct timespec ts;
    struct tm tm;
    char when[32];

    if (level < IPSECIF_LOG_ERR) {
        level = IPSECIF_LOG_ERR;
    }
    if (level > IPSECIF_LOG_DEBUG) {
        level = IPSECIF_LOG_DEBUG;
    }
    if (log_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld %s %s: %s\n", when, ts.tv_nsec / 1000000L, log_ident,
            level_names[level], msg);
}

void ipsecif_posix_logf(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!ipsecif_posix_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, msg);
}

void ipsecif_posix_port_log(void *user, int level, const char *msg)
{
    (void)user;
    if (ipsecif_posix_log_enabled(level)) {
        emit(level, msg);
    }
}
