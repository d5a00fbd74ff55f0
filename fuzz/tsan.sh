#!/usr/bin/env bash
# ThreadSanitizer over tests/concurrency.rs: threads mapping, unmapping,
# duplicating, closing (also under in-flight requests), ending processes and
# surprise-removing against one simulated HCA. std is rebuilt with the
# sanitizer (-Zbuild-std) so that its locks and atomics are seen too; any
# data race report fails the run (halt_on_error). Nightly only, like the
# fuzzer beside it; about a minute to build on 2 cores, ten seconds to run.
#
#   fuzz/tsan.sh                                   # the default stress run
#   MLNX_HCA_STRESS_ROUNDS=20000 fuzz/tsan.sh      # longer
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TOOLCHAIN=${TSAN_TOOLCHAIN:-nightly}
HOST=$(rustc "+$TOOLCHAIN" -vV | sed -n 's/^host: //p')

rustup component list --toolchain "$TOOLCHAIN" --installed | grep -q '^rust-src' ||
  rustup component add rust-src --toolchain "$TOOLCHAIN"

export RUSTFLAGS="-Zsanitizer=thread"
export CARGO_TARGET_DIR="$ROOT/target/tsan"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# panic=unwind: the test harness needs it, and a profile that aborts makes
# -Zbuild-std build core twice (cargo issue 7359).
cargo "+$TOOLCHAIN" test -Zbuild-std --target "$HOST" --locked \
  --config 'profile.dev.panic="unwind"' --test concurrency "$@"
