/* The library backend of the setkey executor: ipsecifd runs a script sent
 * over the control socket against its own context (rtr_setkey()). */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>

#include "router_cmd.h"
#include "setkey_exec.h"

static int result(int rc, bool policy, char *why)
{
    if (rc == IPSECIF_OK) {
        return 0;
    }
    snprintf(why, SKX_WHY, "%s", rtr_err_text(rc, policy));
    return -1;
}

static int sa_add(void *be, const struct ipsecif_sa_params *sa, bool update, char *why)
{
    const struct rtr_env *env = be;

    return result(update ? ipsecif_sa_update(env->ctx, sa, env->now)
                         : ipsecif_sa_add(env->ctx, sa, env->now),
                  false, why);
}

static int sa_get(void *be, const struct ipsecif_sa_params *sa, struct ipsecif_sa_info *out,
                  char *why)
{
    const struct rtr_env *env = be;

    return result(ipsecif_sa_get(env->ctx, sa->proto, &sa->src, &sa->dst, sa->spi, out), false,
                  why);
}

static int sa_getspi(void *be, const struct ipsecif_sa_params *sa, struct ipsecif_sa_info *out,
                     char *why)
{
    const struct rtr_env *env = be;
    uint32_t spi = 0;
    int rc;

    rc = ipsecif_sa_getspi(env->ctx, sa->proto, &sa->src, &sa->dst, sa->mode, sa->reqid, sa->spi,
                           sa->spi, 0, env->now, &spi);
    if (rc == IPSECIF_OK) {
        rc = ipsecif_sa_get(env->ctx, sa->proto, &sa->src, &sa->dst, spi, out);
    }
    return result(rc, false, why);
}

static int sa_delete(void *be, const struct ipsecif_sa_params *sa, char *why)
{
    const struct rtr_env *env = be;

    return result(ipsecif_sa_delete(env->ctx, sa->proto, &sa->src, &sa->dst, sa->spi), false, why);
}

struct find_sa {
    const struct ipsecif_addr *src;
    const struct ipsecif_addr *dst;
    uint32_t spi;
};

static int find_pair(void *arg, const struct ipsecif_sa_info *sa)
{
    struct find_sa *f = arg;

    if (memcmp(&sa->params.src, f->src, sizeof(*f->src)) == 0 &&
        memcmp(&sa->params.dst, f->dst, sizeof(*f->dst)) == 0) {
        f->spi = sa->params.spi;
        return 1;
    }
    return 0;
}

static int sa_deleteall(void *be, const struct ipsecif_sa_params *sa, char *why)
{
    const struct rtr_env *env = be;
    struct find_sa f = {&sa->src, &sa->dst, 0};
    int n = 0;

    /* The walk may not delete; find one, delete it, look again. */
    while (ipsecif_sa_walk(env->ctx, sa->proto, find_pair, &f) == 1) {
        if (ipsecif_sa_delete(env->ctx, sa->proto, &sa->src, &sa->dst, f.spi) != IPSECIF_OK) {
            return result(IPSECIF_ERR_INTERNAL, false, why);
        }
        n++;
    }
    return result(n > 0 ? IPSECIF_OK : IPSECIF_ERR_NOENT, false, why);
}

static int sa_flush(void *be, uint8_t proto, char *why)
{
    const struct rtr_env *env = be;

    (void)why;
    ipsecif_sa_flush(env->ctx, proto);
    return 0;
}

struct sa_walk {
    skx_sa_fn fn;
    void *arg;
    uint32_t left;
};

static int count_sa(void *arg, const struct ipsecif_sa_info *sa)
{
    (void)sa;
    (*(uint32_t *)arg)++;
    return 0;
}

static int each_sa(void *arg, const struct ipsecif_sa_info *sa)
{
    struct sa_walk *w = arg;

    /* The countdown ends at 0 on the last entry, as in a PF_KEY dump. */
    w->fn(w->arg, sa, w->left > 0 ? --w->left : 0);
    return 0;
}

static int sa_dump(void *be, uint8_t proto, skx_sa_fn fn, void *arg, char *why)
{
    const struct rtr_env *env = be;
    struct sa_walk w = {fn, arg, 0};

    (void)why;
    ipsecif_sa_walk(env->ctx, proto, count_sa, &w.left);
    if (w.left > 0) {
        ipsecif_sa_walk(env->ctx, proto, each_sa, &w);
    }
    return 0;
}

static int spd_add(void *be, const struct ipsecif_policy *p, bool update, char *why)
{
    const struct rtr_env *env = be;

    return result(update ? ipsecif_spd_update(env->ctx, p, env->now, NULL)
                         : ipsecif_spd_add(env->ctx, p, env->now, NULL),
                  true, why);
}

static int spd_delete(void *be, const struct ipsecif_policy *p, char *why)
{
    const struct rtr_env *env = be;

    return result(ipsecif_spd_delete(env->ctx, &p->sel, p->dir), true, why);
}

static int spd_flush(void *be, char *why)
{
    const struct rtr_env *env = be;

    (void)why;
    ipsecif_spd_flush(env->ctx);
    return 0;
}

struct spd_walk {
    skx_policy_fn fn;
    void *arg;
    uint32_t left;
};

static int each_policy(void *arg, const struct ipsecif_policy *p)
{
    struct spd_walk *w = arg;

    w->fn(w->arg, p, w->left > 0 ? --w->left : 0, false);
    return 0;
}

static int spd_dump(void *be, skx_policy_fn fn, void *arg, char *why)
{
    const struct rtr_env *env = be;
    struct spd_walk w = {fn, arg, (uint32_t)ipsecif_spd_count(env->ctx)};

    (void)why;
    if (w.left > 0) {
        ipsecif_spd_walk(env->ctx, each_policy, &w);
    }
    return 0;
}

static const struct skx_ops lib_ops = {
    .sa_add = sa_add,
    .sa_get = sa_get,
    .sa_getspi = sa_getspi,
    .sa_delete = sa_delete,
    .sa_deleteall = sa_deleteall,
    .sa_flush = sa_flush,
    .sa_dump = sa_dump,
    .spd_add = spd_add,
    .spd_delete = spd_delete,
    .spd_flush = spd_flush,
    .spd_dump = spd_dump,
};

int rtr_setkey(const struct rtr_env *env, struct rtr_out *o, const struct rtr_request *req)
{
    struct rtr_env be = *env;
    struct skx_args args;

    if (skx_args_parse(o, req->argc, req->argv, &args) < 0) {
        return -1;
    }
    if (args.script && !req->has_script) {
        return rtr_fail(o, "setkey: no script was sent");
    }
    return skx_run(&lib_ops, &be, env, o, &args, req->script, req->script_len);
}
