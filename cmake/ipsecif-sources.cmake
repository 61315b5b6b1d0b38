# Plain source lists of libipsecif. This file only sets variables, so a
# firmware build with its own toolchain can include() it (or read it) and
# compile the core without the project's targets.
#
#   IPSECIF_INCLUDE_DIRS      public headers
#   IPSECIF_PRIVATE_INCLUDE_DIRS  lib/ (private headers are named "<module>/<file>.h")
#   IPSECIF_CORE_SOURCES      lib/base, lib/ip, lib/esp, lib/ah, lib/sadb, lib/spd, lib/core
#                             (no OS, no crypto library)
#   IPSECIF_PFKEY_SOURCES     lib/pfkey
#   IPSECIF_CRYPTO_MBEDTLS_SOURCES   ports/crypto-mbedtls
#   IPSECIF_CRYPTO_OPENSSL_SOURCES   ports/crypto-openssl (OpenSSL 3 libcrypto)
#   IPSECIF_CRYPTO_IPSECMB_SOURCES   ports/crypto-ipsecmb (intel-ipsec-mb, x86-64)

get_filename_component(IPSECIF_ROOT_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

set(IPSECIF_INCLUDE_DIRS
    ${IPSECIF_ROOT_DIR}/include
)

set(IPSECIF_PRIVATE_INCLUDE_DIRS
    ${IPSECIF_ROOT_DIR}/lib
)

set(IPSECIF_CORE_SOURCES
    ${IPSECIF_ROOT_DIR}/lib/base/base.c
    ${IPSECIF_ROOT_DIR}/lib/ip/ecn.c
    ${IPSECIF_ROOT_DIR}/lib/ip/hdr.c
    ${IPSECIF_ROOT_DIR}/lib/ip/icmp.c
    ${IPSECIF_ROOT_DIR}/lib/ip/reass.c
    ${IPSECIF_ROOT_DIR}/lib/ip/frag.c
    ${IPSECIF_ROOT_DIR}/lib/esp/alg.c
    ${IPSECIF_ROOT_DIR}/lib/esp/esp.c
    ${IPSECIF_ROOT_DIR}/lib/esp/outer.c
    ${IPSECIF_ROOT_DIR}/lib/ah/ah.c
    ${IPSECIF_ROOT_DIR}/lib/sadb/sadb.c
    ${IPSECIF_ROOT_DIR}/lib/sadb/replay.c
    ${IPSECIF_ROOT_DIR}/lib/spd/spd.c
    ${IPSECIF_ROOT_DIR}/lib/spd/sockpol.c
    ${IPSECIF_ROOT_DIR}/lib/core/ctx.c
    ${IPSECIF_ROOT_DIR}/lib/core/strerror.c
    ${IPSECIF_ROOT_DIR}/lib/core/km.c
    ${IPSECIF_ROOT_DIR}/lib/core/iface.c
    ${IPSECIF_ROOT_DIR}/lib/core/dispatch.c
    ${IPSECIF_ROOT_DIR}/lib/core/host.c
)

set(IPSECIF_PFKEY_SOURCES
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey.c
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey_dialect.c
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey_parse.c
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey_build.c
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey_sa.c
    ${IPSECIF_ROOT_DIR}/lib/pfkey/pfkey_spd.c
)

set(IPSECIF_CRYPTO_MBEDTLS_SOURCES
    ${IPSECIF_ROOT_DIR}/ports/crypto-mbedtls/crypto_mbedtls.c
)
set(IPSECIF_CRYPTO_MBEDTLS_INCLUDE_DIRS
    ${IPSECIF_ROOT_DIR}/ports/crypto-mbedtls
)

set(IPSECIF_CRYPTO_OPENSSL_SOURCES
    ${IPSECIF_ROOT_DIR}/ports/crypto-openssl/crypto_openssl.c
)
set(IPSECIF_CRYPTO_OPENSSL_INCLUDE_DIRS
    ${IPSECIF_ROOT_DIR}/ports/crypto-openssl
)

set(IPSECIF_CRYPTO_IPSECMB_SOURCES
    ${IPSECIF_ROOT_DIR}/ports/crypto-ipsecmb/crypto_ipsecmb.c
)
set(IPSECIF_CRYPTO_IPSECMB_INCLUDE_DIRS
    ${IPSECIF_ROOT_DIR}/ports/crypto-ipsecmb
)
