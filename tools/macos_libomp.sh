#!/usr/bin/env bash
# libomp for the macOS wheels (cibuildwheel's before-all, [tool.cibuildwheel.macos]):
#
#   bash tools/macos_libomp.sh PREFIX    ->  PREFIX/include/omp.h, PREFIX/lib/libomp.dylib
#
# Apple clang has no OpenMP runtime, and Homebrew's libomp is built for the macOS it runs
# on (15.0 on the macos-15 runners), which delocate then forces on the wheel. This takes
# conda-forge's llvm-openmp 11.1.0 instead, the package scikit-learn's macOS wheels vendor:
# built for macOS 10.9 (x86_64) and 11.0 (arm64), both at most the wheels' 12.0. The
# package is the one for this machine's architecture (one runner per architecture), pinned
# by build and SHA-256, and unpacked with tar: no conda installer is needed.
set -euo pipefail

prefix="${1:?usage: macos_libomp.sh PREFIX}"
here="$(cd "$(dirname "$0")" && pwd)"
llvm_openmp_version="11.1.0"
case "$(uname -m)" in
    arm64)
        package="osx-arm64/llvm-openmp-${llvm_openmp_version}-hf3c4609_1.tar.bz2"
        sha256="29763e493e46801c416f2e75f20e9183719bde3b727d8983b1917a480b4076fe"
        ;;
    x86_64)
        package="osx-64/llvm-openmp-${llvm_openmp_version}-hda6cdc1_1.tar.bz2"
        sha256="1ebfeee2af90bcedf6b39c7290244e2aec0bda01ecf81b0d8d78ed405480c21c"
        ;;
    *)
        echo "macos_libomp.sh: no llvm-openmp package for $(uname -m)" >&2
        exit 1
        ;;
esac
url="https://anaconda.org/conda-forge/llvm-openmp/${llvm_openmp_version}/download/${package}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --retry 3 -o "$tmp/llvm-openmp.tar.bz2" "$url"
echo "$sha256  $tmp/llvm-openmp.tar.bz2" | shasum -a 256 --check
rm -rf "$prefix"
mkdir -p "$prefix"
tar -xjf "$tmp/llvm-openmp.tar.bz2" -C "$prefix"
ls -l "$prefix/include/omp.h" "$prefix/lib/libomp.dylib"
otool -l "$prefix/lib/libomp.dylib" | grep -A4 -E 'LC_BUILD_VERSION|LC_VERSION_MIN_MACOSX' || true
# The wheels' deployment target: a libomp built for a newer macOS fails here, before a build.
python3 "$here/macho_minos.py" --max 12.0 "$prefix/lib/libomp.dylib"
