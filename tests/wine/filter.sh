#!/usr/bin/env bash
# mlnx_hca_filter.exe against device nodes that look like HCAs running their
# own driver, in the Wine prefix run.sh made (called by run.sh, which
# exports WINEPREFIX and friends):
#
#   tests/wine/filter.sh DIR
#
# DIR (the prefix's C:\mlnx_hca) holds mlnx_hca_filter.exe, fakehca.exe,
# uninstall.exe, mlnx_hca.inf and mlnx_hca.sys. Wine loads no filter
# drivers, so what runs here is the installer: the service and file it
# installs, the LowerFilters it writes (read back with Wine's reg.exe, not
# with the tool), the other filters it keeps, and what it refuses, each
# refusal changing nothing.
set -euo pipefail
D=${1:?usage: filter.sh DIR}
export WINEDEBUG=-all
LIMIT=${WINE_LIMIT:-600}

fails=0
ok() { echo "ok   filter: $1"; }
bad() { echo "FAIL filter: $1"; fails=$((fails + 1)); }

# tool ARGS...: runs mlnx_hca_filter.exe; its output (stdout and stderr) in
# $OUT, its exit status in $RC.
tool() {
  RC=0
  OUT=$(timeout --kill-after=10 "$LIMIT" wine 'C:\mlnx_hca\mlnx_hca_filter.exe' "$@" 2>&1 | tr -d '\r') || RC=$?
  printf '%s\n' "$OUT" | sed 's/^/    | /'
}
# filters ID: the device's LowerFilters as Wine's reg.exe shows them
# ("a b"), empty when the value is absent or empty.
filters() {
  local key="HKLM\\System\\CurrentControlSet\\Enum\\$1"
  timeout --kill-after=10 "$LIMIT" wine reg query "$key" /v LowerFilters 2>/dev/null | tr -d '\r' \
    | sed -n 's/^ *LowerFilters *REG_MULTI_SZ *//p' | sed 's/\\0/ /g; s/ *$//' || true
}
fake() { # fake NAME HWID [FILTER...]: a new fake HCA; prints its instance id
  timeout --kill-after=10 "$LIMIT" wine 'C:\mlnx_hca\fakehca.exe' "$@" 2>/dev/null | tr -d '\r' | tail -n 1
}
expect() { # expect WHAT WANT-RC [REGEX]: the last tool run's status, and its output matching REGEX
  if [ "$RC" = "$2" ] && { [ -z "${3:-}" ] || grep -Eq "$3" <<<"$OUT"; }; then ok "$1"; else bad "$1 (exit $RC, want $2${3:+, /$3/})"; fi
}
expect_filters() { # expect_filters WHAT ID WANT
  local got; got=$(filters "$2")
  if [ "$got" = "$3" ]; then ok "$1: LowerFilters '$got'"; else bad "$1: LowerFilters '$got', want '$3'"; fi
}

# The sim run installed the service and the file: take both away, so that
# `add` must install them itself.
timeout 60 wine sc delete mlnx_hca >/dev/null 2>&1 || true
rm -f "$WINEPREFIX/drive_c/windows/system32/drivers/mlnx_hca.sys"

cx3=$(fake MLNX_FAKE_CX3 'PCI\VEN_15B3&DEV_1003&SUBSYS_006715B3&REV_00' otherfilt lastfilt)
bare=$(fake MLNX_FAKE_CX3PRO 'PCI\VEN_15B3&DEV_1007&SUBSYS_000615B3&REV_00')
cx4=$(fake MLNX_FAKE_CX4 'PCI\VEN_15B3&DEV_1013&SUBSYS_003315B3&REV_00' otherfilt)
recovery=$(fake MLNX_FAKE_RECOVERY 'PCI\VEN_15B3&DEV_01F6&SUBSYS_00000000&REV_00')
other=$(fake MLNX_FAKE_NIC 'PCI\VEN_8086&DEV_1003&SUBSYS_00008086&REV_00')
for id in "$cx3" "$bare" "$cx4" "$recovery" "$other"; do
  case $id in ROOT\\MLNX_FAKE_*) ;; *) bad "a fake HCA was not made ($id)"; echo "filter: $fails check(s) failed"; exit 1 ;; esac
done
echo "fake HCAs: $cx3 $bare $cx4 $recovery $other"

tool list
expect "list names each Mellanox device and what mlnx_hca can be to it" 0 \
  "ConnectX-3 \(MT27500\).*"
if grep -Fq "$cx3" <<<"$OUT" && grep -q 'can be its lower filter' <<<"$OUT" \
  && grep -q 'configuration-space gateway: mlnx_hca can be its lower filter' <<<"$OUT" \
  && grep -q 'flash recovery: mlnx_hca.inf is its function driver' <<<"$OUT" \
  && ! grep -q '8086' <<<"$OUT"; then
  ok "list: a CR-space HCA, a ConnectX-4, a recovery id; no foreign device"
else
  bad "list output"
fi

# Refusals: each changes nothing (no filter written, no service made).
tool add --no-restart "$recovery"
expect "a flash-recovery id refused (the INF is its function driver)" 2 'refused.*function driver'
expect_filters "recovery id unchanged" "$recovery" ""
tool add --no-restart "$other"
expect "a non-Mellanox device refused" 2 'not a Mellanox PCI device'
tool add --no-restart 'ROOT\MLNX_NO_SUCH_DEVICE\0000'
expect "an unknown instance id refused" 2 'no device'
tool add --no-restart --inf 'C:\mlnx_hca\missing.inf' "$cx3"
expect "a missing INF refused before anything changes" 2 'no such INF'
expect_filters "after the refusals, the ConnectX-3 is unchanged" "$cx3" "otherfilt lastfilt"
if timeout 60 wine sc query mlnx_hca >/dev/null 2>&1; then bad "a refusal made the service"; else ok "no refusal made the service"; fi
tool frobnicate
expect "an unknown command: usage" 2 'usage'

# add: the service and its file, then the filter after the others.
tool add --no-restart "$cx3"
expect "add installs the service and appends the filter" 0 'service mlnx_hca: .*mlnx_hca\.sys'
expect_filters "add keeps the other filters, in order" "$cx3" "otherfilt lastfilt mlnx_hca"
svc=$(timeout 60 wine reg query 'HKLM\System\CurrentControlSet\Services\mlnx_hca' 2>/dev/null | tr -d '\r')
if grep -Eq 'Type +REG_DWORD +0x1$' <<<"$svc" && grep -Eq 'Start +REG_DWORD +0x3$' <<<"$svc" \
  && grep -Eqi 'ImagePath +REG_SZ +.*system32\\drivers\\mlnx_hca\.sys$' <<<"$svc"; then
  ok "the service: a demand-start kernel driver, system32\\drivers\\mlnx_hca.sys"
else
  bad "the service key: $svc"
fi
if cmp -s "$D/mlnx_hca.sys" "$WINEPREFIX/drive_c/windows/system32/drivers/mlnx_hca.sys"; then
  ok "the image was copied from the INF's directory"
else
  bad "system32\\drivers\\mlnx_hca.sys is not the package's image"
fi
tool add --no-restart "$cx3"
expect "add again: already there" 0 'already a lower filter'
expect_filters "add again does not duplicate" "$cx3" "otherfilt lastfilt mlnx_hca"
# Without --no-restart the tool asks SetupAPI to restart the device; Wine's
# SetupAPI cannot (DIF_PROPERTYCHANGE is a FIXME there), so the tool must
# say the change waits for the next start, with exit status 3.
tool add "$cx3"
expect "a restart that cannot happen is reported, status 3" 3 'not restarted.*pnputil /restart-device'

tool add --no-restart "$bare"
expect "add to a device without filters" 0 'lower filters now mlnx_hca'
expect_filters "the only filter" "$bare" "mlnx_hca"
tool add --no-restart "$cx4"
expect "add to a ConnectX-4 (CR space through the gateway)" 0 'lower filters now otherfilt mlnx_hca'
expect_filters "the ConnectX-4's filters" "$cx4" "otherfilt mlnx_hca"

# remove: exactly the filter, the others back as they were.
tool remove --no-restart "$cx3"
expect "remove takes mlnx_hca out" 0 'lower filters of .* now otherfilt lastfilt'
expect_filters "remove restores the other filters" "$cx3" "otherfilt lastfilt"
tool remove --no-restart "$cx3"
expect "remove again: nothing to do" 0 'not a lower filter'
tool remove --no-restart "$bare"
expect "remove the only filter" 0 'now \(none\)'
expect_filters "no filter left" "$bare" ""
tool remove --no-restart "$cx4"
expect "remove from the ConnectX-4" 0 'now otherfilt'
expect_filters "the ConnectX-4's filters as before" "$cx4" "otherfilt"
tool remove --no-restart 'ROOT\MLNX_NO_SUCH_DEVICE\0000'
expect "remove on an unknown instance id refused" 2 'no device'
if timeout 60 wine sc query mlnx_hca >/dev/null 2>&1; then ok "the service stays for other HCAs"; else bad "remove deleted the service"; fi

for hwid in 'PCI\VEN_15B3&DEV_1003&SUBSYS_006715B3&REV_00' 'PCI\VEN_15B3&DEV_1007&SUBSYS_000615B3&REV_00' \
  'PCI\VEN_15B3&DEV_1013&SUBSYS_003315B3&REV_00' 'PCI\VEN_15B3&DEV_01F6&SUBSYS_00000000&REV_00' \
  'PCI\VEN_8086&DEV_1003&SUBSYS_00008086&REV_00'; do
  timeout 60 wine 'C:\mlnx_hca\uninstall.exe' "$hwid" >/dev/null 2>&1 || true
done
echo "filter: $fails check(s) failed"
[ "$fails" = 0 ]
