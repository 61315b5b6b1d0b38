/*
 * A recording mock port for unit tests: every callback copies what it was
 * given, so a test can assert "exactly one packet sent, with these bytes".
 * Crypto is the real Mbed TLS backend; random is deterministic.
 */
#ifndef MOCK_PORT_H
#define MOCK_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#define MOCK_MAX_PKTS 48
#define MOCK_PKT_SIZE 9300

struct mock_pkt {
    struct ipsecif_if *ifp;
    struct ipsecif_outer_meta meta; /* send_outer only */
    size_t len;
    uint8_t data[MOCK_PKT_SIZE];
};

struct mock_port {
    struct ipsecif_port port;
    unsigned n_sent;
    struct mock_pkt sent[MOCK_MAX_PKTS];
    unsigned n_delivered;
    struct mock_pkt delivered[MOCK_MAX_PKTS];
    unsigned n_icmp;
    struct mock_pkt icmp[MOCK_MAX_PKTS];
    unsigned n_events;
    struct ipsecif_km_event events[MOCK_MAX_PKTS];
    unsigned n_logs;
    char last_log[256];
    unsigned n_host; /* deliver_host (after mock_port_host()) */
    struct mock_pkt host[MOCK_MAX_PKTS];
    struct ipsecif_host_result host_res[MOCK_MAX_PKTS];
    unsigned n_foreign; /* addresses local_addr says are not the host's */
    struct ipsecif_addr foreign[4];
    int send_result;    /* returned by send_outer (0 by default) */
    int random_fail;    /* nonzero: random returns IPSECIF_ERR_RANDOM */
    uint64_t rng_state; /* deterministic random stream */
};

/* Allocate and initialize (free with mock_port_free). */
struct mock_port *mock_port_new(void);
void mock_port_free(struct mock_port *m);
/* Take host traffic: set deliver_host and local_addr (every address is
 * the host's but those in foreign[]). */
void mock_port_host(struct mock_port *m);
/* Forget every recording (keeps settings). */
void mock_port_clear(struct mock_port *m);

#endif
