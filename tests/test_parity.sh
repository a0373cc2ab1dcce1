#!/bin/bash
# Parity with the independent PyTorch reference (tests/reference/): for vae and hvae x both likelihoods x
# every prior, the C code's loss and every gradient tensor of one training step must match torch autograd.
# usage: test_parity.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
for model in vae hvae; do
  for lik in bernoulli logistic256; do
    for prior in standard mog vampprior vampprior_data; do
      for seed in 3 11; do
        if "$BUILD/tests/parity_dump" "$TMP/d.h5" $model $lik $prior 7 $seed >"$TMP/log" 2>&1 &&
          /usr/bin/python3 "$SRC/tests/reference/compare.py" "$TMP/d.h5" >"$TMP/cmp" 2>&1; then
          pass=$((pass + 1))
          tail -1 "$TMP/cmp"
        else
          fail=$((fail + 1))
          echo "FAIL $model $lik $prior seed $seed"
          cat "$TMP/log" "$TMP/cmp" | sed 's/^/     /'
        fi
      done
    done
  done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
