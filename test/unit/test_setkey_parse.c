/* setkey(8) parser of the example router: the scripts a real setkey was run
 * on (pfkey captures), the policies of the ipsecif(4) man page, a table of
 * errors with exact lines and messages, comments and statements over several
 * lines, keys, options, priorities, upper-layer protocols, limits, and every
 * prefix plus random mutations of a valid script (exact-size heap copies, so
 * valgrind or ASan sees any read past the input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "setkey_parse.h"
#include "test_util.h"

#define MAXREC 64

/* ---- Collecting callback ---- */

struct rec {
    struct skp_cmd cmd; /* sa.ekey / sa.akey re-pointed into this copy */
    unsigned line;
};

struct sink {
    struct rec r[MAXREC];
    size_t n;
    size_t stop_at; /* stop at this statement (1-based), 0 = never */
    int stop_rc;
};

static int collect(void *arg, const struct skp_cmd *cmd, unsigned line)
{
    struct sink *s = arg;
    struct rec *r;

    /* Keys live in the command itself, nowhere else. */
    assert_true(cmd->sa.ekey == NULL || cmd->sa.ekey == cmd->ekey);
    assert_true(cmd->sa.akey == NULL || cmd->sa.akey == cmd->akey);
    if (s->n == MAXREC) {
        return -100;
    }
    r = &s->r[s->n++];
    r->cmd = *cmd;
    if (cmd->sa.ekey != NULL) {
        r->cmd.sa.ekey = r->cmd.ekey;
    }
    if (cmd->sa.akey != NULL) {
        r->cmd.sa.akey = r->cmd.akey;
    }
    r->line = line;
    if (s->stop_at != 0 && s->n == s->stop_at) {
        return s->stop_rc;
    }
    return 0;
}

/* Parses an exact-size heap copy of text[0..len). */
static int run_len(const char *text, size_t len, struct sink *s, struct skp_error *e)
{
    char *copy = malloc(len != 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, text, len);
    s->n = 0;
    rc = skp_parse(copy, len, collect, s, e);
    free(copy);
    return rc;
}

static int run(const char *text, struct sink *s, struct skp_error *e)
{
    return run_len(text, strlen(text), s, e);
}

/* Parses one statement that must succeed; returns its command. */
static const struct skp_cmd *one(struct sink *s, const char *text)
{
    struct skp_error e;
    int rc = run(text, s, &e);

    if (rc != SKP_OK) {
        fail_msg("%s\n  -> %d %s", text, rc, e.msg);
    }
    assert_int_equal(s->n, 1);
    return &s->r[0].cmd;
}

/* ---- Checks ---- */

static void check_addr(const struct ipsecif_addr *a, const char *text)
{
    struct ipsecif_addr want;

    if (text == NULL) {
        assert_int_equal(a->family, IPSECIF_AF_UNSPEC);
        return;
    }
    want = test_addr(text);
    assert_int_equal(a->family, want.family);
    assert_memory_equal(a->bytes, want.bytes, sizeof(want.bytes));
}

/* Keys in the scripts are runs of consecutive bytes. */
static void check_run(const uint8_t *k, size_t len, uint8_t first, size_t n)
{
    size_t i;

    assert_int_equal(len, n);
    for (i = 0; i < n; i++) {
        assert_int_equal(k[i], (uint8_t)(first + i));
    }
}

static void check_key(const uint8_t *k, size_t len, const char *hex)
{
    uint8_t want[128];
    size_t n = test_hex(hex, want, sizeof(want));

    assert_int_equal(len, n);
    assert_memory_equal(k, want, n);
}

static void check_sa(const struct skp_cmd *c, enum skp_cmd_type type, const char *src,
                     const char *dst, uint8_t proto, uint32_t spi)
{
    assert_int_equal(c->type, type);
    check_addr(&c->sa.src, src);
    check_addr(&c->sa.dst, dst);
    assert_int_equal(c->sa.proto, proto);
    assert_int_equal(c->sa.spi, spi);
}

static void check_sel(const struct skp_cmd *c, enum skp_cmd_type type, const char *src,
                      unsigned splen, const char *dst, unsigned dplen, uint8_t ulp, uint16_t sport,
                      uint16_t dport)
{
    assert_int_equal(c->type, type);
    check_addr(&c->pol.sel.src, src);
    check_addr(&c->pol.sel.dst, dst);
    assert_int_equal(c->pol.sel.src_plen, splen);
    assert_int_equal(c->pol.sel.dst_plen, dplen);
    assert_int_equal(c->pol.sel.ulproto, ulp);
    assert_int_equal(c->pol.sel.sport, sport);
    assert_int_equal(c->pol.sel.dport, dport);
}

static void check_pol(const struct skp_cmd *c, uint8_t dir, uint8_t action, uint32_t prio,
                      uint8_t nreq)
{
    assert_int_equal(c->pol.dir, dir);
    assert_int_equal(c->pol.action, action);
    assert_int_equal(c->pol.priority, prio);
    assert_int_equal(c->pol.nreq, nreq);
}

static void check_req(const struct ipsecif_ipsecreq *r, uint8_t proto, uint8_t mode, uint8_t level,
                      uint32_t reqid, const char *tsrc, const char *tdst)
{
    assert_int_equal(r->proto, proto);
    assert_int_equal(r->mode, mode);
    assert_int_equal(r->level, level);
    assert_int_equal(r->reqid, reqid);
    check_addr(&r->tun_src, tsrc);
    check_addr(&r->tun_dst, tdst);
}

#define ESP IPSECIF_IPPROTO_ESP
#define AH IPSECIF_IPPROTO_AH
#define ANYP IPSECIF_IPPROTO_ANY
#define ICMPANY IPSECIF_ICMP_ANY
#define PDEF IPSECIF_PRIORITY_DEFAULT
#define TRANSPORT IPSECIF_MODE_TRANSPORT
#define TUNNEL IPSECIF_MODE_TUNNEL

/* ---- basic.setkey.conf, as given to a real setkey ---- */

static const char basic_conf[] =
    "flush;\n"
    "spdflush;\n"
    "add 192.0.2.1 192.0.2.2 esp 0x1000 -u 16385 -m transport -E rijndael-cbc "
    "0x000102030405060708090a0b0c0d0e0f -A hmac-sha256 "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f;\n"
    "spdadd 192.0.2.1 192.0.2.2 any -P out ipsec esp/transport//unique:16385;\n";

static void test_basic_script(void **state)
{
    static struct sink s;
    struct skp_error e;
    const struct skp_cmd *c;

    (void)state;
    assert_int_equal(run(basic_conf, &s, &e), SKP_OK);
    assert_string_equal(e.msg, "");
    assert_int_equal(s.n, 4);

    assert_int_equal(s.r[0].cmd.type, SKP_CMD_FLUSH);
    assert_int_equal(s.r[0].cmd.sa.proto, 0);
    assert_int_equal(s.r[1].cmd.type, SKP_CMD_SPDFLUSH);

    c = &s.r[2].cmd;
    assert_int_equal(s.r[2].line, 3);
    check_sa(c, SKP_CMD_ADD, "192.0.2.1", "192.0.2.2", ESP, 0x1000);
    assert_int_equal(c->sa.reqid, 16385);
    assert_int_equal(c->sa.mode, TRANSPORT);
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_AES_CBC);
    check_run(c->sa.ekey, c->sa.ekey_len, 0x00, 16);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA2_256_128);
    check_run(c->sa.akey, c->sa.akey_len, 0x10, 32);
    assert_int_equal(c->sa.replay_window, 0);
    assert_int_equal(c->sa.natt_sport, 0);
    assert_int_equal(c->sa.natt_dport, 0);
    assert_int_equal(c->sa.flags, 0);
    assert_int_equal(c->sa.hard.addtime, 0);

    c = &s.r[3].cmd;
    assert_int_equal(s.r[3].line, 4);
    check_sel(c, SKP_CMD_SPDADD, "192.0.2.1", 32, "192.0.2.2", 32, ANYP, 0, 0);
    check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC, PDEF, 1);
    check_req(&c->pol.req[0], ESP, TRANSPORT, IPSECIF_LEVEL_UNIQUE, 16385, NULL, NULL);
}

/* ---- extra.setkey.conf, line by line ---- */

static const char *const extra_lines[] = {
    "flush;",
    "spdflush;",
    "add 198.51.100.1 198.51.100.2 esp 0x2001 -m tunnel -u 2001 -r 64 -lh 3600 -ls 3000 -bh "
    "1000000 -bs 900000 -E rijndael-cbc "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f -A hmac-sha512 "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b"
    "3c3d3e3f404142434445464748494a4b4c4d4e4f;",
    "add 2001:db8::1 2001:db8::2 esp 0x3001 -m transport -E aes-ctr "
    "0x000102030405060708090a0b0c0d0e0f10111213 -A hmac-sha256 "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f;",
    "add 192.0.2.1 192.0.2.2 ah 0x4001 -A hmac-sha1 0x000102030405060708090a0b0c0d0e0f10111213;",
    "add 192.0.2.1[4500] 198.51.100.9[4500] esp-udp 0x5001 -m tunnel -E rijndael-cbc "
    "0x000102030405060708090a0b0c0d0e0f -A hmac-sha256 "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f;",
    "add 192.0.2.1 192.0.2.2 esp 0x5002 -m transport -E null -A hmac-sha256 "
    "0x101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f;",
    "add 192.0.2.1 192.0.2.2 ipcomp 0x6001 -C deflate;",
    "get 192.0.2.1 192.0.2.2 ah 0x4001;",
    "getspi 192.0.2.1 192.0.2.2 esp 0x7000;",
    "delete 192.0.2.1 192.0.2.2 ah 0x4001;",
    "dump esp;",
    "spdadd 10.0.1.0/24 10.0.2.0/24 any -P out ipsec "
    "esp/tunnel/198.51.100.1-198.51.100.2/require;",
    "spdadd 10.0.2.0/24 10.0.1.0/24 any -P in ipsec "
    "esp/tunnel/198.51.100.2-198.51.100.1/unique:2001;",
    "spdadd 10.0.2.0/24 10.0.1.0/24 any -P fwd ipsec esp/tunnel/198.51.100.2-198.51.100.1/use;",
    "spdadd 192.0.2.1[any] 192.0.2.2[80] tcp -P out ipsec ah/transport//require "
    "esp/transport//require;",
    "spdadd 2001:db8::1 2001:db8::2 icmp6 -P out prio high ipsec esp/transport//require;",
    "spdadd 192.0.2.0/24 192.0.2.0/24 any -P out none;",
    "spdadd 0.0.0.0/0 0.0.0.0/0 udp -P in discard;",
    "spdadd 192.0.2.1[4500] 198.51.100.9[4500] udp -P out ipsec "
    "esp/tunnel/192.0.2.1-198.51.100.9/require;",
    "spdupdate 10.0.1.0/24 10.0.2.0/24 any -P out ipsec "
    "esp/tunnel/198.51.100.1-198.51.100.2/unique:2001;",
    "spddelete 10.0.2.0/24 10.0.1.0/24 any -P fwd;",
};

#define EXTRA_LINES (sizeof(extra_lines) / sizeof(extra_lines[0]))

/* What each line must give (1-based line = index + 1). */
static void check_extra(unsigned line, const struct skp_cmd *c)
{
    const struct ipsecif_ipsecreq *r = c->pol.req;

    switch (line) {
    case 1:
        assert_int_equal(c->type, SKP_CMD_FLUSH);
        assert_int_equal(c->sa.proto, 0);
        break;
    case 2:
        assert_int_equal(c->type, SKP_CMD_SPDFLUSH);
        break;
    case 3:
        check_sa(c, SKP_CMD_ADD, "198.51.100.1", "198.51.100.2", ESP, 0x2001);
        assert_int_equal(c->sa.mode, TUNNEL);
        assert_int_equal(c->sa.reqid, 2001);
        assert_int_equal(c->sa.replay_window, 64 * 8); /* -r counts bytes */
        assert_int_equal(c->sa.hard.addtime, 3600);
        assert_int_equal(c->sa.soft.addtime, 3000);
        assert_int_equal(c->sa.hard.bytes, 1000000);
        assert_int_equal(c->sa.soft.bytes, 900000);
        assert_int_equal(c->sa.ealg, IPSECIF_EALG_AES_CBC);
        check_run(c->sa.ekey, c->sa.ekey_len, 0x10, 32);
        assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA2_512_256);
        check_run(c->sa.akey, c->sa.akey_len, 0x10, 64);
        break;
    case 5:
        check_sa(c, SKP_CMD_ADD, "192.0.2.1", "192.0.2.2", AH, 0x4001);
        assert_int_equal(c->sa.mode, IPSECIF_MODE_ANY);
        assert_int_equal(c->sa.ealg, IPSECIF_EALG_NONE);
        assert_int_equal(c->sa.ekey_len, 0);
        assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA1_96);
        check_run(c->sa.akey, c->sa.akey_len, 0x00, 20);
        break;
    case 6:
        check_sa(c, SKP_CMD_ADD, "192.0.2.1", "198.51.100.9", ESP, 0x5001);
        assert_int_equal(c->sa.natt_sport, 4500);
        assert_int_equal(c->sa.natt_dport, 4500);
        assert_int_equal(c->sa.mode, TUNNEL);
        check_run(c->sa.ekey, c->sa.ekey_len, 0x00, 16);
        check_run(c->sa.akey, c->sa.akey_len, 0x10, 32);
        break;
    case 7:
        check_sa(c, SKP_CMD_ADD, "192.0.2.1", "192.0.2.2", ESP, 0x5002);
        assert_int_equal(c->sa.ealg, IPSECIF_EALG_NULL);
        assert_int_equal(c->sa.ekey_len, 0);
        assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA2_256_128);
        check_run(c->sa.akey, c->sa.akey_len, 0x10, 32);
        break;
    case 9:
        check_sa(c, SKP_CMD_GET, "192.0.2.1", "192.0.2.2", AH, 0x4001);
        break;
    case 10:
        check_sa(c, SKP_CMD_GETSPI, "192.0.2.1", "192.0.2.2", ESP, 0x7000);
        break;
    case 11:
        check_sa(c, SKP_CMD_DELETE, "192.0.2.1", "192.0.2.2", AH, 0x4001);
        break;
    case 12:
        assert_int_equal(c->type, SKP_CMD_DUMP);
        assert_int_equal(c->sa.proto, ESP);
        break;
    case 13:
        check_sel(c, SKP_CMD_SPDADD, "10.0.1.0", 24, "10.0.2.0", 24, ANYP, 0, 0);
        check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC, PDEF, 1);
        check_req(r, ESP, TUNNEL, IPSECIF_LEVEL_REQUIRE, 0, "198.51.100.1", "198.51.100.2");
        break;
    case 14:
        check_sel(c, SKP_CMD_SPDADD, "10.0.2.0", 24, "10.0.1.0", 24, ANYP, 0, 0);
        check_pol(c, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC, PDEF, 1);
        check_req(r, ESP, TUNNEL, IPSECIF_LEVEL_UNIQUE, 2001, "198.51.100.2", "198.51.100.1");
        break;
    case 15:
        check_pol(c, IPSECIF_DIR_FWD, IPSECIF_ACTION_IPSEC, PDEF, 1);
        check_req(r, ESP, TUNNEL, IPSECIF_LEVEL_USE, 0, "198.51.100.2", "198.51.100.1");
        break;
    case 16:
        check_sel(c, SKP_CMD_SPDADD, "192.0.2.1", 32, "192.0.2.2", 32, IPSECIF_IPPROTO_TCP, 0, 80);
        check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC, PDEF, 2);
        check_req(&r[0], AH, TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL);
        check_req(&r[1], ESP, TRANSPORT, IPSECIF_LEVEL_REQUIRE, 0, NULL, NULL);
        break;
    case 17:
        check_sel(c, SKP_CMD_SPDADD, "2001:db8::1", 128, "2001:db8::2", 128, IPSECIF_IPPROTO_ICMPV6,
                  ICMPANY, ICMPANY);
        check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC, 0x40000000u, 1);
        break;
    case 18:
        check_sel(c, SKP_CMD_SPDADD, "192.0.2.0", 24, "192.0.2.0", 24, ANYP, 0, 0);
        check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_NONE, PDEF, 0);
        break;
    case 19:
        check_sel(c, SKP_CMD_SPDADD, "0.0.0.0", 0, "0.0.0.0", 0, IPSECIF_IPPROTO_UDP, 0, 0);
        check_pol(c, IPSECIF_DIR_IN, IPSECIF_ACTION_DISCARD, PDEF, 0);
        break;
    case 20:
        check_sel(c, SKP_CMD_SPDADD, "192.0.2.1", 32, "198.51.100.9", 32, IPSECIF_IPPROTO_UDP, 4500,
                  4500);
        check_req(r, ESP, TUNNEL, IPSECIF_LEVEL_REQUIRE, 0, "192.0.2.1", "198.51.100.9");
        break;
    case 21:
        check_sel(c, SKP_CMD_SPDUPDATE, "10.0.1.0", 24, "10.0.2.0", 24, ANYP, 0, 0);
        check_pol(c, IPSECIF_DIR_OUT, IPSECIF_ACTION_IPSEC, PDEF, 1);
        check_req(r, ESP, TUNNEL, IPSECIF_LEVEL_UNIQUE, 2001, "198.51.100.1", "198.51.100.2");
        break;
    case 22:
        check_sel(c, SKP_CMD_SPDDELETE, "10.0.2.0", 24, "10.0.1.0", 24, ANYP, 0, 0);
        assert_int_equal(c->pol.dir, IPSECIF_DIR_FWD);
        break;
    default:
        fail_msg("line %u should not have parsed", line);
    }
}

/* The file with the given lines (1-based, 0 = none) turned into comments,
 * so the other line numbers stay. */
static char *extra_conf(unsigned skip1, unsigned skip2)
{
    size_t cap = 1;
    size_t i;
    char *text;

    for (i = 0; i < EXTRA_LINES; i++) {
        cap += strlen(extra_lines[i]) + 3;
    }
    text = calloc(1, cap);
    assert_non_null(text);
    for (i = 0; i < EXTRA_LINES; i++) {
        if (i + 1 == skip1 || i + 1 == skip2) {
            strcat(text, "# ");
        }
        strcat(text, extra_lines[i]);
        strcat(text, "\n");
    }
    return text;
}

static void test_extra_script(void **state)
{
    static struct sink s;
    struct skp_error e;
    char *text;
    size_t i;

    (void)state;
    /* As given: stops at line 4 (aes-ctr), lines 1..3 delivered first. */
    text = extra_conf(0, 0);
    assert_int_equal(run(text, &s, &e), SKP_ERR_UNSUPPORTED);
    free(text);
    assert_int_equal(e.line, 4);
    assert_int_equal(e.code, SKP_ERR_UNSUPPORTED);
    assert_string_equal(e.msg, "line 4: algorithm 'aes-ctr' unsupported");
    assert_int_equal(s.n, 3);
    for (i = 0; i < s.n; i++) {
        assert_int_equal(s.r[i].line, i + 1);
        check_extra(s.r[i].line, &s.r[i].cmd);
    }

    /* Without line 4: stops at line 8 (IPComp). */
    text = extra_conf(4, 0);
    assert_int_equal(run(text, &s, &e), SKP_ERR_UNSUPPORTED);
    free(text);
    assert_string_equal(e.msg, "line 8: protocol 'ipcomp' unsupported");
    assert_int_equal(s.n, 6);

    /* Without both: all twenty others, with their own line numbers. */
    text = extra_conf(4, 8);
    assert_int_equal(run(text, &s, &e), SKP_OK);
    free(text);
    assert_int_equal(s.n, EXTRA_LINES - 2);
    for (i = 0; i < s.n; i++) {
        unsigned want = (unsigned)i + 1 + (i >= 3) + (i >= 6);
        assert_int_equal(s.r[i].line, want);
        check_extra(s.r[i].line, &s.r[i].cmd);
    }
}

/* Every line alone, too: line 1 for each, same results. */
static void test_extra_lines_alone(void **state)
{
    static struct sink s;
    struct skp_error e;
    size_t i;

    (void)state;
    for (i = 0; i < EXTRA_LINES; i++) {
        int rc = run(extra_lines[i], &s, &e);
        if (i + 1 == 4 || i + 1 == 8) {
            assert_int_equal(rc, SKP_ERR_UNSUPPORTED);
            assert_int_equal(e.line, 1);
            assert_int_equal(s.n, 0);
            continue;
        }
        if (rc != SKP_OK) {
            fail_msg("line %zu: %d %s", i + 1, rc, e.msg);
        }
        assert_int_equal(s.n, 1);
        assert_int_equal(s.r[0].line, 1);
        check_extra((unsigned)i + 1, &s.r[0].cmd);
    }
}

/* ---- ipsecif(4): the four policies an interface stands for, and hand-made SAs ---- */

static void test_ipsecif_manpage(void **state)
{
    static const char text[] =
        "spdadd 192.0.2.1 192.0.2.2 ipv4 -P out ipsec esp/transport//unique;\n"
        "spdadd 192.0.2.2 192.0.2.1 ipv4 -P in ipsec esp/transport//unique;\n"
        "spdadd 192.0.2.1 192.0.2.2 ipv6 -P out ipsec esp/transport//unique;\n"
        "spdadd 192.0.2.2 192.0.2.1 ipv6 -P in ipsec esp/transport//unique;\n"
        "add 192.0.2.1 192.0.2.2 esp 10000 -m transport -u 16384 -E rijndael-cbc "
        "\"0123456789ABCDEF\";\n"
        "add 192.0.2.2 192.0.2.1 esp 10001 -m transport -u 16384 -E rijndael-cbc "
        "\"0123456789ABCDEF\" -A hmac-sha1 \"AH SA configuration!\";\n";
    static struct sink s;
    struct skp_error e;
    const struct skp_cmd *c;
    size_t i;

    (void)state;
    assert_int_equal(run(text, &s, &e), SKP_OK);
    assert_int_equal(s.n, 6);
    for (i = 0; i < 4; i++) {
        bool out = i % 2 == 0;
        c = &s.r[i].cmd;
        check_sel(c, SKP_CMD_SPDADD, out ? "192.0.2.1" : "192.0.2.2", 32,
                  out ? "192.0.2.2" : "192.0.2.1", 32,
                  i < 2 ? IPSECIF_IPPROTO_IPV4 : IPSECIF_IPPROTO_IPV6, 0, 0);
        check_pol(c, out ? IPSECIF_DIR_OUT : IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC, PDEF, 1);
        check_req(&c->pol.req[0], ESP, TRANSPORT, IPSECIF_LEVEL_UNIQUE, 0, NULL, NULL);
    }
    c = &s.r[4].cmd;
    check_sa(c, SKP_CMD_ADD, "192.0.2.1", "192.0.2.2", ESP, 10000);
    assert_int_equal(c->sa.reqid, 16384);
    assert_int_equal(c->sa.mode, TRANSPORT);
    assert_int_equal(c->sa.ekey_len, 16);
    assert_memory_equal(c->sa.ekey, "0123456789ABCDEF", 16);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_NONE);
    c = &s.r[5].cmd;
    check_sa(c, SKP_CMD_ADD, "192.0.2.2", "192.0.2.1", ESP, 10001);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA1_96);
    assert_int_equal(c->sa.akey_len, 20);
    assert_memory_equal(c->sa.akey, "AH SA configuration!", 20);
}

/* ---- Errors ---- */

struct err_case {
    const char *text;
    int rc;
    unsigned line;
    const char *msg;
    size_t delivered;
};

#define K16 "0x000102030405060708090a0b0c0d0e0f"
#define K20 "0x000102030405060708090a0b0c0d0e0f10111213"
#define K32 "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SA12 "add 192.0.2.1 192.0.2.2 esp 0x1000 "
#define SPD12 "spdadd 192.0.2.1 192.0.2.2 "

static const struct err_case err_cases[] = {
    /* the brief's examples */
    {"flush;\n# comment\n" SA12 "-E aes-foo " K16 ";\n", SKP_ERR_SYNTAX, 3,
     "line 3: unknown algorithm 'aes-foo'", 1},
    {SA12 "-E aes-cbc \"0123456789abcde\";", SKP_ERR_VALUE, 1,
     "line 1: key length 15 does not fit aes-cbc", 0},
    {SA12 "-E rijndael-cbc " K16 " -A hmac-sha256 0x0011;", SKP_ERR_VALUE, 1,
     "line 1: key length 2 does not fit hmac-sha256", 0},
    {SA12 "-E aes-gcm-16 " K16 ";", SKP_ERR_VALUE, 1,
     "line 1: key length 16 does not fit aes-gcm-16", 0},
    {SA12 "-E chacha20-poly1305 " K32 ";", SKP_ERR_VALUE, 1,
     "line 1: key length 32 does not fit chacha20-poly1305", 0},
    {SA12 "-E 3des-cbc " K16 ";", SKP_ERR_VALUE, 1, "line 1: key length 16 does not fit 3des-cbc",
     0},
    {"flush;\nspdflush;\nadd 192.0.2.1\n  192.0.2.2 esp 0x1000 -E null -A null\n", SKP_ERR_SYNTAX,
     3, "line 3: missing ';' at the end of the input (statement 'add')", 2},
    {"flush;\nspdflush", SKP_ERR_SYNTAX, 2,
     "line 2: missing ';' at the end of the input (statement 'spdflush')", 1},
    {"add 192.0.2.300 192.0.2.2 esp 0x1000 -E null;", SKP_ERR_VALUE, 1,
     "line 1: bad address '192.0.2.300'", 0},
    {"spdadd 2001:db8:::1 2001:db8::2 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad address '2001:db8:::1'", 0},
    {"add host.example 192.0.2.2 esp 0x1000 -E null;", SKP_ERR_VALUE, 1,
     "line 1: bad address 'host.example'", 0},
    {"spdadd 192.0.2.0/33 192.0.2.0/24 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad prefix length in '192.0.2.0/33'", 0},
    {"spdadd 2001:db8::/129 2001:db8::/32 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad prefix length in '2001:db8::/129'", 0},
    {"spdadd 192.0.2.0/ 192.0.2.0/24 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad prefix length in '192.0.2.0/'", 0},
    {"delete 192.0.2.1/32 192.0.2.2 esp 0x1000;", SKP_ERR_VALUE, 1,
     "line 1: prefix length not allowed in '192.0.2.1/32'", 0},
    {"spdadd 192.0.2.1[65536] 192.0.2.2 tcp -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad port in '192.0.2.1[65536]'", 0},
    {"spdadd 192.0.2.1 192.0.2.2[http] tcp -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad port in '192.0.2.2[http]'", 0},
    {"spdadd 192.0.2.1[80 192.0.2.2 tcp -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad port in '192.0.2.1[80'", 0},
    {"spdadd 192.0.2.1 [x] 192.0.2.2 tcp -P out none;", SKP_ERR_VALUE, 1, "line 1: bad port '[x]'",
     0},
    {SPD12 "any -P out ipsec esp/transport//requir;", SKP_ERR_SYNTAX, 1,
     "line 1: bad level 'requir' in 'esp/transport//requir'", 0},
    {SPD12 "any -P out ipsec esp/transport//unique:0;", SKP_ERR_VALUE, 1,
     "line 1: bad unique id (1..32767) in 'esp/transport//unique:0'", 0},
    {SPD12 "any -P out ipsec esp/transport//unique:32768;", SKP_ERR_VALUE, 1,
     "line 1: bad unique id (1..32767) in 'esp/transport//unique:32768'", 0},
    {"flush;\n\nfrob 1 2;\n", SKP_ERR_SYNTAX, 3, "line 3: unknown command 'frob'", 1},
    {"\"flush\";", SKP_ERR_SYNTAX, 1, "line 1: unknown command 'flush'", 0},
    {SA12 "\n -E aes-cbc \"0123456789abcdef;\nflush;\n", SKP_ERR_SYNTAX, 2,
     "line 2: unterminated quoted string", 0},
    {"get 192.0.2.1 192.0.2.2 esp;", SKP_ERR_SYNTAX, 1, "line 1: missing SPI", 0},
    {"get 192.0.2.1 192.0.2.2 esp 255;", SKP_ERR_VALUE, 1, "line 1: SPI '255' is reserved (0..255)",
     0},
    {"get 192.0.2.1 192.0.2.2 esp 0x100000000;", SKP_ERR_VALUE, 1, "line 1: bad SPI '0x100000000'",
     0},
    {"get 192.0.2.1 192.0.2.2 esp 12ab;", SKP_ERR_VALUE, 1, "line 1: bad SPI '12ab'", 0},
    {"get 192.0.2.1;", SKP_ERR_SYNTAX, 1, "line 1: missing destination address", 0},
    {"get 192.0.2.1 192.0.2.2;", SKP_ERR_SYNTAX, 1, "line 1: missing protocol (esp, esp-udp or ah)",
     0},
    {"add 192.0.2.1 2001:db8::1 esp 0x1000 -E null;", SKP_ERR_VALUE, 1,
     "line 1: address families of source and destination differ at '2001:db8::1'", 0},
    {"add -4 2001:db8::1 2001:db8::2 esp 0x1000 -E null;", SKP_ERR_VALUE, 1,
     "line 1: address '2001:db8::1' is not IPv4 (-4)", 0},
    {"spdadd -6 192.0.2.1 192.0.2.2 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: address '192.0.2.1' is not IPv6 (-6)", 0},
    {SA12 "-E des-cbc 0x3ffe05014819ffff;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: algorithm 'des-cbc' unsupported", 0},
    {SA12 "-E aes-cbc " K16 " -A hmac-md5 \"authentication!!\";", SKP_ERR_UNSUPPORTED, 1,
     "line 1: algorithm 'hmac-md5' unsupported", 0},
    {SA12 "-A hmac-foo " K16 ";", SKP_ERR_SYNTAX, 1, "line 1: unknown algorithm 'hmac-foo'", 0},
    {SA12 "-C deflate;", SKP_ERR_UNSUPPORTED, 1, "line 1: compression ('-C') unsupported", 0},
    {SA12 "-ctx 1 1 \"system_u\" -E null;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: security context ('-ctx') unsupported", 0},
    {"add 192.0.2.1 192.0.2.2 tcp 0x1000 -A tcp-md5 \"secret\";", SKP_ERR_UNSUPPORTED, 1,
     "line 1: protocol 'tcp' unsupported", 0},
    {"add 192.0.2.1 192.0.2.2 esq 0x1000 -E null;", SKP_ERR_SYNTAX, 1,
     "line 1: unknown protocol 'esq'", 0},
    {SA12 "-A hmac-sha1 " K20 ";", SKP_ERR_SYNTAX, 1, "line 1: esp needs -E <algorithm> [<key>]",
     0},
    {SA12 "-m tunnel;", SKP_ERR_SYNTAX, 1, "line 1: esp needs -E <algorithm> [<key>]", 0},
    {"add 192.0.2.1 192.0.2.2 ah 0x1000 -E null -A hmac-sha1 " K20 ";", SKP_ERR_SYNTAX, 1,
     "line 1: -E not allowed with ah", 0},
    {"add 192.0.2.1 192.0.2.2 ah 0x1000;", SKP_ERR_SYNTAX, 1,
     "line 1: ah needs -A <algorithm> <key>", 0},
    {SA12 "-E aes-gcm-16 " K20 " -A hmac-sha1 " K20 ";", SKP_ERR_VALUE, 1,
     "line 1: aes-gcm-16 carries its own integrity check: drop -A", 0},
    {SA12 "-E aes-cbc;", SKP_ERR_SYNTAX, 1, "line 1: missing key after '-E aes-cbc'", 0},
    {SA12 "-E aes-cbc -A hmac-sha1 " K20 ";", SKP_ERR_SYNTAX, 1,
     "line 1: missing key after '-E aes-cbc'", 0},
    {SA12 "-E aes-cbc 0123456789abcdef;", SKP_ERR_VALUE, 1,
     "line 1: bad key after '-E aes-cbc': use \"text\" or 0x hex", 0},
    {SA12 "-E aes-cbc 0x0001020304050607zz090a0b0c0d0e0f;", SKP_ERR_VALUE, 1,
     "line 1: bad hex key after '-E aes-cbc'", 0},
    {SA12 "-E aes-cbc 0x;", SKP_ERR_VALUE, 1,
     "line 1: bad key after '-E aes-cbc': use \"text\" or 0x hex", 0},
    {SA12 "-E;", SKP_ERR_SYNTAX, 1, "line 1: missing algorithm after '-E'", 0},
    {SA12 "-m tunnel -m transport -E null;", SKP_ERR_SYNTAX, 1, "line 1: '-m' given twice", 0},
    {SA12 "-E null -E null;", SKP_ERR_SYNTAX, 1, "line 1: '-E' given twice", 0},
    {SA12 "-q 1 -E null;", SKP_ERR_SYNTAX, 1, "line 1: unknown option '-q'", 0},
    {SA12 "-m tunel -E null;", SKP_ERR_SYNTAX, 1, "line 1: bad mode 'tunel'", 0},
    {SA12 "-m;", SKP_ERR_SYNTAX, 1, "line 1: missing value after '-m'", 0},
    {SA12 "-f fancy-pad -E null;", SKP_ERR_SYNTAX, 1, "line 1: bad -f option 'fancy-pad'", 0},
    {SA12 "-r 536870912 -E null;", SKP_ERR_VALUE, 1, "line 1: bad number '536870912'", 0},
    {SA12 "-u -1 -E null;", SKP_ERR_VALUE, 1, "line 1: bad number '-1'", 0},
    {SA12 "-lh;", SKP_ERR_SYNTAX, 1, "line 1: missing number after '-lh'", 0},
    {"add 192.0.2.1[4500] 192.0.2.2 esp 0x1000 -E null;", SKP_ERR_SYNTAX, 1,
     "line 1: a port in '192.0.2.1[4500]' needs protocol esp-udp", 0},
    {"add 192.0.2.1 192.0.2.2 esp-udp 192.0.2.9 0x1000 -E null;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: NAT-T original address '192.0.2.9' after esp-udp unsupported", 0},
    {"get 192.0.2.1 192.0.2.2 esp 0x1000 -E null;", SKP_ERR_SYNTAX, 1,
     "line 1: '-E' only belongs in add or update", 0},
    {"deleteall 192.0.2.1 192.0.2.2 esp 0x1000;", SKP_ERR_SYNTAX, 1, "line 1: unexpected '0x1000'",
     0},
    {"flush esx;", SKP_ERR_SYNTAX, 1, "line 1: unknown protocol 'esx'", 0},
    {"flush ipcomp;", SKP_ERR_UNSUPPORTED, 1, "line 1: protocol 'ipcomp' unsupported", 0},
    {"spdflush now;", SKP_ERR_SYNTAX, 1, "line 1: unexpected 'now'", 0},
    {SPD12 "any -P up none;", SKP_ERR_SYNTAX, 1, "line 1: bad direction 'up'", 0},
    {SPD12 "any -P;", SKP_ERR_SYNTAX, 1, "line 1: missing direction after '-P' (in, out or fwd)",
     0},
    {SPD12 "any -P out;", SKP_ERR_SYNTAX, 1, "line 1: missing action (discard, none or ipsec)", 0},
    {SPD12 "any -P out permit;", SKP_ERR_SYNTAX, 1, "line 1: bad action 'permit'", 0},
    {SPD12 "any -P out bypass;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: action 'bypass' is for socket policies only", 0},
    {SPD12 "any -P out ipsec;", SKP_ERR_SYNTAX, 1,
     "line 1: missing request after 'ipsec' (e.g. esp/transport//require)", 0},
    {SPD12 "any -P out ipsec esp/tunnel//require;", SKP_ERR_SYNTAX, 1,
     "line 1: tunnel request 'esp/tunnel//require' needs src-dst endpoints", 0},
    {SPD12 "any -P out ipsec esp/tunnel/198.51.100.1/require;", SKP_ERR_VALUE, 1,
     "line 1: bad tunnel endpoints in 'esp/tunnel/198.51.100.1/require'", 0},
    {SPD12 "any -P out ipsec esp/tunnel/198.51.100.1-2001:db8::2/require;", SKP_ERR_VALUE, 1,
     "line 1: tunnel endpoint families differ in 'esp/tunnel/198.51.100.1-2001:db8::2/require'", 0},
    {SPD12 "any -P out ipsec esp/tunnel/198.51.100.1-198.51.100.300/require;", SKP_ERR_VALUE, 1,
     "line 1: bad tunnel endpoint address in 'esp/tunnel/198.51.100.1-198.51.100.300/require'", 0},
    {SPD12 "any -P out ipsec esp/tunnel/me-any/require;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: 'me'/'any' endpoints unsupported in 'esp/tunnel/me-any/require'", 0},
    {SPD12 "any -P out ipsec esp;", SKP_ERR_SYNTAX, 1, "line 1: request 'esp' needs protocol/mode",
     0},
    {SPD12 "any -P out ipsec esp/transport//require/x;", SKP_ERR_SYNTAX, 1,
     "line 1: bad request 'esp/transport//require/x'", 0},
    {SPD12 "any -P out ipsec esp/any//require;", SKP_ERR_SYNTAX, 1,
     "line 1: bad mode in request 'esp/any//require'", 0},
    {SPD12 "any -P out ipsec ipcomp/transport//use;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: ipcomp unsupported in 'ipcomp/transport//use'", 0},
    {SPD12 "any -P out ipsec esq/transport//use;", SKP_ERR_SYNTAX, 1,
     "line 1: bad protocol in request 'esq/transport//use'", 0},
    {SPD12 "any -P out none esp/transport//require;", SKP_ERR_SYNTAX, 1,
     "line 1: request 'esp/transport//require' after a discard/none action", 0},
    {SPD12 "any -P out ipsec esp/transport//use ah/transport//use esp/transport//use;",
     SKP_ERR_LIMIT, 1, "line 1: more than 2 requests in one policy", 0},
    {SPD12 "any -P out prio higher ipsec esp/transport//use;", SKP_ERR_VALUE, 1,
     "line 1: bad priority 'higher'", 0},
    {SPD12 "any -P out prio;", SKP_ERR_SYNTAX, 1, "line 1: missing value after 'prio'", 0},
    {SPD12 "any -P out prio 5;", SKP_ERR_SYNTAX, 1,
     "line 1: missing action (discard, none or ipsec)", 0},
    {SPD12 "tcpx -P out none;", SKP_ERR_SYNTAX, 1, "line 1: unknown upper-layer protocol 'tcpx'",
     0},
    {SPD12 "256 -P out none;", SKP_ERR_SYNTAX, 1, "line 1: unknown upper-layer protocol '256'", 0},
    {SPD12 "-P out none;", SKP_ERR_SYNTAX, 1, "line 1: missing upper-layer protocol", 0},
    {"spdadd 192.0.2.1[8] 192.0.2.2 icmp -P out none;", SKP_ERR_VALUE, 1,
     "line 1: no ports with icmp in '192.0.2.1[8]': give type,code after the protocol", 0},
    {SPD12 "icmp6 135,300 -P out none;", SKP_ERR_VALUE, 1, "line 1: bad ICMP type,code '135,300'",
     0},
    {SPD12 "icmp 8, -P out none;", SKP_ERR_VALUE, 1, "line 1: bad ICMP type,code '8,'", 0},
    {SPD12 "gre 1234 -P out none;", SKP_ERR_UNSUPPORTED, 1, "line 1: GRE key '1234' unsupported",
     0},
    {SPD12 "tcp 80 -P out none;", SKP_ERR_SYNTAX, 1,
     "line 1: unexpected '80' after the upper-layer protocol", 0},
    {SPD12 "any;", SKP_ERR_SYNTAX, 1, "line 1: missing policy (-P direction ...)", 0},
    {SPD12 "any -ctx 1 1 \"x\" -P out none;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: security context ('-ctx') unsupported", 0},
    {SPD12 "any out none;", SKP_ERR_SYNTAX, 1,
     "line 1: unexpected 'out' after the upper-layer "
     "protocol",
     0},
    {SPD12 "any -X out none;", SKP_ERR_SYNTAX, 1, "line 1: expected '-P', found '-X'", 0},
    {"spdadd tagged \"tag\" -P out none;", SKP_ERR_UNSUPPORTED, 1,
     "line 1: 'tagged' policies unsupported", 0},
    {"spdadd \"192.0.2.1\" 192.0.2.2 any -P out none;", SKP_ERR_VALUE, 1,
     "line 1: bad address '192.0.2.1'", 0},
    {"spddelete 192.0.2.1 192.0.2.2 any;", SKP_ERR_SYNTAX, 1,
     "line 1: missing policy (-P direction ...)", 0},
    /* a forgotten ';' shows up at the next command word */
    {"flush\nspdflush;\n", SKP_ERR_SYNTAX, 2,
     "line 2: unknown protocol 'spdflush' (missing ';' before it?)", 0},
    {"spdflush\nflush;\n", SKP_ERR_SYNTAX, 2, "line 2: unexpected 'flush' (missing ';' before it?)",
     0},
    {SA12 "-E null\nspdadd 192.0.2.1 192.0.2.2 any -P out none;", SKP_ERR_SYNTAX, 2,
     "line 2: unexpected 'spdadd' (missing ';' before it?)", 0},
    {"flush;\x01", SKP_ERR_SYNTAX, 1, "line 1: invalid character 0x01", 1},
    {"flush;\n\x7f;", SKP_ERR_SYNTAX, 2, "line 2: invalid character 0x7f", 1},
    /* the bad word's line, not the statement's */
    {"flush;\nadd 192.0.2.1\n 192.0.2.2\n esp 0x1000\n -E aes-cbc \"short\"\n;", SKP_ERR_VALUE, 5,
     "line 5: key length 5 does not fit aes-cbc", 1},
    {"flush;\nspdadd 192.0.2.0/24\n\n 192.0.2.0/24 any -P out ipsec\n esp/transport//maybe;",
     SKP_ERR_SYNTAX, 5, "line 5: bad level 'maybe' in 'esp/transport//maybe'", 1},
    /* non-printable bytes in a shown word are replaced */
    {"fl\xc3\xbcsh;", SKP_ERR_SYNTAX, 1, "line 1: unknown command 'fl??sh'", 0},
};

static void test_errors(void **state)
{
    static struct sink s;
    struct skp_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const struct err_case *c = &err_cases[i];
        int rc = run(c->text, &s, &e);
        if (rc != c->rc || e.line != c->line || strcmp(e.msg, c->msg) != 0 || s.n != c->delivered) {
            fail_msg("case %zu: %s\n  got %d line %u '%s' (%zu delivered)\n  want %d line %u "
                     "'%s' (%zu)",
                     i, c->text, rc, e.line, e.msg, s.n, c->rc, c->line, c->msg, c->delivered);
        }
        assert_int_equal(e.code, c->rc);
    }
}

/* NUL is a byte like any other in the input: an error, not an end. */
static void test_nul_byte(void **state)
{
    static const char text[] = "flush;\0spdflush;";
    static struct sink s;
    struct skp_error e;

    (void)state;
    assert_int_equal(run_len(text, sizeof(text) - 1, &s, &e), SKP_ERR_SYNTAX);
    assert_string_equal(e.msg, "line 1: invalid character 0x00");
    assert_int_equal(s.n, 1);
    /* The same length limit without the NUL: both statements. */
    assert_int_equal(run_len("flush;\nspdflush;", 16, &s, &e), SKP_OK);
    assert_int_equal(s.n, 2);
    /* A length shorter than the text: only what is inside counts. */
    assert_int_equal(run_len("flush;spdflush;", 6, &s, &e), SKP_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(run_len("flush;spdflush;", 14, &s, &e), SKP_ERR_SYNTAX);
    assert_string_equal(e.msg,
                        "line 1: missing ';' at the end of the input (statement 'spdflush')");
}

static void test_limits(void **state)
{
    static struct sink s;
    static char text[4096];
    struct skp_error e;
    size_t i;
    size_t n;

    (void)state;
    /* A word of exactly SKP_TOKEN_MAX is a word (an unknown command here). */
    memset(text, 'a', SKP_TOKEN_MAX);
    strcpy(text + SKP_TOKEN_MAX, ";");
    assert_int_equal(run(text, &s, &e), SKP_ERR_SYNTAX);
    assert_string_equal(e.msg,
                        "line 1: unknown command "
                        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    /* One more is too long. */
    memset(text, 'a', SKP_TOKEN_MAX + 1);
    strcpy(text + SKP_TOKEN_MAX + 1, ";");
    assert_int_equal(run(text, &s, &e), SKP_ERR_LIMIT);
    assert_string_equal(e.msg,
                        "line 1: word longer than 256 characters: "
                        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    /* Quoted strings: quotes included in the limit. */
    n = (size_t)snprintf(text, sizeof(text), "flush;\n%s", SA12 "-E aes-cbc \"");
    memset(text + n, 'k', SKP_TOKEN_MAX - 2);
    strcpy(text + n + SKP_TOKEN_MAX - 2, "\";");
    assert_int_equal(run(text, &s, &e), SKP_ERR_VALUE);
    assert_string_equal(e.msg, "line 2: key length 254 does not fit aes-cbc");
    memset(text + n, 'k', SKP_TOKEN_MAX - 1);
    strcpy(text + n + SKP_TOKEN_MAX - 1, "\";");
    assert_int_equal(run(text, &s, &e), SKP_ERR_LIMIT);
    assert_string_equal(e.msg, "line 2: quoted string longer than 256 characters");
    assert_int_equal(s.n, 1);
    /* Words per statement. */
    n = (size_t)snprintf(text, sizeof(text), "spdflush");
    for (i = 1; i < SKP_STMT_TOKENS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, " x");
    }
    snprintf(text + n, sizeof(text) - n, ";");
    assert_int_equal(run(text, &s, &e), SKP_ERR_SYNTAX); /* 64 words: "unexpected 'x'" */
    assert_string_equal(e.msg, "line 1: unexpected 'x'");
    snprintf(text + n, sizeof(text) - n, " x;");
    assert_int_equal(run(text, &s, &e), SKP_ERR_LIMIT);
    assert_string_equal(e.msg, "line 1: statement has more than 64 words");
}

/* ---- Comments, lines, layout ---- */

static void test_comments_and_lines(void **state)
{
    static const char text[] = "# setkey script\n"                                        /* 1 */
                               "flush; # SAD\n"                                           /* 2 */
                               "\n"                                                       /* 3 */
                               "add 192.0.2.1   # source\n"                               /* 4 */
                               "    192.0.2.2 esp\t0x1000\r\n"                            /* 5 */
                               "    -E aes-cbc \"0123456789ab#def\"\n"                    /* 6 */
                               "    ;\n"                                                  /* 7 */
                               "spdflush;;;  ;\n"                                         /* 8 */
                               "spdadd 192.0.2.0/24[any] 198.51.100.0/24 [443] tcp\n"     /* 9 */
                               " -P in\n"                                                 /* 10 */
                               " prio def + 5\n"                                          /* 11 */
                               " ipsec esp/tunnel/203.0.113.1-203.0.113.2/use;spddump;\n" /* 12 */
                               "add 192.0.2.1 192.0.2.2 esp 0x1001 -E aes-cbc \"multi\n"
                               "line key 1\";"    /* 13-14 */
                               "dump ah; # done"; /* 14 */
    static struct sink s;
    struct skp_error e;
    const struct skp_cmd *c;

    (void)state;
    assert_int_equal(run(text, &s, &e), SKP_OK);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.r[0].line, 2);
    assert_int_equal(s.r[1].line, 4);
    c = &s.r[1].cmd;
    check_sa(c, SKP_CMD_ADD, "192.0.2.1", "192.0.2.2", ESP, 0x1000);
    assert_int_equal(c->sa.ekey_len, 16);
    assert_memory_equal(c->sa.ekey, "0123456789ab#def", 16); /* '#' inside quotes is a byte */
    assert_int_equal(s.r[2].line, 8);
    assert_int_equal(s.r[2].cmd.type, SKP_CMD_SPDFLUSH);
    assert_int_equal(s.r[3].line, 9);
    c = &s.r[3].cmd;
    check_sel(c, SKP_CMD_SPDADD, "192.0.2.0", 24, "198.51.100.0", 24, IPSECIF_IPPROTO_TCP, 0, 443);
    check_pol(c, IPSECIF_DIR_IN, IPSECIF_ACTION_IPSEC, PDEF - 5, 1);
    check_req(&c->pol.req[0], ESP, TUNNEL, IPSECIF_LEVEL_USE, 0, "203.0.113.1", "203.0.113.2");
    assert_int_equal(s.r[4].line, 12);
    assert_int_equal(s.r[4].cmd.type, SKP_CMD_SPDDUMP);
    assert_int_equal(s.r[5].line, 13);
    assert_int_equal(s.r[5].cmd.sa.ekey_len, 16);
    assert_memory_equal(s.r[5].cmd.sa.ekey, "multi\nline key 1", 16);
    assert_int_equal(s.r[6].line, 14);
    assert_int_equal(s.r[6].cmd.type, SKP_CMD_DUMP);
    assert_int_equal(s.r[6].cmd.sa.proto, AH);
}

static void test_empty_inputs(void **state)
{
    static const char *const texts[] = {"", "   \n\t\r\n", "# only a comment", ";;\n;",
                                        "# a\n# b\n"};
    static struct sink s;
    struct skp_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_int_equal(run(texts[i], &s, &e), SKP_OK);
        assert_int_equal(s.n, 0);
        assert_string_equal(e.msg, "");
    }
    /* NULL with length 0 is an empty script; err may be NULL. */
    assert_int_equal(skp_parse(NULL, 0, collect, &s, NULL), SKP_OK);
    assert_int_equal(skp_parse(NULL, 5, collect, &s, &e), SKP_ERR_ARG);
    assert_int_equal(e.code, SKP_ERR_ARG);
    assert_int_equal(skp_parse("flush;", 6, NULL, NULL, &e), SKP_ERR_ARG);
    s.n = 0;
    assert_int_equal(skp_parse("frob;", 5, collect, &s, NULL), SKP_ERR_SYNTAX);
    assert_int_equal(s.n, 0);
}

static void test_callback_stops(void **state)
{
    static struct sink s;
    struct skp_error e;

    (void)state;
    s.stop_at = 2;
    s.stop_rc = 42;
    assert_int_equal(run("flush;\n\nspdflush;\ndump;\n", &s, &e), 42);
    assert_int_equal(s.n, 2);
    assert_int_equal(e.line, 3);
    assert_int_equal(e.code, 42);
    assert_string_equal(e.msg, "line 3: stopped by the callback (42)");
    s.stop_rc = -7;
    assert_int_equal(run("flush;\n\nspdflush;\ndump;\n", &s, &e), -7);
    s.stop_at = 0;
}

/* ---- SA details ---- */

static void test_sa_variants(void **state)
{
    static struct sink s;
    const struct skp_cmd *c;

    (void)state;
    /* Keys: odd hex digit counts get a leading zero nibble, 0X and upper case. */
    c = one(&s, SA12 "-E null -A hmac-sha1 0x1000102030405060708090a0b0c0d0e0f101112;");
    check_key(c->sa.akey, c->sa.akey_len, "01000102030405060708090a0b0c0d0e0f101112");
    c = one(&s, SA12 "-E aes-cbc 0X000102030405060708090A0B0C0D0E0F;");
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 16);
    c = one(&s, SA12 "-E 3des-cbc \"0123456789abcdef01234567\" -A hmac-sha384 0x"
                     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
                     "202122232425262728292a2b2c2d2e2f;");
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_3DES_CBC);
    assert_int_equal(c->sa.ekey_len, 24);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_HMAC_SHA2_384_192);
    check_run(c->sa.akey, c->sa.akey_len, 0, 48);
    /* AEAD: key plus 4-byte salt; -A null is allowed with them. */
    c = one(&s, SA12 "-E aes-gcm-16 " K20 ";");
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_AES_GCM16);
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 20);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_NONE);
    assert_int_equal(c->sa.akey_len, 0);
    c = one(&s, SA12 "-E aes-gcm-16 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b"
                     "1c1d1e1f20212223 -A null;");
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 36);
    c = one(&s, SA12 "-E chacha20-poly1305 0x000102030405060708090a0b0c0d0e0f10111213141516171"
                     "8191a1b1c1d1e1f20212223;");
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_CHACHA20_POLY1305);
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 36);
    c = one(&s, SA12 "-E aes-gmac 0x000102030405060708090a0b0c0d0e0f1011121314151617"
                     "18191a1b;");
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_AES_GMAC);
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 28);
    /* AH with AES-GMAC is named after -A and keyed like ESP's aes-gmac. */
    c = one(&s, "add 192.0.2.1 192.0.2.2 ah 0x1200 -A aes-gmac 0x000102030405060708090a0b0c0d0e"
                "0f10111213;");
    assert_int_equal(c->sa.proto, IPSECIF_IPPROTO_AH);
    assert_int_equal(c->sa.ealg, IPSECIF_EALG_AES_GMAC);
    assert_int_equal(c->sa.aalg, IPSECIF_AALG_NONE);
    check_run(c->sa.ekey, c->sa.ekey_len, 0, 20);
    /* Options in any order, decimal SPI, -r in bytes, ESN, padding knobs. */
    c = one(&s, "add 192.0.2.1 192.0.2.2 esp 4294967295 -E aes-cbc " K16
                " -r 4 -esn -f random-pad -f nocyclic-seq -m any -ls 10 -bs 20 -lh 30 -bh 40;");
    assert_int_equal(c->sa.spi, 0xffffffffu);
    assert_int_equal(c->sa.replay_window, 32);
    assert_int_equal(c->sa.flags, IPSECIF_SA_F_ESN);
    assert_int_equal(c->sa.mode, IPSECIF_MODE_ANY);
    assert_int_equal(c->sa.soft.addtime, 10);
    assert_int_equal(c->sa.soft.bytes, 20);
    assert_int_equal(c->sa.hard.addtime, 30);
    assert_int_equal(c->sa.hard.bytes, 40);
    c = one(&s, SA12 "-r 536870911 -E null;");
    assert_int_equal(c->sa.replay_window, 536870911u * 8u);
    c = one(&s, SA12 "-u 4294967295 -E null;");
    assert_int_equal(c->sa.reqid, 0xffffffffu);
    c = one(&s, "update -4n 192.0.2.1 192.0.2.2 esp 256 -m tunnel -E null;");
    check_sa(c, SKP_CMD_UPDATE, "192.0.2.1", "192.0.2.2", ESP, 256);
    assert_int_equal(c->sa.mode, TUNNEL);
    c = one(&s, "add -6 2001:db8::1 2001:db8::2 ah 0x1000 -A null;");
    check_sa(c, SKP_CMD_ADD, "2001:db8::1", "2001:db8::2", AH, 0x1000);
    /* NAT-T: ports from [port], 4500 when absent or any; a port may be a word of its own. */
    c = one(&s, "add 192.0.2.1 198.51.100.9[31000] esp-udp 0x1000 -E null;");
    assert_int_equal(c->sa.natt_sport, 4500);
    assert_int_equal(c->sa.natt_dport, 31000);
    c = one(&s, "add 192.0.2.1[any] 198.51.100.9 [1701] esp-udp 0x1000 -E null;");
    assert_int_equal(c->sa.natt_sport, 4500);
    assert_int_equal(c->sa.natt_dport, 1701);
    c = one(&s, "delete 192.0.2.1[4501] 198.51.100.9 esp-udp 0x1000;");
    check_sa(c, SKP_CMD_DELETE, "192.0.2.1", "198.51.100.9", ESP, 0x1000);
    assert_int_equal(c->sa.natt_sport, 4501);
    /* get / delete keep -m as setkey does (obsolete there). */
    c = one(&s, "get 192.0.2.1 192.0.2.2 esp 0x1000 -m transport;");
    assert_int_equal(c->type, SKP_CMD_GET);
    c = one(&s, "getspi 192.0.2.1 192.0.2.2 esp 0x7000 -m tunnel -u 7;");
    assert_int_equal(c->sa.mode, TUNNEL);
    assert_int_equal(c->sa.reqid, 7);
    c = one(&s, "deleteall 2001:db8::1 2001:db8::2 ah;");
    check_sa(c, SKP_CMD_DELETEALL, "2001:db8::1", "2001:db8::2", AH, 0);
    c = one(&s, "flush ah;");
    assert_int_equal(c->sa.proto, AH);
    c = one(&s, "dump esp-udp;");
    assert_int_equal(c->sa.proto, ESP);
    c = one(&s, "dump;");
    assert_int_equal(c->sa.proto, 0);
}

/* ---- Policy details ---- */

struct prio_case {
    const char *spec; /* between "-P out" and "none" */
    int rc;
    uint32_t prio;
};

static const struct prio_case prio_cases[] = {
    {"", SKP_OK, 0x80000000u},
    {"prio 100", SKP_OK, 0x80000000u - 100},
    {"priority 0", SKP_OK, 0x80000000u},
    {"prio -100", SKP_OK, 0x80000064u},
    {"prio - 100", SKP_OK, 0x80000064u},
    {"prio high", SKP_OK, 0x40000000u},
    {"prio low", SKP_OK, 0xc0000000u},
    {"prio def", SKP_OK, 0x80000000u},
    {"prio high + 5", SKP_OK, 0x3ffffffbu},
    {"prio high +5", SKP_OK, 0x3ffffffbu},
    {"prio high+5", SKP_OK, 0x3ffffffbu},
    {"prio low-7", SKP_OK, 0xc0000007u},
    {"prio def - 1", SKP_OK, 0x80000001u},
    {"prio 2147483648", SKP_OK, 0},
    {"prio -2147483647", SKP_OK, 0xffffffffu},
    {"prio high + 1073741824", SKP_OK, 0},
    {"prio low - 1073741823", SKP_OK, 0xffffffffu},
    {"prio 2147483649", SKP_ERR_VALUE, 0},
    {"prio -2147483648", SKP_ERR_VALUE, 0},
    {"prio high + 1073741825", SKP_ERR_VALUE, 0},
    {"prio low - 1073741824", SKP_ERR_VALUE, 0},
    {"prio +5", SKP_ERR_VALUE, 0},
    {"prio high 5", SKP_ERR_VALUE, 0},
    {"prio 5x", SKP_ERR_VALUE, 0},
};

static void test_priorities(void **state)
{
    static struct sink s;
    struct skp_error e;
    char text[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(prio_cases) / sizeof(prio_cases[0]); i++) {
        const struct prio_case *pc = &prio_cases[i];
        int rc;
        snprintf(text, sizeof(text), SPD12 "any -P out %s none;", pc->spec);
        rc = run(text, &s, &e);
        if (rc != pc->rc) {
            fail_msg("%s: got %d (%s), want %d", text, rc, e.msg, pc->rc);
        }
        if (rc == SKP_OK) {
            assert_int_equal(s.r[0].cmd.pol.priority, pc->prio);
        }
    }
}

struct ulp_case {
    const char *spec;
    uint8_t proto;
    uint16_t sport;
    uint16_t dport;
};

static const struct ulp_case ulp_cases[] = {
    {"any", IPSECIF_IPPROTO_ANY, 0, 0},
    {"255", IPSECIF_IPPROTO_ANY, 0, 0},
    {"0", 0, 0, 0},
    {"icmp", IPSECIF_IPPROTO_ICMP, ICMPANY, ICMPANY},
    {"icmp 8", IPSECIF_IPPROTO_ICMP, 8, ICMPANY},
    {"icmp 3,4", IPSECIF_IPPROTO_ICMP, 3, 4},
    {"icmp6 135,0", IPSECIF_IPPROTO_ICMPV6, 135, 0},
    {"ipv6-icmp 128", IPSECIF_IPPROTO_ICMPV6, 128, ICMPANY},
    {"58", IPSECIF_IPPROTO_ICMPV6, ICMPANY, ICMPANY},
    {"tcp", IPSECIF_IPPROTO_TCP, 0, 0},
    {"udp", IPSECIF_IPPROTO_UDP, 0, 0},
    {"ipv4", IPSECIF_IPPROTO_IPV4, 0, 0},
    {"ip4", IPSECIF_IPPROTO_IPV4, 0, 0},
    {"ipencap", IPSECIF_IPPROTO_IPV4, 0, 0},
    {"4", IPSECIF_IPPROTO_IPV4, 0, 0},
    {"ipv6", IPSECIF_IPPROTO_IPV6, 0, 0},
    {"41", IPSECIF_IPPROTO_IPV6, 0, 0},
    {"gre", 47, 0, 0},
    {"esp", IPSECIF_IPPROTO_ESP, 0, 0},
    {"ah", IPSECIF_IPPROTO_AH, 0, 0},
    {"sctp", 132, 0, 0},
};

static void test_upperspec(void **state)
{
    static struct sink s;
    char text[256];
    const struct skp_cmd *c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ulp_cases) / sizeof(ulp_cases[0]); i++) {
        const struct ulp_case *u = &ulp_cases[i];
        snprintf(text, sizeof(text), "spdadd ::/0 ::/0 %s -P in none;", u->spec);
        c = one(&s, text);
        check_sel(c, SKP_CMD_SPDADD, "::", 0, "::", 0, u->proto, u->sport, u->dport);
    }
    /* The man page's example: no IPsec for inbound neighbour solicitations. */
    c = one(&s, "spdadd ::/0 ::/0 icmp6 135,0 -P in none ;");
    check_pol(c, IPSECIF_DIR_IN, IPSECIF_ACTION_NONE, PDEF, 0);
    /* [any] ports are fine with icmp. */
    c = one(&s, "spdadd 192.0.2.0/24[any] 192.0.2.2[any] icmp -P out discard;");
    check_sel(c, SKP_CMD_SPDADD, "192.0.2.0", 24, "192.0.2.2", 32, IPSECIF_IPPROTO_ICMP, ICMPANY,
              ICMPANY);
}

static void test_policy_variants(void **state)
{
    static struct sink s;
    const struct skp_cmd *c;

    (void)state;
    /* The setkey man page's NAT-T example: endpoint ports are accepted. */
    c = one(&s, "spdadd 10.0.11.0/24[any] 10.0.11.33/32[any] any -P out ipsec\n"
                "    esp/tunnel/192.0.2.1[4500]-198.51.100.2[30000]/require ;");
    check_sel(c, SKP_CMD_SPDADD, "10.0.11.0", 24, "10.0.11.33", 32, ANYP, 0, 0);
    check_req(&c->pol.req[0], ESP, TUNNEL, IPSECIF_LEVEL_REQUIRE, 0, "192.0.2.1", "198.51.100.2");
    /* Ports with "any" upperspec, as in the man page's spdadd example. */
    c = one(&s, "spdadd 10.0.11.41/32[21] 10.0.11.33/32[any] any -P out ipsec "
                "esp/tunnel/192.0.2.1-192.0.2.2/require ;");
    check_sel(c, SKP_CMD_SPDADD, "10.0.11.41", 32, "10.0.11.33", 32, ANYP, 21, 0);
    /* Request forms: level omitted or empty means default. */
    c = one(&s, SPD12 "any -P out ipsec esp/transport ah/transport/ ;");
    check_req(&c->pol.req[0], ESP, TRANSPORT, IPSECIF_LEVEL_DEFAULT, 0, NULL, NULL);
    check_req(&c->pol.req[1], AH, TRANSPORT, IPSECIF_LEVEL_DEFAULT, 0, NULL, NULL);
    c = one(&s, SPD12 "any -P out ipsec esp/transport// esp/tunnel/2001:db8::1-2001:db8::2;");
    check_req(&c->pol.req[0], ESP, TRANSPORT, IPSECIF_LEVEL_DEFAULT, 0, NULL, NULL);
    check_req(&c->pol.req[1], ESP, TUNNEL, IPSECIF_LEVEL_DEFAULT, 0, "2001:db8::1", "2001:db8::2");
    c = one(&s, SPD12 "any -P out ipsec esp/transport//default ah/transport//unique:32767;");
    check_req(&c->pol.req[0], ESP, TRANSPORT, IPSECIF_LEVEL_DEFAULT, 0, NULL, NULL);
    check_req(&c->pol.req[1], AH, TRANSPORT, IPSECIF_LEVEL_UNIQUE, 32767, NULL, NULL);
    /* Linux setkey puts prio before the action. */
    c = one(&s, "spdadd -n 2001:db8:1::/48 2001:db8:2::/48 any -P fwd prio 100 ipsec "
                "esp/tunnel/2001:db8::1-2001:db8::2/unique:9;");
    check_sel(c, SKP_CMD_SPDADD, "2001:db8:1::", 48, "2001:db8:2::", 48, ANYP, 0, 0);
    check_pol(c, IPSECIF_DIR_FWD, IPSECIF_ACTION_IPSEC, PDEF - 100, 1);
    /* spddelete: direction only, or a whole policy of which only the direction counts. */
    c = one(&s, "spddelete 192.0.2.0/24[any] 198.51.100.0/24[53] udp -P out;");
    check_sel(c, SKP_CMD_SPDDELETE, "192.0.2.0", 24, "198.51.100.0", 24, IPSECIF_IPPROTO_UDP, 0,
              53);
    assert_int_equal(c->pol.dir, IPSECIF_DIR_OUT);
    c = one(&s, "spddelete 192.0.2.1 192.0.2.2 any -P in ipsec esp/transport//require;");
    assert_int_equal(c->type, SKP_CMD_SPDDELETE);
    assert_int_equal(c->pol.dir, IPSECIF_DIR_IN);
    c = one(&s, "spddump;");
    assert_int_equal(c->type, SKP_CMD_SPDDUMP);
}

static void test_cmd_names(void **state)
{
    static const struct {
        enum skp_cmd_type type;
        const char *name;
    } names[] = {
        {SKP_CMD_ADD, "add"},
        {SKP_CMD_UPDATE, "update"},
        {SKP_CMD_GET, "get"},
        {SKP_CMD_GETSPI, "getspi"},
        {SKP_CMD_DELETE, "delete"},
        {SKP_CMD_DELETEALL, "deleteall"},
        {SKP_CMD_FLUSH, "flush"},
        {SKP_CMD_DUMP, "dump"},
        {SKP_CMD_SPDADD, "spdadd"},
        {SKP_CMD_SPDUPDATE, "spdupdate"},
        {SKP_CMD_SPDDELETE, "spddelete"},
        {SKP_CMD_SPDFLUSH, "spdflush"},
        {SKP_CMD_SPDDUMP, "spddump"},
    };
    static struct sink s;
    char text[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_string_equal(skp_cmd_name(names[i].type), names[i].name);
    }
    assert_string_equal(skp_cmd_name((enum skp_cmd_type)0), "?");
    /* The bare commands name themselves. */
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].type == SKP_CMD_FLUSH || names[i].type == SKP_CMD_DUMP ||
            names[i].type == SKP_CMD_SPDFLUSH || names[i].type == SKP_CMD_SPDDUMP) {
            snprintf(text, sizeof(text), "%s;", names[i].name);
            assert_int_equal(one(&s, text)->type, names[i].type);
        }
    }
}

/* ---- Robustness: prefixes and mutations ---- */

static unsigned count_cb_calls;

static int count_cb(void *arg, const struct skp_cmd *cmd, unsigned line)
{
    (void)arg;
    assert_true(line >= 1);
    assert_true(cmd->type >= SKP_CMD_ADD && cmd->type <= SKP_CMD_SPDDUMP);
    assert_true(cmd->sa.ekey_len <= sizeof(cmd->ekey));
    assert_true(cmd->sa.akey_len <= sizeof(cmd->akey));
    assert_true(cmd->pol.nreq <= IPSECIF_MAX_REQUESTS);
    count_cb_calls++;
    return 0;
}

static unsigned count_lines(const char *s, size_t n)
{
    unsigned lines = 1;
    size_t i;

    for (i = 0; i < n; i++) {
        lines += s[i] == '\n';
    }
    return lines;
}

static int fuzz_one(const char *text, size_t len)
{
    struct skp_error e;
    char *copy = malloc(len != 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, text, len);
    count_cb_calls = 0;
    rc = skp_parse(copy, len, count_cb, NULL, &e);
    free(copy);
    assert_true(rc == SKP_OK || (rc <= SKP_ERR_SYNTAX && rc >= SKP_ERR_LIMIT));
    assert_true(memchr(e.msg, '\0', sizeof(e.msg)) != NULL);
    if (rc != SKP_OK) {
        assert_int_equal(e.code, rc);
        assert_true(e.line >= 1 && e.line <= count_lines(text, len));
        assert_memory_equal(e.msg, "line ", 5);
    } else {
        assert_string_equal(e.msg, "");
    }
    return rc;
}

static char *fuzz_script(size_t *len)
{
    char *extra = extra_conf(4, 8);
    static const char more[] =
        "spdadd ::/0 ::/0 icmp6 135,0 -P in prio low - 3 none ;\n"
        "add 192.0.2.1[any] 198.51.100.9 [1701] esp-udp 0x1000 -m tunnel -r 8 -esn -E "
        "aes-gcm-16 \"0123456789abcdef0123\" ; # gcm\n"
        "spdadd 10.0.11.0/24[any] 10.0.11.33/32[any] any -P out ipsec\n"
        "    esp/tunnel/192.0.2.1[4500]-198.51.100.2[30000]/require ah/transport//unique:3;\n"
        "deleteall 2001:db8::1 2001:db8::2 ah;\nspddump;\n";
    size_t n = strlen(basic_conf) + strlen(extra) + strlen(more) + 1;
    char *s = malloc(n);

    assert_non_null(s);
    snprintf(s, n, "%s%s%s", basic_conf, extra, more);
    free(extra);
    *len = strlen(s);
    return s;
}

static void test_every_prefix(void **state)
{
    size_t len;
    char *script = fuzz_script(&len);
    size_t i;
    unsigned full;

    (void)state;
    assert_int_equal(fuzz_one(script, len), SKP_OK);
    full = count_cb_calls;
    assert_int_equal(full, 4 + 20 + 5);
    for (i = 0; i < len; i++) {
        fuzz_one(script, i);
        assert_true(count_cb_calls <= full);
    }
    free(script);
}

static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
    /* xorshift32: deterministic, so a failure repeats. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_mutations(void **state)
{
    static const char alphabet[] = "; #\"[]/-:.,0x9afAZ\n\t\r\0\x01\x7f\xff-Eesp";
    size_t len;
    char *script = fuzz_script(&len);
    char *buf = malloc(len + 16);
    unsigned iter;
    unsigned ok = 0;

    (void)state;
    assert_non_null(buf);
    for (iter = 0; iter < 10000; iter++) {
        size_t n = len;
        unsigned k;
        unsigned edits = 1 + rng() % 4;

        memcpy(buf, script, len);
        for (k = 0; k < edits; k++) {
            size_t at = rng() % (n != 0 ? n : 1);
            char ch = (rng() % 4 == 0) ? (char)rng() : alphabet[rng() % (sizeof(alphabet) - 1)];
            switch (rng() % 4) {
            case 0: /* replace */
                if (n != 0) {
                    buf[at] = ch;
                }
                break;
            case 1: /* delete */
                if (n != 0) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            case 2: /* insert */
                if (n < len + 16) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = ch;
                    n++;
                }
                break;
            default: /* cut */
                n = at;
                break;
            }
        }
        ok += fuzz_one(buf, n) == SKP_OK;
    }
    /* Some mutations land in comments or keep the syntax: both outcomes occur. */
    assert_true(ok > 0 && ok < iter);
    free(buf);
    free(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_script),
        cmocka_unit_test(test_extra_script),
        cmocka_unit_test(test_extra_lines_alone),
        cmocka_unit_test(test_ipsecif_manpage),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_comments_and_lines),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_sa_variants),
        cmocka_unit_test(test_priorities),
        cmocka_unit_test(test_upperspec),
        cmocka_unit_test(test_policy_variants),
        cmocka_unit_test(test_cmd_names),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_mutations),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
