#!/bin/bash
# The command line and the run's life cycle (issue 14, items 5-7): both option spellings, "did you mean" for an
# option, a section, a key and an enum value, the source of a bad value named (file:line or --set), eval.block
# cut to a smaller eval.samples (same result as block = samples), a finished run re-run is a no-op that prints its
# results (and draws the pictures only if a stop came while they were drawn), eval.pictures = no draws none,
# a raised train.epochs continues, --resume none sets the earlier run aside, progress lines in a log
# (their format, no carriage return), and the HDF5 attribute types h5py sees (str, integers).
# usage: test_cli.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
/usr/bin/python3 - "$TMP/bin.h5" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(5)
protos = rng.random((6, 64)) < 0.35
def make(n):
    return ((protos[rng.integers(0, 6, n)] ^ (rng.random((n, 64)) < 0.05)).astype(np.uint8) * 255)
with h5py.File(sys.argv[1], "w") as f:
    f["train"], f["valid"], f["test"] = make(800), make(80), make(40)
    f.attrs.update(format="vamp_mpi-dataset", version=1, height=8, width=8, kind="binary", source="test")
PY
write_ini "$TMP/c.ini" run.dir="$TMP/run" data.path="$TMP/bin.h5" data.binarize=none model.type=hvae \
  model.hidden=32 model.z1=4 model.z2=4 prior.components=8 train.batch_size=40 train.epochs=2 train.warmup=2 \
  eval.samples=20 eval.block=20 eval.batch=10
VAMP() { $MPIEXEC --allow-run-as-root --oversubscribe -n 2 "$BUILD/vamp_mpi" "$@"; }
# expect NAME STATUS PATTERN ARGS...: vamp_mpi ARGS exits with STATUS and its output matches PATTERN (grep -E)
expect() {
  local name=$1 want=$2 pat=$3
  shift 3
  VAMP "$@" >"$TMP/out" 2>&1
  local rc=$?
  if [ $rc -eq "$want" ] && grep -qE -- "$pat" "$TMP/out"; then ok "$name"; else bad "$name (status $rc)" "$TMP/out"; fi
}

# ---- options, did you mean, where a value came from ----
expect "unknown option: did you mean" 2 'unknown option "--reseme=none" \(did you mean --resume\?' "$TMP/c.ini" --reseme=none
printf '[trian]\nepochs = 2\n' >"$TMP/sec.ini"
expect "unknown section: did you mean" 2 'sec.ini:2: unknown section \[trian\] \(did you mean \[train\]\?\)' "$TMP/sec.ini"
expect "unknown key (--set): did you mean" 2 'unknown key train.epoch \(did you mean train.epochs\?\)' "$TMP/c.ini" --set train.epoch=3
printf '[train]\nepoch = 3\n' >"$TMP/key.ini"
expect "unknown key (file): did you mean" 2 'key.ini:2: unknown key "epoch" in \[train\] \(did you mean epochs\?\)' "$TMP/key.ini"
expect "enum value: did you mean" 2 '"vamprior" \(did you mean vampprior\?\)' "$TMP/c.ini" --set prior.type=vamprior
# vamp_prepare: --opt=value as --opt value, and did-you-mean for an option
if "$BUILD/vamp_prepare" fashion-mnist --out="$TMP/fm_eq.h5" >"$TMP/prep.out" 2>&1; then
  "$BUILD/vamp_prepare" fashion-mnist --out "$TMP/fm_sp.h5" >/dev/null 2>&1
  h5diff "$TMP/fm_eq.h5" "$TMP/fm_sp.h5" /train /train >/dev/null && ok "vamp_prepare --out=F and --out F: the same file" ||
    bad "vamp_prepare --out=F vs --out F" "$TMP/prep.out"
else
  bad "vamp_prepare --out=F" "$TMP/prep.out"
fi
"$BUILD/vamp_prepare" fashion-mnist --otu "$TMP/x.h5" >"$TMP/prep2.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q "unknown option --otu (did you mean --out?" "$TMP/prep2.out" && [ ! -e "$TMP/x.h5" ] &&
  ok "vamp_prepare unknown option: did you mean --out, exit 2" || bad "vamp_prepare --otu (exit $rc)" "$TMP/prep2.out"
expect "bad value from --set names --set" 2 '^vamp_mpi: error: --set eval.samples=30: \[eval\] samples = 30 is not a multiple of \[eval\] block = 20 \(.*c.ini:[0-9]+\)' \
  "$TMP/c.ini" --set eval.samples=30
expect "bad value from the file names file:line" 2 'c.ini:[0-9]+: \[eval\] samples = 20 is not a multiple of \[eval\] block = 8 \(--set eval.block=8\)' \
  "$TMP/c.ini" --set eval.block=8
expect "option needs an argument" 2 '--resume needs an argument' "$TMP/c.ini" --resume

# ---- a run with --opt=value spellings and a progress line at every batch and block; stdout is a file here ----
VAMP "$TMP/c.ini" --resume=none --set=run.seed=3 --progress=1e-9 >"$TMP/train.log" 2>&1 \
  && ok "--opt=value spellings train" || bad "--opt=value spellings train" "$TMP/train.log"
if grep -qE '^  epoch 2/2  batch [0-9]+/20 \([0-9]+%\)  [0-9]+ images/s  ETA epoch [0-9]+:[0-9]{2}, run [0-9:]+ at most \(train.epochs; early stopping may end it sooner\)$' "$TMP/train.log" &&
   grep -qE '^  validation ELBO: [0-9]+/[0-9]+ images on rank 0 \([0-9]+%\), [0-9.]+ images/s, ETA [0-9:]+$' "$TMP/train.log" &&
   grep -qE '^  test log-likelihood: [0-9]+/[0-9]+ images on rank 0 \([0-9]+%\), [0-9.]+ images/s, ETA [0-9:]+$' "$TMP/train.log" &&
   grep -qE '^epoch +2 +step +40 ' "$TMP/train.log" && ! grep -q $'\r' "$TMP/train.log"; then
  ok "progress lines in a log: epoch, validation, test LL; one line per epoch; no carriage return"
else bad "progress lines in a log" "$TMP/train.log"; fi
VAMP "$TMP/c.ini" --resume none --set run.dir="$TMP/quiet" >"$TMP/quiet.log" 2>&1
if ! grep -qE '^  (epoch [0-9]+/|validation ELBO|test log-likelihood:)' "$TMP/quiet.log" && grep -qE '^epoch +2' "$TMP/quiet.log"; then
  ok "a log gets no progress line in a short run (every 60 s by default)"
else bad "default progress interval of a log" "$TMP/quiet.log"; fi

# ---- eval.samples smaller than eval.block: the block is cut, same result as block = samples ----
VAMP --eval "$TMP/run" --set eval.samples=20 --set eval.block=500 >"$TMP/e500.log" 2>&1
VAMP --eval "$TMP/run" --set eval.samples=20 --set eval.block=20 >"$TMP/e20.log" 2>&1
a=$(grep '^test_ll = ' "$TMP/e500.log"); b=$(grep '^test_ll = ' "$TMP/e20.log")
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "eval.samples=20 with eval.block=500 ($a, the same as block 20)"
else bad "eval.samples < eval.block: '$a' vs '$b'" "$TMP/e500.log"; fi

# ---- a finished run re-run: results printed, exit 0, nothing written ----
cp "$TMP/run/final.h5" "$TMP/final.copy"
ls -l --time-style=full-iso "$TMP/run" >"$TMP/ls.before"
VAMP "$TMP/c.ini" --set=run.seed=3 >"$TMP/again.log" 2>&1
rc=$?
ls -l --time-style=full-iso "$TMP/run" >"$TMP/ls.after"
if [ $rc -eq 0 ] && cmp -s "$TMP/run/final.h5" "$TMP/final.copy" && diff -q "$TMP/ls.before" "$TMP/ls.after" >/dev/null &&
   grep -q 'nothing to do' "$TMP/again.log" && grep -q "$(grep '^test_ll = ' "$TMP/train.log")" "$TMP/again.log" &&
   grep -q '^epochs = 2$' "$TMP/again.log" && ! grep -qE '^epoch +[0-9]' "$TMP/again.log"; then
  ok "a finished run re-run prints its results, exits 0, final.h5 and the directory unchanged"
else bad "finished run re-run (status $rc)" "$TMP/again.log"; fi

# ---- a stop while the pictures were drawn (final.h5 written, pictures.h5 not): the re-run draws them ----
mkdir -p "$TMP/pics"
cp "$TMP/run/samples.png" "$TMP/run/reconstructions.png" "$TMP/pics/"
rm "$TMP/run/pictures.h5" "$TMP/run/samples.png" "$TMP/run/reconstructions.png"
VAMP "$TMP/c.ini" --set=run.seed=3 >"$TMP/pics.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q 'pictures.h5 is missing' "$TMP/pics.log" && [ -s "$TMP/run/pictures.h5" ] &&
   cmp -s "$TMP/run/samples.png" "$TMP/pics/samples.png" &&
   cmp -s "$TMP/run/reconstructions.png" "$TMP/pics/reconstructions.png" &&
   cmp -s "$TMP/run/final.h5" "$TMP/final.copy" && grep -q "$(grep '^test_ll = ' "$TMP/train.log")" "$TMP/pics.log"; then
  ok "a finished run without its pictures: the re-run draws the same pictures, final.h5 unchanged"
else bad "finished run without pictures (status $rc)" "$TMP/pics.log"; fi

# ---- eval.pictures = no: none drawn, at the end or on a re-run; it cannot be combined with pictures_every ----
expect "eval.pictures = no with pictures_every names both" 2 '\[eval\] pictures_every = 1 asks for pictures during training, but \[eval\] pictures = no \(--set eval.pictures=no\)' \
  "$TMP/c.ini" --set eval.pictures=no --set eval.pictures_every=1
for pass in 1 2; do VAMP "$TMP/c.ini" --set run.dir="$TMP/nopics" --set eval.pictures=no >"$TMP/nopics$pass.log" 2>&1; done
if [ -s "$TMP/nopics/final.h5" ] && ! ls "$TMP/nopics" | grep -qE 'png$|pictures.h5' &&
   grep -q 'no pictures (eval.pictures = no)' "$TMP/nopics1.log" && grep -q 'nothing to do' "$TMP/nopics2.log" &&
   ! grep -q 'pictures.h5 is missing' "$TMP/nopics2.log" && grep -q '^test_ll = ' "$TMP/nopics2.log"; then
  ok "eval.pictures = no: final.h5 and results, no PNG or pictures.h5, not drawn on the re-run either"
else bad "eval.pictures = no" "$TMP/nopics2.log"; fi

# ---- train.epochs raised: continues from the last checkpoint ----
VAMP "$TMP/c.ini" --set=run.seed=3 --set train.epochs=3 >"$TMP/more.log" 2>&1
if grep -q 'resumed from .*epoch 3, batch 0' "$TMP/more.log" && grep -qE '^epoch +3 +step +60 ' "$TMP/more.log" &&
   ! grep -qE '^epoch +[12] ' "$TMP/more.log" && grep -q '^epochs = 3$' "$TMP/more.log"; then
  ok "raised train.epochs continues from the last checkpoint"
else bad "raised train.epochs" "$TMP/more.log"; fi

# ---- --resume none: the earlier run's files moved to previous-1, a fresh run ----
VAMP "$TMP/c.ini" --set=run.seed=3 --resume none >"$TMP/none.log" 2>&1
if grep -q "moved the .* file(s) of the earlier run in $TMP/run .* to $TMP/run/previous-1" "$TMP/none.log" &&
   [ -f "$TMP/run/previous-1/final.h5" ] && ls "$TMP/run/previous-1"/ckpt-*.h5 >/dev/null 2>&1 &&
   grep -qE '^epoch +1 +step +20 ' "$TMP/none.log" && [ -f "$TMP/run/final.h5" ]; then
  ok "--resume none moves the earlier run aside and trains afresh"
else bad "--resume none" "$TMP/none.log"; fi

# ---- attribute types as h5py sees them ----
if /usr/bin/python3 - "$TMP/run" >"$TMP/types.log" 2>&1 <<'PY'
import glob, sys, h5py, numpy as np
run = sys.argv[1]
def check(path, strs, ints, floats):
    a = h5py.File(path, "r").attrs
    for k in strs:
        assert isinstance(a[k], str), f"{path}: {k} is {type(a[k])}, expected str"
    for k in ints:
        assert isinstance(a[k], np.integer), f"{path}: {k} is {type(a[k])}, expected an integer"
    for k in floats:
        assert isinstance(a[k], np.floating), f"{path}: {k} is {type(a[k])}, expected a float"
build = ["build_version", "build_git_commit"]
check(f"{run}/final.h5", ["format", "config"] + build, ["version", "epochs", "best_epoch", "steps", "active_units_z1",
      "active_units_z2", "ranks"], ["test_ll", "test_elbo", "train_seconds", "best_val_loss"])
check(f"{run}/eval.h5" if glob.glob(f"{run}/eval.h5") else f"{run}/previous-1/eval.h5", ["format", "config"] + build,
      ["version", "active_units_z1", "ranks"], ["test_ll"])
check(f"{run}/pictures.h5", build, ["ranks"], [])
check(sorted(glob.glob(f"{run}/ckpt-*.h5"))[-1], ["format", "config"] + build, ["version", "ranks"], [])
print("attribute types as expected")
PY
then ok "final.h5, eval.h5, pictures.h5, checkpoint: strings are str, counts integers (h5py)"
else bad "attribute types" "$TMP/types.log"; fi
finish
