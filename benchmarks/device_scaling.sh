#!/bin/bash
# Thread scaling on a many-core machine (the 16-core device machine): WORKLOADS.md's table at
# T = 16, 8, 4, 2, 1 (one bench process per T, largest first, so a run cut short keeps the counts that
# matter most: T=16 against its floor and against T=8), after a bitwise check of every loss family at
# 1-16 threads.  fastloss must already import (built in place, or installed).
#
#   bash benchmarks/device_scaling.sh OUTDIR [REPEAT]
#
# Writes OUTDIR/machine.txt, OUTDIR/determinism.txt, OUTDIR/bench.log and OUTDIR/T<n>.json (fastloss bench --json; turn
# them into tables with `python3 benchmarks/scaling_table.py OUTDIR/T*.json`).  W18/W19 (GEMM-bound
# linear cross-entropy and the torch training step) are left out: they are the long runs and not
# memory-bound.
set -u
out=${1:?OUTDIR}; repeat=${2:-3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # fastloss from this checkout
{ date -u; nproc; lscpu; python3 -c "import fastloss as fl; fl.show_config()"; } > "$out/machine.txt" 2>&1
grep -E "^CPU\(s\)|Model name|avx512f" -o "$out/machine.txt" | sort | uniq -c
python3 -c "import fastloss as fl; fl.show_config()"
timeout 120 python3 benchmarks/thread_determinism.py > "$out/determinism.txt" 2>&1
echo "determinism rc=$?: $(tail -1 "$out/determinism.txt")"
only=W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W11,W12,W13,W14,W15,W16,W17/W1,W17/W6,W17/W7,W17/W8,W17/W10,W17/W12
only=$only,W1/f64,W2/f64,W6/f64
cores=$(nproc)
for t in 16 8 4 2 1; do
    [ "$t" -le "$cores" ] || continue
    start=$SECONDS
    python3 -m fastloss bench --threads "$t" --repeat "$repeat" --no-small --no-memory --only "$only" \
        --json "$out/T$t.json" >> "$out/bench.log" 2>&1
    echo "T=$t rc=$? in $((SECONDS - start)) s"
done
