#!/usr/bin/env bash
# Builds mstflint's register tools, mcra and mstdump, from Debian's mstflint
# source package, unmodified, linked with our mtcr backend
# (mtcr_mlnx_hca.c) over the crspace C API: for Linux (against the simulated
# HCA) and for Windows (against the driver, x86_64-w64-mingw32).
#
#   tools/mtcr/build.sh [linux|windows|all]      # default all; output in target/mtcr/
#
# The source: `apt-get source mstflint=$MSTFLINT_VERSION`, from a deb-src
# line derived from this machine's Debian source (its URIs and keyring),
# with apt's lists and cache in target/mtcr/apt so that the machine's apt
# state is not touched. Suite sid: the bookworm source package (4.21, the
# version of Debian's mstmcra/mstregdump binaries this project checks
# against) is not served by the mirror this project's machines reach (its
# .orig.tar.gz answers 404), and sid's is. apt verifies every file against
# the archive's signed index. Nothing of mstflint is kept in the repository;
# what the build adds are flags and two generated headers of ours
# (gitversion.h, tools_version.h from its .in), as mstflint's configure would.
#
# Output (target/mtcr/):
#   linux/mcra, linux/mstdump            CSV database: the source's mstdump_dbs
#   windows/mcra.exe, windows/mstdump.exe, windows/mstdump_dbs/*.csv,
#   windows/COPYING (mstflint's license)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WHAT=${1:-all}
MSTFLINT_VERSION=${MSTFLINT_VERSION:-4.33.0+1-1.1}
OUT=$ROOT/target/mtcr
HOST=(--locked --config 'profile.dev.panic="unwind"' --config 'profile.release.panic="unwind"')
log() { echo "mtcr: $*" >&2; }

"$ROOT/tools/need-debs.sh" dpkg-dev gcc
[ "$WHAT" = linux ] || "$ROOT/tools/need-debs.sh" gcc-mingw-w64-x86-64

# ------------------------------------------------------------------ the source
SRC=$OUT/src/mstflint-$MSTFLINT_VERSION
if [ ! -f "$SRC/.unpacked" ]; then
    APTDIR=$OUT/apt
    rm -rf "$APTDIR" "$OUT/src"
    mkdir -p "$APTDIR/etc/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$OUT/src/get"
    # The machine's Debian archive and keyring (deb822 or one-line form).
    uri=$(awk '/^URIs:/ && /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || { echo "mtcr: no Debian archive in this machine's apt sources" >&2; exit 1; }
    [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'Types: deb-src\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: %s\n' "$uri" "$key" \
        > "$APTDIR/etc/sources.list.d/mstflint-src.sources"
    APT=(apt-get -q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$APTDIR/etc/sources.list.d"
         -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache" -o APT::Sandbox::User=root)
    log "apt-get source mstflint=$MSTFLINT_VERSION (deb-src $uri sid)"
    "${APT[@]}" update >/dev/null
    (cd "$OUT/src/get" && "${APT[@]}" source --only-source "mstflint=$MSTFLINT_VERSION" >/dev/null)
    mv "$OUT/src/get/mstflint-"*/ "$SRC"
    touch "$SRC/.unpacked"
fi

# ------------------------------------------------------------------ what to compile
# Generated as mstflint's configure would: the version header from its .in,
# and the git hash header its release tarball carries.
GEN=$OUT/gen
mkdir -p "$GEN/common"
echo '#define TOOLS_GIT_SHA "N/A"' > "$GEN/gitversion.h"
sed 's/@TOOLS_GIT_SHA@/N\/A/' "$SRC/common/tools_version.h.in" > "$GEN/common/tools_version.h"
cp "$GEN/common/tools_version.h" "$GEN/tools_version.h"
VERSION_STR="mstflint ${MSTFLINT_VERSION%%+*} (mtcr: mlnx_hca)"

# name:extra-flags:sources (the tools' Makefile.am, and the libraries they link)
MCRA=(small_utils/mcra.c)
MSTDUMP=(mstdump/crd_main/mstdump.c mstdump/crd_lib/crdump.c dev_mgt/tools_dev_types.c reg_access/reg_access.c)
# The register layouts reg_access.c needs, as a library the linker picks from.
LAYOUTS=()
for f in "$SRC"/tools_layouts/*.c; do LAYOUTS+=("tools_layouts/$(basename "$f")"); done

# build PLATFORM CC AR EXE CSVDIR-FLAG LIBS...
build() {
    local platform=$1 cc=$2 ar=$3 exe=$4 datapath=$5; shift 5
    local obj=$OUT/$platform/obj dir=$OUT/$platform
    rm -rf "$obj"; mkdir -p "$obj"
    local incs=(-DMST_UL -I"$GEN" -I"$SRC/include/mtcr_ul" -I"$SRC" -I"$SRC/common" -I"$SRC/dev_mgt"
                -I"$SRC/mstdump/crd_lib" -I"$SRC/reg_access" -I"$SRC/tools_layouts" -I"$ROOT/include")
    [ "$platform" = windows ] && incs+=(-D__WIN__)
    # mstflint's sources as its Makefiles build them (their warnings are theirs).
    local flags=(-std=gnu17 -O2 -w "-DMSTFLINT_VERSION_STR=\"$VERSION_STR\"" "${incs[@]}")
    local f o objs=()
    for f in "${MCRA[@]}" "${MSTDUMP[@]}"; do
        o=$obj/$(basename "${f%.c}").o
        "$cc" "${flags[@]}" "$datapath" -DMSTDUMP_NAME='"mstdump"' -DDEV_EXAMPLE='"mlnx_hca0"' -c "$SRC/$f" -o "$o"
    done
    for f in "${LAYOUTS[@]}"; do
        o=$obj/layout_$(basename "${f%.c}").o
        "$cc" "${flags[@]}" -c "$SRC/$f" -o "$o" && objs+=("$o")
    done
    "$ar" rcs "$obj/liblayouts.a" "${objs[@]}"
    # Ours, with warnings on.
    "$cc" -std=gnu17 -O2 -Wall -Wextra -Werror "${incs[@]}" -c "$HERE/mtcr_mlnx_hca.c" -o "$obj/mtcr_mlnx_hca.o"
    "$cc" -o "$dir/mcra$exe" "$obj/mcra.o" "$obj/mtcr_mlnx_hca.o" "$@"
    "$cc" -o "$dir/mstdump$exe" "$obj/mstdump.o" "$obj/crdump.o" "$obj/tools_dev_types.o" "$obj/reg_access.o" \
        "$obj/liblayouts.a" "$obj/mtcr_mlnx_hca.o" "$@"
    log "$dir/mcra$exe $dir/mstdump$exe"
}

if [ "$WHAT" != windows ]; then
    cargo build "${HOST[@]}" --release -p mlnx_hca_crspace --lib >/dev/null 2>&1 \
        || cargo build "${HOST[@]}" --release -p mlnx_hca_crspace --lib
    build linux gcc ar "" "-DDATA_PATH=\"$SRC/mstdump/mstdump_dbs\"" \
        "$ROOT/target/release/libmlnx_hca_crspace.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl
fi
if [ "$WHAT" != linux ]; then
    LIB=$OUT/windows/lib
    "$ROOT/tools/crspace/check-windows.sh" build "$LIB" >/dev/null
    build windows x86_64-w64-mingw32-gcc x86_64-w64-mingw32-ar .exe "-DDATA_PATH=\"mstdump_dbs\"" \
        "$LIB/libmlnx_hca_crspace.a" -static-libgcc -lws2_32 -lntdll -luserenv -lkernel32 -ladvapi32
    mkdir -p "$OUT/windows/mstdump_dbs"
    cp "$SRC"/mstdump/mstdump_dbs/*.csv "$OUT/windows/mstdump_dbs/"
    cp "$SRC/COPYING" "$OUT/windows/COPYING.mstflint"
    [ ! -f "$SRC/LICENSE" ] || cp "$SRC/LICENSE" "$OUT/windows/LICENSE.mstflint"
fi
