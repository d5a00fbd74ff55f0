#!/usr/bin/env bash
# ci.sh -- everything that checks crspace: format, clippy, tests (the CLI
# against the simulated HCA, the mapping type) and the Windows type-check.
# Run from anywhere; writes only target/ (and the caches of check-windows.sh).
set -euo pipefail
HERE=$(dirname "$(realpath "$0")")
ROOT=$(realpath "$HERE/../..")
cd "$ROOT"

step() { echo "crspace ci: $*" >&2; }

step "cargo fmt --check"
cargo fmt -p crspace -- --check

step "cargo clippy (host, all targets)"
cargo clippy -p crspace --all-targets --no-deps -- -D warnings

# The workspace's dev profile is panic=abort and mlnx_hca is also a cdylib
# (unhashed output names): with a binary and tests in one build, its abort and
# unwind builds would overwrite each other. See README.md, "Tests".
step "cargo test"
cargo test -p crspace --config 'profile.dev.panic="unwind"'

step "Windows type-check"
"$HERE/check-windows.sh" clippy
