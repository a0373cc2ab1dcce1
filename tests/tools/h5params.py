#!/usr/bin/python3
"""Compare the /params of two vamp_mpi parameter files.

usage: h5params.py A.h5 B.h5 [--exact | --rtol R]
--exact: every tensor must be bit-identical (the promise of train.reduce = exact across rank counts).
--rtol R: every tensor must satisfy ||a - b|| <= R * ||b||.
Prints one line per differing tensor and exits 1 on any difference, 0 otherwise.
"""
import sys

import h5py
import numpy as np


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    exact = "--exact" in sys.argv
    rtol = float(sys.argv[sys.argv.index("--rtol") + 1]) if "--rtol" in sys.argv else 0.0
    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        ka, kb = set(fa["params"].keys()), set(fb["params"].keys())
        if ka != kb:
            print(f"tensor names differ: only in A {sorted(ka - kb)}, only in B {sorted(kb - ka)}")
            return 1
        bad = 0
        for k in sorted(ka):
            a, b = fa["params"][k][...], fb["params"][k][...]
            if a.shape != b.shape:
                print(f"{k}: shape {a.shape} vs {b.shape}")
                bad += 1
                continue
            if exact:
                if a.tobytes() != b.tobytes():
                    n = int(np.sum(a.view(np.uint32) != b.view(np.uint32)))
                    print(f"{k}: {n} of {a.size} values differ in their bits (max |diff| {np.max(np.abs(a - b)):.3g})")
                    bad += 1
            else:
                nb = float(np.linalg.norm(b))
                d = float(np.linalg.norm(a - b))
                if d > rtol * nb:
                    print(f"{k}: ||a-b|| = {d:.3g} > {rtol} * ||b|| = {rtol * nb:.3g}")
                    bad += 1
        print(f"{len(ka)} tensors compared, {bad} differ")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
