#!/bin/bash
# Bad input gets a clear error and loses nothing: every bad config, command line, dataset or parameter file
# makes vamp_mpi / vamp_prepare exit with status 2, name the culprit, and write nothing into the run directory.
# Paths of the documented 1023 characters work end to end; one more is refused naming the key.
# usage: test_input_errors.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
# expect NAME NP PATTERN -- command...: exit status 2, stderr matches PATTERN (grep -E), no run dir written
expect() {
  local name=$1 np=$2 pattern=$3
  shift 4
  rm -rf "$TMP/run"
  if [ "$np" = 0 ]; then "$@" >"$TMP/out" 2>"$TMP/err"; else
    $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$@" >"$TMP/out" 2>"$TMP/err"; fi
  local rc=$?
  if [ $rc -eq 2 ] && grep -qE -- "$pattern" "$TMP/err" && [ ! -e "$TMP/run" ]; then
    pass=$((pass + 1))
    echo "ok   $name: $(grep -E -- "$pattern" "$TMP/err" | head -1)"
  else
    fail=$((fail + 1))
    echo "FAIL $name (exit $rc, run dir $([ -e "$TMP/run" ] && echo written || echo absent))"
    sed 's/^/     /' "$TMP/err" | head -5
  fi
}
VAMP="$BUILD/vamp_mpi"
/usr/bin/python3 - "$TMP" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
def make(name, mutate=None, **attrs):
    a = dict(format="vamp_mpi-dataset", version=1, height=2, width=3, kind="gray", source="test")
    a.update(attrs)
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        rng = np.random.default_rng(0)
        for s, n in (("train", 40), ("valid", 12), ("test", 12)):
            f[s] = rng.integers(0, 256, size=(n, 6), dtype=np.uint8)
        for k, v in a.items():
            if v is not None:
                f.attrs[k] = v
        if mutate:
            mutate(f)
make("good")
make("no_valid", lambda f: f.__delitem__("valid"))
def rank3(f):
    del f["test"]; f["test"] = np.zeros((12, 2, 3), np.uint8)
make("rank3", rank3)
make("bad_width", width=4)
def nan(f):
    x = np.full((12, 6), 0.5, np.float32); x[7, 2] = np.nan; del f["valid"]; f["valid"] = x
make("nan", nan)
def big(f):
    x = np.full((40, 6), 0.5, np.float32); x[33, 1] = 1.5; del f["train"]; f["train"] = x
make("out_of_range", big)
make("no_format", format=None)
def int16(f):
    del f["test"]; f["test"] = np.zeros((12, 6), np.int16)
make("int16", int16)
open(f"{d}/not_hdf5.h5", "w").write("hello")
PY
write_ini "$TMP/ok.ini" run.dir="$TMP/run" data.path="$TMP/good.h5" model.hidden=8 model.z1=3 model.z2=2 \
  prior.components=4 train.batch_size=4 train.epochs=1 eval.samples=0
cfg() { # write $TMP/bad.ini = ok.ini plus extra lines
  { cat "$TMP/ok.ini"; printf '%s\n' "$@"; } >"$TMP/bad.ini"
}
expect "missing config" 1 'cannot open config file .*nope.ini' -- "$VAMP" "$TMP/nope.ini"
cfg "[modle]" "type = vae"
expect "unknown section" 1 'bad.ini:1[0-9]: unknown section \[modle\]' -- "$VAMP" "$TMP/bad.ini"
cfg "[model]" "kind = vae"
expect "unknown key" 1 'bad.ini:1[0-9]: unknown key "kind" in \[model\]' -- "$VAMP" "$TMP/bad.ini"
cfg "[model]" "type = vea"
expect "bad enum" 1 'bad.ini:1[0-9]: \[model\] type = "vea": expected one of vae\|hvae' -- "$VAMP" "$TMP/bad.ini"
cfg "[train]" "lr = 12abc"
expect "bad number" 1 'bad.ini:1[0-9]: \[train\] lr = "12abc": expected a number' -- "$VAMP" "$TMP/bad.ini"
expect "out of range" 1 '\[train\] batch_size = "0": expected an integer from 1' -- "$VAMP" "$TMP/ok.ini" --set train.batch_size=0
cfg "[model]" "hidden = 9"
expect "duplicate key" 1 'bad.ini:1[0-9]: \[model\] hidden is set again \(first set on line 6\)' -- "$VAMP" "$TMP/bad.ini"
cfg "this is not ini"
expect "not an INI line" 1 'bad.ini:1[0-9]: not an INI line' -- "$VAMP" "$TMP/bad.ini"
expect "--set bad value" 1 '--set prior.type=vamp: \[prior\] type = "vamp": expected one of standard\|mog\|vampprior\|vampprior_data' -- "$VAMP" "$TMP/ok.ini" --set prior.type=vamp
expect "--set unknown key" 1 '--set train.speed=3: unknown key train.speed' -- "$VAMP" "$TMP/ok.ini" --set train.speed=3
expect "--set without =" 1 '--set train.lr: expected section.key=value' -- "$VAMP" "$TMP/ok.ini" --set train.lr
expect "unknown option" 1 'unknown option "--frobnicate"' -- "$VAMP" "$TMP/ok.ini" --frobnicate
expect "stripes vs ranks" 5 'stripes = 4 is fewer than the 5 ranks .*no data.stripes >= 5 divides train.batch_size = 4: run on at most 4 ranks' -- "$VAMP" "$TMP/ok.ini"
expect "batch vs stripes" 1 'batch_size = 6 is not divisible by \[data\] stripes = 4' -- "$VAMP" "$TMP/ok.ini" --set train.batch_size=6
expect "logistic needs grey" 1 'likelihood = logistic256 .* binarize = none' -- "$VAMP" "$TMP/ok.ini" --set model.likelihood=logistic256
for np in 1 2; do
  expect "missing data file (-n $np)" $np 'cannot open data file ".*missing.h5": No such file' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/missing.h5"
  expect "not HDF5 (-n $np)" $np 'not_hdf5.h5" is not an HDF5 file' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/not_hdf5.h5"
  expect "missing dataset (-n $np)" $np 'no_valid.h5: dataset /valid is missing' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/no_valid.h5"
  expect "wrong rank (-n $np)" $np 'rank3.h5: dataset /test: expected 2-D \(N x 6\), found rank 3' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/rank3.h5"
  expect "D mismatch (-n $np)" $np 'bad_width.h5: dataset /train: rows have 6 values, but the attributes height x width say 2 x 4 = 8' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/bad_width.h5"
  expect "NaN (-n $np)" $np 'nan.h5: dataset /valid: row 7 has the value nan' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/nan.h5"
  expect "out of range (-n $np)" $np 'out_of_range.h5: dataset /train: row 33 has the value 1.5' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/out_of_range.h5"
  expect "foreign file (-n $np)" $np 'no_format.h5: attribute format must be "vamp_mpi-dataset"' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/no_format.h5"
  expect "element type (-n $np)" $np 'int16.h5: dataset /test: element type must be uint8' -- "$VAMP" "$TMP/ok.ini" --set data.path="$TMP/int16.h5"
done
expect "binary data needed" 1 'good.h5: dataset /train: row 0 has the value .* needs 0/1 data' -- "$VAMP" "$TMP/ok.ini" --set data.binarize=none
expect "train limit too large" 1 'good.h5: dataset /train has 40 rows, fewer than data.train_limit = 41' -- "$VAMP" "$TMP/ok.ini" --set data.train_limit=41
expect "--eval missing params" 1 'cannot open parameter file ".*nowhere"' -- "$VAMP" --eval "$TMP/nowhere" "$TMP/ok.ini"
mkdir -p "$TMP/other" && "$VAMP" "$TMP/ok.ini" --set run.dir="$TMP/other" --set model.type=vae >/dev/null 2>&1
expect "--eval params of another model" 1 'final.h5: dataset /params/q_z2_layers.0.h.weight is missing' -- "$VAMP" --eval "$TMP/other" "$TMP/ok.ini"
touch "$TMP/file"
expect "run dir is a file" 1 'run\] dir = ".*file/sub": cannot create or write the run directory' -- "$VAMP" "$TMP/ok.ini" --set run.dir="$TMP/file/sub"

# Paths of the documented limit, 1023 characters, work end to end: data.path and run.dir, checkpoints and a resume,
# on 1 and 2 ranks (Open MPI's lockedfile component aborted MPI_File_open from ~245 characters on); 1024 are refused
# naming the key, on the command line and in a file.
longdir() { # DIR_LENGTH: creates and prints a directory path of exactly that many characters under $TMP/L
  local want=$1 d="$TMP/L" seg
  seg=$(printf 'd%.0s' $(seq 1 100))
  while [ $((${#d} + 101 + 50)) -le "$want" ]; do d="$d/$seg"; done
  d="$d/$(printf 'e%.0s' $(seq 1 $((want - ${#d} - 1))))"
  mkdir -p "$d" && echo "$d"
}
ldata="$(longdir 1015)/good.h5"
cp "$TMP/good.h5" "$ldata"
lrun=$(longdir 1023) && rmdir "$lrun"
for np in 1 2; do
  rm -rf "$lrun"
  timeout -s KILL 120 $MPIEXEC --allow-run-as-root --oversubscribe -n $np "$VAMP" "$TMP/ok.ini" --set data.path="$ldata" \
    --set run.dir="$lrun" --set checkpoint.every_steps=3 --set train.patience=0 >"$TMP/out" 2>"$TMP/err"
  rc1=$?
  timeout -s KILL 120 $MPIEXEC --allow-run-as-root --oversubscribe -n $np "$VAMP" "$TMP/ok.ini" --set data.path="$ldata" \
    --set run.dir="$lrun" --set checkpoint.every_steps=3 --set train.patience=0 --set train.epochs=2 >"$TMP/out2" 2>>"$TMP/err"
  rc2=$?
  if [ ${#ldata} -eq 1023 ] && [ ${#lrun} -eq 1023 ] && [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && grep -q "^resumed from " "$TMP/out2" &&
    [ -f "$lrun/final.h5" ] && ! grep -q "cannot resume" "$TMP/out2"; then
    ok "1023-character data.path and run.dir: trained, checkpointed, resumed (-n $np)"
  else
    bad "1023-character paths (-n $np): exit $rc1, $rc2; lengths ${#ldata}, ${#lrun}" "$TMP/err"
    grep "resum" "$TMP/out2" | cut -c1-200 | sed 's/^/     /'
  fi
done
expect "1024-character data.path" 1 '--set data.path=.*\(1024 characters\): \[data\] path = ".*\(1024 characters\)": expected a non-empty path of at most 1023 characters' -- "$VAMP" "$TMP/ok.ini" --set data.path="${ldata}x"
sed "s#^dir = .*#dir = ${lrun}x#" "$TMP/ok.ini" >"$TMP/bad.ini"
expect "1024-character run.dir in a file" 1 'bad.ini:2: \[run\] dir = ".*\(1024 characters\)": expected a non-empty path of at most 1023' -- "$VAMP" "$TMP/bad.ini"

# vamp_prepare
/usr/bin/python3 - "$TMP" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def idx(n, r, c, extra=b""):
    return struct.pack(">IIII", 0x803, n, r, c) + bytes((i * 7) % 256 for i in range(n * r * c)) + extra
open(f"{d}/tr.idx", "wb").write(idx(30, 2, 3))
gzip.open(f"{d}/te.idx.gz", "wb").write(idx(8, 2, 3))
open(f"{d}/trunc.idx", "wb").write(idx(30, 2, 3)[:-5])
open(f"{d}/magic.idx", "wb").write(struct.pack(">IIII", 0x801, 30, 2, 3) + bytes(180))
open(f"{d}/te34.idx", "wb").write(idx(8, 3, 4))
PY
P="$BUILD/vamp_prepare"
expect "prepare: missing file" 0 'vamp_prepare: error: .*nothere.idx: cannot open' -- "$P" idx --train-images "$TMP/nothere.idx" --test-images "$TMP/te.idx.gz" --out "$TMP/run"
expect "prepare: truncated" 0 'trunc.idx: truncated: the header promises 30 images of 2x3' -- "$P" idx --train-images "$TMP/trunc.idx" --test-images "$TMP/te.idx.gz" --out "$TMP/run"
expect "prepare: bad magic" 0 'magic.idx: not an IDX image file: magic 0x00000801' -- "$P" idx --train-images "$TMP/magic.idx" --test-images "$TMP/te.idx.gz" --out "$TMP/run"
expect "prepare: shape mismatch" 0 'te34.idx: images are 3x4, but the training images are 2x3' -- "$P" idx --train-images "$TMP/tr.idx" --test-images "$TMP/te34.idx" --out "$TMP/run"
expect "prepare: too few for validation" 0 'tr.idx: has 30 images: too few for --n-valid 30' -- "$P" idx --train-images "$TMP/tr.idx" --test-images "$TMP/te.idx.gz" --out "$TMP/run" --n-valid 30
# and a good conversion, checked value by value
if "$P" idx --train-images "$TMP/tr.idx" --test-images "$TMP/te.idx.gz" --out "$TMP/conv.h5" --n-valid 10 >/dev/null &&
  /usr/bin/python3 - "$TMP/conv.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
allx = np.array([(i * 7) % 256 for i in range(30 * 6)], np.uint8).reshape(30, 6)
assert (f["train"][...] == allx[:20]).all() and (f["valid"][...] == allx[20:]).all()
assert (f["test"][...] == np.array([(i * 7) % 256 for i in range(48)], np.uint8).reshape(8, 6)).all()
a = f.attrs
assert a["format"] == b"vamp_mpi-dataset" or a["format"] == "vamp_mpi-dataset", a["format"]
assert int(a["version"]) == 1 and int(a["height"]) == 2 and int(a["width"]) == 3
assert a["kind"] in (b"gray", "gray") and a["source"] in (b"idx:tr.idx", "idx:tr.idx")
PY
then pass=$((pass + 1)); echo "ok   prepare: IDX (plain + gzip) converted exactly with the 20/10/8 split"
else fail=$((fail + 1)); echo "FAIL prepare: conversion"; fi

finish
