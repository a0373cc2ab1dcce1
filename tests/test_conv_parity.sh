#!/bin/bash
# Parity of the convolution kernels (conv.h) with PyTorch: conv_dump runs Conv2d, GatedConv2d, the masked Conv2d,
# BatchNorm2d (training mode over 1 and 3 chunks, running statistics, evaluation mode) and ReLU on random inputs;
# tests/reference/conv_parity.py feeds torch the same tensors (the reference's GatedConv2d and MaskedConv2d) and
# compares every output and gradient. Two seeds.
# usage: test_conv_parity.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
for seed in 1 7; do
  if "$BUILD/tests/conv_dump" "$TMP/c.h5" $seed >"$TMP/log" 2>&1 &&
    /usr/bin/python3 "$SRC/tests/reference/conv_parity.py" "$TMP/c.h5" >"$TMP/cmp" 2>&1; then
    ok "seed $seed: $(tail -1 "$TMP/cmp")"
  else
    bad "seed $seed" "$TMP/log"
    grep -v '^ok' "$TMP/cmp" | sed 's/^/     /'
  fi
done
finish
