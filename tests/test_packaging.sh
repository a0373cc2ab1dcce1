#!/bin/bash
# Packaging without Spack: packaging/spack/package.py parses and imports against a stand-in for spack.package,
# depends on every library CMakeLists.txt looks for (and cmocka only with +tests), and maps +tests to
# BUILD_TESTING; CITATION.cff is valid YAML naming the software and the paper; the man pages document every
# option of --help; `cmake --install` puts the programs, man pages, configs, jobs and analysis under a prefix, and
# the installed vamp_mpi trains a preset from the installed tree.
# usage: test_packaging.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
if out=$(/usr/bin/python3 - "$SRC/packaging/spack/package.py" <<'PY' 2>&1
import sys, types
calls = {"depends_on": [], "variant": [], "version": []}
pkg = types.ModuleType("spack.package")
class CMakePackage:
    def define_from_variant(self, name, variant): return f"-D{name}:BOOL=<{variant}>"
pkg.CMakePackage = CMakePackage
for name in calls:
    setattr(pkg, name, (lambda n: lambda *a, **k: calls[n].append((a, k)))(name))
pkg.license = lambda *a, **k: None
sys.modules["spack"] = types.ModuleType("spack"); sys.modules["spack.package"] = pkg
src = open(sys.argv[1]).read()
ns = {}
exec(compile(src, sys.argv[1], "exec"), ns)
deps = {a[0].split("@")[0].split("+")[0]: k.get("when") for a, k in calls["depends_on"]}
for need in ("mpi", "hdf5", "openblas", "libinih", "random123", "matio", "libpng", "zlib-api", "cmake", "pkgconfig"):
    assert need in deps, f"no depends_on({need!r})"
assert any(a[0] == "hdf5+mpi" for a, k in calls["depends_on"]), "hdf5 must be +mpi (parallel HDF5)"
assert deps.get("cmocka") == "+tests", "cmocka only when +tests"
assert [a[0] for a, k in calls["variant"]] == ["tests"]
assert ns["VampMpi"]().cmake_args() == ["-DBUILD_TESTING:BOOL=<tests>"]
print(f"{len(deps)} dependencies")
PY
); then ok "spack package.py: $out"; else bad "spack package.py: $out"; fi
if /usr/bin/python3 -c "
import yaml, sys
c = yaml.safe_load(open('$SRC/CITATION.cff'))
assert c['cff-version'] == '1.2.0' and c['type'] == 'software' and c['license'] == 'MIT'
assert c['references'][0]['title'] == 'VAE with a VampPrior'
" 2>"$TMP/cff"; then ok "CITATION.cff"; else bad "CITATION.cff" "$TMP/cff"; fi
for prog in vamp_mpi vamp_prepare; do
  missing=$("$BUILD/$prog" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u | while read -r o; do
    grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$SRC/man/$prog.1" || echo "$o"; done)
  [ -z "$missing" ] && ok "man/$prog.1 documents every option of --help" || bad "man/$prog.1 lacks: $missing"
done
prefix="$TMP/prefix"
if cmake --install "$BUILD" --prefix "$prefix" >"$TMP/install.log" 2>&1 && [ -x "$prefix/bin/vamp_mpi" ] &&
   [ -x "$prefix/bin/vamp_prepare" ] && [ -f "$prefix/share/man/man1/vamp_mpi.1" ] &&
   [ -f "$prefix/share/vamp_mpi/configs/frey/hvae_vampprior.ini" ] && [ -f "$prefix/share/vamp_mpi/jobs/requeue.sbatch" ] &&
   [ -f "$prefix/share/vamp_mpi/analysis/table.py" ] && [ -f "$prefix/share/doc/vamp_mpi/LICENSE" ]; then
  ok "cmake --install: programs, man pages, configs, jobs, analysis, docs"
else bad "cmake --install" "$TMP/install.log"; fi
"$prefix/bin/vamp_prepare" fashion-mnist --out "$TMP/fm.h5" >/dev/null 2>&1
cd "$TMP" && $MPIEXEC -n 2 "$prefix/bin/vamp_mpi" "$prefix/share/vamp_mpi/configs/quickstart.ini" --set data.path="$TMP/fm.h5" \
  --set run.dir="$TMP/run" --set data.train_limit=400 --set data.valid_limit=100 --set data.test_limit=100 \
  --set train.epochs=1 --set eval.samples=0 >"$TMP/run.log" 2>&1
if [ $? -eq 0 ] && [ -f "$TMP/run/final.h5" ]; then ok "the installed vamp_mpi trains the installed quickstart preset"
else bad "the installed vamp_mpi trains the installed quickstart preset" "$TMP/run.log"; fi
finish
