/* ipsecifd -H's state file (see host_state.h): build, parse, apply, file I/O. */
#define _POSIX_C_SOURCE 200809L

#include "host_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "router_cmd.h"

/* Words on one line: policy's 17 and the requests. */
#define TOKENS_MAX (17 + IPSECIF_MAX_REQUESTS)

/* ---- CRC-32 ---- */

uint32_t rtr_state_crc32(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t c = 0xffffffffu;
    size_t i;
    int k;

    for (i = 0; i < len; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        }
    }
    return c ^ 0xffffffffu;
}

/* ---- Names ---- */

static const char *const dir_names[] = {NULL, "in", "out", "fwd"};
static const char *const action_names[] = {"discard", "none", "ipsec"};
static const char *const level_names[] = {"default", "use", "require", "unique"};

static int name_index(const char *const *names, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (names[i] != NULL && strcmp(names[i], s) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- Build ---- */

struct text {
    char *out;
    size_t cap;
    size_t len; /* what was asked for, even past cap */
    size_t records;
};

static void put(struct text *t, const char *fmt, ...)
{
    char *at = t->len < t->cap ? t->out + t->len : NULL;
    size_t room = t->len < t->cap ? t->cap - t->len : 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0) {
        t->len += (size_t)n;
    }
}

static bool addr_text(const struct ipsecif_addr *a, char *buf, size_t len)
{
    if (a->family == IPSECIF_AF_INET) {
        return inet_ntop(AF_INET, a->bytes, buf, (socklen_t)len) != NULL;
    }
    if (a->family == IPSECIF_AF_INET6) {
        return inet_ntop(AF_INET6, a->bytes, buf, (socklen_t)len) != NULL;
    }
    return false;
}

/* One request as PROTO/MODE/ENDPOINTS/LEVEL/REQID; false if it has no words. */
static bool put_req(struct text *t, const struct ipsecif_ipsecreq *r)
{
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    const char *proto = r->proto == IPSECIF_IPPROTO_ESP  ? "esp"
                        : r->proto == IPSECIF_IPPROTO_AH ? "ah"
                                                         : NULL;
    const char *mode = r->mode == IPSECIF_MODE_TRANSPORT ? "transport"
                       : r->mode == IPSECIF_MODE_TUNNEL  ? "tunnel"
                                                         : NULL;

    if (proto == NULL || mode == NULL || r->level > IPSECIF_LEVEL_UNIQUE) {
        return false;
    }
    put(t, " %s/%s/", proto, mode);
    if (r->tun_src.family == IPSECIF_AF_UNSPEC && r->tun_dst.family == IPSECIF_AF_UNSPEC) {
        put(t, "-");
    } else {
        if (!addr_text(&r->tun_src, s, sizeof(s)) || !addr_text(&r->tun_dst, d, sizeof(d))) {
            return false;
        }
        put(t, "%s-%s", s, d);
    }
    put(t, "/%s/%lu", level_names[r->level], (unsigned long)r->reqid);
    return true;
}

static int policy_cb(void *arg, const struct ipsecif_policy *p)
{
    struct text *t = arg;
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    uint8_t i;

    if (p->owned) {
        return 0; /* the interface makes it again */
    }
    if (p->dir < IPSECIF_DIR_IN || p->dir > IPSECIF_DIR_FWD || p->action > IPSECIF_ACTION_IPSEC ||
        p->nreq > IPSECIF_MAX_REQUESTS || !addr_text(&p->sel.src, s, sizeof(s)) ||
        !addr_text(&p->sel.dst, d, sizeof(d))) {
        return -1;
    }
    put(t, "policy %s prio %lu src %s/%u sport %u dst %s/%u dport %u proto %u %s",
        dir_names[p->dir], (unsigned long)p->priority, s, p->sel.src_plen, p->sel.sport, d,
        p->sel.dst_plen, p->sel.dport, p->sel.ulproto, action_names[p->action]);
    for (i = 0; i < p->nreq && p->action == IPSECIF_ACTION_IPSEC; i++) {
        if (!put_req(t, &p->req[i])) {
            return -1;
        }
    }
    put(t, "\n");
    t->records++;
    return 0;
}

void rtr_state_defaults(struct ipsecif_ctx *ctx, int *out)
{
    size_t i;

    for (i = 0; i < rtr_sysctl_count(); i++) {
        out[i] = rtr_sysctl_read(ctx, i);
    }
}

long rtr_state_build(struct ipsecif_ctx *ctx, const int *defaults, char *out, size_t cap)
{
    struct text t = {out, cap, 0, 0};
    uint32_t crc = 0;
    size_t i;

    if (ctx == NULL || (out == NULL && cap > 0)) {
        return -1;
    }
    if (cap > 0) {
        out[0] = '\0';
    }
    put(&t, "# ipsecifd host policy state: SPD and sysctls, no keys; written by the daemon\n");
    put(&t, "%s %d\n", RTR_STATE_MAGIC, RTR_STATE_VERSION);
    for (i = 0; i < rtr_sysctl_count(); i++) {
        int v = rtr_sysctl_read(ctx, i);

        if (rtr_sysctl_kept(i) && v >= 0 && (defaults == NULL || defaults[i] != v)) {
            put(&t, "sysctl %s %d\n", rtr_sysctl_name(i), v);
            t.records++;
        }
    }
    if (ipsecif_spd_walk(ctx, policy_cb, &t) != 0) {
        return -1;
    }
    put(&t, "sockets %lu\n", (unsigned long)ipsecif_spd_sock_count(ctx));
    t.records++;
    if (t.len < cap) {
        crc = rtr_state_crc32(out, t.len);
    }
    put(&t, "end %lu %08lx\n", (unsigned long)t.records, (unsigned long)crc);
    return (long)t.len;
}

/* ---- Parse ---- */

struct parser {
    unsigned line;
    char *err;
    struct rtr_state *st;
    size_t max_pols;
    size_t pols_cap;
    bool sockets_seen;
};

static int perr(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(p->err, RTR_STATE_ERR_SIZE, "line %u: ", p->line);
    if (n < 0 || n >= (int)RTR_STATE_ERR_SIZE) {
        n = 0;
    }
    va_start(ap, fmt);
    vsnprintf(p->err + n, RTR_STATE_ERR_SIZE - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Decimal, digits only, at most max. */
static bool num(const char *s, unsigned long max, unsigned long *v)
{
    unsigned long x = 0;
    size_t i;

    if (s[0] == '\0') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 10) {
            return false;
        }
        x = x * 10u + (unsigned long)(s[i] - '0');
    }
    if (x > max) {
        return false;
    }
    *v = x;
    return true;
}

/* ADDR/PLEN, the slash required. */
static bool prefix(const char *s, struct ipsecif_addr *a, uint8_t *plen)
{
    unsigned pl;

    if (strchr(s, '/') == NULL || rtr_parse_prefix(s, a, &pl) < 0) {
        return false;
    }
    *plen = (uint8_t)pl;
    return true;
}

/* Split s at every c into at most n parts (c replaced by NUL); the count. */
static size_t split(char *s, char c, char **parts, size_t n)
{
    size_t k = 0;

    parts[k++] = s;
    for (; *s != '\0'; s++) {
        if (*s == c) {
            if (k == n) {
                return n + 1;
            }
            *s = '\0';
            parts[k++] = s + 1;
        }
    }
    return k;
}

static int parse_req(struct parser *p, char *tok, struct ipsecif_ipsecreq *r)
{
    char *f[5];
    char *ep[2];
    unsigned long v;
    int lv;

    memset(r, 0, sizeof(*r));
    if (split(tok, '/', f, 5) != 5) {
        return perr(p, "request '%s': not PROTO/MODE/ENDPOINTS/LEVEL/REQID", tok);
    }
    if (strcmp(f[0], "esp") == 0) {
        r->proto = IPSECIF_IPPROTO_ESP;
    } else if (strcmp(f[0], "ah") == 0) {
        r->proto = IPSECIF_IPPROTO_AH;
    } else {
        return perr(p, "request: unknown protocol '%s'", f[0]);
    }
    if (strcmp(f[1], "transport") == 0) {
        r->mode = IPSECIF_MODE_TRANSPORT;
    } else if (strcmp(f[1], "tunnel") == 0) {
        r->mode = IPSECIF_MODE_TUNNEL;
    } else {
        return perr(p, "request: unknown mode '%s'", f[1]);
    }
    if (strcmp(f[2], "-") != 0) {
        if (split(f[2], '-', ep, 2) != 2 || rtr_parse_addr(ep[0], &r->tun_src) < 0 ||
            rtr_parse_addr(ep[1], &r->tun_dst) < 0 || r->tun_src.family != r->tun_dst.family) {
            return perr(p, "request: bad endpoints");
        }
    }
    lv = name_index(level_names, 4, f[3]);
    if (lv < 0) {
        return perr(p, "request: unknown level '%s'", f[3]);
    }
    r->level = (uint8_t)lv;
    if (!num(f[4], 0xffffffffu, &v)) {
        return perr(p, "request: bad request id '%s'", f[4]);
    }
    r->reqid = (uint32_t)v;
    return 0;
}

/* policy DIR prio N src A/P sport N dst A/P dport N proto N ACTION [REQ...] */
static int parse_policy(struct parser *p, char **w, size_t n)
{
    static const char *const keys[] = {"prio", "src", "sport", "dst", "dport", "proto"};
    struct ipsecif_policy pol;
    unsigned long v;
    size_t i;
    int k;

    memset(&pol, 0, sizeof(pol));
    if (n < 15) {
        return perr(p, "policy: too few words");
    }
    for (i = 0; i < 6; i++) {
        if (strcmp(w[2 + 2 * i], keys[i]) != 0) {
            return perr(p, "policy: '%s' where '%s' belongs", w[2 + 2 * i], keys[i]);
        }
    }
    k = name_index(dir_names, 4, w[1]);
    if (k < 0) {
        return perr(p, "policy: unknown direction '%s'", w[1]);
    }
    pol.dir = (uint8_t)k;
    if (!num(w[3], 0xffffffffu, &v)) {
        return perr(p, "policy: bad priority '%s'", w[3]);
    }
    pol.priority = (uint32_t)v;
    if (!prefix(w[5], &pol.sel.src, &pol.sel.src_plen) ||
        !prefix(w[9], &pol.sel.dst, &pol.sel.dst_plen) ||
        pol.sel.src.family != pol.sel.dst.family) {
        return perr(p, "policy: bad source or destination prefix");
    }
    if (!num(w[7], 65535, &v)) {
        return perr(p, "policy: bad source port '%s'", w[7]);
    }
    pol.sel.sport = (uint16_t)v;
    if (!num(w[11], 65535, &v)) {
        return perr(p, "policy: bad destination port '%s'", w[11]);
    }
    pol.sel.dport = (uint16_t)v;
    if (!num(w[13], 255, &v)) {
        return perr(p, "policy: bad protocol '%s'", w[13]);
    }
    pol.sel.ulproto = (uint8_t)v;
    k = name_index(action_names, 3, w[14]);
    if (k < 0) {
        return perr(p, "policy: unknown action '%s'", w[14]);
    }
    pol.action = (uint8_t)k;
    if ((pol.action == IPSECIF_ACTION_IPSEC) != (n > 15) || n - 15 > IPSECIF_MAX_REQUESTS) {
        if (pol.action != IPSECIF_ACTION_IPSEC) {
            return perr(p, "policy: %s takes no requests", w[14]);
        }
        return perr(p, "policy: ipsec takes 1 to %d requests", IPSECIF_MAX_REQUESTS);
    }
    for (i = 15; i < n; i++) {
        if (parse_req(p, w[i], &pol.req[pol.nreq]) < 0) {
            return -1;
        }
        pol.nreq++;
    }
    if (p->st->npols == p->max_pols) {
        return perr(p, "more than %lu policies (the daemon's capacity)",
                    (unsigned long)p->max_pols);
    }
    if (p->st->npols == p->pols_cap) {
        size_t cap = p->pols_cap == 0 ? 16 : p->pols_cap * 2;
        struct ipsecif_policy *bigger;

        if (cap > p->max_pols) {
            cap = p->max_pols;
        }
        bigger = realloc(p->st->pols, cap * sizeof(*bigger));
        if (bigger == NULL) {
            return perr(p, "out of memory");
        }
        p->st->pols = bigger;
        p->pols_cap = cap;
    }
    p->st->pols[p->st->npols++] = pol;
    return 0;
}

static int parse_sysctl(struct parser *p, char **w, size_t n)
{
    struct rtr_state *st = p->st;
    unsigned long v;
    size_t i;
    int idx;

    if (n != 3) {
        return perr(p, "sysctl: needs NAME VALUE");
    }
    idx = rtr_sysctl_find(w[1], strlen(w[1]));
    if (idx < 0) {
        return perr(p, "sysctl: unknown name '%s'", w[1]);
    }
    if (!rtr_sysctl_kept((size_t)idx)) {
        return perr(p, "sysctl: %s is not kept in the state file", w[1]);
    }
    if (!num(w[2], 255, &v)) {
        return perr(p, "sysctl: %s: bad value '%s'", w[1], w[2]);
    }
    for (i = 0; i < st->nsysctls; i++) {
        if (st->sysctls[i].index == (size_t)idx) {
            return perr(p, "sysctl: %s given twice", w[1]);
        }
    }
    if (st->sysctls == NULL) {
        st->sysctls = calloc(rtr_sysctl_count(), sizeof(*st->sysctls));
        if (st->sysctls == NULL) {
            return perr(p, "out of memory");
        }
    }
    st->sysctls[st->nsysctls].index = (size_t)idx;
    st->sysctls[st->nsysctls].value = (int)v;
    st->nsysctls++;
    return 0;
}

/* One record line (between the header and the end line). */
static int parse_record(struct parser *p, char *line)
{
    char *w[TOKENS_MAX];
    size_t n = split(line, ' ', w, TOKENS_MAX);
    size_t i;
    unsigned long v;

    if (n > TOKENS_MAX) {
        return perr(p, "too many words");
    }
    for (i = 0; i < n; i++) {
        if (w[i][0] == '\0') {
            return perr(p, "empty word (two spaces, or one at an end)");
        }
    }
    if (p->sockets_seen) {
        return perr(p, "'%s' after the sockets line", w[0]);
    }
    if (strcmp(w[0], "sysctl") == 0) {
        return parse_sysctl(p, w, n);
    }
    if (strcmp(w[0], "policy") == 0) {
        return parse_policy(p, w, n);
    }
    if (strcmp(w[0], "sockets") == 0) {
        if (n != 2 || !num(w[1], 0xffffffffu, &v)) {
            return perr(p, "sockets: needs a number");
        }
        p->st->sockets = (uint32_t)v;
        p->sockets_seen = true;
        return 0;
    }
    return perr(p, "unknown word '%.32s'", w[0]);
}

/* end RECORDS CRC, checked against what came before. */
static int parse_end(struct parser *p, char *line, size_t records, uint32_t crc)
{
    char *w[4];
    unsigned long n;
    char *e;
    unsigned long c;

    if (split(line, ' ', w, 3) != 3 || !num(w[1], 0xffffffffu, &n) || strlen(w[2]) != 8) {
        return perr(p, "end: needs RECORDS CRC");
    }
    errno = 0;
    c = strtoul(w[2], &e, 16);
    if (errno != 0 || *e != '\0' || w[2][0] == '-' || w[2][0] == '+') {
        return perr(p, "end: bad CRC '%s'", w[2]);
    }
    if (n != records) {
        return perr(p, "end: %lu records announced, %lu found", n, (unsigned long)records);
    }
    if ((uint32_t)c != crc) {
        return perr(p, "end: CRC %08lx, the text before has %08lx (changed or damaged)", c,
                    (unsigned long)crc);
    }
    if (!p->sockets_seen) {
        return perr(p, "end: no sockets line before it");
    }
    return 0;
}

int rtr_state_parse(const char *text, size_t len, size_t max_pols, struct rtr_state *out, char *err)
{
    struct parser p;
    char line[RTR_STATE_LINE_MAX];
    size_t off = 0;
    size_t records = 0;
    bool header = false;
    unsigned long ver;

    memset(out, 0, sizeof(*out));
    memset(&p, 0, sizeof(p));
    p.err = err;
    p.st = out;
    p.max_pols = max_pols;
    err[0] = '\0';
    if (text == NULL && len > 0) {
        return perr(&p, "no text");
    }
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
        size_t i;
        int rc;

        p.line++;
        if (n + 1 > RTR_STATE_LINE_MAX) {
            return perr(&p, "longer than %u bytes", RTR_STATE_LINE_MAX - 1);
        }
        if (nl == NULL) {
            return perr(&p, "no newline at its end: the file is cut short");
        }
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)text[off + i];

            if (c < 0x20 || c > 0x7e) {
                return perr(&p, "byte 0x%02x is not printable ASCII", c);
            }
        }
        memcpy(line, text + off, n);
        line[n] = '\0';
        if (!header) {
            char *w[3];

            if (line[0] == '#') {
                off += n + 1;
                continue;
            }
            if (strncmp(line, RTR_STATE_MAGIC " ", sizeof(RTR_STATE_MAGIC)) != 0 ||
                split(line, ' ', w, 2) != 2) {
                return perr(&p, "not an ipsecifd state file (no '%s' header)", RTR_STATE_MAGIC);
            }
            if (!num(w[1], 0xffffffffu, &ver) || ver != RTR_STATE_VERSION) {
                return perr(&p, "format version '%.16s'; this daemon reads version %d", w[1],
                            RTR_STATE_VERSION);
            }
            header = true;
            off += n + 1;
            continue;
        }
        if (strncmp(line, "end ", 4) == 0) {
            rc = parse_end(&p, line, records, rtr_state_crc32(text, off));
            if (rc < 0) {
                return rc;
            }
            if (off + n + 1 != len) {
                p.line++;
                return perr(&p, "bytes after the end line");
            }
            return 0;
        }
        rc = parse_record(&p, line);
        if (rc < 0) {
            return rc;
        }
        records++;
        off += n + 1;
    }
    p.line++;
    return perr(&p, header ? "no end line: the file is cut short" : "empty: no header");
}

void rtr_state_free(struct rtr_state *st)
{
    if (st == NULL) {
        return;
    }
    free(st->sysctls);
    free(st->pols);
    memset(st, 0, sizeof(*st));
}

/* ---- Apply ---- */

static void aerr(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, RTR_STATE_ERR_SIZE, fmt, ap);
    va_end(ap);
}

int rtr_state_apply(struct ipsecif_ctx *ctx, const struct rtr_state *st, uint64_t now, char *err)
{
    size_t nsys = rtr_sysctl_count();
    int *old = calloc(nsys > 0 ? nsys : 1, sizeof(*old));
    uint32_t *ids = calloc(st->npols > 0 ? st->npols : 1, sizeof(*ids));
    size_t added = 0;
    size_t i;
    int ret = -1;
    int rc;

    err[0] = '\0';
    if (old == NULL || ids == NULL) {
        aerr(err, "out of memory");
        goto out;
    }
    rtr_state_defaults(ctx, old);
    for (i = 0; i < st->nsysctls; i++) {
        const struct rtr_state_sysctl *s = &st->sysctls[i];

        rc = rtr_sysctl_write(ctx, s->index, s->value);
        if (rc != IPSECIF_OK) {
            aerr(err, "sysctl %s %d: %s", rtr_sysctl_name(s->index), s->value,
                 ipsecif_strerror(rc));
            goto undo;
        }
    }
    for (added = 0; added < st->npols; added++) {
        rc = ipsecif_spd_add(ctx, &st->pols[added], now, &ids[added]);
        if (rc != IPSECIF_OK) {
            aerr(err, "policy %lu of %lu: %s", (unsigned long)added + 1, (unsigned long)st->npols,
                 rtr_err_text(rc, true));
            goto undo;
        }
    }
    ret = 0;
    goto out;
undo:
    while (added-- > 0) {
        (void)ipsecif_spd_delete_id(ctx, ids[added]);
    }
    for (i = 0; i < nsys; i++) {
        if (old[i] >= 0) {
            (void)rtr_sysctl_write(ctx, i, old[i]);
        }
    }
out:
    free(old);
    free(ids);
    return ret;
}

/* ---- Files ---- */

int rtr_state_read_file(const char *path, size_t max, char **text, size_t *len, char *err)
{
    struct stat sb;
    char *buf = NULL;
    size_t n = 0;
    size_t cap;
    int fd;
    int ret = -1;

    *text = NULL;
    *len = 0;
    err[0] = '\0';
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        aerr(err, "%s", errno == ELOOP ? "a symbolic link" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &sb) < 0) {
        aerr(err, "%s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
        aerr(err, "not a regular file of uid %lu with mode 0600 (mode %04lo, uid %lu)",
             (unsigned long)geteuid(), (unsigned long)(sb.st_mode & 07777),
             (unsigned long)sb.st_uid);
        goto out;
    }
    if ((uintmax_t)sb.st_size > max) {
        aerr(err, "%lld bytes, more than the %lu this daemon reads", (long long)sb.st_size,
             (unsigned long)max);
        goto out;
    }
    /* As large as the file is (not max): one byte more shows it grew. */
    cap = (size_t)sb.st_size + 1;
    buf = malloc(cap);
    if (buf == NULL) {
        aerr(err, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - n);

        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            aerr(err, "%s", strerror(errno));
            goto out;
        }
        if (k == 0) {
            break;
        }
        n += (size_t)k;
        if (n == cap) {
            aerr(err, "it changed while it was read");
            goto out;
        }
    }
    *text = buf;
    *len = n;
    buf = NULL;
    ret = 1;
out:
    free(buf);
    close(fd);
    return ret;
}

int rtr_state_write_file(const char *path, const char *text, size_t len)
{
    char tmp[4096];
    size_t off = 0;
    int fd;
    int k;
    int saved;

    k = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (k < 0 || (size_t)k >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* No fsync: the file has to outlive the daemon, not the machine (the
     * page cache keeps it across kill -9; a reboot takes ipsech0 and its
     * rules away too), and an fsync per PF_KEY message made loading
     * hundreds of policies take seconds. A temporary file a crash left
     * behind goes first (never followed). */
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -1;
    }
    if (fchmod(fd, 0600) < 0) {
        goto fail;
    }
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            goto fail;
        }
        off += (size_t)w;
    }
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        goto fail;
    }
    return 0;
fail:
    saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    (void)unlink(tmp);
    errno = saved;
    return -1;
}

int rtr_state_path(const char *ctl_path, char *out, size_t len)
{
    size_t n = strlen(ctl_path);
    int k;

    if (n >= 5 && strcmp(ctl_path + n - 5, ".sock") == 0) {
        n -= 5;
    }
    k = snprintf(out, len, "%.*s.state", (int)n, ctl_path);
    return k < 0 || (size_t)k >= len ? -1 : 0;
}
