#!/usr/bin/env bash
# mstflint's mcra and mstdump, built from Debian's source with our mtcr
# backend (tools/mtcr/build.sh linux), against the simulated HCAs; held
# against Debian's own, unmodified mstmcra and mstregdump 4.21 (under
# sim-pci, over the same CR-space file; for the ConnectX-4 through
# `sim-pci serve` over the same device file) and crspace. Run by tools/test.sh;
# needs root (sim-pci makes a private mount namespace, and mstflint's tools
# refuse anyone but root).
#
#   tools/mtcr/check.sh
#
# Every check prints "ok" or "FAIL"; the script exits non-zero if any failed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

"$ROOT/tools/need-debs.sh" mstflint=4.21.0+1-1 python3
"$HERE/build.sh" linux
cargo build -q --locked -p sim-pci -p crspace \
  --config 'profile.dev.panic="unwind"' --config 'profile.release.panic="unwind"'
BIN=$ROOT/target/debug
OURS=$ROOT/target/mtcr/linux

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlnx_hca-mtcr.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
BAR=$WORK/hca.bar
DEV=sim:$BAR            # our tools' name for the simulated HCA
PCI=0000:ca:00.0        # sim-pci's, for Debian's tools
failures=0

check() { # check WHAT COMMAND...: passes when COMMAND succeeds
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
run() { # run NAME COMMAND...: stdout, stderr and exit code to $WORK/NAME.{out,err,rc}
  local name=$1 rc=0; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  echo "$rc" >"$WORK/$name.rc"
}
is() { [ "$(cat "$WORK/$1")" = "$2" ] || { echo "     $1: '$(cat "$WORK/$1")', expected '$2'"; false; }; }
has() { grep -qF -- "$2" "$WORK/$1" || { echo "     $1 lacks '$2':"; sed 's/^/     | /' "$WORK/$1"; false; }; }
mcra() { "$OURS/mcra" "$@"; }
mstdump() { "$OURS/mstdump" "$@"; }
debian() { "$BIN/sim-pci" --bar "$BAR" "$@"; }
crspace() { "$BIN/crspace" --sim --sim-bar "$BAR" "$@"; }

# CR space with a pattern, so that a dump of zeros cannot pass: the dword at
# every offset o is a function of o (big-endian on the bus), the device id
# 0x000101f5 at 0xf0014, and no "T0ol" signature at 0x18 (mstdump's
# scratchpad list).
python3 - "$BAR" <<'EOF'
import struct, sys
words = [((o * 2654435761) ^ 0x5A5A0000) & 0xFFFFFFFF for o in range(0, 1 << 20, 4)]
words[0xF0014 // 4] = 0x000101F5
words[0x18 // 4] = 0
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack(">%dI" % len(words), *words))
EOF

echo "== mcra (ours) against the device, crspace and Debian's mstmcra"
run id mcra "$DEV" 0xf0014
check "mcra $DEV 0xf0014 prints 0x000101f5" is id.out 0x000101f5
run w mcra "$DEV" 0x100 0xdeadbeef
check "mcra writes (exit 0, nothing printed)" is w.rc 0
check "crspace reads mcra's write" [ "$(crspace read --value 0x100)" = 0xdeadbeef ]
check "Debian's mstmcra reads mcra's write" [ "$(debian mstmcra "$PCI" 0x100)" = 0xdeadbeef ]
debian mstmcra "$PCI" 0x104 0x12345678
run r mcra "$DEV" 0x104
check "mcra reads Debian mstmcra's write" is r.out 0x12345678
run rmw mcra "$DEV" 0x104.8:8 0xab
check "mcra's read-modify-write of bits 8-15 leaves 0x1234ab78" [ "$(crspace read --value 0x104)" = 0x1234ab78 ]
run block mcra "$DEV" 0x200,16
run dblock debian mstmcra "$PCI" 0x200,16
check "a block read (0x200,16) is Debian mstmcra's" is block.out "$(cat "$WORK/dblock.out")"
check "and crspace's" is block.out "$(crspace read 0x200 4)"

echo "== mstdump (ours) against Debian's mstregdump"
run ours mstdump "$DEV"
check "mstdump exits 0" is ours.rc 0
check "mstdump prints one line per dword of ConnectX3.csv: 35,572" [ "$(wc -l <"$WORK/ours.out")" = 35572 ]
run theirs debian mstregdump "$PCI"
check "Debian's mstregdump exits 0" is theirs.rc 0
check "the two dumps are identical, line for line" cmp -s "$WORK/ours.out" "$WORK/theirs.out"
check "and hold the pattern, not zeros ($(grep -c ' 0x00000000$' "$WORK/ours.out" || true) zero dwords)" \
  [ "$(grep -c ' 0x00000000$' "$WORK/ours.out" || true)" -lt 100 ]

echo "== bad input: a clear message and a non-zero exit, through the real tools"
run nodev mcra nosuch 0xf0014
check "an unknown device: exit 1" is nodev.rc 1
check "an unknown device: says which names work" has nodev.err "nosuch is not a device of mlnx_hca"
run nodump mstdump nosuch
check "mstdump of an unknown device: exit 1" is nodump.rc 1
check "mstdump of an unknown device: says so" has nodump.err "Unable to open device nosuch"
run unaligned mcra "$DEV" 0xf0016
check "an unaligned address: exit 1" is unaligned.rc 1
check "an unaligned address: says so" has unaligned.err "offset 0xf0016 is not dword aligned"
run past mcra "$DEV" 0xffffc,16
check "a block past the BAR: exit 1" is past.rc 1
check "a block past the BAR: says where" has past.err "outside this mapping (0x0..0x100000)"
run busy env MLNX_HCA_SIM_WRITER=4242 "$OURS/mcra" "$DEV" 0x100 1
check "a write while process 4242 holds the lease: exit 1" is busy.rc 1
check "a write while process 4242 holds the lease: says who" has busy.err "busy: process 4242 holds the write lease"
check "and writes nothing" [ "$(crspace read --value 0x100)" = 0xdeadbeef ]
run sem mcra -c "$DEV"
check "clearing a PCI semaphore: exit 1" is sem.rc 1
check "clearing a PCI semaphore: unsupported, and why" has sem.err "there is none to clear"

echo "== the simulated ConnectX-4: mcra and mstdump (ours) through the gateway, against Debian's over sim-pci serve"
DEV4=$WORK/cx4.dev
SOCK=$WORK/cx4.sock
"$BIN/sim-pci" serve --socket "$SOCK" --device "$DEV4" --agent 3 2>"$WORK/serve.err" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
# CR space (2 MiB at byte 4096 of the device file, host-order dwords: the
# gateway carries values) with a pattern, the id 0x209 kept, no scratchpad.
python3 - "$DEV4" <<'EOF'
import struct, sys
words = [((o * 2246822519) ^ 0x3C3C0000) & 0xFFFFFFFF for o in range(0, 2 << 20, 4)]
words[0xF0014 // 4] = 0x00000209
words[0x18 // 4] = 0
with open(sys.argv[1], "r+b") as f:
    f.seek(4096)
    f.write(struct.pack("<%dI" % len(words), *words))
EOF
debian4() { "$BIN/sim-pci" --cx4 --socket "$SOCK" "$@"; }
run id4 mcra "sim4:$DEV4" 0xf0014
check "mcra sim4:FILE 0xf0014 prints 0x00000209" is id4.out 0x00000209
mcra "sim4:$DEV4" 0x100 0xdeadbeef
check "Debian's mstmcra reads mcra's write, through the other driver" [ "$(debian4 mstmcra "$PCI" 0x100)" = 0xdeadbeef ]
debian4 mstmcra "$PCI" 0x104 0x12345678
run r4 mcra "sim4:$DEV4" 0x104
check "mcra reads Debian mstmcra's write" is r4.out 0x12345678
check "and crspace reads both" [ "$("$BIN/crspace" --sim --sim-device "$DEV4" read 0x100 2)" = \
  "$(printf '0x00000100 0xdeadbeef\n0x00000104 0x12345678')" ]
run ours4 mstdump "sim4:$DEV4"
run theirs4 debian4 mstregdump "$PCI"
check "mstdump exits 0" is ours4.rc 0
check "mstdump prints one line per dword of ConnectX4.csv: 44,092" [ "$(wc -l <"$WORK/ours4.out")" = 44092 ]
check "the two dumps (ours, Debian's mstregdump) are identical, line for line" cmp -s "$WORK/ours4.out" "$WORK/theirs4.out"
check "and hold the pattern, not zeros" [ "$(grep -c ' 0x00000000$' "$WORK/ours4.out" || true)" -lt 100 ]
run far4 mcra "sim4:$DEV4" 0x40000000
check "an address past the gateway's 30 bits: exit 1" is far4.rc 1
check "and why" has far4.err "reaches past the gateway's addresses"
run busy4 env MLNX_HCA_SIM_WRITER=4242 "$OURS/mcra" "sim4:$DEV4" 0x100 1
check "a write while process 4242 holds the lease: exit 1" is busy4.rc 1
check "says who" has busy4.err "busy: process 4242 holds the write lease"
check "and writes nothing" [ "$(mcra "sim4:$DEV4" 0x100)" = 0xdeadbeef ]

if [ "$failures" != 0 ]; then
  echo "mtcr: $failures check(s) failed"
  exit 1
fi
echo "mtcr: every check passed"
