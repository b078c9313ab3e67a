"""Bitwise determinism across thread counts, at sizes that split into many blocks.

The test suite checks determinism at 1-4 threads (what CI's 2 cores can run); this script is for a
machine with more cores (the 16-core device machine): every loss family at ``--threads`` (default 1, 2,
3, 5, 8, 11, 16, capped at the machine's cores), reductions "mean", "sum" and "none", with the gradient
where the loss has one.  A call passes when its value, gradient and loss-only value have the same bytes
at every thread count as at 1 thread.  Prints one line per call and a summary; exit status 1 on any
difference.

    python3 benchmarks/thread_determinism.py [--threads 1,2,4,8,16] [--dtype float32,float64]
"""
import argparse
import inspect
import os
import sys
import time

import numpy as np

import fastloss as fl


def _calls(dtype, rng):
    """name -> (function, args, kwargs): inputs of 0.5-4 M elements (many blocks at 16 threads)."""
    f = lambda *s: rng.standard_normal(s).astype(dtype)
    N, C = 20000, 100
    x, y = f(N, C) * 3, rng.integers(0, C, N)
    y[::13] = -100
    w = np.linspace(0.5, 2, C).astype(dtype)
    probs = rng.random((N, C)).astype(dtype)
    probs /= probs.sum(1, keepdims=True)
    x10, y10 = f(200000, 10), rng.integers(0, 10, 200000)
    xv, yv = f(64, 32000), rng.integers(0, 32000, 64)
    xs, ys = f(4, 21, 96, 96), rng.integers(0, 21, (4, 96, 96))
    e1 = rng.random(1_000_000).astype(dtype)
    b1 = np.sort(rng.random((300000, 4)).astype(dtype) * 100, axis=1)[:, [0, 1, 2, 3]]
    b1 = np.stack([b1[:, 0], b1[:, 1], b1[:, 0] + b1[:, 2], b1[:, 1] + b1[:, 3]], 1)
    b2 = b1 + f(300000, 4)
    a, p, n = f(30000, 64), f(30000, 64), f(30000, 64)
    pm = np.where(rng.random(30000) < 0.5, 1, -1).astype(dtype)
    y01 = (rng.random(30000) < 0.5).astype(dtype)
    emb, lab = f(1024, 64), rng.integers(0, 32, 1024)
    cw = f(500, 64)
    seg = f(4, 4, 128, 128)
    segy = rng.integers(0, 4, (4, 128, 128))
    h, W, t = f(512, 256), f(4000, 256) * 0.05, rng.integers(0, 4000, 512)
    return {
        "cross_entropy index weight smoothing": (fl.cross_entropy, (x, y), dict(weight=w, label_smoothing=0.1)),
        "cross_entropy C=10": (fl.cross_entropy, (x10, y10), {}),
        "cross_entropy C=32000": (fl.cross_entropy, (xv, yv), {}),
        "cross_entropy spatial": (fl.cross_entropy, (xs, ys), {}),
        "cross_entropy probs": (fl.cross_entropy, (x, probs), {}),
        "nll_loss": (fl.nll_loss, (x, y), {}),
        "softmax_focal_loss": (fl.softmax_focal_loss, (x, y), {}),
        "multi_margin_loss": (fl.multi_margin_loss, (x, np.maximum(y, 0)), {}),
        "distillation_loss": (fl.distillation_loss, (x10, x10[::-1].copy(), 2.0), {}),
        "kl_div": (fl.kl_div, (x, probs), {}),
        "binary_cross_entropy_with_logits": (fl.binary_cross_entropy_with_logits, (e1 * 8 - 4, e1[::-1].copy()), {}),
        "binary_cross_entropy": (fl.binary_cross_entropy, (e1 * 0.98 + 0.01, e1[::-1].copy()), {}),
        "sigmoid_focal_loss": (fl.sigmoid_focal_loss, (e1 * 8 - 4, (e1 > 0.5).astype(dtype)), {}),
        "mse_loss": (fl.mse_loss, (e1, e1[::-1].copy()), {}),
        "huber_loss": (fl.huber_loss, (e1 * 4, e1[::-1].copy()), {}),
        "log_cosh_loss": (fl.log_cosh_loss, (e1 * 4, e1[::-1].copy()), {}),
        "poisson_nll_loss": (fl.poisson_nll_loss, (e1, e1[::-1].copy()), {}),
        "generalized_box_iou_loss": (fl.generalized_box_iou_loss, (b1, b2), {}),
        "complete_box_iou_loss": (fl.complete_box_iou_loss, (b1, b2), {}),
        "triplet_margin_loss": (fl.triplet_margin_loss, (a, p, n), {}),
        "cosine_embedding_loss": (fl.cosine_embedding_loss, (a, p, pm), {}),
        "contrastive_loss": (fl.contrastive_loss, (a, p, y01), {}),
        "margin_ranking_loss": (fl.margin_ranking_loss, (e1, e1[::-1].copy(), np.sign(e1 - 0.5).astype(dtype)), {}),
        "dice_loss": (fl.dice_loss, (seg, segy), {}),
        "batch_hard_triplet_loss": (fl.batch_hard_triplet_loss, (emb, lab), {}),
        "batch_all_triplet_loss": (fl.batch_all_triplet_loss, (emb, lab), {}),
        "nt_xent_loss": (fl.nt_xent_loss, (emb, emb[::-1].copy()), {}),
        "info_nce_loss": (fl.info_nce_loss, (emb, emb[::-1].copy()), {}),
        "arcface_loss": (fl.arcface_loss, (emb, lab, cw), {}),
        "linear_cross_entropy": (fl.linear_cross_entropy, (h, W, t), {}),
    }


def _bits(r):
    """The bytes of a result: a value, or (value, gradient), the gradient itself a tuple for some losses."""
    if isinstance(r, (tuple, list)):
        return tuple(b for q in r for b in _bits(q))
    return (np.asarray(r).tobytes(),)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = os.cpu_count() or 1
    ap.add_argument("--threads", default=",".join(str(t) for t in (1, 2, 3, 5, 8, 11, 16) if t <= cores))
    ap.add_argument("--dtype", default="float32,float64")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    bad = checked = 0
    t0 = time.perf_counter()
    for dtype in args.dtype.split(","):
        for name, (fn, fargs, kw) in _calls(np.dtype(dtype), np.random.default_rng(7)).items():
            params = inspect.signature(fn).parameters
            grad = "return_grad" in params
            for reduction in ("mean", "sum", "none"):
                if reduction == "mean" and fn is fl.distillation_loss:
                    reduction = "batchmean"
                first, diff = None, []
                for nt in threads:
                    kw2 = dict(kw, reduction=reduction, num_threads=nt)
                    got = _bits(fn(*fargs, **kw2))
                    if grad:
                        got += _bits(fn(*fargs, return_grad=True, **kw2))
                    first = got if first is None else first
                    if got != first:
                        diff.append(nt)
                checked += 1
                bad += bool(diff)
                print(f"{dtype:8s} {name:40s} {reduction:9s} {'DIFFERS at T=' + str(diff) if diff else 'same bits'}",
                      flush=True)
    print(f"{checked} calls at T={threads}: {bad} differ ({time.perf_counter() - t0:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
