/*
 * fl_runtime.h -- what the running machine offers: OpenMP (decided at build time by setup.py's probe),
 * the x86-64 vector level of the CPU (decided at run time), and fastloss's own thread setting.
 */
#ifndef FL_RUNTIME_H
#define FL_RUNTIME_H

#if FASTLOSS_OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

static int fl_openmp_enabled(void) { return FASTLOSS_OPENMP; }

static int fl_omp_max_threads(void) {
#if FASTLOSS_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The x86-64 psABI micro-architecture level of the CPU: 4 = x86-64-v4 (AVX-512 F/BW/CD/DQ/VL),
 * 3 = x86-64-v3 (AVX2, FMA, BMI2 ...), 1 = any other x86 (v2 is not told apart), 0 = not x86.
 * fastloss/_kernels/_levels.py says which of these each vector level needs.
 * __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0). */
static int fl_cpu_x86_64_level(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    return 1;
#elif (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd")) return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("bmi2")) return 3;
    return 1;
#else
    return 0;
#endif
}

/* 1 on an Intel CPU, else 0 (AMD, any other vendor, not x86).  Where the fastest of two correct paths
 * was measured to differ between Intel and AMD cores, the choice is keyed on it (classification.pyx:
 * ce_f32_tiles_win). */
static int fl_cpu_is_intel(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
#else
    return 0;
#endif
}

/* The size in bytes of one core's L2 cache (glibc's sysconf, from CPUID), or 2 MiB where it is not told;
 * asked once per module (an atomic cache: the same value from any thread).  The loops that prefetch ahead
 * do so only for inputs past it (_common.pxd: prefetch_end): an input that stays in L2 gains nothing from
 * the prefetches, which cost there. */
static long fl_l2_cache_bytes(void) {
    static long cached = 0;
#if defined(__GNUC__)
    long n = __atomic_load_n(&cached, __ATOMIC_RELAXED);
#else
    long n = cached;
#endif
    if (n > 0) return n;
    n = -1;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    n = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    n = n > 0 ? n : 2L << 20;
#if defined(__GNUC__)
    __atomic_store_n(&cached, n, __ATOMIC_RELAXED);
#else
    cached = n;
#endif
    return n;
}

#endif /* FL_RUNTIME_H */
