#!/usr/bin/python3
"""A comparison table of runs in the form of the paper's: model x prior -> test log-likelihood (and ELBO,
active units, epochs), from each run's final.h5 attributes and stored config.

usage: table.py RUN_DIR [RUN_DIR...] [--markdown]
"""
import argparse
import configparser
import math
import os

import h5py


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = []
    for run in a.runs:
        path = os.path.join(run, "final.h5")
        if not os.path.exists(path):
            print(f"skipping {run}: no final.h5")
            continue
        f = h5py.File(path, "r")
        cfg = configparser.ConfigParser()
        c = f.attrs["config"]
        cfg.read_string(c.decode() if isinstance(c, bytes) else c)
        at = {k: float(v) for k, v in f.attrs.items() if k not in ("config", "format")}
        rows.append((cfg["model"]["type"].upper(), cfg["prior"]["type"], at.get("test_ll", math.nan),
                     at.get("test_elbo", math.nan), int(at.get("active_units_z1", 0)), int(at.get("active_units_z2", 0)),
                     int(at.get("epochs", 0)), int(cfg["eval"]["samples"])))
    rows.sort()
    head = ("model", "prior", "test LL", "test ELBO", "AU z1", "AU z2", "epochs", "IS samples")
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]} | {r[5]} | {r[6]} | {r[7]} |")
    else:
        print("%-6s %-15s %9s %9s %6s %6s %7s %10s" % head)
        for r in rows:
            print("%-6s %-15s %9.2f %9.2f %6d %6d %7d %10d" % r)


if __name__ == "__main__":
    main()
