"""A/B speed of fastloss's public calls: two source trees (each with in-place built kernels), same inputs.

    python3 benchmarks/ab_speed.py ../before . [--only W1,W6,W17/W1] [--rounds 3] [--size quick|small]
    python3 benchmarks/ab_speed.py .@avx2 .@avx512      # two ISA levels of one tree (FASTLOSS_ISA)

Each round runs one child process per tree, alternating A, B; a child times every selected workload
(inputs from tree A's bench workloads, seeded) as the calling thread's CPU time (time.thread_time)
of one call at num_threads=1, minimum over ~0.4 s.  Reports min over rounds and the ratio B/A.
Thread CPU time is robust to other jobs on the machine (wall clock is not).  Ratios within ~2% are noise.
Also times a few small calls (N=100) for per-call overhead.
"""
import argparse, importlib.util, json, os, subprocess, sys, time


def split_level(tree):
    """'path@level' -> (path, {'FASTLOSS_ISA': level}); a plain path -> (path, {})."""
    path, _, level = tree.partition("@")
    return path, ({"FASTLOSS_ISA": level} if level else {})


def child(root, a_root, only, size):
    root = os.path.abspath(split_level(root)[0])
    a_root = split_level(a_root)[0]
    sys.path.insert(0, root)
    os.chdir(root)
    import fastloss as fl
    wl_path = os.path.join(os.path.abspath(a_root), "fastloss", "bench", "workloads.py")
    import fastloss.bench  # noqa: F401  (the parent package: workloads.py imports relatively)
    spec = importlib.util.spec_from_file_location("fastloss.bench._ab_workloads", wl_path)
    W = importlib.util.module_from_spec(spec); spec.loader.exec_module(W)
    sel = W.select(only.split(",")) if only else W.WORKLOADS
    res = {}
    for w in sel:
        if not hasattr(fl, w.loss):
            continue
        for tag, n in (("", W.size(w, quick=True)),) + ((("@small", 100),) if size == "small" else ()):
            try:
                args, kwargs = W.build(w, n)
            except Exception:
                continue
            f = getattr(fl, w.loss)
            extra = {"num_threads": 1}
            if w.variant == "grad":
                extra["return_grad"] = True
            call = lambda: f(*args, **kwargs, **extra)
            call()
            best = float("inf"); t_end = time.perf_counter() + 0.4; k = 0
            while time.perf_counter() < t_end or k < 5:
                t0 = time.thread_time(); call(); dt = time.thread_time() - t0
                if dt > 0: best = min(best, dt)
                k += 1
            res[w.id + tag] = best
    print(json.dumps(res))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a"); ap.add_argument("b")
    ap.add_argument("--only", default="")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="quick")
    ap.add_argument("--child", action="store_true")
    a = ap.parse_args()
    if a.child:
        return child(a.b, a.a, a.only, a.size)
    best = {a.a: {}, a.b: {}}
    for r in range(a.rounds):
        for root in (a.a, a.b):
            env = dict(os.environ, OMP_NUM_THREADS="1", **split_level(root)[1])
            out = subprocess.run([sys.executable, os.path.abspath(__file__), a.a, root, "--child", "--only", a.only,
                                  "--size", a.size],
                                 capture_output=True, text=True, env=env)
            if out.returncode:
                print(out.stderr[-3000:]); sys.exit(1)
            for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                best[root][k] = min(v, best[root].get(k, float("inf")))
    print(f"{'workload':14s} {'A ms':>9s} {'B ms':>9s}  B/A")
    worst = 0
    for k in best[a.a]:
        if k in best[a.b]:
            ra = best[a.b][k] / best[a.a][k]; worst = max(worst, ra)
            print(f"{k:14s} {best[a.a][k]*1e3:9.3f} {best[a.b][k]*1e3:9.3f}  {ra:.3f}")
    print(f"worst B/A: {worst:.3f}")

if __name__ == "__main__":
    main()
