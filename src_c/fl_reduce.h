/*
 * fl_reduce.h -- deterministic, vectorised summation and row primitives.
 *
 * Determinism: every function here adds in an order fixed by the code and the ISA level alone
 * (`omp simd` lanes are a compile-time property), never by the thread count.
 *
 * Precision: every sum accumulates in double, whatever the data type -- sums of per-item losses and
 * every float32 row sum (max aside, which is exact): a float32 running sum of C terms loses up to
 * ~C * 6e-8 relative (1.8e-4 at C = 32000, outside SPEC §4's 1e-5), and its rounding depends on the
 * vector width, so float32 rows gave different answers at different ISA levels.  The terms themselves
 * (exp, products) are formed in the row's precision, at full vector width; only the accumulator is
 * double.  Row sums of exp return the double sum: 1 + (small terms) must not be rounded to float32
 * before log1p(s - 1) (a confident row's loss is s - 1).
 * The same rule outside this file: the class-major runs of fl_tile.h (ce_run, ce_probs_run: float32
 * exps in groups of 4 classes, folded into a per-position double sum every 16 classes, as
 * fl_row_pass_f32 does; targets and shifted logits in double), multi_margin's row sums, and
 * fl_overlap.h's overlap sums.  One float32 sum over classes is left: segmentation.pyx's softmax_run
 * (the denominator of a position's softmax, C terms <= 1 with one of them 1, relative error <= C 2^-24;
 * a double accumulator there cost 8% on W13, Dice over 4 classes).
 */
#ifndef FL_REDUCE_H
#define FL_REDUCE_H

#include <stddef.h>
#include "fl_math.h"
#include "fl_kl.h"

/* `omp simd reduction` lets the compiler keep one partial per vector lane (built with -fopenmp-simd,
 * which needs no OpenMP runtime): fixed order for a given ISA level, hence deterministic. */

/* sum of n values, in double */
static inline double fl_sum_f32(const float* x, ptrdiff_t n) {
    double s = 0.0;
    _Pragma("omp simd reduction(+:s)")
    for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i];
    return s;
}
static inline double fl_sum_f64(const double* x, ptrdiff_t n) {
    double s = 0.0;
    _Pragma("omp simd reduction(+:s)")
    for (ptrdiff_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* Pairwise sum of block partials: O(log n) error growth, fixed order. */
static double fl_pairwise_sum(const double* x, ptrdiff_t n) {
    if (n <= 8) {
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) s += x[i];
        return s;
    }
    ptrdiff_t h = n / 2;
    return fl_pairwise_sum(x, h) + fl_pairwise_sum(x + h, n - h);
}

/* Row loops and their tails.  A row's main loop runs over whole vectors (FL_ROW_VF32 / FL_ROW_VF64 values,
 * the vector width of the ISA level), so the compiler emits no scalar epilogue; the last n % VF values are
 * copied into one padded vector's worth and go through the same vectorised code (padding that adds
 * exactly 0), instead of up to VF - 1 scalar exps: a row of 71 logits cost 1.7x one of 72 without this.
 * The sum order is fixed by n and the ISA level, as before. */
#if defined(__AVX512F__)
#define FL_ROW_VF32 16
#elif defined(__AVX__)
#define FL_ROW_VF32 8
#else
#define FL_ROW_VF32 4
#endif
#define FL_ROW_VF64 (FL_ROW_VF32 / 2)

/* The row after this one (these) is read in by the same loop, a cache line per 16 values computed (a hint: a
 * prefetch never faults, so the address may lie past the array, and is formed as an integer for that
 * reason).  The row max that starts the next row then reads cache, not memory: rows that do not fit in
 * L2 (an 8 MiB batch) spent a third of the row max's time waiting for memory, while the exps here are
 * compute-bound and leave the loads idle. */
#define FL_LINE_FLOATS 16
#if defined(__GNUC__)
#define FL_PREFETCH(x, i) __builtin_prefetch((const void*)((uintptr_t)(x) + (uintptr_t)(i) * sizeof(*(x))), 0, 3)
#define FL_PREFETCH_L2(x, i) \
    __builtin_prefetch((const void*)((uintptr_t)(x) + (uintptr_t)(i) * sizeof(*(x))), 0, 2)
#else
#define FL_PREFETCH(x, i) ((void)0)
#define FL_PREFETCH_L2(x, i) ((void)0)
#endif
/* Long rows (FL_ROW_FAR_N values or more: 2 KiB of float32) also read in the row after the next, towards
 * L2: memory then has a row's compute time more to deliver each line, and those lines wait in L2's
 * queue, not in L1's few fill buffers; the next row still comes into L1 (from L2 by then), so the row max
 * reads L1 as before.  Rows too long for L1 (FL_ROW_L2_N values or more: 32 KiB of float32) read only the
 * next row, towards L2: its lines could not wait in L1 for the row max, and a row is far enough ahead.
 * Thread time against the next row alone into L1 (Intel Xeon, AVX-512, 2026-12-06):
 *   float32 rows of 512 / 1000 / 4000 values: 0.83-0.84 / 0.87-0.88 / 0.75-0.76 at 400 MB of logits,
 *     0.64-0.96 at 40 MB, 1.00-1.03 in L2 (1 MB) and at 8 MB;
 *   float64 rows of 1000 / 4000: 0.66-0.81 at 400 MB, 1.00-1.02 in L2;
 *   the far row alone, without the next one into L1: 3-6% slower in L2; two rows ahead into L1: 1.2x at
 *     400 MB; shorter rows (paired below 512 values, fl_row_pass_f32's R = 2): 0.95-1.06 either way, so
 *     they keep the next row(s) alone;
 *   rows of 8192 / 32000 / 131072 values, the next row into L2 against the rule for 512 on: 0.93-0.95 /
 *     0.99-1.04 / 0.95-0.99 at 520 MB, 0.94-0.95 / 0.96-0.98 at 8 MB; no prefetch at all 1.11 / 1.02-1.04.
 * FL_ROW_PREFETCH(x, n, r, i): row r after x (r = 1: the next), value i of it. */
#define FL_ROW_FAR_N 512
#define FL_ROW_L2_N 8192
#define FL_ROW_PREFETCH(x, n, r, i)                                                                    \
    ((n) >= FL_ROW_L2_N ? FL_PREFETCH_L2(x, (r) * (n) + (i))                                          \
     : (n) >= FL_ROW_FAR_N ? (FL_PREFETCH_L2(x, ((r) + 1) * (n) + (i)), FL_PREFETCH(x, (r) * (n) + (i))) \
     : FL_PREFETCH(x, (r) * (n) + (i)))
/* Row max.  NaN is skipped here but reaches the result through the exp-sum that follows.  Two vectors
 * of lanes at a time, each lane its own running max (one chain of compares was latency-bound); the last
 * n % B values are taken as the last B values of the row (max is idempotent: values seen twice change
 * nothing); the lanes are then reduced (a vector max of the two halves, then a simd max reduction).  Max
 * is exact, so the order changes nothing. */
#define FL_ROW_MAX(T, name, VF, NEG_INF)                                                               \
static inline T name(const T* x, ptrdiff_t n) {                                                       \
    enum { B = 2 * VF };                                                                              \
    T mv[B];                                                                                          \
    if (n < B) {                                                                                      \
        T m = NEG_INF;                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;                                    \
        return m;                                                                                     \
    }                                                                                                 \
    for (int j = 0; j < B; j++) mv[j] = NEG_INF;                                                      \
    ptrdiff_t i = 0;                                                                                  \
    for (; i + B <= n; i += B) {                                                                      \
        _Pragma("omp simd")                                                                           \
        for (int j = 0; j < B; j++) mv[j] = x[i + j] > mv[j] ? x[i + j] : mv[j];                      \
    }                                                                                                 \
    if (i < n) {                                                                                      \
        const T* xt = x + n - B;                                                                      \
        _Pragma("omp simd")                                                                           \
        for (int j = 0; j < B; j++) mv[j] = xt[j] > mv[j] ? xt[j] : mv[j];                            \
    }                                                                                                 \
    T m = NEG_INF;                                                                                    \
    _Pragma("omp simd reduction(max:m)")                                                              \
    for (int j = 0; j < VF; j++) {                                                                    \
        T a = mv[j + VF] > mv[j] ? mv[j + VF] : mv[j];                                                \
        m = a > m ? a : m;                                                                            \
    }                                                                                                 \
    return m;                                                                                         \
}
#if defined(__AVX512F__)
/* AVX-512: the same maximum, its tail as one masked load (the masked-off lanes read nothing, and are -inf)
 * and the two running vectors kept in registers.  The generic form above stored its lanes to the stack
 * for the tail and reduced them through memory: at C = 73-128 (loss alone) the row max, mostly that
 * reduction's latency, took a third of the row's time.  vmaxps(x, m) returns m when x is NaN: NaN is
 * skipped, as above. */
#include <immintrin.h>
static inline float fl_row_max_f32(const float* x, ptrdiff_t n) {
    const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
    __m512 m0 = ninf, m1 = ninf;
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    }
    if (i + 16 <= n) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        i += 16;
    }
    if (i < n) m1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, (__mmask16)((1u << (n - i)) - 1u), x + i), m1);
    return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}
#elif defined(__AVX2__) && defined(__FMA__)
/* AVX2: the same maximum with its two running vectors in registers, the tail as the row's last 2 vectors
 * of values (as above) and the lanes reduced by shuffles (HMAX: the lanes of one vector).  The generic
 * form kept its lanes on the stack and reduced them one scalar at a time: 16 cycles of a 73-class row.
 * One body for float (8 lanes) and double (4 lanes). */
#include <immintrin.h>
#define FL_ROW_MAX_AVX2(T, name, V, W, SET1, LOAD, MAX, HMAX, NEG_INF)                                  \
static inline T name(const T* x, ptrdiff_t n) {                                                       \
    if (n < 2 * (W)) {                                                                                \
        T m = NEG_INF;                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;                                    \
        return m;                                                                                     \
    }                                                                                                 \
    const V ninf = SET1(NEG_INF);                                                                     \
    V m0 = ninf, m1 = ninf;                                                                           \
    ptrdiff_t i = 0;                                                                                  \
    for (; i + 2 * (W) <= n; i += 2 * (W)) {                                                          \
        m0 = MAX(LOAD(x + i), m0);                                                                    \
        m1 = MAX(LOAD(x + i + (W)), m1);                                                              \
    }                                                                                                 \
    if (i < n) {                                                                                      \
        m0 = MAX(LOAD(x + n - 2 * (W)), m0);                                                          \
        m1 = MAX(LOAD(x + n - (W)), m1);                                                              \
    }                                                                                                 \
    return HMAX(MAX(m0, m1));                                                                         \
}
FL_INLINE float fl_hmax_v8(__m256 v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}
FL_INLINE double fl_hmax_v4d(__m256d v) {
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_max_sd(h, _mm_unpackhi_pd(h, h)));
}
FL_ROW_MAX_AVX2(float, fl_row_max_f32, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_max_ps, fl_hmax_v8,
                -__builtin_inff())
FL_ROW_MAX_AVX2(double, fl_row_max_f64, __m256d, 4, _mm256_set1_pd, _mm256_loadu_pd, _mm256_max_pd,
                fl_hmax_v4d, -__builtin_inf())
#undef FL_ROW_MAX_AVX2
#define FL_ROW_MAX_F64_AVX2 1
#else
FL_ROW_MAX(float, fl_row_max_f32, FL_ROW_VF32, -__builtin_inff())
#endif
#ifndef FL_ROW_MAX_F64_AVX2
FL_ROW_MAX(double, fl_row_max_f64, FL_ROW_VF64, -__builtin_inf())
#endif
#undef FL_ROW_MAX

/* sum_i exp(x_i - m) for m = max_i x_i (x_i - m <= 0: fl_exp_nonpos); if e != NULL also stores each
 * exp(x_i - m) there (the softmax numerator, reused by the gradient so that exp runs once per element).
 * The tail is padded with -inf (exp gives exactly 0). */
#define FL_ROW_SUMEXP(T, name, EXP, VF, NEG_INF)                                                       \
static inline double name(const T* x, ptrdiff_t n, T m, T* e) {                                      \
    double s = 0.0;                                                                                   \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                            \
    if (e) {                                                                                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (ptrdiff_t i = 0; i < nb; i++) { T v = EXP(x[i] - m); e[i] = v; s += v; }                 \
    } else {                                                                                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (ptrdiff_t i = 0; i < nb; i++) s += EXP(x[i] - m);                                        \
    }                                                                                                 \
    if (rem) {                                                                                        \
        T pad[VF], out[VF];                                                                           \
        for (int j = 0; j < VF; j++) pad[j] = j < rem ? x[nb + j] : NEG_INF;                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (int j = 0; j < VF; j++) { T v = EXP(pad[j] - m); out[j] = v; s += v; }                   \
        if (e) for (int j = 0; j < rem; j++) e[nb + j] = out[j];                                      \
    }                                                                                                 \
    return s;                                                                                         \
}
#include "fl_vec.h"
#if defined(FL_VD_W)
/* AVX2 and AVX-512 (fl_vec.h's FL_VD_W double lanes: 4 or 8): the same sum -- one running vector of lanes,
 * vector after vector, then its lanes in order, then the padded tail's lanes in order (at AVX2 the generic
 * form's bits; AVX-512's table exp rounds some exps differently, each within its bound) -- with the exps of
 * 4 vectors side by side (fl_exp_nonpos_vn; one vector at a time, each exp's chain of ~18 dependent
 * operations left the loop latency-bound) and the next row read in as this one is computed (FL_ROW_PREFETCH,
 * as fl_row_pass_f32: the row max that follows then reads cache). */
static inline double fl_row_sumexp_f64(const double* x, ptrdiff_t n, double m, double* e) {
    enum { W = FL_VD_W };
    const fl_vd mv = fl_vd_set1(m);
    fl_vd acc = fl_vd_set1(0.0);
    ptrdiff_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        fl_vd d[4], v[4];
        for (int l = 0; l < 4 * W; l += FL_LINE_FLOATS / 2) FL_ROW_PREFETCH(x, n, 1, i + l);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < 4; k++) d[k] = fl_vd_sub(fl_vd_load(x + i + W * k), mv);
        fl_exp_nonpos_vn(4, d, NULL, 0, v);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < 4; k++) {
            if (e) fl_vd_store(e + i + W * k, v[k]);
            acc = fl_vd_add(acc, v[k]);
        }
    }
    for (; i + W <= n; i += W) {
        fl_vd d = fl_vd_sub(fl_vd_load(x + i), mv), v;
        fl_exp_nonpos_vn(1, &d, NULL, 0, &v);
        if (e) fl_vd_store(e + i, v);
        acc = fl_vd_add(acc, v);
    }
    double out[W];
    fl_vd_store(out, acc);
    double s = out[0];
    for (int l = 1; l < W; l++) s += out[l];
    if (i < n) {                              /* the last n % W values, padded with -inf (exp 0) */
        const fl_vdm in = fl_vd_lanes(n - i);
        fl_vd d = fl_vd_sub(fl_vd_load_fill(in, x + i, -__builtin_inf()), mv), v;
        fl_exp_nonpos_vn(1, &d, NULL, 0, &v);
        fl_vd_store(out, v);
        for (int l = 0; l < W; l++) s += out[l];
        if (e) fl_vd_storem(e + i, in, v);
    }
    return s;
}
#else
FL_ROW_SUMEXP(double, fl_row_sumexp_f64, fl_exp_nonpos, FL_ROW_VF64, -__builtin_inf())
#endif
#undef FL_ROW_SUMEXP

/* The float32 row pass of cross-entropy, over one row or two at once (fl_row_pass_f32): s = sum_j exp(x_j - m)
 * (m the row max), the softmax numerators exp(x_j - m) into e if e != NULL, and fused into the same loop (the row is read once) the sums that the
 * loss needs besides s:
 *   FL_RS_DOT   dot = sum_j w_j (x_j - m)                       (label smoothing; w NULL: weights 1)
 *   FL_RS_SOFT  A = sum_j tw_j,  D = sum_j tw_j (x_j - m)       (probability targets,
 *               tw_j = w_j (keep t_j + add), as fl_row_soft_sums)
 * Summation.  Widening every term to double before it is added cost about as much as the exp (extract,
 * two conversions, two double adds per vector), so terms are summed in float lanes and each run of
 * FL_SUMEXP_RUN blocks is then folded into double lanes (no horizontal sum per run: that cost as much
 * as the run).  A block is B = 4 vectors of lanes; a lane adds its block's 4 terms as a tree, (y0 + y1)
 * + (y2 + y3), onto the run's float accumulator, so every term passes through at most 2 + FL_SUMEXP_RUN
 * = 6 float roundings (the first addition onto 0 is exact) before the exact widening.  Accuracy: the
 * max's exp(0) = 1 (and any tie's) is counted apart, exactly, so the float lanes of s hold only the rest
 * r = s - (number of maxima); a sum of positive terms, each through at most 6 roundings, is within
 * 6 2^-24 < 5e-7 of its value, relative: s - 1 (log_sum's log1p argument) keeps that relative
 * precision even for a confident row's tiny r.  The same holds for dot, A and D (terms of one sign
 * when w, t >= 0).  Lanes are folded in halves at the end.  The order is fixed by n and the ISA level
 * (deterministic).
 * The tail (n % B values) runs as vectors of VF lanes; the last, partial one is taken as the row's last
 * VF values with the lanes already counted dropped from the sums and not stored to e (e may be x itself,
 * overwritten in place: the dropped lanes may read values already replaced, and are discarded); a row
 * shorter than VF is padded.
 * The next row's max (xn != NULL: *mn = fl_row_max_f32(xn, n), the same value, max being exact): long rows
 * (R = 1) form it in this pass, from the next row's values loaded beside this row's, and prefetch the row
 * at xf (if not NULL: the row after the next) towards L2 instead of FL_ROW_PREFETCH's rows.  The row max
 * had been a pass of its own, waiting on memory with little to compute, and the exps a pass from cache
 * with little to read; fused, memory delivers the next row while this row's exps run.  Thread time:
 * rows_block_items (classification.pyx).  Without xf the fused pass read memory 1.3-1.4x slower (rows of
 * 1000-32000 values at 400-520 MB; and batches of 1 MB, each from memory, 1.2x); in L2 xf cost 5% at
 * 32000 values, nothing measurable at 1000 and 4000.  (xf is always xn + n where callers pass it, but as
 * a pointer of its own: the same prefetches addressed as xn + n + o read memory 3-5% slower, W1 and W3.)
 * The generic form below takes the max after its pass. */
#define FL_SUMEXP_RUN 4
enum { FL_RS_PLAIN = 0, FL_RS_DOT = 1, FL_RS_SOFT = 2 };
/* A product that is summed afterwards, as the rounded product: GCC fuses a product into the addition that
 * consumes it (an fma) or not depending on the code around it (one row alone and two rows in one pass
 * came out 1 ulp apart, and which rows pair up depends on the block and thread split).  Adding +0 gives
 * round(x) whether or not the compiler fuses that addition with the product (fma(a, b, 0) = round(a b)),
 * and the rounded value, not a product, is what the sums then consume (-0 becomes +0, which no sum
 * starting from +0 can tell). */
#define FL_NOFUSE(x) ((x) + 0.0f)
enum { FL_RS_MAXR = 2 };                      /* rows per pass: 1 or 2 */
/* lane j of row r's values at xp (weights wp, targets tp, exps to ep; counted when `keep`): its exp into
 * y[r][o], a tie with the max into u[r][o], its dot / A / D terms into q1[r][o], q2[r][o] */
#define FL_RS_LANE(r, xp, wp, tp, ep, j, o, keep)                                                      \
    {                                                                                                 \
        float d_ = (xp)[j] - m[r], v_ = fl_expf_softmax(d_);                                         \
        if (has_e) (ep)[j] = v_;                                                                      \
        int k_ = (keep);                                                                              \
        y[r][o] = (k_ && d_ != 0.0f) ? v_ : 0.0f;                                                     \
        u[r][o] = k_ && d_ == 0.0f;                                                                   \
        if (mode == FL_RS_DOT) {                                                                      \
            float q_ = has_w ? FL_NOFUSE((wp)[j] * d_) : d_;                                          \
            q1[r][o] = k_ ? q_ : 0.0f;                                                                \
        } else if (mode == FL_RS_SOFT) {                                                              \
            float tw_ = keep_t * (tp)[j] + add_t;                                                     \
            tw_ = has_w ? FL_NOFUSE((wp)[j] * tw_) : tw_;                                             \
            q1[r][o] = k_ ? tw_ : 0.0f;                                                               \
            q2[r][o] = k_ ? FL_NOFUSE(tw_ * d_) : 0.0f;                                               \
        }                                                                                             \
    }
/* The pass over R rows of n values at once (R = 1 or 2; row r at xs[r], its targets at ts[r], its exps to
 * es[r], its max m[r]; s[r], o1[r], o2[r] its sums).  Two rows go through the same loop, a block of each per
 * iteration: a row's own work is one dependent chain from its max to its folded sum (the exp's ~15
 * dependent operations, the lanes' additions, the fold), whose latency a 100-class row could not fill
 * with independent work; interleaved, each row's chain hides the other's (C = 64-128: 15-20% less time per
 * row).  Each row's sums are formed exactly as alone -- the same operations in the same order -- so a row's
 * result does not depend on which row it is paired with (or whether it is paired at all). */
/* The generic form below (scalar lanes under omp simd) runs at the baseline level; where fl_vec.h has vectors
 * (AVX2 + FMA, AVX-512) the register form after it runs instead, with the same bits. */
#include "fl_vec.h"
#if defined(FL_V_W)
#define FL_ROW_PASS_V 1
#endif
#ifndef FL_ROW_PASS_V
FL_INLINE void fl_row_pass_f32(int R, const float** xs, const float* w, const float** ts,
                               ptrdiff_t n, const float* m, float** es, int mode, int has_e, int has_w,
                               float keep_t, float add_t, double* s, double* o1, double* o2,
                               const float* xn, const float* xf, float* mn) {
    enum { VF = FL_ROW_VF32, B = 4 * FL_ROW_VF32, MR = FL_RS_MAXR };
    double sd[MR][VF], s1[MR][VF], s2[MR][VF];
    int32_t k[MR][VF], u[MR][B];
    float a[MR][VF], a1[MR][VF], a2[MR][VF], y[MR][B], q1[MR][B], q2[MR][B];
    ptrdiff_t nb = n / B;
    _Pragma("GCC unroll 2")
    for (int r = 0; r < R; r++)
        for (int j = 0; j < VF; j++) { sd[r][j] = 0.0; s1[r][j] = 0.0; s2[r][j] = 0.0; k[r][j] = 0; }
    /* y, u, q1, q2 need no zeros: the lanes write every value that is read (and zeroing q1, q2, a memset
     * the compiler made a `rep stos`, cost 13% of a 73-class row with probability targets) */
    for (ptrdiff_t v0 = 0; v0 < nb; v0 += FL_SUMEXP_RUN) {
        ptrdiff_t v1 = nb - v0 < FL_SUMEXP_RUN ? nb : v0 + FL_SUMEXP_RUN;
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++)
            for (int j = 0; j < VF; j++) { a[r][j] = 0.0f; a1[r][j] = 0.0f; a2[r][j] = 0.0f; }
        for (ptrdiff_t v = v0; v < v1; v++) {
            const ptrdiff_t o = v * B;
            /* the R rows after the last one, read in by this loop (FL_ROW_PREFETCH; rows in order) */
            _Pragma("GCC unroll 2")
            for (int r = 1; r <= R; r++)
                for (int l = 0; l < B; l += FL_LINE_FLOATS) FL_ROW_PREFETCH(xs[R - 1], n, r, o + l);
            _Pragma("GCC unroll 2")
            for (int r = 0; r < R; r++) {
                const float* xp = xs[r] + o;
                const float* wp = w + o;
                const float* tp = ts[r] + o;
                float* ep = es[r] + o;
                _Pragma("omp simd")
                for (int j = 0; j < B; j++) FL_RS_LANE(r, xp, wp, tp, ep, j, j, 1)
            }
            _Pragma("GCC unroll 2")
            for (int r = 0; r < R; r++) {
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) {
                    a[r][j] += (y[r][j] + y[r][VF + j]) + (y[r][2 * VF + j] + y[r][3 * VF + j]);
                    k[r][j] += (u[r][j] + u[r][VF + j]) + (u[r][2 * VF + j] + u[r][3 * VF + j]);
                    if (mode != FL_RS_PLAIN)
                        a1[r][j] += (q1[r][j] + q1[r][VF + j]) + (q1[r][2 * VF + j] + q1[r][3 * VF + j]);
                    if (mode == FL_RS_SOFT)
                        a2[r][j] += (q2[r][j] + q2[r][VF + j]) + (q2[r][2 * VF + j] + q2[r][3 * VF + j]);
                }
            }
        }
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) {
            _Pragma("omp simd")
            for (int j = 0; j < VF; j++) {
                sd[r][j] += (double)a[r][j]; s1[r][j] += (double)a1[r][j]; s2[r][j] += (double)a2[r][j];
            }
        }
    }
    if (nb * B < n) {                         /* the tail: at most 4 vectors */
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++)
            for (int j = 0; j < VF; j++) { a[r][j] = 0.0f; a1[r][j] = 0.0f; a2[r][j] = 0.0f; }
        for (ptrdiff_t o = nb * B; o < n; o += VF) {
            _Pragma("GCC unroll 2")
            for (int r = 0; r < R; r++) {
                const float* x = xs[r];
                const float* t = ts[r];
                float* e = es[r];
                if (o + VF <= n) {
                    const float* xp = x + o;
                    const float* wp = w + o;
                    const float* tp = t + o;
                    float* ep = e + o;
                    _Pragma("omp simd")
                    for (int j = 0; j < VF; j++) FL_RS_LANE(r, xp, wp, tp, ep, j, j, 1)
                } else if (n >= VF) {         /* the last VF values, the first VF - (n - o) already counted */
                    const ptrdiff_t ot = n - VF, drop = o - ot;
                    const float* xp = x + ot;
                    const float* wp = w + ot;
                    const float* tp = t + ot;
                    float ep[VF];
                    _Pragma("omp simd")
                    for (int j = 0; j < VF; j++) FL_RS_LANE(r, xp, wp, tp, ep, j, j, j >= drop)
                    if (has_e) for (ptrdiff_t j = drop; j < VF; j++) e[ot + j] = ep[j];
                } else {                      /* a row shorter than VF: padded */
                    const ptrdiff_t rem = n - o;
                    float xp[VF], wp[VF], tp[VF], ep[VF];
                    for (int j = 0; j < VF; j++) {
                        xp[j] = j < rem ? x[o + j] : 0.0f;
                        wp[j] = j < rem && has_w ? w[o + j] : 0.0f;
                        tp[j] = j < rem && mode == FL_RS_SOFT ? t[o + j] : 0.0f;
                    }
                    _Pragma("omp simd")
                    for (int j = 0; j < VF; j++) FL_RS_LANE(r, xp, wp, tp, ep, j, j, j < rem)
                    if (has_e) for (int j = 0; j < rem; j++) e[o + j] = ep[j];
                }
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) {
                    a[r][j] += y[r][j];
                    k[r][j] += u[r][j];
                    if (mode != FL_RS_PLAIN) a1[r][j] += q1[r][j];
                    if (mode == FL_RS_SOFT) a2[r][j] += q2[r][j];
                }
            }
        }
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) {
            _Pragma("omp simd")
            for (int j = 0; j < VF; j++) {
                sd[r][j] += (double)a[r][j]; s1[r][j] += (double)a1[r][j]; s2[r][j] += (double)a2[r][j];
            }
        }
    }
    /* lanes folded in halves, fully unrolled (as a loop over h the lanes stayed on the stack, added one by
     * one: a fifth of a 96-class row's time) */
    _Pragma("GCC unroll 2")
    for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 8")
        for (int h = VF / 2; h >= 1; h /= 2) {
            _Pragma("GCC unroll 8")
            for (int j = 0; j < h; j++) {
                sd[r][j] += sd[r][j + h]; s1[r][j] += s1[r][j + h]; s2[r][j] += s2[r][j + h]; k[r][j] += k[r][j + h];
            }
        }
        if (o1) o1[r] = s1[r][0];
        if (o2) o2[r] = s2[r][0];
        s[r] = (double)k[r][0] + sd[r][0];
    }
    (void)xf;
    if (xn) *mn = fl_row_max_f32(xn, n);
}
#else /* FL_ROW_PASS_V */
/* AVX2 and AVX-512 (fl_vec.h's FL_V_W lanes, fl_expf_softmax_vn): the same pass -- the same terms, added in
 * the same order, so the same bits as the generic form above would give at the level (compared with a C
 * harness over rows of 1-140 and longer values, every mode, hostile values, e in place, at AVX2; the whole
 * API's float32 outputs before and after, at AVX-512) -- with its state in registers.  GCC's form of the
 * generic loop kept a block's terms (y, u, q1, q2) on the stack (AVX2: ~8 stack moves per vector of terms)
 * and computed one exp after another, each a chain of ~14 dependent operations: more instructions in
 * flight than the out-of-order window holds.  Here the exps of a block's vectors go 4 side by side; a
 * row's state is its float run lanes, its double lanes (0 to W/2 - 1 and W/2 to W - 1) and one integer
 * vector; the ties are counted by the mask d != 0 that already selects the other terms (ties = values
 * counted - terms counted: one compare less per vector).  AVX2, C = 73-128: 12-20% less time per row with
 * index targets, 25-35% with probability targets (one row per pass); AVX-512: see RESULTS.md, session 9. */
typedef struct {
    fl_vf a, a1, a2;                          /* the run's float lanes of s (its ties apart), o1, o2 */
    fl_vd sd0, sd1, s10, s11, s20, s21;       /* double lanes [0, W/2), [W/2, W) */
    fl_vi nt;                                 /* the number of terms counted that are not ties */
} fl_rs_v;
/* a product that is summed afterwards, rounded (FL_NOFUSE: GCC contracts an intrinsic product into the
 * intrinsic addition that consumes it just as it does scalar code) */
FL_INLINE fl_vf fl_v_mul_nofuse(fl_vf a, fl_vf b) { return fl_v_add(fl_v_mul(a, b), fl_v_set1(0.0f)); }
/* The terms of K vectors (K <= 4; the exps side by side, fl_expf_softmax_vn): vector k holds values x[k]
 * of the row with max m[k] and state st[k], weights / targets wv[k] / tv[k] (already loaded, or unused),
 * its lanes counted where keep[k] is set (keep NULL: every lane).  v[k]: the exps (for e; only where
 * has_e); y[k], q1[k], q2[k]: the terms of s, o1, o2, zero outside keep.  Without e the lanes not counted
 * are zeroed by the exp's own final select (as the tiles do): one operation less per vector. */
FL_INLINE void fl_rs_v_terms(int K, const fl_vf* x, const fl_vf* m, const fl_vf* wv, const fl_vf* tv,
                             const fl_vm* keep, int mode, int has_e, int has_w, fl_vf keep_t, fl_vf add_t,
                             fl_rs_v** st, fl_vf* v, fl_vf* y, fl_vf* q1, fl_vf* q2) {
    fl_vf d[4];
    fl_vm counted[4];
    _Pragma("GCC unroll 4")
    for (int k = 0; k < K; k++) {
        d[k] = fl_v_sub(x[k], m[k]);
        counted[k] = fl_v_ne(d[k], fl_v_set1(0.0f));                   /* d != 0: not a tie */
        if (keep) counted[k] = fl_v_mand(keep[k], counted[k]);
    }
    fl_expf_softmax_vn(K, d, counted, !has_e, v);
    _Pragma("GCC unroll 4")
    for (int k = 0; k < K; k++) {
        st[k]->nt = fl_v_count(st[k]->nt, counted[k]);
        y[k] = has_e ? fl_v_keep(counted[k], v[k]) : v[k];
        if (mode == FL_RS_DOT) {
            q1[k] = has_w ? fl_v_mul_nofuse(wv[k], d[k]) : d[k];
            if (keep) q1[k] = fl_v_keep(keep[k], q1[k]);
        } else if (mode == FL_RS_SOFT) {
            fl_vf tw = fl_v_fmadd(keep_t, tv[k], add_t);
            if (has_w) tw = fl_v_mul_nofuse(wv[k], tw);
            q1[k] = tw;
            q2[k] = fl_v_mul_nofuse(tw, d[k]);
            if (keep) {
                q1[k] = fl_v_keep(keep[k], q1[k]);
                q2[k] = fl_v_keep(keep[k], q2[k]);
            }
        }
    }
}
FL_INLINE void fl_rs_v_fold(fl_rs_v* st, int mode) {
    fl_v_widen_add(&st->sd0, &st->sd1, st->a);
    if (mode != FL_RS_PLAIN) fl_v_widen_add(&st->s10, &st->s11, st->a1);
    if (mode == FL_RS_SOFT) fl_v_widen_add(&st->s20, &st->s21, st->a2);
}
/* The tail of R rows of n >= W values from o0 on (T = ceil((n - o0) / W) <= 4 vectors a row): vector q of a
 * row at oq = o0 + W q if whole, else the row's last W values with the lanes before oq dropped.  Its terms
 * are added onto the row's run lanes in q order, as the generic form's tail loop adds them. */
FL_INLINE void fl_rs_v_tail(int R, int T, const float** xs, const float* w, const float** ts, ptrdiff_t n,
                            ptrdiff_t o0, const fl_vf* mv, float** es, int mode, int has_e, int has_w,
                            fl_vf kt, fl_vf at, fl_rs_v* st) {
    enum { VF = FL_V_W, MR = FL_RS_MAXR };
    const fl_vf zero = fl_v_set1(0.0f);
    const int NV = R * T;
    fl_vf y[MR][4], q1[MR][4], q2[MR][4];
    _Pragma("GCC unroll 2")
    for (int g = 0; g < NV; g += 4) {
        const int K = NV - g < 4 ? NV - g : 4;
        fl_vf xk[4], mk[4], wk[4], tk[4], vk[4], yk[4], q1k[4], q2k[4];
        fl_vm kk[4];
        ptrdiff_t ot[4];
        fl_rs_v* sk[4];
        _Pragma("GCC unroll 4")
        for (int k = 0; k < K; k++) {
            const int r = R == 2 ? (g + k) % 2 : 0, q = R == 2 ? (g + k) / 2 : g + k;
            const ptrdiff_t oq = o0 + q * VF;
            ot[k] = oq + VF <= n ? oq : n - VF;
            kk[k] = fl_v_lanes_from(oq - ot[k]);
            xk[k] = fl_v_load(xs[r] + ot[k]);
            mk[k] = mv[r];
            wk[k] = has_w ? fl_v_load(w + ot[k]) : zero;
            tk[k] = mode == FL_RS_SOFT ? fl_v_load(ts[r] + ot[k]) : zero;
            sk[k] = &st[r];
        }
        fl_rs_v_terms(K, xk, mk, wk, tk, kk, mode, has_e, has_w, kt, at, sk, vk, yk, q1k, q2k);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < K; k++) {
            const int r = R == 2 ? (g + k) % 2 : 0, q = R == 2 ? (g + k) / 2 : g + k;
            /* the dropped lanes keep what e holds there (e may be x, already replaced) */
            if (has_e) fl_v_store_lanes(es[r] + ot[k], kk[k], vk[k]);
            y[r][q] = yk[k]; q1[r][q] = q1k[k]; q2[r][q] = q2k[k];
        }
    }
    _Pragma("GCC unroll 2")
    for (int r = 0; r < R; r++) {
        _Pragma("GCC unroll 4")
        for (int q = 0; q < T; q++) {
            st[r].a = fl_v_add(st[r].a, y[r][q]);
            if (mode != FL_RS_PLAIN) st[r].a1 = fl_v_add(st[r].a1, q1[r][q]);
            if (mode == FL_RS_SOFT) st[r].a2 = fl_v_add(st[r].a2, q2[r][q]);
        }
    }
}
FL_INLINE void fl_row_pass_f32(int R, const float** xs, const float* w, const float** ts,
                               ptrdiff_t n, const float* m, float** es, int mode, int has_e, int has_w,
                               float keep_t, float add_t, double* s, double* o1, double* o2,
                               const float* xn, const float* xf, float* mn) {
    enum { VF = FL_V_W, B = 4 * FL_V_W, MR = FL_RS_MAXR };
    const fl_vf zero = fl_v_set1(0.0f);
    const fl_vf kt = fl_v_set1(keep_t), at = fl_v_set1(add_t);
    fl_rs_v st[MR];
    fl_vf mv[MR];
    const ptrdiff_t nb = n / B;
    fl_vf nm = fl_v_set1(-__builtin_inff());                 /* the next row's running max (xn) */
    _Pragma("GCC unroll 2")
    for (int r = 0; r < R; r++) {
        mv[r] = fl_v_set1(m[r]);
        st[r].sd0 = st[r].sd1 = st[r].s10 = st[r].s11 = st[r].s20 = st[r].s21 = fl_v_dzero();
        st[r].nt = fl_v_izero();
    }
    for (ptrdiff_t v0 = 0; v0 < nb; v0 += FL_SUMEXP_RUN) {
        const ptrdiff_t v1 = nb - v0 < FL_SUMEXP_RUN ? nb : v0 + FL_SUMEXP_RUN;
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) st[r].a = st[r].a1 = st[r].a2 = zero;
        for (ptrdiff_t v = v0; v < v1; v++) {
            const ptrdiff_t o = v * B;
            if (xn) {                 /* as fl_row_max_f32's loop: vmaxps(x, m) skips NaN */
                fl_vf b0 = fl_v_max(fl_v_load(xn + o), fl_v_max(fl_v_load(xn + o + VF), nm));
                fl_vf b1 = fl_v_max(fl_v_load(xn + o + 2 * VF), fl_v_max(fl_v_load(xn + o + 3 * VF), nm));
                nm = fl_v_max(b0, b1);
                if (xf)
                    for (int l = 0; l < B; l += FL_LINE_FLOATS) FL_PREFETCH_L2(xf, o + l);
            } else {
                _Pragma("GCC unroll 2")
                for (int r = 1; r <= R; r++)
                    for (int l = 0; l < B; l += FL_LINE_FLOATS) FL_ROW_PREFETCH(xs[R - 1], n, r, o + l);
            }
            /* the block's 4 R vectors, four at a time: rows 0 and 1's q-th, or one row's q-th and next */
            fl_vf y[MR][4], q1[MR][4], q2[MR][4];
            _Pragma("GCC unroll 4")
            for (int g = 0; g < R; g++) {
                fl_vf xk[4], mk[4], wk[4], tk[4], vk[4], yk[4], q1k[4], q2k[4];
                fl_rs_v* sk[4];
                _Pragma("GCC unroll 4")
                for (int k = 0; k < 4; k++) {
                    const int r = R == 2 ? k % 2 : 0, q = R == 2 ? 2 * g + k / 2 : k;
                    const ptrdiff_t oq = o + q * VF;
                    xk[k] = fl_v_load(xs[r] + oq);
                    mk[k] = mv[r];
                    wk[k] = has_w ? fl_v_load(w + oq) : zero;
                    tk[k] = mode == FL_RS_SOFT ? fl_v_load(ts[r] + oq) : zero;
                    sk[k] = &st[r];
                }
                fl_rs_v_terms(4, xk, mk, wk, tk, NULL, mode, has_e, has_w, kt, at, sk, vk, yk, q1k, q2k);
                _Pragma("GCC unroll 4")
                for (int k = 0; k < 4; k++) {
                    const int r = R == 2 ? k % 2 : 0, q = R == 2 ? 2 * g + k / 2 : k;
                    if (has_e) fl_v_store(es[r] + o + q * VF, vk[k]);
                    y[r][q] = yk[k]; q1[r][q] = q1k[k]; q2[r][q] = q2k[k];
                }
            }
            _Pragma("GCC unroll 2")
            for (int r = 0; r < R; r++) {
                st[r].a = fl_v_add(st[r].a, fl_v_add(fl_v_add(y[r][0], y[r][1]), fl_v_add(y[r][2], y[r][3])));
                if (mode != FL_RS_PLAIN)
                    st[r].a1 = fl_v_add(st[r].a1, fl_v_add(fl_v_add(q1[r][0], q1[r][1]),
                                                           fl_v_add(q1[r][2], q1[r][3])));
                if (mode == FL_RS_SOFT)
                    st[r].a2 = fl_v_add(st[r].a2, fl_v_add(fl_v_add(q2[r][0], q2[r][1]),
                                                           fl_v_add(q2[r][2], q2[r][3])));
            }
        }
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) fl_rs_v_fold(&st[r], mode);
    }
    if (nb * B < n) {                         /* the tail: at most 4 vectors, as the generic form */
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) st[r].a = st[r].a1 = st[r].a2 = zero;
        if (n >= VF) {
            /* the tail's vectors at o0, o0 + W, ...: its whole vectors, then its partial last one (as the
             * row's last W values, the lanes before it dropped), the exps of both rows' tails side by side
             * in groups of 4 as the blocks' (one vector after another, a tail vector cost ~1.7 block
             * vectors; AVX2, C = 73-88: 2-7% less time per row) */
            const ptrdiff_t o0 = nb * B;
            switch ((n - o0 + VF - 1) / VF) {
            case 1: fl_rs_v_tail(R, 1, xs, w, ts, n, o0, mv, es, mode, has_e, has_w, kt, at, st); break;
            case 2: fl_rs_v_tail(R, 2, xs, w, ts, n, o0, mv, es, mode, has_e, has_w, kt, at, st); break;
            case 3: fl_rs_v_tail(R, 3, xs, w, ts, n, o0, mv, es, mode, has_e, has_w, kt, at, st); break;
            default: fl_rs_v_tail(R, 4, xs, w, ts, n, o0, mv, es, mode, has_e, has_w, kt, at, st); break;
            }
        } else {                  /* a row shorter than W: its lanes read by a masked load (0 beyond) */
            _Pragma("GCC unroll 2")
            for (int r = 0; r < R; r++) {
                fl_vf vv, y, q1 = zero, q2 = zero;
                const fl_vm keep = fl_v_lanes(n);
                fl_vf wv = has_w ? fl_v_loadz(keep, w) : zero;
                fl_vf tv = mode == FL_RS_SOFT ? fl_v_loadz(keep, ts[r]) : zero;
                fl_vf xv = fl_v_loadz(keep, xs[r]);
                fl_rs_v* sr = &st[r];
                fl_rs_v_terms(1, &xv, &mv[r], &wv, &tv, &keep, mode, has_e, has_w, kt, at, &sr, &vv, &y, &q1,
                              &q2);
                if (has_e) fl_v_storem(es[r], keep, vv);
                st[r].a = fl_v_add(st[r].a, y);
                if (mode != FL_RS_PLAIN) st[r].a1 = fl_v_add(st[r].a1, q1);
                if (mode == FL_RS_SOFT) st[r].a2 = fl_v_add(st[r].a2, q2);
            }
        }
        _Pragma("GCC unroll 2")
        for (int r = 0; r < R; r++) fl_rs_v_fold(&st[r], mode);
    }
    _Pragma("GCC unroll 2")
    for (int r = 0; r < R; r++) {
        /* ties = values counted (n) - terms counted; double lanes folded in halves (as the generic form) */
        if (o1) o1[r] = fl_vd_sum_halves(st[r].s10, st[r].s11);
        if (o2) o2[r] = fl_vd_sum_halves(st[r].s20, st[r].s21);
        s[r] = (double)(n - fl_v_isum(st[r].nt)) + fl_vd_sum_halves(st[r].sd0, st[r].sd1);
    }
    if (xn) {                                 /* its lanes, then its tail (nb B .. n) */
        float lanes[VF], mx, mt;
        fl_v_store(lanes, nm);
        mx = fl_row_max_f32(lanes, VF);
        if (nb * B < n) {
            mt = fl_row_max_f32(xn + nb * B, n - nb * B);
            mx = mt > mx ? mt : mx;
        }
        *mn = mx;
    }
}
#endif /* FL_ROW_PASS_V */
#undef FL_RS_LANE
/* fl_row_pass_f32 with has_e = (es != NULL) and has_w = (w != NULL) as constants: each of the four its own
 * inlined loop (e: es, or when es is NULL any row array, not written) */
#define FL_ROW_PASS_EW(R, xs, w, ts, n, m, es, e, mode, kt, at, s, o1, o2, xn, xf, mn)                  \
    ((es) && (w) ? fl_row_pass_f32(R, xs, w, ts, n, m, e, mode, 1, 1, kt, at, s, o1, o2, xn, xf, mn)    \
     : (es)      ? fl_row_pass_f32(R, xs, NULL, ts, n, m, e, mode, 1, 0, kt, at, s, o1, o2, xn, xf, mn) \
     : (w)       ? fl_row_pass_f32(R, xs, w, ts, n, m, e, mode, 0, 1, kt, at, s, o1, o2, xn, xf, mn)    \
                 : fl_row_pass_f32(R, xs, NULL, ts, n, m, e, mode, 0, 0, kt, at, s, o1, o2, xn, xf, mn))
/* One row (R = 1): s = sum_j exp(x_j - m), exps to e if e != NULL */
static inline double fl_row_sumexp_f32(const float* x, ptrdiff_t n, float m, float* e) {
    double s;
    float** ep = e ? &e : (float**)&x;        /* not written without e */
    FL_ROW_PASS_EW(1, &x, NULL, &x, n, &m, e, ep, FL_RS_PLAIN, 0, 0, &s, NULL, NULL, NULL, NULL, NULL);
    return s;
}
/* R = 1 or 2 rows at xs (maxima m, exps to es[r] if es != NULL): s[r], and dot[r] = sum_j w_j (x_j - m[r])
 * if dot != NULL (w NULL: weights 1); with xn (R = 1), also *mn, the max of the row at xn, and the row
 * at xf read in (fl_row_pass_f32) */
static inline void fl_rows_sumexp_dot_f32(int R, const float** xs, const float* w, ptrdiff_t n,
                                          const float* m, float** es, double* s, double* dot,
                                          const float* xn, const float* xf, float* mn) {
    float** e = es ? es : (float**)xs;
    if (R == 2 && dot)
        FL_ROW_PASS_EW(2, xs, w, xs, n, m, es, e, FL_RS_DOT, 0, 0, s, dot, NULL, NULL, NULL, NULL);
    else if (R == 2)
        FL_ROW_PASS_EW(2, xs, NULL, xs, n, m, es, e, FL_RS_PLAIN, 0, 0, s, NULL, NULL, NULL, NULL, NULL);
    else if (dot) FL_ROW_PASS_EW(1, xs, w, xs, n, m, es, e, FL_RS_DOT, 0, 0, s, dot, NULL, xn, xf, mn);
    else FL_ROW_PASS_EW(1, xs, NULL, xs, n, m, es, e, FL_RS_PLAIN, 0, 0, s, NULL, NULL, xn, xf, mn);
}
/* R = 1 or 2 rows at xs, targets at ts: s[r], and the probability-target sums A[r], D[r] of
 * fl_row_soft_sums; with xn, also *mn (as fl_rows_sumexp_dot_f32), formed in the last row's pass.  One row
 * per pass: two rows' five running sums in one loop ran no faster (C = 49-1000). */
static inline void fl_rows_sumexp_soft_f32(int R, const float** xs, const float** ts, const float* w,
                                           ptrdiff_t n, const float* m, float keep, float add, float** es,
                                           double* s, double* A, double* D, const float* xn, const float* xf,
                                           float* mn) {
    float** e = es ? es : (float**)xs;
    for (int r = 0; r < R; r++)
        FL_ROW_PASS_EW(1, xs + r, w, ts + r, n, m + r, es, e + r, FL_RS_SOFT, keep, add, s + r, A + r, D + r,
                       r == R - 1 ? xn : NULL, xf, mn);
}

/* sum_i w_i * (x_i - m) (w may be NULL: weights 1): the label-smoothing sum over logits shifted by the
 * row max, so no large |x| cancels against m * sum w afterwards.  Tail padded with x = m, w = 0. */
#define FL_ROW_DOT_SHIFT(T, name, VF)                                                                  \
static inline double name(const T* x, const T* w, ptrdiff_t n, T m) {                                 \
    double s = 0.0;                                                                                   \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                            \
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < nb; i++) s += w[i] * (x[i] - m); } \
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < nb; i++) s += x[i] - m; }  \
    if (rem) {                                                                                        \
        T xp[VF], wp[VF];                                                                             \
        for (int j = 0; j < VF; j++) {                                                                \
            xp[j] = j < rem ? x[nb + j] : m;                                                          \
            wp[j] = j < rem ? (w ? w[nb + j] : (T)1) : (T)0;                                          \
        }                                                                                             \
        _Pragma("omp simd reduction(+:s)") for (int j = 0; j < VF; j++) s += wp[j] * (xp[j] - m);     \
    }                                                                                                 \
    return s;                                                                                         \
}
FL_ROW_DOT_SHIFT(float, fl_row_dot_shift_f32, FL_ROW_VF32)
FL_ROW_DOT_SHIFT(double, fl_row_dot_shift_f64, FL_ROW_VF64)
#undef FL_ROW_DOT_SHIFT

/* Probability-target sums of one row: with tw_i = w_i * (keep * t_i + add) (w NULL: weights 1),
 *   A = sum_i tw_i,   D = sum_i tw_i * (x_i - m)        (x_i - m <= 0, so -D >= 0)
 * (cross-entropy with probability targets is A * log s - D: two non-negative terms).  Tail padded with
 * w = 0 (and t = 0, x = m). */
#define FL_SOFT_SUMS(T, name, VF)                                                                      \
static inline void name(const T* x, const T* t, const T* w, ptrdiff_t n, T m, T keep, T add,         \
                        double* A_out, double* D_out) {                                              \
    double A = 0.0, D = 0.0;                                                                         \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                           \
    if (w) {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < nb; i++) { T tw = w[i] * (keep * t[i] + add); A += tw; D += tw * (x[i] - m); } \
    } else {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < nb; i++) { T tw = keep * t[i] + add; A += tw; D += tw * (x[i] - m); } \
    }                                                                                                \
    if (rem) {                                                                                       \
        T xp[VF], tp[VF], wp[VF];                                                                    \
        for (int j = 0; j < VF; j++) {                                                               \
            xp[j] = j < rem ? x[nb + j] : m;                                                         \
            tp[j] = j < rem ? t[nb + j] : (T)0;                                                      \
            wp[j] = j < rem ? (w ? w[nb + j] : (T)1) : (T)0;                                         \
        }                                                                                            \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (int j = 0; j < VF; j++) { T tw = wp[j] * (keep * tp[j] + add); A += tw; D += tw * (xp[j] - m); } \
    }                                                                                                \
    *A_out = A;                                                                                      \
    *D_out = D;                                                                                      \
}
FL_SOFT_SUMS(float, fl_row_soft_sums_f32, FL_ROW_VF32)
FL_SOFT_SUMS(double, fl_row_soft_sums_f64, FL_ROW_VF64)
#undef FL_SOFT_SUMS

/* Distillation sums of one student row x and teacher row u (fl_kl.h's terms, in class order within each
 * vector lane), and the row's gradient g from them. */
#define FL_KL_SUMS(T, name, gname)                                                                     \
static inline void name(const T* x, const T* u, ptrdiff_t n, double mx, double mu, double inv_t,      \
                        double* ss_out, double* st_out, double* W_out) {                             \
    double ss = 0.0, st = 0.0, W = 0.0;                                                              \
    _Pragma("omp simd reduction(+:ss,st,W)")                                                         \
    for (ptrdiff_t i = 0; i < n; i++) FL_KL_ADD(x[i], u[i], mx, mu, inv_t, ss, st, W);               \
    *ss_out = ss;                                                                                    \
    *st_out = st;                                                                                    \
    *W_out = W;                                                                                      \
}                                                                                                    \
static inline void gname(const T* x, const T* u, ptrdiff_t n, double mx, double mu, double inv_t,     \
                         double ss, double st, double scale, T* g) {                                 \
    _Pragma("omp simd")                                                                              \
    for (ptrdiff_t i = 0; i < n; i++) g[i] = (T)fl_kl_grad(x[i], u[i], mx, mu, inv_t, ss, st, scale); \
}
FL_KL_SUMS(float, fl_row_kl_sums_f32, fl_row_kl_grad_f32)
FL_KL_SUMS(double, fl_row_kl_sums_f64, fl_row_kl_grad_f64)
#undef FL_KL_SUMS

#endif /* FL_REDUCE_H */
