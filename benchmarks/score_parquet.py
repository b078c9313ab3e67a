"""Scoring a Parquet file vs reading it: is the loss the bottleneck of ``fastloss.score_parquet``?

Writes a file of N rows (default 10 million) of 10-class float32 logits (a fixed-size-list column),
int64 labels and an int64 ``group`` column of 1000 distinct values into a temporary directory
(pyarrow's defaults: snappy, 1Mi-row row groups), then times, interleaved, median of ``--repeat``
runs after a warm-up:

* read: iterating the same two columns with pyarrow alone, ``ParquetFile(...).iter_batches(columns=...)``,
  with pyarrow's default options and with ``pre_buffer=False`` (what score_parquet uses to keep its
  memory bounded); the faster of the two is the reference; ``read +group`` reads the group column too;
* score: ``fastloss.score_parquet(path, loss="cross_entropy", input="logits", target="label")``,
  checked against a float64 NumPy cross-entropy of the same rows;
* ``3 losses``: cross_entropy, softmax_focal_loss (gamma=2) and multi_margin_loss in one read
  (issue 20 target: <= 1.5x the wall time of one loss);
* ``by group``: cross_entropy with ``by="group"`` (1000 groups; target: >= 50% of ``read +group``);
* ``per_row``: cross_entropy with ``per_row=`` (one kernel pass since issue 20; run the script with
  an older tree on PYTHONPATH and ``--runs read,score,per_row`` for the before).

Target (issue 8): score rows/s >= 50% of read rows/s.

    python benchmarks/score_parquet.py                      # 10M rows (~0.5 GB file)
    python benchmarks/score_parquet.py --rows 1000000 --repeat 3
    python benchmarks/score_parquet.py --runs read,score,three,groups,per_row
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import fastloss as fl

C = 10
GROUPS = 1000
RUNS = ("read", "score", "three", "groups", "per_row")


def write_file(path, rows, seed=0, chunk=1 << 20):
    """N rows of float32 logits (fixed-size list of C) and int64 labels, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([("logits", pa.list_(pa.float32(), C)), ("label", pa.int64()), ("group", pa.int64())])
    ref_sum = 0.0
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            x = (rng.standard_normal((m, C), dtype=np.float32) * 3)
            y = rng.integers(0, C, m)
            ref_sum += ce_sum64(x, y)
            g = rng.integers(0, GROUPS, m)
            w.write_table(pa.table({"logits": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), C),
                                    "label": pa.array(y), "group": pa.array(g)}, schema=schema))
    return ref_sum / rows


def ce_sum64(x, y):
    """Float64 NumPy cross-entropy sum (the check's independent reference)."""
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
    return float((lse - x[np.arange(len(y)), y]).sum())


def read_only(path, batch_size, columns=("logits", "label"), **options):
    rows = 0
    reader = pq.ParquetFile(path, **options)
    for batch in reader.iter_batches(batch_size=batch_size, columns=list(columns)):
        rows += batch.num_rows
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--batch-size", type=int, default=65536)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None,
                   help="fastloss kernel threads (default: score_parquet's default)")
    p.add_argument("--dir", default=None, help="where to write the file (default: a temporary directory)")
    p.add_argument("--runs", default="read,score,three,groups,per_row",
                   help=f"comma-separated subset of {','.join(RUNS)}")
    args = p.parse_args(argv)
    want = set(args.runs.split(","))

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = os.path.join(d, "logits.parquet")
        t = time.perf_counter()
        ref = write_file(path, args.rows)
        print(f"wrote {args.rows:,} rows, {os.path.getsize(path) / 2**20:.0f} MiB, "
              f"{pq.ParquetFile(path).metadata.num_row_groups} row groups in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)

        kw = {"batch_size": args.batch_size, "num_threads": args.threads}
        runs = {"read (pyarrow defaults)": lambda: read_only(path, args.batch_size),
                "read (pre_buffer=False)": lambda: read_only(path, args.batch_size, pre_buffer=False),
                "score_parquet cross_entropy": lambda: fl.score_parquet(
                    path, loss="cross_entropy", input="logits", target="label", **kw)}
        if "three" in want:
            runs["3 losses"] = lambda: fl.score_parquet(
                path, loss=["cross_entropy", "softmax_focal_loss:gamma=2", "multi_margin_loss"], input="logits",
                target="label", **kw)
        if "groups" in want:
            runs["read +group (pre_buffer=False)"] = lambda: read_only(
                path, args.batch_size, ("logits", "label", "group"), pre_buffer=False)
            runs["by group (1000 groups)"] = lambda: fl.score_parquet(
                path, loss="cross_entropy", input="logits", target="label", by="group", **kw)
        if "per_row" in want:
            runs["per_row"] = lambda: fl.score_parquet(
                path, loss="cross_entropy", input="logits", target="label",
                per_row=os.path.join(d, "rows.parquet"), **kw)
        times = {k: [] for k in runs}
        cpu = {k: [] for k in runs}
        result = None
        for i in range(args.repeat + 1):               # the first round is the warm-up
            for name, fn in runs.items():
                t, c = time.perf_counter(), time.process_time()
                out = fn()
                dt, dc = time.perf_counter() - t, time.process_time() - c
                if i:
                    times[name].append(dt)
                    cpu[name].append(dc)
                if name == "score_parquet cross_entropy":
                    result = out

        rel = abs(result.loss - ref) / abs(ref)
        assert result.rows == args.rows and rel < 1e-6, (result.loss, ref)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"rows={args.rows:,} batch_size={args.batch_size} kernel threads={result.num_threads} "
              f"(library default {fl.get_num_threads()}) repeat={args.repeat} (median; CPU = process time, "
              "all threads)")
        for name, s in med.items():
            print(f"  {name:32s} {s:8.3f} s  {args.rows / s / 1e6:8.2f} M rows/s   "
                  f"CPU {statistics.median(cpu[name]):6.2f} s")
        read = min(med["read (pyarrow defaults)"], med["read (pre_buffer=False)"])
        one = med["score_parquet cross_entropy"]
        ratio = read / one
        print(f"  score speed / read speed = {ratio:.0%} (target >= 50%)   loss {result.loss:.9f}, "
              f"float64 reference {ref:.9f} (rel. diff {rel:.1e}, float32 logits)")
        if "3 losses" in med:
            print(f"  3 losses / 1 loss wall time = {med['3 losses'] / one:.2f}x (target <= 1.5x)")
        if "by group (1000 groups)" in med:
            print(f"  by group speed / read +group speed = "
                  f"{med['read +group (pre_buffer=False)'] / med['by group (1000 groups)']:.0%} (target >= 50%)")
        if "per_row" in med:
            print(f"  per_row / score wall time = {med['per_row'] / one:.2f}x")
        return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
