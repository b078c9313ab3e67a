"""A/B of the binary elementwise kernels between two built trees (issue 16, eleventh session).

    python3 benchmarks/ab_elementwise.py OLD_TREE NEW_TREE ROUNDS

BCE-with-logits and sigmoid focal, 500 000 items, loss alone and with a reused ``grad_out=`` (mean and
``none``, float32 and float64), T=1.  Each round runs one child process per tree, alternating; each case's
time is the minimum thread CPU time over ~0.4 s of calls, the minimum over rounds; printed in ns per item
with NEW/OLD.  Last, whether every result (losses and gradients) of the two trees is bitwise equal.  Pin it
to one core on a shared machine (``taskset -c 1``); set ``FASTLOSS_ISA=baseline`` to compare that level."""
import sys, os, json, subprocess, time
import numpy as np
CASES = ["bce_pw_grad", "bce_grad", "bce_pw_none_grad", "focal_grad", "focal_none_grad", "bce_pw", "focal", "bce_pw_grad_f64", "focal_grad_f64", "bce_w_grad"]
def child(root, out_npz):
    sys.path.insert(0, root); os.chdir(root)
    import fastloss as fl
    fl.set_num_threads(1)
    rng = np.random.default_rng(0); n = 500000
    res = {}; arrs = {}
    for case in CASES:
        dt = np.float64 if case.endswith("f64") else np.float32
        x = (rng.standard_normal(n) * 3).astype(dt); y = (rng.random(n) < 0.5).astype(dt)
        w = rng.random(n).astype(dt)
        g = np.empty_like(x)
        kw = dict(return_grad=True, grad_out=g) if "grad" in case else {}
        if "none" in case: kw["reduction"] = "none"
        if case.startswith("bce"):
            if "pw" in case: kw["pos_weight"] = np.array([2.0], dt)
            if "_w_" in case: kw["weight"] = w
            f = lambda: fl.binary_cross_entropy_with_logits(x, y, **kw)
        else:
            if "none" not in case: kw["reduction"] = "mean"
            f = lambda: fl.sigmoid_focal_loss(x, y, **kw)
        r = f()
        best = 1e9; t_end = time.perf_counter() + 0.4; k = 0
        while time.perf_counter() < t_end or k < 5:
            t0 = time.thread_time(); f(); dt_ = time.thread_time() - t0
            if dt_ > 0: best = min(best, dt_)
            k += 1
        res[case] = best * 1e9 / n
        if isinstance(r, tuple):
            arrs[case + "_l"] = np.asarray(r[0]); arrs[case + "_g"] = np.asarray(r[1]).copy()
        else:
            arrs[case + "_l"] = np.asarray(r)
    np.savez(out_npz, **arrs)
    print(json.dumps(res))
if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3]); sys.exit()
    A, B, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    best = {A: {}, B: {}}
    for r in range(rounds):
        for root in (A, B):
            o = subprocess.run([sys.executable, __file__, "--child", root, f"/tmp/ab_elementwise_{'A' if root == A else 'B'}.npz"],
                               capture_output=True, text=True)
            d = json.loads(o.stdout.strip().splitlines()[-1])
            for k, v in d.items(): best[root][k] = min(best[root].get(k, 1e9), v)
    a = np.load("/tmp/ab_elementwise_A.npz"); b = np.load("/tmp/ab_elementwise_B.npz")
    same = all(np.array_equal(a[k], b[k], equal_nan=True) for k in a.files)
    for k in CASES:
        print(f"{k:18s} A {best[A][k]:.3f}  B {best[B][k]:.3f}  B/A {best[B][k]/best[A][k]:.3f}")
    print("bitwise identical:", same, [k for k in a.files if not np.array_equal(a[k], b[k], equal_nan=True)])
