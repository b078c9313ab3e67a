"""Tables (plain text and markdown), JSON and the plot of a ``fastloss bench`` run."""
import math

import numpy as np

from . import measure as M
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


def _table(headers, rows, fmt):
    rows = [[str(c) for c in r] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _heading(text, fmt):
    return f"\n## {text}\n" if fmt == "markdown" else f"\n{text}\n{'=' * len(text)}"


def _result_cell(row, check):
    if row.get("pass") is None:
        verdict = "-"
    else:
        verdict = "pass" if row["pass"] else "FAIL " + ",".join(row["failed"])
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
              "fastloss/floor": "fl/floor", "grad/loss": "grad/loss"}
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
                     else ("pass" if ok else "FAIL") + f" (<= {fmt_bytes(verdict['bound'])})"])
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
             "pass" if s["pass"] else "FAIL"] for s in data["small"]]
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
            f"{'quick' if data['settings']['quick'] else 'full'} sizes x {data['settings']['size_scale']:g}; "
            f"targets: {data['settings']['targets']}"]


def render(data, fmt="text"):
    out = ["# fastloss benchmark" if fmt == "markdown" else "fastloss benchmark"]
    out += [("- " if fmt == "markdown" else "") + line for line in machine_lines(data)]
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
            ratio = row["ratios"].get("sklearn/fastloss" if rec["dtype"] == "float64" else "torch/fastloss")
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
    ax1.set_xticklabels([r["id"] for r in recs], rotation=60, ha="right", fontsize=8)
    ax1.set_ylabel("speedup over torch (sklearn for /f64)")
    ax1.set_title("fastloss speedup (black tick: target)")
    ax1.legend(fontsize=8)
    for rec in recs:
        if "/" in rec["id"]:        # variants (W16/*, W17/*, */f64) scale like their base: one line each
            continue
        by_t = {r["threads"]: r["times_s"]["fastloss"] for r in rec["rows"]}
        ts = [T for T in threads if T in by_t]
        if len(ts) > 1:
            ax2.plot(ts, [by_t[ts[0]] / by_t[T] for T in ts], marker="o", label=rec["id"])
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
