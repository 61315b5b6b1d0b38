/* The example router's OS-free commands: framing, sysctl, stats and the
 * listings (setkey runs in setkey_exec.c). The listings follow setkey(8)
 * of ipsec-tools (-D, -DP) and NetBSD's ifconfig and netstat -s; keys are
 * never printed: the library does not give them back, and the daemon keeps
 * no copy. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_cmd.h"

/* ---- Output ---- */

void rtr_printf(struct rtr_out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || o->write == NULL) {
        return;
    }
    if ((size_t)n >= sizeof(line)) {
        n = (int)sizeof(line) - 1;
    }
    o->write(o->arg, line, (size_t)n);
}

int rtr_fail(struct rtr_out *o, const char *fmt, ...)
{
    va_list ap;

    if (!o->failed) {
        o->failed = true;
        va_start(ap, fmt);
        vsnprintf(o->err, sizeof(o->err), fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *rtr_err_text(int rc, bool policy)
{
    switch (rc) {
    case IPSECIF_ERR_EXIST:
        return policy ? "policy already exists" : "SA already exists";
    case IPSECIF_ERR_NOENT:
        return policy ? "no such policy" : "no such SA";
    case IPSECIF_ERR_BUSY:
        return "policy is owned by an interface";
    case IPSECIF_ERR_FULL:
        return policy ? "no room for another policy" : "no room for another SA";
    case IPSECIF_ERR_STATE:
        return "the SA is mature: only its lifetimes can change";
    default:
        return ipsecif_strerror(rc);
    }
}

int rtr_pfkey_path(const char *ctl_path, char *out, size_t len)
{
    size_t n = strlen(ctl_path);
    int k;

    if (n >= 5 && strcmp(ctl_path + n - 5, ".sock") == 0) {
        n -= 5;
    }
    k = snprintf(out, len, "%.*s.pfkey", (int)n, ctl_path);
    return k < 0 || (size_t)k >= len ? -1 : 0;
}

/* ---- Framing ---- */

long rtr_request_build(char *out, size_t cap, int argc, char *const argv[], const char *script,
                       size_t script_len)
{
    size_t n = 0;
    int i;

    if (argc <= 0 || argc > RTR_ARGV_MAX) {
        return -1;
    }
    for (i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);

        if (len == 0 || memchr(argv[i], '\n', len) != NULL) {
            return -1;
        }
        if (n + len + 1 > cap) {
            return -1;
        }
        if (i > 0) {
            out[n++] = '\n';
        }
        memcpy(out + n, argv[i], len);
        n += len;
    }
    if (script != NULL) {
        if (cap - n < script_len + 1) {
            return -1;
        }
        out[n++] = '\0';
        memcpy(out + n, script, script_len);
        n += script_len;
    }
    return (long)n;
}

int rtr_request_split(const char *req, size_t len, struct rtr_request *out)
{
    const char *nul = memchr(req, '\0', len);
    size_t wlen = nul != NULL ? (size_t)(nul - req) : len;
    size_t i;
    char *w;

    memset(out, 0, sizeof(*out));
    if (wlen == 0 || wlen >= sizeof(out->words)) {
        return -1;
    }
    memcpy(out->words, req, wlen);
    out->words[wlen] = '\0';
    w = out->words;
    for (i = 0; i <= wlen; i++) {
        if (out->words[i] != '\n' && out->words[i] != '\0') {
            continue;
        }
        out->words[i] = '\0';
        if (*w == '\0' || out->argc == RTR_ARGV_MAX) {
            return -1;
        }
        out->argv[out->argc++] = w;
        w = out->words + i + 1;
    }
    if (nul != NULL) {
        out->has_script = true;
        out->script = nul + 1;
        out->script_len = len - wlen - 1;
    }
    return 0;
}

/* ---- Addresses ---- */

int rtr_parse_addr(const char *text, struct ipsecif_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = IPSECIF_AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = IPSECIF_AF_INET6;
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return -1;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *v)
{
    char *end;

    if (*s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    *v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || *v > max) {
        return -1;
    }
    return 0;
}

int rtr_parse_addr_port(const char *text, struct ipsecif_addr *out, uint16_t *port)
{
    char buf[64];
    const char *br = strchr(text, '[');
    size_t len = strlen(text);
    unsigned long v;

    *port = 0;
    if (br == NULL) {
        return rtr_parse_addr(text, out);
    }
    if (len >= sizeof(buf) || text[len - 1] != ']' || br == text) {
        return -1;
    }
    memcpy(buf, text, len + 1);
    buf[len - 1] = '\0';
    buf[br - text] = '\0';
    if (parse_uint(buf + (br - text) + 1, 65535, &v) < 0 || v == 0) {
        return -1;
    }
    *port = (uint16_t)v;
    return rtr_parse_addr(buf, out);
}

int rtr_parse_prefix(const char *text, struct ipsecif_addr *out, unsigned *plen)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t len = strlen(text);
    unsigned long v;

    if (len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, text, len + 1);
    if (slash != NULL) {
        buf[slash - text] = '\0';
    }
    if (rtr_parse_addr(buf, out) < 0) {
        return -1;
    }
    if (slash == NULL) {
        *plen = out->family == IPSECIF_AF_INET ? 32 : 128;
        return 0;
    }
    if (parse_uint(slash + 1, out->family == IPSECIF_AF_INET ? 32 : 128, &v) < 0) {
        return -1;
    }
    *plen = (unsigned)v;
    return 0;
}

const char *rtr_addr_str(const struct ipsecif_addr *a, char *buf, size_t len)
{
    int af = a->family == IPSECIF_AF_INET ? AF_INET : AF_INET6;

    if ((a->family != IPSECIF_AF_INET && a->family != IPSECIF_AF_INET6) ||
        inet_ntop(af, a->bytes, buf, (socklen_t)len) == NULL) {
        snprintf(buf, len, "?");
    }
    return buf;
}

/* ---- Names ---- */

static const char *ealg_name(uint8_t ealg)
{
    switch (ealg) {
    case IPSECIF_EALG_NULL:
        return "null";
    case IPSECIF_EALG_3DES_CBC:
        return "3des-cbc";
    case IPSECIF_EALG_AES_CBC:
        return "aes-cbc";
    case IPSECIF_EALG_AES_GCM16:
        return "aes-gcm-16";
    case IPSECIF_EALG_AES_GMAC:
        return "aes-gmac";
    case IPSECIF_EALG_CHACHA20_POLY1305:
        return "chacha20-poly1305";
    default:
        return "unknown";
    }
}

static const char *aalg_name(uint8_t aalg)
{
    switch (aalg) {
    case IPSECIF_AALG_HMAC_SHA1_96:
        return "hmac-sha1";
    case IPSECIF_AALG_HMAC_SHA2_256_128:
        return "hmac-sha256";
    case IPSECIF_AALG_HMAC_SHA2_384_192:
        return "hmac-sha384";
    case IPSECIF_AALG_HMAC_SHA2_512_256:
        return "hmac-sha512";
    default:
        return "unknown";
    }
}

static const char *mode_name(uint8_t mode)
{
    switch (mode) {
    case IPSECIF_MODE_TRANSPORT:
        return "transport";
    case IPSECIF_MODE_TUNNEL:
        return "tunnel";
    default:
        return "any";
    }
}

static const char *state_name(uint8_t state)
{
    static const char *const names[] = {"larval", "mature", "dying", "dead"};

    return state < 4 ? names[state] : "unknown";
}

static const char *proto_name(uint8_t proto)
{
    switch (proto) {
    case IPSECIF_IPPROTO_ESP:
        return "esp";
    case IPSECIF_IPPROTO_AH:
        return "ah";
    default:
        return "unknown";
    }
}

/* ---- Time ---- */

/* A monotonic time of the library (ms) as wall-clock seconds. */
static time_t wall_of(const struct rtr_env *env, uint64_t ms)
{
    uint64_t ago = ms <= env->now ? (env->now - ms) / 1000u : 0;

    return env->wall - (time_t)ago;
}

/* setkey's 20-column time: "Jan  2 15:04:05 2006", or blanks for "never". */
static const char *time_str(time_t t, bool never, char buf[21])
{
    struct tm tm;

    if (never || localtime_r(&t, &tm) == NULL || strftime(buf, 21, "%b %e %H:%M:%S %Y", &tm) == 0) {
        memset(buf, ' ', 20);
        buf[20] = '\0';
    }
    return buf;
}

/* ---- setkey -D ---- */

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

void rtr_print_sa(const struct rtr_env *env, struct rtr_out *o, const struct ipsecif_sa_info *sa,
                  uint32_t sadb_seq)
{
    const struct ipsecif_sa_params *p = &sa->params;
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    char t1[21];
    char t2[21];
    uint64_t age = sa->current.addtime <= env->now ? (env->now - sa->current.addtime) / 1000u : 0;

    rtr_addr_str(&p->src, s, sizeof(s));
    rtr_addr_str(&p->dst, d, sizeof(d));
    if (p->natt_sport != 0 || p->natt_dport != 0) {
        rtr_printf(o, "%s[%u] %s[%u]\n", s, p->natt_sport, d, p->natt_dport);
    } else {
        rtr_printf(o, "%s %s\n", s, d);
    }
    rtr_printf(o, "\t%s mode=%s spi=%u(0x%08x) reqid=%u(0x%08x)\n", proto_name(p->proto),
               mode_name(p->mode), p->spi, p->spi, p->reqid, p->reqid);
    if (p->ealg != IPSECIF_EALG_NONE) {
        /* AH's AES-GMAC is an authentication algorithm to setkey. */
        rtr_printf(o, "\t%s: %s\n", p->proto == IPSECIF_IPPROTO_AH ? "A" : "E", ealg_name(p->ealg));
    }
    if (p->aalg != IPSECIF_AALG_NONE) {
        rtr_printf(o, "\tA: %s\n", aalg_name(p->aalg));
    }
    /* setkey's replay= is the window in bytes (8 packets each). */
    rtr_printf(o, "\tseq=0x%08x replay=%u flags=0x%08x state=%s\n", p->seq, p->replay_window / 8,
               p->flags, state_name(sa->state));
    rtr_printf(o, "\tcreated: %s\tcurrent: %s\n",
               time_str(wall_of(env, sa->current.addtime), false, t1),
               time_str(env->wall, false, t2));
    rtr_printf(o, "\tdiff: %llu(s)\thard: %llu(s)\tsoft: %llu(s)\n", ull(age), ull(p->hard.addtime),
               ull(p->soft.addtime));
    rtr_printf(o, "\tlast: %s\thard: %llu(s)\tsoft: %llu(s)\n",
               time_str(wall_of(env, sa->current.usetime), sa->current.usetime == 0, t1),
               ull(p->hard.usetime), ull(p->soft.usetime));
    rtr_printf(o, "\tcurrent: %llu(bytes)\thard: %llu(bytes)\tsoft: %llu(bytes)\n",
               ull(sa->current.bytes), ull(p->hard.bytes), ull(p->soft.bytes));
    rtr_printf(o, "\tallocated: %u\thard: %u\tsoft: %u\n", sa->current.allocations,
               p->hard.allocations, p->soft.allocations);
    rtr_printf(o, "\tsadb_seq=%u pid=%u refcnt=0\n", sadb_seq, sa->pid);
}

/* ---- setkey -DP ---- */

static const char *ulproto_name(uint8_t p, char *buf, size_t len)
{
    static const struct {
        uint8_t num;
        const char *name;
    } names[] = {{IPSECIF_IPPROTO_ANY, "any"},
                 {1, "icmp"},
                 {4, "ipencap"},
                 {6, "tcp"},
                 {17, "udp"},
                 {41, "ipv6"},
                 {47, "gre"},
                 {50, "esp"},
                 {51, "ah"},
                 {58, "icmp6"},
                 {132, "sctp"}};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].num == p) {
            return names[i].name;
        }
    }
    snprintf(buf, len, "%u", p);
    return buf;
}

static bool is_icmp(uint8_t p)
{
    return p == IPSECIF_IPPROTO_ICMP || p == IPSECIF_IPPROTO_ICMPV6;
}

static const char *port_str(const struct ipsecif_selector *sel, uint16_t port, char *buf,
                            size_t len)
{
    if (is_icmp(sel->ulproto) || port == IPSECIF_PORT_ANY) {
        return "any";
    }
    snprintf(buf, len, "%u", port);
    return buf;
}

static const char *level_name(uint8_t level)
{
    static const char *const names[] = {"default", "use", "require", "unique"};

    return level < 4 ? names[level] : "unknown";
}

static const char *dir_name(uint8_t dir)
{
    static const char *const names[] = {"any", "in", "out", "fwd"};

    return dir < 4 ? names[dir] : "unknown";
}

static const char *action_name(uint8_t action)
{
    static const char *const names[] = {"discard", "none", "ipsec"};

    return action < 3 ? names[action] : "unknown";
}

/* "def", "low + 5" ...: setkey's form, relative to the nearest named base.
 * "+ N" means N more urgent (a lower value), as the parser reads it. */
static const char *prio_str(uint32_t prio, char *buf, size_t len)
{
    static const struct {
        uint32_t base;
        const char *name;
    } bases[] = {{0x40000000u, "high"}, {0x80000000u, "def"}, {0xc0000000u, "low"}};
    size_t best = 0;
    uint32_t best_dist = UINT32_MAX;
    size_t i;

    for (i = 0; i < 3; i++) {
        uint32_t dist = prio > bases[i].base ? prio - bases[i].base : bases[i].base - prio;

        if (dist < best_dist) {
            best_dist = dist;
            best = i;
        }
    }
    if (best_dist == 0) {
        snprintf(buf, len, "%s", bases[best].name);
    } else {
        snprintf(buf, len, "%s %c %u", bases[best].name, prio < bases[best].base ? '+' : '-',
                 best_dist);
    }
    return buf;
}

void rtr_print_policy(const struct rtr_env *env, struct rtr_out *o, const struct ipsecif_policy *p,
                      uint32_t seq)
{
    const struct ipsecif_selector *sel = &p->sel;
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    char sp[8];
    char dp[8];
    char up[8];
    char prio[32];
    char t1[21];
    char t2[21];
    uint8_t i;

    rtr_printf(o, "%s/%u[%s] %s/%u[%s] %s", rtr_addr_str(&sel->src, s, sizeof(s)), sel->src_plen,
               port_str(sel, sel->sport, sp, sizeof(sp)), rtr_addr_str(&sel->dst, d, sizeof(d)),
               sel->dst_plen, port_str(sel, sel->dport, dp, sizeof(dp)),
               ulproto_name(sel->ulproto, up, sizeof(up)));
    if (is_icmp(sel->ulproto) && sel->sport != IPSECIF_ICMP_ANY) {
        rtr_printf(o, " %u", sel->sport);
        if (sel->dport != IPSECIF_ICMP_ANY) {
            rtr_printf(o, ",%u", sel->dport);
        }
    }
    rtr_printf(o, "\n\t%s prio %s %s\n", dir_name(p->dir),
               prio_str(p->priority, prio, sizeof(prio)), action_name(p->action));
    for (i = 0; p->action == IPSECIF_ACTION_IPSEC && i < p->nreq && i < IPSECIF_MAX_REQUESTS; i++) {
        const struct ipsecif_ipsecreq *r = &p->req[i];

        rtr_printf(o, "\t%s/%s/", proto_name(r->proto), mode_name(r->mode));
        if (r->mode == IPSECIF_MODE_TUNNEL) {
            rtr_printf(o, "%s-%s", rtr_addr_str(&r->tun_src, s, sizeof(s)),
                       rtr_addr_str(&r->tun_dst, d, sizeof(d)));
        }
        if (r->level == IPSECIF_LEVEL_UNIQUE && r->reqid != 0) {
            rtr_printf(o, "/unique:%u\n", r->reqid);
        } else {
            rtr_printf(o, "/%s\n", level_name(r->level));
        }
    }
    rtr_printf(o, "\tcreated: %s  lastused: %s\n", time_str(wall_of(env, p->created), false, t1),
               time_str(wall_of(env, p->lastused), p->lastused == 0, t2));
    rtr_printf(o, "\tlifetime: 0(s) validtime: 0(s)\n");
    rtr_printf(o, "\tspid=%u seq=%u pid=0\n", p->id, seq);
    rtr_printf(o, "\trefcnt=1\n");
}

/* ---- sysctl ---- */

/* Not an ipsecif_sysctl key: the interfaces' nesting limit (NetBSD keeps its
 * ipsecif knobs under net.ipsecif). */
#define RTR_SYSCTL_MAX_NESTING (-1)

/* kept: the daemon's state file keeps the value (not a read-only one, and
 * not a second name of one kept under its first). */
static const struct {
    const char *name;
    int key;
    bool kept;
} sysctls[] = {
    {"net.inet.ipsec.esp_trans_deflev", IPSECIF_SYSCTL_ESP_TRANS_DEFLEV, true},
    {"net.inet.ipsec.esp_net_deflev", IPSECIF_SYSCTL_ESP_NET_DEFLEV, true},
    {"net.inet.ipsec.ah_trans_deflev", IPSECIF_SYSCTL_AH_TRANS_DEFLEV, true},
    {"net.inet.ipsec.ah_net_deflev", IPSECIF_SYSCTL_AH_NET_DEFLEV, true},
    {"net.inet.ipsec.def_policy", IPSECIF_SYSCTL_DEF_POLICY, true},
    {"net.inet.ipsec.enabled", IPSECIF_SYSCTL_ENABLED, true},
    {"net.inet.ipsec.used", IPSECIF_SYSCTL_USED, false},
    {"net.inet6.ipsec6.esp_trans_deflev", IPSECIF_SYSCTL6_ESP_TRANS_DEFLEV, true},
    {"net.inet6.ipsec6.esp_net_deflev", IPSECIF_SYSCTL6_ESP_NET_DEFLEV, true},
    {"net.inet6.ipsec6.ah_trans_deflev", IPSECIF_SYSCTL6_AH_TRANS_DEFLEV, true},
    {"net.inet6.ipsec6.ah_net_deflev", IPSECIF_SYSCTL6_AH_NET_DEFLEV, true},
    {"net.inet6.ipsec6.def_policy", IPSECIF_SYSCTL6_DEF_POLICY, true},
    /* NetBSD's ipsec6 enabled and used are the ipsec ones under a second name. */
    {"net.inet6.ipsec6.enabled", IPSECIF_SYSCTL_ENABLED, false},
    {"net.inet6.ipsec6.used", IPSECIF_SYSCTL_USED, false},
    {"net.ipsecif.max_nesting", RTR_SYSCTL_MAX_NESTING, true},
    {"net.key.prefered_oldsa", IPSECIF_SYSCTL_KEY_PREFERED_OLDSA, true},
};

#define NSYSCTL (sizeof(sysctls) / sizeof(sysctls[0]))

static int sysctl_get(const struct rtr_env *env, int key)
{
    if (key == RTR_SYSCTL_MAX_NESTING) {
        return ipsecif_if_max_nesting_get(env->ctx);
    }
    return ipsecif_sysctl_get(env->ctx, key);
}

static int sysctl_set(const struct rtr_env *env, int key, int value)
{
    if (key == RTR_SYSCTL_MAX_NESTING) {
        return ipsecif_if_max_nesting_set(env->ctx, value);
    }
    return ipsecif_sysctl_set(env->ctx, key, value);
}

size_t rtr_sysctl_count(void)
{
    return NSYSCTL;
}

const char *rtr_sysctl_name(size_t i)
{
    return i < NSYSCTL ? sysctls[i].name : NULL;
}

bool rtr_sysctl_kept(size_t i)
{
    return i < NSYSCTL && sysctls[i].kept;
}

int rtr_sysctl_find(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < NSYSCTL; i++) {
        if (strlen(sysctls[i].name) == len && memcmp(sysctls[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int rtr_sysctl_read(struct ipsecif_ctx *ctx, size_t i)
{
    struct rtr_env env = {ctx, 0, 0};

    if (ctx == NULL || i >= NSYSCTL) {
        return IPSECIF_ERR_ARG;
    }
    return sysctl_get(&env, sysctls[i].key);
}

int rtr_sysctl_write(struct ipsecif_ctx *ctx, size_t i, int value)
{
    struct rtr_env env = {ctx, 0, 0};

    if (ctx == NULL || i >= NSYSCTL) {
        return IPSECIF_ERR_ARG;
    }
    return sysctl_set(&env, sysctls[i].key, value);
}

static int sysctl_one(const struct rtr_env *env, struct rtr_out *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    unsigned long v;
    size_t i;
    int old;
    int rc;

    for (i = 0; i < NSYSCTL; i++) {
        if (strlen(sysctls[i].name) == nlen && memcmp(sysctls[i].name, arg, nlen) == 0) {
            break;
        }
    }
    if (i == NSYSCTL) {
        return rtr_fail(o, "sysctl: unknown name '%.*s'", (int)nlen, arg);
    }
    old = sysctl_get(env, sysctls[i].key);
    if (eq == NULL) {
        rtr_printf(o, "%s = %d\n", sysctls[i].name, old);
        return 0;
    }
    if (parse_uint(eq + 1, 255, &v) < 0) {
        return rtr_fail(o, "sysctl: %s: bad value '%s'", sysctls[i].name, eq + 1);
    }
    rc = sysctl_set(env, sysctls[i].key, (int)v);
    if (rc == IPSECIF_ERR_UNSUPPORTED) {
        return rtr_fail(o, "sysctl: %s: read-only", sysctls[i].name);
    }
    if (rc == IPSECIF_ERR_BUSY) {
        return rtr_fail(o, "sysctl: %s: busy: policies exist", sysctls[i].name);
    }
    if (rc != IPSECIF_OK) {
        return rtr_fail(o, "sysctl: %s: value %lu not allowed", sysctls[i].name, v);
    }
    rtr_printf(o, "%s: %d -> %lu\n", sysctls[i].name, old, v);
    return 0;
}

int rtr_sysctl(const struct rtr_env *env, struct rtr_out *o, int argc, char *const argv[])
{
    size_t i;
    int k;

    if (argc == 2 && strcmp(argv[1], "-a") == 0) {
        for (i = 0; i < NSYSCTL; i++) {
            rtr_printf(o, "%s = %d\n", sysctls[i].name, sysctl_get(env, sysctls[i].key));
        }
        return 0;
    }
    if (argc < 2) {
        return rtr_fail(o, "usage: sysctl -a | NAME | NAME=VALUE");
    }
    for (k = 1; k < argc; k++) {
        if (sysctl_one(env, o, argv[k]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- stats ---- */

#define STAT(field, text)                                                                          \
    {                                                                                              \
        offsetof(struct ipsecif_stats, field), text                                                \
    }

static const struct {
    size_t off;
    const char *text;
} stat_lines[] = {
    STAT(in_success, "inbound packets processed successfully"),
    STAT(in_bytes, "inbound bytes processed successfully"),
    STAT(in_polvio, "inbound packets violated process security policy"),
    STAT(in_nosa, "inbound packets with no SA available"),
    STAT(in_badspi, "inbound packets with an unknown SPI"),
    STAT(in_replay, "inbound packets failed on replay check"),
    STAT(in_auth, "inbound packets failed on authentication"),
    STAT(in_badpad, "inbound packets with bad padding"),
    STAT(in_malformed, "invalid inbound packets"),
    STAT(in_ecn, "inbound packets dropped by the ECN rule"),
    STAT(in_noroom, "inbound packets failed due to insufficient buffer room"),
    STAT(in_crypto, "inbound packets failed in the crypto backend"),
    STAT(in_natt_keepalive, "NAT-T keepalives received"),
    STAT(in_notours, "inbound packets not for IPsec"),
    STAT(out_success, "outbound packets processed successfully"),
    STAT(out_bytes, "outbound bytes processed successfully"),
    STAT(out_polvio, "outbound packets violated process security policy"),
    STAT(out_nosa, "outbound packets with no SA available"),
    STAT(out_noroom, "outbound packets failed due to insufficient buffer room"),
    STAT(out_toobig, "outbound packets too big (ICMP error sent back)"),
    STAT(out_seqwrap, "outbound packets refused on sequence number wrap"),
    STAT(out_crypto, "outbound packets failed in the crypto backend"),
    STAT(out_malformed, "invalid outbound packets"),
    STAT(out_down, "outbound packets to an interface that is down"),
    STAT(out_inval, "outbound packets of a family the interface does not forward"),
    STAT(out_port, "outbound packets failed to send"),
    STAT(out_nested, "outbound packets refused: ipsec interfaces nested too deep"),
    STAT(acquire, "ACQUIRE events raised"),
    STAT(host_out_ipsec, "host packets sent with IPsec"),
    STAT(host_out_clear, "host packets sent in clear by policy"),
    STAT(host_in_ipsec, "host packets received with IPsec and allowed"),
    STAT(host_in_clear, "host packets received in clear and allowed"),
};

int rtr_stats(const struct rtr_env *env, struct rtr_out *o, int argc, char *const argv[])
{
    const struct ipsecif_stats *st = ipsecif_stats_get(env->ctx);
    size_t i;

    (void)argv;
    if (argc != 1) {
        return rtr_fail(o, "usage: stats");
    }
    for (i = 0; i < sizeof(stat_lines) / sizeof(stat_lines[0]); i++) {
        uint64_t v;

        memcpy(&v, (const uint8_t *)st + stat_lines[i].off, sizeof(v));
        rtr_printf(o, "        %llu %s\n", ull(v), stat_lines[i].text);
    }
    return 0;
}

/* ---- ifconfig listing ---- */

/* NetBSD's interface flag bits, so the numbers read as on NetBSD. */
#define NB_IFF_UP 0x1u
#define NB_IFF_POINTOPOINT 0x10u
#define NB_IFF_RUNNING 0x40u
#define NB_IFF_LINK0 0x1000u
#define NB_IFF_LINK1 0x2000u
#define NB_IFF_LINK2 0x4000u
#define NB_IFF_MULTICAST 0x8000u

static uint64_t drops_in(const struct ipsecif_stats *s)
{
    return s->in_polvio + s->in_nosa + s->in_badspi + s->in_replay + s->in_auth + s->in_badpad +
           s->in_malformed + s->in_ecn + s->in_noroom + s->in_crypto;
}

static uint64_t drops_out(const struct ipsecif_stats *s)
{
    return s->out_polvio + s->out_nosa + s->out_noroom + s->out_toobig + s->out_seqwrap +
           s->out_crypto + s->out_malformed + s->out_down + s->out_inval + s->out_port +
           s->out_nested;
}

void rtr_print_if(struct rtr_out *o, const struct ipsecif_if_info *info,
                  const struct rtr_inner_addr *addrs, size_t naddrs)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{NB_IFF_UP, "UP"},           {NB_IFF_POINTOPOINT, "POINTOPOINT"},
                 {NB_IFF_RUNNING, "RUNNING"}, {NB_IFF_MULTICAST, "MULTICAST"},
                 {NB_IFF_LINK0, "LINK0"},     {NB_IFF_LINK1, "LINK1"},
                 {NB_IFF_LINK2, "LINK2"}};
    char fl[96];
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    uint32_t f = NB_IFF_POINTOPOINT | NB_IFF_MULTICAST;
    size_t i;
    size_t n = 0;

    if ((info->flags & IPSECIF_IFF_UP) != 0) {
        f |= NB_IFF_UP;
        if (info->has_tunnel) {
            f |= NB_IFF_RUNNING;
        }
    }
    f |= (info->flags & IPSECIF_IFF_LINK0) != 0 ? NB_IFF_LINK0 : 0;
    f |= (info->flags & IPSECIF_IFF_LINK1) != 0 ? NB_IFF_LINK1 : 0;
    f |= (info->flags & IPSECIF_IFF_LINK2) != 0 ? NB_IFF_LINK2 : 0;
    fl[0] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((f & names[i].bit) != 0) {
            n += (size_t)snprintf(fl + n, sizeof(fl) - n, "%s%s", n > 0 ? "," : "", names[i].name);
        }
    }
    rtr_printf(o, "%s: flags=0x%x<%s> mtu %u\n", info->name, f, fl, info->mtu);
    if (info->has_tunnel) {
        const char *fam = info->src.family == IPSECIF_AF_INET ? "inet" : "inet6";

        rtr_addr_str(&info->src, s, sizeof(s));
        rtr_addr_str(&info->dst, d, sizeof(d));
        if ((info->flags & IPSECIF_IFF_LINK0) != 0) {
            rtr_printf(o, "\ttunnel %s %s[%u] --> %s[%u]\n", fam, s,
                       info->sport != 0 ? info->sport : IPSECIF_NATT_PORT, d,
                       info->dport != 0 ? info->dport : IPSECIF_NATT_PORT);
        } else {
            rtr_printf(o, "\ttunnel %s %s --> %s\n", fam, s, d);
        }
    }
    for (i = 0; i < naddrs; i++) {
        const struct rtr_inner_addr *a = &addrs[i];

        rtr_addr_str(&a->addr, s, sizeof(s));
        if (a->peer.family != IPSECIF_AF_UNSPEC) {
            rtr_printf(o, "\t%s %s/%u --> %s\n",
                       a->addr.family == IPSECIF_AF_INET ? "inet" : "inet6", s, a->plen,
                       rtr_addr_str(&a->peer, d, sizeof(d)));
        } else {
            rtr_printf(o, "\t%s %s/%u\n", a->addr.family == IPSECIF_AF_INET ? "inet" : "inet6", s,
                       a->plen);
        }
    }
    if (info->has_tunnel) {
        rtr_printf(o, "\tunique id: v4 out %u in %u, v6 out %u in %u\n",
                   info->reqid[IPSECIF_IFPOL_V4_OUT], info->reqid[IPSECIF_IFPOL_V4_IN],
                   info->reqid[IPSECIF_IFPOL_V6_OUT], info->reqid[IPSECIF_IFPOL_V6_IN]);
        rtr_printf(o, "\tpolicy id: %u %u %u %u\n", info->policy_id[IPSECIF_IFPOL_V4_OUT],
                   info->policy_id[IPSECIF_IFPOL_V4_IN], info->policy_id[IPSECIF_IFPOL_V6_OUT],
                   info->policy_id[IPSECIF_IFPOL_V6_IN]);
    }
    rtr_printf(o,
               "\tinput: %llu packets, %llu bytes; output: %llu packets, %llu bytes; "
               "drops: in %llu, out %llu\n",
               ull(info->stats.in_success), ull(info->stats.in_bytes), ull(info->stats.out_success),
               ull(info->stats.out_bytes), ull(drops_in(&info->stats)),
               ull(drops_out(&info->stats)));
}
