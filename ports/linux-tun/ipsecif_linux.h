/**
 * @file ipsecif_linux.h
 * @brief The Linux port: a TUN device per ipsecif interface, addresses over
 *        rtnetlink, one timerfd, on top of the POSIX parts (ports/posix).
 *
 * Host code, not part of libipsecif. A host makes one struct ipsecif_linux,
 * builds its struct ipsecif_port from the callbacks below (user pointer:
 * the struct ipsecif_linux), initializes its context and hands it over with
 * ipsecif_linux_set_ctx(), then runs ipsecif_linux_run() (or the loop in
 * `lx->loop` itself, with one thread).
 *
 * Inner packets read from a TUN device go to ipsecif_if_output(), read into
 * the device's own buffer after IPSECIF_HEADROOM bytes; decapsulated packets
 * and the ICMP errors the core builds are written back to the same device
 * (the kernel routes an ICMP error to the inner sender).
 */
#ifndef IPSECIF_LINUX_H
#define IPSECIF_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"
#include "ipsecif_posix.h"
#include "linux_gso.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of a TUN buffer: room around the largest inner packet the MTU allows. */
#define IPSECIF_LINUX_TUNBUF (IPSECIF_HEADROOM + IPSECIF_MTU_MAX + IPSECIF_TAILROOM + 64)

/** Transmit queue of each TUN device, in packets (an Ethernet NIC's usual 1000). */
#ifndef IPSECIF_LINUX_TXQLEN
#define IPSECIF_LINUX_TXQLEN 1000
#endif

/** Bytes of a TUN device's read buffer with offloads: headroom, virtio
 *  header, the largest super-packet, tailroom. */
#define IPSECIF_LINUX_TUNBUF_GSO (IPSECIF_HEADROOM + IPSECIF_LINUX_GSO_MAX + IPSECIF_TAILROOM + 64)

/** Segment buffers of each TUN device: the packets of one wakeup's reads
 *  (and the segments cut from them) wait here until they go to
 *  ipsecif_if_output_batch() as one vector. */
#define IPSECIF_LINUX_TUNVEC IPSECIF_BATCH_MAX

/** Offload counters of one TUN device. */
struct ipsecif_linux_tun_stats {
    uint64_t gso_in;           /**< TCP super-packets read (TSO from the kernel). */
    uint64_t segments;         /**< Segments cut from them and given to the library. */
    uint64_t csum;             /**< Single packets whose partial checksum was completed. */
    uint64_t gso_drop;         /**< Packets dropped: bad virtio header, length or headers. */
    uint64_t gso_toobig;       /**< Segments dropped because they exceed the MTU (the first
                                    of each such super-packet got the ICMP error). */
    uint64_t out_calls;        /**< Library output calls the packets read went to. */
    uint64_t icmp_sent;        /**< IPv4 ICMP errors sent on the raw socket. */
    uint64_t icmp_send_errors; /**< IPv4 ICMP errors the raw socket refused (dropped). */
};

struct ipsecif_linux_tun;
struct ipsecif_linux_worker;

/** Devices with a coalesced packet held back until the end of a batch. */
struct ipsecif_linux_held {
    struct ipsecif_linux_tun **v; /**< The devices (queues). */
    size_t n;                     /**< Entries in use. */
    size_t cap;                   /**< Entries. */
};

/** Threads at most that move packets (ipsecif_linux_set_workers()). */
#define IPSECIF_LINUX_WORKERS_MAX 16

/** One TUN device, bound to one ipsecif interface. With workers, each
 *  worker has one of these per device too: its own queue of the device. */
struct ipsecif_linux_tun {
    struct ipsecif_linux *lx;             /**< The port. */
    struct ipsecif_if *ifp;               /**< The interface, NULL when the slot is free. */
    int fd;                               /**< The TUN descriptor. */
    char name[IPSECIF_IFNAME_SIZE];       /**< Device name (the interface's). */
    bool adopted;                         /**< The persistent device was there before open. */
    uint8_t natt_family;                  /**< NAT-T socket in use: family, 0 = none. */
    uint16_t natt_port;                   /**< NAT-T socket in use: local port. */
    uint64_t rx_errors;                   /**< Failed reads. */
    uint64_t tx_errors;                   /**< Failed writes. */
    bool vnet;                            /**< Virtio-net headers on (offloads). */
    bool gro_listed;                      /**< On the port's list of held packets. */
    unsigned mtu;                         /**< The device MTU last set. */
    uint8_t *sbuf;                        /**< Read buffer of IPSECIF_LINUX_TUNBUF_GSO (vnet). */
    uint8_t *gbuf;                        /**< Coalescing buffer (vnet). */
    struct ipsecif_linux_gro gro;         /**< Coalescer of written TCP segments (vnet). */
    struct ipsecif_linux_tun_stats stats; /**< Offload counters. */
    uint8_t *vbuf; /**< IPSECIF_LINUX_TUNVEC buffers of IPSECIF_LINUX_TUNBUF: packets read
                        (without vnet) or segments cut (vnet), waiting for the library. */
    size_t nv;     /**< Entries of the vector in use. */
    struct ipsecif_buf vb[IPSECIF_LINUX_TUNVEC];  /**< The vector's buffers. */
    struct ipsecif_buf *vp[IPSECIF_LINUX_TUNVEC]; /**< Pointers to them, as the library takes. */
    int vres[IPSECIF_LINUX_TUNVEC];               /**< Verdicts of the last call. */
    struct ipsecif_linux_worker *wk; /**< The worker whose queue this is (NULL: the main one). */
    struct ipsecif_linux_held *hs;   /**< Where it is listed while it holds a packet. */
    int qflags;                      /**< TUNSETIFF flags it was attached with. */
    bool polled;                     /**< A worker's queue: in the worker's loop. */
    bool closing;                    /**< A worker's queue: to be taken out of its loop. */
};

/**
 * @brief A thread that moves packets beside the main one (see
 *        ipsecif_linux_set_workers()): its own loop, outer ESP sockets
 *        (a share of the SPIs) and one queue of every TUN device.
 */
struct ipsecif_linux_worker {
    struct ipsecif_linux *lx;         /**< The port. */
    unsigned index;                   /**< 1 .. workers - 1 (0 is the main thread). */
    pthread_t thread;                 /**< The thread. */
    bool started;                     /**< The thread runs. */
    struct ipsecif_posix_loop loop;   /**< Its loop. */
    struct ipsecif_posix_outer outer; /**< Its raw ESP sockets and send queue. */
    struct ipsecif_linux_tun *tuns;   /**< Its queue of each device, parallel to lx->tuns. */
    struct ipsecif_linux_held held;   /**< Its queues holding a coalesced packet. */
    int wake_fd;                      /**< eventfd: the device set changed, or stop. */
    uint64_t gen_seen;                /**< The last device-set generation it took in. */
};

/** The Linux port. */
struct ipsecif_linux {
    struct ipsecif_ctx *ctx;          /**< The context (after set_ctx). */
    struct ipsecif_posix_loop loop;   /**< The event loop. */
    struct ipsecif_posix_outer outer; /**< Raw ESP and NAT-T sockets. */
    int timer_fd;                     /**< The timerfd. */
    uint64_t armed;                   /**< Deadline the timerfd is armed to. */
    struct ipsecif_linux_tun *tuns;   /**< TUN slots, one per possible interface. */
    size_t ntuns;                     /**< Number of slots. */
    bool offload;                     /**< Open TUN devices with offloads (default true). */
    size_t batch; /**< Packets per library call, 1..IPSECIF_BATCH_MAX (see set_batch). */
    struct ipsecif_linux_held held;       /**< Devices with a coalesced packet held. */
    int icmp4_fd;                         /**< IPPROTO_RAW socket for IPv4 ICMP errors, or -1. */
    struct ipsecif_linux_worker *workers; /**< nworkers - 1 threads beside the main one. */
    size_t nworkers;                      /**< Threads moving packets, the main one included. */
    pthread_mutex_t lock;                 /**< The context's lock (with workers). */
    pthread_cond_t cond;                  /**< A worker took in a device-set generation. */
    uint64_t gen;                         /**< Device-set generation. */
    bool running;                         /**< Workers run (ipsecif_linux_run()). */
};

/**
 * @brief Set up the loop, the outer sockets and the timer for up to
 *        max_ifs interfaces (all memory is taken here).
 * @return 0, or -1 with errno set (nothing left open).
 */
int ipsecif_linux_init(struct ipsecif_linux *lx, size_t max_ifs);

/**
 * @brief How many packets go to the library in one call, both ways.
 *
 * With n > 1 (the default is ::IPSECIF_BATCH_MAX) the packets of one
 * wakeup's TUN reads, and the segments cut from them, go to
 * ipsecif_if_output_batch() in vectors of up to n, and each recvmmsg()
 * vector of outer packets to ipsecif_input_batch() or
 * ipsecif_input_esp_batch() in slices of up to n. With n = 1 every packet
 * gets its own ipsecif_if_output(), ipsecif_input(),
 * ipsecif_input_payload() or ipsecif_input_esp() call (for comparison).
 * The verdicts and counters are the same either way.
 * @return 0, or -1 with errno EINVAL when n is not in 1..IPSECIF_BATCH_MAX.
 */
int ipsecif_linux_set_batch(struct ipsecif_linux *lx, size_t n);

/**
 * @brief Move packets on n threads (1..::IPSECIF_LINUX_WORKERS_MAX; 1, the
 *        default, is the main thread alone). Before ipsecif_linux_set_ctx()
 *        and before any device is opened; host mode is not for workers.
 *
 * Concurrency model. The context is one, and it is not locked inside: every
 * library call on it is made under lx->lock. The main thread holds the lock
 * whenever it is not waiting in poll() (ipsecif_posix_loop_set_lock()), so
 * the control socket, PF_KEY, the timer, NAT-T input and every other call a
 * host makes from the loop's callbacks need nothing more. Each worker
 * thread (1 .. n - 1) runs its own loop with no lock held and takes the
 * lock only around its library calls: ipsecif_if_output_batch() for what
 * it read from its queues, ipsecif_input_batch() and
 * ipsecif_input_esp_batch() for what its ESP sockets received. The port
 * callbacks these calls make write into the calling thread's own state
 * (its send queue, its TUN queues and their coalescers), which the thread
 * puts out with the lock released. So the reads and writes of the TUN
 * devices, recvmmsg and sendmmsg, segmentation and the copies of the
 * receive path run in parallel; the library's work (SPD and SADB lookups,
 * crypto, sequence numbers, replay windows, counters) runs one call at a
 * time, in batches of up to lx->batch packets.
 *
 * Spreading. Every TUN device is opened multi-queue (IFF_MULTI_QUEUE) with
 * one queue per thread: the kernel gives each flow of inner packets to one
 * queue, so a flow stays in order (by its hash, until the kernel has seen
 * the flow written on a queue: then on that one). Each thread has raw ESP
 * sockets whose kernel filter keeps one share of the SPIs
 * (ipsecif_posix_outer_steer()): every packet of an SA reaches the same
 * thread, in order, as receive-side scaling on SPI does. So the flows of
 * one tunnel end up on the thread that receives its inbound SA, and
 * tunnels (SAs) spread over the threads. ESP in UDP (NAT-T) and
 * everything else is received by the main thread.
 *
 * Device changes. Devices are opened and closed by the main thread, under
 * the lock; it opens the workers' queues too and wakes them (wake_fd).
 * Before it closes a queue or a NAT-T socket a worker may use, it waits
 * until every worker has taken the change in, with no packet of the device
 * left in its hands (lx->cond).
 * @return 0, or -1 with errno set (EINVAL: n out of range, or called too late).
 */
int ipsecif_linux_set_workers(struct ipsecif_linux *lx, size_t n);

/**
 * @brief Run the port: start the workers, run the main loop (holding
 *        lx->lock with workers) until it stops, stop the workers.
 * @return what ipsecif_posix_loop_run() returned, or -1 with errno set
 *         when a worker could not start (none runs then).
 */
int ipsecif_linux_run(struct ipsecif_linux *lx);

/** Add the counters of s to sum. */
void ipsecif_linux_tun_stats_add(struct ipsecif_linux_tun_stats *sum,
                                 const struct ipsecif_linux_tun_stats *s);

/** Start feeding the context (received packets, timer). */
void ipsecif_linux_set_ctx(struct ipsecif_linux *lx, struct ipsecif_ctx *ctx);

/** Close every TUN device (the devices stay, see ipsecif_linux_tun_close())
 *  and socket; the context is not touched. */
void ipsecif_linux_fini(struct ipsecif_linux *lx);

/**
 * @brief Create the TUN device named like ifp (IFF_TUN | IFF_NO_PI,
 *        persistent), with the interface's MTU, and bind it to ifp
 *        (ipsecif_if_set_user).
 *
 * Offloads (lx->offload, the default): the device is opened with
 * IFF_VNET_HDR and TUNSETOFFLOAD TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, so
 * that the kernel hands over TCP super-packets of up to 64 KiB and packets
 * with a partial checksum. Each super-packet is cut into MSS-sized
 * segments (linux_gso.h) that go to the library (see
 * ipsecif_linux_set_batch()), so
 * each is within the interface MTU as the kernel's MSS makes it. A
 * super-packet whose segments would still exceed the MTU (a gso_size the
 * MTU does not allow, with DF or IPv6) is treated as the kernel treats an
 * oversize GSO packet it forwards: its first segment goes to the library,
 * which answers with ICMP too-big as for any oversize packet, and the rest
 * are dropped (counted in gso_toobig); the sender's TCP lowers its MSS.
 * Decapsulated TCP segments of one flow that arrive in one receive batch
 * are coalesced into one super-packet written with a GSO header; anything
 * else is written alone behind an empty header. Where the kernel refuses
 * IFF_VNET_HDR the device is used without it; without lx->offload any
 * offload left on the device by an earlier process is cleared.
 *
 * The device is persistent (TUNSETPERSIST): it outlives this process with
 * its addresses and routes, and while no process has it open the kernel
 * drops every packet routed into it, so a daemon that stops or crashes
 * fails closed instead of letting a less specific route carry inner
 * traffic in clear. If a persistent TUN device of this name exists (left
 * by an earlier run, or made with `ip tuntap add`), it is attached to as
 * it is, up or down, with its addresses and routes; `adopted` tells.
 * A new device is created down.
 * @return the device, or NULL with errno set (EBUSY: another process has
 *         the device open; EINVAL: the name belongs to another kind of
 *         device).
 */
struct ipsecif_linux_tun *ipsecif_linux_tun_open(struct ipsecif_linux *lx, struct ipsecif_if *ifp);

/**
 * @brief Close the device and release its NAT-T socket.
 * @param remove true: the device is removed (persistence cleared, the
 *        kernel deletes it with its addresses and routes); false: it stays,
 *        dropping what is routed into it, until a process attaches to it
 *        again or it is deleted (`ip link delete NAME`).
 */
void ipsecif_linux_tun_close(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t, bool remove);

/** The device bound to ifp, or NULL. */
struct ipsecif_linux_tun *ipsecif_linux_tun_of(struct ipsecif_if *ifp);

/** Set the device up or down. @return 0, or -1 with errno set. */
int ipsecif_linux_tun_set_up(struct ipsecif_linux_tun *t, bool up);

/** Write what the device holds back for coalescing (the port does this
 *  after each receive batch and before the loop polls). */
void ipsecif_linux_tun_flush(struct ipsecif_linux_tun *t);

/** Set the device MTU. @return 0, or -1 with errno set. */
int ipsecif_linux_tun_set_mtu(struct ipsecif_linux_tun *t, unsigned mtu);

/**
 * @brief Add an address to the device over rtnetlink (RTM_NEWADDR).
 * @param addr the local address.
 * @param plen its prefix length.
 * @param peer the point-to-point peer (IPv4), or NULL.
 * @return 0 (also when the device has the address already), or -1 with
 *         errno set (the kernel's error).
 */
int ipsecif_linux_addr_add(struct ipsecif_linux_tun *t, const struct ipsecif_addr *addr,
                           unsigned plen, const struct ipsecif_addr *peer);

/** Called by ipsecif_linux_addr_walk() for each address; peer NULL if none. */
typedef void (*ipsecif_linux_addr_fn)(void *arg, const struct ipsecif_addr *addr, unsigned plen,
                                      const struct ipsecif_addr *peer);

/**
 * @brief Give fn the device's global-scope addresses (RTM_GETADDR), e.g.
 *        those of a device kept from an earlier run.
 * @return 0, or -1 with errno set.
 */
int ipsecif_linux_addr_walk(const struct ipsecif_linux_tun *t, ipsecif_linux_addr_fn fn, void *arg);

/**
 * @brief Open, keep or close the device's NAT-T socket to match the
 *        interface (link0 and a tunnel: the tunnel family and source port).
 * @return 0, or -1 with errno set.
 */
int ipsecif_linux_sync_natt(struct ipsecif_linux *lx, struct ipsecif_linux_tun *t);

/* ---- Filter: inner traffic that bypasses the tunnels ---- */

/** The nftables table of ipsecif_linux_filter_install() (family inet). */
#define IPSECIF_LINUX_FILTER_TABLE "ipsecif"

/**
 * @brief Install (or rebuild) the nftables table `inet ipsecif`, through
 *        `nft -f -`.
 *
 * Its prerouting chain (priority raw) drops
 * - packets to an address of an ipsec interface (ipsecif_linux_filter_addr())
 *   that arrive on an interface that is neither an ipsec interface
 *   (ipsecif_linux_filter_if()) nor the one holding the address, nor lo:
 *   inner traffic sent in clear on the outer link;
 * - as strict reverse-path filtering, where a tunnel is involved: packets
 *   that arrive on an ipsec interface, or whose source address is routed
 *   into one, but not on the interface their source is routed to
 *   (`fib saddr . iif oif missing`); neighbour discovery is exempt.
 * Other traffic is not looked at. The table's sets keep their elements when
 * it is installed again (a restarted daemon). Needs the nft program.
 * @return 0, or -1 with errno set (ENOENT: no nft in PATH, logged as such;
 *         EIO: nft failed, its message logged).
 */
int ipsecif_linux_filter_install(void);

/** Delete the table. @return 0, or -1 with errno set. */
int ipsecif_linux_filter_remove(void);

/**
 * @brief Run an nftables script through `nft -f -` (one transaction); nft's
 *        messages go to the log.
 * @return 0, or -1 with errno set (ENOENT: no nft in PATH; EIO: nft failed).
 */
int ipsecif_linux_nft_run(const char *script);

/** Add (or delete) an ipsec interface name to the table. @return 0, or -1 with errno set. */
int ipsecif_linux_filter_if(const char *name, bool add);

/** Add (or delete) an inner address to the table. @return 0, or -1 with errno set. */
int ipsecif_linux_filter_addr(const struct ipsecif_addr *addr, bool add);

/** Port callback: ipsecif_port::send_outer (user: the struct ipsecif_linux). */
int ipsecif_linux_send_outer(void *user, struct ipsecif_if *ifp,
                             const struct ipsecif_outer_meta *meta, const struct ipsecif_buf *pkt);

/** Port callback: ipsecif_port::deliver_inner, writes to the interface's TUN device. */
void ipsecif_linux_deliver_inner(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt);

/**
 * Port callback: ipsecif_port::deliver_icmp. IPv6 errors are written to the
 * interface's TUN device. IPv4 errors are sent on an IPPROTO_RAW socket, as
 * packets this host originates: written to the device, an error from the
 * interface's own address would be dropped by Linux as a martian source
 * (unless accept_local is on). Without that socket they go to the device.
 */
void ipsecif_linux_deliver_icmp(void *user, struct ipsecif_if *ifp, const struct ipsecif_buf *pkt);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_LINUX_H */
