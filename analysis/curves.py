#!/usr/bin/python3
"""Learning curves of one or more runs from their metrics.csv: train and validation loss, and the KL term.

usage: curves.py RUN_DIR [RUN_DIR...] [--out curves.png]
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="curves.png")
    a = ap.parse_args()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in a.runs:
        rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
        ep = [int(r["epoch"]) for r in rows]
        name = os.path.basename(os.path.normpath(run))
        ax1.plot(ep, [float(r["train_loss"]) for r in rows], "--", label=f"{name} train")
        ax1.plot(ep, [float(r["val_loss"]) for r in rows], label=f"{name} valid")
        ax2.plot(ep, [float(r["val_kl"]) for r in rows], label=f"{name} valid KL")
    ax1.set(xlabel="epoch", ylabel="loss (nats per image; train at the warm-up beta)")
    ax2.set(xlabel="epoch", ylabel="KL (nats per image)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
