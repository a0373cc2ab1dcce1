#!/bin/bash
# The importance-sampled test log-likelihood of vamp_mpi --eval against the PyTorch reference on the same
# trained parameters and data (within Monte-Carlo error), LL >= ELBO, and the estimate tightening with S.
# usage: test_loglik.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
MPIEXEC=${MPIEXEC:-mpiexec}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 - "$TMP/bin.h5" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(3)
protos = rng.random((6, 64)) < 0.35        # 6 binary 8x8 prototypes, each image a noisy copy of one
def make(n):
    x = protos[rng.integers(0, 6, n)] ^ (rng.random((n, 64)) < 0.05)
    return x.astype(np.uint8) * 255
with h5py.File(sys.argv[1], "w") as f:
    f["train"], f["valid"], f["test"] = make(800), make(80), make(40)
    f.attrs.update(format="vamp_mpi-dataset", version=1, height=8, width=8, kind="binary", source="test")
PY
cat >"$TMP/c.ini" <<INI
[run]
dir = $TMP/run
[data]
path = $TMP/bin.h5
binarize = none
test_limit = 40
[model]
type = vae
hidden = 32
z1 = 4
[prior]
type = vampprior
components = 8
[train]
batch_size = 40
epochs = 15
warmup = 3
[eval]
samples = 0
INI
run() { $MPIEXEC --allow-run-as-root --oversubscribe -n 2 "$BUILD/vamp_mpi" "$@" >>"$TMP/log" 2>&1 || { cat "$TMP/log"; exit 1; }; }
run "$TMP/c.ini"
run --eval "$TMP/run" "$TMP/c.ini" --set eval.samples=20 --set eval.block=20
mv "$TMP/run/eval.h5" "$TMP/small.h5"
run --eval "$TMP/run" "$TMP/c.ini" --set eval.samples=2000 --set eval.block=500
/usr/bin/python3 "$SRC/tests/reference/loglik.py" "$TMP/run/final.h5" "$TMP/bin.h5" "$TMP/small.h5" "$TMP/run/eval.h5"
