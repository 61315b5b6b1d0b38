#define _GNU_SOURCE

#include "linux_nl.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void ipsecif_linux_nl_begin(struct ipsecif_linux_nlreq *r, uint16_t type, uint16_t flags,
                            const void *fixed, size_t len)
{
    static uint32_t seq;

    memset(r, 0, sizeof(*r));
    r->nh.nlmsg_len = (uint32_t)NLMSG_LENGTH(len);
    r->nh.nlmsg_type = type;
    r->nh.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    r->nh.nlmsg_seq = ++seq;
    memcpy(NLMSG_DATA(&r->nh), fixed, len);
}

void ipsecif_linux_nl_attr(struct ipsecif_linux_nlreq *r, uint16_t type, const void *data,
                           size_t len)
{
    struct rtattr *rta = (struct rtattr *)((uint8_t *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

    rta->rta_type = type;
    rta->rta_len = (uint16_t)RTA_LENGTH(len);
    memcpy(RTA_DATA(rta), data, len);
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

void ipsecif_linux_nl_attr32(struct ipsecif_linux_nlreq *r, uint16_t type, uint32_t v)
{
    ipsecif_linux_nl_attr(r, type, &v, sizeof(v));
}

int ipsecif_linux_nl_talk(struct ipsecif_linux_nlreq *r)
{
    struct sockaddr_nl sa;
    union {
        struct nlmsghdr nh;
        uint8_t b[1024];
    } ack;
    int fd;
    int rc = -1;
    int saved;

    r->nh.nlmsg_flags = (uint16_t)(r->nh.nlmsg_flags | NLM_F_ACK);
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    if (sendto(fd, r, r->nh.nlmsg_len, 0, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, ack.b, sizeof(ack.b), 0);
        struct nlmsghdr *h;

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EPROTO;
            }
            goto out;
        }
        for (h = &ack.nh; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            struct nlmsgerr e;

            if (h->nlmsg_seq != r->nh.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) {
                continue;
            }
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(e))) {
                errno = EPROTO;
                goto out;
            }
            memcpy(&e, NLMSG_DATA(h), sizeof(e));
            if (e.error == 0) {
                rc = 0;
            } else {
                errno = -e.error;
            }
            goto out;
        }
    }
out:
    saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
