/* Calibration loop (issue 16): mean cross-entropy of an (n, c) float32 logit matrix with int64 labels,
 * two passes per row (max, then sum of expf(x - max)), glibc's vector expf (libmvec: _ZGVdN8v_expf for
 * AVX2, _ZGVeN16v_expf where run.sh builds for AVX-512).
 * Built with -ffast-math, which fastloss must not use: a measure of exp throughput, not a product.
 * See run.sh (build + objdump check) and run.py (timing against fastloss on the same inputs). */
#include <math.h>
#include <stdint.h>

double ce_mean_f32(const float *x, const int64_t *y, long n, long c, int nt) {
    double total = 0.0;
    #pragma omp parallel for num_threads(nt) schedule(static) reduction(+:total)
    for (long i = 0; i < n; i++) {
        const float *r = x + i * c;
        float m = r[0];
        for (long j = 1; j < c; j++) m = r[j] > m ? r[j] : m;
        float s = 0.0f;
        for (long j = 0; j < c; j++) s += expf(r[j] - m);
        total += (double)(m + logf(s) - r[y[i]]);
    }
    return total / (double)n;
}
