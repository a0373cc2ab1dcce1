#!/usr/bin/python3
"""Two runs' test log-likelihoods compared image by image (the same test images, /eval/test_ll of each).

The standard error of each run's mean is mostly the spread over images, which both runs share; the paired
standard error (of the per-image differences) is the one that says whether run A beats run B on these images.
usage: paired_ll.py RUN_A RUN_B   (run directories, or their final.h5 / eval.h5)
"""
import argparse
import math

import numpy as np

from ll_histogram import load_ll


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    a = ap.parse_args()
    (pa, lla), (pb, llb) = load_ll(a.run_a), load_ll(a.run_b)
    if len(lla) != len(llb):
        raise SystemExit(f"{pa} has {len(lla)} test images, {pb} {len(llb)}: not the same test set")
    d = lla.astype(np.float64) - llb.astype(np.float64)
    se = d.std(ddof=1) / math.sqrt(len(d))
    print(f"A = {pa}: {lla.mean(dtype=np.float64):.3f}\nB = {pb}: {llb.mean(dtype=np.float64):.3f}")
    print(f"A - B = {d.mean():+.3f} nats, paired SE {se:.3f} ({d.mean() / se:+.1f} SE), "
          f"A better on {(d > 0).mean():.1%} of {len(d)} images")


if __name__ == "__main__":
    main()
