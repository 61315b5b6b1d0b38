/*
 * Plays racoon(8) on both ends of an ipsecif tunnel over PF_KEY, without
 * IKE on the wire: one process holds a PF_KEY connection to each daemon
 * (ipsecifd's PF_KEY sockets, SOCK_SEQPACKET), registers for ESP on both,
 * learns each side's policies and unique ids with X_SPDDUMP, starts a
 * command that sends traffic into the tunnel (a ping), waits for the
 * ACQUIRE that the missing SA raises on the initiator, and installs the SA
 * pair as an IKE daemon does after phase 2:
 *   initiator: GETSPI for its inbound SA (with the ACQUIRE's sequence)
 *   responder: GETSPI for its inbound SA, UPDATE it with keys, ADD outbound
 *   initiator: UPDATE its inbound SA with keys, ADD outbound
 * SPIs come from the daemons' GETSPI ranges; each outbound SA uses the SPI
 * the peer allocated for its inbound one. As racoon's Linux build does, the
 * policy table learnt from X_SPDDUMP skips ids with id % 8 >= 3 (Linux's
 * per-socket policies), and an ACQUIRE whose policy id is not in it fails
 * ("no policy found").
 *
 * usage: ike_test INIT_SOCKET INIT_ADDR RESP_SOCKET RESP_ADDR ULPROTO -- COMMAND...
 *   ULPROTO: 4 (the tunnel's IPv4 policies) or 41 (IPv6).
 * Exit 0 when both SA pairs are installed, 1 otherwise.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ipsec.h>
#include <linux/pfkeyv2.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SPI_MIN 0x00000100u
#define SPI_MAX 0x0fffffffu

struct side {
    const char *name;
    int fd;
    struct sockaddr_storage self; /* outer address of this end */
    uint32_t reqid_out;           /* unique id of the policy self -> peer */
    uint32_t reqid_in;            /* unique id of the policy peer -> self */
    uint32_t spi_in;              /* SPI this end allocated for peer -> self */
    uint32_t spids[64];           /* policy ids learnt from X_SPDDUMP */
    size_t nspids;
};

static uint64_t buf[8192];
static uint64_t rbuf[8192];
static uint32_t seqno = 100;

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "FAIL: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

static int connect_to(const char *path)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        die("connect %s", path);
    }
    return fd;
}

static void parse_addr(const char *text, struct sockaddr_storage *ss)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
    } else {
        die("bad address %s", text);
    }
}

static size_t sa_len_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family) {
        return 0;
    }
    if (a->sa_family == AF_INET) {
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    }
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* ---- Building ---- */

static struct sadb_msg *msg_start(uint8_t type, uint8_t satype, uint32_t seq)
{
    struct sadb_msg *m = (struct sadb_msg *)buf;

    memset(buf, 0, sizeof(buf));
    m->sadb_msg_version = PF_KEY_V2;
    m->sadb_msg_type = type;
    m->sadb_msg_satype = satype;
    m->sadb_msg_len = sizeof(*m) / 8;
    m->sadb_msg_seq = seq;
    m->sadb_msg_pid = (uint32_t)getpid();
    return m;
}

static void *ext_add(uint16_t type, size_t len)
{
    struct sadb_msg *m = (struct sadb_msg *)buf;
    struct sadb_ext *e = (struct sadb_ext *)(buf + m->sadb_msg_len);

    len = (len + 7) & ~(size_t)7;
    e->sadb_ext_len = (uint16_t)(len / 8);
    e->sadb_ext_type = type;
    m->sadb_msg_len = (uint16_t)(m->sadb_msg_len + len / 8);
    return e;
}

static void addr_add(uint16_t type, const struct sockaddr_storage *ss)
{
    struct sadb_address *a = ext_add(type, sizeof(*a) + sa_len_of(ss));

    a->sadb_address_proto = IPSEC_PROTO_ANY;
    a->sadb_address_prefixlen = ss->ss_family == AF_INET ? 32 : 128;
    memcpy(a + 1, ss, sa_len_of(ss));
}

static void sa_add(uint32_t spi)
{
    struct sadb_sa *sa = ext_add(SADB_EXT_SA, sizeof(*sa));

    sa->sadb_sa_spi = htonl(spi);
    sa->sadb_sa_replay = 32;
    sa->sadb_sa_state = SADB_SASTATE_MATURE;
    sa->sadb_sa_auth = SADB_X_AALG_SHA2_256HMAC;
    sa->sadb_sa_encrypt = SADB_X_EALG_AESCBC;
}

static void sa2_add(uint32_t reqid)
{
    struct sadb_x_sa2 *s2 = ext_add(SADB_X_EXT_SA2, sizeof(*s2));

    s2->sadb_x_sa2_mode = IPSEC_MODE_TRANSPORT;
    s2->sadb_x_sa2_reqid = reqid;
}

/* Keys of one direction: both ends derive the same from the SPI, as IKE would agree them. */
static void keys_add(uint32_t spi)
{
    struct sadb_key *k = ext_add(SADB_EXT_KEY_AUTH, sizeof(*k) + 32);
    uint8_t *p = (uint8_t *)(k + 1);
    int i;

    k->sadb_key_bits = 256;
    for (i = 0; i < 32; i++) {
        p[i] = (uint8_t)(spi * 7u + (uint32_t)i * 13u);
    }
    k = ext_add(SADB_EXT_KEY_ENCRYPT, sizeof(*k) + 16);
    k->sadb_key_bits = 128;
    p = (uint8_t *)(k + 1);
    for (i = 0; i < 16; i++) {
        p[i] = (uint8_t)(spi * 3u + (uint32_t)i * 29u + 1u);
    }
}

/* ---- Exchanging ---- */

static const struct sadb_ext *find_ext(const struct sadb_msg *m, uint16_t type)
{
    size_t off = sizeof(*m);
    size_t end = (size_t)m->sadb_msg_len * 8;

    while (off + sizeof(struct sadb_ext) <= end) {
        const struct sadb_ext *e = (const struct sadb_ext *)((const uint8_t *)m + off);

        if (e->sadb_ext_len == 0 || off + (size_t)e->sadb_ext_len * 8 > end) {
            break;
        }
        if (e->sadb_ext_type == type) {
            return e;
        }
        off += (size_t)e->sadb_ext_len * 8;
    }
    return NULL;
}

static const struct sockaddr *addr_of(const struct sadb_msg *m, uint16_t type)
{
    const struct sadb_address *a = (const struct sadb_address *)find_ext(m, type);

    return a != NULL ? (const struct sockaddr *)(a + 1) : NULL;
}

/* Next message on s within timeout_ms, or NULL. */
static const struct sadb_msg *recv_msg(const struct side *s, int timeout_ms)
{
    struct pollfd p = {s->fd, POLLIN, 0};
    const struct sadb_msg *m = (const struct sadb_msg *)rbuf;
    ssize_t n;

    if (poll(&p, 1, timeout_ms) != 1) {
        return NULL;
    }
    n = recv(s->fd, rbuf, sizeof(rbuf), 0);
    if (n < (ssize_t)sizeof(*m) || (size_t)m->sadb_msg_len * 8 != (size_t)n) {
        die("%s: short or malformed message", s->name);
    }
    return m;
}

/* Send the message in buf and return its reply (other messages are skipped). */
static const struct sadb_msg *request(const struct side *s, const char *what)
{
    const struct sadb_msg *q = (const struct sadb_msg *)buf;
    uint8_t type = q->sadb_msg_type;
    uint32_t seq = q->sadb_msg_seq;
    const struct sadb_msg *r;

    if (send(s->fd, buf, (size_t)q->sadb_msg_len * 8, 0) < 0) {
        die("%s: send", what);
    }
    for (;;) {
        r = recv_msg(s, 2000);
        if (r == NULL) {
            die("%s: no reply", what);
        }
        /* Dumps count their sequence number down instead of echoing it. */
        if (r->sadb_msg_type == type && r->sadb_msg_pid == (uint32_t)getpid() &&
            (r->sadb_msg_seq == seq || type == SADB_X_SPDDUMP || type == SADB_DUMP)) {
            break;
        }
    }
    if (r->sadb_msg_errno != 0) {
        fprintf(stderr, "FAIL: %s (%s): errno %u (%s)\n", what, s->name, r->sadb_msg_errno,
                strerror(r->sadb_msg_errno));
        exit(1);
    }
    return r;
}

static void do_register(struct side *s)
{
    msg_start(SADB_REGISTER, SADB_SATYPE_ESP, ++seqno);
    if (find_ext(request(s, "REGISTER"), SADB_EXT_SUPPORTED_ENCRYPT) == NULL) {
        die("%s: REGISTER reply lists no ciphers", s->name);
    }
}

/* The unique ids of the interface's policies between self and peer for ulproto. */
static void learn_policies(struct side *s, const struct sockaddr_storage *peer, uint8_t ulproto)
{
    const struct sadb_msg *r;

    msg_start(SADB_X_SPDDUMP, SADB_SATYPE_UNSPEC, ++seqno);
    r = request(s, "X_SPDDUMP");
    for (;;) {
        const struct sadb_address *src =
            (const struct sadb_address *)find_ext(r, SADB_EXT_ADDRESS_SRC);
        const struct sockaddr *sa = addr_of(r, SADB_EXT_ADDRESS_SRC);
        const struct sockaddr *da = addr_of(r, SADB_EXT_ADDRESS_DST);
        const struct sadb_x_policy *pol =
            (const struct sadb_x_policy *)find_ext(r, SADB_X_EXT_POLICY);

        /* racoon (Linux): "per-socket policy", not for the table. */
        if (pol != NULL && pol->sadb_x_policy_id % 8 >= 3) {
            printf("%s: policy id %u skipped as per-socket\n", s->name, pol->sadb_x_policy_id);
            pol = NULL;
        }
        if (pol != NULL && s->nspids < sizeof(s->spids) / sizeof(s->spids[0])) {
            s->spids[s->nspids++] = pol->sadb_x_policy_id;
        }
        if (src != NULL && sa != NULL && da != NULL && pol != NULL &&
            src->sadb_address_proto == ulproto &&
            (size_t)pol->sadb_x_policy_len * 8 >=
                sizeof(*pol) + sizeof(struct sadb_x_ipsecrequest)) {
            const struct sadb_x_ipsecrequest *rq = (const struct sadb_x_ipsecrequest *)(pol + 1);

            if (pol->sadb_x_policy_dir == IPSEC_DIR_OUTBOUND && same_addr(sa, &s->self) &&
                same_addr(da, peer)) {
                s->reqid_out = rq->sadb_x_ipsecrequest_reqid;
            } else if (pol->sadb_x_policy_dir == IPSEC_DIR_INBOUND && same_addr(sa, peer) &&
                       same_addr(da, &s->self)) {
                s->reqid_in = rq->sadb_x_ipsecrequest_reqid;
            }
        }
        if (r->sadb_msg_seq == 0) {
            break;
        }
        r = recv_msg(s, 2000);
        if (r == NULL || r->sadb_msg_type != SADB_X_SPDDUMP) {
            die("%s: X_SPDDUMP ended early", s->name);
        }
    }
    if (s->reqid_out == 0 || s->reqid_in == 0) {
        die("%s: the tunnel's policies are not in the SPD dump", s->name);
    }
    printf("%s: unique ids out %u in %u\n", s->name, s->reqid_out, s->reqid_in);
}

/* GETSPI for the SA peer -> self; returns the SPI. */
static void getspi(struct side *s, const struct sockaddr_storage *peer, uint32_t seq)
{
    const struct sadb_msg *r;
    const struct sadb_sa *sa;
    struct sadb_spirange *sr;

    msg_start(SADB_GETSPI, SADB_SATYPE_ESP, seq);
    addr_add(SADB_EXT_ADDRESS_SRC, peer);
    addr_add(SADB_EXT_ADDRESS_DST, &s->self);
    sa2_add(s->reqid_in);
    sr = ext_add(SADB_EXT_SPIRANGE, sizeof(*sr));
    sr->sadb_spirange_min = SPI_MIN;
    sr->sadb_spirange_max = SPI_MAX;
    r = request(s, "GETSPI");
    sa = (const struct sadb_sa *)find_ext(r, SADB_EXT_SA);
    if (sa == NULL) {
        die("%s: GETSPI reply has no SA", s->name);
    }
    s->spi_in = ntohl(sa->sadb_sa_spi);
    if (s->spi_in < SPI_MIN || s->spi_in > SPI_MAX) {
        die("%s: GETSPI gave an SPI outside the range", s->name);
    }
    printf("%s: GETSPI -> spi 0x%08x\n", s->name, s->spi_in);
}

/* UPDATE the larval inbound SA with its keys. */
static void update_in(struct side *s, const struct sockaddr_storage *peer, uint32_t seq)
{
    msg_start(SADB_UPDATE, SADB_SATYPE_ESP, seq);
    sa_add(s->spi_in);
    sa2_add(s->reqid_in);
    addr_add(SADB_EXT_ADDRESS_SRC, peer);
    addr_add(SADB_EXT_ADDRESS_DST, &s->self);
    keys_add(s->spi_in);
    request(s, "UPDATE");
    printf("%s: UPDATE spi 0x%08x (inbound)\n", s->name, s->spi_in);
}

/* ADD the outbound SA with the SPI the peer allocated. */
static void add_out(struct side *s, const struct sockaddr_storage *peer, uint32_t spi)
{
    msg_start(SADB_ADD, SADB_SATYPE_ESP, ++seqno);
    sa_add(spi);
    sa2_add(s->reqid_out);
    addr_add(SADB_EXT_ADDRESS_SRC, &s->self);
    addr_add(SADB_EXT_ADDRESS_DST, peer);
    keys_add(spi);
    request(s, "ADD");
    printf("%s: ADD spi 0x%08x (outbound)\n", s->name, spi);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the ACQUIRE of the initiator's outbound SA; returns its sequence number. */
static uint32_t wait_acquire(struct side *s, const struct sockaddr_storage *peer)
{
    int64_t end = now_ms() + 10000;

    while (now_ms() < end) {
        const struct sadb_msg *m = recv_msg(s, 500);
        const struct sockaddr *sa;
        const struct sockaddr *da;
        const struct sadb_x_policy *pol;

        if (m == NULL || m->sadb_msg_type != SADB_ACQUIRE) {
            continue;
        }
        sa = addr_of(m, SADB_EXT_ADDRESS_SRC);
        da = addr_of(m, SADB_EXT_ADDRESS_DST);
        pol = (const struct sadb_x_policy *)find_ext(m, SADB_X_EXT_POLICY);
        if (m->sadb_msg_satype != SADB_SATYPE_ESP || sa == NULL || da == NULL ||
            !same_addr(sa, &s->self) || !same_addr(da, peer) || pol == NULL ||
            find_ext(m, SADB_EXT_PROPOSAL) == NULL) {
            die("%s: ACQUIRE without the expected addresses, policy or proposal", s->name);
        }
        {
            size_t k = 0;

            while (k < s->nspids && s->spids[k] != pol->sadb_x_policy_id) {
                k++;
            }
            if (k == s->nspids) {
                char id[16];

                snprintf(id, sizeof(id), "%u", pol->sadb_x_policy_id);
                die("no policy found: id:%s", id);
            }
        }
        /* The host's own traffic (IPv6 neighbour discovery, MLD) may ask for the other pair. */
        if (pol->sadb_x_policy_dir != IPSEC_DIR_OUTBOUND ||
            ((const struct sadb_x_ipsecrequest *)(pol + 1))->sadb_x_ipsecrequest_reqid !=
                s->reqid_out) {
            printf("%s: ACQUIRE for another policy skipped\n", s->name);
            continue;
        }
        printf("%s: ACQUIRE seq %u\n", s->name, m->sadb_msg_seq);
        return m->sadb_msg_seq;
    }
    die("%s: no ACQUIRE within 10 s", s->name);
    return 0;
}

int main(int argc, char **argv)
{
    struct side a = {"initiator", -1, {0}, 0, 0, 0, {0}, 0};
    struct side b = {"responder", -1, {0}, 0, 0, 0, {0}, 0};
    uint32_t acq_seq;
    uint8_t ulproto;
    pid_t child;
    int status;

    if (argc < 8 || strcmp(argv[6], "--") != 0) {
        fprintf(stderr, "usage: ike_test INIT_SOCKET INIT_ADDR RESP_SOCKET RESP_ADDR ULPROTO "
                        "-- COMMAND...\n");
        return 2;
    }
    a.fd = connect_to(argv[1]);
    parse_addr(argv[2], &a.self);
    b.fd = connect_to(argv[3]);
    parse_addr(argv[4], &b.self);
    ulproto = (uint8_t)atoi(argv[5]);

    do_register(&a);
    do_register(&b);
    learn_policies(&a, &b.self, ulproto);
    learn_policies(&b, &a.self, ulproto);

    /* No SA yet: the traffic is held back and key management is asked. */
    child = fork();
    if (child < 0) {
        die("%s", "fork");
    }
    if (child == 0) {
        execvp(argv[7], argv + 7);
        _exit(127);
    }
    acq_seq = wait_acquire(&a, &b.self);

    /* Phase 2 done; install as racoon does. */
    getspi(&a, &b.self, acq_seq);
    getspi(&b, &a.self, ++seqno);
    update_in(&b, &a.self, seqno);
    add_out(&b, &a.self, a.spi_in);
    update_in(&a, &b.self, acq_seq);
    add_out(&a, &b.self, b.spi_in);

    waitpid(child, &status, 0);
    close(a.fd);
    close(b.fd);
    printf("PASS: SAs installed for ulproto %u\n", ulproto);
    return 0;
}
