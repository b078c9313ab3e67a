"""A/B of cross_entropy over class counts between two built trees (thread-time minima of alternating child
processes, OMP_NUM_THREADS=1, 2^20 logits per call unless CE_LOGITS is set; CE_F64=1 for float64).

    python3 benchmarks/ab_ce_classes.py OLD_TREE NEW_TREE 10,21,24,40 index,probs,indexg 3
    python3 benchmarks/ab_ce_classes.py - main 10,21,24 index,probs 2 t      # one tree, with torch
    python3 benchmarks/ab_ce_classes.py main@avx2 main@avx512 16,64 index 3  # two ISA levels (FASTLOSS_ISA)

variants: comma list of index, indexg, none, smooth, smoothg, probs, probsg (g: with the gradient into a
reused grad_out=).  Prints ns per logit, NEW/OLD, and with a 6th argument torch's time and torch/NEW.
"""
import sys, os, json, subprocess, time
import numpy as np
DT = np.float64 if os.environ.get("CE_F64") else np.float32

def child(root, Cs, variants, with_torch):
    sys.path.insert(0, root); os.chdir(root)
    import fastloss as fl
    if with_torch:
        import torch; torch.set_num_threads(1)
    res = {}
    rng = np.random.default_rng(0)
    for C in Cs:
        N = max(1, int(os.environ.get("CE_LOGITS", 1 << 20)) // C)
        x = (rng.standard_normal((N, C)) * 3).astype(DT)
        y = rng.integers(0, C, N)
        p = rng.random((N, C)).astype(DT); p /= p.sum(1, keepdims=True)
        g = np.empty_like(x)
        for v in variants:
            kw = dict(num_threads=1)
            tgt = y
            if v.startswith("smooth"): kw["label_smoothing"] = 0.1
            if v.startswith("probs"): tgt = p
            if v == "none": kw["reduction"] = "none"
            if v.endswith("g"): kw["return_grad"] = True; kw["grad_out"] = g
            f = lambda: fl.cross_entropy(x, tgt, **kw)
            def tm(f):
                f(); best = 1e9; t_end = time.perf_counter() + 0.25; k = 0
                while time.perf_counter() < t_end or k < 5:
                    t0 = time.thread_time(); f(); dt = time.thread_time() - t0
                    if dt > 0: best = min(best, dt)
                    k += 1
                return best * 1e9 / x.size
            res[f"{C}/{v}"] = tm(f)
            if with_torch:
                xt = torch.from_numpy(x); tt = torch.from_numpy(tgt if tgt is p else y.astype(np.int64))
                tkw = {}
                if v.startswith("smooth"): tkw["label_smoothing"] = 0.1
                if v == "none": tkw["reduction"] = "none"
                if v.endswith("g"):
                    xg = xt.clone().requires_grad_(True)
                    def ft():
                        xg.grad = None
                        torch.nn.functional.cross_entropy(xg, tt, **tkw).sum().backward()
                else:
                    ft = lambda: torch.nn.functional.cross_entropy(xt, tt, **tkw)
                with torch.no_grad() if not v.endswith("g") else torch.enable_grad():
                    res[f"{C}/{v}/torch"] = tm(ft)
    print(json.dumps(res))

if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], [int(c) for c in sys.argv[3].split(",")], sys.argv[4].split(","), sys.argv[5] == "1")
        sys.exit()
    A, B, Cs, vs, rounds = sys.argv[1:6]
    wt = "1" if len(sys.argv) > 6 else "0"
    best = {A: {}, B: {}}
    for r in range(int(rounds)):
        for root in (A, B) if A != "-" else (B,):
            path, _, level = root.partition("@")
            env = dict(os.environ, OMP_NUM_THREADS="1", **({"FASTLOSS_ISA": level} if level else {}))
            out = subprocess.run([sys.executable, __file__, "--child", os.path.abspath(path), Cs, vs, wt],
                                 capture_output=True, text=True, env=env)
            if out.returncode: print(out.stderr); sys.exit(1)
            for k, t in json.loads(out.stdout.strip().splitlines()[-1]).items():
                best[root][k] = min(best[root].get(k, 1e9), t)
    keys = list(best[B])
    for k in keys:
        if k.endswith("/torch"): continue
        line = f"{k:14s} B {best[B][k]:.3f} ns"
        if A != "-": line += f"  A {best[A][k]:.3f}  B/A {best[B][k]/best[A][k]:.3f}"
        if k + "/torch" in best[B]: line += f"  torch {best[B][k+'/torch']:.3f}  torch/B {best[B][k+'/torch']/best[B][k]:.2f}"
        print(line)
