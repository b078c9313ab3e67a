"""Side by side in one process, T=1: kernels of an older build vs the current build vs torch.

    # save the older build's kernels first, e.g. before a change:
    mkdir -p /tmp/fl_orig && cp fastloss/_kernels/_{classification,binary}_avx2*.so /tmp/fl_orig/
    # ... change, rebuild, then:
    FL_ORIG=/tmp/fl_orig python3 benchmarks/compare_kernels.py W2 W7 W17W7 W6 W1 W17W1

Times are the calling thread's CPU time (time.thread_time), minimum over interleaved rounds: on a
machine shared with other jobs, wall-clock medians swing by 2x while CPU time of a single-threaded call
stays within a few percent (it still includes page faults of freshly allocated outputs).  The older
build's sigmoid_focal_loss is called through the generic "focal" kind, as its wrapper did.
"""
import glob
import importlib.util
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastloss as fl
from fastloss import _binary as B, _classification as CL
torch.set_num_threads(1)

def load_orig(fam):
    path = glob.glob(os.path.join(os.environ.get("FL_ORIG", "/tmp/fl_orig"), f"_{fam}_avx2*.so"))[0]
    spec = importlib.util.spec_from_file_location(f"origpkg._{fam}_avx2", path)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
orig = {f: load_orig(f) for f in ("classification", "binary")}
class _OrigBinary:   # the original wrapper always ran the generic "focal" kind (pow via exp/log)
    def __init__(self, m): self.m = m
    def elementwise(self, kind, *a): return self.m.elementwise("focal" if kind == "focal_square" else kind, *a)
orig["binary"] = _OrigBinary(orig["binary"])
new = {"classification": CL._K, "binary": B._K}

def timeit(f, rep=7):
    f(); ts = []
    for _ in range(rep):
        t = time.thread_time(); f(); ts.append(time.thread_time() - t)
    return np.median(ts)

def run(name, call, tref):
    res = {}
    for _ in range(3):   # interleave
        for lab, mods in (("orig", orig), ("new", new)):
            CL._K, B._K = mods["classification"], mods["binary"]
            res.setdefault(lab, []).append(timeit(call))
        res.setdefault("torch", []).append(timeit(tref))
    CL._K, B._K = new["classification"], new["binary"]
    o, n, t = (min(res[k]) for k in ("orig", "new", "torch"))
    print(f"{name:28s} orig {o*1e3:8.2f} ms  new {n*1e3:8.2f} ms  torch {t*1e3:8.2f}  torch/orig {t/o:5.2f}  torch/new {t/n:5.2f}  new/orig {n/o:5.3f}", flush=True)
    return o, n, t

rng = np.random.default_rng(0)
which = sys.argv[1:] or ["W2", "W7", "W17W1", "W1", "W6", "W17W7"]
if "W2" in which:
    x = rng.standard_normal((1_000_000, 10)).astype(np.float32); y = rng.integers(0, 10, 1_000_000)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    run("W2 CE 1e6x10", lambda: fl.cross_entropy(x, y, num_threads=1), lambda: F.cross_entropy(xt, yt))
if "W1" in which or "W17W1" in which:
    x = rng.standard_normal((100_000, 1000)).astype(np.float32); y = rng.integers(0, 1000, 100_000)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if "W1" in which:
        lo, ln, _ = run("W1 CE 1e5x1000", lambda: fl.cross_entropy(x, y, num_threads=1), lambda: F.cross_entropy(xt, yt))
    if "W17W1" in which:
        def tg():
            a = xt.clone().requires_grad_(); torch.autograd.grad(F.cross_entropy(a, yt), a)
        go, gn, _ = run("W17/W1 CE +grad", lambda: fl.cross_entropy(x, y, num_threads=1, return_grad=True), tg)
        if "W1" in which: print(f"   grad/loss orig {go/lo:.2f} new {gn/ln:.2f}")
if "W6" in which or "W17W6" in which:
    x = rng.standard_normal(10_000_000).astype(np.float32) * 3; y = rng.integers(0, 2, 10_000_000).astype(np.float32)
    pw = np.array([2.0], np.float32)
    xt, yt, pwt = map(torch.from_numpy, (x, y, pw))
    lo, ln, _ = run("W6 BCE 1e7 pw", lambda: fl.binary_cross_entropy_with_logits(x, y, pos_weight=pw, num_threads=1),
                    lambda: F.binary_cross_entropy_with_logits(xt, yt, pos_weight=pwt))
    if "W17W6" in which:
        def tg():
            a = xt.clone().requires_grad_()
            torch.autograd.grad(F.binary_cross_entropy_with_logits(a, yt, pos_weight=pwt), a)
        go, gn, _ = run("W17/W6 BCE +grad", lambda: fl.binary_cross_entropy_with_logits(
            x, y, pos_weight=pw, num_threads=1, return_grad=True), tg)
        print(f"   grad/loss orig {go/lo:.2f} new {gn/ln:.2f}")
if "W7" in which or "W17W7" in which:
    x = rng.standard_normal(10_000_000).astype(np.float32) * 3; y = rng.integers(0, 2, 10_000_000).astype(np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    def tv(a, t, alpha=0.25, gamma=2):
        p = torch.sigmoid(a); ce = F.binary_cross_entropy_with_logits(a, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t); loss = ce * ((1 - p_t) ** gamma)
        return ((alpha * t + (1 - alpha) * (1 - t)) * loss).mean()
    if "W7" in which:
        fo, fn_, _ = run("W7 focal 1e7", lambda: fl.sigmoid_focal_loss(x, y, reduction="mean", num_threads=1), lambda: tv(xt, yt))
    if "W17W7" in which:
        def tg():
            a = xt.clone().requires_grad_(); torch.autograd.grad(tv(a, yt), a)
        go, gn, _ = run("W17/W7 focal +grad", lambda: fl.sigmoid_focal_loss(x, y, reduction="mean", num_threads=1, return_grad=True), tg)
        if "W7" in which: print(f"   grad/loss orig {go/fo:.2f} new {gn/fn_:.2f}")
