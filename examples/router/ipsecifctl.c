/*
 * ipsecifctl: the control tool of ipsecifd.
 *
 * usage: ipsecifctl [-s SOCKET] [-k PFKEY_SOCKET] COMMAND ...
 *   ifconfig ipsecN create|destroy|tunnel SRC DST|deletetunnel|inet A/P PEER|
 *            inet6 A/P|mtu N|[-]link0|[-]link1|[-]link2|up|down ...
 *   ifconfig ipsecN | ifconfig -a
 *   setkey -c (script on stdin) | setkey -f FILE | setkey -D | -DP | -F | -FP
 *   sysctl -a | sysctl NAME | sysctl NAME=VALUE
 *   stats
 *
 * The words go to the daemon's control socket as they are, except setkey:
 * the tool is a PF_KEY client of the daemon's PF_KEY socket (-k; by
 * default the control socket's path with ".pfkey" for ".sock"), parses
 * the statements itself and sends them as PF_KEY messages, as setkey(8)
 * does with a kernel. A script with what the Linux PF_KEY dialect cannot
 * carry (ChaCha20-Poly1305, extended sequence numbers) goes over the
 * control socket, whole, as before. Exit status 0 on success, 1 on error
 * (the error on stderr), 2 on bad usage.
 *
 * An interface's TUN device outlives the daemon (fail closed: it drops what
 * is routed into it while no daemon runs) until `ifconfig ipsecN destroy`;
 * `create` on a new daemon takes a kept device over.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_app.h"
#include "router_cmd.h"
#include "setkey_pfkey.h"

/* As the daemon accepts. */
#define REQ_MAX (128u * 1024u)

static void usage(void)
{
    fprintf(stderr,
            "usage: ipsecifctl [-s SOCKET] [-k PFKEY_SOCKET] COMMAND ...\n"
            "  ifconfig ipsecN create | destroy | tunnel SRC DST | deletetunnel |\n"
            "           inet ADDR/PLEN PEER | inet6 ADDR/PLEN | mtu N |\n"
            "           [-]link0 | [-]link1 | [-]link2 | up | down ...\n"
            "  ifconfig ipsecN | ifconfig -a\n"
            "    (the TUN device stays when the daemon stops, dropping what is routed\n"
            "    into it; 'destroy' removes it; 'create' takes a kept one over)\n"
            "  setkey -c | setkey -f FILE | setkey -D | setkey -DP | setkey -F | setkey -FP\n"
            "  sysctl -a | sysctl NAME | sysctl NAME=VALUE\n"
            "  stats\n");
    exit(2);
}

/* Read a whole script (stdin or a file) into buf; returns its length or -1. */
static long read_script(const char *path, char *buf, size_t cap)
{
    FILE *f = path == NULL ? stdin : fopen(path, "r");
    size_t n = 0;

    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    while (n < cap) {
        size_t k = fread(buf + n, 1, cap - n, f);

        if (k == 0) {
            break;
        }
        n += k;
    }
    if (ferror(f) || (n == cap && fgetc(f) != EOF)) {
        fprintf(stderr, "%s: %s\n", path != NULL ? path : "stdin",
                ferror(f) ? strerror(errno) : "script too large");
        if (f != stdin) {
            fclose(f);
        }
        return -1;
    }
    if (f != stdin) {
        fclose(f);
    }
    return (long)n;
}

static void out_stdout(void *arg, const char *s, size_t n)
{
    (void)arg;
    fwrite(s, 1, n, stdout);
}

int main(int argc, char **argv)
{
    const char *path = "/run/ipsecifd.sock";
    const char *pfkey_path = NULL;
    char pfkey_buf[108];
    const char *script_path = NULL;
    bool want_script = false;
    char *script = NULL;
    char *req = NULL;
    char err[600];
    long script_len = 0;
    long len;
    int first = 1;
    int rc = 1;
    int i;

    while (first + 1 < argc && (strcmp(argv[first], "-s") == 0 || strcmp(argv[first], "-k") == 0)) {
        if (argv[first][1] == 's') {
            path = argv[first + 1];
        } else {
            pfkey_path = argv[first + 1];
        }
        first += 2;
    }
    if (first >= argc || argv[first][0] == '-') {
        usage();
    }
    if (strcmp(argv[first], "setkey") == 0) {
        for (i = first + 1; i < argc; i++) {
            if (strcmp(argv[i], "-c") == 0) {
                want_script = true;
            } else if (strcmp(argv[i], "-f") == 0) {
                if (i + 1 == argc) {
                    usage();
                }
                want_script = true;
                script_path = argv[++i];
            }
        }
    }
    req = malloc(REQ_MAX);
    script = want_script ? malloc(REQ_MAX) : NULL;
    if (req == NULL || (want_script && script == NULL)) {
        fprintf(stderr, "ipsecifctl: out of memory\n");
        goto out;
    }
    if (want_script) {
        script_len = read_script(script_path, script, REQ_MAX);
        if (script_len < 0) {
            goto out;
        }
    }
    if (strcmp(argv[first], "setkey") == 0 &&
        !(want_script && spk_needs_control(script, (size_t)script_len))) {
        struct rtr_out o;

        if (pfkey_path == NULL) {
            if (rtr_pfkey_path(path, pfkey_buf, sizeof(pfkey_buf)) < 0) {
                fprintf(stderr, "ipsecifctl: socket path too long\n");
                goto out;
            }
            pfkey_path = pfkey_buf;
        }
        memset(&o, 0, sizeof(o));
        o.write = out_stdout;
        rc = spk_setkey(pfkey_path, &o, argc - first, argv + first, script, (size_t)script_len) == 0
                 ? 0
                 : 1;
        if (rc != 0) {
            fflush(stdout);
            fprintf(stderr, "%s\n", o.err);
        }
        goto out;
    }
    len = rtr_request_build(req, REQ_MAX, argc - first, argv + first, script, (size_t)script_len);
    if (len < 0) {
        fprintf(stderr, "ipsecifctl: request too large or a word is empty\n");
        goto out;
    }
    switch (rtr_ctl_request(path, req, (size_t)len, out_stdout, NULL, err, sizeof(err))) {
    case 0:
        rc = 0;
        break;
    case 1:
        fflush(stdout);
        fprintf(stderr, "%s\n", err);
        break;
    default:
        fflush(stdout);
        fprintf(stderr, "ipsecifctl: %s\n", err);
        break;
    }
out:
    /* Scripts carry keys. */
    if (script != NULL) {
        memset(script, 0, REQ_MAX);
    }
    if (req != NULL) {
        memset(req, 0, REQ_MAX);
    }
    free(script);
    free(req);
    if (fflush(stdout) != 0) {
        rc = 1;
    }
    return rc;
}
