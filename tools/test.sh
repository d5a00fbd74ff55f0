#!/usr/bin/env bash
# The project's whole test run, on a fresh Debian 12 machine or a used one:
# installs what it needs (Debian packages, crates), then runs every check in
# order and stops at the first failure. `.ci/run` calls exactly this.
#
#   tools/test.sh            # everything
#   tools/test.sh host       # only the host tests (cargo test), quick
#
# Stages: host tests; mstflint's tools against the simulated HCA; mcra and
# mstdump built over mlnx_hca; fuzz smoke; ThreadSanitizer; the spin model; the Windows image (cross build of mlnx_hca.sys, default
# and legacy-pool, checked as a loader would); the image under Wine; benches
# compile.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ONLY=${1:-all}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

stage() { echo; echo "=== $* ==="; STAGE_START=$SECONDS; }
# within MINUTES COMMAND...: a stage that runs tests gets a time limit far
# above its usual time (builds included), so that a hang (a deadlock in a
# test) fails it with a message instead of stalling CI until CI's deadline.
within() {
  local minutes=$1 rc=0; shift
  timeout --kill-after=30 "$((minutes * 60))" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "!!! $* did not finish within $minutes min: a hang?" >&2; fi
  return "$rc"
}
done_stage() { echo "--- ok ($((SECONDS - STAGE_START)) s)"; }


stage "host prerequisites"
# gcc-multilib: the C header test also compiles for 32-bit (WOW64) callers.
# pci.ids: the HCA table is checked against it (tests/hca_ids.rs).
tools/need-debs.sh gcc gcc-multilib pci.ids
command -v cargo >/dev/null || { echo "cargo (rustup stable) is required" >&2; exit 1; }
done_stage

# Cargo.toml sets panic = "abort" for the driver in both profiles; the host
# tests and the tools' binaries build in one invocation, and mlnx_hca is also
# a cdylib (unhashed file names), so its abort and unwind builds would
# overwrite each other. Host builds here use unwind throughout.
HOST=(--locked --config 'profile.dev.panic="unwind"' --config 'profile.release.panic="unwind"')

stage "host tests: core, simulated HCA, contract, C header, INF, tools"
within 30 cargo test --workspace "${HOST[@]}"
done_stage

stage "the crspace C API from C"
tools/crspace-c/check.sh
done_stage

stage "fmt and clippy (workspace), crspace Windows type-check"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets "${HOST[@]}" -- -D warnings
tools/crspace/check-windows.sh clippy
done_stage

stage "scripts: shellcheck"
tools/need-debs.sh shellcheck
git ls-files -z '*.sh' | xargs -0 shellcheck -x
done_stage

[ "$ONLY" = host ] && exit 0

stage "mstflint's unmodified mstmcra, mstregdump and mstflint against the simulated ConnectX-3 and ConnectX-4 (tools/sim-pci)"
within 30 tools/sim-pci/check.sh
done_stage

stage "mstflint's mcra and mstdump, built from Debian's source over mlnx_hca (tools/mtcr), against Debian's own tools"
within 30 tools/mtcr/check.sh
done_stage

stage "fuzz smoke: kept corpus, then 25 s of cargo fuzz against the reference model"
fuzz/run.sh smoke
done_stage

stage "concurrency stress under ThreadSanitizer"
within 30 fuzz/tsan.sh
done_stage

stage "spin: the Windows layer's synchronisation, exhaustively; every seeded bug caught"
within 30 src/windows/model/run.sh
within 30 src/windows/model/run.sh --seeds
done_stage

stage "Windows image: cross build of mlnx_hca.sys (release), clippy -D warnings"
tools/wdk-cross/build.sh clippy -- -D warnings
tools/wdk-cross/build.sh build-release
tools/filter/build.sh   # mlnx_hca_filter.exe beside the image
done_stage

stage "Windows image: legacy-pool variant (Windows before 10 2004, Wine)"
WDK_CROSS_FEATURES="driver legacy-pool" WDK_CROSS_TARGET_SUBDIR=legacy tools/wdk-cross/build.sh build-release
done_stage

stage "Windows image checks: PE as a loader sees it"
T=$ROOT/target/x86_64-pc-windows-msvc
MLNX_HCA_SYS=$T/release/mlnx_hca.sys MLNX_HCA_SYS_LEGACY=$T/legacy/release/mlnx_hca.sys \
  cargo test "${HOST[@]}" --features image-tests --test pe_image
done_stage

stage "the real mlnx_hca.sys under Wine, driven by a C client built against include/; the filter installer"
tests/wine/run.sh "$T/legacy/release/mlnx_hca.sys" "$T/legacy/release/mlnx_hca.inf"
done_stage

stage "the Windows acceptance kit: built, its programs' imports, the signing rehearsed, the signed images checked, acceptance.ps1 parsed"
tools/kit/build.sh
R=$ROOT/target/kit/rehearsal
MLNX_HCA_EXPECT_SIGNED=1 MLNX_HCA_SYS=$R/default/mlnx_hca.sys MLNX_HCA_SYS_LEGACY=$R/legacy/mlnx_hca.sys \
  cargo test "${HOST[@]}" --features image-tests --test pe_image
done_stage

stage "benches compile"
cargo bench --workspace "${HOST[@]}" --no-run
done_stage

echo
echo "all stages passed"
