/* Shared helpers for unit tests: contexts in guarded memory, packet builders. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"
#include "mock_port.h"

/* A context in heap memory with guard bytes on both sides. */
struct test_ctx {
    struct ipsecif_ctx *ctx;
    struct mock_port *mock;
    uint8_t *mem;   /* guard | context memory | guard */
    size_t mem_len; /* context memory length */
};

#define TEST_GUARD 64

/* Make a context with cfg (NULL = small defaults) and a fresh mock port. */
void test_ctx_new(struct test_ctx *t, const struct ipsecif_config *cfg);
/* Check guards (fails the test if touched), deinit, free. */
void test_ctx_free(struct test_ctx *t);

/* Parse "192.0.2.1" or "2001:db8::1". Aborts on bad text. */
struct ipsecif_addr test_addr(const char *text);

/* A packet buffer with headroom; the packet starts at off = headroom. */
struct test_buf {
    struct ipsecif_buf b;
    uint8_t mem[10000];
};
void test_buf_init(struct test_buf *tb, size_t headroom);
void test_buf_set(struct test_buf *tb, size_t headroom, const uint8_t *data, size_t len);

/* Build an ICMP echo request (IPv4) or ICMPv6 echo request (IPv6) from src to
 * dst with payload_len payload bytes (pattern), TOS/traffic class tos, into tb at
 * headroom. Returns the packet length. */
size_t test_build_ping(struct test_buf *tb, size_t headroom, const char *src, const char *dst,
                       size_t payload_len, uint8_t tos);

/* Parse hex text (spaces and newlines ignored) into out; returns length. */
size_t test_hex(const char *hex, uint8_t *out, size_t cap);

#endif
