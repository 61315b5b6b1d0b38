#include "test_util.h"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void test_ctx_new(struct test_ctx *t, const struct ipsecif_config *cfg)
{
    struct ipsecif_config def;
    size_t need;
    int rc;

    if (cfg == NULL) {
        ipsecif_config_default(&def);
        def.max_interfaces = 8;
        def.max_policies = 64;
        def.max_sas = 32;
        cfg = &def;
    }
    memset(t, 0, sizeof(*t));
    t->mock = mock_port_new();
    need = ipsecif_ctx_size(cfg);
    assert_true(need > 0);
    t->mem_len = need;
    t->mem = aligned_alloc(64, ((need + 2 * TEST_GUARD) + 63) & ~(size_t)63);
    assert_non_null(t->mem);
    memset(t->mem, 0xA5, need + 2 * TEST_GUARD);
    rc = ipsecif_init(&t->ctx, t->mem + TEST_GUARD, need, cfg, &t->mock->port, t->mock, 1000);
    assert_int_equal(rc, IPSECIF_OK);
}

void test_ctx_free(struct test_ctx *t)
{
    size_t i;

    for (i = 0; i < TEST_GUARD; i++) {
        assert_int_equal(t->mem[i], 0xA5);
        assert_int_equal(t->mem[TEST_GUARD + t->mem_len + i], 0xA5);
    }
    ipsecif_deinit(t->ctx);
    free(t->mem);
    mock_port_free(t->mock);
    memset(t, 0, sizeof(*t));
}

struct ipsecif_addr test_addr(const char *text)
{
    struct ipsecif_addr a;

    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET;
    } else if (inet_pton(AF_INET6, text, a.bytes) == 1) {
        a.family = IPSECIF_AF_INET6;
    } else {
        abort();
    }
    return a;
}

void test_buf_init(struct test_buf *tb, size_t headroom)
{
    memset(tb->mem, 0, sizeof(tb->mem));
    tb->b.base = tb->mem;
    tb->b.cap = sizeof(tb->mem);
    tb->b.off = headroom;
    tb->b.len = 0;
}

void test_buf_set(struct test_buf *tb, size_t headroom, const uint8_t *data, size_t len)
{
    test_buf_init(tb, headroom);
    memcpy(tb->mem + headroom, data, len);
    tb->b.len = len;
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
    size_t i;

    for (i = 0; i + 1 < n; i += 2) {
        sum += (uint32_t)((p[i] << 8) | p[i + 1]);
    }
    if (n & 1) {
        sum += (uint32_t)(p[n - 1] << 8);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

size_t test_build_ping(struct test_buf *tb, size_t headroom, const char *src, const char *dst,
                       size_t payload_len, uint8_t tos)
{
    struct ipsecif_addr s = test_addr(src);
    struct ipsecif_addr d = test_addr(dst);
    uint8_t *p;
    size_t i, len;
    uint16_t c;

    test_buf_init(tb, headroom);
    p = tb->mem + headroom;
    if (s.family == IPSECIF_AF_INET) {
        len = 20 + 8 + payload_len;
        p[0] = 0x45;
        p[1] = tos;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        p[4] = 0x12;
        p[5] = 0x34;
        p[6] = 0x40; /* DF */
        p[8] = 64;
        p[9] = IPSECIF_IPPROTO_ICMP;
        memcpy(p + 12, s.bytes, 4);
        memcpy(p + 16, d.bytes, 4);
        c = csum(p, 20, 0);
        p[10] = (uint8_t)(c >> 8);
        p[11] = (uint8_t)c;
        p[20] = 8; /* echo request */
        p[24] = 0x00;
        p[25] = 0x01;
        p[26] = 0x00;
        p[27] = 0x01;
        for (i = 0; i < payload_len; i++) {
            p[28 + i] = (uint8_t)i;
        }
        c = csum(p + 20, 8 + payload_len, 0);
        p[22] = (uint8_t)(c >> 8);
        p[23] = (uint8_t)c;
    } else {
        uint32_t sum = 0;
        size_t plen = 8 + payload_len;

        len = 40 + plen;
        p[0] = (uint8_t)(0x60 | (tos >> 4));
        p[1] = (uint8_t)(tos << 4);
        p[4] = (uint8_t)(plen >> 8);
        p[5] = (uint8_t)plen;
        p[6] = IPSECIF_IPPROTO_ICMPV6;
        p[7] = 64;
        memcpy(p + 8, s.bytes, 16);
        memcpy(p + 24, d.bytes, 16);
        p[40] = 128; /* echo request */
        p[44] = 0x00;
        p[45] = 0x01;
        p[46] = 0x00;
        p[47] = 0x01;
        for (i = 0; i < payload_len; i++) {
            p[48 + i] = (uint8_t)i;
        }
        for (i = 0; i < 32; i += 2) {
            sum += (uint32_t)((p[8 + i] << 8) | p[9 + i]);
        }
        sum += (uint32_t)plen;
        sum += IPSECIF_IPPROTO_ICMPV6;
        c = csum(p + 40, plen, sum);
        p[42] = (uint8_t)(c >> 8);
        p[43] = (uint8_t)c;
    }
    tb->b.len = len;
    return len;
}

size_t test_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;

    for (; *hex; hex++) {
        int v;
        char ch = *hex;

        if (ch >= '0' && ch <= '9') {
            v = ch - '0';
        } else if (ch >= 'a' && ch <= 'f') {
            v = ch - 'a' + 10;
        } else if (ch >= 'A' && ch <= 'F') {
            v = ch - 'A' + 10;
        } else {
            continue;
        }
        if (hi < 0) {
            hi = v;
        } else {
            if (n >= cap) {
                abort();
            }
            out[n++] = (uint8_t)((hi << 4) | v);
            hi = -1;
        }
    }
    return n;
}
