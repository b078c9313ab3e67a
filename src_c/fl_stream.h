/*
 * fl_stream.h -- moving a segment's data: its inputs prefetched ahead (fl_prefetch_range), and its results
 * copied from an L1 buffer to their output: to a large output with non-temporal (streaming) stores
 * (fl_stream_copy), else with plain vector moves (fl_copy_short).
 *
 * A plain store to a line that is not in cache first reads the line (read-for-ownership), so writing an
 * output that streams through memory costs its bytes twice on the memory bus; a streaming store writes
 * whole 64-byte lines without reading them (W17's huber with a reused 40 MB grad_out=: ~7.5 -> ~5 ms at
 * T=1).  Only for outputs that do not stay in cache anyway (the caller decides), and only for buffers
 * whose pages already exist: a fresh array's pages are zeroed by the kernel on first touch, which leaves
 * the lines in cache, where plain stores are cheaper (the streaming stores were 13% slower there).
 *
 * The partial lines at both ends of a copy get plain stores (memcpy); the lines in between, 64-byte
 * aligned, get streaming ones.  Streaming stores are weakly ordered: a block that used them ends with
 * fl_stream_fence() before its results are read by another thread.  The values are copied bit for bit.
 */
#ifndef FL_STREAM_H
#define FL_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

/* Prefetch [p, p + bytes) into L1, one request per 64-byte line.  Callers: the segmentation overlap's next
 * run (C + 1 streams S positions apart, which the hardware prefetcher restarts at every 4 KiB page, where
 * the run stalled on the load) and the elementwise losses' loops (a few hundred items ahead, where the
 * exps and logs of a compute-heavy kind, or a whole block's sum, left the hardware prefetcher behind).  A
 * prefetch never faults; the callers keep the range inside the arrays anyway.
 * Always inlined: GCC counts a prefetch as free of side effects, so a function of nothing but prefetches
 * that it does not inline is "const" to it, and it deletes the calls (a Cython helper that made three of
 * these calls vanished from the triplet's row loops; so do the callers' own helpers: the calls stay in the
 * loops that use them). */
static inline __attribute__((always_inline)) void fl_prefetch_range(const void* p, ptrdiff_t bytes) {
    const char* c = (const char*)p;
    for (ptrdiff_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 3);
}

/* fl_prefetch_range of [off, off + bytes) of three arrays, line by line in turn (the triplet's rows of
 * a, p and n: metric.pyx's row loops) */
static inline __attribute__((always_inline)) void fl_prefetch_range3(const void* a, const void* b, const void* c,
                                                                    ptrdiff_t off, ptrdiff_t bytes) {
    for (ptrdiff_t o = off; o < off + bytes; o += 64) {
        __builtin_prefetch((const char*)a + o, 0, 3);
        __builtin_prefetch((const char*)b + o, 0, 3);
        __builtin_prefetch((const char*)c + o, 0, 3);
    }
}

static inline void fl_stream_copy(void* dst, const void* src, ptrdiff_t bytes) {
#if defined(__SSE2__)
    char* d = (char*)dst;
    const char* s = (const char*)src;
    ptrdiff_t head = (ptrdiff_t)(-(uintptr_t)d & 63);
    if (head > bytes) head = bytes;
    memcpy(d, s, (size_t)head);
    d += head; s += head; bytes -= head;
    for (; bytes >= 64; bytes -= 64, d += 64, s += 64) {
#if defined(__AVX512F__)
        _mm512_stream_si512((void*)d, _mm512_loadu_si512((const void*)s));
#elif defined(__AVX__)
        _mm256_stream_si256((__m256i*)d, _mm256_loadu_si256((const __m256i*)s));
        _mm256_stream_si256((__m256i*)(d + 32), _mm256_loadu_si256((const __m256i*)(s + 32)));
#else
        for (int q = 0; q < 64; q += 16)
            _mm_stream_si128((__m128i*)(d + q), _mm_loadu_si128((const __m128i*)(s + q)));
#endif
    }
    memcpy(d, s, (size_t)bytes);
#else
    memcpy(dst, src, (size_t)bytes);
#endif
}

/* A plain copy of a short L1 buffer (a segment's gradients) in vector moves: GCC expands a memcpy of a
 * constant size as `rep movsq`, whose start-up cost was ~6% of BCE-with-logits' loss + gradient (Zen 3).
 * The values are copied bit for bit. */
static inline void fl_copy_short(void* dst, const void* src, ptrdiff_t bytes) {
    char* d = (char*)dst;
    const char* s = (const char*)src;
#if defined(__AVX__)
    for (; bytes >= 32; bytes -= 32, d += 32, s += 32)
        _mm256_storeu_si256((__m256i*)d, _mm256_loadu_si256((const __m256i*)s));
#elif defined(__SSE2__)
    for (; bytes >= 16; bytes -= 16, d += 16, s += 16)
        _mm_storeu_si128((__m128i*)d, _mm_loadu_si128((const __m128i*)s));
#endif
    memcpy(d, s, (size_t)bytes);
}

static inline void fl_stream_fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

#endif
