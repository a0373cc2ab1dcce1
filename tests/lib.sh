# Shared by the script tests (sourced, not run): the arguments, a temporary directory removed on exit,
# pass/fail counting and the closing summary, an INI writer, and the tiny Fashion-MNIST configuration.
# usage, at the top of tests/test_NAME.sh:  source "$(dirname "$0")/lib.sh" "$@"   (BUILD_DIR SOURCE_DIR)
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
MPIEXEC=${MPIEXEC:-mpiexec}
# 1 for a -DVAMP_SANITIZE=ON build: AddressSanitizer reserves terabytes of address space, so ulimit -v tests skip
SANITIZED=$(grep -q '^VAMP_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null && echo 1 || echo 0)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
# bad NAME [LOG]: a failure, with the end of LOG indented below it
bad() {
  fail=$((fail + 1))
  echo "FAIL $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then sed 's/^/     /' "$2" | tail -20; fi
}
# wait_for_file FILE SECONDS: status 0 as soon as FILE exists, 1 if it does not within SECONDS
wait_for_file() { for _ in $(seq $((10 * $2))); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
# The last line of every test: the counts, and the exit status.
finish() {
  echo "$pass passed, $fail failed"
  [ $fail -eq 0 ]
}

# write_ini FILE SECTION.KEY=VALUE...: an INI file of those settings in that order, a [SECTION] header before
# each run of keys of one section (so give the keys of a section together).
write_ini() {
  local file=$1 section='' kv
  shift
  for kv in "$@"; do
    [ "${kv%%.*}" = "$section" ] || { section=${kv%%.*}; echo "[$section]"; }
    kv=${kv#*.}
    echo "${kv%%=*} = ${kv#*=}"
  done >"$file"
}

# fashion_mnist: converts Debian's Fashion-MNIST to $TMP/fm.h5 (once).
fashion_mnist() {
  [ -f "$TMP/fm.h5" ] && return
  "$BUILD/vamp_prepare" fashion-mnist --out "$TMP/fm.h5" >/dev/null || { echo "vamp_prepare failed"; exit 1; }
}

# tiny_config FILE EPOCHS CHECKPOINT_EVERY_STEPS: a small hvae + vampprior configuration on 4000 images of
# $TMP/fm.h5 (200 steps per epoch).
tiny_config() {
  fashion_mnist
  write_ini "$1" data.path="$TMP/fm.h5" data.train_limit=4000 data.valid_limit=400 data.test_limit=400 \
    model.hidden=64 model.z1=8 model.z2=6 prior.components=40 train.batch_size=20 train.epochs="$2" \
    train.warmup=2 eval.samples=0 checkpoint.every_steps="$3"
}
