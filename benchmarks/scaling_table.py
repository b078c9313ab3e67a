"""Thread-scaling tables from ``fastloss bench --json`` files of one machine, one file per thread count
(``benchmarks/device_scaling.sh`` writes them): per workload, fastloss's time, torch/fastloss and
fastloss/floor at each T, the speed-up from T=1 to the largest T, and WORKLOADS.md's 16-core checks --
fastloss/floor <= 1.7 at the largest T for the memory-bound workloads (those with a floor target), and no
workload slower at the largest T than at the one before it (by more than 5%, the timing noise).

    python3 benchmarks/scaling_table.py OUT/T1.json OUT/T2.json ... > table.md
"""
import json
import sys


def _load(paths):
    runs = {}
    for p in paths:
        d = json.load(open(p))
        for t in d["settings"]["threads"]:
            runs[t] = d
    return dict(sorted(runs.items()))


def _rows(d, t):
    out = {}
    for w in d["workloads"]:
        for r in w["rows"]:
            if r["threads"] == t:
                out[w["id"]] = (w, r)
    return out


def main(paths):
    runs = _load(paths)
    ts = list(runs)
    top, prev = ts[-1], (ts[-2] if len(ts) > 1 else None)
    rows = {t: _rows(d, t) for t, d in runs.items()}
    bw = {t: next(f["bandwidth"] for f in d["floor"] if f["threads"] == t) for t, d in runs.items()}
    m = runs[top]["machine"]
    print(f"Machine: {m['cpu']}, {m['cores']} cores, ISA level {m['isa']}, torch {m['torch']}, "
          f"Python {m['python']}, NumPy {m['numpy']}.\n")
    print("Read bandwidth (512 MiB streaming sum, GB/s): "
          + ", ".join(f"T={t} {bw[t] / 1e9:.1f}" for t in ts) + "\n")
    hdr = ("| workload | " + " | ".join(f"fl ms T={t}" for t in ts) + " | " + " | ".join(f"torch/fl T={t}" for t in ts)
           + " | " + " | ".join(f"fl/floor T={t}" for t in ts) + f" | T=1->{top} |")
    print(hdr)
    print("|" + "---|" * (2 + 3 * len(ts)))
    slower, over = [], []
    for wid, (w, _) in rows[top].items():
        cells = []
        times = {t: rows[t][wid][1]["times_s"]["fastloss"] for t in ts if wid in rows[t]}
        for t in ts:
            cells.append(f"{times[t] * 1e3:.2f}" if t in times else "-")
        for key in ("torch/fastloss", "fastloss/floor"):
            for t in ts:
                r = rows[t].get(wid)
                v = r[1]["ratios"].get(key) if r else None
                if key == "fastloss/floor" and wid.startswith("W17"):
                    v = r[1]["ratios"].get("grad_out/floor") if r else None
                cells.append(f"{v:.2f}" if v is not None else "-")
        sp = times[ts[0]] / times[top] if ts[0] in times else float("nan")
        print(f"| {wid} {w['loss']} {w['dtype'] if w['dtype'] != 'float32' else ''} | " + " | ".join(cells)
              + f" | {sp:.1f} |")
        best = {t: min(rows[t][wid][1]["runs_s"]["fastloss"]) for t in times}
        if prev in times and times[top] > 1.05 * times[prev]:
            slower.append(f"{wid} (medians {times[prev] * 1e3:.2f} -> {times[top] * 1e3:.2f} ms, "
                          f"best runs {best[prev] * 1e3:.2f} -> {best[top] * 1e3:.2f})")
        floor_target = any(tg["metric"] in ("fastloss/floor", "grad_out/floor") for tg in w.get("targets", []))
        fr = rows[top][wid][1]["ratios"].get("grad_out/floor" if wid.startswith("W17") else "fastloss/floor")
        if floor_target and fr is not None and fr > 1.7:
            over.append(f"{wid} ({fr:.2f}; best run {fr * best[top] / times[top]:.2f})")
    print("\nTimes are medians of the bench's runs (--repeat); the checks below also give the best run, "
          "since a shared many-core VM adds outliers.")
    print(f"W17 rows: the floor column is grad_out/floor (inputs read + gradient written, into a reused buffer).")
    print(f"Slower at T={top} than at T={prev} (> 5%): {', '.join(slower) or 'none'}.")
    print(f"Memory-bound workloads above 1.7x their floor at T={top}: {', '.join(over) or 'none'}.")


if __name__ == "__main__":
    main(sys.argv[1:])
