#!/bin/bash
# Provenance: --version of both programs, the run log and every HDF5 file a run writes (final.h5, a checkpoint,
# pictures.h5, eval.h5, and the dataset file of vamp_prepare) name the version, git commit, compiler, OpenBLAS
# core and configuration, MPI and HDF5 libraries; the run files also the rank count, as an integer.
# usage: test_provenance.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
"$BUILD/vamp_mpi" --version >"$TMP/version" 2>&1
"$BUILD/vamp_prepare" --version >"$TMP/pversion" 2>&1
core=$(sed -n 's/^  openblas_core: //p' "$TMP/version")
commit=$(sed -n 's/^  git_commit: //p' "$TMP/version")
if [ -n "$core" ] && [ -n "$commit" ] && grep -q "^vamp_prepare " "$TMP/pversion" &&
   grep -q "^  openblas_core: $core$" "$TMP/pversion"; then ok "--version: commit $commit, OpenBLAS core $core"
else bad "--version" "$TMP/version"; fi
tiny_config "$TMP/cfg.ini" 1 100
$MPIEXEC -n 2 "$BUILD/vamp_mpi" "$TMP/cfg.ini" --set run.dir="$TMP/run" --set train.max_steps=150 >"$TMP/log" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "^build openblas_core: $core$" "$TMP/log" && grep -q "^build git_commit: $commit$" "$TMP/log" &&
   grep -q "^build ranks: 2$" "$TMP/log"; then ok "run log: build lines"
else bad "run log: build lines (exit $rc)" "$TMP/log"; fi
$MPIEXEC -n 1 "$BUILD/vamp_mpi" --eval "$TMP/run" --set eval.samples=0 >"$TMP/evallog" 2>&1 || bad "--eval" "$TMP/evallog"
for f in "$TMP/run/final.h5:2" "$TMP/run/ckpt-00000100.h5:2" "$TMP/run/pictures.h5:2" "$TMP/run/eval.h5:1" "$TMP/fm.h5:0"; do
  file=${f%:*} ranks=${f##*:}
  if out=$(/usr/bin/python3 - "$file" "$ranks" "$core" "$commit" <<'PY' 2>&1
import sys, h5py, numpy as np
path, ranks, core, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
a = h5py.File(path, "r").attrs
for k in ("build_version", "build_git_commit", "build_compiler", "build_openblas_core", "build_openblas_config",
          "build_mpi_library", "build_hdf5_version"):
    assert isinstance(a[k], str) and a[k], f"{k} = {a.get(k)!r} is not a non-empty UTF-8 string"
assert a["build_openblas_core"] == core and a["build_git_commit"] == commit, (a["build_openblas_core"], a["build_git_commit"])
assert "OpenBLAS" in a["build_openblas_config"] and "MPI" in a["build_mpi_library"], a["build_mpi_library"]
assert isinstance(a["ranks"], np.integer) and a["ranks"] == ranks, (type(a["ranks"]), a["ranks"])
PY
  ); then ok "$(basename "$file"): provenance attributes"; else bad "$(basename "$file"): $out"; fi
done
finish
