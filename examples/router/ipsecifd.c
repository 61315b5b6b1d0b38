/*
 * ipsecifd: a route-based IPsec router on Linux, built on libipsecif.
 *
 * One libipsecif context; each ipsecN interface is a TUN device of the same
 * name; ESP goes over raw sockets, ESP in UDP (link0) over UDP sockets; one
 * timerfd runs the lifetimes. ipsecifctl configures it over a UNIX-domain
 * SOCK_SEQPACKET socket, one request per connection: the command words
 * joined by '\n', for `setkey -c`/`-f` followed by a NUL and the script;
 * the reply is output messages, then "OK" or "ERR <text>".
 *
 * PF_KEY: key-management programs (ipsecifctl setkey, an IKE daemon, or
 * unmodified setkey(8) and racoon(8) through libipsecif_pfkey_preload.so)
 * connect to a second UNIX-domain socket (-k; by default the control
 * socket's path with ".pfkey" for ".sock"), SOCK_SEQPACKET: one
 * connection per client is one PF_KEY endpoint of the Linux dialect, one
 * message per packet, both ways; the endpoint is closed when the client
 * hangs up (ports/posix: ipsecif_posix_pfkey_open()). A request is only
 * peeked at, answered, and then consumed: so once the client's send queue
 * is empty (SIOCOUTQ 0) its reply is readable, which is what the preload
 * library waits for. Every datagram gets an answer (EMSGSIZE for one that
 * is not a whole header or is over 64 KiB). The preload library also
 * passes setsockopt(IP_IPSEC_POLICY / IPV6_IPSEC_POLICY) on as per-socket
 * policies, which `ipsecifctl setkey -DP` lists after the SPD.
 *
 * Fail closed: the TUN devices are persistent. When the daemon stops
 * (SIGTERM, a crash, kill -9) they stay, with their addresses and routes,
 * and the kernel drops what is routed into them: inner traffic never takes
 * a less specific route (a default route out of the outer link) in clear.
 * A daemon started again takes them over: `ifconfig ipsecN create`
 * attaches to the device of that name as it is (its addresses are listed
 * again; adding one that is there already is no error), then the tunnel,
 * flags and SAs are given again. To remove an interface for good, run
 * `ipsecifctl ifconfig ipsecN destroy` before stopping the daemon, or
 * `ip link delete ipsecN` after; -x removes them all when the daemon exits.
 *
 * -r: filter inner traffic that bypasses the tunnels, with the nftables
 * table `inet ipsecif` (needs nft; the daemon does not start without it):
 * packets to an ipsec interface's addresses arriving in clear on another
 * interface are dropped, and strict reverse-path filtering applies to
 * packets from or into the tunnels (see ipsecif_linux_filter_install()).
 * The table stays when the daemon exits, as the interfaces do, and is
 * deleted with -x; `nft delete table inet ipsecif` removes it by hand.
 *
 * -H: host traffic through the library's ipsec(4) engine (transport and
 * tunnel mode, the host's own and forwarded packets): policy routing sends
 * what the namespace sends or forwards into the TUN device ipsech0, the
 * daemon puts the fragments the kernel cut at ipsech0's MTU (1400) together
 * again, applies the outbound policy (ipsecif_host_output()) and sends the
 * result on a raw socket, cut for the path MTU when IPsec made it too big
 * (or, for a packet the host sent whole with DF or over IPv6, answered
 * with an ICMP "fragmentation needed" / "packet too big" written back to
 * ipsech0 so the host's path MTU drops); ESP and AH that no interface claims are
 * opened and, if the inbound policy allows, written to ipsech0. The
 * daemon's own sockets carry the mark 0x4950, which the rules send to the
 * main table. Cleartext that arrives goes through the nftables table
 * `inet ipsecif_host`, the inbound side of the SPD (host_nft.h), rebuilt
 * whenever the policies, per-socket policies or sysctls change (checked
 * after each round of the event loop). Fail closed: the device, the rules,
 * the routes (`default dev ipsech0` and a blackhole behind it) and the
 * table stay when the daemon stops, so host traffic stops rather than
 * leaving in clear; -x removes them all at exit (ipsecif_linux_host.h).
 *
 * A restarted -H daemon takes up where the last one stopped: the policies
 * that setkey or an IKE daemon added (not an interface's, which come with
 * the interface), and the sysctls that were changed, are kept in a state
 * file (-t; by default the control socket's path with ".state" for
 * ".sock"), written whole (temporary file, rename; mode 0600) whenever
 * they change: before a control request's reply, and before a PF_KEY
 * reply unless the last write was less than 50 ms ago (a burst is then
 * written once per 50 ms, the last change at most 50 ms after it, and at
 * SIGTERM). The new daemon loads it
 * before it reads a packet or rebuilds the table; SAs are never kept, so
 * until key management brings them again a require policy drops and
 * raises ACQUIRE. Per-socket policies are not restored (host_state.h
 * says why): restart the programs that set them. A state file that is
 * damaged, cut short, of another version or not the daemon's own (or
 * missing while ipsech0 was kept) is refused as a whole, kept as
 * STATE_FILE.bad, and the daemon starts with def_policy 0 for IPv4 and
 * IPv6: nothing passes until policies are loaded and def_policy is set
 * again. -F starts fresh on purpose (the file is removed, defaults
 * apply); -x removes the file with the device.
 *
 * -C: the crypto backend, ipsecmb (intel-ipsec-mb, the default when built
 * with it: the fastest on x86-64 Linux), openssl (OpenSSL 3 libcrypto, the
 * default otherwise when built with it) or mbedtls (Mbed TLS). All offer
 * the same algorithms and interoperate; the choice holds for the daemon's
 * lifetime.
 *
 * Offloads: the TUN devices take TCP super-packets from the kernel (TSO,
 * cut into segments here) and get coalesced TCP segments back (like GRO);
 * ESP in UDP of one size to one peer leaves as one UDP GSO send; outer
 * packets are read with recvmmsg() and sent with sendmmsg(). -O turns the
 * TUN offloads and UDP GSO off (plain one-packet TUN reads and writes), for
 * comparison and debugging. `ipsecifctl stats` shows the port's counters
 * after the library's.
 *
 * Batches: the packets of one wakeup's TUN reads (segments of super-packets
 * included) go to ipsecif_if_output_batch() as one vector, and each
 * recvmmsg() vector of outer packets to ipsecif_input_batch() or
 * ipsecif_input_esp_batch(), in vectors of up to -B N packets (default
 * IPSECIF_BATCH_MAX); -B 1 makes one library call per packet, for comparison.
 *
 * Threads: -j N moves packets on N threads (the main one included), each
 * with its own queue of every TUN device and its own share of the SPIs; the
 * context stays one, under one lock (ipsecif_linux_set_workers() has the
 * model). Not with -H.
 *
 * usage: ipsecifd [-f] [-S] [-x] [-r] [-H [-N] [-F] [-t STATE_FILE]] [-O] [-B N] [-j N]
 *                 [-s SOCKET] [-k PFKEY_SOCKET] [-p PIDFILE]
 *                 [-l err|warn|info|debug] [-c IFS,POLICIES,SAS]
 *                 [-C mbedtls|openssl|ipsecmb]
 */
#define _GNU_SOURCE

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif/pfkey.h"
#include "ipsecif_crypto_mbedtls.h"
#if IPSECIF_ROUTER_OPENSSL
#include "ipsecif_crypto_openssl.h"
#endif
#if IPSECIF_ROUTER_IPSECMB
#include "ipsecif_crypto_ipsecmb.h"
#endif
#include "host_nft.h"
#include "host_state.h"
#include "ipsecif_linux.h"
#include "ipsecif_linux_host.h"
#include "ipsecif_posix.h"
#include "router_app.h"
#include "router_cmd.h"

/* Largest request: command words plus a setkey script. */
#define REQ_MAX (128u * 1024u)

/* Addresses remembered per interface, for the listing. */
#define ADDRS_MAX 8

struct ifaddrs_slot {
    struct rtr_inner_addr a[ADDRS_MAX];
    size_t n;
};

/* PF_KEY clients connected at once (each is one library endpoint). */
#define PFKEY_CLIENTS 16

/* The state file is written at most once in this many ms; a change that
 * comes sooner after the last write waits for the rest (a burst of PF_KEY
 * messages, as setkey -f of hundreds of policies sends, is one write per
 * period instead of one per message). */
#define STATE_COALESCE_MS 50u

struct daemon {
    struct ipsecif_linux lx;
    struct ipsecif_ctx *ctx;
    void *mem;
    struct rtr_ctl ctl;
    struct ifaddrs_slot *addrs;       /* parallel to lx.tuns */
    struct ipsecif_posix_pfkey pfkey; /* the PF_KEY socket */
    bool remove_on_exit;              /* -x: interfaces (and the filter) go with the daemon */
    bool filter;                      /* -r: the nftables table is installed */
    bool host;                        /* -H: host traffic through ipsech0 */
    bool host_natt;                   /* -N: UDP 4500 for host SAs with NAT-T */
    uint8_t host_natt_fams[2];        /* the families whose socket -N holds */
    struct ipsecif_linux_host hostm;  /* its device, routes and rules */
    struct host_nft {
        bool synced;        /* the table matches gen and ports */
        uint32_t gen;       /* ipsecif_host_generation() it was built for */
        uint16_t ports[16]; /* NAT-T ports it was built for */
        size_t nports;
        uint64_t retry; /* after a failed nft run: not before this (ms) */
        char *text;     /* the script being built */
        size_t cap;
        char *applied; /* the script nft took last */
    } nft;
    struct host_state {
        char path[4096]; /* the state file (-t, or from the control socket's path) */
        bool fresh;      /* -F: start with an empty SPD and the default sysctls */
        int *defaults;   /* the sysctls of a fresh context */
        bool synced;     /* the file matches gen */
        uint32_t gen;    /* ipsecif_host_generation() it was written for */
        uint64_t retry;  /* after a failed write: not before this (ms) */
        uint64_t last;   /* when it was last written (ms), 0 = never */
        int tfd;         /* timerfd for a write that waits (STATE_COALESCE_MS) */
        bool armed;      /* tfd runs */
        bool loaded;     /* state_load() ran: the context holds what the file should */
        char *text;      /* the text being built */
        size_t cap;
        char *written; /* the text on disk */
    } st;
};

static struct daemon d;

/* ---- Port ---- */

static void km_event(void *user, const struct ipsecif_km_event *ev)
{
    char s[INET6_ADDRSTRLEN];
    char t[INET6_ADDRSTRLEN];
    static const char *const reasons[] = {"?", "bytes", "addtime", "usetime", "seqwrap"};

    (void)user;
    if (ev->type == IPSECIF_KM_ACQUIRE) {
        const struct ipsecif_policy *p = &ev->acquire.policy;
        uint32_t reqid = ev->acquire.req_index < p->nreq ? p->req[ev->acquire.req_index].reqid : 0;

        ipsecif_posix_logf(IPSECIF_LOG_INFO, "ACQUIRE: policy %u wants an SA %s -> %s reqid %u",
                           ev->acquire.policy_id, rtr_addr_str(&ev->acquire.src, s, sizeof(s)),
                           rtr_addr_str(&ev->acquire.dst, t, sizeof(t)), reqid);
    } else if (ev->type == IPSECIF_KM_EXPIRE) {
        const struct ipsecif_sa_params *p = &ev->expire.sa.params;

        ipsecif_posix_logf(
            IPSECIF_LOG_INFO, "EXPIRE (%s, %s): esp spi=%u(0x%08x) %s -> %s reqid %u",
            ev->expire.hard ? "hard" : "soft",
            reasons[ev->expire.reason < 5 ? ev->expire.reason : 0], p->spi, p->spi,
            rtr_addr_str(&p->src, s, sizeof(s)), rtr_addr_str(&p->dst, t, sizeof(t)), p->reqid);
    }
}

/* ---- PF_KEY socket (ports/posix) ---- */

static int state_sync(bool force);

static void pfkey_deliver(void *user, uint32_t ep, const uint8_t *msg, size_t len)
{
    (void)user;
    /* A reply leaves after the change it answers is in the state file (a
     * key-management program that saw SPDADD succeed finds the policy
     * again after a crash of the daemon), unless the file was written less
     * than STATE_COALESCE_MS ago: then it follows within that time. Only
     * reads the SPD; does nothing unless the generation moved. */
    (void)state_sync(false);
    ipsecif_posix_pfkey_deliver(&d.pfkey, ep, msg, len);
}

/* ---- Host mode (-H) ---- */

static void deliver_host(void *user, const struct ipsecif_buf *pkt,
                         const struct ipsecif_host_result *res)
{
    (void)user;
    (void)res;
    ipsecif_linux_host_deliver(&d.hostm, pkt);
}

static bool local_addr(void *user, const struct ipsecif_addr *a)
{
    (void)user;
    return ipsecif_linux_host_local_addr(&d.hostm, a);
}

/* The NAT-T ports in use, each once. */
static size_t natt_ports(uint16_t *out, size_t cap)
{
    size_t n = 0;
    size_t i;
    size_t k;

    for (i = 0; i < d.lx.ntuns && n < cap; i++) {
        const struct ipsecif_linux_tun *t = &d.lx.tuns[i];

        if (t->ifp == NULL || t->natt_family == 0) {
            continue;
        }
        for (k = 0; k < n && out[k] != t->natt_port; k++) {
        }
        if (k == n) {
            out[n++] = t->natt_port;
        }
    }
    if ((d.host_natt_fams[0] != 0 || d.host_natt_fams[1] != 0) && n < cap) {
        for (k = 0; k < n && out[k] != IPSECIF_NATT_PORT; k++) {
        }
        if (k == n) {
            out[n++] = IPSECIF_NATT_PORT;
        }
    }
    return n;
}

/* -N: the NAT-T port for host SAs (RFC 3948), both families, shared with
 * link0 interfaces; an IKE daemon that wants the port itself runs without -N. */
static void host_natt_open(void)
{
    static const uint8_t fams[2] = {IPSECIF_AF_INET, IPSECIF_AF_INET6};
    int i;

    for (i = 0; i < 2; i++) {
        if (ipsecif_posix_outer_natt_ref(&d.lx.outer, fams[i], IPSECIF_NATT_PORT) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN, "-N: UDP %u (IPv%u): %s", IPSECIF_NATT_PORT,
                               (unsigned)fams[i], strerror(errno));
            continue;
        }
        d.host_natt_fams[i] = fams[i];
    }
}

static void host_natt_close(void)
{
    int i;

    for (i = 0; i < 2; i++) {
        if (d.host_natt_fams[i] != 0) {
            ipsecif_posix_outer_natt_unref(&d.lx.outer, d.host_natt_fams[i], IPSECIF_NATT_PORT);
            d.host_natt_fams[i] = 0;
        }
    }
}

/*
 * Bring the table inet ipsecif_host up to date when what it mirrors
 * changed: policies, per-socket policies or sysctls (the library's
 * generation), or the NAT-T ports. nft runs only when the text differs.
 * 0, or -1 when nft failed (tried again a second later).
 */
static int host_nft_sync(void)
{
    struct host_nft *h = &d.nft;
    struct rtr_hostnft_opts opts;
    uint16_t ports[16];
    size_t nports;
    uint32_t gen;
    long len;

    if (!d.host || d.ctx == NULL) {
        return 0;
    }
    gen = ipsecif_host_generation(d.ctx);
    nports = natt_ports(ports, sizeof(ports) / sizeof(ports[0]));
    if (h->synced && gen == h->gen && nports == h->nports &&
        memcmp(ports, h->ports, nports * sizeof(ports[0])) == 0) {
        return 0;
    }
    if (h->retry != 0 && ipsecif_posix_now_ms() < h->retry) {
        return -1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.dev = IPSECIF_LINUX_HOST_DEV;
    opts.natt_ports = ports;
    opts.n_natt = nports;
    len = rtr_hostnft_build(d.ctx, &opts, h->text, h->cap);
    if (len >= 0 && (size_t)len >= h->cap) {
        char *bigger = realloc(h->text, (size_t)len + 1);

        if (bigger == NULL) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: table %s: out of memory", RTR_HOSTNFT_TABLE);
            h->retry = ipsecif_posix_now_ms() + 1000;
            return -1;
        }
        h->text = bigger;
        h->cap = (size_t)len + 1;
        len = rtr_hostnft_build(d.ctx, &opts, h->text, h->cap);
    }
    if (len < 0 || (size_t)len >= h->cap) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: table %s could not be built", RTR_HOSTNFT_TABLE);
        h->retry = ipsecif_posix_now_ms() + 1000;
        return -1;
    }
    if (h->applied == NULL || strcmp(h->applied, h->text) != 0) {
        char *copy;

        if (ipsecif_linux_nft_run(h->text) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: table inet %s: %s", RTR_HOSTNFT_TABLE,
                               errno == ENOENT ? "nft (nftables) not found in PATH"
                                               : strerror(errno));
            h->retry = ipsecif_posix_now_ms() + 1000;
            return -1;
        }
        copy = strdup(h->text);
        free(h->applied);
        h->applied = copy; /* NULL: compared as changed next time */
        ipsecif_posix_logf(IPSECIF_LOG_INFO, "host: table inet %s updated (generation %u)",
                           RTR_HOSTNFT_TABLE, gen);
    }
    h->synced = true;
    h->gen = gen;
    h->nports = nports;
    memcpy(h->ports, ports, nports * sizeof(ports[0]));
    h->retry = 0;
    return 0;
}

/* Run tfd once, at in_ms from now (1 at least). */
static void state_arm(uint64_t in_ms)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (in_ms == 0) {
        in_ms = 1;
    }
    its.it_value.tv_sec = (time_t)(in_ms / 1000u);
    its.it_value.tv_nsec = (long)(in_ms % 1000u) * 1000000L;
    if (d.st.tfd >= 0 && timerfd_settime(d.st.tfd, 0, &its, NULL) == 0) {
        d.st.armed = true;
    }
}

/*
 * Bring the state file up to date (host_state.h): after the library's
 * generation changed, or always when force (a control request may have set
 * a sysctl that is not counted in the generation). The file is written
 * only when its text changed. Without force, a change within
 * STATE_COALESCE_MS of the last write (or a second of a failed one) waits
 * for the timer. 0 (written, unchanged, or waiting), or -1 when it could
 * not be written.
 */
static int state_sync(bool force)
{
    struct host_state *st = &d.st;
    uint64_t now = ipsecif_posix_now_ms();
    uint32_t gen;
    long len;

    if (!d.host || d.ctx == NULL || st->defaults == NULL) {
        return 0;
    }
    gen = ipsecif_host_generation(d.ctx);
    if (!force && st->synced && gen == st->gen) {
        return 0;
    }
    if (!force && st->retry != 0 && now < st->retry) {
        if (!st->armed) {
            state_arm(st->retry - now);
        }
        return -1;
    }
    if (!force && st->last != 0 && now - st->last < STATE_COALESCE_MS) {
        if (!st->armed) {
            state_arm(STATE_COALESCE_MS - (now - st->last));
        }
        return 0;
    }
    len = rtr_state_build(d.ctx, st->defaults, st->text, st->cap);
    if (len >= 0 && (size_t)len >= st->cap) {
        char *bigger = realloc(st->text, (size_t)len + 1);

        if (bigger == NULL) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: state file %s: out of memory", st->path);
            st->retry = ipsecif_posix_now_ms() + 1000;
            return -1;
        }
        st->text = bigger;
        st->cap = (size_t)len + 1;
        len = rtr_state_build(d.ctx, st->defaults, st->text, st->cap);
    }
    if (len < 0 || (size_t)len >= st->cap) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: state file %s could not be built", st->path);
        st->retry = ipsecif_posix_now_ms() + 1000;
        return -1;
    }
    if (st->written == NULL || strcmp(st->written, st->text) != 0) {
        char *copy;

        if (rtr_state_write_file(st->path, st->text, (size_t)len) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: state file %s: %s", st->path,
                               strerror(errno));
            st->retry = ipsecif_posix_now_ms() + 1000;
            return -1;
        }
        copy = strdup(st->text);
        free(st->written);
        st->written = copy; /* NULL: compared as changed next time */
        st->last = now != 0 ? now : 1;
        ipsecif_posix_logf(IPSECIF_LOG_DEBUG, "host: state file %s written (generation %u)",
                           st->path, gen);
    }
    st->synced = true;
    st->gen = gen;
    st->retry = 0;
    return 0;
}

/* The timer of a write that waited. */
static void on_state_timer(void *arg, int fd, short revents)
{
    uint64_t n;

    (void)arg;
    (void)revents;
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        return;
    }
    d.st.armed = false;
    (void)state_sync(false);
}

/*
 * A state file that cannot be taken whole: keep it as PATH.bad for a look,
 * and start with def_policy 0 for both families and net.inet.ipsec.enabled
 * 2 (IPsec used with no policy yet: with used 0 def_policy would not be
 * asked), so nothing passes in clear (nor at all) until policies are loaded
 * and def_policy is set again. The new state file then keeps both across
 * further restarts.
 */
static void state_fail_closed(const char *why)
{
    static const int keys[] = {IPSECIF_SYSCTL_DEF_POLICY, IPSECIF_SYSCTL6_DEF_POLICY};
    char bad[sizeof(d.st.path) + 8];
    size_t i;

    ipsecif_posix_logf(IPSECIF_LOG_ERR,
                       "host: state file %s: %s; starting fail closed: def_policy 0 (discard) "
                       "for IPv4 and IPv6 and net.inet.ipsec.enabled 2 until policies are "
                       "loaded and def_policy is set again (-F starts with the defaults instead)",
                       d.st.path, why);
    if (snprintf(bad, sizeof(bad), "%s.bad", d.st.path) < (int)sizeof(bad) &&
        rename(d.st.path, bad) == 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: the refused state file is kept as %s", bad);
    }
    (void)ipsecif_sysctl_set(d.ctx, IPSECIF_SYSCTL_ENABLED, IPSECIF_IPSEC_ALWAYS);
    for (i = 0; i < 2; i++) {
        (void)ipsecif_sysctl_set(d.ctx, keys[i], IPSECIF_ACTION_DISCARD);
    }
}

/*
 * Take up the state of the daemon that ran before (called after the device
 * is ours and before the loop reads a packet or the table is rebuilt).
 */
static void state_load(size_t max_pols)
{
    struct rtr_state st;
    char err[RTR_STATE_ERR_SIZE];
    char *text = NULL;
    size_t len = 0;
    size_t max = (max_pols + rtr_sysctl_count() + 8) * RTR_STATE_LINE_MAX;
    int rc;

    if (d.st.fresh) {
        if (unlink(d.st.path) == 0) {
            ipsecif_posix_logf(IPSECIF_LOG_INFO, "host: -F: state file %s removed", d.st.path);
        }
        ipsecif_posix_logf(IPSECIF_LOG_INFO,
                           "host: -F: starting with no policies and the default sysctls");
        return;
    }
    rc = rtr_state_read_file(d.st.path, max, &text, &len, err);
    if (rc == 0) {
        if (d.hostm.adopted) {
            state_fail_closed(IPSECIF_LINUX_HOST_DEV
                              " was kept by an earlier run, but its state file is missing");
        } else {
            ipsecif_posix_logf(IPSECIF_LOG_INFO, "host: no state file %s: a fresh start",
                               d.st.path);
        }
        return;
    }
    if (rc < 0) {
        state_fail_closed(err);
        return;
    }
    memset(&st, 0, sizeof(st));
    if (rtr_state_parse(text, len, max_pols, &st, err) < 0 ||
        rtr_state_apply(d.ctx, &st, ipsecif_posix_now_ms(), err) < 0) {
        state_fail_closed(err);
    } else {
        ipsecif_posix_logf(IPSECIF_LOG_INFO,
                           "host: state file %s: %lu policies and %lu sysctls restored "
                           "(SAs are not kept: they come again from key management)",
                           d.st.path, (unsigned long)st.npols, (unsigned long)st.nsysctls);
        if (st.sockets > 0) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN,
                               "host: %lu sockets had per-socket policies, which are not "
                               "restored (a socket cannot be known again after a restart): "
                               "restart the programs that set them (racoon)",
                               (unsigned long)st.sockets);
        }
    }
    rtr_state_free(&st);
    free(text);
}

/* After each round of the event loop: control requests, PF_KEY messages
 * and the timer are what change the policy. */
static void on_round(void *arg)
{
    (void)arg;
    (void)state_sync(false);
    (void)host_nft_sync();
}

static void host_stop(void)
{
    bool owned = d.hostm.fd >= 0; /* else another daemon's, or never made */

    if (!d.host) {
        return;
    }
    /* A write that waited for the timer is done now. */
    if (owned && d.st.loaded && !d.remove_on_exit) {
        (void)state_sync(true);
    }
    host_natt_close();
    ipsecif_linux_host_close(&d.hostm, d.remove_on_exit);
    if (owned && d.remove_on_exit && ipsecif_linux_nft_run(rtr_hostnft_remove_script()) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: deleting table inet %s: %s", RTR_HOSTNFT_TABLE,
                           strerror(errno));
    }
    if (owned && d.remove_on_exit) {
        if (unlink(d.st.path) < 0 && errno != ENOENT) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "host: state file %s: %s", d.st.path,
                               strerror(errno));
        } else {
            ipsecif_posix_logf(IPSECIF_LOG_INFO, "host: state file %s removed", d.st.path);
        }
    }
    free(d.nft.text);
    free(d.nft.applied);
    memset(&d.nft, 0, sizeof(d.nft));
    if (d.st.tfd >= 0) {
        ipsecif_posix_loop_del(&d.lx.loop, d.st.tfd);
        close(d.st.tfd);
        d.st.tfd = -1;
    }
    free(d.st.defaults);
    free(d.st.text);
    free(d.st.written);
    d.st.defaults = NULL;
    d.st.text = NULL;
    d.st.written = NULL;
    d.host = false;
}

/* The crypto backend and its random source are chosen with -C before init. */
static struct ipsecif_port port = {
    .send_outer = ipsecif_linux_send_outer,
    .deliver_inner = ipsecif_linux_deliver_inner,
    .deliver_icmp = ipsecif_linux_deliver_icmp,
    .log = ipsecif_posix_port_log,
    .km_event = km_event,
    .pfkey_deliver = pfkey_deliver,
};

struct crypto_choice {
    const char *name;
    const struct ipsecif_crypto_ops *ops;
    int (*random)(void *user, uint8_t *out, size_t len);
};

/* The first is the default. */
static const struct crypto_choice crypto_choices[] = {
#if IPSECIF_ROUTER_IPSECMB
    {"ipsecmb", &ipsecif_crypto_ipsecmb_ops, ipsecif_crypto_ipsecmb_random},
#endif
#if IPSECIF_ROUTER_OPENSSL
    {"openssl", &ipsecif_crypto_openssl_ops, ipsecif_crypto_openssl_random},
#endif
    {"mbedtls", &ipsecif_crypto_mbedtls_ops, ipsecif_crypto_mbedtls_random},
};

static const struct crypto_choice *crypto_find(const char *name)
{
    for (size_t i = 0; i < sizeof(crypto_choices) / sizeof(crypto_choices[0]); i++) {
        if (strcmp(crypto_choices[i].name, name) == 0) {
            return &crypto_choices[i];
        }
    }
    return NULL;
}

/* ---- ifconfig ---- */

static struct ifaddrs_slot *addrs_of(struct ipsecif_linux_tun *t)
{
    return &d.addrs[t - d.lx.tuns];
}

struct list_arg {
    struct rtr_out *o;
};

static void print_if(struct rtr_out *o, struct ipsecif_if *ifp)
{
    struct ipsecif_if_info info;
    struct ipsecif_linux_tun *t = ipsecif_linux_tun_of(ifp);
    const struct ifaddrs_slot *a = t != NULL ? addrs_of(t) : NULL;

    if (ipsecif_if_get_info(d.ctx, ifp, &info) == IPSECIF_OK) {
        rtr_print_if(o, &info, a != NULL ? a->a : NULL, a != NULL ? a->n : 0);
    }
}

static int list_cb(void *arg, struct ipsecif_if *ifp)
{
    struct list_arg *l = arg;

    print_if(l->o, ifp);
    return 0;
}

static bool addr_eq(const struct rtr_inner_addr *x, const struct rtr_inner_addr *y)
{
    size_t alen = x->addr.family == IPSECIF_AF_INET ? 4 : 16;

    return x->addr.family == y->addr.family && x->plen == y->plen &&
           memcmp(x->addr.bytes, y->addr.bytes, alen) == 0 && x->peer.family == y->peer.family &&
           (x->peer.family == 0 || memcmp(x->peer.bytes, y->peer.bytes, alen) == 0);
}

/* Remember an address of the interface (once) for the listing; the last
 * one is the source of the ICMP errors the interface builds. */
static void remember_addr(struct ipsecif_if *ifp, const struct rtr_inner_addr *a)
{
    struct ifaddrs_slot *slot = addrs_of(ipsecif_linux_tun_of(ifp));
    size_t i;

    ipsecif_if_set_local(d.ctx, ifp, &a->addr);
    for (i = 0; i < slot->n; i++) {
        if (addr_eq(&slot->a[i], a)) {
            return;
        }
    }
    if (slot->n < ADDRS_MAX) {
        slot->a[slot->n++] = *a;
    }
}

struct adopt_arg {
    struct ipsecif_if *ifp;
    int failed; /* filter updates that failed */
};

/* An address of a device kept from an earlier run. */
static void adopt_addr(void *arg, const struct ipsecif_addr *addr, unsigned plen,
                       const struct ipsecif_addr *peer)
{
    struct adopt_arg *x = arg;
    struct rtr_inner_addr a;

    memset(&a, 0, sizeof(a));
    a.addr = *addr;
    a.plen = (uint8_t)plen;
    if (peer != NULL) {
        a.peer = *peer;
    }
    if (d.filter && ipsecif_linux_filter_addr(addr, true) < 0) {
        x->failed++;
    }
    remember_addr(x->ifp, &a);
}

static int if_create(struct rtr_out *o, const char *name, struct ipsecif_if **ifp)
{
    struct ipsecif_linux_tun *t;
    int rc = ipsecif_if_create(d.ctx, name, ifp);
    int e;

    if (rc != IPSECIF_OK) {
        return rtr_fail(o, "%s: create: %s", name,
                        rc == IPSECIF_ERR_EXIST ? "interface exists" : ipsecif_strerror(rc));
    }
    t = ipsecif_linux_tun_open(&d.lx, *ifp);
    if (t == NULL) {
        e = errno;
        ipsecif_if_destroy(d.ctx, *ifp);
        *ifp = NULL;
        return rtr_fail(o, "%s: create: TUN device: %s", name,
                        e == EBUSY ? "in use by another process" : strerror(e));
    }
    addrs_of(t)->n = 0;
    if (d.filter && ipsecif_linux_filter_if(name, true) < 0) {
        e = errno;
        ipsecif_linux_tun_close(&d.lx, t, !t->adopted);
        ipsecif_if_destroy(d.ctx, *ifp);
        *ifp = NULL;
        return rtr_fail(o, "%s: create: filter: %s", name, strerror(e));
    }
    if (t->adopted) {
        struct adopt_arg x = {*ifp, 0};

        if (ipsecif_linux_addr_walk(t, adopt_addr, &x) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_WARN, "%s: reading its addresses: %s", name,
                               strerror(errno));
        }
        if (x.failed > 0) {
            /* Refuse rather than run with addresses the filter misses; the
             * device stays as it was, dropping. */
            ipsecif_linux_tun_close(&d.lx, t, false);
            ipsecif_if_destroy(d.ctx, *ifp);
            *ifp = NULL;
            return rtr_fail(o, "%s: create: filter: %d addresses could not be added", name,
                            x.failed);
        }
        ipsecif_posix_logf(IPSECIF_LOG_INFO,
                           "%s: created on the existing device (%zu addresses kept)", name,
                           addrs_of(t)->n);
        return 0;
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "%s: created", name);
    return 0;
}

/* remove: the TUN device goes too (destroy); otherwise it stays, dropping
 * what is routed into it, for the next daemon (shutdown). */
static void if_destroy(struct ipsecif_if *ifp, bool remove)
{
    struct ipsecif_linux_tun *t = ipsecif_linux_tun_of(ifp);
    char name[IPSECIF_IFNAME_SIZE];

    snprintf(name, sizeof(name), "%s", ipsecif_if_name(ifp));
    if (t != NULL) {
        struct ifaddrs_slot *slot = addrs_of(t);
        size_t i;

        if (remove && d.filter) {
            for (i = 0; i < slot->n; i++) {
                (void)ipsecif_linux_filter_addr(&slot->a[i].addr, false);
            }
            (void)ipsecif_linux_filter_if(name, false);
        }
        slot->n = 0;
        ipsecif_linux_tun_close(&d.lx, t, remove);
    }
    ipsecif_if_destroy(d.ctx, ifp);
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "%s: %s", name,
                       remove ? "destroyed" : "closed; the device stays (fail closed)");
}

static const char *tunnel_err(int rc)
{
    switch (rc) {
    case IPSECIF_ERR_EXIST:
        return "another interface has this tunnel, or one of its policies exists";
    case IPSECIF_ERR_ARG:
        return "both addresses must be of one family and not unspecified";
    case IPSECIF_ERR_FULL:
        return "no room for the tunnel's policies";
    default:
        return ipsecif_strerror(rc);
    }
}

static int set_flag(struct rtr_out *o, struct ipsecif_if *ifp, uint32_t bit, bool on)
{
    const char *name = ipsecif_if_name(ifp);
    uint32_t f = ipsecif_if_get_flags(ifp);
    struct ipsecif_linux_tun *t = ipsecif_linux_tun_of(ifp);
    int rc;

    f = on ? (f | bit) : (f & ~bit);
    rc = ipsecif_if_set_flags(d.ctx, ifp, f, ipsecif_posix_now_ms());
    if (rc != IPSECIF_OK) {
        return rtr_fail(o, "%s: flags: %s", name, tunnel_err(rc));
    }
    /*
     * down stops the interface, not the kernel device: Linux would take the
     * device's routes away and send what they carried in clear by a less
     * specific route. The device stays up and the interface drops (and
     * counts) what is routed into it, as NetBSD's down interface refuses it.
     */
    if (bit == IPSECIF_IFF_UP && on && ipsecif_linux_tun_set_up(t, true) < 0) {
        return rtr_fail(o, "%s: up: %s", name, strerror(errno));
    }
    if (bit == IPSECIF_IFF_LINK0 && ipsecif_linux_sync_natt(&d.lx, t) < 0) {
        return rtr_fail(o, "%s: NAT-T socket: %s", name, strerror(errno));
    }
    return 0;
}

static int add_addr(struct rtr_out *o, struct ipsecif_if *ifp, uint8_t family, int argc,
                    char *const argv[], int *i)
{
    struct ipsecif_linux_tun *t = ipsecif_linux_tun_of(ifp);
    struct ifaddrs_slot *slot = addrs_of(t);
    const char *name = ipsecif_if_name(ifp);
    const char *word = family == IPSECIF_AF_INET ? "inet" : "inet6";
    struct rtr_inner_addr a;
    unsigned plen;
    size_t k;

    memset(&a, 0, sizeof(a));
    if (*i + 1 >= argc || rtr_parse_prefix(argv[*i + 1], &a.addr, &plen) < 0 ||
        a.addr.family != family) {
        return rtr_fail(o, "%s: %s: needs an %s address ADDR/PLEN", name, word,
                        family == IPSECIF_AF_INET ? "IPv4" : "IPv6");
    }
    (*i)++;
    a.plen = (uint8_t)plen;
    if (family == IPSECIF_AF_INET && *i + 1 < argc && rtr_parse_addr(argv[*i + 1], &a.peer) == 0) {
        if (a.peer.family != IPSECIF_AF_INET) {
            return rtr_fail(o, "%s: inet: the peer must be IPv4", name);
        }
        (*i)++;
    }
    for (k = 0; k < slot->n && !addr_eq(&slot->a[k], &a); k++) {
    }
    if (k == ADDRS_MAX) {
        return rtr_fail(o, "%s: %s: at most %d addresses", name, word, ADDRS_MAX);
    }
    /* Filter first: the address is never reachable in clear, not even briefly. */
    if (d.filter && ipsecif_linux_filter_addr(&a.addr, true) < 0) {
        return rtr_fail(o, "%s: %s: filter: %s", name, word, strerror(errno));
    }
    if (ipsecif_linux_addr_add(t, &a.addr, plen, a.peer.family != 0 ? &a.peer : NULL) < 0) {
        return rtr_fail(o, "%s: %s: %s", name, word, strerror(errno));
    }
    remember_addr(ifp, &a);
    return 0;
}

static int ifconfig_words(struct rtr_out *o, const char *name, int argc, char *const argv[])
{
    struct ipsecif_if *ifp = ipsecif_if_find(d.ctx, name);
    int i;

    for (i = 2; i < argc && !o->failed; i++) {
        const char *w = argv[i];
        bool neg = w[0] == '-';
        int rc;

        if (strcmp(w, "create") == 0) {
            if (ifp != NULL) {
                return rtr_fail(o, "%s: create: interface exists", name);
            }
            if (if_create(o, name, &ifp) < 0) {
                return -1;
            }
            continue;
        }
        if (ifp == NULL) {
            return rtr_fail(o, "%s: no such interface", name);
        }
        if (strcmp(w, "destroy") == 0) {
            if_destroy(ifp, true);
            ifp = NULL;
        } else if (strcmp(w, "tunnel") == 0) {
            struct ipsecif_addr src;
            struct ipsecif_addr dst;
            uint16_t sport;
            uint16_t dport;

            if (i + 2 >= argc || rtr_parse_addr_port(argv[i + 1], &src, &sport) < 0 ||
                rtr_parse_addr_port(argv[i + 2], &dst, &dport) < 0) {
                return rtr_fail(o, "%s: tunnel: needs SRC DST (ADDR or ADDR[PORT])", name);
            }
            i += 2;
            rc =
                ipsecif_if_set_tunnel(d.ctx, ifp, &src, sport, &dst, dport, ipsecif_posix_now_ms());
            if (rc != IPSECIF_OK) {
                return rtr_fail(o, "%s: tunnel: %s", name, tunnel_err(rc));
            }
            if (ipsecif_linux_sync_natt(&d.lx, ipsecif_linux_tun_of(ifp)) < 0) {
                return rtr_fail(o, "%s: NAT-T socket: %s", name, strerror(errno));
            }
        } else if (strcmp(w, "deletetunnel") == 0) {
            rc = ipsecif_if_delete_tunnel(d.ctx, ifp);
            if (rc != IPSECIF_OK) {
                return rtr_fail(o, "%s: deletetunnel: %s", name,
                                rc == IPSECIF_ERR_NOENT ? "no tunnel is set"
                                                        : ipsecif_strerror(rc));
            }
            ipsecif_linux_sync_natt(&d.lx, ipsecif_linux_tun_of(ifp));
        } else if (strcmp(w, "inet") == 0 || strcmp(w, "inet6") == 0) {
            if (add_addr(o, ifp, w[4] == '6' ? IPSECIF_AF_INET6 : IPSECIF_AF_INET, argc, argv, &i) <
                0) {
                return -1;
            }
        } else if (strcmp(w, "mtu") == 0) {
            char *end;
            unsigned long mtu;

            if (i + 1 >= argc) {
                return rtr_fail(o, "%s: mtu: needs a number", name);
            }
            errno = 0;
            mtu = strtoul(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || argv[i][0] < '0' || argv[i][0] > '9' ||
                mtu > UINT32_MAX || ipsecif_if_set_mtu(d.ctx, ifp, (uint32_t)mtu) != IPSECIF_OK) {
                return rtr_fail(o, "%s: mtu: must be %u..%u", name, IPSECIF_MTU_MIN,
                                IPSECIF_MTU_MAX);
            }
            if (ipsecif_linux_tun_set_mtu(ipsecif_linux_tun_of(ifp), (unsigned)mtu) < 0) {
                return rtr_fail(o, "%s: mtu: %s", name, strerror(errno));
            }
        } else if (strcmp(w, "up") == 0 || strcmp(w, "down") == 0) {
            if (set_flag(o, ifp, IPSECIF_IFF_UP, w[0] == 'u') < 0) {
                return -1;
            }
        } else if (strcmp(w + neg, "link0") == 0 || strcmp(w + neg, "link1") == 0 ||
                   strcmp(w + neg, "link2") == 0) {
            static const uint32_t bits[] = {IPSECIF_IFF_LINK0, IPSECIF_IFF_LINK1,
                                            IPSECIF_IFF_LINK2};

            if (set_flag(o, ifp, bits[w[neg + 4] - '0'], !neg) < 0) {
                return -1;
            }
        } else {
            return rtr_fail(o, "%s: unknown word '%s'", name, w);
        }
    }
    return o->failed ? -1 : 0;
}

static int do_ifconfig(struct rtr_out *o, int argc, char *const argv[])
{
    struct list_arg l = {o};
    struct ipsecif_if *ifp;

    if (argc == 1 || (argc == 2 && strcmp(argv[1], "-a") == 0)) {
        ipsecif_if_walk(d.ctx, list_cb, &l);
        return 0;
    }
    if (argc == 2) {
        ifp = ipsecif_if_find(d.ctx, argv[1]);
        if (ifp == NULL) {
            return rtr_fail(o, "%s: no such interface", argv[1]);
        }
        print_if(o, ifp);
        return 0;
    }
    return ifconfig_words(o, argv[1], argc, argv);
}

/* ---- Control requests ---- */

/* `stats` under -H: host mode's own counters after the library's. */
static void host_stats(struct rtr_out *o)
{
    const struct ipsecif_linux_host_stats *s = &d.hostm.stats;
    const struct ipsecif_reass_stats *r = ipsecif_linux_host_reass_stats(&d.hostm);
    const struct {
        uint64_t v;
        const char *text;
    } lines[] = {
        {s->rx_packets, "host packets read from " IPSECIF_LINUX_HOST_DEV},
        {s->rx_dropped, "host packets read and dropped"},
        {s->tx_packets, "host packets written to " IPSECIF_LINUX_HOST_DEV},
        {s->tx_errors, "host packets failed to write"},
        {s->frag_in, "host fragments read"},
        {s->reassembled, "host datagrams reassembled"},
        {s->frag_dropped, "host fragments dropped"},
        {r != NULL ? r->malformed : 0, "host fragments malformed"},
        {r != NULL ? r->tiny : 0, "host fragments too small for the upper-layer header"},
        {r != NULL ? r->toobig : 0, "host fragments past 65535 bytes"},
        {r != NULL ? r->duplicate : 0, "host fragments duplicated"},
        {r != NULL ? r->overlap : 0, "host datagrams dropped for overlapping fragments"},
        {r != NULL ? r->inconsistent : 0, "host datagrams dropped for inconsistent fragments"},
        {r != NULL ? r->toomany + r->nomem + r->evicted : 0,
         "host datagrams dropped for lack of reassembly room"},
        {r != NULL ? r->timeout : 0, "host datagrams timed out in reassembly"},
        {s->out_fragmented, "host packets fragmented after IPsec"},
        {s->out_fragments, "host fragments sent"},
        {s->out_toobig, "host packets too big after IPsec (ICMP error written back)"},
        {s->out_frag_errors, "host packets too big and not fragmented"},
        {s->pmtu_lookups, "host path MTU lookups"},
        {s->pmtu_emsgsize, "host sends refused as too big (EMSGSIZE)"},
    };
    size_t i;

    for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        rtr_printf(o, "        %llu %s\n", (unsigned long long)lines[i].v, lines[i].text);
    }
}

static void out_write(void *arg, const char *s, size_t n)
{
    rtr_ctl_write(arg, s, n);
}

static void log_request(const struct rtr_request *r)
{
    char line[512];
    size_t n = 0;
    int i;

    /* Only the words: a setkey script carries keys and is never logged. */
    line[0] = '\0';
    for (i = 0; i < r->argc && n < sizeof(line) - 1; i++) {
        int k = snprintf(line + n, sizeof(line) - n, "%s%s", i > 0 ? " " : "", r->argv[i]);

        if (k < 0) {
            break;
        }
        n += (size_t)k;
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "request: %s%s", line,
                       r->has_script ? " (script not shown)" : "");
}

/* The port's counters (TUN offloads, outer socket batches), summed over the devices. */
static void port_stats(struct rtr_out *o)
{
    struct ipsecif_posix_outer_stats osum;
    const struct ipsecif_posix_outer_stats *os = &osum;
    struct ipsecif_linux_tun_stats ts;
    struct ipsecif_linux_gro_stats gs;
    uint64_t rx_err = 0;
    uint64_t tx_err = 0;
    size_t i, k;

    memset(&ts, 0, sizeof(ts));
    memset(&gs, 0, sizeof(gs));
    memset(&osum, 0, sizeof(osum));
    ipsecif_posix_outer_stats_add(&osum, &d.lx.outer.stats);
    /* Every thread's queues and sockets (workers count without the lock:
     * a figure may be a burst behind). */
    for (k = 0; k < d.lx.nworkers; k++) {
        const struct ipsecif_linux_tun *tuns = k == 0 ? d.lx.tuns : d.lx.workers[k - 1].tuns;

        if (k > 0) {
            ipsecif_posix_outer_stats_add(&osum, &d.lx.workers[k - 1].outer.stats);
        }
        for (i = 0; i < d.lx.ntuns; i++) {
            const struct ipsecif_linux_tun *t = &tuns[i];

            if (t->ifp == NULL) {
                continue;
            }
            ipsecif_linux_tun_stats_add(&ts, &t->stats);
            gs.merged += IPSECIF_POSIX_READ(t->gro.stats.merged);
            gs.segments += IPSECIF_POSIX_READ(t->gro.stats.segments);
            gs.single += IPSECIF_POSIX_READ(t->gro.stats.single);
            gs.bad_csum += IPSECIF_POSIX_READ(t->gro.stats.bad_csum);
            rx_err += IPSECIF_POSIX_READ(t->rx_errors);
            tx_err += IPSECIF_POSIX_READ(t->tx_errors);
        }
    }
    rtr_printf(o, "port:\n");
    rtr_printf(o, "        %llu tun_gso_in TCP super-packets read from the TUN devices\n",
               (unsigned long long)ts.gso_in);
    rtr_printf(o, "        %llu tun_segments segments cut from them\n",
               (unsigned long long)ts.segments);
    rtr_printf(o, "        %llu tun_csum partial checksums completed\n",
               (unsigned long long)ts.csum);
    rtr_printf(o, "        %llu tun_gso_drop packets with a bad virtio header or length dropped\n",
               (unsigned long long)ts.gso_drop);
    rtr_printf(o, "        %llu tun_gso_toobig segments over the MTU dropped\n",
               (unsigned long long)ts.gso_toobig);
    rtr_printf(o, "        %llu tun_out_calls library output calls for what was read\n",
               (unsigned long long)ts.out_calls);
    rtr_printf(o, "        %llu icmp4_sent IPv4 ICMP errors sent to their senders\n",
               (unsigned long long)ts.icmp_sent);
    rtr_printf(o, "        %llu icmp4_send_errors IPv4 ICMP errors that could not be sent\n",
               (unsigned long long)ts.icmp_send_errors);
    rtr_printf(o, "        %llu tun_gro_out coalesced super-packets written\n",
               (unsigned long long)gs.merged);
    rtr_printf(o, "        %llu tun_gro_segs segments coalesced into them\n",
               (unsigned long long)gs.segments);
    rtr_printf(o, "        %llu tun_gro_single packets written alone\n",
               (unsigned long long)gs.single);
    rtr_printf(o, "        %llu tun_gro_badcsum TCP segments with a bad checksum\n",
               (unsigned long long)gs.bad_csum);
    rtr_printf(o, "        %llu tun_rx_errors TUN read errors\n", (unsigned long long)rx_err);
    rtr_printf(o, "        %llu tun_tx_errors TUN write errors\n", (unsigned long long)tx_err);
    rtr_printf(o, "        %llu outer_rx_packets outer packets received\n",
               (unsigned long long)os->rx_packets);
    rtr_printf(o, "        %llu outer_rx_batches recvmmsg batches\n",
               (unsigned long long)os->rx_batches);
    rtr_printf(o, "        %llu outer_rx_calls library input calls for them\n",
               (unsigned long long)os->rx_calls);
    rtr_printf(o, "        %llu outer_tx_packets outer packets sent\n",
               (unsigned long long)os->tx_packets);
    rtr_printf(o, "        %llu outer_tx_errors outer packets that failed to send\n",
               (unsigned long long)os->tx_errors);
    rtr_printf(o, "        %llu outer_tx_batches sendmmsg batches\n",
               (unsigned long long)os->tx_batches);
    rtr_printf(o, "        %llu outer_udp_gso UDP GSO sends\n", (unsigned long long)os->tx_gso);
    rtr_printf(o, "        %llu outer_udp_gso_segs packets sent in them\n",
               (unsigned long long)os->tx_gso_segs);
    rtr_printf(o, "        %llu outer_udp_gso_off UDP GSO sends refused by the kernel\n",
               (unsigned long long)os->tx_gso_off);
    /* With -j: each thread's share. */
    for (k = 0; d.lx.nworkers > 1 && k < d.lx.nworkers; k++) {
        const struct ipsecif_linux_tun *tuns = k == 0 ? d.lx.tuns : d.lx.workers[k - 1].tuns;
        const struct ipsecif_posix_outer_stats *ws =
            k == 0 ? &d.lx.outer.stats : &d.lx.workers[k - 1].outer.stats;
        uint64_t calls = 0;

        for (i = 0; i < d.lx.ntuns; i++) {
            if (tuns[i].ifp != NULL) {
                calls += IPSECIF_POSIX_READ(tuns[i].stats.out_calls);
            }
        }
        rtr_printf(o,
                   "        %llu thread%zu_tun_out_calls output calls for what thread %zu read\n",
                   (unsigned long long)calls, k, k);
        rtr_printf(o, "        %llu thread%zu_outer_rx_packets outer packets thread %zu received\n",
                   (unsigned long long)IPSECIF_POSIX_READ(ws->rx_packets), k, k);
    }
}

static void on_request(void *arg, struct rtr_ctl_conn *c, const char *req, size_t len)
{
    static struct rtr_request r;
    struct rtr_out o;
    struct rtr_env env;
    const char *cmd;

    (void)arg;
    memset(&o, 0, sizeof(o));
    o.write = out_write;
    o.arg = c;
    if (rtr_request_split(req, len, &r) < 0) {
        rtr_ctl_error(c, "malformed request");
        return;
    }
    log_request(&r);
    env.ctx = d.ctx;
    env.now = ipsecif_posix_now_ms();
    env.wall = time(NULL);
    cmd = r.argv[0];
    if (strcmp(cmd, "ifconfig") == 0) {
        do_ifconfig(&o, r.argc, r.argv);
    } else if (strcmp(cmd, "setkey") == 0) {
        rtr_setkey(&env, &o, &r);
    } else if (strcmp(cmd, "sysctl") == 0) {
        rtr_sysctl(&env, &o, r.argc, r.argv);
    } else if (strcmp(cmd, "stats") == 0) {
        if (rtr_stats(&env, &o, r.argc, r.argv) == 0) {
            port_stats(&o);
            if (d.host) {
                host_stats(&o);
            }
        }
    } else {
        rtr_fail(&o, "unknown command '%s'", cmd);
    }
    memset(&r, 0, sizeof(r));
    /* Before the reply: what the request changed is in force, and kept in
     * the state file, when the client reads "OK". */
    if (state_sync(true) < 0 && !o.failed) {
        rtr_fail(&o, "host: state file %s could not be written (see the log)", d.st.path);
    }
    if (host_nft_sync() < 0 && !o.failed) {
        rtr_fail(&o, "host: table inet %s could not be updated (see the log)", RTR_HOSTNFT_TABLE);
    }
    if (o.failed) {
        ipsecif_posix_logf(IPSECIF_LOG_INFO, "request failed: %s", o.err);
        rtr_ctl_error(c, "%s", o.err);
    }
}

/* ---- Start and stop ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: ipsecifd [-f] [-S] [-x] [-r] [-H [-N] [-F] [-t STATE_FILE]] [-O] [-B N]\n"
            "                [-j N]\n"
            "                [-s SOCKET] [-k PFKEY_SOCKET] [-p PIDFILE] [-l err|warn|info|debug]\n"
            "                [-c IFS,POLICIES,SAS] [-C %s]\n"
            "  -x  remove the interfaces when the daemon exits; without it their TUN\n"
            "      devices stay and drop what is routed into them (fail closed): remove\n"
            "      one with 'ipsecifctl ifconfig ipsecN destroy' before stopping the\n"
            "      daemon or 'ip link delete ipsecN' after; a new daemon's\n"
            "      'ifconfig ipsecN create' takes it over\n"
            "  -r  drop inner traffic that bypasses the tunnels (nftables table\n"
            "      'inet ipsecif', needs nft): cleartext to the interfaces' addresses\n"
            "      from other interfaces, and strict reverse-path filtering for\n"
            "      traffic from or into the tunnels\n"
            "  -H  host traffic (this namespace's own and forwarded) through the\n"
            "      ipsec(4) engine: policy routing into the TUN device ipsech0,\n"
            "      cleartext inbound checked by the nftables table 'inet ipsecif_host'\n"
            "      (needs nft); device, rules and table stay when the daemon stops\n"
            "      (fail closed), -x removes them; the policies (not the keys) and\n"
            "      sysctls are kept in a state file that a restarted daemon loads\n"
            "  -N  with -H: receive ESP in UDP on port 4500 for host SAs with NAT-T\n"
            "      (leave it out when an IKE daemon binds that port itself)\n"
            "  -F  with -H: start fresh: remove the state file, no policies, default\n"
            "      sysctls (without -F a damaged state file starts with def_policy 0)\n"
            "  -t  with -H: the state file (default: SOCKET with .state for .sock)\n"
            "  -O  no offloads: plain TUN reads and writes (no virtio headers, TSO or\n"
            "      coalescing), no UDP GSO\n"
            "  -B  packets per library call, 1..%d (default %d): the TUN reads of\n"
            "      one wakeup and each received vector go in batches; 1 = one call\n"
            "      per packet\n"
            "  -j  threads moving packets, 1..%d (default 1): each reads its own\n"
            "      queue of every TUN device and receives its own share of the SPIs;\n"
            "      library calls take turns under one lock (not with -H)\n"
            "  -C  the crypto backend (default %s)\n",
            "mbedtls"
#if IPSECIF_ROUTER_OPENSSL
            "|openssl"
#endif
#if IPSECIF_ROUTER_IPSECMB
            "|ipsecmb"
#endif
            ,
            IPSECIF_BATCH_MAX, IPSECIF_BATCH_MAX, IPSECIF_LINUX_WORKERS_MAX,
            crypto_choices[0].name);
    exit(2);
}

static int parse_caps(const char *s, struct ipsecif_config *cfg)
{
    unsigned long v[3];
    char *end;
    int i;

    for (i = 0; i < 3; i++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        errno = 0;
        v[i] = strtoul(s, &end, 10);
        if (errno != 0 || v[i] == 0 || v[i] > 1000000 || *end != (i < 2 ? ',' : '\0')) {
            return -1;
        }
        s = end + 1;
    }
    cfg->max_interfaces = (uint32_t)v[0];
    cfg->max_policies = (uint32_t)v[1];
    cfg->max_sas = (uint32_t)v[2];
    return 0;
}

static void shutdown_all(void)
{
    size_t i;

    host_stop();
    if (d.ctx != NULL) {
        ipsecif_posix_pfkey_close(&d.pfkey);
        for (i = 0; i < d.lx.ntuns; i++) {
            if (d.lx.tuns[i].ifp != NULL) {
                if_destroy(d.lx.tuns[i].ifp, d.remove_on_exit);
            }
        }
        ipsecif_deinit(d.ctx);
        d.ctx = NULL;
    }
    /* Like the interfaces, the filter stays unless -x. */
    if (d.filter && d.remove_on_exit && ipsecif_linux_filter_remove() < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "nftables table inet %s: %s",
                           IPSECIF_LINUX_FILTER_TABLE, strerror(errno));
    }
    d.filter = false;
    ipsecif_posix_pfkey_close(&d.pfkey);
    rtr_ctl_close(&d.ctl);
    ipsecif_linux_fini(&d.lx);
    free(d.mem);
    free(d.addrs);
    d.mem = NULL;
    d.addrs = NULL;
}

int main(int argc, char **argv)
{
    const char *sock_path = "/run/ipsecifd.sock";
    const char *pid_path = "/run/ipsecifd.pid";
    const char *pfkey_path = NULL;
    char pfkey_buf[sizeof(d.pfkey.path)];
    struct ipsecif_config cfg;
    bool foreground = false;
    bool use_syslog = false;
    bool remove_on_exit = false;
    bool filter = false;
    bool host = false;
    bool host_natt = false;
    bool offload = true;
    unsigned long batch = IPSECIF_BATCH_MAX;
    unsigned long threads = 1;
    char *end;
    bool fresh = false;
    const char *state_path = NULL;
    int level = IPSECIF_LOG_INFO;
    const struct crypto_choice *crypto = &crypto_choices[0];
    int ready_fd = -1;
    size_t len;
    int rc;
    int opt;

    ipsecif_config_default(&cfg);
    cfg.max_interfaces = 64;
    cfg.max_policies = 512;
    cfg.max_sas = 512;
    cfg.max_pfkey_endpoints = PFKEY_CLIENTS;
    while ((opt = getopt(argc, argv, "fSxrHNOFB:j:t:s:k:p:l:c:C:")) != -1) {
        switch (opt) {
        case 'f':
            foreground = true;
            break;
        case 'S':
            use_syslog = true;
            break;
        case 'x':
            remove_on_exit = true;
            break;
        case 'r':
            filter = true;
            break;
        case 'N':
            host_natt = true;
            break;
        case 'H':
            host = true;
            break;
        case 'O':
            offload = false;
            break;
        case 'F':
            fresh = true;
            break;
        case 'B':
            errno = 0;
            batch = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 || batch < 1 ||
                batch > IPSECIF_BATCH_MAX) {
                fprintf(stderr, "ipsecifd: -B %s: not a batch size in 1..%d\n", optarg,
                        IPSECIF_BATCH_MAX);
                usage();
            }
            break;
        case 'j':
            errno = 0;
            threads = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 || threads < 1 ||
                threads > IPSECIF_LINUX_WORKERS_MAX) {
                fprintf(stderr, "ipsecifd: -j %s: not a thread count in 1..%d\n", optarg,
                        IPSECIF_LINUX_WORKERS_MAX);
                usage();
            }
            break;
        case 't':
            state_path = optarg;
            break;
        case 's':
            sock_path = optarg;
            break;
        case 'k':
            pfkey_path = optarg;
            break;
        case 'p':
            pid_path = optarg;
            break;
        case 'l':
            level = rtr_log_level_parse(optarg);
            if (level < 0) {
                usage();
            }
            break;
        case 'c':
            if (parse_caps(optarg, &cfg) < 0) {
                usage();
            }
            break;
        case 'C':
            crypto = crypto_find(optarg);
            if (crypto == NULL) {
                usage();
            }
            break;
        default:
            usage();
        }
    }
    if (optind != argc || (!host && (fresh || state_path != NULL))) {
        usage();
    }
    if (host && threads > 1) {
        fprintf(stderr, "ipsecifd: -j %lu: host mode (-H) runs on one thread\n", threads);
        usage();
    }
    if (pfkey_path == NULL) {
        if (rtr_pfkey_path(sock_path, pfkey_buf, sizeof(pfkey_buf)) < 0) {
            usage();
        }
        pfkey_path = pfkey_buf;
    }
    port.crypto = crypto->ops;
    port.random = crypto->random;
    if (host) {
        port.deliver_host = deliver_host;
        port.local_addr = local_addr;
    }
    rtr_log_open("ipsecifd", use_syslog, level);
    if (!foreground && rtr_daemonize(&ready_fd) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "daemonize: %s", strerror(errno));
        return 1;
    }
    memset(&d, 0, sizeof(d));
    d.ctl.fd = -1;
    d.pfkey.fd = -1;
    d.hostm.fd = -1;
    d.st.tfd = -1;
    d.remove_on_exit = remove_on_exit;
    if (state_path != NULL
            ? snprintf(d.st.path, sizeof(d.st.path), "%s", state_path) >= (int)sizeof(d.st.path)
            : rtr_state_path(sock_path, d.st.path, sizeof(d.st.path)) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "state file path too long");
        return 1;
    }
    d.st.fresh = fresh;
    if (ipsecif_linux_init(&d.lx, cfg.max_interfaces) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "sockets: %s (needs CAP_NET_RAW and CAP_NET_ADMIN)",
                           strerror(errno));
        return 1;
    }
    d.lx.offload = offload;
    ipsecif_posix_outer_set_udp_gso(&d.lx.outer, offload);
    (void)ipsecif_linux_set_batch(&d.lx, batch); /* checked above */
    if (ipsecif_linux_set_workers(&d.lx, threads) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "-j %lu: %s", threads, strerror(errno));
        goto fail;
    }
    d.addrs = calloc(cfg.max_interfaces, sizeof(*d.addrs));
    len = ipsecif_ctx_size(&cfg);
    if (d.addrs == NULL || len == 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "bad capacities or out of memory");
        goto fail;
    }
    /* All the context's memory, once; nothing is allocated per packet later. */
    d.mem = aligned_alloc(16, (len + 15u) & ~(size_t)15u);
    if (d.mem == NULL) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "out of memory (%zu bytes)", len);
        goto fail;
    }
    rc = ipsecif_init(&d.ctx, d.mem, len, &cfg, &port, &d.lx, ipsecif_posix_now_ms());
    if (rc != IPSECIF_OK) {
        d.ctx = NULL;
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "ipsecif_init: %s", ipsecif_strerror(rc));
        goto fail;
    }
    ipsecif_linux_set_ctx(&d.lx, d.ctx);
    if (filter) {
        if (ipsecif_linux_filter_install() < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "-r: nftables table inet %s: %s",
                               IPSECIF_LINUX_FILTER_TABLE, strerror(errno));
            goto fail;
        }
        d.filter = true;
        ipsecif_posix_logf(IPSECIF_LOG_INFO, "filter: nftables table inet %s installed",
                           IPSECIF_LINUX_FILTER_TABLE);
    }
    if (host) {
        /* The device first: a second daemon fails there, before it could
         * replace the first one's table. */
        d.host = true;
        d.host_natt = host_natt;
        if (ipsecif_linux_host_open(&d.hostm, &d.lx) < 0) {
            goto fail;
        }
        if (d.host_natt) {
            host_natt_open();
        }
        /* The SPD and sysctls of the run before, then the table built from
         * them; no packet is read before the loop runs. */
        d.st.defaults = calloc(rtr_sysctl_count() + 1, sizeof(*d.st.defaults));
        if (d.st.defaults == NULL) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "out of memory");
            goto fail;
        }
        rtr_state_defaults(d.ctx, d.st.defaults);
        d.st.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (d.st.tfd < 0 ||
            ipsecif_posix_loop_add(&d.lx.loop, d.st.tfd, POLLIN, on_state_timer, NULL) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "state file timer: %s", strerror(errno));
            goto fail;
        }
        state_load(cfg.max_policies);
        d.st.loaded = true;
        if (state_sync(true) < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "-H: state file %s could not be written",
                               d.st.path);
            goto fail;
        }
        if (host_nft_sync() < 0) {
            ipsecif_posix_logf(IPSECIF_LOG_ERR, "-H: nftables table inet %s could not be made",
                               RTR_HOSTNFT_TABLE);
            goto fail;
        }
        ipsecif_posix_loop_set_idle(&d.lx.loop, on_round, NULL);
    }
    {
        /* PF_KEY programs read SA and policy times as Unix seconds. */
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && ts.tv_sec > 0) {
            ipsecif_pfkey_set_wallclock(d.ctx, ipsecif_posix_now_ms(), (uint64_t)ts.tv_sec);
        }
    }
    if (rtr_ctl_open(&d.ctl, &d.lx.loop, sock_path, REQ_MAX, on_request, NULL) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "control socket %s: %s", sock_path, strerror(errno));
        goto fail;
    }
    if (ipsecif_posix_pfkey_open(&d.pfkey, &d.lx.loop, d.ctx, pfkey_path, PFKEY_CLIENTS,
                                 IPSECIF_PFKEY_DIALECT_LINUX) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "PF_KEY socket %s: %s", pfkey_path, strerror(errno));
        goto fail;
    }
    if (ipsecif_posix_loop_stop_on_signals(&d.lx.loop) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "signals: %s", strerror(errno));
        goto fail;
    }
    if (rtr_pidfile_write(pid_path) < 0) {
        ipsecif_posix_logf(IPSECIF_LOG_ERR, "pid file %s: %s", pid_path, strerror(errno));
        goto fail;
    }
    ipsecif_posix_logf(IPSECIF_LOG_INFO,
                       "libipsecif %s: %u interfaces, %u policies, %u SAs (%zu bytes); "
                       "crypto %s; %lu thread%s; control socket %s, PF_KEY socket %s",
                       IPSECIF_VERSION_STRING, cfg.max_interfaces, cfg.max_policies, cfg.max_sas,
                       len, crypto->name, threads, threads == 1 ? "" : "s", sock_path, pfkey_path);
    if (!foreground) {
        rtr_daemon_ready(ready_fd);
    }
    rc = ipsecif_linux_run(&d.lx);
    ipsecif_posix_logf(IPSECIF_LOG_INFO, "stopping");
    shutdown_all();
    unlink(pid_path);
    rtr_log_close();
    return rc == 0 ? 0 : 1;
fail:
    shutdown_all();
    rtr_log_close();
    return 1;
}
