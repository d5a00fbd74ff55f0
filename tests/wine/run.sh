#!/usr/bin/env bash
# Runs the real mlnx_hca.sys under Wine's kernel-driver host and drives it
# from a real Windows program (client.c, built against include/ only).
#
#   tests/wine/run.sh SYS INF
#
# SYS must be the legacy-pool build (Wine 8 exports neither ExAllocatePool2
# nor MmMapIoSpaceEx); INF the stamped INF. A throwaway Wine prefix is made
# under $TMPDIR and removed afterwards (KEEP_WINE_PREFIX=1 keeps it).
# Steps: remove stale instances, install the root test device
# (root\mlnx_hca_sim) from the INF, run the conformance client, run it again
# exiting without closing its handles; install the simulated ConnectX-4
# (root\mlnx_hca_sim4) and run the gateway client on it; install a
# flash-recovery ConnectX-4 id (whose start must fail: no PCI bus here);
# mstflint's tools; uninstall, stop the service; then the
# driver's own debug output (DbgPrint, in the Wine log) must show the device
# started, the vanished client's contexts freed, REMOVE_DEVICE, unload, and
# no outstanding pool allocation. Last, filter.sh runs mlnx_hca_filter.exe
# against fake HCAs in the same prefix.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SYS=$(realpath "${1:?usage: run.sh SYS INF}")
INF=$(realpath "${2:?usage: run.sh SYS INF}")

"$ROOT/tools/need-debs.sh" wine wine64 gcc-mingw-w64-x86-64
# WINE_WOW64=1: also the 32-bit client (a WOW64 caller), which needs Debian's
# wine32:i386 (multiarch) in the prefix. Off by default: this machine's
# mirror cannot install wine32 today (README, "What has been run").
WOW64=${WINE_WOW64:-0}
[ "$WOW64" = 1 ] && "$ROOT/tools/need-debs.sh" gcc-mingw-w64-i686 wine32:i386

# Wine can hang (a driver that never completes an IRP, a wineserver that
# never idles): every Wine step has a time limit, so that a hang fails this
# run with a message instead of stalling CI. The limits are generous: a
# fresh prefix takes about 20 s, the whole run under a minute.
WINE_LIMIT=${WINE_LIMIT:-600}
exec 3>&2 # the message reaches the terminal even when the step's stderr is redirected
limited() { # limited WHAT COMMAND...: run COMMAND, failing loudly after WINE_LIMIT seconds
  local what=$1 rc=0; shift
  timeout --kill-after=10 "$WINE_LIMIT" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "wine: $what did not finish within $WINE_LIMIT s" >&3; fi
  return "$rc"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlnx_hca-wine.XXXXXX")
export WINEPREFIX=$WORK/prefix WINEARCH=win64 WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
cleanup() {
  wineserver -k >/dev/null 2>&1 || true
  if [ "${KEEP_WINE_PREFIX:-0}" = 1 ]; then echo "prefix kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

CC=x86_64-w64-mingw32-gcc
CFLAGS=(-std=c11 -O2 -Wall -Wextra -Werror)
BIN=$WORK/bin; mkdir -p "$BIN"
$CC "${CFLAGS[@]}" -o "$BIN/install.exe" "$HERE/install.c" -lsetupapi -lnewdev
$CC "${CFLAGS[@]}" -o "$BIN/uninstall.exe" "$HERE/uninstall.c" -lsetupapi
# The client sees nothing of the driver but the public header.
$CC "${CFLAGS[@]}" -I "$ROOT/include" -o "$BIN/client.exe" "$HERE/client.c" -lntdll -lsetupapi -ladvapi32 -lcfgmgr32
[ "$WOW64" = 1 ] && i686-w64-mingw32-gcc "${CFLAGS[@]}" -static-libgcc -I "$ROOT/include" -o "$BIN/client32.exe" \
  "$HERE/client.c" -lntdll -lsetupapi -ladvapi32 -lcfgmgr32
$CC "${CFLAGS[@]}" -o "$BIN/sddl.exe" "$HERE/sddl.c" -ladvapi32
$CC "${CFLAGS[@]}" -o "$BIN/fakehca.exe" "$HERE/fakehca.c" -lsetupapi
"$ROOT/tools/filter/build.sh" "$BIN" >/dev/null
# The tools built from Rust import bcryptprimitives.dll, which Wine 8 lacks:
# a stand-in for this prefix only (bcryptprimitives.c).
$CC "${CFLAGS[@]}" -shared -o "$BIN/bcryptprimitives.dll" "$HERE/bcryptprimitives.c" "$HERE/bcryptprimitives.def" -ladvapi32
# mstflint's mcra and mstdump with our mtcr backend, and crspace.exe.
"$ROOT/tools/mtcr/build.sh" windows >/dev/null
MT=$ROOT/target/mtcr/windows

# An administrator grants read access to two groups (Users, Performance Log
# Users) in the registry value the driver reads at start; Wine's own SDDL
# conversion of the descriptor the driver should apply is the reference.
GRANT='S-1-5-32-545;S-1-5-32-559'
SDDL='D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;S-1-5-32-545)(A;;FR;;;S-1-5-32-559)'

echo "wine: new prefix"
t=$SECONDS
limited "wineboot" wineboot -i >/dev/null 2>&1
limited "wineserver after wineboot" wineserver -w
echo "wine: prefix ready ($((SECONDS - t)) s)"

D=$WINEPREFIX/drive_c/mlnx_hca
mkdir -p "$D"
cp "$BIN"/*.exe "$D/"
cp "$BIN/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
cp "$MT/mcra.exe" "$MT/mstdump.exe" "$MT/lib/crspace.exe" "$D/"
cp -r "$MT/mstdump_dbs" "$D/"
cp "$SYS" "$D/mlnx_hca.sys"
cp "$INF" "$D/mlnx_hca.inf"
# Wine 8's cmd mishandles `a || b`: test errorlevel instead.
printf '%s\r\n' \
  '@echo off' \
  'C:\mlnx_hca\uninstall.exe root\mlnx_hca_sim' \
  'C:\mlnx_hca\uninstall.exe root\mlnx_hca_sim4' \
  'C:\mlnx_hca\uninstall.exe "PCI\VEN_15B3&DEV_0209"' \
  "reg add HKLM\\System\\CurrentControlSet\\Services\\mlnx_hca\\Parameters /v ReadAccess /t REG_SZ /d \"$GRANT\" /f" \
  'if errorlevel 1 exit /b 10' \
  'reg add HKLM\System\CurrentControlSet\Services\mlnx_hca\Parameters /v KeepSystemAwake /t REG_DWORD /d 0 /f' \
  'if errorlevel 1 exit /b 10' \
  "C:\\mlnx_hca\\sddl.exe \"$SDDL\" > C:\\mlnx_hca\\sddl.txt" \
  'if errorlevel 1 exit /b 15' \
  'C:\mlnx_hca\install.exe C:\mlnx_hca\mlnx_hca.inf root\mlnx_hca_sim' \
  'if errorlevel 1 exit /b 11' \
  'C:\mlnx_hca\client.exe' \
  'if errorlevel 1 exit /b 12' \
  'C:\mlnx_hca\client.exe \\.\mlnx_hca0 noclose' \
  'if errorlevel 1 exit /b 13' \
  "$([ "$WOW64" = 1 ] && printf '%s' 'C:\mlnx_hca\client32.exe')" \
  "$([ "$WOW64" = 1 ] && printf '%s' 'if errorlevel 1 exit /b 16')" \
  'C:\mlnx_hca\install.exe C:\mlnx_hca\mlnx_hca.inf root\mlnx_hca_sim4' \
  'if errorlevel 1 exit /b 17' \
  'C:\mlnx_hca\client.exe --gateway \\.\mlnx_hca1' \
  'if errorlevel 1 exit /b 18' \
  'cd /d C:\mlnx_hca' \
  'C:\mlnx_hca\mcra.exe mlnx_hca1 0xf0014 > C:\mlnx_hca\mcra4.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\mcra4.rc' \
  'C:\mlnx_hca\mcra.exe mlnx_hca1 0x100 0xdeadbeef > C:\mlnx_hca\mcra4w.txt 2>&1' \
  'C:\mlnx_hca\mcra.exe mlnx_hca1 0x100 > C:\mlnx_hca\mcra4r.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\mcra4r.rc' \
  'C:\mlnx_hca\mstdump.exe mt4115_pci_cr1 > C:\mlnx_hca\mstdump4.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\mstdump4.rc' \
  'C:\mlnx_hca\crspace.exe --device \\.\mlnx_hca1 read 0x100 > C:\mlnx_hca\crspace4.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\crspace4.rc' \
  'C:\mlnx_hca\crspace.exe --device \\.\mlnx_hca1 info > C:\mlnx_hca\crspace4i.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\crspace4i.rc' \
  'C:\mlnx_hca\install.exe C:\mlnx_hca\mlnx_hca.inf "PCI\VEN_15B3&DEV_0209" > C:\mlnx_hca\recovery.txt 2>&1' \
  'C:\mlnx_hca\mcra.exe mlnx_hca0 0xf0014 > C:\mlnx_hca\mcra.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\mcra.rc' \
  'C:\mlnx_hca\mstdump.exe mt4099_pci_cr0 > C:\mlnx_hca\mstdump.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\mstdump.rc' \
  'C:\mlnx_hca\crspace.exe read 0xf0014 > C:\mlnx_hca\crspace.txt 2>&1' \
  'echo %errorlevel% > C:\mlnx_hca\crspace.rc' \
  'C:\mlnx_hca\uninstall.exe root\mlnx_hca_sim' \
  'if errorlevel 1 exit /b 14' \
  'C:\mlnx_hca\uninstall.exe root\mlnx_hca_sim4' \
  'if errorlevel 1 exit /b 19' \
  'C:\mlnx_hca\uninstall.exe "PCI\VEN_15B3&DEV_0209"' \
  'sc stop mlnx_hca' \
  'exit /b 0' > "$D/ci.bat"

LOG=$WORK/wine.log
export WINEDEBUG=-all,+debugstr,err+ntoskrnl,err+plugplay
set +e
OUT=$WORK/client.out
limited "the client run (ci.bat)" wine cmd /c 'C:\mlnx_hca\ci.bat' 2>"$LOG" | tee "$OUT"
rc=${PIPESTATUS[0]}
if ! limited "wineserver after the client run" wineserver -w && [ "$rc" = 0 ]; then rc=wineserver; fi
set -e
# The driver's lines (DbgPrint shows as warn:debugstr:OutputDebugStringA "...").
DRV=$WORK/driver.log
grep -a 'mlnx_hca' "$LOG" | sed -e 's/^.*OutputDebugStringA "//' -e 's/\\n"$//' > "$DRV" || true
echo "--- driver debug output"
cat "$DRV"
echo "--- wine errors"
grep -a '^err:' "$LOG" | grep -v 'err:winediag' | head -20 || true
echo "---"
[ "$rc" = 0 ] || { echo "wine run failed at step $rc"; exit 1; }

fails=0
expect() { # expect "what" "extended regex"
  if grep -Eq "$2" "$DRV"; then echo "ok   driver log: $1"; else echo "FAIL driver log: $1 (/$2/)"; fails=$((fails + 1)); fi
}
expect "DriverEntry ran" 'DriverEntry'
expect "the root test device started" 'START_DEVICE'
expect "a context was created and freed" 'context .*freed'
# The client that exited without closing: every context its pid created must
# be freed by a CLOSE the I/O manager sent after it was gone.
gone=$(sed -n 's/^client pid \([0-9]*\), .*exits without closing.*/\1/p' "$OUT" | tr -d '\r')
contexts=$(sed -n "s/^.*CREATE mlnx_hca0 pid $gone: context \(0x[0-9a-f]*\),.*/\1/p" "$DRV")
if [ -z "$gone" ] || [ "$(echo "$contexts" | grep -c .)" != 2 ]; then
  echo "FAIL the vanished client (pid '${gone}') did not open its two handles"; fails=$((fails + 1))
fi
for c in $contexts; do
  expect "context $c of the vanished client $gone freed at close" "CLOSE mlnx_hca0: context $c freed"
done
# The MDL path runs as far as Wine's memory manager goes (it maps nothing):
# the BAR is page aligned on every host now.
expect "a read-only map built its MDL and reached the system mapping" 'MmMapLockedPagesSpecifyCache\(KernelMode\) failed'
expect "a read-write map built its MDL and reached the user mapping" 'MmMapLockedPagesSpecifyCache\(UserMode\) failed'
# The administrator's read grant: the registry value read at start, turned
# into the descriptor Windows' own conversion makes of the same SDDL.
expect "the control device got the read grant's descriptor" "security: $(printf '%s' "$SDDL" | sed 's/[()]/\\&/g') for the control device"
expect "the root test device has the function driver" 'AddDevice: function driver of ConnectX-3 \(MT27500\) \(simulated 1\)'
expect "the stack device refused an open (tools open the control device)" 'CREATE of the stack device refused'
expect "the control device was made and served, BAR 0 mapped" 'START_DEVICE mlnx_hca0: 1003 .*filter 0, gateway 0\)'
expect "REMOVE_DEVICE retired the HCA, no context left" 'REMOVE_DEVICE mlnx_hca0: 0 view\(s\) revoked, 0 handle context'
# Wine 8's PoRegisterSystemState is a stub that ends the driver host: the
# run turns the lease's busy state off, and the driver says so.
expect "KeepSystemAwake = 0 read at start" 'KeepSystemAwake = 0: a held write lease does not keep the system awake'
# The simulated ConnectX-4: CR space through the gateway, emulated in pool.
expect "root\\mlnx_hca_sim4 has the function driver" 'AddDevice: function driver of ConnectX-4 \(MT27700\) \(simulated 1\)'
expect "its control device serves the gateway (BAR 0 untouched)" 'START_DEVICE mlnx_hca1: 1013 .*simulated 1, filter 0, gateway 1\)'
expect "REMOVE_DEVICE retired it, no context left" 'REMOVE_DEVICE mlnx_hca1: 0 view\(s\) revoked, 0 handle context'
# A flash-recovery ConnectX-4 id (a root-enumerated node here): the INF makes
# mlnx_hca its function driver, which asks the stack below for the PCI bus
# interface. Wine's root bus has none: the start fails cleanly, no control
# device is made, nothing leaks (the unload check below).
expect "a flash-recovery ConnectX-4 id gets the function driver" 'AddDevice: function driver of ConnectX-4 \(MT27700\) flash recovery \(simulated 0\)'
expect "its start asked the bus below for the interface, and failed cleanly without one" 'START_DEVICE: no bus interface for the configuration space: 0xc00000bb'
if grep -Eq 'START_DEVICE mlnx_hca[0-9]+: 0209' "$DRV"; then echo "FAIL the recovery id got a control device"; fails=$((fails + 1)); fi
want=$(tr -d '\r\n' < "$D/sddl.txt")
# One descriptor per control device made (the ConnectX-3's, the
# ConnectX-4's): each one Windows' conversion, byte for byte.
descriptors=$(sed -n 's/^.*security: descriptor\[\([0-9]*\)\]: \([0-9a-f]*\).*$/\1 \2/p' "$DRV" \
  | awk '$1 == 0 && NR > 1 { print "" } { printf "%s", $2 } END { print "" }')
if [ -n "$want" ] && [ "$(grep -c . <<<"$descriptors")" = 2 ] && ! grep -qvx "$want" <<<"$descriptors"; then
  echo "ok   driver log: both control devices' descriptors are byte for byte Windows' conversion of $SDDL"
else
  echo "FAIL the driver's descriptors ($descriptors) are not Windows' conversion ($want)"; fails=$((fails + 1))
fi
expect "uninstall reached REMOVE_DEVICE" 'REMOVE_DEVICE'
expect "the driver unloaded" '[Uu]nload'
expect "no outstanding allocation at unload" 'outstanding allocations: 0'
if grep -Eq 'outstanding allocations: [1-9]' "$DRV"; then echo "FAIL leak at unload"; fails=$((fails + 1)); fi
# Every handle context the driver created (clients, mcra, mstdump, crspace)
# was freed by its close.
created=$(sed -n 's/^.*CREATE \(mlnx_hca[0-9]*\) pid [0-9]*: context \(0x[0-9a-f]*\),.*/\1:\2/p' "$DRV" | sort -u)
unfreed=0
for c in $created; do grep -q "CLOSE ${c%%:*}: context ${c#*:} freed" "$DRV" || unfreed=$((unfreed + 1)); done
if [ -n "$created" ] && [ "$unfreed" = 0 ]; then
  echo "ok   driver log: all $(echo "$created" | wc -l) handle contexts were freed at close"
else
  echo "FAIL driver log: $unfreed of the handle contexts were never freed"; fails=$((fails + 1))
fi

# mstflint's mcra and mstdump (our mtcr backend) and crspace.exe: they find
# and open the device, the map Wine cannot make fails with a clear message
# and a non-zero exit, nothing crashes, and their contexts went (above).
tool() { # tool NAME WHAT WANT-RC TEXT...: NAME.rc is WANT-RC and NAME.txt holds every TEXT
  local name=$1 what=$2 want=$3 got text ok=1; shift 3
  got=$(tr -d '\r \n' < "$D/$name.rc" 2>/dev/null || echo missing)
  [ "$got" = "$want" ] || ok=0
  for text in "$@"; do grep -qF -- "$text" "$D/$name.txt" || ok=0; done
  if [ "$ok" = 1 ]; then echo "ok   $what"; else
    echo "FAIL $what (exit $got, want $want)"; sed 's/^/     | /' "$D/$name.txt"; fails=$((fails + 1)); fi
}
MAPFAIL="no room for another mapping"
tool mcra "mcra.exe mlnx_hca0 0xf0014: opens the device, reports the failed map, exit 1" 1 \
  "mlnx_hca: mlnx_hca0: $MAPFAIL" "mopen:"
tool mstdump "mstdump.exe mt4099_pci_cr0 (mstflint's Windows name): the same, exit 1" 1 \
  "mlnx_hca: mlnx_hca0: $MAPFAIL" "Unable to open device mt4099_pci_cr0"
tool crspace "crspace.exe read 0xf0014: the same, exit 1" 1 "crspace: $MAPFAIL"

# The same tools on the simulated ConnectX-4 (mlnx_hca1): nothing to map,
# so Wine runs them end to end through the driver's block requests.
tool mcra4 "mcra.exe mlnx_hca1 0xf0014: the ConnectX-4's id through the gateway" 0 "0x00000209"
tool mcra4r "mcra.exe reads back its write (0x100: 0xdeadbeef)" 0 "0xdeadbeef"
tool crspace4 "crspace.exe read 0x100 on mlnx_hca1: mcra's write" 0 "0x00000100 0xdeadbeef"
tool crspace4i "crspace.exe info on mlnx_hca1: the gateway and its spaces" 0 "0x0209 (ConnectX-4)" \
  "through the configuration-space gateway" "0xa semaphores"
lines4=$(tr -d '\r' < "$D/mstdump4.txt" | grep -c '^0x' || true)
if [ "$(tr -d '\r \n' < "$D/mstdump4.rc")" = 0 ] && [ "$lines4" = 44092 ] \
  && grep -q '^0x000f0014 0x00000209' "$D/mstdump4.txt" && grep -q '^0x00000100 0xdeadbeef' "$D/mstdump4.txt"; then
  echo "ok   mstdump.exe mt4115_pci_cr1: ConnectX4.csv's 44,092 dwords through the gateway, the id and mcra's write among them"
else
  echo "FAIL mstdump.exe mt4115_pci_cr1 ($lines4 lines, exit $(tr -d '\r \n' < "$D/mstdump4.rc"))"
  head -5 "$D/mstdump4.txt" | sed 's/^/     | /'; fails=$((fails + 1))
fi

echo "wine: $fails driver-log check(s) failed"

# The filter installer, on fake HCAs in the same prefix (filter.sh).
echo "--- mlnx_hca_filter.exe"
filter_rc=0
limited "the filter installer checks" "$HERE/filter.sh" "$D" || filter_rc=$?
[ "$fails" = 0 ] && [ "$filter_rc" = 0 ]
