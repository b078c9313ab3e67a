"""Time the calibration loop (exp_loop.so) and fastloss.cross_entropy on the same W1 / W3 inputs, in one
process, interleaved, at T=1 and T=2.  Times are CPU time (T=1: the calling thread's; T=2: the process's,
i.e. both threads summed), minimum over repeated calls and rounds: robust to other jobs on a loaded
machine, where wall clock is not.  Prints calibration/fastloss (>= 1.0: fastloss at least as fast)."""
import ctypes, os, sys, time
import numpy as np

root = os.path.abspath(sys.argv[1]); rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
sys.path.insert(0, root)
import fastloss as fl

lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(__file__)), "exp_loop.so"))
lib.ce_mean_f32.restype = ctypes.c_double
lib.ce_mean_f32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_int]


def best_cpu(call, clock, budget=1.0):
    best = float("inf"); t_end = time.perf_counter() + budget; k = 0
    while time.perf_counter() < t_end or k < 3:
        t0 = clock(); call(); best = min(best, clock() - t0); k += 1
    return best


rng = np.random.default_rng(0)
print(f"{'workload':8} {'T':>2} {'calib ms':>9} {'fastloss ms':>12} {'calib/fastloss':>15}  (CPU time, min over {rounds} rounds)")
for name, n, c in (("W1", 100_000, 1000), ("W3", 4096, 32000)):
    x = rng.standard_normal((n, c), dtype=np.float32); y = rng.integers(0, c, n)
    for T in (1, 2):
        clock = time.thread_time if T == 1 else time.process_time
        calib = lambda: lib.ce_mean_f32(x.ctypes.data, y.ctypes.data, n, c, T)
        fast = lambda: fl.cross_entropy(x, y, num_threads=T)
        ref = float(fast()); assert abs(calib() - ref) <= 1e-4 * abs(ref), (calib(), ref)
        tc, tf = [], []
        for _ in range(rounds):
            tc.append(best_cpu(calib, clock)); tf.append(best_cpu(fast, clock))
        spread = lambda v: (max(v) - min(v)) / min(v) * 100
        print(f"{name:8} {T:>2} {min(tc)*1e3:9.2f} {min(tf)*1e3:12.2f} {min(tc)/min(tf):15.3f}"
              f"  (round spread: calib {spread(tc):.0f}%, fastloss {spread(tf):.0f}%)")
