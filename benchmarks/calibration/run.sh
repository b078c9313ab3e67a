#!/bin/sh
# Build the calibration loop and check that it calls libmvec's vector expf, then time it against fastloss.
#   sh benchmarks/calibration/run.sh [fastloss tree, default: this worktree] [rounds]
set -e
here=$(cd "$(dirname "$0")" && pwd)
# On a CPU with AVX-512 the loop is built for it (libmvec's 16-lane _ZGVeN16v_expf), as fastloss dispatches
# to its avx512 level there: the calibration measures the exp throughput of the machine's widest vectors.
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    flags="-march=x86-64-v4 -mprefer-vector-width=512"; sym=_ZGVeN16v_expf; level=AVX-512
else
    flags="-mavx2 -mfma"; sym=_ZGVdN8v_expf; level=AVX2
fi
gcc -O3 -ffast-math -fopenmp $flags -fPIC -shared -o "$here/exp_loop.so" "$here/exp_loop.c" -lmvec -lm
objdump -d "$here/exp_loop.so" | grep -q "$sym" && echo "exp_loop.so calls $sym (libmvec, $level)" \
    || { echo "exp_loop.so does NOT call $sym"; exit 1; }
exec nice python3 "$here/run.py" "${1:-$here/../..}" "${2:-5}"
