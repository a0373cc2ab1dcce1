#!/usr/bin/python3
"""Checks a parity_dump file against the PyTorch reference (tests/reference/vamp_ref.py).

usage: compare.py DUMP.h5
Loads the C model's parameters into the reference model (every name must match), runs it on the same batch
and noise, and compares the loss (relative 1e-5), the per-row terms (1e-5 of their largest value) and every
gradient tensor (||g_c - g_t|| <= 1e-3 ||g_t||). Prints one line per tensor; exits 1 on any failure.
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vamp_ref import Model  # noqa: E402


def main(path):
    f = h5py.File(path, "r")
    a = f.attrs
    s = lambda k: a[k].decode() if isinstance(a[k], bytes) else str(a[k])
    model = Model(s("model"), s("likelihood"), s("prior"), int(a["D"]), int(a["H"]), int(a["Z1"]), int(a["Z2"]),
                  int(a["K"]))
    state = {k: torch.from_numpy(np.array(v)) for k, v in f["params"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    fails = 0
    if missing or unexpected:
        print(f"FAIL names: missing in the C file {missing}, unknown to the reference {unexpected}")
        return 1
    x = torch.from_numpy(np.array(f["x"]))
    eps_top = torch.from_numpy(np.array(f["eps_top"]))
    eps1 = torch.from_numpy(np.array(f["eps1"])) if "eps1" in f else None
    beta = float(a["beta"])
    re, kl = model.loss_terms(x, eps_top, eps1)
    loss = torch.mean(re + beta * kl)
    loss.backward()

    tag = f"{s('model')}/{s('likelihood')}/{s('prior')}"
    c_loss = float(a["loss"])
    rel = abs(c_loss - loss.item()) / abs(loss.item())
    ok = rel <= 1e-5
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {tag} loss C {c_loss:.7f} torch {loss.item():.7f} rel {rel:.2e}")
    for name, t in (("re", re), ("kl", kl)):
        c = np.array(f[name])
        d = np.max(np.abs(c - t.detach().numpy()))
        tol = 1e-5 * max(1.0, float(np.max(np.abs(t.detach().numpy()))))
        fails += d > tol
        if d > tol:
            print(f"FAIL {tag} per-row {name}: max |diff| {d:.3g} > {tol:.3g}")
    worst = (0.0, "")
    for name, p in model.named_parameters():
        g_t = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, np.float32)
        g_c = np.array(f["grads"][name])
        nt = float(np.linalg.norm(g_t))
        d = float(np.linalg.norm(g_c - g_t))
        r = d / nt if nt > 0 else d
        bad = (d > 1e-3 * nt) if nt > 0 else (d > 1e-6)
        fails += bad
        worst = max(worst, (r, name))
        if bad:
            print(f"FAIL {tag} grad {name}: ||diff|| {d:.3g}, ||torch|| {nt:.3g}, rel {r:.2e}")
    print(f"{'ok  ' if not fails else 'FAIL'} {tag}: {len(state)} gradient tensors, worst rel {worst[0]:.2e} ({worst[1]})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
