#!/usr/bin/env bash
# Builds the two Windows folders (and a zip of each):
#
#   target/kit/mlnx_hca-windows/  the bundle users install from: the driver
#       (driver/, driver-legacy/), crspace.exe, mstflint's mcra.exe and
#       mstdump.exe over mlnx_hca (tools/mtcr) with their dump databases in
#       mstdump_dbs/, mlnx_hca_filter.exe, the C API for tool authors
#       (include/, lib/: mlnx_hca_crspace.dll, its import library, the static
#       library), the licenses, README.txt (README.md, "Register tools on
#       Windows")
#   target/kit/mlnx_hca-kit/      the acceptance kit for a throwaway Windows
#       10/11 VM, where acceptance.ps1 signs, installs, turns Driver Verifier
#       on and runs every check, leaving results.txt (README.md, "Driver
#       Verifier in a VM"): driver/, driver-legacy/, tools/ (install.exe,
#       uninstall.exe, client.exe x64, client32.exe x86, crspace.exe,
#       mcra.exe, mstdump.exe and mstdump_dbs/, mlnx_hca_filter.exe),
#       acceptance.ps1, README.txt
#
#   tools/kit/build.sh
# Every program is checked to import system DLLs only (a clean VM has
# nothing else). Then, on copies in target/kit/rehearsal, the signing is
# rehearsed with osslsigncode and a throwaway certificate (sign, verify), so
# that the PE checks can run on signed images too (tools/test.sh does), and
# acceptance.ps1 is parsed with a PowerShell grammar (kit-check.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/target/kit/mlnx_hca-kit
BUNDLE=$ROOT/target/kit/mlnx_hca-windows
REHEARSAL=$ROOT/target/kit/rehearsal
T=$ROOT/target/x86_64-pc-windows-msvc

"$ROOT/tools/need-debs.sh" gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 osslsigncode openssl binutils-mingw-w64-x86-64 zip

"$ROOT/tools/wdk-cross/build.sh" build-release >/dev/null
WDK_CROSS_FEATURES="driver legacy-pool" WDK_CROSS_TARGET_SUBDIR=legacy "$ROOT/tools/wdk-cross/build.sh" build-release >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT/driver" "$OUT/driver-legacy" "$OUT/tools"
cp "$T/release/mlnx_hca.sys" "$T/release/mlnx_hca.inf" "$OUT/driver/"
cp "$T/legacy/release/mlnx_hca.sys" "$T/legacy/release/mlnx_hca.inf" "$OUT/driver-legacy/"

CFLAGS=(-std=c11 -O2 -Wall -Wextra -Werror -static-libgcc)
W64=x86_64-w64-mingw32-gcc
W32=i686-w64-mingw32-gcc
$W64 "${CFLAGS[@]}" -o "$OUT/tools/install.exe" "$ROOT/tests/wine/install.c" -lsetupapi -lnewdev
$W64 "${CFLAGS[@]}" -o "$OUT/tools/uninstall.exe" "$ROOT/tests/wine/uninstall.c" -lsetupapi
CLIENT_LIBS=(-lntdll -lsetupapi -ladvapi32 -lcfgmgr32)
$W64 "${CFLAGS[@]}" -I "$ROOT/include" -o "$OUT/tools/client.exe" "$ROOT/tests/wine/client.c" "${CLIENT_LIBS[@]}"
$W32 "${CFLAGS[@]}" -I "$ROOT/include" -o "$OUT/tools/client32.exe" "$ROOT/tests/wine/client.c" "${CLIENT_LIBS[@]}"
"$ROOT/tools/filter/build.sh" "$OUT/tools" >/dev/null
# crspace.exe and the C API library; mcra.exe and mstdump.exe over it.
"$ROOT/tools/mtcr/build.sh" windows >/dev/null
MT=$ROOT/target/mtcr/windows
cp "$MT/lib/crspace.exe" "$MT/mcra.exe" "$MT/mstdump.exe" "$OUT/tools/"
# mstdump's databases of the HCAs mlnx_hca serves: ConnectX-2, -3, -3 Pro
# (mapped); Connect-IB, ConnectX-4 to -7, BlueField 1-3 (the gateway).
DBS="ConnectX2.csv ConnectX3.csv ConnectX3Pro.csv ConnectIB.csv ConnectX4.csv ConnectX4LX.csv ConnectX5.csv
ConnectX6.csv ConnectX6DX.csv ConnectX6LX.csv ConnectX7.csv BlueField.csv BlueField2.csv BlueField3.csv"
mkdir -p "$OUT/tools/mstdump_dbs"
for db in $DBS; do cp "$MT/mstdump_dbs/$db" "$OUT/tools/mstdump_dbs/"; done
cp "$HERE/acceptance.ps1" "$OUT/"
cp "$HERE/README.txt" "$OUT/"

# The users' bundle.
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/include" "$BUNDLE/lib" "$BUNDLE/mstdump_dbs"
cp -r "$OUT/driver" "$OUT/driver-legacy" "$BUNDLE/"
cp "$OUT/tools/crspace.exe" "$OUT/tools/mcra.exe" "$OUT/tools/mstdump.exe" "$OUT/tools/mlnx_hca_filter.exe" "$BUNDLE/"
cp "$OUT/tools/mstdump_dbs/"*.csv "$BUNDLE/mstdump_dbs/"
cp "$ROOT/include/mlnx_hca_ioctl.h" "$ROOT/include/mlnx_hca_crspace.h" "$BUNDLE/include/"
cp "$MT/lib/mlnx_hca_crspace.dll" "$MT/lib/libmlnx_hca_crspace.dll.a" "$MT/lib/libmlnx_hca_crspace.a" "$BUNDLE/lib/"
cp "$MT/COPYING.mstflint" "$BUNDLE/"
[ ! -f "$MT/LICENSE.mstflint" ] || cp "$MT/LICENSE.mstflint" "$BUNDLE/"
cp "$HERE/bundle-README.txt" "$BUNDLE/README.txt"
# The C API links as the bundle's README says: through the DLL's import
# library, and statically.
mkdir -p "$ROOT/target/kit/link"
$W64 "${CFLAGS[@]}" -DMLNX_HCA_CRSPACE_DLL -I "$BUNDLE/include" -o "$ROOT/target/kit/link/with-dll.exe" \
    "$ROOT/tools/crspace-c/tests/link_windows.c" -L "$BUNDLE/lib" -lmlnx_hca_crspace.dll
$W64 "${CFLAGS[@]}" -I "$BUNDLE/include" -o "$ROOT/target/kit/link/static.exe" \
    "$ROOT/tools/crspace-c/tests/link_windows.c" "$BUNDLE/lib/libmlnx_hca_crspace.a" -lntdll -luserenv -lws2_32
# Windows: CRLF line ends for the texts a person opens there.
sed -i 's/$/\r/' "$OUT/README.txt" "$BUNDLE/README.txt"

# Imports: system DLLs only.
SYSTEM_DLLS="kernel32.dll msvcrt.dll ntdll.dll setupapi.dll newdev.dll advapi32.dll cfgmgr32.dll
user32.dll ws2_32.dll bcrypt.dll userenv.dll api-ms-win-core-synch-l1-2-0.dll oleaut32.dll ole32.dll
shell32.dll crypt32.dll secur32.dll bcryptprimitives.dll"
for exe in "$OUT"/tools/*.exe "$BUNDLE"/*.exe "$BUNDLE"/lib/*.dll "$ROOT"/target/kit/link/static.exe; do
    while read -r dll; do
        dll=$(tr '[:upper:]' '[:lower:]' <<<"$dll")
        grep -qw -- "$dll" <<<"$SYSTEM_DLLS" || { echo "kit: $(basename "$exe") imports $dll, which a clean Windows lacks" >&2; exit 1; }
    done < <(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p')
done

# The signing, rehearsed on copies: a throwaway certificate, an embedded
# Authenticode signature (what acceptance.ps1 does with
# Set-AuthenticodeSignature), verified against that certificate.
rm -rf "$REHEARSAL"
mkdir -p "$REHEARSAL/default" "$REHEARSAL/legacy"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mlnx_hca kit rehearsal (throwaway)" \
    -addext "extendedKeyUsage=codeSigning" -keyout "$REHEARSAL/key.pem" -out "$REHEARSAL/cert.pem" 2>/dev/null
for variant in default legacy; do
    src=$OUT/driver/mlnx_hca.sys
    [ "$variant" = legacy ] && src=$OUT/driver-legacy/mlnx_hca.sys
    osslsigncode sign -certs "$REHEARSAL/cert.pem" -key "$REHEARSAL/key.pem" -h sha256 \
        -n "mlnx_hca" -in "$src" -out "$REHEARSAL/$variant/mlnx_hca.sys" >/dev/null
    cp "$(dirname "$src")/mlnx_hca.inf" "$REHEARSAL/$variant/"
    osslsigncode verify -CAfile "$REHEARSAL/cert.pem" -in "$REHEARSAL/$variant/mlnx_hca.sys" >"$REHEARSAL/$variant/verify.txt" 2>&1 \
        || { cat "$REHEARSAL/$variant/verify.txt" >&2; echo "kit: the signed $variant image does not verify" >&2; exit 1; }
done

# acceptance.ps1 parsed with a PowerShell grammar (tree-sitter's; there is
# no PowerShell for Debian): syntax only.
VENV=${KIT_VENV:-$HOME/.cache/mlnx_hca-kit/venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import tree_sitter, tree_sitter_powershell' 2>/dev/null; then
    rm -rf "$VENV"
    # Debian's python3 needs python3-venv for this; another python3 (pyenv's)
    # has it built in.
    python3 -m venv "$VENV" 2>/dev/null || {
        "$ROOT/tools/need-debs.sh" python3-venv
        /usr/bin/python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install --quiet tree-sitter==0.26.1 tree-sitter-powershell==0.26.4
fi
"$VENV/bin/python" "$HERE/kit-check.py" "$OUT/acceptance.ps1"

(cd "$(dirname "$OUT")" && rm -f mlnx_hca-kit.zip mlnx_hca-windows.zip \
    && zip -qr mlnx_hca-kit.zip mlnx_hca-kit && zip -qr mlnx_hca-windows.zip mlnx_hca-windows)
echo "$BUNDLE"
echo "$OUT"
