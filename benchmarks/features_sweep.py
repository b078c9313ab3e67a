"""The pairwise row losses over the feature count D against torch: triplet_margin_loss and
cosine_embedding_loss (and fastloss's contrastive_loss, which torch does not have), loss alone and
loss + gradient (torch: forward + backward), 2^20 values per input, float32.

Rows of a few features are where a per-row kernel loses to torch's whole-array ops; fastloss turns them
feature-major (metric.pyx's pair_tiles_win).  T=1 is timed with the thread's CPU time (steadier on a
shared machine), other T by wall clock; best of ``--rounds`` calls.

    python3 benchmarks/features_sweep.py [--threads 1] [--dims 2,3,4,8,16,32,64] [--rounds 15]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastloss as fl


def best(f, threads, rounds):
    clock = time.thread_time if threads == 1 else time.perf_counter
    f()
    times = []
    for _ in range(rounds):
        t = clock()
        f()
        times.append(clock() - t)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dims", default="2,3,4,8,16,32,64")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    T = args.threads
    torch.set_num_threads(T)
    rng = np.random.default_rng(0)
    print(f"T={T}, float32, 2^20 values per input; ns per row (torch/fastloss)")
    print(f"{'D':>4} {'grad':>5} | {'triplet torch':>13} {'fastloss':>9} {'ratio':>6} | {'cosine torch':>12} "
          f"{'fastloss':>9} {'ratio':>6} | {'contrastive':>11}")
    for D in (int(d) for d in args.dims.split(",")):
        N = (1 << 20) // D
        a, p, n = (rng.standard_normal((N, D)).astype(np.float32) for _ in range(3))
        y = np.where(rng.random(N) < 0.5, 1, -1).astype(np.float32)
        y01 = (y > 0).astype(np.float32)
        for grad in (False, True):
            ta, tp, tn = (torch.from_numpy(x).requires_grad_(grad) for x in (a, p, n))
            ty = torch.from_numpy(y)

            def torch_triplet():
                v = F.triplet_margin_loss(ta, tp, tn)
                if grad:
                    v.backward()

            def torch_cosine():
                v = F.cosine_embedding_loss(ta, tp, ty)
                if grad:
                    v.backward()

            r = [best(torch_triplet, T, args.rounds),
                 best(lambda: fl.triplet_margin_loss(a, p, n, num_threads=T, return_grad=grad), T, args.rounds),
                 best(torch_cosine, T, args.rounds),
                 best(lambda: fl.cosine_embedding_loss(a, p, y, num_threads=T, return_grad=grad), T, args.rounds),
                 best(lambda: fl.contrastive_loss(a, p, y01, num_threads=T, return_grad=grad), T, args.rounds)]
            ns = [x / N * 1e9 for x in r]
            print(f"{D:>4} {'yes' if grad else 'no':>5} | {ns[0]:>13.1f} {ns[1]:>9.1f} {r[0] / r[1]:>6.2f} | "
                  f"{ns[2]:>12.1f} {ns[3]:>9.1f} {r[2] / r[3]:>6.2f} | {ns[4]:>11.1f}")


if __name__ == "__main__":
    main()
