/* setkey(8) script parser: statements to SADB and SPD commands.
 *
 * Two stages per statement: a lexer cuts the text up to the next ';' into
 * words (pointers into the caller's text, never copied), then a recursive
 * descent over those words fills one struct skp_cmd. Nothing reads past
 * text + len, and nothing relies on a terminating NUL. */
#define _POSIX_C_SOURCE 200809L

#include "setkey_parse.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NATT_PORT 4500
#define SHOW_MAX 64

/* Linux policy priorities as setkey computes them: lower runs first. */
#define PRIO_LOW 0xc0000000u
#define PRIO_DEF 0x80000000u
#define PRIO_HIGH 0x40000000u

/* The setkey man page's limit for unique:N. */
#define LEVEL_REQID_MAX 32767u

struct tok {
    const char *s; /* quoted: the bytes between the quotes */
    size_t len;
    unsigned line;
    bool quoted;
};

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    unsigned line; /* line at pos */
    struct tok tok[SKP_STMT_TOKENS_MAX];
    size_t ntok;
    size_t cur;
    unsigned end_line;   /* line of the statement's ';' */
    uint8_t only_family; /* from -4 / -6, 0 = either */
    struct skp_error *err;
};

/* addr[/plen][[port]] */
struct addrspec {
    struct ipsecif_addr a;
    int plen; /* -1: not given */
    int port; /* -1: not given, 0: any */
    const struct tok *t;
};

/* ---- Errors ---- */

static int fail(struct parser *p, unsigned line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct parser *p, unsigned line, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->err == NULL) {
        return code;
    }
    p->err->line = line;
    p->err->code = code;
    n = snprintf(p->err->msg, sizeof(p->err->msg), "line %u: ", line);
    if (n > 0 && (size_t)n < sizeof(p->err->msg)) {
        va_start(ap, fmt);
        vsnprintf(p->err->msg + n, sizeof(p->err->msg) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A printable, bounded copy of a word for messages. Never used on keys. */
static const char *show(const struct tok *t, char *buf, size_t cap)
{
    size_t n = t->len < SHOW_MAX ? t->len : SHOW_MAX;
    size_t i;

    if (cap < SHOW_MAX + 4) {
        return "?";
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t->s[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (t->len > SHOW_MAX) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static bool eq(const struct tok *t, const char *s)
{
    size_t n = strlen(s);

    return t != NULL && !t->quoted && t->len == n && memcmp(t->s, s, n) == 0;
}

struct command {
    const char *name;
    enum skp_cmd_type type;
};

static const struct command commands[] = {
    {"add", SKP_CMD_ADD},
    {"update", SKP_CMD_UPDATE},
    {"get", SKP_CMD_GET},
    {"getspi", SKP_CMD_GETSPI},
    {"delete", SKP_CMD_DELETE},
    {"deleteall", SKP_CMD_DELETEALL},
    {"flush", SKP_CMD_FLUSH},
    {"dump", SKP_CMD_DUMP},
    {"spdadd", SKP_CMD_SPDADD},
    {"spdupdate", SKP_CMD_SPDUPDATE},
    {"spddelete", SKP_CMD_SPDDELETE},
    {"spdflush", SKP_CMD_SPDFLUSH},
    {"spddump", SKP_CMD_SPDDUMP},
};

static const struct command *find_command(const struct tok *t)
{
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (eq(t, commands[i].name)) {
            return &commands[i];
        }
    }
    return NULL;
}

/* fmt takes exactly one %s: the word. A command word in the middle of a
 * statement most likely means a ';' was forgotten before it: say so. */
static int fail_tok(struct parser *p, const struct tok *t, int code, const char *fmt)
{
    static const char hint[] = " (missing ';' before it?)";
    char b[SHOW_MAX + 4];
    size_t i;
    size_t n;

    fail(p, t->line, code, fmt, show(t, b, sizeof(b)));
    for (i = 1; i < p->ntok; i++) {
        if (t == &p->tok[i] && find_command(t) != NULL && p->err != NULL) {
            n = strlen(p->err->msg);
            if (n + sizeof(hint) <= sizeof(p->err->msg)) {
                memcpy(p->err->msg + n, hint, sizeof(hint));
            }
        }
    }
    return code;
}

/* ---- Lexer ---- */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_bad(unsigned char c)
{
    return (c < 0x20 && !is_space(c)) || c == 0x7f;
}

static int lex_quoted(struct parser *p, struct tok *t)
{
    size_t start = p->pos + 1;
    size_t i = start;
    unsigned line = p->line;

    while (i < p->len && p->text[i] != '"') {
        if (p->text[i] == '\n') {
            line++;
        }
        i++;
    }
    if (i >= p->len) {
        return fail(p, t->line, SKP_ERR_SYNTAX, "unterminated quoted string");
    }
    if (i - start + 2 > SKP_TOKEN_MAX) {
        return fail(p, t->line, SKP_ERR_LIMIT, "quoted string longer than %d characters",
                    SKP_TOKEN_MAX);
    }
    t->s = p->text + start;
    t->len = i - start;
    t->quoted = true;
    p->pos = i + 1;
    p->line = line;
    return SKP_OK;
}

static int lex_word(struct parser *p, struct tok *t)
{
    size_t start = p->pos;
    size_t i = start;

    while (i < p->len) {
        unsigned char c = (unsigned char)p->text[i];
        if (is_space(c) || is_bad(c) || c == ';' || c == '#' || c == '"') {
            break;
        }
        i++;
    }
    t->s = p->text + start;
    t->len = i - start;
    t->quoted = false;
    p->pos = i;
    if (t->len > SKP_TOKEN_MAX) {
        char b[SHOW_MAX + 4];
        return fail(p, t->line, SKP_ERR_LIMIT, "word longer than %d characters: '%s'",
                    SKP_TOKEN_MAX, show(t, b, sizeof(b)));
    }
    return SKP_OK;
}

/* Reads the words of the next statement. Returns 1 with a statement, 0 at
 * the end of the input, or an error. Empty statements (";;") are skipped. */
static int lex_stmt(struct parser *p)
{
    int rc;

    p->ntok = 0;
    p->cur = 0;
    for (;;) {
        unsigned char c;
        struct tok *t;

        if (p->pos >= p->len) {
            if (p->ntok == 0) {
                return 0;
            }
            return fail_tok(p, &p->tok[0], SKP_ERR_SYNTAX,
                            "missing ';' at the end of the input (statement '%s')");
        }
        c = (unsigned char)p->text[p->pos];
        if (c == '\n') {
            p->line++;
            p->pos++;
            continue;
        }
        if (is_space(c)) {
            p->pos++;
            continue;
        }
        if (c == '#') {
            while (p->pos < p->len && p->text[p->pos] != '\n') {
                p->pos++;
            }
            continue;
        }
        if (c == ';') {
            p->end_line = p->line;
            p->pos++;
            if (p->ntok == 0) {
                continue;
            }
            return 1;
        }
        if (is_bad(c)) {
            return fail(p, p->line, SKP_ERR_SYNTAX, "invalid character 0x%02x", c);
        }
        if (p->ntok == SKP_STMT_TOKENS_MAX) {
            return fail(p, p->line, SKP_ERR_LIMIT, "statement has more than %d words",
                        SKP_STMT_TOKENS_MAX);
        }
        t = &p->tok[p->ntok];
        t->line = p->line;
        rc = c == '"' ? lex_quoted(p, t) : lex_word(p, t);
        if (rc != SKP_OK) {
            return rc;
        }
        p->ntok++;
    }
}

/* ---- Word helpers ---- */

static const struct tok *peek(const struct parser *p)
{
    return p->cur < p->ntok ? &p->tok[p->cur] : NULL;
}

static const struct tok *take(struct parser *p)
{
    return p->cur < p->ntok ? &p->tok[p->cur++] : NULL;
}

static bool is_option(const struct tok *t)
{
    return t != NULL && !t->quoted && t->len >= 2 && t->s[0] == '-';
}

static int missing(struct parser *p, const char *what)
{
    return fail(p, p->end_line, SKP_ERR_SYNTAX, "missing %s", what);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool has_hex_prefix(const char *s, size_t n)
{
    return n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

/* Decimal, or hex with 0x when hex_ok; at least one digit; <= max. */
static bool num(const char *s, size_t n, bool hex_ok, uint64_t max, uint64_t *out)
{
    unsigned base = 10;
    uint64_t v = 0;
    size_t i = 0;

    if (hex_ok && has_hex_prefix(s, n)) {
        base = 16;
        i = 2;
    }
    if (i >= n) {
        return false;
    }
    for (; i < n; i++) {
        int d = hexval((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base || v > (max - (uint64_t)d) / base) {
            return false;
        }
        v = v * base + (uint64_t)d;
    }
    *out = v;
    return true;
}

static bool tok_num(const struct tok *t, bool hex_ok, uint64_t max, uint64_t *out)
{
    return !t->quoted && num(t->s, t->len, hex_ok, max, out);
}

/* ---- Addresses ---- */

static bool addr_text(const char *s, size_t n, struct ipsecif_addr *a)
{
    char buf[64];

    memset(a, 0, sizeof(*a));
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (memchr(buf, ':', n) != NULL) {
        if (inet_pton(AF_INET6, buf, a->bytes) != 1) {
            return false;
        }
        a->family = IPSECIF_AF_INET6;
    } else {
        if (inet_pton(AF_INET, buf, a->bytes) != 1) {
            return false;
        }
        a->family = IPSECIF_AF_INET;
    }
    return true;
}

static const char *last_char(const char *s, size_t n, char c)
{
    while (n > 0) {
        n--;
        if (s[n] == c) {
            return s + n;
        }
    }
    return NULL;
}

/* "[port]" or "[any]": 0 = any. */
static bool port_text(const char *s, size_t n, int *port)
{
    uint64_t v;

    if (n == 3 && memcmp(s, "any", 3) == 0) {
        *port = 0;
        return true;
    }
    if (!num(s, n, false, 65535, &v)) {
        return false;
    }
    *port = (int)v;
    return true;
}

/* One word "addr[/plen][[port]]", or "addr[/plen]" followed by a word "[port]". */
static int take_addr(struct parser *p, const char *what, bool allow_plen, struct addrspec *as)
{
    const struct tok *t = take(p);
    const struct tok *pt;
    const char *s;
    const char *slash;
    const char *lb;
    size_t n;
    uint64_t v;

    if (t == NULL || is_option(t)) {
        if (t != NULL) {
            p->cur--;
        }
        return missing(p, what);
    }
    if (t->quoted) {
        return fail_tok(p, t, SKP_ERR_VALUE, "bad address '%s'");
    }
    memset(as, 0, sizeof(*as));
    as->plen = -1;
    as->port = -1;
    as->t = t;
    s = t->s;
    n = t->len;
    lb = memchr(s, '[', n);
    if (lb != NULL) {
        if (s[n - 1] != ']' || !port_text(lb + 1, (size_t)(s + n - 1 - (lb + 1)), &as->port)) {
            return fail_tok(p, t, SKP_ERR_VALUE, "bad port in '%s'");
        }
        n = (size_t)(lb - s);
    } else if (memchr(s, ']', n) != NULL) {
        return fail_tok(p, t, SKP_ERR_VALUE, "bad port in '%s'");
    }
    slash = last_char(s, n, '/');
    if (!addr_text(s, slash != NULL ? (size_t)(slash - s) : n, &as->a)) {
        return fail_tok(p, t, SKP_ERR_VALUE, "bad address '%s'");
    }
    if (slash != NULL) {
        unsigned bits = as->a.family == IPSECIF_AF_INET ? 32 : 128;
        if (!allow_plen) {
            return fail_tok(p, t, SKP_ERR_VALUE, "prefix length not allowed in '%s'");
        }
        if (!num(slash + 1, (size_t)(s + n - (slash + 1)), false, bits, &v)) {
            return fail_tok(p, t, SKP_ERR_VALUE, "bad prefix length in '%s'");
        }
        as->plen = (int)v;
    }
    /* setkey's lexer also takes the port as a word of its own. */
    pt = peek(p);
    if (as->port < 0 && pt != NULL && !pt->quoted && pt->len >= 1 && pt->s[0] == '[') {
        p->cur++;
        if (pt->len < 2 || pt->s[pt->len - 1] != ']' ||
            !port_text(pt->s + 1, pt->len - 2, &as->port)) {
            return fail_tok(p, pt, SKP_ERR_VALUE, "bad port '%s'");
        }
    }
    if (p->only_family != 0 && as->a.family != p->only_family) {
        char b[SHOW_MAX + 4];
        return fail(p, t->line, SKP_ERR_VALUE, "address '%s' is not IPv%u (-%u)",
                    show(t, b, sizeof(b)), p->only_family, p->only_family);
    }
    return SKP_OK;
}

static int same_family(struct parser *p, const struct addrspec *src, const struct addrspec *dst)
{
    if (src->a.family != dst->a.family) {
        return fail_tok(p, dst->t, SKP_ERR_VALUE,
                        "address families of source and destination differ at '%s'");
    }
    return SKP_OK;
}

/* [-46n] right after the command word. */
static int take_aiflags(struct parser *p)
{
    const struct tok *t;
    size_t i;

    p->only_family = 0;
    while ((t = peek(p)) != NULL && is_option(t)) {
        for (i = 1; i < t->len; i++) {
            if (t->s[i] != '4' && t->s[i] != '6' && t->s[i] != 'n') {
                break;
            }
        }
        if (i < t->len) {
            return SKP_OK; /* not an address flag: let the caller complain */
        }
        for (i = 1; i < t->len; i++) {
            if (t->s[i] == '4') {
                p->only_family = IPSECIF_AF_INET;
            } else if (t->s[i] == '6') {
                p->only_family = IPSECIF_AF_INET6;
            }
            /* 'n' (no name lookups) is what this parser always does. */
        }
        p->cur++;
    }
    return SKP_OK;
}

/* ---- SA commands ---- */

struct alg {
    const char *name;
    int id;     /* library value, -1 = setkey knows it, we do not */
    bool nokey; /* setkey takes no key for it */
    bool aead;  /* carries its own ICV */
};

static const struct alg ealgs[] = {
    {"null", IPSECIF_EALG_NULL, true, false},
    {"3des-cbc", IPSECIF_EALG_3DES_CBC, false, false},
    {"rijndael-cbc", IPSECIF_EALG_AES_CBC, false, false},
    {"aes-cbc", IPSECIF_EALG_AES_CBC, false, false},
    {"aes-gcm-16", IPSECIF_EALG_AES_GCM16, false, true},
    {"aes-gmac", IPSECIF_EALG_AES_GMAC, false, true},
    {"chacha20-poly1305", IPSECIF_EALG_CHACHA20_POLY1305, false, true},
    {"des-cbc", -1, false, false},
    {"des-deriv", -1, false, false},
    {"3des-deriv", -1, false, false},
    {"des-iv64", -1, false, false},
    {"des-iv32", -1, false, false},
    {"blowfish-cbc", -1, false, false},
    {"cast128-cbc", -1, false, false},
    {"twofish-cbc", -1, false, false},
    {"aes-ctr", -1, false, false},
    {"camellia-cbc", -1, false, false},
};

static const struct alg aalgs[] = {
    {"hmac-sha1", IPSECIF_AALG_HMAC_SHA1_96, false, false},
    {"hmac-sha256", IPSECIF_AALG_HMAC_SHA2_256_128, false, false},
    {"hmac-sha384", IPSECIF_AALG_HMAC_SHA2_384_192, false, false},
    {"hmac-sha512", IPSECIF_AALG_HMAC_SHA2_512_256, false, false},
    {"null", IPSECIF_AALG_NONE, true, false},
    {"hmac-md5", -1, false, false},
    {"keyed-md5", -1, false, false},
    {"keyed-sha1", -1, false, false},
    {"hmac-ripemd160", -1, false, false},
    {"aes-xcbc-mac", -1, false, false},
    {"tcp-md5", -1, false, false},
};

/* Option bits, to refuse an option given twice. */
enum {
    OPT_M = 1u << 0,
    OPT_R = 1u << 1,
    OPT_U = 1u << 2,
    OPT_LH = 1u << 3,
    OPT_LS = 1u << 4,
    OPT_BH = 1u << 5,
    OPT_BS = 1u << 6,
    OPT_ESN = 1u << 7,
    OPT_E = 1u << 8,
    OPT_A = 1u << 9
};

/* What an SA command takes after the addresses. */
enum {
    SA_SPI = 1u << 0, /* an SPI */
    SA_EXT = 1u << 1, /* extensions (-m, -u ...) */
    SA_ALGS = 1u << 2 /* algorithms and keys */
};

static const struct alg *find_alg(const struct alg *tab, size_t n, const struct tok *t)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (eq(t, tab[i].name)) {
            return &tab[i];
        }
    }
    return NULL;
}

/* The key after "-E alg" / "-A alg": "text" or 0x hex, decoded into buf. */
static int take_key(struct parser *p, const struct alg *a, bool enc, uint8_t *buf, size_t cap,
                    size_t *outlen)
{
    const struct tok *t = peek(p);
    const char *opt = enc ? "-E" : "-A";
    size_t n;
    size_t i;
    size_t o;

    if (t == NULL || is_option(t)) {
        return fail(p, t != NULL ? t->line : p->end_line, SKP_ERR_SYNTAX,
                    "missing key after '%s %s'", opt, a->name);
    }
    p->cur++;
    /* Never echo the word: it may be a mistyped secret. */
    if (t->quoted) {
        n = t->len;
    } else if (has_hex_prefix(t->s, t->len) && t->len > 2) {
        for (i = 2; i < t->len; i++) {
            if (hexval((unsigned char)t->s[i]) < 0) {
                return fail(p, t->line, SKP_ERR_VALUE, "bad hex key after '%s %s'", opt, a->name);
            }
        }
        n = (t->len - 2 + 1) / 2;
    } else {
        return fail(p, t->line, SKP_ERR_VALUE, "bad key after '%s %s': use \"text\" or 0x hex", opt,
                    a->name);
    }
    if (n > cap || !(enc ? ipsecif_ealg_keylen_ok((uint8_t)a->id, n)
                         : ipsecif_aalg_keylen_ok((uint8_t)a->id, n))) {
        return fail(p, t->line, SKP_ERR_VALUE, "key length %zu does not fit %s", n, a->name);
    }
    if (t->quoted) {
        memcpy(buf, t->s, n);
    } else {
        /* An odd digit count gets a leading zero nibble, as setkey does. */
        i = 2;
        o = 0;
        if ((t->len - 2) % 2 != 0) {
            buf[o++] = (uint8_t)hexval((unsigned char)t->s[i++]);
        }
        for (; i + 1 < t->len; i += 2) {
            buf[o++] =
                (uint8_t)(hexval((unsigned char)t->s[i]) << 4 | hexval((unsigned char)t->s[i + 1]));
        }
    }
    *outlen = n;
    return SKP_OK;
}

static int take_alg(struct parser *p, const struct tok *opt, struct skp_cmd *c)
{
    bool enc = eq(opt, "-E");
    const struct tok *t = take(p);
    const struct alg *a;
    size_t len = 0;
    int rc;

    if (t == NULL || is_option(t)) {
        return fail_tok(p, opt, SKP_ERR_SYNTAX, "missing algorithm after '%s'");
    }
    a = enc ? find_alg(ealgs, sizeof(ealgs) / sizeof(ealgs[0]), t)
            : find_alg(aalgs, sizeof(aalgs) / sizeof(aalgs[0]), t);
    if (!enc && a == NULL && eq(t, "aes-gmac")) {
        /* AH with AES-GMAC (RFC 4543), an authentication algorithm here as
         * in NetBSD's setkey: key and 4-byte salt, on the library's GMAC
         * transform (an encryption algorithm without encryption). */
        a = find_alg(ealgs, sizeof(ealgs) / sizeof(ealgs[0]), t);
        c->sa.ealg = (uint8_t)a->id;
        c->sa.ekey = c->ekey;
        c->sa.aalg = IPSECIF_AALG_NONE;
        rc = take_key(p, a, true, c->ekey, sizeof(c->ekey), &len);
        c->sa.ekey_len = len;
        return rc;
    }
    if (a == NULL) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "unknown algorithm '%s'");
    }
    if (a->id < 0) {
        return fail_tok(p, t, SKP_ERR_UNSUPPORTED, "algorithm '%s' unsupported");
    }
    if (enc) {
        c->sa.ealg = (uint8_t)a->id;
        c->sa.ekey = c->ekey;
        if (!a->nokey) {
            rc = take_key(p, a, true, c->ekey, sizeof(c->ekey), &len);
            if (rc != SKP_OK) {
                return rc;
            }
        }
        c->sa.ekey_len = len;
    } else {
        c->sa.aalg = (uint8_t)a->id;
        c->sa.akey = c->akey;
        if (!a->nokey) {
            rc = take_key(p, a, false, c->akey, sizeof(c->akey), &len);
            if (rc != SKP_OK) {
                return rc;
            }
        }
        c->sa.akey_len = len;
    }
    return SKP_OK;
}

static int take_mode(struct parser *p, const struct tok *t, uint8_t *mode)
{
    if (eq(t, "transport")) {
        *mode = IPSECIF_MODE_TRANSPORT;
    } else if (eq(t, "tunnel")) {
        *mode = IPSECIF_MODE_TUNNEL;
    } else if (eq(t, "any")) {
        *mode = IPSECIF_MODE_ANY;
    } else {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "bad mode '%s'");
    }
    return SKP_OK;
}

static int take_padopt(struct parser *p, const struct tok *t)
{
    /* Padding contents and cyclic sequence numbers are fixed by RFC 4303 in
     * the library; setkey's knobs are accepted for compatibility. */
    if (eq(t, "zero-pad") || eq(t, "random-pad") || eq(t, "seq-pad") || eq(t, "nocyclic-seq")) {
        return SKP_OK;
    }
    return fail_tok(p, t, SKP_ERR_SYNTAX, "bad -f option '%s'");
}

static int take_u64_opt(struct parser *p, const struct tok *opt, uint64_t max, uint64_t *out)
{
    const struct tok *t = take(p);

    if (t == NULL) {
        char b[SHOW_MAX + 4];
        return fail(p, p->end_line, SKP_ERR_SYNTAX, "missing number after '%s'",
                    show(opt, b, sizeof(b)));
    }
    if (!tok_num(t, false, max, out)) {
        return fail_tok(p, t, SKP_ERR_VALUE, "bad number '%s'");
    }
    return SKP_OK;
}

/* One extension or algorithm option; *seen guards against repeats. */
static int take_sa_option(struct parser *p, struct skp_cmd *c, unsigned what, unsigned *seen)
{
    const struct tok *opt = take(p);
    const struct tok *arg;
    unsigned bit = 0;
    uint64_t v = 0;
    int rc = SKP_OK;

    if (eq(opt, "-E")) {
        bit = OPT_E;
    } else if (eq(opt, "-A")) {
        bit = OPT_A;
    } else if (eq(opt, "-C") || eq(opt, "-R")) {
        return fail_tok(p, opt, SKP_ERR_UNSUPPORTED, "compression ('%s') unsupported");
    } else if (eq(opt, "-ctx")) {
        return fail_tok(p, opt, SKP_ERR_UNSUPPORTED, "security context ('%s') unsupported");
    } else if (eq(opt, "-m")) {
        bit = OPT_M;
    } else if (eq(opt, "-r")) {
        bit = OPT_R;
    } else if (eq(opt, "-u")) {
        bit = OPT_U;
    } else if (eq(opt, "-lh")) {
        bit = OPT_LH;
    } else if (eq(opt, "-ls")) {
        bit = OPT_LS;
    } else if (eq(opt, "-bh")) {
        bit = OPT_BH;
    } else if (eq(opt, "-bs")) {
        bit = OPT_BS;
    } else if (eq(opt, "-esn")) {
        bit = OPT_ESN;
    } else if (!eq(opt, "-f")) {
        return fail_tok(p, opt, SKP_ERR_SYNTAX, "unknown option '%s'");
    }
    if ((bit == OPT_E || bit == OPT_A) && (what & SA_ALGS) == 0) {
        return fail_tok(p, opt, SKP_ERR_SYNTAX, "'%s' only belongs in add or update");
    }
    if ((bit & *seen) != 0) {
        return fail_tok(p, opt, SKP_ERR_SYNTAX, "'%s' given twice");
    }
    *seen |= bit;

    switch (bit) {
    case OPT_E:
    case OPT_A:
        return take_alg(p, opt, c);
    case OPT_ESN:
        c->sa.flags |= IPSECIF_SA_F_ESN;
        return SKP_OK;
    case OPT_R:
        /* setkey(8): "window size of bytes"; the library counts packets. */
        rc = take_u64_opt(p, opt, UINT32_MAX / 8u, &v);
        c->sa.replay_window = (uint32_t)v * 8u;
        return rc;
    case OPT_U:
        rc = take_u64_opt(p, opt, UINT32_MAX, &v);
        c->sa.reqid = (uint32_t)v;
        return rc;
    case OPT_LH:
        return take_u64_opt(p, opt, UINT64_MAX, &c->sa.hard.addtime);
    case OPT_LS:
        return take_u64_opt(p, opt, UINT64_MAX, &c->sa.soft.addtime);
    case OPT_BH:
        return take_u64_opt(p, opt, UINT64_MAX, &c->sa.hard.bytes);
    case OPT_BS:
        return take_u64_opt(p, opt, UINT64_MAX, &c->sa.soft.bytes);
    default:
        break;
    }
    /* -m and -f take a keyword. */
    arg = take(p);
    if (arg == NULL) {
        char b[SHOW_MAX + 4];
        return fail(p, p->end_line, SKP_ERR_SYNTAX, "missing value after '%s'",
                    show(opt, b, sizeof(b)));
    }
    return bit == OPT_M ? take_mode(p, arg, &c->sa.mode) : take_padopt(p, arg);
}

/* esp, esp-udp or ah; *natt set for esp-udp. */
static int take_proto(struct parser *p, uint8_t *proto, bool *natt)
{
    const struct tok *t = take(p);

    *natt = false;
    if (t == NULL || is_option(t)) {
        if (t != NULL) {
            p->cur--;
        }
        return missing(p, "protocol (esp, esp-udp or ah)");
    }
    if (eq(t, "esp")) {
        *proto = IPSECIF_IPPROTO_ESP;
    } else if (eq(t, "esp-udp")) {
        const struct tok *oa = peek(p);
        struct ipsecif_addr a;
        *proto = IPSECIF_IPPROTO_ESP;
        *natt = true;
        if (oa != NULL && !oa->quoted && addr_text(oa->s, oa->len, &a)) {
            return fail_tok(p, oa, SKP_ERR_UNSUPPORTED,
                            "NAT-T original address '%s' after esp-udp unsupported");
        }
    } else if (eq(t, "ah")) {
        *proto = IPSECIF_IPPROTO_AH;
    } else if (eq(t, "esp-old") || eq(t, "ah-old") || eq(t, "ipcomp") || eq(t, "tcp")) {
        return fail_tok(p, t, SKP_ERR_UNSUPPORTED, "protocol '%s' unsupported");
    } else {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "unknown protocol '%s'");
    }
    return SKP_OK;
}

static uint16_t natt_port(int port)
{
    /* setkey sends 4500 when esp-udp has no port (or [any]). */
    return port > 0 ? (uint16_t)port : NATT_PORT;
}

static int check_algs(struct parser *p, const struct tok *cmd, struct skp_cmd *c, unsigned seen)
{
    size_t i;

    if (c->sa.proto == IPSECIF_IPPROTO_AH) {
        if ((seen & OPT_E) != 0) {
            return fail(p, cmd->line, SKP_ERR_SYNTAX, "-E not allowed with ah");
        }
        if ((seen & OPT_A) == 0) {
            return fail(p, cmd->line, SKP_ERR_SYNTAX, "ah needs -A <algorithm> <key>");
        }
        return SKP_OK;
    }
    if ((seen & OPT_E) == 0) {
        return fail(p, cmd->line, SKP_ERR_SYNTAX, "esp needs -E <algorithm> [<key>]");
    }
    for (i = 0; i < sizeof(ealgs) / sizeof(ealgs[0]); i++) {
        if (ealgs[i].aead && ealgs[i].id == c->sa.ealg && c->sa.aalg != IPSECIF_AALG_NONE) {
            return fail(p, cmd->line, SKP_ERR_VALUE, "%s carries its own integrity check: drop -A",
                        ealgs[i].name);
        }
    }
    return SKP_OK;
}

/* add, update, get, getspi, delete: src dst proto spi [options]; and
 * deleteall: src dst proto. */
static int parse_sa(struct parser *p, struct skp_cmd *c, const struct tok *cmd, unsigned what)
{
    struct addrspec src;
    struct addrspec dst;
    const struct tok *t;
    unsigned seen = 0;
    uint64_t spi;
    bool natt;
    int rc;

    c->sa.mode = IPSECIF_MODE_ANY;
    rc = take_aiflags(p);
    if (rc == SKP_OK) {
        rc = take_addr(p, "source address", false, &src);
    }
    if (rc == SKP_OK) {
        rc = take_addr(p, "destination address", false, &dst);
    }
    if (rc == SKP_OK) {
        rc = same_family(p, &src, &dst);
    }
    if (rc == SKP_OK) {
        rc = take_proto(p, &c->sa.proto, &natt);
    }
    if (rc != SKP_OK) {
        return rc;
    }
    c->sa.src = src.a;
    c->sa.dst = dst.a;
    if (natt) {
        c->sa.natt_sport = natt_port(src.port);
        c->sa.natt_dport = natt_port(dst.port);
    } else if (src.port >= 0 || dst.port >= 0) {
        return fail_tok(p, src.port >= 0 ? src.t : dst.t, SKP_ERR_SYNTAX,
                        "a port in '%s' needs protocol esp-udp");
    }
    if ((what & SA_SPI) != 0) {
        t = take(p);
        if (t == NULL || is_option(t)) {
            if (t != NULL) {
                p->cur--;
            }
            return missing(p, "SPI");
        }
        if (!tok_num(t, true, UINT32_MAX, &spi)) {
            return fail_tok(p, t, SKP_ERR_VALUE, "bad SPI '%s'");
        }
        if (spi < 256) {
            return fail_tok(p, t, SKP_ERR_VALUE, "SPI '%s' is reserved (0..255)");
        }
        c->sa.spi = (uint32_t)spi;
    }
    while ((what & SA_EXT) != 0 && is_option(peek(p))) {
        rc = take_sa_option(p, c, what, &seen);
        if (rc != SKP_OK) {
            return rc;
        }
    }
    if ((what & SA_ALGS) != 0) {
        return check_algs(p, cmd, c, seen);
    }
    return SKP_OK;
}

/* flush / dump [proto] */
static int parse_proto_filter(struct parser *p, struct skp_cmd *c)
{
    bool natt;

    c->sa.proto = 0;
    if (peek(p) == NULL) {
        return SKP_OK;
    }
    return take_proto(p, &c->sa.proto, &natt);
}

/* ---- Policies ---- */

struct ulp {
    const char *name;
    uint8_t proto;
};

/* Names setkey finds in /etc/protocols plus its own icmp6 and ip4. */
static const struct ulp ulps[] = {
    {"any", IPSECIF_IPPROTO_ANY},
    {"icmp", IPSECIF_IPPROTO_ICMP},
    {"igmp", 2},
    {"ipv4", IPSECIF_IPPROTO_IPV4},
    {"ip4", IPSECIF_IPPROTO_IPV4},
    {"ipencap", IPSECIF_IPPROTO_IPV4},
    {"tcp", IPSECIF_IPPROTO_TCP},
    {"udp", IPSECIF_IPPROTO_UDP},
    {"ipv6", IPSECIF_IPPROTO_IPV6},
    {"gre", 47},
    {"esp", IPSECIF_IPPROTO_ESP},
    {"ah", IPSECIF_IPPROTO_AH},
    {"icmp6", IPSECIF_IPPROTO_ICMPV6},
    {"ipv6-icmp", IPSECIF_IPPROTO_ICMPV6},
    {"sctp", 132},
};

static bool is_icmp(uint8_t proto)
{
    return proto == IPSECIF_IPPROTO_ICMP || proto == IPSECIF_IPPROTO_ICMPV6;
}

static int take_upperspec(struct parser *p, uint8_t *proto)
{
    const struct tok *t = take(p);
    uint64_t v;
    size_t i;

    if (t == NULL || is_option(t)) {
        if (t != NULL) {
            p->cur--;
        }
        return missing(p, "upper-layer protocol");
    }
    if (tok_num(t, false, 255, &v)) {
        *proto = (uint8_t)v;
        return SKP_OK;
    }
    for (i = 0; i < sizeof(ulps) / sizeof(ulps[0]); i++) {
        if (eq(t, ulps[i].name)) {
            *proto = ulps[i].proto;
            return SKP_OK;
        }
    }
    return fail_tok(p, t, SKP_ERR_SYNTAX, "unknown upper-layer protocol '%s'");
}

/* After icmp/icmp6: "type" or "type,code" (the library's any is 0xffff). */
static int take_icmp_spec(struct parser *p, struct ipsecif_selector *sel)
{
    const struct tok *t = take(p);
    const char *comma = memchr(t->s, ',', t->len);
    uint64_t type;
    uint64_t code = IPSECIF_ICMP_ANY;
    size_t tlen = comma != NULL ? (size_t)(comma - t->s) : t->len;

    if (t->quoted || !num(t->s, tlen, false, 255, &type) ||
        (comma != NULL &&
         !num(comma + 1, (size_t)(t->s + t->len - (comma + 1)), false, 255, &code))) {
        return fail_tok(p, t, SKP_ERR_VALUE, "bad ICMP type,code '%s'");
    }
    sel->sport = (uint16_t)type;
    sel->dport = (uint16_t)code;
    return SKP_OK;
}

static int take_level(struct parser *p, const struct tok *req, const char *s, size_t n,
                      struct ipsecif_ipsecreq *r)
{
    uint64_t id;

    r->reqid = 0;
    if (n == 0 || (n == 7 && memcmp(s, "default", 7) == 0)) {
        r->level = IPSECIF_LEVEL_DEFAULT;
    } else if (n == 3 && memcmp(s, "use", 3) == 0) {
        r->level = IPSECIF_LEVEL_USE;
    } else if (n == 7 && memcmp(s, "require", 7) == 0) {
        r->level = IPSECIF_LEVEL_REQUIRE;
    } else if (n == 6 && memcmp(s, "unique", 6) == 0) {
        r->level = IPSECIF_LEVEL_UNIQUE;
    } else if (n > 7 && memcmp(s, "unique:", 7) == 0) {
        if (!num(s + 7, n - 7, false, LEVEL_REQID_MAX, &id) || id == 0) {
            return fail_tok(p, req, SKP_ERR_VALUE, "bad unique id (1..32767) in '%s'");
        }
        r->level = IPSECIF_LEVEL_UNIQUE;
        r->reqid = (uint32_t)id;
    } else {
        struct tok lv = {s, n, req->line, false};
        char b1[SHOW_MAX + 4];
        char b2[SHOW_MAX + 4];
        return fail(p, req->line, SKP_ERR_SYNTAX, "bad level '%s' in '%s'",
                    show(&lv, b1, sizeof(b1)), show(req, b2, sizeof(b2)));
    }
    return SKP_OK;
}

/* "src-dst" of a request; ports are accepted and dropped, because NAT-T
 * ports live in the SA in libipsecif. */
static int take_endpoints(struct parser *p, const struct tok *req, const char *s, size_t n,
                          struct ipsecif_ipsecreq *r)
{
    const char *dash = memchr(s, '-', n);
    const char *part[2];
    size_t plen[2];
    struct ipsecif_addr *dst[2] = {&r->tun_src, &r->tun_dst};
    size_t i;

    if (dash == NULL) {
        return fail_tok(p, req, SKP_ERR_VALUE, "bad tunnel endpoints in '%s'");
    }
    part[0] = s;
    plen[0] = (size_t)(dash - s);
    part[1] = dash + 1;
    plen[1] = (size_t)(s + n - (dash + 1));
    if ((plen[0] == 2 && memcmp(s, "me", 2) == 0) || (plen[0] == 3 && memcmp(s, "any", 3) == 0)) {
        return fail_tok(p, req, SKP_ERR_UNSUPPORTED, "'me'/'any' endpoints unsupported in '%s'");
    }
    for (i = 0; i < 2; i++) {
        const char *lb = memchr(part[i], '[', plen[i]);
        size_t alen = plen[i];
        int port;
        if (lb != NULL) {
            alen = (size_t)(lb - part[i]);
            if (part[i][plen[i] - 1] != ']' || !port_text(lb + 1, plen[i] - alen - 2, &port)) {
                return fail_tok(p, req, SKP_ERR_VALUE, "bad port in '%s'");
            }
        }
        if (!addr_text(part[i], alen, dst[i])) {
            return fail_tok(p, req, SKP_ERR_VALUE, "bad tunnel endpoint address in '%s'");
        }
    }
    if (r->tun_src.family != r->tun_dst.family) {
        return fail_tok(p, req, SKP_ERR_VALUE, "tunnel endpoint families differ in '%s'");
    }
    return SKP_OK;
}

/* protocol/mode[/[src-dst][/[level]]] */
static int take_request(struct parser *p, const struct tok *t, struct ipsecif_ipsecreq *r)
{
    const char *part[4];
    size_t plen[4];
    size_t nparts = 0;
    size_t start = 0;
    size_t i;
    int rc;

    if (t->quoted) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "bad request '%s'");
    }
    for (i = 0; i <= t->len; i++) {
        if (i == t->len || t->s[i] == '/') {
            if (nparts == 4) {
                return fail_tok(p, t, SKP_ERR_SYNTAX, "bad request '%s'");
            }
            part[nparts] = t->s + start;
            plen[nparts] = i - start;
            nparts++;
            start = i + 1;
        }
    }
    if (nparts < 2) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "request '%s' needs protocol/mode");
    }
    memset(r, 0, sizeof(*r));
    if (plen[0] == 3 && memcmp(part[0], "esp", 3) == 0) {
        r->proto = IPSECIF_IPPROTO_ESP;
    } else if (plen[0] == 2 && memcmp(part[0], "ah", 2) == 0) {
        r->proto = IPSECIF_IPPROTO_AH;
    } else if (plen[0] == 6 && memcmp(part[0], "ipcomp", 6) == 0) {
        return fail_tok(p, t, SKP_ERR_UNSUPPORTED, "ipcomp unsupported in '%s'");
    } else {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "bad protocol in request '%s'");
    }
    if (plen[1] == 9 && memcmp(part[1], "transport", 9) == 0) {
        r->mode = IPSECIF_MODE_TRANSPORT;
    } else if (plen[1] == 6 && memcmp(part[1], "tunnel", 6) == 0) {
        r->mode = IPSECIF_MODE_TUNNEL;
    } else {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "bad mode in request '%s'");
    }
    if (nparts >= 3 && plen[2] > 0) {
        rc = take_endpoints(p, t, part[2], plen[2], r);
        if (rc != SKP_OK) {
            return rc;
        }
    } else if (r->mode == IPSECIF_MODE_TUNNEL) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "tunnel request '%s' needs src-dst endpoints");
    }
    return take_level(p, t, nparts == 4 ? part[3] : "", nparts == 4 ? plen[3] : 0, r);
}

static bool is_action(const struct tok *t)
{
    return eq(t, "discard") || eq(t, "none") || eq(t, "ipsec") || eq(t, "bypass") ||
           eq(t, "entrust");
}

/* The words between "prio" and the action, glued: "high", "def+5", "-10". */
static int take_priority(struct parser *p, const struct tok *kw, uint32_t *prio)
{
    static const struct {
        const char *name;
        uint32_t base;
    } bases[] = {{"low", PRIO_LOW}, {"def", PRIO_DEF}, {"high", PRIO_HIGH}};
    char s[48];
    size_t n = 0;
    size_t i;
    size_t off = 0;
    const struct tok *t;
    struct tok all;
    uint64_t v;

    while ((t = peek(p)) != NULL && !is_action(t)) {
        if (t->quoted || n + t->len >= sizeof(s)) {
            return fail_tok(p, t, SKP_ERR_VALUE, "bad priority at '%s'");
        }
        memcpy(s + n, t->s, t->len);
        n += t->len;
        p->cur++;
    }
    if (n == 0) {
        return fail_tok(p, kw, SKP_ERR_SYNTAX, "missing value after '%s'");
    }
    s[n] = '\0';
    for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        size_t bl = strlen(bases[i].name);
        if (n >= bl && memcmp(s, bases[i].name, bl) == 0) {
            off = bl;
            break;
        }
    }
    /* Limits from setkey(8): base + up to 2^30, base - up to 2^30 - 1,
     * plain offsets -2^31+1 .. 2^31. A higher priority is a lower value. */
    if (i < sizeof(bases) / sizeof(bases[0])) {
        if (off == n) {
            *prio = bases[i].base;
            return SKP_OK;
        }
        if (s[off] == '+' && num(s + off + 1, n - off - 1, false, 0x40000000u, &v)) {
            *prio = bases[i].base - (uint32_t)v;
            return SKP_OK;
        }
        if (s[off] == '-' && num(s + off + 1, n - off - 1, false, 0x3fffffffu, &v)) {
            *prio = bases[i].base + (uint32_t)v;
            return SKP_OK;
        }
    } else if (s[0] == '-' && num(s + 1, n - 1, false, 0x7fffffffu, &v)) {
        *prio = PRIO_DEF + (uint32_t)v;
        return SKP_OK;
    } else if (num(s, n, false, 0x80000000u, &v)) {
        *prio = PRIO_DEF - (uint32_t)v;
        return SKP_OK;
    }
    all.s = s;
    all.len = n;
    all.line = kw->line;
    all.quoted = false;
    return fail_tok(p, &all, SKP_ERR_VALUE, "bad priority '%s'");
}

/* -P dir [prio ...] [action [requests]] */
static int take_policy(struct parser *p, struct skp_cmd *c, bool need_action)
{
    const struct tok *t = take(p);
    const struct tok *dir;
    struct ipsecif_policy *pol = &c->pol;
    int rc;

    if (!eq(t, "-P")) {
        if (t == NULL) {
            return missing(p, "policy (-P direction ...)");
        }
        if (eq(t, "-ctx")) {
            return fail_tok(p, t, SKP_ERR_UNSUPPORTED, "security context ('%s') unsupported");
        }
        return fail_tok(p, t, SKP_ERR_SYNTAX, "expected '-P', found '%s'");
    }
    dir = take(p);
    if (dir == NULL) {
        return missing(p, "direction after '-P' (in, out or fwd)");
    }
    if (eq(dir, "in")) {
        pol->dir = IPSECIF_DIR_IN;
    } else if (eq(dir, "out")) {
        pol->dir = IPSECIF_DIR_OUT;
    } else if (eq(dir, "fwd")) {
        pol->dir = IPSECIF_DIR_FWD;
    } else {
        return fail_tok(p, dir, SKP_ERR_SYNTAX, "bad direction '%s'");
    }
    pol->priority = IPSECIF_PRIORITY_DEFAULT;
    t = take(p);
    if (t == NULL) {
        if (need_action) {
            return missing(p, "action (discard, none or ipsec)");
        }
        return SKP_OK;
    }
    if (eq(t, "prio") || eq(t, "priority")) {
        rc = take_priority(p, t, &pol->priority);
        if (rc != SKP_OK) {
            return rc;
        }
        t = take(p);
        if (t == NULL) {
            return missing(p, "action (discard, none or ipsec)");
        }
    }
    if (eq(t, "discard")) {
        pol->action = IPSECIF_ACTION_DISCARD;
    } else if (eq(t, "none")) {
        pol->action = IPSECIF_ACTION_NONE;
    } else if (eq(t, "ipsec")) {
        pol->action = IPSECIF_ACTION_IPSEC;
    } else if (eq(t, "bypass") || eq(t, "entrust")) {
        return fail_tok(p, t, SKP_ERR_UNSUPPORTED, "action '%s' is for socket policies only");
    } else {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "bad action '%s'");
    }
    while ((t = take(p)) != NULL) {
        if (pol->action != IPSECIF_ACTION_IPSEC) {
            return fail_tok(p, t, SKP_ERR_SYNTAX, "request '%s' after a discard/none action");
        }
        if (pol->nreq == IPSECIF_MAX_REQUESTS) {
            return fail(p, t->line, SKP_ERR_LIMIT, "more than %d requests in one policy",
                        IPSECIF_MAX_REQUESTS);
        }
        rc = take_request(p, t, &pol->req[pol->nreq]);
        if (rc != SKP_OK) {
            return rc;
        }
        pol->nreq++;
    }
    if (pol->action == IPSECIF_ACTION_IPSEC && pol->nreq == 0) {
        return missing(p, "request after 'ipsec' (e.g. esp/transport//require)");
    }
    return SKP_OK;
}

static void set_prefix(const struct addrspec *as, struct ipsecif_addr *a, uint8_t *plen)
{
    *a = as->a;
    if (as->plen >= 0) {
        *plen = (uint8_t)as->plen;
    } else {
        *plen = as->a.family == IPSECIF_AF_INET ? 32 : 128;
    }
}

/* spdadd / spdupdate / spddelete */
static int parse_spd(struct parser *p, struct skp_cmd *c, bool need_action)
{
    struct ipsecif_selector *sel = &c->pol.sel;
    struct addrspec src;
    struct addrspec dst;
    const struct tok *t;
    int rc;

    if (eq(peek(p), "tagged")) {
        return fail_tok(p, peek(p), SKP_ERR_UNSUPPORTED, "'%s' policies unsupported");
    }
    rc = take_aiflags(p);
    if (rc == SKP_OK) {
        rc = take_addr(p, "source range", true, &src);
    }
    if (rc == SKP_OK) {
        rc = take_addr(p, "destination range", true, &dst);
    }
    if (rc == SKP_OK) {
        rc = same_family(p, &src, &dst);
    }
    if (rc == SKP_OK) {
        rc = take_upperspec(p, &sel->ulproto);
    }
    if (rc != SKP_OK) {
        return rc;
    }
    set_prefix(&src, &sel->src, &sel->src_plen);
    set_prefix(&dst, &sel->dst, &sel->dst_plen);
    if (is_icmp(sel->ulproto)) {
        /* ICMP type and code sit where the ports would. */
        if (src.port > 0 || dst.port > 0) {
            return fail_tok(p, src.port > 0 ? src.t : dst.t, SKP_ERR_VALUE,
                            "no ports with icmp in '%s': give type,code after the protocol");
        }
        sel->sport = IPSECIF_ICMP_ANY;
        sel->dport = IPSECIF_ICMP_ANY;
    } else {
        sel->sport = src.port > 0 ? (uint16_t)src.port : IPSECIF_PORT_ANY;
        sel->dport = dst.port > 0 ? (uint16_t)dst.port : IPSECIF_PORT_ANY;
    }
    t = peek(p);
    if (t != NULL && !is_option(t)) {
        if (is_icmp(sel->ulproto)) {
            rc = take_icmp_spec(p, sel);
        } else if (sel->ulproto == 47) {
            rc = fail_tok(p, t, SKP_ERR_UNSUPPORTED, "GRE key '%s' unsupported");
        } else {
            rc = fail_tok(p, t, SKP_ERR_SYNTAX, "unexpected '%s' after the upper-layer protocol");
        }
        if (rc != SKP_OK) {
            return rc;
        }
    }
    return take_policy(p, c, need_action);
}

/* ---- Statements ---- */

const char *skp_cmd_name(enum skp_cmd_type type)
{
    size_t i;

    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].type == type) {
            return commands[i].name;
        }
    }
    return "?";
}

static int parse_stmt(struct parser *p, struct skp_cmd *c)
{
    const struct tok *t = take(p);
    const struct command *cmd = find_command(t);
    int rc = SKP_OK;

    if (cmd == NULL) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "unknown command '%s'");
    }
    c->type = cmd->type;
    p->only_family = 0;
    switch (cmd->type) {
    case SKP_CMD_ADD:
    case SKP_CMD_UPDATE:
        rc = parse_sa(p, c, t, SA_SPI | SA_EXT | SA_ALGS);
        break;
    case SKP_CMD_GET:
    case SKP_CMD_GETSPI:
    case SKP_CMD_DELETE:
        rc = parse_sa(p, c, t, SA_SPI | SA_EXT);
        break;
    case SKP_CMD_DELETEALL:
        rc = parse_sa(p, c, t, 0);
        break;
    case SKP_CMD_FLUSH:
    case SKP_CMD_DUMP:
        rc = parse_proto_filter(p, c);
        break;
    case SKP_CMD_SPDADD:
    case SKP_CMD_SPDUPDATE:
        rc = parse_spd(p, c, true);
        break;
    case SKP_CMD_SPDDELETE:
        rc = parse_spd(p, c, false);
        break;
    case SKP_CMD_SPDFLUSH:
    case SKP_CMD_SPDDUMP:
        break;
    }
    if (rc != SKP_OK) {
        return rc;
    }
    t = peek(p);
    if (t != NULL) {
        return fail_tok(p, t, SKP_ERR_SYNTAX, "unexpected '%s'");
    }
    return SKP_OK;
}

/* Keys must not outlive the statement; volatile keeps the stores. */
static void wipe(void *v, size_t n)
{
    volatile unsigned char *b = v;

    while (n-- > 0) {
        *b++ = 0;
    }
}

int skp_parse(const char *text, size_t len, skp_cb cb, void *arg, struct skp_error *err)
{
    struct parser p;
    struct skp_cmd c;
    int rc;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    memset(&p, 0, sizeof(p));
    p.err = err;
    p.line = 1;
    if (cb == NULL || (text == NULL && len != 0)) {
        return fail(&p, 0, SKP_ERR_ARG, "bad arguments");
    }
    p.text = text;
    p.len = len;
    for (;;) {
        unsigned line;

        rc = lex_stmt(&p);
        if (rc <= 0) {
            break;
        }
        line = p.tok[0].line;
        memset(&c, 0, sizeof(c));
        rc = parse_stmt(&p, &c);
        if (rc == SKP_OK) {
            rc = cb(arg, &c, line);
            if (rc != 0) {
                fail(&p, line, rc, "stopped by the callback (%d)", rc);
            }
        }
        wipe(&c, sizeof(c));
        if (rc != 0) {
            break;
        }
    }
    return rc;
}
