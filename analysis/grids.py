#!/usr/bin/python3
"""Samples, reconstructions and pseudo-inputs of a run side by side, from its pictures.h5.

usage: grids.py RUN_DIR [--out grids.png]
"""
import argparse
import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def grid(x, cols=10):
    n, h, w = x.shape
    rows = (n + cols - 1) // cols
    out = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1)) * 0.5
    for i in range(n):
        r, c = divmod(i, cols)
        out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = x[i]
    return out


def panels(run):
    """(title, images) of a run's pictures.h5: samples, test images with reconstructions, pseudo-inputs."""
    f = h5py.File(os.path.join(run, "pictures.h5"), "r")
    out = [("samples", np.array(f["samples"]))]
    rec, orig = np.array(f["reconstructions"]), np.array(f["originals"])
    k = min(len(rec), 50) // 10 * 10 or len(rec)
    inter = np.concatenate([np.concatenate([orig[i:i + 10], rec[i:i + 10]]) for i in range(0, k, 10)])
    out.append(("test images (odd rows)\nand reconstructions", inter))
    if "pseudo_inputs" in f:
        out.append(("pseudo-inputs", np.array(f["pseudo_inputs"])))
    return out


def plot_grids(axes, run):
    for ax, (title, x) in zip(axes, panels(run)):
        ax.imshow(grid(x), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default="grids.png")
    a = ap.parse_args()
    n = len(panels(a.run))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 5.6), layout="constrained")
    plot_grids(np.atleast_1d(axes), a.run)
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
