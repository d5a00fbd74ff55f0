#!/usr/bin/env bash
# The crspace C API as C sees it: tests/c_api.c, compiled against
# include/mlnx_hca_crspace.h and linked with the static library, runs every
# function against a fresh simulated ConnectX-3 and ConnectX-4. Run by tools/test.sh (host stage).
# (`cargo test` builds the library only as an rlib, so this builds the
# static library itself.)
#
#   tools/crspace-c/check.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
"$ROOT/tools/need-debs.sh" gcc
cargo build -q --locked -p mlnx_hca_crspace --lib \
  --config 'profile.dev.panic="unwind"' --config 'profile.release.panic="unwind"'
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlnx_hca-capi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cc -std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -I "$ROOT/include" -o "$WORK/c_api" "$HERE/tests/c_api.c" \
  "$ROOT/target/debug/libmlnx_hca_crspace.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl
rc=0
"$WORK/c_api" "$WORK/cr.bar" "$WORK/cr.dev" > "$WORK/out.txt" || rc=$?
cat "$WORK/out.txt"
passed=$(tail -n 1 "$WORK/out.txt" | awk '{print $1}')
if [ "$rc" != 0 ] || grep -q '^FAIL' "$WORK/out.txt" || [ "${passed:-0}" -lt 60 ]; then
  echo "crspace C API: failed (exit $rc)"
  exit 1
fi
echo "crspace C API: every check passed"
