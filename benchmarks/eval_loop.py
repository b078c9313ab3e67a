"""The evaluation loop of issue 16: 200 batches of 256 x 1000 float32 logits, the mean cross-entropy.

    python3 benchmarks/eval_loop.py [TREE] [--threads 1,2] [--rounds 7]

TREE: a built fastloss checkout (default: the importable one).  For each thread count T, three loops
over the same batches, interleaved round by round: ``plain`` (``fl.cross_entropy`` per batch, the
batch means averaged), ``partial+merge`` (``fl.partial`` per batch, merged with ``+``, finalized once:
the mean over all the data) and ``torch`` (``F.cross_entropy`` under ``no_grad``).  Prints the best
wall time and the best process CPU time of each over the rounds, and the ratios partial/plain and
torch/plain.  On a busy machine the CPU-time ratios are the steadier ones at T=1 (at T > 1 both
libraries' idle threads may spin, which CPU time counts).
"""
import argparse
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tree", nargs="?")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    if a.tree:
        sys.path.insert(0, a.tree)
    import numpy as np
    import torch

    import fastloss as fl

    rng = np.random.default_rng(0)
    B, C, NB = 256, 1000, 200
    xs = [rng.standard_normal((B, C), dtype=np.float32) for _ in range(NB)]
    ys = [rng.integers(0, C, B) for _ in range(NB)]
    txs, tys = [torch.from_numpy(x) for x in xs], [torch.from_numpy(y) for y in ys]
    print(f"fastloss from {fl.__file__}; {NB} batches of {B}x{C} float32")
    for T in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(T)

        def plain(T=T):
            s = 0.0
            for x, y in zip(xs, ys):
                s += float(fl.cross_entropy(x, y, num_threads=T))
            return s / NB

        def state(T=T):
            acc = fl.LossState.empty("cross_entropy")
            for x, y in zip(xs, ys):
                acc = acc + fl.partial("cross_entropy", x, y, num_threads=T)
            return acc.finalize()

        def tor():
            s = 0.0
            with torch.no_grad():
                for x, y in zip(txs, tys):
                    s += float(torch.nn.functional.cross_entropy(x, y))
            return s / NB

        fns = {"plain": plain, "partial+merge": state, "torch": tor}
        runs = {k: [] for k in fns}
        for _ in range(a.rounds):
            for k, f in fns.items():
                t0, c0 = time.perf_counter(), time.process_time()
                f()
                runs[k].append((time.perf_counter() - t0, time.process_time() - c0))
        best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
        for k, (w, c) in best.items():
            print(f"T={T} {k:14s} wall {w * 1e3:8.2f} ms   cpu {c * 1e3:8.2f} ms")
        def r(k, i, best=best):
            return best[k][i] / best["plain"][i]

        print(f"T={T} partial+merge/plain: wall {r('partial+merge', 0):.3f} cpu {r('partial+merge', 1):.3f};"
              f"  torch/plain: wall {r('torch', 0):.2f} cpu {r('torch', 1):.2f}", flush=True)


if __name__ == "__main__":
    main()
