#!/bin/bash
# Every paper preset (configs/<dataset>/<model>_<prior>.ini), resolved by vamp_mpi's own parser
# (tests/tools/config_dump), must agree with configs/preset_sources.tsv on every key the table covers, and the
# table must cover every key a preset sets (besides run.dir and data.path). The table names the source of each
# value (the paper or a file and line of the reference code).
# usage: test_preset_sources.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
check_presets() { # SOURCE_DIR: compares its configs/*/*.ini with its configs/preset_sources.tsv
/usr/bin/python3 - "$1" "$BUILD/tests/config_dump" <<'PY'
import configparser, csv, glob, os, subprocess, sys
src, dump = sys.argv[1], sys.argv[2]
rows = [r for r in csv.DictReader((l for l in open(f"{src}/configs/preset_sources.tsv") if not l.startswith("#")),
                                  delimiter="\t")]
def matches(field, value):
    return field == "*" or value in field.split(",")
def ini(text):
    cp = configparser.ConfigParser(inline_comment_prefixes=None)
    cp.read_string(text)
    return {f"{s}.{k}": v for s in cp.sections() for k, v in cp[s].items()}
fails, checked = 0, 0
presets = sorted(glob.glob(f"{src}/configs/*/*.ini"))
used = set()
for path in presets:
    dataset = os.path.basename(os.path.dirname(path))
    model, prior = os.path.basename(path)[:-4].split("_", 1)
    out = subprocess.run([dump, path], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL {path}: {out.stderr.strip()}"); fails += 1; continue
    resolved, written = ini(out.stdout), ini(open(path).read())
    for key in written:
        if key in ("run.dir", "data.path"): continue
        if not any(r["key"] == key and matches(r["datasets"], dataset) and matches(r["models"], model)
                   and matches(r["priors"], prior) for r in rows):
            print(f"FAIL {path}: {key} = {written[key]} has no source in configs/preset_sources.tsv"); fails += 1
    for i, r in enumerate(rows):
        if not (matches(r["datasets"], dataset) and matches(r["models"], model) and matches(r["priors"], prior)):
            continue
        used.add(i)
        checked += 1
        have, want = resolved.get(r["key"]), r["value"]
        try: same = have is not None and float(have) == float(want)
        except ValueError: same = have == want
        if not same:
            print(f"FAIL {path}: {r['key']} = {have}, but {r['source']} says {want}"); fails += 1
for i, r in enumerate(rows):
    if i not in used:
        print(f"FAIL configs/preset_sources.tsv row {r['key']} {r['datasets']}/{r['models']}/{r['priors']} matches no preset"); fails += 1
print(f"{len(presets)} presets, {checked} values compared with their sources, {fails} failures")
sys.exit(1 if fails else 0)
PY
}
check_presets "$SRC"
[ $? -eq 0 ] && ok "presets agree with configs/preset_sources.tsv" || bad "presets agree with configs/preset_sources.tsv"
# The test can fail: a preset with the pre-fix Frey pseudo-input mean must be caught.
mkdir -p "$TMP/configs/frey"
cp "$SRC/configs/preset_sources.tsv" "$TMP/configs/"
sed 's/^pseudo_mean = 0.5/pseudo_mean = 0.8/' "$SRC/configs/frey/vae_vampprior.ini" >"$TMP/configs/frey/vae_vampprior.ini"
if out=$(check_presets "$TMP" 2>&1); then bad "a wrong pseudo_mean in a preset is caught"
else echo "$out" | grep -q "prior.pseudo_mean = 0.8, but ref utils/load_data.py:321 .* says 0.5" && ok "a wrong pseudo_mean in a preset is caught" || bad "a wrong pseudo_mean in a preset is caught: $out"; fi
finish
