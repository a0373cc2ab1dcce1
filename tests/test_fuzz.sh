#!/bin/bash
# Fuzzing the input parsers: valid config text, datasets (attributes, shapes, types, filters, values), IDX, .amat
# and .mat files and checkpoints, mutated at random (tests/tools/fuzz_cases.py, fixed seed, a fixed number of
# cases), each run once through vamp_mpi or vamp_prepare on one rank. Every case must end in a clear verdict:
# accepted (exit 0), a clear reject (exit 2 and an "error:" line), or for vamp_mpi a clear runtime stop (exit 1
# and an "error:" line, e.g. a non-finite gradient from a mutated learning rate); never a crash, a hang or a
# sanitizer report. Prints the counts and the command of every failing case.
# Meant for the sanitizer build (-DVAMP_SANITIZE=ON: AddressSanitizer + UBSan, which scripts/test.sh runs it on);
# given the normal build it catches crashes only. FUZZ_CASES (default 150), FUZZ_SEED (default 1).
# usage: test_fuzz.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
FB=$BUILD
[ "$SANITIZED" = 1 ] && echo "fuzzing the sanitizer build $FB" || echo "fuzzing $FB (not a sanitizer build: crashes only)"
N=${FUZZ_CASES:-150}
SEED=${FUZZ_SEED:-1}
# Open MPI's own allocations look like leaks to LeakSanitizer; one rank needs no daemon
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 OMPI_MCA_ess_singleton_isolated=1

# a checkpoint to mutate: two steps of the base configuration
mkdir -p "$TMP/seed"
sed "s#{case}#$TMP/seed#g" "$SRC/tests/tools/fuzz_base.ini" >"$TMP/seed/base.ini"
/usr/bin/python3 - "$TMP/seed" <<'PY'
import sys, h5py, numpy as np
with h5py.File(f"{sys.argv[1]}/../good.h5", "w") as f:
    for s, n in (("train", 24), ("valid", 8), ("test", 8)):
        f[s] = np.random.default_rng(0).integers(0, 256, size=(n, 6), dtype=np.uint8)
    for k, v in dict(format="vamp_mpi-dataset", version=1, height=2, width=3, kind="gray", source="fuzz").items():
        f.attrs[k] = v
PY
timeout -s KILL 60 "$BUILD/vamp_mpi" "$TMP/seed/base.ini" --set checkpoint.every_steps=1 --set train.max_steps=3 \
  >/dev/null 2>"$TMP/seed/err"
ck=$(ls "$TMP"/seed/run/ckpt-*.h5 2>/dev/null | head -1)
[ -n "$ck" ] || { echo "no checkpoint to mutate: checkpoint cases left out"; sed 's/^/     /' "$TMP/seed/err" | head -5; }

/usr/bin/python3 "$SRC/tests/tools/fuzz_cases.py" "$TMP/cases" "$N" "$SEED" $ck || { echo "FAIL: case generation"; exit 1; }
accepted=0 rejected=0 stopped=0 crashed=0
start=$(date +%s)
for d in "$TMP"/cases/[0-9]*; do
  read -r kind prog args <"$d/cmd"
  args=${args//\{case\}/$d}
  args=${args//\{seedcfg\}/$TMP/seed/base.ini}
  extra=()
  [ "$prog" = vamp_mpi ] && extra=(--set train.max_steps=2)
  # shellcheck disable=SC2086 # args are split on blanks on purpose (no case path holds one)
  (cd "$d" && timeout -s KILL 60 "$FB/$prog" $args "${extra[@]}" >"$d/out" 2>"$d/err")
  rc=$?
  if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$d/err"; then verdict=crash
  elif [ $rc -eq 0 ]; then verdict=accepted
  elif [ $rc -eq 2 ] && grep -q "error:" "$d/err"; then verdict=rejected
  elif [ $rc -eq 1 ] && [ "$prog" = vamp_mpi ] && grep -q "^vamp_mpi: error:" "$d/err" && ! grep -q "MPI_ABORT\|vamp_mpi: rank" "$d/err"; then verdict=stopped
  else verdict=crash; fi
  case $verdict in
    accepted) accepted=$((accepted + 1)) ;;
    rejected) rejected=$((rejected + 1)) ;;
    stopped) stopped=$((stopped + 1)) ;;
    *)
      crashed=$((crashed + 1))
      bad "case $(basename "$d") ($kind, exit $rc): $prog ${args//$TMP/\$TMP}"
      grep -v '^\[' "$d/err" | grep -v '^ *$' | head -8 | cut -c1-220 | sed 's/^/     /'
      ;;
  esac
done
echo "most frequent reasons for a reject (kind: start of the message):"
for d in "$TMP"/cases/[0-9]*; do
  grep -m1 "error:" "$d/err" 2>/dev/null | sed "s#$d#CASE#g; s#$TMP#TMP#g; s/[0-9]\+/N/g" | cut -c1-90 |
    sed "s/^/$(cut -d' ' -f1 "$d/cmd"): /"
done | sort | uniq -c | sort -rn | head -15
echo "fuzz: $N cases (seed $SEED) in $(($(date +%s) - start)) s: $rejected clear rejects (exit 2), $accepted accepted, $stopped clear runtime stops (exit 1), $crashed crashes or unclear exits"
[ $((rejected + accepted + stopped + crashed)) -eq "$N" ] && [ "$N" -gt 0 ] && ok "every case ended in a clear verdict" || bad "counts"
[ $rejected -gt 0 ] && [ $accepted -gt 0 ] && ok "the cases reach both verdicts" || bad "no rejects or no accepted cases: the mutator is off"
finish
