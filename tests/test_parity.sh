#!/bin/bash
# Parity with the independent PyTorch reference (tests/reference/): for vae, hvae, convhvae and pixelhvae (7x6 images) x
# both likelihoods x every prior, the C code's loss, per-row re/kl and every gradient tensor of one training step must
# match torch autograd (float32); for the pixelhvae also BatchNorm's running statistics after the step and the
# evaluation-mode re/kl with them. Two seeds: the first as one chunk, the second with the batch and the pseudo-inputs
# cut into 3 pieces, as data.stripes cuts them (the pixelhvae's BatchNorm sums combined across the chunks); two more
# cases at 28x28, the data sets' size. parity_dump places every clamp's edges inside the data, and
# --require-clamps fails a configuration in which some clamp never saturates (its gradient mask untested).
# usage: test_parity.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
for model in vae hvae convhvae pixelhvae; do
  for lik in bernoulli logistic256; do
    for prior in standard mog vampprior vampprior_data; do
      for run in "3 1" "11 3"; do
        set -- $run
        seed=$1 chunks=$2
        if "$BUILD/tests/parity_dump" "$TMP/d.h5" $model $lik $prior 7 $seed $chunks >"$TMP/log" 2>&1 &&
          /usr/bin/python3 "$SRC/tests/reference/compare.py" "$TMP/d.h5" --require-clamps >"$TMP/cmp" 2>&1; then
          pass=$((pass + 1))
          echo "$(tail -1 "$TMP/cmp") seed $seed chunks $chunks"
        else
          fail=$((fail + 1))
          echo "FAIL $model $lik $prior seed $seed chunks $chunks"
          cat "$TMP/log" "$TMP/cmp" | sed 's/^/     /'
        fi
      done
    done
  done
done
# the convolutional models at the data sets' 28x28 (stride-2 layers 28 -> 14 -> 7, the 294 features of the presets)
for run in "convhvae bernoulli standard 1" "pixelhvae logistic256 vampprior 2"; do
  set -- $run
  if "$BUILD/tests/parity_dump" "$TMP/d.h5" $1 $2 $3 8 5 $4 28 >"$TMP/log" 2>&1 &&
    /usr/bin/python3 "$SRC/tests/reference/compare.py" "$TMP/d.h5" >"$TMP/cmp" 2>&1; then
    pass=$((pass + 1))
    echo "$(tail -1 "$TMP/cmp") 28x28 chunks $4"
  else
    fail=$((fail + 1))
    echo "FAIL $1 $2 $3 28x28 chunks $4"
    cat "$TMP/log" "$TMP/cmp" | sed 's/^/     /'
  fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -eq 66 ]
