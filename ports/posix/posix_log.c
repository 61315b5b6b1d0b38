/* The port's logger: a level threshold in front of one sink, stderr until
 * the host sets its own (syslog, a file ...). */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>

#include "ipsecif_posix.h"

static int log_level = IPSECIF_LOG_INFO;
static ipsecif_posix_log_fn log_fn;
static void *log_arg;

void ipsecif_posix_log_set(int level, ipsecif_posix_log_fn fn, void *arg)
{
    log_level = level;
    log_fn = fn;
    log_arg = arg;
}

bool ipsecif_posix_log_enabled(int level)
{
    return level <= log_level;
}

const char *ipsecif_posix_log_level_name(int level)
{
    static const char *const names[] = {"err", "warn", "info", "debug"};

    return level >= IPSECIF_LOG_ERR && level <= IPSECIF_LOG_DEBUG ? names[level] : NULL;
}

static void emit(int level, const char *msg)
{
    if (level < IPSECIF_LOG_ERR) {
        level = IPSECIF_LOG_ERR;
    }
    if (level > IPSECIF_LOG_DEBUG) {
        level = IPSECIF_LOG_DEBUG;
    }
    if (log_fn != NULL) {
        log_fn(log_arg, level, msg);
        return;
    }
    fprintf(stderr, "%s: %s\n", ipsecif_posix_log_level_name(level), msg);
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
