#!/usr/bin/python3
"""Importance-sampled log-likelihood with the PyTorch reference, to check vamp_mpi's eval on the same parameters.

usage: loglik.py PARAMS.h5 DATA.h5 S_SMALL.h5 S_LARGE.h5
PARAMS.h5: a vamp_mpi final.h5; DATA.h5: a binary dataset (data.binarize = none), its /test rows are used;
S_*.h5: eval.h5 files of `vamp_mpi --eval` with a small and a large eval.samples (attributes test_ll, test_elbo,
dataset /eval/test_ll per image). Checks, printing each and exiting 1 on a failure:
  1. vamp_mpi's mean log-likelihood at the large S agrees with two independent reference estimates (same S)
     within 4 Monte-Carlo standard errors (estimated from the two reference runs) + 0.02 nats;
  2. log-likelihood >= ELBO on average (the ELBO averaged over 2000 samples per image, by the reference);
  3. the estimate tightens: mean LL at the large S >= mean LL at the small S - 0.02.
"""
import configparser
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vamp_ref import importance_sampled, load_params, make_model  # noqa: E402


def main(params, data, small, large):
    f = h5py.File(params, "r")
    cfg = configparser.ConfigParser()
    c = f.attrs["config"]
    cfg.read_string(c.decode() if isinstance(c, bytes) else c)
    g = lambda s, k: cfg[s][k]
    x = np.array(h5py.File(data, "r")["test"][...], np.float64)
    if h5py.File(data, "r")["test"].dtype == np.uint8:
        x /= 255.0  # as vamp_mpi reads uint8 data
    limit = int(g("data", "test_limit"))
    if limit:
        x = x[:limit]
    D = x.shape[1]
    torch.set_default_dtype(torch.float64)
    sizes = (int(g("model", "hidden")), int(g("model", "z1")), int(g("model", "z2")), int(g("prior", "components")))
    hw = h5py.File(data, "r").attrs  # the convolutional models' images: height x width
    m = make_model(g("model", "type"), g("model", "likelihood"), g("prior", "type"), D, *sizes, hw.get("height"),
                   hw.get("width"))
    load_params(m, {k: np.array(v, np.float64) for k, v in f["params"].items()})
    m.eval()  # BatchNorm (pixelhvae) with its running statistics, as vamp_mpi evaluates
    X = torch.from_numpy(x)
    fl = h5py.File(large, "r")
    ecfg = configparser.ConfigParser()  # the eval run's own config: its eval.samples is S
    ec = fl.attrs["config"]
    ecfg.read_string(ec.decode() if isinstance(ec, bytes) else ec)
    S = int(ecfg["eval"]["samples"])

    def estimate(seed, S):  # the trainer's estimator (x encoded once, samples in blocks of 500)
        return importance_sampled(m, X, S, 500, torch.Generator().manual_seed(seed))

    r1, elbo = estimate(1, S)
    r2, _ = estimate(2, S)
    c_large = np.array(fl["eval/test_ll"])
    c_small = np.array(h5py.File(small, "r")["eval/test_ll"])
    se = np.std(r1 - r2) / math.sqrt(2) / math.sqrt(len(r1))  # standard error of a mean estimate
    tol = 4 * se + 0.02
    fails = 0
    d = abs(c_large.mean() - 0.5 * (r1.mean() + r2.mean()))
    ok = d <= tol
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} mean log-likelihood (S = {S}): vamp_mpi {c_large.mean():.4f}, reference "
          f"{r1.mean():.4f} / {r2.mean():.4f}; |diff| {d:.4f} <= {tol:.4f}")
    ok = c_large.mean() >= elbo.mean()
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} log-likelihood {c_large.mean():.4f} >= ELBO {elbo.mean():.4f} (gap {c_large.mean() - elbo.mean():.3f} nats)")
    ok = c_large.mean() >= c_small.mean() - 0.02
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} the estimate tightens with S: {c_small.mean():.4f} (small S) -> {c_large.mean():.4f}")
    print(f"{3 - fails} passed, {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
