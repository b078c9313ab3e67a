"""Hostile inputs of the non-cross-entropy families, shared by tests/test_accuracy.py and the child
interpreters it runs at each ISA level (imported by path there: no pytest, no torch needed to *run*).

A case is ``(case_id, loss_name, args, kwargs)``: a call of ``fastloss.<loss_name>`` on NumPy arrays of
one float dtype (labels integer).  ``run_case`` evaluates it with ``reduction="none"`` and, where the
loss has one, ``return_grad=True``, plus ``reduction="mean"``; ``reference_case`` evaluates the
shared independent float64 reference (torch / NumPy on the upcast inputs, gradients by
torch.autograd) in the same layout.

``finite`` cases hold only finite inputs (the float32 sweep measures them); ``special`` cases add
+-inf, nan, +-1e4 and degenerate geometry (propagation and agreement between levels).

(The cross-entropy family -- cross_entropy, nll_loss, softmax_focal_loss, distillation_loss -- is
covered by its own accuracy tests.)
"""
import inspect

import numpy as np

SEED = 20260514


def _pair(d, y):
    """x = y + d elementwise over the product of the d and y grids."""
    d, y = np.meshgrid(np.asarray(d, np.float64), np.asarray(y, np.float64))
    return (y + d).ravel(), y.ravel()


def _signed_logspace(lo, hi, n):
    m = np.logspace(lo, hi, n)
    return np.concatenate([-m[::-1], [0.0], m])


def _regression(dtype, rng):
    d = _signed_logspace(-7, 4, 45)
    x, y = _pair(d, [0.0, 1.5, -1e3])
    out = []
    for name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss", "quantile_loss",
                 "smape_loss"):
        out.append(("grid", name, (x, y), {}))
    out.append(("delta_edges", "huber_loss", _pair([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], [0.0, 3.0]), {"delta": 1.0}))
    out.append(("beta_edges", "smooth_l1_loss", _pair([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], [0.0, 3.0]), {"beta": 1.0}))
    # log-cosh: the issue-14 value and a dense sweep of |d| (the old branch point 1/16, the new one 1)
    dd = np.concatenate([np.full(4, 0.06267813), np.linspace(-3, 3, 2001), _signed_logspace(-30, 2.5, 80)])
    out.append(("issue_range", "log_cosh_loss", (dd, np.zeros_like(dd)), {}))
    out.append(("issue_mean", "log_cosh_loss", (np.full(1000, 0.06267813), np.zeros(1000)), {}))
    xp, yp = _pair(np.linspace(-6, 6, 25), [0.0, 0.5, 3.0, 40.0])
    out.append(("grid", "poisson_nll_loss", (xp, yp), {}))
    out.append(("full", "poisson_nll_loss", (xp, yp), {"full": True}))
    out.append(("rate", "poisson_nll_loss", (np.abs(xp) + 1e-3, yp), {"log_input": False}))
    v = np.tile(np.logspace(-5, 4, 10), x.size // 10 + 1)[:x.size]
    out.append(("grid", "gaussian_nll_loss", (x, y, v), {}))
    ym = np.where(y == 0, 0.25, y)
    out.append(("grid", "mape_loss", (ym + (x - y), ym), {}))
    xm, ym2 = _pair(np.concatenate([-np.logspace(-7, -0.1, 20), np.logspace(-7, 3, 30)]), [0.0, 2.0, 100.0])
    out.append(("grid", "msle_loss", (xm, ym2), {}))
    mu = rng.standard_normal((64, 8)) * np.logspace(-6, 2, 64)[:, None]
    lv = rng.standard_normal((64, 8)) * 3
    out.append(("grid", "gaussian_kl_loss", (mu, lv), {}))
    return out


def _regression_special():
    s = np.array([1e4, -1e4, np.inf, -np.inf, np.nan, 0.0, 1.0, -1.0])
    x, y = np.meshgrid(s, s)
    x, y = x.ravel(), y.ravel()
    out = [("specials", n, (x, y), {}) for n in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss",
                                                  "log_cosh_loss", "quantile_loss", "smape_loss")]
    return out


def _binary(dtype, rng):
    out = []
    p = np.concatenate([np.logspace(-7, -0.31, 30), 1 - np.logspace(-7, -0.31, 30)])
    pb, yb = np.meshgrid(p, [0.0, 0.3, 1.0])
    out.append(("grid", "binary_cross_entropy", (pb.ravel(), yb.ravel()), {}))
    z = _signed_logspace(-4, np.log10(60.0), 40)
    xl, tl = np.meshgrid(z, [0.0, 0.25, 1.0])
    for name, kw in (("sigmoid_focal_loss", {}), ("sigmoid_focal_loss", {"gamma": 1.5, "alpha": -1}),
                     ("binary_cross_entropy_with_logits", {}),
                     ("binary_cross_entropy_with_logits", {"pos_weight": np.array(3.0)})):
        out.append(("grid" if not kw else "grid_" + "_".join(sorted(kw)), name, (xl.ravel(), tl.ravel()), kw))
    xh, th = np.meshgrid(_signed_logspace(-3, 2, 20), [-1.0, 1.0])
    out.append(("grid", "hinge_loss", (xh.ravel(), th.ravel()), {}))
    out.append(("squared", "hinge_loss", (xh.ravel(), th.ravel()), {"squared": True}))
    lp = -np.logspace(-6, 1.5, 64).reshape(8, 8)
    tq = rng.dirichlet(np.full(8, 0.3), 8)
    tq[0, :3] = 0.0
    tq[0] /= tq[0].sum()
    out.append(("grid", "kl_div", (lp, tq), {}))
    return out


def _binary_special():
    x = np.array([1e4, -1e4, np.inf, -np.inf, np.nan, 0.0, 40.0, -40.0])
    t = np.array([0.0, 1.0, 0.5, np.inf, -np.inf, np.nan])
    xx, tt = np.meshgrid(x, t)
    return [("specials", "binary_cross_entropy_with_logits", (xx.ravel(), tt.ravel()), {}),
            ("specials_pw", "binary_cross_entropy_with_logits", (xx.ravel(), tt.ravel()),
             {"pos_weight": np.array(2.0)}),
            ("specials", "sigmoid_focal_loss", (xx[:3].ravel(), tt[:3].ravel()), {})]


def _boxes(rng):
    b = rng.random((500, 4)) * 100
    b[:, 2:] += b[:, :2] + 1
    out = []
    for scale, tag in ((1e-4, "near_1e-4"), (1e-2, "near_1e-2"), (1.0, "near_1")):
        b2 = b + scale * rng.standard_normal(b.shape)
        out.append((tag, None, (b, b2), {}))
    nested = b.copy()
    nested[:, :2] += 0.25
    nested[:, 2:] -= 0.25
    out.append(("nested", None, (b, nested), {}))
    far = b + 300.0
    out.append(("disjoint", None, (b, far), {}))
    big = b * 1e4
    out.append(("large_coords", None, (big, big + rng.standard_normal(b.shape)), {}))
    cases = []
    for tag, _, args, kw in out:
        for name in ("iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
            cases.append((tag, name, args, kw))
    return cases


def _boxes_special(rng):
    b = rng.random((40, 4)) * 10
    b[:, 2:] += b[:, :2] + 1
    b2 = b + 0.1 * rng.standard_normal(b.shape)
    b2[:5, 2] = b2[:5, 0]                   # zero width
    b2[5:10, 3] = b2[5:10, 1]               # zero height
    b2[10:12] = b[10:12]                    # identical
    b2[12, 0] = np.nan
    b2[13, 2] = np.inf
    b2[14] = [1e4, 1e4, 1e4 + 1, 1e4 + 1]
    return [("specials", n, (b, b2), {}) for n in ("iou_loss", "generalized_box_iou_loss",
                                                   "distance_box_iou_loss", "complete_box_iou_loss")]


def _metric(dtype, rng):
    out = []
    a = rng.standard_normal((64, 33))
    out.append(("identical", "triplet_margin_loss", (a, a.copy(), a.copy()), {}))
    out.append(("near", "triplet_margin_loss", (a, a + 1e-3 * rng.standard_normal(a.shape),
                                                a + 2e-3 * rng.standard_normal(a.shape)), {"margin": 1e-3}))
    out.append(("scaled", "triplet_margin_loss", (a * 1e3, a * 1e3 + rng.standard_normal(a.shape),
                                                  a * 1e3 + 3 * rng.standard_normal(a.shape)), {"swap": True}))
    y = np.tile([1.0, -1.0], 32)
    out.append(("identical", "contrastive_loss", (a, a.copy(), (y > 0).astype(np.float64)), {}))
    out.append(("near", "contrastive_loss", (a, a + 1e-3 * rng.standard_normal(a.shape), (y > 0) * 1.0),
                {"margin": 0.1}))
    out.append(("near_parallel", "cosine_embedding_loss", (a, a * 3 + 1e-4 * rng.standard_normal(a.shape), y), {}))
    out.append(("orthogonalish", "cosine_embedding_loss", (a, rng.standard_normal(a.shape), y), {"margin": -0.1}))
    s = _signed_logspace(-3, 4, 32)
    out.append(("grid", "margin_ranking_loss", (s, s[::-1].copy(), np.sign(s) + (s == 0)), {"margin": 0.5}))
    out.append(("grid", "hinge_embedding_loss", (np.abs(s), np.where(np.arange(s.size) % 2, 1.0, -1.0)), {}))
    # mining: clusters, one coordinate of 745 (the fuzz run's 1.8e-5 through the float32 Gram)
    B, D = 96, 16
    lab = rng.integers(0, 8, B)
    centres = rng.standard_normal((8, D)) * 3
    e = centres[lab] + 0.3 * rng.standard_normal((B, D))
    e_off = e.copy()
    e_off[:, 0] += 745.0
    for tag, emb in (("clusters", e), ("offset745", e_off)):
        for name in ("batch_hard_triplet_loss", "batch_all_triplet_loss"):
            out.append((tag, name, (emb, lab), {"margin": 0.5}))
            out.append((tag + "_sq", name, (emb, lab), {"margin": 0.5, "squared": True}))
    q = rng.standard_normal((48, 16))
    out.append(("grid", "info_nce_loss", (q, q + 0.1 * rng.standard_normal(q.shape)), {"temperature": 0.05}))
    out.append(("grid", "nt_xent_loss", (q, q + 0.1 * rng.standard_normal(q.shape)), {"temperature": 0.1}))
    # ArcFace: rows near their centre's opposite (issue 14) and along it, every margin mode
    N, C, Dm = 128, 20, 24
    w = rng.standard_normal((C, Dm))
    yl = rng.integers(0, C, N)
    em = rng.standard_normal((N, Dm))
    em[:40] = -w[yl[:40]] + 1e-3 * rng.standard_normal((40, Dm))
    em[40:60] = w[yl[40:60]] * 2 + 1e-3 * rng.standard_normal((20, Dm))
    em[60:80] = -w[yl[60:80]] + 0.3 * rng.standard_normal((20, Dm))
    for mode in ({}, {"easy_margin": True}, {"plain_margin": True}):
        out.append(("near_pi_" + ("_".join(mode) or "default"), "arcface_loss", (em, yl, w), mode))
    return out


def _metric_special(rng):
    a = rng.standard_normal((8, 5))
    bad = a.copy()
    bad[1, 2], bad[2, 0], bad[3, 4] = np.inf, -np.inf, np.nan
    lab = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    return [("specials", "triplet_margin_loss", (a, bad, a + 1), {}),
            ("specials", "contrastive_loss", (a, bad, np.ones(8)), {}),
            ("specials", "cosine_embedding_loss", (a, bad, np.ones(8)), {}),
            ("specials", "batch_hard_triplet_loss", (bad, lab), {}),
            ("specials", "batch_all_triplet_loss", (bad, lab), {}),
            ("big", "margin_ranking_loss", (np.array([1e4, -1e4, 0.5]), np.array([-1e4, 1e4, 0.5]),
                                           np.array([1.0, 1.0, -1.0])), {})]


def _segmentation(dtype, rng):
    x = rng.standard_normal((2, 4, 64, 1)) * np.logspace(-2, 1.5, 64)[None, None, :, None]
    y = rng.integers(0, 4, (2, 64, 1))
    xb = rng.standard_normal((2, 1, 64, 1)) * np.logspace(-2, 1.5, 64)[None, None, :, None]
    yb = (rng.random((2, 1, 64, 1)) > 0.5) * 1.0
    return [("grid", "dice_loss", (x, y), {"mode": "multiclass"}),
            ("grid", "jaccard_loss", (x, y), {"mode": "multiclass"}),
            ("grid", "tversky_loss", (x, y), {"mode": "multiclass", "alpha": 0.3, "beta": 0.7}),
            ("grid", "focal_tversky_loss", (x, y), {"mode": "multiclass", "alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
            ("grid", "dice_bce_loss", (xb, yb), {"mode": "binary"})]


def _cast(args, dtype):
    return tuple(np.ascontiguousarray(a, dtype=dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                 else a for a in args)


def cases(dtype, finite_only=False):
    """Every case for ``dtype`` (inputs generated in float64, then rounded to dtype)."""
    rng = np.random.default_rng(SEED)
    raw = _regression(dtype, rng) + _binary(dtype, rng) + _boxes(rng) + _metric(dtype, rng) + _segmentation(dtype, rng)
    if not finite_only:
        raw += _regression_special() + _binary_special() + _boxes_special(rng) + _metric_special(rng)
    out = []
    for tag, name, args, kw in raw:
        kw = {k: (np.asarray(v, dtype=dtype) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        out.append((f"{name}[{tag}]", name, _cast(args, dtype), kw))
    return out


def _has(fn, param):
    return param in inspect.signature(fn).parameters


def run_case(fl, case):
    """{"none": per-element values, "grad<i>": gradients of their sum, "mean": the mean}."""
    _, name, args, kw = case
    fn = getattr(fl, name)
    res = {}
    with np.errstate(all="ignore"):
        if _has(fn, "return_grad"):
            v, g = fn(*args, reduction="none", return_grad=True, **kw)
            for i, gi in enumerate(g if isinstance(g, tuple) else (g,)):
                res[f"grad{i}"] = np.asarray(gi)
        else:
            v = fn(*args, reduction="none", **kw)
        res["none"] = np.asarray(v)
        res["mean"] = np.asarray(fn(*args, reduction="mean", **kw))
    return res


def reference_case(case):
    """The shared float64 reference in run_case's layout (torch.autograd for the gradients)."""
    import torch

    from fastloss._reference import REFERENCES

    _, name, args, kw = case
    spec = REFERENCES[name]
    kw = {k: (torch.from_numpy(np.asarray(v, np.float64)) if isinstance(v, np.ndarray) else v)
          for k, v in kw.items()}
    res = {}
    for red in ("none", "mean"):
        leaves, tin = [], []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                t = torch.from_numpy(np.array(a, dtype=np.float64))
                if red == "none" and i in spec.grad_argnums:
                    t.requires_grad_(True)
                    leaves.append(t)
                tin.append(t)
            else:
                tin.append(torch.from_numpy(np.asarray(a, dtype=np.int64)) if isinstance(a, np.ndarray) else a)
        if spec.torch_ref is not None:
            val = spec.torch_ref(*tin, reduction=red, **kw)
        else:
            with np.errstate(all="ignore"):
                val = torch.as_tensor(spec.numpy_ref(*[t.detach().numpy() if isinstance(t, torch.Tensor) else t
                                                       for t in tin], reduction=red, **kw))
        if red == "none" and leaves:
            if val.requires_grad:
                gs = torch.autograd.grad(val.sum(), leaves, allow_unused=True)
            else:
                gs = [None] * len(leaves)
            for i, (g, t) in enumerate(zip(gs, leaves)):
                res[f"grad{i}"] = np.zeros(t.shape) if g is None else g.numpy()
        res[red] = val.detach().numpy().astype(np.float64)
    return res


def main(path):
    """Child interpreter: run every case of both dtypes, save to ``path`` (npz, keys dtype|case|part)."""
    import fastloss as fl
    from fastloss._kernels import ISA_LEVEL

    out = {"level": np.array(ISA_LEVEL)}
    for dtype in (np.float32, np.float64):
        for case in cases(dtype):
            for part, arr in run_case(fl, case).items():
                out[f"{np.dtype(dtype).name}|{case[0]}|{part}"] = arr
    np.savez(path, **out)
