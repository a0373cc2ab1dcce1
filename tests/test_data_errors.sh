#!/bin/bash
# Dataset checks of data_load that test_input_errors.sh leaves out: every root attribute (missing, wrong type,
# wrong value), Inf and negative values, a bad value seen by the last rank only, splits shorter than the stripes
# or a limit, a group where a dataset belongs, float64 data, a chunk filter HDF5 cannot decode (h5py's LZF), a
# declared 10^12 rows, data or a model larger than the memory or ulimit -v allows (said with how much and which
# key to lower), a ulimit -v too small for MPI to start; each exits 2 on every rank (no hang) and names the
# file and the dataset, attribute or key. Good float32 data with limits is accepted. Also vamp_prepare: --source,
# --help, plain + gzip input, and a failed conversion leaves no file (not even a temporary one) behind.
# usage: test_data_errors.sh BUILD_DIR SOURCE_DIR   (env MPIEXEC)
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
# run NP -- command...: NP 0 = one rank without mpiexec; a hang is a failure (timeout)
run() {
  local np=$1
  shift 2
  if [ "$np" = 0 ]; then timeout 60 "$@" >"$TMP/out" 2>"$TMP/err"; else
    timeout 60 $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$@" >"$TMP/out" 2>"$TMP/err"; fi
}
# expect NAME NP PATTERN [--set ...]: vamp_mpi on $TMP/ok.ini exits 2, stderr matches PATTERN (grep -E), once
expect() {
  local name=$1 np=$2 pattern=$3
  shift 3
  rm -rf "$TMP/run"
  run "$np" -- "$BUILD/vamp_mpi" "$TMP/ok.ini" "$@"
  local rc=$? n
  n=$(grep -cE -- "$pattern" "$TMP/err")
  if [ $rc -eq 2 ] && [ "$n" -eq 1 ] && [ ! -e "$TMP/run" ]; then
    ok "$name: $(grep -E -- "$pattern" "$TMP/err")"
  else
    bad "$name (exit $rc, $n matching lines, run dir $([ -e "$TMP/run" ] && echo written || echo absent))"
    sed 's/^/     /' "$TMP/err" | head -5
  fi
}

/usr/bin/python3 - "$TMP" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
def make(name, mutate=None, rows=(40, 12, 12), **attrs):
    a = dict(format="vamp_mpi-dataset", version=1, height=2, width=3, kind="gray", source="test")
    a.update(attrs)
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        for s, n in zip(("train", "valid", "test"), rows):
            x = (np.arange(n * 6).reshape(n, 6) * 7 % 256).astype(np.uint8)
            f[s] = x
        for k, v in a.items():
            if v is not None:
                f.attrs[k] = v
        if mutate:
            mutate(f)
def put(split, row, col, v):
    def m(f):
        x = f[split][...].astype(np.float32) / 255; x[row, col] = v; del f[split]; f[split] = x
    return m
make("inf_last", put("test", 11, 5, np.inf))      # the last row: only the last rank sees it
make("negative", put("train", 0, 0, -0.25))
make("nan_last", put("train", 39, 2, np.nan))     # the last row of /train
make("version2", version=2)
make("no_version", version=None)
make("version_str", version="1")
make("no_height", height=None)
make("width_frac", width=2.5)
make("height0", height=0)
make("kind_color", kind="color")
make("no_kind", kind=None)
make("kind_int", kind=3)
make("other_format", format="something-else")
make("format_int", format=7)
def group(f):
    del f["valid"]; f.create_group("valid")
make("valid_group", group)
make("short_test", rows=(40, 12, 5))
def f64(f):
    x = f["valid"][...] / 255.0; del f["valid"]; f["valid"] = x
make("float64", f64)
# good float32 data with 0/1 values only, kind binary: accepted with bernoulli and binarize = none
def binary(f):
    for s in ("train", "valid", "test"):
        x = (f[s][...] % 3 == 0).astype(np.float32); del f[s]; f[s] = x
make("binary_f32", binary, kind="binary")
def half(f):  # the same with one 0.5 on the last training row
    binary(f); x = f["train"][...]; x[39, 4] = 0.5; del f["train"]; f["train"] = x
make("binary_half", half, kind="binary")
# the same binary data with its string attributes as numpy bytes: h5py writes them fixed-length, NUL-padded,
# filling every byte (no terminator)
make("binary_bytes", binary, format=np.bytes_(b"vamp_mpi-dataset"), kind=np.bytes_(b"binary"),
     source=np.bytes_(b"test"))
def lzf(f):  # h5py's own LZF filter: libhdf5 cannot decode it
    x = f["train"][...]; del f["train"]; f.create_dataset("train", data=x, compression="lzf", chunks=(8, 6))
make("lzf", lzf)
def rows(n, d=6):  # a /train that declares n rows of d pixels (chunked, nothing written: a small file)
    def m(f):
        del f["train"]; f.create_dataset("train", shape=(n, d), dtype=np.uint8, chunks=(1024, d))
    return m
make("rows1e12", rows(10**12))
def rows4e9_4096px(f):  # 64x64 images, 4e9 of them declared in /train: about 61 TiB as floats
    for s, n in (("valid", 12), ("test", 12)):
        del f[s]; f[s] = np.zeros((n, 4096), np.uint8)
    rows(4 * 10**9, 4096)(f)
make("rows4e9_4096px", rows4e9_4096px, height=64, width=64)
def unknown_filter(f):  # a filter id nobody registered
    x = f["test"][...]; del f["test"]
    f.create_dataset("test", data=x, chunks=(4, 6), compression=307, compression_opts=(1,), allow_unknown_filter=True)
make("unknown_filter", unknown_filter)
PY
write_ini "$TMP/ok.ini" run.dir="$TMP/run" data.path="$TMP/inf_last.h5" model.hidden=8 model.z1=3 model.z2=2 \
  prior.components=8 train.batch_size=8 train.epochs=1 eval.samples=0
D="--set data.path=$TMP"
for np in 2 4; do
  expect "Inf seen by the last rank only (-n $np)" $np 'inf_last.h5: dataset /test: row 11 has the value inf; values must lie in \[0, 1\]' $D/inf_last.h5
  expect "NaN on the last training row (-n $np)" $np 'nan_last.h5: dataset /train: row 39 has the value nan' $D/nan_last.h5
done
expect "Inf (1 rank)" 0 'inf_last.h5: dataset /test: row 11 has the value inf' $D/inf_last.h5
expect "negative value" 0 'negative.h5: dataset /train: row 0 has the value -0.25; values must lie in \[0, 1\]' $D/negative.h5
expect "non-binary value for bernoulli without binarisation (-n 2)" 2 'binary_half.h5: dataset /train: row 39 has the value 0.5, but likelihood bernoulli with data.binarize = none needs 0/1 data' $D/binary_half.h5 --set data.binarize=none
# attribute_error NAME NP FILE RULE WHY: vamp_mpi refuses $TMP/FILE.h5 saying "FILE.h5: attribute RULE (WHY)"
attribute_error() { expect "$1" "$2" "$3.h5: attribute $4 \\($5\\)" $D/"$3".h5; }
attribute_error "version 2 (-n 2)" 2 version2 'version must be 1' 'found 2'
attribute_error "version missing" 0 no_version 'version must be 1' 'it is missing'
attribute_error "version a string" 0 version_str 'version must be 1' 'it is not an integer'
attribute_error "height missing" 0 no_height 'height must be an integer from 1 to 65536' 'it is missing'
attribute_error "width 2.5" 0 width_frac 'width must be an integer from 1 to 65536' 'it is not an integer'
attribute_error "height 0" 0 height0 'height must be an integer from 1 to 65536' 'found 0'
attribute_error "kind color" 0 kind_color 'kind must be "binary" or "gray"' 'found "color"'
attribute_error "kind missing (-n 2)" 2 no_kind 'kind must be "binary" or "gray"' 'it is missing'
attribute_error "kind an integer" 0 kind_int 'kind must be "binary" or "gray"' 'it is not a string'
attribute_error "another format" 0 other_format 'format must be "vamp_mpi-dataset"' 'found "something-else"'
attribute_error "format an integer" 0 format_int 'format must be "vamp_mpi-dataset"' 'it is not a string'
expect "group instead of dataset (-n 2)" 2 'valid_group.h5: /valid is not a dataset' $D/valid_group.h5
expect "float64 data" 0 'float64.h5: dataset /valid: element type must be uint8 \(0..255\) or float32' $D/float64.h5
expect "split shorter than the stripes (-n 2)" 2 'short_test.h5: dataset /test has 5 rows, fewer than data.stripes = 8' $D/short_test.h5 --set data.stripes=8
expect "test_limit below the stripes" 0 'binary_f32.h5: dataset /test has 3 rows, fewer than data.stripes = 4' $D/binary_f32.h5 --set data.test_limit=3
expect "valid_limit above the split" 0 'binary_f32.h5: dataset /valid has 12 rows, fewer than data.valid_limit = 13' $D/binary_f32.h5 --set data.valid_limit=13
expect "a directory as data file" 0 "data file \"$TMP\" is not an HDF5 file" $D

# filters HDF5 cannot decode, impossible row counts and memory: named up front, not an HDF5 or malloc failure
for np in 1 2; do
  expect "LZF-compressed /train (-n $np)" $np 'lzf.h5: dataset /train is stored through HDF5 filter 32000 \("lzf"\), which this HDF5 library cannot decode' $D/lzf.h5
  expect "10^12 rows declared (-n $np)" $np 'rows1e12.h5: dataset /train declares 1000000000000 rows; at most 4294967295 rows of a split are used: set data.train_limit' $D/rows1e12.h5
done
expect "unregistered filter" 0 'unknown_filter.h5: dataset /test is stored through HDF5 filter 307 .* cannot decode' $D/unknown_filter.h5
expect "data larger than memory (-n 2)" 2 'rows4e9_4096px.h5: the images this rank holds \(train 2000000000, valid 6 and test 6 rows of 4096 pixels, as floats\): about 37.3 TiB per rank needed, but rank [01] has only .*: lower data.train_limit' $D/rows4e9_4096px.h5
# the model's buffers against ulimit -v (one rank under the limit; deterministic whatever the node's memory)
ulimit_run() { # NAME PATTERN LIMIT_KB [--set ...]: exit 2 and the pattern, within the timeout
  local name=$1 pattern=$2 kb=$3
  shift 3
  rm -rf "$TMP/run"
  timeout -s KILL 60 $MPIEXEC --allow-run-as-root -n 1 bash -c "ulimit -v $kb; exec \"\$@\"" _ \
    "$BUILD/vamp_mpi" "$TMP/ok.ini" $D/binary_f32.h5 --set data.binarize=none "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ $rc -eq 2 ] && grep -qE -- "$pattern" "$TMP/err" && [ ! -e "$TMP/run" ]; then ok "$name: $(grep -E -- "$pattern" "$TMP/err" | head -1)"
  else bad "$name (exit $rc)"; grep -v '^\[' "$TMP/err" | sed 's/^/     /' | head -5; fi
}
if [ "$SANITIZED" = 1 ]; then
  echo "skip ulimit -v cases: AddressSanitizer cannot run under an address-space limit"
else
  ulimit_run "model.hidden = 10000 under ulimit -v 4 GiB" 'the model \(1200[0-9]* parameters: .*model.hidden = 10000.*: about [0-9.]+ GiB per rank needed, but rank 0 has only .*ulimit -v 3.8 GiB.*: lower model.hidden' 4000000 --set model.hidden=10000
  ulimit_run "ulimit -v 300 MB: used up by MPI and OpenBLAS" 'rank 0 has only 0 bytes \(ulimit -v 293.0 MiB, .* mapped already, and OpenBLAS.s work buffer still to come\): raise the ulimit' 300000
  ulimit_run "ulimit -v 200 MB: refused before MPI_Init" 'the address-space limit \(ulimit -v\) is 195 MiB, too small for MPI and OpenBLAS to start' 200000
fi
expect "over 2^31 parameters" 0 'the model has 12000840[0-9]+ parameters \(model.hidden = 100000, .*at most 2147483647 are supported: lower model.hidden' $D/binary_f32.h5 --set data.binarize=none --set model.hidden=100000

# the good float32 binary file with limits passes every check: one training step, exit 0
rm -rf "$TMP/run"
run 2 -- "$BUILD/vamp_mpi" "$TMP/ok.ini" $D/binary_f32.h5 --set data.binarize=none --set data.train_limit=16 \
  --set data.valid_limit=8 --set train.max_steps=1 --set model.type=vae
rc=$?
if [ $rc -eq 0 ] && [ -e "$TMP/run" ]; then ok "float32 binary data with limits accepted (-n 2)"
else bad "float32 binary data with limits (exit $rc)"; sed 's/^/     /' "$TMP/err" | head -5; fi
rm -rf "$TMP/run"
run 1 -- "$BUILD/vamp_mpi" "$TMP/ok.ini" $D/binary_bytes.h5 --set data.binarize=none --set train.max_steps=1 \
  --set model.type=vae
rc=$?
if [ $rc -eq 0 ] && [ -e "$TMP/run" ]; then ok "string attributes as fixed-length numpy bytes (h5py) accepted"
else bad "string attributes as fixed-length numpy bytes (exit $rc)"; sed 's/^/     /' "$TMP/err" | head -5; fi

# vamp_prepare
P="$BUILD/vamp_prepare"
/usr/bin/python3 - "$TMP" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def idx(n, r, c, first=0):
    return struct.pack(">IIII", 0x803, n, r, c) + bytes((first + i * 7) % 256 for i in range(n * r * c))
gzip.open(f"{d}/train.gz", "wb").write(idx(25, 3, 2))
open(f"{d}/test.idx", "wb").write(idx(9, 3, 2, first=3))
open(f"{d}/trunc.idx", "wb").write(idx(9, 3, 2)[:-1])
gzip.open(f"{d}/magic.gz", "wb").write(struct.pack(">IIII", 0x803 + 0x100, 9, 3, 2) + bytes(54))
open(f"{d}/extra.idx", "wb").write(idx(9, 3, 2) + b"\0")
PY
run 0 -- "$P" --help
if [ $? -eq 0 ] && grep -q '^usage: vamp_prepare idx --train-images FILE --test-images FILE --out OUT.h5' "$TMP/out"; then
  ok "prepare --help: usage on stdout, exit 0"; else bad "prepare --help"; fi
run 0 -- "$P" idx --train-images "$TMP/train.gz" --test-images "$TMP/test.idx" --out "$TMP/p.h5" --n-valid 5 --source mine
rc=$?
if [ $rc -eq 0 ] && /usr/bin/python3 - "$TMP/p.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
tr = (np.arange(25 * 6) * 7 % 256).astype(np.uint8).reshape(25, 6)
te = ((3 + np.arange(9 * 6) * 7) % 256).astype(np.uint8).reshape(9, 6)
for name, want in (("train", tr[:20]), ("valid", tr[20:]), ("test", te)):
    x = f[name]
    assert x.dtype == np.uint8 and x.shape == want.shape, (name, x.dtype, x.shape)
    assert (x[...] == want).all(), name
    assert x.compression == "gzip" and x.compression_opts == 4 and x.chunks is not None, name
a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
assert a["format"] == "vamp_mpi-dataset" and a["version"] == 1 and a["kind"] == "gray", a
assert a["height"] == 3 and a["width"] == 2 and a["source"] == "mine", a
PY
then ok "prepare: gzip train + plain test, 20/5/9 split, values, deflate 4, attributes, --source"
else bad "prepare: conversion (exit $rc)"; fi
# failures: exit 2 naming the file, and the output directory stays empty
pexpect() {
  local name=$1 pattern=$2
  shift 2
  rm -rf "$TMP/o" && mkdir "$TMP/o"
  run 0 -- "$P" idx "$@" --out "$TMP/o/x.h5"
  local rc=$?
  if [ $rc -eq 2 ] && grep -qE -- "^vamp_prepare: error: $pattern" "$TMP/err" && [ -z "$(ls -A "$TMP/o")" ]; then
    ok "prepare: $name: $(head -1 "$TMP/err")"
  else
    bad "prepare: $name (exit $rc, output dir: $(ls -A "$TMP/o" | tr '\n' ' '))"
    sed 's/^/     /' "$TMP/err" | head -3
  fi
}
pexpect "truncated test file" ".*trunc.idx: truncated" --train-images "$TMP/train.gz" --test-images "$TMP/trunc.idx"
pexpect "bad magic (gzip)" ".*magic.gz: not an IDX image file: magic 0x00000903" --train-images "$TMP/magic.gz" --test-images "$TMP/test.idx"
pexpect "data after the images" ".*extra.idx: has data after the 9 images" --train-images "$TMP/train.gz" --test-images "$TMP/extra.idx"
pexpect "--n-valid = all training images" ".*train.gz: has 25 images: too few for --n-valid 25" --train-images "$TMP/train.gz" --test-images "$TMP/test.idx" --n-valid 25
pexpect "missing test file" ".*nothere.gz: cannot open" --train-images "$TMP/train.gz" --test-images "$TMP/nothere.gz"

finish
