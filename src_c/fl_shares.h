/*
 * fl_shares.h -- handing a run's blocks to the threads of an OpenMP team (_common.pxd: run_blocks).
 *
 * The blocks 0 .. nb-1 are cut into one contiguous share per thread.  A thread first runs its own share
 * front to back; when that is done it takes blocks from the back of the other shares.  So:
 *   - called again on the same inputs, each thread reads the same part of them as last time, which is still
 *     in its own core's cache (a guided schedule handed the blocks to whichever thread came first, and a
 *     cache-resident "none" run at T=2 moved its data between the cores on every call: MSE over 96 000
 *     items ran 13 us with fixed shares against 21 us);
 *   - a thread that the OS preempts on a busy machine does not hold back its share: the others take it
 *     from its end (a plain static schedule would wait for it).
 * Which thread runs a block does not change the result: each block's sums are stored at its own index.
 *
 * A share's state is one 64-bit word, (next << 32) | end, changed by compare-and-swap, so its owner (at the
 * front) and a thief (at the back) never take the same block.  Blocks are counted in 32 bits: a run of
 * 2^31 blocks or more does not use the shares (fl_shares_fit), nor a compiler without GCC's atomic builtins.
 */
#ifndef FL_SHARES_H
#define FL_SHARES_H

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uint64_t range;             /* (next << 32) | end: blocks next .. end-1 are not taken yet */
    char pad[64 - sizeof(uint64_t)];   /* two shares' words 64 bytes apart: never in one cache line */
} fl_share;

/* whether run_blocks hands nb blocks out by shares; else it keeps a guided schedule (a compiler without GCC's
 * atomic builtins, or 2^31 blocks or more) */
static inline int fl_shares_fit(int64_t nb) {
#if defined(__GNUC__)
    return nb >= 0 && nb < ((int64_t)1 << 31);
#else
    (void)nb;
    return 0;
#endif
}

/* n shares of blocks 0 .. nb-1 (share s: s nb / n .. (s + 1) nb / n - 1); NULL if no memory.  Free with
 * free(). */
static inline fl_share* fl_shares_new(int n, int64_t nb) {
    fl_share* sh = n < 1 ? NULL : (fl_share*)malloc((size_t)n * sizeof(fl_share));
    if (sh == NULL) return NULL;
    for (int s = 0; s < n; s++) {
        uint64_t lo = (uint64_t)(nb * s / n), hi = (uint64_t)(nb * (s + 1) / n);
        sh[s].range = (lo << 32) | hi;
    }
    return sh;
}

/* takes the front (back = 0) or the back (back = 1) block of a share: its index, or -1 if none is left */
static inline int64_t fl_share_take(fl_share* sh, int back) {
#if !defined(__GNUC__)
    (void)sh; (void)back;
    return -1;          /* (not reached: fl_shares_fit is 0) */
#else
    uint64_t r = __atomic_load_n(&sh->range, __ATOMIC_RELAXED);
    for (;;) {
        uint32_t lo = (uint32_t)(r >> 32), hi = (uint32_t)r;
        if (lo >= hi) return -1;
        uint64_t nr = back ? ((uint64_t)lo << 32) | (hi - 1) : ((uint64_t)(lo + 1) << 32) | hi;
        if (__atomic_compare_exchange_n(&sh->range, &r, nr, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return back ? (int64_t)(hi - 1) : (int64_t)lo;
    }
#endif
}

/* the next block for thread t of the team: its own share's front, else another share's back (the next
 * shares after t's first); -1 when every block is taken.  A team smaller than n leaves shares without an
 * owner, which the others take from the back. */
static inline int64_t fl_shares_next(fl_share* sh, int n, int t) {
    int64_t b;
    if (t < n && (b = fl_share_take(sh + t, 0)) >= 0) return b;
    for (int k = 1; k <= n; k++) {
        if ((b = fl_share_take(sh + (t + k) % n, 1)) >= 0) return b;
    }
    return -1;
}

#endif /* FL_SHARES_H */
