/*
 * fl_math.h -- branch-free, vectorisable exp / log / log1p and the stable primitives built on them
 * (softplus, log_sigmoid, sigmoid), in float and double.
 *
 * Why not libm: glibc's expf/logf are function calls that GCC only vectorises (through libmvec)
 * under -ffast-math, which fastloss must not use (it assumes no inf/nan; masked logits are -inf).
 * Everything here is straight-line code -- integer bit tricks, a polynomial, and comparisons turned
 * into selects -- so GCC if-converts and vectorises it inside loops when built with
 * -fno-trapping-math (setup.py), at whatever vector width the ISA level allows.
 *
 * Accuracy (measured by tests/test_math.py over every float32 and ~10M float64 values of the whole
 * range against float64/long-double libm):  see the table in that test's docstring; the bounds are
 * restated next to each function.  Special values follow C99 Annex F: exp(-inf)=0, exp(+inf)=inf,
 * exp(nan)=nan, overflow -> inf, gradual underflow to denormals; log(0)=-inf, log(x<0)=nan,
 * log(inf)=inf, log(denormal) exact-scaled.
 *
 * Algorithms: Cephes (S. L. Moshier) range reductions and minimax coefficients.
 *   exp(x) = 2^n * exp(r),  n = round(x / ln2),  r = x - n*ln2 (ln2 split in two for exactness).
 *   log(x) = e*ln2 + log(m),  m in [sqrt(1/2), sqrt(2)).
 */
#ifndef FL_MATH_H
#define FL_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#define FL_INLINE static __forceinline
#else
#define FL_INLINE static inline __attribute__((always_inline))
#endif

/* ---- bit casts (memcpy compiles to a register move and vectorises) ---- */
FL_INLINE int32_t fl_f2i(float x) { int32_t i; memcpy(&i, &x, 4); return i; }
FL_INLINE float fl_i2f(int32_t i) { float x; memcpy(&x, &i, 4); return x; }
FL_INLINE int64_t fl_d2i(double x) { int64_t i; memcpy(&i, &x, 8); return i; }
FL_INLINE double fl_i2d(int64_t i) { double x; memcpy(&x, &i, 8); return x; }

/* min/max written as comparisons: fminf/fmaxf are library calls that block vectorisation.
 * NaN handling: fl_max(a, b) returns b when the comparison is false, so pass the value whose NaN
 * must propagate as `b` where it matters. */
FL_INLINE float fl_maxf(float a, float b) { return a > b ? a : b; }
FL_INLINE float fl_minf(float a, float b) { return a < b ? a : b; }
FL_INLINE double fl_max(double a, double b) { return a > b ? a : b; }
FL_INLINE double fl_min(double a, double b) { return a < b ? a : b; }
/* min(a, b) for a >= +0 or a nan with its sign bit clear (|d|, fl_absf) and b > 0, not nan: the result of
 * fl_minf(a, b) bit for bit (a nan a gives b).  Such floats order as their bit patterns do, so at AVX-512
 * this is an integer min, one vpminsd, where GCC turns fl_minf in the elementwise loops into a compare
 * and a masked move of |d| (three operations; a float32 Huber mean went 0.127 -> 0.108 ns per item, 500 000
 * items in cache, Zen 4).  Other levels keep the float min (vminps; SSE2 has no 32-bit integer min). */
FL_INLINE float fl_min_nonnegf(float a, float b) {
#if defined(__AVX512F__)
    int32_t i = fl_f2i(a), j = fl_f2i(b);
    return fl_i2f(i < j ? i : j);
#else
    return a < b ? a : b;
#endif
}
FL_INLINE float fl_absf(float x) { return fl_i2f(fl_f2i(x) & 0x7fffffff); }
FL_INLINE double fl_abs(double x) { return fl_i2d(fl_d2i(x) & INT64_C(0x7fffffffffffffff)); }

/* round-to-nearest-even of |x| < 2^22 by the add-and-subtract trick (roundevenf may not vectorise) */
FL_INLINE float fl_roundf(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (x + magic) - magic;
}
#define FL_DMAGIC 6755399441055744.0 /* 1.5 * 2^52 */
FL_INLINE double fl_round(double x) { return (x + FL_DMAGIC) - FL_DMAGIC; }

/* ------------------------------------------------------------------ exp */
/* expf: max error 1 ulp in the normal range (about 2 ulp of the smallest denormals).
 * fl_expf_reduced is the shared body: exp(xc) for xc already clamped to [lo, hi]. */
#define FL_EXPF_HI 88.72283935546875f          /* largest x with finite expf(x) */
#define FL_EXPF_LO -103.97208404541015625f     /* below this, expf(x) rounds to 0 */
FL_INLINE float fl_expf_reduced(float xc) {
    float n = fl_roundf(xc * 1.44269504088896341f);
    float r = xc - n * 0.693359375f;         /* ln2 = C1 + C2, C1 exact in 9 bits */
    r = r + n * 2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    /* scale by 2^n in two steps so that results in the denormal range are formed gradually */
    int32_t ni = (int32_t)n;
    int32_t n1 = ni >> 1;
    int32_t n2 = ni - n1;
    return p * fl_i2f((n1 + 127) << 23) * fl_i2f((n2 + 127) << 23);
}
FL_INLINE float fl_expf(float x) {
    float xc = fl_minf(fl_maxf(x, FL_EXPF_LO), FL_EXPF_HI); /* keeps n in int range; nan -> lo (fixed below) */
    float y = fl_expf_reduced(xc);
    y = x > FL_EXPF_HI ? __builtin_inff() : y;
    y = x < FL_EXPF_LO ? 0.0f : y;
    y = x != x ? x : y;
    return y;
}
/* exp(x) for x <= 0, -inf or nan only -- a softmax argument x_j - max_i x_i (f_exp_nonpos,
 * fl_row_sumexp_f32), the hot loop of cross-entropy, so written for the fewest vector operations:
 * max error 1 ulp down to x = -87.5 (results down to denormals just below FLT_MIN, formed by one
 * correctly rounded fma), 0 below -87.5 instead of a denormal <= 1e-38.  Added to a sum that holds
 * the max's exp(0) = 1, such a term is ~2^-126 below the sum's last bit; as a softmax numerator (a
 * gradient) it is off by <= 1e-38 absolute.  Against fl_expf (16 vector operations instead of ~27):
 *  - a degree-6 minimax polynomial for exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2 (Lawson-fitted in float64
 *    for relative error, coefficients rounded to float; approximation error 3.7e-9 = 0.06 ulp of 1) instead
 *    of Cephes' degree 7, whose last term is far below float32 rounding;
 *  - 2^n from the magic-number rounding's own bits: t = x/ln2 + (1.5 * 2^23 + 127) holds n + 127 in its
 *    low 9 bits (the bias is in the magic number), so 2^n is one shift of t's bits, no conversion or add;
 *  - the scale folded into the last step: exp(x) = 2^n + 2^n (r + r^2 P) as one fma, one rounding;
 *  - no clamp: arguments below -87.5 (-inf included) give garbage that the final select replaces by 0,
 *    and nan propagates through every step (x < lo is false for nan). */
#define FL_EXPF_SOFTMAX_LO -87.5f              /* n = round(x / ln2) >= -126 from here up: 2^n normal */
#define FL_EXPF_SOFTMAX_MAGIC 12583039.0f      /* 1.5 * 2^23 + 127: t's low 9 bits are n + 127 */
#define FL_EXPF_SOFTMAX_LOG2E 1.44269504088896341f
#define FL_EXPF_SOFTMAX_LN2_HI 0.693359375f     /* ln2 = C1 + C2, C1 exact in 9 bits */
#define FL_EXPF_SOFTMAX_LN2_LO 2.12194440e-4f   /* -C2 */
#define FL_EXPF_SOFTMAX_P0 1.38796831e-3f
#define FL_EXPF_SOFTMAX_P1 8.36871378e-3f
#define FL_EXPF_SOFTMAX_P2 4.16672267e-2f
#define FL_EXPF_SOFTMAX_P3 1.66665211e-1f
#define FL_EXPF_SOFTMAX_P4 4.99999970e-1f
FL_INLINE float fl_expf_softmax(float x) {
    float t = x * FL_EXPF_SOFTMAX_LOG2E + FL_EXPF_SOFTMAX_MAGIC;
    float n = t - FL_EXPF_SOFTMAX_MAGIC;
    float r = x - n * FL_EXPF_SOFTMAX_LN2_HI;
    r = r + n * FL_EXPF_SOFTMAX_LN2_LO;
    float p = FL_EXPF_SOFTMAX_P0;
    p = p * r + FL_EXPF_SOFTMAX_P1;
    p = p * r + FL_EXPF_SOFTMAX_P2;
    p = p * r + FL_EXPF_SOFTMAX_P3;
    p = p * r + FL_EXPF_SOFTMAX_P4;
    p = p * (r * r) + r;
    /* n + 127 in [1, 254] (x >= -87.5): shifted to the exponent field it is 2^n (the high bits of t
     * shift out) */
    float s = fl_i2f((int32_t)((uint32_t)fl_f2i(t) << 23));
    float y = p * s + s;
    return x < FL_EXPF_SOFTMAX_LO ? 0.0f : y;
}

/* exp (double): max error 1 ulp in the normal range.  fl_exp_reduced: the body, for xc in [lo, hi]. */
#define FL_EXP_HI 709.782712893383973096        /* log(DBL_MAX) */
#define FL_EXP_LO -745.1332191019412076235      /* below this exp(x) rounds to 0 */
FL_INLINE double fl_exp_reduced(double xc) {
    double n = fl_round(xc * 1.4426950408889634073599);
    double r = xc - n * 6.93145751953125E-1;       /* ln2 = C1 + C2 */
    r = r - n * 1.42860682030941723212E-6;
    double r2 = r * r;
    double px = 1.26177193074810590878E-4;
    px = px * r2 + 3.02994407707441961300E-2;
    px = px * r2 + 9.99999999999999999910E-1;
    px = px * r;
    double qx = 3.00198505138664455042E-6;
    qx = qx * r2 + 2.52448340349684104192E-3;
    qx = qx * r2 + 2.27265548208155028766E-1;
    qx = qx * r2 + 2.00000000000000000009E0;
    double p = 1.0 + 2.0 * (px / (qx - px));        /* Pade form of exp(r) */
    /* 2^n1 * 2^n2 with n1 + n2 = n, built without int64<->double conversions (AVX2 has none):
     * a small integer k held in a double becomes an int64 as bits(k + 1.5*2^52) - bits(1.5*2^52). */
    double n1 = fl_round(n * 0.5);
    double n2 = n - n1;
    return p * fl_i2d((fl_d2i(n1 + FL_DMAGIC) - fl_d2i(FL_DMAGIC) + 1023) << 52)
             * fl_i2d((fl_d2i(n2 + FL_DMAGIC) - fl_d2i(FL_DMAGIC) + 1023) << 52);
}
FL_INLINE double fl_exp(double x) {
    double y = fl_exp_reduced(fl_min(fl_max(x, FL_EXP_LO), FL_EXP_HI));
    y = x > FL_EXP_HI ? __builtin_inf() : y;
    y = x < FL_EXP_LO ? 0.0 : y;
    y = x != x ? x : y;
    return y;
}
/* exp(x) for x <= 0, -inf or nan only -- a softmax argument (f_exp_nonpos; fl_vec.h has its vector forms), built
 * as fl_expf_softmax: no division (fl_exp's Pade form divides, and the divider was the float64 CE loop's
 * bottleneck), max error 1.02 ulp measured against long double over 4e7 values of [-708.5, 0] (fl_exp:
 * 1.71; the degree-13 Taylor form this replaced: 1.00), 0 below -708.5 (where 2^n would leave the normal range) instead of a denormal < 2.3e-308:
 *  - a degree-11 near-minimax polynomial exp(r) = 1 + r + r^2 P(r), P of degree 9, on |r| <= ln2/2 (fitted in
 *    60-digit arithmetic to equioscillate at Chebyshev-like nodes, for the error relative to exp(r): at most
 *    8.4e-18 = 0.08 ulp of 1 on a dense grid) instead of Taylor's degree 13;
 *  - 2^n from the rounding's own bits: t = x/ln2 + (1.5 * 2^52 + 1023) holds n + 1023 in its low 12
 *    bits (the bias is in the magic number), shifted to the exponent field it is 2^n;
 *  - the scale folded into the last step: exp(x) = 2^n + 2^n (r + r^2 P) as one fma, one rounding;
 *  - no clamp: arguments below -708.5 (-inf included) give garbage that the final select replaces by 0,
 *    and nan propagates through every step (x < lo is false for nan). */
#define FL_EXP_SOFTMAX_LO -708.5               /* n = round(x / ln2) >= -1022 from here up */
#define FL_EXP_SOFTMAX_MAGIC 6755399441056767.0 /* 1.5 * 2^52 + 1023: t's low 12 bits are n + 1023 */
#define FL_EXP_SOFTMAX_LOG2E 1.4426950408889634073599
#define FL_EXP_SOFTMAX_LN2_HI 6.93145751953125E-1     /* ln2 = C1 + C2, n * C1 exact */
#define FL_EXP_SOFTMAX_LN2_LO 1.42860682030941723212E-6
/* P(r), highest degree first */
#define FL_EXP_SOFTMAX_NP 10
#define FL_EXP_SOFTMAX_P0 2.510520637395701e-08
#define FL_EXP_SOFTMAX_P1 2.7626357241447223e-07
#define FL_EXP_SOFTMAX_P2 2.7557255425746435e-06
#define FL_EXP_SOFTMAX_P3 2.4801504346997686e-05
#define FL_EXP_SOFTMAX_P4 0.00019841269874800493
#define FL_EXP_SOFTMAX_P5 0.0013888888932488599
#define FL_EXP_SOFTMAX_P6 0.008333333333326141
#define FL_EXP_SOFTMAX_P7 0.04166666666657314
#define FL_EXP_SOFTMAX_P8 0.1666666666666667
#define FL_EXP_SOFTMAX_P9 0.5000000000000006
FL_INLINE double fl_exp_nonpos(double x) {
    double t = x * FL_EXP_SOFTMAX_LOG2E + FL_EXP_SOFTMAX_MAGIC;
    double n = t - FL_EXP_SOFTMAX_MAGIC;
    double r = x - n * FL_EXP_SOFTMAX_LN2_HI;
    r = r - n * FL_EXP_SOFTMAX_LN2_LO;
    double p = FL_EXP_SOFTMAX_P0;
    p = p * r + FL_EXP_SOFTMAX_P1;
    p = p * r + FL_EXP_SOFTMAX_P2;
    p = p * r + FL_EXP_SOFTMAX_P3;
    p = p * r + FL_EXP_SOFTMAX_P4;
    p = p * r + FL_EXP_SOFTMAX_P5;
    p = p * r + FL_EXP_SOFTMAX_P6;
    p = p * r + FL_EXP_SOFTMAX_P7;
    p = p * r + FL_EXP_SOFTMAX_P8;
    p = p * r + FL_EXP_SOFTMAX_P9;
    p = p * (r * r) + r;
    /* n + 1023 in [1, 1023] (x >= -708.5): shifted to the exponent field it is 2^n (the high bits of t
     * shift out) */
    double s = fl_i2d((int64_t)((uint64_t)fl_d2i(t) << 52));
    double y = p * s + s;
    return x < FL_EXP_SOFTMAX_LO ? 0.0 : y;
}

/* ------------------------------------------------------------------ log */
/* The core shared by every log here: log(2^fe * (1 + m)) for m in [sqrt(1/2) - 1, sqrt(2) - 1),
 * as fe*ln2 + log1p(m) with Cephes' minimax polynomial (float) / rational (double) for log1p(m);
 * ln2 is split in two (0.693359375 exact in 9 bits, plus a small correction) for exactness. */
FL_INLINE float fl_log_reducedf(float m, float fe) {
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y = y - 2.12194440e-4f * fe;
    y = y - 0.5f * z;
    return m + y + 0.693359375f * fe;
}
FL_INLINE double fl_log_reduced(double m, double fe) {
    double z = m * m;
    double p = 1.01875663804580931796E-4;
    p = p * m + 4.97494994976747001425E-1;
    p = p * m + 4.70579119878881725854E0;
    p = p * m + 1.44989225341610930846E1;
    p = p * m + 1.79368678507819816313E1;
    p = p * m + 7.70838733755885391666E0;
    double q = m + 1.12873587189167450590E1;
    q = q * m + 4.52279145837532221105E1;
    q = q * m + 8.29875266912776603211E1;
    q = q * m + 7.11544750618563894466E1;
    q = q * m + 2.31251620126765340583E1;
    double y = m * (z * p / q);
    y = y - fe * 2.121944400546905827679e-4;
    y = y - 0.5 * z;
    return m + y + fe * 0.693359375;
}

/* logf: max error 1 ulp. */
FL_INLINE float fl_logf(float x) {
    /* denormals: scale by 2^23 first so the exponent/mantissa split below is exact */
    int is_denorm = x < 1.17549435e-38f;
    float xs = is_denorm ? x * 8388608.0f : x;
    int32_t bits = fl_f2i(xs);
    int32_t e = ((bits >> 23) & 0xff) - 126;        /* xs = m * 2^e, m in [0.5, 1) */
    float m = fl_i2f((bits & 0x007fffff) | 0x3f000000);
    e = is_denorm ? e - 23 : e;
    int small = m < 0.707106781186547524f;          /* move m into [sqrt(1/2), sqrt(2)) */
    e = small ? e - 1 : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float fe = (float)e;
    float r = fl_log_reducedf(m, fe);
    r = x == 0.0f ? -__builtin_inff() : r;
    r = x < 0.0f ? __builtin_nanf("") : r;
    r = x == __builtin_inff() ? x : r;
    r = x != x ? x : r;
    return r;
}

/* log (double): max error 1 ulp. */
FL_INLINE double fl_log(double x) {
    int is_denorm = x < 2.2250738585072014e-308;
    double xs = is_denorm ? x * 4503599627370496.0 : x;   /* 2^52 */
    int64_t bits = fl_d2i(xs);
    /* exponent as a double without an int64->double conversion: bits(magic + k) - magic = k */
    double fe = fl_i2d(((bits >> 52) & 0x7ff) + fl_d2i(FL_DMAGIC)) - FL_DMAGIC - 1022.0;
    double m = fl_i2d((bits & INT64_C(0x000fffffffffffff)) | INT64_C(0x3fe0000000000000));
    fe = is_denorm ? fe - 52.0 : fe;
    int small = m < 0.70710678118654752440;
    fe = small ? fe - 1.0 : fe;
    m = small ? m + m - 1.0 : m - 1.0;
    double r = fl_log_reduced(m, fe);
    r = x == 0.0 ? -__builtin_inf() : r;
    r = x < 0.0 ? __builtin_nan("") : r;
    r = x == __builtin_inf() ? x : r;
    r = x != x ? x : r;
    return r;
}

/* ---------------------------------------------------------------- log1p */
/* log1p(x) = log(u) - ((u - 1) - x) / u with u = 1 + x: the correction term recovers the bits of x
 * lost in forming u (Goldberg's trick).  Where u == 1 the answer is x itself. */
FL_INLINE float fl_log1pf(float x) {
    float u = 1.0f + x;
    float r = fl_logf(u) - ((u - 1.0f) - x) / u;
    r = u == 1.0f ? x : r;
    r = u == __builtin_inff() ? u : r;   /* x = +inf (or overflow of 1+x): log1p = log(x) */
    r = u == 0.0f ? -__builtin_inff() : r; /* x = -1: the correction would be 0/0 */
    return r;
}
FL_INLINE double fl_log1p(double x) {
    double u = 1.0 + x;
    double r = fl_log(u) - ((u - 1.0) - x) / u;
    r = u == 1.0 ? x : r;
    r = u == __builtin_inf() ? u : r;
    r = u == 0.0 ? -__builtin_inf() : r;
    return r;
}

/* log1p(e) for e in [0, 1] (or nan): the range met inside softplus / log_sigmoid / BCE, where
 * e = exp(-|x|).
 * float: e + e^2 R(e), R a degree-8 polynomial fitted to (log1p(e) - e) / e^2 on [0, 1] (Chebyshev least
 * squares, weighted by the term's share e^2 / log1p(e) of the result), evaluated by fmas: the leading e is
 * exact and the correction is at most 31% of the result, so its rounding counts for little -- max 1.15
 * ulp over [0, 1] with fmas (AVX2, AVX-512), 1.39 without (baseline) (tests/test_math.py).  ~10 vector
 * operations, where the log of 1 + e (range split, a 9-term polynomial, the exponent, Goldberg's
 * correction of 1 + e's rounding: ~20, and a division) took 55% of BCE-with-logits' time at AVX-512
 * (0.645 -> 0.36 ns per element in a C loop of its formula).
 * log1p(0) = 0 exactly (+0), nan propagates.
 * double: log(u) for u = 1 + e in [1, 2] (fl_log_unit: the exponent split is one compare, none of the
 * denormal / zero / negative / infinity selects of fl_log are needed), with Goldberg's correction
 * ((u - 1) - e) / u of u's rounding: max 1.2 ulp. */
FL_INLINE float fl_log1p_unitf(float e) {
    float r = -3.227272303774953e-3f;
    r = r * e + 1.979111321270466e-2f;
    r = r * e - 5.688298121094704e-2f;
    r = r * e + 1.0600882023572922e-1f;
    r = r * e - 1.5308064222335815e-1f;
    r = r * e + 1.9678910076618195e-1f;
    r = r * e - 2.4955378472805023e-1f;
    r = r * e + 3.333020508289337e-1f;
    r = r * e - 4.999992251396179e-1f;
    return (e * e) * r + e;
}
FL_INLINE double fl_log_unit(double u) {
    int big = u > 1.41421356237309504880;
    double m = big ? 0.5 * u - 1.0 : u - 1.0;
    return fl_log_reduced(m, big ? 1.0 : 0.0);
}
FL_INLINE double fl_log1p_unit(double e) {
    double u = 1.0 + e;
    double r = fl_log_unit(u) - ((u - 1.0) - e) / u;
    return u == 1.0 ? e : r;
}
/* The same given inv = 1 / (1 + e), which a sigmoid of the same logit has already paid for.  double: the
 * correction's division becomes a multiply (the correction is below one ulp of u, so inv's rounding does
 * not matter); float needs no inv (a caller's division then serves its sigmoid alone, or is dropped). */
FL_INLINE float fl_log1p_unit_invf(float e, float inv) {
    (void)inv;
    return fl_log1p_unitf(e);
}
FL_INLINE double fl_log1p_unit_inv(double e, double inv) {
    double u = 1.0 + e;
    double r = fl_log_unit(u) - ((u - 1.0) - e) * inv;
    return u == 1.0 ? e : r;
}

/* --------------------------------------------------------------- expm1 */
/* expm1(x) = e^x - 1 without the cancellation of fl_exp(x) - 1 near 0 (the softmax focal loss's p_y - 1).
 * For |x| <= 1/2, 2 P/(Q - P) (the Pade form of Cephes' expm1); elsewhere e^x - 1, where |e^x - 1| >= 0.39,
 * so the subtraction costs at most about one bit.  Max error measured against long-double expm1: 4.1 ulp
 * (2e7 values in [-3, 3]); expm1(-inf) = -1, expm1(inf) = inf, nan -> nan. */
FL_INLINE double fl_expm1(double x) {
    double x2 = x * x;
    double px = 1.26177193074810590878E-4;
    px = px * x2 + 3.02994407707441961300E-2;
    px = px * x2 + 9.99999999999999999910E-1;
    px = px * x;
    double qx = 3.00198505138664455042E-6;
    qx = qx * x2 + 2.52448340349684104192E-3;
    qx = qx * x2 + 2.27265548208155028766E-1;
    qx = qx * x2 + 2.00000000000000000009E0;
    double r = px / (qx - px);
    double near0 = r + r;
    double far = fl_exp(x) - 1.0;
    return fl_abs(x) <= 0.5 ? near0 : far;
}

/* ------------------------------------------------------- expm1(x) - x */
/* e^x - 1 - x (>= 0), and e^x - 1 into *em1, each to its own relative precision at every x: the Gaussian KL's
 * e^lv - 1 - lv, which for a latent near the prior (lv -> 0) is ~lv^2 / 2, far below the terms the textbook
 * form 1 + lv - e^lv cancels (in float32 it kept ~1e-7 of absolute precision: a relative error of 1e-5 at
 * lv ~ 0.06, 1e-3 at 1e-2).
 *   |x| <= 1/2: x^2 P(x), P the Taylor series of (e^x - 1 - x) / x^2, 1/2 + x/6 + x^2/24 + ..., to degree 7
 *     (float) / 13 (double): truncation < 3e-9 / 5e-18 relative; e^x - 1 = x^2 P(x) + x (|x^2 P(x)| <= 0.3 |x|:
 *     a cancellation by a factor 1.3 at most);
 *   elsewhere e^x - 1 - x and e^x - 1 from e^x (|e^x - 1| >= 0.39 and e^x - 1 - x >= 0.09 of e^x and of
 *     |1 + x|: a few bits at most).
 * Both forms computed and one selected (branch-free: the loops vectorise).  -inf -> (inf, -1); inf -> (nan, inf)
 * (inf - inf, as the textbook form); nan -> nan. */
FL_INLINE float fl_expm1mxf(float x, float* em1) {
    float p = 1.0f / 362880;
    p = p * x + 1.0f / 40320;
    p = p * x + 1.0f / 5040;
    p = p * x + 1.0f / 720;
    p = p * x + 1.0f / 120;
    p = p * x + 1.0f / 24;
    p = p * x + 1.0f / 6;
    p = p * x + 0.5f;
    const float near0 = (x * x) * p, e1 = fl_expf(x) - 1.0f, small = fl_absf(x) <= 0.5f;
    *em1 = small ? near0 + x : e1;
    return small ? near0 : e1 - x;
}
FL_INLINE double fl_expm1mx(double x, double* em1) {
    static const double c[14] = {   /* 1/15!, 1/14!, ..., 1/3!, 1/2! */
        1.0 / 1307674368000.0, 1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0,
        1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0,
        1.0 / 6.0, 0.5};
    double p = c[0];
    for (int k = 1; k < 14; k++) p = p * x + c[k];
    const double near0 = (x * x) * p, e1 = fl_exp(x) - 1.0;
    const int small = fl_abs(x) <= 0.5;
    *em1 = small ? near0 + x : e1;
    return small ? near0 : e1 - x;
}

/* ------------------------------------------------------------ log cosh */
/* log cosh d, and tanh |d| into *th (the log-cosh loss and its derivative), branch-free (both forms are
 * computed and one selected: the loop vectorises), from a = |d| and t = e^(-2a) (the softmax exp: a <= 0
 * argument, 0 from a = 43.75 (float) / 354.25 (double) on, where t no longer counts):
 *   a < 1:   log cosh a = a (a P(a^2)),       tanh a = a R(a^2)
 *   a >= 1:  log cosh a = (a - ln 2) + t Q(t),  tanh a = 1 - t S(t)
 * P(s) ~ log cosh(sqrt s) / s and R(s) ~ tanh(sqrt s) / sqrt s on s in [0, 1]; Q(t) ~ log1p(t) / t and
 * S(t) ~ 2 / (1 + t) on t in [0, e^-2]: Chebyshev fits (mpmath.chebyfit) of degree 6, 7, 4, 4 (float) and
 * 13, 14, 9, 10 (double), with P(0) = 1/2 and R(0) = 1 exact (a tiny a's a^2 / 2 and a rounded once).
 * Nothing cancels: a - ln 2 >= 0.307 and t Q(t) >= 0; 1 - t S(t) with t S(t) <= 0.24.  Max error against
 * mpmath over |d| in [1e-30, 1e3] (float) / [1e-300, 400] (double), evaluated without FMA: 1.1 / 2.3 ulp
 * (value), 0.9 / 2.2 ulp (tanh).  (The former form, expm1(-2a), a division for tanh and log1p with its own
 * division, cost 3 ns per element in float32, more than torch's d + softplus(-2d) - log 2.)
 * inf -> (inf, 1); nan -> (nan, nan).  a^2 overflows to inf past a ~ 1.8e19 in the unselected form only. */
#define FL_LOG_COSH_SPLIT 1.0
/* c[0] x^(n-1) + ... + c[n-1], Horner's rule (n a constant at every call: the loop unrolls) */
FL_INLINE float fl_hornerf(const float* c, int n, float x) {
    float p = c[0];
    for (int k = 1; k < n; k++) p = p * x + c[k];
    return p;
}
FL_INLINE double fl_horner(const double* c, int n, double x) {
    double p = c[0];
    for (int k = 1; k < n; k++) p = p * x + c[k];
    return p;
}
FL_INLINE float fl_log_coshf(float d, float* th) {
    static const float P[7] = {8.605410403e-05f, -5.546655157e-04f, 2.075578319e-03f, -6.709511857e-03f,
                               2.221635543e-02f, -8.333297074e-02f, 0.5f};
    static const float R[8] = {-3.523280902e-04f, 2.278647618e-03f, -7.912484929e-03f, 2.146141045e-02f,
                               -5.386970565e-02f, 1.333213896e-01f, -3.333327770e-01f, 1.0f};
    static const float Q[5] = {1.527626812e-01f, -2.447272688e-01f, 3.330851793e-01f, -4.999958575e-01f, 1.0f};
    static const float S[5] = {1.448883653e+00f, -1.939096451e+00f, 1.997146606e+00f, -1.999952435e+00f,
                               1.999999881e+00f};
    const float a = fl_absf(d), s = a * a, t = fl_expf_softmax(-2.0f * a);
    const int small = a < (float)FL_LOG_COSH_SPLIT;
    *th = small ? a * fl_hornerf(R, 8, s) : 1.0f - t * fl_hornerf(S, 5, t);
    return small ? a * (a * fl_hornerf(P, 7, s)) : (a - 0.693147181f) + t * fl_hornerf(Q, 5, t);
}
FL_INLINE double fl_log_cosh(double d, double* th) {
    static const double P[14] = {
        -2.2552189400297775e-08, 2.1853246459173592e-07, -1.0825053710484868e-06, 3.836725507700829e-06,
        -1.1532454382973717e-05, 3.255007392393126e-05, -9.090057535610014e-05, 0.00025655613095721113,
        -0.0007385983654701542, 0.0021869482900474697, -0.0067460317044059906, 0.022222222220610627,
        -0.08333333333330865, 0.5};
    static const double R[15] = {
        1.828625739978947e-07, -1.8226646212654275e-06, 9.125953596264835e-06, -3.1803378030411946e-05,
        9.079348448432776e-05, -0.00023540928172731117, 0.0005883602826886761, -0.0014552898065417585,
        0.0035920010315266884, -0.008863215065207559, 0.021869486371314823, -0.053968253829690074,
        0.13333333332866987, -0.33333333333327114, 1.0};
    static const double Q[10] = {
        -0.055599156752579704, 0.0997676318061809, -0.12329697725920241, 0.14269877445661644,
        -0.1666574368890346, 0.19999967012173733, -0.24999999319571328, 0.3333333332618145,
        -0.4999999999997076, 0.9999999999999998};
    static const double S[11] = {
        0.9840966729652717, -1.7166031837890696, 1.9520463770621983, -1.9948109121578648, 1.9996338708825765,
        -1.9999832661775137, 1.9999995205719892, -1.9999999919562206, 1.9999999999305855,
        -1.9999999999997657, 1.9999999999999998};
    const double a = fl_abs(d), s = a * a, t = fl_exp_nonpos(-2.0 * a);
    const int small = a < FL_LOG_COSH_SPLIT;
    *th = small ? a * fl_horner(R, 15, s) : 1.0 - t * fl_horner(S, 11, t);
    return small ? a * (a * fl_horner(P, 14, s)) : (a - 0.69314718055994531) + t * fl_horner(Q, 10, t);
}

/* --------------------------------------------------- stable primitives */
/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows, exact for large |x|. */
FL_INLINE float fl_softplusf(float x) { return fl_maxf(x, 0.0f) + fl_log1p_unitf(fl_expf(-fl_absf(x))); }
FL_INLINE double fl_softplus(double x) { return fl_max(x, 0.0) + fl_log1p_unit(fl_exp(-fl_abs(x))); }

/* log_sigmoid(x) = -softplus(-x) = min(x, 0) - log1p(e^-|x|). */
FL_INLINE float fl_log_sigmoidf(float x) { return fl_minf(x, 0.0f) - fl_log1p_unitf(fl_expf(-fl_absf(x))); }
FL_INLINE double fl_log_sigmoid(double x) { return fl_min(x, 0.0) - fl_log1p_unit(fl_exp(-fl_abs(x))); }

/* sigmoid(x) = 1 / (1 + e^-x), computed from e = e^-|x| so nothing overflows:
 * x >= 0: 1 / (1 + e);   x < 0: e / (1 + e). */
FL_INLINE float fl_sigmoidf(float x) {
    float e = fl_expf(-fl_absf(x));
    float inv = 1.0f / (1.0f + e);
    return x >= 0.0f ? inv : e * inv;
}
FL_INLINE double fl_sigmoid(double x) {
    double e = fl_exp(-fl_abs(x));
    double inv = 1.0 / (1.0 + e);
    return x >= 0.0 ? inv : e * inv;
}

#endif /* FL_MATH_H */
