"""Per-call time of the small-input workloads, for before/after comparisons of the call overhead.

    python3 benchmarks/overhead.py [TREE] [--wall]   # TREE: a built fastloss checkout (default: installed)

Prints, for each small-input workload of ``fastloss/bench/workloads.py`` at N = 1, 100, 1000 and
``num_threads=1``, the best of 9 ``timeit`` loops of a fastloss call and of a bare ``np.add.reduce``
of the prediction.  ``fastloss bench`` reports the same comparison (and torch's) in its small-input
table; this script exists to run the same measurement against two trees, alternately, on a busy machine.
The clock is the calling thread's CPU time (``time.thread_time``: other jobs on the machine do not
count), or the wall clock with ``--wall``.
"""
import sys
import time
import timeit

import numpy as np

WALL = "--wall" in sys.argv
_trees = [a for a in sys.argv[1:] if a != "--wall"]
if _trees:
    sys.path.insert(0, _trees[0])

import fastloss as fl  # noqa: E402
from fastloss.bench import workloads as W  # noqa: E402


def best_us(fn, number=20000, repeat=9):
    timer = time.perf_counter if WALL else time.thread_time
    return min(timeit.repeat(fn, number=number, repeat=repeat, timer=timer)) / number * 1e6


def main():
    print(f"fastloss from {fl.__file__}")
    for wid in W.SMALL_WORKLOADS:
        w = W.BY_ID[wid]
        f = getattr(fl, w.loss)
        for n in W.SMALL_SIZES:
            args, kwargs = W.build(w, n)
            bare = best_us(lambda: np.add.reduce(args[0], axis=None))
            call = best_us(lambda: f(*args, **kwargs, num_threads=1))
            print(f"{wid:4s} {w.loss:34s} n={n:5d} fl={call:7.2f} bare={bare:6.2f} over={call - bare:7.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
