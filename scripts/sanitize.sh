#!/usr/bin/env bash
# Build fastloss with AddressSanitizer + UndefinedBehaviorSanitizer and run the whole test suite on it.
#
#   scripts/sanitize.sh [pytest args...]        (default: tests -q -x -p no:cacheprovider)
#
# The build happens in a scratch copy of the working tree ($FASTLOSS_SANITIZE_DIR, default
# /tmp/fastloss-sanitize-$USER), so the developer's in-place build is untouched; re-runs reuse it
# (only changed sources recompile).  setup.py's FASTLOSS_SANITIZE=1 gives -O1 -g
# -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all at one vector level.
# The Python interpreter is not instrumented, so libasan is preloaded; leak detection is off (the
# interpreter's own allocations at exit are not ours), every sanitizer report aborts the process.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DST="${FASTLOSS_SANITIZE_DIR:-/tmp/fastloss-sanitize-${USER:-$(id -u)}}"
JOBS="${FASTLOSS_SANITIZE_JOBS:-2}"

mkdir -p "$DST"
# the tracked and untracked-but-not-ignored files of the working tree (no build outputs, no .so)
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    tar --null --files-from=- -cf -) | tar -xpf - -C "$DST"

cd "$DST"
echo "== building sanitized kernels in $DST" >&2
# setuptools rebuilds on newer sources only: a change of the sanitizer flags in setup.py forces a rebuild
STAMP="$(grep -E '^SANITIZE' setup.py | sha1sum | cut -c1-16)"
FORCE=""
[ "$(cat "$DST/.sanitize-flags" 2>/dev/null)" = "$STAMP" ] || FORCE="--force"
FASTLOSS_SANITIZE=1 nice python3 setup.py build_ext --inplace $FORCE -j "$JOBS" >"$DST/sanitize-build.log" 2>&1 || {
    tail -40 "$DST/sanitize-build.log" >&2; exit 1; }

echo "$STAMP" > "$DST/.sanitize-flags"

LIBASAN="$(gcc -print-file-name=libasan.so)"
[ -e "$LIBASAN" ] || { echo "libasan not found ($LIBASAN)" >&2; exit 1; }

# libstdc++ too: torch throws C++ exceptions (e.g. for a bad reference call), and ASan's __cxa_throw
# interceptor needs the real one resolvable at start-up (python itself does not link libstdc++)
LIBSTDCXX="$(gcc -print-file-name=libstdc++.so.6)"
export LD_PRELOAD="$LIBASAN $LIBSTDCXX"
# reports also go to files: pytest captures stderr, and a halted process never shows it
LOGS="$DST/sanitizer-reports"
rm -rf "$LOGS" && mkdir -p "$LOGS"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:alloc_dealloc_mismatch=0:allocator_may_return_null=1:handle_segv=1:strict_init_order=0:log_path=$LOGS/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$LOGS/ubsan"
export PYTHONFAULTHANDLER=1

# sanity: the loaded kernels really are the instrumented ones
python3 - <<'PY'
import fastloss, fastloss._kernels as k, subprocess
so = k.load("classification").__file__
syms = subprocess.run(["nm", "-D", so], capture_output=True, text=True).stdout
assert "__asan_" in syms, f"{so} is not instrumented"
print("sanitized build:", so, "level", k.ISA_LEVEL)
PY

if [ "$#" -eq 0 ]; then set -- tests -q -x -p no:cacheprovider; fi
echo "== python3 -m pytest $*" >&2
status=0
nice python3 -m pytest "$@" || status=$?
if compgen -G "$LOGS/*" >/dev/null; then
    echo "== sanitizer reports ($LOGS):" >&2
    for f in "$LOGS"/*; do echo "--- $f" >&2; head -60 "$f" >&2; done
    [ "$status" -ne 0 ] || status=1
fi
echo "== sanitize.sh: $(date -u +%Y-%m-%dT%H:%MZ) pytest exit status $status" >&2
exit "$status"
