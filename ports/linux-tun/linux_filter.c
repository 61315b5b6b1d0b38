/* Linux port: an nftables table against inner traffic that bypasses the tunnel. */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipsecif_linux.h"

extern char **environ;

#define TABLE "inet " IPSECIF_LINUX_FILTER_TABLE

/*
 * Sets: ifs and ifs_route hold the ipsecN names (two sets: nft types iifname
 * and a fib result differently), inner4 and inner6 the interfaces' own
 * addresses. Declared without their elements, so a daemon that starts again
 * keeps the elements of the devices it left; the chain is rebuilt.
 *
 * Rules, before conntrack (priority raw):
 * - To an inner address, arriving on neither an ipsec interface nor the
 *   interface that has the address (nor lo): cleartext from outside, drop.
 * - Strict reverse path, only where a tunnel is involved: a packet that came
 *   in through an ipsec interface, or whose source is routed into one, must
 *   have come in on the interface its source is routed to. Neighbour
 *   discovery is exempt (duplicate address detection has no source).
 */
static const char table_script[] =
    "table " TABLE " {\n"
    "  set ifs { type ifname; }\n"
    "  set ifs_route { typeof fib saddr oifname; }\n"
    "  set inner4 { type ipv4_addr; }\n"
    "  set inner6 { type ipv6_addr; }\n"
    "  chain prerouting { type filter hook prerouting priority raw; policy accept; }\n"
    "}\n"
    "flush chain " TABLE " prerouting\n"
    "table " TABLE " {\n"
    "  chain prerouting {\n"
    "    iif lo accept\n"
    "    ip daddr @inner4 iifname != @ifs fib daddr . iif type != local counter drop"
    " comment \"inner address from outside\"\n"
    "    ip6 daddr @inner6 iifname != @ifs fib daddr . iif type != local counter drop"
    " comment \"inner address from outside\"\n"
    "    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit,"
    " nd-neighbor-advert, nd-redirect } accept\n"
    "    iifname @ifs fib saddr . iif oif missing counter drop"
    " comment \"reverse path: into a tunnel\"\n"
    "    fib saddr oifname @ifs_route fib saddr . iif oif missing counter drop"
    " comment \"reverse path: from a tunnel\"\n"
    "  }\n"
    "}\n";

/* Run `nft -f -` on script; its messages go to the log. 0, or -1 with errno
 * (ENOENT: no nft in PATH). */
static int nft_run(const char *script)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t def;
    char *const argv[] = {"nft", "-f", "-", NULL};
    char out[512];
    size_t outn = 0;
    int in[2] = {-1, -1};
    int res[2] = {-1, -1};
    pid_t pid = -1;
    size_t len = strlen(script);
    size_t off = 0;
    int status;
    int rc;

    if (pipe2(in, O_CLOEXEC) < 0) {
        return -1;
    }
    if (pipe2(res, O_CLOEXEC) < 0) {
        rc = errno;
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, res[1], 1);
    posix_spawn_file_actions_adddup2(&fa, res[1], 2);
    posix_spawnattr_init(&attr);
    /* The daemon ignores SIGPIPE; nft gets the default. */
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawnp(&pid, "nft", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        pid = -1;
        goto out;
    }
    close(in[0]);
    close(res[1]);
    in[0] = -1;
    res[1] = -1;
    while (off < len) {
        ssize_t n = write(in[1], script + off, len - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        off += (size_t)n;
    }
    close(in[1]);
    in[1] = -1;
    for (;;) {
        ssize_t n = read(res[0], out + outn, sizeof(out) - 1 - outn);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        outn += (size_t)n;
        if (outn == sizeof(out) - 1) {
            char sink[256];

            /* Keep the start, drain the rest. */
            while (read(res[0], sink, sizeof(sink)) > 0) {
            }
            break;
        }
    }
    out[outn] = '\0';
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            rc = errno;
            goto out;
        }
    }
    rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = EIO;
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "nft failed: %s", outn > 0 ? out : "(no message)");
    }
out:
    if (in[0] >= 0) {
        close(in[0]);
    }
    if (in[1] >= 0) {
        close(in[1]);
    }
    if (res[0] >= 0) {
        close(res[0]);
    }
    if (res[1] >= 0) {
        close(res[1]);
    }
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int ipsecif_linux_nft_run(const char *script)
{
    return nft_run(script);
}

int ipsecif_linux_filter_install(void)
{
    if (nft_run(table_script) < 0) {
        if (errno == ENOENT) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR,
                               "nft (nftables) not found in PATH: cannot filter inner traffic "
                               "that bypasses the tunnels; install nftables");
            errno = ENOENT;
        }
        return -1;
    }
    return 0;
}

int ipsecif_linux_filter_remove(void)
{
    return nft_run("delete table " TABLE "\n");
}

int ipsecif_linux_filter_if(const char *name, bool add)
{
    char script[256];
    const char *verb = add ? "add" : "delete";
    size_t i;

    /* Interface names are ipsecN; refuse anything that would need quoting. */
    for (i = 0; name[i] != '\0'; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9'))) {
            errno = EINVAL;
            return -1;
        }
    }
    snprintf(script, sizeof(script),
             "%s element " TABLE " ifs { \"%s\" }\n%s element " TABLE " ifs_route { \"%s\" }\n",
             verb, name, verb, name);
    return nft_run(script);
}

int ipsecif_linux_filter_addr(const struct ipsecif_addr *addr, bool add)
{
    char a[INET6_ADDRSTRLEN];
    char script[256];
    bool v4 = addr->family == IPSECIF_AF_INET;

    if ((!v4 && addr->family != IPSECIF_AF_INET6) ||
        inet_ntop(v4 ? AF_INET : AF_INET6, addr->bytes, a, sizeof(a)) == NULL) {
        errno = EINVAL;
        return -1;
    }
    snprintf(script, sizeof(script), "%s element " TABLE " %s { %s }\n", add ? "add" : "delete",
             v4 ? "inner4" : "inner6", a);
    return nft_run(script);
}
