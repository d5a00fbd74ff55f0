#!/usr/bin/env bash
# check-windows.sh -- type-check crspace for x86_64-pc-windows-msvc on Linux, so
# that its Windows backend (src/windows.rs: CreateFileW, DeviceIoControl) cannot
# rot unseen; and build crspace.exe for Windows.
#
# Usage: tools/crspace/check-windows.sh [check|clippy] [extra cargo args...]
#        tools/crspace/check-windows.sh build DIR
#   check  (default) cargo check of the library and the binary
#   clippy           the same under clippy, with -D warnings
#   build DIR        crspace.exe and the C API library (mlnx_hca_crspace.dll,
#                    its import library libmlnx_hca_crspace.dll.a, the static
#                    libmlnx_hca_crspace.a) into DIR, release, for
#                    x86_64-pc-windows-gnu: linked by mingw-w64's gcc
#                    against msvcrt.dll and the system DLLs, nothing else
#                    to install on Windows
#
# The same toolchain as the driver's cross build (tools/wdk-cross): Debian's
# rustc/cargo 1.96 (rustc-web, cargo-web) with the standard library's source
# (rust-web-src), built for the target with -Zbuild-std=std,panic_abort (a
# user-mode tool needs std; the workspace's dev profile is panic=abort), enabled
# by RUSTC_BOOTSTRAP=1. rustup's toolchain has no Windows target.
#
# Nothing outside target/ is written in the repository:
#   * a private CARGO_HOME ($CRSPACE_WINDOWS_HOME, default
#     ~/.cache/crspace-windows/cargo-home): rustup's ~/.cargo is not touched;
#   * a private lockfile (cargo's resolver.lockfile-path, also unstable),
#     seeded from the repository's Cargo.lock so both builds resolve the same
#     versions; the repository's Cargo.lock is only read (checked below);
#   * cargo's output in target/crspace-windows (off the host build's lock).
#
# Environment: CRSPACE_WINDOWS_HOME (state directory), CRSPACE_WINDOWS_OFFLINE
# (1/0: force cargo offline/online; default: offline once a run succeeded with
# the same manifests and lockfile).
set -euo pipefail
trap 'echo "check-windows.sh: failed (line $LINENO: $BASH_COMMAND)" >&2' ERR

ACTION=${1:-check}
[ $# -gt 0 ] && shift
OUTDIR=""
case $ACTION in
    check|clippy) ;;
    build) OUTDIR=${1:?usage: check-windows.sh build DIR}; shift ;;
    -h|--help|help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "check-windows.sh: unknown action '$ACTION' (check|clippy)" >&2; exit 2 ;;
esac

HERE=$(dirname "$(realpath "$0")")
ROOT=$(realpath "$HERE/../..")
STATE=${CRSPACE_WINDOWS_HOME:-$HOME/.cache/crspace-windows}
TRIPLE=x86_64-pc-windows-msvc
[ "$ACTION" = build ] && TRIPLE=x86_64-pc-windows-gnu
log() { echo "check-windows: $*" >&2; }

# ------------------------------------------------------------- 1. packages
# Debian's toolchain; installed only when missing (no apt-get update otherwise).
PKGS="rustc-web cargo-web rust-web-src"
[ "$ACTION" = clippy ] && PKGS="$PKGS rust-web-clippy"
[ "$ACTION" = build ] && PKGS="$PKGS gcc-mingw-w64-x86-64"
# shellcheck disable=SC2086  # the package list is split on purpose
"$ROOT/tools/need-debs.sh" $PKGS

# ------------------------------------------------------------- 2. toolchain
# Nothing from a surrounding cargo/rustup invocation may leak in.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER \
      RUSTUP_TOOLCHAIN CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_BUILD_TARGET_DIR \
      CARGO_MANIFEST_DIR CARGO_RESOLVER_LOCKFILE_PATH
# /usr/bin first: rustup's cargo-clippy proxy would pick the wrong compiler.
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1
export CARGO_HOME=$STATE/cargo-home
mkdir -p "$CARGO_HOME"

# ------------------------------------------------------------- 3. lockfile
LOCKDIR=$STATE/locks/$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)
mkdir -p "$LOCKDIR"
[ -f "$ROOT/Cargo.lock" ] || { echo "check-windows.sh: no Cargo.lock in $ROOT (run a host build first)" >&2; exit 1; }
if ! cmp -s "$ROOT/Cargo.lock" "$LOCKDIR/seed.lock"; then
    cp "$ROOT/Cargo.lock" "$LOCKDIR/seed.lock"
    cp "$ROOT/Cargo.lock" "$LOCKDIR/Cargo.lock"
fi
export CARGO_UNSTABLE_LOCKFILE_PATH=true
export CARGO_RESOLVER_LOCKFILE_PATH=$LOCKDIR/Cargo.lock
lock_before=$(sha256sum < "$ROOT/Cargo.lock")

# ------------------------------------------------------------- 4. offline when possible
# shellcheck source-path=SCRIPTDIR source=../wdk-cross/cargo-offline.sh
. "$ROOT/tools/wdk-cross/cargo-offline.sh"
key() { fetch_key "$ROOT" "$LOCKDIR/Cargo.lock"; }
choose_offline "${CRSPACE_WINDOWS_OFFLINE:-auto}" "$LOCKDIR/fetched" "$(key)"

# ------------------------------------------------------------- 5. check
export CARGO_TARGET_DIR=$ROOT/target/crspace-windows
ARGS=(--manifest-path "$ROOT/Cargo.toml" -p crspace -p mlnx_hca_crspace --lib --bins --target "$TRIPLE"
      "-Zbuild-std=std,panic_abort" "$@")
start=$SECONDS
log "cargo $ACTION -p crspace --target $TRIPLE${CARGO_NET_OFFLINE:+ (offline)}"
if [ "$ACTION" = clippy ]; then
    (cd "$ROOT" && /usr/bin/cargo clippy "${ARGS[@]}" -- -D warnings)
elif [ "$ACTION" = build ]; then
    # The standard library is built here too, so rustup's self-contained CRT
    # objects are not there: mingw-w64's gcc brings its own.
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-C link-self-contained=no -C link-arg=-static-libgcc"
    (cd "$ROOT" && /usr/bin/cargo build --release --manifest-path "$ROOT/Cargo.toml" -p crspace --bin crspace \
        -p mlnx_hca_crspace --lib --target "$TRIPLE" "-Zbuild-std=std,panic_abort" "$@")
    mkdir -p "$OUTDIR"
    R=$CARGO_TARGET_DIR/$TRIPLE/release
    cp "$R/crspace.exe" "$R/mlnx_hca_crspace.dll" "$R/libmlnx_hca_crspace.dll.a" "$R/libmlnx_hca_crspace.a" "$OUTDIR/"
    echo "$OUTDIR/crspace.exe"
else
    (cd "$ROOT" && /usr/bin/cargo check "${ARGS[@]}")
fi
key > "$LOCKDIR/fetched"

if [ "$(sha256sum < "$ROOT/Cargo.lock")" != "$lock_before" ]; then
    echo "check-windows.sh: $ROOT/Cargo.lock changed during the check" >&2
    exit 1
fi
log "ok in $((SECONDS - start)) s"
