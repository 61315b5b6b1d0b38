/*
 * Anti-replay window (RFC 4303 section 3.4.3 and Appendix A), for ESP and
 * AH (RFC 4302 section 3.4.3 and Appendix B).
 *
 * The window holds the last replay_window sequence numbers up to and
 * including replay_top. Its bitmap is a ring of exactly replay_window bits:
 * sequence number s lives at bit s mod W. Every number in [top-W+1, top]
 * has its own bit, so the whole window is usable (no slack word), and
 * sliding the window clears exactly the bits of the numbers that enter it,
 * a word at a time. Only numbers from 1 to replay_top are ever looked up,
 * and each was cleared when it entered, so the bitmap needs no clearing
 * when the SA starts.
 *
 * With a window of 0 nothing is checked except that 0 is never a valid
 * sequence number; replay_top still follows the highest number seen so that
 * the ESN high half can be inferred, for which a window of 32 is assumed.
 */
#include "core/ctx.h"

/* Window assumed for ESN inference when anti-replay is off. */
#define INFER_WINDOW_OFF 32u

static bool bit_get(const uint32_t *bits, uint32_t pos)
{
    return (bits[pos >> 5] >> (pos & 31)) & 1u;
}

/* Bit position of sequence number s in a window of w bits: s mod w, a
 * mask for the usual power-of-two windows. */
static uint32_t win_pos(uint64_t s, uint32_t w)
{
    return (w & (w - 1)) == 0 ? (uint32_t)s & (w - 1) : (uint32_t)(s % w);
}

/* Clear bits [a, b) of the bitmap, whole words where possible. */
static void clear_span(uint32_t *bits, uint32_t a, uint32_t b)
{
    while (a < b) {
        uint32_t shift = a & 31;
        uint32_t n = 32 - shift;
        uint32_t mask;

        if (n > b - a) {
            n = b - a;
        }
        mask = n == 32 ? 0xffffffffu : ((1u << n) - 1u) << shift;
        bits[a >> 5] &= ~mask;
        a += n;
    }
}

/* ESN: the high half of the 64-bit number for a received low half, as
 * RFC 4303 Appendix A.2.1 infers it from the window. Returns false if the
 * number would fall before 0 or beyond 2^64 - 1: no such packet can be valid. */
static bool infer_high(uint64_t top, uint32_t w, uint32_t seq_lo, uint32_t *hi)
{
    uint32_t tl = (uint32_t)top;
    uint32_t th = (uint32_t)(top >> 32);
    uint32_t bl = tl - w + 1; /* bottom of the window, mod 2^32 */

    if (tl >= w - 1) {
        /* The window lies within one 2^32 subspace. */
        if (seq_lo >= bl) {
            *hi = th;
            return true;
        }
        if (th == 0xffffffffu) {
            return false;
        }
        *hi = th + 1;
        return true;
    }
    /* The window spans two subspaces: a high seq_lo is from the older one. */
    if (seq_lo >= bl) {
        if (th == 0) {
            return false;
        }
        *hi = th - 1;
        return true;
    }
    *hi = th;
    return true;
}

int ipsecif_replay_check(const struct ipsecif_sa *sa, uint32_t seq_lo, uint64_t *seq)
{
    uint32_t w = sa->replay_window;
    uint64_t top = sa->replay_top;
    uint64_t s = seq_lo;
    uint64_t next = top + 1;

    /* In order, the usual case: the number after the highest is new (what
     * the inference below gives for its low half, without the window). */
    if (seq_lo == (uint32_t)next && next != 0 &&
        ((sa->flags & IPSECIF_SA_F_ESN) != 0 || next <= 0xffffffffu)) {
        if (seq != NULL) {
            *seq = next;
        }
        return IPSECIF_OK;
    }
    if (sa->flags & IPSECIF_SA_F_ESN) {
        uint32_t hi;

        if (!infer_high(top, w != 0 ? w : INFER_WINDOW_OFF, seq_lo, &hi)) {
            return IPSECIF_ERR_REPLAY;
        }
        s = ((uint64_t)hi << 32) | seq_lo;
    }
    /* No sender ever uses 0: the first packet of an SA carries 1. */
    if (s == 0) {
        return IPSECIF_ERR_REPLAY;
    }
    if (w != 0 && s <= top) {
        if (top - s >= w) {
            return IPSECIF_ERR_REPLAY;
        }
        if (sa->replay_bits == NULL || bit_get(sa->replay_bits, win_pos(s, w))) {
            return IPSECIF_ERR_REPLAY;
        }
    }
    if (seq != NULL) {
        *seq = s;
    }
    return IPSECIF_OK;
}

void ipsecif_replay_update(struct ipsecif_sa *sa, uint64_t seq)
{
    uint32_t w = sa->replay_window;
    uint32_t *bits = sa->replay_bits;
    uint32_t pos;

    if (w == 0 || bits == NULL) {
        if (seq > sa->replay_top) {
            sa->replay_top = seq;
        }
        return;
    }
    if (seq == sa->replay_top + 1) {
        /* In order, the usual case: seq alone enters, at the bit that held
         * seq - W, so clearing it and setting it is setting it. */
        pos = win_pos(seq, w);
        bits[pos >> 5] |= 1u << (pos & 31);
        sa->replay_top = seq;
        return;
    }
    if (seq > sa->replay_top) {
        uint64_t diff = seq - sa->replay_top;

        if (diff >= w) {
            clear_span(bits, 0, w);
        } else {
            /* The numbers top+1 .. seq enter; their bits held numbers W older. */
            uint32_t start = win_pos(sa->replay_top + 1, w);
            uint32_t n = (uint32_t)diff;

            if (start + n <= w) {
                clear_span(bits, start, start + n);
            } else {
                clear_span(bits, start, w);
                clear_span(bits, 0, start + n - w);
            }
        }
        sa->replay_top = seq;
    } else if (sa->replay_top - seq >= w) {
        return;
    }
    pos = win_pos(seq, w);
    bits[pos >> 5] |= 1u << (pos & 31);
}
