#!/usr/bin/python3
"""One page (PNG) about a run: its results row, learning curves, per-image test log-likelihood histogram, and
the samples / reconstructions / pseudo-input grids.

usage: report.py RUN_DIR [--out RUN_DIR/report.png]
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from curves import plot_curves  # noqa: E402
from grids import panels, plot_grids  # noqa: E402
from ll_histogram import load_ll, plot_ll_histogram  # noqa: E402
from table import read_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out")
    a = ap.parse_args()
    out = a.out or os.path.join(a.run, "report.png")
    r = read_run(a.run)
    n = len(panels(a.run))
    fig = plt.figure(figsize=(15, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    ax = top.subplots(1, 3)
    plot_curves(ax[0], ax[1], [a.run], labels=[""])
    plot_ll_histogram(ax[2], load_ll(a.run)[1])
    plot_grids(bottom.subplots(1, n), a.run)
    fig.suptitle(f"{r['dataset']} {r['model']} + {r['prior']}:  test LL {r['ll']:.2f} ± {r['se']:.2f} "
                 f"(S = {r['samples']}),  ELBO {r['elbo']:.2f} (RE {r['re']:.2f}, KL {r['kl']:.2f}),  "
                 f"active units {r['au1']}/{r['au2']},  {r['epochs']} epochs (best {r['best']}),  "
                 f"{r['seconds']:.0f} s on {r['ranks']} rank(s)", fontsize=12)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
