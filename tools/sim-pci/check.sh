#!/usr/bin/env bash
# mstflint's own, unmodified tools (Debian's mstflint 4.21: mstmcra,
# mstregdump, and mstflint itself) against the simulated HCAs: the
# ConnectX-3 through the driver's map requests, with crspace as the second
# opinion on every value; the ConnectX-4 through its driver's block requests
# (`sim-pci serve`, the node mtcr opens for a ConnectX-4), with a firmware
# agent racing the tools for the gateway. Run by tools/test.sh; needs root
# (sim-pci makes a private mount namespace).
#
#   tools/sim-pci/check.sh
#
# Every check prints "ok" or "FAIL" with what a user would see; the script
# exits non-zero if any failed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

# From 4.31 on mtcr maps 64 MiB of resource0, which a 1 MiB BAR cannot be.
"$ROOT/tools/need-debs.sh" mstflint=4.21.0+1-1 gcc python3
cargo build -q --locked -p sim-pci -p crspace \
  --config 'profile.dev.panic="unwind"' --config 'profile.release.panic="unwind"'
BIN=$ROOT/target/debug

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlnx_hca-sim-pci.XXXXXX")
SERVER=""
trap '[ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
gcc -std=gnu11 -Wall -Wextra -Werror -O1 -o "$WORK/probe" "$HERE/tests/probe.c"

BAR=$WORK/hca.bar
LOG=$WORK/requests.log
DEV=0000:ca:00.0
RES0=/sys/bus/pci/devices/$DEV/resource0
failures=0

check() { # check WHAT COMMAND...: passes when COMMAND succeeds
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}
sim() { "$BIN/sim-pci" --bar "$BAR" --log "$LOG" "$@"; }
crspace() { "$BIN/crspace" --sim --sim-bar "$BAR" "$@"; }
# run NAME COMMAND...: stdout to $WORK/NAME.out, stderr to $WORK/NAME.err, exit code to $WORK/NAME.rc
run() {
  local name=$1 rc=0; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  echo "$rc" >"$WORK/$name.rc"
}
is() { [ "$(cat "$WORK/$1")" = "$2" ] || { echo "     $1: '$(cat "$WORK/$1")', expected '$2'"; false; }; }
has() { grep -qF -- "$2" "$WORK/$1" || { echo "     $1 lacks '$2':"; sed 's/^/     | /' "$WORK/$1"; false; }; }
ends_with() { # ends_with PROGRAM TEXT: the log's last exit line of PROGRAM ends with TEXT
  local line; line=$(grep -F "$1: exit:" "$LOG" | tail -n 1)
  [[ $line == *"$2" ]] || { echo "     last exit line of $1: '$line'"; false; }
}
ended_clean() { # ended_clean PROGRAM LEFT: its handle closed with LEFT views for cleanup, and nothing left after
  ends_with "$1" "($2 view(s) left to cleanup); views of this process 0, write lease free"
}

echo "== the device id, and values crossing between mstmcra and crspace"
run id sim mstmcra "$DEV" 0xf0014
check "mstmcra $DEV 0xf0014 prints 0x000101f5" is id.out 0x000101f5
check "mstmcra unmapped its view and the handle closed with nothing left" ended_clean mstmcra 0
crspace write 0x100 0xdeadbeef
run a sim mstmcra "$DEV" 0x100
check "a value crspace wrote reads back through mstmcra" is a.out 0xdeadbeef
run b sim mstmcra "$DEV" 0x104 0x12345678
check "mstmcra writes (exit 0, nothing printed)" is b.rc 0
check "a value mstmcra wrote reads back through crspace" [ "$(crspace read 0x104)" = "0x00000104 0x12345678" ]
crspace write 0x108 0x11223344
sim mstmcra "$DEV" 0x108.8:8 0xab
check "mstmcra's read-modify-write of bits 8-15 is crspace's 0x1122ab44" [ "$(crspace read --value 0x108)" = 0x1122ab44 ]
crspace write 0x108.0:4 0x7
run c sim mstmcra "$DEV" 0x108.0:4
check "crspace's write of bits 0-3 is mstmcra's 0x00000007" is c.out 0x00000007
crspace write 0x200 0x0a0b0c0d
crspace write 0x20c 0xfeedface
run block sim mstmcra "$DEV" 0x200,16
check "a block read (mstmcra $DEV 0x200,16) is crspace's read of 4 dwords" is block.out "$(crspace read 0x200 4)"

echo "== mstregdump: every dword it dumps is the device's, and crspace's"
# The device fills CR space with a pattern (big-endian, as on the bus) but
# keeps its id; then three readers must agree on every dword.
python3 - "$BAR" <<'EOF'
import struct, sys
bar = bytearray(open(sys.argv[1], 'rb').read())
for offset in range(0, len(bar), 4):
    if offset != 0xF0014:
        struct.pack_into('>I', bar, offset, (offset * 0x9E3779B1 + 0x5A5A5A5A) & 0xFFFFFFFF)
open(sys.argv[1], 'r+b').write(bar)
EOF
run dump sim mstregdump "$DEV"
check "mstregdump accepts the device (exit 0)" is dump.rc 0
check "mstregdump prints one line per dword of ConnectX3.csv: 35,572" [ "$(wc -l <"$WORK/dump.out")" = 35572 ]
check "its dump includes 0x000f0014 0x000101f5" has dump.out "0x000f0014 0x000101f5"
crspace dump 0 0x100000 >"$WORK/full.out"
python3 - "$WORK/dump.out" "$WORK/full.out" "$BAR" <<'EOF' >"$WORK/compare.out" && compare=0 || compare=1
import struct, sys
dump = [line.split() for line in open(sys.argv[1])]
full = dict(line.split() for line in open(sys.argv[2]))
bar = open(sys.argv[3], 'rb').read()
bad = [f for f in dump if full.get(f[0]) != f[1] or int(f[1], 16) != struct.unpack_from('>I', bar, int(f[0], 16))[0]]
print(f"{len(dump)} dwords compared, {len(bad)} differ: {bad[:3]}")
sys.exit(1 if bad or not dump else 0)
EOF
check "every dword mstregdump printed is the device's value and crspace's ($(cat "$WORK/compare.out"))" [ "$compare" = 0 ]
check "mstregdump left nothing mapped" ended_clean mstregdump 0

echo "== refusals: a clear error, nothing mapped, no lease"
run busy sim --writer 4242 mstmcra "$DEV" 0x100 1
check "while process 4242 holds the lease, mstmcra fails with exit code 1 (no crash)" is busy.rc 1
check "and says why" has busy.err "mmap of CR space refused: busy: process 4242 holds the write lease"
check "the value was not written" [ "$(crspace read 0x100)" = "0x00000100 $(grep -F "0x00000100 " "$WORK/full.out" | cut -d' ' -f2)" ]
check "its handle closed with nothing of it left" \
  ends_with mstmcra "views of this process 0, write lease held by 4242 (MLNX_HCA_SIM_WRITER)"
run ro sim --access read mstmcra "$DEV" 0xf0014
check "a user who is not an administrator cannot map (mtcr maps read-write): exit 1" is ro.rc 1
check "and is told so" has ro.err "mmap of CR space refused: read-only handle: run as Administrator to write"
lines=$(wc -l <"$LOG")
run other sim mstmcra 0000:cb:00.0 0xf0014
check "a device that is not the simulated HCA: mtcr's own error, exit 1" is other.rc 1
check "mtcr says it could not open it" has other.err "mopen"
check "and the simulated HCA was never opened" [ "$(wc -l <"$LOG")" = "$lines" ]
run field sim mstmcra "$DEV" 0xf0014.30:8
check "a bit field past bit 31 is refused by mstmcra (exit 1)" is field.rc 1
check "crspace refuses it too (usage error, exit 2)" [ "$(crspace read 0xf0014.30:8 >/dev/null 2>&1; echo $?)" = 2 ]

echo "== the preload library's own calls (probe.c: read-only views, refusals, other files)"
echo file >"$WORK/other-file"
run probe sim "$WORK/probe" "$RES0" "$WORK/other-file"
sed 's/^/     | /' "$WORK/probe.out"
check "every probe check passed" is probe.rc 0
check "the view probe left mapped went with its handle at exit" ended_clean probe 1

echo "== a tool killed while it holds a read-write view"
coproc HOLD { exec "$BIN/sim-pci" --bar "$BAR" --log "$LOG" "$WORK/probe" "$RES0" --hold; }
read -r -t 30 marker <&"${HOLD[0]}" || marker=""
check "the holder mapped read-write and wrote" [ "$marker" = holding ]
kill -KILL "$HOLD_PID"
wait "$HOLD_PID" || true
run after sim mstmcra "$DEV" 0x2000
check "the next tool reads what the killed one wrote" is after.out 0x600df00d
run again sim mstmcra "$DEV" 0x2000 0
check "and writes at once: no lease outlived the killed tool" is again.rc 0

echo "== the simulated ConnectX-4: mstflint's tools through the gateway (sim-pci serve, a firmware agent racing them)"
SOCK=$WORK/cx4.sock
"$BIN/sim-pci" serve --socket "$SOCK" --device "$WORK/cx4.dev" --agent 1 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
cx4() { "$BIN/sim-pci" --cx4 --socket "$SOCK" "$@"; }
lock_at() { "$BIN/sim-pci" read --socket "$SOCK" 0xa "$1"; }
agent_held() { sed -n 's/.*the firmware agent has held the gateway \([0-9]*\) time.*/\1/p' "$WORK/serve.err" | tail -n 1; }
# until_true SECONDS COMMAND...: COMMAND until it succeeds, at most SECONDS
# (what another process does after an event this script cannot wait on).
until_true() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.05; done
}
run id4 cx4 mstmcra "$DEV" 0xf0014
check "mstmcra $DEV 0xf0014 prints 0x00000209 (ConnectX-4's hardware id, through the gateway)" is id4.out 0x00000209
run w4 cx4 mstmcra "$DEV" 0x100 0xdeadbeef
run r4 cx4 mstmcra "$DEV" 0x100
check "a value mstmcra wrote reads back (no byte swap: the gateway carries values)" is r4.out 0xdeadbeef
run d4 cx4 mstregdump "$DEV"
check "mstregdump accepts the ConnectX-4 (exit 0)" is d4.rc 0
check "and prints one line per dword of ConnectX4.csv: 44,092" [ "$(wc -l <"$WORK/d4.out")" = 44092 ]
check "its dump has the id and the value written" \
  bash -c "grep -qx '0x000f0014 0x00000209' '$WORK/d4.out' && grep -qx '0x00000100 0xdeadbeef' '$WORK/d4.out'"
# Three tools at once, each writing and reading back its own dword, and two
# dumps beside them, while the agent takes the gateway at random: nothing
# read is anything but what was written.
before=$(agent_held)
for t in 1 2 3; do
  (
    for i in $(seq 20); do
      v=$(printf '0x%08x' $(((t << 24) | i)))
      cx4 mstmcra "$DEV" $((0x1000 + 4 * t)) "$v" >/dev/null 2>&1
      [ "$(cx4 mstmcra "$DEV" $((0x1000 + 4 * t)) 2>/dev/null)" = "$v" ] || { echo "tool $t round $i"; exit 1; }
    done
  ) >"$WORK/tool$t.out" 2>&1 &
done
cx4 mstregdump "$DEV" >"$WORK/dump2.out" 2>/dev/null &
cx4 mstregdump "$DEV" >"$WORK/dump3.out" 2>/dev/null &
rounds=0
for job in $(jobs -p); do [ "$job" = "$SERVER" ] && continue; wait "$job" && rounds=$((rounds + 1)); done
check "three mstmcra loops and two mstregdumps at once: each read back what it wrote ($rounds of 5 ok)" [ "$rounds" = 5 ]
# The dumps differ from the first only where the loops wrote (0x1004-0x100c).
same_dump() { diff <(grep -v '^0x0000100[48c] ' "$WORK/d4.out") <(grep -v '^0x0000100[48c] ' "$WORK/$1.out") >/dev/null; }
check "both dumps taken meanwhile are the first one, but for the loops' own dwords" \
  bash -c "$(declare -f same_dump); WORK='$WORK'; same_dump dump2 && same_dump dump3"
check "the firmware agent held the gateway meanwhile ($before, then $(agent_held) times)" [ "$(agent_held)" -gt "${before:-0}" ]

# mstflint (the burner) takes its lock in the semaphore space; with
# MLNX_HCA_SIM_STOP_AT_LOCK the preload stops it right after (SIGSTOP), and
# it is killed there, holding the lock.
MLNX_HCA_SIM_STOP_AT_LOCK=1 "$BIN/sim-pci" --cx4 --socket "$SOCK" mstflint -d "$DEV" q >"$WORK/flint1.out" 2>&1 &
FLINT=$!
stopped() { grep -q '^State:.*T' "/proc/$1/status" 2>/dev/null; }
until_true 30 stopped "$FLINT" || true
holder=$(printf '0x%08x' "$FLINT")
check "mstflint took its lock (the semaphore space at 0 holds its pid, $holder)" [ "$(lock_at 0)" = "$holder" ]
kill -KILL "$FLINT"
wait "$FLINT" 2>/dev/null || true
check "killed holding it: the driver gave the lock back (at most 10 s after the kill)" until_true 10 [ "$(lock_at 0)" = 0x00000000 ]
MLNX_HCA_SIM_STOP_AT_LOCK=1 "$BIN/sim-pci" --cx4 --socket "$SOCK" mstflint -d "$DEV" q >"$WORK/flint2.out" 2>&1 &
FLINT=$!
until_true 30 stopped "$FLINT" || true
check "the next mstflint takes the lock with its first write (pid $(printf '0x%08x' "$FLINT"))" \
  [ "$(lock_at 0)" = "$(printf '0x%08x' "$FLINT")" ]
check "at once: it stopped at its first write into the semaphore space" \
  [ "$(grep -c 'wrote .* to the semaphore space' "$WORK/flint2.out")" = 1 ]
kill -CONT "$FLINT"
wait "$FLINT" || true
check "let go on, it finishes (no flash controller here: MFE_TIMEOUT) and gives its lock back itself" \
  bash -c "grep -q MFE_TIMEOUT '$WORK/flint2.out' && [ \"\$('$BIN/sim-pci' read --socket '$SOCK' 0xa 0)\" = 0x00000000 ]"
run far cx4 mstmcra "$DEV" 0x40000000
check "an address past the gateway's 30 bits: mtcr's error, exit 1" is far.rc 1
check "the driver refused it, and says so" has far.err "STATUS_INVALID_PARAMETER"
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
SERVER=""
run noserver cx4 mstmcra "$DEV" 0xf0014
check "no driver running: sim-pci says so (exit 2)" bash -c "[ \"\$(cat '$WORK/noserver.rc')\" = 2 ] && grep -q 'no driver at' '$WORK/noserver.err'"

echo
if [ "$failures" -gt 0 ]; then
  echo "sim-pci: $failures check(s) failed; the requests were:"
  sed 's/^/  /' "$LOG"
  exit 1
fi
echo "sim-pci: every check passed"
