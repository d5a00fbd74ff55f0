#!/usr/bin/env bash
# Model-checks the Windows layer's synchronisation with spin (see README.md).
#
#   run.sh                the verification runs (safety and liveness, every
#                         scenario); fails (exit 1) on any error
#   run.sh --seeds        every seeded bug and every reachability witness
#                         must produce a counterexample; fails if one does not
#   run.sh --seed NAME    one of them, with spin's counterexample trail
#                         replayed (spin -t -p); exit 0 when it was caught
#   run.sh --list         the names --seed takes
#
# Options (before the mode): --keep (keep the work directory and print it).
# Environment: MODEL_JOBS (runs at once, default 2), MODEL_MEMLIM_MB (pan's
# memory limit per run, default 4096).
#
# Needs spin and gcc (installed with tools/need-debs.sh when missing).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
MODEL=$HERE/mlnx_hca.pml
JOBS=${MODEL_JOBS:-2}
MEMLIM=${MODEL_MEMLIM_MB:-4096}
KEEP=0
OPT=-O2         # pan's optimisation: -O2 for the full runs, -O0 for the seeds
                # (they stop at the first counterexample; compiling costs more)

# name | mode (safety or liveness) | spin -D flags: the bounds and scenario
RUNS=(
  "safety-io|safety|-DPNP=0 -DN1=2 -DN2=2 -DNVIEW=3 -DWITH_QUERY -DEXIT_ORDER_EITHER"
  "safety-query-remove|safety|-DPNP=1 -DN1=2 -DN2=2 -DNVIEW=3"
  "safety-surprise-removal|safety|-DPNP=2 -DN1=2 -DN2=2 -DNVIEW=3"
  "safety-power-query-remove|safety|-DPNP=1 -DN1=1 -DN2=1 -DNVIEW=3 -DPOWER_IRP"
  "safety-power-surprise-removal|safety|-DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3 -DPOWER_IRP"
  "safety-start-query-remove|safety|-DSTART_IN_MODEL -DPNP=1 -DN1=1 -DN2=1 -DNVIEW=3 -DPOWER_IRP"
  "safety-start-surprise-removal|safety|-DSTART_IN_MODEL -DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3"
  "liveness-surprise-removal|liveness|-DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3"
  "liveness-query-remove|liveness|-DPNP=1 -DN1=2 -DN2=1 -DNVIEW=3"
  "liveness-start-surprise-removal|liveness|-DSTART_IN_MODEL -DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3"
  "safety-gateway-io|safety|-DGATEWAY -DPNP=0 -DN1=2 -DN2=2 -DNVIEW=3 -DEXIT_ORDER_EITHER"
  "safety-gateway-query-remove|safety|-DGATEWAY -DPNP=1 -DN1=2 -DN2=2 -DNVIEW=3"
  "safety-gateway-surprise-removal|safety|-DGATEWAY -DPNP=2 -DN1=2 -DN2=2 -DNVIEW=3"
  "safety-gateway-start-surprise-removal|safety|-DGATEWAY -DSTART_IN_MODEL -DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3"
  "liveness-gateway-surprise-removal|liveness|-DGATEWAY -DPNP=2 -DN1=1 -DN2=1 -DNVIEW=3"
)

# name | mode | flags. seeds: bugs that must be caught; reach-*: interleavings
# that must be reachable (each asserts it never happens, so spin must find
# it): together they show the runs above can fail and are not vacuous.
SEEDS=(
  "release-lease-before-unmap|safety|-DSEED_RELEASE_LEASE_BEFORE_UNMAP -DPNP=0"
  "skip-attach|safety|-DSEED_SKIP_ATTACH -DPNP=0"
  "no-process-notify|safety|-DSEED_NO_PROCESS_NOTIFY -DPNP=0"
  "lease-stays-with-exited-writer|safety|-DSEED_LEASE_STAYS_WITH_EXITED_WRITER -DPNP=0 -DN1=1 -DN2=1"
  "no-remove-lock-wait|safety|-DSEED_NO_REMOVE_LOCK_WAIT -DPNP=2 -DPOWER_IRP -DN1=1 -DN2=1"
  "wait-under-core-lock|safety|-DSEED_WAIT_UNDER_CORE_LOCK -DPNP=2 -DPOWER_IRP -DN1=1 -DN2=1"
  "wait-under-core-lock-liveness|liveness|-DSEED_WAIT_UNDER_CORE_LOCK -DPNP=2 -DPOWER_IRP -DN1=1 -DN2=1"
  "complete-twice|safety|-DSEED_COMPLETE_TWICE -DPNP=1"
  "filter-counts-unmapper|safety|-DSEED_FILTER_COUNTS_UNMAPPER -DPNP=0"
  "control-uses-stack-remove-lock|safety|-DSEED_CONTROL_USES_STACK_REMOVE_LOCK -DPNP=2 -DN1=1 -DN2=1"
  "free-hca-at-remove|safety|-DSEED_FREE_HCA_AT_REMOVE -DPNP=2 -DN1=1 -DN2=1"
  "reach-lease-handoff|safety|-DREACH_LEASE_HANDOFF -DPNP=0 -DN1=1 -DN2=1"
  "reach-attach-from-other-process|safety|-DREACH_ATTACH_FROM_OTHER_PROCESS -DPNP=0"
  "reach-exit-with-duplicate-open|safety|-DREACH_EXIT_WITH_DUPLICATE_OPEN -DPNP=0"
  "reach-close-after-request|safety|-DREACH_CLOSE_AFTER_REQUEST -DPNP=0"
  "reach-query-remove-refused|safety|-DREACH_QUERY_REMOVE_REFUSED -DPNP=1"
  "reach-remove-waits|safety|-DREACH_REMOVE_WAITS -DPNP=1 -DPOWER_IRP -DN1=1 -DN2=1"
  "reach-remove-waits-after-surprise|safety|-DREACH_REMOVE_WAITS -DPNP=2 -DPOWER_IRP -DN1=1 -DN2=1"
  "reach-request-after-remove|safety|-DREACH_REQUEST_AFTER_REMOVE -DPNP=2"
  "reach-late-close|safety|-DREACH_LATE_CLOSE -DPNP=2"
  "reach-exit-fast-path|safety|-DREACH_EXIT_FAST_PATH -DPNP=0"
  "reach-open-without-control-device|safety|-DREACH_OPEN_WITHOUT_CONTROL_DEVICE -DPNP=2 -DN1=1 -DN2=1"
  "reach-create-racing-delete|safety|-DREACH_CREATE_RACING_DELETE -DPNP=2 -DN1=1 -DN2=1"
  "reach-open-before-start|safety|-DREACH_OPEN_BEFORE_START -DSTART_IN_MODEL -DPNP=0 -DN1=1 -DN2=1"
  "reach-unload-while-a-tool-runs|safety|-DREACH_UNLOAD_WHILE_A_TOOL_RUNS -DPNP=2 -DN1=1 -DN2=1"
  "lock-not-counted|safety|-DSEED_LOCK_NOT_COUNTED -DGATEWAY -DPNP=0"
  "lock-record-replaced|safety|-DSEED_LOCK_RECORD_REPLACED -DGATEWAY -DPNP=0"
  "deref-bus-first|safety|-DSEED_DEREF_BUS_FIRST -DGATEWAY -DPNP=2 -DN1=1 -DN2=1"
  "reach-lock-released-at-exit|safety|-DREACH_LOCK_RELEASED_AT_EXIT -DGATEWAY -DPNP=0"
)

need_tools() {
  "$HERE/../../../tools/need-debs.sh" spin gcc
}

# verify DIR MODE FLAGS...: spin -a, gcc, pan in DIR; pan's output in DIR/pan.out.
# Returns 0 when the search completed without error, 1 on an error (a
# counterexample: DIR/mlnx_hca.pml.trail), 2 when it could not run or
# complete (compile error, memory, depth).
verify() {
  local dir=$1 mode=$2
  shift 2
  mkdir -p "$dir"
  cp "$MODEL" "$dir/mlnx_hca.pml"
  echo "$*" >"$dir/flags"
  (
    cd "$dir"
    local defs=() run=()
    if [ "$mode" = liveness ]; then
      defs=(-DLIVENESS "$@")
      cc=(-DCOLLAPSE)
      run=(-a)
    else
      defs=("$@")
      cc=(-DSAFETY -DCOLLAPSE)
      run=()
    fi
    spin "${defs[@]}" -a mlnx_hca.pml >spin.out 2>&1 || { cat spin.out; exit 2; }
    gcc "$OPT" -w "${cc[@]}" -DMEMLIM="$MEMLIM" -o pan pan.c >gcc.out 2>&1 || { cat gcc.out; exit 2; }
    ./pan "${run[@]}" -m10000 >pan.out 2>&1 || true
    if grep -qE "out of memory|max search depth too small|search not completed" pan.out ||
      ! grep -q "errors:" pan.out; then
      exit 2
    fi
    if grep -qE "errors: 0$" pan.out; then exit 0; fi
    exit 1
  )
}

summary() { # one line from a pan.out
  local out=$1
  local states transitions memory time depth
  states=$(grep -E "states, stored" "$out" | head -1 | awk '{print $1}')
  transitions=$(grep -E "transitions \(= " "$out" | head -1 | awk '{print $1}')
  memory=$(grep -E "total actual memory usage" "$out" | head -1 | awk '{print $1}')
  time=$(grep -E "pan: elapsed time" "$out" | head -1 | awk '{print $4}')
  depth=$(grep -E "depth reached" "$out" | head -1 | sed -E 's/.*depth reached ([0-9]+).*/\1/')
  printf "%s states, %s transitions, depth %s, %s MB, %s s" "$states" "$transitions" "$depth" "$memory" "$time"
}

violation() { # the first error line of a pan.out
  grep -E "^pan:1:|^pan: .*(violated|invalid end|acceptance)" "$1" | head -1 | sed -E 's/^pan:1: //'
}

WORK=""
cleanup() { [ -n "$WORK" ] && [ "$KEEP" = 0 ] && rm -rf "$WORK"; return 0; }
trap cleanup EXIT

main_runs() {
  local start=$SECONDS pids=() names=() i status=0
  echo "spin: $(spin -V | head -1)"
  for i in "${!RUNS[@]}"; do
    IFS='|' read -r name mode flags <<<"${RUNS[$i]}"
    # shellcheck disable=SC2086 # flags are words
    verify "$WORK/$name" "$mode" $flags >"$WORK/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 0.2; done
  done
  for i in "${!pids[@]}"; do
    local name=${names[$i]} rc=0
    wait "${pids[$i]}" || rc=$?
    IFS='|' read -r _ mode flags <<<"${RUNS[$i]}"
    case $rc in
      0) echo "ok    $name ($mode; $flags): $(summary "$WORK/$name/pan.out")" ;;
      1)
        echo "FAIL  $name ($mode; $flags): $(violation "$WORK/$name/pan.out")"
        local live=""
        [ "$mode" = liveness ] && live="-DLIVENESS "
        echo "      trail: $WORK/$name/mlnx_hca.pml.trail (replay: cd there; spin -t -p $live$flags mlnx_hca.pml)"
        KEEP=1
        status=1
        ;;
      *)
        echo "ERROR $name ($mode; $flags): the search did not complete"
        cat "$WORK/$name.log" "$WORK/$name/pan.out" 2>/dev/null | tail -20
        KEEP=1
        status=1
        ;;
    esac
  done
  echo "model: $((SECONDS - start)) s"
  [ "$KEEP" = 1 ] && echo "work directory kept: $WORK"
  return $status
}

# A replayed trail (spin -t -p), one line per step: a d_step prints each of
# its statements under the same step number; keep the first, and the failed
# assertion and the end.
compact() {
  awk '
    /^ *[0-9]+:[ \t]+proc +[0-9]+ / {
      step = $1
      if (step == last) next
      last = step
      line = $0
      sub(/\(state [0-9]+\)[ \t]*/, "", line)
      print line
      next
    }
    /^ *<<<<<START OF CYCLE>>>>>/ { print; next }
    /^spin: / { print; next }
    /^#processes/ { tail = 1 }
    tail && /proc +[0-9]+ \(/ { print }
  ' "$1"
}

find_seed() {
  local s
  for s in "${SEEDS[@]}"; do
    [ "${s%%|*}" = "$1" ] && { echo "$s"; return 0; }
  done
  return 1
}

seeds() {
  local s name mode flags rc status=0 start=$SECONDS
  OPT=-O0
  for s in "${SEEDS[@]}"; do
    IFS='|' read -r name mode flags <<<"$s"
    rc=0
    # shellcheck disable=SC2086
    verify "$WORK/$name" "$mode" $flags >"$WORK/$name.log" 2>&1 || rc=$?
    case $rc in
      1) echo "caught     $name: $(violation "$WORK/$name/pan.out")" ;;
      0)
        echo "NOT CAUGHT $name ($mode; $flags): $(summary "$WORK/$name/pan.out")"
        status=1
        ;;
      *)
        echo "ERROR      $name: the search did not run"
        tail -20 "$WORK/$name.log"
        status=1
        ;;
    esac
  done
  echo "seeds: $((SECONDS - start)) s"
  return $status
}

one_seed() {
  local entry name mode flags rc=0
  entry=$(find_seed "$1") || { echo "unknown seed: $1 (run.sh --list)" >&2; exit 2; }
  IFS='|' read -r name mode flags <<<"$entry"
  echo "seed $name ($mode; $flags)"
  # shellcheck disable=SC2086
  verify "$WORK/$name" "$mode" $flags || rc=$?
  case $rc in
    1)
      echo "caught: $(violation "$WORK/$name/pan.out")"
      local replay="spin -t -p $flags mlnx_hca.pml"
      [ "$mode" = liveness ] && replay="spin -t -p -DLIVENESS $flags mlnx_hca.pml"
      echo "--- counterexample, one line per step: step, actor, source line, its first statement"
      (
        cd "$WORK/$name"
        # shellcheck disable=SC2086
        $replay >replay.out 2>&1 || true
        compact replay.out
      )
      echo "--- every statement: cd $WORK/$name && $replay"
      KEEP=1
      echo "work directory kept: $WORK"
      ;;
    0)
      echo "NOT CAUGHT: $(summary "$WORK/$name/pan.out")"
      exit 1
      ;;
    *)
      echo "ERROR: the search did not run"
      exit 1
      ;;
  esac
}

while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=1; shift ;;
    *) break ;;
  esac
done

case ${1:-} in
  --list)
    for s in "${SEEDS[@]}"; do echo "${s%%|*}"; done
    exit 0
    ;;
esac

need_tools
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlnx_hca-model.XXXXXX")

case ${1:-} in
  "") main_runs ;;
  --seeds) seeds ;;
  --seed)
    [ $# -ge 2 ] || { echo "usage: run.sh --seed NAME (run.sh --list)" >&2; exit 2; }
    one_seed "$2"
    ;;
  *)
    echo "usage: run.sh [--keep] [--seeds | --seed NAME | --list]" >&2
    exit 2
    ;;
esac
