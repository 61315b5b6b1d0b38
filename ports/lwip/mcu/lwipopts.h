/*
 * lwIP options for a Cortex-M device with no operating system (NO_SYS=1),
 * as the firmware build of the lwIP port uses them: one Ethernet netif,
 * one ipsecif netif, IPv4 and IPv6, raw pcbs for ESP, UDP for NAT-T, a
 * few TCP connections. Sizes are for a device with about 128 KiB of RAM.
 */
#ifndef IPSECIF_MCU_LWIPOPTS_H
#define IPSECIF_MCU_LWIPOPTS_H

#define NO_SYS 1
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define SYS_LIGHTWEIGHT_PROT 0

#define MEM_ALIGNMENT 4
#define MEM_SIZE (12 * 1024)
#define MEMP_NUM_PBUF 16
#define MEMP_NUM_RAW_PCB 4
#define MEMP_NUM_UDP_PCB 4
#define MEMP_NUM_TCP_PCB 4
#define MEMP_NUM_TCP_PCB_LISTEN 2
#define MEMP_NUM_TCP_SEG 16
#define MEMP_NUM_SYS_TIMEOUT (LWIP_NUM_SYS_TIMEOUT_INTERNAL + 2)
#define PBUF_POOL_SIZE 12
/* One pbuf holds one whole frame, so ESP is decrypted in place. */
#define PBUF_POOL_BUFSIZE 1536

#define LWIP_IPV4 1
#define LWIP_IPV6 1
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define LWIP_ICMP 1
#define LWIP_RAW 1
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_IPV6_MLD 1
#define LWIP_IPV6_FRAG 0
#define IP_REASSEMBLY 0
#define IP_FRAG 0
#define LWIP_SUPPORT_CUSTOM_PBUF 1

/* Inner MTU 1280 through the tunnel. */
#define TCP_MSS 1220
#define TCP_WND (4 * TCP_MSS)
#define TCP_SND_BUF (4 * TCP_MSS)

#define LWIP_STATS 0
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK 0

#endif /* IPSECIF_MCU_LWIPOPTS_H */
