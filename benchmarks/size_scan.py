"""fastloss against torch at every size, not only the bench's two: elementwise losses (and cross-entropy
rows) from a few thousand items, where the call overhead counts, through the sizes where the inputs leave
one core's L2, to memory-resident ones, at T=1 and T=2.

    python3 benchmarks/size_scan.py [--losses mse,huber,l1,bce,ce] [--reductions none,mean]
                                    [--sizes 16000,64000,...] [--threads 1,2]

Per size and thread count: the best of 9 timings of a loop of calls (each call's inputs just used, as in
an evaluation loop), fastloss and torch interleaved in one process, and torch/fastloss.  Rows where
fastloss is slower than torch are marked "SLOWER".  float32; cross-entropy is (N/100, 100) with index
targets.
"""
import argparse
import timeit

import numpy as np
import torch
import torch.nn.functional as F

import fastloss as fl

LOSSES = {
    "mse": (fl.mse_loss, F.mse_loss),
    "huber": (fl.huber_loss, F.huber_loss),
    "l1": (fl.l1_loss, F.l1_loss),
    "bce": (fl.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits),
    "ce": (fl.cross_entropy, F.cross_entropy),
}
SIZES = (16_000, 32_000, 64_000, 96_000, 128_000, 192_000, 256_000, 512_000, 1_000_000, 4_000_000)


def inputs(loss, n, rng):
    if loss == "ce":
        x = rng.standard_normal((max(1, n // 100), 100)).astype(np.float32)
        return x, rng.integers(0, 100, x.shape[0])
    return rng.standard_normal(n).astype(np.float32), rng.random(n).astype(np.float32)


def best(f, calls):
    return min(timeit.repeat(f, number=calls, repeat=9)) / calls


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", default="mse,huber,l1,bce,ce")
    p.add_argument("--reductions", default="none,mean")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--threads", default="1,2")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'loss':6} {'reduction':9} {'n':>9} {'T':>2} {'fastloss':>11} {'torch':>11} {'torch/fl':>8}")
    for loss in a.losses.split(","):
        ours, theirs = LOSSES[loss]
        for red in a.reductions.split(","):
            for n in map(int, a.sizes.split(",")):
                x, y = inputs(loss, n, rng)
                xt, yt = torch.from_numpy(x), torch.from_numpy(y)
                calls = max(5, 1_000_000 // n)
                for T in map(int, a.threads.split(",")):
                    torch.set_num_threads(T)
                    t_fl = best(lambda: ours(x, y, reduction=red, num_threads=T), calls)
                    t_to = best(lambda: theirs(xt, yt, reduction=red), calls)
                    flag = "  SLOWER" if t_to < t_fl else ""
                    print(f"{loss:6} {red:9} {n:9d} {T:2d} {t_fl * 1e6:8.1f} us {t_to * 1e6:8.1f} us "
                          f"{t_to / t_fl:8.2f}{flag}", flush=True)


if __name__ == "__main__":
    main()
