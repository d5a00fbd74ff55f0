#!/usr/bin/env bash
# Fuzz campaign for mlnx_hca: the whole request path of the simulated HCA,
# checked step by step against the reference model (fuzz/src/harness.rs).
#
#   fuzz/run.sh              # a 60 s campaign
#   fuzz/run.sh 3600         # an hour (any number of seconds)
#   fuzz/run.sh smoke        # CI: replay the kept corpus, then 25 s of fuzzing
#   fuzz/run.sh minimize     # fold what campaigns found into the kept corpus
#
# The kept corpus is fuzz/corpus/ioctl (in git, minimized); new inputs go to
# fuzz/corpus-tmp/ioctl (ignored by git). A crash stops the campaign and
# leaves its input in fuzz/artifacts/ioctl/; the script prints how to replay
# it. Needs the nightly toolchain (libFuzzer's instrumentation and
# AddressSanitizer) and cargo-fuzz, which it installs from crates.io if
# missing. Prints executions, executions per second, coverage (libFuzzer's
# `cov`: edges reached; `ft`: features) and corpus size.
set -euo pipefail
FUZZ=$(cd "$(dirname "$0")" && pwd)
cd "$FUZZ"
MODE=${1:-60}
TARGET=ioctl
KEPT=corpus/$TARGET
WORK=corpus-tmp/$TARGET
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}

rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1 || {
  echo "fuzz/run.sh: the $TOOLCHAIN toolchain is missing (rustup toolchain list); cargo fuzz needs it" >&2
  exit 1
}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
mkdir -p "$WORK"

fuzz() { cargo "+$TOOLCHAIN" fuzz "$@"; }

files() { find "$1" -type f | wc -l; } # files DIR: how many inputs a corpus holds

campaign() { # seconds
  local log=$WORK/../$TARGET.log status=0
  echo "=== fuzz $TARGET for $1 s (corpus: $(files "$KEPT") kept, $(files "$WORK") found before) ==="
  fuzz run "$TARGET" "$WORK" "$KEPT" -- \
    -max_total_time="$1" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  local last execs rate
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  echo "executions: ${execs:-?} (${rate:-?}/s)"
  echo "coverage:   $(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' <<<"$last" || echo '?')"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked at|SUMMARY|ERROR: libFuzzer|Test unit written' -A 3 "$log" | head -n 40 >&2 || true
    echo "FAILED: the campaign found a crash (log: fuzz/$WORK/../$TARGET.log)." >&2
    echo "Replay it:  cd fuzz && cargo +$TOOLCHAIN fuzz run $TARGET artifacts/$TARGET/<crash-file>" >&2
    exit "$status"
  fi
}

case "$MODE" in
  smoke)
    fuzz build "$TARGET"
    # Every kept input must still pass (the stable test tests/fuzz_corpus.rs
    # also checks that together they reach every status of the contract).
    fuzz run "$TARGET" "$KEPT" -- -runs=0 >/dev/null 2>&1 || {
      echo "FAILED: a kept corpus input crashes; run: cd fuzz && cargo +$TOOLCHAIN fuzz run $TARGET $KEPT -- -runs=0" >&2
      exit 1
    }
    echo "corpus replay: $(files "$KEPT") kept inputs pass"
    campaign "${FUZZ_SMOKE_SECONDS:-25}"
    ;;
  minimize)
    # Merge what campaigns found into the kept corpus, keep only inputs that
    # add coverage, then put the hand-made seeds back and check the corpus
    # still reaches every status.
    cp -n "$WORK"/* "$KEPT"/ 2>/dev/null || true
    # Edge coverage only (no hit counters): the smallest set that reaches
    # every branch; campaigns keep their fuller working corpus in $WORK.
    fuzz cmin "$TARGET" "$KEPT" -- -use_counters=0 -use_value_profile=0
    (cd .. && cargo test --test fuzz_corpus -- --ignored write_seeds && cargo test --test fuzz_corpus)
    echo "kept corpus: $(files "$KEPT") inputs, $(du -sh "$KEPT" | cut -f1)"
    ;;
  *[!0-9]* | '')
    echo "usage: fuzz/run.sh [SECONDS | smoke | minimize]" >&2
    exit 2
    ;;
  *)
    fuzz build "$TARGET"
    campaign "$MODE"
    ;;
esac
