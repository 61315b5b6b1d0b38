/*
 * lwIP's compiler and platform glue for a bare-metal Cortex-M build with
 * arm-none-eabi-gcc and newlib (the firmware build of the lwIP port).
 */
#ifndef IPSECIF_MCU_ARCH_CC_H
#define IPSECIF_MCU_ARCH_CC_H

#include <stdint.h>
#include <stdlib.h>

#define BYTE_ORDER LITTLE_ENDIAN
#define LWIP_NO_UNISTD_H 1

/* A real device prints through its UART and resets on a failed assertion. */
void ipsecif_mcu_diag(const char *fmt, ...);
#define LWIP_PLATFORM_DIAG(x)                                                                      \
    do {                                                                                           \
        ipsecif_mcu_diag x;                                                                        \
    } while (0)
#define LWIP_PLATFORM_ASSERT(x)                                                                    \
    do {                                                                                           \
        ipsecif_mcu_diag("assertion \"%s\" failed", x);                                            \
        abort();                                                                                   \
    } while (0)

/* lwIP's random numbers (ports, ISNs): the device's hardware RNG. */
uint32_t ipsecif_mcu_rand(void);
#define LWIP_RAND() ipsecif_mcu_rand()

#endif /* IPSECIF_MCU_ARCH_CC_H */
