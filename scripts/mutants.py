#!/usr/bin/env python3
"""Mutation run: does the test suite catch wrong arithmetic in the kernels?

Each mutant is one small change to a kernel formula (a sign, a constant, min <-> max, a loop bound off
by one, a dropped term of a gradient).  For each, one at a time, in a scratch copy of the working tree
(never the real one):

  1. patch the source (the snippet must occur exactly once: a missing snippet is an ERROR, so the list
     is kept in step with the kernels);
  2. rebuild only the affected family at the baseline vector level
     (``FASTLOSS_ISA_LEVELS=baseline FASTLOSS_FAMILIES=<family> setup.py build_ext --inplace --force``;
     src_c headers: the family that includes them and whose tests run);
  3. run the matching tests (``pytest -x -q`` with a ``-k`` selection) with ``FASTLOSS_ISA=baseline``;
  4. restore the source and the family's unmutated module.

A mutant is *caught* when the tests fail (or crash, or time out).  Before the mutants, every selection
runs once on the unmutated copy and must pass (else a failure would prove nothing).  The run prints
caught / total and exits 1 if any mutant survived or could not be judged.

    python3 scripts/mutants.py                # all mutants (serial, niced; ~1 min each on 2 cores)
    python3 scripts/mutants.py --list         # list them
    python3 scripts/mutants.py --check        # every snippet still found exactly once (no build)
    python3 scripts/mutants.py --only mse_grad_sign,ce_smoothing_sign
    python3 scripts/mutants.py --keep         # keep the scratch tree (its path is printed)

The tree must be built in place first (the baseline level of every family is copied into the scratch
tree; ``setup.py`` always builds baseline).  tests/README.md records the last run.
"""
import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
K = "fastloss/_kernels/"


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str          # file to patch, relative to the root
    family: str        # kernel family rebuilt (fastloss/_kernels/<family>.pyx)
    old: str           # snippet, exactly once in the file
    new: str
    tests: tuple       # pytest arguments
    what: str


def t(path, k):
    return (f"tests/{path}", "-k", k)


MUTANTS = [
    # ---------------------------------------------------------------- elementwise.pyx: regression
    Mutant("mse_grad_sign", K + "elementwise.pyx", "elementwise",
           "    dx[0] = 2 * d\n    return d * d", "    dx[0] = -2 * d\n    return d * d",
           t("test_regression.py", "mse_loss and grad_matches"), "sign of the MSE gradient"),
    Mutant("huber_clamp_sign", K + "elementwise.pyx", "elementwise",
           "dx[0] = -delta if d < -delta else", "dx[0] = delta if d < -delta else",
           t("test_regression.py", "huber_loss and grad_matches"), "Huber gradient clamp: -delta -> delta"),
    Mutant("huber_linear_const", K + "elementwise.pyx", "elementwise",
           "delta * (ad - <floating> 0.5 * delta)", "delta * (ad - <floating> 0.25 * delta)",
           t("test_regression.py", "huber_loss and value_matches"), "Huber linear branch: delta/2 -> delta/4"),
    Mutant("smooth_l1_grad_div", K + "elementwise.pyx", "elementwise",
           "dx[0] = d / beta if ad < beta", "dx[0] = d * beta if ad < beta",
           t("test_regression.py", "smooth_l1_loss and grad_matches"), "smooth L1 gradient d/beta -> d*beta"),
    Mutant("poisson_grad_sign", K + "elementwise.pyx", "elementwise",
           "dx[0] = 1 - y / (x + eps)", "dx[0] = 1 + y / (x + eps)",
           t("test_regression.py", "poisson_nll_loss and grad_matches"), "Poisson (rate input) gradient sign"),
    Mutant("gauss_nll_dvar_term", K + "elementwise.pyx", "elementwise",
           "dvar[0] = <floating> (0.5 * (1 - dd * (dd / vd)) / vd)", "dvar[0] = <floating> (0.5 / vd)",
           t("test_regression.py", "gaussian_nll_loss and grad_matches"), "dropped term of d/dvar"),
    Mutant("log_cosh_small_const", K + "elementwise.pyx", "elementwise",
           "return <floating> -0.5 * r if small", "return <floating> -0.25 * r if small",
           t("test_regression.py", "log_cosh_loss and value_matches"),
           "log-cosh |d| < 1 branch: -log1p(-th^2)/2 -> /4 (was log_cosh_series_coef)"),
    Mutant("quantile_branch_const", K + "elementwise.pyx", "elementwise",
           "return q * u if u > 0 else (q - 1) * u", "return q * u if u > 0 else (q + 1) * u",
           t("test_regression.py", "quantile_loss and value_matches"), "pinball: (q - 1) u -> (q + 1) u"),
    Mutant("mape_max_to_min", K + "elementwise.pyx", "elementwise",
           "cdef floating s = ay if ay > eps else eps", "cdef floating s = eps if ay > eps else ay",
           t("test_regression.py", "mape_loss and value_matches"), "max(|y|, eps) -> min"),
    Mutant("smape_grad_dropped_term", K + "elementwise.pyx", "elementwise",
           "dx[0] = 2 * (f_sign(d) - r * f_sign(x)) / safe", "dx[0] = 2 * f_sign(d) / safe",
           t("test_regression.py", "smape_loss and grad_matches"), "dropped term of the sMAPE gradient"),
    Mutant("msle_grad_denominator", K + "elementwise.pyx", "elementwise",
           "dx[0] = 2 * r / (1 + x)", "dx[0] = 2 * r / (1 - x)",
           t("test_regression.py", "msle_loss and grad_matches"), "MSLE gradient 1/(1+x) -> 1/(1-x)"),
    Mutant("gauss_kl_dlv_sign", K + "elementwise.pyx", "elementwise",
           "dlv[0] = <floating> 0.5 * (ev - 1)", "dlv[0] = <floating> 0.5 * (ev + 1)",
           t("test_regression.py", "gaussian_kl_loss and grad_matches"), "Gaussian KL d/dlogvar: ev-1 -> ev+1"),
    # ---------------------------------------------------------------- classification.pyx
    Mutant("ce_smoothing_sign", K + "classification.pyx", "classification",
           "epsC * (wtot * ls - swm)", "epsC * (wtot * ls + swm)",
           t("test_cross_entropy.py", "test_matches_torch and rows and smoothing"),
           "label-smoothing term sign (rows)"),
    Mutant("ce_rows_target_grad_sign", K + "classification.pyx", "classification",
           "g[y] = <floating> target_grad(pm1, ey / s,", "g[y] = <floating> target_grad(-pm1, ey / s,",
           t("test_cross_entropy.py", "large_vocabulary"), "CE long rows: target gradient sign"),
    Mutant("ce_probs_sum_bound", K + "classification.pyx", "classification",
           "    for j in range(C):\n        xc = xs + j * cs\n        tcl = ts + j * cs\n",
           "    for j in range(C - 1):\n        xc = xs + j * cs\n        tcl = ts + j * cs\n",
           t("test_softmax_family.py", "ce_probs_vs_torch"), "CE probability targets (class-major runs): the class sums miss the last class"),
    Mutant("nll_sign", K + "classification.pyx", "classification",
           "loss[i - start] = -wy * (<const floating*> c.x)[at]", "loss[i - start] = wy * (<const floating*> c.x)[at]",
           t("test_softmax_family.py", "nll_vs_torch"), "NLL sign"),
    Mutant("multi_margin_hinge_sign", K + "classification.pyx", "classification",
           "h = margin - row[y] + row[j]", "h = margin + row[y] - row[j]",
           t("test_softmax_family.py", "multi_margin_vs_torch"), "multi-margin hinge sign"),
    Mutant("multi_margin_count_off_by_one", K + "classification.pyx", "classification",
           "wy = (w[y] if w != NULL else 1) / C", "wy = (w[y] if w != NULL else 1) / (C - 1)",
           t("test_softmax_family.py", "multi_margin_vs_torch"), "multi-margin: divides by C - 1"),
    Mutant("distillation_T_squared", K + "classification.pyx", "classification",
           "loss[i - start] = <floating> (T * T * (W / st", "loss[i - start] = <floating> (T * (W / st",
           t("test_softmax_family.py", "distillation_vs_torch"), "distillation: T^2 -> T"),
    Mutant("focal_grad_dropped_term", K + "classification.pyx", "classification",
           "K[0] = qg - (gamma * exp(lp) * lp * pow(q, gamma - 1.0) if q != 0 else 0.0)",
           "K[0] = qg",
           t("test_softmax_family.py", "focal_vs_torch_ops"), "softmax focal: dropped term of the gradient"),
    Mutant("sumexp_f64_bound", "src_c/fl_reduce.h", "classification",
           "for (ptrdiff_t i = 0; i < nb; i++) s += EXP(x[i] - m);",
           "for (ptrdiff_t i = 0; i < nb - 1; i++) s += EXP(x[i] - m);",
           t("test_cross_entropy.py", "large_vocabulary and float64"),
           "fl_reduce.h: row sum-exp (value only) misses the last class of the vector part"),
    # ---------------------------------------------------------------- elementwise.pyx: binary
    Mutant("bce_logits_grad_sign", K + "elementwise.pyx", "elementwise",
           "dx[0] = ((one - y) - l * ei) if x >= zero else (l * ei - pw * y)",
           "dx[0] = ((one - y) - l * ei) if x >= zero else (l * ei + pw * y)",
           t("test_bce_logits.py", "test_matches_torch"), "BCE-with-logits gradient (x < 0) sign"),
    Mutant("bce_logits_max_to_min", K + "elementwise.pyx", "elementwise",
           "cdef floating mx = f_max(x, zero)\n", "cdef floating mx = f_min(x, zero)\n",
           t("test_bce_logits.py", "test_matches_torch"), "BCE-with-logits max(x, 0) -> min"),
    Mutant("bce_grad_sign", K + "elementwise.pyx", "elementwise",
           "dp[0] = (p - y) / f_max((one - p) * p", "dp[0] = (y - p) / f_max((one - p) * p",
           t("test_binary.py", "value_and_grad and binary_cross_entropy"), "BCE (probabilities) gradient sign"),
    Mutant("bce_clamp_max_to_min", K + "elementwise.pyx", "elementwise",
           "cdef floating log_p = f_max(f_log(p), <floating> -100)",
           "cdef floating log_p = f_min(f_log(p), <floating> -100)",
           t("test_binary.py", "value_and_grad and binary_cross_entropy"), "BCE log clamp max -> min"),
    Mutant("sigmoid_focal_q_swap", K + "elementwise.pyx", "elementwise",
           "cdef floating q = p * (one - t) + pm * t", "cdef floating q = p * t + pm * (one - t)",
           t("test_binary.py", "value_and_grad and sigmoid_focal_loss"), "sigmoid focal: 1 - p_t swapped"),
    Mutant("hinge_grad_sign", K + "elementwise.pyx", "elementwise",
           "ds[0] = -y * ((h + h)", "ds[0] = y * ((h + h)",
           t("test_binary.py", "value_and_grad and hinge_loss"), "hinge gradient sign"),
    Mutant("kl_log_target_sign", K + "elementwise.pyx", "elementwise",
           "return et * (t - x)", "return et * (t + x)",
           t("test_binary.py", "kl_log_target"), "KL (log target) sign"),
    # ---------------------------------------------------------------- boxes.pyx
    Mutant("box_union_sign", K + "boxes.pyx", "boxes",
           "un = w1 * h1 + w2 * h2 - inter", "un = w1 * h1 + w2 * h2 + inter",
           t("test_boxes.py", "loss_float64_matches_torchvision and iou_loss"), "union counts the overlap twice"),
    Mutant("box_intersection_max_to_min", K + "boxes.pyx", "boxes",
           "cdef floating xk1 = f_max(x1, u1)", "cdef floating xk1 = f_min(x1, u1)",
           t("test_boxes.py", "loss_float64_matches_torchvision and generalized"), "intersection left edge max -> min"),
    Mutant("giou_sign", K + "boxes.pyx", "boxes",
           "if overlap else C - un) / Ce\n            loss = one_m_iou + q",
           "if overlap else C - un) / Ce\n            loss = one_m_iou - q",
           t("test_boxes.py", "loss_float64_matches_torchvision and generalized"), "GIoU penalty sign"),
    Mutant("diou_centre_sign", K + "boxes.pyx", "boxes",
           "dxc = (x2 + x1) / two - (u1 + u2) / two", "dxc = (x2 - x1) / two - (u1 + u2) / two",
           t("test_boxes.py", "loss_float64_matches_torchvision and distance"), "DIoU centre x"),
    Mutant("ciou_alpha_sign", K + "boxes.pyx", "boxes",
           "alpha = v / (one_m_iou + v + eps_alpha)", "alpha = v / (two - one_m_iou + v + eps_alpha)",
           t("test_boxes.py", "loss_float64_matches_torchvision and complete"), "CIoU trade-off alpha"),
    Mutant("box_grad_inter_sign", K + "boxes.pyx", "boxes",
           "g_i = -rU - g_un", "g_i = -rU + g_un",
           t("test_boxes.py", "grad_matches_autograd and iou_loss"), "d loss / d intersection sign"),
    Mutant("pairwise_giou_denominator", K + "boxes.pyx", "boxes",
           "return iou - (area_e - union) / area_e", "return iou - (area_e - union) / union",
           t("test_boxes.py", "pairwise_float64 and generalized"), "pairwise GIoU: / hull -> / union"),
    # ---------------------------------------------------------------- metric.pyx
    Mutant("triplet_sign", K + "metric.pyx", "metric",
           "cdef double z = margin + dap - dneg", "cdef double z = margin + dneg - dap",
           t("test_metric.py", "value_and_grad_match_torch and triplet_margin_loss"), "triplet hinge sign"),
    Mutant("sqdiff_bound", K + "metric.pyx", "metric",
           "for (ptrdiff_t k = 0; k < n; k++) { double d = (double)a[k] - (double)b[k] + eps; s += d * d; }",
           "for (ptrdiff_t k = 0; k < n - 1; k++) { double d = (double)a[k] - (double)b[k] + eps; s += d * d; }",
           t("test_metric.py", "value_and_grad_match_torch and triplet_margin_loss"),
           "squared distance misses the last coordinate"),
    Mutant("cosine_margin_sign", K + "metric.pyx", "metric",
           "loss = cos - margin", "loss = cos + margin",
           t("test_metric.py", "value_and_grad_match_torch and cosine_embedding"), "cosine embedding margin sign"),
    Mutant("contrastive_grad_sign", K + "metric.pyx", "metric",
           "dd[0] = -2.0 * (1.0 - y) * h", "dd[0] = 2.0 * (1.0 - y) * h",
           t("test_metric.py", "value_and_grad_match_torch and contrastive"), "contrastive hinge gradient sign"),
    Mutant("margin_ranking_sign", K + "metric.pyx", "metric",
           "cdef floating z = margin - y * (x1 - x2)", "cdef floating z = margin + y * (x1 - x2)",
           t("test_metric.py", "value_and_grad_match_torch and margin_ranking"), "margin ranking sign"),
    Mutant("hinge_embedding_grad_sign", K + "metric.pyx", "metric",
           "dx[0] = not_neg - (not_pos if h >= 0 else 0)", "dx[0] = not_neg + (not_pos if h >= 0 else 0)",
           t("test_metric.py", "value_and_grad_match_torch and hinge_embedding"), "hinge embedding gradient sign"),
    Mutant("mining_chain_rule", K + "metric.pyx", "metric",
           "return dloss_dd / d if d > 0 else 0.0", "return dloss_dd * d if d > 0 else 0.0",
           t("test_metric.py", "value_and_grad_match_torch and batch_hard"), "mining: d(d)/d(d^2) chain rule"),
    # ---------------------------------------------------------------- segmentation.pyx / fl_overlap.h
    Mutant("sigmoid_grad_dropped_factor", K + "segmentation.pyx", "segmentation",
           "dpdx[0] = e * inv * inv", "dpdx[0] = e * inv",
           t("test_segmentation.py", "grad_matches_torch_autograd and dice_loss-binary-logits"),
           "sigmoid derivative: dropped factor"),
    Mutant("seg_softmax_grad_sign", K + "segmentation.pyx", "segmentation",
           "gc[k] = prob[j * R + k] * (gc[k] - dot[k])", "gc[k] = prob[j * R + k] * (gc[k] + dot[k])",
           t("test_segmentation.py", "grad_matches_torch_autograd and jaccard_loss-multiclass-logits"),
           "softmax Jacobian sign"),
    Mutant("seg_bce_sign", K + "segmentation.pyx", "segmentation",
           "return (1 - t) * x + f_max(-x, <floating> 0) + f_log1p_unit(e)",
           "return (1 + t) * x + f_max(-x, <floating> 0) + f_log1p_unit(e)",
           t("test_segmentation.py", "values_match_numpy_reference and dice_bce_loss"), "Dice+BCE: BCE term sign"),
    Mutant("overlap_labels_tail_bound", "src_c/fl_overlap.h", "segmentation",
           "    for (ptrdiff_t k = 2 * h; k < n; k++) {                                                        \\\n"
           "        T p0 = p[k] * (T)(ys[k] >= 0), t0 = (T)(ys[k] == j);",
           "    for (ptrdiff_t k = 2 * h; k < n - 1; k++) {                                                    \\\n"
           "        T p0 = p[k] * (T)(ys[k] >= 0), t0 = (T)(ys[k] == j);",
           t("test_segmentation.py", "class_counts_and_odd_sizes"), "fl_overlap.h: odd-length tail dropped"),
    # ---------------------------------------------------------------- src_c/fl_math.h
    Mutant("expf_poly_const", "src_c/fl_math.h", "segmentation",
           "p = p * r + 1.6666665459e-1f;", "p = p * r + 1.6666665459e-2f;",
           t("test_math.py", "max_ulp_error and float32 and exp"), "expf polynomial coefficient"),
    Mutant("log_ln2_lo_dropped", "src_c/fl_math.h", "segmentation",
           "    y = y - fe * 2.121944400546905827679e-4;\n", "    y = y - fe * 0.0;\n",
           t("test_math.py", "max_ulp_error and float64 and log"), "log (double): ln2 low part dropped"),
    Mutant("log1pf_correction_dropped", "src_c/fl_math.h", "segmentation",
           "float r = fl_logf(u) - ((u - 1.0f) - x) / u;", "float r = fl_logf(u);",
           t("test_math.py", "max_ulp_error and float32 and log1p"), "log1pf: Goldberg correction dropped"),
]


# ------------------------------------------------------------------------------------------ machinery
def log(msg):
    print(msg, flush=True)


def make_scratch(keep):
    scratch = Path(tempfile.mkdtemp(prefix="fastloss-mutants-"))
    tree = scratch / "tree"
    shutil.copytree(ROOT, tree, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "lib.*", "temp.*", "__pycache__", ".pytest_cache",
                                                  ".hypothesis"))
    # the copy runs its baseline modules only (every family's baseline is built by setup.py)
    (tree / K / "_built_levels.py").write_text(
        '"""Generated by scripts/mutants.py: the scratch tree runs its baseline modules."""\n'
        "BUILT_LEVELS = ('baseline',)\n")
    missing = [f for f in {m.family for m in MUTANTS} if not list((tree / K).glob(f"_{f}_baseline.*.so"))
               and not list((tree / K).glob(f"_{f}_baseline.*.pyd"))]
    if missing:
        raise SystemExit(f"build the tree in place first: no baseline module for {sorted(missing)}")
    if keep:
        log(f"scratch tree: {tree}")
    return scratch, tree


def env():
    e = dict(os.environ, FASTLOSS_ISA="baseline", PYTHONDONTWRITEBYTECODE="1", HYPOTHESIS_PROFILE="ci")
    e.pop("PYTHONPATH", None)
    return e


def build(tree, family):
    cmd = ["nice", sys.executable, "setup.py", "build_ext", "--inplace", "--force", "-j", "1"]
    e = dict(env(), FASTLOSS_ISA_LEVELS="baseline", FASTLOSS_FAMILIES=family, FASTLOSS_CYTHON_JOBS="1")
    r = subprocess.run(cmd, cwd=tree, env=e, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def run_tests(tree, tests, timeout):
    cmd = ["nice", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", *tests]
    try:
        r = subprocess.run(cmd, cwd=tree, env=env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return r.returncode, r.stdout + r.stderr


def family_modules(tree, family):
    return sorted((tree / K).glob(f"_{family}_baseline.*"))


def last_line(out):
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return lines[-1][:150] if lines else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--keep", action="store_true", help="keep the scratch tree")
    ap.add_argument("--check", action="store_true", help="only check that every snippet is found once")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test run (a timeout counts as caught)")
    args = ap.parse_args()
    mutants = MUTANTS
    if args.only:
        ids = args.only.split(",")
        unknown = sorted(set(ids) - {m.id for m in MUTANTS})
        if unknown:
            raise SystemExit(f"unknown mutants: {unknown}")
        mutants = [m for m in MUTANTS if m.id in ids]
    if args.list:
        for m in MUTANTS:
            log(f"{m.id:32s} {m.path:34s} {m.what}")
        return 0
    assert len({m.id for m in MUTANTS}) == len(MUTANTS), "duplicate mutant ids"

    # SIGTERM: unwind (subprocess.run kills its child; the scratch tree is removed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    log(f"mutation run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}"
        f"{' (+ uncommitted changes)' if dirty else ''}, {len(mutants)} mutants")
    scratch, tree = make_scratch(args.keep)
    errors, results = [], []
    try:
        # every snippet is there exactly once (checked before any build)
        for m in mutants:
            n = (tree / m.path).read_text().count(m.old)
            if n != 1:
                errors.append(f"{m.id}: snippet found {n} times in {m.path} (update the mutant)")
        if errors:
            for e in errors:
                log(f"ERROR {e}")
            return 1
        if args.check:
            log(f"every snippet found once ({len(mutants)} mutants)")
            return 0
        # the selections pass on the unmutated tree (one pytest run per test file)
        by_file = {}
        for m in mutants:
            by_file.setdefault(m.tests[0], []).append(m.tests[2])
        for path, ks in by_file.items():
            tests = (path, "-k", " or ".join(f"({k})" for k in dict.fromkeys(ks)))
            rc, out = run_tests(tree, tests, 3 * args.timeout)
            log(f"unmutated  {path:32s} rc={rc}  {last_line(out)}")
            if rc != 0:
                log(out[-3000:])
                log("ERROR: a selection fails (or selects nothing) on the unmutated tree")
                return 1
        for k, m in enumerate(mutants, 1):
            src = tree / m.path
            pristine = src.read_text()
            saved = {p: p.read_bytes() for p in family_modules(tree, m.family)}
            t1 = time.time()
            rc, out = None, ""
            try:
                src.write_text(pristine.replace(m.old, m.new))
                rc_b, out_b = build(tree, m.family)
                if rc_b != 0:
                    status = "BUILD-FAILED"
                    errors.append(f"{m.id}: the mutant does not compile:\n{out_b[-2000:]}")
                else:
                    rc, out = run_tests(tree, m.tests, args.timeout)
                    status = ("caught" if rc == 1 or rc == "timeout" or (isinstance(rc, int) and rc < 0)
                              else "SURVIVED" if rc == 0 else f"ERROR(rc={rc})")
                    if status.startswith("ERROR"):
                        errors.append(f"{m.id}: pytest rc={rc}: {last_line(out)}")
            finally:
                src.write_text(pristine)
                for p, b in saved.items():
                    p.write_bytes(b)
            results.append((m, status))
            log(f"[{k:2d}/{len(mutants)}] {status:12s} {m.id:32s} {time.time() - t1:5.0f} s  {m.what}"
                + (f"  ({last_line(out)})" if status == "caught" and rc != "timeout" else ""))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    caught = sum(s == "caught" for _, s in results)
    survived = [m.id for m, s in results if s == "SURVIVED"]
    log(f"\ncaught {caught} / {len(mutants)} mutants in {time.time() - t0:.0f} s"
        + (f"; SURVIVED: {', '.join(survived)}" if survived else ""))
    for e in errors:
        log(f"ERROR {e}")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
