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
from matplotlib.ticker import MaxNLocator  # noqa: E402


def read_metrics(run):
    return list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))


def plot_curves(ax_loss, ax_kl, runs, labels=None):
    """Train (dashed) and validation loss on ax_loss, validation KL on ax_kl; epochs on integer ticks."""
    for i, run in enumerate(runs):
        rows = read_metrics(run)
        ep = [int(r["epoch"]) for r in rows]
        name = labels[i] if labels else os.path.basename(os.path.normpath(run))
        line, = ax_loss.plot(ep, [float(r["val_loss"]) for r in rows], label=f"{name} valid")
        ax_loss.plot(ep, [float(r["train_loss"]) for r in rows], "--", color=line.get_color(), alpha=0.6,
                     label=f"{name} train")
        ax_kl.plot(ep, [float(r["val_kl"]) for r in rows], color=line.get_color(), label=f"{name} valid KL")
    ax_loss.set(xlabel="epoch", ylabel="loss, nats per image\n(train at the warm-up beta)")
    ax_kl.set(xlabel="epoch", ylabel="validation KL, nats per image")
    for ax in (ax_loss, ax_kl):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default="curves.png")
    a = ap.parse_args()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    plot_curves(ax1, ax2, a.runs)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
