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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", default="grids.png")
    a = ap.parse_args()
    f = h5py.File(os.path.join(a.run, "pictures.h5"), "r")
    panels = [("samples", np.array(f["samples"]))]
    rec = np.array(f["reconstructions"])
    orig = np.array(f["originals"])
    k = min(len(rec), 50) // 10 * 10 or len(rec)
    inter = np.concatenate([np.concatenate([orig[i:i + 10], rec[i:i + 10]]) for i in range(0, k, 10)])
    panels.append(("test images / reconstructions", inter))
    if "pseudo_inputs" in f:
        panels.append(("pseudo-inputs", np.array(f["pseudo_inputs"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5))
    for ax, (title, x) in zip(np.atleast_1d(axes), panels):
        ax.imshow(grid(x), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
