#!/usr/bin/python3
"""The paper's table from runs: data set x model x prior -> test log-likelihood with its standard error, ELBO,
RE, KL, active units, epochs (best), training time, rank count, IS samples, and the published value.

The data set is the stem of data.path in the run's stored config (data/frey.h5 -> frey). Published values come
from analysis/published.tsv (with their sources); where they are in bits per dimension (Frey Faces, as the paper
prints them), ours is shown in that unit too: -LL / (D ln 2). The standard error is the standard deviation of the per-image
log-likelihoods (/eval/test_ll) over sqrt(test images): the spread of the test-set mean, not of the seed.

An unfinished run (no final.h5) is left out of the table, with a line saying how far it got.

usage: table.py RUN_DIR [RUN_DIR...] [--markdown]
"""
import argparse
import configparser
import csv
import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def progress(run):
    """How far an unfinished run got, from its metrics.csv: the last epoch, its beta, the best validation loss and
    its epoch, the summed wall time of the epochs."""
    try:
        rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    except OSError:
        return ""
    if not rows:
        return ""
    best = min(rows, key=lambda r: float(r["val_loss"]))
    last = rows[-1]
    hours = sum(float(r["seconds"]) for r in rows) / 3600
    return (f", epoch {last['epoch']} (beta {float(last['beta']):g}), best validation loss "
            f"{float(best['val_loss']):.2f} at epoch {best['epoch']}, {hours:.2f} h of epochs")


def published():
    """(dataset, model, prior) -> (value, unit, source) from analysis/published.tsv."""
    out = {}
    with open(os.path.join(HERE, "published.tsv")) as f:
        for r in csv.DictReader((l for l in f if not l.startswith("#")), delimiter="\t"):
            out[(r["dataset"], r["model"], r["prior"])] = (float(r["test_ll"]), r["unit"], r["source"])
    return out


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_run(run):
    f = h5py.File(os.path.join(run, "final.h5"), "r")
    cfg = configparser.ConfigParser()
    cfg.read_string(text(f.attrs["config"]))
    at = f.attrs
    ll = f["eval/test_ll"][...] if "eval/test_ll" in f else np.array([])
    D = f["params/p_x_mean.linear.weight"].shape[0]  # pixels per image
    return {
        "dataset": os.path.splitext(os.path.basename(cfg["data"]["path"]))[0],
        "model": cfg["model"]["type"].upper(), "prior": cfg["prior"]["type"],
        "grey": cfg["model"]["likelihood"] == "logistic256",
        "ll": float(at.get("test_ll", math.nan)),
        "se": float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else math.nan,
        "bpd": -float(at.get("test_ll", math.nan)) / (D * math.log(2)),
        "elbo": float(at["test_elbo"]), "re": float(at["test_re"]), "kl": float(at["test_kl"]),
        "au1": int(at["active_units_z1"]), "au2": int(at["active_units_z2"]),
        "epochs": int(at["epochs"]), "best": int(at["best_epoch"]), "seconds": float(at["train_seconds"]),
        "ranks": int(at["ranks"]) if "ranks" in at else 0, "samples": int(cfg["eval"]["samples"]),
        "core": text(at["build_openblas_core"]) if "build_openblas_core" in at else "?",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    pub = published()
    rows = []
    for run in a.runs:
        if not os.path.isdir(run):
            continue
        if not os.path.exists(os.path.join(run, "final.h5")):
            print(f"skipping {run}: no final.h5 (not finished{progress(run)})")
            continue
        rows.append(read_run(run))
    order = {"standard": 0, "mog": 1, "vampprior_data": 2, "vampprior": 3}
    rows.sort(key=lambda r: (r["dataset"], r["model"], order.get(r["prior"], 9)))
    head = ("data set", "model", "prior", "test LL ± SE", "published", "ELBO", "RE", "KL", "AU z1/z2",
            "epochs (best)", "train s", "ranks", "S", "OpenBLAS core")
    lines = []
    for r in rows:
        p = pub.get((r["dataset"], r["model"], r["prior"]))
        ours = f"{r['ll']:.2f} ± {r['se']:.2f}"
        if r["grey"]:  # the paper's unit for grey data: -LL / (D ln 2)
            ours += f" ({r['bpd']:.3f} bits/dim)"
        lines.append((r["dataset"], r["model"], r["prior"], ours,
                      f"{p[0]:.2f}{' bits/dim' if p[1] == 'bits/dim' else ''}" if p else "—", f"{r['elbo']:.2f}", f"{r['re']:.2f}", f"{r['kl']:.2f}",
                      f"{r['au1']}/{r['au2']}", f"{r['epochs']} ({r['best']})", f"{r['seconds']:.0f}",
                      str(r["ranks"]), str(r["samples"]), r["core"]))
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for l in lines:
            print("| " + " | ".join(l) + " |")
    else:
        for l in [head] + lines:
            print("  ".join(f"{c:<14}" for c in l))


if __name__ == "__main__":
    main()
