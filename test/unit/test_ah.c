/*
 * AH (lib/ah/ah.c): round trips for every algorithm, both families, with and
 * without ESN; tampering, mutable fields changed in flight, replay,
 * truncated and malformed headers (in exact-size buffers, so a read past the
 * packet is a sanitizer error); and known answers from an independent
 * implementation (scapy).
 *
 * SAs are built by hand, as in test_esp.c: a zeroed struct ipsecif_sa with
 * its own replay bitmap, keyed through ipsecif_ah_sa_init with the Mbed TLS
 * backend, and a zeroed context that only carries the port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ctx.h"
#include "ipsecif_crypto_mbedtls.h"
#include "mock_port.h"
#include "test_sa.h"
#include "test_util.h"

#define CRYPTO (&ipsecif_crypto_mbedtls_ops)
#define HEADROOM 128

/*
 * Known answers, made with Debian's python3-scapy 2.5.0 (scapy.layers.ipsec),
 * as
 *
 *   sa = SecurityAssociation(AH, spi=SPI, auth_algo=ALG, auth_key=KEY,
 *                            tunnel_header=TUN, esn_en=ESN is not None,
 *                            esn=ESN or 0)
 *   out = raw(sa.encrypt(PKT, seq_num=SEQ))
 *
 * with KEY = bytes(range(1, n + 1)) for an n-byte key, and "in" the packet
 * handed to AH: raw(PKT), or raw(TUN / PKT) in tunnel mode (outer header
 * with protocol 4 or 41, the inner packet as its payload):
 *
 * v4_sha1: 'HMAC-SHA1-96', SPI 0x1001, SEQ 1,
 *   IP(src='192.0.2.1', dst='198.51.100.2', tos=0x28, ttl=64, id=0x1234,
 *      flags='DF')/UDP(sport=4000, dport=5000)/b'scapy AH vector 1'
 * v4_opts_sha256: 'SHA2-256-128', SPI 0x1002, SEQ 7,
 *   IP(src='192.0.2.1', dst='198.51.100.2', ttl=17, id=7,
 *      options=[IPOption_Router_Alert(), IPOption_RR(routers=['192.0.2.9'])])
 *   /UDP(sport=1, dport=2)/b'options'
 * v4_tun_sha384: 'SHA2-384-192', SPI 0x1003, SEQ 2,
 *   TUN=IP(src='203.0.113.1', dst='203.0.113.2', ttl=32, id=3),
 *   IP(src='192.0.2.10', dst='192.0.2.20', ttl=9, id=99)/ICMP(id=5, seq=6)
 *   /b'inner ping'
 * v6_hbh_sha512: 'SHA2-512-256', SPI 0x1004, SEQ 3,
 *   IPv6(src='2001:db8::1', dst='2001:db8::2', tc=0xb8, fl=0x12345, hlim=64)
 *   /IPv6ExtHdrHopByHop(options=[RouterAlert(), HBHOptUnknown(otype=0x3e,
 *      optdata=b'\xaa\xbb\xcc\xdd'), PadN(optdata=b'')])
 *   /IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x1e,
 *      optdata=b'\x11\x22\x33\x44'), PadN(optdata=b'')])
 *   /UDP(sport=7, dport=9)/b'v6 hop by hop'
 * v6_tun_sha1: 'HMAC-SHA1-96', SPI 0x1005, SEQ 1,
 *   TUN=IPv6(src='2001:db8::a', dst='2001:db8::b', hlim=40),
 *   IPv6(src='2001:db8:1::10', dst='2001:db8:1::20', hlim=5)
 *   /UDP(sport=10, dport=20)/b'inner six'
 * v6_rh_sha256: 'SHA2-256-128', SPI 0x1006, SEQ 4,
 *   IPv6(src='2001:db8::1', dst='2001:db8::100', hlim=64)
 *   /IPv6ExtHdrRouting(addresses=['2001:db8::101', '2001:db8::2'], segleft=2)
 *   /UDP(sport=11, dport=12)/b'routed'
 * v4_esn_sha256: 'SHA2-256-128', SPI 0x1007, SEQ 5, ESN 1,
 *   IP(src='192.0.2.1', dst='198.51.100.2', ttl=64, id=1)
 *   /UDP(sport=4000, dport=5000)/b'esn four'
 * v6_esn_sha1: 'HMAC-SHA1-96', SPI 0x1008, SEQ 0xfffffff0, ESN 2,
 *   IPv6(src='2001:db8::1', dst='2001:db8::2', hlim=64)
 *   /UDP(sport=4000, dport=5000)/b'esn six'
 */
static const uint8_t kat_v4_sha1_in[45] = {
    0x45, 0x28, 0x00, 0x2d, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3c, 0x2d, 0xc0, 0x00, 0x02,
    0x01, 0xc6, 0x33, 0x64, 0x02, 0x0f, 0xa0, 0x13, 0x88, 0x00, 0x19, 0xc3, 0xb6, 0x73, 0x63,
    0x61, 0x70, 0x79, 0x20, 0x41, 0x48, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x31,
};

static const uint8_t kat_v4_sha1_out[69] = {
    0x45, 0x28, 0x00, 0x45, 0x12, 0x34, 0x40, 0x00, 0x40, 0x33, 0x3b, 0xf3, 0xc0, 0x00,
    0x02, 0x01, 0xc6, 0x33, 0x64, 0x02, 0x11, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x01,
    0x00, 0x00, 0x00, 0x01, 0x68, 0x82, 0x7c, 0x24, 0xc0, 0xa8, 0xdc, 0x52, 0x89, 0x16,
    0xd5, 0x7d, 0x0f, 0xa0, 0x13, 0x88, 0x00, 0x19, 0xc3, 0xb6, 0x73, 0x63, 0x61, 0x70,
    0x79, 0x20, 0x41, 0x48, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x31,
};

static const uint8_t kat_v4_opts_sha256_in[47] = {
    0x48, 0x00, 0x00, 0x2f, 0x00, 0x07, 0x00, 0x00, 0x11, 0x11, 0x11, 0xb3, 0xc0, 0x00, 0x02, 0x01,
    0xc6, 0x33, 0x64, 0x02, 0x94, 0x04, 0x00, 0x00, 0x07, 0x07, 0x04, 0xc0, 0x00, 0x02, 0x09, 0x00,
    0x00, 0x01, 0x00, 0x02, 0x00, 0x0f, 0x4d, 0x4d, 0x6f, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x73,
};

static const uint8_t kat_v4_opts_sha256_out[75] = {
    0x48, 0x00, 0x00, 0x4b, 0x00, 0x07, 0x00, 0x00, 0x11, 0x33, 0x11, 0x75, 0xc0, 0x00, 0x02,
    0x01, 0xc6, 0x33, 0x64, 0x02, 0x94, 0x04, 0x00, 0x00, 0x07, 0x07, 0x04, 0xc0, 0x00, 0x02,
    0x09, 0x00, 0x11, 0x05, 0x00, 0x00, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x00, 0x07, 0x4b,
    0xe5, 0xa6, 0xae, 0x21, 0x18, 0x55, 0x8b, 0xba, 0x63, 0xc2, 0xc3, 0x50, 0x36, 0x2a, 0xd5,
    0x00, 0x01, 0x00, 0x02, 0x00, 0x0f, 0x4d, 0x4d, 0x6f, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x73,
};

static const uint8_t kat_v4_tun_sha384_in[58] = {
    0x45, 0x00, 0x00, 0x3a, 0x00, 0x03, 0x00, 0x00, 0x20, 0x04, 0x22, 0xb9, 0xcb, 0x00, 0x71,
    0x01, 0xcb, 0x00, 0x71, 0x02, 0x45, 0x00, 0x00, 0x26, 0x00, 0x63, 0x00, 0x00, 0x09, 0x01,
    0x2d, 0x56, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x00, 0x02, 0x14, 0x08, 0x00, 0xcf, 0x2f, 0x00,
    0x05, 0x00, 0x06, 0x69, 0x6e, 0x6e, 0x65, 0x72, 0x20, 0x70, 0x69, 0x6e, 0x67,
};

static const uint8_t kat_v4_tun_sha384_out[94] = {
    0x45, 0x00, 0x00, 0x5e, 0x00, 0x03, 0x00, 0x00, 0x20, 0x33, 0x22, 0x66, 0xcb, 0x00, 0x71, 0x01,
    0xcb, 0x00, 0x71, 0x02, 0x04, 0x07, 0x00, 0x00, 0x00, 0x00, 0x10, 0x03, 0x00, 0x00, 0x00, 0x02,
    0x28, 0xb7, 0x7e, 0xa3, 0x23, 0x82, 0x77, 0x46, 0x1b, 0x82, 0x1a, 0x3a, 0xde, 0x8f, 0x2e, 0x79,
    0x05, 0x36, 0xd7, 0xf4, 0x59, 0xdb, 0xf5, 0x89, 0x45, 0x00, 0x00, 0x26, 0x00, 0x63, 0x00, 0x00,
    0x09, 0x01, 0x2d, 0x56, 0xc0, 0x00, 0x02, 0x0a, 0xc0, 0x00, 0x02, 0x14, 0x08, 0x00, 0xcf, 0x2f,
    0x00, 0x05, 0x00, 0x06, 0x69, 0x6e, 0x6e, 0x65, 0x72, 0x20, 0x70, 0x69, 0x6e, 0x67,
};

static const uint8_t kat_v6_hbh_sha512_in[93] = {
    0x6b, 0x81, 0x23, 0x45, 0x00, 0x35, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x01, 0x05, 0x02, 0x00, 0x00, 0x3e, 0x04,
    0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x00, 0x01, 0x00, 0x11, 0x01, 0x1e, 0x04, 0x11, 0x22, 0x33, 0x44,
    0x01, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x09, 0x00, 0x15, 0x2c, 0x3e,
    0x76, 0x36, 0x20, 0x68, 0x6f, 0x70, 0x20, 0x62, 0x79, 0x20, 0x68, 0x6f, 0x70,
};

static const uint8_t kat_v6_hbh_sha512_out[141] = {
    0x6b, 0x81, 0x23, 0x45, 0x00, 0x65, 0x00, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x01, 0x05, 0x02, 0x00, 0x00, 0x3e, 0x04,
    0xaa, 0xbb, 0xcc, 0xdd, 0x01, 0x00, 0x01, 0x00, 0x33, 0x01, 0x1e, 0x04, 0x11, 0x22, 0x33, 0x44,
    0x01, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x10, 0x04,
    0x00, 0x00, 0x00, 0x03, 0x32, 0x16, 0x6f, 0x01, 0xf4, 0xe5, 0x24, 0xa4, 0xce, 0xb1, 0x83, 0x15,
    0x54, 0x99, 0xc9, 0x4c, 0x97, 0x9e, 0x18, 0x69, 0x90, 0xcc, 0xd9, 0x90, 0x13, 0x94, 0xda, 0xb1,
    0xc4, 0xf6, 0x35, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x09, 0x00, 0x15, 0x2c, 0x3e,
    0x76, 0x36, 0x20, 0x68, 0x6f, 0x70, 0x20, 0x62, 0x79, 0x20, 0x68, 0x6f, 0x70,
};

static const uint8_t kat_v6_tun_sha1_in[97] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x39, 0x29, 0x28, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x11, 0x11, 0x05, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x0a, 0x00, 0x14,
    0x00, 0x11, 0x6e, 0xac, 0x69, 0x6e, 0x6e, 0x65, 0x72, 0x20, 0x73, 0x69, 0x78,
};

static const uint8_t kat_v6_tun_sha1_out[121] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x51, 0x33, 0x28, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x29, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x05,
    0x00, 0x00, 0x00, 0x01, 0x1f, 0x14, 0x54, 0x70, 0xc7, 0x30, 0xd7, 0x4e, 0xcd, 0x72, 0x52, 0xc2,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x11, 0x11, 0x05, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x0a, 0x00, 0x14, 0x00, 0x11, 0x6e, 0xac,
    0x69, 0x6e, 0x6e, 0x65, 0x72, 0x20, 0x73, 0x69, 0x78,
};

static const uint8_t kat_v6_rh_sha256_in[94] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x36, 0x2b, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x11, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x00, 0x0b, 0x00, 0x0c, 0x00, 0x0e, 0x56, 0xfe, 0x72, 0x6f, 0x75, 0x74, 0x65, 0x64,
};

static const uint8_t kat_v6_rh_sha256_out[126] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x56, 0x2b, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x33, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x11, 0x06, 0x00, 0x00, 0x00, 0x00, 0x10, 0x06, 0x00, 0x00, 0x00, 0x04, 0x60, 0xb5, 0x56, 0xba,
    0xc8, 0x37, 0x17, 0x6e, 0x82, 0x8b, 0xf3, 0xf5, 0x0b, 0x07, 0xc1, 0x32, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x0b, 0x00, 0x0c, 0x00, 0x0e, 0x56, 0xfe, 0x72, 0x6f, 0x75, 0x74, 0x65, 0x64,
};

static const uint8_t kat_v4_esn_sha256_in[36] = {
    0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x8e, 0x91,
    0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02, 0x0f, 0xa0, 0x13, 0x88,
    0x00, 0x10, 0x40, 0xf9, 0x65, 0x73, 0x6e, 0x20, 0x66, 0x6f, 0x75, 0x72,
};

static const uint8_t kat_v4_esn_sha256_out[64] = {
    0x45, 0x00, 0x00, 0x40, 0x00, 0x01, 0x00, 0x00, 0x40, 0x33, 0x8e, 0x53, 0xc0, 0x00, 0x02, 0x01,
    0xc6, 0x33, 0x64, 0x02, 0x11, 0x05, 0x00, 0x00, 0x00, 0x00, 0x10, 0x07, 0x00, 0x00, 0x00, 0x05,
    0xfc, 0x74, 0x47, 0xe1, 0x8c, 0xdc, 0x92, 0x97, 0xf7, 0xe7, 0x66, 0x98, 0xb1, 0x88, 0x51, 0x8a,
    0x0f, 0xa0, 0x13, 0x88, 0x00, 0x10, 0x40, 0xf9, 0x65, 0x73, 0x6e, 0x20, 0x66, 0x6f, 0x75, 0x72,
};

static const uint8_t kat_v6_esn_sha1_in[55] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0f, 0xa0,
    0x13, 0x88, 0x00, 0x0f, 0xc2, 0x35, 0x65, 0x73, 0x6e, 0x20, 0x73, 0x69, 0x78,
};

static const uint8_t kat_v6_esn_sha1_out[79] = {
    0x60, 0x00, 0x00, 0x00, 0x00, 0x27, 0x33, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x08,
    0xff, 0xff, 0xff, 0xf0, 0x4c, 0x66, 0xb3, 0xf9, 0xf7, 0x64, 0xb2, 0xbf, 0xd4, 0xb2, 0xe5, 0xd3,
    0x0f, 0xa0, 0x13, 0x88, 0x00, 0x0f, 0xc2, 0x35, 0x65, 0x73, 0x6e, 0x20, 0x73, 0x69, 0x78,
};

/* ---- Fixtures ---- */

struct env {
    struct mock_port *mock;
    struct ipsecif_ctx ctx;
};

static void env_init(struct env *e)
{
    e->mock = mock_port_new();
    memset(&e->ctx, 0, sizeof(e->ctx));
    e->ctx.port = &e->mock->port;
    e->ctx.user = e->mock;
}

static void env_free(struct env *e)
{
    mock_port_free(e->mock);
    e->mock = NULL;
}

struct alg {
    uint8_t ealg;
    uint8_t aalg;
    uint8_t ekey_len; /* salt included */
    uint8_t akey_len;
    uint8_t icv_len;
    const char *name;
};

static const struct alg algs[] = {
    {IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA1_96, 0, 20, 12, "sha1"},
    {IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA2_256_128, 0, 32, 16, "sha256"},
    {IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA2_384_192, 0, 48, 24, "sha384"},
    {IPSECIF_EALG_NONE, IPSECIF_AALG_HMAC_SHA2_512_256, 0, 64, 32, "sha512"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 20, 0, 16, "gmac128"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 28, 0, 16, "gmac192"},
    {IPSECIF_EALG_AES_GMAC, IPSECIF_AALG_NONE, 36, 0, 16, "gmac256"},
};

static void tsa_make(struct tsa *t, const struct alg *a, uint8_t seed, uint32_t spi, bool esn,
                     uint32_t window)
{
    uint8_t ek[64], ak[64];

    test_key_pattern(ek, a->ekey_len, seed);
    test_key_pattern(ak, a->akey_len, (uint8_t)(seed + 0x55));
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, t, a->ealg, a->aalg, ek, a->ekey_len,
                                  ak, a->akey_len, spi, esn ? IPSECIF_SA_F_ESN : 0, window),
                     IPSECIF_OK);
}

static void ipv4_csum(uint8_t *p)
{
    size_t hlen = (size_t)(p[0] & 0x0f) * 4;

    p[10] = p[11] = 0;
    ipsecif_store16(p + 10, ipsecif_csum_fold(ipsecif_csum_add(0, p, hlen)));
}

/* A ping of n payload bytes, IPv4 or IPv6, with a nonzero TOS/class. */
static size_t make_plain(struct test_buf *tb, bool v6, size_t n)
{
    return v6 ? test_build_ping(tb, HEADROOM, "2001:db8::1", "2001:db8::2", n, 0x2e)
              : test_build_ping(tb, HEADROOM, "192.0.2.1", "198.51.100.2", n, 0x2e);
}

/* Locate AH and run input; returns the verdict. */
static int ah_in(struct env *e, struct tsa *rx, struct ipsecif_buf *b, uint8_t *nh)
{
    size_t off = 0;
    uint32_t spi = 0;
    int rc = ipsecif_ah_locate(b, &off, &spi);

    if (rc != IPSECIF_OK) {
        return rc;
    }
    if (spi != rx->sa->spi) {
        return IPSECIF_ERR_BADSPI; /* the SADB lookup would find no SA */
    }
    return ipsecif_ah_input(&e->ctx, rx->sa, b, off, nh);
}

/* ---- SA setup ---- */

static void test_sa_init(void **state)
{
    uint8_t k[64];
    struct tsa t;

    (void)state;
    test_key_pattern(k, sizeof(k), 1);
    /* Encryption is not AH's; GMAC alone is; an HMAC needs its key length. */
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_AES_CBC,
                                  IPSECIF_AALG_HMAC_SHA1_96, k, 16, k, 20, 0x100, 0, 0),
                     IPSECIF_ERR_UNSUPPORTED);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_NULL,
                                  IPSECIF_AALG_HMAC_SHA1_96, NULL, 0, k, 20, 0x100, 0, 0),
                     IPSECIF_ERR_UNSUPPORTED);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_NONE,
                                  IPSECIF_AALG_NONE, NULL, 0, NULL, 0, 0x100, 0, 0),
                     IPSECIF_ERR_UNSUPPORTED);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_AES_GMAC,
                                  IPSECIF_AALG_HMAC_SHA1_96, k, 20, k, 20, 0x100, 0, 0),
                     IPSECIF_ERR_UNSUPPORTED);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_NONE,
                                  IPSECIF_AALG_HMAC_SHA2_256_128, NULL, 0, k, 20, 0x100, 0, 0),
                     IPSECIF_ERR_KEYLEN);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_AES_GMAC,
                                  IPSECIF_AALG_NONE, k, 16, NULL, 0, 0x100, 0, 0),
                     IPSECIF_ERR_KEYLEN);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_NONE,
                                  IPSECIF_AALG_HMAC_SHA2_512_256, NULL, 0, k, 64, 0x100, 0, 0),
                     IPSECIF_OK);
    assert_int_equal(t.sa->icv_len, 32);
    assert_int_equal(ipsecif_ah_hdr_len(t.sa, IPSECIF_AF_INET), 44);
    assert_int_equal(ipsecif_ah_hdr_len(t.sa, IPSECIF_AF_INET6), 48);
    test_sa_free(CRYPTO, &t);
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, &t, IPSECIF_EALG_AES_GMAC,
                                  IPSECIF_AALG_NONE, k, 36, NULL, 0, 0x100, 0, 0),
                     IPSECIF_OK);
    assert_int_equal(t.sa->iv_len, 8);
    assert_int_equal(t.sa->icv_len, 16);
    assert_memory_equal(t.sa->salt, k + 32, 4);
    /* RFC 4543 section 4 with the IPv6 padding of erratum 3643. */
    assert_int_equal(ipsecif_ah_hdr_len(t.sa, IPSECIF_AF_INET), 36);
    assert_int_equal(ipsecif_ah_hdr_len(t.sa, IPSECIF_AF_INET6), 40);
    test_sa_free(CRYPTO, &t);
}

/* ---- Round trips ---- */

static void round_trip(const struct alg *a, bool v6, bool esn)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb;
    uint8_t plain[200];
    size_t n, ah_len, i;
    uint8_t nh = 0;
    uint8_t *p;

    env_init(&e);
    tsa_make(&tx, a, 3, 0x4242, esn, 0);
    tsa_make(&rx, a, 3, 0x4242, esn, 64);
    if (esn) {
        /* Cross a 2^32 boundary of the sequence space. */
        tx.sa->seq_out = 0xfffffffeu;
        rx.sa->replay_top = 0xfffffffeu;
    }
    for (i = 0; i < 3; i++) {
        n = make_plain(&tb, v6, 13 + i * 17);
        memcpy(plain, tb.mem + HEADROOM, n);
        ah_len = ipsecif_ah_hdr_len(tx.sa, v6 ? IPSECIF_AF_INET6 : IPSECIF_AF_INET);
        assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
        assert_int_equal(tb.b.len, n + ah_len);
        p = ipsecif_buf_data(&tb.b);
        if (v6) {
            assert_int_equal(p[6], IPSECIF_IPPROTO_AH);
            assert_int_equal(ipsecif_load16(p + 4), tb.b.len - 40);
            assert_int_equal(p[40], IPSECIF_IPPROTO_ICMPV6);
            assert_int_equal(ah_len % 8, 0);
            assert_int_equal(p[41], ah_len / 4 - 2);
            assert_memory_equal(p + 40 + ah_len, plain + 40, n - 40);
        } else {
            assert_int_equal(p[9], IPSECIF_IPPROTO_AH);
            assert_int_equal(ipsecif_load16(p + 2), tb.b.len);
            assert_int_equal(ipsecif_csum_fold(ipsecif_csum_add(0, p, 20)), 0);
            assert_int_equal(p[20], IPSECIF_IPPROTO_ICMP);
            assert_int_equal(p[21], ah_len / 4 - 2);
            assert_memory_equal(p + 20 + ah_len, plain + 20, n - 20);
        }
        assert_int_equal(ipsecif_load32(p + (v6 ? 44 : 24)), 0x4242);
        assert_int_equal(ipsecif_load32(p + (v6 ? 48 : 28)), (uint32_t)tx.sa->seq_out);
        if (a->ealg == IPSECIF_EALG_AES_GMAC) {
            /* The IV is the 64-bit sequence number masked per SA. */
            assert_int_equal(ipsecif_load64(p + (v6 ? 52 : 32)), tx.sa->seq_out ^ tx.sa->iv_base);
        }
        assert_int_equal(ah_in(&e, &rx, &tb.b, &nh), IPSECIF_OK);
        assert_int_equal(nh, v6 ? IPSECIF_IPPROTO_ICMPV6 : IPSECIF_IPPROTO_ICMP);
        assert_int_equal(tb.b.len, n);
        assert_memory_equal(ipsecif_buf_data(&tb.b), plain, n);
        assert_int_equal(rx.sa->replay_top, tx.sa->seq_out);
    }
    if (esn) {
        assert_int_equal(tx.sa->seq_out >> 32, 1);
    }
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

static void test_round_trips(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        round_trip(&algs[i], false, false);
        round_trip(&algs[i], false, true);
        round_trip(&algs[i], true, false);
        round_trip(&algs[i], true, true);
    }
}

/* ---- Tampering and mutable fields ---- */

static bool is_mutable(bool v6, size_t i)
{
    if (v6) {
        return i <= 3 || i == 7;
    }
    return i == 1 || i == 6 || i == 7 || i == 8 || i == 10 || i == 11;
}

static void tamper_all(const struct alg *a, bool v6)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb, tc;
    uint8_t saved[400];
    size_t len, i;
    uint8_t nh;
    uint64_t auth = 0;
    int rc;

    env_init(&e);
    tsa_make(&tx, a, 9, 0x777, false, 0);
    tsa_make(&rx, a, 9, 0x777, false, 64);
    make_plain(&tb, v6, 21);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
    len = tb.b.len;
    memcpy(saved, ipsecif_buf_data(&tb.b), len);
    for (i = 0; i < len; i++) {
        if (is_mutable(v6, i)) {
            continue;
        }
        test_buf_set(&tc, HEADROOM, saved, len);
        tc.mem[HEADROOM + i] ^= 0x01;
        rc = ah_in(&e, &rx, &tc.b, &nh);
        if (rc == IPSECIF_ERR_AUTH) {
            auth++;
        } else {
            /* A length, version, protocol or SPI byte: refused before crypto. */
            assert_true(rc == IPSECIF_ERR_MALFORMED || rc == IPSECIF_ERR_PROTO ||
                        rc == IPSECIF_ERR_BADSPI || rc == IPSECIF_ERR_REPLAY);
        }
        /* Refused packets are left as they came. */
        assert_int_equal(tc.b.len, len);
        assert_memory_equal(ipsecif_buf_data(&tc.b), saved, i);
        assert_memory_equal(ipsecif_buf_data(&tc.b) + i + 1, saved + i + 1, len - i - 1);
        assert_int_equal(rx.sa->replay_top, 0);
    }
    assert_true(auth > len / 2);
    assert_int_equal(rx.sa->stats.auth, auth);
    /* Intact, it still verifies. */
    test_buf_set(&tc, HEADROOM, saved, len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

static void test_tampered(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        tamper_all(&algs[i], false);
        tamper_all(&algs[i], true);
    }
}

static void mutable_in_flight(const struct alg *a, bool v6)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb;
    uint8_t nh;
    uint8_t *p;

    env_init(&e);
    tsa_make(&tx, a, 5, 0x999, false, 0);
    tsa_make(&rx, a, 5, 0x999, false, 64);
    make_plain(&tb, v6, 30);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
    p = ipsecif_buf_data(&tb.b);
    if (v6) {
        p[0] = (uint8_t)(p[0] ^ 0x0a); /* traffic class */
        p[1] ^= 0xf3;                  /* class, flow label */
        p[2] ^= 0x55;
        p[3] ^= 0xaa;
        p[7] = 3; /* hop limit */
    } else {
        p[1] = 0xb9;  /* DSCP and ECN */
        p[6] ^= 0x40; /* DF cleared */
        p[8] = 1;     /* TTL */
        ipv4_csum(p);
    }
    assert_int_equal(ah_in(&e, &rx, &tb.b, &nh), IPSECIF_OK);
    /* The fields keep the values they arrived with. */
    p = ipsecif_buf_data(&tb.b);
    if (v6) {
        assert_int_equal(p[7], 3);
    } else {
        assert_int_equal(p[8], 1);
        assert_int_equal(p[1], 0xb9);
        assert_int_equal(ipsecif_csum_fold(ipsecif_csum_add(0, p, 20)), 0);
    }
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

static void test_mutable_fields(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < IPSECIF_ARRAY_SIZE(algs); i++) {
        mutable_in_flight(&algs[i], false);
        mutable_in_flight(&algs[i], true);
    }
}

/* ---- Replay ---- */

static void test_replayed(void **state)
{
    struct env e;
    struct tsa tx, rx;
    static struct test_buf pk[40], tc;
    size_t i;
    uint8_t nh;

    (void)state;
    env_init(&e);
    tsa_make(&tx, &algs[1], 2, 0x555, false, 0);
    tsa_make(&rx, &algs[1], 2, 0x555, false, 32);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(pk); i++) {
        make_plain(&pk[i], (i & 1) != 0, 10);
        assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &pk[i].b), IPSECIF_OK);
    }
    /* 2, then 1, then 2 again. */
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[1].b), pk[1].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[0].b), pk[0].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[1].b), pk[1].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_ERR_REPLAY);
    assert_int_equal(rx.sa->stats.replay, 1);
    /* 40 moves the window (32) to 9..40: 8 is too old, 9 is new. */
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[39].b), pk[39].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[7].b), pk[7].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_ERR_REPLAY);
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[8].b), pk[8].b.len);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    assert_int_equal(rx.sa->stats.replay, 2);
    /* A forged packet ahead of the window does not move it. */
    test_buf_set(&tc, HEADROOM, ipsecif_buf_data(&pk[20].b), pk[20].b.len);
    ipsecif_store32(ipsecif_buf_data(&tc.b) + 28, 1000); /* IPv4: seq at 20 + 8 */
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_ERR_AUTH);
    assert_int_equal(rx.sa->replay_top, 40);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

/* ---- Truncated and malformed ---- */

/* Run locate + input on a copy of pkt[0..len) in a buffer of exactly len
 * bytes, no headroom or tailroom: any read outside it is a sanitizer error. */
static int in_exact(struct env *e, struct tsa *rx, const uint8_t *pkt, size_t len)
{
    uint8_t *mem = malloc(len != 0 ? len : 1);
    struct ipsecif_buf b;
    size_t off = 0;
    uint32_t spi = 0;
    uint8_t nh;
    int rc;

    assert_non_null(mem);
    memcpy(mem, pkt, len);
    b.base = mem;
    b.cap = len;
    b.off = 0;
    b.len = len;
    rc = ipsecif_ah_locate(&b, &off, &spi);
    if (rc == IPSECIF_OK) {
        rc = ipsecif_ah_input(&e->ctx, rx->sa, &b, off, &nh);
    }
    free(mem);
    return rc;
}

static void malformed(bool v6)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb;
    uint8_t pkt[300], bad[300];
    size_t len, l, ah_off = v6 ? 40 : 20;
    int rc;

    env_init(&e);
    tsa_make(&tx, &algs[2], 4, 0x321, false, 0);
    tsa_make(&rx, &algs[2], 4, 0x321, false, 64);
    make_plain(&tb, v6, 8);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
    len = tb.b.len;
    memcpy(pkt, ipsecif_buf_data(&tb.b), len);
    /* Every truncation: the IP length no longer matches, or the cut falls
     * inside a header. Fixing the IP length makes the AH header itself
     * too short. */
    for (l = 0; l < len; l++) {
        assert_int_equal(in_exact(&e, &rx, pkt, l), IPSECIF_ERR_MALFORMED);
        if (l >= ah_off) {
            memcpy(bad, pkt, l);
            if (v6) {
                ipsecif_store16(bad + 4, (uint16_t)(l - 40));
            } else {
                ipsecif_store16(bad + 2, (uint16_t)l);
                ipv4_csum(bad);
            }
            rc = in_exact(&e, &rx, bad, l);
            assert_true(rc == IPSECIF_ERR_MALFORMED || rc == IPSECIF_ERR_PROTO ||
                        rc == IPSECIF_ERR_AUTH);
            if (l < ah_off + ipsecif_ah_hdr_len(rx.sa, v6 ? IPSECIF_AF_INET6 : IPSECIF_AF_INET)) {
                assert_true(rc == IPSECIF_ERR_MALFORMED || rc == IPSECIF_ERR_PROTO);
            }
        }
    }
    /* Every payload length value but the right one. */
    for (l = 0; l < 256; l++) {
        memcpy(bad, pkt, len);
        if (l == pkt[ah_off + 1]) {
            continue;
        }
        bad[ah_off + 1] = (uint8_t)l;
        assert_int_equal(in_exact(&e, &rx, bad, len), IPSECIF_ERR_MALFORMED);
    }
    /* A fragment cannot be checked (AH covers whole datagrams). */
    if (!v6) {
        memcpy(bad, pkt, len);
        bad[6] |= 0x20; /* MF */
        ipv4_csum(bad);
        assert_int_equal(in_exact(&e, &rx, bad, len), IPSECIF_ERR_MALFORMED);
    }
    /* Not AH at all. */
    memcpy(bad, pkt, len);
    bad[v6 ? 6 : 9] = IPSECIF_IPPROTO_UDP;
    assert_int_equal(in_exact(&e, &rx, bad, len), IPSECIF_ERR_PROTO);
    /* The intact packet in an exact buffer passes. */
    assert_int_equal(in_exact(&e, &rx, pkt, len), IPSECIF_OK);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

static void test_malformed(void **state)
{
    (void)state;
    malformed(false);
    malformed(true);
}

/* Output refuses what it cannot frame, leaving the packet alone. */
static void test_output_refusals(void **state)
{
    struct env e;
    struct tsa tx;
    struct test_buf tb;
    uint8_t plain[100];
    size_t n;

    (void)state;
    env_init(&e);
    tsa_make(&tx, &algs[0], 1, 0x400, false, 0);
    n = make_plain(&tb, false, 10);
    memcpy(plain, tb.mem + HEADROOM, n);
    /* No headroom. */
    test_buf_set(&tb, 10, plain, n);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_ERR_NOROOM);
    assert_int_equal(tb.b.len, n);
    assert_memory_equal(ipsecif_buf_data(&tb.b), plain, n);
    /* Wrong length, a fragment. */
    test_buf_set(&tb, HEADROOM, plain, n - 1);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_ERR_MALFORMED);
    plain[7] = 1;
    test_buf_set(&tb, HEADROOM, plain, n);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_ERR_MALFORMED);
    /* Sequence exhausted without ESN. */
    plain[7] = 0;
    tx.sa->seq_out = 0xffffffffu;
    test_buf_set(&tb, HEADROOM, plain, n);
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_ERR_SEQWRAP);
    assert_int_equal(ipsecif_ah_output(NULL, tx.sa, &tb.b), IPSECIF_ERR_ARG);
    test_sa_free(CRYPTO, &tx);
    env_free(&e);
}

/* IPv4 options: mutable ones (record route) may change, immutable ones
 * (router alert) may not. */
static void test_ipv4_options(void **state)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb, tc;
    uint8_t pkt[200];
    size_t len;
    uint8_t nh;

    (void)state;
    env_init(&e);
    tsa_make(&tx, &algs[1], 8, 0x600, false, 0);
    tsa_make(&rx, &algs[1], 8, 0x600, false, 64);
    test_buf_set(&tb, HEADROOM, kat_v4_opts_sha256_in, sizeof(kat_v4_opts_sha256_in));
    assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
    len = tb.b.len;
    memcpy(pkt, ipsecif_buf_data(&tb.b), len);
    /* Options at 20: router alert (4 bytes), record route (7), EOL. */
    assert_int_equal(pkt[20], 148);
    assert_int_equal(pkt[24], 7);
    test_buf_set(&tc, HEADROOM, pkt, len);
    tc.mem[HEADROOM + 26] = 8; /* record route pointer moves on */
    tc.mem[HEADROOM + 28] ^= 0xff;
    ipv4_csum(tc.mem + HEADROOM);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_OK);
    rx.sa->replay_top = 0; /* the same packet once more */
    test_buf_set(&tc, HEADROOM, pkt, len);
    tc.mem[HEADROOM + 23] ^= 1; /* router alert value */
    ipv4_csum(tc.mem + HEADROOM);
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_ERR_AUTH);
    /* A bad option length is malformed. */
    test_buf_set(&tc, HEADROOM, pkt, len);
    tc.mem[HEADROOM + 25] = 40;
    assert_int_equal(ah_in(&e, &rx, &tc.b, &nh), IPSECIF_ERR_MALFORMED);
    test_sa_free(CRYPTO, &tx);
    test_sa_free(CRYPTO, &rx);
    env_free(&e);
}

/* ---- Known answers (scapy) ---- */

struct kat {
    const char *name;
    uint8_t aalg;
    uint8_t key_len;
    uint32_t spi;
    uint64_t seq; /* full 64-bit number with ESN */
    bool esn;
    uint8_t nh; /* AH's next header */
    const uint8_t *in;
    size_t in_len;
    const uint8_t *out;
    size_t out_len;
};

#define KAT(n, alg, kl, spi, seq, esn, nh)                                                         \
    {                                                                                              \
#n, alg, kl, spi, seq, esn, nh, kat_##n##_in, sizeof(kat_##n##_in), kat_##n##_out,         \
            sizeof(kat_##n##_out)                                                                  \
    }

static const struct kat kats[] = {
    KAT(v4_sha1, IPSECIF_AALG_HMAC_SHA1_96, 20, 0x1001, 1, false, IPSECIF_IPPROTO_UDP),
    KAT(v4_opts_sha256, IPSECIF_AALG_HMAC_SHA2_256_128, 32, 0x1002, 7, false, IPSECIF_IPPROTO_UDP),
    KAT(v4_tun_sha384, IPSECIF_AALG_HMAC_SHA2_384_192, 48, 0x1003, 2, false, 4),
    KAT(v6_hbh_sha512, IPSECIF_AALG_HMAC_SHA2_512_256, 64, 0x1004, 3, false, IPSECIF_IPPROTO_UDP),
    KAT(v6_tun_sha1, IPSECIF_AALG_HMAC_SHA1_96, 20, 0x1005, 1, false, 41),
    KAT(v6_rh_sha256, IPSECIF_AALG_HMAC_SHA2_256_128, 32, 0x1006, 4, false, IPSECIF_IPPROTO_UDP),
    KAT(v4_esn_sha256, IPSECIF_AALG_HMAC_SHA2_256_128, 32, 0x1007, 0x100000005ull, true,
        IPSECIF_IPPROTO_UDP),
    KAT(v6_esn_sha1, IPSECIF_AALG_HMAC_SHA1_96, 20, 0x1008, 0x2fffffff0ull, true,
        IPSECIF_IPPROTO_UDP),
};

static void kat_sa(struct tsa *t, const struct kat *k, uint32_t window)
{
    uint8_t key[64];
    size_t i;

    for (i = 0; i < k->key_len; i++) {
        key[i] = (uint8_t)(i + 1);
    }
    assert_int_equal(test_sa_make(CRYPTO, IPSECIF_IPPROTO_AH, t, IPSECIF_EALG_NONE, k->aalg, NULL,
                                  0, key, k->key_len, k->spi, k->esn ? IPSECIF_SA_F_ESN : 0,
                                  window),
                     IPSECIF_OK);
}

/* What a routing header with segments left looks like once every hop has
 * processed it: the final destination in the IPv6 header, segments left 0. */
static void route_to_end(uint8_t *p)
{
    uint8_t *rh = p + 40;
    size_t n = rh[1] / 2u, k;
    uint8_t tmp[16];

    for (k = n - rh[3]; k < n; k++) {
        memcpy(tmp, p + 24, 16);
        memcpy(p + 24, rh + 8 + k * 16, 16);
        memcpy(rh + 8 + k * 16, tmp, 16);
    }
    rh[3] = 0;
}

static void test_scapy_vectors(void **state)
{
    struct env e;
    struct tsa tx, rx;
    struct test_buf tb;
    uint8_t expect[300];
    size_t i;
    uint8_t nh;

    (void)state;
    env_init(&e);
    for (i = 0; i < IPSECIF_ARRAY_SIZE(kats); i++) {
        const struct kat *k = &kats[i];
        bool routed = k->in[0] >> 4 == 6 && k->in[6] == 43;

        print_message("  %s\n", k->name);
        /* Output: scapy's bytes exactly. */
        kat_sa(&tx, k, 0);
        tx.sa->seq_out = k->seq - 1;
        test_buf_set(&tb, HEADROOM, k->in, k->in_len);
        assert_int_equal(ipsecif_ah_output(&e.ctx, tx.sa, &tb.b), IPSECIF_OK);
        assert_int_equal(tb.b.len, k->out_len);
        assert_memory_equal(ipsecif_buf_data(&tb.b), k->out, k->out_len);
        test_sa_free(CRYPTO, &tx);
        /* Input: scapy's packet verifies and gives back the packet it was
         * made from (a routed one as its final destination sees it). */
        kat_sa(&rx, k, 64);
        rx.sa->replay_top = k->seq - 1;
        test_buf_set(&tb, HEADROOM, k->out, k->out_len);
        memcpy(expect, k->in, k->in_len);
        if (routed) {
            route_to_end(ipsecif_buf_data(&tb.b));
            route_to_end(expect);
        }
        assert_int_equal(ah_in(&e, &rx, &tb.b, &nh), IPSECIF_OK);
        assert_int_equal(nh, k->nh);
        assert_int_equal(tb.b.len, k->in_len);
        assert_memory_equal(ipsecif_buf_data(&tb.b), expect, k->in_len);
        assert_int_equal(rx.sa->replay_top, k->seq);
        test_sa_free(CRYPTO, &rx);
    }
    env_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sa_init),         cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_tampered),        cmocka_unit_test(test_mutable_fields),
        cmocka_unit_test(test_replayed),        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_output_refusals), cmocka_unit_test(test_ipv4_options),
        cmocka_unit_test(test_scapy_vectors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
