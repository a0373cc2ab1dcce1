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
verify() { # python check of one converted file: mode, output name, split (ordered|shuffled|-), split seed
  /usr/bin/python3 - "$TMP" "$@" <<'PY'
import sys, h5py, numpy as np
from scipy.io import loadmat
d, mode, name, split, seed = sys.argv[1:6]
f = h5py.File(f"{d}/{name}.h5", "r")
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
def rows(a):  # the multiset of rows, for a shuffled split
    a = np.ascontiguousarray(np.asarray(a, np.float64))
    return sorted(map(bytes, a.view(np.uint8).reshape(len(a), -1)))
if split == "-":
    assert "split" not in f.attrs, "a converter whose reference loader does not shuffle records no split"
else:
    assert A("split") == split, (A("split"), split)
if split == "shuffled":
    assert int(A("split_seed")) == int(seed)
    n_shuffled = 1965 if mode == "frey" else len(want[0]) + len(want[1])  # frey: all frames; omniglot: train+valid
    orig = np.concatenate(want)[:n_shuffled]
    got_all = np.concatenate([f[s][...] for s in ("train", "valid", "test")])[:n_shuffled].astype(np.float64)
    assert rows(got_all) == rows(np.asarray(orig, np.float64).astype(f["train"].dtype)), "shuffled: not the same images"
    moved = np.mean([not np.array_equal(g, w) for g, w in zip(got_all, np.asarray(orig, np.float64).astype(f["train"].dtype))])
    assert moved > 0.9, f"shuffled: only {moved:.2f} of the images moved"
    lens = [len(w) for w in want]
    want = np.split(got_all, np.cumsum(lens)[:-1])[:2] + [want[2]] if mode == "omniglot" else np.split(got_all, np.cumsum(lens)[:-1])
    print(f"{mode}: shuffled with seed {seed}, {moved:.2f} of the images moved, the same images")
for s, w in zip(("train", "valid", "test"), want):
    got = f[s][...]
    assert got.shape == w.shape, (s, got.shape, w.shape)
    assert np.array_equal(got.astype(np.float64), np.asarray(w, np.float64).astype(got.dtype).astype(np.float64)), s
    if got.dtype == np.float32:
        assert np.array_equal(got, np.asarray(w, np.float32)), s
assert A("kind") == kind and (int(A("height")), int(A("width"))) == hw and A("format") == "vamp_mpi-dataset"
print(f"{mode} ({split} split): {[f[s].shape for s in ('train', 'valid', 'test')]} {f['train'].dtype} kind {kind}: exact")
PY
}
convert() { # mode, name, split, seed, vamp_prepare arguments...: convert, then check every value against the
  local mode=$1 name=$2 split=$3 seed=$4  # reference loader (shuffled: the same images, moved)
  shift 4
  if "$P" "$mode" "$@" --out "$TMP/$name.h5" >"$TMP/out" 2>&1 && verify "$mode" "$name" "$split" "$seed" >>"$TMP/out" 2>&1; then
    pass=$((pass + 1)); echo "ok   $(tail -1 "$TMP/out")"
  else
    fail=$((fail + 1)); echo "FAIL $mode"; sed 's/^/     /' "$TMP/out" | tail -8
  fi
}
convert amat amat - 0 --train "$TMP/train.amat" --valid "$TMP/valid.amat" --test "$TMP/test.amat"
convert omniglot omniglot shuffled 14 --mat "$TMP/chardata.mat"
convert omniglot omniglot_ordered ordered 0 --mat "$TMP/chardata.mat" --split ordered
convert caltech caltech - 0 --mat "$TMP/caltech.mat"
convert frey frey shuffled 14 --mat "$TMP/frey.mat"
convert frey frey_ordered ordered 0 --mat "$TMP/frey.mat" --split ordered
convert frey frey_seed7 shuffled 7 --mat "$TMP/frey.mat" --split-seed 7
# The shuffled split is a fixed function of the seed: converting again gives the same bytes, another seed not.
"$P" frey --mat "$TMP/frey.mat" --out "$TMP/frey_again.h5" >/dev/null 2>&1
if h5diff -q "$TMP/frey.h5" "$TMP/frey_again.h5" /train && ! h5diff -q "$TMP/frey.h5" "$TMP/frey_seed7.h5" /train >/dev/null 2>&1
then ok "frey: the shuffled split is the same for the same seed and differs for another"
else bad "frey: the shuffled split is the same for the same seed and differs for another"; fi
# The real Frey Faces file, where the machine has it beside the repository (never copied into it).
FREY_MAT="$SRC/../shared/data/frey_rawface.mat"
if [ -f "$FREY_MAT" ]; then
  if "$P" frey --mat "$FREY_MAT" --out "$TMP/frey_real.h5" >"$TMP/out" 2>&1 &&
     grep -q "train 1565, valid 200, test 200 images of 28x20" "$TMP/out" &&
     [ "$(h5dump -a /split_seed "$TMP/frey_real.h5" | grep -c '(0): 14')" = 1 ]
  then ok "frey_rawface.mat from shared/data: 1565/200/200 images of 28x20, shuffled with seed 14"
  else bad "frey_rawface.mat from shared/data" "$TMP/out"; fi
else
  echo "SKIP frey_rawface.mat: not found at $FREY_MAT (the tests read it from shared/data beside the repository)"
fi
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
expect2 "--split on a format that does not shuffle" '--split is for omniglot and frey only' "$P" caltech --mat "$TMP/caltech.mat" --split shuffled --out "$TMP/x.h5"
expect2 "--split: unknown value" '--split random: expected shuffled or ordered' "$P" frey --mat "$TMP/frey.mat" --split random --out "$TMP/x.h5"
expect2 "--split-seed: not an integer" '--split-seed x: expected an integer' "$P" frey --mat "$TMP/frey.mat" --split-seed x --out "$TMP/x.h5"
finish
