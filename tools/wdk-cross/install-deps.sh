#!/bin/sh
# install-deps.sh -- install the Debian 12 packages that the Linux cross build of
# the mlnx_hca WDM driver needs, and nothing else.
#
# Idempotent and quick on a second run (tools/need-debs.sh: every package is
# first looked up with dpkg-query; if all are installed nothing touches the
# network).
#
#   rustc-web cargo-web      Debian's Rust 1.96 (rustup's toolchain here has no
#   rust-web-src             Windows target and no rust-src); the library source
#   rust-web-clippy          is what -Zbuild-std=core,alloc compiles.
#   clang libclang-dev       libclang for wdk-sys's bindgen, clang's resource dir
#   clang-14                 C compiler for the __try/__except shim (cc crate)
#   lld-22                   lld-link-22: accepts /KERNEL, /MAPINFO:EXPORTS,
#                            /INTEGRITYCHECK and writes the PE checksum (/RELEASE)
#   llvm                     llvm-dlltool, llvm-nm, llvm-ar, llvm-lib
#   mingw-w64-x86-64-dev     the DDK headers and export lists the synthetic
#                            WDK is assembled from
#   python3 python3-pefile   patch-wdk-build.py, inspect-pe.py (Debian's python3:
#                            /usr/bin/python3 sees python3-pefile; a pyenv
#                            python3 earlier on PATH does not)
#
# About 180 MiB to download on a fresh Debian 12 machine.
set -eu

PKGS="rustc-web cargo-web rust-web-src rust-web-clippy clang clang-14 libclang-dev
lld-22 llvm mingw-w64-x86-64-dev python3 python3-pefile"

# shellcheck disable=SC2086  # word splitting of the package list is intended
exec "$(dirname "$0")/../need-debs.sh" $PKGS
