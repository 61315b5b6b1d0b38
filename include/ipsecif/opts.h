/**
 * @file opts.h
 * @brief Compile-time options of libipsecif.
 *
 * A build may define IPSECIF_OPTS_FILE (for example
 * `-DIPSECIF_OPTS_FILE="my_ipsecif_opts.h"`) to name a header that sets any of
 * the options below; every option not set there gets the default given here.
 * All options are numbers tested with `#if`, so a misspelt name fails a build
 * that uses `-Wundef`.
 */
#ifndef IPSECIF_OPTS_H
#define IPSECIF_OPTS_H

#ifdef IPSECIF_OPTS_FILE
#include IPSECIF_OPTS_FILE
#endif

/**
 * @defgroup ipsecif_opts Options
 * @brief Compile-time options; each may be set in the options file.
 * @{
 */

/** Bytes reserved in every SA for the crypto backend's key schedule. */
#ifndef IPSECIF_CRYPTO_SLOT_SIZE
#define IPSECIF_CRYPTO_SLOT_SIZE 1024
#endif

/** 1 to compile ipsecif_strerror() with message texts, 0 for a stub that
 *  returns an empty string (saves flash). */
#ifndef IPSECIF_STRERROR
#define IPSECIF_STRERROR 1
#endif

/** Largest anti-replay window, in packets, that an SA may ask for. A
 *  multiple of 32. The context reserves this many bits per SA. */
#ifndef IPSECIF_REPLAY_WINDOW_MAX
#define IPSECIF_REPLAY_WINDOW_MAX 4096
#endif

/** Largest number of IPsec requests (ESP/AH, transport/tunnel) in one policy. */
#ifndef IPSECIF_MAX_REQUESTS
#define IPSECIF_MAX_REQUESTS 2
#endif

/** Longest interface name, including the terminating NUL. */
#ifndef IPSECIF_IFNAME_SIZE
#define IPSECIF_IFNAME_SIZE 16
#endif

/** Largest encryption key (bytes, salt included) an SA may carry. */
#ifndef IPSECIF_MAX_EKEY
#define IPSECIF_MAX_EKEY 36
#endif

/** Largest authentication key (bytes) an SA may carry. */
#ifndef IPSECIF_MAX_AKEY
#define IPSECIF_MAX_AKEY 64
#endif

/** 1 to keep a copy of SA keys so PF_KEY GET/DUMP can return them as
 *  RFC 2367 says; 0 saves IPSECIF_MAX_EKEY+IPSECIF_MAX_AKEY bytes per SA and
 *  GET/DUMP then omit keys. */
#ifndef IPSECIF_SA_KEEP_KEYS
#define IPSECIF_SA_KEEP_KEYS 1
#endif

/** 1 to call the port's log callback, 0 to compile logging out. */
#ifndef IPSECIF_LOG
#define IPSECIF_LOG 1
#endif

/** Largest PF_KEY message the library builds (replies, dumps one entry
 *  at a time, ACQUIRE, EXPIRE), in bytes; a multiple of 8, at least 1024.
 *  The context reserves this much once when PF_KEY endpoints are
 *  configured. Incoming messages are not limited by it. */
#ifndef IPSECIF_PFKEY_MSG_MAX
#define IPSECIF_PFKEY_MSG_MAX 4096
#endif

/** Most packets the batch functions (ipsecif_if_output_batch(),
 *  ipsecif_input_batch()) take through their stages together, and the
 *  longest burst handed to the crypto backend; longer vectors go in
 *  slices of this many. The batch functions keep about 400 bytes of stack per packet of a slice. */
#ifndef IPSECIF_BATCH_MAX
#define IPSECIF_BATCH_MAX 32
#endif

/** @} */

#if IPSECIF_BATCH_MAX < 1 || IPSECIF_BATCH_MAX > 256
#error "IPSECIF_BATCH_MAX must be in 1..256"
#endif
#if (IPSECIF_REPLAY_WINDOW_MAX % 32) != 0 || IPSECIF_REPLAY_WINDOW_MAX < 32
#error "IPSECIF_REPLAY_WINDOW_MAX must be a positive multiple of 32"
#endif
#if IPSECIF_MAX_REQUESTS < 1
#error "IPSECIF_MAX_REQUESTS must be at least 1"
#endif
#if IPSECIF_IFNAME_SIZE < 8
#error "IPSECIF_IFNAME_SIZE must be at least 8"
#endif
#if IPSECIF_PFKEY_MSG_MAX < 1024 || (IPSECIF_PFKEY_MSG_MAX % 8) != 0 ||                            \
    IPSECIF_PFKEY_MSG_MAX > 65536
#error "IPSECIF_PFKEY_MSG_MAX must be a multiple of 8 in 1024..65536"
#endif
#if IPSECIF_CRYPTO_SLOT_SIZE < 64 || (IPSECIF_CRYPTO_SLOT_SIZE % 16) != 0
#error "IPSECIF_CRYPTO_SLOT_SIZE must be a multiple of 16, at least 64"
#endif

#endif /* IPSECIF_OPTS_H */
