#!/usr/bin/env bash
# Memory-safety runs (issue 7): the test suite against
#
#   debug  a CYLOSS_DEBUG=1 build: Cython bounds and wraparound checks on (an
#          out-of-range memoryview index raises instead of reading memory), -O0 -g;
#   asan   a gcc AddressSanitizer + UndefinedBehaviorSanitizer build of the production code
#          (-O3, checks off), with the ASan runtime preloaded into every Python process
#          of the run (pytest and the children the tests start).
#
# Both builds live in a scratch copy of the tree, so the in-place build and the installed
# package that the other CI steps test are never touched. A failed test, or a sanitizer
# report from any process (even a child whose exit status a test expects to be nonzero),
# makes the exit status nonzero; so does a run that takes over $CYLOSS_SAN_TIMEOUT seconds
# (default 600; each run takes 2-3 minutes on 2 cores), as a hung dask worker would.
#
# Usage: tools/sanitize.sh [debug|asan|all|asan-build|asan-run] [pytest arguments...]
#        (default: all, tests/). asan-build only builds the ASan tree and asan-run runs the
#        suite against that build, so a caller (CI) can build it while it does other work;
#        both need the same $CYLOSS_SAN_WORK.
# $PYTHON (default: python) needs the test extras, Cython>=3.1 and setuptools; the build
# needs gcc with libasan and libubsan. $CYLOSS_SAN_WORK is the scratch folder (default: a
# fresh temporary one, removed at the end when every run was clean).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-python}"
limit="${CYLOSS_SAN_TIMEOUT:-600}"
stage="${1:-all}"
[ $# -gt 0 ] && shift
case "$stage" in debug|asan|all|asan-build|asan-run) ;;
    *) echo "usage: $0 [debug|asan|all|asan-build|asan-run] [pytest args...]" >&2; exit 2 ;; esac
case "$stage" in asan-build|asan-run) [ -n "${CYLOSS_SAN_WORK:-}" ] || {
    echo "sanitize: $stage needs \$CYLOSS_SAN_WORK (the folder both stages share)" >&2; exit 2; } ;; esac
[ $# -gt 0 ] || set -- tests

# Deselected, each with its reason. In both runs:
both_deselect=(
    # Loops over 2**31 elements: about a minute at full speed, many at -O0 or under ASan.
    # Their inputs are views of a few MiB whose every value the main run checks exactly.
    "tests/test_huge.py"
)
# Under ASan only:
asan_deselect=(
    # Both assert a child's peak RSS against a fixed budget (the eval command's bounded
    # memory); ASan's shadow memory and its quarantine of freed blocks raise every
    # process's RSS by tens to hundreds of MiB.
    "tests/test_eval_cli.py::test_file_larger_than_memory_budget"
    "tests/test_eval_cli.py::test_memory_measurement_sees_a_big_chunk"
    # Leak checks measure RSS and glibc malloc growth, which ASan's quarantine of freed
    # blocks (and PYTHONMALLOC=malloc) turn into steady growth by design; the main run
    # and the debug run check them.
    "tests/test_leaks.py"
    # Two-core scaling: with every access checked against shadow memory, its
    # compute-bound call scaled 1.34x to 1.9x while SHA-256 scaled 1.95x, a measure of
    # the sanitizer. The GIL test that times no two cores
    # (test_python_threads_run_during_a_long_call) still runs here.
    "tests/test_concurrency.py::test_two_python_threads_run_in_parallel"
)
debug_opts=()
for id in "${both_deselect[@]}"; do debug_opts+=(--deselect "$id"); done
asan_opts=("${debug_opts[@]}")
for id in "${asan_deselect[@]}"; do asan_opts+=(--deselect "$id"); done

# asan-build only builds (CI starts it before the test extras are installed).
case "$stage" in
    asan-build) needs="import Cython, setuptools"; what="Cython>=3.1 and setuptools" ;;
    *) needs="import Cython, setuptools, pytest"; what="Cython>=3.1, setuptools and the test extras" ;;
esac
"$py" -c "$needs" 2>/dev/null || { echo "sanitize: $py needs $what" >&2; exit 2; }

work="${CYLOSS_SAN_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cyloss-san.XXXXXX")}"
mkdir -p "$work"

# A copy of the sources without build outputs or caches.
fresh_tree() {
    local tree="$work/$1"
    rm -rf "$tree"
    mkdir -p "$tree"
    tar -C "$repo" -cf - --exclude=.git --exclude=build --exclude=dist --exclude='*.so' \
        --exclude='*.c' --exclude='*.egg-info' --exclude='.venv*' --exclude=__pycache__ \
        --exclude=.hypothesis --exclude=.pytest_cache . | tar -C "$tree" -xf -
    echo "$tree"
}

build() {  # tree, then environment assignments for setup.py
    local tree="$1"; shift
    local t0=$SECONDS
    if ! (cd "$tree" && env "$@" "$py" setup.py build_ext --inplace > build.log 2>&1); then
        tail -n 40 "$tree/build.log" >&2
        echo "sanitize: build failed ($tree/build.log)" >&2
        exit 1
    fi
    echo "sanitize: built in $((SECONDS - t0)) s"
}

# The run must import the copy's extension, never an installed cyloss.
check_import() {  # tree, python expression true for this build, then environment
    local tree="$1" expr="$2"; shift 2
    env PYTHONPATH="$tree/src" "$@" "$py" -c "
import cyloss, cyloss._loops as L
assert L.__file__.startswith('$tree/'), L.__file__
assert $expr, cyloss.show_config(mode='dicts')"
}

run_debug() {
    echo "=== sanitize: CYLOSS_DEBUG=1 build, whole suite"
    local tree t0
    tree="$(fresh_tree debug)"
    build "$tree" CYLOSS_DEBUG=1
    check_import "$tree" "cyloss.show_config(mode='dicts')['debug_build']"
    t0=$SECONDS
    (cd "$tree" && PYTHONPATH="$tree/src" timeout "$limit" \
        "$py" -m pytest -q -p no:cacheprovider "${debug_opts[@]}" "$@") \
        || { echo "sanitize: debug suite failed (status $?)" >&2; exit 1; }
    echo "sanitize: debug suite clean in $((SECONDS - t0)) s"
}

build_asan() {
    echo "=== sanitize: ASan + UBSan build"
    local tree flags
    tree="$(fresh_tree asan)"
    # libubsan is linked in statically with its symbols hidden: a shared libubsan would
    # call the preloaded libasan's __sanitizer_set_report_path (same exported name), so
    # its log_path would be ignored and its reports would go to stderr, where pytest or a
    # test's capture of a child's output can swallow them.
    flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g"
    build "$tree" CFLAGS="$flags" \
        LDFLAGS="-fsanitize=address,undefined -static-libubsan -Wl,--exclude-libs,libubsan.a"
}

run_asan() {  # after build_asan
    echo "=== sanitize: ASan + UBSan suite"
    local tree="$work/asan" logs t0
    logs="$work/asan-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    # libstdc++ too: ASan hooks C++ throws only if it is there when ASan starts, and
    # matplotlib and torch extensions throw (an unhooked throw is an ASan CHECK failure).
    local lib preload=""
    for lib in libasan.so libstdc++.so; do
        lib="$(gcc -print-file-name="$lib")"
        [ -e "$lib" ] || { echo "sanitize: gcc has no $lib" >&2; exit 1; }
        preload="${preload:+$preload:}$lib"
    done
    grep -q libasan <(ldd "$tree"/src/cyloss/_loops*.so) \
        || { echo "sanitize: _loops does not link libasan" >&2; exit 1; }
    # detect_leaks=0: CPython leaks by design at exit (leaks are measured elsewhere).
    # allocator_may_return_null=1: a test asking for an impossible array must get its
    # MemoryError, not an ASan abort. log_path: a report lands in a file even when pytest
    # captures stderr or a child's exit status is expected to be nonzero.
    # PYTHONMALLOC=malloc: Python objects come from malloc, so ASan sees their bounds too.
    local san_env=(
        PYTHONMALLOC=malloc LD_PRELOAD="$preload"
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:log_path=$logs/asan"
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
    )
    check_import "$tree" "not cyloss.show_config(mode='dicts')['debug_build']" "${san_env[@]}"

    local status=0
    t0=$SECONDS
    (cd "$tree" && env PYTHONPATH="$tree/src" "${san_env[@]}" timeout "$limit" \
        "$py" -m pytest -q -p no:cacheprovider "${asan_opts[@]}" "$@") || status=$?
    if compgen -G "$logs/*" > /dev/null; then
        for f in "$logs"/*; do echo "--- $f"; cat "$f"; done >&2
        echo "sanitize: sanitizer reports above" >&2
        exit 1
    fi
    [ "$status" -eq 0 ] || { echo "sanitize: ASan suite failed (pytest status $status)" >&2; exit "$status"; }
    echo "sanitize: ASan + UBSan suite clean in $((SECONDS - t0)) s"
}

case "$stage" in
    debug) run_debug "$@" ;;
    asan) build_asan; run_asan "$@" ;;
    asan-build) build_asan ;;
    asan-run)
        [ -f "$work/asan/build.log" ] || { echo "sanitize: no ASan build in $work (asan-build first)" >&2; exit 2; }
        run_asan "$@" ;;
    all)
        # The ASan build (about 7 minutes of one core: -O3 with instrumentation) runs
        # beside the debug build and suite, which leave the second core mostly idle; the
        # timing tests that need two free cores skip themselves when they are not.
        build_asan > "$work/asan-build.out" 2>&1 &
        asan_build=$!
        run_debug "$@"
        wait "$asan_build" || { cat "$work/asan-build.out" >&2; exit 1; }
        cat "$work/asan-build.out"
        run_asan "$@"
        ;;
esac
[ -n "${CYLOSS_SAN_WORK:-}" ] || rm -rf "$work"
