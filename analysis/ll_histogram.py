#!/usr/bin/python3
"""Histogram of the per-image test log-likelihood of a run (final.h5 or eval.h5: /eval/test_ll).

usage: ll_histogram.py RUN_DIR_OR_H5 [--out ll_histogram.png]
"""
import argparse
import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load_ll(run):
    path = os.path.join(run, "final.h5") if os.path.isdir(run) else run
    f = h5py.File(path, "r")
    if "eval/test_ll" not in f:
        raise SystemExit(f"{path}: no /eval/test_ll (was it run with eval.samples = 0?)")
    return path, np.array(f["eval/test_ll"])


def plot_ll_histogram(ax, ll):
    ax.hist(ll, bins=80)
    ax.axvline(ll.mean(), color="k", ls="--", label=f"mean {ll.mean():.2f} nats")
    ax.axvline(np.median(ll), color="r", ls=":", label=f"median {np.median(ll):.2f}")
    ax.set(xlabel="log p(x) per test image (nats)", ylabel="images")
    ax.legend(fontsize=8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default="ll_histogram.png")
    a = ap.parse_args()
    path, ll = load_ll(a.run)
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    plot_ll_histogram(ax, ll)
    fig.savefig(a.out, dpi=120)
    print(f"{path}: {len(ll)} images, mean {ll.mean():.3f}, median {np.median(ll):.3f}, min {ll.min():.1f}; wrote {a.out}")


if __name__ == "__main__":
    main()
