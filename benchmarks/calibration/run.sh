#!/bin/sh
# Build the calibration loop and check that it calls libmvec's AVX2 expf, then time it against fastloss.
#   sh benchmarks/calibration/run.sh [fastloss tree, default: this worktree] [rounds]
set -e
here=$(cd "$(dirname "$0")" && pwd)
gcc -O3 -ffast-math -fopenmp -mavx2 -mfma -fPIC -shared -o "$here/exp_loop.so" "$here/exp_loop.c" -lmvec -lm
objdump -d "$here/exp_loop.so" | grep -q '_ZGVdN8v_expf' && echo "exp_loop.so calls _ZGVdN8v_expf (libmvec, AVX2)" \
    || { echo "exp_loop.so does NOT call _ZGVdN8v_expf"; exit 1; }
exec nice python3 "$here/run.py" "${1:-$here/../..}" "${2:-5}"
