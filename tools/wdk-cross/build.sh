#!/bin/bash
# build.sh -- cross-build the mlnx_hca WDM driver (.sys) on Debian 12.
#
# Usage: tools/wdk-cross/build.sh [check|clippy|build|build-release|all] [extra cargo args...]
#   default action: build. Extra arguments go to every cargo command run
#   (`build.sh build -v`); arguments after `--` go to clippy only
#   (`build.sh all -- -D warnings`).
#
# Environment:
#   MLNX_HCA_ROOT      crate/workspace to build (default: two levels above this
#                      script, i.e. the repository root)
#   WDK_CROSS_HOME     state directory (default ~/.cache/wdk-cross): private
#                      CARGO_HOME, synthetic WDK, patched wdk-build, lockfile
#   WDK_CROSS_PACKAGE  package to build (default mlnx_hca)
#   WDK_CROSS_FEATURES cargo features (default "driver"; "driver legacy-pool"
#                      for the image without Windows 10 2004+ imports)
#   WDK_CROSS_TARGET_SUBDIR  publish under target/<triple>/<subdir>/<profile>/
#                      instead of target/<triple>/<profile>/ (e.g. "legacy",
#                      so a second feature set does not overwrite the first)
#   RUSTFLAGS          appended to the target's rustflags (see below)
#
# Output: target/x86_64-pc-windows-msvc/<debug|release>/mlnx_hca.sys under the
# repository root (cargo's own output is in target/wdk-cross/), and next to it
# mlnx_hca.inf, stamped from <root>/mlnx_hca.inx by stamp-inf.py.
#
# How it works (details in README.md):
#   * Debian's rustc/cargo 1.96 (rustc-web, cargo-web) with rust-web-src and
#     -Zbuild-std=core,alloc, enabled by RUSTC_BOOTSTRAP=1: rustup's toolchain
#     here has no Windows target and no rust-src. rustup is never touched.
#   * WDKContentRoot = a synthetic WDK (make-wdk.sh) from mingw-w64 headers.
#   * wdk-build 0.6.0 patched for a Linux host (patch-wdk-build.py), used via
#     [patch.crates-io] in the private $CARGO_HOME/config.toml: it must be a
#     config file seen by every cargo process, because wdk-build runs
#     `cargo metadata` from inside build scripts and that nested cargo has to
#     resolve the same graph.
#   * The repository's Cargo.lock is never written (see "Lockfile" below).
#   * lld-link-22 links; /RELEASE writes the PE checksum. wdk-build's build
#     script emits /DRIVER /KERNEL /ENTRY:DriverEntry /INTEGRITYCHECK etc.
set -euo pipefail
trap 'echo "build.sh: failed (line $LINENO: $BASH_COMMAND)" >&2' ERR

ACTION=${1:-build}
[ $# -gt 0 ] && shift
EXTRA=("$@")
case $ACTION in
    check|clippy|build|build-release|all) ;;
    -h|--help|help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown action '$ACTION' (check|clippy|build|build-release|all)" >&2; exit 2 ;;
esac

SCRIPTS=$(dirname "$(realpath "$0")")
ROOT=$(realpath "${MLNX_HCA_ROOT:-$SCRIPTS/../..}")
STATE=${WDK_CROSS_HOME:-$HOME/.cache/wdk-cross}
PACKAGE=${WDK_CROSS_PACKAGE:-mlnx_hca}
FEATURES=${WDK_CROSS_FEATURES:-driver}
SUBDIR=${WDK_CROSS_TARGET_SUBDIR:-}
case $SUBDIR in */*|.|..) echo "build.sh: WDK_CROSS_TARGET_SUBDIR must be one plain name" >&2; exit 2 ;; esac
TRIPLE=x86_64-pc-windows-msvc
TRIPLE_ENV=X86_64_PC_WINDOWS_MSVC   # for CARGO_TARGET_<triple>_*
WDK_VERSION=10.0.26100.0
WDK_BUILD_VERSION=0.6.0             # the version patch-wdk-build.py is written for

[ -f "$ROOT/Cargo.toml" ] || { echo "build.sh: no Cargo.toml in $ROOT" >&2; exit 1; }
mkdir -p "$STATE"
START=$SECONDS
log() { echo "wdk-cross: $*" >&2; }

# The user's RUSTFLAGS would replace (not extend) target.<triple>.rustflags,
# dropping +crt-static, which wdk-build insists on; fold it in instead.
USER_RUSTFLAGS="${RUSTFLAGS:-}"
# Nothing from a surrounding cargo/rustup invocation may leak in.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER \
      RUSTUP_TOOLCHAIN CARGO_TARGET_DIR CARGO_BUILD_TARGET CARGO_BUILD_TARGET_DIR \
      CARGO_MANIFEST_DIR CARGO_RESOLVER_LOCKFILE_PATH

# ------------------------------------------------------------------ 1. packages
# Quick local check; install-deps.sh (apt) only when something is missing.
need_deps=0
for f in /usr/bin/rustc /usr/bin/cargo /usr/bin/cargo-clippy /usr/bin/clippy-driver \
         /usr/lib/rustlib/src/rust/library/core/Cargo.toml /usr/bin/clang-14 \
         /usr/lib/llvm-14/lib/libclang.so /usr/bin/lld-link-22 /usr/bin/llvm-dlltool \
         /usr/bin/llvm-lib /usr/bin/llvm-nm /usr/bin/llvm-ar \
         /usr/x86_64-w64-mingw32/include/ddk/wdm.h /usr/bin/python3; do
    [ -e "$f" ] || { need_deps=1; break; }
done
[ $need_deps = 0 ] && /usr/bin/python3 -c 'import pefile' 2>/dev/null || need_deps=1
if [ $need_deps = 1 ]; then
    log "installing Debian packages"
    "$SCRIPTS/install-deps.sh"
fi

# ------------------------------------------------------------------ 2. toolchain env
# Debian's toolchain first on PATH (cargo-clippy/clippy-driver are looked up
# there; rustup's proxies in ~/.cargo/bin would pick the wrong compiler).
export PATH=/usr/bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
CARGO=/usr/bin/cargo
export RUSTC_BOOTSTRAP=1          # -Zbuild-std, -Zlockfile-path on a stable toolchain
export CARGO_HOME=$STATE/cargo-home
mkdir -p "$CARGO_HOME"

# ------------------------------------------------------------------ 3. synthetic WDK
WDK=$STATE/wdk
if [ "$(cat "$WDK/.stamp" 2>/dev/null)" != "$("$SCRIPTS/make-wdk.sh" --stamp "$WDK_VERSION")" ]; then
    log "assembling the WDK tree in $WDK"
    "$SCRIPTS/make-wdk.sh" "$WDK" "$WDK_VERSION"
fi

# ------------------------------------------------------------------ 4. patched wdk-build
PATCHED=$STATE/patched/wdk-build-$WDK_BUILD_VERSION
CONFIG=$CARGO_HOME/config.toml
patch_hash=$(sha256sum "$SCRIPTS/patch-wdk-build.py" | cut -d' ' -f1)
if [ "$(cat "$PATCHED/.wdk-cross-patched" 2>/dev/null)" != "$patch_hash" ]; then
    log "preparing patched wdk-build $WDK_BUILD_VERSION"
    find_crate() { find "$CARGO_HOME/registry/cache" -name "wdk-build-$WDK_BUILD_VERSION.crate" 2>/dev/null | head -n1 || true; }
    crate=$(find_crate)
    if [ -z "$crate" ]; then
        # Download the pristine crate through a throw-away manifest (no
        # [patch] yet: a config pointing at a missing path would fail).
        rm -f "$CONFIG"
        boot=$STATE/bootstrap
        mkdir -p "$boot"
        printf '[package]\nname = "wdk-cross-bootstrap"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n[lib]\npath = "lib.rs"\n[dependencies]\nwdk-build = "=%s"\n' \
            "$WDK_BUILD_VERSION" > "$boot/Cargo.toml"
        : > "$boot/lib.rs"
        "$CARGO" fetch --quiet --manifest-path "$boot/Cargo.toml"
        crate=$(find_crate)
        [ -n "$crate" ] || { echo "build.sh: wdk-build-$WDK_BUILD_VERSION.crate not downloaded" >&2; exit 1; }
    fi
    # Unpack the checksum-verified .crate (pristine by construction), patch,
    # then swap in the finished directory.
    rm -rf "$PATCHED.tmp" && mkdir -p "$PATCHED.tmp"
    tar -xzf "$crate" -C "$PATCHED.tmp" --strip-components=1
    /usr/bin/python3 "$SCRIPTS/patch-wdk-build.py" "$PATCHED.tmp" >/dev/null
    rm -rf "$PATCHED" && mv "$PATCHED.tmp" "$PATCHED"
fi

# ------------------------------------------------------------------ 5. cargo config
# Only what must be visible to *every* cargo process (including the nested
# `cargo metadata` of wdk-build) lives in the config file; the rest is env.
# -Zbuild-std compiles compiler_builtins with the dev profile; unoptimised it
# references fma/fmaf from the MSVC CRT, which a driver does not link.
new_config="# Generated by tools/wdk-cross/build.sh (rewritten when it differs).
[patch.crates-io]
wdk-build = { path = \"$PATCHED\" }

[profile.dev.package.compiler_builtins]
opt-level = 3
debug-assertions = false
overflow-checks = false
"
[ "$(cat "$CONFIG" 2>/dev/null)" = "$new_config" ] || printf '%s' "$new_config" > "$CONFIG"

# ------------------------------------------------------------------ 6. lockfile
# The [patch] turns wdk-build into a path package, which the lockfile records
# without `source`/`checksum`; the host `cargo test` (rustup, no patch) records
# it from crates.io. Sharing one Cargo.lock, each build would rewrite it (the
# cross build even from inside build scripts, through wdk-build's nested
# `cargo metadata`). So the cross build uses its own lockfile through cargo's
# `resolver.lockfile-path` (unstable, enabled like build-std): set through the
# environment it reaches the nested cargo processes as well. It is seeded from
# the repository's Cargo.lock whenever that changes, so both builds use the
# same dependency versions; the repository file is only read.
#   Staging a copy of the sources instead would also work, but error messages
#   and the editor's paths would then point into the copy.
# The private lockfile must not be inside the repository: wdk-build takes the
# first directory above OUT_DIR holding a Cargo.lock for the workspace root.
LOCKDIR=$STATE/locks/$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)
mkdir -p "$LOCKDIR"
if [ ! -f "$ROOT/Cargo.lock" ]; then
    # wdk-build needs $ROOT/Cargo.lock to exist (see above). Create it as the
    # host build would, with the ordinary cargo (no patch, no private home).
    host_cargo=$(PATH=${PATH#/usr/bin:} command -v cargo || true)
    log "no Cargo.lock in $ROOT: generating it with ${host_cargo:-?}"
    [ -n "$host_cargo" ] || { echo "build.sh: no host cargo to create Cargo.lock" >&2; exit 1; }
    (cd "$ROOT" && env -u CARGO_HOME -u RUSTC -u RUSTDOC -u RUSTC_BOOTSTRAP "$host_cargo" generate-lockfile)
fi
if ! cmp -s "$ROOT/Cargo.lock" "$LOCKDIR/seed.lock"; then
    cp "$ROOT/Cargo.lock" "$LOCKDIR/seed.lock"
    cp "$ROOT/Cargo.lock" "$LOCKDIR/Cargo.lock"
fi
echo "$ROOT" > "$LOCKDIR/root"
export CARGO_UNSTABLE_LOCKFILE_PATH=true
export CARGO_RESOLVER_LOCKFILE_PATH=$LOCKDIR/Cargo.lock

# ------------------------------------------------------------------ 7. build env
# Inside the repository (see the lockfile note): target/wdk-cross keeps the
# cross build off the host build's directory lock and fingerprints.
export CARGO_TARGET_DIR=$ROOT/target/wdk-cross
export WDKContentRoot=$WDK
# bindgen (wdk-sys): libclang 14; -fno-ms-compatibility keeps the MSVC target
# (MSVC enum/bitfield layout) while mingw's headers keep their GNU paths;
# amxintrin.h of clang 14 does not parse in this mode and is not needed.
export LIBCLANG_PATH=/usr/lib/llvm-14/lib
CLANG_RESOURCE_DIR=$(clang-14 -print-resource-dir)
export BINDGEN_EXTRA_CLANG_ARGS_x86_64_pc_windows_msvc="-fno-ms-compatibility -resource-dir=$CLANG_RESOURCE_DIR -D__AMXINTRIN_H"
# C shim (cc crate in build.rs): clang 14 emits COFF with SEH unwind data
# (__try/__except needs -fms-extensions only). -fno-ms-compatibility as for
# bindgen: with -fms-compatibility mingw's intrin.h/mmintrin.h do not compile,
# so a shim including <ntddk.h> would fail (a header-free shim would not care).
# The -Wno-* silence what mingw's headers trigger in this mode; cc prints each
# compiler warning as a cargo warning.
export CC_x86_64_pc_windows_msvc=clang-14
export CFLAGS_x86_64_pc_windows_msvc="--target=x86_64-pc-windows-msvc -fms-extensions -fno-ms-compatibility -Wno-pragma-pack -Wno-incompatible-library-redeclaration -Wno-ignored-attributes -Wno-ignored-pragma-intrinsic -Wno-microsoft"
export AR_x86_64_pc_windows_msvc=llvm-lib
# No include paths here: build.rs takes them (and the _KERNEL_MODE/_AMD64_
# defines) from wdk_build::Config, which works the same with the eWDK.
# Linker and flags for the driver target.
export CARGO_TARGET_${TRIPLE_ENV}_LINKER=lld-link-22
export CARGO_TARGET_${TRIPLE_ENV}_RUSTFLAGS="-C target-feature=+crt-static -C link-arg=/RELEASE${USER_RUSTFLAGS:+ $USER_RUSTFLAGS}"

# ------------------------------------------------------------------ 8. offline when possible
# Offline once a build succeeded with the same manifests, lockfile and cargo
# config (see cargo-offline.sh); WDK_CROSS_OFFLINE=0/1 forces either way.
# shellcheck source-path=SCRIPTDIR source=cargo-offline.sh
. "$SCRIPTS/cargo-offline.sh"
choose_offline "${WDK_CROSS_OFFLINE:-auto}" "$LOCKDIR/fetched" "$(fetch_key "$ROOT" "$LOCKDIR/Cargo.lock" "$CONFIG")"

COMMON=(--manifest-path "$ROOT/Cargo.toml" -p "$PACKAGE" --target "$TRIPLE"
        "-Zbuild-std=core,alloc" --features "$FEATURES")
run() {
    local t=$SECONDS
    log "cargo $*${CARGO_NET_OFFLINE:+ (offline)}"
    (cd "$ROOT" && "$CARGO" "$@")
    log "  done in $((SECONDS - t)) s"
    # cargo may have updated the lockfile: key it again before recording
    fetch_key "$ROOT" "$LOCKDIR/Cargo.lock" "$CONFIG" > "$LOCKDIR/fetched"
}
# Extra arguments go to every cargo command; what follows a `--` (lint
# options such as `-D warnings`) only to clippy.
cargo_cmd() { # SUBCOMMAND [cargo args]
    local sub=$1; shift
    local pre=() post=() seen=0
    for a in "${EXTRA[@]+"${EXTRA[@]}"}"; do
        if [ $seen = 0 ] && [ "$a" = -- ]; then seen=1; continue; fi
        if [ $seen = 0 ]; then pre+=("$a"); else post+=("$a"); fi
    done
    if [ $seen = 1 ] && [ "$sub" = clippy ]; then
        run "$sub" "${COMMON[@]}" "$@" "${pre[@]+"${pre[@]}"}" -- "${post[@]}"
    else
        run "$sub" "${COMMON[@]}" "$@" "${pre[@]+"${pre[@]}"}"
    fi
}

# Copy <target>/<profile>/<crate>.dll to the stable .sys location and check it;
# stamp <crate>.inx (if the crate has one) into <crate>.inf beside it.
publish() { # PROFILE
    local name=${PACKAGE//-/_}
    local src=$CARGO_TARGET_DIR/$TRIPLE/$1/$name.dll
    local dst_dir=$ROOT/target/$TRIPLE/${SUBDIR:+$SUBDIR/}$1
    [ -f "$src" ] || { echo "build.sh: $src was not produced" >&2; exit 1; }
    mkdir -p "$dst_dir"
    cmp -s "$src" "$dst_dir/$name.sys" || cp "$src" "$dst_dir/$name.sys"
    [ ! -f "${src%.dll}.pdb" ] || cmp -s "${src%.dll}.pdb" "$dst_dir/$name.pdb" \
        || cp "${src%.dll}.pdb" "$dst_dir/$name.pdb"
    /usr/bin/python3 "$SCRIPTS/inspect-pe.py" --check "$dst_dir/$name.sys" >/dev/null
    if [ -f "$ROOT/$name.inx" ]; then
        /usr/bin/python3 "$SCRIPTS/stamp-inf.py" --arch amd64 "$ROOT/$name.inx" "$dst_dir/$name.inf"
    fi
    echo "$dst_dir/$name.sys"
}

case $ACTION in
    check)         cargo_cmd check ;;
    clippy)        cargo_cmd clippy ;;
    build)         cargo_cmd build;  publish debug ;;
    build-release) cargo_cmd build --release; publish release ;;
    all)
        cargo_cmd check
        cargo_cmd clippy
        cargo_cmd build; publish debug
        cargo_cmd build --release; publish release ;;
esac
log "total $((SECONDS - START)) s"
