#!/usr/bin/python3
"""Are two vamp_mpi run directories the same result? Compares, byte for byte, every dataset and every attribute
of the HDF5 files (final.h5, eval.h5, pictures.h5 and the newest checkpoint), the PNG pictures, the best/latest
pointers and the metrics.csv columns, except what legitimately differs between two builds or two runs: the build_* provenance attributes,
wall-clock times (train_seconds, metrics' seconds and samples_per_s), the checkpoint's checksum over its attributes (it covers those two) the run directory and run.peer_timeout named in the config.

usage: same_run.py [--values] DIR_A DIR_B
Prints every difference and exits 1 if there is one, 0 otherwise (2 if a directory has no final.h5 or eval.h5).
--values: an attribute whose stored type changed but whose value did not (a fixed-length byte string and a UTF-8
str of the same text; an integer and a float of the same value, as when counts became integer attributes) is
not a difference: it is listed as a "note" line, and the verdict says how many there were.
Used to show that a refactoring changes no result (issue 15: "byte-identical before and after").
"""
import csv
import os
import re
import sys

import h5py
import numpy as np

SKIP_ATTRS = re.compile(r"^(build_.*|train_seconds|wall_seconds|.*_seconds|crc32_attrs)$")
SKIP_COLS = {"seconds", "samples_per_s"}


def config_without_dir(v):
    s = v.decode() if isinstance(v, bytes) else str(v)
    s = re.sub(r"(?m)^dir = .*$", "dir = <run dir>", s)
    return re.sub(r"(?m)^peer_timeout = .*\n", "", s)  # how long to wait for a dead peer: no result depends on it


def attrs_of(obj):
    return {k: v for k, v in obj.attrs.items() if not SKIP_ATTRS.match(k)}


def same_value(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) == type(b) and a == b


def same_text_or_number(a, b):
    """The same value across str/bytes and integer/float types (scalars only)."""
    text = (str, bytes, np.bytes_, np.str_)
    if isinstance(a, text) and isinstance(b, text):
        return (a.decode() if isinstance(a, bytes) else str(a)) == (b.decode() if isinstance(b, bytes) else str(b))
    num = (int, float, np.integer, np.floating)
    if isinstance(a, num) and isinstance(b, num):
        return float(a) == float(b) and float(a) == int(a) if np.isfinite(float(a)) else False
    return False


def compare_h5(pa, pb, out, notes=None):
    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            out.append(f"{pa}: objects differ: only in A {sorted(set(names_a) - set(names_b))}, "
                       f"only in B {sorted(set(names_b) - set(names_a))}")
        for name in ["/"] + sorted(set(names_a) & set(names_b)):
            oa, ob = fa[name], fb[name]
            aa, ab = attrs_of(oa), attrs_of(ob)
            if sorted(aa) != sorted(ab):
                out.append(f"{pa}:{name}: attribute names differ: {sorted(set(aa) ^ set(ab))}")
            for k in sorted(set(aa) & set(ab)):
                va, vb = aa[k], ab[k]
                if k == "config":
                    va, vb = config_without_dir(va), config_without_dir(vb)
                if not same_value(va, vb):
                    if notes is not None and same_text_or_number(va, vb):
                        notes.append(f"note: {pa}:{name}: attribute {k}: type {type(va).__name__} vs "
                                     f"{type(vb).__name__}, value equal")
                    else:
                        out.append(f"{pa}:{name}: attribute {k}: {va!r:.80} vs {vb!r:.80}")
            if isinstance(oa, h5py.Dataset):
                if not same_value(oa[()], ob[()]):
                    out.append(f"{pa}:{name}: data differ")


def compare_metrics(pa, pb, out):
    ra, rb = list(csv.DictReader(open(pa))), list(csv.DictReader(open(pb)))
    if len(ra) != len(rb):
        out.append(f"{pa}: {len(ra)} rows vs {len(rb)}")
    for i, (x, y) in enumerate(zip(ra, rb)):
        for c in x:
            if c not in SKIP_COLS and x[c] != y.get(c):
                out.append(f"{pa}: row {i + 1} column {c}: {x[c]} vs {y.get(c)}")


def main():
    args = sys.argv[1:]
    notes = [] if args[:1] == ["--values"] else None
    if notes is not None:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    a, b = args
    files = [f for f in ("final.h5", "eval.h5") if os.path.exists(os.path.join(a, f))]
    if not files:
        print(f"same_run.py: {a} has no final.h5 or eval.h5", file=sys.stderr)
        return 2
    files += [f for f in ("pictures.h5",) if os.path.isfile(os.path.join(a, f))]
    ckpts = sorted(f for f in os.listdir(a) if re.match(r"ckpt-\d+\.h5$", f))
    files += ckpts[-1:]
    out = []
    for f in files:
        if not os.path.exists(os.path.join(b, f)):
            out.append(f"{f}: only in {a}")
            continue
        compare_h5(os.path.join(a, f), os.path.join(b, f), out, notes)
    for f in sorted(os.listdir(a)):  # pictures and the best/latest pointers: byte for byte
        if f.endswith(".png") or f in ("best", "latest"):
            fb = os.path.join(b, f)
            if not os.path.exists(fb) or open(os.path.join(a, f), "rb").read() != open(fb, "rb").read():
                out.append(f"{f}: differs or only in {a}")
            files.append(f)
    if os.path.exists(os.path.join(a, "metrics.csv")):
        compare_metrics(os.path.join(a, "metrics.csv"), os.path.join(b, "metrics.csv"), out)
    for line in out + (notes or []):
        print(line)
    typed = f"; {len(notes)} attribute(s) of another type, value equal" if notes else ""
    print(f"same_run.py: {a} vs {b}: {'SAME' if not out else f'{len(out)} difference(s)'}{typed} ({', '.join(files)})")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
