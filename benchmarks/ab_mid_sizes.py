"""A/B of mid-size calls (a few blocks of work: the serial threshold and the block cut of run's init_run)
between two built trees: wall-clock minima of 100 calls, 7 times per child, alternating child processes.

    python3 benchmarks/ab_mid_sizes.py OLD_TREE NEW_TREE THREADS ROUNDS

Prints each case's time in both trees and NEW/OLD.
"""
import sys, os, time, subprocess, json
import numpy as np
CASES = [("ce",1000,10),("ce",1600,10),("ce",3200,10),("ce",200,100),("ce",20,1000),("cesm",1600,10),
         ("probs",1000,10),("probs",3000,10),("probs",200,100),("dist",1000,10),("dist",200,100),
         ("mse",40000,1),("bce",40000,1),("mse",60000,1)]
def child(root, nt):
    sys.path.insert(0, root); import fastloss as fl
    rng=np.random.default_rng(0); res={}
    for k,N,C in CASES:
        x=rng.standard_normal((N,C) if C>1 else (N,),dtype=np.float32); 
        if k.startswith("ce"):
            y=rng.integers(0,C,N); kw=dict(label_smoothing=0.1) if k=="cesm" else {}
            f=lambda: fl.cross_entropy(x,y,num_threads=nt,**kw)
        elif k=="probs":
            p=rng.random(x.shape,dtype=np.float32); p/=p.sum(1,keepdims=True)
            f=lambda: fl.cross_entropy(x,p,num_threads=nt)
        elif k=="dist":
            t=rng.standard_normal(x.shape,dtype=np.float32)
            f=lambda: fl.distillation_loss(x,t,2.0,num_threads=nt)
        else:
            t=rng.random(x.shape,dtype=np.float32)
            g=fl.mse_loss if k=="mse" else fl.binary_cross_entropy_with_logits
            f=lambda: g(x,t,num_threads=nt)
        best=1e9
        for r in range(7):
            t0=time.perf_counter()
            for _ in range(100): f()
            best=min(best,(time.perf_counter()-t0)/100)
        res[f"{k} {N}x{C}"]=best*1e6
    print(json.dumps(res))
if sys.argv[1]=="child":
    child(sys.argv[2], int(sys.argv[3])); sys.exit()
A,B,nt,rounds=sys.argv[1],sys.argv[2],int(sys.argv[3]),int(sys.argv[4])
ra,rb={},{}
for r in range(rounds):
    for root,acc in ((A,ra),(B,rb)):
        out=json.loads(subprocess.run([sys.executable,__file__,"child",root,str(nt)],capture_output=True,text=True).stdout)
        for k,v in out.items(): acc[k]=min(acc.get(k,1e9),v)
for k in ra: print(f"{k:16s} A {ra[k]:8.2f} us  B {rb[k]:8.2f} us  B/A {rb[k]/ra[k]:.2f}")
