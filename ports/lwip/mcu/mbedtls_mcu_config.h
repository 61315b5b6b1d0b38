/*
 * Mbed TLS 2.28 configuration for the firmware build of the lwIP port:
 * only what the crypto backend uses for ESP (AES-GCM, ChaCha20-Poly1305,
 * AES-CBC with HMAC-SHA1/SHA2-256) and a CTR-DRBG fed by the device's
 * hardware entropy source (mbedtls_hardware_poll). No threads, no files,
 * no clock. Used with -DMBEDTLS_CONFIG_FILE="mbedtls_mcu_config.h".
 */
#ifndef IPSECIF_MBEDTLS_MCU_CONFIG_H
#define IPSECIF_MBEDTLS_MCU_CONFIG_H

#define MBEDTLS_HAVE_ASM
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_CIPHER_MODE_CBC

#define MBEDTLS_AES_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_PLATFORM_C

#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_HARDWARE_ALT

#include "mbedtls/check_config.h"

#endif /* IPSECIF_MBEDTLS_MCU_CONFIG_H */
