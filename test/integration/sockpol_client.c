/*
 * What racoon(8) does with its IKE sockets, and what a PF_KEY socket must
 * answer, against ipsecifd under libipsecif_pfkey_preload.so:
 * 1. setsockopt(IP_IPSEC_POLICY) "in bypass" and "out bypass" on a UDP
 *    socket, before bind; getsockopt reads them back; bind to ADDR4:500;
 *    a datagram to PEER4:500 goes out (racoon's "phase1 negotiation failed
 *    due to send error" was this socket failing).
 * 2. setsockopt(IPV6_IPSEC_POLICY) "out ipsec esp/transport//require" on
 *    an IPv6 UDP socket bound to [::]:500, read back with its request.
 * 3. Malformed policies give EINVAL (a length that does not match, too
 *    short, discard and none, no direction, ipsec without requests, a
 *    request for UDP), an empty option EMSGSIZE; a NULL option clears.
 * 4. COMMAND runs with the word "held" added while both sockets are held
 *    (the caller lists the daemon's per-socket policies with it), and with
 *    "closed" once they are closed.
 * 5. A PF_KEY socket fails sends that are no whole message (0 and 8
 *    bytes) or too long with EMSGSIZE; a plain connection to the daemon's
 *    PF_KEY socket gets an EMSGSIZE reply to each of them instead, and
 *    still works afterwards.
 *
 * usage: sockpol_client PFKEY_SOCKET ADDR4 PEER4 -- COMMAND...
 *   (IPSECIF_PFKEY_SOCKET and LD_PRELOAD set; exit 0 on success)
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINUX_EMSGSIZE 90

static void die(const char *what)
{
    fprintf(stderr, "FAIL: %s (errno %d: %s)\n", what, errno, strerror(errno));
    exit(1);
}

/* A sadb_x_policy with at most one request, as libipsec's ipsec_set_policy() builds it. */
static size_t policy(uint8_t *b, uint16_t type, uint8_t dir, uint16_t reqproto, uint8_t level)
{
    struct sadb_x_policy p;
    struct sadb_x_ipsecrequest r;
    size_t len = sizeof(p) + (reqproto != 0 ? sizeof(r) : 0);

    memset(&p, 0, sizeof(p));
    p.sadb_x_policy_len = (uint16_t)(len / 8);
    p.sadb_x_policy_exttype = SADB_X_EXT_POLICY;
    p.sadb_x_policy_type = type;
    p.sadb_x_policy_dir = dir;
    memcpy(b, &p, sizeof(p));
    if (reqproto != 0) {
        memset(&r, 0, sizeof(r));
        r.sadb_x_ipsecrequest_len = sizeof(r);
        r.sadb_x_ipsecrequest_proto = reqproto;
        r.sadb_x_ipsecrequest_mode = IPSEC_MODE_TRANSPORT;
        r.sadb_x_ipsecrequest_level = level;
        memcpy(b + sizeof(p), &r, sizeof(r));
    }
    return len;
}

static void set_ok(int fd, int level, int opt, const uint8_t *b, size_t len, const char *what)
{
    if (setsockopt(fd, level, opt, b, (socklen_t)len) != 0) {
        die(what);
    }
    printf("ok: %s\n", what);
}

static void set_fails(int fd, int level, int opt, const uint8_t *b, size_t len, int want,
                      const char *what)
{
    errno = 0;
    if (setsockopt(fd, level, opt, b, (socklen_t)len) == 0 || errno != want) {
        fprintf(stderr, "FAIL: %s: want errno %d, got %d\n", what, want, errno);
        exit(1);
    }
    printf("ok: %s refused (%s)\n", what, strerror(want));
}

/* getsockopt of one direction; returns the policy type and the first request's level. */
static uint16_t get_type(int fd, int level, int opt, uint8_t dir, uint8_t *req_level)
{
    uint8_t b[256];
    socklen_t n = sizeof(b);
    struct sadb_x_policy p;

    policy(b, IPSEC_POLICY_ENTRUST, dir, 0, 0);
    if (getsockopt(fd, level, opt, b, &n) != 0) {
        die("getsockopt");
    }
    memcpy(&p, b, sizeof(p));
    if (n < sizeof(p) || (size_t)p.sadb_x_policy_len * 8 != n || p.sadb_x_policy_dir != dir) {
        die("getsockopt: not one sadb_x_policy for the direction asked");
    }
    if (req_level != NULL) {
        struct sadb_x_ipsecrequest r;

        if (n < sizeof(p) + sizeof(r)) {
            die("getsockopt: no request");
        }
        memcpy(&r, b + sizeof(p), sizeof(r));
        *req_level = r.sadb_x_ipsecrequest_level;
        if (r.sadb_x_ipsecrequest_proto != IPPROTO_ESP) {
            die("getsockopt: not the ESP request");
        }
    }
    return p.sadb_x_policy_type;
}

static int run(int argc, char **cmd, const char *word)
{
    char *v[64];
    int st, i;
    pid_t pid;

    for (i = 0; i < argc && i < 62; i++) {
        v[i] = cmd[i];
    }
    v[i++] = (char *)word;
    v[i] = NULL;
    pid = fork();
    if (pid == 0) {
        /* The command needs no preload (and a sanitizer build of it would
         * not load into uninstrumented programs). */
        unsetenv("LD_PRELOAD");
        execvp(v[0], v);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &st, 0) < 0) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Under the preload: a PF_KEY socket's sends that a kernel refuses. */
static void pfkey_sends(void)
{
    static uint8_t big[70000];
    uint8_t hdr[16] = {PF_KEY_V2, SADB_X_SPDDUMP, 0, 0, 2, 0};
    int s = socket(PF_KEY, SOCK_RAW, PF_KEY_V2);
    const size_t lens[] = {0, 8, sizeof(big)};
    size_t i;

    if (s < 0) {
        die("socket(PF_KEY)");
    }
    memcpy(big, hdr, sizeof(hdr));
    for (i = 0; i < 3; i++) {
        errno = 0;
        if (send(s, big, lens[i], 0) >= 0 || errno != EMSGSIZE) {
            fprintf(stderr, "FAIL: a %zu-byte PF_KEY send: want EMSGSIZE, got %d\n", lens[i],
                    errno);
            exit(1);
        }
    }
    close(s);
    printf("ok: PF_KEY sends of 0, 8 and %zu bytes fail with EMSGSIZE\n", sizeof(big));
}

/* A plain connection: every datagram is answered. */
static void raw_answers(const char *path)
{
    static uint8_t big[70000];
    uint8_t hdr[16] = {PF_KEY_V2, SADB_X_SPDDUMP, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0};
    const size_t lens[] = {0, 8, sizeof(big), sizeof(hdr)};
    struct sockaddr_un sun;
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    size_t i;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (s < 0 || connect(s, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        die("connect to the PF_KEY socket");
    }
    memcpy(big, hdr, sizeof(hdr));
    for (i = 0; i < 4; i++) {
        struct pollfd p = {s, POLLIN, 0};
        uint8_t r[4096];
        ssize_t n;

        if (send(s, i == 3 ? hdr : big, lens[i], 0) != (ssize_t)lens[i]) {
            die("send on the PF_KEY connection");
        }
        if (poll(&p, 1, 2000) != 1 || (n = recv(s, r, sizeof(r), 0)) < 16) {
            fprintf(stderr, "FAIL: no reply to a %zu-byte datagram\n", lens[i]);
            exit(1);
        }
        if (i < 3 && (r[1] != (i == 0 ? 0 : SADB_X_SPDDUMP) || r[2] != LINUX_EMSGSIZE)) {
            fprintf(stderr, "FAIL: %zu bytes: reply type %u errno %u\n", lens[i], r[1], r[2]);
            exit(1);
        }
        if (i == 3 && r[1] != SADB_X_SPDDUMP) {
            die("no X_SPDDUMP reply after the refused datagrams");
        }
        /* A dump may come in several messages: read them all. */
        while (i == 3 && poll(&p, 1, 200) == 1 && recv(s, r, sizeof(r), 0) > 0) {
        }
    }
    close(s);
    printf("ok: 0, 8 and %zu-byte datagrams answered EMSGSIZE; the connection still works\n",
           sizeof(big));
}

int main(int argc, char **argv)
{
    struct sockaddr_in a4, p4;
    struct sockaddr_in6 a6;
    uint8_t b[64];
    uint8_t lvl = 0;
    size_t n;
    int s4, s6, rc;

    if (argc < 6 || strcmp(argv[4], "--") != 0) {
        fprintf(stderr, "usage: sockpol_client PFKEY_SOCKET ADDR4 PEER4 -- COMMAND...\n");
        return 2;
    }
    memset(&a4, 0, sizeof(a4));
    memset(&p4, 0, sizeof(p4));
    a4.sin_family = p4.sin_family = AF_INET;
    a4.sin_port = p4.sin_port = htons(500);
    if (inet_pton(AF_INET, argv[2], &a4.sin_addr) != 1 ||
        inet_pton(AF_INET, argv[3], &p4.sin_addr) != 1) {
        die("addresses");
    }

    /* 1. racoon's IKE socket. */
    s4 = socket(AF_INET, SOCK_DGRAM, 0);
    if (s4 < 0) {
        die("socket");
    }
    n = policy(b, IPSEC_POLICY_BYPASS, IPSEC_DIR_INBOUND, 0, 0);
    set_ok(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, "IP_IPSEC_POLICY in bypass");
    n = policy(b, IPSEC_POLICY_BYPASS, IPSEC_DIR_OUTBOUND, 0, 0);
    set_ok(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, "IP_IPSEC_POLICY out bypass");
    if (get_type(s4, IPPROTO_IP, IP_IPSEC_POLICY, IPSEC_DIR_INBOUND, NULL) != IPSEC_POLICY_BYPASS ||
        get_type(s4, IPPROTO_IP, IP_IPSEC_POLICY, IPSEC_DIR_OUTBOUND, NULL) !=
            IPSEC_POLICY_BYPASS) {
        die("getsockopt: not bypass");
    }
    printf("ok: getsockopt reads bypass back both ways\n");
    if (bind(s4, (struct sockaddr *)&a4, sizeof(a4)) != 0) {
        die("bind to port 500");
    }
    if (sendto(s4, "ike", 3, 0, (struct sockaddr *)&p4, sizeof(p4)) != 3) {
        die("send from the IKE socket");
    }
    printf("ok: the IKE socket sends\n");

    /* 2. An IPv6 socket with an ipsec policy. */
    s6 = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s6 < 0) {
        die("socket6");
    }
    n = policy(b, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, IPPROTO_ESP, IPSEC_LEVEL_REQUIRE);
    set_ok(s6, IPPROTO_IPV6, IPV6_IPSEC_POLICY, b, n,
           "IPV6_IPSEC_POLICY out ipsec esp/transport//require");
    if (get_type(s6, IPPROTO_IPV6, IPV6_IPSEC_POLICY, IPSEC_DIR_OUTBOUND, &lvl) !=
            IPSEC_POLICY_IPSEC ||
        lvl != IPSEC_LEVEL_REQUIRE) {
        die("getsockopt: not the ipsec policy");
    }
    if (get_type(s6, IPPROTO_IPV6, IPV6_IPSEC_POLICY, IPSEC_DIR_INBOUND, NULL) !=
        IPSEC_POLICY_ENTRUST) {
        die("getsockopt: the other direction should entrust");
    }
    printf("ok: getsockopt reads the ipsec policy back, entrust the other way\n");
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(500);
    {
        int on = 1;

        /* IKE sockets are per family, as racoon opens them. */
        if (setsockopt(s6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) {
            die("IPV6_V6ONLY");
        }
    }
    if (bind(s6, (struct sockaddr *)&a6, sizeof(a6)) != 0) {
        die("bind [::]:500");
    }

    /* 3. Refusals. */
    n = policy(b, IPSEC_POLICY_BYPASS, IPSEC_DIR_INBOUND, 0, 0);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, 8, EINVAL, "an 8-byte policy");
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, 24, EINVAL, "a length field that does not match");
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, 0, EMSGSIZE, "an empty option");
    n = policy(b, IPSEC_POLICY_DISCARD, IPSEC_DIR_INBOUND, 0, 0);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, EINVAL, "discard");
    n = policy(b, IPSEC_POLICY_NONE, IPSEC_DIR_INBOUND, 0, 0);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, EINVAL, "none");
    n = policy(b, IPSEC_POLICY_BYPASS, 0, 0, 0);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, EINVAL, "no direction");
    n = policy(b, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, 0);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, EINVAL, "ipsec without a request");
    n = policy(b, IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, IPPROTO_UDP, IPSEC_LEVEL_REQUIRE);
    set_fails(s4, IPPROTO_IP, IP_IPSEC_POLICY, b, n, EINVAL, "a request for UDP");
    if (get_type(s4, IPPROTO_IP, IP_IPSEC_POLICY, IPSEC_DIR_INBOUND, NULL) != IPSEC_POLICY_BYPASS) {
        die("a refused setsockopt changed the policy");
    }
    {
        /* A NULL option clears both directions (Linux), on a third socket. */
        int s = socket(AF_INET, SOCK_DGRAM, 0);

        n = policy(b, IPSEC_POLICY_BYPASS, IPSEC_DIR_INBOUND, 0, 0);
        set_ok(s, IPPROTO_IP, IP_IPSEC_POLICY, b, n, "bypass on a third socket");
        set_ok(s, IPPROTO_IP, IP_IPSEC_POLICY, NULL, 16, "a NULL option");
        if (get_type(s, IPPROTO_IP, IP_IPSEC_POLICY, IPSEC_DIR_INBOUND, NULL) !=
            IPSEC_POLICY_ENTRUST) {
            die("a NULL option did not clear");
        }
        close(s);
    }

    /* 4. The caller looks at the daemon's table. */
    rc = run(argc - 5, argv + 5, "held");
    if (rc != 0) {
        fprintf(stderr, "FAIL: the command exited %d (sockets held)\n", rc);
        return 1;
    }
    close(s4);
    close(s6);
    rc = run(argc - 5, argv + 5, "closed");
    if (rc != 0) {
        fprintf(stderr, "FAIL: the command exited %d (sockets closed)\n", rc);
        return 1;
    }

    /* 5. Sizes. */
    pfkey_sends();
    raw_answers(argv[1]);
    printf("PASS\n");
    return 0;
}
