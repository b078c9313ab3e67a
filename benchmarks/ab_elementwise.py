"""A/B of the elementwise kernels between two built trees (issue 16, eleventh session).

    python3 benchmarks/ab_elementwise.py OLD_TREE NEW_TREE ROUNDS [CASE,CASE,...]

500 000 items, T=1, each case's loss alone ("/loss") and with a reused ``grad_out=`` ("/grad").  Each round runs
one child process per tree, alternating; a case's time is the minimum thread CPU time over ~0.3 s of calls, then
the minimum over rounds, printed in ns per item with NEW/OLD.  Last, the cases whose results (losses, gradients)
differ between the two trees bit for bit ("all" identical otherwise).  ``FASTLOSS_AB_F64=1``: float64 inputs.
Pin it to one core on a shared machine (``taskset -c 1``); ``FASTLOSS_ISA=baseline`` compares that level.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

DT = np.float64 if os.environ.get("FASTLOSS_AB_F64") else np.float32


def cases(fl, rng, n):
    x = rng.standard_normal(n).astype(DT)
    x3 = x * 3                                          # logits of a confident binary model
    p = (rng.random(n) * 0.98 + 0.01).astype(DT)
    t = (rng.random(n) < 0.5).astype(DT)
    w = rng.random(n).astype(DT)
    pw = np.array([2.0], DT)
    pos = (rng.random(n) * 3 + 0.1).astype(DT)
    cnt = rng.poisson(2.0, n).astype(DT)
    lt = np.log(p)
    return {
        "bce_logits": lambda **k: fl.binary_cross_entropy_with_logits(x3, t, **k),
        "bce_logits_pw": lambda **k: fl.binary_cross_entropy_with_logits(x3, t, pos_weight=pw, **k),
        "bce_logits_pw_none": lambda **k: fl.binary_cross_entropy_with_logits(x3, t, pos_weight=pw,
                                                                              reduction="none", **k),
        "bce_logits_w": lambda **k: fl.binary_cross_entropy_with_logits(x3, t, weight=w, **k),
        "focal": lambda **k: fl.sigmoid_focal_loss(x3, t, reduction="mean", **k),
        "focal_none": lambda **k: fl.sigmoid_focal_loss(x3, t, reduction="none", **k),
        "bce": lambda **k: fl.binary_cross_entropy(p, t, **k),
        "kl": lambda **k: fl.kl_div(lt, p, reduction="sum", **k),
        "poisson_log": lambda **k: fl.poisson_nll_loss(x, cnt, **k),
        "poisson": lambda **k: fl.poisson_nll_loss(pos, cnt, log_input=False, **k),
        "log_cosh": lambda **k: fl.log_cosh_loss(x, p, **k),
        "msle": lambda **k: fl.msle_loss(pos, p, **k),
        "mse": lambda **k: fl.mse_loss(x, p, **k),
        "mse_none": lambda **k: fl.mse_loss(x, p, reduction="none", **k),
        "l1": lambda **k: fl.l1_loss(x, p, **k),
        "huber": lambda **k: fl.huber_loss(x, p, **k),
        "huber_none": lambda **k: fl.huber_loss(x, p, reduction="none", **k),
        "smooth_l1": lambda **k: fl.smooth_l1_loss(x, p, **k),
        "hinge": lambda **k: fl.hinge_loss(x, t * 2 - 1, **k),
        "quantile": lambda **k: fl.quantile_loss(x, p, **k),
        "mape": lambda **k: fl.mape_loss(x, pos, **k),
        "smape": lambda **k: fl.smape_loss(x, pos, **k),
    }


def child(root, out_npz, only):
    sys.path.insert(0, root)
    os.chdir(root)
    import fastloss as fl
    fl.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 500_000
    res, arrs = {}, {}
    g = np.empty(n, DT)
    for name, f0 in cases(fl, rng, n).items():
        if only and name not in only:
            continue
        for var, kw in (("loss", {}), ("grad", dict(return_grad=True, grad_out=g))):
            f = lambda: f0(**kw)  # noqa: E731
            r = f()
            best, k, t_end = 1e9, 0, time.perf_counter() + 0.3
            while time.perf_counter() < t_end or k < 5:
                t0 = time.thread_time()
                f()
                d = time.thread_time() - t0
                if d > 0:
                    best = min(best, d)
                k += 1
            res[f"{name}/{var}"] = best * 1e9 / n
            for part, a in zip(("l", "g"), r if isinstance(r, tuple) else (r,)):
                arrs[f"{name}/{var}_{part}"] = np.array(a)
    np.savez(out_npz, **arrs)
    print(json.dumps(res))


def main():
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4].split(",") if sys.argv[4] else [])
        return
    A, B, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only = sys.argv[4] if len(sys.argv) > 4 else ""
    best = {A: {}, B: {}}
    for _ in range(rounds):
        for root, tag in ((A, "A"), (B, "B")):
            o = subprocess.run([sys.executable, __file__, "--child", root, f"/tmp/ab_elementwise_{tag}.npz", only],
                               capture_output=True, text=True)
            if o.returncode:
                sys.exit(o.stderr[-2000:])
            for k, v in json.loads(o.stdout.strip().splitlines()[-1]).items():
                best[root][k] = min(best[root].get(k, 1e9), v)
    a, b = np.load("/tmp/ab_elementwise_A.npz"), np.load("/tmp/ab_elementwise_B.npz")
    for k in best[A]:
        print(f"{k:24s} old {best[A][k]:.3f}  new {best[B][k]:.3f}  new/old {best[B][k] / best[A][k]:.3f}")
    differ = [k for k in a.files if not np.array_equal(a[k], b[k], equal_nan=True)]
    print("bitwise different:", differ or "none")


if __name__ == "__main__":
    main()
