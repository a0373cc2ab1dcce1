#!/usr/bin/python3
"""The same training step in PyTorch (tests/reference/vamp_ref.py, Debian's CPU torch), for vamp_bench's
side-by-side figures: ms per step at batch 100, one thread unless --threads says otherwise.

usage: bench_torch.py [--steps N] [--threads T]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from vamp_ref import Model  # noqa: E402


def step_time(model_type, prior, steps):
    torch.manual_seed(0)
    m = Model(model_type, "bernoulli", prior, 784, 300, 40, 40, 500)
    opt = torch.optim.Adam(m.parameters(), lr=5e-4)
    x = (torch.rand(100, 784) < 0.3).float()
    zt = 40
    def one():
        eps_top = torch.randn(100, zt)
        eps1 = torch.randn(100, 40) if model_type == "hvae" else None
        re, kl = m.loss_terms(x, eps_top, eps1)
        loss = torch.mean(re + kl)
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():  # the reference's per-tensor gradient normalisation
            for p in m.parameters():
                p.grad /= p.grad.norm() + 1e-7
        opt.step()
    for _ in range(3):
        one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"PyTorch {torch.__version__}, {a.threads} thread(s), batch 100, K = 500")
    for model_type, prior in (("vae", "standard"), ("vae", "vampprior"), ("hvae", "vampprior")):
        print(f"{model_type}_{prior:<10} torch step ms {1e3 * step_time(model_type, prior, a.steps):8.2f}")


if __name__ == "__main__":
    main()
