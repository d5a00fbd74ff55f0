#!/usr/bin/env bash
# Builds the Windows acceptance kit: one folder to copy into a Windows 10/11
# VM, where acceptance.ps1 signs, installs, turns Driver Verifier on and runs
# every check, leaving results.txt (README.md, "Driver Verifier in a VM").
#
#   tools/kit/build.sh [DIR]        # default: target/kit/mlnx_hca-kit
#
# What it holds:
#   driver/         mlnx_hca.sys (Windows 10 2004 and later) and mlnx_hca.inf
#   driver-legacy/  the legacy-pool image (Windows 8 to 10 1909) and its INF
#   tools/          install.exe, uninstall.exe (SetupAPI, as under Wine),
#                   client.exe (x64) and client32.exe (x86: a WOW64 caller),
#                   mlnx_hca_filter.exe, crspace.exe
#   acceptance.ps1, README.txt
# Every program is checked to import system DLLs only (a clean VM has
# nothing else). Then, on copies in target/kit/rehearsal, the signing is
# rehearsed with osslsigncode and a throwaway certificate (sign, verify), so
# that the PE checks can run on signed images too (tools/test.sh does), and
# acceptance.ps1 is parsed with a PowerShell grammar (kit-check.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$ROOT/target/kit/mlnx_hca-kit}
REHEARSAL=$ROOT/target/kit/rehearsal
T=$ROOT/target/x86_64-pc-windows-msvc

"$ROOT/tools/need-debs.sh" gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 osslsigncode openssl binutils-mingw-w64-x86-64

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
"$ROOT/tools/crspace/check-windows.sh" build "$OUT/tools" >/dev/null
cp "$HERE/acceptance.ps1" "$OUT/"
cp "$HERE/README.txt" "$OUT/"
# The VM runs Windows: CRLF line ends for the texts a person opens there.
sed -i 's/$/\r/' "$OUT/README.txt"

# Imports: system DLLs only.
SYSTEM_DLLS="kernel32.dll msvcrt.dll ntdll.dll setupapi.dll newdev.dll advapi32.dll cfgmgr32.dll
user32.dll ws2_32.dll bcrypt.dll userenv.dll api-ms-win-core-synch-l1-2-0.dll oleaut32.dll ole32.dll
shell32.dll crypt32.dll secur32.dll bcryptprimitives.dll"
for exe in "$OUT"/tools/*.exe; do
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
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet tree-sitter==0.26.1 tree-sitter-powershell==0.26.4
fi
"$VENV/bin/python" "$HERE/kit-check.py" "$OUT/acceptance.ps1"

echo "$OUT"
