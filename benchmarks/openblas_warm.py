"""SciPy's OpenBLAS before and after its first tall product: the reason for metric.pyx's gemm_ready.

    python3 benchmarks/openblas_warm.py

In a fresh process, on one BLAS thread, times the in-batch kernels' GEMM shape (a 256-row panel against
512 candidates, D = 128; float32 and float64), then runs one product of 1024 rows (taller than OpenBLAS's
block height) and times the same shape again.  On a Zen 1 EPYC (2026-12-05, scipy-openblas 0.3.x) the
float32 product ran at 12 GFLOP/s before and 33-36 after, for the life of the process.  fastloss runs such
a product once per process before its first in-batch GEMM, so its own calls do not show the difference.
"""
import time

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits


def gflops(m, n, k, dtype, reps):
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((k, m)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((k, n)).astype(dtype))
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    t0 = time.perf_counter()
    for _ in range(reps):
        gemm(1.0, a, b, trans_a=True)
    return 2 * m * n * k / ((time.perf_counter() - t0) / reps) / 1e9


def main():
    with threadpool_limits(1, user_api="blas"):
        shape = (256, 512, 128)
        before = [gflops(*shape, dt, 50) for dt in (np.float32, np.float64)]
        gflops(1024, 128, 128, np.float32, 1)
        gflops(1024, 128, 128, np.float64, 1)
        after = [gflops(*shape, dt, 50) for dt in (np.float32, np.float64)]
    print(f"sgemm / dgemm {shape[0]} x {shape[1]} x {shape[2]}, one thread, GFLOP/s")
    print(f"  before a 1024-row product: {before[0]:.1f} / {before[1]:.1f}")
    print(f"  after it:                  {after[0]:.1f} / {after[1]:.1f}")


if __name__ == "__main__":
    main()
