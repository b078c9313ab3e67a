/*
 * fl_tile_ce.h -- the fused class-major cross-entropy pass of fl_tile.h, written once over the element
 * type: fl_tile.h includes it twice, once per type, with these defined (undefined again at its end):
 *   FL_CE_T           the element type (float / double)
 *   FL_CE_NAME(x)     x with the type's suffix (x##_f32 / x##_f64)
 *   FL_CE_OP(op)      the type's vector operation (fl_v_##op / fl_vd_##op, fl_vec.h)
 *   FL_CE_V, FL_CE_M, FL_CE_I, FL_CE_W   its vector, lane mask, int32 lanes, lane count
 *   FL_CE_EXP         its softmax exp of N vectors in lock step (fl_expf_softmax_vn / fl_exp_nonpos_vn)
 *   FL_CE_TIES        1: the max's (and ties') exp(0) = 1 counted apart (float); 0: summed as any term
 *   FL_CE_RUN         groups of 4 classes per run of the partial sum (FL_TILE_SUMEXP_RUN / PTRDIFF_MAX)
 *   FL_CE_ACC(s0, s1, a)        a run's partial a onto the double sums (float: widened halves; double: s0)
 *   FL_CE_STORE_S(p, m, s0, s1, FULL)  the sums to p (FULL: whole vector, else lanes m)
 * Defines FL_CE_NAME(fl_tile_ce) (index targets, with or without label smoothing's sum) and
 * FL_CE_NAME(fl_tile_ce_soft) (probability targets), whatever the level: they return 0 where there is no
 * vector pass.
 *
 * Passes 1 and 2 fused (float: index targets, label smoothing, focal, probability targets; double: index
 * targets; AVX2 and AVX-512), chunks of 4 blocks of FL_CE_W positions (one vector
 * each: 8 floats / 4 doubles with AVX2, 16 / 8 with AVX-512): the max of the 4 blocks at once (4
 * independent chains), then per block the target's logit (a masked gather) and the sum of exps with every
 * partial in registers (the two passes of fl_tile.h keep their per-position partials in memory, one load and
 * store per class per vector, and gather the targets one position at a time).  Bit for bit the same m, xy, s
 * (and exps in g) as fl_tile_max_pick + fl_tile_sumexp in FL_TS_PLAIN: the max in class order per lane, the
 * same exp (each of its a * b + c contracted to an fma as GCC contracts it in those loops), the same groups
 * of 4 classes and runs (FL_CE_RUN), the last C % 4 classes as their own run, float's ties counted apart.
 * The last L % FL_CE_W positions go through masked loads and stores (never past the run).  Returns 0,
 * having done nothing, where it does not apply (neither AVX2 + FMA nor AVX-512, or offsets past int32 for
 * the target gather): the caller runs the two passes.  (A variant that loaded the next chunk during this
 * chunk's exp pass, to hide its memory latency, measured 15% slower on AVX-512.)
 */
#if defined(FL_CE_W)
#ifndef FL_TILE_PF_DEFINED
#define FL_TILE_PF_DEFINED
/* What a fused pass prefetches towards L2 while its exps run: the next tile's rows, so that their read
 * from memory overlaps the arithmetic.  n bytes at p (n = 0: none) and as many at p2 (or NULL: the next
 * tile's probability targets), q lines of each before each group of 4 classes of pass 2 (fl_tile_pf_init:
 * spread evenly over the groups), o bytes of each issued so far.  Issued a slice per chunk instead, all at
 * once (one slice for a tile of C >= 64: a chunk of 64 rows), the prefetches left the next tile's read as
 * slow as without them; spread, Intel Xeon at AVX-512, thread time, 4 MiB of logits: 0.75-0.85x the time
 * for index targets at C = 24-88 (classification.pyx: prefetch_end).  (Two regions of their own sizes,
 * the labels spread too, ran 5-9% slower than this with the labels prefetched at once by the caller.) */
typedef struct {
    const char* p;
    const char* p2;
    ptrdiff_t o, n;
    int q;
} fl_tile_pf;
/* pf for n bytes at p and p2, spread over the groups of L positions x C classes (W lanes a vector); a run
 * of fewer than 4 classes (no group) prefetches them at once */
FL_INLINE fl_tile_pf fl_tile_pf_init(const void* p, const void* p2, ptrdiff_t n, ptrdiff_t C, ptrdiff_t L,
                                     int W) {
    const ptrdiff_t groups = ((L + W - 1) / W) * (C / 4);
    fl_tile_pf pf = {(const char*)p, (const char*)p2, 0, p ? n : 0, 0};
    if (groups > 0) {
        pf.q = (int)((pf.n / 64 + groups - 1) / groups);
    } else {
        fl_prefetch_l2(p, pf.n);
        fl_prefetch_l2(p2, p2 ? pf.n : 0);
        pf.n = 0;
    }
    return pf;
}
/* the next q lines of each region, interleaved (a prefetch never faults: the last step may run past n).
 * Not fl_prefetch_l2 of each region in turn: that ordering read 1-2% slower for probability targets at C =
 * 10-32 (thread time, 4 MiB). */
FL_INLINE void fl_tile_pf_step(fl_tile_pf* pf) {
    for (int i = 0; i < pf->q; i++) {
        __builtin_prefetch(pf->p + pf->o + 64 * i, 0, 2);
        if (pf->p2) __builtin_prefetch(pf->p2 + pf->o + 64 * i, 0, 2);
    }
    pf->o += 64 * (ptrdiff_t)pf->q;
}
#endif
/* the weighted target sums of a fused pass (FL_TS_SOFT's A, D; label smoothing's D alone): targets t (the
 * logits' layout; NULL: index targets, tw_j = w_j), weights w (or NULL: 1), tw_j = w_j (keep t_j + add) */
typedef struct {
    const FL_CE_T* t;
    const FL_CE_T* w;
    FL_CE_T keep, add;
    double* A;
    double* D;
} FL_CE_NAME(fl_tile_soft);
/* a * b rounded, never contracted into the addition that sums it (GCC contracts intrinsic products as
 * scalar ones, and might do so in one copy of the chunk loop and not in another): round(a b) + 0 is
 * round(a b) (-0 becomes +0, which no sum from +0 can tell) */
FL_INLINE FL_CE_V FL_CE_NAME(fl_v_mul_rounded)(FL_CE_V a, FL_CE_V b) {
    return FL_CE_OP(add)(FL_CE_OP(mul)(a, b), FL_CE_OP(set1)(0));
}
/* the R = C % 4 last classes' terms onto the runs' lanes (their own run), as (v0 + v1) + v2 */
FL_INLINE FL_CE_V FL_CE_NAME(fl_v_sum_rest)(const FL_CE_V* v, const int R) {
    return R == 1 ? v[0] : R == 2 ? FL_CE_OP(add)(v[0], v[1]) : FL_CE_OP(add)(FL_CE_OP(add)(v[0], v[1]), v[2]);
}
FL_INLINE FL_CE_V FL_CE_NAME(fl_v_sum4)(const FL_CE_V* v) {
    return FL_CE_OP(add)(FL_CE_OP(add)(v[0], v[1]), FL_CE_OP(add)(v[2], v[3]));
}
/* the N classes j .. j+N-1 (N <= 4) of the block at k, read at xr + j * rs (the chunk's copy, else in place):
 * their sum terms into y[]: float, 0 for a tie with the max (d == 0; counted apart: nt counts the others,
 * d != 0, so the ties are C - nt), as for a d below the exp's range (fl_expf_softmax's select, here one
 * mask with the tie's); their exps into g (if HAS_G).  SOFT: the target sums' terms, tw_j into q1[] (HAS_T)
 * and tw_j d_j into q2[]; formed after the exps (before them, their vectors were live across the exps:
 * more spills).  FULL: a whole block, plain loads; else masked by lm.
 * PF: the same classes' lines FL_CE_PF positions on prefetched (in place), for the next chunk's max pass,
 * which otherwise waits on the first touch of C streams (a prefetch never faults: past the run it reads
 * ahead for the next run). */
#define FL_CE_TERMS(j, N, y)                                                                            \
    FL_CE_V y[4], q1[4], q2[4];                                                                       \
    {                                                                                                 \
        FL_CE_V d_[4];                                                                                \
        FL_CE_M ne_[4];                                                                               \
        for (int i_ = 0; i_ < (N); i_++) {                                                            \
            const FL_CE_T* xj_ = xr + ((j) + i_) * rs;                                                \
            if (PF) _mm_prefetch((const char*)(xs + ((j) + i_) * cs + k + FL_CE_PF), _MM_HINT_T0);     \
            d_[i_] = FL_CE_OP(sub)(FULL ? FL_CE_OP(load)(xj_) : FL_CE_OP(loadz)(lm, xj_), mx);        \
            if (FL_CE_TIES) FL_CE_COUNT_TIE(i_);                                                      \
        }                                                                                             \
        FL_CE_EXP((N), d_, ne_, FL_CE_TIES && !HAS_G, y);                                             \
        if (SOFT)                                                                                     \
            for (int i_ = 0; i_ < (N); i_++) {                                                        \
                FL_CE_V tw_ = FL_CE_OP(set1)(HAS_W ? sp->w[(j) + i_] : 1);                            \
                if (HAS_T) {                                                                          \
                    const FL_CE_T* tj_ = sp->t + ((j) + i_) * cs + k;                                 \
                    if (PF) _mm_prefetch((const char*)(tj_ + FL_CE_PF), _MM_HINT_T0);                  \
                    const FL_CE_V tk_ = FL_CE_OP(fmadd)(kt, FULL ? FL_CE_OP(load)(tj_)                \
                                                             : FL_CE_OP(loadz)(lm, tj_), at);         \
                    tw_ = HAS_W ? FL_CE_NAME(fl_v_mul_rounded)(tw_, tk_) : tk_;                       \
                    q1[i_] = tw_;                                                                     \
                }                                                                                     \
                q2[i_] = HAS_T || HAS_W ? FL_CE_NAME(fl_v_mul_rounded)(tw_, d_[i_]) : d_[i_];         \
            }                                                                                         \
        if (HAS_G)                                                                                    \
            for (int i_ = 0; i_ < (N); i_++) {                                                        \
                FL_CE_T* gj_ = g + ((j) + i_) * cs + k;                                               \
                if (FULL) FL_CE_OP(store)(gj_, y[i_]); else FL_CE_OP(storem)(gj_, lm, y[i_]);        \
                if (FL_CE_TIES) FL_CE_DROP_TIE(i_);                                                   \
            }                                                                                         \
    }
#if FL_CE_TIES
#define FL_CE_COUNT_TIE(i_) (ne_[i_] = FL_CE_OP(ne)(d_[i_], zero), nt = FL_CE_OP(count)(nt, ne_[i_]))
#define FL_CE_DROP_TIE(i_) (y[i_] = FL_CE_OP(keep)(ne_[i_], y[i_]))
#else
#define FL_CE_COUNT_TIE(i_) ((void)0)
#define FL_CE_DROP_TIE(i_) ((void)0)
#endif
#define FL_CE_PF 128
#define FL_CE_BUF_C 64      /* classes copied per chunk (16 KiB at AVX-512); more are read in place twice */
/* class strides from which a run is read through the chunk copy, with the next chunk prefetched: the spatial
 * layout (images).  A tile (cs = L <= FL_TILE_RUN, 16 KiB) sits in L1 whole: there the copy and the
 * prefetches only cost (AVX2, C = 10..72: 3-9% of the pass). */
#define FL_CE_FAR_CS 1024
#define FL_CE_REST(R)                                                                                   \
    a = FL_CE_OP(add)(a, FL_CE_NAME(fl_v_sum_rest)(y, (R)));                                          \
    if (HAS_T) a1 = FL_CE_OP(add)(a1, FL_CE_NAME(fl_v_sum_rest)(q1, (R)));                            \
    if (SOFT) a2 = FL_CE_OP(add)(a2, FL_CE_NAME(fl_v_sum_rest)(q2, (R)));
#define FL_CE_SUMS(F, P)                                                                                \
    {                                                                                                 \
        const int FULL = (F), PF = (P);                                                               \
        FL_CE_NT_DECL                                                                                 \
        ptrdiff_t j = 0;                                                                              \
        while (j < C) {                                                                               \
            FL_CE_V a = zero, a1 = zero, a2 = zero;                                                   \
            if (j + 4 <= C) {                                                                         \
                for (ptrdiff_t r = 0; r < (FL_CE_RUN) && j + 4 <= C; r++, j += 4) {                   \
                    if (pf->o < pf->n) fl_tile_pf_step(pf);                                           \
                    FL_CE_TERMS(j, 4, y)                                                              \
                    a = FL_CE_OP(add)(a, FL_CE_NAME(fl_v_sum4)(y));                                   \
                    if (HAS_T) a1 = FL_CE_OP(add)(a1, FL_CE_NAME(fl_v_sum4)(q1));                     \
                    if (SOFT) a2 = FL_CE_OP(add)(a2, FL_CE_NAME(fl_v_sum4)(q2));                      \
                }                                                                                     \
            } else {                        /* the last C % 4: (y0 + y1) + y2 */                      \
                if (C - j == 1) { FL_CE_TERMS(j, 1, y) FL_CE_REST(1) }                                \
                else if (C - j == 2) { FL_CE_TERMS(j, 2, y) FL_CE_REST(2) }                           \
                else { FL_CE_TERMS(j, 3, y) FL_CE_REST(3) }                                           \
                j = C;                                                                                \
            }                                                                                         \
            FL_CE_ACC(s0, s1, a);                                                                     \
            if (HAS_T) FL_CE_ACC(A0, A1, a1);                                                         \
            if (SOFT) FL_CE_ACC(D0, D1, a2);                                                          \
        }                                                                                             \
        FL_CE_NT_ADD                                                                                  \
    }
#if FL_CE_TIES
#define FL_CE_NT_DECL fl_vi nt = fl_v_izero();
#define FL_CE_NT_ADD fl_v_widen_add_i(&s0, &s1, fl_v_isub(fl_v_iset1((int32_t)C), nt));  /* ties' exp(0) = 1 */
#else
#define FL_CE_NT_DECL
#define FL_CE_NT_ADD
#endif
#define FL_CE_CHUNK (4 * FL_CE_W)    /* positions per chunk: 4 blocks of FL_CE_W */
/* a load / store of block b of the chunk: plain where the chunk is whole (FULLC), else masked by l_b (AVX2's
 * masked loads and stores cost several times a plain one; a masked store ~6x) */
#define FL_CE_LD(b, p) (FULLC ? FL_CE_OP(load)(p) : FL_CE_OP(loadz)(l##b, p))
#define FL_CE_ST(b, p, v) (FULLC ? FL_CE_OP(store)(p, v) : FL_CE_OP(storem)(p, l##b, v))
/* one chunk, positions [k0, k0 + FL_CE_CHUNK) (FULLC), else [k0, L).  HAS_Y: index targets ys (their logit
 * to xy); SOFT: sp's D (and A with HAS_T: probability targets sp->t; HAS_W: sp->w set) */
FL_INLINE void FL_CE_NAME(fl_tile_ce_chunk)(const FL_CE_T* xs, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L,
                                            ptrdiff_t k0, const int32_t* ys, const FL_CE_NAME(fl_tile_soft)* sp,
                                            FL_CE_T* g, FL_CE_T* m, FL_CE_T* xy, double* s, FL_CE_V* buf,
                                            fl_tile_pf* pf, const int far, const int copy, const int HAS_G,
                                            const int HAS_Y, const int SOFT, const int HAS_T, const int HAS_W,
                                            const int FULLC) {
    const FL_CE_V zero = FL_CE_OP(set1)(0);
    const FL_CE_V kt = FL_CE_OP(set1)(HAS_T ? sp->keep : 0), at = FL_CE_OP(set1)(HAS_T ? sp->add : 0);
    const ptrdiff_t rs = copy ? FL_CE_CHUNK : cs;
    const FL_CE_I rsv = FL_CE_OP(iset1)((int32_t)rs);
    /* pass 1 for 4 blocks at once (4 independent chains of max, each in class order): the max
     * (x > m ? x : m, NaN skipped, as fl_tile_max_pick) and the target's logit */
    const FL_CE_M l0 = FL_CE_OP(lanes)(L - k0), l1 = FL_CE_OP(lanes)(L - k0 - FL_CE_W);
    const FL_CE_M l2 = FL_CE_OP(lanes)(L - k0 - 2 * FL_CE_W), l3 = FL_CE_OP(lanes)(L - k0 - 3 * FL_CE_W);
    const FL_CE_T* x0 = xs + k0;
    FL_CE_V m0 = FL_CE_LD(0, x0), m1 = FL_CE_LD(1, x0 + FL_CE_W);
    FL_CE_V m2 = FL_CE_LD(2, x0 + 2 * FL_CE_W), m3 = FL_CE_LD(3, x0 + 3 * FL_CE_W);
    if (copy) { buf[0] = m0; buf[1] = m1; buf[2] = m2; buf[3] = m3; }
    for (ptrdiff_t j = 1; j < C; j++) {
        const FL_CE_T* xc = x0 + j * cs;
        FL_CE_V v0 = FL_CE_LD(0, xc), v1 = FL_CE_LD(1, xc + FL_CE_W);
        FL_CE_V v2 = FL_CE_LD(2, xc + 2 * FL_CE_W), v3 = FL_CE_LD(3, xc + 3 * FL_CE_W);
        if (copy) { buf[j * 4] = v0; buf[j * 4 + 1] = v1; buf[j * 4 + 2] = v2; buf[j * 4 + 3] = v3; }
        m0 = FL_CE_OP(max)(v0, m0);
        m1 = FL_CE_OP(max)(v1, m1);
        m2 = FL_CE_OP(max)(v2, m2);
        m3 = FL_CE_OP(max)(v3, m3);
    }
    FL_CE_ST(0, m + k0, m0);
    FL_CE_ST(1, m + k0 + FL_CE_W, m1);
    FL_CE_ST(2, m + k0 + 2 * FL_CE_W, m2);
    FL_CE_ST(3, m + k0 + 3 * FL_CE_W, m3);
    /* pass 2, block by block (its C vectors are in L1): the target's logit (index targets); the sum of exps
     * (float: the max's and ties' exp(0) = 1 counted apart); the target sums A, D */
    for (ptrdiff_t k = k0; k < L && k < k0 + FL_CE_CHUNK; k += FL_CE_W) {
        const FL_CE_M lm = FL_CE_OP(lanes)(L - k);
        const FL_CE_T* xr = copy ? (const FL_CE_T*)(buf + (k - k0) / FL_CE_W) : xs + k;
        const FL_CE_V mx = FULLC ? FL_CE_OP(load)(m + k) : FL_CE_OP(loadz)(lm, m + k);
        if (HAS_Y) {
            const FL_CE_I y = FULLC ? FL_CE_OP(load_i)(ys + k) : FL_CE_OP(loadz_i)(lm, ys + k);
            const FL_CE_V ty = FL_CE_OP(gather)(FL_CE_OP(nonneg)(lm, y), FL_CE_OP(index)(y, rsv), xr);
            if (FULLC) FL_CE_OP(store)(xy + k, ty); else FL_CE_OP(storem)(xy + k, lm, ty);
        }
        fl_vd s0 = fl_v_dzero(), s1 = fl_v_dzero();
        fl_vd A0 = fl_v_dzero(), A1 = fl_v_dzero(), D0 = fl_v_dzero(), D1 = fl_v_dzero();
        (void)s1; (void)A1; (void)D1;
        if (FULLC || k + FL_CE_W <= L) FL_CE_SUMS(1, far)
        else FL_CE_SUMS(0, 0)
        FL_CE_STORE_S(s + k, lm, s0, s1, FULLC);
        if (HAS_T) FL_CE_STORE_S(sp->A + k, lm, A0, A1, FULLC);
        if (SOFT) FL_CE_STORE_S(sp->D + k, lm, D0, D1, FULLC);
    }
}
FL_INLINE void FL_CE_NAME(fl_tile_ce_body)(const FL_CE_T* xs, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L,
                                           const int32_t* ys, const FL_CE_NAME(fl_tile_soft)* sp, FL_CE_T* g,
                                           FL_CE_T* m, FL_CE_T* xy, double* s, const void* pf, const void* pf2,
                                           ptrdiff_t pf_bytes,
                                           const int HAS_G, const int HAS_Y, const int SOFT, const int HAS_T,
                                           const int HAS_W) {
    /* the chunk's logits, class j of block b at buf[j * 4 + b]: with the spatial layout's stride a power of
     * 2 (256 x 256 images), the C lines of a block fall in one L1 set (and one L2 set), and C > 12 of them
     * evict each other between the max pass and the exp pass: the copy is read back from contiguous lines */
    FL_CE_V buf[FL_CE_BUF_C * 4];
    const int far = cs >= FL_CE_FAR_CS, copy = far && C <= FL_CE_BUF_C;
    ptrdiff_t k0 = 0;
    fl_tile_pf pfs = fl_tile_pf_init(pf, pf2, pf_bytes, C, L, FL_CE_W);
    for (; k0 < L; k0 += FL_CE_CHUNK) {
        if (k0 + FL_CE_CHUNK <= L)
            FL_CE_NAME(fl_tile_ce_chunk)(xs, cs, C, L, k0, ys, sp, g, m, xy, s, buf, &pfs, far, copy, HAS_G,
                                         HAS_Y, SOFT, HAS_T, HAS_W, 1);
        else
            FL_CE_NAME(fl_tile_ce_chunk)(xs, cs, C, L, k0, ys, sp, g, m, xy, s, buf, &pfs, far, copy, HAS_G,
                                         HAS_Y, SOFT, HAS_T, HAS_W, 0);
    }
}
#undef FL_CE_LD
#undef FL_CE_ST
#undef FL_CE_SUMS
#undef FL_CE_REST
#undef FL_CE_TERMS
#undef FL_CE_COUNT_TIE
#undef FL_CE_DROP_TIE
#undef FL_CE_NT_DECL
#undef FL_CE_NT_ADD
#undef FL_CE_PF
#undef FL_CE_BUF_C
#undef FL_CE_FAR_CS
#undef FL_CE_CHUNK
/* the body with its flags as constants: one copy of the loops per combination met */
#define FL_CE_BODY(ys, sp, g, m, xy, s, HAS_Y, SOFT, HAS_T, HAS_W)                                          \
    do {                                                                                                    \
        if (g) FL_CE_NAME(fl_tile_ce_body)(xs, cs, C, L, ys, sp, g, m, xy, s, pf, pf2, pf_bytes, 1, HAS_Y,      \
                                           SOFT, HAS_T, HAS_W);                                             \
        else FL_CE_NAME(fl_tile_ce_body)(xs, cs, C, L, ys, sp, NULL, m, xy, s, pf, pf2, pf_bytes, 0, HAS_Y,     \
                                         SOFT, HAS_T, HAS_W);                                               \
    } while (0)
#endif
/* Index targets ys: m, xy (the target's logit), s (and the exps in g) per position.  dot != NULL (label
 * smoothing): also FL_TS_DOT's dot[k] = sum_j w_j (x_j - m[k]) (w NULL: weights 1), formed from the same
 * differences as the exps, in the same groups of 4 classes and runs as s, each product rounded before it
 * is summed (so label smoothing costs a multiply and an add per vector, not a second pass with its partials
 * in memory).  pf (or NULL): pf_bytes of memory the caller reads next (the next tile's logits), prefetched
 * during the pass (fl_tile_pf). */
static inline int FL_CE_NAME(fl_tile_ce)(const FL_CE_T* xs, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L,
                                         const int32_t* ys, FL_CE_T* g, FL_CE_T* m, FL_CE_T* xy, double* s,
                                         const FL_CE_T* w, double* dot, const void* pf, ptrdiff_t pf_bytes) {
#if defined(FL_CE_W)
    const FL_CE_NAME(fl_tile_soft) sp = {NULL, w, 0, 0, NULL, dot};
    const void* pf2 = NULL;
    if (C < 1 || (C - 1) * cs + FL_CE_W > INT32_MAX) return 0;
    if (!dot) FL_CE_BODY(ys, NULL, g, m, xy, s, 1, 0, 0, 0);
    else if (w) FL_CE_BODY(ys, &sp, g, m, xy, s, 1, 1, 0, 1);
    else FL_CE_BODY(ys, &sp, g, m, xy, s, 1, 1, 0, 0);
    return 1;
#else
    (void)xs; (void)cs; (void)C; (void)L; (void)ys; (void)g; (void)m; (void)xy; (void)s; (void)w; (void)dot;
    (void)pf; (void)pf_bytes;
    return 0;
#endif
}
/* Probability targets t (class-major as the logits: class j of position k at t[j * cs + k]; ce_probs_run):
 * m, s (and the exps in g) as above, and the sums of FL_TS_SOFT,
 *   A[k] = sum_j tw_j,  D[k] = sum_j tw_j (x_j - m[k]),  tw_j = w_j (keep t_j + add)  (w NULL: weights 1),
 * formed beside s in the same groups of 4 classes and runs, each product rounded before it is summed (the
 * same bits wherever a position sits in the chunks, so for every L and thread split).  The targets are read
 * once, in place (no copy: only the logits are read twice).  t NULL: m and s alone.  pf, pf2 (or NULL):
 * pf_bytes each of memory the caller reads next (the next tile's logits and targets), prefetched during the
 * pass (fl_tile_pf). */
static inline int FL_CE_NAME(fl_tile_ce_soft)(const FL_CE_T* xs, const FL_CE_T* t, ptrdiff_t cs, ptrdiff_t C,
                                              ptrdiff_t L, const FL_CE_T* w, FL_CE_T keep, FL_CE_T add,
                                              FL_CE_T* g, FL_CE_T* m, double* s, double* A, double* D,
                                              const void* pf, const void* pf2, ptrdiff_t pf_bytes) {
#if defined(FL_CE_W)
    const FL_CE_NAME(fl_tile_soft) sp = {t, w, keep, add, A, D};
    if (C < 1 || (C - 1) * cs + FL_CE_W > INT32_MAX) return 0;
    if (!t) FL_CE_BODY(NULL, NULL, g, m, NULL, s, 0, 0, 0, 0);
    else if (w) FL_CE_BODY(NULL, &sp, g, m, NULL, s, 0, 1, 1, 1);
    else FL_CE_BODY(NULL, &sp, g, m, NULL, s, 0, 1, 1, 0);
    return 1;
#else
    (void)xs; (void)t; (void)cs; (void)C; (void)L; (void)w; (void)keep; (void)add; (void)g; (void)m; (void)s;
    (void)A; (void)D; (void)pf; (void)pf2; (void)pf_bytes;
    return 0;
#endif
}
#if defined(FL_CE_W)
#undef FL_CE_BODY
#endif
/* the parameters of this inclusion (see the top) */
#undef FL_CE_T
#undef FL_CE_NAME
#undef FL_CE_OP
#undef FL_CE_V
#undef FL_CE_M
#undef FL_CE_I
#undef FL_CE_W
#undef FL_CE_EXP
#undef FL_CE_TIES
#undef FL_CE_RUN
#undef FL_CE_ACC
#undef FL_CE_STORE_S
