#!/bin/bash
# vamp_prepare on small files of every format the paper's datasets come in, made here (scipy's savemat for .mat):
# the converted /train, /valid, /test and attributes must equal what the reference code's loaders would produce
# (before their shuffling), value by value; malformed files give exit 2 naming the file.
# usage: test_prepare.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
P="$BUILD/vamp_prepare"
/usr/bin/python3 - "$TMP" <<'PY'
import sys
import numpy as np
from scipy.io import savemat
d = sys.argv[1]
rng = np.random.default_rng(5)
# static MNIST .amat: 0/1 integers, 16 pixels (4x4), 5/3/4 images
for name, n in (("train", 5), ("valid", 3), ("test", 4)):
    x = rng.integers(0, 2, (n, 16))
    np.save(f"{d}/amat_{name}.npy", x)
    open(f"{d}/{name}.amat", "w").write("".join(" ".join(map(str, r)) + "\n" for r in x))
open(f"{d}/bad.amat", "w").write("0 1 1 0\n0 1 2 0\n")
open(f"{d}/ragged.amat", "w").write("0 1 1 0\n0 1 0\n")
# OMNIGLOT: images as columns of 784 x N, grey in [0,1]
data = rng.random((784, 1400)); testdata = rng.random((784, 7))
savemat(f"{d}/chardata.mat", {"data": data, "testdata": testdata})
savemat(f"{d}/nodata.mat", {"other": data})
# Caltech 101 Silhouettes: images as rows of N x 784, binary
savemat(f"{d}/caltech.mat", {"train_data": rng.integers(0, 2, (6, 784)).astype(float),
                             "val_data": rng.integers(0, 2, (3, 784)).astype(float),
                             "test_data": rng.integers(0, 2, (4, 784)).astype(float)})
# Frey Faces: ff 560 x 1965 uint8
savemat(f"{d}/frey.mat", {"ff": rng.integers(0, 256, (560, 1965)).astype(np.uint8)})
open(f"{d}/notmat.mat", "w").write("hello")
PY
verify() { # python check of one converted file: mode
  /usr/bin/python3 - "$TMP" "$1" <<'PY'
import sys, h5py, numpy as np
from scipy.io import loadmat
d, mode = sys.argv[1], sys.argv[2]
f = h5py.File(f"{d}/{mode}.h5", "r")
A = lambda k: f.attrs[k].decode() if isinstance(f.attrs[k], bytes) else f.attrs[k]
F = lambda x: x.reshape((-1, 28, 28)).reshape((-1, 784), order="F")  # the reference's reshape
if mode == "amat":
    want = [np.load(f"{d}/amat_{s}.npy") * 255 for s in ("train", "valid", "test")]
    kind, hw = "binary", (4, 4)
elif mode == "omniglot":
    m = loadmat(f"{d}/chardata.mat"); tr = F(m["data"].T.astype("float32")); te = F(m["testdata"].T.astype("float32"))
    want = [tr[:-1345], tr[-1345:], te]
    kind, hw = "gray", (28, 28)
elif mode == "caltech":
    m = loadmat(f"{d}/caltech.mat")
    want = [(1 - F(m[k].astype("float32"))) * 255 for k in ("train_data", "val_data", "test_data")]
    kind, hw = "binary", (28, 28)
else:
    x = loadmat(f"{d}/frey.mat")["ff"].T
    want = [x[:1565], x[1565:1765], x[1765:1965]]
    kind, hw = "gray", (28, 20)
for s, w in zip(("train", "valid", "test"), want):
    got = f[s][...]
    assert got.shape == w.shape, (s, got.shape, w.shape)
    assert np.array_equal(got.astype(np.float64), np.asarray(w, np.float64).astype(got.dtype).astype(np.float64)), s
    if got.dtype == np.float32:
        assert np.array_equal(got, np.asarray(w, np.float32)), s
assert A("kind") == kind and (int(A("height")), int(A("width"))) == hw and A("format") == "vamp_mpi-dataset"
print(f"{mode}: {[f[s].shape for s in ('train', 'valid', 'test')]} {f['train'].dtype} kind {kind}: exact")
PY
}
convert() { # mode, vamp_prepare arguments...: convert, then check every value against the reference loader
  local mode=$1
  shift
  if "$P" "$mode" "$@" --out "$TMP/$mode.h5" >"$TMP/out" 2>&1 && verify "$mode" >>"$TMP/out" 2>&1; then
    pass=$((pass + 1)); echo "ok   $(tail -1 "$TMP/out")"
  else
    fail=$((fail + 1)); echo "FAIL $mode"; sed 's/^/     /' "$TMP/out" | tail -8
  fi
}
convert amat --train "$TMP/train.amat" --valid "$TMP/valid.amat" --test "$TMP/test.amat"
convert omniglot --mat "$TMP/chardata.mat"
convert caltech --mat "$TMP/caltech.mat"
convert frey --mat "$TMP/frey.mat"
expect2() { # name, stderr pattern, command...
  local name=$1 pat=$2
  shift 2
  rm -f "$TMP/x.h5"
  "$@" >"$TMP/out" 2>&1
  local rc=$?
  if [ $rc -eq 2 ] && grep -qE -- "$pat" "$TMP/out" && [ ! -e "$TMP/x.h5" ] && ! compgen -G "$TMP/x.h5.tmp*" >/dev/null; then
    pass=$((pass + 1)); echo "ok   $name: $(head -1 "$TMP/out")"; else fail=$((fail + 1)); echo "FAIL $name (exit $rc)"; cat "$TMP/out"; fi
}
expect2 "amat: not 0/1" 'bad.amat: line 2, value 3: "2" is not 0 or 1' "$P" amat --train "$TMP/bad.amat" --valid "$TMP/valid.amat" --test "$TMP/test.amat" --out "$TMP/x.h5"
expect2 "amat: ragged" 'ragged.amat: line 2 has 3 values, the first image has 4' "$P" amat --train "$TMP/ragged.amat" --valid "$TMP/valid.amat" --test "$TMP/test.amat" --out "$TMP/x.h5"
expect2 "mat: missing variable" 'nodata.mat: no variable "data"' "$P" omniglot --mat "$TMP/nodata.mat" --out "$TMP/x.h5"
expect2 "mat: not a .mat file" 'notmat.mat: not a MATLAB .mat file' "$P" omniglot --mat "$TMP/notmat.mat" --out "$TMP/x.h5"
expect2 "mat: wrong variable shape" 'chardata.mat: variable "ff" has 784 rows, expected 560|no variable "ff"' "$P" frey --mat "$TMP/chardata.mat" --out "$TMP/x.h5"
expect2 "mat: missing file" 'missing.mat: cannot open' "$P" caltech --mat "$TMP/missing.mat" --out "$TMP/x.h5"
finish
