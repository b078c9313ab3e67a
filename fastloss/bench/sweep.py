"""``fastloss bench --classes-sweep``: cross-entropy over the class count C, fastloss against torch.

Issue 16's regression benchmark for the class-count cliff: every C from 2 to 128 one by one, then the
powers of two up to 262 144, for class-index targets (``mean`` and ``none``), label smoothing 0.1 and
probability targets, each with and without ``return_grad``, at each thread count T (fastloss
``num_threads=T``, ``torch.set_num_threads(T)``), float32 logits of a fixed total size: N = elements / C
rows, so every C moves the same bytes.  Two sizes: ``batch`` (2^20 logits, 4 MiB: one evaluation batch,
cache-resident on most CPUs) and ``large`` (2^24 logits, 64 MiB, memory-resident).

Timing: one warm-up call each, then ``repeat`` interleaved rounds (fastloss, torch, fastloss, ...); a round
times ``inner`` back-to-back calls (inner chosen so that a round lasts >= ~4 ms, which keeps a timer tick
or a context switch from dominating); the median round per implementation.  Reported per logit (ns) and
as torch/fastloss (> 1: fastloss is faster); the target is torch/fastloss >= 2 at batch sizes.
``clock="thread"`` times with the calling thread's CPU time instead of the wall clock: at T=1 both
libraries compute in the calling thread, so on a shared machine this measures the kernels and not the
time the scheduler gave to other processes (it is refused at T > 1, where the work is on other threads).

    fastloss bench --classes-sweep --threads 1,2                      # batch size, every C
    fastloss bench --classes-sweep --sweep-size large --sweep-classes 2,20,100,1000
    fastloss bench --classes-sweep --quick                            # a few C per region, in ~1 min
"""
import statistics
import time

import numpy as np

from .workloads import thread_limits

SIZES = {"batch": 2 ** 20, "large": 2 ** 24}
ALL_CLASSES = tuple(range(2, 129)) + tuple(2 ** k for k in range(8, 19))
# --quick: each side of the old tile-path boundary (16/17), the VOC / CIFAR-100 counts, and the long rows
QUICK_CLASSES = (2, 5, 10, 16, 17, 20, 21, 24, 31, 32, 33, 48, 64, 100, 128, 1000, 32768, 262144)
# name -> (target kind, reduction, label_smoothing)
VARIANTS = {
    "index": ("index", "mean", 0.0),
    "index-none": ("index", "none", 0.0),
    "smoothing": ("index", "mean", 0.1),
    "probs": ("probs", "mean", 0.0),
}
TARGET_RATIO = 2.0


def _inputs(C, elements, kind, seed=0):
    rng = np.random.default_rng(seed + C)
    N = max(1, elements // C)
    x = rng.standard_normal((N, C), dtype=np.float32)
    if kind == "index":
        return x, rng.integers(0, C, N)
    t = rng.random((N, C), dtype=np.float32)
    return x, t / t.sum(axis=1, keepdims=True)


def _callables(x, t, reduction, eps, grad, T):
    import torch
    import torch.nn.functional as F
    import fastloss
    out = {"fastloss": lambda: fastloss.cross_entropy(x, t, reduction=reduction, label_smoothing=eps,
                                                      num_threads=T, return_grad=grad)}
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    if grad:
        xg = xt.clone().requires_grad_(True)

        def torch_fn():
            loss = F.cross_entropy(xg, tt, reduction=reduction, label_smoothing=eps)
            return torch.autograd.grad(loss, xg, grad_outputs=torch.ones_like(loss))
        out["torch"] = torch_fn
    else:
        out["torch"] = lambda: F.cross_entropy(xt, tt, reduction=reduction, label_smoothing=eps)
    return out


CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def _time(fns, repeat, min_round_s=0.004, clock="wall"):
    """Median seconds per call of each callable (interleaved rounds, see the module docstring)."""
    import gc
    now = CLOCKS[clock]
    inner = {}
    for k, fn in fns.items():
        fn()
        t0 = now()
        fn()
        inner[k] = max(1, int(min_round_s / max(now() - t0, 1e-7)))
    runs = {k: [] for k in fns}
    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for k, fn in fns.items():
                t0 = now()
                for _ in range(inner[k]):
                    fn()
                runs[k].append((now() - t0) / inner[k])
    finally:
        if was:
            gc.enable()
    return {k: statistics.median(v) for k, v in runs.items()}


def _value(r, grad):
    """The compared value of a call's result: the loss, or with return_grad the gradient (fastloss
    returns (loss, grad), torch.autograd.grad (grad,))."""
    if grad:
        r = r[-1]
    return np.asarray(r.detach().numpy() if hasattr(r, "detach") else r, dtype=np.float64)


def run_sweep(threads, classes=ALL_CLASSES, variants=tuple(VARIANTS), grads=(False, True), size="batch",
              repeat=5, progress=None, clock="wall"):
    """The sweep as a list of rows {C, N, variant, grad, threads, fastloss_s, torch_s, ns_per_logit, ratio,
    rel_diff} (rel_diff: the loss, or the gradient, against torch's: a sanity check)."""
    if clock != "wall" and max(threads) > 1:
        raise ValueError("clock='thread' measures the calling thread only: use it with threads=[1]")
    elements = SIZES[size]
    rows = []
    for C in classes:
        for v in variants:
            kind, reduction, eps = VARIANTS[v]
            x, t = _inputs(C, elements, kind)
            for grad in grads:
                for T in threads:
                    if progress:
                        progress(f"C={C} {v}{' +grad' if grad else ''} T={T}")
                    with thread_limits(T):
                        fns = _callables(x, t, reduction, eps, grad, T)
                        a, b = _value(fns["fastloss"](), grad), _value(fns["torch"](), grad)
                        times = _time(fns, repeat, clock=clock)
                    diff = float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
                    rows.append({"C": C, "N": x.shape[0], "variant": v, "grad": grad, "threads": T,
                                 "fastloss_s": times["fastloss"], "torch_s": times["torch"],
                                 "ns_per_logit": {k: s / x.size * 1e9 for k, s in times.items()},
                                 "ratio": times["torch"] / times["fastloss"], "rel_diff": diff})
    return rows


def render(rows, size, markdown=False, clock="wall"):
    """A table per (variant, grad): one line per C, a column pair per thread count."""
    threads = sorted({r["threads"] for r in rows})
    keys = sorted({(r["variant"], r["grad"]) for r in rows}, key=lambda k: (list(VARIANTS).index(k[0]), k[1]))
    out = [f"cross_entropy class-count sweep, float32, {SIZES[size]} logits per call ({size} size); "
           f"ns per logit fastloss / torch ({clock} clock, median), and torch/fastloss (target >= {TARGET_RATIO:g})"]
    by = {(r["variant"], r["grad"], r["C"], r["threads"]): r for r in rows}
    for v, g in keys:
        cs = sorted({r["C"] for r in rows if r["variant"] == v and r["grad"] == g})
        head = ["C"] + [f"{h} T={T}" for T in threads for h in ("fastloss ns", "torch ns", "torch/fl")]
        out.append("")
        out.append(f"{v}{' +grad' if g else ''}")
        lines = [head]
        worst = {}
        for C in cs:
            line = [str(C)]
            for T in threads:
                r = by.get((v, g, C, T))
                if r is None:
                    line += ["-"] * 3
                    continue
                flag = "" if r["ratio"] >= TARGET_RATIO else " *"
                if r["rel_diff"] > 1e-4:
                    flag += " (diff %.1e)" % r["rel_diff"]
                line += [f"{r['ns_per_logit']['fastloss']:.2f}", f"{r['ns_per_logit']['torch']:.2f}",
                         f"{r['ratio']:.2f}{flag}"]
                if T not in worst or r["ratio"] < worst[T][0]:
                    worst[T] = (r["ratio"], C)
            lines.append(line)
        out.extend(_table(lines, markdown))
        out.append("lowest torch/fastloss: " + ", ".join(f"T={T}: {w[0]:.2f} at C={w[1]}"
                                                        for T, w in sorted(worst.items())))
    out.append("")
    out.append("* below the target")
    return "\n".join(out)


def _table(lines, markdown):
    if markdown:
        md = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        return md + ["| " + " | ".join(r) + " |" for r in lines[1:]]
    widths = [max(len(r[i]) for r in lines) for i in range(len(lines[0]))]
    return ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in lines]
