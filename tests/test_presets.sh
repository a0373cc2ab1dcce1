#!/bin/bash
# Every preset in configs/ parses and passes the cross-key checks (vamp_mpi stops only at the missing data file).
# usage: test_presets.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
for f in "$SRC"/configs/quickstart.ini "$SRC"/configs/*/*.ini; do
  out=$(cd /tmp && "$BUILD/vamp_mpi" "$f" --set data.path=/nonexistent/data.h5 2>&1)
  if echo "$out" | grep -q 'cannot open data file "/nonexistent/data.h5"'; then pass=$((pass + 1))
  else fail=$((fail + 1)); echo "FAIL $f: $out" | head -3; fi
done
finish
