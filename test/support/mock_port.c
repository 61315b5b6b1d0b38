#include "mock_port.h"

#include <stdlib.h>
#include <string.h>

#include "ipsecif_crypto_mbedtls.h"

static void record(struct mock_pkt *slot, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    size_t n = pkt->len < MOCK_PKT_SIZE ? pkt->len : MOCK_PKT_SIZE;

    slot->ifp = ifp;
    slot->len = pkt->len;
    memcpy(slot->data, pkt->base + pkt->off, n);
}

static int mock_send_outer(void *user, struct ipsecif_if *ifp,
                           const struct ipsecif_outer_meta *meta, const struct ipsecif_buf *pkt)
{
    struct mock_port *m = user;

    if (m->send_result != 0) {
        return m->send_result;
    }
    if (m->n_sent < MOCK_MAX_PKTS) {
        record(&m->sent[m->n_sent], ifp, pkt);
        m->sent[m->n_sent].meta = *meta;
    }
    m->n_sent++;
    return 0;
}

static void mock_deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct mock_port *m = user;

    if (m->n_delivered < MOCK_MAX_PKTS) {
        record(&m->delivered[m->n_delivered], ifp, pkt);
    }
    m->n_delivered++;
}

static void mock_deliver_icmp(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt)
{
    struct mock_port *m = user;

    if (m->n_icmp < MOCK_MAX_PKTS) {
        record(&m->icmp[m->n_icmp], ifp, pkt);
    }
    m->n_icmp++;
}

static void mock_deliver_host(void *user, const struct ipsecif_buf *pkt,
                              const struct ipsecif_host_result *res)
{
    struct mock_port *m = user;

    if (m->n_host < MOCK_MAX_PKTS) {
        record(&m->host[m->n_host], NULL, pkt);
        m->host_res[m->n_host] = *res;
    }
    m->n_host++;
}

static bool mock_local_addr(void *user, const struct ipsecif_addr *a)
{
    struct mock_port *m = user;
    unsigned i;

    for (i = 0; i < m->n_foreign; i++) {
        if (m->foreign[i].family == a->family && memcmp(m->foreign[i].bytes, a->bytes, 16) == 0) {
            return false;
        }
    }
    return true;
}

void mock_port_host(struct mock_port *m)
{
    m->port.deliver_host = mock_deliver_host;
    m->port.local_addr = mock_local_addr;
}

static int mock_random(void *user, uint8_t *out, size_t len)
{
    struct mock_port *m = user;
    size_t i;

    if (m->random_fail) {
        return IPSECIF_ERR_RANDOM;
    }
    for (i = 0; i < len; i++) {
        /* xorshift64*: deterministic, good enough for tests. */
        m->rng_state ^= m->rng_state >> 12;
        m->rng_state ^= m->rng_state << 25;
        m->rng_state ^= m->rng_state >> 27;
        out[i] = (uint8_t)((m->rng_state * 0x2545F4914F6CDD1DULL) >> 56);
    }
    return 0;
}

static void mock_log(void *user, int level, const char *msg)
{
    struct mock_port *m = user;

    (void)level;
    m->n_logs++;
    strncpy(m->last_log, msg, sizeof(m->last_log) - 1);
    m->last_log[sizeof(m->last_log) - 1] = '\0';
}

static void mock_km_event(void *user, const struct ipsecif_km_event *ev)
{
    struct mock_port *m = user;

    if (m->n_events < MOCK_MAX_PKTS) {
        m->events[m->n_events] = *ev;
    }
    m->n_events++;
}

struct mock_port *mock_port_new(void)
{
    struct mock_port *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        abort();
    }
    m->port.send_outer = mock_send_outer;
    m->port.deliver_inner = mock_deliver_inner;
    m->port.deliver_icmp = mock_deliver_icmp;
    m->port.random = mock_random;
    m->port.log = mock_log;
    m->port.km_event = mock_km_event;
    m->port.crypto = &ipsecif_crypto_mbedtls_ops;
    m->rng_state = 0x9E3779B97F4A7C15ULL;
    return m;
}

void mock_port_free(struct mock_port *m)
{
    free(m);
}

void mock_port_clear(struct mock_port *m)
{
    m->n_sent = 0;
    m->n_delivered = 0;
    m->n_icmp = 0;
    m->n_host = 0;
    m->n_events = 0;
    m->n_logs = 0;
    m->last_log[0] = '\0';
}
