#!/bin/bash
# End-to-end data-parallel training on real Fashion-MNIST rows, with real MPI ranks:
#  1. train.reduce = exact: final parameters are bit-identical for -np 1, 2 and 4 after 30 steps of
#     hvae + vampprior, for both likelihoods (and the metrics.csv rows are identical too), and for -np 1 and 3
#     with 12 stripes;
#  2. train.reduce = fast: -np 2 follows the single-rank trajectory within float tolerance over 20 steps;
#  3. vae + vampprior on a 2,000-image subset improves the validation ELBO over 3 epochs.
#  4. convhvae and pixelhvae on 8x6 block means of Fashion-MNIST (tests/tools/tiny_images.py), every prior
#     (VampPrior with both likelihoods, MoG, VampPrior-data): final parameters bit-identical for -np 1, 2 and 4
#     after 12 steps (the pixelhvae's BatchNorm running statistics included: its batch statistics combine the 4
#     chunks' sums whichever ranks hold them).
# usage: test_mpi_train.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
check() { # name, command...
  local name=$1
  shift
  if "$@" >"$TMP/out.txt" 2>&1; then
    pass=$((pass + 1))
    echo "ok   $name"
  else
    fail=$((fail + 1))
    echo "FAIL $name"
    sed 's/^/     /' "$TMP/out.txt" | tail -20
  fi
}
run() { # np, run dir, extra --set args...
  local np=$1 dir=$2
  shift 2
  $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$BUILD/vamp_mpi" "$TMP/small.ini" \
    --set run.dir="$dir" "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; return 1; }
}

fashion_mnist
write_ini "$TMP/small.ini" data.path="$TMP/fm.h5" data.stripes=4 data.train_limit=2000 data.valid_limit=400 \
  data.test_limit=400 model.type=hvae model.hidden=48 model.z1=8 model.z2=6 prior.type=vampprior \
  prior.components=20 train.batch_size=20 train.warmup=2

for lik in bernoulli logistic256; do
  bin=dynamic
  [ $lik = logistic256 ] && bin=none
  for np in 1 2 4; do
    run $np "$TMP/exact_${lik}_$np" --set model.likelihood=$lik --set data.binarize=$bin \
      --set train.max_steps=30 --set train.reduce=exact >/dev/null 2>&1
  done
  for np in 2 4; do
    check "exact $lik: -np $np params bit-identical to -np 1" \
      /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/exact_${lik}_1/final.h5" "$TMP/exact_${lik}_$np/final.h5" --exact
    check "exact $lik: -np $np metrics identical to -np 1 (but for timings)" \
      bash -c "diff <(cut -d, -f1-9 '$TMP/exact_${lik}_1/metrics.csv') <(cut -d, -f1-9 '$TMP/exact_${lik}_$np/metrics.csv')"
  done
done

# 12 stripes of 2 images (batch 24) on 3 ranks, 4 each, -np 1 against -np 3 (uneven counts: test_ranks.sh)
for np in 1 3; do
  run $np "$TMP/exact_s12_$np" --set data.stripes=12 --set train.batch_size=24 --set train.max_steps=30 >/dev/null 2>&1
done
check "exact, 12 stripes: -np 3 params bit-identical to -np 1" \
  /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/exact_s12_1/final.h5" "$TMP/exact_s12_3/final.h5" --exact

run 1 "$TMP/fast_1" --set train.max_steps=20 --set train.reduce=fast >/dev/null 2>&1
run 2 "$TMP/fast_2" --set train.max_steps=20 --set train.reduce=fast >/dev/null 2>&1
check "fast: -np 2 params within 1e-3 of -np 1 after 20 steps" \
  /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/fast_1/final.h5" "$TMP/fast_2/final.h5" --rtol 1e-3
check "fast: -np 2 validation loss within 1e-3 relative of -np 1" \
  /usr/bin/python3 -c "
import csv,sys
a=list(csv.DictReader(open('$TMP/fast_1/metrics.csv')))[-1]; b=list(csv.DictReader(open('$TMP/fast_2/metrics.csv')))[-1]
va,vb=float(a['val_loss']),float(b['val_loss']); print(va,vb); sys.exit(abs(va-vb)>1e-3*abs(va))"

run 2 "$TMP/learn" --set model.type=vae --set train.epochs=3 --set model.hidden=64 >/dev/null 2>&1
check "vae+vampprior on 2000 images: validation loss falls over 3 epochs" \
  /usr/bin/python3 -c "
import csv,sys
rows=list(csv.DictReader(open('$TMP/learn/metrics.csv'))); v=[float(r['val_loss']) for r in rows]; print(v)
sys.exit(not (len(v)==3 and v[2] < v[0] - 5))"
check "final.h5 has the test ELBO and the printed test_elbo matches it" \
  /usr/bin/python3 -c "
import h5py,re,sys
f=h5py.File('$TMP/learn/final.h5','r'); a=float(f.attrs['test_elbo'])
m=re.search(r'^test_elbo = (\S+)$', open('$TMP/learn.log').read(), re.M); p=float(m.group(1)); print(a,p)
sys.exit(not (a < 0 and abs(a-p) < 1e-3))"


/usr/bin/python3 "$SRC/tests/tools/tiny_images.py" "$TMP/fm.h5" "$TMP/tiny.h5" 8 6 480 100 100 ||
  { echo "tiny_images.py failed"; exit 1; }
for model in convhvae pixelhvae; do
  # every prior, each likelihood with the VampPrior (its pseudo-inputs go through the convolutional encoder)
  for case in bernoulli:vampprior logistic256:vampprior bernoulli:mog logistic256:vampprior_data; do
    lik=${case%%:*} prior=${case##*:} name=${model}_${lik}_${prior}
    bin=dynamic
    [ $lik = logistic256 ] && bin=none
    for np in 1 2 4; do
      run $np "$TMP/${name}_$np" --set data.path="$TMP/tiny.h5" --set model.type=$model \
        --set model.hidden=32 --set model.z1=6 --set model.z2=4 --set prior.type=$prior --set prior.components=8 \
        --set model.likelihood=$lik --set data.binarize=$bin --set train.max_steps=12 --set data.train_limit=0 \
        --set data.valid_limit=0 --set data.test_limit=0 --set eval.samples=20 --set eval.block=20 >/dev/null 2>&1
    done
    for np in 2 4; do
      check "$model $lik $prior: -np $np params bit-identical to -np 1" \
        /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/${name}_1/final.h5" "$TMP/${name}_$np/final.h5" --exact
    done
  done
done
finish
