/*
 * Two libipsecif contexts, "A" and "B", in one process, wired back to back:
 * what A's send_outer hands out goes straight into B's ipsecif_input and the
 * other way round. Each side has an interface ipsec0 with a tunnel to the
 * other and AES-GCM-16 SAs installed by hand, bound to the interface's
 * unique ids as `setkey add ... -u <id>` would do.
 *
 * Two runs: outer IPv4 (198.51.100.1 <-> 198.51.100.2) and outer IPv6
 * (2001:db8:1::1 <-> 2001:db8:1::2). In each run an inner IPv4 and an inner
 * IPv6 ICMP echo request go from A to B and the echo replies come back;
 * then A's last packet goes to B once more and the replay window must drop
 * it. Exits non-zero if any packet does not arrive intact or a check fails.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_crypto_mbedtls.h"

#define PKT_BUF_SIZE 2048
#define PING_PAYLOAD 56
#define GCM_KEY_LEN 20 /* AES-128 key + 4-byte salt */

/* One side of the loopback. */
struct node {
    const char *name;
    void *mem;
    struct ipsecif_ctx *ctx;
    struct ipsecif_if *ifp;
    struct node *peer;
    /* What the peer sent and what arrived here. */
    const uint8_t *expect;
    size_t expect_len;
    int delivered;
    int intact;
    /* The last outer packet this side sent, and the peer's verdict on it. */
    size_t outer_len;
    uint32_t outer_spi;
    int peer_input_rc;
    /* A copy of the last outer packet this side sent, to replay it. */
    uint8_t last_outer[PKT_BUF_SIZE];
    size_t last_outer_len;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct ipsecif_addr addr(const char *text)
{
    struct ipsecif_addr a;

    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET;
    } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET6;
    } else {
        fprintf(stderr, "bad address %s\n", text);
        exit(2);
    }
    return a;
}

static const char *addr_str(const struct ipsecif_addr *a, char *out, size_t len)
{
    int af = a->family == IPSECIF_AF_INET ? AF_INET : AF_INET6;

    if (inet_ntop(af, a->bytes, out, (socklen_t)len) == NULL) {
        snprintf(out, len, "?");
    }
    return out;
}

static const char *raw_addr_str(int af, const uint8_t *p, char *out, size_t len)
{
    if (inet_ntop(af, p, out, (socklen_t)len) == NULL) {
        snprintf(out, len, "?");
    }
    return out;
}

/* ---- Building the inner packets ---- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    size_t i;

    for (i = 0; i + 1 < n; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (n & 1) {
        sum += (uint32_t)(p[n - 1] << 8);
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* An ICMP (IPv4) or ICMPv6 echo request or reply from src to dst. */
static size_t build_ping(uint8_t *p, const char *src_text, const char *dst_text, bool reply,
                         uint16_t seq)
{
    struct ipsecif_addr src = addr(src_text);
    struct ipsecif_addr dst = addr(dst_text);
    uint8_t *icmp;
    size_t icmp_len = 8 + PING_PAYLOAD;
    size_t i;
    uint32_t sum;

    if (src.family == IPSECIF_AF_INET) {
        memset(p, 0, 20);
        p[0] = 0x45;
        put16(p + 2, (uint16_t)(20 + icmp_len));
        put16(p + 4, seq); /* identification */
        p[8] = 64;         /* TTL */
        p[9] = IPSECIF_IPPROTO_ICMP;
        memcpy(p + 12, src.bytes, 4);
        memcpy(p + 16, dst.bytes, 4);
        put16(p + 10, csum_fold(csum_add(0, p, 20)));
        icmp = p + 20;
        icmp[0] = reply ? 0 : 8;
    } else {
        memset(p, 0, 40);
        p[0] = 0x60;
        put16(p + 4, (uint16_t)icmp_len);
        p[6] = IPSECIF_IPPROTO_ICMPV6;
        p[7] = 64; /* hop limit */
        memcpy(p + 8, src.bytes, 16);
        memcpy(p + 24, dst.bytes, 16);
        icmp = p + 40;
        icmp[0] = reply ? 129 : 128;
    }
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, 0x1234); /* identifier */
    put16(icmp + 6, seq);
    for (i = 0; i < PING_PAYLOAD; i++) {
        icmp[8 + i] = (uint8_t)(0x20 + i);
    }
    if (src.family == IPSECIF_AF_INET) {
        sum = csum_add(0, icmp, icmp_len);
    } else {
        /* ICMPv6 covers a pseudo-header: addresses, length, next header. */
        uint8_t pseudo[8] = {0, 0, (uint8_t)(icmp_len >> 8), (uint8_t)icmp_len, 0,
                             0, 0, IPSECIF_IPPROTO_ICMPV6};
        sum = csum_add(0, p + 8, 32);
        sum = csum_add(sum, pseudo, sizeof(pseudo));
        sum = csum_add(sum, icmp, icmp_len);
    }
    put16(icmp + 2, csum_fold(sum));
    return (p[0] >> 4) == 4 ? 20 + icmp_len : 40 + icmp_len;
}

static void print_inner(const char *who, const uint8_t *p, size_t len)
{
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];

    if (len >= 28 && (p[0] >> 4) == 4) {
        printf("    %s: IPv4 %s -> %s proto %u ttl %u len %u, ICMP type %u id 0x%04x seq %u\n", who,
               raw_addr_str(AF_INET, p + 12, s, sizeof(s)),
               raw_addr_str(AF_INET, p + 16, d, sizeof(d)), p[9], p[8], get16(p + 2), p[20],
               get16(p + 24), get16(p + 26));
    } else if (len >= 48 && (p[0] >> 4) == 6) {
        printf("    %s: IPv6 %s -> %s next %u hlim %u plen %u, ICMPv6 type %u id 0x%04x seq %u\n",
               who, raw_addr_str(AF_INET6, p + 8, s, sizeof(s)),
               raw_addr_str(AF_INET6, p + 24, d, sizeof(d)), p[6], p[7], get16(p + 4), p[40],
               get16(p + 44), get16(p + 46));
    } else {
        printf("    %s: %zu bytes, not an IP packet\n", who, len);
    }
}

/* ---- Port callbacks ---- */

/* The "wire": copy the outer packet into a receive buffer of the peer and
 * hand it to the peer's context, as a network and a socket would. */
static int send_outer(void *user, struct ipsecif_if *ifp, const struct ipsecif_outer_meta *meta,
                      const struct ipsecif_buf *pkt)
{
    struct node *self = user;
    struct node *peer = self->peer;
    static uint8_t rx_mem[PKT_BUF_SIZE];
    struct ipsecif_buf rx;
    const uint8_t *data = ipsecif_buf_data(pkt);

    (void)ifp;
    self->outer_len = pkt->len;
    self->outer_spi = 0;
    if (pkt->len >= (size_t)meta->esp_off + 8) {
        const uint8_t *esp = data + meta->esp_off;
        self->outer_spi =
            (uint32_t)esp[0] << 24 | (uint32_t)esp[1] << 16 | (uint32_t)esp[2] << 8 | esp[3];
    }
    printf("    outer packet: %zu bytes, %s, ESP SPI 0x%08x; handed to %s's ipsecif_input\n",
           pkt->len, meta->family == IPSECIF_AF_INET ? "IPv4" : "IPv6", self->outer_spi,
           peer->name);
    if (pkt->len > sizeof(rx_mem) - 64) {
        self->peer_input_rc = IPSECIF_ERR_NOROOM;
        return IPSECIF_ERR_PORT;
    }
    rx.base = rx_mem;
    rx.cap = sizeof(rx_mem);
    rx.off = 64;
    rx.len = pkt->len;
    memcpy(rx_mem + rx.off, data, pkt->len);
    memcpy(self->last_outer, data, pkt->len);
    self->last_outer_len = pkt->len;
    self->peer_input_rc = ipsecif_input(peer->ctx, &rx, now_ms());
    return 0;
}

static void deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct node *self = user;
    const uint8_t *data = ipsecif_buf_data(pkt);

    self->delivered++;
    printf("    %s %s delivers the inner packet (%zu bytes):\n", self->name, ipsecif_if_name(ifp),
           pkt->len);
    print_inner("received", data, pkt->len);
    self->intact = self->expect != NULL && pkt->len == self->expect_len &&
                   memcmp(data, self->expect, pkt->len) == 0;
    printf("    check: equals what %s sent: %s\n", self->peer->name, self->intact ? "yes" : "NO");
}

static void port_log(void *user, int level, const char *msg)
{
    const struct node *self = user;

    if (level <= IPSECIF_LOG_WARN) {
        printf("    [%s log %d] %s\n", self->name, level, msg);
    }
}

static void km_event(void *user, const struct ipsecif_km_event *ev)
{
    const struct node *self = user;

    printf("    [%s] key management event %s\n", self->name,
           ev->type == IPSECIF_KM_ACQUIRE ? "ACQUIRE (an SA is missing)" : "EXPIRE");
}

static const struct ipsecif_port port = {
    .send_outer = send_outer,
    .deliver_inner = deliver_inner,
    .random = ipsecif_crypto_mbedtls_random,
    .log = port_log,
    .km_event = km_event,
    .crypto = &ipsecif_crypto_mbedtls_ops,
};

/* ---- Setup steps ---- */

static int check(int rc, const char *what)
{
    if (rc != IPSECIF_OK) {
        printf("  FAILED: %s: %s (%d)\n", what, ipsecif_strerror(rc), rc);
    }
    return rc;
}

static int node_init(struct node *n, const char *name, const struct ipsecif_config *cfg)
{
    size_t size = ipsecif_ctx_size(cfg);
    size_t rounded = (size + 15) & ~(size_t)15;
    int rc;

    memset(n, 0, sizeof(*n));
    n->name = name;
    if (size == 0) {
        return check(IPSECIF_ERR_ARG, "ipsecif_ctx_size");
    }
    n->mem = aligned_alloc(16, rounded);
    if (n->mem == NULL) {
        printf("  FAILED: out of memory\n");
        return IPSECIF_ERR_NOROOM;
    }
    rc = ipsecif_init(&n->ctx, n->mem, rounded, cfg, &port, n, now_ms());
    if (check(rc, "ipsecif_init") != IPSECIF_OK) {
        return rc;
    }
    printf("  context %s: %zu bytes of host memory (%u interfaces, %u policies, %u SAs)\n", name,
           rounded, cfg->max_interfaces, cfg->max_policies, cfg->max_sas);
    return IPSECIF_OK;
}

static void node_fini(struct node *n)
{
    if (n->ctx != NULL) {
        ipsecif_deinit(n->ctx);
        n->ctx = NULL;
    }
    free(n->mem);
    n->mem = NULL;
}

static const char *level_name(uint8_t level)
{
    switch (level) {
    case IPSECIF_LEVEL_USE:
        return "use";
    case IPSECIF_LEVEL_REQUIRE:
        return "require";
    case IPSECIF_LEVEL_UNIQUE:
        return "unique";
    default:
        return "default";
    }
}

/* One policy in setkey -DP style, read back from the SPD. */
static int print_policy(const struct node *n, uint32_t id)
{
    struct ipsecif_policy pol;
    const struct ipsecif_ipsecreq *rq = &pol.req[0];
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];
    int rc;

    rc = ipsecif_spd_get(n->ctx, id, &pol);
    if (check(rc, "ipsecif_spd_get") != IPSECIF_OK) {
        return rc;
    }
    printf("  %s:   %s/%u %s/%u %s -P %s ipsec esp/%s//%s#%u  (policy id %u%s)\n", n->name,
           addr_str(&pol.sel.src, s, sizeof(s)), pol.sel.src_plen,
           addr_str(&pol.sel.dst, d, sizeof(d)), pol.sel.dst_plen,
           pol.sel.ulproto == IPSECIF_IPPROTO_IPV4 ? "ipv4" : "ipv6",
           pol.dir == IPSECIF_DIR_OUT ? "out" : "in",
           rq->mode == IPSECIF_MODE_TRANSPORT ? "transport" : "tunnel", level_name(rq->level),
           rq->reqid, pol.id, pol.owned ? ", owned by ipsec0" : "");
    return IPSECIF_OK;
}

static int node_tunnel(struct node *n, const char *src, const char *dst)
{
    struct ipsecif_addr s = addr(src);
    struct ipsecif_addr d = addr(dst);
    struct ipsecif_if_info info;
    char a[INET6_ADDRSTRLEN];
    char b[INET6_ADDRSTRLEN];
    int rc;
    int i;

    rc = ipsecif_if_create(n->ctx, "ipsec0", &n->ifp);
    if (check(rc, "ipsecif_if_create") != IPSECIF_OK) {
        return rc;
    }
    printf("  %s: created ipsec0\n", n->name);
    rc = ipsecif_if_set_tunnel(n->ctx, n->ifp, &s, 0, &d, 0, now_ms());
    if (check(rc, "ipsecif_if_set_tunnel") != IPSECIF_OK) {
        return rc;
    }
    rc = ipsecif_if_set_flags(n->ctx, n->ifp, ipsecif_if_get_flags(n->ifp) | IPSECIF_IFF_UP,
                              now_ms());
    if (check(rc, "ipsecif_if_set_flags") != IPSECIF_OK) {
        return rc;
    }
    rc = ipsecif_if_get_info(n->ctx, n->ifp, &info);
    if (check(rc, "ipsecif_if_get_info") != IPSECIF_OK) {
        return rc;
    }
    printf("  %s: ipsec0 tunnel %s -> %s, mtu %u, flags%s%s%s%s; its four policies:\n", n->name,
           addr_str(&info.src, a, sizeof(a)), addr_str(&info.dst, b, sizeof(b)), info.mtu,
           info.flags & IPSECIF_IFF_UP ? " up" : "", info.flags & IPSECIF_IFF_LINK0 ? " link0" : "",
           info.flags & IPSECIF_IFF_LINK1 ? " link1" : "",
           info.flags & IPSECIF_IFF_LINK2 ? " link2" : "");
    for (i = 0; i < 4; i++) {
        rc = print_policy(n, info.policy_id[i]);
        if (rc != IPSECIF_OK) {
            return rc;
        }
    }
    return IPSECIF_OK;
}

static struct ipsecif_if_info if_info(const struct node *n)
{
    struct ipsecif_if_info info;

    memset(&info, 0, sizeof(info));
    ipsecif_if_get_info(n->ctx, n->ifp, &info);
    return info;
}

/* Add one SA to a context, bound to the local policy's unique id. */
static int sa_add(struct node *n, uint32_t spi, const char *src, const char *dst, uint32_t reqid,
                  const uint8_t *key)
{
    struct ipsecif_sa_params p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.proto = IPSECIF_IPPROTO_ESP;
    p.mode = IPSECIF_MODE_TRANSPORT;
    p.ealg = IPSECIF_EALG_AES_GCM16;
    p.aalg = IPSECIF_AALG_NONE;
    p.spi = spi;
    p.src = addr(src);
    p.dst = addr(dst);
    p.reqid = reqid;
    p.replay_window = 64;
    p.ekey = key;
    p.ekey_len = GCM_KEY_LEN;
    rc = ipsecif_sa_add(n->ctx, &p, now_ms());
    if (check(rc, "ipsecif_sa_add") != IPSECIF_OK) {
        return rc;
    }
    printf("  %s:   add %s %s esp 0x%08x -m transport -u %u -E aes-gcm-16 (128-bit key)\n", n->name,
           src, dst, spi, reqid);
    return IPSECIF_OK;
}

/*
 * The SAs of one tunnel: per inner family one SA each way. Both contexts
 * get the same keys and SPIs, but each binds them to its own policies'
 * unique ids (out for what it sends, in for what it receives).
 */
static int install_sas(struct node *a, struct node *b, const char *a_addr, const char *b_addr,
                       uint32_t spi_base)
{
    /* Per row: which side, which key/SPI (0/1: inner IPv4 A->B / B->A,
     * 2/3: inner IPv6), and the local policy the SA serves. */
    static const struct {
        bool on_b;
        uint8_t which;
        uint8_t policy;
    } rows[] = {
        {false, 0, IPSECIF_IFPOL_V4_OUT}, {false, 1, IPSECIF_IFPOL_V4_IN},
        {false, 2, IPSECIF_IFPOL_V6_OUT}, {false, 3, IPSECIF_IFPOL_V6_IN},
        {true, 0, IPSECIF_IFPOL_V4_IN},   {true, 1, IPSECIF_IFPOL_V4_OUT},
        {true, 2, IPSECIF_IFPOL_V6_IN},   {true, 3, IPSECIF_IFPOL_V6_OUT},
    };
    struct ipsecif_if_info ia = if_info(a);
    struct ipsecif_if_info ib = if_info(b);
    uint8_t keys[4][GCM_KEY_LEN];
    int rc = IPSECIF_OK;
    size_t i;

    for (i = 0; i < 4; i++) {
        rc = ipsecif_crypto_mbedtls_random(NULL, keys[i], GCM_KEY_LEN);
        if (check(rc, "random key") != IPSECIF_OK) {
            goto out;
        }
    }
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool a_to_b = (rows[i].which & 1) == 0;
        const struct ipsecif_if_info *info = rows[i].on_b ? &ib : &ia;

        rc = sa_add(rows[i].on_b ? b : a, spi_base + rows[i].which, a_to_b ? a_addr : b_addr,
                    a_to_b ? b_addr : a_addr, info->reqid[rows[i].policy], keys[rows[i].which]);
        if (rc != IPSECIF_OK) {
            goto out;
        }
    }
out:
    /* The contexts keep their own copies. */
    memset(keys, 0, sizeof(keys));
    return rc;
}

/* Send one inner packet from `from` through its ipsec0; true if it arrived intact. */
static bool send_one(struct node *from, const char *src, const char *dst, bool reply, uint16_t seq)
{
    static uint8_t mem[PKT_BUF_SIZE];
    uint8_t sent[PKT_BUF_SIZE];
    struct node *to = from->peer;
    struct ipsecif_buf pkt;
    size_t len;
    int rc;

    len = build_ping(mem + IPSECIF_HEADROOM, src, dst, reply, seq);
    memcpy(sent, mem + IPSECIF_HEADROOM, len);
    pkt.base = mem;
    pkt.cap = IPSECIF_HEADROOM + len + IPSECIF_TAILROOM;
    pkt.off = IPSECIF_HEADROOM;
    pkt.len = len;

    printf("  %s sends on ipsec0 (%zu bytes):\n", from->name, len);
    print_inner("sent    ", sent, len);
    to->expect = sent;
    to->expect_len = len;
    to->delivered = 0;
    to->intact = 0;
    from->outer_len = 0;
    from->peer_input_rc = IPSECIF_ERR_INTERNAL;

    rc = ipsecif_if_output(from->ctx, from->ifp, &pkt, now_ms());
    to->expect = NULL;
    if (check(rc, "ipsecif_if_output") != IPSECIF_OK) {
        return false;
    }
    if (check(from->peer_input_rc, "ipsecif_input") != IPSECIF_OK) {
        return false;
    }
    if (to->delivered != 1 || !to->intact) {
        printf("  FAILED: %d packets delivered, intact: %s\n", to->delivered,
               to->intact ? "yes" : "no");
        return false;
    }
    return true;
}

/* Replay A's last outer packet to B: the anti-replay window must drop it. */
static bool replay_last(struct node *from)
{
    static uint8_t mem[PKT_BUF_SIZE];
    struct node *to = from->peer;
    struct ipsecif_buf pkt;
    int rc;

    memcpy(mem + 64, from->last_outer, from->last_outer_len);
    pkt.base = mem;
    pkt.cap = sizeof(mem);
    pkt.off = 64;
    pkt.len = from->last_outer_len;
    to->delivered = 0;
    rc = ipsecif_input(to->ctx, &pkt, now_ms());
    printf("  %s's last outer packet (%zu bytes) sent to %s again: %s (%d), %d delivered\n",
           from->name, from->last_outer_len, to->name, ipsecif_strerror(rc), rc, to->delivered);
    if (rc != IPSECIF_ERR_REPLAY || to->delivered != 0) {
        printf("  FAILED: expected the replay window to drop it\n");
        return false;
    }
    return true;
}

static int print_sa(void *arg, const struct ipsecif_sa_info *sa)
{
    const struct node *n = arg;
    char s[INET6_ADDRSTRLEN];
    char d[INET6_ADDRSTRLEN];

    printf("  %s:   SA 0x%08x %s -> %s reqid %u: %llu packets, %llu bytes, last seq out %llu, "
           "highest seq in %llu\n",
           n->name, sa->params.spi, addr_str(&sa->params.src, s, sizeof(s)),
           addr_str(&sa->params.dst, d, sizeof(d)), sa->params.reqid,
           (unsigned long long)sa->stats.packets, (unsigned long long)sa->stats.bytes,
           (unsigned long long)sa->seq_out, (unsigned long long)sa->seq_in_top);
    return 0;
}

/* Print the counters; true if they show 2 packets each way and 1 replay drop on B. */
static bool print_counters(struct node *n, unsigned long long replays)
{
    struct ipsecif_if_info info = if_info(n);
    const struct ipsecif_stats *g = ipsecif_stats_get(n->ctx);

    printf("  %s ipsec0: out %llu packets / %llu bytes, in %llu packets / %llu bytes\n", n->name,
           (unsigned long long)info.stats.out_success, (unsigned long long)info.stats.out_bytes,
           (unsigned long long)info.stats.in_success, (unsigned long long)info.stats.in_bytes);
    printf("  %s drops: auth %llu, replay %llu, bad SPI %llu, malformed %llu, no SA out %llu\n",
           n->name, (unsigned long long)g->in_auth, (unsigned long long)g->in_replay,
           (unsigned long long)g->in_badspi, (unsigned long long)g->in_malformed,
           (unsigned long long)g->out_nosa);
    ipsecif_sa_walk(n->ctx, IPSECIF_IPPROTO_ESP, print_sa, n);
    if (info.stats.out_success != 2 || info.stats.in_success != 2 || g->in_replay != replays ||
        g->in_auth != 0) {
        printf("  FAILED: %s's counters are not 2 out, 2 in, %llu replayed\n", n->name, replays);
        return false;
    }
    return true;
}

/* One run: both contexts, one outer family, inner IPv4 and IPv6 both ways. */
static int run(const char *title, const char *a_addr, const char *b_addr, uint32_t spi_base)
{
    struct ipsecif_config cfg;
    struct node a;
    struct node b;
    int ok = 0;
    int total = 0;
    bool checks_ok = false;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    printf("\n=== %s ===\n", title);
    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 4;
    cfg.max_policies = 32;
    cfg.max_sas = 16;

    printf("[1] create contexts\n");
    if (node_init(&a, "A", &cfg) != IPSECIF_OK || node_init(&b, "B", &cfg) != IPSECIF_OK) {
        goto out;
    }
    a.peer = &b;
    b.peer = &a;

    printf("[2] interfaces, tunnels and their policies\n");
    if (node_tunnel(&a, a_addr, b_addr) != IPSECIF_OK ||
        node_tunnel(&b, b_addr, a_addr) != IPSECIF_OK) {
        goto out;
    }

    printf("[3] SAs (AES-GCM-16, keys from the random source)\n");
    if (install_sas(&a, &b, a_addr, b_addr, spi_base) != IPSECIF_OK) {
        goto out;
    }

    printf("[4] traffic\n");
    total++;
    ok += send_one(&a, "192.0.2.1", "203.0.113.1", false, 1);
    total++;
    ok += send_one(&b, "203.0.113.1", "192.0.2.1", true, 1);
    total++;
    ok += send_one(&a, "2001:db8:a::1", "2001:db8:b::1", false, 2);
    total++;
    ok += send_one(&b, "2001:db8:b::1", "2001:db8:a::1", true, 2);

    printf("[5] replay\n");
    checks_ok = replay_last(&a);

    printf("[6] counters\n");
    checks_ok = print_counters(&a, 0) && checks_ok;
    checks_ok = print_counters(&b, 1) && checks_ok;

out:
    if (a.ctx != NULL && a.ifp != NULL) {
        ipsecif_if_destroy(a.ctx, a.ifp);
    }
    if (b.ctx != NULL && b.ifp != NULL) {
        ipsecif_if_destroy(b.ctx, b.ifp);
    }
    node_fini(&a);
    node_fini(&b);
    printf("=== %s: %d of %d packets arrived intact, replay and counter checks %s ===\n", title, ok,
           total == 0 ? 4 : total, checks_ok ? "passed" : "FAILED");
    return total != 0 && ok == total && checks_ok ? 0 : 1;
}

int main(void)
{
    int failed = 0;

    printf("libipsecif %s loopback: two contexts, ESP back to back\n", IPSECIF_VERSION_STRING);
    failed +=
        run("outer IPv4: 198.51.100.1 <-> 198.51.100.2", "198.51.100.1", "198.51.100.2", 0x1000);
    failed += run("outer IPv6: 2001:db8:1::1 <-> 2001:db8:1::2", "2001:db8:1::1", "2001:db8:1::2",
                  0x2000);
    printf("\n%s\n",
           failed == 0 ? "loopback: all packets arrived intact" : "loopback: FAILED (see above)");
    return failed == 0 ? 0 : 1;
}
