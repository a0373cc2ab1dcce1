#!/bin/bash
# The importance-sampled test log-likelihood of vamp_mpi --eval against the PyTorch reference on the same
# trained parameters and data (within Monte-Carlo error), LL >= ELBO, and the estimate tightening with S.
# usage: test_loglik.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
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
rc=$?
# KL per unit: for a factorised prior the units' KL must add up to the test KL (same samples)
run "$TMP/c.ini" --set run.dir="$TMP/std" --set prior.type=standard --set train.epochs=3
/usr/bin/python3 - "$TMP/std/final.h5" <<'PY' || rc=1
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
units, kl = np.array(f["eval/kl_per_unit_z1"], np.float64), float(f.attrs["test_kl"])
ok = abs(units.sum() - kl) <= 1e-3 * max(1.0, abs(kl))
print(f"{'ok  ' if ok else 'FAIL'} KL per unit adds up to the test KL (standard prior): {units.sum():.5f} vs {kl:.5f}")
sys.exit(0 if ok else 1)
PY
exit $rc
