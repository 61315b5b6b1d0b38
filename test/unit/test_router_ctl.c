/* The example router's OS-free command module (examples/router/router_cmd.c):
 * control-protocol framing round trips and refusals, address parsing, setkey
 * scripts run against a real context (errors with their lines, statements
 * before an error applied, owned policies refused with a clear text), the
 * setkey -D / -DP listings (exact lines, keys never shown), sysctl, stats
 * and the ifconfig listing. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "router_cmd.h"
#include "test_util.h"

/* ---- Output capture ---- */

struct cap {
    char text[65536];
    size_t n;
};

static void cap_write(void *arg, const char *s, size_t n)
{
    struct cap *c = arg;

    assert_true(c->n + n < sizeof(c->text));
    memcpy(c->text + c->n, s, n);
    c->n += n;
    c->text[c->n] = '\0';
}

struct fixture {
    struct test_ctx t;
    struct rtr_env env;
    struct cap cap;
    struct rtr_out out;
};

static void reset_out(struct fixture *f)
{
    memset(&f->cap, 0, sizeof(f->cap));
    memset(&f->out, 0, sizeof(f->out));
    f->out.write = cap_write;
    f->out.arg = &f->cap;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    setenv("TZ", "UTC", 1);
    tzset();
    test_ctx_new(&f->t, NULL);
    f->env.ctx = f->t.ctx;
    f->env.now = 5000;
    f->env.wall = 1700000000; /* Nov 14 22:13:20 2023 UTC */
    reset_out(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    test_ctx_free(&f->t);
    free(f);
    return 0;
}

/* Run "setkey -c" with a script; returns the command's status. */
static int run_setkey(struct fixture *f, const char *words, const char *script)
{
    char req[8192];
    struct rtr_request r;
    char *argv[8];
    char w[256];
    int argc = 0;
    long len;
    char *tok;

    reset_out(f);
    snprintf(w, sizeof(w), "%s", words);
    for (tok = strtok(w, " "); tok != NULL && argc < 8; tok = strtok(NULL, " ")) {
        argv[argc++] = tok;
    }
    len = rtr_request_build(req, sizeof(req), argc, argv, script,
                            script != NULL ? strlen(script) : 0);
    assert_true(len > 0);
    assert_int_equal(rtr_request_split(req, (size_t)len, &r), 0);
    return rtr_setkey(&f->env, &f->out, &r);
}

/* ---- Framing ---- */

static void test_framing_round_trip(void **state)
{
    static const struct {
        int argc;
        const char *argv[4];
        const char *script; /* NULL: none */
        size_t script_len;
    } cases[] = {
        {1, {"stats"}, NULL, 0},
        {3, {"ifconfig", "ipsec0", "up"}, NULL, 0},
        {2, {"setkey", "-c"}, "add 1 2 esp 300;\nflush;\n", 24},
        {2, {"setkey", "-c"}, "", 0},
        {4, {"setkey", "-f", "/x y", "-c"}, "a\0b\nc", 6}, /* NULs inside a script survive */
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        struct rtr_request r;
        long len = rtr_request_build(buf, sizeof(buf), cases[i].argc, (char *const *)cases[i].argv,
                                     cases[i].script, cases[i].script_len);
        int k;

        assert_true(len > 0);
        assert_int_equal(rtr_request_split(buf, (size_t)len, &r), 0);
        assert_int_equal(r.argc, cases[i].argc);
        for (k = 0; k < r.argc; k++) {
            assert_string_equal(r.argv[k], cases[i].argv[k]);
        }
        assert_int_equal(r.has_script, cases[i].script != NULL);
        if (cases[i].script != NULL) {
            assert_int_equal(r.script_len, cases[i].script_len);
            assert_memory_equal(r.script, cases[i].script, cases[i].script_len);
        }
    }
}

static void test_framing_refusals(void **state)
{
    char buf[64];
    struct rtr_request r;
    char *empty[] = {"ifconfig", ""};
    char *nl[] = {"ifconfig", "ipsec0\nup"};
    char *ok[] = {"ifconfig", "ipsec0"};
    char *many[RTR_ARGV_MAX + 1];
    static const char *const bad_requests[] = {"", "a\n\nb", "a\n", "\na", "\0script"};
    static const size_t bad_lens[] = {0, 4, 2, 2, 7};
    size_t i;

    (void)state;
    assert_int_equal(rtr_request_build(buf, sizeof(buf), 2, empty, NULL, 0), -1);
    assert_int_equal(rtr_request_build(buf, sizeof(buf), 2, nl, NULL, 0), -1);
    assert_int_equal(rtr_request_build(buf, sizeof(buf), 0, ok, NULL, 0), -1);
    /* "ifconfig\nipsec0" is 15 bytes: 15 fits exactly, 14 does not. */
    assert_int_equal(rtr_request_build(buf, 15, 2, ok, NULL, 0), 15);
    assert_int_equal(rtr_request_build(buf, 14, 2, ok, NULL, 0), -1);
    assert_int_equal(rtr_request_build(buf, 16, 2, ok, "x", 1), -1);
    assert_int_equal(rtr_request_build(buf, 17, 2, ok, "x", 1), 17);
    for (i = 0; i < RTR_ARGV_MAX + 1; i++) {
        many[i] = "w";
    }
    assert_int_equal(rtr_request_build(buf, sizeof(buf), RTR_ARGV_MAX + 1, many, NULL, 0), -1);
    for (i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        assert_int_equal(rtr_request_split(bad_requests[i], bad_lens[i], &r), -1);
    }
    /* RTR_ARGV_MAX words split; one more does not. */
    {
        char words[2 * (RTR_ARGV_MAX + 1)];

        for (i = 0; i < RTR_ARGV_MAX + 1; i++) {
            words[2 * i] = 'w';
            words[2 * i + 1] = '\n';
        }
        assert_int_equal(rtr_request_split(words, 2 * RTR_ARGV_MAX - 1, &r), 0);
        assert_int_equal(r.argc, RTR_ARGV_MAX);
        assert_int_equal(rtr_request_split(words, 2 * RTR_ARGV_MAX + 1, &r), -1);
    }
}

/* ---- Addresses ---- */

static void test_addr_parsing(void **state)
{
    static const struct {
        const char *text;
        int rc;
        uint8_t family;
        uint16_t port;
    } ports[] = {
        {"198.51.100.1", 0, IPSECIF_AF_INET, 0},
        {"198.51.100.1[4500]", 0, IPSECIF_AF_INET, 4500},
        {"2001:db8::1[500]", 0, IPSECIF_AF_INET6, 500},
        {"198.51.100.1[0]", -1, 0, 0},
        {"198.51.100.1[65536]", -1, 0, 0},
        {"198.51.100.1[45x]", -1, 0, 0},
        {"198.51.100.1[4500", -1, 0, 0},
        {"[4500]", -1, 0, 0},
        {"host.example[4500]", -1, 0, 0},
    };
    static const struct {
        const char *text;
        int rc;
        unsigned plen;
    } prefixes[] = {
        {"192.0.2.1/32", 0, 32}, {"192.0.2.1", 0, 32},    {"2001:db8:1::1/64", 0, 64},
        {"2001:db8::1", 0, 128}, {"192.0.2.1/33", -1, 0}, {"2001:db8::/129", -1, 0},
        {"192.0.2.1/", -1, 0},   {"192.0.2.1/-1", -1, 0}, {"192.0.2.1/2x", -1, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
        struct ipsecif_addr a;
        uint16_t port = 1;

        assert_int_equal(rtr_parse_addr_port(ports[i].text, &a, &port), ports[i].rc);
        if (ports[i].rc == 0) {
            assert_int_equal(a.family, ports[i].family);
            assert_int_equal(port, ports[i].port);
        }
    }
    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        struct ipsecif_addr a;
        unsigned plen = 0;

        assert_int_equal(rtr_parse_prefix(prefixes[i].text, &a, &plen), prefixes[i].rc);
        if (prefixes[i].rc == 0) {
            assert_int_equal(plen, prefixes[i].plen);
        }
    }
}

/* ---- setkey ---- */

#define KEY1 "0x0102030405060708090a0b0c0d0e0f1011121314"

static void test_setkey_add_and_dump(void **state)
{
    struct fixture *f = *state;
    static const char *const expect[] = {
        "198.51.100.1 198.51.100.2\n",
        "\tesp mode=transport spi=4096(0x00001000) reqid=16384(0x00004000)\n",
        "\tE: aes-gcm-16\n",
        "\tseq=0x00000000 replay=4 flags=0x00000000 state=mature\n",
        "\tcreated: Nov 14 22:13:20 2023\tcurrent: Nov 14 22:13:20 2023\n",
        "\tdiff: 0(s)\thard: 0(s)\tsoft: 0(s)\n",
        "\tlast:                     \thard: 0(s)\tsoft: 0(s)\n",
        "\tcurrent: 0(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n",
        "\tallocated: 0\thard: 0\tsoft: 0\n",
        "\tsadb_seq=1 pid=0 refcnt=0\n",
        "198.51.100.2 198.51.100.1\n",
        "\tesp mode=any spi=4097(0x00001001) reqid=0(0x00000000)\n",
        "\tA: hmac-sha256\n",
        "\tsadb_seq=0 pid=0 refcnt=0\n",
    };
    size_t i;

    assert_int_equal(run_setkey(f, "setkey -D", NULL), 0);
    assert_string_equal(f->cap.text, "No SAD entries.\n");
    assert_int_equal(
        run_setkey(
            f, "setkey -c",
            "add 198.51.100.1 198.51.100.2 esp 0x1000 -m transport -u 16384 -r 4\n"
            "    -E aes-gcm-16 " KEY1 ";\n"
            "add 198.51.100.2 198.51.100.1 esp 4097 -E aes-cbc 0x00112233445566778899aabbccddeeff\n"
            "    -A hmac-sha256 "
            "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f;\n"),
        0);
    assert_false(f->out.failed);
    assert_int_equal(ipsecif_sa_count(f->t.ctx), 2);
    f->env.now += 0; /* same instant: diff 0 */
    assert_int_equal(run_setkey(f, "setkey -D", NULL), 0);
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        if (strstr(f->cap.text, expect[i]) == NULL) {
            fail_msg("missing line '%s' in:\n%s", expect[i], f->cap.text);
        }
    }
    /* Keys never appear. */
    assert_null(strstr(f->cap.text, "0102030405"));
    assert_null(strstr(f->cap.text, "00112233"));
    /* get prints one entry; delete removes it; get then fails with a clear text. */
    assert_int_equal(run_setkey(f, "setkey -c", "get 198.51.100.1 198.51.100.2 esp 0x1000;"), 0);
    assert_non_null(strstr(f->cap.text, "spi=4096(0x00001000)"));
    assert_null(strstr(f->cap.text, "spi=4097"));
    assert_int_equal(run_setkey(f, "setkey -c", "delete 198.51.100.1 198.51.100.2 esp 0x1000;"), 0);
    assert_int_equal(run_setkey(f, "setkey -c", "get 198.51.100.1 198.51.100.2 esp 0x1000;"), -1);
    assert_string_equal(f->out.err, "line 1: get: no such SA");
    /* deleteall by address pair, then flush of what is left. */
    assert_int_equal(run_setkey(f, "setkey -c", "deleteall 198.51.100.2 198.51.100.1 esp;"), 0);
    assert_int_equal(ipsecif_sa_count(f->t.ctx), 0);
    assert_int_equal(run_setkey(f, "setkey -c", "deleteall 198.51.100.2 198.51.100.1 esp;"), -1);
    assert_string_equal(f->out.err, "line 1: deleteall: no such SA");
}

static void test_setkey_errors_keep_earlier_statements(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *script;
        const char *err_prefix; /* the error starts with this */
        size_t sas;             /* SAs installed afterwards */
    } cases[] = {
        {"add 198.51.100.1 198.51.100.2 esp 0x1000 -E aes-gcm-16 " KEY1 ";\n"
         "\n"
         "add 198.51.100.1 198.51.100.2 esp 0x1000 -E aes-gcm-16 " KEY1 ";\n",
         "line 3: add: SA already exists", 1},
        {"flush;\nadd 198.51.100.1 198.51.100.2 esp 0x1000 -E aes-gcm-16 " KEY1 ";\nbogus;\n",
         "line 3: ", 1},
        {"flush;\nadd 198.51.100.1 198.51.100.2 esp 0x1000 -E aes-gcm-16 0x01;\n", "line 2: ", 0},
        {"flush;\nupdate 198.51.100.1 198.51.100.2 esp 0x2000 -E aes-gcm-16 " KEY1 ";\n",
         "line 2: update: no such SA", 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(run_setkey(f, "setkey -c", cases[i].script), -1);
        assert_true(f->out.failed);
        if (strncmp(f->out.err, cases[i].err_prefix, strlen(cases[i].err_prefix)) != 0) {
            fail_msg("case %zu: error '%s', expected '%s...'", i, f->out.err, cases[i].err_prefix);
        }
        assert_null(strstr(f->out.err, "0102030405"));
        assert_int_equal(ipsecif_sa_count(f->t.ctx), cases[i].sas);
    }
    /* Usage errors. */
    assert_int_equal(run_setkey(f, "setkey", NULL), -1);
    assert_int_equal(run_setkey(f, "setkey -D -F", NULL), -1);
    assert_int_equal(run_setkey(f, "setkey -X", NULL), -1);
    assert_int_equal(run_setkey(f, "setkey -c", NULL), -1);
    assert_string_equal(f->out.err, "setkey: no script was sent");
}

static void test_setkey_spd_and_owned_policies(void **state)
{
    struct fixture *f = *state;
    struct ipsecif_addr src = test_addr("198.51.100.1");
    struct ipsecif_addr dst = test_addr("198.51.100.2");
    struct ipsecif_if_info info;
    struct ipsecif_if *ifp;
    char line[128];

    assert_int_equal(run_setkey(f, "setkey -DP", NULL), 0);
    assert_string_equal(f->cap.text, "No SPD entries.\n");
    assert_int_equal(ipsecif_if_create(f->t.ctx, "ipsec0", &ifp), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_tunnel(f->t.ctx, ifp, &src, 0, &dst, 0, 5000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(f->t.ctx, ifp, &info), IPSECIF_OK);

    assert_int_equal(
        run_setkey(f, "setkey -c",
                   "spdadd 192.0.2.0/24[any] 203.0.113.0/24[80] tcp -P out prio def + 5 ipsec\n"
                   "    esp/tunnel/198.51.100.1-198.51.100.9/require;\n"
                   "spdadd 192.0.2.0/24 203.0.113.0/24 icmp 8,0 -P in discard;\n"),
        0);
    assert_int_equal(ipsecif_spd_count(f->t.ctx), 6);
    assert_int_equal(run_setkey(f, "setkey -DP", NULL), 0);
    /* The interface's own policies, with their unique ids. */
    snprintf(line, sizeof(line), "198.51.100.1/32[any] 198.51.100.2/32[any] ipencap\n");
    assert_non_null(strstr(f->cap.text, line));
    snprintf(line, sizeof(line), "\tout prio def ipsec\n\tesp/transport//unique:%u\n",
             info.reqid[IPSECIF_IFPOL_V4_OUT]);
    assert_non_null(strstr(f->cap.text, line));
    snprintf(line, sizeof(line), "\tspid=%u seq=", info.policy_id[IPSECIF_IFPOL_V4_OUT]);
    assert_non_null(strstr(f->cap.text, line));
    /* The manual ones, as added. */
    assert_non_null(strstr(f->cap.text, "192.0.2.0/24[any] 203.0.113.0/24[80] tcp\n"
                                        "\tout prio def + 5 ipsec\n"
                                        "\tesp/tunnel/198.51.100.1-198.51.100.9/require\n"
                                        "\tcreated: Nov 14 22:13:20 2023  lastused:"
                                        "                     \n"
                                        "\tlifetime: 0(s) validtime: 0(s)\n"));
    assert_non_null(strstr(f->cap.text, "192.0.2.0/24[any] 203.0.113.0/24[any] icmp 8,0\n"
                                        "\tin prio def discard\n\tcreated:"));
    assert_non_null(strstr(f->cap.text, "seq=0 pid=0\n\trefcnt=1\n"));

    /* Owned policies cannot be deleted or replaced; the text says why. */
    assert_int_equal(run_setkey(f, "setkey -c",
                                "spddelete 192.0.2.0/24 203.0.113.0/24 icmp 8,0 -P in;\n"
                                "spddelete 198.51.100.1 198.51.100.2 ipv4 -P out;\n"),
                     -1);
    assert_string_equal(f->out.err, "line 2: spddelete: policy is owned by an interface");
    assert_int_equal(ipsecif_spd_count(f->t.ctx), 5);
    assert_int_equal(run_setkey(f, "setkey -c",
                                "spdadd 198.51.100.1 198.51.100.2 ipv4 -P out ipsec "
                                "esp/transport//require;"),
                     -1);
    assert_string_equal(f->out.err, "line 1: spdadd: policy is owned by an interface");
    assert_int_equal(
        run_setkey(f, "setkey -c", "spddelete 192.0.2.0/24 203.0.113.0/24 icmp 8,0 -P in;"), -1);
    assert_string_equal(f->out.err, "line 1: spddelete: no such policy");
    /* -FP leaves the interface's four. */
    assert_int_equal(run_setkey(f, "setkey -FP", NULL), 0);
    assert_int_equal(ipsecif_spd_count(f->t.ctx), 4);
    assert_int_equal(ipsecif_if_destroy(f->t.ctx, ifp), IPSECIF_OK);
}

static void test_setkey_getspi(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(run_setkey(f, "setkey -c",
                                "getspi 198.51.100.2 198.51.100.1 esp 0x3000 -m transport "
                                "-u 16385;"),
                     0);
    assert_non_null(strstr(f->cap.text, "\tesp mode=transport spi=12288(0x00003000) "
                                        "reqid=16385(0x00004001)\n"));
    assert_non_null(strstr(f->cap.text, "state=larval\n"));
    assert_int_equal(run_setkey(f, "setkey -c",
                                "update 198.51.100.2 198.51.100.1 esp 0x3000 -m transport "
                                "-u 16385 -E aes-gcm-16 " KEY1 ";\n"
                                "get 198.51.100.2 198.51.100.1 esp 0x3000;"),
                     0);
    assert_non_null(strstr(f->cap.text, "state=mature\n"));
}

/* ---- sysctl, stats ---- */

static void test_sysctl(void **state)
{
    struct fixture *f = *state;
    char *all[] = {"sysctl", "-a"};
    char *get[] = {"sysctl", "net.inet6.ipsec6.def_policy"};
    char *set[] = {"sysctl", "net.inet6.ipsec6.def_policy=0", "net.inet.ipsec.esp_trans_deflev=2"};
    char *bad_value[] = {"sysctl", "net.inet.ipsec.esp_trans_deflev=7"};
    char *bad_name[] = {"sysctl", "net.inet.ipsec.nope"};
    char *bad_num[] = {"sysctl", "net.inet.ipsec.def_policy=x"};
    char *nest[] = {"sysctl", "net.ipsecif.max_nesting=2"};
    char *nest_zero[] = {"sysctl", "net.ipsecif.max_nesting=0"};
    size_t lines = 0;
    const char *p;

    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, all), 0);
    for (p = f->cap.text; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 16);
    assert_non_null(strstr(f->cap.text, "net.inet.ipsec.def_policy = 1\n"));
    assert_non_null(strstr(f->cap.text, "net.ipsecif.max_nesting = 1\n"));
    assert_non_null(strstr(f->cap.text, "net.inet.ipsec.enabled = 1\n"));
    assert_non_null(strstr(f->cap.text, "net.inet.ipsec.used = 0\n"));
    assert_non_null(strstr(f->cap.text, "net.inet6.ipsec6.enabled = 1\n"));
    assert_non_null(strstr(f->cap.text, "net.inet6.ipsec6.used = 0\n"));
    assert_non_null(strstr(f->cap.text, "net.key.prefered_oldsa = 0\n"));
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 3, set), 0);
    assert_string_equal(f->cap.text, "net.inet6.ipsec6.def_policy: 1 -> 0\n"
                                     "net.inet.ipsec.esp_trans_deflev: 1 -> 2\n");
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL6_DEF_POLICY), 0);
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV), 2);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, get), 0);
    assert_string_equal(f->cap.text, "net.inet6.ipsec6.def_policy = 0\n");
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, bad_value), -1);
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_ESP_TRANS_DEFLEV), 2);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, bad_name), -1);
    assert_string_equal(f->out.err, "sysctl: unknown name 'net.inet.ipsec.nope'");
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, bad_num), -1);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 1, all), -1);

    /* The nesting limit is the library's, not an ipsecif_sysctl key. */
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, nest), 0);
    assert_string_equal(f->cap.text, "net.ipsecif.max_nesting: 1 -> 2\n");
    assert_int_equal(ipsecif_if_max_nesting_get(f->t.ctx), 2);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, nest_zero), -1);
    assert_string_equal(f->out.err, "sysctl: net.ipsecif.max_nesting: value 0 not allowed");
    assert_int_equal(ipsecif_if_max_nesting_get(f->t.ctx), 2);
}

/* enabled, used and prefered_oldsa: NetBSD's names (ipsec6 ones are the
 * same values), used read only, enabled 0 refused while policies exist. */
static void test_sysctl_ipsec_used(void **state)
{
    struct fixture *f = *state;
    char *old1[] = {"sysctl", "net.key.prefered_oldsa=1"};
    char *old2[] = {"sysctl", "net.key.prefered_oldsa=2"};
    char *used[] = {"sysctl", "net.inet.ipsec.used=1"};
    char *used6[] = {"sysctl", "net.inet6.ipsec6.used"};
    char *off6[] = {"sysctl", "net.inet6.ipsec6.enabled=0"};
    char *on[] = {"sysctl", "net.inet.ipsec.enabled=1"};
    char *always[] = {"sysctl", "net.inet.ipsec.enabled=2"};
    char *three[] = {"sysctl", "net.inet.ipsec.enabled=3"};
    char *off[] = {"sysctl", "net.inet.ipsec.enabled=0"};
    struct ipsecif_policy p;

    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, old1), 0);
    assert_string_equal(f->cap.text, "net.key.prefered_oldsa: 0 -> 1\n");
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_KEY_PREFERED_OLDSA), 1);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, old2), -1);
    assert_string_equal(f->out.err, "sysctl: net.key.prefered_oldsa: value 2 not allowed");
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, used), -1);
    assert_string_equal(f->out.err, "sysctl: net.inet.ipsec.used: read-only");
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_USED), 0);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, off6), 0);
    assert_string_equal(f->cap.text, "net.inet6.ipsec6.enabled: 1 -> 0\n");
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_ENABLED), 0);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, three), -1);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, always), 0);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, used6), 0);
    assert_string_equal(f->cap.text, "net.inet6.ipsec6.used = 1\n");
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, on), 0);
    memset(&p, 0, sizeof(p));
    p.sel.src = test_addr("192.0.2.1");
    p.sel.dst = test_addr("192.0.2.2");
    p.sel.src_plen = 32;
    p.sel.dst_plen = 32;
    p.sel.ulproto = IPSECIF_IPPROTO_ANY;
    p.dir = IPSECIF_DIR_OUT;
    p.action = IPSECIF_ACTION_NONE;
    assert_int_equal(ipsecif_spd_add(f->t.ctx, &p, 0, NULL), IPSECIF_OK);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, off), -1);
    assert_string_equal(f->out.err, "sysctl: net.inet.ipsec.enabled: busy: policies exist");
    assert_int_equal(ipsecif_sysctl_get(f->t.ctx, IPSECIF_SYSCTL_ENABLED), 1);
    assert_int_equal(ipsecif_spd_flush(f->t.ctx), 1);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, off), 0);
    reset_out(f);
    assert_int_equal(rtr_sysctl(&f->env, &f->out, 2, used6), 0);
    assert_string_equal(f->cap.text, "net.inet6.ipsec6.used = 0\n");
}

static void test_stats_lines(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {"stats"};
    size_t lines = 0;
    const char *p;

    assert_int_equal(rtr_stats(&f->env, &f->out, 1, argv), 0);
    /* One line per counter of struct ipsecif_stats, each "        N text". */
    for (p = f->cap.text; *p != '\0'; p = strchr(p, '\n') + 1) {
        assert_memory_equal(p, "        0 ", 10);
        lines++;
    }
    assert_int_equal(lines, sizeof(struct ipsecif_stats) / sizeof(uint64_t));
    assert_non_null(strstr(f->cap.text, "        0 inbound packets processed successfully\n"));
    assert_non_null(strstr(f->cap.text, "        0 outbound packets processed successfully\n"));
    assert_non_null(strstr(
        f->cap.text, "        0 outbound packets refused: ipsec interfaces nested too deep\n"));
    reset_out(f);
    assert_int_equal(rtr_stats(&f->env, &f->out, 2, argv), -1);
}

/* ---- ifconfig listing ---- */

static void test_ifconfig_listing(void **state)
{
    struct fixture *f = *state;
    struct ipsecif_addr src = test_addr("198.51.100.1");
    struct ipsecif_addr dst = test_addr("198.51.100.2");
    struct rtr_inner_addr addrs[2];
    struct ipsecif_if_info info;
    struct ipsecif_if *ifp;
    char expect[512];

    assert_int_equal(ipsecif_if_create(f->t.ctx, "ipsec3", &ifp), IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(f->t.ctx, ifp, &info), IPSECIF_OK);
    rtr_print_if(&f->out, &info, NULL, 0);
    assert_string_equal(f->cap.text, "ipsec3: flags=0xc010<POINTOPOINT,MULTICAST,LINK2> mtu 1280\n"
                                     "\tinput: 0 packets, 0 bytes; output: 0 packets, 0 bytes; "
                                     "drops: in 0, out 0\n");

    assert_int_equal(ipsecif_if_set_tunnel(f->t.ctx, ifp, &src, 0, &dst, 0, 5000), IPSECIF_OK);
    assert_int_equal(ipsecif_if_set_flags(f->t.ctx, ifp,
                                          IPSECIF_IFF_UP | IPSECIF_IFF_LINK0 | IPSECIF_IFF_LINK1,
                                          5000),
                     IPSECIF_OK);
    assert_int_equal(ipsecif_if_get_info(f->t.ctx, ifp, &info), IPSECIF_OK);
    memset(addrs, 0, sizeof(addrs));
    addrs[0].addr = test_addr("192.0.2.1");
    addrs[0].peer = test_addr("192.0.2.2");
    addrs[0].plen = 32;
    addrs[1].addr = test_addr("2001:db8:1::1");
    addrs[1].plen = 64;
    reset_out(f);
    rtr_print_if(&f->out, &info, addrs, 2);
    snprintf(expect, sizeof(expect),
             "ipsec3: flags=0xb051<UP,POINTOPOINT,RUNNING,MULTICAST,LINK0,LINK1> mtu 1280\n"
             "\ttunnel inet 198.51.100.1[4500] --> 198.51.100.2[4500]\n"
             "\tinet 192.0.2.1/32 --> 192.0.2.2\n"
             "\tinet6 2001:db8:1::1/64\n"
             "\tunique id: v4 out %u in %u, v6 out %u in %u\n"
             "\tpolicy id: %u %u %u %u\n"
             "\tinput: 0 packets, 0 bytes; output: 0 packets, 0 bytes; drops: in 0, out 0\n",
             info.reqid[0], info.reqid[1], info.reqid[2], info.reqid[3], info.policy_id[0],
             info.policy_id[1], info.policy_id[2], info.policy_id[3]);
    assert_string_equal(f->cap.text, expect);
    /* The ids are the four distinct ones the interface owns. */
    assert_true(info.reqid[0] > IPSECIF_REQID_MANUAL_MAX);
    assert_true(info.reqid[0] != info.reqid[1] && info.reqid[2] != info.reqid[3]);
    assert_int_equal(ipsecif_if_destroy(f->t.ctx, ifp), IPSECIF_OK);
}

/* The PF_KEY socket path that goes with a control socket path. */
static void test_pfkey_path(void **state)
{
    static const struct {
        const char *ctl;
        const char *pfkey;
    } cases[] = {
        {"/run/ipsecifd.sock", "/run/ipsecifd.pfkey"},
        {"work/x/A.sock", "work/x/A.pfkey"},
        {"ctl", "ctl.pfkey"},
        {".sock", ".pfkey"},
        {"a.sock.b", "a.sock.b.pfkey"},
    };
    char out[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rtr_pfkey_path(cases[i].ctl, out, sizeof(out)), 0);
        assert_string_equal(out, cases[i].pfkey);
    }
    /* "/run/ipsecifd.pfkey" needs 20 bytes with its NUL. */
    assert_int_equal(rtr_pfkey_path("/run/ipsecifd.sock", out, 19), -1);
    assert_int_equal(rtr_pfkey_path("/run/ipsecifd.sock", out, 20), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_round_trip),
        cmocka_unit_test(test_framing_refusals),
        cmocka_unit_test(test_addr_parsing),
        cmocka_unit_test(test_pfkey_path),
        cmocka_unit_test_setup_teardown(test_setkey_add_and_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setkey_errors_keep_earlier_statements, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setkey_spd_and_owned_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setkey_getspi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sysctl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sysctl_ipsec_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ifconfig_listing, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
