"""Tables (plain text and markdown), JSON and the plot of a ``fastloss bench`` run."""
import math

import numpy as np

from . import measure as M
from . import workloads as W
from .workloads import RATIOS

IMPL_COLUMNS = ("fastloss", "torch", "numpy", "sklearn")


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(x):
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def fmt_bytes(n):
    if n is None:
        return "-"
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _table(headers, rows, fmt, left=(0, 1)):
    """Plain text (columns ``left`` left-aligned, the others right-aligned) or markdown."""
    rows = [[str(c) for c in r] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) if i in left else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _heading(text, fmt):
    return f"\n## {text}\n" if fmt == "markdown" else f"\n{text}\n{'=' * len(text)}"


def _result_cell(row, check):
    """"met", "missed torch>=2" (the bound it was judged against), "SLOWER than torch"; "-": not judged."""
    parts = [f"missed {', '.join(row['failed'])}"] if row.get("failed") else []
    if row.get("slower"):
        parts.append("SLOWER than torch")
    if parts:
        verdict = "; ".join(parts)
    else:
        verdict = "-" if row.get("pass") is None else "met"
    if check and check.get("ok") is False:
        verdict += " (check!)"
    return verdict


def main_table(data, fmt):
    recs = data["workloads"]
    rows_all = [(rec, row) for rec in recs for row in rec["rows"]]
    has = lambda key: any(row["times_s"].get(key) is not None for _, row in rows_all)  # noqa: E731
    has_ratio = lambda key: any(key in row["ratios"] for _, row in rows_all)  # noqa: E731
    impls = [k for k in IMPL_COLUMNS if has(k)] or ["fastloss"]
    ratios = [k for k in RATIOS if has_ratio(k)]
    abbrev = {"torch/fastloss": "torch/fl", "numpy/fastloss": "numpy/fl", "sklearn/fastloss": "sklearn/fl",
              "fastloss/floor": "fl/floor", "grad/loss": "grad/loss", "grad_out/floor": "grad_out/floor"}
    headers = ["id", "workload", "T", *impls, *[abbrev[k] for k in ratios], "target", "result", "check"]
    rows = []
    for rec in recs:
        if rec["status"] != "ok":
            rows.append([rec["id"], rec["title"], "", *["" for _ in impls + ratios], "", rec["status"],
                         rec.get("note", "")])
            continue
        check = rec.get("check") or {}
        diffs = [d for d in (check.get("rel_diff") or {}).values() if d is not None]
        check_cell = "-" if not diffs else ("ok" if check.get("ok") else "DIFF") + f" {max(diffs):.0e}"
        for row in rec["rows"]:
            rows.append([rec["id"], rec["title"], row["threads"],
                         *[fmt_time(row["times_s"].get(k)) for k in impls],
                         *[fmt_ratio(row["ratios"].get(k)) for k in ratios],
                         row["target"], _result_cell(row, check), check_cell])
    return _table(headers, rows, fmt)


def floor_table(data, fmt):
    rows = [[f["threads"], f"{f['bandwidth'] / 1e9:.1f}", f["method"],
             ", ".join(f"{k}: {v / 1e9:.1f}" for k, v in f["methods"].items())] for f in data["floor"]]
    return _table(["T", "read GB/s", "best method", "all methods (GB/s)"], rows, fmt)


def memory_table(data, fmt):
    rows = []
    for rec in data["workloads"]:
        mem = rec.get("memory")
        if not mem:
            continue
        get = lambda impl, kind, mem=mem: (mem.get(impl) or {}).get(kind)  # noqa: E731
        verdict = rec.get("memory_check") or {}
        saved = (verdict or M.memory_verdict(mem, 0))["torch_minus_fastloss"]
        ok = verdict.get("ok")
        rows.append([rec["id"], rec["title"], fmt_bytes(rec.get("bytes")),
                     fmt_bytes(get("fastloss", "tracemalloc")), fmt_bytes(get("fastloss", "rss")),
                     fmt_bytes(get("torch", "rss")),
                     "-" if saved is None else ("-" if saved < 0 else "") + fmt_bytes(abs(saved)),
                     fmt_bytes(get("numpy", "tracemalloc")), fmt_bytes(get("numpy", "rss")),
                     "O(block x N)" if not verdict else "-" if ok is None
                     else ("met" if ok else "missed") + f" (<= {fmt_bytes(verdict['bound'])})"])
    if not rows:
        return None
    return _table(["id", "workload", "inputs", "fastloss tracemalloc", "fastloss RSS", "torch RSS",
                   "torch - fastloss", "numpy tracemalloc", "numpy RSS", "fastloss O(1)"], rows, fmt)


def small_table(data, fmt):
    if not data["small"]:
        return None
    rows = [[s["id"], s["loss"], s["n"], s["threads"],
             *[fmt_time(s["times_s"].get(k)) for k in ("fastloss", "numpy", "torch", "bare numpy")],
             fmt_time(s["overhead_vs_bare_s"]) if s["overhead_vs_bare_s"] >= 0
             else "-" + fmt_time(-s["overhead_vs_bare_s"]),
             "met" if s["pass"] else "missed"] for s in data["small"]]
    return _table(["id", "loss", "N", "T", "fastloss", "numpy", "torch", "bare numpy", "fastloss - bare",
                   f"<= {data['small'][0]['target_s'] * 1e6:g} us"], rows, fmt)


def machine_lines(data):
    m = data["machine"]
    return [f"CPU: {m['cpu']} ({m['cores']} cores, AVX-512: {'yes' if m.get('cpu_avx512') else 'no'}); "
            f"fastloss {m['fastloss']} dispatched to {m['isa']} (built: {', '.join(m['isa_levels_built'])}), "
            f"OpenMP: {m['openmp']}",
            f"python {m['python']}, numpy {m['numpy']}, torch {m['torch'] or 'not installed'}, "
            f"scikit-learn {m.get('sklearn') or 'not installed'}; {m['platform']}",
            f"threads {data['settings']['threads']}, repeat {data['settings']['repeat']}, "
            f"{'quick' if data['settings']['quick'] else 'full'} sizes x {data['settings']['size_scale']:g}"]


def _span(values, digits=2):
    """"1.30" or "1.30-3.50" (min-max); "-" for none."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    if round(lo, digits) == round(hi, digits):
        return f"{lo:.{digits}f}"
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def _regime(data):
    s = data["settings"]
    if "regime" in s:
        return s["regime"]
    return W.regime(s.get("quick", False), s.get("size_scale", 1.0))  # files from before issue 16


def _has_floor(rec):
    """The workload has a floor target at full size (the in-batch W14/W15 are matmul-bound: none)."""
    w = W.BY_ID.get(rec["id"])
    return w is not None and any(t.metric == "fastloss/floor" for t in w.targets)


def summary(data, fmt="text"):
    """The short result first: per family, torch/fastloss (min-max over its rows) at each T, fastloss/floor
    where the workload has a floor (largest T), how many rows met their targets, and every row slower
    than torch by name."""
    regime = _regime(data)
    threads = data["settings"]["threads"]
    recs = [r for r in data["workloads"] if r["status"] == "ok" and r["rows"]]
    families = {}
    for rec in recs:
        families.setdefault(rec.get("family", "-"), []).append(rec)
    rows = []
    for fam, group in families.items():
        losses = list(dict.fromkeys(r["loss"] for r in group))
        cells = [fam, ", ".join(losses)]
        for T in threads:
            cells.append(_span([row["ratios"].get("torch/fastloss") for r in group for row in r["rows"]
                                if row["threads"] == T]))
        floor_recs = [r for r in group if _has_floor(r)]
        cells.append(_span([row["ratios"].get("fastloss/floor") for r in floor_recs for row in r["rows"]
                            if row["threads"] == max(threads)]))
        judged = [row for r in group for row in r["rows"] if row.get("pass") is not None]
        cells.append(f"{sum(bool(row['pass']) for row in judged)}/{len(judged)}" if judged else "-")
        rows.append(cells)
    title = f"Summary: fastloss vs torch, {W.REGIMES.get(regime, regime)}"
    gap = "\n" if fmt == "markdown" else ""       # markdown needs a blank line before a table
    out = [_heading(title, fmt), f"targets: {data['settings'].get('targets', '-')}{gap}"]
    if not rows:
        return "\n".join(out + ["no workload ran"])
    out.append(_table(["family", "losses", *[f"torch/fastloss T={T}" for T in threads],
                       f"fastloss/floor T={max(threads)}", "rows meeting targets"], rows, fmt))
    slower = [f"{rec['id']} {rec['loss']} T={row['threads']} ({fmt_ratio(row['ratios']['torch/fastloss'])})"
              for rec in recs for row in rec["rows"] if row.get("slower")]
    missed = sum(1 for rec in recs for row in rec["rows"] if row.get("failed"))
    lines = ["torch/fastloss > 1: fastloss faster (range over the family's workloads); fastloss/floor = 1: "
             "the read-bandwidth limit."]
    lines.append("slower than torch: " + ("none" if not slower else "; ".join(slower)))
    if missed:
        lines.append(f"{missed} row(s) below their target: the 'result' column of the table below names "
                     "each missed bound.")
    return "\n".join(out + [gap + "\n".join(("- " if fmt == "markdown" else "") + line for line in lines)])


def render(data, fmt="text"):
    out = ["# fastloss benchmark" if fmt == "markdown" else "fastloss benchmark"]
    out += [("- " if fmt == "markdown" else "") + line for line in machine_lines(data)]
    out += [summary(data, fmt)]
    out += [_heading("Read bandwidth (the floor)", fmt), floor_table(data, fmt)]
    out += [_heading("Workloads (time per call; ratios > 1 mean fastloss is faster)", fmt),
            main_table(data, fmt)]
    mem = memory_table(data, fmt)
    if mem:
        out += [_heading("Extra peak memory of one call (reduced workloads, largest T)", fmt), mem]
    small = small_table(data, fmt)
    if small:
        out += [_heading("Small inputs: call overhead", fmt), small]
    out += [_heading("Notes", fmt)] + [f"- {n}" for n in data["notes"]]
    return "\n".join(out) + "\n"


def jsonable(obj):
    """Plain JSON types (NumPy scalars to float/int, tuples to lists)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def plot_label(rec):
    """A workload by its loss name, the workload id after it (W1 and W3 are both cross_entropy)."""
    return f"{rec['loss']} ({rec['id']})"


def _plotted_metric(rec):
    """The ratio a workload is judged on: sklearn/fastloss where that is its target (float64 rows at full
    size), else torch/fastloss."""
    judged = {t["metric"] for t in rec.get("targets", [])}
    return "sklearn/fastloss" if "sklearn/fastloss" in judged else "torch/fastloss"


def plot(data, path):
    """Left: speedup (torch/fastloss, sklearn/fastloss for float64 rows) per workload and T, with the
    target as a tick; right: fastloss thread scaling (time at the smallest T / time at T)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in data["workloads"] if r["status"] == "ok" and r["rows"]]
    threads = data["settings"]["threads"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(10, 0.6 * len(recs) + 6), 5),
                                   gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(len(threads), 1)
    for j, T in enumerate(threads):
        xs, ys = [], []
        for i, rec in enumerate(recs):
            row = next((r for r in rec["rows"] if r["threads"] == T), None)
            if row is None:
                continue
            ratio = row["ratios"].get(_plotted_metric(rec))
            if ratio is not None:
                xs.append(i + (j - (len(threads) - 1) / 2) * width)
                ys.append(ratio)
        ax1.bar(xs, ys, width, label=f"T={T}")
    for i, rec in enumerate(recs):
        for t in rec["targets"]:
            if t["metric"] in ("torch/fastloss", "sklearn/fastloss"):
                ax1.hlines(t["bound"], i - 0.45, i + 0.45, colors="k", linewidth=1)
    ax1.axhline(1, color="grey", linewidth=0.8)
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(recs)))
    ax1.set_xticklabels([plot_label(r) for r in recs], rotation=60, ha="right", fontsize=8)
    ax1.set_ylabel("speedup over torch (sklearn for /f64 at full size)")
    ax1.set_title(f"fastloss speedup, {W.REGIMES.get(_regime(data), '')} (black tick: target)", fontsize=9)
    ax1.legend(fontsize=8)
    for rec in recs:
        if "/" in rec["id"]:        # variants (W16/*, W17/*, */f64) scale like their base: one line each
            continue
        by_t = {r["threads"]: r["times_s"]["fastloss"] for r in rec["rows"]}
        ts = [T for T in threads if T in by_t]
        if len(ts) > 1:
            ax2.plot(ts, [by_t[ts[0]] / by_t[T] for T in ts], marker="o", label=plot_label(rec))
    ax2.plot(threads, [T / threads[0] for T in threads], "k--", linewidth=0.8, label="linear")
    ax2.set_xlabel("threads")
    ax2.set_xticks(threads)
    ax2.set_ylabel(f"speedup over T={threads[0]}")
    ax2.set_title("fastloss thread scaling (base workloads)")
    ax2.legend(fontsize=6, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{data['machine']['cpu']} ({data['machine']['isa']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- --compare OLD.json

SLOWER_BY = 0.03        # new/old above 1.03 flagged (the project's rule: no workload slower by > 3%)
MACHINE_KEYS = ("cpu", "cores", "cpu_avx512", "isa", "openmp")
VERSION_KEYS = ("fastloss", "python", "numpy", "torch", "sklearn")


def _rows_by_key(data):
    """{(workload id, T): (record, row)} of the workloads that ran."""
    return {(rec["id"], row["threads"]): (rec, row) for rec in data.get("workloads", [])
            if rec.get("status") == "ok" for row in rec.get("rows", [])}


def compare(old, new):
    """Before/after of two ``fastloss bench --json`` results: per (workload, T) present in both, the ratio
    of the fastloss medians new/old, flagged "slower" above 1 + SLOWER_BY; the keys present on one side
    only; and what differs between the two machines (hardware: a warning; versions, sizes, repeat:
    noted, since either changes what the times mean)."""
    a, b = _rows_by_key(old), _rows_by_key(new)
    rows = []
    for key in [k for k in b if k in a]:
        (rec_old, row_old), (rec_new, row_new) = a[key], b[key]
        t_old, t_new = row_old["times_s"]["fastloss"], row_new["times_s"]["fastloss"]
        ratio = t_new / t_old
        size_differs = rec_old.get("n") != rec_new.get("n")     # then the times say nothing of speed
        rows.append({"id": key[0], "loss": rec_new["loss"], "threads": key[1], "old_s": t_old, "new_s": t_new,
                     "ratio": ratio, "slower": ratio > 1 + SLOWER_BY and not size_differs,
                     "size_differs": size_differs})
    only_old = [k for k in a if k not in b]         # in the order of each run (the workload table's)
    only_new = [k for k in b if k not in a]
    m_old, m_new = old.get("machine", {}), new.get("machine", {})
    diff = lambda keys: {k: (m_old.get(k), m_new.get(k))  # noqa: E731
                         for k in keys if m_old.get(k) != m_new.get(k)}
    s_old, s_new = old.get("settings", {}), new.get("settings", {})
    settings = {k: (s_old.get(k), s_new.get(k)) for k in ("quick", "size_scale", "repeat")
                if s_old.get(k) != s_new.get(k)}
    return {"rows": rows, "only_old": only_old, "only_new": only_new, "machine": diff(MACHINE_KEYS),
            "versions": diff(VERSION_KEYS), "settings": settings}


def render_compare(cmp):
    """The before/after table of ``compare`` (plain text), warnings first."""
    out = ["", "Compared with the old run (fastloss time new/old; > 1: slower now)", "=" * 66]
    if cmp["machine"]:
        out.append("WARNING: different machines, the times are not comparable: " + "; ".join(
            f"{k} {o!r} -> {n!r}" for k, (o, n) in cmp["machine"].items()))
    for what in ("versions", "settings"):
        if cmp[what]:
            out.append(f"{what} differ: " + "; ".join(f"{k} {o} -> {n}" for k, (o, n) in cmp[what].items()))
    rows = [[r["id"], r["loss"], r["threads"], fmt_time(r["old_s"]), fmt_time(r["new_s"]),
             f"{r['ratio']:.3f}",
             "SLOWER by > 3%" if r["slower"] else "sizes differ: not judged" if r["size_differs"] else ""]
            for r in cmp["rows"]]
    if rows:
        out.append(_table(["id", "loss", "T", "old", "new", "new/old", ""], rows, "text", left=(0, 1, 6)))
    else:
        out.append("no workload and thread count in both runs")
    slower = [f"{r['id']} T={r['threads']}" for r in cmp["rows"] if r["slower"]]
    out.append(f"slower by more than {SLOWER_BY:.0%}: " + (", ".join(slower) if slower else "none"))
    resized = [f"{r['id']} T={r['threads']}" for r in cmp["rows"] if r["size_differs"]]
    if resized:
        out.append("different sizes in the two runs, not judged: " + ", ".join(resized))
    for side, keys in (("old", cmp["only_old"]), ("new", cmp["only_new"])):
        if keys:
            out.append(f"only in the {side} run: " + ", ".join(f"{i} T={T}" for i, T in keys))
    return "\n".join(out) + "\n"
