"""W19: one training step's loss forward + backward with ``fastloss.torch`` against torch's own loss.

    python3 benchmarks/torch_training.py [--quick] [--threads 1,2] [--repeat 5]

Cases (WORKLOADS.md W19; float32, reduction="mean", ``loss.backward()`` into a leaf's ``.grad``):

* ``CE N x 1000``: ``flt.cross_entropy(x, y).backward()`` vs ``F.cross_entropy(x, y).backward()``,
  N = 100 000 (``--quick``: 10 000);
* ``CE 32000-class head``: the same on (N = 4 096, C = 32 000) logits (``--quick``: N = 256);
* ``MLP step``: a full SGD step (forward, loss, backward, ``optimizer.step()``) of a small MLP,
  Linear(256, 64) -> ReLU -> Linear(64, 32 000), on N = 4 096 rows (``--quick``: 256): how much of a
  real step the loss is.

Each implementation runs interleaved with the other, ``--repeat`` times after a warm-up; the table gives
the best wall time and, at T=1, the best CPU time of the process (the minimum: other jobs on a shared
machine only add time; at T=1 both libraries compute in the calling thread, so CPU time is robust to
them too).  torch runs at ``torch.set_num_threads(T)``,
fastloss at ``num_threads=T``.  The ratio is torch / fastloss (higher is better; target >= 4 for the
loss forward + backward).
"""
import argparse
import sys
import time
import os

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fastloss as fl  # noqa: E402
import fastloss.torch as flt  # noqa: E402


def loss_step(loss_fn, x, y):
    def step():
        x.grad = None
        loss_fn(x, y).backward()
    return step


def mlp_step(loss_fn, model, opt, X, Y):
    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X), Y).backward()
        opt.step()
    return step


def cases(quick):
    g = torch.Generator().manual_seed(0)
    n1, n2 = (10_000, 256) if quick else (100_000, 4096)
    x1 = torch.randn(n1, 1000, generator=g).requires_grad_(True)
    y1 = torch.randint(0, 1000, (n1,), generator=g)
    x2 = torch.randn(n2, 32_000, generator=g).requires_grad_(True)
    y2 = torch.randint(0, 32_000, (n2,), generator=g)
    X = torch.randn(n2, 256, generator=g)
    out = [(f"CE N={n1} C=1000 fwd+bwd", {"fastloss": loss_step(flt.cross_entropy, x1, y1),
                                          "torch": loss_step(F.cross_entropy, x1, y1)}),
           (f"CE N={n2} C=32000 fwd+bwd", {"fastloss": loss_step(flt.cross_entropy, x2, y2),
                                           "torch": loss_step(F.cross_entropy, x2, y2)})]
    steps = {}
    for name, fn in (("fastloss", flt.cross_entropy), ("torch", F.cross_entropy)):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(256, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32_000))
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        steps[name] = mlp_step(fn, model, opt, X, y2)
    out.append((f"MLP 256-64-32000 step N={n2}", steps))
    return out


def measure(fns, repeat):
    for f in fns.values():
        f()                                   # warm-up (allocations, first-touch pages)
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: min(v) for k, v in wall.items()}, {k: min(v) for k, v in cpu.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    threads = [int(t) for t in a.threads.split(",")]
    print(f"torch {torch.__version__}, fastloss {fl.__version__}, {'quick' if a.quick else 'full'} sizes, "
          f"best of {a.repeat}")
    print(f"{'case':34s} {'T':>2s} {'fastloss ms':>12s} {'torch ms':>10s} {'ratio':>6s}  "
          f"{'(T=1 CPU ms: fastloss / torch = ratio)'}")
    all_cases = cases(a.quick)
    for T in threads:
        torch.set_num_threads(T)
        fl.set_num_threads(T)
        for title, fns in all_cases:
            wall, cpu = measure(fns, a.repeat)
            extra = ""
            if T == 1:
                extra = f"  ({cpu['fastloss'] * 1e3:.1f} / {cpu['torch'] * 1e3:.1f} = " \
                        f"{cpu['torch'] / cpu['fastloss']:.2f}x)"
            print(f"{title:34s} {T:2d} {wall['fastloss'] * 1e3:12.1f} {wall['torch'] * 1e3:10.1f} "
                  f"{wall['torch'] / wall['fastloss']:5.2f}x{extra}", flush=True)


if __name__ == "__main__":
    main()
