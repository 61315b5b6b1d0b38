/*
 * A minimal PF_KEY program, as setkey(8) or racoon(8) behave: it opens
 * socket(PF_KEY, SOCK_RAW, PF_KEY_V2) and reads every reply right after
 * its send, without blocking. Run under libipsecif_pfkey_preload.so with
 * IPSECIF_PFKEY_SOCKET pointing at ipsecifd's PF_KEY socket, it checks that
 * the reply is already there (send() and write(), a peek at the header
 * then the whole message, as libipsec reads): REGISTER, ADD, GET, a GET of
 * a missing SA, DUMP, DELETE.
 *
 * usage: pfkey_client     (exit 0 on success, 1 with a message otherwise)
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
#include <unistd.h>

#define SPI 0x00012345u

static uint64_t buf[8192];
static uint64_t rbuf[8192];

static void die(const char *what)
{
    fprintf(stderr, "FAIL: %s\n", what);
    exit(1);
}

/* Message under construction in buf; lengths in 8-byte units. */
static struct sadb_msg *msg_start(uint8_t type, uint32_t seq)
{
    struct sadb_msg *m = (struct sadb_msg *)buf;

    memset(buf, 0, sizeof(buf));
    m->sadb_msg_version = PF_KEY_V2;
    m->sadb_msg_type = type;
    m->sadb_msg_satype = SADB_SATYPE_ESP;
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

static void addr_add(uint16_t type, const char *ip)
{
    struct sadb_address *a = ext_add(type, sizeof(*a) + sizeof(struct sockaddr_in));
    struct sockaddr_in *sin = (struct sockaddr_in *)(a + 1);

    a->sadb_address_proto = IPSEC_PROTO_ANY;
    a->sadb_address_prefixlen = 32;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void sa_add(uint32_t spi, uint8_t auth, uint8_t enc)
{
    struct sadb_sa *sa = ext_add(SADB_EXT_SA, sizeof(*sa));

    sa->sadb_sa_spi = htonl(spi);
    sa->sadb_sa_replay = 32;
    sa->sadb_sa_state = SADB_SASTATE_MATURE;
    sa->sadb_sa_auth = auth;
    sa->sadb_sa_encrypt = enc;
}

static void key_add(uint16_t type, unsigned bits, uint8_t fill)
{
    struct sadb_key *k = ext_add(type, sizeof(*k) + bits / 8);

    k->sadb_key_bits = (uint16_t)bits;
    memset(k + 1, fill, bits / 8);
}

/* Programs send with send() or write(); both must wait for the answer. */
static void msg_send_how(int s, int use_write)
{
    struct sadb_msg *m = (struct sadb_msg *)buf;
    size_t len = (size_t)m->sadb_msg_len * 8;
    ssize_t n = use_write ? write(s, buf, len) : send(s, buf, len, 0);

    if (n != (ssize_t)len) {
        die("send");
    }
}

static void msg_send(int s)
{
    msg_send_how(s, 0);
}

/* The reply must be readable right away: a non-blocking read. */
static const struct sadb_msg *reply_now(int s, uint8_t type, const char *what)
{
    const struct sadb_msg *r = (const struct sadb_msg *)rbuf;
    struct sadb_msg head;
    ssize_t n;

    /* As libipsec's pfkey_recv(): peek at the header for the length, then read it all. */
    n = recv(s, &head, sizeof(head), MSG_PEEK | MSG_DONTWAIT);
    if (n == (ssize_t)sizeof(head)) {
        n = recv(s, rbuf, (size_t)head.sadb_msg_len * 8, MSG_DONTWAIT);
    } else if (n >= 0) {
        n = -1;
        errno = EMSGSIZE;
    }
    if (n < 0) {
        fprintf(stderr, "FAIL: %s: no reply readable when send returned (%s)\n", what,
                strerror(errno));
        exit(1);
    }
    if ((size_t)n < sizeof(*r) || (size_t)r->sadb_msg_len * 8 != (size_t)n ||
        r->sadb_msg_version != PF_KEY_V2 || r->sadb_msg_type != type) {
        fprintf(stderr, "FAIL: %s: bad reply (%zd bytes, type %u)\n", what, n,
                n >= (ssize_t)sizeof(*r) ? r->sadb_msg_type : 0);
        exit(1);
    }
    return r;
}

static const struct sadb_ext *find_ext(const struct sadb_msg *m, uint16_t type)
{
    size_t off = sizeof(*m);
    size_t end = (size_t)m->sadb_msg_len * 8;

    while (off + sizeof(struct sadb_ext) <= end) {
        const struct sadb_ext *e = (const struct sadb_ext *)((const uint8_t *)m + off);

        if (e->sadb_ext_len == 0) {
            break;
        }
        if (e->sadb_ext_type == type) {
            return e;
        }
        off += (size_t)e->sadb_ext_len * 8;
    }
    return NULL;
}

/* A key extension of bits bits, every byte fill. */
static int key_is(const struct sadb_ext *e, unsigned bits, uint8_t fill)
{
    const struct sadb_key *k = (const struct sadb_key *)e;
    const uint8_t *b = (const uint8_t *)(k + 1);
    size_t i;

    if (k == NULL || k->sadb_key_bits != bits ||
        (size_t)k->sadb_key_len * 8 < sizeof(*k) + bits / 8) {
        return 0;
    }
    for (i = 0; i < bits / 8; i++) {
        if (b[i] != fill) {
            return 0;
        }
    }
    return 1;
}

static void add_sa(int s)
{
    msg_start(SADB_ADD, 2);
    sa_add(SPI, SADB_X_AALG_SHA2_256HMAC, SADB_X_EALG_AESCBC);
    addr_add(SADB_EXT_ADDRESS_SRC, "192.0.2.1");
    addr_add(SADB_EXT_ADDRESS_DST, "192.0.2.2");
    key_add(SADB_EXT_KEY_AUTH, 256, 0x11);
    key_add(SADB_EXT_KEY_ENCRYPT, 128, 0x22);
    msg_send(s);
    if (reply_now(s, SADB_ADD, "ADD")->sadb_msg_errno != 0) {
        die("ADD refused");
    }
}

static void get_sa(int s, uint32_t spi, int want_errno)
{
    const struct sadb_msg *r;
    const struct sadb_sa *sa;

    msg_start(SADB_GET, 3);
    sa_add(spi, 0, 0);
    addr_add(SADB_EXT_ADDRESS_SRC, "192.0.2.1");
    addr_add(SADB_EXT_ADDRESS_DST, "192.0.2.2");
    msg_send_how(s, 1);
    r = reply_now(s, SADB_GET, "GET");
    if (r->sadb_msg_errno != want_errno) {
        fprintf(stderr, "FAIL: GET spi 0x%x: errno %u, want %d\n", spi, r->sadb_msg_errno,
                want_errno);
        exit(1);
    }
    if (want_errno != 0) {
        return;
    }
    sa = (const struct sadb_sa *)find_ext(r, SADB_EXT_SA);
    if (sa == NULL || ntohl(sa->sadb_sa_spi) != spi || sa->sadb_sa_encrypt != SADB_X_EALG_AESCBC) {
        die("GET reply: SA extension wrong");
    }
    /* RFC 2367 3.1.5: GET returns the keys as they were added. */
    if (!key_is(find_ext(r, SADB_EXT_KEY_AUTH), 256, 0x11) ||
        !key_is(find_ext(r, SADB_EXT_KEY_ENCRYPT), 128, 0x22)) {
        die("GET reply: keys missing or wrong");
    }
}

static void dump(int s)
{
    unsigned n = 0;
    int found = 0;

    msg_start(SADB_DUMP, 4);
    msg_send(s);
    for (;;) {
        const struct sadb_msg *r = reply_now(s, SADB_DUMP, "DUMP");
        const struct sadb_sa *sa = (const struct sadb_sa *)find_ext(r, SADB_EXT_SA);

        if (r->sadb_msg_errno != 0) {
            die("DUMP refused");
        }
        n++;
        if (sa != NULL && ntohl(sa->sadb_sa_spi) == SPI) {
            found = 1;
        }
        if (r->sadb_msg_seq == 0) {
            break;
        }
        /* The rest of a dump follows the first reply; wait for it as setkey does. */
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 1000) != 1) {
            die("DUMP: the dump stopped before sequence 0");
        }
    }
    if (!found) {
        die("DUMP: the SA added is not listed");
    }
    printf("DUMP: %u entries\n", n);
}

int main(void)
{
    const struct sadb_msg *r;
    int s = socket(PF_KEY, SOCK_RAW, PF_KEY_V2);

    if (s < 0) {
        fprintf(stderr, "FAIL: socket(PF_KEY): %s\n", strerror(errno));
        return 1;
    }
    msg_start(SADB_REGISTER, 1);
    msg_send(s);
    r = reply_now(s, SADB_REGISTER, "REGISTER");
    if (r->sadb_msg_errno != 0 || find_ext(r, SADB_EXT_SUPPORTED_ENCRYPT) == NULL) {
        die("REGISTER reply lists no encryption algorithms");
    }
    printf("REGISTER: ok\n");
    add_sa(s);
    printf("ADD: ok\n");
    get_sa(s, SPI, 0);
    get_sa(s, SPI + 1, ESRCH);
    printf("GET: ok\n");
    dump(s);
    msg_start(SADB_DELETE, 5);
    sa_add(SPI, 0, 0);
    addr_add(SADB_EXT_ADDRESS_SRC, "192.0.2.1");
    addr_add(SADB_EXT_ADDRESS_DST, "192.0.2.2");
    msg_send(s);
    if (reply_now(s, SADB_DELETE, "DELETE")->sadb_msg_errno != 0) {
        die("DELETE refused");
    }
    get_sa(s, SPI, ESRCH);
    printf("DELETE: ok\n");
    close(s);
    printf("PASS\n");
    return 0;
}
