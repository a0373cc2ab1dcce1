#!/bin/bash
# The PyTorch trainer tests/reference/train_ref.py (the other side of analysis/side_by_side.py): its defaults are
# vamp_mpi's, a bad key stops it with exit 2, and 2 epochs on tiny synthetic data (vae + vampprior_data with
# dynamic binarisation; hvae + mog with the discretised logistic) write metrics.csv and results.json with finite
# values and a validation loss that went down, and its early stopping ends where vamp_mpi's does.
# usage: test_train_ref.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
TR="$SRC/tests/reference/train_ref.py"

if /usr/bin/python3 - "$BUILD/tests/config_dump" "$SRC/tests/reference" <<'PY' >"$TMP/defaults" 2>&1; then
import configparser, subprocess, sys
sys.path.insert(0, sys.argv[2])
from train_ref import DEFAULTS
cp = configparser.ConfigParser(interpolation=None)
cp.read_string(subprocess.run([sys.argv[1]], capture_output=True, text=True, check=True).stdout)
code = {(s, k): v for s in cp.sections() for k, v in cp[s].items()}
mine = {(s, k): v for s, keys in DEFAULTS.items() for k, v in keys.items()}
bad = [f"{s}.{k}: vamp_mpi {code.get((s, k))}, train_ref {mine.get((s, k))}" for s, k in sorted(set(code) | set(mine))
       if code.get((s, k)) != mine.get((s, k))]
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
  ok "train_ref.py knows every vamp_mpi key with its default"
else
  bad "train_ref.py defaults differ from vamp_mpi's" "$TMP/defaults"
fi

/usr/bin/python3 - "$TMP" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(5)
protos = rng.random((6, 64))                # 6 grey 8x8 prototypes, each image a noisy copy of one
def make(n):
    x = protos[rng.integers(0, 6, n)] + 0.1 * rng.standard_normal((n, 64))
    return np.clip(np.round(255 * x), 0, 255).astype(np.uint8)
with h5py.File(sys.argv[1] + "/gray.h5", "w") as f:
    f["train"], f["valid"], f["test"] = make(600), make(100), make(50)
    f.attrs.update(format="vamp_mpi-dataset", version=1, height=8, width=8, kind="gray", source="test")
PY
cat >"$TMP/c.ini" <<INI
[data]
path = $TMP/gray.h5
binarize = dynamic   ; an inline comment, as inih reads it
stripes = 4
[model]
type = vae
hidden = 32
z1 = 4
z2 = 3
[prior]
type = vampprior_data
components = 8
[train]
batch_size = 20
epochs = 2
warmup = 2
[eval]
samples = 40
block = 16
INI

/usr/bin/python3 "$TR" "$TMP/c.ini" --out "$TMP/x" --set model.hiden=3 >"$TMP/log" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "hiden" "$TMP/log" && [ ! -e "$TMP/x" ]; then
  ok "an unknown key: exit 2 naming it, nothing written"
else
  bad "an unknown key: exit $rc" "$TMP/log"
fi

# check_run DIR: results.json finite, 2 epochs, validation loss of epoch 2 below epoch 1's
check_run() {
  /usr/bin/python3 - "$1" <<'PY'
import csv, json, math, sys
r = json.load(open(sys.argv[1] + "/results.json"))
rows = list(csv.DictReader(open(sys.argv[1] + "/metrics.csv")))
keys = ("test_ll", "test_ll_se", "test_elbo", "test_re", "test_kl", "train_seconds")
bad = [k for k in keys if not isinstance(r[k], (int, float)) or not math.isfinite(r[k])]
v = [float(x["val_loss"]) for x in rows]
print(f"test_ll {r['test_ll']:.3f} +- {r['test_ll_se']:.3f}, elbo {r['test_elbo']:.3f}, AU {r['active_units_z1']}/"
      f"{r['active_units_z2']}, validation loss {' -> '.join(f'{x:.3f}' for x in v)}")
ok = not bad and r["epochs"] == 2 and len(v) == 2 and v[1] < v[0] and r["test_ll"] >= r["test_elbo"] - 1.0
sys.exit(0 if ok else 1)
PY
}
for run in "vae vampprior_data dynamic bernoulli" "hvae mog none logistic256"; do
  set -- $run
  name="$1 + $2, binarize $3, $4"
  if nice -n 5 /usr/bin/python3 "$TR" "$TMP/c.ini" --out "$TMP/$1_$2" --set model.type=$1 --set prior.type=$2 \
       --set data.binarize=$3 --set model.likelihood=$4 --seed 3 >"$TMP/log" 2>&1 &&
     check_run "$TMP/$1_$2" >"$TMP/check" 2>&1; then
    ok "$name: $(cat "$TMP/check")"
  else
    cat "$TMP/check" >>"$TMP/log" 2>/dev/null
    bad "$name" "$TMP/log"
  fi
done

# Early stopping as vamp_mpi: with lr = 1e-12 the parameters stay put, so (with the same validation noise every
# epoch) the validation loss never improves after epoch 1; the counter is held at 0 for epochs < warmup = 3 and
# stops the run once it exceeds patience = 2: after epoch 5, best epoch 1, in both trainers.
es="--set train.lr=1e-12 --set train.warmup=3 --set train.patience=2 --set train.epochs=20 --set eval.samples=0"
/usr/bin/python3 "$TR" "$TMP/c.ini" --out "$TMP/es" $es >"$TMP/log" 2>&1
$MPIEXEC --allow-run-as-root -n 2 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/es_v" $es >>"$TMP/log" 2>&1
if /usr/bin/python3 - "$TMP" >>"$TMP/log" 2>&1 <<'PY'; then
import json, sys, h5py
r = json.load(open(sys.argv[1] + "/es/results.json"))
v = h5py.File(sys.argv[1] + "/es_v/final.h5", "r").attrs
print(f"torch {r['epochs']}/{r['best_epoch']}, vamp_mpi {int(v['epochs'])}/{int(v['best_epoch'])}")
sys.exit(0 if (r["epochs"], r["best_epoch"], int(v["epochs"]), int(v["best_epoch"])) == (5, 1, 5, 1) else 1)
PY
  ok "early stopping: both trainers stop after epoch 5 (patience 2, warm-up 3), best epoch 1"
else
  bad "early stopping" "$TMP/log"
fi
finish
