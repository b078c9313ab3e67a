"""fastloss.dask on one machine: is a 2-worker LocalCluster as fast as the single-process CLI?

Writes the file of ``benchmarks/score_parquet.py`` (N rows, default 10 million, of 10-class float32
logits in a fixed-size-list column and int64 labels; 1Mi-row row groups) and times, median of
``--repeat`` runs after a warm-up:

* cli: ``fastloss score FILE --loss cross_entropy --input logits --target label --json`` in a
  subprocess; its own ``rows_per_s`` (interpreter start-up excluded);
* dask.score_parquet: ``fastloss.dask.score_parquet(...).compute()`` on a ``LocalCluster`` of
  ``--workers`` single-threaded worker processes (wall time of ``compute``, graph included);
* with ``--frames``: ``fastloss.dask.loss_frame`` over ``dd.read_parquet(FILE)`` (list cells as pandas
  object arrays) and over ``dd.read_parquet(FILE, dtype_backend="pyarrow")``, on the same cluster.

With ``--by group``: both grouped by the file's int64 ``group`` column (1000 groups).

Target (issue 20): dask.score_parquet rows/s >= 80% of the CLI's.

    python benchmarks/dask_score_parquet.py                  # 10M rows
    python benchmarks/dask_score_parquet.py --rows 2000000 --repeat 3 --frames
    python benchmarks/dask_score_parquet.py --rows 2000000 --by group
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score_parquet import write_file  # noqa: E402

import fastloss as fl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--frames", action="store_true", help="also time loss_frame over dd.read_parquet")
    p.add_argument("--file", default=None, help="an existing file of score_parquet.py's layout")
    p.add_argument("--by", default=None, help="group key column (the file's 'group': 1000 groups)")
    args = p.parse_args(argv)
    import dask.dataframe as dd
    import distributed

    import fastloss.dask as fld
    warnings.filterwarnings("ignore")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (ROOT, os.environ.get("PYTHONPATH")) if x))
    with tempfile.TemporaryDirectory() as d:
        path = args.file or os.path.join(d, "logits.parquet")
        if not args.file:
            write_file(path, args.rows)
        cli = [sys.executable, "-m", "fastloss", "score", path, "--loss", "cross_entropy", "--input", "logits",
               "--target", "label", "--json"] + (["--by", args.by] if args.by else [])
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=40, env={"PYTHONPATH": env["PYTHONPATH"]}) \
                as cluster, distributed.Client(cluster):
            def run_dask():
                t = time.perf_counter()
                res = fld.score_parquet(path, "cross_entropy", "logits", "label", by=args.by).compute()
                if args.by:         # a table of groups: the overall mean from the groups' (the CLI's loss)
                    dt = time.perf_counter() - t
                    loss, wsum = (res.column(c).to_numpy() for c in ("loss", "weight_sum"))
                    return sum(res.column("rows").to_pylist()) / dt, float((loss * wsum).sum() / wsum.sum())
                return res.rows / (time.perf_counter() - t), res.loss

            def run_cli():
                out = json.loads(subprocess.run(cli, capture_output=True, text=True, check=True, env=env).stdout)
                return out["rows_per_s"], out["loss"]

            def frame(backend):
                def run():
                    df = dd.read_parquet(path, **({"dtype_backend": backend} if backend else {}))
                    t = time.perf_counter()
                    v = fld.loss_frame("cross_entropy", df, input="logits", target="label").compute()
                    return args.rows / (time.perf_counter() - t), v
                return run

            runs = {"cli (1 process)": run_cli, f"dask.score_parquet ({args.workers} workers)": run_dask}
            if args.frames:
                runs["loss_frame, object cells"] = frame(None)
                runs["loss_frame, dtype_backend=pyarrow"] = frame("pyarrow")
            speed = {k: [] for k in runs}
            losses = {}
            for i in range(args.repeat + 1):
                for name, fn in runs.items():
                    r, losses[name] = fn()
                    if i:
                        speed[name].append(r)
        med = {k: statistics.median(v) for k, v in speed.items()}
        print(f"rows={args.rows:,} repeat={args.repeat} by={args.by} (median rows/s)")
        for name, r in med.items():
            print(f"  {name:38s} {r / 1e6:7.2f} M rows/s   {args.rows / r:7.2f} s   loss {losses[name]:.12f}")
        ratio = med[f"dask.score_parquet ({args.workers} workers)"] / med["cli (1 process)"]
        print(f"  dask.score_parquet / cli = {ratio:.0%} (target >= 80%)")
        return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
