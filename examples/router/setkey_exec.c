/* The one setkey executor: options, statements, listings and errors; the
 * backend only applies and fetches. */
#define _POSIX_C_SOURCE 200809L

#include "setkey_exec.h"

#include <stdio.h>
#include <string.h>

#include "setkey_parse.h"

struct run {
    const struct skx_ops *ops;
    void *be;
    const struct rtr_env *env;
    struct rtr_out *o;
    unsigned listed;        /* entries of the dump under way */
    char why[SKX_WHY];      /* the backend's reason */
    char msg[SKX_WHY + 64]; /* "line N: STATEMENT: why" */
};

int skx_args_parse(struct rtr_out *o, int argc, char *const argv[], struct skx_args *args)
{
    int i;

    memset(args, 0, sizeof(*args));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-c") == 0) {
            args->script = true;
            continue;
        }
        if (strcmp(a, "-f") == 0) {
            if (i + 1 == argc) {
                return rtr_fail(o, "setkey: -f needs a file");
            }
            i++;
            args->script = true;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            return rtr_fail(o, "setkey: unknown argument '%s'", a);
        }
        for (a++; *a != '\0'; a++) {
            if (*a == 'D') {
                args->dump = true;
            } else if (*a == 'F') {
                args->flush = true;
            } else if (*a == 'P') {
                args->spd = true;
            } else {
                return rtr_fail(o, "setkey: unknown option -%c", *a);
            }
        }
    }
    if ((int)args->script + (int)args->dump + (int)args->flush != 1 ||
        (args->spd && args->script)) {
        return rtr_fail(o, "usage: setkey -c | -f FILE | -D | -DP | -F | -FP");
    }
    return 0;
}

/* ---- Listings ---- */

static void list_sa(void *arg, const struct ipsecif_sa_info *sa, uint32_t seq)
{
    struct run *r = arg;

    r->listed++;
    rtr_print_sa(r->env, r->o, sa, seq);
}

static void list_policy(void *arg, const struct ipsecif_policy *p, uint32_t seq, bool per_socket)
{
    struct run *r = arg;

    r->listed++;
    if (per_socket) {
        rtr_printf(r->o, "(per-socket policy) ");
    }
    rtr_print_policy(r->env, r->o, p, seq);
}

static int dump(struct run *r, bool spd, uint8_t proto)
{
    int rc;

    r->listed = 0;
    rc = spd ? r->ops->spd_dump(r->be, list_policy, r, r->why)
             : r->ops->sa_dump(r->be, proto, list_sa, r, r->why);
    if (rc == 0 && r->listed == 0) {
        rtr_printf(r->o, spd ? "No SPD entries.\n" : "No SAD entries.\n");
    }
    return rc;
}

/* ---- Statements ---- */

static int stmt(struct run *r, const struct skp_cmd *cmd)
{
    const struct skx_ops *ops = r->ops;
    const struct ipsecif_sa_params *sa = &cmd->sa;
    struct ipsecif_sa_info info;
    int rc;

    switch (cmd->type) {
    case SKP_CMD_ADD:
    case SKP_CMD_UPDATE:
        return ops->sa_add(r->be, sa, cmd->type == SKP_CMD_UPDATE, r->why);
    case SKP_CMD_GET:
    case SKP_CMD_GETSPI:
        memset(&info, 0, sizeof(info));
        rc = cmd->type == SKP_CMD_GET ? ops->sa_get(r->be, sa, &info, r->why)
                                      : ops->sa_getspi(r->be, sa, &info, r->why);
        if (rc == 0) {
            rtr_print_sa(r->env, r->o, &info, 0);
        }
        return rc;
    case SKP_CMD_DELETE:
        return ops->sa_delete(r->be, sa, r->why);
    case SKP_CMD_DELETEALL:
        return ops->sa_deleteall(r->be, sa, r->why);
    case SKP_CMD_FLUSH:
        return ops->sa_flush(r->be, sa->proto, r->why);
    case SKP_CMD_DUMP:
        return dump(r, false, sa->proto);
    case SKP_CMD_SPDADD:
    case SKP_CMD_SPDUPDATE:
        return ops->spd_add(r->be, &cmd->pol, cmd->type == SKP_CMD_SPDUPDATE, r->why);
    case SKP_CMD_SPDDELETE:
        return ops->spd_delete(r->be, &cmd->pol, r->why);
    case SKP_CMD_SPDFLUSH:
        return ops->spd_flush(r->be, r->why);
    case SKP_CMD_SPDDUMP:
        return dump(r, true, 0);
    default:
        snprintf(r->why, sizeof(r->why), "%s", ipsecif_strerror(IPSECIF_ERR_UNSUPPORTED));
        return -1;
    }
}

static int run_stmt(void *arg, const struct skp_cmd *cmd, unsigned line)
{
    struct run *r = arg;

    r->why[0] = '\0';
    if (stmt(r, cmd) == 0) {
        return 0;
    }
    snprintf(r->msg, sizeof(r->msg), "line %u: %s: %s", line, skp_cmd_name(cmd->type), r->why);
    return 1;
}

int skx_run(const struct skx_ops *ops, void *be, const struct rtr_env *env, struct rtr_out *o,
            const struct skx_args *args, const char *script, size_t script_len)
{
    struct run r;
    struct skp_error err;
    const char *what;
    int rc;

    memset(&r, 0, sizeof(r));
    r.ops = ops;
    r.be = be;
    r.env = env;
    r.o = o;
    if (args->script) {
        if (skp_parse(script, script_len, run_stmt, &r, &err) == SKP_OK) {
            return 0;
        }
        return rtr_fail(o, "%s", r.msg[0] != '\0' ? r.msg : err.msg);
    }
    if (args->dump) {
        what = args->spd ? "spddump" : "dump";
        rc = dump(&r, args->spd, 0);
    } else {
        what = args->spd ? "spdflush" : "flush";
        rc = args->spd ? ops->spd_flush(be, r.why) : ops->sa_flush(be, 0, r.why);
    }
    return rc == 0 ? 0 : rtr_fail(o, "%s: %s", what, r.why);
}
