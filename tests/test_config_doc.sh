#!/bin/bash
# configs/README.md must list exactly the keys vamp_mpi knows, with the defaults it uses: compares the table
# with the resolved default configuration (tests/tools/config_dump prints config_to_ini of the defaults).
# usage: test_config_doc.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
/usr/bin/python3 - "$SRC/configs/README.md" "$BUILD/tests/config_dump" <<'PY'
import configparser, re, subprocess, sys
doc, dump = sys.argv[1], sys.argv[2]
rows = {}
for line in open(doc):
    m = re.match(r"\| `([a-z_]+\.[a-z_0-9]+)` \| `([^`]*)` \|", line)
    if m:
        rows[m.group(1)] = m.group(2)
cp = configparser.ConfigParser()
cp.read_string(subprocess.run([dump], capture_output=True, text=True, check=True).stdout)
code = {f"{s}.{k}": v for s in cp.sections() for k, v in cp[s].items()}
fails = 0
for k in sorted(set(rows) | set(code)):
    if k not in rows:
        print(f"FAIL {k}: known to vamp_mpi, missing from configs/README.md"); fails += 1
    elif k not in code:
        print(f"FAIL {k}: documented, unknown to vamp_mpi"); fails += 1
    else:
        a, b = rows[k], code[k]
        same = a == b
        try:
            same = same or float(a) == float(b) or abs(float(a) - float(b)) <= 1e-7 * abs(float(a))
        except ValueError:
            pass
        if not same:
            print(f"FAIL {k}: documented default {a!r}, vamp_mpi uses {b!r}"); fails += 1
n = len(set(rows) | set(code))
print(f"{n - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
