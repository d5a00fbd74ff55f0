#!/usr/bin/env bash
# Builds mlnx_hca_filter.exe (x64) with mingw-w64 into DIR (default
# target/x86_64-pc-windows-msvc/release, beside mlnx_hca.sys and
# mlnx_hca.inf, where the tool looks for the INF by default).
#
#   tools/filter/build.sh [DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/target/x86_64-pc-windows-msvc/release}
"$ROOT/tools/need-debs.sh" gcc-mingw-w64-x86-64
mkdir -p "$OUT"
x86_64-w64-mingw32-gcc -std=c11 -O2 -Wall -Wextra -Werror -I "$ROOT/include" \
  -o "$OUT/mlnx_hca_filter.exe" "$HERE/mlnx_hca_filter.c" -lsetupapi -ladvapi32
echo "$OUT/mlnx_hca_filter.exe"
