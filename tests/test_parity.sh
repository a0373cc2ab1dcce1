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
# case LABEL COMPARE_ARGS -- PARITY_DUMP_ARGS...: one dump compared with torch, counted in pass / fail
case_() {
  local label=$1 cmp_args=$2
  shift 3
  if "$BUILD/tests/parity_dump" "$TMP/d.h5" "$@" >"$TMP/log" 2>&1 &&
    /usr/bin/python3 "$SRC/tests/reference/compare.py" "$TMP/d.h5" $cmp_args >"$TMP/cmp" 2>&1; then
    pass=$((pass + 1))
    echo "$(tail -1 "$TMP/cmp") $label"
  else
    fail=$((fail + 1))
    echo "FAIL $* ($label)"
    cat "$TMP/log" "$TMP/cmp" | sed 's/^/     /'
  fi
}
for model in vae hvae convhvae pixelhvae; do
  for lik in bernoulli logistic256; do
    for prior in standard mog vampprior vampprior_data; do
      for run in "3 1" "11 3"; do
        set -- $run
        case_ "seed $1 chunks $2" --require-clamps -- $model $lik $prior 7 $1 $2
      done
    done
  done
done
# the convolutional models at the data sets' 28x28 (stride-2 layers 28 -> 14 -> 7, the 294 features of the presets)
case_ "28x28 chunks 1" "" -- convhvae bernoulli standard 8 5 1 28
case_ "28x28 chunks 2" "" -- pixelhvae logistic256 vampprior 8 5 2 28
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -eq 66 ]
