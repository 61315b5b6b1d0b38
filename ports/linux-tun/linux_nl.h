/* rtnetlink requests of the Linux port: one message (header, fixed part,
 * attributes) sent on a socket of its own and answered by the kernel's
 * acknowledgement. Used for addresses (linux_tun.c) and for host mode's
 * rules and routes (linux_host.c). */
#ifndef IPSECIF_LINUX_NL_H
#define IPSECIF_LINUX_NL_H

#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>

/** One request: the header, the message's fixed part, attributes. */
struct ipsecif_linux_nlreq {
    struct nlmsghdr nh;
    uint8_t body[256];
};

/** Start a request of type with NLM_F_REQUEST | flags and the fixed part
 *  (len bytes, at most sizeof body). */
void ipsecif_linux_nl_begin(struct ipsecif_linux_nlreq *r, uint16_t type, uint16_t flags,
                            const void *fixed, size_t len);

/** Append an attribute; the caller keeps the whole within body. */
void ipsecif_linux_nl_attr(struct ipsecif_linux_nlreq *r, uint16_t type, const void *data,
                           size_t len);

/** Append a 32-bit attribute. */
void ipsecif_linux_nl_attr32(struct ipsecif_linux_nlreq *r, uint16_t type, uint32_t v);

/** Send the request asking for an acknowledgement and wait for it.
 *  @return 0, or -1 with errno (the kernel's error, or the socket's). */
int ipsecif_linux_nl_talk(struct ipsecif_linux_nlreq *r);

#endif /* IPSECIF_LINUX_NL_H */
