/**
 * @file ipsecif_posix.h
 * @brief What every POSIX host port of libipsecif shares: an event loop on
 *        poll(), monotonic time, the outer sockets (raw ESP, UDP for
 *        NAT-T), the PF_KEY socket endpoint, and the logger the port's code
 *        writes to.
 *
 * Host code, not part of libipsecif. The Linux TUN port and a NetBSD tun(4)
 * port build on it; only the TUN device, addresses and the timer are theirs.
 * Application plumbing (a control socket, daemonizing, syslog) is the
 * application's: the example router has its own (examples/router).
 * Everything here is single-threaded: callbacks run from
 * ipsecif_posix_loop_run() on the caller's thread, which is also the thread
 * that calls into the libipsecif context. Memory is taken at open time only;
 * packets are received with recvmmsg() into one vector all sockets share,
 * and sent from a queue flushed with sendmmsg().
 */
#ifndef IPSECIF_POSIX_H
#define IPSECIF_POSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipsecif/ipsecif.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define IPSECIF_POSIX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IPSECIF_POSIX_PRINTF(f, a)
#endif

/* ---- Counters ---- */

/**
 * @brief Add n to a counter that one thread writes and others may read
 *        (relaxed atomics: a reader sees a whole value, perhaps a burst
 *        old; the writer needs no locked instruction, being the only one).
 */
#define IPSECIF_POSIX_COUNT(c, n)                                                                  \
    __atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/** Read a counter another thread may be writing (see IPSECIF_POSIX_COUNT()). */
#define IPSECIF_POSIX_READ(c) __atomic_load_n(&(c), __ATOMIC_RELAXED)

/* ---- Time ---- */

/** Monotonic time in milliseconds, the clock every libipsecif call is given. */
uint64_t ipsecif_posix_now_ms(void);

/* ---- Logging ---- */

/** Where log messages go: one message (no trailing newline) at a level it passed. */
typedef void (*ipsecif_posix_log_fn)(void *arg, int level, const char *msg);

/**
 * @brief Set the threshold and the sink of the port's log.
 * @param level the most verbose ::ipsecif_log_level written (default
 *              ::IPSECIF_LOG_INFO).
 * @param fn    the sink; NULL writes "LEVEL: message" lines to stderr (the
 *              default).
 */
void ipsecif_posix_log_set(int level, ipsecif_posix_log_fn fn, void *arg);

/** Log a message at a level (::ipsecif_log_level); no trailing newline needed. */
void ipsecif_posix_logf(int level, const char *fmt, ...) IPSECIF_POSIX_PRINTF(2, 3);

/** True when messages of this level are written (to skip formatting work). */
bool ipsecif_posix_log_enabled(int level);

/** A log callback for ipsecif_port::log. */
void ipsecif_posix_port_log(void *user, int level, const char *msg);

/** "err", "warn", "info", "debug" for a level; NULL for another number. */
const char *ipsecif_posix_log_level_name(int level);

/* ---- Event loop ---- */

/** Called when fd is ready; revents as poll() reported them. */
typedef void (*ipsecif_posix_fd_fn)(void *arg, int fd, short revents);

/** Returns the next deadline (absolute, ipsecif_posix_now_ms() scale) or UINT64_MAX. */
typedef uint64_t (*ipsecif_posix_deadline_fn)(void *arg);

/** Called when the deadline has passed. */
typedef void (*ipsecif_posix_expire_fn)(void *arg, uint64_t now);

/** Called once per round of the loop, after its callbacks, before the next poll. */
typedef void (*ipsecif_posix_idle_fn)(void *arg);

/** Flush hooks a loop holds at most (ipsecif_posix_loop_add_flush()). */
#define IPSECIF_POSIX_LOOP_FLUSHES 4

struct ipsecif_posix_loop_ent;

/** An event loop on poll(). Fields are private. */
struct ipsecif_posix_loop {
    struct pollfd *pfd;                 /**< Poll set, parallel to ent. */
    struct ipsecif_posix_loop_ent *ent; /**< Callbacks. */
    size_t n;                           /**< Entries in use (dead ones included). */
    size_t cap;                         /**< Capacity. */
    bool dirty;                         /**< Dead entries wait to be compacted. */
    bool stop;                          /**< Leave ipsecif_posix_loop_run() (atomic). */
    int sigpipe[2];                     /**< Self-pipe for signals, -1 if unused. */
    ipsecif_posix_deadline_fn deadline; /**< Timer hook (may be NULL). */
    ipsecif_posix_expire_fn expire;     /**< Timer hook (may be NULL). */
    void *timer_arg;                    /**< Argument of the timer hooks. */
    ipsecif_posix_idle_fn idle;         /**< Round hook (may be NULL). */
    void *idle_arg;                     /**< Its argument. */
    ipsecif_posix_idle_fn flush[IPSECIF_POSIX_LOOP_FLUSHES]; /**< Before-poll hooks. */
    void *flush_arg[IPSECIF_POSIX_LOOP_FLUSHES];             /**< Their arguments. */
    size_t nflush;                                           /**< Hooks in use. */
    pthread_mutex_t *lock; /**< Held by the loop's thread except while it polls (or NULL). */
};

/**
 * @brief Make a loop for up to cap descriptors (allocated here, once).
 * @return 0, or -1 with errno set.
 */
int ipsecif_posix_loop_init(struct ipsecif_posix_loop *loop, size_t cap);

/** Free a loop (does not close the registered descriptors). */
void ipsecif_posix_loop_free(struct ipsecif_posix_loop *loop);

/**
 * @brief Watch fd for events (POLLIN ...).
 * @return 0, or -1 (errno ENOSPC when full, EEXIST when fd is watched already).
 */
int ipsecif_posix_loop_add(struct ipsecif_posix_loop *loop, int fd, short events,
                           ipsecif_posix_fd_fn fn, void *arg);

/** Stop watching fd; safe from within a callback. */
void ipsecif_posix_loop_del(struct ipsecif_posix_loop *loop, int fd);

/**
 * @brief Set the timer hooks: before each poll, deadline() bounds the wait;
 *        once it has passed, expire() runs. Either may be NULL.
 */
void ipsecif_posix_loop_set_timer(struct ipsecif_posix_loop *loop,
                                  ipsecif_posix_deadline_fn deadline,
                                  ipsecif_posix_expire_fn expire, void *arg);

/**
 * @brief Set the round hook: fn runs after each round of callbacks (and of
 *        the timer hooks), before the loop polls again; for work that
 *        follows whatever the round changed. NULL removes it.
 */
void ipsecif_posix_loop_set_idle(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                 void *arg);

/**
 * @brief Add a flush hook: fn runs right before every poll, after the
 *        round hook, so that output queued during a round (batched sends,
 *        held packets) goes out before the loop sleeps.
 * @return 0, or -1 (errno ENOSPC when IPSECIF_POSIX_LOOP_FLUSHES are set).
 */
int ipsecif_posix_loop_add_flush(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                 void *arg);

/** Remove a flush hook added with the same fn and arg. */
void ipsecif_posix_loop_del_flush(struct ipsecif_posix_loop *loop, ipsecif_posix_idle_fn fn,
                                  void *arg);

/**
 * @brief Leave the loop on SIGTERM and SIGINT (through a self-pipe, so no
 *        signal is lost between checks); ignore SIGPIPE. One loop per process.
 * @return 0, or -1 with errno set.
 */
int ipsecif_posix_loop_stop_on_signals(struct ipsecif_posix_loop *loop);

/**
 * @brief Run the loop's callbacks under a mutex: the thread that runs the
 *        loop holds it, and ipsecif_posix_loop_run() lets go of it only
 *        while it waits in poll(). NULL (the default) for none.
 *
 * The caller locks it before ipsecif_posix_loop_run() and unlocks it after.
 */
void ipsecif_posix_loop_set_lock(struct ipsecif_posix_loop *loop, pthread_mutex_t *lock);

/** Make ipsecif_posix_loop_run() return after the current round. */
void ipsecif_posix_loop_stop(struct ipsecif_posix_loop *loop);

/**
 * @brief Dispatch events until stopped.
 * @return 0 when stopped, -1 when poll() failed.
 */
int ipsecif_posix_loop_run(struct ipsecif_posix_loop *loop);

/* ---- Outer sockets ---- */

/** Receive buffer per socket: the largest outer packet of an MTU 8192 inner one, and more. */
#define IPSECIF_POSIX_RXBUF 16384

/** Bytes kept free before a payload-only packet (raw IPv6), where
 *  ipsecif_input_payload() puts the IP header back. */
#define IPSECIF_POSIX_RXHEAD 64

/** Kernel receive queue asked for on the outer sockets (SO_RCVBUFFORCE when
 *  allowed, else SO_RCVBUF up to net.core.rmem_max), in bytes. */
#ifndef IPSECIF_POSIX_SOCKBUF
#define IPSECIF_POSIX_SOCKBUF (4 * 1024 * 1024)
#endif

/** Datagrams taken per recvmmsg() call on an outer socket. */
#define IPSECIF_POSIX_RXVEC 32

/** Outer packets queued per round before a flush (sendmmsg()) is forced. */
#define IPSECIF_POSIX_TXQ 64

/** Bytes of the send queue's buffer (outer packets as they go on the wire). */
#define IPSECIF_POSIX_TXQ_BYTES (256u * 1024u)

/** A NAT-T UDP socket, shared by every link0 interface with the same local port. */
struct ipsecif_posix_natt {
    int fd;                            /**< The socket, -1 when the slot is free. */
    uint8_t family;                    /**< ::ipsecif_family. */
    uint16_t port;                     /**< Local port. */
    unsigned refs;                     /**< Interfaces using it. */
    struct ipsecif_posix_outer *outer; /**< Back pointer for the callback. */
    bool gso;                          /**< The kernel takes UDP_SEGMENT on it. */
    uint32_t gso_bad;                  /**< Segment size UDP_SEGMENT refused (0: none):
                                            no GSO for this size and larger. */
};

/** Counters of the outer socket layer (the library counts the rest). */
struct ipsecif_posix_outer_stats {
    uint64_t rx_packets;    /**< Packets received and given to the library. */
    uint64_t rx_truncated;  /**< Packets larger than the buffer (dropped). */
    uint64_t rx_errors;     /**< Receive errors. */
    uint64_t rx_rejected;   /**< Packets the library dropped or did not want. */
    uint64_t tx_packets;    /**< Packets sent. */
    uint64_t tx_errors;     /**< Send errors. */
    uint64_t ip_tx_packets; /**< Whole IP packets sent (ipsecif_posix_outer_send_ip()). */
    uint64_t ip_tx_errors;  /**< Whole IP packets that could not be sent. */
    uint64_t rx_batches;    /**< recvmmsg() calls that returned packets. */
    uint64_t rx_calls;      /**< Library calls the received packets went to. */
    uint64_t tx_batches;    /**< sendmmsg() calls (each sends one or more messages). */
    uint64_t tx_gso;        /**< UDP GSO sends (one message, several ESP-in-UDP packets). */
    uint64_t tx_gso_segs;   /**< Packets sent in them. */
    uint64_t tx_gso_off;    /**< UDP GSO sends the kernel refused (sent one by one instead). */
};

struct ipsecif_posix_rxvec;
struct ipsecif_posix_txq;

/** The outer socket layer. Fields are private. */
struct ipsecif_posix_outer {
    struct ipsecif_posix_loop *loop;        /**< Where the sockets are watched. */
    struct ipsecif_ctx *ctx;                /**< Where received packets go. */
    int raw4;                               /**< Raw IPv4 ESP socket (IP_HDRINCL). */
    int raw6;                               /**< Raw IPv6 ESP socket. */
    struct ipsecif_posix_rxvec *rx;         /**< Receive vector shared by every socket. */
    struct ipsecif_posix_txq *tx;           /**< Send queue. */
    struct ipsecif_posix_natt *natt;        /**< NAT-T sockets (slots). */
    size_t natt_cap;                        /**< Number of slots. */
    struct ipsecif_posix_outer_stats stats; /**< Counters. */
    int ah4;                                /**< Raw IPv4 AH socket, -1 (host mode only). */
    int ah6;                                /**< Raw IPv6 AH socket, -1 (host mode only). */
    int send4;                              /**< IPPROTO_RAW IPv4 socket for whole packets, -1. */
    int send6;                              /**< IPPROTO_RAW IPv6 socket for whole packets, -1. */
    bool host_open;                         /**< The host mode sockets are open. */
    bool udp_gso;                           /**< UDP GSO allowed (default on). */
    uint32_t mark;                          /**< SO_MARK of every socket, 0 = none. */
    size_t batch;                           /**< Packets per library call (1 = single calls). */
    ipsecif_posix_idle_fn burst_end;        /**< After each received batch (may be NULL). */
    void *burst_arg;                        /**< Its argument. */
    pthread_mutex_t *lock;                  /**< Taken around each library call (or NULL). */
    struct ipsecif_posix_outer *natt_home;  /**< Whose NAT-T sockets sends use (NULL: own). */
    uint32_t steer_n;                       /**< Steering: ESP of SPI hash % n ... */
    uint32_t steer_i;                       /**< ... = i is received here (n <= 1: all). */
    bool natt_defer; /**< A NAT-T socket whose last user went stays open (unused) until
                          ipsecif_posix_outer_natt_reap(): other threads may hold packets
                          for it. */
};

/**
 * @brief Open the raw ESP sockets (needs CAP_NET_RAW) and watch them.
 * @param natt_cap NAT-T sockets that may be open at once.
 * @return 0, or -1 with errno set (nothing left open).
 */
int ipsecif_posix_outer_open(struct ipsecif_posix_outer *o, struct ipsecif_posix_loop *loop,
                             size_t natt_cap);

/** Give received packets to ctx (none are read before). */
void ipsecif_posix_outer_set_ctx(struct ipsecif_posix_outer *o, struct ipsecif_ctx *ctx);

/** Close every socket and free the buffers. */
void ipsecif_posix_outer_close(struct ipsecif_posix_outer *o);

/**
 * @brief Host mode: open raw AH sockets (IPv4: whole packets to
 *        ipsecif_input(); IPv6: payload and control data to
 *        ipsecif_input_payload()) and the IPPROTO_RAW sockets that
 *        ipsecif_posix_outer_send_ip() sends whole packets on.
 * @return 0, or -1 with errno set (nothing of it left open).
 */
int ipsecif_posix_outer_host_open(struct ipsecif_posix_outer *o);

/**
 * @brief Put a packet mark (SO_MARK, Linux) on every socket open now and
 *        every one opened later, so that policy routing can tell the port's
 *        own packets from the host's.
 * @return 0, or -1 with errno set (ENOTSUP where there is no SO_MARK).
 */
int ipsecif_posix_outer_set_mark(struct ipsecif_posix_outer *o, uint32_t mark);

/**
 * @brief Send a whole IPv4 or IPv6 packet as it is (header included) on
 *        the IPPROTO_RAW socket of its family, routed to dst.
 * @return 0, or ::IPSECIF_ERR_PORT (counted in ip_tx_errors) with errno
 *         as sendto() left it (EMSGSIZE: larger than the route's MTU; the
 *         kernel does not cut these packets).
 */
int ipsecif_posix_outer_send_ip(struct ipsecif_posix_outer *o, const struct ipsecif_buf *pkt,
                                const struct ipsecif_addr *dst);

/**
 * @brief Take a reference on the NAT-T socket of (family, local port),
 *        opening it on the first one.
 * @return 0, or -1 with errno set.
 */
int ipsecif_posix_outer_natt_ref(struct ipsecif_posix_outer *o, uint8_t family, uint16_t port);

/** Drop a reference; the socket closes with the last one. */
void ipsecif_posix_outer_natt_unref(struct ipsecif_posix_outer *o, uint8_t family, uint16_t port);

/**
 * @brief Queue an outer packet as ipsecif_port::send_outer is given it: ESP
 *        for the raw socket of its family, ESP in UDP (meta->sport nonzero)
 *        for the NAT-T socket of (family, sport).
 *
 * The packet is copied into the send queue (memory taken at open time) and
 * goes out with the next ipsecif_posix_outer_flush(): at the end of each
 * received batch, when the queue is full, and before the loop polls again
 * (a flush hook). The flush sends each socket's packets in the order they
 * were queued, with one sendmmsg() per socket; consecutive ESP-in-UDP
 * packets of one size to the same peer go as one message with UDP_SEGMENT
 * where the kernel has it (UDP GSO). A send that fails is counted per packet
 * in tx_errors (the library sees only what fails here: no socket, no room).
 * @return 0, or ::IPSECIF_ERR_PORT.
 */
int ipsecif_posix_outer_send(struct ipsecif_posix_outer *o, const struct ipsecif_outer_meta *meta,
                             const struct ipsecif_buf *pkt);

/** Send everything queued by ipsecif_posix_outer_send() now. */
void ipsecif_posix_outer_flush(struct ipsecif_posix_outer *o);

/** Allow or forbid UDP GSO (UDP_SEGMENT) for ESP in UDP (allowed by default). */
void ipsecif_posix_outer_set_udp_gso(struct ipsecif_posix_outer *o, bool on);

/**
 * @brief How received packets go to the library: each recvmmsg() vector
 *        in slices of up to n to ipsecif_input_batch() (raw IPv4) or
 *        ipsecif_input_esp_batch() (raw IPv6 ESP, NAT-T UDP), the default
 *        with n = ::IPSECIF_BATCH_MAX; with n = 1 one ipsecif_input(),
 *        ipsecif_input_payload() or ipsecif_input_esp() call per packet.
 *        AH (host mode) always goes one by one to ipsecif_input_payload().
 * @return 0, or -1 with errno EINVAL when n is not in 1..IPSECIF_BATCH_MAX.
 */
int ipsecif_posix_outer_set_batch(struct ipsecif_posix_outer *o, size_t n);

/** Add the counters of s to sum. */
void ipsecif_posix_outer_stats_add(struct ipsecif_posix_outer_stats *sum,
                                   const struct ipsecif_posix_outer_stats *s);

/** Close the NAT-T sockets left open by natt_defer with no user. */
void ipsecif_posix_outer_natt_reap(struct ipsecif_posix_outer *o);

/**
 * @brief Share one context among threads that each have their own outer
 *        sockets: lock (or NULL) is taken around every library call of
 *        the receive path, and sends that need a NAT-T socket use home's
 *        (NULL: this one's own; home's sockets are opened and closed by
 *        its thread under the same lock).
 */
void ipsecif_posix_outer_set_shared(struct ipsecif_posix_outer *o, pthread_mutex_t *lock,
                                    struct ipsecif_posix_outer *home);

/**
 * @brief Receive on the raw ESP sockets only the packets of one share of
 *        the SPIs: those whose SPI hashes to i modulo n (the hash: the SPI
 *        times 0x9e3779b1 modulo 2^32, shifted right by 16; a socket filter
 *        in the kernel, so that every packet of one SA reaches one reader
 *        in order). Packets too short to hold an SPI go to share 0. n <= 1
 *        takes the filter off.
 * @return 0, or -1 with errno set (EINVAL: i >= n).
 */
int ipsecif_posix_outer_steer(struct ipsecif_posix_outer *o, uint32_t n, uint32_t i);

/**
 * @brief Set the hook that runs after each batch of received packets has
 *        gone to the library, before queued sends are flushed (the Linux
 *        port writes the inner packets it held back for coalescing there).
 */
void ipsecif_posix_outer_set_burst_hook(struct ipsecif_posix_outer *o, ipsecif_posix_idle_fn fn,
                                        void *arg);

/* ---- PF_KEY socket ---- */

/** Largest PF_KEY message taken from a client (longer ones get EMSGSIZE). */
#define IPSECIF_POSIX_PFKEY_MSG_MAX 65536u

/** One PF_KEY client connection: one library endpoint. Fields are private. */
struct ipsecif_posix_pfkey;
struct ipsecif_posix_pfkey_client {
    int fd;                          /**< The connection, -1 when the slot is free. */
    uint32_t ep;                     /**< Its library endpoint. */
    struct ipsecif_posix_pfkey *srv; /**< The server it belongs to. */
};

/**
 * @brief A PF_KEY socket server: key-management programs (or the preload
 * library on their behalf) connect to a UNIX-domain SOCK_SEQPACKET socket,
 * one connection being one PF_KEY endpoint, one message per packet both
 * ways; the endpoint closes when the client hangs up.
 *
 * A kernel answers a PF_KEY request inside send(), and programs read right
 * after sending. So a request is only peeked at, answered (replies and
 * broadcasts queued on the clients' connections), and then consumed: once
 * the client's send queue is empty its reply is readable. No other request
 * is read in between, from any client. Every datagram is answered: one
 * shorter than a header (0 bytes included) or longer than
 * ::IPSECIF_POSIX_PFKEY_MSG_MAX gets an EMSGSIZE reply. Fields are private.
 */
struct ipsecif_posix_pfkey {
    int fd;                                     /**< Listening socket, -1 if closed. */
    char path[108];                             /**< Its path (unlinked at close). */
    uint8_t dialect;                            /**< Of every endpoint opened. */
    struct ipsecif_posix_loop *loop;            /**< Where it is watched. */
    struct ipsecif_ctx *ctx;                    /**< The library context. */
    struct ipsecif_posix_pfkey_client *clients; /**< max_clients slots. */
    size_t max_clients;                         /**< Connections at once. */
    int busy;                                   /**< Connection being answered, -1. */
    uint8_t *buf;                               /**< One message. */
};

/**
 * @brief Listen on path (mode 0600; a stale socket there is replaced, any
 *        other file is not) for PF_KEY clients of the given dialect.
 * @return 0, or -1 with errno set.
 */
int ipsecif_posix_pfkey_open(struct ipsecif_posix_pfkey *pk, struct ipsecif_posix_loop *loop,
                             struct ipsecif_ctx *ctx, const char *path, size_t max_clients,
                             uint8_t dialect);

/** Close every client (their endpoints too), stop listening, unlink the path. */
void ipsecif_posix_pfkey_close(struct ipsecif_posix_pfkey *pk);

/**
 * @brief The port's `pfkey_deliver`: queue one message on the endpoint's
 *        connection. A reply to the request being answered waits up to a
 *        second for room; a broadcast to a client that does not read is
 *        dropped, as a kernel drops it on a full socket.
 */
void ipsecif_posix_pfkey_deliver(struct ipsecif_posix_pfkey *pk, uint32_t ep, const uint8_t *msg,
                                 size_t len);

#ifdef __cplusplus
}
#endif

#endif /* IPSECIF_POSIX_H */
